/* threads.c: the worker pool behind tg_set_threads. Between jobs a worker first spins for a
 * while (waking a sleeping thread costs a good share of the time between two of a training
 * step's products: docs/performance.md, Threads), then sleeps on a condition variable until
 * tg_parallel_for hands out a job. Nothing is allocated per job, so a training step stays
 * allocation-free with threads on. The pool has one owner at a time (the `owner` mutex): a
 * caller that finds it taken by another thread's product, or by tg_set_threads, runs its
 * tasks on its own thread instead of waiting. Built with TG_SINGLE_THREAD (the WebAssembly
 * build, which has no threads) it is no pool: every task runs on the caller's thread. */
#include "tapegrad.h"
#include "threads.h"

#ifdef TG_SINGLE_THREAD
int tg_thread_count(void) { return 1; }

void tg_parallel_for(int n_tasks, void (*fn)(void *ctx, int task), void *ctx)
{
    for (int task = 0; task < n_tasks; task++)
        fn(ctx, task);
}

int tg_set_threads(int n)
{
    (void)n;
    return 1;
}
#else
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define MAX_THREADS 64
/* How many times a waiting thread looks, with a pause between looks, before it sleeps: long
 * enough to span the gap between a step's products (docs/performance.md, Threads). */
#define SPIN_LOOKS 50000

static struct {
    pthread_mutex_t owner;             /* held for a job handed out, and by tg_set_threads */
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    pthread_t workers[MAX_THREADS];
    atomic_int n_threads;              /* workers + the caller; changed only by the owner */
    atomic_uint job;                   /* bumped for every job handed out */
    atomic_int pending;                /* workers still busy with the current job */
    atomic_bool quit;
    unsigned first_job;                /* the job number when the workers were started */
    /* the current job, written before job is bumped and read after it is seen */
    void (*fn)(void *ctx, int task);
    void *ctx;
    int n_tasks;
} pool = {
    .owner = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
    .n_threads = 1,
};

int tg_thread_count(void) { return atomic_load(&pool.n_threads); }

static void run_share(int thread, int n_threads, void (*fn)(void *, int), void *ctx, int n_tasks)
{
    for (int task = thread; task < n_tasks; task += n_threads)
        fn(ctx, task);
}

static void pause_briefly(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Waits until a job other than `seen` is handed out (true) or the pool is told to quit. */
static bool wait_for_job(unsigned seen)
{
    for (int look = 0; look < SPIN_LOOKS; look++) {
        if (atomic_load(&pool.quit))
            return false;
        if (atomic_load(&pool.job) != seen)
            return true;
        pause_briefly();
    }
    pthread_mutex_lock(&pool.lock);
    while (atomic_load(&pool.job) == seen && !atomic_load(&pool.quit))
        pthread_cond_wait(&pool.wake, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    return !atomic_load(&pool.quit);
}

static void *worker_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    unsigned seen = pool.first_job; /* jobs from before this worker started are not its own */
    while (wait_for_job(seen)) {
        seen = atomic_load(&pool.job);
        run_share(id, atomic_load(&pool.n_threads), pool.fn, pool.ctx, pool.n_tasks);
        if (atomic_fetch_sub(&pool.pending, 1) == 1) { /* the last one out tells the caller */
            pthread_mutex_lock(&pool.lock);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
    }
    return NULL;
}

/* Hands the job to the workers, runs the caller's share and waits for theirs. The caller owns
 * the pool, and the pool has workers (n_threads > 1). */
static void run_on_pool(int n_threads, int n_tasks, void (*fn)(void *ctx, int task), void *ctx)
{
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n_tasks = n_tasks;
    atomic_store(&pool.pending, n_threads - 1);
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add(&pool.job, 1);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    run_share(0, n_threads, fn, ctx, n_tasks);
    for (int look = 0; look < SPIN_LOOKS && atomic_load(&pool.pending) > 0; look++)
        pause_briefly();
    pthread_mutex_lock(&pool.lock);
    while (atomic_load(&pool.pending) > 0)
        pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
}

void tg_parallel_for(int n_tasks, void (*fn)(void *ctx, int task), void *ctx)
{
    bool owner = n_tasks > 1 && atomic_load(&pool.n_threads) > 1 &&
                 pthread_mutex_trylock(&pool.owner) == 0;
    /* read again as the owner: tg_set_threads may have stopped the workers in between */
    int n_threads = owner ? atomic_load(&pool.n_threads) : 1;
    if (n_threads > 1)
        run_on_pool(n_threads, n_tasks, fn, ctx);
    else
        run_share(0, 1, fn, ctx, n_tasks);
    if (owner)
        pthread_mutex_unlock(&pool.owner);
}

static void stop_workers(void)
{
    pthread_mutex_lock(&pool.lock);
    atomic_store(&pool.quit, true);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    int n_threads = atomic_load(&pool.n_threads);
    for (int i = 1; i < n_threads; i++)
        pthread_join(pool.workers[i], NULL);
    atomic_store(&pool.quit, false);
    atomic_store(&pool.n_threads, 1);
}

/* Starts workers 1 .. n - 1, as many as the system allows; pool.n_threads counts them. */
static void start_workers(int n)
{
    pool.first_job = atomic_load(&pool.job);
    for (int i = 1; i < n; i++) {
        /* a worker reads pool.n_threads only once a job is handed out, after this loop */
        if (pthread_create(&pool.workers[i], NULL, worker_main, (void *)(intptr_t)i) != 0)
            break;
        atomic_store(&pool.n_threads, i + 1);
    }
}

int tg_set_threads(int n)
{
    if (n < 1)
        n = 1;
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    pthread_mutex_lock(&pool.owner); /* waits for the job in progress, if any */
    if (n != atomic_load(&pool.n_threads)) {
        stop_workers();
        start_workers(n);
    }
    int in_effect = atomic_load(&pool.n_threads);
    pthread_mutex_unlock(&pool.owner);
    return in_effect;
}
#endif
