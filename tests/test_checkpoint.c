/* test_checkpoint.c: the cells' checkpoints under PyTorch's names (src/checkpoint.c): every cell
 * round-trips bit for bit, and a tg_cell refuses another kind's file; a cell's file loads with
 * tg_load by those names; bias_ih + bias_hh load into one bias; bad arguments fail without a
 * crash; checkpoints written from PyTorch load and give PyTorch's outputs. The whole-sequence
 * modules' checkpoints (layer l under NAME_l<l>) do the same: nn.RNN/LSTM/GRU files load and
 * give PyTorch's outputs, a module round-trips, and a file of another layer count or size is
 * refused with a message. A whole run goes in one file (tg_checkpoint): modules, other tensors,
 * metadata and an optimizer's state, which resumes a step bit for bit. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint_files.h"
#include "fixture.h"
#include "scratch_dir.h"
#include "tapegrad.h"

START_TEST(test_rnn_cell_round_trips_bit_exact)
{
    tg_rng rng = tg_rng_new(2);
    tg_rnn_cell *a = tg_rnn_cell_new(5, 9, 1), *b = tg_rnn_cell_new(5, 9, 2);
    fill_values(a->W_x, &rng);
    fill_values(a->W_h, &rng);
    fill_values(a->b, &rng);   /* b holds -0.0f: bias_ih + a zero bias_hh must keep its sign */
    char path[PATH_SIZE];
    tg_error err;
    ck_assert_int_eq(tg_rnn_cell_save(a, scratch_path(path, "rnn.safetensors"), &err), 0);
    ck_assert_int_eq(tg_rnn_cell_load(b, path, &err), 0);
    assert_same_tensor(a->W_x, b->W_x, "W_x");
    assert_same_tensor(a->W_h, b->W_h, "W_h");
    assert_same_tensor(a->b, b->b, "b");
    tg_rnn_cell_free(a);
    tg_rnn_cell_free(b);
}
END_TEST

START_TEST(test_lstm_cell_round_trips_bit_exact)
{
    tg_rng rng = tg_rng_new(3);
    tg_lstm_cell *a = tg_lstm_cell_new(3, 6, 1, NULL), *b = tg_lstm_cell_new(3, 6, 2, NULL);
    fill_values(a->W_x, &rng);
    fill_values(a->W_h, &rng);
    fill_values(a->b, &rng);
    char path[PATH_SIZE];
    tg_error err;
    ck_assert_int_eq(tg_lstm_cell_save(a, scratch_path(path, "lstm.safetensors"), &err), 0);
    ck_assert_int_eq(tg_lstm_cell_load(b, path, &err), 0);
    assert_same_tensor(a->W_x, b->W_x, "W_x");
    assert_same_tensor(a->W_h, b->W_h, "W_h");
    assert_same_tensor(a->b, b->b, "b");
    tg_lstm_cell_free(a);
    tg_lstm_cell_free(b);
}
END_TEST

START_TEST(test_gru_cell_round_trips_bit_exact)
{
    tg_rng rng = tg_rng_new(4);
    tg_gru_cell *a = tg_gru_cell_new(4, 5, 1, NULL), *b = tg_gru_cell_new(4, 5, 2, NULL);
    fill_values(a->W_x, &rng);
    fill_values(a->W_h, &rng);
    fill_values(a->b_x, &rng);
    fill_values(a->b_h, &rng);
    char path[PATH_SIZE];
    tg_error err;
    ck_assert_int_eq(tg_gru_cell_save(a, scratch_path(path, "gru.safetensors"), &err), 0);
    ck_assert_int_eq(tg_gru_cell_load(b, path, &err), 0);
    assert_same_tensor(a->W_x, b->W_x, "W_x");
    assert_same_tensor(a->W_h, b->W_h, "W_h");
    assert_same_tensor(a->b_x, b->b_x, "b_x");
    assert_same_tensor(a->b_h, b->b_h, "b_h");
    tg_gru_cell_free(a);
    tg_gru_cell_free(b);
}
END_TEST

