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
 *   a failed collect    500 with a one-line message (naming the file and
 *                       line when the collect callback's error does)
 *
 * Slow clients: libmicrohttpd's connection timeout is reset by every byte,
 * so a client that trickles a header line now and then would hold its
 * connection for ever, and 64 of them every connection.  So each
 * connection is noted when it starts (MHD_OPTION_NOTIFY_CONNECTION: the
 * time and its socket), marked once its request has arrived whole, and a
 * watchdog thread shuts down (shutdown(2), so that libmicrohttpd closes it)
 * every connection whose request has not arrived within the request
 * deadline, counted from accept or from the end of its previous answer.
 * The notes are kept under one mutex and removed in the CLOSED
 * notification, which libmicrohttpd sends before it closes the socket, so a
 * descriptor the watchdog shuts down is always the connection's own, never
 * one reused since.  A per-IP connection limit keeps room for other
 * clients.  libmicrohttpd's messages go to the log callback of the options
 * (none by default: nothing is printed when a client hangs up).
 */
#define _GNU_SOURCE
#include "resil/metrics_http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_LISTEN "127.0.0.1:9464"
#define HOST_MAX 256
#define CONNECTION_LIMIT 64u
#define PER_IP_LIMIT 16u
#define CONNECTION_TIMEOUT_S 30u
#define REQUEST_TIMEOUT_S 5.0
#define LISTEN_BACKLOG 64

/* One connection, from its STARTED notification to its CLOSED one. */
struct conn_note {
    struct conn_note *prev, *next;
    int fd;
    int64_t since_ns;  /* accept, or the end of the previous answer */
    bool arrived;      /* its request arrived whole: being answered */
    bool shut;         /* the watchdog shut it down */
};

struct resil_metrics_server {
    struct MHD_Daemon *daemon;
    resil_metrics_registry *registry;
    resil_metrics_collect_fn collect;
    resil_metrics_collect_err_fn collect_err;
    void *collect_arg;
    int port;
    int64_t deadline_ns;
    void (*log)(const char *line, void *arg);
    void *log_arg;
    /* the watchdog */
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool stopping;
    bool watchdog_running;
    pthread_t watchdog;
    struct conn_note *notes;
    size_t shut_down; /* connections the watchdog shut down */
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

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

/* The first `max` bytes of s, printable ASCII only, for echoing in
 * messages. */
static void sanitize_n(const char *s, char *buf, size_t size, size_t max)
{
    size_t k = 0;
    for (; s && *s && k + 1 < size && k < max; s++)
        buf[k++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    buf[k] = '\0';
}

static void sanitize(const char *s, char *buf, size_t size)
{
    sanitize_n(s, buf, size, 64);
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
    resil_error e;
    resil_error_clear(&e);
    int rc = s->collect_err ? s->collect_err(&body, &len, fmt, &e, s->collect_arg)
             : s->collect   ? s->collect(&body, &len, fmt, s->collect_arg)
                            : resil_metrics_export(&body, &len, s->registry, fmt);
    if (rc != 0) {
        free(body);
        if (e.message[0]) {
            char shown[520];
            sanitize_n(e.message, shown, sizeof shown, sizeof shown - 1);
            return send_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, false,
                             "cannot collect the metrics: %s\n", shown);
        }
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

static void mark_arrived(resil_metrics_server *s, struct MHD_Connection *conn);

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
    mark_arrived(s, conn); /* the request is whole: no deadline while we answer */
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

/* libmicrohttpd's messages: to the options' log callback, one line each
 * (without its newline), or nowhere. */
static void on_log(void *cls, const char *fm, va_list ap) __attribute__((format(printf, 2, 0)));
static void on_log(void *cls, const char *fm, va_list ap)
{
    resil_metrics_server *s = cls;
    if (!s || !s->log)
        return;
    char line[1024];
    int n = vsnprintf(line, sizeof line, fm, ap);
    if (n < 0)
        return;
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    s->log(line, s->log_arg);
}

/* ---- the request deadline ------------------------------------------------------- */

static struct conn_note *note_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void mark_arrived(resil_metrics_server *s, struct MHD_Connection *conn)
{
    struct conn_note *n = note_of(conn);
    if (!n)
        return;
    pthread_mutex_lock(&s->mu);
    n->arrived = true;
    pthread_mutex_unlock(&s->mu);
}

/* The answer went out (or the request ended): the connection's next
 * request has a deadline of its own, from now. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)con_cls;
    (void)toe;
    resil_metrics_server *s = cls;
    struct conn_note *n = note_of(conn);
    if (!n)
        return;
    pthread_mutex_lock(&s->mu);
    n->arrived = false;
    n->since_ns = mono_ns();
    pthread_mutex_unlock(&s->mu);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    resil_metrics_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct conn_note *n = ci ? calloc(1, sizeof *n) : NULL;
        if (!n) { /* out of memory: no deadline for it; the idle timeout remains */
            *socket_context = NULL;
            return;
        }
        n->fd = ci->connect_fd;
        n->since_ns = mono_ns();
        pthread_mutex_lock(&s->mu);
        n->next = s->notes;
        if (s->notes)
            s->notes->prev = n;
        s->notes = n;
        pthread_mutex_unlock(&s->mu);
        *socket_context = n;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        /* Sent before libmicrohttpd closes the socket: once the note is
         * gone (under the mutex) the watchdog cannot touch the fd. */
        struct conn_note *n = *socket_context;
        if (!n)
            return;
        pthread_mutex_lock(&s->mu);
        if (n->prev)
            n->prev->next = n->next;
        else
            s->notes = n->next;
        if (n->next)
            n->next->prev = n->prev;
        pthread_mutex_unlock(&s->mu);
        free(n);
        *socket_context = NULL;
    }
}

/* Shuts down every connection whose request is overdue, until stopped. */
static void *watchdog_main(void *arg)
{
    resil_metrics_server *s = arg;
    int64_t tick = s->deadline_ns / 5;
    if (tick < 10 * 1000000LL)
        tick = 10 * 1000000LL;
    if (tick > 250 * 1000000LL)
        tick = 250 * 1000000LL;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        int64_t now = mono_ns();
        for (struct conn_note *n = s->notes; n; n = n->next)
            if (!n->arrived && !n->shut && now - n->since_ns >= s->deadline_ns) {
                (void)shutdown(n->fd, SHUT_RDWR); /* libmicrohttpd sees the end, closes it */
                n->shut = true;
                s->shut_down++;
            }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + tick;
        ts.tv_sec = (time_t)(t / 1000000000);
        ts.tv_nsec = (long)(t % 1000000000);
        pthread_cond_timedwait(&s->wake, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- the server ------------------------------------------------------------------ */

static void server_free(resil_metrics_server *s)
{
    if (s->watchdog_running) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->watchdog, NULL);
    }
    while (s->notes) { /* none once libmicrohttpd stopped; to be safe */
        struct conn_note *n = s->notes;
        s->notes = n->next;
        free(n);
    }
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int resil_metrics_server_start(resil_metrics_server **out, resil_metrics_registry *r,
                               const char *listen, resil_metrics_collect_fn collect,
                               void *collect_arg, resil_error *err)
{
    resil_metrics_server_opts o = RESIL_METRICS_SERVER_OPTS_INIT;
    o.listen = listen;
    return resil_metrics_server_start_opts(out, r, collect, collect_arg, &o, err);
}

/* Resolves `listen` ("HOST:PORT") and listens on its first IPv4 or IPv6
 * address that works.  Returns the socket, or a negative code (err filled). */
static int open_listener(const char *listen, resil_error *err)
{
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

    return fd;
}

/* Starts libmicrohttpd on the listening socket fd (bound to *bound; *st: its
 * identity, to tell whether libmicrohttpd closed it on failure) and the
 * watchdog thread.  Returns 0, or a negative code (err filled; s freed). */
static int start_daemon(resil_metrics_server *s, int fd, const struct sockaddr_storage *bound,
                        const struct stat *st, unsigned limit, unsigned per_ip, unsigned idle,
                        resil_error *err)
{
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_AUTO;
    if (bound->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(flags, (uint16_t)s->port, NULL, NULL, on_request, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, on_log, (void *)s,
                                 MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                                 MHD_OPTION_CONNECTION_LIMIT, limit,
                                 MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
                                 MHD_OPTION_CONNECTION_TIMEOUT, idle,
                                 MHD_OPTION_NOTIFY_CONNECTION, on_connection, (void *)s,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, (void *)s,
                                 MHD_OPTION_END);
    if (s->daemon) {
        if (pthread_create(&s->watchdog, NULL, watchdog_main, s) == 0) {
            s->watchdog_running = true;
        } else {
            MHD_stop_daemon(s->daemon);
            server_free(s);
            return resil_error_set(err, -EAGAIN, "listen",
                                   "cannot start the metrics server's watchdog thread");
        }
    }
    if (!s->daemon) {
        /* Close the socket unless libmicrohttpd already did (the fd then
         * refers to nothing, or to another file opened since). */
        struct stat now;
        if (fstat(fd, &now) == 0 && now.st_dev == st->st_dev && now.st_ino == st->st_ino)
            close(fd);
        server_free(s);
        char text[INET6_ADDRSTRLEN + 16];
        addr_text((const struct sockaddr *)bound, text, sizeof text);
        return resil_error_set(err, -ENOMEM, "listen",
                               "cannot start the HTTP server on %s (libmicrohttpd failed)", text);
    }
    return 0;
}

int resil_metrics_server_start_opts(resil_metrics_server **out, resil_metrics_registry *r,
                                    resil_metrics_collect_fn collect, void *collect_arg,
                                    const resil_metrics_server_opts *opts, resil_error *err)
{
    if (!out)
        return resil_error_set(err, RESIL_EINVAL, NULL, "out is NULL");
    *out = NULL;
    resil_metrics_server_opts o = RESIL_METRICS_SERVER_OPTS_INIT;
    if (opts)
        o = *opts;
    if (!r && !collect && !o.collect_err)
        return resil_error_set(err, RESIL_EINVAL, NULL,
                               "a metrics server needs a registry or a collect callback");
    if (o.request_timeout_s < 0 || o.request_timeout_s != o.request_timeout_s ||
        o.request_timeout_s > 86400)
        return resil_error_set(err, RESIL_EINVAL, "request_timeout_s",
                               "request_timeout_s must be in (0, 86400] (0: %g s)",
                               REQUEST_TIMEOUT_S);
    const char *listen = o.listen ? o.listen : DEFAULT_LISTEN;
    int fd = open_listener(listen, err);
    if (fd < 0)
        return fd;

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
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &ca);
    pthread_condattr_destroy(&ca);
    s->registry = r;
    s->collect = collect;
    s->collect_err = o.collect_err;
    s->collect_arg = collect_arg;
    s->log = o.log;
    s->log_arg = o.log_arg;
    double dl = o.request_timeout_s > 0 ? o.request_timeout_s : REQUEST_TIMEOUT_S;
    s->deadline_ns = (int64_t)(dl * 1e9);
    if (s->deadline_ns < 1000000)
        s->deadline_ns = 1000000;
    unsigned limit = o.connection_limit ? o.connection_limit : CONNECTION_LIMIT;
    unsigned per_ip = o.per_ip_limit ? o.per_ip_limit : PER_IP_LIMIT;
    if (per_ip > limit)
        per_ip = limit;
    /* the idle timeout stays as a backstop (whole seconds, >= the deadline) */
    unsigned idle = CONNECTION_TIMEOUT_S;
    if ((double)idle < dl)
        idle = (unsigned)dl + 1;
    s->port = bound.ss_family == AF_INET6
                  ? ntohs(((struct sockaddr_in6 *)(void *)&bound)->sin6_port)
                  : ntohs(((struct sockaddr_in *)(void *)&bound)->sin_port);

    int rc = start_daemon(s, fd, &bound, &st, limit, per_ip, idle, err);
    if (rc != 0)
        return rc;
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
    server_free(s);
}
