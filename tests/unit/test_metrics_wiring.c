/* tests/unit/test_metrics_wiring.c - resil's own modules record their
 * metrics into the default registry: retries, circuit breakers and files;
 * and the registry's collectors, through which the breakers' state gauges
 * follow states changed by time and by other processes.
 * Runs in its own process, so the default registry starts empty. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "resil/resil.h"

#include "counting_clock.h"

#define S_NS 1000000000LL

/* The exported text must hold this exact sample line. */
static void expect_line(const char *line)
{
    char *text;
    assert_int_equal(resil_metrics_export(&text, NULL, resil_metrics_default(),
                                          RESIL_METRICS_PROMETHEUS),
                     0);
    char want[512];
    snprintf(want, sizeof want, "\n%s\n", line);
    if (!strstr(text, want))
        fail_msg("missing line '%s' in:\n%s", line, text);
    free(text);
}

/* The exported text of the default registry must not hold this string. */
static void expect_absent(const char *what)
{
    char *text;
    assert_int_equal(resil_metrics_export(&text, NULL, resil_metrics_default(),
                                          RESIL_METRICS_PROMETHEUS),
                     0);
    if (strstr(text, what))
        fail_msg("'%s' should not be in:\n%s", what, text);
    free(text);
}

static int fails_left;
static resil_outcome flaky(resil_retry_call *call, void *arg)
{
    (void)call;
    (void)arg;
    return fails_left-- > 0 ? RESIL_OUTCOME_TRANSIENT : RESIL_OUTCOME_SUCCESS;
}

static resil_outcome always_fails(resil_retry_call *call, void *arg)
{
    (void)call;
    (void)arg;
    return RESIL_OUTCOME_TRANSIENT;
}

static void test_retry(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 0, 0);
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.clock = &fc.clock;
    resil_retry_config cfg = RESIL_RETRY_AGGRESSIVE;
    cfg.max_retries = 2;
    for (int i = 0; i < 3; i++) /* the inline fast path */
        assert_int_equal(resil_retry(flaky, NULL, "wired", &cfg, &o, NULL), 0);
    fails_left = 2;
    assert_int_equal(resil_retry(flaky, NULL, "wired", &cfg, &o, NULL), 0);
    assert_int_equal(resil_retry(always_fails, NULL, "wired", &cfg, &o, NULL), RESIL_EEXHAUSTED);
    expect_line("resil_retry_calls_total{name=\"wired\",kind=\"successful_without_retry\"} 3");
    expect_line("resil_retry_calls_total{name=\"wired\",kind=\"successful_with_retry\"} 1");
    expect_line("resil_retry_calls_total{name=\"wired\",kind=\"failed_with_retry\"} 1");
    expect_line("resil_retry_attempts_total{name=\"wired\",result=\"success\"} 4");
    expect_line("resil_retry_attempts_total{name=\"wired\",result=\"failure\"} 5");
}

/* The inline fast path counts a name through a per-thread cache of the
 * last one (a pointer and the bytes it pointed to): a buffer reused for
 * another name, names taking turns, names too long to keep, and a thread
 * that counted and then exits (its block given back) all count exactly. */
/* (A config: with NULL, resil_retry takes its slow path.) */
static const resil_retry_config fp_cfg = RESIL_RETRY_TRANSIENT;

static void *retry_in_thread(void *arg)
{
    for (int i = 0; i < 5; i++)
        resil_retry(flaky, NULL, (const char *)arg, &fp_cfg, NULL, NULL);
    return NULL;
}

static void test_retry_fast_path_names(void **state)
{
    (void)state;
    fails_left = 0;
    char buf[64];
    for (int i = 0; i < 6; i++) {
        /* one buffer, three names in turn: fp-0 fp-1 fp-2 fp-0 ... */
        snprintf(buf, sizeof buf, "fp-%d", i % 3);
        for (int k = 0; k < 10; k++)
            assert_int_equal(resil_retry(flaky, NULL, buf, &fp_cfg, NULL, NULL), 0);
    }
    /* same length, same start, last byte differs */
    strcpy(buf, "fp-x");
    assert_int_equal(resil_retry(flaky, NULL, buf, &fp_cfg, NULL, NULL), 0);
    buf[3] = 'y';
    assert_int_equal(resil_retry(flaky, NULL, buf, &fp_cfg, NULL, NULL), 0);
    /* a longer and then a shorter name in the same buffer */
    strcpy(buf, "fp-0-and-more");
    assert_int_equal(resil_retry(flaky, NULL, buf, &fp_cfg, NULL, NULL), 0);
    strcpy(buf, "fp");
    assert_int_equal(resil_retry(flaky, NULL, buf, &fp_cfg, NULL, NULL), 0);
    /* a name longer than the cache keeps (60 bytes) */
    char longname[61];
    memset(longname, 'L', 60);
    longname[60] = 0;
    for (int k = 0; k < 7; k++)
        assert_int_equal(resil_retry(flaky, NULL, longname, &fp_cfg, NULL, NULL), 0);
    /* threads that count and exit, in turn, with the same literal */
    for (int t = 0; t < 4; t++) {
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, retry_in_thread, (void *)"fp-thread"), 0);
        pthread_join(th, NULL);
    }
    expect_line("resil_retry_calls_total{name=\"fp-0\",kind=\"successful_without_retry\"} 20");
    expect_line("resil_retry_calls_total{name=\"fp-1\",kind=\"successful_without_retry\"} 20");
    expect_line("resil_retry_calls_total{name=\"fp-2\",kind=\"successful_without_retry\"} 20");
    expect_line("resil_retry_calls_total{name=\"fp-x\",kind=\"successful_without_retry\"} 1");
    expect_line("resil_retry_calls_total{name=\"fp-y\",kind=\"successful_without_retry\"} 1");
    expect_line(
        "resil_retry_calls_total{name=\"fp-0-and-more\",kind=\"successful_without_retry\"} 1");
    expect_line("resil_retry_calls_total{name=\"fp\",kind=\"successful_without_retry\"} 1");
    char line[200];
    snprintf(line, sizeof line,
             "resil_retry_calls_total{name=\"%s\",kind=\"successful_without_retry\"} 7",
             longname);
    expect_line(line);
    expect_line("resil_retry_calls_total{name=\"fp-thread\",kind=\"successful_without_retry\"} 20");
    expect_line("resil_retry_attempts_total{name=\"fp-thread\",result=\"success\"} 20");
}

