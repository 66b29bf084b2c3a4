/* gated_match.c: checks an installed tapegrad's LSTM and GRU cells against PyTorch reference
 * values using only the public header and the static library: for every case of a fixture
 * file (tests/fixtures/lstm_cell.txt or gru_cell.txt) it runs the cell forward and BPTT with
 * tg_lstm_cell_forward or tg_gru_cell_forward and compares every h_t (and c_t), the loss and
 * the gradients of every parameter, h0 (and c0) and every x_t. A case with the key c0 is an
 * LSTM case, one with b_x a GRU case.
 *
 * Build and run from the repository root:
 *     cc -Iinclude -Itests/support tests/standalone/gated_match.c tests/support/fixture.c build/libtapegrad.a -lm
 *     ./a.out tests/fixtures/lstm_cell.txt
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "tapegrad.h"

#define TOLERANCE 2e-3      /* relative error, as fixture_relative_error defines it */
#define MAX_DIM 10000       /* a case larger than this is taken for a corrupt file */
#define MAX_PARAMS 4

static void usage(FILE *to, const char *program)
{
    fprintf(to,
            "usage: %s FIXTURE_FILE\n"
            "Checks tapegrad's LSTM or GRU cell against PyTorch reference values (e.g.\n"
            "tests/fixtures/lstm_cell.txt or gru_cell.txt, written by\n"
            "tests/fixtures/gen_gated_fixtures.py). A case with the key c0 is run through\n"
            "tg_lstm_cell_forward, one with b_x through tg_gru_cell_forward: the forward over\n"
            "all steps and BPTT, comparing every h_t (and c_t), the loss and the gradients of\n"
            "every parameter, h0 (and c0) and every x_t at relative error <= %g. Prints one\n"
            "line per case and then 'N passed, N failed'; exits 1 when a case fails or the\n"
            "file is malformed.\n",
            program, TOLERANCE);
}

/* What differs between the two cells, for reading their cases. */
typedef struct cell_kind {
    const char *name;
    int gates;                                /* blocks of hidden rows in W_x, W_h and b */
    bool has_c;
    int n_params;                             /* W_x (gates H x I), W_h (gates H x H), biases (gates H x 1) */
    const char *param_keys[MAX_PARAMS], *grad_keys[MAX_PARAMS];
} cell_kind;

static const cell_kind LSTM = { "lstm", 4, true, 3, { "W_x", "W_h", "b" }, { "dW_x", "dW_h", "db" } };
static const cell_kind GRU = { "gru", 3, false, 4, { "W_x", "W_h", "b_x", "b_h" },
                               { "dW_x", "dW_h", "db_x", "db_h" } };

/* The fixture's arrays for one case, checked for their sizes; c0, y_c, c, dc0 only for the LSTM. */
typedef struct reference {
    const cell_kind *kind;
    const double *params[MAX_PARAMS], *grads[MAX_PARAMS];
    const double *h0, *c0, *x, *y, *y_c, *h, *c, *loss, *dh0, *dc0, *dx;
} reference;

/* Parameter p of a case's cell is gates H x I (W_x), gates H x H (W_h) or gates H x 1 (a bias). */
static int param_count(const cell_kind *kind, const fixture_case *c, int p)
{
    return kind->gates * c->hidden * (p == 0 ? c->input : p == 1 ? c->hidden : 1);
}

