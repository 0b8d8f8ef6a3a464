/* bench/bench_files.c - what process-safe files cost, against a plain C floor.
 *
 * Two figures (issue 3), each against the same syscalls written by hand in
 * this file (the "floor"), measured in the same run, interleaved op by op:
 *
 *   json_atomic_write_1k  resil_write_file_atomic of a 1 KiB JSON text, and
 *                         resil_write_json_safe of the document it encodes
 *                         (json_dumps timed on its own too), per durability
 *                         mode FULL / FILE / NONE.  Floors:
 *                           floor_nolock  open(tmp, O_CREAT|O_EXCL), write,
 *                                         [fsync], close, rename,
 *                                         [open dir, fsync dir, close] (FULL)
 *                           floor_lock    the same inside open(sidecar) +
 *                                         F_OFD_SETLK write lock ... unlock +
 *                                         close, as resil locks.
 *                         Target: resil p50 <= 1.1 x floor_lock p50.
 *
 *   ndjson_append_locked  resil_ndjson_writer_open once, then
 *                         resil_ndjson_writer_append per record (a ~200 byte
 *                         record), without and with sync_each.  Floors on an
 *                         O_APPEND descriptor held open:
 *                           floor_nolock      write [+ fdatasync]
 *                           floor_lock        F_OFD_SETLK, write [+ fdatasync],
 *                                             unlock (same record bytes)
 *                           floor_lock_encode json_dumpb of the record first.
 *                         Target: resil p50 <= 1.2 x floor_lock p50.
 *                         Also: N processes appending to one log at once
 *                         (records/s in total), resil and floor_lock, with a
 *                         check that the log holds every record whole.
 *
 * Every op is timed on its own (CLOCK_MONOTONIC around it); p50/p90/p99 are
 * nearest-rank percentiles over all ops of a variant.
 *
 * Output: "files ..." lines (one per variant), "ratio ..." lines,
 * "compare-files class=..." lines that bench/run.sh puts beside the peers,
 * "check ..." lines (exit 1 if one fails) and "verdict ..." lines.  The
 * encoded document and record are written to DIR/doc.json and
 * DIR/record.ndjson so the peers write the very same bytes.
 *
 * Usage: bench_files [--quick] [--dir DIR] [--ops-full N] [--ops-file N]
 *                    [--ops-none N] [--ops-append N] [--ops-append-sync N]
 *                    [--records-procs N] [--procs P]
 *   --quick (or BENCH_FILES_QUICK=1 in the environment) uses small counts.
 *   DIR (default ./bench_files_tmp) should be on the disk you care about, not
 *   a tmpfs: the file system is printed.
 * A benchmark, not a test: exits 0 when a target is missed. */
#define _GNU_SOURCE
#include "resil/files.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------ */

static int check_failures;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what, int e)
{
    fprintf(stderr, "bench_files: %s: %s\n", what, strerror(e));
    exit(2);
}

static void die_resil(const char *what, int rc, const resil_error *err)
{
    fprintf(stderr, "bench_files: %s: %s (%s)\n", what, resil_strerror(rc),
            err && err->message[0] ? err->message : "");
    exit(2);
}

static void mkdir_p(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf)
        die("path too long", ENAMETOOLONG);
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                die(buf, errno);
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        die(buf, errno);
}

static void join(char *out, size_t size, const char *a, const char *b)
{
    int n = snprintf(out, size, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= size)
        die("path too long", ENAMETOOLONG);
}

/* snprintf into a path buffer; a path that does not fit is fatal. */
#define PATHF(buf, ...)                                                                   \
    do {                                                                                  \
        int n_ = snprintf((buf), sizeof(buf), __VA_ARGS__);                               \
        if (n_ < 0 || (size_t)n_ >= sizeof(buf))                                          \
            die("path too long", ENAMETOOLONG);                                           \
    } while (0)

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

typedef struct pcts {
    double p50, p90, p99, mean, min;
    long n;
} pcts;

