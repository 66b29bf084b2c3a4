/* test_gated.c: the LSTM and GRU cells (src/gated.c). Every h_t (and c_t), the loss and the
 * BPTT gradients match PyTorch (tests/fixtures/lstm_cell.txt, gru_cell.txt) both through the
 * cells' forwards and through tg_cell_step, and the comparison catches a gradient 1% off; a
 * few steps of each cell match central finite differences; the inits follow PyTorch; every
 * misuse gives NULL or -1 and a message, and a constructor out of memory frees what it had. */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"
#include "fixture.h"
#include "gradcheck.h"
#include "tape_errors.h"
#include "tapegrad.h"

#define GATED_TOLERANCE 1e-4           /* relative error against PyTorch, as defined below */

#define GATED_PERTURBATION 1.01f       /* "1% wrong" */

#define GATED_MAX_DIM 10000            /* guards against a corrupt fixture file */

#define GATED_MAX_VALUES 100000000LL

#define GATED_MAX_PARAMS 4

/* ---- the two cells as the fixtures describe them -------------------------------------------- */

typedef struct gated_kind {
    const char *name;                  /* also the name tg_cell_new takes */
    const char *path;                  /* the fixture file; tests run from the repository root */
    int gates;                         /* blocks of hidden rows in W_x, W_h and the biases */
    bool has_c;
    int n_params;                      /* W_x, W_h, then the biases: tg_cell's params order */
    const char *param_keys[GATED_MAX_PARAMS], *grad_keys[GATED_MAX_PARAMS];
} gated_kind;

static const gated_kind GATED_LSTM = {
    "lstm", "tests/fixtures/lstm_cell.txt", 4, true, 3,
    { "W_x", "W_h", "b" }, { "dW_x", "dW_h", "db" },
};

static const gated_kind GATED_GRU = {
    "gru", "tests/fixtures/gru_cell.txt", 3, false, 4,
    { "W_x", "W_h", "b_x", "b_h" }, { "dW_x", "dW_h", "db_x", "db_h" },
};

static fixture_set *lstm_fixtures, *gru_fixtures;   /* loaded by gated_setup for each test */

static void gated_setup(void)
{
    char err[512];
    lstm_fixtures = fixture_load(GATED_LSTM.path, err, sizeof err);
    ck_assert_msg(lstm_fixtures != NULL, "%s", err);
    gru_fixtures = fixture_load(GATED_GRU.path, err, sizeof err);
    ck_assert_msg(gru_fixtures != NULL, "%s", err);
}

static void gated_teardown(void)
{
    fixture_free(lstm_fixtures);
    fixture_free(gru_fixtures);
    lstm_fixtures = gru_fixtures = NULL;
}

/* ---- running one fixture case ----------------------------------------------------------------- */

typedef enum { VIA_FORWARD, VIA_CELL_STEP } gated_path;

/* The cell under test: made by its own constructor (VIA_FORWARD) or by tg_cell_new. */
typedef struct gated_model {
    tg_lstm_cell *lstm;
    tg_gru_cell *gru;
    tg_cell *cell;
    tg_tensor *params[GATED_MAX_PARAMS];
} gated_model;

static bool gated_model_new(gated_model *m, const gated_kind *kind, gated_path path, int I, int H)
{
    *m = (gated_model){ 0 };
    if (path == VIA_CELL_STEP) {
        m->cell = tg_cell_new(kind->name, I, H, 7, NULL);
        if (!m->cell || m->cell->n_params != kind->n_params)
            return false;
        memcpy(m->params, m->cell->params, sizeof m->params);
    } else if (kind->has_c) {
        m->lstm = tg_lstm_cell_new(I, H, 7, NULL);
        if (!m->lstm)
            return false;
        tg_tensor *params[] = { m->lstm->W_x, m->lstm->W_h, m->lstm->b };
        memcpy(m->params, params, sizeof params);
    } else {
        m->gru = tg_gru_cell_new(I, H, 7, NULL);
        if (!m->gru)
            return false;
        tg_tensor *params[] = { m->gru->W_x, m->gru->W_h, m->gru->b_x, m->gru->b_h };
        memcpy(m->params, params, sizeof params);
    }
    return true;
}

static void gated_model_free(gated_model *m)
{
    tg_cell_free(m->cell);
    tg_lstm_cell_free(m->lstm);
    tg_gru_cell_free(m->gru);
}

static tg_cell_state gated_step(const gated_model *m, tg_tape *tape, tg_tensor *x_t, tg_cell_state prev)
{
    if (m->cell)
        return tg_cell_step(tape, m->cell, x_t, prev);
    tg_cell_state next = { NULL, NULL };
    if (m->lstm)
        tg_lstm_cell_forward(tape, m->lstm, x_t, prev.h, prev.c, &next.h, &next.c);
    else
        next.h = tg_gru_cell_forward(tape, m->gru, x_t, prev.h);
    return next;
}

/* What gated_check_case found for one fixture case. */
typedef struct gated_result {
    bool ran;               /* false: the case could not be run; message says why */
    fixture_worst worst;    /* the largest relative error over all compared tensors, and where */
    char message[512];
} gated_result;

static void gated_scale(float *values, long n, float s)
{
    for (long k = 0; k < n; k++)
        values[k] *= s;
}

/* A tape leaf holding rows x cols reference values (NULL if out of memory). */
static tg_tensor *gated_leaf(tg_tape *tape, int rows, int cols, const double *values)
{
    tg_tensor *t = tg_input(tape, rows, cols, NULL);
    if (t)
        for (long k = 0; k < (long)rows * cols; k++)
            t->data[k] = (float)values[k];
    return t;
}

