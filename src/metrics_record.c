/* src/metrics_record.c - the original module's interface: the ring of
 * recent entries, resil_record_*, the summary, resil_export_prometheus_metrics
 * and the timer. */
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

#include "resil/clock.h"
#include "internal/metrics_impl.h"

/* ---- the ring of recent entries and the original's record_* -----------------------------------
 */

enum { E_RETRY = 1, E_BREAKER, E_OSC };

struct entry {
    int64_t wall_ns;
    int kind;
    char name[64];
    char what[24]; /* breaker state, oscillation pattern */
    int n;         /* attempt, cycles */
    bool ok;
    double duration_s;
};

static pthread_mutex_t ring_mu = PTHREAD_MUTEX_INITIALIZER;
static struct entry *ring;
static size_t ring_head, ring_count;

static int ring_add(const struct entry *e)
{
    size_t env_max_entries = resil__metrics_max_entries();
    pthread_mutex_lock(&ring_mu);
    if (!ring && !(ring = calloc(env_max_entries, sizeof *ring))) {
        pthread_mutex_unlock(&ring_mu);
        return -ENOMEM;
    }
    ring[ring_head] = *e;
    ring_head = (ring_head + 1) % env_max_entries;
    if (ring_count < env_max_entries)
        ring_count++;
    pthread_mutex_unlock(&ring_mu);
    return 0;
}

void resil_metrics_entries_clear(void)
{
    pthread_mutex_lock(&ring_mu);
    ring_head = ring_count = 0;
    pthread_mutex_unlock(&ring_mu);
}

static struct entry entry_of(int kind, const char *name)
{
    struct entry e;
    memset(&e, 0, sizeof e);
    e.wall_ns = resil_clock_wall_ns(NULL);
    e.kind = kind;
    /* the summary is JSON: keys must be UTF-8 */
    resil__metrics_utf8_fix_into(e.name, sizeof e.name, name);
    return e;
}

int resil_record_retry_attempt(const char *operation, int attempt, bool success, double duration_s)
{
    if (!resil_metrics_enabled())
        return 0;
    if (!operation)
        return RESIL_EINVAL;
    resil_metrics_registry *r = resil_metrics_default();
    if (!r)
        return -ENOMEM;
    static const char *const lab[] = {"name", "result"};
    static const char *const lab1[] = {"name"};
    resil_metric *m, *h;
    int rc = resil_metrics_counter_new(&m, r, "resil_retry_attempts_total",
                                       "Attempts made by retries, by result.", lab, 2, NULL);
    if (rc == 0)
        rc = resil_metrics_histogram_new(&h, r, "resil_retry_attempt_duration_seconds",
                                         "How long attempts took.", lab1, 1, NULL, 0, NULL);
    if (rc)
        return rc;
    const char *v[] = {operation, success ? "success" : "failure"};
    const char *vh[] = {operation};
    resil_counter *c;
    resil_histogram *hh;
    if ((rc = resil_counter_get(&c, m, v)) != 0 || (rc = resil_histogram_get(&hh, h, vh)) != 0)
        return rc;
    resil_counter_inc(c);
    if (duration_s >= 0)
        resil_histogram_observe(hh, duration_s);
    struct entry e = entry_of(E_RETRY, operation);
    e.n = attempt;
    e.ok = success;
    e.duration_s = duration_s;
    return ring_add(&e);
}

int resil_record_circuit_breaker_state(const char *service, const char *state)
{
    if (!resil_metrics_enabled())
        return 0;
    static const char *const states[] = {"closed", "open", "half_open", "forced_open", "disabled"};
    if (!service || !state)
        return RESIL_EINVAL;
    bool known = false;
    for (size_t i = 0; i < 5; i++)
        known |= strcmp(states[i], state) == 0;
    if (!known)
        return RESIL_EINVAL;
    resil_metrics_registry *r = resil_metrics_default();
    if (!r)
        return -ENOMEM;
    static const char *const lab[] = {"name", "state"};
    resil_metric *m;
    int rc = resil_metrics_gauge_new(&m, r, "resil_circuitbreaker_state",
                                     "1 for a circuit breaker's current state, 0 for the others.",
                                     lab, 2, NULL);
    if (rc)
        return rc;
    for (size_t i = 0; i < 5; i++) {
        const char *v[] = {service, states[i]};
        resil_gauge *g;
        if ((rc = resil_gauge_get(&g, m, v)) != 0)
            return rc;
        resil_gauge_set(g, strcmp(states[i], state) == 0 ? 1 : 0);
    }
    struct entry e = entry_of(E_BREAKER, service);
    resil__metrics_utf8_fix_into(e.what, sizeof e.what, state);
    return ring_add(&e);
}

