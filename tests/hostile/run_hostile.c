/* run_hostile.c: loads every file of a damaged-checkpoint corpus (gen_corpus.c) with each
 * loader and checks the loaders' promises.
 *
 *     run_hostile [--seconds S] DIR        every file of DIR, S seconds per load (default 10)
 *     run_hostile --self-test DIR          shows that broken loaders and labels are caught
 *
 * Each file goes to tg_rnn_cell_load, tg_lstm_cell_load, tg_gru_cell_load, tg_cell_load (an
 * rnn, an lstm and a gru tg_cell) and tg_load (two named models), each time into a fresh
 * model whose data and grads are filled with random values. A load must return:
 *   0  only when the oracle (oracle.c, written from docs/checkpoints.md) accepts the file for
 *      that model, with the message cleared, every parameter holding what the file stores
 *      (b = bias_ih + bias_hh where bias_hh is not zero, for the RNN and LSTM) and every grad
 *      as it was;
 *  -1  only when the oracle refuses the file, with a message "PATH: reason" and every byte of
 *      the model's data and grads as it was.
 * The label in the file's name (hostile.h) must agree for the loaders of the file's kind. A
 * load that does not return within S seconds ends the run (exit 1, naming the file). Prints
 * "N passed, N failed" (files) and exits 1 when any failed. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostile.h"
#include "oracle.h"
#include "tapegrad.h"

enum { MAX_PARAMS = 4, MAX_SLOTS = 4, SHOWN_FAILURES = 40 };

/* ---- the models and their loaders ----------------------------------------------------------- */

typedef struct model {
    void *impl;
    tg_tensor *params[MAX_PARAMS];
    int n_params;
    tg_named named[HOSTILE_N_NAMED];
} model;

/* A tensor the loader reads from the file, and the parameter it goes to (added in, where the
 * file's value is not zero, for the second bias of the RNN and LSTM cells). */
typedef struct slot { oracle_want want; int param; bool added; } slot;

typedef struct target {
    const char *name, *kind;    /* kind: the base whose files it must treat as labelled */
    bool (*make)(model *m);
    void (*destroy)(model *m);
    int (*load)(model *m, const char *path, tg_error *err);
    slot slots[MAX_SLOTS];
    int n_slots;
} target;

static void set_params(model *m, int n, tg_tensor *a, tg_tensor *b, tg_tensor *c, tg_tensor *d)
{
    tg_tensor *all[MAX_PARAMS] = { a, b, c, d };
    m->n_params = n;
    memcpy(m->params, all, sizeof all);
}

static bool make_rnn(model *m)
{
    tg_rnn_cell *c = tg_rnn_cell_new(HOSTILE_INPUT, HOSTILE_HIDDEN, 11);
    m->impl = c;
    return c && (set_params(m, 3, c->W_x, c->W_h, c->b, NULL), true);
}

static bool make_lstm(model *m)
{
    tg_lstm_cell *c = tg_lstm_cell_new(HOSTILE_INPUT, HOSTILE_HIDDEN, 12, NULL);
    m->impl = c;
    return c && (set_params(m, 3, c->W_x, c->W_h, c->b, NULL), true);
}

static bool make_gru(model *m)
{
    tg_gru_cell *c = tg_gru_cell_new(HOSTILE_INPUT, HOSTILE_HIDDEN, 13, NULL);
    m->impl = c;
    return c && (set_params(m, 4, c->W_x, c->W_h, c->b_x, c->b_h), true);
}

/* A tg_cell's parameters, seen through its concrete cell. */
static bool make_cell(model *m, const char *kind)
{
    tg_cell *cell = tg_cell_new(kind, HOSTILE_INPUT, HOSTILE_HIDDEN, 14, NULL);
    m->impl = cell;
    if (!cell)
        return false;
    if (strcmp(kind, "gru") == 0) {
        tg_gru_cell *g = cell->impl;
        set_params(m, 4, g->W_x, g->W_h, g->b_x, g->b_h);
    } else if (strcmp(kind, "lstm") == 0) {
        tg_lstm_cell *l = cell->impl;
        set_params(m, 3, l->W_x, l->W_h, l->b, NULL);
    } else {
        tg_rnn_cell *r = cell->impl;
        set_params(m, 3, r->W_x, r->W_h, r->b, NULL);
    }
    return true;
}

