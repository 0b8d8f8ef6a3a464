/* src/lock.c - locks on a permanent "<path>.lock" sidecar, with Linux
 * open-file-description locks and a timeout on every wait. */
#define _GNU_SOURCE
#include "internal/metrics.h"
#include "internal/files.h"
#include "internal/sys.h"
#include "internal/util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const resil_file_opts default_opts = RESIL_FILE_OPTS_INIT;

const resil_file_opts *resil__file_opts(const resil_file_opts *opts)
{
    return opts ? opts : &default_opts;
}

char *resil__lock_path_of(const char *path)
{
    size_t n = strlen(path);
    char *p = malloc(n + sizeof ".lock");
    if (p) {
        memcpy(p, path, n);
        memcpy(p + n, ".lock", sizeof ".lock");
    }
    return p;
}

/* The note "pid N on host H" is a fixed-size record at offset 0 of the
 * sidecar, written by each new exclusive holder and never cleared: it names
 * the last exclusive holder.  It is overwritten in place (ftruncate costs far
 * more than a write into a page that is already there) and only when it
 * changes, so a process that takes the lock again and again writes nothing.
 * A holder that died holding the lock is recognised by its note: same host,
 * and the pid no longer exists. */
#define NOTE_SIZE 160

static char host_buf[128];
static pthread_once_t host_once_flag = PTHREAD_ONCE_INIT;

static void host_init(void)
{
    if (gethostname(host_buf, sizeof host_buf - 1) != 0)
        snprintf(host_buf, sizeof host_buf, "localhost");
    host_buf[sizeof host_buf - 1] = '\0';
    for (char *p = host_buf; *p; p++) {
        if (*p == '/' || *p == ' ' || *p == '\n')
            *p = '_';
    }
}

const char *resil__host_name(void)
{
    (void)pthread_once(&host_once_flag, host_init);
    return host_buf;
}

bool resil__lock_take_note(int fd)
{
    char old[NOTE_SIZE + 1];
    ssize_t got = resil__sys.pread(fd, old, NOTE_SIZE, 0);
    old[got > 0 ? got : 0] = '\0';
    char note[NOTE_SIZE];
    long me = (long)getpid();
    int n = snprintf(note, sizeof note, "pid %ld on host %s", me, resil__host_name());
    if (n < 0)
        return false;
    if (n > NOTE_SIZE - 1)
        n = NOTE_SIZE - 1;
    memset(note + n, ' ', (size_t)(NOTE_SIZE - 1 - n));
    note[NOTE_SIZE - 1] = '\n';
    if (got == NOTE_SIZE && memcmp(old, note, NOTE_SIZE) == 0)
        return false; /* our own note: nothing to write, nobody died */

    bool died = false;
    long pid;
    char host[130];
    if (sscanf(old, "pid %ld on host %129s", &pid, host) == 2 && pid > 0 && pid != me &&
        strcmp(host, resil__host_name()) == 0)
        died = kill((pid_t)pid, 0) != 0 && errno == ESRCH;
    /* Diagnostics only: a failed write is harmless. */
    (void)!resil__sys.pwrite(fd, note, NOTE_SIZE, 0);
    return died;
}

/* The holder note, trimmed, into buf ("" if none). */
static void read_holder(const char *lock_path, char *buf, size_t size)
{
    buf[0] = '\0';
    int fd = resil__sys.open(lock_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0);
    if (fd < 0)
        return;
    ssize_t n = resil__sys.read(fd, buf, size - 1);
    resil__sys.close(fd);
    if (n <= 0) {
        buf[0] = '\0';
        return;
    }
    buf[n] = '\0';
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = '\0';
    size_t len = strlen(buf);
    while (len > 0 && buf[len - 1] == ' ')
        buf[--len] = '\0';
}

