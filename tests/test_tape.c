/* test_tape.c: the tape (src/tape.c): memory reuse after reset, no allocation once warm, a
 * 10,000-node chain, gradient sums over shared parameters, what a second backward does,
 * constants that every op skips, views that read the caller's data in place; its refusals,
 * each with its message; and the calls an op of a user's is written with (tg_inputs_ok,
 * tg_record, tg_op_state, tg_backward_memo). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"
#include "gradcheck.h"
#include "tape_errors.h"
#include "user_cube.h"

enum { HIDDEN = 8, INPUT = 3, BATCH = 4, STEPS = 12 };

typedef struct model {
    tg_rnn_cell *cell;
    tg_tensor *params[3];
    float x[STEPS][INPUT * BATCH], y[STEPS][HIDDEN * BATCH];
} model;

static void model_init(model *m)
{
    m->cell = tg_rnn_cell_new(INPUT, HIDDEN, 5);
    m->params[0] = m->cell->W_h;
    m->params[1] = m->cell->W_x;
    m->params[2] = m->cell->b;
    tg_rng rng = tg_rng_new(6);
    for (int t = 0; t < STEPS; t++) {
        for (int k = 0; k < INPUT * BATCH; k++)
            m->x[t][k] = tg_rng_normal(&rng);
        for (int k = 0; k < HIDDEN * BATCH; k++)
            m->y[t][k] = tg_rng_uniform(&rng) - 0.5f;
    }
}

/* One training step: reset, forward over STEPS, loss = sum of mse, backward, SGD.
 * Returns 0 or -1; it asserts nothing itself, since Check's asserts allocate. */
static int train_step(tg_tape *tape, model *m)
{
    tg_tape_reset(tape);
    tg_zero_grad(m->params, 3, NULL);
    tg_tensor *h = tg_input(tape, HIDDEN, BATCH, NULL);
    tg_tensor *loss = NULL;
    for (int t = 0; t < STEPS; t++) {
        h = tg_rnn_cell_forward(tape, m->cell, tg_input(tape, INPUT, BATCH, m->x[t]), h);
        tg_tensor *step_loss = tg_mse(tape, h, tg_input(tape, HIDDEN, BATCH, m->y[t]));
        loss = loss ? tg_add(tape, loss, step_loss) : step_loss;
    }
    if (tg_backward(tape, loss) != 0)
        return -1;
    return tg_sgd_step(m->params, 3, 0.05f, NULL);
}

START_TEST(test_reset_reuses_the_same_memory)
{
    model m;
    model_init(&m);
    tg_tape *tape = tg_tape_new();
    ck_assert_int_eq(train_step(tape, &m), 0);
    size_t reserved = tg_tape_reserved_bytes(tape);
    tg_tape_reset(tape);
    tg_tensor *first = tg_input(tape, 2, 2, NULL);
    tg_tape_reset(tape);
    ck_assert_ptr_eq(tg_input(tape, 2, 2, NULL), first);
    int failures = 0;
    for (int i = 0; i < 5; i++)
        failures += train_step(tape, &m) != 0;
    ck_assert_int_eq(failures, 0);
    ck_assert_uint_eq(tg_tape_reserved_bytes(tape), reserved);
    tg_tape_free(tape);
    tg_rnn_cell_free(m.cell);
}
END_TEST

START_TEST(test_training_step_makes_no_heap_allocation_once_warm)
{
    model m;
    model_init(&m);
    tg_tape *tape = tg_tape_new();
    int failures = 0;
    for (int i = 0; i < 3; i++)
        failures += train_step(tape, &m) != 0;
    long before = alloc_count();
    for (int i = 0; i < 10; i++)
        failures += train_step(tape, &m) != 0;
    long allocations = alloc_count() - before;
    ck_assert_int_eq(failures, 0);
    ck_assert_int_eq(allocations, 0);
    tg_tape_free(tape);
    tg_rnn_cell_free(m.cell);
}
END_TEST

