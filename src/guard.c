/* src/guard.c - the policy layer's guard: fills resil_retry's gate hook from
 * a circuit breaker (resil/guard.h).  retry.c knows only the gate; breaker.c
 * knows neither the retry nor this file. */
#include "resil/guard.h"

#include "internal/opts.h"

#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>

struct resil_guard {
    resil_retry_gate gate; /* gate.arg is the guard itself */
    resil_breaker *breaker;
    resil_guard_opts opts;
};

_Static_assert(sizeof(resil_breaker_permit) <= sizeof(resil_gate_ticket),
               "a breaker permit fits in a gate ticket");
_Static_assert(alignof(resil_breaker_permit) <= alignof(resil_gate_ticket),
               "a gate ticket is aligned for a breaker permit");

static void notify(const struct resil_guard *g, resil_guard_event_kind kind, int error,
                   double retry_in_s)
{
    if (!g->opts.on_event)
        return;
    resil_guard_event ev = {kind, error, retry_in_s, g->breaker};
    g->opts.on_event(&ev, g->opts.event_arg);
}

static int guard_acquire(void *arg, resil_gate_ticket *ticket, resil_gate_refusal *refusal)
{
    struct resil_guard *g = arg;
    double wait_s = 0;
    int rc = resil_breaker_acquire(g->breaker, (resil_breaker_permit *)(void *)ticket, &wait_s);
    if (rc == 0)
        return 0;
    notify(g, RESIL_GUARD_REFUSED, rc, rc == RESIL_ECIRCUIT_OPEN ? wait_s : 0);
    /* A lock error, STOP, or forced open (nothing to wait for): stop. */
    if (rc != RESIL_ECIRCUIT_OPEN || g->opts.open_policy == RESIL_BREAKER_OPEN_STOP ||
        wait_s < 0)
        return rc;
    refusal->outcome = RESIL_OUTCOME_TRANSIENT;
    refusal->retry_after_s = wait_s > 0 ? wait_s : -1.0; /* 0: trials taken, back off */
    return rc;
}

static void guard_report(void *arg, resil_gate_ticket *ticket, const resil_gate_report *r)
{
    struct resil_guard *g = arg;
    resil_breaker_permit *p = (resil_breaker_permit *)(void *)ticket;
    int rc;
    if (r->verdict == RESIL_GATE_AUTO && r->outcome != RESIL_OUTCOME_SUCCESS && r->error != 0) {
        /* the breaker's classifier judges the error */
        rc = resil_breaker_report(g->breaker, p, r->error, r->duration_s);
    } else {
        resil_breaker_verdict v =
            r->verdict == RESIL_GATE_IGNORE    ? RESIL_BREAKER_IGNORE
            : r->verdict == RESIL_GATE_SUCCESS ? RESIL_BREAKER_SUCCESS
            : r->verdict == RESIL_GATE_FAILURE ? RESIL_BREAKER_FAILURE
            : r->outcome == RESIL_OUTCOME_SUCCESS ? RESIL_BREAKER_SUCCESS /* AUTO */
                                                  : RESIL_BREAKER_FAILURE;
        rc = resil_breaker_record(g->breaker, p, v, r->duration_s);
    }
    if (rc != 0)
        notify(g, RESIL_GUARD_REPORT_FAILED, rc, 0);
}

static int guard_setup(struct resil_guard *g, resil_breaker *b, const resil_guard_opts *opts,
                       resil_error *err)
{
    if (!b)
        return resil_error_set(err, RESIL_EINVAL, "breaker", "the guard's breaker is NULL");
    resil_guard_opts o = RESIL_GUARD_OPTS_INIT;
    if (opts) {
        if (resil__opts_version_check(err, "resil_guard_opts", opts->version,
                                      RESIL_GUARD_OPTS_VERSION) != 0)
            return RESIL_EINVAL;
        if ((unsigned)opts->open_policy > RESIL_BREAKER_OPEN_STOP)
            return resil_error_set(err, RESIL_EINVAL, "open_policy",
                                   "open_policy %d is not a resil_breaker_open_policy",
                                   (int)opts->open_policy);
        o = *opts;
        o.version = RESIL_GUARD_OPTS_VERSION;
    }
    g->gate.acquire = guard_acquire;
    g->gate.report = guard_report;
    g->gate.arg = g;
    g->breaker = b;
    g->opts = o;
    return 0;
}

int resil_guard_new(resil_guard **out, resil_breaker *b, const resil_guard_opts *opts,
                    resil_error *err)
{
    struct resil_guard tmp;
    int rc = guard_setup(&tmp, b, opts, err);
    if (rc)
        return rc;
    struct resil_guard *g = malloc(sizeof *g);
    if (!g)
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    *g = tmp;
    g->gate.arg = g;
    *out = g;
    return 0;
}

void resil_guard_free(resil_guard *g)
{
    free(g);
}

const resil_retry_gate *resil_guard_gate(const resil_guard *g)
{
    return &g->gate;
}

/* The retry with the guard's gate in a copy of the caller's options. */
static int guarded_retry(struct resil_guard *g, resil_retry_op op, void *arg, const char *name,
                         const resil_retry_config *config, const resil_retry_opts *opts,
                         resil_retry_result *result)
{
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    if (opts)
        o = *opts; /* (a newer version than ours is refused by the retry) */
    o.gate = &g->gate;
    return resil_retry(op, arg, name, config, &o, result); /* a gate: never the fast path */
}

int resil_guard_retry(resil_guard *g, resil_retry_op op, void *arg, const char *name,
                      const resil_retry_config *config, const resil_retry_opts *opts,
                      resil_retry_result *result)
{
    if (!g || !op)
        return RESIL_EINVAL;
    return guarded_retry(g, op, arg, name, config, opts, result);
}

int resil_retry_with_breaker(resil_breaker *b, resil_breaker_open_policy policy, resil_retry_op op,
                             void *arg, const char *name, const resil_retry_config *config,
                             const resil_retry_opts *opts, resil_retry_result *result)
{
    if (!b || !op)
        return RESIL_EINVAL;
    resil_guard_opts go = RESIL_GUARD_OPTS_INIT;
    go.open_policy = policy;
    struct resil_guard g;
    int rc = guard_setup(&g, b, &go, NULL);
    if (rc)
        return rc;
    return guarded_retry(&g, op, arg, name, config, opts, result);
}
