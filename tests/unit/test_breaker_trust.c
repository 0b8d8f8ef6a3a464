/* tests/unit/test_breaker_trust.c - what a shared breaker trusts in its state
 * directory (issue 10): directories and state files created private whatever
 * the umask, directories others may write and files of other users refused
 * unless the caller opts in, a state file that shrank survived (no SIGBUS),
 * and read-only inspection of state files the caller may not write.
 *
 * Tests that need another user run as root (CI) and use uid 65534; they skip
 * otherwise.  Operations that could die of SIGBUS run in a forked child, and
 * the parent asserts that it exited normally.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/store.h"
#include "internal/store_mmap.h"
#include "resil/breaker.h"
#include "resil/clock.h"

#include <stdatomic.h>

#define S_NS 1000000000LL

static char dir[256];
static char sub[300]; /* a state directory inside dir, created by the tests */
static resil_fake_clock fc;

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/resil-cbtrust-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    /* 65534 must be able to reach the state directories inside */
    if (chmod(dir, 0755) != 0)
        return -1;
    snprintf(sub, sizeof sub, "%s/state", dir);
    resil_fake_clock_init(&fc, 1000 * S_NS, 1700000000LL * S_NS);
    unsetenv("RESIL_STATE_DIR_TRUST");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unsetenv("RESIL_STATE_DIR_TRUST");
    umask(022);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static resil_breaker_opts opts_in(const char *d)
{
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    o.state_dir = d;
    o.clock = &fc.clock;
    o.failure_threshold = 3;
    o.recovery_timeout_s = 30;
    o.seed = 1;
    return o;
}

static const char *cb_file(const char *name)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s.cb", sub, name);
    return buf;
}

static mode_t mode_of(const char *path)
{
    struct stat sb;
    assert_int_equal(lstat(path, &sb), 0);
    return sb.st_mode & 07777;
}

static int new_breaker(resil_breaker **b, const char *name, const resil_breaker_opts *o,
                       resil_error *err)
{
    resil_error_clear(err);
    return resil_breaker_new(b, name, o, err);
}

/* ---- created modes ------------------------------------------------------------ */

static void test_created_modes_ignore_umask(void **state)
{
    (void)state;
    static const mode_t masks[] = {0, 022, 077, 0777};
    for (size_t i = 0; i < sizeof masks / sizeof masks[0]; i++) {
        char d[400];
        snprintf(d, sizeof d, "%s/m%zu", dir, i);
        umask(masks[i]);
        resil_breaker_opts o = opts_in(d);
        resil_breaker *b;
        resil_error err;
        assert_int_equal(new_breaker(&b, "svc", &o, &err), 0);
        resil_breaker_free(b);
        umask(022);
        char f[500];
        snprintf(f, sizeof f, "%s/svc.cb", d);
        assert_int_equal(mode_of(d), 0700);
        assert_int_equal(mode_of(f), 0600);
    }
    /* resil_breaker_reset_file creates them the same way */
    umask(0);
    char d[400], f[500];
    snprintf(d, sizeof d, "%s/reset", dir);
    assert_int_equal(resil_breaker_reset_file(d, "x", NULL), 0);
    umask(022);
    snprintf(f, sizeof f, "%s/x.cb", d);
    assert_int_equal(mode_of(d), 0700);
    assert_int_equal(mode_of(f), 0600);
}

static void test_created_modes_from_options(void **state)
{
    (void)state;
    umask(0777);
    resil_breaker_opts o = opts_in(sub);
    o.state_dir_mode = 0750;
    o.state_file_mode = 0640;
    resil_breaker *b;
    resil_error err;
    assert_int_equal(new_breaker(&b, "svc", &o, &err), 0);
    resil_breaker_free(b);
    umask(022);
    assert_int_equal(mode_of(sub), 0750);
    assert_int_equal(mode_of(cb_file("svc")), 0640);

    /* a mode that lets others write needs the opt-in */
    o.state_dir_mode = 0770;
    assert_int_equal(new_breaker(&b, "svc", &o, &err), RESIL_EINVAL);
    assert_string_equal(err.path, "state_dir_mode");
    o.state_dir_mode = 0600; /* no x for the owner */
    assert_int_equal(new_breaker(&b, "svc", &o, &err), RESIL_EINVAL);
    o.state_dir_mode = 0;
    o.state_file_mode = 0400;
    assert_int_equal(new_breaker(&b, "svc", &o, &err), RESIL_EINVAL);
    assert_string_equal(err.path, "state_file_mode");
}

