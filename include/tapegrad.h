/* tapegrad.h: the one public header of tapegrad, a small reverse-mode autograd engine in C
 * with the recurrent cells built from its nodes.
 *
 * Overview
 * --------
 * A tensor is a 2-D float32 matrix, row-major: element (i, j) of an r x c tensor is
 * data[i * c + j]. A batch of B column vectors of size n is an n x B tensor, so a layer is
 * W x (W is out x in, x is in x B).
 *
 * A tape records every op you call on it. Each op computes its result at once (forward)
 * and appends a node to the tape; tg_backward(tape, loss) then walks the tape from the
 * last node to the first and fills every tensor's grad with d(loss)/d(that tensor).
 * Data that no gradient is wanted for (inputs x_t, targets) can come in as tg_constant
 * instead of tg_input: its grad is NULL, and so is the grad of anything computed only
 * from constants, so backward skips that work (for an RNN, the product W_x^T dy per step);
 * tg_constant_view does the same without copying data that you keep until the next reset.
 * Because the tape is in the order the ops ran, walking it backwards is all that reverse
 * mode needs: no graph sort and no recursion, so a 10,000-step unroll is fine.
 *
 * Memory. Parameters (tg_param_new) live outside any tape and belong to you; their grads
 * accumulate (+=) over tg_backward calls until you zero them (tg_zero_grad). Everything
 * an op makes lives in the tape's arena and belongs to the tape: tg_tape_reset(tape)
 * forgets all of it at once and reuses the memory, so a training loop that resets the
 * tape each step allocates nothing once the arena has grown to fit one step. A tape
 * tensor stays valid until the next reset or free of its tape.
 *
 * Errors. Nothing here prints, aborts or exits. An op given a NULL input, a shape that
 * does not fit or a bad size returns NULL and keeps the first such message on the tape,
 * e.g. "tg_matmul: cannot multiply 3x2 by 3x2". An op given NULL returns NULL, so a whole
 * forward pass can be written without checks and tested once at the end:
 *
 *     tg_tape *tape = tg_tape_new();
 *     tg_tensor *h = tg_input(tape, hidden, batch, NULL);               // h_0 = 0
 *     for (int t = 0; t < steps; t++)
 *         h = tg_rnn_cell_forward(tape, cell, tg_constant(tape, input, batch, x[t]), h);
 *     tg_tensor *loss = tg_mse(tape, h, tg_constant(tape, hidden, batch, target));
 *     if (tg_backward(tape, loss) != 0)
 *         fprintf(stderr, "%s\n", tg_tape_error(tape));
 *
 * tg_tape_error(tape) returns the message, or NULL while all is well; tg_tape_reset clears
 * it. Calls that have no tape report through a tg_error instead (the next section).
 *
 * Extending. An op of your own is written with the same calls as the library's ops ("Ops of
 * your own" below), and tg_grad_check compares any loss's backward with finite differences.
 */
#ifndef TAPEGRAD_H
#define TAPEGRAD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Errors of calls without a tape --------------------------------------------------------
 * Calls on a tape report on the tape. Every other call that can fail takes a last argument
 * tg_error *err (NULL allowed) and returns -1, or NULL for a constructor; it then writes why
 * into err->message, naming the call or the file and the reason ("tg_optimizer_step: the
 * gradient of params[2] is NaN at value 17; nothing changed"; a path too long to fit beside
 * the whole reason is shortened in the middle), and on success clears it.
 * Four calls keep their older signatures, which outside code relies on, and report by their
 * result alone: tg_tape_new (NULL: out of memory), tg_param_new and tg_rnn_cell_new (NULL on
 * a bad size or out of memory; tg_cell_new says which) and tg_clip_grad_norm (-1). */
typedef struct tg_error { char message[256]; } tg_error;

/* ---- Tensors and the tape ------------------------------------------------------------ */

struct tg_node;

typedef struct tg_tensor {
    int rows, cols;
    float *data;          /* rows * cols values, row-major */
    float *grad;          /* same shape: d(loss)/d(this tensor) after tg_backward; NULL for a
                             tg_constant and for results computed only from constants */
    struct tg_node *node; /* private: the op that made it on a tape; NULL for a parameter */
} tg_tensor;

typedef struct tg_tape tg_tape;

tg_tape    *tg_tape_new(void);                      /* NULL if out of memory */
void        tg_tape_free(tg_tape *tape);            /* NULL is fine */
void        tg_tape_reset(tg_tape *tape);           /* forget all nodes and the error; keep the memory */
const char *tg_tape_error(const tg_tape *tape);     /* the first error since the last reset, or NULL;
                                                       a NULL tape gets a message saying so */
size_t      tg_tape_reserved_bytes(const tg_tape *tape); /* memory the arena holds from the system */
/* Inference (PyTorch's torch.no_grad()): while on is nonzero, every tensor made on the tape,
 * parameters' results included, has no grad, and no node is kept for tg_backward (which then
 * fails: the loss has no grad). Ops compute the same values. Kept over resets; off by default.
 * A forward that resets such a tape before each call allocates nothing once the arena fits
 * one call: how charlm samples. */
void        tg_tape_set_no_grad(tg_tape *tape, int on);

/* A parameter: rows x cols, data and grad zero-filled, owned by the caller. NULL on a bad size. */
tg_tensor  *tg_param_new(int rows, int cols);
void        tg_param_free(tg_tensor *p);            /* NULL is fine */

/* A leaf on the tape: rows x cols, a copy of data (row-major), or zeros when data is NULL. */
tg_tensor  *tg_input(tg_tape *tape, int rows, int cols, const float *data);
/* The same without a grad (grad is NULL): tg_backward computes no d(loss)/d(it), like
 * PyTorch's tensors without requires_grad. For data: inputs, targets, a zero h_0. */
tg_tensor  *tg_constant(tg_tape *tape, int rows, int cols, const float *data);
/* The same constant without the copy: its data is `data` itself (row-major, not NULL), which
 * must stay as it is until the tape is reset or freed, as torch.from_numpy shares an array's
 * memory. For data kept across steps (a training set): no copy per step, and a smaller tape. */
