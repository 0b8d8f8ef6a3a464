/* bench/bench_alloc.h - counts allocations: the executable's own malloc,
 * calloc, realloc, memalign, aligned_alloc and posix_memalign (which take
 * precedence over glibc's, so the statically linked library's calls are
 * seen too) add one to this thread's t_alloc and forward to glibc.
 * Include it in exactly one file of a benchmark. */
#ifndef RESIL_BENCH_ALLOC_H
#define RESIL_BENCH_ALLOC_H

#include <errno.h>
#include <stddef.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

/* Per-thread counts (initial-exec TLS of the executable: no allocation to
 * reach them), so a check on one thread is not disturbed by another. */
static _Thread_local unsigned long long t_alloc;

void *malloc(size_t n)
{
    t_alloc++;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    t_alloc++;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    t_alloc++;
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

void *memalign(size_t align, size_t n)
{
    t_alloc++;
    return __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    t_alloc++;
    return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    t_alloc++;
    if (align < sizeof(void *) || (align & (align - 1)) != 0)
        return EINVAL;
    void *p = __libc_memalign(align, n);
    if (!p && n)
        return ENOMEM;
    *out = p;
    return 0;
}

#endif
