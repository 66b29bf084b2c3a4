/* test_ops.c: every op (src/ops.c): its forward on hand-worked values, its backward against
 * central finite differences (a backward 1% off is caught), and its refusals of bad shapes
 * and NULL inputs, each with a message naming the op and the shapes. */
#include <check.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>

#include "gradcheck.h"
#include "tape_errors.h"

/* ---- forward on hand-worked cases ------------------------------------------------------- */

static void assert_values(const tg_tensor *t, int rows, int cols, const float *want)
{
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->rows, rows);
    ck_assert_int_eq(t->cols, cols);
    for (int k = 0; k < rows * cols; k++)
        ck_assert_float_eq_tol(t->data[k], want[k], 1e-6f);
}

START_TEST(test_matmul_forward_multiplies_rows_by_columns)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = tg_input(tape, 2, 3, (float[]){ 1, 2, 3, 4, 5, 6 });
    tg_tensor *b = tg_input(tape, 3, 2, (float[]){ 7, 8, 9, 10, 11, 12 });
    assert_values(tg_matmul(tape, a, b), 2, 2, (float[]){ 58, 64, 139, 154 });
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_add_forward_same_shape_and_column_broadcast)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = tg_input(tape, 2, 3, (float[]){ 1, 2, 3, 4, 5, 6 });
    tg_tensor *same = tg_input(tape, 2, 3, (float[]){ 10, 20, 30, 40, 50, 60 });
    tg_tensor *column = tg_input(tape, 2, 1, (float[]){ 100, 200 });
    assert_values(tg_add(tape, a, same), 2, 3, (float[]){ 11, 22, 33, 44, 55, 66 });
    assert_values(tg_add(tape, a, column), 2, 3, (float[]){ 101, 102, 103, 204, 205, 206 });
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_matmul_add_forward_adds_c_or_its_column_to_the_product)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = tg_input(tape, 2, 3, (float[]){ 1, 2, 3, 4, 5, 6 });
    tg_tensor *b = tg_input(tape, 3, 2, (float[]){ 7, 8, 9, 10, 11, 12 });
    tg_tensor *same = tg_input(tape, 2, 2, (float[]){ 1, 2, 3, 4 });
    tg_tensor *column = tg_input(tape, 2, 1, (float[]){ 100, 200 });
    /* a b = 58 64 / 139 154, as in the matmul case */
    assert_values(tg_matmul_add(tape, a, b, same), 2, 2, (float[]){ 59, 66, 142, 158 });
    assert_values(tg_matmul_add(tape, a, b, column), 2, 2, (float[]){ 158, 164, 339, 354 });
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_elementwise_forwards_sub_mul_scale_tanh)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = tg_input(tape, 1, 3, (float[]){ 1, -2, 0.5f });
    tg_tensor *b = tg_input(tape, 1, 3, (float[]){ 3, 4, -1 });
    assert_values(tg_sub(tape, a, b), 1, 3, (float[]){ -2, -6, 1.5f });
    assert_values(tg_mul(tape, a, b), 1, 3, (float[]){ 3, -8, -0.5f });
    assert_values(tg_scale(tape, a, -2.0f), 1, 3, (float[]){ -2, 4, -1 });
    /* tanh(ln 2) = (2 - 1/2) / (2 + 1/2) = 0.6 */
    tg_tensor *x = tg_input(tape, 1, 3, (float[]){ 0, logf(2.0f), -logf(2.0f) });
    assert_values(tg_tanh(tape, x), 1, 3, (float[]){ 0, 0.6f, -0.6f });
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_gate_forwards_sigmoid_one_minus_rows)
{
    tg_tape *tape = tg_tape_new();
    /* sigmoid(ln 3) = 3 / 4; far out it saturates to 0 and 1 without overflow */
    tg_tensor *x = tg_input(tape, 1, 4, (float[]){ 0, logf(3.0f), -200.0f, 200.0f });
    assert_values(tg_sigmoid(tape, x), 1, 4, (float[]){ 0.5f, 0.75f, 0, 1 });
    assert_values(tg_one_minus(tape, x), 1, 4, (float[]){ 1, 1 - logf(3.0f), 201, -199 });
    tg_tensor *m = tg_input(tape, 4, 2, (float[]){ 1, 2, 3, 4, 5, 6, 7, 8 });
    assert_values(tg_rows(tape, m, 1, 2), 2, 2, (float[]){ 3, 4, 5, 6 });
    assert_values(tg_rows(tape, m, 3, 1), 1, 2, (float[]){ 7, 8 });
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_relu_forward_keeps_positives_zeroes_negatives)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_input(tape, 2, 3, (float[]){ -2, 0, 0.5f, 3, -1e-30f, -0.0f });
    assert_values(tg_relu(tape, x), 2, 3, (float[]){ 0, 0, 0.5f, 3, 0, 0 });
    tg_tensor *nan = tg_input(tape, 1, 1, (float[]){ NAN });
    ck_assert(isnan(tg_relu(tape, nan)->data[0]));   /* as torch.relu */
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_reductions_sum_mean_mse)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = tg_input(tape, 2, 2, (float[]){ 1, 2, 3, 6 });
    tg_tensor *t = tg_input(tape, 2, 2, (float[]){ 0, 2, 5, 6 });
    assert_values(tg_sum(tape, a), 1, 1, (float[]){ 12 });
    assert_values(tg_mean(tape, a), 1, 1, (float[]){ 3 });
    /* differences 1, 0, -2, 0: squares sum to 5, over 4 values */
    assert_values(tg_mse(tape, a, t), 1, 1, (float[]){ 1.25f });
    /* column 0: logits (0, ln 3), class 1: -log(3/4); column 1: logits (ln 3, 0), class 1:
     * -log(1/4); the mean is log 4 - log(3)/2. Huge logits stay finite. */
    float ln3 = logf(3.0f);
    tg_tensor *z = tg_input(tape, 2, 2, (float[]){ 0, ln3, ln3, 0 });
    assert_values(tg_cross_entropy(tape, z, (int[]){ 1, 1 }), 1, 1, (float[]){ logf(4.0f) - ln3 / 2 });
    tg_tensor *huge = tg_input(tape, 2, 1, (float[]){ 1000.0f, -1000.0f });
    assert_values(tg_cross_entropy(tape, huge, (int[]){ 1 }), 1, 1, (float[]){ 2000.0f });
    tg_tape_free(tape);
}
END_TEST

