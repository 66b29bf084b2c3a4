/* test_rnn.c: the vanilla RNN cell (src/rnn.c) against PyTorch reference values: every h_t,
 * the loss and the BPTT gradients match tests/fixtures/rnn_cell.txt both through
 * tg_rnn_cell_forward and through the primitive nodes, and the comparison catches a gradient
 * 1% off; its inits follow their rules; its forward refuses bad arguments with a message, and
 * the first error sticks through later steps. */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "tape_errors.h"
#include "tapegrad.h"

#define CELL_FIXTURE_PATH "tests/fixtures/rnn_cell.txt"   /* tests run from the repo root */

#define CELL_TOLERANCE 1e-4                               /* relative error, defined below */

#define CELL_PERTURBATION 1.01f                           /* "1% wrong" */

#define CELL_MAX_DIM 10000                                /* guards against a corrupt file */

#define CELL_MAX_VALUES 100000000LL

typedef enum { CELL_VIA_FORWARD, CELL_VIA_PRIMITIVES } cell_path;

static const char *const cell_path_names[] = { "tg_rnn_cell_forward", "primitive nodes" };

/* What cell_check_case found for one fixture case. */
typedef struct cell_result {
    bool ran;               /* false: the case could not be run; message says why */
    fixture_worst worst;    /* the largest relative error over all compared tensors, and where */
    char message[512];
} cell_result;

/* One case's arrays in the fixture file (format in fixture.h, keys in gen_rnn_fixtures.py). */
typedef struct cell_reference {
    const double *W_h, *W_x, *b, *h0, *x, *y;      /* the inputs */
    const double *h, *loss;                        /* the forward */
    const double *dW_h, *dW_x, *db, *dh0, *dx;     /* the gradients of the loss */
} cell_reference;

static fixture_set *cell_fixtures;  /* loaded by cell_setup for each test */

static void cell_setup(void)
{
    char err[512];
    cell_fixtures = fixture_load(CELL_FIXTURE_PATH, err, sizeof err);
    ck_assert_msg(cell_fixtures != NULL, "%s", err);
}

static void cell_teardown(void)
{
    fixture_free(cell_fixtures);
    cell_fixtures = NULL;
}

static void cell_scale(float *values, int n, float s)
{
    for (int k = 0; k < n; k++)
        values[k] *= s;
}

/* Run case c on a fresh tape along path: T steps of the cell from h0, loss = the sum over t
 * of tg_mse(h_t, y_t) joined with tg_add, then tg_backward. When perturb names a gradient
 * ("dW_h", "dW_x", "db", "dh0" or "dx": every step), ours is scaled by 1.01 before the
 * comparison. Compares every h_t, the loss and every gradient against the fixture and
 * frees everything before returning, so a failed check leaks nothing. */
