/* pytorch_match.c: checks tapegrad's RNN cell against PyTorch reference values.
 * It uses only the public header and the static library. For every case of a fixture file
 * (such as tests/fixtures/rnn_cell.txt) it runs the RNN cell forward and BPTT twice, through
 * the primitive nodes and through tg_rnn_cell_forward, and compares every h_t, the loss and
 * the gradients of W_h, W_x, b, h0 and every x_t.
 *
 * Build and run from the repository root:
 *     cc -Iinclude -Itests/support tests/standalone/pytorch_match.c tests/support/fixture.c build/libtapegrad.a -lm
 *     ./a.out tests/fixtures/rnn_cell.txt
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

static void usage(FILE *to, const char *program)
{
    fprintf(to,
            "usage: %s FIXTURE_FILE\n"
            "Checks tapegrad's RNN cell against PyTorch reference values (e.g.\n"
            "tests/fixtures/rnn_cell.txt, written by tests/fixtures/gen_rnn_fixtures.py).\n"
            "For every case it runs the forward over all steps and BPTT through the primitive\n"
            "nodes (tg_matmul, tg_add, tg_tanh) and through tg_rnn_cell_forward, and compares\n"
            "every h_t, the loss and the gradients of W_h, W_x, b, h0 and every x_t at relative\n"
            "error <= %g. Prints one line per case and then 'N passed, N failed'; exits 1 when\n"
            "a case fails or the file is malformed.\n",
            program, TOLERANCE);
}

/* The fixture's arrays for one case, checked for their sizes. */
typedef struct reference {
    const double *W_h, *W_x, *b, *h0, *x, *y, *h, *loss, *dW_h, *dW_x, *db, *dh0, *dx;
} reference;

static bool get_reference(const fixture_case *c, reference *ref, char *err, size_t err_size)
{
    const long long I = c->input, H = c->hidden, B = c->batch, T = c->steps;
    if (I > MAX_DIM || H > MAX_DIM || B > MAX_DIM || T > MAX_DIM ||
        T * B * (I > H ? I : H) > MAX_DIM * MAX_DIM) {
        snprintf(err, err_size, "case %s: I=%d H=%d B=%d T=%d is too large", c->name, c->input,
                 c->hidden, c->batch, c->steps);
        return false;
    }
    struct { const double **to; const char *key; long long count; } want[] = {
        { &ref->W_h, "W_h", H * H }, { &ref->W_x, "W_x", H * I }, { &ref->b, "b", H },
        { &ref->h0, "h0", H * B }, { &ref->x, "x", T * I * B }, { &ref->y, "y", T * H * B },
        { &ref->h, "h", T * H * B }, { &ref->loss, "loss", 1 }, { &ref->dW_h, "dW_h", H * H },
        { &ref->dW_x, "dW_x", H * I }, { &ref->db, "db", H }, { &ref->dh0, "dh0", H * B },
        { &ref->dx, "dx", T * I * B },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        *want[i].to = fixture_values(c, want[i].key, (int)want[i].count, err, err_size);
        if (!*want[i].to)
            return false;
    }
    return true;
}

/* Run case c on tape (reset first) through the primitive nodes or through the cell, and
 * put the worst relative error over every compared tensor in *w. False, with a message in
 * err, when the case could not be run. */