static bool make_cell_rnn(model *m) { return make_cell(m, "rnn"); }
static bool make_cell_lstm(model *m) { return make_cell(m, "lstm"); }
static bool make_cell_gru(model *m) { return make_cell(m, "gru"); }

static bool make_named_from(model *m, const hostile_named *list, int n)
{
    m->n_params = n;
    for (int i = 0; i < n; i++) {
        m->params[i] = tg_param_new(list[i].rows, list[i].cols);
        m->named[i] = (tg_named){ list[i].name, m->params[i] };
        if (!m->params[i])
            return false;
    }
    return true;
}

static const hostile_named LSTM_NAMED[] = { { "weight_ih", 4 * HOSTILE_HIDDEN, HOSTILE_INPUT },
                                            { "bias_ih", 4 * HOSTILE_HIDDEN, 1 } };

static bool make_named(model *m) { return make_named_from(m, HOSTILE_NAMED, HOSTILE_N_NAMED); }
static bool make_lstm_named(model *m) { return make_named_from(m, LSTM_NAMED, 2); }

static void free_rnn(model *m) { tg_rnn_cell_free(m->impl); }
static void free_lstm(model *m) { tg_lstm_cell_free(m->impl); }
static void free_gru(model *m) { tg_gru_cell_free(m->impl); }
static void free_cell(model *m) { tg_cell_free(m->impl); }
static void free_named(model *m)
{
    for (int i = 0; i < m->n_params; i++)
        tg_param_free(m->params[i]);
}

static int load_rnn(model *m, const char *p, tg_error *err) { return tg_rnn_cell_load(m->impl, p, err); }
static int load_lstm(model *m, const char *p, tg_error *err) { return tg_lstm_cell_load(m->impl, p, err); }
static int load_gru(model *m, const char *p, tg_error *err) { return tg_gru_cell_load(m->impl, p, err); }
static int load_cell(model *m, const char *p, tg_error *err) { return tg_cell_load(m->impl, p, err); }
static int load_named(model *m, const char *p, tg_error *err) { return tg_load(p, m->named, m->n_params, err); }

#define H HOSTILE_HIDDEN
#define I HOSTILE_INPUT
#define CELL_SLOTS(G, SECOND_BIAS, ADDED)                                                       \
    { { { "weight_ih", G * H, I, ORACLE_2D }, 0, false }, { { "weight_hh", G * H, H, ORACLE_2D }, 1, false }, \
      { { "bias_ih", G * H, 1, ORACLE_1D }, 2, false }, { { "bias_hh", G * H, 1, ORACLE_1D }, SECOND_BIAS, ADDED } }, 4

static const target TARGETS[] = {
    { "tg_rnn_cell_load", "rnn", make_rnn, free_rnn, load_rnn, CELL_SLOTS(1, 2, true) },
    { "tg_lstm_cell_load", "lstm", make_lstm, free_lstm, load_lstm, CELL_SLOTS(4, 2, true) },
    { "tg_gru_cell_load", "gru", make_gru, free_gru, load_gru, CELL_SLOTS(3, 3, false) },
    { "tg_cell_load(rnn)", "rnn", make_cell_rnn, free_cell, load_cell, CELL_SLOTS(1, 2, true) },
    { "tg_cell_load(lstm)", "lstm", make_cell_lstm, free_cell, load_cell, CELL_SLOTS(4, 2, true) },
    { "tg_cell_load(gru)", "gru", make_cell_gru, free_cell, load_cell, CELL_SLOTS(3, 3, false) },
    { "tg_load(named)", "named", make_named, free_named, load_named,
      { { { "embedding", 5, 3, ORACLE_2D_OR_COLUMN }, 0, false }, { { "bias", 5, 1, ORACLE_2D_OR_COLUMN }, 1, false },
        { { "\xc3\xb1" "ame \xe2\x9c\x93", 2, 2, ORACLE_2D_OR_COLUMN }, 2, false } }, 3 },
    { "tg_load(lstm names)", "none", make_lstm_named, free_named, load_named,
      { { { "weight_ih", 4 * H, I, ORACLE_2D_OR_COLUMN }, 0, false },
        { { "bias_ih", 4 * H, 1, ORACLE_2D_OR_COLUMN }, 1, false } }, 2 },
};
enum { N_TARGETS = sizeof TARGETS / sizeof TARGETS[0] };

