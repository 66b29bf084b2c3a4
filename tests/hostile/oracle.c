/* oracle.c: the independent reader of tests/hostile (see oracle.h). A recursive-descent JSON
 * parser over the header, then the documented checks one by one, each as plainly as it can
 * be written. */
#include "oracle.h"

#include <stdlib.h>
#include <string.h>

#define MAX_NESTING 64

/* ---- the JSON text ------------------------------------------------------------------------ */

typedef struct text {
    const unsigned char *p, *end;
    char *out;          /* decoded strings go here, one after another */
} text;

static void skip_ws(text *t)
{
    while (t->p < t->end && (*t->p == ' ' || *t->p == '\t' || *t->p == '\n' || *t->p == '\r'))
        t->p++;
}

static bool take(text *t, char c)
{
    skip_ws(t);
    if (t->p >= t->end || *t->p != (unsigned char)c)
        return false;
    t->p++;
    return true;
}

static bool peek(text *t, char c)
{
    skip_ws(t);
    return t->p < t->end && *t->p == (unsigned char)c;
}

/* One UTF-8 character at t->p, copied to *out; false when it is not well formed. */
static bool utf8_char(text *t, char **out)
{
    unsigned char c = t->p[0];
    int extra = c < 0x80 ? 0 : c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2
              : c >= 0xF0 && c <= 0xF4 ? 3 : -1;
    if (extra < 0 || t->end - t->p <= extra)
        return false;
    unsigned long code = extra == 0 ? c : extra == 1 ? c & 0x1Fu : extra == 2 ? c & 0x0Fu : c & 0x07u;
    for (int i = 1; i <= extra; i++) {
        if ((t->p[i] & 0xC0) != 0x80)
            return false;
        code = code << 6 | (t->p[i] & 0x3Fu);
    }
    unsigned long least[] = { 0, 0x80, 0x800, 0x10000 };
    if (code < least[extra] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))
        return false;
    memcpy(*out, t->p, (size_t)extra + 1);
    *out += extra + 1;
    t->p += extra + 1;
    return true;
}

static bool hex4(text *t, unsigned long *code)
{
    *code = 0;
    for (int i = 0; i < 4; i++, t->p++) {
        if (t->p >= t->end)
            return false;
        unsigned char c = *t->p;
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (v < 0)
            return false;
        *code = *code * 16 + (unsigned long)v;
    }
    return true;
}

static void encode(unsigned long code, char **out)
{
    unsigned char *o = (unsigned char *)*out;
    int n = code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
    if (n == 1) {
        o[0] = (unsigned char)code;
    } else {
        for (int i = n - 1; i > 0; i--, code >>= 6)
            o[i] = (unsigned char)(0x80 | (code & 0x3F));
        o[0] = (unsigned char)((n == 2 ? 0xC0 : n == 3 ? 0xE0 : 0xF0) | code);
    }
    *out += n;
}

/* After the backslash. */
static bool escape(text *t, char **out)
{
    if (t->p >= t->end)
        return false;
    unsigned char c = *t->p++;
    const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
    for (int i = 0; from[i]; i++)
        if (c == (unsigned char)from[i]) {
            *(*out)++ = to[i];
            return true;
        }
    unsigned long code, low;
    if (c != 'u' || !hex4(t, &code) || (code >= 0xDC00 && code <= 0xDFFF))
        return false;
    if (code >= 0xD800 && code <= 0xDBFF) {
        if (t->end - t->p < 2 || t->p[0] != '\\' || t->p[1] != 'u')
            return false;
        t->p += 2;
        if (!hex4(t, &low) || low < 0xDC00 || low > 0xDFFF)
            return false;
        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    }
    encode(code, out);
    return true;
}