START_TEST(test_tg_cell_round_trips_every_kind_and_refuses_other_cells)
{
    const char *kinds[3] = { "rnn", "lstm", "gru" };
    char path[PATH_SIZE];
    tg_error err;
    for (int k = 0; k < 3; k++) {
        tg_cell *a = tg_cell_new(kinds[k], 3, 4, 10, NULL), *b = tg_cell_new(kinds[k], 3, 4, 20, NULL);
        tg_rng rng = tg_rng_new(5);
        for (int i = 0; i < a->n_params; i++)
            fill_values(a->params[i], &rng);
        ck_assert_int_eq(tg_cell_save(a, scratch_path(path, kinds[k]), &err), 0);
        ck_assert_int_eq(tg_cell_load(b, path, &err), 0);
        for (int i = 0; i < a->n_params; i++)
            assert_same_tensor(a->params[i], b->params[i], kinds[k]);
        tg_cell_free(a);
        tg_cell_free(b);
    }
    tg_cell *lstm = tg_cell_new("lstm", 3, 4, 1, NULL);
    snapshot s = take_snapshot(lstm->params, lstm->n_params);
    ck_assert_int_eq(tg_cell_load(lstm, scratch_path(path, "gru"), &err), -1);   /* a GRU's file */
    char want[PATH_SIZE + 96];
    snprintf(want, sizeof want, "%s: tensor weight_ih has shape [12, 3], the cell needs [16, 3]", path);
    ck_assert_str_eq(err.message, want);
    assert_unchanged(s, lstm->params, lstm->n_params, "lstm from a gru file");

    tg_cell own = *lstm;
    own.name = "mine";
    ck_assert_int_eq(tg_cell_save(&own, scratch_path(path, "mine"), &err), -1);
    snprintf(want, sizeof want, "%s: cell 'mine' is not an rnn, lstm or gru cell; save its params "
             "with tg_save", path);
    ck_assert_str_eq(err.message, want);
    ck_assert_int_eq(tg_cell_load(&own, path, &err), -1);
    own.name = "gru";
    own.impl = NULL;
    ck_assert_int_eq(tg_cell_load(&own, path, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.message, "the gru cell has no impl"));
    tg_cell_free(lstm);
    scratch_dir_assert_holds(3);
}
END_TEST

START_TEST(test_cell_file_loads_with_tg_load_under_pytorch_names)
{
    tg_rnn_cell *cell = tg_rnn_cell_new(2, 3, 8);
    tg_rng rng = tg_rng_new(8);
    fill_values(cell->b, &rng);
    char path[PATH_SIZE];
    tg_error err;
    ck_assert_int_eq(tg_rnn_cell_save(cell, scratch_path(path, "rnn.safetensors"), &err), 0);
    tg_tensor *w_ih = tg_param_new(3, 2), *b_ih = tg_param_new(3, 1), *b_hh = tg_param_new(3, 1);
    b_hh->data[1] = 5.0f;
    tg_named wanted[3] = { { "bias_hh", b_hh }, { "weight_ih", w_ih }, { "bias_ih", b_ih } };
    ck_assert_int_eq(tg_load(path, wanted, 3, &err), 0);   /* [3] loads into 3x1 */
    assert_same_tensor(cell->W_x, w_ih, "weight_ih");
    assert_same_tensor(cell->b, b_ih, "bias_ih");
    for (int i = 0; i < 3; i++)
        ck_assert(same_bits(b_hh->data[i], 0.0f));
    tg_tensor *wrong = tg_param_new(1, 3);                  /* [3] is not 1x3 */
    tg_named as_row = { "bias_ih", wrong };
    ck_assert_int_eq(tg_load(path, &as_row, 1, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.message, ": tensor bias_ih has shape [3], the model needs [1, 3]"));
    ck_assert_int_eq(tg_load(path, NULL, 0, &err), 0);      /* nothing asked: the file is checked */
    tg_param_free(wrong);
    tg_param_free(w_ih);
    tg_param_free(b_ih);
    tg_param_free(b_hh);
    tg_rnn_cell_free(cell);
}
END_TEST

START_TEST(test_hand_made_file_loads_with_bias_ih_plus_bias_hh)
{
    char path[PATH_SIZE];
    write_specs(scratch_path(path, "good.safetensors"), RNN_SPECS, 4, RNN_DATA);
    assert_rnn_loads(path);
}
END_TEST

