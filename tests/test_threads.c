/* test_threads.c: results do not depend on the thread count. The products (split over the
 * pool by blocks of rows of the result), the elementwise kernels (by ranges), the row sums
 * (by blocks of rows) and a few whole training steps of an RNN and an LSTM cell, outputs and
 * gradients, give the same bits on 1, 2 and 3 threads, on every kernel path this CPU has; the sizes are above the
 * thresholds from which the work is split. And the bitwise comparison is shown to catch one
 * value one ulp off. */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_paths.h"
#include "kernels.h"
#include "tapegrad.h"

/* The kernel paths this CPU and build can run, found when the suite is made. */
static kernel_paths paths;

static const int THREAD_COUNTS[] = { 1, 2, 3 };
#define N_COUNTS (int)(sizeof THREAD_COUNTS / sizeof THREAD_COUNTS[0])

/* The first index where a and b differ in their bits, or -1. */
static long first_bit_difference(long n, const float *a, const float *b)
{
    for (long i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0)
            return i;
    return -1;
}

START_TEST(test_the_bitwise_comparison_catches_one_ulp)
{
    float *a = random_floats(1000, 1), *b = malloc(1000 * sizeof(float));
    memcpy(b, a, 1000 * sizeof(float));
    ck_assert_int_eq(first_bit_difference(1000, a, b), -1);
    b[617] = nextafterf(b[617], INFINITY);
    ck_assert_int_eq(first_bit_difference(1000, a, b), 617);
    free(a);
    free(b);
}
END_TEST

/* ---- the products ----------------------------------------------------------------------- */

enum { AB, AB_ACCUMULATE, AB_ONTO, AB_ONTO_COLUMN, ABT, ATB };

/* C (m x n) from the kernel `which` on fresh operands and a fresh C (c, for the two
 * tg_kernel_matmul_add kinds: m x n, or its first m values as a column). */
static float *product(int which, int m, int n, int k)
{
    float *A = random_floats((long)m * k, 11), *B = random_floats((long)k * n, 12);
    float *C = random_floats((long)m * n, 13), *c = random_floats((long)m * n, 14);
    if (which == AB || which == AB_ACCUMULATE)
        tg_kernel_matmul(m, n, k, A, B, C, which == AB_ACCUMULATE);
    else if (which == AB_ONTO || which == AB_ONTO_COLUMN)
        tg_kernel_matmul_add(m, n, k, A, B, c, which == AB_ONTO ? n : 1, C);
    else if (which == ABT)
        tg_kernel_matmul_nt(m, n, k, A, B, C);
    else
        tg_kernel_matmul_tn(m, n, k, A, B, C);
    free(A);
    free(B);
    free(c);
    return C;
}

/* loop i: path paths.path[i] */
START_TEST(test_products_are_the_same_bits_on_1_2_and_3_threads)
{
    /* from 2^20 multiply-adds up: B read in place, B packed, odd sizes that leave short
     * panels and edge tiles, a k past one block */
    static const int shapes[][3] = { { 256, 64, 256 }, { 256, 256, 64 }, { 1024, 64, 1024 },
                                     { 301, 97, 67 },  { 67, 301, 97 },  { 97, 67, 301 },
                                     { 130, 1023, 33 } };
    ck_assert_int_eq(tg_kernel_use_path(paths.path[_i]), 0);
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++)
        for (int which = AB; which <= ATB; which++) {
            int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            float *one = NULL;
            for (int c = 0; c < N_COUNTS; c++) {
                ck_assert_int_eq(tg_set_threads(THREAD_COUNTS[c]), THREAD_COUNTS[c]);
                float *C = product(which, m, n, k);
                if (!one) {
                    one = C;
                    continue;
                }
                ck_assert_msg(first_bit_difference((long)m * n, one, C) < 0,
                              "%s path, product %d, %dx%dx%d: %d threads differ from 1",
                              tg_kernel_path_name(paths.path[_i]), which, m, n, k, THREAD_COUNTS[c]);
                free(C);
            }
            free(one);
        }
    tg_set_threads(1);
    tg_kernel_use_path(TG_PATH_BEST);
}
END_TEST

/* ---- the elementwise kernels -------------------------------------------------------------- */

enum { TANH, SIGMOID, AXPY, ROW_SUMS, N_MAPS };

static float *map(int which, long n)
{
    float *x = random_floats(n, 21), *y = random_floats(n, 22);
    for (long i = 0; i < n; i++)
        x[i] *= 12.0f; /* past tanh's and sigmoid's linear part */
    if (which == TANH)
        tg_kernel_tanh(n, x, y);
    else if (which == SIGMOID)
        tg_kernel_sigmoid(n, x, y);
    else if (which == AXPY)
        tg_kernel_axpy(n, -0.37f, x, y);
    else /* x as 97 columns, as many rows as fit */
        tg_kernel_add_row_sums((int)(n / 97), 97, x, y);
    free(x);
    return y;
}

/* loop i: path paths.path[i] */
START_TEST(test_elementwise_kernels_are_the_same_bits_on_1_2_and_3_threads)
{
    /* above the split threshold, and odd: tails of 8 and 16 floats, ranges of any size */
    static const long sizes[] = { 1L << 14, 65536 + 7, 200003 };
    ck_assert_int_eq(tg_kernel_use_path(paths.path[_i]), 0);
    for (int s = 0; s < (int)(sizeof sizes / sizeof sizes[0]); s++)
        for (int which = 0; which < N_MAPS; which++) {
            float *one = NULL;
            for (int c = 0; c < N_COUNTS; c++) {
                ck_assert_int_eq(tg_set_threads(THREAD_COUNTS[c]), THREAD_COUNTS[c]);
                float *y = map(which, sizes[s]);
                if (!one) {
                    one = y;
                    continue;
                }
                ck_assert_msg(first_bit_difference(sizes[s], one, y) < 0,
                              "%s path, map %d, n = %ld: %d threads differ from 1",
                              tg_kernel_path_name(paths.path[_i]), which, sizes[s], THREAD_COUNTS[c]);
                free(y);
            }
            free(one);
        }
    tg_set_threads(1);
    tg_kernel_use_path(TG_PATH_BEST);
}
END_TEST

