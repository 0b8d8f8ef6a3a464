/* src/lockwait.c - the sidecar lock engine: Linux open-file-description
 * locks on a "<path>.lock" sidecar (or a whole file), a fair queue under
 * contention, a timeout and a cancel on every wait.  The one lock wait of
 * resil: the files module's locks (src/lock.c), NDJSON writers and the
 * store's state files all wait here.  Core: it knows files only as
 * descriptors.  See src/internal/lockwait.h. */
#define _GNU_SOURCE
#include "internal/lockwait.h"

#include "internal/sys.h"
#include "internal/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the sidecar's layout: every offset and lock byte, in one place ------------
 *
 * Data (pread / pwrite):
 *   [0, 160)      the exclusive-holder note "pid N on host H", space-padded,
 *                 '\n'-terminated; written by resil_lock_acquire's exclusive
 *                 holders, only when it changes.
 *   [160, 256)    lock state: the "temp write in progress" marker
 *                 (resil__lock_temp_begin / _end), written around an atomic
 *                 replace; set means its writer died in the middle.
 *   [256, 512)    reserved for the NDJSON writer (its append mark): never
 *                 written here.
 *   [4096, 4096 + NSLOTS * 64)  waiter / shared-holder records, one per slot.
 *
 * Lock bytes (OFD locks only, no data; far beyond any data):
 *   MAIN_BYTE     the lock itself (shared or exclusive).
 *   QUEUE_BYTE    every queued waiter holds a shared lock on it, so a newcomer
 *                 learns with one F_OFD_GETLK that somebody is waiting.
 *   SLOT_BYTE(i)  held exclusively by the owner of record i (a waiter, or a
 *                 shared holder): the kernel drops it when its owner dies, so
 *                 a record is live exactly while its slot byte is locked.
 *
 * An older resil locked the whole file (l_start 0, l_len 0): that still
 * conflicts with MAIN_BYTE both ways, so old and new exclude each other. */
#define NOTE_OFF 0
#define NOTE_SIZE 160
#define STATE_OFF 160
#define STATE_SIZE 96
#define REC_OFF 4096
#define REC_SIZE 64
#define NSLOTS 64
#define LOCK_BASE ((off_t)1 << 30)
#define MAIN_BYTE LOCK_BASE
#define QUEUE_BYTE (LOCK_BASE + 1)
#define SLOT_BYTE(i) (LOCK_BASE + 2 + (off_t)(i))
#define SLOTS_END SLOT_BYTE(NSLOTS)

/* Polling.  The head of the queue polls fast at first and backs off in
 * proportion to how long it has been the head (so a handoff costs at most
 * about 1/8 of the wait so far, and a long wait polls rarely); the others
 * poll only to learn that they became the head.  An earlier waiter that sees
 * the lock free and does not take it for STALL_MIN_NS (or 4 of its own
 * longest poll intervals) is stalled (SIGSTOP, a debugger) and is passed. */
#define HEAD_MIN_NS 100000LL      /* 100 us */
#define HEAD_MAX_NS 20000000LL    /* 20 ms */
#define BEHIND_STEP_NS 250000LL   /* per waiter ahead */
#define BEHIND_MAX_NS 4000000LL   /* 4 ms */
#define STALL_MIN_NS 20000000LL   /* 20 ms */
#define SPIN_TRIES 8              /* yields before a sleep (short holds) */
#define HEAD_SPIN_NS 50000LL      /* the head yields (no sleep) for 50 us */
#define QUEUE_AFTER_NS 300000LL   /* 300 us: a waiter queues after this */

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

static int64_t real_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- byte locks --------------------------------------------------------------- */

static int setlk(int fd, short type, off_t start, off_t len)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    return resil__sys.fcntl_lock(fd, F_OFD_SETLK, &fl) == 0 ? 0 : -errno;
}

/* The type of a lock of another description that conflicts with `type` on
 * [start, start+len) (F_UNLCK: none), or -errno. */
static int getlk(int fd, short type, off_t start, off_t len)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    if (resil__sys.fcntl_lock(fd, F_OFD_GETLK, &fl) != 0)
        return -errno;
    return fl.l_type;
}

static bool busy_errno(int e)
{
    return e == EAGAIN || e == EACCES || e == EINTR;
}

