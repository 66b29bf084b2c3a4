/* test_tape_dot.c: the tape drawn (src/tape_dot.c). For a 3-step RNN the DOT file has one box
 * per node and per parameter and one edge per input, W_h three edges out; labels give the op,
 * the shape, the values and, after tg_backward only, the grads; constants are dashed and names
 * escaped; refusals are reported through tg_error; and Graphviz's dot reads the file (when it
 * is installed: otherwise that part is skipped with a note). */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint_files.h"
#include "scratch_dir.h"
#include "tapegrad.h"

/* ---- reading back the lines the writer makes: "  ID [label=\"...\"...];", "  A -> B;" ---- */

enum { MAX_BOXES = 64, MAX_EDGES = 64, ID_SIZE = 16, LINE_SIZE = 512 };

typedef struct box {
    char id[ID_SIZE];
    char line[LINE_SIZE];   /* the whole statement, label (DOT-escaped) and attributes */
} box;

typedef struct dot_file {
    box boxes[MAX_BOXES];
    int n_boxes;
    char from[MAX_EDGES][ID_SIZE], to[MAX_EDGES][ID_SIZE];
    int n_edges;
    char *text;
} dot_file;

static void read_statement(dot_file *d, const char *line)
{
    char a[ID_SIZE], b[ID_SIZE];
    if (sscanf(line, "  %15s -> %15[^;];", a, b) == 2) {
        ck_assert_int_lt(d->n_edges, MAX_EDGES);
        strcpy(d->from[d->n_edges], a);
        strcpy(d->to[d->n_edges++], b);
    } else if (sscanf(line, "  %15s [label=", a) == 1 && strstr(line, "[label=\"")) {
        ck_assert_int_lt(d->n_boxes, MAX_BOXES);
        ck_assert_uint_lt(strlen(line), LINE_SIZE);
        strcpy(d->boxes[d->n_boxes].id, a);
        strcpy(d->boxes[d->n_boxes++].line, line);
    }
}

static dot_file *read_dot(const char *path)
{
    size_t n;
    unsigned char *bytes = read_bytes(path, &n);
    dot_file *d = calloc(1, sizeof *d);
    ck_assert_ptr_nonnull(d);
    d->text = malloc(n + 1);
    memcpy(d->text, bytes, n);
    d->text[n] = '\0';
    free(bytes);
    ck_assert_ptr_nonnull(strstr(d->text, "digraph tape {\n"));
    ck_assert_int_eq(d->text[n - 2], '}');
    char *copy = strdup(d->text), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        read_statement(d, line);
    free(copy);
    return d;
}

static void free_dot(dot_file *d)
{
    free(d->text);
    free(d);
}

/* The one box whose label starts with text (DOT-escaped); fails the test when there is not
 * exactly one. */
static const box *box_labelled(const dot_file *d, const char *text)
{
    const box *found = NULL;
    char prefix[LINE_SIZE];
    snprintf(prefix, sizeof prefix, "[label=\"%s", text);
    for (int i = 0; i < d->n_boxes; i++)
        if (strstr(d->boxes[i].line, prefix)) {
            ck_assert_msg(!found, "two boxes labelled %s", text);
            found = &d->boxes[i];
        }
    ck_assert_msg(found != NULL, "no box labelled %s in\n%s", text, d->text);
    return found;
}

static int boxes_containing(const dot_file *d, const char *text)
{
    int n = 0;
    for (int i = 0; i < d->n_boxes; i++)
        n += strstr(d->boxes[i].line, text) != NULL;
    return n;
}

static int edges_from(const dot_file *d, const char *id)
{
    int n = 0;
    for (int i = 0; i < d->n_edges; i++)
        n += strcmp(d->from[i], id) == 0;
    return n;
}

static const box *box_with_id(const dot_file *d, const char *id)
{
    for (int i = 0; i < d->n_boxes; i++)
        if (strcmp(d->boxes[i].id, id) == 0)
            return &d->boxes[i];
    ck_abort_msg("no box %s", id);
    return NULL;
}

/* ---- the seed's RNN, 3 steps: 3 inputs, 2 hidden units ---- */

