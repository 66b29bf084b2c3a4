/* model.h: the model the labs train: any recurrent cell (tg_cell) with a linear
 * readout y = W_y h + b_y, and every parameter listed for the optimizer. */
#ifndef TAPEGRAD_EXAMPLES_MODEL_H
#define TAPEGRAD_EXAMPLES_MODEL_H

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "tapegrad.h"

typedef struct model {
    tg_cell *cell;                                  /* input -> hidden */
    tg_tensor *W_y, *b_y;                           /* the readout: outputs x hidden, outputs x 1 */
    tg_tensor **params;                             /* the cell's, then W_y and b_y */
    int n_params;
} model;

static inline void model_free(model *m)
{
    tg_cell_free(m->cell);
    tg_param_free(m->W_y);
    tg_param_free(m->b_y);
    free(m->params);
}

/* The cell (PyTorch's init, from cell_seed) and a zero readout, with the parameter list.
 * False when out of memory (model_free cleans up either way). */
static inline bool model_new(model *m, const char *cell_name, int input, int hidden, int outputs,
                             uint64_t cell_seed)
{
    *m = (model){ .cell = tg_cell_new(cell_name, input, hidden, cell_seed, NULL),
                  .W_y = tg_param_new(outputs, hidden), .b_y = tg_param_new(outputs, 1) };
    if (!m->cell || !m->W_y || !m->b_y)
        return false;
    m->params = malloc((size_t)(m->cell->n_params + 2) * sizeof *m->params);
    if (!m->params)
        return false;
    for (int i = 0; i < m->cell->n_params; i++)
        m->params[m->n_params++] = m->cell->params[i];
    m->params[m->n_params++] = m->W_y;
    m->params[m->n_params++] = m->b_y;
    return true;
}

/* The readout's init, PyTorch's: W_y uniform in +-1/sqrt(hidden); b_y stays 0. */
static inline void model_init_readout(model *m, tg_rng *rng)
{
    float bound = 1.0f / sqrtf((float)m->cell->hidden_size);
    tg_init_uniform(m->W_y, -bound, bound, rng, NULL);
}

/* The MSE of the readout of the last hidden state against y (outputs x batch), recorded on
 * the tape: the cell runs from h_0 = 0 over steps inputs, x holding each step's
 * input x batch values one after another. Inputs and targets are constants: no gradient
 * is wanted for them; unless inputs (an array of steps tensors) is given: then the x_t come
 * in as tg_inputs, so that their grads exist, and go to inputs[t]. The last hidden state
 * (hidden x batch) goes to *h_last when h_last is not NULL. */
static inline tg_tensor *last_step_mse_state(tg_tape *tape, model *m, const float *x,
                                             const float *y, int steps, int batch,
                                             tg_tensor **h_last, tg_tensor **inputs)
{
    int input = m->cell->input_size;
    tg_cell_state state = tg_cell_zero_state(tape, m->cell, batch);      /* h_0 = 0 */
    for (int t = 0; t < steps; t++) {
        const float *x_data = x + (size_t)t * input * batch;
        tg_tensor *x_t = inputs ? (inputs[t] = tg_input(tape, input, batch, x_data))
                                : tg_constant(tape, input, batch, x_data);
        state = tg_cell_step(tape, m->cell, x_t, state);                 /* h: hidden x batch */
    }
    if (h_last)
        *h_last = state.h;
    tg_tensor *prediction = tg_matmul_add(tape, m->W_y, state.h, m->b_y); /* outputs x batch */
    return tg_mse(tape, prediction, tg_constant(tape, m->W_y->rows, batch, y));
}

/* last_step_mse_state without the last hidden state, inputs as constants. */
static inline tg_tensor *last_step_mse(tg_tape *tape, model *m, const float *x, const float *y,
                                       int steps, int batch)
{
    return last_step_mse_state(tape, m, x, y, steps, batch, NULL, NULL);
}

#endif