START_TEST(test_null_and_bad_arguments_fail_without_crashing)
{
    char path[PATH_SIZE];
    scratch_path(path, "x.safetensors");
    tg_error err;
    tg_rnn_cell *rnn = tg_rnn_cell_new(2, 3, 1);
    tg_lstm_cell *lstm = tg_lstm_cell_new(2, 3, 1, NULL);
    tg_gru_cell *gru = tg_gru_cell_new(2, 3, 1, NULL);
    tg_cell *cell = tg_cell_new("gru", 2, 3, 1, NULL);

    ck_assert_int_eq(tg_rnn_cell_save(NULL, path, &err), -1);
    ck_assert_str_eq(err.message + strlen(path), ": cell is NULL");
    ck_assert_int_eq(tg_rnn_cell_save(rnn, NULL, &err), -1);
    ck_assert_str_eq(err.message, "tg_rnn_cell_save: path is NULL");
    ck_assert_int_eq(tg_rnn_cell_load(NULL, NULL, &err), -1);
    ck_assert_str_eq(err.message, "tg_rnn_cell_load: cell is NULL");
    ck_assert_int_eq(tg_rnn_cell_load(rnn, NULL, NULL), -1);
    ck_assert_int_eq(tg_lstm_cell_save(NULL, NULL, NULL), -1);
    ck_assert_int_eq(tg_lstm_cell_save(lstm, NULL, &err), -1);
    ck_assert_str_eq(err.message, "tg_lstm_cell_save: path is NULL");
    ck_assert_int_eq(tg_lstm_cell_load(NULL, path, &err), -1);
    ck_assert_int_eq(tg_lstm_cell_load(lstm, NULL, &err), -1);
    ck_assert_str_eq(err.message, "tg_lstm_cell_load: path is NULL");
    ck_assert_int_eq(tg_gru_cell_save(NULL, path, NULL), -1);
    ck_assert_int_eq(tg_gru_cell_save(gru, NULL, &err), -1);
    ck_assert_int_eq(tg_gru_cell_load(NULL, path, &err), -1);
    ck_assert_int_eq(tg_gru_cell_load(gru, NULL, &err), -1);
    ck_assert_str_eq(err.message, "tg_gru_cell_load: path is NULL");
    ck_assert_int_eq(tg_cell_save(NULL, path, &err), -1);
    ck_assert_int_eq(tg_cell_save(cell, NULL, &err), -1);
    ck_assert_str_eq(err.message, "tg_gru_cell_save: path is NULL");
    ck_assert_int_eq(tg_cell_load(NULL, NULL, &err), -1);
    ck_assert_str_eq(err.message, "tg_cell_load: cell is NULL");
    ck_assert_int_eq(tg_cell_load(cell, NULL, NULL), -1);

    tg_tensor *t = tg_param_new(2, 2);
    tg_named good = { "t", t };
    ck_assert_int_eq(tg_save(NULL, &good, 1, &err), -1);
    ck_assert_str_eq(err.message, "tg_save: path is NULL");
    ck_assert_int_eq(tg_load(NULL, &good, 1, &err), -1);
    ck_assert_str_eq(err.message, "tg_load: path is NULL");
    static const struct { tg_named named[2]; int n; const char *want; } bad[] = {
        { { { "t", NULL } }, -1, ": n is negative (-1)" },
        { { { NULL, NULL } }, 1, ": tensors[0] has no name" },
        { { { "", NULL } }, 1, ": tensors[0] has no name" },
        { { { "t", NULL } }, 1, ": tensors[0] (t) has no tensor data" },
        { { { "\xff", NULL } }, 1, ": tensors[0]: the name is not UTF-8" },
        { { { "__metadata__", NULL } }, 1, ": tensors[0]: \"__metadata__\" is not a tensor name" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(tg_save(path, bad[i].named, bad[i].n, &err), -1);
        ck_assert_str_eq(err.message + strlen(path), bad[i].want);
        ck_assert_int_eq(tg_load(path, bad[i].named, bad[i].n, &err), -1);
        ck_assert_str_eq(err.message + strlen(path), bad[i].want);
        ck_assert_int_eq(tg_load(path, bad[i].named, bad[i].n, NULL), -1);
    }
    ck_assert_int_eq(tg_save(path, NULL, 2, &err), -1);
    ck_assert_str_eq(err.message + strlen(path), ": tensors is NULL with n 2");
    tg_named twice[2] = { { "t", t }, { "t", t } };
    ck_assert_int_eq(tg_save(path, twice, 2, &err), -1);
    ck_assert_str_eq(err.message + strlen(path), ": tensors[0] and tensors[1] are both named t");
    tg_tensor hollow = { 2, 2, NULL, NULL, NULL };
    tg_named no_data = { "h", &hollow };
    ck_assert_int_eq(tg_save(path, &no_data, 1, &err), -1);
    ck_assert_str_eq(err.message + strlen(path), ": tensors[0] (h) has no tensor data");
    float value = 0.0f;
    tg_tensor negative = { -2, 2, &value, NULL, NULL };
    tg_named bad_size = { "n", &negative };
    ck_assert_int_eq(tg_save(path, &bad_size, 1, &err), -1);
    ck_assert_str_eq(err.message + strlen(path), ": tensors[0] (n) has a bad size -2x2");

    /* a cell whose tensors do not fit its sizes */
    rnn->hidden_size = 4;
    ck_assert_int_eq(tg_rnn_cell_save(rnn, path, &err), -1);
    ck_assert_str_eq(err.message + strlen(path), ": the cell's W_x is 3x2, but its sizes make it 4x2");
    rnn->hidden_size = 3;
    tg_tensor *b = lstm->b;
    lstm->b = NULL;
    ck_assert_int_eq(tg_lstm_cell_load(lstm, path, &err), -1);
    ck_assert_str_eq(err.message + strlen(path), ": the cell's b is NULL");
    lstm->b = b;
    gru->input_size = 0;
    ck_assert_int_eq(tg_gru_cell_save(gru, path, &err), -1);
    ck_assert_str_eq(err.message + strlen(path), ": the cell has a bad size (input 0, hidden 3)");
    gru->input_size = 2;
    scratch_dir_assert_holds(0);
    tg_param_free(t);
    tg_rnn_cell_free(rnn);
    tg_lstm_cell_free(lstm);
    tg_gru_cell_free(gru);
    tg_cell_free(cell);
}
END_TEST

/* ---- checkpoints written from PyTorch --------------------------------------------------- */

static float *as_floats(const double *values, int n)
{
    float *out = malloc((size_t)n * sizeof *out);
    ck_assert_ptr_nonnull(out);
    for (int i = 0; i < n; i++)
        out[i] = (float)values[i];
    return out;
}

static void assert_close(const float *got, const double *want, int n, const char *what, int step)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(fabs((double)got[i] - want[i]) <= 2e-6 + 2e-6 * fabs(want[i]),
                      "%s step %d [%d]: tapegrad %.9g, PyTorch %.9g", what, step, i, got[i], want[i]);
}

