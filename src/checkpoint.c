/* checkpoint.c: the cells' and the modules' checkpoints, under PyTorch's state_dict names, so
 * that a file loads into torch.nn.RNNCell, LSTMCell or GRUCell, or nn.RNN, LSTM or GRU (layer
 * l's tensors named weight_ih_l<l>, ...), and back; and tg_checkpoint, a whole training run in
 * one file (modules, other tensors, the optimizer's state, metadata). What each name holds comes
 * from the cell's table (src/checkpoint.h), beside the cell's definition: this file holds
 * no cell's layout. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "error.h"
#include "optim.h"
#include "safetensors.h"
#include "tape.h"
#include "utf8.h"

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

/* ---- a whole run in one file: tg_checkpoint -------------------------------------------------- */

struct tg_checkpoint {
    tg_saved *tensors;              /* names owned here, data by reference */
    int n;
    size_t capacity;
    tg_metadata_entry *meta;        /* keys and values owned here */
    int n_meta;
    size_t meta_capacity;
};

static char *copy_text(const char *s)
{
    size_t len = strlen(s) + 1;
    char *copy = malloc(len);
    return copy ? memcpy(copy, s, len) : NULL;
}

tg_checkpoint *tg_checkpoint_new(tg_error *err)
{
    tg_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck)
        tg_error_set(err, "tg_checkpoint_new", "out of memory");
    else
        tg_error_clear(err);
    return ck;
}

void tg_checkpoint_free(tg_checkpoint *ck)
{
    if (!ck)
        return;
    for (int i = 0; i < ck->n; i++)
        free((char *)ck->tensors[i].name);
    for (int i = 0; i < ck->n_meta; i++) {
        free((char *)ck->meta[i].key);
        free((char *)ck->meta[i].value);
    }
    free(ck->tensors);
    free(ck->meta);
    free(ck);
}

/* Forgets what was added after ck held n tensors and n_meta metadata keys: a call that adds
 * several and fails part way changes nothing (a value it replaced stays replaced). */
static int roll_back(tg_checkpoint *ck, int n, int n_meta)
{
    while (ck->n > n)
        free((char *)ck->tensors[--ck->n].name);
    while (ck->n_meta > n_meta) {
        ck->n_meta--;
        free((char *)ck->meta[ck->n_meta].key);
        free((char *)ck->meta[ck->n_meta].value);
    }
    return -1;
}

/* Adds a rows x cols tensor (1-D when dims is 1) under name; data NULL stores zeros. */
static int add_saved(tg_checkpoint *ck, const char *name, int rows, int cols, int dims,
                     const float *data, tg_error *err)
{
    const char *call = "tg_checkpoint_add";
    if (!ck || !name)
        return tg_error_set(err, call, "%s is NULL", ck ? "name" : "ck");
    if (!*name || !tg_is_utf8(name) || strcmp(name, "__metadata__") == 0)
        return tg_error_set(err, call, "the name '%.*s' is empty, not UTF-8 or __metadata__",
                            TG_NAME_SHOWN, name);
    if (!tg_size_ok(rows, cols))
        return tg_error_set(err, call, "%.*s has a bad size %dx%d", TG_NAME_SHOWN, name, rows,
                            cols);
    for (int i = 0; i < ck->n; i++)
        if (strcmp(ck->tensors[i].name, name) == 0)
            return tg_error_set(err, call, "%.*s is added twice", TG_NAME_SHOWN, name);
    char *copy = copy_text(name);
    if (!copy || !tg_grow_array((void **)&ck->tensors, &ck->capacity, (size_t)ck->n,
                                            sizeof *ck->tensors)) {
        free(copy);
        return tg_error_set(err, call, "out of memory");
    }
    ck->tensors[ck->n++] = (tg_saved){ copy, rows, cols, dims, data };
    tg_error_clear(err);
    return 0;
}

int tg_checkpoint_add(tg_checkpoint *ck, const char *name, const tg_tensor *t, tg_error *err)
{
    if (!t || !t->data)
        return tg_error_set(err, "tg_checkpoint_add", "%.*s has no tensor data", TG_NAME_SHOWN,
                            name ? name : "(NULL)");
    return add_saved(ck, name, t->rows, t->cols, t->cols == 1 ? 1 : 2, t->data, err);
}

