/* src/ndjson.c - the NDJSON event log: whole-line appends under the lock,
 * streaming reads that skip torn tails, bad and over-long lines, and repair.
 *
 * Torn tails.  Bytes after the last newline are cut (by the next append or
 * by resil_repair_ndjson) only when they are provably resil's own:
 *   - an append whose write() may be torn marks it first: a killed writer
 *     can tear only a write the kernel had not finished, and the kernel
 *     stops a write for a fatal signal only between pages of the file, so a
 *     write that stays within one 4 KiB page of the file happens whole or
 *     not at all.  A write that crosses a page boundary is preceded by a
 *     mark in the lock sidecar, bytes [MARK_OFF, MARK_OFF + MARK_SIZE):
 *     "append in progress on file (dev, ino) at offset S, length L, pid P",
 *     and followed by a cleared mark.  A tail that lies within [S, S + L) of
 *     the mark on the same file is what that write left.  A mark is stale
 *     once the log is seen whole (the next append of another writer, or a
 *     repair, drops it), so it never covers a later tail of someone else;
 *   - a tail of NUL bytes only: what a crash of the machine leaves when the
 *     file's size reached the disk before its data;
 *   - an append that failed (ENOSPC, EIO) cuts its own bytes back, and marks
 *     them if that cut fails.
 * Any other tail (someone's text without its final newline) is never cut:
 * an append puts a newline after it (so it becomes a line of its own, which
 * readers report as a bad line if it is not JSON), and repair cuts it only
 * when forced.  The sidecar's bytes [0, MARK_OFF) belong to the lock code. */
#define _GNU_SOURCE
#include "internal/files_metrics.h"
#include "internal/files.h"
#include "internal/json_text.h"
#include "internal/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MARK_OFF 256
#define MARK_SIZE 256
/* The smallest page size Linux has: the kernel checks for a fatal signal
 * between pages of a buffered write, never inside one. */
#define TEAR_PAGE 4096

/* The longest line (without its newline) that a write accepts and a read
 * delivers: one limit for both. */
static size_t max_line_of(const resil_file_opts *o)
{
    return o->max_size ? o->max_size : RESIL_NDJSON_DEFAULT_MAX_LINE;
}

static int too_long(const char *path, size_t index, bool batch, size_t need, size_t max,
                    resil_error *err)
{
    if (batch)
        return resil_error_set(err, -EFBIG, path,
                               "record %zu is %zu bytes long, more than the limit of %zu bytes "
                               "for one line of %s (nothing was appended)",
                               index, need, max, path);
    return resil_error_set(err, -EFBIG, path,
                           "the record is %zu bytes long, more than the limit of %zu bytes for "
                           "one line of %s (nothing was appended)",
                           need, max, path);
}

/* Encodes records as compact lines into one malloc()ed buffer; a record
 * longer than max is refused. */
static int encode_lines(char **out, size_t *out_len, const json_t *const *records, size_t n,
                        size_t max, const char *path, resil_error *err)
{
    size_t cap = 256 * (n ? n : 1), len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return resil_error_set(err, -ENOMEM, path, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!records[i]) {
            free(buf);
            return resil_error_set(err, RESIL_EINVAL, path, "record %zu is NULL", i);
        }
        size_t need = resil__json_dumpb(records[i], NULL, 0, JSON_COMPACT);
        if (need == 0) {
            free(buf);
            return resil_error_set(err, RESIL_EINVAL, path,
                                   "record %zu cannot be encoded as JSON (invalid UTF-8 or a "
                                   "NaN/infinite number?)",
                                   i);
        }
        if (need > max) {
            free(buf);
            return too_long(path, i, n > 1, need, max, err);
        }
        if (cap - len < need + 1) {
            while (cap - len < need + 1)
                cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return resil_error_set(err, -ENOMEM, path, "out of memory");
            }
            buf = nb;
        }
        resil__json_dumpb(records[i], buf + len, need, JSON_COMPACT);
        len += need;
        buf[len++] = '\n';
    }
    *out = buf;
    *out_len = len;
    return 0;
}