/* Names whose bytes the compiler knows (string literals, a const array)
 * take the inline path's compare against constants; they count exactly
 * too, taking turns with each other and with a buffer holding the same
 * bytes (another pointer: the same series). */
static const char lit_c[] = "lit-c";

static void test_retry_fast_path_literals(void **state)
{
    (void)state;
    fails_left = 0;
    for (int k = 0; k < 3; k++)
        assert_int_equal(resil_retry(flaky, NULL, "lit-a", &fp_cfg, NULL, NULL), 0);
    for (int k = 0; k < 2; k++)
        assert_int_equal(resil_retry(flaky, NULL, "lit-b", &fp_cfg, NULL, NULL), 0);
    for (int k = 0; k < 4; k++)
        assert_int_equal(resil_retry(flaky, NULL, "lit-a", &fp_cfg, NULL, NULL), 0);
    for (int k = 0; k < 5; k++)
        assert_int_equal(resil_retry(flaky, NULL, lit_c, &fp_cfg, NULL, NULL), 0);
    char buf[16];
    strcpy(buf, "lit-a");
    for (int k = 0; k < 2; k++)
        assert_int_equal(resil_retry(flaky, NULL, buf, &fp_cfg, NULL, NULL), 0);
    for (int k = 0; k < 6; k++) /* a name the cache cannot keep (47 bytes and more) */
        assert_int_equal(resil_retry(flaky, NULL,
                                     "lit-0123456789012345678901234567890123456789012345", &fp_cfg,
                                     NULL, NULL),
                         0);
    expect_line("resil_retry_calls_total{name=\"lit-a\",kind=\"successful_without_retry\"} 9");
    expect_line("resil_retry_calls_total{name=\"lit-b\",kind=\"successful_without_retry\"} 2");
    expect_line("resil_retry_calls_total{name=\"lit-c\",kind=\"successful_without_retry\"} 5");
    expect_line("resil_retry_calls_total{name=\"lit-0123456789012345678901234567890123456789012345\","
                "kind=\"successful_without_retry\"} 6");
    expect_line("resil_retry_attempts_total{name=\"lit-a\",result=\"success\"} 9");
}

/* A budget on the inline path: a full bucket is left alone without a call,
 * one that is not full gains token_ratio per success, as the library's own
 * resil_retry_budget_on_success would do. */
static void test_retry_fast_path_budget(void **state)
{
    (void)state;
    fails_left = 0;
    resil_retry_budget *b;
    assert_int_equal(resil_retry_budget_new(&b, 10, 0.5, NULL), 0);
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.budget = b;
    assert_int_equal(resil_retry(flaky, NULL, "budgeted", &fp_cfg, &o, NULL), 0);
    assert_true(resil_retry_budget_tokens(b) == 10.0);
    for (int i = 0; i < 3; i++)
        resil_retry_budget_on_failure(b);
    assert_true(resil_retry_budget_tokens(b) == 7.0);
    assert_int_equal(resil_retry(flaky, NULL, "budgeted", &fp_cfg, &o, NULL), 0);
    assert_true(resil_retry_budget_tokens(b) == 7.5);
    for (int i = 0; i < 10; i++)
        assert_int_equal(resil_retry(flaky, NULL, "budgeted", &fp_cfg, &o, NULL), 0);
    assert_true(resil_retry_budget_tokens(b) == 10.0); /* capped */
    resil_retry_budget_free(b);
}

static int ok_op(void *arg)
{
    (void)arg;
    return 0;
}

static int bad_op(void *arg)
{
    (void)arg;
    return -1;
}

