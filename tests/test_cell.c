/* test_cell.c: tg_cell, one interface over the cells (src/cell.c): tg_cell_new builds rnn, lstm
 * and gru with all their params and refuses unknown names and bad sizes, saying why; the zero
 * state; tg_cell_step runs exactly each cell's own forward, and a user's own cell; its calls
 * refuse bad arguments with a message; a training step through it allocates nothing once
 * warm, and SGD through it lowers the loss. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"
#include "gradcheck.h"
#include "tape_errors.h"

START_TEST(test_cell_new_builds_rnn_lstm_gru_with_all_their_params)
{
    tg_cell *rnn = tg_cell_new("rnn", 3, 5, 1, NULL), *lstm = tg_cell_new("lstm", 3, 5, 1, NULL), *gru = tg_cell_new("gru", 3, 5, 1, NULL);
    ck_assert(rnn && lstm && gru);
    tg_cell *cells[] = { rnn, lstm, gru };
    const char *names[] = { "rnn", "lstm", "gru" };
    const int n_params[] = { 3, 3, 4 };
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(cells[i]->name, names[i]);
        ck_assert_int_eq(cells[i]->input_size, 3);
        ck_assert_int_eq(cells[i]->hidden_size, 5);
        ck_assert_int_eq(cells[i]->has_c != 0, i == 1);
        ck_assert_int_eq(cells[i]->n_params, n_params[i]);
        ck_assert(cells[i]->impl && cells[i]->step && cells[i]->free_impl);
    }
    tg_rnn_cell *r = rnn->impl;
    tg_lstm_cell *l = lstm->impl;
    tg_gru_cell *g = gru->impl;
    ck_assert(r->input_size == 3 && r->hidden_size == 5 && l->hidden_size == 5 && g->input_size == 3);
    ck_assert(rnn->params[0] == r->W_h && rnn->params[1] == r->W_x && rnn->params[2] == r->b);
    ck_assert(lstm->params[0] == l->W_x && lstm->params[1] == l->W_h && lstm->params[2] == l->b);
    ck_assert(gru->params[0] == g->W_x && gru->params[1] == g->W_h && gru->params[2] == g->b_x &&
              gru->params[3] == g->b_h);
    for (int i = 0; i < 3; i++)
        tg_cell_free(cells[i]);
}
END_TEST

START_TEST(test_cell_new_refuses_unknown_names_and_bad_sizes_saying_why)
{
    const char *unknown[] = { "transformer", "LSTM", "", "lstm ", "rn" };
    tg_error err;
    char want[128];
    for (int i = 0; i < 5; i++) {
        ck_assert_msg(tg_cell_new(unknown[i], 3, 4, 1, &err) == NULL, "'%s' gave a cell",
                      unknown[i]);
        snprintf(want, sizeof want, "tg_cell_new: no cell named '%s' (rnn, lstm or gru)",
                 unknown[i]);
        ck_assert_str_eq(err.message, want);
    }
    ck_assert_ptr_null(tg_cell_new(NULL, 3, 4, 1, &err));
    ck_assert_str_eq(err.message, "tg_cell_new: name is NULL");
    const char *names[] = { "rnn", "lstm", "gru" };
    const int bad[4][2] = { { 0, 4 }, { 3, 0 }, { -3, 4 }, { 3, 1 << 30 } };
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 4; b++) {
            ck_assert_ptr_null(tg_cell_new(names[i], bad[b][0], bad[b][1], 1, &err));
            snprintf(want, sizeof want, "tg_cell_new: tg_%s_cell_new: bad size: %d inputs, "
                     "%d hidden units", names[i], bad[b][0], bad[b][1]);
            ck_assert_msg(strncmp(err.message, want, strlen(want)) == 0,
                          "message '%s' does not start with '%s'", err.message, want);
        }
    tg_cell *cell = tg_cell_new("gru", 3, 4, 1, &err);
    ck_assert_ptr_nonnull(cell);
    ck_assert_str_eq(err.message, "");
    tg_cell_free(cell);
}
END_TEST

START_TEST(test_cell_zero_state_is_zero_and_has_c_only_for_lstm)
{
    const char *names[] = { "rnn", "lstm", "gru" };
    tg_tape *tape = tg_tape_new();
    for (int i = 0; i < 3; i++) {
        tg_cell *cell = tg_cell_new(names[i], 2, 3, 1, NULL);
        tg_cell_state s = tg_cell_zero_state(tape, cell, 4);
        ck_assert_ptr_nonnull(s.h);
        ck_assert(s.h->rows == 3 && s.h->cols == 4);
        for (int k = 0; k < 12; k++)
            ck_assert(s.h->data[k] == 0.0f);
        if (i == 1) {
            ck_assert_ptr_nonnull(s.c);
            ck_assert(s.c->rows == 3 && s.c->cols == 4 && s.c != s.h);
            for (int k = 0; k < 12; k++)
                ck_assert(s.c->data[k] == 0.0f);
        } else {
            ck_assert_ptr_null(s.c);
        }
        tg_cell_free(cell);
    }
    ck_assert_ptr_null(tg_tape_error(tape));
    tg_tape_free(tape);
}
END_TEST

/* tg_cell_step runs exactly the cell's own forward: the same seed gives the same h_t, bit
 * for bit, for every step. _i picks rnn, lstm or gru. */