/* Reads exactly len bytes at off; 0 or -errno (-EIO at an early end). */
static int pread_all(int fd, char *buf, size_t len, off_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = resil__sys.pread(fd, buf + got, len - got, off + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        got += (size_t)n;
    }
    return 0;
}

/* The offset just after the last newline in fd's first `size` bytes (0 if
 * there is none), reading backwards in blocks; < 0: -errno. */
static off_t end_of_last_line(int fd, off_t size)
{
    char block[4096];
    for (off_t end = size; end > 0;) {
        off_t from = end > (off_t)sizeof block ? end - (off_t)sizeof block : 0;
        size_t want = (size_t)(end - from);
        int rc = pread_all(fd, block, want, from);
        if (rc)
            return rc;
        char *nl = memrchr(block, '\n', want);
        if (nl)
            return from + (nl - block) + 1;
        end = from;
    }
    return 0;
}

/* ---- the append mark in the sidecar ---------------------------------------------- */

/* Records "an append of len bytes at start of file (dev, ino) is in
 * progress" in the sidecar.  Returns whether the mark was written (a
 * sidecar we cannot write leaves the append unmarked: a tear it leaves is
 * then kept, never cut). */
static bool mark_set(int lock_fd, const struct stat *st, off_t start, size_t len)
{
    char m[MARK_SIZE];
    int n = snprintf(m, sizeof m,
                     "resil-ndjson append dev %" PRIuMAX " ino %" PRIuMAX " start %" PRIdMAX
                     " len %zu pid %ld\n",
                     (uintmax_t)st->st_dev, (uintmax_t)st->st_ino, (intmax_t)start, len,
                     (long)getpid());
    if (n < 0 || n >= (int)sizeof m)
        return false;
    memset(m + n, ' ', sizeof m - (size_t)n - 1);
    m[sizeof m - 1] = '\n';
    return resil__sys.pwrite(lock_fd, m, sizeof m, MARK_OFF) == (ssize_t)sizeof m;
}

static void mark_clear(int lock_fd)
{
    char m[MARK_SIZE];
    memset(m, ' ', sizeof m);
    memcpy(m, "resil-ndjson idle", sizeof "resil-ndjson idle" - 1);
    m[sizeof m - 1] = '\n';
    (void)!resil__sys.pwrite(lock_fd, m, sizeof m, MARK_OFF);
}

/* Whether the mark in the sidecar covers the tail [keep, size) of file st:
 * an unfinished append to this file began at or before keep and would have
 * ended after size.  An unreadable sidecar has no mark. */
static bool mark_covers(int lock_fd, const struct stat *st, off_t keep, off_t size)
{
    char m[MARK_SIZE + 1];
    ssize_t n = resil__sys.pread(lock_fd, m, MARK_SIZE, MARK_OFF);
    if (n <= 0)
        return false;
    m[n] = '\0';
    uintmax_t dev, ino;
    intmax_t s;
    size_t l;
    long pid;
    if (sscanf(m, "resil-ndjson append dev %ju ino %ju start %jd len %zu pid %ld", &dev, &ino, &s,
               &l, &pid) != 5)
        return false;
    return dev == (uintmax_t)st->st_dev && ino == (uintmax_t)st->st_ino && s >= 0 &&
           (intmax_t)keep >= s && (intmax_t)size > s && (uintmax_t)(size - s) < (uintmax_t)l;
}

/* Clears a mark left set in the sidecar, if there is one.  For a holder of
 * the lock every set mark is stale: its writer held the lock to set it and
 * died before clearing it.  One that no cut consumed (the writer died before
 * writing, or its write was whole) must not outlive the moment the log is
 * seen whole, or it would later "cover" someone else's tail in the same byte
 * range.  One pread; a pwrite only when a mark is set. */
static void mark_drop_stale(int lock_fd)
{
    static const char set[] = "resil-ndjson append ";
    char m[sizeof set - 1];
    if (lock_fd >= 0 && resil__sys.pread(lock_fd, m, sizeof m, MARK_OFF) == (ssize_t)sizeof m &&
        memcmp(m, set, sizeof m) == 0)
        mark_clear(lock_fd);
}

