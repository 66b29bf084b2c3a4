/* test_optim.c: src/optim.c. Zeroing, SGD and clipping refuse NULL and constants, saying why;
 * tg_sgd_step refuses an update that would overflow, moving no weight; norm and value clipping
 * and the gradient norm on hand cases and at float's limits (a norm beyond FLT_MAX still
 * clips; a NaN or Inf gradient gives NaN). tg_optimizer (SGD, momentum, Adagrad, Adam): the
 * first three updates of each match arithmetic done by hand, and TG_SGD's match tg_sgd_step's
 * bit for bit; Adam's first step is lr * sign(g); every case of tests/fixtures/optimizers.txt
 * matches torch.optim, and the comparison catches an lr 1% off; a step refuses bad gradients,
 * bad settings and overflow of a weight or the state with nothing changed and says why; the
 * constructor rejects bad arguments, saying why; a step allocates nothing; Adam trains an
 * ill-scaled regression further than SGD. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "alloc_count.h"
#include "fixture.h"
#include "tapegrad.h"

/* ---- zeroing, SGD, norms and clipping -------------------------------------------------------- */

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

START_TEST(test_parameter_calls_refuse_a_tensor_without_grad)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *w = tg_param_new(1, 2), *c = tg_constant(tape, 1, 2, (float[]){ 1, 2 });
    w->grad[0] = 3.0f;
    tg_tensor *both[2] = { w, c };
    const char *why = "params[1] has no grad (a tg_constant has no grad)";
    tg_error err;
    ck_assert_int_eq(tg_sgd_step(both, 2, 0.1f, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.message, why));
    ck_assert_float_eq(w->data[0], 0.0f);
    ck_assert_int_eq(tg_zero_grad(both, 2, &err), -1);
    ck_assert_str_eq(err.message,
                     "tg_zero_grad: params[1] has no grad (a tg_constant has no grad)");
    ck_assert_float_eq(w->grad[0], 3.0f);
    ck_assert_float_eq(tg_clip_grad_norm(both, 2, 1.0f), -1.0f);
    ck_assert_int_eq(tg_clip_grad_value(both, 2, 1.0f, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.message, why));
    ck_assert_float_eq(w->grad[0], 3.0f);
    ck_assert_float_eq(tg_grad_norm(c), 0.0f);
    tg_tape_free(tape);
    tg_param_free(w);
}
END_TEST

/* Finite gradients and lr whose update leaves float's range: 3e38 - 1 * -3e38, and
 * 0.5 - 1e10 * 1e30. The step is refused, saying where and what the weight would become,
 * and no weight moves, not even those of the parameters before the one that overflows. */
START_TEST(test_sgd_step_refuses_an_update_that_would_overflow_and_changes_nothing)
{
    tg_tensor *p = tg_param_new(1, 2), *q = tg_param_new(1, 1);
    tg_tensor *both[2] = { p, q };
    p->data[0] = 1.0f;
    p->data[1] = 3e38f;
    p->grad[0] = 1.0f;
    p->grad[1] = -3e38f;
    q->data[0] = 0.5f;
    tg_error err;
    ck_assert_int_eq(tg_sgd_step(both, 2, 1.0f, &err), -1);
    ck_assert_str_eq(err.message, "tg_sgd_step: the update of params[0] at value 1 (weight 3e+38, "
                     "gradient -3e+38) would make the weight +Inf; nothing changed");
    ck_assert_float_eq(p->data[0], 1.0f);
    ck_assert_float_eq(p->data[1], 3e38f);

    p->grad[1] = 0.0f;
    q->grad[0] = 1e30f;
    ck_assert_int_eq(tg_sgd_step(both, 2, 1e10f, &err), -1);
    ck_assert_str_eq(err.message, "tg_sgd_step: the update of params[1] at value 0 (weight 0.5, "
                     "gradient 1e+30) would make the weight -Inf; nothing changed");
    ck_assert_float_eq(p->data[0], 1.0f);   /* params[0] alone would have been finite */
    ck_assert_float_eq(p->data[1], 3e38f);
    ck_assert_float_eq(q->data[0], 0.5f);

    q->grad[0] = 2.0f;   /* a finite step goes through and clears the message */
    ck_assert_int_eq(tg_sgd_step(both, 2, 0.25f, &err), 0);
    ck_assert_str_eq(err.message, "");
    ck_assert_float_eq(p->data[0], 0.75f);
    ck_assert_float_eq(q->data[0], 0.0f);
    tg_param_free(p);
    tg_param_free(q);
}
END_TEST

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

/* Four gradients of 2e38: their norm, 4e38, is beyond FLT_MAX but finite in double, so they
 * are clipped all the same, and the norm comes back as +Inf, the float it rounds to. A scale
 * below float's normal range (3e38 down to 1e-3: a factor of 3.3e-42) keeps its precision. */
START_TEST(test_clip_grad_norm_clips_finite_gradients_whose_norm_overflows_float)
{
    tg_tensor *p = tg_param_new(2, 2), *q = tg_param_new(1, 1);
    for (int k = 0; k < 4; k++)
        p->grad[k] = 2e38f;
    float norm = tg_clip_grad_norm(&p, 1, 1.0f);
    ck_assert_msg(isinf(norm) && norm > 0.0f, "norm %g, want +Inf", norm);
    for (int k = 0; k < 4; k++)
        ck_assert_float_eq_tol(p->grad[k], 0.5f, 1e-7f);
    ck_assert_float_eq_tol(tg_grad_norm(p), 1.0f, 1e-6f);
    q->grad[0] = -3e38f;
    ck_assert_float_eq(tg_clip_grad_norm(&q, 1, 1e-3f), 3e38f);
    ck_assert_float_eq_tol(q->grad[0], -1e-3f, 1e-9f);
    tg_param_free(p);
    tg_param_free(q);
}
END_TEST

/* A NaN or an infinite gradient makes the norm NaN: returned as NaN, the grads left as they
 * are, so that the caller skips the step (an overflowing norm of finite grads is +Inf). */
