/* test_plot.c: the chart and heatmap writers. Their SVG is well-formed XML (by a small checker
 * that is itself shown to reject malformed snippets), escapes markup in all text, has 1-2-5
 * and power-of-ten ticks, and breaks lines at the points it cannot draw; marked series carry
 * a marker per point and reference series are dashed; a heatmap's colours follow its values;
 * the CSV quotes labels and reads back exactly; a failure returns -1, names the path and
 * leaves no file behind. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scratch_dir.h"
#include "tapegrad.h"

/* ---- a small XML well-formedness checker ------------------------------------------------ */

#define XML_MAX_DEPTH 64
#define XML_MAX_ATTRIBUTES 32

typedef struct span { const char *s; size_t n; } span;

typedef struct xml {
    const char *p;               /* the next character to read */
    const char *error;           /* the first problem found, or NULL */
    span open[XML_MAX_DEPTH];    /* names of the elements open around p */
    int depth, roots;
} xml;

static bool xml_fail(xml *x, const char *why)
{
    if (!x->error)
        x->error = why;
    return false;
}

static bool is_xml_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
static bool is_name_start(char c) { return isalpha((unsigned char)c) || c == '_' || c == ':'; }

static bool is_name_char(char c)
{
    return is_name_start(c) || isdigit((unsigned char)c) || c == '-' || c == '.';
}

static bool span_eq(span a, span b) { return a.n == b.n && memcmp(a.s, b.s, a.n) == 0; }

static void skip_space(xml *x)
{
    while (is_xml_space(*x->p))
        x->p++;
}

static bool read_name(xml *x, span *name)
{
    if (!is_name_start(*x->p))
        return xml_fail(x, "expected a name");
    name->s = x->p;
    while (is_name_char(*x->p))
        x->p++;
    name->n = (size_t)(x->p - name->s);
    return true;
}

/* Moves past the first `end` found from `from` characters on. */
static bool skip_past(xml *x, size_t from, const char *end, const char *why)
{
    const char *found = strstr(x->p + from, end);
    if (!found)
        return xml_fail(x, why);
    x->p = found + strlen(end);
    return true;
}

/* At '&': one of the five predefined entities or a character reference. */
static bool read_reference(xml *x)
{
    static const char *const entities[] = { "&amp;", "&lt;", "&gt;", "&quot;", "&apos;" };
    for (size_t i = 0; i < sizeof entities / sizeof entities[0]; i++) {
        if (strncmp(x->p, entities[i], strlen(entities[i])) == 0) {
            x->p += strlen(entities[i]);
            return true;
        }
    }
    if (x->p[1] == '#') {
        const char *q = x->p + 2;
        bool hex = *q == 'x';
        if (hex)
            q++;
        const char *digits = q;
        while (hex ? isxdigit((unsigned char)*q) : isdigit((unsigned char)*q))
            q++;
        if (q > digits && *q == ';') {
            x->p = q + 1;
            return true;
        }
    }
    return xml_fail(x, "'&' that starts no reference");
}

static bool read_attribute_value(xml *x)
{
    char quote = *x->p;
    if (quote != '"' && quote != '\'')
        return xml_fail(x, "unquoted attribute value");
    x->p++;
    while (*x->p != quote) {
        if (*x->p == '\0')
            return xml_fail(x, "unterminated attribute value");
        if (*x->p == '<')
            return xml_fail(x, "'<' in an attribute value");
        if (*x->p != '&')
            x->p++;
        else if (!read_reference(x))
            return false;
    }
    x->p++;
    return true;
}

/* Attributes up to '>' or '/>': space, name, '=', quoted value; each name once. */
static bool read_attributes(xml *x)
{
    span seen[XML_MAX_ATTRIBUTES];
    int n = 0;
    for (;;) {
        const char *before = x->p;
        skip_space(x);
        if (*x->p == '>' || (x->p[0] == '/' && x->p[1] == '>'))
            return true;
        if (x->p == before)
            return xml_fail(x, "no space before an attribute");
        span name;
        if (!read_name(x, &name))
            return false;
        for (int i = 0; i < n; i++)
            if (span_eq(seen[i], name))
                return xml_fail(x, "repeated attribute");
        if (n == XML_MAX_ATTRIBUTES)
            return xml_fail(x, "too many attributes");
        seen[n++] = name;
        skip_space(x);
        if (*x->p != '=')
            return xml_fail(x, "attribute without '='");
        x->p++;
        skip_space(x);
        if (!read_attribute_value(x))
            return false;
    }
}

/* At '<': a start tag or an empty-element tag. */
static bool read_start_tag(xml *x)
{
    if (x->depth == 0 && x->roots++ > 0)
        return xml_fail(x, "more than one root element");
    span name;
    x->p++;
    if (!read_name(x, &name) || !read_attributes(x))
        return false;
    if (*x->p == '/') {
        x->p += 2;
        return true;
    }
    x->p++;
    if (x->depth == XML_MAX_DEPTH)
        return xml_fail(x, "nested too deep");
    x->open[x->depth++] = name;
    return true;
}

/* At '</': must close the innermost open element. */
static bool read_end_tag(xml *x)
{
    span name;
    x->p += 2;
    if (!read_name(x, &name))
        return false;
    skip_space(x);
    if (*x->p != '>')
        return xml_fail(x, "end tag without '>'");
    x->p++;
    if (x->depth == 0 || !span_eq(x->open[x->depth - 1], name))
        return xml_fail(x, "end tag that does not match the open element");
    x->depth--;
    return true;
}

/* One tag, comment, processing instruction, reference or character at x->p. */
static bool read_node(xml *x)
{
    if (strncmp(x->p, "<!--", 4) == 0)
        return skip_past(x, 4, "-->", "unterminated comment");
    if (strncmp(x->p, "<?", 2) == 0)
        return skip_past(x, 2, "?>", "unterminated processing instruction");
    if (strncmp(x->p, "</", 2) == 0)
        return read_end_tag(x);
    if (*x->p == '<')
        return read_start_tag(x);
    if (x->depth == 0 && !is_xml_space(*x->p))
        return xml_fail(x, "text outside the root element");
    if (*x->p == '&')
        return read_reference(x);
    x->p++;
    return true;
}

/* The offset of the first byte of doc that does not begin a UTF-8 character that XML 1.0
 * allows (Char: tab, LF, CR, U+0020..U+D7FF, U+E000..U+FFFD, U+10000..U+10FFFF; no overlong
 * forms), or -1 when there is none. Decoded here, apart from the library's own check. */
