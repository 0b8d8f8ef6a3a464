/* src/metrics_dir.c - the metrics exporter that touches files: node_exporter
 * textfiles and metrics directories (flush and load), through the files
 * module.  See include/resil/metrics_dir.h.  It sits above the metrics
 * layer and the files module and reaches the registry only through
 * src/internal/metrics.h. */
#define _GNU_SOURCE
#include "resil/metrics_dir.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "resil/files.h"
#include "internal/metrics.h"
#include "internal/sys.h"
#include "internal/trust.h"

int resil_metrics_write_textfile(resil_metrics_registry *r, const char *dir, const char *name,
                                 resil_error *err)
{
    if (!r || !dir || !name || !*name || strchr(name, '/'))
        return resil_error_set(err, RESIL_EINVAL, "name",
                               "a registry, a directory and a file name without '/' are needed");
    char *text;
    size_t len;
    int rc = resil_metrics_export(&text, &len, r, RESIL_METRICS_PROMETHEUS);
    if (rc)
        return resil_error_set(err, rc, NULL, "out of memory");
    char *path;
    if (asprintf(&path, "%s/%s.prom", dir, name) < 0) {
        free(text);
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    }
    rc = resil_write_file_atomic(path, text, len, NULL, err);
    free(path);
    free(text);
    return rc;
}

/* ---- metrics directories ------------------------------------------------------------ */

/* RESIL_METRICS_DIR_SHARED: the opt-in of resil_metrics_flush_dir (and so
 * of `resil run --metrics-dir`) to a shared directory.  Returns 0 or
 * RESIL_EINVAL naming the bad value. */
static int env_dir_shared(bool *out, resil_error *err)
{
    *out = false;
    const char *v = getenv("RESIL_METRICS_DIR_SHARED");
    if (!v || !*v)
        return 0;
    if (resil__metrics_parse_bool(v, out) != 0)
        return resil_error_set(err, RESIL_EINVAL, "RESIL_METRICS_DIR_SHARED",
                               "RESIL_METRICS_DIR_SHARED='%.64s' is not a boolean (expected "
                               "1/0, true/false, yes/no or on/off)",
                               v);
    return 0;
}

/* Makes sure dir/name is a regular file (created with `mode` when missing),
 * never reached through a symlink, and, unless allow_shared, owned by the
 * caller. */