static void test_breaker(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 0, 0);
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    o.state_dir = "";
    o.clock = &fc.clock;
    o.failure_threshold = 2;
    o.recovery_timeout_s = 10;
    resil_breaker *b;
    assert_int_equal(resil_breaker_new(&b, "wired_cb", &o, NULL), 0);
    expect_line("resil_circuitbreaker_state{name=\"wired_cb\",state=\"closed\"} 1");
    assert_int_equal(resil_breaker_call(b, ok_op, NULL), 0);
    assert_int_equal(resil_breaker_call(b, bad_op, NULL), -1);
    assert_int_equal(resil_breaker_call(b, bad_op, NULL), -1);
    assert_int_equal(resil_breaker_call(b, ok_op, NULL), RESIL_ECIRCUIT_OPEN);
    expect_line("resil_circuitbreaker_calls_total{name=\"wired_cb\",kind=\"successful\"} 1");
    expect_line("resil_circuitbreaker_calls_total{name=\"wired_cb\",kind=\"failed\"} 2");
    expect_line("resil_circuitbreaker_calls_total{name=\"wired_cb\",kind=\"not_permitted\"} 1");
    expect_line("resil_circuitbreaker_state{name=\"wired_cb\",state=\"open\"} 1");
    expect_line("resil_circuitbreaker_state{name=\"wired_cb\",state=\"closed\"} 0");
    expect_line("resil_circuitbreaker_transitions_total{name=\"wired_cb\",from=\"closed\",to=\"open\"} 1");
    resil_breaker_free(b);
}

static void test_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/resil-wiring-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], log[256];
    snprintf(path, sizeof path, "%s/state.json", dir);
    snprintf(log, sizeof log, "%s/events.ndjson", dir);
    assert_int_equal(resil_write_file_atomic(path, "{}", 2, NULL, NULL), 0);
    assert_int_equal(resil_write_file_atomic(path, "{}", 2, NULL, NULL), 0);
    json_t *rec = json_pack("{s:i}", "n", 1);
    assert_int_equal(resil_append_ndjson_safe(log, rec, NULL, NULL), 0);
    json_decref(rec);
    expect_line("resil_file_operations_total{op=\"write_atomic\",result=\"ok\"} 2");
    expect_line("resil_file_operations_total{op=\"append\",result=\"ok\"} 1");
    expect_line("resil_file_operation_duration_seconds_count{op=\"write_atomic\"} 2");
    expect_line("resil_file_lock_wait_seconds_count{mode=\"exclusive\"} 3");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* The file metrics resolve their handles once and keep them: they keep
 * counting over many operations, and in a forked child (which inherits the
 * handles with the registry) a child's operations count into the child's
 * copy only. */
static long export_value(const char *series)
{
    char *text;
    assert_int_equal(resil_metrics_export(&text, NULL, resil_metrics_default(),
                                          RESIL_METRICS_PROMETHEUS),
                     0);
    char want[300];
    snprintf(want, sizeof want, "\n%s ", series);
    const char *p = strstr(text, want);
    long v = p ? strtol(p + strlen(want), NULL, 10) : -1;
    free(text);
    return v;
}

