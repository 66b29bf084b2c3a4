/* lab_copy.c: the copy (memory) task, learned by a tanh RNN, by two RNNs whose only fix is their
 * initial W_h, and by the gated cells: gating is not the only way to carry a gradient far.
 *
 * Each sequence shows LENGTH symbols (of 8), then DELAY blank steps, the last of them a
 * delimiter that says "recall now", then LENGTH more blanks during which the model must output
 * the symbols in order (tg_task_copy). The loss is the cross-entropy of the readout
 * W_y h_t + b_y at the recall steps; guessing scores ln 8 = 2.079. Symbol i is shown at step i
 * and recalled at step LENGTH + DELAY + i: every answer needs a gradient that reaches
 * LENGTH + DELAY steps back.
 *
 *   tanh         h_t = tanh(W_h h_{t-1} + W_x x_t + b) at PyTorch's init: the gradient fades by
 *                about W_h's spectral radius (0.6 at hidden 50) per step (lab_gradient_norms)
 *   irnn         h_t = relu(W_h h_{t-1} + W_x x_t + b) with W_h = rho I and b = 0 (Le, Jaitly &
 *                Hinton 2015): while a unit is active one step back multiplies its gradient
 *                by rho, exactly, and by nothing else
 *   orthogonal   the tanh cell with W_h = rho Q, Q orthogonal: every singular value is rho,
 *                so only the slopes of tanh shrink the gradient
 *   lstm, gru    the gated cells at PyTorch's init (the LSTM's forget-gate bias at 1)
 *
 * Every cell is trained by Adam with gradient-norm clipping, at each learning rate of a sweep,
 * from --seeds seeds; every cell of a seed starts its W_x, readout and data from the same
 * numbers. Expect the orthogonal RNN, a tanh cell with no gate, to solve the task on every
 * seed, where the same cell at PyTorch's init recalls only part of the symbols; in this budget
 * the GRU comes close, and the LSTM and the IRNN do not (docs/bptt.md, experiment E). The runs
 * are independent and shared out among two threads; a run's result does not depend on which
 * thread ran it. */
#define _POSIX_C_SOURCE 200809L   /* for stat() (is_directory in cli.h), to check --out */

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
    LENGTH = 5,               /* symbols to remember */
    DELAY = 20,               /* blank steps between the last symbol and the recall */
    HIDDEN = 32,
    BATCH = 32,
    TEST_BATCH = 500,
    TRAIN_STEPS = 2500,
    SEEDS = 3,
    QUICK_LENGTH = 2,
    QUICK_DELAY = 4,
    QUICK_HIDDEN = 16,
    QUICK_TRAIN_STEPS = 150,
    QUICK_SEEDS = 1,
    THREADS = 2,
    SMOOTHING = 100,          /* the chart shows the mean loss of the last SMOOTHING steps */
    CHART_EVERY = 25,         /* ... every CHART_EVERY steps */
    MAX_LRS = 2,
    PATH_SIZE = 4096,
    LABEL_SIZE = 48,
};
#define RHO 1.0f               /* irnn: W_h = RHO I; orthogonal: W_h = RHO Q */
#define CLIP_NORM 1.0f
#define LSTM_FORGET_BIAS 1.0f
#define GUESSING_LOSS 2.0794415f   /* ln 8 */
#define SOLVED_ACCURACY 0.99       /* a run solved the task when it recalls this share right */

static const float LRS[MAX_LRS] = { 0.003f, 0.01f };
static const char *const CELLS[] = { "tanh", "irnn", "orthogonal", "lstm", "gru" };
#define N_CELLS (int)(sizeof CELLS / sizeof CELLS[0])