typedef enum { TAIL_OURS, TAIL_NUL, TAIL_FOREIGN } tail_kind;

/* Classifies the tail [keep, size) (keep: after the last newline). */
static int classify_tail(tail_kind *kind, int fd, int lock_fd, const struct stat *st, off_t keep,
                         off_t size)
{
    if (lock_fd >= 0 && mark_covers(lock_fd, st, keep, size)) {
        *kind = TAIL_OURS;
        return 0;
    }
    char block[4096];
    for (off_t at = keep; at < size;) {
        size_t want = size - at > (off_t)sizeof block ? sizeof block : (size_t)(size - at);
        int rc = pread_all(fd, block, want, at);
        if (rc)
            return rc;
        for (size_t i = 0; i < want; i++) {
            if (block[i] != '\0') {
                *kind = TAIL_FOREIGN;
                return 0;
            }
        }
        at += (off_t)want;
    }
    *kind = TAIL_NUL;
    return 0;
}

/* ---- appending ------------------------------------------------------------------ */

struct resil_ndjson_writer {
    int fd;      /* the log, O_APPEND */
    int lock_fd; /* the sidecar */
    char *path;
    char *lock_path;
    resil_file_opts opts;
    struct stat st; /* the log's, when opened: the mark names its file */
    off_t end;      /* where our last append ended, -1 if unknown */
};

/* Appends buf (whole lines) with the lock held, on an O_APPEND descriptor.
 * A tail without a newline left by a torn write of resil (see the top of
 * this file) is cut first: it was never acknowledged, and our record must
 * not be glued to it; any other tail is kept and ended with a newline.
 * Short writes are continued (nobody else appends meanwhile); on an error
 * the file is cut back to where it was, so a record is in the log whole or
 * not at all. */
static int append_locked(resil_ndjson_writer *w, const char *buf, size_t len, resil_error *err)
{
    int fd = w->fd;
    const char *path = w->path;
    off_t start = resil__sys.lseek(fd, 0, SEEK_END);
    if (start < 0) {
        int e = errno;
        return resil_error_set(err, -e, path, "cannot append to %s: %s", path, strerror(e));
    }
    /* w->end: where our own last append ended.  If the log still ends
     * there, nobody wrote since, and it ends with our newline. */
    bool ours = w->end == start;
    w->end = -1;
    char last = '\n';
    if (!ours && start > 0 && resil__sys.pread(fd, &last, 1, start - 1) != 1)
        last = '\n'; /* unreadable (O_WRONLY on some systems): leave it */
    char *joined = NULL;
    if (!ours && last == '\n')
        mark_drop_stale(w->lock_fd); /* somebody else wrote last: a mark is theirs, and stale */
    if (last != '\n') {
        off_t keep = end_of_last_line(fd, start);
        tail_kind kind = TAIL_FOREIGN;
        int rc = keep < 0 ? (int)keep : classify_tail(&kind, fd, w->lock_fd, &w->st, keep, start);
        if (rc)
            return resil_error_set(err, rc, path,
                                   "cannot read the last line of %s, which has no final "
                                   "newline: %s (nothing was appended)",
                                   path, strerror(-rc));
        if (kind == TAIL_FOREIGN) {
            /* Not ours to cut: keep it, as a line of its own (and a mark
             * that does not cover it is stale). */
            mark_drop_stale(w->lock_fd);
            joined = malloc(len + 1);
            if (!joined)
                return resil_error_set(err, -ENOMEM, path, "out of memory");
            joined[0] = '\n';
            memcpy(joined + 1, buf, len);
            buf = joined;
            len++;
        } else {
            if (resil__sys.ftruncate(fd, keep) != 0) {
                int e = errno;
                return resil_error_set(err, -e, path,
                                       "%s ends with a torn record that cannot be cut (%s); "
                                       "run resil_repair_ndjson (resil ndjson repair)",
                                       path, strerror(e));
            }
            if (kind == TAIL_OURS)
                mark_clear(w->lock_fd);
            start = keep;
        }
    }
    /* Only a write that crosses a page boundary of the file can be torn. */
    bool marked = (uint64_t)start % TEAR_PAGE + len > TEAR_PAGE &&
                  mark_set(w->lock_fd, &w->st, start, len);
    size_t done = 0;
    int rc = 0;
    while (done < len) {
        ssize_t n = resil__sys.write(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            if (done > 0 && resil__sys.ftruncate(fd, start) != 0) {
                int te = errno;
                if (!marked) /* so that the next append or repair may cut it */
                    marked = mark_set(w->lock_fd, &w->st, start, len);
                rc = resil_error_set(err, -e, path,
                                     "cannot append to %s: %s; cutting the partial record "
                                     "failed too (%s): run resil_repair_ndjson (resil ndjson "
                                     "repair)",
                                     path, strerror(e), strerror(te));
                free(joined);
                return rc;
            }
            if (marked)
                mark_clear(w->lock_fd);
            free(joined);
            return resil_error_set(err, -e, path, "cannot append to %s: %s (nothing was added)",
                                   path, strerror(e));
        }
        done += (size_t)n;
    }
    free(joined);
    if (marked)
        mark_clear(w->lock_fd);
    w->end = start + (off_t)len;
    if (w->opts.sync_each && resil__sys.fdatasync(fd) != 0) {
        /* The record IS in the log: a distinct code, so that nobody retries
         * it into a duplicate. */
        int e = errno;
        rc = resil_error_set(err, RESIL_EDURABILITY, path,
                             "appended to %s, but fdatasync failed: %s (the record may not "
                             "survive a crash of the machine; do not append it again)",
                             path, strerror(e));
        if (err)
            err->sys_errno = e;
        return rc;
    }
    return 0;
}

