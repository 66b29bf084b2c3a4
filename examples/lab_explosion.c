/* lab_explosion.c: exploding gradients in a tanh RNN whose W_h = 1.5 Q, and what norm
 * clipping and elementwise (value) clipping do about them.
 *
 * With every singular value of W_h at 1.5, BPTT can grow the gradient by up to 1.5 per step
 * back, and the first gradients of training come out about ten times longer than with
 * PyTorch's init: a norm of tens (see the table) against 2 to 3, with larger spikes later.
 * One plain SGD step along such a gradient moves the weights by several units: it throws
 * the cell into saturation, nearly every hidden unit at +-1. From there the readout does the
 * rest. The loss is the batch's mean of e_b^2, e_b = W_y h_b + b_y - y_b; one SGD step on W_y
 * and b_y changes e_b by -(2 lr / B) sum_c e_c (1 + h_c . h_b), and when the saturated states
 * agree (h_c = h) the batch's mean error is multiplied by 1 - 2 lr (1 + ||h||^2). Once that
 * is below -1 the mean error flips sign and grows on every step, and the loss with its
 * square: for lr = 0.1 and ||h||^2 near 16 (16 units at +-1) the factor is -2.4 and the loss
 * grows 5.8 times per step, until it overflows. The readout is stable only below
 * lr = 1 / (1 + ||h||^2), about 0.06 here: the lab also trains the unclipped arm at lr 0.05,
 * and prints ||h_T||^2, the factor and the loss's growth before the overflow, measured.
 * Three arms train the same starts on the same batches:
 *
 *   no clipping       the step is lr * g, however long g is
 *   norm clipping     g is scaled down to length 1 when longer: the direction is kept, and no
 *                     step is longer than lr
 *   value clipping    each value of g is cut to [-5, 5]: every value is bounded, but the step
 *                     can still be lr * 5 * sqrt(#parameters) long, and it is bent off course
 *
 * Expect every unclipped run to diverge and the norm-clipped runs to train quietly. Value
 * clipping stops the overflow but not the overshooting: its runs can end up bouncing between
 * two bad readouts with a loss far above where they started. How far depends on the limit,
 * so the lab sweeps it (+-10 down to +-0.2) and prints a second table; the count of steps on
 * which each arm's clipping changed anything is in both. The task is the adding problem at
 * T = 50, which no arm will learn in this budget (see lab_adding): this lab is about staying
 * stable, not about learning.
 *
 * --long trains the RNN of lab_adding's earlier SGD version instead (PyTorch's init, hidden
 * 16, SGD lr 0.1, batch 16, T = 50, on the seeds that version drew for its T = 50 runs from
 * --seed N; lab_adding itself now trains with Adam) for 40,000 steps, without
 * clipping and with norm clipping at 1: both stay at the 1/6 baseline (the gradient from the
 * first marker vanishes), and the unclipped run can in the end blow up as well. */
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
    GROWTH_WINDOW = 20,       /* the loss's growth is measured over the last steps before overflow */
    LONG_TRAIN_STEPS = 40000, /* --long */
    LONG_PARTS = 4,           /* --long prints the mean loss of each quarter of the run */
    ADDING_LENGTH_INDEX = 2,  /* T = 50 was the SGD lab_adding's third length: seeds drawn third */
    PATH_SIZE = 4096,
};
#define RHO 1.5f               /* W_h = RHO Q */
#define LEARNING_RATE 0.1f
#define LOWER_LEARNING_RATE 0.05f
#define DIVERGED_FACTOR 10.0f  /* a loss above this times the first step's counts as diverged */

