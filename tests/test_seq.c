/* test_seq.c: the whole-sequence modules tg_rnn (tanh and ReLU), tg_lstm and tg_gru
 * (src/seq.c). With 1 to 3 layers, their outputs, final states, loss and every gradient
 * (parameters, initial states, inputs) match torch.nn.RNN / LSTM / GRU
 * (tests/fixtures/modules.txt), and the comparison catches a gradient 1% off; dropout repeats
 * with its seed, p = 0 or eval is no dropout, and a mask is 0 or 1/(1-p) with about p zeros;
 * the init follows PyTorch's modules; every misuse gives NULL or -1 and a message. On a no-grad
 * tape (tg_tape_set_no_grad) a module gives the same values bit for bit, keeps no node and no
 * grad, and a second call allocates nothing. */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"
#include "fixture.h"
#include "tape.h"
#include "tape_errors.h"
#include "tapegrad.h"

#define SEQ_FIXTURES "tests/fixtures/modules.txt"
#define SEQ_TOLERANCE 1e-4           /* relative error against PyTorch (fixture.h) */
#define SEQ_MAX 16                   /* the most steps and layers a fixture case may have */

/* ---- a module of any kind, as the fixtures name it ------------------------------------------ */

typedef enum { RNN_TANH, RNN_RELU, LSTM, GRU } seq_kind;

typedef struct seq_model {
    seq_kind kind;
    tg_rnn *rnn;
    tg_lstm *lstm;
    tg_gru *gru;
    tg_tensor **params;
    int n_params, per_layer, layers;
} seq_model;

static seq_model model_new(seq_kind kind, int I, int H, int L, float dropout, uint64_t seed)
{
    seq_model m = { .kind = kind, .layers = L, .per_layer = kind == GRU ? 4 : 3 };
    if (kind == LSTM) {
        m.lstm = tg_lstm_new(I, H, L, dropout, seed, NULL);
        ck_assert_ptr_nonnull(m.lstm);
        m.params = m.lstm->params, m.n_params = m.lstm->n_params;
    } else if (kind == GRU) {
        m.gru = tg_gru_new(I, H, L, dropout, seed, NULL);
        ck_assert_ptr_nonnull(m.gru);
        m.params = m.gru->params, m.n_params = m.gru->n_params;
    } else {
        m.rnn = tg_rnn_new(I, H, L, kind == RNN_RELU ? TG_RELU : TG_TANH, dropout, seed, NULL);
        ck_assert_ptr_nonnull(m.rnn);
        m.params = m.rnn->params, m.n_params = m.rnn->n_params;
    }
    ck_assert_int_eq(m.n_params, m.per_layer * L);
    return m;
}

static void model_free(seq_model *m)
{
    tg_rnn_free(m->rnn);
    tg_lstm_free(m->lstm);
    tg_gru_free(m->gru);
}

static void model_set_training(seq_model *m, int training)
{
    if (m->rnn)
        m->rnn->training = training;
    if (m->lstm)
        m->lstm->training = training;
    if (m->gru)
        m->gru->training = training;
}

static int model_forward(seq_model *m, tg_tape *tape, tg_tensor *const *x, int T, tg_tensor *const *h0,
                         tg_tensor *const *c0, tg_tensor **out, tg_tensor **h_n, tg_tensor **c_n)
{
    if (m->lstm)
        return tg_lstm_forward(tape, m->lstm, x, T, h0, c0, out, h_n, c_n);
    if (m->gru)
        return tg_gru_forward(tape, m->gru, x, T, h0, out, h_n);
    return tg_rnn_forward(tape, m->rnn, x, T, h0, out, h_n);
}

/* ---- the modules against PyTorch ------------------------------------------------------------ */

static const char *const PARAM_KEYS[2][4] = { { "W_x", "W_h", "b" }, { "W_x", "W_h", "b_x", "b_h" } };

