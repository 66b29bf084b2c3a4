/* kernels.c: the plain loops behind the ops. Loop orders keep the innermost loop running
 * along a row of the output, so it reads and writes memory in order and the compiler can
 * vectorise it. */
#include <string.h>

#include "kernels.h"

void tg_kernel_matmul(int m, int n, int k, const float *A, const float *B, float *C, int accumulate)
{
    if (!accumulate)
        memset(C, 0, (size_t)m * (size_t)n * sizeof(float));
    for (int i = 0; i < m; i++) {
        float *c = C + (size_t)i * n;
        for (int p = 0; p < k; p++) {
            float a = A[(size_t)i * k + p];
            const float *b = B + (size_t)p * n;
            for (int j = 0; j < n; j++)
                c[j] += a * b[j];
        }
    }
}

void tg_kernel_matmul_nt(int m, int n, int k, const float *A, const float *B, float *C)
{
    for (int i = 0; i < m; i++) {
        const float *a = A + (size_t)i * k;
        for (int j = 0; j < n; j++) {
            const float *b = B + (size_t)j * k;
            float dot = 0.0f;
            for (int p = 0; p < k; p++)
                dot += a[p] * b[p];
            C[(size_t)i * n + j] += dot;
        }
    }
}

void tg_kernel_matmul_tn(int m, int n, int k, const float *A, const float *B, float *C)
{
    for (int p = 0; p < k; p++) {
        const float *a = A + (size_t)p * m;
        const float *b = B + (size_t)p * n;
        for (int i = 0; i < m; i++) {
            float *c = C + (size_t)i * n;
            for (int j = 0; j < n; j++)
                c[j] += a[i] * b[j];
        }
    }
}

void tg_kernel_axpy(long n, float alpha, const float *x, float *y)
{
    for (long i = 0; i < n; i++)
        y[i] += alpha * x[i];
}

float tg_kernel_sum(long n, const float *x)
{
    double sum = 0.0;
    for (long i = 0; i < n; i++)
        sum += x[i];
    return (float)sum;
}

void tg_kernel_add_row_sums(int rows, int cols, const float *X, float *out)
{
    for (int i = 0; i < rows; i++)
        out[i] += tg_kernel_sum(cols, X + (size_t)i * cols);
}
