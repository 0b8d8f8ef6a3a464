/* The policy layer's guard (retry x breaker) and the retry's gate hook: a
 * refused attempt is not an attempt (result, hooks, metrics agree), the op's
 * verdict and duration reach the breaker, a refusal uses up a turn; plus the
 * retry API's friction fixes (errno classifier, cancel_now, the state's
 * hooks and gate refusal, opts->err and versions).  All on the fake clock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "resil/guard.h"
#include "resil/metrics.h"

#define S 1000000000LL

static bool near(double a, double b)
{
    return fabs(a - b) < 1e-6;
}

static resil_breaker *mk(const char *name, resil_fake_clock *fc, int threshold)
{
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    o.clock = &fc->clock;
    o.state_dir = ""; /* process-local */
    o.failure_threshold = threshold;
    o.recovery_timeout_s = 10;
    resil_breaker *b;
    assert_int_equal(resil_breaker_new(&b, name, &o, NULL), 0);
    return b;
}

static resil_breaker_snapshot snap(resil_breaker *b)
{
    resil_breaker_snapshot s;
    assert_int_equal(resil_breaker_snapshot_get(b, &s), 0);
    return s;
}

static resil_retry_config cfg(int retries)
{
    resil_retry_config c = RESIL_RETRY_TRANSIENT;
    c.max_retries = retries;
    c.base_delay_s = 1;
    c.max_delay_s = 1;
    c.jitter = false;
    return c;
}

/* A scripted op: fails `fail` times (transiently, with `error`), then
 * succeeds; may set a verdict and a duration. */
struct op {
    int calls, fail, error;
    resil_gate_verdict verdict;
    double duration_s;
    int seen_attempt[16];
};

static resil_outcome op_fn(resil_retry_call *call, void *arg)
{
    struct op *o = arg;
    assert_int_equal(call->verdict, RESIL_GATE_AUTO);
    assert_true(call->duration_s < 0);
    if (o->calls < 16)
        o->seen_attempt[o->calls] = call->attempt;
    o->calls++;
    call->verdict = o->verdict;
    if (o->duration_s > 0)
        call->duration_s = o->duration_s;
    if (o->calls <= o->fail) {
        call->error = o->error;
        return RESIL_OUTCOME_TRANSIENT;
    }
    return RESIL_OUTCOME_SUCCESS;
}

/* What the hooks and the guard's listener saw. */
struct seen {
    int after, before, refusal_sleeps, last_attempt, last_refused;
    int refused_events, report_failed;
    double last_retry_in;
};

static void after_hook(const resil_attempt_info *info, void *arg)
{
    struct seen *s = arg;
    s->after++;
    s->last_attempt = info->attempt;
    s->last_refused = info->refused;
}

static void before_hook(const resil_attempt_info *info, void *arg)
{
    struct seen *s = arg;
    s->before++;
    s->refusal_sleeps += info->refusal;
}

static void listener(const resil_guard_event *ev, void *arg)
{
    struct seen *s = arg;
    if (ev->kind == RESIL_GUARD_REFUSED) {
        s->refused_events++;
        s->last_retry_in = ev->retry_in_s;
    } else {
        s->report_failed++;
    }
}

static double metric(const char *name, const char *result)
{
    char *text = resil_export_prometheus_metrics();
    assert_non_null(text);
    char needle[256];
    snprintf(needle, sizeof needle, "\nresil_retry_attempts_total{name=\"%s\",result=\"%s\"} ",
             name, result);
    const char *p = strstr(text, needle);
    double v = p ? strtod(p + strlen(needle), NULL) : 0;
    free(text);
    return v;
}

/* WAIT: refused while open, sleeps until half-open, the trial runs and
 * closes it.  One attempt, one refusal, the same numbers everywhere. */
