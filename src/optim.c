/* optim.c: what a training step does with the gradients: zero them, clip them (by their
 * total norm or value by value), and plain SGD. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "kernels.h"
#include "tapegrad.h"

static long count(const tg_tensor *t) { return (long)t->rows * t->cols; }

/* True when params holds n tensors, none NULL and each with a grad (not a tg_constant). */
static bool params_ok(tg_tensor *const *params, int n)
{
    if (!params || n < 0)
        return false;
    for (int i = 0; i < n; i++)
        if (!params[i] || !params[i]->grad)
            return false;
    return true;
}

void tg_zero_grad(tg_tensor *const *params, int n)
{
    if (!params_ok(params, n))
        return;
    for (int i = 0; i < n; i++)
        memset(params[i]->grad, 0, (size_t)count(params[i]) * sizeof(float));
}

static bool grads_finite(tg_tensor *const *params, int n)
{
    for (int i = 0; i < n; i++)
        for (long k = 0; k < count(params[i]); k++)
            if (!isfinite(params[i]->grad[k]))
                return false;
    return true;
}

int tg_sgd_step(tg_tensor *const *params, int n, float lr)
{
    if (!params_ok(params, n) || !isfinite(lr) || !grads_finite(params, n))
        return -1;
    for (int i = 0; i < n; i++)
        tg_kernel_axpy(count(params[i]), -lr, params[i]->grad, params[i]->data);
    return 0;
}

/* ---- clipping ---------------------------------------------------------------------------- */

static double sum_of_squares(const tg_tensor *t)
{
    double sum = 0.0;
    for (long k = 0; k < count(t); k++)
        sum += (double)t->grad[k] * t->grad[k];
    return sum;
}

float tg_grad_norm(const tg_tensor *t)
{
    return t && t->grad ? (float)sqrt(sum_of_squares(t)) : 0.0f;
}

float tg_clip_grad_norm(tg_tensor *const *params, int n, float max_norm)
{
    if (!params_ok(params, n) || !(max_norm > 0.0f))
        return -1.0f;
    double total = 0.0;
    for (int i = 0; i < n; i++)
        total += sum_of_squares(params[i]);
    double norm = sqrt(total);
    if (isfinite((float)norm) && norm > max_norm) {
        float shrink = (float)(max_norm / norm);
        for (int i = 0; i < n; i++)
            for (long k = 0; k < count(params[i]); k++)
                params[i]->grad[k] *= shrink;
    }
    return (float)norm;
}

long tg_clip_grad_value(tg_tensor *const *params, int n, float limit)
{
    if (!params_ok(params, n) || !(limit > 0.0f))
        return -1;
    long clipped = 0;
    for (int i = 0; i < n; i++)
        for (long k = 0; k < count(params[i]); k++) {
            float *g = &params[i]->grad[k];
            if (*g > limit || *g < -limit) {
                *g = *g > limit ? limit : -limit;
                clipped++;
            }
        }
    return clipped;
}
