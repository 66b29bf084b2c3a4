/* json.c: a strict JSON reader (RFC 8259) for the safetensors header. Whitespace is space,
 * tab, CR and LF; strings are UTF-8 with the standard escapes; numbers follow the JSON
 * grammar. It builds no tree: src/safetensors.c passes a function for each object member and
 * array element, and values it does not need are parsed and skipped. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "utf8.h"

/* ---- UTF-8 -------------------------------------------------------------------------------- */

/* Writes code point `code` (at most U+10FFFF, not a surrogate) as UTF-8; returns the bytes. */
static size_t put_utf8(char *out, uint32_t code)
{
    if (code < 0x80) {
        out[0] = (char)code;
        return 1;
    }
    if (code < 0x800) {
        out[0] = (char)(0xC0 | (code >> 6));
        out[1] = (char)(0x80 | (code & 0x3F));
        return 2;
    }
    if (code < 0x10000) {
        out[0] = (char)(0xE0 | (code >> 12));
        out[1] = (char)(0x80 | ((code >> 6) & 0x3F));
        out[2] = (char)(0x80 | (code & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (code >> 18));
    out[1] = (char)(0x80 | ((code >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((code >> 6) & 0x3F));
    out[3] = (char)(0x80 | (code & 0x3F));
    return 4;
}

/* ---- the walk ------------------------------------------------------------------------------ */

void tg_json_start(tg_json *j, const char *text, size_t len, char *strings)
{
    *j = (tg_json){ .start = text, .p = text, .end = text + len, .strings = strings };
}

static bool syntax_error(tg_json *j, const char *what)
{
    if (!j->failed)
        snprintf(j->problem, sizeof j->problem, "the header is not valid JSON: %s at header byte %zu",
                 what, (size_t)(j->p - j->start));
    j->failed = true;
    return false;
}

bool tg_json_fail(tg_json *j, const char *fmt, ...)
{
    if (!j->failed) {
        va_list args;
        va_start(args, fmt);
        vsnprintf(j->problem, sizeof j->problem, fmt, args);
        va_end(args);
    }
    j->failed = true;
    return false;
}

static void skip_space(tg_json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool at(const tg_json *j, char c) { return j->p < j->end && *j->p == c; }

char tg_json_next(tg_json *j)
{
    skip_space(j);
    return j->p < j->end ? *j->p : '\0';
}

bool tg_json_finish(tg_json *j)
{
    skip_space(j);
    return j->p == j->end || syntax_error(j, "unexpected bytes after the header's object");
}

static bool expect(tg_json *j, char c, const char *what)
{
    skip_space(j);
    if (!at(j, c))
        return syntax_error(j, what);
    j->p++;
    return true;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The four hex digits at p (after "\u"). */
static bool parse_hex4(tg_json *j, uint32_t *code)
{
    *code = 0;
    for (int i = 0; i < 4; i++, j->p++) {
        int digit = j->p < j->end ? hex_value(*j->p) : -1;
        if (digit < 0)
            return syntax_error(j, "expected four hex digits after \\u");
        *code = *code << 4 | (uint32_t)digit;
    }
    return true;
}

/* After "\u": one escaped character, or a surrogate pair written as two escapes. */
static bool parse_unicode_escape(tg_json *j, char **out)
{
    uint32_t code;
    if (!parse_hex4(j, &code))
        return false;
    if (code >= 0xDC00 && code <= 0xDFFF)
        return syntax_error(j, "a low surrogate escape without a high one");
    if (code >= 0xD800 && code <= 0xDBFF) {
        if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
            return syntax_error(j, "a high surrogate escape without a low one");
        j->p += 2;
        uint32_t low;
        if (!parse_hex4(j, &low))
            return false;
        if (low < 0xDC00 || low > 0xDFFF)
            return syntax_error(j, "a high surrogate escape without a low one");
        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    }
    *out += put_utf8(*out, code);
    return true;
}

/* At a backslash inside a string: one escape, decoded to *out. */
static bool parse_escape(tg_json *j, char **out)
{
    j->p++;
    if (j->p >= j->end)
        return syntax_error(j, "a string without its closing quote");
    char c = *j->p++;
    const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
    const char *simple = c ? strchr(from, c) : NULL;
    if (simple) {
        *(*out)++ = to[simple - from];
        return true;
    }
    if (c == 'u')
        return parse_unicode_escape(j, out);
    j->p--;
    return syntax_error(j, "an unknown escape in a string");
}

/* A string, decoded and NUL-terminated in the header's string store. Decoding never makes
 * a string longer than its quoted text, so a store as long as the header always has room. */
bool tg_json_string(tg_json *j, const char **s, size_t *len)
{
    if (!expect(j, '"', "expected a string"))
        return false;
    char *begin = j->strings + j->strings_used, *out = begin;
    for (;;) {
        if (j->p >= j->end)
            return syntax_error(j, "a string without its closing quote");
        unsigned char c = (unsigned char)*j->p;
        if (c == '"')
            break;
        if (c < 0x20)
            return syntax_error(j, "a control character in a string");
        if (c == '\\') {
            if (!parse_escape(j, &out))
                return false;
            continue;
        }
        size_t n = tg_utf8_length((const unsigned char *)j->p, (size_t)(j->end - j->p));
        if (n == 0)
            return syntax_error(j, "a string that is not UTF-8");
        memcpy(out, j->p, n);
        out += n;
        j->p += n;
    }
    j->p++;
    *out = '\0';
    *s = begin;
    *len = (size_t)(out - begin);
    j->strings_used += *len + 1;
    return true;
}

static bool is_digit(const tg_json *j, const char *p) { return p < j->end && *p >= '0' && *p <= '9'; }

/* A number in the JSON grammar. *whole: it is an integer >= 0 without fraction or exponent
 * that fits in 64 bits, and *value holds it. */
bool tg_json_number(tg_json *j, bool *whole, uint64_t *value)
{
    skip_space(j);
    const char *p = j->p;
    bool negative = p < j->end && *p == '-', exact = true;
    p += negative;
    if (!is_digit(j, p))
        return syntax_error(j, "expected a value");
    uint64_t v = 0;
    if (*p == '0')
        p++;            /* no leading zeros: "01" is the number 0 followed by a stray '1' */
    else
        for (; is_digit(j, p); p++) {
            unsigned digit = (unsigned)(*p - '0');
            exact = exact && v <= (UINT64_MAX - digit) / 10;
            v = v * 10 + digit;
        }
    if (p < j->end && *p == '.') {
        exact = false;
        if (!is_digit(j, ++p)) {
            j->p = p;
            return syntax_error(j, "expected a digit after '.'");
        }
        while (is_digit(j, p))
            p++;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        exact = false;
        p++;
        p += p < j->end && (*p == '+' || *p == '-');
        if (!is_digit(j, p)) {
            j->p = p;
            return syntax_error(j, "expected a digit in an exponent");
        }
        while (is_digit(j, p))
            p++;
    }
    j->p = p;
    *whole = exact && !negative;
    *value = v;
    return true;
}

/* A whole number >= 0 for `what` of the tensor being parsed. */

static bool parse_literal(tg_json *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return syntax_error(j, "expected a value");
    j->p += n;
    return true;
}

/* Object and array walkers: they handle the brackets, commas and colons, and call a
 * function for each member (after its key and ':') or element. depth is the nesting level
 * of the members/elements. */
static bool depth_ok(tg_json *j, int depth)
{
    if (depth <= TG_JSON_MAX_DEPTH)
        return true;
    return tg_json_fail(j, "the header nests arrays and objects more than %d deep", TG_JSON_MAX_DEPTH);
}

/* What tells an object from an array, and what to call for each of its items. */
typedef struct list_walk {
    char open, close;
    const char *expected_open, *expected_next;   /* the syntax errors */
    tg_json_member_fn member;                    /* for an object */
    tg_json_element_fn element;                  /* for an array */
    void *context;
} list_walk;

/* One member (its key, ':' and the caller's function) or one element. */
static bool walk_item(tg_json *j, const list_walk *w, int depth)
{
    if (w->element)
        return w->element(j, w->context, depth);
    const char *key;
    size_t key_len;
    return tg_json_string(j, &key, &key_len) && expect(j, ':', "expected ':' after a key") &&
           w->member(j, key, key_len, w->context, depth);
}

/* The brackets and commas of an object or an array, and walk_item for each item. */
static bool walk_list(tg_json *j, int depth, const list_walk *w)
{
    if (!depth_ok(j, depth) || !expect(j, w->open, w->expected_open))
        return false;
    skip_space(j);
    if (at(j, w->close)) {
        j->p++;
        return true;
    }
    for (;;) {
        if (!walk_item(j, w, depth + 1))
            return false;
        skip_space(j);
        if (at(j, w->close)) {
            j->p++;
            return true;
        }
        if (!expect(j, ',', w->expected_next))
            return false;
    }
}

bool tg_json_object(tg_json *j, int depth, tg_json_member_fn member, void *context)
{
    const list_walk w = { '{', '}', "expected '{'", "expected ',' or '}' in an object", member, NULL,
                          context };
    return walk_list(j, depth, &w);
}

bool tg_json_array(tg_json *j, int depth, tg_json_element_fn element, void *context)
{
    const list_walk w = { '[', ']', "expected '['", "expected ',' or ']' in an array", NULL, element,
                          context };
    return walk_list(j, depth, &w);
}

static bool skip_member(tg_json *j, const char *key, size_t key_len, void *context, int depth)
{
    (void)key, (void)key_len, (void)context;
    return tg_json_skip_value(j, depth);
}

static bool skip_element(tg_json *j, void *context, int depth)
{
    (void)context;
    return tg_json_skip_value(j, depth);
}

/* Any JSON value, checked and thrown away. */
bool tg_json_skip_value(tg_json *j, int depth)
{
    skip_space(j);
    if (j->p >= j->end)
        return syntax_error(j, "expected a value");
    const char *s;
    size_t len;
    bool whole;
    uint64_t number;
    switch (*j->p) {
    case '{': return tg_json_object(j, depth, skip_member, NULL);
    case '[': return tg_json_array(j, depth, skip_element, NULL);
    case '"': return tg_json_string(j, &s, &len);
    case 't': return parse_literal(j, "true");
    case 'f': return parse_literal(j, "false");
    case 'n': return parse_literal(j, "null");
    default: return tg_json_number(j, &whole, &number);
    }
}
