/* floor.c: the least time a training step built on tapegrad's kernels can take on this
 * machine, measured next to the step itself.
 *
 * For each config, the products a step cannot skip run back to back through the library's
 * kernels with nothing else: no tape, no tanh, no loss, no zeroing. Per time step t that is
 * W_x x_t and W_h h_{t-1} forward, then d(W_h) += d(pre_t) h_{t-1}^T, d(W_x) += d(pre_t) x_t^T
 * and, for t > 1, d(h_{t-1}) += W_h^T d(pre_t) backward, as tg_backward runs them. No step
 * built on these kernels can be faster, whatever its tape does. Timed in turns with it, so
 * that all see the same moments of a shared machine: the same products on one set of
 * operands reused at every time step (all in cache), the whole training step as bench times
 * it (through the public API), a loop of independent FMAs that touches no memory, and the
 * same products grouped as torch.nn.RNN groups them: W_x x for all T in one product, and
 * d(W_h), d(W_x) in one product each over all T (what a whole-sequence op would gain).
 *
 * It includes src/kernels.h, private to the library, and calls the fast kernels
 * (src/kernels_fast.c) that the ops call: a measuring tool, not an example of the API (bench.c
 * is that). */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kernels.h"

#define FMA_LOOP_REPS 500000L           /* about 1 ms at 100 GFLOP/s */
#define WARMUP_REPS 2
#define MIN_REPS 9
#define QUICK_MIN_REPS 3
#define MAX_REPS 100000
#define DEFAULT_SECONDS 15.0
#define QUICK_SECONDS 0.5

static const char USAGE[] =
    "usage: floor [--configs LIST] [--seconds S] [--quick]\n"
    "Times the matrix products one training step of the vanilla RNN cell cannot skip, run\n"
    "back to back through tapegrad's kernels with nothing else (no tape, no elementwise work):\n"
    "the floor under any step built on these kernels. In turns with them, so that all see the\n"
    "same moments of a shared machine: the same products on operands kept in cache, the whole\n"
    "training step as bench times it, a loop of independent FMAs that touches no memory, and\n"
    "the same products batched over the T steps as torch.nn.RNN runs them.\n"
    "  --configs LIST  comma-separated configs among S,M,L,XL (default: L,XL)\n"
    "                    S: I=3 H=2 B=1 T=5      M: I=1 H=32 B=32 T=50\n"
    "                    L: I=64 H=256 B=64 T=50 XL: I=256 H=1024 B=64 T=20\n"
    "  --seconds S     measure each config for about S seconds, 0.1 to 3600 (default 15),\n"
    "                  and at least 9 turns\n"
    "  --quick         about 0.5 s and at least 3 turns per config, for a smoke test\n"
    "  --help          print this and exit\n"
    "Prints medians over the turns, the fastest turn, and, turn by turn, the products' GFLOP/s\n"
    "as a share of the FMA loop's GFLOP/s measured right after them.\n"
    "Exit status: 0 when every measurement ran, 1 on a failure (out of memory, a step that\n"
    "failed), 2 on a bad command line.\n";

typedef struct options {
    bool run_config[N_CONFIGS];
    double seconds;
    int min_reps;
} options;

static options parse_args(int argc, char **argv)
{
    options opt = { .seconds = DEFAULT_SECONDS, .min_reps = MIN_REPS };
    const char *names[N_CONFIGS];
    for (int i = 0; i < N_CONFIGS; i++) {
        names[i] = CONFIGS[i].name;
        opt.run_config[i] = strcmp(names[i], "L") == 0 || strcmp(names[i], "XL") == 0;
    }
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            fputs(USAGE, stdout);
            exit(0);
        } else if (strcmp(flag, "--quick") == 0) {
            opt.seconds = QUICK_SECONDS;
            opt.min_reps = QUICK_MIN_REPS;
        } else if (strcmp(flag, "--configs") == 0) {
            if (!value)
                usage_error("floor", "%s needs a value", flag);
            if (!parse_names(value, names, N_CONFIGS, opt.run_config))
                usage_error("floor", "unknown entry in the list '%s'", value);
            i++;
        } else if (strcmp(flag, "--seconds") == 0) {
            char *end = NULL;
            opt.seconds = value ? strtod(value, &end) : NAN;
            if (!value || end == value || *end != '\0' || !(opt.seconds >= 0.1 && opt.seconds <= 3600.0))
                usage_error("floor", "--seconds needs a number from 0.1 to 3600, got '%s'", value ? value : "");
            i++;
        } else {
            usage_error("floor", "unknown flag '%s'", flag);
        }
    }
    return opt;
}

