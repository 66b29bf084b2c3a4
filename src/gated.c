/* gated.c: the gated recurrent cells, LSTM and GRU, built from the tape's nodes
 * (tg_matmul_add, tg_add, tg_rows, tg_sigmoid, tg_tanh, tg_mul, tg_one_minus), so their
 * backward is the nodes' backward and needs no code here. The parameters follow PyTorch's
 * layout: all the gates' weights sit in one matrix, one block of hidden rows per gate, so one
 * product gives every gate's pre-activation and tg_rows takes each gate's block out of it. */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "checkpoint.h"
#include "error.h"
#include "tape.h"

enum { LSTM_GATES = 4, GRU_GATES = 3 };   /* blocks of hidden rows: i f g o, and r z n */

/* Checks that a cell with `gates` blocks can hold W_x (gates H x I) and W_h (gates H x H).
 * Returns 0, or -1 with err naming call and the sizes. */
static int check_gated_sizes(const char *call, int input_size, int hidden_size, int gates,
                             tg_error *err)
{
    if (input_size < 1 || hidden_size < 1)
        return tg_error_set(err, call, "bad size: %d inputs, %d hidden units (each must be >= 1)",
                            input_size, hidden_size);
    if (hidden_size > INT_MAX / gates || !tg_size_ok(gates * hidden_size, input_size) ||
        !tg_size_ok(gates * hidden_size, hidden_size))
        return tg_error_set(err, call, "bad size: %d inputs, %d hidden units make weights of "
                            "over 2^30 values", input_size, hidden_size);
    return 0;
}

/* PyTorch's init bound for every parameter of a cell with this many hidden units. */
static float init_bound(int hidden_size)
{
    return 1.0f / sqrtf((float)hidden_size);
}

/* ---- LSTM ---------------------------------------------------------------------------------- */

/* The cell in a checkpoint, under torch.nn.LSTMCell's names. Only the sum of PyTorch's two
 * biases enters the cell, so it keeps one, b: saved as bias_ih with a zero bias_hh, and
 * loaded as bias_ih + bias_hh. */
const tg_cell_checkpoint tg_lstm_cell_checkpoint = {
    .type = "tg_lstm_cell",
    .gates = LSTM_GATES,
    .input_size = offsetof(tg_lstm_cell, input_size),
    .hidden_size = offsetof(tg_lstm_cell, hidden_size),
    .params = {
        [TG_WEIGHT_IH] = { "W_x", offsetof(tg_lstm_cell, W_x), TG_STORED_AS_IS },
        [TG_WEIGHT_HH] = { "W_h", offsetof(tg_lstm_cell, W_h), TG_STORED_AS_IS },
        [TG_BIAS_IH] = { "b", offsetof(tg_lstm_cell, b), TG_STORED_AS_IS },
        [TG_BIAS_HH] = { "b", offsetof(tg_lstm_cell, b), TG_STORED_ADDED },
    },
};

void tg_lstm_cell_free(tg_lstm_cell *cell)
{
    if (!cell)
        return;
    tg_param_free(cell->W_x);
    tg_param_free(cell->W_h);
    tg_param_free(cell->b);
    free(cell);
}

/* Every weight uniform in +-k, k = 1/sqrt(hidden), as torch.nn.LSTMCell. PyTorch has two
 * biases, bias_ih and bias_hh, each uniform in +-k, and only their sum enters the cell, so
 * b is drawn as that sum: two uniform draws added, a triangular distribution on +-2k
 * (variance 2k^2/3). A fresh cell thus computes what a fresh torch.nn.LSTMCell would,
 * in distribution; a single draw in +-k would start with half PyTorch's bias variance. */
tg_lstm_cell *tg_lstm_cell_new(int input_size, int hidden_size, uint64_t seed, tg_error *err)
{
    const char *call = "tg_lstm_cell_new";
    if (check_gated_sizes(call, input_size, hidden_size, LSTM_GATES, err) != 0)
        return NULL;
    tg_lstm_cell *cell = calloc(1, sizeof *cell);
    if (!cell) {
        tg_error_set(err, call, "out of memory");
        return NULL;
    }
    const int rows = LSTM_GATES * hidden_size;
    cell->input_size = input_size;
    cell->hidden_size = hidden_size;
    cell->W_x = tg_param_new(rows, input_size);
    cell->W_h = tg_param_new(rows, hidden_size);
    cell->b = tg_param_new(rows, 1);
    if (!cell->W_x || !cell->W_h || !cell->b) {
        tg_lstm_cell_free(cell);
        tg_error_set(err, call, "out of memory");
        return NULL;
    }
    const float k = init_bound(hidden_size);
    tg_rng rng = tg_rng_new(seed);
    tg_init_uniform(cell->W_x, -k, k, &rng, NULL);
    tg_init_uniform(cell->W_h, -k, k, &rng, NULL);
    for (int i = 0; i < rows; i++) {
        float bias_ih = -k + 2.0f * k * tg_rng_uniform(&rng);
        float bias_hh = -k + 2.0f * k * tg_rng_uniform(&rng);
        cell->b->data[i] = bias_ih + bias_hh;
    }
    tg_error_clear(err);
    return cell;
}

