/* gen_corpus.c: writes the damaged-checkpoint corpus of tests/hostile into a directory.
 *
 *     gen_corpus FIXTURE_DIR OUT_DIR COUNT [SEED]
 *
 * Its bases are the PyTorch-made checkpoints in FIXTURE_DIR (rnn, lstm and gru cells, input 3,
 * hidden 4) and files it saves itself with tg_rnn_cell_save, tg_lstm_cell_save,
 * tg_gru_cell_save and tg_save. From each base it makes the variants of every family below:
 * truncations, header lengths, padding, malformed JSON, wrong types, data offsets, dtype and
 * shape lies, NaN/Inf/subnormal data and huge headers, then seeded random mutations. About
 * three quarters of COUNT go to the families, shared equally (a family with more variants than
 * its share is sampled evenly); random mutations fill the rest. File names follow hostile.h. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hostile.h"
#include "oracle.h"
#include "tapegrad.h"

/* ---- growing byte strings ---------------------------------------------------------------- */

typedef struct bytes { unsigned char *p; size_t n, cap; } bytes;

static void die(const char *what)
{
    fprintf(stderr, "gen_corpus: %s\n", what);
    exit(2);
}

static void put(bytes *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = 2 * (b->n + n + 1);
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            die("out of memory");
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void puts_(bytes *b, const char *s) { put(b, s, strlen(s)); }

/* Formatted text of at most 511 bytes (longer text goes through puts_). */
static void putf(bytes *b, const char *fmt, ...)
{
    char s[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(s, sizeof s, fmt, args);
    va_end(args);
    puts_(b, s);
}

static void repeat(bytes *b, const char *s, size_t times)
{
    for (size_t i = 0; i < times; i++)
        puts_(b, s);
}

/* A file: the 8-byte length (`length`), the header text, the data. */
static bytes assemble(const bytes *header, uint64_t length, const unsigned char *data, size_t n_data)
{
    bytes f = { 0 };
    unsigned char prefix[8];
    for (int i = 0; i < 8; i++)
        prefix[i] = (unsigned char)(length >> (8 * i));
    put(&f, prefix, 8);
    put(&f, header->p, header->n);
    put(&f, data, n_data);
    return f;
}

/* ---- the bases ------------------------------------------------------------------------------ */

typedef struct base {
    const char *kind;            /* rnn, lstm, gru or named */
    bytes file;
    oracle_file parsed;          /* its entries, and its data (into file) */
} base;

enum { MAX_BASES = 8 };
static base bases[MAX_BASES];
static int n_bases;

static bytes read_file(const char *path)
{
    bytes b = { 0 };
    FILE *f = fopen(path, "rb");
    if (!f)
        die(path);
    unsigned char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        put(&b, chunk, n);
    fclose(f);
    return b;
}

static void add_base(const char *kind, const char *path)
{
    base *b = &bases[n_bases++];
    b->kind = kind;
    b->file = read_file(path);
    if (!oracle_parse(b->file.p, b->file.n, &b->parsed))
        die("a base file does not parse");
}

/* Values a round trip must keep bit for bit: signed zeros, subnormals, extremes, inf, NaN. */
static void fill_special(tg_tensor *t, uint32_t salt)
{
    static const uint32_t bits[] = { 0x80000000u, 0x00000001u, 0x807FFFFFu, 0x7F7FFFFFu, 0xFF800000u,
                                     0x7FC00000u, 0x7FA12345u, 0x3F800000u, 0x00800000u, 0xBDCCCCCDu };
    for (int k = 0; k < t->rows * t->cols; k++) {
        uint32_t v = bits[(k + salt) % (sizeof bits / sizeof bits[0])];
        memcpy(&t->data[k], &v, sizeof v);
    }
}

static void make_saved_bases(const char *dir)
{
    char path[4096];
    tg_error err;
    tg_rnn_cell *rnn = tg_rnn_cell_new(HOSTILE_INPUT, HOSTILE_HIDDEN, 5);
    tg_lstm_cell *lstm = tg_lstm_cell_new(HOSTILE_INPUT, HOSTILE_HIDDEN, 6, NULL);
    tg_gru_cell *gru = tg_gru_cell_new(HOSTILE_INPUT, HOSTILE_HIDDEN, 7, NULL);
    tg_tensor *named[HOSTILE_N_NAMED];
    tg_named list[HOSTILE_N_NAMED];
    for (int i = 0; i < HOSTILE_N_NAMED; i++) {
        named[i] = tg_param_new(HOSTILE_NAMED[i].rows, HOSTILE_NAMED[i].cols);
        if (!named[i])
            die("out of memory");
        fill_special(named[i], (uint32_t)i);
        list[i] = (tg_named){ HOSTILE_NAMED[i].name, named[i] };
    }
    if (!rnn || !lstm || !gru)
        die("out of memory");
    fill_special(rnn->b, 1);
    fill_special(gru->b_h, 2);
    const struct { const char *kind; int rc; } saved[] = {
        { "rnn", (snprintf(path, sizeof path, "%s/base-rnn", dir), tg_rnn_cell_save(rnn, path, &err)) },
        { "lstm", (snprintf(path, sizeof path, "%s/base-lstm", dir), tg_lstm_cell_save(lstm, path, &err)) },
        { "gru", (snprintf(path, sizeof path, "%s/base-gru", dir), tg_gru_cell_save(gru, path, &err)) },
        { "named", (snprintf(path, sizeof path, "%s/base-named", dir), tg_save(path, list, HOSTILE_N_NAMED, &err)) },
    };
    for (size_t i = 0; i < sizeof saved / sizeof saved[0]; i++) {
        if (saved[i].rc != 0)
            die(err.message);
        snprintf(path, sizeof path, "%s/base-%s", dir, saved[i].kind);
        add_base(saved[i].kind, path);
        remove(path);
    }
    tg_rnn_cell_free(rnn);
    tg_lstm_cell_free(lstm);
    tg_gru_cell_free(gru);
    for (int i = 0; i < HOSTILE_N_NAMED; i++)
        tg_param_free(named[i]);
}

/* ---- where variants go ---------------------------------------------------------------------- */

enum family { TRUNCATED, LENGTH, PADDING, JSON, TYPES, OFFSETS, LIES, SPECIAL, HUGE, N_FAMILIES };
static const char *const FAMILY_NAMES[N_FAMILIES + 1] = {
    "truncated", "length", "padding", "json", "types", "offsets", "lies", "special", "huge", "random",
};

typedef struct sink {
    const char *dir;
    bool counting;                    /* the first pass: count each family's variants */
    long seen[N_FAMILIES], total[N_FAMILIES], stride[N_FAMILIES];
    long written;
    enum family family;
} sink;

static void write_variant(sink *s, const bytes *f, const char *label, const char *kind, const char *what)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%05ld-%s-%s-%s_%s.safetensors", s->dir, s->written, label, kind,
             FAMILY_NAMES[s->family], what);
    FILE *out = fopen(path, "wb");
    if (!out || (f->n && fwrite(f->p, 1, f->n, out) != f->n) || fclose(out) != 0)
        die(path);
    s->written++;
}

