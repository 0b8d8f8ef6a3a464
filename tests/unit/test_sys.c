/* The syscall table's rules: descriptors the library creates never take
 * fds 0-2 (a daemon with stdin, stdout or stderr closed cannot get its state
 * files scribbled on), and faults injected into the newer entries (fcntl,
 * fchown, faccessat, fdopendir / readdir, mkostemp, pipe2, eventfd) give
 * clear errors and lose nothing already written. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/sys.h"
#include "resil/breaker.h"
#include "resil/cancel.h"
#include "resil/metrics.h"
#include "resil/metrics_dir.h"
#include "resil/files.h"
#include "resil/proc.h"

#define TEST_DIR_PREFIX "resil-sys"
#include "tmpdir.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static int count_files(const char *needle)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, needle) != NULL;
    closedir(d);
    return n;
}

/* ---- fds 0-2 ---------------------------------------------------------------- */

/* 0: fd is closed or /dev/null; else a bit for the check that failed. */
static int low_fd_clean(int fd, const struct stat *devnull)
{
    struct stat st;
    if (fcntl(fd, F_GETFD) < 0)
        return errno == EBADF ? 0 : 1;
    if (fstat(fd, &st) != 0)
        return 2;
    return st.st_dev == devnull->st_dev && st.st_ino == devnull->st_ino ? 0 : 4;
}

/* In a child with fds 0, 1 and 2 closed: a state file, an NDJSON append, a
 * lock, a cancel token, a temp file and a command with a stdin pipe; after
 * each, 0-2 are closed or /dev/null, and the files are right.  The child's
 * exit status says what failed. */
static int closed_stdio_child(void)
{
    struct stat devnull;
    if (stat("/dev/null", &devnull) != 0)
        return 10;
    close(0);
    close(1);
    close(2);
    const char *state = in_dir("state.json");
    json_t *v = json_pack("{s:i}", "n", 7);
    if (resil_write_json_safe(state, v, NULL, NULL) != 0)
        return 11;
    for (int fd = 0; fd < 3; fd++)
        if (low_fd_clean(fd, &devnull))
            return 12;
    /* A stray write to "stderr" goes nowhere, not into the state file. */
    (void)!write(2, "scribble", 8);
    if (resil_append_ndjson_safe(in_dir("log.ndjson"), v, NULL, NULL) != 0 ||
        resil_append_ndjson_safe(in_dir("log.ndjson"), v, NULL, NULL) != 0)
        return 13;
    (void)!write(1, "scribble", 8);
    /* A writer that stays open: what the program writes to 0-2 meanwhile
       never reaches the log. */
    resil_ndjson_writer *w;
    if (resil_ndjson_writer_open(&w, in_dir("log.ndjson"), NULL, NULL) != 0)
        return 20;
    for (int fd = 0; fd < 3; fd++)
        if (low_fd_clean(fd, &devnull) || write(fd, "scribble", 8) < 0)
            return 21;
    if (resil_ndjson_writer_append(w, v, NULL) != 0 || resil_ndjson_writer_close(w) != 0)
        return 22;
    resil_lock *l;
    if (resil_lock_acquire(&l, in_dir("state.json"), RESIL_LOCK_EXCLUSIVE, NULL, NULL) != 0)
        return 14;
    resil_lock_release(l);
    resil_cancel *c;
    if (resil_cancel_new(&c) != 0)
        return 15;
    int tfd;
    if (resil_proc_tmpfile(&tfd, dir, "t", NULL, 0, NULL) != 0 || tfd <= 2)
        return 16;
    close(tfd);
    resil_proc_spool *sp;
    int in = open(state, O_RDONLY | O_CLOEXEC);
    if (in <= 2 || resil_proc_spool_new(&sp, in, dir, NULL) != 0)
        return 17;
    char *argv[] = {"cat", NULL};
    resil_proc_opts po = RESIL_PROC_OPTS_INIT;
    po.stdin_spool = sp;
    resil_proc_result r;
    if (resil_proc_run(&r, argv, &po, NULL) != 0 || r.status != 0)
        return 18;
    for (int fd = 0; fd < 3; fd++)
        if (low_fd_clean(fd, &devnull))
            return 19;
    resil_proc_spool_free(sp);
    resil_cancel_free(c);
    json_decref(v);
    return 0;
}

