/* src/internal/util.h - small helpers shared by the modules. */
#ifndef RESIL_INTERNAL_UTIL_H
#define RESIL_INTERNAL_UTIL_H

#include <stdint.h>

#define RESIL_NS_PER_S 1000000000LL

#if defined(__GNUC__)
#define RESIL_LIKELY(x) __builtin_expect(!!(x), 1)
#define RESIL_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define RESIL_LIKELY(x) (x)
#define RESIL_UNLIKELY(x) (x)
#endif

/* Seconds (double) to nanoseconds, saturating at INT64_MAX / 4 (~73 years)
 * and at 0 for negatives and NaN. */
static inline int64_t resil__s_to_ns(double s)
{
    if (!(s > 0))
        return 0;
    if (s >= (double)(INT64_MAX / 4) / 1e9)
        return INT64_MAX / 4;
    return (int64_t)(s * 1e9);
}

/* a + b for b >= 0, saturating at INT64_MAX. */
static inline int64_t resil__add_sat(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static inline double resil__ns_to_s(int64_t ns)
{
    return (double)ns / 1e9;
}

#endif
