/* lab_truncated.c: truncated BPTT on the adding problem: trains the same cell from the same
 * start on the same batches with the backward cut to the last k steps, for several windows
 * k at each sequence length T, to see what a window shorter than the task's dependency
 * cannot learn.
 *
 * The forward pass runs over all T steps, carrying the state across every cut, so the model
 * sees the whole sequence; only the gradient is truncated (examples/truncated.h). The loss
 * reads the last state, so the backward reaches the inputs of the last k steps and no
 * others: when the first marker lies further back than that, no gradient at all says that
 * its value matters. In tg_task_adding's sequences the first marker sits in the first half,
 * so a window k <= T/2 never holds it. Expect such windows to leave the task unsolved, and
 * k = T, which is full BPTT, to solve it; each T also gets a run of plain full BPTT
 * (model.h's last_step_mse, with no cut code at all), which the k = T run must match to the
 * last digit. */
#define _POSIX_C_SOURCE 200809L   /* for stat() (is_directory in cli.h), to check --out */

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model.h"
#include "tapegrad.h"
#include "truncated.h"

enum {
    INPUT_SIZE = 2,           /* value, marker */
    HIDDEN = 8,
    BATCH = 16,
    TEST_BATCH = 100,
    TRAIN_STEPS = 5000,
    TEST_BATCHES = 10,
    SEEDS = 3,
    QUICK_TRAIN_STEPS = 1000,
    QUICK_TEST_BATCHES = 2,
    QUICK_SEEDS = 2,
    FULL = 0,                 /* as a run's window: plain full BPTT (last_step_mse) */
    MAX_WINDOWS = 6,          /* per T, FULL included */
    PATH_SIZE = 4096,
    LABEL_SIZE = 64,
};
#define CELL "gru"
#define LEARNING_RATE 0.01f        /* Adam's */
#define BASELINE_MSE (1.0 / 6.0)   /* the MSE of always predicting the mean target, 1 */
#define SOLVED_MSE 0.01            /* below this: "solved" */

/* What the flags change, set once by main: the hidden size (--hidden) and Adam's lr (--lr). */
static struct {
    int hidden;
    float lr;
} setup = { HIDDEN, LEARNING_RATE };

/* The two tasks: tg_task_adding's sequences as they are, whose two markers are both 1, and
 * the same sequences with the first marker turned into -1. */
typedef struct task {
    const char *name, *short_name;
    bool signed_first;             /* the first marker is -1 */
} task;

static const task TASKS[] = {
    { "adding problem", "adding", false },
    { "adding problem, first marker -1", "first -1", true },
};
#define N_TASKS (int)(sizeof TASKS / sizeof TASKS[0])

/* The sequence lengths and, for each, the windows to train with (FULL first; the last is T). */
typedef struct sweep {
    int steps;                     /* T */
    int windows[MAX_WINDOWS];
    int n_windows;
} sweep;

static const sweep SWEEPS[] = {
    { 20, { FULL, 5, 10, 15, 20 }, 5 },
    { 50, { FULL, 5, 10, 20, 40, 50 }, 6 },
};
static const sweep QUICK_SWEEPS[] = {
    { 8, { FULL, 2, 4, 6, 8 }, 5 },
};
#define N_SWEEPS (int)(sizeof SWEEPS / sizeof SWEEPS[0])
#define N_QUICK_SWEEPS (int)(sizeof QUICK_SWEEPS / sizeof QUICK_SWEEPS[0])
#define MAX_ROWS (N_TASKS * N_SWEEPS * MAX_WINDOWS)

static const char USAGE[] =
    "usage: lab_truncated [--seed N] [--quick] [--lr X] [--hidden N] [--seeds N] [--out DIR]\n"
    "Trains a GRU with truncated BPTT (the forward over the whole sequence, the backward over\n"
    "the last k steps only) on the adding problem and on a variant whose first marker is -1,\n"
    "at T = 20 (k = 5, 10, 15, 20) and T = 50 (k = 5, 10, 20, 40, 50), and with plain full\n"
    "BPTT, from 3 seeds; prints the median test MSE of each against the 1/6 of guessing the\n"
    "mean and writes DIR/truncated.csv (every run), DIR/truncated.md (the table) and\n"
    "DIR/truncated.svg (test MSE against k). Takes about 20 s on one core.\n"
    "  --seed N    seed for the weights and the data, 0 or more (default 1)\n"
    "  --quick     T = 8, k = 2, 4, 6 and 8, 2 seeds, 1000 steps (under a second, for tests)\n"
    "  --lr X      Adam's learning rate (default 0.01)\n"
    "  --hidden N  the GRU's hidden units (default 8)\n"
    "  --seeds N   train every row from N seeds (default 3)\n"
    "  --out DIR   an existing directory for the output files (default results)\n"
    "  --help      print this and exit\n";

