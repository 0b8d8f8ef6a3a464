/* Process-safe files: locks, atomic replace, JSON state, updates, NDJSON,
 * and fault injection at every syscall of a write. */
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
#include <unistd.h>

#include "internal/sys.h"
#include "resil/files.h"

/* ---- a private directory per test --------------------------------------------- */

#define TEST_DIR_PREFIX "resil-files"
#include "tmpdir.h"

/* Files in dir whose name contains `needle`. */
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

static char *slurp(const char *path)
{
    char *buf;
    size_t len;
    return resil_read_file(&buf, &len, path, NULL, NULL) == 0 ? buf : NULL;
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* ---- locks --------------------------------------------------------------------- */

static resil_file_opts one_try(void)
{
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.lock_timeout_s = -1;
    return o;
}

static void test_lock_modes(void **state)
{
    (void)state;
    const char *p = in_dir("state.json");
    resil_file_opts o = one_try();
    resil_lock *a, *b, *c;
    resil_error e;

    assert_int_equal(resil_lock_acquire(&a, p, RESIL_LOCK_EXCLUSIVE, &o, &e), 0);
    assert_string_equal(resil_lock_path(a), in_dir("state.json.lock"));
    /* A second exclusive, even in this process and thread, is refused. */
    assert_int_equal(resil_lock_acquire(&b, p, RESIL_LOCK_EXCLUSIVE, &o, &e), RESIL_ETIMEDOUT);
    assert_non_null(strstr(e.message, "state.json.lock"));
    char pid[32];
    snprintf(pid, sizeof pid, "pid %ld on host ", (long)getpid());
    assert_non_null(strstr(e.message, pid));
    assert_int_equal(resil_lock_acquire(&b, p, RESIL_LOCK_SHARED, &o, &e), RESIL_ETIMEDOUT);
    assert_int_equal(resil_lock_release(a), 0);

    /* Shared locks coexist and keep exclusive ones out. */
    assert_int_equal(resil_lock_acquire(&a, p, RESIL_LOCK_SHARED, &o, NULL), 0);
    assert_int_equal(resil_lock_acquire(&b, p, RESIL_LOCK_SHARED, &o, NULL), 0);
    assert_int_equal(resil_lock_acquire(&c, p, RESIL_LOCK_EXCLUSIVE, &o, &e), RESIL_ETIMEDOUT);
    /* The timeout names the shared holders that block, not the last
     * exclusive one (issue 10). */
    assert_non_null(strstr(e.message, "held shared by pid"));
    assert_non_null(strstr(e.message, "and 1 more"));
    resil_lock_release(a);
    resil_lock_release(b);
    assert_int_equal(resil_lock_acquire(&c, p, RESIL_LOCK_EXCLUSIVE, &o, NULL), 0);
    resil_lock_release(c);
    resil_lock_release(NULL);

    /* Bad arguments and a missing directory. */
    assert_int_equal(resil_lock_acquire(&a, p, (resil_lock_mode)7, &o, NULL), RESIL_EINVAL);
    assert_int_equal(resil_lock_acquire(&a, in_dir("no/such/dir/x"), RESIL_LOCK_SHARED, &o, &e),
                     -ENOENT);
    assert_non_null(strstr(e.message, "no/such/dir/x.lock"));
    /* The sidecar stays (it is never unlinked). */
    struct stat st;
    assert_int_equal(stat(in_dir("state.json.lock"), &st), 0);
}

static void test_lock_timeout_on_fake_clock(void **state)
{
    (void)state;
    const char *p = in_dir("t");
    resil_lock *a, *b;
    assert_int_equal(resil_lock_acquire(&a, p, RESIL_LOCK_EXCLUSIVE, NULL, NULL), 0);
    resil_fake_clock fc;
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.clock = resil_fake_clock_init(&fc, 0, 0);
    o.lock_timeout_s = 5;
    int64_t real0 = resil_clock_monotonic_ns(NULL);
    resil_error e;
    assert_int_equal(resil_lock_acquire(&b, p, RESIL_LOCK_EXCLUSIVE, &o, &e), RESIL_ETIMEDOUT);
    /* Waited exactly the timeout in fake time, no sleep past it, and polled
     * with backoff (not thousands of tries). */
    assert_int_equal(resil_fake_clock_now(&fc), 5000000000LL);
    assert_true(resil_fake_clock_sleeps(&fc) > 5 && resil_fake_clock_sleeps(&fc) < 400);
    assert_true(resil_clock_monotonic_ns(NULL) - real0 < 2000000000LL);
    assert_non_null(strstr(e.message, "timed out after 5 s"));
    /* The default (RESIL_FILE_OPTS_INIT) is 10 s. */
    resil_file_opts d = RESIL_FILE_OPTS_INIT;
    assert_true(d.lock_timeout_s == RESIL_FILE_DEFAULT_LOCK_TIMEOUT_S);
    o.lock_timeout_s = d.lock_timeout_s;
    resil_fake_clock_init(&fc, 0, 0);
    assert_int_equal(resil_lock_acquire(&b, p, RESIL_LOCK_SHARED, &o, NULL), RESIL_ETIMEDOUT);
    assert_int_equal(resil_fake_clock_now(&fc), 10000000000LL);
    /* 0 means one try, no wait (as `resil lock --timeout 0`), like < 0. */
    o.lock_timeout_s = 0;
    resil_fake_clock_init(&fc, 0, 0);
    assert_int_equal(resil_lock_acquire(&b, p, RESIL_LOCK_SHARED, &o, &e), RESIL_ETIMEDOUT);
    assert_int_equal(resil_fake_clock_now(&fc), 0);
    assert_int_equal(resil_fake_clock_sleeps(&fc), 0);
    o.lock_timeout_s = -1;
    assert_int_equal(resil_lock_acquire(&b, p, RESIL_LOCK_SHARED, &o, &e), RESIL_ETIMEDOUT);
    assert_int_equal(resil_fake_clock_now(&fc), 0);
    /* Cancelled: at once. */
    o.lock_timeout_s = 5;
    resil_cancel *tok;
    resil_cancel_new(&tok);
    resil_cancel_cancel(tok);
    o.cancel = tok;
    assert_int_equal(resil_lock_acquire(&b, p, RESIL_LOCK_SHARED, &o, &e), RESIL_ECANCELED);
    resil_cancel_free(tok);
    resil_lock_release(a);
}

/* Threads of one process exclude each other: a plain read-increment-write
 * of a counter file under the lock loses nothing. */
struct counter_arg {
    const char *path, *data;
    int rounds;
};

static void *count_thread(void *argp)
{
    struct counter_arg *a = argp;
    for (int i = 0; i < a->rounds; i++) {
        resil_lock *lk;
        if (resil_lock_acquire(&lk, a->path, RESIL_LOCK_EXCLUSIVE, NULL, NULL) != 0)
            return (void *)1;
        int fd = open(a->data, O_RDWR | O_CREAT, 0644);
        char buf[32] = {0};
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        long v = n > 0 ? strtol(buf, NULL, 10) : 0;
        int len = snprintf(buf, sizeof buf, "%ld\n", v + 1);
        (void)!pwrite(fd, buf, (size_t)len, 0);
        close(fd);
        resil_lock_release(lk);
    }
    return NULL;
}

static void test_lock_threads_exclude(void **state)
{
    (void)state;
    struct counter_arg a = {in_dir("c"), in_dir("c.data"), 500};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, count_thread, &a);
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        assert_null(rv);
    }
    char *s = slurp(a.data);
    assert_string_equal(s, "2000\n");
    free(s);
}