int resil_ndjson_writer_open(resil_ndjson_writer **out, const char *path,
                             const resil_file_opts *opts, resil_error *err)
{
    if (!out || !path || !*path)
        return resil_error_set(err, RESIL_EINVAL, path, "resil_ndjson_writer_open: bad arguments");
    if (resil__file_opts_check(opts, err))
        return RESIL_EINVAL;
    const resil_file_opts *o = resil__file_opts(opts);
    resil_ndjson_writer *w = calloc(1, sizeof *w);
    if (!w)
        return resil_error_set(err, -ENOMEM, path, "out of memory");
    w->fd = w->lock_fd = -1;
    w->end = -1;
    w->opts = *o;
    /* The chain is checked link by link (the protected_symlinks rule) */
    int rc = resil__resolve_target(&w->path, path, err);
    if (rc) {
        free(w);
        return rc;
    }
    w->lock_path = resil__lock_path_of(w->path);
    if (!w->lock_path) {
        rc = resil_error_set(err, -ENOMEM, path, "out of memory");
        goto fail;
    }
    mode_t mode = o->mode ? (mode_t)o->mode : 0644;
    /* O_RDWR: an append reads the last byte to spot a torn record.
     * O_NOFOLLOW: the target was resolved (and its links checked) above; a
     * link swapped in since is refused, not followed. */
    int flags = O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY;
    w->fd = resil__sys.open(w->path, O_RDWR | flags, mode);
    if (w->fd < 0 && errno == EACCES) /* a log we may only append to */
        w->fd = resil__sys.open(w->path, O_WRONLY | flags, mode);
    if (w->fd < 0) {
        int e = errno;
        if (e == ELOOP)
            rc = resil_error_set(err, -e, path,
                                 "cannot open %s: %s became a symlink after it was resolved; "
                                 "refusing to follow it",
                                 path, w->path);
        else
            rc = resil_error_set(err, -e, path, "cannot open %s: %s", path, strerror(e));
        goto fail;
    }
    if (resil__sys.fstat(w->fd, &w->st) != 0) {
        int e = errno;
        rc = resil_error_set(err, -e, path, "cannot stat %s: %s", path, strerror(e));
        goto fail;
    }
    /* The sidecar gets the log's owner and a mode that lets only its writers
     * lock it (resil__lock_open). */
    w->lock_fd = resil__lock_open(w->path, o, err);
    if (w->lock_fd < 0) {
        rc = w->lock_fd;
        goto fail;
    }
    *out = w;
    return 0;
fail:
    resil_ndjson_writer_close(w);
    return rc;
}

