/* threads.h: private to the library. A small pool of worker threads that the kernels use to
 * split large matrix products (opt-in through tg_set_threads). */
#ifndef TAPEGRAD_THREADS_H
#define TAPEGRAD_THREADS_H

/* The number of threads work is split over, the caller's included (1 unless tg_set_threads).
 * A hint for sizing tasks: another thread may change it at any time. */
int tg_thread_count(void);

/* Run fn(ctx, task) for task = 0 .. n_tasks - 1, spread over the pool; returns when all are
 * done. Each task is claimed by whichever thread is free first (the caller too), so which
 * thread runs a task must not change what it computes. Safe to call from several threads at
 * once: the pool serves one caller at a time, and a caller that finds it busy (or being
 * resized by tg_set_threads) runs every task itself. */
void tg_parallel_for(int n_tasks, void (*fn)(void *ctx, int task), void *ctx);

#endif