static long first_bad_character(const char *doc)
{
    static const uint32_t least[] = { 0, 0, 0x80, 0x800, 0x10000 };
    const unsigned char *p = (const unsigned char *)doc;
    for (long i = 0; p[i];) {
        unsigned lead = p[i];
        int len = lead < 0x80 ? 1 : lead >= 0xC0 && lead < 0xE0 ? 2 : lead >= 0xE0 && lead < 0xF0 ? 3
                : lead >= 0xF0 && lead < 0xF8 ? 4 : 0;
        if (len == 0)
            return i;
        uint32_t code = len == 1 ? lead : lead & (0x7Fu >> len);
        for (int k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return i;
            code = code << 6 | (p[i + k] & 0x3Fu);
        }
        bool allowed = code == 0x9 || code == 0xA || code == 0xD || (code >= 0x20 && code <= 0xD7FF)
                       || (code >= 0xE000 && code <= 0xFFFD) || (code >= 0x10000 && code <= 0x10FFFF);
        if (code < least[len] || !allowed)
            return i;
        i += len;
    }
    return -1;
}

/* NULL when doc is a well-formed XML document in UTF-8 that opens with an XML declaration,
 * else the first problem found; *at is where. (No DTD, CDATA or non-ASCII names: stricter
 * than XML.) */
static const char *xml_problem(const char *doc, long *at)
{
    xml x = { .p = doc };
    long bad = first_bad_character(doc);
    if (bad >= 0) {
        *at = bad;
        return "not UTF-8, or a character XML 1.0 does not allow";
    }
    if (strncmp(doc, "<?xml version=", 14) != 0)
        xml_fail(&x, "no XML declaration at the start");
    else
        skip_past(&x, 2, "?>", "unterminated XML declaration");
    while (!x.error && *x.p)
        read_node(&x);
    if (x.depth > 0)
        xml_fail(&x, "an element is not closed");
    if (x.roots == 0)
        xml_fail(&x, "no root element");
    *at = (long)(x.p - doc);
    return x.error;
}

static void assert_well_formed(const char *doc)
{
    long at;
    const char *problem = xml_problem(doc, &at);
    ck_assert_msg(problem == NULL, "not well-formed XML: %s at offset %ld: \"%.60s\"", problem,
                  at, doc + at);
}

/* ---- files ----------------------------------------------------------------------------- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *text = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq((long)fread(text, 1, (size_t)size, f), size);
    text[size] = '\0';
    fclose(f);
    return text;
}

static char *write_and_read_svg(const tg_chart *chart)
{
    char path[PATH_SIZE];
    tg_error err = { "" };
    int rc = tg_chart_write_svg(chart, scratch_path(path, "chart.svg"), &err);
    ck_assert_msg(rc == 0, "tg_chart_write_svg failed: %s", err.message);
    return read_file(path);
}

static char *write_and_read_csv(const tg_chart *chart)
{
    char path[PATH_SIZE];
    tg_error err = { "" };
    int rc = tg_chart_write_csv(chart, scratch_path(path, "chart.csv"), &err);
    ck_assert_msg(rc == 0, "tg_chart_write_csv failed: %s", err.message);
    return read_file(path);
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* No coordinate or label came out as nan or inf. */
static void assert_no_nonfinite_numbers(const char *doc)
{
    ck_assert_msg(strstr(doc, "nan") == NULL, "\"nan\" in the SVG");
    ck_assert_msg(strstr(doc, "inf") == NULL, "\"inf\" in the SVG");
}

static const float XS[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 };

/* ---- the checker itself ------------------------------------------------------------------ */

START_TEST(test_xml_checker_accepts_well_formed_and_rejects_malformed_snippets)
{
    static const char *const malformed[] = {
        "<a></a>",                                          /* no declaration */
        "\n<?xml version=\"1.0\"?><a/>",                    /* declaration not first */
        "<?xml version=\"1.0\"?>",                          /* no root */
        "<?xml version=\"1.0\"?><a/><b/>",                  /* two roots */
        "<?xml version=\"1.0\"?>text<a/>",                  /* text outside the root */
        "<?xml version=\"1.0\"?><a><b></a></b>",            /* bad nesting */
        "<?xml version=\"1.0\"?><a><b></b>",                /* not closed */
        "<?xml version=\"1.0\"?><a></a></a>",               /* closed twice */
        "<?xml version=\"1.0\"?><a x=1/>",                  /* unquoted attribute */
        "<?xml version=\"1.0\"?><a x=\"1/>",                /* unterminated attribute */
        "<?xml version=\"1.0\"?><a x=\"<\"/>",              /* '<' in an attribute */
        "<?xml version=\"1.0\"?><a x=\"1\" x=\"2\"/>",      /* repeated attribute */
        "<?xml version=\"1.0\"?><a x=\"1\"y=\"2\"/>",       /* no space between attributes */
        "<?xml version=\"1.0\"?><a>1 < 2</a>",              /* raw '<' in text */
        "<?xml version=\"1.0\"?><a>R&D</a>",                /* bare '&' in text */
        "<?xml version=\"1.0\"?><a x=\"R&D\"/>",            /* bare '&' in an attribute */
        "<?xml version=\"1.0\"?><a><!-- open </a>",         /* unterminated comment */
        "<?xml version=\"1.0\"?><a>\x01</a>",               /* a control character */
        "<?xml version=\"1.0\"?><a>\xEF\xBF\xBF</a>",       /* U+FFFF */
        "<?xml version=\"1.0\"?><a>\xED\xA0\x80</a>",       /* a surrogate: not UTF-8 */
        "<?xml version=\"1.0\"?><a>\xC3</a>",               /* a cut-off character */
        "<?xml version=\"1.0\"?><a>\xC0\xBC</a>",           /* an overlong '<' */
    };
    long at;
    const char *good = "<?xml version=\"1.0\"?>\n<!-- c --><a x=\"1\" y='&amp;&#60;&#x3C;'>"
                       "<b/>t &lt; &gt; &quot; > u<c></c>\t\r é 損 😀 \xEF\xBF\xBD</a>\n";
    ck_assert_ptr_null(xml_problem(good, &at));
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++)
        ck_assert_msg(xml_problem(malformed[i], &at) != NULL, "accepted: %s", malformed[i]);
}
END_TEST

/* ---- SVG -------------------------------------------------------------------------------- */

/* The attributes of the last <g> opened before `at`, up to its '>'. */
static span enclosing_group(const char *doc, const char *at)
{
    const char *g = NULL;
    for (const char *p = strstr(doc, "<g "); p && p < at; p = strstr(p + 1, "<g "))
        g = p;
    ck_assert_ptr_nonnull(g);
    return (span){ g, (size_t)(strchr(g, '>') - g) };
}

/* Every polyline of a different series is drawn in a different style (stroke colour and
 * dashes, set on the series' group). */
