/* common.c: the configs, the clock, the training step, the FMA peak and the cores' round trip
 * that bench.c and floor.c measure (see common.h). Built from include/ and the library alone. */
#define _POSIX_C_SOURCE 200809L

#include "common.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LEARNING_RATE 0.01f
#define DATA_SEED 42u

const config CONFIGS[N_CONFIGS] = {
    { "S", 3, 2, 1, 5, 200.0, 200.0, 0.0 },
    { "M", 1, 32, 32, 50, 10.0, 10.0, 0.0 },
    { "L", 64, 256, 64, 50, 3.0, 0.0, 1.4 },
    { "XL", 256, 1024, 64, 20, 2.0, 0.0, 1.6 },
};

host_kind this_host_kind(void)
{
    int floats = fma_loop_floats();
    return floats == 16 ? HOST_AVX512 : floats == 8 ? HOST_AVX2 : HOST_OTHER;
}

const char *host_kind_name(host_kind kind)
{
    return kind == HOST_AVX512 ? "AVX-512" : kind == HOST_AVX2 ? "AVX2-only" : "no AVX2";
}

double config_goal(const config *c)
{
    host_kind kind = this_host_kind();
    return kind == HOST_AVX512 ? c->goal_avx512 : kind == HOST_AVX2 ? c->goal_avx2 : 0.0;
}

double matmul_goal_percent(void)
{
    host_kind kind = this_host_kind();
    return kind == HOST_AVX512 ? 80.0 : kind == HOST_AVX2 ? 85.0 : 0.0;
}

double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void fill_uniform(float *v, size_t n, float lo, float hi, tg_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        v[i] = lo + (hi - lo) * tg_rng_uniform(rng);
}

void usage_error(const char *program, const char *fmt, const char *what)
{
    fprintf(stderr, "%s: ", program);
    fprintf(stderr, fmt, what);
    fprintf(stderr, " (see %s --help)\n", program);
    exit(2);
}

bool parse_names(const char *text, const char *const *names, int n, bool *chosen)
{
    for (int i = 0; i < n; i++)
        chosen[i] = false;
    if (strcmp(text, "none") == 0)
        return true;
    const char *item = text;
    for (;;) {
        size_t len = strcspn(item, ",");
        int found = -1;
        for (int i = 0; i < n; i++)
            if (strlen(names[i]) == len && strncmp(item, names[i], len) == 0)
                found = i;
        if (found < 0)
            return false;
        chosen[found] = true;
        if (item[len] == '\0')
            return true;
        item += len + 1;
    }
}

/* ---- the training step ---------------------------------------------------------------------- */

/* Makes the cell, the tape and fixed random data (inputs in [-1, 1), targets in [-0.9, 0.9),
 * inside tanh's range). */
bool rnn_bench_init(rnn_bench *b, const config *c, const char *program)
{
    tg_rng rng = tg_rng_new(DATA_SEED);
    size_t x_count = (size_t)c->steps * (size_t)c->input * (size_t)c->batch;
    size_t y_count = (size_t)c->steps * (size_t)c->hidden * (size_t)c->batch;
    *b = (rnn_bench){ .c = c, .program = program };
    b->cell = tg_rnn_cell_new(c->input, c->hidden, tg_rng_next(&rng));
    b->tape = tg_tape_new();
    b->x = malloc(x_count * sizeof *b->x);
    b->y = malloc(y_count * sizeof *b->y);
    if (!b->cell || !b->tape || !b->x || !b->y)
        return false;
    b->params[0] = b->cell->W_h;
    b->params[1] = b->cell->W_x;
    b->params[2] = b->cell->b;
    fill_uniform(b->x, x_count, -1.0f, 1.0f, &rng);
    fill_uniform(b->y, y_count, -0.9f, 0.9f, &rng);
    return true;
}

void rnn_bench_free(rnn_bench *b)
{
    tg_rnn_cell_free(b->cell);
    tg_tape_free(b->tape);
    free(b->x);
    free(b->y);
}

/* Timed from the reset to the end of the SGD update. */
int train_step(void *ctx, double *seconds)
{
    rnn_bench *b = ctx;
    const config *c = b->c;
    tg_tape *tape = b->tape;
    size_t x_stride = (size_t)c->input * (size_t)c->batch;
    size_t y_stride = (size_t)c->hidden * (size_t)c->batch;
    double start = now();

    tg_tape_reset(tape);
    tg_tensor *h = tg_constant(tape, c->hidden, c->batch, NULL);          /* h_0 = 0: H x B */
    tg_tensor *total = NULL;
    for (int t = 0; t < c->steps; t++) {
        tg_tensor *x = tg_constant_view(tape, c->input, c->batch, b->x + t * x_stride); /* I x B */
        h = tg_rnn_cell_forward(tape, b->cell, x, h);                           /* H x B */
        tg_tensor *target = tg_constant_view(tape, c->hidden, c->batch, b->y + t * y_stride);
        tg_tensor *mse = tg_mse(tape, h, target);                               /* 1 x 1 */
        total = total ? tg_add(tape, total, mse) : mse;
    }
    tg_tensor *loss = tg_scale(tape, total, 1.0f / (float)c->steps);
    tg_zero_grad(b->params, 3, NULL);
    if (tg_backward(tape, loss) != 0) {
        fprintf(stderr, "%s: config %s: %s\n", b->program, c->name, tg_tape_error(tape));
        return -1;
    }
    tg_error err;
    if (tg_sgd_step(b->params, 3, LEARNING_RATE, &err) != 0) {
        fprintf(stderr, "%s: config %s: %s\n", b->program, c->name, err.message);
        return -1;
    }
    *seconds = now() - start;
    return 0;
}

