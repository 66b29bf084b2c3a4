/* tape.c: the tape. Its arena (chunks of memory that grow on demand and are reused after a
 * reset), the list of recorded nodes and the leaves (tg_input, tg_constant), the sticky
 * error, the calls every op records itself with, and tg_backward, which walks the list from
 * the loss back to the first node. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tape.h"

#define ARENA_ALIGN 64                 /* every block starts on a cache line */
#define ARENA_MIN_CHUNK (64u * 1024u)  /* the smallest chunk asked from malloc */
#define ERROR_CAPACITY 256

/* A chunk of arena memory: this header, then size usable bytes starting at mem. */
typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    unsigned char *mem;
} chunk;

typedef struct tg_node tg_node;

/* One recorded op. Nodes form a list from the newest back to the first. record() sets
 * every field one by one: a new field must be set there too. */
struct tg_node {
    const tg_op *op;                   /* NULL for a leaf (tg_input, tg_constant) */
    tg_tape *tape;                     /* the tape it is on */
    tg_tensor out;                     /* the result; out.node points back here */
    tg_tensor *in[TG_MAX_INPUTS];      /* the inputs, NULL where unused */
    const void *state;                 /* the op's copy of its constants, or NULL */
    bool reached;                      /* set by tg_backward: the loss depends on it */
    tg_node *prev;                     /* the node recorded before this one */
};

/* A block kept for one tg_backward under (owner, key): see tg_backward_memo. */
typedef struct memo {
    const void *owner;
    const void *key;
    void *block;
} memo;

/* The gradient check's request: add delta to one element of one tg_input. */
typedef struct perturbation {
    int ordinal;                /* which tg_input, counted from the last reset; -1: none */
    long element;
    float delta;
} perturbation;

struct tg_tape {
    chunk *first, *current;     /* current: the chunk new blocks come from */
    size_t reserved;            /* bytes of all chunks */
    tg_node *last;              /* the newest node; NULL on an empty tape */
    bool grads_dirty;           /* a tg_backward ran since the last reset */
    memo memos[TG_MAX_MEMOS];   /* kept by the tg_backward running now */
    int n_memos;
    int n_inputs;               /* tg_input leaves recorded since the last reset */
    perturbation perturb;
    bool has_error;
    char error[ERROR_CAPACITY];
    bool no_grad;               /* tg_tape_set_no_grad: results get no grad and no node list */
};

/* n rounded up to a multiple of to, a power of two */
static size_t round_up(size_t n, size_t to) { return (n + to - 1) & ~(to - 1); }

static chunk *chunk_new(size_t size)
{
    unsigned char *raw = malloc(sizeof(chunk) + ARENA_ALIGN + size);
    if (!raw)
        return NULL;
    chunk *c = (chunk *)raw;
    uintptr_t start = (uintptr_t)(raw + sizeof(chunk));
    c->mem = raw + (round_up(start, ARENA_ALIGN) - (uintptr_t)raw);
    c->size = size;
    c->used = 0;
    c->next = NULL;
    return c;
}

/* bytes of memory aligned to ARENA_ALIGN, valid until the next reset; NULL if out of memory.
 * Looks in the current chunk and the ones after it (all empty after a reset), and only
 * when none has room asks malloc for a new chunk at least as big as all the others. */
static void *arena_alloc(tg_tape *tape, size_t bytes)
{
    bytes = round_up(bytes, ARENA_ALIGN);
    for (chunk *c = tape->current; c; c = c->next) {
        if (c->size - c->used >= bytes) {
            tape->current = c;
            void *p = c->mem + c->used;
            c->used += bytes;
            return p;
        }
    }
    size_t size = bytes > tape->reserved ? bytes : tape->reserved;
    if (size < ARENA_MIN_CHUNK)
        size = ARENA_MIN_CHUNK;
    chunk *fresh = chunk_new(size);
    if (!fresh)
        return NULL;
    chunk **tail = &tape->first;
    while (*tail)
        tail = &(*tail)->next;
    *tail = fresh;
    tape->reserved += size;
    tape->current = fresh;
    fresh->used = bytes;
    return fresh->mem;
}