/* Keeps the variant when its family's sampling picks it; frees it either way. */
static void emit(sink *s, bytes f, const char *label, const base *b, const char *what)
{
    long i = s->seen[s->family]++;
    if (!s->counting && i % s->stride[s->family] == 0)
        write_variant(s, &f, label, b->kind, what);
    free(f.p);
}

/* ---- headers rendered from entries ---------------------------------------------------------- */

/* How to render a base's header: raw JSON text in place of one entry's parts. */
typedef struct render {
    int entry;                                    /* the entry changed, -1 for none */
    const char *name, *dtype, *shape, *offsets;   /* raw text (name with its quotes) */
    const char *extra;                            /* "KEY":VALUE put before its dtype */
    const char *value;                            /* the whole entry's value */
    const char *metadata;                         /* the metadata's text, "" to leave it out */
    const char *more;                             /* members added at the end: ,"K":V... */
    int pad;                                      /* spaces after the object; -1: to a multiple of 8 */
} render;

static const render PLAIN = { .entry = -1, .pad = -1 };

static void put_name(bytes *h, const oracle_entry *e)
{
    puts_(h, "\"");
    for (size_t i = 0; i < e->name_len; i++) {
        unsigned char c = (unsigned char)e->name[i];
        if (c < 0x20 || c == '"' || c == '\\')
            putf(h, "\\u%04x", c);
        else
            put(h, &c, 1);
    }
    puts_(h, "\"");
}

static void put_dims(bytes *h, const uint64_t *dims, size_t n)
{
    puts_(h, "[");
    for (size_t i = 0; i < n; i++)
        putf(h, "%s%llu", i ? "," : "", (unsigned long long)dims[i]);
    puts_(h, "]");
}

static void put_entry(bytes *h, const oracle_entry *e, const render *r, bool changed)
{
    if (changed && r->name)
        puts_(h, r->name);
    else
        put_name(h, e);
    puts_(h, ":");
    if (changed && r->value) {
        puts_(h, r->value);
        return;
    }
    puts_(h, "{");
    if (changed && r->extra) {
        puts_(h, r->extra);
        puts_(h, ",");
    }
    if (changed && r->dtype)
        putf(h, "\"dtype\":%s", r->dtype);
    else
        putf(h, "\"dtype\":\"%s\"", e->dtype);
    puts_(h, ",\"shape\":");
    if (changed && r->shape)
        puts_(h, r->shape);
    else
        put_dims(h, e->dims, e->n_dims);
    puts_(h, ",\"data_offsets\":");
    uint64_t offsets[2] = { e->begin, e->end };
    if (changed && r->offsets)
        puts_(h, r->offsets);
    else
        put_dims(h, offsets, 2);
    puts_(h, "}");
}