static void assert_series_styles_differ(const char *doc, int n_series)
{
    span style[64];
    int n = 0;
    for (const char *p = strstr(doc, "<polyline"); p; p = strstr(p + 1, "<polyline")) {
        ck_assert_int_lt(n, 64);
        style[n++] = enclosing_group(doc, p);
    }
    ck_assert_int_eq(n, n_series);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            ck_assert_msg(!span_eq(style[i], style[j]), "series %d and %d look alike: %.*s", j,
                          i, (int)style[i].n, style[i].s);
}

START_TEST(test_svg_is_well_formed_with_frame_axes_lines_and_legend)
{
    const float a[] = { 0.1f, 0.4f, 0.9f, 1.6f }, b[] = { 2, 1, 0, -1 }, c[] = { 5, 5, 4, 4 };
    tg_series series[] = { { "alpha", XS, a, 4, TG_SERIES_LINE }, { "beta", XS, b, 4, TG_SERIES_LINE }, { "gamma", XS, c, 4, TG_SERIES_LINE } };
    tg_chart chart = { "Loss", "epoch", "value", 0, series, 3 };
    char *doc = write_and_read_svg(&chart);
    assert_well_formed(doc);
    ck_assert_msg(strncmp(doc, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg ", 44) == 0,
                  "starts: %.60s", doc);
    ck_assert_ptr_nonnull(strstr(doc, "xmlns=\"http://www.w3.org/2000/svg\""));
    ck_assert_ptr_nonnull(strstr(doc, "viewBox=\"0 0 "));
    ck_assert_int_eq(count_of(doc, "<polyline"), 3);
    for (size_t i = 0; i < 3; i++)
        ck_assert_int_eq(count_of(doc, series[i].label), 1);
    ck_assert_int_eq(count_of(doc, ">Loss</text>"), 1);
    ck_assert_int_eq(count_of(doc, ">epoch</text>"), 1);
    ck_assert_int_eq(count_of(doc, ">value</text>"), 1);
    assert_series_styles_differ(doc, 3);
    assert_no_nonfinite_numbers(doc);
    free(doc);
}
END_TEST

START_TEST(test_svg_gives_twelve_series_twelve_distinct_styles)
{
    float ys[12][3];
    tg_series series[12];
    for (int k = 0; k < 12; k++) {
        for (int i = 0; i < 3; i++)
            ys[k][i] = (float)(k + i);
        series[k] = (tg_series){ "s", XS, ys[k], 3, TG_SERIES_LINE };
    }
    tg_chart chart = { "many", "x", "y", 0, series, 12 };
    char *doc = write_and_read_svg(&chart);
    assert_well_formed(doc);
    assert_series_styles_differ(doc, 12);
    free(doc);
}
END_TEST

START_TEST(test_svg_escapes_markup_in_title_axis_labels_and_legend)
{
    const float y[] = { 1, 2 };
    tg_series series[] = { { "\"q\" <&> tab\there\x01", XS, y, 2, TG_SERIES_LINE } };
    tg_chart chart = { "a<b> & \"c\"", "x & y", "<y>", 0, series, 1 };
    char *doc = write_and_read_svg(&chart);
    assert_well_formed(doc);
    ck_assert_int_eq(count_of(doc, ">a&lt;b&gt; &amp; &quot;c&quot;</text>"), 1);
    ck_assert_int_eq(count_of(doc, ">x &amp; y</text>"), 1);
    ck_assert_int_eq(count_of(doc, ">&lt;y&gt;</text>"), 1);
    ck_assert_int_eq(count_of(doc, ">&quot;q&quot; &lt;&amp;&gt; tab here </text>"), 1);
    ck_assert_ptr_null(strstr(doc, "<b>"));
    ck_assert_ptr_null(strstr(doc, "<y>"));
    for (const char *p = doc; *p; p++)
        ck_assert_msg((unsigned char)*p >= 0x20 || *p == '\n', "control character %d at %ld",
                      *p, (long)(p - doc));
    free(doc);
}
END_TEST

/* 2-, 3- and 4-byte characters, and the last code points before the surrogates (U+D7FF),
 * after them (U+E000) and of all (U+10FFFF), come out byte for byte. */
START_TEST(test_svg_writes_multibyte_utf8_labels_exactly)
{
    const float y[] = { 1, 2 };
    tg_series series[] = { { "λ = 0.5 ✓", XS, y, 2, TG_SERIES_LINE } };
    tg_chart chart = { "Verlust über Zeit – 損失 (𝜃 → ∞) 😀", "température °C",
                       "\xED\x9F\xBF \xEE\x80\x80 \xF4\x8F\xBF\xBF", 0, series, 1 };
    char *doc = write_and_read_svg(&chart);
    assert_well_formed(doc);
    ck_assert_int_eq(count_of(doc, ">Verlust über Zeit – 損失 (𝜃 → ∞) 😀</text>"), 1);
    ck_assert_int_eq(count_of(doc, ">température °C</text>"), 1);
    ck_assert_int_eq(count_of(doc, ">\xED\x9F\xBF \xEE\x80\x80 \xF4\x8F\xBF\xBF</text>"), 1);
    ck_assert_int_eq(count_of(doc, ">λ = 0.5 ✓</text>"), 1);
    free(doc);
}
END_TEST

/* XML 1.0 allows no control character but tab, LF and CR, nor U+FFFE or U+FFFF: the first
 * become spaces (all of them, as SVG shows the three it allows as spaces anyway), the others
 * U+FFFD; U+FFFD itself and the characters next to U+FFFE stay as they are. */
START_TEST(test_svg_replaces_characters_that_xml_forbids)
{
    const float y[] = { 1, 2 };
    tg_series series[] = { { "\xEF\xBF\xBD \xEF\xBF\xBD \xEF\xBF\xBC", XS, y, 2, TG_SERIES_LINE } };
    tg_chart chart = { "a\x01" "b\x1F" "c\td\ne\rf\x7F", "\xEF\xBF\xBE or \xEF\xBF\xBF", NULL, 0, series, 1 };
    char *doc = write_and_read_svg(&chart);
    assert_well_formed(doc);
    ck_assert_int_eq(count_of(doc, ">a b c d e f\x7F</text>"), 1);
    ck_assert_int_eq(count_of(doc, ">\xEF\xBF\xBD or \xEF\xBF\xBD</text>"), 1);
    ck_assert_int_eq(count_of(doc, ">\xEF\xBF\xBD \xEF\xBF\xBD \xEF\xBF\xBC</text>"), 1);
    free(doc);
}
END_TEST

START_TEST(test_svg_breaks_lines_at_nan_and_inf)
{
    const float y[] = { 1, 2, NAN, 3, 4, INFINITY, 5, 6, -INFINITY, 7 };
    const float gx[] = { 0, NAN, 2, 3 }, gy[] = { 1, 1, 2, 3 };
    tg_series series[] = { { "gaps in y", XS, y, 10, TG_SERIES_LINE }, { "gap in x", gx, gy, 4, TG_SERIES_LINE } };
    tg_chart chart = { "gaps", "x", "y", 0, series, 2 };
    char *doc = write_and_read_svg(&chart);
    assert_well_formed(doc);
    /* y: runs {1,2} {3,4} {5,6} {7}; x: runs {0} {2,3}. A lone point is a dot. */
    ck_assert_int_eq(count_of(doc, "<polyline"), 3 + 1);
    ck_assert_int_eq(count_of(doc, "<circle"), 1 + 1);
    assert_no_nonfinite_numbers(doc);
    free(doc);
}
END_TEST

START_TEST(test_svg_log_y_leaves_out_nonpositive_values)
{
    const float y[] = { 1, 0.1f, -1, 0.01f, 1e-3f, 0, 1e-4f, 1e-5f, NAN, 1e-6f };
    tg_series series[] = { { "decay", XS, y, 10, TG_SERIES_LINE } };
    tg_chart chart = { "log", "step", "norm", 1, series, 1 };
    char *doc = write_and_read_svg(&chart);
    assert_well_formed(doc);
    /* runs {1, 0.1} {0.01, 1e-3} {1e-4, 1e-5} {1e-6} */
    ck_assert_int_eq(count_of(doc, "<polyline"), 3);
    ck_assert_int_eq(count_of(doc, "<circle"), 1);
    assert_no_nonfinite_numbers(doc);
    free(doc);
}
END_TEST

START_TEST(test_svg_log_ticks_are_powers_of_ten_labelled_readably)
{
    const float y[] = { 1e-6f, 3e-4f, 0.05f, 7.0f, 100.0f };
    tg_series series[] = { { "norm", XS, y, 5, TG_SERIES_LINE } };
    tg_chart chart = { "log", "step", "norm", 1, series, 1 };
    char *doc = write_and_read_svg(&chart);
    static const char *const labels[] = { ">1e-6</text>", ">1e-5</text>", ">1e-4</text>",
                                          ">1e-3</text>", ">0.01</text>", ">0.1</text>",
                                          ">1</text>", ">10</text>", ">100</text>" };
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
        ck_assert_msg(count_of(doc, labels[i]) == 1, "no tick label %s", labels[i]);
    free(doc);
}
END_TEST

/* The y tick labels (the only right-aligned text), as numbers, in the order written; each
 * label is at most 8 characters long. */
static int y_tick_values(const char *doc, double *values, int max)
{
    int n = 0;
    const char *mark = "text-anchor=\"end\" font-size=\"11\">";
    for (const char *p = strstr(doc, mark); p && n < max; p = strstr(p + 1, mark)) {
        const char *label = p + strlen(mark);
        size_t length = strcspn(label, "<");
        ck_assert_msg(length <= 8, "long tick label %.*s", (int)length, label);
        values[n++] = strtod(label, NULL);
    }
    return n;
}

/* The ticks have one step, 1, 2 or 5 times a power of ten, and enclose [lo, hi]. */
static void assert_nice_ticks_cover(float lo, float hi)
{
    const float y[] = { lo, hi };
    tg_series series[] = { { "s", XS, y, 2, TG_SERIES_LINE } };
    tg_chart chart = { "t", "x", "y", 0, series, 1 };
    char *doc = write_and_read_svg(&chart);
    double v[64];
    int n = y_tick_values(doc, v, 64);
    ck_assert_int_ge(n, 3);
    ck_assert_int_le(n, 12);
    double step = v[1] - v[0];
    double mantissa = step / pow(10, floor(log10(step)));
    ck_assert_msg(fabs(mantissa - 1) < 1e-6 || fabs(mantissa - 2) < 1e-6 ||
                      fabs(mantissa - 5) < 1e-6,
                  "step %g for [%g, %g]", step, lo, hi);
    for (int i = 1; i < n; i++)
        ck_assert_msg(fabs(v[i] - v[i - 1] - step) < 1e-6 * step, "uneven ticks for [%g, %g]",
                      lo, hi);
    ck_assert_msg(v[0] <= lo && v[n - 1] >= hi, "ticks %g..%g do not cover [%g, %g]", v[0],
                  v[n - 1], lo, hi);
    free(doc);
}

START_TEST(test_svg_linear_ticks_step_by_1_2_or_5_cover_the_data_and_stay_short)
{
    assert_nice_ticks_cover(0, 0.87f);
    assert_nice_ticks_cover(-3.2f, 117);
    assert_nice_ticks_cover(0.25f, 0.25f);
    assert_nice_ticks_cover(1000, 1003.5f);
    assert_nice_ticks_cover(-0.004f, -0.001f);
    assert_nice_ticks_cover(-3e7f, 2.9e7f);
    assert_nice_ticks_cover(1e6f, 7.2e6f);
    assert_nice_ticks_cover(-2e-8f, 1.5e-8f);
}
END_TEST

START_TEST(test_svg_degenerate_and_extreme_ranges_give_finite_coordinates)
{
    const float one[] = { 3 }, flat[] = { 2, 2, 2 }, same_x[] = { 4, 4, 4 }, rising[] = { 1, 2, 3 };
    const float huge[] = { -FLT_MAX, FLT_MAX, 0 }, tiny[] = { FLT_TRUE_MIN, 2 * FLT_TRUE_MIN, 0 };
    const tg_series cases[][1] = {
        { { "single point", one, one, 1, TG_SERIES_LINE } }, { { "flat", XS, flat, 3, TG_SERIES_LINE } },
        { { "same x", same_x, rising, 3, TG_SERIES_LINE } }, { { "huge", XS, huge, 3, TG_SERIES_LINE } },
        { { "tiny", XS, tiny, 3, TG_SERIES_LINE } },         { { "zero points", XS, one, 0, TG_SERIES_LINE } },
    };
    for (int log_y = 0; log_y <= 1; log_y++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            tg_chart chart = { cases[i][0].label, "x", "y", log_y, cases[i], 1 };
            char *doc = write_and_read_svg(&chart);
            assert_well_formed(doc);
            assert_no_nonfinite_numbers(doc);
            free(doc);
        }
    }
}
END_TEST

