/* charlm_model.h: charlm's model (examples/charlm.c): a stack of recurrent layers (tg_rnn,
 * tg_lstm or tg_gru) and a linear readout, and the pass that runs it over a chunk of B streams
 * side by side from the states the last chunk left, then carries its own last states on. */
#ifndef TAPEGRAD_EXAMPLES_CHARLM_MODEL_H
#define TAPEGRAD_EXAMPLES_CHARLM_MODEL_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"

enum {
    NAME_SIZE = 48,                        /* a parameter's or a stream tensor's name */
    MAX_LAYERS = 8,
};
static const char *const CELLS[] = { "rnn", "lstm", "gru" };
enum { RNN, LSTM, GRU, N_CELLS };

/* The module (V inputs, H hidden units, L layers) and its readout, nn.Linear(H, V). */
typedef struct model {
    int cell, vocab, hidden, layers;
    bool has_c;                        /* the LSTM carries c beside h */
    tg_rnn *rnn;                       /* one of the three, as cell says */
    tg_lstm *lstm;
    tg_gru *gru;
    tg_tensor *W_y, *b_y;              /* the readout: V x H, V x 1 */
    tg_tensor **params;                /* the module's, then W_y and b_y */
    int n_params;
    const char **names;                /* n_params: each one's name for the optimizer's state */
    char *name_text;                   /* where the names live */
} model;

static void model_free(model *m)
{
    tg_rnn_free(m->rnn);
    tg_lstm_free(m->lstm);
    tg_gru_free(m->gru);
    tg_param_free(m->W_y);
    tg_param_free(m->b_y);
    free(m->params);
    free(m->names);
    free(m->name_text);
}

/* The name of the module's parameter i of a layer in the checkpoint: torch's for the weights
 * and the GRU's biases; the RNN's and LSTM's one b (bias_ih + bias_hh) is bias_l<l>. */
static void param_name(char out[NAME_SIZE], int cell, int layer, int i)
{
    static const char *const GATED[] = { "weight_ih", "weight_hh", "bias_ih", "bias_hh" };
    static const char *const ONE_BIAS[] = { "weight_ih", "weight_hh", "bias" };
    snprintf(out, NAME_SIZE, "%s_l%d", cell == GRU ? GATED[i] : ONE_BIAS[i], layer);
}

/* The module with PyTorch's init and the readout (W_y uniform in +-1/sqrt(H), b_y = 0), with
 * the parameter list. False when out of memory (model_free cleans up either way). */
static bool model_init(model *m, int cell, int vocab_size, int hidden, int layers, tg_rng *rng)
{
    *m = (model){ .cell = cell, .vocab = vocab_size, .hidden = hidden, .layers = layers,
                  .has_c = cell == LSTM };
    uint64_t seed = tg_rng_next(rng);
    tg_tensor **module = NULL;
    int n = 0;
    if (cell == RNN && (m->rnn = tg_rnn_new(vocab_size, hidden, layers, TG_TANH, 0.0f, seed, NULL)))
        module = m->rnn->params, n = m->rnn->n_params;
    if (cell == LSTM && (m->lstm = tg_lstm_new(vocab_size, hidden, layers, 0.0f, seed, NULL)))
        module = m->lstm->params, n = m->lstm->n_params;
    if (cell == GRU && (m->gru = tg_gru_new(vocab_size, hidden, layers, 0.0f, seed, NULL)))
        module = m->gru->params, n = m->gru->n_params;
    m->W_y = tg_param_new(vocab_size, hidden);
    m->b_y = tg_param_new(vocab_size, 1);
    m->params = malloc((size_t)(n + 2) * sizeof *m->params);
    m->names = malloc((size_t)(n + 2) * sizeof *m->names);
    m->name_text = malloc((size_t)(n + 2) * NAME_SIZE);
    if (!module || !m->W_y || !m->b_y || !m->params || !m->names || !m->name_text)
        return false;
    for (int i = 0; i < n + 2; i++) {
        char *name = m->name_text + (size_t)i * NAME_SIZE;
        if (i < n)
            param_name(name, cell, i / (n / layers), i % (n / layers));
        else
            snprintf(name, NAME_SIZE, "%s", i == n ? "readout.weight" : "readout.bias");
        m->params[i] = i < n ? module[i] : i == n ? m->W_y : m->b_y;
        m->names[i] = name;
    }
    m->n_params = n + 2;
    float bound = 1.0f / sqrtf((float)hidden);
    tg_init_uniform(m->W_y, -bound, bound, rng, NULL);
    return true;
}

/* logits = W_y h + b_y: V x B, from h: H x B. */
static tg_tensor *readout(tg_tape *tape, const model *m, tg_tensor *h)
{
    return tg_matmul_add(tape, m->W_y, h, m->b_y);
}

/* The one-hot columns of classes[0..batch-1] as a V x batch tape constant, built in scratch
 * (V x batch zeros, left as zeros). */
