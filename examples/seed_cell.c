/* seed_cell.c: the seed tutorial's run in C: one vanilla RNN cell stepped over random inputs,
 * and with --backward its backpropagation through time, step by step, in numbers. */

/* The seed's PyTorch code does not run as printed: torch.mm refuses its 1-D hidden state, and
 * with a column hidden state its 1-D bias b would broadcast to a hidden x hidden matrix. The
 * version that works keeps the states as columns (hidden x 1) and b as hidden x 1 too, which
 * is tapegrad's convention: h_t = tanh(W_h h_{t-1} + W_x x_t + b). */
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tapegrad.h"

enum { INPUT_SIZE = 3, HIDDEN_SIZE = 2, DEFAULT_STEPS = 5, MAX_STEPS = 1000, DEFAULT_SEED = 42 };

/* --backward: the loss is mse(h_T, y) against this fixed target y (hidden x 1) */
static const float TARGET[HIDDEN_SIZE] = { 0.5f, -0.5f };
#define DEFAULT_TOLERANCE 1e-3   /* the finite-difference check's largest relative error */
#define FD_STEP 1e-6             /* the central differences' step, on a forward in double */

static const char USAGE[] =
    "usage: seed_cell [--seed N] [--steps N] [--backward [--tolerance X]]\n"
    "Steps the seed tutorial's RNN cell (3 inputs, 2 hidden units, W_h and W_x drawn from\n"
    "N(0, 1), b = 0) over random inputs and prints the hidden state h_t after each step.\n"
    "  --seed N       seed for the weights and the inputs, 0 or more (default 42)\n"
    "  --steps N      number of time steps T, 1 to 1000 (default 5)\n"
    "  --backward     backpropagation through time instead, on the loss\n"
    "                 L = mse(h_T, y) = (1/2) ||h_T - y||^2 with y = [0.5, -0.5]: after one\n"
    "                 tg_backward it prints, for t = T down to 1 (vectors are columns: the\n"
    "                 first row is hidden unit 1, the second unit 2),\n"
    "                   a_t        the pre-activation W_h h_{t-1} + W_x x_t + b\n"
    "                   h_t        the hidden state tanh(a_t)\n"
    "                   dL/dh_t    h_t's grad on the tape\n"
    "                   dL/da_t    a_t's grad on the tape, (1 - h_t^2) * dL/dh_t\n"
    "                   dL/da_t h_{t-1}^T   step t's share of dL/dW_h (2 x 2)\n"
    "                   J_t        the step's Jacobian dh_t/dh_{t-1} = diag(1 - h_t^2) W_h\n"
    "                   sigma_max, sigma_min   J_t's singular values (closed form, in double)\n"
    "                 then dL/dW_h three ways: the shares added up, W_h's grad from\n"
    "                 tg_backward, and central differences of L computed in double\n"
    "                 (step 1e-6, every element of W_h), with the largest difference of the\n"
    "                 sum from the grad and the worst relative error of the grad, each\n"
    "                 relative to the largest value of its reference (at least 1e-3). Exit\n"
    "                 status 1 when the worst relative error is above the tolerance, when\n"
    "                 the shares do not add up to the grad (1e-5), or when the step built\n"
    "                 here from tg_matmul_add and tg_tanh does not give tg_rnn_cell_forward's\n"
    "                 h_t bit for bit.\n"
    "  --tolerance X  with --backward: the finite-difference check's tolerance, above 0\n"
    "                 (default 1e-3; 1e-12 shows the check failing)\n"
    "  --help         print this and exit\n";

typedef struct options {
    unsigned long long seed;
    int steps;
    bool backward;
    double tolerance;
} options;