static bool get_reference(const fixture_case *c, reference *ref, char *err, size_t err_size)
{
    const long long I = c->input, H = c->hidden, B = c->batch, T = c->steps;
    if (I > MAX_DIM || H > MAX_DIM || B > MAX_DIM || T > MAX_DIM || T * B * (I > H ? I : H) > MAX_DIM * MAX_DIM) {
        snprintf(err, err_size, "case %s: I=%d H=%d B=%d T=%d is too large", c->name, c->input, c->hidden, c->batch, c->steps);
        return false;
    }
    if (fixture_find(c, "c0"))
        ref->kind = &LSTM;
    else if (fixture_find(c, "b_x"))
        ref->kind = &GRU;
    else {
        snprintf(err, err_size, "case %s: neither an LSTM case (key c0) nor a GRU case (key b_x)", c->name);
        return false;
    }
    const cell_kind *kind = ref->kind;
    for (int p = 0; p < kind->n_params; p++) {
        int count = param_count(kind, c, p);
        ref->params[p] = fixture_values(c, kind->param_keys[p], count, err, err_size);
        ref->grads[p] = fixture_values(c, kind->grad_keys[p], count, err, err_size);
        if (!ref->params[p] || !ref->grads[p])
            return false;
    }
    struct { const double **to; const char *key; long long count; bool lstm_only; } want[] = {
        { &ref->h0, "h0", H * B, false }, { &ref->x, "x", T * I * B, false },
        { &ref->y, "y", T * H * B, false }, { &ref->h, "h", T * H * B, false },
        { &ref->loss, "loss", 1, false }, { &ref->dh0, "dh0", H * B, false },
        { &ref->dx, "dx", T * I * B, false }, { &ref->c0, "c0", H * B, true },
        { &ref->y_c, "y_c", H * B, true }, { &ref->c, "c", T * H * B, true },
        { &ref->dc0, "dc0", H * B, true },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        *want[i].to = NULL;
        if (want[i].lstm_only && !kind->has_c)
            continue;
        *want[i].to = fixture_values(c, want[i].key, (int)want[i].count, err, err_size);
        if (!*want[i].to)
            return false;
    }
    return true;
}

/* The cell of one case, made by its constructor, and its parameters in the kind's order. */
typedef struct model {
    tg_lstm_cell *lstm;
    tg_gru_cell *gru;
    tg_tensor *params[MAX_PARAMS];
} model;

static bool model_new(model *m, const reference *ref, const fixture_case *c)
{
    *m = (model){ 0 };
    if (ref->kind->has_c) {
        m->lstm = tg_lstm_cell_new(c->input, c->hidden, 0, NULL);
        if (!m->lstm)
            return false;
        tg_tensor *params[] = { m->lstm->W_x, m->lstm->W_h, m->lstm->b };
        memcpy(m->params, params, sizeof params);
    } else {
        m->gru = tg_gru_cell_new(c->input, c->hidden, 0, NULL);
        if (!m->gru)
            return false;
        tg_tensor *params[] = { m->gru->W_x, m->gru->W_h, m->gru->b_x, m->gru->b_h };
        memcpy(m->params, params, sizeof params);
    }
    for (int p = 0; p < ref->kind->n_params; p++)
        fixture_to_float(m->params[p]->data, ref->params[p], m->params[p]->rows * m->params[p]->cols);
    return true;
}

static void model_free(model *m)
{
    tg_lstm_cell_free(m->lstm);
    tg_gru_cell_free(m->gru);
}

/* A tape leaf holding n reference values, or NULL (with the tape's error) when out of memory. */
static tg_tensor *leaf(tg_tape *tape, int rows, int cols, const double *values)
{
    tg_tensor *t = tg_input(tape, rows, cols, NULL);
    if (t)
        fixture_to_float(t->data, values, rows * cols);
    return t;
}

/* Run case c on tape (reset first): T steps of the cell, loss = the sum over t of
 * mse(h_t, y_t) (+ mse(c_T, y_c) for the LSTM), tg_backward; put the worst relative error
 * over every compared tensor in *w. False, with a message in err, when it could not run. */