tg_tensor  *tg_constant_view(tg_tape *tape, int rows, int cols, const float *data);

/* ---- Ops: each returns a new tape tensor, or NULL with the tape's error set ----------- */

tg_tensor *tg_matmul(tg_tape *tape, tg_tensor *a, tg_tensor *b); /* y = a b; a: m x k, b: k x n, y: m x n */
tg_tensor *tg_add(tg_tape *tape, tg_tensor *a, tg_tensor *b);    /* y = a + b; b: a's shape, or rows x 1 added to every column */
/* y = a b + c in one node (a b is not stored apart); a: m x k, b: k x n, c: m x n, or m x 1
 * added to every column */
tg_tensor *tg_matmul_add(tg_tape *tape, tg_tensor *a, tg_tensor *b, tg_tensor *c);
tg_tensor *tg_sub(tg_tape *tape, tg_tensor *a, tg_tensor *b);    /* y = a - b; same shape */
tg_tensor *tg_mul(tg_tape *tape, tg_tensor *a, tg_tensor *b);    /* y = a * b elementwise; same shape */
tg_tensor *tg_scale(tg_tape *tape, tg_tensor *a, float s);       /* y = s a */
tg_tensor *tg_tanh(tg_tape *tape, tg_tensor *a);                 /* y = tanh(a); dy/da = 1 - y^2 */
tg_tensor *tg_sigmoid(tg_tape *tape, tg_tensor *a);              /* y = 1 / (1 + exp(-a)); dy/da = y (1 - y) */
tg_tensor *tg_relu(tg_tape *tape, tg_tensor *a);                 /* y = max(a, 0); dy/da = 1 where a > 0, else 0 */
tg_tensor *tg_one_minus(tg_tape *tape, tg_tensor *a);            /* y = 1 - a */
tg_tensor *tg_rows(tg_tape *tape, tg_tensor *a, int first, int n); /* n x cols: rows first .. first + n - 1 of a */
tg_tensor *tg_sum(tg_tape *tape, tg_tensor *a);                  /* 1 x 1: y = sum of all a[i][j] */
tg_tensor *tg_mean(tg_tape *tape, tg_tensor *a);                 /* 1 x 1: y = sum(a) / (rows cols) */
tg_tensor *tg_mse(tg_tape *tape, tg_tensor *pred, tg_tensor *target); /* 1 x 1: mean of (pred - target)^2; same shape */
/* 1 x 1: softmax cross-entropy, the mean over columns j of -log softmax(logits_j)[classes[j]];
 * logits: n_classes x batch, classes: batch class indices in 0..n_classes-1 (copied). */
tg_tensor *tg_cross_entropy(tg_tape *tape, tg_tensor *logits, const int *classes);

/* Fill the grad of every tensor on the tape with d(loss)/d(tensor) and add d(loss)/d(p)
 * to the grad of every parameter p the loss depends on. loss must be a 1 x 1 tensor made
 * on this tape, with a finite value, and depend on a parameter or a tg_input (a loss made
 * only from constants has no grad). Tensors with a NULL grad get none. Returns 0, or -1
 * with the tape's error set (then no parameter grad has changed).
 *
 * Calling it twice without a reset is allowed: each call recomputes the tape tensors'
 * grads from scratch (they hold the same values after both calls) and adds to the
 * parameters' grads again, so parameter grads end up doubled, as after two steps. */
int tg_backward(tg_tape *tape, tg_tensor *loss);

/* Draw the tape as a Graphviz DOT file (render it with `dot -Tsvg path -o tape.svg`): one box
 * per node, oldest first, giving its op (tg_input or tg_constant for a leaf), its shape, its
 * first 4 values and, once tg_backward has run, the first 4 of its grad; one box per
 * parameter the tape reads, drawn double-framed and filled (parameters live outside the
 * tape); one arrow from each input to the node that reads it. Tensors without a grad
 * (constants, and results computed only from them) are drawn dashed. names[0 .. n_names-1]
 * (NULL when n_names is 0) label tensors, e.g. { "W_h", cell->W_h }; tensors it does not
 * name show their op alone. It writes a file, so it reports as the file calls do, not on the
 * tape: 0, or -1 with err saying why (and no file written). */
struct tg_named;
int tg_tape_write_dot(const tg_tape *tape, const char *path, const struct tg_named *names,
                      int n_names, tg_error *err);

/* ---- Ops of your own ------------------------------------------------------------------------
 * Every op above is written with these calls, and an op of yours is written the same way
 * (docs/extending.md has a whole example). Its public function checks the inputs
 * (tg_inputs_ok) and their shapes (tg_tape_fail on a mismatch), records a node (tg_record)
 * and computes the forward into the result's data. tg_backward later calls the op's backward
 * with the result y, whose grad holds d(loss)/d(y), and the inputs; the backward adds
 * d(loss)/d(input) to the grad of each input whose grad is not NULL (a tg_constant, or a
 * result computed only from constants, has none: skip it). The backward is called only when
 * y has a grad. */

#define TG_MAX_INPUTS 4

typedef struct tg_op {
    const char *name;    /* names the op in error messages, e.g. "my_relu" */
    int n_inputs;        /* 1 .. TG_MAX_INPUTS */
    /* y: the op's result (y->grad holds d(loss)/d(y)); in: its n_inputs inputs */
    void (*backward)(tg_tensor *y, tg_tensor *const *in);
} tg_op;

/* The checks every op makes first: tape and op are valid, none of in[0 .. n_inputs-1] is
 * NULL, none was made on another tape. Otherwise records e.g. "my_relu: input 1 is NULL" (an
 * earlier error on the tape is kept instead) and returns 0. Nonzero when all is well. */
int tg_inputs_ok(tg_tape *tape, const tg_op *op, tg_tensor *const *in);
/* Records a node of op with inputs in[0 .. op->n_inputs-1] and returns its rows x cols result,
 * whose data the caller then fills (the forward). Its grad is zero-filled, or NULL when no
 * input has a grad. The state_bytes bytes at state (the op's own constants: a scale, an
 * index, class labels) are copied to the tape for the backward (tg_op_state). NULL with the
 * tape's error set when an input is bad, the size is bad or too large, or out of memory. */
