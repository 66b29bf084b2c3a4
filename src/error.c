/* error.c: writing a tg_error, the status report of every call that has no tape. A message
 * that does not fit keeps its reason whole: the place (often a long path) is shortened in the
 * middle instead, and only a reason too long on its own is cut at its end. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

#define ELLIPSIS "\xe2\x80\xa6"          /* U+2026, marks where text was left out */
#define ELLIPSIS_BYTES (sizeof ELLIPSIS - 1)
#define WHERE_KEPT 48                    /* bytes of a shortened place kept beside a long reason */

static bool continues_a_character(char c) { return ((unsigned char)c & 0xC0) == 0x80; }

/* A message under construction: len bytes written, at most size - 1. */
typedef struct message {
    char *text;
    size_t len, size;
} message;

static void put(message *m, const char *s, size_t n)
{
    memcpy(m->text + m->len, s, n);
    m->len += n;
    m->text[m->len] = '\0';
}

/* Puts s (len bytes) in at most room bytes: whole when it fits, else its first and last
 * characters around an ellipsis, cut between UTF-8 characters. */
static void put_shortened_middle(message *m, const char *s, size_t len, size_t room)
{
    if (len <= room) {
        put(m, s, len);
        return;
    }
    size_t kept = room > ELLIPSIS_BYTES ? room - ELLIPSIS_BYTES : 0;
    size_t head = kept / 2, tail_start = len - (kept - head);
    while (head > 0 && continues_a_character(s[head]))
        head--;
    while (tail_start < len && continues_a_character(s[tail_start]))
        tail_start++;
    put(m, s, head);
    if (room >= ELLIPSIS_BYTES)
        put(m, ELLIPSIS, ELLIPSIS_BYTES);
    put(m, s + tail_start, len - tail_start);
}

/* Puts s (len bytes; cut tells that it was already cut) in the rest of the message: whole
 * when it fits, else its start and an ellipsis, cut between UTF-8 characters. */
static void put_cut_end(message *m, const char *s, size_t len, bool cut)
{
    size_t room = m->size - 1 - m->len;
    if (len <= room && !cut) {
        put(m, s, len);
        return;
    }
    size_t kept = room > ELLIPSIS_BYTES ? room - ELLIPSIS_BYTES : 0;
    kept = kept < len ? kept : len;
    while (kept > 0 && kept < len && continues_a_character(s[kept]))
        kept--;
    put(m, s, kept);
    if (room - kept >= ELLIPSIS_BYTES)
        put(m, ELLIPSIS, ELLIPSIS_BYTES);
}

int tg_error_set(tg_error *err, const char *where, const char *fmt, ...)
{
    if (!err)
        return -1;
    char reason[sizeof err->message];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(reason, sizeof reason, fmt, args);
    va_end(args);
    if (n < 0)
        reason[0] = '\0';
    size_t reason_len = strlen(reason);
    bool reason_cut = n >= (int)sizeof reason;

    message m = { err->message, 0, sizeof err->message };
    m.text[0] = '\0';
    if (where) {
        size_t room = m.size - 1, where_len = strlen(where);
        size_t left = room > reason_len + 2 ? room - reason_len - 2 : 0;
        size_t where_room = reason_cut || left < WHERE_KEPT ? WHERE_KEPT : left;
        put_shortened_middle(&m, where, where_len, where_room);
        put(&m, ": ", 2);
    }
    put_cut_end(&m, reason, reason_len, reason_cut);
    return -1;
}

void tg_error_clear(tg_error *err)
{
    if (err)
        err->message[0] = '\0';
}