/* Sorts s in place; nearest-rank percentiles. */
static pcts percentiles(int64_t *s, long n)
{
    pcts p = {0, 0, 0, 0, 0, n};
    if (n <= 0)
        return p;
    qsort(s, (size_t)n, sizeof s[0], cmp_i64);
    double sum = 0;
    for (long i = 0; i < n; i++)
        sum += (double)s[i];
    long i50 = (long)((n * 50 + 99) / 100) - 1, i90 = (long)((n * 90 + 99) / 100) - 1,
         i99 = (long)((n * 99 + 99) / 100) - 1;
    p.p50 = (double)s[i50 < 0 ? 0 : i50];
    p.p90 = (double)s[i90 < 0 ? 0 : i90];
    p.p99 = (double)s[i99 < 0 ? 0 : i99];
    p.mean = sum / (double)n;
    p.min = (double)s[0];
    return p;
}

static int64_t *alloc_samples(long n)
{
    int64_t *s = malloc((size_t)(n > 0 ? n : 1) * sizeof *s);
    if (!s)
        die("malloc", ENOMEM);
    return s;
}

static void print_row(const char *op, const char *mode, const char *impl, const char *variant,
                      pcts p)
{
    printf("files op=%s mode=%s impl=%s variant=%s ops=%ld p50_ns=%.0f p90_ns=%.0f p99_ns=%.0f "
           "mean_ns=%.0f min_ns=%.0f\n",
           op, mode, impl, variant, p.n, p.p50, p.p90, p.p99, p.mean, p.min);
}

static void print_ratio(const char *op, const char *mode, const char *variant, const char *vs,
                        pcts a, pcts b)
{
    printf("ratio op=%s mode=%s variant=%s vs=%s p50=%.3f p90=%.3f p99=%.3f\n", op, mode, variant,
           vs, a.p50 / b.p50, a.p90 / b.p90, a.p99 / b.p99);
}

static void print_compare(const char *cls, const char *variant, pcts p)
{
    printf("compare-files class=%s impl=resil lang=C variant=%s ops=%ld p50_ns=%.0f p90_ns=%.0f "
           "p99_ns=%.0f\n",
           cls, variant, p.n, p.p50, p.p90, p.p99);
}

static const char *fs_name(const char *dir)
{
    struct statfs sf;
    if (statfs(dir, &sf) != 0)
        return "unknown";
    switch ((unsigned long)sf.f_type) {
    case 0xEF53UL: return "ext2/3/4";
    case 0x01021994UL: return "tmpfs";
    case 0x58465342UL: return "xfs";
    case 0x9123683EUL: return "btrfs";
    case 0x794C7630UL: return "overlayfs";
    case 0x2FC12FC1UL: return "zfs";
    case 0x6969UL: return "nfs";
    default: return "other";
    }
}

/* ---- the documents ------------------------------------------------------------- */

#define DOC_FLAGS (JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17))
#define DOC_BYTES 1024

/* A state document like a pipeline keeps: run metadata, steps, counters.
 * A "note" string pads its encoding (as resil_write_json_safe writes it,
 * with the final newline) to exactly DOC_BYTES. */
static json_t *make_doc(void)
{
    json_t *doc = json_object();
    json_object_set_new(doc, "version", json_integer(3));
    json_object_set_new(doc, "run_id", json_string("run-2026-11-29-0007"));
    json_object_set_new(doc, "updated_at", json_string("2026-11-29T07:05:00Z"));
    json_object_set_new(doc, "status", json_string("running"));
    json_t *steps = json_array();
    static const char *const names[] = {"fetch", "parse", "plan", "review", "apply", "verify"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        json_t *s = json_object();
        json_object_set_new(s, "name", json_string(names[i]));
        json_object_set_new(s, "state", json_string(i < 4 ? "done" : "pending"));
        json_object_set_new(s, "attempts", json_integer((json_int_t)(i % 3 + 1)));
        json_object_set_new(s, "duration_ms", json_real(12.5 * (double)(i + 1)));
        json_array_append_new(steps, s);
    }
    json_object_set_new(doc, "steps", steps);
    json_t *c = json_object();
    json_object_set_new(c, "retries", json_integer(7));
    json_object_set_new(c, "escalations", json_integer(1));
    json_object_set_new(c, "breaker_open", json_false());
    json_object_set_new(doc, "counters", c);
    json_object_set_new(doc, "note", json_string(""));
    char *s = json_dumps(doc, DOC_FLAGS);
    size_t len = strlen(s) + 1; /* + the final newline */
    free(s);
    if (len < DOC_BYTES) {
        size_t pad = DOC_BYTES - len;
        char *p = malloc(pad + 1);
        memset(p, 'x', pad);
        p[pad] = '\0';
        json_object_set_new(doc, "note", json_string(p));
        free(p);
    }
    return doc;
}

