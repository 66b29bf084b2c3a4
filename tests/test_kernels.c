/* test_kernels.c: tanh and sigmoid against libm in double; the transpose, value for value;
 * the three matrix products against a double-precision reference, at sizes that are not
 * multiples of the tiles (1, 7, 33, ...) and narrow ones whose operands are read where they
 * lie (32, 48, 64 wide, and 40: two panels in place and one packed), through both the SIMD
 * micro-kernel (where the CPU has one) and the plain C one, on one thread and split over
 * several; and the thread pool, restarted. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <check.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "gradcheck.h"
#include "kernels.h"
#include "threads.h"

enum { NN, NT, TN, NN_OVERWRITE };

/* C = A B, A B^T or A^T B in double, as tg_kernel_* define them; A and B as stored. */
static void reference(int kind, int m, int n, int k, const float *A, const float *B, double *C)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int p = 0; p < k; p++) {
                double a = kind == TN ? A[(long)p * m + i] : A[(long)i * k + p];
                double b = kind == NT ? B[(long)j * k + p] : B[(long)p * n + j];
                sum += a * b;
            }
            C[(long)i * n + j] = sum;
        }
}

static void random_fill(float *x, long n, uint64_t seed)
{
    tg_rng rng = tg_rng_new(seed);
    for (long i = 0; i < n; i++)
        x[i] = 2.0f * tg_rng_uniform(&rng) - 1.0f;
}

/* Worst |ours - reference| / sqrt(k) over C, where C starts at 1 (so accumulation counts);
 * for NN_OVERWRITE C starts as NaN, which must not leak into the result. */
static double product_error(int kind, int m, int n, int k)
{
    float *A = malloc(sizeof(float) * (size_t)m * k), *B = malloc(sizeof(float) * (size_t)k * n);
    float *C = malloc(sizeof(float) * (size_t)m * n);
    double *want = malloc(sizeof(double) * (size_t)m * n);
    random_fill(A, (long)m * k, 1);
    random_fill(B, (long)k * n, 2);
    float start = kind == NN_OVERWRITE ? NAN : 1.0f;
    for (long i = 0; i < (long)m * n; i++)
        C[i] = start;
    if (kind == NN || kind == NN_OVERWRITE)
        tg_kernel_matmul(m, n, k, A, B, C, kind == NN);
    else if (kind == NT)
        tg_kernel_matmul_nt(m, n, k, A, B, C);
    else
        tg_kernel_matmul_tn(m, n, k, A, B, C);
    reference(kind, m, n, k, A, B, want);
    double worst = 0.0;
    for (long i = 0; i < (long)m * n; i++) {
        double error = fabs(C[i] - (want[i] + (kind == NN_OVERWRITE ? 0.0 : 1.0)));
        worst = isnan(error) ? INFINITY : fmax(worst, error);
    }
    free(A);
    free(B);
    free(C);
    free(want);
    return worst / sqrt((double)k);
}

static const int SIZES[][3] = {
    { 1, 1, 1 }, { 7, 7, 7 }, { 33, 33, 33 }, { 1, 40, 3 }, { 40, 1, 50 }, { 6, 16, 1 },
    { 13, 17, 300 }, { 100, 70, 257 }, { 75, 260, 19 }, { 257, 5, 9 },
    { 32, 32, 32 }, { 12, 48, 70 }, { 64, 64, 300 }, { 7, 40, 33 }, /* narrow: read in place */
    { 4, 33, 17 }, { 8, 20, 40 }, { 34, 50, 64 }, /* ending in panels of 4 rows */
    { 200, 170, 257 }, { 517, 70, 260 }, /* big enough to be split over threads */
};
#define N_SIZES ((int)(sizeof SIZES / sizeof SIZES[0]))

static void check_all_products(void)
{
    for (int kind = NN; kind <= NN_OVERWRITE; kind++)
        for (int s = 0; s < N_SIZES; s++) {
            double err = product_error(kind, SIZES[s][0], SIZES[s][1], SIZES[s][2]);
            ck_assert_msg(err < 1e-5, "product %d at %dx%dx%d: error %g", kind,
                          SIZES[s][0], SIZES[s][1], SIZES[s][2], err);
        }
}

START_TEST(test_products_match_double_reference_with_the_fastest_kernel)
{
    tg_kernel_use_generic(0);
    check_all_products();
}
END_TEST

START_TEST(test_products_match_double_reference_with_the_plain_c_kernel)
{
    tg_kernel_use_generic(1);
    check_all_products();
    tg_kernel_use_generic(0);
}
END_TEST

START_TEST(test_products_match_double_reference_split_over_threads)
{
    ck_assert_int_eq(tg_set_threads(3), 3);
    check_all_products();
    ck_assert_int_eq(tg_set_threads(1), 1);
}
END_TEST

