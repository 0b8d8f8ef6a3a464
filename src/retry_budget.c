/* src/retry_budget.c - the retry budget: a lock-free token bucket as in gRPC's
 * retry throttling.  Tokens are kept in thousandths in one atomic integer, so
 * every update is a single CAS loop and no lock is ever taken. */
#include "resil/retry.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

struct resil_retry_budget {
    _Alignas(64) atomic_llong milli; /* current tokens x 1000 */
    long long max_milli;
    long long ratio_milli;
};

/* The inline resil_retry reads the first two (resil/retry_inline.h). */
_Static_assert(offsetof(struct resil_retry_budget, milli) ==
                       offsetof(struct resil__private_retry_budget, milli) &&
                   offsetof(struct resil_retry_budget, max_milli) ==
                       offsetof(struct resil__private_retry_budget, max_milli) &&
                   sizeof(atomic_llong) == sizeof(long long),
               "a budget starts as struct resil__private_retry_budget");

int resil_retry_budget_new(resil_retry_budget **out, double max_tokens, double token_ratio,
                           resil_error *err)
{
    if (!(max_tokens > 0 && max_tokens <= 1000))
        return resil_error_set(err, RESIL_EINVAL, "max_tokens",
                               "max_tokens must be in (0, 1000] (got %g)", max_tokens);
    if (!(token_ratio > 0 && token_ratio <= 1))
        return resil_error_set(err, RESIL_EINVAL, "token_ratio",
                               "token_ratio must be in (0, 1] (got %g)", token_ratio);
    resil_retry_budget *b = aligned_alloc(64, sizeof *b);
    if (!b)
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    b->max_milli = llround(max_tokens * 1000);
    b->ratio_milli = llround(token_ratio * 1000);
    if (b->ratio_milli < 1)
        b->ratio_milli = 1;
    atomic_init(&b->milli, b->max_milli);
    *out = b;
    return 0;
}

void resil_retry_budget_free(resil_retry_budget *b)
{
    free(b);
}

static void add_clamped(resil_retry_budget *b, long long delta)
{
    long long cur = atomic_load_explicit(&b->milli, memory_order_relaxed);
    for (;;) {
        long long next = cur + delta;
        if (next > b->max_milli)
            next = b->max_milli;
        if (next < 0)
            next = 0;
        if (next == cur)
            return;
        if (atomic_compare_exchange_weak_explicit(&b->milli, &cur, next, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return;
    }
}

void resil_retry_budget_on_success(resil_retry_budget *b)
{
    add_clamped(b, b->ratio_milli);
}

void resil_retry_budget_on_failure(resil_retry_budget *b)
{
    add_clamped(b, -1000);
}

bool resil_retry_budget_allows(const resil_retry_budget *b)
{
    long long cur = atomic_load_explicit(&((resil_retry_budget *)b)->milli, memory_order_acquire);
    return cur * 2 > b->max_milli;
}

double resil_retry_budget_tokens(const resil_retry_budget *b)
{
    return (double)atomic_load_explicit(&((resil_retry_budget *)b)->milli,
                                        memory_order_acquire) /
           1000.0;
}
