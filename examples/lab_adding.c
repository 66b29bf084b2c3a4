/* lab_adding.c: trains a tanh RNN, an LSTM and a GRU on the adding problem at T = 10, 50 and
 * 100 steps, from several seeds, to see how far back BPTT can carry a signal through each
 * cell, and draws where the gradient lands: ||dL/dx_t|| over t and the training steps.
 *
 * Each sequence is T steps of two inputs: a value uniform in [0, 1) and a marker that is 1 at
 * exactly one step in each half of the sequence. The target, read from the last hidden state,
 * is the sum of the two marked values. Guessing the mean, 1, scores an MSE of 1/6 = 0.167, so
 * anything near 1/6 has learned nothing. To do better, the gradient of the loss at step T has
 * to reach back to the first marker, up to T steps earlier, and in a tanh RNN it shrinks
 * roughly geometrically on the way (see lab_gradient_norms). Expect the RNN to solve T = 10
 * and to stay at the baseline at T = 50 and 100; clipping only caps large gradients, so it
 * cannot help a gradient that vanishes. The LSTM and the GRU carry their state forward by a
 * gated sum (c_t = f * c_{t-1} + i * g in the LSTM), whose gradient is multiplied by the gate
 * and by no weight matrix: expect them to solve T = 100 as well.
 *
 * Every cell is trained with Adam (lr 0.01, batch 16, 5000 steps), once without clipping and
 * once with the gradient norm clipped at 1, from 5 seeds; the table gives the median test MSE
 * and its spread. docs/bptt.md says why each setting (the previous SGD settings left every
 * cell at the baseline at T = 100 in this budget). The comparison is at (about) the same
 * parameter budget, not the same hidden size: each gated cell gets the largest hidden size
 * at which the whole model has no more parameters than the RNN's. The LSTM's forget gate
 * (Gers, Schmidhuber & Cummins 2000) starts with its bias at 1, mostly open. Every run from
 * a seed starts from the same draw of initial weights, and every run at a given T and seed
 * sees the same batches. The runs are independent, so they are shared out among threads,
 * each with its own tape; a run's result does not depend on which thread ran it, or when. */
#define _POSIX_C_SOURCE 200809L   /* for stat() (is_directory in cli.h), to check --out */

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model.h"
#include "runs.h"
#include "tapegrad.h"

enum {
    INPUT_SIZE = 2,           /* value, marker */
    BATCH = 16,
    TEST_BATCH = 100,
    TRAIN_STEPS = 5000,
    TEST_BATCHES = 10,
    SEEDS = 5,
    RNN_HIDDEN = 16,          /* the gated cells' sizes follow from the RNN's parameter count */
    QUICK_TRAIN_STEPS = 100,
    QUICK_TEST_BATCHES = 2,
    QUICK_SEEDS = 3,
    MIN_TRAIN_STEPS = 100,    /* the range of --steps */
    MAX_TRAIN_STEPS = 1000000,
    SMOOTHING = 200,          /* the loss charts show the mean loss of the last SMOOTHING steps */
    CHART_EVERY = 20,         /* ... every CHART_EVERY steps */
    HEATMAP_ROWS = 50,        /* the heatmaps measure ||dL/dx_t|| on this many training steps */
    DEFAULT_THREADS = 2,
    PATH_SIZE = 4096,
    LABEL_SIZE = 64,
    CLIP_NAME_SIZE = 24,
};
#define LEARNING_RATE 0.01f
#define CLIP_NORM 1.0f
#define LSTM_FORGET_BIAS 1.0f
#define BASELINE_MSE (1.0 / 6.0)   /* the MSE of always predicting the mean target, 1 */
#define SOLVED_MSE 0.01            /* below this: "solved" */
#define STUCK_MSE (0.9 / 6.0)      /* above this (within 10% of 1/6): "no better than baseline" */
#define HEATMAP_FLOOR 1e-8f        /* the heatmaps' colour scale: 1e-8 .. 1 of the row's largest */
#define LEARNED_MSE 0.05           /* a run "has learned" once its smoothed loss is below this */

static const char *const CELL_NAMES[] = { "rnn", "lstm", "gru" };
static const int LENGTHS[] = { 10, 50, 100 };
static const int QUICK_LENGTHS[] = { 5, 10 };
#define N_CELLS (int)(sizeof CELL_NAMES / sizeof CELL_NAMES[0])
#define N_LENGTHS (int)(sizeof LENGTHS / sizeof LENGTHS[0])
#define N_QUICK_LENGTHS (int)(sizeof QUICK_LENGTHS / sizeof QUICK_LENGTHS[0])

