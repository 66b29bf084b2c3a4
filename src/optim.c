/* optim.c: what a training step does with the gradients, in the order a reader meets it:
 * zeroing them, plain SGD (the stateless update), their norms and clipping (by the total
 * norm or value by value), and tg_optimizer, which keeps state between steps for SGD,
 * momentum, Adagrad and Adam with torch.optim's rules. */
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "optim.h"

static long count(const tg_tensor *t) { return (long)t->rows * t->cols; }

/* Where a value sits: params[param]->data[value] (and its grad). */
typedef struct spot {
    int param;
    long value;
} spot;

/* Checks that params holds n tensors (n >= 0), none NULL and each with a grad (a tg_constant
 * has none). Returns 0, or -1 with err naming call and the first problem. */
static int check_params(const char *call, tg_tensor *const *params, int n, tg_error *err)
{
    if (!params)
        return tg_error_set(err, call, "params is NULL");
    if (n < 0)
        return tg_error_set(err, call, "n is %d; it must be >= 0", n);
    for (int i = 0; i < n; i++) {
        if (!params[i])
            return tg_error_set(err, call, "params[%d] is NULL", i);
        if (!params[i]->grad)
            return tg_error_set(err, call, "params[%d] has no grad (a tg_constant has no grad)", i);
    }
    return 0;
}

/* "NaN", "+Inf" or "-Inf": how a message names a value that is not finite. */
static const char *not_finite(float x) { return isnan(x) ? "NaN" : x > 0 ? "+Inf" : "-Inf"; }

/* err = "call: the gradient of params[i] is NaN at value k; nothing changed". */
static int refuse_gradient(tg_error *err, const char *call, spot at, float g)
{
    return tg_error_set(err, call, "the gradient of params[%d] is %s at value %ld; nothing changed",
                        at.param, not_finite(g), at.value);
}

/* err = "call: the update of params[i] at value k (weight w, gradient g) would make <what> +Inf;
 * nothing changed" (what: the weight or its state); refuse_gradient's if g is not finite. */
static int refuse_update(tg_error *err, const char *call, tg_tensor *const *params, spot at,
                         const char *what, float value)
{
    float w = params[at.param]->data[at.value], g = params[at.param]->grad[at.value];
    if (!isfinite(g))
        return refuse_gradient(err, call, at, g);
    return tg_error_set(err, call, "the update of params[%d] at value %ld (weight %g, gradient %g) "
                        "would make %s %s; nothing changed", at.param, at.value, w, g, what,
                        not_finite(value));
}

int tg_zero_grad(tg_tensor *const *params, int n, tg_error *err)
{
    if (check_params("tg_zero_grad", params, n, err) != 0)
        return -1;
    for (int i = 0; i < n; i++)
        memset(params[i]->grad, 0, (size_t)count(params[i]) * sizeof(float));
    tg_error_clear(err);
    return 0;
}

/* p - lr g, in double and rounded once to float, as tg_optimizer's TG_SGD does it. */
static float sgd_update(float p, float lr, float g) { return (float)(p - (double)lr * g); }

int tg_sgd_step(tg_tensor *const *params, int n, float lr, tg_error *err)
{
    const char *call = "tg_sgd_step";
    if (check_params(call, params, n, err) != 0)
        return -1;
    if (!isfinite(lr))
        return tg_error_set(err, call, "lr is %g; it must be finite; nothing changed", lr);
    for (int i = 0; i < n; i++)   /* every new weight is checked before any is written */
        for (long k = 0; k < count(params[i]); k++) {
            float p = sgd_update(params[i]->data[k], lr, params[i]->grad[k]);
            if (!isfinite(p))
                return refuse_update(err, call, params, (spot){ i, k }, "the weight", p);
        }
    for (int i = 0; i < n; i++)
        for (long k = 0; k < count(params[i]); k++)
            params[i]->data[k] = sgd_update(params[i]->data[k], lr, params[i]->grad[k]);
    tg_error_clear(err);
    return 0;
}

/* ---- clipping ---------------------------------------------------------------------------- */

static double sum_of_squares(const tg_tensor *t)
{
    double sum = 0.0;
    for (long k = 0; k < count(t); k++)
        sum += (double)t->grad[k] * t->grad[k];
    return sum;
}

