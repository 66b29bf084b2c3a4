/* installed_hello.c: built against an installed copy of tapegrad (header, static library and
 * pkg-config file from make install) to show that the installation is complete. */
#include <stdio.h>
#include <tapegrad.h>

int main(void)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *w = tg_param_new(1, 1);
    w->data[0] = 0.5f;
    tg_tensor *y = tg_tanh(tape, tg_matmul(tape, w, tg_input(tape, 1, 1, (float[]){ 2.0f })));
    int rc = tg_backward(tape, y);
    /* dy/dw = x (1 - tanh(w x)^2) = 2 (1 - tanh(1)^2) = 0.8399 */
    int ok = rc == 0 && w->grad[0] > 0.8399f && w->grad[0] < 0.8400f;
    printf("installed tapegrad: dy/dw = %.4f (%s)\n", w->grad[0], ok ? "right" : "WRONG");
    tg_param_free(w);
    tg_tape_free(tape);
    return ok ? 0 : 1;
}