/* ---- backward against finite differences ------------------------------------------------ */

static tg_tensor *f_matmul(tg_tape *tp, tg_tensor **in) { return tg_matmul(tp, in[0], in[1]); }

static tg_tensor *f_add(tg_tape *tp, tg_tensor **in) { return tg_add(tp, in[0], in[1]); }

static tg_tensor *f_matmul_add(tg_tape *tp, tg_tensor **in) { return tg_matmul_add(tp, in[0], in[1], in[2]); }

static tg_tensor *f_sub(tg_tape *tp, tg_tensor **in) { return tg_sub(tp, in[0], in[1]); }

static tg_tensor *f_mul(tg_tape *tp, tg_tensor **in) { return tg_mul(tp, in[0], in[1]); }

static tg_tensor *f_square(tg_tape *tp, tg_tensor **in) { return tg_mul(tp, in[0], in[0]); }

static tg_tensor *f_scale(tg_tape *tp, tg_tensor **in) { return tg_scale(tp, in[0], -1.7f); }

static tg_tensor *f_tanh(tg_tape *tp, tg_tensor **in) { return tg_tanh(tp, in[0]); }

static tg_tensor *f_sigmoid(tg_tape *tp, tg_tensor **in) { return tg_sigmoid(tp, in[0]); }

/* relu(in + shift), shift +2 and -2 in turn: the inputs, in [-1.5, 1.5], then sit in [0.5, 3.5]
 * (slope 1) or [-3.5, -0.5] (slope 0), so no finite difference straddles the kink at 0. */
