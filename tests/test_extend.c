/* test_extend.c: the public extension API (an op defined here, outside the library, exactly as
 * the library's own ops are) and the public gradient check tg_grad_check, including that it
 * catches a deliberately wrong backward and says where. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "gradcheck.h"

static long count(const tg_tensor *t) { return (long)t->rows * t->cols; }

/* ---- a user's op: y = s a^3, da += 3 s a^2 dy (s is its state); `wrongness` scales the
 *      derivative to make a deliberately wrong backward ---------------------------------- */

static float wrongness = 1.0f;
static int cube_backward_calls;

static void cube_backward(tg_tensor *y, tg_tensor *const *in)
{
    const float *s = tg_op_state(y);
    tg_tensor *a = in[0];
    cube_backward_calls++;
    for (long k = 0; k < count(y); k++)
        a->grad[k] += wrongness * 3.0f * *s * a->data[k] * a->data[k] * y->grad[k];
}
static const tg_op CUBE = { "user_cube", 1, cube_backward };

static tg_tensor *user_cube(tg_tape *tape, tg_tensor *a, float s)
{
    tg_tensor *in[] = { a };
    if (!tg_inputs_ok(tape, &CUBE, in))
        return NULL;
    tg_tensor *y = tg_record(tape, &CUBE, in, a->rows, a->cols, &s, sizeof s);
    if (y)
        for (long k = 0; k < count(y); k++)
            y->data[k] = s * a->data[k] * a->data[k] * a->data[k];
    return y;
}

/* L = sum(tanh(W x)^3 * 0.5) with W a parameter (3 x 2) and x (2 x 2) a tg_input or a
 * tg_constant; the cube is the user's op. */
typedef struct model {
    tg_tensor *W;
    int x_is_constant;
} model;

static const float X[4] = { 0.3f, -0.8f, 1.1f, 0.5f };

static tg_tensor *model_loss(tg_tape *tape, void *ctx)
{
    model *m = ctx;
    tg_tensor *x = m->x_is_constant ? tg_constant(tape, 2, 2, X) : tg_input(tape, 2, 2, X);
    return tg_sum(tape, user_cube(tape, tg_tanh(tape, tg_matmul(tape, m->W, x)), 0.5f));
}

static model model_new(int x_is_constant)
{
    model m = { tg_param_new(3, 2), x_is_constant };
    fill_uniform(m.W, -1.0f, 1.0f, 7);
    return m;
}

START_TEST(test_user_op_backward_matches_finite_difference_over_params_and_inputs)
{
    wrongness = 1.0f;
    model m = model_new(0);
    tg_grad_check_result r;
    tg_error err;
    ck_assert_int_eq(tg_grad_check(model_loss, &m, &m.W, 1, 1e-2f, &r, &err), 0);
    ck_assert_str_eq(err.message, "");
    ck_assert_int_eq(r.checked, 6 + 4);          /* W's 6 values and x's 4 */
    ck_assert_msg(r.worst < GRADCHECK_TOLERANCE, "worst %g at tensor %d element %ld", r.worst,
                  r.tensor, r.element);
    tg_param_free(m.W);
}
END_TEST

START_TEST(test_grad_check_leaves_out_constants)
{
    wrongness = 1.0f;
    model m = model_new(1);
    tg_grad_check_result r;
    ck_assert_int_eq(tg_grad_check(model_loss, &m, &m.W, 1, 1e-2f, &r, NULL), 0);
    ck_assert_int_eq(r.checked, 6);
    tg_param_free(m.W);
}
END_TEST

START_TEST(test_grad_check_catches_a_backward_one_percent_off_and_says_where)
{
    wrongness = 1.01f;
    model m = model_new(0);
    tg_grad_check_result r;
    ck_assert_int_eq(tg_grad_check(model_loss, &m, &m.W, 1, 1e-2f, &r, NULL), 0);
    wrongness = 1.0f;
    ck_assert_msg(r.worst > GRADCHECK_TOLERANCE, "a 1%% error gave only %g", r.worst);
    ck_assert_int_ge(r.tensor, 0);
    ck_assert_int_le(r.tensor, 1);
    ck_assert_int_lt(r.element, r.tensor == 0 ? 6 : 4);
    /* where it is worst, the analytic derivative is the numeric one, 1% too large */
    ck_assert_double_eq_tol(r.analytic / r.numeric, 1.01, 2e-3);
    tg_param_free(m.W);
}
END_TEST

/* L = sum(tanh(W cube(x))): the user's op sits only on the path of x, so a wrong backward in
 * it makes x's derivatives wrong and leaves W's right. */
static tg_tensor *cube_on_input_loss(tg_tape *tape, void *ctx)
{
    tg_tensor *W = ctx;
    tg_tensor *x = user_cube(tape, tg_input(tape, 2, 2, X), 1.0f);
    return tg_sum(tape, tg_tanh(tape, tg_matmul(tape, W, x)));
}

