/* Circuit breakers: every transition, the trip rules (consecutive failures,
 * failure-rate and slow-call-rate windows), the growing and jittered open
 * duration, half-open trial leases and stale permits, classifiers,
 * listeners, snapshots, options and environment defaults, the registry,
 * threads, and retry around a breaker.
 *
 * Everything runs on the fake clock (nothing sleeps), process-local
 * (state_dir ""), with fixed seeds.  The only real-clock use is
 * resil_with_circuit_breaker, which never waits. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resil/breaker.h"
#include "resil/guard.h"
#include "resil/clock.h"
#include "resil/retry.h"

#include "counting_clock.h"

#define S 1000000000LL
#define MS 1000000LL
#define EPS 1e-6

/* ---- helpers ------------------------------------------------------------------ */

#define assert_near(a, b)                                                              \
    do {                                                                               \
        double a_ = (double)(a), b_ = (double)(b);                                     \
        if (!(fabs(a_ - b_) <= EPS))                                                   \
            fail_msg("%s = %.9f, expected %.9f", #a, a_, b_);                          \
    } while (0)

#define assert_state(b, want)                                                          \
    do {                                                                               \
        resil_breaker_state got_ = resil_breaker_get_state(b);                         \
        if (got_ != (want))                                                            \
            fail_msg("state %s, expected %s", resil_breaker_state_name(got_),          \
                     resil_breaker_state_name(want));                                  \
    } while (0)

/* acquire must succeed */
#define ACQ(b, p) assert_int_equal(resil_breaker_acquire((b), (p), NULL), 0)

/* acquire must be refused with retry_in_s == want */
#define REFUSED(b, want)                                                               \
    do {                                                                               \
        resil_breaker_permit rp_;                                                      \
        double w_ = -12345;                                                            \
        assert_int_equal(resil_breaker_acquire((b), &rp_, &w_), RESIL_ECIRCUIT_OPEN);  \
        assert_near(w_, (want));                                                       \
    } while (0)

/* one whole call with a verdict (explicit duration 0: never slow) */
#define CALL(b, verdict)                                                               \
    do {                                                                               \
        resil_breaker_permit cp_;                                                      \
        ACQ((b), &cp_);                                                                \
        assert_int_equal(resil_breaker_record((b), &cp_, (verdict), 0.0), 0);          \
    } while (0)

#define CALLS(b, verdict, n)                                                           \
    do {                                                                               \
        for (int ci_ = 0; ci_ < (n); ci_++)                                            \
            CALL((b), (verdict));                                                      \
    } while (0)

/* one whole call with an explicit duration */
#define TIMED(b, verdict, dur)                                                         \
    do {                                                                               \
        resil_breaker_permit tp_;                                                      \
        ACQ((b), &tp_);                                                                \
        assert_int_equal(resil_breaker_record((b), &tp_, (verdict), (dur)), 0);        \
    } while (0)

static void adv(resil_fake_clock *fc, double s)
{
    resil_fake_clock_advance(fc, (int64_t)llround(s * 1e9));
}

static resil_breaker_opts base_opts(resil_fake_clock *fc)
{
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    o.clock = &fc->clock;
    o.state_dir = "";
    o.seed = 42;
    o.failure_threshold = 3;
    o.recovery_timeout_s = 10;
    return o;
}

static resil_breaker *mk(const char *name, const resil_breaker_opts *o)
{
    resil_breaker *b = NULL;
    resil_error e;
    memset(&e, 0, sizeof e);
    int rc = resil_breaker_new(&b, name, o, &e);
    if (rc != 0)
        fail_msg("resil_breaker_new(%s): %s (%s: %s)", name, resil_err_name(rc), e.path,
                 e.message);
    assert_non_null(b);
    return b;
}

static resil_breaker_snapshot snap(resil_breaker *b)
{
    resil_breaker_snapshot s;
    memset(&s, 0xA5, sizeof s);
    assert_int_equal(resil_breaker_snapshot_get(b, &s), 0);
    return s;
}

/* Trips a CLOSED breaker with the consecutive rule (threshold failures). */
static void trip_by_failures(resil_breaker *b)
{
    resil_breaker_snapshot s = snap(b);
    for (int i = 0; i < s.failure_threshold; i++)
        CALL(b, RESIL_BREAKER_FAILURE);
    assert_state(b, RESIL_BREAKER_OPEN);
}

/* ---- a listener that records transitions -------------------------------------- */

#define MAXT 64
struct trec {
    int n;
    struct {
        resil_breaker_state from, to;
        double open_for_s;
        char reason[40];
        char name[64];
    } t[MAXT];
};

static void rec_listener(const resil_breaker_transition *t, void *arg)
{
    struct trec *r = arg;
    if (r->n < MAXT) {
        r->t[r->n].from = t->from;
        r->t[r->n].to = t->to;
        r->t[r->n].open_for_s = t->open_for_s;
        snprintf(r->t[r->n].reason, sizeof r->t[r->n].reason, "%s",
                 t->reason ? t->reason : "(null)");
        snprintf(r->t[r->n].name, sizeof r->t[r->n].name, "%s", t->name ? t->name : "(null)");
    }
    r->n++;
}

#define assert_transition(r, i, f, to_, why)                                           \
    do {                                                                               \
        assert_true((r)->n > (i));                                                     \
        if ((r)->t[i].from != (f) || (r)->t[i].to != (to_) ||                          \
            strcmp((r)->t[i].reason, (why)) != 0)                                      \
            fail_msg("transition %d: %s -> %s (%s), expected %s -> %s (%s)", (i),      \
                     resil_breaker_state_name((r)->t[i].from),                         \
                     resil_breaker_state_name((r)->t[i].to), (r)->t[i].reason,         \
                     resil_breaker_state_name(f), resil_breaker_state_name(to_), why); \
    } while (0)

/* ---- names --------------------------------------------------------------------- */

static void test_state_names_and_identity(void **state)
{
    (void)state;
    assert_string_equal(resil_breaker_state_name(RESIL_BREAKER_CLOSED), "closed");
    assert_string_equal(resil_breaker_state_name(RESIL_BREAKER_OPEN), "open");
    assert_string_equal(resil_breaker_state_name(RESIL_BREAKER_HALF_OPEN), "half_open");
    assert_string_equal(resil_breaker_state_name(RESIL_BREAKER_FORCED_OPEN), "forced_open");
    assert_string_equal(resil_breaker_state_name(RESIL_BREAKER_DISABLED), "disabled");
    assert_string_equal(resil_breaker_state_name((resil_breaker_state)99), "unknown");

    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    resil_breaker *b = mk("svc/one two", &o);
    assert_string_equal(resil_breaker_name(b), "svc/one two");
    assert_false(resil_breaker_is_shared(b));
    assert_state(b, RESIL_BREAKER_CLOSED);
    resil_breaker_snapshot s = snap(b);
    assert_false(s.shared);
    assert_int_equal(s.state, RESIL_BREAKER_CLOSED);
    resil_breaker_free(b);
    resil_breaker_free(NULL);
}

/* ---- CLOSED -> OPEN on consecutive failures --------------------------------------- */

static void test_closed_to_open_consecutive(void **state)
{
    (void)state;
    const int thresholds[] = {1, 2, 3, 5, 17};
    for (size_t i = 0; i < sizeof thresholds / sizeof thresholds[0]; i++) {
        int th = thresholds[i];
        resil_fake_clock fc;
        resil_fake_clock_init(&fc, 1000 * S, 0);
        resil_breaker_opts o = base_opts(&fc);
        o.failure_threshold = th;
        resil_breaker *b = mk("consecutive", &o);
        struct trec r = {0};
        assert_int_equal(resil_breaker_add_listener(b, rec_listener, &r), 0);

        /* threshold-1 failures, a success, threshold-1 failures: still closed */
        CALLS(b, RESIL_BREAKER_FAILURE, th - 1);
        assert_int_equal(snap(b).consecutive_failures, th - 1);
        CALL(b, RESIL_BREAKER_SUCCESS);
        assert_int_equal(snap(b).consecutive_failures, 0);
        CALLS(b, RESIL_BREAKER_FAILURE, th - 1);
        assert_state(b, RESIL_BREAKER_CLOSED);
        assert_int_equal(snap(b).consecutive_failures, th - 1);
        assert_int_equal(r.n, 0);

        /* the threshold-th failure in a row trips */
        CALL(b, RESIL_BREAKER_FAILURE);
        assert_state(b, RESIL_BREAKER_OPEN);
        resil_breaker_snapshot s = snap(b);
        assert_int_equal(s.state, RESIL_BREAKER_OPEN);
        assert_int_equal(s.failed, 2 * (th - 1) + 1);
        assert_int_equal(s.successful, 1);
        assert_int_equal(s.open_streak, 1);
        assert_near(s.open_duration_s, 10);
        assert_near(s.time_until_half_open_s, 10);
        assert_int_equal(r.n, 1);
        assert_transition(&r, 0, RESIL_BREAKER_CLOSED, RESIL_BREAKER_OPEN,
                          "consecutive_failures");
        assert_near(r.t[0].open_for_s, 10);
        assert_string_equal(r.t[0].name, "consecutive");
        REFUSED(b, 10);
        resil_breaker_free(b);
    }
}

/* ---- OPEN refuses with the remaining time ------------------------------------------ */

static void test_open_refuses_with_remaining_time(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    o.recovery_timeout_s = 10;
    resil_breaker *b = mk("remaining", &o);
    trip_by_failures(b);
    const struct {
        double advance_s;
        double left_s;
    } steps[] = {{0, 10}, {0.25, 9.75}, {2.25, 7.5}, {5, 2.5}, {2.499, 0.001}};
    int64_t refused = 0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        adv(&fc, steps[i].advance_s);
        REFUSED(b, steps[i].left_s);
        refused++;
        assert_near(resil_breaker_time_until_half_open(b), steps[i].left_s);
        resil_breaker_snapshot s = snap(b);
        assert_int_equal(s.state, RESIL_BREAKER_OPEN);
        assert_near(s.time_until_half_open_s, steps[i].left_s);
        assert_int_equal(s.not_permitted, refused);
        assert_state(b, RESIL_BREAKER_OPEN);
    }
    /* retry_in_s may be NULL */
    resil_breaker_permit p;
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), RESIL_ECIRCUIT_OPEN);
    assert_int_equal(snap(b).not_permitted, refused + 1);
    resil_breaker_free(b);
}

/* ---- OPEN -> HALF_OPEN ----------------------------------------------------------------- */

static void test_open_to_half_open(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    resil_breaker *b = mk("to-half-open", &o);
    struct trec r = {0};
    assert_int_equal(resil_breaker_add_listener(b, rec_listener, &r), 0);
    trip_by_failures(b);
    uint64_t epoch_open = snap(b).epoch;

    adv(&fc, 9.999);
    assert_state(b, RESIL_BREAKER_OPEN);
    REFUSED(b, 0.001);

    /* the time is over: reads HALF_OPEN before anyone acquires */
    adv(&fc, 0.001);
    assert_state(b, RESIL_BREAKER_HALF_OPEN);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_HALF_OPEN);
    assert_near(s.time_until_half_open_s, 0);
    assert_near(resil_breaker_time_until_half_open(b), 0);

    /* acquire moves it and takes the trial permit */
    resil_breaker_permit p;
    double w = -5;
    assert_int_equal(resil_breaker_acquire(b, &p, &w), 0);
    s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_HALF_OPEN);
    assert_int_equal(s.epoch, epoch_open + 1);
    assert_int_equal(s.half_open_in_flight, 1);
    assert_int_equal(r.n, 2);
    assert_transition(&r, 1, RESIL_BREAKER_OPEN, RESIL_BREAKER_HALF_OPEN, "recovery_timeout");
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_SUCCESS, 0), 0);
    assert_state(b, RESIL_BREAKER_CLOSED);
    resil_breaker_free(b);
}

/* ---- HALF_OPEN -> CLOSED after success_threshold successes in a row ------------------ */

static void test_half_open_to_closed(void **state)
{
    (void)state;
    const int sts[] = {1, 2, 4};
    for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++) {
        resil_fake_clock fc;
        resil_fake_clock_init(&fc, 1000 * S, 0);
        resil_breaker_opts o = base_opts(&fc);
        o.success_threshold = sts[i];
        resil_breaker *b = mk("ho-close", &o);
        struct trec r = {0};
        assert_int_equal(resil_breaker_add_listener(b, rec_listener, &r), 0);
        trip_by_failures(b);
        adv(&fc, 10);
        for (int k = 0; k < sts[i] - 1; k++) {
            CALL(b, RESIL_BREAKER_SUCCESS);
            assert_state(b, RESIL_BREAKER_HALF_OPEN);
        }
        CALL(b, RESIL_BREAKER_SUCCESS);
        assert_state(b, RESIL_BREAKER_CLOSED);
        resil_breaker_snapshot s = snap(b);
        assert_int_equal(s.open_streak, 0);
        assert_int_equal(s.consecutive_failures, 0);
        assert_int_equal(s.half_open_in_flight, 0);
        assert_int_equal(r.n, 3);
        assert_transition(&r, 2, RESIL_BREAKER_HALF_OPEN, RESIL_BREAKER_CLOSED,
                          "half_open_success");
        /* closed again: threshold failures are needed once more */
        CALLS(b, RESIL_BREAKER_FAILURE, 2);
        assert_state(b, RESIL_BREAKER_CLOSED);
        resil_breaker_free(b);
    }
}

/* ---- HALF_OPEN -> OPEN on any failure ------------------------------------------------- */

