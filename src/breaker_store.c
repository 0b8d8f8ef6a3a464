/* src/breaker_store.c - the stores of breaker state: process-local memory, or
 * a memory-mapped file shared by the processes of one machine.  See
 * src/internal/store.h. */
#define _GNU_SOURCE
#include "internal/files.h"
#include "internal/store.h"
#include "resil/breaker.h"

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

/* ---- the record ------------------------------------------------------------ */

static void read_boot_id(char *out, size_t n)
{
    static char cached[48];
    static _Atomic int state; /* 0 unread, 1 reading, 2 read */
    int expect = 0;
    if (atomic_compare_exchange_strong(&state, &expect, 1)) {
        int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t r = read(fd, cached, sizeof cached - 1);
            if (r > 0) {
                cached[r] = 0;
                cached[strcspn(cached, "\n")] = 0;
            }
            close(fd);
        }
        atomic_store(&state, 2);
    }
    while (atomic_load(&state) != 2)
        ;
    snprintf(out, n, "%s", cached);
}

void resil__cb_state_init(struct resil__cb_state *st, const char *name)
{
    /* In place and field by field, so processes that have the record mapped
     * never see a torn atomic; the magic goes last. */
    /* A reset keeps the window's size (processes that run with a window
     * rely on it) and moves lease generations on, so that no permit of
     * before the reset matches a lease granted after it. */
    bool had = st->magic == RESIL__CB_MAGIC;
    int32_t ws = had ? atomic_load(&st->window_size) : 0;
    if (ws < 0 || ws > RESIL__CB_WINDOW_MAX)
        ws = 0;
    st->magic = 0;
    atomic_store(&st->word, (uint64_t)0 | ((RESIL__CB_EPOCH(atomic_load(&st->word)) + 1) << 8));
    atomic_store(&st->consecutive_failures, 0);
    atomic_store(&st->open_until_ns, 0);
    atomic_store(&st->open_until_wall_ns, 0);
    atomic_store(&st->open_duration_ns, 0);
    atomic_store(&st->open_streak, 0);
    atomic_store(&st->half_open_successes, 0);
    atomic_store(&st->window_size, ws);
    atomic_store(&st->window_head, 0);
    atomic_store(&st->window_count, 0);
    atomic_store(&st->window_failures, 0);
    atomic_store(&st->window_slow, 0);
    atomic_store(&st->cfg_failure_threshold, 0);
    atomic_store(&st->cfg_recovery_ns, 0);
    atomic_store(&st->last_change_wall_ns, 0);
    for (int i = 0; i < RESIL__CB_SLOTS; i++) {
        atomic_store(&st->slots[i].gen, atomic_load(&st->slots[i].gen) + 1);
        st->slots[i].pad = 0;
        atomic_store(&st->slots[i].expires_ns, 0);
    }
    for (int i = 0; i < RESIL__CB_STRIPES; i++) {
        atomic_store(&st->stripes[i].successful, 0);
        atomic_store(&st->stripes[i].failed, 0);
        atomic_store(&st->stripes[i].ignored, 0);
        atomic_store(&st->stripes[i].not_permitted, 0);
    }
    memset(st->ring, 0, sizeof st->ring);
    char copy[sizeof st->name]; /* name may point into st->name */
    snprintf(copy, sizeof copy, "%s", name);
    memset(st->name, 0, sizeof st->name);
    memcpy(st->name, copy, sizeof copy);
    read_boot_id(st->boot_id, sizeof st->boot_id);
    st->version = RESIL__CB_VERSION;
    st->size = (uint32_t)sizeof *st;
    atomic_store(&st->dirty, 0);
    atomic_thread_fence(memory_order_seq_cst);
    st->magic = RESIL__CB_MAGIC;
}

