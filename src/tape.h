/* tape.h: private to the library. What the cells, the gradient check and the tape's drawing
 * need from the tape beyond the public calls (ops use only the public ones: tg_inputs_ok,
 * tg_record, ...). */
#ifndef TAPEGRAD_TAPE_H
#define TAPEGRAD_TAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tapegrad.h"

/* True when rows and cols make a tensor this library can hold: at most 2^30 - 1 values, so
 * that any index into it, and twice that, fits an int. (Inline: every node checks it.) */
static inline bool tg_size_ok(int rows, int cols)
{
    return rows > 0 && cols > 0 && (size_t)rows * (size_t)cols <= (size_t)INT32_MAX / 2;
}

/* The tg_input tensors on the tape, in the order they were recorded, into out[0 .. max-1];
 * returns how many there are (which may be more than max). */
int tg_tape_inputs(const tg_tape *tape, tg_tensor **out, int max);

/* One recorded node, as the tape's drawing (src/tape_dot.c) reads it. */
typedef struct tg_node_view {
    const char *op;             /* the op's name; NULL for a leaf (tg_input, tg_constant) */
    const tg_tensor *out;       /* its result */
    tg_tensor *const *in;       /* its TG_MAX_INPUTS inputs, NULL where unused */
} tg_node_view;

/* The nodes on the tape, oldest first, into out[0 .. max-1]; returns how many there are
 * (which may be more than max). */
int tg_tape_nodes(const tg_tape *tape, tg_node_view *out, int max);

/* True when tg_backward ran on the tape since the last reset (its grads are filled in). */
bool tg_tape_backward_ran(const tg_tape *tape);

/* Until the next reset: the ordinal-th tg_input recorded from now on (0 = the first) gets
 * delta added to its element `element` (for the gradient check). */
void tg_tape_perturb_input(tg_tape *tape, int ordinal, long element, float delta);

/* The checks every cell forward makes before recording anything: x_t is input x B, h_prev
 * (and c_prev when check_c) hidden x B, for the B of x_t. Records the first problem, naming
 * the call and the shapes ("tg_gru_cell_forward: x_t is 3x2, the cell takes 4 inputs"), and
 * returns false. (In src/cell.c.) */
bool tg_step_shapes_ok(tg_tape *tape, const char *call, int input_size, int hidden_size,
                       const tg_tensor *x_t, const tg_tensor *h_prev, const tg_tensor *c_prev,
                       bool check_c);

#endif
