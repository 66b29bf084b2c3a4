/* test_truncated.c: the window mechanics of truncated BPTT (examples/truncated.h, which
 * lab_truncated trains with): where the tape is cut, a window of T steps giving full BPTT's
 * gradient bit for bit, an unchanged forward pass, and a shorter window giving the full
 * gradient minus exactly the terms from beyond the window, summed by hand for a linear cell.
 * Not one module's suite: the lab's, through the public API alone. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "../examples/truncated.h"

/* ---- where the cuts go ------------------------------------------------------------------- */

START_TEST(test_cuts_are_counted_back_from_the_end_every_window_steps)
{
    /* T = 7, k = 3: windows [0, 1), [1, 4), [4, 7); the last one is a full 3 steps */
    const bool expected[7] = { false, true, false, false, true, false, false };
    for (int t = 0; t < 7; t++)
        ck_assert_msg(cut_before(t, 7, 3) == expected[t], "t = %d", t);
    for (int t = 0; t < 7; t++)
        ck_assert_msg(!cut_before(t, 7, 7) && !cut_before(t, 7, 9), "t = %d: a window >= T cuts", t);
}
END_TEST

/* ---- gated cells: k >= T is full BPTT, and no k changes the forward ----------------------- */

enum { T = 12, BATCH = 4, HIDDEN = 5 };

static const char *const CELLS[] = { "gru", "lstm", "rnn" };

/* A cell of the given name with a readout, and one adding-problem batch of T steps. */
typedef struct fixture {
    model m;
    float x[T * 2 * BATCH], y[BATCH];
} fixture;

static void fixture_new(fixture *f, const char *cell)
{
    tg_rng rng = tg_rng_new(5);
    ck_assert(model_new(&f->m, cell, 2, HIDDEN, 1, tg_rng_next(&rng)));
    model_init_readout(&f->m, &rng);
    ck_assert_int_eq(tg_task_adding(&rng, T, BATCH, f->x, f->y, NULL), 0);
}

/* Every grad of the model's parameters, one after another, into out (at most n floats).
 * Returns how many. */
static int copy_grads(const model *m, float *out, int n)
{
    int used = 0;
    for (int i = 0; i < m->n_params; i++) {
        int size = m->params[i]->rows * m->params[i]->cols;
        ck_assert_int_le(used + size, n);
        memcpy(out + used, m->params[i]->grad, (size_t)size * sizeof(float));
        used += size;
    }
    return used;
}

/* The loss, and the grads in out, of one backward through window (0: last_step_mse). */
static float gradient(fixture *f, tg_tape *tape, int window, float *out, int n, int *used)
{
    carried_state carry;
    ck_assert(carried_state_new(&carry, HIDDEN, BATCH));
    tg_tape_reset(tape);
    tg_zero_grad(f->m.params, f->m.n_params, NULL);
    tg_tensor *loss = window == 0
        ? last_step_mse(tape, &f->m, f->x, f->y, T, BATCH)
        : truncated_last_step_mse(tape, &f->m, &carry, f->x, f->y, T, window, BATCH);
    ck_assert_msg(tg_backward(tape, loss) == 0, "%s", tg_tape_error(tape));
    *used = copy_grads(&f->m, out, n);
    carried_state_free(&carry);
    return loss->data[0];
}

enum { MAX_GRADS = 1000 };

START_TEST(test_a_window_of_T_or_more_gives_the_full_gradient_bit_for_bit)
{
    fixture f;
    fixture_new(&f, CELLS[_i]);
    tg_tape *tape = tg_tape_new();
    float full[MAX_GRADS], truncated[MAX_GRADS];
    int n_full, n_truncated;
    float full_loss = gradient(&f, tape, 0, full, MAX_GRADS, &n_full);
    for (int window = T; window <= T + 3; window += 3) {
        float loss = gradient(&f, tape, window, truncated, MAX_GRADS, &n_truncated);
        ck_assert_int_eq(n_truncated, n_full);
        ck_assert_msg(memcmp(&loss, &full_loss, sizeof loss) == 0, "k = %d: loss differs", window);
        ck_assert_msg(memcmp(truncated, full, (size_t)n_full * sizeof(float)) == 0,
                      "%s, k = %d: a gradient differs from full BPTT's", CELLS[_i], window);
    }
    tg_tape_free(tape);
    model_free(&f.m);
}
END_TEST

START_TEST(test_a_shorter_window_leaves_the_forward_alone_and_changes_the_gradient)
{
    fixture f;
    fixture_new(&f, CELLS[_i]);
    tg_tape *tape = tg_tape_new();
    float full[MAX_GRADS], truncated[MAX_GRADS];
    int n_full, n_truncated;
    float full_loss = gradient(&f, tape, 0, full, MAX_GRADS, &n_full);
    for (int window = 1; window < T; window++) {
        float loss = gradient(&f, tape, window, truncated, MAX_GRADS, &n_truncated);
        ck_assert_msg(memcmp(&loss, &full_loss, sizeof loss) == 0, "k = %d: loss differs", window);
        ck_assert_msg(memcmp(truncated, full, (size_t)n_full * sizeof(float)) != 0,
                      "%s, k = %d: the same gradient as full BPTT", CELLS[_i], window);
    }
    tg_tape_free(tape);
    model_free(&f.m);
}
END_TEST

/* ---- a linear cell: the dropped terms, by hand -------------------------------------------- */

/* h_t = w h_{t-1} + u x_t, with scalars w = W_h and u = W_x (hidden 1, input 1, batch 1). */
typedef struct linear_cell {
    tg_tensor *w, *u;
    tg_tensor *params[2];     /* w, u: the cell's and the model's parameter list */
} linear_cell;