const char *resil__cb_state_check(const struct resil__cb_state *st)
{
    if (st->magic != RESIL__CB_MAGIC)
        return "not a resil breaker state (bad magic number)";
    if (st->version != RESIL__CB_VERSION)
        return "written by another version of resil (unknown layout version)";
    if (st->size != sizeof *st)
        return "wrong record size in the header";
    if (memchr(st->name, 0, sizeof st->name) == NULL)
        return "the name in the header is not terminated";
    if (memchr(st->boot_id, 0, sizeof st->boot_id) == NULL)
        return "the boot id in the header is not terminated";
    uint64_t w = atomic_load(&st->word);
    if (RESIL__CB_STATE(w) > 4)
        return "impossible state";
    int64_t cf = atomic_load(&st->consecutive_failures);
    if (cf < 0 || cf > RESIL__CB_COUNT_MAX)
        return "consecutive failure count out of range";
    int32_t streak = atomic_load(&st->open_streak), hos = atomic_load(&st->half_open_successes);
    if (streak < 0 || streak > 1000000 || hos < 0 || hos > 1000000)
        return "open streak or half-open count out of range";
    if (atomic_load(&st->open_until_ns) < 0 || atomic_load(&st->open_duration_ns) < 0 ||
        atomic_load(&st->open_until_wall_ns) < 0 ||
        atomic_load(&st->open_until_ns) > RESIL__CB_TIME_MAX ||
        atomic_load(&st->open_duration_ns) > RESIL__CB_TIME_MAX ||
        atomic_load(&st->open_until_wall_ns) > RESIL__CB_TIME_MAX)
        return "open time out of range";
    int32_t ws = atomic_load(&st->window_size);
    if (ws < 0 || ws > RESIL__CB_WINDOW_MAX)
        return "window size out of range";
    int32_t head = atomic_load(&st->window_head), count = atomic_load(&st->window_count);
    if (head < 0 || (ws > 0 && head >= ws) || (ws == 0 && head != 0) || count < 0 || count > ws)
        return "window position out of range";
    int32_t f = atomic_load(&st->window_failures), s = atomic_load(&st->window_slow);
    if (f < 0 || f > count || s < 0 || s > count)
        return "window counts out of range";
    for (int i = 0; i < RESIL__CB_SLOTS; i++)
        if (atomic_load(&st->slots[i].expires_ns) < 0 ||
            atomic_load(&st->slots[i].expires_ns) > RESIL__CB_TIME_MAX)
            return "trial lease expiry out of range";
    for (int i = 0; i < RESIL__CB_STRIPES; i++) {
        const struct resil__cb_stripe *sp = &st->stripes[i];
        int64_t a = atomic_load(&sp->successful), b = atomic_load(&sp->failed),
                c = atomic_load(&sp->ignored), d = atomic_load(&sp->not_permitted);
        if (a < 0 || b < 0 || c < 0 || d < 0 || a > RESIL__CB_COUNT_MAX ||
            b > RESIL__CB_COUNT_MAX || c > RESIL__CB_COUNT_MAX || d > RESIL__CB_COUNT_MAX)
            return "call counter out of range";
    }
    return NULL;
}

