/* The log callback: the library's messages reach it, NULL restores the
 * default (which writes "resil: <message>" to fd 2), it is safe to change
 * while other threads log, and a message logged from inside the callback
 * does not deadlock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal/log.h"
#include "resil/breaker.h"
#include "resil/common.h"
#include "resil/metrics.h"

struct seen {
    int n;
    int level;
    char last[256];
};

static void collect(int level, const char *message, void *arg)
{
    struct seen *s = arg;
    s->n++;
    s->level = level;
    snprintf(s->last, sizeof s->last, "%s", message);
}

/* Runs resil__log(level, msg) with fd 2 redirected to a file, and returns
 * what reached fd 2 (static buffer). */
static const char *stderr_of(int level, const char *msg)
{
    static char buf[2048];
    char path[] = "/tmp/resil_test_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    resil__log(level, "%s", msg);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    assert_true(n >= 0);
    buf[n] = 0;
    close(fd);
    return buf;
}

static void test_default_writes_stderr(void **state)
{
    (void)state;
    assert_string_equal(stderr_of(RESIL_LOG_WARN, "bad value, using 5"), "resil: bad value, using 5\n");
    assert_string_equal(stderr_of(RESIL_LOG_ERROR, "x"), "resil: x\n");
    assert_string_equal(stderr_of(RESIL_LOG_INFO, "quiet"), "");
    assert_string_equal(stderr_of(RESIL_LOG_DEBUG, "quiet"), "");
}

static void test_callback_then_null_restores_default(void **state)
{
    (void)state;
    struct seen s = {0};
    resil_set_log(collect, &s);
    assert_string_equal(stderr_of(RESIL_LOG_WARN, "to the callback"), "");
    assert_int_equal(s.n, 1);
    assert_int_equal(s.level, RESIL_LOG_WARN);
    assert_string_equal(s.last, "to the callback");
    resil__log(RESIL_LOG_DEBUG, "n=%d", 42); /* the callback sees every level */
    assert_int_equal(s.n, 2);
    assert_int_equal(s.level, RESIL_LOG_DEBUG);
    assert_string_equal(s.last, "n=42");

    resil_set_log(NULL, &s);
    assert_string_equal(stderr_of(RESIL_LOG_WARN, "back to stderr"), "resil: back to stderr\n");
    assert_int_equal(s.n, 2);
}

static void test_long_message_truncated(void **state)
{
    (void)state;
    char big[3000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    const char *out = stderr_of(RESIL_LOG_WARN, big);
    size_t len = strlen(out);
    assert_true(len > 1000 && len < 1100);
    assert_memory_equal(out, "resil: aaa", 10);
    assert_int_equal(out[len - 1], '\n');
}

/* A callback that logs again: the inner message goes to the default. */
static void reentrant(int level, const char *message, void *arg)
{
    (void)level;
    struct seen *s = arg;
    s->n++;
    if (strcmp(message, "outer") == 0)
        resil__log(RESIL_LOG_INFO, "inner (dropped by the default)");
}

static void test_reentrant_callback(void **state)
{
    (void)state;
    struct seen s = {0};
    resil_set_log(reentrant, &s);
    resil__log(RESIL_LOG_WARN, "outer");
    assert_int_equal(s.n, 1);
    resil_set_log(NULL, NULL);
}

static atomic_int counts[2];
static atomic_bool stop;

static void count0(int level, const char *m, void *arg)
{
    (void)level, (void)m;
    atomic_fetch_add(&counts[0], 1);
    assert_ptr_equal(arg, &counts[0]); /* fn and arg always change together */
}

static void count1(int level, const char *m, void *arg)
{
    (void)level, (void)m;
    atomic_fetch_add(&counts[1], 1);
    assert_ptr_equal(arg, &counts[1]);
}

static void *logger(void *p)
{
    (void)p;
    while (!atomic_load(&stop))
        resil__log(RESIL_LOG_DEBUG, "tick");
    return NULL;
}

static void test_set_while_logging(void **state)
{
    (void)state;
    pthread_t t[3];
    resil_set_log(count0, &counts[0]);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, logger, NULL), 0);
    for (int i = 0; i < 2000; i++) {
        if (i % 2)
            resil_set_log(count0, &counts[0]);
        else
            resil_set_log(count1, &counts[1]);
    }
    /* After it returns, the old callback never runs again. */
    resil_set_log(count0, &counts[0]);
    int before = atomic_load(&counts[1]);
    for (int i = 0; i < 1000; i++)
        sched_yield();
    assert_int_equal(atomic_load(&counts[1]), before);
    atomic_store(&stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    assert_true(atomic_load(&counts[0]) > 0);
    resil_set_log(NULL, NULL);
}

struct all_seen {
    int n;
    char text[4096];
};

static void collect_all(int level, const char *message, void *arg)
{
    struct all_seen *s = arg;
    s->n++;
    size_t len = strlen(s->text);
    snprintf(s->text + len, sizeof s->text - len, "%d:%s\n", level, message);
}

/* The library's own messages (a bad environment value and the default used
 * instead) reach the callback, not stderr. */
static void test_library_messages_reach_the_callback(void **state)
{
    (void)state;
    setenv("CIRCUIT_BREAKER_DEFAULT_THRESHOLD", "abc", 1);
    setenv("RESIL_METRICS_MAX_ENTRIES", "-5", 1);
    struct all_seen s = {0};
    resil_set_log(collect_all, &s);
    char path[] = "/tmp/resil_test_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int saved = dup(2);
    dup2(fd, 2);
    resil_breaker *b = NULL;
    int rc = resil_breaker_new(&b, "log-test", NULL, NULL);
    (void)resil_metrics_enabled();
    dup2(saved, 2);
    close(saved);
    char out[256];
    ssize_t n = pread(fd, out, sizeof out - 1, 0);
    close(fd);
    resil_set_log(NULL, NULL);
    unsetenv("CIRCUIT_BREAKER_DEFAULT_THRESHOLD");
    unsetenv("RESIL_METRICS_MAX_ENTRIES");
    assert_int_equal(rc, 0);
    resil_breaker_free(b);
    assert_int_equal(n, 0); /* nothing on stderr */
    assert_non_null(strstr(s.text, "1:")); /* RESIL_LOG_WARN */
    assert_non_null(strstr(s.text, "CIRCUIT_BREAKER_DEFAULT_THRESHOLD"));
    assert_non_null(strstr(s.text, "RESIL_METRICS_MAX_ENTRIES"));
    assert_null(strchr(s.text, '\r'));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_library_messages_reach_the_callback),
        cmocka_unit_test(test_default_writes_stderr),
        cmocka_unit_test(test_callback_then_null_restores_default),
        cmocka_unit_test(test_long_message_truncated),
        cmocka_unit_test(test_reentrant_callback),
        cmocka_unit_test(test_set_while_logging),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