static int add_module(tg_checkpoint *ck, const stored_module *m, tg_error *err)
{
    if (!ck)
        return tg_error_set(err, m->call, "ck is NULL");
    const int before = ck->n;
    stored_cell *cells = m->module ? calloc((size_t)m->num_layers, sizeof *cells) : NULL;
    char *names = cells ? module_names(m->num_layers) : NULL;
    int rc = m->module && !names ? tg_error_set(err, m->call, "out of memory")
                                 : check_module(m, m->call, cells, err);
    for (int l = 0; rc == 0 && l < m->num_layers; l++)
        for (int i = 0; rc == 0 && i < TG_STATE_DICT_SIZE; i++) {
            const tg_stored how = m->table->params[i].how;
            const float *data = how == TG_STORED_AS_IS ? cells[l].params[i]->data : NULL;
            rc = add_saved(ck, names + NAME_SIZE * (TG_STATE_DICT_SIZE * l + i),
                           m->table->gates * m->hidden_size, cols_of(&cells[l], i),
                           is_bias(i) ? 1 : 2, data, err);
        }
    free(names);
    free(cells);
    return rc == 0 ? 0 : roll_back(ck, before, ck->n_meta);
}

int tg_checkpoint_add_rnn(tg_checkpoint *ck, const tg_rnn *rnn, tg_error *err)
{
    stored_module m = MODULE_VIEW(&tg_rnn_cell_checkpoint, "tg_checkpoint_add_rnn", rnn, rnn_layer);
    return add_module(ck, &m, err);
}

int tg_checkpoint_add_lstm(tg_checkpoint *ck, const tg_lstm *lstm, tg_error *err)
{
    stored_module m = MODULE_VIEW(&tg_lstm_cell_checkpoint, "tg_checkpoint_add_lstm", lstm,
                                  lstm_layer);
    return add_module(ck, &m, err);
}

int tg_checkpoint_add_gru(tg_checkpoint *ck, const tg_gru *gru, tg_error *err)
{
    stored_module m = MODULE_VIEW(&tg_gru_cell_checkpoint, "tg_checkpoint_add_gru", gru, gru_layer);
    return add_module(ck, &m, err);
}

int tg_checkpoint_set(tg_checkpoint *ck, const char *key, const char *value, tg_error *err)
{
    const char *call = "tg_checkpoint_set";
    if (!ck || !key || !value)
        return tg_error_set(err, call, "%s is NULL", !ck ? "ck" : !key ? "key" : "value");
    if (!*key || strcmp(key, "format") == 0 || !tg_is_utf8(key) || !tg_is_utf8(value))
        return tg_error_set(err, call, "key '%.*s': keys are UTF-8, not empty nor \"format\"; "
                            "values UTF-8", TG_NAME_SHOWN, key);
    int at = 0;
    while (at < ck->n_meta && strcmp(ck->meta[at].key, key) != 0)
        at++;
    char *copy = copy_text(value), *key_copy = at < ck->n_meta ? NULL : copy_text(key);
    bool room = at < ck->n_meta ||
                (key_copy && tg_grow_array((void **)&ck->meta, &ck->meta_capacity,
                                           (size_t)ck->n_meta, sizeof *ck->meta));
    if (!copy || !room) {
        free(copy);
        free(key_copy);
        return tg_error_set(err, call, "out of memory");
    }
    if (at < ck->n_meta)
        free((char *)ck->meta[at].value);
    else
        ck->meta[ck->n_meta++].key = key_copy;
    ck->meta[at].value = copy;
    tg_error_clear(err);
    return 0;
}

int tg_checkpoint_write(const tg_checkpoint *ck, const char *path, tg_error *err)
{
    if (!ck || !path)
        return tg_error_set(err, "tg_checkpoint_write", "%s is NULL", ck ? "path" : "ck");
    return tg_safetensors_save_with_metadata(path, ck->tensors, ck->n, ck->meta, ck->n_meta, err);
}

/* ---- the optimizer's state ------------------------------------------------------------------- */

static const char *const OPTIMIZER_KINDS[] = {
    [TG_SGD] = "sgd", [TG_MOMENTUM] = "momentum", [TG_ADAGRAD] = "adagrad", [TG_ADAM] = "adam",
};
/* PyTorch's names for the state buffers of each kind (torch.optim's state_dict). */
static const char *const TORCH_NAMES[][2] = {
    [TG_SGD] = { NULL, NULL }, [TG_MOMENTUM] = { "momentum_buffer", NULL },
    [TG_ADAGRAD] = { "sum", NULL }, [TG_ADAM] = { "exp_avg", "exp_avg_sq" },
};