static const char USAGE[] =
    "usage: lab_copy [--seed N] [--quick] [--lr X] [--hidden N] [--rho X] [--clip X]\n"
    "                [--seeds N] [--out DIR]\n"
    "Trains a tanh RNN, an IRNN (ReLU, W_h = I), a tanh RNN with W_h = Q orthogonal, an LSTM\n"
    "and a GRU (hidden 32) on the copy task (5 symbols of 8, recalled after a delay of 20\n"
    "steps) with Adam for 2500 steps at lr 0.003 and 0.01 from 3 seeds; prints the median test\n"
    "loss and recall accuracy of each against the ln 8 = 2.079 of guessing, and writes\n"
    "DIR/copy_results.csv (every run) and DIR/copy_loss.svg (the training loss of each cell at\n"
    "its best lr). Takes about 25 s of CPU time, shared by two threads.\n"
    "  --seed N    seed for the weights and the data, 0 or more (default 1)\n"
    "  --lr X      train at this Adam learning rate only, instead of the sweep\n"
    "  --hidden N  hidden units of every cell (default 32)\n"
    "  --rho X     the gain of the non-gated fixes: W_h = X I (irnn), X Q (orthogonal)\n"
    "              (default 1)\n"
    "  --clip X    clip the gradient's norm to X (default 1)\n"
    "  --seeds N   train each cell at each lr from N seeds (default 3)\n"
    "  --quick     2 symbols, delay 4, hidden 16, 150 steps, 1 seed, lr 0.01 (for tests)\n"
    "  --out DIR   an existing directory for the CSV and SVG files (default results)\n"
    "  --help      print this and exit\n";

/* What every run shares: the task's sizes and the training settings. */
typedef struct settings {
    int length, delay, hidden, train_steps, n_seeds, n_lrs;
    float lrs[MAX_LRS], rho, clip;
} settings;

static int sequence_steps(const settings *s) { return 2 * s->length + s->delay; }

/* ---- the cells --------------------------------------------------------------------------- */

/* h_t = relu(W_h h_{t-1} + W_x x_t + b): tg_rnn_cell_forward's step with tg_relu for tg_tanh. */
static tg_cell_state relu_step(tg_tape *tape, void *impl, tg_tensor *x_t, tg_cell_state prev)
{
    tg_rnn_cell *rnn = impl;
    tg_tensor *from_input = tg_matmul_add(tape, rnn->W_x, x_t, rnn->b);              /* W_x x_t + b */
    return (tg_cell_state){ .h = tg_relu(tape, tg_matmul_add(tape, rnn->W_h, prev.h, from_input)) };
}

/* W = rho I (square). */
static void scaled_identity(tg_tensor *W, float rho)
{
    memset(W->data, 0, (size_t)W->rows * W->cols * sizeof *W->data);
    for (int i = 0; i < W->rows; i++)
        W->data[i * W->cols + i] = rho;
}

/* The model of cell `name` (one of CELLS) with its readout, every random number drawn from
 * seed. False when out of memory (model_free cleans up either way). */
static bool model_init(model *m, const char *name, const settings *s, uint64_t seed)
{
    bool gated = strcmp(name, "lstm") == 0 || strcmp(name, "gru") == 0;
    tg_rng rng = tg_rng_new(seed);
    if (!model_new(m, gated ? name : "rnn", TG_COPY_INPUTS, s->hidden, TG_COPY_SYMBOLS,
                   tg_rng_next(&rng)))
        return false;
    model_init_readout(m, &rng);
    tg_cell *cell = m->cell;
    if (strcmp(name, "lstm") == 0)
        tg_lstm_cell_set_forget_bias(cell->impl, LSTM_FORGET_BIAS);
    if (gated || strcmp(name, "tanh") == 0)
        return true;
    tg_rnn_cell *rnn = cell->impl;
    cell->name = name;
    if (strcmp(name, "irnn") == 0) {
        scaled_identity(rnn->W_h, s->rho);
        cell->step = relu_step;
        return true;
    }
    return tg_init_orthogonal(rnn->W_h, s->rho, &rng, NULL) == 0;
}

/* ---- one run: train one cell at one lr from one seed, then test --------------------------- */

/* The mean cross-entropy over the recall steps of m's readout, recorded on the tape (1 x 1),
 * for a batch of tg_task_copy's sequences: x (steps x TG_COPY_INPUTS x batch), targets y
 * (length x batch). *correct gets the number of recalled symbols whose largest logit is the
 * target's. */
