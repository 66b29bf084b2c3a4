/* draw_tape.c: the tape of the seed's RNN unrolled over 3 steps, drawn (tg_tape_write_dot), and
 * W_h's grad taken apart into the shares of the three nodes W_h feeds. */
#define _POSIX_C_SOURCE 200809L /* fork, execlp, waitpid */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "tapegrad.h"

enum { INPUT_SIZE = 3, HIDDEN_SIZE = 2, STEPS = 3, DEFAULT_SEED = 42, NOT_FOUND = 127 };

static const char USAGE[] =
    "usage: draw_tape [--out DIR] [--seed N] [--no-render]\n"
    "Unrolls the seed tutorial's RNN cell (3 inputs, 2 hidden units, W_h and W_x drawn from\n"
    "N(0, 1), b = 0, h_0 = 0) over 3 steps, takes the loss L = mse(h_3, target), runs\n"
    "tg_backward and writes the tape as DIR/tape.dot; when Graphviz's dot is on the PATH it\n"
    "renders DIR/tape.svg too. Then it prints W_h's grad as the sum of what each of the three\n"
    "nodes that read W_h adds to it: da_t h_{t-1}^T, with da_t = dL/dh_t * (1 - h_t^2).\n"
    "  --out DIR     directory for tape.dot and tape.svg (default build)\n"
    "  --seed N      seed for the weights and the inputs, 0 or more (default 42)\n"
    "  --no-render   write tape.dot only\n"
    "  --help        print this and exit\n";

typedef struct options {
    const char *out;
    unsigned long long seed;
    bool render;
} options;

static options parse_args(int argc, char **argv)
{
    options opt = { .out = "build", .seed = DEFAULT_SEED, .render = true };
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        help_if_asked(flag, USAGE, true);
        if (strcmp(flag, "--no-render") == 0) {
            opt.render = false;
            continue;
        }
        const char *value = i + 1 < argc ? argv[++i] : NULL;
        if (strcmp(flag, "--seed") == 0)
            opt.seed = (unsigned long long)whole_number(flag, value, 0, LLONG_MAX);
        else if (strcmp(flag, "--out") == 0) {
            if (!value)
                usage_error("--out needs a value");
            opt.out = value;
        } else
            usage_error("unknown flag '%s'", flag);
    }
    return opt;
}

/* The unrolled run: h[0 .. STEPS] and the loss, on the tape. */
typedef struct unrolled {
    tg_tensor *x[STEPS + 1], *h[STEPS + 1], *target, *loss;   /* x[0] unused */
} unrolled;

static unrolled forward(tg_tape *tape, tg_rnn_cell *cell, tg_rng *rng)
{
    unrolled run = { .h[0] = tg_constant(tape, HIDDEN_SIZE, 1, NULL) };   /* h_0 = 0 */
    for (int t = 1; t <= STEPS; t++) {
        float x[INPUT_SIZE];                                              /* x_t ~ N(0, 1) */
        for (int i = 0; i < INPUT_SIZE; i++)
            x[i] = tg_rng_normal(rng);
        run.x[t] = tg_constant(tape, INPUT_SIZE, 1, x);
        run.h[t] = tg_rnn_cell_forward(tape, cell, run.x[t], run.h[t - 1]);
    }
    static const float target[HIDDEN_SIZE] = { 0.5f, -0.5f };
    run.target = tg_constant(tape, HIDDEN_SIZE, 1, target);
    run.loss = tg_mse(tape, run.h[STEPS], run.target);
    return run;
}

/* Writes the tape to path, every tensor of the run under its name. */
static int write_dot(const tg_tape *tape, const tg_rnn_cell *cell, const unrolled *run,
                     const char *path)
{
    char labels[2 * STEPS + 1][16];   /* room for "x_" and any int */
    tg_named names[2 * STEPS + 6] = {
        { "W_h", cell->W_h }, { "W_x", cell->W_x }, { "b", cell->b },
        { "h_0", run->h[0] }, { "target", run->target }, { "L", run->loss },
    };
    int n = 6;
    for (int t = 1; t <= STEPS; t++) {
        snprintf(labels[2 * t - 1], sizeof labels[0], "x_%d", t);
        snprintf(labels[2 * t], sizeof labels[0], "h_%d", t);
        names[n++] = (tg_named){ labels[2 * t - 1], run->x[t] };
        names[n++] = (tg_named){ labels[2 * t], run->h[t] };
    }
    tg_error err;
    if (tg_tape_write_dot(tape, path, names, n, &err) != 0) {
        fprintf(stderr, "draw_tape: %s\n", err.message);
        return -1;
    }
    printf("wrote %s\n", path);
    return 0;
}

/* Runs dot -Tsvg dot_path -o svg_path; returns dot's exit status, NOT_FOUND when there is no
 * dot to run, or -1 when it could not be started or waited for. */