static int writer_append_buf(resil_ndjson_writer *w, const char *buf, size_t len,
                             resil_error *err)
{
    int rc = resil__lock_wait(w->lock_fd, w->lock_path, F_WRLCK, &w->opts, err);
    if (rc)
        return rc;
    rc = append_locked(w, buf, len, err);
    resil__lock_unlock(w->lock_fd);
    return rc;
}

int resil_ndjson_writer_append(resil_ndjson_writer *w, const json_t *record, resil_error *err)
{
    if (!w)
        return resil_error_set(err, RESIL_EINVAL, NULL, "writer is NULL");
    char small[512];
    size_t need = record ? resil__json_dumpb(record, small, sizeof small - 1, JSON_COMPACT)
                         : 0;
    if (need > 0 && need < sizeof small) { /* common case: no allocation */
        size_t max = max_line_of(&w->opts);
        if (need > max)
            return too_long(w->path, 0, false, need, max, err);
        small[need] = '\n';
        return writer_append_buf(w, small, need + 1, err);
    }
    char *buf = NULL;
    size_t len = 0;
    int rc = encode_lines(&buf, &len, &record, 1, max_line_of(&w->opts), w->path, err);
    if (rc)
        return rc;
    rc = writer_append_buf(w, buf, len, err);
    free(buf);
    return rc;
}

int resil_ndjson_writer_append_text(resil_ndjson_writer *w, const char *text, size_t len,
                                    resil_error *err)
{
    if (!w || (!text && len))
        return resil_error_set(err, RESIL_EINVAL, NULL, "resil_ndjson_writer_append_text: "
                                                        "bad arguments");
    if (len > 0 && text[len - 1] == '\n')
        len--;
    if (len == 0 || memchr(text, '\n', len))
        return resil_error_set(err, RESIL_EINVAL, w->path,
                               "a record for %s must be one non-empty line of JSON text",
                               w->path);
    size_t max = max_line_of(&w->opts);
    if (len > max)
        return too_long(w->path, 0, false, len, max, err);
    char small[4096];
    char *line = len < sizeof small ? small : malloc(len + 1);
    if (!line)
        return resil_error_set(err, -ENOMEM, w->path, "out of memory");
    memcpy(line, text, len);
    line[len] = '\n';
    int rc = writer_append_buf(w, line, len + 1, err);
    if (line != small)
        free(line);
    return rc;
}

int resil_ndjson_writer_close(resil_ndjson_writer *w)
{
    if (!w)
        return 0;
    int rc = 0;
    if (w->fd >= 0) {
        if (resil__sys.fdatasync(w->fd) != 0)
            rc = -errno;
        if (resil__sys.close(w->fd) != 0 && rc == 0)
            rc = -errno;
    }
    if (w->lock_fd >= 0)
        resil__sys.close(w->lock_fd);
    free(w->path);
    free(w->lock_path);
    free(w);
    return rc;
}

static int append_batch(const char *path, const json_t *const *records, size_t n,
                        const resil_file_opts *opts, resil_error *err)
{
    if (!path || !*path || (!records && n))
        return resil_error_set(err, RESIL_EINVAL, path, "resil_append_ndjson: bad arguments");
    if (resil__file_opts_check(opts, err))
        return RESIL_EINVAL;
    if (n == 0)
        return 0;
    char *buf = NULL;
    size_t len = 0;
    int rc = encode_lines(&buf, &len, records, n, max_line_of(resil__file_opts(opts)), path, err);
    if (rc)
        return rc;
    resil_ndjson_writer *w;
    rc = resil_ndjson_writer_open(&w, path, opts, err);
    if (rc == 0) {
        rc = writer_append_buf(w, buf, len, err);
        /* close without its fdatasync: sync_each already decided that */
        resil__sys.close(w->fd);
        w->fd = -1;
        resil_ndjson_writer_close(w);
    }
    free(buf);
    return rc;
}