/* ---- the holder note and the temp-write marker --------------------------------- */

/* A "pid N on host H" text: pid, and whether H is this host. */
static bool parse_pid_host(const char *s, long *pid, char *host, size_t hsize)
{
    char h[130];
    if (sscanf(s, "pid %ld on host %129s", pid, h) != 2 || *pid <= 0)
        return false;
    snprintf(host, hsize, "%s", h);
    return true;
}

static bool pid_gone(long pid)
{
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

bool resil__lock_take_note(int fd)
{
    /* One read covers the note and the state area. */
    char old[STATE_OFF + STATE_SIZE + 1];
    ssize_t got = resil__sys.pread(fd, old, STATE_OFF + STATE_SIZE, 0);
    if (got < 0)
        got = 0;
    old[got] = '\0';
    bool has_state = got > STATE_OFF && old[STATE_OFF] != '\0';
    bool died;
    if (has_state) {
        /* A clean writer clears its marker before it releases the lock: a
         * marker still set means its writer died in the middle. */
        died = strncmp(old + STATE_OFF, "temp write by ", 14) == 0;
    } else {
        /* A sidecar without a state area (an older resil): the previous
         * rule, the last exclusive holder of this host is gone. */
        long pid;
        char host[130];
        old[got < NOTE_SIZE ? got : NOTE_SIZE] = '\0';
        died = parse_pid_host(old, &pid, host, sizeof host) && pid != (long)getpid() &&
               strcmp(host, resil__host_name()) == 0 && pid_gone(pid);
    }
    char note[NOTE_SIZE];
    int n = snprintf(note, sizeof note, "pid %ld on host %s", (long)getpid(), resil__host_name());
    if (n < 0)
        return died;
    if (n > NOTE_SIZE - 1)
        n = NOTE_SIZE - 1;
    memset(note + n, ' ', (size_t)(NOTE_SIZE - 1 - n));
    note[NOTE_SIZE - 1] = '\n';
    if (got < NOTE_SIZE || memcmp(old, note, NOTE_SIZE) != 0)
        (void)!resil__sys.pwrite(fd, note, NOTE_SIZE, NOTE_OFF); /* diagnostics only */
    return died;
}

static void write_state(int fd, const char *text)
{
    char buf[STATE_SIZE];
    int n = snprintf(buf, sizeof buf, "%s", text);
    if (n < 0)
        n = 0;
    if (n > STATE_SIZE - 1)
        n = STATE_SIZE - 1;
    memset(buf + n, ' ', (size_t)(STATE_SIZE - 1 - n));
    buf[STATE_SIZE - 1] = '\n';
    (void)!resil__sys.pwrite(fd, buf, STATE_SIZE, STATE_OFF);
}

/* Sets (begin) or clears the temp-write marker in the state area. */
void resil__lock_temp_mark(int fd, bool begin)
{
    if (!begin) {
        write_state(fd, "clean: no temp write in progress");
        return;
    }
    char text[STATE_SIZE];
    snprintf(text, sizeof text, "temp write by pid %ld on host %.50s", (long)getpid(),
             resil__host_name());
    write_state(fd, text);
}

/* ---- records -------------------------------------------------------------------- */

typedef struct rec {
    char state; /* 'W' waiting, 'H' holding (shared) */
    char mode;  /* 'S', 'X' */
    long pid;
    int64_t t;  /* CLOCK_MONOTONIC at enqueue */
    char host[REC_SIZE];
} rec;

static void write_rec(int fd, int slot, char state, char mode, int64_t t)
{
    char buf[REC_SIZE + 1];
    int n = snprintf(buf, sizeof buf, "%c %c %ld %lld %.26s", state, mode, (long)getpid(),
                     (long long)t, resil__host_name());
    if (n < 0)
        n = 0;
    if (n > REC_SIZE - 1)
        n = REC_SIZE - 1;
    memset(buf + n, ' ', (size_t)(REC_SIZE - 1 - n));
    buf[REC_SIZE - 1] = '\n';
    (void)!resil__sys.pwrite(fd, buf, REC_SIZE, REC_OFF + (off_t)slot * REC_SIZE);
}

static void clear_rec(int fd, int slot)
{
    char buf[REC_SIZE];
    memset(buf, ' ', sizeof buf);
    buf[REC_SIZE - 1] = '\n';
    (void)!resil__sys.pwrite(fd, buf, REC_SIZE, REC_OFF + (off_t)slot * REC_SIZE);
}

/* Reads an unsigned decimal at *p (advancing it); false when there is none or
 * it does not fit. */
static bool parse_num(const char **p, const char *end, long long *out)
{
    const char *q = *p;
    long long v = 0;
    if (q >= end || *q < '0' || *q > '9')
        return false;
    for (; q < end && *q >= '0' && *q <= '9'; q++) {
        if (v > (LLONG_MAX - (*q - '0')) / 10)
            return false;
        v = v * 10 + (*q - '0');
    }
    *p = q;
    *out = v;
    return true;
}

/* "<W|H> <S|X> pid t host": by hand, not sscanf, because a waiter parses
 * every slot on every poll (sscanf made that most of a waiter's CPU time).
 * A free slot (blanks) is rejected at its first byte. */
static bool parse_rec(const char *p, rec *r)
{
    const char *end = p + REC_SIZE;
    if ((p[0] != 'W' && p[0] != 'H') || p[1] != ' ' || (p[2] != 'S' && p[2] != 'X') || p[3] != ' ')
        return false;
    r->state = p[0];
    r->mode = p[2];
    const char *q = p + 4;
    long long pid, t;
    if (!parse_num(&q, end, &pid) || pid > LONG_MAX || q >= end || *q != ' ')
        return false;
    q++;
    if (!parse_num(&q, end, &t))
        return false;
    size_t n = 0;
    if (q < end && *q == ' ')
        for (q++; q < end && n < sizeof r->host - 1 && *q != ' ' && *q != '\n'; q++)
            r->host[n++] = *q;
    r->host[n] = '\0';
    r->pid = (long)pid;
    r->t = (int64_t)t;
    return true;
}

/* The record table; returns how many slots were read. */
static int read_table(int fd, char *table)
{
    ssize_t got = resil__sys.pread(fd, table, (size_t)NSLOTS * REC_SIZE, REC_OFF);
    return got > 0 ? (int)(got / REC_SIZE) : 0;
}

/* Record i is live while somebody holds exactly its slot byte (a lock over
 * a wider range, e.g. an older resil's whole-file lock, is not a slot). */
static bool slot_live(int fd, int slot)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = SLOT_BYTE(slot), .l_len = 1};
    if (resil__sys.fcntl_lock(fd, F_OFD_GETLK, &fl) != 0)
        return false;
    return fl.l_type != F_UNLCK && fl.l_start == SLOT_BYTE(slot) && fl.l_len == 1;
}

