/* src/files.c - atomic replace, whole-file reads, and JSON / YAML state files
 * on top of them. */
#define _GNU_SOURCE
#include "internal/files_metrics.h"
#include "internal/files.h"
#include "internal/json_text.h"
#include "internal/trust.h"
#include "internal/sys.h"
#include "internal/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- paths ------------------------------------------------------------------ */

int resil__split_path(char **dir, const char **base, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        *dir = strdup(".");
        *base = path;
    } else if (slash == path) {
        *dir = strdup("/");
        *base = slash + 1;
    } else {
        *dir = strndup(path, (size_t)(slash - path));
        *base = slash + 1;
    }
    return *dir ? 0 : -ENOMEM;
}

int resil__resolve_target(char **out, const char *path, resil_error *err)
{
    char *cur = strdup(path);
    if (!cur)
        return resil_error_set(err, -ENOMEM, path, "out of memory");
    for (int hops = 0; hops < 40; hops++) {
        struct stat st;
        if (resil__sys.lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode)) {
            *out = cur; /* missing or not a link: this is the file to write */
            return 0;
        }
        /* The protected_symlinks rule: a link another user planted in a
         * sticky world-writable directory is not followed. */
        int trc = resil__symlink_check(cur, &st, err);
        if (trc != 0) {
            free(cur);
            return trc;
        }
        char link[PATH_MAX];
        ssize_t n = resil__sys.readlink(cur, link, sizeof link - 1);
        if (n < 0) {
            int e = errno;
            free(cur);
            return resil_error_set(err, -e, path, "cannot read the symlink %s: %s", path,
                                   strerror(e));
        }
        link[n] = '\0';
        char *next;
        if (link[0] == '/') {
            next = strdup(link);
        } else {
            char *dir;
            const char *base;
            if (resil__split_path(&dir, &base, cur) != 0) {
                free(cur);
                return resil_error_set(err, -ENOMEM, path, "out of memory");
            }
            next = malloc(strlen(dir) + strlen(link) + 2);
            if (next)
                sprintf(next, "%s/%s", dir, link);
            free(dir);
        }
        free(cur);
        if (!next)
            return resil_error_set(err, -ENOMEM, path, "out of memory");
        cur = next;
    }
    free(cur);
    return resil_error_set(err, -ELOOP, path, "too many levels of symlinks at %s", path);
}

/* ---- stale temp files ----------------------------------------------------------- */

/* Temp files are ".<base>.resil-tmp.<pid>.<8 hex>.<host>". */
#define TMP_TAG ".resil-tmp."

/* Sweeps the temp files of `base` left by writers that died.  Runs under the
 * exclusive lock of the target, and only when the sidecar's "temp write in
 * progress" marker is still set, i.e. the writer that set it died before it
 * cleared it (resil__lock_take_note, resil__lock_temp_begin/_end): a clean
 * release never makes the next writer scan the directory.
 * A temp is removed when its writer's pid is gone (same host) or it is older
 * than stale_temp_s (other hosts, pid reuse). */
static void sweep_stale(int dfd, const char *base, const resil_file_opts *o)
{
    int dup_fd = resil__sys.fcntl_int(dfd, F_DUPFD_CLOEXEC, 3);
    if (dup_fd < 0)
        return;
    DIR *d = resil__sys.fdopendir(dup_fd);
    if (!d) {
        resil__sys.close(dup_fd);
        return;
    }
    size_t blen = strlen(base);
    const char *host = resil__host_name();
    double stale_s = o->stale_temp_s > 0 ? o->stale_temp_s : 3600;
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = resil__sys.readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (n[0] != '.' || strncmp(n + 1, base, blen) != 0 ||
            strncmp(n + 1 + blen, TMP_TAG, sizeof TMP_TAG - 1) != 0)
            continue;
        const char *rest = n + 1 + blen + sizeof TMP_TAG - 1;
        /* Only names resil makes: <pid>.<8 hex digits>[.<host>]. */
        char *end;
        if (*rest < '0' || *rest > '9')
            continue;
        long pid = strtol(rest, &end, 10);
        if (*end != '.' || strspn(end + 1, "0123456789abcdef") != 8 ||
            (end[9] != '\0' && end[9] != '.'))
            continue;
        const char *their_host = end[9] == '.' ? end + 9 : NULL;
        bool dead = false;
        if (their_host && pid > 0 && strcmp(their_host + 1, host) == 0)
            dead = kill((pid_t)pid, 0) != 0 && errno == ESRCH;
        struct stat st;
        bool old = resil__sys.fstatat(dfd, n, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                   difftime(now, st.st_mtime) > stale_s;
        if (dead || old)
            resil__sys.unlinkat(dfd, n, 0);
    }
    resil__sys.closedir(d);
}

