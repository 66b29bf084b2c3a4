/* lab_gradient_norms.c: how the norm of the gradient ||dL/dh_{T-k}|| changes with the number
 * of steps k it travels back in time: for the vanilla RNN cell and the same cell minus tanh,
 * and then for the LSTM and GRU cells next to the RNN.
 *
 * Backpropagation through time carries the gradient one step back with
 *
 *     dL/dh_{t-1} = W_h^T diag(1 - h_t^2) dL/dh_t      the tanh cell
 *     dL/dh_{t-1} = W_h^T dL/dh_t                      the same cell, minus tanh
 *
 * With W_h = rho Q and Q orthogonal, multiplying by W_h^T scales the length of any vector by
 * exactly rho. So for the linear cell ||dL/dh_{T-k}|| / ||dL/dh_T|| = rho^k: the gradient
 * vanishes exponentially in k when rho < 1 and explodes when rho > 1. The slope of tanh,
 * 1 - h^2, is at most 1, so it can only shrink the gradient further: the tanh cell stays at
 * or below rho^k, and far below once its units saturate. Expect straight lines on the log
 * charts for the linear cell, and curves that bend down under them for the tanh cell.
 *
 * That reasoning needs W_h to be normal (W_h^T W_h = W_h W_h^T), as rho Q is. For a fixed W_h the
 * linear cell's gradient is (W_h^T)^k dL/dh_T, whose long-run rate per step is the spectral
 * radius of W_h (its largest |eigenvalue|), not its largest singular value sigma_max: the two
 * agree for a normal matrix only. The second table takes two non-normal W_h with sigma_max
 * above 1 and spectral radius below: PyTorch's init, and Q J Q^T with J block diagonal of 2 x 2
 * blocks [[0.5, 2], [0, 0.5]] (Jordan-like). It prints both numbers, computed in double, next to
 * the measured factor per step, and the largest ratio of the tanh cell's gradient to the linear
 * cell's: for a non-normal W_h the slopes of tanh, which shrink every direction one at a time,
 * can still leave a product of steps that is longer. Expect both gradients to vanish at about
 * the spectral radius per step, although sigma_max^k grows.
 *
 * The gated cells keep their state by a gated sum instead: the LSTM's c_t = f * c_{t-1} +
 * i * g, the GRU's h_t = (1 - z) * n + z * h_{t-1}. Along that path one step back multiplies
 * the gradient by the gate (f or z), elementwise, and by no weight matrix, so how fast it
 * fades is set by the gates; the LSTM's forget gate starts near sigmoid(forget bias). The
 * third table compares them at PyTorch's init, with the LSTM's forget bias at 0, 1 and 3,
 * against the tanh RNN at PyTorch's init and at W_h = Q. (rho Q is for the RNN only: a gated
 * cell's W_h stacks one block per gate, and its memory is set by the gates.) It measures
 * ||dL/dx_{T-k}|| / ||dL/dx_T||, the gradient that reaches the input k steps back, and not
 * dL/dh: the LSTM carries a second state, c, and dL/dh alone leaves out what travels in it,
 * while every cell's input is alike and what learning from an early input needs. Expect a
 * forget bias of 0 to fade about as fast as the RNN at PyTorch's init, and a larger bias to
 * fade more slowly: at init the gates only set the rate; training can push it towards 1. */
#define _POSIX_C_SOURCE 200809L   /* for stat() (is_directory in cli.h), to check --out */

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tapegrad.h"

enum {
    HIDDEN = 50,
    INPUT_SIZE = 4,
    STEPS = 100,              /* T */
    SEEDS = 10,               /* runs averaged per model (and rho) */
    LATE_FROM = 50,           /* the non-normal table's factor per step: over k = LATE_FROM..T-1 */
    POWER_ITERATIONS = 2000,  /* sigma_max and the spectral radius, by power iteration */
    QUICK_SEEDS = 2,
    PATH_SIZE = 4096,
    LABEL_SIZE = 32,
};
#define INPUT_STD 1.0f        /* every input value is N(0, INPUT_STD^2) */
#define EXACT_TOLERANCE 1e-5  /* "follows rho^k": |ratio / rho^k - 1| below this (float rounding) */
#define BOUND_TOLERANCE 1e-6  /* "at or below rho^k": ratio / rho^k at most 1 + this */
#define JORDAN_DIAGONAL 0.5f  /* the Jordan-like W_h's blocks: [[a, s], [0, a]] with a = this, */
#define JORDAN_COUPLING 2.0f  /* ... and s = this */

