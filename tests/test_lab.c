/* test_lab.c: the gradient lab's claims (examples/lab_*.c, docs/bptt.md), which take the tape,
 * the RNN cell, the inits and the tasks together: the rho^k bound on ||dL/dh_{T-k}||, and a
 * short adding-problem run that beats the 1/6 baseline. Not one module's suite: the lab's. */
#include <check.h>
#include <math.h>

#include "gradcheck.h"

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