static options parse_args(int argc, char **argv)
{
    options opt = { .seed = DEFAULT_SEED, .steps = DEFAULT_STEPS, .tolerance = DEFAULT_TOLERANCE };
    bool tolerance_given = false;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        help_if_asked(flag, USAGE, true);
        if (strcmp(flag, "--backward") == 0) {
            opt.backward = true;
            continue;
        }
        const char *value = i + 1 < argc ? argv[++i] : NULL;
        if (strcmp(flag, "--seed") == 0)
            opt.seed = (unsigned long long)whole_number(flag, value, 0, LLONG_MAX);
        else if (strcmp(flag, "--steps") == 0)
            opt.steps = (int)whole_number(flag, value, 1, MAX_STEPS);
        else if (strcmp(flag, "--tolerance") == 0) {
            opt.tolerance = real_number(flag, value, false);
            tolerance_given = true;
        } else
            usage_error("unknown flag '%s'", flag);
    }
    if (tolerance_given && !opt.backward)
        usage_error("--tolerance goes with --backward");
    return opt;
}

/* ---- The forward run: the seed tutorial's output ------------------------------------------ */

/* Prints "Time step t: h_t = [h1, h2, ...]" for h: hidden x 1. */
static void print_step(int t, const tg_tensor *h)
{
    printf("Time step %d: h_t = [", t);
    for (int i = 0; i < h->rows; i++)
        printf("%s%.4f", i > 0 ? ", " : "", h->data[i]);
    printf("]\n");
}

/* x: steps x INPUT_SIZE, x[t - 1] being x_t. Prints h_t after each step; 0, or 1 on error. */
static int run_forward(tg_rnn_cell *cell, float (*x)[INPUT_SIZE], int steps)
{
    tg_tape *tape = tg_tape_new();
    if (!tape) {
        complain("out of memory");
        return 1;
    }
    int status = 0;
    tg_tensor *h = tg_input(tape, HIDDEN_SIZE, 1, NULL);     /* h_0 = 0: hidden x 1 */
    for (int t = 1; t <= steps; t++) {
        h = tg_rnn_cell_forward(tape, cell, tg_input(tape, INPUT_SIZE, 1, x[t - 1]), h);
        if (!h) {
            complain("%s", tg_tape_error(tape));
            status = 1;
            break;
        }
        print_step(t, h);
    }
    tg_tape_free(tape);
    return status;
}

/* ---- The backward run: BPTT read off the tape --------------------------------------------- */

/* The tape tensors of the unrolled cell: h[0] = h_0 = 0, then a[t] and h[t] for t = 1..T. */
typedef struct unrolled {
    int steps;
    tg_tensor *a[MAX_STEPS + 1], *h[MAX_STEPS + 1];   /* hidden x 1 each */
    tg_tensor *loss;                                  /* 1 x 1 */
} unrolled;

/* One step from the same ops in the same order as tg_rnn_cell_forward (src/rnn.c), keeping
 * the pre-activation: *a = W_h h_prev + (W_x x + b); returns h_t = tanh(*a). */
static tg_tensor *step_keeping_a(tg_tape *tape, const tg_rnn_cell *cell, tg_tensor *x,
                                 tg_tensor *h_prev, tg_tensor **a)
{
    tg_tensor *from_input = tg_matmul_add(tape, cell->W_x, x, cell->b);   /* W_x x_t + b */
    *a = tg_matmul_add(tape, cell->W_h, h_prev, from_input);              /* a_t */
    return tg_tanh(tape, *a);
}

/* Records the T steps and the loss mse(h_T, y) on tape; false with the tape's error set. */
static bool record(tg_tape *tape, const tg_rnn_cell *cell, float (*x)[INPUT_SIZE], unrolled *u)
{
    u->h[0] = tg_constant(tape, HIDDEN_SIZE, 1, NULL);
    for (int t = 1; t <= u->steps; t++)
        u->h[t] = step_keeping_a(tape, cell, tg_constant(tape, INPUT_SIZE, 1, x[t - 1]),
                                 u->h[t - 1], &u->a[t]);
    u->loss = tg_mse(tape, u->h[u->steps], tg_constant(tape, HIDDEN_SIZE, 1, TARGET));
    return u->loss != NULL;
}

/* True when tg_rnn_cell_forward, on a tape of its own, gives every h_t of u bit for bit. */
static bool same_as_cell_forward(tg_rnn_cell *cell, float (*x)[INPUT_SIZE], const unrolled *u)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *h = tape ? tg_constant(tape, HIDDEN_SIZE, 1, NULL) : NULL;
    bool same = h != NULL;
    for (int t = 1; same && t <= u->steps; t++) {
        h = tg_rnn_cell_forward(tape, cell, tg_constant(tape, INPUT_SIZE, 1, x[t - 1]), h);
        same = h && memcmp(h->data, u->h[t]->data, HIDDEN_SIZE * sizeof(float)) == 0;
    }
    tg_tape_free(tape);
    return same;
}

