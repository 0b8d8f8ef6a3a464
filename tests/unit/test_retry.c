/* The retry engine: config, presets, validation, backoff, the state machine,
 * the blocking loop, deadlines, retry-after hints, the budget, hooks and
 * cancellation.  Everything runs on the fake clock except the cancellation
 * test, which is about real time. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "resil/retry.h"

#include "counting_clock.h"

#define S 1000000000LL
#define MS 1000000LL

static bool near(double a, double b)
{
    return fabs(a - b) < 1e-9;
}

/* ---- a scripted op ---------------------------------------------------------------- */

struct script {
    int fail_times;           /* transient failures before success */
    bool permanent;           /* fail permanently instead */
    int error;                /* error reported on failure */
    double retry_after_s;     /* hint given on failure (< 0: none) */
    int64_t op_cost_ns;       /* fake time each attempt takes */
    resil_fake_clock *clock;  /* to advance by op_cost_ns */
    int calls;
    int64_t attempt_start[64];
    int64_t deadline_ns;      /* if set, assert every attempt starts before it */
};

static resil_outcome scripted(resil_retry_call *call, void *arg)
{
    struct script *s = arg;
    assert_int_equal(call->attempt, s->calls + 1);
    assert_true(call->retry_after_s < 0);
    assert_int_equal(call->error, 0);
    if (s->clock) {
        int64_t now = resil_fake_clock_now(s->clock);
        if (s->calls < 64)
            s->attempt_start[s->calls] = now;
        if (s->deadline_ns)
            assert_true(now <= s->deadline_ns);
        resil_fake_clock_advance(s->clock, s->op_cost_ns);
    }
    s->calls++;
    if (s->permanent) {
        call->error = s->error;
        return RESIL_OUTCOME_PERMANENT;
    }
    if (s->calls <= s->fail_times) {
        call->error = s->error;
        call->retry_after_s = s->retry_after_s;
        return RESIL_OUTCOME_TRANSIENT;
    }
    return RESIL_OUTCOME_SUCCESS;
}

static resil_retry_config no_jitter(int retries, double base, double max)
{
    resil_retry_config c = RESIL_RETRY_TRANSIENT;
    c.max_retries = retries;
    c.base_delay_s = base;
    c.max_delay_s = max;
    c.jitter = false;
    return c;
}

/* ---- presets and validation ------------------------------------------------------- */

static void test_presets_exact(void **state)
{
    (void)state;
    struct {
        resil_retry_config c;
        const char *name;
        int n;
        double base, max;
    } p[] = {
        {RESIL_RETRY_TRANSIENT, "transient", 3, 1.0, 30.0},
        {RESIL_RETRY_EXTERNAL, "EXTERNAL", 5, 2.0, 60.0},
        {RESIL_RETRY_CRITICAL, "Critical", 10, 0.5, 120.0},
        {RESIL_RETRY_AGGRESSIVE, "aggressive", 7, 0.1, 10.0},
        {RESIL_RETRY_NONE, "none", 0, 1.0, 30.0},
    };
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) {
        assert_int_equal(p[i].c.max_retries, p[i].n);
        assert_true(p[i].c.base_delay_s == p[i].base);
        assert_true(p[i].c.max_delay_s == p[i].max);
        assert_true(p[i].c.exponential_base == 2.0);
        assert_true(p[i].c.jitter);
        assert_int_equal(resil_retry_config_jitter(&p[i].c), RESIL_JITTER_FULL);
        assert_true(p[i].c.max_elapsed_s == 0);
        assert_int_equal(resil_retry_config_validate(&p[i].c, NULL), 0);
        resil_retry_config byname;
        assert_int_equal(resil_retry_preset(&byname, p[i].name, NULL), 0);
        assert_int_equal(byname.max_retries, p[i].n);
        assert_true(byname.base_delay_s == p[i].base && byname.max_delay_s == p[i].max);
        assert_true(byname.exponential_base == 2.0 && byname.jitter);
    }
    resil_error e;
    resil_retry_config out;
    assert_int_equal(resil_retry_preset(&out, "fast", &e), RESIL_EINVAL);
    assert_non_null(strstr(e.message, "'fast'"));
    assert_non_null(strstr(e.message, "aggressive"));
    assert_int_equal(resil_retry_preset(&out, NULL, NULL), RESIL_EINVAL);
}

static void expect_invalid(resil_retry_config c, const char *field, const char *needle)
{
    resil_error e;
    assert_int_equal(resil_retry_config_validate(&c, &e), RESIL_EINVAL);
    assert_int_equal(e.code, RESIL_EINVAL);
    assert_string_equal(e.path, field);
    assert_non_null(strstr(e.message, field));
    if (needle)
        assert_non_null(strstr(e.message, needle));
}