START_TEST(test_ten_thousand_node_chain_backpropagates)
{
    /* y = s^N x through N scale nodes, so dy/dx = s^N. */
    enum { N = 10000 };
    const float s = 0.9999f;
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_input(tape, 1, 1, (float[]){ 2.0f });
    tg_tensor *y = x;
    for (int i = 0; i < N; i++)
        y = tg_scale(tape, y, s);
    ck_assert_int_eq(tg_backward(tape, y), 0);
    double want = pow(s, N);
    ck_assert_double_eq_tol(x->grad[0], want, 1e-3 * want);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_ten_thousand_step_rnn_unroll_backpropagates)
{
    tg_rnn_cell *cell = tg_rnn_cell_new(1, 4, 3);
    tg_tape *tape = tg_tape_new();
    tg_tensor *h = tg_input(tape, 4, 1, NULL);
    tg_tensor *first_h = NULL;
    for (int t = 0; t < 10000; t++) {
        h = tg_rnn_cell_forward(tape, cell, tg_input(tape, 1, 1, (float[]){ sinf(0.1f * t) }), h);
        first_h = first_h ? first_h : h;
    }
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, h)), 0);
    ck_assert_msg(isfinite(first_h->grad[0]) && isfinite(cell->W_h->grad[0]), "gradients not finite");
    tg_tape_free(tape);
    tg_rnn_cell_free(cell);
}
END_TEST

START_TEST(test_shared_parameter_sums_its_gradient_over_steps)
{
    /* dL/dW_h = sum over t of d(pre_t) h_{t-1}^T, read off the recurrent matmul at each step. */
    model m;
    model_init(&m);
    tg_tape *tape = tg_tape_new();
    tg_tensor *h = tg_input(tape, HIDDEN, BATCH, NULL);
    tg_tensor *h_prev[STEPS], *recurrent[STEPS], *loss = NULL;
    for (int t = 0; t < STEPS; t++) {
        h_prev[t] = h;
        recurrent[t] = tg_matmul(tape, m.cell->W_h, h);
        tg_tensor *from_input = tg_matmul(tape, m.cell->W_x, tg_input(tape, INPUT, BATCH, m.x[t]));
        h = tg_tanh(tape, tg_add(tape, tg_add(tape, recurrent[t], from_input), m.cell->b));
        tg_tensor *step_loss = tg_mse(tape, h, tg_input(tape, HIDDEN, BATCH, m.y[t]));
        loss = loss ? tg_add(tape, loss, step_loss) : step_loss;
    }
    ck_assert_int_eq(tg_backward(tape, loss), 0);
    float want[HIDDEN * HIDDEN] = { 0 };
    for (int t = 0; t < STEPS; t++)
        for (int i = 0; i < HIDDEN; i++)
            for (int j = 0; j < HIDDEN; j++)
                for (int b = 0; b < BATCH; b++)
                    want[i * HIDDEN + j] += recurrent[t]->grad[i * BATCH + b] * h_prev[t]->data[j * BATCH + b];
    ck_assert_double_lt(relative_error(m.cell->W_h->grad, want, HIDDEN * HIDDEN), 1e-5);
    tg_tape_free(tape);
    tg_rnn_cell_free(m.cell);
}
END_TEST

START_TEST(test_second_backward_repeats_tape_grads_and_doubles_param_grads)
{
    tg_tensor *w = tg_param_new(2, 2);
    fill_uniform(w, -1, 1, 7);
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_input(tape, 2, 1, (float[]){ 0.5f, -1.0f });
    tg_tensor *h = tg_tanh(tape, tg_matmul(tape, w, x));
    tg_tensor *loss = tg_sum(tape, tg_mul(tape, h, h));
    ck_assert_int_eq(tg_backward(tape, loss), 0);
    float first_w[4], first_x[2];
    for (int k = 0; k < 4; k++)
        first_w[k] = w->grad[k];
    for (int k = 0; k < 2; k++)
        first_x[k] = x->grad[k];
    ck_assert_int_eq(tg_backward(tape, loss), 0);
    for (int k = 0; k < 2; k++)
        ck_assert_float_eq(x->grad[k], first_x[k]);
    for (int k = 0; k < 4; k++)
        ck_assert_float_eq_tol(w->grad[k], 2.0f * first_w[k], 1e-6f);
    tg_tape_free(tape);
    tg_param_free(w);
}
END_TEST

