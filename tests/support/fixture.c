/* fixture.c: reads the reference-value files of tests/fixtures/ (format in fixture.h).
 * Any malformed input gives NULL and a message naming the file, the line and what is
 * wrong; nothing is printed and nothing aborts. */
#include "fixture.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE_HEADER "tapegrad-fixtures"
#define FIXTURE_VERSION "1"
#define FIXTURE_MAX_BYTES (1L << 30)   /* a fixture file is text of a few MB at most */
#define SHOWN "%.40s"                  /* how much of a bad token a message quotes */

typedef struct parser {
    const char *name;          /* the file, for messages */
    long line;                 /* the line being parsed, from 1 */
    char *err;
    size_t err_size;
    fixture_set *set;
    fixture_case *open;        /* the case whose 'end' has not come yet, or NULL */
    int case_capacity, array_capacity;
} parser;

/* Write "name:line: message" into the parser's err; returns false so callers can return it. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static bool fail(parser *p, const char *fmt, ...)
{
    char message[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    if (p->err && p->err_size > 0) {
        if (p->line > 0)
            snprintf(p->err, p->err_size, "%s:%ld: %s", p->name, p->line, message);
        else
            snprintf(p->err, p->err_size, "%s: %s", p->name, message);
    }
    return false;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void set_error(char *err, size_t err_size, const char *fmt, ...)
{
    if (!err || err_size == 0)
        return;
    va_list args;
    va_start(args, fmt);
    vsnprintf(err, err_size, fmt, args);
    va_end(args);
}

/* ---- tokens: blank-separated words of one line, cut in place --------------------------- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* The next word at *cursor (terminated in place), or NULL at the end of the line. */
static char *next_token(char **cursor)
{
    char *s = *cursor;
    while (is_blank(*s))
        s++;
    if (*s == '\0') {
        *cursor = s;
        return NULL;
    }
    char *start = s;
    while (*s != '\0' && !is_blank(*s))
        s++;
    if (*s != '\0')
        *s++ = '\0';
    *cursor = s;
    return start;
}

static long count_tokens(const char *s)
{
    long n = 0;
    while (*s != '\0') {
        while (is_blank(*s))
            s++;
        if (*s == '\0')
            break;
        n++;
        while (*s != '\0' && !is_blank(*s))
            s++;
    }
    return n;
}

/* A whole number in 1..INT_MAX, the whole token. */
static bool parse_positive_int(const char *token, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(token, &end, 10);
    if (end == token || *end != '\0' || errno == ERANGE || v < 1 || v > INT_MAX)
        return false;
    *out = (int)v;
    return true;
}

