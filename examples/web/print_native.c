/* print_native.c: the browser lab's computations (lab_web.c) run natively, printing the
 * numbers the page shows, so that tests/web_test.js can hold the page to them and
 * tests/web_native.sh can hold them to the native lab programs. */
#define _POSIX_C_SOURCE 200809L   /* for stat() in cli.h */

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cli.h"
#include "../../src/kernels.h"   /* tg_kernel_use_path: the page's kernels are the plain C ones */
#include "lab_web.h"

static const char USAGE[] =
    "usage: print_native [curve flags] | --train [training flags] | --seed-cell [--steps N]\n"
    "Prints what the browser lab (examples/web/) computes, from the same C code, natively.\n"
    "The curve (the default): one line 'k ratio' for k = 0..T-1, ratio being\n"
    "||dL/d(h or x)_{T-k}|| / ||dL/d(h or x)_T||, as lab_gradient_norms measures it:\n"
    "  --cell rnn|lstm|gru   (default rnn)          --hidden N  1 to 128 (default 50)\n"
    "  --steps N   T, 2 to 300 (default 100)        --rho X     W_h = rho Q, 0 to 2 (default 0.9)\n"
    "  --init rho|pytorch    the RNN's W_h (default rho)\n"
    "  --forget-bias X       the LSTM's, -10 to 10 (default 1)\n"
    "  --of h|x    follow dL/dh_t or dL/dx_t (default h)\n"
    "  --runs N    runs averaged (geometric mean), 1 to 10 (default 2)\n"
    "--train: the adding problem, one line 'step loss gradient_norm' per step, and a last line\n"
    "'diverged at step N: why' if it diverged:\n"
    "  --cell, --hidden N (1 to 64, default 32), --steps N (T, 2 to 200, default 10)\n"
    "  --batch N   1 to 64 (default 20)             --train-steps N  (default 100)\n"
    "  --optimizer sgd|momentum|adagrad|adam (default adam)   --lr X (default 0.01)\n"
    "  --clip off|norm|value (default norm)         --clip-at X (default 1)\n"
    "--seed-cell: seed_cell.c's run (seed 42 unless --seed), T = --steps (1 to 20, default 5):\n"
    "  per step t, one line 't a1 a2 h1 h2 dL/dh1 dL/dh2 dL/da1 dL/da2'; then 'W_h' and\n"
    "  'dL/dW_h' lines of 4 values (row-major) and 'L value'.\n"
    "Every mode:\n"
    "  --seed N    0 to 2147483647 (default 1)\n"
    "  --kernels c|best   the plain C kernels, as in WebAssembly (default), or the widest\n"
    "              this CPU has, as the native lab programs use\n"
    "  --help      print this and exit\n";

enum mode { CURVE, TRAIN, SEED_CELL };

typedef struct options {
    enum mode mode;
    int cell, hidden, steps, init, of, runs, seed, batch, train_steps, optimizer, clip;
    float rho, forget_bias, lr, clip_at;
    bool best_kernels, seed_given, hidden_given, steps_given;
} options;

/* The index of text in names[0..n-1], or a usage error for flag. */
static int choice(const char *flag, const char *text, const char *const *names, int n)
{
    for (int i = 0; text && i < n; i++)
        if (strcmp(text, names[i]) == 0)
            return i;
    usage_error("%s: unknown value '%s'", flag, text ? text : "");
}

/* A number as the page passes it: parsed as a double, then rounded to float. */
static float real(const char *flag, const char *text)
{
    char *end;
    errno = 0;
    double value = text ? strtod(text, &end) : NAN;
    if (!text || errno != 0 || end == text || *end != '\0' || !isfinite(value))
        usage_error("%s needs a number", flag);
    return (float)value;
}

static const char *const CELLS[] = { "rnn", "lstm", "gru" };
static const char *const INITS[] = { "rho", "pytorch" };
static const char *const OFS[] = { "h", "x" };
static const char *const OPTIMIZERS[] = { "sgd", "momentum", "adagrad", "adam" };
static const char *const CLIPS[] = { "off", "norm", "value" };
static const char *const KERNELS[] = { "c", "best" };

/* Whole numbers are range-checked by lab_web.c, as the page's are; this only parses them. */
static int whole(const char *flag, const char *text)
{
    return (int)whole_number(flag, text, -2147483647, 2147483647);
}