START_TEST(test_clip_grad_norm_returns_nan_for_nan_or_inf_gradients_and_leaves_them)
{
    tg_tensor *p = tg_param_new(1, 2);
    const float bad[] = { NAN, INFINITY, -INFINITY };
    for (int b = 0; b < 3; b++) {
        p->grad[0] = bad[b];
        p->grad[1] = 40.0f;
        float norm = tg_clip_grad_norm(&p, 1, 1.0f);
        ck_assert_msg(isnan(norm), "gradient %g: norm %g, want NaN", bad[b], norm);
        ck_assert_mem_eq(&p->grad[0], &bad[b], sizeof(float));
        ck_assert_float_eq(p->grad[1], 40.0f);
    }
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

/* At the ends of float's range: squares of 2e38 overflow float and squares of 1e-30 underflow
 * it, but the norm is summed in double; a norm beyond FLT_MAX is +Inf. Value clipping at
 * FLT_MAX cuts only the infinities, and at +Inf cuts nothing. */
START_TEST(test_grad_norm_and_clip_grad_value_hold_at_the_float_limits)
{
    tg_tensor *p = tg_param_new(1, 4);
    const float big[4] = { 2e38f, -2e38f, 0.0f, 0.0f };
    memcpy(p->grad, big, sizeof big);
    ck_assert_float_eq_tol(tg_grad_norm(p), 2.8284271e38f, 1e32f);
    p->grad[2] = p->grad[3] = 2e38f;
    float norm = tg_grad_norm(p);
    ck_assert_msg(isinf(norm) && norm > 0.0f, "norm %g, want +Inf", norm);
    for (int k = 0; k < 4; k++)
        p->grad[k] = 1e-30f;
    ck_assert_float_eq_tol(tg_grad_norm(p), 2e-30f, 1e-36f);

    const float limits[4] = { FLT_MAX, -FLT_MAX, INFINITY, -INFINITY };
    memcpy(p->grad, limits, sizeof limits);
    ck_assert_int_eq(tg_clip_grad_value(&p, 1, INFINITY, NULL), 0);
    ck_assert_mem_eq(p->grad, limits, sizeof limits);
    ck_assert_int_eq(tg_clip_grad_value(&p, 1, FLT_MAX, NULL), 2);
    ck_assert_float_eq(p->grad[2], FLT_MAX);
    ck_assert_float_eq(p->grad[3], -FLT_MAX);
    ck_assert_float_eq(p->grad[0], FLT_MAX);
    tg_param_free(p);
}
END_TEST

#define OPT_FIXTURE_PATH "tests/fixtures/optimizers.txt"   /* tests run from the repo root */

#define OPT_TOLERANCE 1e-6                                 /* relative error, defined below */

static const tg_optimizer_kind all_kinds[] = { TG_SGD, TG_MOMENTUM, TG_ADAGRAD, TG_ADAM };

static const char *const kind_names[] = { "sgd", "momentum", "adagrad", "adam" };

static const char *const kind_macros[] = { "TG_SGD", "TG_MOMENTUM", "TG_ADAGRAD", "TG_ADAM" };

static tg_tensor *param_with(int rows, int cols, const float *values)
{
    tg_tensor *p = tg_param_new(rows, cols);
    if (p && values)
        memcpy(p->data, values, (size_t)rows * (size_t)cols * sizeof(float));
    return p;
}

/* tg_sgd_step and tg_optimizer's TG_SGD work p - lr g out the same way (in double, rounded
 * once), so over three steps on 64 random values their weights agree bit for bit. */
START_TEST(test_sgd_step_makes_the_same_update_as_tg_optimizer_sgd)
{
    tg_rng rng = tg_rng_new(7);
    tg_tensor *p = tg_param_new(8, 8), *q = tg_param_new(8, 8);
    for (int k = 0; k < 64; k++)
        p->data[k] = q->data[k] = 4.0f * tg_rng_uniform(&rng) - 2.0f;
    tg_optimizer *sgd = tg_optimizer_new(TG_SGD, &q, 1, 0.1f, NULL);
    for (int step = 0; step < 3; step++) {
        for (int k = 0; k < 64; k++)
            p->grad[k] = q->grad[k] = 6.0f * tg_rng_uniform(&rng) - 3.0f;
        ck_assert_int_eq(tg_sgd_step(&p, 1, 0.1f, NULL), 0);
        ck_assert_int_eq(tg_optimizer_step(sgd, NULL), 0);
        ck_assert_mem_eq(p->data, q->data, 64 * sizeof(float));
    }
    tg_optimizer_free(sgd);
    tg_param_free(p);
    tg_param_free(q);
}
END_TEST

/* ---- the first three updates, worked out by hand --------------------------------------------- */

/* Runs three steps of opt on the 2-value parameter p with grads[t] and checks the values
 * after each step against want[t] (within 1e-6 of max(|want|, 1)). */
static void check_three_steps(tg_optimizer *opt, tg_tensor *p, const float grads[3][2],
                              const double want[3][2])
{
    for (int t = 0; t < 3; t++) {
        memcpy(p->grad, grads[t], sizeof grads[t]);
        tg_error err = { "stale" };
        ck_assert_int_eq(tg_optimizer_step(opt, &err), 0);
        ck_assert_str_eq(err.message, "");   /* a step that succeeds clears the message */
        ck_assert_int_eq(opt->steps, t + 1);
        for (int k = 0; k < 2; k++) {
            double allowed = OPT_TOLERANCE * fmax(fabs(want[t][k]), 1.0);
            ck_assert_msg(fabs(p->data[k] - want[t][k]) <= allowed,
                          "%s step %d value %d: got %.9g, want %.9g", kind_names[opt->kind],
                          t + 1, k, p->data[k], want[t][k]);
        }
    }
}

START_TEST(test_sgd_first_three_updates_match_hand_arithmetic)
{
    /* p -= lr g with lr = 0.5 */
    tg_tensor *p = param_with(1, 2, (float[]){ 1.0f, -2.0f });
    tg_optimizer *opt = tg_optimizer_new(TG_SGD, &p, 1, 0.5f, NULL);
    const float g[3][2] = { { 0.5f, -1.0f }, { 0.25f, 2.0f }, { -1.0f, 0.0f } };
    const double want[3][2] = {
        { 1.0 - 0.5 * 0.5, -2.0 - 0.5 * -1.0 },       /* 0.75, -1.5 */
        { 0.75 - 0.5 * 0.25, -1.5 - 0.5 * 2.0 },      /* 0.625, -2.5 */
        { 0.625 - 0.5 * -1.0, -2.5 - 0.5 * 0.0 },     /* 1.125, -2.5 */
    };
    check_three_steps(opt, p, g, want);
    tg_optimizer_free(opt);
    tg_param_free(p);
}
END_TEST

START_TEST(test_momentum_first_three_updates_match_hand_arithmetic)
{
    /* v = g on step 1, then v = momentum v + g (no dampening); p -= lr v; lr = momentum = 0.5.
     * A dampened rule (v = m v + (1 - m) g) would give v = 1 at step 2, not 1.5. */
    tg_tensor *p = param_with(1, 2, (float[]){ 1.0f, -1.0f });
    tg_optimizer *opt = tg_optimizer_new(TG_MOMENTUM, &p, 1, 0.5f, NULL);
    opt->momentum = 0.5f;
    const float g[3][2] = { { 1.0f, 2.0f }, { 1.0f, -2.0f }, { 0.0f, 1.0f } };
    const double want[3][2] = {
        /* v = (1, 2) */
        { 1.0 - 0.5 * 1.0, -1.0 - 0.5 * 2.0 },        /* 0.5, -2 */
        /* v = 0.5 (1, 2) + (1, -2) = (1.5, -1) */
        { 0.5 - 0.5 * 1.5, -2.0 - 0.5 * -1.0 },       /* -0.25, -1.5 */
        /* v = 0.5 (1.5, -1) + (0, 1) = (0.75, 0.5) */
        { -0.25 - 0.5 * 0.75, -1.5 - 0.5 * 0.5 },     /* -0.625, -1.75 */
    };
    check_three_steps(opt, p, g, want);
    tg_optimizer_free(opt);
    tg_param_free(p);
}
END_TEST

START_TEST(test_adagrad_first_three_updates_match_hand_arithmetic)
{
    /* s += g^2; p -= lr g / (sqrt(s) + eps); lr = 0.5 and eps = 0.5, large enough that
     * sqrt(s + eps) in its place would be far off. */
    tg_tensor *p = param_with(1, 2, (float[]){ 1.0f, -1.0f });
    tg_optimizer *opt = tg_optimizer_new(TG_ADAGRAD, &p, 1, 0.5f, NULL);
    opt->eps = 0.5f;
    const float g[3][2] = { { 3.0f, 1.5f }, { 4.0f, 2.0f }, { 0.0f, 6.0f } };
    const double want[3][2] = {
        /* s = (9, 2.25), sqrt(s) = (3, 1.5) */
        { 1.0 - 0.5 * 3.0 / (3.0 + 0.5), -1.0 - 0.5 * 1.5 / (1.5 + 0.5) },
        /* s = (9 + 16, 2.25 + 4) = (25, 6.25), sqrt(s) = (5, 2.5) */
        { 1.0 - 3.0 / 7.0 - 0.5 * 4.0 / (5.0 + 0.5), -1.375 - 0.5 * 2.0 / (2.5 + 0.5) },
        /* s = (25 + 0, 6.25 + 36) = (25, 42.25), sqrt(s) = (5, 6.5); no gradient, no move */
        { 1.0 - 3.0 / 7.0 - 4.0 / 11.0, -1.375 - 1.0 / 3.0 - 0.5 * 6.0 / (6.5 + 0.5) },
    };
    check_three_steps(opt, p, g, want);
    tg_optimizer_free(opt);
    tg_param_free(p);
}
END_TEST

START_TEST(test_adam_first_three_updates_match_hand_arithmetic)
{
    /* m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
     * p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)   (torch.optim.Adam)
     * with lr = 0.1, b1 = 0.5, b2 = 0.75 and eps = 0.5. Each value's gradient keeps its size,
     * so sqrt(v) / sqrt(1 - b2^t) is that size at every step; eps is large so that adding it
     * before the bias correction ((sqrt(v) + eps) / sqrt(1 - b2^t)) would be far off. */
    tg_tensor *p = param_with(1, 2, (float[]){ 1.0f, -1.0f });
    tg_optimizer *opt = tg_optimizer_new(TG_ADAM, &p, 1, 0.1f, NULL);
    opt->beta1 = 0.5f;
    opt->beta2 = 0.75f;
    opt->eps = 0.5f;
    const float g[3][2] = { { 2.0f, 0.5f }, { -2.0f, 0.5f }, { 2.0f, 0.5f } };
    const double want[3][2] = {
        /* t = 1: 1 - b1 = 0.5, 1 - b2 = 0.25; step size 0.1 / 0.5 = 0.2
         * value 0: m = 0.5 * 2 = 1, v = 0.25 * 4 = 1, denom = 1 / 0.5 + 0.5 = 2.5
         * value 1: m = 0.25, v = 0.0625, denom = 0.25 / 0.5 + 0.5 = 1 */
        { 1.0 - 0.2 * 1.0 / 2.5, -1.0 - 0.2 * 0.25 / 1.0 },          /* 0.92, -1.05 */
        /* t = 2: 1 - b1^2 = 0.75, 1 - b2^2 = 0.4375; step size 0.1 / 0.75 = 2/15
         * value 0: m = 0.5 * 1 + 0.5 * -2 = -0.5, v = 0.75 * 1 + 0.25 * 4 = 1.75,
         *          sqrt(1.75 / 0.4375) = 2, denom = 2.5
         * value 1: m = 0.5 * 0.25 + 0.5 * 0.5 = 0.375, v = 0.75 * 0.0625 + 0.25 * 0.25
         *          = 0.109375, sqrt(0.109375 / 0.4375) = 0.5, denom = 1 */
        { 0.92 - (2.0 / 15.0) * -0.5 / 2.5, -1.05 - (2.0 / 15.0) * 0.375 / 1.0 },
        /* t = 3: 1 - b1^3 = 0.875, 1 - b2^3 = 0.578125; step size 0.1 / 0.875 = 4/35
         * value 0: m = 0.5 * -0.5 + 0.5 * 2 = 0.75, v = 0.75 * 1.75 + 1 = 2.3125,
         *          sqrt(2.3125 / 0.578125) = 2, denom = 2.5
         * value 1: m = 0.5 * 0.375 + 0.25 = 0.4375, v = 0.75 * 0.109375 + 0.0625
         *          = 0.14453125, sqrt(0.14453125 / 0.578125) = 0.5, denom = 1 */
        { 0.92 + (2.0 / 15.0) * 0.5 / 2.5 - (4.0 / 35.0) * 0.75 / 2.5,
          -1.05 - (2.0 / 15.0) * 0.375 - (4.0 / 35.0) * 0.4375 / 1.0 },
    };
    check_three_steps(opt, p, g, want);
    tg_optimizer_free(opt);
    tg_param_free(p);
}
END_TEST

START_TEST(test_adam_first_step_is_lr_times_sign_of_gradient)
{
    /* After one step m / (1 - b1) = g and sqrt(v / (1 - b2)) = |g| for any betas, so
     * p1 - p0 = -lr g / (|g| + eps): -lr sign(g) up to lr eps / |g|. */
    const float betas[][2] = {
        { 0.9f, 0.999f }, { 0.5f, 0.75f }, { 0.0f, 0.0f }, { 0.99f, 0.9999f },
    };
    const float grads[] = { 1e-3f, -0.5f, 7.0f, -300.0f, 2e4f };
    const float lr = 0.01f, eps = 1e-8f;
    for (int b = 0; b < 4; b++)
        for (int i = 0; i < 5; i++) {
            tg_tensor *p = tg_param_new(1, 1);
            tg_optimizer *opt = tg_optimizer_new(TG_ADAM, &p, 1, lr, NULL);
            opt->beta1 = betas[b][0];
            opt->beta2 = betas[b][1];
            opt->eps = eps;
            p->grad[0] = grads[i];
            ck_assert_int_eq(tg_optimizer_step(opt, NULL), 0);
            double want = grads[i] > 0 ? -lr : lr;
            double allowed = lr * (eps / fabs(grads[i]) + 1e-6);
            ck_assert_msg(fabs(p->data[0] - want) <= allowed,
                          "betas (%g, %g), g = %g: moved %.9g, want %.9g", betas[b][0],
                          betas[b][1], grads[i], p->data[0], want);
            tg_optimizer_free(opt);
            tg_param_free(p);
        }
}
END_TEST

/* ---- PyTorch's values ------------------------------------------------------------------------ */

static fixture_set *opt_fixtures;   /* loaded by opt_setup for each test */

static void opt_setup(void)
{
    char err[512];
    opt_fixtures = fixture_load(OPT_FIXTURE_PATH, err, sizeof err);
    ck_assert_msg(opt_fixtures != NULL, "%s", err);
}

static void opt_teardown(void)
{
    fixture_free(opt_fixtures);
    opt_fixtures = NULL;
}

/* The kind named by the part of a case name before its first '_' (gen_optimizer_fixtures.py). */
static bool kind_of_case(const char *name, tg_optimizer_kind *kind)
{
    for (int k = 0; k < 4; k++) {
        size_t n = strlen(kind_names[k]);
        if (strncmp(name, kind_names[k], n) == 0 && name[n] == '_') {
            *kind = all_kinds[k];
            return true;
        }
    }
    return false;
}

/* The relative error of one step: max |ours - ref| / max(max |ref|, 1e-3) over its values.
 * Dividing by the largest value, not value by value, keeps a value that passes near zero
 * from turning float rounding into a large ratio. A non-finite value of ours gives INFINITY. */
static double step_error(const float *ours, const double *ref, int n)
{
    double worst = 0.0, scale = 1e-3;
    for (int k = 0; k < n; k++) {
        if (!isfinite(ours[k]))
            return INFINITY;
        worst = fmax(worst, fabs(ours[k] - ref[k]));
        scale = fmax(scale, fabs(ref[k]));
    }
    return worst / scale;
}

/* Runs one fixture case with the case's lr times lr_factor and returns the worst step error,
 * or -1 with a message in err when the case cannot be run. */
static double run_fixture_case(const fixture_case *c, float lr_factor, char *err, size_t size)
{
    tg_optimizer_kind kind;
    if (!kind_of_case(c->name, &kind)) {
        snprintf(err, size, "case %s: no optimizer kind in its name", c->name);
        return -1.0;
    }
    int n = c->input * c->hidden, steps = c->steps;
    const double *lr = fixture_values(c, "lr", 1, err, size);
    const double *p0 = lr ? fixture_values(c, "p0", n, err, size) : NULL;
    const double *g = p0 ? fixture_values(c, "g", steps * n, err, size) : NULL;
    const double *want = g ? fixture_values(c, "p", steps * n, err, size) : NULL;
    const double *momentum = NULL, *betas = NULL, *eps = NULL;
    if (want && kind == TG_MOMENTUM)
        momentum = fixture_values(c, "momentum", 1, err, size);
    if (want && kind == TG_ADAM)
        betas = fixture_values(c, "betas", 2, err, size);
    if (want && (kind == TG_ADAGRAD || kind == TG_ADAM))
        eps = fixture_values(c, "eps", 1, err, size);
    if (!want || (kind == TG_MOMENTUM && !momentum) || (kind == TG_ADAM && !betas) ||
        ((kind == TG_ADAGRAD || kind == TG_ADAM) && !eps))
        return -1.0;

    tg_tensor *p = tg_param_new(c->input, c->hidden);
    tg_optimizer *opt = tg_optimizer_new(kind, &p, 1, (float)*lr * lr_factor, NULL);
    if (!opt) {
        snprintf(err, size, "case %s: tg_optimizer_new failed", c->name);
        tg_param_free(p);
        return -1.0;
    }
    if (momentum)
        opt->momentum = (float)*momentum;
    if (betas) {
        opt->beta1 = (float)betas[0];
        opt->beta2 = (float)betas[1];
    }
    if (eps)
        opt->eps = (float)*eps;
    for (int k = 0; k < n; k++)
        p->data[k] = (float)p0[k];
    double worst = 0.0;
    for (int t = 0; t < steps; t++) {
        for (int k = 0; k < n; k++)
            p->grad[k] = (float)g[t * n + k];
        if (tg_optimizer_step(opt, NULL) != 0) {
            snprintf(err, size, "case %s: step %d refused", c->name, t + 1);
            worst = -1.0;
            break;
        }
        double e = step_error(p->data, want + t * n, n);
        if (!(e <= worst)) {
            worst = e;
            snprintf(err, size, "case %s: worst relative error %.3g after step %d", c->name,
                     e, t + 1);
        }
    }
    tg_optimizer_free(opt);
    tg_param_free(p);
    return worst;
}

START_TEST(test_every_optimizer_matches_pytorch_fixtures)
{
    ck_assert_int_gt(opt_fixtures->n_cases, 0);
    for (int i = 0; i < opt_fixtures->n_cases; i++) {
        char err[256] = "";
        double worst = run_fixture_case(&opt_fixtures->cases[i], 1.0f, err, sizeof err);
        ck_assert_msg(worst >= 0.0, "%s", err);
        ck_assert_msg(worst <= OPT_TOLERANCE, "%s > %g", err, OPT_TOLERANCE);
    }
}
END_TEST

START_TEST(test_fixture_comparison_catches_an_lr_one_percent_off)
{
    for (int i = 0; i < opt_fixtures->n_cases; i++) {
        char err[256] = "";
        double worst = run_fixture_case(&opt_fixtures->cases[i], 1.01f, err, sizeof err);
        ck_assert_msg(worst > OPT_TOLERANCE, "case %s: with lr 1%% off the comparison passes "
                      "(%s)", opt_fixtures->cases[i].name, err);
    }
}
END_TEST

START_TEST(test_fixture_file_covers_every_kind)
{
    int cases_of_kind[4] = { 0 };
    for (int i = 0; i < opt_fixtures->n_cases; i++) {
        tg_optimizer_kind kind;
        ck_assert_msg(kind_of_case(opt_fixtures->cases[i].name, &kind), "case %s names no kind",
                      opt_fixtures->cases[i].name);
        cases_of_kind[kind]++;
        ck_assert_int_ge(opt_fixtures->cases[i].steps, 5);
    }
    for (int k = 0; k < 4; k++)
        ck_assert_msg(cases_of_kind[k] > 0, "no %s case in " OPT_FIXTURE_PATH, kind_names[k]);
}
END_TEST

/* ---- refusals: nothing changes --------------------------------------------------------------- */

/* Two identical models: a 2x2 and a 1x3 parameter, each with its optimizer. One of them gets
 * the refused step; afterwards both must go on exactly alike, which shows that neither the
 * weights nor the optimizer's state nor its step count moved. */
typedef struct twin {
    tg_tensor *params[2];
    tg_optimizer *opt;
} twin;

static const float twin_start[7] = { 0.5f, -0.25f, 1.0f, -1.5f, 0.125f, 2.0f, -0.75f };

static void twin_init(twin *m, tg_optimizer_kind kind)
{
    m->params[0] = param_with(2, 2, twin_start);
    m->params[1] = param_with(1, 3, twin_start + 4);
    m->opt = tg_optimizer_new(kind, m->params, 2, 0.1f, NULL);
    ck_assert_ptr_nonnull(m->opt);
}

static void twin_free(twin *m)
{
    tg_optimizer_free(m->opt);
    tg_param_free(m->params[0]);
    tg_param_free(m->params[1]);
}

/* Sets the grads to a pattern that changes with step and takes one step. */
static int twin_step(twin *m, int step)
{
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < m->params[i]->rows * m->params[i]->cols; k++)
            m->params[i]->grad[k] =
                0.3f * (float)(k + 1) * (step % 2 ? -1.0f : 1.0f) + 0.1f * (float)i;
    return tg_optimizer_step(m->opt, NULL);
}

