/* Lock waits that are fair and always end (issue 10): FIFO among waiters,
 * writer preference, dead and stopped waiters, timeouts that name the
 * blocking holder, cancel in the queue, sidecar mode and owner, no lock for a
 * user who may only read, the real cause of an open failure, and no
 * directory scan after a clean release. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal/sys.h"
#include "resil/cancel.h"
#include "resil/files.h"

#define TEST_DIR_PREFIX "resil-lock"
#include "tmpdir.h"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void ms_sleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static resil_file_opts waiting(double s)
{
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.lock_timeout_s = s;
    return o;
}

/* Appends a line to path (O_APPEND: whole lines from many processes). */
static void log_line(const char *path, int v)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%d\n", v);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    (void)!write(fd, buf, (size_t)n);
    close(fd);
}

/* Waits for pid at most ms; returns its status, or -1 if still running. */
static int wait_for(pid_t pid, int ms)
{
    int64_t end = now_ns() + (int64_t)ms * 1000000LL;
    for (;;) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        if (now_ns() > end)
            return -1;
        ms_sleep(2);
    }
}

/* A child that tells the parent it is about to wait (one byte on fd), takes
 * the lock, logs "<id>\n" to the order file, holds hold_ms, and exits 0. */
static pid_t spawn_waiter(int ready_fd, int id, resil_lock_mode mode, int hold_ms)
{
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30); /* never outlives a failed test */
        resil_file_opts o = waiting(20);
        (void)!write(ready_fd, "r", 1);
        resil_lock *lk;
        if (resil_lock_acquire(&lk, in_dir("q"), mode, &o, NULL) != 0)
            _exit(1);
        log_line(in_dir("order"), id);
        ms_sleep(hold_ms);
        resil_lock_release(lk);
        _exit(0);
    }
    return pid;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strdup(buf);
}

/* ---- FIFO ------------------------------------------------------------------------ */