static void test_validation_names_the_field(void **state)
{
    (void)state;
    resil_retry_config c = RESIL_RETRY_TRANSIENT;
    c.max_retries = -1;
    expect_invalid(c, "max_retries", "-1");
    c = (resil_retry_config)RESIL_RETRY_TRANSIENT;
    c.base_delay_s = -0.5;
    expect_invalid(c, "base_delay_s", "-0.5");
    c.base_delay_s = NAN;
    expect_invalid(c, "base_delay_s", "nan");
    c = (resil_retry_config)RESIL_RETRY_TRANSIENT;
    c.max_delay_s = INFINITY;
    expect_invalid(c, "max_delay_s", NULL);
    c = (resil_retry_config)RESIL_RETRY_TRANSIENT;
    c.base_delay_s = 40;
    expect_invalid(c, "base_delay_s", "max_delay_s");
    c = (resil_retry_config)RESIL_RETRY_TRANSIENT;
    c.exponential_base = 0.5;
    expect_invalid(c, "exponential_base", ">= 1");
    c.exponential_base = NAN;
    expect_invalid(c, "exponential_base", NULL);
    c = (resil_retry_config)RESIL_RETRY_TRANSIENT;
    c.max_elapsed_s = -1;
    expect_invalid(c, "max_elapsed_s", NULL);
    c = (resil_retry_config)RESIL_RETRY_TRANSIENT;
    c.jitter_kind = (resil_jitter_kind)99;
    expect_invalid(c, "jitter_kind", "99");
    assert_int_equal(resil_retry_config_validate(NULL, NULL), RESIL_EINVAL);

    /* Edge values that are fine. */
    c = no_jitter(0, 0, 0);
    c.exponential_base = 1;
    assert_int_equal(resil_retry_config_validate(&c, NULL), 0);
}

static void test_jitter_selection(void **state)
{
    (void)state;
    resil_retry_config c = RESIL_RETRY_TRANSIENT;
    assert_int_equal(resil_retry_config_jitter(&c), RESIL_JITTER_FULL);
    c.jitter_kind = RESIL_JITTER_EQUAL;
    assert_int_equal(resil_retry_config_jitter(&c), RESIL_JITTER_EQUAL);
    c.jitter = false;
    assert_int_equal(resil_retry_config_jitter(&c), RESIL_JITTER_DEFAULT);
}

/* ---- backoff ----------------------------------------------------------------------- */

static void test_backoff_no_jitter_exact(void **state)
{
    (void)state;
    resil_retry_config c = no_jitter(10, 1.0, 30.0);
    double want[] = {1, 2, 4, 8, 16, 30, 30, 30};
    for (int k = 1; k <= 8; k++)
        assert_true(near(resil_backoff_delay(&c, k, 0, NULL), want[k - 1]));
    c.exponential_base = 3;
    c.base_delay_s = 0.5;
    assert_true(near(resil_backoff_delay(&c, 3, 0, NULL), 4.5));
    /* Far past overflow of the exponent: still the cap, never inf or NaN. */
    assert_true(near(resil_backoff_delay(&c, 100000, 0, NULL), 30));
    assert_true(near(resil_backoff_delay(&c, 2147483647, 0, NULL), 30));
    /* exponential_base 1: constant delay. */
    c.exponential_base = 1;
    assert_true(near(resil_backoff_delay(&c, 50, 0, NULL), 0.5));
    /* base 0: always 0 (and 0 * inf is not NaN). */
    c = no_jitter(3, 0, 5);
    assert_true(resil_backoff_delay(&c, 5000, 0, NULL) == 0);
}

static void test_backoff_bounds_every_kind(void **state)
{
    (void)state;
    const resil_jitter_kind kinds[] = {RESIL_JITTER_FULL, RESIL_JITTER_EQUAL,
                                       RESIL_JITTER_DECORRELATED};
    const double bases[] = {0.1, 1.0, 2.0};
    const double maxes[] = {0.1, 10.0, 60.0};
    for (size_t ki = 0; ki < 3; ki++) {
        for (size_t bi = 0; bi < 3; bi++) {
            for (size_t mi = 0; mi < 3; mi++) {
                if (bases[bi] > maxes[mi])
                    continue;
                resil_retry_config c = RESIL_RETRY_TRANSIENT;
                c.base_delay_s = bases[bi];
                c.max_delay_s = maxes[mi];
                c.jitter_kind = kinds[ki];
                for (uint64_t seed = 0; seed < 300; seed++) {
                    resil_rng rng;
                    resil_rng_seed(&rng, seed);
                    double prev = 0;
                    for (int k = 1; k <= 20; k++) {
                        double env = fmin(c.max_delay_s, c.base_delay_s * pow(2, k - 1));
                        double d = resil_backoff_delay(&c, k, prev, &rng);
                        assert_true(d >= 0 && d <= c.max_delay_s);
                        switch (kinds[ki]) {
                        case RESIL_JITTER_FULL:
                            assert_true(d <= env);
                            break;
                        case RESIL_JITTER_EQUAL:
                            assert_true(d >= env / 2 && d <= env);
                            break;
                        default: {
                            double hi = fmin(c.max_delay_s,
                                             fmin(3 * fmax(prev, c.base_delay_s),
                                                  c.base_delay_s * pow(2, k)));
                            assert_true(d >= c.base_delay_s && d <= hi + 1e-12);
                            break;
                        }
                        }
                        prev = d;
                    }
                }
            }
        }
    }
}

