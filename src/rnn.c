/* rnn.c: the vanilla RNN cell h_t = tanh(W_h h_{t-1} + W_x x_t + b), built from the tape's
 * ops: two tg_matmul_add and a tg_tanh per step. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "checkpoint.h"
#include "tape.h"

/* The cell in a checkpoint, under torch.nn.RNNCell's names. Only the sum of PyTorch's two
 * biases enters the cell, so it keeps one, b: saved as bias_ih with a zero bias_hh, and
 * loaded as bias_ih + bias_hh. */
const tg_cell_checkpoint tg_rnn_cell_checkpoint = {
    .type = "tg_rnn_cell",
    .gates = 1,
    .input_size = offsetof(tg_rnn_cell, input_size),
    .hidden_size = offsetof(tg_rnn_cell, hidden_size),
    .params = {
        [TG_WEIGHT_IH] = { "W_x", offsetof(tg_rnn_cell, W_x), TG_STORED_AS_IS },
        [TG_WEIGHT_HH] = { "W_h", offsetof(tg_rnn_cell, W_h), TG_STORED_AS_IS },
        [TG_BIAS_IH] = { "b", offsetof(tg_rnn_cell, b), TG_STORED_AS_IS },
        [TG_BIAS_HH] = { "b", offsetof(tg_rnn_cell, b), TG_STORED_ADDED },
    },
};

tg_rnn_cell *tg_rnn_cell_new(int input_size, int hidden_size, uint64_t seed)
{
    if (!tg_size_ok(hidden_size, input_size) || !tg_size_ok(hidden_size, hidden_size))
        return NULL;
    tg_rnn_cell *cell = calloc(1, sizeof *cell);
    if (!cell)
        return NULL;
    cell->input_size = input_size;
    cell->hidden_size = hidden_size;
    cell->W_h = tg_param_new(hidden_size, hidden_size);
    cell->W_x = tg_param_new(hidden_size, input_size);
    cell->b = tg_param_new(hidden_size, 1);
    if (!cell->W_h || !cell->W_x || !cell->b) {
        tg_rnn_cell_free(cell);
        return NULL;
    }
    float bound = 1.0f / sqrtf((float)hidden_size);
    tg_rng rng = tg_rng_new(seed);
    tg_init_uniform(cell->W_h, -bound, bound, &rng, NULL);
    tg_init_uniform(cell->W_x, -bound, bound, &rng, NULL);
    return cell;
}

void tg_rnn_cell_free(tg_rnn_cell *cell)
{
    if (!cell)
        return;
    tg_param_free(cell->W_h);
    tg_param_free(cell->W_x);
    tg_param_free(cell->b);
    free(cell);
}

void tg_rnn_cell_init_normal(tg_rnn_cell *cell, float std, uint64_t seed)
{
    if (!cell)
        return;
    tg_rng rng = tg_rng_new(seed);
    tg_init_normal(cell->W_h, 0.0f, std, &rng, NULL);
    tg_init_normal(cell->W_x, 0.0f, std, &rng, NULL);
    for (int i = 0; i < cell->hidden_size; i++)
        cell->b->data[i] = 0.0f;
}

tg_tensor *tg_rnn_cell_forward(tg_tape *tape, tg_rnn_cell *cell, tg_tensor *x_t, tg_tensor *h_prev)
{
    if (!cell)
        return tg_tape_fail(tape, "tg_rnn_cell_forward: cell is NULL");
    if (!tg_step_shapes_ok(tape, "tg_rnn_cell_forward", cell->input_size, cell->hidden_size, x_t,
                           h_prev, NULL, false))
        return NULL;
    tg_tensor *from_input = tg_matmul_add(tape, cell->W_x, x_t, cell->b);     /* W_x x_t + b */
    tg_tensor *pre = tg_matmul_add(tape, cell->W_h, h_prev, from_input);     /* hidden x batch */
    return tg_tanh(tape, pre);
}
