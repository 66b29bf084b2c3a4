/* lab_adding.c: trains a tanh RNN on the adding problem at growing sequence lengths T, with
 * and without gradient-norm clipping, to see how far back plain BPTT can carry a signal.
 *
 * Each sequence is T steps of two inputs: a value uniform in [0, 1) and a marker that is 1 at
 * exactly one step in each half of the sequence. The target, read from the last hidden state,
 * is the sum of the two marked values. Guessing the mean, 1, scores an MSE of 1/6 = 0.167, so
 * anything near 1/6 has learned nothing. To do better, the gradient of the loss at step T has
 * to reach back to the first marker, up to T steps earlier, and in a tanh RNN it shrinks
 * roughly geometrically on the way (see lab_gradient_norms). Expect T = 10 to be solved,
 * longer T to learn less, and the longest T to stay stuck at the baseline; clipping only caps
 * large gradients, so it cannot help a gradient that vanishes. Every run uses the same
 * hyperparameters, the same initial weights and, at a given T, the same batches. */
#define _POSIX_C_SOURCE 200809L   /* for stat(), to check --out before the run */

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tapegrad.h"

enum {
    INPUT_SIZE = 2,           /* value, marker */
    HIDDEN = 16,
    BATCH = 16,
    TEST_BATCH = 100,
    TRAIN_STEPS = 10000,
    TEST_BATCHES = 10,
    QUICK_TRAIN_STEPS = 100,
    QUICK_TEST_BATCHES = 2,
    SMOOTHING = 200,          /* the chart shows the mean loss of the last SMOOTHING steps */
    CHART_EVERY = 20,         /* ... every CHART_EVERY steps */
    MAX_PARAMS = TG_CELL_MAX_PARAMS + 2,
    PATH_SIZE = 4096,
    LABEL_SIZE = 48,
};
#define LEARNING_RATE 0.1f
#define CLIP_NORM 1.0f
#define BASELINE_MSE (1.0 / 6.0)   /* the MSE of always predicting the mean target, 1 */
#define SOLVED_MSE 0.01            /* below this: "solved" */
#define STUCK_MSE (0.9 / 6.0)      /* above this (within 10% of 1/6): "no better than baseline" */

/* The cells to train: names that tg_cell_new knows. Each is trained at every T, with and
 * without clipping, and gets its own chart. */
static const char *const CELLS[] = { "rnn" };
static const int LENGTHS[] = { 10, 20, 50, 100 };
static const int QUICK_LENGTHS[] = { 5, 10 };
#define N_CELLS (int)(sizeof CELLS / sizeof CELLS[0])
#define N_LENGTHS (int)(sizeof LENGTHS / sizeof LENGTHS[0])
#define N_QUICK_LENGTHS (int)(sizeof QUICK_LENGTHS / sizeof QUICK_LENGTHS[0])
#define N_RUNS (N_CELLS * N_LENGTHS * 2)

static const char USAGE[] =
    "usage: lab_adding [--seed N] [--quick] [--out DIR]\n"
    "Trains a tanh RNN on the adding problem at T = 10, 20, 50 and 100 steps, with and without\n"
    "gradient-norm clipping, prints the test MSE of each run against the 1/6 of guessing the\n"
    "mean, and writes DIR/adding_results.csv (the table), DIR/adding_loss.csv and\n"
    "DIR/adding_loss_rnn.svg (the smoothed training loss). Takes about a minute.\n"
    "  --seed N    seed for the weights and the data, 0 or more (default 1)\n"
    "  --quick     T = 5 and 10, 100 steps each (a few seconds at most, for tests)\n"
    "  --out DIR   an existing directory for the CSV and SVG files (default results)\n"
    "  --help      print this and exit\n";

typedef struct options {
    unsigned long long seed;
    bool quick;
    const char *out;
} options;

/* ---- the command line -------------------------------------------------------------------- */

/* Prints a message about a bad command line and exits with status 2. */
static void usage_error(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    fputs("lab_adding: ", stderr);
    vfprintf(stderr, fmt, args);
    fputs(" (see lab_adding --help)\n", stderr);
    va_end(args);
    exit(2);
}