static tg_tensor *f_relu(tg_tape *tp, tg_tensor **in)
{
    tg_tensor *shift = tg_constant(tp, in[0]->rows, in[0]->cols, NULL);
    for (long k = 0; shift && k < (long)shift->rows * shift->cols; k++)
        shift->data[k] = k % 2 ? -2.0f : 2.0f;
    return tg_relu(tp, tg_add(tp, in[0], shift));
}

static tg_tensor *f_one_minus(tg_tape *tp, tg_tensor **in) { return tg_one_minus(tp, in[0]); }

static tg_tensor *f_rows(tg_tape *tp, tg_tensor **in) { return tg_rows(tp, in[0], 2, 3); }

static tg_tensor *f_sum(tg_tape *tp, tg_tensor **in) { return tg_sum(tp, in[0]); }

static tg_tensor *f_mean(tg_tape *tp, tg_tensor **in) { return tg_mean(tp, in[0]); }

static tg_tensor *f_mse(tg_tape *tp, tg_tensor **in) { return tg_mse(tp, in[0], in[1]); }

static tg_tensor *f_cross_entropy(tg_tape *tp, tg_tensor **in)
{
    return tg_cross_entropy(tp, tg_scale(tp, in[0], 3.0f), (int[]){ 2, 0, 4 });
}

/* Three steps of the RNN cell (W_h = in[0], W_x = in[1], b = in[2]) from h_0 = in[3];
 * x_t is column t of in[4], picked out by a matmul with a one-hot column. Checks BPTT
 * through the shared W_h. */
static tg_tensor *f_three_cell_steps(tg_tape *tp, tg_tensor **in)
{
    tg_rnn_cell cell = { .input_size = 2, .hidden_size = 3, .W_h = in[0], .W_x = in[1], .b = in[2] };
    tg_tensor *h = in[3];
    for (int t = 0; t < 3; t++) {
        float one_hot[3] = { 0 };
        one_hot[t] = 1.0f;
        tg_tensor *pick = tg_constant(tp, 3, 1, one_hot);
        tg_tensor *x_t = tg_matmul(tp, in[4], pick);
        h = tg_rnn_cell_forward(tp, &cell, x_t, h);
    }
    return h;
}

typedef struct op_case {
    const char *name;
    gradcheck_fn fn;
    int n;
    int shapes[GRADCHECK_MAX_INPUTS][2];
} op_case;

static const op_case OP_CASES[] = {
    { "matmul", f_matmul, 2, { { 3, 4 }, { 4, 5 } } },
    { "matmul of a vector", f_matmul, 2, { { 1, 3 }, { 3, 1 } } },
    { "add", f_add, 2, { { 3, 4 }, { 3, 4 } } },
    { "add of a column", f_add, 2, { { 3, 4 }, { 3, 1 } } },
    { "matmul_add", f_matmul_add, 3, { { 3, 4 }, { 4, 5 }, { 3, 5 } } },
    { "matmul_add of a column", f_matmul_add, 3, { { 3, 4 }, { 4, 5 }, { 3, 1 } } },
    { "sub", f_sub, 2, { { 2, 5 }, { 2, 5 } } },
    { "mul", f_mul, 2, { { 4, 3 }, { 4, 3 } } },
    { "mul of a tensor by itself", f_square, 1, { { 3, 3 } } },
    { "scale", f_scale, 1, { { 2, 3 } } },
    { "tanh", f_tanh, 1, { { 3, 4 } } },
    { "sigmoid", f_sigmoid, 1, { { 3, 4 } } },
    { "relu", f_relu, 1, { { 3, 4 } } },
    { "one_minus", f_one_minus, 1, { { 2, 3 } } },
    { "rows", f_rows, 1, { { 6, 3 } } },
    { "sum", f_sum, 1, { { 3, 2 } } },
    { "mean", f_mean, 1, { { 2, 5 } } },
    { "mse", f_mse, 2, { { 3, 4 }, { 3, 4 } } },
    { "cross_entropy", f_cross_entropy, 1, { { 5, 3 } } },
    { "three rnn cell steps", f_three_cell_steps, 5, { { 3, 3 }, { 3, 2 }, { 3, 1 }, { 3, 1 }, { 2, 3 } } },
};

