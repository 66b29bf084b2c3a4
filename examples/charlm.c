/* charlm.c: a character-level language model. A stack of recurrent layers reads a text one
 * byte at a time, learns to predict the next byte, and then writes new text one sampled byte
 * at a time.
 *
 * The model, for B streams of text side by side as columns (V: the number of distinct bytes
 * in the text, H: the hidden size, L: the layers; an LSTM carries c beside h):
 *
 *     x_t      = one-hot of the byte at t                                   V x B
 *     h_t      = module(x_t, the states at t - 1)  (tg_rnn, tg_lstm or tg_gru,  H x B
 *                L layers: layer l > 0 reads layer l-1's h_t)
 *     logits_t = W_y h_t + b_y   (W_y: V x H, b_y: V: torch's nn.Linear)      V x B
 *     loss     = mean over t of cross_entropy(logits_t, the byte at t + 1)
 *
 * A model that knows nothing gives every byte probability 1/V, a loss of ln V nats per byte
 * (ln V / ln 2 bits). Truncated BPTT: the text is far too long for one tape, so each iteration
 * records a chunk of T steps, backpropagates through those alone and updates the weights. The
 * states are not reset between chunks: every layer's last h (and c) of a chunk becomes the
 * first state of the next, copied into a plain tg_constant with no history. So the forward
 * pass still sees context from earlier chunks while gradients stop at the chunk's start. The
 * B streams start at evenly spaced points of the training text and each reads on where its
 * last chunk ended (wrapping around at the end).
 *
 * Validation: the last 10% of the text (or --val FILE) is held out, never trained on. Each report
 * gives the training loss (the mean over the chunks since the last report) and the loss on the
 * held-out text, read whole from zero states on a tape that records no gradients
 * (tg_tape_set_no_grad); when this validation loss rises while the training loss falls, the model
 * is learning the training text by heart, and a warning says so.
 *
 * To generate, the model reads a byte (a forward on the no-grad tape), turns its logits into
 * p_i = exp(logit_i / temperature) / sum_j exp(logit_j / temperature), draws the next byte from
 * p and reads that: temperature 1 samples the model as it is, below 1 favours its likeliest
 * guesses (safer, more repetitive), above 1 flattens p (more surprise, more typos).
 *
 * A checkpoint is one safetensors file (docs/checkpoints.md): the module under torch's names
 * (weight_ih_l0, ...), readout.weight and readout.bias as nn.Linear's, the optimizer's state
 * (optimizer.<param>.exp_avg, ...), the streams' states (stream.h_l<l>, stream.c_l<l>) and, in
 * its metadata, the cell, sizes, vocabulary, iteration count, optimizer settings and stream
 * positions. So --resume FILE continues the run exactly: 2N iterations, or N then a resume
 * for N more, print the same losses bit for bit. */
#define _POSIX_C_SOURCE 200809L   /* glob() for the default text, isatty() for the progress bar,
                                     mkstemp() to try --save's directory */

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "tapegrad.h"

enum {
    N_BYTES = 256,
    LOG_LINES = 20,                        /* loss lines on stdout in a run */
    MAX_REPORTS = 2 * LOG_LINES,           /* report lines at most: iters / (iters / 20) + 1 */
    TICKS = 10,                            /* progress lines (off a terminal) and checkpoints */
    BAR_WIDTH = 24,
    PATH_SIZE = 4096,
    NAME_SIZE = 48,                        /* a parameter's or a stream tensor's name */
    MAX_LAYERS = 8,
    MAX_TEXT_BYTES = 1 << 30,
    DEFAULT_SAMPLE = 200,
    UNKNOWN_SHOWN = 8,                     /* unknown bytes named in a message */
};
#define DEFAULT_TEXT "docs/*.md"
#define VAL_SHARE 0.1            /* of the text, held out for validation without --val */
#define SMOOTHING 0.95           /* the smoothed loss weighs the loss k iterations back by
                                    SMOOTHING^k (a bias-corrected moving average, as in Adam) */
#define REDRAW_SECONDS 0.1       /* a terminal's progress bar is redrawn at most this often */

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
    "                     With --iters 0 no text is read\n"
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

static const char *const CELLS[] = { "rnn", "lstm", "gru" };
enum { RNN, LSTM, GRU, N_CELLS };
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

/* ---- messages and the command line ------------------------------------------------------- */

