/* src/retry.c - retry configuration, backoff, the state machine and the
 * blocking loop built on it. */
#define _GNU_SOURCE
#include "resil/retry.h"

#include "internal/opts.h"
#include "internal/retry_metrics.h"
#include "internal/util.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <strings.h>

/* ---- configuration ---------------------------------------------------------- */

static const struct {
    const char *name;
    resil_retry_config config;
} presets[] = {
    {"transient", RESIL_RETRY_TRANSIENT},   {"external", RESIL_RETRY_EXTERNAL},
    {"critical", RESIL_RETRY_CRITICAL},     {"aggressive", RESIL_RETRY_AGGRESSIVE},
    {"none", RESIL_RETRY_NONE},
};

int resil_retry_preset(resil_retry_config *out, const char *name, resil_error *err)
{
    for (size_t i = 0; name && i < sizeof presets / sizeof presets[0]; i++) {
        if (strcasecmp(name, presets[i].name) == 0) {
            *out = presets[i].config;
            return 0;
        }
    }
    return resil_error_set(err, RESIL_EINVAL, "preset",
                           "unknown retry preset '%s' (expected transient, external, "
                           "critical, aggressive or none)",
                           name ? name : "(null)");
}

/* All fields valid? (resil_retry's inline fast path has a cheaper, conservative
 * version of this check in retry.h.) */
static inline bool config_ok(const resil_retry_config *c)
{
    return c->max_retries >= 0 && c->base_delay_s >= 0 && c->base_delay_s <= c->max_delay_s &&
           c->max_delay_s <= DBL_MAX && c->exponential_base >= 1 &&
           c->exponential_base <= DBL_MAX && c->max_elapsed_s >= 0 &&
           c->max_elapsed_s <= DBL_MAX && (unsigned)c->jitter_kind <= RESIL_JITTER_DECORRELATED;
}

int resil_retry_config_validate(const resil_retry_config *c, resil_error *err)
{
    if (c && config_ok(c))
        return 0;
    if (!c)
        return resil_error_set(err, RESIL_EINVAL, "config", "retry config is NULL");
    if (c->max_retries < 0)
        return resil_error_set(err, RESIL_EINVAL, "max_retries",
                               "max_retries must be >= 0 (got %d)", c->max_retries);
    if (!isfinite(c->base_delay_s) || c->base_delay_s < 0)
        return resil_error_set(err, RESIL_EINVAL, "base_delay_s",
                               "base_delay_s must be a finite number >= 0 (got %g)",
                               c->base_delay_s);
    if (!isfinite(c->max_delay_s) || c->max_delay_s < 0)
        return resil_error_set(err, RESIL_EINVAL, "max_delay_s",
                               "max_delay_s must be a finite number >= 0 (got %g)",
                               c->max_delay_s);
    if (c->base_delay_s > c->max_delay_s)
        return resil_error_set(err, RESIL_EINVAL, "base_delay_s",
                               "base_delay_s (%g) must not exceed max_delay_s (%g)",
                               c->base_delay_s, c->max_delay_s);
    if (!isfinite(c->exponential_base) || c->exponential_base < 1)
        return resil_error_set(err, RESIL_EINVAL, "exponential_base",
                               "exponential_base must be a finite number >= 1 (got %g)",
                               c->exponential_base);
    if (!isfinite(c->max_elapsed_s) || c->max_elapsed_s < 0)
        return resil_error_set(err, RESIL_EINVAL, "max_elapsed_s",
                               "max_elapsed_s must be a finite number >= 0, 0 meaning no "
                               "deadline (got %g)",
                               c->max_elapsed_s);
    if ((unsigned)c->jitter_kind > RESIL_JITTER_DECORRELATED)
        return resil_error_set(err, RESIL_EINVAL, "jitter_kind",
                               "jitter_kind %d is not a resil_jitter_kind", (int)c->jitter_kind);
    return 0;
}

static inline resil_jitter_kind jitter_of(const resil_retry_config *c)
{
    if (!c->jitter)
        return RESIL_JITTER_DEFAULT;
    return c->jitter_kind == RESIL_JITTER_DEFAULT ? RESIL_JITTER_FULL : c->jitter_kind;
}

