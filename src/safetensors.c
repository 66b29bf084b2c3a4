/* safetensors.c: checkpoints in the safetensors format. Saving writes the JSON header and
 * the values (little-endian float32, byte by byte) to a temporary file and renames it into
 * place; loading parses the header with a small strict JSON parser, checks every tensor's
 * dtype, shape and byte range against the file and the model, and only then changes the
 * model. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "files.h"
#include "tape.h"

_Static_assert(sizeof(float) == 4 && sizeof(uint32_t) == 4, "float32 must be 4 bytes");

#define LENGTH_BYTES 8                 /* the u64 header length that opens a file */
#define HEADER_MAX_BYTES 100000000u    /* a longer header is refused (as the reference reader does) */
#define JSON_MAX_DEPTH 64              /* arrays and objects nested deeper are refused */
#define NAME_SHOWN 48                  /* bytes of a tensor name quoted in a message */
#define DIMS_SHOWN 8                   /* dimensions of a shape quoted in a message */
#define METADATA_KEY "__metadata__"

/* ---- errors ----------------------------------------------------------------------------- */

static const char *describe(int error) { return error ? strerror(error) : "unknown error"; }

/* A name from a file as a message can show it: at most NAME_SHOWN bytes (cut at a character
 * boundary, "..." added), control characters as '?'. out holds NAME_SHOWN + 4 bytes. */
static const char *shown_name(const char *name, size_t len, char *out)
{
    size_t n = len;
    if (n > NAME_SHOWN) {
        n = NAME_SHOWN;
        while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        out[i] = c < 0x20 || c == 0x7F ? '?' : (char)c;
    }
    strcpy(out + n, n < len ? "..." : "");
    return out;
}

/* ---- little-endian bytes, whatever the host's byte order -------------------------------- */

static void put_u64_le(unsigned char *out, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64_le(const unsigned char *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)in[i] << (8 * i);
    return v;
}

static void put_f32_le(unsigned char *out, float value)
{
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    for (int i = 0; i < 4; i++)
        out[i] = (unsigned char)(bits >> (8 * i));
}