/* ---- whole training steps ------------------------------------------------------------------ */

enum { INPUT = 64, HIDDEN = 256, BATCH = 64, STEPS = 3, UPDATES = 2 };

/* What a few SGD steps of a cell leave: every h_t of the last step, the last loss, and each
 * parameter's data and grad, one after another. */
typedef struct run_record {
    float *values;
    long count;
} run_record;

static void append(run_record *r, const float *v, long n)
{
    r->values = realloc(r->values, sizeof(float) * (size_t)(r->count + n));
    memcpy(r->values + r->count, v, sizeof(float) * (size_t)n);
    r->count += n;
}

static void append_params(run_record *r, tg_tensor *const *params, int n)
{
    for (int i = 0; i < n; i++) {
        long size = (long)params[i]->rows * params[i]->cols;
        append(r, params[i]->data, size);
        append(r, params[i]->grad, size);
    }
}

/* UPDATES steps of mean MSE over STEPS time steps, tg_backward and SGD, with the RNN cell
 * (lstm false) or the LSTM cell. */
static run_record train(bool lstm)
{
    run_record r = { NULL, 0 };
    float *x = random_floats((long)STEPS * INPUT * BATCH, 31), *y = random_floats((long)STEPS * HIDDEN * BATCH, 32);
    tg_rnn_cell *rnn = lstm ? NULL : tg_rnn_cell_new(INPUT, HIDDEN, 33);
    tg_lstm_cell *cell = lstm ? tg_lstm_cell_new(INPUT, HIDDEN, 33, NULL) : NULL;
    tg_tensor *params[3] = { lstm ? cell->W_x : rnn->W_x, lstm ? cell->W_h : rnn->W_h, lstm ? cell->b : rnn->b };
    tg_tape *tape = tg_tape_new();
    for (int u = 0; u < UPDATES; u++) {
        tg_tape_reset(tape);
        tg_tensor *h = tg_constant(tape, HIDDEN, BATCH, NULL), *c = h, *total = NULL;
        for (int t = 0; t < STEPS; t++) {
            tg_tensor *x_t = tg_constant(tape, INPUT, BATCH, x + (long)t * INPUT * BATCH);
            if (lstm)
                tg_lstm_cell_forward(tape, cell, x_t, h, c, &h, &c);
            else
                h = tg_rnn_cell_forward(tape, rnn, x_t, h);
            tg_tensor *mse = tg_mse(tape, h, tg_constant(tape, HIDDEN, BATCH, y + (long)t * HIDDEN * BATCH));
            total = total ? tg_add(tape, total, mse) : mse;
            if (u == UPDATES - 1 && h)
                append(&r, h->data, (long)HIDDEN * BATCH);
        }
        tg_tensor *loss = tg_scale(tape, total, 1.0f / STEPS);
        tg_zero_grad(params, 3, NULL);
        ck_assert_msg(tg_backward(tape, loss) == 0, "%s", tg_tape_error(tape));
        ck_assert_int_eq(tg_sgd_step(params, 3, 0.1f, NULL), 0);
        if (u == UPDATES - 1)
            append(&r, loss->data, 1);
    }
    append_params(&r, params, 3);
    tg_tape_free(tape);
    tg_rnn_cell_free(rnn);
    tg_lstm_cell_free(cell);
    free(x);
    free(y);
    return r;
}

/* loop i: path paths.path[i / 2], the LSTM cell when i is odd */
START_TEST(test_training_steps_are_the_same_bits_on_1_2_and_3_threads)
{
    bool lstm = _i % 2;
    ck_assert_int_eq(tg_kernel_use_path(paths.path[_i / 2]), 0);
    run_record one = { NULL, 0 };
    for (int c = 0; c < N_COUNTS; c++) {
        ck_assert_int_eq(tg_set_threads(THREAD_COUNTS[c]), THREAD_COUNTS[c]);
        run_record r = train(lstm);
        if (c == 0) {
            one = r;
            continue;
        }
        ck_assert_int_eq(r.count, one.count);
        long at = first_bit_difference(one.count, one.values, r.values);
        ck_assert_msg(at < 0, "%s path, %s cell: %d threads differ from 1 at value %ld of %ld",
                      tg_kernel_path_name(paths.path[_i / 2]), lstm ? "LSTM" : "RNN", THREAD_COUNTS[c], at,
                      one.count);
        free(r.values);
    }
    free(one.values);
    tg_set_threads(1);
    tg_kernel_use_path(TG_PATH_BEST);
}
END_TEST

Suite *threads_suite(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("same bits");
    tcase_set_timeout(tc, 120);
    paths = find_kernel_paths(false);
    tcase_add_test(tc, test_the_bitwise_comparison_catches_one_ulp);
    tcase_add_loop_test(tc, test_products_are_the_same_bits_on_1_2_and_3_threads, 0, paths.n);
    tcase_add_loop_test(tc, test_elementwise_kernels_are_the_same_bits_on_1_2_and_3_threads, 0, paths.n);
    tcase_add_loop_test(tc, test_training_steps_are_the_same_bits_on_1_2_and_3_threads, 0, 2 * paths.n);
    suite_add_tcase(s, tc);
    return s;
}
