/* safetensors.h: private to the library. Reading and writing safetensors files whole, for
 * tg_save/tg_load (src/safetensors.c) and the cells' checkpoints (src/checkpoint.c). */
#ifndef TAPEGRAD_SAFETENSORS_H
#define TAPEGRAD_SAFETENSORS_H

#include <stdint.h>

#include "tapegrad.h"

#define TG_NAME_SHOWN 48   /* bytes of a tensor's or a cell's name quoted in a message */

/* Makes room for one more item of `size` bytes in the array *items, which holds *capacity
 * and uses count of them (doubling it, from 16): false, and *items as it was, when it cannot.
 * The header's lists here and tg_checkpoint's in src/checkpoint.c grow by it. */
bool tg_grow_array(void **items, size_t *capacity, size_t count, size_t size);

/* A tensor to write: shape [rows] (dims 1) or [rows, cols] (dims 2); data NULL writes zeros. */
typedef struct tg_saved {
    const char *name;
    int rows, cols, dims;
    const float *data;
} tg_saved;

/* Writes tensors[0..n-1] (checked by the caller: names set and distinct, sizes valid) as
 * F32, replacing path only once the whole file is written. 0 with err cleared, or -1 with
 * err set. */
int tg_safetensors_save(const char *path, const tg_saved *tensors, int n, tg_error *err);
/* The same with meta[0..n_meta-1] (keys distinct, not "format", UTF-8: checked by the caller)
 * in the header's "__metadata__" after "format": "pt". */
int tg_safetensors_save_with_metadata(const char *path, const tg_saved *tensors, int n,
                                      const tg_metadata_entry *meta, int n_meta, tg_error *err);

typedef enum tg_shape_rule {
    TG_SHAPE_2D,              /* [rows, cols] */
    TG_SHAPE_1D,              /* [rows] (a PyTorch bias); cols is 1 */
    TG_SHAPE_2D_OR_COLUMN,    /* [rows, cols], or [rows] when cols is 1 */
    TG_SHAPE_ABSENT,          /* the file must not hold it (rows and cols 0): a module's layer
                                 past its last, so a file with more layers is refused */
} tg_shape_rule;

/* A tensor the model needs from a file. */
typedef struct tg_wanted {
    const char *name;
    int rows, cols;
    tg_shape_rule rule;
    float *values;     /* set by tg_safetensors_read: rows * cols values */
    uint64_t begin;    /* set by the checks: where its bytes start in the data section */
} tg_wanted;

/* Checks the whole file at path against wants[0..n-1] (who names the model in messages:
 * "the cell") and only then reads their values, as F32 in host order: returns one buffer
 * holding all of them, each wants[i].values pointing into it, for the caller to copy from
 * and free. NULL with err set when anything is wrong. err is not cleared on success. */
float *tg_safetensors_read(const char *path, const char *who, tg_wanted *wants, int n, tg_error *err);

#endif