static seq_kind kind_of(const char *case_name)
{
    static const char *const prefixes[] = { "rnn_tanh_", "rnn_relu_", "lstm_", "gru_" };
    for (int k = 0; k < 4; k++)
        if (strncmp(case_name, prefixes[k], strlen(prefixes[k])) == 0)
            return (seq_kind)k;
    ck_abort_msg("case %s: no module kind in its name", case_name);
    return RNN_TANH;
}

/* The values of key (count of them), or the test fails naming the case. */
static const double *ref(const fixture_case *c, const char *key, long count)
{
    char err[256];
    const double *v = fixture_values(c, key, (int)count, err, sizeof err);
    ck_assert_msg(v != NULL, "%s", err);
    return v;
}

static tg_tensor *leaf(tg_tape *tape, int rows, int cols, const double *values, bool constant)
{
    tg_tensor *t = constant ? tg_constant(tape, rows, cols, NULL) : tg_input(tape, rows, cols, NULL);
    ck_assert_ptr_nonnull(t);
    fixture_to_float(t->data, values, (long)rows * cols);
    return t;
}

static void scale_grad(tg_tensor *t, float s)
{
    for (long k = 0; k < (long)t->rows * t->cols; k++)
        t->grad[k] *= s;
}

/* Runs fixture case c as gen_module_fixtures.py does and returns the worst relative error over
 * every output, final state, the loss and every gradient; grad_scale != 1 first scales all of
 * our gradients (a backward that is wrong by that factor). */
static fixture_worst check_case(const fixture_case *c, float grad_scale)
{
    const int I = c->input, H = c->hidden, B = c->batch, T = c->steps;
    const int L = (int)ref(c, "layers", 1)[0];
    ck_assert_msg(T <= SEQ_MAX && L >= 1 && L <= SEQ_MAX, "case %s: too many steps or layers", c->name);
    seq_model m = model_new(kind_of(c->name), I, H, L, 0.0f, 1);
    const bool lstm = m.kind == LSTM;
    const char *const *keys = PARAM_KEYS[m.kind == GRU];
    char key[32];
    for (int p = 0; p < m.n_params; p++) {
        tg_tensor *t = m.params[p];
        snprintf(key, sizeof key, "%s_l%d", keys[p % m.per_layer], p / m.per_layer);
        fixture_to_float(t->data, ref(c, key, (long)t->rows * t->cols), (long)t->rows * t->cols);
    }
    tg_tape *tape = tg_tape_new();
    tg_tensor *x[SEQ_MAX], *out[SEQ_MAX], *h0[SEQ_MAX], *c0[SEQ_MAX], *h_n[SEQ_MAX], *c_n[SEQ_MAX];
    const long HB = (long)H * B, IB = (long)I * B;
    for (int t = 0; t < T; t++)
        x[t] = leaf(tape, I, B, ref(c, "x", T * IB) + t * IB, false);
    for (int l = 0; l < L; l++) {
        h0[l] = leaf(tape, H, B, ref(c, "h0", L * HB) + l * HB, false);
        c0[l] = lstm ? leaf(tape, H, B, ref(c, "c0", L * HB) + l * HB, false) : NULL;
    }
    ck_assert_int_eq(model_forward(&m, tape, x, T, h0, c0, out, h_n, c_n), 0);
    tg_tensor *loss = NULL;
    for (int t = 0; t < T; t++) {
        tg_tensor *step = tg_mse(tape, out[t], leaf(tape, H, B, ref(c, "y", T * HB) + t * HB, true));
        loss = loss ? tg_add(tape, loss, step) : step;
    }
    for (int l = 0; l < L; l++) {
        loss = tg_add(tape, loss, tg_mse(tape, h_n[l], leaf(tape, H, B, ref(c, "y_h", L * HB) + l * HB, true)));
        if (lstm)
            loss = tg_add(tape, loss, tg_mse(tape, c_n[l], leaf(tape, H, B, ref(c, "y_c", L * HB) + l * HB, true)));
    }
    ck_assert_msg(tg_backward(tape, loss) == 0, "case %s: %s", c->name, tg_tape_error(tape));

    fixture_worst w = { 0 };
    for (int p = 0; grad_scale != 1.0f && p < m.n_params; p++)
        scale_grad(m.params[p], grad_scale);
    for (int t = 0; t < T; t++) {
        if (grad_scale != 1.0f)
            scale_grad(x[t], grad_scale);
        fixture_note(&w, "out", t, out[t]->data, ref(c, "out", T * HB) + t * HB, HB);
        fixture_note(&w, "dx", t, x[t]->grad, ref(c, "dx", T * IB) + t * IB, IB);
    }
    for (int l = 0; l < L; l++) {
        fixture_note(&w, "h_n", l, h_n[l]->data, ref(c, "h_n", L * HB) + l * HB, HB);
        fixture_note(&w, "dh0", l, h0[l]->grad, ref(c, "dh0", L * HB) + l * HB, HB);
        if (lstm) {
            fixture_note(&w, "c_n", l, c_n[l]->data, ref(c, "c_n", L * HB) + l * HB, HB);
            fixture_note(&w, "dc0", l, c0[l]->grad, ref(c, "dc0", L * HB) + l * HB, HB);
        }
    }
    fixture_note(&w, "loss", -1, loss->data, ref(c, "loss", 1), 1);
    for (int p = 0; p < m.n_params; p++) {
        tg_tensor *t = m.params[p];
        snprintf(key, sizeof key, "d%s_l%d", keys[p % m.per_layer], p / m.per_layer);
        fixture_note(&w, key, -1, t->grad, ref(c, key, (long)t->rows * t->cols), (long)t->rows * t->cols);
    }
    tg_tape_free(tape);
    model_free(&m);
    return w;
}