static long param_count(const gated_kind *kind, int I, int H, int p)
{
    return (long)kind->gates * H * (p == 0 ? I : p == 1 ? H : 1);
}

/* The reference arrays of a case: params and grads in kind's order, then the rest by key. */
enum { REF_H0, REF_C0, REF_X, REF_Y, REF_Y_C, REF_H, REF_C, REF_LOSS, REF_DH0, REF_DC0, REF_DX, N_REF };

typedef struct gated_reference {
    const double *params[GATED_MAX_PARAMS], *grads[GATED_MAX_PARAMS];
    const double *a[N_REF];
} gated_reference;

static bool gated_get_reference(const fixture_case *c, const gated_kind *kind, gated_reference *ref,
                                char *err, size_t err_size)
{
    const long I = c->input, H = c->hidden, B = c->batch, T = c->steps;
    for (int p = 0; p < kind->n_params; p++) {
        int count = (int)param_count(kind, (int)I, (int)H, p);
        ref->params[p] = fixture_values(c, kind->param_keys[p], count, err, err_size);
        ref->grads[p] = fixture_values(c, kind->grad_keys[p], count, err, err_size);
        if (!ref->params[p] || !ref->grads[p])
            return false;
    }
    const char *keys[N_REF] = { "h0", "c0", "x", "y", "y_c", "h", "c", "loss", "dh0", "dc0", "dx" };
    const long counts[N_REF] = { H * B, H * B, T * I * B, T * H * B, H * B, T * H * B, T * H * B,
                                 1, H * B, H * B, T * I * B };
    const bool lstm_only[N_REF] = { [REF_C0] = true, [REF_Y_C] = true, [REF_C] = true, [REF_DC0] = true };
    for (int k = 0; k < N_REF; k++) {
        ref->a[k] = NULL;
        if (lstm_only[k] && !kind->has_c)
            continue;
        ref->a[k] = fixture_values(c, keys[k], (int)counts[k], err, err_size);
        if (!ref->a[k])
            return false;
    }
    return true;
}

/* Scale our gradient called key (a parameter's, "dh0", "dc0" or "dx": every step) by 1.01. */
static void gated_perturb(const char *key, const gated_kind *kind, tg_tensor *const *params,
                          tg_tensor *h0, tg_tensor *c0, tg_tensor **x, int T)
{
    for (int p = 0; p < kind->n_params; p++)
        if (strcmp(key, kind->grad_keys[p]) == 0)
            gated_scale(params[p]->grad, (long)params[p]->rows * params[p]->cols, GATED_PERTURBATION);
    if (strcmp(key, "dh0") == 0)
        gated_scale(h0->grad, (long)h0->rows * h0->cols, GATED_PERTURBATION);
    if (strcmp(key, "dc0") == 0)
        gated_scale(c0->grad, (long)c0->rows * c0->cols, GATED_PERTURBATION);
    if (strcmp(key, "dx") == 0)
        for (int t = 0; t < T; t++)
            gated_scale(x[t]->grad, (long)x[t]->rows * x[t]->cols, GATED_PERTURBATION);
}

/* Run case c on a fresh tape along path: T steps of the cell from h0 (and c0), loss = the
 * sum over t of tg_mse(h_t, y_t) joined with tg_add (+ tg_mse(c_T, y_c) for the LSTM), as
 * gen_gated_fixtures.py does, then tg_backward. When perturb names a gradient, ours is
 * scaled by 1.01 first. Compares every h_t (c_t), the loss and every gradient against the
 * fixture, and frees everything before returning, so a failed check leaks nothing. */
