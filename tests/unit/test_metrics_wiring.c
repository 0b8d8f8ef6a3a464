/* tests/unit/test_metrics_wiring.c - resil's own modules record their
 * metrics into the default registry: retries, circuit breakers and files.
 * Runs in its own process, so the default registry starts empty. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resil/resil.h"

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

int main(void)
{
    unsetenv("RESIL_METRICS_ENABLED");
    unsetenv("RESIL_STATE_DIR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry),
        cmocka_unit_test(test_breaker),
        cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