static void test_wait_counts_refusals_apart(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker *b = mk("g-wait", &fc, 1);
    resil_breaker_permit p;
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), 0);
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, -1), 0);
    resil_fake_clock_advance(&fc, 4 * S); /* 6 s left */

    struct seen seen = {0};
    resil_guard_opts go = RESIL_GUARD_OPTS_INIT;
    go.on_event = listener;
    go.event_arg = &seen;
    resil_guard *g;
    assert_int_equal(resil_guard_new(&g, b, &go, NULL), 0);
    resil_retry_opts ro = RESIL_RETRY_OPTS_INIT;
    ro.clock = &fc.clock;
    ro.after_attempt = after_hook;
    ro.before_sleep = before_hook;
    ro.hook_arg = &seen;
    resil_retry_config c = cfg(3);
    struct op o = {0};
    resil_retry_result res;
    assert_int_equal(resil_guard_retry(g, op_fn, &o, "g-wait", &c, &ro, &res), 0);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.seen_attempt[0], 1); /* the first attempt that ran is attempt 1 */
    assert_int_equal(res.attempts, 1);
    assert_int_equal(res.reason, RESIL_STOP_SUCCESS);
    assert_true(near(res.total_delay_s, 6));
    assert_int_equal(seen.after, 1);
    assert_int_equal(seen.last_attempt, 1);
    assert_int_equal(seen.last_refused, 1);
    assert_int_equal(seen.before, 1);
    assert_int_equal(seen.refusal_sleeps, 1);
    assert_int_equal(seen.refused_events, 1);
    assert_true(near(seen.last_retry_in, 6));
    assert_true(near(metric("g-wait", "not_permitted"), 1));
    assert_true(near(metric("g-wait", "success"), 1));
    assert_true(near(metric("g-wait", "failure"), 0));
    assert_int_equal(snap(b).not_permitted, 1);
    assert_int_equal(snap(b).state, RESIL_BREAKER_CLOSED);
    resil_guard_free(g);
    resil_breaker_free(b);
}

/* A refusal uses up a turn: a breaker that never lets a call through ends
 * the retry (exhausted) without any attempt. */
static void test_refusals_use_up_turns(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker *b = mk("g-turns", &fc, 1);
    resil_breaker_permit p;
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), 0);
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, -1), 0);
    /* the half-open trial is taken by someone else and held */
    resil_fake_clock_advance(&fc, 10 * S);
    resil_breaker_permit trial;
    assert_int_equal(resil_breaker_acquire(b, &trial, NULL), 0);

    resil_retry_opts ro = RESIL_RETRY_OPTS_INIT;
    ro.clock = &fc.clock;
    resil_retry_config c = cfg(2);
    struct op o = {0};
    resil_retry_result res;
    assert_int_equal(resil_retry_with_breaker(b, RESIL_BREAKER_OPEN_WAIT, op_fn, &o, "g-turns",
                                              &c, &ro, &res),
                     RESIL_EEXHAUSTED);
    assert_int_equal(o.calls, 0);
    assert_int_equal(res.attempts, 0);
    assert_int_equal(res.last_error, RESIL_ECIRCUIT_OPEN);
    /* half-open with the trial taken: the backoff's delays (1 s each) */
    assert_int_equal(resil_fake_clock_sleeps(&fc), 2);
    assert_true(near(res.total_delay_s, 2));
    assert_true(near(metric("g-turns", "not_permitted"), 3));
    assert_true(near(metric("g-turns", "failure"), 0));
    resil_breaker_record(b, &trial, RESIL_BREAKER_SUCCESS, -1);
    resil_breaker_free(b);
}

/* The op's verdict reaches the breaker: IGNORE never trips it; its duration
 * too (a slow-call rule sees it). */
