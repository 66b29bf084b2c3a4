/* checkpoint.c: the cells' and the modules' checkpoints, under PyTorch's state_dict names, so
 * that a file loads into torch.nn.RNNCell, LSTMCell or GRUCell, or nn.RNN, LSTM or GRU (layer
 * l's tensors named weight_ih_l<l>, ...), and back. What each name holds comes
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

/* ---- the whole-sequence modules: layer l under NAME_l<l>, as nn.RNN, LSTM and GRU --------- */

enum { NAME_SIZE = 32 };

/* A module seen as its layers' cells. */
typedef struct stored_module {
    const tg_cell_checkpoint *table;
    const char *call;                 /* "tg_lstm_save" */
    int input_size, hidden_size, num_layers;
    const void *(*layer)(const void *module, int l);
    const void *module;
} stored_module;

static const void *rnn_layer(const void *m, int l) { return ((const tg_rnn *)m)->layers[l]; }
static const void *lstm_layer(const void *m, int l) { return ((const tg_lstm *)m)->layers[l]; }
static const void *gru_layer(const void *m, int l) { return ((const tg_gru *)m)->layers[l]; }

/* The checks before a save or a load: every layer's parameters have the shapes its sizes give
 * them, layer 0 takes the module's inputs and every layer above takes hidden_size. */
static int check_module(const stored_module *m, const char *path, stored_cell *cells, tg_error *err)
{
    if (!m->module)
        return tg_error_set(err, path ? path : m->call, "module is NULL");
    if (!path)
        return tg_error_set(err, m->call, "path is NULL");
    if (m->num_layers < 1 || m->hidden_size < 1)
        return tg_error_set(err, path, "the module has %d layers of %d hidden units", m->num_layers,
                            m->hidden_size);
    for (int l = 0; l < m->num_layers; l++) {
        const void *cell = m->layer(m->module, l);
        if (!cell)
            return tg_error_set(err, path, "layer %d of the module is NULL", l);
        cells[l] = stored_view(m->table, cell);
        int input = l == 0 ? m->input_size : m->hidden_size;
        if (cells[l].input_size != input || cells[l].hidden_size != m->hidden_size)
            return tg_error_set(err, path, "layer %d has %d inputs and %d hidden units; the module "
                                "needs %d and %d", l, cells[l].input_size, cells[l].hidden_size,
                                input, m->hidden_size);
        if (check_cell(path, &cells[l], err) != 0)
            return -1;
    }
    return 0;
}

/* names + NAME_SIZE (4 l + i): state_dict name i of layer l; the layer past the last too. */
static char *module_names(int num_layers)
{
    char *names = malloc((size_t)(num_layers + 1) * TG_STATE_DICT_SIZE * NAME_SIZE);
    for (int l = 0; names && l <= num_layers; l++)
        for (int i = 0; i < TG_STATE_DICT_SIZE; i++)
            snprintf(names + NAME_SIZE * (TG_STATE_DICT_SIZE * l + i), NAME_SIZE, "%s_l%d",
                     STATE_DICT_NAMES[i], l);
    return names;
}

static int save_module(const stored_module *m, const char *path, tg_error *err)
{
    stored_cell *cells = m->module ? calloc((size_t)(m->num_layers > 0 ? m->num_layers : 1), sizeof *cells) : NULL;
    tg_saved *tensors = cells ? calloc((size_t)m->num_layers * TG_STATE_DICT_SIZE + 1, sizeof *tensors) : NULL;
    char *names = tensors ? module_names(m->num_layers) : NULL;
    int rc = m->module && !names ? tg_error_set(err, path ? path : m->call, "out of memory")
                                 : check_module(m, path, cells, err);
    for (int l = 0; rc == 0 && l < m->num_layers; l++)
        for (int i = 0; i < TG_STATE_DICT_SIZE; i++) {
            const float *data = m->table->params[i].how == TG_STORED_AS_IS ? cells[l].params[i]->data : NULL;
            tensors[TG_STATE_DICT_SIZE * l + i] = (tg_saved){
                names + NAME_SIZE * (TG_STATE_DICT_SIZE * l + i), m->table->gates * m->hidden_size,
                cols_of(&cells[l], i), is_bias(i) ? 1 : 2, data };
        }
    if (rc == 0)
        rc = tg_safetensors_save(path, tensors, m->num_layers * TG_STATE_DICT_SIZE, err);
    free(names);
    free(tensors);
    free(cells);
    return rc;
}

