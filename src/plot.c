/* plot.c: charts with no dependencies. tg_chart_write_svg draws a chart's series as a
 * standalone SVG line chart (frame, "nice" ticks on a linear or logarithmic y axis, grid,
 * one coloured line per series, with markers or dashed as the series asks, a legend);
 * tg_chart_write_csv writes the same points as a table; tg_heatmap_write_svg draws a grid of
 * values as coloured cells with the same axes and a colour bar. All refuse texts that are not
 * well-formed UTF-8, and write a temporary file next to the target and rename it into place,
 * so a failed write never leaves half a file behind. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "files.h"
#include "utf8.h"

/* ---- errors and output ------------------------------------------------------------------ */

/* An output file and the errno of its first failed write; once one write fails the rest
 * are skipped. */
typedef struct writer {
    FILE *file;
    bool failed;
    int error;
} writer;

static void put(writer *w, const char *fmt, ...)
{
    if (w->failed)
        return;
    va_list args;
    va_start(args, fmt);
    errno = 0;
    if (vfprintf(w->file, fmt, args) < 0) {
        w->failed = true;
        w->error = errno;
    }
    va_end(args);
}

/* Whether s starts with U+FFFE or U+FFFF (EF BF BE, EF BF BF), which XML 1.0 forbids. */
static bool is_xml_noncharacter(const char *s)
{
    return (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBF
           && ((unsigned char)s[2] == 0xBE || (unsigned char)s[2] == 0xBF);
}

/* s (well-formed UTF-8) as XML character data: markup characters escaped; control
 * characters as spaces (XML 1.0 forbids all but tab, LF and CR, and SVG shows those as
 * spaces anyway); U+FFFE and U+FFFF, which XML forbids too, as U+FFFD, the replacement
 * character. NULL is written as nothing. */
static void put_xml_text(writer *w, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': put(w, "&amp;"); break;
        case '<': put(w, "&lt;"); break;
        case '>': put(w, "&gt;"); break;
        case '"': put(w, "&quot;"); break;
        default:
            if (is_xml_noncharacter(s)) {
                put(w, "\xEF\xBF\xBD");
                s += 2;
            } else {
                put(w, "%c", (unsigned char)*s < 0x20 ? ' ' : *s);
            }
        }
    }
}

/* s as one CSV field (RFC 4180): in double quotes, with quotes doubled, when it holds a
 * comma, a quote or a line break. NULL is an empty field. */
static void put_csv_field(writer *w, const char *s)
{
    if (!s || !strpbrk(s, ",\"\r\n")) {
        put(w, "%s", s ? s : "");
        return;
    }
    put(w, "\"");
    for (; *s; s++) {
        if (*s == '"')
            put(w, "\"\"");
        else
            put(w, "%c", *s);
    }
    put(w, "\"");
}

/* ---- writing a file in one piece --------------------------------------------------------- */

typedef void (*body_writer)(writer *w, const tg_chart *chart);

typedef struct chart_file {
    const tg_chart *chart;
    body_writer body;
} chart_file;

static bool write_chart_body(FILE *file, void *ctx)
{
    chart_file *c = ctx;
    writer w = { file, false, 0 };
    c->body(&w, c->chart);
    errno = w.error;
    return !w.failed;
}

static int write_atomically(const char *path, const tg_chart *chart, body_writer body, tg_error *err)
{
    chart_file c = { chart, body };
    return tg_write_file_atomically(path, write_chart_body, &c, err);
}

/* 0 when text (NULL allowed) is well-formed UTF-8, else -1 with a message naming it ("the
 * title") and the offset of the first byte that is not. */
static int check_utf8(const char *text, const char *name, const char *path, tg_error *err)
{
    if (!text)
        return 0;
    size_t valid = tg_utf8_valid_prefix(text);
    if (text[valid] == '\0')
        return 0;
    return tg_error_set(err, path, "%s is not valid UTF-8 at byte %zu", name, valid);
}

/* 0 when every text of the chart is well-formed UTF-8, else -1 with the first that is not. */
static int check_texts(const tg_chart *chart, const char *path, tg_error *err)
{
    if (check_utf8(chart->title, "the title", path, err) != 0
        || check_utf8(chart->x_label, "the x label", path, err) != 0
        || check_utf8(chart->y_label, "the y label", path, err) != 0)
        return -1;
    for (int i = 0; i < chart->n_series; i++) {
        char name[32];
        snprintf(name, sizeof name, "series %d's label", i);
        if (check_utf8(chart->series[i].label, name, path, err) != 0)
            return -1;
    }
    return 0;
}

/* 0 when chart can be written to path, else -1 with the reason (fn names the call when
 * there is no path to name). */
