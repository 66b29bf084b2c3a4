/* charlm_run.h: a charlm training run (examples/charlm.c) as a whole: the trainer (its tape,
 * optimizer, streams and losses so far), the memory the run will need, and its checkpoint, one
 * file holding the model, the optimizer's and the streams' state and the settings, from which
 * --resume continues the run exactly where it stopped. */
#ifndef TAPEGRAD_EXAMPLES_CHARLM_RUN_H
#define TAPEGRAD_EXAMPLES_CHARLM_RUN_H

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "charlm_data.h"
#include "charlm_model.h"
#include "charlm_options.h"
#include "cli.h"
#include "tapegrad.h"

enum {
    LOG_LINES = 20,                        /* loss lines on stdout in a run */
    MAX_REPORTS = 2 * LOG_LINES,           /* report lines at most: iters / (iters / 20) + 1 */
    PATH_SIZE = 4096,
};

/* ---- the trainer ------------------------------------------------------------------------- */

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

/* ---- checkpoints: one file per run ------------------------------------------------------- */

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
    r->cell = cell ? index_of(cell, CELLS, N_CELLS) : -1;
    r->optimizer = kind ? index_of(kind, OPTIMIZERS, N_OPTIMIZERS) : -1;
    if (r->cell < 0 || !hex || !vocab_from_hex(v, hex)) {
        complain("%s: no charlm run in its metadata (a cell rnn, lstm or gru and a vocabulary of "
                 "2 bytes or more)", path);
        return false;
    }
    double layers = 0, hidden = 0, input, batch = 0, steps = 0, clip = 0, iteration = 0;
    bool ok = meta_number(md, path, "layers", 1, MAX_LAYERS, &layers)
              && meta_number(md, path, "hidden_size", 1, 1024, &hidden)
              && meta_number(md, path, "input_size", v->size, v->size, &input)
              && meta_number(md, path, "batch", 1, 1024, &batch)
              && meta_number(md, path, "steps", 1, 1000, &steps)
              && meta_number(md, path, "clip", 0, INFINITY, &clip)
              && meta_number(md, path, "iteration", 0, (double)LONG_MAX, &iteration);
    *r = (run_info){ r->cell, (int)layers, (int)hidden, (int)batch, (int)steps, r->optimizer,
                     (float)clip, (long)iteration };
    return ok;
}

/* Parses the stream positions saved in md into pos (NULL: only checks them). True when md has
 * B of them, each below train_bytes. */
static bool parse_positions(const tg_metadata *md, size_t *pos, int batch, size_t train_bytes)
{
    const char *text = tg_metadata_get(md, "stream.positions");
    for (int b = 0; text && b < batch; b++) {
        char *end;
        errno = 0;
        unsigned long long p = strtoull(text, &end, 10);
        if (end == text || errno != 0 || p >= train_bytes)
            return false;
        if (pos)
            pos[b] = (size_t)p;
        text = end;
    }
    return text && *text == '\0';
}

/* The stream positions saved in md, all or none: pos is left as it was unless md has B of
 * them, each below train_bytes. */
static bool read_positions(const tg_metadata *md, size_t *pos, int batch, size_t train_bytes)
{
    return parse_positions(md, NULL, batch, train_bytes)
           && parse_positions(md, pos, batch, train_bytes);
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

/* The checkpoint's run, when resuming: its metadata (to free), settings and iterations done
 * (0 when not resuming), and the vocabulary. Returns 0, 1 (unreadable) or 2 (a flag
 * conflicts with it). */
static int read_resume(options *opt, tg_metadata **md, long *done, vocab *v)
{
    run_info saved = { 0 };
    tg_error err;
    if (opt->resume && !(*md = tg_load_metadata(opt->resume, &err))) {
        complain("%s", err.message);
        return 1;
    }
    if (opt->resume && !read_run(*md, opt->resume, &saved, v))
        return 1;
    *done = saved.iteration;
    return settle_options(opt, opt->resume ? &saved : NULL) ? 0 : 2;
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

/* bytes rounded up to a whole number of TAPE_ALIGN, as the tape places every block. */
static double aligned(double bytes)
{
    return ceil(bytes / TAPE_ALIGN) * TAPE_ALIGN;
}

/* Bytes of one node on the tape: a rows x cols result, with a grad or not, and extra bytes
 * of the op's own constants. */
static double node_bytes(double rows, double cols, bool grad, double extra)
{
    double values = aligned(rows * cols * sizeof(float));
    return aligned(NODE_BYTES + (grad ? 2.0 : 1.0) * values + extra);
}

/* Bytes of the tape for one chunk of training (V: the vocabulary's size, H: hidden, L
 * layers): per step the one-hot input (V x B, a constant), L layers, the readout (V x B), its
 * cross-entropy (1 x 1, keeping the B classes) and the running sum (1 x 1); per chunk every
 * layer's carried state (constants) and the mean; and, at most, one copy of every weight that
 * backward keeps transposed. With grads false: the validation's tape, the same nodes without
 * grads. */
static double tape_bytes(const model *m, const options *opt, bool grads)
{
    const int k = m->cell;
    double V = m->vocab, H = opt->hidden, B = opt->batch, L = m->layers;
    double cell = 2.0 * node_bytes(GATES[k] * H, B, grads, 0.0)
                  + SMALL_NODES[k] * node_bytes(H, B, grads, 0.0);
    double step = node_bytes(V, B, false, 0.0) + L * cell + node_bytes(V, B, grads, 0.0)
                  + node_bytes(1, 1, grads, B * sizeof(int)) + node_bytes(1, 1, grads, 0.0);
    double weights = 0.0;
    for (int i = 0; i < m->n_params; i++)
        weights += aligned((double)m->params[i]->rows * m->params[i]->cols * sizeof(float));
    return opt->steps * step + L * (m->has_c ? 2.0 : 1.0) * node_bytes(H, B, false, 0.0)
           + node_bytes(1, 1, true, 0.0) + weights;
}

/* Bytes of the whole run beside the tape: the parameters (data and grad), the optimizer's
 * state (values per parameter value: sgd 0, momentum and adagrad 1, adam 2), the trainer's
 * buffers and the text's. */
static double other_bytes(const model *m, const options *opt, size_t text_room)
{
    static const double STATE_PER_VALUE[] = { 0, 1, 1, 2 };   /* as OPTIMIZERS */
    double values = 0.0;
    for (int i = 0; i < m->n_params; i++)
        values += (double)m->params[i]->rows * m->params[i]->cols;
    double H = opt->hidden, B = opt->batch, L = m->layers;
    double buffers = (2.0 * L * H * B + m->vocab * B + 2.0 * opt->iters) * sizeof(float)
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

/* What a training run will need: its tape and all of it (the validation tape too), in bytes. */
typedef struct memory_estimate {
    double tape, total;
} memory_estimate;

#define MACHINE_SHARE 0.8      /* of the memory the machine has: the most a run may take */

/* Estimates the run's memory and refuses it when it needs more than --max-memory, or more
 * than MACHINE_SHARE of what the machine has (the rest is left to the system and other
 * programs). False (and a message with the estimate) when refused. */
static bool memory_fits(const model *m, const options *opt, size_t text_room,
                        memory_estimate *e)
{
    e->tape = tape_bytes(m, opt, true);
    e->total = e->tape + tape_bytes(m, opt, false) + other_bytes(m, opt, text_room);
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

#endif
