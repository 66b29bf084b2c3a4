/* test_kernels.c: every fast kernel (src/kernels_fast.c) against its reference
 * (src/kernels_ref.c), within a tolerance that follows from float rounding and that is shown
 * to catch one wrong element: the products at sizes that take every path of the fast code,
 * through each micro-kernel this CPU can run (plain C, AVX2, AVX-512; the suite prints the
 * ones it cannot, whose tests are left out), on one thread and on two; tanh and sigmoid over
 * the whole float range; the transpose, value for value; axpy and the sums. Then the reference
 * products on a worked example, tanh and sigmoid against their exact values in double over the whole float range and at
 * their edge values, and the thread pool, restarted. In a KERNELS=ref build tg_kernel_* are the
 * reference kernels, so the comparisons hold trivially there and the other tests check the
 * reference kernels the ops then call. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gradcheck.h"
#include "kernel_paths.h"
#include "kernels.h"
#include "threads.h"

/* ---- the comparison ------------------------------------------------------------------------
 * A float sum of t terms, added in any order (with or without FMA, the rounding of each
 * product included), is within about t * FLT_EPSILON / 2 times the sum of the terms'
 * magnitudes of the exact sum, so the fast and the reference result are within
 * t * FLT_EPSILON times it of each other. For a product C[i][j] += sum over p of
 * A[i][p] B[p][j], t = k + 1 and the magnitude is |C[i][j]| + sum over p of |A[i][p]| |B[p][j]|.
 * Each test below names its t and magnitude. */

/* Whether got is within terms * FLT_EPSILON * scale of want; NaN matches only NaN. */
static bool close_enough(double got, double want, double scale, double terms)
{
    if (isnan(got) || isnan(want))
        return isnan(got) && isnan(want);
    return fabs(got - want) <= terms * FLT_EPSILON * scale;
}

/* The first i at which got[i] is not close enough to want[i], or -1 when none is. */
static long first_mismatch(long n, const float *got, const float *want, const float *scale, double terms)
{
    for (long i = 0; i < n; i++)
        if (!close_enough(got[i], want[i], scale[i], terms))
            return i;
    return -1;
}

static float *absolute(long n, const float *x)
{
    float *a = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (long i = 0; i < n; i++)
        a[i] = fabsf(x[i]);
    return a;
}

/* ---- the paths ------------------------------------------------------------------------------
 * The instruction sets this CPU and this build can run, found when the suite is made: each
 * test that compares paths loops over these alone. */
static kernel_paths paths;

/* Makes the kernels take paths.path[i]. */
static void use_path(int i)
{
    ck_assert_int_eq(tg_kernel_use_path(paths.path[i]), 0);
}

/* ---- products ------------------------------------------------------------------------------ */

enum { NN, NT, TN, NN_OVERWRITE, NN_ONTO, NN_ONTO_COLUMN };

/* C (+)= A B, A B^T or A^T B, or C = c + A B (c: m x n, or its first column m x 1 added to
 * every column), through the fast kernel or the reference one; A and B as stored. */
static void run_product(bool fast, int kind, int m, int n, int k, const float *A, const float *B,
                        const float *c, float *C)
{
    if (kind == NN || kind == NN_OVERWRITE)
        (fast ? tg_kernel_matmul : tg_ref_matmul)(m, n, k, A, B, C, kind == NN);
    else if (kind == NN_ONTO || kind == NN_ONTO_COLUMN)
        (fast ? tg_kernel_matmul_add : tg_ref_matmul_add)(m, n, k, A, B, c, kind == NN_ONTO ? n : 1, C);
    else if (kind == NT)
        (fast ? tg_kernel_matmul_nt : tg_ref_matmul_nt)(m, n, k, A, B, C);
    else
        (fast ? tg_kernel_matmul_tn : tg_ref_matmul_tn)(m, n, k, A, B, C);
}

/* One product computed both ways from C = 1 (or from C = NaN for NN_OVERWRITE and the
 * NN_ONTO kinds, which must not read it), with the magnitude of each element's terms. */
typedef struct product_pair {
    long count;
    float *fast, *ref, *scale;
} product_pair;