static const float RHOS[] = { 0.5f, 0.9f, 1.0f, 1.1f, 1.5f };
static const int TABLE_KS[] = { 1, 10, 25, 50, 99 };
#define N_RHOS (int)(sizeof RHOS / sizeof RHOS[0])
#define N_TABLE_KS (int)(sizeof TABLE_KS / sizeof TABLE_KS[0])

/* What the flags change, set once by main: the hidden size (--hidden) and the rhos of the first
 * table (RHOS, or --rho's one). */
static struct {
    int hidden;
    int n_rhos;
    float rhos[N_RHOS];
} setup;

static const char USAGE[] =
    "usage: lab_gradient_norms [--seed N] [--quick] [--hidden N] [--rho X] [--seeds N]\n"
    "                          [--out DIR]\n"
    "Measures ||dL/dh_{T-k}|| / ||dL/dh_T|| for k = 0..99 (T = 100, hidden 50) in a tanh RNN\n"
    "cell and the same cell without tanh, with W_h = rho Q for rho = 0.5, 0.9, 1, 1.1, 1.5,\n"
    "and prints it at a few k next to rho^k; then for two non-normal W_h (sigma_max above 1,\n"
    "spectral radius below); then ||dL/dx_{T-k}|| / ||dL/dx_T|| for an LSTM (forget bias 0, 1\n"
    "and 3), a GRU and the tanh RNN, at PyTorch's init. Writes DIR/gradient_norms.csv (every\n"
    "curve) and the charts DIR/gradient_norms_tanh.svg, DIR/gradient_norms_linear.svg and\n"
    "DIR/gradient_norms_gated.svg.\n"
    "  --seed N    seed for the weights and the inputs, 0 or more (default 1)\n"
    "  --hidden N  hidden units of every cell, 1 to 512 (default 50); the power iterations\n"
    "              take time in N^2\n"
    "  --rho X     the first table and its charts at W_h = X Q only, instead of the five rhos\n"
    "  --seeds N   average over N seeds (default 10)\n"
    "  --quick     average over 2 seeds instead of 10 (for tests)\n"
    "  --out DIR   an existing directory for the CSV and SVG files (default results)\n"
    "  --help      print this and exit\n";

/* ---- the models -------------------------------------------------------------------------- */

/* What the check column tests for a model, k = 1..T-1. */
typedef enum claim { RATIO_IS_RHO_K, RATIO_AT_MOST_RHO_K } claim;

/* A model of the first table: how to make one whose recurrent matrix is rho Q, with every
 * random choice drawn from rng, and what it claims about the gradient ratio. */
typedef struct model_kind {
    const char *name;
    claim claim;
    tg_cell *(*make)(float rho, tg_rng *rng);
} model_kind;

/* The vanilla RNN cell, h_t = tanh(W_h h_{t-1} + W_x x_t + b), with W_h = rho Q. W_x keeps
 * PyTorch's init (uniform in +-1/sqrt(hidden)) and b = 0. NULL when out of memory. */
static tg_cell *tanh_rnn(float rho, tg_rng *rng)
{
    tg_cell *cell = tg_cell_new("rnn", INPUT_SIZE, setup.hidden, tg_rng_next(rng), NULL);
    if (!cell)
        return NULL;
    tg_rnn_cell *rnn = cell->impl;
    if (tg_init_orthogonal(rnn->W_h, rho, rng, NULL) != 0) {
        tg_cell_free(cell);
        return NULL;
    }
    return cell;
}

/* h_t = W_h h_{t-1} + W_x x_t + b: tg_rnn_cell_forward's step with the tg_tanh left out. */
static tg_cell_state linear_step(tg_tape *tape, void *impl, tg_tensor *x_t, tg_cell_state prev)
{
    tg_rnn_cell *rnn = impl;
    tg_tensor *from_input = tg_matmul_add(tape, rnn->W_x, x_t, rnn->b);            /* W_x x_t + b */
    return (tg_cell_state){ .h = tg_matmul_add(tape, rnn->W_h, prev.h, from_input) }; /* hidden x batch */
}

/* cell (an RNN cell, or NULL) stepped by linear_step from now on. */
static tg_cell *without_tanh(tg_cell *cell)
{
    if (cell) {
        cell->name = "linear";
        cell->step = linear_step;
    }
    return cell;
}