/* A finite number, the whole token. (Underflow to a tiny or zero value is accepted.) */
static bool parse_finite_double(const char *token, double *out)
{
    char *end;
    double v = strtod(token, &end);
    if (end == token || *end != '\0' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool is_key(const char *s)
{
    if (!(*s == '_' || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')))
        return false;
    for (; *s; s++)
        if (!(*s == '_' || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
              (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    if (copy)
        memcpy(copy, s, n);
    return copy;
}

/* ---- the lines of the format ----------------------------------------------------------- */

/* "case NAME I H B T" */
static bool parse_case(parser *p, char *rest)
{
    if (p->open)
        return fail(p, "case starts before case '" SHOWN "' has its 'end'", p->open->name);
    char *name = next_token(&rest);
    if (!name)
        return fail(p, "'case' needs NAME I H B T");
    const char *what[4] = { "input (I)", "hidden (H)", "batch (B)", "steps (T)" };
    int dims[4];
    for (int i = 0; i < 4; i++) {
        char *token = next_token(&rest);
        if (!token)
            return fail(p, "case " SHOWN ": 'case' needs NAME I H B T; %s is missing", name,
                        what[i]);
        if (!parse_positive_int(token, &dims[i]))
            return fail(p, "case " SHOWN ": %s must be a whole number > 0, got '" SHOWN "'",
                        name, what[i], token);
    }
    char *extra = next_token(&rest);
    if (extra)
        return fail(p, "case " SHOWN ": unexpected '" SHOWN "' after NAME I H B T", name, extra);
    for (int i = 0; i < p->set->n_cases; i++)
        if (strcmp(p->set->cases[i].name, name) == 0)
            return fail(p, "a second case named '" SHOWN "'", name);

    fixture_set *set = p->set;
    if (set->n_cases == p->case_capacity) {
        int capacity = p->case_capacity ? 2 * p->case_capacity : 16;
        fixture_case *grown = realloc(set->cases, (size_t)capacity * sizeof *grown);
        if (!grown)
            return fail(p, "out of memory");
        set->cases = grown;
        p->case_capacity = capacity;
    }
    fixture_case *c = &set->cases[set->n_cases++];
    *c = (fixture_case){ .input = dims[0], .hidden = dims[1], .batch = dims[2], .steps = dims[3] };
    p->open = c;
    p->array_capacity = 0;
    c->name = copy_string(name);
    if (!c->name)
        return fail(p, "out of memory");
    return true;
}

/* "KEY COUNT v1 ... vCOUNT" inside the open case */
static bool parse_array(parser *p, char *key, char *rest)
{
    fixture_case *c = p->open;
    if (!is_key(key))
        return fail(p, "case " SHOWN ": '" SHOWN "' is not a key (letters, digits and '_')",
                    c->name, key);
    if (fixture_find(c, key))
        return fail(p, "case " SHOWN ": key %s appears twice", c->name, key);
    char *count_token = next_token(&rest);
    if (!count_token)
        return fail(p, "case " SHOWN ": %s has no count", c->name, key);
    int count;
    if (!parse_positive_int(count_token, &count))
        return fail(p, "case " SHOWN ": the count of %s must be a whole number > 0, got '"
                    SHOWN "'", c->name, key, count_token);
    long found = count_tokens(rest);
    if (found != count)
        return fail(p, "case " SHOWN ": %s says %d values but the line has %ld",
                    c->name, key, count, found);

    if (c->n_arrays == p->array_capacity) {
        int capacity = p->array_capacity ? 2 * p->array_capacity : 16;
        fixture_array *grown = realloc(c->arrays, (size_t)capacity * sizeof *grown);
        if (!grown)
            return fail(p, "out of memory");
        c->arrays = grown;
        p->array_capacity = capacity;
    }
    fixture_array *a = &c->arrays[c->n_arrays++];
    *a = (fixture_array){ .count = 0 };
    a->key = copy_string(key);
    a->values = malloc((size_t)count * sizeof *a->values);
    if (!a->key || !a->values)
        return fail(p, "out of memory");
    for (int i = 0; i < count; i++) {
        char *token = next_token(&rest);
        if (!token || !parse_finite_double(token, &a->values[i]))
            return fail(p, "case " SHOWN ": %s value %d is '" SHOWN "', not a finite number",
                        c->name, key, i + 1, token ? token : "");
    }
    a->count = count;
    return true;
}

static bool parse_line(parser *p, char *line, bool *header_seen)
{
    char *rest = line;
    char *first = next_token(&rest);
    if (!first || first[0] == '#')
        return true;
    if (!*header_seen) {
        char *version = next_token(&rest);
        if (strcmp(first, FIXTURE_HEADER) != 0)
            return fail(p, "expected the header '" FIXTURE_HEADER " " FIXTURE_VERSION
                        "', got '" SHOWN "'; is this a fixture file?", first);
        if (!version)
            return fail(p, "the header has no version (expected '" FIXTURE_HEADER " "
                        FIXTURE_VERSION "')");
        if (strcmp(version, FIXTURE_VERSION) != 0)
            return fail(p, "this reader knows format version " FIXTURE_VERSION
                        ", the file has version '" SHOWN "'", version);
        char *extra = next_token(&rest);
        if (extra)
            return fail(p, "unexpected '" SHOWN "' after the header", extra);
        *header_seen = true;
        return true;
    }
    if (strcmp(first, "case") == 0)
        return parse_case(p, rest);
    if (strcmp(first, "end") == 0) {
        if (!p->open)
            return fail(p, "'end' outside a case");
        if (next_token(&rest))
            return fail(p, "case " SHOWN ": 'end' takes nothing after it", p->open->name);
        p->open = NULL;
        return true;
    }
    if (!p->open)
        return fail(p, "'" SHOWN "' outside a case (expected 'case NAME I H B T')", first);
    return parse_array(p, first, rest);
}

fixture_set *fixture_parse(const char *text, size_t len, const char *name, char *err,
                           size_t err_size)
{
    parser p = { .name = name ? name : "(fixture text)", .err = err, .err_size = err_size };
    if (err && err_size > 0)
        err[0] = '\0';
    if (!text && len > 0) {
        fail(&p, "no text");
        return NULL;
    }
    if (len > 0 && memchr(text, '\0', len)) {
        fail(&p, "contains a NUL byte; not a text fixture file");
        return NULL;
    }
    char *buffer = malloc(len + 1);
    p.set = calloc(1, sizeof *p.set);
    if (!buffer || !p.set) {
        free(buffer);
        free(p.set);
        fail(&p, "out of memory");
        return NULL;
    }
    if (len > 0)
        memcpy(buffer, text, len);
    buffer[len] = '\0';

    bool ok = true, header_seen = false;
    char *line = buffer;
    while (ok && line < buffer + len) {
        char *newline = strchr(line, '\n');
        if (newline)
            *newline = '\0';
        p.line++;
        ok = parse_line(&p, line, &header_seen);
        line = newline ? newline + 1 : buffer + len;
    }
    free(buffer);
    if (ok) {
        p.line = 0;
        if (!header_seen)
            ok = fail(&p, "empty: no '" FIXTURE_HEADER "' header and no cases");
        else if (p.open)
            ok = fail(&p, "the file ends inside case '" SHOWN "' (no 'end')", p.open->name);
        else if (p.set->n_cases == 0)
            ok = fail(&p, "no cases");
    }
    if (!ok) {
        fixture_free(p.set);
        return NULL;
    }
    return p.set;
}

fixture_set *fixture_load(const char *path, char *err, size_t err_size)
{
    if (err && err_size > 0)
        err[0] = '\0';
    if (!path) {
        set_error(err, err_size, "fixture_load: path is NULL");
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_error(err, err_size, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t len = 0, capacity = 0;
    bool ok = true;
    for (;;) {
        if (len == capacity) {
            if (capacity >= (size_t)FIXTURE_MAX_BYTES) {
                set_error(err, err_size, "%s: %ld bytes or more; too large for a fixture file",
                          path, FIXTURE_MAX_BYTES);
                ok = false;
                break;
            }
            capacity = capacity ? 2 * capacity : 64 * 1024;
            char *grown = realloc(text, capacity);
            if (!grown) {
                set_error(err, err_size, "%s: out of memory", path);
                ok = false;
                break;
            }
            text = grown;
        }
        size_t got = fread(text + len, 1, capacity - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ok && ferror(f)) {
        set_error(err, err_size, "cannot read %s", path);
        ok = false;
    }
    fclose(f);
    fixture_set *set = ok ? fixture_parse(text, len, path, err, err_size) : NULL;
    free(text);
    return set;
}

void fixture_free(fixture_set *set)
{
    if (!set)
        return;
    for (int i = 0; i < set->n_cases; i++) {
        fixture_case *c = &set->cases[i];
        for (int j = 0; j < c->n_arrays; j++) {
            free(c->arrays[j].key);
            free(c->arrays[j].values);
        }
        free(c->arrays);
        free(c->name);
    }
    free(set->cases);
    free(set);
}

const fixture_array *fixture_find(const fixture_case *c, const char *key)
{
    if (!c || !key)
        return NULL;
    for (int i = 0; i < c->n_arrays; i++)
        if (c->arrays[i].key && strcmp(c->arrays[i].key, key) == 0)
            return &c->arrays[i];
    return NULL;
}

const double *fixture_values(const fixture_case *c, const char *key, int count, char *err,
                             size_t err_size)
{
    const fixture_array *a = fixture_find(c, key);
    if (!a) {
        set_error(err, err_size, "case %s: no array %s", c && c->name ? c->name : "(NULL)",
                  key ? key : "(NULL)");
        return NULL;
    }
    if (a->count != count) {
        set_error(err, err_size, "case %s: %s has %d values, expected %d", c->name, key,
                  a->count, count);
        return NULL;
    }
    return a->values;
}

double fixture_relative_error(const float *ours, const double *ref, long n)
{
    double diff = 0.0, scale = 1e-6;
    for (long k = 0; k < n; k++) {
        double d = fabs((double)ours[k] - ref[k]);
        if (isnan(d))
            return NAN;
        if (d > diff)
            diff = d;
        if (fabs(ref[k]) > scale)
            scale = fabs(ref[k]);
    }
    return diff / scale;
}

void fixture_note(fixture_worst *w, const char *tensor, int step, const float *ours,
                  const double *ref, long n)
{
    double e = fixture_relative_error(ours, ref, n);
    if (isnan(w->error) || e <= w->error)
        return;
    w->error = e;
    if (step < 0)
        snprintf(w->tensor, sizeof w->tensor, "%s", tensor);
    else
        snprintf(w->tensor, sizeof w->tensor, "%s[%d]", tensor, step);
}

void fixture_to_float(float *to, const double *from, long n)
{
    for (long k = 0; k < n; k++)
        to[k] = (float)from[k];
}
