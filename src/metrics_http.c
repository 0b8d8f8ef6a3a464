/* src/metrics_http.c - the /metrics endpoint, served by libmicrohttpd.
 *
 * We create, bind and listen on the socket ourselves (so that a failed bind
 * returns its exact -errno and the port chosen for port 0 is known before
 * the first request) and hand it to libmicrohttpd with
 * MHD_OPTION_LISTEN_SOCKET; its one internal polling thread answers the
 * requests, and MHD_stop_daemon closes the socket.
 *
 *   GET|HEAD /metrics   the registry (or the collect callback's body) in the
 *                       format the client asked for: ?format=prometheus|
 *                       openmetrics|json, else OpenMetrics when the Accept
 *                       header takes application/openmetrics-text (q > 0),
 *                       else the text format 0.0.4
 *   GET|HEAD /healthz   "ok\n"
 *   other paths         404; other methods 405 with "Allow: GET, HEAD"
 *   a failed collect    500 with a one-line message
 */
#define _GNU_SOURCE
#include "resil/metrics.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_LISTEN "127.0.0.1:9464"
#define HOST_MAX 256
#define CONNECTION_LIMIT 64u
#define CONNECTION_TIMEOUT_S 30u
#define LISTEN_BACKLOG 64

struct resil_metrics_server {
    struct MHD_Daemon *daemon;
    resil_metrics_registry *registry;
    resil_metrics_collect_fn collect;
    void *collect_arg;
    int port;
};

/* ---- parsing the listen address ------------------------------------------ */

/* Splits "HOST:PORT" or "[V6]:PORT" into host[] and *port.  Returns 0 or
 * RESIL_EINVAL (err says what is wrong). */
static int parse_listen(const char *listen, char host[HOST_MAX], unsigned *port,
                        resil_error *err)
{
    const char *colon;
    size_t hlen;
    const char *h;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close)
            return resil_error_set(err, RESIL_EINVAL, "listen",
                                   "listen address '%s': missing ']' after the IPv6 address",
                                   listen);
        if (close[1] != ':')
            return resil_error_set(err, RESIL_EINVAL, "listen",
                                   "listen address '%s': expected [ADDRESS]:PORT", listen);
        h = listen + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon)
            return resil_error_set(err, RESIL_EINVAL, "listen",
                                   "listen address '%s': expected HOST:PORT (for example "
                                   "127.0.0.1:9464)",
                                   listen);
        h = listen;
        hlen = (size_t)(colon - h);
        if (memchr(h, ':', hlen))
            return resil_error_set(err, RESIL_EINVAL, "listen",
                                   "listen address '%s': an IPv6 address must be written in "
                                   "brackets, as [::1]:9464",
                                   listen);
    }
    if (hlen == 0)
        return resil_error_set(err, RESIL_EINVAL, "listen",
                               "listen address '%s': the host is empty (give 127.0.0.1:PORT for "
                               "loopback, 0.0.0.0:PORT or [::]:PORT for every interface)",
                               listen);
    if (hlen >= HOST_MAX)
        return resil_error_set(err, RESIL_EINVAL, "listen",
                               "listen address: the host is longer than %d bytes", HOST_MAX - 1);
    const char *p = colon + 1;
    unsigned long v = 0;
    size_t digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 6; p++, digits++)
        v = v * 10 + (unsigned long)(*p - '0');
    if (digits == 0 || *p != '\0' || v > 65535)
        return resil_error_set(err, RESIL_EINVAL, "listen",
                               "listen address '%s': '%s' is not a port (expected 0..65535; 0 "
                               "picks a free one)",
                               listen, colon + 1);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (unsigned)v;
    return 0;
}

/* The address as "HOST:PORT" / "[V6]:PORT" for messages. */
static void addr_text(const struct sockaddr *sa, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        snprintf(buf, size, "[%s]:%u", ip, (unsigned)ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        snprintf(buf, size, "%s:%u", ip, (unsigned)ntohs(s4->sin_port));
    }
}

/* Creates a listening socket on one address.  Returns the fd or -errno. */
static int listen_on(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
    if (fd < 0)
        return -errno;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ai->ai_family == AF_INET6) /* "[::]" means IPv6 only, as written */
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* ---- requests ------------------------------------------------------------------ */

/* True when an Accept header takes application/openmetrics-text with a
 * quality above 0. */
