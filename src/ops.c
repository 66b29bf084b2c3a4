/* ops.c: every op of the tape, one section each: its backward (which adds d(loss)/d(input)
 * to each input's grad from d(loss)/d(output) in out.grad, skipping inputs whose grad is
 * NULL: constants, and results computed only from them), its op record, and its public
 * call, which checks shapes, records the node and computes the forward. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "tape.h"

static long count(const tg_tensor *t) { return (long)t->rows * t->cols; }

static bool same_shape(const tg_tensor *a, const tg_tensor *b)
{
    return a->rows == b->rows && a->cols == b->cols;
}

static tg_tensor *fail_shapes(tg_tape *tape, const char *op, const tg_tensor *a, const tg_tensor *b)
{
    return tg_fail(tape, "%s: shapes differ: %dx%d and %dx%d", op, a->rows, a->cols, b->rows, b->cols);
}

/* ---- input and constant: leaves holding a copy of the caller's data ------------------- */

static tg_tensor *leaf(tg_tape *tape, const char *call, int rows, int cols, const float *data,
                       bool with_grad)
{
    if (!tape)
        return NULL;
    if (!tg_size_ok(rows, cols))
        return tg_fail(tape, "%s: bad size %dx%d", call, rows, cols);
    tg_tensor *y = tg_record_leaf(tape, rows, cols, with_grad);
    if (!y)
        return NULL;
    if (data)
        memcpy(y->data, data, (size_t)count(y) * sizeof(float));
    else
        memset(y->data, 0, (size_t)count(y) * sizeof(float));
    return y;
}

tg_tensor *tg_input(tg_tape *tape, int rows, int cols, const float *data)
{
    return leaf(tape, "tg_input", rows, cols, data, true);
}

tg_tensor *tg_constant(tg_tape *tape, int rows, int cols, const float *data)
{
    return leaf(tape, "tg_constant", rows, cols, data, false);
}

/* ---- matmul: y = a b;  da += dy b^T,  db += a^T dy ------------------------------------
 * When a is a parameter (a weight used at every step of an unroll), a^T is made once per
 * backward pass and read row by row, rather than gathered from a's columns every step. */

/* The two products of matmul's backward, for y = a b (+ anything) at node n. */
static void matmul_grads(tg_node *n, tg_tensor *a, tg_tensor *b, const tg_tensor *y)
{
    if (a->grad)
        tg_kernel_matmul_nt(a->rows, a->cols, b->cols, y->grad, b->data, a->grad);
    if (!b->grad)
        return;
    const float *a_transposed = a->node ? NULL : tg_tape_transposed(n->tape, a);
    if (a_transposed)
        tg_kernel_matmul(b->rows, b->cols, a->rows, a_transposed, y->grad, b->grad, 1);
    else
        tg_kernel_matmul_tn(b->rows, b->cols, a->rows, a->data, y->grad, b->grad);
}

static void matmul_backward(tg_node *n) { matmul_grads(n, n->in[0], n->in[1], &n->out); }
static const tg_op MATMUL = { "tg_matmul", matmul_backward };

tg_tensor *tg_matmul(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    if (!tg_inputs_ok(tape, MATMUL.name, 2, a, b, NULL))
        return NULL;
    if (a->cols != b->rows)
        return tg_fail(tape, "tg_matmul: cannot multiply %dx%d by %dx%d", a->rows, a->cols, b->rows, b->cols);
    tg_tensor *y = tg_record(tape, &MATMUL, a, b, NULL, a->rows, b->cols);
    if (y)
        tg_kernel_matmul(a->rows, b->cols, a->cols, a->data, b->data, y->data, 0);
    return y;
}

/* ---- add: y = a + b, b the same shape or a column added to every column of a ----------
 *      da += dy;  db += dy, or the row sums of dy for a column b */

