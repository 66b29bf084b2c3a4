/* test_tasks.c: the adding problem of src/tasks.c: one marker in each half, the target is the
 * sum of the marked values, and bad arguments are refused, saying why, with nothing written. */
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

Suite *tasks_suite(void)
{
    Suite *s = suite_create("tasks");
    TCase *adding = tcase_create("adding problem");
    tcase_add_test(adding, test_adding_problem_has_one_marker_per_half_and_sums_the_marked_values);
    tcase_add_test(adding, test_adding_problem_refuses_bad_arguments_saying_why_and_writes_nothing);
    suite_add_tcase(s, adding);
    return s;
}