START_TEST(test_transpose_moves_every_value_exactly)
{
    static const int shapes[][2] = { { 1, 1 }, { 1, 9 }, { 7, 9 }, { 8, 8 }, { 33, 17 }, { 64, 40 }, { 16, 130 } };
    tg_kernel_use_generic(_i);
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        int rows = shapes[s][0], cols = shapes[s][1];
        float *A = malloc(sizeof(float) * (size_t)rows * cols), *T = malloc(sizeof(float) * (size_t)rows * cols);
        random_fill(A, (long)rows * cols, 3);
        tg_kernel_transpose(rows, cols, A, T);
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                ck_assert_msg(T[(long)j * rows + i] == A[(long)i * cols + j], "%dx%d: (%d, %d)", rows, cols, i, j);
        free(A);
        free(T);
    }
    tg_kernel_use_generic(0);
}
END_TEST

static void count_task(void *ctx, int task)
{
    (void)task;
    atomic_fetch_add((atomic_int *)ctx, 1);
}

START_TEST(test_a_restarted_pool_runs_each_task_once)
{
    /* Workers started after earlier jobs must not take those jobs for their own. */
    enum { TASKS = 8 };
    atomic_int before = 0, after = 0;
    ck_assert_int_eq(tg_set_threads(2), 2);
    tg_parallel_for(TASKS, count_task, &before);
    ck_assert_int_eq(tg_set_threads(1), 1);
    ck_assert_int_eq(tg_set_threads(3), 3);
    nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL); /* let the new workers start */
    tg_parallel_for(TASKS, count_task, &after);
    ck_assert_int_eq(tg_set_threads(1), 1);
    int ran_before = atomic_load(&before), ran_after = atomic_load(&after);
    ck_assert_int_eq(ran_before, TASKS);
    ck_assert_int_eq(ran_after, TASKS);
    double err = product_error(NN, 517, 70, 260);
    ck_assert_msg(err < 1e-5, "error %g", err);
}
END_TEST

/* Relative error of ours against the double reference, over a dense sweep of [-20, 20]. */
static double worst_relative_error(void (*ours)(long, const float *, float *), double (*reference)(double))
{
    enum { N = 400001 };
    static float x[N], y[N];
    for (long i = 0; i < N; i++)
        x[i] = -20.0f + 40.0f * (float)i / (N - 1);
    ours(N, x, y);
    double worst = 0.0;
    for (long i = 0; i < N; i++) {
        double want = reference(x[i]);
        worst = fmax(worst, fabs(y[i] - want) / fmax(fabs(want), 1e-37));
    }
    return worst;
}

static double sigmoid_reference(double x) { return 1.0 / (1.0 + exp(-x)); }

START_TEST(test_tanh_and_sigmoid_match_libm_within_a_few_ulps)
{
    tg_kernel_use_generic(_i);
    ck_assert_double_lt(worst_relative_error(tg_kernel_tanh, tanh), 2.4e-7);
    ck_assert_double_lt(worst_relative_error(tg_kernel_sigmoid, sigmoid_reference), 2.4e-7);
    tg_kernel_use_generic(0);
}
END_TEST

START_TEST(test_tanh_and_sigmoid_edge_values)
{
    tg_kernel_use_generic(_i);
    float x[7] = { 0.0f, -0.0f, 1e-30f, INFINITY, -INFINITY, NAN, 1e6f }, t[7], s[7];
    tg_kernel_tanh(7, x, t);
    tg_kernel_sigmoid(7, x, s);
    ck_assert(t[0] == 0.0f && !signbit(t[0]) && t[1] == 0.0f && signbit(t[1]));
    ck_assert_float_eq(t[2], 1e-30f);
    ck_assert(t[3] == 1.0f && t[4] == -1.0f && isnan(t[5]) && t[6] == 1.0f);
    ck_assert(s[0] == 0.5f && s[3] == 1.0f && s[4] >= 0.0f && s[4] < 1e-37f && isnan(s[5]) && s[6] == 1.0f);
    tg_kernel_use_generic(0);
}
END_TEST

START_TEST(test_overwriting_product_ignores_what_c_held)
{
    float A[6] = { 1, 2, 3, 4, 5, 6 }, B[6] = { 1, 0, 0, 1, 1, 1 }, C[4] = { 99, 99, 99, 99 };
    tg_kernel_matmul(2, 2, 3, A, B, C, 0); /* [1 2 3; 4 5 6] [1 0; 0 1; 1 1] */
    ck_assert_float_eq(C[0], 4);
    ck_assert_float_eq(C[1], 5);
    ck_assert_float_eq(C[2], 10);
    ck_assert_float_eq(C[3], 11);
}
END_TEST

Suite *kernels_suite(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("products");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_products_match_double_reference_with_the_fastest_kernel);
    tcase_add_test(tc, test_products_match_double_reference_with_the_plain_c_kernel);
    tcase_add_test(tc, test_products_match_double_reference_split_over_threads);
    tcase_add_test(tc, test_a_restarted_pool_runs_each_task_once);
    tcase_add_test(tc, test_overwriting_product_ignores_what_c_held);
    /* loop 0: the fastest path; loop 1: the plain C one */
    tcase_add_loop_test(tc, test_tanh_and_sigmoid_match_libm_within_a_few_ulps, 0, 2);
    tcase_add_loop_test(tc, test_tanh_and_sigmoid_edge_values, 0, 2);
    tcase_add_loop_test(tc, test_transpose_moves_every_value_exactly, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}
