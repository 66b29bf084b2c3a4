/* test_lab.c: the gradient lab's instruments and claims: norm and value clipping on hand
 * cases, orthogonal init, the adding-problem generator, the rho^k bound on ||dL/dh_{T-k}||,
 * and a short adding-problem run that beats the 1/6 baseline. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "alloc_count.h"
#include "gradcheck.h"

START_TEST(test_clip_grad_norm_rescales_to_exactly_max_norm)
{
    tg_tensor *p = tg_param_new(1, 2);
    p->grad[0] = 30.0f;
    p->grad[1] = 40.0f;
    ck_assert_float_eq(tg_clip_grad_norm(&p, 1, 10.0f), 50.0f);
    ck_assert_float_eq_tol(p->grad[0], 6.0f, 1e-6f);
    ck_assert_float_eq_tol(p->grad[1], 8.0f, 1e-6f);
    tg_param_free(p);
}
END_TEST

START_TEST(test_clip_grad_norm_counts_every_parameter_and_leaves_small_norms_alone)
{
    tg_tensor *p = tg_param_new(1, 1), *q = tg_param_new(2, 1);
    tg_tensor *both[2] = { p, q };
    p->grad[0] = 2.0f;
    q->grad[0] = 3.0f;
    q->grad[1] = 6.0f; /* total norm 7 */
    ck_assert_float_eq(tg_clip_grad_norm(both, 2, 7.5f), 7.0f);
    ck_assert_float_eq(p->grad[0], 2.0f);
    ck_assert_float_eq(q->grad[1], 6.0f);
    ck_assert_float_eq(tg_clip_grad_norm(both, 2, 3.5f), 7.0f);
    ck_assert_float_eq_tol(p->grad[0], 1.0f, 1e-6f);
    ck_assert_float_eq_tol(q->grad[1], 3.0f, 1e-6f);
    tg_param_free(p);
    tg_param_free(q);
}
END_TEST

START_TEST(test_clip_grad_norm_leaves_nan_gradients_alone)
{
    tg_tensor *p = tg_param_new(1, 2);
    p->grad[0] = NAN;
    p->grad[1] = 40.0f;
    ck_assert(isnan(tg_clip_grad_norm(&p, 1, 1.0f)));
    ck_assert(isnan(p->grad[0]));
    ck_assert_float_eq(p->grad[1], 40.0f);
    p->grad[0] = INFINITY;
    ck_assert(isinf(tg_clip_grad_norm(&p, 1, 1.0f)));
    ck_assert_float_eq(p->grad[1], 40.0f);
    ck_assert_float_eq(tg_clip_grad_norm(NULL, 1, 1.0f), -1.0f);
    ck_assert_float_eq(tg_clip_grad_norm(&p, 1, 0.0f), -1.0f);
    ck_assert_float_eq(tg_clip_grad_norm(&p, 1, NAN), -1.0f);
    tg_param_free(p);
}
END_TEST

START_TEST(test_clip_grad_value_clamps_each_value_and_keeps_nan)
{
    tg_tensor *p = tg_param_new(1, 5);
    const float before[5] = { -9.0f, -5.0f, 0.5f, 7.0f, NAN };
    for (int k = 0; k < 5; k++)
        p->grad[k] = before[k];
    tg_error err = { "stale" };
    ck_assert_int_eq(tg_clip_grad_value(&p, 1, 5.0f, &err), 2);
    ck_assert_str_eq(err.message, "");
    ck_assert_float_eq(p->grad[0], -5.0f);
    ck_assert_float_eq(p->grad[1], -5.0f);
    ck_assert_float_eq(p->grad[2], 0.5f);
    ck_assert_float_eq(p->grad[3], 5.0f);
    ck_assert(isnan(p->grad[4]));
    p->grad[2] = 9.0f;
    ck_assert_int_eq(tg_clip_grad_value(&p, 1, -1.0f, &err), -1);
    ck_assert_str_eq(err.message, "tg_clip_grad_value: limit is -1; it must be > 0");
    ck_assert_float_eq(p->grad[2], 9.0f);   /* refused: nothing clipped */
    tg_param_free(p);
}
END_TEST

