/* src/internal/metrics.h - how resil's own modules record their metrics into
 * the default registry (include/resil/metrics.h).  Every function here is a
 * cheap no-op when RESIL_METRICS_ENABLED is false; handles are resolved
 * once and cached.
 *
 * Names (Resilience4j's conventions, base units, no paths in labels):
 *   resil_retry_calls_total{name,kind}          kind: successful_without_retry,
 *                                               successful_with_retry,
 *                                               failed_without_retry, failed_with_retry
 *   resil_retry_attempts_total{name,result}     result: success, failure
 *   resil_retry_attempt_duration_seconds{name}  attempts of retries with measure_time,
 *                                               and resil_record_retry_attempt
 *   resil_circuitbreaker_state{name,state}      1 for the current state, 0 for the others
 *                                               (set on transitions, and before every export
 *                                               by a collector: see src/breaker.c)
 *   resil_circuitbreaker_calls_total{name,kind} kind: successful, failed, not_permitted,
 *                                               ignored
 *   resil_circuitbreaker_call_duration_seconds{name,kind}
 *                                               kind: successful, failed, ignored
 *   resil_circuitbreaker_transitions_total{name,from,to}
 *   resil_file_operations_total{op,result}      op: write_atomic, append, lock;
 *                                               result: ok, error
 *   resil_file_operation_duration_seconds{op}
 *   resil_file_lock_wait_seconds{mode}          mode: shared, exclusive
 */
#ifndef RESIL_INTERNAL_METRICS_H
#define RESIL_INTERNAL_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "resil/metrics.h"

/* Whether recording is on, without a call once known (-1 unknown). */
extern _Atomic int resil__metrics_on;
bool resil__metrics_on_slow(void);
static inline bool resil__metrics_enabled(void)
{
    int on = __atomic_load_n((int *)&resil__metrics_on, __ATOMIC_RELAXED);
    return on > 0 || (on < 0 && resil__metrics_on_slow());
}

#if defined(__GNUC__)
#define RESIL__TLS_IE __attribute__((tls_model("initial-exec")))
#else
#define RESIL__TLS_IE
#endif

/* A retry ended after `attempts` attempts, in success or not (its failed
 * attempts were counted one by one). */
void resil__metrics_retry_done(const char *name, int attempts, bool success);

/* An attempt of a retry failed. */
void resil__metrics_retry_failed_attempt(const char *name);

/* An attempt of a retry took `seconds` (the engine calls it only for the
 * attempts it timed: it reads no clock for this). */
void resil__metrics_retry_attempt_duration(const char *name, double seconds);

/* A breaker's handles, resolved when it is created (all NULL when off).
 * duration[] is indexed by resil_breaker_verdict (successful, failed,
 * ignored). */
struct resil__cb_metrics {
    resil_counter *successful, *failed, *ignored, *not_permitted;
    resil_histogram *duration[3];
    resil_gauge *state[5];
    resil_metric *transitions;
};
void resil__metrics_breaker_init(struct resil__cb_metrics *m, const char *name, int state);
/* Counts a transition (the state gauges are the caller's: see below). */
void resil__metrics_breaker_transition(struct resil__cb_metrics *m, const char *name, int from,
                                       int to);
/* Sets the state gauges: 1 for `state`, 0 for the others (no-op when off).
 * The breaker module serialises the calls for one breaker (a transition
 * and an export's collector must not interleave their five sets). */
void resil__metrics_breaker_state(const struct resil__cb_metrics *m, int state);

/* A file operation ended with rc after ns nanoseconds (ns < 0: not timed). */
void resil__metrics_file_op(const char *op, int rc, int64_t ns);

/* A lock was waited for ns nanoseconds. */
void resil__metrics_lock_wait(bool exclusive, int64_t ns);

#endif
