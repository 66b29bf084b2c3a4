/* cli.h: command-line and output helpers for the examples (static inline: an unused one draws
 * no warning). */
#ifndef TAPEGRAD_EXAMPLES_CLI_H
#define TAPEGRAD_EXAMPLES_CLI_H

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tapegrad.h"

/* The program's name, which starts every message: each example sets it first thing in main. */
static const char *program;

/* Characters of a progress bar drawn in place on stderr's last line (charlm's), 0 when there
 * is none: complain() ends that line before its message. */
static int bar_drawn;

/* Prints "PROGRAM: message" as a line of its own on stderr, in one write (threads' lines do
 * not mix). stdout is flushed first, so that what a program printed before the message comes
 * before it when both streams go to one place (2>&1): stdout to a file or a pipe is
 * block-buffered, stderr is not buffered. */
static inline void complain(const char *fmt, ...)
{
    char message[8192];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    fflush(stdout);
    if (bar_drawn > 0) {
        fputc('\n', stderr);
        bar_drawn = 0;
    }
    fprintf(stderr, "%s: %s\n", program, message);
}

/* path = dir/name, in path_size bytes; false (and a message) when it does not fit. */
static inline bool output_path(char *path, size_t path_size, const char *dir, const char *name)
{
    if (snprintf(path, path_size, "%s/%s", dir, name) < (int)path_size)
        return true;
    complain("output path too long: %s/%s", dir, name);
    return false;
}

/* Prints "PROGRAM: message (see PROGRAM --help)" on stderr (after stdout, as complain does)
 * and exits with status 2. */
static inline _Noreturn void usage_error(const char *fmt, ...)
{
    fflush(stdout);
    va_list args;
    va_start(args, fmt);
    fprintf(stderr, "%s: ", program);
    vfprintf(stderr, fmt, args);
    fprintf(stderr, " (see %s --help)\n", program);
    va_end(args);
    exit(2);
}

/* Wall-clock seconds since some fixed moment, for progress lines and timings. */
static inline double now(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Prints usage on stdout and exits with status 0 when flag asks for help: --help, or also -h
 * when short_ok. */
static inline void help_if_asked(const char *flag, const char *usage, bool short_ok)
{
    if (strcmp(flag, "--help") == 0 || (short_ok && strcmp(flag, "-h") == 0)) {
        fputs(usage, stdout);
        exit(0);
    }
}

/* The value of flag, which must be a whole number in [lo, hi]; text is NULL when it is missing. */
static inline long long whole_number(const char *flag, const char *text, long long lo, long long hi)
{
    if (!text)
        usage_error("%s needs a value", flag);
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < lo || value > hi)
        usage_error("%s needs a whole number from %lld to %lld, got '%s'", flag, lo, hi, text);
    return value;
}

/* The value of flag, a finite number that fits a float, above 0 (or from 0 when zero_ok). */
static inline float real_number(const char *flag, const char *text, bool zero_ok)
{
    if (!text)
        usage_error("%s needs a value", flag);
    char *end;
    errno = 0;
    float value = strtof(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(value) || value < 0.0f
        || (value == 0.0f && !zero_ok))
        usage_error("%s needs a finite number %s, got '%s'", flag,
                    zero_ok ? "0 or above" : "above 0", text);
    return value;
}

/* True when dir is an existing directory (POSIX stat()); else prints why not. */
static inline bool is_directory(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        complain("output directory %s: %s", dir, strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        complain("output directory %s: not a directory", dir);
        return false;
    }
    return true;
}

/* The five settings that every lab program parses the same way (lab_flag): a program takes
 * the ones that make sense for it (lab_options.takes) and refuses the others with a reason. */
typedef enum lab_knob {
    LAB_LR,       /* --lr X: the learning rate, 0 < X <= LAB_MAX_LR */
    LAB_HIDDEN,   /* --hidden N: hidden units, 1 to LAB_MAX_HIDDEN */
    LAB_RHO,      /* --rho X: W_h = X Q (Q orthogonal), 0 < X <= LAB_MAX_RHO */
    LAB_CLIP,     /* --clip X: clip the gradient's norm to X, 0 < X <= LAB_MAX_CLIP */
    LAB_SEEDS,    /* --seeds N: runs from N seeds, 1 to LAB_MAX_SEEDS */
    LAB_KNOBS
} lab_knob;

