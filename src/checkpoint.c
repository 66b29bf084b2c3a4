/* checkpoint.c: the cells' checkpoints, under PyTorch's state_dict names, so that a file
 * loads into torch.nn.RNNCell, LSTMCell or GRUCell and back. What each name holds comes
 * from the cell's table (src/checkpoint.h), beside the cell's definition: this file holds
 * no cell's layout. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "error.h"
#include "safetensors.h"

static const char *const STATE_DICT_NAMES[TG_STATE_DICT_SIZE] = {
    [TG_WEIGHT_IH] = "weight_ih", [TG_WEIGHT_HH] = "weight_hh",
    [TG_BIAS_IH] = "bias_ih", [TG_BIAS_HH] = "bias_hh",
};

/* A cell seen through its table: its sizes, and its parameter behind each state_dict name. */
typedef struct stored_cell {
    const tg_cell_checkpoint *table;
    int input_size, hidden_size;
    tg_tensor *params[TG_STATE_DICT_SIZE];
} stored_cell;

static stored_cell stored_view(const tg_cell_checkpoint *table, const void *cell)
{
    const char *base = cell;
    stored_cell c = { .table = table };
    memcpy(&c.input_size, base + table->input_size, sizeof c.input_size);
    memcpy(&c.hidden_size, base + table->hidden_size, sizeof c.hidden_size);
    for (int i = 0; i < TG_STATE_DICT_SIZE; i++)
        memcpy(&c.params[i], base + table->params[i].offset, sizeof c.params[i]);
    return c;
}

static bool is_bias(int i) { return i == TG_BIAS_IH || i == TG_BIAS_HH; }

/* The columns of state_dict tensor i: I for weight_ih, H for weight_hh, 1 for a bias. */
static int cols_of(const stored_cell *c, int i)
{
    return i == TG_WEIGHT_IH ? c->input_size : i == TG_WEIGHT_HH ? c->hidden_size : 1;
}

static int check_param(const char *path, const char *what, const tg_tensor *t, long long rows,
                       long long cols, tg_error *err)
{
    if (!t || !t->data)
        return tg_error_set(err, path, "the cell's %s is NULL", what);
    if (t->rows != rows || t->cols != cols)
        return tg_error_set(err, path, "the cell's %s is %dx%d, but its sizes make it %lldx%lld", what,
                    t->rows, t->cols, rows, cols);
    return 0;
}

/* 0 when every parameter is there with the shape the cell's sizes give it. */
static int check_cell(const char *path, const stored_cell *c, tg_error *err)
{
    if (c->input_size < 1 || c->hidden_size < 1)
        return tg_error_set(err, path, "the cell has a bad size (input %d, hidden %d)", c->input_size,
                    c->hidden_size);
    const long long rows = (long long)c->table->gates * c->hidden_size;
    for (int i = 0; i < TG_STATE_DICT_SIZE; i++)
        if (check_param(path, c->table->params[i].name, c->params[i], rows, cols_of(c, i), err) != 0)
            return -1;
    return 0;
}

/* The checks before a save or a load, which see the cell through its table in *c: 0, or -1
 * with err set. verb is "save" or "load", naming the call in messages ("tg_rnn_cell_save"). */
static int check_call(const tg_cell_checkpoint *table, const void *cell, const char *verb,
                      const char *path, stored_cell *c, tg_error *err)
{
    char call[64];
    snprintf(call, sizeof call, "%s_%s", table->type, verb);
    if (!cell)
        return tg_error_set(err, path ? path : call, "cell is NULL");
    if (!path)
        return tg_error_set(err, call, "path is NULL");
    *c = stored_view(table, cell);
    return check_cell(path, c, err);
}

static int save_cell(const tg_cell_checkpoint *table, const void *cell, const char *path,
                     tg_error *err)
{
    stored_cell c;
    if (check_call(table, cell, "save", path, &c, err) != 0)
        return -1;
    const int rows = table->gates * c.hidden_size;
    tg_saved tensors[TG_STATE_DICT_SIZE];
    for (int i = 0; i < TG_STATE_DICT_SIZE; i++) {
        const float *data = table->params[i].how == TG_STORED_AS_IS ? c.params[i]->data : NULL;
        tensors[i] = (tg_saved){ STATE_DICT_NAMES[i], rows, cols_of(&c, i), is_bias(i) ? 1 : 2, data };
    }
    return tg_safetensors_save(path, tensors, TG_STATE_DICT_SIZE, err);
}

