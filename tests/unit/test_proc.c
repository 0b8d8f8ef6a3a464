/* resil/proc.h: the process runner.  These tests run real commands (sh,
 * cat, wc, sleep) and are about real time: timeouts are 50-100 ms, and the
 * bounds are generous for a loaded machine. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal/sys.h"
#include "resil/cancel.h"
#include "resil/proc.h"

static resil_proc_result run_sh(const char *script, const resil_proc_opts *o, int *rc)
{
    char *argv[] = {"sh", "-c", (char *)script, NULL};
    resil_proc_result r;
    resil_error e;
    resil_error_clear(&e);
    int x = resil_proc_run(&r, argv, o, &e);
    if (rc)
        *rc = x;
    return r;
}

static void test_exit_codes(void **state)
{
    (void)state;
    int rc;
    resil_proc_result r = run_sh("exit 0", NULL, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(r.state, RESIL_PROC_EXITED);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.status, 0);
    assert_true(r.pid > 0);
    r = run_sh("exit 3", NULL, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(r.state, RESIL_PROC_EXITED);
    assert_int_equal(r.code, 3);
    assert_int_equal(r.status, 3);
    assert_false(r.timed_out);
    char buf[128];
    assert_string_equal(resil_proc_describe(&r, buf, sizeof buf), "exited with status 3");
}

static void test_signals(void **state)
{
    (void)state;
    resil_proc_result r = run_sh("kill -TERM $$", NULL, NULL);
    assert_int_equal(r.state, RESIL_PROC_SIGNALED);
    assert_int_equal(r.signal, SIGTERM);
    assert_int_equal(r.status, 128 + SIGTERM);
    char buf[128];
    assert_string_equal(resil_proc_describe(&r, buf, sizeof buf),
                        "killed by signal 15 (SIGTERM)");
}

/* The shell's status 137 is ambiguous; the result is not. */
static void test_137_is_not_sigkill(void **state)
{
    (void)state;
    char buf[128];
    resil_proc_result a = run_sh("exit 137", NULL, NULL);
    assert_int_equal(a.state, RESIL_PROC_EXITED);
    assert_int_equal(a.code, 137);
    assert_int_equal(a.status, 137);
    assert_string_equal(resil_proc_describe(&a, buf, sizeof buf), "exited with status 137");
    resil_proc_result b = run_sh("kill -KILL $$", NULL, NULL);
    assert_int_equal(b.state, RESIL_PROC_SIGNALED);
    assert_int_equal(b.signal, SIGKILL);
    assert_int_equal(b.status, 137);
    assert_string_equal(resil_proc_describe(&b, buf, sizeof buf),
                        "killed by signal 9 (SIGKILL)");
    assert_string_equal(resil_proc_signal_name(SIGKILL), "SIGKILL");
    assert_null(resil_proc_signal_name(1000));
}

static void test_timeout_term(void **state)
{
    (void)state;
    resil_proc_opts o = RESIL_PROC_OPTS_INIT;
    o.timeout_s = 0.05;
    o.own_pgroup = true;
    char *argv[] = {"sleep", "30", NULL};
    resil_proc_result r;
    assert_int_equal(resil_proc_run(&r, argv, &o, NULL), 0);
    assert_true(r.timed_out);
    assert_false(r.killed);
    assert_int_equal(r.state, RESIL_PROC_SIGNALED);
    assert_int_equal(r.signal, SIGTERM);
    assert_int_equal(r.status, 124);
    assert_true(r.duration_s >= 0.04 && r.duration_s < 5);
}

/* A command that ignores SIGTERM gets SIGKILL after kill_after_s. */
static void test_timeout_kill_after(void **state)
{
    (void)state;
    resil_proc_opts o = RESIL_PROC_OPTS_INIT;
    o.timeout_s = 0.05;
    o.kill_after_s = 0.05;
    o.own_pgroup = true;
    resil_proc_result r = run_sh("trap '' TERM; while :; do sleep 0.01; done", &o, NULL);
    assert_true(r.timed_out);
    assert_true(r.killed);
    assert_int_equal(r.state, RESIL_PROC_SIGNALED);
    assert_int_equal(r.signal, SIGKILL);
    assert_int_equal(r.status, 124);
    assert_true(r.duration_s >= 0.09 && r.duration_s < 5);
    char buf[160];
    resil_proc_describe(&r, buf, sizeof buf);
    assert_non_null(strstr(buf, "timed out after"));
    assert_non_null(strstr(buf, "SIGKILL"));
}