START_TEST(test_tensors_the_loss_does_not_use_get_zero_grad)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_input(tape, 1, 2, (float[]){ 1, 2 });
    tg_tensor *unused = tg_tanh(tape, x);
    tg_tensor *loss = tg_sum(tape, x);
    tg_tensor *after = tg_scale(tape, loss, 3.0f);
    ck_assert_int_eq(tg_backward(tape, loss), 0);
    ck_assert_float_eq(x->grad[0], 1.0f);
    ck_assert_float_eq(unused->grad[0], 0.0f);
    ck_assert_float_eq(after->grad[0], 0.0f);
    tg_tape_free(tape);
}
END_TEST

/* One forward and backward of the model with its data (x_t, targets, h_0) made by `leaf`:
 * tg_input or tg_constant. Leaves the parameter grads in m and returns x_1 (the first input). */
static tg_tensor *rnn_gradients(tg_tape *tape, model *m,
                                tg_tensor *(*leaf)(tg_tape *, int, int, const float *))
{
    tg_tape_reset(tape);
    tg_zero_grad(m->params, 3, NULL);
    tg_tensor *h = leaf(tape, HIDDEN, BATCH, NULL), *first_x = NULL, *loss = NULL;
    for (int t = 0; t < STEPS; t++) {
        tg_tensor *x = leaf(tape, INPUT, BATCH, m->x[t]);
        first_x = first_x ? first_x : x;
        h = tg_rnn_cell_forward(tape, m->cell, x, h);
        tg_tensor *step_loss = tg_mse(tape, h, leaf(tape, HIDDEN, BATCH, m->y[t]));
        loss = loss ? tg_add(tape, loss, step_loss) : step_loss;
    }
    ck_assert_int_eq(tg_backward(tape, loss), 0);
    return first_x;
}

/* The model's parameter grads, into want; and a check that they equal want, value by value. */
static void save_grads(const model *m, float want[3][HIDDEN * HIDDEN])
{
    for (int i = 0; i < 3; i++)
        for (long k = 0; k < (long)m->params[i]->rows * m->params[i]->cols; k++)
            want[i][k] = m->params[i]->grad[k];
}

static void assert_grads_equal(const model *m, float want[3][HIDDEN * HIDDEN])
{
    for (int i = 0; i < 3; i++)
        for (long k = 0; k < (long)m->params[i]->rows * m->params[i]->cols; k++)
            ck_assert_float_eq(m->params[i]->grad[k], want[i][k]);
}

START_TEST(test_constant_data_gives_the_same_parameter_grads_and_has_no_grad)
{
    model m;
    model_init(&m);
    tg_tape *tape = tg_tape_new();
    float want[3][HIDDEN * HIDDEN];
    tg_tensor *x = rnn_gradients(tape, &m, tg_input);
    ck_assert_ptr_nonnull(x->grad);
    save_grads(&m, want);
    x = rnn_gradients(tape, &m, tg_constant);
    ck_assert_ptr_null(x->grad);
    assert_grads_equal(&m, want);
    for (int i = 0; i < 3; i++)
        ck_assert_float_ne(tg_grad_norm(m.params[i]), 0.0f);
    tg_tape_free(tape);
    tg_rnn_cell_free(m.cell);
}
END_TEST

/* tg_constant_view for rnn_gradients: h_0's NULL (zeros) becomes an array of zeros. */
static tg_tensor *view_leaf(tg_tape *tape, int rows, int cols, const float *data)
{
    static const float zeros[HIDDEN * BATCH];
    return tg_constant_view(tape, rows, cols, data ? data : zeros);
}

START_TEST(test_constant_view_reads_the_data_in_place_and_gives_the_same_grads)
{
    model m;
    model_init(&m);
    tg_tape *tape = tg_tape_new();
    float want[3][HIDDEN * HIDDEN];
    rnn_gradients(tape, &m, tg_constant);
    size_t copied_bytes = tg_tape_reserved_bytes(tape);
    save_grads(&m, want);
    tg_tensor *x = rnn_gradients(tape, &m, view_leaf);
    ck_assert_ptr_eq(x->data, m.x[0]);
    ck_assert_ptr_null(x->grad);
    assert_grads_equal(&m, want);
    /* no copy: a 1000 x 1000 view (4 MB) takes a node's worth of tape, not its data */
    float *big = calloc(1000 * 1000, sizeof *big);
    tg_tape_reset(tape);
    ck_assert_ptr_eq(tg_constant_view(tape, 1000, 1000, big)->data, big);
    ck_assert_uint_eq(tg_tape_reserved_bytes(tape), copied_bytes);
    free(big);
    tg_tape_free(tape);
    tg_rnn_cell_free(m.cell);
}
END_TEST