static const char USAGE[] =
    "usage: lab_explosion [--seed N] [--quick] [--long] [--lr X] [--hidden N] [--rho X]\n"
    "                     [--clip X] [--seeds N] [--out DIR]\n"
    "Trains a tanh RNN with W_h = 1.5 Q on the adding problem (T = 50) from 5 seeds, with no\n"
    "clipping, with norm clipping at 1 and with value clipping at +-5; counts the runs that\n"
    "diverge and writes DIR/explosion_results.csv (the table), DIR/explosion_curves.csv and\n"
    "the charts DIR/explosion_loss.svg and DIR/explosion_grad_norm.svg. Then the same runs\n"
    "without clipping at lr 0.05 (the readout's threshold), and value clipping at limits from\n"
    "+-10 to +-0.2 (printed only).\n"
    "  --seed N    seed for the weights and the data, 0 or more (default 1)\n"
    "  --quick     2 seeds and 40 steps (for tests)\n"
    "  --long      instead: the RNN of lab_adding's earlier SGD version at T = 50 (PyTorch's\n"
    "              init, lr 0.1) for 40,000 steps, unclipped and norm-clipped; prints\n"
    "              only (a few seconds to a minute)\n"
    "  --lr X      the SGD learning rate of the three arms and the value sweep (default 0.1)\n"
    "  --hidden N  hidden units (default 16)\n"
    "  --rho X     W_h = X Q (default 1.5)\n"
    "  --clip X    the norm clipping arm clips the gradient's norm to X (default 1)\n"
    "  --seeds N   runs per arm from N seeds (default 5)\n"
    "  (--long takes none of these five: it runs lab_adding's settings)\n"
    "  --out DIR   an existing directory for the CSV and SVG files (default results)\n"
    "  --help      print this and exit\n";

/* ---- the arms: what each does to the gradient before the SGD step ------------------------ */

typedef enum clip_kind { NO_CLIPPING, NORM_CLIPPING, VALUE_CLIPPING } clip_kind;

typedef struct arm {
    const char *name;
    float lr;
    clip_kind clip;
    float limit;              /* the norm, or the largest |value|, clipping allows */
} arm;

/* The charted arms, in explosion_results.csv at LEARNING_RATE (--lr changes every lr here and
 * in VALUE_SWEEP, --clip the norm clipping's limit: apply_flags). */
static arm ARMS[] = {
    { "no clipping", LEARNING_RATE, NO_CLIPPING, 0.0f },
    { "norm clipping at 1", LEARNING_RATE, NORM_CLIPPING, 1.0f },
    { "value clipping at +-5", LEARNING_RATE, VALUE_CLIPPING, 5.0f },
};
#define N_ARMS (int)(sizeof ARMS / sizeof ARMS[0])
enum { NORM_ARM = 1 };        /* ARMS[NORM_ARM]: norm clipping */

/* The arms of the printed tables only: unclipped below the readout's threshold, and the
 * sweep of value clipping's limit. */
static const arm LOWER_LR_ARM = { "no clipping, lr 0.05", LOWER_LEARNING_RATE, NO_CLIPPING, 0.0f };
static arm VALUE_SWEEP[] = {
    { "value clipping at +-10", LEARNING_RATE, VALUE_CLIPPING, 10.0f },
    { "value clipping at +-5", LEARNING_RATE, VALUE_CLIPPING, 5.0f },
    { "value clipping at +-2", LEARNING_RATE, VALUE_CLIPPING, 2.0f },
    { "value clipping at +-1", LEARNING_RATE, VALUE_CLIPPING, 1.0f },
    { "value clipping at +-0.5", LEARNING_RATE, VALUE_CLIPPING, 0.5f },
    { "value clipping at +-0.2", LEARNING_RATE, VALUE_CLIPPING, 0.2f },
};
#define N_SWEEP (int)(sizeof VALUE_SWEEP / sizeof VALUE_SWEEP[0])
enum { N_ALL_ARMS = N_ARMS + 1 + N_SWEEP };

/* What the flags change, set once by main (apply_flags): W_h = rho Q, the hidden size and the
 * charted arms' and the sweep's learning rate. */
static struct {
    float rho, lr;
    int hidden;
} setup = { RHO, LEARNING_RATE, HIDDEN };

/* Clips the gradient as a says, given its norm (finite: train_step has skipped the step when a
 * gradient is not finite). True when the clipping changed a value. */
static bool clip_gradient(const arm *a, tg_tensor *const *params, int n, float norm)
{
    switch (a->clip) {
    case NORM_CLIPPING:
        tg_clip_grad_norm(params, n, a->limit);
        return norm > a->limit;
    case VALUE_CLIPPING:
        return tg_clip_grad_value(params, n, a->limit, NULL) > 0;
    case NO_CLIPPING:
        break;
    }
    return false;
}

/* ---- the model --------------------------------------------------------------------------- */