tg_tensor *tg_record(tg_tape *tape, const tg_op *op, tg_tensor *const *in, int rows, int cols,
                     const void *state, size_t state_bytes);
/* The copy of the state recorded with y (an op's result), or NULL when it had none. */
const void *tg_op_state(const tg_tensor *y);
/* Keeps the first error on the tape (printf-style; start with the op's name); returns NULL,
 * so that an op can end with `return tg_tape_fail(...)`. */
tg_tensor *tg_tape_fail(tg_tape *tape, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* In a backward: `bytes` bytes of tape memory kept under (owner, key) until this tg_backward
 * returns, for what an op derives once and reads at many nodes (tg_matmul keeps the transpose
 * of each weight here, made at the first step of an unroll that needs it; owner is its tg_op,
 * key the weight). y is the result being differentiated. *fresh is set to 1 when the block is
 * new (fill it) and to 0 when an earlier node of this pass made it. NULL when out of memory
 * or when TG_MAX_MEMOS blocks are kept already: the op then does without. */
#define TG_MAX_MEMOS 16
void *tg_backward_memo(const tg_tensor *y, const void *owner, const void *key, size_t bytes,
                       int *fresh);

/* ---- Gradient check --------------------------------------------------------------------------
 * Compares what tg_backward computes with central finite differences, for every element of
 * every parameter in params[0 .. n_params-1] and of every tg_input that the loss function
 * records (tg_constant data is left out). loss(tape, ctx) must build a 1 x 1 loss on the
 * (empty) tape it is given and record the same ops each time it is called; it is called
 * once for the backward and twice per element. Each derivative is (L(x + step) - L(x - step))
 * divided by the two points' distance, in double; the forward runs in float32, so a step near
 * 1e-2 keeps rounding far below a 1e-3 error (relative to a gradient of 1). */
typedef tg_tensor *(*tg_loss_fn)(tg_tape *tape, void *ctx);

typedef struct tg_grad_check_result {
    double worst;       /* max over elements of |analytic - numeric| / scale, where scale is the
                           largest |numeric| of that tensor, at least 1e-3 */
    int tensor;         /* where: params[tensor] when tensor < n_params, else the
                           (tensor - n_params)-th tg_input the loss records, from 0 */
    long element;       /* the element there, row-major */
    double analytic, numeric; /* the two derivatives there */
    long checked;       /* how many elements were compared */
} tg_grad_check_result;

/* Fills *result (not NULL); parameters' data and grads are as before afterwards. Returns 0, or
 * -1 with err filled when the arguments are bad (step must be positive and finite), the loss
 * fails or is not 1 x 1, or out of memory. The caller compares result->worst with its own
 * tolerance (2e-3 with step 1e-2 catches a backward that is 1% wrong). */
int tg_grad_check(tg_loss_fn loss, void *ctx, tg_tensor *const *params, int n_params, float step,
                  tg_grad_check_result *result, tg_error *err);

/* ---- Random numbers and init ---------------------------------------------------------- */

/* A small deterministic generator (SplitMix64): the same seed gives the same stream on
 * every platform. */
typedef struct tg_rng { uint64_t state; } tg_rng;

tg_rng   tg_rng_new(uint64_t seed);
uint64_t tg_rng_next(tg_rng *rng);                     /* 64 uniform random bits */
float    tg_rng_uniform(tg_rng *rng);                  /* uniform in [0, 1), 24 random bits */
float    tg_rng_normal(tg_rng *rng);                   /* standard normal (Box-Muller in double) */

/* Each init returns 0, or -1 and changes nothing, with err saying why, when t or rng is NULL
 * or the numbers make no distribution. */
/* Every value uniform in [lo, hi] (both finite, lo <= hi). */
int tg_init_uniform(tg_tensor *t, float lo, float hi, tg_rng *rng, tg_error *err);
/* Every value drawn from N(mean, std^2) (both finite, std >= 0). */
int tg_init_normal(tg_tensor *t, float mean, float std, tg_rng *rng, tg_error *err);
/* t = gain Q with Q a random orthogonal matrix (Gram-Schmidt on Gaussian samples): for a
 * square t every singular value is exactly gain. A non-square t gets orthonormal rows (or
 * columns, whichever are fewer) times gain. -1 also when out of memory. */
int tg_init_orthogonal(tg_tensor *t, float gain, tg_rng *rng, tg_error *err);

/* ---- The vanilla RNN cell -------------------------------------------------------------- */

/* h_t = tanh(W_h h_{t-1} + W_x x_t + b), built from two tg_matmul_add and a tg_tanh.
 * W_h: hidden x hidden, W_x: hidden x input, b: hidden x 1, as torch.nn.RNNCell's
 * weight_hh, weight_ih and bias_ih + bias_hh. */
typedef struct tg_rnn_cell {
    int input_size, hidden_size;
    tg_tensor *W_h, *W_x, *b;
} tg_rnn_cell;

/* W_h and W_x uniform in +-1/sqrt(hidden), as PyTorch draws them; b = 0, where PyTorch draws
 * its biases from the same range. NULL on a bad size. */
tg_rnn_cell *tg_rnn_cell_new(int input_size, int hidden_size, uint64_t seed);
void         tg_rnn_cell_free(tg_rnn_cell *cell);      /* NULL is fine */
/* The seed tutorial's init: W_h and W_x drawn from N(0, std^2) (std = 1 there), b = 0. */
void         tg_rnn_cell_init_normal(tg_rnn_cell *cell, float std, uint64_t seed);
/* x_t: input x batch, h_prev: hidden x batch; returns h_t: hidden x batch. */
tg_tensor   *tg_rnn_cell_forward(tg_tape *tape, tg_rnn_cell *cell, tg_tensor *x_t, tg_tensor *h_prev);

/* ---- Gated cells: LSTM and GRU -------------------------------------------------------------
 * Built from the same nodes, with PyTorch's parameter layout so weights move 1:1 to and from
 * torch.nn.LSTMCell / torch.nn.GRUCell. Init as PyTorch: weights and the GRU's biases
 * uniform in +-1/sqrt(hidden); the LSTM's b, being bias_ih + bias_hh, is the sum of two such
 * draws (in +-2/sqrt(hidden)). Constructors return NULL, with err saying why, on a bad size
 * or out of memory. */

/* i, f, g, o = blocks of W_x x_t + W_h h_{t-1} + b (gate rows in PyTorch's order i, f, g, o)
 * c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g);  h_t = sigmoid(o) * tanh(c_t)
 * W_x: 4H x I, W_h: 4H x H, b: 4H x 1 (PyTorch's bias_ih + bias_hh). */
typedef struct tg_lstm_cell {
    int input_size, hidden_size;
    tg_tensor *W_x, *W_h, *b;
} tg_lstm_cell;

tg_lstm_cell *tg_lstm_cell_new(int input_size, int hidden_size, uint64_t seed, tg_error *err);
void          tg_lstm_cell_free(tg_lstm_cell *cell);                     /* NULL is fine */
void          tg_lstm_cell_set_forget_bias(tg_lstm_cell *cell, float value); /* the f rows of b; 1 is usual */
/* x_t: input x batch; h_prev, c_prev: hidden x batch. Sets *h_t and *c_t (hidden x batch);
 * returns 0, or -1 with the tape's error set (and *h_t = *c_t = NULL). */
int tg_lstm_cell_forward(tg_tape *tape, tg_lstm_cell *cell, tg_tensor *x_t,
                         tg_tensor *h_prev, tg_tensor *c_prev, tg_tensor **h_t, tg_tensor **c_t);

/* r, z = sigmoid of the r, z blocks of (W_x x_t + b_x) + (W_h h_{t-1} + b_h)
 * n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn));  h_t = (1 - z) * n + z * h_{t-1}
 * W_x: 3H x I, W_h: 3H x H, b_x, b_h: 3H x 1 (bias_ih, bias_hh); rows in PyTorch's order r, z, n. */
typedef struct tg_gru_cell {
    int input_size, hidden_size;
    tg_tensor *W_x, *W_h, *b_x, *b_h;
} tg_gru_cell;

tg_gru_cell *tg_gru_cell_new(int input_size, int hidden_size, uint64_t seed, tg_error *err);
void         tg_gru_cell_free(tg_gru_cell *cell);                        /* NULL is fine */
/* x_t: input x batch, h_prev: hidden x batch; returns h_t: hidden x batch. */
tg_tensor   *tg_gru_cell_forward(tg_tape *tape, tg_gru_cell *cell, tg_tensor *x_t, tg_tensor *h_prev);

/* ---- Any cell through one interface ------------------------------------------------------
 * A training loop written against tg_cell runs the RNN, LSTM and GRU cells (and a user's own
 * cell: fill in the struct with its step and free functions). */

typedef struct tg_cell_state {
    tg_tensor *h;   /* hidden x batch */
    tg_tensor *c;   /* hidden x batch: the LSTM's cell state; NULL for cells without one */
} tg_cell_state;

typedef struct tg_cell {
    const char *name;                        /* "rnn", "lstm", "gru", or a user's name */
    int input_size, hidden_size;
    int has_c;                               /* nonzero when the state carries c */
    tg_tensor **params;                      /* params[0 .. n_params-1]: every parameter, for
                                                tg_zero_grad, tg_sgd_step and the optimizers,
                                                as many as the cell has. The array belongs to
                                                whoever fills the cell in: tg_cell_new keeps it
                                                with the cell, a cell of your own points it at
                                                an array that lives as long (e.g. in impl) */
    int n_params;
    void *impl;                              /* the concrete cell */
    /* One step; returns a state whose h is NULL on error (the tape's error says why). */
    tg_cell_state (*step)(tg_tape *tape, void *impl, tg_tensor *x_t, tg_cell_state prev);
    void (*free_impl)(void *impl);
} tg_cell;

/* name: "rnn", "lstm" or "gru"; impl is then a tg_rnn_cell, tg_lstm_cell or tg_gru_cell.
 * NULL, with err saying why, on an unknown name, a bad size or out of memory. */
tg_cell      *tg_cell_new(const char *name, int input_size, int hidden_size, uint64_t seed,
                          tg_error *err);
/* Calls free_impl(impl), then free(cell): pass only cells from tg_cell_new or from malloc.
 * NULL is fine. */
void          tg_cell_free(tg_cell *cell);
/* h = 0 (and c = 0 when the cell has one), hidden x batch, on the tape. */
tg_cell_state tg_cell_zero_state(tg_tape *tape, const tg_cell *cell, int batch);
tg_cell_state tg_cell_step(tg_tape *tape, tg_cell *cell, tg_tensor *x_t, tg_cell_state prev);

/* ---- Whole-sequence modules: stacked RNN, LSTM and GRU -------------------------------------
 * PyTorch's nn.RNN, nn.LSTM and nn.GRU: num_layers cells stacked and run over a whole
 * sequence. Layer 0 reads x_t (input x batch); layer l > 0 reads layer l-1's h_t (hidden x
 * batch). Each layer is a tg_rnn_cell, tg_lstm_cell or tg_gru_cell, run by its own forward
 * (the ReLU RNN's step is the cell's two tg_matmul_add with tg_relu for tg_tanh), so a
 * module has no math of its own. Init as PyTorch's modules: every weight uniform in
 * +-1/sqrt(hidden), and bias_ih, bias_hh each uniform in the same range; the RNN's and LSTM's
 * b, which is bias_ih + bias_hh, is drawn as that sum (in +-2/sqrt(hidden)), the GRU keeps
 * both. Dropout: while training is nonzero (the default; PyTorch's module.train()), each
 * output of every layer but the last is zeroed with probability dropout and the others are
 * divided by 1 - dropout (inverted dropout, as PyTorch), a fresh mask per step drawn from
 * dropout_rng, which the constructor seeds, so a run repeats; training = 0 is eval().
 * Constructors return NULL, with err saying why, on a size < 1, num_layers < 1, dropout
 * outside [0, 1], weights over 2^30 values or out of memory. */

typedef enum tg_nonlinearity { TG_TANH, TG_RELU } tg_nonlinearity;

typedef struct tg_rnn {
    int input_size, hidden_size, num_layers;
    tg_nonlinearity nonlinearity;  /* TG_TANH or TG_RELU (nn.RNN's nonlinearity) */
    float dropout;                 /* in [0, 1]: between layers, while training */
    int training;                  /* nonzero (the default): apply dropout */
    tg_rng dropout_rng;            /* draws the dropout masks */
    tg_rnn_cell **layers;          /* num_layers cells; layer l > 0 takes hidden_size inputs */
    tg_tensor **params;            /* W_x, W_h, b of layer 0, then of layer 1, ...: for
                                      tg_zero_grad and the optimizers */
    int n_params;                  /* 3 num_layers */
} tg_rnn;

typedef struct tg_lstm {
    int input_size, hidden_size, num_layers;
    float dropout;
    int training;
    tg_rng dropout_rng;
    tg_lstm_cell **layers;
    tg_tensor **params;            /* W_x, W_h, b of each layer in turn */
    int n_params;                  /* 3 num_layers */
} tg_lstm;

typedef struct tg_gru {
    int input_size, hidden_size, num_layers;
    float dropout;
    int training;
    tg_rng dropout_rng;
    tg_gru_cell **layers;
    tg_tensor **params;            /* W_x, W_h, b_x, b_h of each layer in turn */
    int n_params;                  /* 4 num_layers */
} tg_gru;

tg_rnn  *tg_rnn_new(int input_size, int hidden_size, int num_layers, tg_nonlinearity nonlinearity,
                    float dropout, uint64_t seed, tg_error *err);
tg_lstm *tg_lstm_new(int input_size, int hidden_size, int num_layers, float dropout, uint64_t seed,
                     tg_error *err);
tg_gru  *tg_gru_new(int input_size, int hidden_size, int num_layers, float dropout, uint64_t seed,
                    tg_error *err);
void     tg_rnn_free(tg_rnn *rnn);                   /* NULL is fine */
void     tg_lstm_free(tg_lstm *lstm);                /* NULL is fine */
void     tg_gru_free(tg_gru *gru);                   /* NULL is fine */

/* Runs the module over x[0 .. steps-1] (each input x B, one B for all) from the initial states
 * h0[l] (and c0[l]), hidden x B for each layer l, or from zeros (without a grad) when h0 (c0)
 * is NULL. Sets outputs[0 .. steps-1] to the last layer's h_t (hidden x B) and, when h_n (c_n)
 * is not NULL, h_n[l] (c_n[l]) to layer l's state after the last step. Returns 0, or -1 with
 * the tape's error set and every result NULL. */
int tg_rnn_forward(tg_tape *tape, tg_rnn *rnn, tg_tensor *const *x, int steps,
                   tg_tensor *const *h0, tg_tensor **outputs, tg_tensor **h_n);
int tg_lstm_forward(tg_tape *tape, tg_lstm *lstm, tg_tensor *const *x, int steps,
                    tg_tensor *const *h0, tg_tensor *const *c0, tg_tensor **outputs,
                    tg_tensor **h_n, tg_tensor **c_n);
int tg_gru_forward(tg_tape *tape, tg_gru *gru, tg_tensor *const *x, int steps,
                   tg_tensor *const *h0, tg_tensor **outputs, tg_tensor **h_n);

/* ---- Training --------------------------------------------------------------------------- */

/* Set every grad of params[0..n-1] to 0. Returns 0, or -1 and changes nothing when params is
 * NULL or holds a NULL or a tensor without a grad (err names which). */
int tg_zero_grad(tg_tensor *const *params, int n, tg_error *err);
/* p.data -= lr * p.grad for each of params[0..n-1]: the stateless update (tg_optimizer holds
 * state for the others), worked out in double and rounded once, as TG_SGD does. Returns 0, or
 * -1 and changes no weight at all, with err saying why, when a gradient or lr is NaN or Inf
 * or a new weight would be (beyond FLT_MAX: err names the value and what it would become),
 * so one bad step cannot poison the weights; or when params is NULL or holds a NULL or a
 * tensor without a grad. */
int tg_sgd_step(tg_tensor *const *params, int n, float lr, tg_error *err);

/* ---- Threads ------------------------------------------------------------------------------ */

/* Split large matrix products, and tanh, sigmoid, axpy and row sums of long arrays, over n
 * threads (the caller's included; 1, the default, runs everything on the caller's thread).
 * Returns the number in effect: n clamped to 1..64, or fewer if the system refused a thread.
 * Call tg_set_threads(1) before exit to stop the workers. Products under 2^20 multiply-adds
 * stay on one thread, so it pays off from hidden sizes of a few hundred. Safe with several
 * calling threads, each on its own tapes and models: the pool serves one product at a time,
 * and a product that finds it busy runs on its caller's thread; results are the same bit for
 * bit either way, and for any n. It may be called from any thread, even during another
 * thread's pass: it waits for the product on the pool. Between products the workers spin a
 * while (200 us, yielding the core now and then; docs/performance.md, Threads) before they
 * sleep. */
int tg_set_threads(int n);

/* ---- Gradient instruments ------------------------------------------------------------ */

/* The L2 norm of t's grad, e.g. ||dL/dh_t|| read off the tape after tg_backward.
 * Computed in double and rounded to float: +Inf when it exceeds FLT_MAX (two values of 3e38)
 * or a value is infinite, NaN when a value is NaN; 0 for NULL or a tensor without a grad. */
float tg_grad_norm(const tg_tensor *t);

/* Norm clipping (Pascanu, Mikolov & Bengio 2013): when the L2 norm of all the gradients of
 * params[0..n-1] together exceeds max_norm, scale them so that it is exactly max_norm (norm
 * and scale in double, so finite gradients are always clipped). Returns the norm before
 * clipping, rounded to float: +Inf when it exceeds FLT_MAX (the gradients were clipped all
 * the same). max_norm = INFINITY only measures it: the norm of a whole model's gradient.
 * Returns NaN, leaving the gradients alone, when one of them is NaN or Inf: check isnan()
 * and skip the step. Returns -1 when params is NULL or holds a NULL or a tensor without a
 * grad, or when max_norm is not a positive number (then nothing changes), with no message:
 * outside code relies on this signature. */
float tg_clip_grad_norm(tg_tensor *const *params, int n, float max_norm);

/* Elementwise clipping: every gradient value outside [-limit, limit], Inf included, is set to
 * the nearer end (NaN stays NaN, so tg_sgd_step still refuses it). Returns how many values were
 * clipped, or -1 with err saying why on bad arguments as above (then nothing changes). */
long tg_clip_grad_value(tg_tensor *const *params, int n, float limit, tg_error *err);

/* ---- Toy tasks --------------------------------------------------------------------------- */

/* The adding problem in the form of Le, Jaitly & Hinton 2015 and Arjovsky, Shah & Bengio 2016
 * (after Hochreiter & Schmidhuber 1997, whose values and markers differ): a batch of
 * sequences of `steps` inputs, each 2 x batch: row 0 a value uniform in [0, 1), row 1 a
 * marker that is 1 at exactly one step in each half of the sequence and 0 elsewhere. x holds
 * steps * 2 * batch floats (step t's 2 x batch input at x + t * 2 * batch); y holds batch
 * targets, the sum of the two marked values. Predicting the mean, 1, scores an MSE of 1/6.
 * Needs steps >= 2; returns 0, or -1 (and writes nothing), with err saying why, on bad
 * arguments. */
int tg_task_adding(tg_rng *rng, int steps, int batch, float *x, float *y, tg_error *err);

/* The copy (memory) task of Hochreiter & Schmidhuber 1997 in the form of Arjovsky, Shah &
 * Bengio 2016: see `length` symbols, wait, then recall them in order. A sequence has
 * 2 * length + delay steps, each input one-hot over TG_COPY_INPUTS rows: steps 0 .. length-1
 * show symbols drawn uniformly from 0 .. TG_COPY_SYMBOLS-1; every later step shows
 * TG_COPY_BLANK except step length + delay - 1, which shows TG_COPY_DELIMITER ("recall now");
 * the last `length` steps are the recall steps, whose targets are the shown symbols in order.
 * x holds steps * TG_COPY_INPUTS * batch floats (step t's TG_COPY_INPUTS x batch input at
 * x + t * TG_COPY_INPUTS * batch); y holds length * batch class indices (the target of recall
 * step i, column b, at y[i * batch + b]). Guessing scores a cross-entropy of ln 8 per recall
 * step. Returns 0, or -1 (and writes nothing), with err saying why, on bad arguments
 * (length and delay must be >= 1). */
#define TG_COPY_SYMBOLS 8     /* symbols 0..7 to remember */
#define TG_COPY_BLANK 8       /* the input row of a blank step */
#define TG_COPY_DELIMITER 9   /* the input row of the "recall now" step */
#define TG_COPY_INPUTS 10     /* rows of a step's one-hot input */
int tg_task_copy(tg_rng *rng, int length, int delay, int batch, float *x, int *y, tg_error *err);

/* ---- Files: errors, charts and tables ----------------------------------------------------- */

/* Files are written atomically: to a new PATH.tmp.PID.N in the same directory, synced to disk
 * (fsync), then renamed over PATH, so a failed write never leaves half a file (nor its
 * temporary file). A symbolic
 * link is written through: the file it ends at is replaced the same way, and the link stays.
 * A replaced file keeps its permissions; a new one gets 0666 less the umask. */

/* How a series is drawn. TG_SERIES_LINE: a solid line (dashed too past the 8th series).
 * TG_SERIES_MARKED: the line with a marker at each point, its shape (circle, square,
 * triangle, diamond) changing from series to series, so that lines drawn on top of each
 * other can be told apart. TG_SERIES_REFERENCE: a thin dashed line without markers, for a
 * baseline or a threshold. */
typedef enum tg_series_style { TG_SERIES_LINE, TG_SERIES_MARKED, TG_SERIES_REFERENCE } tg_series_style;

/* One line of a chart: n points (x[i], y[i]). A NULL or empty label keeps the series out
 * of the legend. Text is UTF-8: the writers refuse any that is not. */
typedef struct tg_series {
    const char *label;
    const float *x, *y;
    int n;
    tg_series_style style;   /* last, so that an initialiser may leave it out: TG_SERIES_LINE */
} tg_series;

typedef struct tg_chart {
    const char *title, *x_label, *y_label;   /* NULL or "" leaves them out */
    int log_y;                   /* nonzero: logarithmic y axis (points with y <= 0 are left out) */
    const tg_series *series;
    int n_series;
} tg_chart;

/* Write the chart as a standalone SVG line chart (720 x 440 or larger to fit a long legend):
 * axes with 1-2-5 or power-of-ten ticks, one coloured line per series, a legend. NaN and
 * Inf points are left out (the line breaks there; a lone point is drawn as a dot). A title,
 * axis label or series label that is not well-formed UTF-8 is refused, naming it and the
 * byte ("series 2's label is not valid UTF-8 at byte 5"). Characters that XML 1.0 forbids are
 * replaced, not refused: control characters (below U+0020; tab, LF and CR too, which SVG
 * would show as spaces anyway) by a space, U+FFFE and U+FFFF by U+FFFD. */
int tg_chart_write_svg(const tg_chart *chart, const char *path, tg_error *err);
/* Write the chart's points as CSV with the header "series,x,y", one row per point, numbers
 * with 9 significant digits (floats read back exactly), labels quoted when needed and
 * written byte for byte; texts that are not UTF-8 are refused as by tg_chart_write_svg. */
int tg_chart_write_csv(const tg_chart *chart, const char *path, tg_error *err);

/* A grid of values drawn as coloured cells (a heatmap). values holds rows x cols floats,
 * row-major; row 0 is drawn at the bottom. The grid spans x_min..x_max across its columns
 * and y_min..y_max up its rows, which the axes' ticks label. Colours run from dark blue
 * (low) through green to yellow (high) over lo..hi, values outside it are clamped to its
 * ends; lo >= hi (e.g. both 0): the range of the finite values drawn. With log_values the
 * colour follows log10 of the value. NaN, Inf (and, on a log scale, values <= 0) are drawn
 * grey. A colour bar labelled value_label sits right of the grid. */
typedef struct tg_heatmap {
    const char *title, *x_label, *y_label, *value_label;   /* NULL or "" leaves them out */
    int rows, cols;
    const float *values;                /* rows x cols */
    float x_min, x_max, y_min, y_max;   /* the grid's extent: min < max, finite */
    int log_values;                     /* nonzero: colour by log10(value) */
    float lo, hi;                       /* the colour scale; lo >= hi: the data's range */
} tg_heatmap;

/* Write the heatmap as a standalone SVG (cells of equal colour next to each other in a row
 * are merged into one rectangle), with the texts handled as by tg_chart_write_svg. Returns 0;
 * -1 with err saying why on a NULL map or path, rows or cols below 1 or a grid of more than
 * TG_HEATMAP_MAX_CELLS cells, NULL values, an extent that is not finite with min < max, a
 * colour range that is not finite (or, on a log scale, lo <= 0 with lo < hi), text that is
 * not UTF-8, or a failed write. */
#define TG_HEATMAP_MAX_CELLS 1000000
int tg_heatmap_write_svg(const tg_heatmap *map, const char *path, tg_error *err);

/* Write text[0..n-1] (any bytes: a table of your own) to path in one piece, as the charts and
 * checkpoints are written. Returns 0; -1 with err saying why ("path: cannot write: No space
 * left on device"), and path as it was. */
int tg_write_text_file(const char *path, const char *text, size_t n, tg_error *err);

/* ---- Optimizers ---------------------------------------------------------------------------
 * One interface over SGD, SGD with momentum, Adagrad and Adam, with PyTorch's update rules
 * (torch.optim.SGD, Adagrad, Adam; Adam bias-corrected). The state (velocities, moment
 * estimates) is allocated once by tg_optimizer_new, so a step allocates nothing. */

typedef enum tg_optimizer_kind { TG_SGD, TG_MOMENTUM, TG_ADAGRAD, TG_ADAM } tg_optimizer_kind;

typedef struct tg_optimizer {
    tg_optimizer_kind kind;
    float lr;          /* all */
    float momentum;    /* TG_MOMENTUM: v = momentum v + g; p -= lr v (default 0.9) */
    float beta1, beta2; /* TG_ADAM: moment decay rates (defaults 0.9, 0.999); m = b1 m + (1-b1) g,
                          v = b2 v + (1-b2) g^2, p -= lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps) */
    float eps;         /* TG_ADAGRAD: s += g^2, p -= lr g / (sqrt(s) + eps) (default 1e-10);
                          TG_ADAM (default 1e-8) */
    long steps;        /* steps taken so far (Adam's bias correction uses it) */
    struct tg_optimizer_state *state; /* private */
} tg_optimizer;

/* An optimizer over params[0..n-1] (the array is copied; the tensors must outlive it), with
 * the defaults above. The settings may change between steps (a learning-rate schedule);
 * kind may not. Zero the grads with tg_zero_grad on the same array. NULL, with err saying
 * why, on NULL params, n < 1, a NULL, grad-less or repeated tensor in them ("params[2] is
 * params[0] again"), an unknown kind, a non-finite or negative lr, or out of memory. */
tg_optimizer *tg_optimizer_new(tg_optimizer_kind kind, tg_tensor *const *params, int n, float lr,
                               tg_error *err);
void          tg_optimizer_free(tg_optimizer *opt);          /* NULL is fine */
/* One update from the current grads. Returns 0, or -1 and changes nothing (weights and
 * state alike), with err saying why, when a gradient is NaN or Inf, an update would make a
 * weight or the state NaN or Inf (err names the value and what it would make, e.g. "Adam's v
 * +Inf"), or a setting its kind uses is invalid (lr, momentum, eps must be finite and
 * >= 0, betas in [0, 1), kind unchanged, steps >= 0). */
int           tg_optimizer_step(tg_optimizer *opt, tg_error *err);
/* The state kept for params[param] (to save and restore a run: see tg_checkpoint_add_optimizer):
 * *out is set to a tensor of that parameter's shape whose data is the optimizer's own buffer
 * (read and write it; grad and node NULL). which: 0 is momentum's v, Adagrad's s or Adam's m;
 * 1 is Adam's v. -1 with err when opt or out is NULL, param is out of range, or the kind keeps
 * no such buffer (TG_SGD keeps none). */
int           tg_optimizer_state_tensor(const tg_optimizer *opt, int param, int which,
                                        tg_tensor *out, tg_error *err);
/* torch.optim's name for buffer `which` of a kind: "momentum_buffer", "sum", "exp_avg",
 * "exp_avg_sq"; NULL when the kind keeps no such buffer. */
const char   *tg_optimizer_state_name(tg_optimizer_kind kind, int which);

/* ---- Checkpoints (safetensors) ------------------------------------------------------------
 * The safetensors format: an 8-byte little-endian header length, a JSON header mapping each
 * tensor name to its dtype ("F32"), shape and byte offsets, then the raw little-endian data.
 * Cells are saved under PyTorch's state_dict names (weight_ih, weight_hh, bias_ih, bias_hh,
 * biases 1-D as in PyTorch), so a file loads into torch.nn.RNNCell / LSTMCell / GRUCell with
 * load_state_dict, and back. The RNN and LSTM cells keep one bias b: it is saved as bias_ih
 * with a zero bias_hh, and bias_ih + bias_hh is loaded into b.
 *
 * Loading checks the whole file first (size, header length, JSON, dtypes, names, shapes,
 * offsets in range and not overlapping) and changes nothing unless all of it is right; on
 * failure it returns -1 with a message naming the file and the problem; anything but a
 * regular file (a FIFO, a device, a directory) is refused before a byte is read. Saving writes
 * a temporary file and renames it over the old one, as every file is written (see Files). */

/* A tensor under a name, for a model of your own (e.g. a readout layer). */
typedef struct tg_named {
    const char *name;
    tg_tensor *tensor;
} tg_named;

/* Save tensors[0..n-1] with shape [rows, cols]. */
int tg_save(const char *path, const tg_named *tensors, int n, tg_error *err);
/* Load every named tensor from the file, which must hold it with shape [rows, cols] (or
 * [rows] when cols is 1); other tensors in the file are ignored. */
int tg_load(const char *path, const tg_named *tensors, int n, tg_error *err);

int tg_rnn_cell_save(const tg_rnn_cell *cell, const char *path, tg_error *err);
int tg_rnn_cell_load(tg_rnn_cell *cell, const char *path, tg_error *err);   /* shapes must match */
int tg_lstm_cell_save(const tg_lstm_cell *cell, const char *path, tg_error *err);
int tg_lstm_cell_load(tg_lstm_cell *cell, const char *path, tg_error *err);
int tg_gru_cell_save(const tg_gru_cell *cell, const char *path, tg_error *err);
int tg_gru_cell_load(tg_gru_cell *cell, const char *path, tg_error *err);
/* Through the common interface: "rnn", "lstm" and "gru" cells. */
int tg_cell_save(const tg_cell *cell, const char *path, tg_error *err);
int tg_cell_load(tg_cell *cell, const char *path, tg_error *err);
/* The whole-sequence modules, under nn.RNN / LSTM / GRU's names: layer l's tensors are
 * weight_ih_l<l>, weight_hh_l<l>, bias_ih_l<l> and bias_hh_l<l>, with the cells' bias rule, so
 * a file loads into the matching torch module with load_state_dict(strict=True), and back. A
 * load also refuses a file that holds a layer more (weight_ih_l<num_layers>, ...). */
int tg_rnn_save(const tg_rnn *rnn, const char *path, tg_error *err);
int tg_rnn_load(tg_rnn *rnn, const char *path, tg_error *err);
int tg_lstm_save(const tg_lstm *lstm, const char *path, tg_error *err);
int tg_lstm_load(tg_lstm *lstm, const char *path, tg_error *err);
int tg_gru_save(const tg_gru *gru, const char *path, tg_error *err);
int tg_gru_load(tg_gru *gru, const char *path, tg_error *err);

/* A whole training run in one file: a checkpoint is built up in memory (tensors by reference,
 * metadata by copy) and written at once, atomically (one rename). A tensor with one column is
 * stored 1-D, [rows], as PyTorch stores a bias; tg_load reads it back into rows x 1. The
 * metadata are string pairs in the header's "__metadata__", after "format": "pt". A refused
 * add leaves the checkpoint as it was. */
typedef struct tg_checkpoint tg_checkpoint;

tg_checkpoint *tg_checkpoint_new(tg_error *err);           /* NULL when out of memory */
void tg_checkpoint_free(tg_checkpoint *ck);                /* NULL is fine */
/* Adds t under name; t's data must stay valid until tg_checkpoint_write. -1 with err on a
 * NULL argument, an empty or non-UTF-8 name, "__metadata__", a name already added, a tensor
 * without data or with a bad size. */
int tg_checkpoint_add(tg_checkpoint *ck, const char *name, const tg_tensor *t, tg_error *err);
/* Adds every layer of a module under nn.RNN / LSTM / GRU's names, as tg_rnn_save does. */
int tg_checkpoint_add_rnn(tg_checkpoint *ck, const tg_rnn *rnn, tg_error *err);
int tg_checkpoint_add_lstm(tg_checkpoint *ck, const tg_lstm *lstm, tg_error *err);
int tg_checkpoint_add_gru(tg_checkpoint *ck, const tg_gru *gru, tg_error *err);
/* Adds the optimizer's state: for each of its parameters i, named names[i] (e.g.
 * "weight_ih_l0"), its buffers as "optimizer.<names[i]>.<torch's name>" (exp_avg, exp_avg_sq,
 * ...; tg_optimizer_state_name), and the metadata optimizer.kind ("sgd", "momentum",
 * "adagrad" or "adam"), optimizer.lr, .momentum, .beta1, .beta2, .eps (9 significant digits:
 * floats read back exactly) and optimizer.steps. names must hold one name per parameter. */
int tg_checkpoint_add_optimizer(tg_checkpoint *ck, const tg_optimizer *opt,
                                const char *const *names, tg_error *err);
/* Sets metadata key to value (both UTF-8; key not "format"), replacing an earlier value. */
int tg_checkpoint_set(tg_checkpoint *ck, const char *key, const char *value, tg_error *err);
/* Writes everything added to path (a temporary file in its directory, synced, renamed). */
int tg_checkpoint_write(const tg_checkpoint *ck, const char *path, tg_error *err);

/* The metadata of a safetensors file: n key/value pairs, in the file's order. */
typedef struct tg_metadata_entry {
    const char *key, *value;
} tg_metadata_entry;
typedef struct tg_metadata {
    int n;
    tg_metadata_entry *entries;
} tg_metadata;

/* Reads a file's metadata (after checking its header); free with tg_metadata_free. NULL, with
 * err saying why, when the file cannot be read or its header is bad. A file without metadata
 * gives n = 0. */
tg_metadata *tg_load_metadata(const char *path, tg_error *err);
const char  *tg_metadata_get(const tg_metadata *md, const char *key); /* NULL when absent */
void         tg_metadata_free(tg_metadata *md);                       /* NULL is fine */
/* Restores what tg_checkpoint_add_optimizer saved into an optimizer over the same parameters
 * (names as when saved): every buffer, steps and the settings. -1, with err saying why and
 * nothing changed, when the file's optimizer.kind is not opt's, a setting is missing or not a
 * number, or a buffer is missing or has another shape. */
int tg_optimizer_load(tg_optimizer *opt, const char *path, const char *const *names,
                      tg_error *err);

#ifdef __cplusplus
}
#endif

#endif
