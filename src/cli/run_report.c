/* src/cli/run_report.c - what `resil run` tells: progress messages, the
 * NDJSON events file, --metrics-dir, and the final message and status.
 * Every number comes from the library's retry result and hook infos, so the
 * messages, the events and the metrics tell the same attempts (an attempt
 * the breaker refused is none of them). */
#define _GNU_SOURCE
#include "run.h"

#include "resil/metrics.h"
#include "resil/metrics_dir.h"

#include <jansson.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

void run_msg(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line - 2 ? (size_t)n : sizeof line - 2;
    line[len++] = '\n';
    /* One write per line: lines from concurrent writers do not interleave. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

/* (run.h) */
void run_describe(const run_ctx *c, char *buf, size_t size)
{
    if (c->timed_out) {
        snprintf(buf, size, "timed out, exit %d", c->status);
    } else if (c->term_sig) {
        const char *nm = signal_name(c->term_sig);
        if (nm)
            snprintf(buf, size, "killed by %s, exit %d", nm, c->status);
        else
            snprintf(buf, size, "killed by signal %d, exit %d", c->term_sig, c->status);
    } else {
        snprintf(buf, size, "exit %d", c->status);
    }
}

static void attempt_counter(const run_ctx *c, int attempt, char *buf, size_t size)
{
    if (c->config.max_retries == INT_MAX)
        snprintf(buf, size, "attempt %d", attempt);
    else
        snprintf(buf, size, "attempt %d/%ld", attempt, (long)c->config.max_retries + 1);
}

/* JSON strings must be valid UTF-8 (run.h). */
char *run_utf8_sanitized(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char b = p[i];
        size_t len = b < 0x80 ? 1 : (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3
                                   : (b & 0xf8) == 0xf0 ? 4 : 0;
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++)
            ok = (p[i + k] & 0xc0) == 0x80;
        if (ok && len > 1) {
            uint32_t cp = b & (0xff >> (len + 1));
            for (size_t k = 1; k < len; k++)
                cp = cp << 6 | (p[i + k] & 0x3f);
            static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
            ok = cp >= min_cp[len] && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff);
        }
        if (ok) {
            memcpy(out + i, p + i, len);
            i += len;
        } else {
            out[i++] = '?';
        }
    }
    out[n] = '\0';
    return out;
}

static void write_event(run_ctx *c, const resil_attempt_info *info)
{
    int64_t wall = resil_clock_wall_ns(NULL);
    time_t secs = (time_t)(wall / NS_PER_S);
    struct tm tm;
    char stamp[64] = "1970-01-01T00:00:00.000Z";
    if (gmtime_r(&secs, &tm)) {
        char base[40];
        strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(stamp, sizeof stamp, "%s.%03dZ", base, (int)((wall % NS_PER_S) / 1000000));
    }
    bool retrying = info->reason == RESIL_STOP_NONE;
    json_t *ev = json_pack(
        "{s:s, s:s, s:i, s:o, s:o, s:b, s:f, s:o, s:s}", "time", stamp, "name",
        c->json_name ? c->json_name : "?",
        "attempt", info->attempt, "exit_status",
        c->exited || c->exec_failed ? json_integer(c->exec_failed ? c->status : c->exit_code)
                                    : json_null(),
        "signal", c->term_sig ? json_integer(c->term_sig) : json_null(), "timed_out",
        (int)c->timed_out, "duration_s", c->duration_s, "next_delay_s",
        retrying ? json_real(info->delay_s) : json_null(), "outcome",
        c->event_outcome ? c->event_outcome
                         : retrying ? "retry" : resil_stop_reason_name(info->reason));
    if (!ev) {
        run_msg("resil run: cannot build the event for attempt %d", info->attempt);
        return;
    }
    char *text = json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(ev);
    if (!text)
        return;
    /* Through the NDJSON writer: each event is one whole record appended
     * under the log's lock, after any torn tail is dealt with, so lines of
     * concurrent runs never interleave and none is glued onto a torn one. */
    resil_error e;
    resil_error_clear(&e);
    int rc = resil_ndjson_writer_append_text(c->events, text, strlen(text), &e);
    if (rc != 0)
        run_msg("resil run: writing events: %s", e.message[0] ? e.message : resil_strerror(rc));
    free(text);
}

/* Seconds for messages: "0.012s", "1.04s", "30.00s". */
static const char *fmt_secs(double s, char *buf, size_t size)
{
    snprintf(buf, size, s < 0.1 ? "%.3fs" : "%.2fs", s);
    return buf;
}

/* Adds what the default registry gained since the last flush to
 * --metrics-dir.  A failure is a warning (once for each kind of failure),
 * never the run's status. */
void run_flush_metrics(run_ctx *c)
{
    if (!c->metrics_dir || !resil_metrics_enabled())
        return;
    resil_error err;
    resil_error_clear(&err);
    int rc = resil_metrics_flush_dir(resil_metrics_default(), c->metrics_dir, &err);
    if (rc != 0 && rc != c->metrics_last_error)
        run_msg("resil run: warning: cannot write metrics to %s: %s", c->metrics_dir,
            err.message[0] ? err.message : resil_strerror(rc));
    c->metrics_last_error = rc;
}

