/* tasks.c: toy sequence tasks for training and experiments, drawn from the library's RNG. */
#include "tapegrad.h"

/* A step chosen uniformly in [from, to). */
static int pick_step(tg_rng *rng, int from, int to)
{
    return from + (int)(tg_rng_next(rng) % (uint64_t)(to - from));
}

int tg_task_adding(tg_rng *rng, int steps, int batch, float *x, float *y)
{
    if (!rng || !x || !y || steps < 2 || batch < 1)
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
    return 0;
}