/* Loads FIXTURES KIND_cell.safetensors into a tg_cell and runs it on the case's inputs: every
 * h_t (and c_t) matches PyTorch's, and the RNN's and LSTM's b is bias_ih + bias_hh exactly. */
static void assert_pytorch_checkpoint_matches(const char *kind)
{
    char msg[256], path[PATH_SIZE];
    fixture_set *set = fixture_load(FIXTURES "cells.txt", msg, sizeof msg);
    ck_assert_msg(set != NULL, "%s", msg);
    const fixture_case *c = NULL;
    for (int i = 0; i < set->n_cases; i++)
        if (strcmp(set->cases[i].name, kind) == 0)
            c = &set->cases[i];
    ck_assert_ptr_nonnull(c);
    const int I = c->input, H = c->hidden, B = c->batch, T = c->steps;
    const bool lstm = strcmp(kind, "lstm") == 0;

    tg_cell *cell = tg_cell_new(kind, I, H, 12345, NULL);
    tg_error err;
    snprintf(path, sizeof path, FIXTURES "%s_cell.safetensors", kind);
    ck_assert_msg(tg_cell_load(cell, path, &err) == 0, "%s", err.message);
    if (strcmp(kind, "gru") != 0) {
        const double *b = fixture_values(c, "b", cell->params[2]->rows, msg, sizeof msg);
        ck_assert_msg(b != NULL, "%s", msg);
        for (int i = 0; i < cell->params[2]->rows; i++)
            ck_assert_msg(same_bits(cell->params[2]->data[i], (float)b[i]), "b[%d]", i);
    }

    const double *x = fixture_values(c, "x", T * I * B, msg, sizeof msg);
    const double *h0 = fixture_values(c, "h0", H * B, msg, sizeof msg);
    const double *h = fixture_values(c, "h", T * H * B, msg, sizeof msg);
    ck_assert_msg(x && h0 && h, "%s", msg);
    float *xf = as_floats(x, T * I * B), *h0f = as_floats(h0, H * B), *c0f = NULL;
    tg_tape *tape = tg_tape_new();
    tg_cell_state state = { tg_input(tape, H, B, h0f), NULL };
    if (lstm) {
        const double *c0 = fixture_values(c, "c0", H * B, msg, sizeof msg);
        ck_assert_msg(c0 != NULL, "%s", msg);
        c0f = as_floats(c0, H * B);
        state.c = tg_input(tape, H, B, c0f);
    }
    const double *cs = lstm ? fixture_values(c, "c", T * H * B, msg, sizeof msg) : NULL;
    for (int t = 0; t < T; t++) {
        state = tg_cell_step(tape, cell, tg_input(tape, I, B, xf + t * I * B), state);
        ck_assert_msg(state.h != NULL, "%s", tg_tape_error(tape));
        assert_close(state.h->data, h + t * H * B, H * B, "h", t);
        if (lstm)
            assert_close(state.c->data, cs + t * H * B, H * B, "c", t);
    }
    free(xf);
    free(h0f);
    free(c0f);
    tg_tape_free(tape);
    tg_cell_free(cell);
    fixture_free(set);
}

START_TEST(test_pytorch_rnn_checkpoint_gives_pytorchs_outputs)
{
    assert_pytorch_checkpoint_matches("rnn");
}
END_TEST

START_TEST(test_pytorch_lstm_checkpoint_gives_pytorchs_outputs)
{
    assert_pytorch_checkpoint_matches("lstm");
}
END_TEST

START_TEST(test_pytorch_gru_checkpoint_gives_pytorchs_outputs)
{
    assert_pytorch_checkpoint_matches("gru");
}
END_TEST

/* ---- the whole-sequence modules ------------------------------------------------------------- */

/* A module of kind "rnn_relu", "lstm" or "gru", its forward, its save and its load. */
typedef struct module {
    tg_rnn *rnn;
    tg_lstm *lstm;
    tg_gru *gru;
} module;