/* Takes a free slot (an exclusive lock on its byte); -1 when none is. */
static int take_slot(int fd)
{
    int first = (int)((unsigned)getpid() % NSLOTS);
    for (int k = 0; k < NSLOTS; k++) {
        int i = (first + k) % NSLOTS;
        int rc = setlk(fd, F_WRLCK, SLOT_BYTE(i), 1);
        if (rc == 0)
            return i;
        if (!busy_errno(-rc))
            return -1;
    }
    return -1;
}

/* ---- messages ------------------------------------------------------------------- */

/* What blocks the lock now, for a message: "held shared by pid 4242 on host h
 * and 2 more", "held exclusively by pid 17 on host h", "... holder unknown
 * ...".  my_slot: ours, not counted. */
static void describe_holder(int fd, int my_slot, char *out, size_t size)
{
    int t = getlk(fd, F_WRLCK, MAIN_BYTE, 1);
    if (t == F_WRLCK) {
        char note[NOTE_SIZE + 1];
        ssize_t got = resil__sys.pread(fd, note, NOTE_SIZE, NOTE_OFF);
        note[got > 0 ? got : 0] = '\0';
        long pid;
        char host[130];
        if (parse_pid_host(note, &pid, host, sizeof host)) {
            if (strcmp(host, resil__host_name()) == 0 && pid_gone(pid))
                snprintf(out, size,
                         "held exclusively; holder unknown (the last recorded exclusive "
                         "holder, pid %ld on host %s, has exited)",
                         pid, host);
            else
                snprintf(out, size, "held exclusively by pid %ld on host %s", pid, host);
        } else {
            snprintf(out, size, "held exclusively; holder unknown (no holder recorded)");
        }
        return;
    }
    char table[NSLOTS * REC_SIZE];
    int n = read_table(fd, table);
    int holders = 0, waiters = 0;
    rec first = {0}, firstw = {0};
    for (int i = 0; i < n; i++) {
        rec r;
        if (i == my_slot || !parse_rec(table + i * REC_SIZE, &r) || !slot_live(fd, i))
            continue;
        if (r.state == 'H') {
            if (holders++ == 0)
                first = r;
        } else if (waiters++ == 0 || r.t < firstw.t) {
            firstw = r;
        }
    }
    if (t == F_RDLCK) {
        if (holders == 0)
            snprintf(out, size,
                     "held shared; holder unknown (no record: an older resil or another "
                     "program holds it)");
        else if (holders == 1)
            snprintf(out, size, "held shared by pid %ld on host %s", first.pid, first.host);
        else
            snprintf(out, size, "held shared by pid %ld on host %s and %d more", first.pid,
                     first.host, holders - 1);
    } else if (waiters > 0) {
        snprintf(out, size, "not held now; %d waiter%s ahead, the first pid %ld on host %s",
                 waiters, waiters == 1 ? "" : "s", firstw.pid, firstw.host);
    } else {
        snprintf(out, size, "not held now");
    }
}