double step_needed_flops(const config *c)
{
    double I = c->input, H = c->hidden, B = c->batch, T = c->steps;
    return 4.0 * T * B * H * (H + I) + 2.0 * (T - 1.0) * B * H * H;
}

/* ---- this core's peak: what no product can beat ------------------------------------------ */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* reps x 12 independent multiply-adds of 8-float (AVX2) or 16-float (AVX-512) vectors, as
 * many as the FMA units can run at once; the starting values come through a volatile so that
 * the compiler cannot merge the chains. */
static volatile float chain_start[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

__attribute__((target("avx2,fma")))
static float fma_chains_8(long reps)
{
    __m256 acc[12];
    for (int i = 0; i < 12; i++)
        acc[i] = _mm256_set1_ps(chain_start[i]);
    const __m256 scale = _mm256_set1_ps(0.999999f), shift = _mm256_set1_ps(1e-7f);
    for (long r = 0; r < reps; r++)
        for (int i = 0; i < 12; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], scale, shift);
    float sum = 0.0f, lanes[8];
    for (int i = 0; i < 12; i++) {
        _mm256_storeu_ps(lanes, acc[i]);
        sum += lanes[0];
    }
    return sum;
}

__attribute__((target("avx512f")))
static float fma_chains_16(long reps)
{
    __m512 acc[12];
    for (int i = 0; i < 12; i++)
        acc[i] = _mm512_set1_ps(chain_start[i]);
    const __m512 scale = _mm512_set1_ps(0.999999f), shift = _mm512_set1_ps(1e-7f);
    for (long r = 0; r < reps; r++)
        for (int i = 0; i < 12; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], scale, shift);
    float sum = 0.0f, lanes[16];
    for (int i = 0; i < 12; i++) {
        _mm512_storeu_ps(lanes, acc[i]);
        sum += lanes[0];
    }
    return sum;
}

int fma_loop_floats(void)
{
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return 0;
    return __builtin_cpu_supports("avx512f") ? 16 : 8;
}

double fma_loop_gflops(long reps)
{
    int floats = fma_loop_floats();
    if (floats == 0)
        return NAN;
    volatile float sink = 0.0f;
    double start = now();
    sink += floats == 16 ? fma_chains_16(reps) : fma_chains_8(reps);
    (void)sink;
    return (double)reps * 12.0 * 2.0 * floats / (now() - start) / 1e9; /* 2 flops per lane per FMA */
}
#else
int fma_loop_floats(void) { return 0; }

double fma_loop_gflops(long reps)
{
    (void)reps;
    return NAN;
}
#endif

const char *fma_loop_isa(void)
{
    int floats = fma_loop_floats();
    return floats == 16 ? "AVX-512" : floats == 8 ? "AVX2" : "none";
}

double fma_peak_gflops(void)
{
    double best = NAN;
    for (int run = 0; run < 20; run++) {
        double gflops = fma_loop_gflops(2000000);
        best = isnan(best) || gflops > best ? gflops : best;
    }
    return best;
}

/* ---- how far apart two threads' cores are ------------------------------------------------ */

/* Round trips before the clock starts: the answering thread starting, the line's first moves. */
enum { WARM_TRIPS = 1000 };

/* The cache line the two threads hand back and forth: `turn` is odd when the answering
 * thread is to write it, even when the asking one is. */
typedef struct ping_pong {
    _Alignas(64) atomic_int turn;
    int trips;
} ping_pong;

/* Waits until *turn is `want`, yielding the core now and then in case the other thread waits
 * for it (both on one core). */
static void wait_for_turn(atomic_int *turn, int want)
{
    for (long look = 1; atomic_load_explicit(turn, memory_order_acquire) != want; look++)
        if (look % 4096 == 0)
            sched_yield();
}

static void *answer_trips(void *arg)
{
    ping_pong *pp = arg;
    for (int i = 0; i < pp->trips; i++) {
        wait_for_turn(&pp->turn, 2 * i + 1);
        atomic_store_explicit(&pp->turn, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

double core_round_trip_ns(int trips)
{
    ping_pong pp = { .trips = WARM_TRIPS + trips };
    pthread_t answerer;
    if (trips < 1 || pthread_create(&answerer, NULL, answer_trips, &pp) != 0)
        return NAN;
    double start = 0.0;
    for (int i = 0; i < pp.trips; i++) {
        if (i == WARM_TRIPS)
            start = now();
        atomic_store_explicit(&pp.turn, 2 * i + 1, memory_order_release);
        wait_for_turn(&pp.turn, 2 * i + 2);
    }
    double seconds = now() - start;
    pthread_join(answerer, NULL);
    return seconds / trips * 1e9;
}