/* Runs fn in a child process; returns its exit status. */
static int in_child(int (*fn)(const char *), const char *p)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(p));
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

static int child_try_exclusive(const char *p)
{
    resil_file_opts o = one_try();
    resil_lock *lk;
    int rc = resil_lock_acquire(&lk, p, RESIL_LOCK_EXCLUSIVE, &o, NULL);
    if (rc == 0) {
        resil_lock_release(lk);
        return 0; /* got it */
    }
    return rc == RESIL_ETIMEDOUT ? 1 : 2;
}

static void test_lock_close_and_fork(void **state)
{
    (void)state;
    const char *p = in_dir("f");
    resil_lock *lk;
    assert_int_equal(resil_lock_acquire(&lk, p, RESIL_LOCK_EXCLUSIVE, NULL, NULL), 0);
    /* An unrelated open+close of the sidecar in this process does not drop
     * the lock (it would with POSIX record locks). */
    int fd = open(in_dir("f.lock"), O_RDONLY);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(in_child(child_try_exclusive, p), 1);

    /* A child made by fork() inherits the descriptor but does not own the
     * lock: a new acquire in it is refused... */
    pid_t holder = fork();
    if (holder == 0) {
        /* keeps the inherited descriptor open for a while */
        usleep(300000);
        _exit(0);
    }
    assert_int_equal(in_child(child_try_exclusive, p), 1);
    /* ...and our release frees the lock even while that child still has a
     * copy of the descriptor. */
    assert_int_equal(resil_lock_release(lk), 0);
    assert_int_equal(in_child(child_try_exclusive, p), 0);
    waitpid(holder, NULL, 0);
}

/* ---- atomic replace --------------------------------------------------------------- */