/* ---- refused unless opted in --------------------------------------------------- */

static void test_writable_dir_refused(void **state)
{
    (void)state;
    assert_int_equal(mkdir(sub, 0700), 0);
    resil_breaker_opts o = opts_in(sub);
    resil_breaker *b;
    resil_error err;
    assert_int_equal(new_breaker(&b, "svc", &o, &err), 0);
    resil_breaker_free(b);

    static const mode_t bad[] = {0777, 0770, 0702, 01777};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chmod(sub, bad[i]), 0);
        assert_int_equal(new_breaker(&b, "svc", &o, &err), -EPERM);
        assert_non_null(strstr(err.message, "refusing the directory"));
        assert_non_null(strstr(err.message, "RESIL_STATE_DIR_TRUST=shared"));
        o.attach_only = true; /* inspecting is refused too */
        assert_int_equal(new_breaker(&b, "svc", &o, &err), -EPERM);
        o.attach_only = false;
        assert_int_equal(resil_breaker_reset_file(sub, "svc", &err), -EPERM);
        /* a new breaker is not created there either */
        assert_int_equal(new_breaker(&b, "other", &o, &err), -EPERM);
        assert_int_equal(access(cb_file("other"), F_OK), -1);

        /* opted in by the option */
        o.state_trust = RESIL_BREAKER_TRUST_SHARED;
        assert_int_equal(new_breaker(&b, "svc", &o, &err), 0);
        resil_breaker_free(b);
        o.state_trust = RESIL_BREAKER_TRUST_DEFAULT;
        /* ... by the environment */
        setenv("RESIL_STATE_DIR_TRUST", "shared", 1);
        assert_int_equal(new_breaker(&b, "svc", &o, &err), 0);
        resil_breaker_free(b);
        assert_int_equal(resil_breaker_reset_file(sub, "svc", &err), 0);
        /* the option wins over the environment */
        o.state_trust = RESIL_BREAKER_TRUST_PRIVATE;
        assert_int_equal(new_breaker(&b, "svc", &o, &err), -EPERM);
        o.state_trust = RESIL_BREAKER_TRUST_DEFAULT;
        setenv("RESIL_STATE_DIR_TRUST", "private", 1);
        assert_int_equal(new_breaker(&b, "svc", &o, &err), -EPERM);
        unsetenv("RESIL_STATE_DIR_TRUST");
    }
}

static void test_bad_trust_env(void **state)
{
    (void)state;
    resil_breaker_opts o = opts_in(sub);
    resil_breaker *b;
    resil_error err;
    setenv("RESIL_STATE_DIR_TRUST", "yes", 1);
    assert_int_equal(new_breaker(&b, "svc", &o, &err), RESIL_EINVAL);
    assert_string_equal(err.path, "RESIL_STATE_DIR_TRUST");
    assert_non_null(strstr(err.message, "RESIL_STATE_DIR_TRUST=yes"));
    assert_int_equal(resil_breaker_reset_file(sub, "svc", &err), RESIL_EINVAL);
    /* a process-local breaker does not read it */
    o.state_dir = "";
    assert_int_equal(new_breaker(&b, "svc", &o, &err), 0);
    resil_breaker_free(b);
    o.state_dir = sub;
    o.state_trust = 7;
    assert_int_equal(new_breaker(&b, "svc", &o, &err), RESIL_EINVAL);
    assert_string_equal(err.path, "state_trust");
}

static void test_writable_file_refused(void **state)
{
    (void)state;
    resil_breaker_opts o = opts_in(sub);
    resil_breaker *b;
    resil_error err;
    assert_int_equal(new_breaker(&b, "svc", &o, &err), 0);
    resil_breaker_free(b);
    assert_int_equal(chmod(cb_file("svc"), 0666), 0);
    assert_int_equal(new_breaker(&b, "svc", &o, &err), -EPERM);
    assert_non_null(strstr(err.message, "0666"));
    o.state_trust = RESIL_BREAKER_TRUST_SHARED;
    assert_int_equal(new_breaker(&b, "svc", &o, &err), 0);
    resil_breaker_free(b);
}