static fixture_set *load_fixtures(void)
{
    char err[256];
    fixture_set *set = fixture_load(SEQ_FIXTURES, err, sizeof err);
    ck_assert_msg(set != NULL, "%s", err);
    ck_assert_int_ge(set->n_cases, 20);
    return set;
}

START_TEST(test_modules_with_1_to_3_layers_match_pytorch)
{
    fixture_set *set = load_fixtures();
    bool layers_seen[4] = { false };
    for (int i = 0; i < set->n_cases; i++) {
        fixture_worst w = check_case(&set->cases[i], 1.0f);
        ck_assert_msg(w.error <= SEQ_TOLERANCE, "case %s: worst relative error %g in %s",
                      set->cases[i].name, w.error, w.tensor);
        layers_seen[(int)fixture_find(&set->cases[i], "layers")->values[0]] = true;
    }
    ck_assert(layers_seen[1] && layers_seen[2] && layers_seen[3]);
    fixture_free(set);
}
END_TEST

START_TEST(test_comparison_catches_gradients_one_percent_off)
{
    fixture_set *set = load_fixtures();
    for (int i = 0; i < set->n_cases; i++) {
        fixture_worst w = check_case(&set->cases[i], 1.01f);
        ck_assert_msg(w.error > SEQ_TOLERANCE, "case %s: 1%% off gave only %g", set->cases[i].name,
                      w.error);
    }
    fixture_free(set);
}
END_TEST

/* ---- dropout ----------------------------------------------------------------------------------- */

enum { DI = 3, DH = 40, DB = 25, DT = 10 };

/* The outputs of a 2-layer module over a fixed sequence, into out (DT * DH * DB floats). */
static void run_fixed(seq_model *m, float *out_values)
{
    tg_tape *tape = tg_tape_new();
    tg_rng rng = tg_rng_new(5);
    tg_tensor *x[DT], *out[DT], *h_n[2], *c_n[2];
    for (int t = 0; t < DT; t++) {
        x[t] = tg_constant(tape, DI, DB, NULL);
        tg_init_uniform(x[t], -1.0f, 1.0f, &rng, NULL);
    }
    ck_assert_int_eq(model_forward(m, tape, x, DT, NULL, NULL, out, h_n, c_n), 0);
    for (int t = 0; t < DT; t++)
        memcpy(out_values + (long)t * DH * DB, out[t]->data, sizeof(float) * DH * DB);
    tg_tape_free(tape);
}