/* Encodes as resil_write_json_safe does (indent 2, final newline). */
static char *encode_doc(const json_t *doc, size_t *len)
{
    char *s = json_dumps(doc, DOC_FLAGS);
    if (!s)
        die("json_dumps", EINVAL);
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t)
        die("realloc", ENOMEM);
    t[n] = '\n';
    t[n + 1] = '\0';
    *len = n + 1;
    return t;
}

static json_t *make_record(void)
{
    json_t *r = json_object();
    json_object_set_new(r, "ts", json_string("2026-11-29T07:05:00.123456Z"));
    json_object_set_new(r, "event", json_string("step_finished"));
    json_object_set_new(r, "run_id", json_string("run-2026-11-29-0007"));
    json_object_set_new(r, "step", json_string("review"));
    json_object_set_new(r, "attempt", json_integer(2));
    json_object_set_new(r, "ok", json_true());
    json_object_set_new(r, "latency_ms", json_real(12.5));
    json_object_set_new(r, "agent", json_string("planner"));
    json_object_set_new(r, "msg", json_string("retry succeeded after a transient timeout"));
    return r;
}

#define REC_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY)

static void write_whole(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        die(path, errno);
}

/* ---- json_atomic_write_1k -------------------------------------------------------- */

enum { A_FLOOR_NOLOCK, A_FLOOR_LOCK, A_RESIL_BYTES, A_RESIL_JSON, A_ENCODE, A_COUNT };
static const char *const a_names[A_COUNT] = {"floor_nolock", "floor_lock", "write_file_atomic",
                                             "write_json_safe", "json_encode_only"};

typedef struct atomic_target {
    char dir[4096], path[4200], tmp[4200], lock[4200];
} atomic_target;

/* The floor blocks in the kernel (F_OFD_SETLKW) while another process holds
 * the lock, as a hand-written locker would; uncontended it costs the same as
 * F_OFD_SETLK. */
static void ofd_lock(int fd, short type)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    int rc;
    do
        rc = fcntl(fd, type == F_UNLCK ? F_OFD_SETLK : F_OFD_SETLKW, &fl);
    while (rc != 0 && errno == EINTR);
    if (rc != 0)
        die("F_OFD_SETLK", errno);
}

/* The hand-written floor: the same syscalls as an atomic replace, no library. */
static void floor_replace(const atomic_target *t, const char *data, size_t len,
                          resil_durability mode, int with_lock)
{
    int lfd = -1;
    if (with_lock) {
        lfd = open(t->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (lfd < 0)
            die(t->lock, errno);
        ofd_lock(lfd, F_WRLCK);
    }
    int fd = open(t->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        die(t->tmp, errno);
    if (write(fd, data, len) != (ssize_t)len)
        die("write", errno);
    if (mode != RESIL_DURABLE_NONE && fsync(fd) != 0)
        die("fsync", errno);
    if (close(fd) != 0)
        die("close", errno);
    if (rename(t->tmp, t->path) != 0)
        die("rename", errno);
    if (mode == RESIL_DURABLE_FULL) {
        int dfd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) != 0)
            die("fsync dir", errno);
        close(dfd);
    }
    if (with_lock) {
        ofd_lock(lfd, F_UNLCK);
        close(lfd);
    }
}

static const char *const mode_names[3] = {"FULL", "FILE", "NONE"};

typedef struct atomic_result {
    pcts p[A_COUNT];
} atomic_result;