#define N_OP_CASES ((int)(sizeof OP_CASES / sizeof OP_CASES[0]))

/* Runs op case i's gradient check with the backward's gradients scaled by grad_scale. */
static double check_case(int i, float grad_scale)
{
    const op_case *c = &OP_CASES[i];
    tg_tensor *in[GRADCHECK_MAX_INPUTS] = { 0 };
    for (int k = 0; k < c->n; k++) {
        in[k] = tg_param_new(c->shapes[k][0], c->shapes[k][1]);
        fill_uniform(in[k], -1.5f, 1.5f, 1000u + (uint64_t)k);
    }
    double err = gradcheck(c->fn, in, c->n, grad_scale);
    for (int k = 0; k < c->n; k++)
        tg_param_free(in[k]);
    return err;
}

START_TEST(test_backward_matches_finite_difference)
{
    double err = check_case(_i, 1.0f);
    ck_assert_msg(err < GRADCHECK_TOLERANCE, "%s: relative error %g", OP_CASES[_i].name, err);
}
END_TEST

START_TEST(test_finite_difference_catches_a_backward_one_percent_off)
{
    double err = check_case(_i, 1.01f);
    ck_assert_msg(err > GRADCHECK_TOLERANCE, "%s: a 1%% error gave only %g", OP_CASES[_i].name, err);
}
END_TEST

/* ---- refusals: NULL and a message naming the op and the shapes --------------------------- */

START_TEST(test_shape_mismatches_name_the_op_and_shapes)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = tg_input(tape, 3, 2, NULL), *b = tg_input(tape, 2, 2, NULL);
    ck_assert_ptr_null(tg_matmul(tape, a, a));
    assert_error(tape, "tg_matmul: cannot multiply 3x2 by 3x2");
    assert_usable_after_reset(tape);
    a = tg_input(tape, 3, 2, NULL), b = tg_input(tape, 2, 2, NULL);
    ck_assert_ptr_null(tg_add(tape, a, b));
    assert_error(tape, "tg_add: cannot add 3x2 and 2x2 (b must be 3x2 or 3x1)");
    assert_usable_after_reset(tape);
    a = tg_input(tape, 3, 2, NULL), b = tg_input(tape, 2, 2, NULL);
    ck_assert_ptr_null(tg_matmul_add(tape, a, a, b));
    assert_error(tape, "tg_matmul_add: cannot multiply 3x2 by 3x2");
    assert_usable_after_reset(tape);
    a = tg_input(tape, 3, 2, NULL), b = tg_input(tape, 2, 2, NULL);
    ck_assert_ptr_null(tg_matmul_add(tape, a, b, b));
    assert_error(tape, "tg_matmul_add: cannot add 2x2 to the 3x2 product (c must be 3x2 or 3x1)");
    assert_usable_after_reset(tape);
    a = tg_input(tape, 3, 2, NULL), b = tg_input(tape, 2, 2, NULL);
    ck_assert_ptr_null(tg_matmul_add(tape, a, b, tg_input(tape, 3, 3, NULL)));
    assert_error(tape, "tg_matmul_add: cannot add 3x3 to the 3x2 product (c must be 3x2 or 3x1)");
    assert_usable_after_reset(tape);
    a = tg_input(tape, 3, 2, NULL), b = tg_input(tape, 2, 2, NULL);
    ck_assert_ptr_null(tg_sub(tape, a, b));
    assert_error(tape, "tg_sub: shapes differ: 3x2 and 2x2");
    assert_usable_after_reset(tape);
    a = tg_input(tape, 3, 2, NULL), b = tg_input(tape, 2, 2, NULL);
    ck_assert_ptr_null(tg_mul(tape, a, b));
    assert_error(tape, "tg_mul: shapes differ: 3x2 and 2x2");
    assert_usable_after_reset(tape);
    a = tg_input(tape, 3, 2, NULL), b = tg_input(tape, 2, 2, NULL);
    ck_assert_ptr_null(tg_mse(tape, a, b));
    assert_error(tape, "tg_mse: shapes differ: 3x2 and 2x2");
    assert_usable_after_reset(tape);
    static const int bad_ranges[4][2] = { { -1, 2 }, { 2, 2 }, { 0, 0 }, { 3, 1 } };
    for (int i = 0; i < 4; i++) {
        char want[80];
        snprintf(want, sizeof want, "tg_rows: cannot take rows %d..%d of a 3x2 tensor",
                 bad_ranges[i][0], bad_ranges[i][0] + bad_ranges[i][1] - 1);
        ck_assert_ptr_null(tg_rows(tape, tg_input(tape, 3, 2, NULL), bad_ranges[i][0], bad_ranges[i][1]));
        assert_error(tape, want);
        assert_usable_after_reset(tape);
    }
    tg_tape_free(tape);
}
END_TEST

