/* train_sine.c: trains a vanilla RNN cell and a linear readout to predict the next value of
 * noisy sine waves, with backpropagation through time (BPTT) and plain SGD.
 *
 * Each wave has its own random frequency and phase, so one value is not enough to tell what
 * comes next (a rising and a falling wave pass through the same point): the hidden state has
 * to remember the recent past. The model, for a batch of waves side by side as columns:
 *
 *     h_t = tanh(W_h h_{t-1} + W_x x_t + b)     hidden x batch, h_0 = 0
 *     y_t = W_y h_t + b_y                       1 x batch, the guess for x_{t+1}
 *     loss = mean over t of mse(y_t, x_{t+1})
 *
 * Every batch is freshly drawn, so the model never sees the same wave twice; an "epoch" here
 * is BATCHES_PER_EPOCH batches. */
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "tapegrad.h"

#define TWO_PI 6.283185307179586f
#define FREQ_MIN 0.15f        /* radians per time step: periods of 14 to 42 steps */
#define FREQ_MAX 0.45f
#define NOISE_STD 0.03f       /* standard deviation of the noise on every value */
#define BATCHES_PER_EPOCH 10
#define N_PARAMS 5

static const char USAGE[] =
    "usage: train_sine [--hidden N] [--steps T] [--lr X] [--epochs N] [--batch N] [--seed N]\n"
    "Trains an RNN cell with a linear readout to predict the next value of noisy sine waves\n"
    "(BPTT over T steps, SGD) and prints the loss and gradient norm of each epoch.\n"
    "  --hidden N   hidden units, 1 to 1024 (default 16)\n"
    "  --steps T    time steps per sequence, 1 to 1000 (default 32)\n"
    "  --lr X       learning rate, a finite number above 0 (default 0.1)\n"
    "  --epochs N   epochs of 10 fresh batches each, 1 to 100000 (default 30)\n"
    "  --batch N    sequences per batch, 1 to 1024 (default 32)\n"
    "  --seed N     seed for the weights and the data, 0 or more (default 1)\n"
    "  --help       print this and exit\n";

typedef struct options {
    int hidden, steps, epochs, batch;
    float lr;
    unsigned long long seed;
} options;

typedef struct model {
    tg_rnn_cell *cell;
    tg_tensor *W_y, *b_y;            /* the readout: 1 x hidden and 1 x 1 */
    tg_tensor *params[N_PARAMS];     /* W_h, W_x, b, W_y, b_y: for tg_zero_grad and tg_sgd_step */
} model;

/* ---- the command line -------------------------------------------------------------------- */

static options parse_args(int argc, char **argv)
{
    options opt = { .hidden = 16, .steps = 32, .lr = 0.1f, .epochs = 30, .batch = 32, .seed = 1 };
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        help_if_asked(flag, USAGE, true);
        const char *value = i + 1 < argc ? argv[++i] : NULL;
        if (strcmp(flag, "--hidden") == 0)
            opt.hidden = (int)whole_number(flag, value, 1, 1024);
        else if (strcmp(flag, "--steps") == 0)
            opt.steps = (int)whole_number(flag, value, 1, 1000);
        else if (strcmp(flag, "--lr") == 0)
            opt.lr = real_number(flag, value, false);
        else if (strcmp(flag, "--epochs") == 0)
            opt.epochs = (int)whole_number(flag, value, 1, 100000);
        else if (strcmp(flag, "--batch") == 0)
            opt.batch = (int)whole_number(flag, value, 1, 1024);
        else if (strcmp(flag, "--seed") == 0)
            opt.seed = (unsigned long long)whole_number(flag, value, 0, LLONG_MAX);
        else
            usage_error("unknown flag '%s'", flag);
    }
    return opt;
}

/* ---- the model and the data -------------------------------------------------------------- */

/* Makes the cell and the readout; false when out of memory (model_free cleans up either way). */
static bool model_init(model *m, int hidden, tg_rng *rng)
{
    m->cell = tg_rnn_cell_new(1, hidden, tg_rng_next(rng));
    m->W_y = tg_param_new(1, hidden);
    m->b_y = tg_param_new(1, 1);                              /* b_y = 0 */
    if (!m->cell || !m->W_y || !m->b_y)
        return false;
    float bound = 1.0f / sqrtf((float)hidden);                /* like the cell's own init */
    tg_init_uniform(m->W_y, -bound, bound, rng, NULL);
    tg_tensor *params[N_PARAMS] = { m->cell->W_h, m->cell->W_x, m->cell->b, m->W_y, m->b_y };
    memcpy(m->params, params, sizeof params);
    return true;
}

static void model_free(model *m)
{
    tg_rnn_cell_free(m->cell);
    tg_param_free(m->W_y);
    tg_param_free(m->b_y);
}

/* Fills waves ((steps + 1) x batch, one wave per column) with sin(freq t + phase) + noise,
 * freq and phase drawn anew for every wave. */
static void make_waves(float *waves, int steps, int batch, tg_rng *rng)
{
    for (int b = 0; b < batch; b++) {
        float freq = FREQ_MIN + (FREQ_MAX - FREQ_MIN) * tg_rng_uniform(rng);
        float phase = TWO_PI * tg_rng_uniform(rng);
        for (int t = 0; t <= steps; t++) {
            float noise = NOISE_STD * tg_rng_normal(rng);
            waves[(size_t)t * batch + b] = sinf(freq * (float)t + phase) + noise;
        }
    }
}

/* ---- training ---------------------------------------------------------------------------- */

/* The forward pass over one batch, recorded on the tape: the mean over t of mse(y_t, x_{t+1}).
 * Row t of waves is x_t for every wave of the batch. NULL with the tape's error set on failure. */