START_TEST(test_constant_view_refuses_null_data_and_a_bad_size)
{
    static const float data[6] = { 1, 2, 3, 4, 5, 6 };
    ck_assert_ptr_null(tg_constant_view(NULL, 2, 3, data));
    tg_tape *tape = tg_tape_new();
    ck_assert_ptr_null(tg_constant_view(tape, 2, 3, NULL));
    assert_error(tape, "tg_constant_view: data is NULL");
    assert_usable_after_reset(tape);
    ck_assert_ptr_null(tg_constant_view(tape, 0, 3, data));
    assert_error(tape, "tg_constant_view: bad size 0x3");
    tg_tape_free(tape);
}
END_TEST

/* y = op(w, c) with w a parameter and c a leaf, each on the side the op's name says. w is
 * 3 x 2 and c the same, but c is 3 x 1 for the column add, w 2 x 3 times c 3 x 2 for
 * MATMUL_LEFT, and c 2 x 3 times w 3 x 2 for MATMUL_RIGHT. */
enum { MIX_ADD, MIX_ADD_COLUMN, MIX_SUB, MIX_MUL, MIX_MATMUL_LEFT, MIX_MATMUL_RIGHT, MIX_MSE, MIX_OPS };

static tg_tensor *mixed_op(tg_tape *tape, int op, tg_tensor *w, tg_tensor *c)
{
    switch (op) {
    case MIX_ADD: return tg_add(tape, w, c);
    case MIX_ADD_COLUMN: return tg_add(tape, w, c);
    case MIX_SUB: return tg_sub(tape, c, w);
    case MIX_MUL: return tg_mul(tape, c, w);
    case MIX_MATMUL_LEFT: return tg_matmul(tape, w, c);
    case MIX_MATMUL_RIGHT: return tg_matmul(tape, c, w);
    default: return tg_mse(tape, c, w);
    }
}

/* Loss = sum of squares of mixed_op(w, c), c from leaf; returns c, with w's grad filled. */
static tg_tensor *mixed_grad(tg_tape *tape, int op, tg_tensor *w,
                             tg_tensor *(*leaf)(tg_tape *, int, int, const float *))
{
    static const float values[6] = { 0.5f, -1.0f, 2.0f, 0.25f, -0.75f, 1.5f };
    int rows = op == MIX_MATMUL_RIGHT ? 2 : 3, cols = op == MIX_ADD_COLUMN ? 1 : op == MIX_MATMUL_RIGHT ? 3 : 2;
    tg_tape_reset(tape);
    tg_zero_grad(&w, 1, NULL);
    tg_tensor *c = leaf(tape, rows, cols, values);
    tg_tensor *y = mixed_op(tape, op, w, c);
    tg_tensor *loss = tg_sum(tape, tg_mul(tape, y, y));
    ck_assert_msg(tg_backward(tape, loss) == 0, "op %d: %s", op, tg_tape_error(tape));
    return c;
}

START_TEST(test_every_two_input_op_skips_a_constant_and_keeps_the_other_grad)
{
    int op = _i;
    int w_rows = op == MIX_MATMUL_LEFT ? 2 : 3, w_cols = op == MIX_MATMUL_RIGHT ? 2 : op == MIX_MATMUL_LEFT ? 3 : 2;
    tg_tensor *w = tg_param_new(w_rows, w_cols);
    fill_uniform(w, -1, 1, 11);
    tg_tape *tape = tg_tape_new();
    float want[6];
    mixed_grad(tape, op, w, tg_input);
    for (int k = 0; k < w_rows * w_cols; k++)
        want[k] = w->grad[k];
    tg_tensor *c = mixed_grad(tape, op, w, tg_constant);
    ck_assert_ptr_null(c->grad);
    for (int k = 0; k < w_rows * w_cols; k++)
        ck_assert_float_eq(w->grad[k], want[k]);
    ck_assert_float_ne(tg_grad_norm(w), 0.0f);
    tg_tape_free(tape);
    tg_param_free(w);
}
END_TEST

/* y = a b + c with a (2 x 3), b (3 x 2) and c (a 2 x 1 column): the input at constant_at is
 * a leaf, the others parameters. The parameters get the same grads whether that leaf is a
 * tg_input or a tg_constant, and the constant gets none. */
