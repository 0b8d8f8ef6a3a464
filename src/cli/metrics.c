/* src/cli/metrics.c - `resil metrics ...`: the metrics that short-lived
 * resil processes left in a metrics directory, summed.
 *
 *   resil metrics [--dir DIR] [--format prometheus|openmetrics|json]
 *       prints the sums of DIR/metrics.ndjson (as `resil run --metrics-dir`
 *       and resil_metrics_flush_dir write it)
 *   resil metrics serve [--listen HOST:PORT] [--dir DIR] [--request-timeout S]
 *                       [--verbose]
 *       serves them over HTTP for Prometheus (GET /metrics, /healthz), read
 *       again on every scrape, until SIGINT or SIGTERM
 *
 * A bad record in DIR is skipped (and counted, and named in a warning on
 * stderr: once per change when serving), never the end of the export.
 *
 * A thin shell over the public API: resil_metrics_load_dir,
 * resil_metrics_export and resil_metrics_server_start.  The directory is
 * --dir, else RESIL_METRICS_DIR; `serve` without either serves this
 * process's own default registry (of little use but to tests).
 */
#define _GNU_SOURCE
#include "cli.h"

#include "resil/common.h"
#include "resil/metrics.h"
#include "resil/metrics_dir.h"
#include "resil/metrics_http.h"
#include "helper.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#define DEFAULT_LISTEN "127.0.0.1:9464"

typedef struct metrics_cli {
    char prog[32]; /* "resil metrics serve" */
    bool serve;
    const char *dir;
    const char *format_name; /* --format as written, NULL if not given */
    resil_metrics_format format;
    const char *listen;
    double request_timeout_s; /* 0: the library's default (5 s) */
    bool verbose;             /* serve: libmicrohttpd's messages on stderr */
} metrics_cli;