static bool weights_equal(const twin *a, const twin *b)
{
    return memcmp(a->params[0]->data, b->params[0]->data, 4 * sizeof(float)) == 0 &&
           memcmp(a->params[1]->data, b->params[1]->data, 3 * sizeof(float)) == 0;
}

/* Both twins take two steps; the caller then spoils a and calls twin_check_refused. */
static void twins_warm(twin *a, twin *b, tg_optimizer_kind kind)
{
    twin_init(a, kind);
    twin_init(b, kind);
    for (int s = 0; s < 2; s++) {
        ck_assert_int_eq(twin_step(a, s), 0);
        ck_assert_int_eq(twin_step(b, s), 0);
    }
}

/* a's step must be refused with a message holding `message`, and with a's weights and step
 * count untouched; then, once `repair` has undone the damage, both twins take three more
 * steps and must stay identical. */
static void twin_check_refused(twin *a, twin *b, const char *what, const char *message,
                               void (*repair)(twin *))
{
    long steps = a->opt->steps;
    tg_error err = { "" };
    ck_assert_msg(tg_optimizer_step(a->opt, &err) == -1, "%s %s: step accepted",
                  kind_names[b->opt->kind], what);
    ck_assert_msg(strstr(err.message, message) && strstr(err.message, "; nothing changed"),
                  "%s %s: message '%s' does not say '%s; nothing changed'",
                  kind_names[b->opt->kind], what, err.message, message);
    ck_assert_msg(a->opt->steps == steps, "%s %s: refused step changed the step count",
                  kind_names[b->opt->kind], what);
    ck_assert_msg(weights_equal(a, b), "%s %s: refused step changed the weights",
                  kind_names[b->opt->kind], what);
    repair(a);
    for (int s = 2; s < 5; s++) {
        ck_assert_int_eq(twin_step(a, s), 0);
        ck_assert_int_eq(twin_step(b, s), 0);
    }
    ck_assert_msg(weights_equal(a, b) && a->opt->steps == b->opt->steps, "%s %s: after the "
                  "refused step the optimizer's state differs", kind_names[b->opt->kind], what);
}

