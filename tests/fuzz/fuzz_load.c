/* fuzz_load.c: a libFuzzer target for the checkpoint loader. Each input is written to a
 * temporary file and loaded into an RNN, an LSTM and a GRU cell (3 inputs, 4 hidden units:
 * the sizes of the checkpoints in tests/fixtures/checkpoints, the seed corpus) and through
 * tg_load; a load that fails must name the file and leave every parameter byte as it was.
 * Build and run: make fuzz (clang -fsanitize=fuzzer,address,undefined). */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tapegrad.h"

enum { INPUT = 3, HIDDEN = 4, MAX_PARAMS = 4 };

/* A model the input is loaded into: its parameters and how to load it. */
typedef struct target {
    const char *name;
    void *model;
    tg_tensor *params[MAX_PARAMS];
    int n_params;
    int (*load)(void *model, const char *path, tg_error *err);
} target;

static char path[64];
static tg_rnn_cell *rnn;
static tg_lstm_cell *lstm;
static tg_gru_cell *gru;
static tg_tensor *readout, *bias;
static tg_named named[2];

static int load_rnn(void *model, const char *p, tg_error *err) { return tg_rnn_cell_load(model, p, err); }
static int load_lstm(void *model, const char *p, tg_error *err) { return tg_lstm_cell_load(model, p, err); }
static int load_gru(void *model, const char *p, tg_error *err) { return tg_gru_cell_load(model, p, err); }
static int load_named(void *model, const char *p, tg_error *err) { return tg_load(p, model, 2, err); }

static target targets[4];

static void clean_up(void)
{
    remove(path);
    tg_rnn_cell_free(rnn);
    tg_lstm_cell_free(lstm);
    tg_gru_cell_free(gru);
    tg_param_free(readout);
    tg_param_free(bias);
}

static void set_up(void)
{
    strcpy(path, "/tmp/tapegrad_fuzz_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        abort();
    close(fd);
    rnn = tg_rnn_cell_new(INPUT, HIDDEN, 1);
    lstm = tg_lstm_cell_new(INPUT, HIDDEN, 2, NULL);
    gru = tg_gru_cell_new(INPUT, HIDDEN, 3, NULL);
    readout = tg_param_new(4 * HIDDEN, INPUT);   /* an LSTM's weight_ih */
    bias = tg_param_new(3 * HIDDEN, 1);          /* a GRU's bias_hh */
    if (!rnn || !lstm || !gru || !readout || !bias)
        abort();
    named[0] = (tg_named){ "weight_ih", readout };
    named[1] = (tg_named){ "bias_hh", bias };
    targets[0] = (target){ "rnn", rnn, { rnn->W_x, rnn->W_h, rnn->b }, 3, load_rnn };
    targets[1] = (target){ "lstm", lstm, { lstm->W_x, lstm->W_h, lstm->b }, 3, load_lstm };
    targets[2] = (target){ "gru", gru, { gru->W_x, gru->W_h, gru->b_x, gru->b_h }, 4, load_gru };
    targets[3] = (target){ "tg_load", named, { readout, bias }, 2, load_named };
    atexit(clean_up);
}

static size_t param_bytes(const tg_tensor *t) { return (size_t)t->rows * (size_t)t->cols * sizeof(float); }

/* Loads the file into t; aborts when a failed load changed a parameter or its message does
 * not start with the path. */
static void load_checked(const target *t)
{
    unsigned char before[MAX_PARAMS][4 * HIDDEN * HIDDEN * sizeof(float)];
    for (int i = 0; i < t->n_params; i++)
        memcpy(before[i], t->params[i]->data, param_bytes(t->params[i]));
    tg_error err = { "" };
    int rc = t->load(t->model, path, &err);
    if (rc == 0)
        return;
    if (rc != -1 || strncmp(err.message, path, strlen(path)) != 0) {
        fprintf(stderr, "%s: rc %d, message '%s'\n", t->name, rc, err.message);
        abort();
    }
    for (int i = 0; i < t->n_params; i++)
        if (memcmp(before[i], t->params[i]->data, param_bytes(t->params[i])) != 0) {
            fprintf(stderr, "%s: a failed load (%s) changed parameter %d\n", t->name, err.message, i);
            abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!rnn)
        set_up();
    remove(path);   /* a new file each time: ext4 flushes a file rewritten by truncation */
    FILE *f = fopen(path, "wb");
    if (!f || (size > 0 && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        abort();
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        load_checked(&targets[i]);
    return 0;
}
