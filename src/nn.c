/* nn.c: parameters (tensors that live outside any tape), their init, and the vanilla RNN
 * cell h_t = tanh(W_h h_{t-1} + W_x x_t + b) built from the tape's ops. */
#include <math.h>
#include <stdlib.h>

#include "tape.h"

tg_tensor *tg_param_new(int rows, int cols)
{
    if (!tg_size_ok(rows, cols))
        return NULL;
    tg_tensor *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    size_t values = (size_t)rows * (size_t)cols;
    p->rows = rows;
    p->cols = cols;
    p->data = calloc(values, sizeof(float));
    p->grad = calloc(values, sizeof(float));
    if (!p->data || !p->grad) {
        tg_param_free(p);
        return NULL;
    }
    return p;
}

void tg_param_free(tg_tensor *p)
{
    if (!p)
        return;
    free(p->data);
    free(p->grad);
    free(p);
}

void tg_init_uniform(tg_tensor *t, float lo, float hi, tg_rng *rng)
{
    if (!t || !rng)
        return;
    for (long k = 0; k < (long)t->rows * t->cols; k++)
        t->data[k] = lo + (hi - lo) * tg_rng_uniform(rng);
}

void tg_init_normal(tg_tensor *t, float mean, float std, tg_rng *rng)
{
    if (!t || !rng)
        return;
    for (long k = 0; k < (long)t->rows * t->cols; k++)
        t->data[k] = mean + std * tg_rng_normal(rng);
}

/* Orthonormalise the columns of the rows x cols matrix q (rows >= cols), in place, by
 * modified Gram-Schmidt. Gaussian columns are independent with probability 1. */
static void gram_schmidt(double *q, int rows, int cols)
{
    for (int j = 0; j < cols; j++) {
        for (int prev = 0; prev < j; prev++) {
            double dot = 0.0;
            for (int i = 0; i < rows; i++)
                dot += q[i * cols + j] * q[i * cols + prev];
            for (int i = 0; i < rows; i++)
                q[i * cols + j] -= dot * q[i * cols + prev];
        }
        double norm = 0.0;
        for (int i = 0; i < rows; i++)
            norm += q[i * cols + j] * q[i * cols + j];
        norm = sqrt(norm);
        for (int i = 0; i < rows; i++)
            q[i * cols + j] /= norm;
    }
}

int tg_init_orthogonal(tg_tensor *t, float gain, tg_rng *rng)
{
    if (!t || !rng)
        return -1;
    bool tall = t->rows >= t->cols;
    int rows = tall ? t->rows : t->cols, cols = tall ? t->cols : t->rows;
    double *q = malloc((size_t)rows * (size_t)cols * sizeof(double));
    if (!q)
        return -1;
    for (long k = 0; k < (long)rows * cols; k++)
        q[k] = tg_rng_normal(rng);
    gram_schmidt(q, rows, cols);
    for (int i = 0; i < t->rows; i++)
        for (int j = 0; j < t->cols; j++)
            t->data[i * t->cols + j] = gain * (float)(tall ? q[i * cols + j] : q[j * cols + i]);
    free(q);
    return 0;
}

/* The checks every cell forward makes before recording anything: x_t is input x B, h_prev (and
 * c_prev when it is not skipped) hidden x B, for the B of x_t. Records the first problem,
 * naming the call and the shapes, and returns false. */
bool tg_step_shapes_ok(tg_tape *tape, const char *call, int input_size, int hidden_size,
                       const tg_tensor *x_t, const tg_tensor *h_prev, const tg_tensor *c_prev,
                       bool check_c)
{
    if (!x_t) {
        tg_fail(tape, "%s: x_t is NULL", call);
        return false;
    }
    if (x_t->rows != input_size) {
        tg_fail(tape, "%s: x_t is %dx%d, the cell takes %d inputs", call, x_t->rows, x_t->cols,
                input_size);
        return false;
    }
    const tg_tensor *states[2] = { h_prev, c_prev };
    const char *names[2] = { "h_prev", "c_prev" };
    for (int s = 0; s < (check_c ? 2 : 1); s++) {
        if (!states[s]) {
            tg_fail(tape, "%s: %s is NULL", call, names[s]);
            return false;
        }
        if (states[s]->rows != hidden_size) {
            tg_fail(tape, "%s: %s is %dx%d, the cell has %d hidden units", call, names[s],
                    states[s]->rows, states[s]->cols, hidden_size);
            return false;
        }
        if (states[s]->cols != x_t->cols) {
            tg_fail(tape, "%s: x_t has %d columns (batch) but %s has %d", call, x_t->cols,
                    names[s], states[s]->cols);
            return false;
        }
    }
    return true;
}

/* ---- the vanilla RNN cell -------------------------------------------------------------- */

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
    tg_init_uniform(cell->W_h, -bound, bound, &rng);
    tg_init_uniform(cell->W_x, -bound, bound, &rng);
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
    tg_init_normal(cell->W_h, 0.0f, std, &rng);
    tg_init_normal(cell->W_x, 0.0f, std, &rng);
    for (int i = 0; i < cell->hidden_size; i++)
        cell->b->data[i] = 0.0f;
}

tg_tensor *tg_rnn_cell_forward(tg_tape *tape, tg_rnn_cell *cell, tg_tensor *x_t, tg_tensor *h_prev)
{
    if (!cell)
        return tg_fail(tape, "tg_rnn_cell_forward: cell is NULL");
    if (!tg_step_shapes_ok(tape, "tg_rnn_cell_forward", cell->input_size, cell->hidden_size, x_t,
                           h_prev, NULL, false))
        return NULL;
    tg_tensor *from_input = tg_matmul_add(tape, cell->W_x, x_t, cell->b);     /* W_x x_t + b */
    tg_tensor *pre = tg_matmul_add(tape, cell->W_h, h_prev, from_input);     /* hidden x batch */
    return tg_tanh(tape, pre);
}
