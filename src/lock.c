/* src/lock.c - the files module's locks: resil_lock_acquire / _release on a
 * permanent "<path>.lock" sidecar, opened by the trust rules of
 * resil__lock_open (owner and mode of the data file, no symlinks), with the
 * wait itself in the core's lock engine (src/lockwait.c), and the lock-wait
 * metrics. */
#define _GNU_SOURCE
#include "internal/files_metrics.h"
#include "internal/files.h"
#include "internal/opts.h"
#include "internal/sys.h"
#include "internal/trust.h"
#include "internal/util.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
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

int resil__file_opts_check(const resil_file_opts *opts, resil_error *err)
{
    return opts ? resil__opts_version_check(err, "resil_file_opts", opts->version,
                                            RESIL_FILE_OPTS_VERSION)
                : 0;
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

void resil__lock_temp_begin(const resil_lock *lk)
{
    if (!lk || lk->mode != RESIL_LOCK_EXCLUSIVE)
        return;
    resil__lock_temp_mark(lk->fd, true);
}

void resil__lock_temp_end(const resil_lock *lk)
{
    if (!lk || lk->mode != RESIL_LOCK_EXCLUSIVE)
        return;
    resil__lock_temp_mark(lk->fd, false);
}

static int lock_wait(int fd, const char *lock_path, int type, const resil_file_opts *o,
                     resil_error *err)
{
    /* 0 (and < 0, NaN): one try, as `--timeout 0`; the 10 s default comes
       from RESIL_FILE_OPTS_INIT and NULL opts. */
    double timeout_s = o->lock_timeout_s;
    bool one_try = !(timeout_s > 0);
    resil__lock_wait_opts w = {
        .type = type,
        .timeout_ns = one_try ? -1 : resil__s_to_ns(timeout_s),
        .clock = o->clock,
        .cancel = o->cancel,
        .lock_path = lock_path,
    };
    return resil__lock_wait_with(fd, &w, err);
}

/* ---- the sidecar ------------------------------------------------------------------ */

static int lock_open_at(const char *lp, const char *data_path, const resil_file_opts *o,
                        resil_error *err)
{
    struct stat dst;
    bool data_exists = resil__sys.fstatat(AT_FDCWD, data_path, &dst, 0) == 0;
    mode_t want = data_exists ? resil__lock_mode_for(dst.st_mode)
                  : o->mode   ? resil__lock_mode_for((mode_t)o->mode)
                              : 0600;
    const int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK;
    bool created = false;
    int fd = -1;
    for (int tries = 0; tries < 8 && fd < 0; tries++) {
        fd = resil__sys.open(lp, flags, 0);
        if (fd >= 0 || errno != ENOENT)
            break;
        fd = resil__sys.open(lp, flags | O_CREAT | O_EXCL, want);
        if (fd >= 0)
            created = true;
        else if (errno != EEXIST)
            break;
    }
    if (fd < 0) {
        int e = errno;
        char *dir;
        const char *base;
        if (resil__split_path(&dir, &base, lp) != 0)
            return resil_error_set(err, -ENOMEM, lp, "out of memory");
        int rc;
        struct stat ds;
        if (e == ENOENT && resil__sys.fstatat(AT_FDCWD, dir, &ds, 0) != 0)
            rc = resil_error_set(err, -e, lp,
                                 "cannot create the lock file %s: the directory %s does not exist",
                                 lp, dir);
        else if (e == ELOOP)
            rc = resil_error_set(err, -e, lp,
                                 "the lock file %s is a symbolic link: lock files must not be",
                                 lp);
        else if (e == EACCES && resil__sys.fstatat(AT_FDCWD, lp, &ds, AT_SYMLINK_NOFOLLOW) != 0)
            rc = resil_error_set(err, -e, lp,
                                 "cannot create the lock file %s: %s (no write access to the "
                                 "directory %s)",
                                 lp, strerror(e), dir);
        else if (e == EACCES)
            rc = resil_error_set(err, -e, lp,
                                 "cannot open the lock file %s for writing: %s (a lock, even a "
                                 "shared one, needs write access to it)",
                                 lp, strerror(e));
        else
            rc = resil_error_set(err, -e, lp, "cannot open the lock file %s: %s", lp,
                                 strerror(e));
        free(dir);
        return rc;
    }
    struct stat st;
    if (resil__sys.fstat(fd, &st) != 0) {
        int e = errno;
        resil__sys.close(fd);
        return resil_error_set(err, -e, lp, "cannot stat the lock file %s: %s", lp, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        resil__sys.close(fd);
        return resil_error_set(err, RESIL_EINVAL, lp, "the lock file %s is not a regular file",
                               lp);
    }
    /* The sidecar belongs to whoever owns the data, with the data's write
     * permissions (exactly: not less the umask): root may fix the owner, the
     * owner may fix the mode. */
    uid_t me = geteuid();
    if (me == 0 && data_exists && (st.st_uid != dst.st_uid || st.st_gid != dst.st_gid))
        (void)!resil__sys.fchown(fd, dst.st_uid, dst.st_gid);
    if ((st.st_mode & 07777) != want && (created || me == 0 || me == st.st_uid))
        (void)!resil__sys.fchmod(fd, want);
    return fd;
}

int resil__lock_open(const char *data_path, const resil_file_opts *opts, resil_error *err)
{
    if (!data_path || !*data_path)
        return resil_error_set(err, RESIL_EINVAL, data_path, "resil__lock_open: no path");
    char *lp = resil__lock_path_of(data_path);
    if (!lp)
        return resil_error_set(err, -ENOMEM, data_path, "out of memory");
    int fd = lock_open_at(lp, data_path, resil__file_opts(opts), err);
    free(lp);
    return fd;
}

int resil_lock_acquire(resil_lock **out, const char *path, resil_lock_mode mode,
                       const resil_file_opts *opts, resil_error *err)
{
    if (!out || !path || !*path || (mode != RESIL_LOCK_SHARED && mode != RESIL_LOCK_EXCLUSIVE))
        return resil_error_set(err, RESIL_EINVAL, path, "resil_lock_acquire: bad arguments");
    if (resil__file_opts_check(opts, err))
        return RESIL_EINVAL;
    const resil_file_opts *o = resil__file_opts(opts);
    resil_lock *lk = calloc(1, sizeof *lk);
    char *lp = resil__lock_path_of(path);
    if (!lk || !lp) {
        free(lk);
        free(lp);
        return resil_error_set(err, -ENOMEM, path, "out of memory");
    }
    int fd = lock_open_at(lp, path, o, err);
    if (fd < 0) {
        free(lk);
        free(lp);
        return fd;
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
        resil__files_metrics_lock_wait(type == F_WRLCK, ns);
        if (rc)
            resil__files_metrics_op(RESIL__FILE_OP_LOCK, rc, -1);
    }
    return rc;
}