static int check_arguments(const tg_chart *chart, const char *path, const char *fn,
                           tg_error *err)
{
    tg_error_clear(err);
    if (!path)
        return tg_error_set(err, fn, "path is NULL");
    if (!chart)
        return tg_error_set(err, path, "chart is NULL");
    if (chart->n_series < 0)
        return tg_error_set(err, path, "n_series is negative (%d)", chart->n_series);
    if (chart->n_series > 0 && !chart->series)
        return tg_error_set(err, path, "series is NULL with n_series %d", chart->n_series);
    for (int i = 0; i < chart->n_series; i++) {
        const tg_series *s = &chart->series[i];
        if (s->n < 0)
            return tg_error_set(err, path, "series %d: n is negative (%d)", i, s->n);
        if (s->n > 0 && (!s->x || !s->y))
            return tg_error_set(err, path, "series %d: x or y is NULL with n %d", i, s->n);
        if (s->style != TG_SERIES_LINE && s->style != TG_SERIES_MARKED
            && s->style != TG_SERIES_REFERENCE)
            return tg_error_set(err, path, "series %d: unknown style %d", i, (int)s->style);
    }
    return check_texts(chart, path, err);
}

/* ---- data ranges --------------------------------------------------------------------------- */

typedef struct range { double lo, hi; } range;   /* lo > hi: empty */

static const range EMPTY_RANGE = { INFINITY, -INFINITY };

/* A point is drawn when both coordinates are finite and, on a log axis, y > 0. */
static bool drawable(const tg_series *s, int i, bool log_y)
{
    return isfinite(s->x[i]) && isfinite(s->y[i]) && (!log_y || s->y[i] > 0);
}

static void extend(range *r, double v)
{
    r->lo = fmin(r->lo, v);
    r->hi = fmax(r->hi, v);
}

/* The ranges of x and y over every drawable point. */
static void data_ranges(const tg_chart *chart, range *x, range *y)
{
    *x = *y = EMPTY_RANGE;
    for (int k = 0; k < chart->n_series; k++) {
        const tg_series *s = &chart->series[k];
        for (int i = 0; i < s->n; i++) {
            if (drawable(s, i, chart->log_y)) {
                extend(x, s->x[i]);
                extend(y, s->y[i]);
            }
        }
    }
}

/* A range of positive width: no values give 0..1, one value v gives v +- 10% (+-1 at 0). */
static range widen(range r)
{
    if (r.lo > r.hi)
        return (range){ 0, 1 };
    if (r.lo == r.hi) {
        double d = r.lo == 0 ? 1 : fabs(r.lo) * 0.1;
        return (range){ r.lo - d, r.hi + d };
    }
    return r;
}

/* ---- axes and ticks ------------------------------------------------------------------------ */

#define MAX_TICKS 32
#define TICK_LABEL_SIZE 32

/* An axis runs from lo to hi in its own units: the value on a linear axis, log10 of the
 * value on a log axis. Ticks hold values. A linear axis labels them all alike, with
 * `decimals` digits after the point, in fixed or (very large or small values) scientific
 * notation. */
typedef struct axis {
    bool log, scientific;
    int decimals;
    double lo, hi;
    int n_ticks;
    double ticks[MAX_TICKS];
} axis;

/* The smallest of 1, 2 and 5 times a power of ten that is >= raw (raw > 0). */
static double nice_step(double raw)
{
    double magnitude = pow(10, floor(log10(raw)));
    double mantissa = raw / magnitude;
    return (mantissa <= 1 ? 1 : mantissa <= 2 ? 2 : mantissa <= 5 ? 5 : 10) * magnitude;
}

static void add_tick(axis *a, double v)
{
    if (a->n_ticks < MAX_TICKS)
        a->ticks[a->n_ticks++] = v;
}

/* How linear tick labels are printed: with the decimals the step needs, or in scientific
 * notation (2.5e7, -3e-8) for values from a million up or steps below 1e-5. */
static void choose_label_format(axis *a, double step)
{
    int largest_exponent = (int)floor(log10(fmax(fabs(a->lo), fabs(a->hi))) + 1e-9);
    int step_exponent = (int)floor(log10(step) + 1e-9);
    a->scientific = largest_exponent >= 6 || step_exponent < -5;
    int digits = a->scientific ? largest_exponent - step_exponent : -step_exponent;
    a->decimals = digits < 0 ? 0 : digits > 6 ? 6 : digits;
}

/* A linear axis over r with about `target` ticks at multiples of a 1-2-5 step; its ends
 * are the ticks just outside the data. */
static axis linear_axis(range r, int target)
{
    axis a = { .log = false };
    r = widen(r);
    double step = nice_step((r.hi - r.lo) / target);
    double first = floor(r.lo / step + 1e-9), last = ceil(r.hi / step - 1e-9);
    a.lo = first * step;
    a.hi = last * step;
    for (double k = first; k <= last; k++)
        add_tick(&a, k * step);
    choose_label_format(&a, step);
    return a;
}