#define LAB_MAX_LR 10.0f
#define LAB_MAX_RHO 10.0f
#define LAB_MAX_CLIP 1e6f
enum { LAB_MAX_HIDDEN = 512, LAB_MAX_SEEDS = 100 };

static const char *const LAB_KNOB_FLAGS[LAB_KNOBS] = { "--lr", "--hidden", "--rho", "--clip",
                                                       "--seeds" };

/* The bit of lab_options.takes and .given for a knob. */
#define LAB_BIT(knob) (1u << (knob))

/* The flags every lab program takes, and the defaults every lab's --help text gives. */
typedef struct lab_options {
    unsigned long long seed;   /* --seed N */
    bool quick;                /* --quick: a short run, for tests */
    const char *out;           /* --out DIR: where the CSV and SVG files go */
    unsigned takes;            /* LAB_BIT()s of the knobs the program takes (set before parsing) */
    const char *why_not[LAB_KNOBS];  /* why it refuses a knob it does not take (NULL: "this
                                        program has no such setting") */
    unsigned given;            /* LAB_BIT()s of the knobs on the command line */
    float lr, rho, clip;       /* --lr, --rho, --clip: valid when given */
    int hidden, seeds;         /* --hidden, --seeds: valid when given */
} lab_options;

#define LAB_DEFAULTS ((lab_options){ .seed = 1, .quick = false, .out = "results" })

/* True when the command line gave knob. */
static inline bool lab_given(const lab_options *opt, lab_knob knob)
{
    return (opt->given & LAB_BIT(knob)) != 0;
}

/* The value of a real-valued knob's flag, in (0, hi]: refused with the reason otherwise. */
static inline float lab_real(const char *flag, const char *text, float hi)
{
    if (!text)
        usage_error("%s needs a value", flag);
    char *end;
    errno = 0;
    float value = strtof(text, &end);
    if (end != text && *end == '\0' && errno == ERANGE)
        usage_error("%s %s: out of a float's range", flag, text);
    if (end == text || *end != '\0' || !isfinite(value))
        usage_error("%s %s: not a finite number", flag, text);
    if (value <= 0.0f)
        usage_error("%s %s: must be > 0", flag, text);
    if (value > hi)
        usage_error("%s %s: must be at most %g", flag, text, (double)hi);
    return value;
}

/* The value of a whole-number knob's flag, in [lo, hi]: refused with the reason otherwise. */
static inline int lab_whole(const char *flag, const char *text, int lo, int hi)
{
    if (!text)
        usage_error("%s needs a value", flag);
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        usage_error("%s %s: not a whole number", flag, text);
    if (value < lo || value > hi)
        usage_error("%s %s: must be from %d to %d", flag, text, lo, hi);
    return (int)value;
}

/* Reads knob's value (text) into opt, or refuses the flag when the program does not take it. */
static inline void lab_knob_flag(lab_options *opt, lab_knob knob, const char *text)
{
    const char *flag = LAB_KNOB_FLAGS[knob];
    if (!(opt->takes & LAB_BIT(knob)))
        usage_error("%s: %s", flag, opt->why_not[knob] ? opt->why_not[knob]
                                                        : "this program has no such setting");
    switch (knob) {
    case LAB_LR: opt->lr = lab_real(flag, text, LAB_MAX_LR); break;
    case LAB_HIDDEN: opt->hidden = lab_whole(flag, text, 1, LAB_MAX_HIDDEN); break;
    case LAB_RHO: opt->rho = lab_real(flag, text, LAB_MAX_RHO); break;
    case LAB_CLIP: opt->clip = lab_real(flag, text, LAB_MAX_CLIP); break;
    case LAB_SEEDS: opt->seeds = lab_whole(flag, text, 1, LAB_MAX_SEEDS); break;
    case LAB_KNOBS: break;
    }
    opt->given |= LAB_BIT(knob);
}