/* The same cell, minus tanh: the tanh cell's weights, stepped by linear_step. */
static tg_cell *linear_rnn(float rho, tg_rng *rng) { return without_tanh(tanh_rnn(rho, rng)); }

static const model_kind MODELS[] = {
    { "tanh", RATIO_AT_MOST_RHO_K, tanh_rnn },
    { "linear", RATIO_IS_RHO_K, linear_rnn },
};
#define N_MODELS (int)(sizeof MODELS / sizeof MODELS[0])

/* W_h = Q J Q^T, Q orthogonal (drawn from rng), J block diagonal of 2 x 2 blocks
 * [[JORDAN_DIAGONAL, JORDAN_COUPLING], [0, JORDAN_DIAGONAL]] (a 1 x 1 block [a] last when the
 * size is odd): every eigenvalue is a, while a block stretches some vector by
 * (s + sqrt(s^2 + 4 a^2)) / 2. False when out of memory. */
static bool jordan_like(tg_tensor *W_h, tg_rng *rng)
{
    int n = W_h->rows;
    tg_tensor *Q = tg_param_new(n, n);
    double *QJ = malloc((size_t)n * n * sizeof *QJ);
    bool ok = Q && QJ && tg_init_orthogonal(Q, 1.0f, rng, NULL) == 0;
    for (int i = 0; ok && i < n; i++)             /* QJ = Q J: column j is a Q_j, plus s Q_{j-1} */
        for (int j = 0; j < n; j++)              /* when j is the second of its block */
            QJ[i * n + j] = JORDAN_DIAGONAL * Q->data[i * n + j]
                            + (j % 2 == 1 ? JORDAN_COUPLING * Q->data[i * n + j - 1] : 0.0);
    for (int i = 0; ok && i < n; i++)             /* W_h = (Q J) Q^T */
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int p = 0; p < n; p++)
                sum += QJ[i * n + p] * Q->data[j * n + p];
            W_h->data[i * n + j] = (float)sum;
        }
    tg_param_free(Q);
    free(QJ);
    return ok;
}

/* A W_h of the non-normal table: how to make it from a cell's PyTorch init. */
typedef struct nonnormal_kind {
    const char *label;
    bool (*shape)(tg_tensor *W_h, tg_rng *rng);   /* NULL: PyTorch's init, kept */
} nonnormal_kind;

static const nonnormal_kind NONNORMAL[] = {
    { "PyTorch's init", NULL },
    { "Q J Q^T, J = [[0.5, 2], [0, 0.5]] blocks", jordan_like },
};
#define N_NONNORMAL (int)(sizeof NONNORMAL / sizeof NONNORMAL[0])

/* The tanh RNN cell (PyTorch's init) with its W_h shaped as kind says, minus tanh when
 * linear. NULL when out of memory. */
static tg_cell *nonnormal_rnn(const nonnormal_kind *kind, bool linear, tg_rng *rng)
{
    tg_cell *cell = tg_cell_new("rnn", INPUT_SIZE, setup.hidden, tg_rng_next(rng), NULL);
    tg_rnn_cell *rnn = cell ? cell->impl : NULL;
    if (cell && kind->shape && !kind->shape(rnn->W_h, rng)) {
        tg_cell_free(cell);
        return NULL;
    }
    return linear ? without_tanh(cell) : cell;
}

/* The largest singular value of the n x n matrix W (row-major), in double: power iteration
 * on W^T W from a fixed start. */
static double largest_singular_value(const float *W, int n)
{
    double v[LAB_MAX_HIDDEN], Wv[LAB_MAX_HIDDEN], norm = 0.0;
    for (int i = 0; i < n; i++)
        v[i] = 1.0 + 0.1 * i;
    for (int it = 0; it < POWER_ITERATIONS; it++) {
        for (int i = 0; i < n; i++) {
            Wv[i] = 0.0;
            for (int j = 0; j < n; j++)
                Wv[i] += W[i * n + j] * v[j];
        }
        norm = 0.0;
        for (int j = 0; j < n; j++) {             /* v = W^T W v, normalised */
            v[j] = 0.0;
            for (int i = 0; i < n; i++)
                v[j] += W[i * n + j] * Wv[i];
            norm += v[j] * v[j];
        }
        norm = sqrt(norm);
        for (int j = 0; j < n; j++)
            v[j] /= norm;
    }
    return sqrt(norm);                            /* ||W^T W v|| = sigma_max^2 at the end */
}