static product_pair run_both(int kind, int m, int n, int k)
{
    long size_a = (long)m * k, size_b = (long)k * n, count = (long)m * n;
    float *A = random_floats(size_a, 1), *B = random_floats(size_b, 2), *c = random_floats(count, 3);
    float *abs_A = absolute(size_a, A), *abs_B = absolute(size_b, B), *abs_c = absolute(count, c);
    bool writes_only = kind == NN_OVERWRITE || kind == NN_ONTO || kind == NN_ONTO_COLUMN;
    product_pair pair = { count, malloc(sizeof(float) * (size_t)count), malloc(sizeof(float) * (size_t)count),
                          malloc(sizeof(float) * (size_t)count) };
    for (long i = 0; i < count; i++) {
        pair.fast[i] = pair.ref[i] = writes_only ? NAN : 1.0f;
        pair.scale[i] = 1.0f; /* |C|, overwritten by the kinds that only write C */
    }
    run_product(true, kind, m, n, k, A, B, c, pair.fast);
    run_product(false, kind, m, n, k, A, B, c, pair.ref);
    run_product(false, kind, m, n, k, abs_A, abs_B, abs_c, pair.scale);
    free(A);
    free(B);
    free(c);
    free(abs_A);
    free(abs_B);
    free(abs_c);
    return pair;
}

static void free_pair(product_pair pair)
{
    free(pair.fast);
    free(pair.ref);
    free(pair.scale);
}

/* Sizes that take every path of kernels_fast.c (tiles MR = 6, NR = 16, and 12 x 32 on
 * AVX-512, blocks KC = NC = 256, TINY = 8^3 multiply-adds, THIN = 4, NARROW = 64, parallel
 * from 2^20 multiply-adds), and the odd sizes 1, 2, 15, 17, 31, 33 and 1023. */
static const int SIZES[][3] = {
    { 1, 1, 1 }, { 2, 2, 2 }, { 7, 7, 7 }, { 8, 8, 8 },      /* tiny: direct loops */
    { 1, 40, 3 }, { 40, 1, 50 }, { 257, 5, 3 }, { 9, 3, 70 }, /* thin: n or k under 4 */
    { 1023, 2, 31 },
    { 6, 16, 4 }, { 33, 33, 33 }, { 13, 17, 300 },             /* blocked, k past one KC */
    { 15, 17, 31 }, { 17, 15, 33 }, { 31, 33, 17 }, { 33, 31, 15 }, { 17, 33, 1023 },
    { 100, 70, 257 }, { 75, 260, 19 }, { 70, 300, 520 },       /* wide: packed, n past one NC */
    { 15, 1023, 17 }, { 2, 1023, 5 },
    { 32, 32, 32 }, { 12, 48, 70 }, { 64, 64, 300 }, { 7, 40, 33 }, /* narrow: read in place */
    { 4, 33, 17 }, { 8, 20, 40 }, { 34, 50, 64 },              /* ending in panels of 4 rows */
    { 11, 31, 9 }, { 12, 32, 20 }, { 13, 33, 40 }, { 23, 48, 50 }, /* around the 12 x 32 tile */
    { 24, 64, 64 }, { 25, 65, 70 }, { 36, 63, 257 }, { 37, 97, 300 },
    { 200, 170, 257 }, { 517, 70, 260 }, { 1023, 33, 31 },     /* split over threads */
};
#define N_SIZES ((int)(sizeof SIZES / sizeof SIZES[0]))

/* Loop index i: path paths.path[i / 2], on two threads when i is odd. */
START_TEST(test_fast_products_match_the_reference)
{
    use_path(_i / 2);
    ck_assert_int_eq(tg_set_threads(_i % 2 ? 2 : 1), _i % 2 ? 2 : 1);
    for (int kind = NN; kind <= NN_ONTO_COLUMN; kind++)
        for (int s = 0; s < N_SIZES; s++) {
            int m = SIZES[s][0], n = SIZES[s][1], k = SIZES[s][2];
            product_pair pair = run_both(kind, m, n, k);
            long bad = first_mismatch(pair.count, pair.fast, pair.ref, pair.scale, k + 1);
            ck_assert_msg(bad < 0, "%s product %d at %dx%dx%d: C[%ld] %.9g, reference %.9g",
                          tg_kernel_path_name(paths.path[_i / 2]), kind, m, n, k, bad,
                          bad < 0 ? 0.0 : pair.fast[bad], bad < 0 ? 0.0 : pair.ref[bad]);
            free_pair(pair);
        }
    ck_assert_int_eq(tg_set_threads(1), 1);
    tg_kernel_use_path(TG_PATH_BEST);
}
END_TEST

