/* resil/retry_inline.h - the inline fast path of resil/retry.h (resil_retry:
 * a first attempt that succeeds costs a few nanoseconds over calling the op)
 * and the private names it reads.  Include resil/retry.h rather than this file.
 *
 * ABI: everything here named resil__private_* belongs to libresil's own
 * layout, which may change with its version.  The library exports these
 * names in a version node of their own (RESIL_PRIVATE_1 in
 * cmake/resil.map): a change of layout renames the node, so a program built
 * against an older header fails to link instead of corrupting memory
 * (docs/abi.md).  Define RESIL_NO_INLINE_FAST_PATH to call the library's
 * out-of-line resil_retry instead and depend on no private name.
 */
#ifndef RESIL_RETRY_INLINE_H
#define RESIL_RETRY_INLINE_H

/* (resil/retry.h includes this file where its declarations need it; included
 * first, this file brings resil/retry.h in.) */
#include "resil/retry.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
/* Private to the inline resil_retry below (layout of libresil's own, which
 * may change with its version): this thread's last name counted by
 * resil_retry_note_success, so that the next first-attempt success of the
 * same name adds to its cell without a call. */
struct resil__private_retry_seen {
    const char *name; /* NULL: none (or too long to keep) */
    uint64_t *cell;   /* its successful_without_retry cell in this thread's block */
    unsigned owned;   /* the block is this thread's alone: a plain add */
    unsigned off;     /* metrics are off: nothing to count */
    char copy[48];    /* the name's bytes when it was seen (a buffer may be reused) */
};
#ifdef RESIL_BUILDING
RESIL_EXPORT extern __thread struct resil__private_retry_seen resil__private_retry_tls_seen
    __attribute__((tls_model("initial-exec")));
#else
RESIL_EXPORT extern __thread struct resil__private_retry_seen resil__private_retry_tls_seen;
#endif
#endif

/* Private: whether the compiler knows a name's bytes where resil_retry is
 * inlined (a string literal, a const array), so that comparing them with the
 * cached copy folds into a word compare or two against constants.  Only a
 * hint: the compare it picks is exact either way (it reads the name's
 * strlen + 1 bytes, as the byte loop would).  gcc folds strlen itself;
 * clang's __builtin_constant_p refuses a strlen call but knows the bytes. */
#if defined(__clang__)
#define RESIL__PRIVATE_KNOWN_NAME(n) __builtin_constant_p((n)[0])
#else
#define RESIL__PRIVATE_KNOWN_NAME(n) __builtin_constant_p(__builtin_strlen(n))
#endif

/* Private: how a resil_retry_budget begins (src/retry_budget.c), so that
 * the inline resil_retry skips the call when the bucket is full. */
struct resil__private_retry_budget {
    long long milli;     /* current tokens x 1000 (atomic) */
    long long max_milli; /* set at creation, never changed */
};

/* The part of resil_retry that follows a first attempt which did not simply
 * succeed, or that makes every attempt when the fast path does not apply
 * (deadline, measure_time, an after_attempt hook, a cancel token or a gate).
 * first_outcome < 0 means no attempt was made yet (the config is then
 * validated and the first attempt made here); otherwise it is the outcome of
 * attempt 1, with first_error and first_retry_after_s as the op reported them,
 * and the config must already be valid (attempt 1's duration is then not
 * recorded: see measure_time).  Arguments and return value as for
 * resil_retry, which is what callers should use.  Private: its name and
 * arguments may change with libresil's version (RESIL_PRIVATE_1). */
RESIL_EXPORT int resil__private_retry_continue(resil_retry_op op, void *arg, const char *name,
                                               const resil_retry_config *config,
                                               const resil_retry_opts *opts,
                                               resil_retry_result *result, int first_outcome,
                                               int first_error, double first_retry_after_s);

#if (defined(RESIL_NO_INLINE_FAST_PATH) || defined(__GNUC_GNU_INLINE__)) && \
    !defined(RESIL_BUILDING)
/* (GNU89 inline semantics, -fgnu89-inline, would turn the inline definition
 * into an external one in every file: use the library's copy instead.) */
RESIL_EXPORT int resil_retry(resil_retry_op op, void *arg, const char *name,
                             const resil_retry_config *config, const resil_retry_opts *opts,
                             resil_retry_result *result);