int resil_record_oscillation_event(const char *pattern, const char *agent, int cycles)
{
    if (!resil_metrics_enabled())
        return 0;
    if (!pattern || cycles < 0)
        return RESIL_EINVAL;
    resil_metrics_registry *r = resil_metrics_default();
    if (!r)
        return -ENOMEM;
    static const char *const lab[] = {"pattern"};
    resil_metric *m;
    int rc = resil_metrics_counter_new(&m, r, "resil_oscillation_events_total",
                                       "Rework loops detected, by pattern.", lab, 1, NULL);
    if (rc)
        return rc;
    const char *v[] = {pattern};
    resil_counter *c;
    if ((rc = resil_counter_get(&c, m, v)) != 0)
        return rc;
    resil_counter_inc(c);
    struct entry e = entry_of(E_OSC, agent ? agent : "");
    resil__metrics_utf8_fix_into(e.what, sizeof e.what, pattern);
    e.n = cycles;
    return ring_add(&e);
}

json_t *resil_get_metrics_summary(void)
{
    bool en = resil_metrics_enabled();
    size_t env_max_entries = resil__metrics_max_entries();
    json_t *s = json_object();
    json_t *retry = json_object(), *cb = json_object(), *osc = json_object();
    int64_t oldest = 0, newest = 0;
    size_t retries = 0, ok = 0, cbn = 0, oscn = 0;
    double dur = 0;
    pthread_mutex_lock(&ring_mu);
    size_t count = ring_count;
    for (size_t k = 0; k < ring_count; k++) {
        const struct entry *e =
            &ring[(ring_head + env_max_entries - ring_count + k) % env_max_entries];
        if (k == 0)
            oldest = e->wall_ns;
        newest = e->wall_ns;
        if (e->kind == E_RETRY) {
            retries++;
            ok += e->ok;
            if (e->duration_s > 0)
                dur += e->duration_s;
        } else if (e->kind == E_BREAKER) {
            cbn++;
            json_object_set_new(cb, e->name, json_string(e->what));
        } else if (e->kind == E_OSC) {
            oscn++;
            json_t *n = json_object_get(osc, e->what);
            json_object_set_new(osc, e->what, json_integer((n ? json_integer_value(n) : 0) + 1));
        }
    }
    pthread_mutex_unlock(&ring_mu);
    json_object_set_new(retry, "attempts", json_integer((json_int_t)retries));
    json_object_set_new(retry, "successes", json_integer((json_int_t)ok));
    json_object_set_new(retry, "failures", json_integer((json_int_t)(retries - ok)));
    json_object_set_new(retry, "total_duration_s", json_real(dur));
    json_object_set_new(s, "total_entries", json_integer((json_int_t)count));
    json_object_set_new(s, "max_entries", json_integer((json_int_t)env_max_entries));
    json_object_set_new(s, "enabled", json_boolean(en));
    json_object_set_new(s, "retry_attempts", retry);
    json_object_set_new(s, "circuit_breakers", cb);
    json_object_set_new(s, "circuit_breaker_changes", json_integer((json_int_t)cbn));
    json_object_set_new(s, "oscillations", osc);
    json_object_set_new(s, "oscillation_events", json_integer((json_int_t)oscn));
    json_object_set_new(s, "oldest", count ? json_real((double)oldest / 1e9) : json_null());
    json_object_set_new(s, "newest", count ? json_real((double)newest / 1e9) : json_null());
    return s;
}

char *resil_export_prometheus_metrics(void)
{
    resil_metrics_registry *r = resil_metrics_default();
    char *out = NULL;
    if (r && resil_metrics_export(&out, NULL, r, RESIL_METRICS_PROMETHEUS) != 0)
        return NULL;
    return out;
}

void resil_timer_start(resil_timer *t, const resil_clock *clock)
{
    t->clock = clock;
    t->start_ns = resil_clock_monotonic_ns(clock);
}

double resil_timer_elapsed(const resil_timer *t)
{
    return resil__ns_to_s(resil_clock_monotonic_ns(t->clock) - t->start_ns);
}