enum { INPUT = 3, HIDDEN = 2, STEPS = 3 };

typedef struct rnn_run {
    tg_rnn_cell *cell;
    tg_tape *tape;
    tg_tensor *h[STEPS + 1], *loss;
    tg_named names[STEPS + 4];
} rnn_run;

static rnn_run rnn_forward(void)
{
    static const char *h_names[] = { "h_0", "h_1", "h_2", "h_3" };
    static const float x[INPUT] = { 0.5f, -1.0f, 2.0f }, target[HIDDEN] = { 0.25f, -0.25f };
    rnn_run r = { .cell = tg_rnn_cell_new(INPUT, HIDDEN, 7), .tape = tg_tape_new() };
    r.h[0] = tg_constant(r.tape, HIDDEN, 1, NULL);
    for (int t = 1; t <= STEPS; t++)
        r.h[t] = tg_rnn_cell_forward(r.tape, r.cell, tg_constant(r.tape, INPUT, 1, x), r.h[t - 1]);
    r.loss = tg_mse(r.tape, r.h[STEPS], tg_constant(r.tape, HIDDEN, 1, target));
    ck_assert_ptr_nonnull(r.loss);
    r.names[0] = (tg_named){ "W_h", r.cell->W_h };
    r.names[1] = (tg_named){ "W_x", r.cell->W_x };
    r.names[2] = (tg_named){ "b", r.cell->b };
    for (int t = 0; t <= STEPS; t++)
        r.names[3 + t] = (tg_named){ h_names[t], r.h[t] };
    return r;
}

static void rnn_free(rnn_run *r)
{
    tg_tape_free(r->tape);
    tg_rnn_cell_free(r->cell);
}

/* Per step the cell records x_t (a constant), u = W_x x_t + b, a = W_h h_{t-1} + u and
 * h_t = tanh(a): 4 nodes, 3 + 3 + 1 inputs. With h_0, the target and the loss (2 inputs):
 * 3 * 4 + 3 = 15 nodes and 3 * 7 + 2 = 23 edges; W_h, W_x and b are read once per step. */
START_TEST(test_rnn_tape_has_a_box_per_node_and_parameter_and_an_edge_per_input)
{
    rnn_run r = rnn_forward();
    char path[PATH_SIZE];
    scratch_path(path, "rnn.dot");
    ck_assert_int_eq(tg_tape_write_dot(r.tape, path, r.names, STEPS + 4, NULL), 0);
    dot_file *d = read_dot(path);
    ck_assert_int_eq(d->n_boxes, 15 + 3);
    ck_assert_int_eq(d->n_edges, 23);
    ck_assert_int_eq(boxes_containing(d, "parameter"), 3);
    ck_assert_int_eq(boxes_containing(d, "tg_matmul_add 2x1"), 6);
    ck_assert_int_eq(boxes_containing(d, "tg_tanh 2x1"), 3);
    const char *names[] = { "W_h = parameter 2x2", "W_x = parameter 2x3", "b = parameter 2x1" };
    for (int i = 0; i < 3; i++) {
        const box *p = box_labelled(d, names[i]);
        ck_assert_int_eq(edges_from(d, p->id), 3);
        ck_assert_ptr_nonnull(strstr(p->line, "peripheries=2"));
    }
    /* W_h's three edges go to three different nodes, each a_t = tg_matmul_add(W_h, h_{t-1}, u) */
    const char *w_h = box_labelled(d, "W_h = parameter")->id, *seen[STEPS];
    int n_seen = 0;
    for (int i = 0; i < d->n_edges; i++) {
        if (strcmp(d->from[i], w_h) != 0)
            continue;
        ck_assert_ptr_nonnull(strstr(box_with_id(d, d->to[i])->line, "[label=\"tg_matmul_add 2x1"));
        for (int k = 0; k < n_seen; k++)
            ck_assert_str_ne(seen[k], d->to[i]);
        seen[n_seen++] = d->to[i];
    }
    ck_assert_int_eq(n_seen, STEPS);
    const box *h_2 = box_labelled(d, "h_2 = tg_tanh 2x1");
    ck_assert_int_eq(edges_from(d, h_2->id), 1);   /* into step 3's a */
    ck_assert_int_eq(boxes_containing(d, "style=dashed"), 5);   /* h_0, x_1..x_3, the target */
    free_dot(d);
    rnn_free(&r);
}
END_TEST