/* ---- one load, judged ----------------------------------------------------------------------- */

static char hang_message[4608];

static void on_alarm(int signal)
{
    (void)signal;
    ssize_t ignored = write(2, hang_message, strlen(hang_message));
    (void)ignored;
    _exit(1);
}

static uint64_t rng_state;

static size_t param_bytes(const tg_tensor *t) { return (size_t)t->rows * (size_t)t->cols * sizeof(float); }

static void fill_random(model *m)
{
    for (int i = 0; i < m->n_params; i++)
        for (int k = 0; k < m->params[i]->rows * m->params[i]->cols; k++) {
            rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
            m->params[i]->data[k] = (float)(rng_state >> 40) / (float)(1 << 24) - 0.5f;
            m->params[i]->grad[k] = (float)(rng_state >> 20 & 0xFFFF) - 7.0f;
        }
}

/* Every byte of data and grad, one parameter after another. */
static unsigned char *snapshot(const model *m, size_t *n)
{
    *n = 0;
    for (int i = 0; i < m->n_params; i++)
        *n += 2 * param_bytes(m->params[i]);
    unsigned char *s = malloc(*n), *at = s;
    for (int i = 0; s && i < m->n_params; i++) {
        memcpy(at, m->params[i]->data, param_bytes(m->params[i]));
        memcpy(at + param_bytes(m->params[i]), m->params[i]->grad, param_bytes(m->params[i]));
        at += 2 * param_bytes(m->params[i]);
    }
    return s;
}

/* The data a model must hold after a successful load: what it held, with each slot's values
 * copied in (or added in where not zero), in the loader's order. */
static void expected_data(const target *t, const model *m, unsigned char *before, float *const *values)
{
    for (int s = 0; s < t->n_slots; s++) {
        size_t offset = 0;
        for (int i = 0; i < t->slots[s].param; i++)
            offset += 2 * param_bytes(m->params[i]);
        float *data = (float *)(before + offset);
        size_t count = (size_t)t->slots[s].want.rows * (size_t)t->slots[s].want.cols;
        for (size_t k = 0; k < count; k++)
            if (!t->slots[s].added)
                data[k] = values[s][k];
            else if (values[s][k] != 0.0f)
                data[k] += values[s][k];
    }
}

/* Same bytes, but any two NaNs in the data count as equal: an addition may give a NaN whose
 * payload depends on the instructions the compiler chose. */
static bool same_model(const model *m, const unsigned char *a, const unsigned char *b)
{
    size_t at = 0;
    for (int i = 0; i < m->n_params; i++) {
        size_t n = param_bytes(m->params[i]);
        for (size_t k = 0; k < n; k += 4) {
            float x, y;
            memcpy(&x, a + at + k, 4), memcpy(&y, b + at + k, 4);
            if (memcmp(a + at + k, b + at + k, 4) != 0 && !(x != x && y != y))
                return false;
        }
        if (memcmp(a + at + n, b + at + n, n) != 0)
            return false;
        at += 2 * n;
    }
    return true;
}

typedef struct file_case {
    const char *path, *label, *kind;
    const unsigned char *bytes;
    size_t n;
    oracle_file parsed;
    bool valid;                  /* oracle_valid said so */
} file_case;