/* The spectral radius of the n x n matrix W, in double: the mean growth per step of
 * ||W^k v|| over the second half of POWER_ITERATIONS steps (Gelfand's formula; it also
 * converges when the largest eigenvalues are a complex pair or share their modulus). */
static double spectral_radius(const float *W, int n)
{
    double v[LAB_MAX_HIDDEN], Wv[LAB_MAX_HIDDEN], log_growth = 0.0;
    for (int i = 0; i < n; i++)
        v[i] = 1.0 + 0.1 * i;
    for (int it = 0; it < POWER_ITERATIONS; it++) {
        double norm = 0.0;
        for (int i = 0; i < n; i++) {
            Wv[i] = 0.0;
            for (int j = 0; j < n; j++)
                Wv[i] += W[i * n + j] * v[j];
            norm += Wv[i] * Wv[i];
        }
        norm = sqrt(norm);
        for (int i = 0; i < n; i++)
            v[i] = Wv[i] / norm;
        if (it >= POWER_ITERATIONS / 2)
            log_growth += log(norm);
    }
    return exp(log_growth / (POWER_ITERATIONS - POWER_ITERATIONS / 2));
}

/* A model of the third table: a cell made by tg_cell_new with PyTorch's init, except that
 * the RNN may get W_h = rho Q and the LSTM a forget-gate bias. */
typedef struct compared_kind {
    const char *label;
    const char *cell;         /* "rnn", "lstm" or "gru" */
    float rho;                /* rnn: W_h = rho Q; 0 keeps PyTorch's init */
    float forget_bias;        /* lstm: the f rows of b */
} compared_kind;

static const compared_kind COMPARED[] = {
    { "rnn, W_h = Q (rho = 1)", "rnn", 1.0f, 0.0f },
    { "rnn, PyTorch init", "rnn", 0.0f, 0.0f },
    { "lstm, forget bias 0", "lstm", 0.0f, 0.0f },
    { "lstm, forget bias 1", "lstm", 0.0f, 1.0f },
    { "lstm, forget bias 3", "lstm", 0.0f, 3.0f },
    { "gru", "gru", 0.0f, 0.0f },
};
#define N_COMPARED (int)(sizeof COMPARED / sizeof COMPARED[0])

/* The cell that kind describes, drawn from rng. NULL when out of memory. */
static tg_cell *compared_cell(const compared_kind *kind, tg_rng *rng)
{
    if (kind->rho > 0.0f)
        return tanh_rnn(kind->rho, rng);
    tg_cell *cell = tg_cell_new(kind->cell, INPUT_SIZE, setup.hidden, tg_rng_next(rng), NULL);
    if (cell && strcmp(kind->cell, "lstm") == 0)
        tg_lstm_cell_set_forget_bias(cell->impl, kind->forget_bias);  /* impl: a tg_lstm_cell */
    return cell;
}

/* ---- the measurement --------------------------------------------------------------------- */

/* What one model measured over all seeds. */
typedef struct curve {
    double mean_log10[STEPS];   /* k = 0..T-1: the mean over seeds of log10 of the ratio */
    double check;               /* first table: max over seeds, k >= 1, of |ratio/rho^k - 1|
                                   or ratio/rho^k */
} curve;

/* What a non-normal W_h measured over all seeds. */
typedef struct nonnormal_curves {
    curve linear, tanh;
    double sigma_max, spectral_radius;   /* means over seeds */
    double most_above;                   /* max over seeds and k of the tanh cell's ratio over
                                            the linear cell's */
    int most_above_k;                    /* ... at this k */
} nonnormal_curves;

typedef struct measurements {
    int n_seeds;
    curve rho_curves[N_MODELS][N_RHOS];
    nonnormal_curves nonnormal[N_NONNORMAL];
    curve compared[N_COMPARED];          /* of ||dL/dx_{T-k}|| */
} measurements;

/* Which gradient a curve follows back: of the hidden state h_t or of the input x_t. */
typedef enum gradient_of { OF_STATE, OF_INPUT } gradient_of;

