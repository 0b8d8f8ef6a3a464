/* src/ndjson.c - the NDJSON event log: whole-line appends under the lock,
 * streaming reads that skip torn tails and bad lines, and repair. */
#define _GNU_SOURCE
#include "internal/metrics.h"
#include "internal/files.h"
#include "internal/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Encodes records as compact lines into one malloc()ed buffer. */
static int encode_lines(char **out, size_t *out_len, const json_t *const *records, size_t n,
                        const char *path, resil_error *err)
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
        size_t need = json_dumpb(records[i], NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
        if (need == 0) {
            free(buf);
            return resil_error_set(err, RESIL_EINVAL, path,
                                   "record %zu cannot be encoded as JSON (invalid UTF-8 or a "
                                   "NaN/infinite number?)",
                                   i);
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
        json_dumpb(records[i], buf + len, need, JSON_COMPACT | JSON_ENCODE_ANY);
        len += need;
        buf[len++] = '\n';
    }
    *out = buf;
    *out_len = len;
    return 0;
}

/* The offset just after the last newline in fd's first `size` bytes (0 if
 * there is none), reading backwards in blocks; < 0: -errno. */
static off_t end_of_last_line(int fd, off_t size)
{
    char block[4096];
    for (off_t end = size; end > 0;) {
        off_t from = end > (off_t)sizeof block ? end - (off_t)sizeof block : 0;
        size_t want = (size_t)(end - from), got = 0;
        while (got < want) {
            ssize_t n = resil__sys.pread(fd, block + got, want - got, from + (off_t)got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return n < 0 ? -errno : -EIO;
            got += (size_t)n;
        }
        char *nl = memrchr(block, '\n', want);
        if (nl)
            return from + (nl - block) + 1;
        end = from;
    }
    return 0;
}

/* Appends buf (whole lines) with the lock held, on an O_APPEND descriptor.
 * A write that a fatal signal cut short leaves a torn record behind (the
 * kernel keeps what it copied); its writer held the lock and died, so the
 * next append first cuts such a tail back to the last newline: it was never
 * acknowledged, and our record must not be glued to it.  Short writes are
 * continued (nobody else appends meanwhile); on an error the file is cut
 * back to where it was, so a record is in the log whole or not at all. */
static int append_locked(int fd, const char *buf, size_t len, bool sync, off_t *known_end,
                         const char *path, resil_error *err)
{
    off_t start = resil__sys.lseek(fd, 0, SEEK_END);
    if (start < 0) {
        int e = errno;
        return resil_error_set(err, -e, path, "cannot append to %s: %s", path, strerror(e));
    }
    /* known_end: where our own last append ended.  If the log still ends
     * there, nobody wrote since, and it ends with our newline. */
    bool ours = known_end && *known_end == start;
    if (known_end)
        *known_end = -1;
    char last = '\n';
    if (!ours && start > 0 && resil__sys.pread(fd, &last, 1, start - 1) != 1)
        last = '\n'; /* unreadable (O_WRONLY on some systems): leave it */
    if (last != '\n') {
        off_t keep = end_of_last_line(fd, start);
        if (keep < 0 || resil__sys.ftruncate(fd, keep) != 0) {
            int e = keep < 0 ? (int)-keep : errno;
            return resil_error_set(err, -e, path,
                                   "%s ends with a torn record that cannot be cut (%s); run "
                                   "resil_repair_ndjson",
                                   path, strerror(e));
        }
        start = keep;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = resil__sys.write(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            if (done > 0 && resil__sys.ftruncate(fd, start) != 0) {
                int te = errno;
                return resil_error_set(err, -e, path,
                                       "cannot append to %s: %s; cutting the partial record "
                                       "failed too (%s): run resil_repair_ndjson",
                                       path, strerror(e), strerror(te));
            }
            return resil_error_set(err, -e, path, "cannot append to %s: %s (nothing was added)",
                                   path, strerror(e));
        }
        done += (size_t)n;
    }
    if (known_end)
        *known_end = start + (off_t)len;
    if (sync && resil__sys.fdatasync(fd) != 0) {
        /* The record IS in the log: a distinct code, so that nobody retries
         * it into a duplicate. */
        int e = errno;
        int rc = resil_error_set(err, RESIL_EDURABILITY, path,
                                 "appended to %s, but fdatasync failed: %s (the record may not "
                                 "survive a crash of the machine; do not append it again)",
                                 path, strerror(e));
        if (err)
            err->sys_errno = e;
        return rc;
    }
    return 0;
}

struct resil_ndjson_writer {
    int fd;      /* the log, O_APPEND */
    int lock_fd; /* the sidecar */
    char *path;
    char *lock_path;
    resil_file_opts opts;
    off_t end; /* where our last append ended, -1 if unknown */
};

int resil_ndjson_writer_open(resil_ndjson_writer **out, const char *path,
                             const resil_file_opts *opts, resil_error *err)
{
    if (!out || !path || !*path)
        return resil_error_set(err, RESIL_EINVAL, path, "resil_ndjson_writer_open: bad arguments");
    const resil_file_opts *o = resil__file_opts(opts);
    resil_ndjson_writer *w = calloc(1, sizeof *w);
    if (!w)
        return resil_error_set(err, -ENOMEM, path, "out of memory");
    w->fd = w->lock_fd = -1;
    w->end = -1;
    w->opts = *o;
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
    /* O_RDWR: an append reads the last byte to spot a torn record. */
    w->fd = resil__sys.open(w->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, mode);
    if (w->fd < 0 && errno == EACCES) /* a log we may only append to */
        w->fd = resil__sys.open(w->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, mode);
    if (w->fd < 0) {
        int e = errno;
        rc = resil_error_set(err, -e, path, "cannot open %s: %s", path, strerror(e));
        goto fail;
    }
    w->lock_fd = resil__sys.open(w->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (w->lock_fd < 0) {
        int e = errno;
        rc = resil_error_set(err, -e, w->lock_path, "cannot open lock file %s: %s",
                             w->lock_path, strerror(e));
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
    rc = append_locked(w->fd, buf, len, w->opts.sync_each, &w->end, w->path, err);
    resil__lock_unlock(w->lock_fd);
    return rc;
}

int resil_ndjson_writer_append(resil_ndjson_writer *w, const json_t *record, resil_error *err)
{
    if (!w)
        return resil_error_set(err, RESIL_EINVAL, NULL, "writer is NULL");
    char small[512];
    size_t need = record ? json_dumpb(record, small, sizeof small - 1,
                                      JSON_COMPACT | JSON_ENCODE_ANY)
                         : 0;
    if (need > 0 && need < sizeof small) { /* common case: no allocation */
        small[need] = '\n';
        return writer_append_buf(w, small, need + 1, err);
    }
    char *buf = NULL;
    size_t len = 0;
    int rc = encode_lines(&buf, &len, &record, 1, w->path, err);
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
    if (n == 0)
        return 0;
    char *buf = NULL;
    size_t len = 0;
    int rc = encode_lines(&buf, &len, records, n, path, err);
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
        resil__metrics_file_op("append", rc, resil_clock_monotonic_ns(NULL) - t0);
    return rc;
}

int resil_append_ndjson_safe(const char *path, const json_t *record, const resil_file_opts *opts,
                             resil_error *err)
{
    return resil_append_ndjson_batch(path, &record, 1, opts, err);
}

/* ---- reading -------------------------------------------------------------------- */

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
    const resil_file_opts *o = resil__file_opts(opts);
    size_t max_line = o->max_size ? o->max_size : RESIL_FILE_DEFAULT_MAX_SIZE;
    struct stat st;
    int fd = resil__open_regular(path, O_RDONLY, &st, err);
    if (fd < 0)
        return fd;
    size_t cap = 65536, len = 0, line_no = 0;
    char *buf = malloc(cap);
    if (!buf) {
        resil__sys.close(fd);
        return resil_error_set(err, -ENOMEM, path, "out of memory");
    }
    int rc = 0;
    bool eof = false, tail_lock_tried = false;
    resil_lock *tail_lock = NULL;
    while (!eof && rc == 0) {
        if (len == cap) {
            if (cap > max_line) {
                rc = resil_error_set(err, -EFBIG, path,
                                     "%s: line %zu is longer than the limit of %zu bytes", path,
                                     line_no + 1, max_line);
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                rc = resil_error_set(err, -ENOMEM, path, "out of memory");
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = resil__sys.read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            rc = resil_error_set(err, -e, path, "cannot read %s: %s", path, strerror(e));
            break;
        }
        if (n == 0 && len > 0 && !tail_lock && !tail_lock_tried) {
            /* Bytes without a newline at the end: a torn tail, or an append
             * still in flight (readers take no lock, and a large write may be
             * seen half done).  Appenders hold the exclusive lock while they
             * write: with the shared lock, what is there is final. */
            tail_lock_tried = true;
            char *target = NULL;
            resil_file_opts lo = *o;
            if (resil__resolve_target(&target, path, NULL) == 0 &&
                resil_lock_acquire(&tail_lock, target, RESIL_LOCK_SHARED, &lo, NULL) == 0) {
                free(target);
                continue; /* read on: the append may have finished */
            }
            free(target);
        }
        if (n == 0)
            eof = true;
        len += (size_t)n;
        /* Hand out every complete line in buf[0, len). */
        size_t start = 0;
        for (;;) {
            char *nl = memchr(buf + start, '\n', len - start);
            if (!nl)
                break;
            size_t end = (size_t)(nl - buf);
            line_no++;
            size_t l = end - start;
            if (l > 0 && buf[end - 1] == '\r')
                l--;
            bool blank = true;
            for (size_t i = start; i < start + l && blank; i++)
                blank = buf[i] == ' ' || buf[i] == '\t';
            if (!blank) {
                json_error_t je;
                json_t *rec = json_loadb(buf + start, l, JSON_DECODE_ANY, &je);
                if (!rec) {
                    stats->bad_lines++;
                    if (!stats->first_bad_line)
                        stats->first_bad_line = line_no;
                    if (on_bad)
                        on_bad(line_no, je.text, arg);
                    if (strict) {
                        rc = resil_error_set(err, RESIL_EPARSE, path, "%s:%zu:%d: %s", path,
                                             line_no, je.column, je.text);
                        if (err) {
                            err->line = (int)line_no;
                            err->column = je.column;
                        }
                        break;
                    }
                } else {
                    stats->records++;
                    int r = on_record ? on_record(rec, line_no, arg) : 0;
                    json_decref(rec);
                    if (r != 0) {
                        rc = r;
                        break;
                    }
                }
            }
            start = end + 1;
        }
        if (rc)
            break;
        memmove(buf, buf + start, len - start);
        len -= start;
    }
    if (rc == 0 && len > 0) { /* bytes after the last newline: a torn tail */
        stats->torn_bytes = len;
        if (strict) {
            rc = resil_error_set(err, RESIL_EPARSE, path,
                                 "%s:%zu: torn last record (%zu bytes without a newline)", path,
                                 line_no + 1, len);
            if (err)
                err->line = (int)(line_no + 1);
        }
    }
    resil_lock_release(tail_lock);
    free(buf);
    resil__sys.close(fd);
    return rc;
}

int resil_repair_ndjson(const char *path, size_t *cut, const resil_file_opts *opts,
                        resil_error *err)
{
    if (cut)
        *cut = 0;
    if (!path || !*path)
        return resil_error_set(err, RESIL_EINVAL, path, "resil_repair_ndjson: bad arguments");
    const resil_file_opts *o = resil__file_opts(opts);
    char *target;
    resil_lock *lk;
    int rc = resil__lock_target(&target, &lk, path, o, err);
    if (rc)
        return rc;
    struct stat st;
    int fd = resil__open_regular(target, O_RDWR, &st, err);
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    off_t size = st.st_size;
    off_t keep = end_of_last_line(fd, size);
    if (keep < 0) {
        rc = resil_error_set(err, (int)keep, path, "cannot read %s: %s", path,
                             strerror((int)-keep));
        goto out_fd;
    }
    if (keep < size) {
        if (resil__sys.ftruncate(fd, keep) != 0 || resil__sys.fsync(fd) != 0) {
            int e = errno;
            rc = resil_error_set(err, -e, path, "cannot cut the torn tail of %s: %s", path,
                                 strerror(e));
            goto out_fd;
        }
        if (cut)
            *cut = (size_t)(size - keep);
    }
out_fd:
    resil__sys.close(fd);
out:
    resil_lock_release(lk);
    free(target);
    return rc;
}