START_TEST(test_grad_norm_is_the_l2_norm_of_the_grad)
{
    tg_tensor *p = tg_param_new(2, 2);
    p->grad[0] = 1.0f;
    p->grad[1] = 2.0f;
    p->grad[2] = 2.0f;
    p->grad[3] = 4.0f;
    ck_assert_float_eq_tol(tg_grad_norm(p), 5.0f, 1e-6f);
    ck_assert_float_eq(tg_grad_norm(NULL), 0.0f);
    tg_param_free(p);
}
END_TEST

/* Q^T Q (or Q Q^T for a wide matrix) equals gain^2 I. */
START_TEST(test_orthogonal_init_gives_orthonormal_rows_or_columns_times_gain)
{
    static const int shapes[3][2] = { { 6, 6 }, { 7, 3 }, { 3, 7 } };
    tg_rng rng = tg_rng_new(11);
    for (int s = 0; s < 3; s++) {
        int rows = shapes[s][0], cols = shapes[s][1];
        tg_tensor *t = tg_param_new(rows, cols);
        ck_assert_int_eq(tg_init_orthogonal(t, 1.5f, &rng, NULL), 0);
        int n = rows >= cols ? cols : rows, len = rows >= cols ? rows : cols;
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++) {
                double dot = 0.0;
                for (int k = 0; k < len; k++)
                    dot += rows >= cols ? (double)t->data[k * cols + a] * t->data[k * cols + b]
                                        : (double)t->data[a * cols + k] * t->data[b * cols + k];
                ck_assert_double_eq_tol(dot, a == b ? 2.25 : 0.0, 1e-5);
            }
        tg_param_free(t);
    }
}
END_TEST

/* The refused init `call` must return -1 with `want` as the message and leave t as it was
 * (every value 7). */
#define CHECK_INIT_REFUSED(call, want)                                                        \
    do {                                                                                     \
        tg_error err_ = { "" };                                                              \
        ck_assert_int_eq(call, -1);                                                          \
        ck_assert_str_eq(err_.message, want);                                                \
        for (int k_ = 0; k_ < 6; k_++)                                                       \
            ck_assert_float_eq(t->data[k_], 7.0f);                                           \
    } while (0)

START_TEST(test_init_refuses_bad_arguments_saying_why_and_changes_nothing)
{
    tg_tensor *t = tg_param_new(2, 3), no_data = { .rows = 1, .cols = 1 };
    for (int k = 0; k < 6; k++)
        t->data[k] = 7.0f;
    tg_rng rng = tg_rng_new(5);
    CHECK_INIT_REFUSED(tg_init_uniform(NULL, 0, 1, &rng, &err_), "tg_init_uniform: t is NULL");
    CHECK_INIT_REFUSED(tg_init_uniform(&no_data, 0, 1, &rng, &err_),
                       "tg_init_uniform: t has no data");
    CHECK_INIT_REFUSED(tg_init_uniform(t, 0, 1, NULL, &err_), "tg_init_uniform: rng is NULL");
    CHECK_INIT_REFUSED(tg_init_uniform(t, 1, -1, &rng, &err_),
                       "tg_init_uniform: [1, -1] is not a range (finite, lo <= hi)");
    CHECK_INIT_REFUSED(tg_init_uniform(t, NAN, 1, &rng, &err_),
                       "tg_init_uniform: [nan, 1] is not a range (finite, lo <= hi)");
    CHECK_INIT_REFUSED(tg_init_normal(t, 0, 1, NULL, &err_), "tg_init_normal: rng is NULL");
    CHECK_INIT_REFUSED(tg_init_normal(t, 0, -2, &rng, &err_),
                       "tg_init_normal: N(0, -2^2) is not a distribution (finite, std >= 0)");
    CHECK_INIT_REFUSED(tg_init_normal(t, INFINITY, 1, &rng, &err_),
                       "tg_init_normal: N(inf, 1^2) is not a distribution (finite, std >= 0)");
    CHECK_INIT_REFUSED(tg_init_orthogonal(NULL, 1, &rng, &err_), "tg_init_orthogonal: t is NULL");
    CHECK_INIT_REFUSED(tg_init_orthogonal(t, NAN, &rng, &err_),
                       "tg_init_orthogonal: gain is nan; it must be finite");
    tg_error err = { "" };
    alloc_fail_after(0);   /* no Check asserts until it is undone: they allocate */
    int status = tg_init_orthogonal(t, 1, &rng, &err);
    alloc_fail_after(-1);
    ck_assert_int_eq(status, -1);
    ck_assert_str_eq(err.message, "tg_init_orthogonal: out of memory for a 3x2 matrix of doubles");
    ck_assert_float_eq(t->data[0], 7.0f);
    err = (tg_error){ "stale" };
    ck_assert_int_eq(tg_init_normal(t, 0, 1, &rng, &err), 0);
    ck_assert_str_eq(err.message, "");
    ck_assert_float_ne(t->data[0], 7.0f);
    tg_param_free(t);
}
END_TEST