/* db += dy, or the row sums of dy when b is a column added to every column of y. */
static void add_grad(tg_tensor *b, const tg_tensor *y)
{
    if (same_shape(b, y))
        tg_kernel_axpy(count(y), 1.0f, y->grad, b->grad);
    else
        tg_kernel_add_row_sums(y->rows, y->cols, y->grad, b->grad);
}

static void add_backward(tg_node *n)
{
    tg_tensor *a = n->in[0], *b = n->in[1], *y = &n->out;
    if (a->grad)
        tg_kernel_axpy(count(y), 1.0f, y->grad, a->grad);
    if (b->grad)
        add_grad(b, y);
}
static const tg_op ADD = { "tg_add", add_backward };

TG_ELEMENTWISE
tg_tensor *tg_add(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    if (!tg_inputs_ok(tape, ADD.name, 2, a, b, NULL))
        return NULL;
    if (!same_shape(a, b) && !(b->rows == a->rows && b->cols == 1))
        return tg_fail(tape, "tg_add: cannot add %dx%d and %dx%d (b must be %dx%d or %dx1)",
                       a->rows, a->cols, b->rows, b->cols, a->rows, a->cols, a->rows);
    tg_tensor *y = tg_record(tape, &ADD, a, b, NULL, a->rows, a->cols);
    if (!y)
        return NULL;
    if (same_shape(a, b))
        for (long k = 0; k < count(y); k++)
            y->data[k] = a->data[k] + b->data[k];
    else
        for (int i = 0; i < y->rows; i++)
            for (int j = 0; j < y->cols; j++)
                y->data[(long)i * y->cols + j] = a->data[(long)i * y->cols + j] + b->data[i];
    return y;
}

/* ---- matmul_add: y = a b + c, c the product's shape or a column added to every column --
 *      da += dy b^T,  db += a^T dy (as matmul),  dc += dy or its row sums (as add's b)
 * One node where tg_add(tg_matmul(a, b), c) records two: the product is added onto a copy
 * of c, so no separate a b is written, read back and given a grad of its own. */

static void matmul_add_backward(tg_node *n)
{
    matmul_grads(n, n->in[0], n->in[1], &n->out);
    if (n->in[2]->grad)
        add_grad(n->in[2], &n->out);
}
static const tg_op MATMUL_ADD = { "tg_matmul_add", matmul_add_backward };

tg_tensor *tg_matmul_add(tg_tape *tape, tg_tensor *a, tg_tensor *b, tg_tensor *c)
{
    if (!tg_inputs_ok(tape, MATMUL_ADD.name, 3, a, b, c))
        return NULL;
    if (a->cols != b->rows)
        return tg_fail(tape, "tg_matmul_add: cannot multiply %dx%d by %dx%d", a->rows, a->cols,
                       b->rows, b->cols);
    if (c->rows != a->rows || (c->cols != b->cols && c->cols != 1))
        return tg_fail(tape, "tg_matmul_add: cannot add %dx%d to the %dx%d product (c must be "
                       "%dx%d or %dx1)", c->rows, c->cols, a->rows, b->cols, a->rows, b->cols, a->rows);
    tg_tensor *y = tg_record(tape, &MATMUL_ADD, a, b, c, a->rows, b->cols);
    if (!y)
        return NULL;
    if (same_shape(c, y))
        memcpy(y->data, c->data, (size_t)count(y) * sizeof(float));
    else
        for (int i = 0; i < y->rows; i++)
            for (int j = 0; j < y->cols; j++)
                y->data[(long)i * y->cols + j] = c->data[i];
    tg_kernel_matmul(a->rows, b->cols, a->cols, a->data, b->data, y->data, 1);
    return y;
}

/* ---- sub: y = a - b;  da += dy,  db -= dy ----------------------------------------------- */

static void sub_backward(tg_node *n)
{
    tg_tensor *a = n->in[0], *b = n->in[1], *y = &n->out;
    if (a->grad)
        tg_kernel_axpy(count(y), 1.0f, y->grad, a->grad);
    if (b->grad)
        tg_kernel_axpy(count(y), -1.0f, y->grad, b->grad);
}
static const tg_op SUB = { "tg_sub", sub_backward };