static gated_result gated_check_case(const fixture_case *c, const gated_kind *kind, gated_path path,
                                     const char *perturb)
{
    gated_result r = { .ran = false };
    const int I = c->input, H = c->hidden, B = c->batch, T = c->steps;
    if (I > GATED_MAX_DIM || H > GATED_MAX_DIM || B > GATED_MAX_DIM || T > GATED_MAX_DIM ||
        (long long)T * (I > H ? I : H) * B > GATED_MAX_VALUES || 4LL * H * H > GATED_MAX_VALUES) {
        snprintf(r.message, sizeof r.message, "case %s: I=%d H=%d B=%d T=%d is too large", c->name,
                 I, H, B, T);
        return r;
    }
    gated_reference ref;
    if (!gated_get_reference(c, kind, &ref, r.message, sizeof r.message))
        return r;

    gated_model m;
    bool made = gated_model_new(&m, kind, path, I, H);
    tg_tape *tape = tg_tape_new();
    tg_tensor **x = calloc((size_t)T, sizeof *x);
    tg_cell_state *states = calloc((size_t)T, sizeof *states);
    if (!made || !tape || !x || !states) {
        snprintf(r.message, sizeof r.message, "case %s: could not make the %s cell or the tape",
                 c->name, kind->name);
        goto done;
    }
    for (int p = 0; p < kind->n_params; p++) {
        long n = param_count(kind, I, H, p);
        if ((long)m.params[p]->rows * m.params[p]->cols != n) {
            snprintf(r.message, sizeof r.message, "case %s: %s is %dx%d, expected %ld values",
                     c->name, kind->param_keys[p], m.params[p]->rows, m.params[p]->cols, n);
            goto done;
        }
        for (long k = 0; k < n; k++)
            m.params[p]->data[k] = (float)ref.params[p][k];
    }

    tg_tensor *h0 = gated_leaf(tape, H, B, ref.a[REF_H0]);
    tg_tensor *c0 = kind->has_c ? gated_leaf(tape, H, B, ref.a[REF_C0]) : NULL;
    tg_cell_state state = { h0, c0 };
    tg_tensor *loss = NULL;
    for (int t = 0; t < T; t++) {
        x[t] = gated_leaf(tape, I, B, ref.a[REF_X] + (size_t)t * I * B);
        state = states[t] = gated_step(&m, tape, x[t], state);
        tg_tensor *y = gated_leaf(tape, H, B, ref.a[REF_Y] + (size_t)t * H * B);
        tg_tensor *step_loss = tg_mse(tape, state.h, y);
        loss = t == 0 ? step_loss : tg_add(tape, loss, step_loss);
    }
    if (kind->has_c)
        loss = tg_add(tape, loss, tg_mse(tape, state.c, gated_leaf(tape, H, B, ref.a[REF_Y_C])));
    if (tg_backward(tape, loss) != 0) {
        snprintf(r.message, sizeof r.message, "case %s: %s", c->name,
                 tg_tape_error(tape) ? tg_tape_error(tape) : "tg_backward failed");
        goto done;
    }
    if (perturb)
        gated_perturb(perturb, kind, m.params, h0, c0, x, T);

    r.ran = true;
    for (int t = 0; t < T; t++) {
        fixture_note(&r.worst, "h", t, states[t].h->data, ref.a[REF_H] + (size_t)t * H * B, (long)H * B);
        if (kind->has_c)
            fixture_note(&r.worst, "c", t, states[t].c->data, ref.a[REF_C] + (size_t)t * H * B, (long)H * B);
    }
    fixture_note(&r.worst, "loss", -1, loss->data, ref.a[REF_LOSS], 1);
    for (int p = 0; p < kind->n_params; p++)
        fixture_note(&r.worst, kind->grad_keys[p], -1, m.params[p]->grad, ref.grads[p], param_count(kind, I, H, p));
    fixture_note(&r.worst, "dh0", -1, h0->grad, ref.a[REF_DH0], (long)H * B);
    if (kind->has_c)
        fixture_note(&r.worst, "dc0", -1, c0->grad, ref.a[REF_DC0], (long)H * B);
    for (int t = 0; t < T; t++)
        fixture_note(&r.worst, "dx", t, x[t]->grad, ref.a[REF_DX] + (size_t)t * I * B, (long)I * B);
    snprintf(r.message, sizeof r.message, "%s case %s via %s: worst relative error %g in %s",
             kind->name, c->name, path == VIA_CELL_STEP ? "tg_cell_step" : "the cell's forward",
             r.worst.error, r.worst.tensor);

done:
    free(x);
    free(states);
    tg_tape_free(tape);
    gated_model_free(&m);
    return r;
}

/* ---- the cells against PyTorch ---------------------------------------------------------------- */

static void gated_check_all_cases(const fixture_set *set, const gated_kind *kind, gated_path path)
{
    ck_assert_int_gt(set->n_cases, 0);
    for (int i = 0; i < set->n_cases; i++) {
        gated_result r = gated_check_case(&set->cases[i], kind, path, NULL);
        ck_assert_msg(r.ran, "%s", r.message);
        ck_assert_msg(r.worst.error <= GATED_TOLERANCE, "%s > %g", r.message, GATED_TOLERANCE);
    }
}

START_TEST(test_lstm_forward_and_bptt_match_pytorch)
{
    gated_check_all_cases(lstm_fixtures, &GATED_LSTM, VIA_FORWARD);
}
END_TEST

START_TEST(test_gru_forward_and_bptt_match_pytorch)
{
    gated_check_all_cases(gru_fixtures, &GATED_GRU, VIA_FORWARD);
}
END_TEST

START_TEST(test_lstm_through_tg_cell_step_matches_pytorch)
{
    gated_check_all_cases(lstm_fixtures, &GATED_LSTM, VIA_CELL_STEP);
}
END_TEST

START_TEST(test_gru_through_tg_cell_step_matches_pytorch)
{
    gated_check_all_cases(gru_fixtures, &GATED_GRU, VIA_CELL_STEP);
}
END_TEST

/* True when the worst tensor is key itself or one of its steps, "key[t]". */
static bool gated_is_tensor(const char *worst_tensor, const char *key)
{
    size_t n = strlen(key);
    return strncmp(worst_tensor, key, n) == 0 && (worst_tensor[n] == '\0' || worst_tensor[n] == '[');
}

static void gated_check_catches_one_percent(const fixture_set *set, const gated_kind *kind)
{
    const char *grads[GATED_MAX_PARAMS + 3];
    int n = 0;
    for (int p = 0; p < kind->n_params; p++)
        grads[n++] = kind->grad_keys[p];
    grads[n++] = "dh0";
    if (kind->has_c)
        grads[n++] = "dc0";
    grads[n++] = "dx";
    for (int i = 0; i < set->n_cases; i++)
        for (int g = 0; g < n; g++) {
            gated_result r = gated_check_case(&set->cases[i], kind, VIA_FORWARD, grads[g]);
            ck_assert_msg(r.ran, "%s", r.message);
            ck_assert_msg(r.worst.error > GATED_TOLERANCE,
                          "%s: with %s scaled by 1.01 the comparison still passes", r.message, grads[g]);
            ck_assert_msg(gated_is_tensor(r.worst.tensor, grads[g]), "%s: scaled %s instead",
                          r.message, grads[g]);
        }
}

START_TEST(test_comparison_catches_an_lstm_gradient_one_percent_off)
{
    gated_check_catches_one_percent(lstm_fixtures, &GATED_LSTM);
}
END_TEST

START_TEST(test_comparison_catches_a_gru_gradient_one_percent_off)
{
    gated_check_catches_one_percent(gru_fixtures, &GATED_GRU);
}
END_TEST