START_TEST(test_cell_step_equals_the_cells_own_forward)
{
    enum { I = 3, H = 4, B = 2, T = 5 };
    const char *names[] = { "rnn", "lstm", "gru" };
    tg_cell *cell = tg_cell_new(names[_i], I, H, 11, NULL);
    tg_rnn_cell *rnn = _i == 0 ? tg_rnn_cell_new(I, H, 11) : NULL;
    tg_lstm_cell *lstm = _i == 1 ? tg_lstm_cell_new(I, H, 11, NULL) : NULL;
    tg_gru_cell *gru = _i == 2 ? tg_gru_cell_new(I, H, 11, NULL) : NULL;
    tg_tape *tape = tg_tape_new();
    tg_cell_state via_cell = tg_cell_zero_state(tape, cell, B);
    tg_cell_state direct = via_cell;
    tg_rng rng = tg_rng_new(12);
    for (int t = 0; t < T; t++) {
        float x[I * B];
        for (int k = 0; k < I * B; k++)
            x[k] = tg_rng_normal(&rng);
        tg_tensor *x_t = tg_input(tape, I, B, x);
        via_cell = tg_cell_step(tape, cell, x_t, via_cell);
        if (rnn)
            direct.h = tg_rnn_cell_forward(tape, rnn, x_t, direct.h);
        else if (lstm)
            tg_lstm_cell_forward(tape, lstm, x_t, direct.h, direct.c, &direct.h, &direct.c);
        else
            direct.h = tg_gru_cell_forward(tape, gru, x_t, direct.h);
        ck_assert_ptr_nonnull(via_cell.h);
        ck_assert_ptr_nonnull(direct.h);
        ck_assert_msg(same_values(via_cell.h, direct.h), "%s: h differs at step %d", names[_i], t);
        if (lstm)
            ck_assert_msg(same_values(via_cell.c, direct.c), "lstm: c differs at step %d", t);
    }
    tg_tape_free(tape);
    tg_cell_free(cell);
    tg_rnn_cell_free(rnn);
    tg_lstm_cell_free(lstm);
    tg_gru_cell_free(gru);
}
END_TEST

/* A user's own cell, written as docs/extending.md shows: a leaky tanh unit
 *     h_t = 1/2 h_{t-1} + tanh(W x_t)        W: hidden x input
 * which counts how often its free function runs. */
typedef struct leaky_cell {
    tg_tensor *W;
    int *frees;
} leaky_cell;