static const char USAGE[] =
    "usage: lab_adding [--seed N] [--seeds N] [--quick] [--steps N] [--lr X] [--hidden N]\n"
    "                  [--rho X] [--clip X] [--threads N] [--out DIR]\n"
    "Trains a tanh RNN, an LSTM and a GRU, with about the same number of parameters, on the\n"
    "adding problem at T = 10, 50 and 100 steps, without and with gradient-norm clipping,\n"
    "from several seeds, with Adam. Prints the median test MSE of each cell, T and clipping,\n"
    "its spread over the seeds and how many seeds solved it, against the 1/6 of guessing the\n"
    "mean, and writes to DIR: adding_results.csv (that table), adding_runs.csv (every run),\n"
    "adding_test_mse.svg (median test MSE against T), adding_loss.csv and adding_loss_CELL.svg\n"
    "(the first seed's smoothed training loss), adding_heatmap.csv and adding_heatmap_CELL.svg\n"
    "(||dL/dx_t|| for each t over training, T = the longest, first seed, no clipping), for\n"
    "CELL = rnn, lstm, gru. Takes about two minutes of two cores.\n"
    "  --seed N      seed of the seeds: weights and data, 0 or more (default 1)\n"
    "  --seeds N     train every cell, T and clipping from N seeds, 1 to 100 (default 5)\n"
    "  --quick       T = 5 and 10, 100 steps, 3 seeds (a few seconds at most, for tests)\n"
    "  --steps N     train every run for N steps, 100 to 1000000 (default 5000)\n"
    "  --lr X        Adam's learning rate for every cell (default 0.01)\n"
    "  --hidden N    the RNN's hidden size (default 16); each gated cell gets the largest at\n"
    "                which its model has no more parameters than the RNN's\n"
    "  --rho X       start the RNN's W_h at X Q, Q random orthogonal (default: PyTorch's init)\n"
    "  --clip X      the clipped runs clip the gradient norm at X (default 1)\n"
    "  --threads N   train N runs at a time, 1 to 16 (default 2); the results are the same\n"
    "  --out DIR     an existing directory for the CSV and SVG files (default results)\n"
    "  --help        print this and exit\n";

/* A cell as the runs train it. hidden: for the RNN, --hidden; for a gated cell, the largest
 * size at which the model (cell and readout) has no more parameters than the RNN's. */
typedef struct cell_config {
    const char *name;         /* for tg_cell_new */
    int hidden;
    long params;              /* cell and readout */
} cell_config;

/* What every run shares. */
typedef struct settings {
    int train_steps, test_batches, seeds;
    float lr, clip;
    float rho;                           /* the RNN's W_h = rho Q; 0: PyTorch's init */
    const int *lengths;
    int n_lengths;
    cell_config cells[N_CELLS];
} settings;

typedef struct options {
    lab_options lab;                     /* --seed, --quick, --out and the five knobs */
    int steps;                           /* 0: the default for --quick or not */
    int threads;
} options;

/* ---- the command line -------------------------------------------------------------------- */

static options parse_args(int argc, char **argv)
{
    options opt = { .lab = LAB_DEFAULTS, .steps = 0, .threads = DEFAULT_THREADS };
    opt.lab.takes = LAB_BIT(LAB_LR) | LAB_BIT(LAB_HIDDEN) | LAB_BIT(LAB_RHO) | LAB_BIT(LAB_CLIP)
                    | LAB_BIT(LAB_SEEDS);
    for (int i = 1; i < argc; i++) {
        if (lab_flag(argc, argv, &i, USAGE, &opt.lab))   /* --help, --quick, --seed, --out, knobs */
            continue;
        const char *flag = argv[i];
        const char *value = i + 1 < argc ? argv[++i] : NULL;
        if (strcmp(flag, "--steps") == 0)
            opt.steps = (int)whole_number(flag, value, MIN_TRAIN_STEPS, MAX_TRAIN_STEPS);
        else if (strcmp(flag, "--threads") == 0)
            opt.threads = (int)whole_number(flag, value, 1, LAB_MAX_THREADS);
        else
            usage_error("unknown flag '%s'", flag);
    }
    return opt;
}

/* ---- the model --------------------------------------------------------------------------- */

/* The cell and its readout of the last hidden state (model.h), PyTorch's init drawn from
 * seed; then an LSTM's forget-gate bias is set to LSTM_FORGET_BIAS, and with rho > 0 an RNN's
 * W_h to rho Q. False when out of memory. */
static bool model_init(model *m, const char *name, int hidden, float rho, uint64_t seed)
{
    tg_rng rng = tg_rng_new(seed);
    if (!model_new(m, name, INPUT_SIZE, hidden, 1, tg_rng_next(&rng))) {
        model_free(m);
        return false;
    }
    if (strcmp(name, "lstm") == 0)
        tg_lstm_cell_set_forget_bias(m->cell->impl, LSTM_FORGET_BIAS);  /* impl: a tg_lstm_cell */
    if (strcmp(name, "rnn") == 0 && rho > 0.0f) {
        tg_rnn_cell *rnn = m->cell->impl;                   /* what tg_cell_new("rnn", ...) wraps */
        if (tg_init_orthogonal(rnn->W_h, rho, &rng, NULL) != 0) {
            model_free(m);
            return false;
        }
    }
    model_init_readout(m, &rng);
    return true;
}

/* The number of values in the parameters of a model with this cell and hidden size, readout
 * included; -1 when out of memory. */
static long model_size(const char *name, int hidden)
{
    model m;
    if (!model_init(&m, name, hidden, 0.0f, 0))
        return -1;
    long size = 0;
    for (int i = 0; i < m.n_params; i++)
        size += (long)m.params[i]->rows * m.params[i]->cols;
    model_free(&m);
    return size;
}

/* The cells at the RNN's parameter budget: the RNN with rnn_hidden units, each other cell
 * with the largest hidden size whose model is no bigger (at least 1). False when out of
 * memory. */
static bool size_cells(int rnn_hidden, cell_config *cells)
{
    long budget = model_size("rnn", rnn_hidden);
    for (int c = 0; c < N_CELLS; c++) {
        int hidden = 1;
        if (c == 0)
            hidden = rnn_hidden;
        else
            while (model_size(CELL_NAMES[c], hidden + 1) <= budget)
                hidden++;
        cells[c] = (cell_config){ CELL_NAMES[c], hidden, model_size(CELL_NAMES[c], hidden) };
        if (cells[c].params < 0)
            return false;
    }
    return true;
}