float tg_grad_norm(const tg_tensor *t)
{
    return t && t->grad ? (float)sqrt(sum_of_squares(t)) : 0.0f;
}

float tg_clip_grad_norm(tg_tensor *const *params, int n, float max_norm)
{
    if (check_params("tg_clip_grad_norm", params, n, NULL) != 0 || !(max_norm > 0.0f))
        return -1.0f;
    double total = 0.0;   /* finite for any finite grads: each square is below 1.2e77 */
    for (int i = 0; i < n; i++)
        total += sum_of_squares(params[i]);
    double norm = sqrt(total);
    if (!isfinite(norm))
        return NAN;   /* a gradient is NaN or infinite: the grads stay as they are */
    if (norm > max_norm) {
        double shrink = max_norm / norm;
        for (int i = 0; i < n; i++)
            for (long k = 0; k < count(params[i]); k++)
                params[i]->grad[k] = (float)(params[i]->grad[k] * shrink);
    }
    return (float)norm;
}

long tg_clip_grad_value(tg_tensor *const *params, int n, float limit, tg_error *err)
{
    const char *call = "tg_clip_grad_value";
    if (check_params(call, params, n, err) != 0)
        return -1;
    if (!(limit > 0.0f))
        return tg_error_set(err, call, "limit is %g; it must be > 0", limit);
    long clipped = 0;
    for (int i = 0; i < n; i++)
        for (long k = 0; k < count(params[i]); k++) {
            float *g = &params[i]->grad[k];
            if (*g > limit || *g < -limit) {
                *g = *g > limit ? limit : -limit;
                clipped++;
            }
        }
    tg_error_clear(err);
    return clipped;
}

/* ---- tg_optimizer: SGD, momentum, Adagrad and Adam ------------------------------------------ */

/* State values per parameter value. */
static int state_per_value(tg_optimizer_kind kind)
{
    return kind == TG_ADAM ? 2 : kind == TG_SGD ? 0 : 1;
}

static const char *kind_name(tg_optimizer_kind kind)
{
    switch (kind) {
    case TG_SGD: return "TG_SGD";
    case TG_MOMENTUM: return "TG_MOMENTUM";
    case TG_ADAGRAD: return "TG_ADAGRAD";
    case TG_ADAM: return "TG_ADAM";
    }
    return NULL;   /* not a kind */
}

static bool finite_nonnegative(float x) { return isfinite(x) && x >= 0.0f; }

static bool valid_beta(float beta) { return beta >= 0.0f && beta < 1.0f; }   /* false for NaN */

/* Checks tg_optimizer_new's arguments and sets *total to the number of parameter values.
 * Returns 0, or -1 with err naming the first problem. */
static int check_new(tg_optimizer_kind kind, tg_tensor *const *params, int n, float lr,
                     long *total, tg_error *err)
{
    const char *call = "tg_optimizer_new";
    if (!kind_name(kind))
        return tg_error_set(err, call, "unknown kind %d", (int)kind);
    if (!params)
        return tg_error_set(err, call, "params is NULL");
    if (n < 1)
        return tg_error_set(err, call, "n is %d; it needs at least one parameter", n);
    if (!finite_nonnegative(lr))
        return tg_error_set(err, call, "lr is %g; it must be finite and >= 0", lr);
    *total = 0;
    for (int i = 0; i < n; i++) {
        if (!params[i])
            return tg_error_set(err, call, "params[%d] is NULL", i);
        if (!params[i]->data || !params[i]->grad)
            return tg_error_set(err, call, "params[%d] has no %s (a tg_constant has no grad)", i,
                                params[i]->data ? "grad" : "data");
        for (int j = 0; j < i; j++)
            if (params[j] == params[i])   /* it would be updated twice per step */
                return tg_error_set(err, call, "params[%d] is params[%d] again", i, j);
        if (count(params[i]) > LONG_MAX - *total ||
            (unsigned long)(*total + count(params[i])) > SIZE_MAX / sizeof(float) / 2)
            return tg_error_set(err, call, "too many values for the state, at params[%d]", i);
        *total += count(params[i]);
    }
    return 0;
}

