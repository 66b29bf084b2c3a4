/* charlm_data.h: charlm's text (examples/charlm.c): reading it (a file, or the project's docs),
 * its vocabulary (the distinct bytes, class i the i-th of them), encoding it as classes (with
 * a rule for bytes a resumed run's vocabulary lacks) and holding out its end for validation. */
#ifndef TAPEGRAD_EXAMPLES_CHARLM_DATA_H
#define TAPEGRAD_EXAMPLES_CHARLM_DATA_H

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum {
    N_BYTES = 256,
    MAX_TEXT_BYTES = 1 << 30,
    UNKNOWN_SHOWN = 8,                     /* unknown bytes named in a message */
};
#define DEFAULT_TEXT "docs/*.md"
#define VAL_SHARE 0.1            /* of the text, held out for validation without --val */

/* The distinct bytes of a text, in increasing order: class i is the byte byte[i]. */
typedef struct vocab {
    int size;                      /* V */
    unsigned char byte[N_BYTES];   /* class -> byte */
    int class_of[N_BYTES];         /* byte -> class, or -1 when not in the vocabulary */
} vocab;

static void vocab_from_mask(vocab *v, const bool present[N_BYTES])
{
    v->size = 0;
    for (int b = 0; b < N_BYTES; b++) {
        v->class_of[b] = present[b] ? v->size : -1;
        if (present[b])
            v->byte[v->size++] = (unsigned char)b;
    }
}

/* A byte for messages: its value, and the character when it is printable ASCII. */
static void describe_byte(char out[16], int byte)
{
    if (byte > ' ' && byte < 127)
        snprintf(out, 16, "%d ('%c')", byte, byte);
    else
        snprintf(out, 16, "%d", byte);
}

/* The text, read into a growing buffer; encode() then replaces each byte by its class. */
typedef struct text {
    unsigned char *data;
    size_t n, room;
    char name[256];                /* what it is, for messages */
} text;

/* Appends the file at path to t. False (and a message) on failure. */
static bool append_file(text *t, const char *path)
{
    FILE *file = fopen(path, "rb");
    if (!file) {
        complain("%s: cannot open: %s", path, strerror(errno));
        return false;
    }
    bool ok = true;
    size_t got;
    do {
        if (t->n == t->room) {
            size_t room = t->room ? 2 * t->room : 65536;
            unsigned char *data = room <= MAX_TEXT_BYTES ? realloc(t->data, room) : NULL;
            if (!data) {
                complain("%s: too big: over %d bytes, or out of memory", path, MAX_TEXT_BYTES);
                ok = false;
                break;
            }
            t->data = data;
            t->room = room;
        }
        got = fread(t->data + t->n, 1, t->room - t->n, file);
        t->n += got;
    } while (got > 0);
    if (ok && ferror(file)) {
        complain("%s: cannot read: %s", path, strerror(errno));
        ok = false;
    }
    fclose(file);
    return ok;
}

/* Reads path, or when it is NULL every DEFAULT_TEXT file in sorted order. False (and a
 * message) on failure. */
static bool read_text(text *t, const char *path)
{
    if (path) {
        snprintf(t->name, sizeof t->name, "%s", path);
        return append_file(t, path);
    }
    glob_t found;
    if (glob(DEFAULT_TEXT, 0, NULL, &found) != 0) {
        globfree(&found);
        complain("no --text given and no %s here; run from the repository root or pass "
                 "--text FILE", DEFAULT_TEXT);
        return false;
    }
    bool ok = true;
    for (size_t i = 0; ok && i < found.gl_pathc; i++)
        ok = append_file(t, found.gl_pathv[i]);
    snprintf(t->name, sizeof t->name, "%s (%zu files)", DEFAULT_TEXT, found.gl_pathc);
    globfree(&found);
    return ok;
}

/* The vocabulary of a new run: every byte that t or val holds. */
static void vocab_of_texts(vocab *v, const text *t, const text *val)
{
    bool present[N_BYTES] = { false };
    for (size_t i = 0; i < t->n + val->n; i++)
        present[i < t->n ? t->data[i] : val->data[i - t->n]] = true;
    vocab_from_mask(v, present);
}