/* ---- the products alone ---------------------------------------------------------------------- */

/* The operands of one step's products. Per time step the tape has its own x_t, h_t, pre_t
 * and their grads, so each product meets memory it has not touched since the forward pass;
 * with one buffer of each (buffers = 1) every product finds its operands in cache. */
typedef struct products {
    const config *c;
    int buffers;                         /* T, or 1 */
    float *W_h, *W_h_transposed, *dW_h;  /* H x H each */
    float *W_x, *dW_x;                   /* H x I each */
    float *x;                            /* buffers of I x B */
    float *h;                            /* buffers + 1 of H x B: h_{t-1} for each t */
    float *pre, *dpre, *dh;              /* buffers of H x B each */
} products;

/* n floats, every one set to a value in [-1, 1), or NULL when out of memory. */
static float *filled(size_t n, tg_rng *rng)
{
    float *v = malloc(n * sizeof *v);
    if (v)
        fill_uniform(v, n, -1.0f, 1.0f, rng);
    return v;
}

static void products_free(products *p)
{
    float *arrays[] = { p->W_h, p->W_h_transposed, p->dW_h, p->W_x, p->dW_x,
                        p->x, p->h, p->pre, p->dpre, p->dh };
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
        free(arrays[i]);
}

/* False when out of memory (products_free cleans up either way). */
static bool products_init(products *p, const config *c, int buffers)
{
    tg_rng rng = tg_rng_new(7);
    size_t H = (size_t)c->hidden, I = (size_t)c->input, B = (size_t)c->batch, n = (size_t)buffers;
    *p = (products){ .c = c, .buffers = buffers };
    p->W_h = filled(H * H, &rng);
    p->W_h_transposed = filled(H * H, &rng);
    p->dW_h = filled(H * H, &rng);
    p->W_x = filled(H * I, &rng);
    p->dW_x = filled(H * I, &rng);
    p->x = filled(n * I * B, &rng);
    p->h = filled((n + 1) * H * B, &rng);
    p->pre = filled(n * H * B, &rng);
    p->dpre = filled(n * H * B, &rng);
    p->dh = filled(n * H * B, &rng);
    return p->W_h && p->W_h_transposed && p->dW_h && p->W_x && p->dW_x && p->x && p->h && p->pre &&
           p->dpre && p->dh;
}

/* Seconds for one step's products: the forward over t = 1..T, then the backward from T down. */
static double run_products(products *p)
{
    const config *c = p->c;
    int H = c->hidden, I = c->input, B = c->batch;
    size_t hb = (size_t)H * (size_t)B, ib = (size_t)I * (size_t)B;
    double start = now();
    for (int t = 0; t < c->steps; t++) {
        size_t k = (size_t)(t % p->buffers);
        float *pre = p->pre + k * hb, *h_prev = p->h + (p->buffers > 1 ? k : 0) * hb;
        tg_kernel_matmul(H, B, I, p->W_x, p->x + k * ib, pre, 0);
        tg_kernel_matmul(H, B, H, p->W_h, h_prev, pre, 1);
    }
    for (int t = c->steps - 1; t >= 0; t--) {
        size_t k = (size_t)(t % p->buffers);
        const float *dpre = p->dpre + k * hb, *h_prev = p->h + (p->buffers > 1 ? k : 0) * hb;
        tg_kernel_matmul_nt(H, H, B, dpre, h_prev, p->dW_h);
        tg_kernel_matmul_nt(H, I, B, dpre, p->x + k * ib, p->dW_x);
        if (t > 0)
            tg_kernel_matmul(H, B, H, p->W_h_transposed, dpre, p->dh + k * hb, 1);
    }
    return now() - start;
}