/* Runs cell from h_0 = 0 over T inputs drawn from rng, takes L = sum(w * h_T) with w drawn
 * from rng too, and writes ||dL/dh_{T-k}|| / ||dL/dh_T|| (of is OF_STATE) or
 * ||dL/dx_{T-k}|| / ||dL/dx_T|| (OF_INPUT) to ratio[k] for k = 0..T-1. The inputs are
 * tg_inputs, so that their grads exist. Returns false (and prints the tape's error) on failure. */
static bool measure_ratios(tg_tape *tape, tg_cell *cell, tg_rng *rng, gradient_of of,
                           double ratio[STEPS])
{
    tg_tape_reset(tape);
    tg_tensor *h[STEPS + 1], *x[STEPS + 1];                    /* h[t]: hidden x 1, x[t]: input x 1 */
    tg_cell_state state = tg_cell_zero_state(tape, cell, 1);
    h[0] = state.h;
    for (int t = 1; t <= STEPS; t++) {
        x[t] = tg_input(tape, INPUT_SIZE, 1, NULL);
        if (x[t])
            tg_init_normal(x[t], 0.0f, INPUT_STD, rng, NULL);
        state = tg_cell_step(tape, cell, x[t], state);
        h[t] = state.h;
    }
    tg_tensor *w = tg_constant(tape, setup.hidden, 1, NULL);          /* hidden x 1 */
    tg_init_normal(w, 0.0f, 1.0f, rng, NULL);
    tg_tensor *loss = tg_sum(tape, tg_mul(tape, w, h[STEPS]));  /* 1 x 1 */
    if (tg_backward(tape, loss) != 0) {
        complain("%s", tg_tape_error(tape));
        return false;
    }
    tg_tensor **followed = of == OF_STATE ? h : x;
    double last = tg_grad_norm(followed[STEPS]);
    for (int k = 0; k < STEPS; k++)
        ratio[k] = tg_grad_norm(followed[STEPS - k]) / last;
    return true;
}

/* Measures cell (and frees it) on the inputs of data_seed, adds the run's share to c's mean
 * and leaves the ratios in ratio. False on failure, NULL cell included. */
static bool add_run(tg_tape *tape, tg_cell *cell, uint64_t data_seed, gradient_of of,
                    int n_seeds, curve *c, double ratio[STEPS])
{
    if (!cell) {
        complain("out of memory");
        return false;
    }
    tg_rng data = tg_rng_new(data_seed);
    bool ok = measure_ratios(tape, cell, &data, of, ratio);
    tg_cell_free(cell);
    for (int k = 0; ok && k < STEPS; k++)
        c->mean_log10[k] += log10(ratio[k]) / n_seeds;
    return ok;
}

/* How far ratio (k = 1..T-1) is from the model's claim: the largest |ratio/rho^k - 1| or
 * ratio/rho^k. */
static double claim_check(claim c, float rho, const double ratio[STEPS])
{
    double worst = 0.0;
    for (int k = 1; k < STEPS; k++) {
        double relative = ratio[k] / pow(rho, k);
        worst = fmax(worst, c == RATIO_IS_RHO_K ? fabs(relative - 1.0) : relative);
    }
    return worst;
}

static bool claim_holds(claim c, double check)
{
    return c == RATIO_IS_RHO_K ? check < EXACT_TOLERANCE : check <= 1.0 + BOUND_TOLERANCE;
}

/* Adds run s of the non-normal W_h kind to n: both cells from model_seed, on data_seed, and
 * the matrix's sigma_max and spectral radius. False on failure. */
static bool add_nonnormal(tg_tape *tape, const nonnormal_kind *kind, uint64_t model_seed,
                          uint64_t data_seed, int n_seeds, nonnormal_curves *n)
{
    double linear[STEPS], tanh_ratio[STEPS];
    tg_rng rng = tg_rng_new(model_seed);
    tg_cell *cell = nonnormal_rnn(kind, false, &rng);
    if (cell) {
        const tg_tensor *W_h = ((tg_rnn_cell *)cell->impl)->W_h;
        n->sigma_max += largest_singular_value(W_h->data, setup.hidden) / n_seeds;
        n->spectral_radius += spectral_radius(W_h->data, setup.hidden) / n_seeds;
    }
    if (!add_run(tape, cell, data_seed, OF_STATE, n_seeds, &n->tanh, tanh_ratio))
        return false;
    rng = tg_rng_new(model_seed);
    if (!add_run(tape, nonnormal_rnn(kind, true, &rng), data_seed, OF_STATE, n_seeds, &n->linear,
                 linear))
        return false;
    for (int k = 1; k < STEPS; k++)
        if (tanh_ratio[k] / linear[k] > n->most_above) {
            n->most_above = tanh_ratio[k] / linear[k];
            n->most_above_k = k;
        }
    return true;
}