/* ---- one run: train one cell at one T from one seed, with or without clipping, then test -- */

/* What one thread needs for its runs: a tape and data buffers big enough for the longest T
 * and the test batch. */
typedef struct workspace {
    tg_tape *tape;
    float *x, *y;                        /* steps x 2 x batch inputs, batch targets */
    float *losses;                       /* train_steps losses of the current run */
    tg_tensor **inputs;                  /* the longest T inputs of a step whose ||dL/dx_t|| is measured */
} workspace;

/* Where a run's random numbers come from: its initial weights, its training batches and its
 * test batches. */
typedef struct run_seeds {
    uint64_t init, data, test;
} run_seeds;

/* One run: what to train (filled in before the runs start) and what came of it. */
typedef struct run_result {
    const cell_config *cell;
    int steps;                           /* T */
    bool clipped;
    int seed_index;                      /* 0 .. seeds-1 */
    run_seeds seeds;
    int diverged_at;                     /* the step whose loss was not finite, or 0 */
    int skipped;                         /* steps skipped: a gradient, or an update, not finite */
    double test_mse;                     /* NaN after a divergence */
    float *smoothed;                     /* train_steps / CHART_EVERY points of the loss curve,
                                            or NULL: not kept */
    float *input_grads;                  /* HEATMAP_ROWS x T values of ||dL/dx_t||, or NULL */
} run_result;

static int longest_length(const settings *s) { return s->lengths[s->n_lengths - 1]; }

/* The heatmap's rows are measured every heatmap_every(s) steps, from step 0. */
static int heatmap_every(const settings *s) { return s->train_steps / HEATMAP_ROWS; }

/* False when out of memory (free w all the same). */
static bool workspace_init(workspace *w, const settings *s)
{
    int widest = BATCH > TEST_BATCH ? BATCH : TEST_BATCH;
    size_t longest = (size_t)longest_length(s);
    *w = (workspace){ .tape = tg_tape_new(),
                      .x = malloc(longest * INPUT_SIZE * (size_t)widest * sizeof *w->x),
                      .y = malloc((size_t)widest * sizeof *w->y),
                      .losses = malloc((size_t)s->train_steps * sizeof *w->losses),
                      .inputs = malloc(longest * sizeof *w->inputs) };
    return w->tape && w->x && w->y && w->losses && w->inputs;
}

static void workspace_free(workspace *w)
{
    tg_tape_free(w->tape);
    free(w->x);
    free(w->y);
    free(w->losses);
    free(w->inputs);
}

/* One Adam step of r's run on a fresh batch from rng. Sets *loss to the batch's loss before the
 * step (not finite: the run has diverged and nothing changed); with input_grads, also
 * input_grads[t] = ||dL/dx_t|| for t = 0..T-1. False on a tape error (printed). */
static bool train_step(workspace *w, model *m, tg_optimizer *opt, const settings *s,
                       run_result *r, tg_rng *rng, float *loss, float *input_grads)
{
    tg_task_adding(rng, r->steps, BATCH, w->x, w->y, NULL);
    tg_tape_reset(w->tape);
    tg_zero_grad(m->params, m->n_params, NULL);
    tg_tensor *mse = last_step_mse_state(w->tape, m, w->x, w->y, r->steps, BATCH, NULL,
                                         input_grads ? w->inputs : NULL);
    *loss = mse ? mse->data[0] : NAN;
    if (mse && !isfinite(*loss))
        return true;
    if (tg_backward(w->tape, mse) != 0) {
        complain("%s", tg_tape_error(w->tape));
        return false;
    }
    for (int t = 0; input_grads && t < r->steps; t++)
        input_grads[t] = tg_grad_norm(w->inputs[t]);
    bool finite = !r->clipped || !isnan(tg_clip_grad_norm(m->params, m->n_params, s->clip));
    if (!finite || tg_optimizer_step(opt, NULL) != 0)
        r->skipped++;   /* NaN from the clip, or a refused step: a gradient or update not finite */
    return true;
}

/* Sets *mse to the mean MSE of m over test_batches fresh batches of TEST_BATCH from rng.
 * False on a tape error (printed). */
static bool measure_test_mse(workspace *w, model *m, int steps, int test_batches, tg_rng *rng,
                             double *mse)
{
    double sum = 0.0;
    for (int i = 0; i < test_batches; i++) {
        tg_task_adding(rng, steps, TEST_BATCH, w->x, w->y, NULL);
        tg_tape_reset(w->tape);
        tg_tensor *loss = last_step_mse(w->tape, m, w->x, w->y, steps, TEST_BATCH);
        if (!loss) {
            complain("%s", tg_tape_error(w->tape));
            return false;
        }
        sum += loss->data[0];
    }
    *mse = sum / test_batches;
    return true;
}

/* The row of r's heatmap that step done (0-based) fills, or NULL when it fills none. */
static float *heatmap_row(const settings *s, const run_result *r, int done)
{
    int every = heatmap_every(s);
    if (!r->input_grads || done % every != 0 || done / every >= HEATMAP_ROWS)
        return NULL;
    return r->input_grads + (size_t)(done / every) * (size_t)r->steps;
}

