/* threads.c: the worker pool behind tg_set_threads. A job's tasks are claimed one at a time
 * by whichever thread is free, the caller included, so a worker that the system has not
 * scheduled yet costs nothing but its share of the help: the caller runs the tasks nobody has
 * claimed and waits only for those in progress. Between jobs a worker spins for a while
 * (waking a sleeping thread costs a good share of the time between two of a training step's
 * products: docs/performance.md, Threads), then sleeps on a condition variable. Nothing is
 * allocated per job, so a training step stays allocation-free with threads on. The pool has
 * one owner at a time (the `owner` mutex): a caller that finds it taken by another thread's
 * product, or by tg_set_threads, runs its tasks on its own thread instead of waiting. Built
 * with TG_SINGLE_THREAD (the WebAssembly build, which has no threads) it is no pool: every
 * task runs on the caller's thread. */
#define _POSIX_C_SOURCE 200809L

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
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define MAX_THREADS 64
/* How long a waiting thread spins, with a pause between looks, before it sleeps: long enough
 * to span the gap between a step's products, short enough not to hold a core that another
 * process wants for long (docs/performance.md, Threads). */
#define SPIN_NS 200000
/* Looks between two readings of the clock while spinning; at each reading the spinning thread
 * also yields its core to any thread waiting for it (on a host with more runnable threads
 * than cores, the one it waits for may be that thread). */
#define LOOKS_PER_CLOCK 64

/* The ticket of a job: its number, its task count and the next task to claim, in one word,
 * so that a claim is one compare-and-swap that cannot take a task of another job. */
#define TICKET(job, n_tasks, task) ((uint64_t)(job) << 32 | (uint64_t)(n_tasks) << 16 | (uint64_t)(task))
#define TICKET_JOB(t) ((uint32_t)((t) >> 32))
#define TICKET_TASKS(t) ((int)((t) >> 16 & 0xFFFF))
#define TICKET_NEXT(t) ((int)((t) & 0xFFFF))

static struct {
    pthread_mutex_t owner;             /* held for a job handed out, and by tg_set_threads */
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    pthread_t workers[MAX_THREADS];
    atomic_int n_threads;              /* workers + the caller; changed only by the owner */
    _Atomic uint64_t ticket;           /* the current job (TICKET) */
    atomic_int finished;               /* tasks of the current job done */
    atomic_bool quit;
    /* the current job, written before its ticket is published and read after a claim */
    void (*fn)(void *ctx, int task);
    void *ctx;
} pool = {
    .owner = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
    .n_threads = 1,
};

int tg_thread_count(void) { return atomic_load(&pool.n_threads); }

static void pause_briefly(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins until ready(arg) or SPIN_NS have passed; returns ready(arg). */
static bool spin_until(bool (*ready)(uint32_t arg), uint32_t arg)
{
    int64_t deadline = 0;
    for (int look = 0;; look++) {
        if (ready(arg))
            return true;
        if (look % LOOKS_PER_CLOCK == 0) {
            if (look > 0)
                sched_yield();
            int64_t t = clock_ns();
            if (deadline == 0)
                deadline = t + SPIN_NS;
            else if (t > deadline)
                return false;
        }
        pause_briefly();
    }
}

/* Claims and runs tasks of job `job` until none is left; returns how many it ran. A claim
 * fails once the job is another, so that a late thread never runs a task of a job it did not
 * see (the job cannot end, and its fn and ctx cannot change, while one of its tasks runs). */
static int run_claimed_tasks(uint32_t job)
{
    int ran = 0;
    uint64_t t = atomic_load(&pool.ticket);
    while (TICKET_JOB(t) == job && TICKET_NEXT(t) < TICKET_TASKS(t)) {
        if (!atomic_compare_exchange_weak(&pool.ticket, &t, t + 1))
            continue; /* t now holds the ticket as it is */
        pool.fn(pool.ctx, TICKET_NEXT(t));
        ran++;
        t = atomic_load(&pool.ticket);
    }
    return ran;
}

static bool job_other_than(uint32_t seen)
{
    return atomic_load(&pool.quit) || TICKET_JOB(atomic_load(&pool.ticket)) != seen;
}

/* Waits until a job other than `seen` is handed out (true) or the pool is told to quit. */
static bool wait_for_job(uint32_t seen)
{
    if (!spin_until(job_other_than, seen)) {
        pthread_mutex_lock(&pool.lock);
        while (TICKET_JOB(atomic_load(&pool.ticket)) == seen && !atomic_load(&pool.quit))
            pthread_cond_wait(&pool.wake, &pool.lock);
        pthread_mutex_unlock(&pool.lock);
    }
    return !atomic_load(&pool.quit);
}

/* Counts n tasks of the current job as done; whoever finishes the last one wakes the caller. */
static void finish_tasks(int n, int n_tasks)
{
    if (n > 0 && atomic_fetch_add(&pool.finished, n) + n == n_tasks) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_signal(&pool.done);
        pthread_mutex_unlock(&pool.lock);
    }
}

static void *worker_main(void *arg)
{
    uint32_t seen = (uint32_t)(uintptr_t)arg; /* jobs from before this worker started are not its own */
    while (wait_for_job(seen)) {
        uint64_t t = atomic_load(&pool.ticket);
        seen = TICKET_JOB(t);
        finish_tasks(run_claimed_tasks(seen), TICKET_TASKS(t));
    }
    return NULL;
}

static bool all_finished(uint32_t n_tasks) { return atomic_load(&pool.finished) == (int)n_tasks; }

/* Hands the job to the workers, claims tasks alongside them and waits for those they are
 * still running. The caller owns the pool, and the pool has workers. */
static void run_on_pool(int n_tasks, void (*fn)(void *ctx, int task), void *ctx)
{
    pool.fn = fn;
    pool.ctx = ctx;
    atomic_store(&pool.finished, 0);
    uint32_t job = TICKET_JOB(atomic_load(&pool.ticket)) + 1;
    pthread_mutex_lock(&pool.lock);
    atomic_store(&pool.ticket, TICKET(job, n_tasks, 0));
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    finish_tasks(run_claimed_tasks(job), n_tasks);
    if (spin_until(all_finished, (uint32_t)n_tasks))
        return;
    pthread_mutex_lock(&pool.lock);
    while (!all_finished((uint32_t)n_tasks))
        pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
}

void tg_parallel_for(int n_tasks, void (*fn)(void *ctx, int task), void *ctx)
{
    bool owner = n_tasks > 1 && n_tasks <= 0xFFFF && atomic_load(&pool.n_threads) > 1 &&
                 pthread_mutex_trylock(&pool.owner) == 0;
    /* read again as the owner: tg_set_threads may have stopped the workers in between */
    if (owner && atomic_load(&pool.n_threads) > 1)
        run_on_pool(n_tasks, fn, ctx);
    else
        for (int task = 0; task < n_tasks; task++)
            fn(ctx, task);
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
    uintptr_t current_job = TICKET_JOB(atomic_load(&pool.ticket));
    for (int i = 1; i < n; i++) {
        if (pthread_create(&pool.workers[i], NULL, worker_main, (void *)current_job) != 0)
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
