/* src/retry_metrics.c - the retry module's own metrics
 * (resil_retry_calls_total, resil_retry_attempts_total,
 * resil_retry_attempt_duration_seconds), its per-thread name cache and
 * resil_retry_note_success, over the metrics layer's internal API
 * (src/internal/metrics.h).  See src/internal/retry_metrics.h. */
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

#include "resil/retry.h"
#include "internal/metrics.h"
#include "internal/retry_metrics.h"

/* A retry name's handles: calls by kind, failed attempts, and successful
 * attempts as a derived counter (the successful calls: each has exactly one
 * successful attempt), so the fast path adds to one cell only.  The attempt
 * duration histogram is resolved on the first timed attempt (a retry that is
 * never timed gets no empty series). */
struct retry_handles {
    resil_counter *calls[4]; /* without retry ok, with retry ok, without fail, with fail */
    resil_counter *failed_attempts;
    resil_counter *not_permitted;      /* NULL until a gate refuses an attempt */
    resil_histogram *attempt_duration; /* NULL until resolved */
};

static const char *const retry_kinds[] = {"successful_without_retry", "successful_with_retry",
                                          "failed_without_retry", "failed_with_retry"};

static int retry_handles_get(struct retry_handles *h, const char *name)
{
    static const char *const l2[] = {"name", "kind"};
    static const char *const la[] = {"name", "result"};
    resil_metrics_registry *r = resil_metrics_default();
    resil_metric *calls, *att;
    h->attempt_duration = NULL;
    h->not_permitted = NULL;
    if (!r ||
        resil_metrics_counter_new(&calls, r, "resil_retry_calls_total",
                                  "Retries by outcome (Resilience4j's kinds).", l2, 2, NULL) ||
        resil_metrics_counter_new(&att, r, "resil_retry_attempts_total",
                                  "Attempts made by retries, by result.", la, 2, NULL))
        return -1;
    for (int i = 0; i < 4; i++) {
        const char *v[] = {name, retry_kinds[i]};
        if (resil_counter_get(&h->calls[i], calls, v))
            return -1;
    }
    const char *vf[] = {name, "failure"}, *vs[] = {name, "success"};
    resil_counter *ok;
    if (resil_counter_get(&h->failed_attempts, att, vf) || resil_counter_get(&ok, att, vs))
        return -1;
    resil__metrics_counter_derive(ok, h->calls[0], h->calls[1]);
    return 0;
}

/* This thread's last retry name and its handles. */
struct retry_cache {
    const char *ptr;
    char copy[64];
    struct retry_handles h;
};
static _Thread_local struct retry_cache retry_cache RESIL__TLS_IE;

static struct retry_cache *retry_cached(const char *name)
{
    struct retry_cache *rc = &retry_cache;
    if (rc->ptr == name && strcmp(rc->copy, name) == 0)
        return rc;
    if (strlen(name) >= sizeof rc->copy) {
        static _Thread_local struct retry_cache long_name RESIL__TLS_IE;
        if (retry_handles_get(&long_name.h, name))
            return NULL;
        return &long_name;
    }
    struct retry_handles h;
    if (retry_handles_get(&h, name))
        return NULL;
    rc->h = h;
    strcpy(rc->copy, name);
    rc->ptr = name;
    return rc;
}

/* Whether s equals the cached copy (short names: an inline loop beats a
 * call into the C library's strcmp). */
static inline bool same_name(const char *copy, const char *s)
{
    size_t i = 0;
    while (copy[i] == s[i]) {
        if (copy[i] == 0)
            return true;
        i++;
    }
    return false;
}

__thread struct resil__private_retry_seen resil__private_retry_tls_seen RESIL__TLS_IE;

/* A thread that gives its owned block back forgets the cell it cached in
 * it (the inline resil_retry would add to it with plain stores). */
static void forget_seen(void)
{
    resil__private_retry_tls_seen.name = NULL;
}

static pthread_once_t hook_once = PTHREAD_ONCE_INIT;

static void hook_register(void)
{
    resil__metrics_on_block_release(forget_seen);
}

void resil_retry_note_success(const char *name)
{
    if (!name)
        return;
    struct resil__private_retry_seen *seen = &resil__private_retry_tls_seen;
    if (!resil__metrics_enabled()) {
        seen->off = 1;
        return;
    }
    struct retry_cache *rc = &retry_cache;
    if (!(rc->ptr == name && same_name(rc->copy, name)) && !(rc = retry_cached(name)))
        return;
    resil_counter_inc(rc->h.calls[0]);
    /* What the inline resil_retry needs to count the next one itself. */
    size_t n = strlen(name);
    if (n >= sizeof seen->copy) {
        seen->name = NULL;
        return;
    }
    bool owned;
    pthread_once(&hook_once, hook_register);
    seen->cell = resil__metrics_my_counter_cell(rc->h.calls[0], &owned);
    seen->owned = owned;
    memcpy(seen->copy, name, n + 1);
    seen->name = name;
}

void resil__retry_metrics_done(const char *name, int attempts, bool success)
{
    if (!resil__metrics_enabled())
        return;
    struct retry_cache *rc = retry_cached(name ? name : "");
    if (!rc)
        return;
    resil_counter_inc(rc->h.calls[(success ? 0 : 2) + (attempts > 1 ? 1 : 0)]);
}

void resil__retry_metrics_failed_attempt(const char *name)
{
    if (!resil__metrics_enabled())
        return;
    struct retry_cache *rc = retry_cached(name ? name : "");
    if (rc)
        resil_counter_inc(rc->h.failed_attempts);
}

/* An attempt that the retry's gate refused (it never ran):
 * resil_retry_attempts_total{name,result="not_permitted"}, resolved on the
 * first refusal (a retry without a gate gets no empty series). */
void resil__retry_metrics_not_permitted(const char *name)
{
    if (!resil__metrics_enabled())
        return;
    if (!name)
        name = "";
    struct retry_cache *rc = retry_cached(name);
    if (!rc)
        return;
    if (!rc->h.not_permitted) {
        static const char *const la[] = {"name", "result"};
        const char *v[] = {name, "not_permitted"};
        rc->h.not_permitted = resil__metrics_counter_of(
            "resil_retry_attempts_total", "Attempts made by retries, by result.", la, 2, v);
        if (!rc->h.not_permitted)
            return;
    }
    resil_counter_inc(rc->h.not_permitted);
}

/* The family resil_record_retry_attempt records durations into, too (same
 * help, labels and buckets, or registering it would conflict). */
void resil__retry_metrics_attempt_duration(const char *name, double seconds)
{
    if (!resil__metrics_enabled())
        return;
    if (!name)
        name = "";
    struct retry_cache *rc = retry_cached(name);
    if (!rc)
        return;
    if (!rc->h.attempt_duration) {
        static const char *const l1[] = {"name"};
        const char *v[] = {name};
        rc->h.attempt_duration = resil__metrics_histogram_of(
            "resil_retry_attempt_duration_seconds", "How long attempts took.", l1, 1, v);
        if (!rc->h.attempt_duration)
            return;
    }
    resil_histogram_observe(rc->h.attempt_duration, seconds);
}
