/* alloc_count.h: the test binary links with ld --wrap=malloc,calloc,realloc, so every heap
 * allocation the library makes passes through alloc_count.c, which counts it and can make
 * it fail on purpose (to test out-of-memory paths). */
#ifndef TAPEGRAD_TEST_ALLOC_COUNT_H
#define TAPEGRAD_TEST_ALLOC_COUNT_H

long alloc_count(void);            /* allocations made so far in this process */
void alloc_fail_after(long n);     /* let n more allocations succeed, then fail all; -1: never fail */

#endif
