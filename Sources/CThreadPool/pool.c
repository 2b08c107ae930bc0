// CThreadPool: see include/stm_pool.h for the contract. Workers are created on first use (as many
// as the largest `threads - 1` asked for), spin for a short while after each run so that the next
// run starts without a wake-up, then block. A run's chunks are cut into one contiguous share per
// thread (the caller first); each thread claims its own share's chunks from the front, then helps
// with the others'. Ops over the same rows thus tend to give a row to the same core each time (the
// rows a product wrote are still in that core's cache when the next op reads them), and a thread
// that is late or slow still has its work taken by the others.
#include "stm_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define MAX_WORKERS 255
#define SPIN_ROUNDS 20000  /* pause instructions before a worker sleeps (about 0.1-1 ms) */

static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;  /* one run at a time */
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;

static int worker_count = 0;                  /* guarded by run_lock */
static atomic_long generation = 0;            /* bumped once per run */
static atomic_int sleepers = 0;

/* One thread's share of a run: chunks [next, end), claimed from the front by its owner and, once
   their own shares are done, by the others. A cache line of its own. */
typedef struct {
    atomic_long next;
    long end;
} __attribute__((aligned(64))) share_t;

/* One run, on its caller's stack. Workers reach it through `current` only while they hold
   `busy` up, and the caller clears `current` and waits for `busy` to drop before returning, so no
   worker touches a run after its caller has returned. */
typedef struct {
    stm_pool_fn fn;
    void *ctx;
    int active;            /* workers with index < active take part */
    int parts;             /* active + 1 (the caller is part 0, worker i part i + 1) */
    share_t *shares;       /* [parts] */
    atomic_long done;      /* chunks finished */
} job_t;

static _Atomic(job_t *) current = NULL;
static atomic_int busy = 0;

/* Part `self` runs its own share first, then helps the others, from the front of each. */
static void run_chunks(job_t *job, int self) {
    for (int i = 0; i < job->parts; i++) {
        share_t *s = &job->shares[(self + i) % job->parts];
        for (;;) {
            long c = atomic_fetch_add_explicit(&s->next, 1, memory_order_relaxed);
            if (c >= s->end) break;
            job->fn(job->ctx, c);
            atomic_fetch_add_explicit(&job->done, 1, memory_order_release);
        }
    }
}

static void *worker_main(void *arg) {
    int index = (int)(intptr_t)arg;
    long seen = 0;
    for (;;) {
        long g;
        int spins = 0;
        while ((g = atomic_load(&generation)) == seen) {
            if (++spins < SPIN_ROUNDS) { CPU_RELAX(); continue; }
            pthread_mutex_lock(&sleep_lock);
            atomic_fetch_add(&sleepers, 1);
            while ((g = atomic_load(&generation)) == seen)
                pthread_cond_wait(&wake, &sleep_lock);
            atomic_fetch_sub(&sleepers, 1);
            pthread_mutex_unlock(&sleep_lock);
            break;
        }
        seen = g;
        atomic_fetch_add(&busy, 1);
        job_t *job = atomic_load(&current);
        if (job && index < job->active) run_chunks(job, index + 1);
        atomic_fetch_sub(&busy, 1);
    }
    return NULL;
}

static void ensure_workers(int wanted) {
    if (wanted > MAX_WORKERS) wanted = MAX_WORKERS;
    while (worker_count < wanted) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int failed = pthread_create(&t, &attr, worker_main, (void *)(intptr_t)worker_count);
        pthread_attr_destroy(&attr);
        if (failed) break;  /* fewer workers: the caller runs the remaining chunks itself */
        worker_count++;
    }
}

void stm_pool_run(long chunks, int threads, stm_pool_fn fn, void *ctx) {
    if (chunks <= 0) return;
    if (threads <= 1 || chunks == 1 || pthread_mutex_trylock(&run_lock) != 0) {
        for (long c = 0; c < chunks; c++) fn(ctx, c);
        return;
    }
    ensure_workers(threads - 1);
    int parts = threads < worker_count + 1 ? threads : worker_count + 1;
    share_t shares[parts];
    for (int i = 0; i < parts; i++) {
        atomic_init(&shares[i].next, chunks * i / parts);
        shares[i].end = chunks * (i + 1) / parts;
    }
    job_t job = {.fn = fn, .ctx = ctx, .active = parts - 1, .parts = parts, .shares = shares};
    atomic_init(&job.done, 0);
    atomic_store(&current, &job);
    atomic_fetch_add(&generation, 1);
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&sleep_lock);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&sleep_lock);
    }
    run_chunks(&job, 0);
    while (atomic_load_explicit(&job.done, memory_order_acquire) < chunks) CPU_RELAX();
    atomic_store(&current, NULL);
    while (atomic_load(&busy) > 0) CPU_RELAX();
    pthread_mutex_unlock(&run_lock);
}