static atomic_result bench_atomic(const char *root, resil_durability mode, long ops,
                                  const json_t *doc, const char *text, size_t len)
{
    atomic_target t[A_COUNT];
    for (int v = 0; v < A_COUNT; v++) {
        char sub[256];
        PATHF(sub, "atomic_%s_%s", mode_names[mode], a_names[v]);
        join(t[v].dir, sizeof t[v].dir, root, sub);
        mkdir_p(t[v].dir);
        join(t[v].path, sizeof t[v].path, t[v].dir, "state.json");
        join(t[v].tmp, sizeof t[v].tmp, t[v].dir, ".state.json.tmp");
        PATHF(t[v].lock, "%s.lock", t[v].path);
        write_whole(t[v].path, text, len); /* every variant replaces an existing file */
    }
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.durability = mode;
    resil_error err;
    int64_t *s[A_COUNT];
    for (int v = 0; v < A_COUNT; v++)
        s[v] = alloc_samples(ops);
    long warm = ops / 10 < 5 ? 5 : ops / 10;
    for (long i = -warm; i < ops; i++) {
        for (int k = 0; k < A_COUNT; k++) {
            int v = (int)((i + warm + k) % A_COUNT); /* rotate the order */
            int64_t t0 = now_ns();
            int rc = 0;
            switch (v) {
            case A_FLOOR_NOLOCK: floor_replace(&t[v], text, len, mode, 0); break;
            case A_FLOOR_LOCK: floor_replace(&t[v], text, len, mode, 1); break;
            case A_RESIL_BYTES: rc = resil_write_file_atomic(t[v].path, text, len, &o, &err); break;
            case A_RESIL_JSON: rc = resil_write_json_safe(t[v].path, doc, &o, &err); break;
            case A_ENCODE: {
                char *e = json_dumps(doc, DOC_FLAGS);
                if (!e)
                    rc = RESIL_EINVAL;
                free(e);
                break;
            }
            }
            int64_t t1 = now_ns();
            if (rc != 0)
                die_resil(a_names[v], rc, &err);
            if (i >= 0)
                s[v][i] = t1 - t0;
        }
    }
    /* The files the resil variants wrote are the bytes of the floor. */
    for (int v = A_RESIL_BYTES; v <= A_RESIL_JSON; v++) {
        char *back = NULL;
        size_t blen = 0;
        int rc = resil_read_file(&back, &blen, t[v].path, NULL, &err);
        int ok = rc == 0 && blen == len && memcmp(back, text, len) == 0;
        free(back);
        printf("check json_atomic_write_1k mode=%s variant=%s content_matches=%d ok=%d\n",
               mode_names[mode], a_names[v], ok, ok);
        if (!ok)
            check_failures++;
    }
    atomic_result r;
    for (int v = 0; v < A_COUNT; v++) {
        r.p[v] = percentiles(s[v], ops);
        free(s[v]);
    }
    return r;
}

/* ---- ndjson_append_locked ----------------------------------------------------------- */

enum { N_FLOOR_NOLOCK, N_FLOOR_LOCK, N_FLOOR_LOCK_ENC, N_RESIL, N_RESIL_TEXT, N_ENCODE, N_COUNT };
static const char *const n_names[N_COUNT] = {"floor_nolock",  "floor_lock",
                                             "floor_lock_encode", "writer_append",
                                             "writer_append_text", "json_encode_only"};

typedef struct floor_log {
    int fd, lfd;
} floor_log;

static floor_log floor_open(const char *path)
{
    char lock[4200];
    PATHF(lock, "%s.lock", path);
    floor_log f;
    f.fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    f.lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f.fd < 0 || f.lfd < 0)
        die(path, errno);
    return f;
}

static void floor_append(const floor_log *f, const char *rec, size_t len, int with_lock, int sync)
{
    if (with_lock)
        ofd_lock(f->lfd, F_WRLCK);
    if (write(f->fd, rec, len) != (ssize_t)len)
        die("write", errno);
    if (sync && fdatasync(f->fd) != 0)
        die("fdatasync", errno);
    if (with_lock)
        ofd_lock(f->lfd, F_UNLCK);
}

static void floor_close(floor_log *f)
{
    close(f->fd);
    close(f->lfd);
}

typedef struct append_result {
    pcts p[N_COUNT];
} append_result;

