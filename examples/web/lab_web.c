/* lab_web.c: what the browser lab computes, with the library: the gradient-ratio curve (as
 * examples/lab_gradient_norms.c measures it), training on the adding problem, and the seed
 * cell's BPTT (as examples/seed_cell.c --backward prints it). Built to WebAssembly for the page
 * and natively for print_native.c, which the tests compare the page with. */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "../model.h"
#include "lab_web.h"
#include "tapegrad.h"

enum { CURVE_INPUT = 4, TRAIN_INPUT = 2, MAX_SEED = 2147483647 };

static const char *const CELL_NAMES[] = { "rnn", "lstm", "gru" };
static const tg_optimizer_kind OPTIMIZERS[] = { TG_SGD, TG_MOMENTUM, TG_ADAGRAD, TG_ADAM };
static const float SEED_TARGET[LAB_SEED_HIDDEN] = { 0.5f, -0.5f };   /* seed_cell.c's y */

static char message[256];

const char *lab_message(void) { return message; }

/* Sets the message; returns -1 for the caller to return. */
static int fail(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    return -1;
}

/* 0 when lo <= value <= hi, else -1 with a message naming the setting. */
static int check_int(const char *what, int value, int lo, int hi)
{
    if (value < lo || value > hi)
        return fail("%s must be a whole number from %d to %d, not %d", what, lo, hi, value);
    return 0;
}

/* 0 when lo <= value <= hi (a finite number), else -1 with a message. */
static int check_real(const char *what, float value, float lo, float hi)
{
    if (!(value >= lo && value <= hi))
        return fail("%s must be a number from %g to %g, not %g", what, (double)lo, (double)hi,
                    (double)value);
    return 0;
}

/* ---- the gradient-ratio curve ------------------------------------------------------------ */

static double curve_values[LAB_CURVE_MAX_STEPS];

double *lab_curve_values(void) { return curve_values; }

/* The settings of one curve. */
typedef struct curve_settings {
    int cell, hidden, steps, init, of;
    float rho, forget_bias;
} curve_settings;

/* The cell of s, drawn from rng as lab_gradient_norms draws it; NULL when out of memory. */
static tg_cell *curve_cell(const curve_settings *s, tg_rng *rng)
{
    tg_cell *cell = tg_cell_new(CELL_NAMES[s->cell], CURVE_INPUT, s->hidden, tg_rng_next(rng),
                                NULL);
    if (!cell)
        return NULL;
    if (s->cell == LAB_RNN && s->init == LAB_INIT_RHO_Q &&
        tg_init_orthogonal(((tg_rnn_cell *)cell->impl)->W_h, s->rho, rng, NULL) != 0) {
        tg_cell_free(cell);
        return NULL;
    }
    if (s->cell == LAB_LSTM)
        tg_lstm_cell_set_forget_bias(cell->impl, s->forget_bias);
    return cell;
}

/* One run of cell from h_0 = 0 over T inputs drawn from data, L = sum(w * h_T): adds
 * log10 of each ratio, divided by n_seeds, to sum_log10[k]. 0, or -1 with the message set. */
static int add_run(tg_tape *tape, tg_cell *cell, const curve_settings *s, tg_rng *data,
                   int n_seeds, double *sum_log10)
{
    tg_tensor *h[LAB_CURVE_MAX_STEPS + 1], *x[LAB_CURVE_MAX_STEPS + 1];   /* hidden x 1, input x 1 */
    tg_tape_reset(tape);
    tg_cell_state state = tg_cell_zero_state(tape, cell, 1);
    h[0] = state.h;
    for (int t = 1; t <= s->steps; t++) {
        x[t] = tg_input(tape, CURVE_INPUT, 1, NULL);
        if (x[t])
            tg_init_normal(x[t], 0.0f, 1.0f, data, NULL);
        state = tg_cell_step(tape, cell, x[t], state);
        h[t] = state.h;
    }
    tg_tensor *w = tg_constant(tape, s->hidden, 1, NULL);       /* hidden x 1 */
    tg_init_normal(w, 0.0f, 1.0f, data, NULL);
    tg_tensor *loss = tg_sum(tape, tg_mul(tape, w, h[s->steps]));  /* 1 x 1 */
    if (tg_backward(tape, loss) != 0)
        return fail("%s", tg_tape_error(tape));
    tg_tensor **followed = s->of == LAB_OF_H ? h : x;
    double last = tg_grad_norm(followed[s->steps]);
    for (int k = 0; k < s->steps; k++)
        sum_log10[k] += log10(tg_grad_norm(followed[s->steps - k]) / last) / n_seeds;
    return 0;
}

