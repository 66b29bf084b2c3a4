/* lab_adding.c: trains a tanh RNN, an LSTM and a GRU on the adding problem at growing sequence
 * lengths T, to see how far back BPTT can carry a signal through each cell.
 *
 * Each sequence is T steps of two inputs: a value uniform in [0, 1) and a marker that is 1 at
 * exactly one step in each half of the sequence. The target, read from the last hidden state,
 * is the sum of the two marked values. Guessing the mean, 1, scores an MSE of 1/6 = 0.167, so
 * anything near 1/6 has learned nothing. To do better, the gradient of the loss at step T has
 * to reach back to the first marker, up to T steps earlier, and in a tanh RNN it shrinks
 * roughly geometrically on the way (see lab_gradient_norms). Expect the RNN to solve T = 10,
 * to learn less at longer T and to stay stuck at the baseline at the longest; clipping only
 * caps large gradients, so it cannot help a gradient that vanishes. The LSTM and the GRU
 * carry their state forward by a gated sum (c_t = f * c_{t-1} + i * g in the LSTM), whose
 * gradient is multiplied by the gate and by no weight matrix: expect them to keep learning
 * at lengths where the RNN has stopped. They too sit at the baseline for a while before
 * they learn, longer for longer T: at T = 100 that is longer than the default 10000 steps
 * (see docs/bptt.md; --steps 40000 shows it, in about four times the time).
 *
 * The comparison is at (about) the same parameter budget, not the same hidden size: each
 * gated cell gets the largest hidden size at which the whole model has no more parameters
 * than the RNN's, so a gated cell that does better does not do so by being bigger. The
 * LSTM's forget gate (Gers, Schmidhuber & Cummins 2000) starts with its bias at 1, so that
 * it starts mostly open: f = sigmoid(1) = 0.73 before the inputs move it. Every run of a
 * cell starts from the same initial weights, and at a given T every run of every cell sees
 * the same batches. The runs are independent, so they are shared out among threads, each
 * with its own tape; a run's result does not depend on which thread ran it, or when. */
#define _POSIX_C_SOURCE 200809L   /* for stat() (is_directory in cli.h), to check --out */

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
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
    BATCH = 16,
    TEST_BATCH = 100,
    TRAIN_STEPS = 10000,
    TEST_BATCHES = 10,
    QUICK_TRAIN_STEPS = 100,
    QUICK_TEST_BATCHES = 2,
    MIN_TRAIN_STEPS = 100,    /* the range of --steps */
    MAX_TRAIN_STEPS = 1000000,
    SMOOTHING = 200,          /* the chart shows the mean loss of the last SMOOTHING steps */
    CHART_EVERY = 20,         /* ... every CHART_EVERY steps */
    DEFAULT_THREADS = 2,
    MAX_THREADS = 16,
    PATH_SIZE = 4096,
    LABEL_SIZE = 48,
};
#define CLIP_NORM 1.0f
#define LSTM_FORGET_BIAS 1.0f
#define BASELINE_MSE (1.0 / 6.0)   /* the MSE of always predicting the mean target, 1 */
#define SOLVED_MSE 0.01            /* below this: "solved" */
#define STUCK_MSE (0.9 / 6.0)      /* above this (within 10% of 1/6): "no better than baseline" */

/* How each cell is trained. hidden: the largest size at which the model (cell and readout)
 * has no more parameters than the RNN's. lr: the SGD learning rate. */
typedef struct cell_config {
    const char *name;         /* for tg_cell_new */
    int hidden;
    float lr;
} cell_config;

static const cell_config CELLS[] = {
    { "rnn", 16, 0.1f },
    { "lstm", 7, 0.5f },
    { "gru", 8, 0.5f },
};
static const int LENGTHS[] = { 10, 20, 50, 100 };
static const int QUICK_LENGTHS[] = { 5, 10 };
#define N_CELLS (int)(sizeof CELLS / sizeof CELLS[0])
#define N_LENGTHS (int)(sizeof LENGTHS / sizeof LENGTHS[0])
#define N_QUICK_LENGTHS (int)(sizeof QUICK_LENGTHS / sizeof QUICK_LENGTHS[0])
#define MAX_RUNS (N_CELLS * N_LENGTHS * 2)