/* The value of flag, which must be a whole number in [lo, hi]; text is NULL when it is missing. */
static long long whole_number(const char *flag, const char *text, long long lo, long long hi)
{
    if (!text)
        usage_error("%s needs a value", flag);
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < lo || value > hi)
        usage_error("%s needs a whole number from %lld to %lld, got '%s'", flag, lo, hi, text);
    return value;
}

static options parse_args(int argc, char **argv)
{
    options opt = { .seed = 1, .quick = false, .out = "results" };
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (strcmp(flag, "--help") == 0) {
            fputs(USAGE, stdout);
            exit(0);
        }
        if (strcmp(flag, "--quick") == 0) {
            opt.quick = true;
            continue;
        }
        const char *value = i + 1 < argc ? argv[++i] : NULL;
        if (strcmp(flag, "--seed") == 0)
            opt.seed = (unsigned long long)whole_number(flag, value, 0, LLONG_MAX);
        else if (strcmp(flag, "--out") == 0) {
            if (!value)
                usage_error("--out needs a value");
            opt.out = value;
        } else
            usage_error("unknown flag '%s'", flag);
    }
    return opt;
}

/* ---- the model --------------------------------------------------------------------------- */

/* A recurrent cell with a linear readout of its last hidden state: y = W_y h_T + b_y. */
typedef struct model {
    tg_cell *cell;
    tg_tensor *W_y, *b_y;                /* 1 x hidden, 1 x 1 */
    tg_tensor *params[MAX_PARAMS];       /* the cell's, then W_y and b_y */
    int n_params;
} model;

static void model_free(model *m)
{
    tg_cell_free(m->cell);
    tg_param_free(m->W_y);
    tg_param_free(m->b_y);
}

/* PyTorch's init for the cell and the readout (uniform in +-1/sqrt(hidden), b_y = 0), drawn
 * from seed. False when out of memory. */
static bool model_init(model *m, const char *cell_name, uint64_t seed)
{
    tg_rng rng = tg_rng_new(seed);
    *m = (model){ .cell = tg_cell_new(cell_name, INPUT_SIZE, HIDDEN, tg_rng_next(&rng)),
                  .W_y = tg_param_new(1, HIDDEN), .b_y = tg_param_new(1, 1) };
    if (!m->cell || !m->W_y || !m->b_y) {
        model_free(m);
        return false;
    }
    float bound = 1.0f / sqrtf((float)HIDDEN);
    tg_init_uniform(m->W_y, -bound, bound, &rng);
    for (int i = 0; i < m->cell->n_params; i++)
        m->params[m->n_params++] = m->cell->params[i];
    m->params[m->n_params++] = m->W_y;
    m->params[m->n_params++] = m->b_y;
    return true;
}

/* The MSE of m's predictions for one batch of the adding problem, recorded on the tape:
 * x holds steps inputs of 2 x batch (value, marker), y the batch's targets. */
static tg_tensor *batch_loss(tg_tape *tape, model *m, const float *x, const float *y, int steps,
                             int batch)
{
    tg_cell_state state = tg_cell_zero_state(tape, m->cell, batch);      /* h_0 = 0 */
    for (int t = 0; t < steps; t++) {
        tg_tensor *x_t = tg_input(tape, INPUT_SIZE, batch, x + (size_t)t * INPUT_SIZE * batch);
        state = tg_cell_step(tape, m->cell, x_t, state);                 /* h: hidden x batch */
    }
    tg_tensor *prediction = tg_add(tape, tg_matmul(tape, m->W_y, state.h), m->b_y); /* 1 x batch */
    return tg_mse(tape, prediction, tg_input(tape, 1, batch, y));
}

/* ---- one run: train at one T, with or without clipping, then test ------------------------ */

/* What a run needs: its data buffers (big enough for the longest T and the test batch) and
 * its sizes. */
typedef struct workspace {
    tg_tape *tape;
    float *x, *y;                        /* steps x 2 x batch inputs, batch targets */
    int train_steps, test_batches;
} workspace;

typedef struct run_result {
    const char *cell;
    int steps;                           /* T */
    bool clipped;
    int diverged_at;                     /* the SGD step whose loss was not finite, or 0 */
    int skipped;                         /* steps tg_sgd_step refused: a gradient not finite */
    double test_mse;                     /* NaN after a divergence */
    float *smoothed;                     /* train_steps / CHART_EVERY points of the loss curve */
} run_result;