tg_tensor *tg_sub(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    if (!tg_inputs_ok(tape, SUB.name, 2, a, b, NULL))
        return NULL;
    if (!same_shape(a, b))
        return fail_shapes(tape, SUB.name, a, b);
    tg_tensor *y = tg_record(tape, &SUB, a, b, NULL, a->rows, a->cols);
    if (y)
        for (long k = 0; k < count(y); k++)
            y->data[k] = a->data[k] - b->data[k];
    return y;
}

/* ---- mul: y = a * b elementwise;  da += dy * b,  db += dy * a --------------------------- */

TG_ELEMENTWISE
static void mul_backward(tg_node *n)
{
    tg_tensor *a = n->in[0], *b = n->in[1], *y = &n->out;
    if (a->grad)
        for (long k = 0; k < count(y); k++)
            a->grad[k] += y->grad[k] * b->data[k];
    if (b->grad)
        for (long k = 0; k < count(y); k++)
            b->grad[k] += y->grad[k] * a->data[k];
}
static const tg_op MUL = { "tg_mul", mul_backward };

tg_tensor *tg_mul(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    if (!tg_inputs_ok(tape, MUL.name, 2, a, b, NULL))
        return NULL;
    if (!same_shape(a, b))
        return fail_shapes(tape, MUL.name, a, b);
    tg_tensor *y = tg_record(tape, &MUL, a, b, NULL, a->rows, a->cols);
    if (y)
        for (long k = 0; k < count(y); k++)
            y->data[k] = a->data[k] * b->data[k];
    return y;
}

/* ---- scale: y = s a;  da += s dy ------------------------------------------------------- */

static void scale_backward(tg_node *n)
{
    tg_kernel_axpy(count(&n->out), n->scalar, n->out.grad, n->in[0]->grad);
}
static const tg_op SCALE = { "tg_scale", scale_backward };

tg_tensor *tg_scale(tg_tape *tape, tg_tensor *a, float s)
{
    if (!tg_inputs_ok(tape, SCALE.name, 1, a, NULL, NULL))
        return NULL;
    tg_tensor *y = tg_record(tape, &SCALE, a, NULL, NULL, a->rows, a->cols);
    if (!y)
        return NULL;
    y->node->scalar = s;
    for (long k = 0; k < count(y); k++)
        y->data[k] = s * a->data[k];
    return y;
}

/* ---- tanh: y = tanh(a);  da += dy * (1 - y^2) ------------------------------------------- */

TG_ELEMENTWISE
static void tanh_backward(tg_node *n)
{
    tg_tensor *a = n->in[0], *y = &n->out;
    for (long k = 0; k < count(y); k++)
        a->grad[k] += y->grad[k] * (1.0f - y->data[k] * y->data[k]);
}
static const tg_op TANH = { "tg_tanh", tanh_backward };

tg_tensor *tg_tanh(tg_tape *tape, tg_tensor *a)
{
    if (!tg_inputs_ok(tape, TANH.name, 1, a, NULL, NULL))
        return NULL;
    tg_tensor *y = tg_record(tape, &TANH, a, NULL, NULL, a->rows, a->cols);
    if (y)
        tg_kernel_tanh(count(y), a->data, y->data);
    return y;
}

/* ---- sigmoid: y = 1 / (1 + exp(-a));  da += dy * y (1 - y) -------------------------------- */

TG_ELEMENTWISE
static void sigmoid_backward(tg_node *n)
{
    tg_tensor *a = n->in[0], *y = &n->out;
    for (long k = 0; k < count(y); k++)
        a->grad[k] += y->grad[k] * y->data[k] * (1.0f - y->data[k]);
}
static const tg_op SIGMOID = { "tg_sigmoid", sigmoid_backward };

