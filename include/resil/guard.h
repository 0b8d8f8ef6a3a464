/* resil/guard.h - the policy layer's guard: a retry whose every attempt is
 * guarded by a circuit breaker (retry x breaker).
 *
 * Neither module knows the other: resil_retry asks the gate in its options
 * (resil_retry_opts.gate, see resil/retry.h) before every attempt and tells
 * it how the attempt went; a resil_guard fills that gate from a
 * resil_breaker:
 *   acquire  resil_breaker_acquire; a refusal (RESIL_ECIRCUIT_OPEN, or a
 *            shared breaker's lock error) is handed to the retry as the
 *            guard's open policy says;
 *   report   resil_breaker_record with the op's verdict (call->verdict;
 *            AUTO: success for SUCCESS, otherwise the breaker's classifier
 *            on call->error, failure when that is 0) and duration
 *            (call->duration_s, else the retry's measure, else the breaker
 *            measures it itself).
 * An attempt the breaker refused never ran: it is not an attempt
 * (result->attempts, call->attempt and the hooks' info.attempt count only
 * the attempts that ran; info.refused counts the refusals), it is counted in
 * resil_retry_attempts_total{name,result="not_permitted"} (and in the
 * breaker's resil_circuitbreaker_calls_total{kind="not_permitted"}), and it
 * uses up one of the retry's 1 + max_retries turns, so a retry around a
 * breaker that never closes still ends.
 *
 * Thread safety: a resil_guard is immutable once made: any number of
 * threads may run retries through one guard (and one breaker) at once; each
 * attempt's permit lives in that retry's own ticket.  The event listener
 * runs on the retrying thread.  Process safety is the breaker's: a shared
 * breaker guards the retries of every process that opens it.
 */
#ifndef RESIL_GUARD_H
#define RESIL_GUARD_H

#include "resil/breaker.h"
#include "resil/common.h"
#include "resil/retry.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a retry does when the breaker refuses an attempt. */
typedef enum resil_breaker_open_policy {
    RESIL_BREAKER_OPEN_WAIT = 0, /* ask again when the breaker goes half-open:
                                    the time until half-open is the retry's
                                    retry-after hint (bounded by its deadline
                                    like any hint; half-open with every trial
                                    taken: the backoff's delay; forced open:
                                    stop) */
    RESIL_BREAKER_OPEN_STOP      /* stop at once (RESIL_STOP_PERMANENT) */
} resil_breaker_open_policy;

/* What the guard tells its listener. */
typedef enum resil_guard_event_kind {
    RESIL_GUARD_REFUSED = 0, /* the breaker refused an attempt */
    RESIL_GUARD_REPORT_FAILED /* an attempt ran but its outcome could not be
                                 recorded (a shared breaker's lock) */
} resil_guard_event_kind;

typedef struct resil_guard_event {
    resil_guard_event_kind kind;
    int error;         /* REFUSED: acquire's error (RESIL_ECIRCUIT_OPEN, or
                          RESIL_ETIMEDOUT / -errno of a shared breaker's
                          lock); REPORT_FAILED: record's error */
    double retry_in_s; /* REFUSED with RESIL_ECIRCUIT_OPEN: acquire's answer:
                          > 0 seconds until half-open, 0 half-open with every
                          trial permit taken, -1 forced open; otherwise 0 */
    const resil_breaker *breaker;
} resil_guard_event;

typedef void (*resil_guard_listener)(const resil_guard_event *event, void *arg);

#define RESIL_GUARD_OPTS_VERSION 1

/* The guard's options.  Versioned as resil_retry_opts (see "options" in
 * resil/retry.h): start from RESIL_GUARD_OPTS_INIT; zero means default. */
typedef struct resil_guard_opts {
    unsigned version;                      /* RESIL_GUARD_OPTS_VERSION (0 means 1) */
    resil_breaker_open_policy open_policy; /* default WAIT */
    resil_guard_listener on_event;         /* NULL: none */
    void *event_arg;
} resil_guard_opts;

#ifdef __cplusplus
static inline resil_guard_opts resil__guard_opts_init(void)
{
    resil_guard_opts o = {};
    o.version = RESIL_GUARD_OPTS_VERSION;
    return o;
}
#define RESIL_GUARD_OPTS_INIT resil__guard_opts_init()
#else
#define RESIL_GUARD_OPTS_INIT {.version = RESIL_GUARD_OPTS_VERSION}
#endif

typedef struct resil_guard resil_guard;

/* Makes a guard over breaker b (borrowed: it must outlive the guard).  opts
 * may be NULL (WAIT, no listener); it is copied.  Returns 0 and the caller
 * owns *out; RESIL_EINVAL for a NULL b, an unknown policy or a version newer
 * than the library's (err names the field); -ENOMEM. */
RESIL_EXPORT int resil_guard_new(resil_guard **out, resil_breaker *b, const resil_guard_opts *opts,
                                 resil_error *err);

/* Releases a guard (NULL is ignored).  No retry may still use its gate. */
RESIL_EXPORT void resil_guard_free(resil_guard *g);

/* The gate to put in resil_retry_opts.gate (borrowed: lives as long as g).
 * Any retry using it (resil_retry with these opts) is guarded. */
RESIL_EXPORT const resil_retry_gate *resil_guard_gate(const resil_guard *g);

/* resil_retry with every attempt guarded by g: opts (may be NULL) is used
 * with its gate replaced by g's.  Arguments, result and returns as
 * resil_retry (RESIL_EINVAL, op not called, for a NULL g or op);
 * result->last_error is the breaker's error when the breaker had the last
 * word (a refusal that stopped the retry). */
RESIL_EXPORT int resil_guard_retry(resil_guard *g, resil_retry_op op, void *arg, const char *name,
                                   const resil_retry_config *config, const resil_retry_opts *opts,
                                   resil_retry_result *result);

/* resil_retry with every attempt guarded by b, with open policy `policy`
 * and no listener: resil_guard_retry over a guard made for this one call
 * (nothing is allocated).  An attempt the breaker refuses does not run op
 * and is not counted as an attempt (see above); its error,
 * RESIL_ECIRCUIT_OPEN, is result->last_error when the breaker had the last
 * word.  Returns as resil_retry; RESIL_EINVAL for a NULL b or op. */
RESIL_EXPORT int resil_retry_with_breaker(resil_breaker *b, resil_breaker_open_policy policy,
                                          resil_retry_op op, void *arg, const char *name,
                                          const resil_retry_config *config,
                                          const resil_retry_opts *opts,
                                          resil_retry_result *result);

#ifdef __cplusplus
}
#endif
#endif /* RESIL_GUARD_H */