static const char USAGE[] =
    "usage: lab_adding [--seed N] [--quick] [--steps N] [--threads N] [--out DIR]\n"
    "Trains a tanh RNN, an LSTM and a GRU, with about the same number of parameters, on the\n"
    "adding problem at T = 10, 20, 50 and 100 steps, with and without gradient-norm\n"
    "clipping; prints the test MSE of each run against the 1/6 of guessing the mean, and\n"
    "writes DIR/adding_results.csv (the table), DIR/adding_test_mse.svg (test MSE against\n"
    "T), DIR/adding_loss.csv and DIR/adding_loss_CELL.svg for CELL = rnn, lstm, gru (the\n"
    "smoothed training loss). Takes a minute or two of CPU time, shared by the threads.\n"
    "  --seed N      seed for the weights and the data, 0 or more (default 1)\n"
    "  --quick       T = 5 and 10, 100 steps each (a few seconds at most, for tests)\n"
    "  --steps N     train every run for N SGD steps, 100 to 1000000 (default 10000)\n"
    "  --threads N   train N runs at a time, 1 to 16 (default 2); the results are the same\n"
    "  --out DIR     an existing directory for the CSV and SVG files (default results)\n"
    "  --help        print this and exit\n";

typedef struct options {
    lab_options lab;                     /* --seed, --quick, --out */
    int steps;                           /* 0: the default for --quick or not */
    int threads;
} options;

/* ---- the command line -------------------------------------------------------------------- */

static options parse_args(int argc, char **argv)
{
    options opt = { .lab = LAB_DEFAULTS, .steps = 0, .threads = DEFAULT_THREADS };
    for (int i = 1; i < argc; i++) {
        if (lab_flag(argc, argv, &i, USAGE, &opt.lab))   /* --help, --quick, --seed, --out */
            continue;
        const char *flag = argv[i];
        const char *value = i + 1 < argc ? argv[++i] : NULL;
        if (strcmp(flag, "--steps") == 0)
            opt.steps = (int)whole_number(flag, value, MIN_TRAIN_STEPS, MAX_TRAIN_STEPS);
        else if (strcmp(flag, "--threads") == 0)
            opt.threads = (int)whole_number(flag, value, 1, MAX_THREADS);
        else
            usage_error("unknown flag '%s'", flag);
    }
    return opt;
}

/* ---- the model --------------------------------------------------------------------------- */

/* The cell and its readout of the last hidden state (model.h), PyTorch's init drawn from
 * seed; an LSTM's forget-gate bias is then set to LSTM_FORGET_BIAS. False when out of
 * memory. */
static bool model_init(model *m, const cell_config *config, uint64_t seed)
{
    tg_rng rng = tg_rng_new(seed);
    if (!model_new(m, config->name, INPUT_SIZE, config->hidden, 1, tg_rng_next(&rng))) {
        model_free(m);
        return false;
    }
    if (strcmp(config->name, "lstm") == 0)
        tg_lstm_cell_set_forget_bias(m->cell->impl, LSTM_FORGET_BIAS);  /* impl: a tg_lstm_cell */
    model_init_readout(m, &rng);
    return true;
}

/* The number of values in the model's parameters, readout included. */
static long model_size(const cell_config *config)
{
    model m;
    if (!model_init(&m, config, 0))
        return -1;
    long size = 0;
    for (int i = 0; i < m.n_params; i++)
        size += (long)m.params[i]->rows * m.params[i]->cols;
    model_free(&m);
    return size;
}

/* ---- one run: train one cell at one T, with or without clipping, then test ---------------- */

/* The sizes every run shares. */
typedef struct settings {
    int train_steps, test_batches;
    int longest;                         /* the longest T, for the size of the data buffers */
} settings;

/* What one thread needs for its runs: a tape and data buffers big enough for the longest T
 * and the test batch. */
