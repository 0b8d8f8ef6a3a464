/* Metrics: registration and name rules, handles, counters, gauges and
 * histograms, the cardinality cap, the three export formats (against golden
 * files in tests/data/metrics/, written by hand from the Prometheus text
 * format 0.0.4 and OpenMetrics 1.0 specifications), promtool and other
 * independent parsers, threads, forked processes summed through a metrics
 * directory, JSON snapshots, the environment, and the original module's
 * interface (resil_record_*, the summary, the timer).
 *
 * Children never call cmocka: they check with CK() and report through their
 * exit status.  Tests whose subject is "read once per process" re-execute
 * this binary (/proc/self/exe --child MODE) with the environment set, so
 * nothing the parent already read leaks into them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "resil/clock.h"
#include "resil/metrics.h"
#include "resil/metrics_dir.h"
#include "resil/breaker.h"
#include "resil/files.h"
#include "resil/retry.h"

#define S_NS 1000000000LL
#define LEN(a) (sizeof(a) / sizeof((a)[0]))

/* In children: a failed check exits with the line number (mod 200, +20). */
#define CK(c)                                                                          \
    do {                                                                               \
        if (!(c)) {                                                                    \
            fprintf(stderr, "child check failed at %s:%d: %s\n", __FILE__, __LINE__, \
                    #c);                                                               \
            _exit(20 + __LINE__ % 200);                                                \
        }                                                                              \
    } while (0)

/* ---- helpers ---------------------------------------------------------------------- */

static const char *tmpbase(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

/* Temp dirs made so far: removed at the end even when a test failed. */
static char made_dirs[64][256];
static int nmade;

static void make_tmpdir(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "%s/resil-mt-%s-XXXXXX", tmpbase(), tag);
    assert_non_null(mkdtemp(buf));
    if (nmade < 64)
        snprintf(made_dirs[nmade++], sizeof made_dirs[0], "%s", buf);
}

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* tests/data/metrics/<name>, found from this file's path (CMake compiles
 * sources by absolute path). */
static void data_path(char *buf, size_t n, const char *name)
{
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    int dirlen = slash ? (int)(slash - file) : 1;
    snprintf(buf, n, "%.*s/../data/metrics/%s", dirlen, slash ? file : ".", name);
}

/* Reads a whole file into a new NUL-terminated buffer; NULL if it cannot. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (n + 1024 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static void spit(const char *path, const char *text, const char *mode)
{
    FILE *f = fopen(path, mode);
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

/* Compares text with a golden file; on a difference prints the first line
 * that differs, both whole texts, and fails. */
static void assert_golden(const char *got, const char *golden_name)
{
    char path[1024];
    data_path(path, sizeof path, golden_name);
    char *want = slurp(path, NULL);
    if (!want)
        fail_msg("cannot read golden file %s: %s", path, strerror(errno));
    if (strcmp(got, want) != 0) {
        const char *a = got, *b = want;
        int line = 1;
        while (*a && *a == *b) {
            if (*a == '\n')
                line++;
            a++;
            b++;
        }
        while (a > got && a[-1] != '\n') {
            a--;
            b--;
        }
        int la = (int)strcspn(a, "\n"), lb = (int)strcspn(b, "\n");
        char gotpath[512];
        snprintf(gotpath, sizeof gotpath, "%s/%s.got", tmpbase(), golden_name);
        FILE *f = fopen(gotpath, "w");
        if (f) {
            fputs(got, f);
            fclose(f);
        }
        print_error("golden %s differs at line %d:\n  got:  %.*s\n  want: %.*s\n"
                    "(the whole export is in %s: diff -u %s %s)\n",
                    golden_name, line, la, a, lb, b, gotpath, path, gotpath);
        free(want);
        fail_msg("export differs from %s", golden_name);
    }
    free(want);
}

/* The value of the sample line that starts with exactly `series` followed by
 * a space ("name{labels}"); NAN when there is no such line.  *found counts
 * the matching lines (may be NULL). */
static double sample(const char *text, const char *series, int *found)
{
    size_t n = strlen(series);
    double v = NAN;
    int hits = 0;
    for (const char *p = text; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            v = strtod(p + n + 1, NULL);
            hits++;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    if (found)
        *found = hits;
    return v;
}

static int count_lines_starting(const char *text, const char *prefix)
{
    int hits = 0;
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, prefix, n) == 0)
            hits++;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return hits;
}

static char *export_fmt(resil_metrics_registry *r, resil_metrics_format f)
{
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(resil_metrics_export(&out, &len, r, f), 0);
    assert_non_null(out);
    assert_int_equal(strlen(out), len);
    return out;
}

static resil_metrics_registry *new_registry(size_t max_series)
{
    resil_metrics_opts o = RESIL_METRICS_OPTS_INIT;
    o.max_series = max_series;
    resil_metrics_registry *r = NULL;
    resil_error err;
    assert_int_equal(resil_metrics_registry_new(&r, &o, &err), 0);
    assert_non_null(r);
    return r;
}

static resil_counter *counter_of(resil_metrics_registry *r, const char *name, const char *help,
                                 const char *const *labels, size_t nlabels,
                                 const char *const *values)
{
    resil_metric *m = NULL;
    resil_counter *c = NULL;
    resil_error err;
    int rc = resil_metrics_counter_new(&m, r, name, help, labels, nlabels, &err);
    if (rc != 0)
        fail_msg("counter_new(%s): %s (%s)", name, resil_err_name(rc), err.message);
    assert_int_equal(resil_counter_get(&c, m, values), 0);
    return c;
}

/* Runs argv with stdin from `in` (NULL: /dev/null), stdout and stderr into
 * *out (malloc'd); returns the raw wait status. */