static int check_curve(const curve_settings *s, int seeds, int seed)
{
    if (check_int("cell", s->cell, LAB_RNN, LAB_GRU) ||
        check_int("hidden", s->hidden, 1, LAB_CURVE_MAX_HIDDEN) ||
        check_int("T", s->steps, 2, LAB_CURVE_MAX_STEPS) || check_real("rho", s->rho, 0.0f, 2.0f) ||
        check_int("init", s->init, LAB_INIT_RHO_Q, LAB_INIT_PYTORCH) ||
        check_real("forget bias", s->forget_bias, -10.0f, 10.0f) ||
        check_int("gradient of", s->of, LAB_OF_H, LAB_OF_X) ||
        check_int("runs", seeds, 1, LAB_CURVE_MAX_SEEDS) || check_int("seed", seed, 0, MAX_SEED))
        return -1;
    return 0;
}

int lab_curve(int cell, int hidden, int steps, float rho, int init, float forget_bias, int of,
              int seeds, int seed)
{
    curve_settings s = { cell, hidden, steps, init, of, rho, forget_bias };
    if (check_curve(&s, seeds, seed) != 0)
        return -1;
    tg_tape *tape = tg_tape_new();
    if (!tape)
        return fail("out of memory");
    double sum_log10[LAB_CURVE_MAX_STEPS] = { 0 };
    tg_rng seeds_rng = tg_rng_new((uint64_t)seed);
    int status = 0;
    for (int r = 0; status == 0 && r < seeds; r++) {   /* run r: as lab_gradient_norms's seed r */
        tg_rng model = tg_rng_new(tg_rng_next(&seeds_rng));
        tg_rng data = tg_rng_new(tg_rng_next(&seeds_rng));
        tg_cell *c = curve_cell(&s, &model);
        status = c ? add_run(tape, c, &s, &data, seeds, sum_log10) : fail("out of memory");
        tg_cell_free(c);
    }
    tg_tape_free(tape);
    for (int k = 0; status == 0 && k < steps; k++)
        curve_values[k] = pow(10.0, sum_log10[k]);
    if (status == 0)
        message[0] = '\0';
    return status;
}

/* ---- training on the adding problem ------------------------------------------------------ */

/* One training run: the model, its optimizer, the data and where it stands. */
typedef struct trainer {
    model m;                           /* the cell and its readout: 1 x hidden, 1 x 1 */
    tg_optimizer *opt;
    tg_tape *tape;
    tg_rng data;
    float *x, *y;                      /* a batch: steps * 2 * batch inputs, batch targets */
    int steps, batch, clip;
    float clip_at;
    int done, diverged_at;
} trainer;

static trainer run;
static float losses[LAB_TRAIN_CHUNK], norms[LAB_TRAIN_CHUNK];

float *lab_train_losses(void) { return losses; }
float *lab_train_norms(void) { return norms; }
int lab_train_diverged_at(void) { return run.diverged_at; }

void lab_train_stop(void)
{
    model_free(&run.m);
    tg_optimizer_free(run.opt);
    tg_tape_free(run.tape);
    free(run.x);
    free(run.y);
    run = (trainer){ 0 };
}

static int check_training(int cell, int hidden, int steps, int batch, int optimizer, float lr,
                          int clip, float clip_at, int seed)
{
    if (check_int("cell", cell, LAB_RNN, LAB_GRU) ||
        check_int("hidden", hidden, 1, LAB_TRAIN_MAX_HIDDEN) ||
        check_int("T", steps, 2, LAB_TRAIN_MAX_STEPS) ||
        check_int("batch", batch, 1, LAB_TRAIN_MAX_BATCH) ||
        check_int("optimizer", optimizer, LAB_SGD, LAB_ADAM) ||
        check_real("learning rate", lr, 1e-6f, 10.0f) ||
        check_int("clipping", clip, LAB_CLIP_OFF, LAB_CLIP_VALUE) ||
        check_real("clip threshold", clip_at, 1e-6f, 1e6f) || check_int("seed", seed, 0, MAX_SEED))
        return -1;
    return 0;
}