static bool run_case(tg_tape *tape, const fixture_case *c, const reference *ref, bool use_cell,
                     fixture_worst *w, char *err, size_t err_size)
{
    const int I = c->input, H = c->hidden, B = c->batch, T = c->steps;
    bool ok = false;
    tg_rnn_cell *cell = NULL;
    tg_tensor *W_h, *W_x, *b;
    if (use_cell) {
        cell = tg_rnn_cell_new(I, H, 0);
        W_h = cell ? cell->W_h : NULL;
        W_x = cell ? cell->W_x : NULL;
        b = cell ? cell->b : NULL;
    } else {
        W_h = tg_param_new(H, H);
        W_x = tg_param_new(H, I);
        b = tg_param_new(H, 1);
    }
    tg_tensor **x = calloc((size_t)T, sizeof *x), **h = calloc((size_t)T, sizeof *h);
    if (!W_h || !W_x || !b || !x || !h) {
        snprintf(err, err_size, "case %s: out of memory", c->name);
        goto done;
    }
    fixture_to_float(W_h->data, ref->W_h, H * H);
    fixture_to_float(W_x->data, ref->W_x, H * I);
    fixture_to_float(b->data, ref->b, H);

    tg_tape_reset(tape);
    tg_tensor *h0 = tg_input(tape, H, B, NULL);
    if (h0)
        fixture_to_float(h0->data, ref->h0, H * B);
    tg_tensor *state = h0, *loss = NULL;
    for (int t = 0; t < T; t++) {
        x[t] = tg_input(tape, I, B, NULL);
        tg_tensor *y = tg_input(tape, H, B, NULL);
        if (!x[t] || !y)
            break;
        fixture_to_float(x[t]->data, ref->x + (size_t)t * I * B, I * B);
        fixture_to_float(y->data, ref->y + (size_t)t * H * B, H * B);
        if (use_cell)
            state = tg_rnn_cell_forward(tape, cell, x[t], state);
        else
            state = tg_tanh(tape, tg_add(tape, tg_add(tape, tg_matmul(tape, W_h, state),
                                                      tg_matmul(tape, W_x, x[t])), b));
        h[t] = state;
        tg_tensor *step_loss = tg_mse(tape, state, y);
        loss = t == 0 ? step_loss : tg_add(tape, loss, step_loss);
    }
    if (tg_backward(tape, loss) != 0) {
        const char *message = tg_tape_error(tape);
        snprintf(err, err_size, "case %s: %s", c->name, message ? message : "tg_backward failed");
        goto done;
    }

    *w = (fixture_worst){ .error = 0.0, .tensor = "-" };
    for (int t = 0; t < T; t++)
        fixture_note(w, "h", t, h[t]->data, ref->h + (size_t)t * H * B, H * B);
    fixture_note(w, "loss", -1, loss->data, ref->loss, 1);
    fixture_note(w, "dW_h", -1, W_h->grad, ref->dW_h, H * H);
    fixture_note(w, "dW_x", -1, W_x->grad, ref->dW_x, H * I);
    fixture_note(w, "db", -1, b->grad, ref->db, H);
    fixture_note(w, "dh0", -1, h0->grad, ref->dh0, H * B);
    for (int t = 0; t < T; t++)
        fixture_note(w, "dx", t, x[t]->grad, ref->dx + (size_t)t * I * B, I * B);
    ok = true;

done:
    free(x);
    free(h);
    if (cell) {
        tg_rnn_cell_free(cell);
    } else {
        tg_param_free(W_h);
        tg_param_free(W_x);
        tg_param_free(b);
    }
    return ok;
}

int main(int argc, char **argv)
{
    const char *program = argc > 0 ? argv[0] : "pytorch_match";
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
        fixture_worst by_nodes, by_cell;
        bool ran = get_reference(c, &ref, err, sizeof err) &&
                   run_case(tape, c, &ref, false, &by_nodes, err, sizeof err) &&
                   run_case(tape, c, &ref, true, &by_cell, err, sizeof err);
        if (!ran) {
            printf("FAIL %-16s %s\n", c->name, err);
            failed++;
            continue;
        }
        bool ok = by_nodes.error <= TOLERANCE && by_cell.error <= TOLERANCE;
        printf("%s %-16s I=%d H=%-2d B=%d T=%-2d  worst relative error %.2e (%s) by nodes, "
               "%.2e (%s) by tg_rnn_cell_forward\n", ok ? "ok  " : "FAIL", c->name, c->input,
               c->hidden, c->batch, c->steps, by_nodes.error, by_nodes.tensor, by_cell.error,
               by_cell.tensor);
        if (ok)
            passed++;
        else
            failed++;
        double case_worst = fmax(by_nodes.error, by_cell.error);
        if (isnan(by_nodes.error) || isnan(by_cell.error))
            case_worst = NAN;
        if (!isnan(overall) && !(case_worst <= overall))
            overall = case_worst;
    }
    printf("worst relative error over all cases %.2e (tolerance %g)\n", overall, TOLERANCE);
    printf("%d passed, %d failed\n", passed, failed);
    tg_tape_free(tape);
    fixture_free(set);
    return failed == 0 ? 0 : 1;
}