tg_tensor *tg_sigmoid(tg_tape *tape, tg_tensor *a)
{
    if (!tg_inputs_ok(tape, SIGMOID.name, 1, a, NULL, NULL))
        return NULL;
    tg_tensor *y = tg_record(tape, &SIGMOID, a, NULL, NULL, a->rows, a->cols);
    if (y)
        tg_kernel_sigmoid(count(y), a->data, y->data);
    return y;
}

/* ---- one_minus: y = 1 - a;  da -= dy ------------------------------------------------------ */

static void one_minus_backward(tg_node *n)
{
    tg_kernel_axpy(count(&n->out), -1.0f, n->out.grad, n->in[0]->grad);
}
static const tg_op ONE_MINUS = { "tg_one_minus", one_minus_backward };

tg_tensor *tg_one_minus(tg_tape *tape, tg_tensor *a)
{
    if (!tg_inputs_ok(tape, ONE_MINUS.name, 1, a, NULL, NULL))
        return NULL;
    tg_tensor *y = tg_record(tape, &ONE_MINUS, a, NULL, NULL, a->rows, a->cols);
    if (y)
        for (long k = 0; k < count(y); k++)
            y->data[k] = 1.0f - a->data[k];
    return y;
}

/* ---- rows: y = rows first .. first + n - 1 of a;  those rows of da += dy ------------------
 * (one matmul can compute all the gates of a cell at once; this takes each gate's block) */

static void rows_backward(tg_node *n)
{
    tg_tensor *a = n->in[0], *y = &n->out;
    long offset = (long)n->first_row * a->cols;
    tg_kernel_axpy(count(y), 1.0f, y->grad, a->grad + offset);
}
static const tg_op ROWS = { "tg_rows", rows_backward };

tg_tensor *tg_rows(tg_tape *tape, tg_tensor *a, int first, int n)
{
    if (!tg_inputs_ok(tape, ROWS.name, 1, a, NULL, NULL))
        return NULL;
    if (first < 0 || n < 1 || first > a->rows - n)
        return tg_fail(tape, "tg_rows: cannot take rows %d..%d of a %dx%d tensor",
                       first, first + n - 1, a->rows, a->cols);
    tg_tensor *y = tg_record(tape, &ROWS, a, NULL, NULL, n, a->cols);
    if (!y)
        return NULL;
    y->node->first_row = first;
    memcpy(y->data, a->data + (long)first * a->cols, (size_t)count(y) * sizeof(float));
    return y;
}

/* ---- sum: y = sum of all a[k] (1 x 1);  da[k] += dy ------------------------------------- */

static void sum_backward(tg_node *n)
{
    tg_tensor *a = n->in[0];
    for (long k = 0; k < count(a); k++)
        a->grad[k] += n->out.grad[0];
}
static const tg_op SUM = { "tg_sum", sum_backward };

tg_tensor *tg_sum(tg_tape *tape, tg_tensor *a)
{
    if (!tg_inputs_ok(tape, SUM.name, 1, a, NULL, NULL))
        return NULL;
    tg_tensor *y = tg_record(tape, &SUM, a, NULL, NULL, 1, 1);
    if (y)
        y->data[0] = tg_kernel_sum(count(a), a->data);
    return y;
}

/* ---- mean: y = sum(a) / N (1 x 1, N = rows cols);  da[k] += dy / N --------------------- */

static void mean_backward(tg_node *n)
{
    tg_tensor *a = n->in[0];
    float share = n->out.grad[0] / (float)count(a);
    for (long k = 0; k < count(a); k++)
        a->grad[k] += share;
}
static const tg_op MEAN = { "tg_mean", mean_backward };

tg_tensor *tg_mean(tg_tape *tape, tg_tensor *a)
{
    if (!tg_inputs_ok(tape, MEAN.name, 1, a, NULL, NULL))
        return NULL;
    tg_tensor *y = tg_record(tape, &MEAN, a, NULL, NULL, 1, 1);
    if (y)
        y->data[0] = tg_kernel_sum(count(a), a->data) / (float)count(a);
    return y;
}

