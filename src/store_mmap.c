/* src/store_mmap.c - the one-machine backend of the store interface: the
 * state of a name is a record in the memory-mapped file <dir>/<enc(name)>.cb,
 * shared by the processes of the machine.  See src/internal/store.h,
 * src/internal/store_mmap.h and docs/store.md. */
#define _GNU_SOURCE
#include "internal/lockwait.h"
#include "internal/store_mmap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sched.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>

#include "internal/sys.h"
#include "internal/trust.h"
#include "internal/fork.h"

/* ---- names ------------------------------------------------------------------- */

static bool plain_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
}

/* The file name of a breaker: the name with bytes other than [A-Za-z0-9._-]
 * (and a leading '.') written %XX, then ".cb".  When that would be longer
 * than 200 bytes (file systems allow 255), it is cut at 160 bytes and
 * "~" and 16 hex digits of a 64-bit FNV-1a hash of the whole name follow:
 * such names are read back from the file's header, not from its name. */
/* Appends name[0..n) to o, %-encoded; stops before passing `limit` bytes
 * (never inside a %XX).  Returns the new end. */
static char *encode(char *o, const char *name, size_t n, size_t limit)
{
    static const char hex[] = "0123456789ABCDEF";
    char *start = o;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        /* A leading '.' is encoded too, so no name is hidden or is "." / "..". */
        bool plain = plain_byte(c) && !(i == 0 && c == '.');
        if ((size_t)(o - start) + (plain ? 1 : 3) > limit)
            break;
        if (plain) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    return o;
}