tg_optimizer *tg_optimizer_new(tg_optimizer_kind kind, tg_tensor *const *params, int n, float lr,
                               tg_error *err)
{
    long total = 0;
    if (check_new(kind, params, n, lr, &total, err) != 0)
        return NULL;
    int per_value = state_per_value(kind);
    tg_optimizer *opt = calloc(1, sizeof *opt);
    struct tg_optimizer_state *state =
        calloc(1, sizeof *state + (size_t)n * sizeof state->params[0]);
    float *buffer = per_value > 0 ? calloc((size_t)total * (size_t)per_value, sizeof(float)) : NULL;
    if (!opt || !state || (per_value > 0 && !buffer)) {
        free(opt);
        free(state);
        free(buffer);
        tg_error_set(err, "tg_optimizer_new", "out of memory for the state of %ld values", total);
        return NULL;
    }
    state->kind = kind;
    state->total = total;
    state->first = buffer;
    state->second = per_value == 2 ? buffer + total : NULL;
    state->n = n;
    for (int i = 0; i < n; i++)
        state->params[i] = params[i];

    opt->kind = kind;
    opt->lr = lr;
    opt->momentum = 0.9f;
    opt->beta1 = 0.9f;
    opt->beta2 = 0.999f;
    opt->eps = kind == TG_ADAGRAD ? 1e-10f : 1e-8f;
    opt->steps = 0;
    opt->state = state;
    tg_error_clear(err);
    return opt;
}

void tg_optimizer_free(tg_optimizer *opt)
{
    if (!opt)
        return;
    if (opt->state)
        free(opt->state->first);   /* the one buffer; second points into it */
    free(opt->state);
    free(opt);
}

static const char *const STEP = "tg_optimizer_step";

/* err = "tg_optimizer_step: <name> is <value>; it must be <rule>; nothing changed". */
static int bad_setting(tg_error *err, const char *name, float value, const char *rule)
{
    return tg_error_set(err, STEP, "%s is %g; it must be %s; nothing changed", name, value, rule);
}

/* Checks every setting the optimizer's kind uses, and that the kind is still the one its
 * state was made for. Returns 0, or -1 with err naming the first problem. */
static int check_settings(const tg_optimizer *opt, tg_error *err)
{
    const char *made = kind_name(opt->state->kind), *now = kind_name(opt->kind);
    if (opt->kind != opt->state->kind)
        return now ? tg_error_set(err, STEP, "kind changed from %s to %s after tg_optimizer_new; "
                                  "nothing changed", made, now)
                   : tg_error_set(err, STEP, "kind changed from %s to %d, not a kind; nothing "
                                  "changed", made, (int)opt->kind);
    if (opt->steps < 0 || opt->steps == LONG_MAX)
        return tg_error_set(err, STEP, "steps is %ld; it must be in 0..LONG_MAX-1; nothing "
                            "changed", opt->steps);
    if (!finite_nonnegative(opt->lr))
        return bad_setting(err, "lr", opt->lr, "finite and >= 0");
    if (opt->kind == TG_MOMENTUM && !finite_nonnegative(opt->momentum))
        return bad_setting(err, "momentum", opt->momentum, "finite and >= 0");
    if (opt->kind == TG_ADAM && !valid_beta(opt->beta1))
        return bad_setting(err, "beta1", opt->beta1, "in [0, 1)");
    if (opt->kind == TG_ADAM && !valid_beta(opt->beta2))
        return bad_setting(err, "beta2", opt->beta2, "in [0, 1)");
    if ((opt->kind == TG_ADAGRAD || opt->kind == TG_ADAM) && !finite_nonnegative(opt->eps))
        return bad_setting(err, "eps", opt->eps, "finite and >= 0");
    return 0;
}

/* One step's settings, in double. */
typedef struct rule {
    tg_optimizer_kind kind;
    double lr, momentum, beta1, beta2, eps;
    bool first_step;      /* momentum: v starts as g */
    double step_size;     /* Adam: lr / (1 - beta1^t) */
    double bias2_sqrt;    /* Adam: sqrt(1 - beta2^t) */
} rule;

static rule make_rule(const tg_optimizer *opt)
{
    rule r = { opt->kind, opt->lr, opt->momentum, opt->beta1, opt->beta2, opt->eps,
               opt->steps == 0, 0.0, 0.0 };
    if (r.kind == TG_ADAM) {
        double t = (double)(opt->steps + 1);
        r.step_size = r.lr / (1.0 - pow(r.beta1, t));
        r.bias2_sqrt = sqrt(1.0 - pow(r.beta2, t));
    }
    return r;
}