/* The loss mse(h_T, y) computed again in double, from W_h (row-major, in double) and the cell's
 * other weights: the reference for the finite differences. */
static double loss_in_double(const tg_rnn_cell *cell, const double *W_h, float (*x)[INPUT_SIZE],
                             int steps)
{
    double h[HIDDEN_SIZE] = { 0 }, next[HIDDEN_SIZE];
    for (int t = 1; t <= steps; t++) {
        for (int i = 0; i < HIDDEN_SIZE; i++) {
            double a = cell->b->data[i];
            for (int k = 0; k < INPUT_SIZE; k++)
                a += (double)cell->W_x->data[i * INPUT_SIZE + k] * x[t - 1][k];
            for (int j = 0; j < HIDDEN_SIZE; j++)
                a += W_h[i * HIDDEN_SIZE + j] * h[j];
            next[i] = tanh(a);
        }
        memcpy(h, next, sizeof h);
    }
    double sum = 0.0;
    for (int i = 0; i < HIDDEN_SIZE; i++)
        sum += (h[i] - TARGET[i]) * (h[i] - TARGET[i]);
    return sum / HIDDEN_SIZE;
}

/* numeric[k] = (L(W_h + step e_k) - L(W_h - step e_k)) / (2 step) for every element k. */
static void finite_differences(const tg_rnn_cell *cell, float (*x)[INPUT_SIZE], int steps,
                               double *numeric)
{
    enum { N = HIDDEN_SIZE * HIDDEN_SIZE };
    double W_h[N];
    for (int k = 0; k < N; k++)
        W_h[k] = cell->W_h->data[k];
    for (int k = 0; k < N; k++) {
        double saved = W_h[k];
        W_h[k] = saved + FD_STEP;
        double plus = loss_in_double(cell, W_h, x, steps);
        W_h[k] = saved - FD_STEP;
        double minus = loss_in_double(cell, W_h, x, steps);
        W_h[k] = saved;
        numeric[k] = (plus - minus) / (2.0 * FD_STEP);
    }
}

/* The singular values of the 2 x 2 matrix m (row-major), largest first, in closed form:
 * with p = |(m00 + m11, m10 - m01)| and q = |(m00 - m11, m10 + m01)|, they are (p + q) / 2
 * and |p - q| / 2. */
static void singular_values_2x2(const double *m, double *sigma)
{
    double p = hypot(m[0] + m[3], m[2] - m[1]);
    double q = hypot(m[0] - m[3], m[2] + m[1]);
    sigma[0] = 0.5 * (p + q);
    sigma[1] = 0.5 * fabs(p - q);
}

_Static_assert(HIDDEN_SIZE == 2, "the Jacobians' singular values are in closed form for 2 x 2");

/* J_t = diag(1 - h_t^2) W_h (row-major, in double). */
static void jacobian(const tg_tensor *h_t, const tg_tensor *W_h, double *J)
{
    for (int i = 0; i < HIDDEN_SIZE; i++) {
        double slope = 1.0 - (double)h_t->data[i] * h_t->data[i];
        for (int j = 0; j < HIDDEN_SIZE; j++)
            J[i * HIDDEN_SIZE + j] = slope * W_h->data[i * HIDDEN_SIZE + j];
    }
}

/* The largest |a[k] - b[k]| over n values, relative to the largest |b[k]| (at least 1e-3). */
static double relative_difference(const double *a, const double *b, int n)
{
    double worst = 0.0, scale = 1e-3;
    for (int k = 0; k < n; k++) {
        worst = fmax(worst, fabs(a[k] - b[k]));
        scale = fmax(scale, fabs(b[k]));
    }
    return worst / scale;
}

/* 5 significant digits, in a column 11 wide; -0 (a share from h_0 = 0) printed as 0 */
static void print_number(double v) { printf(" %#11.5g", v + 0.0); }

