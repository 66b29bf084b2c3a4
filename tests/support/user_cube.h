/* user_cube.h: an op of a user's, defined outside the library exactly as the library's own
 * ops are (tg_inputs_ok, tg_record, tg_op_state): y = s a^3, da += 3 s a^2 dy, with the scale
 * s as its state. The tape suite records it; the gradcheck suite checks its backward. */
#ifndef TAPEGRAD_TEST_USER_CUBE_H
#define TAPEGRAD_TEST_USER_CUBE_H

#include "tapegrad.h"

extern float wrongness;            /* scales the derivative: 1 is right, 1.01 is 1% wrong */
extern int cube_backward_calls;    /* how often the backward ran */
extern const tg_op CUBE;

tg_tensor *user_cube(tg_tape *tape, tg_tensor *a, float s);   /* y = s a^3, any shape */

#endif