static void test_atomic_write_basics(void **state)
{
    (void)state;
    const char *p = in_dir("a.txt");
    resil_error e;
    assert_int_equal(resil_write_file_atomic(p, "one\n", 4, NULL, &e), 0);
    char *s = slurp(p);
    assert_string_equal(s, "one\n");
    free(s);
    /* New files: 0644 less the umask. */
    struct stat st;
    mode_t um = umask(022);
    umask(um);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644 & ~um);
    /* An existing file keeps its mode. */
    chmod(p, 0600);
    assert_int_equal(resil_write_file_atomic(p, "two", 3, NULL, &e), 0);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    s = slurp(p);
    assert_string_equal(s, "two");
    free(s);
    /* opts.mode: exactly that mode for a new file. */
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.mode = 0640;
    o.durability = RESIL_DURABLE_FILE;
    assert_int_equal(resil_write_file_atomic(in_dir("m.txt"), "", 0, &o, &e), 0);
    assert_int_equal(stat(in_dir("m.txt"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(st.st_size, 0);
    /* No temp file is left behind. */
    assert_int_equal(count_files("resil-tmp"), 0);
    /* Not a regular file: refused, nothing created. */
    mkdir(in_dir("d"), 0755);
    assert_int_equal(resil_write_file_atomic(in_dir("d"), "x", 1, NULL, &e), RESIL_EINVAL);
    assert_non_null(strstr(e.message, "not a regular file"));
    assert_int_equal(count_files("resil-tmp"), 0);
    /* Missing directory. */
    assert_int_equal(resil_write_file_atomic(in_dir("nodir/x"), "x", 1, NULL, &e), -ENOENT);
}

static void test_atomic_write_symlink(void **state)
{
    (void)state;
    mkdir(in_dir("real"), 0755);
    put(in_dir("real/target.json"), "{}");
    assert_int_equal(symlink("real/target.json", in_dir("link.json")), 0);
    assert_int_equal(resil_write_file_atomic(in_dir("link.json"), "[1]", 3, NULL, NULL), 0);
    struct stat st;
    assert_int_equal(lstat(in_dir("link.json"), &st), 0);
    assert_true(S_ISLNK(st.st_mode)); /* the link stays */
    char *s = slurp(in_dir("real/target.json"));
    assert_string_equal(s, "[1]");
    free(s);
    /* A dangling link: the target is created. */
    assert_int_equal(symlink("real/new.json", in_dir("dangling")), 0);
    assert_int_equal(resil_write_file_atomic(in_dir("dangling"), "2", 1, NULL, NULL), 0);
    s = slurp(in_dir("real/new.json"));
    assert_string_equal(s, "2");
    free(s);
    /* A loop is an error, not a hang. */
    assert_int_equal(symlink("loop2", in_dir("loop1")), 0);
    assert_int_equal(symlink("loop1", in_dir("loop2")), 0);
    assert_int_equal(resil_write_file_atomic(in_dir("loop1"), "x", 1, NULL, NULL), -ELOOP);
}

static void test_stale_temps_swept(void **state)
{
    (void)state;
    char host[256];
    gethostname(host, sizeof host);
    /* A dead writer's temp (pid 0x7ffffff0 does not exist), a live writer's
     * recent temp (ours), and an old temp from another host. */
    char dead[300], live[300], other[300];
    snprintf(dead, sizeof dead, ".s.json.resil-tmp.%d.deadbeef.%s", 0x7ffffff0, host);
    snprintf(live, sizeof live, ".s.json.resil-tmp.%ld.cafef00d.%s", (long)getpid(), host);
    snprintf(other, sizeof other, ".s.json.resil-tmp.123.00000001.elsewhere");
    put(in_dir(dead), "x");
    put(in_dir(live), "x");
    put(in_dir(other), "x");
    struct timespec old[2] = {{.tv_sec = time(NULL) - 7200}, {.tv_sec = time(NULL) - 7200}};
    utimensat(AT_FDCWD, in_dir(other), old, 0);
    put(in_dir(".other.json.resil-tmp.1.00000001.x"), "x"); /* another file's: not ours */
    /* While the last holder released its lock cleanly, nobody looks. */
    assert_int_equal(resil_write_file_atomic(in_dir("s.json"), "{}", 2, NULL, NULL), 0);
    assert_int_equal(access(in_dir(dead), F_OK), 0);
    /* A holder of this host that no longer exists is named in the sidecar
     * (it died holding the lock): the next writer sweeps. */
    char note[400];
    snprintf(note, sizeof note, "pid %d on host %s\n", 0x7ffffff0, host);
    put(in_dir("s.json.lock"), note);
    assert_int_equal(resil_write_file_atomic(in_dir("s.json"), "{}", 2, NULL, NULL), 0);
    assert_int_equal(access(in_dir(dead), F_OK), -1);
    assert_int_equal(access(in_dir(other), F_OK), -1);
    assert_int_equal(access(in_dir(live), F_OK), 0);
    assert_int_equal(access(in_dir(".other.json.resil-tmp.1.00000001.x"), F_OK), 0);
}

/* A writer killed in the middle of a write leaves its temp file and its
 * note; the next writer sweeps the temp and the old content is intact. */
static ssize_t die_in_write(int fd, const void *b, size_t n)
{
    (void)!write(fd, b, n / 2);
    raise(SIGKILL);
    return -1;
}

static void test_killed_writer_swept(void **state)
{
    (void)state;
    const char *p = in_dir("k.json");
    assert_int_equal(resil_write_file_atomic(p, "old", 3, NULL, NULL), 0);
    pid_t pid = fork();
    if (pid == 0) {
        resil__sys.write = die_in_write;
        resil_write_file_atomic(p, "new content", 11, NULL, NULL);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    assert_int_equal(count_files("resil-tmp"), 1); /* its half-written temp */
    char *s = slurp(p);
    assert_string_equal(s, "old");
    free(s);
    /* The lock died with it (no wait), and the next write sweeps. */
    resil_file_opts o = one_try();
    assert_int_equal(resil_write_file_atomic(p, "next", 4, &o, NULL), 0);
    assert_int_equal(count_files("resil-tmp"), 0);
    s = slurp(p);
    assert_string_equal(s, "next");
    free(s);
}

/* Review findings: FIFOs are refused without waiting for a writer; only
 * temp names resil makes are ever swept; owner and mode (even 0000, and the
 * setuid bit) survive a replace. */
static void test_fifo_owner_mode_sweep_names(void **state)
{
    (void)state;
    resil_error e;
    assert_int_equal(mkfifo(in_dir("fifo"), 0644), 0);
    json_t *v;
    assert_int_equal(resil_read_json_safe(&v, in_dir("fifo"), NULL, &e), RESIL_EINVAL);
    assert_int_equal(resil_read_ndjson_safe(in_dir("fifo"), NULL, NULL, NULL, false, NULL, NULL,
                                            &e),
                     RESIL_EINVAL);

    const char *p = in_dir("owned");
    put(p, "old");
    assert_int_equal(chmod(p, 0), 0);
    /* A file without write bits is refused unless forced (issue 10). */
    resil_file_opts force = RESIL_FILE_OPTS_INIT;
    force.force = true;
    assert_int_equal(resil_write_file_atomic(p, "new", 3, &force, NULL), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0);
    if (geteuid() == 0) {
        assert_int_equal(chown(p, 1234, 5678), 0);
        assert_int_equal(chmod(p, 04750), 0);
        assert_int_equal(resil_write_file_atomic(p, "newer", 5, NULL, NULL), 0);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_uid, 1234);
        assert_int_equal(st.st_gid, 5678);
        assert_int_equal(st.st_mode & 07777, 04750);
    }

    /* A user's file that merely looks like a temp name is never swept. */
    char host[256], note[400];
    gethostname(host, sizeof host);
    put(in_dir(".s.json.resil-tmp.notes"), "mine");
    struct timespec old[2] = {{.tv_sec = time(NULL) - 7200}, {.tv_sec = time(NULL) - 7200}};
    utimensat(AT_FDCWD, in_dir(".s.json.resil-tmp.notes"), old, 0);
    snprintf(note, sizeof note, "pid %d on host %s\n", 0x7ffffff0, host);
    put(in_dir("s.json.lock"), note);
    assert_int_equal(resil_write_file_atomic(in_dir("s.json"), "{}", 2, NULL, NULL), 0);
    assert_int_equal(access(in_dir(".s.json.resil-tmp.notes"), F_OK), 0);
}

/* An fdatasync that fails after the record was written: the record is in
 * the log, and the code says so (no retry into a duplicate). */
static int failing_fdatasync(int fd)
{
    (void)fd;
    errno = EIO;
    return -1;
}

static void test_ndjson_sync_failure_is_durability(void **state)
{
    (void)state;
    const char *p = in_dir("s.ndjson");
    resil__sys_reset();
    resil__sys.fdatasync = failing_fdatasync;
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.sync_each = true;
    json_t *r = json_pack("{s:i}", "a", 1);
    resil_error e;
    int rc = resil_append_ndjson_safe(p, r, &o, &e);
    resil__sys_reset();
    json_decref(r);
    assert_int_equal(rc, RESIL_EDURABILITY);
    assert_int_equal(e.sys_errno, EIO);
    char *s = slurp(p);
    assert_string_equal(s, "{\"a\":1}\n");
    free(s);
}

/* ---- fault injection at every syscall of a write ---------------------------------- */

static int calls, fail_at, fail_errno;
static bool short_write; /* the failing write writes half, then fails */
static struct resil__sys_table real;

#define MAYBE_FAIL()                  \
    do {                              \
        if (++calls == fail_at) {     \
            errno = fail_errno;       \
            return -1;                \
        }                             \
    } while (0)

static int f_open(const char *p, int fl, mode_t m) { MAYBE_FAIL(); return real.open(p, fl, m); }
static int f_openat(int d, const char *p, int fl, mode_t m) { MAYBE_FAIL(); return real.openat(d, p, fl, m); }
static int f_close(int fd)
{
    if (++calls == fail_at) {
        real.close(fd); /* close fails after releasing the descriptor, as on Linux */
        errno = fail_errno;
        return -1;
    }
    return real.close(fd);
}
static ssize_t f_read(int fd, void *b, size_t n) { MAYBE_FAIL(); return real.read(fd, b, n); }
static ssize_t f_write(int fd, const void *b, size_t n)
{
    if (++calls == fail_at) {
        if (short_write && n > 1)
            return real.write(fd, b, n / 2); /* a short write; the next call fails */
        errno = fail_errno;
        return -1;
    }
    if (short_write && calls == fail_at + 1) {
        errno = fail_errno;
        return -1;
    }
    return real.write(fd, b, n);
}
static ssize_t f_pwrite(int fd, const void *b, size_t n, off_t o) { MAYBE_FAIL(); return real.pwrite(fd, b, n, o); }
static int f_fsync(int fd) { MAYBE_FAIL(); return real.fsync(fd); }
static int f_fdatasync(int fd) { MAYBE_FAIL(); return real.fdatasync(fd); }
static int f_ftruncate(int fd, off_t l) { MAYBE_FAIL(); return real.ftruncate(fd, l); }
static int f_fstat(int fd, struct stat *st) { MAYBE_FAIL(); return real.fstat(fd, st); }
static int f_lstat(const char *p, struct stat *st) { MAYBE_FAIL(); return real.lstat(p, st); }
static int f_fstatat(int d, const char *p, struct stat *st, int fl) { MAYBE_FAIL(); return real.fstatat(d, p, st, fl); }
static int f_fchmod(int fd, mode_t m) { MAYBE_FAIL(); return real.fchmod(fd, m); }
static int f_renameat(int a, const char *f, int b, const char *t) { MAYBE_FAIL(); return real.renameat(a, f, b, t); }
static int f_unlinkat(int d, const char *p, int fl) { MAYBE_FAIL(); return real.unlinkat(d, p, fl); }
static int f_fcntl_lock(int fd, int cmd, struct flock *fl) { MAYBE_FAIL(); return real.fcntl_lock(fd, cmd, fl); }

static void inject(void)
{
    resil__sys_reset();
    real = resil__sys;
    resil__sys.open = f_open;
    resil__sys.openat = f_openat;
    resil__sys.close = f_close;
    resil__sys.read = f_read;
    resil__sys.write = f_write;
    resil__sys.pwrite = f_pwrite;
    resil__sys.fsync = f_fsync;
    resil__sys.fdatasync = f_fdatasync;
    resil__sys.ftruncate = f_ftruncate;
    resil__sys.fstat = f_fstat;
    resil__sys.lstat = f_lstat;
    resil__sys.fstatat = f_fstatat;
    resil__sys.fchmod = f_fchmod;
    resil__sys.renameat = f_renameat;
    resil__sys.unlinkat = f_unlinkat;
    resil__sys.fcntl_lock = f_fcntl_lock;
}

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void check_every_call_site(resil_durability durability, int err_no, bool shorten)
{
    const char *p = in_dir("fi.json");
    json_t *old = json_pack("{s:s, s:i}", "version", "old", "n", 1);
    json_t *new = json_pack("{s:s, s:i, s:s}", "version", "new", "n", 2, "pad",
                            "0123456789012345678901234567890123456789");
    resil__sys_reset();
    assert_int_equal(resil_write_json_safe(p, old, NULL, NULL), 0);
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.durability = durability;
    o.lock_timeout_s = -1;

    /* How many calls does a good write make? */
    inject();
    calls = 0;
    fail_at = -1;
    assert_int_equal(resil_write_json_safe(p, new, &o, NULL), 0);
    int total = calls;
    assert_true(total > 8);
    resil__sys_reset();
    assert_int_equal(resil_write_json_safe(p, old, NULL, NULL), 0);

    int fds = open_fds();
    int failures = 0;
    for (int i = 1; i <= total + 1; i++) {
        inject();
        calls = 0;
        fail_at = i;
        fail_errno = err_no;
        short_write = shorten;
        resil_error e;
        resil_error_clear(&e);
        int rc = resil_write_json_safe(p, new, &o, &e);
        resil__sys_reset();
        short_write = false;
        json_t *now;
        assert_int_equal(resil_read_json_safe(&now, p, NULL, NULL), 0);
        if (rc == 0 || rc == RESIL_EDURABILITY) {
            assert_true(json_equal(now, new)); /* replaced */
            /* put the old content back for the next round */
            assert_int_equal(resil_write_json_safe(p, old, NULL, NULL), 0);
        } else {
            failures++;
            assert_true(json_equal(now, old)); /* untouched */
            assert_true(e.message[0] != '\0'); /* and said why */
            assert_int_equal(e.code, rc);
        }
        json_decref(now);
        assert_int_equal(count_files("resil-tmp"), 0);
        assert_int_equal(open_fds(), fds); /* no descriptor leaked */
    }
    assert_true(failures > 3);
    json_decref(old);
    json_decref(new);
}

static void test_faults_every_call_site(void **state)
{
    (void)state;
    check_every_call_site(RESIL_DURABLE_FULL, EIO, false);
    check_every_call_site(RESIL_DURABLE_FULL, ENOSPC, true);
    check_every_call_site(RESIL_DURABLE_FILE, EIO, false);
    check_every_call_site(RESIL_DURABLE_NONE, ENOSPC, false);
}

/* EINTR is retried, never reported. */
static int eintr_left;
static ssize_t eintr_write(int fd, const void *b, size_t n)
{
    if (eintr_left > 0) {
        eintr_left--;
        errno = EINTR;
        return -1;
    }
    return real.write(fd, b, n);
}

static void test_eintr_retried(void **state)
{
    (void)state;
    resil__sys_reset();
    real = resil__sys;
    resil__sys.write = eintr_write;
    eintr_left = 3;
    assert_int_equal(resil_write_file_atomic(in_dir("e"), "abc", 3, NULL, NULL), 0);
    eintr_left = 2;
    json_t *r = json_pack("{s:i}", "a", 1);
    assert_int_equal(resil_append_ndjson_safe(in_dir("e.ndjson"), r, NULL, NULL), 0);
    json_decref(r);
    resil__sys_reset();
    char *s = slurp(in_dir("e"));
    assert_string_equal(s, "abc");
    free(s);
    s = slurp(in_dir("e.ndjson"));
    assert_string_equal(s, "{\"a\":1}\n");
    free(s);
}

/* A failing directory fsync after the rename: replaced, durability unknown,
 * and the new file is never deleted. */
static int fsyncs;
static int second_fsync_fails(int fd)
{
    if (++fsyncs == 2) {
        errno = EIO;
        return -1;
    }
    return real.fsync(fd);
}

static void test_dir_fsync_failure(void **state)
{
    (void)state;
    resil__sys_reset();
    real = resil__sys;
    resil__sys.fsync = second_fsync_fails;
    fsyncs = 0;
    resil_error e;
    int rc = resil_write_file_atomic(in_dir("dur"), "new", 3, NULL, &e);
    resil__sys_reset();
    assert_int_equal(rc, RESIL_EDURABILITY);
    assert_int_equal(e.sys_errno, EIO);
    assert_non_null(strstr(e.message, "was replaced"));
    char *s = slurp(in_dir("dur"));
    assert_string_equal(s, "new");
    free(s);
}

/* ---- JSON state ---------------------------------------------------------------------- */

static void test_json_roundtrip_and_errors(void **state)
{
    (void)state;
    const char *p = in_dir("doc.json");
    json_t *v = json_pack("{s:i, s:[s, f, b, n], s:{}}", "count", 3, "list", "é", 0.1, 1, "o");
    assert_int_equal(resil_write_json_safe(p, v, NULL, NULL), 0);
    char *text = slurp(p);
    assert_non_null(strstr(text, "\n  \"list\""));       /* indented */
    assert_true(text[strlen(text) - 1] == '\n');           /* final newline */
    assert_true(strstr(text, "\"count\"") < strstr(text, "\"list\"")); /* order kept */
    free(text);
    json_t *back;
    assert_int_equal(resil_read_json_safe(&back, p, NULL, NULL), 0);
    assert_true(json_equal(v, back));
    json_decref(back);
    json_decref(v);

    resil_error e;
    put(p, "{\n  \"a\": 1,\n  \"b\": tru\n}\n");
    assert_int_equal(resil_read_json_safe(&back, p, NULL, &e), RESIL_EPARSE);
    assert_int_equal(e.line, 3);
    assert_true(e.column > 0);
    assert_string_equal(e.path, p);
    assert_non_null(strstr(e.message, "doc.json:3:"));
    put(p, "{\"a\": 1, \"a\": 2}");
    assert_int_equal(resil_read_json_safe(&back, p, NULL, &e), RESIL_EPARSE);
    assert_non_null(strstr(e.message, "duplicate"));
    assert_int_equal(resil_read_json_safe(&back, in_dir("missing.json"), NULL, &e), -ENOENT);
    assert_non_null(strstr(e.message, "missing.json"));
    assert_int_equal(resil_read_json_safe(&back, dir, NULL, &e), RESIL_EINVAL);
    assert_non_null(strstr(e.message, "not a regular file"));
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.max_size = 4;
    put(p, "[1, 2, 3]");
    assert_int_equal(resil_read_json_safe(&back, p, &o, &e), -EFBIG);
    assert_non_null(strstr(e.message, "limit of 4 bytes"));
    /* Values jansson refuses to encode. */
    json_t *nan = json_real(0.0);
    json_t *bad = json_string_nocheck("\xff\xfe");
    assert_int_equal(resil_write_json_safe(p, bad, NULL, &e), RESIL_EINVAL);
    json_decref(bad);
    json_decref(nan);
    char *s = slurp(p);
    assert_string_equal(s, "[1, 2, 3]"); /* untouched */
    free(s);
}

static int increment(json_t **doc, void *arg)
{
    (void)arg;
    if (!*doc)
        *doc = json_pack("{s:i}", "count", 0);
    json_t *c = json_object_get(*doc, "count");
    json_object_set_new(*doc, "count", json_integer(json_integer_value(c) + 1));
    return 0;
}

static int leave(json_t **doc, void *arg)
{
    (void)doc;
    return *(int *)arg;
}

static void test_update(void **state)
{
    (void)state;
    const char *p = in_dir("u.json");
    assert_int_equal(resil_update_json_safe(p, increment, NULL, NULL, NULL), 0);
    assert_int_equal(resil_update_json_safe(p, increment, NULL, NULL, NULL), 0);
    json_t *v;
    assert_int_equal(resil_read_json_safe(&v, p, NULL, NULL), 0);
    assert_int_equal(json_integer_value(json_object_get(v, "count")), 2);
    json_decref(v);
    char *before = slurp(p);
    int r = 1;
    assert_int_equal(resil_update_json_safe(p, leave, &r, NULL, NULL), 0);
    r = -77;
    resil_error e;
    assert_int_equal(resil_update_json_safe(p, leave, &r, NULL, &e), -77);
    char *after = slurp(p);
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* A file that does not parse is not overwritten. */
    put(p, "{broken");
    assert_int_equal(resil_update_json_safe(p, increment, NULL, NULL, &e), RESIL_EPARSE);
    after = slurp(p);
    assert_string_equal(after, "{broken");
    free(after);
}

/* 4 processes x 2500 updates of one counter: exactly 10000. */
static void test_update_no_lost_updates(void **state)
{
    (void)state;
    const char *p = in_dir("counter.json");
    enum { PROCS = 4, EACH = 2500 };
    pid_t kids[PROCS];
    for (int k = 0; k < PROCS; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            resil_file_opts o = RESIL_FILE_OPTS_INIT;
            o.durability = RESIL_DURABLE_NONE; /* the property is the locking */
            o.lock_timeout_s = 120;
            for (int i = 0; i < EACH; i++) {
                if (resil_update_json_safe(p, increment, NULL, &o, NULL) != 0)
                    _exit(1);
            }
            _exit(0);
        }
    }
    for (int k = 0; k < PROCS; k++) {
        int st;
        waitpid(kids[k], &st, 0);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    json_t *v;
    assert_int_equal(resil_read_json_safe(&v, p, NULL, NULL), 0);
    assert_int_equal(json_integer_value(json_object_get(v, "count")), PROCS * EACH);
    json_decref(v);
    assert_int_equal(count_files("resil-tmp"), 0);
}

/* ---- NDJSON -------------------------------------------------------------------------- */

struct collected {
    int n;
    long sum;
    size_t bad[8];
    int nbad;
};

static int collect(json_t *rec, size_t line, void *arg)
{
    (void)line;
    struct collected *c = arg;
    c->n++;
    c->sum += json_integer_value(json_object_get(rec, "i"));
    return 0;
}

static void on_bad(size_t line, const char *msg, void *arg)
{
    (void)msg;
    struct collected *c = arg;
    if (c->nbad < 8)
        c->bad[c->nbad++] = line;
}

static void test_ndjson_basics(void **state)
{
    (void)state;
    const char *p = in_dir("log.ndjson");
    for (int i = 1; i <= 3; i++) {
        json_t *r = json_pack("{s:i, s:s}", "i", i, "msg", "line\nwith newline");
        assert_int_equal(resil_append_ndjson_safe(p, r, NULL, NULL), 0);
        json_decref(r);
    }
    json_t *batch[2] = {json_pack("{s:i}", "i", 10), json_pack("{s:i}", "i", 20)};
    assert_int_equal(resil_append_ndjson_batch(p, (const json_t *const *)batch, 2, NULL, NULL), 0);
    json_decref(batch[0]);
    json_decref(batch[1]);
    struct collected c = {0};
    resil_ndjson_stats st;
    assert_int_equal(resil_read_ndjson_safe(p, collect, on_bad, &c, true, &st, NULL, NULL), 0);
    assert_int_equal(c.n, 5);
    assert_int_equal(c.sum, 36);
    assert_int_equal(st.records, 5);
    assert_int_equal(st.torn_bytes, 0);

    /* Bad lines are skipped and reported by number; a torn tail is counted,
     * never parsed; strict mode makes either an error. */
    FILE *f = fopen(p, "a");
    fputs("not json\n\n{\"i\": 100}\n{\"i\": 1000, \"x\"", f);
    fclose(f);
    memset(&c, 0, sizeof c);
    assert_int_equal(resil_read_ndjson_safe(p, collect, on_bad, &c, false, &st, NULL, NULL), 0);
    assert_int_equal(c.n, 6);
    assert_int_equal(c.sum, 136);
    assert_int_equal(c.nbad, 1);
    assert_int_equal(c.bad[0], 6);
    assert_int_equal(st.first_bad_line, 6);
    assert_int_equal(st.torn_bytes, strlen("{\"i\": 1000, \"x\""));
    resil_error e;
    memset(&c, 0, sizeof c);
    assert_int_equal(resil_read_ndjson_safe(p, collect, NULL, &c, true, &st, NULL, &e),
                     RESIL_EPARSE);
    assert_int_equal(e.line, 6);

    /* Repair keeps a tail that resil did not write (here fputs wrote it);
     * forced, it cuts the torn tail only. */
    size_t cut;
    assert_int_equal(resil_repair_ndjson(p, &cut, NULL, NULL), RESIL_EPARSE);
    assert_int_equal(cut, 0);
    assert_int_equal(resil_repair_ndjson_force(p, &cut, NULL, NULL), 0);
    assert_int_equal(cut, strlen("{\"i\": 1000, \"x\""));
    assert_int_equal(resil_repair_ndjson(p, &cut, NULL, NULL), 0);
    assert_int_equal(cut, 0);
    memset(&c, 0, sizeof c);
    assert_int_equal(resil_read_ndjson_safe(p, collect, NULL, &c, false, &st, NULL, NULL), 0);
    assert_int_equal(st.torn_bytes, 0);
    assert_int_equal(c.n, 6);

    /* A callback can stop the read. */
    assert_int_equal(resil_read_ndjson_safe(in_dir("none"), collect, NULL, &c, false, NULL, NULL,
                                            &e),
                     -ENOENT);
}

/* An append that fails half-way leaves the log as it was. */
static void test_ndjson_failed_append_truncated(void **state)
{
    (void)state;
    const char *p = in_dir("t.ndjson");
    json_t *r = json_pack("{s:s}", "k", "0123456789012345678901234567890123456789");
    assert_int_equal(resil_append_ndjson_safe(p, r, NULL, NULL), 0);
    char *before = slurp(p);
    for (int i = 1; i <= 12; i++) {
        inject();
        calls = 0;
        fail_at = i;
        fail_errno = ENOSPC;
        short_write = true;
        resil_error e;
        int rc = resil_append_ndjson_safe(p, r, NULL, &e);
        resil__sys_reset();
        short_write = false;
        char *now = slurp(p);
        if (rc == 0) {
            assert_int_equal(strlen(now), 2 * strlen(before));
            assert_int_equal(truncate(p, (off_t)strlen(before)), 0);
        } else {
            assert_string_equal(now, before);
        }
        free(now);
    }
    free(before);
    json_decref(r);
}

/* Pre-encoded records, and a torn record left by someone else between two
 * appends of a writer that remembers where its last append ended. */
static void test_ndjson_text_and_torn_between(void **state)
{
    (void)state;
    const char *p = in_dir("text.ndjson");
    resil_ndjson_writer *w;
    resil_error e;
    assert_int_equal(resil_ndjson_writer_open(&w, p, NULL, &e), 0);
    assert_int_equal(resil_ndjson_writer_append_text(w, "{\"i\":1}", 7, &e), 0);
    assert_int_equal(resil_ndjson_writer_append_text(w, "{\"i\":2}\n", 8, &e), 0);
    assert_int_equal(resil_ndjson_writer_append_text(w, "{\"i\":\n3}", 8, &e), RESIL_EINVAL);
    assert_non_null(strstr(e.message, "one non-empty line"));
    assert_int_equal(resil_ndjson_writer_append_text(w, "\n", 1, &e), RESIL_EINVAL);
    /* Someone appends a torn record behind the writer's back... */
    FILE *f = fopen(p, "a");
    fputs("{\"i\": 99, \"torn", f);
    fclose(f);
    /* ...resil did not write it, so the next append keeps it, as a line of
     * its own (cutting it is for the repair, forced). */
    json_t *r = json_pack("{s:i}", "i", 3);
    assert_int_equal(resil_ndjson_writer_append(w, r, &e), 0);
    json_decref(r);
    assert_int_equal(resil_ndjson_writer_close(w), 0);
    char *s = slurp(p);
    assert_string_equal(s, "{\"i\":1}\n{\"i\":2}\n{\"i\": 99, \"torn\n{\"i\":3}\n");
    free(s);
}

/* 4 processes x 25000 appends: every line intact, each exactly once. */
static void test_ndjson_concurrent_appends(void **state)
{
    (void)state;
    const char *p = in_dir("many.ndjson");
    enum { PROCS = 4, EACH = 25000 };
    pid_t kids[PROCS];
    for (int k = 0; k < PROCS; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            resil_ndjson_writer *w;
            resil_file_opts o = RESIL_FILE_OPTS_INIT;
            o.lock_timeout_s = 120;
            if (resil_ndjson_writer_open(&w, p, &o, NULL) != 0)
                _exit(1);
            for (int i = 0; i < EACH; i++) {
                json_t *r = json_pack("{s:i, s:i, s:s}", "p", k, "i", i, "pad",
                                      "...................................");
                if (resil_ndjson_writer_append(w, r, NULL) != 0)
                    _exit(2);
                json_decref(r);
            }
            _exit(resil_ndjson_writer_close(w) == 0 ? 0 : 3);
        }
    }
    for (int k = 0; k < PROCS; k++) {
        int st;
        waitpid(kids[k], &st, 0);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    /* Check: every (p, i) exactly once, no bad line, no torn tail. */
    static unsigned char seen[PROCS][EACH];
    memset(seen, 0, sizeof seen);
    FILE *f = fopen(p, "r");
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *r = json_loads(line, 0, NULL);
        assert_non_null(r);
        int pk = (int)json_integer_value(json_object_get(r, "p"));
        int i = (int)json_integer_value(json_object_get(r, "i"));
        assert_true(pk >= 0 && pk < PROCS && i >= 0 && i < EACH);
        assert_int_equal(seen[pk][i], 0);
        seen[pk][i] = 1;
        json_decref(r);
        n++;
    }
    fclose(f);
    assert_int_equal(n, PROCS * EACH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lock_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_timeout_on_fake_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_threads_exclude, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_close_and_fork, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_write_basics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_write_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_temps_swept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_writer_swept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_owner_mode_sweep_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_sync_failure_is_durability, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults_every_call_site, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eintr_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_fsync_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_roundtrip_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_no_lost_updates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_basics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_failed_append_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_text_and_torn_between, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_concurrent_appends, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
