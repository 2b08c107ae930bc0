// CThreadPool: see include/stm_pool.h for the contract. Workers are created on first use (as many
// as the largest `threads - 1` asked for), claim chunks with an atomic counter, spin for a short
// while after each run so that the next run starts without a wake-up, then block.
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

/* One run, on its caller's stack. Workers reach it through `current` only while they hold
   `busy` up, and the caller clears `current` and waits for `busy` to drop before returning, so no
   worker touches a run after its caller has returned. */
typedef struct {
    stm_pool_fn fn;
    void *ctx;
    long chunks;
    int active;            /* workers with index < active take part */
    atomic_long next;      /* next unclaimed chunk */
    atomic_long done;      /* chunks finished */
} job_t;

static _Atomic(job_t *) current = NULL;
static atomic_int busy = 0;

static void run_chunks(job_t *job) {
    for (;;) {
        long c = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
        if (c >= job->chunks) break;
        job->fn(job->ctx, c);
        atomic_fetch_add_explicit(&job->done, 1, memory_order_release);
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
        if (job && index < job->active) run_chunks(job);
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
    job_t job = {.fn = fn, .ctx = ctx, .chunks = chunks, .active = threads - 1};
    atomic_init(&job.next, 0);
    atomic_init(&job.done, 0);
    atomic_store(&current, &job);
    atomic_fetch_add(&generation, 1);
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&sleep_lock);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&sleep_lock);
    }
    run_chunks(&job);
    while (atomic_load_explicit(&job.done, memory_order_acquire) < chunks) CPU_RELAX();
    atomic_store(&current, NULL);
    while (atomic_load(&busy) > 0) CPU_RELAX();
    pthread_mutex_unlock(&run_lock);
}