/* ---- the wait --------------------------------------------------------------------- */

typedef struct stalled_set {
    int n;
    int slot[NSLOTS];
    int64_t t[NSLOTS];
} stalled_set;

static bool is_stalled(const stalled_set *s, int slot, int64_t t)
{
    for (int i = 0; i < s->n; i++)
        if (s->slot[i] == slot && s->t[i] == t)
            return true;
    return false;
}

static int fail_busy(int fd, const resil__lock_wait_opts *w, int my_slot, bool one_try,
                     int64_t waited_ns, resil_error *err)
{
    if (!w->lock_path)
        return RESIL_ETIMEDOUT;
    char holder[320];
    if (w->whole_file)
        snprintf(holder, sizeof holder, "is a process holding it stopped?");
    else
        describe_holder(fd, my_slot, holder, sizeof holder);
    const char *what = w->type == F_WRLCK ? "exclusive" : "shared";
    if (one_try)
        return resil_error_set(err, RESIL_ETIMEDOUT, w->lock_path, "the %s lock on %s is taken (%s)",
                               what, w->lock_path, holder);
    return resil_error_set(err, RESIL_ETIMEDOUT, w->lock_path,
                           "timed out after %.3g s waiting for the %s lock on %s (%s)",
                           resil__ns_to_s(waited_ns), what, w->lock_path, holder);
}

static int fail_cancel(const resil__lock_wait_opts *w, resil_error *err)
{
    return resil_error_set(err, RESIL_ECANCELED, w->lock_path,
                           "cancelled while waiting for the lock %s",
                           w->lock_path ? w->lock_path : "");
}

static int fail_errno(const resil__lock_wait_opts *w, int e, resil_error *err)
{
    return resil_error_set(err, -e, w->lock_path, "cannot lock %s: %s",
                           w->lock_path ? w->lock_path : "", strerror(e));
}

/* Plain polling: the breaker's state files (holders keep them for
 * microseconds behind a mutex), and sidecars whose slots are all taken.  A
 * few yields first, then sleeps from 2 us doubling to `cap`. */
static int poll_plain(int fd, const resil__lock_wait_opts *w, off_t start, off_t len,
                      const resil_clock *clk, int64_t t0, int64_t deadline, int64_t cap,
                      resil_error *err)
{
    int64_t pause = 2000;
    for (int tries = 1;; tries++) {
        int rc = setlk(fd, (short)w->type, start, len);
        if (rc == 0)
            return 0;
        if (!busy_errno(-rc))
            return fail_errno(w, -rc, err);
        if (resil_cancel_is_cancelled(w->cancel))
            return fail_cancel(w, err);
        int64_t now = clk->monotonic_ns(clk->ctx);
        if (now >= deadline)
            return fail_busy(fd, w, -1, false, now - t0, err);
        if (tries < 4 && w->whole_file) {
            sched_yield();
            continue;
        }
        int64_t s = pause < deadline - now ? pause : deadline - now;
        if (clk->sleep_ns(clk->ctx, s, w->cancel) != 0)
            return fail_cancel(w, err);
        if (pause < cap)
            pause = pause * 2 < cap ? pause * 2 : cap;
    }
}