static tg_tensor *matmul_add_grads(tg_tape *tape, tg_tensor *p[3], int constant_at,
                                   tg_tensor *(*leaf)(tg_tape *, int, int, const float *))
{
    static const float values[6] = { 0.5f, -1.0f, 2.0f, 0.25f, -0.75f, 1.5f };
    tg_tape_reset(tape);
    tg_tensor *in[3] = { p[0], p[1], p[2] };
    in[constant_at] = leaf(tape, p[constant_at]->rows, p[constant_at]->cols, values);
    tg_zero_grad(p, 3, NULL);
    tg_tensor *y = tg_matmul_add(tape, in[0], in[1], in[2]);
    tg_tensor *loss = tg_sum(tape, tg_mul(tape, y, y));
    ck_assert_msg(tg_backward(tape, loss) == 0, "%s", tg_tape_error(tape));
    return in[constant_at];
}

START_TEST(test_matmul_add_skips_a_constant_input_and_keeps_the_other_grads)
{
    int constant_at = _i;
    static const int shapes[3][2] = { { 2, 3 }, { 3, 2 }, { 2, 1 } };
    tg_tensor *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = tg_param_new(shapes[i][0], shapes[i][1]);
        fill_uniform(p[i], -1, 1, 20 + (uint64_t)i);
    }
    tg_tape *tape = tg_tape_new();
    float want[3][6];
    matmul_add_grads(tape, p, constant_at, tg_input);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < shapes[i][0] * shapes[i][1]; k++)
            want[i][k] = p[i]->grad[k];
    tg_tensor *c = matmul_add_grads(tape, p, constant_at, tg_constant);
    ck_assert_ptr_null(c->grad);
    for (int i = 0; i < 3; i++) {
        if (i == constant_at)
            continue;
        for (int k = 0; k < shapes[i][0] * shapes[i][1]; k++)
            ck_assert_float_eq(p[i]->grad[k], want[i][k]);
        ck_assert_float_ne(tg_grad_norm(p[i]), 0.0f);
    }
    tg_tape_free(tape);
    for (int i = 0; i < 3; i++)
        tg_param_free(p[i]);
}
END_TEST

START_TEST(test_a_loss_made_only_from_constants_is_refused)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *c = tg_constant(tape, 2, 1, (float[]){ 1, 2 });
    tg_tensor *loss = tg_sum(tape, tg_tanh(tape, tg_scale(tape, c, 2.0f)));
    ck_assert_ptr_null(loss->grad);
    ck_assert_float_eq_tol(loss->data[0], tanhf(2.0f) + tanhf(4.0f), 1e-6f);
    ck_assert_int_eq(tg_backward(tape, loss), -1);
    ck_assert_str_eq(tg_tape_error(tape), "tg_backward: the loss depends on no parameter and no tg_input tensor");
    ck_assert_ptr_null(tg_constant(tape, 0, 3, NULL));
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_constant(tape, 0, 3, NULL));
    ck_assert_str_eq(tg_tape_error(tape), "tg_constant: bad size 0x3");
    tg_tape_free(tape);
}
END_TEST

/* x's grad for loss = sum(W_n ... W_1 x), by hand: W_1^T ... W_n^T ones. */
static void chain_input_grad(tg_tensor **w, int n, float *out)
{
    double g[2] = { 1.0, 1.0 };
    for (int k = n - 1; k >= 0; k--) {
        double next[2] = { 0.0, 0.0 };
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
                next[j] += w[k]->data[i * 2 + j] * g[i];
        g[0] = next[0], g[1] = next[1];
    }
    out[0] = (float)g[0], out[1] = (float)g[1];
}