/* Trains a fresh model as r says and tests it, filling in r's results. False on error. */
static bool run(workspace *w, const settings *s, run_result *r)
{
    model m;
    if (!model_init(&m, r->cell->name, r->cell->hidden, s->rho, r->seeds.init)) {
        complain("cannot make a '%s' cell: out of memory", r->cell->name);
        return false;
    }
    tg_error err;
    tg_optimizer *opt = tg_optimizer_new(TG_ADAM, m.params, m.n_params, s->lr, &err);
    if (!opt) {
        complain("%s", err.message);
        model_free(&m);
        return false;
    }
    r->test_mse = NAN;
    tg_rng data = tg_rng_new(r->seeds.data), test = tg_rng_new(r->seeds.test);
    int done = 0;
    bool ok = true;
    while (ok && done < s->train_steps && !r->diverged_at) {
        ok = train_step(w, &m, opt, s, r, &data, &w->losses[done], heatmap_row(s, r, done));
        done++;
        if (!isfinite(w->losses[done - 1]))
            r->diverged_at = done;
    }
    if (r->smoothed)
        smooth_losses(w->losses, r->diverged_at ? done - 1 : done, s->train_steps, SMOOTHING,
                      CHART_EVERY, r->smoothed);
    if (ok && !r->diverged_at)
        ok = measure_test_mse(w, &m, r->steps, s->test_batches, &test, &r->test_mse);
    tg_optimizer_free(opt);
    model_free(&m);
    return ok;
}

/* ---- every run, shared out among threads -------------------------------------------------- */

/* "none", or "norm 1.0" for clipping at 1. */
static const char *clipping_name(bool clipped, const settings *s, char name[CLIP_NAME_SIZE])
{
    if (!clipped)
        return "none";
    snprintf(name, CLIP_NAME_SIZE, "norm %.1f", (double)s->clip);
    return name;
}

/* workspace_init, workspace_free and run as runs.h calls them. */
static bool lab_workspace_init(void *w, const void *s) { return workspace_init(w, s); }
static void lab_workspace_free(void *w) { workspace_free(w); }
static bool lab_run(void *w, const void *s, void *r) { return run(w, s, r); }

/* The progress line of a run that has finished, the done-th of n_runs (runs.h). */
static void lab_progress(const void *s, const void *run, int done, int n_runs, double seconds)
{
    const run_result *r = run;
    char clip[CLIP_NAME_SIZE];
    complain("run %d/%d: %s T=%d clipping %s seed %d: test MSE %.4g (%.0f s)", done, n_runs,
             r->cell->name, r->steps, clipping_name(r->clipped, s, clip),
             r->seed_index + 1, r->test_mse, seconds);
}

/* The number of runs: every cell, T, clipping and seed. */
static int count_runs(const settings *s) { return N_CELLS * s->n_lengths * 2 * s->seeds; }

/* The index in runs of (cell c, length l, clipping, seed): the table's order, the seeds of a
 * row next to each other. */
static int run_index(const settings *s, int c, int l, int clip, int seed)
{
    return ((c * s->n_lengths + l) * 2 + clip) * s->seeds + seed;
}

/* The runs that measure ||dL/dx_t||: each cell's at the longest T, without clipping, first
 * seed. */
static run_result *heatmap_run(run_result *runs, const settings *s, int c)
{
    return &runs[run_index(s, c, s->n_lengths - 1, 0, 0)];
}

/* Lists every run, with its seeds: the same initial weights for every run from a seed, the
 * same batches for every run at a T from a seed. */
static void plan_runs(const settings *s, uint64_t seed, run_result *runs)
{
    tg_rng master = tg_rng_new(seed);
    for (int k = 0; k < s->seeds; k++) {
        uint64_t init = tg_rng_next(&master);
        for (int l = 0; l < s->n_lengths; l++) {
            tg_rng rng = tg_rng_new(tg_rng_next(&master));
            run_seeds seeds = { init, tg_rng_next(&rng), tg_rng_next(&rng) };
            for (int c = 0; c < N_CELLS; c++)
                for (int clip = 0; clip <= 1; clip++)
                    runs[run_index(s, c, l, clip, k)] = (run_result){
                        .cell = &s->cells[c], .steps = s->lengths[l], .clipped = clip,
                        .seed_index = k, .seeds = seeds };
        }
    }
}

/* Orders runs by T, the longest first (the order of the table among equals). */
static void longest_first(const run_result *runs, int n_runs, int *order)
{
    int n = 0;
    for (int steps = INT_MAX; n < n_runs;) {
        int longest = 0;
        for (int i = 0; i < n_runs; i++)
            if (runs[i].steps < steps && runs[i].steps > longest)
                longest = runs[i].steps;
        for (int i = 0; i < n_runs; i++)
            if (runs[i].steps == longest)
                order[n++] = i;
        steps = longest;
    }
}

/* Does every run on n_threads threads (the caller's one of them), the longest T first, so
 * that no thread is left with a long run at the end. False on error. */
static bool run_all(run_result *runs, int n_runs, const settings *s, int n_threads)
{
    int *order = malloc((size_t)n_runs * sizeof *order);
    if (!order) {
        complain("out of memory");
        return false;
    }
    longest_first(runs, n_runs, order);
    lab_runs all = { .runs = runs, .n_runs = n_runs, .run_size = sizeof *runs, .order = order,
                     .settings = s, .workspace_size = sizeof(workspace),
                     .workspace_init = lab_workspace_init, .workspace_free = lab_workspace_free,
                     .run = lab_run, .progress = lab_progress };
    bool ok = do_runs(&all, n_threads);
    free(order);
    return ok;
}

