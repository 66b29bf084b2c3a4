/* json.h: private to the library. A strict JSON reader for the safetensors header: it walks
 * the text without building a tree, calling the reader's own function for each member of an
 * object and each element of an array, so the caller checks its schema as it goes. Its
 * messages call the text "the header". */
#ifndef TAPEGRAD_JSON_H
#define TAPEGRAD_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TG_JSON_MAX_DEPTH 64   /* arrays and objects nested deeper are refused */

/* A walk over one JSON text. */
typedef struct tg_json {
    const char *start, *p, *end;   /* the text; p is the next byte to read */
    char *strings;                 /* where decoded strings go, NUL-terminated: as many bytes as the text */
    size_t strings_used;
    char problem[200];             /* the first problem found */
    bool failed;
} tg_json;

/* Called with the depth of the member or element; each must read exactly one value. */
typedef bool (*tg_json_member_fn)(tg_json *j, const char *key, size_t key_len, void *context, int depth);
typedef bool (*tg_json_element_fn)(tg_json *j, void *context, int depth);

/* Starts a walk over text[0..len-1], decoding strings into `strings` (len bytes, at least 1). */
void tg_json_start(tg_json *j, const char *text, size_t len, char *strings);

/* Keeps the first problem (printf-style) in j->problem; returns false. */
bool tg_json_fail(tg_json *j, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Skips whitespace; the next byte, or '\0' at the end of the text. */
char tg_json_next(tg_json *j);

/* Each reads one value of its kind, or fails with the problem set. Strings are UTF-8 with the
 * standard escapes (\u and four hex digits, surrogate pairs joined), decoded and NUL-terminated
 * in j->strings. A number follows the JSON grammar (no leading zeros); *whole says whether it
 * is an integer >= 0 without fraction or exponent that fits in 64 bits, held in *value. An
 * object or array nested deeper than TG_JSON_MAX_DEPTH is refused. */
bool tg_json_string(tg_json *j, const char **s, size_t *len);
bool tg_json_number(tg_json *j, bool *whole, uint64_t *value);
bool tg_json_object(tg_json *j, int depth, tg_json_member_fn member, void *context);
bool tg_json_array(tg_json *j, int depth, tg_json_element_fn element, void *context);
/* Any JSON value, checked and thrown away. */
bool tg_json_skip_value(tg_json *j, int depth);
/* After the header's object: true when nothing but whitespace is left, else fails. */
bool tg_json_finish(tg_json *j);

#endif