START_TEST(test_fixture_files_have_the_named_and_random_cases)
{
    const struct { const char *name; int input, hidden, batch, steps; } named[] = {
        { "batch", 3, 4, 4, 10 },
        { "long_sequence", 4, 8, 3, 30 },
        { "scalar", 1, 1, 1, 1 },
        { "largest", 6, 10, 4, 20 },
        { "saturating", 3, 5, 2, 12 },
    };
    const fixture_set *sets[2] = { lstm_fixtures, gru_fixtures };
    for (int s = 0; s < 2; s++) {
        for (size_t n = 0; n < sizeof named / sizeof named[0]; n++) {
            const fixture_case *found = NULL;
            for (int i = 0; i < sets[s]->n_cases; i++)
                if (strcmp(sets[s]->cases[i].name, named[n].name) == 0)
                    found = &sets[s]->cases[i];
            ck_assert_msg(found != NULL, "no case %s in the %s fixtures", named[n].name, s ? "GRU" : "LSTM");
            ck_assert_int_eq(found->input, named[n].input);
            ck_assert_int_eq(found->hidden, named[n].hidden);
            ck_assert_int_eq(found->batch, named[n].batch);
            ck_assert_int_eq(found->steps, named[n].steps);
        }
        ck_assert_int_ge(sets[s]->n_cases, 20);
    }
}
END_TEST

/* ---- hand-worked steps ------------------------------------------------------------------------ */

/* With every weight and bias 0, every gate is sigmoid(0) = 1/2 and the candidate tanh(0) = 0. */
START_TEST(test_lstm_with_zero_parameters_halves_the_cell_state)
{
    tg_lstm_cell *cell = tg_lstm_cell_new(2, 2, 1, NULL);
    tg_tensor *params[] = { cell->W_x, cell->W_h, cell->b };
    for (int p = 0; p < 3; p++)
        memset(params[p]->data, 0, (size_t)params[p]->rows * (size_t)params[p]->cols * sizeof(float));
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_input(tape, 2, 1, (float[]){ 3, -1 });
    tg_tensor *h_prev = tg_input(tape, 2, 1, (float[]){ 0.5f, -0.5f });
    tg_tensor *c_prev = tg_input(tape, 2, 1, (float[]){ 2, -4 });
    tg_tensor *h, *c;
    ck_assert_int_eq(tg_lstm_cell_forward(tape, cell, x, h_prev, c_prev, &h, &c), 0);
    /* c = 1/2 c_prev + 1/2 * 0;  h = 1/2 tanh(c) */
    ck_assert_float_eq_tol(c->data[0], 1.0f, 1e-6f);
    ck_assert_float_eq_tol(c->data[1], -2.0f, 1e-6f);
    ck_assert_float_eq_tol(h->data[0], 0.5f * tanhf(1.0f), 1e-6f);
    ck_assert_float_eq_tol(h->data[1], 0.5f * tanhf(-2.0f), 1e-6f);
    tg_tape_free(tape);
    tg_lstm_cell_free(cell);
}
END_TEST

START_TEST(test_gru_with_zero_parameters_halves_the_state)
{
    tg_gru_cell *cell = tg_gru_cell_new(2, 2, 1, NULL);
    tg_tensor *params[] = { cell->W_x, cell->W_h, cell->b_x, cell->b_h };
    for (int p = 0; p < 4; p++)
        memset(params[p]->data, 0, (size_t)params[p]->rows * (size_t)params[p]->cols * sizeof(float));
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_input(tape, 2, 2, (float[]){ 3, -1, 2, 0 });
    tg_tensor *h_prev = tg_input(tape, 2, 2, (float[]){ 0.5f, -0.5f, 1, 0.25f });
    /* r = z = 1/2, n = tanh(0) = 0, so h = (1 - 1/2) 0 + 1/2 h_prev */
    tg_tensor *h = tg_gru_cell_forward(tape, cell, x, h_prev);
    ck_assert_ptr_nonnull(h);
    const float want[] = { 0.25f, -0.25f, 0.5f, 0.125f };
    for (int k = 0; k < 4; k++)
        ck_assert_float_eq_tol(h->data[k], want[k], 1e-7f);
    tg_tape_free(tape);
    tg_gru_cell_free(cell);
}
END_TEST

/* ---- backward against finite differences ---------------------------------------------------- */

/* T steps of an LSTM cell with W_x = in[0], W_h = in[1], b = in[2], from h0 = in[3] and
 * c0 = in[4]; x_t is rows t I .. t I + I - 1 of in[5]. Returns h_T + c_T, so the check
 * covers both outputs. The sizes come from the shapes. */
static tg_tensor *f_lstm_steps(tg_tape *tape, tg_tensor **in)
{
    const int I = in[0]->cols, H = in[3]->rows, T = in[5]->rows / I;
    tg_lstm_cell cell = { .input_size = I, .hidden_size = H, .W_x = in[0], .W_h = in[1], .b = in[2] };
    tg_tensor *h = in[3], *c = in[4];
    for (int t = 0; t < T; t++)
        tg_lstm_cell_forward(tape, &cell, tg_rows(tape, in[5], t * I, I), h, c, &h, &c);
    return tg_add(tape, h, c);
}

/* T steps of a GRU cell with W_x = in[0], W_h = in[1], b_x = in[2], b_h = in[3], from
 * h0 = in[4]; x_t is rows t I .. t I + I - 1 of in[5]. Returns h_T. */
