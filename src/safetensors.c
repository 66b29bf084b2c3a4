/* safetensors.c: the safetensors format, tg_save and tg_load. Saving writes the JSON header
 * and the values (little-endian float32, byte by byte) to a temporary file and renames it
 * into place; loading reads the header with the JSON reader (src/json.c) against the
 * format's schema, checks every tensor's dtype, shape and byte range against the file and
 * the model, and only then hands the values over. */
#define _POSIX_C_SOURCE 200809L /* open, fstat, fcntl, fdopen */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "files.h"
#include "json.h"
#include "safetensors.h"
#include "utf8.h"
#include "tape.h"

_Static_assert(sizeof(float) == 4 && sizeof(uint32_t) == 4, "float32 must be 4 bytes");

#define LENGTH_BYTES 8                 /* the u64 header length that opens a file */
#define HEADER_MAX_BYTES 100000000u    /* a longer header is refused (as the reference reader does) */
#define DIMS_SHOWN 8                   /* dimensions of a shape quoted in a message */
#define METADATA_KEY "__metadata__"

/* ---- errors ----------------------------------------------------------------------------- */

static const char *describe(int error) { return error ? strerror(error) : "unknown error"; }

/* A name from a file as a message can show it: at most TG_NAME_SHOWN bytes (cut at a character
 * boundary, "..." added), control characters as '?'. out holds TG_NAME_SHOWN + 4 bytes. */