static tg_cell_state leaky_step(tg_tape *tape, void *impl, tg_tensor *x_t, tg_cell_state prev)
{
    leaky_cell *leaky = impl;
    tg_tensor *h = tg_add(tape, tg_scale(tape, prev.h, 0.5f), tg_tanh(tape, tg_matmul(tape, leaky->W, x_t)));
    return (tg_cell_state){ .h = h };
}

static void leaky_free(void *impl)
{
    leaky_cell *leaky = impl;
    (*leaky->frees)++;
    tg_param_free(leaky->W);
    free(leaky);
}

static tg_cell *leaky_cell_new(int *frees)
{
    leaky_cell *leaky = malloc(sizeof *leaky);
    tg_cell *cell = malloc(sizeof *cell);
    *leaky = (leaky_cell){ .W = tg_param_new(1, 1), .frees = frees };
    leaky->W->data[0] = 2.0f;
    *cell = (tg_cell){ .name = "leaky", .input_size = 1, .hidden_size = 1, .has_c = 0,
                       .params = &leaky->W, .n_params = 1, .impl = leaky,
                       .step = leaky_step, .free_impl = leaky_free };
    return cell;
}

START_TEST(test_user_defined_cell_runs_through_tg_cell_step)
{
    int frees = 0;
    tg_cell *cell = leaky_cell_new(&frees);
    tg_tape *tape = tg_tape_new();
    tg_cell_state s = tg_cell_zero_state(tape, cell, 1);
    ck_assert_ptr_null(s.c);
    for (int t = 0; t < 2; t++)
        s = tg_cell_step(tape, cell, tg_input(tape, 1, 1, (float[]){ 0.25f }), s);
    ck_assert_ptr_nonnull(s.h);
    /* h_1 = tanh(2 * 0.25),  h_2 = 1/2 h_1 + tanh(0.5) = 3/2 tanh(0.5) */
    const float th = tanhf(0.5f);
    ck_assert_float_eq_tol(s.h->data[0], 1.5f * th, 1e-6f);
    ck_assert_int_eq(tg_backward(tape, s.h), 0);
    /* dh_2/dW = 3/2 (1 - tanh^2(0.5)) * 0.25 */
    ck_assert_float_eq_tol(cell->params[0]->grad[0], 1.5f * (1 - th * th) * 0.25f, 1e-6f);
    ck_assert_int_eq(tg_sgd_step(cell->params, cell->n_params, 0.1f, NULL), 0);
    ck_assert_float_lt(cell->params[0]->data[0], 2.0f);
    tg_tape_free(tape);
    tg_cell_free(cell);
    ck_assert_int_eq(frees, 1);
}
END_TEST

/* ---- errors --------------------------------------------------------------------------------------- */

static tg_cell_state broken_step(tg_tape *tape, void *impl, tg_tensor *x_t, tg_cell_state prev)
{
    (void)tape, (void)impl, (void)x_t, (void)prev;
    return (tg_cell_state){ NULL, NULL };
}