START_TEST(test_svg_without_drawable_points_has_axes_and_a_note)
{
    const float nan3[] = { NAN, NAN, NAN }, negative[] = { -1, 0, -3 };
    tg_series all_nan[] = { { "nothing", XS, nan3, 3, TG_SERIES_LINE } };
    tg_series nonpositive[] = { { "nothing positive", XS, negative, 3, TG_SERIES_LINE } };
    const tg_chart charts[] = { { "empty", "x", "y", 0, NULL, 0 },
                                { "not a number", "x", "y", 0, all_nan, 1 },
                                { "log of negatives", "x", "y", 1, nonpositive, 1 },
                                { NULL, NULL, NULL, 1, NULL, 0 } };
    for (size_t i = 0; i < sizeof charts / sizeof charts[0]; i++) {
        char *doc = write_and_read_svg(&charts[i]);
        assert_well_formed(doc);
        ck_assert_int_eq(count_of(doc, "<polyline"), 0);
        ck_assert_int_eq(count_of(doc, "<circle"), 0);
        ck_assert_int_eq(count_of(doc, "points to draw</text>"), 1);
        ck_assert_int_ge(count_of(doc, "<line "), 4);  /* tick marks */
        ck_assert_int_ge(count_of(doc, "<rect "), 2);  /* background and frame */
        assert_no_nonfinite_numbers(doc);
        free(doc);
    }
}
END_TEST

