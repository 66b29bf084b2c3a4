/* error.c: writing a tg_error, the status report of every call that has no tape. */
#include <stdarg.h>
#include <stdio.h>

#include "error.h"

int tg_error_set(tg_error *err, const char *where, const char *fmt, ...)
{
    if (!err)
        return -1;
    const size_t size = sizeof err->message;
    int n = where ? snprintf(err->message, size, "%s: ", where) : 0;
    if (n >= 0 && (size_t)n < size) {
        va_list args;
        va_start(args, fmt);
        vsnprintf(err->message + n, size - (size_t)n, fmt, args);
        va_end(args);
    }
    return -1;
}

void tg_error_clear(tg_error *err)
{
    if (err)
        err->message[0] = '\0';
}