char *resil__cb_path(const char *dir, const char *name)
{
    size_t dl = strlen(dir), nl = strlen(name);
    char *p = malloc(dl + 1 + nl * 3 + 32);
    if (!p)
        return NULL;
    char *o = p;
    memcpy(o, dir, dl);
    o += dl;
    if (dl == 0 || dir[dl - 1] != '/')
        *o++ = '/';
    char *base = o;
    o = encode(base, name, nl, (size_t)-1);
    if (o - base > 197) { /* too long: cut, and add a hash of the whole name */
        o = encode(base, name, nl, 160);
        uint64_t h = 1469598103934665603ULL;
        for (size_t k = 0; k < nl; k++)
            h = (h ^ (unsigned char)name[k]) * 1099511628211ULL;
        o += sprintf(o, "~%016llx", (unsigned long long)h);
    }
    memcpy(o, ".cb", 4);
    return p;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool resil__cb_decode_name(char *name, const char *base)
{
    size_t bl = strlen(base);
    if (bl < 4 || strcmp(base + bl - 3, ".cb") != 0)
        return false;
    size_t n = 0;
    for (size_t i = 0; i < bl - 3; i++) {
        if (n >= RESIL__CB_NAME_MAX)
            return false;
        if (base[i] == '%') {
            if (i + 2 >= bl - 3)
                return false;
            int h = hexval(base[i + 1]), l = hexval(base[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0))
                return false;
            /* only what resil__cb_path writes: upper-case hex, and only for
             * bytes that need it (or a leading '.') */
            if ((base[i + 1] >= 'a' && base[i + 1] <= 'f') || (base[i + 2] >= 'a' && base[i + 2] <= 'f'))
                return false;
            unsigned char c = (unsigned char)(h * 16 + l);
            if (plain_byte(c) && !(n == 0 && c == '.'))
                return false;
            name[n++] = (char)c;
            i += 2;
        } else if (plain_byte((unsigned char)base[i]) && !(n == 0 && base[i] == '.')) {
            name[n++] = base[i];
        } else {
            return false;
        }
    }
    name[n] = 0;
    return n > 0;
}

/* ---- locks ------------------------------------------------------------------- */

int64_t resil__cb_lock_wait_ns = 5 * INT64_C(1000000000);

/* Counts forks (in the children): a store opened in an earlier generation
 * shares its fd, and so its OFD lock, with the parent. */
static _Atomic unsigned fork_gen;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void fork_child(void)
{
    atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
}

static void fork_register(void)
{
    resil__fork_hook(RESIL__FORK_STORE, NULL, NULL, fork_child);
}

/* The mmap backend's store. */
struct mmap_store {
    resil__store base;          /* base.rec: the mapping (or a private copy) */
    pthread_mutex_t mu;
    int fd;                     /* the state file (-1 for a readonly copy) */
    unsigned fork_gen;          /* forks seen when fd was opened */
    dev_t dev;                  /* the state file's identity */
    ino_t ino;
    /* times the state file was found shorter than the record under the lock
     * and was sized back and reinitialised (a reset) */
    _Atomic unsigned long shrink_resets;
    /* the epoch this store last saw under the lock (a reset after a shrink
     * goes on from it: the page that held it may be gone) */
    uint64_t epoch_seen;
};

/* Takes an OFD lock on the whole file, waiting at most resil__cb_lock_wait_ns:
 * holders keep it for microseconds, so a longer wait means a holder that is
 * stopped (SIGSTOP, a debugger, a frozen cgroup), and never blocking forever
 * matters more.  The one lock wait of resil (src/lock.c) in its plain-polling
 * mode: no queue, the real clock, read only once the lock was found taken.
 * Returns 0, RESIL_ETIMEDOUT or -errno. */
static int ofd_lock(int fd, short type)
{
    resil__lock_wait_opts w = {
        .type = type,
        .whole_file = true,
        .timeout_ns = resil__cb_lock_wait_ns,
    };
    return resil__lock_wait_with(fd, &w, NULL);
}

/* Under the lock: the state file may have been truncated (by its owner or
 * root, or by anyone when trust was opted in) since it was mapped, and a
 * page of the mapping past its end would raise SIGBUS.  Nothing of the
 * mapping is touched before the size is known: a file that shrank is sized
 * back (the lost pages come back zero) and its record reinitialised, which
 * is a reset of the breaker (its epoch moves on, so no permit of before
 * counts).  Returns 0 or -errno. */
static int check_size(struct mmap_store *m)
{
    struct stat sb;
    if (resil__sys.fstat(m->fd, &sb) != 0)
        return -errno;
    if (sb.st_size >= (off_t)sizeof(struct resil__cb_state))
        return 0;
    if (resil__sys.ftruncate(m->fd, (off_t)sizeof(struct resil__cb_state)) != 0)
        return -errno;
    resil__cb_state_init(m->base.rec, m->base.name);
    /* The lost page held the epoch: go on from the last one this store saw,
     * so that no permit of before the reset matches the new state. */
    uint64_t w = atomic_load(&m->base.rec->word);
    if (RESIL__CB_EPOCH(w) <= m->epoch_seen)
        atomic_store(&m->base.rec->word, (w & 0xffu) | ((m->epoch_seen + 1) << 8));
    atomic_fetch_add_explicit(&m->shrink_resets, 1, memory_order_relaxed);
    return 0;
}

unsigned long resil__store_mmap_shrink_resets(const resil__store *s)
{
    const struct mmap_store *m = (const struct mmap_store *)s;
    return atomic_load_explicit(&m->shrink_resets, memory_order_relaxed);
}

int resil__store_mmap_fd(const resil__store *s)
{
    return ((const struct mmap_store *)s)->fd;
}

/* A handle inherited across fork shares the parent's open file description,
 * and so its OFD lock: get our own.  Under m->mu. */
static int reopen_after_fork(struct mmap_store *m)
{
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", m->fd); /* the same inode */
    int fd = resil__sys.open(self, O_RDWR | O_CLOEXEC, 0);
    struct stat sb;
    if (fd >= 0 && (resil__sys.fstat(fd, &sb) != 0 || sb.st_dev != m->dev ||
                    sb.st_ino != m->ino)) {
        /* the child closed that fd, and it now is another file */
        resil__sys.close(fd);
        fd = -1;
        errno = ESTALE;
    }
    if (fd < 0)
        return -errno;
    resil__sys.close(m->fd);
    m->fd = fd;
    m->fork_gen = atomic_load_explicit(&fork_gen, memory_order_relaxed);
    return 0;
}

static void ofd_unlock(int fd)
{
    struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    (void)resil__sys.fcntl_lock(fd, F_OFD_SETLK, &fl);
}

int resil__store_lock(resil__store *s)
{
    if (s->readonly)
        return -EACCES; /* a copy of a file this process may not write */
    struct mmap_store *m = (struct mmap_store *)s;
    struct resil__cb_state *st = s->rec;
    pthread_mutex_lock(&m->mu);
    int rc = 0;
    if (m->fork_gen != atomic_load_explicit(&fork_gen, memory_order_relaxed))
        rc = reopen_after_fork(m);
    if (rc == 0)
        rc = ofd_lock(m->fd, F_WRLCK);
    if (rc < 0) {
        pthread_mutex_unlock(&m->mu);
        return rc;
    }
    if ((rc = check_size(m)) != 0) {
        ofd_unlock(m->fd);
        pthread_mutex_unlock(&m->mu);
        return rc;
    }
    /* Anything may have written the file; a holder killed mid-update (or a
     * reset_file in another process that found garbage) leaves dirty set:
     * make the record sane before using it. */
    if (atomic_load_explicit(&st->dirty, memory_order_relaxed) ||
        resil__cb_state_check(st) != NULL) {
        if (st->magic != RESIL__CB_MAGIC || st->version != RESIL__CB_VERSION ||
            st->size != sizeof *st || memchr(st->name, 0, sizeof st->name) == NULL)
            resil__cb_state_init(st, s->name);
        resil__cb_state_repair(st);
    }
    /* The mark matters only to other processes, after this one died: its
     * stores are then all in memory, so only the compiler could put an
     * update before the mark, and a signal fence stops that. */
    atomic_store_explicit(&st->dirty, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    return 0;
}

void resil__store_unlock(resil__store *s)
{
    struct mmap_store *m = (struct mmap_store *)s;
    m->epoch_seen = RESIL__CB_EPOCH(atomic_load_explicit(&s->rec->word, memory_order_relaxed));
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&s->rec->dirty, 0, memory_order_relaxed);
    ofd_unlock(m->fd);
    pthread_mutex_unlock(&m->mu);
}

/* ---- the store ----------------------------------------------------------------- */

static void mmap_close(resil__store *s);

static const resil__store_ops mmap_ops = {
    .kind = "mmap",
    .read = resil__rec_read,
    .apply = resil__rec_apply,
    .add = resil__rec_add,
    .lease_take = resil__rec_lease_take,
    .lease_return = resil__rec_lease_return,
    .close = mmap_close,
    .lock = resil__store_lock,
    .unlock = resil__store_unlock,
};

static struct mmap_store *store_alloc(const char *name, char *path)
{
    struct mmap_store *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    pthread_mutex_init(&m->mu, NULL);
    m->fd = -1;
    m->base.ops = &mmap_ops;
    m->base.caps = RESIL__STORE_CAP_RECORD | RESIL__STORE_CAP_SHARED | RESIL__STORE_CAP_PERSISTENT;
    m->base.path = path;
    snprintf(m->base.name, sizeof m->base.name, "%s", name);
    return m;
}

static void rebase_after_boot(struct resil__cb_state *st, int64_t now_ns, int64_t wall_ns)
{
    char boot[48];
    resil__store_boot_id(boot, sizeof boot);
    if (boot[0] == 0 || strcmp(boot, st->boot_id) == 0)
        return;
    /* Monotonic times of another boot mean nothing here: an OPEN breaker
     * stays open for what is left of its wall-clock open time; trial leases
     * of the processes of that boot are gone. */
    int64_t left = atomic_load(&st->open_until_wall_ns) - wall_ns;
    if (left < 0)
        left = 0;
    if (left > atomic_load(&st->open_duration_ns))
        left = atomic_load(&st->open_duration_ns);
    atomic_store(&st->open_until_ns, now_ns + left);
    for (int i = 0; i < RESIL__CB_SLOTS; i++)
        atomic_store(&st->slots[i].expires_ns, 0);
    memset(st->boot_id, 0, sizeof st->boot_id);
    snprintf(st->boot_id, sizeof st->boot_id, "%s", boot);
}

/* ---- trust: the directory and the file ------------------------------------------ */

int resil__cb_trust_from_env(bool *shared, resil_error *err)
{
    *shared = false;
    const char *v = getenv("RESIL_STATE_DIR_TRUST");
    if (!v || !*v || strcmp(v, "private") == 0)
        return 0;
    if (strcmp(v, "shared") == 0) {
        *shared = true;
        return 0;
    }
    return resil_error_set(err, RESIL_EINVAL, "RESIL_STATE_DIR_TRUST",
                           "RESIL_STATE_DIR_TRUST=%.100s is not a trust mode: expected "
                           "\"private\" (the default: refuse state directories and files "
                           "that others may write) or \"shared\"",
                           v);
}

#define OPT_IN_HINT " (RESIL_STATE_DIR_TRUST=shared, the breaker option state_trust or the " \
                    "CLI's --state-dir-trust shared opts in)"

/* A trust check that failed (t): passes (with *untrusted set) when the
 * caller opted in, else is copied into err with the way to opt in. */
static int refuse_or_trust(const resil__store_cfg *cfg, int rc, const resil_error *t,
                           bool *untrusted, resil_error *err)
{
    if (cfg && cfg->trust_shared) {
        *untrusted = true;
        return 0;
    }
    return resil_error_set(err, rc, t->path, "%.400s" OPT_IN_HINT, t->message);
}

/* Opens the state directory dir, creating it (exactly cfg's mode, 0700 by
 * default, whatever the umask) when `create`, and checks through that fd
 * that it is private: what is then opened in it is opened relative to the
 * fd, so nothing can be swapped in between.  A symlink to the directory is
 * followed only under the protected-symlinks rule.  Returns the fd, or a
 * negative code (err names the directory). */
static int open_state_dir(const char *dir, bool create, const resil__store_cfg *cfg,
                          bool *untrusted, resil_error *err)
{
    mode_t want = cfg && cfg->dir_mode ? cfg->dir_mode : 0700;
    bool created = false;
    if (create) {
        if (resil__sys.mkdir(dir, want) == 0)
            created = true;
        else if (errno != EEXIST)
            return resil_error_set(err, -errno, dir, "cannot create the state directory %s: %s",
                                   dir, strerror(errno));
    }
    int dfd = resil__sys.open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
    if (dfd < 0 && (errno == ELOOP || errno == ENOTDIR)) {
        /* O_DIRECTORY | O_NOFOLLOW on a symlink: ENOTDIR (or ELOOP) */
        int e = errno;
        struct stat lst;
        if (resil__sys.lstat(dir, &lst) == 0 && S_ISLNK(lst.st_mode)) {
            int rc = resil__symlink_check(dir, &lst, err);
            if (rc)
                return rc;
            dfd = resil__sys.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        } else {
            errno = e;
        }
    }
    if (dfd < 0) {
        int e = errno;
        if (e == ENOENT)
            return resil_error_set(err, -e, dir, "no state directory %s", dir);
        if (e == ENOTDIR)
            return resil_error_set(err, -e, dir, "the state directory %s is not a directory",
                                   dir);
        return resil_error_set(err, -e, dir, "cannot open the state directory %s: %s", dir,
                               strerror(e));
    }
    struct stat st;
    if (resil__sys.fstat(dfd, &st) != 0) {
        int e = errno;
        resil__sys.close(dfd);
        return resil_error_set(err, -e, dir, "cannot stat the state directory %s: %s", dir,
                               strerror(e));
    }
    if (created && st.st_uid == geteuid() && (st.st_mode & 07777) != want) {
        if (resil__sys.fchmod(dfd, want) != 0) {
            int e = errno;
            resil__sys.close(dfd);
            return resil_error_set(err, -e, dir, "cannot set the mode of the state directory "
                                   "%s: %s", dir, strerror(e));
        }
        st.st_mode = (st.st_mode & ~(mode_t)07777) | want;
    }
    resil_error t;
    resil_error_clear(&t);
    int rc = resil__dir_check_private(dir, &st, false, &t);
    if (rc && (rc = refuse_or_trust(cfg, rc, &t, untrusted, err)) != 0) {
        resil__sys.close(dfd);
        return rc;
    }
    return dfd;
}

/* Opens the state file of `name` in dir (creating dir and the file when
 * `create`), never through a symbolic link, checks its owner and mode,
 * takes its OFD write lock and stats it.  With may_read_only, a file the
 * caller may not write is opened O_RDONLY (*readonly; no lock is taken).
 * *guarded: a directory or file that is not private passed because the
 * caller opted in.  Returns 0 with *path_out (malloc'd), *fd_out and *sb,
 * or an error (err names the file) with nothing left open. */
static int open_locked(const char *dir, const char *name, bool create, bool may_read_only,
                       const resil__store_cfg *cfg, char **path_out, int *fd_out,
                       struct stat *sb, bool *guarded, bool *readonly, resil_error *err)
{
    bool untrusted = false;
    *guarded = false;
    *readonly = false;
    int dfd = open_state_dir(dir, create, cfg, &untrusted, err);
    if (dfd < 0)
        return dfd;
    char *path = resil__cb_path(dir, name);
    char *rel = resil__cb_path("", name); /* "/<base>" */
    if (!path || !rel) {
        free(path);
        free(rel);
        resil__sys.close(dfd);
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    }
    const char *base = rel + 1;
    mode_t fmode = cfg && cfg->file_mode ? cfg->file_mode : 0600;
    int rc = 0;
    int fd = -1;
    for (int tries = 0; tries < 8; tries++) {
        fd = resil__sys.openat(dfd, base, O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0);
        if (fd >= 0 || errno != ENOENT || !create)
            break;
        fd = resil__sys.openat(dfd, base, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_CREAT | O_EXCL,
                               fmode);
        if (fd >= 0) {
            /* exactly fmode, whatever the umask */
            if (resil__sys.fchmod(fd, fmode) != 0) {
                int e = errno;
                resil__sys.close(fd);
                (void)resil__sys.unlinkat(dfd, base, 0);
                fd = -1;
                errno = e;
            }
            break;
        }
        if (errno != EEXIST) /* else another process created it: open that */
            break;
    }
    if (fd < 0 && may_read_only && (errno == EACCES || errno == EPERM || errno == EROFS)) {
        int e = errno;
        fd = resil__sys.openat(dfd, base, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0);
        if (fd >= 0)
            *readonly = true;
        else
            errno = e;
    }
    if (fd < 0) {
        rc = -errno;
        if (rc == -ENOENT && !create)
            resil_error_set(err, rc, path, "no breaker %s in %s", name, dir);
        else if (rc == -ELOOP)
            resil_error_set(err, rc, path,
                            "%s is a symbolic link: breaker state files must not be", path);
        else
            resil_error_set(err, rc, path, "cannot open the breaker state %s: %s", path,
                            strerror(-rc));
        goto fail;
    }
    if (resil__sys.fstat(fd, sb) != 0) {
        rc = resil_error_set(err, -errno, path, "cannot stat %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb->st_mode)) {
        rc = resil_error_set(err, RESIL_EPARSE, path, "%s is not a regular file", path);
        goto fail;
    }
    /* Lock-free readers rely on the file keeping its size: only its owner
     * may be able to write (and so truncate) it. */
    resil_error t;
    resil_error_clear(&t);
    int trc = resil__file_check_owner(path, sb, false, &t);
    if (!trc && (sb->st_mode & (S_IWGRP | S_IWOTH)))
        trc = resil_error_set(&t, -EPERM, path,
                              "refusing %s: its mode %04o lets %s write to it; make it 0600 "
                              "(chmod go-w) or opt in to trust it",
                              path, (unsigned)(sb->st_mode & 07777),
                              (sb->st_mode & S_IWOTH) ? "every user" : "its group");
    if (trc && (rc = refuse_or_trust(cfg, trc, &t, &untrusted, err)) != 0)
        goto fail;
    if (!*readonly) {
        rc = ofd_lock(fd, F_WRLCK);
        if (rc < 0)
            resil_error_set(err, rc, path, "cannot lock %s: %s%s", path, resil_strerror(rc),
                            rc == RESIL_ETIMEDOUT ? " (is a process holding it stopped?)" : "");
        else if (resil__sys.fstat(fd, sb) != 0) /* its size under the lock */
            rc = resil_error_set(err, -errno, path, "cannot stat %s: %s", path, strerror(errno));
        if (rc)
            goto fail;
    }
    resil__sys.close(dfd);
    free(rel);
    *guarded = untrusted;
    *path_out = path;
    *fd_out = fd;
    return 0;
fail:
    if (fd >= 0)
        resil__sys.close(fd); /* drops the OFD lock */
    resil__sys.close(dfd);
    free(rel);
    free(path);
    return rc;
}

/* Maps a state file of the right size into *map.  Returns 0 or -errno (err
 * names the file). */
static int map_record(int fd, const char *path, void **map, resil_error *err)
{
    *map = resil__sys.mmap(NULL, sizeof(struct resil__cb_state), PROT_READ | PROT_WRITE,
                           MAP_SHARED, fd, 0);
    if (*map == MAP_FAILED)
        return resil_error_set(err, -errno, path, "cannot map %s: %s", path, strerror(errno));
    return 0;
}

/* A readonly store: a copy of the record in fd (read-only, unlocked), read
 * until no holder is mid-update (holders keep the lock for microseconds; a
 * record left dirty by a holder that died is repaired in the copy). */
static int read_copy(int fd, const char *path, const char *dir, const char *name, off_t size,
                     struct resil__cb_state **out, resil_error *err)
{
    if (size == 0)
        return resil_error_set(err, -ENOENT, path, "no breaker %s in %s (its state file is "
                               "empty: being created, or its creator died)", name, dir);
    if (size != (off_t)sizeof(struct resil__cb_state))
        return resil_error_set(err, RESIL_EPARSE, path,
                               "%s is not a breaker state of this version: %lld bytes, expected "
                               "%zu (truncated or foreign)",
                               path, (long long)size, sizeof(struct resil__cb_state));
    struct resil__cb_state *st = aligned_alloc(128, sizeof *st);
    if (!st)
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    const char *defect = NULL;
    for (int attempt = 0;; attempt++) {
        ssize_t r = resil__sys.pread(fd, st, sizeof *st, 0);
        if (r < 0) {
            int e = errno;
            free(st);
            return resil_error_set(err, -e, path, "cannot read %s: %s", path, strerror(e));
        }
        if (r != (ssize_t)sizeof *st) {
            defect = "shorter than a record (truncated)";
        } else if (st->magic == 0) {
            free(st);
            return resil_error_set(err, -ENOENT, path, "no breaker %s in %s (its state file "
                                   "is being created, or its creator died)", name, dir);
        } else {
            bool dirty = atomic_load(&st->dirty) != 0;
            defect = resil__cb_state_check(st);
            if (!defect && !dirty)
                break;
            if (attempt >= 50 && dirty && st->magic == RESIL__CB_MAGIC &&
                st->version == RESIL__CB_VERSION && st->size == sizeof *st) {
                resil__cb_state_repair(st); /* its holder died mid-update */
                defect = resil__cb_state_check(st);
            }
        }
        if (attempt >= 50)
            break;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    if (!defect && strcmp(st->name, name) != 0)
        defect = "it holds another breaker's state";
    if (defect) {
        free(st);
        return resil_error_set(err, RESIL_EPARSE, path, "%s is corrupt: %s", path, defect);
    }
    *out = st;
    return 0;
}

int resil__store_open_file(resil__store **out, const char *dir, const char *name,
                           bool attach_only, int64_t now_ns, int64_t wall_ns, resil_error *err)
{
    return resil__store_open_file_cfg(out, dir, name, attach_only, NULL, now_ns, wall_ns, err);
}

/* Opens a readonly store: a private copy of a file the caller may read but
 * not write.  Takes fd and path. */
static int open_copy(resil__store **out, int fd, char *path, const char *dir, const char *name,
                     off_t size, int64_t now_ns, int64_t wall_ns, resil_error *err)
{
    struct resil__cb_state *copy = NULL;
    int rc = read_copy(fd, path, dir, name, size, &copy, err);
    resil__sys.close(fd);
    struct mmap_store *m = rc ? NULL : store_alloc(name, path);
    if (!rc && !m)
        rc = resil_error_set(err, -ENOMEM, NULL, "out of memory");
    if (rc) {
        free(copy);
        free(path);
        return rc;
    }
    rebase_after_boot(copy, now_ns, wall_ns);
    m->base.rec = m->base.st = copy;
    m->base.readonly = true;
    *out = &m->base;
    return 0;
}

/* Under the creation lock: a fresh or a zeroed record is initialised, a
 * dirty one repaired, then judged.  Returns 0 or RESIL_EPARSE. */
static int settle_record(struct resil__cb_state *st, bool fresh, const char *path,
                         const char *name, int64_t now_ns, int64_t wall_ns, resil_error *err)
{
    /* init writes the magic last: 0 means a creation or reset that did not
     * finish (whatever of the rest landed). */
    if (fresh || st->magic == 0) {
        resil__cb_state_init(st, name);
        return 0;
    }
    /* A holder killed mid-update left dirty set: repair, then judge. */
    if (st->magic == RESIL__CB_MAGIC && st->version == RESIL__CB_VERSION &&
        st->size == sizeof *st && atomic_load(&st->dirty))
        resil__cb_state_repair(st);
    const char *defect = resil__cb_state_check(st);
    if (!defect && strcmp(st->name, name) != 0)
        defect = "it holds another breaker's state";
    if (defect)
        return resil_error_set(err, RESIL_EPARSE, path, "%s is corrupt: %s", path, defect);
    rebase_after_boot(st, now_ns, wall_ns);
    return 0;
}

int resil__store_open_file_cfg(resil__store **out, const char *dir, const char *name,
                               bool attach_only, const resil__store_cfg *cfg, int64_t now_ns,
                               int64_t wall_ns, resil_error *err)
{
    char *path;
    int fd;
    struct stat sb;
    bool guarded, readonly;
    int rc = open_locked(dir, name, !attach_only, attach_only, cfg, &path, &fd, &sb, &guarded,
                         &readonly, err);
    if (rc)
        return rc;
    if (readonly)
        return open_copy(out, fd, path, dir, name, sb.st_size, now_ns, wall_ns, err);
    void *map = MAP_FAILED;
    if (sb.st_size == 0 && attach_only) {
        rc = resil_error_set(err, -ENOENT, path, "no breaker %s in %s (its state file is empty: "
                             "being created, or its creator died)", name, dir);
        goto fail;
    }
    bool fresh = sb.st_size == 0;
    if (fresh && resil__sys.ftruncate(fd, (off_t)sizeof(struct resil__cb_state)) != 0) {
        rc = resil_error_set(err, -errno, path, "cannot size %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!fresh && sb.st_size != (off_t)sizeof(struct resil__cb_state)) {
        rc = resil_error_set(err, RESIL_EPARSE, path,
                             "%s is not a breaker state of this version: %lld bytes, expected "
                             "%zu (truncated or foreign)",
                             path, (long long)sb.st_size, sizeof(struct resil__cb_state));
        goto fail;
    }
    if ((rc = map_record(fd, path, &map, err)) != 0)
        goto fail;
    if ((rc = settle_record(map, fresh, path, name, now_ns, wall_ns, err)) != 0)
        goto fail;
    ofd_unlock(fd);
    struct mmap_store *m = store_alloc(name, path);
    if (!m) {
        rc = resil_error_set(err, -ENOMEM, NULL, "out of memory");
        goto fail;
    }
    struct resil__cb_state *st = map;
    pthread_once(&fork_once, fork_register);
    m->fork_gen = atomic_load_explicit(&fork_gen, memory_order_relaxed);
    m->dev = sb.st_dev;
    m->ino = sb.st_ino;
    m->base.rec = st;
    m->base.st = guarded ? NULL : st;
    m->base.guarded = guarded;
    m->epoch_seen = RESIL__CB_EPOCH(atomic_load(&st->word));
    m->fd = fd;
    *out = &m->base;
    return 0;
fail:
    if (map != MAP_FAILED)
        resil__sys.munmap(map, sizeof(struct resil__cb_state));
    resil__sys.close(fd); /* drops the OFD lock */
    free(path);
    return rc;
}

static void mmap_close(resil__store *s)
{
    struct mmap_store *m = (struct mmap_store *)s;
    if (s->readonly) {
        free(s->rec);
    } else {
        resil__sys.munmap(s->rec, sizeof *s->rec);
        resil__sys.close(m->fd);
    }
    pthread_mutex_destroy(&m->mu);
    free(s->path);
    free(m);
}

int resil__cb_reset_file(const char *dir, const char *name, const resil__store_cfg *cfg,
                         resil_error *err)
{
    if (!dir || !*dir || !name || !*name || strlen(name) > RESIL__CB_NAME_MAX)
        return resil_error_set(err, RESIL_EINVAL, "name",
                               "a state directory and a name of 1..%d bytes are needed",
                               RESIL__CB_NAME_MAX);
    char *path;
    int fd;
    struct stat sb;
    bool guarded, readonly;
    int rc = open_locked(dir, name, true, false, cfg, &path, &fd, &sb, &guarded, &readonly, err);
    if (rc)
        return rc;
    void *map = MAP_FAILED;
    if (sb.st_size != (off_t)sizeof(struct resil__cb_state) &&
        resil__sys.ftruncate(fd, (off_t)sizeof(struct resil__cb_state)) != 0) {
        rc = resil_error_set(err, -errno, path, "cannot size %s: %s", path, strerror(errno));
        goto out;
    }
    if ((rc = map_record(fd, path, &map, err)) != 0)
        goto out;
    resil__cb_state_init(map, name);
out:
    if (map != MAP_FAILED)
        resil__sys.munmap(map, sizeof(struct resil__cb_state));
    resil__sys.close(fd);
    free(path);
    return rc;
}

bool resil__cb_read_name(char *name, int dirfd, const char *base)
{
    int fd = resil__sys.openat(dirfd, base, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0);
    if (fd < 0)
        return false;
    struct {
        uint64_t magic;
        uint32_t version;
        uint32_t size;
        char name[RESIL__CB_NAME_MAX + 8];
    } h;
    _Static_assert(offsetof(struct resil__cb_state, name) == 16, "header layout");
    struct stat sb;
    bool ok = resil__sys.fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
              resil__sys.pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h &&
              h.magic == RESIL__CB_MAGIC &&
              memchr(h.name, 0, sizeof h.name) != NULL && h.name[0] != 0 &&
              strlen(h.name) <= RESIL__CB_NAME_MAX;
    resil__sys.close(fd);
    if (!ok)
        return false;
    /* Only when this file is where that name lives. */
    char *p = resil__cb_path("", h.name);
    ok = p && strcmp(p + 1, base) == 0;
    free(p);
    if (ok)
        memcpy(name, h.name, strlen(h.name) + 1);
    return ok;
}

/* ---- listing ------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of dir's state files, malloc'd (*out, *n).  0 or -errno. */
static int collect_names(DIR *d, char ***out, size_t *n_out)
{
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    char name[RESIL__CB_NAME_MAX + 1];
    int rc = 0;
    while ((errno = 0, e = resil__sys.readdir(d)) != NULL) {
        size_t bl = strlen(e->d_name);
        if (bl < 4 || strcmp(e->d_name + bl - 3, ".cb") != 0)
            continue;
        if (!resil__cb_read_name(name, dirfd(d), e->d_name) &&
            !resil__cb_decode_name(name, e->d_name))
            continue; /* neither a header nor a file name says whose it is */
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                rc = -ENOMEM;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(name))) {
            rc = -ENOMEM;
            break;
        }
        n++;
    }
    if (!e && errno && rc == 0) /* readdir failed: not the end of the list */
        rc = -errno;
    *out = names;
    *n_out = n;
    return rc;
}

int resil__store_mmap_list(const char *dir, int (*fn)(const char *name, void *arg), void *arg,
                           resil_error *err)
{
    DIR *d = resil__sys.opendir(dir);
    if (!d)
        return resil_error_set(err, -errno, dir, "cannot read the state directory %s: %s", dir,
                               strerror(errno));
    char **names;
    size_t n;
    int rc = collect_names(d, &names, &n);
    resil__sys.closedir(d);
    if (rc == 0) {
        if (n > 1)
            qsort(names, n, sizeof *names, cmp_str);
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = fn(names[i], arg);
    } else if (rc == -ENOMEM) {
        resil_error_set(err, rc, dir, "out of memory");
    } else {
        resil_error_set(err, rc, dir, "cannot read the state directory %s: %s", dir,
                        strerror(-rc));
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}