/* ---- SVG: series styles ---------------------------------------------------------------- */

/* Whether the span holds needle. */
static bool span_has(span s, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= s.n; i++)
        if (memcmp(s.s + i, needle, n) == 0)
            return true;
    return false;
}

/* The group (its opening tag) that holds the first polyline after from. */
static span group_of_polyline(const char *from)
{
    return enclosing_group(from, strstr(from, "<polyline"));
}

START_TEST(test_svg_marked_series_have_a_marker_per_drawable_point_shaped_per_series)
{
    const float a[] = { 1, 2, 3, 4 }, b[] = { 1, NAN, 3, 4 }, c[] = { 4, 3, 2, 1 };
    tg_series series[] = { { "circles", XS, a, 4, TG_SERIES_MARKED },
                           { "squares", XS, b, 4, TG_SERIES_MARKED },
                           { "plain", XS, c, 4, TG_SERIES_LINE } };
    tg_chart chart = { "markers", "x", "y", 0, series, 3 };
    char *doc = write_and_read_svg(&chart);
    assert_well_formed(doc);
    /* 4 + 3 drawable points, and one marker in each marked series' legend row */
    ck_assert_int_eq(count_of(doc, "stroke=\"white\" stroke-width=\"0.8\""), 4 + 3 + 2);
    ck_assert_int_eq(count_of(doc, "<circle"), 4 + 1);
    ck_assert_int_eq(count_of(doc, "<rect x=") - count_of(doc, "fill=\"none\" stroke=\"#333333\"")
                     - count_of(doc, "stroke=\"#cccccc\""), 3 + 1);
    /* the NaN leaves the second series' first point alone: its marker, and no dot */
    ck_assert_int_eq(count_of(doc, "<polyline"), 3);
    free(doc);
}
END_TEST

START_TEST(test_svg_reference_series_is_thin_dashed_and_without_markers)
{
    const float y[] = { 2, 3, 5 }, level[] = { 1, 1, 1 };
    tg_series series[] = { { "data", XS, y, 3, TG_SERIES_LINE },
                           { "baseline", XS, level, 3, TG_SERIES_REFERENCE } };
    tg_chart chart = { "reference", "x", "y", 0, series, 2 };
    char *doc = write_and_read_svg(&chart);
    assert_well_formed(doc);
    span line = group_of_polyline(doc);
    span reference = group_of_polyline(strstr(doc, "<polyline") + 1);
    ck_assert_msg(span_has(line, "stroke-dasharray=\"none\""), "%.*s", (int)line.n, line.s);
    ck_assert_msg(span_has(reference, "stroke-dasharray=\"6 4\"")
                      && span_has(reference, "stroke-width=\"1.2\""),
                  "%.*s", (int)reference.n, reference.s);
    ck_assert_int_eq(count_of(doc, "stroke=\"white\" stroke-width=\"0.8\""), 0);
    ck_assert_int_eq(count_of(doc, "stroke-dasharray=\"6 4\""), 2);   /* line and legend */
    free(doc);
}
END_TEST

/* ---- heatmaps ---------------------------------------------------------------------------- */

static char *write_and_read_heatmap(const tg_heatmap *map)
{
    char path[PATH_SIZE];
    tg_error err = { "" };
    int rc = tg_heatmap_write_svg(map, scratch_path(path, "map.svg"), &err);
    ck_assert_msg(rc == 0, "tg_heatmap_write_svg failed: %s", err.message);
    return read_file(path);
}

/* The fill colours of the cells' rectangles, in the order written (row 0 first), into
 * fills[][8]; returns how many. */
static int cell_fills(const char *doc, char fills[][8], int max)
{
    const char *p = strstr(doc, "<g class=\"cells\"");
    ck_assert_ptr_nonnull(p);
    const char *end = strstr(p, "</g>");
    int n = 0;
    for (p = strstr(p, "<rect"); p && p < end; p = strstr(p + 1, "<rect")) {
        const char *fill = strstr(p, "fill=\"#");
        ck_assert_int_lt(n, max);
        memcpy(fills[n], fill + 6, 7);
        fills[n++][7] = '\0';
    }
    return n;
}