static void test_verdict_and_duration(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker *b = mk("g-verdict", &fc, 2);
    resil_retry_opts ro = RESIL_RETRY_OPTS_INIT;
    ro.clock = &fc.clock;
    resil_retry_config c = cfg(4);
    struct op o = {.fail = 100, .error = -EIO, .verdict = RESIL_GATE_IGNORE};
    resil_retry_result res;
    assert_int_equal(resil_retry_with_breaker(b, RESIL_BREAKER_OPEN_STOP, op_fn, &o, "g-v", &c,
                                              &ro, &res),
                     RESIL_EEXHAUSTED);
    assert_int_equal(res.attempts, 5);
    assert_int_equal(snap(b).ignored, 5);
    assert_int_equal(snap(b).failed, 0);
    assert_int_equal(snap(b).state, RESIL_BREAKER_CLOSED);

    /* AUTO: failures count and trip it after 2; STOP ends the retry there */
    struct op f = {.fail = 100, .error = -EIO};
    assert_int_equal(resil_retry_with_breaker(b, RESIL_BREAKER_OPEN_STOP, op_fn, &f, "g-v", &c,
                                              &ro, &res),
                     RESIL_EPERMANENT);
    assert_int_equal(f.calls, 2);
    assert_int_equal(res.attempts, 2);
    assert_int_equal(res.last_error, RESIL_ECIRCUIT_OPEN);
    assert_int_equal(snap(b).failed, 2);
    resil_breaker_free(b);

    /* a duration the op gives is the breaker's slow-call measure */
    resil_breaker_opts bo = RESIL_BREAKER_OPTS_INIT;
    bo.clock = &fc.clock;
    bo.state_dir = "";
    bo.window_size = 2;
    bo.window_min_calls = 2;
    bo.slow_call_duration_s = 1;
    bo.slow_call_rate_threshold = 1.0;
    assert_int_equal(resil_breaker_new(&b, "g-slow", &bo, NULL), 0);
    struct op slow = {.duration_s = 5};
    for (int i = 0; i < 2; i++) {
        slow.calls = 0;
        assert_int_equal(resil_retry_with_breaker(b, RESIL_BREAKER_OPEN_STOP, op_fn, &slow,
                                                  "g-slow", &c, &ro, &res),
                         0);
    }
    assert_int_equal(snap(b).state, RESIL_BREAKER_OPEN);
    resil_breaker_free(b);
}

/* A gate of one's own: the retry knows only the hook. */
struct my_gate {
    int acquired, reported, refuse;
    resil_gate_report last;
};

static int my_acquire(void *arg, resil_gate_ticket *t, resil_gate_refusal *no)
{
    struct my_gate *g = arg;
    assert_true(no->outcome == RESIL_OUTCOME_PERMANENT && no->retry_after_s < 0);
    if (g->refuse > 0) {
        g->refuse--;
        no->outcome = RESIL_OUTCOME_TRANSIENT;
        no->retry_after_s = 0.25;
        return -EBUSY;
    }
    t->u64[0] = (uint64_t)++g->acquired;
    return 0;
}

static void my_report(void *arg, resil_gate_ticket *t, const resil_gate_report *r)
{
    struct my_gate *g = arg;
    assert_int_equal((int)t->u64[0], g->acquired);
    g->reported++;
    g->last = *r;
}

static void test_custom_gate_and_fast_path(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    struct my_gate mg = {.refuse = 2};
    resil_retry_gate gate = {my_acquire, my_report, &mg};
    resil_retry_opts ro = RESIL_RETRY_OPTS_INIT;
    ro.clock = &fc.clock;
    ro.gate = &gate;
    resil_retry_config c = cfg(5);
    struct op o = {.fail = 1, .error = -ECONNRESET};
    resil_retry_result res;
    /* resil_retry itself (the inline fast path must not skip the gate) */
    assert_int_equal(resil_retry(op_fn, &o, "g-own", &c, &ro, &res), 0);
    assert_int_equal(res.attempts, 2);
    assert_int_equal(o.seen_attempt[1], 2);
    assert_int_equal(mg.acquired, 2);
    assert_int_equal(mg.reported, 2);
    assert_int_equal(mg.last.outcome, RESIL_OUTCOME_SUCCESS);
    assert_true(mg.last.duration_s < 0);
    /* two refusals of 0.25 s, then attempt 1 fails (1 s), attempt 2 succeeds */
    assert_true(near(res.total_delay_s, 1.5));

    /* measure_time: the retry's own measure goes to the gate */
    mg = (struct my_gate){0};
    ro.measure_time = true;
    o = (struct op){0};
    assert_int_equal(resil_retry(op_fn, &o, "g-own", &c, &ro, &res), 0);
    assert_true(mg.last.duration_s >= 0);
}

/* ---- the retry API's friction ------------------------------------------------- */