START_TEST(test_the_product_comparison_reports_one_wrong_element)
{
    /* One element off by an average term, as if a kernel had skipped one p. */
    enum { M = 100, N = 70, K = 257 };
    product_pair pair = run_both(NN, M, N, K);
    ck_assert_int_eq(first_mismatch(pair.count, pair.fast, pair.ref, pair.scale, K + 1), -1);
    long wrong = 1234;
    pair.fast[wrong] += pair.scale[wrong] / K;
    ck_assert_int_eq(first_mismatch(pair.count, pair.fast, pair.ref, pair.scale, K + 1), wrong);
    free_pair(pair);
}
END_TEST

START_TEST(test_reference_products_match_a_worked_example)
{
    /* [1 2 3; 4 5 6] [1 0; 0 1; 1 1] = [4 5; 10 11], as A B, as A B^T and as A^T B. */
    const float A[6] = { 1, 2, 3, 4, 5, 6 }, B[6] = { 1, 0, 0, 1, 1, 1 };
    const float A_T[6] = { 1, 4, 2, 5, 3, 6 }, B_T[6] = { 1, 0, 1, 0, 1, 1 };
    const float want[4] = { 4, 5, 10, 11 };
    float overwritten[4] = { 99, 99, 99, 99 }, added[4] = { 1, 1, 1, 1 }, nt[4] = { 0 }, tn[4] = { 0 };
    tg_ref_matmul(2, 2, 3, A, B, overwritten, 0);
    tg_ref_matmul(2, 2, 3, A, B, added, 1);
    tg_ref_matmul_nt(2, 2, 3, A, B_T, nt);
    tg_ref_matmul_tn(2, 2, 3, A_T, B, tn);
    for (int i = 0; i < 4; i++) {
        ck_assert_float_eq(overwritten[i], want[i]);
        ck_assert_float_eq(added[i], want[i] + 1);
        ck_assert_float_eq(nt[i], want[i]);
        ck_assert_float_eq(tn[i], want[i]);
    }
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

/* ---- tanh and sigmoid ----------------------------------------------------------------------
 * Each is held to the exact value y, computed in double (libm's tanh, and 1 / (1 + exp(-x)),
 * both good to about 1e-16), over the whole float range, to within
 * max(2 FLT_EPSILON |y|, 3 FLT_TRUE_MIN):
 * - a normal result to within 2 FLT_EPSILON (2.4e-7) relative error, a few ulps: the bound
 *   that kernels_fast.c states;
 * - a subnormal one (sigmoid below about -87.3; 0 below about -103.97) to within
 *   3 FLT_TRUE_MIN. Subnormals lie FLT_TRUE_MIN apart, so no relative bound holds there:
 *   rounding to the nearest one alone may be half of FLT_TRUE_MIN off, which near the bottom is
 *   50% of y. The 2 FLT_EPSILON relative error of what comes before that rounding adds under
 *   2 FLT_TRUE_MIN more, since FLT_MIN FLT_EPSILON = FLT_TRUE_MIN.
 * The fast kernels and the reference are each within that bound of y, so within twice it of
 * each other. */

typedef void map_fn(long n, const float *x, float *y);
typedef double exact_fn(double x);

static double sigmoid_exact(double x) { return 1.0 / (1.0 + exp(-x)); }

static double error_bound(double exact) { return fmax(2 * FLT_EPSILON * fabs(exact), 3 * FLT_TRUE_MIN); }

/* Whether got is within `bounds` error bounds of exact; NaN matches only NaN. */
static bool within_bounds(double got, double exact, double bound, int bounds)
{
    if (isnan(got) || isnan(exact))
        return isnan(got) && isnan(exact);
    return fabs(got - exact) <= bounds * bound;
}

/* Points over the whole float range: a dense sweep of [lo, hi] (a count that leaves a tail
 * after blocks of 8), every 4099th float by its bits (about 2000 in each binade, subnormals
 * and NaNs of both signs included) and edge values. Returns how many are in *x. */
static long sweep(float lo, float hi, float **x)
{
    enum { DENSE = 200001, BITS_STRIDE = 4099 };
    static const float edges[] = { 0.0f, -0.0f, 1e-30f, -1e-30f, FLT_TRUE_MIN, -FLT_TRUE_MIN,
                                   INFINITY, -INFINITY, NAN, 1e6f };
    enum { N_EDGES = sizeof edges / sizeof edges[0] };
    long n_bits = (long)((UINT64_C(1) << 32) / BITS_STRIDE) + 1;
    float *p = *x = malloc(sizeof(float) * (size_t)(DENSE + n_bits + N_EDGES));
    for (long i = 0; i < DENSE; i++)
        *p++ = lo + (hi - lo) * (float)i / (float)(DENSE - 1);
    for (uint64_t bits = 0; bits < UINT64_C(1) << 32; bits += BITS_STRIDE) {
        uint32_t b = (uint32_t)bits;
        memcpy(p++, &b, sizeof b);
    }
    for (int e = 0; e < N_EDGES; e++)
        *p++ = edges[e];
    return DENSE + n_bits + N_EDGES;
}

/* A point where a map misses its bound (at = -1: none). */
typedef struct map_miss {
    long at;
    float x, got, want;
} map_miss;

static map_miss miss_at(long at, const float *x, const float *got, const float *want)
{
    return (map_miss){ at, at < 0 ? 0 : x[at], at < 0 ? 0 : got[at], at < 0 ? 0 : want[at] };
}

/* Where fast and reference first differ by more than twice the error bound of the exact
 * value over the sweep; perturb_at >= 0 first moves that element of the fast result twice
 * that far from the reference. */
static map_miss map_mismatch(map_fn *fast, map_fn *ref, exact_fn *exact, float lo, float hi, long perturb_at)
{
    float *x;
    long n = sweep(lo, hi, &x);
    float *got = malloc(sizeof(float) * (size_t)n), *want = malloc(sizeof(float) * (size_t)n);
    fast(n, x, got);
    ref(n, x, want);
    if (perturb_at >= 0)
        got[perturb_at] = (float)(want[perturb_at] + 4 * error_bound(exact(x[perturb_at])));
    long bad = -1;
    for (long i = 0; i < n && bad < 0; i++)
        if (!within_bounds(got[i], want[i], error_bound(exact(x[i])), 2))
            bad = i;
    map_miss found = miss_at(bad, x, got, want);
    free(x);
    free(got);
    free(want);
    return found;
}

/* Where ours first misses the error bound of the exact value over the sweep. */
static map_miss exact_mismatch(map_fn *ours, exact_fn *exact, float lo, float hi)
{
    float *x;
    long n = sweep(lo, hi, &x);
    float *got = malloc(sizeof(float) * (size_t)n), *want = malloc(sizeof(float) * (size_t)n);
    ours(n, x, got);
    long bad = -1;
    for (long i = 0; i < n && bad < 0; i++) {
        double y = exact(x[i]);
        want[i] = (float)y;
        if (!within_bounds(got[i], y, error_bound(y), 1))
            bad = i;
    }
    map_miss found = miss_at(bad, x, got, want);
    free(x);
    free(got);
    free(want);
    return found;
}

static void assert_no_miss(const char *name, map_miss m, const char *against)
{
    ck_assert_msg(m.at < 0, "%s at x = %.9g: %.9g, %s %.9g", name, m.x, m.got, against, m.want);
}

/* tanh on [-20, 20] and sigmoid on [-110, 30] densely (where they are not yet 0 or +-1), and
 * both everywhere else by the bits. */
START_TEST(test_fast_tanh_and_sigmoid_match_the_reference_over_the_whole_range)
{
    use_path(_i);
    assert_no_miss("tanh", map_mismatch(tg_kernel_tanh, tg_ref_tanh, tanh, -20.0f, 20.0f, -1), "reference");
    assert_no_miss("sigmoid", map_mismatch(tg_kernel_sigmoid, tg_ref_sigmoid, sigmoid_exact, -110.0f, 30.0f, -1),
                   "reference");
    tg_kernel_use_path(TG_PATH_BEST);
}
END_TEST

/* A normal result (tanh near 0.5) and a subnormal one (sigmoid near -110, where the bound is
 * the absolute one). */
START_TEST(test_the_map_comparison_reports_one_element_twice_the_tolerance_off)
{
    ck_assert_int_eq(map_mismatch(tg_kernel_tanh, tg_ref_tanh, tanh, -20.0f, 20.0f, 102500).at, 102500);
    ck_assert_int_eq(map_mismatch(tg_kernel_sigmoid, tg_ref_sigmoid, sigmoid_exact, -110.0f, 30.0f, 7).at, 7);
}
END_TEST

/* Loop index i < paths.n: the fast kernels on paths.path[i] (returns true); i = paths.n: the
 * reference kernels (false). */
static bool test_fast_on_path(int i)
{
    if (i == paths.n)
        return false;
    use_path(i);
    return true;
}

START_TEST(test_tanh_and_sigmoid_are_within_the_error_bound_over_the_whole_range)
{
    bool fast = test_fast_on_path(_i);
    assert_no_miss("tanh", exact_mismatch(fast ? tg_kernel_tanh : tg_ref_tanh, tanh, -20.0f, 20.0f), "exact");
    assert_no_miss("sigmoid", exact_mismatch(fast ? tg_kernel_sigmoid : tg_ref_sigmoid, sigmoid_exact, -110.0f,
                                             30.0f), "exact");
    tg_kernel_use_path(TG_PATH_BEST);
}
END_TEST

START_TEST(test_tanh_and_sigmoid_edge_values)
{
    float x[7] = { 0.0f, -0.0f, 1e-30f, INFINITY, -INFINITY, NAN, 1e6f }, t[7], s[7];
    bool fast = test_fast_on_path(_i);
    (fast ? tg_kernel_tanh : tg_ref_tanh)(7, x, t);
    (fast ? tg_kernel_sigmoid : tg_ref_sigmoid)(7, x, s);
    ck_assert(t[0] == 0.0f && !signbit(t[0]) && t[1] == 0.0f && signbit(t[1]));
    ck_assert_float_eq(t[2], 1e-30f);
    ck_assert(t[3] == 1.0f && t[4] == -1.0f && isnan(t[5]) && t[6] == 1.0f);
    ck_assert(s[0] == 0.5f && s[3] == 1.0f && s[4] == 0.0f && isnan(s[5]) && s[6] == 1.0f);
    tg_kernel_use_path(TG_PATH_BEST);
}
END_TEST

/* ---- transpose, axpy and sums ------------------------------------------------------------- */

START_TEST(test_fast_transpose_moves_every_value_as_the_reference)
{
    static const int shapes[][2] = { { 1, 1 }, { 1, 9 }, { 2, 15 }, { 7, 9 }, { 8, 8 }, { 33, 17 }, { 31, 16 },
                                     { 64, 40 }, { 16, 130 }, { 75, 70 } };
    use_path(_i);
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        int rows = shapes[s][0], cols = shapes[s][1];
        long count = (long)rows * cols;
        float *A = random_floats(count, 3), *got = malloc(sizeof(float) * (size_t)count);
        float *want = malloc(sizeof(float) * (size_t)count);
        tg_kernel_transpose(rows, cols, A, got);
        tg_ref_transpose(rows, cols, A, want);
        for (int i = 0; i < rows; i++) /* exact: a transpose only moves values */
            for (int j = 0; j < cols; j++) {
                float a = A[(long)i * cols + j];
                ck_assert_msg(got[(long)j * rows + i] == a && want[(long)j * rows + i] == a,
                              "%dx%d: (%d, %d)", rows, cols, i, j);
            }
        free(A);
        free(got);
        free(want);
    }
    tg_kernel_use_path(TG_PATH_BEST);
}
END_TEST