void run_after_attempt(const resil_attempt_info *info, void *arg)
{
    run_ctx *c = arg;
    if (c->fatal || c->skipped || c->circuit_open)
        return;
    if (c->events) {
        write_event(c, info);
        c->last_event_retry = info->reason == RESIL_STOP_NONE;
    }
    run_flush_metrics(c);
    if (c->quiet || c->exec_failed || info->reason != RESIL_STOP_NONE)
        return; /* the final line is printed by resil_cli_run */
    char counter[64], what[96], took[32], delay[32];
    attempt_counter(c, info->attempt, counter, sizeof counter);
    fmt_secs(c->duration_s, took, sizeof took);
    fmt_secs(info->delay_s, delay, sizeof delay);
    if (c->timed_out) {
        run_msg("resil run: '%s' %s timed out after %s (exit %d); retrying in %s", c->label, counter,
            took, c->status, delay);
    } else {
        run_describe(c, what, sizeof what);
        run_msg("resil run: '%s' %s failed (%s) after %s; retrying in %s", c->label, counter, what,
            took, delay);
    }
}

/* The events file's last line when the run stopped without an attempt
 * saying so: cancelled during a sleep, or the circuit opened before the next
 * attempt (which then never ran: the numbers are the attempts that did). */
static void close_events(run_ctx *c, const resil_retry_result *res)
{
    if (!c->events || !c->last_event_retry)
        return;
    if (res->reason == RESIL_STOP_CANCELLED && !c->circuit_open) {
        resil_attempt_info last = {.name = c->name, .attempt = res->attempts,
                                   .outcome = res->last_outcome, .error = res->last_error,
                                   .reason = RESIL_STOP_CANCELLED, .elapsed_s = -1};
        write_event(c, &last);
    } else if (c->circuit_open && !c->fatal) {
        resil_attempt_info last = {.name = c->name, .attempt = res->attempts,
                                   .outcome = RESIL_OUTCOME_PERMANENT,
                                   .error = RESIL_ECIRCUIT_OPEN,
                                   .reason = RESIL_STOP_PERMANENT, .elapsed_s = -1};
        c->event_outcome = "circuit_open";
        write_event(c, &last);
    }
}

/* "resil run: circuit NAME is open, half-open in 1.20 s; 'cmd' stopped
 * after 3 attempts (exit 1)". */
static void circuit_message(const run_ctx *c, const resil_retry_result *res)
{
    char why[400], after[256] = "";
    double in_s = ceil(c->circuit_retry_in_s * 100) / 100; /* never "0.00" while open */
    if (c->circuit_retry_in_s < 0)
        snprintf(why, sizeof why, "is forced open ('resil breaker reset %.200s' closes it)",
                 c->breaker_name);
    else if (c->circuit_retry_in_s == 0)
        snprintf(why, sizeof why, "is half-open and its trial attempts are taken");
    else
        snprintf(why, sizeof why, "is open, half-open in %.*f s", in_s < 100 ? 2 : 0, in_s);
    if (res->attempts > 0) {
        char what[96];
        run_describe(c, what, sizeof what);
        snprintf(after, sizeof after, "; '%s' stopped after %d attempt%s (%s)", c->label,
                 res->attempts, res->attempts == 1 ? "" : "s", what);
    }
    run_msg("resil run: circuit %s %s%s", c->breaker_name, why, after);
}

/* The message of a run that failed after attempts (or was cancelled). */
static void failure_message(const run_ctx *c, int r, const resil_retry_result *res)
{
    if (r == 0 || c->quiet)
        return;
    char what[96];
    run_describe(c, what, sizeof what);
    if (res->reason == RESIL_STOP_CANCELLED) {
        int sig = g_signal;
        const char *nm = sig ? signal_name(sig) : NULL;
        run_msg("resil run: '%s' cancelled by %s after %d attempt%s: %s", c->label,
                nm ? nm : "a signal", res->attempts, res->attempts == 1 ? "" : "s", what);
    } else {
        run_msg("resil run: '%s' gave up after %d attempt%s (%s): %s", c->label, res->attempts,
                res->attempts == 1 ? "" : "s", resil_stop_reason_name(res->reason), what);
    }
}

int run_final_status(run_ctx *c, int r, resil_retry_result *res)
{
    if (c->skipped) {
        /* The last "attempt" was a cancellation caught before the spawn. */
        res->attempts--;
        res->reason = RESIL_STOP_CANCELLED;
        r = RESIL_ECANCELED;
    }
    close_events(c, res);
    if (c->fatal)
        return RESIL_CLI_EXIT_FAILURE;
    if (c->circuit_open) {
        if (!c->quiet)
            circuit_message(c, res);
        return EXIT_TEMPFAIL;
    }
    if (c->output_errno) {
        /* The command succeeded but its output could not be delivered. */
        if (c->output_errno == EPIPE)
            return 128 + SIGPIPE; /* as the shell reports a reader gone away */
        run_msg("resil run: cannot write the command's output: %s", strerror(c->output_errno));
        return RESIL_CLI_EXIT_FAILURE;
    }
    if (c->exec_failed)
        return c->status; /* the one message was printed by the op */
    if (r == RESIL_EINVAL) {
        run_msg("resil run: invalid retry configuration");
        return RESIL_CLI_EXIT_USAGE;
    }
    if (res->attempts == 0) {
        /* Cancelled before the first attempt. */
        int sig = g_signal;
        if (!c->quiet)
            run_msg("resil run: '%s' cancelled by %s before the first attempt", c->label,
                    sig && signal_name(sig) ? signal_name(sig) : "a signal");
        return sig ? 128 + sig : RESIL_CLI_EXIT_FAILURE;
    }
    failure_message(c, r, res);
    return c->status;
}