static void print_matrix(const char *name, const float *m)
{
    for (int i = 0; i < HIDDEN_SIZE; i++) {
        printf("%-6s", i == 0 ? name : "");
        for (int j = 0; j < HIDDEN_SIZE; j++)
            print_number(m[i * HIDDEN_SIZE + j]);
        printf("\n");
    }
}

static void print_header(const tg_rnn_cell *cell, const unrolled *u, unsigned long long seed)
{
    double W_h[HIDDEN_SIZE * HIDDEN_SIZE], sigma[2];
    for (int k = 0; k < HIDDEN_SIZE * HIDDEN_SIZE; k++)
        W_h[k] = cell->W_h->data[k];
    singular_values_2x2(W_h, sigma);
    printf("BPTT of the seed cell (3 inputs, 2 hidden units, W_h and W_x from N(0, 1), b = 0,\n"
           "seed %llu) over T = %d steps from h_0 = 0, on L = mse(h_%d, y) = (1/2) ||h_%d - y||^2\n"
           "with y = [%g, %g]: L = %.6g\n\n", seed, u->steps, u->steps, u->steps,
           (double)TARGET[0], (double)TARGET[1], (double)u->loss->data[0]);
    print_matrix("W_h", cell->W_h->data);
    printf("      singular values of W_h: %.5g, %.5g\n\n", sigma[0], sigma[1]);
}

/* Rows t = T..1, two lines each (hidden unit 1, then 2): a_t, h_t, dL/dh_t, dL/da_t. */
static void print_going_back(const unrolled *u)
{
    printf("Going back from the loss: the grads that tg_backward left on the tape\n");
    printf("%3s %11s %11s %11s %11s\n", "t", "a_t", "h_t", "dL/dh_t", "dL/da_t");
    for (int t = u->steps; t >= 1; t--)
        for (int i = 0; i < HIDDEN_SIZE; i++) {
            if (i == 0)
                printf("%3d", t);
            else
                printf("%3s", "");
            print_number(u->a[t]->data[i]);
            print_number(u->h[t]->data[i]);
            print_number(u->h[t]->grad[i]);
            print_number(u->a[t]->grad[i]);
            printf("\n");
        }
    printf("\n");
}

/* Rows t = T..1: step t's share dL/da_t h_{t-1}^T of dL/dW_h, J_t and its singular values.
 * Adds the shares up into sum (row-major, in double). */
static void print_shares_and_jacobians(const tg_rnn_cell *cell, const unrolled *u, double *sum)
{
    printf("Each step's share of dL/dW_h, and the step's Jacobian\n");
    printf("%3s %23s %23s %23s\n", "t", "dL/da_t h_{t-1}^T", "J_t = dh_t/dh_{t-1}",
           "sigma_max   sigma_min");
    for (int k = 0; k < HIDDEN_SIZE * HIDDEN_SIZE; k++)
        sum[k] = 0.0;
    for (int t = u->steps; t >= 1; t--) {
        double J[HIDDEN_SIZE * HIDDEN_SIZE], sigma[2];
        jacobian(u->h[t], cell->W_h, J);
        singular_values_2x2(J, sigma);
        for (int i = 0; i < HIDDEN_SIZE; i++) {
            if (i == 0)
                printf("%3d", t);
            else
                printf("%3s", "");
            for (int j = 0; j < HIDDEN_SIZE; j++) {
                double share = (double)u->a[t]->grad[i] * u->h[t - 1]->data[j];
                sum[i * HIDDEN_SIZE + j] += share;
                print_number(share);
            }
            for (int j = 0; j < HIDDEN_SIZE; j++)
                print_number(J[i * HIDDEN_SIZE + j]);
            if (i == 0) {
                print_number(sigma[0]);
                print_number(sigma[1]);
            }
            printf("\n");
        }
    }
    printf("\n");
}