static void test_half_open_failure_reopens(void **state)
{
    (void)state;
    /* a failure after k trial successes (success_threshold 3) reopens */
    for (int k = 0; k < 3; k++) {
        resil_fake_clock fc;
        resil_fake_clock_init(&fc, 1000 * S, 0);
        resil_breaker_opts o = base_opts(&fc);
        o.success_threshold = 3;
        resil_breaker *b = mk("ho-fail", &o);
        struct trec r = {0};
        assert_int_equal(resil_breaker_add_listener(b, rec_listener, &r), 0);
        trip_by_failures(b);
        adv(&fc, 10);
        CALLS(b, RESIL_BREAKER_SUCCESS, k);
        assert_state(b, RESIL_BREAKER_HALF_OPEN);
        CALL(b, RESIL_BREAKER_FAILURE);
        assert_state(b, RESIL_BREAKER_OPEN);
        REFUSED(b, 10);
        resil_breaker_snapshot s = snap(b);
        assert_int_equal(s.open_streak, 2);
        assert_int_equal(s.half_open_in_flight, 0);
        assert_int_equal(r.n, 3);
        assert_transition(&r, 2, RESIL_BREAKER_HALF_OPEN, RESIL_BREAKER_OPEN,
                          "half_open_failure");
        assert_near(r.t[2].open_for_s, 10);
        /* the successes before the failure do not carry over */
        adv(&fc, 10);
        CALLS(b, RESIL_BREAKER_SUCCESS, 2);
        assert_state(b, RESIL_BREAKER_HALF_OPEN);
        CALL(b, RESIL_BREAKER_SUCCESS);
        assert_state(b, RESIL_BREAKER_CLOSED);
        resil_breaker_free(b);
    }
}

/* ---- FORCED_OPEN ------------------------------------------------------------------------ */

static void test_forced_open(void **state)
{
    (void)state;
    /* from CLOSED, OPEN and HALF_OPEN */
    for (int from = 0; from < 3; from++) {
        resil_fake_clock fc;
        resil_fake_clock_init(&fc, 1000 * S, 0);
        resil_breaker_opts o = base_opts(&fc);
        resil_breaker *b = mk("forced", &o);
        struct trec r = {0};
        resil_breaker_permit held; /* CLOSED: a normal permit; HALF_OPEN: a trial */
        if (from == 0)
            ACQ(b, &held);
        if (from >= 1)
            trip_by_failures(b);
        if (from == 2) {
            adv(&fc, 10);
            ACQ(b, &held);
            assert_state(b, RESIL_BREAKER_HALF_OPEN);
        }
        assert_int_equal(resil_breaker_add_listener(b, rec_listener, &r), 0);
        resil_breaker_state before = resil_breaker_get_state(b);
        uint64_t e0 = snap(b).epoch;
        assert_int_equal(resil_breaker_trip(b), 0);
        assert_state(b, RESIL_BREAKER_FORCED_OPEN);
        assert_int_equal(snap(b).epoch, e0 + 1);
        assert_int_equal(r.n, 1);
        assert_transition(&r, 0, before, RESIL_BREAKER_FORCED_OPEN, "trip");

        int64_t np = snap(b).not_permitted;
        REFUSED(b, -1);
        assert_near(resil_breaker_time_until_half_open(b), -1);
        /* never goes half-open, however long */
        adv(&fc, 10);
        REFUSED(b, -1);
        adv(&fc, 86400 * 3);
        assert_state(b, RESIL_BREAKER_FORCED_OPEN);
        assert_int_equal(snap(b).state, RESIL_BREAKER_FORCED_OPEN);
        REFUSED(b, -1);
        assert_int_equal(snap(b).not_permitted, np + 3);
        /* a permit from before the trip changes nothing */
        if (from != 1) {
            assert_int_equal(resil_breaker_record(b, &held, RESIL_BREAKER_SUCCESS, 0), 0);
            assert_state(b, RESIL_BREAKER_FORCED_OPEN);
        }
        assert_int_equal(r.n, 1);
        assert_int_equal(resil_breaker_reset(b), 0);
        assert_state(b, RESIL_BREAKER_CLOSED);
        CALL(b, RESIL_BREAKER_SUCCESS);
        resil_breaker_free(b);
    }
}

/* ---- DISABLED ----------------------------------------------------------------------------- */

static void test_disabled(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    o.window_size = 10;
    o.window_min_calls = 10;
    resil_breaker *b = mk("disabled", &o);
    struct trec r = {0};
    assert_int_equal(resil_breaker_add_listener(b, rec_listener, &r), 0);
    resil_breaker_snapshot s0 = snap(b);
    assert_int_equal(resil_breaker_disable(b), 0);
    assert_state(b, RESIL_BREAKER_DISABLED);
    assert_int_equal(r.n, 1);
    assert_transition(&r, 0, RESIL_BREAKER_CLOSED, RESIL_BREAKER_DISABLED, "disable");
    assert_int_equal(snap(b).epoch, s0.epoch + 1);

    CALLS(b, RESIL_BREAKER_FAILURE, 100);
    CALLS(b, RESIL_BREAKER_SUCCESS, 7);
    CALLS(b, RESIL_BREAKER_IGNORE, 3);
    adv(&fc, 1000);
    CALLS(b, RESIL_BREAKER_FAILURE, 20);
    assert_state(b, RESIL_BREAKER_DISABLED);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_DISABLED);
    assert_int_equal(s.failed, 120);
    assert_int_equal(s.successful, 7);
    assert_int_equal(s.ignored, 3);
    assert_int_equal(s.not_permitted, 0);
    assert_int_equal(r.n, 1); /* never tripped */

    /* disabled from OPEN allows at once */
    assert_int_equal(resil_breaker_reset(b), 0);
    trip_by_failures(b);
    assert_int_equal(resil_breaker_disable(b), 0);
    CALL(b, RESIL_BREAKER_SUCCESS);
    assert_state(b, RESIL_BREAKER_DISABLED);
    resil_breaker_free(b);
}

/* ---- reset from every state --------------------------------------------------------------- */

static void test_reset_from_every_state(void **state)
{
    (void)state;
    const resil_breaker_state states[] = {RESIL_BREAKER_CLOSED, RESIL_BREAKER_OPEN,
                                          RESIL_BREAKER_HALF_OPEN, RESIL_BREAKER_FORCED_OPEN,
                                          RESIL_BREAKER_DISABLED};
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
        resil_fake_clock fc;
        resil_fake_clock_init(&fc, 1000 * S, 0);
        resil_breaker_opts o = base_opts(&fc);
        o.window_size = 8;
        o.window_min_calls = 8;
        o.failure_rate_threshold = 1.0;
        o.open_multiplier = 2;
        resil_breaker *b = mk("reset", &o);
        CALLS(b, RESIL_BREAKER_SUCCESS, 2);
        CALLS(b, RESIL_BREAKER_IGNORE, 1);
        resil_breaker_permit trial;
        bool have_trial = false;
        switch (states[i]) {
        case RESIL_BREAKER_CLOSED:
            CALLS(b, RESIL_BREAKER_FAILURE, 2);
            break;
        case RESIL_BREAKER_OPEN:
            trip_by_failures(b);
            adv(&fc, 10);
            CALL(b, RESIL_BREAKER_FAILURE); /* half-open failure: streak 2 */
            assert_state(b, RESIL_BREAKER_OPEN);
            assert_int_equal(snap(b).open_streak, 2);
            break;
        case RESIL_BREAKER_HALF_OPEN:
            trip_by_failures(b);
            adv(&fc, 10);
            ACQ(b, &trial);
            have_trial = true;
            assert_int_equal(snap(b).half_open_in_flight, 1);
            break;
        case RESIL_BREAKER_FORCED_OPEN:
            CALLS(b, RESIL_BREAKER_FAILURE, 2);
            assert_int_equal(resil_breaker_trip(b), 0);
            break;
        case RESIL_BREAKER_DISABLED:
            CALLS(b, RESIL_BREAKER_FAILURE, 2);
            assert_int_equal(resil_breaker_disable(b), 0);
            CALLS(b, RESIL_BREAKER_FAILURE, 2);
            break;
        }
        assert_state(b, states[i]);
        resil_breaker_snapshot before = snap(b);
        if (states[i] == RESIL_BREAKER_CLOSED)
            assert_int_equal(before.window_calls, 4); /* S S F F: the ignore is not in it */

        struct trec r = {0};
        assert_int_equal(resil_breaker_add_listener(b, rec_listener, &r), 0);
        assert_int_equal(resil_breaker_reset(b), 0);
        assert_state(b, RESIL_BREAKER_CLOSED);
        resil_breaker_snapshot s = snap(b);
        assert_int_equal(s.state, RESIL_BREAKER_CLOSED);
        assert_int_equal(s.consecutive_failures, 0);
        assert_int_equal(s.window_calls, 0);
        assert_int_equal(s.open_streak, 0);
        assert_int_equal(s.half_open_in_flight, 0);
        assert_near(s.time_until_half_open_s, 0);
        /* totals kept */
        assert_int_equal(s.successful, before.successful);
        assert_int_equal(s.failed, before.failed);
        assert_int_equal(s.ignored, before.ignored);
        assert_int_equal(s.not_permitted, before.not_permitted);
        if (states[i] != RESIL_BREAKER_CLOSED) {
            assert_int_equal(r.n, 1);
            assert_transition(&r, 0, states[i], RESIL_BREAKER_CLOSED, "reset");
            assert_int_equal(s.epoch, before.epoch + 1);
        }
        /* a trial permit from before the reset counts for nothing now */
        if (have_trial) {
            assert_int_equal(resil_breaker_record(b, &trial, RESIL_BREAKER_FAILURE, 0), 0);
            assert_state(b, RESIL_BREAKER_CLOSED);
            assert_int_equal(snap(b).consecutive_failures, 0);
        }
        /* the count starts over: 2 failures do not trip, the 3rd does, and the
         * open duration is back to 1x (streak cleared) */
        CALLS(b, RESIL_BREAKER_FAILURE, 2);
        assert_state(b, RESIL_BREAKER_CLOSED);
        CALL(b, RESIL_BREAKER_FAILURE);
        assert_state(b, RESIL_BREAKER_OPEN);
        assert_near(snap(b).open_duration_s, 10);
        assert_int_equal(snap(b).open_streak, 1);
        resil_breaker_free(b);
    }
}

/* ---- sliding window: failure rate ----------------------------------------------------------- */

static void test_window_failure_rate(void **state)
{
    (void)state;
    /* failure_threshold -1: only the window's rule.  window 10, min 4, rate 0.5. */
    static const struct {
        const char *seq;  /* S, F, I */
        int trips_at;     /* 1-based index of the call that trips, 0: none */
    } cases[] = {
        {"FFF", 0},             /* 3 calls < min 4: no judgement */
        {"FFFF", 4},            /* 4/4 */
        {"SFSF", 4},            /* 2/4 == 0.5 trips (>=) */
        {"SSSFFF", 6},          /* 1/4, 2/5, 3/6 */
        {"SSSFSF", 0},          /* 1/4, 2/6 */
        {"SSSSSSFFFF", 0},      /* 4/10 */
        {"SSSSSSFFFFF", 11},    /* window [SSSSSFFFFF] 5/10 */
        {"FIIIIIIIIISSF", 13},  /* ignores do not count: 2/4 at the last */
        {"FIIIIIIIIISS", 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        resil_fake_clock fc;
        resil_fake_clock_init(&fc, 1000 * S, 0);
        resil_breaker_opts o = base_opts(&fc);
        o.failure_threshold = -1;
        o.window_size = 10;
        o.window_min_calls = 4;
        o.failure_rate_threshold = 0.5;
        resil_breaker *b = mk("window", &o);
        struct trec r = {0};
        assert_int_equal(resil_breaker_add_listener(b, rec_listener, &r), 0);
        const char *q = cases[c].seq;
        int n = (int)strlen(q);
        for (int k = 0; k < n; k++) {
            resil_breaker_verdict v = q[k] == 'S'   ? RESIL_BREAKER_SUCCESS
                                      : q[k] == 'F' ? RESIL_BREAKER_FAILURE
                                                    : RESIL_BREAKER_IGNORE;
            CALL(b, v);
            resil_breaker_state want =
                cases[c].trips_at && k + 1 >= cases[c].trips_at ? RESIL_BREAKER_OPEN
                                                                : RESIL_BREAKER_CLOSED;
            if (resil_breaker_get_state(b) != want)
                fail_msg("case %zu '%s' after call %d: %s, expected %s", c, q, k + 1,
                         resil_breaker_state_name(resil_breaker_get_state(b)),
                         resil_breaker_state_name(want));
        }
        if (cases[c].trips_at) {
            assert_int_equal(r.n, 1);
            assert_transition(&r, 0, RESIL_BREAKER_CLOSED, RESIL_BREAKER_OPEN, "failure_rate");
            assert_near(r.t[0].open_for_s, 10);
        } else {
            assert_int_equal(r.n, 0);
        }
        resil_breaker_free(b);
    }
}

static void test_window_slides(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    o.failure_threshold = -1;
    o.window_size = 4;
    o.window_min_calls = 4;
    o.failure_rate_threshold = 0.75;
    resil_breaker *b = mk("slide", &o);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.window_calls, 0);
    assert_near(s.failure_rate, -1);

    CALLS(b, RESIL_BREAKER_FAILURE, 2);
    s = snap(b);
    assert_int_equal(s.window_calls, 2);
    assert_near(s.failure_rate, 1.0);
    CALLS(b, RESIL_BREAKER_SUCCESS, 2);
    s = snap(b);
    assert_int_equal(s.window_calls, 4);
    assert_near(s.failure_rate, 0.5);
    CALL(b, RESIL_BREAKER_SUCCESS); /* first F falls out */
    s = snap(b);
    assert_int_equal(s.window_calls, 4);
    assert_near(s.failure_rate, 0.25);
    CALL(b, RESIL_BREAKER_SUCCESS); /* second F falls out */
    s = snap(b);
    assert_int_equal(s.window_calls, 4);
    assert_near(s.failure_rate, 0.0);
    /* totals still know all of them */
    assert_int_equal(s.failed, 2);
    assert_int_equal(s.successful, 4);
    CALLS(b, RESIL_BREAKER_FAILURE, 2); /* [S S F F] 0.5 */
    assert_state(b, RESIL_BREAKER_CLOSED);
    assert_near(snap(b).failure_rate, 0.5);
    /* over all 9 calls it would be 5/9 < 0.75: only a sliding window trips */
    CALL(b, RESIL_BREAKER_FAILURE); /* [S F F F] 0.75 */
    assert_state(b, RESIL_BREAKER_OPEN);
    resil_breaker_free(b);
}

