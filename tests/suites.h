/* suites.h: the list of test suites the runner runs. Each tests/test_NAME.c defines
 * Suite *NAME_suite(void); add one SUITE(NAME) line here for it. A suite tests the module
 * src/NAME.c (kernels: src/kernels_ref.c, src/kernels_fast.c and the pool in src/threads.c
 * they run on), except the last four: fixture tests the test helper that reads the PyTorch
 * reference files, lab and train are whole training runs, across modules, and truncated
 * tests examples/truncated.h, the window mechanics of the truncated-BPTT lab. */
SUITE(tape)
SUITE(tape_dot)
SUITE(ops)
SUITE(gradcheck)
SUITE(kernels)
SUITE(threads)
SUITE(rng)
SUITE(param)
SUITE(rnn)
SUITE(gated)
SUITE(cell)
SUITE(seq)
SUITE(optim)
SUITE(tasks)
SUITE(plot)
SUITE(json)
SUITE(safetensors)
SUITE(checkpoint)
SUITE(files)
SUITE(fixture)
SUITE(lab)
SUITE(truncated)
SUITE(train)