int resil_append_ndjson_batch(const char *path, const json_t *const *records, size_t n,
                              const resil_file_opts *opts, resil_error *err)
{
    int64_t t0 = resil__metrics_enabled() ? resil_clock_monotonic_ns(NULL) : 0;
    int rc = append_batch(path, records, n, opts, err);
    if (t0)
        resil__files_metrics_op(RESIL__FILE_OP_APPEND, rc, resil_clock_monotonic_ns(NULL) - t0);
    return rc;
}

int resil_append_ndjson_safe(const char *path, const json_t *record, const resil_file_opts *opts,
                             resil_error *err)
{
    return resil_append_ndjson_batch(path, &record, 1, opts, err);
}

/* ---- reading -------------------------------------------------------------------- */

/* The state of one streaming read of an NDJSON file. */
typedef struct ndjson_reader {
    const char *path;
    const resil_file_opts *o;
    resil_ndjson_record_fn on_record;
    resil_ndjson_bad_fn on_bad;
    void *arg;
    bool strict;
    resil_ndjson_stats *stats;
    size_t max_line;
    size_t limit; /* the buffer holds one line and its newline at most */
    char *buf;
    size_t cap, len, line_no;
    bool tail_lock_tried;
    bool skipping;  /* inside a line longer than max_line */
    size_t skipped; /* its bytes dropped so far */
    resil_lock *tail_lock;
} ndjson_reader;

/* Makes room in a full buffer: drops an over-long line's bytes or grows it.
 * Returns 0 or -ENOMEM with err set. */
static int reader_make_room(ndjson_reader *r, resil_error *err)
{
    if (r->skipping || r->cap == r->limit) {
        r->skipping = true; /* too long: drop it, look for its end */
        r->skipped += r->len;
        r->len = 0;
        return 0;
    }
    size_t ncap = r->cap > r->limit / 2 ? r->limit : r->cap * 2;
    char *nb = realloc(r->buf, ncap);
    if (!nb)
        return resil_error_set(err, -ENOMEM, r->path,
                               "%s: out of memory for line %zu (%zu bytes so far)", r->path,
                               r->line_no + 1, r->len);
    r->buf = nb;
    r->cap = ncap;
    return 0;
}

/* At end of file with bytes after the last newline, tries the shared lock
 * once; true when taken (read on: the append may have finished). */
static bool reader_tail_lock(ndjson_reader *r)
{
    if (!(r->len > 0 || r->skipping) || r->tail_lock || r->tail_lock_tried)
        return false;
    /* Bytes without a newline at the end: a torn tail, or an append
     * still in flight (readers take no lock, and a large write may be
     * seen half done).  Appenders hold the exclusive lock while they
     * write: with the shared lock, what is there is final.  A reader
     * who may not take the lock (a sidecar it cannot open, a
     * read-only directory, a link it may not follow) reads without
     * it: the tail is then reported as torn. */
    r->tail_lock_tried = true;
    char *target = NULL;
    resil_file_opts lo = *r->o;
    if (resil__resolve_target(&target, r->path, NULL) == 0 &&
        resil_lock_acquire(&r->tail_lock, target, RESIL_LOCK_SHARED, &lo, NULL) == 0) {
        free(target);
        return true;
    }
    free(target);
    return false;
}

/* Reports the end of an over-long line (total bytes) as a bad line.
 * Returns 0, or -EFBIG when strict. */
static int reader_long_line(ndjson_reader *r, size_t total, resil_error *err)
{
    resil_ndjson_stats *stats = r->stats;
    stats->long_lines++;
    stats->bad_lines++;
    if (!stats->first_bad_line)
        stats->first_bad_line = r->line_no;
    char m[160];
    snprintf(m, sizeof m, "line of %zu bytes, longer than the limit of %zu bytes (skipped)",
             total, r->max_line);
    if (r->on_bad)
        r->on_bad(r->line_no, m, r->arg);
    if (r->strict) {
        int rc = resil_error_set(err, -EFBIG, r->path, "%s:%zu: %s", r->path, r->line_no, m);
        if (err)
            err->line = (int)r->line_no;
        return rc;
    }
    return 0;
}

