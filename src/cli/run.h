/* src/cli/run.h - what the files of `resil run` share (src/cli/run*.c):
 *   run.c         the entry point: set-up (fds, signals, stdin, events,
 *                 breaker), the retry, clean-up;
 *   run_args.c    the command line: options, the retry config, the breaker;
 *   run_attempt.c one attempt (through resil_proc_run) and how it counts;
 *   run_report.c  messages, the events file, metrics, the final status.
 * The attempt loop is the library's: resil_retry, with the breaker's guard
 * (resil/guard.h) as its gate when --breaker is given, so the command and the
 * library agree on what counts as an attempt. */
#ifndef RESIL_CLI_RUN_H
#define RESIL_CLI_RUN_H

#include "cli.h"

#include "resil/breaker.h"
#include "resil/cancel.h"
#include "resil/clock.h"
#include "resil/common.h"
#include "resil/guard.h"
#include "resil/proc.h"
#include "resil/retry.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define NS_PER_S 1000000000LL
#define EXIT_TEMPFAIL 75 /* sysexits' EX_TEMPFAIL: the circuit is open */

#define signal_name resil_proc_signal_name

/* Shared with the signal handler (run.c).  g_target: where to forward (pid,
 * -pgid, 0 = no command running); written only while the handled signals
 * are blocked. */
extern resil_cancel *g_cancel;
extern volatile sig_atomic_t g_target;
extern volatile sig_atomic_t g_signal; /* the last signal received, 0 if none */

/* A set of exit statuses 0..255 (signal deaths count as 128+N). */
typedef struct code_set {
    bool given;
    bool has[256];
} code_set;

typedef struct run_ctx {
    /* the command */
    char **cmd;
    const char *name;  /* the retry's name (events, library) */
    char *json_name;   /* the name as valid UTF-8, for events */
    const char *label; /* what messages call the command (-m, else name) */

    /* policy */
    resil_retry_config config;
    bool until_mode;   /* true: stop when `criteria` matches; false: retry while */
    code_set criteria; /* --until / --while */
    code_set retry_on;
    code_set stop_on;
    double *delays; /* --delay list, or NULL */
    size_t n_delays;
    double attempt_timeout_s; /* 0 = none */
    int64_t run_start_ns;     /* monotonic start of the whole run (for --deadline) */
    double kill_after_s;
    bool quiet;
    resil_ndjson_writer *events; /* --events, NULL = none */

    /* --metrics-dir: the default registry is flushed there after each
     * attempt and before we exit */
    const char *metrics_dir; /* NULL = none */
    int metrics_last_error;  /* the last flush's failure (warned once per kind) */

    /* --breaker: the guard (resil/guard.h) asks it before every attempt
     * and reports to it after, as the library's resil_guard_retry does */
    resil_breaker *breaker;    /* NULL = none */
    resil_guard *guard;        /* over breaker, open policy STOP */
    const char *breaker_name;
    bool circuit_open;         /* an attempt was refused: not run, and we stop */
    double circuit_retry_in_s; /* acquire's answer: > 0 open, 0 half-open busy, -1 forced */

    /* process set-up */
    enum { STDIN_TTY, STDIN_PIPE, STDIN_INHERIT } stdin_mode;
    bool own_pgroup;
    sigset_t orig_mask;   /* our signal mask at start: the child's */
    sigset_t handled;     /* the handled signals we installed handlers for */
    sigset_t child_deflt; /* reset to SIG_DFL in the child */

    /* captured stdin: every byte read so far, in a spool file */
    resil_proc_spool *spool;

    /* the last attempt */
    bool exited;   /* exited normally with exit_code */
    int exit_code;
    int term_sig;  /* killed by this signal, 0 if not */
    bool timed_out;
    bool exec_failed;
    bool spawned; /* the command was started (it ran, however it ended) */
    bool fatal; /* resil's own failure; message already printed */
    bool skipped;     /* cancelled before it could start: not an attempt */
    bool last_event_retry; /* the last events line said "retry" */
    const char *event_outcome; /* overrides the next event's outcome */
    int output_errno; /* writing the successful attempt's stdout failed */
    int status; /* what we report: code, 128+N, 124, 126, 127 */
    double duration_s;
} run_ctx;
/* What the command line set, applied over the preset afterwards so that the
 * order of --preset and the individual options does not matter. */
typedef struct overrides {
    const char *preset;
    bool has_retries, has_base, has_max, has_exp, has_jitter, has_deadline, has_seed;
    int retries;
    double base, max, exp, deadline;
    bool jitter;
    resil_jitter_kind jitter_kind;
    uint64_t seed;
    const char *events_path;
    /* --breaker and its options */
    const char *state_dir;
    int state_trust; /* --state-dir-trust: a resil_breaker_trust, 0 = environment */
    bool has_threshold, has_recovery;
    int threshold;
    double recovery;
} overrides;


/* ---- run_args.c ---- */

/* Parses the options.  Returns -1 to go on, or an exit status. */
int run_parse_args(run_ctx *c, overrides *ov, int argc, char **argv);

/* Builds the retry config: the preset, then the individual options.
 * Returns -1 to go on, or an exit status after a message. */
int run_build_config(run_ctx *c, const overrides *ov);

/* Opens (or creates) the --breaker breaker in its state directory, and its
 * guard.  Returns -1 to go on, or an exit status after a message. */
int run_open_breaker(run_ctx *c, const overrides *ov);

/* ---- run_attempt.c ---- */

/* The op given to resil_retry: runs the command once. */
resil_outcome run_attempt(resil_retry_call *call, void *arg);

/* The guard's listener: a refusal (the circuit is open: we stop; a lock
 * error: resil's own failure) or an outcome that could not be recorded. */
void run_guard_event(const resil_guard_event *ev, void *arg);

/* ---- run_report.c ---- */

/* One line on stderr, written at once. */
void run_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "exit 7", "killed by SIGKILL, exit 137", "timed out, exit 124". */
void run_describe(const run_ctx *c, char *buf, size_t size);

/* A copy of s that is valid UTF-8 (each bad byte becomes '?'); caller frees. */
char *run_utf8_sanitized(const char *s);

/* Adds what the default registry gained to --metrics-dir (a warning on
 * failure, once for each kind). */
void run_flush_metrics(run_ctx *c);

/* The after_attempt hook: the events line, the metrics, the message. */
void run_after_attempt(const resil_attempt_info *info, void *arg);

/* After the retry: the events file's last line, the final message and the
 * exit status. */
int run_final_status(run_ctx *c, int r, resil_retry_result *res);

#endif /* RESIL_CLI_RUN_H */
