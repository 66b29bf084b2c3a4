/* cell.c: tg_cell, one interface over the recurrent cells. A tg_cell holds a concrete cell
 * (impl), the list of its parameters, and two functions: step, which records one time step
 * on a tape, and free_impl. tg_cell_new fills one in for "rnn", "lstm" and "gru"; a user
 * fills one in by hand for a cell of their own, and tg_cell_step and tg_cell_zero_state
 * work the same for it. */
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "error.h"
#include "tape.h"

/* ---- the shape checks every cell forward makes ---------------------------------------------- */

/* The checks every cell forward makes before recording anything: x_t is input x B, h_prev (and
 * c_prev when it is not skipped) hidden x B, for the B of x_t. Records the first problem,
 * naming the call and the shapes, and returns false. */
bool tg_step_shapes_ok(tg_tape *tape, const char *call, int input_size, int hidden_size,
                       const tg_tensor *x_t, const tg_tensor *h_prev, const tg_tensor *c_prev,
                       bool check_c)
{
    if (!x_t) {
        tg_tape_fail(tape, "%s: x_t is NULL", call);
        return false;
    }
    if (x_t->rows != input_size) {
        tg_tape_fail(tape, "%s: x_t is %dx%d, the cell takes %d inputs", call, x_t->rows, x_t->cols,
                input_size);
        return false;
    }
    const tg_tensor *states[2] = { h_prev, c_prev };
    const char *names[2] = { "h_prev", "c_prev" };
    for (int s = 0; s < (check_c ? 2 : 1); s++) {
        if (!states[s]) {
            tg_tape_fail(tape, "%s: %s is NULL", call, names[s]);
            return false;
        }
        if (states[s]->rows != hidden_size) {
            tg_tape_fail(tape, "%s: %s is %dx%d, the cell has %d hidden units", call, names[s],
                    states[s]->rows, states[s]->cols, hidden_size);
            return false;
        }
        if (states[s]->cols != x_t->cols) {
            tg_tape_fail(tape, "%s: x_t has %d columns (batch) but %s has %d", call, x_t->cols,
                    names[s], states[s]->cols);
            return false;
        }
    }
    return true;
}

/* ---- the built-in cells behind the interface: a step and a free for each ------------------ */

static tg_cell_state rnn_step(tg_tape *tape, void *impl, tg_tensor *x_t, tg_cell_state prev)
{
    return (tg_cell_state){ .h = tg_rnn_cell_forward(tape, impl, x_t, prev.h) };
}

static void rnn_free(void *impl) { tg_rnn_cell_free(impl); }

static tg_cell_state lstm_step(tg_tape *tape, void *impl, tg_tensor *x_t, tg_cell_state prev)
{
    tg_cell_state next;
    tg_lstm_cell_forward(tape, impl, x_t, prev.h, prev.c, &next.h, &next.c);
    return next;
}

static void lstm_free(void *impl) { tg_lstm_cell_free(impl); }

static tg_cell_state gru_step(tg_tape *tape, void *impl, tg_tensor *x_t, tg_cell_state prev)
{
    return (tg_cell_state){ .h = tg_gru_cell_forward(tape, impl, x_t, prev.h) };
}

static void gru_free(void *impl) { tg_gru_cell_free(impl); }

/* Each make_* makes the concrete cell for cell's sizes and sets impl and the parameters;
 * false, with err saying why, on a bad size or when out of memory. */

static bool make_rnn(tg_cell *cell, uint64_t seed, tg_error *err)
{
    int input = cell->input_size, hidden = cell->hidden_size;
    if (!tg_size_ok(hidden, input) || !tg_size_ok(hidden, hidden)) {
        tg_error_set(err, "tg_rnn_cell_new", "bad size: %d inputs, %d hidden units (each must be "
                     ">= 1, the weights under 2^30 values)", input, hidden);
        return false;
    }
    tg_rnn_cell *rnn = tg_rnn_cell_new(input, hidden, seed);
    if (!rnn) {
        tg_error_set(err, "tg_rnn_cell_new", "out of memory");
        return false;
    }
    cell->impl = rnn;
    cell->params[0] = rnn->W_h;
    cell->params[1] = rnn->W_x;
    cell->params[2] = rnn->b;
    cell->n_params = 3;
    return true;
}

static bool make_lstm(tg_cell *cell, uint64_t seed, tg_error *err)
{
    tg_lstm_cell *lstm = tg_lstm_cell_new(cell->input_size, cell->hidden_size, seed, err);
    if (!lstm)
        return false;
    cell->impl = lstm;
    cell->params[0] = lstm->W_x;
    cell->params[1] = lstm->W_h;
    cell->params[2] = lstm->b;
    cell->n_params = 3;
    return true;
}

static bool make_gru(tg_cell *cell, uint64_t seed, tg_error *err)
{
    tg_gru_cell *gru = tg_gru_cell_new(cell->input_size, cell->hidden_size, seed, err);
    if (!gru)
        return false;
    cell->impl = gru;
    cell->params[0] = gru->W_x;
    cell->params[1] = gru->W_h;
    cell->params[2] = gru->b_x;
    cell->params[3] = gru->b_h;
    cell->n_params = 4;
    return true;
}

