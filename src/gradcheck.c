/* gradcheck.c: tg_grad_check, the check that a backward is right: every derivative that
 * tg_backward computes for a user's loss, next to a central finite difference of that loss. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tape.h"

#define WHO "tg_grad_check"

static long count(const tg_tensor *t) { return (long)t->rows * t->cols; }

/* What one check works on: the loss, and the tape it is rebuilt on for every evaluation. */
typedef struct check {
    tg_loss_fn loss;
    void *ctx;
    tg_tape *tape;
    float step;
} check;

/* The loss rebuilt on the emptied tape, the tg_input number `input` (none when -1) shifted by
 * delta at `element`. -1 with err filled when the loss fails or is not 1 x 1. */
static int evaluate(check *c, int input, long element, float delta, double *value, tg_error *err)
{
    tg_tape_reset(c->tape);
    tg_tape_perturb_input(c->tape, input, element, delta);
    tg_tensor *loss = c->loss(c->tape, c->ctx);
    if (tg_tape_error(c->tape))
        return tg_error_set(err, WHO, "the loss failed: %s", tg_tape_error(c->tape));
    if (!loss || loss->rows != 1 || loss->cols != 1)
        return tg_error_set(err, WHO, "the loss function must return a 1x1 tensor");
    *value = loss->data[0];
    return 0;
}

/* Finite differences for the n values x (a parameter's data, shifted in place and restored;
 * or a copy of tg_input number `input`'s data, shifted through the tape), compared with
 * analytic[0 .. n-1]; the worst error goes to *r as tensor number `which`. */
static int compare(check *c, float *x, long n, int input, const float *analytic, int which,
                   tg_grad_check_result *r, tg_error *err)
{
    double *numeric = malloc((size_t)n * sizeof *numeric);
    if (!numeric)
        return tg_error_set(err, WHO, "out of memory");
    double scale = 1e-3;
    for (long k = 0; k < n; k++) {
        float saved = x[k], plus = saved + c->step, minus = saved - c->step;
        double loss_plus, loss_minus;
        x[k] = plus;
        int rc = evaluate(c, input, k, c->step, &loss_plus, err);
        x[k] = minus;
        rc = rc ? rc : evaluate(c, input, k, -c->step, &loss_minus, err);
        x[k] = saved;
        if (rc != 0) {
            free(numeric);
            return -1;
        }
        /* divided by the distance between the two points the forward saw, after rounding */
        numeric[k] = (loss_plus - loss_minus) / ((double)plus - (double)minus);
        scale = fmax(scale, fabs(numeric[k]));
    }
    for (long k = 0; k < n; k++, r->checked++) {
        double error = fabs(analytic[k] - numeric[k]) / scale;
        if (r->checked == 0 || error > r->worst)
            *r = (tg_grad_check_result){ error, which, k, analytic[k], numeric[k], r->checked };
    }
    free(numeric);
    return 0;
}

static int check_arguments(tg_loss_fn loss, tg_tensor *const *params, int n_params, float step,
                           tg_grad_check_result *result, tg_error *err)
{
    if (!loss || !result)
        return tg_error_set(err, WHO, "%s is NULL", loss ? "result" : "loss");
    if (n_params < 0 || (n_params > 0 && !params))
        return tg_error_set(err, WHO, "params is NULL or n_params (%d) is negative", n_params);
    for (int i = 0; i < n_params; i++)
        if (!params[i] || !params[i]->grad || params[i]->node)
            return tg_error_set(err, WHO, "params[%d] is not a parameter (tg_param_new)", i);
    if (!(step > 0.0f && step < INFINITY))
        return tg_error_set(err, WHO, "step must be positive and finite, got %g", step);
    return 0;
}

/* A copy of n tensors' grads (when data is 0) or data, one after the other; NULL when out of
 * memory. */
static float *copy_all(tg_tensor *const *t, int n, int data)
{
    size_t total = 1;
    for (int i = 0; i < n; i++)
        total += (size_t)count(t[i]);
    float *copy = malloc(total * sizeof(float)), *at = copy;
    for (int i = 0; copy && i < n; i++) {
        memcpy(at, data ? t[i]->data : t[i]->grad, (size_t)count(t[i]) * sizeof(float));
        at += count(t[i]);
    }
    return copy;
}

/* The check itself, once the analytic derivatives are in the params' grads and on the tape
 * (inputs[0 .. n_inputs-1]). The inputs' sizes, grads and data are copied first: every
 * evaluation resets the tape they are on. */
static int compare_all(check *c, tg_tensor *const *params, int n_params, tg_tensor **inputs,
                       int n_inputs, tg_grad_check_result *result, tg_error *err)
{
    float *param_grads = copy_all(params, n_params, 0);
    float *input_grads = copy_all(inputs, n_inputs, 0), *input_data = copy_all(inputs, n_inputs, 1);
    long *input_sizes = malloc((size_t)(n_inputs + 1) * sizeof *input_sizes);
    int rc = param_grads && input_grads && input_data && input_sizes
                 ? 0 : tg_error_set(err, WHO, "out of memory");
    for (int j = 0; rc == 0 && j < n_inputs; j++)
        input_sizes[j] = count(inputs[j]);
    long offset = 0;
    for (int i = 0; rc == 0 && i < n_params; offset += count(params[i]), i++)
        rc = compare(c, params[i]->data, count(params[i]), -1, param_grads + offset, i, result, err);
    offset = 0;
    for (int j = 0; rc == 0 && j < n_inputs; offset += input_sizes[j], j++)
        rc = compare(c, input_data + offset, input_sizes[j], j, input_grads + offset, n_params + j,
                     result, err);
    free(param_grads);
    free(input_grads);
    free(input_data);
    free(input_sizes);
    return rc;
}

int tg_grad_check(tg_loss_fn loss, void *ctx, tg_tensor *const *params, int n_params, float step,
                  tg_grad_check_result *result, tg_error *err)
{
    if (check_arguments(loss, params, n_params, step, result, err) != 0)
        return -1;
    *result = (tg_grad_check_result){ 0 };
    check c = { loss, ctx, tg_tape_new(), step };
    float *saved_grads = copy_all(params, n_params, 0);
    tg_tensor **inputs = NULL;
    int rc = c.tape && saved_grads ? 0 : tg_error_set(err, WHO, "out of memory");
    if (rc == 0) {
        tg_zero_grad(params, n_params, NULL);
        tg_tape_reset(c.tape);
        tg_tensor *value = loss(c.tape, ctx);
        if (tg_backward(c.tape, value) != 0)
            rc = tg_error_set(err, WHO, "the backward failed: %s", tg_tape_error(c.tape));
    }
    int n_inputs = rc == 0 ? tg_tape_inputs(c.tape, NULL, 0) : 0;
    if (rc == 0 && n_inputs > 0 && !(inputs = malloc((size_t)n_inputs * sizeof *inputs)))
        rc = tg_error_set(err, WHO, "out of memory");
    if (rc == 0) {
        tg_tape_inputs(c.tape, inputs, n_inputs);
        rc = compare_all(&c, params, n_params, inputs, n_inputs, result, err);
    }
    long at = 0;
    for (int i = 0; saved_grads && i < n_params; at += count(params[i]), i++)
        memcpy(params[i]->grad, saved_grads + at, (size_t)count(params[i]) * sizeof(float));
    if (rc == 0)
        tg_error_clear(err);
    free(inputs);
    free(saved_grads);
    tg_tape_free(c.tape);
    return rc;
}