static void test_ignore_counts_for_neither_side(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    o.failure_threshold = 3;
    resil_breaker *b = mk("ignore", &o);
    CALLS(b, RESIL_BREAKER_FAILURE, 2);
    CALLS(b, RESIL_BREAKER_IGNORE, 5);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.consecutive_failures, 2); /* not reset, not increased */
    assert_int_equal(s.ignored, 5);
    assert_int_equal(s.failed, 2);
    assert_int_equal(s.successful, 0);
    assert_near(s.failure_rate, 1.0); /* over totals: ignores are not calls */
    CALL(b, RESIL_BREAKER_FAILURE);
    assert_state(b, RESIL_BREAKER_OPEN);

    /* in HALF_OPEN an ignore neither closes nor reopens */
    adv(&fc, 10);
    CALL(b, RESIL_BREAKER_IGNORE);
    assert_state(b, RESIL_BREAKER_HALF_OPEN);
    assert_int_equal(snap(b).half_open_in_flight, 0);
    CALL(b, RESIL_BREAKER_IGNORE);
    assert_state(b, RESIL_BREAKER_HALF_OPEN);
    CALL(b, RESIL_BREAKER_SUCCESS);
    assert_state(b, RESIL_BREAKER_CLOSED);
    assert_int_equal(snap(b).ignored, 7);
    resil_breaker_free(b);
}

static void test_consecutive_rule_disabled(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    o.failure_threshold = -1;
    o.window_size = 20;
    o.window_min_calls = 20;
    o.failure_rate_threshold = 1.0;
    resil_breaker *b = mk("no-consecutive", &o);
    struct trec r = {0};
    assert_int_equal(resil_breaker_add_listener(b, rec_listener, &r), 0);
    CALLS(b, RESIL_BREAKER_FAILURE, 19);
    assert_state(b, RESIL_BREAKER_CLOSED);
    assert_int_equal(snap(b).failure_threshold, -1);
    CALL(b, RESIL_BREAKER_FAILURE);
    assert_state(b, RESIL_BREAKER_OPEN);
    assert_int_equal(r.n, 1);
    assert_transition(&r, 0, RESIL_BREAKER_CLOSED, RESIL_BREAKER_OPEN, "failure_rate");
    resil_breaker_free(b);
}

/* ---- slow calls --------------------------------------------------------------------------------- */

static void test_slow_calls_explicit_duration(void **state)
{
    (void)state;
    /* window 10, min 1 so the rate is readable after each call; slow limit
     * 1 s, slow rate 1.0 (a single fast call keeps it below) */
    static const struct {
        double dur;
        bool slow;
    } d[] = {{0.0, false}, {0.5, false}, {0.999, false}, {1.0, false},
             {1.001, true}, {2.0, true},  {3600, true}};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        resil_fake_clock fc;
        resil_fake_clock_init(&fc, 1000 * S, 0);
        resil_breaker_opts o = base_opts(&fc);
        o.failure_threshold = -1;
        o.window_size = 10;
        o.window_min_calls = 2;
        o.failure_rate_threshold = 1.0;
        o.slow_call_duration_s = 1.0;
        o.slow_call_rate_threshold = 1.0;
        resil_breaker *b = mk("slow-explicit", &o);
        TIMED(b, RESIL_BREAKER_SUCCESS, 0.1);
        TIMED(b, RESIL_BREAKER_SUCCESS, d[i].dur);
        resil_breaker_snapshot s = snap(b);
        if (fabs(s.slow_call_rate - (d[i].slow ? 0.5 : 0.0)) > EPS)
            fail_msg("duration %.3f: slow_call_rate %.3f, expected %s", d[i].dur,
                     s.slow_call_rate, d[i].slow ? "0.5" : "0");
        assert_int_equal(s.successful, 2); /* slow successes are successes */
        assert_state(b, RESIL_BREAKER_CLOSED);
        resil_breaker_free(b);
    }
}

static void test_slow_call_rate_trips(void **state)
{
    (void)state;
    static const struct {
        const char *seq; /* s: slow success, f: fast success, F: fast failure */
        int trips_at;
    } cases[] = {
        {"sss", 0},      /* under min 4 */
        {"ssss", 4},     /* 4/4 */
        {"sffs", 4},     /* 2/4 == 0.5 */
        {"sfff", 0},     /* 1/4 */
        {"sfffsfs", 0},  /* 1/4, 2/5, 2/6, 3/7 */
        {"sfffss", 6},   /* 1/4, 2/5, 3/6 */
        {"sFfFss", 6},   /* fast failures are not slow: 1/4, 2/5, 3/6 */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int trips_at = cases[c].trips_at;
        resil_fake_clock fc;
        resil_fake_clock_init(&fc, 1000 * S, 0);
        resil_breaker_opts o = base_opts(&fc);
        o.failure_threshold = 3;
        o.window_size = 10;
        o.window_min_calls = 4;
        o.failure_rate_threshold = 1.0;
        o.slow_call_duration_s = 1.0;
        o.slow_call_rate_threshold = 0.5;
        resil_breaker *b = mk("slow-rate", &o);
        struct trec r = {0};
        assert_int_equal(resil_breaker_add_listener(b, rec_listener, &r), 0);
        const char *q = cases[c].seq;
        for (int k = 0; q[k]; k++) {
            if (q[k] == 's')
                TIMED(b, RESIL_BREAKER_SUCCESS, 5.0);
            else if (q[k] == 'f')
                TIMED(b, RESIL_BREAKER_SUCCESS, 0.2);
            else
                TIMED(b, RESIL_BREAKER_FAILURE, 0.2);
            resil_breaker_state want = trips_at && k + 1 >= trips_at ? RESIL_BREAKER_OPEN
                                                                     : RESIL_BREAKER_CLOSED;
            if (resil_breaker_get_state(b) != want)
                fail_msg("case '%s' after call %d: %s, expected %s", q, k + 1,
                         resil_breaker_state_name(resil_breaker_get_state(b)),
                         resil_breaker_state_name(want));
        }
        if (trips_at) {
            assert_int_equal(r.n, 1);
            assert_transition(&r, 0, RESIL_BREAKER_CLOSED, RESIL_BREAKER_OPEN,
                              "slow_call_rate");
        } else {
            assert_int_equal(r.n, 0);
        }
        resil_breaker_free(b);
    }

    /* a slow success still resets the consecutive failures */
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    o.failure_threshold = 3;
    o.window_size = 100;
    o.slow_call_duration_s = 1.0;
    resil_breaker *b = mk("slow-consecutive", &o);
    TIMED(b, RESIL_BREAKER_FAILURE, 0.1);
    TIMED(b, RESIL_BREAKER_FAILURE, 0.1);
    TIMED(b, RESIL_BREAKER_SUCCESS, 9.0);
    assert_int_equal(snap(b).consecutive_failures, 0);
    TIMED(b, RESIL_BREAKER_FAILURE, 0.1);
    TIMED(b, RESIL_BREAKER_FAILURE, 0.1);
    assert_state(b, RESIL_BREAKER_CLOSED);
    resil_breaker_free(b);
}

struct advancing_op {
    resil_fake_clock *fc;
    double advance_s;
    int calls;
};

static int advancing_fn(void *arg)
{
    struct advancing_op *a = arg;
    a->calls++;
    adv(a->fc, a->advance_s);
    return 0;
}

static void test_slow_measured_from_acquire(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    o.failure_threshold = -1;
    o.window_size = 10;
    o.window_min_calls = 1;
    o.failure_rate_threshold = 1.0;
    o.slow_call_duration_s = 1.0;
    o.slow_call_rate_threshold = 1.0;
    resil_breaker *b = mk("slow-measured", &o);

    resil_breaker_permit p;
    ACQ(b, &p);
    adv(&fc, 0.5);
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_SUCCESS, -1), 0);
    assert_near(snap(b).slow_call_rate, 0.0);

    ACQ(b, &p);
    adv(&fc, 2.0);
    assert_int_equal(resil_breaker_report(b, &p, 0, -1), 0);
    assert_near(snap(b).slow_call_rate, 0.5);

    /* two permits in flight, measured independently */
    resil_breaker_permit a, c;
    ACQ(b, &a);
    adv(&fc, 0.7);
    ACQ(b, &c);
    adv(&fc, 0.7); /* a: 1.4 s (slow), c: 0.7 s (fast) */
    assert_int_equal(resil_breaker_record(b, &c, RESIL_BREAKER_SUCCESS, -1), 0);
    assert_near(snap(b).slow_call_rate, 1.0 / 3.0);
    assert_int_equal(resil_breaker_record(b, &a, RESIL_BREAKER_SUCCESS, -1), 0);
    assert_near(snap(b).slow_call_rate, 0.5);
    assert_int_equal(snap(b).window_calls, 4);
    /* an explicit duration wins over the measured one */
    ACQ(b, &p);
    adv(&fc, 5);
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_SUCCESS, 0.1), 0);
    assert_near(snap(b).slow_call_rate, 0.4);

    /* resil_breaker_call measures the op's duration */
    struct advancing_op ao = {&fc, 3.0, 0};
    assert_int_equal(resil_breaker_call(b, advancing_fn, &ao), 0);
    assert_int_equal(ao.calls, 1);
    assert_near(snap(b).slow_call_rate, 0.5); /* 3 slow of 6 */
    ao.advance_s = 0.25;
    assert_int_equal(resil_breaker_call(b, advancing_fn, &ao), 0);
    assert_near(snap(b).slow_call_rate, 3.0 / 7.0);
    resil_breaker_free(b);
}

/* "duration_s < 0: the time since acquire" holds whatever the clock reads at
 * acquire, also 0 (a fake clock started at 0, as in test_retry.c, or any
 * injected clock with its own epoch). */
static void test_slow_measured_clock_at_zero(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 0, 0);
    resil_breaker_opts o = base_opts(&fc);
    o.failure_threshold = -1;
    o.window_size = 10;
    o.window_min_calls = 2;
    o.failure_rate_threshold = 1.0;
    o.slow_call_duration_s = 1.0;
    o.slow_call_rate_threshold = 1.0;
    resil_breaker *b = mk("slow-at-zero", &o);
    resil_breaker_permit p;
    ACQ(b, &p); /* at monotonic time 0 */
    adv(&fc, 5.0);
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_SUCCESS, -1), 0);
    resil_breaker_snapshot s = snap(b);
    resil_breaker_free(b);
    if (fabs(s.slow_call_rate - 1.0) > EPS)
        fail_msg("a 5 s call acquired at clock time 0 was judged fast (slow_call_rate %.3f)",
                 s.slow_call_rate);
}

/* ---- growing open duration ------------------------------------------------------------------- */

static void test_open_duration_grows_and_caps(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    o.recovery_timeout_s = 10;
    o.open_multiplier = 2;
    o.max_open_s = 75;
    resil_breaker *b = mk("grow", &o);
    struct trec r = {0};
    assert_int_equal(resil_breaker_add_listener(b, rec_listener, &r), 0);
    trip_by_failures(b);
    const double want[] = {10, 20, 40, 75, 75, 75};
    for (int k = 0; k < 6; k++) {
        resil_breaker_snapshot s = snap(b);
        assert_int_equal(s.state, RESIL_BREAKER_OPEN);
        assert_int_equal(s.open_streak, k + 1);
        if (fabs(s.open_duration_s - want[k]) > EPS)
            fail_msg("trip %d: open_duration_s %.6f, expected %.6f", k + 1, s.open_duration_s,
                     want[k]);
        assert_near(s.time_until_half_open_s, want[k]);
        REFUSED(b, want[k]);
        /* the last listener call is the transition to OPEN */
        assert_int_equal(r.t[r.n - 1].to, RESIL_BREAKER_OPEN);
        assert_near(r.t[r.n - 1].open_for_s, want[k]);
        adv(&fc, want[k] - 0.5);
        REFUSED(b, 0.5);
        adv(&fc, 0.5);
        CALL(b, RESIL_BREAKER_FAILURE); /* trial fails */
    }
    /* closing ends the streak: the next trip is 1x again */
    adv(&fc, 75);
    CALL(b, RESIL_BREAKER_SUCCESS);
    assert_state(b, RESIL_BREAKER_CLOSED);
    assert_int_equal(snap(b).open_streak, 0);
    trip_by_failures(b);
    assert_near(snap(b).open_duration_s, 10);
    assert_int_equal(snap(b).open_streak, 1);
    REFUSED(b, 10);
    resil_breaker_free(b);
}

static void test_open_jitter(void **state)
{
    (void)state;
    const double d = 100, j = 0.2, cap = 110;
    double first[16];
    int distinct = 0;
    for (int seed = 1; seed <= 16; seed++) {
        resil_fake_clock fc;
        resil_fake_clock_init(&fc, 1000 * S, 0);
        resil_breaker_opts o = base_opts(&fc);
        o.recovery_timeout_s = d;
        o.open_jitter = j;
        o.seed = (uint64_t)seed * 7919;
        resil_breaker *b = mk("jitter", &o);
        trip_by_failures(b);
        resil_breaker_snapshot s = snap(b);
        if (!(s.open_duration_s >= d * (1 - j) - EPS && s.open_duration_s <= d * (1 + j) + EPS))
            fail_msg("seed %d: open duration %.6f outside [%.1f, %.1f]", seed, s.open_duration_s,
                     d * (1 - j), d * (1 + j));
        assert_near(s.time_until_half_open_s, s.open_duration_s);
        REFUSED(b, s.open_duration_s);
        first[seed - 1] = s.open_duration_s;
        bool seen = false;
        for (int k = 0; k < seed - 1; k++)
            if (fabs(first[k] - s.open_duration_s) < 1e-9)
                seen = true;
        distinct += !seen;
        /* the same duration brings it half-open */
        adv(&fc, s.open_duration_s + 1e-6);
        assert_state(b, RESIL_BREAKER_HALF_OPEN);
        resil_breaker_free(b);

        /* the same seed gives the same duration */
        resil_fake_clock_init(&fc, 1000 * S, 0);
        b = mk("jitter", &o);
        trip_by_failures(b);
        assert_near(snap(b).open_duration_s, first[seed - 1]);
        resil_breaker_free(b);

        /* with a cap: within [d(1-j), cap], and growth x2 is capped too */
        resil_fake_clock_init(&fc, 1000 * S, 0);
        o.max_open_s = cap;
        o.open_multiplier = 2;
        b = mk("jitter-cap", &o);
        trip_by_failures(b);
        for (int k = 0; k < 3; k++) {
            s = snap(b);
            double lo = fmin(d * pow(2, k), cap) * (1 - j);
            if (!(s.open_duration_s >= lo - EPS && s.open_duration_s <= cap + EPS))
                fail_msg("seed %d trip %d: open duration %.6f outside [%.1f, %.1f]", seed, k + 1,
                         s.open_duration_s, lo, cap);
            REFUSED(b, s.open_duration_s);
            adv(&fc, s.open_duration_s + 1e-6);
            CALL(b, RESIL_BREAKER_FAILURE);
        }
        resil_breaker_free(b);
    }
    if (distinct < 8)
        fail_msg("only %d distinct open durations over 16 seeds", distinct);
}

