/* charlm_options.h: charlm's command line (examples/charlm.c): its flags and --help, their
 * checks and defaults; a resumed run takes the settings not given from its checkpoint, and
 * refuses a flag that disagrees with it (settle_options). */
#ifndef TAPEGRAD_EXAMPLES_CHARLM_OPTIONS_H
#define TAPEGRAD_EXAMPLES_CHARLM_OPTIONS_H

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "charlm_data.h"
#include "charlm_model.h"
#include "cli.h"
#include "tapegrad.h"

enum { DEFAULT_SAMPLE = 200 };

static const char USAGE[] =
    "usage: charlm [--text FILE] [--val FILE] [--cell rnn|lstm|gru] [--hidden H] [--layers L]\n"
    "              [--steps T] [--batch B] [--iters N] [--optimizer sgd|momentum|adagrad|adam]\n"
    "              [--lr X] [--clip X] [--seed S] [--save FILE] [--resume FILE]\n"
    "              [--unknown drop|CHAR] [--sample N] [--temperature X] [--prime STRING]\n"
    "              [--plot FILE.svg] [--max-memory SIZE]\n"
    "Trains a character-level language model (a stack of recurrent layers reading one-hot\n"
    "bytes, a linear readout, softmax cross-entropy) with truncated BPTT, printing the training\n"
    "and validation loss in nats per byte and bits per character, then writes text sampled from\n"
    "it. Run from the repository root, it learns the project's own docs (" DEFAULT_TEXT ",\n"
    "concatenated in sorted order) in about a minute.\n"
    "  --text FILE        the text to learn (default " DEFAULT_TEXT "); its last 10% is held out\n"
    "                     for validation (each report scores its first 64 KiB at most)\n"
    "  --val FILE         hold out this text instead, and train on all of --text\n"
    "  --cell NAME        rnn, lstm or gru (default gru)\n"
    "  --hidden H         hidden units per layer, 1 to 1024 (default 128)\n"
    "  --layers L         layers stacked, 1 to 8 (default 1)\n"
    "  --steps T          bytes per chunk: BPTT reaches T steps back, 1 to 1000 (default 32)\n"
    "  --batch B          streams read side by side, 1 to 1024 (default 32)\n"
    "  --iters N          training iterations (chunks), 0 to 1000000 (default 600)\n"
    "  --optimizer NAME   sgd, momentum, adagrad or adam (default adam)\n"
    "  --lr X             learning rate above 0 (default: sgd 2, momentum 0.2, adagrad 0.1,\n"
    "                     adam 0.01)\n"
    "  --clip X           clip the gradient norm at X, 0 = off (default 5)\n"
    "  --seed S           seed for the weights and the sampling, 0 or more (default 1)\n"
    "  --save FILE        write a checkpoint, one file, every 10% of the run and at its end\n"
    "  --resume FILE      continue the run saved in FILE exactly where it stopped: the model,\n"
    "                     the optimizer's state, the streams and the settings come from it, so\n"
    "                     --cell, --hidden, --layers, --batch and --optimizer are not needed\n"
    "                     (given, they must agree); --steps, --lr and --clip may change.\n"
    "                     With --iters 0 no text is read, and --save writes the model and\n"
    "                     settings alone (no optimizer state, streams or iteration count)\n"
    "  --unknown drop|CHAR  with --resume, a text byte outside the checkpoint's vocabulary is\n"
    "                     dropped, or read as CHAR (a byte of the vocabulary); without it such\n"
    "                     a byte stops the run, naming it\n"
    "  --sample N         after training, write N bytes drawn from the model, 0 to 1000000\n"
    "                     (default 200)\n"
    "  --temperature X    divide the logits by X before the softmax, above 0 (default 0.8)\n"
    "  --prime STRING     text the model reads (and prints) before it samples (default: it\n"
    "                     starts from a newline, not printed)\n"
    "  --plot FILE.svg    write the loss curve as an SVG chart\n"
    "  --max-memory SIZE  refuse to train when the run needs more memory than SIZE: bytes, or\n"
    "                     with K, M, G or T (1024-based), e.g. 512M or 2G. A run that needs\n"
    "                     more than 80% of the memory the machine has available is refused\n"
    "                     in any case; the estimate is printed with the model\n"
    "  --help             print this and exit\n"
    "Exit status: 0 on success, 1 on a runtime failure, 2 on a bad command line.\n";

