/* test_safetensors.c: the safetensors format, tg_save and tg_load (src/safetensors.c). Named
 * tensors round-trip bit for bit; a saved file follows the layout byte for byte; every kind of
 * bad file is refused with a message naming the file and the problem, and leaves the model as
 * it was; thousands of corrupted files are refused cleanly or load what they hold. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc_count.h"
#include "checkpoint_files.h"
#include "scratch_dir.h"
#include "tapegrad.h"

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

/* ---- bad files ------------------------------------------------------------------------------- */

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

/* Paths of 200, 245, 300 and 4000 bytes: the message keeps the whole reason and, when it
 * must, shortens the path in the middle. */
START_TEST(test_a_long_missing_path_keeps_the_reason)
{
    static const size_t lengths[] = { 200, 245, 300, 4000 };
    char path[4001];
    tg_tensor *w = tg_param_new(2, 2);
    tg_named named[1] = { { "w", w } };
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        tg_error err;
        ck_assert_int_eq(tg_load(long_missing_path(path, lengths[i]), named, 1, &err), -1);
        assert_message_keeps_reason(err.message, path, "cannot open: No such file or directory");
    }
    tg_param_free(w);
}
END_TEST

START_TEST(test_loading_a_directory_fails)
{
    char path[PATH_SIZE];
    ck_assert_int_eq(mkdir(scratch_path(path, "a_dir"), 0700), 0);
    assert_rnn_load_fails(path, "cannot open: not a regular file (a directory)");
}
END_TEST

static void interrupt(int signal) { (void)signal; }

/* A FIFO with no writer is refused at once (opening it to read would wait for a writer, and
 * reading it for data), by tg_load and the cells' loads alike; so is a character device. An
 * alarm before each load, whose handler does not restart calls, interrupts a load that
 * blocks, which then fails with another message instead of hanging the test. */
START_TEST(test_loading_a_fifo_or_a_device_fails_at_once)
{
    char fifo[PATH_SIZE], want[PATH_SIZE + 64];
    ck_assert_int_eq(mkfifo(scratch_path(fifo, "a_fifo"), 0600), 0);
    snprintf(want, sizeof want, "%s: cannot open: not a regular file (a FIFO)", fifo);
    struct sigaction alarm_action = { .sa_handler = interrupt }, old_action;
    sigemptyset(&alarm_action.sa_mask);
    ck_assert_int_eq(sigaction(SIGALRM, &alarm_action, &old_action), 0);
    tg_rnn_cell *cell = tg_rnn_cell_new(2, 3, 1);
    tg_lstm_cell *lstm = tg_lstm_cell_new(2, 3, 1, NULL);
    tg_named named[1] = { { "w", cell->W_h } };
    tg_error a, b, c;
    alarm(2);
    int rc_named = tg_load(fifo, named, 1, &a);
    alarm(2);
    int rc_lstm = tg_lstm_cell_load(lstm, fifo, &b);
    alarm(2);
    int rc_device = tg_rnn_cell_load(cell, "/dev/null", &c);
    alarm(0);
    sigaction(SIGALRM, &old_action, NULL);
    ck_assert_int_eq(rc_named, -1);
    ck_assert_str_eq(a.message, want);
    ck_assert_int_eq(rc_lstm, -1);
    ck_assert_str_eq(b.message, want);
    ck_assert_int_eq(rc_device, -1);
    ck_assert_str_eq(c.message, "/dev/null: cannot open: not a regular file (a character device)");
    assert_rnn_load_fails(fifo, "cannot open: not a regular file (a FIFO)");
    tg_rnn_cell_free(cell);
    tg_lstm_cell_free(lstm);
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

Suite *safetensors_suite(void)
{
    Suite *s = suite_create("safetensors");
    TCase *round = tcase_create("round_trips");
    tcase_add_checked_fixture(round, scratch_dir_make, scratch_dir_remove);
    tcase_add_test(round, test_named_tensors_round_trip_bit_exact_with_any_utf8_names);
    tcase_add_test(round, test_saved_file_follows_the_safetensors_layout);
    suite_add_tcase(s, round);
    TCase *bad = tcase_create("bad_files");
    tcase_add_checked_fixture(bad, scratch_dir_make, scratch_dir_remove);
    tcase_add_test(bad, test_missing_file_fails_naming_the_file);
    tcase_add_test(bad, test_loading_a_directory_fails);
    tcase_add_test(bad, test_loading_a_fifo_or_a_device_fails_at_once);
    tcase_add_test(bad, test_a_long_missing_path_keeps_the_reason);
    tcase_add_test(bad, test_file_shorter_than_eight_bytes_fails);
    tcase_add_test(bad, test_header_length_beyond_the_file_fails);
    tcase_add_test(bad, test_header_length_over_the_limit_fails_before_reading_it);
    tcase_add_test(bad, test_duplicate_names_and_fields_fail);
    tcase_add_test(bad, test_unknown_or_non_f32_dtype_fails_naming_it);
    tcase_add_test(bad, test_shape_mismatch_names_the_tensor_and_both_shapes);
    tcase_add_test(bad, test_missing_tensor_fails_naming_it);
    tcase_add_test(bad, test_offsets_not_matching_the_shape_fail);
    tcase_add_test(bad, test_offsets_outside_the_data_section_fail);
    tcase_add_test(bad, test_overlapping_tensors_fail);
    tcase_add_test(bad, test_shapes_and_offsets_must_be_whole_numbers);
    tcase_add_test(bad, test_out_of_memory_while_loading_leaves_the_model_unchanged);
    suite_add_tcase(s, bad);
    TCase *fuzz = tcase_create("corruption");
    tcase_add_checked_fixture(fuzz, scratch_dir_make, scratch_dir_remove);
    tcase_set_timeout(fuzz, 120);
    tcase_add_test(fuzz, test_thousands_of_corrupted_files_fail_cleanly_or_load_what_they_hold);
    suite_add_tcase(s, fuzz);
    return s;
}