/* Copies a checked tensor into its parameter, or adds it in (TG_STORED_ADDED) where it is
 * not zero: adding +0 would turn a -0 into +0, and a saved cell loads back bit for bit. */
static void commit(tg_stored how, tg_tensor *param, const tg_wanted *w)
{
    const size_t count = (size_t)w->rows * (size_t)w->cols;
    if (how == TG_STORED_AS_IS) {
        memcpy(param->data, w->values, count * sizeof(float));
        return;
    }
    for (size_t k = 0; k < count; k++)
        if (w->values[k] != 0.0f)
            param->data[k] += w->values[k];
}

static int load_cell(const tg_cell_checkpoint *table, void *cell, const char *path, tg_error *err)
{
    stored_cell c;
    if (check_call(table, cell, "load", path, &c, err) != 0)
        return -1;
    const int rows = table->gates * c.hidden_size;
    tg_wanted wants[TG_STATE_DICT_SIZE];
    for (int i = 0; i < TG_STATE_DICT_SIZE; i++)
        wants[i] = (tg_wanted){ .name = STATE_DICT_NAMES[i], .rows = rows, .cols = cols_of(&c, i),
                                .rule = is_bias(i) ? TG_SHAPE_1D : TG_SHAPE_2D };
    float *values = tg_safetensors_read(path, "the cell", wants, TG_STATE_DICT_SIZE, err);
    if (!values)
        return -1;
    for (int i = 0; i < TG_STATE_DICT_SIZE; i++)
        commit(table->params[i].how, c.params[i], &wants[i]);
    free(values);
    tg_error_clear(err);
    return 0;
}

int tg_rnn_cell_save(const tg_rnn_cell *cell, const char *path, tg_error *err)
{
    return save_cell(&tg_rnn_cell_checkpoint, cell, path, err);
}

int tg_rnn_cell_load(tg_rnn_cell *cell, const char *path, tg_error *err)
{
    return load_cell(&tg_rnn_cell_checkpoint, cell, path, err);
}

int tg_lstm_cell_save(const tg_lstm_cell *cell, const char *path, tg_error *err)
{
    return save_cell(&tg_lstm_cell_checkpoint, cell, path, err);
}

int tg_lstm_cell_load(tg_lstm_cell *cell, const char *path, tg_error *err)
{
    return load_cell(&tg_lstm_cell_checkpoint, cell, path, err);
}

int tg_gru_cell_save(const tg_gru_cell *cell, const char *path, tg_error *err)
{
    return save_cell(&tg_gru_cell_checkpoint, cell, path, err);
}

int tg_gru_cell_load(tg_gru_cell *cell, const char *path, tg_error *err)
{
    return load_cell(&tg_gru_cell_checkpoint, cell, path, err);
}

/* The table of a built-in tg_cell, or NULL with the message set. call names the caller. */
static const tg_cell_checkpoint *cell_table(const tg_cell *cell, const char *call, const char *path,
                                            tg_error *err)
{
    const char *where = path ? path : call;
    if (!cell) {
        tg_error_set(err, where, "cell is NULL");
        return NULL;
    }
    const tg_cell_checkpoint *table = cell->name ? tg_cell_kind_checkpoint(cell->name) : NULL;
    if (!table) {
        tg_error_set(err, where, "cell '%.*s' is not an rnn, lstm or gru cell; save its params with "
                     "tg_save", TG_NAME_SHOWN, cell->name ? cell->name : "(unnamed)");
        return NULL;
    }
    if (!cell->impl) {
        tg_error_set(err, where, "the %s cell has no impl", cell->name);
        return NULL;
    }
    return table;
}

int tg_cell_save(const tg_cell *cell, const char *path, tg_error *err)
{
    const tg_cell_checkpoint *table = cell_table(cell, "tg_cell_save", path, err);
    return table ? save_cell(table, cell->impl, path, err) : -1;
}

int tg_cell_load(tg_cell *cell, const char *path, tg_error *err)
{
    const tg_cell_checkpoint *table = cell_table(cell, "tg_cell_load", path, err);
    return table ? load_cell(table, cell->impl, path, err) : -1;
}