static void test_files_handles_kept(void **state)
{
    (void)state;
    char dir[] = "/tmp/resil-wiring-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/state.json", dir);
    const char *series = "resil_file_operations_total{op=\"write_atomic\",result=\"ok\"}";
    const char *waits = "resil_file_lock_wait_seconds_count{mode=\"exclusive\"}";
    assert_int_equal(resil_write_file_atomic(path, "{}", 2, NULL, NULL), 0);
    long before = export_value(series), waits_before = export_value(waits);
    assert_true(before >= 1);
    for (int i = 0; i < 50; i++)
        assert_int_equal(resil_write_file_atomic(path, "{}", 2, NULL, NULL), 0);
    assert_int_equal(export_value(series), before + 50);
    assert_int_equal(export_value(waits), waits_before + 50);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int ok = resil_write_file_atomic(path, "{}", 2, NULL, NULL) == 0 &&
                 export_value(series) == before + 51 && export_value(waits) == waits_before + 51;
        _exit(ok ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(export_value(series), before + 50);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- retry attempt durations ------------------------------------------------------ */

/* An op whose attempts take durations[k] seconds of fake time each, the
 * last one succeeding. */
struct timed_op {
    resil_fake_clock *fc;
    const double *durations;
    int n, calls;
};

static resil_outcome timed_fn(resil_retry_call *call, void *arg)
{
    (void)call;
    struct timed_op *t = arg;
    resil_fake_clock_advance(t->fc, (int64_t)(t->durations[t->calls] * 1e9));
    return ++t->calls < t->n ? RESIL_OUTCOME_TRANSIENT : RESIL_OUTCOME_SUCCESS;
}

/* The attempt-duration histogram of a retry name. */
static resil_histogram *attempt_hist(const char *name)
{
    static const char *const l1[] = {"name"};
    resil_metric *m;
    resil_histogram *h;
    assert_int_equal(resil_metrics_histogram_new(&m, resil_metrics_default(),
                                                 "resil_retry_attempt_duration_seconds",
                                                 "How long attempts took.", l1, 1, NULL, 0, NULL),
                     0);
    assert_int_equal(resil_histogram_get(&h, m, (const char *const[]){name}), 0);
    return h;
}

/* The after_attempt hook sees the attempt it follows already observed (a
 * hook that flushes metrics carries it). */
static void hook_sees_observed(const resil_attempt_info *info, void *arg)
{
    int *bad = arg;
    if (resil_histogram_count(attempt_hist(info->name)) != (uint64_t)info->attempt)
        (*bad)++;
}

static void test_retry_attempt_durations_timed(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 0, 0);
    resil_retry_config cfg = RESIL_RETRY_AGGRESSIVE;
    cfg.jitter = false;
    static const double d3[] = {0.25, 0.5, 0.125};

    /* measure_time: every attempt is observed, sleeps are not part of it */
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.clock = &fc.clock;
    o.measure_time = true;
    int bad = 0;
    o.after_attempt = hook_sees_observed;
    o.hook_arg = &bad;
    struct timed_op t = {&fc, d3, 3, 0};
    resil_retry_result res;
    assert_int_equal(resil_retry(timed_fn, &t, "timed", &cfg, &o, &res), 0);
    assert_int_equal(res.attempts, 3);
    assert_int_equal(bad, 0);
    expect_line("resil_retry_attempt_duration_seconds_count{name=\"timed\"} 3");
    expect_line("resil_retry_attempt_duration_seconds_sum{name=\"timed\"} 0.875");
    expect_line("resil_retry_attempt_duration_seconds_bucket{name=\"timed\",le=\"0.1\"} 0");
    expect_line("resil_retry_attempt_duration_seconds_bucket{name=\"timed\",le=\"0.25\"} 2");
    expect_line("resil_retry_attempt_duration_seconds_bucket{name=\"timed\",le=\"0.5\"} 3");

    /* a deadline and measure_time: timed the same; a deadline alone does
     * not time attempts (a clock read per attempt is measure_time's cost) */
    resil_retry_opts od = RESIL_RETRY_OPTS_INIT;
    od.clock = &fc.clock;
    resil_retry_config cd = cfg;
    cd.max_elapsed_s = 100;
    static const double d2[] = {2.0, 0.5};
    struct timed_op t2 = {&fc, d2, 2, 0};
    assert_int_equal(resil_retry(timed_fn, &t2, "deadline_only", &cd, &od, NULL), 0);
    expect_absent("resil_retry_attempt_duration_seconds_count{name=\"deadline_only\"}");
    od.measure_time = true;
    t2 = (struct timed_op){&fc, d2, 2, 0};
    assert_int_equal(resil_retry(timed_fn, &t2, "timed_deadline", &cd, &od, NULL), 0);
    expect_line("resil_retry_attempt_duration_seconds_count{name=\"timed_deadline\"} 2");
    expect_line("resil_retry_attempt_duration_seconds_sum{name=\"timed_deadline\"} 2.5");

    /* resil_record_retry_attempt feeds the same family and series */
    assert_int_equal(resil_record_retry_attempt("timed", 4, true, 0.125), 0);
    expect_line("resil_retry_attempt_duration_seconds_count{name=\"timed\"} 4");
    expect_line("resil_retry_attempt_duration_seconds_sum{name=\"timed\"} 1");
}

static void test_retry_attempt_durations_untimed(void **state)
{
    (void)state;
    struct counting_clock cc;
    counting_clock_init(&cc);
    resil_retry_config cfg = RESIL_RETRY_AGGRESSIVE;
    cfg.jitter = false;
    static const double d[] = {0.25, 0.5, 0.125};
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.clock = &cc.clock;
    /* the inline fast path (first attempt succeeds) ... */
    struct timed_op t1 = {&cc.fake, d, 1, 0};
    assert_int_equal(resil_retry(timed_fn, &t1, "untimed", &cfg, &o, NULL), 0);
    /* ... the slow path entered after a failed first attempt ... */
    struct timed_op t2 = {&cc.fake, d, 3, 0};
    assert_int_equal(resil_retry(timed_fn, &t2, "untimed", &cfg, &o, NULL), 0);
    /* ... and from the start (a cancel token) */
    resil_cancel *tok;
    assert_int_equal(resil_cancel_new(&tok), 0);
    o.cancel = tok;
    struct timed_op t3 = {&cc.fake, d, 2, 0};
    assert_int_equal(resil_retry(timed_fn, &t3, "untimed", &cfg, &o, NULL), 0);
    resil_cancel_free(tok);
    /* no deadline, no measure_time: no clock read, no duration */
    assert_int_equal(atomic_load(&cc.reads), 0);
    expect_line("resil_retry_calls_total{name=\"untimed\",kind=\"successful_with_retry\"} 2");
    expect_absent("resil_retry_attempt_duration_seconds_count{name=\"untimed\"}");
}

