/* src/internal/breaker_metrics.h - the circuit breaker's own metrics
 * (src/breaker_metrics.c): resil_circuitbreaker_state{name,state},
 * resil_circuitbreaker_calls_total{name,kind},
 * resil_circuitbreaker_call_duration_seconds{name,kind} and
 * resil_circuitbreaker_transitions_total{name,from,to} in the default
 * registry (see src/internal/metrics.h for the names). */
#ifndef RESIL_INTERNAL_BREAKER_METRICS_H
#define RESIL_INTERNAL_BREAKER_METRICS_H

#include "resil/metrics.h"
#include "internal/metrics.h" /* resil__metrics_enabled */

/* A breaker's handles, resolved when it is created (all NULL when off).
 * duration[] is indexed by resil_breaker_verdict (successful, failed,
 * ignored). */
struct resil__cb_metrics {
    resil_counter *successful, *failed, *ignored, *not_permitted;
    resil_histogram *duration[3];
    resil_gauge *state[5];
    resil_metric *transitions;
};
void resil__breaker_metrics_init(struct resil__cb_metrics *m, const char *name, int state);
/* Counts a transition (the state gauges are the caller's: see below). */
void resil__breaker_metrics_transition(struct resil__cb_metrics *m, const char *name, int from,
                                       int to);
/* Sets the state gauges: 1 for `state`, 0 for the others (no-op when off).
 * The breaker module serialises the calls for one breaker (a transition
 * and an export's collector must not interleave their five sets). */
void resil__breaker_metrics_state(const struct resil__cb_metrics *m, int state);

#endif