/* A log axis over the positive range r, from a power of ten to a power of ten. Ticks at
 * 1, 2 and 5 times each power when it spans at most two decades, at every decade up to
 * ten decades, else at every 2nd, 5th, 10th... decade. */
static axis log_axis(range r)
{
    axis a = { .log = true };
    double lo = 0, hi = 1;
    if (r.lo <= r.hi) {
        lo = floor(log10(r.lo) + 1e-6);
        hi = ceil(log10(r.hi) - 1e-6);
        if (hi <= lo) {
            lo -= 1;
            hi += 1;
        }
    }
    double step = hi - lo <= 10 ? 1 : nice_step((hi - lo) / 8);
    a.lo = floor(lo / step) * step;
    a.hi = ceil(hi / step) * step;
    bool minor = a.hi - a.lo <= 2;
    for (double e = a.lo; e < a.hi; e += step) {
        add_tick(&a, pow(10, e));
        if (minor) {
            add_tick(&a, 2 * pow(10, e));
            add_tick(&a, 5 * pow(10, e));
        }
    }
    add_tick(&a, pow(10, a.hi));
    return a;
}

/* Where v lies along the axis: 0 at lo, 1 at hi. */
static double axis_fraction(const axis *a, double v)
{
    return ((a->log ? log10(v) : v) - a->lo) / (a->hi - a->lo);
}

/* A log tick m 10^e (m = 1, 2 or 5): plain decimals from 0.01 to 5000, else "me" + e. */
static void format_log_tick(char *buf, double v)
{
    int e = (int)floor(log10(v) + 1e-9);
    int m = (int)lround(v / pow(10, e));
    if (e >= -2 && e <= 3)
        snprintf(buf, TICK_LABEL_SIZE, "%.*f", e < 0 ? -e : 0, v);
    else
        snprintf(buf, TICK_LABEL_SIZE, "%de%d", m, e);
}

/* v in scientific notation with a short exponent: 2.5e7, -3e-8; zero as 0. */
static void format_scientific(char *buf, double v, int decimals)
{
    if (v == 0) {
        snprintf(buf, TICK_LABEL_SIZE, "0");
        return;
    }
    snprintf(buf, TICK_LABEL_SIZE, "%.*e", decimals, v);
    char *e = strchr(buf, 'e');
    int exponent = atoi(e + 1);
    snprintf(e, TICK_LABEL_SIZE - (size_t)(e - buf), "e%d", exponent);
}

static void format_tick(char *buf, const axis *a, int i)
{
    if (a->log)
        format_log_tick(buf, a->ticks[i]);
    else if (a->scientific)
        format_scientific(buf, a->ticks[i], a->decimals);
    else
        snprintf(buf, TICK_LABEL_SIZE, "%.*f", a->decimals, a->ticks[i]);
}

/* ---- layout -------------------------------------------------------------------------------- */

#define MIN_WIDTH 720.0
#define MIN_HEIGHT 440.0
#define MIN_PLOT_WIDTH 420.0
#define MARGIN 16.0
#define TOP 44.0               /* room for the title */
#define BOTTOM 56.0            /* room for the x tick labels and the x label */
#define TITLE_SIZE 16.0
#define LABEL_SIZE 13.0
#define TICK_SIZE 11.0
#define LEGEND_SIZE 12.0
#define LEGEND_ROW 18.0
#define LEGEND_SWATCH 28.0
#define TICK_LENGTH 5.0

/* The width of s in pixels at a font size, estimated: sans-serif digits are 0.55 em wide,
 * most letters less; UTF-8 continuation bytes do not count. */
static double text_width(const char *s, double font_size)
{
    int glyphs = 0;
    for (; s && *s; s++)
        glyphs += ((unsigned char)*s & 0xC0) != 0x80;
    return glyphs * font_size * 0.55;
}

static bool has_text(const char *s) { return s && *s; }

typedef struct layout {
    double width, height;               /* the canvas */
    double left, top, right, bottom;    /* the plot frame */
    double legend_width;                /* 0: no legend */
    bool has_points;                    /* some point is drawable */
    axis x, y;
} layout;

static double widest_tick_label(const axis *a, double font_size)
{
    double widest = 0;
    char label[TICK_LABEL_SIZE];
    for (int i = 0; i < a->n_ticks; i++) {
        format_tick(label, a, i);
        widest = fmax(widest, text_width(label, font_size));
    }
    return widest;
}

static int legend_rows(const tg_chart *chart)
{
    int rows = 0;
    for (int k = 0; k < chart->n_series; k++)
        rows += has_text(chart->series[k].label);
    return rows;
}

