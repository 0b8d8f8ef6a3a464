/* resil/metrics_inline.h - the inline fast paths of resil/metrics.h
 * (resil_counter_inc, resil_histogram_observe) and the private layout they
 * read.  Include resil/metrics.h rather than this file.
 *
 * ABI: everything here named resil__private_* belongs to libresil's own
 * layout, which may change with its version.  The library exports these
 * names in a version node of their own (RESIL_PRIVATE_1 in
 * cmake/resil.map): a change of layout renames the node, so a program built
 * against an older header fails to link instead of corrupting memory
 * (docs/abi.md).  Define RESIL_NO_INLINE_FAST_PATH to call the library's
 * out-of-line copies instead and depend on no private name.
 */
#ifndef RESIL_METRICS_INLINE_H
#define RESIL_METRICS_INLINE_H

/* (resil/metrics.h includes this file where its declarations need it; included
 * first, this file brings resil/metrics.h in.) */
#include "resil/metrics.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if !defined(RESIL_BUILDING) &&                                                          \
    (defined(RESIL_NO_INLINE_FAST_PATH) || defined(__GNUC_GNU_INLINE__) ||               \
     !defined(__GNUC__) || defined(__cplusplus) || !defined(__STDC_VERSION__) ||         \
     __STDC_VERSION__ < 201112L)
RESIL_EXPORT void resil_counter_inc(resil_counter *c);
RESIL_EXPORT void resil_histogram_observe(resil_histogram *h, double v);
#else
/* Private to the inline functions below (layout of libresil's own, which
 * may change with its version): how every handle begins. */
struct resil__private_metric_cells {
    unsigned char *cells; /* one block of `stride` bytes per slot */
    unsigned stride;
    unsigned npad;         /* histograms: bounds rounded up to an even count */
    const double *bounds;  /* histograms: npad bounds, +Inf padded */
};
/* Private: this thread's slot, 0 until dealt, then (block + 1) * 2, plus 1
 * when the thread owns the block alone.  (libresil itself reads it with the
 * initial-exec model: no call.) */
#ifdef RESIL_BUILDING
RESIL_EXPORT extern _Thread_local unsigned resil__private_metrics_tls_slot
    __attribute__((tls_model("initial-exec")));
#else
RESIL_EXPORT extern _Thread_local unsigned resil__private_metrics_tls_slot;
#endif
/* Private: deals this thread its slot and returns it. */
RESIL_EXPORT unsigned resil__private_metrics_thread_slot(void);

#define RESIL__PRIVATE_METRICS_BLOCK(k, s) \
    ((k)->cells + (size_t)(((s) >> 1) - 1) * (k)->stride)

RESIL_EXPORT inline void resil_counter_inc(resil_counter *c)
{
    const struct resil__private_metric_cells *k = (const struct resil__private_metric_cells *)(const void *)c;
    unsigned s = resil__private_metrics_tls_slot;
    if (__builtin_expect(s == 0, 0))
        s = resil__private_metrics_thread_slot();
    uint64_t *p = (uint64_t *)(void *)RESIL__PRIVATE_METRICS_BLOCK(k, s);
    if (s & 1)
        __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    else
        __atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
}

RESIL_EXPORT inline void resil_histogram_observe(resil_histogram *h, double v)
{
    typedef double resil__v2d __attribute__((vector_size(16)));
    typedef long long resil__v2i __attribute__((vector_size(16)));
    uint64_t bits;
    __builtin_memcpy(&bits, &v, sizeof bits);
    if ((bits << 1) > 0xffe0000000000000ULL)
        return; /* NaN (tested on the bits: -ffast-math may drop v != v) */
    const struct resil__private_metric_cells *k = (const struct resil__private_metric_cells *)(const void *)h;
    /* The bucket is the number of bounds below v, counted two at a time
     * without a branch on v (values spread over the buckets would
     * mispredict a search). */
    resil__v2i below = {0, 0};
    resil__v2d x = {v, v};
    for (unsigned i = 0; i < k->npad; i += 2) {
        resil__v2d b;
        __builtin_memcpy(&b, k->bounds + i, sizeof b);
        below -= (resil__v2i)(x > b);
    }
    unsigned s = resil__private_metrics_tls_slot;
    if (__builtin_expect(s == 0, 0))
        s = resil__private_metrics_thread_slot();
    uint64_t *sum = (uint64_t *)(void *)RESIL__PRIVATE_METRICS_BLOCK(k, s);
    uint64_t *n = sum + 1 + (size_t)(below[0] + below[1]);
    uint64_t old = __atomic_load_n(sum, __ATOMIC_RELAXED), nw;
    double d;
    if (s & 1) {
        __atomic_store_n(n, __atomic_load_n(n, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
        __builtin_memcpy(&d, &old, sizeof d);
        d += v;
        __builtin_memcpy(&nw, &d, sizeof nw);
        __atomic_store_n(sum, nw, __ATOMIC_RELAXED);
    } else {
        __atomic_fetch_add(n, 1, __ATOMIC_RELAXED);
        do {
            __builtin_memcpy(&d, &old, sizeof d);
            d += v;
            __builtin_memcpy(&nw, &d, sizeof nw);
        } while (!__atomic_compare_exchange_n(sum, &old, nw, 1, __ATOMIC_RELAXED,
                                              __ATOMIC_RELAXED));
    }
}
#endif

#ifdef __cplusplus
}
#endif
#endif /* RESIL_METRICS_INLINE_H */