/* NULL when the load kept every promise, else what it broke. */
static const char *judge(const target *t, const file_case *f, int rc, const tg_error *err, const model *m,
                         unsigned char *before, size_t n_before, bool oracle_ok, float *const *values)
{
    bool labelled = strcmp(t->kind, f->kind) == 0;
    size_t n_after;
    unsigned char *after = snapshot(m, &n_after);
    const char *broken = NULL;
    size_t path_len = strlen(f->path);
    if (rc == 0) {
        if (oracle_ok)
            expected_data(t, m, before, values);
        broken = !oracle_ok ? "loaded a file the oracle refuses"
               : labelled && strcmp(f->label, "refuse") == 0 ? "loaded a file labelled refuse"
               : err->message[0] ? "returned 0 but left a message"
               : !same_model(m, before, after) ? "returned 0 but the model does not hold the file's values"
               : NULL;
    } else if (rc == -1) {
        broken = oracle_ok ? "refused a file the oracle accepts"
               : labelled && strcmp(f->label, "load") == 0 ? "refused a file labelled load"
               : strncmp(err->message, f->path, path_len) != 0 || strncmp(err->message + path_len, ": ", 2) != 0
                 ? "refused without a message naming the file"
               : err->message[path_len + 2] == '\0' ? "refused without a reason"
               : n_after != n_before || memcmp(before, after, n_before) != 0 ? "refused but changed the model"
               : NULL;
    } else {
        broken = "returned neither 0 nor -1";
    }
    free(after);
    return broken;
}

/* Loads f with t into a fresh model: NULL, or the promise it broke (its message in *err). */
static const char *load_one(const target *t, const file_case *f, unsigned seconds, tg_error *err,
                            int *rc)
{
    model m = { 0 };
    *rc = -1;
    if (!t->make(&m)) {
        t->destroy(&m);
        return "could not make the model";
    }
    fill_random(&m);
    size_t n_before;
    unsigned char *before = snapshot(&m, &n_before);
    float *values[MAX_SLOTS] = { 0 };
    oracle_want wants[MAX_SLOTS];
    for (int s = 0; s < t->n_slots; s++)
        wants[s] = t->slots[s].want;
    bool oracle_ok = f->valid && oracle_values(&f->parsed, wants, t->n_slots, values);
    snprintf(hang_message, sizeof hang_message, "run_hostile: %s: %s did not return within %u s\n",
             f->path, t->name, seconds);
    strcpy(err->message, "(not written)");
    alarm(seconds);
    *rc = t->load(&m, f->path, err);
    alarm(0);
    const char *broken = judge(t, f, *rc, err, &m, before, n_before, oracle_ok, values);
    for (int s = 0; s < t->n_slots; s++)
        free(values[s]);
    free(before);
    t->destroy(&m);
    return broken;
}

/* ---- the corpus ------------------------------------------------------------------------------- */

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *bytes = NULL;
    *n = 0;
    if (f && fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        bytes = size >= 0 ? malloc((size_t)size + 1) : NULL;
        if (bytes && (fseek(f, 0, SEEK_SET) != 0 || fread(bytes, 1, (size_t)size, f) != (size_t)size)) {
            free(bytes);
            bytes = NULL;
        }
        *n = (size_t)size;
    }
    if (f)
        fclose(f);
    return bytes;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The corpus files of dir, sorted; *n of them. */
static char **list_corpus(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t cap = 0;
    *n = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len < 12 || strcmp(e->d_name + len - 12, ".safetensors") != 0)
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 256;
            names = realloc(names, cap * sizeof *names);
        }
        names[*n] = malloc(strlen(dir) + len + 2);
        sprintf(names[(*n)++], "%s/%s", dir, e->d_name);
    }
    if (d)
        closedir(d);
    if (*n)
        qsort(names, *n, sizeof *names, compare_strings);
    return names;
}

/* The label and kind from a name NNNNN-LABEL-KIND-WHAT.safetensors (into buffers of 16). */
static bool name_parts(const char *path, char *label, char *kind)
{
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    return sscanf(name, "%*[0-9]-%15[a-z]-%15[a-z]-", label, kind) == 2;
}