static tg_cell_state linear_step(tg_tape *tape, void *impl, tg_tensor *x_t, tg_cell_state prev)
{
    linear_cell *cell = impl;
    return (tg_cell_state){ tg_matmul_add(tape, cell->w, prev.h, tg_matmul(tape, cell->u, x_t)),
                            NULL };
}

enum { LT = 9 };
static const float LX[LT] = { 0.7f, -0.3f, 1.1f, 0.4f, -0.9f, 0.2f, 0.5f, -0.6f, 0.8f };
#define LW 0.8f
#define LU 0.6f
#define LY 0.3f

/* The model y = h_T (W_y = 1, b_y = 0) on the linear cell, as a model for truncated.h. */
static void linear_model(model *m, linear_cell *impl, tg_cell *cell)
{
    impl->w = tg_param_new(1, 1);
    impl->u = tg_param_new(1, 1);
    impl->w->data[0] = LW;
    impl->u->data[0] = LU;
    impl->params[0] = impl->w;
    impl->params[1] = impl->u;
    *cell = (tg_cell){ .name = "linear", .input_size = 1, .hidden_size = 1, .n_params = 2,
                       .params = impl->params, .impl = impl, .step = linear_step };
    *m = (model){ .cell = cell, .W_y = tg_param_new(1, 1), .b_y = tg_param_new(1, 1),
                  .params = impl->params, .n_params = 2 };
    m->W_y->data[0] = 1.0f;
}

/* By hand, in double: L = (h_T - y)^2, so dL/dh_T = 2 (h_T - y), and step j (1-based) reaches
 * h_T through w^(T-j): dL/dw = dL/dh_T sum_j w^(T-j) h_{j-1}, dL/du = dL/dh_T sum_j w^(T-j) x_j.
 * Sums the steps j with first <= j <= last into *dw and *du. */
static void hand_sum(int first, int last, double *dw, double *du)
{
    double h[LT + 1] = { 0.0 };
    for (int j = 1; j <= LT; j++)
        h[j] = (double)LW * h[j - 1] + (double)LU * LX[j - 1];
    double g = 2.0 * (h[LT] - LY);
    *dw = *du = 0.0;
    for (int j = first; j <= last; j++) {
        *dw += g * pow(LW, LT - j) * h[j - 1];
        *du += g * pow(LW, LT - j) * LX[j - 1];
    }
}

/* dL/dw and dL/du from the tape, through window k (0: last_step_mse). */
static void tape_gradient(int window, double *dw, double *du)
{
    linear_cell impl;
    tg_cell cell;
    model m;
    linear_model(&m, &impl, &cell);
    carried_state carry;
    ck_assert(carried_state_new(&carry, 1, 1));
    tg_tape *tape = tg_tape_new();
    float y = LY;
    tg_tensor *loss = window == 0
        ? last_step_mse(tape, &m, LX, &y, LT, 1)
        : truncated_last_step_mse(tape, &m, &carry, LX, &y, LT, window, 1);
    ck_assert_msg(tg_backward(tape, loss) == 0, "%s", tg_tape_error(tape));
    *dw = impl.w->grad[0];
    *du = impl.u->grad[0];
    tg_tape_free(tape);
    carried_state_free(&carry);
    tg_param_free(impl.w);
    tg_param_free(impl.u);
    tg_param_free(m.W_y);
    tg_param_free(m.b_y);
}

static void assert_close(double got, double want, const char *what, int window)
{
    ck_assert_msg(fabs(got - want) <= 1e-5 * fmax(1.0, fabs(want)),
                  "k = %d: %s is %.9g, by hand %.9g", window, what, got, want);
}

START_TEST(test_a_window_of_k_keeps_the_last_k_steps_terms_and_drops_the_rest)
{
    double full_w, full_u;
    tape_gradient(0, &full_w, &full_u);
    double all_w, all_u;
    hand_sum(1, LT, &all_w, &all_u);
    assert_close(full_w, all_w, "full dL/dw", 0);
    assert_close(full_u, all_u, "full dL/du", 0);
    for (int window = 1; window <= LT; window++) {
        double dw, du, kept_w, kept_u, dropped_w, dropped_u;
        tape_gradient(window, &dw, &du);
        hand_sum(LT - window + 1, LT, &kept_w, &kept_u);   /* steps T-k+1 .. T */
        hand_sum(1, LT - window, &dropped_w, &dropped_u);  /* steps 1 .. T-k: none when k = T */
        assert_close(dw, kept_w, "truncated dL/dw", window);
        assert_close(du, kept_u, "truncated dL/du", window);
        assert_close(full_w - dw, dropped_w, "full minus truncated dL/dw", window);
        assert_close(full_u - du, dropped_u, "full minus truncated dL/du", window);
    }
}
END_TEST

Suite *truncated_suite(void)
{
    Suite *s = suite_create("truncated");
    TCase *mechanics = tcase_create("window mechanics");
    int n_cells = (int)(sizeof CELLS / sizeof CELLS[0]);
    tcase_add_test(mechanics, test_cuts_are_counted_back_from_the_end_every_window_steps);
    tcase_add_loop_test(mechanics, test_a_window_of_T_or_more_gives_the_full_gradient_bit_for_bit,
                        0, n_cells);
    tcase_add_loop_test(mechanics,
                        test_a_shorter_window_leaves_the_forward_alone_and_changes_the_gradient,
                        0, n_cells);
    tcase_add_test(mechanics, test_a_window_of_k_keeps_the_last_k_steps_terms_and_drops_the_rest);
    suite_add_tcase(s, mechanics);
    return s;
}