/* ---- one run: train one task at one T with one window from one seed, then test --------- */

/* A row of the table: one task at one T with one window, trained from every seed. */
typedef struct row {
    const task *task;
    int steps, window;             /* T, and k (FULL: plain full BPTT) */
    double first_in_window;        /* the share of training sequences, over every seed, whose
                                      first marker lies within the last k steps */
    double test_mse[LAB_MAX_SEEDS]; /* one per seed */
    int n_seeds;
} row;

/* What every run shares: the sizes, a tape, and buffers for the longest T. */
typedef struct workspace {
    int train_steps, test_batches;
    tg_tape *tape;
    carried_state carry;
    float *x, *y;                  /* steps x 2 x batch inputs, batch targets */
} workspace;

static bool workspace_new(workspace *w, int longest, int train_steps, int test_batches)
{
    size_t x_size = (size_t)longest * INPUT_SIZE * TEST_BATCH;
    *w = (workspace){ .train_steps = train_steps, .test_batches = test_batches,
                      .tape = tg_tape_new(), .x = malloc(x_size * sizeof(float)),
                      .y = malloc(TEST_BATCH * sizeof(float)) };
    bool carry = carried_state_new(&w->carry, setup.hidden, BATCH);
    return carry && w->tape && w->x && w->y;
}

static void workspace_free(workspace *w)
{
    tg_tape_free(w->tape);
    carried_state_free(&w->carry);
    free(w->x);
    free(w->y);
}

/* A GRU and its readout, PyTorch's init drawn from seed. False when out of memory. */
static bool model_init(model *m, uint64_t seed)
{
    tg_rng rng = tg_rng_new(seed);
    if (!model_new(m, CELL, INPUT_SIZE, setup.hidden, 1, tg_rng_next(&rng))) {
        model_free(m);
        return false;
    }
    model_init_readout(m, &rng);
    return true;
}

/* The step of the first marker of sequence b in x (steps x 2 x batch). */
static int first_marker(const float *x, int steps, int batch, int b)
{
    int t = 0;
    while (t < steps - 1 && x[((size_t)t * INPUT_SIZE + 1) * batch + b] == 0.0f)
        t++;
    return t;
}

/* A batch of the task in w->x and w->y, from rng. */
static void make_batch(workspace *w, const task *k, tg_rng *rng, int steps, int batch)
{
    tg_task_adding(rng, steps, batch, w->x, w->y, NULL);
    if (k->signed_first)
        for (int b = 0; b < batch; b++)
            w->x[((size_t)first_marker(w->x, steps, batch, b) * INPUT_SIZE + 1) * batch + b] = -1.0f;
}

/* How many of the batch's sequences have their first marker within the last `window` steps
 * (all of them for FULL). */
static int first_markers_in_window(const float *x, int steps, int window, int batch)
{
    int count = 0;
    for (int b = 0; b < batch; b++)
        count += window == FULL || first_marker(x, steps, batch, b) >= steps - window;
    return count;
}

/* The loss on the batch in w, recorded on w's tape: through last_step_mse for FULL, else
 * through truncated_last_step_mse. */
static tg_tensor *batch_loss(workspace *w, model *m, const row *r)
{
    if (r->window == FULL)
        return last_step_mse(w->tape, m, w->x, w->y, r->steps, BATCH);
    return truncated_last_step_mse(w->tape, m, &w->carry, w->x, w->y, r->steps, r->window, BATCH);
}

/* One Adam step on a fresh batch from rng; adds to *in_window the sequences whose first
 * marker the window holds. False on a tape or optimizer error (printed). */
static bool train_step(workspace *w, model *m, tg_optimizer *adam, const row *r, tg_rng *rng,
                       long *in_window)
{
    make_batch(w, r->task, rng, r->steps, BATCH);
    *in_window += first_markers_in_window(w->x, r->steps, r->window, BATCH);
    tg_tape_reset(w->tape);
    tg_zero_grad(m->params, m->n_params, NULL);
    if (tg_backward(w->tape, batch_loss(w, m, r)) != 0) {
        complain("%s", tg_tape_error(w->tape));
        return false;
    }
    tg_error err;
    if (tg_optimizer_step(adam, &err) != 0) {
        complain("%s", err.message);
        return false;
    }
    return true;
}