static void test_fifo_order(void **state)
{
    (void)state;
    resil_lock *held;
    assert_int_equal(resil_lock_acquire(&held, in_dir("q"), RESIL_LOCK_EXCLUSIVE, NULL, NULL), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    enum { N = 5 };
    pid_t kids[N];
    for (int i = 0; i < N; i++) {
        kids[i] = spawn_waiter(p[1], i, RESIL_LOCK_EXCLUSIVE, 2);
        char c;
        assert_int_equal(read(p[0], &c, 1), 1);
        ms_sleep(30); /* it has arrived and queued before the next one comes */
    }
    ms_sleep(10);
    resil_lock_release(held);
    for (int i = 0; i < N; i++) {
        int st = wait_for(kids[i], 10000);
        assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    char *order = slurp(in_dir("order"));
    assert_string_equal(order, "0\n1\n2\n3\n4\n");
    free(order);
    close(p[0]);
    close(p[1]);
}

/* ---- writer preference ------------------------------------------------------------ */

static void test_writer_not_starved_by_readers(void **state)
{
    (void)state;
    enum { READERS = 3 };
    pid_t kids[READERS];
    int64_t stop = now_ns() + 700000000LL;
    for (int i = 0; i < READERS; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            /* Overlapping shared holds of 20 ms: the lock is never free. */
            resil_file_opts o = waiting(5);
            while (now_ns() < stop) {
                resil_lock *lk;
                if (resil_lock_acquire(&lk, in_dir("q"), RESIL_LOCK_SHARED, &o, NULL) != 0)
                    _exit(1);
                ms_sleep(20);
                resil_lock_release(lk);
            }
            _exit(0);
        }
        ms_sleep(7);
    }
    ms_sleep(60);
    resil_file_opts o = waiting(0.5);
    resil_lock *lk;
    resil_error e;
    int64_t t0 = now_ns();
    int rc = resil_lock_acquire(&lk, in_dir("q"), RESIL_LOCK_EXCLUSIVE, &o, &e);
    int64_t waited = now_ns() - t0;
    if (rc != 0)
        print_error("writer: %s\n", e.message);
    assert_int_equal(rc, 0);
    /* about one reader's hold, not the readers' whole run */
    assert_true(waited < 300000000LL);
    resil_lock_release(lk);
    for (int i = 0; i < READERS; i++) {
        int st = wait_for(kids[i], 10000);
        assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
}

/* ---- dead and stopped waiters ---------------------------------------------------- */

static void test_killed_waiter_and_holder(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t holder = fork();
    if (holder == 0) {
        alarm(20); /* never outlives a failed test */
        resil_lock *lk;
        if (resil_lock_acquire(&lk, in_dir("q"), RESIL_LOCK_EXCLUSIVE, NULL, NULL) != 0)
            _exit(1);
        (void)!write(p[1], "h", 1);
        for (;;)
            pause();
    }
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    pid_t w1 = spawn_waiter(p[1], 1, RESIL_LOCK_EXCLUSIVE, 0);
    assert_int_equal(read(p[0], &c, 1), 1);
    ms_sleep(15);
    pid_t w2 = spawn_waiter(p[1], 2, RESIL_LOCK_EXCLUSIVE, 0);
    assert_int_equal(read(p[0], &c, 1), 1);
    ms_sleep(15);
    /* The head of the queue dies, then the holder. */
    kill(w1, SIGKILL);
    waitpid(w1, NULL, 0);
    kill(holder, SIGKILL);
    waitpid(holder, NULL, 0);
    int64_t t0 = now_ns();
    int st = wait_for(w2, 5000);
    assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_true(now_ns() - t0 < 1000000000LL);
    /* and the queue is empty again: a try succeeds */
    resil_file_opts o = waiting(-1);
    resil_lock *lk;
    assert_int_equal(resil_lock_acquire(&lk, in_dir("q"), RESIL_LOCK_EXCLUSIVE, &o, NULL), 0);
    resil_lock_release(lk);
    close(p[0]);
    close(p[1]);
}

static void test_stopped_waiter_passed(void **state)
{
    (void)state;
    resil_lock *held;
    assert_int_equal(resil_lock_acquire(&held, in_dir("q"), RESIL_LOCK_EXCLUSIVE, NULL, NULL), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    char c;
    pid_t first = spawn_waiter(p[1], 1, RESIL_LOCK_EXCLUSIVE, 0);
    assert_int_equal(read(p[0], &c, 1), 1);
    ms_sleep(15);
    pid_t second = spawn_waiter(p[1], 2, RESIL_LOCK_EXCLUSIVE, 0);
    assert_int_equal(read(p[0], &c, 1), 1);
    ms_sleep(15);
    kill(first, SIGSTOP); /* alive, queued first, and never takes the lock */
    resil_lock_release(held);
    int64_t t0 = now_ns();
    int st = wait_for(second, 5000);
    assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_true(now_ns() - t0 < 2000000000LL);
    kill(first, SIGCONT);
    st = wait_for(first, 5000);
    assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char *order = slurp(in_dir("order"));
    assert_string_equal(order, "2\n1\n");
    free(order);
    close(p[0]);
    close(p[1]);
}

/* ---- messages --------------------------------------------------------------------- */

static void test_timeout_names_shared_holder(void **state)
{
    (void)state;
    int p[2], q[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(pipe(q), 0);
    resil_lock *lk;
    assert_int_equal(resil_lock_acquire(&lk, in_dir("q"), RESIL_LOCK_EXCLUSIVE, NULL, NULL), 0);
    resil_lock_release(lk);
    pid_t kid = fork();
    if (kid == 0) {
        alarm(20); /* never outlives a failed test */
        if (resil_lock_acquire(&lk, in_dir("q"), RESIL_LOCK_SHARED, NULL, NULL) != 0)
            _exit(1);
        (void)!write(p[1], "h", 1);
        char c;
        (void)!read(q[0], &c, 1);
        resil_lock_release(lk);
        _exit(0);
    }
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    /* This process was the last exclusive holder: it is not named. */
    resil_error e;
    resil_file_opts o = waiting(0.05);
    char want[64];
    snprintf(want, sizeof want, "held shared by pid %ld on host ", (long)kid);
    assert_int_equal(resil_lock_acquire(&lk, in_dir("q"), RESIL_LOCK_EXCLUSIVE, &o, &e),
                     RESIL_ETIMEDOUT);
    assert_non_null(strstr(e.message, "timed out after"));
    assert_non_null(strstr(e.message, want));
    assert_null(strstr(e.message, "and 1 more"));
    (void)!write(q[1], "x", 1);
    assert_int_equal(wait_for(kid, 5000), 0);

    /* A lock that no record explains (an older resil locking the whole
     * sidecar, another program): "holder unknown". */
    int fd = open(in_dir("q.lock"), O_RDWR);
    assert_true(fd >= 0);
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
    assert_int_equal(fcntl(fd, F_OFD_SETLK, &fl), 0);
    o = waiting(-1);
    assert_int_equal(resil_lock_acquire(&lk, in_dir("q"), RESIL_LOCK_EXCLUSIVE, &o, &e),
                     RESIL_ETIMEDOUT);
    assert_non_null(strstr(e.message, "holder unknown"));
    close(fd);
    for (int i = 0; i < 2; i++) {
        close(p[i]);
        close(q[i]);
    }
}

/* ---- cancel ------------------------------------------------------------------------ */

struct cancel_arg {
    resil_cancel *tok;
};

static void *cancel_later(void *argp)
{
    struct cancel_arg *a = argp;
    ms_sleep(60);
    resil_cancel_cancel(a->tok);
    return NULL;
}

static void test_cancel_while_queued(void **state)
{
    (void)state;
    resil_lock *held;
    assert_int_equal(resil_lock_acquire(&held, in_dir("q"), RESIL_LOCK_EXCLUSIVE, NULL, NULL), 0);
    struct cancel_arg a;
    assert_int_equal(resil_cancel_new(&a.tok), 0);
    pthread_t t;
    pthread_create(&t, NULL, cancel_later, &a);
    resil_file_opts o = waiting(30);
    o.cancel = a.tok;
    resil_lock *lk;
    resil_error e;
    int64_t t0 = now_ns();
    assert_int_equal(resil_lock_acquire(&lk, in_dir("q"), RESIL_LOCK_SHARED, &o, &e),
                     RESIL_ECANCELED);
    assert_true(now_ns() - t0 < 1000000000LL);
    pthread_join(t, NULL);
    resil_cancel_free(a.tok);
    /* It left the queue: after the release a try from another process wins
     * at once (a try never waits behind the queue, so check the queue's
     * byte by waiting for a short moment instead). */
    resil_lock_release(held);
    o = waiting(0.2);
    o.cancel = NULL;
    t0 = now_ns();
    assert_int_equal(resil_lock_acquire(&lk, in_dir("q"), RESIL_LOCK_EXCLUSIVE, &o, NULL), 0);
    assert_true(now_ns() - t0 < 500000000LL);
    resil_lock_release(lk);
}

/* ---- the sidecar: mode, owner, who may lock, the real errors ------------------------- */

static mode_t mode_of(const char *p)
{
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return st.st_mode & 07777;
}

static void put_file(const char *p, mode_t mode)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{}\n", 3), 3);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void test_sidecar_mode_and_owner(void **state)
{
    (void)state;
    resil_lock *lk;
    mode_t old = umask(022);
    /* No data file: 0600. */
    assert_int_equal(resil_lock_acquire(&lk, in_dir("none"), RESIL_LOCK_EXCLUSIVE, NULL, NULL), 0);
    resil_lock_release(lk);
    assert_int_equal(mode_of(in_dir("none.lock")), 0600);
    /* A data file its group may write: the group may lock, exactly (not
     * less the umask); others who may only read may not. */
    put_file(in_dir("g"), 0664);
    assert_int_equal(resil_lock_acquire(&lk, in_dir("g"), RESIL_LOCK_SHARED, NULL, NULL), 0);
    resil_lock_release(lk);
    assert_int_equal(mode_of(in_dir("g.lock")), 0660);
    /* An existing sidecar of an older resil (0644) is corrected. */
    put_file(in_dir("o"), 0644);
    put_file(in_dir("o.lock"), 0644);
    assert_int_equal(resil_lock_acquire(&lk, in_dir("o"), RESIL_LOCK_SHARED, NULL, NULL), 0);
    resil_lock_release(lk);
    assert_int_equal(mode_of(in_dir("o.lock")), 0600);
    umask(old);
    if (geteuid() != 0)
        return;
    /* Root locking another user's file gives the sidecar to that user. */
    put_file(in_dir("u"), 0640);
    assert_int_equal(chown(in_dir("u"), 1234, 5678), 0);
    assert_int_equal(resil_lock_acquire(&lk, in_dir("u"), RESIL_LOCK_EXCLUSIVE, NULL, NULL), 0);
    resil_lock_release(lk);
    struct stat st;
    assert_int_equal(stat(in_dir("u.lock"), &st), 0);
    assert_int_equal(st.st_uid, 1234);
    assert_int_equal(st.st_gid, 5678);
    assert_int_equal(st.st_mode & 07777, 0600);
}

/* In a child as uid/gid 65534: returns fn's exit code. */
static int as_nobody(int (*fn)(void))
{
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(99);
        _exit(fn());
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

/* A user who may only read the data must not be able to hold any lock on
 * it: neither through resil nor by locking the sidecar by hand. */
static int reader_tries_lock(void)
{
    resil_file_opts o = waiting(-1);
    resil_lock *lk;
    resil_error e;
    int rc = resil_lock_acquire(&lk, in_dir("d/data.json"), RESIL_LOCK_SHARED, &o, &e);
    if (rc == 0)
        return 1; /* holds a shared lock: could block root's writers */
    if (rc != -EACCES)
        return 2;
    int fd = open(in_dir("d/data.json.lock"), O_RDONLY);
    if (fd >= 0) {
        struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
        if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
            return 3;
        close(fd);
    }
    return 0;
}

static void test_reader_cannot_block_writers(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(mkdir(in_dir("d"), 0755), 0);
    put_file(in_dir("d/data.json"), 0644);
    /* The sidecar exists (root wrote before) ... */
    assert_int_equal(resil_write_file_atomic(in_dir("d/data.json"), "{}", 2, NULL, NULL), 0);
    assert_int_equal(as_nobody(reader_tries_lock), 0);
    /* ... or not yet. */
    assert_int_equal(unlink(in_dir("d/data.json.lock")), 0);
    assert_int_equal(as_nobody(reader_tries_lock), 0);
}

/* A shared lock in a directory the user may not write, and no sidecar yet:
 * EACCES, saying so (an O_RDONLY fallback reported ENOENT). */
static int shared_in_readonly_dir(void)
{
    resil_file_opts o = waiting(-1);
    resil_lock *lk;
    resil_error e;
    int rc = resil_lock_acquire(&lk, in_dir("ro/data.json"), RESIL_LOCK_SHARED, &o, &e);
    if (rc != -EACCES)
        return 1;
    if (!strstr(e.message, "ro/data.json.lock") || !strstr(e.message, "directory"))
        return 2;
    return 0;
}

static void test_eacces_in_readonly_dir(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(mkdir(in_dir("ro"), 0755), 0);
    put_file(in_dir("ro/data.json"), 0666);
    assert_int_equal(as_nobody(shared_in_readonly_dir), 0);
}

static void test_missing_directory_named(void **state)
{
    (void)state;
    resil_lock *lk;
    resil_error e;
    assert_int_equal(resil_lock_acquire(&lk, in_dir("no/such/x.json"), RESIL_LOCK_SHARED, NULL, &e),
                     -ENOENT);
    assert_non_null(strstr(e.message, "no/such/x.json.lock"));
    char want[400];
    snprintf(want, sizeof want, "the directory %s does not exist", in_dir("no/such"));
    assert_non_null(strstr(e.message, want));
}

/* ---- the directory is scanned only after a crash ------------------------------------ */

static ssize_t die_in_write(int fd, const void *b, size_t n)
{
    (void)!write(fd, b, n / 2);
    raise(SIGKILL);
    return -1;
}

static void test_sweep_only_after_crash(void **state)
{
    (void)state;
    /* A crowded directory, and a dead writer's temp of this file. */
    for (int i = 0; i < 3000; i++) {
        char name[64];
        snprintf(name, sizeof name, "other-%d.json", i);
        int fd = open(in_dir(name), O_WRONLY | O_CREAT, 0644);
        close(fd);
    }
    char host[256], dead[400];
    gethostname(host, sizeof host);
    snprintf(dead, sizeof dead, ".s.json.resil-tmp.%d.deadbeef.%s", 0x7ffffff0, host);
    const char *p = in_dir("s.json");
    assert_int_equal(resil_write_file_atomic(p, "{}", 2, NULL, NULL), 0);
    put_file(in_dir(dead), 0644);
    /* A CLI-like writer: another process writes and exits normally.  Its pid
     * is gone afterwards, which is no crash: the next writer must not scan. */
    pid_t kid = fork();
    if (kid == 0)
        _exit(resil_write_file_atomic(p, "{\"a\":1}", 7, NULL, NULL) == 0 ? 0 : 1);
    assert_int_equal(wait_for(kid, 10000), 0);
    assert_int_equal(resil_write_file_atomic(p, "{\"a\":2}", 7, NULL, NULL), 0);
    assert_int_equal(access(in_dir(dead), F_OK), 0); /* not scanned: still there */
    /* A writer SIGKILLed in the middle of its write: the next one sweeps. */
    kid = fork();
    if (kid == 0) {
        resil__sys.write = die_in_write;
        resil_write_file_atomic(p, "{\"a\":3}", 7, NULL, NULL);
        _exit(0);
    }
    int st = wait_for(kid, 10000);
    assert_true(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    assert_int_equal(resil_write_file_atomic(p, "{\"a\":4}", 7, NULL, NULL), 0);
    assert_int_equal(access(in_dir(dead), F_OK), -1);
    DIR *d = opendir(dir);
    struct dirent *e;
    int temps = 0;
    while ((e = readdir(d)) != NULL)
        temps += strstr(e->d_name, "resil-tmp") != NULL;
    closedir(d);
    assert_int_equal(temps, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fifo_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_not_starved_by_readers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_waiter_and_holder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stopped_waiter_passed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_names_shared_holder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_while_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sidecar_mode_and_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_cannot_block_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eacces_in_readonly_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_directory_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_only_after_crash, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