static void test_backoff_is_pure_and_spread(void **state)
{
    (void)state;
    resil_retry_config c = RESIL_RETRY_TRANSIENT; /* FULL */
    resil_rng a, b;
    resil_rng_seed(&a, 99);
    b = a;
    for (int k = 1; k < 10; k++)
        assert_true(resil_backoff_delay(&c, k, 0, &a) == resil_backoff_delay(&c, k, 0, &b));

    /* FULL jitter over [0, d] has mean d/2; EQUAL has mean 3d/4. */
    double sum_full = 0, sum_equal = 0;
    const int n = 20000;
    resil_retry_config e = c;
    e.jitter_kind = RESIL_JITTER_EQUAL;
    for (int i = 0; i < n; i++) {
        sum_full += resil_backoff_delay(&c, 3, 0, &a);  /* d = 4 */
        sum_equal += resil_backoff_delay(&e, 3, 0, &a); /* d = 4 */
    }
    assert_true(fabs(sum_full / n - 2.0) < 0.1);
    assert_true(fabs(sum_equal / n - 3.0) < 0.1);

    /* DECORRELATED does not pile up at the cap: with a cap of 10 and a long
     * run, only a tiny share of delays sits exactly at the cap. */
    resil_retry_config d = c;
    d.jitter_kind = RESIL_JITTER_DECORRELATED;
    d.max_delay_s = 10;
    int at_cap = 0;
    double prev = 0;
    for (int i = 0; i < n; i++) {
        double v = resil_backoff_delay(&d, 30, prev, &a);
        at_cap += v == 10.0;
        prev = v;
    }
    assert_true(at_cap < n / 100);
    /* and it does not jump above the exponential schedule on early retries */
    resil_rng_seed(&a, 5);
    for (int i = 0; i < 1000; i++)
        assert_true(resil_backoff_delay(&d, 1, 0, &a) <= 2.0);
}

/* ---- the blocking loop on the fake clock ---------------------------------------------- */

static void test_success_first_reads_no_clock_draws_no_random(void **state)
{
    (void)state;
    struct counting_clock cc;
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.clock = counting_clock_init(&cc);
    resil_rng rng, before;
    resil_rng_seed(&rng, 1);
    before = rng;
    o.rng = &rng;
    struct script s = {0};
    resil_retry_result r;
    resil_retry_config c = RESIL_RETRY_TRANSIENT;
    assert_int_equal(resil_retry(scripted, &s, "first", &c, &o, &r), 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.reason, RESIL_STOP_SUCCESS);
    assert_true(r.elapsed_s == -1);
    assert_int_equal(cc.reads, 0);
    assert_memory_equal(&rng, &before, sizeof rng);
    assert_int_equal(resil_fake_clock_sleeps(&cc.fake), 0);

    /* With a deadline the clock is read (start, and for the result). */
    c.max_elapsed_s = 5;
    s.calls = 0;
    assert_int_equal(resil_retry(scripted, &s, "first", &c, &o, &r), 0);
    assert_true(cc.reads >= 1);
    assert_true(r.elapsed_s == 0);
}

static void test_flaky_then_success_exact_delays(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.clock = resil_fake_clock_init(&fc, 0, 0);
    o.measure_time = true;
    resil_retry_config c = no_jitter(5, 1.0, 30.0);
    struct script s = {.fail_times = 3, .error = -5, .retry_after_s = -1, .clock = &fc,
                       .op_cost_ns = 100 * MS};
    resil_retry_result r;
    assert_int_equal(resil_retry(scripted, &s, "flaky", &c, &o, &r), 0);
    assert_int_equal(r.attempts, 4);
    assert_int_equal(r.reason, RESIL_STOP_SUCCESS);
    assert_int_equal(r.last_outcome, RESIL_OUTCOME_SUCCESS);
    assert_int_equal(resil_fake_clock_sleeps(&fc), 3);
    assert_int_equal(resil_fake_clock_slept_ns(&fc), 7 * S); /* 1 + 2 + 4 */
    assert_true(near(r.total_delay_s, 7.0));
    assert_true(near(r.elapsed_s, 7.4)); /* + 4 attempts x 0.1 s */
    assert_int_equal(s.attempt_start[1] - s.attempt_start[0], 1100 * MS);
    assert_int_equal(s.attempt_start[3] - s.attempt_start[2], 4100 * MS);
}

static void test_exhausted_and_permanent(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.clock = resil_fake_clock_init(&fc, 0, 0);
    resil_retry_config c = RESIL_RETRY_TRANSIENT;
    struct script s = {.fail_times = 1000, .error = -111, .retry_after_s = -1};
    resil_retry_result r;
    assert_int_equal(resil_retry(scripted, &s, "x", &c, &o, &r), RESIL_EEXHAUSTED);
    assert_int_equal(s.calls, 4);
    assert_int_equal(r.attempts, 4);
    assert_int_equal(r.reason, RESIL_STOP_EXHAUSTED);
    assert_int_equal(r.last_error, -111);
    assert_int_equal(r.last_outcome, RESIL_OUTCOME_TRANSIENT);
    assert_true(r.total_delay_s <= 1 + 2 + 4);

    struct script p = {.permanent = true, .error = -42};
    assert_int_equal(resil_retry(scripted, &p, "x", &c, &o, &r), RESIL_EPERMANENT);
    assert_int_equal(p.calls, 1);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.reason, RESIL_STOP_PERMANENT);
    assert_int_equal(r.last_error, -42);

    /* NONE: one attempt. */
    resil_retry_config none = RESIL_RETRY_NONE;
    struct script n = {.fail_times = 1000, .retry_after_s = -1};
    assert_int_equal(resil_retry(scripted, &n, "x", &none, &o, &r), RESIL_EEXHAUSTED);
    assert_int_equal(n.calls, 1);
}

