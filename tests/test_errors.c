/* test_errors.c: every misuse gets NULL or -1 and a message naming the call and the shapes,
 * never a crash; the first error sticks; the tape works again after a reset. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc_count.h"
#include "gradcheck.h"

static void assert_error(const tg_tape *tape, const char *want)
{
    const char *got = tg_tape_error(tape);
    ck_assert_msg(got != NULL, "no error recorded, expected \"%s\"", want);
    ck_assert_str_eq(got, want);
}

/* After a reset the tape has no error and computes again. */
static void assert_usable_after_reset(tg_tape *tape)
{
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_tape_error(tape));
    tg_tensor *x = tg_input(tape, 1, 1, (float[]){ 0.5f });
    tg_tensor *loss = tg_mse(tape, tg_tanh(tape, x), tg_input(tape, 1, 1, NULL));
    ck_assert_int_eq(tg_backward(tape, loss), 0);
    ck_assert_ptr_null(tg_tape_error(tape));
}

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
        { tg_sigmoid, "tg_sigmoid" }, { tg_one_minus, "tg_one_minus" },
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

START_TEST(test_first_error_sticks_and_null_flows_through_a_forward_pass)
{
    tg_rnn_cell *cell = tg_rnn_cell_new(3, 4, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *h = tg_input(tape, 4, 2, NULL);
    h = tg_rnn_cell_forward(tape, cell, tg_input(tape, 5, 2, NULL), h);
    ck_assert_ptr_null(h);
    for (int t = 0; t < 3; t++)
        h = tg_rnn_cell_forward(tape, cell, tg_input(tape, 3, 2, NULL), h);
    tg_tensor *loss = tg_mse(tape, h, tg_input(tape, 4, 2, NULL));
    ck_assert_ptr_null(loss);
    ck_assert_int_eq(tg_backward(tape, loss), -1);
    assert_error(tape, "tg_rnn_cell_forward: x_t is 5x2, the cell takes 3 inputs");
    ck_assert_float_eq(cell->W_h->grad[0], 0.0f);
    assert_usable_after_reset(tape);
    tg_tape_free(tape);
    tg_rnn_cell_free(cell);
}
END_TEST

START_TEST(test_cell_forward_checks_its_arguments)
{
    tg_rnn_cell *cell = tg_rnn_cell_new(3, 4, 1);
    tg_tape *tape = tg_tape_new();
    ck_assert_ptr_null(tg_rnn_cell_forward(tape, cell, tg_input(tape, 3, 2, NULL), tg_input(tape, 2, 2, NULL)));
    assert_error(tape, "tg_rnn_cell_forward: h_prev is 2x2, the cell has 4 hidden units");
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_rnn_cell_forward(tape, cell, tg_input(tape, 3, 2, NULL), tg_input(tape, 4, 3, NULL)));
    assert_error(tape, "tg_rnn_cell_forward: x_t has 2 columns (batch) but h_prev has 3");
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_rnn_cell_forward(tape, cell, tg_input(tape, 3, 1, NULL), tg_input(tape, 4, 5, NULL)));
    assert_error(tape, "tg_rnn_cell_forward: x_t has 1 columns (batch) but h_prev has 5");
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_rnn_cell_forward(tape, NULL, tg_input(tape, 3, 2, NULL), tg_input(tape, 4, 2, NULL)));
    assert_error(tape, "tg_rnn_cell_forward: cell is NULL");
    assert_usable_after_reset(tape);
    ck_assert_ptr_null(tg_rnn_cell_forward(tape, cell, NULL, tg_input(tape, 4, 2, NULL)));
    assert_error(tape, "tg_rnn_cell_forward: x_t is NULL");
    assert_usable_after_reset(tape);
    ck_assert_ptr_null(tg_rnn_cell_forward(tape, cell, tg_input(tape, 3, 2, NULL), NULL));
    assert_error(tape, "tg_rnn_cell_forward: h_prev is NULL");
    assert_usable_after_reset(tape);
    ck_assert_ptr_null(tg_rnn_cell_forward(NULL, cell, NULL, NULL));
    tg_tape_free(tape);
    tg_rnn_cell_free(cell);
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

START_TEST(test_training_calls_survive_null)
{
    tg_tensor *p = tg_param_new(2, 2);
    tg_tensor *with_null[2] = { p, NULL };
    tg_error err;
    ck_assert_int_eq(tg_sgd_step(NULL, 1, 0.1f, &err), -1);
    ck_assert_str_eq(err.message, "tg_sgd_step: params is NULL");
    ck_assert_int_eq(tg_sgd_step(with_null, 2, 0.1f, &err), -1);
    ck_assert_str_eq(err.message, "tg_sgd_step: params[1] is NULL");
    ck_assert_int_eq(tg_sgd_step(&p, -1, 0.1f, &err), -1);
    ck_assert_str_eq(err.message, "tg_sgd_step: n is -1; it must be >= 0");
    ck_assert_int_eq(tg_zero_grad(NULL, 3, &err), -1);
    ck_assert_str_eq(err.message, "tg_zero_grad: params is NULL");
    p->grad[0] = 1.0f;
    ck_assert_int_eq(tg_zero_grad(with_null, 2, &err), -1);
    ck_assert_str_eq(err.message, "tg_zero_grad: params[1] is NULL");
    ck_assert_float_eq(p->grad[0], 1.0f);   /* refused before zeroing anything */
    ck_assert_int_eq(tg_zero_grad(&p, 1, &err), 0);
    ck_assert_str_eq(err.message, "");
    ck_assert_float_eq(p->grad[0], 0.0f);
    tg_rnn_cell_init_normal(NULL, 1.0f, 1);
    ck_assert_int_eq(tg_init_uniform(NULL, 0, 1, NULL, NULL), -1);
    ck_assert_int_eq(tg_init_normal(p, 0, 1, NULL, NULL), -1);
    tg_param_free(NULL);
    tg_rnn_cell_free(NULL);
    tg_tape_free(NULL);
    tg_tape_reset(NULL);
    ck_assert_uint_eq(tg_tape_reserved_bytes(NULL), 0);
    tg_param_free(p);
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

Suite *errors_suite(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("errors");
    tcase_add_test(tc, test_bad_sizes_give_null);
    tcase_add_test(tc, test_shape_mismatches_name_the_op_and_shapes);
    tcase_add_test(tc, test_null_inputs_give_null_and_name_the_op);
    tcase_add_test(tc, test_first_error_sticks_and_null_flows_through_a_forward_pass);
    tcase_add_test(tc, test_cell_forward_checks_its_arguments);
    tcase_add_test(tc, test_backward_refuses_a_bad_loss);
    tcase_add_test(tc, test_inputs_from_another_tape_are_refused);
    tcase_add_test(tc, test_nan_loss_is_reported_and_weights_stay_unchanged);
    tcase_add_test(tc, test_training_calls_survive_null);
    tcase_add_test(tc, test_out_of_memory_gives_null_and_a_message);
    suite_add_tcase(s, tc);
    return s;
}