const char *tg_optimizer_state_name(tg_optimizer_kind kind, int which)
{
    if ((unsigned)kind > TG_ADAM || which < 0 || which > 1)
        return NULL;
    return TORCH_NAMES[kind][which];
}

int tg_optimizer_state_tensor(const tg_optimizer *opt, int param, int which, tg_tensor *out,
                              tg_error *err)
{
    const char *call = "tg_optimizer_state_tensor";
    if (!opt || !opt->state || !out)
        return tg_error_set(err, call, "%s is NULL", !out ? "out" : opt ? "opt->state" : "opt");
    const struct tg_optimizer_state *st = opt->state;
    if (param < 0 || param >= st->n)
        return tg_error_set(err, call, "param %d is not in 0..%d", param, st->n - 1);
    const int kept = st->second ? 2 : st->first ? 1 : 0;
    if (which < 0 || which >= kept)
        return tg_error_set(err, call, "%s keeps %d state tensors per parameter; which is %d",
                            OPTIMIZER_KINDS[st->kind], kept, which);
    long offset = 0;
    for (int i = 0; i < param; i++)
        offset += (long)st->params[i]->rows * st->params[i]->cols;
    float *buffer = which == 0 ? st->first : st->second;
    *out = (tg_tensor){ .rows = st->params[param]->rows, .cols = st->params[param]->cols,
                        .data = buffer + offset };
    tg_error_clear(err);
    return 0;
}

enum { N_SETTINGS = 5 };
static const char *const SETTINGS[N_SETTINGS] = { "lr", "momentum", "beta1", "beta2", "eps" };

static float *setting(tg_optimizer *opt, int i)
{
    float *fields[N_SETTINGS] = { &opt->lr, &opt->momentum, &opt->beta1, &opt->beta2, &opt->eps };
    return fields[i];
}

/* "optimizer.<name>.<buffer>" into out (NAME_SIZE * 4 bytes); false when it does not fit. */
static bool state_name(char *out, const char *name, const char *buffer)
{
    return snprintf(out, NAME_SIZE * 4, "optimizer.%s.%s", name, buffer) < NAME_SIZE * 4;
}

/* The number of buffers opt keeps per parameter. */
static int buffers_of(const tg_optimizer *opt)
{
    const char *second = tg_optimizer_state_name(opt->kind, 1);
    return second ? 2 : tg_optimizer_state_name(opt->kind, 0) ? 1 : 0;
}

/* How many parameters opt's state covers (for TG_SGD buffers_of is 0: nothing is saved). */
static int params_of(const tg_optimizer *opt) { return opt->state ? opt->state->n : 0; }

int tg_checkpoint_add_optimizer(tg_checkpoint *ck, const tg_optimizer *opt,
                                const char *const *names, tg_error *err)
{
    const char *call = "tg_checkpoint_add_optimizer";
    if (!ck || !opt || !names)
        return tg_error_set(err, call, "%s is NULL", !ck ? "ck" : !opt ? "opt" : "names");
    if ((unsigned)opt->kind > TG_ADAM)
        return tg_error_set(err, call, "unknown kind %d", (int)opt->kind);
    const int before = ck->n, meta_before = ck->n_meta;
    char text[64];
    int rc = tg_checkpoint_set(ck, "optimizer.kind", OPTIMIZER_KINDS[opt->kind], err);
    for (int i = 0; rc == 0 && i < N_SETTINGS; i++) {
        char key[32];
        snprintf(key, sizeof key, "optimizer.%s", SETTINGS[i]);
        snprintf(text, sizeof text, "%.9g", *setting((tg_optimizer *)opt, i));
        rc = tg_checkpoint_set(ck, key, text, err);
    }
    snprintf(text, sizeof text, "%ld", opt->steps);
    if (rc == 0)
        rc = tg_checkpoint_set(ck, "optimizer.steps", text, err);
    for (int i = 0, n = params_of(opt); rc == 0 && i < n; i++)
        for (int which = 0; rc == 0 && which < buffers_of(opt); which++) {
            char name[NAME_SIZE * 4];
            tg_tensor t = { 0 };
            const char *buffer = tg_optimizer_state_name(opt->kind, which);
            rc = !names[i] || !state_name(name, names[i], buffer)
                     ? tg_error_set(err, call, "names[%d] is NULL or too long", i)
                     : tg_optimizer_state_tensor(opt, i, which, &t, err);
            if (rc == 0)
                rc = tg_checkpoint_add(ck, name, &t, err);
        }
    return rc == 0 ? 0 : roll_back(ck, before, meta_before);
}