/* A shared holder keeps a record (state H) while it holds, so that a
 * timeout can name it.  Takes a slot unless it has one; no slot: no record. */
static void hold_shared_record(int fd, int slot, int64_t t)
{
    if (slot < 0)
        slot = take_slot(fd);
    if (slot >= 0)
        write_rec(fd, slot, 'H', 'S', t);
}

/* One waiter of the fair queue (wait_queued and its steps). */
typedef struct waiter {
    int fd;
    const resil__lock_wait_opts *w;
    const resil_clock *clk;
    short type;
    char mode;        /* 'X' exclusive, 'S' shared */
    int slot;         /* its queue slot */
    int64_t my_t;     /* the place in the queue: arrival, real CLOCK_MONOTONIC */
    int64_t t0;       /* arrival on w's clock */
    int64_t deadline; /* on w's clock */
    stalled_set stalled;
    int64_t free_since; /* the lock free for the earliest waiter's mode since */
    /* How long a holder keeps the lock, as seen from here: the time it takes
     * the queue ahead of this waiter to move by one (0: not seen yet). */
    int last_ahead;
    int64_t last_move, hold_est;
} waiter;

/* Leaves the queue: the record cleared, the queue and slot bytes unlocked. */
static void leave_queue(const waiter *q)
{
    clear_rec(q->fd, q->slot);
    (void)setlk(q->fd, F_UNLCK, QUEUE_BYTE, SLOTS_END - QUEUE_BYTE);
}

/* The first QUEUE_AFTER_NS of a wait.  Most holders keep the lock for
 * microseconds (an append, a small write): poll like the queue's head would,
 * but without a place in the queue, and never while somebody is queued.
 * Queueing costs about ten syscalls and makes every handoff wait for the
 * next waiter's wakeup: strict FIFO for microsecond holds cut the NDJSON
 * 4-process append test's throughput by about 40x.  Whoever waits longer
 * queues, so no wait is unfair by more than this window.  Returns 0 with
 * the lock held, 1 to queue, or an error (err filled). */
static int wait_unqueued(waiter *q, resil_error *err)
{
    const resil__lock_wait_opts *w = q->w;
    int64_t pause = 20000;
    for (int k = 0;; k++) {
        int64_t now = q->clk->monotonic_ns(q->clk->ctx);
        if (now >= q->deadline)
            return fail_busy(q->fd, w, -1, false, now - q->t0, err);
        if (now - q->t0 >= QUEUE_AFTER_NS)
            return 1;
        if (k < SPIN_TRIES) {
            sched_yield();
            if (resil_cancel_is_cancelled(w->cancel))
                return fail_cancel(w, err);
        } else {
            int64_t s = pause;
            if (s > q->deadline - now)
                s = q->deadline - now;
            if (s > q->t0 + QUEUE_AFTER_NS - now)
                s = q->t0 + QUEUE_AFTER_NS - now;
            if (q->clk->sleep_ns(q->clk->ctx, s, w->cancel) != 0)
                return fail_cancel(w, err);
            if (pause < 200000)
                pause *= 2;
        }
        int qb = getlk(q->fd, F_WRLCK, QUEUE_BYTE, 1);
        if (qb < 0)
            return fail_errno(w, -qb, err);
        if (qb != F_UNLCK)
            continue;
        int rc = setlk(q->fd, q->type, MAIN_BYTE, 1);
        if (rc == 0) {
            if (q->type == F_RDLCK)
                hold_shared_record(q->fd, -1, q->my_t);
            return 0;
        }
        if (!busy_errno(-rc))
            return fail_errno(w, -rc, err);
    }
}

/* The live, not stalled, earlier waiters this request must let go first:
 * any for an exclusive request, exclusive ones for a shared request (writer
 * preference).  Returns how many; passes the earliest of them when it looks
 * stalled (the lock free for its mode, and not taken, for a while) and
 * counts again without it. */