static const char *const OPTIMIZERS[] = { "sgd", "momentum", "adagrad", "adam" };
static const tg_optimizer_kind KINDS[] = { TG_SGD, TG_MOMENTUM, TG_ADAGRAD, TG_ADAM };
static const float DEFAULT_LR[] = { 2.0f, 0.2f, 0.1f, 0.01f };
#define N_OPTIMIZERS (int)(sizeof OPTIMIZERS / sizeof OPTIMIZERS[0])
#define DEFAULT_OPTIMIZER 3      /* adam */

/* The command line. A number left at 0 (clip at -1, a name at NULL) was not given: it comes
 * from the checkpoint when resuming, else from the defaults (settle_options). */
typedef struct options {
    const char *text, *val, *save, *resume, *prime, *plot, *unknown;
    int cell, optimizer;               /* index into CELLS, OPTIMIZERS; -1: not given */
    int hidden, layers, steps, batch, iters, sample;
    float lr, clip, temperature;
    double max_memory;                 /* bytes; 0: no cap but the machine's */
    unsigned long long seed;
} options;

/* The index of name in names[0..n-1], or -1 when it is not there. */
static int index_of(const char *name, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

/* The index of the value of flag in names[0..n-1], which must hold it. */
static int one_of(const char *flag, const char *text, const char *const *names, int n)
{
    if (!text)
        usage_error("%s needs a value", flag);
    int found = index_of(text, names, n);
    if (found >= 0)
        return found;
    char list[128] = "";
    for (int i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
    usage_error("%s needs one of %s, got '%s'", flag, list, text);
}

/* The value of flag, a size of 1 byte or more: a number of bytes, or a number followed by K,
 * M, G or T (either case) for 2^10, 2^20, 2^30 or 2^40 bytes. */
static double byte_size(const char *flag, const char *text)
{
    if (!text)
        usage_error("%s needs a value", flag);
    static const char UNITS[] = "KMGT";
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    bool number = errno == 0 && end != text;
    const char *unit = number && *end ? strchr(UNITS, toupper((unsigned char)*end)) : NULL;
    if (unit) {
        value = ldexp(value, 10 * (int)(unit - UNITS + 1));
        end++;
    }
    if (!number || *end != '\0' || !isfinite(value) || value < 1.0)
        usage_error("%s needs a size of 1 byte or more (e.g. 512M or 2G), got '%s'", flag, text);
    return value;
}

static options parse_args(int argc, char **argv)
{
    options opt = { .cell = -1, .optimizer = -1, .iters = 600, .sample = DEFAULT_SAMPLE,
                    .clip = -1.0f, .seed = 1, .temperature = 0.8f };
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        help_if_asked(flag, USAGE, true);
        const char *value = i + 1 < argc ? argv[++i] : NULL;
        const char **string = strcmp(flag, "--text") == 0 ? &opt.text
                            : strcmp(flag, "--val") == 0 ? &opt.val
                            : strcmp(flag, "--save") == 0 ? &opt.save
                            : strcmp(flag, "--resume") == 0 ? &opt.resume
                            : strcmp(flag, "--unknown") == 0 ? &opt.unknown
                            : strcmp(flag, "--prime") == 0 ? &opt.prime
                            : strcmp(flag, "--plot") == 0 ? &opt.plot : NULL;
        if (string) {
            if (!value || !*value)
                usage_error("%s needs a value", flag);
            *string = value;
        } else if (strcmp(flag, "--cell") == 0)
            opt.cell = one_of(flag, value, CELLS, N_CELLS);
        else if (strcmp(flag, "--optimizer") == 0)
            opt.optimizer = one_of(flag, value, OPTIMIZERS, N_OPTIMIZERS);
        else if (strcmp(flag, "--hidden") == 0)
            opt.hidden = (int)whole_number(flag, value, 1, 1024);
        else if (strcmp(flag, "--layers") == 0)
            opt.layers = (int)whole_number(flag, value, 1, MAX_LAYERS);
        else if (strcmp(flag, "--steps") == 0)
            opt.steps = (int)whole_number(flag, value, 1, 1000);
        else if (strcmp(flag, "--batch") == 0)
            opt.batch = (int)whole_number(flag, value, 1, 1024);
        else if (strcmp(flag, "--iters") == 0)
            opt.iters = (int)whole_number(flag, value, 0, 1000000);
        else if (strcmp(flag, "--sample") == 0)
            opt.sample = (int)whole_number(flag, value, 0, 1000000);
        else if (strcmp(flag, "--seed") == 0)
            opt.seed = (unsigned long long)whole_number(flag, value, 0, LLONG_MAX);
        else if (strcmp(flag, "--lr") == 0)
            opt.lr = real_number(flag, value, false);
        else if (strcmp(flag, "--clip") == 0)
            opt.clip = real_number(flag, value, true);
        else if (strcmp(flag, "--temperature") == 0)
            opt.temperature = real_number(flag, value, false);
        else if (strcmp(flag, "--max-memory") == 0)
            opt.max_memory = byte_size(flag, value);
        else
            usage_error("unknown flag '%s'", flag);
    }
    if (opt.plot && opt.iters == 0)
        usage_error("--plot needs --iters above 0");
    if (opt.prime && opt.sample == 0)
        usage_error("--prime needs --sample above 0");
    if (opt.unknown && !opt.resume)
        usage_error("--unknown is for --resume: a new run's vocabulary is its text's");
    if (opt.unknown && strcmp(opt.unknown, "drop") != 0 && strlen(opt.unknown) != 1)
        usage_error("--unknown needs 'drop' or one character, got '%s'", opt.unknown);
    return opt;
}

/* What a checkpoint says about its run (read_run), and what settle_options fills in. */
typedef struct run_info {
    int cell, layers, hidden, batch, steps, optimizer;   /* optimizer -1: none saved */
    float clip;
    long iteration;                   /* iterations done */
} run_info;

/* A flag given (given) against the checkpoint's setting: true when not given or the same
 * (same); else a message naming both, and false. */
static bool agrees(const char *flag, bool given, bool same, const char *shown_given,
                   const char *shown_saved, const char *path)
{
    if (!given || same)
        return true;
    complain("%s %s conflicts with %s, which was saved with %s %s: leave %s out to resume it",
             flag, shown_given, path, flag, shown_saved, flag);
    return false;
}

static bool number_agrees(const char *flag, int given, int saved, const char *path)
{
    char a[16], b[16];
    snprintf(a, sizeof a, "%d", given);
    snprintf(b, sizeof b, "%d", saved);
    return agrees(flag, given != 0, given == saved, a, b, path);
}

/* The same for a setting that is an index into names: -1 when not given, or none saved. */
static bool name_agrees(const char *flag, int given, int saved, const char *const *names,
                        const char *path)
{
    return agrees(flag, given >= 0 && saved >= 0, given == saved, given >= 0 ? names[given] : "",
                  saved >= 0 ? names[saved] : "", path);
}

/* Fills the options not given: from the checkpoint's run when resuming (flags that must agree
 * with it are checked), else the defaults. False (and a message) on a conflict. */
static bool settle_options(options *opt, const run_info *saved)
{
    if (saved) {
        const char *path = opt->resume;
        bool ok = name_agrees("--cell", opt->cell, saved->cell, CELLS, path)
                  && number_agrees("--hidden", opt->hidden, saved->hidden, path)
                  && number_agrees("--layers", opt->layers, saved->layers, path)
                  && number_agrees("--batch", opt->batch, saved->batch, path)
                  && name_agrees("--optimizer", opt->optimizer, saved->optimizer, OPTIMIZERS, path);
        if (!ok)
            return false;
        opt->cell = saved->cell, opt->hidden = saved->hidden, opt->layers = saved->layers;
        opt->batch = saved->batch;
        if (opt->optimizer < 0)
            opt->optimizer = saved->optimizer;
        if (opt->steps == 0)
            opt->steps = saved->steps;
        if (opt->clip < 0.0f)
            opt->clip = saved->clip;
    }
    opt->cell = opt->cell < 0 ? GRU : opt->cell;
    opt->optimizer = opt->optimizer < 0 ? DEFAULT_OPTIMIZER : opt->optimizer;
    opt->hidden = opt->hidden ? opt->hidden : 128;
    opt->layers = opt->layers ? opt->layers : 1;
    opt->steps = opt->steps ? opt->steps : 32;
    opt->batch = opt->batch ? opt->batch : 32;
    opt->clip = opt->clip < 0.0f ? 5.0f : opt->clip;
    return true;
}

#endif