/* The last row that tg_rows' message names, first + n - 1, is past INT_MAX here: it must be
 * computed wider than int (in int it overflows, which make sanitize reports). */
START_TEST(test_rows_names_a_range_past_int_max_without_overflow)
{
    tg_tape *tape = tg_tape_new();
    ck_assert_ptr_null(tg_rows(tape, tg_input(tape, 3, 2, NULL), INT_MAX, 2));
    assert_error(tape, "tg_rows: cannot take rows 2147483647..2147483648 of a 3x2 tensor");
    tg_tape_free(tape);
}
END_TEST

/* Of the ops, only the products can make a result larger than their inputs: tg_matmul's
 * refusal is in tests/test_tape.c; tg_matmul_add's 32768x1 by 1x32768 (plus a column) would
 * be 2^30 values, one past the limit, 4 GiB. */
START_TEST(test_matmul_add_refuses_a_result_over_the_size_limit)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *column = tg_constant(tape, 32768, 1, NULL), *row = tg_constant(tape, 1, 32768, NULL);
    ck_assert_ptr_null(tg_matmul_add(tape, column, row, column));
    assert_error(tape, "tg_matmul_add: a 32768x32768 result is too large (at most 1073741823 values)");
    tg_tape_free(tape);
}
END_TEST

typedef tg_tensor *(*binary_op)(tg_tape *, tg_tensor *, tg_tensor *);

typedef tg_tensor *(*unary_op)(tg_tape *, tg_tensor *);

