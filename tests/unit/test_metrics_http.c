/* The /metrics HTTP server (src/metrics_http.c): listen strings, port 0,
 * content negotiation, the collect callback, errors, other paths and
 * methods, a port in use, IPv6, concurrent scrapes, stopping with clients
 * connected.  A small blocking HTTP/1.0 client talks to it over loopback. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "resil/metrics.h"
#include "resil/metrics_http.h"

/* ---- a tiny HTTP client ----------------------------------------------------- */

typedef struct reply {
    int status;
    char head[4096]; /* the status line and headers */
    char *body;      /* malloc'd, NUL-terminated */
    size_t body_len;
} reply;

static void reply_free(reply *r)
{
    free(r->body);
    r->body = NULL;
}

static int connect_to(int family, int port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int rc;
    if (family == AF_INET6) {
        struct sockaddr_in6 a;
        memset(&a, 0, sizeof a);
        a.sin6_family = AF_INET6;
        a.sin6_port = htons((uint16_t)port);
        a.sin6_addr = in6addr_loopback;
        rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    } else {
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    }
    if (rc != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One request over IPv4 or IPv6 loopback; extra: more header lines ("" or
 * "Accept: ...\r\n").  Returns 0 and fills *out, or -1. */
static int request6(reply *out, int family, int port, const char *method, const char *path,
                    const char *extra)
{
    memset(out, 0, sizeof *out);
    int fd = connect_to(family, port);
    if (fd < 0)
        return -1;
    char req[1024];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: localhost\r\n%s\r\n", method, path,
                     extra);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t k = read(fd, buf + len, cap - len - 1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    close(fd);
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (!sep || sscanf(buf, "HTTP/1.%*d %d", &out->status) != 1) {
        free(buf);
        return -1;
    }
    size_t hlen = (size_t)(sep - buf);
    if (hlen >= sizeof out->head)
        hlen = sizeof out->head - 1;
    memcpy(out->head, buf, hlen);
    out->head[hlen] = '\0';
    out->body_len = len - (size_t)(sep + 4 - buf);
    out->body = malloc(out->body_len + 1);
    memcpy(out->body, sep + 4, out->body_len + 1);
    free(buf);
    return 0;
}

static int request(reply *out, int port, const char *method, const char *path, const char *extra)
{
    return request6(out, AF_INET, port, method, path, extra);
}

/* The value of header `name` (case-insensitive) into buf, "" if absent. */
static const char *header(const reply *r, const char *name, char *buf, size_t size)
{
    buf[0] = '\0';
    size_t n = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            const char *end = strstr(v, "\r\n");
            size_t len = end ? (size_t)(end - v) : strlen(v);
            if (len >= size)
                len = size - 1;
            memcpy(buf, v, len);
            buf[len] = '\0';
            break;
        }
    }
    return buf;
}

/* ---- fixtures ------------------------------------------------------------------ */

static resil_metrics_registry *registry_with_counter(resil_counter **out)
{
    resil_metrics_registry *r = NULL;
    assert_int_equal(resil_metrics_registry_new(&r, NULL, NULL), 0);
    resil_metric *m;
    static const char *const labels[] = {"job"};
    assert_int_equal(resil_metrics_counter_new(&m, r, "jobs_done_total", "Jobs done.", labels, 1,
                                               NULL),
                     0);
    resil_counter *c;
    static const char *const values[] = {"etl"};
    assert_int_equal(resil_counter_get(&c, m, values), 0);
    resil_counter_add(c, 3);
    if (out)
        *out = c;
    return r;
}

