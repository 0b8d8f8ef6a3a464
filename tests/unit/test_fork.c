/* The ordered fork hook: prepare runs in descending order, parent and child
 * in ascending order, ties in registration order, duplicates are ignored, and
 * registration from several threads at once loses nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/fork.h"

/* The calls seen, as "p30 p20 ... c10 ..." (prepare/parent/child + order). */
static char trace[4096];

static void note(const char *what)
{
    size_t n = strlen(trace);
    snprintf(trace + n, sizeof trace - n, "%s ", what);
}

#define HOOKS(o)                                   \
    static void prep##o(void) { note("p" #o); }    \
    static void par##o(void) { note("P" #o); }     \
    static void chi##o(void) { note("c" #o); }
HOOKS(10)
HOOKS(20)
HOOKS(30)
HOOKS(0)
static void prep20b(void) { note("p20b"); }
static void chi20b(void) { note("c20b"); }

/* Forks; returns the parent's trace in *parent and the child's in *child. */
static void fork_traces(char *parent, char *child, size_t size)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    trace[0] = 0;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ssize_t w = write(p[1], trace, strlen(trace));
        _exit(w < 0);
    }
    close(p[1]);
    snprintf(parent, size, "%s", trace);
    ssize_t n = read(p[0], child, size - 1);
    assert_true(n >= 0);
    child[n] = 0;
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_order(void **state)
{
    (void)state;
    /* Registered out of order, as modules would be on first use. */
    resil__fork_hook(20, prep20, par20, chi20);
    resil__fork_hook(10, prep10, par10, chi10);
    resil__fork_hook(30, prep30, par30, chi30);
    resil__fork_hook(20, prep20b, NULL, chi20b); /* a tie: after the first 20 */
    resil__fork_hook(0, prep0, par0, chi0);
    resil__fork_hook(10, prep10, par10, chi10); /* a duplicate: ignored */
    char parent[4096], child[4096];
    fork_traces(parent, child, sizeof parent);
    assert_string_equal(parent, "p30 p20b p20 p10 p0 P0 P10 P20 P30 ");
    assert_string_equal(child, "p30 p20b p20 p10 p0 c0 c10 c20 c20b c30 ");
}

/* Threads register distinct hooks at once; each is called exactly once per
 * fork, in order. */
#define NT 4
#define PER 5
static int counts[NT * PER];
#define H(i) \
    static void ch##i(void) { counts[i]++; }
H(0) H(1) H(2) H(3) H(4) H(5) H(6) H(7) H(8) H(9)
H(10) H(11) H(12) H(13) H(14) H(15) H(16) H(17) H(18) H(19)
static void (*const fns[NT * PER])(void) = {ch0, ch1, ch2, ch3, ch4, ch5, ch6, ch7, ch8, ch9,
    ch10, ch11, ch12, ch13, ch14, ch15, ch16, ch17, ch18, ch19};

static void *reg(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int k = 0; k < PER; k++) {
        int i = t * PER + k;
        resil__fork_hook(100 + i, NULL, NULL, fns[i]);
        resil__fork_hook(100 + i, NULL, NULL, fns[i]);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t th[NT];
    for (int t = 0; t < NT; t++)
        assert_int_equal(pthread_create(&th[t], NULL, reg, (void *)(intptr_t)t), 0);
    for (int t = 0; t < NT; t++)
        pthread_join(th[t], NULL);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ssize_t w = write(p[1], counts, sizeof counts);
        _exit(w != (ssize_t)sizeof counts);
    }
    close(p[1]);
    int got[NT * PER];
    assert_int_equal(read(p[0], got, sizeof got), (ssize_t)sizeof got);
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (int i = 0; i < NT * PER; i++)
        assert_int_equal(got[i], 1);
}

/* A module may register while holding a lock that its prepare hook takes
 * (breaker.c does: its table lock, then the metrics collector's hook): a
 * fork takes no lock of the hook table, so the two orders cannot deadlock
 * (ThreadSanitizer reported the inversion when a fork held the table's
 * lock while running prepare hooks). */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static int table_prepares;

static void table_prepare(void)
{
    pthread_mutex_lock(&table_lock);
    table_prepares++;
}

static void table_release(void)
{
    pthread_mutex_unlock(&table_lock);
}

static void later_hook(void)
{
}

static void test_register_under_a_prepare_lock(void **state)
{
    (void)state;
    resil__fork_hook(RESIL__FORK_BREAKER, table_prepare, table_release, table_release);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(pthread_mutex_trylock(&table_lock) == 0 ? 0 : 1); /* released in the child */
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* The other order: the module's lock, then a registration. */
    pthread_mutex_lock(&table_lock);
    resil__fork_hook(RESIL__FORK_METRICS, NULL, NULL, later_hook);
    pthread_mutex_unlock(&table_lock);
    assert_true(table_prepares >= 1);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(table_prepares >= 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_register_under_a_prepare_lock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