resil_jitter_kind resil_retry_config_jitter(const resil_retry_config *c)
{
    return jitter_of(c);
}

/* ---- backoff ---------------------------------------------------------------- */

/* min(max_delay, base * b^(k-1)); pow overflows to inf, which min absorbs. */
static double envelope(const resil_retry_config *c, int k)
{
    if (k < 1)
        k = 1;
    if (c->base_delay_s == 0)
        return 0;
    double d = c->exponential_base == 2.0 ? ldexp(c->base_delay_s, k > 2000 ? 2000 : k - 1)
                                          : c->base_delay_s * pow(c->exponential_base, k - 1.0);
    if (!(d <= c->max_delay_s)) /* also catches NaN from 0 * inf */
        d = c->max_delay_s;
    return d;
}

double resil_backoff_delay(const resil_retry_config *c, int retry, double prev_delay_s,
                           resil_rng *rng)
{
    double d = envelope(c, retry);
    double v;
    switch (jitter_of(c)) {
    case RESIL_JITTER_FULL:
        v = resil_rng_range(rng, 0.0, d);
        break;
    case RESIL_JITTER_EQUAL:
        v = d / 2 + resil_rng_range(rng, 0.0, d / 2);
        break;
    case RESIL_JITTER_DECORRELATED: {
        double base = c->base_delay_s;
        double hi = 3.0 * (prev_delay_s > base ? prev_delay_s : base);
        double next_env = envelope(c, retry + 1); /* base * b^retry, capped */
        if (hi > next_env)
            hi = next_env;
        if (hi > c->max_delay_s)
            hi = c->max_delay_s;
        v = resil_rng_range(rng, base, hi);
        break;
    }
    default:
        v = d;
        break;
    }
    if (v > c->max_delay_s)
        v = c->max_delay_s;
    if (!(v >= 0))
        v = 0;
    return v;
}

/* ---- stop reasons ------------------------------------------------------------ */

const char *resil_stop_reason_name(resil_stop_reason r)
{
    switch (r) {
    case RESIL_STOP_NONE: return "none";
    case RESIL_STOP_SUCCESS: return "success";
    case RESIL_STOP_EXHAUSTED: return "exhausted";
    case RESIL_STOP_DEADLINE: return "deadline";
    case RESIL_STOP_PERMANENT: return "permanent";
    case RESIL_STOP_CANCELLED: return "cancelled";
    case RESIL_STOP_BUDGET: return "budget";
    }
    return "unknown";
}

static inline int reason_error(resil_stop_reason r)
{
    switch (r) {
    case RESIL_STOP_NONE:
    case RESIL_STOP_SUCCESS: return 0;
    case RESIL_STOP_EXHAUSTED: return RESIL_EEXHAUSTED;
    case RESIL_STOP_DEADLINE: return RESIL_EDEADLINE;
    case RESIL_STOP_PERMANENT: return RESIL_EPERMANENT;
    case RESIL_STOP_CANCELLED: return RESIL_ECANCELED;
    case RESIL_STOP_BUDGET: return RESIL_EBUDGET;
    }
    return RESIL_EINVAL;
}

int resil_stop_reason_error(resil_stop_reason r)
{
    return reason_error(r);
}

/* ---- outcomes from error codes ------------------------------------------------ */

resil_outcome resil_outcome_from_errno(int e)
{
    if (e == 0)
        return RESIL_OUTCOME_SUCCESS;
    switch (e) {
    case RESIL_ETIMEDOUT:
    case RESIL_ECIRCUIT_OPEN:
    case RESIL_EBUDGET:
    case RESIL_EDURABILITY:
        return RESIL_OUTCOME_TRANSIENT;
    default:
        break;
    }
    if (e < 0)
        e = e == INT_MIN ? 0 : -e;
    switch (e) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
#if EDEADLOCK != EDEADLK
    case EDEADLOCK:
#endif
    case EINTR:
    case EBUSY:
    case ETIMEDOUT:
    case ECONNREFUSED:
    case ECONNRESET:
    case ECONNABORTED:
    case EHOSTUNREACH:
    case EHOSTDOWN:
    case ENETUNREACH:
    case ENETDOWN:
    case ENETRESET:
    case EPIPE:
    case ENOBUFS:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EINPROGRESS:
    case EALREADY:
    case ETXTBSY:
    case EDEADLK:
    case ENOLCK:
    case ESTALE:
    case EPROTO:
        return RESIL_OUTCOME_TRANSIENT;
    default:
        return RESIL_OUTCOME_PERMANENT;
    }
}