START_TEST(test_input_grads_through_many_weights_and_after_a_weight_changes)
{
    /* More weights than the tape keeps memos (transposed copies) of, so both paths of the matmul
     * backward run; then a second backward after the weights change must use the new ones. */
    enum { N = TG_MAX_MEMOS + 3 };
    tg_tensor *w[N];
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_input(tape, 2, 1, (float[]){ 0.5f, -1.0f }), *y = x;
    for (int k = 0; k < N; k++) {
        w[k] = tg_param_new(2, 2);
        fill_uniform(w[k], 0.5f, 1.2f, 20 + (uint64_t)k);
        y = tg_matmul(tape, w[k], y);
    }
    tg_tensor *loss = tg_sum(tape, y);
    float want[2];
    for (int pass = 0; pass < 2; pass++) {
        ck_assert_int_eq(tg_backward(tape, loss), 0);
        chain_input_grad(w, N, want);
        ck_assert_float_eq_tol(x->grad[0], want[0], 1e-5f * fabsf(want[0]));
        ck_assert_float_eq_tol(x->grad[1], want[1], 1e-5f * fabsf(want[1]));
        for (int k = 0; k < N; k++)
            w[k]->data[1] = -w[k]->data[1];
    }
    for (int k = 0; k < N; k++)
        tg_param_free(w[k]);
    tg_tape_free(tape);
}
END_TEST

/* ---- refusals: NULL or -1 and a message; the tape works again after a reset -------------- */

START_TEST(test_bad_sizes_give_null)
{
    ck_assert_ptr_null(tg_param_new(0, 3));
    ck_assert_ptr_null(tg_param_new(3, -1));
    ck_assert_ptr_null(tg_param_new(1 << 20, 1 << 20));
    ck_assert_ptr_null(tg_rnn_cell_new(0, 2, 1));
    ck_assert_ptr_null(tg_rnn_cell_new(3, 0, 1));
    ck_assert_ptr_null(tg_rnn_cell_new(-3, 2, 1));
    tg_tape *tape = tg_tape_new();
    ck_assert_ptr_null(tg_input(tape, 0, 4, NULL));
    assert_error(tape, "tg_input: bad size 0x4");
    assert_usable_after_reset(tape);
    ck_assert_ptr_null(tg_input(tape, 3, -2, NULL));
    assert_error(tape, "tg_input: bad size 3x-2");
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_backward_refuses_a_bad_loss)
{
    tg_tape *tape = tg_tape_new(), *other = tg_tape_new();
    tg_tensor *p = tg_param_new(1, 1);
    ck_assert_int_eq(tg_backward(tape, NULL), -1);
    assert_error(tape, "tg_backward: loss is NULL");
    tg_tape_reset(tape);
    ck_assert_int_eq(tg_backward(tape, tg_input(tape, 2, 1, NULL)), -1);
    assert_error(tape, "tg_backward: loss must be 1x1, got 2x1");
    tg_tape_reset(tape);
    ck_assert_int_eq(tg_backward(tape, p), -1);
    assert_error(tape, "tg_backward: loss must be a tensor made on this tape");
    tg_tape_reset(tape);
    ck_assert_int_eq(tg_backward(tape, tg_input(other, 1, 1, NULL)), -1);
    assert_error(tape, "tg_backward: loss must be a tensor made on this tape");
    assert_usable_after_reset(tape);
    tg_param_free(p);
    tg_tape_free(tape);
    tg_tape_free(other);
}
END_TEST

START_TEST(test_inputs_from_another_tape_are_refused)
{
    tg_tape *tape = tg_tape_new(), *other = tg_tape_new();
    tg_tensor *mine = tg_input(tape, 2, 2, NULL), *theirs = tg_input(other, 2, 2, NULL);
    ck_assert_ptr_null(tg_add(tape, mine, theirs));
    assert_error(tape, "tg_add: input 2 was made on another tape");
    tg_tape_reset(tape);
    mine = tg_input(tape, 2, 2, NULL);
    ck_assert_ptr_null(tg_matmul_add(tape, mine, mine, theirs));
    assert_error(tape, "tg_matmul_add: input 3 was made on another tape");
    tg_tape_free(tape);
    tg_tape_free(other);
}
END_TEST

START_TEST(test_nan_loss_is_reported_and_weights_stay_unchanged)
{
    tg_tensor *w = tg_param_new(1, 1);
    w->data[0] = 2.0f;
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_mse(tape, tg_matmul(tape, w, tg_input(tape, 1, 1, (float[]){ NAN })),
                             tg_input(tape, 1, 1, NULL));
    ck_assert_int_eq(tg_backward(tape, loss), -1);
    assert_error(tape, "tg_backward: loss is nan; no gradient computed");
    ck_assert_float_eq(w->grad[0], 0.0f);
    tg_error err;
    ck_assert_int_eq(tg_sgd_step(&w, 1, NAN, &err), -1);
    ck_assert_str_eq(err.message, "tg_sgd_step: lr is nan; it must be finite; nothing changed");
    w->grad[0] = INFINITY;
    ck_assert_int_eq(tg_sgd_step(&w, 1, 0.1f, &err), -1);
    ck_assert_str_eq(err.message,
                     "tg_sgd_step: the gradient of params[0] is +Inf at value 0; nothing changed");
    ck_assert_float_eq(w->data[0], 2.0f);
    tg_tape_free(tape);
    tg_param_free(w);
}
END_TEST