static int count_ahead(waiter *q, int64_t now)
{
    char table[NSLOTS * REC_SIZE];
    for (;;) {
        int n = read_table(q->fd, table);
        int ahead = 0, first = -1;
        rec fr = {0};
        for (int i = 0; i < n; i++) {
            rec r;
            if (i == q->slot || !parse_rec(table + i * REC_SIZE, &r) || r.state != 'W')
                continue;
            if (!(r.t < q->my_t || (r.t == q->my_t && i < q->slot)))
                continue;
            if (q->mode == 'S' && r.mode != 'X')
                continue;
            if (is_stalled(&q->stalled, i, r.t) || !slot_live(q->fd, i))
                continue;
            ahead++;
            if (first < 0 || r.t < fr.t) {
                first = i;
                fr = r;
            }
        }
        if (q->last_ahead >= 0 && ahead < q->last_ahead) {
            int64_t per = (now - q->last_move) / (q->last_ahead - ahead);
            q->hold_est = q->hold_est ? (q->hold_est + per) / 2 : per;
        }
        if (ahead != q->last_ahead) {
            q->last_ahead = ahead;
            q->last_move = now;
        }
        if (ahead == 0)
            return 0;
        int t = getlk(q->fd, fr.mode == 'X' ? F_WRLCK : F_RDLCK, MAIN_BYTE, 1);
        if (t != F_UNLCK) {
            q->free_since = 0;
            return ahead;
        }
        int64_t its_poll = (real_mono_ns() - fr.t) / 8;
        if (its_poll > HEAD_MAX_NS)
            its_poll = HEAD_MAX_NS;
        int64_t limit = 4 * its_poll > STALL_MIN_NS ? 4 * its_poll : STALL_MIN_NS;
        if (q->free_since == 0) {
            q->free_since = now ? now : 1;
            return ahead;
        }
        if (now - q->free_since < limit || q->stalled.n >= NSLOTS)
            return ahead;
        q->stalled.slot[q->stalled.n] = first;
        q->stalled.t[q->stalled.n++] = fr.t;
        q->free_since = 0; /* look again without it */
    }
}

/* How long a queued waiter sleeps before it looks again. */
static int64_t queued_pause(const waiter *q, bool head, int64_t head_for, int ahead)
{
    int64_t p;
    if (head) {
        /* 1/8 of the time it has been head: a handoff costs little. */
        p = head_for / 8;
        if (p < HEAD_MIN_NS)
            p = HEAD_MIN_NS;
        return p > HEAD_MAX_NS ? HEAD_MAX_NS : p;
    }
    /* Behind others: nothing to do before the one just ahead takes the
     * lock, after which a whole hold remains to notice being head.  So poll
     * at a quarter of the hold seen (long holds: few wakeups; a waiter's
     * polls were most of its CPU time), or by the number ahead before a hold
     * has been seen. */
    p = ahead == 1 ? HEAD_MIN_NS : BEHIND_STEP_NS * ahead;
    if (p > BEHIND_MAX_NS)
        p = BEHIND_MAX_NS;
    if (q->hold_est / 4 > p)
        p = q->hold_est / 4 < HEAD_MAX_NS ? q->hold_est / 4 : HEAD_MAX_NS;
    return p;
}

/* In the queue until the lock is taken: 0, or an error (err filled; the
 * waiter has left the queue). */
static int wait_in_queue(waiter *q, resil_error *err)
{
    const resil__lock_wait_opts *w = q->w;
    bool head = false;
    int head_tries = 0;
    int64_t head_since = 0, head_real = 0;
    for (;;) {
        int64_t now = q->clk->monotonic_ns(q->clk->ctx);
        int ahead = 0;
        if (!head && (ahead = count_ahead(q, now)) == 0) {
            head = true;
            head_since = now;
            head_real = real_mono_ns();
        }
        if (head) {
            int rc = setlk(q->fd, q->type, MAIN_BYTE, 1);
            if (rc == 0)
                return 0;
            if (!busy_errno(-rc)) {
                leave_queue(q);
                return fail_errno(w, -rc, err);
            }
        }
        if (now >= q->deadline) {
            int rc = fail_busy(q->fd, w, q->slot, false, now - q->t0, err);
            leave_queue(q);
            return rc;
        }
        if (head && (head_tries++ < SPIN_TRIES ||
                     (head_tries < 1000 && real_mono_ns() - head_real < HEAD_SPIN_NS))) {
            /* The holder may be about to release (a short hold on a busy
             * machine): give it the processor before sleeping. */
            sched_yield();
            continue;
        }
        int64_t pause_ns = queued_pause(q, head, now - head_since, ahead);
        if (pause_ns > q->deadline - now)
            pause_ns = q->deadline - now;
        if (q->clk->sleep_ns(q->clk->ctx, pause_ns, w->cancel) != 0) {
            leave_queue(q);
            return fail_cancel(w, err);
        }
    }
}

