/* checkpoint.c: the cells' checkpoints, under PyTorch's state_dict names, so that a file
 * loads into torch.nn.RNNCell, LSTMCell or GRUCell and back. A cell with `gates` blocks of
 * H rows has weight_ih (gates H x I), weight_hh (gates H x H), bias_ih and bias_hh
 * ([gates H]). The RNN (1 block) and the LSTM (4) keep one bias b: saved as bias_ih with
 * bias_hh = 0, loaded as bias_ih + bias_hh. The GRU (3) keeps both. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "safetensors.h"

typedef struct cell_params {
    int input_size, hidden_size, gates;
    tg_tensor *W_x, *W_h;
    tg_tensor *b_x, *b_h;   /* b_h is NULL for the cells with one bias, b_x */
} cell_params;

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
static int check_cell(const char *path, const cell_params *c, tg_error *err)
{
    if (c->input_size < 1 || c->hidden_size < 1)
        return tg_error_set(err, path, "the cell has a bad size (input %d, hidden %d)", c->input_size,
                    c->hidden_size);
    const long long rows = (long long)c->gates * c->hidden_size;
    if (check_param(path, "W_x", c->W_x, rows, c->input_size, err) != 0 ||
        check_param(path, "W_h", c->W_h, rows, c->hidden_size, err) != 0 ||
        check_param(path, c->b_h ? "b_x" : "b", c->b_x, rows, 1, err) != 0)
        return -1;
    return c->b_h ? check_param(path, "b_h", c->b_h, rows, 1, err) : 0;
}

static int save_cell(const char *fn, const char *path, const cell_params *c, tg_error *err)
{
    if (!path)
        return tg_error_set(err, fn, "path is NULL");
    if (check_cell(path, c, err) != 0)
        return -1;
    const int rows = c->gates * c->hidden_size;
    const tg_saved tensors[4] = {
        { "weight_ih", rows, c->input_size, 2, c->W_x->data },
        { "weight_hh", rows, c->hidden_size, 2, c->W_h->data },
        { "bias_ih", rows, 1, 1, c->b_x->data },
        { "bias_hh", rows, 1, 1, c->b_h ? c->b_h->data : NULL },
    };
    return tg_safetensors_save(path, tensors, 4, err);
}

/* Copies the checked values into the cell. With one bias, b = bias_ih + bias_hh, where a
 * zero bias_hh leaves bias_ih as it is (adding +0 would turn a -0 into +0), so a saved
 * cell loads back bit for bit. */
static void commit_cell(const cell_params *c, const tg_wanted *w)
{
    const size_t rows = (size_t)c->gates * (size_t)c->hidden_size;
    memcpy(c->W_x->data, w[0].values, rows * (size_t)c->input_size * sizeof(float));
    memcpy(c->W_h->data, w[1].values, rows * (size_t)c->hidden_size * sizeof(float));
    if (c->b_h) {
        memcpy(c->b_x->data, w[2].values, rows * sizeof(float));
        memcpy(c->b_h->data, w[3].values, rows * sizeof(float));
        return;
    }
    for (size_t i = 0; i < rows; i++) {
        float bias_ih = w[2].values[i], bias_hh = w[3].values[i];
        c->b_x->data[i] = bias_hh == 0.0f ? bias_ih : bias_ih + bias_hh;
    }
}

static int load_cell(const char *fn, const char *path, const cell_params *c, tg_error *err)
{
    if (!path)
        return tg_error_set(err, fn, "path is NULL");
    if (check_cell(path, c, err) != 0)
        return -1;
    const int rows = c->gates * c->hidden_size;
    tg_wanted wants[4] = {
        { .name = "weight_ih", .rows = rows, .cols = c->input_size, .rule = TG_SHAPE_2D },
        { .name = "weight_hh", .rows = rows, .cols = c->hidden_size, .rule = TG_SHAPE_2D },
        { .name = "bias_ih", .rows = rows, .cols = 1, .rule = TG_SHAPE_1D },
        { .name = "bias_hh", .rows = rows, .cols = 1, .rule = TG_SHAPE_1D },
    };
    float *values = tg_safetensors_read(path, "the cell", wants, 4, err);
    if (!values)
        return -1;
    commit_cell(c, wants);
    free(values);
    tg_error_clear(err);
    return 0;
}