static bool same_floats(const float *a, const float *b, long n)
{
    return memcmp(a, b, (size_t)n * sizeof(float)) == 0;
}

START_TEST(test_dropout_repeats_with_its_seed_and_differs_without)
{
    const long n = (long)DT * DH * DB;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)), *c = malloc(n * sizeof(float));
    for (seq_kind kind = RNN_TANH; kind <= GRU; kind++) {
        seq_model m1 = model_new(kind, DI, DH, 2, 0.5f, 77), m2 = model_new(kind, DI, DH, 2, 0.5f, 77);
        run_fixed(&m1, a);
        run_fixed(&m2, b);
        ck_assert_msg(same_floats(a, b, n), "kind %d: the same seed gave other masks", kind);
        run_fixed(&m1, c);   /* the generator has moved on: new masks */
        ck_assert_msg(!same_floats(a, c, n), "kind %d: a second pass repeated the masks", kind);
        model_free(&m1);
        model_free(&m2);
    }
    free(a);
    free(b);
    free(c);
}
END_TEST

START_TEST(test_dropout_zero_or_eval_is_no_dropout)
{
    const long n = (long)DT * DH * DB;
    float *none = malloc(n * sizeof(float)), *zero = malloc(n * sizeof(float)), *eval = malloc(n * sizeof(float));
    for (seq_kind kind = RNN_TANH; kind <= GRU; kind++) {
        seq_model m0 = model_new(kind, DI, DH, 2, 0.0f, 9), m5 = model_new(kind, DI, DH, 2, 0.5f, 9);
        model_set_training(&m0, 0);
        run_fixed(&m0, none);              /* eval, p = 0 */
        model_set_training(&m0, 1);
        run_fixed(&m0, zero);              /* training, p = 0 */
        model_set_training(&m5, 0);
        run_fixed(&m5, eval);              /* eval, p = 0.5: the same weights (same seed) */
        ck_assert_msg(same_floats(none, zero, n), "kind %d: p = 0 changed the outputs", kind);
        ck_assert_msg(same_floats(none, eval, n), "kind %d: dropout acted in eval", kind);
        model_set_training(&m5, 1);
        run_fixed(&m5, eval);
        ck_assert_msg(!same_floats(none, eval, n), "kind %d: p = 0.5 while training did nothing", kind);
        model_free(&m0);
        model_free(&m5);
    }
    free(none);
    free(zero);
    free(eval);
}
END_TEST

/* A 2-layer ReLU RNN whose layer 1 passes its input through (W_x = I, W_h = 0, b = 0) and whose
 * layer 0 gives positive outputs: then the training outputs over the eval ones are the mask. */
