/* runs.h: a lab's independent runs shared out among threads (lab_adding, lab_copy): each
 * thread has a workspace of its own, takes the next run, does it, and prints one progress
 * line; a run's result does not depend on which thread did it, or when. */
#ifndef TAPEGRAD_EXAMPLES_RUNS_H
#define TAPEGRAD_EXAMPLES_RUNS_H

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "cli.h"

enum { LAB_MAX_THREADS = 16 };

/* A lab's runs: n_runs results of run_size bytes each, at runs, numbered 0 .. n_runs-1, and
 * what to do with them. The callbacks get the program's settings; run writes only its run. */
typedef struct lab_runs {
    void *runs;
    int n_runs;
    size_t run_size;
    const int *order;                        /* the n_runs numbers in the order to take them,
                                                or NULL: 0, 1, 2, ... */
    const void *settings;
    size_t workspace_size;                   /* the bytes of a thread's workspace */
    bool (*workspace_init)(void *workspace, const void *settings);   /* false: out of memory */
    void (*workspace_free)(void *workspace); /* after workspace_init, whatever it returned */
    bool (*run)(void *workspace, const void *settings, void *run);   /* false: error (printed) */
    void (*progress)(const void *settings, const void *run, int done, int n_runs,
                     double seconds);        /* prints the line of a run, the done-th of n_runs
                                                to finish, seconds after the start */
} lab_runs;

/* The threads' place in the runs. */
typedef struct run_queue {
    const lab_runs *runs;
    pthread_mutex_t lock;                    /* guards next, done and failed */
    int next, done;
    bool failed;
    double start;
} run_queue;

/* The number of the next run to do, or -1 when there is none left or a run has failed. */
static inline int take_run(run_queue *q)
{
    pthread_mutex_lock(&q->lock);
    int i = -1;
    if (!q->failed && q->next < q->runs->n_runs) {
        i = q->runs->order ? q->runs->order[q->next] : q->next;
        q->next++;
    }
    pthread_mutex_unlock(&q->lock);
    return i;
}

/* A thread's body: does runs until none are left; one progress line on stderr per run. */
static inline void *run_worker(void *arg)
{
    run_queue *q = arg;
    const lab_runs *l = q->runs;
    void *workspace = malloc(l->workspace_size);
    bool ok = workspace && l->workspace_init(workspace, l->settings);
    if (!ok)
        complain("out of memory");
    for (int i = ok ? take_run(q) : -1; i >= 0; i = take_run(q)) {
        void *run = (char *)l->runs + (size_t)i * l->run_size;
        ok = l->run(workspace, l->settings, run);
        if (!ok)
            break;
        pthread_mutex_lock(&q->lock);
        l->progress(l->settings, run, ++q->done, l->n_runs, now() - q->start);
        pthread_mutex_unlock(&q->lock);
    }
    if (workspace)
        l->workspace_free(workspace);
    free(workspace);
    if (!ok) {
        pthread_mutex_lock(&q->lock);
        q->failed = true;
        pthread_mutex_unlock(&q->lock);
    }
    return NULL;
}

/* Does every run on n_threads threads (1 .. LAB_MAX_THREADS), the caller's one of them; on
 * fewer when a thread cannot be started. False on error (printed). */
static inline bool do_runs(const lab_runs *runs, int n_threads)
{
    run_queue q = { .runs = runs, .start = now() };
    if (pthread_mutex_init(&q.lock, NULL) != 0) {
        complain("cannot make a mutex");
        return false;
    }
    pthread_t threads[LAB_MAX_THREADS];
    int started = 0;
    while (started < n_threads - 1 && pthread_create(&threads[started], NULL, run_worker, &q) == 0)
        started++;
    run_worker(&q);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    pthread_mutex_destroy(&q.lock);
    return !q.failed;
}

/* ---- summaries over seeds ------------------------------------------------------------------- */

static inline int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of values[0..n-1], n >= 1, which it leaves sorted (so values[0] is the least). */
static inline double median(double *values, int n)
{
    qsort(values, (size_t)n, sizeof *values, compare_doubles);
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

/* The loss curve of a run, for a chart: smoothed[i] = the mean loss of steps (i+1) every -
 * window + 1 .. (i+1) every (fewer at the start), for i < train_steps / every; NaN past the
 * n_losses steps the run did. */
static inline void smooth_losses(const float *losses, int n_losses, int train_steps, int window,
                                 int every, float *smoothed)
{
    for (int i = 0; i < train_steps / every; i++) {
        int end = (i + 1) * every, start = end > window ? end - window : 0;
        double sum = 0.0;
        for (int s = start; s < end && s < n_losses; s++)
            sum += losses[s];
        smoothed[i] = end <= n_losses ? (float)(sum / (end - start)) : NAN;
    }
}

#endif
