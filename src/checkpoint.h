/* checkpoint.h: private to the library. How a built-in cell is stored in a checkpoint: one
 * table per cell, beside the cell's definition (src/rnn.c, src/gated.c), read by
 * src/checkpoint.c, which knows no cell by name. tg_cell_save and tg_cell_load find a cell's
 * table through the list of kinds in src/cell.c. */
#ifndef TAPEGRAD_CHECKPOINT_H
#define TAPEGRAD_CHECKPOINT_H

#include <stddef.h>

#include "tapegrad.h"

/* The tensors of a PyTorch recurrent cell's state_dict, for a cell with G = gates x hidden
 * rows and I inputs: weight_ih [G, I], weight_hh [G, H], bias_ih [G] and bias_hh [G]. */
enum { TG_WEIGHT_IH, TG_WEIGHT_HH, TG_BIAS_IH, TG_BIAS_HH, TG_STATE_DICT_SIZE };

/* How a state_dict tensor is stored from the cell's parameter. */
typedef enum tg_stored {
    TG_STORED_AS_IS,   /* saved and loaded as the parameter holds it */
    TG_STORED_ADDED,   /* the parameter is the sum of this tensor and the one before it, which
                          holds all of it: saved as zeros, added to the parameter on load */
} tg_stored;

/* The cell's parameter behind one state_dict tensor. */
typedef struct tg_stored_param {
    const char *name;   /* the parameter's name, for messages: "W_x" */
    size_t offset;      /* offsetof its tg_tensor * field in the cell's struct */
    tg_stored how;
} tg_stored_param;

/* A cell in a checkpoint. */
typedef struct tg_cell_checkpoint {
    const char *type;                             /* names the cell's calls: "tg_rnn_cell" */
    int gates;                                    /* blocks of hidden rows in each tensor */
    size_t input_size, hidden_size;               /* offsetof the cell's int sizes */
    tg_stored_param params[TG_STATE_DICT_SIZE];   /* indexed by TG_WEIGHT_IH .. TG_BIAS_HH */
} tg_cell_checkpoint;

extern const tg_cell_checkpoint tg_rnn_cell_checkpoint;    /* src/rnn.c */
extern const tg_cell_checkpoint tg_lstm_cell_checkpoint;   /* src/gated.c */
extern const tg_cell_checkpoint tg_gru_cell_checkpoint;    /* src/gated.c */

/* The table of a tg_cell kind ("rnn", "lstm", "gru"); NULL for any other name (src/cell.c). */
const tg_cell_checkpoint *tg_cell_kind_checkpoint(const char *name);

#endif
