/* resil/metrics_http.h - the /metrics endpoint: a registry (or a collect
 * callback's body) served over HTTP for Prometheus, on libmicrohttpd.
 *
 * This is its own library, libresil-http (pkg-config name resil-http), so
 * that programs which do not serve metrics do not load libmicrohttpd and
 * what it brings (gnutls, nettle, gmp, p11-kit ...): libresil itself links
 * only libc, libm, pthread, jansson and libyaml.  Build with
 * `pkg-config --cflags --libs resil-http` (it requires resil).
 *
 * Thread safety: a server answers requests from libmicrohttpd's thread (and
 * a watchdog thread of its own); the registry and the collect callback must
 * therefore be thread-safe (a registry is).  Start and stop one server from
 * one thread.  Process safety: a server belongs to the process that started
 * it (do not fork with one running and use it in the child).
 */
#ifndef RESIL_METRICS_HTTP_H
#define RESIL_METRICS_HTTP_H

#include "resil/common.h"
#include "resil/metrics.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- HTTP ------------------------------------------------------------------------------ */

typedef struct resil_metrics_server resil_metrics_server;

/* Produces the body for one scrape: fills *out (malloc'd, the server frees
 * it) and *len.  Returns 0 or an error (the server answers 500). */
typedef int (*resil_metrics_collect_fn)(char **out, size_t *len, resil_metrics_format format,
                                        void *arg);

/* Serves GET /metrics (OpenMetrics when the Accept header asks for
 * application/openmetrics-text, else the text format 0.0.4; ?format=json for
 * JSON) and GET /healthz ("ok") on `listen` ("HOST:PORT"; NULL: 127.0.0.1:9464;
 * port 0: any free port, see resil_metrics_server_port), from a thread of
 * libmicrohttpd's.  With collect NULL the body is resil_metrics_export of r.
 * Only loopback unless told otherwise: a HOST of 0.0.0.0 or :: must be given
 * explicitly.  Slow clients cannot hold it: a request must arrive whole
 * within 5 s of accept (see resil_metrics_server_opts), at most 64
 * connections at once, 16 from one address; libmicrohttpd's messages are
 * dropped.  r and collect may not both be NULL (RESIL_EINVAL).
 * Returns 0 (the caller stops it with resil_metrics_server_stop),
 * RESIL_EINVAL (bad listen string), -errno (bind failed; err says which
 * address). */
RESIL_EXPORT int resil_metrics_server_start(resil_metrics_server **out, resil_metrics_registry *r,
                                            const char *listen, resil_metrics_collect_fn collect,
                                            void *collect_arg, resil_error *err);

/* A collect callback that can say what went wrong: as
 * resil_metrics_collect_fn, and on failure it may fill err (a message
 * naming the file and line, say), whose message the server puts in the 500
 * answer's body. */
typedef int (*resil_metrics_collect_err_fn)(char **out, size_t *len,
                                            resil_metrics_format format, resil_error *err,
                                            void *arg);

/* Options of resil_metrics_server_start_opts.  Start from
 * RESIL_METRICS_SERVER_OPTS_INIT; zero means default. */
typedef struct resil_metrics_server_opts {
    const char *listen;        /* "HOST:PORT"; NULL: 127.0.0.1:9464 */
    double request_timeout_s;  /* a request must arrive whole within this, counted
                                  from accept (or from the end of the previous
                                  answer on a kept-alive connection), whatever
                                  trickles in meanwhile; the connection is closed
                                  otherwise.  0: 5 s; at most 86400 */
    unsigned connection_limit; /* connections at once; 0: 64 */
    unsigned per_ip_limit;     /* connections at once from one address; 0: 16
                                  (at most connection_limit) */
    resil_metrics_collect_err_fn collect_err; /* used instead of collect when set
                                                 (with collect_arg) */
    /* libmicrohttpd's messages (a client that hung up, a limit reached...),
     * one line each without its newline, from the server's threads; NULL:
     * dropped (the library never prints). */
    void (*log)(const char *line, void *arg);
    void *log_arg;
} resil_metrics_server_opts;

#define RESIL_METRICS_SERVER_OPTS_INIT {NULL, 0, 0, 0, NULL, NULL, NULL}

/* resil_metrics_server_start with options (opts may be NULL: the
 * defaults).  Returns as resil_metrics_server_start, and RESIL_EINVAL for a
 * request_timeout_s < 0 or > 86400. */
RESIL_EXPORT int resil_metrics_server_start_opts(resil_metrics_server **out,
                                                 resil_metrics_registry *r,
                                                 resil_metrics_collect_fn collect,
                                                 void *collect_arg,
                                                 const resil_metrics_server_opts *opts,
                                                 resil_error *err);

/* The port the server listens on. */
RESIL_EXPORT int resil_metrics_server_port(const resil_metrics_server *s);

/* Stops the server and frees it (NULL is ignored); waits for running requests. */
RESIL_EXPORT void resil_metrics_server_stop(resil_metrics_server *s);

#ifdef __cplusplus
}
#endif
#endif /* RESIL_METRICS_HTTP_H */