static void test_files_never_take_fds_0_to_2(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(closed_stdio_child());
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(slurp(in_dir("state.json")), "{\n  \"n\": 7\n}\n");
    assert_string_equal(slurp(in_dir("log.ndjson")), "{\"n\":7}\n{\"n\":7}\n{\"n\":7}\n");
}

static void test_fd_high_moves_and_fills(void **state)
{
    (void)state;
    int saved = dup(0);
    assert_true(saved > 2);
    close(0);
    int fd = resil__sys.open(in_dir("x"), O_CREAT | O_RDWR, 0600); /* no O_CLOEXEC */
    int fd2 = resil__sys.open(in_dir("y"), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    int low_flags = fcntl(0, F_GETFD);
    struct stat st0, devnull;
    int low_stat = fstat(0, &st0);
    dup2(saved, 0);
    close(saved);
    assert_true(fd > 2);
    assert_true(fd2 > 2);
    assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0); /* its flag is kept */
    assert_int_equal(fcntl(fd2, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    assert_true(low_flags >= 0);
    assert_int_equal(low_stat, 0);
    assert_int_equal(stat("/dev/null", &devnull), 0);
    assert_true(st0.st_ino == devnull.st_ino && st0.st_dev == devnull.st_dev);
    close(fd);
    close(fd2);
    assert_int_equal(resil__sys_fd_high(-1), -1);
    assert_int_equal(resil__sys_fd_high(7), 7);
}

/* ---- faults in the newer entries ---------------------------------------------- */

static int fail_errno;

static int failing_faccessat(int d, const char *p, int m, int f)
{
    (void)d, (void)p, (void)m, (void)f;
    errno = fail_errno;
    return -1;
}

static int failing_fchown(int fd, uid_t u, gid_t g)
{
    (void)fd, (void)u, (void)g;
    errno = fail_errno;
    return -1;
}

static int failing_fcntl_int(int fd, int cmd, int arg)
{
    (void)fd, (void)cmd, (void)arg;
    errno = fail_errno;
    return -1;
}

static struct dirent *failing_readdir(DIR *d)
{
    (void)d;
    errno = fail_errno;
    return NULL;
}

static DIR *failing_fdopendir(int fd)
{
    (void)fd;
    errno = fail_errno;
    return NULL;
}

static int failing_mkostemp(char *t, int f)
{
    (void)t, (void)f;
    errno = fail_errno;
    return -1;
}

static int failing_pipe2(int p[2], int f)
{
    (void)p, (void)f;
    errno = fail_errno;
    return -1;
}

static int failing_eventfd(unsigned int v, int f)
{
    (void)v, (void)f;
    errno = fail_errno;
    return -1;
}

/* faccessat says EACCES: the replace is refused, clearly, the old content
 * stays. */
static void test_faccessat_denied(void **state)
{
    (void)state;
    const char *p = in_dir("ro.json");
    assert_int_equal(resil_write_file_atomic(p, "old", 3, NULL, NULL), 0);
    fail_errno = EACCES;
    resil__sys.faccessat = failing_faccessat;
    resil_error e;
    assert_int_equal(resil_write_file_atomic(p, "new", 3, NULL, &e), -EACCES);
    resil__sys_reset();
    assert_non_null(strstr(e.message, "refusing to replace"));
    assert_string_equal(slurp(p), "old");
    assert_int_equal(count_files("resil-tmp"), 0);
}

/* fchown and fcntl(F_GETFL) failing (EPERM, EIO) are not worth a failed
 * write: the data lands. */
static void test_fchown_fcntl_failures_tolerated(void **state)
{
    (void)state;
    const char *p = in_dir("own.json");
    assert_int_equal(resil_write_file_atomic(p, "old", 3, NULL, NULL), 0);
    fail_errno = EPERM;
    resil__sys.fchown = failing_fchown;
    assert_int_equal(resil_write_file_atomic(p, "new", 3, NULL, NULL), 0);
    assert_string_equal(slurp(p), "new");
    fail_errno = EIO;
    resil__sys.fcntl_int = failing_fcntl_int;
    char *out = NULL;
    size_t len;
    assert_int_equal(resil_read_file(&out, &len, p, NULL, NULL), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(out, "new", 3);
    free(out);
    resil__sys_reset();
}

static ssize_t die_in_write(int fd, const void *b, size_t n)
{
    (void)!write(fd, b, n / 2);
    raise(SIGKILL);
    return -1;
}

/* The sweep of a dead writer's temp file cannot list the directory (the
 * dup fails, fdopendir fails, readdir fails with EIO): the write still
 * succeeds and leaves the temp for a later sweep, which removes it. */
static void test_sweep_cannot_list(void **state)
{
    (void)state;
    const char *p = in_dir("k.json");
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.lock_timeout_s = -1;
    assert_int_equal(resil_write_file_atomic(p, "old", 3, NULL, NULL), 0);
    for (int round = 0; round < 3; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            resil__sys.write = die_in_write;
            resil_write_file_atomic(p, "new content", 11, NULL, NULL);
            _exit(0);
        }
        int st;
        waitpid(pid, &st, 0);
        assert_true(WIFSIGNALED(st));
        assert_int_equal(count_files("resil-tmp"), round + 1); /* none swept */
        fail_errno = EIO;
        if (round == 0)
            resil__sys.fcntl_int = failing_fcntl_int;
        else if (round == 1)
            resil__sys.fdopendir = failing_fdopendir;
        else
            resil__sys.readdir = failing_readdir;
        assert_int_equal(resil_write_file_atomic(p, "next", 4, &o, NULL), 0);
        resil__sys_reset();
        assert_string_equal(slurp(p), "next");
    }
    assert_int_equal(count_files("resil-tmp"), 3);
    /* A writer that dies again sets the marker: the next sweep can list. */
    pid_t pid = fork();
    if (pid == 0) {
        resil__sys.write = die_in_write;
        resil_write_file_atomic(p, "x", 1, NULL, NULL);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    assert_int_equal(resil_write_file_atomic(p, "last", 4, &o, NULL), 0);
    assert_int_equal(count_files("resil-tmp"), 0);
    assert_string_equal(slurp(p), "last");
}

static void test_proc_and_cancel_faults(void **state)
{
    (void)state;
    resil_error e;
    int fd = -2;
    fail_errno = ENOSPC;
    resil__sys.mkostemp = failing_mkostemp;
    assert_int_equal(resil_proc_tmpfile(&fd, dir, "t", NULL, 0, &e), -ENOSPC);
    assert_int_equal(fd, -1);
    assert_non_null(strstr(e.message, "the file system is full"));
    resil__sys_reset();

    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    resil_proc_spool *sp;
    assert_int_equal(resil_proc_spool_new(&sp, in, dir, NULL), 0);
    fail_errno = EMFILE;
    resil__sys.pipe2 = failing_pipe2;
    char *argv[] = {"true", NULL};
    resil_proc_opts po = RESIL_PROC_OPTS_INIT;
    po.stdin_spool = sp;
    resil_proc_result r;
    assert_int_equal(resil_proc_run(&r, argv, &po, &e), -EMFILE);
    assert_non_null(strstr(e.message, "cannot create a pipe"));
    resil__sys_reset();
    resil_proc_spool_free(sp);
    close(in);

    resil_cancel *c = NULL;
    resil__sys.eventfd = failing_eventfd;
    assert_int_equal(resil_cancel_new(&c), -EMFILE);
    resil__sys_reset();
}


/* ---- the breaker store and the metrics directory ---------------------------------- */

static int failing_mkdir(const char *p, mode_t m)
{
    (void)p, (void)m;
    errno = fail_errno;
    return -1;
}

static void *failing_mmap(void *a, size_t l, int pr, int fl, int fd, off_t o)
{
    (void)a, (void)l, (void)pr, (void)fl, (void)fd, (void)o;
    errno = fail_errno;
    return MAP_FAILED;
}

static DIR *failing_opendir(const char *p)
{
    (void)p;
    errno = fail_errno;
    return NULL;
}

static int count_names(const char *name, void *arg)
{
    (void)name;
    (*(int *)arg)++;
    return 0;
}

static resil_breaker *shared_breaker(const char *name, const char *state_dir, int *rc,
                                     resil_error *e)
{
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    o.state_dir = state_dir;
    resil_breaker *b = NULL;
    *rc = resil_breaker_new(&b, name, &o, e);
    return b;
}

/* mkdir, mmap, opendir and readdir of a shared breaker's state directory
 * fail: clear errors naming the directory or file, and the state already
 * written (a tripped breaker) is still there afterwards. */
static void test_breaker_store_faults(void **state)
{
    (void)state;
    int rc;
    resil_error e;
    resil_breaker *a = shared_breaker("sys-a", dir, &rc, &e);
    assert_int_equal(rc, 0);
    assert_true(resil_breaker_is_shared(a));
    assert_int_equal(resil_breaker_trip(a), 0);

    fail_errno = EACCES;
    resil__sys.mkdir = failing_mkdir;
    assert_null(shared_breaker("sys-b", in_dir("missing"), &rc, &e));
    resil__sys_reset();
    assert_int_equal(rc, -EACCES);
    assert_non_null(strstr(e.message, "cannot create the state directory"));
    assert_non_null(strstr(e.message, "missing"));

    fail_errno = ENOMEM;
    resil__sys.mmap = failing_mmap;
    assert_null(shared_breaker("sys-c", dir, &rc, &e));
    resil__sys_reset();
    assert_int_equal(rc, -ENOMEM);
    assert_non_null(strstr(e.message, "cannot map"));

    int n = 0;
    fail_errno = EACCES;
    resil__sys.opendir = failing_opendir;
    assert_int_equal(resil_breaker_list_dir(dir, count_names, &n, &e), -EACCES);
    resil__sys_reset();
    assert_non_null(strstr(e.message, "cannot read the state directory"));
    fail_errno = EIO;
    resil__sys.readdir = failing_readdir;
    assert_int_equal(resil_breaker_list_dir(dir, count_names, &n, &e), -EIO);
    resil__sys_reset();
    assert_int_equal(n, 0); /* a failed listing calls nobody */
    assert_non_null(strstr(e.message, "cannot read the state directory"));

    /* Nothing written was lost: the tripped state is in its file. */
    assert_int_equal(resil_breaker_list_dir(dir, count_names, &n, NULL), 0);
    assert_true(n >= 1);
    resil_breaker_free(a);
    resil_breaker *again = shared_breaker("sys-a", dir, &rc, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(resil_breaker_get_state(again), RESIL_BREAKER_FORCED_OPEN);
    resil_breaker_free(again);
}

/* The metrics directory cannot be created: the flush says so, and an
 * earlier flush elsewhere is intact. */
static void test_metrics_dir_mkdir_fault(void **state)
{
    (void)state;
    resil_metrics_registry *r = resil_metrics_default();
    assert_non_null(r);
    resil_error e;
    assert_int_equal(resil_metrics_flush_dir(r, in_dir("m1"), &e), 0);
    int before = count_files("");
    fail_errno = ENOSPC;
    resil__sys.mkdir = failing_mkdir;
    assert_int_equal(resil_metrics_flush_dir(r, in_dir("m2"), &e), -ENOSPC);
    resil__sys_reset();
    assert_non_null(strstr(e.message, "cannot create the metrics directory"));
    assert_int_equal(count_files(""), before);
    assert_int_equal(access(in_dir("m1"), F_OK), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_files_never_take_fds_0_to_2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_high_moves_and_fills, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faccessat_denied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fchown_fcntl_failures_tolerated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_cannot_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proc_and_cancel_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_breaker_store_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_dir_mkdir_fault, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