static int run_capture(char *const argv[], const char *in, char **out)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(in ? in : "/dev/null", O_RDONLY);
        if (fd < 0 || dup2(fd, 0) < 0 || dup2(pfd[1], 1) < 0 || dup2(pfd[1], 2) < 0)
            _exit(126);
        close(pfd[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (n + 1024 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t got = read(pfd[0], buf + n, cap - n - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    buf[n] = '\0';
    close(pfd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        assert_int_equal(errno, EINTR);
    *out = buf;
    return st;
}

/* Re-executes this binary as "--child MODE" with NAME=VALUE set (value NULL:
 * unset); returns the wait status and the child's stderr in *err_out. */
static int run_child(const char *mode, const char *name, const char *value,
                     const char *name2, const char *value2, char **err_out)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        unsetenv("RESIL_METRICS_ENABLED");
        unsetenv("RESIL_METRICS_MAX_ENTRIES");
        if (name && value)
            setenv(name, value, 1);
        if (name2 && value2)
            setenv(name2, value2, 1);
        if (dup2(pfd[1], 2) < 0)
            _exit(126);
        close(pfd[0]);
        execl("/proc/self/exe", "test_metrics", "--child", mode, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    char *buf = malloc(65536);
    assert_non_null(buf);
    size_t n = 0;
    for (;;) {
        ssize_t got = read(pfd[0], buf + n, 65535 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    buf[n] = '\0';
    close(pfd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        assert_int_equal(errno, EINTR);
    if (err_out)
        *err_out = buf;
    else
        free(buf);
    return st;
}

static void assert_exit0(int st, const char *what, const char *stderr_text)
{
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("%s: child %s %d; stderr:\n%s", what,
                 WIFEXITED(st) ? "exited" : "killed by signal",
                 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), stderr_text ? stderr_text : "");
}

/* ---- registration: names and labels -------------------------------------------- */

static void expect_bad_counter(resil_metrics_registry *r, const char *name,
                               const char *const *labels, size_t nlabels, const char *bad)
{
    resil_metric *m = NULL;
    resil_error err;
    memset(&err, 0, sizeof err);
    int rc = resil_metrics_counter_new(&m, r, name, "h", labels, nlabels, &err);
    if (rc != RESIL_EINVAL)
        fail_msg("counter_new(\"%s\") with bad \"%s\": got %s, want RESIL_EINVAL", name, bad,
                 resil_err_name(rc));
    assert_int_equal(err.code, RESIL_EINVAL);
    assert_true(err.message[0] != '\0');
    if (*bad && !strstr(err.path, bad))
        fail_msg("err.path \"%s\" does not name \"%s\" (message: %s)", err.path, bad,
                 err.message);
}

static void test_metric_names(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    const char *good[] = {"a", "_a", ":a", "a:b_c9", "Az_09:", "ns:sub_system_total"};
    for (size_t i = 0; i < LEN(good); i++) {
        resil_metric *m = NULL;
        resil_error err;
        int rc = resil_metrics_counter_new(&m, r, good[i], "h", NULL, 0, &err);
        if (rc != 0)
            fail_msg("good name \"%s\" refused: %s", good[i], err.message);
        assert_non_null(m);
    }
    const char *bad[] = {"1x", "a-b", "", "a b", "a.b", "9", "caf\xc3\xa9", "a{b}"};
    for (size_t i = 0; i < LEN(bad); i++)
        expect_bad_counter(r, bad[i], NULL, 0, bad[i]);
    /* The same rules for gauges and histograms. */
    resil_metric *m = NULL;
    resil_error err;
    assert_int_equal(resil_metrics_gauge_new(&m, r, "1x", "h", NULL, 0, &err), RESIL_EINVAL);
    assert_non_null(strstr(err.path, "1x"));
    assert_int_equal(resil_metrics_histogram_new(&m, r, "a-b", "h", NULL, 0, NULL, 0, &err),
                     RESIL_EINVAL);
    assert_non_null(strstr(err.path, "a-b"));
    assert_int_equal(resil_metrics_counter_new(&m, r, NULL, "h", NULL, 0, &err), RESIL_EINVAL);
    /* Nothing of the refused names reached the export. */
    char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    assert_null(strstr(text, "a-b"));
    assert_null(strstr(text, "1x"));
    free(text);
    resil_metrics_registry_free(r);
}

static void test_label_names(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    const char *one_bad[][2] = {
        {"__x", "__x"}, {"1a", "1a"}, {"a-b", "a-b"}, {"a:b", "a:b"}, {"", ""},
        {"__name__", "__name__"},
    };
    for (size_t i = 0; i < LEN(one_bad); i++) {
        const char *labels[] = {"ok", one_bad[i][0]};
        char name[32];
        snprintf(name, sizeof name, "lbl_bad_%zu", i);
        expect_bad_counter(r, name, labels, 2, one_bad[i][1]);
    }
    /* Duplicate label names. */
    const char *dup[] = {"a", "b", "a"};
    expect_bad_counter(r, "lbl_dup", dup, 3, "a");
    /* labels NULL with nlabels > 0; a NULL label name. */
    resil_metric *m = NULL;
    resil_error err;
    assert_int_equal(resil_metrics_counter_new(&m, r, "lbl_null", "h", NULL, 2, &err),
                     RESIL_EINVAL);
    const char *with_null[] = {"a", NULL};
    assert_int_equal(resil_metrics_counter_new(&m, r, "lbl_null2", "h", with_null, 2, &err),
                     RESIL_EINVAL);
    /* "le" is the histogram's own label. */
    const char *le[] = {"op", "le"};
    memset(&err, 0, sizeof err);
    assert_int_equal(resil_metrics_histogram_new(&m, r, "lbl_le", "h", le, 2, NULL, 0, &err),
                     RESIL_EINVAL);
    assert_non_null(strstr(err.path, "le"));
    /* Good label names: leading single underscore, digits after the first. */
    const char *good[] = {"_x", "a1", "A_b_9", "x__y"};
    assert_int_equal(resil_metrics_counter_new(&m, r, "lbl_good", "h", good, 4, &err), 0);
    resil_metrics_registry_free(r);
}

static void test_reregistration(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    const char *ab[] = {"a", "b"};
    const char *ba[] = {"b", "a"};
    const char *a[] = {"a"};
    resil_metric *m1 = NULL, *m2 = NULL, *m3 = NULL;
    resil_error err;
    assert_int_equal(resil_metrics_counter_new(&m1, r, "re_c", "Help.", ab, 2, &err), 0);
    assert_int_equal(resil_metrics_counter_new(&m2, r, "re_c", "Help.", ab, 2, &err), 0);
    assert_ptr_equal(m1, m2);

    /* A conflict names the metric. */
    memset(&err, 0, sizeof err);
    assert_int_equal(resil_metrics_gauge_new(&m3, r, "re_c", "Help.", ab, 2, &err), RESIL_EINVAL);
    assert_true(strstr(err.path, "re_c") || strstr(err.message, "re_c"));
    assert_int_equal(resil_metrics_histogram_new(&m3, r, "re_c", "Help.", ab, 2, NULL, 0, &err),
                     RESIL_EINVAL);
    assert_int_equal(resil_metrics_counter_new(&m3, r, "re_c", "Help.", a, 1, &err), RESIL_EINVAL);
    assert_int_equal(resil_metrics_counter_new(&m3, r, "re_c", "Help.", ba, 2, &err),
                     RESIL_EINVAL);
    assert_int_equal(resil_metrics_counter_new(&m3, r, "re_c", "Help.", NULL, 0, &err),
                     RESIL_EINVAL);

    /* A counter named with and without "_total" is one family. */
    assert_int_equal(resil_metrics_counter_new(&m1, r, "re_t_total", "T.", NULL, 0, &err), 0);
    assert_int_equal(resil_metrics_counter_new(&m2, r, "re_t", "T.", NULL, 0, &err), 0);
    assert_ptr_equal(m1, m2);

    /* Gauges and histograms are idempotent too. */
    const double b[] = {1, 2};
    assert_int_equal(resil_metrics_gauge_new(&m1, r, "re_g", "G.", a, 1, &err), 0);
    assert_int_equal(resil_metrics_gauge_new(&m2, r, "re_g", "G.", a, 1, &err), 0);
    assert_ptr_equal(m1, m2);
    assert_int_equal(resil_metrics_counter_new(&m3, r, "re_g", "G.", a, 1, &err), RESIL_EINVAL);
    assert_int_equal(resil_metrics_histogram_new(&m1, r, "re_h", "H.", a, 1, b, 2, &err), 0);
    assert_int_equal(resil_metrics_histogram_new(&m2, r, "re_h", "H.", a, 1, b, 2, &err), 0);
    assert_ptr_equal(m1, m2);
    assert_int_equal(resil_metrics_gauge_new(&m3, r, "re_h", "H.", a, 1, &err), RESIL_EINVAL);

    /* The family is exported once. */
    resil_counter *c;
    const char *v[] = {"1", "2"};
    assert_int_equal(resil_metrics_counter_new(&m1, r, "re_c", "Help.", ab, 2, &err), 0);
    assert_int_equal(resil_counter_get(&c, m1, v), 0);
    resil_counter_inc(c);
    char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    assert_int_equal(count_lines_starting(text, "# TYPE re_c_total counter"), 1);
    assert_int_equal(count_lines_starting(text, "# TYPE re_g gauge"), 1);
    assert_int_equal(count_lines_starting(text, "# TYPE re_h histogram"), 1);
    assert_int_equal(count_lines_starting(text, "# TYPE re_t_total counter"), 1);
    free(text);
    resil_metrics_registry_free(r);
}

static void test_histogram_buckets_invalid(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    struct {
        double b[4];
        size_t n;
    } bad[] = {
        {{1, 1}, 2},          {{2, 1}, 2},       {{1, NAN, 3}, 3}, {{1, INFINITY}, 2},
        {{-INFINITY, 0}, 2}, {{NAN}, 1},         {{0, 1, 0.5}, 3},
    };
    for (size_t i = 0; i < LEN(bad); i++) {
        resil_metric *m = NULL;
        resil_error err;
        char name[32];
        snprintf(name, sizeof name, "hb_bad_%zu", i);
        int rc = resil_metrics_histogram_new(&m, r, name, "h", NULL, 0, bad[i].b, bad[i].n, &err);
        if (rc != RESIL_EINVAL)
            fail_msg("buckets case %zu accepted (%s)", i, resil_err_name(rc));
    }
    /* At most 64 finite bounds. */
    double many[65];
    for (int i = 0; i < 65; i++)
        many[i] = i + 1;
    resil_metric *m = NULL;
    resil_error err;
    assert_int_equal(resil_metrics_histogram_new(&m, r, "hb_64", "h", NULL, 0, many, 64, &err), 0);
    assert_int_equal(resil_metrics_histogram_new(&m, r, "hb_65", "h", NULL, 0, many, 65, &err),
                     RESIL_EINVAL);
    /* Negative bounds are fine when increasing. */
    const double neg[] = {-5, -1, 0, 1};
    assert_int_equal(resil_metrics_histogram_new(&m, r, "hb_neg", "h", NULL, 0, neg, 4, &err), 0);
    resil_metrics_registry_free(r);
}

/* Parses the _bucket lines of `name` (no other labels) into les/counts. */
static int buckets_of(const char *text, const char *name, double *les, double *counts, int max)
{
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s_bucket{le=\"", name);
    size_t n = strlen(prefix);
    int k = 0;
    for (const char *p = text; p && *p;) {
        if (strncmp(p, prefix, n) == 0 && k < max) {
            char *end;
            les[k] = strtod(p + n, &end);
            assert_true(end[0] == '"' && end[1] == '}' && end[2] == ' ');
            counts[k] = strtod(end + 3, NULL);
            k++;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return k;
}

static void test_default_buckets(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    resil_metric *m = NULL;
    resil_histogram *h = NULL;
    resil_error err;
    assert_int_equal(resil_metrics_histogram_new(&m, r, "hd_seconds", "h", NULL, 0, NULL, 0, &err),
                     0);
    assert_int_equal(resil_histogram_get(&h, m, NULL), 0);
    resil_histogram_observe(h, 0.005); /* on the first bound */
    resil_histogram_observe(h, 7);     /* in le=10 */
    resil_histogram_observe(h, 11);    /* only +Inf */
    char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    const double want[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, INFINITY};
    double les[32], counts[32];
    int k = buckets_of(text, "hd_seconds", les, counts, 32);
    assert_int_equal(k, (int)LEN(want));
    for (int i = 0; i < k; i++) {
        assert_true(les[i] == want[i]);
        double expect = i < 10 ? 1 : i == 10 ? 2 : 3;
        if (counts[i] != expect)
            fail_msg("le=%g: %g, want %g\n%s", les[i], counts[i], expect, text);
    }
    assert_true(sample(text, "hd_seconds_count", NULL) == 3);
    assert_true(sample(text, "hd_seconds_sum", NULL) == 18.005);
    free(text);
    resil_metrics_registry_free(r);
}

/* ---- handles and values ------------------------------------------------------------ */

static void test_handles(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    const char *ab[] = {"a", "b"};
    resil_metric *mc, *mg, *mh, *m0;
    resil_error err;
    assert_int_equal(resil_metrics_counter_new(&mc, r, "hd_c", "h", ab, 2, &err), 0);
    assert_int_equal(resil_metrics_gauge_new(&mg, r, "hd_g", "h", ab, 2, &err), 0);
    assert_int_equal(resil_metrics_histogram_new(&mh, r, "hd_h", "h", ab, 2, NULL, 0, &err), 0);
    assert_int_equal(resil_metrics_counter_new(&m0, r, "hd_0", "h", NULL, 0, &err), 0);

    /* Same values (other buffers) -> same handle; other values -> another. */
    char x1[] = "x", y1[] = "y", x2[] = "x", y2[] = "y";
    const char *v1[] = {x1, y1}, *v2[] = {x2, y2}, *v3[] = {"y", "x"}, *v4[] = {"x", ""};
    resil_counter *c1, *c2, *c3, *c4;
    assert_int_equal(resil_counter_get(&c1, mc, v1), 0);
    assert_int_equal(resil_counter_get(&c2, mc, v2), 0);
    assert_int_equal(resil_counter_get(&c3, mc, v3), 0);
    assert_int_equal(resil_counter_get(&c4, mc, v4), 0);
    assert_ptr_equal(c1, c2);
    assert_ptr_not_equal(c1, c3);
    assert_ptr_not_equal(c1, c4);
    /* Label values are copied. */
    x1[0] = 'q';
    assert_int_equal(resil_counter_get(&c2, mc, v2), 0);
    assert_ptr_equal(c1, c2);
    /* "x","yz" and "xy","z" are different children. */
    const char *s1[] = {"x", "yz"}, *s2[] = {"xy", "z"};
    assert_int_equal(resil_counter_get(&c1, mc, s1), 0);
    assert_int_equal(resil_counter_get(&c2, mc, s2), 0);
    assert_ptr_not_equal(c1, c2);

    resil_gauge *g1, *g2;
    assert_int_equal(resil_gauge_get(&g1, mg, v2), 0);
    assert_int_equal(resil_gauge_get(&g2, mg, v2), 0);
    assert_ptr_equal(g1, g2);
    resil_histogram *h1, *h2;
    assert_int_equal(resil_histogram_get(&h1, mh, v2), 0);
    assert_int_equal(resil_histogram_get(&h2, mh, v2), 0);
    assert_ptr_equal(h1, h2);

    /* A family of another type; values NULL while labels exist. */
    assert_int_equal(resil_gauge_get(&g1, mc, v2), RESIL_EINVAL);
    assert_int_equal(resil_histogram_get(&h1, mg, v2), RESIL_EINVAL);
    assert_int_equal(resil_counter_get(&c1, mh, v2), RESIL_EINVAL);
    assert_int_equal(resil_counter_get(&c1, mc, NULL), RESIL_EINVAL);
    /* No labels: values NULL is fine. */
    assert_int_equal(resil_counter_get(&c1, m0, NULL), 0);
    assert_int_equal(resil_counter_get(&c2, m0, NULL), 0);
    assert_ptr_equal(c1, c2);
    resil_metrics_registry_free(r);
}

static void test_counter_gauge_values(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    resil_counter *c = counter_of(r, "val_c", "h", NULL, 0, NULL);
    assert_true(resil_counter_value(c) == 0);
    resil_counter_inc(c);
    resil_counter_inc(c);
    resil_counter_add(c, 0.5);
    resil_counter_add(c, -1);   /* ignored */
    resil_counter_add(c, NAN);  /* ignored */
    resil_counter_add(c, -0.0); /* nothing */
    resil_counter_add(c, 0);
    assert_true(resil_counter_value(c) == 2.5);
    resil_counter_add(c, 1e6);
    assert_true(resil_counter_value(c) == 1000002.5);

    resil_metric *mg;
    resil_gauge *g;
    resil_error err;
    assert_int_equal(resil_metrics_gauge_new(&mg, r, "val_g", "h", NULL, 0, &err), 0);
    assert_int_equal(resil_gauge_get(&g, mg, NULL), 0);
    assert_true(resil_gauge_value(g) == 0);
    resil_gauge_set(g, 10);
    resil_gauge_add(g, -2.5);
    assert_true(resil_gauge_value(g) == 7.5);
    resil_gauge_add(g, 0.25);
    assert_true(resil_gauge_value(g) == 7.75);
    resil_gauge_set(g, -3);
    assert_true(resil_gauge_value(g) == -3);
    resil_gauge_add(g, 4);
    assert_true(resil_gauge_value(g) == 1);

    char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    assert_true(sample(text, "val_c_total", NULL) == 1000002.5);
    assert_true(sample(text, "val_g", NULL) == 1);
    free(text);

    resil_gauge_set(g, NAN);
    assert_true(isnan(resil_gauge_value(g)));
    resil_gauge_set(g, -INFINITY);
    assert_true(resil_gauge_value(g) == -INFINITY);
    resil_metrics_registry_free(r);
}

static void test_histogram_le(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    const double b[] = {1, 2, 5};
    resil_metric *m;
    resil_histogram *h;
    resil_error err;
    assert_int_equal(resil_metrics_histogram_new(&m, r, "le_h", "h", NULL, 0, b, 3, &err), 0);
    assert_int_equal(resil_histogram_get(&h, m, NULL), 0);
    assert_int_equal(resil_histogram_count(h), 0);
    assert_true(resil_histogram_sum(h) == 0);
    const double obs[] = {0.5, 1, 1.5, 2, 5, 5.5, -3, 1.0000000000000002};
    for (size_t i = 0; i < LEN(obs); i++)
        resil_histogram_observe(h, obs[i]);
    resil_histogram_observe(h, NAN); /* ignored */
    assert_int_equal(resil_histogram_count(h), LEN(obs));
    double sum = 0;
    for (size_t i = 0; i < LEN(obs); i++)
        sum += obs[i];
    assert_true(fabs(resil_histogram_sum(h) - sum) < 1e-12);

    char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    double les[8], counts[8];
    int k = buckets_of(text, "le_h", les, counts, 8);
    assert_int_equal(k, 4);
    /* le=1: 0.5, 1, -3; le=2: + 1.5, 2, 1.0000000000000002; le=5: + 5; +Inf: + 5.5 */
    const double want_le[] = {1, 2, 5, INFINITY}, want[] = {3, 6, 7, 8};
    for (int i = 0; i < 4; i++) {
        assert_true(les[i] == want_le[i]);
        if (counts[i] != want[i])
            fail_msg("le=%g: %g, want %g\n%s", les[i], counts[i], want[i], text);
    }
    assert_true(sample(text, "le_h_count", NULL) == 8);
    assert_true(fabs(sample(text, "le_h_sum", NULL) - sum) < 1e-9);
    /* _count and _sum after the buckets (neither format fixes their order). */
    const char *inf = strstr(text, "le_h_bucket{le=\"+Inf\"}");
    const char *s = strstr(text, "le_h_sum");
    const char *c = strstr(text, "le_h_count");
    assert_true(inf && s && c && inf < s && inf < c);
    free(text);
    resil_metrics_registry_free(r);
}

/* Values at the edges through the inline observe: -Inf, -0, the smallest
 * denormal, exactly a bound, the largest double and +Inf, with an odd and an
 * even number of bounds (the bounds are padded with +Inf to an even count
 * and compared two at a time), and NaN, which is not observed. */
static void test_histogram_extreme_values(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    const double b3[] = {-1, 0, 1}, b2[] = {0, 1}, b1[] = {0};
    const double *bs[] = {b3, b2, b1};
    const size_t nbs[] = {3, 2, 1};
    const double vals[] = {-INFINITY, -1e308, -1, -0.0, 4.9e-324, 1, 1e308, INFINITY, NAN};
    for (int k = 0; k < 3; k++) {
        char name[32];
        snprintf(name, sizeof name, "edge_h%d", k);
        resil_metric *m;
        resil_histogram *h;
        resil_error err;
        assert_int_equal(
            resil_metrics_histogram_new(&m, r, name, "h", NULL, 0, bs[k], nbs[k], &err), 0);
        assert_int_equal(resil_histogram_get(&h, m, NULL), 0);
        for (size_t i = 0; i < LEN(vals); i++)
            resil_histogram_observe(h, vals[i]);
        assert_int_equal(resil_histogram_count(h), LEN(vals) - 1); /* not the NaN */
        /* cumulative: how many values are <= each bound, then all 8 */
        char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
        double les[8], counts[8];
        size_t nb = nbs[k];
        assert_int_equal(buckets_of(text, name, les, counts, 8), (int)nb + 1);
        for (size_t j = 0; j < nb; j++) {
            double want = 0;
            for (size_t i = 0; i + 1 < LEN(vals); i++)
                want += vals[i] <= bs[k][j];
            if (counts[j] != want)
                fail_msg("%s le=%g: %g, want %g\n%s", name, bs[k][j], counts[j], want, text);
        }
        assert_true(counts[nb] == 8);
        free(text);
    }
    resil_metrics_registry_free(r);
}

/* ---- cardinality cap ------------------------------------------------------------------ */

static void test_cardinality_cap(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(3);
    const char *k[] = {"k"};
    resil_metric *m;
    resil_error err;
    assert_int_equal(resil_metrics_counter_new(&m, r, "capped", "Capped.", k, 1, &err), 0);
    resil_counter *c[6];
    const char *vals[] = {"a", "b", "c", "d", "e", "f"};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(resil_counter_get(&c[i], m, (const char *const[]){vals[i]}), 0);
        resil_counter_inc(c[i]);
    }
    assert_ptr_not_equal(c[0], c[1]);
    assert_ptr_not_equal(c[1], c[2]);
    assert_ptr_not_equal(c[2], c[3]);
    assert_ptr_equal(c[3], c[4]);
    assert_ptr_equal(c[4], c[5]);
    /* Existing children are still found past the cap. */
    resil_counter *again;
    assert_int_equal(resil_counter_get(&again, m, (const char *const[]){"b"}), 0);
    assert_ptr_equal(again, c[1]);
    assert_true(resil_counter_value(c[3]) == 3);

    /* A histogram with two labels: every label value of the overflow child is
     * "_overflow". */
    const char *ab[] = {"a", "b"};
    resil_metric *mh;
    resil_histogram *h;
    const double bk[] = {1};
    assert_int_equal(resil_metrics_histogram_new(&mh, r, "capped_h", "H.", ab, 2, bk, 1, &err), 0);
    for (int i = 0; i < 5; i++) {
        char v[8];
        snprintf(v, sizeof v, "v%d", i);
        assert_int_equal(resil_histogram_get(&h, mh, (const char *const[]){v, "w"}), 0);
        resil_histogram_observe(h, 0.5);
    }

    char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    int n;
    assert_true(sample(text, "capped_total{k=\"a\"}", NULL) == 1);
    assert_true(sample(text, "capped_total{k=\"c\"}", NULL) == 1);
    assert_true(sample(text, "capped_total{k=\"_overflow\"}", &n) == 3);
    assert_int_equal(n, 1);
    assert_null(strstr(text, "k=\"d\""));
    assert_null(strstr(text, "k=\"f\""));
    assert_int_equal(count_lines_starting(text, "capped_total{"), 4);
    assert_true(sample(text, "capped_h_count{a=\"_overflow\",b=\"_overflow\"}", NULL) == 2);
    assert_null(strstr(text, "v3"));
    /* The overflow counter: one per label combination turned away. */
    double ov = sample(text, "resil_metrics_cardinality_overflow_total{metric=\"capped\"}", NULL);
    if (ov != 3)
        fail_msg("overflow count for capped: %g, want 3\n%s", ov, text);
    assert_true(sample(text, "resil_metrics_cardinality_overflow_total{metric=\"capped_h\"}",
                       NULL) == 2);
    assert_int_equal(count_lines_starting(
                         text, "# TYPE resil_metrics_cardinality_overflow_total counter"),
                     1);
    free(text);
    resil_metrics_registry_free(r);
}


/* At most 32 label names per family. */
static void test_label_count(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    char names[33][8];
    const char *labels[33];
    for (int i = 0; i < 33; i++) {
        snprintf(names[i], sizeof names[i], "l%d", i);
        labels[i] = names[i];
    }
    resil_metric *m;
    resil_error err;
    assert_int_equal(resil_metrics_counter_new(&m, r, "lc_32", "h", labels, 32, &err), 0);
    resil_counter *c;
    assert_int_equal(resil_counter_get(&c, m, labels), 0);
    resil_counter_inc(c);
    assert_int_equal(resil_metrics_counter_new(&m, r, "lc_33", "h", labels, 33, &err),
                     RESIL_EINVAL);
    assert_int_equal(resil_metrics_histogram_new(&m, r, "lc_33h", "h", labels, 33, NULL, 0, &err),
                     RESIL_EINVAL);
    char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    assert_non_null(strstr(text, "l31=\"l31\"} 1\n"));
    assert_null(strstr(text, "lc_33"));
    free(text);
    resil_metrics_registry_free(r);
}

/* Two families whose exported sample names would be the same make an
 * exposition that no parser accepts ("second TYPE line for x_total"):
 * refused at registration, in either order. */
static void test_exported_name_collisions(void **state)
{
    (void)state;
    struct {
        resil_metric_type first;
        const char *a;
        resil_metric_type second;
        const char *b;
    } cases[] = {
        {RESIL_METRIC_COUNTER, "col_x", RESIL_METRIC_GAUGE, "col_x_total"},
        {RESIL_METRIC_GAUGE, "col_y_total", RESIL_METRIC_COUNTER, "col_y"},
        {RESIL_METRIC_GAUGE, "col_z_total", RESIL_METRIC_COUNTER, "col_z_total"},
        {RESIL_METRIC_HISTOGRAM, "col_h", RESIL_METRIC_GAUGE, "col_h_count"},
        {RESIL_METRIC_HISTOGRAM, "col_i", RESIL_METRIC_GAUGE, "col_i_sum"},
        {RESIL_METRIC_HISTOGRAM, "col_j", RESIL_METRIC_COUNTER, "col_j_bucket"},
        {RESIL_METRIC_GAUGE, "col_k_count", RESIL_METRIC_HISTOGRAM, "col_k"},
        {RESIL_METRIC_COUNTER, "col_l_bucket", RESIL_METRIC_HISTOGRAM, "col_l"},
    };
    int failures = 0;
    for (size_t i = 0; i < LEN(cases); i++) {
        resil_metrics_registry *r = new_registry(0);
        resil_metric *m;
        resil_error err;
        const char *names[] = {cases[i].a, cases[i].b};
        resil_metric_type types[] = {cases[i].first, cases[i].second};
        int rc[2];
        for (int k = 0; k < 2; k++) {
            rc[k] = types[k] == RESIL_METRIC_COUNTER
                        ? resil_metrics_counter_new(&m, r, names[k], "h", NULL, 0, &err)
                    : types[k] == RESIL_METRIC_GAUGE
                        ? resil_metrics_gauge_new(&m, r, names[k], "h", NULL, 0, &err)
                        : resil_metrics_histogram_new(&m, r, names[k], "h", NULL, 0, NULL, 0,
                                                      &err);
        }
        assert_int_equal(rc[0], 0);
        if (rc[1] != RESIL_EINVAL) {
            char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
            print_error("%s then %s: second registration returned %s, want RESIL_EINVAL; "
                        "the export's TYPE lines:\n",
                        cases[i].a, cases[i].b, resil_err_name(rc[1]));
            for (const char *t = text; (t = strstr(t, "# TYPE ")) != NULL; t++)
                print_error("  %.*s\n", (int)strcspn(t, "\n"), t);
            free(text);
            failures++;
        }
        resil_metrics_registry_free(r);
    }
    assert_int_equal(failures, 0);
}

/* OpenMetrics 1.0, "Canonical Numbers": le values are rendered as Go's %g
 * with ".0" appended when there is no '.' or exponent; these are the
 * specification's own examples. */
static void test_openmetrics_le_canonical(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    const double b[] = {0.0, 1e-05, 0.0001, 0.1, 1.0, 10.0, 100000.0, 1e+06, 1e+23, 1.1e+23};
    const char *want[] = {"0.0",     "1e-05", "0.0001", "0.1",   "1.0",     "10.0",
                          "100000.0", "1e+06", "1e+23", "1.1e+23", "+Inf"};
    resil_metric *m;
    resil_histogram *h;
    resil_error err;
    assert_int_equal(resil_metrics_histogram_new(&m, r, "canon", "h", NULL, 0, b, LEN(b), &err), 0);
    assert_int_equal(resil_histogram_get(&h, m, NULL), 0);
    char *text = export_fmt(r, RESIL_METRICS_OPENMETRICS);
    const char *p = text;
    int bad = 0;
    for (size_t i = 0; i < LEN(want); i++) {
        char line[64];
        snprintf(line, sizeof line, "canon_bucket{le=\"%s\"} 0\n", want[i]);
        const char *q = strstr(p, line);
        if (!q) {
            print_error("missing: %s", line);
            bad++;
        } else {
            p = q;
        }
    }
    if (bad)
        fail_msg("%d le values are not canonical; export:\n%s", bad, text);
    free(text);
    /* The 0.0.4 text parses every le as a float: same values, any rendering. */
    text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    double les[16], counts[16];
    assert_int_equal(buckets_of(text, "canon", les, counts, 16), (int)LEN(b) + 1);
    for (size_t i = 0; i < LEN(b); i++)
        assert_true(les[i] == b[i]);
    free(text);
    resil_metrics_registry_free(r);
}

/* ---- exports ------------------------------------------------------------------------ */

/* The registry of the golden files: registered out of order (exports sort by
 * name; children stay in creation order). */
static resil_metrics_registry *golden_registry(void)
{
    resil_metrics_registry *r = new_registry(0);
    resil_metric *m;
    resil_error err;

    const char *sensor[] = {"sensor"};
    assert_int_equal(resil_metrics_gauge_new(&m, r, "zeta_temperature",
                                             "Temperature \\ in \"C\"\nsecond line", sensor, 1,
                                             &err),
                     0);
    resil_gauge *g;
    assert_int_equal(resil_gauge_get(&g, m, (const char *const[]){"a\\b"}), 0);
    resil_gauge_set(g, 21.5);
    assert_int_equal(resil_gauge_get(&g, m, (const char *const[]){"quote\"d"}), 0);
    resil_gauge_set(g, -INFINITY);
    assert_int_equal(resil_gauge_get(&g, m, (const char *const[]){"new\nline"}), 0);
    resil_gauge_set(g, INFINITY);
    assert_int_equal(resil_gauge_get(&g, m, (const char *const[]){"nan"}), 0);
    resil_gauge_set(g, NAN);

    const double b[] = {0.25, 1, 2.5};
    const char *op[] = {"op"};
    assert_int_equal(resil_metrics_histogram_new(&m, r, "mid_latency_seconds",
                                                 "Latency of \"mid\" ops.", op, 1, b, 3, &err),
                     0);
    resil_histogram *h;
    assert_int_equal(resil_histogram_get(&h, m, (const char *const[]){"read"}), 0);
    resil_histogram_observe(h, 0.25);
    resil_histogram_observe(h, 0.5);
    resil_histogram_observe(h, 1);
    resil_histogram_observe(h, 3);
    assert_int_equal(resil_histogram_get(&h, m, (const char *const[]){"write"}), 0);

    resil_counter *c = counter_of(r, "beta_events_total", "Events.", NULL, 0, NULL);
    resil_counter_add(c, 2.5);

    const char *mc[] = {"method", "code"};
    c = counter_of(r, "alpha_requests", "Requests handled.", mc, 2,
                   (const char *const[]){"GET", "200"});
    resil_counter_add(c, 3);
    c = counter_of(r, "alpha_requests", "Requests handled.", mc, 2,
                   (const char *const[]){"POST", "500"});
    resil_counter_inc(c);
    return r;
}

static void test_export_prometheus_golden(void **state)
{
    (void)state;
    resil_metrics_registry *r = golden_registry();
    char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    assert_golden(text, "golden.prom");
    /* len may be NULL. */
    char *again = NULL;
    assert_int_equal(resil_metrics_export(&again, NULL, r, RESIL_METRICS_PROMETHEUS), 0);
    assert_string_equal(text, again);
    free(again);
    free(text);
    resil_metrics_registry_free(r);
}

static void test_export_openmetrics_golden(void **state)
{
    (void)state;
    resil_metrics_registry *r = golden_registry();
    char *text = export_fmt(r, RESIL_METRICS_OPENMETRICS);
    assert_golden(text, "golden.om");
    size_t n = strlen(text);
    assert_true(n >= 6 && strcmp(text + n - 6, "# EOF\n") == 0);
    free(text);
    resil_metrics_registry_free(r);
}

/* An empty registry: nothing in 0.0.4, only "# EOF\n" in OpenMetrics. */
static void test_export_empty(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    assert_string_equal(text, "");
    free(text);
    text = export_fmt(r, RESIL_METRICS_OPENMETRICS);
    assert_string_equal(text, "# EOF\n");
    free(text);
    text = export_fmt(r, RESIL_METRICS_JSON);
    json_error_t je;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    assert_non_null(doc);
    assert_true(json_is_array(json_object_get(doc, "metrics")));
    assert_int_equal(json_array_size(json_object_get(doc, "metrics")), 0);
    json_decref(doc);
    free(text);
    resil_metrics_registry_free(r);
}

static void test_export_json(void **state)
{
    (void)state;
    resil_metrics_registry *r = golden_registry();
    char *text = export_fmt(r, RESIL_METRICS_JSON);
    json_error_t je;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        fail_msg("JSON export does not parse (line %d col %d: %s):\n%s", je.line, je.column,
                 je.text, text);
    json_t *metrics = json_object_get(doc, "metrics");
    assert_true(json_is_array(metrics));
    assert_int_equal(json_array_size(metrics), 4);
    struct {
        const char *name, *type, *help;
        const char *labels[2];
        size_t nlabels, nseries;
    } want[] = {
        {"alpha_requests", "counter", "Requests handled.", {"method", "code"}, 2, 2},
        {"beta_events", "counter", "Events.", {NULL}, 0, 1},
        {"mid_latency_seconds", "histogram", "Latency of \"mid\" ops.", {"op"}, 1, 2},
        {"zeta_temperature", "gauge", "Temperature \\ in \"C\"\nsecond line", {"sensor"}, 1, 4},
    };
    for (size_t i = 0; i < LEN(want); i++) {
        json_t *f = json_array_get(metrics, i);
        assert_true(json_is_object(f));
        const char *name = json_string_value(json_object_get(f, "name"));
        assert_non_null(name);
        /* The name as registered or as exported (counters may carry _total). */
        if (strncmp(name, want[i].name, strlen(want[i].name)) != 0)
            fail_msg("metrics[%zu].name = %s, want %s", i, name, want[i].name);
        assert_string_equal(json_string_value(json_object_get(f, "type")), want[i].type);
        assert_string_equal(json_string_value(json_object_get(f, "help")), want[i].help);
        json_t *labels = json_object_get(f, "labels");
        assert_true(json_is_array(labels));
        assert_int_equal(json_array_size(labels), want[i].nlabels);
        for (size_t k = 0; k < want[i].nlabels; k++)
            assert_string_equal(json_string_value(json_array_get(labels, k)), want[i].labels[k]);
        json_t *series = json_object_get(f, "series");
        assert_true(json_is_array(series));
        assert_int_equal(json_array_size(series), want[i].nseries);
        for (size_t k = 0; k < json_array_size(series); k++)
            assert_true(json_is_object(json_array_get(series, k)));
    }
    /* The label values survive JSON escaping unchanged, in creation order. */
    char *dump = json_dumps(json_array_get(metrics, 3), JSON_COMPACT);
    const char *p1 = strstr(dump, "\"a\\\\b\"");
    const char *p2 = strstr(dump, "\"quote\\\"d\"");
    const char *p3 = strstr(dump, "\"new\\nline\"");
    if (!(p1 && p2 && p3 && p1 < p2 && p2 < p3))
        fail_msg("label values missing or out of order in %s", dump);
    free(dump);
    /* to_json is the same document. */
    json_t *doc2 = resil_metrics_to_json(r);
    assert_non_null(doc2);
    assert_true(json_equal(doc, doc2));
    json_decref(doc2);
    json_decref(doc);
    free(text);
    resil_metrics_registry_free(r);
}

static void test_content_types_and_formats(void **state)
{
    (void)state;
    assert_string_equal(resil_metrics_content_type(RESIL_METRICS_PROMETHEUS),
                        "text/plain; version=0.0.4; charset=utf-8");
    assert_string_equal(resil_metrics_content_type(RESIL_METRICS_OPENMETRICS),
                        "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert_string_equal(resil_metrics_content_type(RESIL_METRICS_JSON), "application/json");
    resil_metrics_format f = (resil_metrics_format)99;
    assert_int_equal(resil_metrics_format_parse(&f, "prometheus"), 0);
    assert_int_equal(f, RESIL_METRICS_PROMETHEUS);
    assert_int_equal(resil_metrics_format_parse(&f, "openmetrics"), 0);
    assert_int_equal(f, RESIL_METRICS_OPENMETRICS);
    assert_int_equal(resil_metrics_format_parse(&f, "json"), 0);
    assert_int_equal(f, RESIL_METRICS_JSON);
    assert_int_equal(resil_metrics_format_parse(&f, "xml"), RESIL_EINVAL);
    assert_int_equal(resil_metrics_format_parse(&f, ""), RESIL_EINVAL);
    assert_int_equal(resil_metrics_format_parse(&f, NULL), RESIL_EINVAL);
}

/* ---- independent checkers: promtool, and the Python client's parsers --------------- */

/* A registry with every type, tricky help texts and label values, the
 * overflow counter, and a counter named with and without _total. */
static resil_metrics_registry *tricky_registry(void)
{
    resil_metrics_registry *r = new_registry(2);
    resil_metric *m;
    resil_error err;
    const char *l2[] = {"path", "_q"};
    const char *hv[][2] = {
        {"C:\\dir\\file", "\"quoted\""}, {"two\nlines\n", "tab\there"}, {"{}=,", "\\\"\n"},
        {"caf\xc3\xa9", "x"}, /* overflow */
    };
    assert_int_equal(
        resil_metrics_counter_new(&m, r, "tricky_ops",
                                  "Ops with a \\ backslash,\na newline and \"quotes\".", l2, 2,
                                  &err),
        0);
    for (size_t i = 0; i < LEN(hv); i++) {
        resil_counter *c;
        assert_int_equal(resil_counter_get(&c, m, hv[i]), 0);
        resil_counter_add(c, (double)i + 0.5);
    }
    resil_counter *c = counter_of(r, "tricky_done_total", "Done.", NULL, 0, NULL);
    resil_counter_inc(c);
    assert_int_equal(resil_metrics_gauge_new(&m, r, "tricky_level", "Level \\n not a newline.",
                                             l2, 2, &err),
                     0);
    const double gv[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < LEN(gv); i++) {
        resil_gauge *g;
        assert_int_equal(resil_gauge_get(&g, m, hv[i]), 0);
        resil_gauge_set(g, gv[i]);
    }
    const double b[] = {0.001, 0.1, 1, 10, 1000};
    assert_int_equal(resil_metrics_histogram_new(&m, r, "tricky_seconds", "Seconds \"x\".", l2, 2,
                                                 b, LEN(b), &err),
                     0);
    for (size_t i = 0; i < LEN(hv); i++) {
        resil_histogram *h;
        assert_int_equal(resil_histogram_get(&h, m, hv[i]), 0);
        for (int k = 0; k < 20; k++)
            resil_histogram_observe(h, k * 0.37 * (double)(i + 1));
    }
    assert_int_equal(resil_metrics_histogram_new(&m, r, "tricky_default_seconds", "Defaults.",
                                                 NULL, 0, NULL, 0, &err),
                     0);
    resil_histogram *h;
    assert_int_equal(resil_histogram_get(&h, m, NULL), 0);
    resil_histogram_observe(h, 0.3);
    return r;
}

static bool executable(const char *path)
{
    return access(path, X_OK) == 0;
}

static const char *find_promtool(void)
{
    static char buf[512];
    const char *env = getenv("PROMTOOL");
    if (env && executable(env))
        return env;
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/promtool", (int)n, path);
        if (n && executable(buf))
            return buf;
        path += n;
        if (*path == ':')
            path++;
    }
    return NULL;
}

/* `promtool check metrics < file` must exit 0 and print nothing (lint
 * problems are printed, and some of them exit 0). */
static void promtool_check(const char *promtool, const char *file, const char *what)
{
    char *out = NULL;
    char *argv[] = {(char *)promtool, "check", "metrics", NULL};
    int st = run_capture(argv, file, &out);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || out[0] != '\0') {
        char *text = slurp(file, NULL);
        print_error("---- %s ----\n%s----\n", what, text ? text : "(unreadable)");
        free(text);
        fail_msg("promtool check metrics (%s): status %d, output:\n%s", what,
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1, out);
    }
    free(out);
}

static void test_promtool_prometheus(void **state)
{
    (void)state;
    const char *promtool = find_promtool();
    if (!promtool) {
        print_message("promtool not found: skipped\n");
        skip();
    }
    char dir[256], path[512];
    make_tmpdir(dir, sizeof dir, "promtool");
    resil_metrics_registry *r = tricky_registry();
    char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    snprintf(path, sizeof path, "%s/tricky.prom", dir);
    spit(path, text, "w");
    promtool_check(promtool, path, "tricky registry, text 0.0.4");
    free(text);
    resil_metrics_registry_free(r);

    r = golden_registry();
    text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    spit(path, text, "w");
    promtool_check(promtool, path, "golden registry, text 0.0.4");
    free(text);
    resil_metrics_registry_free(r);

    /* The original module's export, after one of each record. */
    assert_int_equal(resil_record_retry_attempt("prom \"op\"\n", 2, false, 0.125), 0);
    assert_int_equal(resil_record_circuit_breaker_state("svc\\x", "half_open"), 0);
    assert_int_equal(resil_record_oscillation_event("ABAB", NULL, 2), 0);
    assert_int_equal(resil_record_oscillation_event("CYCLE", "agent", 4), 0);
    text = resil_export_prometheus_metrics();
    assert_non_null(text);
    spit(path, text, "w");
    promtool_check(promtool, path, "resil_export_prometheus_metrics");
    free(text);
    rm_rf(dir);
}

/* OpenMetrics: promtool 2.42's "check metrics" only knows the 0.0.4 parser
 * (it rejects \" in HELP and sees "x_total" under "# TYPE x counter" as an
 * untyped family without help), so the OpenMetrics export is checked by
 * Prometheus' own OpenMetrics parser (promtool tsdb create-blocks-from
 * openmetrics, which needs a timestamp on every sample) and by the Python
 * client's strict OpenMetrics parser when it is installed. */
static const char PY_CHECK[] =
    "import sys, math\n"
    "from prometheus_client.openmetrics.parser import text_string_to_metric_families as om\n"
    "from prometheus_client.parser import text_string_to_metric_families as pr\n"
    "fmt, path = sys.argv[1], sys.argv[2]\n"
    "text = open(path, encoding='utf-8').read()\n"
    "fams = list((om if fmt == 'om' else pr)(text))\n"
    "names = [f.name for f in fams]\n"
    "assert names == sorted(names), names\n"
    "for f in fams:\n"
    "    assert f.type in ('counter', 'gauge', 'histogram'), (f.name, f.type)\n"
    "    if f.type == 'histogram':\n"
    "        series = {}\n"
    "        for s in f.samples:\n"
    "            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != 'le'))\n"
    "            suffix = s.name[len(f.name):]\n"
    "            if suffix == '_bucket':\n"
    "                suffix += '@' + s.labels['le']\n"
    "            series.setdefault(key, {})[suffix] = s.value\n"
    "        for key, d in series.items():\n"
    "            assert d['_bucket@+Inf'] == d['_count'], (f.name, key, d)\n"
    "            assert '_sum' in d, (f.name, key, d)\n"
    "    if f.type == 'counter':\n"
    "        for s in f.samples:\n"
    "            assert s.name == f.name + '_total', (f.name, s.name)\n";

static void python_check(const char *fmt, const char *file)
{
    char *out = NULL;
    char *argv[] = {"/usr/bin/python3", "-c", (char *)PY_CHECK, (char *)fmt, (char *)file, NULL};
    int st = run_capture(argv, NULL, &out);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || out[0] != '\0') {
        char *text = slurp(file, NULL);
        print_error("---- %s ----\n%s----\n", file, text ? text : "(unreadable)");
        free(text);
        fail_msg("python prometheus_client %s parser: status %d, output:\n%s", fmt,
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1, out);
    }
    free(out);
}

static bool have_python_client(void)
{
    if (!executable("/usr/bin/python3"))
        return false;
    char *out = NULL;
    char *argv[] = {"/usr/bin/python3", "-c", "import prometheus_client.openmetrics.parser", NULL};
    int st = run_capture(argv, NULL, &out);
    free(out);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void test_openmetrics_parsers(void **state)
{
    (void)state;
    const char *promtool = find_promtool();
    bool py = have_python_client();
    if (!promtool && !py) {
        print_message("neither promtool nor python3-prometheus-client: skipped\n");
        skip();
    }
    char dir[256], path[512], stamped[512], blocks[512];
    make_tmpdir(dir, sizeof dir, "om");
    snprintf(path, sizeof path, "%s/tricky.om", dir);
    snprintf(stamped, sizeof stamped, "%s/tricky-ts.om", dir);
    resil_metrics_registry *regs[2] = {tricky_registry(), golden_registry()};
    for (int i = 0; i < 2; i++) {
        char *text = export_fmt(regs[i], RESIL_METRICS_OPENMETRICS);
        spit(path, text, "w");
        if (py) {
            python_check("om", path);
            char *prom = export_fmt(regs[i], RESIL_METRICS_PROMETHEUS);
            char ppath[600];
            snprintf(ppath, sizeof ppath, "%s/tricky.prom", dir);
            spit(ppath, prom, "w");
            python_check("prom", ppath);
            free(prom);
        }
        if (promtool) {
            /* Every sample line gets a timestamp. */
            FILE *f = fopen(stamped, "w");
            assert_non_null(f);
            for (char *p = text; *p;) {
                size_t n = strcspn(p, "\n");
                fwrite(p, 1, n, f);
                if (p[0] != '#')
                    fputs(" 1700000000", f);
                fputc('\n', f);
                p += n + (p[n] == '\n');
            }
            assert_int_equal(fclose(f), 0);
            snprintf(blocks, sizeof blocks, "%s/blocks%d", dir, i);
            char *out = NULL;
            char *argv[] = {(char *)promtool, "tsdb", "create-blocks-from", "openmetrics",
                            stamped, blocks, NULL};
            int st = run_capture(argv, NULL, &out);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || strstr(out, "rror"))
                fail_msg("promtool's OpenMetrics parser refused the export:\n%s\n----\n%s", out,
                         text);
            free(out);
        }
        free(text);
        resil_metrics_registry_free(regs[i]);
    }
    rm_rf(dir);
}

/* ---- threads ------------------------------------------------------------------------ */

#define NTHREADS 4
#define NINC 1000000

struct thr {
    resil_metric *m;
    resil_counter *c;
    resil_histogram *h;
    resil_metrics_registry *r;
    pthread_barrier_t *bar;
    int idx;
    void *out;
    atomic_int *stop;
};

static void *inc_thread(void *arg)
{
    struct thr *t = arg;
    pthread_barrier_wait(t->bar);
    for (int i = 0; i < NINC; i++)
        resil_counter_inc(t->c);
    return NULL;
}

static void test_threads_counter_exact(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    resil_counter *c = counter_of(r, "thr_c", "h", NULL, 0, NULL);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, NTHREADS);
    pthread_t th[NTHREADS];
    struct thr t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        t[i] = (struct thr){.c = c, .bar = &bar, .idx = i};
        assert_int_equal(pthread_create(&th[i], NULL, inc_thread, &t[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    assert_true(resil_counter_value(c) == (double)NTHREADS * NINC);
    char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    assert_true(sample(text, "thr_c_total", NULL) == (double)NTHREADS * NINC);
    free(text);
    resil_metrics_registry_free(r);
}

#define NOBS 100000

static void *observe_thread(void *arg)
{
    struct thr *t = arg;
    pthread_barrier_wait(t->bar);
    for (int i = 0; i < NOBS; i++)
        resil_histogram_observe(t->h, (double)(i % 7)); /* 0..6, integers */
    return NULL;
}

static void test_threads_histogram_exact(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    const double b[] = {0, 1, 2, 3, 4, 5};
    resil_metric *m;
    resil_histogram *h;
    resil_error err;
    assert_int_equal(resil_metrics_histogram_new(&m, r, "thr_h", "h", NULL, 0, b, 6, &err), 0);
    assert_int_equal(resil_histogram_get(&h, m, NULL), 0);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, NTHREADS);
    pthread_t th[NTHREADS];
    struct thr t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        t[i] = (struct thr){.h = h, .bar = &bar, .idx = i};
        assert_int_equal(pthread_create(&th[i], NULL, observe_thread, &t[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    /* Per thread: value v appears ceil/floor(NOBS/7) times. */
    double per[7] = {0}, sum = 0;
    for (int i = 0; i < NOBS; i++)
        per[i % 7] += NTHREADS;
    for (int v = 0; v < 7; v++)
        sum += v * per[v];
    assert_int_equal(resil_histogram_count(h), (uint64_t)NTHREADS * NOBS);
    assert_true(resil_histogram_sum(h) == sum);
    char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    double les[8], counts[8];
    assert_int_equal(buckets_of(text, "thr_h", les, counts, 8), 7);
    double cum = 0;
    for (int v = 0; v < 7; v++) {
        cum += per[v];
        assert_true(counts[v] == cum);
    }
    assert_true(sample(text, "thr_h_sum", NULL) == sum);
    free(text);
    resil_metrics_registry_free(r);
}

/* ---- slots: owned blocks, shared blocks, giving back, fork --------------------------
 * These read resil__private_metrics_tls_slot (private to the inline updates):
 * (block + 1) * 2, + 1 when the thread owns its block. */

#define NSLOT_THREADS 24 /* more than the owned blocks (at most 16) */
#define NSLOT_INC 20000

struct slot_thr {
    resil_counter *c;
    resil_histogram *h;
    pthread_barrier_t *bar;
    unsigned slot;
};

static void *slot_thread(void *arg)
{
    struct slot_thr *t = arg;
    resil_counter_inc(t->c); /* deals the slot */
    t->slot = resil__private_metrics_tls_slot;
    pthread_barrier_wait(t->bar); /* all alive at once */
    for (int i = 1; i < NSLOT_INC; i++) {
        resil_counter_inc(t->c);
        resil_histogram_observe(t->h, (double)(i % 4));
    }
    resil_histogram_observe(t->h, 0.0);
    return NULL;
}

/* One wave of NSLOT_THREADS threads alive together; returns how many owned
 * a block, after checking that no two owned the same one. */
static int slot_wave(resil_counter *c, resil_histogram *h)
{
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, NSLOT_THREADS);
    pthread_t th[NSLOT_THREADS];
    struct slot_thr t[NSLOT_THREADS];
    for (int i = 0; i < NSLOT_THREADS; i++) {
        t[i] = (struct slot_thr){.c = c, .h = h, .bar = &bar};
        assert_int_equal(pthread_create(&th[i], NULL, slot_thread, &t[i]), 0);
    }
    for (int i = 0; i < NSLOT_THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    int owned = 0;
    unsigned mine = resil__private_metrics_tls_slot;
    for (int i = 0; i < NSLOT_THREADS; i++) {
        assert_true(t[i].slot >= 2);
        if (!(t[i].slot & 1))
            continue;
        owned++;
        if (t[i].slot == mine)
            fail_msg("a thread was dealt the block the main thread owns (slot %u)", mine);
        for (int j = 0; j < i; j++)
            if (t[j].slot == t[i].slot)
                fail_msg("threads %d and %d, alive together, own one block (slot %u)", j, i,
                         t[i].slot);
    }
    return owned;
}

static void test_slots_owned_shared_exact(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    resil_counter *c = counter_of(r, "slot_c", "h", NULL, 0, NULL);
    const double b[] = {0.5, 1.5, 2.5};
    resil_metric *m;
    resil_histogram *h;
    resil_error err;
    assert_int_equal(resil_metrics_histogram_new(&m, r, "slot_h", "h", NULL, 0, b, 3, &err), 0);
    assert_int_equal(resil_histogram_get(&h, m, NULL), 0);
    resil_counter_inc(c); /* the main thread takes its slot first */
    int owned1 = slot_wave(c, h);
    /* At least 4 blocks are owned-capable (one may be the main thread's),
     * and 24 threads are more than there are: some had to share. */
    if (owned1 < 3 || owned1 >= NSLOT_THREADS)
        fail_msg("%d of %d threads owned a block; expected at least 3 and not all", owned1,
                 NSLOT_THREADS);
    /* The first wave gave its blocks back when its threads exited. */
    int owned2 = slot_wave(c, h);
    if (owned2 != owned1)
        fail_msg("the second wave owned %d blocks, the first %d: blocks were not given back",
                 owned2, owned1);
    double want = 1 + 2.0 * NSLOT_THREADS * NSLOT_INC;
    if (resil_counter_value(c) != want)
        fail_msg("counter: %.0f, want %.0f", resil_counter_value(c), want);
    assert_int_equal(resil_histogram_count(h), (uint64_t)2 * NSLOT_THREADS * NSLOT_INC);
    double sum = 0;
    for (int i = 1; i < NSLOT_INC; i++)
        sum += i % 4;
    assert_true(resil_histogram_sum(h) == 2.0 * NSLOT_THREADS * sum);
    char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    assert_true(sample(text, "slot_c_total", NULL) == want);
    free(text);
    resil_metrics_registry_free(r);
}

/* Threads that come and go, a few at a time, each also counting from a
 * thread-specific-data destructor of its own, which may run after the one
 * that gives the thread's block back: nothing may be lost. */
static pthread_key_t late_key;
static resil_counter *late_counter;

static void late_count(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        resil_counter_inc(late_counter);
}

static void *churn_thread(void *arg)
{
    resil_counter *c = arg;
    pthread_setspecific(late_key, c);
    for (int i = 0; i < 5000; i++)
        resil_counter_inc(c);
    return NULL;
}

static void test_slots_thread_churn_exact(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    resil_counter *c = counter_of(r, "churn_c", "h", NULL, 0, NULL);
    late_counter = c;
    assert_int_equal(pthread_key_create(&late_key, late_count), 0);
    enum { ROUNDS = 40, AT_ONCE = 6 };
    for (int round = 0; round < ROUNDS; round++) {
        pthread_t th[AT_ONCE];
        for (int i = 0; i < AT_ONCE; i++)
            assert_int_equal(pthread_create(&th[i], NULL, churn_thread, c), 0);
        for (int i = 0; i < AT_ONCE; i++)
            pthread_join(th[i], NULL);
    }
    pthread_key_delete(late_key);
    double want = (double)ROUNDS * AT_ONCE * (5000 + 100);
    if (resil_counter_value(c) != want)
        fail_msg("churn: %.0f counted, %.0f happened", resil_counter_value(c), want);
    resil_metrics_registry_free(r);
}

/* The hand-over: thread A exits and gives its block back; thread B is then
 * dealt that block (the lowest free one); A's later updates (from a
 * destructor that runs after the one giving the block back) must no longer
 * use it as its own. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stage;
    unsigned a_slot_before, a_slot_after, b_slot;
    unsigned a_seen_owned_before, a_seen_owned_after; /* retry's cached cell */
    resil_counter *c;
} hand = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, 0, NULL};

static resil_outcome hand_ok(resil_retry_call *call, void *arg)
{
    (void)call;
    (void)arg;
    return RESIL_OUTCOME_SUCCESS;
}

/* A named retry that succeeds at once: counted through the inline fast
 * path's per-thread cache (resil__private_retry_tls_seen) from the second on. */
static void hand_retry(void)
{
    static const resil_retry_config cfg = RESIL_RETRY_TRANSIENT;
    for (int i = 0; i < 3; i++)
        assert_int_equal(resil_retry(hand_ok, NULL, "hand_retry", &cfg, NULL, NULL), 0);
}
static pthread_key_t hand_key;

static void hand_late(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&hand.mu);
    hand.stage = 1;
    pthread_cond_broadcast(&hand.cv);
    while (hand.stage != 2)
        pthread_cond_wait(&hand.cv, &hand.mu);
    hand.a_slot_after = resil__private_metrics_tls_slot;
    pthread_mutex_unlock(&hand.mu);
    for (int i = 0; i < 100; i++)
        resil_counter_inc(hand.c);
    hand_retry();
    hand.a_seen_owned_after = resil__private_retry_tls_seen.owned;
}

static void *hand_a(void *arg)
{
    (void)arg;
    resil_counter_inc(hand.c);
    hand.a_slot_before = resil__private_metrics_tls_slot;
    hand_retry();
    hand.a_seen_owned_before = resil__private_retry_tls_seen.owned;
    /* Set after the first update, so that this key's destructor runs after
     * the library's (glibc runs them in the order the keys were made). */
    pthread_setspecific(hand_key, &hand);
    return NULL;
}

static void *hand_b(void *arg)
{
    (void)arg;
    resil_counter_inc(hand.c);
    hand.b_slot = resil__private_metrics_tls_slot;
    hand_retry();
    return NULL;
}

static void test_slots_hand_over(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    hand.c = counter_of(r, "hand_c", "h", NULL, 0, NULL);
    resil_counter_inc(hand.c); /* the main thread's slot is dealt already */
    assert_int_equal(pthread_key_create(&hand_key, hand_late), 0);
    pthread_t a, b;
    assert_int_equal(pthread_create(&a, NULL, hand_a, NULL), 0);
    pthread_mutex_lock(&hand.mu);
    while (hand.stage != 1)
        pthread_cond_wait(&hand.cv, &hand.mu);
    pthread_mutex_unlock(&hand.mu);
    assert_int_equal(pthread_create(&b, NULL, hand_b, NULL), 0);
    pthread_join(b, NULL);
    pthread_mutex_lock(&hand.mu);
    hand.stage = 2;
    pthread_cond_broadcast(&hand.cv);
    pthread_mutex_unlock(&hand.mu);
    pthread_join(a, NULL);
    pthread_key_delete(hand_key);
    assert_true(hand.a_slot_before & 1);
    if (hand.b_slot != hand.a_slot_before)
        fail_msg("B was dealt slot %u, not the block A gave back (slot %u)", hand.b_slot,
                 hand.a_slot_before);
    if (hand.a_slot_after == hand.b_slot)
        fail_msg("after giving its block back, A still updates it as its own (slot %u)",
                 hand.a_slot_after);
    assert_true(hand.a_slot_after != 0 && !(hand.a_slot_after & 1));
    assert_true(resil_counter_value(hand.c) == 103);
    /* The retry cache followed: its cell was A's own block, then a shared one. */
    assert_int_equal(hand.a_seen_owned_before, 1);
    if (hand.a_seen_owned_after != 0)
        fail_msg("after giving its block back, A's retries still add to it as their own");
    char *text = NULL;
    assert_int_equal(
        resil_metrics_export(&text, NULL, resil_metrics_default(), RESIL_METRICS_PROMETHEUS), 0);
    double n = sample(
        text, "resil_retry_calls_total{name=\"hand_retry\",kind=\"successful_without_retry\"}",
        NULL);
    free(text);
    if (n != 9)
        fail_msg("hand_retry counted %g times, 9 happened", n);
    resil_metrics_registry_free(r);
}

/* A forked child has one thread: the blocks its parent's other threads
 * owned are free again in the child (the block of the thread that forked
 * stays taken). */
struct hold_thr {
    resil_counter *c;
    pthread_barrier_t *ready, *go;
};

static void *hold_thread(void *arg)
{
    struct hold_thr *t = arg;
    resil_counter_inc(t->c);
    pthread_barrier_wait(t->ready);
    pthread_barrier_wait(t->go);
    return NULL;
}

static void test_slots_after_fork(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    resil_counter *c = counter_of(r, "fork_slot_c", "h", NULL, 0, NULL);
    resil_counter_inc(c); /* the main thread (which forks) takes its slot first */
    assert_true(resil__private_metrics_tls_slot & 1);
    enum { HOLD = 20 }; /* more than the owned blocks: the parent holds them all */
    pthread_barrier_t ready, go;
    pthread_barrier_init(&ready, NULL, HOLD + 1);
    pthread_barrier_init(&go, NULL, HOLD + 1);
    pthread_t th[HOLD];
    struct hold_thr t = {c, &ready, &go};
    for (int i = 0; i < HOLD; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hold_thread, &t), 0);
    pthread_barrier_wait(&ready);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* (No new thread: ThreadSanitizer refuses them after a
         * multi-threaded fork.  The child forgets its slot instead, as a
         * new thread would start, and is dealt one again.) */
        double before = resil_counter_value(c);
        unsigned old = resil__private_metrics_tls_slot;
        CK(old & 1);
        resil__private_metrics_tls_slot = 0;
        for (int i = 0; i < 1000; i++)
            resil_counter_inc(c);
        unsigned now = resil__private_metrics_tls_slot;
        CK(now & 1);      /* owned: the parent's holders are not here */
        CK(now != old);   /* and the block it had stays its own */
        CK(resil_counter_value(c) == before + 1000);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    pthread_barrier_wait(&go);
    for (int i = 0; i < HOLD; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&ready);
    pthread_barrier_destroy(&go);
    assert_exit0(st, "forked child", NULL);
    assert_true(resil_counter_value(c) == HOLD + 1);
    resil_metrics_registry_free(r);
}

#define NGET 8

static void *get_thread(void *arg)
{
    struct thr *t = arg;
    pthread_barrier_wait(t->bar);
    resil_counter *c = NULL;
    /* Some labels of its own, then the shared one. */
    for (int i = 0; i < 50; i++) {
        char v[32];
        snprintf(v, sizeof v, "t%d-%d", t->idx, i);
        if (resil_counter_get(&c, t->m, (const char *const[]){v}) == 0)
            resil_counter_inc(c);
    }
    if (resil_counter_get(&c, t->m, (const char *const[]){"shared"}) != 0)
        c = NULL;
    else
        resil_counter_inc(c);
    t->out = c;
    return NULL;
}

static void test_threads_same_handle(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    const char *k[] = {"k"};
    resil_metric *m;
    resil_error err;
    assert_int_equal(resil_metrics_counter_new(&m, r, "thr_get", "h", k, 1, &err), 0);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, NGET);
    pthread_t th[NGET];
    struct thr t[NGET];
    for (int i = 0; i < NGET; i++) {
        t[i] = (struct thr){.m = m, .bar = &bar, .idx = i};
        assert_int_equal(pthread_create(&th[i], NULL, get_thread, &t[i]), 0);
    }
    for (int i = 0; i < NGET; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    assert_non_null(t[0].out);
    for (int i = 1; i < NGET; i++)
        assert_ptr_equal(t[i].out, t[0].out);
    assert_true(resil_counter_value(t[0].out) == NGET);
    char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    assert_int_equal(count_lines_starting(text, "thr_get_total{"), NGET * 50 + 1);
    assert_true(sample(text, "thr_get_total{k=\"shared\"}", NULL) == NGET);
    assert_true(sample(text, "thr_get_total{k=\"t3-49\"}", NULL) == 1);
    free(text);
    resil_metrics_registry_free(r);
}

static void *register_thread(void *arg)
{
    struct thr *t = arg;
    const char *labels[] = {"a", "b"};
    resil_metric *m = NULL;
    pthread_barrier_wait(t->bar);
    if (resil_metrics_counter_new(&m, t->r, "thr_reg", "Registered from threads.", labels, 2,
                                  NULL) != 0)
        m = NULL;
    /* And a family of its own at the same time. */
    char own[32];
    snprintf(own, sizeof own, "thr_reg_own_%d", t->idx);
    resil_metric *o = NULL;
    if (resil_metrics_gauge_new(&o, t->r, own, "Own.", NULL, 0, NULL) == 0) {
        resil_gauge *g;
        if (resil_gauge_get(&g, o, NULL) == 0)
            resil_gauge_set(g, t->idx);
    }
    resil_counter *c;
    if (m && resil_counter_get(&c, m, (const char *const[]){"x", "y"}) == 0)
        resil_counter_inc(c);
    t->out = m;
    return NULL;
}

static void test_threads_register_same_family(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, NGET);
    pthread_t th[NGET];
    struct thr t[NGET];
    for (int i = 0; i < NGET; i++) {
        t[i] = (struct thr){.r = r, .bar = &bar, .idx = i};
        assert_int_equal(pthread_create(&th[i], NULL, register_thread, &t[i]), 0);
    }
    for (int i = 0; i < NGET; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    assert_non_null(t[0].out);
    for (int i = 1; i < NGET; i++)
        assert_ptr_equal(t[i].out, t[0].out);
    char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    assert_int_equal(count_lines_starting(text, "# TYPE thr_reg_total counter"), 1);
    assert_true(sample(text, "thr_reg_total{a=\"x\",b=\"y\"}", NULL) == NGET);
    assert_int_equal(count_lines_starting(text, "# TYPE thr_reg_own_"), NGET);
    assert_true(sample(text, "thr_reg_own_5", NULL) == 5);
    free(text);
    resil_metrics_registry_free(r);
}

/* Exports (every format) while other threads create children and families:
 * each export is whole and parses, and the last one sees everything. */
static void *grow_thread(void *arg)
{
    struct thr *t = arg;
    pthread_barrier_wait(t->bar);
    for (int i = 0; i < 200; i++) {
        char v[32];
        snprintf(v, sizeof v, "g%d-%d", t->idx, i);
        resil_counter *c;
        if (resil_counter_get(&c, t->m, (const char *const[]){v}) == 0)
            resil_counter_inc(c);
        if (i % 20 == 0) {
            char name[48];
            snprintf(name, sizeof name, "grow_fam_%d_%d", t->idx, i);
            resil_metric *m;
            resil_histogram *h;
            if (resil_metrics_histogram_new(&m, t->r, name, "Grown.", NULL, 0, NULL, 0, NULL) ==
                    0 &&
                resil_histogram_get(&h, m, NULL) == 0)
                resil_histogram_observe(h, 0.5);
        }
    }
    atomic_fetch_add(t->stop, 1);
    return NULL;
}

static void test_threads_export_while_growing(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    const char *k[] = {"k"};
    resil_metric *m;
    resil_error err;
    assert_int_equal(resil_metrics_counter_new(&m, r, "grow", "h", k, 1, &err), 0);
    atomic_int done = 0;
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, NTHREADS + 1);
    pthread_t th[NTHREADS];
    struct thr t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        t[i] = (struct thr){.m = m, .r = r, .bar = &bar, .idx = i, .stop = &done};
        assert_int_equal(pthread_create(&th[i], NULL, grow_thread, &t[i]), 0);
    }
    pthread_barrier_wait(&bar);
    int rounds = 0;
    do {
        resil_metrics_format f = (resil_metrics_format)(rounds % 3);
        char *text = export_fmt(r, f);
        if (f == RESIL_METRICS_JSON) {
            json_t *doc = json_loads(text, 0, NULL);
            assert_non_null(doc);
            json_decref(doc);
        } else if (f == RESIL_METRICS_OPENMETRICS) {
            size_t n = strlen(text);
            assert_true(n >= 6 && strcmp(text + n - 6, "# EOF\n") == 0);
        }
        free(text);
        json_decref(resil_metrics_to_json(r));
        rounds++;
    } while (atomic_load(&done) < NTHREADS);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    assert_int_equal(count_lines_starting(text, "grow_total{"), NTHREADS * 200);
    assert_int_equal(count_lines_starting(text, "# TYPE grow_fam_"), NTHREADS * 10);
    assert_true(sample(text, "grow_total{k=\"g3-199\"}", NULL) == 1);
    free(text);
    resil_metrics_registry_free(r);
}

/* Writers keep incrementing while another thread flushes: each flush records
 * what was gained since the last one, so the directory sums exactly. */
static void *flush_inc_thread(void *arg)
{
    struct thr *t = arg;
    pthread_barrier_wait(t->bar);
    for (int i = 0; i < 100000; i++)
        resil_counter_inc(t->c);
    return NULL;
}

static void test_threads_flush_while_writing(void **state)
{
    (void)state;
    char dir[256];
    make_tmpdir(dir, sizeof dir, "flushthr");
    resil_metrics_registry *r = new_registry(0);
    resil_counter *c = counter_of(r, "thr_flush", "h", NULL, 0, NULL);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 3);
    pthread_t th[2];
    struct thr t[2];
    for (int i = 0; i < 2; i++) {
        t[i] = (struct thr){.c = c, .bar = &bar, .idx = i};
        assert_int_equal(pthread_create(&th[i], NULL, flush_inc_thread, &t[i]), 0);
    }
    pthread_barrier_wait(&bar);
    resil_error err;
    for (int i = 0; i < 20; i++) {
        int rc = resil_metrics_flush_dir(r, dir, &err);
        if (rc != 0)
            fail_msg("flush_dir: %s (%s)", resil_err_name(rc), err.message);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    assert_int_equal(resil_metrics_flush_dir(r, dir, &err), 0);
    /* A flush with nothing new adds nothing. */
    assert_int_equal(resil_metrics_flush_dir(r, dir, &err), 0);
    resil_metrics_registry *sum = NULL;
    int rc = resil_metrics_load_dir(&sum, dir, &err);
    if (rc != 0)
        fail_msg("load_dir: %s (%s)", resil_err_name(rc), err.message);
    resil_counter *s = counter_of(sum, "thr_flush", "h", NULL, 0, NULL);
    assert_true(resil_counter_value(s) == 200000);
    resil_metrics_registry_free(sum);
    resil_metrics_registry_free(r);
    rm_rf(dir);
}

/* ---- processes: a metrics directory -------------------------------------------------- */

static const char *const PROC_LABELS[] = {"kind"};
static const double PROC_BUCKETS[] = {1, 2, 4};

/* A child: three rounds of increments and observations in the default
 * registry, a flush after each. */
static int proc_child(const char *dir, int i, bool die)
{
    resil_metrics_registry *r = resil_metrics_default();
    CK(r != NULL);
    resil_metric *m, *mh;
    resil_counter *c;
    resil_histogram *h;
    CK(resil_metrics_counter_new(&m, r, "proc_jobs", "Jobs.", PROC_LABELS, 1, NULL) == 0);
    CK(resil_counter_get(&c, m, (const char *const[]){"batch"}) == 0);
    CK(resil_metrics_histogram_new(&mh, r, "proc_job_seconds", "Job seconds.", NULL, 0,
                                   PROC_BUCKETS, 3, NULL) == 0);
    CK(resil_histogram_get(&h, mh, NULL) == 0);
    for (int round = 1; round <= 3; round++) {
        for (int k = 0; k < 1000 * (i + 1); k++)
            resil_counter_inc(c);
        resil_histogram_observe(h, round);
        resil_error err;
        int rc = resil_metrics_flush_dir(r, dir, &err);
        if (rc != 0) {
            fprintf(stderr, "flush_dir: %s (%s)\n", resil_err_name(rc), err.message);
            return 3;
        }
    }
    if (die) {
        /* Recorded after the last flush: lost with the process. */
        for (int k = 0; k < 777; k++)
            resil_counter_inc(c);
        resil_histogram_observe(h, 100);
        raise(SIGKILL);
    }
    return 0;
}

static void load_proc_totals(const char *dir, double *jobs, uint64_t *count, double *sum)
{
    resil_metrics_registry *out = NULL;
    resil_error err;
    int rc = resil_metrics_load_dir(&out, dir, &err);
    if (rc != 0)
        fail_msg("load_dir: %s (%s, line %d)", resil_err_name(rc), err.message, err.line);
    resil_counter *c = counter_of(out, "proc_jobs", "Jobs.", PROC_LABELS, 1,
                                  (const char *const[]){"batch"});
    *jobs = resil_counter_value(c);
    resil_metric *mh;
    resil_histogram *h;
    assert_int_equal(resil_metrics_histogram_new(&mh, out, "proc_job_seconds", "Job seconds.",
                                                 NULL, 0, PROC_BUCKETS, 3, &err),
                     0);
    assert_int_equal(resil_histogram_get(&h, mh, NULL), 0);
    *count = resil_histogram_count(h);
    *sum = resil_histogram_sum(h);
    /* The summed registry exports its buckets cumulatively as ever. */
    char *text = export_fmt(out, RESIL_METRICS_PROMETHEUS);
    assert_true(sample(text, "proc_job_seconds_bucket{le=\"+Inf\"}", NULL) == (double)*count);
    free(text);
    resil_metrics_registry_free(out);
}

static void test_processes_flush_and_load(void **state)
{
    (void)state;
    char dir[256];
    make_tmpdir(dir, sizeof dir, "procs");
    /* The directory does not exist yet: flush creates it. */
    char sub[300];
    snprintf(sub, sizeof sub, "%s/metrics.d", dir);
    resil_metrics_registry *none = NULL;
    resil_error err;
    assert_int_equal(resil_metrics_load_dir(&none, sub, &err), -ENOENT);
    pid_t pid[4];
    fflush(NULL);
    for (int i = 0; i < 4; i++) {
        pid[i] = fork();
        assert_true(pid[i] >= 0);
        if (pid[i] == 0)
            _exit(proc_child(sub, i, false));
    }
    for (int i = 0; i < 4; i++) {
        int st;
        assert_int_equal(waitpid(pid[i], &st, 0), pid[i]);
        assert_exit0(st, "flushing child", NULL);
    }
    double jobs;
    uint64_t count;
    double sum;
    load_proc_totals(sub, &jobs, &count, &sum);
    /* 3 rounds x 1000*(i+1), i = 0..3 */
    assert_true(jobs == 3000.0 * (1 + 2 + 3 + 4));
    assert_int_equal(count, 12);
    assert_true(sum == 4 * (1 + 2 + 3));

    /* A child SIGKILLed after its flushes keeps what it flushed. */
    pid_t k = fork();
    assert_true(k >= 0);
    if (k == 0)
        _exit(proc_child(sub, 9, true));
    int st;
    assert_int_equal(waitpid(k, &st, 0), k);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    load_proc_totals(sub, &jobs, &count, &sum);
    assert_true(jobs == 30000.0 + 3 * 10000);
    assert_int_equal(count, 15);
    assert_true(sum == 5 * (1 + 2 + 3));

    /* A torn last line (a writer killed mid-append) is skipped. */
    char file[400];
    snprintf(file, sizeof file, "%s/metrics.ndjson", sub);
    spit(file, "{\"metrics\":[{\"name\":\"proc_jobs\",\"type\":\"counter\"", "a");
    load_proc_totals(sub, &jobs, &count, &sum);
    assert_true(jobs == 60000);
    assert_int_equal(count, 15);
    /* resil did not write that tail (no mark of an unfinished append of its
     * own covers it), so an append would keep it, as a line of its own
     * (issue 10); a forced repair cuts it... */
    assert_int_equal(resil_repair_ndjson_force(file, NULL, NULL, NULL), 0);
    /* ... and the next flush starts on a fresh line. */
    k = fork();
    assert_true(k >= 0);
    if (k == 0)
        _exit(proc_child(sub, 0, false));
    assert_int_equal(waitpid(k, &st, 0), k);
    assert_exit0(st, "flushing child after a torn tail", NULL);
    load_proc_totals(sub, &jobs, &count, &sum);
    assert_true(jobs == 63000);
    assert_int_equal(count, 18);
    rm_rf(dir);
}

/* A forked child inherits its parent's registry: its flushes carry what the
 * child recorded, not again what the parent had recorded before the fork
 * (the parent flushes that itself), so the directory sums what happened. */
static void test_fork_inherited_counts_not_double_counted(void **state)
{
    (void)state;
    char dir[256];
    make_tmpdir(dir, sizeof dir, "forkinherit");
    resil_metrics_registry *r = new_registry(0);
    resil_counter *c = counter_of(r, "fi_jobs", "Jobs.", NULL, 0, NULL);
    resil_counter_add(c, 5); /* recorded before the fork, not yet flushed */
    pid_t pid[2];
    fflush(NULL);
    for (int i = 0; i < 2; i++) {
        pid[i] = fork();
        assert_true(pid[i] >= 0);
        if (pid[i] == 0) {
            resil_counter_inc(c);
            _exit(resil_metrics_flush_dir(r, dir, NULL) == 0 ? 0 : 3);
        }
    }
    for (int i = 0; i < 2; i++) {
        int st;
        assert_int_equal(waitpid(pid[i], &st, 0), pid[i]);
        assert_exit0(st, "child", NULL);
    }
    resil_error err;
    assert_int_equal(resil_metrics_flush_dir(r, dir, &err), 0);
    resil_metrics_registry *out = NULL;
    assert_int_equal(resil_metrics_load_dir(&out, dir, &err), 0);
    resil_counter *s = counter_of(out, "fi_jobs", "Jobs.", NULL, 0, NULL);
    double v = resil_counter_value(s);
    if (v != 7)
        fail_msg("fi_jobs summed to %g; 7 happened (5 in the parent, 1 in each child)", v);
    resil_metrics_registry_free(out);
    resil_metrics_registry_free(r);
    rm_rf(dir);
}

static int count_newlines(const char *path)
{
    char *text = slurp(path, NULL);
    assert_non_null(text);
    int n = 0;
    for (char *p = text; *p; p++)
        n += *p == '\n';
    free(text);
    return n;
}

static void test_load_dir_bad_line(void **state)
{
    (void)state;
    int failures = 0;
    const char *bad[] = {"this is not json\n", "{\"metrics\": 5}\n", "[1,2,3]\n",
                         "{\"metrics\":[{\"name\":\"1bad\",\"type\":\"counter\"}]}\n"};
    for (size_t i = 0; i < LEN(bad); i++) {
        char dir[256], file[400];
        make_tmpdir(dir, sizeof dir, "badline");
        snprintf(file, sizeof file, "%s/metrics.ndjson", dir);
        resil_metrics_registry *r = new_registry(0);
        resil_counter *c = counter_of(r, "bl_c", "h", NULL, 0, NULL);
        resil_error err;
        resil_counter_inc(c);
        assert_int_equal(resil_metrics_flush_dir(r, dir, &err), 0);
        int line = count_newlines(file) + 1;
        spit(file, bad[i], "a");
        resil_counter_inc(c);
        assert_int_equal(resil_metrics_flush_dir(r, dir, &err), 0);
        /* A bad record is skipped, counted and named (file:line); the
         * others are summed (issue 10: it used to fail the whole load). */
        resil_metrics_registry *out = NULL;
        memset(&err, 0, sizeof err);
        resil_metrics_dir_stats st;
        int rc = resil_metrics_load_dir_stats(&out, dir, &st, &err);
        char where[64];
        snprintf(where, sizeof where, "metrics.ndjson:%d: ", line);
        if (rc != 0 || st.bad_records != 1 || st.records != 2 ||
            st.first_bad_line != (size_t)line || !strstr(st.first_bad, where)) {
            print_error("bad line %.*s: got %s, %zu bad, %zu records, line %zu, \"%s\"; want "
                        "0, 1 bad, 2 records, line %d (message: %s)\n",
                        (int)strcspn(bad[i], "\n"), bad[i], resil_err_name(rc), st.bad_records,
                        st.records, st.first_bad_line, st.first_bad, line, err.message);
            failures++;
        }
        resil_metrics_registry_free(out);
        resil_metrics_registry_free(r);
        rm_rf(dir);
    }
    assert_int_equal(failures, 0);
}

static void test_flush_gauge_last_value(void **state)
{
    (void)state;
    char dir[256];
    make_tmpdir(dir, sizeof dir, "gauge");
    resil_metrics_registry *r = new_registry(0);
    resil_metric *m;
    resil_gauge *g;
    resil_error err;
    assert_int_equal(resil_metrics_gauge_new(&m, r, "fl_g", "G.", NULL, 0, &err), 0);
    assert_int_equal(resil_gauge_get(&g, m, NULL), 0);
    resil_gauge_set(g, 5);
    assert_int_equal(resil_metrics_flush_dir(r, dir, &err), 0);
    resil_gauge_set(g, 7);
    assert_int_equal(resil_metrics_flush_dir(r, dir, &err), 0);
    resil_metrics_registry *out = NULL;
    assert_int_equal(resil_metrics_load_dir(&out, dir, &err), 0);
    assert_int_equal(resil_metrics_gauge_new(&m, out, "fl_g", "G.", NULL, 0, &err), 0);
    assert_int_equal(resil_gauge_get(&g, m, NULL), 0);
    assert_true(resil_gauge_value(g) == 7);
    resil_metrics_registry_free(out);
    resil_metrics_registry_free(r);
    rm_rf(dir);
}

/* Everything a registry holds survives a flush and a load: tricky label
 * values and help, NaN and infinite gauges, overflow children and the
 * overflow counter, histograms with their buckets. */
static resil_metrics_registry *tricky_registry(void);

static void test_flush_load_roundtrip(void **state)
{
    (void)state;
    char dir[256];
    make_tmpdir(dir, sizeof dir, "roundtrip");
    resil_metrics_registry *r = tricky_registry();
    resil_error err;
    assert_int_equal(resil_metrics_flush_dir(r, dir, &err), 0);
    resil_metrics_registry *out = NULL;
    int rc = resil_metrics_load_dir(&out, dir, &err);
    if (rc != 0)
        fail_msg("load_dir: %s (%s)", resil_err_name(rc), err.message);
    char *want = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    char *got = export_fmt(out, RESIL_METRICS_PROMETHEUS);
    if (strcmp(want, got) != 0)
        fail_msg("loaded registry differs:\n---- flushed ----\n%s---- loaded ----\n%s", want, got);
    free(got);
    free(want);
    resil_metrics_registry_free(out);
    resil_metrics_registry_free(r);
    rm_rf(dir);
}

/* The overflow counter names every capped family, however many there are
 * (it is not itself subject to the cap). */
static void test_overflow_counter_not_capped(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(2);
    const char *k[] = {"k"};
    for (int f = 0; f < 4; f++) {
        char name[32];
        snprintf(name, sizeof name, "ovc_%d", f);
        resil_metric *m;
        resil_error err;
        assert_int_equal(resil_metrics_counter_new(&m, r, name, "h", k, 1, &err), 0);
        for (int i = 0; i < 3 + f; i++) {
            char v[16];
            snprintf(v, sizeof v, "v%d", i);
            resil_counter *c;
            assert_int_equal(resil_counter_get(&c, m, (const char *const[]){v}), 0);
            resil_counter_inc(c);
        }
    }
    char *text = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    int bad = 0;
    for (int f = 0; f < 4; f++) {
        char series[128];
        snprintf(series, sizeof series,
                 "resil_metrics_cardinality_overflow_total{metric=\"ovc_%d\"}", f);
        double v = sample(text, series, NULL);
        if (v != 1 + f) {
            print_error("%s = %g, want %d\n", series, v, 1 + f);
            bad++;
        }
    }
    if (bad)
        fail_msg("overflow counts lost; export:\n%s", text);
    free(text);
    resil_metrics_registry_free(r);
}

/* ---- JSON snapshots ----------------------------------------------------------------- */

static void test_json_roundtrip_merge(void **state)
{
    (void)state;
    resil_metrics_registry *a = golden_registry();
    json_t *doc = resil_metrics_to_json(a);
    assert_non_null(doc);
    resil_metrics_registry *b = new_registry(0);
    resil_error err;
    assert_int_equal(resil_metrics_merge_json(b, doc, &err), 0);
    /* Once: the same exports. */
    char *ta = export_fmt(a, RESIL_METRICS_PROMETHEUS);
    char *tb = export_fmt(b, RESIL_METRICS_PROMETHEUS);
    assert_string_equal(ta, tb);
    free(tb);
    /* Twice: counters and histograms doubled, gauges the same. */
    assert_int_equal(resil_metrics_merge_json(b, doc, &err), 0);
    tb = export_fmt(b, RESIL_METRICS_PROMETHEUS);
    assert_true(sample(tb, "alpha_requests_total{method=\"GET\",code=\"200\"}", NULL) == 6);
    assert_true(sample(tb, "alpha_requests_total{method=\"POST\",code=\"500\"}", NULL) == 2);
    assert_true(sample(tb, "beta_events_total", NULL) == 5);
    assert_true(sample(tb, "mid_latency_seconds_bucket{op=\"read\",le=\"0.25\"}", NULL) == 2);
    assert_true(sample(tb, "mid_latency_seconds_bucket{op=\"read\",le=\"+Inf\"}", NULL) == 8);
    assert_true(sample(tb, "mid_latency_seconds_count{op=\"read\"}", NULL) == 8);
    assert_true(sample(tb, "mid_latency_seconds_sum{op=\"read\"}", NULL) == 9.5);
    assert_true(sample(tb, "mid_latency_seconds_count{op=\"write\"}", NULL) == 0);
    assert_true(sample(tb, "zeta_temperature{sensor=\"a\\\\b\"}", NULL) == 21.5);
    assert_true(sample(tb, "zeta_temperature{sensor=\"quote\\\"d\"}", NULL) == -INFINITY);
    assert_true(sample(tb, "zeta_temperature{sensor=\"new\\nline\"}", NULL) == INFINITY);
    assert_true(isnan(sample(tb, "zeta_temperature{sensor=\"nan\"}", NULL)));
    int n;
    sample(tb, "zeta_temperature{sensor=\"nan\"}", &n);
    assert_int_equal(n, 1);
    free(tb);
    /* The merged families are the registered ones (same help and labels). */
    const char *mc[] = {"method", "code"};
    resil_counter *c = counter_of(b, "alpha_requests", "Requests handled.", mc, 2,
                                  (const char *const[]){"GET", "200"});
    assert_true(resil_counter_value(c) == 6);
    free(ta);
    json_decref(doc);
    resil_metrics_registry_free(b);
    resil_metrics_registry_free(a);
}

static void test_merge_json_bad(void **state)
{
    (void)state;
    resil_metrics_registry *r = new_registry(0);
    resil_error err;
    const char *bad_docs[] = {
        "3",
        "{}",
        "{\"metrics\": 5}",
        "{\"metrics\": [3]}",
        "{\"metrics\": [{\"name\": \"x\"}]}",
        "{\"metrics\":[{\"name\":\"x\",\"type\":\"summary\",\"labels\":[],\"series\":[]}]}",
        "{\"metrics\":[{\"name\":\"x\",\"type\":\"counter\",\"labels\":[],\"series\":[{}]}]}",
    };
    for (size_t i = 0; i < LEN(bad_docs); i++) {
        json_t *doc = json_loads(bad_docs[i], JSON_DECODE_ANY, NULL);
        assert_non_null(doc);
        int rc = resil_metrics_merge_json(r, doc, &err);
        if (rc != RESIL_EPARSE)
            fail_msg("merge of %s: %s, want RESIL_EPARSE", bad_docs[i], resil_err_name(rc));
        json_decref(doc);
    }
    /* A conflict with what is registered: RESIL_EINVAL. */
    resil_metrics_registry *a = golden_registry();
    json_t *doc = resil_metrics_to_json(a);
    resil_metric *m;
    const char *sensor[] = {"sensor"};
    assert_int_equal(resil_metrics_counter_new(&m, r, "zeta_temperature",
                                               "Temperature \\ in \"C\"\nsecond line", sensor, 1,
                                               &err),
                     0);
    assert_int_equal(resil_metrics_merge_json(r, doc, &err), RESIL_EINVAL);
    json_decref(doc);
    resil_metrics_registry_free(a);
    resil_metrics_registry_free(r);
}

/* ---- the environment ------------------------------------------------------------------ */

static void test_env_enabled(void **state)
{
    (void)state;
    unsetenv("RESIL_METRICS_MAX_ENTRIES");
    struct {
        const char *v;
        int rc;
        bool enabled;
    } cases[] = {
        {"false", 0, false}, {"0", 0, false},   {"no", 0, false},   {"off", 0, false},
        {"FALSE", 0, false}, {"Off", 0, false}, {"TRUE", 0, true},  {"true", 0, true},
        {"1", 0, true},      {"yes", 0, true},  {"On", 0, true},    {"maybe", RESIL_EINVAL, true},
        {"", RESIL_EINVAL, true}, {"2", RESIL_EINVAL, true}, {"truex", RESIL_EINVAL, true},
    };
    for (size_t i = 0; i < LEN(cases); i++) {
        setenv("RESIL_METRICS_ENABLED", cases[i].v, 1);
        bool en = !cases[i].enabled;
        size_t max = 0;
        resil_error err;
        memset(&err, 0, sizeof err);
        int rc = resil_metrics_env(&en, &max, &err);
        if (rc != cases[i].rc || en != cases[i].enabled)
            fail_msg("RESIL_METRICS_ENABLED=\"%s\": rc %s enabled %d, want %s %d", cases[i].v,
                     resil_err_name(rc), en, resil_err_name(cases[i].rc), cases[i].enabled);
        assert_int_equal(max, 10000);
        if (rc) {
            assert_true(strstr(err.path, "RESIL_METRICS_ENABLED") ||
                        strstr(err.message, "RESIL_METRICS_ENABLED"));
            if (*cases[i].v)
                assert_non_null(strstr(err.message, cases[i].v));
        }
    }
    unsetenv("RESIL_METRICS_ENABLED");
    bool en = false;
    size_t max = 0;
    assert_int_equal(resil_metrics_env(&en, &max, NULL), 0);
    assert_true(en);
    assert_int_equal(max, 10000);
    /* Either out-parameter may be NULL. */
    assert_int_equal(resil_metrics_env(NULL, NULL, NULL), 0);
    setenv("RESIL_METRICS_ENABLED", "maybe", 1);
    assert_int_equal(resil_metrics_env(NULL, &max, NULL), RESIL_EINVAL);
    unsetenv("RESIL_METRICS_ENABLED");
}

static void test_env_max_entries(void **state)
{
    (void)state;
    unsetenv("RESIL_METRICS_ENABLED");
    struct {
        const char *v;
        int rc;
        size_t max;
    } cases[] = {
        {"10", 0, 10},
        {"1", 0, 1},
        {"10000000", 0, 10000000},
        {"0", RESIL_EINVAL, 10000},
        {"-1", RESIL_EINVAL, 10000},
        {"abc", RESIL_EINVAL, 10000},
        {"99999999999", RESIL_EINVAL, 10000},
        {"10000001", RESIL_EINVAL, 10000},
        {"10abc", RESIL_EINVAL, 10000},
        {"", RESIL_EINVAL, 10000},
        {"184467440737095516160", RESIL_EINVAL, 10000},
    };
    for (size_t i = 0; i < LEN(cases); i++) {
        setenv("RESIL_METRICS_MAX_ENTRIES", cases[i].v, 1);
        bool en = false;
        size_t max = 12345;
        resil_error err;
        memset(&err, 0, sizeof err);
        int rc = resil_metrics_env(&en, &max, &err);
        if (rc != cases[i].rc || max != cases[i].max)
            fail_msg("RESIL_METRICS_MAX_ENTRIES=\"%s\": rc %s max %zu, want %s %zu", cases[i].v,
                     resil_err_name(rc), max, resil_err_name(cases[i].rc), cases[i].max);
        assert_true(en);
        if (rc) {
            assert_true(strstr(err.path, "RESIL_METRICS_MAX_ENTRIES") ||
                        strstr(err.message, "RESIL_METRICS_MAX_ENTRIES"));
            if (*cases[i].v)
                assert_non_null(strstr(err.message, cases[i].v));
        }
    }
    unsetenv("RESIL_METRICS_MAX_ENTRIES");
}

/* ---- the original module's interface --------------------------------------------------- */

static json_int_t summary_int(json_t *s, const char *key)
{
    json_t *v = json_object_get(s, key);
    if (!json_is_integer(v)) {
        char *d = json_dumps(s, JSON_INDENT(1));
        print_error("summary: %s\n", d);
        free(d);
        fail_msg("summary has no integer \"%s\"", key);
    }
    return json_integer_value(v);
}

static void test_record_and_summary(void **state)
{
    (void)state;
    assert_true(resil_metrics_enabled());
    resil_metrics_entries_clear();
    json_t *s = resil_get_metrics_summary();
    assert_non_null(s);
    assert_int_equal(summary_int(s, "total_entries"), 0);
    json_decref(s);

    assert_int_equal(resil_record_retry_attempt("rec_op_a", 1, false, 0.5), 0);
    assert_int_equal(resil_record_retry_attempt("rec_op_a", 2, true, 0.25), 0);
    assert_int_equal(resil_record_circuit_breaker_state("rec_svc_b", "open"), 0);
    assert_int_equal(resil_record_circuit_breaker_state("rec_svc_b", "closed"), 0);
    assert_int_equal(resil_record_oscillation_event("ABAB", "rec_agent_c", 3), 0);
    assert_int_equal(resil_record_oscillation_event("RUNAWAY", NULL, 0), 0);
    assert_int_equal(resil_record_retry_attempt(NULL, 1, true, 0), RESIL_EINVAL);
    assert_int_equal(resil_record_circuit_breaker_state(NULL, "open"), RESIL_EINVAL);
    assert_int_equal(resil_record_oscillation_event(NULL, "a", 1), RESIL_EINVAL);

    s = resil_get_metrics_summary();
    assert_non_null(s);
    assert_int_equal(summary_int(s, "total_entries"), 6);
    assert_int_equal(summary_int(s, "max_entries"), 10000);
    assert_true(json_is_true(json_object_get(s, "enabled")));
    assert_true(json_is_object(json_object_get(s, "retry_attempts")));
    assert_true(json_is_object(json_object_get(s, "circuit_breakers")));
    assert_true(json_is_object(json_object_get(s, "oscillations")));
    assert_true(json_is_number(json_object_get(s, "oldest")));
    assert_true(json_is_number(json_object_get(s, "newest")));
    assert_true(json_number_value(json_object_get(s, "oldest")) <=
                json_number_value(json_object_get(s, "newest")));
    /* What the entries say: two attempts (one failed), the breaker's last
     * state, one event per pattern. */
    json_t *ra = json_object_get(s, "retry_attempts");
    assert_int_equal(summary_int(ra, "attempts"), 2);
    assert_int_equal(summary_int(ra, "successes"), 1);
    assert_int_equal(summary_int(ra, "failures"), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(s, "circuit_breakers"),
                                                          "rec_svc_b")),
                        "closed");
    assert_int_equal(summary_int(json_object_get(s, "oscillations"), "ABAB"), 1);
    assert_int_equal(summary_int(json_object_get(s, "oscillations"), "RUNAWAY"), 1);
    json_decref(s);

    char *text = resil_export_prometheus_metrics();
    assert_non_null(text);
    assert_non_null(strstr(text, "rec_op_a"));
    assert_non_null(strstr(text, "rec_svc_b"));
    assert_non_null(strstr(text, "ABAB"));
    assert_non_null(strstr(text, "RUNAWAY"));
    assert_non_null(strstr(text, "# TYPE "));
    /* The same as exporting the default registry. */
    char *again = export_fmt(resil_metrics_default(), RESIL_METRICS_PROMETHEUS);
    assert_string_equal(text, again);
    free(again);
    free(text);
    assert_ptr_equal(resil_metrics_default(), resil_metrics_default());

    resil_metrics_entries_clear();
    s = resil_get_metrics_summary();
    assert_int_equal(summary_int(s, "total_entries"), 0);
    json_decref(s);
}

static int child_ring(void)
{
    CK(resil_metrics_enabled());
    /* Five oscillation events, then 25 retry attempts: the events and the
     * first 15 attempts rotate out. */
    for (int i = 0; i < 5; i++)
        CK(resil_record_oscillation_event("OLD_PATTERN", "ring_agent", i) == 0);
    for (int i = 0; i < 25; i++) {
        char op[32];
        snprintf(op, sizeof op, "ring_op_%02d", i);
        CK(resil_record_retry_attempt(op, 1, i >= 20, 0.001 * i) == 0);
    }
    json_t *s = resil_get_metrics_summary();
    CK(s != NULL);
    CK(json_integer_value(json_object_get(s, "total_entries")) == 10);
    CK(json_integer_value(json_object_get(s, "max_entries")) == 10);
    json_t *ra = json_object_get(s, "retry_attempts");
    CK(json_integer_value(json_object_get(ra, "attempts")) == 10);
    CK(json_integer_value(json_object_get(ra, "successes")) == 5);
    CK(json_object_size(json_object_get(s, "oscillations")) == 0);
    json_decref(s);
    CK(resil_record_circuit_breaker_state("ring_svc", "open") == 0);
    s = resil_get_metrics_summary();
    CK(json_integer_value(json_object_get(s, "total_entries")) == 10);
    CK(json_integer_value(json_object_get(json_object_get(s, "retry_attempts"), "attempts")) ==
       9);
    CK(json_object_get(json_object_get(s, "circuit_breakers"), "ring_svc") != NULL);
    json_decref(s);
    /* Cleared, then filled again past the cap. */
    resil_metrics_entries_clear();
    for (int i = 0; i < 12; i++)
        CK(resil_record_oscillation_event("NEW", NULL, 1) == 0);
    s = resil_get_metrics_summary();
    CK(json_integer_value(json_object_get(s, "total_entries")) == 10);
    CK(json_integer_value(json_object_get(json_object_get(s, "oscillations"), "NEW")) == 10);
    json_decref(s);
    /* The registry is not a ring: every series is still exported. */
    char *text = resil_export_prometheus_metrics();
    CK(text && strstr(text, "ring_op_00") && strstr(text, "ring_svc"));
    free(text);
    return 0;
}

static resil_outcome off_flaky(resil_retry_call *call, void *arg)
{
    (void)arg;
    return call->attempt < 2 ? RESIL_OUTCOME_TRANSIENT : RESIL_OUTCOME_SUCCESS;
}

static int off_op_ok(void *arg)
{
    (void)arg;
    return 0;
}

static int child_disabled(void)
{
    CK(!resil_metrics_enabled());
    /* resil's own modules record nothing: the inline retry (which then
     * skips its count without a call), the slow path, a breaker */
    static const resil_retry_config cfg = RESIL__RETRY_PRESET(2, 0.0, 0.0);
    for (int i = 0; i < 3; i++)
        CK(resil_retry(hand_ok, NULL, "off_retry", &cfg, NULL, NULL) == 0);
    CK(resil__private_retry_tls_seen.off == 1 && resil__private_retry_tls_seen.name == NULL);
    CK(resil_retry(off_flaky, NULL, "off_retry", &cfg, NULL, NULL) == 0);
    resil_breaker_opts bo = RESIL_BREAKER_OPTS_INIT;
    bo.state_dir = "";
    resil_breaker *b = NULL;
    CK(resil_breaker_new(&b, "off_breaker", &bo, NULL) == 0);
    CK(resil_breaker_call(b, off_op_ok, NULL) == 0);
    CK(resil_breaker_trip(b) == 0);
    resil_breaker_free(b);
    CK(resil_record_retry_attempt("off_op", 1, true, 0.5) == 0);
    CK(resil_record_circuit_breaker_state("off_svc", "open") == 0);
    CK(resil_record_oscillation_event("ABAB", "off_agent", 2) == 0);
    json_t *s = resil_get_metrics_summary();
    CK(s != NULL);
    CK(json_integer_value(json_object_get(s, "total_entries")) == 0);
    CK(json_is_false(json_object_get(s, "enabled")));
    json_decref(s);
    char *text = resil_export_prometheus_metrics();
    CK(text != NULL);
    CK(strstr(text, "off_op") == NULL && strstr(text, "off_svc") == NULL &&
       strstr(text, "off_agent") == NULL && strstr(text, "off_retry") == NULL &&
       strstr(text, "off_breaker") == NULL && strstr(text, "resil_retry") == NULL &&
       strstr(text, "resil_circuitbreaker") == NULL);
    free(text);
    return 0;
}

/* A bad value: reported once on stderr, and the default (on) used. */
static int child_bad_enabled(void)
{
    CK(resil_metrics_enabled());
    CK(resil_metrics_enabled());
    CK(resil_record_retry_attempt("bad_env_op", 1, true, 0.5) == 0);
    CK(resil_record_retry_attempt("bad_env_op", 2, true, 0.5) == 0);
    json_t *s = resil_get_metrics_summary();
    CK(json_integer_value(json_object_get(s, "total_entries")) == 2);
    json_decref(s);
    return 0;
}

static void test_ring_rotates(void **state)
{
    (void)state;
    char *err = NULL;
    int st = run_child("ring", "RESIL_METRICS_MAX_ENTRIES", "10", NULL, NULL, &err);
    assert_exit0(st, "RESIL_METRICS_MAX_ENTRIES=10", err);
    free(err);
}

static void test_disabled_is_noop(void **state)
{
    (void)state;
    const char *offs[] = {"false", "0", "OFF"};
    for (size_t i = 0; i < LEN(offs); i++) {
        char *err = NULL;
        int st = run_child("disabled", "RESIL_METRICS_ENABLED", offs[i], NULL, NULL, &err);
        assert_exit0(st, offs[i], err);
        free(err);
    }
}

static void test_bad_enabled_reported_once(void **state)
{
    (void)state;
    char *err = NULL;
    int st = run_child("bad_enabled", "RESIL_METRICS_ENABLED", "maybe", NULL, NULL, &err);
    assert_exit0(st, "RESIL_METRICS_ENABLED=maybe", err);
    int mentions = 0;
    for (const char *p = err; (p = strstr(p, "RESIL_METRICS_ENABLED")) != NULL; p++)
        mentions++;
    if (mentions != 1 || !strstr(err, "maybe"))
        fail_msg("stderr should name RESIL_METRICS_ENABLED and \"maybe\" once:\n%s", err);
    free(err);
}

static void test_timer_fake_clock(void **state)
{
    (void)state;
    resil_fake_clock fc;
    const resil_clock *clk = resil_fake_clock_init(&fc, 5 * S_NS, 1700000000LL * S_NS);
    resil_timer t;
    resil_timer_start(&t, clk);
    assert_true(resil_timer_elapsed(&t) == 0);
    resil_fake_clock_advance(&fc, 1500000000LL);
    assert_true(resil_timer_elapsed(&t) == 1.5);
    resil_fake_clock_advance(&fc, 250000000LL);
    assert_true(resil_timer_elapsed(&t) == 1.75);
    /* Another timer started later. */
    resil_timer t2;
    resil_timer_start(&t2, clk);
    resil_fake_clock_advance(&fc, 1000);
    assert_true(resil_timer_elapsed(&t2) == 1e-6);
    /* The system clock: small and not negative. */
    resil_timer_start(&t, NULL);
    double e = resil_timer_elapsed(&t);
    assert_true(e >= 0 && e < 5);
}

/* ---- textfiles --------------------------------------------------------------------------- */

static void test_write_textfile(void **state)
{
    (void)state;
    char dir[256], path[400];
    make_tmpdir(dir, sizeof dir, "textfile");
    resil_metrics_registry *r = golden_registry();
    resil_error err;
    int rc = resil_metrics_write_textfile(r, dir, "resil_job", &err);
    if (rc != 0)
        fail_msg("write_textfile: %s (%s)", resil_err_name(rc), err.message);
    snprintf(path, sizeof path, "%s/resil_job.prom", dir);
    char *got = slurp(path, NULL);
    assert_non_null(got);
    char *want = export_fmt(r, RESIL_METRICS_PROMETHEUS);
    assert_string_equal(got, want);
    free(got);
    /* Rewritten with new values: the file follows, still one file. */
    resil_counter *c = counter_of(r, "beta_events_total", "Events.", NULL, 0, NULL);
    resil_counter_inc(c);
    assert_int_equal(resil_metrics_write_textfile(r, dir, "resil_job", &err), 0);
    got = slurp(path, NULL);
    assert_true(sample(got, "beta_events_total", NULL) == 3.5);
    free(got);
    free(want);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        /* The files module's permanent lock sidecar is not a temp file
         * (node_exporter reads only *.prom). */
        if (strcmp(e->d_name, "resil_job.prom.lock") == 0)
            continue;
        if (strcmp(e->d_name, "resil_job.prom") != 0)
            fail_msg("left behind in the textfile dir: %s", e->d_name);
        files++;
    }
    closedir(d);
    assert_int_equal(files, 1);
    /* A directory that does not exist: an error naming the file. */
    char missing[400];
    snprintf(missing, sizeof missing, "%s/no/such/dir", dir);
    memset(&err, 0, sizeof err);
    rc = resil_metrics_write_textfile(r, missing, "resil_job", &err);
    assert_true(rc < 0);
    assert_non_null(strstr(err.path, "resil_job.prom"));
    resil_metrics_registry_free(r);
    rm_rf(dir);
}