/* ---- options -------------------------------------------------------------------- */

static const resil_retry_opts default_opts = RESIL_RETRY_OPTS_INIT;

/* The options' version is one this library knows (0 means 1).  Version 1 is
 * the first with a version field: every field is read. */
static int opts_check(const resil_retry_opts *o, resil_error *err)
{
    return resil__opts_version_check(err, "resil_retry_opts", o->version,
                                     RESIL_RETRY_OPTS_VERSION);
}

/* ---- state machine ------------------------------------------------------------ */

/* init without validation: resil_retry validates once itself. */
static inline void state_start(resil_retry_state *st, const resil_retry_config *c,
                               const resil_retry_opts *o)
{
    *st = (resil_retry_state){
        .config = c,
        .clock = o->clock ? o->clock : resil_clock_system(),
        .rng = o->rng,
        .cancel = o->cancel,
        .budget = o->budget,
        .start_ns = -1,
        .reason = RESIL_STOP_NONE,
        .after_attempt = o->after_attempt,
        .before_sleep = o->before_sleep,
        .hook_arg = o->hook_arg,
    };
    if (c->max_elapsed_s > 0 || o->measure_time) {
        st->start_ns = st->clock->monotonic_ns(st->clock->ctx);
        if (c->max_elapsed_s > 0) {
            int64_t span = resil__s_to_ns(c->max_elapsed_s);
            st->has_deadline = true;
            st->deadline_ns = resil__add_sat(st->start_ns, span > 0 ? span : 1);
        }
    }
}

int resil_retry_state_init(resil_retry_state *st, const resil_retry_config *config,
                           const resil_retry_opts *opts, resil_error *err)
{
    int r = resil_retry_config_validate(config, err);
    if (r)
        return r;
    if (!opts)
        opts = &default_opts;
    if ((r = opts_check(opts, err)) != 0)
        return r;
    if (opts->gate)
        return resil_error_set(err, RESIL_EINVAL, "gate",
                               "the retry state does not make the attempts, so it cannot ask "
                               "a gate: ask it yourself and feed refusals with "
                               "resil_retry_state_refused");
    state_start(st, config, opts);
    return 0;
}

/* Without a caller's rng, jitter comes from a per-thread generator seeded
 * from the kernel once per thread (a getrandom per retry would cost more than
 * the retry decision itself). */
static _Thread_local resil_rng thread_rng;
static _Thread_local bool thread_rng_seeded;

static resil_rng *state_rng(resil_retry_state *st)
{
    if (st->rng)
        return st->rng;
    if (!thread_rng_seeded) {
        resil_rng_seed_random(&thread_rng);
        thread_rng_seeded = true;
    }
    return &thread_rng;
}

static inline void stop(resil_retry_decision *out, resil_retry_state *st, resil_stop_reason r)
{
    st->reason = r;
    out->retry = false;
    out->delay_s = 0;
    out->reason = r;
}

/* True when, after sleeping delay_s from now, an attempt still starts
 * strictly before the deadline. */
static bool fits_deadline(const resil_retry_state *st, double delay_s)
{
    int64_t now = st->clock->monotonic_ns(st->clock->ctx);
    return now < st->deadline_ns && resil__s_to_ns(delay_s) < st->deadline_ns - now;
}

/* Turns used: attempts made plus attempts refused (each refusal uses one of
 * the 1 + max_retries turns). */
static inline long long turns(const resil_retry_state *st)
{
    return (long long)st->attempts + st->refused;
}

/* The decision to go on after a transient failure or refusal: cancel, turns
 * left, the delay (a hint or the backoff's), the deadline. */
