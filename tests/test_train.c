/* test_train.c: BPTT and SGD really train: on next-value prediction of sine waves the loss
 * of a fixed-seed run falls below a fixed threshold in a fixed number of steps. (It starts
 * near 0.54 and settles near 0.02: the first steps of a sequence cannot be predicted.) */
#include <check.h>
#include <math.h>

#include "gradcheck.h"

enum { HIDDEN = 16, BATCH = 8, STEPS = 15, TRAIN_STEPS = 300 };

/* Sequences sin(f t + phase) with a random f and phase per column; x_t is the value at t,
 * the target the value at t + 1. */
static void make_batch(tg_rng *rng, float x[STEPS + 1][BATCH])
{
    for (int b = 0; b < BATCH; b++) {
        float f = 0.2f + 0.4f * tg_rng_uniform(rng), phase = 6.2831853f * tg_rng_uniform(rng);
        for (int t = 0; t <= STEPS; t++)
            x[t][b] = sinf(f * (float)t + phase);
    }
}

/* One step: forward over the batch, loss = mean over t of mse(W_y h_t + b_y, x_{t+1}),
 * backward, SGD. Returns the loss. */
static float train_step(tg_tape *tape, tg_rnn_cell *cell, tg_tensor **params, tg_rng *rng)
{
    float x[STEPS + 1][BATCH];
    make_batch(rng, x);
    tg_tape_reset(tape);
    tg_zero_grad(params, 5, NULL);
    tg_tensor *h = tg_input(tape, HIDDEN, BATCH, NULL), *loss = NULL;
    for (int t = 0; t < STEPS; t++) {
        h = tg_rnn_cell_forward(tape, cell, tg_input(tape, 1, BATCH, x[t]), h);
        tg_tensor *pred = tg_add(tape, tg_matmul(tape, params[3], h), params[4]);
        tg_tensor *step_loss = tg_mse(tape, pred, tg_input(tape, 1, BATCH, x[t + 1]));
        loss = loss ? tg_add(tape, loss, step_loss) : step_loss;
    }
    loss = tg_scale(tape, loss, 1.0f / STEPS);
    ck_assert_int_eq(tg_backward(tape, loss), 0);
    ck_assert_int_eq(tg_sgd_step(params, 5, 0.1f, NULL), 0);
    return loss->data[0];
}

START_TEST(test_sine_prediction_loss_falls_below_threshold)
{
    tg_rnn_cell *cell = tg_rnn_cell_new(1, HIDDEN, 1);
    tg_tensor *W_y = tg_param_new(1, HIDDEN), *b_y = tg_param_new(1, 1);
    fill_uniform(W_y, -0.25f, 0.25f, 2);
    tg_tensor *params[5] = { cell->W_h, cell->W_x, cell->b, W_y, b_y };
    tg_tape *tape = tg_tape_new();
    tg_rng rng = tg_rng_new(3);
    float first = train_step(tape, cell, params, &rng), last = first;
    for (int i = 1; i < TRAIN_STEPS; i++)
        last = train_step(tape, cell, params, &rng);
    ck_assert_msg(last < 0.03f && last < first / 10.0f, "loss went from %g to %g", first, last);
    tg_tape_free(tape);
    tg_param_free(W_y);
    tg_param_free(b_y);
    tg_rnn_cell_free(cell);
}
END_TEST

Suite *train_suite(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sine_prediction_loss_falls_below_threshold);
    suite_add_tcase(s, tc);
    return s;
}