static tg_tensor *one_hot(tg_tape *tape, const model *m, float *scratch, const int *classes,
                          int batch)
{
    for (int b = 0; b < batch; b++)
        scratch[classes[b] * batch + b] = 1.0f;
    tg_tensor *x = tg_constant(tape, m->vocab, batch, scratch);
    for (int b = 0; b < batch; b++)
        scratch[classes[b] * batch + b] = 0.0f;
    return x;
}

/* One forward pass of `batch` streams over up to `steps` bytes, from states carried over from
 * the last pass, and what it needs, allocated once. */
typedef struct pass {
    int steps, batch;
    float *one_hot;                    /* V x B zeros */
    int *classes, *targets;            /* steps x B each: the bytes read and the bytes after */
    tg_tensor **x, **outputs;          /* steps each: V x B and H x B */
    tg_tensor **h0, **c0, **h_n, **c_n;   /* layers each, H x B */
    float *h, *c;                      /* layers x H x B: the carried states, outside any tape */
} pass;

static void pass_free(pass *p)
{
    void *blocks[] = { p->one_hot, p->classes, p->targets, p->x, p->outputs, p->h0, p->c0,
                       p->h_n, p->c_n, p->h, p->c };
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
        free(blocks[i]);
}

/* States start at zero. False when out of memory (pass_free cleans up either way). */
static bool pass_init(pass *p, const model *m, int steps, int batch)
{
    size_t T = (size_t)steps, B = (size_t)batch, L = (size_t)m->layers;
    size_t states = L * (size_t)m->hidden * B;
    *p = (pass){ steps, batch, calloc((size_t)m->vocab * B, sizeof(float)),
                 malloc(T * B * sizeof(int)), malloc(T * B * sizeof(int)),
                 calloc(T, sizeof(tg_tensor *)), calloc(T, sizeof(tg_tensor *)),
                 calloc(L, sizeof(tg_tensor *)), calloc(L, sizeof(tg_tensor *)),
                 calloc(L, sizeof(tg_tensor *)), calloc(L, sizeof(tg_tensor *)),
                 calloc(states, sizeof(float)), calloc(states, sizeof(float)) };
    return p->one_hot && p->classes && p->targets && p->x && p->outputs && p->h0 && p->c0
           && p->h_n && p->c_n && p->h && p->c;
}

static size_t state_bytes(const model *m, const pass *p)
{
    return (size_t)m->layers * (size_t)m->hidden * (size_t)p->batch * sizeof(float);
}

/* Records the module over classes[0 .. steps-1] from the carried states (as new constants: a
 * fresh history, so no gradient flows into the last pass) into outputs, h_n (and c_n). 0, or
 * -1 with the tape's error set. */
static int pass_forward(tg_tape *tape, const model *m, pass *p, int steps)
{
    const int B = p->batch;
    const size_t block = (size_t)m->hidden * (size_t)B;
    for (int s = 0; s < steps; s++)
        p->x[s] = one_hot(tape, m, p->one_hot, p->classes + (size_t)s * B, B);   /* V x B */
    for (int l = 0; l < m->layers; l++) {
        p->h0[l] = tg_constant(tape, m->hidden, B, p->h + l * block);             /* H x B */
        p->c0[l] = m->has_c ? tg_constant(tape, m->hidden, B, p->c + l * block) : NULL;
    }
    if (m->lstm)
        return tg_lstm_forward(tape, m->lstm, p->x, steps, p->h0, p->c0, p->outputs, p->h_n,
                               p->c_n);
    if (m->gru)
        return tg_gru_forward(tape, m->gru, p->x, steps, p->h0, p->outputs, p->h_n);
    return tg_rnn_forward(tape, m->rnn, p->x, steps, p->h0, p->outputs, p->h_n);
}

/* pass_forward, then the mean over the steps of the cross-entropy of the targets: 1 x 1, or
 * NULL with the tape's error set. */
static tg_tensor *pass_loss(tg_tape *tape, const model *m, pass *p, int steps)
{
    if (pass_forward(tape, m, p, steps) != 0)
        return NULL;
    tg_tensor *total = NULL;                                                      /* 1 x 1 */
    for (int s = 0; s < steps; s++) {
        tg_tensor *logits = readout(tape, m, p->outputs[s]);                      /* V x B */
        tg_tensor *loss = tg_cross_entropy(tape, logits, p->targets + (size_t)s * p->batch);
        total = total ? tg_add(tape, total, loss) : loss;
    }
    return tg_scale(tape, total, 1.0f / (float)steps);
}

/* Every layer's last state becomes the start of the next pass. */
static void pass_carry(pass *p, const model *m)
{
    const size_t block = (size_t)m->hidden * (size_t)p->batch;
    for (int l = 0; l < m->layers; l++) {
        memcpy(p->h + l * block, p->h_n[l]->data, block * sizeof(float));
        if (m->has_c)
            memcpy(p->c + l * block, p->c_n[l]->data, block * sizeof(float));
    }
}

#endif