static bool gone(pid_t pid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    bool zombie = false;
    if (fgets(line, sizeof line, f)) {
        char *p = strrchr(line, ')');
        zombie = p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
    }
    fclose(f);
    return zombie;
}

/* The timeout reaches the command's whole process group: a background
 * child that ignores SIGTERM does not outlive the call. */
static void test_process_group_killed(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    resil_proc_opts o = RESIL_PROC_OPTS_INIT;
    o.timeout_s = 0.1;
    o.kill_after_s = 0.05;
    o.own_pgroup = true;
    o.stdout_fd = p[1];
    resil_proc_result r = run_sh("(trap '' TERM; exec sleep 30) & echo $!; wait", &o, NULL);
    close(p[1]);
    char buf[32] = "";
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    assert_true(n > 0);
    buf[n] = '\0';
    pid_t bg = (pid_t)atoi(buf);
    assert_true(bg > 0);
    assert_true(r.timed_out);
    for (int i = 0; i < 200 && !gone(bg); i++) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_true(gone(bg));
}

static void *cancel_later(void *arg)
{
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    resil_cancel_cancel(arg);
    return NULL;
}

static void test_cancel(void **state)
{
    (void)state;
    resil_cancel *c;
    assert_int_equal(resil_cancel_new(&c), 0);
    resil_proc_opts o = RESIL_PROC_OPTS_INIT;
    o.cancel = c;
    o.own_pgroup = true;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, cancel_later, c), 0);
    char *argv[] = {"sleep", "30", NULL};
    resil_proc_result r;
    assert_int_equal(resil_proc_run(&r, argv, &o, NULL), 0);
    pthread_join(t, NULL);
    assert_true(r.cancelled);
    assert_false(r.timed_out);
    assert_int_equal(r.state, RESIL_PROC_SIGNALED);
    assert_int_equal(r.signal, SIGTERM);
    assert_true(r.duration_s < 5);

    /* Already cancelled: nothing starts. */
    resil_error e;
    assert_int_equal(resil_proc_run(&r, argv, &o, &e), RESIL_ECANCELED);
    assert_int_equal(r.state, RESIL_PROC_NOT_STARTED);
    assert_int_equal(r.pid, 0);
    resil_cancel_free(c);
}

static void test_not_found(void **state)
{
    (void)state;
    char *argv[] = {"resil-no-such-command-xyz", NULL};
    resil_proc_result r;
    resil_error e;
    resil_error_clear(&e);
    assert_int_equal(resil_proc_run(&r, argv, NULL, &e), -ENOENT);
    assert_int_equal(r.state, RESIL_PROC_NOT_STARTED);
    assert_int_equal(r.error, ENOENT);
    assert_int_equal(r.status, 127);
    assert_non_null(strstr(e.message, "resil-no-such-command-xyz"));
    char buf[128];
    assert_string_equal(resil_proc_describe(&r, buf, sizeof buf), "command not found");
    char *empty[] = {NULL};
    assert_int_equal(resil_proc_run(&r, empty, NULL, NULL), RESIL_EINVAL);
}

/* Reads what a command wrote to the temporary file fd. */
static size_t slurp(int fd, char *buf, size_t size)
{
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    ssize_t n = read(fd, buf, size - 1);
    assert_true(n >= 0);
    buf[n] = '\0';
    return (size_t)n;
}