/* Seconds for the same products grouped as torch.nn.RNN runs them: W_x x_t for every t in one
 * H x I x (T B) product, then W_h h_{t-1} per step; backward d(h_{t-1}) per step, then d(W_h)
 * and d(W_x) in one product each with k = T B. p's T buffers serve as the T B-wide operands
 * (I x T B for x, H x T B for h, pre and d(pre)): the same flops, on memory as cold. */
static double run_batched(products *p)
{
    const config *c = p->c;
    int H = c->hidden, I = c->input, B = c->batch, TB = c->steps * c->batch;
    size_t hb = (size_t)H * (size_t)B;
    double start = now();
    tg_kernel_matmul(H, TB, I, p->W_x, p->x, p->pre, 0);
    for (int t = 0; t < c->steps; t++)
        tg_kernel_matmul(H, B, H, p->W_h, p->h + t * hb, p->pre + t * hb, 1);
    for (int t = c->steps - 1; t > 0; t--)
        tg_kernel_matmul(H, B, H, p->W_h_transposed, p->dpre + t * hb, p->dh + t * hb, 1);
    tg_kernel_matmul_nt(H, H, TB, p->dpre, p->h, p->dW_h);
    tg_kernel_matmul_nt(H, I, TB, p->dpre, p->x, p->dW_x);
    return now() - start;
}

/* ---- turns and the report -------------------------------------------------------------------- */

/* What one config measured, turn by turn (seconds; GFLOP/s for the FMA loop). */
typedef struct turns {
    int n;
    double *apart, *hot, *batched, *step, *fma;
    double *share; /* the products' (apart) GFLOP/s / the FMA loop's */
} turns;

static void turns_free(turns *r)
{
    free(r->apart);
    free(r->hot);
    free(r->batched);
    free(r->step);
    free(r->fma);
    free(r->share);
}

/* The value below which a fraction q of v[0..n-1] lies (v sorted). */
static double quantile(const double *v, int n, double q)
{
    int i = (int)(q * (n - 1) + 0.5);
    return v[i];
}

/* Takes turns until opt's time and count are both reached. Returns 0, or -1 on a failure
 * (printed). */
static int measure_config(const config *c, const options *opt, turns *r)
{
    products apart, hot;
    rnn_bench step;
    bool ready = products_init(&apart, c, c->steps);
    ready = products_init(&hot, c, 1) && ready;
    ready = rnn_bench_init(&step, c, "floor") && ready;
    *r = (turns){ 0 };
    r->apart = malloc(MAX_REPS * sizeof *r->apart);
    r->hot = malloc(MAX_REPS * sizeof *r->hot);
    r->batched = malloc(MAX_REPS * sizeof *r->batched);
    r->step = malloc(MAX_REPS * sizeof *r->step);
    r->fma = malloc(MAX_REPS * sizeof *r->fma);
    r->share = malloc(MAX_REPS * sizeof *r->share);
    int status = 0;
    if (!ready || !r->apart || !r->hot || !r->batched || !r->step || !r->fma || !r->share) {
        fprintf(stderr, "floor: config %s: out of memory\n", c->name);
        status = -1;
    }
    double flops = step_needed_flops(c), start = now();
    for (int turn = -WARMUP_REPS; status == 0 && turn < MAX_REPS; turn++) {
        if (turn >= opt->min_reps && now() - start >= opt->seconds)
            break;
        double apart_s = run_products(&apart), hot_s = run_products(&hot);
        double batched_s = run_batched(&apart), step_s;
        if (train_step(&step, &step_s) != 0) {
            status = -1;
            break;
        }
        double fma = fma_loop_gflops(FMA_LOOP_REPS);
        if (turn == -1)
            start = now();
        if (turn < 0)
            continue;
        r->apart[r->n] = apart_s;
        r->hot[r->n] = hot_s;
        r->batched[r->n] = batched_s;
        r->step[r->n] = step_s;
        r->fma[r->n] = fma;
        r->share[r->n] = flops / apart_s / 1e9 / fma;
        r->n++;
    }
    products_free(&apart);
    products_free(&hot);
    rnn_bench_free(&step);
    return status;
}

