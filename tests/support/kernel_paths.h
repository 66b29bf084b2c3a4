/* kernel_paths.h: what the suites that compare the kernels' paths share (test_kernels,
 * test_threads): the paths this CPU and build can run, and random operands. */
#ifndef TAPEGRAD_TESTS_KERNEL_PATHS_H
#define TAPEGRAD_TESTS_KERNEL_PATHS_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels.h"

typedef struct kernel_paths {
    int path[TG_PATH_BEST];   /* plainest first */
    int n;
} kernel_paths;

/* The paths tg_kernel_use_path accepts here; with report, a line on stdout for each one
 * skipped. Leaves the kernels on TG_PATH_BEST. */
kernel_paths find_kernel_paths(bool report);

/* n values uniform in [-1, 1) from seed (malloc; at least one value's room). */
float *random_floats(long n, uint64_t seed);

#endif