/* Fills res from res->n_seeds runs of every model. Run s of every model makes its weights
 * from the same model seed and its inputs and w from the same data seed, so the tanh and
 * linear cells share Q and W_x, every model sees the same inputs, and only the cell differs.
 * False on failure. */
static bool measure_all(tg_tape *tape, uint64_t seed, measurements *res)
{
    tg_rng seeds = tg_rng_new(seed);
    double ratio[STEPS];
    for (int s = 0; s < res->n_seeds; s++) {
        uint64_t model_seed = tg_rng_next(&seeds), data_seed = tg_rng_next(&seeds);
        for (int m = 0; m < N_MODELS; m++)
            for (int r = 0; r < setup.n_rhos; r++) {
                tg_rng rng = tg_rng_new(model_seed);
                curve *c = &res->rho_curves[m][r];
                if (!add_run(tape, MODELS[m].make(setup.rhos[r], &rng), data_seed, OF_STATE,
                             res->n_seeds, c, ratio))
                    return false;
                c->check = fmax(c->check, claim_check(MODELS[m].claim, setup.rhos[r], ratio));
            }
        for (int n = 0; n < N_NONNORMAL; n++)
            if (!add_nonnormal(tape, &NONNORMAL[n], model_seed, data_seed, res->n_seeds,
                               &res->nonnormal[n]))
                return false;
        for (int g = 0; g < N_COMPARED; g++) {
            tg_rng rng = tg_rng_new(model_seed);
            if (!add_run(tape, compared_cell(&COMPARED[g], &rng), data_seed, OF_INPUT,
                         res->n_seeds, &res->compared[g], ratio))
                return false;
        }
    }
    return true;
}

/* ---- the tables and the charts ----------------------------------------------------------- */

static double mean_ratio(const curve *c, int k) { return pow(10.0, c->mean_log10[k]); }

/* The mean factor by which one more step back multiplies the ratio, from k = from to k = T-1. */
static double factor_per_step(const curve *c, int from)
{
    return pow(10.0, (c->mean_log10[STEPS - 1] - c->mean_log10[from]) / (STEPS - 1 - from));
}

static void print_ratios(const curve *c)
{
    for (int i = 0; i < N_TABLE_KS; i++)
        printf("  %11.3e", mean_ratio(c, TABLE_KS[i]));
}

static void print_k_header(const char *first, int width, const char *last)
{
    printf("%-*s", width, first);
    for (int i = 0; i < N_TABLE_KS; i++)
        printf("  %8s=%-2d", "k", TABLE_KS[i]);
    printf("  %s\n", last);
}

static void print_check(claim c, double check)
{
    const char *verdict = claim_holds(c, check) ? "holds" : "FAILS";
    if (c == RATIO_IS_RHO_K)
        printf("dev %.1e %s\n", check, verdict);
    else
        printf("max %.3f %s\n", check, verdict);
}

/* rho as the tables and charts show it: with one decimal (0.5, 1.0), or more when it has them. */
static const char *rho_text(char text[16], float rho)
{
    bool one_decimal = fabsf(10.0f * rho - roundf(10.0f * rho)) < 1e-4f;
    snprintf(text, 16, one_decimal ? "%.1f" : "%g", (double)rho);
    return text;
}

static void print_rho_table(const measurements *res)
{
    printf("Gradient norm ratio ||dL/dh_{T-k}|| / ||dL/dh_T||, T = %d, hidden %d,\n"
           "geometric mean over %d seeds (the mean of log10 of the ratio).\n"
           "W_h = rho Q (Q orthogonal), W_x uniform in +-%.3f (PyTorch's init), b = 0,\n"
           "x_t: %d values N(0, %g) per step, h_0 = 0, L = sum(w * h_T) with w ~ N(0, 1).\n"
           "check, over every seed and k = 1..%d: the linear cell must follow rho^k to float\n"
           "rounding (dev = max |ratio/rho^k - 1| < %.0e); the tanh cell must stay at or below\n"
           "it (max = max ratio/rho^k <= 1).\n\n",
           STEPS, setup.hidden, res->n_seeds, 1.0 / sqrt(setup.hidden), INPUT_SIZE,
           (double)(INPUT_STD * INPUT_STD),
           STEPS - 1, EXACT_TOLERANCE);
    print_k_header("rho", 12, "check");
    for (int r = 0; r < setup.n_rhos; r++) {
        char rho[16];
        printf("%-4s %-7s", rho_text(rho, setup.rhos[r]), "rho^k");
        for (int i = 0; i < N_TABLE_KS; i++)
            printf("  %11.3e", pow(setup.rhos[r], TABLE_KS[i]));
        printf("\n");
        for (int m = 0; m < N_MODELS; m++) {
            printf("%-4s %-7s", "", MODELS[m].name);
            print_ratios(&res->rho_curves[m][r]);
            printf("  ");
            print_check(MODELS[m].claim, res->rho_curves[m][r].check);
        }
    }
}