/* ---- the table ------------------------------------------------------------------------------ */

/* One row of the table: the runs of a cell at a T with or without clipping, over the seeds. */
typedef struct row_summary {
    const run_result *first;             /* the row's first run (its cell, T and clipping) */
    double median, min, max;             /* of the test MSE; a diverged run counts as +Inf */
    int solved, seeds;
} row_summary;

/* The row of the seeds' runs starting at runs[0] (runs[0..seeds-1]). */
static row_summary summarize(const run_result *runs, int seeds)
{
    double mse[LAB_MAX_SEEDS];
    row_summary row = { .first = runs, .seeds = seeds };
    for (int k = 0; k < seeds; k++) {
        mse[k] = isnan(runs[k].test_mse) ? INFINITY : runs[k].test_mse;
        row.solved += mse[k] < SOLVED_MSE;
    }
    row.median = median(mse, seeds);
    row.min = mse[0];
    row.max = mse[seeds - 1];
    return row;
}

static const char *verdict(double mse)
{
    if (!isfinite(mse))
        return "diverged";
    if (mse < SOLVED_MSE)
        return "solved";
    if (mse > STUCK_MSE)
        return "no better than baseline";
    return "better than baseline";
}

static void print_header(const settings *s, unsigned long long seed)
{
    printf("The adding problem: T steps of (value, marker); target: the sum of the marked\n"
           "values. Model: a cell with a readout y = W_y h_T + b_y; MSE loss; PyTorch's init,\n"
           "the LSTM's forget-gate bias set to %.0f%s.\n"
           "Same parameter budget, not same hidden size: each gated cell has the largest\n"
           "hidden size at which the model has no more parameters than the rnn's (rnn: the\n"
           "tanh RNN cell).\n"
           "Adam, lr %g, batch %d, %d steps; clipping: none, or of the gradient norm at %g.\n"
           "%d seeds from --seed %llu: the runs from a seed start from the same draw of\n"
           "weights and see the same batches at a given T.\n"
           "Test MSE over %d fresh batches of %d; predicting the mean scores 1/6 = %.3f.\n"
           "The median over the seeds, its range, and how many seeds solved the task.\n"
           "solved: test MSE < %.2f; no better than baseline: test MSE > %.3f (0.9 of 1/6).\n\n",
           (double)LSTM_FORGET_BIAS, s->rho > 0 ? ", the RNN's W_h = rho Q" : "", (double)s->lr,
           BATCH, s->train_steps, (double)s->clip, s->seeds, seed, s->test_batches, TEST_BATCH,
           BASELINE_MSE, SOLVED_MSE, STUCK_MSE);
    printf("%-5s %6s %6s\n", "cell", "hidden", "params");
    for (int c = 0; c < N_CELLS; c++)
        printf("%-5s %6d %6ld\n", s->cells[c].name, s->cells[c].hidden, s->cells[c].params);
    printf("\n");
}

static void print_table(const row_summary *rows, int n_rows, const settings *s)
{
    printf("%-5s %4s  %-9s %10s %9s %9s %7s %11s  %s\n", "cell", "T", "clipping", "median MSE",
           "min", "max", "solved", "/ baseline", "result");
    for (int i = 0; i < n_rows; i++) {
        const row_summary *row = &rows[i];
        char clip[CLIP_NAME_SIZE], solved[16];
        snprintf(solved, sizeof solved, "%d/%d", row->solved, row->seeds);
        printf("%-5s %4d  %-9s %10.3g %9.3g %9.3g %7s %11.3f  %s\n", row->first->cell->name,
               row->first->steps, clipping_name(row->first->clipped, s, clip), row->median,
               row->min, row->max, solved, row->median / BASELINE_MSE, verdict(row->median));
    }
}

/* The step at which r's smoothed loss first fell below LEARNED_MSE, or 0 when it never did
 * (r->smoothed must be kept). */
static int learned_at(const run_result *r, const settings *s)
{
    for (int i = 0; i < s->train_steps / CHART_EVERY; i++)
        if (r->smoothed[i] < LEARNED_MSE)
            return (i + 1) * CHART_EVERY;
    return 0;
}

/* When each of the first seed's runs learned: the plateau at 1/6 before the drop. */
static void print_plateaus(const run_result *runs, const settings *s)
{
    printf("\nThe first seed's runs: the step at which the training loss (the mean of the last\n"
           "%d steps) first fell below %.2f, or never.\n\n", SMOOTHING, LEARNED_MSE);
    printf("%-5s %4s  %-9s %11s\n", "cell", "T", "clipping", "below 0.05");
    for (int i = 0; i < count_runs(s); i += s->seeds) {
        const run_result *r = &runs[i];
        char clip[CLIP_NAME_SIZE], step[16];
        int at = learned_at(r, s);
        snprintf(step, sizeof step, at ? "%d" : "never", at);
        printf("%-5s %4d  %-9s %11s\n", r->cell->name, r->steps, clipping_name(r->clipped, s, clip),
               step);
    }
}

/* The median over the heatmap rows [from, to) of ||dL/dx_t|| / its row's largest, at input
 * step t (1-based); NaN when the range is empty. */
static double median_share(const run_result *r, int from, int to, int t)
{
    double share[HEATMAP_ROWS];
    int n = 0;
    for (int row = from; row < to; row++) {
        const float *g = r->input_grads + (size_t)row * (size_t)r->steps;
        float largest = 0.0f;
        for (int k = 0; k < r->steps; k++)
            largest = fmaxf(largest, g[k]);
        share[n++] = largest > 0 ? g[t - 1] / largest : 0.0;
    }
    return n == 0 ? NAN : median(share, n);
}