/* Parses the line buf[start, end) and hands it to on_record (or on_bad).
 * Returns 0, EPARSE when strict, or what on_record returned. */
static int reader_line(ndjson_reader *r, size_t start, size_t end, resil_error *err)
{
    const char *buf = r->buf;
    resil_ndjson_stats *stats = r->stats;
    size_t l = end - start;
    if (l > 0 && buf[end - 1] == '\r')
        l--;
    bool blank = true;
    for (size_t i = start; i < start + l && blank; i++)
        blank = buf[i] == ' ' || buf[i] == '\t';
    if (blank)
        return 0;
    json_error_t je;
    json_t *rec = json_loadb(buf + start, l, JSON_DECODE_ANY, &je);
    if (!rec) {
        stats->bad_lines++;
        if (!stats->first_bad_line)
            stats->first_bad_line = r->line_no;
        if (r->on_bad)
            r->on_bad(r->line_no, je.text, r->arg);
        if (r->strict) {
            int rc = resil_error_set(err, RESIL_EPARSE, r->path, "%s:%zu:%d: %s", r->path,
                                     r->line_no, je.column, je.text);
            if (err) {
                err->line = (int)r->line_no;
                err->column = je.column;
            }
            return rc;
        }
        return 0;
    }
    stats->records++;
    int rc = r->on_record ? r->on_record(rec, r->line_no, r->arg) : 0;
    json_decref(rec);
    return rc;
}

/* Hands out every complete line in buf[0, len) and keeps the rest.
 * Returns 0 or the first line's error (the buffer is then left as is). */
static int reader_lines(ndjson_reader *r, resil_error *err)
{
    size_t start = 0;
    for (;;) {
        char *nl = memchr(r->buf + start, '\n', r->len - start);
        if (!nl)
            break;
        size_t end = (size_t)(nl - r->buf);
        r->line_no++;
        int rc;
        if (r->skipping) { /* the end of an over-long line */
            size_t total = r->skipped + (end - start);
            r->skipping = false;
            r->skipped = 0;
            rc = reader_long_line(r, total, err);
        } else {
            rc = reader_line(r, start, end, err);
        }
        if (rc)
            return rc;
        start = end + 1;
    }
    memmove(r->buf, r->buf + start, r->len - start);
    r->len -= start;
    return 0;
}

/* Counts the bytes after the last newline as a torn tail (an error when strict). */
static int reader_torn_tail(ndjson_reader *r, resil_error *err)
{
    if (!(r->len > 0 || r->skipping))
        return 0;
    r->stats->torn_bytes = r->skipped + r->len;
    if (!r->strict)
        return 0;
    int rc = resil_error_set(err, RESIL_EPARSE, r->path,
                             "%s:%zu: torn last record (%zu bytes without a newline)", r->path,
                             r->line_no + 1, r->stats->torn_bytes);
    if (err)
        err->line = (int)(r->line_no + 1);
    return rc;
}