/* A tanh RNN cell and its readout of the last hidden state (model.h): W_h = rho Q, or
 * PyTorch's init when rho is 0; W_x and W_y uniform in +-1/sqrt(hidden) (PyTorch's init);
 * b = b_y = 0; all drawn from seed (with rho 0, as lab_adding draws its RNN without --rho).
 * False when out
 * of memory. */
static bool model_init(model *m, float rho, uint64_t seed)
{
    tg_rng rng = tg_rng_new(seed);
    bool made = model_new(m, "rnn", INPUT_SIZE, setup.hidden, 1, tg_rng_next(&rng));
    tg_rnn_cell *rnn = made ? m->cell->impl : NULL;    /* what tg_cell_new("rnn", ...) wraps */
    if (!made || (rho > 0.0f && tg_init_orthogonal(rnn->W_h, rho, &rng, NULL) != 0)) {
        model_free(m);
        return false;
    }
    model_init_readout(m, &rng);
    return true;
}

/* The mean over the batch of ||h_b||^2, h: hidden x batch. */
static double mean_squared_norm(const tg_tensor *h)
{
    double sum = 0.0;
    for (int i = 0; i < h->rows * h->cols; i++)
        sum += (double)h->data[i] * h->data[i];
    return sum / h->cols;
}

/* ---- one run ----------------------------------------------------------------------------- */

/* One run's record. A step after the run stopped (its loss was not finite) reads +Inf. */
typedef struct run_record {
    float *loss;                 /* train_steps losses, before each step's update */
    float *grad_norm;            /* train_steps gradient norms, before clipping */
    float max_grad_norm;         /* over the steps the run took */
    bool diverged;
    int skipped;                 /* steps skipped: a gradient, or an update, not finite */
    int clipped;                 /* steps on which the clipping changed a value */
    int taken;                   /* steps with a finite loss */
    int blew_up_at;              /* the first step whose loss is above DIVERGED_FACTOR times
                                    the first step's, 0 if none */
    int stopped_at;              /* the first step whose loss is not finite, 0 if none */
    double h_squared;            /* the batch's mean ||h_T||^2, averaged over the last
                                    GROWTH_WINDOW steps taken (fewer if the run took fewer) */
} run_record;

/* What train_step measured on one step. */
typedef struct step_record {
    float loss, grad_norm;
    double h_squared;
} step_record;

/* One SGD step of one arm on a fresh batch from rng: records the loss, the gradient norm
 * before clipping and ||h_T||^2 (loss and norm +Inf when the loss is not finite: then nothing
 * else happens; the norm +Inf when a gradient is not finite: the step is skipped, as when
 * tg_sgd_step refuses it). False on a tape error (printed). */
static bool train_step(tg_tape *tape, model *m, const arm *a, tg_rng *rng, step_record *out,
                       run_record *r)
{
    float x[STEPS * INPUT_SIZE * BATCH], y[BATCH];
    tg_task_adding(rng, STEPS, BATCH, x, y, NULL);
    tg_tape_reset(tape);
    tg_zero_grad(m->params, m->n_params, NULL);
    tg_tensor *h_last = NULL;
    tg_tensor *mse = last_step_mse_state(tape, m, x, y, STEPS, BATCH, &h_last, NULL);
    if (mse && !isfinite(mse->data[0])) {
        out->loss = out->grad_norm = INFINITY;
        return true;
    }
    if (tg_backward(tape, mse) != 0) {
        complain("%s", tg_tape_error(tape));
        return false;
    }
    out->loss = mse->data[0];
    out->h_squared = mean_squared_norm(h_last);
    out->grad_norm = tg_clip_grad_norm(m->params, m->n_params, INFINITY); /* measures only */
    if (isnan(out->grad_norm)) {   /* a gradient is not finite: recorded as +Inf, step skipped */
        out->grad_norm = INFINITY;
        r->skipped++;
        return true;
    }
    r->clipped += clip_gradient(a, m->params, m->n_params, out->grad_norm);
    if (tg_sgd_step(m->params, m->n_params, a->lr, NULL) != 0)
        r->skipped++;
    return true;
}

/* The seeds of one run: the start, and the batches. */
typedef struct run_seeds {
    uint64_t init, data;
} run_seeds;

/* Trains a model fresh from seeds.init (W_h = rho Q, or PyTorch's init when rho is 0) with one
 * arm on batches from seeds.data, filling r. The run diverges when a loss is not finite (it
 * stops there), when a step is skipped (a gradient, or tg_sgd_step's update, not finite), or
 * when a loss exceeds DIVERGED_FACTOR times the first. False on error. */
