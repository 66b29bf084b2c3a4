/* seq.c: the whole-sequence modules tg_rnn, tg_lstm and tg_gru, PyTorch's nn.RNN, nn.LSTM and
 * nn.GRU: num_layers cells stacked, run over all the steps of a sequence, with dropout between
 * layers while training. Each layer is one of the library's cells, run by that cell's own
 * forward, so this file holds no math of its own: the loops over layers and steps, the
 * argument checks, the dropout masks, and the modules' construction with PyTorch's init. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "error.h"
#include "tape.h"

/* ---- one step of layer l of a module -------------------------------------------------------- */

typedef tg_cell_state (*layer_step)(tg_tape *tape, const void *module, int l, tg_tensor *x_t,
                                    tg_cell_state prev);

/* The vanilla cell as tg_rnn_cell_forward builds it, h_t = tanh(W_h h_{t-1} + W_x x_t + b),
 * and the same two tg_matmul_add with tg_relu for the tanh: nn.RNN(nonlinearity='relu'). The
 * module checks every shape before its first step, as tg_rnn_cell_forward does for its own. */
static tg_cell_state rnn_tanh_step(tg_tape *tape, const void *module, int l, tg_tensor *x_t,
                                   tg_cell_state prev)
{
    tg_rnn_cell *cell = ((const tg_rnn *)module)->layers[l];
    return (tg_cell_state){ .h = tg_rnn_cell_forward(tape, cell, x_t, prev.h) };
}

static tg_cell_state rnn_relu_step(tg_tape *tape, const void *module, int l, tg_tensor *x_t,
                                   tg_cell_state prev)
{
    tg_rnn_cell *cell = ((const tg_rnn *)module)->layers[l];
    tg_tensor *from_input = tg_matmul_add(tape, cell->W_x, x_t, cell->b);     /* W_x x_t + b */
    tg_tensor *pre = tg_matmul_add(tape, cell->W_h, prev.h, from_input);     /* hidden x batch */
    return (tg_cell_state){ .h = tg_relu(tape, pre) };
}

static tg_cell_state lstm_step(tg_tape *tape, const void *module, int l, tg_tensor *x_t,
                               tg_cell_state prev)
{
    tg_cell_state next;
    tg_lstm_cell_forward(tape, ((const tg_lstm *)module)->layers[l], x_t, prev.h, prev.c, &next.h,
                         &next.c);
    return next;
}

static tg_cell_state gru_step(tg_tape *tape, const void *module, int l, tg_tensor *x_t,
                              tg_cell_state prev)
{
    tg_gru_cell *cell = ((const tg_gru *)module)->layers[l];
    return (tg_cell_state){ .h = tg_gru_cell_forward(tape, cell, x_t, prev.h) };
}

/* ---- running a module over a sequence ------------------------------------------------------- */

/* A module as the loop sees it. */
typedef struct seq_module {
    const char *call;                /* "tg_lstm_forward", for messages */
    const void *module;
    int input_size, hidden_size, num_layers;
    bool has_c;
    float dropout;
    bool training;
    tg_rng *rng;
    layer_step step;
} seq_module;

/* The sequence and where its results go, as the forward calls take them. */
typedef struct seq_io {
    tg_tensor *const *x;
    int steps;
    tg_tensor *const *h0, *const *c0;
    tg_tensor **outputs, **h_n, **c_n;
} seq_io;

/* 0 when the state list s (h0 or c0; NULL means zeros) holds one hidden x B tensor per layer. */
static int check_states(tg_tape *tape, const seq_module *m, tg_tensor *const *s, const char *name,
                        int batch)
{
    for (int l = 0; s && l < m->num_layers; l++) {
        if (!s[l]) {
            tg_tape_fail(tape, "%s: %s[%d] is NULL", m->call, name, l);
            return -1;
        }
        if (s[l]->rows != m->hidden_size || s[l]->cols != batch) {
            tg_tape_fail(tape, "%s: %s[%d] is %dx%d, it must be %dx%d (hidden x batch)", m->call,
                         name, l, s[l]->rows, s[l]->cols, m->hidden_size, batch);
            return -1;
        }
    }
    return 0;
}