static void go_on(resil_retry_decision *out, resil_retry_state *st, double retry_after_s)
{
    const resil_retry_config *c = st->config;
    if (resil_cancel_is_cancelled(st->cancel))
        return stop(out, st, RESIL_STOP_CANCELLED);
    if (turns(st) > c->max_retries)
        return stop(out, st, RESIL_STOP_EXHAUSTED);

    double delay;
    if (retry_after_s >= 0) { /* false for NaN */
        delay = retry_after_s;
    } else {
        resil_rng *rng = jitter_of(c) ? state_rng(st) : NULL;
        long long k = turns(st);
        delay = resil_backoff_delay(c, k > INT_MAX ? INT_MAX : (int)k, st->prev_delay_s, rng);
        st->prev_delay_s = delay;
    }
    if (st->has_deadline && !fits_deadline(st, delay))
        return stop(out, st, RESIL_STOP_DEADLINE);
    st->total_delay_s += delay;
    out->retry = true;
    out->delay_s = delay;
    out->reason = RESIL_STOP_NONE;
}

/* The decision after a failed attempt (kept out of line: the success path
 * stays small). */
static void feed_failure(resil_retry_decision *out, resil_retry_state *st, resil_outcome outcome,
                         double retry_after_s)
{
    if (st->budget)
        resil_retry_budget_on_failure(st->budget);
    if (outcome != RESIL_OUTCOME_TRANSIENT)
        return stop(out, st, RESIL_STOP_PERMANENT);
    if (resil_cancel_is_cancelled(st->cancel))
        return stop(out, st, RESIL_STOP_CANCELLED);
    if (turns(st) > st->config->max_retries)
        return stop(out, st, RESIL_STOP_EXHAUSTED);
    if (st->budget && !resil_retry_budget_allows(st->budget))
        return stop(out, st, RESIL_STOP_BUDGET);
    go_on(out, st, retry_after_s);
}

static inline void state_feed(resil_retry_decision *out, resil_retry_state *st,
                              resil_outcome outcome, int error, double retry_after_s)
{
    if (RESIL_UNLIKELY(st->reason != RESIL_STOP_NONE))
        return stop(out, st, st->reason);
    if (st->attempts < INT_MAX) /* "forever" is max_retries == INT_MAX */
        st->attempts++;
    st->last_error = error;
    if (RESIL_LIKELY(outcome == RESIL_OUTCOME_SUCCESS)) {
        if (st->budget)
            resil_retry_budget_on_success(st->budget);
        return stop(out, st, RESIL_STOP_SUCCESS);
    }
    feed_failure(out, st, outcome, retry_after_s);
}

static void state_refused(resil_retry_decision *out, resil_retry_state *st,
                          resil_outcome outcome, int error, double retry_after_s)
{
    if (st->reason != RESIL_STOP_NONE)
        return stop(out, st, st->reason);
    if (st->refused < INT_MAX)
        st->refused++;
    st->last_error = error;
    if (outcome != RESIL_OUTCOME_TRANSIENT)
        return stop(out, st, RESIL_STOP_PERMANENT);
    go_on(out, st, retry_after_s);
}

static inline double state_elapsed(const resil_retry_state *st)
{
    if (st->start_ns < 0)
        return -1;
    return resil__ns_to_s(st->clock->monotonic_ns(st->clock->ctx) - st->start_ns);
}

static void run_hook(resil_retry_hook hook, const resil_retry_state *st, const char *name,
                     resil_outcome outcome, bool refusal, const resil_retry_decision *d)
{
    resil_attempt_info info = {
        .name = name,
        .attempt = st->attempts,
        .outcome = outcome,
        .error = st->last_error,
        .delay_s = d->retry ? d->delay_s : 0,
        .reason = d->retry ? RESIL_STOP_NONE : d->reason,
        .elapsed_s = state_elapsed(st),
        .refused = st->refused,
        .refusal = refusal,
    };
    hook(&info, st->hook_arg);
}

/* The hooks after a decision, shared by the state machine and the blocking
 * loop: after_attempt after an attempt (not a refusal), then before_sleep
 * when a sleep follows, after which the deadline is checked again (the
 * hooks took time; the blocking loop always checks it: the op's report to
 * a gate took time too). */
