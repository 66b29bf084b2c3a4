/* test_json.c: the strict JSON reader of the safetensors header (src/json.c), through loading
 * hand-made files: malformed JSON is refused naming the problem and the place, nesting past
 * the limit is refused, and every valid variation of a header (whitespace, escapes, unknown
 * fields) loads. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint_files.h"
#include "scratch_dir.h"
#include "tapegrad.h"

START_TEST(test_malformed_json_fails_naming_the_problem_and_place)
{
    static const struct { const char *header, *want; } cases[] = {
        { "", "the header is empty" },
        { "   ", "the header is empty" },
        { "[]", "the header must be a JSON object" },
        { "\"x\"", "the header must be a JSON object" },
        { "{", "the header is not valid JSON: expected a string at header byte 1" },
        { "{\"__metadata__\":{}", "expected ',' or '}' in an object at header byte 18" },
        { "{\"a\" {}}", "expected ':' after a key at header byte 5" },
        { "{\"__metadata__\":{},}", "expected a string at header byte 19" },
        { "{} x", "unexpected bytes after the header's object at header byte 3" },
        { "{}{}", "unexpected bytes after the header's object" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":[1,]}}",
          "expected a value" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":tru}}",
          "expected a value" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":01}}",
          "expected ',' or '}' in an object" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":1.}}",
          "expected a digit after '.'" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":1e}}",
          "expected a digit in an exponent" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":-}}",
          "expected a value" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":'s'}}",
          "expected a value" },
        { "{\"weight\\qih\":{}}", "an unknown escape in a string" },
        { "{\"weight\\u00g1\":{}}", "expected four hex digits after \\u" },
        { "{\"\\ud83d\":{}}", "a high surrogate escape without a low one" },
        { "{\"\\ud83d\\u0041\":{}}", "a high surrogate escape without a low one" },
        { "{\"\\ude00\":{}}", "a low surrogate escape without a high one" },
        { "{\"tab\there\":{}}", "a control character in a string" },
        { "{\"\xff\":{}}", "a string that is not UTF-8" },
        { "{\"\xc0\xaf\":{}}", "a string that is not UTF-8" },            /* overlong '/' */
        { "{\"\xed\xa0\x80\":{}}", "a string that is not UTF-8" },        /* a surrogate */
        { "{\"\xf4\x90\x80\x80\":{}}", "a string that is not UTF-8" },    /* above U+10FFFF */
        { "{\"\xe2\x88\":{}}", "a string that is not UTF-8" },            /* cut short */
        { "{\"abc", "a string without its closing quote" },
        { "{\"__metadata__\":[]}", "\"__metadata__\" must be an object" },
        { "{\"__metadata__\":{\"a\":1}}", "\"__metadata__\" must map names to strings" },
        { "{\"weight_ih\":[1]}", "tensor weight_ih must be an object with dtype, shape and data_offsets" },
        { "{\"weight_ih\":{\"shape\":[3,2],\"data_offsets\":[0,24]}}", "tensor weight_ih has no dtype" },
        { "{\"weight_ih\":{\"dtype\":\"F32\",\"data_offsets\":[0,24]}}", "tensor weight_ih has no shape" },
        { "{\"weight_ih\":{\"dtype\":\"F32\",\"shape\":[3,2]}}", "tensor weight_ih has no data_offsets" },
        { "{\"weight_ih\":{\"dtype\":F32}}", "expected a string" },
    };
    char path[PATH_SIZE];
    scratch_path(path, "bad.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_checkpoint(path, cases[i].header, RNN_DATA);
        assert_rnn_load_fails(path, cases[i].want);
    }
    /* a NUL byte inside the header */
    const unsigned char with_nul[8 + 4] = { 4, 0, 0, 0, 0, 0, 0, 0, '{', '}', 0, ' ' };
    write_bytes(path, with_nul, sizeof with_nul);
    assert_rnn_load_fails(path, "unexpected bytes after the header's object at header byte 2");
}
END_TEST

/* Arrays nested inside an unknown field: accepted up to the depth limit, refused past it. */
START_TEST(test_nesting_deeper_than_the_limit_fails)
{
    char header[1024], path[PATH_SIZE];
    for (int depth = 60; depth <= 66; depth++) {
        /* the top object is level 1, the tensor's object level 2, its fields level 3 */
        int arrays = depth - 2;
        size_t used = (size_t)snprintf(header, sizeof header, "{\"weight_ih\":{\"x\":");
        for (int i = 0; i < arrays; i++)
            header[used++] = '[';
        for (int i = 0; i < arrays; i++)
            header[used++] = ']';
        snprintf(header + used, sizeof header - used,
                 ",\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
                 "\"weight_hh\":{\"dtype\":\"F32\",\"shape\":[3,3],\"data_offsets\":[24,60]},"
                 "\"bias_ih\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[60,72]},"
                 "\"bias_hh\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[72,84]}}");
        write_checkpoint(scratch_path(path, "deep.safetensors"), header, RNN_DATA);
        if (depth <= 64)
            assert_rnn_loads(path);
        else
            assert_rnn_load_fails(path, "the header nests arrays and objects more than 64 deep");
    }
}
END_TEST

START_TEST(test_valid_variations_of_the_header_load)
{
    static const char *const headers[] = {
        /* no metadata, pretty-printed with every kind of whitespace, fields in another order */
        " {\n\t\"bias_hh\" : { \"data_offsets\" : [ 72 , 84 ] , \"shape\" : [ 3 ] , \"dtype\" : \"F32\" } ,\r\n"
        "  \"bias_ih\":{\"shape\":[3],\"dtype\":\"F32\",\"data_offsets\":[60,72]},"
        "  \"weight_hh\":{\"dtype\":\"F32\",\"shape\":[3,3],\"data_offsets\":[24,60]},"
        "  \"weight_ih\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]}\n}\n  \t ",
        /* escaped names, metadata with escapes and a surrogate pair, unknown fields, other
         * tensors of other dtypes (and one empty tensor), a gap in the data section */
        "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"\\ud83d\\ude00 \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9\","
        "\"\\u00e9\":\"\xc3\xa9\"},"
        "\"weight\\u005fih\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24],"
        "\"extra\":{\"a\":[true,false,null,-1.5e-3,0,\"s\",{}],\"b\":[]}},"
        "\"\\u0077eight_hh\":{\"dtype\":\"F32\",\"shape\":[3,3],\"data_offsets\":[24,60]},"
        "\"bias_ih\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[60,72]},"
        "\"bias_hh\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[72,84]},"
        "\"num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[84,92]},"
        "\"half\":{\"dtype\":\"BF16\",\"shape\":[2,1],\"data_offsets\":[96,100]},"
        "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[24,24]},"
        "\"\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[100,101]}}",
    };
    char path[PATH_SIZE];
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        write_checkpoint(scratch_path(path, "variant.safetensors"), headers[i], i == 0 ? RNN_DATA : 104);
        assert_rnn_loads(path);
    }
}
END_TEST

Suite *json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *header = tcase_create("header");
    tcase_add_checked_fixture(header, scratch_dir_make, scratch_dir_remove);
    tcase_add_test(header, test_malformed_json_fails_naming_the_problem_and_place);
    tcase_add_test(header, test_nesting_deeper_than_the_limit_fails);
    tcase_add_test(header, test_valid_variations_of_the_header_load);
    suite_add_tcase(s, header);
    return s;
}