/* The settings and steps saved in md, parsed into values[] and *steps: 0, or -1 with err. */
static int read_settings(const tg_metadata *md, const tg_optimizer *opt, const char *path,
                         float values[N_SETTINGS], long *steps, tg_error *err)
{
    const char *kind = tg_metadata_get(md, "optimizer.kind");
    if (!kind || strcmp(kind, OPTIMIZER_KINDS[opt->kind]) != 0)
        return tg_error_set(err, path, "the optimizer saved is %s, not %s", kind ? kind : "absent",
                            OPTIMIZER_KINDS[opt->kind]);
    for (int i = 0; i <= N_SETTINGS; i++) {
        char key[32];
        snprintf(key, sizeof key, "optimizer.%s", i < N_SETTINGS ? SETTINGS[i] : "steps");
        const char *text = tg_metadata_get(md, key);
        char *end = NULL;
        double v = text ? strtod(text, &end) : 0.0;
        if (!text || end == text || *end != '\0')
            return tg_error_set(err, path, "metadata %s is %s, not a number", key,
                                text ? text : "absent");
        if (i < N_SETTINGS)
            values[i] = (float)v;
        else
            *steps = (long)v;
    }
    return 0;
}

int tg_optimizer_load(tg_optimizer *opt, const char *path, const char *const *names,
                      tg_error *err)
{
    const char *call = "tg_optimizer_load";
    if (!opt || !path || !names)
        return tg_error_set(err, call, "%s is NULL", !opt ? "opt" : !path ? "path" : "names");
    if ((unsigned)opt->kind > TG_ADAM)
        return tg_error_set(err, call, "unknown kind %d", (int)opt->kind);
    tg_metadata *md = tg_load_metadata(path, err);
    float values[N_SETTINGS];
    long steps = 0;
    int rc = md ? read_settings(md, opt, path, values, &steps, err) : -1;
    tg_metadata_free(md);
    const int per = buffers_of(opt), n = params_of(opt), total = n * per;
    tg_wanted *wants = rc == 0 ? calloc((size_t)total + 1, sizeof *wants) : NULL;
    char *names_room = wants ? malloc((size_t)total * NAME_SIZE * 4 + 1) : NULL;
    tg_tensor *buffers = names_room ? calloc((size_t)total + 1, sizeof *buffers) : NULL;
    if (rc == 0 && !buffers)
        rc = tg_error_set(err, path, "out of memory");
    for (int k = 0; rc == 0 && k < total; k++) {
        char *name = names_room + (size_t)k * NAME_SIZE * 4;
        tg_optimizer_state_tensor(opt, k / per, k % per, &buffers[k], NULL);
        if (!names[k / per] || !state_name(name, names[k / per],
                                           tg_optimizer_state_name(opt->kind, k % per)))
            rc = tg_error_set(err, call, "names[%d] is NULL or too long", k / per);
        wants[k] = (tg_wanted){ name, buffers[k].rows, buffers[k].cols, TG_SHAPE_2D_OR_COLUMN,
                                NULL, 0 };
    }
    float *read = rc == 0 ? tg_safetensors_read(path, "the optimizer", wants, total, err) : NULL;
    if (rc == 0 && !read)
        rc = -1;
    for (int k = 0; rc == 0 && k < total; k++)
        memcpy(buffers[k].data, wants[k].values,
               (size_t)buffers[k].rows * (size_t)buffers[k].cols * sizeof(float));
    for (int i = 0; rc == 0 && i < N_SETTINGS; i++)
        *setting(opt, i) = values[i];
    if (rc == 0) {
        opt->steps = steps;
        tg_error_clear(err);
    }
    free(read);
    free(buffers);
    free(names_room);
    free(wants);
    return rc;
}
