/* ops.c: every op of the tape, one section each, written with the public calls that any op of
 * a user's is written with (tg_inputs_ok, tg_record, tg_tape_fail): its backward, which adds
 * d(loss)/d(input) to each input's grad from d(loss)/d(y) in y->grad, skipping inputs whose
 * grad is NULL (constants, and results computed only from them); its tg_op record; and its
 * public call, which checks shapes, records the node and computes the forward. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "kernels.h"
#include "tapegrad.h"

static long count(const tg_tensor *t) { return (long)t->rows * t->cols; }

static bool same_shape(const tg_tensor *a, const tg_tensor *b)
{
    return a->rows == b->rows && a->cols == b->cols;
}

static tg_tensor *fail_shapes(tg_tape *tape, const tg_op *op, const tg_tensor *a, const tg_tensor *b)
{
    return tg_tape_fail(tape, "%s: shapes differ: %dx%d and %dx%d", op->name, a->rows, a->cols,
                        b->rows, b->cols);
}

/* ---- matmul: y = a b;  da += dy b^T,  db += a^T dy ------------------------------------
 * When a is a parameter (a weight used at every step of an unroll), a^T is made once per
 * backward pass (a memo) and read row by row, rather than gathered from a's columns at
 * every step. */
static const tg_op MATMUL;

/* a^T (a: a parameter), made at the first node of this backward pass that asks; NULL when
 * the tape keeps no more memos. */
static const float *transposed_param(const tg_tensor *y, const tg_tensor *a)
{
    int fresh;
    float *t = tg_backward_memo(y, &MATMUL, a, (size_t)count(a) * sizeof(float), &fresh);
    if (t && fresh)
        tg_kernel_transpose(a->rows, a->cols, a->data, t);
    return t;
}

/* The two products of matmul's backward, for y = a b (+ anything). */
static void matmul_grads(const tg_tensor *y, tg_tensor *a, tg_tensor *b)
{
    if (a->grad)
        tg_kernel_matmul_nt(a->rows, a->cols, b->cols, y->grad, b->data, a->grad);
    if (!b->grad)
        return;
    const float *a_transposed = a->node ? NULL : transposed_param(y, a);
    if (a_transposed)
        tg_kernel_matmul(b->rows, b->cols, a->rows, a_transposed, y->grad, b->grad, 1);
    else
        tg_kernel_matmul_tn(b->rows, b->cols, a->rows, a->data, y->grad, b->grad);
}

static void matmul_backward(tg_tensor *y, tg_tensor *const *in) { matmul_grads(y, in[0], in[1]); }
static const tg_op MATMUL = { "tg_matmul", 2, matmul_backward };

