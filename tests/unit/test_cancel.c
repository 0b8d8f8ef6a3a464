/* Cancellation tokens: real-time wake-ups (these tests are about real time,
 * so they use the real clock, with generous bounds for a noisy machine). */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal/sys.h"
#include "resil/cancel.h"
#include "resil/clock.h"

#define MS 1000000LL

static int64_t now_ns(void)
{
    return resil_clock_monotonic_ns(NULL);
}

static void test_basic(void **state)
{
    (void)state;
    resil_cancel *c;
    assert_int_equal(resil_cancel_new(&c), 0);
    assert_false(resil_cancel_is_cancelled(c));
    assert_true(resil_cancel_fd(c) >= 0);
    struct pollfd p = {.fd = resil_cancel_fd(c), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 0);

    /* A short wait that is not cancelled returns 0 after the time. */
    int64_t t0 = now_ns();
    assert_int_equal(resil_cancel_wait(c, 5 * MS), 0);
    assert_true(now_ns() - t0 >= 5 * MS);

    resil_cancel_cancel(c);
    resil_cancel_cancel(c); /* idempotent */
    assert_true(resil_cancel_is_cancelled(c));
    assert_int_equal(poll(&p, 1, 0), 1); /* fd readable for event loops */
    assert_int_equal(poll(&p, 1, 0), 1); /* and stays readable */
    assert_int_equal(resil_cancel_wait(c, 10000 * MS), RESIL_ECANCELED);
    assert_int_equal(resil_cancel_wait(c, 0), RESIL_ECANCELED);

    resil_cancel_reset(c);
    assert_false(resil_cancel_is_cancelled(c));
    assert_int_equal(poll(&p, 1, 0), 0);
    assert_int_equal(resil_cancel_wait(c, 0), 0);
    resil_cancel_free(c);

    /* NULL token: never cancelled; wait is a plain sleep. */
    assert_false(resil_cancel_is_cancelled(NULL));
    resil_cancel_cancel(NULL);
    assert_int_equal(resil_cancel_fd(NULL), -1);
    assert_int_equal(resil_cancel_wait(NULL, 1 * MS), 0);
    resil_cancel_free(NULL);
}

struct canceller {
    resil_cancel *c;
    int64_t delay_ns;
    int64_t cancelled_at;
};

static void *cancel_later(void *arg)
{
    struct canceller *k = arg;
    struct timespec ts = {0, (long)k->delay_ns};
    nanosleep(&ts, NULL);
    k->cancelled_at = now_ns();
    resil_cancel_cancel(k->c);
    return NULL;
}

static void test_cancel_from_thread_wakes_fast(void **state)
{
    (void)state;
    resil_cancel *c;
    assert_int_equal(resil_cancel_new(&c), 0);
    struct canceller k = {c, 20 * MS, 0};
    pthread_t t;
    int64_t t0 = now_ns();
    pthread_create(&t, NULL, cancel_later, &k);
    assert_int_equal(resil_cancel_wait(c, 30000 * MS), RESIL_ECANCELED);
    int64_t woke = now_ns();
    pthread_join(t, NULL);
    assert_true(woke - t0 < 10000 * MS);
    assert_true(woke - k.cancelled_at < 50 * MS);
    resil_cancel_free(c);
}

/* Many threads waiting on one token all wake. */
static void *waiter(void *arg)
{
    resil_cancel *c = arg;
    return (void *)(intptr_t)resil_cancel_wait(c, 30000 * MS);
}

static void test_cancel_wakes_all_waiters(void **state)
{
    (void)state;
    resil_cancel *c;
    assert_int_equal(resil_cancel_new(&c), 0);
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, waiter, c);
    struct timespec ts = {0, 10 * MS};
    nanosleep(&ts, NULL);
    int64_t t0 = now_ns();
    resil_cancel_cancel(c);
    for (int i = 0; i < 8; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        assert_int_equal((int)(intptr_t)rv, RESIL_ECANCELED);
    }
    assert_true(now_ns() - t0 < 2000 * MS);
    resil_cancel_free(c);
}

