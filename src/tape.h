/* tape.h: private to the library. The node that records an op on the tape, the op's
 * description (name, backward), and the calls ops.c and the cells use to record nodes. */
#ifndef TAPEGRAD_TAPE_H
#define TAPEGRAD_TAPE_H

#include <stdbool.h>
#include "tapegrad.h"

typedef struct tg_node tg_node;

/* What an op is: its name for messages and its backward, which adds the node's
 * contribution to the grads of its inputs (out->grad already holds d(loss)/d(out)). */
typedef struct tg_op {
    const char *name;
    void (*backward)(tg_node *node);
} tg_op;

#define TG_MAX_INPUTS 3

/* One recorded op. Nodes form a list from the newest back to the first. An op's backward
 * runs only when its output has a grad, and adds to each input's grad that is not NULL.
 * record() in tape.c sets every field one by one: a new field must be set there too. */
struct tg_node {
    const tg_op *op;                   /* NULL for a leaf (tg_input, tg_constant) */
    tg_tape *tape;                     /* the tape it is on */
    tg_tensor out;                     /* the result; out.node points back here */
    tg_tensor *in[TG_MAX_INPUTS];      /* the inputs, NULL where unused */
    float scalar;                      /* a constant the op needs (tg_scale's s) */
    int first_row;                     /* tg_rows: the first row taken */
    const int *labels;                 /* tg_cross_entropy: the class of each column */
    bool reached;                      /* set by tg_backward: the loss depends on it */
    tg_node *prev;                     /* the node recorded before this one */
};

/* Record an op on the tape: a rows x cols output with uninitialised data that the caller's
 * forward fills, and a zero grad, or a NULL grad when no input has one (no gradient can
 * flow through it). NULL (with the tape's error set) when out of memory. */
tg_tensor *tg_record(tg_tape *tape, const tg_op *op, tg_tensor *a, tg_tensor *b, tg_tensor *c,
                     int rows, int cols);
/* Record a leaf (tg_input, tg_constant): zero grad when with_grad, else a NULL grad. */
tg_tensor *tg_record_leaf(tg_tape *tape, int rows, int cols, bool with_grad);

/* bytes of tape memory, valid until the next reset (for what an op must keep besides
 * tensors); NULL if out of memory. */
void *tg_arena_alloc(tg_tape *tape, size_t bytes);

/* During tg_backward: param's data transposed (cols x rows), made on the first call for that
 * parameter in this backward pass and shared by the later ones, so that a weight used at
 * every step of an unroll is transposed once, not once per step. NULL when out of memory
 * or when the tape already holds TG_MAX_TRANSPOSED of them (the caller then reads param
 * transposed in place). */
#define TG_MAX_TRANSPOSED 16
const float *tg_tape_transposed(tg_tape *tape, const tg_tensor *param);

/* Keep the first error on the tape (printf-style); returns NULL so callers can return it. */
tg_tensor *tg_fail(tg_tape *tape, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* True when rows and cols make a tensor this library can hold. */
bool tg_size_ok(int rows, int cols);

/* Checks shared by every op on its first n_inputs inputs (a, then b, then c): the tape is
 * not NULL, no input is NULL, none was made on another tape. On failure records e.g.
 * "tg_add: input 2 is NULL" (unless an earlier error explains it) and returns false. */
bool tg_inputs_ok(tg_tape *tape, const char *op, int n_inputs, tg_tensor *a, tg_tensor *b,
                  tg_tensor *c);

/* The checks every cell forward makes before recording anything: x_t is input x B, h_prev
 * (and c_prev when check_c) hidden x B, for the B of x_t. Records the first problem, naming
 * the call and the shapes ("tg_gru_cell_forward: x_t is 3x2, the cell takes 4 inputs"), and
 * returns false. (In src/cell.c.) */
bool tg_step_shapes_ok(tg_tape *tape, const char *call, int input_size, int hidden_size,
                       const tg_tensor *x_t, const tg_tensor *h_prev, const tg_tensor *c_prev,
                       bool check_c);

#endif