static const char *shown_name(const char *name, size_t len, char *out)
{
    size_t n = len;
    if (n > TG_NAME_SHOWN) {
        n = TG_NAME_SHOWN;
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

static void put_le(unsigned char *out, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        out[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *in, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)in[i] << (8 * i);
    return v;
}

static void put_f32_le(unsigned char *out, float value)
{
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    put_le(out, bits, 4);
}

static float get_f32_le(const unsigned char *in)
{
    uint32_t bits = (uint32_t)get_le(in, 4);
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
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
    bool has_metadata;
    tg_metadata_entry *meta;  /* the metadata's pairs, in the strings store */
    size_t n_meta, meta_capacity;
    const entry **by_name;    /* the entries sorted by name, for duplicates and look-ups */
} header;

static void header_free(header *h)
{
    free(h->entries);
    free(h->dims);
    free(h->strings);
    free(h->meta);
    free(h->by_name);
}

bool tg_grow_array(void **items, size_t *capacity, size_t count, size_t size)
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

/* ---- the header's schema -------------------------------------------------------------------
 * { "__metadata__": { string: string, ... },                          (optional, ignored)
 *   NAME: { "dtype": "F32", "shape": [d, ...], "data_offsets": [begin, end] }, ... }     */

/* A whole number >= 0 for `what` of the tensor being parsed. */
static bool parse_count(tg_json *j, const entry *e, const char *what, uint64_t *value)
{
    tg_json_next(j);
    const char *token = j->p;
    bool whole;
    if (!tg_json_number(j, &whole, value))
        return false;
    if (!whole) {
        char name[TG_NAME_SHOWN + 4];
        return tg_json_fail(j, "tensor %s: %s holds %.*s, not a whole number from 0 to 2^64 - 1",
                            shown_name(e->name, e->name_len, name), what,
                            (int)(j->p - token > 24 ? 24 : j->p - token), token);
    }
    return true;
}

static bool key_is(const char *key, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(key, word, len) == 0;
}

/* One "key": "value" pair of the metadata, kept in the header (the strings store holds the
 * decoded text, which the JSON reader ends with a NUL). */
static bool metadata_member(tg_json *j, const char *key, size_t key_len, void *context, int depth)
{
    (void)key_len, (void)depth;
    header *h = context;
    if (tg_json_next(j) != '"')
        return tg_json_fail(j, "\"" METADATA_KEY "\" must map names to strings");
    const char *s;
    size_t len;
    if (!tg_json_string(j, &s, &len))
        return false;
    if (!tg_grow_array((void **)&h->meta, &h->meta_capacity, h->n_meta, sizeof *h->meta))
        return tg_json_fail(j, "out of memory");
    h->meta[h->n_meta++] = (tg_metadata_entry){ key, s };
    return true;
}

/* The fields of the tensor being parsed, and which of them were seen. */
typedef struct tensor_fields {
    header *h;                /* the header it goes into */
    entry *e;
    bool dtype, shape, offsets;
    int n_offsets;
} tensor_fields;

static bool shape_element(tg_json *j, void *context, int depth)
{
    (void)depth;
    tensor_fields *f = context;
    header *h = f->h;
    uint64_t dim;
    if (!parse_count(j, f->e, "shape", &dim))
        return false;
    if (!tg_grow_array((void **)&h->dims, &h->dims_capacity, h->n_dims, sizeof *h->dims))
        return tg_json_fail(j, "out of memory");
    h->dims[h->n_dims++] = dim;
    f->e->n_dims++;
    f->e->count = saturating_mul(f->e->count, dim);
    return true;
}

static bool offset_element(tg_json *j, void *context, int depth)
{
    (void)depth;
    tensor_fields *f = context;
    char name[TG_NAME_SHOWN + 4];
    if (f->n_offsets == 2)
        return tg_json_fail(j, "tensor %s: data_offsets must be [begin, end]",
                            shown_name(f->e->name, f->e->name_len, name));
    uint64_t *offset = f->n_offsets == 0 ? &f->e->begin : &f->e->end;
    f->n_offsets++;
    return parse_count(j, f->e, "data_offsets", offset);
}

static bool parse_dtype(tg_json *j, entry *e)
{
    const char *s;
    size_t len;
    if (!tg_json_string(j, &s, &len))
        return false;
    for (int d = 0; d < DTYPE_COUNT; d++)
        if (key_is(s, len, DTYPES[d].name)) {
            e->dtype = d;
            return true;
        }
    char name[TG_NAME_SHOWN + 4], type[TG_NAME_SHOWN + 4];
    return tg_json_fail(j, "tensor %s has the unknown dtype \"%s\"",
                        shown_name(e->name, e->name_len, name), shown_name(s, len, type));
}

/* Marks a field of e as seen; false when it was seen before. */
static bool first_time(tg_json *j, const entry *e, bool *seen, const char *field)
{
    char name[TG_NAME_SHOWN + 4];
    if (*seen)
        return tg_json_fail(j, "tensor %s: \"%s\" appears twice",
                            shown_name(e->name, e->name_len, name), field);
    *seen = true;
    return true;
}

static bool parse_shape(tg_json *j, tensor_fields *f, int depth)
{
    f->e->first_dim = f->h->n_dims;
    f->e->n_dims = 0;
    f->e->count = 1;
    return tg_json_array(j, depth, shape_element, f);
}

static bool parse_offsets(tg_json *j, tensor_fields *f, int depth)
{
    if (!tg_json_array(j, depth, offset_element, f))
        return false;
    if (f->n_offsets == 2)
        return true;
    char name[TG_NAME_SHOWN + 4];
    return tg_json_fail(j, "tensor %s: data_offsets must be [begin, end]",
                        shown_name(f->e->name, f->e->name_len, name));
}

static bool tensor_member(tg_json *j, const char *key, size_t key_len, void *context, int depth)
{
    tensor_fields *f = context;
    if (key_is(key, key_len, "dtype"))
        return first_time(j, f->e, &f->dtype, "dtype") && parse_dtype(j, f->e);
    if (key_is(key, key_len, "shape"))
        return first_time(j, f->e, &f->shape, "shape") && parse_shape(j, f, depth);
    if (key_is(key, key_len, "data_offsets"))
        return first_time(j, f->e, &f->offsets, "data_offsets") && parse_offsets(j, f, depth);
    return tg_json_skip_value(j, depth);   /* a field this reader does not use */
}

static bool parse_tensor(tg_json *j, header *h, const char *name, size_t name_len, int depth)
{
    if (!tg_grow_array((void **)&h->entries, &h->entries_capacity, h->n_entries, sizeof *h->entries))
        return tg_json_fail(j, "out of memory");
    entry *e = &h->entries[h->n_entries++];
    *e = (entry){ .name = name, .name_len = name_len, .count = 1 };
    tensor_fields f = { .h = h, .e = e };
    char shown[TG_NAME_SHOWN + 4];
    if (tg_json_next(j) != '{')
        return tg_json_fail(j, "tensor %s must be an object with dtype, shape and data_offsets",
                            shown_name(name, name_len, shown));
    if (!tg_json_object(j, depth, tensor_member, &f))
        return false;
    const char *missing = !f.dtype ? "dtype" : !f.shape ? "shape" : !f.offsets ? "data_offsets" : NULL;
    if (missing)
        return tg_json_fail(j, "tensor %s has no %s", shown_name(name, name_len, shown), missing);
    return true;
}

static bool header_member(tg_json *j, const char *key, size_t key_len, void *context, int depth)
{
    header *h = context;
    if (!key_is(key, key_len, METADATA_KEY))
        return parse_tensor(j, h, key, key_len, depth);
    if (h->has_metadata)
        return tg_json_fail(j, "\"" METADATA_KEY "\" appears twice");
    h->has_metadata = true;
    if (tg_json_next(j) != '{')
        return tg_json_fail(j, "\"" METADATA_KEY "\" must be an object");
    return tg_json_object(j, depth, metadata_member, h);
}

/* Parses text[0..len-1] into h; false with the problem in j->problem. */
static bool parse_json(tg_json *j, header *h, const char *text, size_t len)
{
    h->strings = malloc(len ? len : 1);
    tg_json_start(j, text, len, h->strings);
    if (!h->strings)
        return tg_json_fail(j, "out of memory");
    if (tg_json_next(j) != '{')
        return j->p == j->end ? tg_json_fail(j, "the header is empty")
                              : tg_json_fail(j, "the header must be a JSON object");
    return tg_json_object(j, 1, header_member, h) && tg_json_finish(j);
}

/* Parses the header text into h: 0, or -1 with the problem in err. */
static int parse_header(header *h, const char *text, size_t len, const char *path, tg_error *err)
{
    tg_json j;
    return parse_json(&j, h, text, len) ? 0 : tg_error_set(err, path, "%s", j.problem);
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
static int check_ranges(const header *h, uint64_t data_size, const char *path, tg_error *err)
{
    char name[TG_NAME_SHOWN + 4], shape[192];
    for (size_t i = 0; i < h->n_entries; i++) {
        const entry *e = &h->entries[i];
        const char *who = shown_name(e->name, e->name_len, name);
        if (e->begin > e->end || e->end > data_size)
            return tg_error_set(err, path, "tensor %s: data_offsets [%llu, %llu] are not a range "
                                "inside the data section (%llu bytes)", who,
                                (unsigned long long)e->begin, (unsigned long long)e->end,
                                (unsigned long long)data_size);
        uint64_t bytes = saturating_mul(e->count, DTYPES[e->dtype].bytes);
        if (e->end - e->begin != bytes)
            return tg_error_set(err, path, "tensor %s: data_offsets [%llu, %llu] hold %llu bytes, "
                                "but %s %s needs %llu", who, (unsigned long long)e->begin,
                                (unsigned long long)e->end, (unsigned long long)(e->end - e->begin),
                                DTYPES[e->dtype].name, file_shape(h, e, shape, sizeof shape),
                                (unsigned long long)bytes);
    }
    return 0;
}

/* No two tensors share bytes of the data section (empty tensors share none). Sorted by
 * where they begin, each range must begin at or after the end of the one before it. */
static int check_overlaps(const header *h, const char *path, tg_error *err)
{
    const entry **sorted = malloc((h->n_entries ? h->n_entries : 1) * sizeof *sorted);
    if (!sorted)
        return tg_error_set(err, path, "out of memory");
    for (size_t i = 0; i < h->n_entries; i++)
        sorted[i] = &h->entries[i];
    qsort(sorted, h->n_entries, sizeof *sorted, compare_begins);
    const entry *prev = NULL;
    int rc = 0;
    for (size_t i = 0; i < h->n_entries && rc == 0; i++) {
        const entry *e = sorted[i];
        if (e->begin == e->end)
            continue;
        if (prev && e->begin < prev->end) {
            char a[TG_NAME_SHOWN + 4], b[TG_NAME_SHOWN + 4];
            rc = tg_error_set(err, path, "tensors %s and %s overlap in the data section ([%llu, "
                              "%llu] and [%llu, %llu])", shown_name(prev->name, prev->name_len, a),
                              shown_name(e->name, e->name_len, b), (unsigned long long)prev->begin,
                              (unsigned long long)prev->end, (unsigned long long)e->begin,
                              (unsigned long long)e->end);
        }
        prev = e;
    }
    free(sorted);
    return rc;
}

/* No name appears twice; leaves h->by_name sorted for find_entry. */
static int check_names(header *h, const char *path, tg_error *err)
{
    h->by_name = malloc((h->n_entries ? h->n_entries : 1) * sizeof *h->by_name);
    if (!h->by_name)
        return tg_error_set(err, path, "out of memory");
    for (size_t i = 0; i < h->n_entries; i++)
        h->by_name[i] = &h->entries[i];
    qsort(h->by_name, h->n_entries, sizeof *h->by_name, compare_names);
    for (size_t i = 1; i < h->n_entries; i++)
        if (compare_names(&h->by_name[i - 1], &h->by_name[i]) == 0) {
            char name[TG_NAME_SHOWN + 4];
            const entry *e = h->by_name[i];
            return tg_error_set(err, path, "tensor %s appears twice in the header",
                                shown_name(e->name, e->name_len, name));
        }
    return 0;
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

static bool shape_fits(const header *h, const entry *e, const tg_wanted *w)
{
    const uint64_t *d = h->dims + e->first_dim;
    bool as_2d = e->n_dims == 2 && d[0] == (uint64_t)w->rows && d[1] == (uint64_t)w->cols;
    bool as_1d = e->n_dims == 1 && d[0] == (uint64_t)w->rows && w->cols == 1;
    return w->rule == TG_SHAPE_2D ? as_2d : w->rule == TG_SHAPE_1D ? as_1d : as_2d || as_1d;
}

/* Each wanted tensor is in the header as F32 with the model's shape (one marked absent is not). */
static int check_wanted(const header *h, tg_wanted *wants, int n, const char *who, const char *path,
                        tg_error *err)
{
    for (int i = 0; i < n; i++) {
        tg_wanted *w = &wants[i];
        const entry *e = find_entry(h, w->name);
        char name[TG_NAME_SHOWN + 4], shape[192];
        shown_name(w->name, strlen(w->name), name);
        if (w->rule == TG_SHAPE_ABSENT) {
            if (e)
                return tg_error_set(err, path, "holds %s, which %s does not have", name, who);
            continue;
        }
        if (!e)
            return tg_error_set(err, path, "no tensor named %s", name);
        if (e->dtype != DTYPE_F32)
            return tg_error_set(err, path, "tensor %s has dtype %s; only F32 can be loaded", name,
                                DTYPES[e->dtype].name);
        if (!shape_fits(h, e, w)) {
            char want_shape[32];
            if (w->rule == TG_SHAPE_1D)
                snprintf(want_shape, sizeof want_shape, "[%d]", w->rows);
            else
                snprintf(want_shape, sizeof want_shape, "[%d, %d]", w->rows, w->cols);
            return tg_error_set(err, path, "tensor %s has shape %s, %s needs %s", name,
                                file_shape(h, e, shape, sizeof shape), who, want_shape);
        }
        w->begin = e->begin;
    }
    return 0;
}

/* ---- reading the file ---------------------------------------------------------------------- */

/* What a file that is not a regular one is, for a message. */
static const char *file_kind(mode_t mode)
{
    return S_ISDIR(mode) ? "a directory" : S_ISFIFO(mode) ? "a FIFO" : S_ISCHR(mode) ? "a character device"
         : S_ISBLK(mode) ? "a block device" : S_ISSOCK(mode) ? "a socket" : "of an unknown kind";
}

/* Opens path for reading, refusing anything but a regular file. It is opened without
 * blocking, so that a FIFO with no writer cannot hang the call, and checked before any byte
 * is read. NULL, with err saying why, on failure. */
static FILE *open_regular_file(const char *path, tg_error *err)
{
    errno = 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        tg_error_set(err, path, "cannot open: %s", describe(errno));
        return NULL;
    }
    struct stat st;
    FILE *file = NULL;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fstat(fd, &st) != 0)
        tg_error_set(err, path, "cannot open: %s", describe(errno));
    else if (!S_ISREG(st.st_mode))
        tg_error_set(err, path, "cannot open: not a regular file (%s)", file_kind(st.st_mode));
    else if (fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 || !(file = fdopen(fd, "rb")))
        tg_error_set(err, path, "cannot open: %s", describe(errno));
    if (!file)
        close(fd);
    return file;
}

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
    *length = get_le(prefix, LENGTH_BYTES);
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
static int read_values(FILE *file, const char *path, uint64_t data_start, tg_wanted *wants, int n,
                       tg_error *err)
{
    for (int i = 0; i < n; i++) {
        size_t count = (size_t)wants[i].rows * (size_t)wants[i].cols;
        unsigned char *bytes = (unsigned char *)wants[i].values;
        if (wants[i].rule == TG_SHAPE_ABSENT)
            continue;
        if (read_at(file, path, data_start + wants[i].begin, bytes, count * 4, err) != 0)
            return -1;
        for (size_t k = 0; k < count; k++)
            wants[i].values[k] = get_f32_le(bytes + 4 * k);
    }
    return 0;
}

static int check_and_read(FILE *file, const char *path, const char *who, tg_wanted *wants, int n,
                          tg_error *err)
{
    uint64_t size = 0, length = 0;
    char *text = NULL;
    header h = { 0 };
    int rc = file_size(file, path, &size, err);
    if (rc == 0)
        rc = read_header_text(file, path, size, &text, &length, err);
    if (rc == 0)
        rc = parse_header(&h, text, (size_t)length, path, err);
    if (rc == 0)
        rc = check_names(&h, path, err);
    if (rc == 0)
        rc = check_ranges(&h, size - LENGTH_BYTES - length, path, err);
    if (rc == 0)
        rc = check_overlaps(&h, path, err);
    if (rc == 0)
        rc = check_wanted(&h, wants, n, who, path, err);
    if (rc == 0)
        rc = read_values(file, path, LENGTH_BYTES + length, wants, n, err);
    header_free(&h);
    free(text);
    return rc;
}

/* One buffer for the values of all wants (their rows and cols set); NULL if out of memory. */
static float *give_room(tg_wanted *wants, int n)
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

float *tg_safetensors_read(const char *path, const char *who, tg_wanted *wants, int n, tg_error *err)
{
    float *room = give_room(wants, n);
    if (!room) {
        tg_error_set(err, path, "out of memory");
        return NULL;
    }
    FILE *file = open_regular_file(path, err);
    int rc = file ? check_and_read(file, path, who, wants, n, err) : -1;
    if (file)
        fclose(file);
    if (rc == 0)
        return room;
    free(room);
    return NULL;
}

/* The metadata of a parsed header as one block: the tg_metadata, its entries and their text. */
static tg_metadata *copy_metadata(const header *h)
{
    size_t text = 0;
    for (size_t i = 0; i < h->n_meta; i++)
        text += strlen(h->meta[i].key) + strlen(h->meta[i].value) + 2;
    tg_metadata *md = malloc(sizeof *md + h->n_meta * sizeof(tg_metadata_entry) + text);
    if (!md)
        return NULL;
    tg_metadata_entry *entries = (tg_metadata_entry *)(md + 1);
    char *out = (char *)(entries + h->n_meta);
    for (size_t i = 0; i < h->n_meta; i++) {
        const char *pair[2] = { h->meta[i].key, h->meta[i].value };
        for (int k = 0; k < 2; k++) {
            size_t len = strlen(pair[k]) + 1;
            memcpy(out, pair[k], len);
            pair[k] = out;
            out += len;
        }
        entries[i] = (tg_metadata_entry){ pair[0], pair[1] };
    }
    *md = (tg_metadata){ (int)h->n_meta, entries };
    return md;
}

tg_metadata *tg_load_metadata(const char *path, tg_error *err)
{
    if (!path) {
        tg_error_set(err, "tg_load_metadata", "path is NULL");
        return NULL;
    }
    FILE *file = open_regular_file(path, err);
    uint64_t size = 0, length = 0;
    char *text = NULL;
    header h = { 0 };
    int rc = file ? file_size(file, path, &size, err) : -1;
    if (rc == 0)
        rc = read_header_text(file, path, size, &text, &length, err);
    if (rc == 0)
        rc = parse_header(&h, text, (size_t)length, path, err);
    tg_metadata *md = rc == 0 ? copy_metadata(&h) : NULL;
    if (rc == 0 && !md)
        tg_error_set(err, path, "out of memory");
    else if (md)
        tg_error_clear(err);
    header_free(&h);
    free(text);
    if (file)
        fclose(file);
    return md;
}

const char *tg_metadata_get(const tg_metadata *md, const char *key)
{
    for (int i = 0; md && key && i < md->n; i++)
        if (strcmp(md->entries[i].key, key) == 0)
            return md->entries[i].value;
    return NULL;
}

void tg_metadata_free(tg_metadata *md) { free(md); }

/* ---- writing a file ------------------------------------------------------------------------ */

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

/* The JSON header for tensors[0..n-1] stored one after another, with the metadata "format":
 * "pt" and then meta[0..n_meta-1], padded with spaces to a multiple of 8 bytes so that the
 * data section starts aligned. */
static void build_header(growing_text *t, const tg_saved *tensors, int n,
                         const tg_metadata_entry *meta, int n_meta)
{
    append_text(t, "{\"" METADATA_KEY "\":{\"format\":\"pt\"");
    for (int i = 0; i < n_meta; i++) {
        append_text(t, ",");
        append_json_string(t, meta[i].key);
        append_text(t, ":");
        append_json_string(t, meta[i].value);
    }
    append_text(t, "}");
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const tg_saved *s = &tensors[i];
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

static bool write_checkpoint(FILE *file, const growing_text *header_text, const tg_saved *tensors, int n)
{
    unsigned char prefix[LENGTH_BYTES];
    put_le(prefix, header_text->len, LENGTH_BYTES);
    if (!write_all(file, prefix, sizeof prefix) || !write_all(file, header_text->s, header_text->len))
        return false;
    for (int i = 0; i < n; i++)
        if (!write_values(file, tensors[i].data, (size_t)tensors[i].rows * (size_t)tensors[i].cols))
            return false;
    return true;
}

typedef struct checkpoint_file {
    const growing_text *header_text;
    const tg_saved *tensors;
    int n;
} checkpoint_file;

static bool write_checkpoint_file(FILE *file, void *ctx)
{
    checkpoint_file *c = ctx;
    return write_checkpoint(file, c->header_text, c->tensors, c->n);
}

/* In one piece (src/files.c): path is replaced only when the whole new file is written. */
int tg_safetensors_save_with_metadata(const char *path, const tg_saved *tensors, int n,
                                      const tg_metadata_entry *meta, int n_meta, tg_error *err)
{
    growing_text header_text = { 0 };
    build_header(&header_text, tensors, n, meta, n_meta);
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

int tg_safetensors_save(const char *path, const tg_saved *tensors, int n, tg_error *err)
{
    return tg_safetensors_save_with_metadata(path, tensors, n, NULL, 0, err);
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
        if (!tg_is_utf8(name))
            return tg_error_set(err, path, "tensors[%d]: the name is not UTF-8", i);
        if (strcmp(name, METADATA_KEY) == 0)
            return tg_error_set(err, path, "tensors[%d]: \"" METADATA_KEY "\" is not a tensor name", i);
        if (!t || !t->data)
            return tg_error_set(err, path, "tensors[%d] (%.*s) has no tensor data", i, TG_NAME_SHOWN, name);
        if (!tg_size_ok(t->rows, t->cols))
            return tg_error_set(err, path, "tensors[%d] (%.*s) has a bad size %dx%d", i, TG_NAME_SHOWN, name,
                        t->rows, t->cols);
        for (int k = 0; k < i; k++)
            if (strcmp(tensors[k].name, name) == 0)
                return tg_error_set(err, path, "tensors[%d] and tensors[%d] are both named %.*s", k, i,
                            TG_NAME_SHOWN, name);
    }
    return 0;
}

/* The checks tg_save and tg_load (call) make, then room for n items of `size` bytes, to
 * free; NULL with err set when a check fails or memory runs out. */
static void *checked_room(const char *call, const char *path, const tg_named *tensors, int n,
                          size_t size, tg_error *err)
{
    if (!path) {
        tg_error_set(err, call, "path is NULL");
        return NULL;
    }
    if (check_named(path, tensors, n, err) != 0)
        return NULL;
    void *room = malloc((n > 0 ? (size_t)n : 1) * size);
    if (!room)
        tg_error_set(err, path, "out of memory");
    return room;
}

int tg_save(const char *path, const tg_named *tensors, int n, tg_error *err)
{
    tg_saved *list = checked_room("tg_save", path, tensors, n, sizeof *list, err);
    if (!list)
        return -1;
    for (int i = 0; i < n; i++) {
        const tg_tensor *t = tensors[i].tensor;
        list[i] = (tg_saved){ tensors[i].name, t->rows, t->cols, 2, t->data };
    }
    int rc = tg_safetensors_save(path, list, n, err);
    free(list);
    return rc;
}

int tg_load(const char *path, const tg_named *tensors, int n, tg_error *err)
{
    tg_wanted *wants = checked_room("tg_load", path, tensors, n, sizeof *wants, err);
    if (!wants)
        return -1;
    for (int i = 0; i < n; i++) {
        const tg_tensor *t = tensors[i].tensor;
        wants[i] = (tg_wanted){ .name = tensors[i].name, .rows = t->rows, .cols = t->cols,
                                .rule = TG_SHAPE_2D_OR_COLUMN };
    }
    float *values = tg_safetensors_read(path, "the model", wants, n, err);
    for (int i = 0; values && i < n; i++)
        memcpy(tensors[i].tensor->data, wants[i].values,
               (size_t)wants[i].rows * (size_t)wants[i].cols * sizeof(float));
    free(values);
    free(wants);
    if (!values)
        return -1;
    tg_error_clear(err);
    return 0;
}
