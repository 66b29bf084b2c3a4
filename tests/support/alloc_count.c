/* alloc_count.c: counting (and optionally failing) wrappers around malloc, calloc and realloc,
 * linked in with ld --wrap (see the Makefile). */
#include <stddef.h>

#include "alloc_count.h"

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);

static long allocations;
static long failures_after = -1;

long alloc_count(void) { return allocations; }
void alloc_fail_after(long n) { failures_after = n; }

/* Counts one allocation; false when it should fail. */
static int allow(void)
{
    allocations++;
    if (failures_after < 0)
        return 1;
    if (failures_after == 0)
        return 0;
    failures_after--;
    return 1;
}

void *__wrap_malloc(size_t size) { return allow() ? __real_malloc(size) : NULL; }
void *__wrap_calloc(size_t n, size_t size) { return allow() ? __real_calloc(n, size) : NULL; }
void *__wrap_realloc(void *p, size_t size) { return allow() ? __real_realloc(p, size) : NULL; }