static int dir_file_check(int dfd, const char *dir, const char *name, mode_t mode,
                          bool allow_shared, resil_error *err)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = resil__sys.openat(
        dfd, name, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
        mode);
    if (fd < 0) {
        int e = errno;
        struct stat lst;
        /* (in a sticky directory the kernel may say EACCES for a link) */
        if (e == ELOOP ||
            (e == EACCES && resil__sys.fstatat(dfd, name, &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
             S_ISLNK(lst.st_mode)))
            return resil_error_set(err, -ELOOP, path,
                                   "refusing %s: it is a symbolic link (the files of a metrics "
                                   "directory are never reached through a link)",
                                   path);
        return resil_error_set(err, -e, path, "cannot open %s: %s", path, strerror(e));
    }
    struct stat st;
    int rc = 0;
    if (resil__sys.fstat(fd, &st) != 0)
        rc = resil_error_set(err, -errno, path, "cannot stat %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = resil_error_set(err, -EPERM, path, "refusing %s: it is not a regular file", path);
    else
        rc = resil__file_check_owner(path, &st, allow_shared, err);
    resil__sys.close(fd);
    return rc;
}

/* The directory of a flush: created (dir_mode) when missing, never a link
 * that another user planted, private unless allow_shared; its files
 * regular, the caller's and never links.  Returns 0 or an error. */
static int dir_prepare(const char *dir, const char *file, const resil_metrics_dir_opts *o,
                       resil_error *err)
{
    mode_t dmode = o->dir_mode ? (mode_t)o->dir_mode : 0700;
    mode_t fmode = o->file_mode ? (mode_t)o->file_mode : 0600;
    if (resil__sys.mkdir(dir, dmode) != 0 && errno != EEXIST)
        return resil_error_set(err, -errno, dir, "cannot create the metrics directory %s: %s", dir,
                               strerror(errno));
    struct stat lst, st;
    if (resil__sys.lstat(dir, &lst) != 0)
        return resil_error_set(err, -errno, dir, "cannot stat the metrics directory %s: %s", dir,
                               strerror(errno));
    if (S_ISLNK(lst.st_mode)) {
        int rc = resil__symlink_check(dir, &lst, err);
        if (rc)
            return rc;
    }
    int dfd = resil__sys.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (dfd < 0)
        return resil_error_set(err, -errno, dir, "cannot open the metrics directory %s: %s", dir,
                               strerror(errno));
    int rc = 0;
    if (resil__sys.fstat(dfd, &st) != 0)
        rc = resil_error_set(err, -errno, dir, "cannot stat the metrics directory %s: %s", dir,
                             strerror(errno));
    if (rc == 0) {
        rc = resil__dir_check_private(dir, &st, o->allow_shared, err);
        if (rc && err) { /* say how to opt in */
            char m[sizeof err->message];
            snprintf(m, sizeof m, "%s", err->message);
            resil_error_set(err, rc, dir,
                            "metrics directory: %s (RESIL_METRICS_DIR_SHARED=1, or "
                            "resil_metrics_dir_opts.allow_shared)",
                            m);
        }
    }
    char lock[300];
    snprintf(lock, sizeof lock, "%s.lock", file);
    if (rc == 0)
        rc = dir_file_check(dfd, dir, file, fmode, o->allow_shared, err);
    if (rc == 0)
        rc = dir_file_check(dfd, dir, lock, resil__lock_mode_for(fmode), o->allow_shared, err);
    resil__sys.close(dfd);
    return rc;
}

struct flush_ctx {
    const char *path;
    const resil_file_opts *fo;
    resil_error *err;
    bool called;
};

/* Appends one flush's record (under the registry's flush lock). */
static int flush_write(json_t *doc, void *arg)
{
    struct flush_ctx *x = arg;
    x->called = true;
    json_object_set_new(doc, "pid", json_integer(getpid()));
    json_object_set_new(doc, "ts", json_real((double)resil_clock_wall_ns(NULL) / 1e9));
    /* A failed append leaves the marks moved on: those counts are lost to
     * the directory (the caller was told), never written twice. */
    return resil_append_ndjson_safe(x->path, doc, x->fo, x->err);
}

int resil_metrics_flush_dir_opts(resil_metrics_registry *r, const char *dir,
                                 const resil_metrics_dir_opts *opts, resil_error *err)
{
    if (!r || !dir || !*dir)
        return resil_error_set(err, RESIL_EINVAL, "dir", "a registry and a directory are needed");
    resil_metrics_dir_opts o = RESIL_METRICS_DIR_OPTS_INIT;
    int rc = 0;
    if (opts)
        o = *opts;
    else if ((rc = env_dir_shared(&o.allow_shared, err)) != 0)
        return rc;
    rc = dir_prepare(dir, "metrics.ndjson", &o, err);
    if (rc)
        return rc;
    char *path;
    if (asprintf(&path, "%s/metrics.ndjson", dir) < 0)
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    resil_file_opts fo = RESIL_FILE_OPTS_INIT;
    fo.mode = o.file_mode ? o.file_mode : 0600;
    struct flush_ctx x = {path, &fo, err, false};
    rc = resil__metrics_flush_delta(r, flush_write, &x);
    if (rc == -ENOMEM && !x.called)
        resil_error_set(err, rc, NULL, "out of memory");
    free(path);
    return rc;
}

int resil_metrics_flush_dir(resil_metrics_registry *r, const char *dir, resil_error *err)
{
    return resil_metrics_flush_dir_opts(r, dir, NULL, err);
}

struct load_ctx {
    resil_metrics_registry *r;
    const char *path;
    resil_metrics_dir_stats *st;
    resil_error *err;
    int fatal;       /* out of memory: the read stops */
    size_t reported; /* bad lines the reader reported */
};

static void load_bad(struct load_ctx *x, size_t line, const char *what)
{
    if (x->st->bad_records++ == 0) {
        x->st->first_bad_line = line;
        snprintf(x->st->first_bad, sizeof x->st->first_bad, "%s:%zu: %s", x->path, line, what);
    }
}

static void load_bad_line(size_t line, const char *message, void *arg)
{
    char what[400];
    struct load_ctx *x = arg;
    snprintf(what, sizeof what, "not a JSON record (%.300s)", message ? message : "?");
    x->reported++;
    load_bad(x, line, what);
}

static int load_record(json_t *record, size_t line, void *arg)
{
    struct load_ctx *x = arg;
    resil_error e;
    resil_error_clear(&e);
    int rc = resil__metrics_merge_whole(x->r, record, &e);
    if (rc == -ENOMEM) {
        resil_error_set(x->err, rc, x->path, "%s:%zu: out of memory", x->path, line);
        if (x->err)
            x->err->line = (int)line;
        x->fatal = rc;
        return rc;
    }
    if (rc) {
        char what[560];
        snprintf(what, sizeof what, "not a metrics record (%.500s)",
                 e.message[0] ? e.message : resil_strerror(rc));
        load_bad(x, line, what);
        return 0;
    }
    x->st->records++;
    return 0;
}

int resil_metrics_load_dir_stats(resil_metrics_registry **out, const char *dir,
                                 resil_metrics_dir_stats *stats, resil_error *err)
{
    resil_metrics_dir_stats mine;
    resil_metrics_dir_stats *st = stats ? stats : &mine;
    memset(st, 0, sizeof *st);
    if (!out || !dir)
        return resil_error_set(err, RESIL_EINVAL, "dir", "a directory is needed");
    *out = NULL;
    char *path;
    if (asprintf(&path, "%s/metrics.ndjson", dir) < 0)
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    resil_metrics_registry *r = NULL;
    int rc = resil_metrics_registry_new(&r, NULL, err);
    if (rc) {
        free(path);
        return rc;
    }
    struct load_ctx x = {r, path, st, err, 0, 0};
    resil_ndjson_stats ns;
    memset(&ns, 0, sizeof ns);
    rc = resil_read_ndjson_safe(path, load_record, load_bad_line, &x, false, &ns, NULL, err);
    for (size_t k = x.reported; rc == 0 && k < ns.bad_lines; k++) /* not reported to us */
        load_bad(&x, ns.first_bad_line, "not a JSON record");
    if (rc == -ENOENT) {
        resil_error_set(err, rc, path, "no metrics in %s (%s is missing)", dir, path);
    } else if (rc && !x.fatal && err && !strstr(err->message, path)) {
        char m[sizeof err->message];
        snprintf(m, sizeof m, "%s", err->message);
        resil_error_set(err, rc, path, "%s: %s", path, m);
    }
    if (rc == 0 && st->bad_records > 0) {
        /* Said in the metrics too, where a scraper sees it. */
        resil_metric *m;
        resil_counter *c;
        if (resil_metrics_counter_new(&m, r, "resil_metrics_dir_bad_records_total",
                                      "Records of the metrics directory skipped: not JSON, not "
                                      "a metrics record, or in conflict with earlier records.",
                                      NULL, 0, NULL) == 0 &&
            resil_counter_get(&c, m, NULL) == 0)
            resil_counter_add(c, (double)st->bad_records);
    }
    free(path);
    if (rc) {
        resil_metrics_registry_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int resil_metrics_load_dir(resil_metrics_registry **out, const char *dir, resil_error *err)
{
    return resil_metrics_load_dir_stats(out, dir, NULL, err);
}