/* The relative luminance of #rrggbb (Rec. 709 weights on the coded values). */
static double luminance(const char *colour)
{
    unsigned r, g, b;
    ck_assert_int_eq(sscanf(colour, "#%2x%2x%2x", &r, &g, &b), 3);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

static tg_heatmap one_row(const float *values, int cols)
{
    return (tg_heatmap){ .title = "map", .x_label = "t", .y_label = "step", .value_label = "v",
                         .rows = 1, .cols = cols, .values = values, .x_min = 0.5f,
                         .x_max = cols + 0.5f, .y_min = 0, .y_max = 1 };
}

START_TEST(test_heatmap_is_well_formed_with_axes_labels_and_colour_bar)
{
    float values[3 * 4];
    for (int i = 0; i < 12; i++)
        values[i] = (float)i;
    tg_heatmap map = { "Gradient <&>", "t", "step", "||dL/dx||", 3, 4, values, 0.5f, 4.5f,
                       0, 300, 0, 0, 0 };
    char *doc = write_and_read_heatmap(&map);
    assert_well_formed(doc);
    assert_no_nonfinite_numbers(doc);
    ck_assert_int_eq(count_of(doc, ">Gradient &lt;&amp;&gt;</text>"), 1);
    ck_assert_int_eq(count_of(doc, ">step</text>"), 1);
    ck_assert_int_eq(count_of(doc, ">||dL/dx||</text>"), 1);
    char fills[16][8];
    ck_assert_int_eq(cell_fills(doc, fills, 16), 12);   /* all values differ: no merging */
    ck_assert_int_eq(count_of(doc, ">300</text>"), 1);  /* the y axis ends at its extent */
    ck_assert_int_eq(count_of(doc, ">400</text>"), 0);
    free(doc);
}
END_TEST

/* Larger values are lighter (viridis' lightness rises): the lowest is dark blue, the highest
 * yellow; on a log scale, values a decade apart are evenly spaced; NaN and (on the log scale)
 * 0 are grey; equal neighbours merge into one rectangle. */
START_TEST(test_heatmap_colours_follow_values)
{
    const float linear[] = { 1, 2, 2, 3, 4 };
    tg_heatmap map = one_row(linear, 5);
    char *doc = write_and_read_heatmap(&map);
    char fills[8][8];
    ck_assert_int_eq(cell_fills(doc, fills, 8), 4);
    ck_assert_str_eq(fills[0], "#440154");
    ck_assert_str_eq(fills[3], "#fde725");
    for (int i = 1; i < 4; i++)
        ck_assert_msg(luminance(fills[i]) > luminance(fills[i - 1]), "%s then %s", fills[i - 1],
                      fills[i]);
    free(doc);

    const float decades[] = { 1e-4f, 1e-3f, NAN, 1e-2f, 0, 1e-1f, 1 };
    map = one_row(decades, 7);
    map.log_values = 1;
    doc = write_and_read_heatmap(&map);
    ck_assert_int_eq(cell_fills(doc, fills, 8), 7);
    ck_assert_str_eq(fills[2], "#bbbbbb");
    ck_assert_str_eq(fills[4], "#bbbbbb");
    const int shown[] = { 0, 1, 3, 5, 6 };
    for (int i = 1; i < 5; i++)
        ck_assert_msg(luminance(fills[shown[i]]) > luminance(fills[shown[i - 1]]), "cell %d",
                      shown[i]);
    free(doc);

    /* the same values on the range 3..5: 1, 2, 2 and 3 all take its lowest colour */
    map = one_row(linear, 5);
    map.lo = 3;
    map.hi = 5;
    doc = write_and_read_heatmap(&map);
    ck_assert_int_eq(cell_fills(doc, fills, 8), 2);
    ck_assert_str_eq(fills[0], "#440154");
    ck_assert_msg(luminance(fills[1]) > luminance(fills[0]) && strcmp(fills[1], "#fde725") != 0,
                  "4 on 3..5: %s", fills[1]);
    free(doc);
}
END_TEST

static void assert_heatmap_fails_with(const tg_heatmap *map, const char *path, const char *want)
{
    tg_error err = { "" };
    ck_assert_int_eq(tg_heatmap_write_svg(map, path, &err), -1);
    char expected[PATH_SIZE + 128];
    snprintf(expected, sizeof expected, want, path ? path : "tg_heatmap_write_svg");
    ck_assert_str_eq(err.message, expected);
    ck_assert_int_eq(tg_heatmap_write_svg(map, path, NULL), -1);
}

START_TEST(test_heatmap_refuses_bad_arguments_and_writes_nothing)
{
    const float v[] = { 1, 2, 3 };
    char path[PATH_SIZE];
    scratch_path(path, "map.svg");
    tg_heatmap good = one_row(v, 3), map = good;
    assert_heatmap_fails_with(&map, NULL, "%s: path is NULL");
    assert_heatmap_fails_with(NULL, path, "%s: map is NULL");
    map.rows = 0;
    assert_heatmap_fails_with(&map, path, "%s: a grid of 0 x 3 cells (1 to 1000000 cells)");
    map = good;
    map.rows = 1001;
    map.cols = 1000;
    assert_heatmap_fails_with(&map, path, "%s: a grid of 1001 x 1000 cells (1 to 1000000 cells)");
    map = good;
    map.values = NULL;
    assert_heatmap_fails_with(&map, path, "%s: values is NULL");
    map = good;
    map.x_max = map.x_min;
    assert_heatmap_fails_with(&map, path,
                              "%s: the extent x 0.5..0.5, y 0..1 is not finite with min < max");
    map = good;
    map.y_max = INFINITY;
    assert_heatmap_fails_with(&map, path,
                              "%s: the extent x 0.5..3.5, y 0..inf is not finite with min < max");
    map = good;
    map.lo = NAN;
    assert_heatmap_fails_with(&map, path, "%s: the colour range nan..0 is not finite");
    map = good;
    map.log_values = 1;
    map.hi = 1;
    assert_heatmap_fails_with(&map, path,
                              "%s: the colour range 0..1 is not finite and positive on a log scale");
    map = good;
    map.value_label = "ok \xFF";
    assert_heatmap_fails_with(&map, path, "%s: the value label is not valid UTF-8 at byte 3");
    map = good;
    map.title = "\x80";
    assert_heatmap_fails_with(&map, path, "%s: the title is not valid UTF-8 at byte 0");
    scratch_dir_assert_holds(0);
}
END_TEST

/* ---- CSV -------------------------------------------------------------------------------- */

START_TEST(test_csv_has_the_header_and_one_row_per_point)
{
    const float a[] = { 1, 2, 3 }, b[] = { NAN, 5 };
    tg_series series[] = { { "a", XS, a, 3, TG_SERIES_LINE }, { "b", XS, b, 2, TG_SERIES_LINE }, { "empty", XS, a, 0, TG_SERIES_LINE } };
    tg_chart chart = { "t", "x", "y", 0, series, 3 };
    char *csv = write_and_read_csv(&chart);
    ck_assert_str_eq(csv, "series,x,y\na,0,1\na,1,2\na,2,3\nb,0,nan\nb,1,5\n");
    free(csv);
}
END_TEST

START_TEST(test_csv_values_read_back_equal_the_inputs)
{
    const float x[] = { 0.1f, -2.5e-7f, 123456.789f, FLT_MAX, FLT_TRUE_MIN, 1, 2, 3, 4 };
    const float y[] = { 1.0f / 3, FLT_MIN, -FLT_MAX, 7e-30f, -0.0f,
                        NAN,      INFINITY, -INFINITY, 0.7f };
    enum { N = sizeof x / sizeof x[0] };
    tg_series series[] = { { "v", x, y, N, TG_SERIES_LINE } };
    tg_chart chart = { "t", "x", "y", 0, series, 1 };
    char *csv = write_and_read_csv(&chart);
    const char *p = csv + strlen("series,x,y\n");
    for (int i = 0; i < N; i++) {
        ck_assert_msg(strncmp(p, "v,", 2) == 0, "row %d: %.40s", i, p);
        char *end;
        float got_x = (float)strtod(p + 2, &end);
        ck_assert_int_eq(*end, ',');
        float got_y = (float)strtod(end + 1, &end);
        ck_assert_int_eq(*end, '\n');
        p = end + 1;
        ck_assert_msg(got_x == x[i], "row %d: x %.9g != %.9g", i, got_x, x[i]);
        ck_assert_msg(got_y == y[i] || (isnan(got_y) && isnan(y[i])), "row %d: y %.9g != %.9g",
                      i, got_y, y[i]);
    }
    ck_assert_str_eq(p, "");
    free(csv);
}
END_TEST

START_TEST(test_csv_quotes_labels_with_comma_quote_or_newline)
{
    const float v[] = { 1 };
    tg_series series[] = { { "a,b", XS, v, 1, TG_SERIES_LINE },       { "say \"hi\"", XS, v, 1, TG_SERIES_LINE },
                           { "two\nlines", XS, v, 1, TG_SERIES_LINE }, { "plain 'text'", XS, v, 1, TG_SERIES_LINE },
                           { "", XS, v, 1, TG_SERIES_LINE },           { NULL, XS, v, 1, TG_SERIES_LINE } };
    tg_chart chart = { "t", "x", "y", 0, series, 6 };
    char *csv = write_and_read_csv(&chart);
    ck_assert_str_eq(csv, "series,x,y\n"
                          "\"a,b\",0,1\n"
                          "\"say \"\"hi\"\"\",0,1\n"
                          "\"two\nlines\",0,1\n"
                          "plain 'text',0,1\n"
                          ",0,1\n"
                          ",0,1\n");
    free(csv);
}
END_TEST

START_TEST(test_csv_writes_multibyte_utf8_labels_exactly)
{
    const float v[] = { 1 };
    tg_series series[] = { { "λ = 0.5, ✓", XS, v, 1, TG_SERIES_LINE }, { "損失 😀", XS, v, 1, TG_SERIES_LINE },
                           { "\xED\x9F\xBF\xEE\x80\x80\xF4\x8F\xBF\xBF", XS, v, 1, TG_SERIES_LINE } };
    tg_chart chart = { "über", "x", "y", 0, series, 3 };
    char *csv = write_and_read_csv(&chart);
    ck_assert_str_eq(csv, "series,x,y\n"
                          "\"λ = 0.5, ✓\",0,1\n"
                          "損失 😀,0,1\n"
                          "\xED\x9F\xBF\xEE\x80\x80\xF4\x8F\xBF\xBF,0,1\n");
    free(csv);
}
END_TEST

/* ---- failures ----------------------------------------------------------------------------- */

typedef int (*chart_writer)(const tg_chart *, const char *, tg_error *);

static const chart_writer WRITERS[] = { tg_chart_write_svg, tg_chart_write_csv };
static const char *const WRITER_NAMES[] = { "tg_chart_write_svg", "tg_chart_write_csv" };

START_TEST(test_missing_directory_gives_an_error_naming_the_path)
{
    const float v[] = { 1, 2 };
    tg_series series[] = { { "s", XS, v, 2, TG_SERIES_LINE } };
    tg_chart chart = { "t", "x", "y", 0, series, 1 };
    char path[PATH_SIZE], want[PATH_SIZE + 64];
    scratch_path(path, "missing/a.out");
    snprintf(want, sizeof want, "%s: cannot open for writing: No such file or directory", path);
    for (int i = 0; i < 2; i++) {
        tg_error err = { "" };
        ck_assert_int_eq(WRITERS[i](&chart, path, &err), -1);
        ck_assert_str_eq(err.message, want);
        ck_assert_int_eq(WRITERS[i](&chart, path, NULL), -1);
    }
    scratch_dir_assert_holds(0);
}
END_TEST

static void assert_fails_with(const tg_chart *chart, const char *path, const char *want)
{
    for (int i = 0; i < 2; i++) {
        tg_error err = { "" };
        ck_assert_int_eq(WRITERS[i](chart, path, &err), -1);
        char expected[PATH_SIZE + 128];
        snprintf(expected, sizeof expected, want, path ? path : WRITER_NAMES[i]);
        ck_assert_str_eq(err.message, expected);
        ck_assert_int_eq(WRITERS[i](chart, path, NULL), -1);
    }
}

START_TEST(test_bad_arguments_give_an_error_and_write_nothing)
{
    const float v[] = { 1, 2, 3 };
    char path[PATH_SIZE];
    scratch_path(path, "a.out");
    tg_series good = { "s", XS, v, 3, TG_SERIES_LINE };
    tg_chart chart = { "t", "x", "y", 0, &good, 1 };
    assert_fails_with(&chart, NULL, "%s: path is NULL");
    assert_fails_with(NULL, path, "%s: chart is NULL");
    chart.n_series = -1;
    assert_fails_with(&chart, path, "%s: n_series is negative (-1)");
    chart = (tg_chart){ "t", "x", "y", 0, NULL, 2 };
    assert_fails_with(&chart, path, "%s: series is NULL with n_series 2");
    tg_series bad[] = { good, { "s", XS, v, -4, TG_SERIES_LINE } };
    chart = (tg_chart){ "t", "x", "y", 0, bad, 2 };
    assert_fails_with(&chart, path, "%s: series 1: n is negative (-4)");
    bad[1] = (tg_series){ "s", NULL, v, 3, TG_SERIES_LINE };
    assert_fails_with(&chart, path, "%s: series 1: x or y is NULL with n 3");
    bad[1] = (tg_series){ "s", XS, NULL, 3, TG_SERIES_LINE };
    assert_fails_with(&chart, path, "%s: series 1: x or y is NULL with n 3");
    bad[1] = (tg_series){ "s", XS, v, 3, (tg_series_style)7 };
    assert_fails_with(&chart, path, "%s: series 1: unknown style 7");
    scratch_dir_assert_holds(0);
}
END_TEST

/* Texts that are not UTF-8, with the offset of the first bad byte: a lone continuation
 * byte; a character cut off at the end, and before more text; overlong forms of '/' in two
 * bytes and of U+20AC in three; the surrogate U+D800, after "é" (so that the offset counts
 * bytes, not characters); U+110000, past U+10FFFF; 0xFF, a byte UTF-8 never uses. */
static const struct { const char *text; int at; } NOT_UTF8[] = {
    { "ab\x80" "c", 2 },
    { "abc\xE2\x82", 3 },
    { "\xE2\x82" "z", 0 },
    { "x\xC0\xAF", 1 },
    { "\xE0\x82\xAC", 0 },
    { "é\xED\xA0\x80", 2 },
    { "\xF4\x90\x80\x80", 0 },
    { "ok \xFF", 3 },
};

/* Each in the title, each axis label and the third series' label: refused by both writers,
 * naming the text and the byte, and nothing is written. */
START_TEST(test_texts_that_are_not_utf8_are_refused_naming_the_text_and_byte)
{
    const float v[] = { 1, 2 };
    char path[PATH_SIZE], want[128];
    scratch_path(path, "a.out");
    static const char *const names[] = { "the title", "the x label", "the y label", "series 2's label" };
    for (size_t i = 0; i < sizeof NOT_UTF8 / sizeof NOT_UTF8[0]; i++) {
        for (int where = 0; where < 4; where++) {
            const char *texts[4] = { "t", "x", "y", "s" };
            texts[where] = NOT_UTF8[i].text;
            tg_series series[] = { { "é", XS, v, 2, TG_SERIES_LINE }, { NULL, XS, v, 2, TG_SERIES_LINE }, { texts[3], XS, v, 2, TG_SERIES_LINE } };
            tg_chart chart = { texts[0], texts[1], texts[2], 0, series, 3 };
            snprintf(want, sizeof want, "%%s: %s is not valid UTF-8 at byte %d", names[where],
                     NOT_UTF8[i].at);
            assert_fails_with(&chart, path, want);
        }
    }
    scratch_dir_assert_holds(0);
}
END_TEST

START_TEST(test_failed_rename_leaves_no_temporary_file)
{
    const float v[] = { 1, 2 };
    tg_series series[] = { { "s", XS, v, 2, TG_SERIES_LINE } };
    tg_chart chart = { "t", "x", "y", 0, series, 1 };
    char path[PATH_SIZE];
    ck_assert_int_eq(mkdir(scratch_path(path, "taken"), 0700), 0);
    for (int i = 0; i < 2; i++) {
        tg_error err = { "" };
        ck_assert_int_eq(WRITERS[i](&chart, path, &err), -1);
        scratch_dir_assert_refused_rename(path, err.message);
    }
}
END_TEST

/* A file size limit (RLIMIT_FSIZE) makes the writes fail part way with EFBIG. */
START_TEST(test_failed_write_leaves_no_file_and_says_why)
{
    static float many[5000];
    for (int i = 0; i < 5000; i++)
        many[i] = (float)i;
    tg_series series[] = { { "many", many, many, 5000, TG_SERIES_LINE } };
    tg_chart chart = { "t", "x", "y", 0, series, 1 };
    char path[PATH_SIZE], want[PATH_SIZE + 64];
    scratch_path(path, "big.out");
    snprintf(want, sizeof want, "%s: cannot write: File too large", path);
    struct rlimit old, small;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = (struct rlimit){ 1000, old.rlim_max };
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    tg_error err[2] = { { "" }, { "" } };
    int rc[2];
    for (int i = 0; i < 2; i++)
        rc[i] = WRITERS[i](&chart, path, &err[i]);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(rc[i], -1);
        ck_assert_str_eq(err[i].message, want);
    }
    scratch_dir_assert_holds(0);
}
END_TEST

