/* Hardening of metrics (issue 10): the /metrics server against slow
 * clients (a whole-request deadline, a per-IP limit, nothing on stderr),
 * label values that are not UTF-8, bad records in a metrics directory, and
 * metrics directories that another user could have planted things in.
 *
 * The server tests are about real time: they run a real server on
 * 127.0.0.1 with a short deadline (0.4 s) and measure with the monotonic
 * clock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "resil/metrics.h"
#include "resil/metrics_dir.h"
#include "resil/metrics_http.h"
#include "internal/metrics.h"
#include "internal/retry_metrics.h"

#define DEADLINE_S 0.4
#define LEN(a) (sizeof(a) / sizeof((a)[0]))

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- a small client ---------------------------------------------------------- */

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One GET; returns the status (0: no answer, the connection was closed or
 * refused) and the body into body[size]. */
static int get(int port, const char *path, char *body, size_t size)
{
    if (body && size)
        body[0] = '\0';
    int fd = connect_port(port);
    if (fd < 0)
        return 0;
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return 0;
    }
    char buf[16384];
    size_t len = 0;
    for (;;) {
        ssize_t k = read(fd, buf + len, sizeof buf - 1 - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        len += (size_t)k;
        if (len == sizeof buf - 1)
            break;
    }
    close(fd);
    buf[len] = '\0';
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        return 0;
    char *sep = strstr(buf, "\r\n\r\n");
    if (sep && body)
        snprintf(body, size, "%s", sep + 4);
    return status;
}

/* Whether the server closed fd (EOF or a reset) within wait_s. */
static bool closed_within(int fd, double wait_s)
{
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, (int)(wait_s * 1000)) <= 0)
        return false;
    char b[64];
    ssize_t k = recv(fd, b, sizeof b, MSG_DONTWAIT);
    return k == 0 || (k < 0 && errno == ECONNRESET);
}

static resil_metrics_registry *registry_with_counter(void)
{
    resil_metrics_registry *r = NULL;
    assert_int_equal(resil_metrics_registry_new(&r, NULL, NULL), 0);
    resil_metric *m;
    assert_int_equal(resil_metrics_counter_new(&m, r, "hard_total", "h", NULL, 0, NULL), 0);
    resil_counter *c;
    assert_int_equal(resil_counter_get(&c, m, NULL), 0);
    resil_counter_add(c, 7);
    return r;
}

static resil_metrics_server *start(resil_metrics_registry *r, resil_metrics_server_opts *o)
{
    resil_metrics_server *s = NULL;
    resil_error e;
    resil_error_clear(&e);
    o->listen = "127.0.0.1:0";
    int rc = resil_metrics_server_start_opts(&s, r, NULL, NULL, o, &e);
    if (rc != 0)
        fail_msg("start: %s %s", resil_err_name(rc), e.message);
    return s;
}

/* ---- the request deadline ------------------------------------------------------- */

/* Many connections that trickle a header byte now and then (more than the
 * per-IP limit, and as many as the whole limit): a normal scrape still
 * succeeds within the deadline plus a margin, and every trickler is closed
 * by the server once its deadline has passed. */
static void test_slowloris_scrape_gets_through(void **state)
{
    (void)state;
    resil_metrics_registry *r = registry_with_counter();
    resil_metrics_server_opts o = RESIL_METRICS_SERVER_OPTS_INIT;
    o.request_timeout_s = DEADLINE_S;
    o.per_ip_limit = 4;
    o.connection_limit = 8;
    resil_metrics_server *s = start(r, &o);
    int port = resil_metrics_server_port(s);

    enum { N = 12 };
    int fds[N];
    double t0 = now_s();
    for (int i = 0; i < N; i++) {
        fds[i] = connect_port(port);
        assert_true(fds[i] >= 0);
        send(fds[i], "GET /metrics HTTP/1.1\r\n", 23, MSG_NOSIGNAL);
    }
    /* Trickle into the open ones while scraping until a scrape succeeds. */
    char body[4096];
    int status = 0;
    double got = 0;
    while (now_s() - t0 < DEADLINE_S + 3.0) {
        for (int i = 0; i < N; i++)
            if (fds[i] >= 0)
                send(fds[i], "X", 1, MSG_NOSIGNAL);
        status = get(port, "/metrics", body, sizeof body);
        if (status == 200) {
            got = now_s() - t0;
            break;
        }
        sleep_s(0.02);
    }
    if (status != 200)
        fail_msg("no scrape got through in %.1f s of trickling connections (last status %d)",
                 DEADLINE_S + 3.0, status);
    if (got > DEADLINE_S + 1.5)
        fail_msg("the scrape took %.2f s, want <= deadline %.1f s + 1.5 s", got, DEADLINE_S);
    assert_non_null(strstr(body, "hard_total 7"));
    /* Every trickler has been closed by now or is within its deadline. */
    for (int i = 0; i < N; i++) {
        double left = DEADLINE_S + 1.0 - (now_s() - t0);
        if (!closed_within(fds[i], left > 0.05 ? left : 0.05))
            fail_msg("trickling connection %d still open %.2f s after it connected", i,
                     now_s() - t0);
        close(fds[i]);
    }
    resil_metrics_server_stop(s);
    resil_metrics_registry_free(r);
}

