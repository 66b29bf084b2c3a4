/* error.h: private to the library. The one helper that writes a tg_error: every call outside
 * a tape that can fail reports through it. */
#ifndef TAPEGRAD_ERROR_H
#define TAPEGRAD_ERROR_H

#include "tapegrad.h"

/* err->message = "where: " + the formatted text, the reason (just the reason when where is
 * NULL); nothing when err is NULL. The reason is kept whole: when both do not fit, where is
 * shortened in the middle ("/very/long/pa…/file.ckpt"), and only a reason too long on its own
 * is cut at its end; cuts fall between UTF-8 characters and are marked with "…". Returns -1,
 * so that a failing call can end with `return tg_error_set(...)`. */
int tg_error_set(tg_error *err, const char *where, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* err->message = "" (nothing when err is NULL): what a call that succeeds leaves. */
void tg_error_clear(tg_error *err);

#endif