static double legend_width(const tg_chart *chart)
{
    double widest = 0;
    for (int k = 0; k < chart->n_series; k++)
        widest = fmax(widest, text_width(chart->series[k].label, LEGEND_SIZE));
    return widest > 0 ? 10 + LEGEND_SWATCH + 8 + widest + 10 : 0;
}

/* The linear x axis with the most ticks (up to 8) whose labels fit side by side. */
static axis fitting_x_axis(range r, double plot_width)
{
    for (int target = 8; target > 2; target--) {
        axis candidate = linear_axis(r, target);
        double widest = widest_tick_label(&candidate, TICK_SIZE);
        if (candidate.n_ticks * (widest + 12) <= plot_width)
            return candidate;
    }
    return linear_axis(r, 2);
}

static layout make_layout(const tg_chart *chart)
{
    layout l;
    range x, y;
    data_ranges(chart, &x, &y);
    l.has_points = x.lo <= x.hi;
    l.y = chart->log_y ? log_axis(y) : linear_axis(y, 6);
    l.left = MARGIN + (has_text(chart->y_label) ? LABEL_SIZE + 8 : 0)
             + widest_tick_label(&l.y, TICK_SIZE) + TICK_LENGTH + 4;
    l.legend_width = legend_width(chart);
    double legend_space = l.legend_width > 0 ? l.legend_width + MARGIN : 0;
    l.width = fmax(fmax(MIN_WIDTH, l.left + MIN_PLOT_WIDTH + legend_space + MARGIN),
                   text_width(chart->title, TITLE_SIZE) + 2 * MARGIN);
    l.height = fmax(MIN_HEIGHT, TOP + legend_rows(chart) * LEGEND_ROW + 12 + BOTTOM);
    l.top = TOP;
    l.right = l.width - MARGIN - legend_space;
    l.bottom = l.height - BOTTOM;
    l.x = fitting_x_axis(x, l.right - l.left);
    return l;
}

static double to_px(const layout *l, double x)
{
    return l->left + axis_fraction(&l->x, x) * (l->right - l->left);
}

static double to_py(const layout *l, double y)
{
    return l->bottom - axis_fraction(&l->y, y) * (l->bottom - l->top);
}

/* ---- SVG ------------------------------------------------------------------------------------ */

/* Okabe and Ito's colour-blind-safe palette (its yellow, too pale on white, replaced by
 * grey); series past the 8th reuse it with dashes. */