static void test_foreign_dir_and_file_refused(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    resil_breaker_opts o = opts_in(sub);
    resil_breaker *b;
    resil_error err;
    assert_int_equal(new_breaker(&b, "svc", &o, &err), 0);
    resil_breaker_free(b);

    /* a directory of uid 65534 (mode 0700: only its owner may write) */
    assert_int_equal(chown(sub, 65534, 65534), 0);
    assert_int_equal(new_breaker(&b, "svc", &o, &err), -EPERM);
    assert_non_null(strstr(err.message, "owned by uid 65534"));
    o.state_trust = RESIL_BREAKER_TRUST_SHARED;
    assert_int_equal(new_breaker(&b, "svc", &o, &err), 0);
    resil_breaker_free(b);
    o.state_trust = RESIL_BREAKER_TRUST_DEFAULT;
    assert_int_equal(chown(sub, 0, 0), 0);

    /* a state file of uid 65534 in root's private directory */
    assert_int_equal(chown(cb_file("svc"), 65534, 65534), 0);
    assert_int_equal(new_breaker(&b, "svc", &o, &err), -EPERM);
    assert_non_null(strstr(err.message, "owned by uid 65534"));
    assert_int_equal(resil_breaker_reset_file(sub, "svc", &err), -EPERM);
    o.attach_only = true;
    assert_int_equal(new_breaker(&b, "svc", &o, &err), -EPERM);
    o.attach_only = false;
    o.state_trust = RESIL_BREAKER_TRUST_SHARED;
    assert_int_equal(new_breaker(&b, "svc", &o, &err), 0);
    resil_breaker_free(b);
}

/* A symlink to the state directory is followed only under the
 * protected-symlinks rule; the directory it reaches is checked all the
 * same. */
static void test_symlinked_dir(void **state)
{
    (void)state;
    assert_int_equal(mkdir(sub, 0700), 0);
    char link[400];
    snprintf(link, sizeof link, "%s/link", dir);
    assert_int_equal(symlink(sub, link), 0);
    resil_breaker_opts o = opts_in(link);
    resil_breaker *b;
    resil_error err;
    assert_int_equal(new_breaker(&b, "svc", &o, &err), 0);
    resil_breaker_free(b);
    assert_int_equal(access(cb_file("svc"), F_OK), 0);
    assert_int_equal(chmod(sub, 0777), 0);
    assert_int_equal(new_breaker(&b, "svc", &o, &err), -EPERM);
}

/* ---- a state file that shrank ---------------------------------------------------- */

/* Truncates path to len in a child process (as another process would). */
static void truncate_in_child(const char *path, off_t len)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(truncate(path, len) == 0 ? 0 : 1);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static off_t size_of(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_size;
}

/* Runs fn in a forked child; asserts that it exited 0 (not killed by SIGBUS). */
static void in_child(int (*fn)(off_t len), off_t len)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGBUS, SIG_DFL); /* not cmocka's handler: the parent sees the signal */
        signal(SIGSEGV, SIG_DFL);
        _exit(fn(len));
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (WIFSIGNALED(st))
        fail_msg("the breaker's process died of signal %d (%s) after its state file was "
                 "truncated to %lld bytes",
                 WTERMSIG(st), strsignal(WTERMSIG(st)), (long long)len);
    assert_int_equal(WEXITSTATUS(st), 0);
}

#define CHECK(c)                                                                               \
    do {                                                                                       \
        if (!(c)) {                                                                            \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c);                            \
            return 10 + __LINE__ % 100;                                                        \
        }                                                                                      \
    } while (0)

/* Private directory (the default): the window's ring, at the end of the
 * record, is written under the lock, where the size is checked first. */
static int shrink_private_window(off_t len)
{
    resil_breaker_opts o = opts_in(sub);
    o.failure_threshold = -1;
    o.window_size = 5000;
    o.window_min_calls = 5000;
    resil_breaker *b;
    resil_error err;
    CHECK(resil_breaker_reset_file(sub, "w", NULL) == 0);
    CHECK(new_breaker(&b, "w", &o, &err) == 0);
    resil_breaker_permit p;
    for (int i = 0; i < 4000; i++) {
        CHECK(resil_breaker_acquire(b, &p, NULL) == 0);
        CHECK(resil_breaker_record(b, &p, i % 2 ? RESIL_BREAKER_SUCCESS : RESIL_BREAKER_FAILURE,
                                   0) == 0);
    }
    resil_breaker_snapshot s;
    resil_breaker_snapshot_get(b, &s);
    CHECK(s.window_calls == 4000);
    uint64_t epoch = s.epoch;
    truncate_in_child(cb_file("w"), len);
    /* the next report writes the ring (entry 4000, past the middle) */
    CHECK(resil_breaker_acquire(b, &p, NULL) == 0);
    CHECK(resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, 0) == 0);
    CHECK(size_of(cb_file("w")) == (off_t)sizeof(struct resil__cb_state));
    resil_breaker_snapshot_get(b, &s);
    CHECK(s.epoch > epoch);        /* reset: a new epoch */
    CHECK(s.window_calls == 0);    /* a permit of before the reset does not count */
    CHECK(s.state == RESIL_BREAKER_CLOSED);
    CHECK(resil_breaker_acquire(b, &p, NULL) == 0);
    CHECK(resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, 0) == 0);
    resil_breaker_snapshot_get(b, &s);
    CHECK(s.window_calls == 1);
    resil_breaker_free(b);
    return 0;
}

