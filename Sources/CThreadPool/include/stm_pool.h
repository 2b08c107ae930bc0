// CThreadPool: a small persistent worker pool for TensorCore's parallelFor.
//
// Why not Dispatch: on Linux, DispatchQueue.concurrentPerform wakes its pool lazily, and a run of a
// few chunks often executes them one after another on the calling thread (measured: two 70 ms chunks
// took 140 ms on two idle cores). Kernels here are short (tens of microseconds to milliseconds), so
// the pool keeps its workers spinning briefly between runs and then sleeps on a condition variable.
//
// Contract: stm_pool_run(chunks, threads, fn, ctx) calls fn(ctx, c) exactly once for every c in
// [0, chunks), on the calling thread and up to threads - 1 workers, and returns when all calls have
// returned. Which thread runs which chunk is not fixed; callers must not depend on it. A run started
// while another is in progress (from another thread) executes serially on its caller.
#ifndef STM_POOL_H
#define STM_POOL_H

typedef void (*stm_pool_fn)(void *ctx, long chunk);

/// Runs fn(ctx, c) for c in [0, chunks) on up to `threads` threads (the caller included).
void stm_pool_run(long chunks, int threads, stm_pool_fn fn, void *ctx);

#endif
