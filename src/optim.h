/* optim.h: private to the library. The state tg_optimizer keeps (src/optim.c), which the
 * checkpoints (src/checkpoint.c) save and restore. */
#ifndef TAPEGRAD_OPTIM_H
#define TAPEGRAD_OPTIM_H

#include "tapegrad.h"

struct tg_optimizer_state {
    tg_optimizer_kind kind;   /* the kind the buffers were sized for */
    long total;               /* values over all the parameters */
    float *first;             /* total values: momentum's v, Adagrad's s, Adam's m; NULL for SGD */
    float *second;            /* total values: Adam's v; NULL for the others */
    int n;
    tg_tensor *params[];      /* n: a copy of the caller's array */
};

#endif