/* ---- half-open permits, leases, stale epochs ----------------------------------------------------- */

static void test_half_open_max_calls(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    o.half_open_max_calls = 3;
    o.success_threshold = 4;
    resil_breaker *b = mk("ho-max", &o);
    trip_by_failures(b);
    adv(&fc, 10);
    resil_breaker_permit p[4];
    for (int k = 0; k < 3; k++) {
        ACQ(b, &p[k]);
        assert_int_equal(snap(b).half_open_in_flight, k + 1);
    }
    int64_t np = snap(b).not_permitted;
    REFUSED(b, 0);
    REFUSED(b, 0);
    assert_int_equal(snap(b).not_permitted, np + 2);
    assert_state(b, RESIL_BREAKER_HALF_OPEN);
    /* one reported: one slot free again */
    assert_int_equal(resil_breaker_record(b, &p[0], RESIL_BREAKER_SUCCESS, 0), 0);
    assert_int_equal(snap(b).half_open_in_flight, 2);
    ACQ(b, &p[3]);
    REFUSED(b, 0);
    for (int k = 1; k < 3; k++)
        assert_int_equal(resil_breaker_record(b, &p[k], RESIL_BREAKER_SUCCESS, 0), 0);
    assert_state(b, RESIL_BREAKER_HALF_OPEN); /* 3 of 4 */
    assert_int_equal(resil_breaker_record(b, &p[3], RESIL_BREAKER_SUCCESS, 0), 0);
    assert_state(b, RESIL_BREAKER_CLOSED);
    assert_int_equal(snap(b).half_open_in_flight, 0);
    /* closed: no limit */
    resil_breaker_permit many[10];
    for (int k = 0; k < 10; k++)
        ACQ(b, &many[k]);
    for (int k = 0; k < 10; k++)
        assert_int_equal(resil_breaker_record(b, &many[k], RESIL_BREAKER_SUCCESS, 0), 0);
    resil_breaker_free(b);
}

static void test_half_open_lease_expiry(void **state)
{
    (void)state;
    for (int verdict = 0; verdict < 2; verdict++) {
        resil_fake_clock fc;
        resil_fake_clock_init(&fc, 1000 * S, 0);
        resil_breaker_opts o = base_opts(&fc);
        o.half_open_max_calls = 1;
        o.half_open_lease_s = 5;
        resil_breaker *b = mk("lease", &o);
        struct trec r = {0};
        trip_by_failures(b);
        adv(&fc, 10);
        resil_breaker_permit hung, next;
        ACQ(b, &hung);
        REFUSED(b, 0);
        adv(&fc, 4.9);
        REFUSED(b, 0); /* still leased */
        adv(&fc, 0.2); /* lease over */
        assert_int_equal(snap(b).half_open_in_flight, 0);
        assert_int_equal(resil_breaker_add_listener(b, rec_listener, &r), 0);
        ACQ(b, &next);
        assert_int_equal(snap(b).half_open_in_flight, 1);
        /* the hung call reports late: ignored, whatever it says */
        assert_int_equal(resil_breaker_record(b, &hung,
                                              verdict ? RESIL_BREAKER_FAILURE
                                                      : RESIL_BREAKER_SUCCESS,
                                              0),
                         0);
        assert_state(b, RESIL_BREAKER_HALF_OPEN);
        assert_int_equal(snap(b).half_open_in_flight, 1); /* next's lease intact */
        assert_int_equal(r.n, 0);
        REFUSED(b, 0);
        /* the live permit decides */
        assert_int_equal(resil_breaker_record(b, &next,
                                              verdict ? RESIL_BREAKER_SUCCESS
                                                      : RESIL_BREAKER_FAILURE,
                                              0),
                         0);
        assert_state(b, verdict ? RESIL_BREAKER_CLOSED : RESIL_BREAKER_OPEN);
        assert_int_equal(r.n, 1);
        resil_breaker_free(b);
    }

    /* expired and not taken again: the late report is still ignored */
    for (int verdict = 0; verdict < 2; verdict++) {
        resil_fake_clock fc;
        resil_fake_clock_init(&fc, 1000 * S, 0);
        resil_breaker_opts o = base_opts(&fc);
        o.half_open_max_calls = 2;
        o.half_open_lease_s = 5;
        resil_breaker *b = mk("lease-late", &o);
        trip_by_failures(b);
        adv(&fc, 10);
        resil_breaker_permit hung;
        ACQ(b, &hung);
        adv(&fc, 6);
        assert_int_equal(snap(b).half_open_in_flight, 0);
        assert_int_equal(resil_breaker_record(b, &hung,
                                              verdict ? RESIL_BREAKER_FAILURE
                                                      : RESIL_BREAKER_SUCCESS,
                                              -1),
                         0);
        assert_state(b, RESIL_BREAKER_HALF_OPEN);
        CALL(b, RESIL_BREAKER_SUCCESS);
        assert_state(b, RESIL_BREAKER_CLOSED);
        resil_breaker_free(b);
    }

    /* default lease = recovery_timeout_s (10 s) */
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    resil_breaker *b = mk("lease-default", &o);
    trip_by_failures(b);
    adv(&fc, 10);
    resil_breaker_permit hung, next;
    ACQ(b, &hung);
    adv(&fc, 9.9);
    REFUSED(b, 0);
    adv(&fc, 0.2);
    ACQ(b, &next);
    assert_int_equal(resil_breaker_record(b, &next, RESIL_BREAKER_SUCCESS, 0), 0);
    assert_state(b, RESIL_BREAKER_CLOSED);
    assert_int_equal(resil_breaker_record(b, &hung, RESIL_BREAKER_FAILURE, 0), 0);
    assert_state(b, RESIL_BREAKER_CLOSED);
    assert_int_equal(snap(b).consecutive_failures, 0);
    resil_breaker_free(b);
}

static void test_stale_epoch(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    o.failure_threshold = 2;
    o.half_open_max_calls = 2;
    resil_breaker *b = mk("stale", &o);
    resil_breaker_permit old_ok, old_bad, old_late, trial;
    ACQ(b, &old_ok);
    ACQ(b, &old_bad);
    ACQ(b, &old_late);
    CALLS(b, RESIL_BREAKER_FAILURE, 2);
    assert_state(b, RESIL_BREAKER_OPEN);
    adv(&fc, 10);
    ACQ(b, &trial);
    assert_state(b, RESIL_BREAKER_HALF_OPEN);
    resil_breaker_snapshot s0 = snap(b);

    /* a CLOSED-epoch success is not a trial success */
    assert_int_equal(resil_breaker_record(b, &old_ok, RESIL_BREAKER_SUCCESS, 0), 0);
    assert_state(b, RESIL_BREAKER_HALF_OPEN);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.successful, s0.successful + 1); /* but it is counted */
    assert_int_equal(s.epoch, s0.epoch);
    assert_int_equal(s.half_open_in_flight, 1);
    /* nor does a CLOSED-epoch failure reopen it */
    assert_int_equal(resil_breaker_record(b, &old_bad, RESIL_BREAKER_FAILURE, 0), 0);
    assert_state(b, RESIL_BREAKER_HALF_OPEN);
    assert_int_equal(snap(b).failed, s0.failed + 1);
    assert_int_equal(snap(b).epoch, s0.epoch);

    /* the real trial closes it */
    assert_int_equal(resil_breaker_record(b, &trial, RESIL_BREAKER_SUCCESS, 0), 0);
    assert_state(b, RESIL_BREAKER_CLOSED);
    /* a permit from the first CLOSED epoch, reported in a later CLOSED epoch,
     * does not count toward the consecutive failures */
    CALL(b, RESIL_BREAKER_FAILURE);
    assert_int_equal(snap(b).consecutive_failures, 1);
    assert_int_equal(resil_breaker_record(b, &old_late, RESIL_BREAKER_FAILURE, 0), 0);
    assert_int_equal(snap(b).consecutive_failures, 1);
    assert_state(b, RESIL_BREAKER_CLOSED);
    resil_breaker_free(b);
}

/* "The permit is spent afterwards": reporting it again changes nothing. */
static void test_permit_spent(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    resil_breaker *b = mk("spent", &o);
    resil_breaker_permit p;
    ACQ(b, &p);
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, 0), 0);
    resil_breaker_snapshot s = snap(b);
    (void)resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, 0);
    (void)resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, 0);
    resil_breaker_snapshot t = snap(b);
    assert_int_equal(t.failed, s.failed);
    assert_int_equal(t.consecutive_failures, s.consecutive_failures);
    assert_state(b, RESIL_BREAKER_CLOSED);
    resil_breaker_free(b);
}

/* ---- classifier and resil_breaker_call ---------------------------------------------------------- */

static resil_breaker_verdict classify(int result, void *arg)
{
    atomic_int *calls = arg;
    atomic_fetch_add(calls, 1);
    if (result == 0 || result == 200)
        return RESIL_BREAKER_SUCCESS;
    if (result == 404 || result == RESIL_EINVAL)
        return RESIL_BREAKER_IGNORE;
    return RESIL_BREAKER_FAILURE;
}

struct op_ctx {
    int ret;
    int calls;
};

static int op_fn(void *arg)
{
    struct op_ctx *c = arg;
    c->calls++;
    return c->ret;
}

static void test_classifier_and_call(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    atomic_int ncls = 0;
    resil_breaker_opts o = base_opts(&fc);
    o.classify = classify;
    o.classify_arg = &ncls;
    resil_breaker *b = mk("classify", &o);

    static const struct {
        int result;
        int d_ok, d_fail, d_ign;
    } t[] = {
        {0, 1, 0, 0},   {200, 1, 0, 0},  {404, 0, 0, 1}, {RESIL_EINVAL, 0, 0, 1},
        {500, 0, 1, 0}, {-5, 0, 1, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        resil_breaker_snapshot a = snap(b);
        resil_breaker_permit p;
        ACQ(b, &p);
        assert_int_equal(resil_breaker_report(b, &p, t[i].result, 0), 0);
        resil_breaker_snapshot z = snap(b);
        if (z.successful - a.successful != t[i].d_ok || z.failed - a.failed != t[i].d_fail ||
            z.ignored - a.ignored != t[i].d_ign)
            fail_msg("result %d counted as +%lld ok +%lld fail +%lld ignored", t[i].result,
                     (long long)(z.successful - a.successful), (long long)(z.failed - a.failed),
                     (long long)(z.ignored - a.ignored));
        if (t[i].d_ok)
            assert_int_equal(z.consecutive_failures, 0);
    }
    assert_int_equal(atomic_load(&ncls), 6);
    assert_int_equal(snap(b).consecutive_failures, 2);

    /* resil_breaker_call returns op's result and classifies it */
    struct op_ctx c = {404, 0};
    assert_int_equal(resil_breaker_call(b, op_fn, &c), 404);
    assert_int_equal(c.calls, 1);
    assert_int_equal(snap(b).consecutive_failures, 2); /* ignored */
    c.ret = 200;
    assert_int_equal(resil_breaker_call(b, op_fn, &c), 200);
    assert_int_equal(snap(b).consecutive_failures, 0);
    c.ret = 503;
    for (int k = 0; k < 3; k++)
        assert_int_equal(resil_breaker_call(b, op_fn, &c), 503);
    assert_int_equal(c.calls, 5);
    assert_state(b, RESIL_BREAKER_OPEN);
    /* open: op not called */
    int64_t np = snap(b).not_permitted;
    assert_int_equal(resil_breaker_call(b, op_fn, &c), RESIL_ECIRCUIT_OPEN);
    assert_int_equal(c.calls, 5);
    assert_int_equal(snap(b).not_permitted, np + 1);
    assert_int_equal(resil_breaker_trip(b), 0);
    assert_int_equal(resil_breaker_call(b, op_fn, &c), RESIL_ECIRCUIT_OPEN);
    assert_int_equal(c.calls, 5);
    resil_breaker_free(b);

    /* the default classifier: 0 success, anything else failure */
    resil_fake_clock_init(&fc, 1000 * S, 0);
    o = base_opts(&fc);
    b = mk("default-classify", &o);
    const int results[] = {0, 1, -1, 404, RESIL_ECIRCUIT_OPEN};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(resil_breaker_reset(b), 0);
        resil_breaker_snapshot a = snap(b);
        c.ret = results[i];
        assert_int_equal(resil_breaker_call(b, op_fn, &c), results[i]);
        resil_breaker_snapshot z = snap(b);
        assert_int_equal(z.successful - a.successful, results[i] == 0);
        assert_int_equal(z.failed - a.failed, results[i] != 0);
    }
    resil_breaker_free(b);
}

/* ---- listeners ------------------------------------------------------------------------------------- */