/* The checks before anything is recorded: 0, or -1 with the tape's error set. */
static int check_io(tg_tape *tape, const seq_module *m, const seq_io *io)
{
    if (!io->x || !io->outputs) {
        tg_tape_fail(tape, "%s: %s is NULL", m->call, io->x ? "outputs" : "x");
        return -1;
    }
    if (io->steps < 1) {
        tg_tape_fail(tape, "%s: steps is %d; it must be >= 1", m->call, io->steps);
        return -1;
    }
    if (!(m->dropout >= 0.0f && m->dropout <= 1.0f)) {
        tg_tape_fail(tape, "%s: dropout is %g; it must be in [0, 1]", m->call, m->dropout);
        return -1;
    }
    for (int t = 0; t < io->steps; t++) {
        const tg_tensor *x = io->x[t];
        if (!x) {
            tg_tape_fail(tape, "%s: x[%d] is NULL", m->call, t);
            return -1;
        }
        if (x->rows != m->input_size || x->cols != io->x[0]->cols) {
            tg_tape_fail(tape, "%s: x[%d] is %dx%d, it must be %dx%d (input x batch, the batch of "
                         "x[0])", m->call, t, x->rows, x->cols, m->input_size, io->x[0]->cols);
            return -1;
        }
    }
    int batch = io->x[0]->cols;
    if (check_states(tape, m, io->h0, "h0", batch) != 0)
        return -1;
    return m->has_c ? check_states(tape, m, io->c0, "c0", batch) : 0;
}

/* Inverted dropout, as PyTorch's: each value of x zeroed with probability p, the others
 * divided by 1 - p, so the expected value is unchanged; the mask is a fresh constant. */
static tg_tensor *dropout(tg_tape *tape, tg_tensor *x, float p, tg_rng *rng)
{
    tg_tensor *mask = x ? tg_constant(tape, x->rows, x->cols, NULL) : NULL;
    if (!mask)
        return NULL;
    const float kept = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (long k = 0; k < (long)mask->rows * mask->cols; k++)
        mask->data[k] = tg_rng_uniform(rng) < p ? 0.0f : kept;
    return tg_mul(tape, x, mask);
}

/* Layer l's initial state: h0[l] (c0[l]), or zeros without a grad, as PyTorch's default. */
static tg_cell_state initial_state(tg_tape *tape, const seq_module *m, const seq_io *io, int l)
{
    int batch = io->x[0]->cols;
    tg_cell_state s = { io->h0 ? io->h0[l] : tg_constant(tape, m->hidden_size, batch, NULL), NULL };
    if (m->has_c)
        s.c = io->c0 ? io->c0[l] : tg_constant(tape, m->hidden_size, batch, NULL);
    return s;
}

static void clear_results(const seq_module *m, const seq_io *io)
{
    for (int t = 0; io->outputs && t < io->steps; t++)
        io->outputs[t] = NULL;
    for (int l = 0; l < m->num_layers; l++) {
        if (io->h_n)
            io->h_n[l] = NULL;
        if (io->c_n)
            io->c_n[l] = NULL;
    }
}

/* Layer by layer, as PyTorch: layer l runs over every step, reading layer l-1's outputs (with
 * dropout while training) from io->outputs and writing its own there. */
static int run(tg_tape *tape, const seq_module *m, const seq_io *io)
{
    clear_results(m, io);
    if (!tape)
        return -1;
    if (!m->module) {
        tg_tape_fail(tape, "%s: the module is NULL", m->call);
        return -1;
    }
    if (check_io(tape, m, io) != 0)
        return -1;
    const bool drop = m->training && m->dropout > 0.0f;
    for (int l = 0; l < m->num_layers; l++) {
        tg_cell_state state = initial_state(tape, m, io, l);
        for (int t = 0; t < io->steps; t++) {
            tg_tensor *in = l == 0 ? io->x[t] : drop ? dropout(tape, io->outputs[t], m->dropout, m->rng)
                                                     : io->outputs[t];
            state = m->step(tape, m->module, l, in, state);
            if (!state.h || (m->has_c && !state.c)) {
                clear_results(m, io);
                return -1;   /* the op or cell that failed said why on the tape */
            }
            io->outputs[t] = state.h;
        }
        if (io->h_n)
            io->h_n[l] = state.h;
        if (io->c_n)
            io->c_n[l] = state.c;
    }
    return 0;
}

int tg_rnn_forward(tg_tape *tape, tg_rnn *rnn, tg_tensor *const *x, int steps,
                   tg_tensor *const *h0, tg_tensor **outputs, tg_tensor **h_n)
{
    seq_module m = { .call = "tg_rnn_forward", .module = rnn };
    if (rnn)
        m = (seq_module){ "tg_rnn_forward", rnn, rnn->input_size, rnn->hidden_size,
                          rnn->num_layers, false, rnn->dropout, rnn->training, &rnn->dropout_rng,
                          rnn->nonlinearity == TG_RELU ? rnn_relu_step : rnn_tanh_step };
    return run(tape, &m, &(seq_io){ x, steps, h0, NULL, outputs, h_n, NULL });
}