/* One SGD step on a fresh batch from rng. Sets *loss to the batch's loss before the step (not
 * finite: the run has diverged and nothing changed). False on a tape error (printed). */
static bool train_step(workspace *w, model *m, int steps, bool clip, tg_rng *rng, float *loss,
                       int *skipped)
{
    tg_task_adding(rng, steps, BATCH, w->x, w->y);
    tg_tape_reset(w->tape);
    tg_zero_grad(m->params, m->n_params);
    tg_tensor *mse = batch_loss(w->tape, m, w->x, w->y, steps, BATCH);
    *loss = mse ? mse->data[0] : NAN;
    if (mse && !isfinite(*loss))
        return true;
    if (tg_backward(w->tape, mse) != 0) {
        fprintf(stderr, "lab_adding: %s\n", tg_tape_error(w->tape));
        return false;
    }
    if (clip)
        tg_clip_grad_norm(m->params, m->n_params, CLIP_NORM);
    if (tg_sgd_step(m->params, m->n_params, LEARNING_RATE) != 0)
        (*skipped)++;
    return true;
}

/* Sets *mse to the mean MSE of m over w->test_batches fresh batches of TEST_BATCH from rng.
 * False on a tape error (printed). */
static bool measure_test_mse(workspace *w, model *m, int steps, tg_rng *rng, double *mse)
{
    double sum = 0.0;
    for (int i = 0; i < w->test_batches; i++) {
        tg_task_adding(rng, steps, TEST_BATCH, w->x, w->y);
        tg_tape_reset(w->tape);
        tg_tensor *loss = batch_loss(w->tape, m, w->x, w->y, steps, TEST_BATCH);
        if (!loss) {
            fprintf(stderr, "lab_adding: %s\n", tg_tape_error(w->tape));
            return false;
        }
        sum += loss->data[0];
    }
    *mse = sum / w->test_batches;
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

/* Where a run's random numbers come from: its initial weights, its training batches and its
 * test batches. */
typedef struct run_seeds {
    uint64_t init, data, test;
} run_seeds;

/* Trains a fresh model at one T, with or without clipping, and tests it. Fills r (whose
 * smoothed buffer is the caller's) and uses losses (train_steps floats) as scratch. False on
 * error. */
static bool run(workspace *w, const char *cell_name, int steps, bool clip, run_seeds seeds,
                float *losses, run_result *r)
{
    model m;
    if (!model_init(&m, cell_name, seeds.init)) {
        fprintf(stderr, "lab_adding: cannot make a '%s' cell: unknown name, or out of memory\n",
                cell_name);
        return false;
    }
    r->cell = cell_name;
    r->steps = steps;
    r->clipped = clip;
    r->test_mse = NAN;
    tg_rng data = tg_rng_new(seeds.data), test = tg_rng_new(seeds.test);
    int done = 0;
    bool ok = true;
    while (ok && done < w->train_steps && !r->diverged_at) {
        ok = train_step(w, &m, steps, clip, &data, &losses[done], &r->skipped);
        done++;
        if (!isfinite(losses[done - 1]))
            r->diverged_at = done;
    }
    smooth(losses, r->diverged_at ? done - 1 : done, w->train_steps, r->smoothed);
    if (ok && !r->diverged_at)
        ok = measure_test_mse(w, &m, steps, &test, &r->test_mse);
    model_free(&m);
    return ok;
}

/* ---- the table and the chart ------------------------------------------------------------- */

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

static const char *clipping_name(bool clipped) { return clipped ? "norm 1.0" : "none"; }

static void print_table(const run_result *runs, int n_runs, const workspace *w,
                        unsigned long long seed)
{
    printf("The adding problem: T steps of (value, marker); target: the sum of the marked values.\n"
           "Model: the cell (rnn: the tanh RNN cell), hidden %d, PyTorch's init, with a readout\n"
           "y = W_y h_T + b_y; MSE loss.\n"
           "SGD: lr %.2g, batch %d, %d steps; clipping: none, or of the gradient norm at %.1f.\n"
           "Seed %llu: the same initial weights in every run, the same batches at each T.\n"
           "Test MSE over %d fresh batches of %d; predicting the mean scores 1/6 = %.3f.\n"
           "solved: test MSE < %.2f; no better than baseline: test MSE > %.3f (0.9 of 1/6).\n\n",
           HIDDEN, LEARNING_RATE, BATCH, w->train_steps, CLIP_NORM, seed, w->test_batches,
           TEST_BATCH, BASELINE_MSE, SOLVED_MSE, STUCK_MSE);
    printf("%-5s %4s  %-9s %9s %11s  %s\n", "cell", "T", "clipping", "test MSE", "/ baseline",
           "result");
    for (int i = 0; i < n_runs; i++) {
        const run_result *r = &runs[i];
        printf("%-5s %4d  %-9s %9.4f %11.3f  %s", r->cell, r->steps, clipping_name(r->clipped),
               r->test_mse, r->test_mse / BASELINE_MSE, verdict(r));
        if (r->diverged_at)
            printf(" at step %d", r->diverged_at);
        if (r->skipped)
            printf(" (%d steps skipped: gradient not finite)", r->skipped);
        printf("\n");
    }
}

/* DIR/adding_results.csv: the table. False (and a message) on failure. */
static bool write_table_csv(const run_result *runs, int n_runs, const workspace *w, const char *dir)
{
    char path[PATH_SIZE];
    if (snprintf(path, sizeof path, "%s/adding_results.csv", dir) >= PATH_SIZE) {
        fprintf(stderr, "lab_adding: output path too long: %s/adding_results.csv\n", dir);
        return false;
    }
    FILE *file = fopen(path, "w");
    if (!file) {
        fprintf(stderr, "lab_adding: %s: cannot open for writing: %s\n", path, strerror(errno));
        return false;
    }
    fprintf(file, "cell,T,clipping,hidden,batch,lr,train_steps,test_mse,baseline_mse,result,"
                  "diverged_at,skipped\n");
    for (int i = 0; i < n_runs; i++) {
        const run_result *r = &runs[i];
        fprintf(file, "%s,%d,%s,%d,%d,%g,%d,%.6g,%.6g,%s,%d,%d\n", r->cell, r->steps,
                clipping_name(r->clipped), HIDDEN, BATCH, LEARNING_RATE, w->train_steps,
                r->test_mse, BASELINE_MSE, verdict(r), r->diverged_at, r->skipped);
    }
    bool failed = ferror(file) != 0;
    int error = errno;
    if (fclose(file) != 0 && !failed) {
        failed = true;
        error = errno;
    }
    if (failed)
        fprintf(stderr, "lab_adding: %s: cannot write: %s\n", path, strerror(error));
    return !failed;
}

/* Writes chart as DIR/NAME.svg, or as DIR/NAME.csv when as_csv. False (and a message) on
 * failure. */
static bool write_chart(const tg_chart *chart, const char *dir, const char *name, bool as_csv)
{
    char path[PATH_SIZE];
    tg_error err;
    if (snprintf(path, sizeof path, "%s/%s.%s", dir, name, as_csv ? "csv" : "svg") >= PATH_SIZE) {
        fprintf(stderr, "lab_adding: output path too long: %s/%s\n", dir, name);
        return false;
    }
    int status = as_csv ? tg_chart_write_csv(chart, path, &err)
                        : tg_chart_write_svg(chart, path, &err);
    if (status != 0) {
        fprintf(stderr, "lab_adding: %s\n", err.message);
        return false;
    }
    return true;
}

/* The table as CSV, every loss curve in DIR/adding_loss.csv, and a chart per cell in
 * DIR/adding_loss_CELL.svg. False on the first failure. */
static bool write_outputs(const run_result *runs, int n_runs, const workspace *w, const char *dir)
{
    int n_points = w->train_steps / CHART_EVERY;
    float *step = malloc((size_t)n_points * sizeof *step);
    if (!step) {
        fprintf(stderr, "lab_adding: out of memory\n");
        return false;
    }
    for (int i = 0; i < n_points; i++)
        step[i] = (float)((i + 1) * CHART_EVERY);
    char label[N_RUNS][LABEL_SIZE];
    tg_series series[N_RUNS];
    for (int i = 0; i < n_runs; i++) {
        snprintf(label[i], LABEL_SIZE, "%s T=%d, clipping %s", runs[i].cell, runs[i].steps,
                 clipping_name(runs[i].clipped));
        series[i] = (tg_series){ label[i], step, runs[i].smoothed, n_points };
    }
    char title[128];
    snprintf(title, sizeof title, "Adding problem: training loss (mean of the last %d steps)",
             SMOOTHING);
    tg_chart all = { title, "SGD step", "MSE (log scale)", 1, series, n_runs };
    bool ok = write_table_csv(runs, n_runs, w, dir) && write_chart(&all, dir, "adding_loss", true);
    int runs_per_cell = n_runs / N_CELLS;
    for (int c = 0; ok && c < N_CELLS; c++) {
        char name[64];
        snprintf(name, sizeof name, "adding_loss_%s", CELLS[c]);
        tg_chart chart = all;
        chart.series = series + c * runs_per_cell;
        chart.n_series = runs_per_cell;
        ok = write_chart(&chart, dir, name, false);
    }
    free(step);
    return ok;
}

/* ---- main -------------------------------------------------------------------------------- */

/* True when dir is an existing directory; else prints why not. */
static bool is_directory(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        fprintf(stderr, "lab_adding: output directory %s: %s\n", dir, strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "lab_adding: output directory %s: not a directory\n", dir);
        return false;
    }
    return true;
}

