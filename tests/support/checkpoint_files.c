/* checkpoint_files.c: the bytes of files, snapshots of a model, and safetensors files made by
 * hand for an RNN cell (2 inputs, 3 hidden units), with the checks that loading them fails
 * or succeeds as it should. */
#include <check.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint_files.h"
#include "scratch_dir.h"

unsigned char *read_bytes(const char *path, size_t *n)
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
    bytes[size] = '\0'; /* so that a caller may search it as text */
    fclose(f);
    *n = (size_t)size;
    return bytes;
}

void write_bytes(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

uint64_t u64_le(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

float f32_le(const unsigned char *b)
{
    uint32_t bits = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

bool same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

size_t tensor_bytes(const tg_tensor *t) { return (size_t)t->rows * (size_t)t->cols * sizeof(float); }

snapshot take_snapshot(tg_tensor *const *params, int n)
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
void assert_unchanged(snapshot s, tg_tensor *const *params, int n, const char *context)
{
    snapshot now = take_snapshot(params, n);
    ck_assert_msg(now.n == s.n && memcmp(now.bytes, s.bytes, s.n) == 0,
                  "%s: the model changed on a failed load", context);
    free(now.bytes);
    free(s.bytes);
}

/* Values that stress a bit-exact round trip: signed zeros, subnormals, the extremes, inf, NaN. */
void fill_values(tg_tensor *t, tg_rng *rng)
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

void assert_same_tensor(const tg_tensor *a, const tg_tensor *b, const char *what)
{
    ck_assert_int_eq(a->rows, b->rows);
    ck_assert_int_eq(a->cols, b->cols);
    ck_assert_msg(memcmp(a->data, b->data, tensor_bytes(a)) == 0, "%s differs after the round trip",
                  what);
}

const spec RNN_SPECS[4] = {
    { "weight_ih", "F32", "[3,2]", 0, 24 },
    { "weight_hh", "F32", "[3,3]", 24, 60 },
    { "bias_ih", "F32", "[3]", 60, 72 },
    { "bias_hh", "F32", "[3]", 72, 84 },
};

/* The 8-byte length, header and data_len bytes of data: float k (k = 1, 2, ...) little-endian
 * in every whole 4 bytes, then 0xAB. */
void write_checkpoint(const char *path, const char *header, size_t data_len)
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

void write_specs(const char *path, const spec *specs, int n, size_t data_len)
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
void assert_rnn_load_fails(const char *path, const char *want)
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

void assert_rnn_specs_fail(const spec *specs, int n, size_t data_len, const char *want)
{
    char path[PATH_SIZE];
    write_specs(scratch_path(path, "bad.safetensors"), specs, n, data_len);
    assert_rnn_load_fails(path, want);
}

void assert_rnn_header_fails(const char *header, size_t data_len, const char *want)
{
    char path[PATH_SIZE];
    write_checkpoint(scratch_path(path, "bad.safetensors"), header, data_len);
    assert_rnn_load_fails(path, want);
}

/* The cell loaded from a file in the layout of RNN_SPECS holds floats 1..21 of its data. */
void assert_rnn_loads(const char *path)
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

/* ---- long paths in messages ---- */

char *long_missing_path(char *buf, size_t len)
{
    static const char piece[] = "d\xc3\xa9\xe2\x88\x82/", end[] = "end.safetensors";
    char start[PATH_SIZE];
    size_t n = strlen(scratch_path(start, "missing/"));
    ck_assert_uint_le(n + sizeof end, len);
    memcpy(buf, start, n);
    for (; n + (sizeof piece - 1) + (sizeof end - 1) <= len; n += sizeof piece - 1)
        memcpy(buf + n, piece, sizeof piece - 1);
    for (; n + (sizeof end - 1) < len; n++)
        buf[n] = 'a';
    memcpy(buf + n, end, sizeof end);
    ck_assert_uint_eq(strlen(buf), len);
    return buf;
}

/* True when s is well-formed UTF-8 (no overlong forms, surrogates or values above U+10FFFF). */
static bool is_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int extra = *p < 0x80 ? 0 : *p >= 0xC2 && *p < 0xE0 ? 1 : *p >= 0xE0 && *p < 0xF0 ? 2
                  : *p >= 0xF0 && *p < 0xF5 ? 3 : -1;
        if (extra < 0)
            return false;
        unsigned long c = extra ? *p & (0x3Fu >> extra) : *p;
        for (int k = 1; k <= extra; k++) {
            if ((p[k] & 0xC0) != 0x80)
                return false;
            c = c << 6 | (p[k] & 0x3Fu);
        }
        if ((extra == 2 && (c < 0x800 || (c >= 0xD800 && c < 0xE000)))
            || (extra == 3 && (c < 0x10000 || c > 0x10FFFF)))
            return false;
        p += extra + 1;
    }
    return true;
}

void assert_message_keeps_reason(const char *message, const char *path, const char *reason)
{
    const size_t size = sizeof ((tg_error){ "" }).message;
    size_t n = strlen(message), path_len = strlen(path), reason_len = strlen(reason);
    ck_assert_uint_lt(n, size);
    ck_assert_msg(is_utf8(message), "not UTF-8: %s", message);
    ck_assert_msg(n >= reason_len + 2 && strncmp(message + n - reason_len - 2, ": ", 2) == 0
                      && strcmp(message + n - reason_len, reason) == 0,
                  "the reason '%s' is not whole at the end of: %s", reason, message);
    if (path_len + 2 + reason_len < size) {
        ck_assert_uint_eq(n, path_len + 2 + reason_len);
        ck_assert_int_eq(strncmp(message, path, path_len), 0);
        return;
    }
    const size_t shown = 16, where_len = n - reason_len - 2;
    const char *ellipsis = strstr(message, "\xe2\x80\xa6");
    ck_assert_msg(strncmp(message, path, shown) == 0, "the start of the path is lost: %s", message);
    ck_assert_msg(where_len >= shown
                      && memcmp(message + where_len - shown, path + path_len - shown, shown) == 0,
                  "the end of the path is lost: %s", message);
    ck_assert_msg(ellipsis && ellipsis < message + where_len, "no ellipsis in the path: %s", message);
}
