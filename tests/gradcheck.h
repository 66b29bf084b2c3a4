/* gradcheck.h: helpers shared by the test suites: random fills, a per-tensor relative
 * error, and a central finite-difference check of any function built from tape ops. */
#ifndef TAPEGRAD_TEST_GRADCHECK_H
#define TAPEGRAD_TEST_GRADCHECK_H

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

/* Fill t->data with values uniform in [lo, hi) from a fixed-seed stream. */
void fill_uniform(tg_tensor *t, float lo, float hi, uint64_t seed);

/* Checks the backward of fn against central differences of L = sum(w * fn(in)) with fixed
 * random weights w, for every element of every input. Returns the worst relative error
 * over the inputs; with grad_scale != 1 the backward's gradients are multiplied by it
 * first (to show that a wrong backward is caught). */
double gradcheck(gradcheck_fn fn, tg_tensor **in, int n, float grad_scale);

#endif