static const long LENGTHS[] = { 0, 1, 7, 8, 9, 1000, 4099 };
#define N_LENGTHS ((int)(sizeof LENGTHS / sizeof LENGTHS[0]))

START_TEST(test_fast_axpy_and_sums_match_the_reference)
{
    for (int l = 0; l < N_LENGTHS; l++) {
        long n = LENGTHS[l];
        float *x = random_floats(n, 4), *y = random_floats(n, 5), *got = random_floats(n, 5);
        float *want = random_floats(n, 5), *scale = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
        for (long i = 0; i < n; i++)
            scale[i] = fabsf(y[i]) + 0.75f * fabsf(x[i]); /* |y| + |alpha x| */
        tg_kernel_axpy(n, -0.75f, x, got);
        tg_ref_axpy(n, -0.75f, x, want);
        /* axpy: one product and one sum, 2 terms */
        ck_assert_msg(first_mismatch(n, got, want, scale, 2) < 0, "axpy, n = %ld", n);
        /* the sums: n terms and the final rounding to float */
        float *abs_x = absolute(n, x);
        ck_assert_msg(close_enough(tg_kernel_sum(n, x), tg_ref_sum(n, x), tg_ref_sum(n, abs_x), n + 1),
                      "sum, n = %ld", n);
        /* (a - b)^2: n terms, each carrying up to three roundings; all are positive */
        double ssd = tg_ref_sum_squared_difference(n, x, y);
        ck_assert_msg(close_enough(tg_kernel_sum_squared_difference(n, x, y), ssd, ssd, n + 3),
                      "sum of squared differences, n = %ld", n);
        free(x);
        free(y);
        free(got);
        free(want);
        free(scale);
        free(abs_x);
    }
}
END_TEST

