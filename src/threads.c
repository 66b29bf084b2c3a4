/* threads.c: the worker pool behind tg_set_threads. A job's tasks are dealt out in equal
 * blocks, one per thread (the caller included), each in a word on a cache line of its own:
 * a thread claims its own block's tasks one at a time, then takes what is left of the others'
 * from their ends, so a worker that the system has not scheduled yet costs nothing but its
 * share of the help, while on a quiet host each thread keeps to its own block (the same rows
 * of a result from job to job, and no line moving between cores for a claim). Between jobs a
 * worker spins for a while (waking a sleeping thread costs a good share of the time between
 * two of a training step's products: docs/performance.md, Threads), then sleeps on a
 * condition variable. Nothing is allocated per job, so a training step stays allocation-free
 * with threads on. The pool has one owner at a time (the `owner` mutex): a caller that finds
 * it taken by another thread's product, or by tg_set_threads, runs its tasks on its own
 * thread instead of waiting. Built with TG_SINGLE_THREAD (the WebAssembly build, which has no
 * threads) it is no pool: every task runs on the caller's thread. */
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
/* Looks between two readings of the clock while spinning. */
#define LOOKS_PER_CLOCK 64
/* Once it has spun this long, a spinning thread also yields its core at each reading of the
 * clock to any thread waiting for it (on a host with more runnable threads than cores, the
 * one it waits for may be that thread). Not sooner: most gaps between a step's jobs are
 * shorter, and a yield is a system call (about 1 µs in a virtual machine) that the next job
 * may arrive during (docs/performance.md, Threads). */
#define YIELD_AFTER_NS 20000

/* A thread's share of a job, in one word: the job's number, and the first and the end of
 * the tasks of its block not yet claimed, so that a claim is one compare-and-swap that cannot
 * take a task of another job. */
#define SHARE(job, first, end) ((uint64_t)(job) << 32 | (uint64_t)(first) << 16 | (uint64_t)(end))
#define SHARE_JOB(s) ((uint32_t)((s) >> 32))
#define SHARE_FIRST(s) ((int)((s) >> 16 & 0xFFFF))
#define SHARE_END(s) ((int)((s) & 0xFFFF))

/* Each thread's share, with the job it belongs to, on a cache line of its own: the thread
 * claims from it without moving a line between cores, and a thread that has run its own
 * share takes what is left of the others' from their ends. */
typedef struct share {
    _Alignas(64) _Atomic uint64_t word;
    /* the job, written before the word is published and read after a claim */
    void (*fn)(void *ctx, int task);
    void *ctx;
    int n_tasks;
} share;