/* Wall-clock seconds since some fixed moment. */
static double now(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs every (cell, T, clipping) in turn, one line on stderr per run. False on error. */
static bool run_all(workspace *w, const int *lengths, int n_lengths, uint64_t seed,
                    run_result *runs, float *losses)
{
    double start = now();
    tg_rng master = tg_rng_new(seed);
    uint64_t init_seed = tg_rng_next(&master);
    int n = 0;
    for (int c = 0; c < N_CELLS; c++)
        for (int l = 0; l < n_lengths; l++) {
            tg_rng per_length = tg_rng_new(tg_rng_next(&master));
            run_seeds seeds = { init_seed, tg_rng_next(&per_length), tg_rng_next(&per_length) };
            for (int clip = 0; clip <= 1; clip++, n++) {
                if (!run(w, CELLS[c], lengths[l], clip, seeds, losses, &runs[n]))
                    return false;
                fprintf(stderr, "lab_adding: %s T=%d clipping %s: test MSE %.4f (%.0f s)\n",
                        CELLS[c], lengths[l], clipping_name(clip), runs[n].test_mse, now() - start);
            }
        }
    return true;
}

int main(int argc, char **argv)
{
    options opt = parse_args(argc, argv);
    if (!is_directory(opt.out))
        return 1;
    const int *lengths = opt.quick ? QUICK_LENGTHS : LENGTHS;
    int n_lengths = opt.quick ? N_QUICK_LENGTHS : N_LENGTHS, n_runs = N_CELLS * n_lengths * 2;
    workspace w = { .tape = tg_tape_new(),
                    .train_steps = opt.quick ? QUICK_TRAIN_STEPS : TRAIN_STEPS,
                    .test_batches = opt.quick ? QUICK_TEST_BATCHES : TEST_BATCHES };
    int longest = lengths[n_lengths - 1], widest = BATCH > TEST_BATCH ? BATCH : TEST_BATCH;
    w.x = malloc((size_t)longest * INPUT_SIZE * (size_t)widest * sizeof *w.x);
    w.y = malloc((size_t)widest * sizeof *w.y);
    float *losses = malloc((size_t)w.train_steps * sizeof *losses);
    float *curves = malloc((size_t)n_runs * (size_t)(w.train_steps / CHART_EVERY) * sizeof *curves);
    run_result runs[N_RUNS] = { { 0 } };
    for (int i = 0; i < n_runs && curves; i++)
        runs[i].smoothed = curves + (size_t)i * (size_t)(w.train_steps / CHART_EVERY);
    int status = 1;
    if (!w.tape || !w.x || !w.y || !losses || !curves)
        fprintf(stderr, "lab_adding: out of memory\n");
    else if (run_all(&w, lengths, n_lengths, opt.seed, runs, losses)) {
        print_table(runs, n_runs, &w, opt.seed);
        status = write_outputs(runs, n_runs, &w, opt.out) ? 0 : 1;
    }
    free(curves);
    free(losses);
    free(w.x);
    free(w.y);
    tg_tape_free(w.tape);
    return status;
}