static bytes header_of(const oracle_entry *entries, size_t n, const render *r)
{
    bytes h = { 0 };
    const char *metadata = r->metadata ? r->metadata : "\"__metadata__\":{\"format\":\"pt\"}";
    puts_(&h, "{");
    puts_(&h, metadata);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 || *metadata)
            puts_(&h, ",");
        put_entry(&h, &entries[i], r, (int)i == r->entry);
    }
    if (r->more)
        puts_(&h, r->more);
    puts_(&h, "}");
    if (r->pad >= 0)
        repeat(&h, " ", (size_t)r->pad);
    while (r->pad < 0 && h.n % 8 != 0)
        puts_(&h, " ");
    return h;
}

/* A base with its header rendered as r says, and its data as it is (or `data`). */
static bytes rendered(const base *b, const render *r, const unsigned char *data)
{
    bytes h = header_of(b->parsed.entries, b->parsed.n_entries, r);
    bytes f = assemble(&h, h.n, data ? data : b->parsed.data, b->parsed.data_len);
    free(h.p);
    return f;
}

static void emit_rendered(sink *s, const base *b, const render *r, const char *label, const char *what)
{
    emit(s, rendered(b, r, NULL), label, b, what);
}

/* ---- the families ---------------------------------------------------------------------------- */

static uint64_t data_end(const base *b)
{
    uint64_t end = 0;
    for (size_t i = 0; i < b->parsed.n_entries; i++)
        end = b->parsed.entries[i].end > end ? b->parsed.entries[i].end : end;
    return 8 + b->parsed.header_len + end;
}

/* Every length short of the whole file: refused while a tensor's bytes are cut. */
static void truncated(sink *s, const base *b)
{
    for (size_t n = 0; n < b->file.n; n++) {
        bytes f = { 0 };
        put(&f, b->file.p, n);
        char what[32];
        snprintf(what, sizeof what, "to_%zu", n);
        emit(s, f, n < data_end(b) ? "refuse" : "either", b, what);
    }
}

static void with_length(sink *s, const base *b, uint64_t length, const char *label, const char *what)
{
    bytes f = { 0 };
    put(&f, b->file.p, b->file.n);
    for (int i = 0; i < 8; i++)
        f.p[i] = (unsigned char)(length >> (8 * i));
    emit(s, f, label, b, what);
}

/* The 8-byte header length: zero, tiny, past the file, over the limit, near misses. */
static void lengths(sink *s, const base *b)
{
    const uint64_t n = b->parsed.header_len, size = b->file.n;
    const struct { uint64_t v; const char *what; } wrong[] = {
        { 0, "zero" }, { 1, "one" }, { 2, "two" }, { 7, "seven" }, { size - 7, "past_the_file" },
        { size, "file_size" }, { 99999999, "just_under_the_limit" }, { 100000000, "the_limit" },
        { 100000001, "over_the_limit" }, { 1ull << 32, "2pow32" }, { 1ull << 63, "2pow63" },
        { UINT64_MAX, "2pow64_minus_1" }, { n | 1ull << 56, "high_byte" }, { n | 1ull << 32, "bit_32" },
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++)
        with_length(s, b, wrong[i].v, "refuse", wrong[i].what);
    for (int d = -8; d <= 8; d++) {
        char what[32];
        snprintf(what, sizeof what, "off_by_%d", d);
        if (d != 0)
            with_length(s, b, n + (uint64_t)(int64_t)d, "either", what);
    }
}

/* Headers of any length (not 8-aligned), whitespace of every kind: all load. */
static void padding(sink *s, const base *b)
{
    for (int pad = 0; pad < 16; pad++) {
        render r = PLAIN;
        r.pad = pad;
        char what[32];
        snprintf(what, sizeof what, "%d_spaces", pad);
        emit_rendered(s, b, &r, "load", what);
    }
    bytes h = header_of(b->parsed.entries, b->parsed.n_entries, &PLAIN);
    bytes spaced = { 0 };
    puts_(&spaced, " \t\r\n");
    for (size_t i = 0; i < h.n; i++) {
        put(&spaced, &h.p[i], 1);
        if (strchr("{}[],:", h.p[i]))
            puts_(&spaced, i % 2 ? "\n\t" : " \r\n ");
    }
    emit(s, assemble(&spaced, spaced.n, b->parsed.data, b->parsed.data_len), "load", b, "whitespace_everywhere");
    free(h.p);
    free(spaced.p);
}