START_TEST(test_cell_calls_check_their_arguments)
{
    tg_tape *tape = tg_tape_new();
    tg_cell *lstm = tg_cell_new("lstm", 3, 4, 1, NULL);
    tg_cell_state zero = tg_cell_zero_state(tape, lstm, 2);
    tg_tensor *x = tg_input(tape, 3, 2, NULL);

    tg_cell_state s = tg_cell_step(tape, NULL, x, zero);
    ck_assert(s.h == NULL && s.c == NULL);
    assert_error(tape, "tg_cell_step: cell is NULL");
    assert_lstm_usable_after_reset(tape);

    zero = tg_cell_zero_state(tape, lstm, 2);
    s = tg_cell_step(tape, lstm, tg_input(tape, 2, 2, NULL), zero);
    ck_assert(s.h == NULL && s.c == NULL);
    assert_error(tape, "tg_lstm_cell_forward: x_t is 2x2, the cell takes 3 inputs");
    assert_lstm_usable_after_reset(tape);

    zero = tg_cell_zero_state(tape, lstm, 2);
    s = tg_cell_step(tape, lstm, tg_input(tape, 3, 2, NULL), (tg_cell_state){ zero.h, NULL });
    ck_assert(s.h == NULL && s.c == NULL);
    assert_error(tape, "tg_lstm_cell_forward: c_prev is NULL");
    assert_lstm_usable_after_reset(tape);

    s = tg_cell_zero_state(tape, NULL, 2);
    ck_assert(s.h == NULL && s.c == NULL);
    assert_error(tape, "tg_cell_zero_state: cell is NULL");
    assert_lstm_usable_after_reset(tape);
    s = tg_cell_zero_state(tape, lstm, 0);
    ck_assert(s.h == NULL && s.c == NULL);
    assert_error(tape, "tg_cell_zero_state: bad size 4x0 (hidden x batch)");
    assert_lstm_usable_after_reset(tape);

    tg_cell no_step = { .name = "mine", .hidden_size = 4 };
    s = tg_cell_step(tape, &no_step, tg_input(tape, 3, 2, NULL), s);
    ck_assert_ptr_null(s.h);
    assert_error(tape, "tg_cell_step: cell 'mine' has no step function");
    assert_lstm_usable_after_reset(tape);

    tg_cell broken = { .name = "broken", .hidden_size = 4, .step = broken_step };
    s = tg_cell_step(tape, &broken, tg_input(tape, 3, 2, NULL), tg_cell_zero_state(tape, &broken, 2));
    ck_assert_ptr_null(s.h);
    assert_error(tape, "tg_cell_step: the step of cell 'broken' returned no h");
    assert_lstm_usable_after_reset(tape);

    int frees = 0;
    tg_cell *leaky = leaky_cell_new(&frees);
    leaky->has_c = 1;   /* claims a c that its step does not return */
    s = tg_cell_step(tape, leaky, tg_input(tape, 1, 1, NULL), tg_cell_zero_state(tape, leaky, 1));
    ck_assert(s.h == NULL && s.c == NULL);
    assert_error(tape, "tg_cell_step: the step of cell 'leaky' returned no c");
    assert_lstm_usable_after_reset(tape);

    s = tg_cell_step(NULL, lstm, NULL, s);
    ck_assert(s.h == NULL && s.c == NULL);
    s = tg_cell_zero_state(NULL, lstm, 2);
    ck_assert(s.h == NULL && s.c == NULL);
    tg_cell_free(leaky);
    tg_cell_free(lstm);
    tg_tape_free(tape);
}
END_TEST

/* ---- training through tg_cell ------------------------------------------------------------------ */

enum { TRAIN_INPUT = 3, TRAIN_HIDDEN = 8, TRAIN_BATCH = 4, TRAIN_STEPS = 12 };

typedef struct train_task {
    float x[TRAIN_STEPS][TRAIN_INPUT * TRAIN_BATCH], y[TRAIN_STEPS][TRAIN_HIDDEN * TRAIN_BATCH];
} train_task;

static void train_task_init(train_task *task)
{
    tg_rng rng = tg_rng_new(6);
    for (int t = 0; t < TRAIN_STEPS; t++) {
        for (int k = 0; k < TRAIN_INPUT * TRAIN_BATCH; k++)
            task->x[t][k] = tg_rng_normal(&rng);
        for (int k = 0; k < TRAIN_HIDDEN * TRAIN_BATCH; k++)
            task->y[t][k] = tg_rng_uniform(&rng) - 0.5f;
    }
}

/* One training step through tg_cell: reset, zero the grads, forward from the zero state,
 * loss = sum of mse, backward, SGD. Returns the loss, or NAN on failure; it asserts
 * nothing itself, since Check's asserts allocate. */