/* The mean MSE of m over the workspace's test batches from rng: the forward pass alone, which
 * a cut does not change, so every run is tested the same way. False on a tape error. */
static bool measure_test_mse(workspace *w, model *m, const row *r, tg_rng *rng, double *mse)
{
    double sum = 0.0;
    for (int i = 0; i < w->test_batches; i++) {
        make_batch(w, r->task, rng, r->steps, TEST_BATCH);
        tg_tape_reset(w->tape);
        tg_tensor *loss = last_step_mse(w->tape, m, w->x, w->y, r->steps, TEST_BATCH);
        if (!loss) {
            complain("%s", tg_tape_error(w->tape));
            return false;
        }
        sum += loss->data[0];
    }
    *mse = sum / w->test_batches;
    return true;
}

/* The seeds of one run: its initial weights, its training batches and its test batches. */
typedef struct run_seeds {
    uint64_t init, data, test;
} run_seeds;

/* Trains a fresh model with r's task, T and window from the given seeds, then tests it:
 * fills in r's test MSE for seed i and adds to *in_window. False on error (printed). */
static bool run(workspace *w, row *r, int i, run_seeds seeds, long *in_window)
{
    model m;
    tg_error err;
    tg_optimizer *adam = NULL;
    bool ok = model_init(&m, seeds.init)
              && (adam = tg_optimizer_new(TG_ADAM, m.params, m.n_params, setup.lr, &err));
    if (!ok)
        complain("cannot make the model: %s", adam ? "out of memory" : err.message);
    tg_rng data = tg_rng_new(seeds.data), test = tg_rng_new(seeds.test);
    for (int s = 0; ok && s < w->train_steps; s++)
        ok = train_step(w, &m, adam, r, &data, in_window);
    ok = ok && measure_test_mse(w, &m, r, &test, &r->test_mse[i]);
    tg_optimizer_free(adam);
    model_free(&m);
    return ok;
}

/* The window column: "full BPTT", "N (= T)" or the number. */
static const char *window_name(const row *r, char *buf, size_t size)
{
    if (r->window == FULL)
        snprintf(buf, size, "full BPTT");
    else if (r->window == r->steps)
        snprintf(buf, size, "%d (= T)", r->window);
    else
        snprintf(buf, size, "%d", r->window);
    return buf;
}

/* Lists every row, in the table's order (task, then T, then window). Returns how many. */
static int plan_rows(const sweep *sweeps, int n_sweeps, int n_seeds, row *rows)
{
    int n = 0;
    for (int k = 0; k < N_TASKS; k++)
        for (int i = 0; i < n_sweeps; i++)
            for (int j = 0; j < sweeps[i].n_windows; j++)
                rows[n++] = (row){ .task = &TASKS[k], .steps = sweeps[i].steps,
                                   .window = sweeps[i].windows[j], .n_seeds = n_seeds };
    return n;
}

/* Every run: seed i of every row starts from the same weights and draws the same batches
 * (tg_task_adding's for the row's T; the variant turns their first marker into -1). One line on stderr per row. False on error. */
static bool run_all(workspace *w, row *rows, int n_rows, uint64_t seed)
{
    double start = now();
    for (row *r = rows; r < rows + n_rows; r++) {
        tg_rng master = tg_rng_new(seed);
        long in_window = 0;
        for (int i = 0; i < r->n_seeds; i++) {
            run_seeds seeds = { tg_rng_next(&master), tg_rng_next(&master), tg_rng_next(&master) };
            if (!run(w, r, i, seeds, &in_window))
                return false;
        }
        r->first_in_window = (double)in_window / ((double)r->n_seeds * w->train_steps * BATCH);
        char window[32];
        complain("%s, T = %d, k = %s: done (%.0f s)", r->task->name, r->steps,
                 window_name(r, window, sizeof window), now() - start);
    }
    return true;
}

/* ---- the table and the chart ------------------------------------------------------------- */