/* L = mean((p - t)^2) with p = [1, 2], t = [0, 0]: L = 2.5, dL/dp = p - t = [1, 2]. */
START_TEST(test_grads_are_drawn_after_backward_and_not_before)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *p = tg_input(tape, 1, 2, (const float[]){ 1.0f, 2.0f });
    tg_tensor *loss = tg_mse(tape, p, tg_constant(tape, 1, 2, NULL));
    tg_named names[] = { { "p", p }, { "L", loss } };
    char path[PATH_SIZE];
    scratch_path(path, "mse.dot");

    ck_assert_int_eq(tg_tape_write_dot(tape, path, names, 2, NULL), 0);
    dot_file *d = read_dot(path);
    ck_assert_int_eq(d->n_boxes, 3);
    ck_assert_int_eq(d->n_edges, 2);
    ck_assert_int_eq(boxes_containing(d, "\\ngrad"), 0);
    ck_assert_ptr_nonnull(strstr(box_labelled(d, "p = tg_input 1x2\\ndata 1, 2\"")->line, "\"];"));
    ck_assert_ptr_nonnull(strstr(box_labelled(d, "tg_constant 1x2\\ndata 0, 0\"")->line,
                                 "style=dashed"));
    box_labelled(d, "L = tg_mse 1x1\\ndata 2.5\"");
    free_dot(d);

    ck_assert_int_eq(tg_backward(tape, loss), 0);
    ck_assert_int_eq(tg_tape_write_dot(tape, path, names, 2, NULL), 0);
    d = read_dot(path);
    box_labelled(d, "p = tg_input 1x2\\ndata 1, 2\\ngrad 1, 2\"");
    box_labelled(d, "L = tg_mse 1x1\\ndata 2.5\\ngrad 1\"");
    box_labelled(d, "tg_constant 1x2\\ndata 0, 0\"");   /* no grad to draw */
    free_dot(d);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_large_tensors_show_their_first_four_values_and_an_ellipsis)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = tg_input(tape, 2, 3, (const float[]){ 1, 2, 3, 4, 5, 6 });
    tg_tensor *y = tg_tanh(tape, tg_constant(tape, 2, 2, (const float[]){ 0, 0, 0, 0 }));
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(y);
    char path[PATH_SIZE];
    scratch_path(path, "long.dot");
    ck_assert_int_eq(tg_tape_write_dot(tape, path, NULL, 0, NULL), 0);
    dot_file *d = read_dot(path);
    box_labelled(d, "tg_input 2x3\\ndata 1, 2, 3, 4, …\"");
    box_labelled(d, "tg_constant 2x2\\ndata 0, 0, 0, 0\"");
    /* computed from a constant alone: no grad, so dashed too */
    ck_assert_ptr_nonnull(strstr(box_labelled(d, "tg_tanh 2x2")->line, "style=dashed"));
    free_dot(d);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_names_are_escaped_for_dot)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = tg_input(tape, 1, 1, NULL);
    tg_named names[] = { { "say \"hi\"\\\nnow\t!", a } };
    char path[PATH_SIZE];
    scratch_path(path, "escaped.dot");
    ck_assert_int_eq(tg_tape_write_dot(tape, path, names, 1, NULL), 0);
    dot_file *d = read_dot(path);
    box_labelled(d, "say \\\"hi\\\"\\\\\\nnow ! = tg_input 1x1");
    free_dot(d);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_an_empty_tape_is_an_empty_graph)
{
    tg_tape *tape = tg_tape_new();
    char path[PATH_SIZE];
    scratch_path(path, "empty.dot");
    ck_assert_int_eq(tg_tape_write_dot(tape, path, NULL, 0, NULL), 0);
    dot_file *d = read_dot(path);
    ck_assert_int_eq(d->n_boxes, 0);
    ck_assert_int_eq(d->n_edges, 0);
    free_dot(d);
    tg_tape_free(tape);
}
END_TEST