void resil__cb_state_repair(struct resil__cb_state *st)
{
    uint64_t w = atomic_load(&st->word);
    if (RESIL__CB_STATE(w) > 4)
        atomic_store(&st->word, (RESIL__CB_EPOCH(w) + 1) << 8);
    /* header strings terminated */
    st->name[sizeof st->name - 1] = 0;
    st->boot_id[sizeof st->boot_id - 1] = 0;
    int64_t cf = atomic_load(&st->consecutive_failures);
    if (cf < 0 || cf > RESIL__CB_COUNT_MAX)
        atomic_store(&st->consecutive_failures, 0);
    /* Only go_open raises the streak and only go_closed (or init) makes the
     * state CLOSED, clearing it: a CLOSED record with a streak is a trip
     * that died before its state word was stored. */
    if (atomic_load(&st->open_streak) < 0 || atomic_load(&st->open_streak) > 1000000 ||
        RESIL__CB_STATE(atomic_load(&st->word)) == RESIL_BREAKER_CLOSED)
        atomic_store(&st->open_streak, 0);
    if (atomic_load(&st->half_open_successes) < 0 ||
        atomic_load(&st->half_open_successes) > 1000000)
        atomic_store(&st->half_open_successes, 0);
    if (atomic_load(&st->open_until_ns) < 0 || atomic_load(&st->open_until_ns) > RESIL__CB_TIME_MAX)
        atomic_store(&st->open_until_ns, 0);
    if (atomic_load(&st->open_duration_ns) < 0 ||
        atomic_load(&st->open_duration_ns) > RESIL__CB_TIME_MAX)
        atomic_store(&st->open_duration_ns, 0);
    if (atomic_load(&st->open_until_wall_ns) < 0 ||
        atomic_load(&st->open_until_wall_ns) > RESIL__CB_TIME_MAX)
        atomic_store(&st->open_until_wall_ns, 0);
    int32_t ws = atomic_load(&st->window_size);
    int32_t head = atomic_load(&st->window_head), count = atomic_load(&st->window_count);
    if (ws < 0 || ws > RESIL__CB_WINDOW_MAX || head < 0 || (ws > 0 && head >= ws) ||
        (ws == 0 && head != 0) || count < 0 || count > ws) {
        atomic_store(&st->window_head, 0);
        atomic_store(&st->window_count, 0);
        if (ws < 0 || ws > RESIL__CB_WINDOW_MAX)
            atomic_store(&st->window_size, 0);
        count = 0;
        ws = atomic_load(&st->window_size);
        head = 0;
    }
    /* Recount the window from the ring: the last `count` entries before head. */
    int32_t f = 0, s = 0;
    for (int32_t i = 0; i < count; i++) {
        int32_t at = (head - 1 - i + ws) % ws;
        f += st->ring[at] & 1;
        s += (st->ring[at] >> 1) & 1;
    }
    atomic_store(&st->window_failures, f);
    atomic_store(&st->window_slow, s);
    for (int i = 0; i < RESIL__CB_SLOTS; i++)
        if (atomic_load(&st->slots[i].expires_ns) < 0 ||
            atomic_load(&st->slots[i].expires_ns) > RESIL__CB_TIME_MAX)
            atomic_store(&st->slots[i].expires_ns, 0);
    for (int i = 0; i < RESIL__CB_STRIPES; i++) {
        struct resil__cb_stripe *sp = &st->stripes[i];
        _Atomic int64_t *c[4] = {&sp->successful, &sp->failed, &sp->ignored, &sp->not_permitted};
        for (int k = 0; k < 4; k++) {
            int64_t v = atomic_load(c[k]);
            if (v < 0 || v > RESIL__CB_COUNT_MAX)
                atomic_store(c[k], 0);
        }
    }
    atomic_store(&st->dirty, 0);
}

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
    pthread_atfork(NULL, NULL, fork_child);
}

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

int resil__store_lock(resil__store *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->shared && s->fork_gen != atomic_load_explicit(&fork_gen, memory_order_relaxed)) {
        /* A handle inherited across fork shares the parent's open file
         * description, and so its OFD lock: get our own. */
        char self[64];
        snprintf(self, sizeof self, "/proc/self/fd/%d", s->fd); /* the same inode */
        int fd = resil__sys.open(self, O_RDWR | O_CLOEXEC, 0);
        struct stat sb;
        if (fd >= 0 && (resil__sys.fstat(fd, &sb) != 0 || sb.st_dev != s->dev ||
                        sb.st_ino != s->ino)) {
            /* the child closed that fd, and it now is another file */
            resil__sys.close(fd);
            fd = -1;
            errno = ESTALE;
        }
        if (fd < 0) {
            int rc = -errno;
            pthread_mutex_unlock(&s->mu);
            return rc;
        }
        resil__sys.close(s->fd);
        s->fd = fd;
        s->fork_gen = atomic_load_explicit(&fork_gen, memory_order_relaxed);
    }
    if (s->shared) {
        int rc = ofd_lock(s->fd, F_WRLCK);
        if (rc < 0) {
            pthread_mutex_unlock(&s->mu);
            return rc;
        }
        /* A holder killed mid-update (or a reset_file in another process
         * that found garbage) leaves dirty set: make the record sane. */
        /* Anything may have written the file; a holder killed mid-update
         * leaves dirty set: make the record sane before using it. */
        if (atomic_load_explicit(&s->st->dirty, memory_order_relaxed) ||
            resil__cb_state_check(s->st) != NULL) {
            if (s->st->magic != RESIL__CB_MAGIC || s->st->version != RESIL__CB_VERSION ||
                s->st->size != sizeof *s->st ||
                memchr(s->st->name, 0, sizeof s->st->name) == NULL)
                resil__cb_state_init(s->st, s->name);
            resil__cb_state_repair(s->st);
        }
    }
    /* The mark matters only to other processes, after this one died: its
     * stores are then all in memory, so only the compiler could put an
     * update before the mark, and a signal fence stops that. */
    if (s->shared) {
        atomic_store_explicit(&s->st->dirty, 1, memory_order_relaxed);
        atomic_signal_fence(memory_order_seq_cst);
    }
    return 0;
}