static size_t count_lines(const char *path, size_t *bytes)
{
    char *buf = NULL;
    size_t len = 0, n = 0;
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.max_size = (size_t)1 << 30;
    if (resil_read_file(&buf, &len, path, &o, NULL) != 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        n += buf[i] == '\n';
    free(buf);
    *bytes = len;
    return n;
}

static append_result bench_append(const char *root, int sync, long ops, const json_t *rec,
                                  const char *line, size_t len)
{
    char dir[4096], path[N_COUNT][4200];
    PATHF(dir, "%s/ndjson_%s", root, sync ? "sync" : "nosync");
    mkdir_p(dir);
    for (int v = 0; v < N_COUNT; v++) {
        PATHF(path[v], "%s/%s.ndjson", dir, n_names[v]);
        unlink(path[v]);
    }
    floor_log fl[N_COUNT];
    for (int v = N_FLOOR_NOLOCK; v <= N_FLOOR_LOCK_ENC; v++)
        fl[v] = floor_open(path[v]);
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.sync_each = sync != 0;
    resil_error err;
    resil_ndjson_writer *w, *wt;
    int rc = resil_ndjson_writer_open(&w, path[N_RESIL], &o, &err);
    if (rc)
        die_resil("resil_ndjson_writer_open", rc, &err);
    rc = resil_ndjson_writer_open(&wt, path[N_RESIL_TEXT], &o, &err);
    if (rc)
        die_resil("resil_ndjson_writer_open", rc, &err);
    int64_t *s[N_COUNT];
    for (int v = 0; v < N_COUNT; v++)
        s[v] = alloc_samples(ops);
    long warm = ops / 10 < 5 ? 5 : ops / 10;
    char buf[512];
    for (long i = -warm; i < ops; i++) {
        for (int k = 0; k < N_COUNT; k++) {
            int v = (int)((i + warm + k) % N_COUNT);
            int64_t t0 = now_ns();
            switch (v) {
            case N_FLOOR_NOLOCK: floor_append(&fl[v], line, len, 0, sync); break;
            case N_FLOOR_LOCK: floor_append(&fl[v], line, len, 1, sync); break;
            case N_FLOOR_LOCK_ENC: {
                size_t n = json_dumpb(rec, buf, sizeof buf - 1, REC_FLAGS);
                if (n == 0 || n >= sizeof buf)
                    die("json_dumpb", EINVAL);
                buf[n] = '\n';
                floor_append(&fl[v], buf, n + 1, 1, sync);
                break;
            }
            case N_RESIL: rc = resil_ndjson_writer_append(w, rec, &err); break;
            case N_RESIL_TEXT: rc = resil_ndjson_writer_append_text(wt, line, len, &err); break;
            case N_ENCODE: {
                size_t n = json_dumpb(rec, buf, sizeof buf - 1, REC_FLAGS);
                if (n == 0)
                    die("json_dumpb", EINVAL);
                break;
            }
            }
            int64_t t1 = now_ns();
            if (rc)
                die_resil("resil_ndjson_writer_append", rc, &err);
            if (i >= 0)
                s[v][i] = t1 - t0;
        }
    }
    rc = resil_ndjson_writer_close(w);
    if (rc == 0)
        rc = resil_ndjson_writer_close(wt);
    if (rc)
        die_resil("resil_ndjson_writer_close", rc, NULL);
    for (int v = N_FLOOR_NOLOCK; v <= N_FLOOR_LOCK_ENC; v++)
        floor_close(&fl[v]);
    /* Each log holds exactly warm + ops copies of the same line. */
    for (int v = N_FLOOR_NOLOCK; v <= N_RESIL_TEXT; v++) {
        size_t bytes = 0, lines = count_lines(path[v], &bytes);
        size_t want = (size_t)(warm + ops);
        int ok = lines == want && bytes == want * len;
        printf("check ndjson_append_locked sync=%d variant=%s lines=%zu expected=%zu ok=%d\n",
               sync, n_names[v], lines, want, ok);
        if (!ok)
            check_failures++;
    }
    append_result r;
    for (int v = 0; v < N_COUNT; v++) {
        r.p[v] = percentiles(s[v], ops);
        free(s[v]);
    }
    return r;
}

/* ---- N processes appending to one log ------------------------------------------------- */

enum { P_FLOOR, P_FLOOR_ENC, P_RESIL };
static const char *const p_names[3] = {"floor_lock", "floor_lock_encode", "writer_append"};

static void child_append(const char *path, int kind, long n, const json_t *rec,
                         const char *line, size_t len, int ready_w, int go_r)
{
    int use_resil = kind == P_RESIL;
    char buf[512];
    resil_ndjson_writer *w = NULL;
    floor_log f = {-1, -1};
    resil_error err;
    if (use_resil) {
        int rc = resil_ndjson_writer_open(&w, path, NULL, &err);
        if (rc)
            die_resil("child: resil_ndjson_writer_open", rc, &err);
    } else {
        f = floor_open(path);
    }
    char c = 'r';
    if (write(ready_w, &c, 1) != 1)
        _exit(2);
    if (read(go_r, &c, 1) < 0) /* EOF when the parent closes: go */
        _exit(2);
    for (long i = 0; i < n; i++) {
        if (use_resil) {
            int rc = resil_ndjson_writer_append(w, rec, &err);
            if (rc)
                die_resil("child: resil_ndjson_writer_append", rc, &err);
        } else if (kind == P_FLOOR_ENC) {
            size_t k = json_dumpb(rec, buf, sizeof buf - 1, REC_FLAGS);
            if (k == 0 || k >= sizeof buf)
                _exit(2);
            buf[k] = '\n';
            floor_append(&f, buf, k + 1, 1, 0);
        } else {
            floor_append(&f, line, len, 1, 0);
        }
    }
    if (use_resil) {
        /* close() fdatasyncs; the floor does not, so neither is timed with it:
         * the parent's clock stops when the children say they are done. */
        if (write(ready_w, &c, 1) != 1)
            _exit(2);
        resil_ndjson_writer_close(w);
    } else {
        if (write(ready_w, &c, 1) != 1)
            _exit(2);
        floor_close(&f);
    }
    _exit(0);
}

static double bench_procs(const char *root, int kind, int procs, long n, const json_t *rec,
                          const char *line, size_t len)
{
    int use_resil = kind == P_RESIL;
    char path[4200];
    PATHF(path, "%s/procs/%s_%dp.ndjson", root, p_names[kind], procs);
    char dir[4200];
    PATHF(dir, "%s/procs", root);
    mkdir_p(dir);
    unlink(path);
    int ready[2], go[2];
    if (pipe(ready) != 0 || pipe(go) != 0)
        die("pipe", errno);
    fflush(stdout);
    pid_t pids[64];
    for (int p = 0; p < procs; p++) {
        pids[p] = fork();
        if (pids[p] < 0)
            die("fork", errno);
        if (pids[p] == 0) {
            close(ready[0]);
            close(go[1]);
            child_append(path, kind, n, rec, line, len, ready[1], go[0]);
        }
    }
    close(ready[1]);
    close(go[0]);
    char c;
    for (int p = 0; p < procs; p++)
        if (read(ready[0], &c, 1) != 1)
            die("child not ready", EIO);
    int64_t t0 = now_ns();
    close(go[1]);
    for (int p = 0; p < procs; p++)
        if (read(ready[0], &c, 1) != 1)
            die("child failed", EIO);
    int64_t t1 = now_ns();
    close(ready[0]);
    int bad = 0;
    for (int p = 0; p < procs; p++) {
        int st;
        if (waitpid(pids[p], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad++;
    }
    size_t bytes = 0, lines = count_lines(path, &bytes);
    size_t want = (size_t)procs * (size_t)n;
    /* Every line is the record, whole: the log is want copies of it. */
    int ok = !bad && lines == want && bytes == want * len;
    if (ok) {
        char *buf = NULL;
        size_t blen = 0;
        resil_file_opts o = RESIL_FILE_OPTS_INIT;
        o.max_size = (size_t)1 << 30;
        ok = resil_read_file(&buf, &blen, path, &o, NULL) == 0;
        for (size_t off = 0; ok && off < blen; off += len)
            ok = memcmp(buf + off, line, len) == 0;
        free(buf);
    }
    printf("check ndjson_append_procs variant=%s procs=%d lines=%zu expected=%zu whole_records=%d "
           "ok=%d\n",
           p_names[kind], procs, lines, want, ok, ok);
    if (!ok)
        check_failures++;
    double secs = (double)(t1 - t0) / 1e9;
    double rps = (double)want / secs;
    printf("files op=ndjson_append_procs impl=%s variant=%s procs=%d records=%zu seconds=%.3f "
           "records_per_s=%.0f ns_per_record=%.0f\n",
           use_resil ? "resil" : "floor", p_names[kind], procs, want,
           secs, rps, 1e9 / rps);
    return rps;
}

/* ---- main ------------------------------------------------------------------------------- */

static long arg_long(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "bench_files: %s needs a value\n", argv[*i]);
        exit(2);
    }
    char *end;
    long v = strtol(argv[++*i], &end, 10);
    if (*end || v <= 0) {
        fprintf(stderr, "bench_files: bad value %s\n", argv[*i]);
        exit(2);
    }
    return v;
}

static const char *verdict(double ratio, double target)
{
    return ratio <= target ? "met" : "NOT met";
}

int main(int argc, char **argv)
{
    const char *q = getenv("BENCH_FILES_QUICK");
    int quick = q && *q && strcmp(q, "0") != 0;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
    long ops_mode[3] = {quick ? 200 : 2000, quick ? 300 : 2000, quick ? 2000 : 5000};
    long ops_append = quick ? 5000 : 20000, ops_append_sync = quick ? 300 : 2000;
    long records_procs = quick ? 20000 : 100000;
    int procs = 2;
    const char *root = "bench_files_tmp";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            continue;
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            root = argv[++i];
        else if (strcmp(argv[i], "--ops-full") == 0)
            ops_mode[RESIL_DURABLE_FULL] = arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--ops-file") == 0)
            ops_mode[RESIL_DURABLE_FILE] = arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--ops-none") == 0)
            ops_mode[RESIL_DURABLE_NONE] = arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--ops-append") == 0)
            ops_append = arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--ops-append-sync") == 0)
            ops_append_sync = arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--records-procs") == 0)
            records_procs = arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--procs") == 0)
            procs = (int)arg_long(argc, argv, &i);
        else {
            fprintf(stderr, "usage: bench_files [--quick] [--dir DIR] [--ops-full N] [--ops-file N] "
                            "[--ops-none N] [--ops-append N] [--ops-append-sync N] "
                            "[--records-procs N] [--procs P]\n");
            return 2;
        }
    }
    if (procs > 64)
        procs = 64;
    mkdir_p(root);
    setvbuf(stdout, NULL, _IOLBF, 0);

    json_t *doc = make_doc(), *rec = make_record();
    size_t doc_len, rec_len;
    char *doc_text = encode_doc(doc, &doc_len);
    char rec_line[512];
    rec_len = json_dumpb(rec, rec_line, sizeof rec_line - 1, REC_FLAGS);
    rec_line[rec_len++] = '\n';
    char p[4200];
    join(p, sizeof p, root, "doc.json");
    write_whole(p, doc_text, doc_len);
    join(p, sizeof p, root, "record.ndjson");
    write_whole(p, rec_line, rec_len);
    printf("setup dir=%s fs=%s quick=%d doc_bytes=%zu record_bytes=%zu\n", root, fs_name(root),
           quick, doc_len, rec_len);

    /* json_atomic_write_1k, per mode */
    atomic_result ar[3];
    for (int m = 0; m < 3; m++) {
        ar[m] = bench_atomic(root, (resil_durability)m, ops_mode[m], doc, doc_text, doc_len);
        for (int v = 0; v < A_COUNT; v++)
            print_row("json_atomic_write_1k", mode_names[m], v <= A_FLOOR_LOCK ? "floor" : "resil",
                      a_names[v], ar[m].p[v]);
        const pcts *r = ar[m].p;
        print_ratio("json_atomic_write_1k", mode_names[m], "write_file_atomic", "floor_lock",
                    r[A_RESIL_BYTES], r[A_FLOOR_LOCK]);
        print_ratio("json_atomic_write_1k", mode_names[m], "write_file_atomic", "floor_nolock",
                    r[A_RESIL_BYTES], r[A_FLOOR_NOLOCK]);
        print_ratio("json_atomic_write_1k", mode_names[m], "write_json_safe", "floor_lock",
                    r[A_RESIL_JSON], r[A_FLOOR_LOCK]);
        char cls[32];
        PATHF(cls, "atomic_%s", mode_names[m]);
        print_compare(cls, "write_file_atomic", r[A_RESIL_BYTES]);
    }

    /* ndjson_append_locked, without and with sync_each */
    append_result nr[2];
    for (int sync = 0; sync < 2; sync++) {
        nr[sync] = bench_append(root, sync, sync ? ops_append_sync : ops_append, rec, rec_line,
                                rec_len);
        const char *mode = sync ? "sync_each" : "nosync";
        for (int v = 0; v < N_COUNT; v++)
            print_row("ndjson_append_locked", mode, v <= N_FLOOR_LOCK_ENC ? "floor" : "resil",
                      n_names[v], nr[sync].p[v]);
        const pcts *r = nr[sync].p;
        print_ratio("ndjson_append_locked", mode, "writer_append", "floor_lock", r[N_RESIL],
                    r[N_FLOOR_LOCK]);
        print_ratio("ndjson_append_locked", mode, "writer_append", "floor_lock_encode",
                    r[N_RESIL], r[N_FLOOR_LOCK_ENC]);
        print_ratio("ndjson_append_locked", mode, "writer_append", "floor_nolock", r[N_RESIL],
                    r[N_FLOOR_NOLOCK]);
        print_ratio("ndjson_append_locked", mode, "writer_append_text", "floor_lock",
                    r[N_RESIL_TEXT], r[N_FLOOR_LOCK]);
        print_compare(sync ? "append_sync" : "append_nosync", "writer_append", r[N_RESIL]);
    }

    /* one process, then `procs` processes, on one log */
    double rps_resil_1 = bench_procs(root, P_RESIL, 1, records_procs, rec, rec_line, rec_len);
    double rps_floor_1 = bench_procs(root, P_FLOOR, 1, records_procs, rec, rec_line, rec_len);
    double rps_floore_1 = bench_procs(root, P_FLOOR_ENC, 1, records_procs, rec, rec_line, rec_len);
    double rps_resil_n = bench_procs(root, P_RESIL, procs, records_procs, rec, rec_line, rec_len);
    double rps_floor_n = bench_procs(root, P_FLOOR, procs, records_procs, rec, rec_line, rec_len);
    double rps_floore_n = bench_procs(root, P_FLOOR_ENC, procs, records_procs, rec, rec_line,
                                      rec_len);
    printf("bench ndjson_append_procs procs=%d records_per_proc=%ld resil_records_per_s=%.0f "
           "floor_lock_records_per_s=%.0f floor_lock_encode_records_per_s=%.0f "
           "resil_1p_records_per_s=%.0f floor_lock_1p_records_per_s=%.0f "
           "floor_lock_encode_1p_records_per_s=%.0f\n",
           procs, records_procs, rps_resil_n, rps_floor_n, rps_floore_n, rps_resil_1, rps_floor_1,
           rps_floore_1);

    /* verdicts, by p50 against the floor with the lock */
    for (int m = 0; m < 3; m++) {
        double rb = ar[m].p[A_RESIL_BYTES].p50 / ar[m].p[A_FLOOR_LOCK].p50;
        double rj = ar[m].p[A_RESIL_JSON].p50 /
                    (ar[m].p[A_FLOOR_LOCK].p50 + ar[m].p[A_ENCODE].p50);
        printf("verdict json_atomic_write_1k mode=%s target=1.1 write_file_atomic_p50_ratio=%.3f "
               "%s; write_json_safe_vs_floor_lock_plus_encode_p50_ratio=%.3f %s\n",
               mode_names[m], rb, verdict(rb, 1.1), rj, verdict(rj, 1.1));
    }
    for (int sync = 0; sync < 2; sync++) {
        double r = nr[sync].p[N_RESIL].p50 / nr[sync].p[N_FLOOR_LOCK].p50;
        double re = nr[sync].p[N_RESIL].p50 / nr[sync].p[N_FLOOR_LOCK_ENC].p50;
        double rt = nr[sync].p[N_RESIL_TEXT].p50 / nr[sync].p[N_FLOOR_LOCK].p50;
        printf("verdict ndjson_append_locked mode=%s target=1.2 vs_floor_lock_p50_ratio=%.3f %s; "
               "vs_floor_lock_encode_p50_ratio=%.3f %s; append_text_vs_floor_lock_p50_ratio=%.3f "
               "%s\n",
               sync ? "sync_each" : "nosync", r, verdict(r, 1.2), re, verdict(re, 1.2), rt,
               verdict(rt, 1.2));
    }
    free(doc_text);
    json_decref(doc);
    json_decref(rec);
    return check_failures ? 1 : 0;
}