static tg_tensor *sequence_loss(tg_tape *tape, const model *m, const float *waves, int steps, int batch)
{
    /* The data are constants (tg_constant): no gradient is wanted for them. */
    tg_tensor *h = tg_constant(tape, m->cell->hidden_size, batch, NULL); /* h_0 = 0: hidden x batch */
    tg_tensor *total = tg_constant(tape, 1, 1, NULL);                 /* 0 */
    for (int t = 0; t < steps; t++) {
        const float *row = waves + (size_t)t * batch;
        tg_tensor *x = tg_constant(tape, 1, batch, row);              /* x_t: 1 x batch */
        tg_tensor *next = tg_constant(tape, 1, batch, row + batch);   /* x_{t+1}: 1 x batch */
        h = tg_rnn_cell_forward(tape, m->cell, x, h);                 /* hidden x batch */
        tg_tensor *y = tg_matmul_add(tape, m->W_y, h, m->b_y);        /* 1 x batch */
        total = tg_add(tape, total, tg_mse(tape, y, next));
    }
    return tg_scale(tape, total, 1.0f / (float)steps);
}

/* The L2 norm of all parameter gradients taken together, from each one's tg_grad_norm. */
static float grad_norm(const model *m)
{
    double sum = 0.0;
    for (int i = 0; i < N_PARAMS; i++) {
        double norm = tg_grad_norm(m->params[i]);
        sum += norm * norm;
    }
    return (float)sqrt(sum);
}

/* One SGD step on one batch. Stores the batch's loss and gradient norm; returns false when
 * the forward or backward pass failed (the tape's error is printed). A gradient that is not
 * finite skips the update but still returns true. */
static bool train_step(tg_tape *tape, model *m, const float *waves, const options *opt,
                       float *loss_out, float *norm_out)
{
    tg_tape_reset(tape);                   /* forget the last step's nodes, keep the memory */
    tg_zero_grad(m->params, N_PARAMS, NULL);     /* parameter grads accumulate until zeroed */
    tg_tensor *loss = sequence_loss(tape, m, waves, opt->steps, opt->batch);
    if (tg_backward(tape, loss) != 0) {
        complain("%s", tg_tape_error(tape));
        if (loss && !isfinite(loss->data[0]))
            complain("the training diverged; try a smaller --lr");
        return false;
    }
    *loss_out = loss->data[0];
    *norm_out = grad_norm(m);
    tg_error err;
    if (tg_sgd_step(m->params, N_PARAMS, opt->lr, &err) != 0)
        complain("step skipped: %s", err.message);
    return true;
}

/* How the loss went from before to after, e.g. "3.2x lower", "1.5x higher" or "about the same"
 * (within 5%). */
static const char *change(char out[32], double before, double after)
{
    if (before >= 1.05 * after)
        snprintf(out, 32, "%.3gx lower", before / after);
    else if (after >= 1.05 * before)
        snprintf(out, 32, "%.3gx higher", after / before);
    else
        snprintf(out, 32, "about the same");
    return out;
}

/* Trains for opt->epochs epochs, printing for each the mean loss and gradient norm (taken
 * before each update) over its batches, and then how the loss changed: from the first epoch
 * to the last, or in a one-epoch run from its first batch to its last. Returns 0, or 1 on
 * failure. */
static int train(tg_tape *tape, model *m, float *waves, const options *opt, tg_rng *rng)
{
    double start = now();
    float first_epoch = 0.0f, epoch_loss = 0.0f, first_batch = 0.0f, batch_loss = 0.0f;
    for (int epoch = 1; epoch <= opt->epochs; epoch++) {
        double loss_sum = 0.0, norm_sum = 0.0;
        for (int i = 0; i < BATCHES_PER_EPOCH; i++) {
            float batch_norm;
            make_waves(waves, opt->steps, opt->batch, rng);
            if (!train_step(tape, m, waves, opt, &batch_loss, &batch_norm))
                return 1;
            if (epoch == 1 && i == 0)
                first_batch = batch_loss;
            loss_sum += batch_loss;
            norm_sum += batch_norm;
        }
        epoch_loss = (float)(loss_sum / BATCHES_PER_EPOCH);
        if (epoch == 1)
            first_epoch = epoch_loss;
        printf("epoch %3d  loss %.5g  grad norm %.4g  %.2f s\n", epoch, epoch_loss,
               norm_sum / BATCHES_PER_EPOCH, now() - start);
    }
    char how[32];
    if (opt->epochs > 1)
        printf("first epoch loss %.5g, final epoch loss %.5g: %s\n", first_epoch, epoch_loss,
               change(how, first_epoch, epoch_loss));
    else
        printf("one epoch: first batch loss %.5g, last batch loss %.5g: %s (single batches of "
               "fresh waves, so a noisy comparison)\n", first_batch, batch_loss,
               change(how, first_batch, batch_loss));
    return 0;
}

int main(int argc, char **argv)
{
    program = "train_sine";
    options opt = parse_args(argc, argv);
    tg_rng rng = tg_rng_new(opt.seed);
    model m = { 0 };
    bool ready = model_init(&m, opt.hidden, &rng);
    float *waves = malloc((size_t)(opt.steps + 1) * (size_t)opt.batch * sizeof *waves);
    tg_tape *tape = tg_tape_new();
    int status = 1;
    if (!ready || !waves || !tape)
        complain("out of memory");
    else
        status = train(tape, &m, waves, &opt, &rng);
    tg_tape_free(tape);
    free(waves);
    model_free(&m);
    return status;
}
