/* charlm.c: a character-level language model. A recurrent cell reads a text one byte at a
 * time, learns to predict the next byte, and then writes new text one sampled byte at a time.
 *
 * The model, for B streams of text side by side as columns (V: the number of distinct bytes
 * in the text, H: the hidden size; an LSTM carries c beside h):
 *
 *     x_t      = one-hot of the byte at t                        V x B
 *     h_t      = cell(x_t, h_{t-1})   (rnn, lstm or gru)         H x B
 *     logits_t = W_y h_t + b_y                                   V x B
 *     loss     = mean over t of cross_entropy(logits_t, the byte at t + 1)
 *
 * A model that knows nothing gives every byte probability 1/V, a loss of ln V nats per byte.
 * Truncated BPTT: the text is far too long for one tape, so each iteration records a chunk of
 * T steps, backpropagates through those alone and updates the weights. The state is not reset
 * between chunks: the last h (and c) of a chunk becomes the first state of the next, copied
 * into a plain tg_constant with no history. So the forward pass still sees context from earlier
 * chunks while gradients stop at the chunk's start (the tape is reset every chunk). The B
 * streams start at evenly spaced points of the text and each reads on where its last chunk
 * ended (wrapping around at the end). To generate, the model reads a byte, turns its logits
 * into p_i = exp(logit_i / temperature) / sum_j exp(logit_j / temperature), draws the next
 * byte from p and reads that: temperature 1 samples the model as it is, below 1 favours its
 * likeliest guesses (safer, more repetitive), above 1 flattens p (more surprise, more typos).
 *
 * Checkpoints are two safetensors files, because tg_cell_save and tg_save each write a whole
 * file: FILE holds the cell alone under PyTorch's names (it loads into torch.nn.RNNCell,
 * LSTMCell or GRUCell), and FILE.readout holds "readout.weight" (V x H), "readout.bias"
 * (V x 1) and "vocab" (256 x 1: 1 for each byte of the vocabulary, else 0; the classes are
 * those bytes in increasing order). A resumed run takes its vocabulary from the checkpoint,
 * needs the same --cell and --hidden, and starts the optimizer's state (e.g. Adam's moments)
 * and the streams' positions afresh. */
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
#include "model.h"
#include "tapegrad.h"

enum {
    N_BYTES = 256,
    LOG_LINES = 20,                        /* loss lines on stdout in a run */
    TICKS = 10,                            /* progress lines (off a terminal) and checkpoints */
    BAR_WIDTH = 24,
    PATH_SIZE = 4096,
    MAX_TEXT_BYTES = 1 << 30,
};
#define DEFAULT_TEXT "docs/*.md"
#define READOUT_SUFFIX ".readout"
#define SMOOTHING 0.95           /* the smoothed loss weighs the loss k iterations back by
                                    SMOOTHING^k (a bias-corrected moving average, as in Adam) */
#define REDRAW_SECONDS 0.1       /* a terminal's progress bar is redrawn at most this often */

