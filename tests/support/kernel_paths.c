/* kernel_paths.c: the kernel paths this host runs, and random operands, for the suites that
 * compare the paths. */
#include <stdio.h>
#include <stdlib.h>

#include "kernel_paths.h"
#include "tapegrad.h"

kernel_paths find_kernel_paths(bool report)
{
    kernel_paths found = { .n = 0 };
    for (int path = TG_PATH_C; path < TG_PATH_BEST; path++) {
        if (tg_kernel_use_path(path) == 0)
            found.path[found.n++] = path;
        else if (report)
            printf("kernels: %s path not on this host (or not in this build): skipped\n",
                   tg_kernel_path_name(path));
    }
    tg_kernel_use_path(TG_PATH_BEST);
    return found;
}

float *random_floats(long n, uint64_t seed)
{
    float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    tg_rng rng = tg_rng_new(seed);
    for (long i = 0; i < n; i++)
        x[i] = 2.0f * tg_rng_uniform(&rng) - 1.0f;
    return x;
}