static void print_nonnormal_table(const measurements *res)
{
    printf("\nNon-normal W_h, with sigma_max above 1 and spectral radius below: the same ratio,\n"
           "sizes, inputs, w and seeds as above; W_x PyTorch's init, b = 0. sigma_max: W_h's\n"
           "largest singular value; spectral radius: its largest |eigenvalue| (both by power\n"
           "iteration in double, means over the seeds). per step: the mean factor from one step\n"
           "back to the next over k = %d..%d. tanh/linear: the largest ratio of the tanh cell's\n"
           "ratio to the linear cell's, over every seed and k (above 1: the slopes of tanh made\n"
           "the gradient larger).\n\n", LATE_FROM, STEPS - 1);
    print_k_header("W_h", 12, "per step");
    for (int n = 0; n < N_NONNORMAL; n++) {
        const nonnormal_curves *c = &res->nonnormal[n];
        printf("%s: sigma_max %.3f, spectral radius %.3f\n", NONNORMAL[n].label, c->sigma_max,
               c->spectral_radius);
        printf("%-4s %-7s", "", "linear");
        print_ratios(&c->linear);
        printf("  %8.3f\n%-4s %-7s", factor_per_step(&c->linear, LATE_FROM), "", "tanh");
        print_ratios(&c->tanh);
        printf("  %8.3f\n%-4s tanh/linear: at most %.3g (k = %d)\n",
               factor_per_step(&c->tanh, LATE_FROM), "", c->most_above, c->most_above_k);
    }
}

static void print_gated_table(const measurements *res)
{
    printf("\nThe gated cells against the RNN: ||dL/dx_{T-k}|| / ||dL/dx_T||, the gradient that\n"
           "reaches the input k steps back (comparable across cells: the LSTM's state is h and c),\n"
           "with the same sizes, inputs, w and seeds as above.\n"
           "PyTorch's init for every cell (all weights uniform in +-%.3f), except: the first\n"
           "rnn has W_h = Q, the best case of the first table; the LSTM's forget-gate bias is\n"
           "set to 0, 1 or 3 (sigmoid of it: 0.5, 0.73, 0.95, about the forget gate's value at\n"
           "the start). rho Q is not applied to the gated cells: their W_h stacks one H x H block\n"
           "per gate, and how much of the state a step keeps is set by the gates, not by the\n"
           "singular values of one matrix.\n"
           "per step: the mean factor from one step back to the next, k = 1..%d.\n\n",
           1.0 / sqrt(setup.hidden), STEPS - 1);
    print_k_header("cell", 24, "per step");
    for (int g = 0; g < N_COMPARED; g++) {
        printf("%-24s", COMPARED[g].label);
        print_ratios(&res->compared[g]);
        printf("  %8.3f\n", factor_per_step(&res->compared[g], 1));
    }
}

enum { N_RHO_CURVES = N_MODELS * N_RHOS, N_CURVES = N_RHO_CURVES + N_COMPARED };

/* Every curve's points as the charts take them, with their labels: first the first table's
 * curves (model-major), then the second's. */
typedef struct chart_data {
    float k[STEPS];
    float ratio[N_CURVES][STEPS];
    char label[N_CURVES][LABEL_SIZE];
    tg_series series[N_CURVES];
} chart_data;

static void fill_curve(chart_data *d, int i, const curve *c)
{
    for (int k = 0; k < STEPS; k++)
        d->ratio[i][k] = (float)mean_ratio(c, k);
    d->series[i] = (tg_series){ d->label[i], d->k, d->ratio[i], STEPS, TG_SERIES_LINE };
}

