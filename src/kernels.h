/* kernels.h: private to the library. The loops behind the ops, with no autograd and no
 * allocation: the three matrix products that forward and backward need, tanh and sigmoid,
 * and sums. All matrices are row-major.
 *
 * Each kernel is declared twice. src/kernels_ref.c defines what it computes, as the plainest
 * loops (tg_ref_*): start there. src/kernels_fast.c computes the same faster (tg_kernel_*:
 * blocked and packed products, AVX2 or AVX-512, a polynomial tanh, the thread pool), and the
 * ops call those; tests/test_kernels.c holds each to its reference. `make KERNELS=ref` builds the
 * library without kernels_fast.c, its tg_kernel_* calling the tg_ref_* ones.
 *
 * A new kernel: declare both here; write tg_ref_X in kernels_ref.c and its tg_kernel_X in
 * kernels_fast.c (which may simply call tg_ref_X until it needs to be faster) and in the
 * KERNELS=ref block at the end of kernels_ref.c; compare the two in tests/test_kernels.c. */
#ifndef TAPEGRAD_KERNELS_H
#define TAPEGRAD_KERNELS_H

/* C = A B (or C += A B when accumulate is nonzero). A: m x k, B: k x n, C: m x n. */
void tg_kernel_matmul(int m, int n, int k, const float *A, const float *B, float *C, int accumulate);
void tg_ref_matmul(int m, int n, int k, const float *A, const float *B, float *C, int accumulate);
/* C = c + A B, c: m x n (c_cols n) or m x 1 added to every column (c_cols 1). A: m x k,
 * B: k x n, C: m x n (its old values are never read). The fast one sets each block of C from
 * c on the thread that then adds the product to it. */
void tg_kernel_matmul_add(int m, int n, int k, const float *A, const float *B, const float *c, int c_cols,
                          float *C);
void tg_ref_matmul_add(int m, int n, int k, const float *A, const float *B, const float *c, int c_cols,
                       float *C);
/* C += A B^T. A: m x k, B: n x k, C: m x n. */
void tg_kernel_matmul_nt(int m, int n, int k, const float *A, const float *B, float *C);
void tg_ref_matmul_nt(int m, int n, int k, const float *A, const float *B, float *C);
/* C += A^T B. A: k x m, B: k x n, C: m x n. */
void tg_kernel_matmul_tn(int m, int n, int k, const float *A, const float *B, float *C);
void tg_ref_matmul_tn(int m, int n, int k, const float *A, const float *B, float *C);

/* T = A^T. A: rows x cols, T: cols x rows (not overlapping A). */
void tg_kernel_transpose(int rows, int cols, const float *A, float *T);
void tg_ref_transpose(int rows, int cols, const float *A, float *T);

/* The instruction sets the fast kernels have code for, plainest first. By default they take
 * the widest this CPU has (chosen at run time): the products' micro-kernel, tanh, sigmoid and
 * the transposes (the AVX-512 path keeps AVX2's 8 x 8 transposes). */
enum tg_kernel_path { TG_PATH_C, TG_PATH_AVX2, TG_PATH_AVX512, TG_PATH_BEST };
/* Makes the fast kernels take path (TG_PATH_BEST: the widest again), for tests that compare
 * the paths. Returns 0, or -1 with nothing changed when this CPU or this build lacks path (a
 * KERNELS=ref build has TG_PATH_C alone, and its kernels are the reference ones). */
int tg_kernel_use_path(int path);
/* The path the fast kernels take now (TG_PATH_C in a KERNELS=ref build). */
int tg_kernel_path(void);

/* "C", "AVX2" or "AVX-512", for messages. */
static inline const char *tg_kernel_path_name(int path)
{
    static const char *const names[] = { "C", "AVX2", "AVX-512" };
    return path >= TG_PATH_C && path < TG_PATH_BEST ? names[path] : "unknown";
}

/* y[i] = tanh(x[i]) and y[i] = 1 / (1 + exp(-x[i])) for i < n, with relative error below
 * 2.4e-7, a few float ulps (y may be x). The fast ones, and axpy, split a long x over the
 * thread pool, with the same bits for any thread count. */
void tg_kernel_tanh(long n, const float *x, float *y);
void tg_ref_tanh(long n, const float *x, float *y);
void tg_kernel_sigmoid(long n, const float *x, float *y);
void tg_ref_sigmoid(long n, const float *x, float *y);

/* Put before an elementwise loop's function: gcc compiles it twice, for AVX2 and for the
 * baseline, and the loader picks one (8 floats a step instead of 4 on AVX2 machines). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__ELF__)
#define TG_ELEMENTWISE __attribute__((target_clones("avx2", "default")))
#else
#define TG_ELEMENTWISE
#endif

/* y[i] += alpha x[i] for i < n */
void tg_kernel_axpy(long n, float alpha, const float *x, float *y);
void tg_ref_axpy(long n, float alpha, const float *x, float *y);
/* The sum of x[0..n-1] (the fast one in 8 float partial sums added up in double at the end). */
float tg_kernel_sum(long n, const float *x);
float tg_ref_sum(long n, const float *x);
/* The sum of (a[i] - b[i])^2 over i < n, the same way. */
double tg_kernel_sum_squared_difference(long n, const float *a, const float *b);
double tg_ref_sum_squared_difference(long n, const float *a, const float *b);
/* out[i] += sum over j of X[i][j], for X: rows x cols (the backward of a column broadcast);
 * the fast one splits many rows over the thread pool, each row summed as on one thread. */
void tg_kernel_add_row_sums(int rows, int cols, const float *X, float *out);
void tg_ref_add_row_sums(int rows, int cols, const float *X, float *out);

#endif