/* Updates one value p with gradient g and its state a, b (those the kind does not use are
 * left alone). Returns whether g and all the new values are finite. */
static bool update(const rule *r, float g, float *p, float *a, float *b)
{
    double delta = 0.0;   /* p -= delta */
    switch (r->kind) {
    case TG_SGD:            /* p -= lr g */
        delta = r->lr * g;
        break;
    case TG_MOMENTUM:       /* v = g on the first step, then v = momentum v + g; p -= lr v */
        *a = r->first_step ? g : (float)(r->momentum * *a + g);
        delta = r->lr * *a;
        break;
    case TG_ADAGRAD:        /* s += g^2; p -= lr g / (sqrt(s) + eps) */
        *a = (float)(*a + (double)g * g);
        delta = r->lr * g / (sqrt(*a) + r->eps);
        break;
    case TG_ADAM:           /* m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2 */
        *a = (float)(r->beta1 * *a + (1.0 - r->beta1) * g);
        *b = (float)(r->beta2 * *b + (1.0 - r->beta2) * g * g);
        /* p -= lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps), as torch.optim.Adam */
        delta = r->step_size * *a / (sqrt(*b) / r->bias2_sqrt + r->eps);
        break;
    }
    *p = (float)(*p - delta);
    return isfinite(g) && isfinite(*p) && isfinite(*a) && isfinite(*b);
}

/* A value whose update is not finite, and what the update would make of its weight and state. */
typedef struct refusal {
    spot at;
    float p, a, b;
} refusal;

/* Runs the update over every value: with write false only to see whether all of it stays
 * finite (nothing is stored; on the first value that does not, *bad says where and the
 * result is false), with write true to store it. */
static bool apply(const struct tg_optimizer_state *st, const rule *r, bool write, refusal *bad)
{
    long at = 0;   /* index of the value in the state buffers */
    for (int i = 0; i < st->n; i++) {
        tg_tensor *t = st->params[i];
        for (long k = 0; k < count(t); k++, at++) {
            float p = t->data[k];
            float a = st->first ? st->first[at] : 0.0f;
            float b = st->second ? st->second[at] : 0.0f;
            bool finite = update(r, t->grad[k], &p, &a, &b);
            if (!write) {
                if (!finite) {
                    *bad = (refusal){ { i, k }, p, a, b };
                    return false;
                }
                continue;
            }
            t->data[k] = p;
            if (st->first)
                st->first[at] = a;
            if (st->second)
                st->second[at] = b;
        }
    }
    return true;
}

/* The state a and b of each kind, named as in tapegrad.h. */
static const char *const STATE_NAMES[][2] = { [TG_MOMENTUM] = { "momentum's v" },
    [TG_ADAGRAD] = { "Adagrad's s" }, [TG_ADAM] = { "Adam's m", "Adam's v" } };

/* The refusal of a step at `bad`, naming the state the update would overflow, else the weight. */
static int refuse_step(const struct tg_optimizer_state *st, refusal bad, tg_error *err)
{
    const char *const *names = STATE_NAMES[st->kind];
    return !isfinite(bad.a) ? refuse_update(err, STEP, st->params, bad.at, names[0], bad.a)
         : !isfinite(bad.b) ? refuse_update(err, STEP, st->params, bad.at, names[1], bad.b)
                            : refuse_update(err, STEP, st->params, bad.at, "the weight", bad.p);
}

int tg_optimizer_step(tg_optimizer *opt, tg_error *err)
{
    if (!opt)
        return tg_error_set(err, STEP, "opt is NULL");
    if (!opt->state)
        return tg_error_set(err, STEP, "opt has no state (make it with tg_optimizer_new)");
    if (check_settings(opt, err) != 0)
        return -1;
    rule r = make_rule(opt);
    refusal bad;
    if (!apply(opt->state, &r, false, &bad))
        return refuse_step(opt->state, bad, err);
    apply(opt->state, &r, true, &bad);
    opt->steps++;
    tg_error_clear(err);
    return 0;
}
