/* oracle.h: an independent reader of safetensors files for the hostile-checkpoint tests,
 * written from the rules in docs/checkpoints.md ("What loading checks") and sharing no code
 * with src/: it says whether a file is one the loader must accept for a model, and what
 * values the model must then hold. It is slow and simple on purpose (a tree of entries,
 * pairwise overlap checks); the generator also uses it to take the base files apart. */
#ifndef TAPEGRAD_HOSTILE_ORACLE_H
#define TAPEGRAD_HOSTILE_ORACLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ORACLE_MAX_DIMS 8         /* dims kept per entry (the shape may have more) */
#define ORACLE_HEADER_LIMIT 100000000u

typedef enum oracle_rule { ORACLE_2D, ORACLE_1D, ORACLE_2D_OR_COLUMN } oracle_rule;

/* A tensor the model asks for. */
typedef struct oracle_want {
    const char *name;
    int rows, cols;
    oracle_rule rule;
} oracle_want;

/* One tensor of a header that follows the schema. */
typedef struct oracle_entry {
    const char *name;             /* decoded; may hold NUL bytes, so name_len counts */
    size_t name_len;
    char dtype[16];
    uint64_t dims[ORACLE_MAX_DIMS];
    size_t n_dims;
    uint64_t elements;            /* the product of all dims, UINT64_MAX once it overflows */
    bool zero_dim;                /* a dim is 0: the tensor is empty whatever the product */
    uint64_t begin, end;
} oracle_entry;

/* A file taken apart: its header's entries (names point into `names`). */
typedef struct oracle_file {
    uint64_t header_len, data_len;
    const unsigned char *data;    /* into the caller's bytes */
    oracle_entry *entries;
    size_t n_entries;
    char *names;
} oracle_file;

/* Takes bytes[0..n-1] apart: true when the length, the JSON and the schema of every entry
 * are right (names, ranges and overlaps are not yet checked). Free with oracle_file_free. */
bool oracle_parse(const unsigned char *bytes, size_t n, oracle_file *f);
void oracle_file_free(oracle_file *f);

/* oracle_parse, then the checks across entries (names, ranges, overlaps): true when the file
 * is valid for a model that asks for nothing. Free f with oracle_file_free either way. */
bool oracle_valid(const unsigned char *bytes, size_t n, oracle_file *f);

/* After oracle_valid: true when the loader must accept the file for a model asking for
 * wants[0..n_wants-1]; then values[i] (malloc, rows * cols floats, to free) hold wants[i] as
 * the file stores it. */
bool oracle_values(const oracle_file *f, const oracle_want *wants, int n_wants, float **values);

#endif