static void test_deadline_never_crossed(void **state)
{
    (void)state;
    for (uint64_t seed = 0; seed < 200; seed++) {
        for (int kind = RESIL_JITTER_DEFAULT; kind <= RESIL_JITTER_DECORRELATED; kind++) {
            resil_fake_clock fc;
            resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
            o.clock = resil_fake_clock_init(&fc, 5 * S, 0);
            resil_rng rng;
            resil_rng_seed(&rng, seed);
            o.rng = &rng;
            resil_retry_config c = RESIL_RETRY_AGGRESSIVE;
            c.max_retries = 1000;
            c.jitter = kind != RESIL_JITTER_DEFAULT;
            c.jitter_kind = (resil_jitter_kind)kind;
            c.max_elapsed_s = 3.0;
            int64_t deadline = 5 * S + 3 * S;
            struct script s = {.fail_times = 100000, .retry_after_s = -1, .clock = &fc,
                               .op_cost_ns = (int64_t)(seed % 7) * 10 * MS,
                               .deadline_ns = deadline};
            resil_retry_result r;
            assert_int_equal(resil_retry(scripted, &s, "d", &c, &o, &r), RESIL_EDEADLINE);
            assert_int_equal(r.reason, RESIL_STOP_DEADLINE);
            /* No sleep ever ended past the deadline. */
            int64_t after_ops = resil_fake_clock_now(&fc) - (int64_t)s.calls * s.op_cost_ns;
            assert_true(after_ops <= deadline);
            assert_true(r.elapsed_s <= 3.0 + s.calls * (double)s.op_cost_ns / 1e9 + 1e-9);
            assert_true(s.calls > 1);
        }
    }
}

static void test_retry_after_hint(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.clock = resil_fake_clock_init(&fc, 0, 0);
    resil_retry_config c = no_jitter(3, 1.0, 2.0);

    /* The hint replaces the computed delay, even above max_delay. */
    struct script s = {.fail_times = 2, .retry_after_s = 7.5};
    assert_int_equal(resil_retry(scripted, &s, "h", &c, &o, NULL), 0);
    assert_int_equal(resil_fake_clock_slept_ns(&fc), 15 * S);

    /* With a deadline, a hint is bounded by it like any delay: a hint after
     * which the next attempt could not start before the deadline stops the
     * retry at once, without sleeping to the deadline for nothing. */
    resil_fake_clock_init(&fc, 0, 0);
    c.max_elapsed_s = 5;
    struct script t = {.fail_times = 100, .retry_after_s = 100, .clock = &fc,
                       .op_cost_ns = 1 * S, .deadline_ns = 5 * S};
    resil_retry_result r;
    assert_int_equal(resil_retry(scripted, &t, "h", &c, &o, &r), RESIL_EDEADLINE);
    assert_int_equal(t.calls, 1);
    assert_int_equal(resil_fake_clock_slept_ns(&fc), 0);
    assert_true(r.total_delay_s == 0);
    /* A hint that fits is slept in full, even above max_delay_s. */
    resil_fake_clock_init(&fc, 0, 0);
    struct script t2 = {.fail_times = 1, .retry_after_s = 3.5, .clock = &fc,
                        .op_cost_ns = 1 * S, .deadline_ns = 5 * S};
    assert_int_equal(resil_retry(scripted, &t2, "h", &c, &o, &r), 0);
    assert_int_equal(t2.calls, 2);
    assert_int_equal(t2.attempt_start[1], 4500 * MS);
    /* A hint ending exactly at the deadline would leave no time: stop. */
    resil_fake_clock_init(&fc, 0, 0);
    struct script t3 = {.fail_times = 1, .retry_after_s = 4.0, .clock = &fc,
                        .op_cost_ns = 1 * S};
    assert_int_equal(resil_retry(scripted, &t3, "h", &c, &o, &r), RESIL_EDEADLINE);
    assert_int_equal(t3.calls, 1);

    /* A computed delay that would cross the deadline stops at once instead. */
    resil_fake_clock_init(&fc, 0, 0);
    c = no_jitter(10, 4.0, 4.0);
    c.max_elapsed_s = 5;
    struct script u = {.fail_times = 100, .retry_after_s = -1, .clock = &fc,
                       .op_cost_ns = 500 * MS};
    assert_int_equal(resil_retry(scripted, &u, "h", &c, &o, &r), RESIL_EDEADLINE);
    assert_int_equal(u.calls, 2); /* 0.5 + 4 + 0.5 = 5.0; a second 4 s sleep would cross */
    assert_int_equal(u.attempt_start[1], 4500 * MS);
    assert_int_equal(resil_fake_clock_now(&fc), 5 * S);

    /* A NaN hint counts as none. */
    resil_fake_clock_init(&fc, 0, 0);
    c = no_jitter(3, 1.0, 2.0);
    struct script v = {.fail_times = 1, .retry_after_s = NAN};
    assert_int_equal(resil_retry(scripted, &v, "h", &c, &o, NULL), 0);
    assert_int_equal(resil_fake_clock_slept_ns(&fc), 1 * S);
}