/* Private directory: a transition (it takes the lock first) after the file
 * was truncated to nothing. */
static int shrink_private_transition(off_t len)
{
    resil_breaker_opts o = opts_in(sub);
    resil_breaker *b;
    resil_error err;
    CHECK(new_breaker(&b, "t", &o, &err) == 0);
    truncate_in_child(cb_file("t"), len);
    CHECK(resil_breaker_trip(b) == 0);
    CHECK(size_of(cb_file("t")) == (off_t)sizeof(struct resil__cb_state));
    CHECK(resil_breaker_get_state(b) == RESIL_BREAKER_FORCED_OPEN);
    truncate_in_child(cb_file("t"), len);
    CHECK(resil_breaker_reset(b) == 0);
    resil_breaker_permit p;
    CHECK(resil_breaker_acquire(b, &p, NULL) == 0);
    CHECK(resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, 0) == 0);
    resil_breaker_snapshot s;
    resil_breaker_snapshot_get(b, &s);
    CHECK(s.consecutive_failures == 1);
    resil_breaker_free(b);
    /* and another process opens it again */
    CHECK(new_breaker(&b, "t", &o, &err) == 0);
    resil_breaker_free(b);
    return 0;
}

static int op_ok(void *arg)
{
    (void)arg;
    return 0;
}

/* A shared directory the caller opted in to: every call checks the size
 * first, so even the lock-free paths (closed-state acquire and report,
 * snapshot, get_state) survive a truncation between two calls. */
static bool guard_option; /* shrink_guarded: by guard_every_call, not by trust */

static int shrink_guarded(off_t len)
{
    resil_breaker_opts o = opts_in(sub);
    if (guard_option)
        o.guard_every_call = true;
    else
        o.state_trust = RESIL_BREAKER_TRUST_SHARED;
    resil_breaker *b;
    resil_error err;
    CHECK(new_breaker(&b, "g", &o, &err) == 0);
    resil_breaker_permit p;
    CHECK(resil_breaker_acquire(b, &p, NULL) == 0);
    CHECK(resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, 0) == 0);
    resil_breaker_snapshot s;
    CHECK(resil_breaker_snapshot_get(b, &s) == 0);
    uint64_t epoch = s.epoch;

    truncate_in_child(cb_file("g"), len);
    CHECK(resil_breaker_acquire(b, &p, NULL) == 0); /* lock-free when private */
    truncate_in_child(cb_file("g"), len);           /* while "the command runs" */
    CHECK(resil_breaker_record(b, &p, RESIL_BREAKER_SUCCESS, 0) == 0);
    truncate_in_child(cb_file("g"), len);
    CHECK(resil_breaker_get_state(b) == RESIL_BREAKER_CLOSED);
    truncate_in_child(cb_file("g"), len);
    CHECK(resil_breaker_snapshot_get(b, &s) == 0);
    CHECK(s.epoch > epoch);
    CHECK(s.consecutive_failures == 0);
    truncate_in_child(cb_file("g"), len);
    CHECK(resil_breaker_time_until_half_open(b) == 0);
    truncate_in_child(cb_file("g"), len);
    CHECK(resil_breaker_call(b, op_ok, NULL) == 0);
    CHECK(size_of(cb_file("g")) == (off_t)sizeof(struct resil__cb_state));
    resil_breaker_free(b);
    return 0;
}

static void test_shrunk_file_private(void **state)
{
    (void)state;
    resil_breaker_opts o = opts_in(sub);
    resil_breaker *b;
    resil_error err;
    assert_int_equal(new_breaker(&b, "w", &o, &err), 0); /* creates the directory */
    resil_breaker_free(b);
    off_t half = (off_t)sizeof(struct resil__cb_state) / 2;
    /* (Shorter than the counter stripes, the lock-free report of a private
     * breaker would fault: a private file is truncated only by its owner or
     * root, and resil never does.  Guarded breakers survive that too: see
     * test_shrunk_file_guarded.) */
    in_child(shrink_private_window, half);
    in_child(shrink_private_transition, 0);
    in_child(shrink_private_transition, half);
}