static tg_tensor *recall_loss(tg_tape *tape, model *m, const settings *s, const float *x,
                              const int *y, int batch, long *correct)
{
    int steps = sequence_steps(s), first_recall = steps - s->length;
    tg_cell_state state = tg_cell_zero_state(tape, m->cell, batch);      /* h_0 = 0 */
    tg_tensor *sum = NULL;
    *correct = 0;
    for (int t = 0; t < steps; t++) {
        tg_tensor *x_t = tg_constant(tape, TG_COPY_INPUTS, batch,
                                     x + (size_t)t * TG_COPY_INPUTS * batch); /* inputs x batch */
        state = tg_cell_step(tape, m->cell, x_t, state);                 /* h: hidden x batch */
        if (t < first_recall)
            continue;
        const int *target = y + (size_t)(t - first_recall) * batch;
        tg_tensor *logits = tg_matmul_add(tape, m->W_y, state.h, m->b_y); /* 8 x batch */
        tg_tensor *loss = tg_cross_entropy(tape, logits, target);       /* 1 x 1 */
        sum = sum ? tg_add(tape, sum, loss) : loss;
        for (int b = 0; logits && b < batch; b++) {
            int best = 0;
            for (int k = 1; k < TG_COPY_SYMBOLS; k++)
                if (logits->data[k * batch + b] > logits->data[best * batch + b])
                    best = k;
            *correct += best == target[b];
        }
    }
    return tg_scale(tape, sum, 1.0f / (float)s->length);
}

/* One run: what to train (filled in before the runs start) and what came of it. */
typedef struct run_result {
    const char *cell;
    float lr;
    int seed_index;
    uint64_t init_seed, data_seed, test_seed;
    int skipped;                  /* steps skipped: the gradient or the update not finite */
    double test_loss, accuracy;   /* on TEST_BATCH fresh sequences */
    float *smoothed;              /* train_steps / CHART_EVERY points of the loss curve */
} run_result;

/* What one thread needs for its runs: a tape and buffers for the test batch. */
typedef struct workspace {
    tg_tape *tape;
    float *x, *losses;
    int *y;
} workspace;

static bool workspace_init(workspace *w, const settings *s)
{
    *w = (workspace){ .tape = tg_tape_new(),
                      .x = malloc((size_t)sequence_steps(s) * TG_COPY_INPUTS * TEST_BATCH
                                  * sizeof *w->x),
                      .losses = malloc((size_t)s->train_steps * sizeof *w->losses),
                      .y = malloc((size_t)s->length * TEST_BATCH * sizeof *w->y) };
    return w->tape && w->x && w->losses && w->y;
}

static void workspace_free(workspace *w)
{
    tg_tape_free(w->tape);
    free(w->x);
    free(w->losses);
    free(w->y);
}

/* One Adam step of r's run on a fresh batch from rng; *loss gets the batch's loss before the
 * step. False on a tape or optimizer error (printed). */
static bool train_step(workspace *w, model *m, tg_optimizer *adam, const settings *s,
                       run_result *r, tg_rng *rng, float *loss)
{
    long correct;
    tg_task_copy(rng, s->length, s->delay, BATCH, w->x, w->y, NULL);
    tg_tape_reset(w->tape);
    tg_zero_grad(m->params, m->n_params, NULL);
    tg_tensor *mean = recall_loss(w->tape, m, s, w->x, w->y, BATCH, &correct);
    *loss = mean ? mean->data[0] : NAN;
    if (!mean || tg_backward(w->tape, mean) != 0) {
        complain("%s", tg_tape_error(w->tape));
        return false;
    }
    if (isnan(tg_clip_grad_norm(m->params, m->n_params, s->clip))
        || tg_optimizer_step(adam, NULL) != 0)
        r->skipped++;
    return true;
}