static float cell_train_step(tg_tape *tape, tg_cell *cell, const train_task *task)
{
    tg_tape_reset(tape);
    tg_zero_grad(cell->params, cell->n_params, NULL);
    tg_cell_state s = tg_cell_zero_state(tape, cell, TRAIN_BATCH);
    tg_tensor *loss = NULL;
    for (int t = 0; t < TRAIN_STEPS; t++) {
        s = tg_cell_step(tape, cell, tg_input(tape, TRAIN_INPUT, TRAIN_BATCH, task->x[t]), s);
        tg_tensor *step_loss = tg_mse(tape, s.h, tg_input(tape, TRAIN_HIDDEN, TRAIN_BATCH, task->y[t]));
        loss = loss ? tg_add(tape, loss, step_loss) : step_loss;
    }
    if (tg_backward(tape, loss) != 0 || tg_sgd_step(cell->params, cell->n_params, 0.05f, NULL) != 0)
        return NAN;
    return loss->data[0];
}

static const char *const TRAIN_CELLS[] = { "rnn", "lstm", "gru" };

START_TEST(test_training_step_through_tg_cell_makes_no_heap_allocation_once_warm)
{
    train_task task;
    train_task_init(&task);
    tg_cell *cell = tg_cell_new(TRAIN_CELLS[_i], TRAIN_INPUT, TRAIN_HIDDEN, 5, NULL);
    tg_tape *tape = tg_tape_new();
    int failures = 0;
    for (int i = 0; i < 3; i++)
        failures += isnan(cell_train_step(tape, cell, &task));
    long before = alloc_count();
    for (int i = 0; i < 10; i++)
        failures += isnan(cell_train_step(tape, cell, &task));
    long allocations = alloc_count() - before;
    ck_assert_msg(failures == 0, "%s: %d failed steps: %s", TRAIN_CELLS[_i], failures,
                  tg_tape_error(tape) ? tg_tape_error(tape) : "");
    ck_assert_msg(allocations == 0, "%s: %ld allocations in 10 warm steps", TRAIN_CELLS[_i], allocations);
    tg_tape_free(tape);
    tg_cell_free(cell);
}
END_TEST

START_TEST(test_sgd_through_tg_cell_lowers_the_loss)
{
    train_task task;
    train_task_init(&task);
    tg_cell *cell = tg_cell_new(TRAIN_CELLS[_i], TRAIN_INPUT, TRAIN_HIDDEN, 5, NULL);
    tg_tape *tape = tg_tape_new();
    float first = cell_train_step(tape, cell, &task), last = first;
    for (int i = 0; i < 100; i++)
        last = cell_train_step(tape, cell, &task);
    ck_assert_msg(last < 0.9f * first, "%s: loss %g after 100 steps, %g at first", TRAIN_CELLS[_i],
                  (double)last, (double)first);
    tg_tape_free(tape);
    tg_cell_free(cell);
}
END_TEST

/* ---- a cell with more parameters than tg_cell once held ---------------------------------------- */

/* The textbook LSTM: each gate g of i, f, c, o with its own W_xg (H x I), W_hg (H x H) and b_g
 * (H x 1), twelve tensors, its list in its impl. */
typedef struct textbook_lstm {
    tg_tensor *params[12];   /* W_xg, W_hg, b_g for g = i, f, c, o */
} textbook_lstm;

static tg_tensor *textbook_gate(tg_tape *tape, textbook_lstm *m, int g, tg_tensor *x_t, tg_tensor *h)
{
    tg_tensor **p = m->params + 3 * g;
    return tg_matmul_add(tape, p[1], h, tg_matmul_add(tape, p[0], x_t, p[2]));
}

static tg_cell_state textbook_step(tg_tape *tape, void *impl, tg_tensor *x_t, tg_cell_state prev)
{
    tg_tensor *i = tg_sigmoid(tape, textbook_gate(tape, impl, 0, x_t, prev.h));
    tg_tensor *f = tg_sigmoid(tape, textbook_gate(tape, impl, 1, x_t, prev.h));
    tg_tensor *g = tg_tanh(tape, textbook_gate(tape, impl, 2, x_t, prev.h));
    tg_tensor *o = tg_sigmoid(tape, textbook_gate(tape, impl, 3, x_t, prev.h));
    tg_tensor *c = tg_add(tape, tg_mul(tape, f, prev.c), tg_mul(tape, i, g));
    return (tg_cell_state){ .h = tg_mul(tape, o, tg_tanh(tape, c)), .c = c };
}