START_TEST(test_fast_row_sums_match_the_reference)
{
    static const int shapes[][2] = { { 1, 1 }, { 3, 7 }, { 5, 33 }, { 64, 130 } };
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        int rows = shapes[s][0], cols = shapes[s][1];
        float *X = random_floats((long)rows * cols, 6), *abs_X = absolute((long)rows * cols, X);
        float *got = random_floats(rows, 7), *want = random_floats(rows, 7), *scale = absolute(rows, want);
        tg_kernel_add_row_sums(rows, cols, X, got);
        tg_ref_add_row_sums(rows, cols, X, want);
        tg_ref_add_row_sums(rows, cols, abs_X, scale); /* |out| + sum over j of |X[i][j]| */
        /* cols terms and out's old value, and the row sum's rounding to float */
        ck_assert_msg(first_mismatch(rows, got, want, scale, cols + 2) < 0, "%dx%d", rows, cols);
        free(X);
        free(abs_X);
        free(got);
        free(want);
        free(scale);
    }
}
END_TEST

/* ---- the thread pool ---------------------------------------------------------------------- */

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
    product_pair pair = run_both(NN, 517, 70, 260);
    ck_assert_int_eq(tg_set_threads(1), 1);
    int ran_before = atomic_load(&before), ran_after = atomic_load(&after);
    ck_assert_int_eq(ran_before, TASKS);
    ck_assert_int_eq(ran_after, TASKS);
    ck_assert_int_eq(first_mismatch(pair.count, pair.fast, pair.ref, pair.scale, 260 + 1), -1);
    free_pair(pair);
}
END_TEST