static const char USAGE[] =
    "usage: charlm [--text FILE] [--cell rnn|lstm|gru] [--hidden H] [--steps T] [--batch B]\n"
    "              [--iters N] [--optimizer sgd|momentum|adagrad|adam] [--lr X] [--clip X]\n"
    "              [--seed S] [--save FILE] [--resume FILE] [--sample N] [--temperature X]\n"
    "              [--prime STRING] [--plot FILE.svg] [--max-memory SIZE]\n"
    "Trains a character-level language model (a recurrent cell reading one-hot bytes, a linear\n"
    "readout, softmax cross-entropy) with truncated BPTT, printing the loss in nats per byte,\n"
    "then writes text sampled from it if asked. Run from the repository root, it learns the\n"
    "project's own docs (" DEFAULT_TEXT ", concatenated in sorted order) in under a minute.\n"
    "  --text FILE        the text to learn (default " DEFAULT_TEXT ")\n"
    "  --cell NAME        rnn, lstm or gru (default gru)\n"
    "  --hidden H         hidden units, 1 to 1024 (default 128)\n"
    "  --steps T          bytes per chunk: BPTT reaches T steps back, 1 to 1000 (default 32)\n"
    "  --batch B          streams read side by side, 1 to 1024 (default 32)\n"
    "  --iters N          training iterations (chunks), 0 to 1000000 (default 600)\n"
    "  --optimizer NAME   sgd, momentum, adagrad or adam (default adam)\n"
    "  --lr X             learning rate above 0 (default: sgd 2, momentum 0.2, adagrad 0.1,\n"
    "                     adam 0.01)\n"
    "  --clip X           clip the gradient norm at X, 0 = off (default 5)\n"
    "  --seed S           seed for the weights and the sampling, 0 or more (default 1)\n"
    "  --save FILE        write a checkpoint every 10% of the run and at its end: the cell to\n"
    "                     FILE, the readout and the vocabulary to FILE" READOUT_SUFFIX "\n"
    "  --resume FILE      start from a checkpoint saved with the same --cell and --hidden\n"
    "                     (with --iters 0 no text is read)\n"
    "  --sample N         after training, write N bytes drawn from the model, 0 to 1000000\n"
    "                     (default 0)\n"
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
static const char *const OPTIMIZERS[] = { "sgd", "momentum", "adagrad", "adam" };
static const tg_optimizer_kind KINDS[] = { TG_SGD, TG_MOMENTUM, TG_ADAGRAD, TG_ADAM };
static const float DEFAULT_LR[] = { 2.0f, 0.2f, 0.1f, 0.01f };
#define N_CELLS (int)(sizeof CELLS / sizeof CELLS[0])
#define N_OPTIMIZERS (int)(sizeof OPTIMIZERS / sizeof OPTIMIZERS[0])

