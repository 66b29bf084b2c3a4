/* lab_explosion.c: exploding gradients in a tanh RNN whose W_h = 1.5 Q, and what norm
 * clipping and elementwise (value) clipping do about them.
 *
 * With every singular value of W_h at 1.5, BPTT can grow the gradient by up to 1.5 per step
 * back, and the first gradients of training come out about ten times longer than with
 * PyTorch's init: a norm of tens (see the table) against 2 to 3, with larger spikes later.
 * One plain SGD step along such a gradient moves the weights by several units: it throws
 * the cell into saturation, nearly every hidden unit at +-1, and from there the readout's
 * loss is so steep that the same learning rate overshoots on every step and the loss grows
 * geometrically until it overflows. Three arms train the same starts on the same batches:
 *
 *   no clipping       the step is lr * g, however long g is
 *   norm clipping     g is scaled down to length 1 when longer: the direction is kept, and no
 *                     step is longer than lr
 *   value clipping    each value of g is cut to [-5, 5]: every value is bounded, but the step
 *                     can still be lr * 5 * sqrt(#parameters) long, and it is bent off course
 *
 * Expect every unclipped run to diverge and the norm-clipped runs to train quietly. Value
 * clipping stops the overflow but not the overshooting: its runs can end up bouncing between
 * two bad readouts with a loss far above where they started. The task is the adding problem
 * at T = 50, which no arm will learn in this budget (see lab_adding): this lab is about
 * staying stable, not about learning. */
#define _POSIX_C_SOURCE 200809L   /* for stat() (is_directory in cli.h), to check --out */

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "model.h"
#include "tapegrad.h"

enum {
    INPUT_SIZE = 2,           /* value, marker */
    HIDDEN = 16,
    BATCH = 16,
    STEPS = 50,               /* T */
    TRAIN_STEPS = 500,
    SEEDS = 5,
    QUICK_TRAIN_STEPS = 40,
    QUICK_SEEDS = 2,
    FINAL_WINDOW = 50,        /* the final loss is the mean over this many last steps */
    PATH_SIZE = 4096,
};
#define RHO 1.5f               /* W_h = RHO Q */
#define LEARNING_RATE 0.1f
#define DIVERGED_FACTOR 10.0f  /* a loss above this times the first step's counts as diverged */

static const char USAGE[] =
    "usage: lab_explosion [--seed N] [--quick] [--out DIR]\n"
    "Trains a tanh RNN with W_h = 1.5 Q on the adding problem (T = 50) from 5 seeds, with no\n"
    "clipping, with norm clipping at 1 and with value clipping at +-5; counts the runs that\n"
    "diverge and writes DIR/explosion_results.csv (the table), DIR/explosion_curves.csv and\n"
    "the charts DIR/explosion_loss.svg and DIR/explosion_grad_norm.svg.\n"
    "  --seed N    seed for the weights and the data, 0 or more (default 1)\n"
    "  --quick     2 seeds and 40 steps (for tests)\n"
    "  --out DIR   an existing directory for the CSV and SVG files (default results)\n"
    "  --help      print this and exit\n";

/* ---- the arms: what each does to the gradient before the SGD step ------------------------ */

static void no_clipping(tg_tensor *const *params, int n)
{
    (void)params;
    (void)n;
}

/* train_step has skipped the step when a gradient is not finite (the norm it measured was
 * NaN), so this always clips and its result, the same norm, needs no second look. */
static void norm_clipping(tg_tensor *const *params, int n) { tg_clip_grad_norm(params, n, 1.0f); }

static void value_clipping(tg_tensor *const *params, int n)
{
    tg_clip_grad_value(params, n, 5.0f, NULL);
}

typedef struct arm {
    const char *name;
    void (*clip)(tg_tensor *const *params, int n);
} arm;

static const arm ARMS[] = {
    { "no clipping", no_clipping },
    { "norm clipping at 1", norm_clipping },
    { "value clipping at +-5", value_clipping },
};
#define N_ARMS (int)(sizeof ARMS / sizeof ARMS[0])