tg_tensor *tg_matmul(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[] = { a, b };
    if (!tg_inputs_ok(tape, &MATMUL, in))
        return NULL;
    if (a->cols != b->rows)
        return tg_tape_fail(tape, "tg_matmul: cannot multiply %dx%d by %dx%d", a->rows, a->cols,
                            b->rows, b->cols);
    tg_tensor *y = tg_record(tape, &MATMUL, in, a->rows, b->cols, NULL, 0);
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

static void add_backward(tg_tensor *y, tg_tensor *const *in)
{
    if (in[0]->grad)
        tg_kernel_axpy(count(y), 1.0f, y->grad, in[0]->grad);
    if (in[1]->grad)
        add_grad(in[1], y);
}
static const tg_op ADD = { "tg_add", 2, add_backward };

TG_ELEMENTWISE
tg_tensor *tg_add(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[] = { a, b };
    if (!tg_inputs_ok(tape, &ADD, in))
        return NULL;
    if (!same_shape(a, b) && !(b->rows == a->rows && b->cols == 1))
        return tg_tape_fail(tape, "tg_add: cannot add %dx%d and %dx%d (b must be %dx%d or %dx1)",
                            a->rows, a->cols, b->rows, b->cols, a->rows, a->cols, a->rows);
    tg_tensor *y = tg_record(tape, &ADD, in, a->rows, a->cols, NULL, 0);
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
static void matmul_add_backward(tg_tensor *y, tg_tensor *const *in)
{
    matmul_grads(y, in[0], in[1]);
    if (in[2]->grad)
        add_grad(in[2], y);
}
static const tg_op MATMUL_ADD = { "tg_matmul_add", 3, matmul_add_backward };

tg_tensor *tg_matmul_add(tg_tape *tape, tg_tensor *a, tg_tensor *b, tg_tensor *c)
{
    tg_tensor *in[] = { a, b, c };
    if (!tg_inputs_ok(tape, &MATMUL_ADD, in))
        return NULL;
    if (a->cols != b->rows)
        return tg_tape_fail(tape, "tg_matmul_add: cannot multiply %dx%d by %dx%d", a->rows,
                            a->cols, b->rows, b->cols);
    if (c->rows != a->rows || (c->cols != b->cols && c->cols != 1))
        return tg_tape_fail(tape, "tg_matmul_add: cannot add %dx%d to the %dx%d product (c must "
                            "be %dx%d or %dx1)", c->rows, c->cols, a->rows, b->cols, a->rows,
                            b->cols, a->rows);
    tg_tensor *y = tg_record(tape, &MATMUL_ADD, in, a->rows, b->cols, NULL, 0);
    if (y)
        tg_kernel_matmul_add(a->rows, b->cols, a->cols, a->data, b->data, c->data, c->cols, y->data);
    return y;
}

/* ---- sub: y = a - b;  da += dy,  db -= dy ----------------------------------------------- */
static void sub_backward(tg_tensor *y, tg_tensor *const *in)
{
    if (in[0]->grad)
        tg_kernel_axpy(count(y), 1.0f, y->grad, in[0]->grad);
    if (in[1]->grad)
        tg_kernel_axpy(count(y), -1.0f, y->grad, in[1]->grad);
}
static const tg_op SUB = { "tg_sub", 2, sub_backward };

tg_tensor *tg_sub(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[] = { a, b };
    if (!tg_inputs_ok(tape, &SUB, in))
        return NULL;
    if (!same_shape(a, b))
        return fail_shapes(tape, &SUB, a, b);
    tg_tensor *y = tg_record(tape, &SUB, in, a->rows, a->cols, NULL, 0);
    if (y)
        for (long k = 0; k < count(y); k++)
            y->data[k] = a->data[k] - b->data[k];
    return y;
}

/* ---- mul: y = a * b elementwise;  da += dy * b,  db += dy * a --------------------------- */
TG_ELEMENTWISE
static void mul_backward(tg_tensor *y, tg_tensor *const *in)
{
    tg_tensor *a = in[0], *b = in[1];
    if (a->grad)
        for (long k = 0; k < count(y); k++)
            a->grad[k] += y->grad[k] * b->data[k];
    if (b->grad)
        for (long k = 0; k < count(y); k++)
            b->grad[k] += y->grad[k] * a->data[k];
}
static const tg_op MUL = { "tg_mul", 2, mul_backward };

tg_tensor *tg_mul(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[] = { a, b };
    if (!tg_inputs_ok(tape, &MUL, in))
        return NULL;
    if (!same_shape(a, b))
        return fail_shapes(tape, &MUL, a, b);
    tg_tensor *y = tg_record(tape, &MUL, in, a->rows, a->cols, NULL, 0);
    if (y)
        for (long k = 0; k < count(y); k++)
            y->data[k] = a->data[k] * b->data[k];
    return y;
}

/* ---- scale: y = s a;  da += s dy  (s is the op's state) ---------------------------------- */
static void scale_backward(tg_tensor *y, tg_tensor *const *in)
{
    const float *s = tg_op_state(y);
    tg_kernel_axpy(count(y), *s, y->grad, in[0]->grad);
}
static const tg_op SCALE = { "tg_scale", 1, scale_backward };

tg_tensor *tg_scale(tg_tape *tape, tg_tensor *a, float s)
{
    tg_tensor *in[] = { a };
    if (!tg_inputs_ok(tape, &SCALE, in))
        return NULL;
    tg_tensor *y = tg_record(tape, &SCALE, in, a->rows, a->cols, &s, sizeof s);
    if (y)
        for (long k = 0; k < count(y); k++)
            y->data[k] = s * a->data[k];
    return y;
}

/* ---- tanh: y = tanh(a);  da += dy * (1 - y^2) ------------------------------------------- */
TG_ELEMENTWISE
static void tanh_backward(tg_tensor *y, tg_tensor *const *in)
{
    for (long k = 0; k < count(y); k++)
        in[0]->grad[k] += y->grad[k] * (1.0f - y->data[k] * y->data[k]);
}
static const tg_op TANH = { "tg_tanh", 1, tanh_backward };

tg_tensor *tg_tanh(tg_tape *tape, tg_tensor *a)
{
    tg_tensor *in[] = { a };
    if (!tg_inputs_ok(tape, &TANH, in))
        return NULL;
    tg_tensor *y = tg_record(tape, &TANH, in, a->rows, a->cols, NULL, 0);
    if (y)
        tg_kernel_tanh(count(y), a->data, y->data);
    return y;
}

/* ---- sigmoid: y = 1 / (1 + exp(-a));  da += dy * y (1 - y) -------------------------------- */
TG_ELEMENTWISE
static void sigmoid_backward(tg_tensor *y, tg_tensor *const *in)
{
    for (long k = 0; k < count(y); k++)
        in[0]->grad[k] += y->grad[k] * y->data[k] * (1.0f - y->data[k]);
}
static const tg_op SIGMOID = { "tg_sigmoid", 1, sigmoid_backward };

tg_tensor *tg_sigmoid(tg_tape *tape, tg_tensor *a)
{
    tg_tensor *in[] = { a };
    if (!tg_inputs_ok(tape, &SIGMOID, in))
        return NULL;
    tg_tensor *y = tg_record(tape, &SIGMOID, in, a->rows, a->cols, NULL, 0);
    if (y)
        tg_kernel_sigmoid(count(y), a->data, y->data);
    return y;
}

/* ---- relu: y = max(a, 0);  da += dy where a > 0 (none at the kink, as in PyTorch) -------- */
static void relu_backward(tg_tensor *y, tg_tensor *const *in)
{
    for (long k = 0; k < count(y); k++)
        in[0]->grad[k] += in[0]->data[k] > 0.0f ? y->grad[k] : 0.0f;
}
static const tg_op RELU = { "tg_relu", 1, relu_backward };

tg_tensor *tg_relu(tg_tape *tape, tg_tensor *a)
{
    tg_tensor *in[] = { a };
    if (!tg_inputs_ok(tape, &RELU, in))
        return NULL;
    tg_tensor *y = tg_record(tape, &RELU, in, a->rows, a->cols, NULL, 0);
    if (y)
        for (long k = 0; k < count(y); k++)
            y->data[k] = a->data[k] < 0.0f ? 0.0f : a->data[k];   /* NaN stays NaN, as in torch */
    return y;
}

/* ---- one_minus: y = 1 - a;  da -= dy ------------------------------------------------------ */
static void one_minus_backward(tg_tensor *y, tg_tensor *const *in)
{
    tg_kernel_axpy(count(y), -1.0f, y->grad, in[0]->grad);
}
static const tg_op ONE_MINUS = { "tg_one_minus", 1, one_minus_backward };

tg_tensor *tg_one_minus(tg_tape *tape, tg_tensor *a)
{
    tg_tensor *in[] = { a };
    if (!tg_inputs_ok(tape, &ONE_MINUS, in))
        return NULL;
    tg_tensor *y = tg_record(tape, &ONE_MINUS, in, a->rows, a->cols, NULL, 0);
    if (y)
        for (long k = 0; k < count(y); k++)
            y->data[k] = 1.0f - a->data[k];
    return y;
}

/* ---- rows: y = rows first .. first + n - 1 of a;  those rows of da += dy ------------------
 * (one matmul can compute all the gates of a cell at once; this takes each gate's block;
 * first is the op's state) */
static void rows_backward(tg_tensor *y, tg_tensor *const *in)
{
    const int *first = tg_op_state(y);
    tg_kernel_axpy(count(y), 1.0f, y->grad, in[0]->grad + (long)*first * in[0]->cols);
}
static const tg_op ROWS = { "tg_rows", 1, rows_backward };

tg_tensor *tg_rows(tg_tape *tape, tg_tensor *a, int first, int n)
{
    tg_tensor *in[] = { a };
    if (!tg_inputs_ok(tape, &ROWS, in))
        return NULL;
    if (first < 0 || n < 1 || first > a->rows - n)
        return tg_tape_fail(tape, "tg_rows: cannot take rows %d..%lld of a %dx%d tensor", first,
                            (long long)first + n - 1, a->rows, a->cols);
    tg_tensor *y = tg_record(tape, &ROWS, in, n, a->cols, &first, sizeof first);
    if (y)
        memcpy(y->data, a->data + (long)first * a->cols, (size_t)count(y) * sizeof(float));
    return y;
}

/* ---- sum: y = sum of all a[k] (1 x 1);  da[k] += dy ------------------------------------- */
static void sum_backward(tg_tensor *y, tg_tensor *const *in)
{
    for (long k = 0; k < count(in[0]); k++)
        in[0]->grad[k] += y->grad[0];
}
static const tg_op SUM = { "tg_sum", 1, sum_backward };

tg_tensor *tg_sum(tg_tape *tape, tg_tensor *a)
{
    tg_tensor *in[] = { a };
    if (!tg_inputs_ok(tape, &SUM, in))
        return NULL;
    tg_tensor *y = tg_record(tape, &SUM, in, 1, 1, NULL, 0);
    if (y)
        y->data[0] = tg_kernel_sum(count(a), a->data);
    return y;
}

/* ---- mean: y = sum(a) / N (1 x 1, N = rows cols);  da[k] += dy / N --------------------- */
static void mean_backward(tg_tensor *y, tg_tensor *const *in)
{
    float share = y->grad[0] / (float)count(in[0]);
    for (long k = 0; k < count(in[0]); k++)
        in[0]->grad[k] += share;
}
static const tg_op MEAN = { "tg_mean", 1, mean_backward };

tg_tensor *tg_mean(tg_tape *tape, tg_tensor *a)
{
    tg_tensor *in[] = { a };
    if (!tg_inputs_ok(tape, &MEAN, in))
        return NULL;
    tg_tensor *y = tg_record(tape, &MEAN, in, 1, 1, NULL, 0);
    if (y)
        y->data[0] = tg_kernel_sum(count(a), a->data) / (float)count(a);
    return y;
}

/* ---- softmax cross-entropy: for logits z (classes x batch) and a class c_j per column j,
 *      y = mean over j of -log softmax(z_j)[c_j] = mean of (logsumexp(z_j) - z_j[c_j]);
 *      dz_j += (softmax(z_j) - onehot(c_j)) dy / batch  (the classes are the op's state) --- */
/* log(sum_i exp(z[i * stride])) over n values, shifted by the max so exp cannot overflow. */
static float log_sum_exp(const float *z, int n, int stride)
{
    float max = z[0];
    for (int i = 1; i < n; i++)
        max = z[(long)i * stride] > max ? z[(long)i * stride] : max;
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += exp((double)z[(long)i * stride] - max);
    return max + (float)log(sum);
}

static void cross_entropy_backward(tg_tensor *y, tg_tensor *const *in)
{
    tg_tensor *z = in[0];
    const int *classes = tg_op_state(y);
    float share = y->grad[0] / (float)z->cols;
    for (int j = 0; j < z->cols; j++) {
        float lse = log_sum_exp(z->data + j, z->rows, z->cols);
        for (int i = 0; i < z->rows; i++) {
            long k = (long)i * z->cols + j;
            float p = expf(z->data[k] - lse);
            z->grad[k] += share * (p - (i == classes[j] ? 1.0f : 0.0f));
        }
    }
}
static const tg_op CROSS_ENTROPY = { "tg_cross_entropy", 1, cross_entropy_backward };

tg_tensor *tg_cross_entropy(tg_tape *tape, tg_tensor *logits, const int *classes)
{
    tg_tensor *in[] = { logits };
    if (!tg_inputs_ok(tape, &CROSS_ENTROPY, in))
        return NULL;
    if (!classes)
        return tg_tape_fail(tape, "tg_cross_entropy: classes is NULL");
    for (int j = 0; j < logits->cols; j++)
        if (classes[j] < 0 || classes[j] >= logits->rows)
            return tg_tape_fail(tape, "tg_cross_entropy: class %d of column %d is not in 0..%d",
                                classes[j], j, logits->rows - 1);
    tg_tensor *y = tg_record(tape, &CROSS_ENTROPY, in, 1, 1, classes,
                             (size_t)logits->cols * sizeof classes[0]);
    if (!y)
        return NULL;
    double total = 0.0;
    for (int j = 0; j < logits->cols; j++)
        total += log_sum_exp(logits->data + j, logits->rows, logits->cols) -
                 logits->data[(long)classes[j] * logits->cols + j];
    y->data[0] = (float)(total / logits->cols);
    return y;
}

/* ---- mse: y = sum((p - t)^2) / N (1 x 1);  dp += 2 (p - t) dy / N,  dt -= the same ---- */
TG_ELEMENTWISE
static void mse_backward(tg_tensor *y, tg_tensor *const *in)
{
    tg_tensor *p = in[0], *t = in[1];
    float scale = 2.0f * y->grad[0] / (float)count(p);
    if (p->grad)
        for (long k = 0; k < count(p); k++)
            p->grad[k] += scale * (p->data[k] - t->data[k]);
    if (t->grad)
        for (long k = 0; k < count(p); k++)
            t->grad[k] -= scale * (p->data[k] - t->data[k]);
}
static const tg_op MSE = { "tg_mse", 2, mse_backward };

tg_tensor *tg_mse(tg_tape *tape, tg_tensor *pred, tg_tensor *target)
{
    tg_tensor *in[] = { pred, target };
    if (!tg_inputs_ok(tape, &MSE, in))
        return NULL;
    if (!same_shape(pred, target))
        return fail_shapes(tape, &MSE, pred, target);
    tg_tensor *y = tg_record(tape, &MSE, in, 1, 1, NULL, 0);
    if (!y)
        return NULL;
    y->data[0] = (float)(tg_kernel_sum_squared_difference(count(pred), pred->data, target->data) /
                         (double)count(pred));
    return y;
}