START_TEST(test_dropout_mask_is_zero_or_scaled_by_one_over_keep)
{
    const float p = 0.3f;
    const long n = (long)DT * DH * DB;
    seq_model m = model_new(RNN_RELU, DI, DH, 2, p, 3);
    tg_rnn_cell *top = m.rnn->layers[1];
    memset(top->W_x->data, 0, sizeof(float) * DH * DH);
    memset(top->W_h->data, 0, sizeof(float) * DH * DH);
    memset(top->b->data, 0, sizeof(float) * DH);
    for (int i = 0; i < DH; i++)
        top->W_x->data[i * DH + i] = 1.0f;
    memset(m.rnn->layers[0]->W_h->data, 0, sizeof(float) * DH * DH);
    for (int i = 0; i < DH; i++)
        m.rnn->layers[0]->b->data[i] = 5.0f;          /* pre-activations > 4.5: ReLU passes them */
    float *plain = malloc(n * sizeof(float)), *dropped = malloc(n * sizeof(float));
    model_set_training(&m, 0);
    run_fixed(&m, plain);
    model_set_training(&m, 1);
    run_fixed(&m, dropped);
    long zeros = 0;
    double sum = 0.0;
    for (long k = 0; k < n; k++) {
        ck_assert_float_gt(plain[k], 0.0f);
        float mask = dropped[k] / plain[k];
        ck_assert_msg(mask == 0.0f || fabsf(mask - 1.0f / (1.0f - p)) < 1e-6f,
                      "value %ld: mask %g is neither 0 nor 1/(1-p)", k, mask);
        zeros += mask == 0.0f;
        sum += mask;
    }
    /* n = 10,000 Bernoulli(p) draws: the share of zeros is within 4 standard deviations of p
     * (0.018), and the mean of the mask, 1 in expectation, within about the same */
    double sd = sqrt(p * (1 - p) / n);
    ck_assert_msg(fabs((double)zeros / n - p) < 4 * sd, "share of zeros %g, not about %g",
                  (double)zeros / n, p);
    ck_assert_msg(fabs(sum / n - 1.0) < 4 * sd / (1 - p), "mean mask %g, not about 1", sum / n);
    free(plain);
    free(dropped);
    model_free(&m);
}
END_TEST

/* ---- init and errors --------------------------------------------------------------------------- */

static void assert_within(const tg_tensor *t, float bound, const char *what)
{
    bool nonzero = false;
    for (long k = 0; k < (long)t->rows * t->cols; k++) {
        ck_assert_msg(fabsf(t->data[k]) <= bound, "%s[%ld] = %g is outside +-%g", what, k, t->data[k], bound);
        nonzero |= t->data[k] != 0.0f;
    }
    ck_assert_msg(nonzero, "%s is all zeros", what);
}

START_TEST(test_init_is_pytorchs_and_layers_above_take_hidden_inputs)
{
    const int I = 6, H = 16;
    const float k = 1.0f / sqrtf((float)H);
    for (seq_kind kind = RNN_TANH; kind <= GRU; kind++) {
        seq_model m = model_new(kind, I, H, 3, 0.0f, 11);
        for (int p = 0; p < m.n_params; p++) {
            tg_tensor *t = m.params[p];
            int role = p % m.per_layer, layer = p / m.per_layer;
            if (role == 0)
                ck_assert_int_eq(t->cols, layer == 0 ? I : H);
            /* the RNN's and LSTM's b is bias_ih + bias_hh: two draws in +-k */
            assert_within(t, role == 2 && kind != GRU ? 2 * k : k, "a parameter");
        }
        ck_assert_msg(memcmp(m.params[1]->data, m.params[m.per_layer + 1]->data,
                             sizeof(float) * H) != 0, "layers 0 and 1 start alike");
        model_free(&m);
    }
}
END_TEST