/* Trains a fresh model as r says and tests it, filling in r's results. False on error. */
static bool run(workspace *w, const settings *s, run_result *r)
{
    model m;
    tg_error err;
    tg_optimizer *adam = NULL;
    bool ok = model_init(&m, r->cell, s, r->init_seed);
    if (ok)
        adam = tg_optimizer_new(TG_ADAM, m.params, m.n_params, r->lr, &err);
    if (!ok || !adam) {
        complain("%s", ok ? err.message : "out of memory");
        model_free(&m);
        return false;
    }
    tg_rng data = tg_rng_new(r->data_seed), test = tg_rng_new(r->test_seed);
    for (int step = 0; ok && step < s->train_steps; step++)
        ok = train_step(w, &m, adam, s, r, &data, &w->losses[step]);
    if (ok) {
        smooth_losses(w->losses, s->train_steps, s->train_steps, SMOOTHING, CHART_EVERY,
                      r->smoothed);
        long correct;
        tg_task_copy(&test, s->length, s->delay, TEST_BATCH, w->x, w->y, NULL);
        tg_tape_reset(w->tape);
        tg_tensor *loss = recall_loss(w->tape, &m, s, w->x, w->y, TEST_BATCH, &correct);
        ok = loss != NULL;
        if (!ok)
            complain("%s", tg_tape_error(w->tape));
        r->test_loss = ok ? loss->data[0] : NAN;
        r->accuracy = (double)correct / ((double)s->length * TEST_BATCH);
    }
    tg_optimizer_free(adam);
    model_free(&m);
    return ok;
}

/* ---- every run, shared out among threads -------------------------------------------------- */

/* workspace_init, workspace_free and run as runs.h calls them. */
static bool lab_workspace_init(void *w, const void *s) { return workspace_init(w, s); }
static void lab_workspace_free(void *w) { workspace_free(w); }
static bool lab_run(void *w, const void *s, void *r) { return run(w, s, r); }

/* The progress line of a run that has finished, the done-th of n_runs (runs.h). */
static void lab_progress(const void *s, const void *run, int done, int n_runs, double seconds)
{
    (void)s;
    const run_result *r = run;
    complain("[%d/%d] %s lr %g seed %d: test loss %.3f, recall %.1f%% (%.0f s)", done, n_runs,
             r->cell, (double)r->lr, r->seed_index + 1, r->test_loss, 100.0 * r->accuracy,
             seconds);
}

/* Lists every (cell, lr, seed) in runs, in the table's order: run s of every cell and lr
 * starts from the same init seed (the same W_x and readout draws) and sees the same batches.
 * Returns the number of runs. */
static int plan_runs(const settings *s, uint64_t seed, run_result *runs, float *curves)
{
    tg_rng master = tg_rng_new(seed);
    uint64_t seeds[LAB_MAX_SEEDS][3];
    for (int k = 0; k < s->n_seeds; k++)
        for (int j = 0; j < 3; j++)
            seeds[k][j] = tg_rng_next(&master);
    int n = 0, points = s->train_steps / CHART_EVERY;
    for (int c = 0; c < N_CELLS; c++)
        for (int l = 0; l < s->n_lrs; l++)
            for (int k = 0; k < s->n_seeds; k++, n++)
                runs[n] = (run_result){ .cell = CELLS[c], .lr = s->lrs[l], .seed_index = k,
                                        .init_seed = seeds[k][0], .data_seed = seeds[k][1],
                                        .test_seed = seeds[k][2],
                                        .smoothed = curves + (size_t)n * points };
    return n;
}

/* Does every run on THREADS threads (the caller's one of them). False on error. */
static bool run_all(run_result *runs, int n_runs, const settings *s)
{
    lab_runs all = { .runs = runs, .n_runs = n_runs, .run_size = sizeof *runs, .settings = s,
                     .workspace_size = sizeof(workspace), .workspace_init = lab_workspace_init,
                     .workspace_free = lab_workspace_free, .run = lab_run,
                     .progress = lab_progress };
    return do_runs(&all, THREADS);
}

/* ---- the table and the chart --------------------------------------------------------------- */

/* One row of the table: a cell at an lr over every seed. */
typedef struct row {
    const run_result *first;      /* its n_seeds runs, one after another */
    double loss, accuracy;        /* medians over seeds */
    double lowest, highest;       /* the test loss's range over seeds */
    int solved, skipped;
} row;