static void after_decision(resil_retry_decision *d, resil_retry_state *st, const char *name,
                           resil_outcome outcome, bool refusal, bool recheck)
{
    if (!refusal && st->attempts > 0 && st->after_attempt) {
        run_hook(st->after_attempt, st, name, outcome, false, d);
        recheck = true;
    }
    if (!d->retry)
        return;
    if (st->before_sleep) {
        run_hook(st->before_sleep, st, name, outcome, refusal, d);
        recheck = true;
    }
    if (recheck && st->has_deadline && !fits_deadline(st, d->delay_s)) {
        st->total_delay_s -= d->delay_s;
        stop(d, st, RESIL_STOP_DEADLINE);
    }
}

void resil_retry_state_feed(resil_retry_decision *out, resil_retry_state *st,
                            resil_outcome outcome, int error, double retry_after_s)
{
    bool stopped = st->reason != RESIL_STOP_NONE;
    state_feed(out, st, outcome, error, retry_after_s);
    if (!stopped)
        after_decision(out, st, NULL, outcome, false, false);
}

void resil_retry_state_refused(resil_retry_decision *out, resil_retry_state *st,
                               resil_outcome outcome, int error, double retry_after_s)
{
    bool stopped = st->reason != RESIL_STOP_NONE;
    state_refused(out, st, outcome, error, retry_after_s);
    if (!stopped)
        after_decision(out, st, NULL, outcome, true, false);
}

void resil_retry_state_cancel(resil_retry_state *st)
{
    if (st->reason == RESIL_STOP_NONE)
        st->reason = RESIL_STOP_CANCELLED;
}

void resil_retry_state_cancel_now(resil_retry_decision *out, resil_retry_state *st)
{
    resil_retry_state_cancel(st);
    stop(out, st, st->reason);
}

int resil_retry_state_attempts(const resil_retry_state *st)
{
    return st->attempts;
}

int resil_retry_state_refusals(const resil_retry_state *st)
{
    return st->refused;
}

double resil_retry_state_elapsed(const resil_retry_state *st)
{
    return state_elapsed(st);
}

/* ---- the blocking loop ---------------------------------------------------------- */

static const resil_retry_config transient_config = RESIL_RETRY_TRANSIENT;

/* Records an attempt that started at t0 (the state measures time: a
 * deadline or measure_time; without either no clock is read for this).
 * Returns its duration in seconds. */
static double attempt_timed(const resil_retry_state *st, const char *name, int64_t t0)
{
    int64_t t1 = st->clock->monotonic_ns(st->clock->ctx);
    double s = resil__ns_to_s(t1 > t0 ? t1 - t0 : 0);
    resil__retry_metrics_attempt_duration(name, s);
    return s;
}

/* One run of the blocking loop. */
struct run {
    resil_retry_op op;
    void *arg;
    const char *name;
    const resil_retry_gate *gate;
    bool timed;
    resil_retry_state st;
};

/* Asks the gate (when there is one) for the next attempt, makes it when
 * allowed, reports it to the gate, and feeds the state.  Sets *refused when
 * the gate refused it (the op was not called).  Returns the outcome (a
 * refusal's: its refusal outcome). */
static resil_outcome next_attempt(struct run *r, resil_retry_decision *d, bool *refused)
{
    resil_gate_ticket ticket;
    *refused = false;
    if (r->gate) {
        resil_gate_refusal no = {RESIL_OUTCOME_PERMANENT, -1.0};
        int e = r->gate->acquire(r->gate->arg, &ticket, &no);
        if (e != 0) {
            *refused = true;
            resil__retry_metrics_not_permitted(r->name);
            resil_outcome o = no.outcome == RESIL_OUTCOME_TRANSIENT ? RESIL_OUTCOME_TRANSIENT
                                                                    : RESIL_OUTCOME_PERMANENT;
            state_refused(d, &r->st, o, e, no.retry_after_s);
            return o;
        }
    }
    resil_retry_call call = {r->st.attempts + 1, r->name, 0, -1.0, RESIL_GATE_AUTO, -1.0};
    /* The first attempt starts when the state did (one clock read less). */
    int64_t t0 = 0;
    if (r->timed)
        t0 = turns(&r->st) == 0 ? r->st.start_ns : r->st.clock->monotonic_ns(r->st.clock->ctx);
    resil_outcome outcome = r->op(&call, r->arg);
    double took = r->timed ? attempt_timed(&r->st, r->name, t0) : -1.0;
    if (r->gate) {
        resil_gate_report rep = {outcome, call.verdict, call.error,
                                 call.duration_s >= 0 ? call.duration_s : took};
        r->gate->report(r->gate->arg, &ticket, &rep);
    }
    state_feed(d, &r->st, outcome, call.error, call.retry_after_s);
    return outcome;
}