static bool accepts_openmetrics(const char *accept)
{
    static const char want[] = "application/openmetrics-text";
    const size_t wlen = sizeof want - 1;
    const char *p = accept;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *q = p;
        while (q < p + n && (*q == ' ' || *q == '\t'))
            q++;
        size_t rest = (size_t)(p + n - q);
        if (rest >= wlen && strncasecmp(q, want, wlen) == 0 &&
            (rest == wlen || q[wlen] == ';' || q[wlen] == ' ' || q[wlen] == '\t')) {
            /* parameters: only q matters */
            bool ok = true;
            const char *par = q + wlen;
            while (par < p + n) {
                const char *semi = memchr(par, ';', (size_t)(p + n - par));
                if (!semi)
                    break;
                par = semi + 1;
                while (par < p + n && (*par == ' ' || *par == '\t'))
                    par++;
                if (par + 1 < p + n && (par[0] == 'q' || par[0] == 'Q') && par[1] == '=') {
                    char num[16];
                    size_t k = 0;
                    const char *v = par + 2;
                    while (v < p + n && k + 1 < sizeof num && *v != ';' && *v != ' ')
                        num[k++] = *v++;
                    num[k] = '\0';
                    ok = strtod(num, NULL) > 0;
                }
            }
            if (ok)
                return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

static enum MHD_Result send_buffer(struct MHD_Connection *conn, unsigned status, char *body,
                                   size_t len, const char *content_type, bool allow)
{
    /* body is malloc'd and now belongs to the response (freed with it) */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(len, body, free);
    if (!resp) {
        free(body);
        return MHD_NO; /* out of memory: the connection is closed */
    }
    enum MHD_Result ok = MHD_YES;
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
        (allow && MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES))
        ok = MHD_NO;
    if (ok == MHD_YES)
        ok = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ok;
}

/* A short text/plain answer (404, 405, 400, 500, /healthz). */
static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status, bool allow,
                                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status, bool allow,
                                 const char *fmt, ...)
{
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    char *body = malloc(len + 1);
    if (!body)
        return MHD_NO;
    memcpy(body, line, len + 1);
    return send_buffer(conn, status, body, len, "text/plain; charset=utf-8", allow);
}

/* The first 64 bytes of s, printable ASCII only, for echoing in messages. */
static void sanitize(const char *s, char *buf, size_t size)
{
    size_t k = 0;
    for (; s && *s && k + 1 < size && k < 64; s++)
        buf[k++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    buf[k] = '\0';
}

static enum MHD_Result serve_metrics(resil_metrics_server *s, struct MHD_Connection *conn)
{
    resil_metrics_format fmt = RESIL_METRICS_PROMETHEUS;
    const char *qf = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "format");
    if (qf) {
        if (resil_metrics_format_parse(&fmt, qf) != 0) {
            char shown[80];
            sanitize(qf, shown, sizeof shown);
            return send_text(conn, MHD_HTTP_BAD_REQUEST, false,
                             "unknown format '%s' (expected prometheus, openmetrics or json)\n",
                             shown);
        }
    } else {
        const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_ACCEPT);
        if (accept && accepts_openmetrics(accept))
            fmt = RESIL_METRICS_OPENMETRICS;
    }
    char *body = NULL;
    size_t len = 0;
    int rc = s->collect ? s->collect(&body, &len, fmt, s->collect_arg)
                        : resil_metrics_export(&body, &len, s->registry, fmt);
    if (rc != 0) {
        free(body);
        return send_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, false,
                         "cannot collect the metrics: %s\n", resil_strerror(rc));
    }
    if (!body) { /* a collect that had nothing to say */
        body = malloc(1);
        if (!body)
            return MHD_NO;
        body[0] = '\0';
        len = 0;
    }
    return send_buffer(conn, MHD_HTTP_OK, body, len, resil_metrics_content_type(fmt), false);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    (void)upload_data;
    static int seen; /* its address marks a request whose headers we saw */
    resil_metrics_server *s = cls;
    if (*con_cls == NULL) {
        /* The headers only: answer once the request is complete, so that
         * the connection can be kept alive for the next scrape. */
        *con_cls = &seen;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* a body we have no use for */
        return MHD_YES;
    }
    bool is_metrics = strcmp(url, "/metrics") == 0;
    bool is_health = strcmp(url, "/healthz") == 0;
    if (!is_metrics && !is_health) {
        char shown[80];
        sanitize(url, shown, sizeof shown);
        return send_text(conn, MHD_HTTP_NOT_FOUND, false,
                         "not found: %s (resil serves /metrics and /healthz)\n", shown);
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        char shown[80];
        sanitize(method, shown, sizeof shown);
        return send_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, true,
                         "method %s not allowed (use GET or HEAD)\n", shown);
    }
    if (is_health)
        return send_text(conn, MHD_HTTP_OK, false, "ok\n");
    return serve_metrics(s, conn);
}

