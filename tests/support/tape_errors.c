/* tape_errors.c: a tape's error message, and a tape usable again after a reset. */
#include <check.h>

#include "tape_errors.h"

void assert_error(const tg_tape *tape, const char *want)
{
    const char *got = tg_tape_error(tape);
    ck_assert_msg(got != NULL, "no error recorded, expected \"%s\"", want);
    ck_assert_str_eq(got, want);
}

/* After a reset the tape has no error and computes again. */
void assert_usable_after_reset(tg_tape *tape)
{
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_tape_error(tape));
    tg_tensor *x = tg_input(tape, 1, 1, (float[]){ 0.5f });
    tg_tensor *loss = tg_mse(tape, tg_tanh(tape, x), tg_input(tape, 1, 1, NULL));
    ck_assert_int_eq(tg_backward(tape, loss), 0);
    ck_assert_ptr_null(tg_tape_error(tape));
}

/* After a reset the tape has no error and an LSTM step and its backward work again. */
void assert_lstm_usable_after_reset(tg_tape *tape)
{
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_tape_error(tape));
    tg_lstm_cell *cell = tg_lstm_cell_new(1, 2, 1, NULL);
    tg_tensor *h, *c, *zero = tg_input(tape, 2, 1, NULL);
    ck_assert_int_eq(tg_lstm_cell_forward(tape, cell, tg_input(tape, 1, 1, (float[]){ 1 }), zero, zero, &h, &c), 0);
    ck_assert_int_eq(tg_backward(tape, tg_mse(tape, h, zero)), 0);
    ck_assert_ptr_null(tg_tape_error(tape));
    tg_lstm_cell_free(cell);
    tg_tape_reset(tape);
}
