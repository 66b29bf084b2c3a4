/* common.h: what the two benchmark programs share (bench.c against PyTorch, floor.c against
 * this machine's limits): the configs, the clock, the training step as a user writes it, the
 * flops a step cannot skip, and this core's multiply-add peak. */
#ifndef TAPEGRAD_BENCH_COMMON_H
#define TAPEGRAD_BENCH_COMMON_H

#include <stdbool.h>

#include "tapegrad.h"

typedef struct config {
    const char *name;
    int input, hidden, batch, steps;   /* I, H, B, T */
    double goal_avx512;                /* wanted on a host with AVX-512: nn.RNN's time / ours */
    double goal_avx2;                  /* the same on an AVX2-only host; 0: no ratio goal there
                                        * (L and XL: within 1.1x of make bench-floor instead) */
    double thread_goal;                /* wanted: one thread's time / two threads', or 0 */
} config;

/* The goals differ by host kind (issue 17): the widest FMA this CPU has decides. */
typedef enum host_kind { HOST_AVX512, HOST_AVX2, HOST_OTHER } host_kind;
host_kind this_host_kind(void);
/* "AVX-512", "AVX2-only" or "no AVX2", for the goal lines. */
const char *host_kind_name(host_kind kind);
/* c's ratio goal against nn.RNN on this host, or 0 when it has none here. */
double config_goal(const config *c);
/* The share of the FMA loop's peak that a 1024 x 1024 product should reach on this host
 * (80% with AVX-512, 85% on AVX2 only; 0: no goal). */
double matmul_goal_percent(void);

#define N_CONFIGS 4
extern const config CONFIGS[N_CONFIGS]; /* S, M, L, XL */

/* Seconds on a monotonic clock. */
double now(void);
/* qsort's comparison for doubles, ascending. */
int compare_doubles(const void *a, const void *b);
/* Sorts v[0..n-1] (n >= 1) and returns its median. */
double median_of(double *v, int n);
/* v[0..n-1] uniform in [lo, hi). */
void fill_uniform(float *v, size_t n, float lo, float hi, tg_rng *rng);
/* Prints "PROGRAM: " fmt (with what) " (see PROGRAM --help)" and exits with status 2. */
void usage_error(const char *program, const char *fmt, const char *what);

/* Marks in chosen[0..n-1] the entries of names[] that a comma-separated list names ("none":
 * no entry); false when the list names something else. */
bool parse_names(const char *text, const char *const *names, int n, bool *chosen);

/* One training step of the vanilla cell: its cell, tape and fixed random data. */
typedef struct rnn_bench {
    const config *c;
    const char *program;               /* names the program in error messages */
    tg_rnn_cell *cell;
    tg_tensor *params[3];              /* W_h, W_x, b */
    tg_tape *tape;
    float *x;                          /* T inputs, each I x B, one after another */
    float *y;                          /* T targets, each H x B */
} rnn_bench;

/* False when out of memory; rnn_bench_free cleans up either way. */
bool rnn_bench_init(rnn_bench *b, const config *c, const char *program);
void rnn_bench_free(rnn_bench *b);
/* One whole step (ctx: an rnn_bench): reset, forward, loss, zero grads, backward, SGD. Sets
 * *seconds to its time and returns 0, or prints what failed and returns -1. */
int train_step(void *ctx, double *seconds);

/* The flops a step cannot skip: the forward products, the weight gradients, and d(h_{t-1})
 * for t > 1 (nobody wants d(x_t) or d(h_0); neither PyTorch nor we compute them). */
double step_needed_flops(const config *c);

/* One run of reps x 12 independent FMAs at the widest vector width this CPU has (16 floats
 * with AVX-512, 8 with AVX2 and FMA), no memory touched, in GFLOP/s; NAN where it has
 * neither. About 2 ms per million reps at 8 floats on a 100 GFLOP/s core. */
double fma_loop_gflops(long reps);
/* The floats in each of that loop's vectors (16, 8, or 0 where it cannot run), and the
 * instruction set it takes ("AVX-512", "AVX2" or "none"). */
int fma_loop_floats(void);
const char *fma_loop_isa(void);
/* The best of 20 such runs of 2 million reps: this core's peak, which no product can beat. */
double fma_peak_gflops(void);

/* How far apart the cores that two threads run on are: the mean time, in ns, for one cache
 * line to go from one thread to another and back (two threads taking turns to write it, each
 * spinning until the other has), over `trips` round trips after a warm-up; NAN when the
 * second thread cannot start. 70 to 140 ns on this project's hosts when the two cores share
 * a last-level cache, several hundred when they do not (docs/performance.md, Where the two
 * threads run); up to about 10 ms in all for 20,000 trips. */
double core_round_trip_ns(int trips);

#endif