static module module_new(const char *kind, int I, int H, int L, uint64_t seed)
{
    module m = { 0 };
    if (strcmp(kind, "lstm") == 0)
        m.lstm = tg_lstm_new(I, H, L, 0.0f, seed, NULL);
    else if (strcmp(kind, "gru") == 0)
        m.gru = tg_gru_new(I, H, L, 0.0f, seed, NULL);
    else
        m.rnn = tg_rnn_new(I, H, L, TG_RELU, 0.0f, seed, NULL);
    ck_assert(m.rnn || m.lstm || m.gru);
    return m;
}

static void module_free(module *m)
{
    tg_rnn_free(m->rnn);
    tg_lstm_free(m->lstm);
    tg_gru_free(m->gru);
}

static int module_save(const module *m, const char *path, tg_error *err)
{
    return m->lstm ? tg_lstm_save(m->lstm, path, err) : m->gru ? tg_gru_save(m->gru, path, err)
                                                               : tg_rnn_save(m->rnn, path, err);
}

static int module_load(module *m, const char *path, tg_error *err)
{
    return m->lstm ? tg_lstm_load(m->lstm, path, err) : m->gru ? tg_gru_load(m->gru, path, err)
                                                               : tg_rnn_load(m->rnn, path, err);
}

static void module_params(const module *m, tg_tensor ***params, int *n)
{
    *params = m->lstm ? m->lstm->params : m->gru ? m->gru->params : m->rnn->params;
    *n = m->lstm ? m->lstm->n_params : m->gru ? m->gru->n_params : m->rnn->n_params;
}

/* Loads FIXTURES KIND_module.safetensors (written from torch) into a module and runs it on the
 * case's inputs: every output and final state matches PyTorch's. */
static void assert_pytorch_module_matches(const char *kind)
{
    char msg[256], path[PATH_SIZE];
    fixture_set *set = fixture_load(FIXTURES "modules.txt", msg, sizeof msg);
    ck_assert_msg(set != NULL, "%s", msg);
    const fixture_case *c = NULL;
    for (int i = 0; i < set->n_cases; i++)
        if (strcmp(set->cases[i].name, kind) == 0)
            c = &set->cases[i];
    ck_assert_ptr_nonnull(c);
    const int I = c->input, H = c->hidden, B = c->batch, T = c->steps;
    const double *layers = fixture_values(c, "layers", 1, msg, sizeof msg);
    ck_assert_msg(layers != NULL, "%s", msg);
    const int L = (int)layers[0];
    ck_assert(L >= 2 && L <= 3 && T <= 8);
    module m = module_new(kind, I, H, L, 99);
    tg_error err;
    snprintf(path, sizeof path, FIXTURES "%s_module.safetensors", kind);
    ck_assert_msg(module_load(&m, path, &err) == 0, "%s", err.message);

    const bool lstm = m.lstm != NULL;
    const double *x = fixture_values(c, "x", T * I * B, msg, sizeof msg);
    const double *h0 = fixture_values(c, "h0", L * H * B, msg, sizeof msg);
    const double *c0 = lstm ? fixture_values(c, "c0", L * H * B, msg, sizeof msg) : h0;
    const double *out = fixture_values(c, "out", T * H * B, msg, sizeof msg);
    const double *h_n = fixture_values(c, "h_n", L * H * B, msg, sizeof msg);
    const double *c_n = lstm ? fixture_values(c, "c_n", L * H * B, msg, sizeof msg) : h_n;
    ck_assert_msg(x && h0 && c0 && out && h_n && c_n, "%s", msg);
    tg_tape *tape = tg_tape_new();
    tg_tensor *xs[8], *outs[8], *h0s[3], *c0s[3], *h_ns[3], *c_ns[3];
    for (int t = 0; t < T; t++) {
        xs[t] = tg_constant(tape, I, B, NULL);
        fixture_to_float(xs[t]->data, x + t * I * B, I * B);
    }
    for (int l = 0; l < L; l++) {
        h0s[l] = tg_constant(tape, H, B, NULL);
        c0s[l] = tg_constant(tape, H, B, NULL);
        fixture_to_float(h0s[l]->data, h0 + l * H * B, H * B);
        fixture_to_float(c0s[l]->data, c0 + l * H * B, H * B);
    }
    int rc = m.lstm ? tg_lstm_forward(tape, m.lstm, xs, T, h0s, c0s, outs, h_ns, c_ns)
           : m.gru  ? tg_gru_forward(tape, m.gru, xs, T, h0s, outs, h_ns)
                    : tg_rnn_forward(tape, m.rnn, xs, T, h0s, outs, h_ns);
    ck_assert_msg(rc == 0, "%s", tg_tape_error(tape));
    for (int t = 0; t < T; t++)
        assert_close(outs[t]->data, out + t * H * B, H * B, "out", t);
    for (int l = 0; l < L; l++) {
        assert_close(h_ns[l]->data, h_n + l * H * B, H * B, "h_n", l);
        if (lstm)
            assert_close(c_ns[l]->data, c_n + l * H * B, H * B, "c_n", l);
    }
    tg_tape_free(tape);
    module_free(&m);
    fixture_free(set);
}

