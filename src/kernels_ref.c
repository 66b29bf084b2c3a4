/* kernels_ref.c: what each kernel computes, as the plainest loops (tg_ref_*). Read these
 * first: kernels_fast.c computes the same things faster, and tests/test_kernels.c holds it to
 * these within rounding. Built with TG_KERNELS_REF defined (make KERNELS=ref), this file also
 * stands in for kernels_fast.c: see the end. */
#include <math.h>

#include "kernels.h"

/* C[i][j] = (accumulate ? C[i][j] : 0) + sum over p of A[i][p] B[p][j] */
void tg_ref_matmul(int m, int n, int k, const float *A, const float *B, float *C, int accumulate)
{
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            float sum = accumulate ? C[i * n + j] : 0.0f;
            for (long p = 0; p < k; p++)
                sum += A[i * k + p] * B[p * n + j];
            C[i * n + j] = sum;
        }
}

/* C[i][j] = c[i][j] (or c[i] when c_cols is 1), then C += A B */
void tg_ref_matmul_add(int m, int n, int k, const float *A, const float *B, const float *c, int c_cols, float *C)
{
    for (long i = 0; i < (long)m * n; i++)
        C[i] = c_cols == 1 ? c[i / n] : c[i];
    tg_ref_matmul(m, n, k, A, B, C, 1);
}

/* C[i][j] += sum over p of A[i][p] B[j][p] */
void tg_ref_matmul_nt(int m, int n, int k, const float *A, const float *B, float *C)
{
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            float sum = C[i * n + j];
            for (long p = 0; p < k; p++)
                sum += A[i * k + p] * B[j * k + p];
            C[i * n + j] = sum;
        }
}

/* C[i][j] += sum over p of A[p][i] B[p][j] */
void tg_ref_matmul_tn(int m, int n, int k, const float *A, const float *B, float *C)
{
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            float sum = C[i * n + j];
            for (long p = 0; p < k; p++)
                sum += A[p * m + i] * B[p * n + j];
            C[i * n + j] = sum;
        }
}

/* T[j][i] = A[i][j] */
void tg_ref_transpose(int rows, int cols, const float *A, float *T)
{
    for (long i = 0; i < rows; i++)
        for (long j = 0; j < cols; j++)
            T[j * rows + i] = A[i * cols + j];
}

/* y[i] = tanh(x[i]) */
void tg_ref_tanh(long n, const float *x, float *y)
{
    for (long i = 0; i < n; i++)
        y[i] = tanhf(x[i]);
}

/* y[i] = 1 / (1 + e^-x[i]), as e^x / (1 + e^x) for x < 0: e^-x would overflow below -88.7,
 * where the result is still above 0 (down to -103.97) */
void tg_ref_sigmoid(long n, const float *x, float *y)
{
    for (long i = 0; i < n; i++) {
        float e = expf(-fabsf(x[i]));
        y[i] = (x[i] >= 0.0f ? 1.0f : e) / (1.0f + e);
    }
}

/* y[i] += alpha x[i] */
void tg_ref_axpy(long n, float alpha, const float *x, float *y)
{
    for (long i = 0; i < n; i++)
        y[i] += alpha * x[i];
}

/* x[0] + x[1] + ... + x[n-1], added up in double */
float tg_ref_sum(long n, const float *x)
{
    double sum = 0.0;
    for (long i = 0; i < n; i++)
        sum += x[i];
    return (float)sum;
}

/* (a[0] - b[0])^2 + ... + (a[n-1] - b[n-1])^2, in double */
double tg_ref_sum_squared_difference(long n, const float *a, const float *b)
{
    double sum = 0.0;
    for (long i = 0; i < n; i++)
        sum += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sum;
}

/* out[i] += X[i][0] + X[i][1] + ... + X[i][cols-1] */
void tg_ref_add_row_sums(int rows, int cols, const float *X, float *out)
{
    for (long i = 0; i < rows; i++)
        out[i] += tg_ref_sum(cols, X + i * cols);
}

#ifdef TG_KERNELS_REF
/* make KERNELS=ref leaves kernels_fast.c out of the library, and the kernels the ops call
 * are these: products run on the caller's thread whatever tg_set_threads asked, and there
 * is no SIMD path: tg_kernel_use_path has TG_PATH_C alone. */
void tg_kernel_matmul(int m, int n, int k, const float *A, const float *B, float *C, int accumulate)
{
    tg_ref_matmul(m, n, k, A, B, C, accumulate);
}
void tg_kernel_matmul_add(int m, int n, int k, const float *A, const float *B, const float *c, int c_cols, float *C)
{
    tg_ref_matmul_add(m, n, k, A, B, c, c_cols, C);
}
void tg_kernel_matmul_nt(int m, int n, int k, const float *A, const float *B, float *C) { tg_ref_matmul_nt(m, n, k, A, B, C); }
void tg_kernel_matmul_tn(int m, int n, int k, const float *A, const float *B, float *C) { tg_ref_matmul_tn(m, n, k, A, B, C); }
void tg_kernel_transpose(int rows, int cols, const float *A, float *T) { tg_ref_transpose(rows, cols, A, T); }
int tg_kernel_use_path(int path) { return path == TG_PATH_C || path == TG_PATH_BEST ? 0 : -1; }
int tg_kernel_path(void) { return TG_PATH_C; }
void tg_kernel_tanh(long n, const float *x, float *y) { tg_ref_tanh(n, x, y); }
void tg_kernel_sigmoid(long n, const float *x, float *y) { tg_ref_sigmoid(n, x, y); }
void tg_kernel_axpy(long n, float alpha, const float *x, float *y) { tg_ref_axpy(n, alpha, x, y); }
float tg_kernel_sum(long n, const float *x) { return tg_ref_sum(n, x); }
double tg_kernel_sum_squared_difference(long n, const float *a, const float *b)
{
    return tg_ref_sum_squared_difference(n, a, b);
}
void tg_kernel_add_row_sums(int rows, int cols, const float *X, float *out) { tg_ref_add_row_sums(rows, cols, X, out); }
#endif
