/* gradcheck.h: helpers shared by the test suites: random fills, a per-tensor relative
 * error, and the library's finite-difference check (tg_grad_check) applied to any function
 * built from tape ops. */
#ifndef TAPEGRAD_TEST_GRADCHECK_H
#define TAPEGRAD_TEST_GRADCHECK_H

#include <stdbool.h>

#include "tapegrad.h"

#define GRADCHECK_MAX_INPUTS 6
/* The finite-difference step (float32 forward) and the largest relative error accepted.
 * With step 1e-2 the rounding in the forward stays near 1e-5 of a gradient, far below the
 * tolerance, while a backward that is 1% wrong is off by 1e-2, five times above it. */
#define GRADCHECK_STEP 1e-2f
#define GRADCHECK_TOLERANCE 2e-3

/* Builds the function under test on the tape from parameters in[0..n-1]; returns its output. */
typedef tg_tensor *(*gradcheck_fn)(tg_tape *tape, tg_tensor **in);

/* max |got - want| / max(max |want|, 1e-3) over n values */
double relative_error(const float *got, const float *want, long n);

/* Same shape and the same bytes of data. */
bool same_values(const tg_tensor *a, const tg_tensor *b);

/* Fill t->data with values uniform in [lo, hi) from a fixed-seed stream. */
void fill_uniform(tg_tensor *t, float lo, float hi, uint64_t seed);

/* Checks the backward of fn with tg_grad_check on L = sum(w * fn(in)), w fixed random weights
 * (a constant), over every element of every input (parameters). Returns the worst relative
 * error, or INFINITY when the check fails. With grad_scale != 1, fn's output first goes
 * through an op whose forward is the identity and whose backward multiplies by grad_scale:
 * a deliberately wrong backward, which the check must catch. */
double gradcheck(gradcheck_fn fn, tg_tensor **in, int n, float grad_scale);

#endif