Suite *kernels_suite(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("products");
    tcase_set_timeout(tc, 60);
    paths = find_kernel_paths(true);
    /* loop i: path paths.path[i / 2], two threads when i is odd */
    tcase_add_loop_test(tc, test_fast_products_match_the_reference, 0, 2 * paths.n);
    tcase_add_test(tc, test_the_product_comparison_reports_one_wrong_element);
    tcase_add_test(tc, test_reference_products_match_a_worked_example);
    tcase_add_test(tc, test_overwriting_product_ignores_what_c_held);
    tcase_add_test(tc, test_a_restarted_pool_runs_each_task_once);
    suite_add_tcase(s, tc);
    TCase *maps = tcase_create("maps and sums");
    tcase_set_timeout(maps, 60);
    /* loop i: path paths.path[i]; i = paths.n (where given): the reference kernels */
    tcase_add_loop_test(maps, test_fast_tanh_and_sigmoid_match_the_reference_over_the_whole_range, 0, paths.n);
    tcase_add_test(maps, test_the_map_comparison_reports_one_element_twice_the_tolerance_off);
    tcase_add_loop_test(maps, test_tanh_and_sigmoid_are_within_the_error_bound_over_the_whole_range, 0, paths.n + 1);
    tcase_add_loop_test(maps, test_tanh_and_sigmoid_edge_values, 0, paths.n + 1);
    tcase_add_loop_test(maps, test_fast_transpose_moves_every_value_as_the_reference, 0, paths.n);
    tcase_add_test(maps, test_fast_axpy_and_sums_match_the_reference);
    tcase_add_test(maps, test_fast_row_sums_match_the_reference);
    suite_add_tcase(s, maps);
    return s;
}