/* ---- the model --------------------------------------------------------------------------- */

/* A tanh RNN cell and its readout of the last hidden state (model.h): W_h = RHO Q; W_x and
 * W_y uniform in +-1/sqrt(hidden) (PyTorch's init); b = b_y = 0; all drawn from seed. False
 * when out of memory. */
static bool model_init(model *m, uint64_t seed)
{
    tg_rng rng = tg_rng_new(seed);
    bool made = model_new(m, "rnn", INPUT_SIZE, HIDDEN, 1, tg_rng_next(&rng));
    tg_rnn_cell *rnn = made ? m->cell->impl : NULL;    /* what tg_cell_new("rnn", ...) wraps */
    if (!made || tg_init_orthogonal(rnn->W_h, RHO, &rng, NULL) != 0) {
        model_free(m);
        return false;
    }
    model_init_readout(m, &rng);
    return true;
}

/* ---- one run ----------------------------------------------------------------------------- */

/* One run's record. A step after the run stopped (its loss was not finite) reads +Inf. */
typedef struct run_record {
    float *loss;                 /* train_steps losses, before each step's update */
    float *grad_norm;            /* train_steps gradient norms, before clipping */
    float max_grad_norm;         /* over the steps the run took */
    bool diverged;
    int skipped;                 /* steps skipped: a gradient, or an update, not finite */
} run_record;

/* One SGD step of one arm on a fresh batch from rng: records the loss and the gradient norm
 * before clipping (both +Inf when the loss is not finite: then nothing else happens; the norm
 * +Inf when a gradient is not finite: the step is skipped, as when tg_sgd_step refuses it).
 * False on a tape error (printed). */
static bool train_step(tg_tape *tape, model *m, const arm *a, tg_rng *rng, float *loss,
                       float *grad_norm, int *skipped)
{
    float x[STEPS * INPUT_SIZE * BATCH], y[BATCH];
    tg_task_adding(rng, STEPS, BATCH, x, y, NULL);
    tg_tape_reset(tape);
    tg_zero_grad(m->params, m->n_params, NULL);
    tg_tensor *mse = last_step_mse(tape, m, x, y, STEPS, BATCH);
    if (mse && !isfinite(mse->data[0])) {
        *loss = *grad_norm = INFINITY;
        return true;
    }
    if (tg_backward(tape, mse) != 0) {
        complain("%s", tg_tape_error(tape));
        return false;
    }
    *loss = mse->data[0];
    *grad_norm = tg_clip_grad_norm(m->params, m->n_params, INFINITY); /* measures only */
    if (isnan(*grad_norm)) {   /* a gradient is not finite: recorded as +Inf, step skipped */
        *grad_norm = INFINITY;
        (*skipped)++;
        return true;
    }
    a->clip(m->params, m->n_params);
    if (tg_sgd_step(m->params, m->n_params, LEARNING_RATE, NULL) != 0)
        (*skipped)++;
    return true;
}

/* Trains a model fresh from init_seed with one arm on batches from data_seed, filling r.
 * The run diverges when a loss is not finite (it stops there), when a step is skipped (a
 * gradient, or tg_sgd_step's update, not finite), or when a loss exceeds DIVERGED_FACTOR
 * times the first. False on error. */
static bool run(tg_tape *tape, const arm *a, uint64_t init_seed, uint64_t data_seed,
                int train_steps, run_record *r)
{
    model m;
    if (!model_init(&m, init_seed)) {
        complain("out of memory");
        return false;
    }
    tg_rng data = tg_rng_new(data_seed);
    bool ok = true, stopped = false;
    for (int s = 0; s < train_steps; s++) {
        if (stopped) {
            r->loss[s] = r->grad_norm[s] = INFINITY;
            continue;
        }
        ok = train_step(tape, &m, a, &data, &r->loss[s], &r->grad_norm[s], &r->skipped);
        if (!ok)
            break;
        stopped = !isfinite(r->loss[s]);
        if (!stopped)
            r->max_grad_norm = fmaxf(r->max_grad_norm, r->grad_norm[s]);
        if (stopped || r->loss[s] > DIVERGED_FACTOR * r->loss[0])
            r->diverged = true;
    }
    r->diverged = r->diverged || r->skipped > 0;
    model_free(&m);
    return ok;
}