/* ---- hooks -------------------------------------------------------------------------------- */

struct hook_log {
    int after, before;
    resil_attempt_info last_after;
    double before_delays[16];
    int attempts_seen[16];
    resil_fake_clock *fc;
    int64_t slept_at_before[16];
};

static void after_hook(const resil_attempt_info *info, void *arg)
{
    struct hook_log *h = arg;
    h->attempts_seen[h->after++] = info->attempt;
    h->last_after = *info;
}

static void before_hook(const resil_attempt_info *info, void *arg)
{
    struct hook_log *h = arg;
    assert_int_equal(info->reason, RESIL_STOP_NONE);
    assert_string_equal(info->name, "hooked");
    h->slept_at_before[h->before] = resil_fake_clock_slept_ns(h->fc);
    h->before_delays[h->before++] = info->delay_s;
}

static void test_hooks(void **state)
{
    (void)state;
    resil_fake_clock fc;
    struct hook_log h = {.fc = &fc};
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.clock = resil_fake_clock_init(&fc, 0, 0);
    o.after_attempt = after_hook;
    o.before_sleep = before_hook;
    o.hook_arg = &h;
    resil_retry_config c = no_jitter(2, 0.5, 30);
    struct script s = {.fail_times = 10, .error = -7, .retry_after_s = -1};
    assert_int_equal(resil_retry(scripted, &s, "hooked", &c, &o, NULL), RESIL_EEXHAUSTED);
    assert_int_equal(h.after, 3);
    assert_int_equal(h.before, 2);
    for (int i = 0; i < 3; i++)
        assert_int_equal(h.attempts_seen[i], i + 1);
    assert_true(near(h.before_delays[0], 0.5));
    assert_true(near(h.before_delays[1], 1.0));
    /* before_sleep runs before the sleep it announces */
    assert_int_equal(h.slept_at_before[0], 0);
    assert_int_equal(h.slept_at_before[1], 500 * MS);
    assert_int_equal(h.last_after.attempt, 3);
    assert_int_equal(h.last_after.reason, RESIL_STOP_EXHAUSTED);
    assert_int_equal(h.last_after.error, -7);
    assert_int_equal(h.last_after.outcome, RESIL_OUTCOME_TRANSIENT);
    assert_true(h.last_after.delay_s == 0);
    assert_true(h.last_after.elapsed_s == -1);
}

/* ---- the state machine directly ------------------------------------------------------------ */