START_TEST(test_adding_problem_has_one_marker_per_half_and_sums_the_marked_values)
{
    enum { STEPS = 9, BATCH = 50 };
    float x[STEPS * 2 * BATCH], y[BATCH];
    tg_rng rng = tg_rng_new(4);
    ck_assert_int_eq(tg_task_adding(&rng, STEPS, BATCH, x, y, NULL), 0);
    for (int b = 0; b < BATCH; b++) {
        int first_half = 0, second_half = 0;
        float sum = 0.0f;
        for (int t = 0; t < STEPS; t++) {
            float value = x[t * 2 * BATCH + b], marker = x[t * 2 * BATCH + BATCH + b];
            ck_assert(value >= 0.0f && value < 1.0f);
            ck_assert(marker == 0.0f || marker == 1.0f);
            if (marker == 1.0f) {
                sum += value;
                first_half += t < STEPS / 2;
                second_half += t >= STEPS / 2;
            }
        }
        ck_assert_int_eq(first_half, 1);
        ck_assert_int_eq(second_half, 1);
        ck_assert_float_eq_tol(y[b], sum, 1e-6f);
    }
}
END_TEST

START_TEST(test_adding_problem_refuses_bad_arguments_saying_why_and_writes_nothing)
{
    enum { STEPS = 4, BATCH = 3 };
    float x[STEPS * 2 * BATCH], y[BATCH];
    for (int k = 0; k < STEPS * 2 * BATCH; k++)
        x[k] = -1.0f;
    for (int b = 0; b < BATCH; b++)
        y[b] = -1.0f;
    tg_rng rng = tg_rng_new(4);
    const struct { tg_rng *rng; int steps, batch; float *x, *y; const char *want; } bad[] = {
        { NULL, STEPS, BATCH, x, y, "tg_task_adding: rng is NULL" },
        { &rng, STEPS, BATCH, NULL, y, "tg_task_adding: x is NULL" },
        { &rng, STEPS, BATCH, x, NULL, "tg_task_adding: y is NULL" },
        { &rng, 1, BATCH, x, y,
          "tg_task_adding: steps is 1; it must be >= 2 (a marker in each half)" },
        { &rng, STEPS, 0, x, y, "tg_task_adding: batch is 0; it must be >= 1" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tg_error err = { "" };
        ck_assert_int_eq(tg_task_adding(bad[i].rng, bad[i].steps, bad[i].batch, bad[i].x, bad[i].y,
                                        &err), -1);
        ck_assert_str_eq(err.message, bad[i].want);
        for (int k = 0; k < STEPS * 2 * BATCH; k++)
            ck_assert_float_eq(x[k], -1.0f);
        for (int b = 0; b < BATCH; b++)
            ck_assert_float_eq(y[b], -1.0f);
    }
    tg_error err = { "stale" };
    ck_assert_int_eq(tg_task_adding(&rng, STEPS, BATCH, x, y, &err), 0);
    ck_assert_str_eq(err.message, "");
}
END_TEST

/* ---- the rho^k bound --------------------------------------------------------------------- */

enum { HIDDEN = 12, T = 40 };

/* Runs T steps of h_t = act(rho Q h_{t-1} + W_x x_t + b) from h_0 = 0 with inputs of size
 * input_scale, loss = sum(w * h_T), and writes ||dL/dh_{T-k}|| / ||dL/dh_T|| to ratio[k]. */
static void gradient_ratios(float rho, int use_tanh, float input_scale, double ratio[T])
{
    tg_rnn_cell *cell = tg_rnn_cell_new(3, HIDDEN, 1);
    tg_rng rng = tg_rng_new(2);
    tg_init_orthogonal(cell->W_h, rho, &rng, NULL);
    tg_tape *tape = tg_tape_new();
    tg_tensor *h[T + 1];
    h[0] = tg_input(tape, HIDDEN, 1, NULL);
    for (int t = 1; t <= T; t++) {
        tg_tensor *x = tg_input(tape, 3, 1, NULL);
        for (int k = 0; k < 3; k++)
            x->data[k] = input_scale * tg_rng_normal(&rng);
        tg_tensor *pre = tg_add(tape, tg_add(tape, tg_matmul(tape, cell->W_h, h[t - 1]),
                                             tg_matmul(tape, cell->W_x, x)), cell->b);
        h[t] = use_tanh ? tg_tanh(tape, pre) : pre;
    }
    tg_tensor *w = tg_input(tape, HIDDEN, 1, NULL);
    tg_init_uniform(w, -1.0f, 1.0f, &rng, NULL);
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, tg_mul(tape, w, h[T]))), 0);
    for (int k = 0; k < T; k++)
        ratio[k] = tg_grad_norm(h[T - k]) / tg_grad_norm(h[T]);
    tg_tape_free(tape);
    tg_rnn_cell_free(cell);
}