void tg_lstm_cell_set_forget_bias(tg_lstm_cell *cell, float value)
{
    if (!cell)
        return;
    float *f_rows = cell->b->data + cell->hidden_size;   /* the f block: rows H .. 2H - 1 */
    for (int i = 0; i < cell->hidden_size; i++)
        f_rows[i] = value;
}

/* One LSTM step (* is elementwise):
 *     a   = W_x x_t + W_h h_{t-1} + b        4H x B: blocks a_i, a_f, a_g, a_o of H rows
 *     i   = sigmoid(a_i)                     input gate: how much of g to write
 *     f   = sigmoid(a_f)                     forget gate: how much of c_{t-1} to keep
 *     g   = tanh(a_g)                        the candidate values
 *     o   = sigmoid(a_o)                     output gate: how much of the cell to show
 *     c_t = f * c_{t-1} + i * g
 *     h_t = o * tanh(c_t)                                                                   */
int tg_lstm_cell_forward(tg_tape *tape, tg_lstm_cell *cell, tg_tensor *x_t,
                         tg_tensor *h_prev, tg_tensor *c_prev, tg_tensor **h_t, tg_tensor **c_t)
{
    static const char call[] = "tg_lstm_cell_forward";
    if (h_t)
        *h_t = NULL;
    if (c_t)
        *c_t = NULL;
    if (!cell) {
        tg_tape_fail(tape, "%s: cell is NULL", call);
        return -1;
    }
    if (!h_t || !c_t) {
        tg_tape_fail(tape, "%s: h_t and c_t must point to where the new state goes", call);
        return -1;
    }
    if (!tg_step_shapes_ok(tape, call, cell->input_size, cell->hidden_size, x_t, h_prev, c_prev, true))
        return -1;
    const int H = cell->hidden_size;
    tg_tensor *a = tg_matmul_add(tape, cell->W_h, h_prev,                         /* 4H x B */
                                 tg_matmul_add(tape, cell->W_x, x_t, cell->b));
    tg_tensor *i = tg_sigmoid(tape, tg_rows(tape, a, 0 * H, H));                  /* H x B */
    tg_tensor *f = tg_sigmoid(tape, tg_rows(tape, a, 1 * H, H));                  /* H x B */
    tg_tensor *g = tg_tanh(tape, tg_rows(tape, a, 2 * H, H));                     /* H x B */
    tg_tensor *o = tg_sigmoid(tape, tg_rows(tape, a, 3 * H, H));                  /* H x B */
    tg_tensor *c = tg_add(tape, tg_mul(tape, f, c_prev), tg_mul(tape, i, g));     /* H x B */
    tg_tensor *h = tg_mul(tape, o, tg_tanh(tape, c));                             /* H x B */
    if (!h)
        return -1;   /* out of memory, or a tensor from another tape: the tape says which */
    *h_t = h;
    *c_t = c;
    return 0;
}

/* ---- GRU ----------------------------------------------------------------------------------- */

/* The cell in a checkpoint, under torch.nn.GRUCell's names. b_h's n block sits inside
 * r * (...), so the two biases stay apart, each saved and loaded as it is. */
const tg_cell_checkpoint tg_gru_cell_checkpoint = {
    .type = "tg_gru_cell",
    .gates = GRU_GATES,
    .input_size = offsetof(tg_gru_cell, input_size),
    .hidden_size = offsetof(tg_gru_cell, hidden_size),
    .params = {
        [TG_WEIGHT_IH] = { "W_x", offsetof(tg_gru_cell, W_x), TG_STORED_AS_IS },
        [TG_WEIGHT_HH] = { "W_h", offsetof(tg_gru_cell, W_h), TG_STORED_AS_IS },
        [TG_BIAS_IH] = { "b_x", offsetof(tg_gru_cell, b_x), TG_STORED_AS_IS },
        [TG_BIAS_HH] = { "b_h", offsetof(tg_gru_cell, b_h), TG_STORED_AS_IS },
    },
};