static resil_metrics_server *start_any(resil_metrics_registry *r, resil_metrics_collect_fn fn,
                                       void *arg)
{
    resil_metrics_server *s = NULL;
    resil_error e;
    resil_error_clear(&e);
    int rc = resil_metrics_server_start(&s, r, "127.0.0.1:0", fn, arg, &e);
    if (rc != 0)
        fail_msg("start: %d %s", rc, e.message);
    assert_non_null(s);
    assert_true(resil_metrics_server_port(s) > 0);
    return s;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_bad_listen_strings(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "nonsense", "127.0.0.1", ":9464", "::1:9464", "[::1]", "[::1]9464", "[::1:9464",
        "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:", "127.0.0.1:12a", "127.0.0.1:1234567",
        "", "[]:80",
    };
    resil_metrics_registry *r = registry_with_counter(NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        resil_metrics_server *s = (resil_metrics_server *)&s; /* must be reset */
        resil_error e;
        resil_error_clear(&e);
        int rc = resil_metrics_server_start(&s, r, bad[i], NULL, NULL, &e);
        if (rc != RESIL_EINVAL)
            fail_msg("'%s': rc %d (%s)", bad[i], rc, e.message);
        assert_null(s);
        assert_string_equal(e.path, "listen");
        assert_true(e.message[0] != '\0');
    }
    /* neither a registry nor a collect callback */
    resil_metrics_server *s = NULL;
    assert_int_equal(resil_metrics_server_start(&s, NULL, "127.0.0.1:0", NULL, NULL, NULL),
                     RESIL_EINVAL);
    assert_null(s);
    resil_metrics_registry_free(r);
}

static void test_null_is_ignored(void **state)
{
    (void)state;
    resil_metrics_server_stop(NULL);
    assert_int_equal(resil_metrics_server_port(NULL), -1);
}

static void test_serves_registry_text_format(void **state)
{
    (void)state;
    resil_counter *c;
    resil_metrics_registry *r = registry_with_counter(&c);
    resil_metrics_server *s = start_any(r, NULL, NULL);
    int port = resil_metrics_server_port(s);
    reply rep;
    char h[256];
    assert_int_equal(request(&rep, port, "GET", "/metrics", ""), 0);
    assert_int_equal(rep.status, 200);
    assert_string_equal(header(&rep, "Content-Type", h, sizeof h),
                        resil_metrics_content_type(RESIL_METRICS_PROMETHEUS));
    assert_non_null(strstr(rep.body, "# TYPE jobs_done_total counter\n"));
    assert_non_null(strstr(rep.body, "jobs_done_total{job=\"etl\"} 3\n"));
    /* the same bytes as resil_metrics_export */
    char *text;
    size_t len;
    assert_int_equal(resil_metrics_export(&text, &len, r, RESIL_METRICS_PROMETHEUS), 0);
    assert_int_equal(rep.body_len, len);
    assert_memory_equal(rep.body, text, len);
    free(text);
    reply_free(&rep);

    /* every scrape sees the registry as it is now */
    resil_counter_inc(c);
    assert_int_equal(request(&rep, port, "GET", "/metrics", ""), 0);
    assert_non_null(strstr(rep.body, "jobs_done_total{job=\"etl\"} 4\n"));
    reply_free(&rep);
    resil_metrics_server_stop(s);
    resil_metrics_registry_free(r);
}