static void test_listeners_full_cycle(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    o.open_multiplier = 3;
    resil_breaker *b = mk("listen", &o);
    struct trec r1 = {0}, r2 = {0};
    assert_int_equal(resil_breaker_add_listener(b, rec_listener, &r1), 0);
    assert_int_equal(resil_breaker_add_listener(b, rec_listener, &r2), 0);
    uint64_t e = snap(b).epoch;

    trip_by_failures(b);                   /* 0 CLOSED -> OPEN */
    REFUSED(b, 10);                        /* no transition */
    adv(&fc, 10);
    CALL(b, RESIL_BREAKER_FAILURE);        /* 1 OPEN -> HALF_OPEN, 2 -> OPEN 30 s */
    adv(&fc, 30);
    CALL(b, RESIL_BREAKER_SUCCESS);        /* 3 -> HALF_OPEN, 4 -> CLOSED */
    assert_int_equal(resil_breaker_trip(b), 0);    /* 5 */
    assert_int_equal(resil_breaker_reset(b), 0);   /* 6 */
    assert_int_equal(resil_breaker_disable(b), 0); /* 7 */
    assert_int_equal(resil_breaker_reset(b), 0);   /* 8 */
    assert_int_equal(snap(b).epoch, e + 9);

    static const struct {
        resil_breaker_state from, to;
        const char *reason;
        double open_for;
    } want[] = {
        {RESIL_BREAKER_CLOSED, RESIL_BREAKER_OPEN, "consecutive_failures", 10},
        {RESIL_BREAKER_OPEN, RESIL_BREAKER_HALF_OPEN, "recovery_timeout", -1},
        {RESIL_BREAKER_HALF_OPEN, RESIL_BREAKER_OPEN, "half_open_failure", 30},
        {RESIL_BREAKER_OPEN, RESIL_BREAKER_HALF_OPEN, "recovery_timeout", -1},
        {RESIL_BREAKER_HALF_OPEN, RESIL_BREAKER_CLOSED, "half_open_success", -1},
        {RESIL_BREAKER_CLOSED, RESIL_BREAKER_FORCED_OPEN, "trip", -1},
        {RESIL_BREAKER_FORCED_OPEN, RESIL_BREAKER_CLOSED, "reset", -1},
        {RESIL_BREAKER_CLOSED, RESIL_BREAKER_DISABLED, "disable", -1},
        {RESIL_BREAKER_DISABLED, RESIL_BREAKER_CLOSED, "reset", -1},
    };
    const int nw = (int)(sizeof want / sizeof want[0]);
    struct trec *rs[2] = {&r1, &r2};
    for (int k = 0; k < 2; k++) {
        if (rs[k]->n != nw)
            fail_msg("listener %d called %d times, expected %d", k, rs[k]->n, nw);
        for (int i = 0; i < nw; i++) {
            assert_transition(rs[k], i, want[i].from, want[i].to, want[i].reason);
            assert_string_equal(rs[k]->t[i].name, "listen");
            if (want[i].open_for >= 0)
                assert_near(rs[k]->t[i].open_for_s, want[i].open_for);
        }
    }

    /* removed: no longer called; removing again: -ENOENT */
    assert_int_equal(resil_breaker_remove_listener(b, rec_listener, &r1), 0);
    assert_int_equal(resil_breaker_remove_listener(b, rec_listener, &r1), -ENOENT);
    assert_int_equal(resil_breaker_remove_listener(b, rec_listener, &fc), -ENOENT);
    assert_int_equal(resil_breaker_trip(b), 0);
    assert_int_equal(r1.n, nw);
    assert_int_equal(r2.n, nw + 1);
    assert_int_equal(resil_breaker_remove_listener(b, rec_listener, &r2), 0);
    assert_int_equal(resil_breaker_reset(b), 0);
    assert_int_equal(r2.n, nw + 1);
    resil_breaker_free(b);
}

static void test_listener_limit(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    resil_breaker *b = mk("limit", &o);
    struct trec r[9];
    memset(r, 0, sizeof r);
    assert_int_equal(resil_breaker_add_listener(b, NULL, &r[0]), RESIL_EINVAL);
    for (int k = 0; k < 8; k++)
        assert_int_equal(resil_breaker_add_listener(b, rec_listener, &r[k]), 0);
    assert_int_equal(resil_breaker_add_listener(b, rec_listener, &r[8]), -ENOSPC);
    assert_int_equal(resil_breaker_trip(b), 0);
    for (int k = 0; k < 8; k++)
        assert_int_equal(r[k].n, 1);
    assert_int_equal(r[8].n, 0);
    /* a freed slot can be reused */
    assert_int_equal(resil_breaker_remove_listener(b, rec_listener, &r[3]), 0);
    assert_int_equal(resil_breaker_add_listener(b, rec_listener, &r[8]), 0);
    assert_int_equal(resil_breaker_reset(b), 0);
    assert_int_equal(r[3].n, 1);
    assert_int_equal(r[8].n, 1);
    assert_int_equal(r[0].n, 2);
    resil_breaker_free(b);
}

struct reentrant {
    resil_breaker *b;
    int calls;
    int state_mismatch;
    int acquired;
};

static void reentrant_listener(const resil_breaker_transition *t, void *arg)
{
    struct reentrant *x = arg;
    x->calls++;
    resil_breaker_snapshot s;
    assert_int_equal(resil_breaker_snapshot_get(x->b, &s), 0);
    (void)resil_breaker_get_state(x->b);
    (void)resil_breaker_time_until_half_open(x->b);
    if (s.state != t->to)
        x->state_mismatch++;
    resil_breaker_permit p;
    double w;
    if (resil_breaker_acquire(x->b, &p, &w) == 0) {
        x->acquired++;
        resil_breaker_record(x->b, &p, RESIL_BREAKER_IGNORE, 0);
    }
}

static void test_listener_reentrant(void **state)
{
    (void)state;
    alarm(20); /* a deadlock kills the test instead of hanging it */
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    o.half_open_max_calls = 2;
    resil_breaker *b = mk("reentrant", &o);
    struct reentrant x = {b, 0, 0, 0};
    assert_int_equal(resil_breaker_add_listener(b, reentrant_listener, &x), 0);
    trip_by_failures(b); /* OPEN: listener's acquire refused */
    assert_int_equal(x.calls, 1);
    assert_int_equal(x.acquired, 0);
    adv(&fc, 10);
    resil_breaker_permit p;
    ACQ(b, &p);          /* -> HALF_OPEN: a second trial slot is free */
    assert_int_equal(x.calls, 2);
    assert_int_equal(x.acquired, 1);
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_SUCCESS, 0), 0);
    assert_int_equal(x.calls, 3); /* -> CLOSED */
    assert_int_equal(x.acquired, 2);
    assert_int_equal(x.state_mismatch, 0);
    assert_int_equal(resil_breaker_trip(b), 0);
    assert_int_equal(resil_breaker_reset(b), 0);
    assert_int_equal(x.calls, 5);
    assert_int_equal(resil_breaker_remove_listener(b, reentrant_listener, &x), 0);
    assert_int_equal(resil_breaker_trip(b), 0);
    assert_int_equal(x.calls, 5);
    alarm(0);
    resil_breaker_free(b);
}

/* "After [remove_listener] returns the listener is no longer called (a call
 * already running on another thread may finish)."  Thread T trips the
 * breaker; its first listener blocks; meanwhile the main thread removes the
 * second listener (whose call has not started) and then, as a caller would,
 * considers its arg dead.  The second listener must not be called. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered, go;
};

static void blocking_listener(const resil_breaker_transition *t, void *arg)
{
    (void)t;
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->entered = 1;
    pthread_cond_broadcast(&g->cv);
    while (!g->go)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void counting_listener(const resil_breaker_transition *t, void *arg)
{
    (void)t;
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void *trip_thread(void *arg)
{
    resil_breaker_trip(arg);
    return NULL;
}

static void test_listener_not_called_after_remove(void **state)
{
    (void)state;
    alarm(20);
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    resil_breaker *b = mk("remove-race", &o);
    struct gate g;
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    g.entered = g.go = 0;
    atomic_int late = 0;
    assert_int_equal(resil_breaker_add_listener(b, blocking_listener, &g), 0);
    assert_int_equal(resil_breaker_add_listener(b, counting_listener, &late), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, trip_thread, b), 0);
    pthread_mutex_lock(&g.mu);
    while (!g.entered)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    /* T is inside the first listener; the second one has not been called */
    assert_int_equal(resil_breaker_remove_listener(b, counting_listener, &late), 0);
    int after_remove = atomic_load(&late);
    pthread_mutex_lock(&g.mu);
    g.go = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(th, NULL);
    alarm(0);
    resil_breaker_state st = resil_breaker_get_state(b);
    pthread_cond_destroy(&g.cv);
    pthread_mutex_destroy(&g.mu);
    resil_breaker_free(b);
    assert_int_equal(st, RESIL_BREAKER_FORCED_OPEN);
    assert_int_equal(after_remove, 0);
    if (atomic_load(&late) != 0)
        fail_msg("a listener was called after resil_breaker_remove_listener returned");
}

/* ---- snapshot ------------------------------------------------------------------------------------- */

static void test_snapshot_fields(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    o.failure_threshold = 4;
    o.recovery_timeout_s = 12.5;
    resil_breaker *b = mk("snapshot", &o);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_CLOSED);
    assert_int_equal(s.consecutive_failures, 0);
    assert_int_equal(s.successful, 0);
    assert_int_equal(s.failed, 0);
    assert_int_equal(s.ignored, 0);
    assert_int_equal(s.not_permitted, 0);
    assert_near(s.failure_rate, -1);
    assert_near(s.slow_call_rate, -1);
    assert_int_equal(s.window_calls, 0);
    assert_near(s.time_until_half_open_s, 0);
    assert_int_equal(s.open_streak, 0);
    assert_int_equal(s.half_open_in_flight, 0);
    assert_int_equal(s.failure_threshold, 4);
    assert_near(s.recovery_timeout_s, 12.5);
    assert_false(s.shared);
    uint64_t e0 = s.epoch;

    /* failure_rate over the totals without a window */
    CALLS(b, RESIL_BREAKER_SUCCESS, 3);
    CALL(b, RESIL_BREAKER_FAILURE);
    CALLS(b, RESIL_BREAKER_IGNORE, 2);
    s = snap(b);
    assert_int_equal(s.successful, 3);
    assert_int_equal(s.failed, 1);
    assert_int_equal(s.ignored, 2);
    assert_int_equal(s.consecutive_failures, 1);
    assert_near(s.failure_rate, 0.25);
    assert_near(s.slow_call_rate, -1);
    assert_int_equal(s.epoch, e0); /* no transition yet */

    CALLS(b, RESIL_BREAKER_FAILURE, 3);
    s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_OPEN);
    assert_int_equal(s.epoch, e0 + 1);
    assert_near(s.failure_rate, 4.0 / 7.0);
    assert_near(s.time_until_half_open_s, 12.5);
    assert_near(s.open_duration_s, 12.5);
    assert_int_equal(s.open_streak, 1);
    REFUSED(b, 12.5);
    REFUSED(b, 12.5);
    assert_int_equal(snap(b).not_permitted, 2);
    adv(&fc, 2.5);
    assert_near(snap(b).time_until_half_open_s, 10);
    adv(&fc, 10);
    resil_breaker_permit p;
    ACQ(b, &p);
    s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_HALF_OPEN);
    assert_int_equal(s.epoch, e0 + 2);
    assert_int_equal(s.half_open_in_flight, 1);
    assert_near(s.time_until_half_open_s, 0);
    assert_near(s.open_duration_s, 12.5); /* the last one */
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_SUCCESS, 0), 0);
    s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_CLOSED);
    assert_int_equal(s.epoch, e0 + 3);
    assert_int_equal(s.successful, 4);
    assert_int_equal(s.failed, 4);
    assert_int_equal(s.not_permitted, 2);
    assert_int_equal(s.consecutive_failures, 0);
    assert_int_equal(s.open_streak, 0);
    assert_int_equal(s.half_open_in_flight, 0);
    resil_breaker_free(b);

    /* with a window: failure_rate is the window's */
    resil_fake_clock_init(&fc, 1000 * S, 0);
    o = base_opts(&fc);
    o.failure_threshold = -1;
    o.window_size = 4;
    o.failure_rate_threshold = 1.0;
    o.slow_call_duration_s = 1;
    b = mk("snapshot-window", &o);
    s = snap(b);
    assert_near(s.failure_rate, -1);
    assert_near(s.slow_call_rate, -1);
    CALLS(b, RESIL_BREAKER_FAILURE, 3);
    CALLS(b, RESIL_BREAKER_SUCCESS, 4);
    s = snap(b);
    assert_int_equal(s.window_calls, 4);
    assert_near(s.failure_rate, 0.0);
    assert_near(s.slow_call_rate, 0.0);
    assert_int_equal(s.failed, 3);
    resil_breaker_free(b);
}

/* The hot path: CLOSED, consecutive rule only, acquire + report of a success
 * reads no clock. */
static void test_hot_path_reads_no_clock(void **state)
{
    (void)state;
    struct counting_clock cc;
    counting_clock_init(&cc);
    resil_breaker_opts o = base_opts(&cc.fake);
    o.clock = &cc.clock;
    resil_breaker *b = mk("hot", &o);
    atomic_store(&cc.reads, 0);
    for (int k = 0; k < 1000; k++) {
        resil_breaker_permit p;
        ACQ(b, &p);
        assert_int_equal(resil_breaker_report(b, &p, 0, -1), 0);
    }
    assert_int_equal(atomic_load(&cc.reads), 0);
    assert_int_equal(snap(b).successful, 1000);
    resil_breaker_free(b);
}

/* ---- options ------------------------------------------------------------------------------------- */

static void clear_env(void)
{
    unsetenv("CIRCUIT_BREAKER_DEFAULT_THRESHOLD");
    unsetenv("CIRCUIT_BREAKER_DEFAULT_TIMEOUT");
    unsetenv("RESIL_STATE_DIR");
}