/* Reads argv[*i] into opt when it is a flag every lab program parses: --help (no -h) prints
 * usage and exits; --quick, --seed N, --out DIR, and the five knobs --lr, --hidden, --rho,
 * --clip, --seeds (refused with a reason when opt->takes lacks them; *i moves past a value).
 * False for others. */
static inline bool lab_flag(int argc, char **argv, int *i, const char *usage, lab_options *opt)
{
    const char *flag = argv[*i];
    help_if_asked(flag, usage, false);
    if (strcmp(flag, "--quick") == 0) {
        opt->quick = true;
        return true;
    }
    const char *value = *i + 1 < argc ? argv[*i + 1] : NULL;
    int knob = 0;
    while (knob < LAB_KNOBS && strcmp(flag, LAB_KNOB_FLAGS[knob]) != 0)
        knob++;
    if (knob < LAB_KNOBS)
        lab_knob_flag(opt, (lab_knob)knob, value);
    else if (strcmp(flag, "--seed") == 0)
        opt->seed = (unsigned long long)whole_number(flag, value, 0, LLONG_MAX);
    else if (strcmp(flag, "--out") == 0) {
        if (!value)
            usage_error("--out needs a value");
        opt->out = value;
    } else
        return false;
    *i += 1;   /* past the value */
    return true;
}

/* The command line of a lab that takes only the flags every lab parses; opt holds the
 * defaults and what the program takes (LAB_DEFAULTS with .takes and .why_not set). */
static inline lab_options lab_parse_args(int argc, char **argv, const char *usage, lab_options opt)
{
    for (int i = 1; i < argc; i++)
        if (!lab_flag(argc, argv, &i, usage, &opt))
            usage_error("unknown flag '%s'", argv[i]);
    return opt;
}

/* Writes chart as DIR/NAME.svg, or as DIR/NAME.csv when as_csv, with the library's writers.
 * False (and a message on stderr) on failure. */
static inline bool write_chart(const tg_chart *chart, const char *dir, const char *name, bool as_csv)
{
    char path[4096];
    tg_error err;
    if (snprintf(path, sizeof path, "%s/%s.%s", dir, name, as_csv ? "csv" : "svg") >= (int)sizeof path) {
        fprintf(stderr, "%s: output path too long: %s/%s\n", program, dir, name);
        return false;
    }
    int status = as_csv ? tg_chart_write_csv(chart, path, &err) : tg_chart_write_svg(chart, path, &err);
    if (status != 0) {
        fprintf(stderr, "%s: %s\n", program, err.message);
        return false;
    }
    return true;
}

/* A table an example builds in memory, to write it with tg_write_text_file: in one piece and
 * through a symbolic link, as the library writes the charts. `failed` once memory ran out. */
typedef struct table {
    char *text;
    size_t len, capacity;
    bool failed;
} table;

/* Appends printf-style text to the table. */
static inline void table_add(table *t, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(NULL, 0, fmt, args);
    va_end(args);
    size_t need = t->len + (size_t)n + 1;
    if (t->failed || n < 0 || need > t->capacity) {
        size_t capacity = need > 2 * t->capacity ? need : 2 * t->capacity;
        char *grown = t->failed || n < 0 ? NULL : realloc(t->text, capacity);
        if (!grown) {
            t->failed = true;
            return;
        }
        t->text = grown;
        t->capacity = capacity;
    }
    va_start(args, fmt);
    vsnprintf(t->text + t->len, t->capacity - t->len, fmt, args);
    va_end(args);
    t->len += (size_t)n;
}

/* Writes the table to path and frees it. False (and a message on stderr) on failure. */
static inline bool write_table(table *t, const char *path)
{
    tg_error err;
    bool written = !t->failed && tg_write_text_file(path, t->text, t->len, &err) == 0;
    if (!written)
        fprintf(stderr, "%s: %s\n", program, t->failed ? "out of memory for a table" : err.message);
    free(t->text);
    *t = (table){ NULL, 0, 0, false };
    return written;
}

#endif