/* One connection that sends a byte every 50 ms is closed at its deadline,
 * not before it, and not never (the idle timeout is reset by each byte). */
static void test_trickler_closed_at_deadline(void **state)
{
    (void)state;
    resil_metrics_registry *r = registry_with_counter();
    resil_metrics_server_opts o = RESIL_METRICS_SERVER_OPTS_INIT;
    o.request_timeout_s = DEADLINE_S;
    resil_metrics_server *s = start(r, &o);
    int fd = connect_port(resil_metrics_server_port(s));
    assert_true(fd >= 0);
    double t0 = now_s();
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa";
    size_t k = 0;
    double closed_at = -1;
    while (now_s() - t0 < DEADLINE_S + 2.0) {
        if (k < sizeof req - 1)
            send(fd, req + k++, 1, MSG_NOSIGNAL);
        if (closed_within(fd, 0.05)) {
            closed_at = now_s() - t0;
            break;
        }
    }
    close(fd);
    if (closed_at < 0)
        fail_msg("a trickling connection was still open after %.1f s (deadline %.1f s)",
                 DEADLINE_S + 2.0, DEADLINE_S);
    if (closed_at < DEADLINE_S * 0.9)
        fail_msg("closed after %.3f s, before its deadline of %.1f s", closed_at, DEADLINE_S);
    /* a request that arrives whole in time is answered (also after that) */
    char body[1024];
    assert_int_equal(get(resil_metrics_server_port(s), "/healthz", body, sizeof body), 200);
    resil_metrics_server_stop(s);
    resil_metrics_registry_free(r);
}

/* A keep-alive connection's second request has its own deadline. */
static void test_keepalive_second_request_has_deadline(void **state)
{
    (void)state;
    resil_metrics_registry *r = registry_with_counter();
    resil_metrics_server_opts o = RESIL_METRICS_SERVER_OPTS_INIT;
    o.request_timeout_s = DEADLINE_S;
    resil_metrics_server *s = start(r, &o);
    int fd = connect_port(resil_metrics_server_port(s));
    assert_true(fd >= 0);
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)(sizeof req - 1));
    char buf[1024];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "200"));
    /* now an idle, kept-alive connection: closed once the deadline passes */
    sleep_s(DEADLINE_S * 0.5);
    assert_false(closed_within(fd, 0.0));
    assert_true(closed_within(fd, DEADLINE_S + 1.0));
    close(fd);
    resil_metrics_server_stop(s);
    resil_metrics_registry_free(r);
}

/* ---- nothing on stderr ------------------------------------------------------------ */

struct log_lines {
    pthread_mutex_t mu;
    int n;
    char first[256];
};

static void count_log(const char *line, void *arg)
{
    struct log_lines *l = arg;
    pthread_mutex_lock(&l->mu);
    if (l->n++ == 0)
        snprintf(l->first, sizeof l->first, "%s", line);
    pthread_mutex_unlock(&l->mu);
}

/* Clients that hang up, half-sent requests, refused connections: nothing is
 * written on fd 2 by default; with a log callback its messages go there. */