/* What the heatmaps show, in numbers: how much of the gradient reaches the first and the
 * middle input, before and after the run learned. */
static void print_reach(run_result *runs, const settings *s)
{
    int T = longest_length(s), every = heatmap_every(s);
    printf("\nWhere the gradient reaches (the heatmaps): ||dL/dx_t|| / its largest over t at\n"
           "t = 1 and t = %d (mid), T = %d, first seed, no clipping; the median over the\n"
           "steps measured (every %d) before and after the run learned, '-' for none.\n\n",
           T / 2, T, every);
    printf("%-5s %11s %11s %11s %11s %11s\n", "cell", "learned at", "t=1 before", "t=1 after",
           "mid before", "mid after");
    for (int c = 0; c < N_CELLS; c++) {
        const run_result *r = heatmap_run(runs, s, c);
        int at = learned_at(r, s), split = at ? (at + every - 1) / every : HEATMAP_ROWS;
        split = split < HEATMAP_ROWS ? split : HEATMAP_ROWS;
        char when[16], share[4][16];
        snprintf(when, sizeof when, at ? "%d" : "never", at);
        double values[4] = { median_share(r, 0, split, 1), median_share(r, split, HEATMAP_ROWS, 1),
                             median_share(r, 0, split, T / 2),
                             median_share(r, split, HEATMAP_ROWS, T / 2) };
        for (int k = 0; k < 4; k++)
            snprintf(share[k], sizeof share[k], isnan(values[k]) ? "-" : "%.2g", values[k]);
        printf("%-5s %11s %11s %11s %11s %11s\n", r->cell->name, when, share[0], share[1],
               share[2], share[3]);
    }
}

/* The settings a row's runs share, as one CSV field without commas: init=pytorch, or
 * init=orthogonal rho=X for an RNN started at W_h = rho Q (--rho). */
static void add_settings(table *t, const run_result *r, const settings *s)
{
    char init[48] = "pytorch";
    if (strcmp(r->cell->name, "rnn") == 0 && s->rho > 0.0f)
        snprintf(init, sizeof init, "orthogonal rho=%g", (double)s->rho);
    table_add(t, "adam lr=%g batch=%d steps=%d hidden=%d params=%ld forget_bias=%g init=%s",
              (double)s->lr, BATCH, s->train_steps, r->cell->hidden, r->cell->params,
              strcmp(r->cell->name, "lstm") == 0 ? (double)LSTM_FORGET_BIAS : 0.0, init);
}

/* DIR/adding_results.csv: the table, one row per cell, clipping and T. */
static bool write_results_csv(const row_summary *rows, int n_rows, const settings *s,
                              const char *dir)
{
    char path[PATH_SIZE];
    if (!output_path(path, sizeof path, dir, "adding_results.csv"))
        return false;
    table t = { NULL, 0, 0, false };
    table_add(&t, "cell,clip,T,test_mse,solved,test_mse_min,test_mse_max,seeds,solved_seeds,"
                  "settings\n");
    for (int i = 0; i < n_rows; i++) {
        const row_summary *row = &rows[i];
        char clip[CLIP_NAME_SIZE];
        table_add(&t, "%s,%s,%d,%.6g,%d,%.6g,%.6g,%d,%d,", row->first->cell->name,
                  clipping_name(row->first->clipped, s, clip), row->first->steps, row->median,
                  row->median < SOLVED_MSE, row->min, row->max, row->seeds, row->solved);
        add_settings(&t, row->first, s);
        table_add(&t, "\n");
    }
    return write_table(&t, path);
}

/* DIR/adding_runs.csv: every run. */
static bool write_runs_csv(const run_result *runs, int n_runs, const settings *s, const char *dir)
{
    char path[PATH_SIZE];
    if (!output_path(path, sizeof path, dir, "adding_runs.csv"))
        return false;
    table t = { NULL, 0, 0, false };
    table_add(&t, "cell,clip,T,seed,test_mse,solved,diverged_at,skipped,settings\n");
    for (int i = 0; i < n_runs; i++) {
        const run_result *r = &runs[i];
        char clip[CLIP_NAME_SIZE];
        table_add(&t, "%s,%s,%d,%d,%.6g,%d,%d,%d,", r->cell->name,
                  clipping_name(r->clipped, s, clip), r->steps, r->seed_index + 1, r->test_mse,
                  r->test_mse < SOLVED_MSE, r->diverged_at, r->skipped);
        add_settings(&t, r, s);
        table_add(&t, "\n");
    }
    return write_table(&t, path);
}

/* ---- the charts ----------------------------------------------------------------------------- */

/* The two reference lines over xs[0..n-1]: 1/6 (predicting the mean) and 0.01 (solved);
 * levels holds 2 n floats. */
static void reference_lines(const float *xs, int n, float *levels, tg_series *series)
{
    for (int i = 0; i < n; i++) {
        levels[i] = (float)BASELINE_MSE;
        levels[n + i] = (float)SOLVED_MSE;
    }
    series[0] = (tg_series){ "predicting the mean: 1/6", xs, levels, n, TG_SERIES_REFERENCE };
    series[1] = (tg_series){ "solved: 0.01", xs, levels + n, n, TG_SERIES_REFERENCE };
}