static int wait_queued(int fd, const resil__lock_wait_opts *w, resil_error *err)
{
    waiter q = {.fd = fd,
                .w = w,
                .clk = w->clock ? w->clock : resil_clock_system(),
                .type = (short)w->type,
                .mode = w->type == F_WRLCK ? 'X' : 'S',
                .last_ahead = -1};
    bool one_try = w->timeout_ns < 0;

    /* Fast path: nobody queued, and the lock is free. */
    int rc;
    if (!one_try) {
        int qb = getlk(fd, F_WRLCK, QUEUE_BYTE, 1);
        if (qb < 0)
            return fail_errno(w, -qb, err);
        rc = qb == F_UNLCK ? setlk(fd, q.type, MAIN_BYTE, 1) : -EAGAIN;
    } else {
        rc = setlk(fd, q.type, MAIN_BYTE, 1); /* a try does not queue */
    }
    if (rc == 0) {
        if (q.type == F_RDLCK)
            hold_shared_record(fd, -1, real_mono_ns());
        return 0;
    }
    if (!busy_errno(-rc))
        return fail_errno(w, -rc, err);
    if (one_try)
        return fail_busy(fd, w, -1, true, 0, err);
    if (resil_cancel_is_cancelled(w->cancel))
        return fail_cancel(w, err);

    q.t0 = q.clk->monotonic_ns(q.clk->ctx);
    q.deadline = resil__add_sat(q.t0, w->timeout_ns);
    q.my_t = real_mono_ns();
    if ((rc = wait_unqueued(&q, err)) <= 0)
        return rc;

    q.slot = take_slot(fd);
    if (q.slot < 0) /* more waiters than slots: poll without a place in the queue */
        return poll_plain(fd, w, MAIN_BYTE, 1, q.clk, q.t0, q.deadline, 5000000, err);
    (void)setlk(fd, F_RDLCK, QUEUE_BYTE, 1); /* best effort: "somebody waits" */
    write_rec(fd, q.slot, 'W', q.mode, q.my_t);
    if ((rc = wait_in_queue(&q, err)) != 0)
        return rc;
    /* Acquired: leave the queue.  A shared holder keeps its slot, its record
     * now saying "holding". */
    if (q.type == F_RDLCK) {
        write_rec(fd, q.slot, 'H', 'S', q.my_t);
        (void)setlk(fd, F_UNLCK, QUEUE_BYTE, 1);
    } else {
        leave_queue(&q);
    }
    return 0;
}

int resil__lock_wait_with(int fd, const resil__lock_wait_opts *w, resil_error *err)
{
    if (!w->whole_file)
        return wait_queued(fd, w, err);
    /* Whole file, plain polling: no clock is read unless the lock is taken. */
    int rc = setlk(fd, (short)w->type, 0, 0);
    if (rc == 0)
        return 0;
    if (!busy_errno(-rc))
        return fail_errno(w, -rc, err);
    if (w->timeout_ns < 0)
        return fail_busy(fd, w, -1, true, 0, err);
    const resil_clock *clk = w->clock ? w->clock : resil_clock_system();
    int64_t t0 = clk->monotonic_ns(clk->ctx);
    return poll_plain(fd, w, 0, 0, clk, t0, resil__add_sat(t0, w->timeout_ns), 1000000, err);
}

int resil__lock_unlock(int fd)
{
    /* Everything this description holds: the lock, and a shared holder's
     * slot (its record is then dead). */
    return setlk(fd, F_UNLCK, 0, 0);
}