START_TEST(test_pytorch_module_checkpoints_give_pytorchs_outputs)
{
    assert_pytorch_module_matches("rnn_relu");
    assert_pytorch_module_matches("lstm");
    assert_pytorch_module_matches("gru");
}
END_TEST

START_TEST(test_modules_round_trip_bit_exact_under_layer_names)
{
    static const char *const kinds[] = { "rnn_relu", "lstm", "gru" };
    char path[PATH_SIZE];
    scratch_path(path, "module.safetensors");
    for (int k = 0; k < 3; k++) {
        module a = module_new(kinds[k], 3, 5, 3, 1), b = module_new(kinds[k], 3, 5, 3, 2);
        tg_tensor **pa, **pb;
        int na, nb;
        module_params(&a, &pa, &na);
        module_params(&b, &pb, &nb);
        tg_error err;
        ck_assert_msg(module_save(&a, path, &err) == 0, "%s", err.message);
        ck_assert_msg(module_load(&b, path, &err) == 0, "%s", err.message);
        ck_assert_str_eq(err.message, "");
        for (int p = 0; p < na; p++)
            assert_same_tensor(pa[p], pb[p], "a module's parameter");
        /* the names are PyTorch's: layer 2's weight_hh is W_h of the third layer's cell */
        tg_tensor *w = tg_param_new(pa[nb - 1]->rows, 5);
        tg_named named = { "weight_hh_l2", w };
        ck_assert_msg(tg_load(path, &named, 1, &err) == 0, "%s", err.message);
        assert_same_tensor(w, pa[na - (k == 2 ? 3 : 2)], "weight_hh_l2");
        tg_param_free(w);
        module_free(&a);
        module_free(&b);
    }
}
END_TEST

START_TEST(test_module_load_refuses_other_layer_counts_and_sizes)
{
    char path[PATH_SIZE], want[PATH_SIZE + 128];
    scratch_path(path, "module.safetensors");
    tg_error err;
    module two = module_new("gru", 3, 4, 2, 1), three = module_new("gru", 3, 4, 3, 2);
    module wide = module_new("gru", 3, 6, 2, 3), lstm = module_new("lstm", 3, 4, 2, 4);
    tg_tensor **params;
    int n;
    module_params(&three, &params, &n);
    snapshot before = take_snapshot(params, n);
    ck_assert_int_eq(module_save(&two, path, &err), 0);
    ck_assert_int_eq(module_load(&three, path, &err), -1);
    snprintf(want, sizeof want, "%s: no tensor named weight_ih_l2", path);
    ck_assert_str_eq(err.message, want);
    assert_unchanged(before, params, n, "a 3-layer module given a 2-layer file");
    ck_assert_int_eq(module_save(&three, path, &err), 0);
    module_params(&two, &params, &n);
    before = take_snapshot(params, n);
    ck_assert_int_eq(module_load(&two, path, &err), -1);
    snprintf(want, sizeof want, "%s: holds weight_ih_l2, which the 2-layer module does not have", path);
    ck_assert_str_eq(err.message, want);
    ck_assert_int_eq(module_load(&wide, path, &err), -1);
    snprintf(want, sizeof want, "%s: tensor weight_ih_l0 has shape [12, 3], the 2-layer module needs [18, 3]", path);
    ck_assert_str_eq(err.message, want);
    ck_assert_int_eq(module_load(&lstm, path, &err), -1);
    snprintf(want, sizeof want, "%s: tensor weight_ih_l0 has shape [12, 3], the 2-layer module needs [16, 3]", path);
    ck_assert_str_eq(err.message, want);
    ck_assert_int_eq(module_load(&two, FIXTURES "gru_cell.safetensors", &err), -1);
    ck_assert_str_eq(err.message, FIXTURES "gru_cell.safetensors: no tensor named weight_ih_l0");
    assert_unchanged(before, params, n, "a 2-layer module given other files");
    ck_assert_int_eq(tg_gru_save(NULL, path, &err), -1);
    snprintf(want, sizeof want, "%s: module is NULL", path);
    ck_assert_str_eq(err.message, want);
    ck_assert_int_eq(tg_lstm_load(lstm.lstm, NULL, &err), -1);
    ck_assert_str_eq(err.message, "tg_lstm_load: path is NULL");
    module_free(&two);
    module_free(&three);
    module_free(&wide);
    module_free(&lstm);
}
END_TEST

/* A whole run in one file: a 2-layer GRU, a readout with a 1-D bias, metadata (one key set
 * twice keeps the last value): each reads back by its own call, bit for bit. */