/* Reads flag, which takes the value v; false when the flag is unknown. */
static bool value_flag(options *o, const char *flag, const char *v)
{
    if (strcmp(flag, "--cell") == 0)
        o->cell = choice(flag, v, CELLS, 3);
    else if (strcmp(flag, "--hidden") == 0) {
        o->hidden = whole(flag, v);
        o->hidden_given = true;
    } else if (strcmp(flag, "--steps") == 0) {
        o->steps = whole(flag, v);
        o->steps_given = true;
    } else if (strcmp(flag, "--seed") == 0) {
        o->seed = whole(flag, v);
        o->seed_given = true;
    } else if (strcmp(flag, "--rho") == 0)
        o->rho = real(flag, v);
    else if (strcmp(flag, "--init") == 0)
        o->init = choice(flag, v, INITS, 2);
    else if (strcmp(flag, "--forget-bias") == 0)
        o->forget_bias = real(flag, v);
    else if (strcmp(flag, "--of") == 0)
        o->of = choice(flag, v, OFS, 2);
    else if (strcmp(flag, "--runs") == 0)
        o->runs = whole(flag, v);
    else if (strcmp(flag, "--batch") == 0)
        o->batch = whole(flag, v);
    else if (strcmp(flag, "--train-steps") == 0)
        o->train_steps = (int)whole_number(flag, v, 0, 1000000);
    else if (strcmp(flag, "--optimizer") == 0)
        o->optimizer = choice(flag, v, OPTIMIZERS, 4);
    else if (strcmp(flag, "--lr") == 0)
        o->lr = real(flag, v);
    else if (strcmp(flag, "--clip") == 0)
        o->clip = choice(flag, v, CLIPS, 3);
    else if (strcmp(flag, "--clip-at") == 0)
        o->clip_at = real(flag, v);
    else if (strcmp(flag, "--kernels") == 0)
        o->best_kernels = choice(flag, v, KERNELS, 2) == 1;
    else
        return false;
    return true;
}

static options parse_args(int argc, char **argv)
{
    options o = { .mode = CURVE, .cell = LAB_RNN, .hidden = 50, .steps = 100, .rho = 0.9f,
                  .init = LAB_INIT_RHO_Q, .forget_bias = 1.0f, .of = LAB_OF_H, .runs = 2, .seed = 1,
                  .batch = 20, .train_steps = 100, .optimizer = LAB_ADAM, .lr = 0.01f,
                  .clip = LAB_CLIP_NORM, .clip_at = 1.0f };
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        help_if_asked(flag, USAGE, true);
        if (strcmp(flag, "--train") == 0)
            o.mode = TRAIN;
        else if (strcmp(flag, "--seed-cell") == 0)
            o.mode = SEED_CELL;
        else if (!value_flag(&o, flag, i + 1 < argc ? argv[i + 1] : NULL))
            usage_error("unknown flag '%s'", flag);
        else
            i++;
    }
    if (o.mode == TRAIN) {   /* the training panel's defaults differ from the curve's */
        o.hidden = o.hidden_given ? o.hidden : 32;
        o.steps = o.steps_given ? o.steps : 10;
    }
    if (o.mode == SEED_CELL) {
        o.seed = o.seed_given ? o.seed : 42;
        o.steps = o.steps_given ? o.steps : 5;
    }
    return o;
}

static int print_curve(const options *o)
{
    if (lab_curve(o->cell, o->hidden, o->steps, o->rho, o->init, o->forget_bias, o->of, o->runs,
                  o->seed) != 0)
        return -1;
    const double *ratio = lab_curve_values();
    for (int k = 0; k < o->steps; k++)
        printf("%d %.17g\n", k, ratio[k]);
    return 0;
}

/* Runs the training steps in chunks, as the page's worker does, printing each step. */
static int print_training(const options *o)
{
    if (lab_train_start(o->cell, o->hidden, o->steps, o->batch, o->optimizer, o->lr, o->clip,
                        o->clip_at, o->seed) != 0)
        return -1;
    int done = 0;
    while (done < o->train_steps) {
        int left = o->train_steps - done;
        int want = left < LAB_TRAIN_CHUNK ? left : LAB_TRAIN_CHUNK;
        int ran = lab_train_run(want);
        for (int i = 0; i < ran; i++)
            printf("%d %.9g %.9g\n", done + i + 1, (double)lab_train_losses()[i],
                   (double)lab_train_norms()[i]);
        done += ran > 0 ? ran : 0;
        if (ran != want) {
            printf("%s\n", lab_message());
            break;
        }
    }
    lab_train_stop();
    return 0;
}

static int print_seed_cell(const options *o)
{
    if (lab_seed(o->seed, o->steps) != 0)
        return -1;
    const double *v = lab_seed_values();
    for (int t = 1; t <= o->steps; t++, v += 8)
        printf("%d %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g\n", t, v[0], v[1], v[2], v[3], v[4],
               v[5], v[6], v[7]);
    printf("W_h %.9g %.9g %.9g %.9g\n", v[0], v[1], v[2], v[3]);
    printf("dL/dW_h %.9g %.9g %.9g %.9g\n", v[4], v[5], v[6], v[7]);
    printf("L %.9g\n", v[8]);
    return 0;
}

int main(int argc, char **argv)
{
    program = "print_native";
    options o = parse_args(argc, argv);
    if (!o.best_kernels)
        tg_kernel_use_path(TG_PATH_C);
    int status = o.mode == CURVE ? print_curve(&o) : o.mode == TRAIN ? print_training(&o)
                                                                      : print_seed_cell(&o);
    if (status != 0)
        complain("%s", lab_message());
    return status == 0 ? 0 : 1;
}