tg_tape *tg_tape_new(void)
{
    tg_tape *tape = calloc(1, sizeof(tg_tape));
    if (tape)
        tape->perturb.ordinal = -1;
    return tape;
}

void tg_tape_free(tg_tape *tape)
{
    if (!tape)
        return;
    for (chunk *c = tape->first, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(tape);
}

void tg_tape_reset(tg_tape *tape)
{
    if (!tape)
        return;
    for (chunk *c = tape->first; c; c = c->next)
        c->used = 0;
    tape->current = tape->first;
    tape->last = NULL;
    tape->grads_dirty = false;
    tape->n_memos = 0;
    tape->n_inputs = 0;
    tape->perturb.ordinal = -1;
    tape->has_error = false;
    tape->error[0] = '\0';
}

const char *tg_tape_error(const tg_tape *tape)
{
    if (!tape)
        return "tg_tape_error: tape is NULL";
    return tape->has_error ? tape->error : NULL;
}

size_t tg_tape_reserved_bytes(const tg_tape *tape)
{
    return tape ? tape->reserved : 0;
}

tg_tensor *tg_tape_fail(tg_tape *tape, const char *fmt, ...)
{
    if (!tape || tape->has_error)
        return NULL;
    va_list args;
    va_start(args, fmt);
    vsnprintf(tape->error, sizeof tape->error, fmt, args);
    va_end(args);
    tape->has_error = true;
    return NULL;
}

/* True when op is a valid tg_op and in[0 .. n_inputs-1] are all there and on this tape (or
 * parameters); *with_grad tells whether any input has a grad. Every op runs this twice (in
 * tg_inputs_ok and tg_record), so it is kept to one loop; the messages are in
 * report_bad_inputs. */
static inline bool inputs_valid(const tg_tape *tape, const tg_op *op, tg_tensor *const *in,
                                bool *with_grad)
{
    if (!op || !in || (unsigned)op->n_inputs - 1u >= TG_MAX_INPUTS || !op->backward || !op->name)
        return false;
    bool grad = false;
    for (int i = 0; i < op->n_inputs; i++) {
        const tg_tensor *t = in[i];
        if (!t || (t->node && t->node->tape != tape))
            return false;
        grad |= t->grad != NULL;
    }
    *with_grad = grad;
    return true;
}

/* Records on the tape why inputs_valid refused (the first bad input: later fails are no-ops). */
static int report_bad_inputs(tg_tape *tape, const tg_op *op, tg_tensor *const *in)
{
    if (!op || !op->name || op->n_inputs < 1 || op->n_inputs > TG_MAX_INPUTS || !op->backward)
        tg_tape_fail(tape, "tg_inputs_ok: op %s is not a valid tg_op (name, 1..%d inputs, backward)",
                     op && op->name ? op->name : "(NULL)", TG_MAX_INPUTS);
    else
        for (int i = 0; i < op->n_inputs; i++)
            if (!in || !in[i])
                tg_tape_fail(tape, "%s: input %d is NULL", op->name, i + 1);
            else if (in[i]->node && in[i]->node->tape != tape)
                tg_tape_fail(tape, "%s: input %d was made on another tape", op->name, i + 1);
    return 0;
}

int tg_inputs_ok(tg_tape *tape, const tg_op *op, tg_tensor *const *in)
{
    bool with_grad;
    if (!tape)
        return 0;
    return inputs_valid(tape, op, in, &with_grad) ? 1 : report_bad_inputs(tape, op, in);
}

/* Records a node (op NULL for a leaf) with n inputs and a rows x cols result whose grad is
 * zero-filled when with_grad, else NULL, followed by a copy of state_bytes of state. Its data
 * is new, or `borrowed` itself for a view (a leaf without a grad, whose data is never written). */
static inline tg_tensor *record(tg_tape *tape, const char *who, const tg_op *op,
                                tg_tensor *const *in, int n, int rows, int cols, bool with_grad,
                                const void *state, size_t state_bytes, const float *borrowed)
{
    if (!tg_size_ok(rows, cols))
        return rows < 1 || cols < 1
                   ? tg_tape_fail(tape, "%s: bad size %dx%d", who, rows, cols)
                   : tg_tape_fail(tape, "%s: a %dx%d result is too large (at most %d values)",
                                  who, rows, cols, INT32_MAX / 2);
    with_grad = with_grad && !tape->no_grad;
    size_t values = (size_t)rows * (size_t)cols;
    size_t node_bytes = round_up(sizeof(tg_node), ARENA_ALIGN);
    size_t data_bytes = round_up(values * sizeof(float), ARENA_ALIGN);
    size_t tensors_bytes = (with_grad ? 2 : borrowed ? 0 : 1) * data_bytes;
    unsigned char *block = arena_alloc(tape, node_bytes + tensors_bytes + state_bytes);
    if (!block)
        return tg_tape_fail(tape, "%s: out of memory for a %dx%d result", who, rows, cols);
    tg_node *node = (tg_node *)block;
    /* Field by field: a compound literal would zero-fill the whole node first, a cost on
     * every node of every step. */
    node->op = op;
    node->tape = tape;
    float *data = borrowed ? (float *)(uintptr_t)borrowed : (float *)(block + node_bytes);
    node->out = (tg_tensor){ .rows = rows, .cols = cols, .data = data,
                             .grad = with_grad ? (float *)(block + node_bytes + data_bytes) : NULL,
                             .node = node };
    for (int i = 0; i < TG_MAX_INPUTS; i++)
        node->in[i] = i < n ? in[i] : NULL;
    node->state = NULL;
    if (state_bytes > 0) {
        void *copy = block + node_bytes + tensors_bytes;
        memcpy(copy, state, state_bytes);
        node->state = copy;
    }
    node->reached = false;
    node->prev = tape->last;
    if (with_grad)
        memset(node->out.grad, 0, values * sizeof(float));
    if (!tape->no_grad)
        tape->last = node;
    return &node->out;
}

tg_tensor *tg_record(tg_tape *tape, const tg_op *op, tg_tensor *const *in, int rows, int cols,
                     const void *state, size_t state_bytes)
{
    bool with_grad;
    if (!tape)
        return NULL;
    if (!inputs_valid(tape, op, in, &with_grad)) {
        report_bad_inputs(tape, op, in);
        return NULL;
    }
    if (state_bytes > 0 && !state)
        return tg_tape_fail(tape, "%s: state is NULL with %zu state bytes", op->name, state_bytes);
    return record(tape, op->name, op, in, op->n_inputs, rows, cols, with_grad, state, state_bytes,
                  NULL);
}

/* ---- leaves: tg_input and tg_constant copy the caller's data, tg_constant_view reads it ---- */

static tg_tensor *leaf(tg_tape *tape, const char *who, int rows, int cols, const float *data,
                       bool with_grad)
{
    if (!tape)
        return NULL;
    tg_tensor *y = record(tape, who, NULL, NULL, 0, rows, cols, with_grad, NULL, 0, NULL);
    if (!y)
        return NULL;
    size_t bytes = (size_t)rows * (size_t)cols * sizeof(float);
    if (data)
        memcpy(y->data, data, bytes);
    else
        memset(y->data, 0, bytes);
    return y;
}

tg_tensor *tg_input(tg_tape *tape, int rows, int cols, const float *data)
{
    tg_tensor *y = leaf(tape, "tg_input", rows, cols, data, true);
    if (y && tape->n_inputs++ == tape->perturb.ordinal &&
        tape->perturb.element < (long)rows * cols)
        y->data[tape->perturb.element] += tape->perturb.delta;
    return y;
}

tg_tensor *tg_constant(tg_tape *tape, int rows, int cols, const float *data)
{
    return leaf(tape, "tg_constant", rows, cols, data, false);
}

tg_tensor *tg_constant_view(tg_tape *tape, int rows, int cols, const float *data)
{
    if (!tape || !data) /* without a tape, tg_tape_fail only returns NULL */
        return tg_tape_fail(tape, "tg_constant_view: data is NULL");
    return record(tape, "tg_constant_view", NULL, NULL, 0, rows, cols, false, NULL, 0, data);
}

int tg_tape_inputs(const tg_tape *tape, tg_tensor **out, int max)
{
    int n = tape->n_inputs, k = n;
    for (tg_node *node = tape->last; node; node = node->prev)
        if (!node->op && node->out.grad && --k < max)
            out[k] = &node->out;
    return n;
}

int tg_tape_nodes(const tg_tape *tape, tg_node_view *out, int max)
{
    int n = 0;
    for (const tg_node *node = tape->last; node; node = node->prev)
        n++;
    int k = n;
    for (const tg_node *node = tape->last; node; node = node->prev)
        if (--k < max)
            out[k] = (tg_node_view){ node->op ? node->op->name : NULL, &node->out, node->in };
    return n;
}

bool tg_tape_backward_ran(const tg_tape *tape) { return tape->grads_dirty; }

void tg_tape_set_no_grad(tg_tape *tape, int on) { if (tape) tape->no_grad = on != 0; }

void tg_tape_perturb_input(tg_tape *tape, int ordinal, long element, float delta)
{
    tape->perturb = (perturbation){ ordinal, element, delta };
}

const void *tg_op_state(const tg_tensor *y)
{
    return y && y->node ? y->node->state : NULL;
}

void *tg_backward_memo(const tg_tensor *y, const void *owner, const void *key, size_t bytes,
                       int *fresh)
{
    tg_tape *tape = y->node->tape;
    for (int i = 0; i < tape->n_memos; i++)
        if (tape->memos[i].owner == owner && tape->memos[i].key == key) {
            *fresh = 0;
            return tape->memos[i].block;
        }
    if (tape->n_memos == TG_MAX_MEMOS)
        return NULL;
    void *block = arena_alloc(tape, bytes);
    if (!block)
        return NULL;
    tape->memos[tape->n_memos++] = (memo){ owner, key, block };
    *fresh = 1;
    return block;
}

/* Before a second tg_backward on the same tape: zero every tape grad and forget which
 * nodes were reached, so the second pass computes the same values as the first. */
static void clear_previous_backward(tg_tape *tape)
{
    for (tg_node *n = tape->last; n; n = n->prev) {
        if (n->out.grad)
            memset(n->out.grad, 0, (size_t)n->out.rows * (size_t)n->out.cols * sizeof(float));
        n->reached = false;
    }
}

int tg_backward(tg_tape *tape, tg_tensor *loss)
{
    if (!tape || tape->has_error)
        return -1;
    if (!loss) {
        tg_tape_fail(tape, "tg_backward: loss is NULL");
        return -1;
    }
    if (!loss->node || loss->node->tape != tape) {
        tg_tape_fail(tape, "tg_backward: loss must be a tensor made on this tape");
        return -1;
    }
    if (loss->rows != 1 || loss->cols != 1) {
        tg_tape_fail(tape, "tg_backward: loss must be 1x1, got %dx%d", loss->rows, loss->cols);
        return -1;
    }
    if (!isfinite(loss->data[0])) {
        tg_tape_fail(tape, "tg_backward: loss is %g; no gradient computed", loss->data[0]);
        return -1;
    }
    if (!loss->grad) {
        tg_tape_fail(tape, "tg_backward: the loss depends on no parameter and no tg_input tensor");
        return -1;
    }
    if (tape->grads_dirty)
        clear_previous_backward(tape);
    tape->grads_dirty = true;
    tape->n_memos = 0; /* parameters may have changed since an earlier backward */

    loss->grad[0] = 1.0f;
    loss->node->reached = true;
    for (tg_node *n = loss->node; n; n = n->prev) {
        if (!n->reached || !n->op || !n->out.grad)
            continue;
        n->op->backward(&n->out, n->in);
        for (int i = 0; i < TG_MAX_INPUTS; i++)
            if (n->in[i] && n->in[i]->node)
                n->in[i]->node->reached = true;
    }
    return 0;
}
