/* truncated.h: truncated BPTT for a model (model.h) that reads its last hidden state: the
 * forward pass runs over the whole sequence, but the tape is cut every `window` steps, so
 * that the backward reaches only the last `window` steps (lab_truncated, docs/bptt.md). */
#ifndef TAPEGRAD_EXAMPLES_TRUNCATED_H
#define TAPEGRAD_EXAMPLES_TRUNCATED_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "tapegrad.h"

/* The state carried across a cut, outside any tape: h (and c for a cell that has one),
 * hidden x batch each. */
typedef struct carried_state {
    float *h, *c;
    int hidden, batch;
} carried_state;

/* Buffers for a state of hidden x batch (h and c). False when out of memory
 * (carried_state_free cleans up either way). */
static inline bool carried_state_new(carried_state *s, int hidden, int batch)
{
    size_t n = (size_t)hidden * (size_t)batch;
    *s = (carried_state){ malloc(n * sizeof(float)), malloc(n * sizeof(float)), hidden, batch };
    return s->h && s->c;
}

static inline void carried_state_free(carried_state *s)
{
    free(s->h);
    free(s->c);
    *s = (carried_state){ 0 };
}

/* True when the tape is cut just before step t (0-based) of a sequence of `steps`: the cuts
 * are counted back from the end, every `window` steps, so that the window that holds the
 * loss is always `window` steps long (the first window takes what is left over). */
static inline bool cut_before(int t, int steps, int window)
{
    return t > 0 && (steps - t) % window == 0;
}

/* Copies the state out of the tape, resets the tape (its memory is kept) and records the
 * copy as constants on it: the forward carries on from the same numbers, but no gradient
 * will flow back past this point. */
static inline tg_cell_state cut_tape(tg_tape *tape, const tg_cell *cell, tg_cell_state state,
                                     carried_state *s)
{
    size_t bytes = (size_t)s->hidden * (size_t)s->batch * sizeof(float);
    memcpy(s->h, state.h->data, bytes);
    if (cell->has_c)
        memcpy(s->c, state.c->data, bytes);
    tg_tape_reset(tape);
    return (tg_cell_state){ tg_constant(tape, s->hidden, s->batch, s->h),
                            cell->has_c ? tg_constant(tape, s->hidden, s->batch, s->c) : NULL };
}

/* The MSE of the readout of the last hidden state against y (outputs x batch), as
 * last_step_mse (model.h) records it, but with the tape cut before every step where
 * cut_before says so: on return the tape holds only the last `window` steps (all of them
 * when window >= steps), and tg_backward on the result gives the truncated gradient. s
 * holds a state of the model's hidden size and this batch. NULL on a tape error (the tape
 * says why; a cut never happens after an error). */
static inline tg_tensor *truncated_last_step_mse(tg_tape *tape, model *m, carried_state *s,
                                                 const float *x, const float *y, int steps,
                                                 int window, int batch)
{
    int input = m->cell->input_size;
    tg_cell_state state = tg_cell_zero_state(tape, m->cell, batch);      /* h_0 = 0 */
    for (int t = 0; t < steps; t++) {
        if (cut_before(t, steps, window)) {
            if (!state.h)
                return NULL;
            state = cut_tape(tape, m->cell, state, s);
        }
        tg_tensor *x_t = tg_constant(tape, input, batch, x + (size_t)t * input * batch);
        state = tg_cell_step(tape, m->cell, x_t, state);                 /* h: hidden x batch */
    }
    tg_tensor *prediction = tg_matmul_add(tape, m->W_y, state.h, m->b_y); /* outputs x batch */
    return tg_mse(tape, prediction, tg_constant(tape, m->W_y->rows, batch, y));
}

#endif