void tg_gru_cell_free(tg_gru_cell *cell)
{
    if (!cell)
        return;
    tg_param_free(cell->W_x);
    tg_param_free(cell->W_h);
    tg_param_free(cell->b_x);
    tg_param_free(cell->b_h);
    free(cell);
}

/* Every weight and both biases uniform in +-1/sqrt(hidden), as torch.nn.GRUCell. The GRU
 * keeps its two biases apart (b_h's n block sits inside r * (...)), so each is drawn as
 * PyTorch draws it. */
tg_gru_cell *tg_gru_cell_new(int input_size, int hidden_size, uint64_t seed, tg_error *err)
{
    const char *call = "tg_gru_cell_new";
    if (check_gated_sizes(call, input_size, hidden_size, GRU_GATES, err) != 0)
        return NULL;
    tg_gru_cell *cell = calloc(1, sizeof *cell);
    if (!cell) {
        tg_error_set(err, call, "out of memory");
        return NULL;
    }
    const int rows = GRU_GATES * hidden_size;
    cell->input_size = input_size;
    cell->hidden_size = hidden_size;
    cell->W_x = tg_param_new(rows, input_size);
    cell->W_h = tg_param_new(rows, hidden_size);
    cell->b_x = tg_param_new(rows, 1);
    cell->b_h = tg_param_new(rows, 1);
    if (!cell->W_x || !cell->W_h || !cell->b_x || !cell->b_h) {
        tg_gru_cell_free(cell);
        tg_error_set(err, call, "out of memory");
        return NULL;
    }
    const float k = init_bound(hidden_size);
    tg_rng rng = tg_rng_new(seed);
    tg_init_uniform(cell->W_x, -k, k, &rng, NULL);
    tg_init_uniform(cell->W_h, -k, k, &rng, NULL);
    tg_init_uniform(cell->b_x, -k, k, &rng, NULL);
    tg_init_uniform(cell->b_h, -k, k, &rng, NULL);
    tg_error_clear(err);
    return cell;
}

/* One GRU step (* is elementwise):
 *     a   = W_x x_t + b_x                    3H x B: blocks a_r, a_z, a_n of H rows
 *     u   = W_h h_{t-1} + b_h                3H x B: blocks u_r, u_z, u_n
 *     r   = sigmoid(a_r + u_r)               reset gate: how much of the state n sees
 *     z   = sigmoid(a_z + u_z)               update gate: how much of h_{t-1} to keep
 *     n   = tanh(a_n + r * u_n)              the candidate state
 *     h_t = (1 - z) * n + z * h_{t-1}                                                       */
tg_tensor *tg_gru_cell_forward(tg_tape *tape, tg_gru_cell *cell, tg_tensor *x_t, tg_tensor *h_prev)
{
    static const char call[] = "tg_gru_cell_forward";
    if (!cell)
        return tg_tape_fail(tape, "%s: cell is NULL", call);
    if (!tg_step_shapes_ok(tape, call, cell->input_size, cell->hidden_size, x_t, h_prev, NULL, false))
        return NULL;
    const int H = cell->hidden_size;
    tg_tensor *a = tg_matmul_add(tape, cell->W_x, x_t, cell->b_x);                /* 3H x B */
    tg_tensor *u = tg_matmul_add(tape, cell->W_h, h_prev, cell->b_h);             /* 3H x B */
    tg_tensor *r = tg_sigmoid(tape, tg_add(tape, tg_rows(tape, a, 0 * H, H),       /* H x B */
                                           tg_rows(tape, u, 0 * H, H)));
    tg_tensor *z = tg_sigmoid(tape, tg_add(tape, tg_rows(tape, a, 1 * H, H),       /* H x B */
                                           tg_rows(tape, u, 1 * H, H)));
    tg_tensor *n = tg_tanh(tape, tg_add(tape, tg_rows(tape, a, 2 * H, H),          /* H x B */
                                        tg_mul(tape, r, tg_rows(tape, u, 2 * H, H))));
    return tg_add(tape, tg_mul(tape, tg_one_minus(tape, z), n),                    /* H x B */
                  tg_mul(tape, z, h_prev));
}
