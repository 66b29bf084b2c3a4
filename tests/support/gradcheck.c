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

bool same_values(const tg_tensor *a, const tg_tensor *b)
{
    return a->rows == b->rows && a->cols == b->cols &&
           memcmp(a->data, b->data, (size_t)a->rows * (size_t)a->cols * sizeof(float)) == 0;
}

void fill_uniform(tg_tensor *t, float lo, float hi, uint64_t seed)
{
    tg_rng rng = tg_rng_new(seed);
    tg_init_uniform(t, lo, hi, &rng, NULL);
}

static long count(const tg_tensor *t) { return (long)t->rows * t->cols; }

/* ---- a wrong op: y = a, but da += s dy with s != 1 -------------------------------------- */

static void wrong_identity_backward(tg_tensor *y, tg_tensor *const *in)
{
    const float *s = tg_op_state(y);
    for (long k = 0; k < count(y); k++)
        in[0]->grad[k] += *s * y->grad[k];
}
static const tg_op WRONG_IDENTITY = { "wrong_identity", 1, wrong_identity_backward };

static tg_tensor *wrong_identity(tg_tape *tape, tg_tensor *a, float s)
{
    tg_tensor *in[] = { a };
    if (!tg_inputs_ok(tape, &WRONG_IDENTITY, in))
        return NULL;
    tg_tensor *y = tg_record(tape, &WRONG_IDENTITY, in, a->rows, a->cols, &s, sizeof s);
    if (y)
        memcpy(y->data, a->data, (size_t)count(a) * sizeof(float));
    return y;
}

/* ---- the loss the check differentiates ---------------------------------------------------- */

typedef struct weighted {
    gradcheck_fn fn;
    tg_tensor **in;
    float grad_scale;
    float *w;             /* the weights, made at the first call for fn's output size */
} weighted;

/* L = sum(w * fn(in)) */
static tg_tensor *weighted_output(tg_tape *tape, void *ctx)
{
    weighted *c = ctx;
    tg_tensor *y = c->fn(tape, c->in);
    if (!y)
        return NULL;
    if (c->grad_scale != 1.0f)
        y = wrong_identity(tape, y, c->grad_scale);
    if (!c->w) {
        c->w = malloc((size_t)count(y) * sizeof(float));
        tg_rng rng = tg_rng_new(99);
        for (long k = 0; c->w && k < count(y); k++)
            c->w[k] = tg_rng_uniform(&rng) * 2.0f - 1.0f;
    }
    tg_tensor *w = c->w ? tg_constant(tape, y->rows, y->cols, c->w) : NULL;
    return tg_sum(tape, tg_mul(tape, y, w));
}

double gradcheck(gradcheck_fn fn, tg_tensor **in, int n, float grad_scale)
{
    weighted c = { fn, in, grad_scale, NULL };
    tg_grad_check_result result;
    int rc = tg_grad_check(weighted_output, &c, in, n, GRADCHECK_STEP, &result, NULL);
    free(c.w);
    return rc == 0 ? result.worst : INFINITY;
}