static int load_module(const stored_module *m, const char *path, tg_error *err)
{
    const int n = m->num_layers * TG_STATE_DICT_SIZE;
    stored_cell *cells = m->module ? calloc((size_t)(m->num_layers > 0 ? m->num_layers : 1), sizeof *cells) : NULL;
    tg_wanted *wants = cells ? calloc((size_t)n + TG_STATE_DICT_SIZE, sizeof *wants) : NULL;
    char *names = wants ? module_names(m->num_layers) : NULL;
    int rc = m->module && !names ? tg_error_set(err, path ? path : m->call, "out of memory")
                                 : check_module(m, path, cells, err);
    float *values = NULL;
    if (rc == 0) {
        for (int k = 0; k < n + TG_STATE_DICT_SIZE; k++) {
            int l = k / TG_STATE_DICT_SIZE, i = k % TG_STATE_DICT_SIZE;
            wants[k] = (tg_wanted){ .name = names + NAME_SIZE * k, .rule = TG_SHAPE_ABSENT };
            if (l < m->num_layers)
                wants[k] = (tg_wanted){ .name = names + NAME_SIZE * k, .rows = m->table->gates * m->hidden_size,
                                        .cols = cols_of(&cells[l], i),
                                        .rule = is_bias(i) ? TG_SHAPE_1D : TG_SHAPE_2D };
        }
        char who[64];
        snprintf(who, sizeof who, "the %d-layer module", m->num_layers);
        values = tg_safetensors_read(path, who, wants, n + TG_STATE_DICT_SIZE, err);
        rc = values ? 0 : -1;
    }
    for (int k = 0; rc == 0 && k < n; k++) {
        int l = k / TG_STATE_DICT_SIZE, i = k % TG_STATE_DICT_SIZE;
        commit(m->table->params[i].how, cells[l].params[i], &wants[k]);
    }
    if (rc == 0)
        tg_error_clear(err);
    free(values);
    free(names);
    free(wants);
    free(cells);
    return rc;
}

#define MODULE_VIEW(table_, call_, module_, layer_)                                               \
    ((stored_module){ (table_), (call_), (module_) ? (module_)->input_size : 0,                  \
                      (module_) ? (module_)->hidden_size : 0, (module_) ? (module_)->num_layers : 0, \
                      (layer_), (module_) })

int tg_rnn_save(const tg_rnn *rnn, const char *path, tg_error *err)
{
    stored_module m = MODULE_VIEW(&tg_rnn_cell_checkpoint, "tg_rnn_save", rnn, rnn_layer);
    return save_module(&m, path, err);
}

int tg_rnn_load(tg_rnn *rnn, const char *path, tg_error *err)
{
    stored_module m = MODULE_VIEW(&tg_rnn_cell_checkpoint, "tg_rnn_load", rnn, rnn_layer);
    return load_module(&m, path, err);
}

int tg_lstm_save(const tg_lstm *lstm, const char *path, tg_error *err)
{
    stored_module m = MODULE_VIEW(&tg_lstm_cell_checkpoint, "tg_lstm_save", lstm, lstm_layer);
    return save_module(&m, path, err);
}

int tg_lstm_load(tg_lstm *lstm, const char *path, tg_error *err)
{
    stored_module m = MODULE_VIEW(&tg_lstm_cell_checkpoint, "tg_lstm_load", lstm, lstm_layer);
    return load_module(&m, path, err);
}

int tg_gru_save(const tg_gru *gru, const char *path, tg_error *err)
{
    stored_module m = MODULE_VIEW(&tg_gru_cell_checkpoint, "tg_gru_save", gru, gru_layer);
    return save_module(&m, path, err);
}

int tg_gru_load(tg_gru *gru, const char *path, tg_error *err)
{
    stored_module m = MODULE_VIEW(&tg_gru_cell_checkpoint, "tg_gru_load", gru, gru_layer);
    return load_module(&m, path, err);
}