START_TEST(test_constructors_refuse_bad_arguments_with_messages)
{
    tg_error err;
    ck_assert_ptr_null(tg_lstm_new(3, 4, 0, 0.0f, 1, &err));
    ck_assert_str_eq(err.message, "tg_lstm_new: num_layers is 0; it must be >= 1");
    ck_assert_ptr_null(tg_gru_new(0, 4, 1, 0.0f, 1, &err));
    ck_assert_str_eq(err.message, "tg_gru_new: bad size: 0 inputs, 4 hidden units (each must be >= 1)");
    ck_assert_ptr_null(tg_rnn_new(3, 4, 2, TG_TANH, 1.5f, 1, &err));
    ck_assert_str_eq(err.message, "tg_rnn_new: dropout is 1.5; it must be in [0, 1]");
    ck_assert_ptr_null(tg_rnn_new(3, 4, 2, TG_TANH, NAN, 1, &err));
    ck_assert_str_eq(err.message, "tg_rnn_new: dropout is nan; it must be in [0, 1]");
    ck_assert_ptr_null(tg_rnn_new(3, 4, 2, (tg_nonlinearity)7, 0.0f, 1, &err));
    ck_assert_str_eq(err.message, "tg_rnn_new: nonlinearity 7 is neither TG_TANH nor TG_RELU");
    ck_assert_ptr_null(tg_lstm_new(3, 20000, 1, 0.0f, 1, &err));
    ck_assert_str_eq(err.message, "tg_lstm_new: tg_lstm_cell_new: bad size: 3 inputs, 20000 hidden "
                     "units make weights of over 2^30 values");
    tg_gru *gru = tg_gru_new(3, 4, 2, 0.2f, 1, &err);
    ck_assert_ptr_nonnull(gru);
    ck_assert_str_eq(err.message, "");
    tg_gru_free(gru);
    tg_rnn_free(NULL);
    tg_lstm_free(NULL);
    tg_gru_free(NULL);
}
END_TEST

START_TEST(test_forward_refuses_bad_sequences_with_messages)
{
    tg_tape *tape = tg_tape_new();
    tg_lstm *lstm = tg_lstm_new(3, 4, 2, 0.0f, 1, NULL);
    tg_tensor *out[3] = { (tg_tensor *)1, (tg_tensor *)1, (tg_tensor *)1 }, *h_n[2], *c_n[2];
    tg_tensor *x[3] = { tg_constant(tape, 3, 2, NULL), tg_constant(tape, 3, 2, NULL), tg_constant(tape, 3, 5, NULL) };
    ck_assert_int_eq(tg_lstm_forward(tape, lstm, x, 3, NULL, NULL, out, h_n, c_n), -1);
    assert_error(tape, "tg_lstm_forward: x[2] is 3x5, it must be 3x2 (input x batch, the batch of x[0])");
    ck_assert_ptr_null(out[0]);
    ck_assert_ptr_null(h_n[1]);
    tg_tape_reset(tape);
    x[0] = tg_constant(tape, 3, 2, NULL), x[1] = NULL;
    ck_assert_int_eq(tg_lstm_forward(tape, lstm, x, 2, NULL, NULL, out, NULL, NULL), -1);
    assert_error(tape, "tg_lstm_forward: x[1] is NULL");
    tg_tape_reset(tape);
    x[0] = tg_constant(tape, 3, 2, NULL);
    ck_assert_int_eq(tg_lstm_forward(tape, lstm, x, 0, NULL, NULL, out, NULL, NULL), -1);
    assert_error(tape, "tg_lstm_forward: steps is 0; it must be >= 1");
    tg_tape_reset(tape);
    x[0] = tg_constant(tape, 3, 2, NULL);
    tg_tensor *h0[2] = { tg_constant(tape, 4, 2, NULL), tg_constant(tape, 4, 3, NULL) };
    ck_assert_int_eq(tg_lstm_forward(tape, lstm, x, 1, h0, NULL, out, NULL, NULL), -1);
    assert_error(tape, "tg_lstm_forward: h0[1] is 4x3, it must be 4x2 (hidden x batch)");
    tg_tape_reset(tape);
    x[0] = tg_constant(tape, 3, 2, NULL);
    tg_tensor *c0[2] = { tg_constant(tape, 4, 2, NULL), NULL };
    ck_assert_int_eq(tg_lstm_forward(tape, lstm, x, 1, NULL, c0, out, NULL, NULL), -1);
    assert_error(tape, "tg_lstm_forward: c0[1] is NULL");
    tg_tape_reset(tape);
    ck_assert_int_eq(tg_lstm_forward(tape, NULL, x, 1, NULL, NULL, out, NULL, NULL), -1);
    assert_error(tape, "tg_lstm_forward: the module is NULL");
    tg_tape_reset(tape);
    ck_assert_int_eq(tg_gru_forward(tape, (tg_gru *)NULL, NULL, 1, NULL, out, NULL), -1);
    assert_error(tape, "tg_gru_forward: the module is NULL");
    tg_tape_reset(tape);
    tg_rnn *rnn = tg_rnn_new(3, 4, 1, TG_RELU, 0.0f, 1, NULL);
    ck_assert_int_eq(tg_rnn_forward(tape, rnn, NULL, 1, NULL, out, NULL), -1);
    assert_error(tape, "tg_rnn_forward: x is NULL");
    tg_tape_reset(tape);
    x[0] = tg_constant(tape, 3, 2, NULL);
    ck_assert_int_eq(tg_rnn_forward(tape, rnn, x, 1, NULL, NULL, NULL), -1);
    assert_error(tape, "tg_rnn_forward: outputs is NULL");
    tg_tape_reset(tape);
    x[0] = tg_constant(tape, 3, 2, NULL);
    rnn->dropout = -0.5f;
    ck_assert_int_eq(tg_rnn_forward(tape, rnn, x, 1, NULL, out, NULL), -1);
    assert_error(tape, "tg_rnn_forward: dropout is -0.5; it must be in [0, 1]");
    assert_usable_after_reset(tape);
    ck_assert_int_eq(tg_rnn_forward(NULL, rnn, x, 1, NULL, out, NULL), -1);
    tg_rnn_free(rnn);
    tg_lstm_free(lstm);
    tg_tape_free(tape);
}
END_TEST

