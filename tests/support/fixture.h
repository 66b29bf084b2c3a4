/* fixture.h: a reader for the PyTorch reference-value files in tests/fixtures/.
 * The gen_*_fixtures.py scripts there write them once, so the C tests need no Python.
 *
 * The format is text, one item per line; blank lines and lines starting with '#' are skipped:
 *
 *     tapegrad-fixtures 1            the first line that is not a comment: format and version
 *     case NAME I H B T              a case: its name and input, hidden, batch, steps (all > 0)
 *     KEY COUNT v1 v2 ... vCOUNT     an array of COUNT numbers (row-major), inside a case
 *     end                            the end of the case
 *
 * NAME is any run of non-blank characters, unique in the file; KEY is letters, digits and
 * '_', not starting with a digit, unique in its case. What the keys mean is up to the
 * generator (rnn_cell.txt: W_h W_x b h0 x y h loss dW_h dW_x db dh0 dx).
 */
#ifndef TAPEGRAD_TESTS_FIXTURE_H
#define TAPEGRAD_TESTS_FIXTURE_H

#include <stddef.h>

typedef struct fixture_array {
    char *key;
    int count;
    double *values;              /* count values */
} fixture_array;

typedef struct fixture_case {
    char *name;
    int input, hidden, batch, steps;
    int n_arrays;
    fixture_array *arrays;       /* in file order */
} fixture_case;

typedef struct fixture_set {
    int n_cases;
    fixture_case *cases;         /* in file order */
} fixture_set;

/* Read and parse the file at path. Returns the cases (free with fixture_free), or NULL with
 * a message like "rnn_cell.txt:12: W_h says 4 values but the line has 3" in err (at most
 * err_size bytes, always terminated). Prints nothing. A file without any case is an error. */
fixture_set *fixture_load(const char *path, char *err, size_t err_size);

/* The same for text already in memory (len bytes, need not be terminated); name is used in
 * messages in place of the path. */
fixture_set *fixture_parse(const char *text, size_t len, const char *name, char *err,
                           size_t err_size);

void fixture_free(fixture_set *set);                      /* NULL is fine */

/* How far ours is from a reference tensor of n values: max |ours - ref| / max(max |ref|, 1e-6).
 * Dividing by the tensor's largest reference value keeps elements near zero from dominating;
 * the floor makes it an absolute error for an all-but-zero tensor. A NaN in ours gives NaN,
 * which fails every comparison with a tolerance. */
double fixture_relative_error(const float *ours, const double *ref, long n);

/* The worst relative error over a case's tensors so far, and which tensor it was. */
typedef struct fixture_worst {
    double error;
    char tensor[32];   /* e.g. "dW_h" or "h[3]" (step from 0) */
} fixture_worst;

/* Compares ours with ref (fixture_relative_error) and keeps in w the worse of the two; step
 * < 0 for a tensor without steps. Once NaN, w stays NaN. */
void fixture_note(fixture_worst *w, const char *tensor, int step, const float *ours,
                  const double *ref, long n);

/* to[k] = (float)from[k] for k < n: reference values into tensors. */
void fixture_to_float(float *to, const double *from, long n);

/* The array called key in c, or NULL. */
const fixture_array *fixture_find(const fixture_case *c, const char *key);

/* The values of the array called key when it holds exactly count values; otherwise NULL
 * with a message like "case batch: W_h has 9 values, expected 16" in err. */
const double *fixture_values(const fixture_case *c, const char *key, int count, char *err,
                             size_t err_size);

#endif