/* The median, smallest and largest of the row's test MSEs. */
static void test_mse_range(const row *r, double *median, double *lo, double *hi)
{
    double sorted[LAB_MAX_SEEDS];
    memcpy(sorted, r->test_mse, (size_t)r->n_seeds * sizeof(double));
    for (int i = 1; i < r->n_seeds; i++)
        for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            double swap = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = swap;
        }
    int n = r->n_seeds;
    *median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    *lo = sorted[0];
    *hi = sorted[n - 1];
}

static int solved_count(const row *r)
{
    int solved = 0;
    for (int i = 0; i < r->n_seeds; i++)
        solved += r->test_mse[i] < SOLVED_MSE;
    return solved;
}

static void print_header(int train_steps, int test_batches, int n_seeds, unsigned long long seed)
{
    printf("Truncated BPTT on the adding problem: T steps of (value, marker); target: the sum\n"
           "of the two marked values, the first marked in the first half, the second in the\n"
           "second; in the variant \"first -1\" the first marker is -1 instead of 1.\n"
           "Model: a GRU of %d hidden units with a readout of its last state; MSE loss;\n"
           "PyTorch's init. Truncated BPTT with window k: the forward runs over all T steps,\n"
           "carrying the state; the tape is cut every k steps counted back from the end, so\n"
           "the backward reaches the last k steps only. full BPTT: no cut code at all.\n"
           "Adam at lr %g, batch %d, %d steps, %d seed%s from --seed %llu: at each T, every\n"
           "window starts from the same weights and sees the same batches. Test MSE over %d\n"
           "fresh batches of %d (median, and the range over the seeds); predicting the mean\n"
           "scores 1/6 = %.3f; solved: test MSE < %.2f.\n"
           "first marker in window: the share of training sequences whose first marker lies\n"
           "within the last k steps, where a gradient can reach it.\n\n",
           setup.hidden, setup.lr, BATCH, train_steps, n_seeds, n_seeds == 1 ? "" : "s", seed,
           test_batches, TEST_BATCH, BASELINE_MSE, SOLVED_MSE);
}

static void print_table(const row *rows, int n_rows)
{
    char window[32];
    printf("%-8s  %3s  %-9s  %9s  %9s  %17s  %6s\n", "task", "T", "k", "1st in k", "test MSE",
           "range", "solved");
    for (const row *r = rows; r < rows + n_rows; r++) {
        double median, lo, hi;
        test_mse_range(r, &median, &lo, &hi);
        printf("%-8s  %3d  %-9s  %8.0f%%  %9.2g  %8.2g-%-8.2g  %4d/%d\n", r->task->short_name,
               r->steps, window_name(r, window, sizeof window), 100.0 * r->first_in_window,
               median, lo, hi, solved_count(r), r->n_seeds);
    }
}

/* DIR/truncated.csv: one line per run (row and seed); window 0 is plain full BPTT. */
static bool write_table_csv(const row *rows, int n_rows, int train_steps, const char *dir)
{
    char path[PATH_SIZE];
    if (!output_path(path, sizeof path, dir, "truncated.csv"))
        return false;
    table t = { NULL, 0, 0, false };
    table_add(&t, "task,T,window,seed,cell,hidden,batch,lr,train_steps,first_in_window,"
                  "test_mse,solved\n");
    for (const row *r = rows; r < rows + n_rows; r++)
        for (int i = 0; i < r->n_seeds; i++)
            table_add(&t, "%s,%d,%d,%d,%s,%d,%d,%g,%d,%.4f,%.9g,%d\n", r->task->short_name,
                    r->steps, r->window, i + 1, CELL, setup.hidden, BATCH, setup.lr, train_steps,
                    r->first_in_window, r->test_mse[i], r->test_mse[i] < SOLVED_MSE);
    return write_table(&t, path);
}

/* DIR/truncated.md: the table in Markdown, as docs/bptt.md shows it. */
static bool write_table_markdown(const row *rows, int n_rows, const char *dir)
{
    char path[PATH_SIZE], window[32];
    if (!output_path(path, sizeof path, dir, "truncated.md"))
        return false;
    table t = { NULL, 0, 0, false };
    table_add(&t, "| task | T | k | first marker in window | test MSE (median) | range | "
                  "solved |\n|:---|---:|:---|---:|---:|:---|---:|\n");
    for (const row *r = rows; r < rows + n_rows; r++) {
        double median, lo, hi;
        test_mse_range(r, &median, &lo, &hi);
        table_add(&t, "| %s | %d | %s | %.0f%% | %.2g | %.2g–%.2g | %d/%d |\n",
                r->task->short_name, r->steps, window_name(r, window, sizeof window),
                100.0 * r->first_in_window, median, lo, hi, solved_count(r), r->n_seeds);
    }
    return write_table(&t, path);
}

