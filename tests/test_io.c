/* test_io.c: checkpoints. Tensors and cells round-trip bit for bit; a saved file follows the
 * safetensors layout byte for byte; every kind of bad file is refused with a message naming
 * the file and the problem, and leaves the model as it was; a failed save keeps the old
 * checkpoint and leaves no temporary file; checkpoints written from PyTorch load and give
 * PyTorch's outputs; thousands of corrupted files are refused cleanly or load what they hold. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc_count.h"
#include "fixture.h"
#include "scratch_dir.h"
#include "tapegrad.h"

#define FIXTURES "tests/fixtures/checkpoints/"

/* ---- bytes of files ---------------------------------------------------------------------- */

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    ck_assert_int_ge(size, 0);
    rewind(f);
    unsigned char *bytes = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(bytes);
    ck_assert_uint_eq(fread(bytes, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *n = (size_t)size;
    return bytes;
}

static void write_bytes(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static uint64_t u64_le(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static float f32_le(const unsigned char *b)
{
    uint32_t bits = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static bool same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* ---- parameter snapshots: every byte of data and grad ------------------------------------ */

typedef struct snapshot {
    size_t n;
    unsigned char *bytes;
} snapshot;

static size_t tensor_bytes(const tg_tensor *t) { return (size_t)t->rows * (size_t)t->cols * sizeof(float); }

static snapshot take_snapshot(tg_tensor *const *params, int n)
{
    snapshot s = { 0, NULL };
    for (int i = 0; i < n; i++)
        s.n += 2 * tensor_bytes(params[i]);
    s.bytes = malloc(s.n);
    ck_assert_ptr_nonnull(s.bytes);
    unsigned char *p = s.bytes;
    for (int i = 0; i < n; i++) {
        memcpy(p, params[i]->data, tensor_bytes(params[i]));
        p += tensor_bytes(params[i]);
        memcpy(p, params[i]->grad, tensor_bytes(params[i]));
        p += tensor_bytes(params[i]);
    }
    return s;
}

/* Frees s after checking that params hold exactly the bytes it took. */
static void assert_unchanged(snapshot s, tg_tensor *const *params, int n, const char *context)
{
    snapshot now = take_snapshot(params, n);
    ck_assert_msg(now.n == s.n && memcmp(now.bytes, s.bytes, s.n) == 0,
                  "%s: the model changed on a failed load", context);
    free(now.bytes);
    free(s.bytes);
}

/* Values that stress a bit-exact round trip: signed zeros, subnormals, the extremes, inf, NaN. */
static void fill_values(tg_tensor *t, tg_rng *rng)
{
    static const float specials[] = { -0.0f, 0.0f, FLT_MIN / 8, -FLT_MAX, FLT_MAX, INFINITY,
                                      -INFINITY, 1e-30f };
    const size_t n = (size_t)t->rows * (size_t)t->cols;
    for (size_t i = 0; i < n; i++)
        t->data[i] = i < sizeof specials / sizeof specials[0] ? specials[i] : tg_rng_normal(rng);
    if (n > 8) {
        uint32_t nan_bits = 0x7FC12345u;  /* a quiet NaN with a payload */
        memcpy(&t->data[n - 1], &nan_bits, sizeof nan_bits);
    }
    for (size_t i = 0; i < n; i++)
        t->grad[i] = (float)i;
}

static void assert_same_tensor(const tg_tensor *a, const tg_tensor *b, const char *what)
{
    ck_assert_int_eq(a->rows, b->rows);
    ck_assert_int_eq(a->cols, b->cols);
    ck_assert_msg(memcmp(a->data, b->data, tensor_bytes(a)) == 0, "%s differs after the round trip",
                  what);
}

/* ---- round trips ------------------------------------------------------------------------- */

START_TEST(test_named_tensors_round_trip_bit_exact_with_any_utf8_names)
{
    tg_rng rng = tg_rng_new(1);
    tg_tensor *saved[3] = { tg_param_new(4, 5), tg_param_new(7, 1), tg_param_new(1, 1) };
    tg_tensor *loaded[3] = { tg_param_new(4, 5), tg_param_new(7, 1), tg_param_new(1, 1) };
    const char *names[3] = { "readout.weight", "a \"quoted\\\" name\twith\ncontrol \x01 chars",
                             "gr\xc3\xb6\xc3\x9f\x65 \xe2\x88\x82 \xf0\x9f\x93\x88" };
    tg_named out[3], in[3];
    for (int i = 0; i < 3; i++) {
        fill_values(saved[i], &rng);
        out[i] = (tg_named){ names[i], saved[i] };
        in[i] = (tg_named){ names[2 - i], loaded[2 - i] };   /* any order */
    }
    char path[PATH_SIZE];
    tg_error err = { "left over" };
    ck_assert_int_eq(tg_save(scratch_path(path, "named.safetensors"), out, 3, &err), 0);
    ck_assert_str_eq(err.message, "");
    strcpy(err.message, "left over");
    ck_assert_int_eq(tg_load(path, in, 3, &err), 0);
    ck_assert_str_eq(err.message, "");
    for (int i = 0; i < 3; i++) {
        assert_same_tensor(saved[i], loaded[i], names[i]);
        tg_param_free(saved[i]);
        tg_param_free(loaded[i]);
    }
    scratch_dir_assert_holds(1);
}
END_TEST

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

/* ---- the layout of a saved file ----------------------------------------------------------- */

/* The text of field `field` in tensor `name`'s object of a compact header, e.g. "[12,3]";
 * false when there is none. */
static bool header_field(const char *header, const char *name, const char *field, char *out,
                         size_t size)
{
    char key[96];
    snprintf(key, sizeof key, "\"%s\":{", name);
    const char *object = strstr(header, key);
    if (!object)
        return false;
    object += strlen(key);
    const char *close = strchr(object, '}');
    snprintf(key, sizeof key, "\"%s\":", field);
    const char *value = strstr(object, key);
    if (!close || !value || value > close)
        return false;
    value += strlen(key);
    size_t n = value[0] == '[' ? strcspn(value, "]") + 1 : strcspn(value, ",}");
    if (n >= size)
        return false;
    memcpy(out, value, n);
    out[n] = '\0';
    return true;
}

static bool tensor_offsets(const char *header, const char *name, unsigned long long *begin,
                           unsigned long long *end)
{
    char value[64];
    return header_field(header, name, "data_offsets", value, sizeof value) &&
           sscanf(value, "[%llu,%llu]", begin, end) == 2;
}

START_TEST(test_saved_file_follows_the_safetensors_layout)
{
    tg_lstm_cell *cell = tg_lstm_cell_new(2, 3, 7, NULL);   /* weights 12x2 and 12x3, biases 12 */
    char path[PATH_SIZE];
    tg_error err;
    ck_assert_int_eq(tg_lstm_cell_save(cell, scratch_path(path, "lstm.safetensors"), &err), 0);
    size_t size;
    unsigned char *bytes = read_bytes(path, &size);
    uint64_t n = u64_le(bytes);
    ck_assert_uint_ge(size, 8 + n);
    ck_assert_uint_eq((8 + n) % 8, 0);                /* the data section starts aligned */
    char *header = malloc(n + 1);
    memcpy(header, bytes + 8, n);
    header[n] = '\0';
    ck_assert_uint_eq(strlen(header), n);
    ck_assert_int_eq(header[0], '{');
    size_t last = strcspn(header, " ");                 /* only spaces after the closing brace */
    ck_assert_int_eq(header[last - 1], '}');
    ck_assert_uint_eq(strspn(header + last, " "), n - last);
    ck_assert_ptr_nonnull(strstr(header, "{\"__metadata__\":{\"format\":\"pt\"},"));

    const char *names[4] = { "weight_ih", "weight_hh", "bias_ih", "bias_hh" };
    const char *shapes[4] = { "[12,2]", "[12,3]", "[12]", "[12]" };
    const tg_tensor *sources[4] = { cell->W_x, cell->W_h, cell->b, NULL };
    unsigned long long expected_begin = 0;
    const unsigned char *data = bytes + 8 + n;
    for (int t = 0; t < 4; t++) {
        char value[64];
        ck_assert_msg(header_field(header, names[t], "dtype", value, sizeof value), "%s", names[t]);
        ck_assert_str_eq(value, "\"F32\"");
        ck_assert(header_field(header, names[t], "shape", value, sizeof value));
        ck_assert_str_eq(value, shapes[t]);
        unsigned long long begin, end;
        ck_assert(tensor_offsets(header, names[t], &begin, &end));
        ck_assert_uint_eq(begin, expected_begin);      /* one after another, in this order */
        ck_assert_uint_eq(end - begin, 12 * (t == 0 ? 2 : t == 1 ? 3 : 1) * 4);
        for (unsigned long long k = 0; k < (end - begin) / 4; k++) {
            float want = sources[t] ? sources[t]->data[k] : 0.0f;
            ck_assert_msg(same_bits(f32_le(data + begin + 4 * k), want), "%s[%llu]", names[t], k);
        }
        expected_begin = end;
    }
    ck_assert_uint_eq(size, 8 + n + expected_begin);  /* nothing after the data */
    /* and the bytes are little-endian: 1.0f is 00 00 80 3f */
    tg_tensor *one = tg_param_new(1, 1);
    one->data[0] = 1.0f;
    tg_named named = { "one", one };
    ck_assert_int_eq(tg_save(scratch_path(path, "one.safetensors"), &named, 1, &err), 0);
    free(bytes);
    bytes = read_bytes(path, &size);
    const unsigned char le_one[4] = { 0x00, 0x00, 0x80, 0x3f };
    ck_assert_int_eq(memcmp(bytes + size - 4, le_one, 4), 0);
    free(bytes);
    free(header);
    tg_param_free(one);
    tg_lstm_cell_free(cell);
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

/* ---- hand-made files for an RNN cell with 2 inputs and 3 hidden units -------------------- */

typedef struct spec {
    const char *name, *dtype, *shape;
    unsigned long long begin, end;
} spec;

enum { RNN_DATA = 84 };   /* weight_ih 3x2, weight_hh 3x3, bias_ih 3, bias_hh 3: 21 floats */

static const spec RNN_SPECS[4] = {
    { "weight_ih", "F32", "[3,2]", 0, 24 },
    { "weight_hh", "F32", "[3,3]", 24, 60 },
    { "bias_ih", "F32", "[3]", 60, 72 },
    { "bias_hh", "F32", "[3]", 72, 84 },
};

/* The 8-byte length, header and data_len bytes of data: float k (k = 1, 2, ...) little-endian
 * in every whole 4 bytes, then 0xAB. */
static void write_checkpoint(const char *path, const char *header, size_t data_len)
{
    size_t n = strlen(header);
    unsigned char *bytes = malloc(8 + n + data_len + 1);
    ck_assert_ptr_nonnull(bytes);
    for (int i = 0; i < 8; i++)
        bytes[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(bytes + 8, header, n);
    unsigned char *data = bytes + 8 + n;
    for (size_t k = 0; k < data_len; k++)
        data[k] = 0xAB;
    for (size_t k = 0; 4 * k + 4 <= data_len; k++) {
        float v = (float)(k + 1);
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        for (int i = 0; i < 4; i++)
            data[4 * k + i] = (unsigned char)(bits >> (8 * i));
    }
    write_bytes(path, bytes, 8 + n + data_len);
    free(bytes);
}

static void write_specs(const char *path, const spec *specs, int n, size_t data_len)
{
    char header[2048];
    size_t used = (size_t)snprintf(header, sizeof header, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(header + used, sizeof header - used,
                                 ",\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%llu,%llu]}",
                                 specs[i].name, specs[i].dtype, specs[i].shape, specs[i].begin,
                                 specs[i].end);
    snprintf(header + used, sizeof header - used, "}");
    write_checkpoint(path, header, data_len);
}

/* Loading path into an RNN cell (2 inputs, 3 hidden) fails, with err and without, with the
 * message path + ": " + text containing `want`, and leaves every byte of the cell as it was. */
static void assert_rnn_load_fails(const char *path, const char *want)
{
    tg_rnn_cell *cell = tg_rnn_cell_new(2, 3, 99);
    tg_rng rng = tg_rng_new(99);
    fill_values(cell->b, &rng);
    tg_tensor *params[3] = { cell->W_x, cell->W_h, cell->b };
    snapshot s = take_snapshot(params, 3);
    tg_error err = { "" };
    ck_assert_int_eq(tg_rnn_cell_load(cell, path, &err), -1);
    size_t n = strlen(path);
    ck_assert_msg(strncmp(err.message, path, n) == 0 && strncmp(err.message + n, ": ", 2) == 0,
                  "the message does not start with the path: %s", err.message);
    ck_assert_msg(strstr(err.message + n, want) != NULL, "expected '%s' in: %s", want, err.message);
    ck_assert_int_eq(tg_rnn_cell_load(cell, path, NULL), -1);
    assert_unchanged(s, params, 3, want);
    tg_rnn_cell_free(cell);
}

static void assert_rnn_specs_fail(const spec *specs, int n, size_t data_len, const char *want)
{
    char path[PATH_SIZE];
    write_specs(scratch_path(path, "bad.safetensors"), specs, n, data_len);
    assert_rnn_load_fails(path, want);
}

static void assert_rnn_header_fails(const char *header, size_t data_len, const char *want)
{
    char path[PATH_SIZE];
    write_checkpoint(scratch_path(path, "bad.safetensors"), header, data_len);
    assert_rnn_load_fails(path, want);
}

/* The cell loaded from a file in the layout of RNN_SPECS holds floats 1..21 of its data. */
static void assert_rnn_loads(const char *path)
{
    tg_rnn_cell *cell = tg_rnn_cell_new(2, 3, 1);
    tg_error err = { "left over" };
    ck_assert_msg(tg_rnn_cell_load(cell, path, &err) == 0, "%s", err.message);
    ck_assert_str_eq(err.message, "");
    for (int k = 0; k < 6; k++)
        ck_assert(cell->W_x->data[k] == (float)(k + 1));
    for (int k = 0; k < 9; k++)
        ck_assert(cell->W_h->data[k] == (float)(k + 7));
    for (int k = 0; k < 3; k++)
        ck_assert(cell->b->data[k] == (float)(k + 16) + (float)(k + 19));   /* bias_ih + bias_hh */
    tg_rnn_cell_free(cell);
}

START_TEST(test_hand_made_file_loads_with_bias_ih_plus_bias_hh)
{
    char path[PATH_SIZE];
    write_specs(scratch_path(path, "good.safetensors"), RNN_SPECS, 4, RNN_DATA);
    assert_rnn_loads(path);
}
END_TEST

START_TEST(test_missing_file_fails_naming_the_file)
{
    char path[PATH_SIZE], want[PATH_SIZE + 64];
    scratch_path(path, "nowhere.safetensors");
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
    tg_rnn_cell *cell = tg_rnn_cell_new(2, 3, 1);
    tg_error err;
    ck_assert_int_eq(tg_rnn_cell_load(cell, path, &err), -1);
    ck_assert_str_eq(err.message, want);
    tg_rnn_cell_free(cell);
    assert_rnn_load_fails(path, "cannot open: No such file or directory");
}
END_TEST

START_TEST(test_loading_a_directory_fails)
{
    char path[PATH_SIZE];
    ck_assert_int_eq(mkdir(scratch_path(path, "a_dir"), 0700), 0);
    assert_rnn_load_fails(path, "cannot read: Is a directory");
}
END_TEST

START_TEST(test_file_shorter_than_eight_bytes_fails)
{
    char path[PATH_SIZE];
    scratch_path(path, "short.safetensors");
    const unsigned char bytes[8] = { 2, 0, 0, 0, 0, 0, 0, 0 };
    for (size_t n = 0; n < 8; n++) {
        write_bytes(path, bytes, n);
        char want[96];
        snprintf(want, sizeof want, "%zu bytes is too short for a safetensors file", n);
        assert_rnn_load_fails(path, want);
    }
}
END_TEST

START_TEST(test_header_length_beyond_the_file_fails)
{
    char path[PATH_SIZE];
    scratch_path(path, "long_header.safetensors");
    const uint64_t lengths[] = { 3, 1000, UINT64_C(1) << 63, UINT64_MAX };
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        unsigned char bytes[10] = { 0, 0, 0, 0, 0, 0, 0, 0, '{', '}' };
        for (int b = 0; b < 8; b++)
            bytes[b] = (unsigned char)(lengths[i] >> (8 * b));
        write_bytes(path, bytes, sizeof bytes);
        char want[128];
        snprintf(want, sizeof want, "the header length %llu is larger than the rest of the file "
                 "(2 bytes)", (unsigned long long)lengths[i]);
        assert_rnn_load_fails(path, want);
    }
}
END_TEST

/* A sparse file larger than the limit: its header length fits in the file but is refused
 * before any memory is allocated for it. */
START_TEST(test_header_length_over_the_limit_fails_before_reading_it)
{
    char path[PATH_SIZE];
    FILE *f = fopen(scratch_path(path, "huge.safetensors"), "wb");
    ck_assert_ptr_nonnull(f);
    const unsigned char length[8] = { 0x01, 0xE1, 0xF5, 0x05, 0, 0, 0, 0 };   /* 100000001 */
    ck_assert_uint_eq(fwrite(length, 1, 8, f), 8);
    ck_assert_int_eq(fseek(f, 150000000L, SEEK_SET), 0);
    ck_assert_int_eq(fputc('}', f), '}');
    ck_assert_int_eq(fclose(f), 0);
    assert_rnn_load_fails(path, "the header length 100000001 is over the limit of 100000000 bytes");
    /* with one allocation allowed (the cell-sized buffer), an attempt to allocate the header
     * would turn the message into "out of memory" */
    tg_rnn_cell *cell = tg_rnn_cell_new(2, 3, 1);
    tg_error err;
    alloc_fail_after(1);
    int rc = tg_rnn_cell_load(cell, path, &err);
    alloc_fail_after(-1);
    ck_assert_int_eq(rc, -1);
    ck_assert_ptr_nonnull(strstr(err.message, "is over the limit of 100000000 bytes"));
    tg_rnn_cell_free(cell);
}
END_TEST

START_TEST(test_malformed_json_fails_naming_the_problem_and_place)
{
    static const struct { const char *header, *want; } cases[] = {
        { "", "the header is empty" },
        { "   ", "the header is empty" },
        { "[]", "the header must be a JSON object" },
        { "\"x\"", "the header must be a JSON object" },
        { "{", "the header is not valid JSON: expected a string at header byte 1" },
        { "{\"__metadata__\":{}", "expected ',' or '}' in an object at header byte 18" },
        { "{\"a\" {}}", "expected ':' after a key at header byte 5" },
        { "{\"__metadata__\":{},}", "expected a string at header byte 19" },
        { "{} x", "unexpected bytes after the header's object at header byte 3" },
        { "{}{}", "unexpected bytes after the header's object" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":[1,]}}",
          "expected a value" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":tru}}",
          "expected a value" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":01}}",
          "expected ',' or '}' in an object" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":1.}}",
          "expected a digit after '.'" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":1e}}",
          "expected a digit in an exponent" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":-}}",
          "expected a value" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":'s'}}",
          "expected a value" },
        { "{\"weight\\qih\":{}}", "an unknown escape in a string" },
        { "{\"weight\\u00g1\":{}}", "expected four hex digits after \\u" },
        { "{\"\\ud83d\":{}}", "a high surrogate escape without a low one" },
        { "{\"\\ud83d\\u0041\":{}}", "a high surrogate escape without a low one" },
        { "{\"\\ude00\":{}}", "a low surrogate escape without a high one" },
        { "{\"tab\there\":{}}", "a control character in a string" },
        { "{\"\xff\":{}}", "a string that is not UTF-8" },
        { "{\"\xc0\xaf\":{}}", "a string that is not UTF-8" },            /* overlong '/' */
        { "{\"\xed\xa0\x80\":{}}", "a string that is not UTF-8" },        /* a surrogate */
        { "{\"\xf4\x90\x80\x80\":{}}", "a string that is not UTF-8" },    /* above U+10FFFF */
        { "{\"\xe2\x88\":{}}", "a string that is not UTF-8" },            /* cut short */
        { "{\"abc", "a string without its closing quote" },
        { "{\"__metadata__\":[]}", "\"__metadata__\" must be an object" },
        { "{\"__metadata__\":{\"a\":1}}", "\"__metadata__\" must map names to strings" },
        { "{\"weight_ih\":[1]}", "tensor weight_ih must be an object with dtype, shape and data_offsets" },
        { "{\"weight_ih\":{\"shape\":[3,2],\"data_offsets\":[0,24]}}", "tensor weight_ih has no dtype" },
        { "{\"weight_ih\":{\"dtype\":\"F32\",\"data_offsets\":[0,24]}}", "tensor weight_ih has no shape" },
        { "{\"weight_ih\":{\"dtype\":\"F32\",\"shape\":[3,2]}}", "tensor weight_ih has no data_offsets" },
        { "{\"weight_ih\":{\"dtype\":F32}}", "expected a string" },
    };
    char path[PATH_SIZE];
    scratch_path(path, "bad.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_checkpoint(path, cases[i].header, RNN_DATA);
        assert_rnn_load_fails(path, cases[i].want);
    }
    /* a NUL byte inside the header */
    const unsigned char with_nul[8 + 4] = { 4, 0, 0, 0, 0, 0, 0, 0, '{', '}', 0, ' ' };
    write_bytes(path, with_nul, sizeof with_nul);
    assert_rnn_load_fails(path, "unexpected bytes after the header's object at header byte 2");
}
END_TEST

/* Arrays nested inside an unknown field: accepted up to the depth limit, refused past it. */
START_TEST(test_nesting_deeper_than_the_limit_fails)
{
    char header[1024], path[PATH_SIZE];
    for (int depth = 60; depth <= 66; depth++) {
        /* the top object is level 1, the tensor's object level 2, its fields level 3 */
        int arrays = depth - 2;
        size_t used = (size_t)snprintf(header, sizeof header, "{\"weight_ih\":{\"x\":");
        for (int i = 0; i < arrays; i++)
            header[used++] = '[';
        for (int i = 0; i < arrays; i++)
            header[used++] = ']';
        snprintf(header + used, sizeof header - used,
                 ",\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
                 "\"weight_hh\":{\"dtype\":\"F32\",\"shape\":[3,3],\"data_offsets\":[24,60]},"
                 "\"bias_ih\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[60,72]},"
                 "\"bias_hh\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[72,84]}}");
        write_checkpoint(scratch_path(path, "deep.safetensors"), header, RNN_DATA);
        if (depth <= 64)
            assert_rnn_loads(path);
        else
            assert_rnn_load_fails(path, "the header nests arrays and objects more than 64 deep");
    }
}
END_TEST

START_TEST(test_valid_variations_of_the_header_load)
{
    static const char *const headers[] = {
        /* no metadata, pretty-printed with every kind of whitespace, fields in another order */
        " {\n\t\"bias_hh\" : { \"data_offsets\" : [ 72 , 84 ] , \"shape\" : [ 3 ] , \"dtype\" : \"F32\" } ,\r\n"
        "  \"bias_ih\":{\"shape\":[3],\"dtype\":\"F32\",\"data_offsets\":[60,72]},"
        "  \"weight_hh\":{\"dtype\":\"F32\",\"shape\":[3,3],\"data_offsets\":[24,60]},"
        "  \"weight_ih\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]}\n}\n  \t ",
        /* escaped names, metadata with escapes and a surrogate pair, unknown fields, other
         * tensors of other dtypes (and one empty tensor), a gap in the data section */
        "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"\\ud83d\\ude00 \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9\","
        "\"\\u00e9\":\"\xc3\xa9\"},"
        "\"weight\\u005fih\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24],"
        "\"extra\":{\"a\":[true,false,null,-1.5e-3,0,\"s\",{}],\"b\":[]}},"
        "\"\\u0077eight_hh\":{\"dtype\":\"F32\",\"shape\":[3,3],\"data_offsets\":[24,60]},"
        "\"bias_ih\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[60,72]},"
        "\"bias_hh\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[72,84]},"
        "\"num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[84,92]},"
        "\"half\":{\"dtype\":\"BF16\",\"shape\":[2,1],\"data_offsets\":[96,100]},"
        "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[24,24]},"
        "\"\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[100,101]}}",
    };
    char path[PATH_SIZE];
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        write_checkpoint(scratch_path(path, "variant.safetensors"), headers[i], i == 0 ? RNN_DATA : 104);
        assert_rnn_loads(path);
    }
}
END_TEST

START_TEST(test_duplicate_names_and_fields_fail)
{
    spec twice[5];
    memcpy(twice, RNN_SPECS, sizeof RNN_SPECS);
    twice[4] = (spec){ "weight_hh", "F32", "[3,3]", 84, 120 };
    assert_rnn_specs_fail(twice, 5, 120, "tensor weight_hh appears twice in the header");
    twice[4] = (spec){ "other", "F32", "[1]", 84, 88 };
    twice[3].name = "other";   /* a duplicate the cell does not even ask for */
    assert_rnn_specs_fail(twice, 5, 88, "tensor other appears twice in the header");
    assert_rnn_header_fails("{\"__metadata__\":{},\"__metadata__\":{}}", RNN_DATA,
                            "\"__metadata__\" appears twice");
    assert_rnn_header_fails("{\"weight_ih\":{\"dtype\":\"F32\",\"shape\":[3,2],\"dtype\":\"F32\"}}",
                            RNN_DATA, "tensor weight_ih: \"dtype\" appears twice");
    assert_rnn_header_fails("{\"weight_ih\":{\"shape\":[3,2],\"shape\":[3,2]}}", RNN_DATA,
                            "tensor weight_ih: \"shape\" appears twice");
    assert_rnn_header_fails("{\"weight_ih\":{\"data_offsets\":[0,24],\"data_offsets\":[0,24]}}",
                            RNN_DATA, "tensor weight_ih: \"data_offsets\" appears twice");
}
END_TEST

START_TEST(test_unknown_or_non_f32_dtype_fails_naming_it)
{
    spec specs[4];
    memcpy(specs, RNN_SPECS, sizeof specs);
    specs[1].dtype = "Q7";
    assert_rnn_specs_fail(specs, 4, RNN_DATA, "tensor weight_hh has the unknown dtype \"Q7\"");
    specs[1].dtype = "f32";
    assert_rnn_specs_fail(specs, 4, RNN_DATA, "tensor weight_hh has the unknown dtype \"f32\"");
    specs[1] = (spec){ "weight_hh", "F16", "[3,3]", 24, 42 };
    assert_rnn_specs_fail(specs, 4, RNN_DATA, "tensor weight_hh has dtype F16; only F32 can be loaded");
    specs[1] = (spec){ "weight_hh", "F64", "[3,3]", 84, 156 };
    assert_rnn_specs_fail(specs, 4, 156, "tensor weight_hh has dtype F64; only F32 can be loaded");
    memcpy(specs, RNN_SPECS, sizeof specs);   /* an unused tensor of an unknown dtype */
    spec more[5] = { specs[0], specs[1], specs[2], specs[3], { "odd", "F4", "[1]", 84, 85 } };
    assert_rnn_specs_fail(more, 5, 85, "tensor odd has the unknown dtype \"F4\"");
}
END_TEST

START_TEST(test_shape_mismatch_names_the_tensor_and_both_shapes)
{
    char path[PATH_SIZE], want[PATH_SIZE + 96];
    spec specs[4];
    memcpy(specs, RNN_SPECS, sizeof specs);
    specs[1] = (spec){ "weight_hh", "F32", "[4,4]", 84, 148 };
    write_specs(scratch_path(path, "ckpt.safetensors"), specs, 4, 148);
    tg_rnn_cell *cell = tg_rnn_cell_new(2, 3, 1);
    tg_error err;
    ck_assert_int_eq(tg_rnn_cell_load(cell, path, &err), -1);
    snprintf(want, sizeof want, "%s: tensor weight_hh has shape [4, 4], the cell needs [3, 3]", path);
    ck_assert_str_eq(err.message, want);
    tg_rnn_cell_free(cell);
    assert_rnn_load_fails(path, "tensor weight_hh has shape [4, 4], the cell needs [3, 3]");

    specs[1] = (spec){ "weight_hh", "F32", "[3,3]", 24, 60 };
    specs[2].shape = "[3,1]";   /* PyTorch's biases are 1-D */
    assert_rnn_specs_fail(specs, 4, RNN_DATA, "tensor bias_ih has shape [3, 1], the cell needs [3]");
    specs[2].shape = "[1,3]";
    assert_rnn_specs_fail(specs, 4, RNN_DATA, "tensor bias_ih has shape [1, 3], the cell needs [3]");
    specs[2].shape = "[3]";
    specs[0].shape = "[2,3]";
    assert_rnn_specs_fail(specs, 4, RNN_DATA, "tensor weight_ih has shape [2, 3], the cell needs [3, 2]");
    specs[0].shape = "[6]";
    assert_rnn_specs_fail(specs, 4, RNN_DATA, "tensor weight_ih has shape [6], the cell needs [3, 2]");
    specs[0].shape = "[3,2,1]";
    assert_rnn_specs_fail(specs, 4, RNN_DATA, "tensor weight_ih has shape [3, 2, 1], the cell needs [3, 2]");
    specs[0].shape = "[1,1,1,1,1,1,1,1,1,1,1,3,2]";
    assert_rnn_specs_fail(specs, 4, RNN_DATA,
                          "tensor weight_ih has shape [1, 1, 1, 1, 1, 1, 1, 1, ...], the cell needs [3, 2]");
}
END_TEST

START_TEST(test_missing_tensor_fails_naming_it)
{
    assert_rnn_specs_fail(RNN_SPECS, 3, RNN_DATA, "no tensor named bias_hh");
    spec renamed[4];
    memcpy(renamed, RNN_SPECS, sizeof renamed);
    renamed[0].name = "weight_ih ";
    assert_rnn_specs_fail(renamed, 4, RNN_DATA, "no tensor named weight_ih");
    assert_rnn_header_fails("{}", RNN_DATA, "no tensor named weight_ih");
}
END_TEST

START_TEST(test_offsets_not_matching_the_shape_fail)
{
    spec specs[4];
    memcpy(specs, RNN_SPECS, sizeof specs);
    specs[3].end = 80;
    assert_rnn_specs_fail(specs, 4, RNN_DATA,
                          "tensor bias_hh: data_offsets [72, 80] hold 8 bytes, but F32 [3] needs 12");
    specs[3].end = 84;
    specs[0].shape = "[18446744073709551615,2]";   /* 2^64 - 1 rows: the byte count overflows */
    assert_rnn_specs_fail(specs, 4, RNN_DATA, "tensor weight_ih: data_offsets [0, 24] hold 24 bytes");
}
END_TEST

START_TEST(test_offsets_outside_the_data_section_fail)
{
    spec specs[4];
    memcpy(specs, RNN_SPECS, sizeof specs);
    assert_rnn_specs_fail(specs, 4, RNN_DATA - 1,
                          "tensor bias_hh: data_offsets [72, 84] are not a range inside the data "
                          "section (83 bytes)");
    specs[2].begin = 72, specs[2].end = 60;
    assert_rnn_specs_fail(specs, 4, RNN_DATA, "tensor bias_ih: data_offsets [72, 60] are not a range");
    specs[2].begin = UINT64_MAX - 11, specs[2].end = UINT64_MAX;
    assert_rnn_specs_fail(specs, 4, RNN_DATA, "tensor bias_ih: data_offsets [18446744073709551604, "
                          "18446744073709551615] are not a range inside the data section");
}
END_TEST

START_TEST(test_overlapping_tensors_fail)
{
    spec specs[4];
    memcpy(specs, RNN_SPECS, sizeof specs);
    specs[3].begin = 68, specs[3].end = 80;
    assert_rnn_specs_fail(specs, 4, RNN_DATA, "tensors bias_ih and bias_hh overlap in the data "
                          "section ([60, 72] and [68, 80])");
    specs[3].begin = 60, specs[3].end = 72;   /* the same bytes twice */
    assert_rnn_specs_fail(specs, 4, RNN_DATA, "overlap in the data section ([60, 72] and [60, 72])");
    memcpy(specs, RNN_SPECS, sizeof specs);   /* a tensor the cell does not ask for, over others */
    spec more[5] = { specs[0], specs[1], specs[2], specs[3], { "big", "U8", "[80]", 2, 82 } };
    assert_rnn_specs_fail(more, 5, RNN_DATA, "tensors weight_ih and big overlap in the data section "
                          "([0, 24] and [2, 82])");
}
END_TEST

START_TEST(test_shapes_and_offsets_must_be_whole_numbers)
{
    spec specs[4];
    memcpy(specs, RNN_SPECS, sizeof specs);
    static const struct { const char *shape, *want; } shapes[] = {
        { "[-3,2]", "tensor weight_ih: shape holds -3, not a whole number from 0 to 2^64 - 1" },
        { "[3.0,2]", "tensor weight_ih: shape holds 3.0, not a whole number" },
        { "[3e0,2]", "tensor weight_ih: shape holds 3e0, not a whole number" },
        { "[-0,2]", "tensor weight_ih: shape holds -0, not a whole number" },
        { "[18446744073709551616,2]", "tensor weight_ih: shape holds 18446744073709551616, not" },
        { "[\"3\",2]", "the header is not valid JSON: expected a value" },
        { "3", "the header is not valid JSON: expected '['" },
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        specs[0].shape = shapes[i].shape;
        assert_rnn_specs_fail(specs, 4, RNN_DATA, shapes[i].want);
    }
    static const struct { const char *header, *want; } offsets[] = {
        { "{\"weight_ih\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24,48]}}",
          "tensor weight_ih: data_offsets must be [begin, end]" },
        { "{\"weight_ih\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[24]}}",
          "tensor weight_ih: data_offsets must be [begin, end]" },
        { "{\"weight_ih\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[]}}",
          "tensor weight_ih: data_offsets must be [begin, end]" },
        { "{\"weight_ih\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[-24,0]}}",
          "tensor weight_ih: data_offsets holds -24, not a whole number" },
        { "{\"weight_ih\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,2.4e1]}}",
          "tensor weight_ih: data_offsets holds 2.4e1, not a whole number" },
    };
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++)
        assert_rnn_header_fails(offsets[i].header, RNN_DATA, offsets[i].want);
}
END_TEST

START_TEST(test_out_of_memory_while_loading_leaves_the_model_unchanged)
{
    char path[PATH_SIZE];
    write_specs(scratch_path(path, "good.safetensors"), RNN_SPECS, 4, RNN_DATA);
    tg_rnn_cell *cell = tg_rnn_cell_new(2, 3, 5);
    tg_tensor *params[3] = { cell->W_x, cell->W_h, cell->b };
    int failures = 0;
    for (long allowed = 0; allowed < 40; allowed++) {
        snapshot s = take_snapshot(params, 3);
        tg_error err = { "" };
        alloc_fail_after(allowed);
        int rc = tg_rnn_cell_load(cell, path, &err);
        alloc_fail_after(-1);
        if (rc == 0) {
            free(s.bytes);
            break;
        }
        failures++;
        ck_assert_msg(strstr(err.message, ": out of memory") != NULL, "%s", err.message);
        assert_unchanged(s, params, 3, "out of memory");
    }
    ck_assert_int_ge(failures, 4);   /* the buffer, the header, the strings, the entries... */
    ck_assert(cell->W_x->data[0] == 1.0f);
    tg_rnn_cell_free(cell);
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

/* ---- crash-safe saving --------------------------------------------------------------------- */

START_TEST(test_save_into_a_missing_directory_fails_and_writes_nothing)
{
    char path[PATH_SIZE], want[PATH_SIZE + 64];
    scratch_path(path, "missing/rnn.safetensors");
    tg_rnn_cell *cell = tg_rnn_cell_new(2, 3, 1);
    tg_error err;
    ck_assert_int_eq(tg_rnn_cell_save(cell, path, &err), -1);
    snprintf(want, sizeof want, "%s: cannot open for writing: No such file or directory", path);
    ck_assert_str_eq(err.message, want);
    ck_assert_int_eq(tg_rnn_cell_save(cell, path, NULL), -1);
    scratch_dir_assert_holds(0);
    tg_rnn_cell_free(cell);
}
END_TEST

/* A file size limit (RLIMIT_FSIZE) makes the writes of a large save fail part way (EFBIG):
 * the smaller checkpoint saved before is still there, whole, and no temporary file is left. */
START_TEST(test_failed_write_keeps_the_previous_checkpoint)
{
    char path[PATH_SIZE], want[PATH_SIZE + 64];
    scratch_path(path, "model.safetensors");
    tg_rnn_cell *small = tg_rnn_cell_new(2, 3, 1), *big = tg_rnn_cell_new(60, 60, 2);
    tg_error err;
    ck_assert_int_eq(tg_rnn_cell_save(small, path, &err), 0);
    size_t before_size;
    unsigned char *before = read_bytes(path, &before_size);

    struct rlimit old, limited;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    limited = (struct rlimit){ 10000, old.rlim_max };
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &limited), 0);
    int rc = tg_rnn_cell_save(big, path, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);

    ck_assert_int_eq(rc, -1);
    snprintf(want, sizeof want, "%s: cannot write: File too large", path);
    ck_assert_str_eq(err.message, want);
    scratch_dir_assert_holds(1);
    size_t after_size;
    unsigned char *after = read_bytes(path, &after_size);
    ck_assert_uint_eq(after_size, before_size);
    ck_assert_int_eq(memcmp(before, after, before_size), 0);
    tg_rnn_cell *loaded = tg_rnn_cell_new(2, 3, 3);
    ck_assert_int_eq(tg_rnn_cell_load(loaded, path, &err), 0);
    assert_same_tensor(small->W_h, loaded->W_h, "W_h");
    free(before);
    free(after);
    tg_rnn_cell_free(loaded);
    tg_rnn_cell_free(small);
    tg_rnn_cell_free(big);
}
END_TEST

START_TEST(test_failed_rename_leaves_no_temporary_file)
{
    char path[PATH_SIZE];
    ck_assert_int_eq(mkdir(scratch_path(path, "taken"), 0700), 0);
    tg_gru_cell *cell = tg_gru_cell_new(2, 3, 1, NULL);
    tg_error err;
    ck_assert_int_eq(tg_gru_cell_save(cell, path, &err), -1);
    scratch_dir_assert_refused_rename(path, err.message);
    tg_gru_cell_free(cell);
}
END_TEST

START_TEST(test_saving_again_replaces_the_whole_file_and_clears_the_error)
{
    char path[PATH_SIZE];
    scratch_path(path, "cell.safetensors");
    tg_lstm_cell *big = tg_lstm_cell_new(5, 8, 1, NULL);
    tg_rnn_cell *small = tg_rnn_cell_new(2, 3, 2), *loaded = tg_rnn_cell_new(2, 3, 3);
    tg_error err = { "left over" };
    ck_assert_int_eq(tg_lstm_cell_save(big, path, &err), 0);
    ck_assert_str_eq(err.message, "");
    strcpy(err.message, "left over");
    ck_assert_int_eq(tg_rnn_cell_save(small, path, &err), 0);
    ck_assert_str_eq(err.message, "");
    size_t size;
    free(read_bytes(path, &size));
    ck_assert_uint_lt(size, 400);
    ck_assert_int_eq(tg_rnn_cell_load(loaded, path, &err), 0);
    assert_same_tensor(small->W_x, loaded->W_x, "W_x");
    scratch_dir_assert_holds(1);
    tg_lstm_cell_free(big);
    tg_rnn_cell_free(small);
    tg_rnn_cell_free(loaded);
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

/* ---- corrupted files ------------------------------------------------------------------------- */

/* A checkpoint changed at random: bits flipped anywhere or in the header, cut short, header
 * bytes overwritten with JSON-ish or random bytes, the header length changed, bytes appended,
 * a piece of the header removed or repeated (with the length made to fit). */
static size_t corrupt(const unsigned char *in, size_t n, unsigned char *out, tg_rng *rng)
{
    static const char json_bytes[] = "{}[]\":,0123456789 \\u-.eE\x00\x7f\xff";
    const uint64_t header_end = 8 + u64_le(in);
    memcpy(out, in, n);
    uint64_t r = tg_rng_next(rng);
    size_t changes = 1 + (size_t)(r >> 8) % 4;
    switch (r % 7) {
    case 0:
        for (size_t i = 0; i < changes; i++)
            out[tg_rng_next(rng) % n] ^= (unsigned char)(1u << tg_rng_next(rng) % 8);
        return n;
    case 1:
        for (size_t i = 0; i < changes; i++)
            out[tg_rng_next(rng) % header_end] ^= (unsigned char)(1u << tg_rng_next(rng) % 8);
        return n;
    case 2:
        return (size_t)(tg_rng_next(rng) % n);
    case 3:
        for (size_t i = 0; i < 2 * changes; i++) {
            uint64_t pick = tg_rng_next(rng);
            out[8 + pick % (header_end - 8)] = pick & 256 ? (unsigned char)(pick >> 16)
                                                          : (unsigned char)json_bytes[(pick >> 16) % (sizeof json_bytes - 1)];
        }
        return n;
    case 4: {
        uint64_t length = tg_rng_next(rng);
        if (length & 1)
            length = header_end - 8 + (length >> 1) % 33 - 16;   /* a near miss */
        for (int i = 0; i < 8; i++)
            out[i] = (unsigned char)(length >> (8 * i));
        return n;
    }
    case 5: {
        size_t extra = 1 + (size_t)(tg_rng_next(rng) % 16);
        for (size_t i = 0; i < extra; i++)
            out[n + i] = (unsigned char)tg_rng_next(rng);
        return n + extra;
    }
    default: {   /* remove or repeat header bytes [from, from + len) */
        size_t from = 8 + (size_t)(tg_rng_next(rng) % (header_end - 8));
        size_t len = 1 + (size_t)(tg_rng_next(rng) % 12);
        if (from + len > header_end)
            len = header_end - from;
        bool repeat = tg_rng_next(rng) & 1;
        size_t new_n = repeat ? n + len : n - len;
        if (repeat) {
            memcpy(out + from + len, in + from, n - from);
        } else {
            memcpy(out + from, in + from + len, n - from - len);
        }
        uint64_t length = header_end - 8 + (repeat ? len : 0) - (repeat ? 0 : len);
        for (int i = 0; i < 8; i++)
            out[i] = (unsigned char)(length >> (8 * i));
        return new_n;
    }
    }
}

/* After a successful load of bytes[0..n-1]: the cell holds the F32 values the file's header
 * points to (found in the header text by header_field), with b = bias_ih + bias_hh. */
static void assert_cell_holds_the_file(const unsigned char *bytes, size_t n, tg_tensor *const *params)
{
    uint64_t length = u64_le(bytes);
    ck_assert_uint_le(8 + length, n);
    char *header = malloc(length + 1);
    memcpy(header, bytes + 8, length);
    header[length] = '\0';
    const unsigned char *data = bytes + 8 + length;
    const char *names[4] = { "weight_ih", "weight_hh", "bias_ih", "bias_hh" };
    unsigned long long begin[4], end[4];
    for (int t = 0; t < 4; t++)
        ck_assert_msg(tensor_offsets(header, names[t], &begin[t], &end[t]),
                      "loaded, but the test cannot find %s in: %s", names[t], header);
    for (int t = 0; t < 2; t++)
        for (unsigned long long k = 0; k < (end[t] - begin[t]) / 4; k++)
            ck_assert(same_bits(params[t]->data[k], f32_le(data + begin[t] + 4 * k)));
    for (unsigned long long k = 0; k < (end[2] - begin[2]) / 4; k++) {
        float ih = f32_le(data + begin[2] + 4 * k), hh = f32_le(data + begin[3] + 4 * k);
        ck_assert(same_bits(params[2]->data[k], hh == 0.0f ? ih : ih + hh));
    }
    free(header);
}

START_TEST(test_thousands_of_corrupted_files_fail_cleanly_or_load_what_they_hold)
{
    char path[PATH_SIZE], lstm_path[PATH_SIZE];
    tg_lstm_cell *lstm = tg_lstm_cell_new(3, 4, 1, NULL);
    tg_rnn_cell *rnn = tg_rnn_cell_new(3, 4, 1);
    tg_error err;
    ck_assert_int_eq(tg_lstm_cell_save(lstm, scratch_path(lstm_path, "lstm.safetensors"), &err), 0);
    size_t sizes[2];
    unsigned char *originals[2] = { read_bytes(lstm_path, &sizes[0]),
                                    read_bytes(FIXTURES "rnn_cell.safetensors", &sizes[1]) };
    unsigned char *bytes = malloc(sizes[0] + sizes[1] + 64);
    tg_tensor *params[2][3] = { { lstm->W_x, lstm->W_h, lstm->b }, { rnn->W_x, rnn->W_h, rnn->b } };
    tg_rng rng = tg_rng_new(2024);
    int loaded = 0, refused = 0;
    scratch_path(path, "corrupt.safetensors");
    for (int i = 0; i < 4000; i++) {
        int base = i % 2;
        size_t n = corrupt(originals[base], sizes[base], bytes, &rng);
        remove(path);   /* a new file each time: ext4 flushes a file rewritten by truncation */
        write_bytes(path, bytes, n);
        snapshot s = take_snapshot(params[base], 3);
        int rc = base == 0 ? tg_lstm_cell_load(lstm, path, &err) : tg_rnn_cell_load(rnn, path, &err);
        if (rc == 0) {
            loaded++;
            free(s.bytes);
            assert_cell_holds_the_file(bytes, n, params[base]);
        } else {
            ck_assert_int_eq(rc, -1);
            refused++;
            ck_assert_msg(strncmp(err.message, path, strlen(path)) == 0, "%s", err.message);
            assert_unchanged(s, params[base], 3, err.message);
        }
    }
    ck_assert_int_ge(refused, 2000);
    ck_assert_int_ge(loaded, 100);   /* flips in the data or the metadata, appended bytes... */
    free(bytes);
    free(originals[0]);
    free(originals[1]);
    tg_lstm_cell_free(lstm);
    tg_rnn_cell_free(rnn);
}
END_TEST

Suite *io_suite(void)
{
    Suite *s = suite_create("io");
    TCase *round = tcase_create("round_trips");
    TCase *bad = tcase_create("bad_files");
    TCase *save = tcase_create("saving");
    TCase *pytorch = tcase_create("pytorch");
    TCase *fuzz = tcase_create("corruption");
    TCase *cases[] = { round, bad, save, pytorch, fuzz };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tcase_add_checked_fixture(cases[i], scratch_dir_make, scratch_dir_remove);
        suite_add_tcase(s, cases[i]);
    }
    tcase_set_timeout(fuzz, 120);
    tcase_add_test(round, test_named_tensors_round_trip_bit_exact_with_any_utf8_names);
    tcase_add_test(round, test_rnn_cell_round_trips_bit_exact);
    tcase_add_test(round, test_lstm_cell_round_trips_bit_exact);
    tcase_add_test(round, test_gru_cell_round_trips_bit_exact);
    tcase_add_test(round, test_tg_cell_round_trips_every_kind_and_refuses_other_cells);
    tcase_add_test(round, test_saved_file_follows_the_safetensors_layout);
    tcase_add_test(round, test_cell_file_loads_with_tg_load_under_pytorch_names);
    tcase_add_test(bad, test_hand_made_file_loads_with_bias_ih_plus_bias_hh);
    tcase_add_test(bad, test_missing_file_fails_naming_the_file);
    tcase_add_test(bad, test_loading_a_directory_fails);
    tcase_add_test(bad, test_file_shorter_than_eight_bytes_fails);
    tcase_add_test(bad, test_header_length_beyond_the_file_fails);
    tcase_add_test(bad, test_header_length_over_the_limit_fails_before_reading_it);
    tcase_add_test(bad, test_malformed_json_fails_naming_the_problem_and_place);
    tcase_add_test(bad, test_nesting_deeper_than_the_limit_fails);
    tcase_add_test(bad, test_valid_variations_of_the_header_load);
    tcase_add_test(bad, test_duplicate_names_and_fields_fail);
    tcase_add_test(bad, test_unknown_or_non_f32_dtype_fails_naming_it);
    tcase_add_test(bad, test_shape_mismatch_names_the_tensor_and_both_shapes);
    tcase_add_test(bad, test_missing_tensor_fails_naming_it);
    tcase_add_test(bad, test_offsets_not_matching_the_shape_fail);
    tcase_add_test(bad, test_offsets_outside_the_data_section_fail);
    tcase_add_test(bad, test_overlapping_tensors_fail);
    tcase_add_test(bad, test_shapes_and_offsets_must_be_whole_numbers);
    tcase_add_test(bad, test_out_of_memory_while_loading_leaves_the_model_unchanged);
    tcase_add_test(bad, test_null_and_bad_arguments_fail_without_crashing);
    tcase_add_test(save, test_save_into_a_missing_directory_fails_and_writes_nothing);
    tcase_add_test(save, test_failed_write_keeps_the_previous_checkpoint);
    tcase_add_test(save, test_failed_rename_leaves_no_temporary_file);
    tcase_add_test(save, test_saving_again_replaces_the_whole_file_and_clears_the_error);
    tcase_add_test(pytorch, test_pytorch_rnn_checkpoint_gives_pytorchs_outputs);
    tcase_add_test(pytorch, test_pytorch_lstm_checkpoint_gives_pytorchs_outputs);
    tcase_add_test(pytorch, test_pytorch_gru_checkpoint_gives_pytorchs_outputs);
    tcase_add_test(fuzz, test_thousands_of_corrupted_files_fail_cleanly_or_load_what_they_hold);
    return s;
}