int tg_lstm_forward(tg_tape *tape, tg_lstm *lstm, tg_tensor *const *x, int steps,
                    tg_tensor *const *h0, tg_tensor *const *c0, tg_tensor **outputs,
                    tg_tensor **h_n, tg_tensor **c_n)
{
    seq_module m = { .call = "tg_lstm_forward", .module = lstm };
    if (lstm)
        m = (seq_module){ "tg_lstm_forward", lstm, lstm->input_size, lstm->hidden_size,
                          lstm->num_layers, true, lstm->dropout, lstm->training,
                          &lstm->dropout_rng, lstm_step };
    return run(tape, &m, &(seq_io){ x, steps, h0, c0, outputs, h_n, c_n });
}

int tg_gru_forward(tg_tape *tape, tg_gru *gru, tg_tensor *const *x, int steps,
                   tg_tensor *const *h0, tg_tensor **outputs, tg_tensor **h_n)
{
    seq_module m = { .call = "tg_gru_forward", .module = gru };
    if (gru)
        m = (seq_module){ "tg_gru_forward", gru, gru->input_size, gru->hidden_size,
                          gru->num_layers, false, gru->dropout, gru->training, &gru->dropout_rng,
                          gru_step };
    return run(tape, &m, &(seq_io){ x, steps, h0, NULL, outputs, h_n, NULL });
}

/* ---- construction ----------------------------------------------------------------------------- */

/* The checks every constructor makes: 0, or -1 with err naming call. */
static int check_module_args(const char *call, int input_size, int hidden_size, int num_layers,
                             float dropout, tg_error *err)
{
    if (input_size < 1 || hidden_size < 1)
        return tg_error_set(err, call, "bad size: %d inputs, %d hidden units (each must be >= 1)",
                            input_size, hidden_size);
    if (num_layers < 1)
        return tg_error_set(err, call, "num_layers is %d; it must be >= 1", num_layers);
    if (!(dropout >= 0.0f && dropout <= 1.0f))
        return tg_error_set(err, call, "dropout is %g; it must be in [0, 1]", dropout);
    return 0;
}

/* The input size of layer l: the module's for layer 0, the hidden size above it. */
static int layer_input(int l, int input_size, int hidden_size)
{
    return l == 0 ? input_size : hidden_size;
}

/* PyTorch's init of a vanilla layer: W_x, W_h uniform in +-k (done by tg_rnn_cell_new) and
 * bias_ih + bias_hh, each uniform in +-k, in b. */
static void init_rnn_bias(tg_rnn_cell *cell, tg_rng *rng)
{
    const float k = 1.0f / sqrtf((float)cell->hidden_size);
    for (int i = 0; i < cell->hidden_size; i++) {
        float bias_ih = -k + 2.0f * k * tg_rng_uniform(rng);
        float bias_hh = -k + 2.0f * k * tg_rng_uniform(rng);
        cell->b->data[i] = bias_ih + bias_hh;
    }
}

void tg_rnn_free(tg_rnn *rnn)
{
    if (!rnn)
        return;
    for (int l = 0; rnn->layers && l < rnn->num_layers; l++)
        tg_rnn_cell_free(rnn->layers[l]);
    free(rnn->layers);
    free(rnn->params);
    free(rnn);
}

tg_rnn *tg_rnn_new(int input_size, int hidden_size, int num_layers, tg_nonlinearity nonlinearity,
                   float dropout, uint64_t seed, tg_error *err)
{
    const char *call = "tg_rnn_new";
    if (check_module_args(call, input_size, hidden_size, num_layers, dropout, err) != 0)
        return NULL;
    if (nonlinearity != TG_TANH && nonlinearity != TG_RELU) {
        tg_error_set(err, call, "nonlinearity %d is neither TG_TANH nor TG_RELU", (int)nonlinearity);
        return NULL;
    }
    if (!tg_size_ok(hidden_size, input_size) || !tg_size_ok(hidden_size, hidden_size)) {
        tg_error_set(err, call, "bad size: %d inputs, %d hidden units make weights of over 2^30 "
                     "values", input_size, hidden_size);
        return NULL;
    }
    tg_rnn *rnn = calloc(1, sizeof *rnn);
    if (rnn)
        *rnn = (tg_rnn){ input_size, hidden_size, num_layers, nonlinearity, dropout, 1,
                         tg_rng_new(0), calloc((size_t)num_layers, sizeof(tg_rnn_cell *)),
                         calloc((size_t)num_layers * 3, sizeof(tg_tensor *)), 3 * num_layers };
    if (!rnn || !rnn->layers || !rnn->params) {
        tg_rnn_free(rnn);
        tg_error_set(err, call, "out of memory");
        return NULL;
    }
    tg_rng rng = tg_rng_new(seed);
    for (int l = 0; l < num_layers; l++) {
        tg_rnn_cell *cell = tg_rnn_cell_new(layer_input(l, input_size, hidden_size), hidden_size,
                                            tg_rng_next(&rng));
        if (!cell) {
            tg_rnn_free(rnn);
            tg_error_set(err, call, "out of memory");
            return NULL;
        }
        rnn->layers[l] = cell;
        init_rnn_bias(cell, &rng);
        tg_tensor *p[] = { cell->W_x, cell->W_h, cell->b };
        for (int i = 0; i < 3; i++)
            rnn->params[3 * l + i] = p[i];
    }
    rnn->dropout_rng = tg_rng_new(tg_rng_next(&rng));
    tg_error_clear(err);
    return rnn;
}