static const float RHOS[] = { 0.5f, 0.9f, 1.0f, 1.1f, 1.5f };

START_TEST(test_linear_cell_gradient_follows_rho_to_the_k_exactly)
{
    double ratio[T];
    gradient_ratios(RHOS[_i], 0, 1.0f, ratio);
    for (int k = 0; k < T; k++)
        ck_assert_double_eq_tol(ratio[k] / pow(RHOS[_i], k), 1.0, 1e-4);
}
END_TEST

START_TEST(test_tanh_cell_gradient_stays_at_or_below_rho_to_the_k)
{
    double ratio[T];
    gradient_ratios(RHOS[_i], 1, 1.0f, ratio);
    for (int k = 0; k < T; k++)
        ck_assert_double_le(ratio[k], pow(RHOS[_i], k) * (1.0 + 1e-4));
    ck_assert_double_lt(ratio[T - 1], 0.9 * pow(RHOS[_i], T - 1)); /* saturation bites */
}
END_TEST

START_TEST(test_tanh_cell_at_rho_one_with_tiny_inputs_keeps_the_gradient_near_one)
{
    double ratio[T];
    gradient_ratios(1.0f, 1, 1e-3f, ratio);
    for (int k = 0; k < T; k++)
        ck_assert_double_gt(ratio[k], 0.99);
}
END_TEST

/* ---- a short adding-problem run ---------------------------------------------------------- */

enum { ADD_STEPS = 10, ADD_HIDDEN = 32, ADD_BATCH = 32, ADD_TRAIN = 4000 };