static int remove_tmpdirs(void **state)
{
    (void)state;
    for (int i = 0; i < nmade; i++) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%.255s'", made_dirs[i]);
        if (system(cmd) != 0)
            return -1;
    }
    nmade = 0;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--child") == 0) {
        if (strcmp(argv[2], "ring") == 0)
            return child_ring();
        if (strcmp(argv[2], "disabled") == 0)
            return child_disabled();
        if (strcmp(argv[2], "bad_enabled") == 0)
            return child_bad_enabled();
        return 2;
    }
    /* The defaults, whatever the caller's environment says. */
    unsetenv("RESIL_METRICS_ENABLED");
    unsetenv("RESIL_METRICS_MAX_ENTRIES");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metric_names),
        cmocka_unit_test(test_label_names),
        cmocka_unit_test(test_reregistration),
        cmocka_unit_test(test_label_count),
        cmocka_unit_test(test_exported_name_collisions),
        cmocka_unit_test(test_histogram_buckets_invalid),
        cmocka_unit_test(test_default_buckets),
        cmocka_unit_test(test_handles),
        cmocka_unit_test(test_counter_gauge_values),
        cmocka_unit_test(test_histogram_le),
        cmocka_unit_test(test_histogram_extreme_values),
        cmocka_unit_test(test_cardinality_cap),
        cmocka_unit_test(test_overflow_counter_not_capped),
        cmocka_unit_test(test_export_prometheus_golden),
        cmocka_unit_test(test_export_openmetrics_golden),
        cmocka_unit_test(test_openmetrics_le_canonical),
        cmocka_unit_test(test_export_empty),
        cmocka_unit_test(test_export_json),
        cmocka_unit_test(test_content_types_and_formats),
        cmocka_unit_test(test_promtool_prometheus),
        cmocka_unit_test(test_openmetrics_parsers),
        cmocka_unit_test(test_threads_counter_exact),
        cmocka_unit_test(test_threads_histogram_exact),
        cmocka_unit_test(test_slots_owned_shared_exact),
        cmocka_unit_test(test_slots_thread_churn_exact),
        cmocka_unit_test(test_slots_hand_over),
        cmocka_unit_test(test_slots_after_fork),
        cmocka_unit_test(test_threads_same_handle),
        cmocka_unit_test(test_threads_register_same_family),
        cmocka_unit_test(test_threads_export_while_growing),
        cmocka_unit_test(test_threads_flush_while_writing),
        cmocka_unit_test(test_processes_flush_and_load),
        cmocka_unit_test(test_fork_inherited_counts_not_double_counted),
        cmocka_unit_test(test_load_dir_bad_line),
        cmocka_unit_test(test_flush_gauge_last_value),
        cmocka_unit_test(test_flush_load_roundtrip),
        cmocka_unit_test(test_json_roundtrip_merge),
        cmocka_unit_test(test_merge_json_bad),
        cmocka_unit_test(test_env_enabled),
        cmocka_unit_test(test_env_max_entries),
        cmocka_unit_test(test_record_and_summary),
        cmocka_unit_test(test_ring_rotates),
        cmocka_unit_test(test_disabled_is_noop),
        cmocka_unit_test(test_bad_enabled_reported_once),
        cmocka_unit_test(test_timer_fake_clock),
        cmocka_unit_test(test_write_textfile),
    };
    if (getenv("RESIL_TEST_FILTER"))
        cmocka_set_test_filter(getenv("RESIL_TEST_FILTER"));
    if (getenv("RESIL_TEST_SKIP"))
        cmocka_set_skip_filter(getenv("RESIL_TEST_SKIP"));
    return cmocka_run_group_tests(tests, NULL, remove_tmpdirs);
}
