/* test_gradcheck.c: tg_grad_check (src/gradcheck.c) on a user's op (tests/support/user_cube.c):
 * it passes a right backward over parameters and tg_input tensors, leaves constants out,
 * catches a backward 1% off and says where, leaves the parameters as they were, and refuses
 * bad arguments and failing losses, saying why. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "gradcheck.h"
#include "user_cube.h"

static long count(const tg_tensor *t) { return (long)t->rows * t->cols; }

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

Suite *gradcheck_suite(void)
{
    Suite *s = suite_create("gradcheck");
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