#else
RESIL_EXPORT inline int resil_retry(resil_retry_op op, void *arg, const char *name,
                                    const resil_retry_config *config,
                                    const resil_retry_opts *opts, resil_retry_result *result)
{
    /* Eligible: an op, a config without deadline, no time, no after_attempt
     * hook, no cancel token.  The config check is conservative: for doubles
     * >= +0.0 and finite, the IEEE bits read as an unsigned integer lie below
     * +inf's and order like the values, so each "finite and >= x" test is one
     * integer comparison; anything it refuses goes to resil__private_retry_continue,
     * which validates properly. */
    if (op && config &&
        (!opts || (((uintptr_t)opts->after_attempt | (uintptr_t)opts->cancel |
                    (uintptr_t)opts->measure_time | (uintptr_t)opts->gate) == 0))) {
        union {
            double d;
            uint64_t u;
        } base = {config->base_delay_s}, max = {config->max_delay_s},
          eb = {config->exponential_base}, el = {config->max_elapsed_s};
        unsigned bad = (max.u >= 0x7ff0000000000000ULL) | (base.u > max.u) |
                       (eb.u - 0x3ff0000000000000ULL >= 0x4000000000000000ULL) | (el.u != 0) |
                       ((unsigned)config->max_retries >> 31) |
                       ((unsigned)config->jitter_kind > (unsigned)RESIL_JITTER_DECORRELATED);
        if (bad == 0) {
            resil_retry_call call = {1, name, 0, -1.0, RESIL_GATE_AUTO, -1.0};
            resil_outcome outcome = op(&call, arg);
            if (outcome == RESIL_OUTCOME_SUCCESS) {
                if (opts && opts->budget) {
#if defined(__GNUC__)
                    /* A full bucket gains nothing (what the library's
                     * on_success sees with the same relaxed load): no call. */
                    const struct resil__private_retry_budget *bk =
                        (const struct resil__private_retry_budget *)(const void *)opts->budget;
                    if (__atomic_load_n(&bk->milli, __ATOMIC_RELAXED) != bk->max_milli)
#endif
                        resil_retry_budget_on_success(opts->budget);
                }
                if (name) {
#if defined(__GNUC__)
                    struct resil__private_retry_seen *seen = &resil__private_retry_tls_seen;
                    int counted = (int)seen->off;
                    if (!counted && seen->name == name) {
                        /* The same pointer may hold other bytes now (a
                         * reused buffer): compare them.  When the compiler
                         * knows the name's bytes here (a string literal, a
                         * const array), the compare is a word or two
                         * against constants; otherwise one byte at a time,
                         * never past the name's end. */
                        int same;
                        if (RESIL__PRIVATE_KNOWN_NAME(name) &&
                            __builtin_strlen(name) < sizeof seen->copy) {
                            same = __builtin_memcmp(seen->copy, name,
                                                    __builtin_strlen(name) + 1) == 0;
                        } else {
                            size_t i = 0;
                            while (seen->copy[i] == name[i] && name[i])
                                i++;
                            same = seen->copy[i] == name[i];
                        }
                        if (same) {
                            counted = 1;
                            if (seen->owned)
                                __atomic_store_n(seen->cell,
                                                 __atomic_load_n(seen->cell, __ATOMIC_RELAXED) + 1,
                                                 __ATOMIC_RELAXED);
                            else
                                __atomic_fetch_add(seen->cell, 1, __ATOMIC_RELAXED);
                        }
                    }
                    if (!counted)
                        resil_retry_note_success(name);
#else
                    resil_retry_note_success(name);
#endif
                }
                if (result) {
                    result->attempts = 1;
                    result->reason = RESIL_STOP_SUCCESS;
                    result->last_outcome = RESIL_OUTCOME_SUCCESS;
                    result->last_error = call.error;
                    result->total_delay_s = 0.0;
                    result->elapsed_s = -1.0;
                }
                return 0;
            }
            return resil__private_retry_continue(op, arg, name, config, opts, result,
                                                 outcome == RESIL_OUTCOME_TRANSIENT
                                                     ? (int)RESIL_OUTCOME_TRANSIENT
                                                     : (int)RESIL_OUTCOME_PERMANENT,
                                                 call.error, call.retry_after_s);
        }
    }
    return resil__private_retry_continue(op, arg, name, config, opts, result, -1, 0, -1.0);
}
#endif

#ifdef __cplusplus
}
#endif
#endif /* RESIL_RETRY_INLINE_H */