static void test_opts_defaults(void **state)
{
    (void)state;
    clear_env();
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    resil_error e;
    assert_int_equal(resil_breaker_opts_resolve(&o, &e), 0);
    assert_int_equal(o.failure_threshold, 5);
    assert_near(o.recovery_timeout_s, 60);
    assert_int_equal(o.success_threshold, 1);
    assert_int_equal(o.half_open_max_calls, 1);
    assert_near(o.half_open_lease_s, 60);
    assert_int_equal(o.window_size, 0);
    assert_near(o.failure_rate_threshold, 0.5);
    assert_near(o.slow_call_duration_s, 0);
    assert_near(o.slow_call_rate_threshold, 1.0);
    assert_near(o.open_multiplier, 1);
    assert_near(o.open_jitter, 0);
    /* resolving twice changes nothing */
    resil_breaker_opts again = o;
    assert_int_equal(resil_breaker_opts_resolve(&again, NULL), 0);
    assert_int_equal(again.failure_threshold, o.failure_threshold);
    assert_near(again.recovery_timeout_s, o.recovery_timeout_s);
    assert_int_equal(again.success_threshold, o.success_threshold);
    assert_int_equal(again.half_open_max_calls, o.half_open_max_calls);
    assert_near(again.half_open_lease_s, o.half_open_lease_s);
    assert_near(again.failure_rate_threshold, o.failure_rate_threshold);
    assert_near(again.open_multiplier, o.open_multiplier);
    assert_near(again.max_open_s, o.max_open_s);

    /* dependent defaults */
    o = (resil_breaker_opts)RESIL_BREAKER_OPTS_INIT;
    o.recovery_timeout_s = 7;
    o.window_size = 12;
    o.failure_threshold = -1;
    assert_int_equal(resil_breaker_opts_resolve(&o, NULL), 0);
    assert_near(o.half_open_lease_s, 7);
    assert_int_equal(o.window_min_calls, 12);
    assert_int_equal(o.failure_threshold, -1);
    o = (resil_breaker_opts)RESIL_BREAKER_OPTS_INIT;
    o.half_open_lease_s = 3;
    assert_int_equal(resil_breaker_opts_resolve(&o, NULL), 0);
    assert_near(o.half_open_lease_s, 3);

    /* a NULL-opts breaker has the defaults */
    resil_breaker *b = mk("defaults", NULL);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.failure_threshold, 5);
    assert_near(s.recovery_timeout_s, 60);
    assert_false(s.shared);
    resil_breaker_free(b);
}

enum fld {
    F_THRESH,
    F_TIMEOUT,
    F_SUCC,
    F_HOMAX,
    F_LEASE,
    F_WSIZE,
    F_WMIN,
    F_FRATE,
    F_SLOWD,
    F_SLOWR,
    F_MULT,
    F_MAXOPEN,
    F_JITTER
};

static void set_field(resil_breaker_opts *o, enum fld f, double v)
{
    switch (f) {
    case F_THRESH: o->failure_threshold = (int)v; break;
    case F_TIMEOUT: o->recovery_timeout_s = v; break;
    case F_SUCC: o->success_threshold = (int)v; break;
    case F_HOMAX: o->half_open_max_calls = (int)v; break;
    case F_LEASE: o->half_open_lease_s = v; break;
    case F_WSIZE: o->window_size = (int)v; break;
    case F_WMIN: o->window_min_calls = (int)v; break;
    case F_FRATE: o->failure_rate_threshold = v; break;
    case F_SLOWD: o->slow_call_duration_s = v; break;
    case F_SLOWR: o->slow_call_rate_threshold = v; break;
    case F_MULT: o->open_multiplier = v; break;
    case F_MAXOPEN: o->max_open_s = v; break;
    case F_JITTER: o->open_jitter = v; break;
    }
}