static cell_result cell_check_case(const fixture_case *c, cell_path path, const char *perturb)
{
    cell_result r = { .ran = false };
    const int I = c->input, H = c->hidden, B = c->batch, T = c->steps;
    if (I > CELL_MAX_DIM || H > CELL_MAX_DIM || B > CELL_MAX_DIM || T > CELL_MAX_DIM ||
        (long long)T * (I > H ? I : H) * B > CELL_MAX_VALUES ||
        (long long)H * H > CELL_MAX_VALUES) {
        snprintf(r.message, sizeof r.message, "case %s: I=%d H=%d B=%d T=%d is too large for "
                 "this test", c->name, I, H, B, T);
        return r;
    }
    cell_reference ref;
    const struct { const double **to; const char *key; int count; } arrays[] = {
        { &ref.W_h, "W_h", H * H }, { &ref.W_x, "W_x", H * I }, { &ref.b, "b", H },
        { &ref.h0, "h0", H * B }, { &ref.x, "x", T * I * B }, { &ref.y, "y", T * H * B },
        { &ref.h, "h", T * H * B }, { &ref.loss, "loss", 1 }, { &ref.dW_h, "dW_h", H * H },
        { &ref.dW_x, "dW_x", H * I }, { &ref.db, "db", H }, { &ref.dh0, "dh0", H * B },
        { &ref.dx, "dx", T * I * B },
    };
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        *arrays[i].to = fixture_values(c, arrays[i].key, arrays[i].count, r.message,
                                       sizeof r.message);
        if (!*arrays[i].to)
            return r;
    }

    tg_tape *tape = tg_tape_new();
    tg_rnn_cell *cell = NULL;
    tg_tensor *W_h, *W_x, *b;
    if (path == CELL_VIA_FORWARD) {
        cell = tg_rnn_cell_new(I, H, 1);
        W_h = cell ? cell->W_h : NULL;
        W_x = cell ? cell->W_x : NULL;
        b = cell ? cell->b : NULL;
    } else {
        W_h = tg_param_new(H, H);
        W_x = tg_param_new(H, I);
        b = tg_param_new(H, 1);
    }
    float *buffer = malloc((size_t)(T * I * B + T * H * B + H * B) * sizeof(float));
    tg_tensor **x = calloc((size_t)T, sizeof *x), **h = calloc((size_t)T, sizeof *h);
    if (!tape || !W_h || !W_x || !b || !buffer || !x || !h) {
        snprintf(r.message, sizeof r.message, "case %s: out of memory", c->name);
        goto done;
    }
    if (W_h->rows != H || W_h->cols != H || W_x->rows != H || W_x->cols != I ||
        b->rows != H || b->cols != 1) {
        snprintf(r.message, sizeof r.message, "case %s: parameter shapes W_h %dx%d, W_x %dx%d, "
                 "b %dx%d; expected %dx%d, %dx%d, %dx1", c->name, W_h->rows, W_h->cols,
                 W_x->rows, W_x->cols, b->rows, b->cols, H, H, H, I, H);
        goto done;
    }
    fixture_to_float(W_h->data, ref.W_h, H * H);
    fixture_to_float(W_x->data, ref.W_x, H * I);
    fixture_to_float(b->data, ref.b, H);

    float *xs = buffer, *ys = xs + T * I * B, *h0s = ys + T * H * B;
    fixture_to_float(xs, ref.x, T * I * B);
    fixture_to_float(ys, ref.y, T * H * B);
    fixture_to_float(h0s, ref.h0, H * B);
    tg_tensor *h0 = tg_input(tape, H, B, h0s);
    tg_tensor *state = h0, *loss = NULL;
    for (int t = 0; t < T; t++) {
        x[t] = tg_input(tape, I, B, xs + (size_t)t * I * B);
        if (path == CELL_VIA_FORWARD) {
            state = tg_rnn_cell_forward(tape, cell, x[t], state);
        } else {
            tg_tensor *pre = tg_add(tape, tg_add(tape, tg_matmul(tape, W_h, state),
                                                 tg_matmul(tape, W_x, x[t])), b);
            state = tg_tanh(tape, pre);
        }
        h[t] = state;
        tg_tensor *step_loss = tg_mse(tape, state, tg_input(tape, H, B, ys + (size_t)t * H * B));
        loss = t == 0 ? step_loss : tg_add(tape, loss, step_loss);
    }
    if (tg_backward(tape, loss) != 0) {
        snprintf(r.message, sizeof r.message, "case %s: %s", c->name,
                 tg_tape_error(tape) ? tg_tape_error(tape) : "tg_backward failed");
        goto done;
    }

    if (perturb) {
        if (strcmp(perturb, "dW_h") == 0)
            cell_scale(W_h->grad, H * H, CELL_PERTURBATION);
        else if (strcmp(perturb, "dW_x") == 0)
            cell_scale(W_x->grad, H * I, CELL_PERTURBATION);
        else if (strcmp(perturb, "db") == 0)
            cell_scale(b->grad, H, CELL_PERTURBATION);
        else if (strcmp(perturb, "dh0") == 0)
            cell_scale(h0->grad, H * B, CELL_PERTURBATION);
        else if (strcmp(perturb, "dx") == 0)
            for (int t = 0; t < T; t++)
                cell_scale(x[t]->grad, I * B, CELL_PERTURBATION);
    }

    r.ran = true;
    for (int t = 0; t < T; t++)
        fixture_note(&r.worst, "h", t, h[t]->data, ref.h + (size_t)t * H * B, H * B);
    fixture_note(&r.worst, "loss", -1, loss->data, ref.loss, 1);
    fixture_note(&r.worst, "dW_h", -1, W_h->grad, ref.dW_h, H * H);
    fixture_note(&r.worst, "dW_x", -1, W_x->grad, ref.dW_x, H * I);
    fixture_note(&r.worst, "db", -1, b->grad, ref.db, H);
    fixture_note(&r.worst, "dh0", -1, h0->grad, ref.dh0, H * B);
    for (int t = 0; t < T; t++)
        fixture_note(&r.worst, "dx", t, x[t]->grad, ref.dx + (size_t)t * I * B, I * B);
    snprintf(r.message, sizeof r.message, "case %s (I=%d H=%d B=%d T=%d) via %s: worst relative "
             "error %.3g in %s", c->name, I, H, B, T, cell_path_names[path], r.worst.error,
             r.worst.tensor);

