/* threads.c: the worker pool behind tg_set_threads. Workers sleep on a condition variable
 * until tg_parallel_for hands out a job; nothing is allocated per job, so a training step
 * stays allocation-free with threads on. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "tapegrad.h"
#include "threads.h"

#define MAX_THREADS 64

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    pthread_t workers[MAX_THREADS];
    int n_threads;                     /* workers + the caller */
    unsigned job;                      /* bumped for every job handed out */
    int pending;                       /* workers still busy with the current job */
    bool quit;
    void (*fn)(void *ctx, int task);
    void *ctx;
    int n_tasks;
} pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
    .n_threads = 1,
};

int tg_thread_count(void) { return pool.n_threads; }

static void run_share(int thread, int n_threads, void (*fn)(void *, int), void *ctx, int n_tasks)
{
    for (int task = thread; task < n_tasks; task += n_threads)
        fn(ctx, task);
}

static void *worker_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    unsigned seen = 0;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.job == seen && !pool.quit)
            pthread_cond_wait(&pool.wake, &pool.lock);
        if (pool.quit)
            break;
        seen = pool.job;
        void (*fn)(void *, int) = pool.fn;
        void *ctx = pool.ctx;
        int n_tasks = pool.n_tasks, n_threads = pool.n_threads;
        pthread_mutex_unlock(&pool.lock);
        run_share(id, n_threads, fn, ctx, n_tasks);
        pthread_mutex_lock(&pool.lock);
        if (--pool.pending == 0)
            pthread_cond_signal(&pool.done);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

void tg_parallel_for(int n_tasks, void (*fn)(void *ctx, int task), void *ctx)
{
    int n_threads = pool.n_threads;
    if (n_threads == 1 || n_tasks <= 1) {
        run_share(0, 1, fn, ctx, n_tasks);
        return;
    }
    pthread_mutex_lock(&pool.lock);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n_tasks = n_tasks;
    pool.pending = n_threads - 1;
    pool.job++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    run_share(0, n_threads, fn, ctx, n_tasks);
    pthread_mutex_lock(&pool.lock);
    while (pool.pending > 0)
        pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
}

static void stop_workers(void)
{
    pthread_mutex_lock(&pool.lock);
    pool.quit = true;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 1; i < pool.n_threads; i++)
        pthread_join(pool.workers[i], NULL);
    pool.quit = false;
    pool.n_threads = 1;
}

int tg_set_threads(int n)
{
    if (n < 1)
        n = 1;
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    if (n == pool.n_threads)
        return n;
    stop_workers();
    for (int i = 1; i < n; i++) {
        /* a worker reads pool.n_threads only once a job is handed out, after this loop */
        if (pthread_create(&pool.workers[i], NULL, worker_main, (void *)(intptr_t)i) != 0)
            break;
        pool.n_threads = i + 1;
    }
    return pool.n_threads;
}
