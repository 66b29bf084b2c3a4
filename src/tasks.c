/* tasks.c: toy sequence tasks for training and experiments, drawn from the library's RNG. */
#include <limits.h>
#include <string.h>

#include "error.h"

/* A step chosen uniformly in [from, to). */
static int pick_step(tg_rng *rng, int from, int to)
{
    return from + (int)(tg_rng_next(rng) % (uint64_t)(to - from));
}

/* Checks tg_task_adding's arguments. Returns 0, or -1 with err naming the first problem. */
static int check_adding(const tg_rng *rng, int steps, int batch, const float *x, const float *y,
                        tg_error *err)
{
    const char *call = "tg_task_adding";
    if (!rng || !x || !y)
        return tg_error_set(err, call, "%s is NULL", !rng ? "rng" : !x ? "x" : "y");
    if (steps < 2)
        return tg_error_set(err, call, "steps is %d; it must be >= 2 (a marker in each half)",
                            steps);
    if (batch < 1)
        return tg_error_set(err, call, "batch is %d; it must be >= 1", batch);
    return 0;
}

int tg_task_adding(tg_rng *rng, int steps, int batch, float *x, float *y, tg_error *err)
{
    if (check_adding(rng, steps, batch, x, y, err) != 0)
        return -1;
    int half = steps / 2;
    for (int b = 0; b < batch; b++) {
        int first = pick_step(rng, 0, half), second = pick_step(rng, half, steps);
        y[b] = 0.0f;
        for (int t = 0; t < steps; t++) {
            float *value = x + (long)t * 2 * batch + b, *marker = value + batch;
            *value = tg_rng_uniform(rng);
            *marker = (t == first || t == second) ? 1.0f : 0.0f;
            if (*marker != 0.0f)
                y[b] += *value;
        }
    }
    tg_error_clear(err);
    return 0;
}

/* Checks tg_task_copy's arguments. Returns 0, or -1 with err naming the first problem. */
static int check_copy(const tg_rng *rng, int length, int delay, int batch, const float *x,
                      const int *y, tg_error *err)
{
    const char *call = "tg_task_copy";
    if (!rng || !x || !y)
        return tg_error_set(err, call, "%s is NULL", !rng ? "rng" : !x ? "x" : "y");
    if (length < 1)
        return tg_error_set(err, call, "length is %d; it must be >= 1", length);
    if (delay < 1)
        return tg_error_set(err, call, "delay is %d; it must be >= 1 (the delimiter's step)",
                            delay);
    if (length > INT_MAX / 4 || delay > INT_MAX / 4)
        return tg_error_set(err, call, "length %d and delay %d make too long a sequence",
                            length, delay);
    if (batch < 1)
        return tg_error_set(err, call, "batch is %d; it must be >= 1", batch);
    return 0;
}

int tg_task_copy(tg_rng *rng, int length, int delay, int batch, float *x, int *y, tg_error *err)
{
    if (check_copy(rng, length, delay, batch, x, y, err) != 0)
        return -1;
    int steps = 2 * length + delay, delimiter = length + delay - 1;
    memset(x, 0, (size_t)steps * TG_COPY_INPUTS * (size_t)batch * sizeof *x);
    for (int b = 0; b < batch; b++)
        for (int t = 0; t < steps; t++) {
            int row = t == delimiter ? TG_COPY_DELIMITER : TG_COPY_BLANK;
            if (t < length) {
                row = (int)(tg_rng_next(rng) % TG_COPY_SYMBOLS);
                y[(size_t)t * batch + b] = row;
            }
            x[((size_t)t * TG_COPY_INPUTS + row) * batch + b] = 1.0f;
        }
    tg_error_clear(err);
    return 0;
}