START_TEST(test_null_inputs_give_null_and_name_the_op)
{
    static const struct { binary_op op; const char *name; } binary[] = {
        { tg_matmul, "tg_matmul" }, { tg_add, "tg_add" }, { tg_sub, "tg_sub" },
        { tg_mul, "tg_mul" }, { tg_mse, "tg_mse" },
    };
    static const struct { unary_op op; const char *name; } unary[] = {
        { tg_tanh, "tg_tanh" }, { tg_sum, "tg_sum" }, { tg_mean, "tg_mean" },
        { tg_sigmoid, "tg_sigmoid" }, { tg_one_minus, "tg_one_minus" }, { tg_relu, "tg_relu" },
    };
    char want[64];
    tg_tape *tape = tg_tape_new();
    for (size_t i = 0; i < sizeof binary / sizeof binary[0]; i++) {
        tg_tensor *x = tg_input(tape, 2, 2, NULL);
        ck_assert_ptr_null(binary[i].op(tape, x, NULL));
        snprintf(want, sizeof want, "%s: input 2 is NULL", binary[i].name);
        assert_error(tape, want);
        assert_usable_after_reset(tape);
        ck_assert_ptr_null(binary[i].op(tape, NULL, x));
        ck_assert_ptr_null(binary[i].op(NULL, x, x));
        tg_tape_reset(tape);
    }
    for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++) {
        ck_assert_ptr_null(unary[i].op(tape, NULL));
        snprintf(want, sizeof want, "%s: input 1 is NULL", unary[i].name);
        assert_error(tape, want);
        assert_usable_after_reset(tape);
        ck_assert_ptr_null(unary[i].op(NULL, NULL));
    }
    for (int missing = 0; missing < 3; missing++) {
        tg_tensor *in[3] = { tg_input(tape, 2, 2, NULL), tg_input(tape, 2, 2, NULL),
                             tg_input(tape, 2, 2, NULL) };
        in[missing] = NULL;
        ck_assert_ptr_null(tg_matmul_add(tape, in[0], in[1], in[2]));
        snprintf(want, sizeof want, "tg_matmul_add: input %d is NULL", missing + 1);
        assert_error(tape, want);
        assert_usable_after_reset(tape);
    }
    ck_assert_ptr_null(tg_scale(tape, NULL, 2.0f));
    assert_error(tape, "tg_scale: input 1 is NULL");
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_rows(tape, NULL, 0, 1));
    assert_error(tape, "tg_rows: input 1 is NULL");
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_cross_entropy(tape, NULL, (int[]){ 0 }));
    assert_error(tape, "tg_cross_entropy: input 1 is NULL");
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_cross_entropy(tape, tg_input(tape, 3, 2, NULL), NULL));
    assert_error(tape, "tg_cross_entropy: classes is NULL");
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_cross_entropy(tape, tg_input(tape, 3, 2, NULL), (int[]){ 0, 3 }));
    assert_error(tape, "tg_cross_entropy: class 3 of column 1 is not in 0..2");
    ck_assert_ptr_null(tg_input(NULL, 1, 1, NULL));
    ck_assert_int_eq(tg_backward(NULL, NULL), -1);
    ck_assert_ptr_nonnull(tg_tape_error(NULL));
    tg_tape_free(tape);
}
END_TEST

Suite *ops_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *forward = tcase_create("forward");
    tcase_add_test(forward, test_matmul_forward_multiplies_rows_by_columns);
    tcase_add_test(forward, test_add_forward_same_shape_and_column_broadcast);
    tcase_add_test(forward, test_matmul_add_forward_adds_c_or_its_column_to_the_product);
    tcase_add_test(forward, test_elementwise_forwards_sub_mul_scale_tanh);
    tcase_add_test(forward, test_gate_forwards_sigmoid_one_minus_rows);
    tcase_add_test(forward, test_relu_forward_keeps_positives_zeroes_negatives);
    tcase_add_test(forward, test_reductions_sum_mean_mse);
    suite_add_tcase(s, forward);
    TCase *backward = tcase_create("backward");
    tcase_add_loop_test(backward, test_backward_matches_finite_difference, 0, N_OP_CASES);
    tcase_add_loop_test(backward, test_finite_difference_catches_a_backward_one_percent_off, 0, N_OP_CASES);
    suite_add_tcase(s, backward);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_shape_mismatches_name_the_op_and_shapes);
    tcase_add_test(errors, test_null_inputs_give_null_and_name_the_op);
    tcase_add_test(errors, test_rows_names_a_range_past_int_max_without_overflow);
    tcase_add_test(errors, test_matmul_add_refuses_a_result_over_the_size_limit);
    suite_add_tcase(s, errors);
    return s;
}