static void test_shrunk_file_guarded(void **state)
{
    (void)state;
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(chmod(sub, 0777), 0); /* shared: guarded */
    in_child(shrink_guarded, 0);
    in_child(shrink_guarded, (off_t)sizeof(struct resil__cb_state) / 2);
}

/* guard_every_call in a private directory: the same. */
static void test_shrunk_file_guard_option(void **state)
{
    (void)state;
    assert_int_equal(mkdir(sub, 0700), 0);
    guard_option = true;
    in_child(shrink_guarded, 0);
    in_child(shrink_guarded, (off_t)sizeof(struct resil__cb_state) / 2);
    guard_option = false;
}

/* The store counts the reset it made. */
static void test_shrink_counted(void **state)
{
    (void)state;
    resil_breaker_opts o = opts_in(sub);
    resil_breaker *b;
    resil_error err;
    assert_int_equal(new_breaker(&b, "c", &o, &err), 0);
    resil_breaker_free(b);
    resil__store *s;
    assert_int_equal(resil__store_open_file(&s, sub, "c", false, 1000 * S_NS,
                                            1700000000LL * S_NS, NULL),
                     0);
    uint64_t epoch = RESIL__CB_EPOCH(atomic_load(&s->st->word));
    truncate_in_child(cb_file("c"), 0);
    assert_int_equal(resil__store_lock(s), 0);
    resil__store_unlock(s);
    assert_int_equal(resil__store_mmap_shrink_resets(s), 1);
    assert_true(RESIL__CB_EPOCH(atomic_load(&s->st->word)) > epoch);
    assert_null(resil__cb_state_check(s->st));
    assert_string_equal(s->st->name, "c");
    resil__store_lock(s); /* the right size: nothing done */
    resil__store_unlock(s);
    assert_int_equal(resil__store_mmap_shrink_resets(s), 1);
    resil__store_close(s);
}

/* ---- read-only inspection ------------------------------------------------------------ */

static int read_only_child(off_t unused)
{
    (void)unused;
    if (setgid(65534) != 0 || setuid(65534) != 0)
        return 3;
    resil_breaker_opts o = opts_in(sub);
    o.attach_only = true;
    resil_breaker *b;
    resil_error err;
    CHECK(new_breaker(&b, "ro", &o, &err) == 0);
    CHECK(resil_breaker_is_shared(b));
    resil_breaker_snapshot s;
    CHECK(resil_breaker_snapshot_get(b, &s) == 0);
    CHECK(s.state == RESIL_BREAKER_OPEN);
    CHECK(s.consecutive_failures == 3);
    CHECK(s.failed == 3);
    CHECK(s.time_until_half_open_s > 29 && s.time_until_half_open_s <= 30);
    CHECK(s.failure_threshold == 3); /* the last opener's */
    CHECK(s.shared);
    /* it may not change anything */
    CHECK(resil_breaker_trip(b) == -EACCES);
    CHECK(resil_breaker_reset(b) == -EACCES);
    resil_breaker_free(b);
    /* nor create or open one for use */
    o.attach_only = false;
    CHECK(new_breaker(&b, "ro", &o, &err) == -EACCES);
    CHECK(new_breaker(&b, "new", &o, &err) == -EACCES);
    /* a missing one is still "no breaker" */
    o.attach_only = true;
    CHECK(new_breaker(&b, "missing", &o, &err) == -ENOENT);
    return 0;
}

static void test_read_only_status(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    resil_breaker_opts o = opts_in(sub);
    resil_breaker *b;
    resil_error err;
    assert_int_equal(new_breaker(&b, "ro", &o, &err), 0);
    for (int i = 0; i < 3; i++) {
        resil_breaker_permit p;
        assert_int_equal(resil_breaker_acquire(b, &p, NULL), 0);
        assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, 0), 0);
    }
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_OPEN);
    resil_breaker_free(b);
    /* readable by all, writable by root only */
    assert_int_equal(chmod(sub, 0755), 0);
    assert_int_equal(chmod(cb_file("ro"), 0644), 0);
    in_child(read_only_child, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_created_modes_ignore_umask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_created_modes_from_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writable_dir_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_trust_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writable_file_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_dir_and_file_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlinked_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shrunk_file_private, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shrunk_file_guarded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shrunk_file_guard_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shrink_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_status, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