/* Text edits of the whole header: the first (or last) `find` becomes `replace`. */
static void edited(sink *s, const base *b, const char *find, const char *replace, bool last,
                   const char *label, const char *what)
{
    bytes h = header_of(b->parsed.entries, b->parsed.n_entries, &PLAIN);
    char *at = strstr((char *)h.p, find), *next;
    while (last && at && (next = strstr(at + 1, find)) != NULL)
        at = next;
    if (!at)
        die("an edit found nothing to change");
    bytes out = { 0 };
    put(&out, h.p, (size_t)((unsigned char *)at - h.p));
    put(&out, replace, strlen(replace));
    puts_(&out, at + strlen(find));
    emit(s, assemble(&out, out.n, b->parsed.data, b->parsed.data_len), label, b, what);
    free(h.p);
    free(out.p);
}

/* Malformed JSON (unbalanced, bad escapes, non-UTF-8, trailing bytes), and JSON that is odd
 * but valid (escapes, surrogate pairs, duplicate metadata keys). */
static void json(sink *s, const base *b)
{
    static const struct { const char *find, *replace; bool last; const char *label, *what; } edits[] = {
        { "{", "{{", false, "refuse", "two_opening_braces" },
        { "}", "", true, "refuse", "no_closing_brace" },
        { "}", "}}", true, "refuse", "two_closing_braces" },
        { "}", "}x", true, "refuse", "a_byte_after" },
        { "}", "}\x01", true, "refuse", "a_control_byte_after" },
        { "{", "\xef\xbb\xbf{", false, "refuse", "byte_order_mark" },
        { "},", "}", false, "refuse", "a_missing_comma" },
        { "\":{\"dtype", "\"{\"dtype", false, "refuse", "a_missing_colon" },
        { "]}", "],}", true, "refuse", "a_trailing_comma_in_an_object" },
        { "]}", ",]}", true, "refuse", "a_trailing_comma_in_an_array" },
        { "\"format\"", "format", false, "refuse", "an_unquoted_key" },
        { "\"format\"", "'format'", false, "refuse", "single_quotes" },
        { "\"pt\"", "\"p\\qt\"", false, "refuse", "an_unknown_escape" },
        { "\"pt\"", "\"\\u12\"", false, "refuse", "a_short_unicode_escape" },
        { "\"pt\"", "\"\\uD800\"", false, "refuse", "a_lone_high_surrogate" },
        { "\"pt\"", "\"\\uDC00\\uD800\"", false, "refuse", "surrogates_reversed" },
        { "\"pt\"", "\"\\uD800\\u0041\"", false, "refuse", "a_high_surrogate_then_a_letter" },
        { "\"pt\"", "\"p\tt\"", false, "refuse", "a_raw_tab" },
        { "\"pt\"", "\"p\xfft\"", false, "refuse", "byte_ff" },
        { "\"pt\"", "\"\xc0\xaf\"", false, "refuse", "an_overlong_slash" },
        { "\"pt\"", "\"\xed\xa0\x80\"", false, "refuse", "an_encoded_surrogate" },
        { "\"pt\"", "\"\xf4\x90\x80\x80\"", false, "refuse", "above_u10ffff" },
        { "\"pt\"", "\"\xc3\"", false, "refuse", "a_cut_character" },
        { "\"pt\"", "\"\xe2\x82\"", false, "refuse", "a_cut_three_byte_character" },
        { "\"pt\"", "1", false, "refuse", "a_number_in_the_metadata" },
        { "{\"format\":\"pt\"}", "[]", false, "refuse", "metadata_as_an_array" },
        { "{\"format\":\"pt\"}", "{\"a\":\"1\"},\"__metadata__\":{}", false, "refuse", "metadata_twice" },
        { "\"pt\"", "\"\\ud83d\\ude00 \\u00e9\\/\\b\\f\\n\\r\\t\\\\\\\"\"", false, "load", "every_escape" },
        { "\"pt\"", "\"\xf0\x9f\x98\x80 \xc3\xa9 \xe2\x82\xac\"", false, "load", "utf8_in_the_metadata" },
        { "{\"format\":\"pt\"}", "{\"a\":\"1\",\"a\":\"2\"}", false, "load", "a_metadata_key_twice" },
        { "{\"format\":\"pt\"}", "{}", false, "load", "empty_metadata" },
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++)
        edited(s, b, edits[i].find, edits[i].replace, edits[i].last, edits[i].label, edits[i].what);
    render r = PLAIN;
    r.metadata = "";
    emit_rendered(s, b, &r, "load", "no_metadata");
}

static void nested(bytes *t, const char *open, const char *close, int depth)
{
    repeat(t, open, (size_t)depth);
    repeat(t, close, (size_t)depth);
}