static bool run(tg_tape *tape, const arm *a, float rho, run_seeds seeds, int train_steps,
                run_record *r)
{
    model m;
    if (!model_init(&m, rho, seeds.init)) {
        complain("out of memory");
        return false;
    }
    tg_rng data = tg_rng_new(seeds.data);
    bool ok = true;
    double h_squared[GROWTH_WINDOW];   /* the last steps' values, step s at s % GROWTH_WINDOW */
    for (int s = 0; s < train_steps; s++) {
        if (r->stopped_at) {
            r->loss[s] = r->grad_norm[s] = INFINITY;
            continue;
        }
        step_record step = { 0 };
        ok = train_step(tape, &m, a, &data, &step, r);
        if (!ok)
            break;
        r->loss[s] = step.loss;
        r->grad_norm[s] = step.grad_norm;
        if (!isfinite(step.loss)) {
            r->stopped_at = s + 1;
            continue;
        }
        h_squared[r->taken++ % GROWTH_WINDOW] = step.h_squared;
        r->max_grad_norm = fmaxf(r->max_grad_norm, step.grad_norm);
        if (!r->blew_up_at && step.loss > DIVERGED_FACTOR * r->loss[0])
            r->blew_up_at = s + 1;
    }
    int window = r->taken < GROWTH_WINDOW ? r->taken : GROWTH_WINDOW;
    double sum = 0.0;
    for (int i = 0; i < window; i++)
        sum += h_squared[i];
    r->h_squared = window ? sum / window : NAN;
    r->diverged = r->stopped_at || r->blew_up_at || r->skipped > 0;
    model_free(&m);
    return ok;
}

/* The loss's growth per step over the last GROWTH_WINDOW finite losses before the run
 * overflowed; NaN when it did not overflow or overflowed before that many steps. */
static double growth_before_overflow(const run_record *r)
{
    int last = r->stopped_at - 2;   /* the index of the last finite loss */
    if (!r->stopped_at || last - GROWTH_WINDOW < 0)
        return NAN;
    return pow((double)r->loss[last] / r->loss[last - GROWTH_WINDOW], 1.0 / GROWTH_WINDOW);
}

/* ---- summaries --------------------------------------------------------------------------- */