static void test_state_machine(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.clock = resil_fake_clock_init(&fc, 0, 0);
    resil_retry_state st;
    resil_error e;
    resil_retry_config bad = RESIL_RETRY_TRANSIENT;
    bad.max_delay_s = -3;
    assert_int_equal(resil_retry_state_init(&st, &bad, &o, &e), RESIL_EINVAL);
    assert_string_equal(e.path, "max_delay_s");

    resil_retry_config c = no_jitter(2, 1, 10);
    assert_int_equal(resil_retry_state_init(&st, &c, &o, NULL), 0);
    resil_retry_decision d;
    resil_retry_state_feed(&d, &st, RESIL_OUTCOME_TRANSIENT, -1, -1);
    assert_true(d.retry);
    assert_true(near(d.delay_s, 1));
    resil_retry_state_feed(&d, &st, RESIL_OUTCOME_TRANSIENT, -2, 0.25);
    assert_true(d.retry);
    assert_true(near(d.delay_s, 0.25));
    resil_retry_state_feed(&d, &st, RESIL_OUTCOME_TRANSIENT, -3, -1);
    assert_false(d.retry);
    assert_int_equal(d.reason, RESIL_STOP_EXHAUSTED);
    assert_int_equal(resil_retry_state_attempts(&st), 3);
    /* Once stopped, it keeps answering the same stop. */
    resil_retry_state_feed(&d, &st, RESIL_OUTCOME_SUCCESS, 0, -1);
    assert_false(d.retry);
    assert_int_equal(d.reason, RESIL_STOP_EXHAUSTED);
    assert_int_equal(resil_retry_state_attempts(&st), 3);
    assert_true(resil_retry_state_elapsed(&st) == -1);

    /* Cancel marks the state; the next feed answers CANCELLED. */
    assert_int_equal(resil_retry_state_init(&st, &c, NULL, NULL), 0);
    resil_retry_state_cancel(&st);
    resil_retry_state_feed(&d, &st, RESIL_OUTCOME_TRANSIENT, -1, -1);
    assert_false(d.retry);
    assert_int_equal(d.reason, RESIL_STOP_CANCELLED);

    /* The reason names and codes. */
    assert_string_equal(resil_stop_reason_name(RESIL_STOP_BUDGET), "budget");
    assert_string_equal(resil_stop_reason_name((resil_stop_reason)77), "unknown");
    assert_int_equal(resil_stop_reason_error(RESIL_STOP_DEADLINE), RESIL_EDEADLINE);
    assert_int_equal(resil_stop_reason_error(RESIL_STOP_SUCCESS), 0);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    resil_retry_config c = RESIL_RETRY_TRANSIENT;
    c.exponential_base = 0;
    struct script s = {0};
    resil_retry_result r;
    assert_int_equal(resil_retry(scripted, &s, "x", &c, NULL, &r), RESIL_EINVAL);
    assert_int_equal(s.calls, 0);
    assert_int_equal(r.attempts, 0);
    assert_int_equal(resil_retry(NULL, &s, "x", NULL, NULL, NULL), RESIL_EINVAL);
    /* NULL config means TRANSIENT, NULL opts the defaults. */
    assert_int_equal(resil_retry(scripted, &s, NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.attempts, 1);
}

/* ---- budget ------------------------------------------------------------------------------------ */

static void test_budget_refuses_and_refills(void **state)
{
    (void)state;
    resil_retry_budget *b;
    resil_error e;
    assert_int_equal(resil_retry_budget_new(&b, 0, 0.1, &e), RESIL_EINVAL);
    assert_string_equal(e.path, "max_tokens");
    assert_int_equal(resil_retry_budget_new(&b, 10, 1.5, &e), RESIL_EINVAL);
    assert_string_equal(e.path, "token_ratio");
    assert_int_equal(resil_retry_budget_new(&b, 10, 0.5, NULL), 0);
    assert_true(resil_retry_budget_tokens(b) == 10);

    resil_fake_clock fc;
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.clock = resil_fake_clock_init(&fc, 0, 0);
    o.budget = b;
    resil_retry_config c = RESIL_RETRY_CRITICAL;
    /* Always failing: 10 -> 9 -> ... each failure costs 1; retries stop once
     * tokens are no longer above half (5). */
    struct script s = {.fail_times = 1000, .retry_after_s = -1};
    resil_retry_result r;
    assert_int_equal(resil_retry(scripted, &s, "b", &c, &o, &r), RESIL_EBUDGET);
    assert_int_equal(r.reason, RESIL_STOP_BUDGET);
    assert_int_equal(s.calls, 5);
    assert_true(resil_retry_budget_tokens(b) == 5);
    assert_false(resil_retry_budget_allows(b));

    /* Another caller sharing the budget gets its one attempt, no retry. */
    struct script s2 = {.fail_times = 1000, .retry_after_s = -1};
    assert_int_equal(resil_retry(scripted, &s2, "b", &c, &o, &r), RESIL_EBUDGET);
    assert_int_equal(s2.calls, 1);
    assert_true(resil_retry_budget_tokens(b) == 4);

    /* Successes refill by token_ratio, up to max. */
    for (int i = 0; i < 6; i++) {
        struct script ok = {0};
        assert_int_equal(resil_retry(scripted, &ok, "b", &c, &o, NULL), 0);
    }
    assert_true(fabs(resil_retry_budget_tokens(b) - 7.0) < 1e-9);
    assert_true(resil_retry_budget_allows(b));
    struct script s3 = {.fail_times = 1, .retry_after_s = -1};
    assert_int_equal(resil_retry(scripted, &s3, "b", &c, &o, &r), 0);
    assert_int_equal(r.attempts, 2);
    for (int i = 0; i < 100; i++)
        resil_retry_budget_on_success(b);
    assert_true(resil_retry_budget_tokens(b) == 10);
    for (int i = 0; i < 100; i++)
        resil_retry_budget_on_failure(b);
    assert_true(resil_retry_budget_tokens(b) == 0);
    resil_retry_budget_free(b);
    resil_retry_budget_free(NULL);
}

struct budget_thread {
    resil_retry_budget *b;
    int successes, failures;
};

static void *budget_worker(void *arg)
{
    struct budget_thread *t = arg;
    for (int i = 0; i < t->failures; i++)
        resil_retry_budget_on_failure(t->b);
    for (int i = 0; i < t->successes; i++)
        resil_retry_budget_on_success(t->b);
    return NULL;
}

static void test_budget_threads(void **state)
{
    (void)state;
    resil_retry_budget *b;
    assert_int_equal(resil_retry_budget_new(&b, 1000, 0.001, NULL), 0);
    /* 4 threads take 200 tokens each (800), then give back 20000 x 0.001 = 20
     * each.  Nothing clamps on the way, so the result is exact: no update
     * may be lost. */
    pthread_t th[4];
    struct budget_thread t = {b, 20000, 200};
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, budget_worker, &t);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_true(fabs(resil_retry_budget_tokens(b) - (1000 - 800 + 80)) < 1e-9);
    resil_retry_budget_free(b);
}