/* One entry's parts as the wrong JSON types, fields twice, names escaped or broken, and
 * fields the reader skips (any value, nested up to the limit). */
static void types(sink *s, const base *b)
{
    static const char *const shapes[] = { "\"4\"", "{}", "null", "4", "[4.0]", "[-4]", "[[4]]",
        "[\"4\"]", "[1e0]", "[04]", "[4,]", "[18446744073709551616]", "[-0]", "[+4]" };
    static const char *const offsets[] = { "[0]", "[0,16,32]", "[]", "[\"0\",16]", "{\"0\":16}",
        "[0,16.0]", "[-0,16]", "null", "[0,1e1]", "[0 16]" };
    static const char *const dtypes[] = { "32", "null", "[\"F32\"]", "\"f32\"", "\"F32 \"", "\"\"",
        "\"F32\\u0000\"", "\"FP32\"", "\"float32\"", "\"Q4\"", "F32" };
    static const char *const values[] = { "[]", "null", "\"x\"", "{}", "0", "true" };
    static const char *const extras[] = { "\"x\":null", "\"x\":true", "\"x\":false", "\"x\":-1.5e-7",
        "\"x\":1e999999", "\"x\":\"s\"", "\"x\":[]", "\"x\":{}", "\"x\":{\"x\":1,\"x\":2}",
        "\"dtype\":\"F32\"", "\"shape\":[1]", "\"data_offsets\":[0,0]" };
    static const char *const bad_extras[] = { "\"x\":tru", "\"x\":01", "\"x\":-", "\"x\":1.", "\"x\":.5",
        "\"x\":NaN", "\"x\":Infinity", "\"x\":[1,]", "\"x\":{\"a\"}", "\"x\":\"" };
    for (size_t e = 0; e < b->parsed.n_entries; e++) {
        render r = PLAIN;
        r.entry = (int)e;
        for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++, r.shape = NULL)
            r.shape = shapes[i], emit_rendered(s, b, &r, "refuse", "shape_of_a_wrong_type");
        for (size_t i = 0; i < sizeof offsets / sizeof *offsets; i++, r.offsets = NULL)
            r.offsets = offsets[i], emit_rendered(s, b, &r, "refuse", "offsets_of_a_wrong_type");
        for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++, r.dtype = NULL)
            r.dtype = dtypes[i], emit_rendered(s, b, &r, "refuse", "dtype_of_a_wrong_type");
        for (size_t i = 0; i < sizeof values / sizeof *values; i++, r.value = NULL)
            r.value = values[i], emit_rendered(s, b, &r, "refuse", "entry_of_a_wrong_type");
        for (size_t i = 0; i < sizeof extras / sizeof *extras; i++, r.extra = NULL)
            r.extra = extras[i], emit_rendered(s, b, &r, i < 9 ? "load" : "refuse", "an_extra_field");
        for (size_t i = 0; i < sizeof bad_extras / sizeof *bad_extras; i++, r.extra = NULL)
            r.extra = bad_extras[i], emit_rendered(s, b, &r, "refuse", "a_malformed_extra_field");
        r.dtype = "\"F\\u0033\\u0032\"";
        emit_rendered(s, b, &r, "load", "dtype_escaped");
        r.dtype = NULL;
        /* Nesting: the header is level 1, an entry 2, a field's value 3: 62 more fit in 64. */
        const struct { const char *open, *close; int depth; const char *label, *what; } deep[] = {
            { "[", "]", 62, "load", "arrays_nested_64_deep" }, { "[", "]", 63, "refuse", "arrays_nested_65_deep" },
            { "{\"a\":", "}", 62, "refuse", "objects_without_a_last_value" },
            { "[", "]", 100000, "refuse", "arrays_nested_100000_deep" },
        };
        for (size_t i = 0; i < sizeof deep / sizeof deep[0]; i++) {
            bytes extra = { 0 };
            puts_(&extra, "\"x\":");
            nested(&extra, deep[i].open, deep[i].close, deep[i].depth);
            r.extra = (const char *)extra.p;
            emit_rendered(s, b, &r, deep[i].label, deep[i].what);
            free(extra.p);
        }
        r.extra = NULL;
        char name[600];
        const oracle_entry *en = &b->parsed.entries[e];
        snprintf(name, sizeof name, "\"\\u%04x%.*s\"", (unsigned char)en->name[0], (int)en->name_len - 1, en->name + 1);
        r.name = name;
        emit_rendered(s, b, &r, (unsigned char)en->name[0] < 0x80 ? "load" : "refuse", "name_escaped");
        snprintf(name, sizeof name, "\"%.*s\\u0000\"", (int)en->name_len, en->name);
        emit_rendered(s, b, &r, "refuse", "name_with_a_nul");
        snprintf(name, sizeof name, "\"%.*s\xff\"", (int)en->name_len, en->name);
        emit_rendered(s, b, &r, "refuse", "name_not_utf8");
        snprintf(name, sizeof name, "\"%.*s\xc0\x80\"", (int)en->name_len, en->name);
        emit_rendered(s, b, &r, "refuse", "name_overlong_nul");
        const oracle_entry *other = &b->parsed.entries[(e + 1) % b->parsed.n_entries];
        snprintf(name, sizeof name, "\"%.*s\"", (int)other->name_len, other->name);
        emit_rendered(s, b, &r, "refuse", "name_twice");
    }
}