/* DIR/adding_test_mse.svg: the median test MSE against T, one marked line per cell and
 * clipping (rows in the table's order: a cell's lengths, each without then with clipping). */
static bool write_test_mse_chart(const row_summary *rows, const settings *s, const char *dir)
{
    enum { MAX_LINES = N_CELLS * 2 };
    float T[N_LENGTHS], median[MAX_LINES][N_LENGTHS], levels[2 * N_LENGTHS];
    char label[MAX_LINES][LABEL_SIZE];
    tg_series series[MAX_LINES + 2];
    int n = s->n_lengths;
    for (int l = 0; l < n; l++)
        T[l] = (float)s->lengths[l];
    for (int c = 0; c < N_CELLS; c++)
        for (int clip = 0; clip <= 1; clip++) {
            int line = c * 2 + clip;
            for (int l = 0; l < n; l++)
                median[line][l] = (float)rows[(c * n + l) * 2 + clip].median;
            char name[CLIP_NAME_SIZE];
            snprintf(label[line], LABEL_SIZE, "%s, clipping %s", CELL_NAMES[c],
                     clipping_name(clip, s, name));
            series[line] = (tg_series){ label[line], T, median[line], n, TG_SERIES_MARKED };
        }
    reference_lines(T, n, levels, series + MAX_LINES);
    char title[128];
    snprintf(title, sizeof title, "Adding problem: median test MSE over %d seeds", s->seeds);
    tg_chart chart = { title, "T (sequence length)", "test MSE (log scale)", 1, series,
                       MAX_LINES + 2 };
    return write_chart(&chart, dir, "adding_test_mse", false);
}

/* The first seed's loss curves: every curve in DIR/adding_loss.csv, and per cell a chart
 * DIR/adding_loss_CELL.svg of its T and clippings, with the reference lines. */
static bool write_loss_charts(const run_result *runs, const settings *s, const char *dir)
{
    enum { MAX_CURVES = N_CELLS * N_LENGTHS * 2 };
    int n_points = s->train_steps / CHART_EVERY;
    float *step = malloc((size_t)n_points * sizeof *step);
    float *levels = malloc(2 * (size_t)n_points * sizeof *levels);
    bool ok = step && levels;
    if (!ok)
        complain("out of memory");
    char label[MAX_CURVES][LABEL_SIZE];
    tg_series series[MAX_CURVES + 2];
    int per_cell = s->n_lengths * 2, n_curves = N_CELLS * per_cell;
    for (int i = 0; ok && i < n_points; i++)
        step[i] = (float)((i + 1) * CHART_EVERY);
    for (int i = 0; ok && i < n_curves; i++) {
        const run_result *r = &runs[i * s->seeds];           /* each row's first seed */
        char clip[CLIP_NAME_SIZE];
        snprintf(label[i], LABEL_SIZE, "%s T=%d, clipping %s", r->cell->name, r->steps,
                 clipping_name(r->clipped, s, clip));
        series[i] = (tg_series){ label[i], step, r->smoothed, n_points, TG_SERIES_LINE };
    }
    char title[128];
    snprintf(title, sizeof title, "Adding problem: training loss, seed 1 (mean of the last %d "
             "steps)", SMOOTHING);
    tg_chart all = { title, "Adam step", "MSE (log scale)", 1, series, n_curves };
    ok = ok && write_chart(&all, dir, "adding_loss", true);
    for (int c = 0; ok && c < N_CELLS; c++) {
        tg_series cell[MAX_CURVES + 2];
        memcpy(cell, series + c * per_cell, (size_t)per_cell * sizeof cell[0]);
        reference_lines(step, n_points, levels, cell + per_cell);
        char name[64];
        snprintf(name, sizeof name, "adding_loss_%s", CELL_NAMES[c]);
        tg_chart chart = all;
        chart.series = cell;
        chart.n_series = per_cell + 2;
        ok = write_chart(&chart, dir, name, false);
    }
    free(step);
    free(levels);
    return ok;
}

/* DIR/adding_heatmap_CELL.svg: r's ||dL/dx_t||, each row divided by its largest value. */
static bool write_heatmap(const run_result *r, const settings *s, const char *dir)
{
    int T = r->steps;
    float *relative = malloc((size_t)HEATMAP_ROWS * (size_t)T * sizeof *relative);
    if (!relative) {
        complain("out of memory");
        return false;
    }
    for (int row = 0; row < HEATMAP_ROWS; row++) {
        const float *g = r->input_grads + (size_t)row * (size_t)T;
        float largest = 0.0f;
        for (int t = 0; t < T; t++)
            largest = fmaxf(largest, g[t]);
        for (int t = 0; t < T; t++)
            relative[(size_t)row * (size_t)T + (size_t)t] = largest > 0 ? g[t] / largest : NAN;
    }
    char title[128], path[PATH_SIZE], name[64], x_label[96];
    snprintf(title, sizeof title, "%s, T = %d: where the gradient reaches, while training",
             r->cell->name, T);
    snprintf(x_label, sizeof x_label, "t (input step; the loss is read after t = %d)", T);
    snprintf(name, sizeof name, "adding_heatmap_%s.svg", r->cell->name);
    tg_heatmap map = { title, x_label, "Adam step", "||dL/dx_t|| / largest over t (log scale)",
                       HEATMAP_ROWS, T, relative, 0.5f, T + 0.5f, 0.0f,
                       (float)(heatmap_every(s) * HEATMAP_ROWS), 1, HEATMAP_FLOOR, 1.0f };
    tg_error err;
    bool ok = output_path(path, sizeof path, dir, name);
    if (ok && tg_heatmap_write_svg(&map, path, &err) != 0) {
        complain("%s", err.message);
        ok = false;
    }
    free(relative);
    return ok;
}