static void fill_result(resil_retry_result *result, const resil_retry_state *st,
                        resil_outcome outcome)
{
    if (!result)
        return;
    result->attempts = st->attempts;
    result->reason = st->reason;
    result->last_outcome = outcome;
    result->last_error = st->last_error;
    result->total_delay_s = st->total_delay_s;
    result->elapsed_s = state_elapsed(st);
}

/* Refuses bad arguments (op not called). */
static int bad_arguments(resil_retry_op op, const resil_retry_config *config,
                         const resil_retry_opts *opts, resil_retry_result *result)
{
    if (result)
        *result = (resil_retry_result){.elapsed_s = -1, .last_error = RESIL_EINVAL};
    if (!op)
        return resil_error_set(opts->err, RESIL_EINVAL, "op", "the retry's op is NULL");
    if (opts_check(opts, opts->err) != 0)
        return RESIL_EINVAL;
    resil_retry_config_validate(config, opts->err);
    return RESIL_EINVAL;
}

/* The external definition of the inline resil_retry (C11 6.7.4). */
extern inline int resil_retry(resil_retry_op op, void *arg, const char *name,
                              const resil_retry_config *config, const resil_retry_opts *opts,
                              resil_retry_result *result);

int resil__private_retry_continue(resil_retry_op op, void *arg, const char *name,
                         const resil_retry_config *config, const resil_retry_opts *opts,
                         resil_retry_result *result, int first_outcome, int first_error,
                         double first_retry_after_s)
{
    if (!config)
        config = &transient_config;
    if (!opts)
        opts = &default_opts;
    if (first_outcome < 0 &&
        (!op || !config_ok(config) || opts->version > RESIL_RETRY_OPTS_VERSION))
        return bad_arguments(op, config, opts, result);

    struct run r = {op, arg, name, opts->gate, false, {0}};
    state_start(&r.st, config, opts);
    resil_retry_decision d;
    resil_outcome outcome;
    bool refused = false;
    /* Attempts are timed when asked to measure time (measure_time: the
     * start is read already) and metrics are on; a deadline alone does not
     * time them (one clock read per retry that succeeds at once is all a
     * deadline costs).  A first attempt made before this call
     * (first_outcome >= 0) is not timed: its start is not known here. */
    r.timed = r.st.start_ns >= 0 && opts->measure_time && resil__metrics_enabled();

    if (first_outcome >= 0) {
        outcome = (resil_outcome)first_outcome;
        state_feed(&d, &r.st, outcome, first_error, first_retry_after_s);
    } else if (resil_cancel_is_cancelled(opts->cancel)) {
        outcome = RESIL_OUTCOME_SUCCESS;
        stop(&d, &r.st, RESIL_STOP_CANCELLED);
    } else {
        outcome = next_attempt(&r, &d, &refused);
    }
    for (;;) {
        /* a failed attempt is counted as it happens (before the hook, which
         * may flush metrics): a process killed later keeps it */
        if (!refused && r.st.attempts > 0 && outcome != RESIL_OUTCOME_SUCCESS)
            resil__retry_metrics_failed_attempt(name);
        after_decision(&d, &r.st, name, outcome, refused, true);
        if (!d.retry)
            break;
        if (r.st.clock->sleep_ns(r.st.clock->ctx, resil__s_to_ns(d.delay_s), r.st.cancel) != 0 ||
            resil_cancel_is_cancelled(r.st.cancel)) {
            stop(&d, &r.st, RESIL_STOP_CANCELLED);
            break;
        }
        outcome = next_attempt(&r, &d, &refused);
    }

    resil__retry_metrics_done(name, r.st.attempts, r.st.reason == RESIL_STOP_SUCCESS);
    fill_result(result, &r.st, outcome);
    return reason_error(r.st.reason);
}
