/* utf8.c: checking that text is well-formed UTF-8, for the JSON reader, tensor names and chart
 * labels alike (see utf8.h for what well-formed means). */
#include <stdint.h>
#include <string.h>

#include "utf8.h"

size_t tg_utf8_length(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (s[0] < 0x80)
        return 1;
    size_t len;
    uint32_t code, least;
    if ((s[0] & 0xE0) == 0xC0) {
        len = 2, code = s[0] & 0x1Fu, least = 0x80;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3, code = s[0] & 0x0Fu, least = 0x800;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4, code = s[0] & 0x07u, least = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        code = (code << 6) | (s[i] & 0x3Fu);
    }
    if (code < least || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))
        return 0;
    return len;
}

size_t tg_utf8_valid_prefix(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), valid = 0;
    while (valid < n) {
        size_t len = tg_utf8_length(p + valid, n - valid);
        if (len == 0)
            break;
        valid += len;
    }
    return valid;
}

bool tg_is_utf8(const char *s) { return s[tg_utf8_valid_prefix(s)] == '\0'; }