/* ---- inference: a forward on a no-grad tape -------------------------------------------------- */

/* One forward of m over DT steps from given initial states on tape (reset first): its outputs
 * and final states copied into values, (DT + 4) * DH * DB floats. Returns the allocations the
 * reset, the leaves and the forward made (counted before any check: Check's own allocate). */
static long forward_into(seq_model *m, tg_tape *tape, bool no_grad, const float *x_values,
                         const float *s_values, float *values)
{
    long before = alloc_count();
    tg_tape_reset(tape);
    tg_tensor *x[DT], *out[DT], *h0[2], *c0[2], *h_n[2], *c_n[2] = { NULL, NULL };
    for (int t = 0; t < DT; t++)
        x[t] = tg_constant(tape, DI, DB, x_values + (long)t * DI * DB);
    for (int l = 0; l < 2; l++) {
        h0[l] = tg_constant(tape, DH, DB, s_values + (long)l * DH * DB);
        c0[l] = tg_constant(tape, DH, DB, s_values + (long)(2 + l) * DH * DB);
    }
    int rc = model_forward(m, tape, x, DT, h0, c0, out, h_n, c_n);
    long allocations = alloc_count() - before;
    ck_assert_int_eq(rc, 0);
    const long block = (long)DH * DB;
    for (int t = 0; t < DT; t++)
        memcpy(values + t * block, out[t]->data, (size_t)block * sizeof(float));
    for (int l = 0; l < 2; l++) {
        memcpy(values + (DT + l) * block, h_n[l]->data, (size_t)block * sizeof(float));
        if (c_n[l])
            memcpy(values + (DT + 2 + l) * block, c_n[l]->data, (size_t)block * sizeof(float));
    }
    ck_assert_msg(no_grad == (out[DT - 1]->grad == NULL && h_n[0]->grad == NULL),
                  "a no-grad tape's results have no grad, a recording one's do");
    return allocations;
}