static void no_repair(twin *m) { (void)m; }

START_TEST(test_step_refuses_nan_and_inf_gradients_and_changes_nothing)
{
    const float bad[] = { NAN, INFINITY, -INFINITY };
    const char *const names[] = { "NaN", "+Inf", "-Inf" };
    for (int k = 0; k < 4; k++)
        for (int b = 0; b < 3; b++) {
            twin a, c;
            twins_warm(&a, &c, all_kinds[k]);
            for (int i = 0; i < 2; i++)   /* good grads everywhere but the very last value */
                for (int j = 0; j < a.params[i]->rows * a.params[i]->cols; j++)
                    a.params[i]->grad[j] = 1.0f;
            a.params[1]->grad[2] = bad[b];
            char what[32];
            snprintf(what, sizeof what, "gradient %g", bad[b]);
            char message[80];
            snprintf(message, sizeof message,
                     "tg_optimizer_step: the gradient of params[1] is %s at value 2", names[b]);
            twin_check_refused(&a, &c, what, message, no_repair);   /* twin_step rewrites grads */
            twin_free(&a);
            twin_free(&c);
        }
}
END_TEST

/* The setting a test spoils, and its value before. */
typedef enum { SET_LR, SET_MOMENTUM, SET_BETA1, SET_BETA2, SET_EPS } setting;