/* ---- softmax cross-entropy: for logits z (classes x batch) and a class c_j per column j,
 *      y = mean over j of -log softmax(z_j)[c_j] = mean of (logsumexp(z_j) - z_j[c_j]);
 *      dz_j += (softmax(z_j) - onehot(c_j)) dy / batch ------------------------------------- */

/* log(sum_i exp(z[i * stride])) over n values, shifted by the max so exp cannot overflow. */
static float log_sum_exp(const float *z, int n, int stride)
{
    float max = z[0];
    for (int i = 1; i < n; i++)
        max = z[i * stride] > max ? z[i * stride] : max;
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += exp((double)z[i * stride] - max);
    return max + (float)log(sum);
}

static void cross_entropy_backward(tg_node *n)
{
    tg_tensor *z = n->in[0];
    float share = n->out.grad[0] / (float)z->cols;
    for (int j = 0; j < z->cols; j++) {
        float lse = log_sum_exp(z->data + j, z->rows, z->cols);
        for (int i = 0; i < z->rows; i++) {
            float p = expf(z->data[i * z->cols + j] - lse);
            z->grad[i * z->cols + j] += share * (p - (i == n->labels[j] ? 1.0f : 0.0f));
        }
    }
}
static const tg_op CROSS_ENTROPY = { "tg_cross_entropy", cross_entropy_backward };

tg_tensor *tg_cross_entropy(tg_tape *tape, tg_tensor *logits, const int *classes)
{
    if (!tg_inputs_ok(tape, CROSS_ENTROPY.name, 1, logits, NULL, NULL))
        return NULL;
    if (!classes)
        return tg_fail(tape, "tg_cross_entropy: classes is NULL");
    for (int j = 0; j < logits->cols; j++)
        if (classes[j] < 0 || classes[j] >= logits->rows)
            return tg_fail(tape, "tg_cross_entropy: class %d of column %d is not in 0..%d",
                           classes[j], j, logits->rows - 1);
    tg_tensor *y = tg_record(tape, &CROSS_ENTROPY, logits, NULL, NULL, 1, 1);
    int *labels = y ? tg_arena_alloc(tape, (size_t)logits->cols * sizeof(int)) : NULL;
    if (!labels)
        return y ? tg_fail(tape, "tg_cross_entropy: out of memory") : NULL;
    memcpy(labels, classes, (size_t)logits->cols * sizeof(int));
    y->node->labels = labels;
    double total = 0.0;
    for (int j = 0; j < logits->cols; j++)
        total += log_sum_exp(logits->data + j, logits->rows, logits->cols) - logits->data[classes[j] * logits->cols + j];
    y->data[0] = (float)(total / logits->cols);
    return y;
}

/* ---- mse: y = sum((p - t)^2) / N (1 x 1);  dp += 2 (p - t) dy / N,  dt -= the same ---- */

TG_ELEMENTWISE
static void mse_backward(tg_node *n)
{
    tg_tensor *p = n->in[0], *t = n->in[1];
    float scale = 2.0f * n->out.grad[0] / (float)count(p);
    if (p->grad)
        for (long k = 0; k < count(p); k++)
            p->grad[k] += scale * (p->data[k] - t->data[k]);
    if (t->grad)
        for (long k = 0; k < count(p); k++)
            t->grad[k] -= scale * (p->data[k] - t->data[k]);
}
static const tg_op MSE = { "tg_mse", mse_backward };

tg_tensor *tg_mse(tg_tape *tape, tg_tensor *pred, tg_tensor *target)
{
    if (!tg_inputs_ok(tape, MSE.name, 2, pred, target, NULL))
        return NULL;
    if (!same_shape(pred, target))
        return fail_shapes(tape, MSE.name, pred, target);
    tg_tensor *y = tg_record(tape, &MSE, pred, target, NULL, 1, 1);
    if (!y)
        return NULL;
    y->data[0] = (float)(tg_kernel_sum_squared_difference(count(pred), pred->data, target->data) /
                         (double)count(pred));
    return y;
}