/* A string; *s points at its decoded bytes (in t->out), *len counts them. */
static bool string(text *t, const char **s, size_t *len)
{
    if (!take(t, '"'))
        return false;
    char *start = t->out, *out = t->out;
    for (;;) {
        if (t->p >= t->end || *t->p < 0x20)
            return false;
        if (*t->p == '"')
            break;
        if (*t->p == '\\') {
            t->p++;
            if (!escape(t, &out))
                return false;
        } else if (!utf8_char(t, &out)) {
            return false;
        }
    }
    t->p++;
    *out++ = '\0';
    t->out = out;
    *s = start;
    *len = (size_t)(out - start - 1);
    return true;
}

static bool digit_at(const text *t, const unsigned char *p) { return p < t->end && *p >= '0' && *p <= '9'; }

/* A number; *whole when it is an integer >= 0 written without fraction or exponent that
 * fits in 64 bits (its value in *v). */
static bool number(text *t, bool *whole, uint64_t *v)
{
    skip_ws(t);
    const unsigned char *p = t->p;
    bool minus = p < t->end && *p == '-';
    p += minus;
    if (!digit_at(t, p))
        return false;
    *whole = !minus;
    *v = 0;
    if (*p == '0') {
        p++;
    } else {
        for (; digit_at(t, p); p++) {
            uint64_t d = (uint64_t)(*p - '0');
            if (*v > (UINT64_MAX - d) / 10)
                *whole = false;
            *v = *v * 10 + d;
        }
    }
    if (p < t->end && *p == '.') {
        *whole = false;
        if (!digit_at(t, ++p))
            return false;
        while (digit_at(t, p))
            p++;
    }
    if (p < t->end && (*p == 'e' || *p == 'E')) {
        *whole = false;
        p++;
        if (p < t->end && (*p == '+' || *p == '-'))
            p++;
        if (!digit_at(t, p))
            return false;
        while (digit_at(t, p))
            p++;
    }
    t->p = p;
    return true;
}

static bool word(text *t, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(t->end - t->p) < n || memcmp(t->p, w, n) != 0)
        return false;
    t->p += n;
    return true;
}

/* Any value; a container at this point is nested `level` deep. */
static bool value(text *t, int level)
{
    skip_ws(t);
    if (t->p >= t->end)
        return false;
    const char *s;
    size_t len;
    bool whole;
    uint64_t v;
    char open = (char)*t->p;
    if (open == '{' || open == '[') {
        if (level > MAX_NESTING)
            return false;
        char close = open == '{' ? '}' : ']';
        t->p++;
        if (take(t, close))
            return true;
        do {
            if (open == '{' && !(string(t, &s, &len) && take(t, ':')))
                return false;
            if (!value(t, level + 1))
                return false;
        } while (take(t, ','));
        return take(t, close);
    }
    if (open == '"')
        return string(t, &s, &len);
    if (open == 't' || open == 'f' || open == 'n')
        return word(t, open == 't' ? "true" : open == 'f' ? "false" : "null");
    return number(t, &whole, &v);
}

/* ---- the schema ----------------------------------------------------------------------------- */

static bool is_key(const char *s, size_t len, const char *w) { return len == strlen(w) && memcmp(s, w, len) == 0; }

/* The product of the dims seen so far, in e->elements (UINT64_MAX once it overflows; a zero
 * dim makes it 0 whatever else the shape holds). */
static void multiply(oracle_entry *e, uint64_t dim)
{
    if (dim == 0)
        e->zero_dim = true;
    else if (e->elements > UINT64_MAX / dim)
        e->elements = UINT64_MAX;
    else
        e->elements *= dim;
}

/* [n, n, ...] of whole numbers, nested `level` deep; at most `max` of them (more fails), or
 * any number of them when max is 0 (the first ORACLE_MAX_DIMS kept). Each is multiplied
 * into shape's elements when shape is not NULL. */
static bool counts(text *t, int level, uint64_t *out, size_t *n, size_t max, oracle_entry *shape)
{
    *n = 0;
    if (shape)
        shape->elements = 1, shape->zero_dim = false;
    if (level > MAX_NESTING || !take(t, '['))
        return false;
    if (take(t, ']'))
        return true;
    do {
        bool whole;
        uint64_t v;
        if (!number(t, &whole, &v) || !whole || (max && *n == max))
            return false;
        if (*n < ORACLE_MAX_DIMS)
            out[*n] = v;
        if (shape)
            multiply(shape, v);
        (*n)++;
    } while (take(t, ','));
    return take(t, ']');
}