static const char *const setting_names[] = { "lr", "momentum", "beta1", "beta2", "eps" };

static float *setting_field(tg_optimizer *opt, setting s)
{
    switch (s) {
    case SET_LR: return &opt->lr;
    case SET_MOMENTUM: return &opt->momentum;
    case SET_BETA1: return &opt->beta1;
    case SET_BETA2: return &opt->beta2;
    case SET_EPS: return &opt->eps;
    }
    return NULL;
}

static setting spoiled_setting;

static float spoiled_old_value;

static void restore_setting(twin *m)
{
    *setting_field(m->opt, spoiled_setting) = spoiled_old_value;
}

START_TEST(test_step_refuses_invalid_settings_and_changes_nothing)
{
    const struct { tg_optimizer_kind kind; setting s; float value; } bad[] = {
        { TG_SGD, SET_LR, NAN }, { TG_SGD, SET_LR, INFINITY }, { TG_SGD, SET_LR, -0.1f },
        { TG_MOMENTUM, SET_LR, -INFINITY },
        { TG_MOMENTUM, SET_MOMENTUM, NAN }, { TG_MOMENTUM, SET_MOMENTUM, INFINITY },
        { TG_MOMENTUM, SET_MOMENTUM, -0.5f },
        { TG_ADAGRAD, SET_LR, NAN },
        { TG_ADAGRAD, SET_EPS, -1e-10f }, { TG_ADAGRAD, SET_EPS, NAN },
        { TG_ADAGRAD, SET_EPS, INFINITY },
        { TG_ADAM, SET_LR, -1.0f },
        { TG_ADAM, SET_BETA1, 1.0f }, { TG_ADAM, SET_BETA1, -0.1f }, { TG_ADAM, SET_BETA1, NAN },
        { TG_ADAM, SET_BETA1, INFINITY },
        { TG_ADAM, SET_BETA2, 1.0f }, { TG_ADAM, SET_BETA2, 1.5f }, { TG_ADAM, SET_BETA2, -1e-3f },
        { TG_ADAM, SET_BETA2, NAN },
        { TG_ADAM, SET_EPS, -1e-8f }, { TG_ADAM, SET_EPS, NAN }, { TG_ADAM, SET_EPS, INFINITY },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        twin a, b;
        twins_warm(&a, &b, bad[i].kind);
        float *field = setting_field(a.opt, bad[i].s);
        spoiled_setting = bad[i].s;
        spoiled_old_value = *field;
        *field = bad[i].value;
        char what[48];
        snprintf(what, sizeof what, "%s = %g", setting_names[bad[i].s], bad[i].value);
        char message[80];   /* e.g. "tg_optimizer_step: beta1 is 1; it must be in [0, 1)" */
        snprintf(message, sizeof message, "tg_optimizer_step: %s is %g; it must be %s",
                 setting_names[bad[i].s], bad[i].value,
                 bad[i].s == SET_BETA1 || bad[i].s == SET_BETA2 ? "in [0, 1)" : "finite and >= 0");
        twin_check_refused(&a, &b, what, message, restore_setting);
        twin_free(&a);
        twin_free(&b);
    }
}
END_TEST