/* Makes run's model and buffers (the sizes already checked); 0, or -1 with the message set. */
static int make_model(int cell, int hidden, int optimizer, float lr, int seed)
{
    tg_error err;
    tg_rng rng = tg_rng_new((uint64_t)seed);
    bool made = model_new(&run.m, CELL_NAMES[cell], TRAIN_INPUT, hidden, 1, tg_rng_next(&rng));
    run.tape = tg_tape_new();
    run.x = malloc((size_t)run.steps * TRAIN_INPUT * run.batch * sizeof *run.x);
    run.y = malloc((size_t)run.batch * sizeof *run.y);
    if (!made || !run.tape || !run.x || !run.y)
        return fail("out of memory");
    model_init_readout(&run.m, &rng);
    run.data = tg_rng_new(tg_rng_next(&rng));
    run.opt = tg_optimizer_new(OPTIMIZERS[optimizer], run.m.params, run.m.n_params, lr, &err);
    return run.opt ? 0 : fail("%s", err.message);
}

int lab_train_start(int cell, int hidden, int steps, int batch, int optimizer, float lr,
                    int clip, float clip_at, int seed)
{
    lab_train_stop();
    if (check_training(cell, hidden, steps, batch, optimizer, lr, clip, clip_at, seed) != 0)
        return -1;
    run.steps = steps;
    run.batch = batch;
    run.clip = clip;
    run.clip_at = clip_at;
    if (make_model(cell, hidden, optimizer, lr, seed) != 0) {
        lab_train_stop();
        return -1;
    }
    message[0] = '\0';
    return 0;
}

/* Records the model on a fresh batch and runs tg_backward; returns the 1 x 1 loss, or NULL
 * with the message set. */
static tg_tensor *forward_backward(void)
{
    tg_tape *tape = run.tape;
    tg_tape_reset(tape);
    tg_task_adding(&run.data, run.steps, run.batch, run.x, run.y, NULL);
    tg_tensor *loss = last_step_mse(tape, &run.m, run.x, run.y, run.steps, run.batch);
    tg_zero_grad(run.m.params, run.m.n_params, NULL);
    if (tg_backward(tape, loss) != 0) {
        fail("%s", tg_tape_error(tape));
        return NULL;
    }
    return loss;
}

/* Clips the grads as set; returns their norm before clipping (NaN when one is not finite). */
static float clip_grads(void)
{
    float norm = tg_clip_grad_norm(run.m.params, run.m.n_params,
                                   run.clip == LAB_CLIP_NORM ? run.clip_at : INFINITY);
    if (run.clip == LAB_CLIP_VALUE && !isnan(norm))
        tg_clip_grad_value(run.m.params, run.m.n_params, run.clip_at, NULL);
    return norm;
}

/* One step: 0, or -1 (diverged, or the tape failed) with the message set. */
static int train_step(int i)
{
    tg_tensor *loss = forward_backward();
    if (!loss)
        return -1;
    losses[i] = loss->data[0];
    norms[i] = clip_grads();
    if (!isfinite(losses[i]))
        return fail("the loss is %s", isnan(losses[i]) ? "NaN" : "infinite");
    if (isnan(norms[i]))
        return fail("a gradient is NaN or infinite");
    tg_error err;
    if (tg_optimizer_step(run.opt, &err) != 0)
        return fail("%s", err.message);
    return 0;
}

int lab_train_run(int n)
{
    if (!run.m.cell)
        return fail("no training run: start one first");
    if (check_int("steps per call", n, 1, LAB_TRAIN_CHUNK) != 0)
        return -1;
    if (run.diverged_at)
        return fail("the run diverged at step %d: reset it", run.diverged_at);
    message[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (train_step(i) != 0) {
            run.diverged_at = run.done + 1;
            char why[sizeof message];
            snprintf(why, sizeof why, "%s", message);
            fail("diverged at step %d: %s", run.diverged_at, why);
            return i;
        }
        run.done++;
    }
    return n;
}

