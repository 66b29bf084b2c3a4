/* test_rng.c: the library's random numbers (src/rng.c): SplitMix64's reference stream, the same
 * on every platform, and uniforms in [0, 1) that a seed repeats. */
#include <check.h>

#include "tapegrad.h"

START_TEST(test_rng_gives_the_same_stream_on_every_platform)
{
    /* SplitMix64 from seed 0: the reference generator's first outputs. */
    tg_rng rng = tg_rng_new(0);
    ck_assert_uint_eq(tg_rng_next(&rng), 0xE220A8397B1DCDAFull);
    ck_assert_uint_eq(tg_rng_next(&rng), 0x6E789E6AA1B965F4ull);
    tg_rng a = tg_rng_new(42), b = tg_rng_new(42);
    for (int i = 0; i < 100; i++) {
        float u = tg_rng_uniform(&a);
        ck_assert(u >= 0.0f && u < 1.0f);
        ck_assert_float_eq(u, tg_rng_uniform(&b));
    }
}
END_TEST

Suite *rng_suite(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("rng");
    tcase_add_test(tc, test_rng_gives_the_same_stream_on_every_platform);
    suite_add_tcase(s, tc);
    return s;
}