static void test_opts_rejects_bad_values(void **state)
{
    (void)state;
    clear_env();
    static const struct {
        const char *path;
        const char *alt; /* another acceptable path, or NULL */
        enum fld f;
        double v;
        int window; /* window_size to set first */
        double recovery;
    } bad[] = {
        {"failure_threshold", NULL, F_THRESH, -2, 0, 0},
        {"failure_threshold", NULL, F_THRESH, -100, 0, 0},
        {"failure_threshold", NULL, F_THRESH, 1000001, 0, 0},
        {"recovery_timeout_s", NULL, F_TIMEOUT, -1, 0, 0},
        {"recovery_timeout_s", NULL, F_TIMEOUT, NAN, 0, 0},
        {"recovery_timeout_s", NULL, F_TIMEOUT, INFINITY, 0, 0},
        {"success_threshold", NULL, F_SUCC, -1, 0, 0},
        {"success_threshold", NULL, F_SUCC, 1000001, 0, 0},
        {"half_open_max_calls", NULL, F_HOMAX, 65, 0, 0},
        {"half_open_max_calls", NULL, F_HOMAX, -1, 0, 0},
        {"half_open_lease_s", NULL, F_LEASE, -1, 0, 0},
        {"half_open_lease_s", NULL, F_LEASE, NAN, 0, 0},
        {"half_open_lease_s", NULL, F_LEASE, INFINITY, 0, 0},
        {"window_size", NULL, F_WSIZE, -1, 0, 0},
        {"window_size", NULL, F_WSIZE, 10001, 0, 0},
        {"window_min_calls", NULL, F_WMIN, 11, 10, 0},
        {"window_min_calls", NULL, F_WMIN, -1, 10, 0},
        {"failure_rate_threshold", NULL, F_FRATE, 1.5, 10, 0},
        {"failure_rate_threshold", NULL, F_FRATE, -0.1, 10, 0},
        {"failure_rate_threshold", NULL, F_FRATE, NAN, 10, 0},
        {"slow_call_duration_s", NULL, F_SLOWD, -1, 10, 0},
        {"slow_call_duration_s", NULL, F_SLOWD, NAN, 10, 0},
        {"slow_call_duration_s", NULL, F_SLOWD, INFINITY, 10, 0},
        {"slow_call_duration_s", "window_size", F_SLOWD, 1.0, 0, 0}, /* no window */
        {"slow_call_rate_threshold", NULL, F_SLOWR, 1.5, 10, 0},
        {"slow_call_rate_threshold", NULL, F_SLOWR, -0.5, 10, 0},
        {"slow_call_rate_threshold", NULL, F_SLOWR, NAN, 10, 0},
        {"open_multiplier", NULL, F_MULT, 0.5, 0, 0},
        {"open_multiplier", NULL, F_MULT, -2, 0, 0},
        {"open_multiplier", NULL, F_MULT, NAN, 0, 0},
        {"open_multiplier", NULL, F_MULT, INFINITY, 0, 0},
        {"max_open_s", NULL, F_MAXOPEN, 5, 0, 10},
        {"max_open_s", NULL, F_MAXOPEN, -1, 0, 0},
        {"max_open_s", NULL, F_MAXOPEN, NAN, 0, 0},
        {"open_jitter", NULL, F_JITTER, 1.0, 0, 0},
        {"open_jitter", NULL, F_JITTER, -0.1, 0, 0},
        {"open_jitter", NULL, F_JITTER, NAN, 0, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
        o.window_size = bad[i].window;
        if (bad[i].recovery > 0)
            o.recovery_timeout_s = bad[i].recovery;
        set_field(&o, bad[i].f, bad[i].v);
        resil_error e;
        memset(&e, 0, sizeof e);
        int rc = resil_breaker_opts_resolve(&o, &e);
        if (rc != RESIL_EINVAL)
            fail_msg("case %zu (%s = %g): returned %s, expected RESIL_EINVAL", i, bad[i].path,
                     bad[i].v, resil_err_name(rc));
        assert_int_equal(e.code, RESIL_EINVAL);
        if (strcmp(e.path, bad[i].path) != 0 && !(bad[i].alt && strcmp(e.path, bad[i].alt) == 0))
            fail_msg("case %zu (%s = %g): err.path '%s'", i, bad[i].path, bad[i].v, e.path);
        assert_true(e.message[0] != '\0');

        /* resil_breaker_new refuses the same options */
        resil_fake_clock fc;
        resil_fake_clock_init(&fc, 1000 * S, 0);
        resil_breaker_opts n = RESIL_BREAKER_OPTS_INIT;
        n.clock = &fc.clock;
        n.state_dir = "";
        n.window_size = bad[i].window;
        if (bad[i].recovery > 0)
            n.recovery_timeout_s = bad[i].recovery;
        set_field(&n, bad[i].f, bad[i].v);
        resil_breaker *b = NULL;
        memset(&e, 0, sizeof e);
        assert_int_equal(resil_breaker_new(&b, "bad-opts", &n, &e), RESIL_EINVAL);
        if (strcmp(e.path, bad[i].path) != 0 && !(bad[i].alt && strcmp(e.path, bad[i].alt) == 0))
            fail_msg("new, case %zu (%s = %g): err.path '%s'", i, bad[i].path, bad[i].v, e.path);
    }

    /* edge values that are fine */
    static const struct {
        enum fld f;
        double v;
        int window;
        double recovery;
    } good[] = {
        {F_THRESH, -1, 10, 0},   {F_THRESH, 1, 0, 0},       {F_THRESH, 1000000, 0, 0},
        {F_TIMEOUT, 1e-3, 0, 0}, {F_SUCC, 1000000, 0, 0},   {F_HOMAX, 64, 0, 0},
        {F_HOMAX, 1, 0, 0},      {F_WSIZE, 10000, 0, 0},    {F_WSIZE, 1, 0, 0},
        {F_WMIN, 10, 10, 0},     {F_WMIN, 1, 10, 0},        {F_FRATE, 1.0, 10, 0},
        {F_SLOWD, 0.5, 10, 0},   {F_SLOWR, 1.0, 10, 0},     {F_MULT, 1.0, 0, 0},
        {F_MULT, 10, 0, 0},      {F_MAXOPEN, 10, 0, 10},    {F_JITTER, 0.999, 0, 0},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
        o.window_size = good[i].window;
        if (good[i].recovery > 0)
            o.recovery_timeout_s = good[i].recovery;
        set_field(&o, good[i].f, good[i].v);
        resil_error e;
        memset(&e, 0, sizeof e);
        int rc = resil_breaker_opts_resolve(&o, &e);
        if (rc != 0)
            fail_msg("good case %zu (field %d = %g) refused: %s: %s", i, (int)good[i].f,
                     good[i].v, e.path, e.message);
    }
}

static void test_new_bad_name(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    char n201[202], n200[201];
    memset(n201, 'x', 201);
    n201[201] = '\0';
    memset(n200, 'y', 200);
    n200[200] = '\0';
    const char *bad[] = {NULL, "", n201};
    for (size_t i = 0; i < 3; i++) {
        resil_breaker *b = NULL;
        resil_error e;
        memset(&e, 0, sizeof e);
        assert_int_equal(resil_breaker_new(&b, bad[i], &o, &e), RESIL_EINVAL);
        assert_int_equal(e.code, RESIL_EINVAL);
        assert_true(strstr(e.path, "name") != NULL || strstr(e.message, "name") != NULL);
        assert_int_equal(resil_breaker_new(&b, bad[i], &o, NULL), RESIL_EINVAL);
    }
    resil_breaker *b = mk(n200, &o);
    assert_string_equal(resil_breaker_name(b), n200);
    resil_breaker_free(b);
}

/* opts.state_dir "" is process-local even when RESIL_STATE_DIR is set. */
static void test_state_dir_empty_is_local(void **state)
{
    (void)state;
    char dir[] = "/tmp/resil-ut-breaker-XXXXXX";
    assert_non_null(mkdtemp(dir));
    setenv("RESIL_STATE_DIR", dir, 1);
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    resil_breaker *b = mk("local-only", &o);
    assert_false(resil_breaker_is_shared(b));
    trip_by_failures(b);
    resil_breaker_free(b);
    unsetenv("RESIL_STATE_DIR");
    DIR *d = opendir(dir);
    assert_non_null(d);
    int entries = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            entries++;
    closedir(d);
    assert_int_equal(entries, 0);
    assert_int_equal(rmdir(dir), 0);
}

/* ---- environment ------------------------------------------------------------------------------------- */

static void test_env_good_values(void **state)
{
    (void)state;
    clear_env();
    int th = -7;
    double to = -7;
    resil_error e;
    assert_int_equal(resil_breaker_env_defaults(&th, &to, &e), 0);
    assert_int_equal(th, 5);
    assert_near(to, 60);

    setenv("CIRCUIT_BREAKER_DEFAULT_THRESHOLD", "7", 1);
    setenv("CIRCUIT_BREAKER_DEFAULT_TIMEOUT", "12.5", 1);
    assert_int_equal(resil_breaker_env_defaults(&th, &to, &e), 0);
    assert_int_equal(th, 7);
    assert_near(to, 12.5);
    assert_int_equal(resil_breaker_env_defaults(NULL, NULL, NULL), 0);
    assert_int_equal(resil_breaker_env_defaults(&th, NULL, NULL), 0);
    assert_int_equal(th, 7);

    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    assert_int_equal(resil_breaker_opts_resolve(&o, NULL), 0);
    assert_int_equal(o.failure_threshold, 7);
    assert_near(o.recovery_timeout_s, 12.5);
    assert_near(o.half_open_lease_s, 12.5);
    /* explicit values win */
    o = (resil_breaker_opts)RESIL_BREAKER_OPTS_INIT;
    o.failure_threshold = 3;
    o.recovery_timeout_s = 4;
    assert_int_equal(resil_breaker_opts_resolve(&o, NULL), 0);
    assert_int_equal(o.failure_threshold, 3);
    assert_near(o.recovery_timeout_s, 4);

    /* a breaker uses them: 2 failures trip, open for 30 s */
    setenv("CIRCUIT_BREAKER_DEFAULT_THRESHOLD", "2", 1);
    setenv("CIRCUIT_BREAKER_DEFAULT_TIMEOUT", "30", 1);
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts bo = RESIL_BREAKER_OPTS_INIT;
    bo.clock = &fc.clock;
    bo.state_dir = "";
    resil_breaker *b = mk("env", &bo);
    CALL(b, RESIL_BREAKER_FAILURE);
    assert_state(b, RESIL_BREAKER_CLOSED);
    CALL(b, RESIL_BREAKER_FAILURE);
    assert_state(b, RESIL_BREAKER_OPEN);
    REFUSED(b, 30);
    resil_breaker_free(b);
    clear_env();
}

static void test_env_bad_values(void **state)
{
    (void)state;
    static const struct {
        const char *var;
        const char *value;
    } bad[] = {
        {"CIRCUIT_BREAKER_DEFAULT_THRESHOLD", "abc"},
        {"CIRCUIT_BREAKER_DEFAULT_THRESHOLD", "0"},
        {"CIRCUIT_BREAKER_DEFAULT_THRESHOLD", "-3"},
        {"CIRCUIT_BREAKER_DEFAULT_THRESHOLD", "nan"},
        {"CIRCUIT_BREAKER_DEFAULT_THRESHOLD", "1e400"},
        {"CIRCUIT_BREAKER_DEFAULT_THRESHOLD", "5x"},
        {"CIRCUIT_BREAKER_DEFAULT_THRESHOLD", "3.5"},
        {"CIRCUIT_BREAKER_DEFAULT_THRESHOLD", "1000001"},
        {"CIRCUIT_BREAKER_DEFAULT_THRESHOLD", "99999999999999999999"},
        {"CIRCUIT_BREAKER_DEFAULT_TIMEOUT", "abc"},
        {"CIRCUIT_BREAKER_DEFAULT_TIMEOUT", "0"},
        {"CIRCUIT_BREAKER_DEFAULT_TIMEOUT", "-3"},
        {"CIRCUIT_BREAKER_DEFAULT_TIMEOUT", "nan"},
        {"CIRCUIT_BREAKER_DEFAULT_TIMEOUT", "1e400"},
        {"CIRCUIT_BREAKER_DEFAULT_TIMEOUT", "5x"},
        {"CIRCUIT_BREAKER_DEFAULT_TIMEOUT", "inf"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        clear_env();
        setenv(bad[i].var, bad[i].value, 1);
        int th = -7;
        double to = -7;
        resil_error e;
        memset(&e, 0, sizeof e);
        int rc = resil_breaker_env_defaults(&th, &to, &e);
        if (rc != RESIL_EINVAL)
            fail_msg("%s=%s: returned %s, expected RESIL_EINVAL", bad[i].var, bad[i].value,
                     resil_err_name(rc));
        assert_int_equal(e.code, RESIL_EINVAL);
        if (!strstr(e.path, bad[i].var) && !strstr(e.message, bad[i].var))
            fail_msg("%s=%s: error does not name the variable (path '%s', message '%s')",
                     bad[i].var, bad[i].value, e.path, e.message);
        if (!strstr(e.message, bad[i].value))
            fail_msg("%s=%s: message does not show the value: '%s'", bad[i].var, bad[i].value,
                     e.message);
        assert_int_equal(th, 5);
        assert_near(to, 60);
        assert_int_equal(resil_breaker_env_defaults(NULL, NULL, NULL), RESIL_EINVAL);

        /* resolve: not an error, the documented default is used */
        resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
        assert_int_equal(resil_breaker_opts_resolve(&o, NULL), 0);
        assert_int_equal(o.failure_threshold, 5);
        assert_near(o.recovery_timeout_s, 60);
    }
    /* one bad variable does not spoil the other */
    clear_env();
    setenv("CIRCUIT_BREAKER_DEFAULT_THRESHOLD", "9", 1);
    setenv("CIRCUIT_BREAKER_DEFAULT_TIMEOUT", "soon", 1);
    int th = 0;
    double to = 0;
    resil_error e;
    assert_int_equal(resil_breaker_env_defaults(&th, &to, &e), RESIL_EINVAL);
    assert_int_equal(th, 9);
    assert_near(to, 60);
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    assert_int_equal(resil_breaker_opts_resolve(&o, NULL), 0);
    assert_int_equal(o.failure_threshold, 9);
    assert_near(o.recovery_timeout_s, 60);
    clear_env();
}

/* ---- registry ------------------------------------------------------------------------------------- */

struct collect {
    resil_breaker *b[128];
    int n;
    int stop_at;
};

static int collect_fn(resil_breaker *b, void *arg)
{
    struct collect *c = arg;
    if (c->n < 128)
        c->b[c->n] = b;
    c->n++;
    return c->stop_at && c->n == c->stop_at ? 77 : 0;
}

static void test_registry_same_pointer(void **state)
{
    (void)state;
    clear_env();
    resil_breaker_registry_clear();
    resil_breaker *a = NULL, *a2 = NULL, *c = NULL, *d = NULL;
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    o.state_dir = "";
    o.failure_threshold = 2;
    assert_int_equal(resil_breaker_get(&a, "reg-a", &o, NULL), 0);
    o.failure_threshold = 9; /* ignored for an existing one */
    assert_int_equal(resil_breaker_get(&a2, "reg-a", &o, NULL), 0);
    assert_ptr_equal(a, a2);
    assert_int_equal(snap(a).failure_threshold, 2);
    assert_int_equal(resil_breaker_get(&c, "reg-c", NULL, NULL), 0);
    assert_ptr_not_equal(a, c);
    assert_int_equal(resil_breaker_get(&d, "reg-b", &o, NULL), 0);
    assert_string_equal(resil_breaker_name(c), "reg-c");
    assert_false(resil_breaker_is_shared(c));

    resil_breaker *x = NULL;
    resil_error e;
    assert_int_equal(resil_breaker_get(&x, "", NULL, &e), RESIL_EINVAL);
    assert_int_equal(resil_breaker_get(&x, NULL, NULL, &e), RESIL_EINVAL);

    /* creation order, early stop */
    struct collect col = {{0}, 0, 0};
    assert_int_equal(resil_breaker_registry_foreach(collect_fn, &col), 0);
    assert_int_equal(col.n, 3);
    assert_ptr_equal(col.b[0], a);
    assert_ptr_equal(col.b[1], c);
    assert_ptr_equal(col.b[2], d);
    struct collect stop = {{0}, 0, 2};
    assert_int_equal(resil_breaker_registry_foreach(collect_fn, &stop), 77);
    assert_int_equal(stop.n, 2);

    resil_breaker_registry_clear();
    struct collect none = {{0}, 0, 0};
    assert_int_equal(resil_breaker_registry_foreach(collect_fn, &none), 0);
    assert_int_equal(none.n, 0);
}

#define REG_THREADS 8
#define REG_NAMES 50

struct reg_worker {
    int id;
    pthread_barrier_t *bar;
    resil_breaker *got[REG_NAMES];
    int errors;
};

static void *reg_thread(void *arg)
{
    struct reg_worker *w = arg;
    pthread_barrier_wait(w->bar);
    for (int k = 0; k < REG_NAMES; k++) {
        int idx = (k * 7 + w->id * 13) % REG_NAMES; /* different orders */
        char name[32];
        snprintf(name, sizeof name, "conc-%02d", idx);
        resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
        o.state_dir = "";
        resil_breaker *b = NULL;
        if (resil_breaker_get(&b, name, (w->id & 1) ? &o : NULL, NULL) != 0 || !b)
            w->errors++;
        w->got[idx] = b;
    }
    return NULL;
}

static void test_registry_concurrent(void **state)
{
    (void)state;
    clear_env();
    resil_breaker_registry_clear();
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, REG_THREADS);
    static struct reg_worker w[REG_THREADS];
    pthread_t th[REG_THREADS];
    for (int i = 0; i < REG_THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].id = i;
        w[i].bar = &bar;
        assert_int_equal(pthread_create(&th[i], NULL, reg_thread, &w[i]), 0);
    }
    for (int i = 0; i < REG_THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    for (int i = 0; i < REG_THREADS; i++) {
        assert_int_equal(w[i].errors, 0);
        for (int k = 0; k < REG_NAMES; k++) {
            assert_non_null(w[i].got[k]);
            assert_ptr_equal(w[i].got[k], w[0].got[k]);
        }
    }
    for (int k = 0; k < REG_NAMES; k++) {
        char name[32];
        snprintf(name, sizeof name, "conc-%02d", k);
        assert_string_equal(resil_breaker_name(w[0].got[k]), name);
    }
    struct collect col = {{0}, 0, 0};
    assert_int_equal(resil_breaker_registry_foreach(collect_fn, &col), 0);
    assert_int_equal(col.n, REG_NAMES);
    for (int i = 0; i < col.n; i++)
        for (int j = i + 1; j < col.n; j++)
            assert_ptr_not_equal(col.b[i], col.b[j]);
    for (int k = 0; k < REG_NAMES; k++) {
        bool found = false;
        for (int i = 0; i < col.n; i++)
            found |= col.b[i] == w[0].got[k];
        assert_true(found);
    }
    resil_breaker_registry_clear();
}

static void test_with_circuit_breaker(void **state)
{
    (void)state;
    clear_env();
    resil_breaker_registry_clear();
    struct op_ctx c = {-5, 0};
    for (int k = 0; k < 3; k++)
        assert_int_equal(resil_with_circuit_breaker("wcb", op_fn, &c, 3, 30), -5);
    assert_int_equal(c.calls, 3);
    assert_int_equal(resil_with_circuit_breaker("wcb", op_fn, &c, 3, 30), RESIL_ECIRCUIT_OPEN);
    assert_int_equal(resil_with_circuit_breaker("wcb", op_fn, &c, 3, 30), RESIL_ECIRCUIT_OPEN);
    assert_int_equal(c.calls, 3);
    resil_breaker *b = NULL;
    assert_int_equal(resil_breaker_get(&b, "wcb", NULL, NULL), 0);
    assert_state(b, RESIL_BREAKER_OPEN);
    double left = resil_breaker_time_until_half_open(b);
    assert_true(left > 25 && left <= 30);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.failure_threshold, 3);
    assert_near(s.recovery_timeout_s, 30);
    assert_int_equal(s.failed, 3);
    assert_int_equal(s.not_permitted, 2);
    assert_false(s.shared);

    /* successes pass op's result through, defaults (5) when 0 */
    struct op_ctx ok = {0, 0};
    assert_int_equal(resil_with_circuit_breaker("wcb-ok", op_fn, &ok, 0, 0), 0);
    assert_int_equal(ok.calls, 1);
    ok.ret = 12;
    for (int k = 0; k < 4; k++)
        assert_int_equal(resil_with_circuit_breaker("wcb-ok", op_fn, &ok, 0, 0), 12);
    assert_int_equal(resil_with_circuit_breaker("wcb-ok", op_fn, &ok, 0, 0), 12);
    assert_int_equal(resil_with_circuit_breaker("wcb-ok", op_fn, &ok, 0, 0), RESIL_ECIRCUIT_OPEN);
    assert_int_equal(ok.calls, 6);
    assert_int_equal(resil_breaker_get(&b, "wcb-ok", NULL, NULL), 0);
    assert_near(snap(b).recovery_timeout_s, 60);
    resil_breaker_registry_clear();
}

/* The refusal's details: resil_breaker_call_ex and
 * resil_with_circuit_breaker_ex give the time until half-open (the
 * original's CircuitBreakerOpen.time_until_half_open) and a resil_error. */
static void test_call_ex_time_until_half_open(void **state)
{
    (void)state;
    clear_env();
    resil_breaker_registry_clear();
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc); /* 3 failures, 10 s open */
    resil_breaker *b = NULL;
    assert_int_equal(resil_breaker_get(&b, "cx", &o, NULL), 0);
    struct op_ctx c = {-5, 0};
    double wait_s = 123;
    resil_error e;
    memset(&e, 0, sizeof e);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(resil_breaker_call_ex(b, op_fn, &c, &wait_s, &e), -5);
        assert_near(wait_s, 0); /* op ran */
        assert_int_equal(e.code, 0); /* untouched */
    }
    assert_int_equal(c.calls, 3);
    assert_state(b, RESIL_BREAKER_OPEN);
    adv(&fc, 2.5);
    assert_int_equal(resil_breaker_call_ex(b, op_fn, &c, &wait_s, &e), RESIL_ECIRCUIT_OPEN);
    assert_int_equal(c.calls, 3);
    assert_near(wait_s, 7.5);
    assert_int_equal(e.code, RESIL_ECIRCUIT_OPEN);
    assert_string_equal(e.path, "cx");
    assert_non_null(strstr(e.message, "'cx' is open: half-open in 7.500 s"));
    /* the registry's form, same breaker (opts ignored for an existing one) */
    adv(&fc, 7.25);
    memset(&e, 0, sizeof e);
    assert_int_equal(resil_with_circuit_breaker_ex("cx", op_fn, &c, 3, 10, &wait_s, &e),
                     RESIL_ECIRCUIT_OPEN);
    assert_near(wait_s, 0.25);
    assert_int_equal(e.code, RESIL_ECIRCUIT_OPEN);
    assert_int_equal(resil_with_circuit_breaker_ex("cx", op_fn, &c, 3, 10, NULL, NULL),
                     RESIL_ECIRCUIT_OPEN); /* both may be NULL */
    /* half-open, its one trial taken: 0 */
    adv(&fc, 0.25);
    resil_breaker_permit p;
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), 0);
    assert_int_equal(resil_breaker_call_ex(b, op_fn, &c, &wait_s, &e), RESIL_ECIRCUIT_OPEN);
    assert_near(wait_s, 0);
    assert_non_null(strstr(e.message, "half-open and all its trial calls are taken"));
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_SUCCESS, -1), 0);
    assert_state(b, RESIL_BREAKER_CLOSED);
    /* forced open: -1 */
    assert_int_equal(resil_breaker_trip(b), 0);
    assert_int_equal(resil_breaker_call_ex(b, op_fn, &c, &wait_s, &e), RESIL_ECIRCUIT_OPEN);
    assert_near(wait_s, -1);
    assert_non_null(strstr(e.message, "forced open"));
    assert_int_equal(c.calls, 3);
    /* a closed call: op's result, wait 0 */
    assert_int_equal(resil_breaker_reset(b), 0);
    c.ret = 0;
    wait_s = 99;
    assert_int_equal(resil_breaker_call_ex(b, op_fn, &c, &wait_s, NULL), 0);
    assert_near(wait_s, 0);
    assert_int_equal(c.calls, 4);
    memset(&e, 0, sizeof e);
    assert_int_equal(resil_with_circuit_breaker_ex("cx", NULL, NULL, 0, 0, &wait_s, &e),
                     RESIL_EINVAL);
    assert_int_equal(e.code, RESIL_EINVAL);
    resil_breaker_registry_clear();
}