/* Data offsets: shared, shifted, reversed, past the end, out of order with gaps. */
static void offsets(sink *s, const base *b)
{
    const oracle_file *p = &b->parsed;
    char text[128];
    for (size_t e = 0; e < p->n_entries; e++) {
        render r = PLAIN;
        r.entry = (int)e;
        r.offsets = text;
        const oracle_entry *en = &p->entries[e];
        for (size_t o = 0; o < p->n_entries; o++) {
            snprintf(text, sizeof text, "[%llu,%llu]", (unsigned long long)p->entries[o].begin,
                     (unsigned long long)p->entries[o].end);
            if (o != e)
                emit_rendered(s, b, &r, "either", "offsets_of_another");
        }
        const long long shifts[] = { -4, -1, 1, 4 };
        for (size_t i = 0; i < 4; i++) {
            snprintf(text, sizeof text, "[%llu,%llu]", (unsigned long long)(en->begin + (uint64_t)shifts[i]),
                     (unsigned long long)(en->end + (uint64_t)shifts[i]));
            emit_rendered(s, b, &r, "either", "shifted");
        }
        const struct { uint64_t begin, end; const char *what; } wrong[] = {
            { en->end, en->begin, "reversed" }, { en->begin, UINT64_MAX, "end_2pow64_minus_1" },
            { UINT64_MAX - 3, UINT64_MAX, "at_2pow64" }, { p->data_len, p->data_len + en->end - en->begin, "past_the_end" },
            { en->begin, en->begin, "empty" }, { en->begin, en->end + 4, "too_long" },
        };
        for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
            snprintf(text, sizeof text, "[%llu,%llu]", (unsigned long long)wrong[i].begin,
                     (unsigned long long)wrong[i].end);
            emit_rendered(s, b, &r, "refuse", wrong[i].what);
        }
    }
    /* The tensors laid out in reverse order, 4 to 12 bytes apart, bytes after the last: loads. */
    oracle_entry *moved = malloc(p->n_entries * sizeof *moved);
    bytes data = { 0 };
    for (size_t k = p->n_entries; k-- > 0;) {
        moved[k] = p->entries[k];
        repeat(&data, "\xab\xcd\xef\x01", 1 + k % 3);
        moved[k].begin = data.n;
        put(&data, p->data + p->entries[k].begin, (size_t)(p->entries[k].end - p->entries[k].begin));
        moved[k].end = data.n;
    }
    puts_(&data, "trailing");
    bytes h = header_of(moved, p->n_entries, &PLAIN);
    emit(s, assemble(&h, h.n, data.p, data.n), "load", b, "reordered_with_gaps");
    free(h.p);
    free(data.p);
    free(moved);
    /* Tensors the model does not ask for: empty ones anywhere, other dtypes, broken ones. */
    const struct { const char *more, *label, *what; } more[] = {
        { ",\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}", "load", "an_empty_tensor_inside_another" },
        { ",\"e\":{\"dtype\":\"F64\",\"shape\":[2,0,3],\"data_offsets\":[0,0]}", "load", "an_empty_3d_tensor" },
        { ",\"e\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}", "refuse", "a_scalar_overlapping" },
        { ",\"e\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[99999,100003]}", "refuse", "an_unused_tensor_past_the_end" },
        { ",\"e\":{\"dtype\":\"Q4\",\"shape\":[0],\"data_offsets\":[0,0]}", "refuse", "an_unused_unknown_dtype" },
        { ",\"e\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,2],\"data_offsets\":[0,0]}", "refuse", "a_shape_that_overflows" },
        { ",\"e\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[0,0]}", "load", "a_huge_shape_with_a_zero" },
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        render r = PLAIN;
        r.more = more[i].more;
        emit_rendered(s, b, &r, more[i].label, more[i].what);
    }
}