static bool run_case(tg_tape *tape, const fixture_case *c, const reference *ref, fixture_worst *w,
                     char *err, size_t err_size)
{
    const int I = c->input, H = c->hidden, B = c->batch, T = c->steps;
    const cell_kind *kind = ref->kind;
    bool ok = false;
    model m;
    bool made = model_new(&m, ref, c);
    tg_tensor **x = calloc((size_t)T, sizeof *x), **h = calloc((size_t)T, sizeof *h);
    tg_tensor **cs = calloc((size_t)T, sizeof *cs);
    if (!made || !x || !h || !cs) {
        snprintf(err, err_size, "case %s: out of memory", c->name);
        goto done;
    }

    tg_tape_reset(tape);
    tg_tensor *h0 = leaf(tape, H, B, ref->h0);
    tg_tensor *c0 = kind->has_c ? leaf(tape, H, B, ref->c0) : NULL;
    tg_tensor *state_h = h0, *state_c = c0, *loss = NULL;
    for (int t = 0; t < T; t++) {
        x[t] = leaf(tape, I, B, ref->x + (size_t)t * I * B);
        if (kind->has_c)
            tg_lstm_cell_forward(tape, m.lstm, x[t], state_h, state_c, &state_h, &state_c);
        else
            state_h = tg_gru_cell_forward(tape, m.gru, x[t], state_h);
        h[t] = state_h;
        cs[t] = state_c;
        tg_tensor *step_loss = tg_mse(tape, state_h, leaf(tape, H, B, ref->y + (size_t)t * H * B));
        loss = t == 0 ? step_loss : tg_add(tape, loss, step_loss);
    }
    if (kind->has_c)
        loss = tg_add(tape, loss, tg_mse(tape, state_c, leaf(tape, H, B, ref->y_c)));
    if (tg_backward(tape, loss) != 0) {
        const char *message = tg_tape_error(tape);
        snprintf(err, err_size, "case %s: %s", c->name, message ? message : "tg_backward failed");
        goto done;
    }

    *w = (fixture_worst){ .error = 0.0, .tensor = "-" };
    for (int t = 0; t < T; t++) {
        fixture_note(w, "h", t, h[t]->data, ref->h + (size_t)t * H * B, H * B);
        if (kind->has_c)
            fixture_note(w, "c", t, cs[t]->data, ref->c + (size_t)t * H * B, H * B);
    }
    fixture_note(w, "loss", -1, loss->data, ref->loss, 1);
    for (int p = 0; p < kind->n_params; p++)
        fixture_note(w, kind->grad_keys[p], -1, m.params[p]->grad, ref->grads[p],
                m.params[p]->rows * m.params[p]->cols);
    fixture_note(w, "dh0", -1, h0->grad, ref->dh0, H * B);
    if (kind->has_c)
        fixture_note(w, "dc0", -1, c0->grad, ref->dc0, H * B);
    for (int t = 0; t < T; t++)
        fixture_note(w, "dx", t, x[t]->grad, ref->dx + (size_t)t * I * B, I * B);
    ok = true;

done:
    free(x);
    free(h);
    free(cs);
    model_free(&m);
    return ok;
}

int main(int argc, char **argv)
{
    const char *program = argc > 0 ? argv[0] : "gated_match";
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout, program);
        return 0;
    }
    if (argc != 2) {
        usage(stderr, program);
        return 2;
    }
    char err[512];
    fixture_set *set = fixture_load(argv[1], err, sizeof err);
    if (!set) {
        fprintf(stderr, "%s: %s\n", program, err);
        return 1;
    }
    tg_tape *tape = tg_tape_new();
    if (!tape) {
        fprintf(stderr, "%s: out of memory\n", program);
        fixture_free(set);
        return 1;
    }

    int passed = 0, failed = 0;
    double overall = 0.0;
    for (int i = 0; i < set->n_cases; i++) {
        const fixture_case *c = &set->cases[i];
        reference ref;
        fixture_worst w;
        if (!get_reference(c, &ref, err, sizeof err) || !run_case(tape, c, &ref, &w, err, sizeof err)) {
            printf("FAIL %-16s %s\n", c->name, err);
            failed++;
            continue;
        }
        bool ok = w.error <= TOLERANCE;
        printf("%s %-16s %-4s I=%d H=%-2d B=%d T=%-2d  worst relative error %.2e (%s)\n",
               ok ? "ok  " : "FAIL", c->name, ref.kind->name, c->input, c->hidden, c->batch,
               c->steps, w.error, w.tensor);
        if (ok)
            passed++;
        else
            failed++;
        overall = fmax(overall, w.error);
    }
    printf("worst relative error over all cases %.2e (tolerance %g)\n", overall, TOLERANCE);
    printf("%d passed, %d failed\n", passed, failed);
    tg_tape_free(tape);
    fixture_free(set);
    return failed == 0 ? 0 : 1;
}