typedef struct tally { long passed, failed, accepted, refused, shown; } tally;

/* Every target on one file; true when all kept their promises. */
static bool run_file(const char *path, const char *label, const target *targets, int n_targets,
                     unsigned seconds, tally *t)
{
    char kind[16];
    char parsed_label[16];
    file_case f = { .path = path, .kind = kind };
    if (!name_parts(path, parsed_label, kind)) {
        fprintf(stderr, "FAIL %s: not a corpus file name\n", path);
        return false;
    }
    f.label = label ? label : parsed_label;
    unsigned char *bytes = read_file(path, &f.n);
    if (!bytes) {
        fprintf(stderr, "FAIL %s: cannot read it\n", path);
        return false;
    }
    f.bytes = bytes;
    f.valid = oracle_valid(bytes, f.n, &f.parsed);
    bool all_kept = true;
    for (int i = 0; i < n_targets; i++) {
        tg_error err;
        int rc;
        const char *broken = load_one(&targets[i], &f, seconds, &err, &rc);
        if (broken && t->shown++ < SHOWN_FAILURES)
            fprintf(stderr, "FAIL %s: %s %s (message: %s)\n", path, targets[i].name, broken, err.message);
        all_kept = all_kept && !broken;
        t->accepted += rc == 0;
        t->refused += rc != 0;
    }
    oracle_file_free(&f.parsed);
    free(bytes);
    return all_kept;
}

/* Every target on every file; quiet: show no failures. */
static tally run_corpus(char **files, size_t n, const char *label, const target *targets, int n_targets,
                        unsigned seconds, bool quiet)
{
    tally t = { .shown = quiet ? SHOWN_FAILURES : 0 };
    for (size_t i = 0; i < n; i++) {
        if (run_file(files[i], label, targets, n_targets, seconds, &t))
            t.passed++;
        else
            t.failed++;
    }
    return t;
}

/* ---- the self-test: broken loaders and a lying label must be caught ------------------------- */

static tg_tensor *first(model *m) { return ((tg_rnn_cell *)m->impl)->W_x; }

static int changes_on_refusal(model *m, const char *p, tg_error *err)
{
    int rc = load_rnn(m, p, err);
    if (rc != 0)
        first(m)->data[0] += 1.0f;
    return rc;
}
static int accepts_everything(model *m, const char *p, tg_error *err) { (void)m, (void)p; err->message[0] = 0; return 0; }
static int refuses_silently(model *m, const char *p, tg_error *err)
{
    int rc = load_rnn(m, p, err);
    if (rc != 0)
        snprintf(err->message, sizeof err->message, "%s: ", p);
    return rc;
}
static int names_another_file(model *m, const char *p, tg_error *err)
{
    int rc = load_rnn(m, p, err);
    if (rc != 0)
        snprintf(err->message, sizeof err->message, "other.safetensors: bad");
    return rc;
}
static int refuses_everything(model *m, const char *p, tg_error *err)
{
    (void)m;
    snprintf(err->message, sizeof err->message, "%s: no", p);
    return -1;
}
static int loads_wrong_values(model *m, const char *p, tg_error *err)
{
    int rc = load_rnn(m, p, err);
    if (rc == 0)
        ((tg_rnn_cell *)m->impl)->W_h->data[1] = 1e9f;
    return rc;
}
static int keeps_a_message(model *m, const char *p, tg_error *err)
{
    int rc = load_rnn(m, p, err);
    if (rc == 0)
        strcpy(err->message, "ok");
    return rc;
}
static int touches_a_grad(model *m, const char *p, tg_error *err)
{
    int rc = load_rnn(m, p, err);
    if (rc == 0)
        first(m)->grad[0] = 0.0f;
    return rc;
}
static int returns_one(model *m, const char *p, tg_error *err) { return load_rnn(m, p, err) ? 1 : 0; }
static int hangs(model *m, const char *p, tg_error *err)
{
    (void)m, (void)p, (void)err;
    while (true)
        pause();
    return -1;
}