static resil_cancel *signal_token;
static void on_alarm(int sig)
{
    (void)sig;
    resil_cancel_cancel(signal_token);
}

static void test_cancel_from_signal_handler(void **state)
{
    (void)state;
    assert_int_equal(resil_cancel_new(&signal_token), 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    /* The signal arrives while the thread is inside the wait. */
    timer_t timer;
    struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM};
    assert_int_equal(timer_create(CLOCK_MONOTONIC, &sev, &timer), 0);
    struct itimerspec its = {.it_value = {0, 20 * MS}};
    int64_t t0 = now_ns();
    timer_settime(timer, 0, &its, NULL);
    assert_int_equal(resil_cancel_wait(signal_token, 30000 * MS), RESIL_ECANCELED);
    int64_t took = now_ns() - t0;
    assert_true(took >= 15 * MS);
    assert_true(took < 20 * MS + 50 * MS);
    timer_delete(timer);
    signal(SIGALRM, SIG_DFL);
    resil_cancel_free(signal_token);
}

/* An unrelated signal interrupting the wait does not end it early. */
static void on_usr1(int sig)
{
    (void)sig;
}

static void test_wait_survives_eintr(void **state)
{
    (void)state;
    resil_cancel *c;
    assert_int_equal(resil_cancel_new(&c), 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    timer_t timer;
    struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
    assert_int_equal(timer_create(CLOCK_MONOTONIC, &sev, &timer), 0);
    struct itimerspec its = {.it_value = {0, 5 * MS}, .it_interval = {0, 5 * MS}};
    timer_settime(timer, 0, &its, NULL);
    int64_t t0 = now_ns();
    assert_int_equal(resil_cancel_wait(c, 60 * MS), 0);
    assert_true(now_ns() - t0 >= 60 * MS);
    timer_delete(timer);
    signal(SIGUSR1, SIG_DFL);
    resil_cancel_free(c);
}

/* Fault injection: ppoll failing with ENOMEM neither spins to a false
 * cancel nor ends the wait early, and a cancel is still seen. */
static int failing_ppoll_calls;
static int failing_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *m)
{
    (void)fds;
    (void)n;
    (void)t;
    (void)m;
    failing_ppoll_calls++;
    errno = ENOMEM;
    return -1;
}

static void test_wait_when_ppoll_fails(void **state)
{
    (void)state;
    resil_cancel *c;
    assert_int_equal(resil_cancel_new(&c), 0);
    resil__sys.ppoll = failing_ppoll;
    int64_t t0 = now_ns();
    assert_int_equal(resil_cancel_wait(c, 30 * MS), 0);
    int64_t took = now_ns() - t0;
    assert_true(took >= 30 * MS);
    assert_true(failing_ppoll_calls > 0 && failing_ppoll_calls < 1000); /* sliced, not spinning */

    struct canceller k = {c, 20 * MS, 0};
    pthread_t t;
    pthread_create(&t, NULL, cancel_later, &k);
    assert_int_equal(resil_cancel_wait(c, 30000 * MS), RESIL_ECANCELED);
    int64_t woke = now_ns();
    pthread_join(t, NULL);
    assert_true(woke - k.cancelled_at < 50 * MS);
    resil__sys_reset();
    resil_cancel_free(c);
}

/* reset after cancel leaves a usable token; cancel after reset wakes again. */
static void test_reset_then_cancel(void **state)
{
    (void)state;
    resil_cancel *c;
    assert_int_equal(resil_cancel_new(&c), 0);
    for (int i = 0; i < 3; i++) {
        resil_cancel_cancel(c);
        assert_int_equal(resil_cancel_wait(c, 1000 * MS), RESIL_ECANCELED);
        resil_cancel_reset(c);
        assert_int_equal(resil_cancel_wait(c, 1 * MS), 0);
    }
    resil_cancel_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_cancel_from_thread_wakes_fast),
        cmocka_unit_test(test_cancel_wakes_all_waiters),
        cmocka_unit_test(test_cancel_from_signal_handler),
        cmocka_unit_test(test_wait_survives_eintr),
        cmocka_unit_test(test_wait_when_ppoll_fails),
        cmocka_unit_test(test_reset_then_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
