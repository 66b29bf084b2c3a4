/* tape.c: the tape. Its arena (chunks of memory that grow on demand and are reused after a
 * reset), the list of recorded nodes, the sticky error, and tg_backward, which walks the
 * list from the loss back to the first node. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
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

/* A parameter's data transposed, valid for one tg_backward (see tg_tape_transposed). */
typedef struct transposed {
    const tg_tensor *param;
    float *data;
} transposed;

struct tg_tape {
    chunk *first, *current;     /* current: the chunk new blocks come from */
    size_t reserved;            /* bytes of all chunks */
    tg_node *last;              /* the newest node; NULL on an empty tape */
    bool grads_dirty;           /* a tg_backward ran since the last reset */
    transposed transposed[TG_MAX_TRANSPOSED]; /* made by the tg_backward running now */
    int n_transposed;
    bool has_error;
    char error[ERROR_CAPACITY];
};

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

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

void *tg_arena_alloc(tg_tape *tape, size_t bytes)
{
    return arena_alloc(tape, bytes);
}

tg_tape *tg_tape_new(void)
{
    return calloc(1, sizeof(tg_tape));
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
    tape->n_transposed = 0;
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

tg_tensor *tg_fail(tg_tape *tape, const char *fmt, ...)
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

bool tg_size_ok(int rows, int cols)
{
    return rows > 0 && cols > 0 && (size_t)rows * (size_t)cols <= (size_t)INT32_MAX / 2;
}

bool tg_inputs_ok(tg_tape *tape, const char *op, int n_inputs, tg_tensor *a, tg_tensor *b,
                  tg_tensor *c)
{
    if (!tape)
        return false;
    tg_tensor *in[TG_MAX_INPUTS] = { a, b, c };
    for (int i = 0; i < n_inputs; i++) {
        if (!in[i]) {
            tg_fail(tape, "%s: input %d is NULL", op, i + 1);
            return false;
        }
        if (in[i]->node && in[i]->node->tape != tape) {
            tg_fail(tape, "%s: input %d was made on another tape", op, i + 1);
            return false;
        }
    }
    return true;
}

/* Records a node whose output has a zero-filled grad when with_grad, or a NULL grad. */
static tg_tensor *record(tg_tape *tape, const tg_op *op, tg_tensor *a, tg_tensor *b, tg_tensor *c,
                         int rows, int cols, bool with_grad)
{
    size_t values = (size_t)rows * (size_t)cols;
    size_t node_bytes = round_up(sizeof(tg_node), ARENA_ALIGN);
    size_t data_bytes = round_up(values * sizeof(float), ARENA_ALIGN);
    unsigned char *block = arena_alloc(tape, node_bytes + (with_grad ? 2 : 1) * data_bytes);
    if (!block)
        return tg_fail(tape, "%s: out of memory for a %dx%d result",
                       op ? op->name : with_grad ? "tg_input" : "tg_constant", rows, cols);
    tg_node *node = (tg_node *)block;
    /* Field by field: a compound literal zero-fills the whole node first (a `rep stos`
     * that was a tenth of the smallest training step). */
    node->op = op;
    node->tape = tape;
    node->out = (tg_tensor){ .rows = rows, .cols = cols, .data = (float *)(block + node_bytes),
                             .grad = with_grad ? (float *)(block + node_bytes + data_bytes) : NULL,
                             .node = node };
    node->in[0] = a;
    node->in[1] = b;
    node->in[2] = c;
    node->scalar = 0.0f;
    node->first_row = 0;
    node->labels = NULL;
    node->reached = false;
    node->prev = tape->last;
    if (with_grad)
        memset(node->out.grad, 0, values * sizeof(float));
    tape->last = node;
    return &node->out;
}

tg_tensor *tg_record(tg_tape *tape, const tg_op *op, tg_tensor *a, tg_tensor *b, tg_tensor *c,
                     int rows, int cols)
{
    return record(tape, op, a, b, c, rows, cols, (a && a->grad) || (b && b->grad) || (c && c->grad));
}

tg_tensor *tg_record_leaf(tg_tape *tape, int rows, int cols, bool with_grad)
{
    return record(tape, NULL, NULL, NULL, NULL, rows, cols, with_grad);
}

const float *tg_tape_transposed(tg_tape *tape, const tg_tensor *param)
{
    for (int i = 0; i < tape->n_transposed; i++)
        if (tape->transposed[i].param == param)
            return tape->transposed[i].data;
    if (tape->n_transposed == TG_MAX_TRANSPOSED)
        return NULL;
    float *data = arena_alloc(tape, (size_t)param->rows * (size_t)param->cols * sizeof(float));
    if (!data)
        return NULL;
    tg_kernel_transpose(param->rows, param->cols, param->data, data);
    tape->transposed[tape->n_transposed++] = (transposed){ param, data };
    return data;
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
        tg_fail(tape, "tg_backward: loss is NULL");
        return -1;
    }
    if (!loss->node || loss->node->tape != tape) {
        tg_fail(tape, "tg_backward: loss must be a tensor made on this tape");
        return -1;
    }
    if (loss->rows != 1 || loss->cols != 1) {
        tg_fail(tape, "tg_backward: loss must be 1x1, got %dx%d", loss->rows, loss->cols);
        return -1;
    }
    if (!isfinite(loss->data[0])) {
        tg_fail(tape, "tg_backward: loss is %g; no gradient computed", loss->data[0]);
        return -1;
    }
    if (!loss->grad) {
        tg_fail(tape, "tg_backward: the loss depends on no parameter and no tg_input tensor");
        return -1;
    }
    if (tape->grads_dirty)
        clear_previous_backward(tape);
    tape->grads_dirty = true;
    tape->n_transposed = 0; /* parameters may have changed since an earlier backward */

    loss->grad[0] = 1.0f;
    loss->node->reached = true;
    for (tg_node *n = loss->node; n; n = n->prev) {
        if (!n->reached || !n->op || !n->out.grad)
            continue;
        n->op->backward(n);
        for (int i = 0; i < TG_MAX_INPUTS; i++)
            if (n->in[i] && n->in[i]->node)
                n->in[i]->node->reached = true;
    }
    return 0;
}