/* ---- breaker call durations ------------------------------------------------------- */

static void test_breaker_call_durations_given(void **state)
{
    (void)state;
    struct counting_clock cc;
    counting_clock_init(&cc);
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    o.state_dir = "";
    o.clock = &cc.clock;
    o.failure_threshold = 5;
    o.recovery_timeout_s = 10;
    resil_breaker *b;
    assert_int_equal(resil_breaker_new(&b, "dur_cb", &o, NULL), 0);
    atomic_store(&cc.reads, 0);
    resil_breaker_permit p;
    /* the closed fast path without a duration: nothing observed, no clock */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(resil_breaker_acquire(b, &p, NULL), 0);
        assert_int_equal(resil_breaker_report(b, &p, 0, -1), 0);
        assert_int_equal(resil_breaker_call(b, ok_op, NULL), 0);
    }
    assert_int_equal(atomic_load(&cc.reads), 0);
    expect_line("resil_circuitbreaker_call_duration_seconds_count{name=\"dur_cb\",kind=\"successful\"} 0");
    /* durations given to report / record are observed by kind */
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), 0);
    assert_int_equal(resil_breaker_report(b, &p, 0, 0.25), 0);
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), 0);
    assert_int_equal(resil_breaker_report(b, &p, -1, 0.5), 0);
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), 0);
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_IGNORE, 0.125), 0);
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), 0);
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_SUCCESS, 0), 0);
    /* a spent permit counts nothing, duration included */
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_SUCCESS, 7), 0);
    assert_int_equal(atomic_load(&cc.reads), 0);
    expect_line("resil_circuitbreaker_call_duration_seconds_count{name=\"dur_cb\",kind=\"successful\"} 2");
    expect_line("resil_circuitbreaker_call_duration_seconds_sum{name=\"dur_cb\",kind=\"successful\"} 0.25");
    expect_line("resil_circuitbreaker_call_duration_seconds_count{name=\"dur_cb\",kind=\"failed\"} 1");
    expect_line("resil_circuitbreaker_call_duration_seconds_sum{name=\"dur_cb\",kind=\"failed\"} 0.5");
    expect_line("resil_circuitbreaker_call_duration_seconds_count{name=\"dur_cb\",kind=\"ignored\"} 1");
    expect_line("resil_circuitbreaker_call_duration_seconds_bucket{name=\"dur_cb\",kind=\"ignored\",le=\"0.1\"} 0");
    expect_line("resil_circuitbreaker_call_duration_seconds_bucket{name=\"dur_cb\",kind=\"ignored\",le=\"0.25\"} 1");
    resil_breaker_free(b);
}

static int advance_op_s; /* milliseconds of fake time the op takes */
static resil_fake_clock *advance_fc;
static int advancing_op(void *arg)
{
    (void)arg;
    resil_fake_clock_advance(advance_fc, (int64_t)advance_op_s * 1000000);
    return 0;
}

static void test_breaker_call_durations_measured(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 0, 0);
    advance_fc = &fc;
    /* a slow-call rule: the breaker measures every call itself */
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    o.state_dir = "";
    o.clock = &fc.clock;
    o.failure_threshold = 5;
    o.recovery_timeout_s = 10;
    o.window_size = 10;
    o.slow_call_duration_s = 1.0;
    resil_breaker *b;
    assert_int_equal(resil_breaker_new(&b, "dur_slow", &o, NULL), 0);
    resil_breaker_permit p;
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), 0);
    resil_fake_clock_advance(&fc, 2 * S_NS);
    assert_int_equal(resil_breaker_report(b, &p, 0, -1), 0);
    advance_op_s = 500;
    assert_int_equal(resil_breaker_call(b, advancing_op, NULL), 0);
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), 0);
    resil_fake_clock_advance(&fc, S_NS / 4);
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, -1), 0);
    /* a given duration wins over the measured one (and is observed once) */
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), 0);
    resil_fake_clock_advance(&fc, 3 * S_NS);
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, 0.125), 0);
    expect_line("resil_circuitbreaker_call_duration_seconds_count{name=\"dur_slow\",kind=\"successful\"} 2");
    expect_line("resil_circuitbreaker_call_duration_seconds_sum{name=\"dur_slow\",kind=\"successful\"} 2.5");
    expect_line("resil_circuitbreaker_call_duration_seconds_count{name=\"dur_slow\",kind=\"failed\"} 2");
    expect_line("resil_circuitbreaker_call_duration_seconds_sum{name=\"dur_slow\",kind=\"failed\"} 0.375");
    resil_breaker_free(b);

    /* without a slow-call rule, a half-open trial call is measured (its
     * lease reads the clock anyway); closed calls are not */
    o.window_size = 0;
    o.slow_call_duration_s = 0;
    o.failure_threshold = 1;
    assert_int_equal(resil_breaker_new(&b, "dur_trial", &o, NULL), 0);
    advance_op_s = 250;
    assert_int_equal(resil_breaker_call(b, advancing_op, NULL), 0);
    assert_int_equal(resil_breaker_call(b, bad_op, NULL), -1); /* trips */
    resil_fake_clock_advance(&fc, 10 * S_NS);
    assert_int_equal(resil_breaker_call(b, advancing_op, NULL), 0); /* the trial */
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_CLOSED);
    expect_line("resil_circuitbreaker_call_duration_seconds_count{name=\"dur_trial\",kind=\"successful\"} 1");
    expect_line("resil_circuitbreaker_call_duration_seconds_sum{name=\"dur_trial\",kind=\"successful\"} 0.25");
    expect_line("resil_circuitbreaker_call_duration_seconds_count{name=\"dur_trial\",kind=\"failed\"} 0");
    resil_breaker_free(b);
}