/* libmicrohttpd's messages: one line on stderr each, one write(). */
static void on_log(void *cls, const char *fm, va_list ap) __attribute__((format(printf, 2, 0)));
static void on_log(void *cls, const char *fm, va_list ap)
{
    (void)cls;
    char line[1024];
    int k = snprintf(line, sizeof line, "resil metrics server: ");
    int n = vsnprintf(line + k, sizeof line - (size_t)k - 1, fm, ap);
    if (n < 0)
        return;
    size_t len = (size_t)k + (size_t)n;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    if (len == 0 || line[len - 1] != '\n')
        line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

/* ---- the server ------------------------------------------------------------------ */

int resil_metrics_server_start(resil_metrics_server **out, resil_metrics_registry *r,
                               const char *listen, resil_metrics_collect_fn collect,
                               void *collect_arg, resil_error *err)
{
    if (!out)
        return resil_error_set(err, RESIL_EINVAL, NULL, "out is NULL");
    *out = NULL;
    if (!r && !collect)
        return resil_error_set(err, RESIL_EINVAL, NULL,
                               "a metrics server needs a registry or a collect callback");
    if (!listen)
        listen = DEFAULT_LISTEN;
    char host[HOST_MAX];
    unsigned port = 0;
    int rc = parse_listen(listen, host, &port, err);
    if (rc != 0)
        return rc;

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    int gai = getaddrinfo(host, service, &hints, &res);
    if (gai != 0) {
        if (gai == EAI_SYSTEM)
            return resil_error_set(err, -errno ? -errno : RESIL_EINVAL, "listen",
                                   "listen address '%s': %s", listen, strerror(errno));
        if (gai == EAI_MEMORY)
            return resil_error_set(err, -ENOMEM, "listen", "listen address '%s': out of memory",
                                   listen);
        return resil_error_set(err, RESIL_EINVAL, "listen", "listen address '%s': %s", listen,
                               gai_strerror(gai));
    }
    int fd = -1;
    char where[INET6_ADDRSTRLEN + 16] = "";
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        addr_text(ai->ai_addr, where, sizeof where);
        fd = listen_on(ai);
        if (fd >= 0)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        if (where[0] == '\0')
            return resil_error_set(err, RESIL_EINVAL, "listen",
                                   "listen address '%s': no IPv4 or IPv6 address", listen);
        return resil_error_set(err, fd, "listen", "cannot listen on %s: %s", where,
                               strerror(-fd));
    }

    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    struct stat st;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) != 0 || fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return resil_error_set(err, -e, "listen", "cannot read the bound address: %s",
                               strerror(e));
    }
    resil_metrics_server *s = calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    }
    s->registry = r;
    s->collect = collect;
    s->collect_arg = collect_arg;
    s->port = bound.ss_family == AF_INET6
                  ? ntohs(((struct sockaddr_in6 *)(void *)&bound)->sin6_port)
                  : ntohs(((struct sockaddr_in *)(void *)&bound)->sin_port);

    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_AUTO;
    if (bound.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(flags, (uint16_t)s->port, NULL, NULL, on_request, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, on_log, (void *)NULL,
                                 MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                                 MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT,
                                 MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT_S,
                                 MHD_OPTION_END);
    if (!s->daemon) {
        /* Close the socket unless libmicrohttpd already did (the fd then
         * refers to nothing, or to another file opened since). */
        struct stat now;
        if (fstat(fd, &now) == 0 && now.st_dev == st.st_dev && now.st_ino == st.st_ino)
            close(fd);
        free(s);
        char text[INET6_ADDRSTRLEN + 16];
        addr_text((struct sockaddr *)&bound, text, sizeof text);
        return resil_error_set(err, -ENOMEM, "listen",
                               "cannot start the HTTP server on %s (libmicrohttpd failed)", text);
    }
    *out = s;
    return 0;
}

int resil_metrics_server_port(const resil_metrics_server *s)
{
    return s ? s->port : -1;
}

void resil_metrics_server_stop(resil_metrics_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->daemon); /* waits for its thread; closes the socket */
    free(s);
}
