/* test_tasks.c: the toy tasks of src/tasks.c. The adding problem: one marker in each half, the
 * target is the sum of the marked values. The copy task: symbols, blanks and one delimiter where
 * they belong, targets equal to the shown symbols in order. Bad arguments are refused, saying
 * why, with nothing written. */
#include <check.h>

#include "tapegrad.h"

START_TEST(test_adding_problem_has_one_marker_per_half_and_sums_the_marked_values)
{
    enum { STEPS = 9, BATCH = 50 };
    float x[STEPS * 2 * BATCH], y[BATCH];
    tg_rng rng = tg_rng_new(4);
    ck_assert_int_eq(tg_task_adding(&rng, STEPS, BATCH, x, y, NULL), 0);
    for (int b = 0; b < BATCH; b++) {
        int first_half = 0, second_half = 0;
        float sum = 0.0f;
        for (int t = 0; t < STEPS; t++) {
            float value = x[t * 2 * BATCH + b], marker = x[t * 2 * BATCH + BATCH + b];
            ck_assert(value >= 0.0f && value < 1.0f);
            ck_assert(marker == 0.0f || marker == 1.0f);
            if (marker == 1.0f) {
                sum += value;
                first_half += t < STEPS / 2;
                second_half += t >= STEPS / 2;
            }
        }
        ck_assert_int_eq(first_half, 1);
        ck_assert_int_eq(second_half, 1);
        ck_assert_float_eq_tol(y[b], sum, 1e-6f);
    }
}
END_TEST

