/* param.c: parameters, the tensors that live outside any tape and belong to the caller, and
 * their init (uniform, normal, orthogonal). */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "error.h"
#include "tape.h"

tg_tensor *tg_param_new(int rows, int cols)
{
    if (!tg_size_ok(rows, cols))
        return NULL;
    tg_tensor *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    size_t values = (size_t)rows * (size_t)cols;
    p->rows = rows;
    p->cols = cols;
    p->data = calloc(values, sizeof(float));
    p->grad = calloc(values, sizeof(float));
    if (!p->data || !p->grad) {
        tg_param_free(p);
        return NULL;
    }
    return p;
}

void tg_param_free(tg_tensor *p)
{
    if (!p)
        return;
    free(p->data);
    free(p->grad);
    free(p);
}

/* Checks what every init needs: t and rng not NULL, t with data. Returns 0, or -1 with err. */
static int check_init(const char *call, const tg_tensor *t, const tg_rng *rng, tg_error *err)
{
    if (!t)
        return tg_error_set(err, call, "t is NULL");
    if (!t->data)
        return tg_error_set(err, call, "t has no data");
    if (!rng)
        return tg_error_set(err, call, "rng is NULL");
    return 0;
}

int tg_init_uniform(tg_tensor *t, float lo, float hi, tg_rng *rng, tg_error *err)
{
    const char *call = "tg_init_uniform";
    if (check_init(call, t, rng, err) != 0)
        return -1;
    if (!isfinite(lo) || !isfinite(hi) || lo > hi)
        return tg_error_set(err, call, "[%g, %g] is not a range (finite, lo <= hi)", lo, hi);
    for (long k = 0; k < (long)t->rows * t->cols; k++)
        t->data[k] = lo + (hi - lo) * tg_rng_uniform(rng);
    tg_error_clear(err);
    return 0;
}

int tg_init_normal(tg_tensor *t, float mean, float std, tg_rng *rng, tg_error *err)
{
    const char *call = "tg_init_normal";
    if (check_init(call, t, rng, err) != 0)
        return -1;
    if (!isfinite(mean) || !isfinite(std) || std < 0.0f)
        return tg_error_set(err, call, "N(%g, %g^2) is not a distribution (finite, std >= 0)",
                            mean, std);
    for (long k = 0; k < (long)t->rows * t->cols; k++)
        t->data[k] = mean + std * tg_rng_normal(rng);
    tg_error_clear(err);
    return 0;
}

/* Orthonormalise the columns of the rows x cols matrix q (rows >= cols), in place, by
 * modified Gram-Schmidt. Gaussian columns are independent with probability 1. */
static void gram_schmidt(double *q, int rows, int cols)
{
    for (int j = 0; j < cols; j++) {
        for (int prev = 0; prev < j; prev++) {
            double dot = 0.0;
            for (int i = 0; i < rows; i++)
                dot += q[i * cols + j] * q[i * cols + prev];
            for (int i = 0; i < rows; i++)
                q[i * cols + j] -= dot * q[i * cols + prev];
        }
        double norm = 0.0;
        for (int i = 0; i < rows; i++)
            norm += q[i * cols + j] * q[i * cols + j];
        norm = sqrt(norm);
        for (int i = 0; i < rows; i++)
            q[i * cols + j] /= norm;
    }
}

int tg_init_orthogonal(tg_tensor *t, float gain, tg_rng *rng, tg_error *err)
{
    const char *call = "tg_init_orthogonal";
    if (check_init(call, t, rng, err) != 0)
        return -1;
    if (!isfinite(gain))
        return tg_error_set(err, call, "gain is %g; it must be finite", gain);
    bool tall = t->rows >= t->cols;
    int rows = tall ? t->rows : t->cols, cols = tall ? t->cols : t->rows;
    double *q = malloc((size_t)rows * (size_t)cols * sizeof(double));
    if (!q)
        return tg_error_set(err, call, "out of memory for a %dx%d matrix of doubles", rows, cols);
    for (long k = 0; k < (long)rows * cols; k++)
        q[k] = tg_rng_normal(rng);
    gram_schmidt(q, rows, cols);
    for (int i = 0; i < t->rows; i++)
        for (int j = 0; j < t->cols; j++)
            t->data[i * t->cols + j] = gain * (float)(tall ? q[i * cols + j] : q[j * cols + i]);
    free(q);
    tg_error_clear(err);
    return 0;
}