static int run_dot(const char *dot_path, const char *svg_path)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execlp("dot", "dot", "-Tsvg", dot_path, "-o", svg_path, (char *)NULL);
        _exit(NOT_FOUND);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Renders the drawing, or says how to; returns 0, or -1 when dot ran and failed. */
static int render(const char *dot_path, const char *svg_path, bool wanted)
{
    int status = wanted ? run_dot(dot_path, svg_path) : NOT_FOUND;
    if (status == 0) {
        printf("wrote %s\n", svg_path);
        return 0;
    }
    if (status == NOT_FOUND) {
        printf("%s; to draw it: dot -Tsvg %s -o %s\n",
               wanted ? "Graphviz's dot is not on the PATH (Debian: apt-get install graphviz)"
                      : "not rendered (--no-render)",
               dot_path, svg_path);
        return 0;
    }
    fprintf(stderr, "draw_tape: dot -Tsvg %s -o %s failed\n", dot_path, svg_path);
    return -1;
}

static void print_matrix(const char *what, const float *m)
{
    printf("  %-26s [[% .5f, % .5f], [% .5f, % .5f]]\n", what, m[0], m[1], m[2], m[3]);
}

/* W_h's grad next to the sum of each step's share da_t h_{t-1}^T; returns the largest
 * difference. */
static float print_shares(const tg_rnn_cell *cell, const unrolled *run)
{
    float sum[HIDDEN_SIZE * HIDDEN_SIZE] = { 0 };
    printf("W_h feeds one node per step (a_t = W_h h_{t-1} + ...); each adds da_t h_{t-1}^T:\n");
    for (int t = 1; t <= STEPS; t++) {
        const tg_tensor *h = run->h[t], *h_prev = run->h[t - 1];
        float share[HIDDEN_SIZE * HIDDEN_SIZE];
        for (int i = 0; i < HIDDEN_SIZE; i++) {
            float da = h->grad[i] * (1.0f - h->data[i] * h->data[i]);
            for (int j = 0; j < HIDDEN_SIZE; j++) {
                share[i * HIDDEN_SIZE + j] = da * h_prev->data[j];
                sum[i * HIDDEN_SIZE + j] += share[i * HIDDEN_SIZE + j];
            }
        }
        char what[32];
        snprintf(what, sizeof what, "step %d%s", t, t == 1 ? " (h_0 = 0: adds 0)" : "");
        print_matrix(what, share);
    }
    print_matrix("sum of the three", sum);
    print_matrix("W_h.grad from tg_backward", cell->W_h->grad);
    float worst = 0.0f;
    for (int k = 0; k < HIDDEN_SIZE * HIDDEN_SIZE; k++)
        worst = fmaxf(worst, fabsf(sum[k] - cell->W_h->grad[k]));
    printf("largest difference: %.2g\n", worst);
    return worst;
}

static int draw(const options *opt, tg_tape *tape, tg_rnn_cell *cell)
{
    tg_rng rng = tg_rng_new(opt->seed);
    /* tg_rnn_cell_new used PyTorch's uniform init; the seed draws W_h, W_x from N(0, 1), b = 0 */
    tg_rnn_cell_init_normal(cell, 1.0f, tg_rng_next(&rng));
    unrolled run = forward(tape, cell, &rng);
    if (tg_backward(tape, run.loss) != 0) {
        fprintf(stderr, "draw_tape: %s\n", tg_tape_error(tape));
        return -1;
    }
    char dot_path[4096], svg_path[4096];
    if (snprintf(dot_path, sizeof dot_path, "%s/tape.dot", opt->out) >= (int)sizeof dot_path ||
        snprintf(svg_path, sizeof svg_path, "%s/tape.svg", opt->out) >= (int)sizeof svg_path) {
        fprintf(stderr, "draw_tape: output directory name too long: %s\n", opt->out);
        return -1;
    }
    if (write_dot(tape, cell, &run, dot_path) != 0 || render(dot_path, svg_path, opt->render) != 0)
        return -1;
    printf("L = %.6f\n", run.loss->data[0]);
    return print_shares(cell, &run) <= 1e-6f ? 0 : -1;
}

int main(int argc, char **argv)
{
    program = "draw_tape";
    options opt = parse_args(argc, argv);
    if (!is_directory(opt.out))
        return 1;
    tg_rnn_cell *cell = tg_rnn_cell_new(INPUT_SIZE, HIDDEN_SIZE, opt.seed);
    tg_tape *tape = tg_tape_new();
    int status = cell && tape ? draw(&opt, tape, cell) : -1;
    if (!cell || !tape)
        fprintf(stderr, "draw_tape: out of memory\n");
    tg_tape_free(tape);
    tg_rnn_cell_free(cell);
    return status == 0 ? 0 : 1;
}