static row summarize(const run_result *first, int n_seeds)
{
    row r = { .first = first, .lowest = INFINITY, .highest = -INFINITY };
    double loss[LAB_MAX_SEEDS], accuracy[LAB_MAX_SEEDS];
    for (int k = 0; k < n_seeds; k++) {
        loss[k] = first[k].test_loss;
        accuracy[k] = first[k].accuracy;
        r.lowest = fmin(r.lowest, loss[k]);
        r.highest = fmax(r.highest, loss[k]);
        r.solved += first[k].accuracy >= SOLVED_ACCURACY;
        r.skipped += first[k].skipped;
    }
    r.loss = median(loss, n_seeds);
    r.accuracy = median(accuracy, n_seeds);
    return r;
}

static void print_table(const row *rows, int n_rows, const settings *s, unsigned long long seed)
{
    printf("The copy task: %d symbols of %d, recalled in order after a delay of %d steps (%d\n"
           "steps a sequence). Loss: the cross-entropy of the readout at the %d recall steps;\n"
           "guessing scores ln 8 = %.3f. Hidden %d, batch %d, Adam for %d steps with the\n"
           "gradient's norm clipped to %g, %d seed%s (--seed %llu); test on %d fresh sequences.\n"
           "tanh: PyTorch's init; irnn: ReLU, W_h = %g I; orthogonal: tanh, W_h = %g Q; lstm:\n"
           "forget bias %g; gru: PyTorch's init. test loss and recall: medians over seeds;\n"
           "lowest, highest: the test loss's range over seeds; solved: recall >= %.0f%%.\n\n",
           s->length, TG_COPY_SYMBOLS, s->delay, sequence_steps(s), s->length,
           (double)GUESSING_LOSS, s->hidden, BATCH, s->train_steps, (double)s->clip, s->n_seeds,
           s->n_seeds == 1 ? "" : "s", seed, TEST_BATCH, (double)s->rho, (double)s->rho,
           (double)LSTM_FORGET_BIAS, 100.0 * SOLVED_ACCURACY);
    printf("%-11s %6s  %9s  %7s  %7s  %8s  %6s\n", "cell", "lr", "test loss", "lowest", "highest",
           "recall", "solved");
    for (int i = 0; i < n_rows; i++) {
        const row *r = &rows[i];
        printf("%-11s %6.3f  %9.3f  %7.3f  %7.3f  %7.1f%%  %4d/%d\n", r->first->cell,
               (double)r->first->lr, r->loss, r->lowest, r->highest, 100.0 * r->accuracy,
               r->solved, s->n_seeds);
    }
    int skipped = 0;
    for (int i = 0; i < n_rows; i++)
        skipped += rows[i].skipped;
    printf("\nsteps skipped (a gradient or an update not finite): %d\n", skipped);
}

/* DIR/copy_results.csv: one line per run. False (and a message) on failure. */
static bool write_results(const run_result *runs, int n_runs, const char *dir)
{
    char path[PATH_SIZE];
    if (!output_path(path, sizeof path, dir, "copy_results.csv"))
        return false;
    table t = { 0 };
    table_add(&t, "cell,lr,seed,test_loss,recall_accuracy,skipped_steps\n");
    for (int i = 0; i < n_runs; i++)
        table_add(&t, "%s,%g,%d,%.6g,%.6g,%d\n", runs[i].cell, (double)runs[i].lr,
                  runs[i].seed_index + 1, runs[i].test_loss, runs[i].accuracy, runs[i].skipped);
    return write_table(&t, path);
}

/* DIR/copy_loss.svg: each cell's training loss at its best lr (the lowest median test loss),
 * the median over seeds of the smoothed curves, and the guessing line. False on failure. */
