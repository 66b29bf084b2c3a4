/* custom_op.c: extending tapegrad from outside the library. It needs only the installed header:
 *
 *   1. adds an op, relu(a) = max(a, 0), with the public extension API (tg_inputs_ok, tg_record,
 *      a backward), exactly as the library's own ops are written;
 *   2. builds an Elman cell with ReLU from it, h_t = relu(W_h h_{t-1} + W_x x_t + b), with
 *      W_h = I at the start (the "IRNN" of Le, Jaitly & Hinton 2015);
 *   3. checks every derivative of a small model with tg_grad_check (exit status 1 if it fails);
 *   4. trains the cell and a linear readout on the adding problem (T = 10), printing the loss.
 *
 *   cc custom_op.c $(pkg-config --cflags --libs tapegrad) -o custom_op */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tapegrad.h>

/* ---- 1. the op: y = max(a, 0);  da += dy where a > 0 ------------------------------------- */

static void relu_backward(tg_tensor *y, tg_tensor *const *in)
{
    tg_tensor *a = in[0];
    for (long k = 0; k < (long)y->rows * y->cols; k++)
        if (a->data[k] > 0.0f)
            a->grad[k] += y->grad[k];
}
static const tg_op RELU = { "relu", 1, relu_backward };

/* a: any shape; returns y: a's shape, or NULL with the tape's error set. */
static tg_tensor *relu(tg_tape *tape, tg_tensor *a)
{
    tg_tensor *in[] = { a };
    if (!tg_inputs_ok(tape, &RELU, in))
        return NULL;
    tg_tensor *y = tg_record(tape, &RELU, in, a->rows, a->cols, NULL, 0);
    if (y)
        for (long k = 0; k < (long)y->rows * y->cols; k++)
            y->data[k] = a->data[k] > 0.0f ? a->data[k] : 0.0f;
    return y;
}

/* ---- 2. the cell, and a readout on its last state ----------------------------------------- */

typedef struct model {
    int input, hidden;
    tg_tensor *W_h, *W_x, *b;   /* hidden x hidden, hidden x input, hidden x 1 */
    tg_tensor *W_y, *b_y;       /* 1 x hidden, 1 x 1 */
    tg_tensor *params[5];
} model;

/* x_t: input x batch, h_prev: hidden x batch; returns h_t: hidden x batch. When closest is
 * not NULL, *closest becomes the smallest |pre-activation| seen so far (see gradient_check). */
static tg_tensor *relu_cell(tg_tape *tape, const model *m, tg_tensor *x_t, tg_tensor *h_prev,
                            float *closest)
{
    if (x_t && h_prev && (x_t->rows != m->input || h_prev->rows != m->hidden ||
                          x_t->cols != h_prev->cols))
        return tg_tape_fail(tape, "relu_cell: x_t is %dx%d and h_prev %dx%d; the cell takes %d "
                            "inputs and %d hidden units, with one batch", x_t->rows, x_t->cols,
                            h_prev->rows, h_prev->cols, m->input, m->hidden);
    tg_tensor *from_input = tg_matmul_add(tape, m->W_x, x_t, m->b);    /* W_x x_t + b */
    tg_tensor *pre = tg_matmul_add(tape, m->W_h, h_prev, from_input);   /* hidden x batch */
    for (long k = 0; closest && pre && k < (long)pre->rows * pre->cols; k++)
        *closest = fminf(*closest, fabsf(pre->data[k]));
    return relu(tape, pre);
}

static int model_init(model *m, int input, int hidden, uint64_t seed)
{
    m->input = input;
    m->hidden = hidden;
    m->params[0] = m->W_h = tg_param_new(hidden, hidden);
    m->params[1] = m->W_x = tg_param_new(hidden, input);
    m->params[2] = m->b = tg_param_new(hidden, 1);
    m->params[3] = m->W_y = tg_param_new(1, hidden);
    m->params[4] = m->b_y = tg_param_new(1, 1);
    for (int i = 0; i < 5; i++)
        if (!m->params[i])
            return -1;
    tg_rng rng = tg_rng_new(seed);
    for (int i = 0; i < hidden; i++)
        m->W_h->data[i * hidden + i] = 1.0f;                           /* W_h = I */
    return tg_init_normal(m->W_x, 0.0f, 0.1f, &rng, NULL) == 0 &&
                   tg_init_normal(m->W_y, 0.0f, 0.1f, &rng, NULL) == 0 ? 0 : -1;
}