/* ---- the seed cell ----------------------------------------------------------------------- */

enum { SEED_PER_STEP = 4 * LAB_SEED_HIDDEN, SEED_MATRIX = LAB_SEED_HIDDEN * LAB_SEED_HIDDEN };
static double seed_values[LAB_SEED_MAX_STEPS * SEED_PER_STEP + 2 * SEED_MATRIX + 1];

double *lab_seed_values(void) { return seed_values; }

/* The unrolled cell on tape as seed_cell.c records it: a[t] = W_h h_{t-1} + (W_x x_t + b) and
 * h[t] = tanh(a[t]) for t = 1..steps, then L = mse(h_T, y). Returns L or NULL. */
static tg_tensor *seed_record(tg_tape *tape, const tg_rnn_cell *cell, const float *x, int steps,
                              tg_tensor **a, tg_tensor **h)
{
    h[0] = tg_constant(tape, LAB_SEED_HIDDEN, 1, NULL);
    for (int t = 1; t <= steps; t++) {
        tg_tensor *x_t = tg_constant(tape, LAB_SEED_INPUT, 1, x + (t - 1) * LAB_SEED_INPUT);
        tg_tensor *from_input = tg_matmul_add(tape, cell->W_x, x_t, cell->b);   /* hidden x 1 */
        a[t] = tg_matmul_add(tape, cell->W_h, h[t - 1], from_input);
        h[t] = tg_tanh(tape, a[t]);
    }
    return tg_mse(tape, h[steps], tg_constant(tape, LAB_SEED_HIDDEN, 1, SEED_TARGET));
}

/* Copies a, h and their grads per step, then W_h, its grad and L into seed_values. */
static void seed_copy_out(const tg_rnn_cell *cell, tg_tensor **a, tg_tensor **h, int steps,
                          const tg_tensor *loss)
{
    double *v = seed_values;
    for (int t = 1; t <= steps; t++) {
        const float *parts[] = { a[t]->data, h[t]->data, h[t]->grad, a[t]->grad };
        for (int p = 0; p < 4; p++)
            for (int i = 0; i < LAB_SEED_HIDDEN; i++)
                *v++ = parts[p][i];
    }
    for (int i = 0; i < SEED_MATRIX; i++)
        *v++ = cell->W_h->data[i];
    for (int i = 0; i < SEED_MATRIX; i++)
        *v++ = cell->W_h->grad[i];
    *v = loss->data[0];
}

int lab_seed(int seed, int steps)
{
    if (check_int("seed", seed, 0, MAX_SEED) || check_int("T", steps, 1, LAB_SEED_MAX_STEPS))
        return -1;
    tg_rng rng = tg_rng_new((uint64_t)seed);
    tg_rnn_cell *cell = tg_rnn_cell_new(LAB_SEED_INPUT, LAB_SEED_HIDDEN, (uint64_t)seed);
    tg_tape *tape = tg_tape_new();
    int status = cell && tape ? 0 : fail("out of memory");
    if (status == 0) {
        tg_rnn_cell_init_normal(cell, 1.0f, tg_rng_next(&rng));   /* as seed_cell.c does */
        float x[LAB_SEED_MAX_STEPS * LAB_SEED_INPUT];             /* x_t ~ N(0, 1) */
        for (int i = 0; i < steps * LAB_SEED_INPUT; i++)
            x[i] = tg_rng_normal(&rng);
        tg_tensor *a[LAB_SEED_MAX_STEPS + 1], *h[LAB_SEED_MAX_STEPS + 1];
        tg_tensor *loss = seed_record(tape, cell, x, steps, a, h);
        if (tg_backward(tape, loss) != 0)
            status = fail("%s", tg_tape_error(tape));
        else
            seed_copy_out(cell, a, h, steps, loss);
    }
    tg_tape_free(tape);
    tg_rnn_cell_free(cell);
    if (status == 0)
        message[0] = '\0';
    return status;
}
