/* src/escalation.c - the escalation module's names and values: the
 * intervention and cause names, the cause of a stopped retry, a decision's
 * copy and release, the loop's outcome names and result release.  The
 * ladder and the handlers are in escalation_ladder.c, the loop in
 * escalation_run.c, the wire format in escalation_json.c. */
#define _GNU_SOURCE
#include "resil/escalation.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const intervention_names[] = {"none", "retry", "skip", "abort", "wait",
                                                 "human"};
#define N_INTERVENTIONS (sizeof intervention_names / sizeof intervention_names[0])

static const char *const cause_names[] = {"none",   "exhausted",    "deadline",   "permanent",
                                          "budget", "circuit_open", "oscillation"};

const char *resil_intervention_name(resil_intervention_type type)
{
    if ((unsigned)type >= N_INTERVENTIONS)
        return "unknown";
    return intervention_names[type];
}

int resil_intervention_parse(resil_intervention_type *out, const char *name, resil_error *err)
{
    for (size_t i = 0; name && i < N_INTERVENTIONS; i++)
        if (strcasecmp(name, intervention_names[i]) == 0) {
            *out = (resil_intervention_type)i;
            return 0;
        }
    return resil_error_set(err, RESIL_EINVAL, "intervention",
                           "unknown intervention \"%s\" (expected retry, skip, abort, wait, "
                           "human or none)",
                           name ? name : "(null)");
}

const char *resil_escalation_cause_name(resil_escalation_cause cause)
{
    if ((unsigned)cause >= RESIL_CAUSE__COUNT)
        return "unknown";
    return cause_names[cause];
}

int resil_escalation_cause_parse(resil_escalation_cause *out, const char *name, resil_error *err)
{
    if (name && strcasecmp(name, "circuit-open") == 0)
        name = "circuit_open";
    for (unsigned i = 0; name && i < RESIL_CAUSE__COUNT; i++)
        if (strcasecmp(name, cause_names[i]) == 0) {
            *out = (resil_escalation_cause)i;
            return 0;
        }
    return resil_error_set(err, RESIL_EINVAL, "cause",
                           "unknown cause \"%s\" (expected exhausted, deadline, permanent, "
                           "budget, circuit_open, oscillation or none)",
                           name ? name : "(null)");
}

resil_escalation_cause resil_escalation_cause_of(const resil_retry_result *result)
{
    if (!result)
        return RESIL_CAUSE_NONE;
    switch (result->reason) {
    case RESIL_STOP_EXHAUSTED:
    case RESIL_STOP_DEADLINE:
    case RESIL_STOP_PERMANENT:
    case RESIL_STOP_BUDGET:
        if (result->last_error == RESIL_ECIRCUIT_OPEN)
            return RESIL_CAUSE_CIRCUIT_OPEN;
        break;
    default:
        return RESIL_CAUSE_NONE;
    }
    switch (result->reason) {
    case RESIL_STOP_EXHAUSTED: return RESIL_CAUSE_EXHAUSTED;
    case RESIL_STOP_DEADLINE: return RESIL_CAUSE_DEADLINE;
    case RESIL_STOP_PERMANENT: return RESIL_CAUSE_PERMANENT;
    default: return RESIL_CAUSE_BUDGET;
    }
}

void resil_decision_clear(resil_decision *d)
{
    if (!d)
        return;
    json_decref(d->default_value);
    free(d->decided_by);
    free(d->reason);
    memset(d, 0, sizeof *d);
}

/* *dst = a copy of s (NULL stays NULL); false on -ENOMEM. */
static bool dup_or_null(char **dst, const char *s)
{
    *dst = s ? strdup(s) : NULL;
    return !s || *dst;
}

int resil_decision_copy(resil_decision *dst, const resil_decision *src)
{
    *dst = *src;
    dst->decided_by = NULL;
    dst->reason = NULL;
    dst->default_value = NULL;
    if (!dup_or_null(&dst->decided_by, src->decided_by) || !dup_or_null(&dst->reason, src->reason)) {
        resil_decision_clear(dst);
        return -ENOMEM;
    }
    dst->default_value = json_incref(src->default_value);
    return 0;
}

int resil_decision_set_text(resil_decision *d, const char *decided_by, const char *reason)
{
    char *by, *why;
    if (!dup_or_null(&by, decided_by))
        return -ENOMEM;
    if (!dup_or_null(&why, reason)) {
        free(by);
        return -ENOMEM;
    }
    free(d->decided_by);
    free(d->reason);
    d->decided_by = by;
    d->reason = why;
    return 0;
}

const char *resil_run_outcome_name(resil_run_outcome o)
{
    switch (o) {
    case RESIL_RUN_SUCCEEDED: return "succeeded";
    case RESIL_RUN_SKIPPED: return "skipped";
    case RESIL_RUN_ABORTED: return "aborted";
    case RESIL_RUN_CANCELLED: return "cancelled";
    }
    return "unknown";
}

void resil_run_master_result_clear(resil_run_master_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_steps; i++)
        resil_decision_clear(&r->steps[i].decision);
    free(r->steps);
    json_decref(r->value);
    memset(r, 0, sizeof *r);
}

void resil_escalation_handler_free(resil_escalation_handler *h)
{
    if (!h)
        return;
    if (h->free)
        h->free(h->arg);
    memset(h, 0, sizeof *h);
}
