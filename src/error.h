/* error.h: private to the library. The one helper that writes a tg_error: every call outside
 * a tape that can fail reports through it. */
#ifndef TAPEGRAD_ERROR_H
#define TAPEGRAD_ERROR_H

#include "tapegrad.h"

/* err->message = "where: " + the formatted text (just the text when where is NULL); nothing
 * when err is NULL. Returns -1, so that a failing call can end with `return tg_error_set(...)`. */
int tg_error_set(tg_error *err, const char *where, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* err->message = "" (nothing when err is NULL): what a call that succeeds leaves. */
void tg_error_clear(tg_error *err);

#endif
