/* test_fixture.c: the reader of the PyTorch reference-value files (tests/support/fixture.c),
 * which the rnn, gated and optim suites rely on: it parses a small file, rejects malformed
 * files with a message, and survives every truncation. Not a library module: a suite of its
 * own so that a broken reader is told apart from a broken cell. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"

START_TEST(test_fixture_reader_parses_a_small_file)
{
    const char *text = "# a comment\n"
                       "tapegrad-fixtures 1\n"
                       "\n"
                       "case tiny 1 2 3 4\r\n"
                       "  W_h 2 0.5 -1e-3\n"
                       "loss 1 7\n"
                       "end\n"
                       "case other 5 6 7 8\n"
                       "end";
    char err[256];
    fixture_set *set = fixture_parse(text, strlen(text), "small", err, sizeof err);
    ck_assert_msg(set != NULL, "%s", err);
    ck_assert_int_eq(set->n_cases, 2);
    const fixture_case *c = &set->cases[0];
    ck_assert_str_eq(c->name, "tiny");
    ck_assert_int_eq(c->input, 1);
    ck_assert_int_eq(c->hidden, 2);
    ck_assert_int_eq(c->batch, 3);
    ck_assert_int_eq(c->steps, 4);
    const double *w = fixture_values(c, "W_h", 2, err, sizeof err);
    ck_assert_msg(w != NULL, "%s", err);
    ck_assert(w[0] == 0.5 && w[1] == -1e-3);
    ck_assert_ptr_null(fixture_values(c, "W_h", 3, err, sizeof err));
    ck_assert_str_eq(err, "case tiny: W_h has 2 values, expected 3");
    ck_assert_ptr_null(fixture_find(c, "dW_h"));
    ck_assert_int_eq(set->cases[1].n_arrays, 0);
    fixture_free(set);
}
END_TEST

START_TEST(test_fixture_reader_rejects_malformed_files_with_a_message)
{
#define FX_HEAD "tapegrad-fixtures 1\n"
#define FX_CASE_A FX_HEAD "case a 1 1 1 1\n"
    const struct { const char *text, *message; } bad[] = {
        { "", "f: empty: no 'tapegrad-fixtures' header and no cases" },
        { "# only a comment\n", "f: empty: no 'tapegrad-fixtures' header and no cases" },
        { "case a 1 1 1 1\nend\n",
          "f:1: expected the header 'tapegrad-fixtures 1', got 'case'; is this a fixture file?" },
        { "tapegrad-fixtures\n",
          "f:1: the header has no version (expected 'tapegrad-fixtures 1')" },
        { "tapegrad-fixtures 2\n",
          "f:1: this reader knows format version 1, the file has version '2'" },
        { "tapegrad-fixtures 1 x\n", "f:1: unexpected 'x' after the header" },
        { FX_HEAD, "f: no cases" },
        { FX_CASE_A "W_h 1 0\n", "f: the file ends inside case 'a' (no 'end')" },
        { FX_HEAD "case a 1 1 1\nend\n",
          "f:2: case a: 'case' needs NAME I H B T; steps (T) is missing" },
        { FX_HEAD "case\n", "f:2: 'case' needs NAME I H B T" },
        { FX_HEAD "case a 1 0 1 1\n",
          "f:2: case a: hidden (H) must be a whole number > 0, got '0'" },
        { FX_HEAD "case a 1 1 1 1x\n",
          "f:2: case a: steps (T) must be a whole number > 0, got '1x'" },
        { FX_HEAD "case a 1 1 1 99999999999\n",
          "f:2: case a: steps (T) must be a whole number > 0, got '99999999999'" },
        { FX_HEAD "case a 1 1 1 1 1\n", "f:2: case a: unexpected '1' after NAME I H B T" },
        { FX_CASE_A "case b 1 1 1 1\n", "f:3: case starts before case 'a' has its 'end'" },
        { FX_CASE_A "end\ncase a 1 1 1 1\nend\n", "f:4: a second case named 'a'" },
        { FX_HEAD "W_h 1 0\n",
          "f:2: 'W_h' outside a case (expected 'case NAME I H B T')" },
        { FX_HEAD "end\n", "f:2: 'end' outside a case" },
        { FX_CASE_A "end now\n", "f:3: case a: 'end' takes nothing after it" },
        { FX_CASE_A "1x 1 0\n",
          "f:3: case a: '1x' is not a key (letters, digits and '_')" },
        { FX_CASE_A "W_h\n", "f:3: case a: W_h has no count" },
        { FX_CASE_A "W_h -1\n",
          "f:3: case a: the count of W_h must be a whole number > 0, got '-1'" },
        { FX_CASE_A "W_h 3 1 2\n", "f:3: case a: W_h says 3 values but the line has 2" },
        { FX_CASE_A "W_h 2 1 2 3\n", "f:3: case a: W_h says 2 values but the line has 3" },
        { FX_CASE_A "W_h 2 1 nan\n",
          "f:3: case a: W_h value 2 is 'nan', not a finite number" },
        { FX_CASE_A "W_h 1 1e999\n",
          "f:3: case a: W_h value 1 is '1e999', not a finite number" },
        { FX_CASE_A "W_h 1 0.5.5\n",
          "f:3: case a: W_h value 1 is '0.5.5', not a finite number" },
        { FX_CASE_A "W_h 1 1\nW_h 1 2\n", "f:4: case a: key W_h appears twice" },
    };
#undef FX_CASE_A
    const int n_bad = (int)(sizeof bad / sizeof bad[0]);
    for (int i = 0; i < n_bad; i++) {
        char err[256] = "untouched";
        fixture_set *set = fixture_parse(bad[i].text, strlen(bad[i].text), "f", err, sizeof err);
        ck_assert_msg(set == NULL, "bad file %d parsed: %s", i, bad[i].text);
        ck_assert_msg(strcmp(err, bad[i].message) == 0,
                      "bad file %d: message\n  %s\nexpected\n  %s", i, err, bad[i].message);
    }

    /* A NUL byte, a tiny error buffer, no buffer at all, and a file that is not there. */
    char err[256];
    const char with_nul[] = "tapegrad-fixtures 1\ncase a\0 1 1 1 1\nend\n";
    ck_assert_ptr_null(fixture_parse(with_nul, sizeof with_nul - 1, "f", err, sizeof err));
    ck_assert_str_eq(err, "f: contains a NUL byte; not a text fixture file");
    char tiny[8];
    ck_assert_ptr_null(fixture_parse(FX_HEAD, strlen(FX_HEAD), "f", tiny, sizeof tiny));
    ck_assert_str_eq(tiny, "f: no c");
    ck_assert_ptr_null(fixture_parse(FX_HEAD, strlen(FX_HEAD), "f", NULL, 0));