static void model_free(model *m)
{
    for (int i = 0; i < 5; i++)
        tg_param_free(m->params[i]);
}

/* One batch of the adding problem: x holds steps inputs of 2 x batch, y the batch targets. */
typedef struct batch {
    int steps, size;
    float *x, *y;
} batch;

/* mse(W_y h_T + b_y, y) after the cell has read the batch's whole sequence from h_0 = 0. */
static tg_tensor *adding_loss(tg_tape *tape, const model *m, const batch *d)
{
    tg_tensor *h = tg_constant(tape, m->hidden, d->size, NULL);
    for (int t = 0; t < d->steps; t++)
        h = relu_cell(tape, m, tg_constant(tape, 2, d->size, d->x + (long)t * 2 * d->size), h,
                      NULL);
    tg_tensor *guess = tg_matmul_add(tape, m->W_y, h, m->b_y);          /* 1 x batch */
    return tg_mse(tape, guess, tg_constant(tape, 1, d->size, d->y));
}

/* ---- 3. the gradient check ------------------------------------------------------------------
 * On a small model of the same cell, with weights drawn from N(0, 1). ReLU has no derivative
 * at 0, and a finite difference whose two points lie on both sides of the kink measures
 * nothing, so the check runs at a point where no pre-activation is within KINK_MARGIN of 0
 * (drawing weights and batch again until it finds one). */

typedef struct check_ctx {
    const model *m;
    const batch *d;
    float closest;      /* the smallest |pre-activation| of the last forward */
} check_ctx;

/* The loss for tg_grad_check; the batch's inputs come in as tg_input, so that the check
 * covers d(loss)/d(x) too. */
static tg_tensor *check_loss(tg_tape *tape, void *ctx)
{
    check_ctx *c = ctx;
    const model *m = c->m;
    c->closest = INFINITY;
    tg_tensor *h = tg_constant(tape, m->hidden, c->d->size, NULL);
    for (int t = 0; t < c->d->steps; t++) {
        const float *x_t = c->d->x + (long)t * 2 * c->d->size;
        h = relu_cell(tape, m, tg_input(tape, 2, c->d->size, x_t), h, &c->closest);
    }
    tg_tensor *guess = tg_matmul_add(tape, m->W_y, h, m->b_y);
    return tg_mse(tape, guess, tg_constant(tape, 1, c->d->size, c->d->y));
}

#define CHECK_STEP 1e-2f
#define CHECK_TOLERANCE 2e-3
#define KINK_MARGIN 0.1f

/* Draws a check model and batch whose pre-activations all keep KINK_MARGIN from 0; -1 when
 * 100 draws found none. */
static int draw_check_point(model *m, batch *d, check_ctx *ctx, tg_rng *rng)
{
    tg_tape *tape = tg_tape_new();
    for (int draw = 0; tape && draw < 100; draw++) {
        for (int i = 0; i < 5; i++)
            tg_init_normal(m->params[i], 0.0f, 1.0f, rng, NULL);
        tg_task_adding(rng, d->steps, d->size, d->x, d->y, NULL);
        tg_tape_reset(tape);
        if (check_loss(tape, ctx) && ctx->closest > KINK_MARGIN) {
            tg_tape_free(tape);
            return 0;
        }
    }
    tg_tape_free(tape);
    return -1;
}

/* Checks every derivative of a small model; 0 when within the tolerance. */
static int gradient_check(tg_rng *rng)
{
    model m = { 0 };
    float x[4 * 2 * 3], y[3];
    batch d = { 4, 3, x, y };
    check_ctx ctx = { &m, &d, INFINITY };
    tg_grad_check_result r;
    tg_error err;
    int rc = model_init(&m, 2, 4, 0);
    if (rc == 0 && draw_check_point(&m, &d, &ctx, rng) != 0) {
        fprintf(stderr, "custom_op: found no point away from ReLU's kink to check at\n");
        rc = -1;
    }
    if (rc == 0 && tg_grad_check(check_loss, &ctx, m.params, 5, CHECK_STEP, &r, &err) != 0) {
        fprintf(stderr, "custom_op: %s\n", err.message);
        rc = -1;
    }
    if (rc == 0) {
        const char *names[] = { "W_h", "W_x", "b", "W_y", "b_y" };
        char where[64];
        if (r.tensor < 5)
            snprintf(where, sizeof where, "%s[%ld]", names[r.tensor], r.element);
        else
            snprintf(where, sizeof where, "x_%d[%ld]", r.tensor - 5, r.element);
        rc = r.worst < CHECK_TOLERANCE ? 0 : -1;
        printf("gradient check: %ld derivatives, worst relative error %.2e at %s (analytic %.6f, "
               "numeric %.6f): %s\n", r.checked, r.worst, where, r.analytic, r.numeric,
               rc == 0 ? "ok" : "FAILED");
    }
    model_free(&m);
    return rc;
}