typedef struct cell_kind {
    const char *name;
    int has_c;
    bool (*make)(tg_cell *cell, uint64_t seed, tg_error *err);
    tg_cell_state (*step)(tg_tape *tape, void *impl, tg_tensor *x_t, tg_cell_state prev);
    void (*free_impl)(void *impl);
    const tg_cell_checkpoint *checkpoint;   /* how tg_cell_save and tg_cell_load store it */
} cell_kind;

static const cell_kind KINDS[] = {
    { "rnn", 0, make_rnn, rnn_step, rnn_free, &tg_rnn_cell_checkpoint },
    { "lstm", 1, make_lstm, lstm_step, lstm_free, &tg_lstm_cell_checkpoint },
    { "gru", 0, make_gru, gru_step, gru_free, &tg_gru_cell_checkpoint },
};

static const cell_kind *find_kind(const char *name)
{
    for (size_t k = 0; k < sizeof KINDS / sizeof KINDS[0]; k++)
        if (strcmp(name, KINDS[k].name) == 0)
            return &KINDS[k];
    return NULL;
}

const tg_cell_checkpoint *tg_cell_kind_checkpoint(const char *name)
{
    const cell_kind *kind = find_kind(name);
    return kind ? kind->checkpoint : NULL;
}

/* ---- the interface -------------------------------------------------------------------------- */

/* A cell made by tg_cell_new, with its parameters' list beside it (the tg_cell first, so that
 * tg_cell_free's free(cell) releases both). */
typedef struct built_in_cell {
    tg_cell cell;
    tg_tensor *params[4];   /* the most a built-in cell has: the GRU's W_x, W_h, b_x, b_h */
} built_in_cell;

tg_cell *tg_cell_new(const char *name, int input_size, int hidden_size, uint64_t seed,
                     tg_error *err)
{
    const char *call = "tg_cell_new";
    if (!name) {
        tg_error_set(err, call, "name is NULL");
        return NULL;
    }
    const cell_kind *kind = find_kind(name);
    if (!kind) {
        tg_error_set(err, call, "no cell named '%.64s' (rnn, lstm or gru)", name);
        return NULL;
    }
    built_in_cell *made = calloc(1, sizeof *made);
    if (!made) {
        tg_error_set(err, call, "out of memory");
        return NULL;
    }
    tg_cell *cell = &made->cell;
    cell->params = made->params;
    cell->name = kind->name;        /* a literal: the caller's string may not outlive the cell */
    cell->input_size = input_size;
    cell->hidden_size = hidden_size;
    cell->has_c = kind->has_c;
    cell->step = kind->step;
    cell->free_impl = kind->free_impl;
    tg_error why;
    if (!kind->make(cell, seed, &why)) {
        free(made);
        tg_error_set(err, call, "%s", why.message);   /* "tg_cell_new: tg_lstm_cell_new: ..." */
        return NULL;
    }
    tg_error_clear(err);
    return cell;
}

/* Calls free_impl(impl) when both are set, then free(cell): a hand-filled cell passed here
 * must have been allocated with malloc (or calloc). */
void tg_cell_free(tg_cell *cell)
{
    if (!cell)
        return;
    if (cell->free_impl && cell->impl)
        cell->free_impl(cell->impl);
    free(cell);
}

tg_cell_state tg_cell_zero_state(tg_tape *tape, const tg_cell *cell, int batch)
{
    const tg_cell_state none = { NULL, NULL };
    if (!cell) {
        tg_tape_fail(tape, "tg_cell_zero_state: cell is NULL");
        return none;
    }
    if (!tg_size_ok(cell->hidden_size, batch)) {
        tg_tape_fail(tape, "tg_cell_zero_state: bad size %dx%d (hidden x batch)", cell->hidden_size, batch);
        return none;
    }
    tg_cell_state zero = {
        .h = tg_input(tape, cell->hidden_size, batch, NULL),                  /* hidden x batch */
        .c = cell->has_c ? tg_input(tape, cell->hidden_size, batch, NULL) : NULL,
    };
    if (!zero.h || (cell->has_c && !zero.c))
        return none;
    return zero;
}

/* Runs cell->step, and makes sure that a step that fails leaves a message on the tape and
 * returns { NULL, NULL }, whoever wrote it. The step is never called without a tape. */
tg_cell_state tg_cell_step(tg_tape *tape, tg_cell *cell, tg_tensor *x_t, tg_cell_state prev)
{
    const tg_cell_state none = { NULL, NULL };
    if (!tape)
        return none;
    if (!cell) {
        tg_tape_fail(tape, "tg_cell_step: cell is NULL");
        return none;
    }
    const char *name = cell->name ? cell->name : "(unnamed)";
    if (!cell->step) {
        tg_tape_fail(tape, "tg_cell_step: cell '%s' has no step function", name);
        return none;
    }
    tg_cell_state next = cell->step(tape, cell->impl, x_t, prev);
    if (!next.h || (cell->has_c && !next.c)) {
        /* kept only when the step itself recorded no error */
        tg_tape_fail(tape, "tg_cell_step: the step of cell '%s' returned no %s", name, next.h ? "c" : "h");
        return none;
    }
    return next;
}