static bool write_loss_chart(const row *rows, const settings *s, const char *dir)
{
    int points = s->train_steps / CHART_EVERY;
    float *block = malloc((size_t)(N_CELLS + 2) * points * sizeof *block);
    if (!block) {
        complain("out of memory");
        return false;
    }
    float *steps = block, *guess = block + points;
    char labels[N_CELLS][LABEL_SIZE];
    tg_series series[N_CELLS + 1];
    for (int p = 0; p < points; p++) {
        steps[p] = (float)((p + 1) * CHART_EVERY);
        guess[p] = GUESSING_LOSS;
    }
    for (int c = 0; c < N_CELLS; c++) {
        const row *best = &rows[c * s->n_lrs];
        for (int l = 1; l < s->n_lrs; l++)
            if (rows[c * s->n_lrs + l].loss < best->loss)
                best = &rows[c * s->n_lrs + l];
        float *curve = block + (size_t)(c + 2) * points;
        for (int p = 0; p < points; p++) {
            double at[LAB_MAX_SEEDS];
            for (int k = 0; k < s->n_seeds; k++)
                at[k] = best->first[k].smoothed[p];
            curve[p] = (float)median(at, s->n_seeds);
        }
        snprintf(labels[c], LABEL_SIZE, "%s, lr %g", CELLS[c], (double)best->first->lr);
        series[c] = (tg_series){ labels[c], steps, curve, points, TG_SERIES_LINE };
    }
    series[N_CELLS] = (tg_series){ "guessing: ln 8", steps, guess, points, TG_SERIES_REFERENCE };
    char title[128];
    snprintf(title, sizeof title, "The copy task (%d symbols, delay %d): training loss",
             s->length, s->delay);
    tg_chart chart = { title, "Adam step", "recall cross-entropy (median over seeds)", 0,
                       series, N_CELLS + 1 };
    bool ok = write_chart(&chart, dir, "copy_loss", false);
    free(block);
    return ok;
}

/* ---- the command line ---------------------------------------------------------------------- */

/* The settings: the defaults (or --quick's), then the flags. */
static settings settings_from(const lab_options *opt)
{
    settings s = { .length = LENGTH, .delay = DELAY, .hidden = HIDDEN,
                   .train_steps = TRAIN_STEPS, .n_seeds = SEEDS, .n_lrs = MAX_LRS,
                   .rho = RHO, .clip = CLIP_NORM };
    memcpy(s.lrs, LRS, sizeof LRS);
    if (opt->quick)
        s = (settings){ .length = QUICK_LENGTH, .delay = QUICK_DELAY, .hidden = QUICK_HIDDEN,
                        .train_steps = QUICK_TRAIN_STEPS, .n_seeds = QUICK_SEEDS, .n_lrs = 1,
                        .lrs = { LRS[MAX_LRS - 1] }, .rho = RHO, .clip = CLIP_NORM };
    if (lab_given(opt, LAB_LR)) {
        s.lrs[0] = opt->lr;
        s.n_lrs = 1;
    }
    if (lab_given(opt, LAB_HIDDEN))
        s.hidden = opt->hidden;
    if (lab_given(opt, LAB_RHO))
        s.rho = opt->rho;
    if (lab_given(opt, LAB_CLIP))
        s.clip = opt->clip;
    if (lab_given(opt, LAB_SEEDS))
        s.n_seeds = opt->seeds;
    return s;
}

int main(int argc, char **argv)
{
    program = "lab_copy";
    lab_options defaults = LAB_DEFAULTS;
    defaults.takes = LAB_BIT(LAB_LR) | LAB_BIT(LAB_HIDDEN) | LAB_BIT(LAB_RHO) | LAB_BIT(LAB_CLIP)
                     | LAB_BIT(LAB_SEEDS);
    lab_options opt = lab_parse_args(argc, argv, USAGE, defaults);
    if (!is_directory(opt.out))
        return 1;
    settings s = settings_from(&opt);
    int max_runs = N_CELLS * s.n_lrs * s.n_seeds, points = s.train_steps / CHART_EVERY;
    run_result *runs = malloc((size_t)max_runs * sizeof *runs);
    float *curves = malloc((size_t)max_runs * points * sizeof *curves);
    row *rows = malloc((size_t)N_CELLS * s.n_lrs * sizeof *rows);
    int status = 1;
    if (!runs || !curves || !rows) {
        complain("out of memory");
    } else {
        int n_runs = plan_runs(&s, opt.seed, runs, curves);
        if (run_all(runs, n_runs, &s)) {
            for (int i = 0; i < N_CELLS * s.n_lrs; i++)
                rows[i] = summarize(&runs[i * s.n_seeds], s.n_seeds);
            print_table(rows, N_CELLS * s.n_lrs, &s, opt.seed);
            status = write_results(runs, n_runs, opt.out)
                     && write_loss_chart(rows, &s, opt.out) ? 0 : 1;
        }
    }
    free(runs);
    free(curves);
    free(rows);
    return status;
}