START_TEST(test_grad_check_names_the_tg_input_whose_gradient_is_wrong)
{
    tg_tensor *W = tg_param_new(3, 2);
    fill_uniform(W, -1.0f, 1.0f, 8);
    tg_grad_check_result r;
    wrongness = 1.05f;
    ck_assert_int_eq(tg_grad_check(cube_on_input_loss, W, &W, 1, 1e-2f, &r, NULL), 0);
    wrongness = 1.0f;
    ck_assert_msg(r.worst > GRADCHECK_TOLERANCE, "a 5%% error gave only %g", r.worst);
    ck_assert_int_eq(r.tensor, 1);               /* the first tg_input, after 1 parameter */
    tg_param_free(W);
}
END_TEST

START_TEST(test_grad_check_leaves_params_data_and_grads_as_before)
{
    model m = model_new(0);
    for (long k = 0; k < count(m.W); k++)
        m.W->grad[k] = (float)k + 0.25f;
    float data[6], grad[6];
    memcpy(data, m.W->data, sizeof data);
    memcpy(grad, m.W->grad, sizeof grad);
    tg_grad_check_result r;
    ck_assert_int_eq(tg_grad_check(model_loss, &m, &m.W, 1, 1e-2f, &r, NULL), 0);
    ck_assert_mem_eq(m.W->data, data, sizeof data);
    ck_assert_mem_eq(m.W->grad, grad, sizeof grad);
    tg_param_free(m.W);
}
END_TEST

static tg_tensor *failing_loss(tg_tape *tape, void *ctx)
{
    (void)ctx;
    tg_tensor *a = tg_input(tape, 2, 3, NULL), *b = tg_input(tape, 3, 2, NULL);
    return tg_mse(tape, a, b);
}

static tg_tensor *not_scalar_loss(tg_tape *tape, void *ctx)
{
    return tg_tanh(tape, tg_matmul(tape, ctx, tg_input(tape, 2, 2, X)));
}

START_TEST(test_grad_check_refuses_bad_arguments_and_failing_losses)
{
    model m = model_new(0);
    tg_grad_check_result r;
    tg_error err;
    ck_assert_int_eq(tg_grad_check(model_loss, &m, &m.W, 1, 0.0f, &r, &err), -1);
    ck_assert_str_eq(err.message, "tg_grad_check: step must be positive and finite, got 0");
    ck_assert_int_eq(tg_grad_check(NULL, &m, &m.W, 1, 1e-2f, &r, &err), -1);
    ck_assert_str_eq(err.message, "tg_grad_check: loss is NULL");
    tg_tensor *not_param[] = { NULL };
    ck_assert_int_eq(tg_grad_check(model_loss, &m, not_param, 1, 1e-2f, &r, &err), -1);
    ck_assert_str_eq(err.message, "tg_grad_check: params[0] is not a parameter (tg_param_new)");
    ck_assert_int_eq(tg_grad_check(failing_loss, NULL, NULL, 0, 1e-2f, &r, &err), -1);
    ck_assert_str_eq(err.message, "tg_grad_check: the backward failed: tg_mse: shapes differ: "
                                  "2x3 and 3x2");
    ck_assert_int_eq(tg_grad_check(not_scalar_loss, m.W, &m.W, 1, 1e-2f, &r, &err), -1);
    ck_assert_str_eq(err.message, "tg_grad_check: the backward failed: tg_backward: loss must "
                                  "be 1x1, got 3x2");
    tg_param_free(m.W);
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

Suite *extend_suite(void)
{
    Suite *s = suite_create("extend");
    TCase *op = tcase_create("user_op");
    tcase_add_test(op, test_record_keeps_a_copy_of_the_state);
    tcase_add_test(op, test_an_op_on_constants_gets_no_grad_and_no_backward_call);
    tcase_add_test(op, test_record_refuses_a_result_over_the_size_limit);
    tcase_add_test(op, test_inputs_ok_refuses_a_bad_op_and_a_null_input);
    tcase_add_test(op, test_backward_memo_is_made_once_per_key_and_pass);
    suite_add_tcase(s, op);
    TCase *check = tcase_create("grad_check");
    tcase_add_test(check, test_user_op_backward_matches_finite_difference_over_params_and_inputs);
    tcase_add_test(check, test_grad_check_leaves_out_constants);
    tcase_add_test(check, test_grad_check_catches_a_backward_one_percent_off_and_says_where);
    tcase_add_test(check, test_grad_check_names_the_tg_input_whose_gradient_is_wrong);
    tcase_add_test(check, test_grad_check_leaves_params_data_and_grads_as_before);
    tcase_add_test(check, test_grad_check_refuses_bad_arguments_and_failing_losses);
    suite_add_tcase(s, check);
    return s;
}
