/* tape_dot.c: the tape drawn. tg_tape_write_dot writes every node of a tape, each parameter
 * it reads and an edge from each input to the node that reads it, as a Graphviz DOT file. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>

#include "error.h"
#include "files.h"
#include "tape.h"

enum { SHOWN_VALUES = 4 };   /* values of data and grad written into a box */

/* A tensor, by its address, and the number it is drawn under (-1: not drawn yet). */
typedef struct numbered {
    uintptr_t address;
    int number;
} numbered;

/* What the writer needs: the nodes and parameters in lookup tables, the labels, the file. */
typedef struct drawing {
    const tg_node_view *nodes;
    int n_nodes;
    numbered *by_address;         /* node i's result under number i, sorted by address */
    numbered *params;             /* each parameter once, sorted by address */
    int n_params, params_drawn;
    const tg_named *names;
    int n_names;
    bool grads;                   /* tg_backward ran: the grads are worth showing */
    FILE *file;
    int error;                    /* errno of the first failed write; 0 while all is well */
} drawing;

static int by_address(const void *a, const void *b)
{
    uintptr_t x = ((const numbered *)a)->address, y = ((const numbered *)b)->address;
    return (x > y) - (x < y);
}

static numbered *find(numbered *table, int n, const tg_tensor *t)
{
    numbered key = { (uintptr_t)t, 0 };
    return bsearch(&key, table, (size_t)n, sizeof *table, by_address);
}

/* ---- writing --------------------------------------------------------------------------------- */

static void put(drawing *d, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    if (vfprintf(d->file, fmt, args) < 0 && d->error == 0)
        d->error = errno ? errno : EIO;
    va_end(args);
}

/* text inside a DOT string: quote and backslash escaped, a line break as DOT's \n, other
 * control characters as spaces (a backslash would otherwise start a DOT escape such as \N) */
static void put_escaped(drawing *d, const char *text)
{
    for (const char *c = text; *c; c++) {
        if (*c == '"' || *c == '\\')
            put(d, "\\%c", *c);
        else if (*c == '\n')
            put(d, "\\n");
        else
            put(d, "%c", (unsigned char)*c < 0x20 ? ' ' : *c);
    }
}

/* "\ndata v1, v2, v3, …": the first SHOWN_VALUES values of t's data or grad */
static void put_values(drawing *d, const char *what, const tg_tensor *t, const float *values)
{
    long n = (long)t->rows * t->cols;
    put(d, "\\n%s ", what);
    for (long i = 0; i < n && i < SHOWN_VALUES; i++)
        put(d, "%s%.4g", i > 0 ? ", " : "", (double)values[i]);
    if (n > SHOWN_VALUES)
        put(d, ", …");
}

static const char *name_of(const drawing *d, const tg_tensor *t)
{
    for (int i = 0; i < d->n_names; i++)
        if (d->names[i].tensor == t)
            return d->names[i].name;
    return NULL;
}

/* The label: "NAME = WHAT RxC", then the values, then (after tg_backward) the grad. */
static void put_label(drawing *d, const char *what, const tg_tensor *t)
{
    const char *name = name_of(d, t);
    put(d, "label=\"");
    if (name) {
        put_escaped(d, name);
        put(d, " = ");
    }
    put_escaped(d, what);
    put(d, " %dx%d", t->rows, t->cols);
    put_values(d, "data", t, t->data);
    if (d->grads && t->grad)
        put_values(d, "grad", t, t->grad);
    put(d, "\"");
}

/* The DOT name of an input (n3, p1), drawing a parameter the first time it is met. */
static void put_input_id(drawing *d, const tg_tensor *in)
{
    if (in->node) {
        put(d, "n%d", find(d->by_address, d->n_nodes, in)->number);
        return;
    }
    put(d, "p%d", find(d->params, d->n_params, in)->number);
}

static void put_params_first_met(drawing *d, const tg_node_view *node)
{
    for (int i = 0; i < TG_MAX_INPUTS; i++) {
        const tg_tensor *in = node->in[i];
        if (!in || in->node)
            continue;
        numbered *p = find(d->params, d->n_params, in);
        if (p->number >= 0)
            continue;
        p->number = d->params_drawn++;
        put(d, "  p%d [", p->number);
        put_label(d, "parameter", in);
        put(d, ", peripheries=2, style=filled, fillcolor=\"#fff2cc\"];\n");
    }
}