typedef struct workspace {
    tg_tape *tape;
    float *x, *y;                        /* steps x 2 x batch inputs, batch targets */
    float *losses;                       /* train_steps losses of the current run */
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
    run_seeds seeds;
    int diverged_at;                     /* the SGD step whose loss was not finite, or 0 */
    int skipped;                         /* steps skipped: a gradient, or an update, not finite */
    double test_mse;                     /* NaN after a divergence */
    float *smoothed;                     /* train_steps / CHART_EVERY points of the loss curve */
} run_result;

/* False when out of memory (free w all the same). */
static bool workspace_init(workspace *w, const settings *s)
{
    int widest = BATCH > TEST_BATCH ? BATCH : TEST_BATCH;
    *w = (workspace){ .tape = tg_tape_new(),
                      .x = malloc((size_t)s->longest * INPUT_SIZE * (size_t)widest * sizeof *w->x),
                      .y = malloc((size_t)widest * sizeof *w->y),
                      .losses = malloc((size_t)s->train_steps * sizeof *w->losses) };
    return w->tape && w->x && w->y && w->losses;
}

static void workspace_free(workspace *w)
{
    tg_tape_free(w->tape);
    free(w->x);
    free(w->y);
    free(w->losses);
}

/* One SGD step of r's run on a fresh batch from rng. Sets *loss to the batch's loss before the
 * step (not finite: the run has diverged and nothing changed). False on a tape error (printed). */
