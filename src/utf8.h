/* utf8.h: private to the library. Whether text is well-formed UTF-8 (RFC 3629): no stray
 * continuation bytes, no cut-off sequences, no overlong forms, no surrogates (U+D800 to
 * U+DFFF), nothing above U+10FFFF. The JSON reader, tensor names and chart labels all check
 * with these. */
#ifndef TAPEGRAD_UTF8_H
#define TAPEGRAD_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* The length (1 to 4 bytes) of the well-formed character at s, of which n bytes may be read;
 * 0 when there is none. */
size_t tg_utf8_length(const unsigned char *s, size_t n);

/* How many bytes at the start of s are well-formed characters: strlen(s) when all are, else
 * the offset of the first byte that does not begin one. */
size_t tg_utf8_valid_prefix(const char *s);

/* True when the whole of s is well-formed. */
bool tg_is_utf8(const char *s);

#endif