/* The index of the value of flag in names[0..n-1], which must hold it. */
static int one_of(const char *flag, const char *text, const char *const *names, int n)
{
    if (!text)
        usage_error("%s needs a value", flag);
    char list[128] = "";
    for (int i = 0; i < n; i++) {
        if (strcmp(text, names[i]) == 0)
            return i;
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
    }
    usage_error("%s needs one of %s, got '%s'", flag, list, text);
    return -1;
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

/* Fills the options not given: from the checkpoint's run when resuming (flags that must agree
 * with it are checked), else the defaults. False (and a message) on a conflict. */
static bool settle_options(options *opt, const run_info *saved)
{
    if (saved) {
        const char *path = opt->resume;
        bool ok = agrees("--cell", opt->cell >= 0, opt->cell == saved->cell,
                         opt->cell >= 0 ? CELLS[opt->cell] : "", CELLS[saved->cell], path)
                  && number_agrees("--hidden", opt->hidden, saved->hidden, path)
                  && number_agrees("--layers", opt->layers, saved->layers, path)
                  && number_agrees("--batch", opt->batch, saved->batch, path)
                  && agrees("--optimizer", opt->optimizer >= 0 && saved->optimizer >= 0,
                            opt->optimizer == saved->optimizer,
                            opt->optimizer >= 0 ? OPTIMIZERS[opt->optimizer] : "",
                            saved->optimizer >= 0 ? OPTIMIZERS[saved->optimizer] : "", path);
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

/* ---- the text and its vocabulary --------------------------------------------------------- */

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

/* ---- the model --------------------------------------------------------------------------- */

/* The module (V inputs, H hidden units, L layers) and its readout, nn.Linear(H, V). */
typedef struct model {
    int cell, vocab, hidden, layers;
    bool has_c;                        /* the LSTM carries c beside h */
    tg_rnn *rnn;                       /* one of the three, as cell says */
    tg_lstm *lstm;
    tg_gru *gru;
    tg_tensor *W_y, *b_y;              /* the readout: V x H, V x 1 */
    tg_tensor **params;                /* the module's, then W_y and b_y */
    int n_params;
    const char **names;                /* n_params: each one's name for the optimizer's state */
    char *name_text;                   /* where the names live */
} model;

static void model_free(model *m)
{
    tg_rnn_free(m->rnn);
    tg_lstm_free(m->lstm);
    tg_gru_free(m->gru);
    tg_param_free(m->W_y);
    tg_param_free(m->b_y);
    free(m->params);
    free(m->names);
    free(m->name_text);
}

/* The name of the module's parameter i of a layer in the checkpoint: torch's for the weights
 * and the GRU's biases; the RNN's and LSTM's one b (bias_ih + bias_hh) is bias_l<l>. */
static void param_name(char out[NAME_SIZE], int cell, int layer, int i)
{
    static const char *const GATED[] = { "weight_ih", "weight_hh", "bias_ih", "bias_hh" };
    static const char *const ONE_BIAS[] = { "weight_ih", "weight_hh", "bias" };
    snprintf(out, NAME_SIZE, "%s_l%d", cell == GRU ? GATED[i] : ONE_BIAS[i], layer);
}

/* The module with PyTorch's init and the readout (W_y uniform in +-1/sqrt(H), b_y = 0), with
 * the parameter list. False when out of memory (model_free cleans up either way). */
static bool model_init(model *m, int cell, int vocab_size, int hidden, int layers, tg_rng *rng)
{
    *m = (model){ .cell = cell, .vocab = vocab_size, .hidden = hidden, .layers = layers,
                  .has_c = cell == LSTM };
    uint64_t seed = tg_rng_next(rng);
    tg_tensor **module = NULL;
    int n = 0;
    if (cell == RNN && (m->rnn = tg_rnn_new(vocab_size, hidden, layers, TG_TANH, 0.0f, seed, NULL)))
        module = m->rnn->params, n = m->rnn->n_params;
    if (cell == LSTM && (m->lstm = tg_lstm_new(vocab_size, hidden, layers, 0.0f, seed, NULL)))
        module = m->lstm->params, n = m->lstm->n_params;
    if (cell == GRU && (m->gru = tg_gru_new(vocab_size, hidden, layers, 0.0f, seed, NULL)))
        module = m->gru->params, n = m->gru->n_params;
    m->W_y = tg_param_new(vocab_size, hidden);
    m->b_y = tg_param_new(vocab_size, 1);
    m->params = malloc((size_t)(n + 2) * sizeof *m->params);
    m->names = malloc((size_t)(n + 2) * sizeof *m->names);
    m->name_text = malloc((size_t)(n + 2) * NAME_SIZE);
    if (!module || !m->W_y || !m->b_y || !m->params || !m->names || !m->name_text)
        return false;
    for (int i = 0; i < n + 2; i++) {
        char *name = m->name_text + (size_t)i * NAME_SIZE;
        if (i < n)
            param_name(name, cell, i / (n / layers), i % (n / layers));
        else
            snprintf(name, NAME_SIZE, "%s", i == n ? "readout.weight" : "readout.bias");
        m->params[i] = i < n ? module[i] : i == n ? m->W_y : m->b_y;
        m->names[i] = name;
    }
    m->n_params = n + 2;
    float bound = 1.0f / sqrtf((float)hidden);
    tg_init_uniform(m->W_y, -bound, bound, rng, NULL);
    return true;
}

/* logits = W_y h + b_y: V x B, from h: H x B. */
static tg_tensor *readout(tg_tape *tape, const model *m, tg_tensor *h)
{
    return tg_matmul_add(tape, m->W_y, h, m->b_y);
}

/* The one-hot columns of classes[0..batch-1] as a V x batch tape constant, built in scratch
 * (V x batch zeros, left as zeros). */
static tg_tensor *one_hot(tg_tape *tape, const model *m, float *scratch, const int *classes,
                          int batch)
{
    for (int b = 0; b < batch; b++)
        scratch[classes[b] * batch + b] = 1.0f;
    tg_tensor *x = tg_constant(tape, m->vocab, batch, scratch);
    for (int b = 0; b < batch; b++)
        scratch[classes[b] * batch + b] = 0.0f;
    return x;
}

/* One forward pass of `batch` streams over up to `steps` bytes, from states carried over from
 * the last pass, and what it needs, allocated once. */
typedef struct pass {
    int steps, batch;
    float *one_hot;                    /* V x B zeros */
    int *classes, *targets;            /* steps x B each: the bytes read and the bytes after */
    tg_tensor **x, **outputs;          /* steps each: V x B and H x B */
    tg_tensor **h0, **c0, **h_n, **c_n;   /* layers each, H x B */
    float *h, *c;                      /* layers x H x B: the carried states, outside any tape */
} pass;

static void pass_free(pass *p)
{
    void *blocks[] = { p->one_hot, p->classes, p->targets, p->x, p->outputs, p->h0, p->c0,
                       p->h_n, p->c_n, p->h, p->c };
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
        free(blocks[i]);
}

/* States start at zero. False when out of memory (pass_free cleans up either way). */
static bool pass_init(pass *p, const model *m, int steps, int batch)
{
    size_t T = (size_t)steps, B = (size_t)batch, L = (size_t)m->layers;
    size_t states = L * (size_t)m->hidden * B;
    *p = (pass){ steps, batch, calloc((size_t)m->vocab * B, sizeof(float)),
                 malloc(T * B * sizeof(int)), malloc(T * B * sizeof(int)),
                 calloc(T, sizeof(tg_tensor *)), calloc(T, sizeof(tg_tensor *)),
                 calloc(L, sizeof(tg_tensor *)), calloc(L, sizeof(tg_tensor *)),
                 calloc(L, sizeof(tg_tensor *)), calloc(L, sizeof(tg_tensor *)),
                 calloc(states, sizeof(float)), calloc(states, sizeof(float)) };
    return p->one_hot && p->classes && p->targets && p->x && p->outputs && p->h0 && p->c0
           && p->h_n && p->c_n && p->h && p->c;
}

static size_t state_bytes(const model *m, const pass *p)
{
    return (size_t)m->layers * (size_t)m->hidden * (size_t)p->batch * sizeof(float);
}

/* Records the module over classes[0 .. steps-1] from the carried states (as new constants: a
 * fresh history, so no gradient flows into the last pass) into outputs, h_n (and c_n). 0, or
 * -1 with the tape's error set. */
static int pass_forward(tg_tape *tape, const model *m, pass *p, int steps)
{
    const int B = p->batch;
    const size_t block = (size_t)m->hidden * (size_t)B;
    for (int s = 0; s < steps; s++)
        p->x[s] = one_hot(tape, m, p->one_hot, p->classes + (size_t)s * B, B);   /* V x B */
    for (int l = 0; l < m->layers; l++) {
        p->h0[l] = tg_constant(tape, m->hidden, B, p->h + l * block);             /* H x B */
        p->c0[l] = m->has_c ? tg_constant(tape, m->hidden, B, p->c + l * block) : NULL;
    }
    if (m->lstm)
        return tg_lstm_forward(tape, m->lstm, p->x, steps, p->h0, p->c0, p->outputs, p->h_n,
                               p->c_n);
    if (m->gru)
        return tg_gru_forward(tape, m->gru, p->x, steps, p->h0, p->outputs, p->h_n);
    return tg_rnn_forward(tape, m->rnn, p->x, steps, p->h0, p->outputs, p->h_n);
}

/* pass_forward, then the mean over the steps of the cross-entropy of the targets: 1 x 1, or
 * NULL with the tape's error set. */
static tg_tensor *pass_loss(tg_tape *tape, const model *m, pass *p, int steps)
{
    if (pass_forward(tape, m, p, steps) != 0)
        return NULL;
    tg_tensor *total = NULL;                                                      /* 1 x 1 */
    for (int s = 0; s < steps; s++) {
        tg_tensor *logits = readout(tape, m, p->outputs[s]);                      /* V x B */
        tg_tensor *loss = tg_cross_entropy(tape, logits, p->targets + (size_t)s * p->batch);
        total = total ? tg_add(tape, total, loss) : loss;
    }
    return tg_scale(tape, total, 1.0f / (float)steps);
}

/* Every layer's last state becomes the start of the next pass. */
static void pass_carry(pass *p, const model *m)
{
    const size_t block = (size_t)m->hidden * (size_t)p->batch;
    for (int l = 0; l < m->layers; l++) {
        memcpy(p->h + l * block, p->h_n[l]->data, block * sizeof(float));
        if (m->has_c)
            memcpy(p->c + l * block, p->c_n[l]->data, block * sizeof(float));
    }
}

/* ---- training ---------------------------------------------------------------------------- */

/* Everything a training step uses, allocated once before the first. */
typedef struct trainer {
    tg_tape *tape;
    tg_optimizer *optimizer;
    pass chunk;                        /* T steps x B streams, and the streams' states */
    size_t *pos;                       /* B: where each stream reads next in the training text */
    long iteration;                    /* iterations done, those before a resume included */
    float *losses, *smoothed;          /* iters each: every chunk's loss, and smoothed */
    float val_iter[MAX_REPORTS], val_loss[MAX_REPORTS];   /* the validation loss of each report */
    int n_reports;
} trainer;

static void trainer_free(trainer *w)
{
    tg_tape_free(w->tape);
    tg_optimizer_free(w->optimizer);
    pass_free(&w->chunk);
    free(w->pos);
    free(w->losses);
    free(w->smoothed);
}

/* The streams start at evenly spaced points of a text of n bytes. */
static void spread_streams(size_t *pos, int batch, size_t n)
{
    for (size_t b = 0; b < (size_t)batch; b++)
        pos[b] = b * n / (size_t)batch;
}

/* False when out of memory (trainer_free cleans up either way). */
static bool trainer_init(trainer *w, model *m, const options *opt, size_t text_size)
{
    size_t iters = (size_t)opt->iters;
    w->tape = tg_tape_new();
    w->optimizer = tg_optimizer_new(KINDS[opt->optimizer], m->params, m->n_params,
                                    opt->lr > 0.0f ? opt->lr : DEFAULT_LR[opt->optimizer], NULL);
    w->pos = malloc((size_t)opt->batch * sizeof *w->pos);
    w->losses = malloc(iters * sizeof *w->losses);
    w->smoothed = malloc(iters * sizeof *w->smoothed);
    if (!pass_init(&w->chunk, m, opt->steps, opt->batch) || !w->tape || !w->optimizer || !w->pos
        || !w->losses || !w->smoothed)
        return false;
    spread_streams(w->pos, opt->batch, text_size);
    return true;
}

/* One iteration: forward over a chunk, backward, clip, update, and carry the states on. Sets
 * *loss_out. False (and a message) on failure. */
static bool train_step(trainer *w, model *m, const text *t, const options *opt, float *loss_out)
{
    long iter = w->iteration + 1;
    pass *p = &w->chunk;
    for (int s = 0; s < opt->steps; s++)
        for (int b = 0; b < opt->batch; b++) {
            size_t here = (w->pos[b] + (size_t)s) % t->n;
            p->classes[s * opt->batch + b] = t->data[here];
            p->targets[s * opt->batch + b] = t->data[(here + 1) % t->n];
        }
    tg_tape_reset(w->tape);                   /* forget the last chunk, keep the memory */
    tg_zero_grad(m->params, m->n_params, NULL);
    tg_tensor *loss = pass_loss(w->tape, m, p, opt->steps);
    if (loss && !isfinite(loss->data[0])) {
        complain("the loss is not finite at iteration %ld; try a smaller --lr", iter);
        return false;
    }
    if (tg_backward(w->tape, loss) != 0) {
        complain("%s", tg_tape_error(w->tape));
        return false;
    }
    if (opt->clip > 0.0f && isnan(tg_clip_grad_norm(m->params, m->n_params, opt->clip))) {
        complain("a gradient is not finite at iteration %ld; try a smaller --lr", iter);
        return false;
    }
    tg_error err;
    if (tg_optimizer_step(w->optimizer, &err) != 0) {
        complain("iteration %ld: %s; try a smaller --lr or a --clip", iter, err.message);
        return false;
    }
    pass_carry(p, m);
    for (int b = 0; b < opt->batch; b++)
        w->pos[b] = (w->pos[b] + (size_t)opt->steps) % t->n;
    w->iteration = iter;
    *loss_out = loss->data[0];
    return true;
}

/* The loss on the held-out text: its bytes split among the streams of e's pass, each read from
 * zero states in chunks of up to T steps on a tape that records no gradients. */
typedef struct evaluator {
    tg_tape *tape;                     /* no-grad */
    pass chunk;
} evaluator;

static void evaluator_free(evaluator *e)
{
    tg_tape_free(e->tape);
    pass_free(&e->chunk);
}

/* A pass of at most --batch streams over val (each predicting one byte at least). False when
 * out of memory. */
static bool evaluator_init(evaluator *e, const model *m, const options *opt, const text *val)
{
    size_t streams = val->n - 1 < (size_t)opt->batch ? val->n - 1 : (size_t)opt->batch;
    e->tape = tg_tape_new();
    tg_tape_set_no_grad(e->tape, 1);
    return pass_init(&e->chunk, m, opt->steps, (int)streams) && e->tape;
}

/* The mean cross-entropy, in nats per byte, of every byte of val the streams predict. False
 * (and a message) on failure. */
static bool held_out_loss(evaluator *e, const model *m, const text *val, double *loss)
{
    pass *p = &e->chunk;
    const size_t B = (size_t)p->batch, span = (val->n - 1) / B;   /* bytes each stream predicts */
    memset(p->h, 0, state_bytes(m, p));
    memset(p->c, 0, state_bytes(m, p));
    double sum = 0.0;
    for (size_t start = 0; start < span; start += (size_t)p->steps) {
        int steps = span - start < (size_t)p->steps ? (int)(span - start) : p->steps;
        for (size_t s = 0; s < (size_t)steps; s++)
            for (size_t b = 0; b < B; b++) {
                size_t at = b * span + start + s;
                p->classes[s * B + b] = val->data[at];
                p->targets[s * B + b] = val->data[at + 1];
            }
        tg_tape_reset(e->tape);
        tg_tensor *chunk = pass_loss(e->tape, m, p, steps);
        if (!chunk) {
            complain("%s", tg_tape_error(e->tape));
            return false;
        }
        sum += (double)chunk->data[0] * steps;
        pass_carry(p, m);
    }
    *loss = sum / (double)span;
    return true;
}

/* ---- checkpoints: one file per run --------------------------------------------------------- */

static int add_module(tg_checkpoint *ck, const model *m, tg_error *err)
{
    return m->lstm ? tg_checkpoint_add_lstm(ck, m->lstm, err)
         : m->gru ? tg_checkpoint_add_gru(ck, m->gru, err) : tg_checkpoint_add_rnn(ck, m->rnn, err);
}

static int load_module(model *m, const char *path, tg_error *err)
{
    return m->lstm ? tg_lstm_load(m->lstm, path, err)
         : m->gru ? tg_gru_load(m->gru, path, err) : tg_rnn_load(m->rnn, path, err);
}

static int set_number(tg_checkpoint *ck, const char *key, double value, tg_error *err)
{
    char text[32];
    snprintf(text, sizeof text, "%.9g", value);
    return tg_checkpoint_set(ck, key, text, err);
}

/* The run's settings and the vocabulary as the checkpoint's metadata. */
static int add_settings(tg_checkpoint *ck, const model *m, const vocab *v, const options *opt,
                        long iteration, tg_error *err)
{
    char hex[2 * N_BYTES + 1];
    vocab_hex(v, hex);
    int rc = tg_checkpoint_set(ck, "cell", CELLS[m->cell], err);
    const char *keys[] = { "layers", "hidden_size", "input_size", "iteration", "steps", "batch",
                           "clip" };
    double values[] = { m->layers, m->hidden, m->vocab, (double)iteration, opt->steps, opt->batch,
                        opt->clip };
    for (size_t i = 0; rc == 0 && i < sizeof keys / sizeof keys[0]; i++)
        rc = set_number(ck, keys[i], values[i], err);
    return rc == 0 ? tg_checkpoint_set(ck, "vocabulary", hex, err) : rc;
}

/* The streams' carried states as tensors over w's buffers, named stream.h_l<l> (and
 * stream.c_l<l> for an LSTM), H x B each. Returns how many. */
static int stream_states(const model *m, const trainer *w, tg_tensor states[2 * MAX_LAYERS],
                         char names[2 * MAX_LAYERS][NAME_SIZE])
{
    const size_t block = (size_t)m->hidden * (size_t)w->chunk.batch;
    const int n = (m->has_c ? 2 : 1) * m->layers;
    for (int k = 0; k < n; k++) {
        int l = k % m->layers;
        states[k] = (tg_tensor){ .rows = m->hidden, .cols = w->chunk.batch,
                                 .data = (k < m->layers ? w->chunk.h : w->chunk.c) + l * block };
        snprintf(names[k], NAME_SIZE, "stream.%s_l%d", k < m->layers ? "h" : "c", l);
    }
    return n;
}

/* The trainer's state: the optimizer's, every stream's position in the training text (of
 * train_bytes bytes) and its carried states. The tensors live in states and names until the
 * checkpoint is written. */
static int add_streams(tg_checkpoint *ck, const model *m, const trainer *w, size_t train_bytes,
                       tg_tensor states[2 * MAX_LAYERS], char names[2 * MAX_LAYERS][NAME_SIZE],
                       char *positions, tg_error *err)
{
    int rc = tg_checkpoint_add_optimizer(ck, w->optimizer, m->names, err);
    for (int k = 0, n = stream_states(m, w, states, names); rc == 0 && k < n; k++)
        rc = tg_checkpoint_add(ck, names[k], &states[k], err);
    positions[0] = '\0';
    for (int b = 0; b < w->chunk.batch; b++)
        sprintf(positions + strlen(positions), "%s%zu", b ? " " : "", w->pos[b]);
    if (rc == 0)
        rc = tg_checkpoint_set(ck, "stream.positions", positions, err);
    return rc == 0 ? set_number(ck, "stream.text_bytes", (double)train_bytes, err) : rc;
}

/* Writes the run to path as one file, atomically; w is NULL when there was no training (the
 * model and its settings alone). False (and a message) on failure. */
static bool save_checkpoint(const model *m, const vocab *v, const trainer *w, const options *opt,
                            size_t train_bytes, const char *path)
{
    tg_error err = { "out of memory" };
    tg_checkpoint *ck = tg_checkpoint_new(&err);
    tg_tensor states[2 * MAX_LAYERS];
    char names[2 * MAX_LAYERS][NAME_SIZE];
    char *positions = malloc(w ? (size_t)w->chunk.batch * 21 + 1 : 1);
    bool ok = ck && positions && add_module(ck, m, &err) == 0
              && tg_checkpoint_add(ck, "readout.weight", m->W_y, &err) == 0
              && tg_checkpoint_add(ck, "readout.bias", m->b_y, &err) == 0
              && add_settings(ck, m, v, opt, w ? w->iteration : 0, &err) == 0
              && (!w || add_streams(ck, m, w, train_bytes, states, names, positions, &err) == 0)
              && tg_checkpoint_write(ck, path, &err) == 0;
    if (!ok)
        complain("%s", err.message);
    tg_checkpoint_free(ck);
    free(positions);
    return ok;
}

/* Makes sure, before training, that a checkpoint at path can be written: that it is not a
 * directory, and that a file can be made beside it (a temporary one, removed at once). False
 * (and a message naming path and the reason) when not. */
static bool can_save(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        complain("--save %s: cannot write %s: it is a directory", path, path);
        return false;
    }
    char probe[PATH_SIZE];
    int fd = -1;
    if (snprintf(probe, sizeof probe, "%s.XXXXXX", path) < (int)sizeof probe)
        fd = mkstemp(probe);
    else
        errno = ENAMETOOLONG;
    if (fd < 0) {
        complain("--save %s: cannot write a file there: %s", path, strerror(errno));
        return false;
    }
    close(fd);
    remove(probe);
    return true;
}

/* A whole number in lo..hi from metadata key: false (and a message) when absent or not one. */
static bool meta_number(const tg_metadata *md, const char *path, const char *key, double lo,
                        double hi, double *value)
{
    const char *text = tg_metadata_get(md, key);
    char *end = NULL;
    *value = text ? strtod(text, &end) : NAN;
    if (text && end != text && *end == '\0' && *value >= lo && *value <= hi)
        return true;
    complain("%s: metadata %s is %s, not a number in %g..%g: not a charlm checkpoint?", path, key,
             text ? text : "absent", lo, hi);
    return false;
}

/* What the checkpoint's metadata says about its run, and its vocabulary. False (and a
 * message) when something is missing or wrong. */
static bool read_run(const tg_metadata *md, const char *path, run_info *r, vocab *v)
{
    const char *cell = tg_metadata_get(md, "cell"), *kind = tg_metadata_get(md, "optimizer.kind");
    const char *hex = tg_metadata_get(md, "vocabulary");
    r->cell = r->optimizer = -1;
    for (int i = 0; cell && i < N_CELLS; i++)
        r->cell = strcmp(cell, CELLS[i]) == 0 ? i : r->cell;
    for (int i = 0; kind && i < N_OPTIMIZERS; i++)
        r->optimizer = strcmp(kind, OPTIMIZERS[i]) == 0 ? i : r->optimizer;
    if (r->cell < 0 || !hex || !vocab_from_hex(v, hex)) {
        complain("%s: no charlm run in its metadata (a cell rnn, lstm or gru and a vocabulary of "
                 "2 bytes or more)", path);
        return false;
    }
    double layers, hidden, input, batch, steps, clip, iteration;
    bool ok = meta_number(md, path, "layers", 1, MAX_LAYERS, &layers)
              && meta_number(md, path, "hidden_size", 1, 1024, &hidden)
              && meta_number(md, path, "input_size", v->size, v->size, &input)
              && meta_number(md, path, "batch", 1, 1024, &batch)
              && meta_number(md, path, "steps", 1, 1000, &steps)
              && meta_number(md, path, "clip", 0, INFINITY, &clip)
              && meta_number(md, path, "iteration", 0, LONG_MAX, &iteration);
    *r = (run_info){ r->cell, (int)layers, (int)hidden, (int)batch, (int)steps, r->optimizer,
                     (float)clip, (long)iteration };
    return ok;
}

/* The stream positions saved in md, if it has B of them, each below train_bytes. */
static bool read_positions(const tg_metadata *md, size_t *pos, int batch, size_t train_bytes)
{
    const char *text = tg_metadata_get(md, "stream.positions");
    for (int b = 0; text && b < batch; b++) {
        char *end;
        errno = 0;
        unsigned long long p = strtoull(text, &end, 10);
        if (end == text || errno != 0 || p >= train_bytes)
            return false;
        pos[b] = (size_t)p;
        text = end;
    }
    return text && *text == '\0';
}

/* The trainer's state from the checkpoint at path: the optimizer's (unless the file has none:
 * then it starts afresh), and the streams' positions and states when the training text has
 * the size it had (else they start afresh, and a line says so). False (and a message). */
static bool load_trainer(trainer *w, const model *m, const tg_metadata *md, const char *path,
                         const options *opt, size_t train_bytes)
{
    tg_error err;
    if (!tg_metadata_get(md, "optimizer.kind"))
        printf("%s holds no optimizer state: %s starts afresh\n", path, OPTIMIZERS[opt->optimizer]);
    else if (tg_optimizer_load(w->optimizer, path, m->names, &err) != 0) {
        complain("%s", err.message);
        return false;
    }
    if (opt->lr > 0.0f)
        w->optimizer->lr = opt->lr;
    const char *size = tg_metadata_get(md, "stream.text_bytes");
    if (!size || strtod(size, NULL) != (double)train_bytes
        || !read_positions(md, w->pos, opt->batch, train_bytes)) {
        printf("%s: %s: the streams start afresh\n", path, size ? "the training text is not the "
               "one it was saved with" : "no streams saved");
        return true;
    }
    tg_named named[2 * MAX_LAYERS];
    tg_tensor states[2 * MAX_LAYERS];
    char names[2 * MAX_LAYERS][NAME_SIZE];
    int n = stream_states(m, w, states, names);
    for (int k = 0; k < n; k++)
        named[k] = (tg_named){ names[k], &states[k] };
    if (tg_load(path, named, n, &err) != 0) {
        complain("%s", err.message);
        return false;
    }
    return true;
}

/* The model's weights from the checkpoint at path. False (and a message) on failure. */
static bool load_model(model *m, const char *path)
{
    tg_named named[] = { { "readout.weight", m->W_y }, { "readout.bias", m->b_y } };
    tg_error err;
    if (load_module(m, path, &err) != 0 || tg_load(path, named, 2, &err) != 0) {
        complain("%s", err.message);
        return false;
    }
    return true;
}

/* ---- memory ------------------------------------------------------------------------------ */

/* Most of a run's memory is its tape: one chunk, T steps of B streams, with every tensor's
 * data and grad. What the tape holds follows src/tape.c: each node takes NODE_BYTES of
 * bookkeeping, then its result's values rounded up to TAPE_ALIGN bytes, twice when it has a
 * grad. What one step of each layer records follows src/rnn.c and src/gated.c: two products
 * of GATES x H rows (the input's and the state's), then SMALL_NODES nodes of H rows (gates,
 * their activations and products). tests/charlm_smoke.sh checks the estimate against the
 * tape of a real run. */
#define NODE_BYTES 128.0       /* src/tape.c's struct tg_node, 104 bytes, rounded up */
#define TAPE_ALIGN 64.0
static const int GATES[N_CELLS] = { 1, 4, 3 };           /* rnn, lstm, gru: as CELLS */
static const int SMALL_NODES[N_CELLS] = { 1, 13, 17 };

/* Bytes of one node on the tape: a rows x cols result, with a grad or not, and extra bytes
 * of the op's own constants. */
static double node_bytes(double rows, double cols, bool grad, double extra)
{
    double values = ceil(rows * cols * sizeof(float) / TAPE_ALIGN) * TAPE_ALIGN;
    return ceil((NODE_BYTES + (grad ? 2.0 : 1.0) * values + extra) / TAPE_ALIGN) * TAPE_ALIGN;
}

/* Bytes of the tape for one chunk of training (V: vocab_size, H: hidden, L layers): per step
 * the one-hot input (V x B, a constant), L layers, the readout (V x B), its cross-entropy
 * (1 x 1, keeping the B classes) and the running sum (1 x 1); per chunk every layer's carried
 * state (constants) and the mean; and, at most, one copy of every weight that backward keeps
 * transposed. */
static double tape_bytes(const model *m, const options *opt, int vocab_size)
{
    const int k = m->cell;
    double V = vocab_size, H = opt->hidden, B = opt->batch, L = m->layers;
    double cell = 2.0 * node_bytes(GATES[k] * H, B, true, 0.0)
                  + SMALL_NODES[k] * node_bytes(H, B, true, 0.0);
    double step = node_bytes(V, B, false, 0.0) + L * cell + node_bytes(V, B, true, 0.0)
                  + node_bytes(1, 1, true, B * sizeof(int)) + node_bytes(1, 1, true, 0.0);
    double weights = 0.0;
    for (int i = 0; i < m->n_params; i++)
        weights += ceil((double)m->params[i]->rows * m->params[i]->cols * sizeof(float)
                        / TAPE_ALIGN) * TAPE_ALIGN;
    return opt->steps * step + L * (m->has_c ? 2.0 : 1.0) * node_bytes(H, B, false, 0.0)
           + node_bytes(1, 1, true, 0.0) + weights;
}

/* Bytes of the whole run beside the tape: the parameters (data and grad), the optimizer's
 * state (values per parameter value: sgd 0, momentum and adagrad 1, adam 2), the trainer's
 * buffers and the text's. */
static double other_bytes(const model *m, const options *opt, int vocab_size, size_t text_room)
{
    static const double STATE_PER_VALUE[] = { 0, 1, 1, 2 };   /* as OPTIMIZERS */
    double values = 0.0;
    for (int i = 0; i < m->n_params; i++)
        values += (double)m->params[i]->rows * m->params[i]->cols;
    double H = opt->hidden, B = opt->batch, L = m->layers;
    double buffers = (2.0 * L * H * B + vocab_size * B + 2.0 * opt->iters) * sizeof(float)
                     + B * (2.0 * opt->steps * sizeof(int) + sizeof(size_t));
    return (2.0 + STATE_PER_VALUE[opt->optimizer]) * values * sizeof(float) + buffers
           + (double)text_room;
}

/* The memory this machine can give the run, in bytes, and where the number comes from:
 * MemAvailable in /proc/meminfo (Linux), else all of its physical memory; 0 when unknown. */
static double memory_available(const char **source)
{
    FILE *file = fopen("/proc/meminfo", "r");
    char line[256];
    double kib = 0.0;
    while (file && fgets(line, sizeof line, file))
        if (sscanf(line, "MemAvailable: %lf kB", &kib) == 1)
            break;
    if (file)
        fclose(file);
    if (kib > 0.0) {
        *source = "this machine has available (MemAvailable in /proc/meminfo)";
        return kib * 1024.0;
    }
    long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
    *source = "of this machine's physical memory";
    return pages > 0 && page_size > 0 ? (double)pages * (double)page_size : 0.0;
}

/* bytes as a short number with a 1024-based unit, e.g. "24.1 GiB". */
static void format_bytes(char out[32], double bytes)
{
    static const char *const UNITS[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB" };
    int u = 0;
    while (bytes >= 1024.0 && u < 5) {
        bytes /= 1024.0;
        u++;
    }
    snprintf(out, 32, bytes >= 100.0 || u == 0 ? "%.0f %s" : bytes >= 10.0 ? "%.1f %s" : "%.2f %s",
             bytes, UNITS[u]);
}

/* What a training run will need: its tape and all of it, in bytes. */
typedef struct memory_estimate {
    double tape, total;
} memory_estimate;

#define MACHINE_SHARE 0.8      /* of the memory the machine has: the most a run may take */

/* Estimates the run's memory and refuses it when it needs more than --max-memory, or more
 * than MACHINE_SHARE of what the machine has (the rest is left to the system and other
 * programs). False (and a message with the estimate) when refused. */
static bool memory_fits(const model *m, const options *opt, int vocab_size, size_t text_room,
                        memory_estimate *e)
{
    e->tape = tape_bytes(m, opt, vocab_size);
    e->total = e->tape + other_bytes(m, opt, vocab_size, text_room);
    const char *source;
    double machine = memory_available(&source);
    bool over_cap = opt->max_memory > 0.0 && e->total > opt->max_memory;
    bool over_machine = machine > 0.0 && e->total > MACHINE_SHARE * machine;
    if (!over_cap && !over_machine)
        return true;
    char need[32], tape[32], limit[32], has[32], why[200];
    format_bytes(need, e->total);
    format_bytes(tape, e->tape);
    format_bytes(limit, over_cap ? opt->max_memory : MACHINE_SHARE * machine);
    format_bytes(has, machine);
    if (over_cap)
        snprintf(why, sizeof why, "--max-memory %s", limit);
    else
        snprintf(why, sizeof why, "%s, %.0f%% of the %s %s", limit, 100.0 * MACHINE_SHARE, has,
                 source);
    complain("this run needs about %s of memory (%s of it the tape of one chunk: %d steps x %d "
             "streams, hidden %d), more than %s; use a smaller --steps, --batch or --hidden",
             need, tape, opt->steps, opt->batch, opt->hidden, why);
    return false;
}

/* ---- progress and the training loop ------------------------------------------------- */

/* Progress on stderr: a bar redrawn in place on a terminal, else a line every tick. */
typedef struct progress {
    bool terminal;                     /* stderr is a terminal */
    bool shared;                       /* ... and so is stdout: clear the bar for a log line */
    double start, last_drawn;
    long chars_per_iter;
} progress;

static void progress_clear(progress *p)
{
    if (p->shared && bar_drawn > 0) {
        fprintf(stderr, "\r%*s\r", bar_drawn, "");
        bar_drawn = 0;
    }
}

static void progress_show(progress *p, int iter, int iters, float smoothed_loss)
{
    double elapsed = now() - p->start;
    double rate = elapsed > 0.0 ? (double)iter * (double)p->chars_per_iter / elapsed : 0.0;
    int eta = (int)(elapsed * (iters - iter) / iter + 0.5);
    int filled = (int)((long long)BAR_WIDTH * iter / iters);
    char bar[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    char line[160];
    int n = snprintf(line, sizeof line, "[%s] %3d%%  iter %d/%d  loss %.4g  %.0f chars/s  "
                     "ETA %d:%02d", bar, (int)(100LL * iter / iters), iter, iters,
                     smoothed_loss, rate, eta / 60, eta % 60);
    if (p->terminal) {
        fprintf(stderr, "\r%s%*s", line, bar_drawn > n ? bar_drawn - n : 0, "");
        bar_drawn = n;
        p->last_drawn = now();
    } else
        complain("%s", line);
}

/* The report line of an iteration: the training loss (the mean since the last report) and the
 * validation loss, each in nats per byte (9 digits: a float's exact value) and bits per char. */
static void report(long iter, double train_loss, const double *held_out)
{
    printf("iter %7ld  train %.9g nats/byte (%.4f bits/char)", iter, train_loss,
           train_loss / log(2.0));
    if (held_out)
        printf("  validation %.9g nats/byte (%.4f bits/char)", *held_out, *held_out / log(2.0));
    putchar('\n');
}

/* The losses of the last report, to tell when the held-out loss turns up. */
typedef struct trend {
    bool any;
    double train, held_out;
} trend;

static void warn_if_memorising(trend *last, double train_loss, double held_out)
{
    if (last->any && held_out > last->held_out && train_loss < last->train)
        printf("warning: the validation loss rose (%.4f -> %.4f) while the training loss fell "
               "(%.4f -> %.4f): the model is learning the training text by heart\n",
               last->held_out, held_out, last->train, train_loss);
    *last = (trend){ true, train_loss, held_out };
}

/* Trains for opt->iters iterations: LOG_LINES report lines on stdout (with the held-out loss
 * when e is not NULL), progress on stderr, a checkpoint (with --save) every tick and at the
 * end. False on failure. */
static bool train(trainer *w, evaluator *e, model *m, const text *t, const text *val,
                  const vocab *v, const options *opt)
{
    bool terminal = isatty(fileno(stderr));
    progress p = { .terminal = terminal, .shared = terminal && isatty(fileno(stdout)),
                   .start = now(), .chars_per_iter = (long)opt->steps * opt->batch };
    int log_every = opt->iters > LOG_LINES ? opt->iters / LOG_LINES : 1;
    int tick_every = opt->iters > TICKS ? opt->iters / TICKS : 1;
    double window = 0.0;                      /* the sum of the losses since the last report */
    double average = 0.0, weight = 0.0;       /* the moving average and its total weight */
    trend last = { false, 0.0, 0.0 };
    for (int iter = 1; iter <= opt->iters; iter++) {
        float loss;
        if (!train_step(w, m, t, opt, &loss))
            return false;
        w->losses[iter - 1] = loss;
        average = SMOOTHING * average + (1.0 - SMOOTHING) * loss;
        weight = SMOOTHING * weight + (1.0 - SMOOTHING);
        w->smoothed[iter - 1] = (float)(average / weight);
        window += loss;
        bool end = iter == opt->iters;
        if (iter % log_every == 0 || end) {
            int n = iter % log_every == 0 ? log_every : iter % log_every;
            double held_out = 0.0;
            if (e && !held_out_loss(e, m, val, &held_out))
                return false;
            if (e && w->n_reports < MAX_REPORTS) {
                w->val_iter[w->n_reports] = (float)w->iteration;
                w->val_loss[w->n_reports++] = (float)held_out;
            }
            progress_clear(&p);
            report(w->iteration, window / n, e ? &held_out : NULL);
            if (e)
                warn_if_memorising(&last, window / n, held_out);
            fflush(stdout);
            window = 0.0;
        }
        bool tick = iter % tick_every == 0 || end;
        if (tick && opt->save && !save_checkpoint(m, v, w, opt, t->n, opt->save))
            return false;
        if (tick || (p.terminal && now() - p.last_drawn >= REDRAW_SECONDS))
            progress_show(&p, iter, opt->iters, w->smoothed[iter - 1]);
    }
    if (bar_drawn > 0)
        fputc('\n', stderr);
    bar_drawn = 0;
    double seconds = fmax(now() - p.start, 1e-9);
    char held[32];
    format_bytes(held, (double)tg_tape_reserved_bytes(w->tape));
    printf("trained %d iterations (%ld chars) in %.1f s: %.0f chars/s; the tape held %s\n",
           opt->iters, (long)opt->iters * p.chars_per_iter, seconds,
           (double)opt->iters * (double)p.chars_per_iter / seconds, held);
    return true;
}

/* The loss curve as an SVG chart: every chunk's loss, the smoothed loss, the validation loss
 * of each report and ln V. False (and a message) on failure. */
static bool write_plot(const trainer *w, const options *opt, int vocab_size)
{
    int n = opt->iters;
    float *x = malloc((size_t)n * sizeof *x);
    if (!x) {
        complain("out of memory");
        return false;
    }
    for (int i = 0; i < n; i++)
        x[i] = (float)(w->iteration - n + i + 1);
    float ends[2] = { x[0], x[n - 1] };
    float uniform[2] = { logf((float)vocab_size), logf((float)vocab_size) };
    tg_series series[] = {
        { "loss of each chunk", x, w->losses, n, TG_SERIES_LINE },
        { "smoothed", x, w->smoothed, n, TG_SERIES_LINE },
        { "ln V: a uniform guess", ends, uniform, 2, TG_SERIES_REFERENCE },
        { "validation", w->val_iter, w->val_loss, w->n_reports, TG_SERIES_MARKED },
    };
    char title[160];
    snprintf(title, sizeof title, "charlm: %s, %d x %d hidden, %s, chunks of %d steps x %d streams",
             CELLS[opt->cell], opt->layers, opt->hidden, OPTIMIZERS[opt->optimizer], opt->steps,
             opt->batch);
    tg_chart chart = { title, "iteration", "cross-entropy, nats per byte (log scale)", 1,
                       series, w->n_reports > 0 ? 4 : 3 };
    tg_error err;
    int status = tg_chart_write_svg(&chart, opt->plot, &err);
    if (status != 0)
        complain("%s", err.message);
    free(x);
    return status == 0;
}

/* ---- sampling ---------------------------------------------------------------------------- */

/* Feeds class c to the model (batch 1) on a no-grad tape, carrying the states in p. Returns
 * the logits of the next byte (V x 1, valid until the next call), or NULL (and a message). */
static tg_tensor *read_byte(tg_tape *tape, const model *m, pass *p, int c)
{
    tg_tape_reset(tape);
    p->classes[0] = c;
    tg_tensor *logits = pass_forward(tape, m, p, 1) == 0 ? readout(tape, m, p->outputs[0]) : NULL;
    if (!logits) {
        complain("%s", tg_tape_error(tape));
        return NULL;
    }
    pass_carry(p, m);
    return logits;
}

/* A class drawn from softmax(logits / temperature); p is V doubles of scratch. */
static int draw(const tg_tensor *logits, float temperature, double *p, tg_rng *rng)
{
    int n = logits->rows;
    float top = logits->data[0];
    for (int i = 1; i < n; i++)
        top = fmaxf(top, logits->data[i]);
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        p[i] = exp((double)(logits->data[i] - top) / temperature);   /* at most 1: no overflow */
        sum += p[i];
    }
    double u = tg_rng_uniform(rng) * sum;
    for (int i = 0; i < n - 1; i++) {
        u -= p[i];
        if (u < 0.0)
            return i;
    }
    return n - 1;
}

/* Prints --prime and then opt->sample bytes drawn from the model, and a newline. The model
 * starts from zero states and reads the prime, or a newline when there is none. False (and a
 * message) on failure. */
static bool sample(const model *m, const vocab *v, const options *opt, tg_rng *rng)
{
    tg_tape *tape = tg_tape_new();
    tg_tape_set_no_grad(tape, 1);          /* inference: nothing recorded for a backward */
    pass p;
    bool ok = pass_init(&p, m, 1, 1);
    double *probs = malloc((size_t)v->size * sizeof *probs);
    if (!ok || !tape || !probs) {
        complain("out of memory");
        ok = false;
    }
    tg_tensor *logits = NULL;
    for (const char *q = opt->prime; ok && q && *q; q++) {
        putchar(*q);
        ok = (logits = read_byte(tape, m, &p, v->class_of[(unsigned char)*q])) != NULL;
    }
    if (ok && !opt->prime) {
        int start = v->class_of['\n'] >= 0 ? v->class_of['\n'] : 0;   /* else the first byte */
        ok = (logits = read_byte(tape, m, &p, start)) != NULL;
    }
    for (int i = 0; ok && i < opt->sample; i++) {
        int c = draw(logits, opt->temperature, probs, rng);
        putchar(v->byte[c]);
        if (i + 1 < opt->sample)
            ok = (logits = read_byte(tape, m, &p, c)) != NULL;
    }
    if (ok)
        putchar('\n');
    free(probs);
    pass_free(&p);
    tg_tape_free(tape);
    return ok;
}

/* ---- main -------------------------------------------------------------------------------- */

/* The first byte of s that is not in v, or -1 when all are. */
static int missing_byte(const char *s, const vocab *v)
{
    for (; s && *s; s++)
        if (v->class_of[(unsigned char)*s] < 0)
            return (unsigned char)*s;
    return -1;
}

/* The texts (read and encoded when there is training to do, or a vocabulary to find) and the
 * vocabulary (from the checkpoint when resumed, else from the texts); without --val the last
 * VAL_SHARE of the text is held out. Returns 0, 1 (a runtime failure) or 2 (a --prime outside
 * the vocabulary). */
static int prepare_data(const options *opt, bool resumed, vocab *v, text *t, text *val)
{
    bool need_text = opt->iters > 0 || !resumed;
    if (need_text && (!read_text(t, opt->text) || (opt->val && !read_text(val, opt->val))))
        return 1;
    if (!resumed) {
        bool present[N_BYTES] = { false };
        for (size_t i = 0; i < t->n + val->n; i++)
            present[i < t->n ? t->data[i] : val->data[i - t->n]] = true;
        vocab_from_mask(v, present);
        if (v->size < 2) {
            complain("%s holds one distinct byte only: there is nothing to predict", t->name);
            return 1;
        }
    }
    const char *source = resumed ? opt->resume : t->name;
    if (need_text && (!encode(t, v, opt->unknown, source)
                      || (opt->val && !encode(val, v, opt->unknown, source))
                      || (!opt->val && !hold_out(t, val))))
        return 1;
    if (need_text && t->n < 2) {
        complain("%s has %zu bytes to train on; it needs at least 2", t->name, t->n);
        return 1;
    }
    int missing = missing_byte(opt->prime, v);
    if (missing >= 0) {
        char byte[16];
        describe_byte(byte, missing);
        complain("--prime has byte %s, which is not in the vocabulary (see charlm --help)", byte);
        return 2;
    }
    if (need_text)
        printf("text: %s, %zu bytes to train on, %zu for validation (%s); vocabulary of %d bytes (a "
               "uniform guess scores ln %d = %.2f nats, %.2f bits)\n", t->name, t->n, val->n,
               val->n >= 2 ? val->name : "too few: no validation loss", v->size, v->size,
               log((double)v->size), log2((double)v->size));
    return 0;
}

/* The checkpoint's run, when resuming: its metadata (to free) and settings, and the
 * vocabulary. Returns 0, 1 (unreadable) or 2 (a flag conflicts with it). */
static int read_resume(options *opt, tg_metadata **md, vocab *v)
{
    run_info saved;
    tg_error err;
    if (opt->resume && !(*md = tg_load_metadata(opt->resume, &err))) {
        complain("%s", err.message);
        return 1;
    }
    if (opt->resume && !read_run(*md, opt->resume, &saved, v))
        return 1;
    return settle_options(opt, opt->resume ? &saved : NULL) ? 0 : 2;
}

/* Builds the model, trains it (with the held-out loss when there is held-out text) and saves
 * it. Returns 0 or 1. */
static int fit(options *opt, model *m, const vocab *v, const text *t, const text *val,
               const tg_metadata *md)
{
    trainer w = { 0 };
    evaluator e = { 0 };
    memory_estimate need = { 0 };
    bool training = opt->iters > 0, held_out = training && val->n >= 2;
    int status = 0;
    if (training && !memory_fits(m, opt, v->size, t->room, &need))
        status = 1;
    if (status == 0 && training && (!trainer_init(&w, m, opt, t->n)
                                    || (held_out && !evaluator_init(&e, m, opt, val)))) {
        complain("out of memory");
        status = 1;
    }
    if (status == 0 && md && !load_model(m, opt->resume))
        status = 1;
    if (status == 0 && md && training && !load_trainer(&w, m, md, opt->resume, opt, t->n))
        status = 1;
    if (status == 0 && md && training)
        w.iteration = (long)strtod(tg_metadata_get(md, "iteration"), NULL);
    if (status == 0 && training) {
        char total[32], tape[32];
        format_bytes(total, need.total);
        format_bytes(tape, need.tape);
        printf("model: %s, %d layer%s of %d%s%s; %s lr %g, clip %g; %d iterations of %d steps x "
               "%d streams; memory about %s, %s of it the tape\n", CELLS[opt->cell], opt->layers,
               opt->layers > 1 ? "s" : "", opt->hidden, md ? ", resumed from " : "",
               md ? opt->resume : "", OPTIMIZERS[opt->optimizer], w.optimizer->lr, opt->clip,
               opt->iters, opt->steps, opt->batch, total, tape);
        fflush(stdout);
        if (!train(&w, held_out ? &e : NULL, m, t, val, v, opt)
            || (opt->plot && !write_plot(&w, opt, v->size)))
            status = 1;
    } else if (status == 0 && opt->save && !save_checkpoint(m, v, NULL, opt, 0, opt->save))
        status = 1;
    trainer_free(&w);
    evaluator_free(&e);
    return status;
}

static int run(options *opt)
{
    vocab v;
    text t = { 0 }, val = { 0 };
    model m = { 0 };
    tg_metadata *md = NULL;
    tg_rng rng = tg_rng_new(opt->seed);
    int status = read_resume(opt, &md, &v);
    if (status == 0 && opt->iters > 0 && opt->save && !can_save(opt->save))
        status = 1;
    if (status == 0)
        status = prepare_data(opt, md != NULL, &v, &t, &val);
    if (status == 0 && !model_init(&m, opt->cell, v.size, opt->hidden, opt->layers, &rng)) {
        complain("out of memory");
        status = 1;
    }
    if (status == 0)
        status = fit(opt, &m, &v, &t, &val, md);
    if (status == 0 && opt->sample > 0) {
        if (opt->iters > 0)
            printf("\nsample (temperature %g):\n", opt->temperature);
        if (!sample(&m, &v, opt, &rng))
            status = 1;
    }
    model_free(&m);
    tg_metadata_free(md);
    free(t.data);
    free(val.data);
    return status;
}

int main(int argc, char **argv)
{
    program = "charlm";
    options opt = parse_args(argc, argv);
    int status = run(&opt);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        complain("cannot write the output: %s", strerror(errno));
        if (status == 0)
            status = 1;
    }
    return status;
}
