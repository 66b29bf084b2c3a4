/* hostile.h: what the corpus generator (gen_corpus.c) and its driver (run_hostile.c) agree
 * on: the models' sizes, the named tensors of the tg_save base, and how a file's name says
 * what loading it must do.
 *
 * A corpus file is named NNNNN-LABEL-KIND-WHAT.safetensors: KIND is the base it was made from
 * (rnn, lstm, gru: a cell's file; named: a tg_save file), LABEL what the loaders of that kind
 * must do with it (refuse, load, or either: the oracle alone decides), WHAT the damage done. */
#ifndef TAPEGRAD_HOSTILE_H
#define TAPEGRAD_HOSTILE_H

enum { HOSTILE_INPUT = 3, HOSTILE_HIDDEN = 4 };   /* the sizes of tests/fixtures/checkpoints */

/* The tensors of the tg_save base, and of the tg_load model that reads it. */
typedef struct hostile_named { const char *name; int rows, cols; } hostile_named;

static const hostile_named HOSTILE_NAMED[] = {
    { "embedding", 5, 3 }, { "bias", 5, 1 }, { "\xc3\xb1" "ame \xe2\x9c\x93", 2, 2 },
};
enum { HOSTILE_N_NAMED = sizeof HOSTILE_NAMED / sizeof HOSTILE_NAMED[0] };

#endif
