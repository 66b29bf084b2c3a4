/* tape_errors.h: checks on a tape's sticky error, for the suites whose calls report on the
 * tape: the message it holds, and a tape that works again after a reset. */
#ifndef TAPEGRAD_TEST_TAPE_ERRORS_H
#define TAPEGRAD_TEST_TAPE_ERRORS_H

#include "tapegrad.h"

void assert_error(const tg_tape *tape, const char *want);   /* the tape's error is exactly want */
void assert_usable_after_reset(tg_tape *tape);
void assert_lstm_usable_after_reset(tg_tape *tape);   /* the same, through an LSTM step */

#endif