static tg_tensor *f_gru_steps(tg_tape *tape, tg_tensor **in)
{
    const int I = in[0]->cols, H = in[4]->rows, T = in[5]->rows / I;
    tg_gru_cell cell = { .input_size = I, .hidden_size = H, .W_x = in[0], .W_h = in[1],
                         .b_x = in[2], .b_h = in[3] };
    tg_tensor *h = in[4];
    for (int t = 0; t < T; t++)
        h = tg_gru_cell_forward(tape, &cell, tg_rows(tape, in[5], t * I, I), h);
    return h;
}

typedef struct gated_fd_case {
    const char *name;
    gradcheck_fn fn;
    int shapes[GRADCHECK_MAX_INPUTS][2];
} gated_fd_case;

static const gated_fd_case FD_CASES[] = {
    /* I = 2, H = 3, B = 2, T = 3 */
    { "three lstm steps, batch 2", f_lstm_steps, { { 12, 2 }, { 12, 3 }, { 12, 1 }, { 3, 2 }, { 3, 2 }, { 6, 2 } } },
    { "one lstm step, every size 1", f_lstm_steps, { { 4, 1 }, { 4, 1 }, { 4, 1 }, { 1, 1 }, { 1, 1 }, { 1, 1 } } },
    { "three gru steps, batch 2", f_gru_steps, { { 9, 2 }, { 9, 3 }, { 9, 1 }, { 9, 1 }, { 3, 2 }, { 6, 2 } } },
    { "one gru step, every size 1", f_gru_steps, { { 3, 1 }, { 3, 1 }, { 3, 1 }, { 3, 1 }, { 1, 1 }, { 1, 1 } } },
};

#define N_FD_CASES ((int)(sizeof FD_CASES / sizeof FD_CASES[0]))

/* Runs finite-difference case i with the backward's gradients scaled by grad_scale. */
static double gated_fd_check(int i, float grad_scale)
{
    const gated_fd_case *c = &FD_CASES[i];
    tg_tensor *in[GRADCHECK_MAX_INPUTS];
    for (int k = 0; k < GRADCHECK_MAX_INPUTS; k++) {
        in[k] = tg_param_new(c->shapes[k][0], c->shapes[k][1]);
        fill_uniform(in[k], -1.0f, 1.0f, 2000u + (uint64_t)k);
    }
    double err = gradcheck(c->fn, in, GRADCHECK_MAX_INPUTS, grad_scale);
    for (int k = 0; k < GRADCHECK_MAX_INPUTS; k++)
        tg_param_free(in[k]);
    return err;
}

START_TEST(test_gated_backward_matches_finite_difference)
{
    double err = gated_fd_check(_i, 1.0f);
    ck_assert_msg(err < GRADCHECK_TOLERANCE, "%s: relative error %g", FD_CASES[_i].name, err);
}
END_TEST

START_TEST(test_finite_difference_catches_a_gated_backward_one_percent_off)
{
    double err = gated_fd_check(_i, 1.01f);
    ck_assert_msg(err > GRADCHECK_TOLERANCE, "%s: a 1%% error gave only %g", FD_CASES[_i].name, err);
}
END_TEST

/* ---- init ---------------------------------------------------------------------------------------- */

typedef struct gated_stats {
    double lowest, highest, mean, variance;
    long n;
} gated_stats;

static gated_stats gated_stats_of(const tg_tensor *t)
{
    gated_stats s = { .lowest = INFINITY, .highest = -INFINITY, .n = (long)t->rows * t->cols };
    double sum = 0.0, squares = 0.0;
    for (long k = 0; k < s.n; k++) {
        s.lowest = fmin(s.lowest, t->data[k]);
        s.highest = fmax(s.highest, t->data[k]);
        sum += t->data[k];
    }
    s.mean = sum / (double)s.n;
    for (long k = 0; k < s.n; k++)
        squares += (t->data[k] - s.mean) * (t->data[k] - s.mean);
    s.variance = squares / (double)(s.n - 1);
    return s;
}

/* Every value of t lies in +-bound (one float rounding allowed) and, for a big tensor, fills
 * the range centred on 0. */
static void gated_assert_in_bound(const tg_tensor *t, const char *name, double bound)
{
    gated_stats s = gated_stats_of(t);
    ck_assert_msg(s.lowest >= -bound * (1 + 1e-6) && s.highest <= bound * (1 + 1e-6),
                  "%s spans [%g, %g], outside +-%g", name, s.lowest, s.highest, bound);
    ck_assert_msg(s.n < 2 || s.lowest < s.highest, "%s: all %ld values equal %g", name, s.n, s.lowest);
    if (s.n >= 1000) {
        ck_assert_msg(s.lowest < -0.9 * bound && s.highest > 0.9 * bound,
                      "%s spans only [%g, %g] of +-%g", name, s.lowest, s.highest, bound);
        ck_assert_msg(fabs(s.mean) < 0.05 * bound, "%s: mean %g", name, s.mean);
    }
}