/* A wanted tensor said to be another dtype or shape than it is. */
static void lies(sink *s, const base *b)
{
    static const char *const dtypes[] = { "\"F16\"", "\"BF16\"", "\"F64\"", "\"I32\"", "\"U32\"", "\"BOOL\"", "\"F8_E4M3\"" };
    char shape[128];
    for (size_t e = 0; e < b->parsed.n_entries; e++) {
        const oracle_entry *en = &b->parsed.entries[e];
        render r = PLAIN;
        r.entry = (int)e;
        for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++, r.dtype = NULL)
            r.dtype = dtypes[i], emit_rendered(s, b, &r, "refuse", "dtype_lie");
        unsigned long long d0 = en->dims[0], d1 = en->n_dims > 1 ? en->dims[1] : 1;
        r.shape = shape;
        if (en->n_dims == 1) {
            const char *forms[] = { "[%llu,1]", "[1,%llu]", "[%llu,1,1]", "[]", "[%llu,0]" };
            for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
                snprintf(shape, sizeof shape, forms[i], d0);
                emit_rendered(s, b, &r, "refuse", "shape_lie");
            }
            snprintf(shape, sizeof shape, "[%llu]", 2 * d0);
            emit_rendered(s, b, &r, "refuse", "shape_doubled");
            continue;
        }
        const char *forms[] = { "[%llu,%llu,1]", "[1,%llu,%llu]", "[%llu,%llu,0]", "[%llu,%llu,2]" };
        for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
            snprintf(shape, sizeof shape, forms[i], d0, d1);
            emit_rendered(s, b, &r, "refuse", "shape_lie");
        }
        snprintf(shape, sizeof shape, "[%llu,%llu]", d1, d0);
        if (d0 != d1)
            emit_rendered(s, b, &r, "refuse", "shape_transposed");
        snprintf(shape, sizeof shape, "[%llu]", d0 * d1);
        emit_rendered(s, b, &r, d1 == 1 ? "load" : "refuse", "shape_flattened");
    }
}

/* The data section filled with NaNs, infinities, subnormals and extremes: all load as they are. */
static void special(sink *s, const base *b)
{
    static const struct { uint32_t bits[4]; const char *what; } patterns[] = {
        { { 0x7FC00000u, 0xFFC00000u, 0x7FC12345u, 0xFFFFFFFFu }, "quiet_nans" },
        { { 0x7F800001u, 0x7FA00000u, 0xFF800001u, 0x7FBFFFFFu }, "signalling_nans" },
        { { 0x7F800000u, 0xFF800000u, 0x7F800000u, 0xFF800000u }, "infinities" },
        { { 0x00000001u, 0x807FFFFFu, 0x00400000u, 0x80000001u }, "subnormals" },
        { { 0x80000000u, 0x00000000u, 0x80000000u, 0x80000000u }, "signed_zeros" },
        { { 0x7F7FFFFFu, 0xFF7FFFFFu, 0x00800000u, 0x80800000u }, "extremes" },
        { { 0x7F800000u, 0xFF800000u, 0x7FC00000u, 0x00000001u }, "mixed" },
    };
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++)
        for (int rotate = 0; rotate < 4; rotate++) {
            unsigned char *data = malloc(b->parsed.data_len + 1);
            for (size_t k = 0; k + 4 <= b->parsed.data_len; k += 4) {
                uint32_t v = patterns[i].bits[(k / 4 + (size_t)rotate) % 4];
                for (int byte = 0; byte < 4; byte++)
                    data[k + (size_t)byte] = (unsigned char)(v >> (8 * byte));
            }
            emit(s, rendered(b, &PLAIN, data), "load", b, patterns[i].what);
            free(data);
        }
}

/* Huge headers: long padding, a long metadata value, a long name, thousands of tensors. */
static void huge(sink *s, const base *b)
{
    render r = PLAIN;
    r.pad = 200000;
    emit_rendered(s, b, &r, "load", "200000_spaces");
    r.pad = -1;
    bytes text = { 0 };
    puts_(&text, "\"__metadata__\":{\"long\":\"");
    repeat(&text, "\xe2\x9c\x93", 40000);
    puts_(&text, "\"}");
    r.metadata = (const char *)text.p;
    emit_rendered(s, b, &r, "load", "a_long_metadata_value");
    r.metadata = NULL;
    free(text.p);
    text = (bytes){ 0 };
    puts_(&text, ",\"");
    repeat(&text, "n", 60000);
    puts_(&text, "\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}");
    r.more = (const char *)text.p;
    emit_rendered(s, b, &r, "load", "a_long_name");
    free(text.p);
    text = (bytes){ 0 };
    for (int i = 0; i < 2000; i++)
        putf(&text, ",\"t%d\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}", i);
    r.more = (const char *)text.p;
    emit_rendered(s, b, &r, "load", "2000_more_tensors");
    putf(&text, ",\"t17\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}");
    r.more = (const char *)text.p;
    emit_rendered(s, b, &r, "refuse", "2000_tensors_one_twice");
    free(text.p);
}

typedef void (*family_fn)(sink *s, const base *b);
static const family_fn FAMILIES[N_FAMILIES] = {
    truncated, lengths, padding, json, types, offsets, lies, special, huge,
};