static const struct { const char *name; unsigned bytes; } DTYPE_SIZES[] = {
    { "BOOL", 1 }, { "U8", 1 }, { "I8", 1 }, { "F8_E5M2", 1 }, { "F8_E4M3", 1 },
    { "U16", 2 }, { "I16", 2 }, { "F16", 2 }, { "BF16", 2 },
    { "U32", 4 }, { "I32", 4 }, { "F32", 4 }, { "U64", 8 }, { "I64", 8 }, { "F64", 8 },
};

static unsigned dtype_bytes(const char *name)
{
    for (size_t i = 0; i < sizeof DTYPE_SIZES / sizeof DTYPE_SIZES[0]; i++)
        if (strcmp(DTYPE_SIZES[i].name, name) == 0)
            return DTYPE_SIZES[i].bytes;
    return 0;
}

/* A tensor's object: dtype, shape and data_offsets exactly once each, other fields any value. */
static bool tensor(text *t, oracle_entry *e)
{
    bool seen[3] = { false, false, false };
    if (!take(t, '{'))
        return false;
    if (!peek(t, '}'))
        do {
            const char *key, *s;
            size_t key_len, len, n_offsets;
            uint64_t offsets[ORACLE_MAX_DIMS];
            if (!string(t, &key, &key_len) || !take(t, ':'))
                return false;
            int field = is_key(key, key_len, "dtype") ? 0 : is_key(key, key_len, "shape") ? 1
                      : is_key(key, key_len, "data_offsets") ? 2 : -1;
            if (field < 0) {
                if (!value(t, 3))
                    return false;
                continue;
            }
            if (seen[field])
                return false;
            seen[field] = true;
            if (field == 0 && !(peek(t, '"') && string(t, &s, &len) && len < sizeof e->dtype &&
                                memchr(s, 0, len) == NULL && dtype_bytes(s)))
                return false;
            if (field == 0)
                strcpy(e->dtype, s);
            if (field == 1 && !counts(t, 3, e->dims, &e->n_dims, 0, e))
                return false;
            if (field == 2 && !(counts(t, 3, offsets, &n_offsets, 2, NULL) && n_offsets == 2))
                return false;
            if (field == 2)
                e->begin = offsets[0], e->end = offsets[1];
        } while (take(t, ','));
    return take(t, '}') && seen[0] && seen[1] && seen[2];
}

/* The metadata object: any keys, string values. */
static bool metadata(text *t)
{
    const char *s;
    size_t len;
    if (!take(t, '{'))
        return false;
    if (take(t, '}'))
        return true;
    do
        if (!string(t, &s, &len) || !take(t, ':') || !peek(t, '"') || !string(t, &s, &len))
            return false;
    while (take(t, ','));
    return take(t, '}');
}

static bool add_entry(oracle_file *f, size_t *capacity)
{
    if (f->n_entries < *capacity)
        return true;
    *capacity = *capacity ? 2 * *capacity : 8;
    oracle_entry *grown = realloc(f->entries, *capacity * sizeof *grown);
    if (!grown)
        return false;
    f->entries = grown;
    return true;
}

static bool header(text *t, oracle_file *f)
{
    size_t capacity = 0;
    int metadata_seen = 0;
    if (!take(t, '{'))
        return false;
    if (!peek(t, '}'))
        do {
            const char *key;
            size_t key_len;
            if (!string(t, &key, &key_len) || !take(t, ':'))
                return false;
            if (is_key(key, key_len, "__metadata__")) {
                if (metadata_seen++ || !metadata(t))
                    return false;
                continue;
            }
            if (!add_entry(f, &capacity))
                return false;
            oracle_entry *e = &f->entries[f->n_entries++];
            memset(e, 0, sizeof *e);
            e->name = key, e->name_len = key_len;
            if (!tensor(t, e))
                return false;
        } while (take(t, ','));
    if (!take(t, '}'))
        return false;
    skip_ws(t);
    return t->p == t->end;
}