START_TEST(test_lstm_init_follows_pytorch)
{
    const int sizes[][2] = { { 1, 1 }, { 3, 2 }, { 5, 16 }, { 4, 256 } };
    for (int s = 0; s < 4; s++) {
        const int I = sizes[s][0], H = sizes[s][1];
        tg_lstm_cell *cell = tg_lstm_cell_new(I, H, 40u + (uint64_t)s, NULL);
        ck_assert_ptr_nonnull(cell);
        ck_assert_int_eq(cell->input_size, I);
        ck_assert_int_eq(cell->hidden_size, H);
        ck_assert(cell->W_x->rows == 4 * H && cell->W_x->cols == I);
        ck_assert(cell->W_h->rows == 4 * H && cell->W_h->cols == H);
        ck_assert(cell->b->rows == 4 * H && cell->b->cols == 1);
        const double k = 1.0 / sqrt((double)H);
        gated_assert_in_bound(cell->W_x, "W_x", k);
        gated_assert_in_bound(cell->W_h, "W_h", k);
        gated_assert_in_bound(cell->b, "b", 2 * k);   /* bias_ih + bias_hh */
        if (H == 256) {
            /* The sum of two uniforms in +-k has variance 2k^2/3, twice one uniform's; with
             * 1024 values the sample variance is within 4% one time in three. */
            gated_stats b = gated_stats_of(cell->b);
            ck_assert_msg(fabs(b.variance / (2 * k * k / 3) - 1) < 0.15,
                          "b's variance is %g, expected 2k^2/3 = %g", b.variance, 2 * k * k / 3);
        }
        tg_lstm_cell_free(cell);
    }
}
END_TEST

START_TEST(test_gru_init_follows_pytorch)
{
    const int sizes[][2] = { { 1, 1 }, { 3, 2 }, { 5, 16 }, { 4, 256 } };
    for (int s = 0; s < 4; s++) {
        const int I = sizes[s][0], H = sizes[s][1];
        tg_gru_cell *cell = tg_gru_cell_new(I, H, 50u + (uint64_t)s, NULL);
        ck_assert_ptr_nonnull(cell);
        ck_assert_int_eq(cell->input_size, I);
        ck_assert_int_eq(cell->hidden_size, H);
        ck_assert(cell->W_x->rows == 3 * H && cell->W_x->cols == I);
        ck_assert(cell->W_h->rows == 3 * H && cell->W_h->cols == H);
        ck_assert(cell->b_x->rows == 3 * H && cell->b_x->cols == 1);
        ck_assert(cell->b_h->rows == 3 * H && cell->b_h->cols == 1);
        const double k = 1.0 / sqrt((double)H);
        gated_assert_in_bound(cell->W_x, "W_x", k);
        gated_assert_in_bound(cell->W_h, "W_h", k);
        gated_assert_in_bound(cell->b_x, "b_x", k);
        gated_assert_in_bound(cell->b_h, "b_h", k);
        tg_gru_cell_free(cell);
    }
}
END_TEST

START_TEST(test_same_seed_gives_the_same_cell)
{
    tg_lstm_cell *l1 = tg_lstm_cell_new(3, 5, 9, NULL), *l2 = tg_lstm_cell_new(3, 5, 9, NULL), *l3 = tg_lstm_cell_new(3, 5, 10, NULL);
    tg_gru_cell *g1 = tg_gru_cell_new(3, 5, 9, NULL), *g2 = tg_gru_cell_new(3, 5, 9, NULL), *g3 = tg_gru_cell_new(3, 5, 10, NULL);
    ck_assert(same_values(l1->W_x, l2->W_x) && same_values(l1->W_h, l2->W_h) &&
              same_values(l1->b, l2->b));
    ck_assert(same_values(g1->W_x, g2->W_x) && same_values(g1->W_h, g2->W_h) &&
              same_values(g1->b_x, g2->b_x) && same_values(g1->b_h, g2->b_h));
    ck_assert(!same_values(l1->W_x, l3->W_x));
    ck_assert(!same_values(g1->W_x, g3->W_x));
    tg_lstm_cell_free(l1);
    tg_lstm_cell_free(l2);
    tg_lstm_cell_free(l3);
    tg_gru_cell_free(g1);
    tg_gru_cell_free(g2);
    tg_gru_cell_free(g3);
}
END_TEST

START_TEST(test_forget_bias_setter_changes_only_the_f_rows)
{
    enum { H = 5 };
    tg_lstm_cell *cell = tg_lstm_cell_new(2, H, 3, NULL);
    float before[4 * H];
    memcpy(before, cell->b->data, sizeof before);
    tg_lstm_cell_set_forget_bias(cell, 1.0f);
    for (int i = 0; i < 4 * H; i++) {
        bool f_row = i >= H && i < 2 * H;   /* blocks i, f, g, o */
        ck_assert_msg(cell->b->data[i] == (f_row ? 1.0f : before[i]), "b[%d] = %g", i,
                      (double)cell->b->data[i]);
    }
    tg_lstm_cell_set_forget_bias(NULL, 1.0f);
    tg_lstm_cell_free(cell);
}
END_TEST

/* ---- errors --------------------------------------------------------------------------------------- */

/* A tensor of the given shape on tape, or NULL for { 0, 0 }. */
static tg_tensor *gated_arg(tg_tape *tape, const int shape[2])
{
    return shape[0] ? tg_input(tape, shape[0], shape[1], NULL) : NULL;
}

