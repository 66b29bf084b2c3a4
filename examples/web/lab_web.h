/* lab_web.h: the C entry points of the browser lab (examples/web/), called by the page's
 * JavaScript through WebAssembly and by print_native.c natively, so that both run the same
 * code: the gradient-ratio curve, training on the adding problem, and the seed cell's BPTT.
 * Every call checks its arguments and returns -1 with lab_message() saying why; results are
 * read from the buffers the calls below return. One curve, one training run and one seed
 * run at a time (the buffers are static). */
#ifndef TAPEGRAD_LAB_WEB_H
#define TAPEGRAD_LAB_WEB_H

/* Exported from the .wasm under the function's own name; nothing natively. */
#ifdef __wasm__
#define LAB_EXPORT(name) __attribute__((export_name(#name)))
#else
#define LAB_EXPORT(name)
#endif

/* The caps that keep a laptop responsive (and the buffers small). */
enum {
    LAB_CURVE_MAX_HIDDEN = 128,  /* curve: hidden units */
    LAB_CURVE_MAX_STEPS = 300,   /* curve: T */
    LAB_CURVE_MAX_SEEDS = 10,    /* curve: runs averaged */
    LAB_TRAIN_MAX_HIDDEN = 64,   /* training: hidden units */
    LAB_TRAIN_MAX_STEPS = 200,   /* training: T of the adding problem */
    LAB_TRAIN_MAX_BATCH = 64,    /* training: sequences per step */
    LAB_TRAIN_CHUNK = 100,       /* training: steps per lab_train_run call, at most */
    LAB_SEED_MAX_STEPS = 20,     /* the seed cell: T */
    LAB_SEED_HIDDEN = 2,         /* the seed cell: 3 inputs, 2 hidden units */
    LAB_SEED_INPUT = 3,
};

enum lab_cell { LAB_RNN, LAB_LSTM, LAB_GRU };
enum lab_init { LAB_INIT_RHO_Q, LAB_INIT_PYTORCH };      /* the RNN's W_h: rho Q, or PyTorch's */
enum lab_of { LAB_OF_H, LAB_OF_X };                      /* the curve follows dL/dh_t or dL/dx_t */
enum lab_clip { LAB_CLIP_OFF, LAB_CLIP_NORM, LAB_CLIP_VALUE };
enum lab_optimizer { LAB_SGD, LAB_MOMENTUM, LAB_ADAGRAD, LAB_ADAM };

/* The last error message ("" after a call that succeeded). */
LAB_EXPORT(lab_message) const char *lab_message(void);

/* ||dL/d(h or x)_{T-k}|| / ||dL/d(h or x)_T|| for k = 0..steps-1, as lab_gradient_norms
 * measures it: `seeds` runs (weights and inputs from seed), input size 4, inputs N(0, 1),
 * L = sum(w * h_T) with w ~ N(0, 1), averaged as the geometric mean. rho and init apply to the
 * RNN, forget_bias to the LSTM. Returns 0 (values in lab_curve_values()) or -1. */
LAB_EXPORT(lab_curve) int lab_curve(int cell, int hidden, int steps, float rho, int init,
                                    float forget_bias, int of, int seeds, int seed);
/* the curve's `steps` values; 0 where the gradient underflowed */
LAB_EXPORT(lab_curve_values) double *lab_curve_values(void);

/* A fresh training run on the adding problem: the cell, a linear readout of h_T (1 x hidden,
 * uniform in +-1/sqrt(hidden)), the MSE on batches of `batch` sequences of `steps` inputs,
 * the optimizer at lr, and clipping (off, norm at clip_at, or each value to +-clip_at).
 * Returns 0 or -1. */
LAB_EXPORT(lab_train_start) int lab_train_start(int cell, int hidden, int steps, int batch,
                                                int optimizer, float lr, int clip, float clip_at,
                                                int seed);
/* Runs up to n (1..LAB_TRAIN_CHUNK) more steps; returns how many ran, with their losses and
 * gradient norms (before clipping) in lab_train_losses() and lab_train_norms(); fewer than n
 * when the run diverged (lab_train_diverged_at() then names the step, lab_message() why), and
 * -1 on bad arguments or with no run started. */
LAB_EXPORT(lab_train_run) int lab_train_run(int n);
LAB_EXPORT(lab_train_losses) float *lab_train_losses(void);
LAB_EXPORT(lab_train_norms) float *lab_train_norms(void);
/* the 1-based step at which the run diverged, or 0 */
LAB_EXPORT(lab_train_diverged_at) int lab_train_diverged_at(void);
/* frees the run (lab_train_start frees the one before) */
LAB_EXPORT(lab_train_stop) void lab_train_stop(void);

/* The seed cell (seed_cell.c's: 3 inputs, 2 hidden, W_h and W_x from N(0, 1), b = 0) over
 * `steps` inputs, and its BPTT on L = mse(h_T, [0.5, -0.5]). Returns 0 or -1; then
 * lab_seed_values() holds, for t = 1..steps, 8 values per step: a_t (2), h_t (2), dL/dh_t (2),
 * dL/da_t (2); then W_h (4, row-major), dL/dW_h (4) and L. */
LAB_EXPORT(lab_seed) int lab_seed(int seed, int steps);
LAB_EXPORT(lab_seed_values) double *lab_seed_values(void);

#endif