/* The spool replays every byte to each command, reading the source once. */
static void test_spool_replay(void **state)
{
    (void)state;
    int src[2];
    assert_int_equal(pipe(src), 0);
    static const char text[] = "line one\nline two\n";
    assert_int_equal(write(src[1], text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(src[1]);
    resil_proc_spool *sp;
    resil_error e;
    assert_int_equal(resil_proc_spool_new(&sp, src[0], NULL, &e), 0);
    assert_non_null(strstr(resil_proc_spool_path(sp), "resil-stdin."));
    assert_int_equal(access(resil_proc_spool_path(sp), F_OK), -1); /* unlinked at once */
    for (int round = 0; round < 3; round++) {
        int out;
        assert_int_equal(resil_proc_tmpfile(&out, NULL, "resil-test-out", NULL, 0, NULL), 0);
        resil_proc_opts o = RESIL_PROC_OPTS_INIT;
        o.stdin_spool = sp;
        o.stdout_fd = out;
        char *argv[] = {"cat", NULL};
        resil_proc_result r;
        assert_int_equal(resil_proc_run(&r, argv, &o, &e), 0);
        assert_int_equal(r.status, 0);
        char buf[256];
        slurp(out, buf, sizeof buf);
        assert_string_equal(buf, text);
        close(out);
    }
    assert_int_equal(resil_proc_spool_size(sp), sizeof text - 1);
    assert_true(resil_proc_spool_eof(sp));
    resil_proc_spool_free(sp);
    close(src[0]);
}

/* More than any pipe holds, from a source written concurrently. */
static void test_spool_large(void **state)
{
    (void)state;
    int src[2];
    assert_int_equal(pipe(src), 0);
    pid_t w = fork();
    assert_true(w >= 0);
    if (w == 0) {
        close(src[0]);
        static char block[65536];
        memset(block, 'x', sizeof block);
        for (int i = 0; i < 64; i++) /* 4 MiB */
            if (write(src[1], block, sizeof block) != (ssize_t)sizeof block)
                _exit(1);
        _exit(0);
    }
    close(src[1]);
    resil_proc_spool *sp;
    assert_int_equal(resil_proc_spool_new(&sp, src[0], NULL, NULL), 0);
    for (int round = 0; round < 2; round++) {
        int out;
        assert_int_equal(resil_proc_tmpfile(&out, NULL, "resil-test-out", NULL, 0, NULL), 0);
        resil_proc_opts o = RESIL_PROC_OPTS_INIT;
        o.stdin_spool = sp;
        o.stdout_fd = out;
        resil_proc_result r = run_sh("wc -c | tr -d ' '", &o, NULL);
        assert_int_equal(r.status, 0);
        char buf[64];
        slurp(out, buf, sizeof buf);
        assert_string_equal(buf, "4194304\n");
        close(out);
    }
    int ws;
    assert_int_equal(waitpid(w, &ws, 0), w);
    resil_proc_spool_free(sp);
    close(src[0]);
}

static int g_pwrites;
static ssize_t enospc_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    (void)fd;
    (void)buf;
    (void)len;
    (void)off;
    g_pwrites++;
    errno = ENOSPC;
    return -1;
}

/* A spool that cannot be written is an error naming the file, and the
 * command never sees end of input on partial data. */
static void test_spool_enospc(void **state)
{
    (void)state;
    int src[2];
    assert_int_equal(pipe(src), 0);
    assert_int_equal(write(src[1], "abc\n", 4), 4);
    close(src[1]);
    resil_proc_spool *sp;
    assert_int_equal(resil_proc_spool_new(&sp, src[0], NULL, NULL), 0);
    int out;
    assert_int_equal(resil_proc_tmpfile(&out, NULL, "resil-test-out", NULL, 0, NULL), 0);
    resil_proc_opts o = RESIL_PROC_OPTS_INIT;
    o.stdin_spool = sp;
    o.stdout_fd = out;
    o.own_pgroup = true;
    resil__sys.pwrite = enospc_pwrite;
    resil_error e;
    resil_error_clear(&e);
    resil_proc_result r;
    char *argv[] = {"sh", "-c", "wc -c; echo done", NULL};
    int rc = resil_proc_run(&r, argv, &o, &e);
    resil__sys_reset();
    assert_int_equal(rc, -ENOSPC);
    assert_true(g_pwrites > 0);
    assert_non_null(strstr(e.message, resil_proc_spool_path(sp)));
    assert_non_null(strstr(e.message, "No space left on device"));
    assert_int_equal(r.state, RESIL_PROC_SIGNALED);
    assert_int_equal(r.signal, SIGKILL);
    char buf[64];
    slurp(out, buf, sizeof buf);
    assert_null(strstr(buf, "done")); /* it never ran to its end */
    close(out);
    resil_proc_spool_free(sp);
    close(src[0]);
}

static void test_tmpfile(void **state)
{
    (void)state;
    int fd;
    char path[4096];
    resil_error e;
    assert_int_equal(resil_proc_tmpfile(&fd, NULL, "resil-test", path, sizeof path, &e), 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_nlink, 0); /* unlinked at once */
    assert_int_equal(access(path, F_OK), -1);
    close(fd);

    resil_error_clear(&e);
    assert_int_equal(resil_proc_tmpfile(&fd, "/nonexistent-resil-dir", "x", NULL, 0, &e),
                     -ENOENT);
    assert_int_equal(fd, -1);
    assert_non_null(strstr(e.message, "/nonexistent-resil-dir"));
    assert_non_null(strstr(e.message, "does not exist"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_signals),
        cmocka_unit_test(test_137_is_not_sigkill),
        cmocka_unit_test(test_timeout_term),
        cmocka_unit_test(test_timeout_kill_after),
        cmocka_unit_test(test_process_group_killed),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_spool_replay),
        cmocka_unit_test(test_spool_large),
        cmocka_unit_test(test_spool_enospc),
        cmocka_unit_test(test_tmpfile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