static void test_outcome_from_errno(void **state)
{
    (void)state;
    const int transient[] = {EAGAIN, EWOULDBLOCK, ETIMEDOUT, ECONNREFUSED, ECONNRESET,
                             ECONNABORTED, EHOSTUNREACH, ENETUNREACH, EINTR, EBUSY};
    const int permanent[] = {EINVAL, EPERM, EACCES, ENOENT, EEXIST, ENOTDIR, EISDIR, ENOSPC};
    for (size_t i = 0; i < sizeof transient / sizeof *transient; i++) {
        assert_int_equal(resil_outcome_from_errno(transient[i]), RESIL_OUTCOME_TRANSIENT);
        assert_int_equal(resil_outcome_from_errno(-transient[i]), RESIL_OUTCOME_TRANSIENT);
    }
    for (size_t i = 0; i < sizeof permanent / sizeof *permanent; i++) {
        assert_int_equal(resil_outcome_from_errno(permanent[i]), RESIL_OUTCOME_PERMANENT);
        assert_int_equal(resil_outcome_from_errno(-permanent[i]), RESIL_OUTCOME_PERMANENT);
    }
    assert_int_equal(resil_outcome_from_errno(0), RESIL_OUTCOME_SUCCESS);
    assert_int_equal(resil_outcome_from_errno(RESIL_ETIMEDOUT), RESIL_OUTCOME_TRANSIENT);
    assert_int_equal(resil_outcome_from_errno(RESIL_ECIRCUIT_OPEN), RESIL_OUTCOME_TRANSIENT);
    assert_int_equal(resil_outcome_from_errno(RESIL_EINVAL), RESIL_OUTCOME_PERMANENT);
    assert_int_equal(resil_outcome_from_errno(INT_MIN), RESIL_OUTCOME_PERMANENT);
}

static void test_state_cancel_now_and_hooks(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_retry_config c = cfg(5);
    struct seen seen = {0};
    resil_retry_opts ro = RESIL_RETRY_OPTS_INIT;
    ro.clock = &fc.clock;
    ro.after_attempt = after_hook;
    ro.before_sleep = before_hook;
    ro.hook_arg = &seen;
    resil_retry_state st;
    assert_int_equal(resil_retry_state_init(&st, &c, &ro, NULL), 0);
    resil_retry_decision d;
    resil_retry_state_feed(&d, &st, RESIL_OUTCOME_TRANSIENT, -EAGAIN, -1);
    assert_true(d.retry);
    assert_int_equal(seen.after, 1);
    assert_int_equal(seen.before, 1);
    /* a refusal fed by the caller: a turn, not an attempt; before_sleep only */
    resil_retry_state_refused(&d, &st, RESIL_OUTCOME_TRANSIENT, RESIL_ECIRCUIT_OPEN, 3);
    assert_true(d.retry);
    assert_true(near(d.delay_s, 3));
    assert_int_equal(resil_retry_state_attempts(&st), 1);
    assert_int_equal(resil_retry_state_refusals(&st), 1);
    assert_int_equal(seen.after, 1);
    assert_int_equal(seen.before, 2);
    assert_int_equal(seen.refusal_sleeps, 1);
    /* cancelled during the back-off: the decision comes at once */
    resil_retry_state_cancel_now(&d, &st);
    assert_false(d.retry);
    assert_int_equal(d.reason, RESIL_STOP_CANCELLED);
    resil_retry_state_feed(&d, &st, RESIL_OUTCOME_SUCCESS, 0, -1);
    assert_int_equal(d.reason, RESIL_STOP_CANCELLED);
    assert_int_equal(seen.after, 1); /* no hook after the stop */
    /* a retry that ended keeps its reason */
    assert_int_equal(resil_retry_state_init(&st, &c, NULL, NULL), 0);
    resil_retry_state_feed(&d, &st, RESIL_OUTCOME_SUCCESS, 0, -1);
    resil_retry_state_cancel_now(&d, &st);
    assert_int_equal(d.reason, RESIL_STOP_SUCCESS);
    /* a refusal that stops */
    assert_int_equal(resil_retry_state_init(&st, &c, NULL, NULL), 0);
    resil_retry_state_refused(&d, &st, RESIL_OUTCOME_PERMANENT, RESIL_ECIRCUIT_OPEN, -1);
    assert_false(d.retry);
    assert_int_equal(d.reason, RESIL_STOP_PERMANENT);
    assert_int_equal(resil_retry_state_attempts(&st), 0);

    /* the state refuses a gate, clearly */
    resil_retry_gate gate = {my_acquire, my_report, NULL};
    ro.gate = &gate;
    resil_error e;
    resil_error_clear(&e);
    assert_int_equal(resil_retry_state_init(&st, &c, &ro, &e), RESIL_EINVAL);
    assert_string_equal(e.path, "gate");
}