START_TEST(test_a_cell_may_have_twelve_separate_parameters)
{
    enum { I = 3, H = 4, B = 2 };
    tg_lstm_cell *ref = tg_lstm_cell_new(I, H, 5, NULL);
    textbook_lstm m;
    for (int g = 0; g < 4; g++) {       /* gate g's rows of the stacked weights, apart */
        m.params[3 * g] = tg_param_new(H, I);
        m.params[3 * g + 1] = tg_param_new(H, H);
        m.params[3 * g + 2] = tg_param_new(H, 1);
        memcpy(m.params[3 * g]->data, ref->W_x->data + g * H * I, sizeof(float) * H * I);
        memcpy(m.params[3 * g + 1]->data, ref->W_h->data + g * H * H, sizeof(float) * H * H);
        memcpy(m.params[3 * g + 2]->data, ref->b->data + g * H, sizeof(float) * H);
    }
    tg_cell cell = { .name = "textbook_lstm", .input_size = I, .hidden_size = H, .has_c = 1,
                     .params = m.params, .n_params = 12, .impl = &m, .step = textbook_step };
    tg_tape *tape = tg_tape_new();
    tg_rng rng = tg_rng_new(8);
    tg_tensor *x = tg_constant(tape, I, B, NULL);
    tg_init_uniform(x, -1.0f, 1.0f, &rng, NULL);
    tg_cell_state s = tg_cell_step(tape, &cell, x, tg_cell_zero_state(tape, &cell, B));
    tg_tensor *h_ref, *c_ref;
    tg_lstm_cell_forward(tape, ref, x, tg_constant(tape, H, B, NULL), tg_constant(tape, H, B, NULL),
                         &h_ref, &c_ref);
    ck_assert_ptr_nonnull(s.h);
    for (int k = 0; k < H * B; k++)
        ck_assert_float_eq_tol(s.h->data[k], h_ref->data[k], 1e-6f);
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, s.h)), 0);
    ck_assert_float_ne(tg_grad_norm(cell.params[11]), 0.0f);   /* b_o, the twelfth */
    ck_assert_int_eq(tg_sgd_step(cell.params, cell.n_params, 0.1f, NULL), 0);
    ck_assert_int_eq(tg_zero_grad(cell.params, cell.n_params, NULL), 0);
    tg_tape_free(tape);
    for (int p = 0; p < 12; p++)
        tg_param_free(m.params[p]);
    tg_lstm_cell_free(ref);
}
END_TEST

Suite *cell_suite(void)
{
    Suite *s = suite_create("cell");

    TCase *cell = tcase_create("tg_cell");
    tcase_add_test(cell, test_cell_new_builds_rnn_lstm_gru_with_all_their_params);
    tcase_add_test(cell, test_a_cell_may_have_twelve_separate_parameters);
    tcase_add_test(cell, test_cell_new_refuses_unknown_names_and_bad_sizes_saying_why);
    tcase_add_test(cell, test_cell_zero_state_is_zero_and_has_c_only_for_lstm);
    tcase_add_loop_test(cell, test_cell_step_equals_the_cells_own_forward, 0, 3);
    tcase_add_test(cell, test_user_defined_cell_runs_through_tg_cell_step);
    suite_add_tcase(s, cell);

    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_cell_calls_check_their_arguments);
    suite_add_tcase(s, errors);

    TCase *train = tcase_create("training");
    tcase_add_loop_test(train, test_training_step_through_tg_cell_makes_no_heap_allocation_once_warm, 0, 3);
    tcase_add_loop_test(train, test_sgd_through_tg_cell_lowers_the_loss, 0, 3);
    suite_add_tcase(s, train);

    return s;
}