#undef FX_HEAD
    ck_assert_ptr_null(fixture_load("tests/fixtures/no such file.txt", err, sizeof err));
    const char *expected = "cannot open tests/fixtures/no such file.txt: ";
    ck_assert_msg(strncmp(err, expected, strlen(expected)) == 0, "%s", err);
}
END_TEST

/* Every prefix of a valid file either parses or fails with a message: no crash, no leak. */
START_TEST(test_fixture_reader_survives_every_truncation)
{
    const char *text = "tapegrad-fixtures 1\ncase a 1 2 1 1\nW_h 4 1 2 3 4\nb 2 -0.5 5e-1\nend\n";
    const size_t len = strlen(text);
    for (size_t cut = 0; cut <= len; cut++) {
        char err[256] = "";
        fixture_set *set = fixture_parse(text, cut, "f", err, sizeof err);
        ck_assert_msg(set != NULL || err[0] != '\0', "cut at %zu: NULL without a message", cut);
        fixture_free(set);
    }
}
END_TEST

Suite *fixture_suite(void)
{
    Suite *s = suite_create("fixture");
    TCase *reader = tcase_create("fixture reader");
    tcase_add_test(reader, test_fixture_reader_parses_a_small_file);
    tcase_add_test(reader, test_fixture_reader_rejects_malformed_files_with_a_message);
    tcase_add_test(reader, test_fixture_reader_survives_every_truncation);
    suite_add_tcase(s, reader);
    return s;
}
