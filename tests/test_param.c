/* test_param.c: the inits of src/param.c: orthogonal init gives orthonormal rows or columns
 * times the gain, and every init refuses bad arguments saying why and changes nothing. */
#include <check.h>
#include <math.h>

#include "alloc_count.h"
#include "tapegrad.h"

/* Q^T Q (or Q Q^T for a wide matrix) equals gain^2 I. */
START_TEST(test_orthogonal_init_gives_orthonormal_rows_or_columns_times_gain)
{
    static const int shapes[3][2] = { { 6, 6 }, { 7, 3 }, { 3, 7 } };
    tg_rng rng = tg_rng_new(11);
    for (int s = 0; s < 3; s++) {
        int rows = shapes[s][0], cols = shapes[s][1];
        tg_tensor *t = tg_param_new(rows, cols);
        ck_assert_int_eq(tg_init_orthogonal(t, 1.5f, &rng, NULL), 0);
        int n = rows >= cols ? cols : rows, len = rows >= cols ? rows : cols;
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++) {
                double dot = 0.0;
                for (int k = 0; k < len; k++)
                    dot += rows >= cols ? (double)t->data[k * cols + a] * t->data[k * cols + b]
                                        : (double)t->data[a * cols + k] * t->data[b * cols + k];
                ck_assert_double_eq_tol(dot, a == b ? 2.25 : 0.0, 1e-5);
            }
        tg_param_free(t);
    }
}
END_TEST

/* The refused init `call` must return -1 with `want` as the message and leave t as it was
 * (every value 7). */
#define CHECK_INIT_REFUSED(call, want)                                                        \
    do {                                                                                     \
        tg_error err_ = { "" };                                                              \
        ck_assert_int_eq(call, -1);                                                          \
        ck_assert_str_eq(err_.message, want);                                                \
        for (int k_ = 0; k_ < 6; k_++)                                                       \
            ck_assert_float_eq(t->data[k_], 7.0f);                                           \
    } while (0)

START_TEST(test_init_refuses_bad_arguments_saying_why_and_changes_nothing)
{
    tg_tensor *t = tg_param_new(2, 3), no_data = { .rows = 1, .cols = 1 };
    for (int k = 0; k < 6; k++)
        t->data[k] = 7.0f;
    tg_rng rng = tg_rng_new(5);
    CHECK_INIT_REFUSED(tg_init_uniform(NULL, 0, 1, &rng, &err_), "tg_init_uniform: t is NULL");
    CHECK_INIT_REFUSED(tg_init_uniform(&no_data, 0, 1, &rng, &err_),
                       "tg_init_uniform: t has no data");
    CHECK_INIT_REFUSED(tg_init_uniform(t, 0, 1, NULL, &err_), "tg_init_uniform: rng is NULL");
    CHECK_INIT_REFUSED(tg_init_uniform(t, 1, -1, &rng, &err_),
                       "tg_init_uniform: [1, -1] is not a range (finite, lo <= hi)");
    CHECK_INIT_REFUSED(tg_init_uniform(t, NAN, 1, &rng, &err_),
                       "tg_init_uniform: [nan, 1] is not a range (finite, lo <= hi)");
    CHECK_INIT_REFUSED(tg_init_normal(t, 0, 1, NULL, &err_), "tg_init_normal: rng is NULL");
    CHECK_INIT_REFUSED(tg_init_normal(t, 0, -2, &rng, &err_),
                       "tg_init_normal: N(0, -2^2) is not a distribution (finite, std >= 0)");
    CHECK_INIT_REFUSED(tg_init_normal(t, INFINITY, 1, &rng, &err_),
                       "tg_init_normal: N(inf, 1^2) is not a distribution (finite, std >= 0)");
    CHECK_INIT_REFUSED(tg_init_orthogonal(NULL, 1, &rng, &err_), "tg_init_orthogonal: t is NULL");
    CHECK_INIT_REFUSED(tg_init_orthogonal(t, NAN, &rng, &err_),
                       "tg_init_orthogonal: gain is nan; it must be finite");
    tg_error err = { "" };
    alloc_fail_after(0);   /* no Check asserts until it is undone: they allocate */
    int status = tg_init_orthogonal(t, 1, &rng, &err);
    alloc_fail_after(-1);
    ck_assert_int_eq(status, -1);
    ck_assert_str_eq(err.message, "tg_init_orthogonal: out of memory for a 3x2 matrix of doubles");
    ck_assert_float_eq(t->data[0], 7.0f);
    err = (tg_error){ "stale" };
    ck_assert_int_eq(tg_init_normal(t, 0, 1, &rng, &err), 0);
    ck_assert_str_eq(err.message, "");
    ck_assert_float_ne(t->data[0], 7.0f);
    tg_param_free(t);
}
END_TEST

Suite *param_suite(void)
{
    Suite *s = suite_create("param");
    TCase *init = tcase_create("init");
    tcase_add_test(init, test_orthogonal_init_gives_orthonormal_rows_or_columns_times_gain);
    tcase_add_test(init, test_init_refuses_bad_arguments_saying_why_and_changes_nothing);
    suite_add_tcase(s, init);
    return s;
}