START_TEST(test_out_of_memory_gives_null_and_a_message)
{
    tg_tape *tape = tg_tape_new();
    alloc_fail_after(0);
    tg_tensor *x = tg_input(tape, 4, 4, NULL);
    tg_tensor *p = tg_param_new(3, 3);
    tg_rnn_cell *cell = tg_rnn_cell_new(2, 2, 1);
    tg_tape *no_tape = tg_tape_new();
    alloc_fail_after(-1);
    ck_assert_ptr_null(x);
    ck_assert_ptr_null(p);
    ck_assert_ptr_null(cell);
    ck_assert_ptr_null(no_tape);
    assert_error(tape, "tg_input: out of memory for a 4x4 result");
    for (long n = 1; n < 10; n++) { /* a cell that fails at any of its 10 allocations frees the rest */
        alloc_fail_after(n);
        cell = tg_rnn_cell_new(2, 2, 1);
        alloc_fail_after(-1);
        ck_assert_ptr_null(cell);
    }
    assert_usable_after_reset(tape);
    tg_tape_free(tape);
}
END_TEST

/* ---- recording: the state is a copy, constants skip the backward, sizes are checked ------ */

START_TEST(test_record_keeps_a_copy_of_the_state)
{
    wrongness = 1.0f;
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = tg_input(tape, 1, 2, (float[]){ 1.0f, 2.0f });
    tg_tensor *in[] = { a };
    float s = 2.0f;
    tg_tensor *y = tg_record(tape, &CUBE, in, 1, 2, &s, sizeof s);
    ck_assert_ptr_nonnull(y);
    memset(y->data, 0, 2 * sizeof(float));
    s = 100.0f;                                   /* the tape's copy must not follow */
    ck_assert_float_eq(*(const float *)tg_op_state(y), 2.0f);
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, y)), 0);
    ck_assert_float_eq(a->grad[0], 6.0f);         /* 3 * 2 * 1^2 */
    ck_assert_float_eq(a->grad[1], 24.0f);        /* 3 * 2 * 2^2 */
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_an_op_on_constants_gets_no_grad_and_no_backward_call)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *W = tg_param_new(1, 2);
    fill_uniform(W, -1.0f, 1.0f, 9);
    tg_tensor *cubed = user_cube(tape, tg_constant(tape, 2, 1, (float[]){ 0.5f, -2.0f }), 1.0f);
    ck_assert_ptr_null(cubed->grad);
    cube_backward_calls = 0;
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, tg_matmul(tape, W, cubed))), 0);
    ck_assert_int_eq(cube_backward_calls, 0);
    ck_assert_float_eq(W->grad[1], -8.0f);
    tg_param_free(W);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_record_refuses_a_result_over_the_size_limit)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *column = tg_constant(tape, 32768, 1, NULL), *row = tg_constant(tape, 1, 32768, NULL);
    ck_assert_ptr_null(tg_matmul(tape, column, row));
    ck_assert_str_eq(tg_tape_error(tape), "tg_matmul: a 32768x32768 result is too large (at most "
                                          "1073741823 values)");
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_inputs_ok_refuses_a_bad_op_and_a_null_input)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *in[] = { NULL };
    ck_assert_int_eq(tg_inputs_ok(tape, &CUBE, in), 0);
    ck_assert_str_eq(tg_tape_error(tape), "user_cube: input 1 is NULL");
    tg_tape_reset(tape);
    static const tg_op NO_BACKWARD = { "no_backward", 1, NULL };
    in[0] = tg_input(tape, 1, 1, NULL);
    ck_assert_int_eq(tg_inputs_ok(tape, &NO_BACKWARD, in), 0);
    ck_assert_str_eq(tg_tape_error(tape), "tg_inputs_ok: op no_backward is not a valid tg_op "
                                          "(name, 1..4 inputs, backward)");
    tg_tape_free(tape);
}
END_TEST

