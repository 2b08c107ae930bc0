// TensorCore: threads. `parallelFor` splits an index range into fixed chunks and runs them on
// a persistent worker pool (CThreadPool; Dispatch's pool, tried first, often ran short runs on one
// thread on Linux); chunk boundaries depend only on the range and the grain, never on the thread
// count, and no kernel reduces across chunks, so results are identical for any thread count.
// A `parallelFor` inside another runs serially (no oversubscription). Matrix products run on CGemm,
// which splits them over the same pool; OpenBLAS (the tests' oracle and bench's yardstick) is kept
// single-threaded. The thread count is process-wide atomic state, so two models may run on
// two threads of one process; the pool runs a second caller's chunks serially on that caller.

import CBLAS
import CThreadPool
import Dispatch
import Foundation
import Synchronization

/// How many threads the kernels and matrix products use.
public enum Threads {
    private static let current = Atomic<Int>({
        if let s = ProcessInfo.processInfo.environment["STM_THREADS"], let n = Int(s), n > 0, n <= 1024 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }())

    /// Threads in use (defaults to `STM_THREADS` or the number of active cores). An atomic read: every
    /// product and every `parallelFor` asks.
    public static var count: Int { current.load(ordering: .acquiring) }

    /// Sets the number of threads for our kernels (and GEMM splitting).
    public static func set(_ n: Int) {
        current.store(max(1, n), ordering: .releasing)
        configure()
    }

    /// Keeps OpenBLAS single-threaded (our `gemm` splits work itself). Idempotent.
    public static func configure() {
        openblas_set_num_threads(1)
    }

    /// True on a thread that is running a chunk of a `parallelFor`.
    public static var insideParallelRegion: Bool { pthread_getspecific(regionKey) != nil }

    @usableFromInline static let regionKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        openblas_set_num_threads(1)
        return key
    }()
}

/// Runs `body` over `0..<count` in chunks of about `grain` indices, in parallel when worthwhile.
/// Each chunk is a contiguous range; chunks never overlap. `body` must only write memory owned by its range.
@inlinable
public func parallelFor(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
    if count <= 0 { return }
    let g = max(grain, 1)
    let chunks = (count + g - 1) / g
    let threads = Threads.count
    if chunks <= 1 || threads <= 1 || Threads.insideParallelRegion {
        for c in 0..<chunks { body((c * g)..<min(c * g + g, count)) }
        return
    }
    // Several chunks per thread balance uneven work; boundaries depend on count and grain only.
    withoutActuallyEscaping(body) { body in
        var job = ParallelJob(body: body, count: count, grain: g)
        withUnsafeMutablePointer(to: &job) { stm_pool_run(chunks, Int32(threads), runParallelChunk, $0) }
    }
}

/// What `parallelFor` hands to the pool: the body and how chunks map to index ranges.
@usableFromInline
struct ParallelJob {
    @usableFromInline let body: (Range<Int>) -> Void
    @usableFromInline let count: Int, grain: Int
    @usableFromInline init(body: @escaping (Range<Int>) -> Void, count: Int, grain: Int) {
        self.body = body
        self.count = count
        self.grain = grain
    }
}

/// The pool's entry point: runs chunk `c` of the job at `ctx`, marked as inside a parallel region.
@usableFromInline
let runParallelChunk: @convention(c) (UnsafeMutableRawPointer?, Int) -> Void = { ctx, c in
    let job = ctx!.assumingMemoryBound(to: ParallelJob.self)
    let key = Threads.regionKey
    let was = pthread_getspecific(key)
    pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
    let lo = c * job.pointee.grain
    job.pointee.body(lo..<min(lo + job.pointee.grain, job.pointee.count))
    pthread_setspecific(key, was)
}

/// A grain that gives roughly `perThread` chunks per thread for `count` items of `cost` flops each,
/// without going under `minimum` items per chunk. Depends only on its arguments.
@inlinable
public func grainFor(_ count: Int, minimum: Int = 1, cost: Int = 1) -> Int {
    // Aim for chunks of at least ~32k flops so dispatch overhead stays small.
    let byCost = max(1, 32_768 / max(cost, 1))
    return max(minimum, byCost, (count + 63) / 64)
}