/* MSE of readout(h_T) against the adding targets for one batch; trains when lr > 0. */
static float adding_batch(tg_tape *tape, tg_rnn_cell *cell, tg_tensor **params, tg_rng *rng, float lr)
{
    float x[ADD_STEPS * 2 * ADD_BATCH], y[ADD_BATCH];
    tg_task_adding(rng, ADD_STEPS, ADD_BATCH, x, y, NULL);
    tg_tape_reset(tape);
    tg_zero_grad(params, 5, NULL);
    tg_tensor *h = tg_input(tape, ADD_HIDDEN, ADD_BATCH, NULL);
    for (int t = 0; t < ADD_STEPS; t++)
        h = tg_rnn_cell_forward(tape, cell, tg_input(tape, 2, ADD_BATCH, x + t * 2 * ADD_BATCH), h);
    tg_tensor *pred = tg_add(tape, tg_matmul(tape, params[3], h), params[4]);
    tg_tensor *loss = tg_mse(tape, pred, tg_input(tape, 1, ADD_BATCH, y));
    if (lr > 0.0f && tg_backward(tape, loss) == 0) {
        tg_clip_grad_norm(params, 5, 1.0f);
        tg_sgd_step(params, 5, lr, NULL);
    }
    return loss ? loss->data[0] : NAN;
}

START_TEST(test_rnn_beats_the_adding_baseline_five_times_at_ten_steps)
{
    tg_rnn_cell *cell = tg_rnn_cell_new(2, ADD_HIDDEN, 7);
    tg_tensor *W_y = tg_param_new(1, ADD_HIDDEN), *b_y = tg_param_new(1, 1);
    fill_uniform(W_y, -0.2f, 0.2f, 8);
    tg_tensor *params[5] = { cell->W_h, cell->W_x, cell->b, W_y, b_y };
    tg_tape *tape = tg_tape_new();
    tg_rng rng = tg_rng_new(9);
    for (int i = 0; i < ADD_TRAIN; i++)
        adding_batch(tape, cell, params, &rng, 0.1f);
    double test_mse = 0.0;
    for (int i = 0; i < 20; i++)
        test_mse += adding_batch(tape, cell, params, &rng, 0.0f) / 20.0;
    ck_assert_msg(test_mse < (1.0 / 6.0) / 5.0, "test MSE %g, baseline 1/6", test_mse);
    tg_tape_free(tape);
    tg_param_free(W_y);
    tg_param_free(b_y);
    tg_rnn_cell_free(cell);
}
END_TEST

Suite *lab_suite(void)
{
    Suite *s = suite_create("lab");
    TCase *tools = tcase_create("instruments");
    tcase_add_test(tools, test_clip_grad_norm_rescales_to_exactly_max_norm);
    tcase_add_test(tools, test_clip_grad_norm_counts_every_parameter_and_leaves_small_norms_alone);
    tcase_add_test(tools, test_clip_grad_norm_leaves_nan_gradients_alone);
    tcase_add_test(tools, test_clip_grad_value_clamps_each_value_and_keeps_nan);
    tcase_add_test(tools, test_grad_norm_is_the_l2_norm_of_the_grad);
    tcase_add_test(tools, test_orthogonal_init_gives_orthonormal_rows_or_columns_times_gain);
    tcase_add_test(tools, test_init_refuses_bad_arguments_saying_why_and_changes_nothing);
    tcase_add_test(tools, test_adding_problem_has_one_marker_per_half_and_sums_the_marked_values);
    tcase_add_test(tools, test_adding_problem_refuses_bad_arguments_saying_why_and_writes_nothing);
    suite_add_tcase(s, tools);
    TCase *bound = tcase_create("rho^k bound");
    int n_rhos = (int)(sizeof RHOS / sizeof RHOS[0]);
    tcase_add_loop_test(bound, test_linear_cell_gradient_follows_rho_to_the_k_exactly, 0, n_rhos);
    tcase_add_loop_test(bound, test_tanh_cell_gradient_stays_at_or_below_rho_to_the_k, 0, n_rhos);
    tcase_add_test(bound, test_tanh_cell_at_rho_one_with_tiny_inputs_keeps_the_gradient_near_one);
    suite_add_tcase(s, bound);
    TCase *adding = tcase_create("adding problem");
    tcase_set_timeout(adding, 60);
    tcase_set_tags(adding, "slow"); /* minutes under valgrind: make valgrind leaves it out */
    tcase_add_test(adding, test_rnn_beats_the_adding_baseline_five_times_at_ten_steps);
    suite_add_tcase(s, adding);
    return s;
}