/* The first byte of s that is not in v, or -1 when all are. */
static int missing_byte(const char *s, const vocab *v)
{
    for (; s && *s; s++)
        if (v->class_of[(unsigned char)*s] < 0)
            return (unsigned char)*s;
    return -1;
}

/* The vocabulary as text for the checkpoint: two hex digits per byte, in class order. */
static void vocab_hex(const vocab *v, char out[2 * N_BYTES + 1])
{
    for (int i = 0; i < v->size; i++)
        snprintf(out + 2 * i, 3, "%02x", v->byte[i]);
    out[2 * v->size] = '\0';
}

/* The vocabulary from vocab_hex's text: 2 to 256 bytes in increasing order. False when the
 * text is not that. */
static bool vocab_from_hex(vocab *v, const char *hex)
{
    bool present[N_BYTES] = { false };
    size_t n = strlen(hex);
    int last = -1;
    for (size_t i = 0; n % 2 == 0 && i < n; i += 2) {
        unsigned byte;
        if (!isxdigit((unsigned char)hex[i]) || !isxdigit((unsigned char)hex[i + 1])
            || sscanf(hex + i, "%2x", &byte) != 1 || (int)byte <= last)
            return false;
        present[byte] = true;
        last = (int)byte;
    }
    vocab_from_mask(v, present);
    return n % 2 == 0 && v->size >= 2;
}

/* Replaces every byte of t by its class in v, the vocabulary of source (named in messages).
 * A byte outside v is dropped (unknown is "drop"), read as the byte unknown[0], or without
 * --unknown stops the run: the message names the bytes (the first UNKNOWN_SHOWN kinds), how
 * often each occurs, and the way forward. False (and a message) then. */
static bool encode(text *t, const vocab *v, const char *unknown, const char *source)
{
    size_t count[N_BYTES] = { 0 }, missing = 0;
    int kinds = 0;
    for (size_t i = 0; i < t->n; i++)
        if (v->class_of[t->data[i]] < 0) {
            kinds += count[t->data[i]]++ == 0;
            missing++;
        }
    if (missing > 0 && !unknown) {
        char list[256] = "", byte[16];
        for (int b = 0, shown = 0; b < N_BYTES && shown < UNKNOWN_SHOWN; b++)
            if (count[b] > 0) {
                describe_byte(byte, b);
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s x%zu",
                         shown++ ? ", " : "", byte, count[b]);
            }
        complain("%s has %zu bytes outside the vocabulary of %s: %s%s; pass --unknown drop to "
                 "leave them out, or --unknown CHAR to read them as CHAR, a byte it has",
                 t->name, missing, source, list, kinds > UNKNOWN_SHOWN ? ", ..." : "");
        return false;
    }
    int mapped = -1;
    if (missing > 0 && strcmp(unknown, "drop") != 0
        && (mapped = v->class_of[(unsigned char)unknown[0]]) < 0) {
        char byte[16];
        describe_byte(byte, (unsigned char)unknown[0]);
        complain("--unknown %s: byte %s is not in the vocabulary of %s either", unknown, byte,
                 source);
        return false;
    }
    size_t kept = 0;
    for (size_t i = 0; i < t->n; i++) {
        int c = v->class_of[t->data[i]];
        if (c >= 0 || mapped >= 0)
            t->data[kept++] = (unsigned char)(c >= 0 ? c : mapped);
    }
    if (missing > 0)
        printf("%s: %zu bytes outside the vocabulary %s\n", t->name, missing,
               mapped < 0 ? "dropped" : "read as --unknown's byte");
    t->n = kept;
    return true;
}

/* Moves the last VAL_SHARE of t into val (the held-out text), when that is 2 bytes or more. */
static bool hold_out(text *t, text *val)
{
    size_t n = (size_t)((double)t->n * VAL_SHARE);
    if (n < 2)
        return true;
    val->data = malloc(n);
    if (!val->data) {
        complain("out of memory");
        return false;
    }
    memcpy(val->data, t->data + t->n - n, n);
    val->n = val->room = n;
    t->n -= n;
    snprintf(val->name, sizeof val->name, "the last %.0f%%", 100.0 * VAL_SHARE);
    return true;
}

#endif