static void test_negotiation(void **state)
{
    (void)state;
    resil_metrics_registry *r = registry_with_counter(NULL);
    resil_metrics_server *s = start_any(r, NULL, NULL);
    int port = resil_metrics_server_port(s);
    const char *om = resil_metrics_content_type(RESIL_METRICS_OPENMETRICS);
    const char *text = resil_metrics_content_type(RESIL_METRICS_PROMETHEUS);
    const char *js = resil_metrics_content_type(RESIL_METRICS_JSON);
    static const struct {
        const char *path, *extra;
        int want; /* 0 text, 1 openmetrics, 2 json */
    } cases[] = {
        {"/metrics", "Accept: application/openmetrics-text;version=1.0.0,application/"
                     "openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;"
                     "q=0.1\r\n", 1},
        {"/metrics", "Accept: APPLICATION/OpenMetrics-Text\r\n", 1},
        {"/metrics", "Accept: text/plain, application/openmetrics-text; q=0.2\r\n", 1},
        {"/metrics", "Accept: application/openmetrics-text;q=0\r\n", 0},
        {"/metrics", "Accept: application/openmetrics-text; q=0.0, text/plain\r\n", 0},
        {"/metrics", "Accept: application/openmetrics-textual\r\n", 0},
        {"/metrics", "Accept: text/plain\r\n", 0},
        {"/metrics", "Accept: */*\r\n", 0},
        {"/metrics", "", 0},
        {"/metrics?format=json", "Accept: application/openmetrics-text\r\n", 2},
        {"/metrics?format=prometheus", "Accept: application/openmetrics-text\r\n", 0},
        {"/metrics?format=openmetrics", "", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reply rep;
        char h[256];
        assert_int_equal(request(&rep, port, "GET", cases[i].path, cases[i].extra), 0);
        assert_int_equal(rep.status, 200);
        const char *want = cases[i].want == 1 ? om : cases[i].want == 2 ? js : text;
        if (strcmp(header(&rep, "Content-Type", h, sizeof h), want) != 0)
            fail_msg("case %zu: content type '%s', want '%s'", i, h, want);
        if (cases[i].want == 1)
            assert_non_null(strstr(rep.body, "# EOF\n"));
        if (cases[i].want == 2)
            assert_non_null(strstr(rep.body, "\"metrics\""));
        reply_free(&rep);
    }
    reply rep;
    assert_int_equal(request(&rep, port, "GET", "/metrics?format=xml", ""), 0);
    assert_int_equal(rep.status, 400);
    assert_non_null(strstr(rep.body, "xml"));
    reply_free(&rep);
    resil_metrics_server_stop(s);
    resil_metrics_registry_free(r);
}

static void test_paths_and_methods(void **state)
{
    (void)state;
    resil_metrics_registry *r = registry_with_counter(NULL);
    resil_metrics_server *s = start_any(r, NULL, NULL);
    int port = resil_metrics_server_port(s);
    reply rep;
    char h[256];
    assert_int_equal(request(&rep, port, "GET", "/healthz", ""), 0);
    assert_int_equal(rep.status, 200);
    assert_string_equal(rep.body, "ok\n");
    reply_free(&rep);

    static const char *const missing[] = {"/", "/metrics/", "/metricsx", "/health", "/x/metrics"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        assert_int_equal(request(&rep, port, "GET", missing[i], ""), 0);
        if (rep.status != 404)
            fail_msg("%s: %d", missing[i], rep.status);
        reply_free(&rep);
    }
    static const char *const methods[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        assert_int_equal(request(&rep, port, methods[i], "/metrics", ""), 0);
        if (rep.status != 405)
            fail_msg("%s: %d", methods[i], rep.status);
        assert_string_equal(header(&rep, "Allow", h, sizeof h), "GET, HEAD");
        reply_free(&rep);
    }
    /* a POST with a body */
    assert_int_equal(request(&rep, port, "POST", "/healthz",
                             "Content-Length: 5\r\n\r\nhello"), 0);
    assert_int_equal(rep.status, 405);
    reply_free(&rep);
    /* HEAD: the headers of GET, no body */
    assert_int_equal(request(&rep, port, "HEAD", "/metrics", ""), 0);
    assert_int_equal(rep.status, 200);
    assert_int_equal(rep.body_len, 0);
    assert_string_equal(header(&rep, "Content-Type", h, sizeof h),
                        resil_metrics_content_type(RESIL_METRICS_PROMETHEUS));
    reply_free(&rep);
    resil_metrics_server_stop(s);
    resil_metrics_registry_free(r);
}

/* Shared with the server's thread (atomics: the sockets order them, but
 * ThreadSanitizer cannot see that). */
typedef struct collect_state {
    _Atomic int calls;
    _Atomic int last_format;
    _Atomic int fail_with; /* 0: succeed */
    _Atomic bool null_body;
} collect_state;

static int collect(char **out, size_t *len, resil_metrics_format format, void *arg)
{
    collect_state *c = arg;
    c->calls++;
    c->last_format = (int)format;
    if (c->fail_with)
        return c->fail_with;
    if (c->null_body) {
        *out = NULL;
        *len = 0;
        return 0;
    }
    *out = strdup(format == RESIL_METRICS_OPENMETRICS ? "x_total 1\n# EOF\n" : "x 1\n");
    *len = strlen(*out);
    return 0;
}

static void test_collect_callback(void **state)
{
    (void)state;
    collect_state cs;
    cs.calls = 0;
    cs.last_format = -1;
    cs.fail_with = 0;
    cs.null_body = false;
    resil_metrics_server *s = start_any(NULL, collect, &cs);
    int port = resil_metrics_server_port(s);
    reply rep;
    assert_int_equal(request(&rep, port, "GET", "/metrics", ""), 0);
    assert_int_equal(rep.status, 200);
    assert_string_equal(rep.body, "x 1\n");
    assert_int_equal(cs.calls, 1);
    assert_int_equal(cs.last_format, RESIL_METRICS_PROMETHEUS);
    reply_free(&rep);
    assert_int_equal(request(&rep, port, "GET", "/metrics",
                             "Accept: application/openmetrics-text\r\n"), 0);
    assert_string_equal(rep.body, "x_total 1\n# EOF\n");
    assert_int_equal(cs.last_format, RESIL_METRICS_OPENMETRICS);
    reply_free(&rep);
    assert_int_equal(request(&rep, port, "GET", "/metrics?format=json", ""), 0);
    assert_int_equal(cs.last_format, RESIL_METRICS_JSON);
    reply_free(&rep);
    /* /healthz does not collect */
    assert_int_equal(request(&rep, port, "GET", "/healthz", ""), 0);
    assert_int_equal(cs.calls, 3);
    reply_free(&rep);

    cs.null_body = true;
    assert_int_equal(request(&rep, port, "GET", "/metrics", ""), 0);
    assert_int_equal(rep.status, 200);
    assert_int_equal(rep.body_len, 0);
    reply_free(&rep);

    cs.fail_with = RESIL_EPARSE;
    assert_int_equal(request(&rep, port, "GET", "/metrics", ""), 0);
    assert_int_equal(rep.status, 500);
    assert_non_null(strstr(rep.body, resil_strerror(RESIL_EPARSE)));
    reply_free(&rep);
    /* and it recovers */
    cs.fail_with = 0;
    cs.null_body = false;
    assert_int_equal(request(&rep, port, "GET", "/metrics", ""), 0);
    assert_int_equal(rep.status, 200);
    reply_free(&rep);
    resil_metrics_server_stop(s);
}

static void test_port_in_use(void **state)
{
    (void)state;
    resil_metrics_registry *r = registry_with_counter(NULL);
    resil_metrics_server *s = start_any(r, NULL, NULL);
    char listen[64], want[128];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", resil_metrics_server_port(s));
    resil_metrics_server *s2 = NULL;
    resil_error e;
    resil_error_clear(&e);
    assert_int_equal(resil_metrics_server_start(&s2, r, listen, NULL, NULL, &e), -EADDRINUSE);
    assert_null(s2);
    assert_int_equal(e.code, -EADDRINUSE);
    snprintf(want, sizeof want, "cannot listen on %s", listen);
    assert_non_null(strstr(e.message, want));
    resil_metrics_server_stop(s);
    /* free again once stopped: the socket was closed */
    resil_error_clear(&e);
    assert_int_equal(resil_metrics_server_start(&s2, r, listen, NULL, NULL, &e), 0);
    resil_metrics_server_stop(s2);
    resil_metrics_registry_free(r);
}

static void test_default_listen(void **state)
{
    (void)state;
    resil_metrics_registry *r = registry_with_counter(NULL);
    resil_metrics_server *s = NULL;
    int rc = resil_metrics_server_start(&s, r, NULL, NULL, NULL, NULL);
    if (rc == -EADDRINUSE) { /* something else has 9464 on this machine */
        resil_metrics_registry_free(r);
        skip();
    }
    assert_int_equal(rc, 0);
    assert_int_equal(resil_metrics_server_port(s), 9464);
    reply rep;
    assert_int_equal(request(&rep, 9464, "GET", "/healthz", ""), 0);
    assert_int_equal(rep.status, 200);
    reply_free(&rep);
    resil_metrics_server_stop(s);
    resil_metrics_registry_free(r);
}

static void test_ipv6_and_names(void **state)
{
    (void)state;
    resil_metrics_registry *r = registry_with_counter(NULL);
    resil_metrics_server *s = NULL;
    resil_error e;
    resil_error_clear(&e);
    int rc = resil_metrics_server_start(&s, r, "[::1]:0", NULL, NULL, &e);
    if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
        resil_metrics_registry_free(r);
        skip(); /* no IPv6 loopback here */
    }
    assert_int_equal(rc, 0);
    reply rep;
    assert_int_equal(request6(&rep, AF_INET6, resil_metrics_server_port(s), "GET", "/metrics", ""),
                     0);
    assert_int_equal(rep.status, 200);
    assert_non_null(strstr(rep.body, "jobs_done_total"));
    reply_free(&rep);
    /* loopback only: not reachable over IPv4 */
    assert_int_equal(request(&rep, resil_metrics_server_port(s), "GET", "/healthz", ""), -1);
    resil_metrics_server_stop(s);

    /* a name resolves ("localhost": 127.0.0.1 or ::1) */
    resil_error_clear(&e);
    rc = resil_metrics_server_start(&s, r, "localhost:0", NULL, NULL, &e);
    if (rc != 0)
        fail_msg("localhost:0: %d %s", rc, e.message);
    resil_metrics_server_stop(s);
    resil_metrics_registry_free(r);
}