static bool train_step(workspace *w, model *m, run_result *r, tg_rng *rng, float *loss)
{
    tg_task_adding(rng, r->steps, BATCH, w->x, w->y, NULL);
    tg_tape_reset(w->tape);
    tg_zero_grad(m->params, m->n_params, NULL);
    tg_tensor *mse = last_step_mse(w->tape, m, w->x, w->y, r->steps, BATCH);
    *loss = mse ? mse->data[0] : NAN;
    if (mse && !isfinite(*loss))
        return true;
    if (tg_backward(w->tape, mse) != 0) {
        complain("%s", tg_tape_error(w->tape));
        return false;
    }
    bool finite = !r->clipped || !isnan(tg_clip_grad_norm(m->params, m->n_params, CLIP_NORM));
    if (!finite || tg_sgd_step(m->params, m->n_params, r->cell->lr, NULL) != 0)
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

/* smoothed[i] = the mean of the losses of steps (i+1) CHART_EVERY - SMOOTHING + 1 .. (i+1)
 * CHART_EVERY (fewer at the start); NaN once the run has stopped. */
static void smooth(const float *losses, int n_losses, int train_steps, float *smoothed)
{
    for (int i = 0; i < train_steps / CHART_EVERY; i++) {
        int end = (i + 1) * CHART_EVERY, start = end > SMOOTHING ? end - SMOOTHING : 0;
        double sum = 0.0;
        for (int s = start; s < end && s < n_losses; s++)
            sum += losses[s];
        smoothed[i] = end <= n_losses ? (float)(sum / (end - start)) : NAN;
    }
}

/* Trains a fresh model as r says and tests it, filling in r's results. False on error. */
static bool run(workspace *w, const settings *s, run_result *r)
{
    model m;
    if (!model_init(&m, r->cell, r->seeds.init)) {
        complain("cannot make a '%s' cell: unknown name, or out of memory", r->cell->name);
        return false;
    }
    r->test_mse = NAN;
    tg_rng data = tg_rng_new(r->seeds.data), test = tg_rng_new(r->seeds.test);
    int done = 0;
    bool ok = true;
    while (ok && done < s->train_steps && !r->diverged_at) {
        ok = train_step(w, &m, r, &data, &w->losses[done]);
        done++;
        if (!isfinite(w->losses[done - 1]))
            r->diverged_at = done;
    }
    smooth(w->losses, r->diverged_at ? done - 1 : done, s->train_steps, r->smoothed);
    if (ok && !r->diverged_at)
        ok = measure_test_mse(w, &m, r->steps, s->test_batches, &test, &r->test_mse);
    model_free(&m);
    return ok;
}

/* ---- every run, shared out among threads -------------------------------------------------- */

static const char *clipping_name(bool clipped) { return clipped ? "norm 1.0" : "none"; }

/* The runs and the threads' place in them. A thread takes the next run in `order` (the
 * longest T first, so that no thread is left with a long run at the end), runs it in its own
 * workspace and writes only that run's result. */
typedef struct run_queue {
    run_result *runs;
    const int *order;
    int n_runs;
    const settings *settings;
    pthread_mutex_t lock;                /* guards next and failed */
    int next;
    bool failed;
    double start;
} run_queue;

/* The index of the next run to do, or -1 when there is none left or a run has failed. */
static int take_run(run_queue *q)
{
    pthread_mutex_lock(&q->lock);
    int i = q->failed || q->next == q->n_runs ? -1 : q->order[q->next++];
    pthread_mutex_unlock(&q->lock);
    return i;
}

/* A thread's body: does runs until none are left; one line on stderr per run. */
static void *worker(void *arg)
{
    run_queue *q = arg;
    workspace w;
    bool ok = workspace_init(&w, q->settings);
    if (!ok)
        complain("out of memory");
    for (int i = ok ? take_run(q) : -1; i >= 0; i = take_run(q)) {
        run_result *r = &q->runs[i];
        ok = run(&w, q->settings, r);
        if (!ok)
            break;
        complain("%s T=%d clipping %s: test MSE %.4g (%.0f s)", r->cell->name, r->steps,
                 clipping_name(r->clipped), r->test_mse, now() - q->start);
    }
    workspace_free(&w);
    if (!ok) {
        pthread_mutex_lock(&q->lock);
        q->failed = true;
        pthread_mutex_unlock(&q->lock);
    }
    return NULL;
}

/* Lists every (cell, T, clipping) in runs, in the table's order, with its seeds: the same
 * initial weights for every run of a cell, the same batches for every run at a T. Returns
 * the number of runs. */
static int plan_runs(const int *lengths, int n_lengths, uint64_t seed, run_result *runs)
{
    tg_rng master = tg_rng_new(seed);
    uint64_t init_seed = tg_rng_next(&master);
    run_seeds per_length[N_LENGTHS];
    for (int l = 0; l < n_lengths; l++) {
        tg_rng rng = tg_rng_new(tg_rng_next(&master));
        per_length[l] = (run_seeds){ init_seed, tg_rng_next(&rng), tg_rng_next(&rng) };
    }
    int n = 0;
    for (int c = 0; c < N_CELLS; c++)
        for (int l = 0; l < n_lengths; l++)
            for (int clip = 0; clip <= 1; clip++)
                runs[n++] = (run_result){ .cell = &CELLS[c], .steps = lengths[l],
                                          .clipped = clip, .seeds = per_length[l] };
    return n;
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

/* Does every run on n_threads threads (the caller's one of them). False on error. */
static bool run_all(run_result *runs, int n_runs, const settings *s, int n_threads)
{
    int order[MAX_RUNS];
    longest_first(runs, n_runs, order);
    run_queue q = { .runs = runs, .order = order, .n_runs = n_runs, .settings = s,
                    .start = now() };
    if (pthread_mutex_init(&q.lock, NULL) != 0) {
        complain("cannot make a mutex");
        return false;
    }
    pthread_t threads[MAX_THREADS];
    int started = 0;
    while (started < n_threads - 1 && pthread_create(&threads[started], NULL, worker, &q) == 0)
        started++;
    worker(&q);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    pthread_mutex_destroy(&q.lock);
    return !q.failed;
}

/* ---- the table and the charts ------------------------------------------------------------- */

static const char *verdict(const run_result *r)
{
    if (r->diverged_at)
        return "diverged";
    if (r->test_mse < SOLVED_MSE)
        return "solved";
    if (r->test_mse > STUCK_MSE)
        return "no better than baseline";
    return "better than baseline";
}

static void print_header(const settings *s, unsigned long long seed)
{
    printf("The adding problem: T steps of (value, marker); target: the sum of the marked\n"
           "values. Model: a cell with a readout y = W_y h_T + b_y; MSE loss; PyTorch's init,\n"
           "and the LSTM's forget-gate bias set to %.0f.\n"
           "Same parameter budget, not same hidden size: each gated cell has the largest\n"
           "hidden size at which the model has no more parameters than the rnn's (rnn: the\n"
           "tanh RNN cell).\n"
           "SGD, batch %d, %d steps, the learning rate per cell below; clipping: none, or of\n"
           "the gradient norm at %.1f.\n"
           "Seed %llu: the same initial weights in every run of a cell, the same batches for\n"
           "every run at a given T.\n"
           "Test MSE over %d fresh batches of %d; predicting the mean scores 1/6 = %.3f.\n"
           "solved: test MSE < %.2f; no better than baseline: test MSE > %.3f (0.9 of 1/6).\n\n",
           LSTM_FORGET_BIAS, BATCH, s->train_steps, CLIP_NORM, seed, s->test_batches, TEST_BATCH,
           BASELINE_MSE, SOLVED_MSE, STUCK_MSE);
    printf("%-5s %6s %6s %4s\n", "cell", "hidden", "params", "lr");
    for (int c = 0; c < N_CELLS; c++)
        printf("%-5s %6d %6ld %4.2g\n", CELLS[c].name, CELLS[c].hidden, model_size(&CELLS[c]),
               CELLS[c].lr);
    printf("\n");
}

static void print_table(const run_result *runs, int n_runs)
{
    printf("%-5s %4s  %-9s %9s %11s  %s\n", "cell", "T", "clipping", "test MSE", "/ baseline",
           "result");
    for (int i = 0; i < n_runs; i++) {
        const run_result *r = &runs[i];
        printf("%-5s %4d  %-9s %9.4g %11.3g  %s", r->cell->name, r->steps,
               clipping_name(r->clipped), r->test_mse, r->test_mse / BASELINE_MSE, verdict(r));
        if (r->diverged_at)
            printf(" at step %d", r->diverged_at);
        if (r->skipped)
            printf(" (%d steps skipped: gradient not finite)", r->skipped);
        printf("\n");
    }
}

/* DIR/adding_results.csv: the table. False (and a message) on failure. */
static bool write_table_csv(const run_result *runs, int n_runs, const settings *s, const char *dir)
{
    char path[PATH_SIZE];
    if (snprintf(path, sizeof path, "%s/adding_results.csv", dir) >= PATH_SIZE) {
        fprintf(stderr, "lab_adding: output path too long: %s/adding_results.csv\n", dir);
        return false;
    }
    table t = { NULL, 0, 0, false };
    table_add(&t, "cell,T,clipping,hidden,params,batch,lr,train_steps,test_mse,baseline_mse,"
                  "result,diverged_at,skipped\n");
    for (int i = 0; i < n_runs; i++) {
        const run_result *r = &runs[i];
        table_add(&t, "%s,%d,%s,%d,%ld,%d,%g,%d,%.6g,%.6g,%s,%d,%d\n", r->cell->name, r->steps,
                clipping_name(r->clipped), r->cell->hidden, model_size(r->cell), BATCH,
                r->cell->lr, s->train_steps, r->test_mse, BASELINE_MSE, verdict(r),
                r->diverged_at, r->skipped);
    }
    return write_table(&t, path);
}

/* DIR/adding_test_mse.svg: the test MSE against T, one line per cell and clipping, and the
 * 1/6 of guessing the mean. False on failure. */
static bool write_test_mse_chart(const run_result *runs, int n_runs, const char *dir)
{
    float T[MAX_RUNS], mse[MAX_RUNS], baseline[MAX_RUNS];   /* the lines' points, line by line */
    char label[MAX_RUNS + 1][LABEL_SIZE];
    tg_series series[MAX_RUNS + 1];
    int n_series = 0, n_points = 0;
    for (int c = 0; c < N_CELLS; c++)
        for (int clip = 0; clip <= 1; clip++) {
            tg_series line = { label[n_series], &T[n_points], &mse[n_points], 0, TG_SERIES_LINE };
            for (int i = 0; i < n_runs; i++)
                if (runs[i].cell == &CELLS[c] && runs[i].clipped == clip) {
                    T[n_points] = (float)runs[i].steps;
                    mse[n_points] = (float)runs[i].test_mse;
                    baseline[n_points++] = (float)BASELINE_MSE;
                    line.n++;
                }
            snprintf(label[n_series], LABEL_SIZE, "%s, clipping %s", CELLS[c].name,
                     clipping_name(clip));
            series[n_series++] = line;
        }
    snprintf(label[n_series], LABEL_SIZE, "predicting the mean: 1/6");
    series[n_series] = (tg_series){ label[n_series], T, baseline, series[0].n, TG_SERIES_LINE };
    tg_chart chart = { "Adding problem: test MSE after training", "T (sequence length)",
                       "test MSE (log scale)", 1, series, n_series + 1 };
    return write_chart(&chart, dir, "adding_test_mse", false);
}

/* The table as CSV, the test MSE chart, every loss curve in DIR/adding_loss.csv, and a chart
 * of the loss curves per cell in DIR/adding_loss_CELL.svg (the runs of a cell are next to
 * each other in runs). False on the first failure. */
static bool write_outputs(const run_result *runs, int n_runs, const settings *s, const char *dir)
{
    int n_points = s->train_steps / CHART_EVERY;
    float *step = malloc((size_t)n_points * sizeof *step);
    if (!step) {
        complain("out of memory");
        return false;
    }
    for (int i = 0; i < n_points; i++)
        step[i] = (float)((i + 1) * CHART_EVERY);
    char label[MAX_RUNS][LABEL_SIZE];
    tg_series series[MAX_RUNS];
    for (int i = 0; i < n_runs; i++) {
        snprintf(label[i], LABEL_SIZE, "%s T=%d, clipping %s", runs[i].cell->name, runs[i].steps,
                 clipping_name(runs[i].clipped));
        series[i] = (tg_series){ label[i], step, runs[i].smoothed, n_points, TG_SERIES_LINE };
    }
    char title[128];
    snprintf(title, sizeof title, "Adding problem: training loss (mean of the last %d steps)",
             SMOOTHING);
    tg_chart all = { title, "SGD step", "MSE (log scale)", 1, series, n_runs };
    bool ok = write_table_csv(runs, n_runs, s, dir) && write_test_mse_chart(runs, n_runs, dir)
              && write_chart(&all, dir, "adding_loss", true);
    for (int first = 0, end; ok && first < n_runs; first = end) {
        for (end = first; end < n_runs && runs[end].cell == runs[first].cell; end++)
            continue;
        char name[64];
        snprintf(name, sizeof name, "adding_loss_%s", runs[first].cell->name);
        tg_chart chart = all;
        chart.series = series + first;
        chart.n_series = end - first;
        ok = write_chart(&chart, dir, name, false);
    }
    free(step);
    return ok;
}

/* ---- main -------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    program = "lab_adding";
    options opt = parse_args(argc, argv);
    if (!is_directory(opt.lab.out))
        return 1;
    const int *lengths = opt.lab.quick ? QUICK_LENGTHS : LENGTHS;
    int n_lengths = opt.lab.quick ? N_QUICK_LENGTHS : N_LENGTHS;
    int default_steps = opt.lab.quick ? QUICK_TRAIN_STEPS : TRAIN_STEPS;
    settings s = { .train_steps = opt.steps ? opt.steps : default_steps,
                   .test_batches = opt.lab.quick ? QUICK_TEST_BATCHES : TEST_BATCHES,
                   .longest = lengths[n_lengths - 1] };
    run_result runs[MAX_RUNS];
    int n_runs = plan_runs(lengths, n_lengths, opt.lab.seed, runs);
    int n_points = s.train_steps / CHART_EVERY;
    float *curves = malloc((size_t)n_runs * (size_t)n_points * sizeof *curves);
    if (!curves) {
        complain("out of memory");
        return 1;
    }
    for (int i = 0; i < n_runs; i++)
        runs[i].smoothed = curves + (size_t)i * (size_t)n_points;
    int status = 1;
    if (run_all(runs, n_runs, &s, opt.threads)) {
        print_header(&s, opt.lab.seed);
        print_table(runs, n_runs);
        status = write_outputs(runs, n_runs, &s, opt.lab.out) ? 0 : 1;
    }
    free(curves);
    return status;
}