/* ---- threads ----------------------------------------------------------------------------------------- */

struct ho_stress {
    resil_breaker *b;
    atomic_int outstanding;
    atomic_int max_seen;
    atomic_long granted;
    atomic_long refused;
    atomic_int bad_wait;
    atomic_int other_err;
    int iters;
};

static void *ho_thread(void *arg)
{
    struct ho_stress *x = arg;
    for (int i = 0; i < x->iters; i++) {
        resil_breaker_permit p;
        double w = -9;
        int rc = resil_breaker_acquire(x->b, &p, &w);
        if (rc == 0) {
            int n = atomic_fetch_add(&x->outstanding, 1) + 1;
            int m = atomic_load(&x->max_seen);
            while (n > m && !atomic_compare_exchange_weak(&x->max_seen, &m, n))
                ;
            if (i % 4 == 0)
                for (int k = 0; k < 3; k++)
                    sched_yield(); /* hold the permit a while */
            atomic_fetch_sub(&x->outstanding, 1);
            atomic_fetch_add(&x->granted, 1);
            if (resil_breaker_record(x->b, &p, RESIL_BREAKER_IGNORE, -1) != 0)
                atomic_fetch_add(&x->other_err, 1);
        } else if (rc == RESIL_ECIRCUIT_OPEN) {
            atomic_fetch_add(&x->refused, 1);
            if (w != 0)
                atomic_fetch_add(&x->bad_wait, 1);
        } else {
            atomic_fetch_add(&x->other_err, 1);
        }
    }
    return NULL;
}

static void test_threads_half_open_limit(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    o.half_open_max_calls = 3;
    o.half_open_lease_s = 1e6;
    resil_breaker *b = mk("ho-stress", &o);
    trip_by_failures(b);
    adv(&fc, 10);
    assert_state(b, RESIL_BREAKER_HALF_OPEN);
    struct ho_stress x;
    memset(&x, 0, sizeof x);
    x.b = b;
    x.iters = 20000;
    atomic_init(&x.outstanding, 0);
    atomic_init(&x.max_seen, 0);
    atomic_init(&x.granted, 0);
    atomic_init(&x.refused, 0);
    atomic_init(&x.bad_wait, 0);
    atomic_init(&x.other_err, 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, ho_thread, &x), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    if (atomic_load(&x.max_seen) > 3)
        fail_msg("%d trial permits outstanding at once (max 3)", atomic_load(&x.max_seen));
    assert_true(atomic_load(&x.max_seen) >= 1);
    assert_true(atomic_load(&x.granted) > 3); /* ignored reports free their lease */
    assert_int_equal(atomic_load(&x.bad_wait), 0);
    assert_int_equal(atomic_load(&x.other_err), 0);
    assert_int_equal(atomic_load(&x.granted) + atomic_load(&x.refused), 4L * x.iters);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_HALF_OPEN);
    assert_int_equal(s.half_open_in_flight, 0);
    assert_int_equal(s.ignored, atomic_load(&x.granted));
    assert_int_equal(s.not_permitted, atomic_load(&x.refused));
    resil_breaker_free(b);
}

struct closed_stress {
    resil_breaker *b;
    int iters;
    bool mixed;
    atomic_int errors;
};

static void *closed_thread(void *arg)
{
    struct closed_stress *x = arg;
    for (int i = 0; i < x->iters; i++) {
        resil_breaker_permit p;
        if (resil_breaker_acquire(x->b, &p, NULL) != 0) {
            atomic_fetch_add(&x->errors, 1);
            continue;
        }
        int result = x->mixed && (i & 1) ? 1 : 0;
        if (resil_breaker_report(x->b, &p, result, -1) != 0)
            atomic_fetch_add(&x->errors, 1);
        if (x->mixed && i % 10 == 0) {
            if (resil_breaker_acquire(x->b, &p, NULL) != 0 ||
                resil_breaker_record(x->b, &p, RESIL_BREAKER_IGNORE, -1) != 0)
                atomic_fetch_add(&x->errors, 1);
        }
    }
    return NULL;
}

static void test_threads_closed_totals(void **state)
{
    (void)state;
    enum { N = 4, M = 20000 };
    for (int mode = 0; mode < 2; mode++) {
        resil_fake_clock fc;
        resil_fake_clock_init(&fc, 1000 * S, 0);
        resil_breaker_opts o = base_opts(&fc);
        if (mode == 1) {
            /* alternate S/F under a window that only trips at 100% */
            o.failure_threshold = -1;
            o.window_size = 100;
            o.failure_rate_threshold = 1.0;
        } else {
            o.failure_threshold = 5;
        }
        resil_breaker *b = mk("closed-stress", &o);
        struct closed_stress x;
        x.b = b;
        x.iters = M;
        x.mixed = mode == 1;
        atomic_init(&x.errors, 0);
        pthread_t th[N];
        for (int i = 0; i < N; i++)
            assert_int_equal(pthread_create(&th[i], NULL, closed_thread, &x), 0);
        for (int i = 0; i < N; i++)
            pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&x.errors), 0);
        resil_breaker_snapshot s = snap(b);
        assert_int_equal(s.state, RESIL_BREAKER_CLOSED);
        if (mode == 0) {
            assert_int_equal(s.successful, (int64_t)N * M);
            assert_int_equal(s.failed, 0);
        } else {
            assert_int_equal(s.successful, (int64_t)N * M / 2);
            assert_int_equal(s.failed, (int64_t)N * M / 2);
            assert_int_equal(s.ignored, (int64_t)N * (M / 10));
            assert_int_equal(s.window_calls, 100);
        }
        assert_int_equal(s.not_permitted, 0);
        resil_breaker_free(b);
    }
}

/* ---- retry around a breaker ------------------------------------------------------------------- */

struct rop {
    resil_breaker *b;
    int calls;
    int fail_times; /* transient failures before success */
    int error;
    int called_while_open;
};

static resil_outcome rop_fn(resil_retry_call *call, void *arg)
{
    struct rop *r = arg;
    r->calls++;
    resil_breaker_state st = resil_breaker_get_state(r->b);
    if (st == RESIL_BREAKER_OPEN || st == RESIL_BREAKER_FORCED_OPEN)
        r->called_while_open++;
    if (r->calls <= r->fail_times) {
        call->error = r->error;
        return RESIL_OUTCOME_TRANSIENT;
    }
    return RESIL_OUTCOME_SUCCESS;
}

static resil_retry_config rcfg(int retries)
{
    resil_retry_config c = RESIL_RETRY_TRANSIENT;
    c.max_retries = retries;
    c.base_delay_s = 0.5;
    c.max_delay_s = 0.5;
    c.jitter = false;
    return c;
}

static void test_retry_with_breaker_wait(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    o.failure_threshold = 1;
    resil_breaker *b = mk("retry-wait", &o);
    CALL(b, RESIL_BREAKER_FAILURE);
    assert_state(b, RESIL_BREAKER_OPEN);
    adv(&fc, 4); /* 6 s left */

    resil_retry_opts ro = RESIL_RETRY_OPTS_INIT;
    ro.clock = &fc.clock;
    resil_retry_config c = rcfg(3);
    struct rop r = {b, 0, 0, 0, 0};
    resil_retry_result res;
    assert_int_equal(resil_retry_with_breaker(b, RESIL_BREAKER_OPEN_WAIT, rop_fn, &r, "w", &c,
                                              &ro, &res),
                     0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.called_while_open, 0);
    assert_int_equal(res.attempts, 1); /* the refused one did not run: not an attempt */
    assert_int_equal(res.reason, RESIL_STOP_SUCCESS);
    int64_t slept = resil_fake_clock_slept_ns(&fc);
    if (llabs(slept - 6 * S) > 1000)
        fail_msg("slept %lld ns, expected the 6 s until half-open", (long long)slept);
    assert_near(res.total_delay_s, 6);
    assert_state(b, RESIL_BREAKER_CLOSED); /* the trial succeeded */
    assert_int_equal(snap(b).successful, 1);

    /* the wait is bounded by the retry's deadline */
    CALL(b, RESIL_BREAKER_FAILURE);
    int64_t slept0 = resil_fake_clock_slept_ns(&fc);
    c.max_elapsed_s = 5; /* 10 s until half-open */
    struct rop r2 = {b, 0, 0, 0, 0};
    assert_int_equal(resil_retry_with_breaker(b, RESIL_BREAKER_OPEN_WAIT, rop_fn, &r2, "w", &c,
                                              &ro, &res),
                     RESIL_EDEADLINE);
    assert_int_equal(r2.calls, 0);
    assert_int_equal(res.last_error, RESIL_ECIRCUIT_OPEN);
    assert_int_equal(resil_fake_clock_slept_ns(&fc), slept0);
    resil_breaker_free(b);
}

static void test_retry_with_breaker_stop(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S, 0);
    resil_breaker_opts o = base_opts(&fc);
    o.failure_threshold = 2;
    resil_breaker *b = mk("retry-stop", &o);
    resil_retry_opts ro = RESIL_RETRY_OPTS_INIT;
    ro.clock = &fc.clock;
    resil_retry_config c = rcfg(5);

    /* already open: op never called, one refusal, which is not an attempt */
    CALLS(b, RESIL_BREAKER_FAILURE, 2);
    struct rop r = {b, 0, 0, 0, 0};
    resil_retry_result res;
    assert_int_equal(resil_retry_with_breaker(b, RESIL_BREAKER_OPEN_STOP, rop_fn, &r, "s", &c,
                                              &ro, &res),
                     RESIL_EPERMANENT);
    assert_int_equal(r.calls, 0);
    assert_int_equal(res.attempts, 0);
    assert_int_equal(res.last_error, RESIL_ECIRCUIT_OPEN);
    assert_int_equal(res.reason, RESIL_STOP_PERMANENT);
    assert_int_equal(resil_fake_clock_slept_ns(&fc), 0);

    /* failures are reported to the breaker, which trips mid-retry and stops it */
    assert_int_equal(resil_breaker_reset(b), 0);
    struct rop f = {b, 0, 100, -5, 0};
    assert_int_equal(resil_retry_with_breaker(b, RESIL_BREAKER_OPEN_STOP, rop_fn, &f, "s", &c,
                                              &ro, &res),
                     RESIL_EPERMANENT);
    assert_int_equal(f.calls, 2);
    assert_int_equal(f.called_while_open, 0);
    assert_int_equal(res.attempts, 2); /* then a refusal */
    assert_int_equal(res.last_error, RESIL_ECIRCUIT_OPEN);
    assert_state(b, RESIL_BREAKER_OPEN);
    assert_int_equal(snap(b).failed, 4);

    /* a forced-open breaker with WAIT: no hint to wait for, still not called */
    assert_int_equal(resil_breaker_trip(b), 0);
    struct rop g = {b, 0, 0, 0, 0};
    c = rcfg(2);
    int rc = resil_retry_with_breaker(b, RESIL_BREAKER_OPEN_WAIT, rop_fn, &g, "s", &c, &ro, &res);
    assert_true(rc != 0);
    assert_int_equal(g.calls, 0);
    assert_int_equal(res.last_error, RESIL_ECIRCUIT_OPEN);
    resil_breaker_free(b);
}

int main(void)
{
    /* tests must not depend on the caller's environment */
    clear_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names_and_identity),
        cmocka_unit_test(test_closed_to_open_consecutive),
        cmocka_unit_test(test_open_refuses_with_remaining_time),
        cmocka_unit_test(test_open_to_half_open),
        cmocka_unit_test(test_half_open_to_closed),
        cmocka_unit_test(test_half_open_failure_reopens),
        cmocka_unit_test(test_forced_open),
        cmocka_unit_test(test_disabled),
        cmocka_unit_test(test_reset_from_every_state),
        cmocka_unit_test(test_window_failure_rate),
        cmocka_unit_test(test_window_slides),
        cmocka_unit_test(test_ignore_counts_for_neither_side),
        cmocka_unit_test(test_consecutive_rule_disabled),
        cmocka_unit_test(test_slow_calls_explicit_duration),
        cmocka_unit_test(test_slow_call_rate_trips),
        cmocka_unit_test(test_slow_measured_from_acquire),
        cmocka_unit_test(test_slow_measured_clock_at_zero),
        cmocka_unit_test(test_open_duration_grows_and_caps),
        cmocka_unit_test(test_open_jitter),
        cmocka_unit_test(test_half_open_max_calls),
        cmocka_unit_test(test_half_open_lease_expiry),
        cmocka_unit_test(test_stale_epoch),
        cmocka_unit_test(test_permit_spent),
        cmocka_unit_test(test_classifier_and_call),
        cmocka_unit_test(test_listeners_full_cycle),
        cmocka_unit_test(test_listener_limit),
        cmocka_unit_test(test_listener_reentrant),
        cmocka_unit_test(test_listener_not_called_after_remove),
        cmocka_unit_test(test_snapshot_fields),
        cmocka_unit_test(test_hot_path_reads_no_clock),
        cmocka_unit_test(test_opts_defaults),
        cmocka_unit_test(test_opts_rejects_bad_values),
        cmocka_unit_test(test_new_bad_name),
        cmocka_unit_test(test_state_dir_empty_is_local),
        cmocka_unit_test(test_env_good_values),
        cmocka_unit_test(test_env_bad_values),
        cmocka_unit_test(test_registry_same_pointer),
        cmocka_unit_test(test_registry_concurrent),
        cmocka_unit_test(test_with_circuit_breaker),
        cmocka_unit_test(test_call_ex_time_until_half_open),
        cmocka_unit_test(test_threads_half_open_limit),
        cmocka_unit_test(test_threads_closed_totals),
        cmocka_unit_test(test_retry_with_breaker_wait),
        cmocka_unit_test(test_retry_with_breaker_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