typedef struct scraper {
    int port;
    int ok;
} scraper;

static void *scrape_loop(void *arg)
{
    scraper *sc = arg;
    for (int i = 0; i < 50; i++) {
        reply rep;
        if (request(&rep, sc->port, "GET", i % 2 ? "/metrics" : "/metrics?format=json", "") == 0 &&
            rep.status == 200)
            sc->ok++;
        reply_free(&rep);
    }
    return NULL;
}

static void test_concurrent_scrapes_while_recording(void **state)
{
    (void)state;
    resil_counter *c;
    resil_metrics_registry *r = registry_with_counter(&c);
    resil_metrics_server *s = start_any(r, NULL, NULL);
    scraper sc[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        sc[i].port = resil_metrics_server_port(s);
        sc[i].ok = 0;
        assert_int_equal(pthread_create(&t[i], NULL, scrape_loop, &sc[i]), 0);
    }
    for (int i = 0; i < 100000; i++)
        resil_counter_inc(c);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(sc[i].ok, 50);
    }
    reply rep;
    assert_int_equal(request(&rep, sc[0].port, "GET", "/metrics", ""), 0);
    assert_non_null(strstr(rep.body, "jobs_done_total{job=\"etl\"} 100003\n"));
    reply_free(&rep);
    resil_metrics_server_stop(s);
    resil_metrics_registry_free(r);
}

static void test_stop_with_idle_client(void **state)
{
    (void)state;
    resil_metrics_registry *r = registry_with_counter(NULL);
    resil_metrics_server *s = start_any(r, NULL, NULL);
    /* a client that connects and never sends a request, one half-way */
    int idle = connect_to(AF_INET, resil_metrics_server_port(s));
    int half = connect_to(AF_INET, resil_metrics_server_port(s));
    assert_true(idle >= 0 && half >= 0);
    assert_int_equal(write(half, "GET /metr", 9), 9);
    usleep(50 * 1000);
    resil_metrics_server_stop(s); /* must not wait for them */
    char b;
    assert_true(read(idle, &b, 1) <= 0); /* closed by the server */
    close(idle);
    close(half);
    resil_metrics_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_listen_strings),
        cmocka_unit_test(test_null_is_ignored),
        cmocka_unit_test(test_serves_registry_text_format),
        cmocka_unit_test(test_negotiation),
        cmocka_unit_test(test_paths_and_methods),
        cmocka_unit_test(test_collect_callback),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_default_listen),
        cmocka_unit_test(test_ipv6_and_names),
        cmocka_unit_test(test_concurrent_scrapes_while_recording),
        cmocka_unit_test(test_stop_with_idle_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