static void assert_refused(const tg_tape *tape, const char *path, const tg_named *names, int n,
                           const char *want)
{
    tg_error err;
    strcpy(err.message, "left from before");
    ck_assert_int_eq(tg_tape_write_dot(tape, path, names, n, &err), -1);
    ck_assert_str_eq(err.message, want);
    ck_assert_int_eq(tg_tape_write_dot(tape, path, names, n, NULL), -1);
    scratch_dir_assert_holds(0);
}

START_TEST(test_refusals_are_reported_through_tg_error_and_write_nothing)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = tg_input(tape, 1, 1, NULL);
    char path[PATH_SIZE], missing[PATH_SIZE], want[2 * PATH_SIZE];
    scratch_path(path, "t.dot");
    scratch_path(missing, "missing/t.dot");
    assert_refused(tape, NULL, NULL, 0, "tg_tape_write_dot: path is NULL");
    snprintf(want, sizeof want, "%s: tape is NULL", path);
    assert_refused(NULL, path, NULL, 0, want);
    snprintf(want, sizeof want, "%s: n_names is negative (-1)", path);
    assert_refused(tape, path, NULL, -1, want);
    snprintf(want, sizeof want, "%s: names is NULL with n_names 2", path);
    assert_refused(tape, path, NULL, 2, want);
    tg_named bad[] = { { "a", a }, { "b", NULL } };
    snprintf(want, sizeof want, "%s: names[1] has a NULL tensor", path);
    assert_refused(tape, path, bad, 2, want);
    snprintf(want, sizeof want, "%s: cannot open for writing: No such file or directory", missing);
    assert_refused(tape, missing, NULL, 0, want);

    tg_error err;
    strcpy(err.message, "left from before");
    ck_assert_int_eq(tg_tape_write_dot(tape, path, bad, 1, &err), 0);
    ck_assert_str_eq(err.message, "");
    scratch_dir_assert_holds(1);
    tg_tape_free(tape);
}
END_TEST

/* Graphviz's own parser reads the RNN's file and one with escaped names; make check does not
 * need Graphviz, so without dot on the PATH this says so and checks nothing more. */
START_TEST(test_graphviz_reads_the_file_when_it_is_installed)
{
    if (system("command -v dot > /dev/null 2>&1") != 0) {
        printf("test_tape_dot: Graphviz's dot is not installed; the DOT files were not given to it\n");
        return;
    }
    rnn_run r = rnn_forward();
    ck_assert_int_eq(tg_backward(r.tape, r.loss), 0);
    tg_named names[] = { { "W_h \"quoted\" \\ back\nslash", r.cell->W_h }, { "h_3", r.h[STEPS] } };
    char path[PATH_SIZE], command[3 * PATH_SIZE];
    scratch_path(path, "rnn.dot");
    ck_assert_int_eq(tg_tape_write_dot(r.tape, path, names, 2, NULL), 0);
    snprintf(command, sizeof command, "dot -Tsvg '%s' -o /dev/null", path);
    ck_assert_int_eq(system(command), 0);
    rnn_free(&r);
}
END_TEST

Suite *tape_dot_suite(void)
{
    Suite *s = suite_create("tape_dot");
    TCase *tc = tcase_create("tape_dot");
    tcase_add_checked_fixture(tc, scratch_dir_make, scratch_dir_remove);
    tcase_add_test(tc, test_rnn_tape_has_a_box_per_node_and_parameter_and_an_edge_per_input);
    tcase_add_test(tc, test_grads_are_drawn_after_backward_and_not_before);
    tcase_add_test(tc, test_large_tensors_show_their_first_four_values_and_an_ellipsis);
    tcase_add_test(tc, test_names_are_escaped_for_dot);
    tcase_add_test(tc, test_an_empty_tape_is_an_empty_graph);
    tcase_add_test(tc, test_refusals_are_reported_through_tg_error_and_write_nothing);
    tcase_add_test(tc, test_graphviz_reads_the_file_when_it_is_installed);
    suite_add_tcase(s, tc);
    return s;
}