/* Fills d from res, the first table's curves (model-major) packed at the front, then the
 * gated; a curve of the first table is labelled "rho = 0.5", after the model's name when
 * with_model. Returns the number of curves. */
static int fill_series(chart_data *d, const measurements *res, bool with_model)
{
    for (int k = 0; k < STEPS; k++)
        d->k[k] = (float)k;
    for (int m = 0; m < N_MODELS; m++)
        for (int r = 0; r < setup.n_rhos; r++) {
            int i = m * setup.n_rhos + r;
            char rho[16];
            snprintf(d->label[i], LABEL_SIZE, "%s%srho = %s", with_model ? MODELS[m].name : "",
                     with_model ? " " : "", rho_text(rho, setup.rhos[r]));
            fill_curve(d, i, &res->rho_curves[m][r]);
        }
    int gated = N_MODELS * setup.n_rhos;
    for (int g = 0; g < N_COMPARED; g++) {
        snprintf(d->label[gated + g], LABEL_SIZE, "%s", COMPARED[g].label);
        fill_curve(d, gated + g, &res->compared[g]);
    }
    return gated + N_COMPARED;
}

/* DIR/gradient_norms.csv with every curve, DIR/gradient_norms_MODEL.svg per model of the
 * first table and DIR/gradient_norms_gated.svg. False on the first failure. */
static bool write_outputs(const measurements *res, const char *dir)
{
    chart_data d;
    int n_curves = fill_series(&d, res, true), gated_from = N_MODELS * setup.n_rhos;
    tg_chart all = { "Gradient norm ratio vs distance", "k (steps back from T)",
                     "||dL/dh_{T-k}|| / ||dL/dh_T||", 1, d.series, n_curves };
    if (!write_chart(&all, dir, "gradient_norms", true))
        return false;
    fill_series(&d, res, false);
    for (int m = 0; m < N_MODELS; m++) {
        char title[128], name[64];
        snprintf(title, sizeof title, "%s cell, W_h = rho Q: ||dL/dh_{T-k}|| / ||dL/dh_T||",
                 MODELS[m].name);
        snprintf(name, sizeof name, "gradient_norms_%s", MODELS[m].name);
        tg_chart chart = { title, "k, steps back from T = 100",
                           "gradient norm ratio (log scale)", 1, &d.series[m * setup.n_rhos],
                           setup.n_rhos };
        if (!write_chart(&chart, dir, name, false))
            return false;
    }
    tg_chart gated = { "Gated cells vs the RNN: ||dL/dx_{T-k}|| / ||dL/dx_T||",
                       "k, steps back from T = 100", "gradient norm ratio (log scale)", 1,
                       &d.series[gated_from], N_COMPARED };
    return write_chart(&gated, dir, "gradient_norms_gated", false);
}

int main(int argc, char **argv)
{
    program = "lab_gradient_norms";
    lab_options defaults = LAB_DEFAULTS;
    defaults.takes = LAB_BIT(LAB_HIDDEN) | LAB_BIT(LAB_RHO) | LAB_BIT(LAB_SEEDS);
    defaults.why_not[LAB_LR] = defaults.why_not[LAB_CLIP] =
        "lab_gradient_norms trains nothing: it measures the gradient at the initial weights";
    lab_options opt = lab_parse_args(argc, argv, USAGE, defaults);
    if (!is_directory(opt.out))
        return 1;
    setup.hidden = lab_given(&opt, LAB_HIDDEN) ? opt.hidden : HIDDEN;
    setup.n_rhos = lab_given(&opt, LAB_RHO) ? 1 : N_RHOS;
    memcpy(setup.rhos, RHOS, sizeof RHOS);
    if (lab_given(&opt, LAB_RHO))
        setup.rhos[0] = opt.rho;
    measurements res = { .n_seeds = lab_given(&opt, LAB_SEEDS) ? opt.seeds
                                    : opt.quick ? QUICK_SEEDS : SEEDS };
    tg_tape *tape = tg_tape_new();
    if (!tape) {
        complain("out of memory");
        return 1;
    }
    bool ok = measure_all(tape, opt.seed, &res);
    tg_tape_free(tape);
    if (!ok)
        return 1;
    print_rho_table(&res);
    print_nonnormal_table(&res);
    print_gated_table(&res);
    return write_outputs(&res, opt.out) ? 0 : 1;
}