/* ---- memos: one block per (owner, key) and backward pass --------------------------------- */

static int memo_fresh_count;

static void memo_backward(tg_tensor *y, tg_tensor *const *in)
{
    int fresh;
    float *m = tg_backward_memo(y, &memo_fresh_count, in[0], sizeof(float), &fresh);
    if (m && fresh) {
        memo_fresh_count++;
        *m = 1.0f;
    }
    in[0]->grad[0] += m ? *m * y->grad[0] : 0.0f;
}

static const tg_op MEMO_OP = { "memo_op", 1, memo_backward };

START_TEST(test_backward_memo_is_made_once_per_key_and_pass)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *p = tg_param_new(1, 1), *q = tg_param_new(1, 1);
    tg_tensor *sum = NULL;
    for (int i = 0; i < 6; i++) {
        tg_tensor *in[] = { i % 2 ? p : q };
        tg_tensor *y = tg_record(tape, &MEMO_OP, in, 1, 1, NULL, 0);
        y->data[0] = 0.0f;
        sum = sum ? tg_add(tape, sum, y) : y;
    }
    memo_fresh_count = 0;
    ck_assert_int_eq(tg_backward(tape, sum), 0);
    ck_assert_int_eq(memo_fresh_count, 2);        /* one for p, one for q */
    ck_assert_int_eq(tg_backward(tape, sum), 0);
    ck_assert_int_eq(memo_fresh_count, 4);        /* made again in the second pass */
    ck_assert_float_eq(p->grad[0], 6.0f);         /* 3 nodes, twice */
    tg_param_free(p);
    tg_param_free(q);
    tg_tape_free(tape);
}
END_TEST

Suite *tape_suite(void)
{
    Suite *s = suite_create("tape");
    TCase *tc = tcase_create("tape");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reset_reuses_the_same_memory);
    tcase_add_test(tc, test_constant_view_reads_the_data_in_place_and_gives_the_same_grads);
    tcase_add_test(tc, test_constant_view_refuses_null_data_and_a_bad_size);
    tcase_add_test(tc, test_training_step_makes_no_heap_allocation_once_warm);
    tcase_add_test(tc, test_ten_thousand_node_chain_backpropagates);
    tcase_add_test(tc, test_ten_thousand_step_rnn_unroll_backpropagates);
    tcase_add_test(tc, test_shared_parameter_sums_its_gradient_over_steps);
    tcase_add_test(tc, test_second_backward_repeats_tape_grads_and_doubles_param_grads);
    tcase_add_test(tc, test_tensors_the_loss_does_not_use_get_zero_grad);
    tcase_add_test(tc, test_constant_data_gives_the_same_parameter_grads_and_has_no_grad);
    tcase_add_loop_test(tc, test_every_two_input_op_skips_a_constant_and_keeps_the_other_grad, 0, MIX_OPS);
    tcase_add_loop_test(tc, test_matmul_add_skips_a_constant_input_and_keeps_the_other_grads, 0, 3);
    tcase_add_test(tc, test_a_loss_made_only_from_constants_is_refused);
    tcase_add_test(tc, test_input_grads_through_many_weights_and_after_a_weight_changes);
    suite_add_tcase(s, tc);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_bad_sizes_give_null);
    tcase_add_test(errors, test_backward_refuses_a_bad_loss);
    tcase_add_test(errors, test_inputs_from_another_tape_are_refused);
    tcase_add_test(errors, test_nan_loss_is_reported_and_weights_stay_unchanged);
    tcase_add_test(errors, test_out_of_memory_gives_null_and_a_message);
    suite_add_tcase(s, errors);
    TCase *op = tcase_create("user_op");
    tcase_add_test(op, test_record_keeps_a_copy_of_the_state);
    tcase_add_test(op, test_an_op_on_constants_gets_no_grad_and_no_backward_call);
    tcase_add_test(op, test_record_refuses_a_result_over_the_size_limit);
    tcase_add_test(op, test_inputs_ok_refuses_a_bad_op_and_a_null_input);
    tcase_add_test(op, test_backward_memo_is_made_once_per_key_and_pass);
    suite_add_tcase(s, op);
    return s;
}