static void msg(const metrics_cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg(const metrics_cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    resil_cli_vmsg(c->prog, fmt, ap);
    va_end(ap);
}

static void metrics_usage(FILE *out)
{
    fputs("usage: resil metrics [--dir DIR] [--format prometheus|openmetrics|json]\n"
          "       resil metrics serve [--listen HOST:PORT] [--dir DIR] [--request-timeout S]\n"
          "                           [--verbose]\n"
          "\n"
          "Metrics of resil processes (retries, circuit breakers, files) summed\n"
          "over every process that flushed them into the metrics directory DIR\n"
          "(`resil run --metrics-dir DIR`, resil_metrics_flush_dir): counters and\n"
          "histograms are added up, gauges take the last value written.\n"
          "\n"
          "  (no action)  print the sums once\n"
          "  serve        serve them over HTTP until SIGINT or SIGTERM: GET /metrics\n"
          "               (OpenMetrics when the Accept header asks for\n"
          "               application/openmetrics-text, else the text format 0.0.4;\n"
          "               ?format=prometheus|openmetrics|json overrides) and GET /healthz;\n"
          "               DIR is read again on every scrape.  Prints \"listening on\n"
          "               http://HOST:PORT/metrics\" on stderr once it listens\n"
          "\n"
          "A record of DIR that cannot be read is skipped, counted in\n"
          "resil_metrics_dir_bad_records_total and named (file:line) in a warning on\n"
          "stderr; the other records are summed.\n"
          "\n"
          "options:\n"
          "  --dir DIR          the metrics directory (default: $RESIL_METRICS_DIR; printing\n"
          "                     needs one of them; serve without either serves its own,\n"
          "                     empty, registry)\n"
          "  --format FORMAT    prometheus (text format 0.0.4, the default), openmetrics\n"
          "                     (OpenMetrics 1.0, ends with \"# EOF\") or json\n"
          "  --listen HOST:PORT where serve listens (default 127.0.0.1:9464; [::1]:PORT for\n"
          "                     IPv6; port 0 picks a free port; 0.0.0.0 or [::] to serve\n"
          "                     beyond this machine)\n"
          "  --request-timeout S  serve: a request must arrive whole within S seconds of\n"
          "                     the connection (default 5; ms, s, m suffixes), else the\n"
          "                     connection is closed, however slowly bytes trickle in\n"
          "  -v, --verbose      serve: print the HTTP server's own messages (clients that\n"
          "                     hang up, limits reached) on stderr; quiet by default\n"
          "  -h, --help         show this help\n"
          "\n"
          "exit status: 0 success; 1 failure (an unreadable or corrupt metrics file, a\n"
          "port already in use: the message says which); 2 usage error.  See resil(1).\n",
          out);
}

static int usage_error(const metrics_cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int usage_error(const metrics_cli *c, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    msg(c, "%s", text);
    msg(c, "Try 'resil metrics --help' for more information.");
    return RESIL_CLI_EXIT_USAGE;
}

/* ---- loading a directory ----------------------------------------------------- */

/* The sums of dir into a new registry *out: an existing directory without
 * metrics yet gives an empty registry, and so does a missing one when
 * `missing_ok`.  Returns 0, or the library's code with *e filled in. */
static int load_sums(resil_metrics_registry **out, const char *dir, bool missing_ok,
                     resil_metrics_dir_stats *stats, resil_error *e)
{
    resil_error_clear(e);
    int rc = resil_metrics_load_dir_stats(out, dir, stats, e);
    if (rc != -ENOENT)
        return rc;
    struct stat st;
    resil_error_clear(e);
    if (stat(dir, &st) != 0) {
        int se = errno;
        if (!(se == ENOENT && missing_ok))
            return resil_error_set(e, -se, dir, "metrics directory %s: %s", dir,
                                   strerror(se));
    } else if (!S_ISDIR(st.st_mode)) {
        return resil_error_set(e, -ENOTDIR, dir, "metrics directory %s: %s", dir,
                               strerror(ENOTDIR));
    }
    resil_error_clear(e);
    rc = resil_metrics_registry_new(out, NULL, e); /* nothing flushed yet */
    return rc;
}

static const char *error_text(const resil_error *e, int rc)
{
    return e->message[0] ? e->message : resil_strerror(rc);
}

/* ---- printing ------------------------------------------------------------------ */

static int do_print(const metrics_cli *c)
{
    resil_metrics_registry *r = NULL;
    resil_error e;
    resil_metrics_dir_stats st;
    int rc = load_sums(&r, c->dir, false, &st, &e);
    if (rc != 0) {
        msg(c, "%s", error_text(&e, rc));
        return RESIL_CLI_EXIT_FAILURE;
    }
    if (st.bad_records > 0)
        msg(c, "warning: skipped %zu bad record%s of %s; the first: %s", st.bad_records,
            st.bad_records == 1 ? "" : "s", c->dir, st.first_bad);
    char *text = NULL;
    size_t len = 0;
    rc = resil_metrics_export(&text, &len, r, c->format);
    resil_metrics_registry_free(r);
    if (rc != 0) {
        msg(c, "cannot export the metrics: %s", resil_strerror(rc));
        return RESIL_CLI_EXIT_FAILURE;
    }
    size_t w = fwrite(text, 1, len, stdout);
    /* JSON ends without a newline; a terminal prompt should not follow it */
    if (w == len && len > 0 && text[len - 1] != '\n')
        putchar('\n');
    free(text);
    if (w != len || fflush(stdout) != 0 || ferror(stdout)) {
        msg(c, "cannot write to standard output: %s", strerror(errno));
        return RESIL_CLI_EXIT_FAILURE;
    }
    return RESIL_CLI_EXIT_OK;
}

/* ---- serving --------------------------------------------------------------------- */
/* Only resil-metrics-serve (RESIL_CLI_METRICS_SERVE) serves: the resil
 * command execs it, so that it never loads libmicrohttpd itself. */
#ifdef RESIL_CLI_METRICS_SERVE

typedef struct serve_ctx {
    const metrics_cli *cli;
    pthread_mutex_t lock; /* one warning at a time, and only when it changes */
    char last_warning[1200];
} serve_ctx;

/* The body of one scrape: DIR read again.  A failure's message (naming
 * the file) goes into the 500's body through *err. */
static int collect_dir(char **out, size_t *len, resil_metrics_format format, resil_error *err,
                       void *arg)
{
    serve_ctx *s = arg;
    resil_metrics_registry *r = NULL;
    resil_error e;
    resil_metrics_dir_stats st;
    int rc = load_sums(&r, s->cli->dir, true, &st, &e);
    char text[sizeof s->last_warning];
    text[0] = '\0';
    if (rc != 0)
        snprintf(text, sizeof text, "%s (scrapes get 500 until it is fixed)",
                 error_text(&e, rc));
    else if (st.bad_records > 0)
        snprintf(text, sizeof text, "warning: skipped %zu bad record%s of %s; the first: %s",
                 st.bad_records, st.bad_records == 1 ? "" : "s", s->cli->dir, st.first_bad);
    pthread_mutex_lock(&s->lock);
    if (text[0]) {
        if (strcmp(text, s->last_warning) != 0) {
            msg(s->cli, "%s", text);
            snprintf(s->last_warning, sizeof s->last_warning, "%s", text);
        }
    } else if (s->last_warning[0]) {
        msg(s->cli, "metrics directory %s readable again", s->cli->dir);
        s->last_warning[0] = '\0';
    }
    pthread_mutex_unlock(&s->lock);
    if (rc != 0) {
        if (err)
            *err = e;
        return rc;
    }
    rc = resil_metrics_export(out, len, r, format);
    resil_metrics_registry_free(r);
    return rc;
}

/* --verbose: the HTTP server's own messages, one line each. */
static void server_log(const char *line, void *arg)
{
    serve_ctx *s = arg;
    pthread_mutex_lock(&s->lock);
    msg(s->cli, "http: %s", line);
    pthread_mutex_unlock(&s->lock);
}

/* "http://127.0.0.1:41234/metrics": the host as written, the port bound. */
static void url_of(const char *listen, int port, char *buf, size_t size)
{
    const char *colon = strrchr(listen, ':');
    int hlen = colon ? (int)(colon - listen) : (int)strlen(listen);
    snprintf(buf, size, "http://%.*s:%d/metrics", hlen, listen, port);
}

static int do_serve(const metrics_cli *c)
{
    /* Block the signals that end us before the server's thread starts (it
     * inherits the mask), then wait for them here. */
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    signal(SIGPIPE, SIG_IGN); /* a scraper that hangs up is not our end */
    pthread_sigmask(SIG_BLOCK, &stop, &old);

    serve_ctx s;
    memset(&s, 0, sizeof s);
    s.cli = c;
    pthread_mutex_init(&s.lock, NULL);

    const char *listen = c->listen ? c->listen : DEFAULT_LISTEN;
    resil_metrics_server *srv = NULL;
    resil_error e;
    resil_error_clear(&e);
    int rc;
    resil_metrics_server_opts so = RESIL_METRICS_SERVER_OPTS_INIT;
    so.listen = listen;
    so.request_timeout_s = c->request_timeout_s;
    if (c->verbose) {
        so.log = server_log;
        so.log_arg = &s;
    }
    if (c->dir) {
        so.collect_err = collect_dir;
        rc = resil_metrics_server_start_opts(&srv, NULL, NULL, &s, &so, &e);
    } else if (resil_metrics_default()) {
        rc = resil_metrics_server_start_opts(&srv, resil_metrics_default(), NULL, NULL, &so, &e);
    } else {
        rc = -ENOMEM;
        resil_error_set(&e, rc, NULL, "cannot create the metrics registry: out of memory");
    }
    int status = RESIL_CLI_EXIT_OK;
    if (rc == RESIL_EINVAL) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_mutex_destroy(&s.lock);
        return usage_error(c, "--listen: %s", error_text(&e, rc));
    }
    if (rc != 0) {
        msg(c, "%s", error_text(&e, rc));
        status = RESIL_CLI_EXIT_FAILURE;
    } else {
        char url[400];
        url_of(listen, resil_metrics_server_port(srv), url, sizeof url);
        struct stat st;
        if (c->dir && stat(c->dir, &st) != 0 && errno == ENOENT)
            msg(c, "metrics directory %s does not exist yet: no metrics until a process "
                   "flushes into it", c->dir);
        msg(c, "listening on %s", url);
        int sig = 0;
        while (sigwait(&stop, &sig) != 0)
            ;
        resil_metrics_server_stop(srv);
    }
    /* The signals stay blocked: a second SIGTERM on the way must not turn
     * this clean exit into a death by signal. */
    pthread_mutex_destroy(&s.lock);
    return status;
}
#endif /* RESIL_CLI_METRICS_SERVE */

/* ---- the entry point -------------------------------------------------------------- */

int resil_cli_metrics(int argc, char **argv)
{
    metrics_cli c;
    memset(&c, 0, sizeof c);
    snprintf(c.prog, sizeof c.prog, "resil metrics");
    c.format = RESIL_METRICS_PROMETHEUS;
    bool only_operands = false;
    bool dir_given = false;
    bool request_timeout_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_operands && strcmp(a, "--") == 0) {
            only_operands = true;
            continue;
        }
        if (!only_operands && resil_cli_is_option(a)) {
            if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
                metrics_usage(stdout);
                return fflush(stdout) == 0 ? RESIL_CLI_EXIT_OK : RESIL_CLI_EXIT_FAILURE;
            }
            if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
                c.verbose = true;
                continue;
            }
            static const char *const with_value[] = {"--dir", "--format", "--listen",
                                                     "--request-timeout"};
            const char *val = NULL;
            int r = 0;
            size_t k;
            for (k = 0; k < sizeof with_value / sizeof with_value[0]; k++) {
                r = resil_cli_opt_value(argc, argv, &i, with_value[k], &val);
                if (r != 0)
                    break;
            }
            if (r < 0)
                return usage_error(&c, "option '%s' requires an argument", with_value[k]);
            if (r == 0)
                return usage_error(&c, "unknown option '%s'", a);
            if (k == 0) {
                if (val[0] == '\0')
                    return usage_error(&c, "--dir: the directory is an empty string");
                c.dir = val;
                dir_given = true;
            } else if (k == 1) {
                if (resil_metrics_format_parse(&c.format, val) != 0)
                    return usage_error(&c, "--format: unknown format '%s' (expected "
                                           "prometheus, openmetrics or json)",
                                       val);
                c.format_name = val;
            } else if (k == 2) {
                if (val[0] == '\0')
                    return usage_error(&c, "--listen: the address is an empty string "
                                           "(expected HOST:PORT)");
                c.listen = val;
            } else {
                double t;
                if (!resil_cli_parse_seconds(val, &t) || t <= 0 || t > 86400)
                    return usage_error(&c, "--request-timeout: '%s' is not a duration in "
                                           "(0, 86400] seconds (for example 5, 500ms)",
                                       val);
                c.request_timeout_s = t;
                request_timeout_given = true;
            }
            continue;
        }
        if (!c.serve && strcmp(a, "serve") == 0) {
            c.serve = true;
            snprintf(c.prog, sizeof c.prog, "resil metrics serve");
            continue;
        }
        if (c.serve)
            return usage_error(&c, "unexpected argument '%s'", a);
        return usage_error(&c, "unknown action '%s' (expected serve, or no action to print "
                               "the metrics)",
                           a);
    }
    if (c.serve && c.format_name)
        return usage_error(&c, "--format is for printing; serve answers in the format each "
                               "scrape asks for (Accept header, or ?format=...)");
    if (!c.serve && c.listen)
        return usage_error(&c, "--listen is for 'resil metrics serve'");
    if (!c.serve && request_timeout_given)
        return usage_error(&c, "--request-timeout is for 'resil metrics serve'");
    if (!c.serve && c.verbose)
        return usage_error(&c, "--verbose is for 'resil metrics serve'");
    if (!dir_given) {
        const char *env = getenv("RESIL_METRICS_DIR");
        if (env && *env)
            c.dir = env;
        else if (!c.serve)
            return usage_error(&c, "a metrics directory is needed: give --dir DIR or set "
                                   "RESIL_METRICS_DIR");
    }
    resil_cli_ensure_std_fds();
#ifdef RESIL_CLI_METRICS_SERVE
    return c.serve ? do_serve(&c) : do_print(&c);
#else
    return c.serve ? resil_cli_exec_helper(c.prog, "resil-metrics-serve", argc, argv)
                   : do_print(&c);
#endif
}
