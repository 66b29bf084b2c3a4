/* rng.c: the library's random numbers, SplitMix64 (Steele, Lea & Flood 2014). Integer-only,
 * so a seed gives the same bits on every platform; normals come from Box-Muller in double. */
#include <math.h>

#include "tapegrad.h"

tg_rng tg_rng_new(uint64_t seed)
{
    return (tg_rng){ .state = seed };
}

uint64_t tg_rng_next(tg_rng *rng)
{
    uint64_t z = (rng->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float tg_rng_uniform(tg_rng *rng)
{
    return (float)(tg_rng_next(rng) >> 40) * 0x1.0p-24f;
}

float tg_rng_normal(tg_rng *rng)
{
    const double two_pi = 6.283185307179586;
    double u1 = ((double)(tg_rng_next(rng) >> 11) + 1.0) * 0x1.0p-53; /* in (0, 1]: log is finite */
    double u2 = (double)(tg_rng_next(rng) >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(two_pi * u2));
}