static void test_bad_config_details_and_version(void **state)
{
    (void)state;
    resil_error e;
    resil_error_clear(&e);
    resil_retry_opts ro = RESIL_RETRY_OPTS_INIT;
    assert_int_equal(ro.version, RESIL_RETRY_OPTS_VERSION);
    ro.err = &e;
    resil_retry_config c = cfg(1);
    c.base_delay_s = 5; /* > max_delay_s */
    struct op o = {0};
    resil_retry_result res;
    assert_int_equal(resil_retry(op_fn, &o, "g-bad", &c, &ro, &res), RESIL_EINVAL);
    assert_int_equal(o.calls, 0);
    assert_string_equal(e.path, "base_delay_s");
    assert_non_null(strstr(e.message, "must not exceed max_delay_s"));
    /* a NULL op */
    resil_error_clear(&e);
    c = cfg(1);
    assert_int_equal(resil_retry(NULL, NULL, "g-bad", &c, &ro, &res), RESIL_EINVAL);
    assert_string_equal(e.path, "op");
    /* a newer version than the library's is refused by the library (the
     * inline fast path is the caller's header's own: it reads only the
     * fields it knows, so it need not look); 0 means 1 */
    resil_error_clear(&e);
    ro.version = RESIL_RETRY_OPTS_VERSION + 1;
    ro.measure_time = true; /* (off the fast path) */
    assert_int_equal(resil_retry(op_fn, &o, "g-bad", &c, &ro, &res), RESIL_EINVAL);
    assert_string_equal(e.path, "version");
    assert_int_equal(o.calls, 0);
    ro.version = 0;
    assert_int_equal(resil_retry(op_fn, &o, "g-bad", &c, &ro, &res), 0);
    /* the guard's options too */
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 0, 0);
    resil_breaker *b = mk("g-ver", &fc, 1);
    resil_guard_opts go = RESIL_GUARD_OPTS_INIT;
    go.version = RESIL_GUARD_OPTS_VERSION + 1;
    resil_guard *g = NULL;
    resil_error_clear(&e);
    assert_int_equal(resil_guard_new(&g, b, &go, &e), RESIL_EINVAL);
    assert_string_equal(e.path, "version");
    go.version = 0;
    go.open_policy = (resil_breaker_open_policy)7;
    assert_int_equal(resil_guard_new(&g, b, &go, &e), RESIL_EINVAL);
    assert_string_equal(e.path, "open_policy");
    assert_int_equal(resil_guard_new(&g, NULL, NULL, &e), RESIL_EINVAL);
    assert_int_equal(resil_guard_retry(NULL, op_fn, &o, "x", &c, NULL, &res), RESIL_EINVAL);
    resil_breaker_free(b);
}

/* Static initializers work (C11, no warnings under -Wextra). */
static const resil_retry_opts static_ro = RESIL_RETRY_OPTS_INIT;
static const resil_guard_opts static_go = RESIL_GUARD_OPTS_INIT;

static void test_static_init(void **state)
{
    (void)state;
    assert_int_equal(static_ro.version, RESIL_RETRY_OPTS_VERSION);
    assert_null(static_ro.gate);
    assert_int_equal(static_go.version, RESIL_GUARD_OPTS_VERSION);
    assert_int_equal(static_go.open_policy, RESIL_BREAKER_OPEN_WAIT);
}

int main(void)
{
    unsetenv("RESIL_METRICS_ENABLED");
    unsetenv("RESIL_STATE_DIR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wait_counts_refusals_apart),
        cmocka_unit_test(test_refusals_use_up_turns),
        cmocka_unit_test(test_verdict_and_duration),
        cmocka_unit_test(test_custom_gate_and_fast_path),
        cmocka_unit_test(test_outcome_from_errno),
        cmocka_unit_test(test_state_cancel_now_and_hooks),
        cmocka_unit_test(test_bad_config_details_and_version),
        cmocka_unit_test(test_static_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