static tg_optimizer_kind kind_before;

static void restore_kind(twin *m) { m->opt->kind = kind_before; }

static void restore_steps(twin *m) { m->opt->steps = 2; }

START_TEST(test_step_refuses_a_changed_kind_or_a_negative_step_count)
{
    for (int k = 0; k < 4; k++) {
        twin a, b;
        twins_warm(&a, &b, all_kinds[k]);
        kind_before = a.opt->kind;
        a.opt->kind = all_kinds[(k + 1) % 4];   /* its state was sized for the old kind */
        char message[80];
        snprintf(message, sizeof message, "tg_optimizer_step: kind changed from %s to %s",
                 kind_macros[k], kind_macros[(k + 1) % 4]);
        twin_check_refused(&a, &b, "with a changed kind", message, restore_kind);
        twin_free(&a);
        twin_free(&b);
        twins_warm(&a, &b, all_kinds[k]);
        a.opt->steps = -1;
        twin_check_refused(&a, &b, "with steps = -1", "tg_optimizer_step: steps is -1",
                           restore_steps);
        twin_free(&a);
        twin_free(&b);
    }
    tg_error err;
    ck_assert_int_eq(tg_optimizer_step(NULL, &err), -1);
    ck_assert_str_eq(err.message, "tg_optimizer_step: opt is NULL");
}
END_TEST

/* Refuses opt's step with exactly `message`, with p's two values and the step count as they
 * were. */
static void check_step_refused(tg_optimizer *opt, const tg_tensor *p, const char *message)
{
    float before[2] = { p->data[0], p->data[1] };
    long steps = opt->steps;
    tg_error err;
    ck_assert_int_eq(tg_optimizer_step(opt, &err), -1);
    ck_assert_str_eq(err.message, message);
    ck_assert_mem_eq(p->data, before, sizeof before);
    ck_assert_int_eq(opt->steps, steps);
}

START_TEST(test_step_refuses_an_update_that_would_overflow_and_changes_nothing)
{
    /* Finite gradients and valid settings whose update is not finite: p - lr g beyond
     * FLT_MAX (SGD, and Adam's first step of lr); Adagrad's s = g^2 beyond FLT_MAX; momentum's
     * v = 0.9 v + g beyond FLT_MAX; Adam with eps = 0 and a value that has never had a
     * gradient (0 / 0). */
    tg_tensor *p = param_with(1, 2, (float[]){ 1.0f, 3e38f });
    tg_optimizer *sgd = tg_optimizer_new(TG_SGD, &p, 1, 1.0f, NULL);
    p->grad[0] = 1.0f;
    p->grad[1] = -3e38f;
    check_step_refused(sgd, p, "tg_optimizer_step: the update of params[0] at value 1 (weight "
                       "3e+38, gradient -3e+38) would make the weight +Inf; nothing changed");
    tg_optimizer_free(sgd);

    tg_optimizer *adagrad = tg_optimizer_new(TG_ADAGRAD, &p, 1, 0.1f, NULL);
    p->grad[1] = 1e20f;
    check_step_refused(adagrad, p, "tg_optimizer_step: the update of params[0] at value 1 (weight "
                       "3e+38, gradient 1e+20) would make Adagrad's s +Inf; nothing changed");
    p->grad[1] = 1.0f;   /* the sum of squares must still be 0: the first step moves by lr */
    ck_assert_int_eq(tg_optimizer_step(adagrad, NULL), 0);
    ck_assert_float_eq_tol(p->data[0], 1.0f - 0.1f * 1.0f / (1.0f + 1e-10f), 1e-7f);
    tg_optimizer_free(adagrad);

    p->data[0] = 1.0f;
    tg_optimizer *momentum = tg_optimizer_new(TG_MOMENTUM, &p, 1, 0.0f, NULL);
    p->grad[0] = p->grad[1] = 3e38f;
    ck_assert_int_eq(tg_optimizer_step(momentum, NULL), 0);   /* v = 3e38; lr 0 moves nothing */
    check_step_refused(momentum, p, "tg_optimizer_step: the update of params[0] at value 0 "
                       "(weight 1, gradient 3e+38) would make momentum's v +Inf; nothing changed");
    p->grad[0] = p->grad[1] = 0.0f;   /* v must still be 3e38: v = 0.9 v, p -= 1e-38 v */
    momentum->lr = 1e-38f;
    ck_assert_int_eq(tg_optimizer_step(momentum, NULL), 0);
    ck_assert_float_eq_tol(p->data[0], 1.0f - 1e-38f * 0.9f * 3e38f, 1e-5f);
    tg_optimizer_free(momentum);

    p->data[0] = 1.0f;
    tg_optimizer *adam = tg_optimizer_new(TG_ADAM, &p, 1, 1e38f, NULL);
    p->grad[0] = 1.0f;
    p->grad[1] = -1.0f;   /* Adam's first step moves each value by lr against its gradient */
    check_step_refused(adam, p, "tg_optimizer_step: the update of params[0] at value 1 (weight "
                       "3e+38, gradient -1) would make the weight +Inf; nothing changed");
    adam->lr = 0.1f;
    adam->eps = 0.0f;
    p->grad[1] = 0.0f;
    check_step_refused(adam, p, "tg_optimizer_step: the update of params[0] at value 1 (weight "
                       "3e+38, gradient 0) would make the weight NaN; nothing changed");
    tg_optimizer_free(adam);
    tg_param_free(p);
}
END_TEST

static void restore_lr(twin *m) { m->opt->lr = 0.1f; }

/* Each kind, two steps in, with lr 1e10 and a gradient of 1e30 at the last value: the weight
 * would overflow (SGD, momentum) or the state would (Adagrad's s and Adam's v: g^2 = 1e60).
 * The message names that value and what it would make; the weights, the state and the step
 * count stay as the twin's. */
START_TEST(test_step_refuses_overflow_of_weights_or_state_for_every_kind)
{
    const char *const becomes[] = { "the weight -Inf", "the weight -Inf", "Adagrad's s +Inf",
                                     "Adam's v +Inf" };
    for (int k = 0; k < 4; k++) {
        twin a, b;
        twins_warm(&a, &b, all_kinds[k]);
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < a.params[i]->rows * a.params[i]->cols; j++)
                a.params[i]->grad[j] = 1.0f;
        a.params[1]->grad[2] = 1e30f;
        a.opt->lr = 1e10f;
        char message[160];
        snprintf(message, sizeof message, "tg_optimizer_step: the update of params[1] at value 2 "
                 "(weight %g, gradient 1e+30) would make %s", a.params[1]->data[2], becomes[k]);
        twin_check_refused(&a, &b, "gradient 1e30 at lr 1e10", message, restore_lr);
        twin_free(&a);
        twin_free(&b);
    }
}
END_TEST

/* ---- construction ---------------------------------------------------------------------------- */