typedef struct options {
    const char *text, *cell, *optimizer, *save, *resume, *prime, *plot;
    char save_readout[PATH_SIZE], resume_readout[PATH_SIZE];   /* FILE.readout */
    int hidden, steps, batch, iters, sample;
    tg_optimizer_kind kind;
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

/* out = path + READOUT_SUFFIX: the second file of a checkpoint. */
static void readout_path(const char *flag, const char *path, char out[PATH_SIZE])
{
    if (snprintf(out, PATH_SIZE, "%s" READOUT_SUFFIX, path) >= PATH_SIZE)
        usage_error("%s: the path is too long", flag);
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
    options opt = { .cell = "gru", .hidden = 128, .steps = 32, .batch = 32, .iters = 600,
                    .optimizer = "adam", .clip = 5.0f, .seed = 1, .temperature = 0.8f };
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        help_if_asked(flag, USAGE, true);
        const char *value = i + 1 < argc ? argv[++i] : NULL;
        const char **string = strcmp(flag, "--text") == 0 ? &opt.text
                            : strcmp(flag, "--save") == 0 ? &opt.save
                            : strcmp(flag, "--resume") == 0 ? &opt.resume
                            : strcmp(flag, "--prime") == 0 ? &opt.prime
                            : strcmp(flag, "--plot") == 0 ? &opt.plot : NULL;
        if (string) {
            if (!value || !*value)
                usage_error("%s needs a value", flag);
            *string = value;
        } else if (strcmp(flag, "--cell") == 0)
            opt.cell = CELLS[one_of(flag, value, CELLS, N_CELLS)];
        else if (strcmp(flag, "--optimizer") == 0)
            opt.optimizer = OPTIMIZERS[one_of(flag, value, OPTIMIZERS, N_OPTIMIZERS)];
        else if (strcmp(flag, "--hidden") == 0)
            opt.hidden = (int)whole_number(flag, value, 1, 1024);
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
    int k = one_of("--optimizer", opt.optimizer, OPTIMIZERS, N_OPTIMIZERS);
    opt.kind = KINDS[k];
    if (opt.lr == 0.0f)
        opt.lr = DEFAULT_LR[k];
    if (opt.plot && opt.iters == 0)
        usage_error("--plot needs --iters above 0");
    if (opt.prime && opt.sample == 0)
        usage_error("--prime needs --sample above 0");
    if (opt.save)
        readout_path("--save", opt.save, opt.save_readout);
    if (opt.resume)
        readout_path("--resume", opt.resume, opt.resume_readout);
    return opt;
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

/* Replaces every byte of t by its class in v, the vocabulary of source (named in messages).
 * False (and a message) when a byte is not in v. */
static bool encode(text *t, const vocab *v, const char *source)
{
    for (size_t i = 0; i < t->n; i++) {
        int c = v->class_of[t->data[i]];
        if (c < 0) {
            char byte[16];
            describe_byte(byte, t->data[i]);
            complain("%s has byte %s at offset %zu, which is not in the vocabulary of %s",
                     t->name, byte, i, source);
            return false;
        }
        t->data[i] = (unsigned char)c;
    }
    return true;
}

/* ---- the model --------------------------------------------------------------------------- */

/* The cell (V inputs, H hidden units) and its readout W_y: V x H, b_y: V x 1 (model.h), with
 * PyTorch's init. False when out of memory (model_free cleans up either way). */
static bool model_init(model *m, const char *cell_name, int vocab_size, int hidden, tg_rng *rng)
{
    if (!model_new(m, cell_name, vocab_size, hidden, vocab_size, tg_rng_next(rng)))
        return false;
    model_init_readout(m, rng);
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
    tg_tensor *x = tg_constant(tape, m->cell->input_size, batch, scratch);
    for (int b = 0; b < batch; b++)
        scratch[classes[b] * batch + b] = 0.0f;
    return x;
}

/* The state carried from one chunk (or sampled byte) to the next, outside any tape. */
typedef struct carry {
    float *h, *c;                      /* H x B each; c is unused by cells without one */
} carry;

static bool carry_init(carry *s, int hidden, int batch)
{
    size_t n = (size_t)hidden * (size_t)batch;
    *s = (carry){ calloc(n, sizeof(float)), calloc(n, sizeof(float)) };   /* h = c = 0 */
    return s->h && s->c;
}

static void carry_free(carry *s)
{
    free(s->h);
    free(s->c);
}

/* The carried state as new tape constants: the start of a fresh history, detached from the
 * last (truncated BPTT: no gradient flows back into the previous chunk). */
static tg_cell_state carry_in(tg_tape *tape, const model *m, const carry *s, int batch)
{
    return (tg_cell_state){ tg_constant(tape, m->cell->hidden_size, batch, s->h),
                            m->cell->has_c ? tg_constant(tape, m->cell->hidden_size, batch, s->c) : NULL };
}

static void carry_out(carry *s, const model *m, tg_cell_state state, int batch)
{
    size_t bytes = (size_t)m->cell->hidden_size * (size_t)batch * sizeof(float);
    memcpy(s->h, state.h->data, bytes);
    if (m->cell->has_c)
        memcpy(s->c, state.c->data, bytes);
}

/* ---- checkpoints ------------------------------------------------------------------------- */

/* The vocabulary as a 256 x 1 tensor over mask: 1 for each byte in it, else 0. */
static tg_tensor vocab_tensor(float mask[N_BYTES])
{
    return (tg_tensor){ .rows = N_BYTES, .cols = 1, .data = mask };
}

/* Writes the cell to path and the readout and vocabulary to readout_path. False (and a
 * message) on failure. */
static bool save_checkpoint(const model *m, const vocab *v, const char *path,
                            const char *readout_path)
{
    float mask[N_BYTES] = { 0 };
    for (int i = 0; i < v->size; i++)
        mask[v->byte[i]] = 1.0f;
    tg_tensor vocab_mask = vocab_tensor(mask);
    tg_named named[] = { { "readout.weight", m->W_y }, { "readout.bias", m->b_y },
                         { "vocab", &vocab_mask } };
    tg_error err;
    if (tg_cell_save(m->cell, path, &err) != 0 || tg_save(readout_path, named, 3, &err) != 0) {
        complain("%s", err.message);
        return false;
    }
    return true;
}

/* Makes sure, before training, that the checkpoint at path and readout_path can be written:
 * that neither is a directory, and that a file can be made beside them (a temporary one,
 * removed at once). False (and a message naming path and the reason) when not. */
static bool can_save(const char *path, const char *readout_path)
{
    struct stat st;
    const char *directory = stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? path
                          : stat(readout_path, &st) == 0 && S_ISDIR(st.st_mode) ? readout_path
                          : NULL;
    if (directory) {
        complain("--save %s: cannot write %s: it is a directory", path, directory);
        return false;
    }
    char probe[PATH_SIZE];
    int fd = -1;
    if (snprintf(probe, sizeof probe, "%s.XXXXXX", readout_path) < (int)sizeof probe)
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

/* Reads the vocabulary saved in readout_path. False (and a message) on failure. */
static bool load_vocab(vocab *v, const char *readout_path)
{
    float mask[N_BYTES];
    tg_tensor vocab_mask = vocab_tensor(mask);
    tg_named named = { "vocab", &vocab_mask };
    tg_error err;
    if (tg_load(readout_path, &named, 1, &err) != 0) {
        complain("%s", err.message);
        return false;
    }
    bool present[N_BYTES];
    for (int b = 0; b < N_BYTES; b++)
        present[b] = mask[b] != 0.0f;
    vocab_from_mask(v, present);
    if (v->size < 2) {
        complain("%s: the vocabulary has %d bytes, fewer than 2", readout_path, v->size);
        return false;
    }
    return true;
}

/* Loads the readout from readout_path and the cell from path. False (and a message) on
 * failure. */
static bool load_checkpoint(model *m, const char *path, const char *readout_path)
{
    tg_named named[] = { { "readout.weight", m->W_y }, { "readout.bias", m->b_y } };
    tg_error err;
    if (tg_load(readout_path, named, 2, &err) != 0 || tg_cell_load(m->cell, path, &err) != 0) {
        complain("%s (resume with the --cell and --hidden the checkpoint was saved with)",
                 err.message);
        return false;
    }
    return true;
}

/* ---- memory ------------------------------------------------------------------------------ */

/* Most of a run's memory is its tape: one chunk, T steps of B streams, with every tensor's
 * data and grad. What the tape holds follows src/tape.c: each node takes NODE_BYTES of
 * bookkeeping, then its result's values rounded up to TAPE_ALIGN bytes, twice when it has a
 * grad. What one step of each cell records follows src/rnn.c and src/gated.c: two products
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

/* Bytes of the tape for one chunk of training (V: vocab_size, H: hidden): per step the
 * one-hot input (V x B, a constant), the cell, the readout (V x B), its cross-entropy (1 x 1,
 * keeping the B classes) and the running sum (1 x 1); per chunk the carried state (constants)
 * and the mean; and, at most, one copy of every weight that backward keeps transposed. */
static double tape_bytes(const model *m, const options *opt, int vocab_size)
{
    int k = 0;
    while (strcmp(opt->cell, CELLS[k]) != 0)
        k++;
    double V = vocab_size, H = opt->hidden, B = opt->batch;
    double cell = 2.0 * node_bytes(GATES[k] * H, B, true, 0.0)
                  + SMALL_NODES[k] * node_bytes(H, B, true, 0.0);
    double step = node_bytes(V, B, false, 0.0) + cell + node_bytes(V, B, true, 0.0)
                  + node_bytes(1, 1, true, B * sizeof(int)) + node_bytes(1, 1, true, 0.0);
    double weights = 0.0;
    for (int i = 0; i < m->n_params; i++)
        weights += ceil((double)m->params[i]->rows * m->params[i]->cols * sizeof(float)
                        / TAPE_ALIGN) * TAPE_ALIGN;
    return opt->steps * step + (m->cell->has_c ? 2.0 : 1.0) * node_bytes(H, B, false, 0.0)
           + node_bytes(1, 1, true, 0.0) + weights;
}

/* Bytes of the whole run beside the tape: the parameters (data and grad), the optimizer's
 * state (values per parameter value: sgd 0, momentum and adagrad 1, adam 2), the trainer's
 * buffers and the text's. */
static double other_bytes(const model *m, const options *opt, int vocab_size, size_t text_room)
{
    static const double STATE_PER_VALUE[] = { [TG_SGD] = 0, [TG_MOMENTUM] = 1, [TG_ADAGRAD] = 1,
                                               [TG_ADAM] = 2 };
    double values = 0.0;
    for (int i = 0; i < m->n_params; i++)
        values += (double)m->params[i]->rows * m->params[i]->cols;
    double H = opt->hidden, B = opt->batch;
    double buffers = (2.0 * H * B + vocab_size * B + 2.0 * opt->iters) * sizeof(float)
                     + B * (2.0 * sizeof(int) + sizeof(size_t));
    return (2.0 + STATE_PER_VALUE[opt->kind]) * values * sizeof(float) + buffers
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

/* ---- training ---------------------------------------------------------------------------- */

/* Everything a training step uses, allocated once before the first. */
typedef struct trainer {
    tg_tape *tape;
    tg_optimizer *optimizer;
    carry state;                       /* H x B: the state at the end of the last chunk */
    float *one_hot;                    /* V x B scratch, zeros */
    int *inputs, *targets;             /* B classes each */
    size_t *pos;                       /* B: where each stream reads next */
    float *losses, *smoothed;          /* iters each: every chunk's loss, and smoothed */
} trainer;

static void trainer_free(trainer *w)
{
    tg_tape_free(w->tape);
    tg_optimizer_free(w->optimizer);
    carry_free(&w->state);
    free(w->one_hot);
    free(w->inputs);
    free(w->targets);
    free(w->pos);
    free(w->losses);
    free(w->smoothed);
}

/* False when out of memory (trainer_free cleans up either way). */
static bool trainer_init(trainer *w, model *m, const options *opt, size_t text_size)
{
    size_t batch = (size_t)opt->batch, iters = (size_t)opt->iters;
    w->tape = tg_tape_new();
    w->optimizer = tg_optimizer_new(opt->kind, m->params, m->n_params, opt->lr, NULL);
    w->one_hot = calloc((size_t)m->cell->input_size * batch, sizeof *w->one_hot);
    w->inputs = malloc(batch * sizeof *w->inputs);
    w->targets = malloc(batch * sizeof *w->targets);
    w->pos = malloc(batch * sizeof *w->pos);
    w->losses = malloc(iters * sizeof *w->losses);
    w->smoothed = malloc(iters * sizeof *w->smoothed);
    if (!carry_init(&w->state, m->cell->hidden_size, opt->batch) || !w->tape || !w->optimizer
        || !w->one_hot || !w->inputs || !w->targets || !w->pos || !w->losses || !w->smoothed)
        return false;
    for (size_t b = 0; b < batch; b++)
        w->pos[b] = b * text_size / batch;        /* evenly spaced starts */
    return true;
}

/* The forward pass over the next chunk of every stream, recorded on the tape: the mean over
 * its steps of the cross-entropy of the next byte. Sets *last to the chunk's last state. NULL
 * with the tape's error set on failure. */
static tg_tensor *chunk_loss(trainer *w, const model *m, const text *t, int steps, int batch,
                             tg_cell_state *last)
{
    tg_tape *tape = w->tape;
    tg_cell_state state = carry_in(tape, m, &w->state, batch);          /* h (and c): H x B */
    tg_tensor *total = NULL;                                            /* 1 x 1 */
    for (int s = 0; s < steps; s++) {
        for (int b = 0; b < batch; b++) {
            size_t here = (w->pos[b] + (size_t)s) % t->n;
            w->inputs[b] = t->data[here];
            w->targets[b] = t->data[(here + 1) % t->n];
        }
        tg_tensor *x = one_hot(tape, m, w->one_hot, w->inputs, batch);  /* V x B */
        state = tg_cell_step(tape, m->cell, x, state);                  /* H x B */
        tg_tensor *logits = readout(tape, m, state.h);                  /* V x B */
        tg_tensor *loss = tg_cross_entropy(tape, logits, w->targets);   /* 1 x 1 */
        total = total ? tg_add(tape, total, loss) : loss;
    }
    *last = state;
    return tg_scale(tape, total, 1.0f / (float)steps);
}

/* One iteration: forward over a chunk, backward, clip, update, and carry the state on. Sets
 * *loss_out. False (and a message) on failure. */
static bool train_step(trainer *w, model *m, const text *t, const options *opt, int iter,
                       float *loss_out)
{
    tg_tape_reset(w->tape);                   /* forget the last chunk, keep the memory */
    tg_zero_grad(m->params, m->n_params, NULL);
    tg_cell_state last;
    tg_tensor *loss = chunk_loss(w, m, t, opt->steps, opt->batch, &last);
    if (loss && !isfinite(loss->data[0])) {
        complain("the loss is not finite at iteration %d; try a smaller --lr", iter);
        return false;
    }
    if (tg_backward(w->tape, loss) != 0) {
        complain("%s", tg_tape_error(w->tape));
        return false;
    }
    if (opt->clip > 0.0f && isnan(tg_clip_grad_norm(m->params, m->n_params, opt->clip))) {
        complain("a gradient is not finite at iteration %d; try a smaller --lr", iter);
        return false;
    }
    tg_error err;
    if (tg_optimizer_step(w->optimizer, &err) != 0) {
        complain("iteration %d: %s; try a smaller --lr or a --clip", iter, err.message);
        return false;
    }
    carry_out(&w->state, m, last, opt->batch);
    for (int b = 0; b < opt->batch; b++)
        w->pos[b] = (w->pos[b] + (size_t)opt->steps) % t->n;
    *loss_out = loss->data[0];
    return true;
}

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

/* Trains for opt->iters iterations: LOG_LINES loss lines on stdout, progress on stderr, a
 * checkpoint (with --save) every tick and at the end. False on failure. */
static bool train(trainer *w, model *m, const text *t, const vocab *v, const options *opt)
{
    bool terminal = isatty(fileno(stderr));
    progress p = { .terminal = terminal, .shared = terminal && isatty(fileno(stdout)),
                   .start = now(), .chars_per_iter = (long)opt->steps * opt->batch };
    int log_every = opt->iters > LOG_LINES ? opt->iters / LOG_LINES : 1;
    int tick_every = opt->iters > TICKS ? opt->iters / TICKS : 1;
    double window = 0.0;                      /* the sum of the losses since the last log line */
    double average = 0.0, weight = 0.0;       /* the moving average and its total weight */
    for (int iter = 1; iter <= opt->iters; iter++) {
        float loss;
        if (!train_step(w, m, t, opt, iter, &loss))
            return false;
        w->losses[iter - 1] = loss;
        average = SMOOTHING * average + (1.0 - SMOOTHING) * loss;
        weight = SMOOTHING * weight + (1.0 - SMOOTHING);
        w->smoothed[iter - 1] = (float)(average / weight);
        window += loss;
        bool last = iter == opt->iters;
        if (iter % log_every == 0 || last) {
            int n = iter % log_every == 0 ? log_every : iter % log_every;
            progress_clear(&p);
            printf("iter %7d  loss %.5g  (mean of the last %d)\n", iter, window / n, n);
            fflush(stdout);
            window = 0.0;
        }
        bool tick = iter % tick_every == 0 || last;
        if (tick && opt->save && !save_checkpoint(m, v, opt->save, opt->save_readout))
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

/* The loss curve as an SVG chart: every chunk's loss, the smoothed loss and ln V. False (and
 * a message) on failure. */
static bool write_plot(const trainer *w, const options *opt, int vocab_size)
{
    int n = opt->iters;
    float *x = malloc((size_t)n * sizeof *x);
    if (!x) {
        complain("out of memory");
        return false;
    }
    for (int i = 0; i < n; i++)
        x[i] = (float)(i + 1);
    float ends[2] = { 1.0f, (float)n };
    float uniform[2] = { logf((float)vocab_size), logf((float)vocab_size) };
    tg_series series[] = {
        { "loss of each chunk", x, w->losses, n, TG_SERIES_LINE },
        { "smoothed", x, w->smoothed, n, TG_SERIES_LINE },
        { "ln V: a uniform guess", ends, uniform, 2, TG_SERIES_LINE },
    };
    char title[160];
    snprintf(title, sizeof title, "charlm: %s cell, hidden %d, %s, chunks of %d steps x %d streams",
             opt->cell, opt->hidden, opt->optimizer, opt->steps, opt->batch);
    tg_chart chart = { title, "iteration", "cross-entropy, nats per byte (log scale)", 1,
                       series, 3 };
    tg_error err;
    int status = tg_chart_write_svg(&chart, opt->plot, &err);
    if (status != 0)
        complain("%s", err.message);
    free(x);
    return status == 0;
}

/* ---- sampling ---------------------------------------------------------------------------- */

/* Feeds class c to the model with batch 1, carrying the state in s. Returns the logits of the
 * next byte (V x 1, valid until the next call), or NULL (and a message). */
static tg_tensor *read_byte(tg_tape *tape, const model *m, carry *s, float *scratch, int c)
{
    tg_tape_reset(tape);
    tg_cell_state state = carry_in(tape, m, s, 1);                      /* H x 1 */
    state = tg_cell_step(tape, m->cell, one_hot(tape, m, scratch, &c, 1), state);
    tg_tensor *logits = readout(tape, m, state.h);                      /* V x 1 */
    if (!logits) {
        complain("%s", tg_tape_error(tape));
        return NULL;
    }
    carry_out(s, m, state, 1);
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
 * starts from h = 0 (and c = 0) and reads the prime, or a newline when there is none. False
 * (and a message) on failure. */
static bool sample(const model *m, const vocab *v, const options *opt, tg_rng *rng)
{
    tg_tape *tape = tg_tape_new();
    carry s;
    bool ok = carry_init(&s, m->cell->hidden_size, 1);
    float *scratch = calloc((size_t)v->size, sizeof *scratch);
    double *p = malloc((size_t)v->size * sizeof *p);
    if (!ok || !tape || !scratch || !p) {
        complain("out of memory");
        ok = false;
    }
    tg_tensor *logits = NULL;
    for (const char *q = opt->prime; ok && q && *q; q++) {
        putchar(*q);
        ok = (logits = read_byte(tape, m, &s, scratch, v->class_of[(unsigned char)*q])) != NULL;
    }
    if (ok && !opt->prime) {
        int start = v->class_of['\n'] >= 0 ? v->class_of['\n'] : 0;   /* else the first byte */
        ok = (logits = read_byte(tape, m, &s, scratch, start)) != NULL;
    }
    for (int i = 0; ok && i < opt->sample; i++) {
        int c = draw(logits, opt->temperature, p, rng);
        putchar(v->byte[c]);
        if (i + 1 < opt->sample)
            ok = (logits = read_byte(tape, m, &s, scratch, c)) != NULL;
    }
    if (ok)
        putchar('\n');
    free(p);
    free(scratch);
    carry_free(&s);
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

/* Sets up the vocabulary (from the checkpoint, or else from the text) and the text (read and
 * encoded when there is training to do, or a vocabulary to find). Returns 0, 1 (a runtime
 * failure) or 2 (a --prime outside the vocabulary). */
static int prepare_data(const options *opt, vocab *v, text *t)
{
    bool need_text = opt->iters > 0 || !opt->resume;
    if (opt->resume && !load_vocab(v, opt->resume_readout))
        return 1;
    if (need_text && !read_text(t, opt->text))
        return 1;
    if (need_text && t->n < 2) {
        complain("%s has %zu bytes; it needs at least 2", t->name, t->n);
        return 1;
    }
    if (!opt->resume) {
        bool present[N_BYTES] = { false };
        for (size_t i = 0; i < t->n; i++)
            present[t->data[i]] = true;
        vocab_from_mask(v, present);
        if (v->size < 2) {
            complain("%s holds one distinct byte only: there is nothing to predict", t->name);
            return 1;
        }
    }
    if (need_text && !encode(t, v, opt->resume ? opt->resume : t->name))
        return 1;
    int missing = missing_byte(opt->prime, v);
    if (missing >= 0) {
        char byte[16];
        describe_byte(byte, missing);
        complain("--prime has byte %s, which is not in the vocabulary (see charlm --help)", byte);
        return 2;
    }
    if (need_text)
        printf("text: %s, %zu bytes, vocabulary of %d bytes (a uniform guess scores ln %d = "
               "%.2f)\n", t->name, t->n, v->size, v->size, log((double)v->size));
    return 0;
}

static int run(const options *opt)
{
    vocab v;
    text t = { 0 };
    model m = { 0 };
    trainer w = { 0 };
    tg_rng rng = tg_rng_new(opt->seed);
    memory_estimate need = { 0 };
    bool training = opt->iters > 0;
    int status = training && opt->save && !can_save(opt->save, opt->save_readout)
                     ? 1 : prepare_data(opt, &v, &t);
    if (status == 0 && !model_init(&m, opt->cell, v.size, opt->hidden, &rng)) {
        complain("out of memory");
        status = 1;
    }
    if (status == 0 && training && !memory_fits(&m, opt, v.size, t.room, &need))
        status = 1;
    if (status == 0 && training && !trainer_init(&w, &m, opt, t.n)) {
        complain("out of memory");
        status = 1;
    }
    if (status == 0 && opt->resume && !load_checkpoint(&m, opt->resume, opt->resume_readout))
        status = 1;
    if (status == 0 && training) {
        char total[32], tape[32];
        format_bytes(total, need.total);
        format_bytes(tape, need.tape);
        printf("model: %s cell, hidden %d%s%s; %s lr %g, clip %g; %d iterations of %d steps x %d "
               "streams; memory about %s, %s of it the tape\n", opt->cell, opt->hidden,
               opt->resume ? ", resumed from " : "", opt->resume ? opt->resume : "",
               opt->optimizer, opt->lr, opt->clip, opt->iters, opt->steps, opt->batch, total, tape);
        fflush(stdout);
        if (!train(&w, &m, &t, &v, opt) || (opt->plot && !write_plot(&w, opt, v.size)))
            status = 1;
    } else if (status == 0 && opt->save
               && !save_checkpoint(&m, &v, opt->save, opt->save_readout))
        status = 1;
    if (status == 0 && opt->sample > 0) {
        if (opt->iters > 0)
            printf("\nsample (temperature %g):\n", opt->temperature);
        if (!sample(&m, &v, opt, &rng))
            status = 1;
    }
    trainer_free(&w);
    model_free(&m);
    free(t.data);
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