/* ---- atomic replace ----------------------------------------------------------- */

static int write_all_fd(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = resil__sys.write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Temp-file names need a little randomness; a per-thread generator seeded
 * once keeps the getrandom() call off the write path. */
static _Thread_local resil_rng name_rng;
static _Thread_local bool name_rng_seeded;

static uint32_t name_random(void)
{
    if (!name_rng_seeded) {
        resil_rng_seed_random(&name_rng);
        name_rng_seeded = true;
    }
    return (uint32_t)resil_rng_next(&name_rng);
}

/* Opens target's directory (dir) when it is to be synced (FULL) or swept,
 * and sweeps it.  Returns 0 (*dfd: the directory or -1) or an error. */
static int replace_open_dir(int *dfd, const char *dir, const char *base, const char *target,
                            const resil_file_opts *o, bool sweep, resil_error *err)
{
    *dfd = -1;
    if (o->durability != RESIL_DURABLE_FULL && !sweep)
        return 0;
    *dfd = resil__sys.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (*dfd < 0) {
        int e = errno;
        return resil_error_set(err, -e, target, "cannot open the directory of %s: %s", target,
                               strerror(e));
    }
    if (sweep)
        sweep_stale(*dfd, base, o);
    return 0;
}

/* Checks that target is still a regular file or absent (*exists, *st).
 * Returns 0 or RESIL_EINVAL. */
static int replace_check_target(const char *target, struct stat *st, bool *exists,
                                resil_error *err)
{
    /* Not followed: target is the end of the chain resil__resolve_target
     * checked; a link swapped in since then is refused, never followed (the
     * rename would replace the link, but its target's owner and mode must
     * not be copied). */
    *exists = resil__sys.fstatat(AT_FDCWD, target, st, AT_SYMLINK_NOFOLLOW) == 0;
    if (*exists && S_ISLNK(st->st_mode))
        return resil_error_set(err, RESIL_EINVAL, target,
                               "%s became a symlink while it was being written; refusing to "
                               "follow it (the file is unchanged)",
                               target);
    if (*exists && !S_ISREG(st->st_mode))
        return resil_error_set(err, RESIL_EINVAL, target, "%s is not a regular file", target);
    return 0;
}

/* Names the temp file beside target in tmp[PATH_MAX].  Returns 0 or -ENAMETOOLONG. */
static int replace_temp_name(char *tmp, const char *dir, const char *base, const char *target,
                             resil_error *err)
{
    const char *host = resil__host_name();
    int n = snprintf(tmp, PATH_MAX, "%s/.%s" TMP_TAG "%ld.%08x.%s", dir, base, (long)getpid(),
                     (unsigned)name_random(), host);
    if (n < 0 || n >= PATH_MAX || strlen(strrchr(tmp, '/') + 1) > NAME_MAX) {
        /* a long name: drop the host and shorten */
        n = snprintf(tmp, PATH_MAX, "%s/.%.*s" TMP_TAG "%ld.%08x", dir, NAME_MAX - 40, base,
                     (long)getpid(), (unsigned)name_random());
        if (n < 0 || n >= PATH_MAX)
            return resil_error_set(err, -ENAMETOOLONG, target, "the path %s is too long", target);
    }
    return 0;
}

/* Creates the temp file tmp (*tfd) with the mode (and owner) the replacement
 * keeps (st: the existing file's, when exists); *want, *fix_mode: the mode
 * to set after the data.  Returns 0 or an error (*tfd stays -1). */
static int replace_create_temp(int *tfd, const char *tmp, bool exists, const struct stat *st,
                               const resil_file_opts *o, mode_t *want, bool *fix_mode,
                               const char *target, resil_error *err)
{
    /* The existing file's mode, or exactly the mode asked for (not less the
     * umask); otherwise 0644 less the umask, as open() makes it. */
    bool set_mode = exists || o->mode;
    *want = exists ? (st->st_mode & 07777) : (mode_t)o->mode;
    int fd = resil__sys.openat(AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                               set_mode ? (*want & 0777) : 0644);
    if (fd < 0) {
        int e = errno;
        return resil_error_set(err, -e, target, "cannot create a temp file beside %s: %s", target,
                               strerror(e));
    }
    /* The replacement keeps the owner (when we may: root, or the owner's own
     * group) and the mode of the file it replaces. */
    struct stat tst;
    *fix_mode = false;
    if (set_mode) {
        if (resil__sys.fstat(fd, &tst) != 0) {
            *fix_mode = true;
        } else {
            if (exists && (tst.st_uid != st->st_uid || tst.st_gid != st->st_gid))
                (void)!resil__sys.fchown(fd, st->st_uid, st->st_gid); /* EPERM: keep ours */
            /* the umask took bits away, or special bits (which a write or a
             * chown clears) must be restored */
            *fix_mode = (tst.st_mode & 07777) != *want || (*want & 06000);
        }
    }
    *tfd = fd;
    return 0;
}

/* Writes data to the temp file *tfd, sets its mode, syncs and closes it
 * (*tfd = -1 once closed, even by a failed close).  Returns 0 or an error;
 * left: what a failure leaves, for the message. */
static int replace_fill_temp(int *tfd, const void *data, size_t len, bool fix_mode, mode_t want,
                             const resil_file_opts *o, const char *target, const char *left,
                             resil_error *err)
{
    int rc = write_all_fd(*tfd, data, len);
    if (rc != 0)
        return resil_error_set(err, rc, target, "cannot write %s: %s (%s)", target,
                               strerror(-rc), left);
    /* After the data: a write clears setuid/setgid bits. */
    if (fix_mode && resil__sys.fchmod(*tfd, want) != 0) {
        int e = errno;
        return resil_error_set(err, -e, target, "cannot set the mode of a temp file beside %s: %s",
                               target, strerror(e));
    }
    if (o->durability != RESIL_DURABLE_NONE && resil__sys.fsync(*tfd) != 0) {
        /* Final: a failed fsync may have dropped the dirty pages; retrying
         * would report success for data that is not there. */
        int e = errno;
        return resil_error_set(err, -e, target, "cannot sync %s: %s (%s)", target, strerror(e),
                               left);
    }
    if (resil__sys.close(*tfd) != 0) {
        *tfd = -1;
        int e = errno;
        return resil_error_set(err, -e, target, "cannot write %s: %s (%s)", target, strerror(e),
                               left);
    }
    *tfd = -1;
    return 0;
}

/* Replaces target (already resolved, lock held).  sweep: the previous lock
 * holder died, so look for its temp files. */
static int replace_locked(const char *target, const void *data, size_t len,
                          const resil_file_opts *o, bool sweep, resil_error *err)
{
    char *dir;
    const char *base;
    if (resil__split_path(&dir, &base, target) != 0)
        return resil_error_set(err, -ENOMEM, target, "out of memory");
    int rc = 0, tfd = -1;
    /* The directory is opened only to be synced (FULL) or swept. */
    int dfd = -1;
    rc = replace_open_dir(&dfd, dir, base, target, o, sweep, err);
    if (rc) {
        free(dir);
        return rc;
    }

    struct stat st;
    bool exists;
    rc = replace_check_target(target, &st, &exists, err);
    if (rc)
        goto out_dir;
    /* What a failure leaves: the old file, or nothing at all. */
    const char *left = exists ? "the file is unchanged" : "it was not created";

    char tmp[PATH_MAX];
    rc = replace_temp_name(tmp, dir, base, target, err);
    if (rc)
        goto out_dir;

    mode_t want = 0;
    bool fix_mode = false;
    rc = replace_create_temp(&tfd, tmp, exists, &st, o, &want, &fix_mode, target, err);
    if (rc)
        goto out_dir;
    rc = replace_fill_temp(&tfd, data, len, fix_mode, want, o, target, left, err);
    if (rc)
        goto out_tmp;
    if (resil__sys.renameat(AT_FDCWD, tmp, AT_FDCWD, target) != 0) {
        int e = errno;
        rc = resil_error_set(err, -e, target, "cannot %s %s: %s (%s)",
                             exists ? "replace" : "create", target, strerror(e), left);
        goto out_tmp;
    }
    /* Renamed: from here on the temp name is the target; never unlink it. */
    if (o->durability == RESIL_DURABLE_FULL && resil__sys.fsync(dfd) != 0) {
        int e = errno;
        rc = resil_error_set(err, RESIL_EDURABILITY, target,
                             "%s was replaced, but its directory could not be synced (%s): "
                             "the change may not survive a crash of the machine",
                             target, strerror(e));
        if (err)
            err->sys_errno = e;
    }
    goto out_dir;

out_tmp:
    if (tfd >= 0)
        resil__sys.close(tfd);
    resil__sys.unlinkat(AT_FDCWD, tmp, 0);
out_dir:
    if (dfd >= 0)
        resil__sys.close(dfd);
    free(dir);
    return rc;
}

int resil__lock_target(char **target, resil_lock **lk, const char *path,
                       const resil_file_opts *o, resil_error *err)
{
    int rc = resil__resolve_target(target, path, err);
    if (rc)
        return rc;
    rc = resil_lock_acquire(lk, *target, RESIL_LOCK_EXCLUSIVE, o, err);
    if (rc) {
        free(*target);
        *target = NULL;
    }
    return rc;
}

static const char *file_kind(mode_t m)
{
    return S_ISDIR(m)    ? "a directory"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
           : S_ISLNK(m)  ? "a symlink"
                         : "not a regular file";
}

/* What a replace of target (resolved) needs, checked before anything
 * creates its lock sidecar, so that a write that cannot succeed leaves
 * nothing behind: target is a regular file or does not exist (in an existing
 * directory), and the caller may write it as a shell redirect could (or
 * o->force). */
static int check_target(const char *target, const resil_file_opts *o, resil_error *err)
{
    struct stat st;
    if (resil__sys.lstat(target, &st) != 0) {
        int e = errno;
        if (e != ENOENT)
            return resil_error_set(err, -e, target, "cannot stat %s: %s", target, strerror(e));
        char *dir;
        const char *base;
        if (resil__split_path(&dir, &base, target) != 0)
            return resil_error_set(err, -ENOMEM, target, "out of memory");
        struct stat dst;
        int rc = 0;
        if (resil__sys.fstatat(AT_FDCWD, dir, &dst, 0) != 0) {
            e = errno;
            rc = e == ENOENT ? resil_error_set(err, -ENOENT, target,
                                               "cannot create %s: its directory %s does not "
                                               "exist",
                                               target, dir)
                             : resil_error_set(err, -e, target,
                                               "cannot create %s: cannot stat its directory "
                                               "%s: %s",
                                               target, dir, strerror(e));
        } else if (!S_ISDIR(dst.st_mode)) {
            rc = resil_error_set(err, -ENOTDIR, target,
                                 "cannot create %s: %s is not a directory", target, dir);
        }
        free(dir);
        return rc;
    }
    if (!S_ISREG(st.st_mode))
        return resil_error_set(err, RESIL_EINVAL, target, "%s is not a regular file (it is %s)",
                               target, file_kind(st.st_mode));
    if (o->force)
        return 0;
    /* As a shell redirect would: write permission for the effective ids,
     * and, for root (who may write anything), a file that has no write bit
     * at all was made read-only on purpose. */
    bool denied = resil__sys.faccessat(AT_FDCWD, target, W_OK, AT_EACCESS) != 0;
    if (denied || (geteuid() == 0 && (st.st_mode & 0222) == 0))
        return resil_error_set(err, -EACCES, target,
                               "refusing to replace %s: it is read-only (mode %04o, owner uid "
                               "%ld)%s; force the write to replace it anyway",
                               target, (unsigned)(st.st_mode & 07777), (long)st.st_uid,
                               denied ? " and the caller may not write it" : "");
    return 0;
}

/* resil__lock_target with check_target before it: the target is resolved,
 * checked, and then locked by resil__lock_target (which finds the same
 * target: it is not a link). */
static int lock_checked_target(char **target, resil_lock **lk, const char *path,
                               const resil_file_opts *o, resil_error *err)
{
    char *resolved;
    int rc = resil__resolve_target(&resolved, path, err);
    if (rc)
        return rc;
    rc = check_target(resolved, o, err);
    if (rc == 0)
        rc = resil__lock_target(target, lk, resolved, o, err);
    free(resolved);
    return rc;
}

/* Resolves path, takes the exclusive lock, runs replace_locked. */
static int write_file_atomic(const char *path, const void *data, size_t len,
                             const resil_file_opts *opts, resil_error *err)
{
    if (!path || !*path || (!data && len))
        return resil_error_set(err, RESIL_EINVAL, path, "resil_write_file_atomic: bad arguments");
    if (resil__file_opts_check(opts, err))
        return RESIL_EINVAL;
    const resil_file_opts *o = resil__file_opts(opts);
    char *target;
    resil_lock *lk;
    int rc = lock_checked_target(&target, &lk, path, o, err);
    if (rc)
        return rc;
    /* The marker in the sidecar says "temp write in progress" until the temp
     * is gone: only a writer that dies in between makes the next one sweep. */
    resil__lock_temp_begin(lk);
    rc = replace_locked(target, data ? data : "", len, o, lk->holder_died, err);
    resil__lock_temp_end(lk);
    resil_lock_release(lk);
    free(target);
    return rc;
}

int resil__open_regular(const char *path, int flags, struct stat *st, resil_error *err)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused
     * just below); cleared again for the reads. */
    int fd = resil__sys.open(path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0);
    if (fd < 0) {
        int e = errno;
        return resil_error_set(err, -e, path, "cannot open %s: %s", path, strerror(e));
    }
    if (resil__sys.fstat(fd, st) != 0) {
        int e = errno;
        resil__sys.close(fd);
        return resil_error_set(err, -e, path, "cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st->st_mode)) {
        resil__sys.close(fd);
        return resil_error_set(err, RESIL_EINVAL, path, "%s is not a regular file", path);
    }
    int fl = resil__sys.fcntl_int(fd, F_GETFL, 0);
    if (fl >= 0)
        resil__sys.fcntl_int(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

static size_t max_size_of(const resil_file_opts *o)
{
    return o->max_size ? o->max_size : RESIL_FILE_DEFAULT_MAX_SIZE;
}

/* resil_read_file with extra open flags (O_NOFOLLOW for a resolved
 * target). */
static int read_file_flags(char **out, size_t *out_len, const char *path, int flags,
                           const resil_file_opts *o, resil_error *err)
{
    size_t max = max_size_of(o);
    struct stat st;
    int fd = resil__open_regular(path, O_RDONLY | flags, &st, err);
    if (fd == -ELOOP && (flags & O_NOFOLLOW))
        return resil_error_set(err, RESIL_EINVAL, path,
                               "%s became a symlink while it was being updated; refusing to "
                               "follow it (the file is unchanged)",
                               path);
    if (fd < 0)
        return fd;
    if ((uint64_t)st.st_size > max) {
        resil__sys.close(fd);
        return resil_error_set(err, -EFBIG, path,
                               "%s is %lld bytes, more than the limit of %zu bytes", path,
                               (long long)st.st_size, max);
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        resil__sys.close(fd);
        return resil_error_set(err, -ENOMEM, path, "out of memory");
    }
    for (;;) {
        if (len == cap) { /* it grew while we read (not one of ours) */
            if (cap > max) {
                free(buf);
                resil__sys.close(fd);
                return resil_error_set(err, -EFBIG, path, "%s grew beyond the limit of %zu bytes",
                                       path, max);
            }
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                resil__sys.close(fd);
                return resil_error_set(err, -ENOMEM, path, "out of memory");
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = resil__sys.read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            free(buf);
            resil__sys.close(fd);
            return resil_error_set(err, -e, path, "cannot read %s: %s", path, strerror(e));
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    resil__sys.close(fd);
    if (len > max) { /* it grew while we read, past the limit */
        free(buf);
        return resil_error_set(err, -EFBIG, path, "%s grew beyond the limit of %zu bytes", path,
                               max);
    }
    buf[len] = '\0';
    *out = buf;
    if (out_len)
        *out_len = len;
    return 0;
}

int resil_read_file(char **out, size_t *out_len, const char *path, const resil_file_opts *opts,
                    resil_error *err)
{
    if (!out || !path || !*path)
        return resil_error_set(err, RESIL_EINVAL, path, "resil_read_file: bad arguments");
    if (resil__file_opts_check(opts, err))
        return RESIL_EINVAL;
    return read_file_flags(out, out_len, path, 0, resil__file_opts(opts), err);
}

/* ---- JSON and YAML -------------------------------------------------------------- */

typedef enum { FMT_JSON, FMT_YAML } doc_format;

static const char *fmt_name(doc_format fmt)
{
    return fmt == FMT_YAML ? "YAML" : "JSON";
}

/* The document's text, refused when it is larger than the reader's limit
 * (opts->max_size): what resil writes, it can read back. */
static int encode(char **out, size_t *len, const json_t *value, doc_format fmt, const char *path,
                  const resil_file_opts *o, resil_error *err)
{
    if (!value)
        return resil_error_set(err, RESIL_EINVAL, path, "no document to write to %s", path);
    char *t;
    size_t n;
    if (fmt == FMT_YAML) {
        int rc = resil_yaml_dump(&t, value, err);
        if (rc)
            return rc;
        n = strlen(t);
    } else {
        t = resil__json_dumps(value, JSON_INDENT(2), &n);
        if (!t)
            return resil_error_set(err, RESIL_EINVAL, path,
                                   "cannot encode the document for %s as JSON (invalid UTF-8, "
                                   "a NaN/infinite number or nesting too deep?)",
                                   path);
        char *g = realloc(t, n + 2);
        if (!g) {
            free(t);
            return resil_error_set(err, -ENOMEM, path, "out of memory");
        }
        t = g;
        t[n++] = '\n';
        t[n] = '\0';
    }
    size_t max = max_size_of(o);
    if (n > max) {
        free(t);
        return resil_error_set(err, -EFBIG, path,
                               "refusing to write %s: the new %s document is %zu bytes, more "
                               "than the limit of %zu bytes that its readers accept (the file "
                               "is unchanged)",
                               path, fmt_name(fmt), n, max);
    }
    *out = t;
    *len = n;
    return 0;
}

/* Line and column (1-based, in bytes) of text[pos]. */
static void line_col(const char *text, size_t pos, int *line, int *col)
{
    int l = 1;
    size_t start = 0;
    for (size_t i = 0; i < pos; i++) {
        if (text[i] == '\n') {
            l++;
            start = i + 1;
        }
    }
    *line = l;
    *col = (int)(pos - start) + 1;
}

static int parse_error(resil_error *err, const char *path, int line, int col, const char *fmt,
                       ...) __attribute__((format(printf, 5, 6)));
static int parse_error(resil_error *err, const char *path, int line, int col, const char *fmt,
                       ...)
{
    char what[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int rc = line > 0 ? resil_error_set(err, RESIL_EPARSE, path, "%s:%d:%d: %s", path, line, col,
                                        what)
                      : resil_error_set(err, RESIL_EPARSE, path, "%s: %s", path, what);
    if (err) {
        err->line = line;
        err->column = col;
    }
    return rc;
}

static bool all_blank(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r')
            return false;
    }
    return true;
}

static int parse_text(json_t **out, const char *text, size_t len, doc_format fmt,
                      const char *path, resil_error *err)
{
    if (fmt == FMT_YAML) {
        int rc = resil_yaml_parse(out, text, len, path, err);
        if (rc == RESIL_EPARSE && err && err->line > 0) {
            /* the same shape as JSON's: "FILE:LINE:COLUMN: what" */
            char what[sizeof err->message];
            snprintf(what, sizeof what, "%s", err->message);
            parse_error(err, path, err->line, err->column, "%s", what);
        }
        return rc;
    }
    json_error_t je;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                           &je);
    if (!v)
        return parse_error(err, path, je.line, je.column, "%s", je.text);
    *out = v;
    return 0;
}

/* Parses a whole file's text.  What the parsers would report obscurely is
 * named first: an empty file, a UTF-8 byte order mark (JSON: RFC 8259 does
 * not allow one; YAML allows it, and libyaml reads it), NUL bytes after the
 * document. */
static int decode(json_t **out, const char *text, size_t len, doc_format fmt, const char *path,
                  resil_error *err)
{
    if (all_blank(text, len))
        return parse_error(err, path, 0, 0,
                           len == 0 ? "the file is empty (0 bytes), not a %s document"
                                    : "the file is empty (only whitespace), not a %s document",
                           fmt_name(fmt));
    if (fmt == FMT_JSON && len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        return parse_error(err, path, 1, 1,
                           "the file starts with a UTF-8 byte order mark (EF BB BF), which JSON "
                           "does not allow; remove those 3 bytes");
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        size_t pos = (size_t)(nul - text);
        json_t *v = NULL;
        resil_error tmp;
        resil_error_clear(&tmp);
        if (!all_blank(text, pos) && parse_text(&v, text, pos, fmt, path, &tmp) == 0) {
            json_decref(v);
            int line, col;
            line_col(text, pos, &line, &col);
            return parse_error(err, path, line, col,
                               "a NUL byte at line %d column %d after the document (the file "
                               "has %zu more bytes from there)",
                               line, col, len - pos);
        }
        int rc = parse_text(out, text, len, fmt, path, err);
        if (rc == RESIL_EPARSE && err) {
            int line, col;
            line_col(text, pos, &line, &col);
            char what[sizeof err->message];
            snprintf(what, sizeof what, "%s", err->message);
            int el = err->line, ec = err->column;
            resil_error_set(err, rc, path, "%s (the file has a NUL byte at line %d column %d)",
                            what, line, col);
            err->line = el;
            err->column = ec;
        }
        return rc;
    }
    return parse_text(out, text, len, fmt, path, err);
}

/* Reads and parses a document.  flags: O_NOFOLLOW for a resolved target.
 * *empty (may be NULL) tells that the file was empty (the result is then
 * RESIL_EPARSE). */
static int read_doc(json_t **out, const char *path, doc_format fmt, int flags, bool *empty,
                    const resil_file_opts *o, resil_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = read_file_flags(&buf, &len, path, flags, o, err);
    if (rc)
        return rc;
    if (empty)
        *empty = all_blank(buf, len);
    rc = decode(out, buf, len, fmt, path, err);
    free(buf);
    return rc;
}

static int write_doc(const char *path, const json_t *value, doc_format fmt,
                     const resil_file_opts *opts, resil_error *err)
{
    if (!path || !*path)
        return resil_error_set(err, RESIL_EINVAL, path, "write: bad arguments");
    if (resil__file_opts_check(opts, err))
        return RESIL_EINVAL;
    char *text = NULL;
    size_t len = 0;
    int rc = encode(&text, &len, value, fmt, path, resil__file_opts(opts), err);
    if (rc)
        return rc;
    rc = resil_write_file_atomic(path, text, len, opts, err);
    free(text);
    return rc;
}

static int update_doc(const char *path, resil_update_fn fn, void *arg, doc_format fmt,
                      const resil_file_opts *opts, resil_error *err)
{
    if (!path || !*path || !fn)
        return resil_error_set(err, RESIL_EINVAL, path, "update: bad arguments");
    if (resil__file_opts_check(opts, err))
        return RESIL_EINVAL;
    const resil_file_opts *o = resil__file_opts(opts);
    char *target;
    resil_lock *lk;
    int rc = lock_checked_target(&target, &lk, path, o, err);
    if (rc)
        return rc;
    json_t *doc = NULL;
    bool empty = false;
    rc = read_doc(&doc, target, fmt, O_NOFOLLOW, &empty, o, err);
    if (rc == -ENOENT || (rc == RESIL_EPARSE && empty)) {
        /* A missing file, or an empty one (resil never writes one: it was
         * made by `touch` or `: >`), is a document that does not exist
         * yet. */
        resil_error_clear(err);
        doc = NULL;
        rc = 0;
    }
    if (rc == 0) {
        int r = fn(&doc, arg);
        if (r < 0) {
            rc = err && err->code == r ? r
                                       : resil_error_set(err, r, target,
                                                         "the update of %s was abandoned: %s",
                                                         target, resil_strerror(r));
        } else if (r == 0) {
            char *text = NULL;
            size_t len = 0;
            rc = encode(&text, &len, doc, fmt, target, o, err);
            if (rc == 0) {
                resil__lock_temp_begin(lk);
                rc = replace_locked(target, text, len, o, lk->holder_died, err);
                resil__lock_temp_end(lk);
                free(text);
            }
        }
    }
    json_decref(doc);
    resil_lock_release(lk);
    free(target);
    return rc;
}

int resil_write_json_safe(const char *path, const json_t *value, const resil_file_opts *opts,
                          resil_error *err)
{
    return write_doc(path, value, FMT_JSON, opts, err);
}

int resil_read_json_safe(json_t **out, const char *path, const resil_file_opts *opts,
                         resil_error *err)
{
    if (!out)
        return resil_error_set(err, RESIL_EINVAL, path, "resil_read_json_safe: out is NULL");
    if (resil__file_opts_check(opts, err))
        return RESIL_EINVAL;
    return read_doc(out, path, FMT_JSON, 0, NULL, resil__file_opts(opts), err);
}

int resil_update_json_safe(const char *path, resil_update_fn fn, void *arg,
                           const resil_file_opts *opts, resil_error *err)
{
    return update_doc(path, fn, arg, FMT_JSON, opts, err);
}

int resil_write_yaml_safe(const char *path, const json_t *value, const resil_file_opts *opts,
                          resil_error *err)
{
    return write_doc(path, value, FMT_YAML, opts, err);
}

int resil_read_yaml_safe(json_t **out, const char *path, const resil_file_opts *opts,
                         resil_error *err)
{
    if (!out)
        return resil_error_set(err, RESIL_EINVAL, path, "resil_read_yaml_safe: out is NULL");
    if (resil__file_opts_check(opts, err))
        return RESIL_EINVAL;
    return read_doc(out, path, FMT_YAML, 0, NULL, resil__file_opts(opts), err);
}

int resil_update_yaml_safe(const char *path, resil_update_fn fn, void *arg,
                           const resil_file_opts *opts, resil_error *err)
{
    return update_doc(path, fn, arg, FMT_YAML, opts, err);
}

int resil_write_file_atomic(const char *path, const void *data, size_t len,
                            const resil_file_opts *opts, resil_error *err)
{
    int64_t t0 = resil__metrics_enabled() ? resil_clock_monotonic_ns(NULL) : 0;
    int rc = write_file_atomic(path, data, len, opts, err);
    if (t0)
        resil__files_metrics_op(RESIL__FILE_OP_WRITE_ATOMIC, rc,
                                resil_clock_monotonic_ns(NULL) - t0);
    return rc;
}