void resil__store_unlock(resil__store *s)
{
    if (s->shared) {
        atomic_signal_fence(memory_order_seq_cst);
        atomic_store_explicit(&s->st->dirty, 0, memory_order_relaxed);
        struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        (void)resil__sys.fcntl_lock(s->fd, F_OFD_SETLK, &fl);
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- the stores ----------------------------------------------------------------- */

static resil__store *store_alloc(void)
{
    resil__store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    s->fd = -1;
    return s;
}

int resil__store_open_local(resil__store **out, const char *name)
{
    resil__store *s = store_alloc();
    if (!s)
        return -ENOMEM;
    s->st = aligned_alloc(128, sizeof *s->st);
    if (!s->st) {
        free(s);
        return -ENOMEM;
    }
    memset(s->st, 0, sizeof *s->st);
    snprintf(s->name, sizeof s->name, "%s", name);
    resil__cb_state_init(s->st, name);
    *out = s;
    return 0;
}

static void rebase_after_boot(struct resil__cb_state *st, int64_t now_ns, int64_t wall_ns)
{
    char boot[48];
    read_boot_id(boot, sizeof boot);
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

/* Opens the state file of `name` in dir (creating dir and the file when
 * `create`), never through a symbolic link, takes its OFD write lock and
 * stats it.  Returns 0 with *path_out (malloc'd), *fd_out and *sb, or an
 * error (err names the file) with nothing left open. */
static int open_locked(const char *dir, const char *name, bool create, char **path_out,
                       int *fd_out, struct stat *sb, resil_error *err)
{
    if (create && mkdir(dir, 0777) != 0 && errno != EEXIST)
        return resil_error_set(err, -errno, dir, "cannot create the state directory %s: %s",
                               dir, strerror(errno));
    char *path = resil__cb_path(dir, name);
    if (!path)
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    int rc = 0;
    int fd = resil__sys.open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0666);
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
        free(path);
        return rc;
    }
    rc = ofd_lock(fd, F_WRLCK);
    if (rc < 0)
        resil_error_set(err, rc, path, "cannot lock %s: %s%s", path, resil_strerror(rc),
                        rc == RESIL_ETIMEDOUT ? " (is a process holding it stopped?)" : "");
    else if (resil__sys.fstat(fd, sb) != 0)
        rc = resil_error_set(err, -errno, path, "cannot stat %s: %s", path, strerror(errno));
    else if (!S_ISREG(sb->st_mode))
        rc = resil_error_set(err, RESIL_EPARSE, path, "%s is not a regular file", path);
    if (rc) {
        resil__sys.close(fd); /* drops the OFD lock */
        free(path);
        return rc;
    }
    *path_out = path;
    *fd_out = fd;
    return 0;
}

/* Maps a state file of the right size into *map.  Returns 0 or -errno (err
 * names the file). */
static int map_record(int fd, const char *path, void **map, resil_error *err)
{
    *map = mmap(NULL, sizeof(struct resil__cb_state), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (*map == MAP_FAILED)
        return resil_error_set(err, -errno, path, "cannot map %s: %s", path, strerror(errno));
    return 0;
}

int resil__store_open_file(resil__store **out, const char *dir, const char *name,
                           bool attach_only, int64_t now_ns, int64_t wall_ns, resil_error *err)
{
    char *path;
    int fd;
    struct stat sb;
    int rc = open_locked(dir, name, !attach_only, &path, &fd, &sb, err);
    if (rc)
        return rc;
    void *map = MAP_FAILED;
    if (sb.st_size == 0 && attach_only) {
        rc = resil_error_set(err, -ENOENT, path, "no breaker %s in %s (its state file is empty: "
                             "being created, or its creator died)", name, dir);
        goto fail;
    }
    bool fresh = sb.st_size == 0;
    bool zeroed = false; /* right size, header all zero: a creator died before init */
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
    struct resil__cb_state *st = map;
    /* init writes the magic last: 0 means a creation or reset that did not
     * finish (whatever of the rest landed). */
    if (!fresh && st->magic == 0)
        zeroed = true;
    if (fresh || zeroed) {
        resil__cb_state_init(st, name);
    } else {
        /* A holder killed mid-update left dirty set: repair, then judge. */
        if (st->magic == RESIL__CB_MAGIC && st->version == RESIL__CB_VERSION &&
            st->size == sizeof *st && atomic_load(&st->dirty))
            resil__cb_state_repair(st);
        const char *defect = resil__cb_state_check(st);
        if (!defect && strcmp(st->name, name) != 0)
            defect = "it holds another breaker's state";
        if (defect) {
            rc = resil_error_set(err, RESIL_EPARSE, path, "%s is corrupt: %s", path, defect);
            goto fail;
        }
        rebase_after_boot(st, now_ns, wall_ns);
    }
    struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    (void)resil__sys.fcntl_lock(fd, F_OFD_SETLK, &fl);
    resil__store *s = store_alloc();
    if (!s) {
        rc = resil_error_set(err, -ENOMEM, NULL, "out of memory");
        goto fail;
    }
    s->st = st;
    snprintf(s->name, sizeof s->name, "%s", name);
    pthread_once(&fork_once, fork_register);
    s->fork_gen = atomic_load_explicit(&fork_gen, memory_order_relaxed);
    s->dev = sb.st_dev;
    s->ino = sb.st_ino;
    s->shared = true;
    s->fd = fd;
    s->path = path;
    *out = s;
    return 0;
fail:
    if (map != MAP_FAILED)
        munmap(map, sizeof(struct resil__cb_state));
    resil__sys.close(fd); /* drops the OFD lock */
    free(path);
    return rc;
}

void resil__store_close(resil__store *s)
{
    if (!s)
        return;
    if (s->shared) {
        munmap(s->st, sizeof *s->st);
        resil__sys.close(s->fd);
    } else {
        free(s->st);
    }
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s);
}

int resil_breaker_reset_file(const char *dir, const char *name, resil_error *err)
{
    if (!dir || !*dir || !name || !*name || strlen(name) > RESIL__CB_NAME_MAX)
        return resil_error_set(err, RESIL_EINVAL, "name",
                               "a state directory and a name of 1..%d bytes are needed",
                               RESIL__CB_NAME_MAX);
    char *path;
    int fd;
    struct stat sb;
    int rc = open_locked(dir, name, true, &path, &fd, &sb, err);
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
        munmap(map, sizeof(struct resil__cb_state));
    resil__sys.close(fd);
    free(path);
    return rc;
}

bool resil__cb_read_name(char *name, int dirfd, const char *base)
{
    int fd = openat(dirfd, base, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
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
    bool ok = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
              pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h && h.magic == RESIL__CB_MAGIC &&
              memchr(h.name, 0, sizeof h.name) != NULL && h.name[0] != 0 &&
              strlen(h.name) <= RESIL__CB_NAME_MAX;
    close(fd);
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