START_TEST(test_lstm_forward_checks_its_arguments)
{
    static const struct { int x[2], h[2], c[2]; const char *want; } bad[] = {
        { { 5, 2 }, { 4, 2 }, { 4, 2 }, "tg_lstm_cell_forward: x_t is 5x2, the cell takes 3 inputs" },
        { { 3, 2 }, { 2, 2 }, { 4, 2 }, "tg_lstm_cell_forward: h_prev is 2x2, the cell has 4 hidden units" },
        { { 3, 2 }, { 4, 2 }, { 3, 2 }, "tg_lstm_cell_forward: c_prev is 3x2, the cell has 4 hidden units" },
        { { 3, 2 }, { 4, 3 }, { 4, 2 }, "tg_lstm_cell_forward: x_t has 2 columns (batch) but h_prev has 3" },
        { { 3, 2 }, { 4, 2 }, { 4, 1 }, "tg_lstm_cell_forward: x_t has 2 columns (batch) but c_prev has 1" },
        { { 0, 0 }, { 4, 2 }, { 4, 2 }, "tg_lstm_cell_forward: x_t is NULL" },
        { { 3, 2 }, { 0, 0 }, { 4, 2 }, "tg_lstm_cell_forward: h_prev is NULL" },
        { { 3, 2 }, { 4, 2 }, { 0, 0 }, "tg_lstm_cell_forward: c_prev is NULL" },
    };
    tg_lstm_cell *cell = tg_lstm_cell_new(3, 4, 1, NULL);
    tg_tape *tape = tg_tape_new();
    tg_tensor sentinel = { 0 }, *h, *c;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h = c = &sentinel;   /* so that setting them to NULL shows */
        int rc = tg_lstm_cell_forward(tape, cell, gated_arg(tape, bad[i].x), gated_arg(tape, bad[i].h),
                                      gated_arg(tape, bad[i].c), &h, &c);
        ck_assert_int_eq(rc, -1);
        ck_assert(h == NULL && c == NULL);
        assert_error(tape, bad[i].want);
        assert_lstm_usable_after_reset(tape);
    }
    tg_tensor *x = tg_input(tape, 3, 2, NULL), *state = tg_input(tape, 4, 2, NULL);
    ck_assert_int_eq(tg_lstm_cell_forward(tape, NULL, x, state, state, &h, &c), -1);
    assert_error(tape, "tg_lstm_cell_forward: cell is NULL");
    assert_lstm_usable_after_reset(tape);
    x = tg_input(tape, 3, 2, NULL), state = tg_input(tape, 4, 2, NULL);
    ck_assert_int_eq(tg_lstm_cell_forward(tape, cell, x, state, state, NULL, &c), -1);
    assert_error(tape, "tg_lstm_cell_forward: h_t and c_t must point to where the new state goes");
    assert_lstm_usable_after_reset(tape);
    tg_tape *other = tg_tape_new();
    x = tg_input(tape, 3, 2, NULL), state = tg_input(tape, 4, 2, NULL);
    ck_assert_int_eq(tg_lstm_cell_forward(tape, cell, tg_input(other, 3, 2, NULL), state, state, &h, &c), -1);
    assert_error(tape, "tg_matmul_add: input 2 was made on another tape");
    assert_lstm_usable_after_reset(tape);
    h = c = &sentinel;
    ck_assert_int_eq(tg_lstm_cell_forward(NULL, cell, NULL, NULL, NULL, &h, &c), -1);
    ck_assert(h == NULL && c == NULL);
    tg_tape_free(other);
    tg_tape_free(tape);
    tg_lstm_cell_free(cell);
}
END_TEST

START_TEST(test_gru_forward_checks_its_arguments)
{
    static const struct { int x[2], h[2]; const char *want; } bad[] = {
        { { 5, 2 }, { 4, 2 }, "tg_gru_cell_forward: x_t is 5x2, the cell takes 3 inputs" },
        { { 3, 2 }, { 2, 2 }, "tg_gru_cell_forward: h_prev is 2x2, the cell has 4 hidden units" },
        { { 3, 2 }, { 4, 3 }, "tg_gru_cell_forward: x_t has 2 columns (batch) but h_prev has 3" },
        { { 0, 0 }, { 4, 2 }, "tg_gru_cell_forward: x_t is NULL" },
        { { 3, 2 }, { 0, 0 }, "tg_gru_cell_forward: h_prev is NULL" },
    };
    tg_gru_cell *cell = tg_gru_cell_new(3, 4, 1, NULL);
    tg_tape *tape = tg_tape_new();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_ptr_null(tg_gru_cell_forward(tape, cell, gated_arg(tape, bad[i].x), gated_arg(tape, bad[i].h)));
        assert_error(tape, bad[i].want);
        assert_lstm_usable_after_reset(tape);
    }
    ck_assert_ptr_null(tg_gru_cell_forward(tape, NULL, tg_input(tape, 3, 2, NULL), tg_input(tape, 4, 2, NULL)));
    assert_error(tape, "tg_gru_cell_forward: cell is NULL");
    assert_lstm_usable_after_reset(tape);
    ck_assert_ptr_null(tg_gru_cell_forward(NULL, cell, NULL, NULL));
    tg_tape_free(tape);
    tg_gru_cell_free(cell);
}
END_TEST

START_TEST(test_first_error_sticks_through_later_lstm_steps)
{
    tg_lstm_cell *cell = tg_lstm_cell_new(3, 4, 1, NULL);
    tg_tape *tape = tg_tape_new();
    tg_tensor *h = tg_input(tape, 4, 2, NULL), *c = tg_input(tape, 4, 2, NULL);
    ck_assert_int_eq(tg_lstm_cell_forward(tape, cell, tg_input(tape, 5, 2, NULL), h, c, &h, &c), -1);
    for (int t = 0; t < 3; t++)
        ck_assert_int_eq(tg_lstm_cell_forward(tape, cell, tg_input(tape, 3, 2, NULL), h, c, &h, &c), -1);
    tg_tensor *loss = tg_mse(tape, h, tg_input(tape, 4, 2, NULL));
    ck_assert_int_eq(tg_backward(tape, loss), -1);
    assert_error(tape, "tg_lstm_cell_forward: x_t is 5x2, the cell takes 3 inputs");
    ck_assert_float_eq(cell->W_x->grad[0], 0.0f);
    assert_lstm_usable_after_reset(tape);
    tg_tape_free(tape);
    tg_lstm_cell_free(cell);
}
END_TEST