START_TEST(test_writing_again_replaces_the_whole_file_and_clears_the_error)
{
    float many[100];
    for (int i = 0; i < 100; i++)
        many[i] = (float)i;
    const float one[] = { 1 };
    tg_series big[] = { { "big", many, many, 100, TG_SERIES_LINE } }, small[] = { { "small", XS, one, 1, TG_SERIES_LINE } };
    tg_chart chart = { "t", "x", "y", 0, big, 1 };
    char path[PATH_SIZE];
    scratch_path(path, "chart.csv");
    tg_error err = { "left over" };
    ck_assert_int_eq(tg_chart_write_csv(&chart, path, &err), 0);
    ck_assert_str_eq(err.message, "");
    chart.series = small;
    ck_assert_int_eq(tg_chart_write_csv(&chart, path, &err), 0);
    char *csv = read_file(path);
    ck_assert_str_eq(csv, "series,x,y\nsmall,0,1\n");
    free(csv);
    scratch_dir_assert_holds(1);
}
END_TEST

Suite *plot_suite(void)
{
    Suite *s = suite_create("plot");
    TCase *svg = tcase_create("svg"), *csv = tcase_create("csv"), *errors = tcase_create("errors");
    tcase_add_checked_fixture(svg, scratch_dir_make, scratch_dir_remove);
    tcase_add_checked_fixture(csv, scratch_dir_make, scratch_dir_remove);
    tcase_add_checked_fixture(errors, scratch_dir_make, scratch_dir_remove);
    tcase_add_test(svg, test_xml_checker_accepts_well_formed_and_rejects_malformed_snippets);
    tcase_add_test(svg, test_svg_is_well_formed_with_frame_axes_lines_and_legend);
    tcase_add_test(svg, test_svg_gives_twelve_series_twelve_distinct_styles);
    tcase_add_test(svg, test_svg_escapes_markup_in_title_axis_labels_and_legend);
    tcase_add_test(svg, test_svg_writes_multibyte_utf8_labels_exactly);
    tcase_add_test(svg, test_svg_replaces_characters_that_xml_forbids);
    tcase_add_test(svg, test_svg_breaks_lines_at_nan_and_inf);
    tcase_add_test(svg, test_svg_log_y_leaves_out_nonpositive_values);
    tcase_add_test(svg, test_svg_log_ticks_are_powers_of_ten_labelled_readably);
    tcase_add_test(svg, test_svg_linear_ticks_step_by_1_2_or_5_cover_the_data_and_stay_short);
    tcase_add_test(svg, test_svg_degenerate_and_extreme_ranges_give_finite_coordinates);
    tcase_add_test(svg, test_svg_without_drawable_points_has_axes_and_a_note);
    tcase_add_test(svg, test_svg_marked_series_have_a_marker_per_drawable_point_shaped_per_series);
    tcase_add_test(svg, test_svg_reference_series_is_thin_dashed_and_without_markers);
    tcase_add_test(svg, test_heatmap_is_well_formed_with_axes_labels_and_colour_bar);
    tcase_add_test(svg, test_heatmap_colours_follow_values);
    tcase_add_test(errors, test_heatmap_refuses_bad_arguments_and_writes_nothing);
    tcase_add_test(csv, test_csv_has_the_header_and_one_row_per_point);
    tcase_add_test(csv, test_csv_values_read_back_equal_the_inputs);
    tcase_add_test(csv, test_csv_quotes_labels_with_comma_quote_or_newline);
    tcase_add_test(csv, test_csv_writes_multibyte_utf8_labels_exactly);
    tcase_add_test(errors, test_missing_directory_gives_an_error_naming_the_path);
    tcase_add_test(errors, test_bad_arguments_give_an_error_and_write_nothing);
    tcase_add_test(errors, test_texts_that_are_not_utf8_are_refused_naming_the_text_and_byte);
    tcase_add_test(errors, test_failed_rename_leaves_no_temporary_file);
    tcase_add_test(errors, test_failed_write_leaves_no_file_and_says_why);
    tcase_add_test(errors, test_writing_again_replaces_the_whole_file_and_clears_the_error);
    suite_add_tcase(s, svg);
    suite_add_tcase(s, csv);
    suite_add_tcase(s, errors);
    return s;
}