static void print_header(void)
{
    printf("cfg | products alone  fastest  GFLOP/s | in cache  | batched   | whole step  fastest |"
           " step /    | FMA loop | products / FMA loop\n"
           "    |      median us       us   median | median us | median us |  median us       us |"
           " products  |  GFLOP/s |   p10  median   p90\n");
}

/* One line of the table; sorts r's arrays. */
static void print_config(const config *c, turns *r)
{
    double flops = step_needed_flops(c);
    double apart = median_of(r->apart, r->n), hot = median_of(r->hot, r->n);
    double batched = median_of(r->batched, r->n);
    double step = median_of(r->step, r->n), fma = median_of(r->fma, r->n);
    qsort(r->share, (size_t)r->n, sizeof *r->share, compare_doubles);
    printf("%-3s | %14.1f %8.1f %8.1f | %9.1f | %9.1f | %10.1f %8.1f | %8.2fx | %8.1f | %5.1f%% %5.1f%% %5.1f%%",
           c->name, 1e6 * apart, 1e6 * r->apart[0], flops / apart / 1e9, 1e6 * hot, 1e6 * batched, 1e6 * step,
           1e6 * r->step[0], step / apart, fma, 100.0 * quantile(r->share, r->n, 0.1),
           100.0 * quantile(r->share, r->n, 0.5), 100.0 * quantile(r->share, r->n, 0.9));
    if (this_host_kind() == HOST_AVX2 && c->goal_avx2 == 0)
        printf("  goal <= 1.10x: %s", step / apart <= 1.10 ? "met" : "NOT MET");
    printf("\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    options opt = parse_args(argc, argv);
    printf("floor: the products one training step cannot skip (forward, weight gradients, d(h_t-1)\n"
           "for t > 1), through tapegrad's kernels with nothing else, in turns with the same products\n"
           "in cache, the whole step (bench's) and an FMA loop; one thread, about %.1f s per config\n",
           opt.seconds);
    printf("isa: tapegrad's kernels: %s (chosen at run time); the FMA loop: 12 independent\n"
           "     %d-float (%s) chains\n", tg_kernel_path_name(tg_kernel_path()), fma_loop_floats(),
           fma_loop_isa());
    print_header();
    for (int i = 0; i < N_CONFIGS; i++) {
        if (!opt.run_config[i])
            continue;
        turns r;
        int status = measure_config(&CONFIGS[i], &opt, &r);
        if (status == 0)
            print_config(&CONFIGS[i], &r);
        turns_free(&r);
        if (status != 0)
            return 1;
    }
    printf("(medians over the turns; GFLOP/s count the products' flops; 'in cache': one set of\n"
           "operands reused at every time step; 'batched': the same products, out of cache, with\n"
           "W_x x, d(W_h) and d(W_x) each one product over all T, as torch.nn.RNN runs them; the\n"
           "last column, turn by turn, is the products' GFLOP/s over the FMA loop's, measured right\n"
           "after them)\n");
    if (this_host_kind() == HOST_AVX2)
        printf("goal on this AVX2-only host (issue 17): L and XL's step / products at most 1.10x\n");
    else
        printf("goal on an AVX2-only host (issue 17): L and XL's step / products at most 1.10x; this\n"
               "host is %s: its L and XL goals are ratios against nn.RNN (make bench)\n",
               host_kind_name(this_host_kind()));
    return 0;
}