START_TEST(test_bad_sizes_give_null_and_frees_take_null)
{
    const int bad[][2] = { { 0, 4 }, { 3, 0 }, { -1, 4 }, { 3, -4 }, { 3, 1 << 30 }, { 3, 0x7fffffff },
                           { 1 << 30, 1 << 10 } };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[96];
        tg_error err;
        ck_assert_msg(tg_lstm_cell_new(bad[i][0], bad[i][1], 1, &err) == NULL, "lstm %dx%d",
                      bad[i][0], bad[i][1]);
        snprintf(want, sizeof want, "tg_lstm_cell_new: bad size: %d inputs, %d hidden units",
                 bad[i][0], bad[i][1]);
        ck_assert_msg(strncmp(err.message, want, strlen(want)) == 0, "'%s'", err.message);
        ck_assert_msg(tg_gru_cell_new(bad[i][0], bad[i][1], 1, &err) == NULL, "gru %dx%d",
                      bad[i][0], bad[i][1]);
        snprintf(want, sizeof want, "tg_gru_cell_new: bad size: %d inputs, %d hidden units",
                 bad[i][0], bad[i][1]);
        ck_assert_msg(strncmp(err.message, want, strlen(want)) == 0, "'%s'", err.message);
    }
    tg_lstm_cell_free(NULL);
    tg_gru_cell_free(NULL);
    tg_cell_free(NULL);
}
END_TEST

/* The five constructors by number: tg_lstm_cell_new, tg_gru_cell_new, and tg_cell_new for
 * "rnn", "lstm" and "gru"; each gives back a cell with 2 inputs and 3 hidden units. */
enum { N_CONSTRUCTORS = 5 };

static void *gated_construct(int i, tg_error *err)
{
    static const char *const names[] = { "rnn", "lstm", "gru" };
    if (i == 0)
        return tg_lstm_cell_new(2, 3, 1, err);
    if (i == 1)
        return tg_gru_cell_new(2, 3, 1, err);
    return tg_cell_new(names[i - 2], 2, 3, 1, err);
}

static void gated_destroy(int i, void *cell)
{
    if (i == 0)
        tg_lstm_cell_free(cell);
    else if (i == 1)
        tg_gru_cell_free(cell);
    else
        tg_cell_free(cell);
}

/* A constructor that runs out of memory at any one of its allocations returns NULL, says so,
 * and frees what it had (valgrind and ASan would report the leak). _i picks the constructor. */
START_TEST(test_out_of_memory_in_a_constructor_gives_null_and_says_so)
{
    long before = alloc_count();
    void *cell = gated_construct(_i, NULL);
    long needed = alloc_count() - before;
    ck_assert_ptr_nonnull(cell);
    gated_destroy(_i, cell);
    for (long n = 0; n < needed; n++) {
        tg_error err = { "" };
        alloc_fail_after(n);
        cell = gated_construct(_i, &err);
        alloc_fail_after(-1);
        gated_destroy(_i, cell);
        ck_assert_msg(cell == NULL, "constructor %d made a cell with allocation %ld of %ld failing",
                      _i, n + 1, needed);
        const char *tail = strstr(err.message, ": out of memory");
        ck_assert_msg(tail && strcmp(tail, ": out of memory") == 0,
                      "constructor %d, allocation %ld: message '%s'", _i, n + 1, err.message);
    }
}
END_TEST

Suite *gated_suite(void)
{
    Suite *s = suite_create("gated");

    TCase *pytorch = tcase_create("pytorch");
    tcase_add_checked_fixture(pytorch, gated_setup, gated_teardown);
    tcase_set_timeout(pytorch, 60);
    tcase_add_test(pytorch, test_fixture_files_have_the_named_and_random_cases);
    tcase_add_test(pytorch, test_lstm_forward_and_bptt_match_pytorch);
    tcase_add_test(pytorch, test_gru_forward_and_bptt_match_pytorch);
    tcase_add_test(pytorch, test_lstm_through_tg_cell_step_matches_pytorch);
    tcase_add_test(pytorch, test_gru_through_tg_cell_step_matches_pytorch);
    tcase_add_test(pytorch, test_comparison_catches_an_lstm_gradient_one_percent_off);
    tcase_add_test(pytorch, test_comparison_catches_a_gru_gradient_one_percent_off);
    suite_add_tcase(s, pytorch);

    TCase *steps = tcase_create("steps");
    tcase_add_test(steps, test_lstm_with_zero_parameters_halves_the_cell_state);
    tcase_add_test(steps, test_gru_with_zero_parameters_halves_the_state);
    tcase_add_loop_test(steps, test_gated_backward_matches_finite_difference, 0, N_FD_CASES);
    tcase_add_loop_test(steps, test_finite_difference_catches_a_gated_backward_one_percent_off, 0, N_FD_CASES);
    suite_add_tcase(s, steps);

    TCase *init = tcase_create("init");
    tcase_add_test(init, test_lstm_init_follows_pytorch);
    tcase_add_test(init, test_gru_init_follows_pytorch);
    tcase_add_test(init, test_same_seed_gives_the_same_cell);
    tcase_add_test(init, test_forget_bias_setter_changes_only_the_f_rows);
    suite_add_tcase(s, init);

    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_lstm_forward_checks_its_arguments);
    tcase_add_test(errors, test_gru_forward_checks_its_arguments);
    tcase_add_test(errors, test_first_error_sticks_through_later_lstm_steps);
    tcase_add_test(errors, test_bad_sizes_give_null_and_frees_take_null);
    tcase_add_loop_test(errors, test_out_of_memory_in_a_constructor_gives_null_and_says_so, 0,
                        N_CONSTRUCTORS);
    suite_add_tcase(s, errors);

    return s;
}