START_TEST(test_one_checkpoint_holds_module_readout_and_metadata)
{
    tg_rng rng = tg_rng_new(5);
    tg_gru *a = tg_gru_new(3, 4, 2, 0.0f, 1, NULL), *b = tg_gru_new(3, 4, 2, 0.0f, 2, NULL);
    tg_tensor *w = tg_param_new(3, 4), *bias = tg_param_new(3, 1), *w2 = tg_param_new(3, 4),
              *bias2 = tg_param_new(3, 1);
    fill_values(w, &rng);
    fill_values(bias, &rng);
    tg_error err;
    tg_checkpoint *ck = tg_checkpoint_new(&err);
    ck_assert_ptr_nonnull(ck);
    ck_assert_int_eq(tg_checkpoint_add_gru(ck, a, &err), 0);
    ck_assert_int_eq(tg_checkpoint_add(ck, "readout.weight", w, &err), 0);
    ck_assert_int_eq(tg_checkpoint_add(ck, "readout.bias", bias, &err), 0);
    ck_assert_int_eq(tg_checkpoint_set(ck, "cell", "lstm", &err), 0);
    ck_assert_int_eq(tg_checkpoint_set(ck, "cell", "gru", &err), 0);
    ck_assert_int_eq(tg_checkpoint_set(ck, "note", "a \"quoted\" line\n", &err), 0);
    ck_assert_int_ne(tg_checkpoint_add(ck, "readout.bias", bias, &err), 0);
    ck_assert_msg(strstr(err.message, "twice"), "%s", err.message);
    ck_assert_int_ne(tg_checkpoint_set(ck, "format", "np", &err), 0);
    char path[PATH_SIZE];
    ck_assert_int_eq(tg_checkpoint_write(ck, scratch_path(path, "run.safetensors"), &err), 0);
    tg_checkpoint_free(ck);

    ck_assert_int_eq(tg_gru_load(b, path, &err), 0);
    for (int i = 0; i < a->n_params; i++)
        assert_same_tensor(a->params[i], b->params[i], "a GRU parameter");
    tg_named named[] = { { "readout.weight", w2 }, { "readout.bias", bias2 } };
    ck_assert_int_eq(tg_load(path, named, 2, &err), 0);
    assert_same_tensor(w, w2, "readout.weight");
    assert_same_tensor(bias, bias2, "readout.bias");
    tg_metadata *md = tg_load_metadata(path, &err);
    ck_assert_ptr_nonnull(md);
    ck_assert_int_eq(md->n, 3);
    ck_assert_str_eq(tg_metadata_get(md, "format"), "pt");
    ck_assert_str_eq(tg_metadata_get(md, "cell"), "gru");
    ck_assert_str_eq(tg_metadata_get(md, "note"), "a \"quoted\" line\n");
    ck_assert_ptr_null(tg_metadata_get(md, "hidden"));
    tg_metadata_free(md);
    char missing[PATH_SIZE];
    ck_assert_ptr_null(tg_load_metadata(scratch_path(missing, "missing.safetensors"), &err));
    ck_assert_msg(strstr(err.message, "missing.safetensors: cannot open"), "%s", err.message);
    size_t n;
    unsigned char *bytes = read_bytes(path, &n);
    ck_assert_msg(strstr((char *)bytes + 8, "\"readout.bias\":{\"dtype\":\"F32\",\"shape\":[3]"),
                  "readout.bias is stored 1-D, as nn.Linear's");
    free(bytes);
    tg_gru_free(a);
    tg_gru_free(b);
    tg_param_free(w);
    tg_param_free(bias);
    tg_param_free(w2);
    tg_param_free(bias2);
}
END_TEST

static void random_grads(tg_tensor *const *params, int n, tg_rng *rng)
{
    for (int i = 0; i < n; i++)
        for (long k = 0; k < (long)params[i]->rows * params[i]->cols; k++)
            params[i]->grad[k] = tg_rng_normal(rng);
}

/* Adam saved after two steps and loaded into a fresh optimizer takes the same third step, bit
 * for bit, as the one that never stopped; a file of another kind is refused. */