static const struct { const char *what; int (*load)(model *, const char *, tg_error *); } STUBS[] = {
    { "changes the model when it refuses", changes_on_refusal },
    { "accepts every file", accepts_everything },
    { "refuses without a reason", refuses_silently },
    { "names another file", names_another_file },
    { "refuses every file", refuses_everything },
    { "loads a wrong value", loads_wrong_values },
    { "keeps a message on success", keeps_a_message },
    { "writes a grad", touches_a_grad },
    { "returns 1 instead of -1", returns_one },
};

/* A stub that never returns, in a child: the time limit must end it with status 1. */
static bool hang_is_caught(const char *file)
{
    pid_t child = fork();
    if (child == 0) {
        target t = TARGETS[0];
        t.load = hangs;
        tally ignored = { .shown = SHOWN_FAILURES };
        FILE *quiet = fopen("/dev/null", "w");
        if (quiet)
            dup2(fileno(quiet), 2);
        run_file(file, NULL, &t, 1, 1, &ignored);
        _exit(0);
    }
    int status = 0;
    return child > 0 && waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 1;
}

static int self_test(char **files, size_t n)
{
    int missed = 0;
    for (size_t i = 0; i < sizeof STUBS / sizeof STUBS[0]; i++) {
        target t = TARGETS[0];
        t.load = STUBS[i].load;
        tally caught = run_corpus(files, n, NULL, &t, 1, 10, true);
        printf("self-test: a loader that %s: %s (on %ld of %zu files)\n", STUBS[i].what,
               caught.failed ? "caught" : "NOT CAUGHT", caught.failed, n);
        missed += caught.failed == 0;
    }
    size_t loadable = 0;
    while (loadable < n && !strstr(files[loadable], "-load-rnn-"))
        loadable++;
    tally lie = loadable < n ? run_corpus(&files[loadable], 1, "refuse", TARGETS, 1, 10, true) : (tally){ 0 };
    printf("self-test: a loadable file labelled refuse: %s\n", lie.failed ? "caught" : "NOT CAUGHT");
    bool hang = n > 0 && hang_is_caught(files[0]);
    printf("self-test: a loader that never returns: %s\n", hang ? "caught (stopped after 1 s)" : "NOT CAUGHT");
    missed += !lie.failed + !hang;
    printf("self-test: %zu broken loaders and labels, %d of them not caught\n", sizeof STUBS / sizeof STUBS[0] + 2, missed);
    return missed ? 1 : 0;
}

int main(int argc, char **argv)
{
    unsigned seconds = 10;
    bool testing_self = false;
    int arg = 1;
    for (; arg < argc - 1; arg++) {
        if (strcmp(argv[arg], "--seconds") == 0 && arg + 2 < argc)
            seconds = (unsigned)atoi(argv[++arg]);
        else if (strcmp(argv[arg], "--self-test") == 0)
            testing_self = true;
        else
            break;
    }
    if (arg != argc - 1 || seconds == 0) {
        fprintf(stderr, "usage: run_hostile [--seconds S] [--self-test] DIR\n");
        return 2;
    }
    struct sigaction action = { .sa_handler = on_alarm };
    sigaction(SIGALRM, &action, NULL);
    size_t n;
    char **files = list_corpus(argv[arg], &n);
    if (n == 0) {
        fprintf(stderr, "run_hostile: no corpus files in %s (make them with gen_corpus)\n", argv[arg]);
        return 2;
    }
    int rc;
    if (testing_self) {
        rc = self_test(files, n);
    } else {
        tally t = run_corpus(files, n, NULL, TARGETS, N_TARGETS, seconds, false);
        printf("run_hostile: %zu files, %ld loads (%ld accepted, %ld refused): %ld passed, %ld failed\n", n,
               t.accepted + t.refused, t.accepted, t.refused, t.passed, t.failed);
        rc = t.failed ? 1 : 0;
    }
    for (size_t i = 0; i < n; i++)
        free(files[i]);
    free(files);
    return rc;
}
