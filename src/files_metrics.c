/* src/files_metrics.c - the files module's own metrics (file operations and
 * lock waits), over the metrics layer's internal API.  See
 * src/internal/files_metrics.h.
 *
 * Each handle is resolved once and kept in an atomic pointer: the default
 * registry is never freed, so it stays valid for the process, and a forked
 * child inherits it with the registry (the same addresses).  Two threads
 * resolving one handle at once get the same one (registration is
 * idempotent).  A handle that could not be resolved (out of memory, a
 * family of that name registered by the user with another schema) is tried
 * again on the next operation. */
#include "internal/files_metrics.h"

#include <stdatomic.h>
#include <stddef.h>

#include "internal/metrics.h"

static const char *const op_names[RESIL__FILE_OP_COUNT] = {"write_atomic", "append", "lock"};

static _Atomic(resil_counter *) op_counts[RESIL__FILE_OP_COUNT][2]; /* [op][error] */
static _Atomic(resil_histogram *) op_durations[RESIL__FILE_OP_COUNT];
static _Atomic(resil_histogram *) lock_waits[2]; /* [exclusive] */

static resil_counter *op_count(resil__file_op op, bool error)
{
    resil_counter *c = atomic_load_explicit(&op_counts[op][error], memory_order_acquire);
    if (!c) {
        static const char *const l2[] = {"op", "result"};
        const char *v[] = {op_names[op], error ? "error" : "ok"};
        c = resil__metrics_counter_of("resil_file_operations_total",
                                      "Process-safe file operations, by result.", l2, 2, v);
        if (c)
            atomic_store_explicit(&op_counts[op][error], c, memory_order_release);
    }
    return c;
}

static resil_histogram *op_duration(resil__file_op op)
{
    resil_histogram *h = atomic_load_explicit(&op_durations[op], memory_order_acquire);
    if (!h) {
        static const char *const l1[] = {"op"};
        const char *v[] = {op_names[op]};
        h = resil__metrics_histogram_of("resil_file_operation_duration_seconds",
                                        "How long process-safe file operations took.", l1, 1, v);
        if (h)
            atomic_store_explicit(&op_durations[op], h, memory_order_release);
    }
    return h;
}

void resil__files_metrics_op(resil__file_op op, int rc, int64_t ns)
{
    if (!resil__metrics_enabled() || (unsigned)op >= RESIL__FILE_OP_COUNT)
        return;
    resil_counter *c = op_count(op, rc != 0);
    if (c)
        resil_counter_inc(c);
    if (ns >= 0) {
        resil_histogram *h = op_duration(op);
        if (h)
            resil_histogram_observe(h, (double)ns / 1e9);
    }
}

void resil__files_metrics_lock_wait(bool exclusive, int64_t ns)
{
    if (!resil__metrics_enabled())
        return;
    resil_histogram *h = atomic_load_explicit(&lock_waits[exclusive], memory_order_acquire);
    if (!h) {
        static const char *const l1[] = {"mode"};
        const char *v[] = {exclusive ? "exclusive" : "shared"};
        h = resil__metrics_histogram_of("resil_file_lock_wait_seconds",
                                        "How long file locks were waited for.", l1, 1, v);
        if (!h)
            return;
        atomic_store_explicit(&lock_waits[exclusive], h, memory_order_release);
    }
    resil_histogram_observe(h, (double)ns / 1e9);
}