START_TEST(test_adding_problem_refuses_bad_arguments_saying_why_and_writes_nothing)
{
    enum { STEPS = 4, BATCH = 3 };
    float x[STEPS * 2 * BATCH], y[BATCH];
    for (int k = 0; k < STEPS * 2 * BATCH; k++)
        x[k] = -1.0f;
    for (int b = 0; b < BATCH; b++)
        y[b] = -1.0f;
    tg_rng rng = tg_rng_new(4);
    const struct { tg_rng *rng; int steps, batch; float *x, *y; const char *want; } bad[] = {
        { NULL, STEPS, BATCH, x, y, "tg_task_adding: rng is NULL" },
        { &rng, STEPS, BATCH, NULL, y, "tg_task_adding: x is NULL" },
        { &rng, STEPS, BATCH, x, NULL, "tg_task_adding: y is NULL" },
        { &rng, 1, BATCH, x, y,
          "tg_task_adding: steps is 1; it must be >= 2 (a marker in each half)" },
        { &rng, STEPS, 0, x, y, "tg_task_adding: batch is 0; it must be >= 1" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tg_error err = { "" };
        ck_assert_int_eq(tg_task_adding(bad[i].rng, bad[i].steps, bad[i].batch, bad[i].x, bad[i].y,
                                        &err), -1);
        ck_assert_str_eq(err.message, bad[i].want);
        for (int k = 0; k < STEPS * 2 * BATCH; k++)
            ck_assert_float_eq(x[k], -1.0f);
        for (int b = 0; b < BATCH; b++)
            ck_assert_float_eq(y[b], -1.0f);
    }
    tg_error err = { "stale" };
    ck_assert_int_eq(tg_task_adding(&rng, STEPS, BATCH, x, y, &err), 0);
    ck_assert_str_eq(err.message, "");
}
END_TEST

/* The one-hot row of step t, column b, of a copy-task input with `batch` columns; -1 unless
 * exactly one row is 1 and the others 0. */
static int copy_row(const float *x, int t, int b, int batch)
{
    int row = -1, ones = 0;
    for (int r = 0; r < TG_COPY_INPUTS; r++) {
        float v = x[(t * TG_COPY_INPUTS + r) * batch + b];
        if (v != 0.0f && v != 1.0f)
            return -1;
        if (v == 1.0f) {
            row = r;
            ones++;
        }
    }
    return ones == 1 ? row : -1;
}

START_TEST(test_copy_task_shows_symbols_then_blanks_and_one_delimiter_and_targets_them_in_order)
{
    enum { LENGTH = 4, DELAY = 5, BATCH = 200, STEPS = 2 * LENGTH + DELAY };
    float x[STEPS * TG_COPY_INPUTS * BATCH];
    int y[LENGTH * BATCH], seen[TG_COPY_SYMBOLS] = { 0 };
    tg_rng rng = tg_rng_new(7);
    ck_assert_int_eq(tg_task_copy(&rng, LENGTH, DELAY, BATCH, x, y, NULL), 0);
    for (int b = 0; b < BATCH; b++)
        for (int t = 0; t < STEPS; t++) {
            int row = copy_row(x, t, b, BATCH);
            if (t < LENGTH) {
                ck_assert_msg(row >= 0 && row < TG_COPY_SYMBOLS, "t = %d: row %d", t, row);
                ck_assert_int_eq(y[t * BATCH + b], row);
                seen[row]++;
            } else if (t == LENGTH + DELAY - 1) {
                ck_assert_int_eq(row, TG_COPY_DELIMITER);
            } else {
                ck_assert_msg(row == TG_COPY_BLANK, "t = %d: row %d", t, row);
            }
        }
    for (int s = 0; s < TG_COPY_SYMBOLS; s++)   /* 800 draws: each symbol about 100 times */
        ck_assert_msg(seen[s] > 50 && seen[s] < 150, "symbol %d drawn %d times", s, seen[s]);
}
END_TEST

START_TEST(test_copy_task_refuses_bad_arguments_saying_why_and_writes_nothing)
{
    enum { LENGTH = 2, DELAY = 3, BATCH = 2, N_X = (2 * LENGTH + DELAY) * TG_COPY_INPUTS * BATCH };
    float x[N_X];
    int y[LENGTH * BATCH];
    for (int k = 0; k < N_X; k++)
        x[k] = -1.0f;
    for (int k = 0; k < LENGTH * BATCH; k++)
        y[k] = -1;
    tg_rng rng = tg_rng_new(4);
    const struct { tg_rng *rng; int length, delay, batch; float *x; int *y; const char *want; } bad[] = {
        { NULL, LENGTH, DELAY, BATCH, x, y, "tg_task_copy: rng is NULL" },
        { &rng, LENGTH, DELAY, BATCH, NULL, y, "tg_task_copy: x is NULL" },
        { &rng, LENGTH, DELAY, BATCH, x, NULL, "tg_task_copy: y is NULL" },
        { &rng, 0, DELAY, BATCH, x, y, "tg_task_copy: length is 0; it must be >= 1" },
        { &rng, LENGTH, 0, BATCH, x, y,
          "tg_task_copy: delay is 0; it must be >= 1 (the delimiter's step)" },
        { &rng, LENGTH, DELAY, 0, x, y, "tg_task_copy: batch is 0; it must be >= 1" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tg_error err = { "" };
        ck_assert_int_eq(tg_task_copy(bad[i].rng, bad[i].length, bad[i].delay, bad[i].batch,
                                      bad[i].x, bad[i].y, &err), -1);
        ck_assert_str_eq(err.message, bad[i].want);
        for (int k = 0; k < N_X; k++)
            ck_assert_float_eq(x[k], -1.0f);
        for (int k = 0; k < LENGTH * BATCH; k++)
            ck_assert_int_eq(y[k], -1);
    }
    tg_error err = { "stale" };
    ck_assert_int_eq(tg_task_copy(&rng, LENGTH, DELAY, BATCH, x, y, &err), 0);
    ck_assert_str_eq(err.message, "");
}
END_TEST

Suite *tasks_suite(void)
{
    Suite *s = suite_create("tasks");
    TCase *adding = tcase_create("adding problem");
    tcase_add_test(adding, test_adding_problem_has_one_marker_per_half_and_sums_the_marked_values);
    tcase_add_test(adding, test_adding_problem_refuses_bad_arguments_saying_why_and_writes_nothing);
    suite_add_tcase(s, adding);
    TCase *copy = tcase_create("copy task");
    tcase_add_test(copy, test_copy_task_shows_symbols_then_blanks_and_one_delimiter_and_targets_them_in_order);
    tcase_add_test(copy, test_copy_task_refuses_bad_arguments_saying_why_and_writes_nothing);
    suite_add_tcase(s, copy);
    return s;
}