/* ---- summaries --------------------------------------------------------------------------- */

static int compare_floats(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The median of values[0..n-1] (sorted in place). */
static float median(float *values, int n)
{
    qsort(values, (size_t)n, sizeof *values, compare_floats);
    return n % 2 ? values[n / 2] : 0.5f * (values[n / 2 - 1] + values[n / 2]);
}

/* The mean loss over the run's last FINAL_WINDOW steps (+Inf when it stopped). */
static float final_loss(const run_record *r, int train_steps)
{
    int window = train_steps < FINAL_WINDOW ? train_steps : FINAL_WINDOW;
    double sum = 0.0;
    for (int s = train_steps - window; s < train_steps; s++)
        sum += r->loss[s];
    return (float)(sum / window);
}

/* The runs of one arm, and what the table and the charts show of them. */
typedef struct arm_summary {
    int diverged;
    float median_final_loss;
    float max_grad_norm;            /* over every seed and step, before clipping */
    float median_first_grad_norm;   /* at step 1, before any update */
    float *median_loss;             /* per step, the median over seeds */
    float *median_grad_norm;
} arm_summary;

/* Fills the summary of the n_seeds runs of one arm. */
static void summarise(const run_record *runs, int n_seeds, int train_steps, arm_summary *out)
{
    float values[SEEDS];
    out->diverged = 0;
    out->max_grad_norm = 0.0f;
    for (int i = 0; i < n_seeds; i++) {
        out->diverged += runs[i].diverged;
        out->max_grad_norm = fmaxf(out->max_grad_norm, runs[i].max_grad_norm);
        values[i] = runs[i].grad_norm[0];
    }
    out->median_first_grad_norm = median(values, n_seeds);
    for (int i = 0; i < n_seeds; i++)
        values[i] = final_loss(&runs[i], train_steps);
    out->median_final_loss = median(values, n_seeds);
    for (int s = 0; s < train_steps; s++) {
        for (int i = 0; i < n_seeds; i++)
            values[i] = runs[i].loss[s];
        out->median_loss[s] = median(values, n_seeds);
        for (int i = 0; i < n_seeds; i++)
            values[i] = runs[i].grad_norm[s];
        out->median_grad_norm[s] = median(values, n_seeds);
    }
}

/* ---- output ------------------------------------------------------------------------------ */

static void print_table(const arm_summary *summaries, int n_seeds, int train_steps,
                        unsigned long long seed)
{
    printf("Exploding gradients: the adding problem at T = %d, tanh RNN with W_h = %.1f Q (Q\n"
           "orthogonal), W_x and W_y PyTorch's init, hidden %d; SGD, lr %.2g, batch %d, %d steps.\n"
           "%d seeds (from --seed %llu): each arm trains the same %d starts on the same batches.\n"
           "diverged: a loss that is not finite, a gradient tg_sgd_step refuses, or a loss above\n"
           "%.0fx the first step's. final loss: the mean of the last %d steps' losses (inf when a\n"
           "run overflowed). grad norm: the norm of the whole gradient, before clipping; at step\n"
           "1 it is the same in every arm, as the arms start from the same weights.\n\n",
           STEPS, RHO, HIDDEN, LEARNING_RATE, BATCH, train_steps, n_seeds, seed, n_seeds,
           DIVERGED_FACTOR, train_steps < FINAL_WINDOW ? train_steps : FINAL_WINDOW);
    printf("%-22s  %8s  %17s  %24s  %13s\n", "arm", "diverged", "median final loss",
           "median grad norm, step 1", "max grad norm");
    for (int a = 0; a < N_ARMS; a++)
        printf("%-22s  %6d/%-1d  %17.4g  %24.3g  %13.3g\n", ARMS[a].name, summaries[a].diverged,
               n_seeds, summaries[a].median_final_loss, summaries[a].median_first_grad_norm,
               summaries[a].max_grad_norm);
}

/* DIR/explosion_results.csv: the table. False (and a message) on failure. */
static bool write_table_csv(const arm_summary *summaries, int n_seeds, int train_steps,
                            const char *dir)
{
    char path[PATH_SIZE];
    if (snprintf(path, sizeof path, "%s/explosion_results.csv", dir) >= PATH_SIZE) {
        fprintf(stderr, "lab_explosion: output path too long: %s/explosion_results.csv\n", dir);
        return false;
    }
    table t = { NULL, 0, 0, false };
    table_add(&t, "arm,diverged,runs,median_final_loss,median_first_grad_norm,max_grad_norm,"
                  "T,rho,hidden,batch,lr,train_steps\n");
    for (int a = 0; a < N_ARMS; a++)
        table_add(&t, "%s,%d,%d,%.6g,%.6g,%.6g,%d,%g,%d,%d,%g,%d\n", ARMS[a].name,
                summaries[a].diverged, n_seeds, summaries[a].median_final_loss,
                summaries[a].median_first_grad_norm, summaries[a].max_grad_norm, STEPS, RHO, HIDDEN,
                BATCH, LEARNING_RATE, train_steps);
    return write_table(&t, path);
}

/* The table as CSV, both charts as SVG, and every curve of both in DIR/explosion_curves.csv.
 * False on the first failure. */
static bool write_outputs(const arm_summary *summaries, int n_seeds, int train_steps,
                          const float *step, const char *dir)
{
    char loss_label[N_ARMS][48], norm_label[N_ARMS][48];
    tg_series both[2 * N_ARMS];
    for (int a = 0; a < N_ARMS; a++) {
        snprintf(loss_label[a], sizeof loss_label[a], "%s: loss", ARMS[a].name);
        snprintf(norm_label[a], sizeof norm_label[a], "%s: grad norm", ARMS[a].name);
        both[a] = (tg_series){ loss_label[a], step, summaries[a].median_loss, train_steps };
        both[N_ARMS + a] = (tg_series){ norm_label[a], step, summaries[a].median_grad_norm,
                                        train_steps };
    }
    tg_series loss[N_ARMS], norm[N_ARMS];
    for (int a = 0; a < N_ARMS; a++) {
        loss[a] = (tg_series){ ARMS[a].name, step, summaries[a].median_loss, train_steps };
        norm[a] = (tg_series){ ARMS[a].name, step, summaries[a].median_grad_norm, train_steps };
    }
    char loss_title[96], norm_title[96];
    snprintf(loss_title, sizeof loss_title, "W_h = 1.5 Q: training loss (median of %d seeds)",
             n_seeds);
    snprintf(norm_title, sizeof norm_title,
             "W_h = 1.5 Q: gradient norm before clipping (median of %d seeds)", n_seeds);
    tg_chart curves = { "explosion", "SGD step", "value", 1, both, 2 * N_ARMS };
    tg_chart loss_chart = { loss_title, "SGD step", "MSE (log scale)", 1, loss, N_ARMS };
    tg_chart norm_chart = { norm_title, "SGD step", "||gradient|| (log scale)", 1, norm, N_ARMS };
    return write_table_csv(summaries, n_seeds, train_steps, dir)
           && write_chart(&curves, dir, "explosion_curves", true)
           && write_chart(&loss_chart, dir, "explosion_loss", false)
           && write_chart(&norm_chart, dir, "explosion_grad_norm", false);
}

/* ---- main -------------------------------------------------------------------------------- */

/* What the lab expects of each arm's runs (as ARMS), said on the arm's line on stderr so that
 * a count of diverged runs does not read like a failure of the program: a note for the count
 * expected (every run diverges, none, or any number), and one for a count that is not. */
typedef enum { EVERY_RUN, NO_RUN, ANY_RUNS } expected_count;
static const struct expectation {
    expected_count diverged;
    const char *expected, *unexpected;
} EXPECTED[] = {
    { EVERY_RUN, "expected: this is what clipping prevents",
      "unexpected: without clipping every run should diverge" },
    { NO_RUN, "expected: no step is longer than the learning rate",
      "unexpected: norm clipping should keep every run stable" },
    { ANY_RUNS, "expected: value clipping bounds each value, not the length of the step", NULL },
};
_Static_assert(sizeof EXPECTED / sizeof EXPECTED[0] == N_ARMS, "one expectation per arm");

/* The note on an arm's line for diverged of n_seeds runs. */
static const char *expectation_note(const struct expectation *e, int diverged, int n_seeds)
{
    bool as_expected = e->diverged == ANY_RUNS
                       || diverged == (e->diverged == EVERY_RUN ? n_seeds : 0);
    return as_expected ? e->expected : e->unexpected;
}

/* Runs every arm from every seed (runs[arm * n_seeds + seed]) and summarises each arm; one
 * line on stderr per arm. False on error. */
static bool run_all(tg_tape *tape, uint64_t seed, int n_seeds, int train_steps, run_record *runs,
                    arm_summary *summaries)
{
    double start = now();
    for (int a = 0; a < N_ARMS; a++) {
        tg_rng seeds = tg_rng_new(seed);   /* the same starts and batches for every arm */
        for (int i = 0; i < n_seeds; i++) {
            uint64_t init_seed = tg_rng_next(&seeds), data_seed = tg_rng_next(&seeds);
            if (!run(tape, &ARMS[a], init_seed, data_seed, train_steps, &runs[a * n_seeds + i]))
                return false;
        }
        summarise(&runs[a * n_seeds], n_seeds, train_steps, &summaries[a]);
        complain("%s: %d of %d runs diverged (%s; %.0f s)", ARMS[a].name, summaries[a].diverged,
                 n_seeds, expectation_note(&EXPECTED[a], summaries[a].diverged, n_seeds),
                 now() - start);
    }
    return true;
}

int main(int argc, char **argv)
{
    program = "lab_explosion";
    lab_options opt = lab_parse_args(argc, argv, USAGE);
    if (!is_directory(opt.out))
        return 1;
    int n_seeds = opt.quick ? QUICK_SEEDS : SEEDS;
    int train_steps = opt.quick ? QUICK_TRAIN_STEPS : TRAIN_STEPS;
    /* every per-step series in one block: 2 per run, 2 per arm, and the step numbers */
    int n_curves = 2 * N_ARMS * n_seeds + 2 * N_ARMS + 1;
    float *block = malloc((size_t)n_curves * (size_t)train_steps * sizeof *block);
    tg_tape *tape = tg_tape_new();
    run_record runs[N_ARMS * SEEDS] = { { 0 } };
    arm_summary summaries[N_ARMS] = { { 0 } };
    int status = 1;
    if (!block || !tape) {
        complain("out of memory");
    } else {
        float *next = block;
        for (int i = 0; i < N_ARMS * n_seeds; i++, next += 2 * train_steps) {
            runs[i].loss = next;
            runs[i].grad_norm = next + train_steps;
        }
        for (int a = 0; a < N_ARMS; a++, next += 2 * train_steps) {
            summaries[a].median_loss = next;
            summaries[a].median_grad_norm = next + train_steps;
        }
        float *step = next;
        for (int s = 0; s < train_steps; s++)
            step[s] = (float)(s + 1);
        if (run_all(tape, opt.seed, n_seeds, train_steps, runs, summaries)) {
            print_table(summaries, n_seeds, train_steps, opt.seed);
            status = write_outputs(summaries, n_seeds, train_steps, step, opt.out) ? 0 : 1;
        }
    }
    tg_tape_free(tape);
    free(block);
    return status;
}