/* ---- 4. training ----------------------------------------------------------------------------- */

#define STEPS 10
#define BATCH 32

static int train(model *m, tg_rng *rng, int iterations, float lr)
{
    float x[STEPS * 2 * BATCH], y[BATCH];
    batch d = { STEPS, BATCH, x, y };
    tg_tape *tape = tg_tape_new();
    if (!tape)
        return -1;
    printf("training on the adding problem, T = %d (predicting the mean scores 1/6 = 0.167)\n",
           STEPS);
    double recent = 0.0;
    for (int it = 1; it <= iterations; it++) {
        tg_task_adding(rng, STEPS, BATCH, x, y, NULL);
        tg_tape_reset(tape);
        tg_zero_grad(m->params, 5, NULL);
        tg_tensor *loss = adding_loss(tape, m, &d);
        if (tg_backward(tape, loss) != 0) {
            fprintf(stderr, "custom_op: %s\n", tg_tape_error(tape));
            tg_tape_free(tape);
            return -1;
        }
        if (isnan(tg_clip_grad_norm(m->params, 5, 1.0f))) {
            fprintf(stderr, "custom_op: step %d: a gradient is not finite\n", it);
            tg_tape_free(tape);
            return -1;
        }
        tg_error err;
        if (tg_sgd_step(m->params, 5, lr, &err) != 0) {
            fprintf(stderr, "custom_op: step %d: %s\n", it, err.message);
            tg_tape_free(tape);
            return -1;
        }
        recent += loss->data[0];
        if (it % 50 == 0) {
            printf("step %4d  mean loss of the last 50 batches %.4f\n", it, recent / 50);
            recent = 0.0;
        }
    }
    tg_tape_free(tape);
    return 0;
}

/* ---- the program ------------------------------------------------------------------------------ */

static int parse_int(const char *text, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value < lo || value > hi)
        return -1;
    *out = (int)value;
    return 0;
}

int main(int argc, char **argv)
{
    int iterations = 600, seed = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: custom_op [--iters N] [--seed N]\n"
                   "Adds a relu op through tapegrad's public extension API, builds an Elman cell\n"
                   "with ReLU from it, checks its gradients with tg_grad_check, and trains it on\n"
                   "the adding problem (T = %d), printing the loss every 50 steps.\n"
                   "  --iters N  training steps, 0 to 100000 (default 600)\n"
                   "  --seed N   seed for the weights and the data, 0 to 1000000 (default 1)\n"
                   "Exit status: 0, or 1 when the gradient check fails or training breaks,\n"
                   "2 on a bad command line.\n", STEPS);
            return 0;
        }
        int *target = strcmp(argv[i], "--iters") == 0 ? &iterations
                      : strcmp(argv[i], "--seed") == 0 ? &seed : NULL;
        int hi = target == &iterations ? 100000 : 1000000;
        if (!target || i + 1 == argc || parse_int(argv[++i], 0, hi, target) != 0) {
            fprintf(stderr, "custom_op: bad argument '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    model m = { 0 };
    tg_rng rng = tg_rng_new((uint64_t)seed);
    int rc = gradient_check(&rng);
    if (rc != 0)
        fprintf(stderr, "custom_op: the gradient check failed; not training\n");
    if (rc == 0 && (rc = model_init(&m, 2, 16, (uint64_t)seed)) != 0)
        fprintf(stderr, "custom_op: out of memory\n");
    if (rc == 0)
        rc = train(&m, &rng, iterations, 0.1f);
    model_free(&m);
    return rc == 0 ? 0 : 1;
}