static int compare_floats(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The median of values[0..n-1] (sorted in place); NaN when n is 0. */
static float median(float *values, int n)
{
    if (n == 0)
        return NAN;
    qsort(values, (size_t)n, sizeof *values, compare_floats);
    return n % 2 ? values[n / 2] : 0.5f * (values[n / 2 - 1] + values[n / 2]);
}

/* The mean loss over the run's steps from..to-1 (+Inf when it stopped before to). */
static float mean_loss(const run_record *r, int from, int to)
{
    double sum = 0.0;
    for (int s = from; s < to; s++)
        sum += r->loss[s];
    return (float)(sum / (to - from));
}

/* The mean loss over the run's last FINAL_WINDOW steps (+Inf when it stopped). */
static float final_loss(const run_record *r, int train_steps)
{
    int window = train_steps < FINAL_WINDOW ? train_steps : FINAL_WINDOW;
    return mean_loss(r, train_steps - window, train_steps);
}

/* The runs of one arm, and what the tables and the charts show of them. */
typedef struct arm_summary {
    int diverged;
    float median_final_loss;
    float max_grad_norm;            /* over every seed and step, before clipping */
    float median_first_grad_norm;   /* at step 1, before any update */
    int clipped, taken;             /* steps clipped, and steps taken, over every seed */
    float median_h_squared;         /* the median over seeds of the run's h_squared */
    float median_growth;            /* the median over the runs that overflowed of the loss's
                                       growth per step before it; NaN if none did */
    float *median_loss;             /* per step, the median over seeds */
    float *median_grad_norm;
} arm_summary;

/* Fills the summary of the n_seeds runs of one arm. */
static void summarise(const run_record *runs, int n_seeds, int train_steps, arm_summary *out)
{
    float values[LAB_MAX_SEEDS];
    out->diverged = out->clipped = out->taken = 0;
    out->max_grad_norm = 0.0f;
    int n_growths = 0;
    for (int i = 0; i < n_seeds; i++) {
        out->diverged += runs[i].diverged;
        out->clipped += runs[i].clipped;
        out->taken += runs[i].taken;
        out->max_grad_norm = fmaxf(out->max_grad_norm, runs[i].max_grad_norm);
        values[i] = runs[i].grad_norm[0];
    }
    out->median_first_grad_norm = median(values, n_seeds);
    for (int i = 0; i < n_seeds; i++)
        values[i] = final_loss(&runs[i], train_steps);
    out->median_final_loss = median(values, n_seeds);
    for (int i = 0; i < n_seeds; i++)
        values[i] = (float)runs[i].h_squared;
    out->median_h_squared = median(values, n_seeds);
    for (int i = 0; i < n_seeds; i++)
        if (!isnan(growth_before_overflow(&runs[i])))
            values[n_growths++] = (float)growth_before_overflow(&runs[i]);
    out->median_growth = median(values, n_growths);
    for (int s = 0; out->median_loss && s < train_steps; s++) {
        for (int i = 0; i < n_seeds; i++)
            values[i] = runs[i].loss[s];
        out->median_loss[s] = median(values, n_seeds);
        for (int i = 0; i < n_seeds; i++)
            values[i] = runs[i].grad_norm[s];
        out->median_grad_norm[s] = median(values, n_seeds);
    }
}

/* ---- output ------------------------------------------------------------------------------ */

/* "clipped/taken" as a share of the steps taken, e.g. "97.2%". */
static const char *clipped_share(const arm_summary *s, char *text, size_t size)
{
    snprintf(text, size, "%.1f%%", s->taken ? 100.0 * s->clipped / s->taken : 0.0);
    return text;
}

static void print_arm_header(void)
{
    printf("%-24s  %8s  %17s  %24s  %13s  %13s\n", "arm", "diverged", "median final loss",
           "median grad norm, step 1", "max grad norm", "clipped steps");
}

static void print_arm_line(const arm *a, const arm_summary *s, int n_seeds)
{
    char share[16];
    printf("%-24s  %6d/%-1d  %17.4g  %24.3g  %13.3g  %13s\n", a->name, s->diverged, n_seeds,
           s->median_final_loss, s->median_first_grad_norm, s->max_grad_norm,
           clipped_share(s, share, sizeof share));
}

static void print_table(const arm_summary *summaries, int n_seeds, int train_steps,
                        unsigned long long seed)
{
    printf("Exploding gradients: the adding problem at T = %d, tanh RNN with W_h = %.1f Q (Q\n"
           "orthogonal), W_x and W_y PyTorch's init, hidden %d; SGD, lr %.2g, batch %d, %d steps.\n"
           "%d seeds (from --seed %llu): each arm trains the same %d starts on the same batches.\n"
           "diverged: a loss that is not finite, a gradient tg_sgd_step refuses, or a loss above\n"
           "%.0fx the first step's. final loss: the mean of the last %d steps' losses (inf when a\n"
           "run overflowed). grad norm: the norm of the whole gradient, before clipping; at step\n"
           "1 it is the same in every arm, as the arms start from the same weights. clipped\n"
           "steps: the share of the steps taken on which the clipping changed the gradient.\n\n",
           STEPS, setup.rho, setup.hidden, setup.lr, BATCH, train_steps, n_seeds, seed, n_seeds,
           DIVERGED_FACTOR, train_steps < FINAL_WINDOW ? train_steps : FINAL_WINDOW);
    print_arm_header();
    for (int a = 0; a < N_ARMS; a++)
        print_arm_line(&ARMS[a], &summaries[a], n_seeds);
}

/* The readout's SGD factor on the batch's mean error, 1 - 2 lr (1 + ||h||^2). */
static double readout_factor(float lr, double h_squared) { return 1.0 - 2.0 * lr * (1.0 + h_squared); }

static void print_readout_line(const arm *a, const arm_summary *s)
{
    double factor = readout_factor(a->lr, s->median_h_squared);
    printf("%-22s  %4.2f  %9.2f  %12.3f  %14.3f  %10.3g  %11.3g  %8d  %10.4g\n", a->name, a->lr,
           s->median_h_squared, 1.0 / (1.0 + s->median_h_squared), factor, factor * factor,
           s->median_growth, s->diverged, s->median_final_loss);
}

static void print_readout_table(const arm_summary *unclipped, const arm_summary *lower,
                                int n_seeds)
{
    printf("\nThe readout's step. With the hidden states alike (h_b = h), one SGD step multiplies\n"
           "the batch's mean error by 1 - 2 lr (1 + ||h||^2), the loss by its square: stable\n"
           "only for lr below 1 / (1 + ||h||^2). ||h_T||^2: the batch's mean, averaged over the\n"
           "last %d steps a run took, median over seeds. loss growth: the loss's factor per step\n"
           "over the last %d steps before it overflowed, median over the runs that did (nan: none\n"
           "did). final loss: as in the first table, median over seeds.\n\n",
           GROWTH_WINDOW, GROWTH_WINDOW);
    printf("%-22s  %4s  %9s  %12s  %14s  %10s  %11s  %8s  %10s\n", "arm", "lr", "||h_T||^2",
           "lr threshold", "1-2lr(1+|h|^2)", "its square", "loss growth", "diverged",
           "final loss");
    print_readout_line(&ARMS[0], unclipped);
    print_readout_line(&LOWER_LR_ARM, lower);
    printf("(diverged: of %d runs)\n", n_seeds);
}

static void print_sweep_table(const arm_summary *sweep, int n_seeds)
{
    printf("\nValue clipping's limit, swept: the same runs at lr %.2g, each value of the gradient\n"
           "cut to [-limit, limit].\n\n", setup.lr);
    print_arm_header();
    for (int i = 0; i < N_SWEEP; i++)
        print_arm_line(&VALUE_SWEEP[i], &sweep[i], n_seeds);
}

/* DIR/explosion_results.csv: the table. False (and a message) on failure. */
static bool write_table_csv(const arm_summary *summaries, int n_seeds, int train_steps,
                            const char *dir)
{
    char path[PATH_SIZE];
    if (!output_path(path, sizeof path, dir, "explosion_results.csv"))
        return false;
    table t = { NULL, 0, 0, false };
    table_add(&t, "arm,diverged,runs,median_final_loss,median_first_grad_norm,max_grad_norm,"
                  "T,rho,hidden,batch,lr,train_steps\n");
    for (int a = 0; a < N_ARMS; a++)
        table_add(&t, "%s,%d,%d,%.6g,%.6g,%.6g,%d,%g,%d,%d,%g,%d\n", ARMS[a].name,
                summaries[a].diverged, n_seeds, summaries[a].median_final_loss,
                summaries[a].median_first_grad_norm, summaries[a].max_grad_norm, STEPS, setup.rho,
                setup.hidden, BATCH, setup.lr, train_steps);
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
        both[a] = (tg_series){ loss_label[a], step, summaries[a].median_loss, train_steps,
                               TG_SERIES_LINE };
        both[N_ARMS + a] = (tg_series){ norm_label[a], step, summaries[a].median_grad_norm,
                                        train_steps, TG_SERIES_LINE };
    }
    tg_series loss[N_ARMS], norm[N_ARMS];
    for (int a = 0; a < N_ARMS; a++) {
        loss[a] = (tg_series){ ARMS[a].name, step, summaries[a].median_loss, train_steps,
                               TG_SERIES_LINE };
        norm[a] = (tg_series){ ARMS[a].name, step, summaries[a].median_grad_norm, train_steps,
                               TG_SERIES_LINE };
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

/* Runs one arm from every seed (runs[0 .. n_seeds-1]) at W_h = rho Q and summarises them.
 * False on error. */
static bool run_arm(tg_tape *tape, const arm *a, uint64_t seed, int n_seeds, int train_steps,
                    run_record *runs, arm_summary *summary)
{
    tg_rng seeds = tg_rng_new(seed);   /* the same starts and batches for every arm */
    for (int i = 0; i < n_seeds; i++) {
        run_seeds s;
        s.init = tg_rng_next(&seeds);
        s.data = tg_rng_next(&seeds);
        if (!run(tape, a, setup.rho, s, train_steps, &runs[i]))
            return false;
    }
    summarise(runs, n_seeds, train_steps, summary);
    return true;
}

/* Runs every arm, ARMS first, then LOWER_LR_ARM and VALUE_SWEEP, from every seed
 * (runs[arm * n_seeds + seed]); one line on stderr per arm of ARMS. False on error. */
static bool run_all(tg_tape *tape, uint64_t seed, int n_seeds, int train_steps, run_record *runs,
                    arm_summary *summaries)
{
    double start = now();
    for (int a = 0; a < N_ALL_ARMS; a++) {
        const arm *which = a < N_ARMS ? &ARMS[a]
                           : a == N_ARMS ? &LOWER_LR_ARM : &VALUE_SWEEP[a - N_ARMS - 1];
        if (!run_arm(tape, which, seed, n_seeds, train_steps, &runs[a * n_seeds], &summaries[a]))
            return false;
        if (a < N_ARMS)
            complain("%s: %d of %d runs diverged (%s; %.0f s)", ARMS[a].name,
                     summaries[a].diverged, n_seeds,
                     expectation_note(&EXPECTED[a], summaries[a].diverged, n_seeds),
                     now() - start);
    }
    return true;
}

/* The seeds the SGD version of lab_adding --seed N gave its runs at T = 50 (its plan_runs,
 * lengths 10, 20, 50, 100): one start for every run, then for each length in turn a generator
 * whose first two numbers seed the batches and the test. */
static run_seeds adding_seeds(uint64_t seed)
{
    tg_rng master = tg_rng_new(seed);
    run_seeds s = { .init = tg_rng_next(&master) };
    for (int l = 0; l <= ADDING_LENGTH_INDEX; l++) {
        tg_rng per_length = tg_rng_new(tg_rng_next(&master));
        s.data = tg_rng_next(&per_length);
    }
    return s;
}

/* "no" or the step number. */
static const char *step_or_no(int step, char *text, size_t size)
{
    if (step)
        snprintf(text, size, "%d", step);
    else
        snprintf(text, size, "no");
    return text;
}

static void print_long_line(const arm *a, const run_record *r)
{
    char blew[16], stopped[16], share[16];
    printf("%-20s", a->name);
    for (int p = 0; p < LONG_PARTS; p++)
        printf("  %11.4g", mean_loss(r, p * LONG_TRAIN_STEPS / LONG_PARTS,
                                     (p + 1) * LONG_TRAIN_STEPS / LONG_PARTS));
    snprintf(share, sizeof share, "%.1f%%", r->taken ? 100.0 * r->clipped / r->taken : 0.0);
    printf("  %11s  %12s  %13.3g  %13s\n", step_or_no(r->blew_up_at, blew, sizeof blew),
           step_or_no(r->stopped_at, stopped, sizeof stopped), r->max_grad_norm, share);
}

/* --long: the SGD lab_adding's RNN at T = 50 for LONG_TRAIN_STEPS steps, unclipped and
 * norm-clipped, on that version's seeds. 0, or 1 on error. */
static int run_long(uint64_t seed)
{
    float *block = malloc(2 * (size_t)N_ARMS * LONG_TRAIN_STEPS * sizeof *block);
    tg_tape *tape = tg_tape_new();
    run_record runs[2] = { { 0 } };
    int status = 1;
    if (!block || !tape) {
        complain("out of memory");
        goto done;
    }
    run_seeds seeds = adding_seeds(seed);
    for (int a = 0; a < 2; a++) {
        runs[a].loss = block + 2 * (size_t)a * LONG_TRAIN_STEPS;
        runs[a].grad_norm = runs[a].loss + LONG_TRAIN_STEPS;
        if (!run(tape, &ARMS[a], 0.0f, seeds, LONG_TRAIN_STEPS, &runs[a]))
            goto done;
    }
    printf("The long run: a tanh RNN at T = %d (PyTorch's init, hidden %d, SGD lr %.2g, batch\n"
           "%d) as lab_adding trained it before it moved to Adam, %d steps, on the seeds that\n"
           "version of lab_adding --seed %llu gave its T = %d runs.\n"
           "loss: the mean of each quarter's losses (inf once the run has overflowed). 1/6 =\n"
           "0.1667 is the baseline. blew up: the first step whose loss is above %.0fx the first\n"
           "step's; overflowed: the first whose loss is not finite.\n\n",
           STEPS, HIDDEN, LEARNING_RATE, BATCH, LONG_TRAIN_STEPS, (unsigned long long)seed,
           STEPS, DIVERGED_FACTOR);
    printf("%-20s", "arm");
    for (int p = 0; p < LONG_PARTS; p++) {
        char part[32];
        snprintf(part, sizeof part, "loss %dk-%dk", p * LONG_TRAIN_STEPS / LONG_PARTS / 1000,
                 (p + 1) * LONG_TRAIN_STEPS / LONG_PARTS / 1000);
        printf("  %11s", part);
    }
    printf("  %11s  %12s  %13s  %13s\n", "blew up", "overflowed", "max grad norm", "clipped steps");
    for (int a = 0; a < 2; a++)
        print_long_line(&ARMS[a], &runs[a]);
    status = 0;
done:
    tg_tape_free(tape);
    free(block);
    return status;
}

/* The command line: the flags of every lab (all five of --lr, --hidden, --rho, --clip and
 * --seeds), and --long, which takes none of those five: it is lab_adding's run as it is. */
static lab_options parse_args(int argc, char **argv, bool *long_run)
{
    lab_options opt = LAB_DEFAULTS;
    opt.takes = LAB_BIT(LAB_LR) | LAB_BIT(LAB_HIDDEN) | LAB_BIT(LAB_RHO) | LAB_BIT(LAB_CLIP)
                | LAB_BIT(LAB_SEEDS);
    *long_run = false;
    for (int i = 1; i < argc; i++) {
        if (lab_flag(argc, argv, &i, USAGE, &opt))
            continue;
        if (strcmp(argv[i], "--long") != 0)
            usage_error("unknown flag '%s'", argv[i]);
        *long_run = true;
    }
    for (int knob = 0; *long_run && knob < LAB_KNOBS; knob++)
        if (lab_given(&opt, (lab_knob)knob))
            usage_error("%s: --long trains lab_adding's RNN with lab_adding's settings, as they "
                        "are", LAB_KNOB_FLAGS[knob]);
    return opt;
}

/* Sets what --rho, --hidden and --lr change (setup), and the norm clipping's limit (--clip). */
static void apply_flags(const lab_options *opt)
{
    static char norm_arm_name[48];
    if (lab_given(opt, LAB_RHO))
        setup.rho = opt->rho;
    if (lab_given(opt, LAB_HIDDEN))
        setup.hidden = opt->hidden;
    if (lab_given(opt, LAB_LR))
        setup.lr = opt->lr;
    for (int a = 0; a < N_ARMS; a++)
        ARMS[a].lr = setup.lr;
    for (int a = 0; a < N_SWEEP; a++)
        VALUE_SWEEP[a].lr = setup.lr;
    if (lab_given(opt, LAB_CLIP)) {
        ARMS[NORM_ARM].limit = opt->clip;
        snprintf(norm_arm_name, sizeof norm_arm_name, "norm clipping at %g", (double)opt->clip);
        ARMS[NORM_ARM].name = norm_arm_name;
    }
}

int main(int argc, char **argv)
{
    program = "lab_explosion";
    bool long_run;
    lab_options opt = parse_args(argc, argv, &long_run);
    if (!is_directory(opt.out))
        return 1;
    if (long_run)
        return run_long(opt.seed);
    apply_flags(&opt);
    int n_seeds = lab_given(&opt, LAB_SEEDS) ? opt.seeds : opt.quick ? QUICK_SEEDS : SEEDS;
    int train_steps = opt.quick ? QUICK_TRAIN_STEPS : TRAIN_STEPS;
    /* every per-step series in one block: 2 per run, 2 per charted arm, and the step numbers */
    int n_curves = 2 * N_ALL_ARMS * n_seeds + 2 * N_ARMS + 1;
    float *block = malloc((size_t)n_curves * (size_t)train_steps * sizeof *block);
    tg_tape *tape = tg_tape_new();
    run_record runs[N_ALL_ARMS * LAB_MAX_SEEDS] = { { 0 } };
    arm_summary summaries[N_ALL_ARMS] = { { 0 } };
    int status = 1;
    if (!block || !tape) {
        complain("out of memory");
    } else {
        float *next = block;
        for (int i = 0; i < N_ALL_ARMS * n_seeds; i++, next += 2 * train_steps) {
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
            print_readout_table(&summaries[0], &summaries[N_ARMS], n_seeds);
            print_sweep_table(&summaries[N_ARMS + 1], n_seeds);
            status = write_outputs(summaries, n_seeds, train_steps, step, opt.out) ? 0 : 1;
        }
    }
    tg_tape_free(tape);
    free(block);
    return status;
}
