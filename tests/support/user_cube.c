/* user_cube.c: y = s a^3 as an op of a user's, through the public extension API. */
#include "user_cube.h"

static long count(const tg_tensor *t) { return (long)t->rows * t->cols; }

float wrongness = 1.0f;
int cube_backward_calls;

static void cube_backward(tg_tensor *y, tg_tensor *const *in)
{
    const float *s = tg_op_state(y);
    tg_tensor *a = in[0];
    cube_backward_calls++;
    for (long k = 0; k < count(y); k++)
        a->grad[k] += wrongness * 3.0f * *s * a->data[k] * a->data[k] * y->grad[k];
}
const tg_op CUBE = { "user_cube", 1, cube_backward };

tg_tensor *user_cube(tg_tape *tape, tg_tensor *a, float s)
{
    tg_tensor *in[] = { a };
    if (!tg_inputs_ok(tape, &CUBE, in))
        return NULL;
    tg_tensor *y = tg_record(tape, &CUBE, in, a->rows, a->cols, &s, sizeof s);
    if (y)
        for (long k = 0; k < count(y); k++)
            y->data[k] = s * a->data[k] * a->data[k] * a->data[k];
    return y;
}