/* ---- collectors --------------------------------------------------------------------- */

struct coll {
    resil_gauge *g;
    int runs;
    char *order; /* appends its tag when it runs */
    char tag;
};

static void bump(resil_metrics_registry *r, void *arg)
{
    (void)r;
    struct coll *c = arg;
    c->runs++;
    resil_gauge_set(c->g, c->runs);
    if (c->order)
        strncat(c->order, &c->tag, 1);
}

/* Exports r from inside a collector: must not run the collectors again. */
static void reentrant(resil_metrics_registry *r, void *arg)
{
    struct coll *c = arg;
    c->runs++;
    char *text;
    if (resil_metrics_export(&text, NULL, r, RESIL_METRICS_PROMETHEUS) == 0)
        free(text);
}

static void self_removing(resil_metrics_registry *r, void *arg)
{
    struct coll *c = arg;
    c->runs++;
    if (resil_metrics_remove_collector(r, self_removing, arg) != 0)
        c->runs = -1000;
}

static void noop_collector(resil_metrics_registry *r, void *arg)
{
    (void)r;
    (void)arg;
}

static bool has(const char *text, const char *what)
{
    return strstr(text, what) != NULL;
}

static char *export_of(resil_metrics_registry *r)
{
    char *text;
    assert_int_equal(resil_metrics_export(&text, NULL, r, RESIL_METRICS_PROMETHEUS), 0);
    return text;
}