void tg_lstm_free(tg_lstm *lstm)
{
    if (!lstm)
        return;
    for (int l = 0; lstm->layers && l < lstm->num_layers; l++)
        tg_lstm_cell_free(lstm->layers[l]);
    free(lstm->layers);
    free(lstm->params);
    free(lstm);
}

tg_lstm *tg_lstm_new(int input_size, int hidden_size, int num_layers, float dropout, uint64_t seed,
                     tg_error *err)
{
    const char *call = "tg_lstm_new";
    if (check_module_args(call, input_size, hidden_size, num_layers, dropout, err) != 0)
        return NULL;
    tg_lstm *lstm = calloc(1, sizeof *lstm);
    if (lstm)
        *lstm = (tg_lstm){ input_size, hidden_size, num_layers, dropout, 1, tg_rng_new(0),
                          calloc((size_t)num_layers, sizeof(tg_lstm_cell *)),
                          calloc((size_t)num_layers * 3, sizeof(tg_tensor *)), 3 * num_layers };
    if (!lstm || !lstm->layers || !lstm->params) {
        tg_lstm_free(lstm);
        tg_error_set(err, call, "out of memory");
        return NULL;
    }
    tg_rng rng = tg_rng_new(seed);
    for (int l = 0; l < num_layers; l++) {
        tg_error why;
        tg_lstm_cell *cell = tg_lstm_cell_new(layer_input(l, input_size, hidden_size), hidden_size,
                                              tg_rng_next(&rng), &why);
        if (!cell) {
            tg_lstm_free(lstm);
            tg_error_set(err, call, "%s", why.message);
            return NULL;
        }
        lstm->layers[l] = cell;
        tg_tensor *p[] = { cell->W_x, cell->W_h, cell->b };
        for (int i = 0; i < 3; i++)
            lstm->params[3 * l + i] = p[i];
    }
    lstm->dropout_rng = tg_rng_new(tg_rng_next(&rng));
    tg_error_clear(err);
    return lstm;
}

void tg_gru_free(tg_gru *gru)
{
    if (!gru)
        return;
    for (int l = 0; gru->layers && l < gru->num_layers; l++)
        tg_gru_cell_free(gru->layers[l]);
    free(gru->layers);
    free(gru->params);
    free(gru);
}

tg_gru *tg_gru_new(int input_size, int hidden_size, int num_layers, float dropout, uint64_t seed,
                   tg_error *err)
{
    const char *call = "tg_gru_new";
    if (check_module_args(call, input_size, hidden_size, num_layers, dropout, err) != 0)
        return NULL;
    tg_gru *gru = calloc(1, sizeof *gru);
    if (gru)
        *gru = (tg_gru){ input_size, hidden_size, num_layers, dropout, 1, tg_rng_new(0),
                          calloc((size_t)num_layers, sizeof(tg_gru_cell *)),
                          calloc((size_t)num_layers * 4, sizeof(tg_tensor *)), 4 * num_layers };
    if (!gru || !gru->layers || !gru->params) {
        tg_gru_free(gru);
        tg_error_set(err, call, "out of memory");
        return NULL;
    }
    tg_rng rng = tg_rng_new(seed);
    for (int l = 0; l < num_layers; l++) {
        tg_error why;
        tg_gru_cell *cell = tg_gru_cell_new(layer_input(l, input_size, hidden_size), hidden_size,
                                            tg_rng_next(&rng), &why);
        if (!cell) {
            tg_gru_free(gru);
            tg_error_set(err, call, "%s", why.message);
            return NULL;
        }
        gru->layers[l] = cell;
        tg_tensor *p[] = { cell->W_x, cell->W_h, cell->b_x, cell->b_h };
        for (int i = 0; i < 4; i++)
            gru->params[4 * l + i] = p[i];
    }
    gru->dropout_rng = tg_rng_new(tg_rng_next(&rng));
    tg_error_clear(err);
    return gru;
}