/* tg_optimizer_new(kind, params, n, lr) must return NULL with a message holding `want`. */
static void check_new_refused(tg_optimizer_kind kind, tg_tensor *const *params, int n, float lr,
                              const char *want)
{
    tg_error err = { "" };
    tg_optimizer *opt = tg_optimizer_new(kind, params, n, lr, &err);
    tg_optimizer_free(opt);
    ck_assert_msg(opt == NULL, "made an optimizer where '%s' was expected", want);
    ck_assert_msg(strstr(err.message, want) != NULL, "message '%s' does not say '%s'",
                  err.message, want);
}

START_TEST(test_new_rejects_null_and_bad_arguments_saying_why)
{
    tg_tensor *p = tg_param_new(2, 2), *q = tg_param_new(1, 3);
    tg_tensor constant = { .rows = 1, .cols = 1, .data = p->data, .grad = NULL };
    tg_tensor *with_null[2] = { p, NULL }, *twice[3] = { p, q, p }, *good[2] = { p, q };
    tg_tensor *with_constant[2] = { p, &constant };
    for (int k = 0; k < 4; k++) {
        tg_optimizer_kind kind = all_kinds[k];
        check_new_refused(kind, NULL, 1, 0.1f, "tg_optimizer_new: params is NULL");
        check_new_refused(kind, with_null, 2, 0.1f, "tg_optimizer_new: params[1] is NULL");
        check_new_refused(kind, with_constant, 2, 0.1f, "tg_optimizer_new: params[1] has no grad");
        check_new_refused(kind, twice, 3, 0.1f, "tg_optimizer_new: params[2] is params[0] again");
        check_new_refused(kind, good, 0, 0.1f, "tg_optimizer_new: n is 0;");
        check_new_refused(kind, good, -1, 0.1f, "tg_optimizer_new: n is -1;");
        check_new_refused(kind, good, 2, NAN, "tg_optimizer_new: lr is nan;");
        check_new_refused(kind, good, 2, INFINITY, "tg_optimizer_new: lr is inf;");
        check_new_refused(kind, good, 2, -0.1f, "tg_optimizer_new: lr is -0.1;");
        tg_error err = { "stale" };
        tg_optimizer *zero_lr = tg_optimizer_new(kind, good, 2, 0.0f, &err);
        ck_assert_ptr_nonnull(zero_lr);
        ck_assert_str_eq(err.message, "");
        tg_optimizer_free(zero_lr);
    }
    check_new_refused((tg_optimizer_kind)7, good, 2, 0.1f, "tg_optimizer_new: unknown kind 7");
    check_new_refused((tg_optimizer_kind)-1, good, 2, 0.1f, "tg_optimizer_new: unknown kind -1");
    tg_optimizer_free(NULL);
    tg_param_free(p);
    tg_param_free(q);
}
END_TEST

START_TEST(test_new_returns_null_and_leaks_nothing_when_memory_runs_out)
{
    tg_tensor *p = tg_param_new(2, 2), *q = tg_param_new(1, 3);
    tg_tensor *params[2] = { p, q };
    for (int k = 0; k < 4; k++) {
        long before = alloc_count();
        tg_optimizer *opt = tg_optimizer_new(all_kinds[k], params, 2, 0.1f, NULL);
        long needed = alloc_count() - before;
        ck_assert_ptr_nonnull(opt);
        tg_optimizer_free(opt);
        for (long n = 0; n < needed; n++) {
            tg_error err = { "" };
            alloc_fail_after(n);
            opt = tg_optimizer_new(all_kinds[k], params, 2, 0.1f, &err);
            alloc_fail_after(-1);
            tg_optimizer_free(opt);
            ck_assert_msg(opt == NULL, "%s: made with allocation %ld of %ld failing",
                          kind_names[k], n + 1, needed);
            ck_assert_str_eq(err.message,
                             "tg_optimizer_new: out of memory for the state of 7 values");
        }
    }
    tg_param_free(p);
    tg_param_free(q);
}
END_TEST

START_TEST(test_new_sets_pytorch_defaults)
{
    tg_tensor *p = tg_param_new(1, 1);
    for (int k = 0; k < 4; k++) {
        tg_optimizer *opt = tg_optimizer_new(all_kinds[k], &p, 1, 0.25f, NULL);
        ck_assert_int_eq(opt->kind, all_kinds[k]);
        ck_assert_float_eq(opt->lr, 0.25f);
        ck_assert_float_eq(opt->momentum, 0.9f);
        ck_assert_float_eq(opt->beta1, 0.9f);
        ck_assert_float_eq(opt->beta2, 0.999f);
        ck_assert_float_eq(opt->eps, all_kinds[k] == TG_ADAGRAD ? 1e-10f : 1e-8f);
        ck_assert_int_eq(opt->steps, 0);
        ck_assert_ptr_nonnull(opt->state);
        tg_optimizer_free(opt);
    }
    tg_param_free(p);
}
END_TEST

START_TEST(test_new_copies_the_parameter_array)
{
    tg_tensor *p = tg_param_new(1, 1), *q = tg_param_new(1, 1);
    tg_tensor *params[1] = { p };
    tg_optimizer *opt = tg_optimizer_new(TG_SGD, params, 1, 1.0f, NULL);
    params[0] = q;   /* the optimizer must still update p */
    p->grad[0] = 2.0f;
    q->grad[0] = 5.0f;
    ck_assert_int_eq(tg_optimizer_step(opt, NULL), 0);
    ck_assert_float_eq(p->data[0], -2.0f);
    ck_assert_float_eq(q->data[0], 0.0f);
    tg_optimizer_free(opt);
    tg_param_free(p);
    tg_param_free(q);
}
END_TEST

/* ---- allocation ------------------------------------------------------------------------------ */

START_TEST(test_step_makes_no_heap_allocation)
{
    for (int k = 0; k < 4; k++) {
        twin m;
        twin_init(&m, all_kinds[k]);
        int failures = 0;
        long before = alloc_count();
        for (int s = 0; s < 10; s++) {   /* no Check asserts in here: they allocate */
            failures += twin_step(&m, s) != 0;
            tg_zero_grad(m.params, 2, NULL);
        }
        long allocations = alloc_count() - before;
        ck_assert_int_eq(failures, 0);
        ck_assert_msg(allocations == 0, "%s: %ld allocations in 10 steps", kind_names[k],
                      allocations);
        twin_free(&m);
    }
}
END_TEST

/* ---- training -------------------------------------------------------------------------------- */

/* Linear regression y = w x + c with four features on very different scales (1 down to
 * 0.01): the loss surface is a long narrow valley, where SGD's one step size must stay small
 * for the steep directions and so crawls along the flat ones, while Adam scales each
 * weight's step by its own gradient size. */
enum { REG_FEATURES = 4, REG_SAMPLES = 32, REG_STEPS = 200 };

typedef struct regression {
    float x[REG_FEATURES * REG_SAMPLES], y[REG_SAMPLES];
} regression;

