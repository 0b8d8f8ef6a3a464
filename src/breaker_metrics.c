/* src/breaker_metrics.c - the circuit breaker's own metrics, over the
 * metrics layer's internal API.  See src/internal/breaker_metrics.h. */
#define _GNU_SOURCE
#include "resil/metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "internal/metrics.h"
#include "internal/breaker_metrics.h"

static const char *const cb_states[] = {"closed", "open", "half_open", "forced_open", "disabled"};

void resil__breaker_metrics_init(struct resil__cb_metrics *m, const char *name, int state)
{
    memset(m, 0, sizeof *m);
    if (!resil__metrics_enabled())
        return;
    resil_metrics_registry *r = resil_metrics_default();
    static const char *const l2[] = {"name", "kind"};
    static const char *const ls[] = {"name", "state"};
    static const char *const lt[] = {"name", "from", "to"};
    static const char *const kinds[] = {"successful", "failed", "ignored", "not_permitted"};
    resil_counter **cs[] = {&m->successful, &m->failed, &m->ignored, &m->not_permitted};
    for (size_t i = 0; i < 4; i++) {
        const char *v[] = {name, kinds[i]};
        *cs[i] = resil__metrics_counter_of("resil_circuitbreaker_calls_total",
                                           "Calls through circuit breakers, by kind.", l2, 2, v);
    }
    resil_metric *d;
    if (resil_metrics_histogram_new(&d, r, "resil_circuitbreaker_call_duration_seconds",
                                    "How long calls through circuit breakers took, by kind.", l2, 2,
                                    NULL, 0, NULL) == 0)
        for (size_t i = 0; i < 3; i++) {
            const char *v[] = {name, kinds[i]};
            if (resil_histogram_get(&m->duration[i], d, v) != 0)
                m->duration[i] = NULL;
        }
    resil_metric *g;
    if (resil_metrics_gauge_new(&g, r, "resil_circuitbreaker_state",
                                "1 for a circuit breaker's current state, 0 for the others.", ls, 2,
                                NULL) == 0)
        for (int i = 0; i < 5; i++) {
            const char *v[] = {name, cb_states[i]};
            if (resil_gauge_get(&m->state[i], g, v) == 0)
                resil_gauge_set(m->state[i], i == state);
        }
    if (resil_metrics_counter_new(&m->transitions, r, "resil_circuitbreaker_transitions_total",
                                  "Circuit breaker state transitions.", lt, 3, NULL) != 0)
        m->transitions = NULL;
}

void resil__breaker_metrics_transition(struct resil__cb_metrics *m, const char *name, int from,
                                       int to)
{
    if (!m->transitions || from < 0 || from > 4 || to < 0 || to > 4)
        return;
    const char *v[] = {name, cb_states[from], cb_states[to]};
    resil_counter *c;
    if (resil_counter_get(&c, m->transitions, v) == 0)
        resil_counter_inc(c);
}

void resil__breaker_metrics_state(const struct resil__cb_metrics *m, int state)
{
    for (int i = 0; i < 5; i++)
        if (m->state[i])
            resil_gauge_set(m->state[i], i == state);
}