START_TEST(test_no_grad_forward_equals_recording_one_and_allocates_nothing_after_warm_up)
{
    const long n = (long)(DT + 4) * DH * DB;
    float *x = malloc((size_t)DT * DI * DB * sizeof(float)), *s = malloc(4 * DH * DB * sizeof(float));
    float *recorded = calloc((size_t)n, sizeof(float)), *inferred = calloc((size_t)n, sizeof(float));
    tg_rng rng = tg_rng_new(12);
    for (long k = 0; k < (long)DT * DI * DB; k++)
        x[k] = tg_rng_normal(&rng);
    for (long k = 0; k < 4L * DH * DB; k++)
        s[k] = 0.5f * tg_rng_normal(&rng);
    for (seq_kind kind = RNN_TANH; kind <= GRU; kind++) {
        seq_model m = model_new(kind, DI, DH, 2, 0.0f, 31);
        tg_tape *recording = tg_tape_new(), *inference = tg_tape_new();
        tg_tape_set_no_grad(inference, 1);
        forward_into(&m, recording, false, x, s, recorded);
        forward_into(&m, inference, true, x, s, inferred);
        ck_assert_msg(same_floats(recorded, inferred, n), "kind %d: inference gave other values", kind);
        ck_assert_int_eq(tg_tape_nodes(inference, NULL, 0), 0);
        size_t reserved = tg_tape_reserved_bytes(inference);
        long allocations = forward_into(&m, inference, true, x, s, inferred);
        ck_assert_msg(allocations == 0, "kind %d: a second inference allocated %ld times", kind,
                      allocations);
        ck_assert_int_eq(tg_tape_reserved_bytes(inference), reserved);
        ck_assert_msg(same_floats(recorded, inferred, n), "kind %d: the second call differs", kind);
        tg_tape_free(recording);
        tg_tape_free(inference);
        model_free(&m);
    }
    free(x);
    free(s);
    free(recorded);
    free(inferred);
}
END_TEST

/* A loss made on a no-grad tape has no grad: tg_backward refuses it and no parameter changes. */
START_TEST(test_backward_refuses_a_no_grad_loss)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *w = tg_param_new(2, 2);
    tg_tape_set_no_grad(tape, 1);
    tg_tensor *loss = tg_sum(tape, tg_matmul(tape, w, tg_input(tape, 2, 1, NULL)));
    ck_assert_ptr_nonnull(loss);
    ck_assert_ptr_null(loss->grad);
    ck_assert_int_eq(tg_backward(tape, loss), -1);
    assert_error(tape, "tg_backward: the loss depends on no parameter and no tg_input tensor");
    tg_tape_set_no_grad(tape, 0);
    tg_tape_reset(tape);
    loss = tg_sum(tape, tg_matmul(tape, w, tg_input(tape, 2, 1, NULL)));
    ck_assert_int_eq(tg_backward(tape, loss), 0);
    tg_param_free(w);
    tg_tape_free(tape);
}
END_TEST

Suite *seq_suite(void)
{
    Suite *s = suite_create("seq");
    TCase *pytorch = tcase_create("pytorch");
    tcase_set_timeout(pytorch, 60);
    tcase_add_test(pytorch, test_modules_with_1_to_3_layers_match_pytorch);
    tcase_add_test(pytorch, test_comparison_catches_gradients_one_percent_off);
    suite_add_tcase(s, pytorch);
    TCase *dropout = tcase_create("dropout");
    tcase_add_test(dropout, test_dropout_repeats_with_its_seed_and_differs_without);
    tcase_add_test(dropout, test_dropout_zero_or_eval_is_no_dropout);
    tcase_add_test(dropout, test_dropout_mask_is_zero_or_scaled_by_one_over_keep);
    suite_add_tcase(s, dropout);
    TCase *misuse = tcase_create("misuse");
    tcase_add_test(misuse, test_init_is_pytorchs_and_layers_above_take_hidden_inputs);
    tcase_add_test(misuse, test_constructors_refuse_bad_arguments_with_messages);
    tcase_add_test(misuse, test_forward_refuses_bad_sequences_with_messages);
    suite_add_tcase(s, misuse);
    TCase *inference = tcase_create("inference");
    tcase_add_test(inference, test_no_grad_forward_equals_recording_one_and_allocates_nothing_after_warm_up);
    tcase_add_test(inference, test_backward_refuses_a_no_grad_loss);
    suite_add_tcase(s, inference);
    return s;
}