static float get_f32_le(const unsigned char *in)
{
    uint32_t bits = 0;
    for (int i = 0; i < 4; i++)
        bits |= (uint32_t)in[i] << (8 * i);
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

/* ---- UTF-8 -------------------------------------------------------------------------------- */

/* The length of the well-formed UTF-8 character at s (n bytes available), or 0 when there is
 * none: no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_length(const unsigned char *s, size_t n)
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

static bool is_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n > 0) {
        size_t len = utf8_length(p, n);
        if (len == 0)
            return false;
        p += len;
        n -= len;
    }
    return true;
}

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

/* ---- dtypes ------------------------------------------------------------------------------- */

/* The safetensors dtypes and their sizes: a file may hold any of them (tensors the model
 * does not ask for are checked and skipped), but only F32 is loaded. */
typedef struct dtype { const char *name; unsigned bytes; } dtype;

static const dtype DTYPES[] = {
    { "F32", 4 }, { "F64", 8 }, { "F16", 2 }, { "BF16", 2 }, { "F8_E4M3", 1 }, { "F8_E5M2", 1 },
    { "I64", 8 }, { "I32", 4 }, { "I16", 2 }, { "I8", 1 },
    { "U64", 8 }, { "U32", 4 }, { "U16", 2 }, { "U8", 1 }, { "BOOL", 1 },
};
enum { DTYPE_F32 = 0, DTYPE_COUNT = sizeof DTYPES / sizeof DTYPES[0] };

/* ---- the parsed header -------------------------------------------------------------------- */

/* One tensor of the header. Its name and dims live in the header's stores. */
typedef struct entry {
    const char *name;
    size_t name_len;
    int dtype;                /* index into DTYPES */
    size_t first_dim, n_dims; /* shape: header.dims[first_dim .. first_dim + n_dims - 1] */
    uint64_t count;           /* elements: the product of the shape, UINT64_MAX if it overflows */
    uint64_t begin, end;      /* data_offsets, relative to the data section */
} entry;

typedef struct header {
    entry *entries;
    size_t n_entries, entries_capacity;
    uint64_t *dims;
    size_t n_dims, dims_capacity;
    char *strings;            /* decoded strings; never longer than the header text */
    size_t strings_used;
    bool has_metadata;
    const entry **by_name;    /* the entries sorted by name, for duplicates and look-ups */
} header;

static void header_free(header *h)
{
    free(h->entries);
    free(h->dims);
    free(h->strings);
    free(h->by_name);
}

/* Makes room for one more item of `size` bytes in *items (count used, *capacity held). */
static bool grow(void **items, size_t *capacity, size_t count, size_t size)
{
    if (count < *capacity)
        return true;
    size_t more = *capacity ? 2 * *capacity : 16;
    if (more > SIZE_MAX / size)
        return false;
    void *grown = realloc(*items, more * size);
    if (!grown)
        return false;
    *items = grown;
    *capacity = more;
    return true;
}

static uint64_t saturating_mul(uint64_t a, uint64_t b)
{
    if (a == 0 || b == 0)
        return 0;
    return a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

/* "[4, 4]": the shape of e, at most DIMS_SHOWN dimensions. */
static const char *file_shape(const header *h, const entry *e, char *out, size_t size)
{
    size_t used = (size_t)snprintf(out, size, "[");
    for (size_t i = 0; i < e->n_dims && used < size; i++) {
        if (i == DIMS_SHOWN) {
            used += (size_t)snprintf(out + used, size - used, ", ...");
            break;
        }
        used += (size_t)snprintf(out + used, size - used, "%s%llu", i ? ", " : "",
                                 (unsigned long long)h->dims[e->first_dim + i]);
    }
    if (used < size)
        snprintf(out + used, size - used, "]");
    return out;
}

/* ---- a strict JSON parser, directed by the header's schema --------------------------------
 * RFC 8259 JSON: whitespace is space, tab, CR and LF; strings are UTF-8 with the standard
 * escapes (\u and four hex digits, with surrogate pairs); numbers follow the JSON grammar
 * (no leading zeros). Shapes and offsets must be whole numbers >= 0 that fit in 64 bits.
 * Values the schema does not need (unknown fields of a tensor) are parsed and skipped,
 * nested at most JSON_MAX_DEPTH deep. */

typedef struct json {
    const char *start, *p, *end;   /* the header text; p is the next byte to read */
    header *h;                     /* where the tensors go */
    char problem[200];             /* the first problem found */
    bool failed;
} json;

static bool syntax_error(json *j, const char *what)
{
    if (!j->failed)
        snprintf(j->problem, sizeof j->problem, "the header is not valid JSON: %s at header byte %zu",
                 what, (size_t)(j->p - j->start));
    j->failed = true;
    return false;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static bool header_error(json *j, const char *fmt, ...)
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

static void skip_space(json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool at(const json *j, char c) { return j->p < j->end && *j->p == c; }

static bool expect(json *j, char c, const char *what)
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
static bool parse_hex4(json *j, uint32_t *code)
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
static bool parse_unicode_escape(json *j, char **out)
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
static bool parse_escape(json *j, char **out)
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
static bool parse_string(json *j, const char **s, size_t *len)
{
    if (!expect(j, '"', "expected a string"))
        return false;
    char *begin = j->h->strings + j->h->strings_used, *out = begin;
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
        size_t n = utf8_length((const unsigned char *)j->p, (size_t)(j->end - j->p));
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
    j->h->strings_used += *len + 1;
    return true;
}

static bool is_digit(const json *j, const char *p) { return p < j->end && *p >= '0' && *p <= '9'; }

/* A number in the JSON grammar. *whole: it is an integer >= 0 without fraction or exponent
 * that fits in 64 bits, and *value holds it. */
static bool parse_number(json *j, bool *whole, uint64_t *value)
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
static bool parse_count(json *j, const entry *e, const char *what, uint64_t *value)
{
    skip_space(j);
    const char *token = j->p;
    bool whole;
    if (!parse_number(j, &whole, value))
        return false;
    if (!whole) {
        char name[NAME_SHOWN + 4];
        return header_error(j, "tensor %s: %s holds %.*s, not a whole number from 0 to 2^64 - 1",
                            shown_name(e->name, e->name_len, name), what,
                            (int)(j->p - token > 24 ? 24 : j->p - token), token);
    }
    return true;
}

static bool parse_literal(json *j, const char *word)
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
typedef bool (*member_fn)(json *j, const char *key, size_t key_len, void *context, int depth);
typedef bool (*element_fn)(json *j, void *context, int depth);

static bool depth_ok(json *j, int depth)
{
    if (depth <= JSON_MAX_DEPTH)
        return true;
    return header_error(j, "the header nests arrays and objects more than %d deep", JSON_MAX_DEPTH);
}

static bool parse_object(json *j, int depth, member_fn member, void *context)
{
    if (!depth_ok(j, depth) || !expect(j, '{', "expected '{'"))
        return false;
    skip_space(j);
    if (at(j, '}')) {
        j->p++;
        return true;
    }
    for (;;) {
        const char *key;
        size_t key_len;
        if (!parse_string(j, &key, &key_len) || !expect(j, ':', "expected ':' after a key") ||
            !member(j, key, key_len, context, depth + 1))
            return false;
        skip_space(j);
        if (at(j, '}')) {
            j->p++;
            return true;
        }
        if (!expect(j, ',', "expected ',' or '}' in an object"))
            return false;
    }
}

static bool parse_array(json *j, int depth, element_fn element, void *context)
{
    if (!depth_ok(j, depth) || !expect(j, '[', "expected '['"))
        return false;
    skip_space(j);
    if (at(j, ']')) {
        j->p++;
        return true;
    }
    for (;;) {
        if (!element(j, context, depth + 1))
            return false;
        skip_space(j);
        if (at(j, ']')) {
            j->p++;
            return true;
        }
        if (!expect(j, ',', "expected ',' or ']' in an array"))
            return false;
    }
}

static bool skip_value(json *j, int depth);

static bool skip_member(json *j, const char *key, size_t key_len, void *context, int depth)
{
    (void)key, (void)key_len, (void)context;
    return skip_value(j, depth);
}

static bool skip_element(json *j, void *context, int depth)
{
    (void)context;
    return skip_value(j, depth);
}

/* Any JSON value, checked and thrown away. */
static bool skip_value(json *j, int depth)
{
    skip_space(j);
    if (j->p >= j->end)
        return syntax_error(j, "expected a value");
    const char *s;
    size_t len;
    bool whole;
    uint64_t number;
    switch (*j->p) {
    case '{': return parse_object(j, depth, skip_member, NULL);
    case '[': return parse_array(j, depth, skip_element, NULL);
    case '"': return parse_string(j, &s, &len);
    case 't': return parse_literal(j, "true");
    case 'f': return parse_literal(j, "false");
    case 'n': return parse_literal(j, "null");
    default: return parse_number(j, &whole, &number);
    }
}

static bool key_is(const char *key, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(key, word, len) == 0;
}

/* ---- the header's schema -------------------------------------------------------------------
 * { "__metadata__": { string: string, ... },                          (optional, ignored)
 *   NAME: { "dtype": "F32", "shape": [d, ...], "data_offsets": [begin, end] }, ... }     */

static bool metadata_member(json *j, const char *key, size_t key_len, void *context, int depth)
{
    (void)key, (void)key_len, (void)context, (void)depth;
    skip_space(j);
    if (!at(j, '"'))
        return header_error(j, "\"" METADATA_KEY "\" must map names to strings");
    const char *s;
    size_t len;
    return parse_string(j, &s, &len);
}

/* The fields of the tensor being parsed, and which of them were seen. */
typedef struct tensor_fields {
    entry *e;
    bool dtype, shape, offsets;
    int n_offsets;
} tensor_fields;

static bool shape_element(json *j, void *context, int depth)
{
    (void)depth;
    tensor_fields *f = context;
    header *h = j->h;
    uint64_t dim;
    if (!parse_count(j, f->e, "shape", &dim))
        return false;
    if (!grow((void **)&h->dims, &h->dims_capacity, h->n_dims, sizeof *h->dims))
        return header_error(j, "out of memory");
    h->dims[h->n_dims++] = dim;
    f->e->n_dims++;
    f->e->count = saturating_mul(f->e->count, dim);
    return true;
}

static bool offset_element(json *j, void *context, int depth)
{
    (void)depth;
    tensor_fields *f = context;
    char name[NAME_SHOWN + 4];
    if (f->n_offsets == 2)
        return header_error(j, "tensor %s: data_offsets must be [begin, end]",
                            shown_name(f->e->name, f->e->name_len, name));
    uint64_t *offset = f->n_offsets == 0 ? &f->e->begin : &f->e->end;
    f->n_offsets++;
    return parse_count(j, f->e, "data_offsets", offset);
}

static bool parse_dtype(json *j, entry *e)
{
    const char *s;
    size_t len;
    if (!parse_string(j, &s, &len))
        return false;
    for (int d = 0; d < DTYPE_COUNT; d++)
        if (key_is(s, len, DTYPES[d].name)) {
            e->dtype = d;
            return true;
        }
    char name[NAME_SHOWN + 4], type[NAME_SHOWN + 4];
    return header_error(j, "tensor %s has the unknown dtype \"%s\"",
                        shown_name(e->name, e->name_len, name), shown_name(s, len, type));
}

/* Marks a field of e as seen; false when it was seen before. */
static bool first_time(json *j, const entry *e, bool *seen, const char *field)
{
    char name[NAME_SHOWN + 4];
    if (*seen)
        return header_error(j, "tensor %s: \"%s\" appears twice",
                            shown_name(e->name, e->name_len, name), field);
    *seen = true;
    return true;
}

static bool parse_shape(json *j, tensor_fields *f, int depth)
{
    f->e->first_dim = j->h->n_dims;
    f->e->n_dims = 0;
    f->e->count = 1;
    return parse_array(j, depth, shape_element, f);
}

static bool parse_offsets(json *j, tensor_fields *f, int depth)
{
    if (!parse_array(j, depth, offset_element, f))
        return false;
    if (f->n_offsets == 2)
        return true;
    char name[NAME_SHOWN + 4];
    return header_error(j, "tensor %s: data_offsets must be [begin, end]",
                        shown_name(f->e->name, f->e->name_len, name));
}

static bool tensor_member(json *j, const char *key, size_t key_len, void *context, int depth)
{
    tensor_fields *f = context;
    if (key_is(key, key_len, "dtype"))
        return first_time(j, f->e, &f->dtype, "dtype") && parse_dtype(j, f->e);
    if (key_is(key, key_len, "shape"))
        return first_time(j, f->e, &f->shape, "shape") && parse_shape(j, f, depth);
    if (key_is(key, key_len, "data_offsets"))
        return first_time(j, f->e, &f->offsets, "data_offsets") && parse_offsets(j, f, depth);
    return skip_value(j, depth);   /* a field this reader does not use */
}

static bool parse_tensor(json *j, const char *name, size_t name_len, int depth)
{
    header *h = j->h;
    if (!grow((void **)&h->entries, &h->entries_capacity, h->n_entries, sizeof *h->entries))
        return header_error(j, "out of memory");
    entry *e = &h->entries[h->n_entries++];
    *e = (entry){ .name = name, .name_len = name_len, .count = 1 };
    tensor_fields f = { .e = e };
    skip_space(j);
    char shown[NAME_SHOWN + 4];
    if (!at(j, '{'))
        return header_error(j, "tensor %s must be an object with dtype, shape and data_offsets",
                            shown_name(name, name_len, shown));
    if (!parse_object(j, depth, tensor_member, &f))
        return false;
    const char *missing = !f.dtype ? "dtype" : !f.shape ? "shape" : !f.offsets ? "data_offsets" : NULL;
    if (missing)
        return header_error(j, "tensor %s has no %s", shown_name(name, name_len, shown), missing);
    return true;
}

static bool header_member(json *j, const char *key, size_t key_len, void *context, int depth)
{
    (void)context;
    if (!key_is(key, key_len, METADATA_KEY))
        return parse_tensor(j, key, key_len, depth);
    if (j->h->has_metadata)
        return header_error(j, "\"" METADATA_KEY "\" appears twice");
    j->h->has_metadata = true;
    skip_space(j);
    if (!at(j, '{'))
        return header_error(j, "\"" METADATA_KEY "\" must be an object");
    return parse_object(j, depth, metadata_member, NULL);
}

/* Parses text[0..len-1] into h; false with the problem in j->problem. */
static bool parse_header(json *j, header *h, const char *text, size_t len)
{
    *j = (json){ .start = text, .p = text, .end = text + len, .h = h };
    h->strings = malloc(len ? len : 1);
    if (!h->strings)
        return header_error(j, "out of memory");
    skip_space(j);
    if (!at(j, '{'))
        return j->p == j->end ? header_error(j, "the header is empty")
                              : header_error(j, "the header must be a JSON object");
    if (!parse_object(j, 1, header_member, NULL))
        return false;
    skip_space(j);
    if (j->p != j->end)
        return syntax_error(j, "unexpected bytes after the header's object");
    return true;
}

/* ---- checks across the tensors of a header ------------------------------------------------ */

static int compare_names(const void *a, const void *b)
{
    const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
    int c = memcmp(x->name, y->name, x->name_len < y->name_len ? x->name_len : y->name_len);
    return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

static int compare_begins(const void *a, const void *b)
{
    const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Every tensor's range lies inside the data section and holds exactly its shape's bytes. */
static bool check_ranges(json *j, const header *h, uint64_t data_size)
{
    char name[NAME_SHOWN + 4], shape[192];
    for (size_t i = 0; i < h->n_entries; i++) {
        const entry *e = &h->entries[i];
        const char *who = shown_name(e->name, e->name_len, name);
        if (e->begin > e->end || e->end > data_size)
            return header_error(j, "tensor %s: data_offsets [%llu, %llu] are not a range inside the "
                                "data section (%llu bytes)", who, (unsigned long long)e->begin,
                                (unsigned long long)e->end, (unsigned long long)data_size);
        uint64_t bytes = saturating_mul(e->count, DTYPES[e->dtype].bytes);
        if (e->end - e->begin != bytes)
            return header_error(j, "tensor %s: data_offsets [%llu, %llu] hold %llu bytes, but %s %s "
                                "needs %llu", who, (unsigned long long)e->begin,
                                (unsigned long long)e->end, (unsigned long long)(e->end - e->begin),
                                DTYPES[e->dtype].name, file_shape(h, e, shape, sizeof shape),
                                (unsigned long long)bytes);
    }
    return true;
}

/* No two tensors share bytes of the data section (empty tensors share none). Sorted by
 * where they begin, each range must begin at or after the end of the one before it. */
static bool check_overlaps(json *j, const header *h)
{
    const entry **sorted = malloc((h->n_entries ? h->n_entries : 1) * sizeof *sorted);
    if (!sorted)
        return header_error(j, "out of memory");
    for (size_t i = 0; i < h->n_entries; i++)
        sorted[i] = &h->entries[i];
    qsort(sorted, h->n_entries, sizeof *sorted, compare_begins);
    const entry *prev = NULL;
    bool ok = true;
    for (size_t i = 0; i < h->n_entries && ok; i++) {
        const entry *e = sorted[i];
        if (e->begin == e->end)
            continue;
        if (prev && e->begin < prev->end) {
            char a[NAME_SHOWN + 4], b[NAME_SHOWN + 4];
            ok = header_error(j, "tensors %s and %s overlap in the data section ([%llu, %llu] and "
                              "[%llu, %llu])", shown_name(prev->name, prev->name_len, a),
                              shown_name(e->name, e->name_len, b), (unsigned long long)prev->begin,
                              (unsigned long long)prev->end, (unsigned long long)e->begin,
                              (unsigned long long)e->end);
        }
        prev = e;
    }
    free(sorted);
    return ok;
}

/* No name appears twice; leaves h->by_name sorted for find_entry. */
static bool check_names(json *j, header *h)
{
    h->by_name = malloc((h->n_entries ? h->n_entries : 1) * sizeof *h->by_name);
    if (!h->by_name)
        return header_error(j, "out of memory");
    for (size_t i = 0; i < h->n_entries; i++)
        h->by_name[i] = &h->entries[i];
    qsort(h->by_name, h->n_entries, sizeof *h->by_name, compare_names);
    for (size_t i = 1; i < h->n_entries; i++)
        if (compare_names(&h->by_name[i - 1], &h->by_name[i]) == 0) {
            char name[NAME_SHOWN + 4];
            const entry *e = h->by_name[i];
            return header_error(j, "tensor %s appears twice in the header",
                                shown_name(e->name, e->name_len, name));
        }
    return true;
}

static const entry *find_entry(const header *h, const char *name)
{
    entry key = { .name = name, .name_len = strlen(name) };
    const entry *key_ptr = &key;
    const entry **found = h->n_entries ? bsearch(&key_ptr, h->by_name, h->n_entries,
                                                 sizeof *h->by_name, compare_names) : NULL;
    return found ? *found : NULL;
}

/* ---- what the model asks of a file ------------------------------------------------------ */

typedef enum shape_rule {
    SHAPE_2D,              /* [rows, cols] */
    SHAPE_1D,              /* [rows] (a PyTorch bias); cols is 1 */
    SHAPE_2D_OR_COLUMN,    /* [rows, cols], or [rows] when cols is 1 */
} shape_rule;

/* A tensor the model needs: the values land in `values` once the whole file checked out. */
typedef struct wanted {
    const char *name;
    int rows, cols;
    shape_rule rule;
    float *values;         /* rows * cols */
    const entry *source;   /* set by the checks */
} wanted;

static bool shape_fits(const header *h, const entry *e, const wanted *w)
{
    const uint64_t *d = h->dims + e->first_dim;
    bool as_2d = e->n_dims == 2 && d[0] == (uint64_t)w->rows && d[1] == (uint64_t)w->cols;
    bool as_1d = e->n_dims == 1 && d[0] == (uint64_t)w->rows && w->cols == 1;
    return w->rule == SHAPE_2D ? as_2d : w->rule == SHAPE_1D ? as_1d : as_2d || as_1d;
}

/* Each wanted tensor is in the header as F32 with the model's shape. */
static bool check_wanted(json *j, const header *h, wanted *wants, int n, const char *who)
{
    for (int i = 0; i < n; i++) {
        wanted *w = &wants[i];
        const entry *e = find_entry(h, w->name);
        char name[NAME_SHOWN + 4], shape[192];
        shown_name(w->name, strlen(w->name), name);
        if (!e)
            return header_error(j, "no tensor named %s", name);
        if (e->dtype != DTYPE_F32)
            return header_error(j, "tensor %s has dtype %s; only F32 can be loaded", name,
                                DTYPES[e->dtype].name);
        if (!shape_fits(h, e, w)) {
            char want_shape[32];
            if (w->rule == SHAPE_1D)
                snprintf(want_shape, sizeof want_shape, "[%d]", w->rows);
            else
                snprintf(want_shape, sizeof want_shape, "[%d, %d]", w->rows, w->cols);
            return header_error(j, "tensor %s has shape %s, %s needs %s", name,
                                file_shape(h, e, shape, sizeof shape), who, want_shape);
        }
        w->source = e;
    }
    return true;
}

/* ---- reading the file ---------------------------------------------------------------------- */

/* n bytes at offset (at most the file size found by file_size) into out. */
static int read_at(FILE *file, const char *path, uint64_t offset, void *out, size_t n, tg_error *err)
{
    errno = 0;
    if (fseek(file, (long)offset, SEEK_SET) != 0)
        return tg_error_set(err, path, "cannot read: %s", describe(errno));
    if (n > 0 && fread(out, 1, n, file) != n) {
        if (ferror(file))
            return tg_error_set(err, path, "cannot read: %s", describe(errno));
        return tg_error_set(err, path, "the file ended while being read (did it change?)");
    }
    return 0;
}

static int file_size(FILE *file, const char *path, uint64_t *size, tg_error *err)
{
    errno = 0;
    long end = fseek(file, 0, SEEK_END) == 0 ? ftell(file) : -1;
    if (end < 0)
        return tg_error_set(err, path, "cannot find the file's size: %s", describe(errno));
    *size = (uint64_t)end;
    return 0;
}

/* Reads the header: its length, then its text, checked against the file's size before any
 * memory is allocated for it. */
static int read_header_text(FILE *file, const char *path, uint64_t size, char **text,
                            uint64_t *length, tg_error *err)
{
    if (size < LENGTH_BYTES)
        return tg_error_set(err, path, "%llu bytes is too short for a safetensors file (it starts with "
                    "an 8-byte header length)", (unsigned long long)size);
    unsigned char prefix[LENGTH_BYTES];
    if (read_at(file, path, 0, prefix, sizeof prefix, err) != 0)
        return -1;
    *length = get_u64_le(prefix);
    if (*length > size - LENGTH_BYTES)
        return tg_error_set(err, path, "the header length %llu is larger than the rest of the file (%llu "
                    "bytes)", (unsigned long long)*length, (unsigned long long)(size - LENGTH_BYTES));
    if (*length > HEADER_MAX_BYTES)
        return tg_error_set(err, path, "the header length %llu is over the limit of %u bytes",
                    (unsigned long long)*length, HEADER_MAX_BYTES);
    *text = malloc(*length ? (size_t)*length : 1);
    if (!*text)
        return tg_error_set(err, path, "out of memory");
    return read_at(file, path, LENGTH_BYTES, *text, (size_t)*length, err);
}

/* The values of every wanted tensor, decoded from little-endian float32 in place. */
static int read_values(FILE *file, const char *path, uint64_t data_start, wanted *wants, int n,
                       tg_error *err)
{
    for (int i = 0; i < n; i++) {
        size_t count = (size_t)wants[i].rows * (size_t)wants[i].cols;
        unsigned char *bytes = (unsigned char *)wants[i].values;
        if (read_at(file, path, data_start + wants[i].source->begin, bytes, count * 4, err) != 0)
            return -1;
        for (size_t k = 0; k < count; k++)
            wants[i].values[k] = get_f32_le(bytes + 4 * k);
    }
    return 0;
}

static int check_and_read(FILE *file, const char *path, const char *who, wanted *wants, int n,
                          tg_error *err)
{
    uint64_t size = 0, length = 0;
    char *text = NULL;
    header h = { 0 };
    json j;
    int rc = file_size(file, path, &size, err);
    if (rc == 0)
        rc = read_header_text(file, path, size, &text, &length, err);
    if (rc == 0) {
        uint64_t data_size = size - LENGTH_BYTES - length;
        bool ok = parse_header(&j, &h, text, (size_t)length) && check_names(&j, &h) &&
                  check_ranges(&j, &h, data_size) && check_overlaps(&j, &h) &&
                  check_wanted(&j, &h, wants, n, who);
        rc = ok ? read_values(file, path, LENGTH_BYTES + length, wants, n, err)
                : tg_error_set(err, path, "%s", j.problem);
    }
    header_free(&h);
    free(text);
    return rc;
}

/* Fills wants[i].values from the file at path when the whole file is right; who names the
 * model in messages ("the cell"). Changes nothing else. */
static int load_wanted(const char *path, const char *who, wanted *wants, int n, tg_error *err)
{
    errno = 0;
    FILE *file = fopen(path, "rb");
    if (!file)
        return tg_error_set(err, path, "cannot open: %s", describe(errno));
    int rc = check_and_read(file, path, who, wants, n, err);
    fclose(file);
    return rc;
}

/* One buffer for the values of all wants (their rows and cols set); NULL if out of memory. */
static float *give_room(wanted *wants, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t count = (size_t)wants[i].rows * (size_t)wants[i].cols;
        if (count > SIZE_MAX / sizeof(float) - total)
            return NULL;
        total += count;
    }
    float *room = malloc(total ? total * sizeof(float) : 1);
    for (size_t used = 0; room && n > 0; n--, wants++) {
        wants->values = room + used;
        used += (size_t)wants->rows * (size_t)wants->cols;
    }
    return room;
}

/* ---- writing a file ------------------------------------------------------------------------ */

/* A tensor to write: shape [rows] (dims 1) or [rows, cols] (dims 2); data NULL writes zeros. */
typedef struct saved {
    const char *name;
    int rows, cols, dims;
    const float *data;
} saved;

/* A growing piece of text; `failed` once memory ran out. */
typedef struct growing_text {
    char *s;
    size_t len, capacity;
    bool failed;
} growing_text;

static void append(growing_text *t, const char *s, size_t n)
{
    if (t->failed)
        return;
    if (t->len + n + 1 > t->capacity) {
        size_t capacity = t->capacity ? t->capacity : 256;
        while (capacity < t->len + n + 1)
            capacity *= 2;
        char *grown = realloc(t->s, capacity);
        if (!grown) {
            t->failed = true;
            return;
        }
        t->s = grown;
        t->capacity = capacity;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static void append_text(growing_text *t, const char *s) { append(t, s, strlen(s)); }

static void append_number(growing_text *t, unsigned long long v)
{
    char digits[24];
    snprintf(digits, sizeof digits, "%llu", v);
    append_text(t, digits);
}

/* s as a JSON string: quotes, backslashes and control characters escaped. */
static void append_json_string(growing_text *t, const char *s)
{
    append_text(t, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char escaped[8];
        if (c == '"' || c == '\\') {
            escaped[0] = '\\', escaped[1] = (char)c, escaped[2] = '\0';
            append_text(t, escaped);
        } else if (c < 0x20) {
            snprintf(escaped, sizeof escaped, "\\u%04x", c);
            append_text(t, escaped);
        } else {
            append(t, s, 1);
        }
    }
    append_text(t, "\"");
}

/* The JSON header for tensors[0..n-1] stored one after another, padded with spaces to a
 * multiple of 8 bytes so that the data section starts aligned. */
static void build_header(growing_text *t, const saved *tensors, int n)
{
    append_text(t, "{\"" METADATA_KEY "\":{\"format\":\"pt\"}");
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const saved *s = &tensors[i];
        uint64_t bytes = (uint64_t)s->rows * (uint64_t)s->cols * 4;
        append_text(t, ",");
        append_json_string(t, s->name);
        append_text(t, ":{\"dtype\":\"F32\",\"shape\":[");
        append_number(t, (unsigned long long)s->rows);
        if (s->dims == 2) {
            append_text(t, ",");
            append_number(t, (unsigned long long)s->cols);
        }
        append_text(t, "],\"data_offsets\":[");
        append_number(t, (unsigned long long)offset);
        append_text(t, ",");
        append_number(t, (unsigned long long)(offset + bytes));
        append_text(t, "]}");
        offset += bytes;
    }
    append_text(t, "}");
    while (!t->failed && t->len % 8 != 0)
        append_text(t, " ");
}

static bool write_all(FILE *file, const void *bytes, size_t n)
{
    return n == 0 || fwrite(bytes, 1, n, file) == n;
}

static bool write_values(FILE *file, const float *data, size_t count)
{
    unsigned char chunk[4096];
    const size_t per_chunk = sizeof chunk / 4;
    for (size_t done = 0; done < count;) {
        size_t n = count - done < per_chunk ? count - done : per_chunk;
        for (size_t i = 0; i < n; i++)
            put_f32_le(chunk + 4 * i, data ? data[done + i] : 0.0f);
        if (!write_all(file, chunk, 4 * n))
            return false;
        done += n;
    }
    return true;
}

static bool write_checkpoint(FILE *file, const growing_text *header_text, const saved *tensors, int n)
{
    unsigned char prefix[LENGTH_BYTES];
    put_u64_le(prefix, header_text->len);
    if (!write_all(file, prefix, sizeof prefix) || !write_all(file, header_text->s, header_text->len))
        return false;
    for (int i = 0; i < n; i++)
        if (!write_values(file, tensors[i].data, (size_t)tensors[i].rows * (size_t)tensors[i].cols))
            return false;
    return true;
}

typedef struct checkpoint_file {
    const growing_text *header_text;
    const saved *tensors;
    int n;
} checkpoint_file;

static bool write_checkpoint_file(FILE *file, void *ctx)
{
    checkpoint_file *c = ctx;
    return write_checkpoint(file, c->header_text, c->tensors, c->n);
}

/* Writes the checkpoint in one piece (src/files.c): path is replaced only when the whole
 * new file is written. */
static int save_tensors(const char *path, const saved *tensors, int n, tg_error *err)
{
    growing_text header_text = { 0 };
    build_header(&header_text, tensors, n);
    if (header_text.failed) {
        free(header_text.s);
        return tg_error_set(err, path, "out of memory");
    }
    checkpoint_file c = { &header_text, tensors, n };
    int rc = tg_write_file_atomically(path, write_checkpoint_file, &c, err);
    free(header_text.s);
    if (rc == 0)
        tg_error_clear(err);
    return rc;
}

/* ---- named tensors ------------------------------------------------------------------------- */

/* 0 when tensors[0..n-1] can be saved or loaded: names set, UTF-8, not the metadata key,
 * each given once; tensors with data and a valid size. */
static int check_named(const char *path, const tg_named *tensors, int n, tg_error *err)
{
    if (n < 0)
        return tg_error_set(err, path, "n is negative (%d)", n);
    if (n > 0 && !tensors)
        return tg_error_set(err, path, "tensors is NULL with n %d", n);
    for (int i = 0; i < n; i++) {
        const char *name = tensors[i].name;
        const tg_tensor *t = tensors[i].tensor;
        if (!name || !*name)
            return tg_error_set(err, path, "tensors[%d] has no name", i);
        if (!is_utf8(name))
            return tg_error_set(err, path, "tensors[%d]: the name is not UTF-8", i);
        if (strcmp(name, METADATA_KEY) == 0)
            return tg_error_set(err, path, "tensors[%d]: \"" METADATA_KEY "\" is not a tensor name", i);
        if (!t || !t->data)
            return tg_error_set(err, path, "tensors[%d] (%.*s) has no tensor data", i, NAME_SHOWN, name);
        if (!tg_size_ok(t->rows, t->cols))
            return tg_error_set(err, path, "tensors[%d] (%.*s) has a bad size %dx%d", i, NAME_SHOWN, name,
                        t->rows, t->cols);
        for (int k = 0; k < i; k++)
            if (strcmp(tensors[k].name, name) == 0)
                return tg_error_set(err, path, "tensors[%d] and tensors[%d] are both named %.*s", k, i,
                            NAME_SHOWN, name);
    }
    return 0;
}

int tg_save(const char *path, const tg_named *tensors, int n, tg_error *err)
{
    if (!path)
        return tg_error_set(err, "tg_save", "path is NULL");
    if (check_named(path, tensors, n, err) != 0)
        return -1;
    saved *list = malloc((n > 0 ? (size_t)n : 1) * sizeof *list);
    if (!list)
        return tg_error_set(err, path, "out of memory");
    for (int i = 0; i < n; i++) {
        const tg_tensor *t = tensors[i].tensor;
        list[i] = (saved){ tensors[i].name, t->rows, t->cols, 2, t->data };
    }
    int rc = save_tensors(path, list, n, err);
    free(list);
    return rc;
}

int tg_load(const char *path, const tg_named *tensors, int n, tg_error *err)
{
    if (!path)
        return tg_error_set(err, "tg_load", "path is NULL");
    if (check_named(path, tensors, n, err) != 0)
        return -1;
    wanted *wants = malloc((n > 0 ? (size_t)n : 1) * sizeof *wants);
    if (!wants)
        return tg_error_set(err, path, "out of memory");
    for (int i = 0; i < n; i++) {
        const tg_tensor *t = tensors[i].tensor;
        wants[i] = (wanted){ tensors[i].name, t->rows, t->cols, SHAPE_2D_OR_COLUMN, NULL, NULL };
    }
    float *room = give_room(wants, n);
    int rc = room ? load_wanted(path, "the model", wants, n, err) : tg_error_set(err, path, "out of memory");
    for (int i = 0; rc == 0 && i < n; i++)
        memcpy(tensors[i].tensor->data, wants[i].values,
               (size_t)wants[i].rows * (size_t)wants[i].cols * sizeof(float));
    free(room);
    free(wants);
    if (rc == 0)
        tg_error_clear(err);
    return rc;
}

/* ---- cells ---------------------------------------------------------------------------------
 * A cell with `gates` blocks of H rows has weight_ih (gates H x I), weight_hh (gates H x H),
 * bias_ih and bias_hh ([gates H]). The RNN (1 block) and the LSTM (4) keep one bias b: saved
 * as bias_ih with bias_hh = 0, loaded as bias_ih + bias_hh. The GRU (3) keeps both. */

typedef struct cell_params {
    int input_size, hidden_size, gates;
    tg_tensor *W_x, *W_h;
    tg_tensor *b_x, *b_h;   /* b_h is NULL for the cells with one bias, b_x */
} cell_params;

static int check_param(const char *path, const char *what, const tg_tensor *t, long long rows,
                       long long cols, tg_error *err)
{
    if (!t || !t->data)
        return tg_error_set(err, path, "the cell's %s is NULL", what);
    if (t->rows != rows || t->cols != cols)
        return tg_error_set(err, path, "the cell's %s is %dx%d, but its sizes make it %lldx%lld", what,
                    t->rows, t->cols, rows, cols);
    return 0;
}

/* 0 when every parameter is there with the shape the cell's sizes give it. */
static int check_cell(const char *path, const cell_params *c, tg_error *err)
{
    if (c->input_size < 1 || c->hidden_size < 1)
        return tg_error_set(err, path, "the cell has a bad size (input %d, hidden %d)", c->input_size,
                    c->hidden_size);
    const long long rows = (long long)c->gates * c->hidden_size;
    if (check_param(path, "W_x", c->W_x, rows, c->input_size, err) != 0 ||
        check_param(path, "W_h", c->W_h, rows, c->hidden_size, err) != 0 ||
        check_param(path, c->b_h ? "b_x" : "b", c->b_x, rows, 1, err) != 0)
        return -1;
    return c->b_h ? check_param(path, "b_h", c->b_h, rows, 1, err) : 0;
}

static int save_cell(const char *fn, const char *path, const cell_params *c, tg_error *err)
{
    if (!path)
        return tg_error_set(err, fn, "path is NULL");
    if (check_cell(path, c, err) != 0)
        return -1;
    const int rows = c->gates * c->hidden_size;
    const saved tensors[4] = {
        { "weight_ih", rows, c->input_size, 2, c->W_x->data },
        { "weight_hh", rows, c->hidden_size, 2, c->W_h->data },
        { "bias_ih", rows, 1, 1, c->b_x->data },
        { "bias_hh", rows, 1, 1, c->b_h ? c->b_h->data : NULL },
    };
    return save_tensors(path, tensors, 4, err);
}

/* Copies the checked values into the cell. With one bias, b = bias_ih + bias_hh, where a
 * zero bias_hh leaves bias_ih as it is (adding +0 would turn a -0 into +0), so a saved
 * cell loads back bit for bit. */
static void commit_cell(const cell_params *c, const wanted *w)
{
    const size_t rows = (size_t)c->gates * (size_t)c->hidden_size;
    memcpy(c->W_x->data, w[0].values, rows * (size_t)c->input_size * sizeof(float));
    memcpy(c->W_h->data, w[1].values, rows * (size_t)c->hidden_size * sizeof(float));
    if (c->b_h) {
        memcpy(c->b_x->data, w[2].values, rows * sizeof(float));
        memcpy(c->b_h->data, w[3].values, rows * sizeof(float));
        return;
    }
    for (size_t i = 0; i < rows; i++) {
        float bias_ih = w[2].values[i], bias_hh = w[3].values[i];
        c->b_x->data[i] = bias_hh == 0.0f ? bias_ih : bias_ih + bias_hh;
    }
}

static int load_cell(const char *fn, const char *path, const cell_params *c, tg_error *err)
{
    if (!path)
        return tg_error_set(err, fn, "path is NULL");
    if (check_cell(path, c, err) != 0)
        return -1;
    const int rows = c->gates * c->hidden_size;
    wanted wants[4] = {
        { "weight_ih", rows, c->input_size, SHAPE_2D, NULL, NULL },
        { "weight_hh", rows, c->hidden_size, SHAPE_2D, NULL, NULL },
        { "bias_ih", rows, 1, SHAPE_1D, NULL, NULL },
        { "bias_hh", rows, 1, SHAPE_1D, NULL, NULL },
    };
    float *room = give_room(wants, 4);
    if (!room)
        return tg_error_set(err, path, "out of memory");
    int rc = load_wanted(path, "the cell", wants, 4, err);
    if (rc == 0) {
        commit_cell(c, wants);
        tg_error_clear(err);
    }
    free(room);
    return rc;
}

static cell_params rnn_params(const tg_rnn_cell *cell)
{
    return (cell_params){ cell->input_size, cell->hidden_size, 1, cell->W_x, cell->W_h, cell->b, NULL };
}

static cell_params lstm_params(const tg_lstm_cell *cell)
{
    return (cell_params){ cell->input_size, cell->hidden_size, 4, cell->W_x, cell->W_h, cell->b, NULL };
}

static cell_params gru_params(const tg_gru_cell *cell)
{
    return (cell_params){ cell->input_size, cell->hidden_size, 3, cell->W_x, cell->W_h,
                          cell->b_x, cell->b_h };
}

int tg_rnn_cell_save(const tg_rnn_cell *cell, const char *path, tg_error *err)
{
    if (!cell)
        return tg_error_set(err, path ? path : "tg_rnn_cell_save", "cell is NULL");
    cell_params c = rnn_params(cell);
    return save_cell("tg_rnn_cell_save", path, &c, err);
}

int tg_rnn_cell_load(tg_rnn_cell *cell, const char *path, tg_error *err)
{
    if (!cell)
        return tg_error_set(err, path ? path : "tg_rnn_cell_load", "cell is NULL");
    cell_params c = rnn_params(cell);
    return load_cell("tg_rnn_cell_load", path, &c, err);
}

int tg_lstm_cell_save(const tg_lstm_cell *cell, const char *path, tg_error *err)
{
    if (!cell)
        return tg_error_set(err, path ? path : "tg_lstm_cell_save", "cell is NULL");
    cell_params c = lstm_params(cell);
    return save_cell("tg_lstm_cell_save", path, &c, err);
}

int tg_lstm_cell_load(tg_lstm_cell *cell, const char *path, tg_error *err)
{
    if (!cell)
        return tg_error_set(err, path ? path : "tg_lstm_cell_load", "cell is NULL");
    cell_params c = lstm_params(cell);
    return load_cell("tg_lstm_cell_load", path, &c, err);
}

int tg_gru_cell_save(const tg_gru_cell *cell, const char *path, tg_error *err)
{
    if (!cell)
        return tg_error_set(err, path ? path : "tg_gru_cell_save", "cell is NULL");
    cell_params c = gru_params(cell);
    return save_cell("tg_gru_cell_save", path, &c, err);
}

int tg_gru_cell_load(tg_gru_cell *cell, const char *path, tg_error *err)
{
    if (!cell)
        return tg_error_set(err, path ? path : "tg_gru_cell_load", "cell is NULL");
    cell_params c = gru_params(cell);
    return load_cell("tg_gru_cell_load", path, &c, err);
}

/* The built-in kind of a tg_cell ("rnn", "lstm" or "gru"), or -1 with the message set. */
static int cell_kind(const tg_cell *cell, const char *fn, const char *path, tg_error *err)
{
    const char *where = path ? path : fn;
    if (!cell)
        return tg_error_set(err, where, "cell is NULL");
    static const char *const KINDS[] = { "rnn", "lstm", "gru" };
    for (int k = 0; k < 3; k++)
        if (cell->name && strcmp(cell->name, KINDS[k]) == 0)
            return cell->impl ? k : tg_error_set(err, where, "the %s cell has no impl", KINDS[k]);
    return tg_error_set(err, where, "cell '%.*s' is not an rnn, lstm or gru cell; save its params with "
                "tg_save", NAME_SHOWN, cell->name ? cell->name : "(unnamed)");
}

int tg_cell_save(const tg_cell *cell, const char *path, tg_error *err)
{
    switch (cell_kind(cell, "tg_cell_save", path, err)) {
    case 0: return tg_rnn_cell_save(cell->impl, path, err);
    case 1: return tg_lstm_cell_save(cell->impl, path, err);
    case 2: return tg_gru_cell_save(cell->impl, path, err);
    default: return -1;
    }
}

int tg_cell_load(tg_cell *cell, const char *path, tg_error *err)
{
    switch (cell_kind(cell, "tg_cell_load", path, err)) {
    case 0: return tg_rnn_cell_load(cell->impl, path, err);
    case 1: return tg_lstm_cell_load(cell->impl, path, err);
    case 2: return tg_gru_cell_load(cell->impl, path, err);
    default: return -1;
    }
}
