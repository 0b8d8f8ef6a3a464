/* src/internal/files_metrics.h - the files module's own metrics
 * (src/files_metrics.c): resil_file_operations_total{op,result},
 * resil_file_operation_duration_seconds{op} and
 * resil_file_lock_wait_seconds{mode} in the default registry.  Each is a
 * cheap no-op when metrics are off; handles are resolved on first use and
 * kept (no registry lock after that). */
#ifndef RESIL_INTERNAL_FILES_METRICS_H
#define RESIL_INTERNAL_FILES_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "internal/metrics.h" /* resil__metrics_enabled */

typedef enum resil__file_op {
    RESIL__FILE_OP_WRITE_ATOMIC = 0, /* op="write_atomic" */
    RESIL__FILE_OP_APPEND,           /* op="append" */
    RESIL__FILE_OP_LOCK,             /* op="lock" */
    RESIL__FILE_OP_COUNT
} resil__file_op;

/* A file operation ended with rc after ns nanoseconds (ns < 0: not timed). */
void resil__files_metrics_op(resil__file_op op, int rc, int64_t ns);

/* A lock was waited for ns nanoseconds. */
void resil__files_metrics_lock_wait(bool exclusive, int64_t ns);

#endif