static void test_collectors(void **state)
{
    (void)state;
    resil_metrics_registry *r;
    assert_int_equal(resil_metrics_registry_new(&r, NULL, NULL), 0);
    resil_metric *m;
    assert_int_equal(resil_metrics_gauge_new(&m, r, "collected", "Set by a collector.", NULL, 0,
                                             NULL),
                     0);
    char order[64] = "";
    struct coll a = {NULL, 0, order, 'a'};
    assert_int_equal(resil_gauge_get(&a.g, m, NULL), 0);

    assert_int_equal(resil_metrics_add_collector(NULL, bump, &a), RESIL_EINVAL);
    assert_int_equal(resil_metrics_add_collector(r, NULL, &a), RESIL_EINVAL);
    assert_int_equal(resil_metrics_remove_collector(r, bump, &a), -ENOENT);
    assert_int_equal(resil_metrics_add_collector(r, bump, &a), 0);
    assert_int_equal(resil_metrics_add_collector(r, bump, &a), -EEXIST);

    /* runs before every export, and what it sets is what is exported */
    char *text = export_of(r);
    assert_int_equal(a.runs, 1);
    assert_true(has(text, "\ncollected 1\n"));
    free(text);
    json_t *doc = resil_metrics_to_json(r);
    assert_int_equal(a.runs, 2);
    char *js = json_dumps(doc, JSON_COMPACT);
    assert_true(has(js, "\"value\":2.0}"));
    free(js);
    json_decref(doc);
    assert_int_equal(resil_metrics_export(&text, NULL, r, RESIL_METRICS_JSON), 0);
    assert_int_equal(a.runs, 3); /* once, although JSON goes through to_json's work */
    free(text);
    char dir[] = "/tmp/resil-coll-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(resil_metrics_write_textfile(r, dir, "t", NULL), 0);
    assert_int_equal(a.runs, 4);
    char path[256];
    snprintf(path, sizeof path, "%s/t.prom", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    assert_true(has(buf, "\ncollected 4\n"));
    assert_int_equal(resil_metrics_flush_dir(r, dir, NULL), 0);
    assert_int_equal(a.runs, 5);
    resil_metrics_registry *loaded;
    assert_int_equal(resil_metrics_load_dir(&loaded, dir, NULL), 0);
    text = export_of(loaded); /* a registry without collectors */
    assert_true(has(text, "\ncollected 5\n"));
    free(text);
    resil_metrics_registry_free(loaded);
    assert_int_equal(a.runs, 5);

    /* collectors run in the order they were added; an export from inside
     * one does not run them again; one may remove itself */
    struct coll b = {a.g, 0, order, 'b'}, re = {NULL, 0, NULL, 0}, self = {NULL, 0, NULL, 0};
    assert_int_equal(resil_metrics_add_collector(r, reentrant, &re), 0);
    assert_int_equal(resil_metrics_add_collector(r, bump, &b), 0);
    assert_int_equal(resil_metrics_add_collector(r, self_removing, &self), 0);
    order[0] = 0;
    free(export_of(r));
    assert_string_equal(order, "ab");
    assert_int_equal(re.runs, 1);
    assert_int_equal(a.runs, 6);
    assert_int_equal(self.runs, 1);
    free(export_of(r));
    assert_int_equal(self.runs, 1); /* removed */
    assert_int_equal(resil_metrics_remove_collector(r, self_removing, &self), -ENOENT);

    /* removal: no more runs, the gauge keeps its last value */
    assert_int_equal(resil_metrics_remove_collector(r, bump, &a), 0);
    assert_int_equal(resil_metrics_remove_collector(r, bump, &a), -ENOENT);
    assert_int_equal(resil_metrics_remove_collector(r, bump, &b), 0);
    assert_int_equal(resil_metrics_remove_collector(r, reentrant, &re), 0);
    text = export_of(r);
    assert_int_equal(a.runs, 7);
    assert_int_equal(b.runs, 2);
    assert_true(has(text, "\ncollected 2\n")); /* b ran last */
    free(text);

    /* at most RESIL_METRICS_MAX_COLLECTORS; a slot freed is used again */
    int args[RESIL_METRICS_MAX_COLLECTORS + 1];
    for (int i = 0; i < RESIL_METRICS_MAX_COLLECTORS; i++)
        assert_int_equal(resil_metrics_add_collector(r, noop_collector, &args[i]), 0);
    assert_int_equal(resil_metrics_add_collector(r, noop_collector,
                                                 &args[RESIL_METRICS_MAX_COLLECTORS]),
                     -ENOSPC);
    assert_int_equal(resil_metrics_remove_collector(r, noop_collector, &args[3]), 0);
    assert_int_equal(resil_metrics_add_collector(r, noop_collector,
                                                 &args[RESIL_METRICS_MAX_COLLECTORS]),
                     0);
    resil_metrics_registry_free(r); /* drops them (ASan: no leak) */
    snprintf(buf, sizeof buf, "rm -rf '%s'", dir);
    assert_int_equal(system(buf), 0);
}

/* remove_collector waits for a run in progress on another thread. */
struct blocking {
    atomic_int entered, release, removing, removed, removed_while_running;
};

static void blocking_collector(resil_metrics_registry *r, void *arg)
{
    (void)r;
    struct blocking *k = arg;
    atomic_store(&k->entered, 1);
    while (!atomic_load(&k->release))
        sched_yield();
    /* give the remover every chance to return early (it must not) */
    for (int i = 0; i < 1000; i++)
        sched_yield();
    atomic_store(&k->removed_while_running, atomic_load(&k->removed));
}

struct exporter_arg {
    resil_metrics_registry *r;
};

static void *exporter(void *arg)
{
    struct exporter_arg *e = arg;
    char *text;
    if (resil_metrics_export(&text, NULL, e->r, RESIL_METRICS_PROMETHEUS) == 0)
        free(text);
    return NULL;
}

struct remover_arg {
    resil_metrics_registry *r;
    struct blocking *k;
};

static void *remover(void *arg)
{
    struct remover_arg *ra = arg;
    atomic_store(&ra->k->removing, 1);
    int rc = resil_metrics_remove_collector(ra->r, blocking_collector, ra->k);
    atomic_store(&ra->k->removed, rc == 0 ? 1 : -1);
    return NULL;
}

static void test_collector_remove_waits(void **state)
{
    (void)state;
    resil_metrics_registry *r;
    assert_int_equal(resil_metrics_registry_new(&r, NULL, NULL), 0);
    struct blocking k;
    atomic_init(&k.entered, 0);
    atomic_init(&k.release, 0);
    atomic_init(&k.removing, 0);
    atomic_init(&k.removed, 0);
    atomic_init(&k.removed_while_running, 0);
    assert_int_equal(resil_metrics_add_collector(r, blocking_collector, &k), 0);
    struct exporter_arg ea = {r};
    struct remover_arg ra = {r, &k};
    pthread_t te, tr;
    assert_int_equal(pthread_create(&te, NULL, exporter, &ea), 0);
    while (!atomic_load(&k.entered))
        sched_yield();
    assert_int_equal(pthread_create(&tr, NULL, remover, &ra), 0);
    while (!atomic_load(&k.removing))
        sched_yield();
    atomic_store(&k.release, 1);
    assert_int_equal(pthread_join(te, NULL), 0);
    assert_int_equal(pthread_join(tr, NULL), 0);
    assert_int_equal(atomic_load(&k.removed), 1);
    assert_int_equal(atomic_load(&k.removed_while_running), 0);
    resil_metrics_registry_free(r);
}

/* ---- the breakers' state gauges, at every export --------------------------------------- */

/* An OPEN breaker whose time is over reads HALF_OPEN: so does its gauge,
 * without a call. */
static void test_breaker_state_follows_time(void **state)
{
    (void)state;
    resil_fake_clock fc;
    resil_fake_clock_init(&fc, 1000 * S_NS, 0);
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    o.state_dir = "";
    o.clock = &fc.clock;
    o.failure_threshold = 1;
    o.recovery_timeout_s = 10;
    resil_breaker *b;
    assert_int_equal(resil_breaker_new(&b, "timed_cb", &o, NULL), 0);
    assert_int_equal(resil_breaker_call(b, bad_op, NULL), -1);
    expect_line("resil_circuitbreaker_state{name=\"timed_cb\",state=\"open\"} 1");
    expect_line("resil_circuitbreaker_state{name=\"timed_cb\",state=\"half_open\"} 0");
    resil_fake_clock_advance(&fc, 10 * S_NS);
    expect_line("resil_circuitbreaker_state{name=\"timed_cb\",state=\"open\"} 0");
    expect_line("resil_circuitbreaker_state{name=\"timed_cb\",state=\"half_open\"} 1");
    expect_absent("resil_circuitbreaker_transitions_total{name=\"timed_cb\",from=\"open\"");
    /* a freed breaker is no longer read (its gauges keep their last values) */
    resil_breaker_free(b);
    expect_line("resil_circuitbreaker_state{name=\"timed_cb\",state=\"half_open\"} 1");
}

/* A breaker shared through a state directory, tripped by another process:
 * this process's export shows it open without making any call. */
static void test_breaker_state_across_processes(void **state)
{
    (void)state;
    char dir[] = "/tmp/resil-wiring-cb-XXXXXX";
    assert_non_null(mkdtemp(dir));
    resil_fake_clock *fc = mmap(NULL, sizeof *fc, PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(fc != MAP_FAILED);
    resil_fake_clock_init(fc, 1000 * S_NS, 1700000000LL * S_NS);
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    o.state_dir = dir;
    o.clock = &fc->clock;
    o.failure_threshold = 2;
    o.recovery_timeout_s = 30;
    resil_breaker *a;
    assert_int_equal(resil_breaker_new(&a, "xproc_cb", &o, NULL), 0);
    expect_line("resil_circuitbreaker_state{name=\"xproc_cb\",state=\"closed\"} 1");

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        resil_breaker *b;
        if (resil_breaker_new(&b, "xproc_cb", &o, NULL) != 0)
            _exit(2);
        resil_breaker_call(b, bad_op, NULL);
        resil_breaker_call(b, bad_op, NULL);
        int ok = resil_breaker_get_state(b) == RESIL_BREAKER_OPEN;
        resil_breaker_free(b);
        _exit(ok ? 0 : 3);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);

    /* no call through a: the collector read the shared state */
    expect_line("resil_circuitbreaker_state{name=\"xproc_cb\",state=\"open\"} 1");
    expect_line("resil_circuitbreaker_state{name=\"xproc_cb\",state=\"closed\"} 0");
    expect_absent("resil_circuitbreaker_transitions_total{name=\"xproc_cb\"");
    resil_breaker_snapshot s;
    assert_int_equal(resil_breaker_snapshot_get(a, &s), 0);
    assert_int_equal(s.state, RESIL_BREAKER_OPEN);
    assert_int_equal(s.successful + s.failed, 2); /* the child's calls */

    /* the shared time runs out: half-open, again without a call */
    resil_fake_clock_advance(fc, 30 * S_NS);
    expect_line("resil_circuitbreaker_state{name=\"xproc_cb\",state=\"half_open\"} 1");
    expect_line("resil_circuitbreaker_state{name=\"xproc_cb\",state=\"open\"} 0");
    /* the JSON export and a flush run the collector too */
    assert_int_equal(resil_breaker_reset_file(dir, "xproc_cb", NULL), 0);
    assert_int_equal(resil_breaker_get_state(a), RESIL_BREAKER_CLOSED);
    json_t *doc = resil_metrics_to_json(resil_metrics_default());
    char *js = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!strstr(js, "{\"labels\":{\"name\":\"xproc_cb\",\"state\":\"closed\"},\"value\":1.0}"))
        fail_msg("closed is not 1 in %s", js);
    free(js);

    resil_breaker_free(a);
    munmap(fc, sizeof *fc);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    unsetenv("RESIL_METRICS_ENABLED");
    unsetenv("RESIL_STATE_DIR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry),
        cmocka_unit_test(test_retry_fast_path_names),
        cmocka_unit_test(test_retry_fast_path_literals),
        cmocka_unit_test(test_retry_fast_path_budget),
        cmocka_unit_test(test_breaker),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_files_handles_kept),
        cmocka_unit_test(test_retry_attempt_durations_timed),
        cmocka_unit_test(test_retry_attempt_durations_untimed),
        cmocka_unit_test(test_breaker_call_durations_given),
        cmocka_unit_test(test_breaker_call_durations_measured),
        cmocka_unit_test(test_collectors),
        cmocka_unit_test(test_collector_remove_waits),
        cmocka_unit_test(test_breaker_state_follows_time),
        cmocka_unit_test(test_breaker_state_across_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