static cell_params rnn_params(const tg_rnn_cell *cell)
{
    return (cell_params){ cell->input_size, cell->hidden_size, 1, cell->W_x, cell->W_h, cell->b, NULL };
}

static cell_params lstm_params(const tg_lstm_cell *cell)
{
    return (cell_params){ cell->input_size, cell->hidden_size, 4, cell->W_x, cell->W_h, cell->b, NULL };
}

static cell_params gru_params(const tg_gru_cell *cell)
{
    return (cell_params){ cell->input_size, cell->hidden_size, 3, cell->W_x, cell->W_h,
                          cell->b_x, cell->b_h };
}

int tg_rnn_cell_save(const tg_rnn_cell *cell, const char *path, tg_error *err)
{
    if (!cell)
        return tg_error_set(err, path ? path : "tg_rnn_cell_save", "cell is NULL");
    cell_params c = rnn_params(cell);
    return save_cell("tg_rnn_cell_save", path, &c, err);
}

int tg_rnn_cell_load(tg_rnn_cell *cell, const char *path, tg_error *err)
{
    if (!cell)
        return tg_error_set(err, path ? path : "tg_rnn_cell_load", "cell is NULL");
    cell_params c = rnn_params(cell);
    return load_cell("tg_rnn_cell_load", path, &c, err);
}

int tg_lstm_cell_save(const tg_lstm_cell *cell, const char *path, tg_error *err)
{
    if (!cell)
        return tg_error_set(err, path ? path : "tg_lstm_cell_save", "cell is NULL");
    cell_params c = lstm_params(cell);
    return save_cell("tg_lstm_cell_save", path, &c, err);
}

int tg_lstm_cell_load(tg_lstm_cell *cell, const char *path, tg_error *err)
{
    if (!cell)
        return tg_error_set(err, path ? path : "tg_lstm_cell_load", "cell is NULL");
    cell_params c = lstm_params(cell);
    return load_cell("tg_lstm_cell_load", path, &c, err);
}

int tg_gru_cell_save(const tg_gru_cell *cell, const char *path, tg_error *err)
{
    if (!cell)
        return tg_error_set(err, path ? path : "tg_gru_cell_save", "cell is NULL");
    cell_params c = gru_params(cell);
    return save_cell("tg_gru_cell_save", path, &c, err);
}

int tg_gru_cell_load(tg_gru_cell *cell, const char *path, tg_error *err)
{
    if (!cell)
        return tg_error_set(err, path ? path : "tg_gru_cell_load", "cell is NULL");
    cell_params c = gru_params(cell);
    return load_cell("tg_gru_cell_load", path, &c, err);
}

/* The built-in kind of a tg_cell ("rnn", "lstm" or "gru"), or -1 with the message set. */
static int cell_kind(const tg_cell *cell, const char *fn, const char *path, tg_error *err)
{
    const char *where = path ? path : fn;
    if (!cell)
        return tg_error_set(err, where, "cell is NULL");
    static const char *const KINDS[] = { "rnn", "lstm", "gru" };
    for (int k = 0; k < 3; k++)
        if (cell->name && strcmp(cell->name, KINDS[k]) == 0)
            return cell->impl ? k : tg_error_set(err, where, "the %s cell has no impl", KINDS[k]);
    return tg_error_set(err, where, "cell '%.*s' is not an rnn, lstm or gru cell; save its params with "
                "tg_save", TG_NAME_SHOWN, cell->name ? cell->name : "(unnamed)");
}

int tg_cell_save(const tg_cell *cell, const char *path, tg_error *err)
{
    switch (cell_kind(cell, "tg_cell_save", path, err)) {
    case 0: return tg_rnn_cell_save(cell->impl, path, err);
    case 1: return tg_lstm_cell_save(cell->impl, path, err);
    case 2: return tg_gru_cell_save(cell->impl, path, err);
    default: return -1;
    }
}

int tg_cell_load(tg_cell *cell, const char *path, tg_error *err)
{
    switch (cell_kind(cell, "tg_cell_load", path, err)) {
    case 0: return tg_rnn_cell_load(cell->impl, path, err);
    case 1: return tg_lstm_cell_load(cell->impl, path, err);
    case 2: return tg_gru_cell_load(cell->impl, path, err);
    default: return -1;
    }
}
