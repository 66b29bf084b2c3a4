/* checkpoint_files.h: helpers shared by the suites that write and read checkpoints (json,
 * safetensors, checkpoint, files): the bytes of files, snapshots of a model's every byte, values
 * that stress a bit-exact round trip, safetensors files made by hand for an RNN cell with
 * 2 inputs and 3 hidden units, and long paths in messages. */
#ifndef TAPEGRAD_TEST_CHECKPOINT_FILES_H
#define TAPEGRAD_TEST_CHECKPOINT_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tapegrad.h"

#define FIXTURES "tests/fixtures/checkpoints/"

/* ---- bytes of files ---- */
unsigned char *read_bytes(const char *path, size_t *n);   /* the whole file (malloc, NUL after); *n its size */
void write_bytes(const char *path, const void *bytes, size_t n);
uint64_t u64_le(const unsigned char *b);
float f32_le(const unsigned char *b);
bool same_bits(float a, float b);

/* ---- parameter snapshots: every byte of data and grad ---- */
typedef struct snapshot {
    size_t n;
    unsigned char *bytes;
} snapshot;

size_t tensor_bytes(const tg_tensor *t);
snapshot take_snapshot(tg_tensor *const *params, int n);
/* Frees s after checking that params hold exactly the bytes it took. */
void assert_unchanged(snapshot s, tg_tensor *const *params, int n, const char *context);
/* Values that stress a bit-exact round trip: signed zeros, subnormals, the extremes, inf, NaN. */
void fill_values(tg_tensor *t, tg_rng *rng);
void assert_same_tensor(const tg_tensor *a, const tg_tensor *b, const char *what);

/* ---- hand-made files for an RNN cell with 2 inputs and 3 hidden units ---- */
typedef struct spec {
    const char *name, *dtype, *shape;
    unsigned long long begin, end;
} spec;

enum { RNN_DATA = 84 };   /* weight_ih 3x2, weight_hh 3x3, bias_ih 3, bias_hh 3: 21 floats */

extern const spec RNN_SPECS[4];

/* The 8-byte length, header and data_len bytes of data: float k (k = 1, 2, ...) little-endian
 * in every whole 4 bytes, then 0xAB. */
void write_checkpoint(const char *path, const char *header, size_t data_len);
void write_specs(const char *path, const spec *specs, int n, size_t data_len);
/* Loading path into an RNN cell (2 inputs, 3 hidden) fails, with err and without, with the
 * message path + ": " + text containing `want`, and leaves every byte of the cell as it was. */
void assert_rnn_load_fails(const char *path, const char *want);
void assert_rnn_specs_fail(const spec *specs, int n, size_t data_len, const char *want);   /* in a scratch file */
void assert_rnn_header_fails(const char *header, size_t data_len, const char *want);       /* in a scratch file */
/* The cell loaded from a file in the layout of RNN_SPECS holds floats 1..21 of its data. */
void assert_rnn_loads(const char *path);

/* ---- long paths in messages ---- */
/* buf (len + 1 bytes) = a path of exactly len bytes (len >= 64) under the scratch directory,
 * in a directory "missing" that does not exist, through directory names of 2- and 3-byte
 * UTF-8 characters, ending in "/end.safetensors". */
char *long_missing_path(char *buf, size_t len);
/* message is path + ": " + reason when that fits in a tg_error; else path's start and end
 * around an ellipsis, then ": " + reason whole. Either way valid UTF-8. */
void assert_message_keeps_reason(const char *message, const char *path, const char *reason);

#endif
