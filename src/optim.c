/* optim.c: what a training step does with the gradients: zero them, and plain SGD. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "kernels.h"
#include "tapegrad.h"

static long count(const tg_tensor *t) { return (long)t->rows * t->cols; }

/* True when params holds n tensors, none NULL. */
static bool params_ok(tg_tensor *const *params, int n)
{
    if (!params || n < 0)
        return false;
    for (int i = 0; i < n; i++)
        if (!params[i])
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
    if (!params_ok(params, n) || !grads_finite(params, n))
        return -1;
    for (int i = 0; i < n; i++)
        tg_kernel_axpy(count(params[i]), -lr, params[i]->grad, params[i]->data);
    return 0;
}