static int lock_wait(int fd, const char *lock_path, int type, const resil_file_opts *o,
                     resil_error *err)
{
    const resil_clock *clk = o->clock ? o->clock : resil_clock_system();
    double timeout_s = o->lock_timeout_s == 0 ? RESIL_FILE_DEFAULT_LOCK_TIMEOUT_S : o->lock_timeout_s;
    bool one_try = timeout_s < 0 || timeout_s != timeout_s;
    int64_t start = 0, deadline = 0;
    int64_t backoff = 1000000; /* 1 ms, doubling to 50 ms */
    resil_rng rng;
    bool rng_ready = false;
    for (;;) {
        struct flock fl = {.l_type = (short)type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        if (resil__sys.fcntl_lock(fd, F_OFD_SETLK, &fl) == 0)
            return 0;
        int e = errno;
        if (e != EAGAIN && e != EACCES && e != EINTR)
            return resil_error_set(err, -e, lock_path, "cannot lock %s: %s", lock_path,
                                   strerror(e));
        if (resil_cancel_is_cancelled(o->cancel))
            return resil_error_set(err, RESIL_ECANCELED, lock_path,
                                   "cancelled while waiting for the lock %s", lock_path);
        if (!rng_ready) {
            start = clk->monotonic_ns(clk->ctx);
            deadline = resil__add_sat(start, resil__s_to_ns(one_try ? 0 : timeout_s));
            resil_rng_seed_random(&rng);
            rng_ready = true;
        }
        int64_t now = clk->monotonic_ns(clk->ctx);
        if (one_try || now >= deadline) {
            char holder[300];
            read_holder(lock_path, holder, sizeof holder);
            if (one_try)
                return resil_error_set(err, RESIL_ETIMEDOUT, lock_path,
                                       "the %s lock on %s is taken (%s%s)",
                                       type == F_WRLCK ? "exclusive" : "shared", lock_path,
                                       holder[0] ? "last exclusive holder: "
                                                 : "no exclusive holder recorded",
                                       holder);
            return resil_error_set(
                err, RESIL_ETIMEDOUT, lock_path,
                "timed out after %.3g s waiting for the %s lock on %s (%s%s)",
                resil__ns_to_s(now - start), type == F_WRLCK ? "exclusive" : "shared", lock_path,
                holder[0] ? "last exclusive holder: " : "no exclusive holder recorded", holder);
        }
        /* Capped exponential backoff with jitter (half to full), never past
         * the deadline. */
        int64_t sleep_ns = (int64_t)((double)backoff * (0.5 + 0.5 * resil_rng_uniform(&rng)));
        if (sleep_ns > deadline - now)
            sleep_ns = deadline - now;
        if (clk->sleep_ns(clk->ctx, sleep_ns, o->cancel) != 0)
            return resil_error_set(err, RESIL_ECANCELED, lock_path,
                                   "cancelled while waiting for the lock %s", lock_path);
        if (backoff < 50000000)
            backoff *= 2;
    }
}

int resil__lock_unlock(int fd)
{
    struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    return resil__sys.fcntl_lock(fd, F_OFD_SETLK, &fl) == 0 ? 0 : -errno;
}

int resil_lock_acquire(resil_lock **out, const char *path, resil_lock_mode mode,
                       const resil_file_opts *opts, resil_error *err)
{
    if (!out || !path || !*path || (mode != RESIL_LOCK_SHARED && mode != RESIL_LOCK_EXCLUSIVE))
        return resil_error_set(err, RESIL_EINVAL, path, "resil_lock_acquire: bad arguments");
    const resil_file_opts *o = resil__file_opts(opts);
    resil_lock *lk = calloc(1, sizeof *lk);
    char *lp = resil__lock_path_of(path);
    if (!lk || !lp) {
        free(lk);
        free(lp);
        return resil_error_set(err, -ENOMEM, path, "out of memory");
    }
    int fd = resil__sys.open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0 && errno == EACCES && mode == RESIL_LOCK_SHARED)
        fd = resil__sys.open(lp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0); /* read-only dir */
    if (fd < 0) {
        int e = errno;
        int rc = resil_error_set(err, -e, lp, "cannot open lock file %s: %s", lp, strerror(e));
        free(lk);
        free(lp);
        return rc;
    }
    int type = mode == RESIL_LOCK_SHARED ? F_RDLCK : F_WRLCK;
    int rc = resil__lock_wait(fd, lp, type, o, err);
    if (rc != 0) {
        resil__sys.close(fd);
        free(lk);
        free(lp);
        return rc;
    }
    if (mode == RESIL_LOCK_EXCLUSIVE)
        lk->holder_died = resil__lock_take_note(fd);
    lk->fd = fd;
    lk->mode = mode;
    lk->path = lp;
    *out = lk;
    return 0;
}

int resil_lock_release(resil_lock *lk)
{
    if (!lk)
        return 0;
    int rc = resil__lock_unlock(lk->fd);
    resil__sys.close(lk->fd);
    free(lk->path);
    free(lk);
    return rc;
}

const char *resil_lock_path(const resil_lock *lk)
{
    return lk ? lk->path : NULL;
}

int resil__lock_wait(int fd, const char *lock_path, int type, const resil_file_opts *o,
                     resil_error *err)
{
    int64_t t0 = resil__metrics_enabled() ? resil_clock_monotonic_ns(NULL) : 0;
    int rc = lock_wait(fd, lock_path, type, o, err);
    if (t0) {
        int64_t ns = resil_clock_monotonic_ns(NULL) - t0;
        resil__metrics_lock_wait(type == F_WRLCK, ns);
        if (rc)
            resil__metrics_file_op("lock", rc, -1);
    }
    return rc;
}