static void put_node(drawing *d, int i)
{
    const tg_node_view *node = &d->nodes[i];
    const tg_tensor *out = node->out;
    put_params_first_met(d, node);
    put(d, "  n%d [", i);
    put_label(d, node->op ? node->op : out->grad ? "tg_input" : "tg_constant", out);
    put(d, "%s];\n", out->grad ? "" : ", style=dashed");
    for (int k = 0; k < TG_MAX_INPUTS; k++)
        if (node->in[k]) {
            put(d, "  ");
            put_input_id(d, node->in[k]);
            put(d, " -> n%d;\n", i);
        }
}

static bool write_dot_body(FILE *file, void *ctx)
{
    drawing *d = ctx;
    d->file = file;
    d->error = 0;
    d->params_drawn = 0;
    for (int i = 0; i < d->n_params; i++)
        d->params[i].number = -1;
    put(d, "// a tapegrad tape: %d nodes oldest first (n0 ...), %d parameters (p0 ...), %s\n",
        d->n_nodes, d->n_params, d->grads ? "grads after tg_backward" : "before tg_backward");
    put(d, "digraph tape {\n  node [shape=box, fontname=\"Helvetica\", fontsize=10];\n");
    for (int i = 0; i < d->n_nodes; i++)
        put_node(d, i);
    put(d, "}\n");
    errno = d->error;
    return d->error == 0;
}

/* ---- the tables ------------------------------------------------------------------------------- */

/* Fills the tables of d from the tape; false when out of memory. */
static bool build_tables(drawing *d, const tg_tape *tape)
{
    d->n_nodes = tg_tape_nodes(tape, NULL, 0);
    size_t n = (size_t)d->n_nodes + 1;
    tg_node_view *nodes = malloc(n * sizeof *nodes);
    d->nodes = nodes;
    d->by_address = malloc(n * sizeof *d->by_address);
    d->params = malloc(n * TG_MAX_INPUTS * sizeof *d->params);
    if (!nodes || !d->by_address || !d->params)
        return false;
    tg_tape_nodes(tape, nodes, d->n_nodes);
    d->n_params = 0;
    for (int i = 0; i < d->n_nodes; i++) {
        d->by_address[i] = (numbered){ (uintptr_t)nodes[i].out, i };
        for (int k = 0; k < TG_MAX_INPUTS; k++)
            if (nodes[i].in[k] && !nodes[i].in[k]->node)
                d->params[d->n_params++] = (numbered){ (uintptr_t)nodes[i].in[k], -1 };
    }
    qsort(d->by_address, (size_t)d->n_nodes, sizeof *d->by_address, by_address);
    qsort(d->params, (size_t)d->n_params, sizeof *d->params, by_address);
    int unique = 0;
    for (int i = 0; i < d->n_params; i++)
        if (unique == 0 || d->params[i].address != d->params[unique - 1].address)
            d->params[unique++] = d->params[i];
    d->n_params = unique;
    return true;
}

static void free_tables(drawing *d)
{
    free((void *)d->nodes);
    free(d->by_address);
    free(d->params);
}

static int check_arguments(const tg_tape *tape, const char *path, const tg_named *names,
                           int n_names, tg_error *err)
{
    if (!path)
        return tg_error_set(err, "tg_tape_write_dot", "path is NULL");
    if (!tape)
        return tg_error_set(err, path, "tape is NULL");
    if (n_names < 0)
        return tg_error_set(err, path, "n_names is negative (%d)", n_names);
    if (n_names > 0 && !names)
        return tg_error_set(err, path, "names is NULL with n_names %d", n_names);
    for (int i = 0; i < n_names; i++)
        if (!names[i].name || !names[i].tensor)
            return tg_error_set(err, path, "names[%d] has a NULL %s", i,
                                names[i].name ? "tensor" : "name");
    return 0;
}

int tg_tape_write_dot(const tg_tape *tape, const char *path, const struct tg_named *names,
                      int n_names, tg_error *err)
{
    tg_error_clear(err);
    if (check_arguments(tape, path, names, n_names, err) != 0)
        return -1;
    drawing d = { .names = names, .n_names = n_names, .grads = tg_tape_backward_ran(tape) };
    int status = build_tables(&d, tape)
                     ? tg_write_file_atomically(path, write_dot_body, &d, err)
                     : tg_error_set(err, path, "out of memory for a drawing of %d nodes", d.n_nodes);
    free_tables(&d);
    return status;
}