/* dL/dW_h three ways, side by side: the sum of the shares, the tape's grad, the differences. */
static void print_three_ways(const double *sum, const tg_tensor *W_h, const double *numeric)
{
    printf("dL/dW_h three ways\n");
    printf("%-3s %23s %23s %23s\n", "", "sum of the shares", "W_h's grad (tape)",
           "finite differences");
    for (int i = 0; i < HIDDEN_SIZE; i++) {
        printf("%3s", "");
        for (int j = 0; j < HIDDEN_SIZE; j++)
            print_number(sum[i * HIDDEN_SIZE + j]);
        for (int j = 0; j < HIDDEN_SIZE; j++)
            print_number(W_h->grad[i * HIDDEN_SIZE + j]);
        for (int j = 0; j < HIDDEN_SIZE; j++)
            print_number(numeric[i * HIDDEN_SIZE + j]);
        printf("\n");
    }
    printf("\n");
}

/* Prints the checks' results and returns 0 when all hold, else 1. */
static int report_checks(bool same_h, const double *sum, const tg_tensor *W_h,
                         const double *numeric, double tolerance)
{
    enum { N = HIDDEN_SIZE * HIDDEN_SIZE };
    double grad[N];
    for (int k = 0; k < N; k++)
        grad[k] = W_h->grad[k];
    double sum_error = relative_difference(sum, grad, N);
    double fd_error = relative_difference(grad, numeric, N);
    bool sum_ok = sum_error <= 1e-5, fd_ok = fd_error <= tolerance;
    printf("h_t from tg_matmul_add and tg_tanh against tg_rnn_cell_forward: %s\n",
           same_h ? "the same bit for bit" : "DIFFERENT");
    printf("sum of the shares against the grad: largest difference %.2g (relative; limit 1e-05)%s\n",
           sum_error, sum_ok ? "" : ": DO NOT ADD UP");
    printf("finite-difference check of dL/dW_h: worst relative error %.2g (tolerance %g): %s\n",
           fd_error, tolerance, fd_ok ? "passed" : "FAILED");
    return same_h && sum_ok && fd_ok ? 0 : 1;
}

/* Records the unrolled cell and the loss, runs tg_backward, prints what it left and the
 * checks; returns 0 when every check holds, else 1. */
static int run_backward(tg_rnn_cell *cell, float (*x)[INPUT_SIZE], const options *opt)
{
    tg_tape *tape = tg_tape_new();
    unrolled *u = malloc(sizeof *u);
    if (!tape || !u) {
        complain("out of memory");
        tg_tape_free(tape);
        free(u);
        return 1;
    }
    u->steps = opt->steps;
    int status = 1;
    if (!record(tape, cell, x, u) || tg_backward(tape, u->loss) != 0)
        complain("%s", tg_tape_error(tape));
    else {
        double sum[HIDDEN_SIZE * HIDDEN_SIZE], numeric[HIDDEN_SIZE * HIDDEN_SIZE];
        bool same_h = same_as_cell_forward(cell, x, u);
        finite_differences(cell, x, opt->steps, numeric);
        print_header(cell, u, opt->seed);
        print_going_back(u);
        print_shares_and_jacobians(cell, u, sum);
        print_three_ways(sum, cell->W_h, numeric);
        status = report_checks(same_h, sum, cell->W_h, numeric, opt->tolerance);
    }
    tg_tape_free(tape);
    free(u);
    return status;
}

int main(int argc, char **argv)
{
    program = "seed_cell";
    options opt = parse_args(argc, argv);
    tg_rng rng = tg_rng_new(opt.seed);
    tg_rnn_cell *cell = tg_rnn_cell_new(INPUT_SIZE, HIDDEN_SIZE, opt.seed);
    if (!cell) {
        complain("out of memory");
        return 1;
    }
    /* tg_rnn_cell_new used PyTorch's uniform init; the seed draws W_h, W_x from N(0, 1), b = 0 */
    tg_rnn_cell_init_normal(cell, 1.0f, tg_rng_next(&rng));
    static float x[MAX_STEPS][INPUT_SIZE];                   /* x_t ~ N(0, 1): input x 1 */
    for (int t = 0; t < opt.steps; t++)
        for (int i = 0; i < INPUT_SIZE; i++)
            x[t][i] = tg_rng_normal(&rng);
    int status = opt.backward ? run_backward(cell, x, &opt) : run_forward(cell, x, opt.steps);
    tg_rnn_cell_free(cell);
    return status;
}