/* ---- cancellation (real time) --------------------------------------------------------------- */

struct cancel_after {
    resil_cancel *c;
    int64_t at;
};

static void *cancel_thread(void *arg)
{
    struct cancel_after *k = arg;
    struct timespec ts = {0, 30 * MS};
    nanosleep(&ts, NULL);
    k->at = resil_clock_monotonic_ns(NULL);
    resil_cancel_cancel(k->c);
    return NULL;
}

static void test_cancel_wakes_sleeping_retry(void **state)
{
    (void)state;
    resil_cancel *tok;
    assert_int_equal(resil_cancel_new(&tok), 0);
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.cancel = tok;
    resil_retry_config c = no_jitter(5, 10.0, 10.0); /* would sleep 10 s */
    struct script s = {.fail_times = 100, .error = -9, .retry_after_s = -1};
    struct cancel_after k = {tok, 0};
    pthread_t th;
    pthread_create(&th, NULL, cancel_thread, &k);
    resil_retry_result r;
    assert_int_equal(resil_retry(scripted, &s, "c", &c, &o, &r), RESIL_ECANCELED);
    int64_t woke = resil_clock_monotonic_ns(NULL);
    pthread_join(th, NULL);
    assert_true(woke - k.at < 50 * MS);
    assert_int_equal(r.reason, RESIL_STOP_CANCELLED);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.last_error, -9);

    /* Already cancelled: the op is not called at all. */
    struct script s2 = {0};
    assert_int_equal(resil_retry(scripted, &s2, "c", &c, &o, &r), RESIL_ECANCELED);
    assert_int_equal(s2.calls, 0);
    assert_int_equal(r.attempts, 0);

    /* Cancelled between attempts (the op cancels): no further attempt, even
     * with the fake clock whose sleeps do not block. */
    resil_cancel_reset(tok);
    resil_fake_clock fc;
    o.clock = resil_fake_clock_init(&fc, 0, 0);
    struct script s3 = {.fail_times = 100, .retry_after_s = -1};
    (void)s3;
    resil_retry_config fast = no_jitter(5, 1, 1);
    resil_cancel_cancel(tok);
    assert_int_equal(resil_retry(scripted, &s3, "c", &fast, &o, &r), RESIL_ECANCELED);
    assert_int_equal(s3.calls, 0);
    resil_cancel_free(tok);
}

/* Hooks take time: the deadline is checked again right before sleeping. */
struct slow_hook {
    resil_fake_clock *fc;
    int64_t cost_ns;
    int calls;
};

static void slow_before_sleep(const resil_attempt_info *info, void *arg)
{
    (void)info;
    struct slow_hook *h = arg;
    h->calls++;
    resil_fake_clock_advance(h->fc, h->cost_ns);
}

static void test_deadline_rechecked_after_hooks(void **state)
{
    (void)state;
    resil_fake_clock fc;
    struct slow_hook h = {&fc, 800 * MS, 0};
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.clock = resil_fake_clock_init(&fc, 0, 0);
    o.before_sleep = slow_before_sleep;
    o.hook_arg = &h;
    resil_retry_config c = no_jitter(5, 1.0, 1.0);
    c.max_elapsed_s = 1.5; /* 1 s sleep fits at t=0, not after a 0.8 s hook */
    struct script s = {.fail_times = 100, .retry_after_s = -1, .clock = &fc};
    resil_retry_result r;
    assert_int_equal(resil_retry(scripted, &s, "h", &c, &o, &r), RESIL_EDEADLINE);
    assert_int_equal(h.calls, 1);
    assert_int_equal(s.calls, 1);
    assert_int_equal(resil_fake_clock_slept_ns(&fc), 0);
    assert_true(r.total_delay_s == 0);
    assert_true(resil_fake_clock_now(&fc) <= 1500 * MS);
}

/* A clock whose sleep "sleeps" fine but a signal cancels the token meanwhile:
 * the token is checked again before the next attempt. */
static resil_cancel *sleep_cancels_token;
static int64_t ccl_mono(void *ctx)
{
    (void)ctx;
    return 0;
}
static int ccl_sleep(void *ctx, int64_t ns, resil_cancel *cancel)
{
    (void)ctx;
    (void)ns;
    (void)cancel;
    resil_cancel_cancel(sleep_cancels_token);
    return 0;
}

static void test_cancel_checked_after_sleep(void **state)
{
    (void)state;
    assert_int_equal(resil_cancel_new(&sleep_cancels_token), 0);
    resil_clock clk = {ccl_mono, ccl_mono, ccl_sleep, NULL};
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.clock = &clk;
    o.cancel = sleep_cancels_token;
    resil_retry_config c = no_jitter(5, 1, 1);
    struct script s = {.fail_times = 100, .retry_after_s = -1};
    resil_retry_result r;
    assert_int_equal(resil_retry(scripted, &s, "c", &c, &o, &r), RESIL_ECANCELED);
    assert_int_equal(s.calls, 1);
    assert_int_equal(r.reason, RESIL_STOP_CANCELLED);
    resil_cancel_free(sleep_cancels_token);
}