/* DIR/truncated.svg: the median test MSE against k, one line per task and T (the truncated
 * runs only, k = T last), with the 1/6 of guessing the mean and the 0.01 of "solved". */
static bool write_mse_chart(const row *rows, int n_rows, const char *dir)
{
    float k[MAX_ROWS], mse[MAX_ROWS], baseline[MAX_ROWS], solved[MAX_ROWS];
    char label[MAX_ROWS][LABEL_SIZE];
    tg_series series[MAX_ROWS + 2];
    int n_series = 0, n = 0, longest = 0;
    for (const row *r = rows; r < rows + n_rows; r++) {
        if (r->window == FULL) {
            snprintf(label[n_series], LABEL_SIZE, "%s, T = %d", r->task->name, r->steps);
            series[n_series] = (tg_series){ label[n_series], &k[n], &mse[n], 0, TG_SERIES_LINE };
            n_series++;
            continue;
        }
        double median, lo, hi;
        test_mse_range(r, &median, &lo, &hi);
        k[n] = (float)r->window;
        mse[n] = (float)median;
        baseline[n] = (float)BASELINE_MSE;
        solved[n++] = (float)SOLVED_MSE;
        if (++series[n_series - 1].n > series[longest].n)
            longest = n_series - 1;
    }
    const float *ks = series[longest].x;
    int n_k = series[longest].n;
    series[n_series++] = (tg_series){ "predicting the mean: 1/6", ks, baseline, n_k, TG_SERIES_LINE };
    series[n_series++] = (tg_series){ "solved: 0.01", ks, solved, n_k, TG_SERIES_LINE };
    tg_chart chart = { "Truncated BPTT: median test MSE against the window k",
                       "k (steps the backward reaches)", "test MSE (log scale)", 1, series,
                       n_series };
    return write_chart(&chart, dir, "truncated", false);
}

/* ---- main -------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    program = "lab_truncated";
    lab_options defaults = LAB_DEFAULTS;
    defaults.takes = LAB_BIT(LAB_LR) | LAB_BIT(LAB_HIDDEN) | LAB_BIT(LAB_SEEDS);
    defaults.why_not[LAB_RHO] = "lab_truncated trains a GRU at PyTorch's init: W_h = rho Q is "
                                "the tanh RNN's (a GRU's W_h stacks a block per gate)";
    defaults.why_not[LAB_CLIP] = "lab_truncated does not clip: it compares the truncated "
                                 "gradient with the full one as they are";
    lab_options opt = lab_parse_args(argc, argv, USAGE, defaults);
    if (!is_directory(opt.out))
        return 1;
    const sweep *sweeps = opt.quick ? QUICK_SWEEPS : SWEEPS;
    int n_sweeps = opt.quick ? N_QUICK_SWEEPS : N_SWEEPS;
    int train_steps = opt.quick ? QUICK_TRAIN_STEPS : TRAIN_STEPS;
    int test_batches = opt.quick ? QUICK_TEST_BATCHES : TEST_BATCHES;
    int n_seeds = lab_given(&opt, LAB_SEEDS) ? opt.seeds : opt.quick ? QUICK_SEEDS : SEEDS;
    if (lab_given(&opt, LAB_HIDDEN))
        setup.hidden = opt.hidden;
    if (lab_given(&opt, LAB_LR))
        setup.lr = opt.lr;
    row rows[MAX_ROWS];
    int n_rows = plan_rows(sweeps, n_sweeps, n_seeds, rows);
    workspace w;
    int status = 1;
    if (!workspace_new(&w, sweeps[n_sweeps - 1].steps, train_steps, test_batches))
        complain("out of memory");
    else if (run_all(&w, rows, n_rows, opt.seed)) {
        print_header(train_steps, test_batches, n_seeds, opt.seed);
        print_table(rows, n_rows);
        bool ok = write_table_csv(rows, n_rows, train_steps, opt.out)
                  && write_table_markdown(rows, n_rows, opt.out)
                  && write_mse_chart(rows, n_rows, opt.out);
        status = ok ? 0 : 1;
    }
    workspace_free(&w);
    return status;
}