static void hangups(int port)
{
    for (int i = 0; i < 3; i++) {
        int fd = connect_port(port);
        if (fd >= 0)
            close(fd);
        fd = connect_port(port);
        if (fd >= 0) {
            send(fd, "GET /metr", 9, MSG_NOSIGNAL);
            close(fd);
        }
    }
    int many[6];
    for (size_t i = 0; i < LEN(many); i++) /* beyond the per-IP limit of 2 */
        many[i] = connect_port(port);
    sleep_s(0.1);
    for (size_t i = 0; i < LEN(many); i++)
        if (many[i] >= 0) {
            struct linger lg = {1, 0}; /* a reset */
            setsockopt(many[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(many[i]);
        }
    /* and one that the deadline closes */
    int slow = connect_port(port);
    send(slow, "GET / HTTP/1.1\r\n", 16, MSG_NOSIGNAL);
    closed_within(slow, DEADLINE_S + 1.0);
    close(slow);
    sleep_s(0.1);
}

static void test_quiet_by_default(void **state)
{
    (void)state;
    char path[] = "/tmp/resil-hard-stderr.XXXXXX";
    int cap = mkstemp(path);
    assert_true(cap >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(cap, 2), 2);

    resil_metrics_registry *r = registry_with_counter();
    resil_metrics_server_opts o = RESIL_METRICS_SERVER_OPTS_INIT;
    o.request_timeout_s = DEADLINE_S;
    o.per_ip_limit = 2;
    resil_metrics_server *s = start(r, &o);
    hangups(resil_metrics_server_port(s));
    resil_metrics_server_stop(s);

    /* the same with a log callback: the messages go to it */
    struct log_lines l;
    memset(&l, 0, sizeof l);
    pthread_mutex_init(&l.mu, NULL);
    o = (resil_metrics_server_opts)RESIL_METRICS_SERVER_OPTS_INIT;
    o.request_timeout_s = DEADLINE_S;
    o.per_ip_limit = 2;
    o.log = count_log;
    o.log_arg = &l;
    s = start(r, &o);
    hangups(resil_metrics_server_port(s));
    resil_metrics_server_stop(s);
    resil_metrics_registry_free(r);

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char buf[2048];
    ssize_t n = pread(cap, buf, sizeof buf - 1, 0);
    close(cap);
    pthread_mutex_destroy(&l.mu);
    if (n > 0) {
        buf[n] = '\0';
        fail_msg("the server wrote on stderr: %s", buf);
    }
    if (l.n == 0)
        fail_msg("the log callback got no message (a refused connection is one)");
    assert_null(strchr(l.first, '\n'));
}

/* ---- a 500 names what failed ------------------------------------------------------- */

static int failing_collect(char **out, size_t *len, resil_metrics_format format,
                           resil_error *err, void *arg)
{
    (void)out;
    (void)len;
    (void)format;
    (void)arg;
    return resil_error_set(err, -EACCES, "d/metrics.ndjson",
                           "d/metrics.ndjson:17: cannot read it");
}

static void test_500_names_file_and_line(void **state)
{
    (void)state;
    resil_metrics_server_opts o = RESIL_METRICS_SERVER_OPTS_INIT;
    o.collect_err = failing_collect;
    o.listen = "127.0.0.1:0";
    resil_metrics_server *s = NULL;
    assert_int_equal(resil_metrics_server_start_opts(&s, NULL, NULL, NULL, &o, NULL), 0);
    char body[1024];
    assert_int_equal(get(resil_metrics_server_port(s), "/metrics", body, sizeof body), 500);
    assert_non_null(strstr(body, "d/metrics.ndjson:17: cannot read it"));
    resil_metrics_server_stop(s);
    /* a bad deadline is refused */
    o.request_timeout_s = -1;
    assert_int_equal(resil_metrics_server_start_opts(&s, NULL, NULL, NULL, &o, NULL),
                     RESIL_EINVAL);
}

/* ---- UTF-8 label values -------------------------------------------------------------- */

static void make_dir(char *dir, size_t size, const char *tag)
{
    snprintf(dir, size, "/tmp/resil-hard-%s.XXXXXX", tag);
    assert_non_null(mkdtemp(dir));
}

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Whether s is valid UTF-8 (a plain decoder, independent of the library's). */
static bool valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
        if (n == 0 || (n == 2 && *p < 0xC2))
            return false;
        unsigned cp = n == 1 ? *p : *p & (0x7F >> n);
        for (int i = 1; i < n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        p += n;
    }
    return true;
}

static void test_label_values_made_valid(void **state)
{
    (void)state;
    resil_metrics_registry *r = NULL;
    assert_int_equal(resil_metrics_registry_new(&r, NULL, NULL), 0);
    resil_metric *m;
    static const char *const lab[] = {"name"};
    assert_int_equal(resil_metrics_counter_new(&m, r, "u_total", "help \xfe", lab, 1, NULL), 0);
    static const char *const bad[] = {"\xff", "a\xc3", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80",
                                      "ok \xc3\xa9"};
    resil_counter *c[LEN(bad)];
    for (size_t i = 0; i < LEN(bad); i++) {
        const char *v[] = {bad[i]};
        assert_int_equal(resil_counter_get(&c[i], m, v), 0);
        resil_counter *again;
        assert_int_equal(resil_counter_get(&again, m, v), 0);
        assert_ptr_equal(again, c[i]); /* the same bad value, the same child */
        resil_counter_inc(c[i]);
    }
    for (int f = 0; f < 3; f++) {
        char *text = NULL;
        assert_int_equal(resil_metrics_export(&text, NULL, r, (resil_metrics_format)f), 0);
        if (!valid_utf8(text))
            fail_msg("export %d is not UTF-8:\n%s", f, text);
        if (f != RESIL_METRICS_JSON) {
            assert_non_null(strstr(text, "u_total{name=\"\xEF\xBF\xBD\"} 1"));
            assert_non_null(strstr(text, "u_total{name=\"a\xEF\xBF\xBD\"} 1"));
            assert_non_null(strstr(text, "u_total{name=\"ok \xc3\xa9\"} 1"));
        }
        free(text);
    }
    /* a metrics directory round trip keeps every series */
    char dir[256];
    make_dir(dir, sizeof dir, "utf8");
    resil_error e;
    resil_error_clear(&e);
    int rc = resil_metrics_flush_dir(r, dir, &e);
    if (rc)
        fail_msg("flush: %s %s", resil_err_name(rc), e.message);
    resil_metrics_registry *back = NULL;
    resil_metrics_dir_stats st;
    assert_int_equal(resil_metrics_load_dir_stats(&back, dir, &st, &e), 0);
    assert_int_equal(st.bad_records, 0);
    assert_int_equal(st.records, 1);
    char *text = NULL;
    assert_int_equal(resil_metrics_export(&text, NULL, back, RESIL_METRICS_PROMETHEUS), 0);
    assert_non_null(strstr(text, "u_total{name=\"\xEF\xBF\xBD\"} 1"));
    assert_non_null(strstr(text, "# HELP u_total help \xEF\xBF\xBD\n"));
    free(text);
    resil_metrics_registry_free(back);
    rm_rf(dir);
    resil_metrics_registry_free(r);
}

/* The original's record_* functions and resil's own instrumentation take
 * user-given names: none fails on bytes that are not UTF-8, and the default
 * registry and the summary stay valid. */
static void test_record_functions_take_any_bytes(void **state)
{
    (void)state;
    assert_int_equal(resil_record_retry_attempt("op\xff", 1, true, 0.01), 0);
    assert_int_equal(resil_record_circuit_breaker_state("svc\xfe", "open"), 0);
    assert_int_equal(resil_record_oscillation_event("AB\x80" "AB", "agent\xc3", 2), 0);
    /* a name cut at 63 bytes in the middle of a character */
    char longname[80];
    memset(longname, 'a', sizeof longname);
    memcpy(longname + 62, "\xc3\xa9", 2);
    longname[79] = '\0';
    assert_int_equal(resil_record_retry_attempt(longname, 1, false, 0.01), 0);
    resil__retry_metrics_done("retry\xff", 2, true);
    resil__retry_metrics_failed_attempt("retry\xff");
    char *text = resil_export_prometheus_metrics();
    assert_non_null(text);
    if (!valid_utf8(text))
        fail_msg("the default registry's export is not UTF-8");
    assert_non_null(strstr(text, "name=\"op\xEF\xBF\xBD\""));
    free(text);
    json_t *sum = resil_get_metrics_summary();
    assert_non_null(sum);
    json_t *cb = json_object_get(sum, "circuit_breakers");
    assert_non_null(json_object_get(cb, "svc\xEF\xBF\xBD"));
    char *dump = json_dumps(sum, 0);
    assert_non_null(dump);
    free(dump);
    json_decref(sum);
    char dir[256];
    make_dir(dir, sizeof dir, "rec");
    resil_error e;
    assert_int_equal(resil_metrics_flush_dir(resil_metrics_default(), dir, &e), 0);
    resil_metrics_registry *back = NULL;
    resil_metrics_dir_stats st;
    assert_int_equal(resil_metrics_load_dir_stats(&back, dir, &st, &e), 0);
    assert_int_equal(st.bad_records, 0);
    resil_metrics_registry_free(back);
    rm_rf(dir);
}

/* ---- bad records of a metrics directory ----------------------------------------------- */

static void append_line(const char *path, const char *text)
{
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static double counter_in(resil_metrics_registry *r, const char *name)
{
    char *text = NULL;
    assert_int_equal(resil_metrics_export(&text, NULL, r, RESIL_METRICS_PROMETHEUS), 0);
    double v = -1;
    char pat[200];
    snprintf(pat, sizeof pat, "\n%s ", name);
    const char *p = strstr(text, pat);
    if (p)
        v = strtod(p + strlen(pat), NULL);
    free(text);
    return v;
}

static void test_bad_records_skipped_counted_named(void **state)
{
    (void)state;
    char dir[256], file[400];
    make_dir(dir, sizeof dir, "bad");
    snprintf(file, sizeof file, "%s/metrics.ndjson", dir);
    resil_metrics_registry *r = registry_with_counter(); /* hard_total 7 */
    resil_error e;
    assert_int_equal(resil_metrics_flush_dir(r, dir, &e), 0); /* line 1 */
    /* line 2: raw bytes that are not UTF-8 (what a writer of old wrote) */
    append_line(file, "{\"metrics\":[{\"name\":\"x_total\",\"type\":\"counter\",\"help\":\"\","
                      "\"labels\":[\"n\"],\"series\":[{\"labels\":{\"n\":\"\xff\"},\"value\":1}]}]}\n");
    /* line 3: its first family is fine, its second is not: nothing of it counts */
    append_line(file, "{\"metrics\":[{\"name\":\"hard_total\",\"type\":\"counter\",\"help\":\"h\","
                      "\"labels\":[],\"series\":[{\"labels\":{},\"value\":1000}]},"
                      "{\"name\":\"y\",\"type\":\"nonsense\",\"labels\":[],\"series\":[]}]}\n");
    /* line 4: the same name with another type than line 1's */
    append_line(file, "{\"metrics\":[{\"name\":\"hard\",\"type\":\"gauge\",\"help\":\"h\","
                      "\"labels\":[],\"series\":[{\"labels\":{},\"value\":5}]}]}\n");
    resil_counter *c;
    resil_metric *m;
    assert_int_equal(resil_metrics_counter_new(&m, r, "hard_total", "h", NULL, 0, NULL), 0);
    assert_int_equal(resil_counter_get(&c, m, NULL), 0);
    resil_counter_add(c, 1);
    assert_int_equal(resil_metrics_flush_dir(r, dir, &e), 0); /* line 5: +1 */

    resil_metrics_registry *back = NULL;
    resil_metrics_dir_stats st;
    resil_error_clear(&e);
    int rc = resil_metrics_load_dir_stats(&back, dir, &st, &e);
    if (rc)
        fail_msg("load: %s %s", resil_err_name(rc), e.message);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.bad_records, 3);
    assert_int_equal(st.first_bad_line, 2);
    char where[450];
    snprintf(where, sizeof where, "%s:2: ", file);
    if (!strstr(st.first_bad, where))
        fail_msg("first_bad \"%s\" does not name %s", st.first_bad, where);
    assert_true(counter_in(back, "hard_total") == 8); /* 7 + 1, nothing of line 3 */
    assert_true(counter_in(back, "resil_metrics_dir_bad_records_total") == 3);
    char *text = NULL;
    assert_int_equal(resil_metrics_export(&text, NULL, back, RESIL_METRICS_PROMETHEUS), 0);
    assert_null(strstr(text, "x_total"));
    assert_null(strstr(text, "\ny "));
    free(text);
    resil_metrics_registry_free(back);

    /* the old entry point reads the same */
    assert_int_equal(resil_metrics_load_dir(&back, dir, &e), 0);
    assert_true(counter_in(back, "hard_total") == 8);
    resil_metrics_registry_free(back);
    resil_metrics_registry_free(r);
    rm_rf(dir);
}

/* ---- metrics directories that others could write ------------------------------------ */

#define NEED_ROOT()                                                     \
    do {                                                                \
        if (geteuid() != 0) {                                           \
            print_message("skipped: needs root (uid 65534 plays the other user)\n"); \
            skip();                                                     \
        }                                                               \
    } while (0)

static void test_flush_creates_private(void **state)
{
    (void)state;
    char parent[256], dir[400];
    make_dir(parent, sizeof parent, "priv");
    snprintf(dir, sizeof dir, "%s/md", parent);
    resil_metrics_registry *r = registry_with_counter();
    resil_error e;
    mode_t um = umask(0);
    int rc = resil_metrics_flush_dir(r, dir, &e);
    umask(um);
    if (rc)
        fail_msg("flush: %s %s", resil_err_name(rc), e.message);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    char f[500];
    snprintf(f, sizeof f, "%s/metrics.ndjson", dir);
    assert_int_equal(stat(f, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    snprintf(f, sizeof f, "%s/metrics.ndjson.lock", dir);
    assert_int_equal(stat(f, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    /* the modes an option gives */
    snprintf(dir, sizeof dir, "%s/md2", parent);
    resil_metrics_dir_opts o = RESIL_METRICS_DIR_OPTS_INIT;
    o.dir_mode = 0750;
    o.file_mode = 0640;
    um = umask(0);
    rc = resil_metrics_flush_dir_opts(r, dir, &o, &e);
    umask(um);
    assert_int_equal(rc, 0);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0750);
    snprintf(f, sizeof f, "%s/metrics.ndjson", dir);
    assert_int_equal(stat(f, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    resil_metrics_registry_free(r);
    rm_rf(parent);
}

static void test_flush_refuses_shared_or_foreign_dir(void **state)
{
    (void)state;
    NEED_ROOT();
    char dir[256], f[400];
    make_dir(dir, sizeof dir, "shared");
    snprintf(f, sizeof f, "%s/metrics.ndjson", dir);
    resil_metrics_registry *r = registry_with_counter();
    resil_error e;
    unsetenv("RESIL_METRICS_DIR_SHARED");

    assert_int_equal(chmod(dir, 0777), 0);
    resil_error_clear(&e);
    assert_int_equal(resil_metrics_flush_dir(r, dir, &e), -EPERM);
    assert_non_null(strstr(e.message, dir));
    assert_non_null(strstr(e.message, "RESIL_METRICS_DIR_SHARED"));
    assert_int_equal(access(f, F_OK), -1); /* nothing written */

    assert_int_equal(chmod(dir, 0700), 0);
    assert_int_equal(chown(dir, 65534, 65534), 0);
    assert_int_equal(resil_metrics_flush_dir(r, dir, &e), -EPERM);
    assert_int_equal(access(f, F_OK), -1);

    /* opted in: by the option, by the environment */
    resil_metrics_dir_opts o = RESIL_METRICS_DIR_OPTS_INIT;
    o.allow_shared = true;
    assert_int_equal(resil_metrics_flush_dir_opts(r, dir, &o, &e), 0);
    assert_int_equal(access(f, F_OK), 0);
    assert_int_equal(chmod(dir, 0777), 0);
    setenv("RESIL_METRICS_DIR_SHARED", "1", 1);
    resil_metric *m;
    resil_counter *c;
    assert_int_equal(resil_metrics_counter_new(&m, r, "hard_total", "h", NULL, 0, NULL), 0);
    assert_int_equal(resil_counter_get(&c, m, NULL), 0);
    resil_counter_inc(c);
    assert_int_equal(resil_metrics_flush_dir(r, dir, &e), 0);
    setenv("RESIL_METRICS_DIR_SHARED", "maybe", 1);
    assert_int_equal(resil_metrics_flush_dir(r, dir, &e), RESIL_EINVAL);
    assert_non_null(strstr(e.message, "RESIL_METRICS_DIR_SHARED"));
    unsetenv("RESIL_METRICS_DIR_SHARED");
    resil_metrics_registry_free(r);
    rm_rf(dir);
}

/* Links planted by another user in a shared metrics directory (opted in)
 * are never followed: the victim stays as it was. */
static void test_flush_never_follows_planted_links(void **state)
{
    (void)state;
    NEED_ROOT();
    char dir[256], victim[300], vdir[256], f[400];
    make_dir(vdir, sizeof vdir, "victim");
    snprintf(victim, sizeof victim, "%s/important.conf", vdir);
    static const char content[] = "key = value\nlast line without newline";
    FILE *v = fopen(victim, "w");
    assert_non_null(v);
    fputs(content, v);
    fclose(v);
    make_dir(dir, sizeof dir, "planted");
    assert_int_equal(chmod(dir, 01777), 0);
    resil_metrics_registry *r = registry_with_counter();
    resil_metrics_dir_opts o = RESIL_METRICS_DIR_OPTS_INIT;
    o.allow_shared = true;
    resil_error e;
    static const char *const names[] = {"metrics.ndjson", "metrics.ndjson.lock"};
    for (size_t i = 0; i < LEN(names); i++) {
        snprintf(f, sizeof f, "%s/%s", dir, names[i]);
        (void)unlink(f); /* the lock sidecar of the flush before */
        assert_int_equal(symlink(victim, f), 0);
        assert_int_equal(lchown(f, 65534, 65534), 0);
        resil_error_clear(&e);
        int rc = resil_metrics_flush_dir_opts(r, dir, &o, &e);
        if (rc != -ELOOP)
            fail_msg("a planted %s: %s (%s), want -ELOOP", names[i], resil_err_name(rc),
                     e.message);
        assert_non_null(strstr(e.message, names[i]));
        /* also without the opt-in (the directory is refused first) */
        assert_int_not_equal(resil_metrics_flush_dir_opts(r, dir, NULL, &e), 0);
        assert_int_equal(unlink(f), 0);
        if (i == 0) { /* the data file must exist for the lock's turn */
            assert_int_equal(resil_metrics_flush_dir_opts(r, dir, &o, &e), 0);
        }
    }
    /* a foreign regular file is not trusted either, unless opted in */
    snprintf(f, sizeof f, "%s/metrics.ndjson", dir);
    assert_int_equal(chown(f, 65534, 65534), 0);
    resil_metrics_dir_opts strict = RESIL_METRICS_DIR_OPTS_INIT;
    assert_int_equal(chmod(dir, 0700), 0);
    assert_int_equal(resil_metrics_flush_dir_opts(r, dir, &strict, &e), -EPERM);
    assert_non_null(strstr(e.message, "65534"));
    /* the directory itself given through a link another user planted in a
     * sticky world-writable directory */
    char sticky[256], link[400];
    make_dir(sticky, sizeof sticky, "sticky");
    assert_int_equal(chmod(sticky, 01777), 0);
    snprintf(link, sizeof link, "%s/md", sticky);
    assert_int_equal(symlink(vdir, link), 0);
    assert_int_equal(lchown(link, 65534, 65534), 0);
    assert_int_equal(resil_metrics_flush_dir_opts(r, link, &strict, &e), -EACCES);

    char back[200] = "";
    v = fopen(victim, "r");
    assert_non_null(v);
    size_t n = fread(back, 1, sizeof back - 1, v);
    fclose(v);
    back[n] = '\0';
    assert_string_equal(back, content);
    struct stat st;
    snprintf(f, sizeof f, "%s/metrics.ndjson", vdir);
    assert_int_equal(stat(f, &st), -1); /* nothing written into the victim's directory */
    resil_metrics_registry_free(r);
    rm_rf(dir);
    rm_rf(vdir);
    rm_rf(sticky);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slowloris_scrape_gets_through),
        cmocka_unit_test(test_trickler_closed_at_deadline),
        cmocka_unit_test(test_keepalive_second_request_has_deadline),
        cmocka_unit_test(test_quiet_by_default),
        cmocka_unit_test(test_500_names_file_and_line),
        cmocka_unit_test(test_label_values_made_valid),
        cmocka_unit_test(test_record_functions_take_any_bytes),
        cmocka_unit_test(test_bad_records_skipped_counted_named),
        cmocka_unit_test(test_flush_creates_private),
        cmocka_unit_test(test_flush_refuses_shared_or_foreign_dir),
        cmocka_unit_test(test_flush_never_follows_planted_links),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