/* ---- random mutations ------------------------------------------------------------------------ */

static uint64_t next(uint64_t *state)   /* splitmix64 */
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* One mutation of f in place: a flipped bit, a byte set (to JSON punctuation or anything), a
 * slice of the header removed or repeated (length fixed up or not), bytes appended, the length
 * nudged, or the header of another base put before this data. */
static void mutate(bytes *f, uint64_t *rng)
{
    static const char json_bytes[] = "{}[]\":,0123456789 \\u-.eE\x00\x7f\xff";
    uint64_t length = 0;
    for (int i = 7; i >= 0 && f->n >= 8; i--)
        length = length << 8 | f->p[i];
    size_t header_end = f->n >= 8 && length <= f->n - 8 ? 8 + (size_t)length : f->n;
    uint64_t r = next(rng);
    size_t at = (size_t)(next(rng) % f->n), in_header = header_end > 8 ? 8 + (size_t)(next(rng) % (header_end - 8)) : 0;
    switch (r % 6) {
    case 0: f->p[at] ^= (unsigned char)(1u << (r >> 8) % 8); break;
    case 1: f->p[in_header] = r & 256 ? (unsigned char)(r >> 16) : (unsigned char)json_bytes[(r >> 16) % (sizeof json_bytes - 1)]; break;
    case 2: case 3: {
        size_t len = 1 + (size_t)((r >> 8) % 16);
        if (in_header + len > header_end)
            len = header_end - in_header;
        bytes out = { 0 };
        put(&out, f->p, in_header + (r % 6 == 2 ? len : 0));
        put(&out, f->p + in_header, f->n - in_header);
        if (r % 6 == 3)
            memmove(out.p + in_header, out.p + in_header + len, out.n - in_header - len), out.n -= len;
        uint64_t fixed = length + (r % 6 == 2 ? len : -(uint64_t)len);
        for (int i = 0; i < 8 && (r >> 20 & 1); i++)
            out.p[i] = (unsigned char)(fixed >> (8 * i));
        free(f->p);
        *f = out;
        break;
    }
    case 4: for (size_t i = 0; i < 1 + (r >> 8) % 16; i++) { unsigned char c = (unsigned char)next(rng); put(f, &c, 1); } break;
    default: f->p[(r >> 8) % (f->n < 8 ? f->n : 8)] ^= (unsigned char)(1u << (r >> 16) % 8); break;
    }
}

static void random_mutations(sink *s, long count, uint64_t seed)
{
    uint64_t rng = seed;
    s->family = N_FAMILIES;
    for (long i = 0; i < count; i++) {
        const base *b = &bases[next(&rng) % (uint64_t)n_bases];
        bytes f = { 0 };
        put(&f, b->file.p, b->file.n);
        int times = 1 + (int)(next(&rng) % 4);
        for (int k = 0; k < times && f.n > 0; k++)
            mutate(&f, &rng);
        char what[32];
        snprintf(what, sizeof what, "%d_changes", times);
        write_variant(s, &f, "either", b->kind, what);
        free(f.p);
    }
}

/* ---- main --------------------------------------------------------------------------------- */

static void run_families(sink *s)
{
    for (int f = 0; f < N_FAMILIES; f++) {
        s->family = (enum family)f;
        s->seen[f] = 0;
        for (int i = 0; i < n_bases; i++)
            FAMILIES[f](s, &bases[i]);
    }
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: gen_corpus FIXTURE_DIR OUT_DIR COUNT [SEED]\n");
        return 2;
    }
    long count = atol(argv[3]);
    uint64_t seed = argc == 5 ? strtoull(argv[4], NULL, 10) : 20240713;
    if (count < 2 * N_FAMILIES)
        die("COUNT is too small: at least two files per family");
    mkdir(argv[2], 0777);
    const char *kinds[] = { "rnn", "lstm", "gru" };
    char path[4096];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s_cell.safetensors", argv[1], kinds[i]);
        add_base(kinds[i], path);
    }
    make_saved_bases(argv[2]);
    sink s = { .dir = argv[2], .counting = true };
    run_families(&s);
    long share = (count - count / 4) / N_FAMILIES, kept = 0;
    for (int f = 0; f < N_FAMILIES; f++) {
        s.total[f] = s.seen[f];
        s.stride[f] = (s.total[f] + share - 1) / share;
        kept += (s.total[f] + s.stride[f] - 1) / s.stride[f];
    }
    s.counting = false;
    run_families(&s);
    random_mutations(&s, count - kept, seed);
    for (int i = 0; i < n_bases; i++) {
        free(bases[i].file.p);
        oracle_file_free(&bases[i].parsed);
    }
    printf("gen_corpus: %ld files in %s (%ld from the families, %ld random)\n", s.written, argv[2], kept,
           count - kept);
    return 0;
}
