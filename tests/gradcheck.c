/* gradcheck.c: random fills, relative error, and the central finite-difference check. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"

double relative_error(const float *got, const float *want, long n)
{
    double worst = 0.0, scale = 1e-3;
    for (long k = 0; k < n; k++) {
        worst = fmax(worst, fabs((double)got[k] - want[k]));
        scale = fmax(scale, fabs((double)want[k]));
    }
    return worst / scale;
}

void fill_uniform(tg_tensor *t, float lo, float hi, uint64_t seed)
{
    tg_rng rng = tg_rng_new(seed);
    tg_init_uniform(t, lo, hi, &rng, NULL);
}

static long count(const tg_tensor *t) { return (long)t->rows * t->cols; }

/* L = sum(w * fn(in)) in double, from a fresh forward; w is filled on the first call. */
static double weighted_output(gradcheck_fn fn, tg_tensor **in, float **w)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = fn(tape, in);
    double sum = NAN;
    if (y) {
        if (!*w) {
            *w = malloc((size_t)count(y) * sizeof(float));
            tg_rng rng = tg_rng_new(99);
            for (long k = 0; k < count(y); k++)
                (*w)[k] = tg_rng_uniform(&rng) * 2.0f - 1.0f;
        }
        sum = 0.0;
        for (long k = 0; k < count(y); k++)
            sum += (double)(*w)[k] * y->data[k];
    }
    tg_tape_free(tape);
    return sum;
}

/* d(sum(w * fn(in)))/d(in) by the library's backward, into in[i]->grad. */
static int analytic_gradients(gradcheck_fn fn, tg_tensor **in, int n, const float *w)
{
    tg_zero_grad(in, n, NULL);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = fn(tape, in);
    tg_tensor *loss = y ? tg_sum(tape, tg_mul(tape, y, tg_input(tape, y->rows, y->cols, w))) : NULL;
    int rc = tg_backward(tape, loss);
    tg_tape_free(tape);
    return rc;
}

double gradcheck(gradcheck_fn fn, tg_tensor **in, int n, float grad_scale)
{
    float *w = NULL;
    double worst = INFINITY;
    if (isnan(weighted_output(fn, in, &w)) || analytic_gradients(fn, in, n, w) != 0)
        goto done;
    worst = 0.0;
    for (int i = 0; i < n; i++) {
        long values = count(in[i]);
        float *numeric = malloc((size_t)values * sizeof(float));
        float *analytic = malloc((size_t)values * sizeof(float));
        for (long k = 0; k < values; k++) {
            float saved = in[i]->data[k];
            in[i]->data[k] = saved + GRADCHECK_STEP;
            double plus = weighted_output(fn, in, &w);
            in[i]->data[k] = saved - GRADCHECK_STEP;
            double minus = weighted_output(fn, in, &w);
            in[i]->data[k] = saved;
            numeric[k] = (float)((plus - minus) / (2.0 * GRADCHECK_STEP));
            analytic[k] = in[i]->grad[k] * grad_scale;
        }
        worst = fmax(worst, relative_error(analytic, numeric, values));
        free(numeric);
        free(analytic);
    }
done:
    free(w);
    return worst;
}