static regression make_regression(void)
{
    const float scale[REG_FEATURES] = { 1.0f, 0.3f, 0.05f, 0.01f };
    const float w[REG_FEATURES] = { 0.5f, -1.0f, 2.0f, 3.0f };
    regression r;
    tg_rng rng = tg_rng_new(11);
    for (int j = 0; j < REG_SAMPLES; j++) {
        r.y[j] = 0.25f;
        for (int i = 0; i < REG_FEATURES; i++) {
            float x = scale[i] * (2.0f * tg_rng_uniform(&rng) - 1.0f);
            r.x[i * REG_SAMPLES + j] = x;
            r.y[j] += w[i] * x;
        }
    }
    return r;
}

/* The mse after REG_STEPS steps from w = 0, c = 0; NAN when anything fails. */
static float train_regression(const regression *r, tg_optimizer_kind kind, float lr)
{
    tg_tensor *w = tg_param_new(1, REG_FEATURES), *c = tg_param_new(1, 1);
    tg_tensor *params[2] = { w, c };
    tg_optimizer *opt = tg_optimizer_new(kind, params, 2, lr, NULL);
    tg_tape *tape = tg_tape_new();
    float loss = NAN;
    for (int s = 0; s <= REG_STEPS; s++) {
        tg_tape_reset(tape);
        tg_zero_grad(params, 2, NULL);
        tg_tensor *x = tg_input(tape, REG_FEATURES, REG_SAMPLES, r->x);
        tg_tensor *pred = tg_add(tape, tg_matmul(tape, w, x), c);
        tg_tensor *mse = tg_mse(tape, pred, tg_input(tape, 1, REG_SAMPLES, r->y));
        if (!mse) {
            loss = NAN;
            break;
        }
        loss = mse->data[0];
        if (s == REG_STEPS)   /* the loss after REG_STEPS updates */
            break;
        if (tg_backward(tape, mse) != 0 || tg_optimizer_step(opt, NULL) != 0) {
            loss = NAN;
            break;
        }
    }
    tg_tape_free(tape);
    tg_optimizer_free(opt);
    tg_param_free(w);
    tg_param_free(c);
    return loss;
}

START_TEST(test_adam_reaches_lower_loss_than_sgd_on_an_ill_scaled_regression)
{
    /* Measured (200 steps from a loss of 0.138): SGD ends at 7.3e-3 with lr 0.1, 2.4e-3
     * with 0.5 and 2.0e-3 with 0.9, its best before it diverges near lr 1; Adam with lr 0.05
     * ends at 1.1e-7. So: Adam 100 times lower than SGD at each of those rates. */
    const float sgd_lrs[] = { 0.1f, 0.5f, 0.9f };
    regression r = make_regression();
    float adam = train_regression(&r, TG_ADAM, 0.05f);
    ck_assert_msg(isfinite(adam), "adam failed");
    for (int i = 0; i < 3; i++) {
        float sgd = train_regression(&r, TG_SGD, sgd_lrs[i]);
        ck_assert_msg(isfinite(sgd), "sgd with lr %g failed", sgd_lrs[i]);
        ck_assert_msg(adam * 100.0f < sgd, "after %d steps adam (lr 0.05) %g, sgd (lr %g) %g",
                      REG_STEPS, adam, sgd_lrs[i], sgd);
    }
}
END_TEST

Suite *optim_suite(void)
{
    Suite *s = suite_create("optim");

    TCase *gradients = tcase_create("gradients");
    tcase_add_test(gradients, test_training_calls_survive_null);
    tcase_add_test(gradients, test_parameter_calls_refuse_a_tensor_without_grad);
    tcase_add_test(gradients, test_sgd_step_refuses_an_update_that_would_overflow_and_changes_nothing);
    tcase_add_test(gradients, test_clip_grad_norm_rescales_to_exactly_max_norm);
    tcase_add_test(gradients, test_clip_grad_norm_counts_every_parameter_and_leaves_small_norms_alone);
    tcase_add_test(gradients, test_clip_grad_norm_clips_finite_gradients_whose_norm_overflows_float);
    tcase_add_test(gradients, test_clip_grad_norm_returns_nan_for_nan_or_inf_gradients_and_leaves_them);
    tcase_add_test(gradients, test_clip_grad_value_clamps_each_value_and_keeps_nan);
    tcase_add_test(gradients, test_grad_norm_is_the_l2_norm_of_the_grad);
    tcase_add_test(gradients, test_grad_norm_and_clip_grad_value_hold_at_the_float_limits);
    suite_add_tcase(s, gradients);

    TCase *rules = tcase_create("update rules");
    tcase_add_test(rules, test_sgd_first_three_updates_match_hand_arithmetic);
    tcase_add_test(rules, test_sgd_step_makes_the_same_update_as_tg_optimizer_sgd);
    tcase_add_test(rules, test_momentum_first_three_updates_match_hand_arithmetic);
    tcase_add_test(rules, test_adagrad_first_three_updates_match_hand_arithmetic);
    tcase_add_test(rules, test_adam_first_three_updates_match_hand_arithmetic);
    tcase_add_test(rules, test_adam_first_step_is_lr_times_sign_of_gradient);
    suite_add_tcase(s, rules);

    TCase *pytorch = tcase_create("pytorch");
    tcase_add_checked_fixture(pytorch, opt_setup, opt_teardown);
    tcase_add_test(pytorch, test_every_optimizer_matches_pytorch_fixtures);
    tcase_add_test(pytorch, test_fixture_comparison_catches_an_lr_one_percent_off);
    tcase_add_test(pytorch, test_fixture_file_covers_every_kind);
    suite_add_tcase(s, pytorch);

    TCase *refusals = tcase_create("refusals");
    tcase_add_test(refusals, test_step_refuses_nan_and_inf_gradients_and_changes_nothing);
    tcase_add_test(refusals, test_step_refuses_invalid_settings_and_changes_nothing);
    tcase_add_test(refusals, test_step_refuses_a_changed_kind_or_a_negative_step_count);
    tcase_add_test(refusals, test_step_refuses_an_update_that_would_overflow_and_changes_nothing);
    tcase_add_test(refusals, test_step_refuses_overflow_of_weights_or_state_for_every_kind);
    suite_add_tcase(s, refusals);

    TCase *making = tcase_create("construction");
    tcase_add_test(making, test_new_rejects_null_and_bad_arguments_saying_why);
    tcase_add_test(making, test_new_returns_null_and_leaks_nothing_when_memory_runs_out);
    tcase_add_test(making, test_new_sets_pytorch_defaults);
    tcase_add_test(making, test_new_copies_the_parameter_array);
    tcase_add_test(making, test_step_makes_no_heap_allocation);
    suite_add_tcase(s, making);

    TCase *training = tcase_create("training");
    tcase_set_timeout(training, 60);
    tcase_add_test(training, test_adam_reaches_lower_loss_than_sgd_on_an_ill_scaled_regression);
    suite_add_tcase(s, training);
    return s;
}
