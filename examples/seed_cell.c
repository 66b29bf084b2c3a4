/* seed_cell.c: the seed tutorial's run in C: one vanilla RNN cell stepped over random inputs. */

/* The seed's PyTorch code does not run as printed: torch.mm refuses its 1-D hidden state, and
 * with a column hidden state its 1-D bias b would broadcast to a hidden x hidden matrix. The
 * version that works keeps the states as columns (hidden x 1) and b as hidden x 1 too, which
 * is tapegrad's convention: h_t = tanh(W_h h_{t-1} + W_x x_t + b). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tapegrad.h"

enum { INPUT_SIZE = 3, HIDDEN_SIZE = 2, DEFAULT_STEPS = 5, MAX_STEPS = 1000, DEFAULT_SEED = 42 };

static const char USAGE[] =
    "usage: seed_cell [--seed N] [--steps N]\n"
    "Steps the seed tutorial's RNN cell (3 inputs, 2 hidden units, W_h and W_x drawn from\n"
    "N(0, 1), b = 0) over random inputs and prints the hidden state h_t after each step.\n"
    "  --seed N    seed for the weights and the inputs, 0 or more (default 42)\n"
    "  --steps N   number of time steps, 1 to 1000 (default 5)\n"
    "  --help      print this and exit\n";

typedef struct options {
    unsigned long long seed;
    int steps;
} options;

static options parse_args(int argc, char **argv)
{
    options opt = { .seed = DEFAULT_SEED, .steps = DEFAULT_STEPS };
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        help_if_asked(flag, USAGE, true);
        const char *value = i + 1 < argc ? argv[++i] : NULL;
        if (strcmp(flag, "--seed") == 0)
            opt.seed = (unsigned long long)whole_number(flag, value, 0, LLONG_MAX);
        else if (strcmp(flag, "--steps") == 0)
            opt.steps = (int)whole_number(flag, value, 1, MAX_STEPS);
        else
            usage_error("unknown flag '%s'", flag);
    }
    return opt;
}

/* Prints "Time step t: h_t = [h1, h2, ...]" for h: hidden x 1. */
static void print_step(int t, const tg_tensor *h)
{
    printf("Time step %d: h_t = [", t);
    for (int i = 0; i < h->rows; i++)
        printf("%s%.4f", i > 0 ? ", " : "", h->data[i]);
    printf("]\n");
}

int main(int argc, char **argv)
{
    program = "seed_cell";
    options opt = parse_args(argc, argv);
    tg_rng rng = tg_rng_new(opt.seed);
    tg_rnn_cell *cell = tg_rnn_cell_new(INPUT_SIZE, HIDDEN_SIZE, opt.seed);
    tg_tape *tape = tg_tape_new();
    if (!cell || !tape) {
        complain("out of memory");
        tg_tape_free(tape);
        tg_rnn_cell_free(cell);
        return 1;
    }
    /* tg_rnn_cell_new used PyTorch's uniform init; the seed draws W_h, W_x from N(0, 1), b = 0 */
    tg_rnn_cell_init_normal(cell, 1.0f, tg_rng_next(&rng));

    int status = 0;
    tg_tensor *h = tg_input(tape, HIDDEN_SIZE, 1, NULL);     /* h_0 = 0: hidden x 1 */
    for (int t = 1; t <= opt.steps; t++) {
        float x[INPUT_SIZE];                                 /* x_t ~ N(0, 1): input x 1 */
        for (int i = 0; i < INPUT_SIZE; i++)
            x[i] = tg_rng_normal(&rng);
        h = tg_rnn_cell_forward(tape, cell, tg_input(tape, INPUT_SIZE, 1, x), h);
        if (!h) {
            complain("%s", tg_tape_error(tape));
            status = 1;
            break;
        }
        print_step(t, h);
    }
    tg_tape_free(tape);
    tg_rnn_cell_free(cell);
    return status;
}