/* An op returning a value outside resil_outcome counts as a permanent
 * failure, on the fast path as on the slow one, and is called once. */
static int weird_calls;
static resil_outcome weird_op(resil_retry_call *call, void *arg)
{
    (void)call;
    (void)arg;
    weird_calls++;
    return (resil_outcome)-1;
}

static void test_out_of_range_outcome(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.clock = resil_fake_clock_init(&fc, 0, 0);
    resil_retry_config c = RESIL_RETRY_TRANSIENT;
    resil_retry_result r;
    weird_calls = 0;
    assert_int_equal(resil_retry(weird_op, NULL, "w", &c, &o, &r), RESIL_EPERMANENT);
    assert_int_equal(weird_calls, 1);
    o.measure_time = true; /* the slow path from the start */
    weird_calls = 0;
    assert_int_equal(resil_retry(weird_op, NULL, "w", &c, &o, &r), RESIL_EPERMANENT);
    assert_int_equal(weird_calls, 1);
}

/* A deadline below one nanosecond is still a deadline, whatever the clock's
 * epoch. */
static void test_tiny_deadline(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.clock = resil_fake_clock_init(&fc, 0, 0);
    resil_retry_config c = no_jitter(1000, 0, 0);
    c.max_elapsed_s = 1e-10;
    struct script s = {.fail_times = 100000, .retry_after_s = -1, .clock = &fc, .op_cost_ns = 1};
    assert_int_equal(resil_retry(scripted, &s, "t", &c, &o, NULL), RESIL_EDEADLINE);
    assert_int_equal(s.calls, 1);
}

/* The exported, out-of-line resil_retry (what a function pointer or another
 * language calls) behaves like the inline fast path. */
static void test_exported_function_matches_inline(void **state)
{
    (void)state;
    int (*volatile fp)(resil_retry_op, void *, const char *, const resil_retry_config *,
                       const resil_retry_opts *, resil_retry_result *) = resil_retry;
    resil_fake_clock fc;
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.clock = resil_fake_clock_init(&fc, 0, 0);
    resil_retry_config c = no_jitter(3, 1, 8);
    resil_retry_result r1, r2;
    struct script a = {.fail_times = 2, .error = -3, .retry_after_s = -1};
    struct script b = a;
    assert_int_equal(fp(scripted, &a, "x", &c, &o, &r1), 0);
    assert_int_equal(resil_retry(scripted, &b, "x", &c, &o, &r2), 0);
    assert_int_equal(r1.attempts, 3);
    assert_int_equal(r2.attempts, 3);
    assert_true(r1.total_delay_s == r2.total_delay_s);
    c.base_delay_s = 99;
    assert_int_equal(fp(scripted, &a, "x", &c, &o, &r1), RESIL_EINVAL);

    /* Values the inline pre-check refuses but the validator accepts (a
     * negative zero) still work, through the slow path. */
    c = no_jitter(3, 1, 8);
    c.max_elapsed_s = -0.0;
    struct script z = {.fail_times = 1, .retry_after_s = -1};
    assert_int_equal(resil_retry(scripted, &z, "x", &c, &o, &r1), 0);
    assert_int_equal(r1.attempts, 2);
    /* And every invalid field is refused by the inline path too. */
    resil_retry_config bad[6];
    for (int i = 0; i < 6; i++)
        bad[i] = no_jitter(3, 1, 8);
    bad[0].max_retries = -2;
    bad[1].base_delay_s = NAN;
    bad[2].max_delay_s = INFINITY;
    bad[3].exponential_base = 0.99;
    bad[4].exponential_base = INFINITY;
    bad[5].jitter_kind = (resil_jitter_kind)4;
    for (int i = 0; i < 6; i++) {
        struct script n = {0};
        assert_int_equal(resil_retry(scripted, &n, "x", &bad[i], NULL, NULL), RESIL_EINVAL);
        assert_int_equal(n.calls, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets_exact),
        cmocka_unit_test(test_validation_names_the_field),
        cmocka_unit_test(test_jitter_selection),
        cmocka_unit_test(test_backoff_no_jitter_exact),
        cmocka_unit_test(test_backoff_bounds_every_kind),
        cmocka_unit_test(test_backoff_is_pure_and_spread),
        cmocka_unit_test(test_success_first_reads_no_clock_draws_no_random),
        cmocka_unit_test(test_flaky_then_success_exact_delays),
        cmocka_unit_test(test_exhausted_and_permanent),
        cmocka_unit_test(test_deadline_never_crossed),
        cmocka_unit_test(test_retry_after_hint),
        cmocka_unit_test(test_hooks),
        cmocka_unit_test(test_deadline_rechecked_after_hooks),
        cmocka_unit_test(test_cancel_checked_after_sleep),
        cmocka_unit_test(test_out_of_range_outcome),
        cmocka_unit_test(test_tiny_deadline),
        cmocka_unit_test(test_state_machine),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_exported_function_matches_inline),
        cmocka_unit_test(test_budget_refuses_and_refills),
        cmocka_unit_test(test_budget_threads),
        cmocka_unit_test(test_cancel_wakes_sleeping_retry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