static const char *const COLOURS[] = { "#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                       "#E69F00", "#56B4E9", "#000000", "#999999" };
static const char *const DASHES[] = { "none", "7 4", "2 3", "9 3 2 3" };
#define N_COLOURS (int)(sizeof COLOURS / sizeof COLOURS[0])
#define N_DASHES (int)(sizeof DASHES / sizeof DASHES[0])

#define REFERENCE_DASHES "6 4"
#define MARKER_SIZE 3.5       /* a marker's half-width */

static const char *series_colour(int k) { return COLOURS[k % N_COLOURS]; }

static const char *series_dashes(const tg_series *s, int k)
{
    return s->style == TG_SERIES_REFERENCE ? REFERENCE_DASHES : DASHES[k / N_COLOURS % N_DASHES];
}

static double series_width(const tg_series *s) { return s->style == TG_SERIES_REFERENCE ? 1.2 : 1.8; }

/* A marker of series k's shape (circle, square, triangle, diamond, in turn) centred at (x, y). */
static void put_marker(writer *w, int k, double x, double y, const char *colour)
{
    double r = MARKER_SIZE;
    switch (k % 4) {
    case 0:
        put(w, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%.2f\"", x, y, r);
        break;
    case 1:
        put(w, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"", x - r * 0.9,
            y - r * 0.9, 1.8 * r, 1.8 * r);
        break;
    case 2:
        put(w, "<polygon points=\"%.2f,%.2f %.2f,%.2f %.2f,%.2f\"", x, y - 1.2 * r, x + 1.1 * r,
            y + 0.8 * r, x - 1.1 * r, y + 0.8 * r);
        break;
    default:
        put(w, "<polygon points=\"%.2f,%.2f %.2f,%.2f %.2f,%.2f %.2f,%.2f\"", x, y - 1.3 * r,
            x + 1.1 * r, y, x, y + 1.3 * r, x - 1.1 * r, y);
    }
    put(w, " fill=\"%s\" stroke=\"white\" stroke-width=\"0.8\" stroke-dasharray=\"none\"/>\n",
        colour);
}

static void put_header(writer *w, const layout *l)
{
    put(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    put(w, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
           "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" fill=\"#222222\">\n",
        l->width, l->height, l->width, l->height);
    put(w, "<rect width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", l->width, l->height);
}

/* Text at (x, y) with a text-anchor and font size. */
static void put_text(writer *w, double x, double y, const char *anchor, double size,
                     const char *text)
{
    put(w, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"%s\" font-size=\"%.0f\">", x, y, anchor,
        size);
    put_xml_text(w, text);
    put(w, "</text>\n");
}

static void put_line(writer *w, double x1, double y1, double x2, double y2)
{
    put(w, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x1, y1, x2, y2);
}

static void put_grid(writer *w, const layout *l)
{
    put(w, "<g stroke=\"#e6e6e6\" stroke-width=\"1\">\n");
    for (int i = 0; i < l->x.n_ticks; i++) {
        double px = to_px(l, l->x.ticks[i]);
        put_line(w, px, l->top, px, l->bottom);
    }
    for (int i = 0; i < l->y.n_ticks; i++) {
        double py = to_py(l, l->y.ticks[i]);
        put_line(w, l->left, py, l->right, py);
    }
    put(w, "</g>\n");
}

static void put_ticks(writer *w, const layout *l)
{
    char label[TICK_LABEL_SIZE];
    put(w, "<g stroke=\"#333333\" stroke-width=\"1\">\n");
    for (int i = 0; i < l->x.n_ticks; i++) {
        double px = to_px(l, l->x.ticks[i]);
        put_line(w, px, l->bottom, px, l->bottom + TICK_LENGTH);
    }
    for (int i = 0; i < l->y.n_ticks; i++) {
        double py = to_py(l, l->y.ticks[i]);
        put_line(w, l->left - TICK_LENGTH, py, l->left, py);
    }
    put(w, "</g>\n");
    for (int i = 0; i < l->x.n_ticks; i++) {
        format_tick(label, &l->x, i);
        put_text(w, to_px(l, l->x.ticks[i]), l->bottom + TICK_LENGTH + TICK_SIZE + 2, "middle",
                 TICK_SIZE, label);
    }
    for (int i = 0; i < l->y.n_ticks; i++) {
        format_tick(label, &l->y, i);
        put_text(w, l->left - TICK_LENGTH - 3, to_py(l, l->y.ticks[i]) + TICK_SIZE * 0.35,
                 "end", TICK_SIZE, label);
    }
}

static void put_frame_and_labels(writer *w, const layout *l, const tg_chart *chart)
{
    put(w, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" "
           "stroke=\"#333333\" stroke-width=\"1\"/>\n",
        l->left, l->top, l->right - l->left, l->bottom - l->top);
    if (has_text(chart->title)) {
        put(w, "<g font-weight=\"bold\">\n");
        put_text(w, l->width / 2, TOP - 18, "middle", TITLE_SIZE, chart->title);
        put(w, "</g>\n");
    }
    if (has_text(chart->x_label))
        put_text(w, (l->left + l->right) / 2, l->height - 12, "middle", LABEL_SIZE,
                 chart->x_label);
    if (has_text(chart->y_label)) {
        put(w, "<g transform=\"translate(%.2f %.2f) rotate(-90)\">\n", MARGIN + LABEL_SIZE - 2,
            (l->top + l->bottom) / 2);
        put_text(w, 0, 0, "middle", LABEL_SIZE, chart->y_label);
        put(w, "</g>\n");
    }
}

/* The end of the run of drawable points that starts at i. */
static int run_end(const tg_series *s, int i, bool log_y)
{
    while (i < s->n && drawable(s, i, log_y))
        i++;
    return i;
}

/* Points [from, to) of s: a polyline, or a dot when the run is a single point (and s has
 * no markers to show it). */
static void put_run(writer *w, const layout *l, const tg_series *s, int from, int to,
                    const char *colour)
{
    if (to - from == 1) {
        if (s->style == TG_SERIES_MARKED)
            return;
        put(w, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\" fill=\"%s\" stroke=\"none\"/>\n",
            to_px(l, s->x[from]), to_py(l, s->y[from]), colour);
        return;
    }
    put(w, "<polyline points=\"");
    for (int i = from; i < to; i++)
        put(w, "%s%.2f,%.2f", i > from ? " " : "", to_px(l, s->x[i]), to_py(l, s->y[i]));
    put(w, "\"/>\n");
}

/* One series: a polyline per run of drawable points, so the line breaks at the others, and
 * a marker on each drawable point when it asks for them. */
static void put_series(writer *w, const layout *l, const tg_chart *chart, int k)
{
    const tg_series *s = &chart->series[k];
    put(w, "<g fill=\"none\" stroke=\"%s\" stroke-width=\"%g\" stroke-dasharray=\"%s\" "
           "stroke-linejoin=\"round\" stroke-linecap=\"round\">\n",
        series_colour(k), series_width(s), series_dashes(s, k));
    for (int i = 0; i < s->n;) {
        if (!drawable(s, i, chart->log_y)) {
            i++;
            continue;
        }
        int end = run_end(s, i, chart->log_y);
        put_run(w, l, s, i, end, series_colour(k));
        i = end;
    }
    for (int i = 0; s->style == TG_SERIES_MARKED && i < s->n; i++)
        if (drawable(s, i, chart->log_y))
            put_marker(w, k, to_px(l, s->x[i]), to_py(l, s->y[i]), series_colour(k));
    put(w, "</g>\n");
}

/* A box right of the plot: a line sample and the label of each series that has a label. */
static void put_legend(writer *w, const layout *l, const tg_chart *chart)
{
    if (l->legend_width <= 0)
        return;
    double x = l->right + MARGIN, y = l->top;
    put(w, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"white\" "
           "stroke=\"#cccccc\"/>\n",
        x, y, l->legend_width, legend_rows(chart) * LEGEND_ROW + 12);
    double row_y = y + 6 + LEGEND_ROW / 2;
    for (int k = 0; k < chart->n_series; k++) {
        if (!has_text(chart->series[k].label))
            continue;
        const tg_series *s = &chart->series[k];
        put(w, "<g stroke=\"%s\" stroke-width=\"%g\" stroke-dasharray=\"%s\">\n",
            series_colour(k), series_width(s) + 0.2, series_dashes(s, k));
        put_line(w, x + 10, row_y, x + 10 + LEGEND_SWATCH, row_y);
        if (s->style == TG_SERIES_MARKED)
            put_marker(w, k, x + 10 + LEGEND_SWATCH / 2, row_y, series_colour(k));
        put(w, "</g>\n");
        put_text(w, x + 10 + LEGEND_SWATCH + 8, row_y + LEGEND_SIZE * 0.35, "start",
                 LEGEND_SIZE, chart->series[k].label);
        row_y += LEGEND_ROW;
    }
}

static void put_no_data_note(writer *w, const layout *l, const tg_chart *chart)
{
    put(w, "<g fill=\"#777777\">\n");
    put_text(w, (l->left + l->right) / 2, (l->top + l->bottom) / 2, "middle", LABEL_SIZE,
             chart->log_y ? "no finite positive points to draw" : "no finite points to draw");
    put(w, "</g>\n");
}

static void write_svg_body(writer *w, const tg_chart *chart)
{
    layout l = make_layout(chart);
    put_header(w, &l);
    put_grid(w, &l);
    put_ticks(w, &l);
    put_frame_and_labels(w, &l, chart);
    for (int k = 0; k < chart->n_series; k++)
        put_series(w, &l, chart, k);
    if (!l.has_points)
        put_no_data_note(w, &l, chart);
    put_legend(w, &l, chart);
    put(w, "</svg>\n");
}

int tg_chart_write_svg(const tg_chart *chart, const char *path, tg_error *err)
{
    if (check_arguments(chart, path, "tg_chart_write_svg", err) != 0)
        return -1;
    return write_atomically(path, chart, write_svg_body, err);
}

/* ---- CSV ------------------------------------------------------------------------------------ */

/* %.9g prints every float so that it reads back exactly. */
static void write_csv_body(writer *w, const tg_chart *chart)
{
    put(w, "series,x,y\n");
    for (int k = 0; k < chart->n_series; k++) {
        const tg_series *s = &chart->series[k];
        for (int i = 0; i < s->n; i++) {
            put_csv_field(w, s->label);
            put(w, ",%.9g,%.9g\n", (double)s->x[i], (double)s->y[i]);
        }
    }
}

int tg_chart_write_csv(const tg_chart *chart, const char *path, tg_error *err)
{
    if (check_arguments(chart, path, "tg_chart_write_csv", err) != 0)
        return -1;
    return write_atomically(path, chart, write_csv_body, err);
}

/* ---- heatmaps -------------------------------------------------------------------------------- */

#define HEATMAP_PLOT_WIDTH 540.0
#define HEATMAP_PLOT_HEIGHT 320.0
#define COLOUR_BAR_WIDTH 16.0
#define COLOUR_LEVELS 64       /* the colours a cell can take, so that equal neighbours merge */
#define MISSING_COLOUR "#bbbbbb"

/* viridis (van der Walt & Smith), sampled at 9 points: dark blue to yellow, its lightness
 * rising all the way, so that a lighter cell always means a larger value. */
static const unsigned char VIRIDIS[][3] = {
    { 68, 1, 84 },    { 71, 44, 122 },  { 59, 81, 139 },  { 44, 113, 142 }, { 33, 144, 141 },
    { 39, 173, 129 }, { 92, 200, 99 },  { 170, 220, 50 }, { 253, 231, 37 },
};
#define N_VIRIDIS (int)(sizeof VIRIDIS / sizeof VIRIDIS[0])

/* The colour of level 0..COLOUR_LEVELS-1 as #rrggbb, interpolated along VIRIDIS. */
static void level_colour(int level, char colour[8])
{
    double at = (double)level / (COLOUR_LEVELS - 1) * (N_VIRIDIS - 1);
    int i = at >= N_VIRIDIS - 1 ? N_VIRIDIS - 2 : (int)at;
    double f = at - i;
    int rgb[3];
    for (int c = 0; c < 3; c++)
        rgb[c] = (int)lround(VIRIDIS[i][c] + f * (VIRIDIS[i + 1][c] - VIRIDIS[i][c]));
    snprintf(colour, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

/* A value on the colour scale's own axis: log10 of it on a log scale, NaN when it has none. */
static double scale_value(const tg_heatmap *map, float v)
{
    if (!isfinite(v) || (map->log_values && v <= 0))
        return NAN;
    return map->log_values ? log10(v) : v;
}

/* The colour scale's ends on its own axis: lo..hi, or the range of the cells' values. */
static range colour_range(const tg_heatmap *map)
{
    if (map->lo < map->hi)
        return (range){ scale_value(map, map->lo), scale_value(map, map->hi) };
    range r = EMPTY_RANGE;
    for (long i = 0; i < (long)map->rows * map->cols; i++) {
        double v = scale_value(map, map->values[i]);
        if (!isnan(v))
            extend(&r, v);
    }
    return widen(r);
}

/* The colour level of a cell, -1 for a value that has none (drawn grey). */
static int cell_level(const tg_heatmap *map, range r, float value)
{
    double v = scale_value(map, value);
    if (isnan(v))
        return -1;
    double f = (v - r.lo) / (r.hi - r.lo);
    f = f < 0 ? 0 : f > 1 ? 1 : f;
    return (int)lround(f * (COLOUR_LEVELS - 1));
}

/* A linear axis over exactly lo..hi, with the 1-2-5 ticks that fall inside. */
static axis exact_axis(double lo, double hi, int target)
{
    axis a = linear_axis((range){ lo, hi }, target);
    int kept = 0;
    double slack = (hi - lo) * 1e-9;
    for (int i = 0; i < a.n_ticks; i++)
        if (a.ticks[i] >= lo - slack && a.ticks[i] <= hi + slack)
            a.ticks[kept++] = a.ticks[i];
    a.n_ticks = kept;
    a.lo = lo;
    a.hi = hi;
    return a;
}

/* The texts of a heatmap as a chart's, for the helpers the two share. */
static tg_chart heatmap_texts(const tg_heatmap *map)
{
    return (tg_chart){ map->title, map->x_label, map->y_label, 0, NULL, 0, };
}

static layout heatmap_layout(const tg_heatmap *map)
{
    layout l = { .has_points = true };
    l.y = exact_axis(map->y_min, map->y_max, 6);
    l.left = MARGIN + (has_text(map->y_label) ? LABEL_SIZE + 8 : 0)
             + widest_tick_label(&l.y, TICK_SIZE) + TICK_LENGTH + 4;
    l.top = TOP;
    l.right = l.left + HEATMAP_PLOT_WIDTH;
    l.bottom = l.top + HEATMAP_PLOT_HEIGHT;
    l.legend_width = COLOUR_BAR_WIDTH + 60 + (has_text(map->value_label) ? LABEL_SIZE + 8 : 0);
    l.width = fmax(l.right + MARGIN + l.legend_width + MARGIN,
                   text_width(map->title, TITLE_SIZE) + 2 * MARGIN);
    l.height = l.bottom + BOTTOM;
    l.x = exact_axis(map->x_min, map->x_max, 8);
    return l;
}

/* Row r's cells, each run of one colour as one rectangle, in grid units (a column wide and
 * a row high: the group around them scales them into place). */
static void put_heatmap_row(writer *w, const tg_heatmap *map, range scale, int r)
{
    const float *row = map->values + (size_t)r * (size_t)map->cols;
    for (int c = 0, end; c < map->cols; c = end) {
        int level = cell_level(map, scale, row[c]);
        for (end = c + 1; end < map->cols && cell_level(map, scale, row[end]) == level; end++)
            continue;
        char colour[8];
        if (level >= 0)
            level_colour(level, colour);
        put(w, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"1\" fill=\"%s\"/>\n", c, r,
            end - c, level >= 0 ? colour : MISSING_COLOUR);
    }
}

/* The colour bar right of the grid: every level, low at the bottom, with ticks on the scale's
 * own axis (powers of ten on a log scale) and value_label beside it. */
static void put_colour_bar(writer *w, const layout *l, const tg_heatmap *map, range scale)
{
    double x = l->right + MARGIN, h = (l->bottom - l->top) / COLOUR_LEVELS;
    put(w, "<g class=\"colour-bar\" stroke=\"none\">\n");
    for (int level = 0; level < COLOUR_LEVELS; level++) {
        char colour[8];
        level_colour(level, colour);
        put(w, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"/>\n", x,
            l->bottom - (level + 1) * h, COLOUR_BAR_WIDTH, h + 0.3, colour);
    }
    put(w, "</g>\n");
    axis a = exact_axis(scale.lo, scale.hi, 5);
    char label[TICK_LABEL_SIZE];
    for (int i = 0; i < a.n_ticks; i++) {
        double py = l->bottom - axis_fraction(&a, a.ticks[i]) * (l->bottom - l->top);
        put(w, "<g stroke=\"#333333\">\n");
        put_line(w, x + COLOUR_BAR_WIDTH, py, x + COLOUR_BAR_WIDTH + TICK_LENGTH, py);
        put(w, "</g>\n");
        if (map->log_values)
            snprintf(label, sizeof label, "1e%g", a.ticks[i]);
        else
            format_tick(label, &a, i);
        put_text(w, x + COLOUR_BAR_WIDTH + TICK_LENGTH + 3, py + TICK_SIZE * 0.35, "start",
                 TICK_SIZE, label);
    }
    if (has_text(map->value_label)) {
        put(w, "<g transform=\"translate(%.2f %.2f) rotate(90)\">\n", l->width - MARGIN - 4,
            (l->top + l->bottom) / 2);
        put_text(w, 0, 0, "middle", LABEL_SIZE, map->value_label);
        put(w, "</g>\n");
    }
}

static void write_heatmap_body(writer *w, const tg_heatmap *map)
{
    layout l = heatmap_layout(map);
    range scale = colour_range(map);
    tg_chart texts = heatmap_texts(map);
    put_header(w, &l);
    /* grid units to the frame: column c at left + c width, row r up from bottom */
    put(w, "<g class=\"cells\" stroke=\"none\" shape-rendering=\"crispEdges\" "
           "transform=\"translate(%.2f %.2f) scale(%.6g %.6g)\">\n",
        l.left, l.bottom, (l.right - l.left) / map->cols, -(l.bottom - l.top) / map->rows);
    for (int r = 0; r < map->rows; r++)
        put_heatmap_row(w, map, scale, r);
    put(w, "</g>\n");
    put_ticks(w, &l);
    put_frame_and_labels(w, &l, &texts);
    put_colour_bar(w, &l, map, scale);
    put(w, "</svg>\n");
}

/* 0 when map can be drawn to path, else -1 with the reason. */
static int check_heatmap(const tg_heatmap *map, const char *path, tg_error *err)
{
    tg_error_clear(err);
    if (!path)
        return tg_error_set(err, "tg_heatmap_write_svg", "path is NULL");
    if (!map)
        return tg_error_set(err, path, "map is NULL");
    if (map->rows < 1 || map->cols < 1
        || (long long)map->rows * map->cols > TG_HEATMAP_MAX_CELLS)
        return tg_error_set(err, path, "a grid of %d x %d cells (1 to %d cells)", map->rows,
                            map->cols, TG_HEATMAP_MAX_CELLS);
    if (!map->values)
        return tg_error_set(err, path, "values is NULL");
    if (!(isfinite(map->x_min) && isfinite(map->x_max) && map->x_min < map->x_max
          && isfinite(map->y_min) && isfinite(map->y_max) && map->y_min < map->y_max))
        return tg_error_set(err, path, "the extent x %g..%g, y %g..%g is not finite with min < max",
                            (double)map->x_min, (double)map->x_max, (double)map->y_min,
                            (double)map->y_max);
    if (!isfinite(map->lo) || !isfinite(map->hi)
        || (map->log_values && map->lo < map->hi && map->lo <= 0))
        return tg_error_set(err, path, "the colour range %g..%g is not finite%s",
                            (double)map->lo, (double)map->hi,
                            map->log_values ? " and positive on a log scale" : "");
    tg_chart texts = heatmap_texts(map);
    if (check_texts(&texts, path, err) != 0)
        return -1;
    return check_utf8(map->value_label, "the value label", path, err);
}

static bool write_heatmap_file(FILE *file, void *map)
{
    writer w = { file, false, 0 };
    write_heatmap_body(&w, map);
    errno = w.error;
    return !w.failed;
}

int tg_heatmap_write_svg(const tg_heatmap *map, const char *path, tg_error *err)
{
    if (check_heatmap(map, path, err) != 0)
        return -1;
    return tg_write_file_atomically(path, write_heatmap_file, (void *)map, err);
}