START_TEST(test_optimizer_state_round_trips_and_resumes_exactly)
{
    tg_rng rng = tg_rng_new(6);
    tg_tensor *p[2] = { tg_param_new(3, 2), tg_param_new(3, 1) };
    tg_tensor *q[2] = { tg_param_new(3, 2), tg_param_new(3, 1) };
    const char *const names[] = { "w", "b" };
    tg_optimizer *a = tg_optimizer_new(TG_ADAM, p, 2, 0.01f, NULL);
    tg_optimizer *b = tg_optimizer_new(TG_ADAM, q, 2, 0.5f, NULL);
    a->beta1 = 0.8f;
    for (int step = 0; step < 2; step++) {
        random_grads(p, 2, &rng);
        ck_assert_int_eq(tg_optimizer_step(a, NULL), 0);
    }
    tg_error err;
    char path[PATH_SIZE];
    tg_checkpoint *ck = tg_checkpoint_new(NULL);
    ck_assert_int_eq(tg_checkpoint_add_optimizer(ck, a, names, &err), 0);
    ck_assert_int_eq(tg_checkpoint_write(ck, scratch_path(path, "adam.safetensors"), &err), 0);
    tg_checkpoint_free(ck);
    ck_assert_int_eq(tg_optimizer_load(b, path, names, &err), 0);
    ck_assert_int_eq(b->steps, 2);
    ck_assert(b->lr == 0.01f && b->beta1 == 0.8f && b->beta2 == a->beta2 && b->eps == a->eps);
    random_grads(p, 2, &rng);
    for (int i = 0; i < 2; i++) {
        memcpy(q[i]->data, p[i]->data, tensor_bytes(p[i]));
        memcpy(q[i]->grad, p[i]->grad, tensor_bytes(p[i]));
    }
    ck_assert_int_eq(tg_optimizer_step(a, NULL), 0);
    ck_assert_int_eq(tg_optimizer_step(b, NULL), 0);
    for (int i = 0; i < 2; i++)
        assert_same_tensor(p[i], q[i], "a parameter after the resumed step");
    tg_tensor m;
    ck_assert_int_eq(tg_optimizer_state_tensor(b, 1, 1, &m, &err), 0);
    ck_assert(m.rows == 3 && m.cols == 1 && m.grad == NULL);
    ck_assert_int_ne(tg_optimizer_state_tensor(b, 2, 0, &m, &err), 0);
    ck_assert_str_eq(tg_optimizer_state_name(TG_ADAM, 1), "exp_avg_sq");
    ck_assert_ptr_null(tg_optimizer_state_name(TG_SGD, 0));

    tg_optimizer *other = tg_optimizer_new(TG_MOMENTUM, q, 2, 0.1f, NULL);
    ck_assert_int_ne(tg_optimizer_load(other, path, names, &err), 0);
    ck_assert_msg(strstr(err.message, "adam, not momentum"), "%s", err.message);
    ck_assert_int_eq(other->steps, 0);
    tg_optimizer_free(other);
    tg_optimizer_free(a);
    tg_optimizer_free(b);
    for (int i = 0; i < 2; i++) {
        tg_param_free(p[i]);
        tg_param_free(q[i]);
    }
}
END_TEST

Suite *checkpoint_suite(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *round = tcase_create("round_trips");
    tcase_add_checked_fixture(round, scratch_dir_make, scratch_dir_remove);
    tcase_add_test(round, test_rnn_cell_round_trips_bit_exact);
    tcase_add_test(round, test_lstm_cell_round_trips_bit_exact);
    tcase_add_test(round, test_gru_cell_round_trips_bit_exact);
    tcase_add_test(round, test_tg_cell_round_trips_every_kind_and_refuses_other_cells);
    tcase_add_test(round, test_cell_file_loads_with_tg_load_under_pytorch_names);
    suite_add_tcase(s, round);
    TCase *bad = tcase_create("bad_files");
    tcase_add_checked_fixture(bad, scratch_dir_make, scratch_dir_remove);
    tcase_add_test(bad, test_hand_made_file_loads_with_bias_ih_plus_bias_hh);
    tcase_add_test(bad, test_null_and_bad_arguments_fail_without_crashing);
    suite_add_tcase(s, bad);
    TCase *pytorch = tcase_create("pytorch");
    tcase_add_checked_fixture(pytorch, scratch_dir_make, scratch_dir_remove);
    tcase_add_test(pytorch, test_pytorch_rnn_checkpoint_gives_pytorchs_outputs);
    tcase_add_test(pytorch, test_pytorch_lstm_checkpoint_gives_pytorchs_outputs);
    tcase_add_test(pytorch, test_pytorch_gru_checkpoint_gives_pytorchs_outputs);
    suite_add_tcase(s, pytorch);
    TCase *modules = tcase_create("modules");
    tcase_add_checked_fixture(modules, scratch_dir_make, scratch_dir_remove);
    tcase_add_test(modules, test_pytorch_module_checkpoints_give_pytorchs_outputs);
    tcase_add_test(modules, test_modules_round_trip_bit_exact_under_layer_names);
    tcase_add_test(modules, test_module_load_refuses_other_layer_counts_and_sizes);
    suite_add_tcase(s, modules);
    TCase *runs = tcase_create("runs");
    tcase_add_checked_fixture(runs, scratch_dir_make, scratch_dir_remove);
    tcase_add_test(runs, test_one_checkpoint_holds_module_readout_and_metadata);
    tcase_add_test(runs, test_optimizer_state_round_trips_and_resumes_exactly);
    suite_add_tcase(s, runs);
    return s;
}