static struct {
    pthread_mutex_t owner;             /* held for a job handed out, and by tg_set_threads */
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    pthread_t workers[MAX_THREADS];
    atomic_int n_threads;              /* workers + the caller; changed only by the owner */
    uint32_t job;                      /* the number of the latest job (the owner's) */
    atomic_int finished;               /* tasks of the current job done */
    atomic_bool quit;
    share shares[MAX_THREADS];         /* the caller's is shares[0], worker i's shares[i] */
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

/* What a spinning thread waits for: a job other than `job` in shares[thread], or the
 * tasks of the current job all finished. */
typedef struct awaited {
    int thread;
    uint32_t job;
    int n_tasks;
} awaited;

/* Spins until ready(a) or SPIN_NS have passed; returns ready(a). */
static bool spin_until(bool (*ready)(const awaited *a), const awaited *a)
{
    int64_t start = 0;
    for (int look = 0;; look++) {
        if (ready(a))
            return true;
        if (look % LOOKS_PER_CLOCK == 0) {
            int64_t t = clock_ns();
            if (look == 0)
                start = t;
            else if (t - start > SPIN_NS)
                return false;
            else if (t - start > YIELD_AFTER_NS)
                sched_yield();
        }
        pause_briefly();
    }
}

/* Claims one task of job `job` from share s: from its first end (the share's own thread) or
 * from its last (another thread); -1 when none is left, or the share holds another job. */
static int claim(share *s, uint32_t job, bool from_last)
{
    uint64_t w = atomic_load(&s->word);
    while (SHARE_JOB(w) == job && SHARE_FIRST(w) < SHARE_END(w)) {
        uint64_t next = from_last ? w - 1 : w + (1u << 16);
        if (atomic_compare_exchange_weak(&s->word, &w, next))
            return from_last ? SHARE_END(w) - 1 : SHARE_FIRST(w);
    }
    return -1;
}

/* Runs the tasks of job `job` that `thread` can claim, its own share first, then what the
 * others have left, and counts them as done; whoever finishes the last one wakes the caller.
 * A claim fails once a share holds another job, so a late thread never runs a task of a job
 * it did not see, and a share's fn, ctx and n_tasks are read only after a claim from it (the
 * job cannot end, and they cannot change, while one of its tasks is unfinished). */
static void run_tasks(int thread, uint32_t job)
{
    int n_threads = atomic_load(&pool.n_threads), ran = 0, n_tasks = 0;
    for (int i = 0; i < n_threads; i++) {
        share *s = &pool.shares[(thread + i) % n_threads];
        for (int task; (task = claim(s, job, i > 0)) >= 0; ran++) {
            n_tasks = s->n_tasks;
            s->fn(s->ctx, task);
        }
    }
    if (ran > 0 && atomic_fetch_add(&pool.finished, ran) + ran == n_tasks) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_signal(&pool.done);
        pthread_mutex_unlock(&pool.lock);
    }
}

static bool job_other_than(const awaited *a)
{
    return atomic_load(&pool.quit) || SHARE_JOB(atomic_load(&pool.shares[a->thread].word)) != a->job;
}

/* Waits until shares[thread] holds a job other than `seen` (true) or the pool is told to
 * quit. */
static bool wait_for_job(int thread, uint32_t seen)
{
    awaited a = { thread, seen, 0 };
    if (!spin_until(job_other_than, &a)) {
        pthread_mutex_lock(&pool.lock);
        while (!job_other_than(&a))
            pthread_cond_wait(&pool.wake, &pool.lock);
        pthread_mutex_unlock(&pool.lock);
    }
    return !atomic_load(&pool.quit);
}

static void *worker_main(void *arg)
{
    int thread = (int)(intptr_t)arg;
    /* jobs from before this worker started are not its own */
    uint32_t seen = SHARE_JOB(atomic_load(&pool.shares[thread].word));
    while (wait_for_job(thread, seen)) {
        seen = SHARE_JOB(atomic_load(&pool.shares[thread].word));
        run_tasks(thread, seen);
    }
    return NULL;
}

static bool all_finished(const awaited *a) { return atomic_load(&pool.finished) == a->n_tasks; }

/* Hands each thread its share of the job (an equal block of the tasks, in order), runs the
 * caller's own and what the others have left, and waits for those they are still running.
 * The caller owns the pool, and the pool has workers. */
static void run_on_pool(int n_tasks, void (*fn)(void *ctx, int task), void *ctx)
{
    int n_threads = atomic_load(&pool.n_threads);
    uint32_t job = ++pool.job;
    atomic_store(&pool.finished, 0);
    for (int i = n_threads - 1; i >= 0; i--) {
        share *s = &pool.shares[i];
        s->fn = fn, s->ctx = ctx, s->n_tasks = n_tasks;
        atomic_store(&s->word, SHARE(job, (long)n_tasks * i / n_threads, (long)n_tasks * (i + 1) / n_threads));
    }
    pthread_mutex_lock(&pool.lock);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    run_tasks(0, job);
    awaited a = { 0, job, n_tasks };
    if (spin_until(all_finished, &a))
        return;
    pthread_mutex_lock(&pool.lock);
    while (!all_finished(&a))
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
    for (int i = 1; i < n; i++) {
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