bool oracle_parse(const unsigned char *bytes, size_t n, oracle_file *f)
{
    memset(f, 0, sizeof *f);
    if (n < 8)
        return false;
    for (int i = 7; i >= 0; i--)
        f->header_len = f->header_len << 8 | bytes[i];
    if (f->header_len > n - 8 || f->header_len > ORACLE_HEADER_LIMIT)
        return false;
    f->data = bytes + 8 + f->header_len;
    f->data_len = n - 8 - f->header_len;
    f->names = malloc(f->header_len + 1);
    if (!f->names)
        return false;
    text t = { bytes + 8, bytes + 8 + f->header_len, f->names };
    return header(&t, f);
}

void oracle_file_free(oracle_file *f)
{
    free(f->entries);
    free(f->names);
    memset(f, 0, sizeof *f);
}

/* ---- the checks across entries ---------------------------------------------------------- */

static bool same_name(const oracle_entry *a, const char *name, size_t len)
{
    return a->name_len == len && memcmp(a->name, name, len) == 0;
}

/* The number of bytes the entry's dtype and shape need; UINT64_MAX when that overflows. */
static uint64_t needed_bytes(const oracle_entry *e)
{
    uint64_t size = dtype_bytes(e->dtype);
    if (e->zero_dim)
        return 0;
    return e->elements > UINT64_MAX / size ? UINT64_MAX : e->elements * size;
}

static bool entries_valid(const oracle_file *f)
{
    for (size_t i = 0; i < f->n_entries; i++) {
        const oracle_entry *a = &f->entries[i];
        if (a->begin > a->end || a->end > f->data_len)
            return false;
        if (a->end - a->begin != needed_bytes(a))
            return false;
        for (size_t k = 0; k < i; k++) {
            const oracle_entry *b = &f->entries[k];
            if (same_name(b, a->name, a->name_len))
                return false;
            if (a->begin < a->end && b->begin < b->end && a->begin < b->end && b->begin < a->end)
                return false;
        }
    }
    return true;
}

static bool shape_fits(const oracle_entry *e, const oracle_want *w)
{
    bool two = e->n_dims == 2 && e->dims[0] == (uint64_t)w->rows && e->dims[1] == (uint64_t)w->cols;
    bool one = e->n_dims == 1 && e->dims[0] == (uint64_t)w->rows && w->cols == 1;
    return w->rule == ORACLE_2D ? two : w->rule == ORACLE_1D ? one : two || one;
}

static const oracle_entry *find(const oracle_file *f, const char *name)
{
    for (size_t i = 0; i < f->n_entries; i++)
        if (same_name(&f->entries[i], name, strlen(name)))
            return &f->entries[i];
    return NULL;
}

static float *values_of(const oracle_file *f, const oracle_entry *e, size_t count)
{
    float *v = malloc(count * sizeof *v + 1);
    for (size_t k = 0; v && k < count; k++) {
        const unsigned char *b = f->data + e->begin + 4 * k;
        uint32_t bits = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(&v[k], &bits, sizeof bits);
    }
    return v;
}

bool oracle_valid(const unsigned char *bytes, size_t n, oracle_file *f)
{
    return oracle_parse(bytes, n, f) && entries_valid(f);
}

bool oracle_values(const oracle_file *f, const oracle_want *wants, int n_wants, float **values)
{
    bool ok = true;
    for (int i = 0; i < n_wants; i++) {
        const oracle_entry *e = ok ? find(f, wants[i].name) : NULL;
        ok = e && strcmp(e->dtype, "F32") == 0 && shape_fits(e, &wants[i]);
        values[i] = ok ? values_of(f, e, (size_t)wants[i].rows * (size_t)wants[i].cols) : NULL;
    }
    if (!ok)
        for (int i = 0; i < n_wants; i++) {
            free(values[i]);
            values[i] = NULL;
        }
    return ok;
}
