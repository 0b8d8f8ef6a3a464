/* src/internal/metrics.h - the metrics layer's internal API: what resil's
 * own modules use to record their metrics into the default registry
 * (include/resil/metrics.h), and what the metrics exporters
 * (src/metrics_dir.c) need of a registry beyond the public API.
 *
 * Each module's instrumentation lives in that module (src/retry_metrics.c,
 * src/breaker_metrics.c, src/files_metrics.c, with their own internal
 * headers) and resolves its handles once: the default registry is never
 * freed, so a handle resolved from it stays valid for the process (and in a
 * forked child, whose copy of the registry holds the same handles).
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

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "resil/metrics.h"

/* ---- for the modules' instrumentation ---------------------------------------- */

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

/* The child with these label values of a family of the default registry,
 * registered (idempotently) with this help and these labels; histograms get
 * the default buckets.  Returns a borrowed handle, valid for the process,
 * or NULL (metrics off, out of memory, or a conflicting family of that
 * name).  Takes the registry's and the family's locks: resolve once and
 * keep the handle. */
resil_counter *resil__metrics_counter_of(const char *name, const char *help,
                                         const char *const *labels, size_t n,
                                         const char *const *values);
resil_histogram *resil__metrics_histogram_of(const char *name, const char *help,
                                             const char *const *labels, size_t n,
                                             const char *const *values);

/* Makes c a derived counter: its value is its own cells' plus a's plus b's
 * (so a fast path that counts a into one cell also counts c). */
void resil__metrics_counter_derive(resil_counter *c, const resil_counter *a,
                                   const resil_counter *b);

/* This thread's integer cell of counter c, and whether the thread owns the
 * block it lies in (then a plain load and store adds to it; otherwise an
 * atomic add).  The cell stays this thread's until the thread exits or
 * gives its block back: see resil__metrics_on_block_release. */
uint64_t *resil__metrics_my_counter_cell(const resil_counter *c, bool *owned);

/* Registers fn to run on a thread that gives its owned block back (at its
 * exit), before it moves to a shared one: a module that keeps pointers to
 * this thread's cells (retry's fast path) forgets them there.  At most 4;
 * idempotent.  Returns 0 or -ENOSPC. */
int resil__metrics_on_block_release(void (*fn)(void));

/* ---- for the exporters (src/metrics_dir.c) ------------------------------------- */

/* Runs r's collectors, then, under r's flush lock, builds the document of
 * what r's counters and histograms gained since the last delta (and the
 * current gauges) and moves the marks on; when it holds any family, calls
 * write(doc, arg) (still under the lock; doc is borrowed) and returns what
 * write returned, else 0.  -ENOMEM when the document could not be built
 * (write not called). */
int resil__metrics_flush_delta(resil_metrics_registry *r, int (*write)(json_t *doc, void *arg),
                               void *arg);

/* Merges a metrics JSON document into r whole or not at all: it is first
 * merged into a registry of its own (which checks all of it), then checked
 * against r's families.  Returns 0, RESIL_EPARSE, RESIL_EINVAL, -ENOMEM. */
int resil__metrics_merge_whole(resil_metrics_registry *r, const json_t *doc, resil_error *err);

/* 1/0, true/false, yes/no, on/off in any case: 0 and *out; -1 otherwise. */
int resil__metrics_parse_bool(const char *v, bool *out);

#endif
