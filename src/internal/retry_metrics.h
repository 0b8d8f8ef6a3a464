/* src/internal/retry_metrics.h - the retry module's own metrics
 * (src/retry_metrics.c): resil_retry_calls_total{name,kind},
 * resil_retry_attempts_total{name,result} and
 * resil_retry_attempt_duration_seconds{name} in the default registry (see
 * src/internal/metrics.h for the names).  The first-attempt successes of the
 * inline resil_retry are counted by resil_retry_note_success and its
 * per-thread cache (include/resil/retry_inline.h).  Each is a cheap no-op
 * when metrics are off; a NULL name is recorded as "". */
#ifndef RESIL_INTERNAL_RETRY_METRICS_H
#define RESIL_INTERNAL_RETRY_METRICS_H

#include <stdbool.h>

#include "internal/metrics.h" /* resil__metrics_enabled */

/* A retry ended after `attempts` attempts, in success or not (its failed
 * attempts were counted one by one). */
void resil__retry_metrics_done(const char *name, int attempts, bool success);

/* The retry's gate refused an attempt (not an attempt: result="not_permitted"). */
void resil__retry_metrics_not_permitted(const char *name);

/* An attempt of a retry failed. */
void resil__retry_metrics_failed_attempt(const char *name);

/* An attempt of a retry took `seconds` (the engine calls it only for the
 * attempts it timed: it reads no clock for this). */
void resil__retry_metrics_attempt_duration(const char *name, double seconds);

#endif