int resil_read_ndjson_safe(const char *path, resil_ndjson_record_fn on_record,
                           resil_ndjson_bad_fn on_bad, void *arg, bool strict,
                           resil_ndjson_stats *stats, const resil_file_opts *opts,
                           resil_error *err)
{
    resil_ndjson_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!path || !*path)
        return resil_error_set(err, RESIL_EINVAL, path, "resil_read_ndjson_safe: bad arguments");
    if (resil__file_opts_check(opts, err))
        return RESIL_EINVAL;
    ndjson_reader r = {
        .path = path,
        .o = resil__file_opts(opts),
        .on_record = on_record,
        .on_bad = on_bad,
        .arg = arg,
        .strict = strict,
        .stats = stats,
    };
    r.max_line = max_line_of(r.o);
    r.limit = r.max_line < SIZE_MAX ? r.max_line + 1 : SIZE_MAX;
    struct stat st;
    int fd = resil__open_regular(path, O_RDONLY, &st, err);
    if (fd < 0)
        return fd;
    r.cap = r.limit < 65536 ? r.limit : 65536;
    r.buf = malloc(r.cap);
    if (!r.buf) {
        resil__sys.close(fd);
        return resil_error_set(err, -ENOMEM, path, "out of memory");
    }
    int rc = 0;
    bool eof = false;
    while (!eof && rc == 0) {
        if (r.len == r.cap) { /* buf holds part of one line, no newline */
            rc = reader_make_room(&r, err);
            if (rc)
                break;
        }
        ssize_t n = resil__sys.read(fd, r.buf + r.len, r.cap - r.len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            rc = resil_error_set(err, -e, path, "cannot read %s: %s", path, strerror(e));
            break;
        }
        if (n == 0 && reader_tail_lock(&r))
            continue; /* read on: the append may have finished */
        if (n == 0)
            eof = true;
        r.len += (size_t)n;
        rc = reader_lines(&r, err);
    }
    if (rc == 0)
        rc = reader_torn_tail(&r, err);
    resil_lock_release(r.tail_lock);
    free(r.buf);
    resil__sys.close(fd);
    return rc;
}

/* ---- repair ----------------------------------------------------------------------- */

static int repair(const char *path, size_t *cut, bool force, const resil_file_opts *opts,
                  resil_error *err)
{
    if (cut)
        *cut = 0;
    if (!path || !*path)
        return resil_error_set(err, RESIL_EINVAL, path, "resil_repair_ndjson: bad arguments");
    if (resil__file_opts_check(opts, err))
        return RESIL_EINVAL;
    const resil_file_opts *o = resil__file_opts(opts);
    char *target;
    resil_lock *lk;
    int rc = resil__lock_target(&target, &lk, path, o, err);
    if (rc)
        return rc;
    struct stat st;
    int fd = resil__open_regular(target, O_RDWR | O_NOFOLLOW, &st, err);
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    off_t size = st.st_size;
    off_t keep = end_of_last_line(fd, size);
    tail_kind kind = TAIL_FOREIGN;
    if (keep >= 0 && keep < size && !force) {
        int c = classify_tail(&kind, fd, lk->fd, &st, keep, size);
        if (c)
            keep = c;
    }
    if (keep < 0) {
        rc = resil_error_set(err, (int)keep, path, "cannot read %s: %s", path,
                             strerror((int)-keep));
        goto out_fd;
    }
    if (keep < size && !force && kind == TAIL_FOREIGN) {
        rc = resil_error_set(err, RESIL_EPARSE, path,
                             "%s ends with %jd bytes without a final newline that resil did not "
                             "write (no append of resil was cut short there, and they are not "
                             "NUL bytes left by a crash): kept; end the line with a newline to "
                             "keep it, or force the repair (resil ndjson repair --force) to cut "
                             "it",
                             path, (intmax_t)(size - keep));
        goto out_fd;
    }
    if (keep < size) {
        if (resil__sys.ftruncate(fd, keep) != 0 || resil__sys.fsync(fd) != 0) {
            int e = errno;
            rc = resil_error_set(err, -e, path, "cannot cut the torn tail of %s: %s", path,
                                 strerror(e));
            goto out_fd;
        }
        if (kind == TAIL_OURS)
            mark_clear(lk->fd);
        if (cut)
            *cut = (size_t)(size - keep);
    }
    if (kind != TAIL_OURS)
        mark_drop_stale(lk->fd); /* the log is whole now: no mark may outlive that */
out_fd:
    resil__sys.close(fd);
out:
    resil_lock_release(lk);
    free(target);
    return rc;
}

int resil_repair_ndjson(const char *path, size_t *cut, const resil_file_opts *opts,
                        resil_error *err)
{
    return repair(path, cut, false, opts, err);
}

int resil_repair_ndjson_force(const char *path, size_t *cut, const resil_file_opts *opts,
                              resil_error *err)
{
    return repair(path, cut, true, opts, err);
}