done:
    free(x);
    free(h);
    free(buffer);
    if (cell) {
        tg_rnn_cell_free(cell);
    } else {
        tg_param_free(W_h);
        tg_param_free(W_x);
        tg_param_free(b);
    }
    tg_tape_free(tape);
    return r;
}

/* ---- the cell against PyTorch ---------------------------------------------------------- */

static void cell_check_all_cases(cell_path path)
{
    ck_assert_int_gt(cell_fixtures->n_cases, 0);
    for (int i = 0; i < cell_fixtures->n_cases; i++) {
        cell_result r = cell_check_case(&cell_fixtures->cases[i], path, NULL);
        ck_assert_msg(r.ran, "%s", r.message);
        ck_assert_msg(r.worst.error <= CELL_TOLERANCE, "%s > %g", r.message, CELL_TOLERANCE);
    }
}

START_TEST(test_rnn_cell_forward_and_bptt_match_pytorch)
{
    cell_check_all_cases(CELL_VIA_FORWARD);
}
END_TEST

START_TEST(test_primitive_nodes_forward_and_bptt_match_pytorch)
{
    cell_check_all_cases(CELL_VIA_PRIMITIVES);
}
END_TEST

START_TEST(test_comparison_catches_a_gradient_one_percent_off)
{
    const char *grads[] = { "dW_h", "dW_x", "db", "dh0", "dx" };
    for (int i = 0; i < cell_fixtures->n_cases; i++) {
        const fixture_case *c = &cell_fixtures->cases[i];
        for (int g = 0; g < 5; g++) {
            cell_result r = cell_check_case(c, CELL_VIA_PRIMITIVES, grads[g]);
            ck_assert_msg(r.ran, "%s", r.message);
            ck_assert_msg(r.worst.error > CELL_TOLERANCE, "%s: with %s scaled by 1.01 the "
                          "comparison still passes", r.message, grads[g]);
            ck_assert_msg(strncmp(r.worst.tensor, grads[g], strlen(grads[g])) == 0,
                          "%s: scaled %s, but the worst tensor is %s", r.message, grads[g],
                          r.worst.tensor);
        }
    }
}
END_TEST

START_TEST(test_fixture_file_has_the_named_and_random_cases)
{
    const struct { const char *name; int input, hidden, batch, steps; } named[] = {
        { "seed_tutorial", 3, 2, 1, 5 },
        { "batch", 3, 4, 4, 6 },
        { "long_sequence", 4, 8, 3, 25 },
    };
    for (int n = 0; n < 3; n++) {
        const fixture_case *found = NULL;
        for (int i = 0; i < cell_fixtures->n_cases; i++)
            if (strcmp(cell_fixtures->cases[i].name, named[n].name) == 0)
                found = &cell_fixtures->cases[i];
        ck_assert_msg(found != NULL, "no case %s in " CELL_FIXTURE_PATH, named[n].name);
        ck_assert_int_eq(found->input, named[n].input);
        ck_assert_int_eq(found->hidden, named[n].hidden);
        ck_assert_int_eq(found->batch, named[n].batch);
        ck_assert_int_eq(found->steps, named[n].steps);
    }
    ck_assert_int_ge(cell_fixtures->n_cases, 20);
}
END_TEST

/* ---- the inits --------------------------------------------------------------------------- */