/* DIR/adding_heatmap.csv: every measured ||dL/dx_t||, one row per cell and step, and the
 * heatmaps. */
static bool write_heatmaps(run_result *runs, const settings *s, const char *dir)
{
    char path[PATH_SIZE];
    if (!output_path(path, sizeof path, dir, "adding_heatmap.csv"))
        return false;
    int T = longest_length(s);
    table t = { NULL, 0, 0, false };
    table_add(&t, "cell,step");
    for (int k = 1; k <= T; k++)
        table_add(&t, ",x_%d", k);
    table_add(&t, "\n");
    for (int c = 0; c < N_CELLS; c++)
        for (int row = 0; row < HEATMAP_ROWS; row++) {
            const float *g = heatmap_run(runs, s, c)->input_grads + (size_t)row * (size_t)T;
            table_add(&t, "%s,%d", CELL_NAMES[c], row * heatmap_every(s));
            for (int k = 0; k < T; k++)
                table_add(&t, ",%.4g", (double)g[k]);
            table_add(&t, "\n");
        }
    bool ok = write_table(&t, path);
    for (int c = 0; ok && c < N_CELLS; c++)
        ok = write_heatmap(heatmap_run(runs, s, c), s, dir);
    return ok;
}

/* ---- main -------------------------------------------------------------------------------- */

/* The settings from the command line and the defaults. False when out of memory. */
static bool make_settings(const options *opt, settings *s)
{
    const lab_options *lab = &opt->lab;
    bool quick = lab->quick;
    *s = (settings){
        .train_steps = opt->steps ? opt->steps : quick ? QUICK_TRAIN_STEPS : TRAIN_STEPS,
        .test_batches = quick ? QUICK_TEST_BATCHES : TEST_BATCHES,
        .seeds = lab_given(lab, LAB_SEEDS) ? lab->seeds : quick ? QUICK_SEEDS : SEEDS,
        .lr = lab_given(lab, LAB_LR) ? lab->lr : LEARNING_RATE,
        .clip = lab_given(lab, LAB_CLIP) ? lab->clip : CLIP_NORM,
        .rho = lab_given(lab, LAB_RHO) ? lab->rho : 0.0f,
        .lengths = quick ? QUICK_LENGTHS : LENGTHS,
        .n_lengths = quick ? N_QUICK_LENGTHS : N_LENGTHS };
    if (size_cells(lab_given(lab, LAB_HIDDEN) ? lab->hidden : RNN_HIDDEN, s->cells))
        return true;
    complain("out of memory");
    return false;
}

/* Buffers for the first seed's loss curves and the heatmap runs' gradients; NULL when out of
 * memory. Free with free(). */
static float *attach_buffers(run_result *runs, const settings *s)
{
    size_t n_points = (size_t)(s->train_steps / CHART_EVERY), n_curves = N_CELLS * s->n_lengths * 2;
    size_t per_map = (size_t)HEATMAP_ROWS * (size_t)longest_length(s);
    float *buffer = malloc((n_curves * n_points + N_CELLS * per_map) * sizeof *buffer);
    if (!buffer)
        return NULL;
    for (size_t i = 0; i < n_curves; i++)
        runs[i * (size_t)s->seeds].smoothed = buffer + i * n_points;
    for (int c = 0; c < N_CELLS; c++)
        heatmap_run(runs, s, c)->input_grads = buffer + n_curves * n_points + (size_t)c * per_map;
    return buffer;
}

/* The table, the CSV files and the charts. False on the first failure. */
static bool report(run_result *runs, const settings *s, unsigned long long seed, const char *dir)
{
    int n_rows = count_runs(s) / s->seeds;
    row_summary *rows = malloc((size_t)n_rows * sizeof *rows);
    if (!rows) {
        complain("out of memory");
        return false;
    }
    for (int i = 0; i < n_rows; i++)
        rows[i] = summarize(runs + (size_t)i * (size_t)s->seeds, s->seeds);
    print_header(s, seed);
    print_table(rows, n_rows, s);
    print_plateaus(runs, s);
    print_reach(runs, s);
    bool ok = write_results_csv(rows, n_rows, s, dir) && write_runs_csv(runs, count_runs(s), s, dir)
              && write_test_mse_chart(rows, s, dir) && write_loss_charts(runs, s, dir)
              && write_heatmaps(runs, s, dir);
    free(rows);
    return ok;
}

int main(int argc, char **argv)
{
    program = "lab_adding";
    options opt = parse_args(argc, argv);
    settings s;
    if (!is_directory(opt.lab.out) || !make_settings(&opt, &s))
        return 1;
    int n_runs = count_runs(&s);
    run_result *runs = malloc((size_t)n_runs * sizeof *runs);
    float *buffers = NULL;
    if (runs) {
        plan_runs(&s, opt.lab.seed, runs);
        buffers = attach_buffers(runs, &s);
    }
    int status = 1;
    if (!runs || !buffers)
        complain("out of memory");
    else if (run_all(runs, n_runs, &s, opt.threads))
        status = report(runs, &s, opt.lab.seed, opt.lab.out) ? 0 : 1;
    free(buffers);
    free(runs);
    return status;
}
