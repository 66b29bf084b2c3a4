/* suites.h: the list of test suites the runner runs. Each tests/test_NAME.c defines
 * Suite *NAME_suite(void); add one SUITE(NAME) line here for it. */
SUITE(ops)
SUITE(tape)
SUITE(extend)
SUITE(errors)
SUITE(cell)
SUITE(train)
SUITE(lab)
SUITE(plot)
SUITE(kernels)
SUITE(gated)
SUITE(optimizers)
SUITE(io)