START_TEST(test_rnn_cell_default_init_follows_pytorch_rule)
{
    const int sizes[][2] = { { 1, 1 }, { 3, 2 }, { 5, 16 }, { 1, 100 }, { 64, 64 } };
    for (int s = 0; s < 5; s++) {
        const int I = sizes[s][0], H = sizes[s][1];
        tg_rnn_cell *cell = tg_rnn_cell_new(I, H, 42u + (uint64_t)s);
        ck_assert_ptr_nonnull(cell);
        ck_assert_int_eq(cell->input_size, I);
        ck_assert_int_eq(cell->hidden_size, H);
        const double bound = 1.0 / sqrt((double)H) * (1.0 + 1e-6); /* one float rounding */
        const tg_tensor *weights[] = { cell->W_h, cell->W_x };
        double lowest = INFINITY, highest = -INFINITY, sum = 0.0;
        int n = 0;
        for (int w = 0; w < 2; w++)
            for (int k = 0; k < weights[w]->rows * weights[w]->cols; k++) {
                double v = weights[w]->data[k];
                ck_assert_msg(fabs(v) <= bound, "I=%d H=%d: weight %g outside +-1/sqrt(H) = %g",
                              I, H, v, bound);
                lowest = fmin(lowest, v);
                highest = fmax(highest, v);
                sum += v;
                n++;
            }
        ck_assert_msg(lowest < highest, "I=%d H=%d: all %d weights equal %g", I, H, n, lowest);
        for (int i = 0; i < H; i++)
            ck_assert_msg(cell->b->data[i] == 0.0f, "I=%d H=%d: b[%d] = %g, not 0", I, H, i,
                          (double)cell->b->data[i]);
        if (n >= 1000) { /* a big cell fills the whole range, centred on 0 */
            ck_assert_msg(lowest < -0.95 * bound && highest > 0.95 * bound,
                          "I=%d H=%d: weights span only [%g, %g] of +-%g", I, H, lowest, highest,
                          bound);
            ck_assert_msg(fabs(sum / n) < 0.05 * bound, "I=%d H=%d: weight mean %g", I, H, sum / n);
        }
        tg_rnn_cell_free(cell);
    }
}
END_TEST

/* Sample mean and standard deviation of a tensor's values. */
static void cell_moments(const tg_tensor *t, double *mean, double *std)
{
    long n = (long)t->rows * t->cols;
    double sum = 0.0, squares = 0.0;
    for (long k = 0; k < n; k++)
        sum += t->data[k];
    *mean = sum / (double)n;
    for (long k = 0; k < n; k++)
        squares += (t->data[k] - *mean) * (t->data[k] - *mean);
    *std = sqrt(squares / (double)(n - 1));
}

START_TEST(test_rnn_cell_init_normal_has_mean_0_and_the_given_std)
{
    /* 40,000 values per matrix: the sample mean and std are within 0.005 std of the truth
     * one time in three, so 0.02 std is a four-sigma margin. */
    const float stds[] = { 1.0f, 0.5f };
    tg_rnn_cell *cell = tg_rnn_cell_new(200, 200, 3);
    ck_assert_ptr_nonnull(cell);
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < cell->hidden_size; i++)
            cell->b->data[i] = 1.0f;
        tg_rnn_cell_init_normal(cell, stds[s], 5u + (uint64_t)s);
        const tg_tensor *weights[] = { cell->W_h, cell->W_x };
        const char *names[] = { "W_h", "W_x" };
        for (int w = 0; w < 2; w++) {
            double mean, std;
            cell_moments(weights[w], &mean, &std);
            ck_assert_msg(fabs(mean) < 0.02 * stds[s], "%s: mean %g, expected 0", names[w], mean);
            ck_assert_msg(fabs(std - stds[s]) < 0.02 * stds[s], "%s: std %g, expected %g",
                          names[w], std, (double)stds[s]);
        }
        for (int i = 0; i < cell->hidden_size; i++)
            ck_assert_msg(cell->b->data[i] == 0.0f, "b[%d] = %g after init_normal", i,
                          (double)cell->b->data[i]);
    }
    tg_rnn_cell_free(cell);
}
END_TEST

/* ---- refusals ---------------------------------------------------------------------------- */

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

Suite *rnn_suite(void)
{
    Suite *s = suite_create("rnn");

    TCase *pytorch = tcase_create("pytorch");
    tcase_add_checked_fixture(pytorch, cell_setup, cell_teardown);
    tcase_set_timeout(pytorch, 60);
    tcase_add_test(pytorch, test_fixture_file_has_the_named_and_random_cases);
    tcase_add_test(pytorch, test_rnn_cell_forward_and_bptt_match_pytorch);
    tcase_add_test(pytorch, test_primitive_nodes_forward_and_bptt_match_pytorch);
    tcase_add_test(pytorch, test_comparison_catches_a_gradient_one_percent_off);
    suite_add_tcase(s, pytorch);

    TCase *init = tcase_create("init");
    tcase_add_test(init, test_rnn_cell_default_init_follows_pytorch_rule);
    tcase_add_test(init, test_rnn_cell_init_normal_has_mean_0_and_the_given_std);
    suite_add_tcase(s, init);

    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_first_error_sticks_and_null_flows_through_a_forward_pass);
    tcase_add_test(errors, test_cell_forward_checks_its_arguments);
    suite_add_tcase(s, errors);

    return s;
}
