/* src/cli/run.c - `resil run [options] -- CMD [ARGS...]`: run a command,
 * retrying it with backoff until it succeeds (a superset of Debian's retry(1)).
 *
 * A thin shell over the public API: resil_retry() is the loop; the op below
 * runs the command once and says whether the attempt succeeded, failed
 * transiently or failed permanently; a --delay list is passed to the library
 * as the op's retry-after hint; signals cancel a resil_cancel token; messages
 * and NDJSON events come from the after_attempt hook.
 *
 * One attempt is one resil_proc_run() (resil/proc.h):
 *   stdin   a terminal is passed through; anything else is captured in a
 *           spool file (resil_proc_spool, in $TMPDIR or /tmp, unlinked): the
 *           child reads a pipe fed first with every byte of our stdin read so
 *           far (replay), then with more of our stdin, read only when the
 *           pipe has room.  A spool that cannot be written is fatal (exit 1,
 *           naming the file) before the command sees partial input;
 *   stdout  goes to a temporary file (0600, O_EXCL, unlinked at once) in
 *           $TMPDIR or /tmp, copied afterwards to our stdout if the attempt
 *           succeeded, to our stderr otherwise; a directory that cannot hold
 *           it is named;
 *   stderr  passes straight through;
 *   waiting the module's ppoll() loop: pidfd, cancel token, stdin pump,
 *           attempt timeout and kill-after.
 * Signals are caught here and forwarded to the published target (pid or
 * -pgid) by on_signal; --events go through the NDJSON writer.
 */
#define _GNU_SOURCE
#include "cli.h"

#include "resil/breaker.h"
#include "resil/cancel.h"
#include "resil/clock.h"
#include "resil/common.h"
#include "resil/metrics.h"
#include "resil/metrics_dir.h"
#include "resil/proc.h"
#include "resil/retry.h"

#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define NS_PER_S 1000000000LL
#define NS_NEVER INT64_MAX
#define PUMP_CHUNK 65536
#define EXIT_TEMPFAIL 75 /* sysexits' EX_TEMPFAIL: the circuit is open */

/* ---- signals ---------------------------------------------------------------- */

/* The signals resil forwards to the command and that cancel the retry. */
static const int handled_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define N_HANDLED (sizeof handled_signals / sizeof handled_signals[0])

/* Shared with the handler.  g_target: where to forward (pid, -pgid, 0 = no
 * command running); written only while the handled signals are blocked. */
static resil_cancel *g_cancel;
static volatile sig_atomic_t g_target;
static volatile sig_atomic_t g_own_pgroup;
static volatile sig_atomic_t g_signal; /* the last signal received, 0 if none */

static void on_signal(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    int saved = errno;
    g_signal = sig;
    resil_cancel_cancel(g_cancel);
    pid_t target = (pid_t)g_target;
    /* A command sharing our process group already got a signal the terminal
     * sent to the group (si_code SI_KERNEL): forward only the others. */
    if (target != 0 && (g_own_pgroup || !si || si->si_code != SI_KERNEL)) {
        kill(target, sig);
        kill(target, SIGCONT); /* a stopped command must see it too */
    }
    errno = saved;
}

#define signal_name resil_proc_signal_name

/* ---- options ------------------------------------------------------------------ */

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

    /* --breaker: every attempt asks it first and reports to it after */
    resil_breaker *breaker;    /* NULL = none */
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

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg(const char *fmt, ...)
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

static void run_usage(FILE *out)
{
    fputs("usage: resil run [options] [--] CMD [ARGS...]\n"
          "\n"
          "Runs CMD, retrying it with backoff until it succeeds.  stdin is captured and\n"
          "replayed to each attempt; stdout of failed attempts goes to stderr, so stdout\n"
          "carries the successful attempt's output once.\n"
          "\n"
          "policy:\n"
          "  --preset NAME          transient|external|critical|aggressive|none\n"
          "                         (default transient); the options below override it\n"
          "  -t, --max-retries N    retries after the first attempt (alias --times)\n"
          "      --forever          retry without limit\n"
          "      --base-delay S     delay before the first retry\n"
          "      --max-delay S      no delay exceeds this\n"
          "      --exp-base X       delay growth factor (>= 1)\n"
          "      --jitter KIND      full|equal|decorrelated|none\n"
          "      --deadline S       give up at S seconds: no sleep past it, a running\n"
          "                         attempt is ended (as by --attempt-timeout)\n"
          "      --seed N           seed the jitter generator (reproducible delays)\n"
          "  -d, --delay LIST       fixed delays \"1,2,4\" in turn, the last repeated\n"
          "      --attempt-timeout S  SIGTERM an attempt still running after S seconds\n"
          "                         (then SIGKILL after --kill-after S, default 5);\n"
          "                         counts as a transient failure with status 124\n"
          "      --retry-on CODES   retry only these exit codes (\"1-3,75\")\n"
          "      --stop-on CODES    stop at once on these exit codes\n"
          "  -u, --until CRITERIA   stop when met: success,true,fail,false,N,N-M\n"
          "                         (default: success)\n"
          "  -w, --while CRITERIA   retry while met\n"
          "\n"
          "circuit breaker (state shared by every process using the same NAME and DIR):\n"
          "      --breaker NAME     ask breaker NAME before each attempt and report the\n"
          "                         outcome to it (exit 0 success, anything else failure);\n"
          "                         while it is open CMD is not run and resil exits 75\n"
          "      --failure-threshold N  consecutive failures that open it (1..1000000;\n"
          "                         default $CIRCUIT_BREAKER_DEFAULT_THRESHOLD, else 5)\n"
          "      --recovery-timeout S  how long it stays open before a trial attempt (> 0;\n"
          "                         default $CIRCUIT_BREAKER_DEFAULT_TIMEOUT, else 60)\n"
          "      --state-dir DIR    where breakers keep their state (default\n"
          "                         $RESIL_STATE_DIR; one of them is required)\n"
          "      --state-dir-trust private|shared  shared: use a state directory or files\n"
          "                         that other users may write (default\n"
          "                         $RESIL_STATE_DIR_TRUST, else private: refuse them)\n"
          "\n"
          "reporting:\n"
          "      --name NAME        the retry's name (default: CMD's basename)\n"
          "  -m, --message TEXT     what messages call the command\n"
          "      --events FILE      append one NDJSON line per attempt to FILE\n"
          "      --metrics-dir DIR  add this run's metrics (retries, attempts, breaker\n"
          "                         calls and states) to DIR after each attempt and at\n"
          "                         exit, for `resil metrics` (default $RESIL_METRICS_DIR)\n"
          "  -q, --quiet            no progress messages\n"
          "  -h, --help             this help\n"
          "  -v, --version          print the version\n"
          "\n"
          "S is seconds, optionally with a unit ms, s, m, h or d.\n"
          "Exit status: the last attempt's status (0 on success, 128+N for signal N,\n"
          "124 for a timed-out attempt), 75 when the circuit breaker is open, 126/127\n"
          "when CMD cannot be run, 2 for usage errors, 1 for resil's own failures.\n"
          "See resil(1).\n",
          out);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    msg("resil run: %s", text);
    msg("Try 'resil run --help' for more information.");
    return RESIL_CLI_EXIT_USAGE;
}

/* Copies the next comma-separated token of *p (at most 63 bytes) into tok and
 * moves *p past it and its comma; *more tells whether a token follows.
 * Returns false, with the offending text in bad[], for an empty or too long
 * token. */
static bool next_token(const char **p, char tok[64], bool *more, char *bad, size_t bad_size)
{
    const char *comma = strchr(*p, ',');
    size_t len = comma ? (size_t)(comma - *p) : strlen(*p);
    if (len == 0 || len >= 64) {
        snprintf(bad, bad_size, "%.*s", (int)(len < 40 ? len : 40), *p);
        return false;
    }
    memcpy(tok, *p, len);
    tok[len] = '\0';
    *more = comma != NULL;
    *p = comma ? comma + 1 : *p + len;
    return true;
}

/* Parses "1-3,75" (codes 0..255) into set; with `words`, also success/true
 * (0) and fail/false (1..255), as retry(1)'s criteria.  On error copies the
 * bad token to bad[]. */
static bool parse_codes(code_set *set, const char *text, bool words, char *bad, size_t bad_size)
{
    memset(set, 0, sizeof *set);
    set->given = true;
    const char *p = text;
    bool more = true;
    while (more) {
        char tok[64];
        if (!next_token(&p, tok, &more, bad, bad_size))
            return false;
        long lo = 0, hi = -1;
        char *dash = strchr(tok, '-');
        if (words && (strcmp(tok, "success") == 0 || strcmp(tok, "true") == 0)) {
            lo = hi = 0;
        } else if (words && (strcmp(tok, "fail") == 0 || strcmp(tok, "false") == 0)) {
            lo = 1;
            hi = 255;
        } else if (dash && dash != tok) {
            *dash = '\0';
            bool ok = resil_cli_parse_long(tok, 0, 255, &lo) &&
                      resil_cli_parse_long(dash + 1, 0, 255, &hi) && lo <= hi &&
                      dash[1] != '+' && tok[0] != '+';
            *dash = '-';
            if (!ok) {
                snprintf(bad, bad_size, "%s", tok);
                return false;
            }
        } else if (tok[0] != '+' && resil_cli_parse_long(tok, 0, 255, &lo)) {
            hi = lo;
        } else {
            snprintf(bad, bad_size, "%s", tok);
            return false;
        }
        for (long c = lo; c <= hi; c++)
            set->has[c] = true;
    }
    return true;
}

static bool parse_delays(run_ctx *c, const char *text, char *bad, size_t bad_size)
{
    free(c->delays);
    c->delays = NULL;
    c->n_delays = 0;
    size_t n = 1;
    for (const char *p = text; *p; p++)
        n += *p == ',';
    c->delays = calloc(n, sizeof *c->delays);
    if (!c->delays) {
        snprintf(bad, bad_size, "(out of memory)");
        return false;
    }
    const char *p = text;
    bool more = true;
    for (size_t i = 0; i < n; i++) {
        char tok[64];
        if (!next_token(&p, tok, &more, bad, bad_size))
            return false;
        if (!resil_cli_parse_seconds(tok, &c->delays[i])) {
            snprintf(bad, bad_size, "%s", tok);
            return false;
        }
    }
    c->n_delays = n;
    return true;
}

/* The command-line option naming a config field (for validation errors). */
static const char *field_option(const char *field)
{
    static const struct {
        const char *field, *option;
    } map[] = {
        {"max_retries", "--max-retries"}, {"base_delay_s", "--base-delay"},
        {"max_delay_s", "--max-delay"},   {"exponential_base", "--exp-base"},
        {"max_elapsed_s", "--deadline"},  {"jitter_kind", "--jitter"},
        {"preset", "--preset"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(map[i].field, field) == 0)
            return map[i].option;
    }
    return NULL;
}

enum {
    OPT_PRESET = 1000,
    OPT_MAX_RETRIES,
    OPT_FOREVER,
    OPT_BASE_DELAY,
    OPT_MAX_DELAY,
    OPT_EXP_BASE,
    OPT_JITTER,
    OPT_DEADLINE,
    OPT_SEED,
    OPT_ATTEMPT_TIMEOUT,
    OPT_KILL_AFTER,
    OPT_RETRY_ON,
    OPT_STOP_ON,
    OPT_NAME,
    OPT_EVENTS,
    OPT_BREAKER,
    OPT_FAILURE_THRESHOLD,
    OPT_RECOVERY_TIMEOUT,
    OPT_STATE_DIR,
    OPT_STATE_DIR_TRUST,
    OPT_METRICS_DIR,
};

static const struct option long_options[] = {
    {"preset", required_argument, NULL, OPT_PRESET},
    {"max-retries", required_argument, NULL, OPT_MAX_RETRIES},
    {"times", required_argument, NULL, 't'},
    {"forever", no_argument, NULL, OPT_FOREVER},
    {"base-delay", required_argument, NULL, OPT_BASE_DELAY},
    {"max-delay", required_argument, NULL, OPT_MAX_DELAY},
    {"exp-base", required_argument, NULL, OPT_EXP_BASE},
    {"jitter", required_argument, NULL, OPT_JITTER},
    {"deadline", required_argument, NULL, OPT_DEADLINE},
    {"seed", required_argument, NULL, OPT_SEED},
    {"delay", required_argument, NULL, 'd'},
    {"attempt-timeout", required_argument, NULL, OPT_ATTEMPT_TIMEOUT},
    {"kill-after", required_argument, NULL, OPT_KILL_AFTER},
    {"retry-on", required_argument, NULL, OPT_RETRY_ON},
    {"stop-on", required_argument, NULL, OPT_STOP_ON},
    {"until", required_argument, NULL, 'u'},
    {"while", required_argument, NULL, 'w'},
    {"message", required_argument, NULL, 'm'},
    {"name", required_argument, NULL, OPT_NAME},
    {"events", required_argument, NULL, OPT_EVENTS},
    {"breaker", required_argument, NULL, OPT_BREAKER},
    {"failure-threshold", required_argument, NULL, OPT_FAILURE_THRESHOLD},
    {"recovery-timeout", required_argument, NULL, OPT_RECOVERY_TIMEOUT},
    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
    {"state-dir-trust", required_argument, NULL, OPT_STATE_DIR_TRUST},
    {"metrics-dir", required_argument, NULL, OPT_METRICS_DIR},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'v'},
    {NULL, 0, NULL, 0},
};

/* The option as the user wrote it, for messages. */
static const char *option_name(int opt, char *buf, size_t size)
{
    for (const struct option *o = long_options; o->name; o++) {
        if (o->val == opt) {
            snprintf(buf, size, "--%s", o->name);
            return buf;
        }
    }
    snprintf(buf, size, "-%c", opt);
    return buf;
}

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

/* Parses the options.  Returns -1 to go on, or an exit status. */
static int parse_args(run_ctx *c, overrides *ov, int argc, char **argv)
{
    char bad[128], oname[64];
    int opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "+:t:d:u:w:m:qhv", long_options, NULL)) != -1) {
        double d;
        long l;
        switch (opt) {
        case OPT_PRESET:
            ov->preset = optarg;
            break;
        case 't':
        case OPT_MAX_RETRIES:
            if (!resil_cli_parse_long(optarg, 0, INT_MAX, &l))
                return usage_error("%s: '%s' is not a valid number of retries (expected an "
                                   "integer >= 0)",
                                   option_name(opt, oname, sizeof oname), optarg);
            ov->has_retries = true;
            ov->retries = (int)l;
            break;
        case OPT_FOREVER:
            ov->has_retries = true;
            ov->retries = INT_MAX;
            break;
        case OPT_BASE_DELAY:
        case OPT_MAX_DELAY:
        case OPT_DEADLINE:
            if (!resil_cli_parse_seconds(optarg, &d))
                return usage_error("%s: '%s' is not a valid duration (expected seconds >= 0, "
                                   "optionally with a unit ms, s, m, h or d)",
                                   option_name(opt, oname, sizeof oname), optarg);
            if (opt == OPT_BASE_DELAY) {
                ov->has_base = true;
                ov->base = d;
            } else if (opt == OPT_MAX_DELAY) {
                ov->has_max = true;
                ov->max = d;
            } else {
                ov->has_deadline = true;
                ov->deadline = d;
            }
            break;
        case OPT_EXP_BASE:
            if (!resil_cli_parse_double(optarg, &d))
                return usage_error("--exp-base: '%s' is not a valid number", optarg);
            ov->has_exp = true;
            ov->exp = d;
            break;
        case OPT_JITTER:
            ov->has_jitter = true;
            ov->jitter = true;
            if (strcmp(optarg, "full") == 0)
                ov->jitter_kind = RESIL_JITTER_FULL;
            else if (strcmp(optarg, "equal") == 0)
                ov->jitter_kind = RESIL_JITTER_EQUAL;
            else if (strcmp(optarg, "decorrelated") == 0)
                ov->jitter_kind = RESIL_JITTER_DECORRELATED;
            else if (strcmp(optarg, "none") == 0) {
                ov->jitter = false;
                ov->jitter_kind = RESIL_JITTER_DEFAULT;
            } else
                return usage_error("--jitter: unknown jitter '%s' (expected full, equal, "
                                   "decorrelated or none)",
                                   optarg);
            break;
        case OPT_SEED:
            if (!resil_cli_parse_u64(optarg, &ov->seed))
                return usage_error("--seed: '%s' is not a valid seed (expected an integer "
                                   "in 0..18446744073709551615)",
                                   optarg);
            ov->has_seed = true;
            break;
        case 'd':
            if (!parse_delays(c, optarg, bad, sizeof bad))
                return usage_error("--delay: bad delay '%s' in '%s' (expected seconds >= 0, "
                                   "comma-separated)",
                                   bad, optarg);
            break;
        case OPT_ATTEMPT_TIMEOUT:
        case OPT_KILL_AFTER:
            if (!resil_cli_parse_seconds(optarg, &d))
                return usage_error("%s: '%s' is not a valid duration (expected seconds >= 0, "
                                   "optionally with a unit ms, s, m, h or d)",
                                   option_name(opt, oname, sizeof oname), optarg);
            if (opt == OPT_ATTEMPT_TIMEOUT)
                c->attempt_timeout_s = d;
            else
                c->kill_after_s = d;
            break;
        case OPT_RETRY_ON:
        case OPT_STOP_ON:
            if (!parse_codes(opt == OPT_RETRY_ON ? &c->retry_on : &c->stop_on, optarg, false,
                             bad, sizeof bad))
                return usage_error("%s: bad exit code '%s' in '%s' (expected N or N-M, "
                                   "comma-separated, with 0 <= N <= M <= 255)",
                                   option_name(opt, oname, sizeof oname), bad, optarg);
            break;
        case 'u':
        case 'w':
            if (c->criteria.given && c->until_mode != (opt == 'u'))
                return usage_error("--until and --while cannot be combined");
            if (!parse_codes(&c->criteria, optarg, true, bad, sizeof bad))
                return usage_error("%s: bad criterion '%s' in '%s' (expected success, "
                                   "true, fail, false, N or N-M, comma-separated)",
                                   option_name(opt, oname, sizeof oname), bad, optarg);
            c->until_mode = opt == 'u';
            break;
        case 'm':
            c->label = optarg;
            break;
        case OPT_NAME:
            c->name = optarg;
            break;
        case OPT_EVENTS:
            ov->events_path = optarg;
            break;
        case OPT_BREAKER:
            if (optarg[0] == '\0')
                return usage_error("--breaker: the name is an empty string");
            if (strlen(optarg) > 200)
                return usage_error("--breaker: the name is longer than 200 bytes");
            c->breaker_name = optarg;
            break;
        case OPT_FAILURE_THRESHOLD:
            if (!resil_cli_parse_long(optarg, 1, 1000000, &l))
                return usage_error("--failure-threshold: '%s' is not a valid threshold "
                                   "(expected an integer from 1 to 1000000)",
                                   optarg);
            ov->has_threshold = true;
            ov->threshold = (int)l;
            break;
        case OPT_RECOVERY_TIMEOUT:
            if (!resil_cli_parse_seconds(optarg, &d) || !(d > 0))
                return usage_error("--recovery-timeout: '%s' is not a valid duration "
                                   "(expected seconds > 0, optionally with a unit ms, s, m, "
                                   "h or d)",
                                   optarg);
            ov->has_recovery = true;
            ov->recovery = d;
            break;
        case OPT_STATE_DIR:
            if (optarg[0] == '\0')
                return usage_error("--state-dir: the directory is an empty string");
            ov->state_dir = optarg;
            break;
        case OPT_STATE_DIR_TRUST:
            if (strcmp(optarg, "private") == 0)
                ov->state_trust = RESIL_BREAKER_TRUST_PRIVATE;
            else if (strcmp(optarg, "shared") == 0)
                ov->state_trust = RESIL_BREAKER_TRUST_SHARED;
            else
                return usage_error("--state-dir-trust: '%s' is not a trust mode (expected "
                                   "private or shared)",
                                   optarg);
            break;
        case OPT_METRICS_DIR:
            if (optarg[0] == '\0')
                return usage_error("--metrics-dir: the directory is an empty string");
            c->metrics_dir = optarg;
            break;
        case 'q':
            c->quiet = true;
            break;
        case 'h':
            run_usage(stdout);
            return fflush(stdout) == 0 ? RESIL_CLI_EXIT_OK : RESIL_CLI_EXIT_FAILURE;
        case 'v':
            printf("resil %s\n", resil_version());
            return fflush(stdout) == 0 ? RESIL_CLI_EXIT_OK : RESIL_CLI_EXIT_FAILURE;
        case ':':
            if (optopt)
                return usage_error("option '%s' requires an argument",
                                   option_name(optopt, oname, sizeof oname));
            return usage_error("option '%s' requires an argument", argv[optind - 1]);
        default: /* '?' */
            if (optopt)
                return usage_error("unknown option '-%c'", optopt);
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return usage_error("missing command (usage: resil run [options] [--] CMD [ARGS...])");
    if (argv[optind][0] == '\0')
        return usage_error("the command is an empty string");
    c->cmd = argv + optind;
    if (!c->breaker_name) {
        const char *lone = ov->has_threshold ? "--failure-threshold"
                           : ov->has_recovery ? "--recovery-timeout"
                           : ov->state_dir    ? "--state-dir"
                           : ov->state_trust  ? "--state-dir-trust"
                                              : NULL;
        if (lone)
            return usage_error("%s needs --breaker NAME", lone);
    } else if (!ov->state_dir) {
        const char *env = getenv("RESIL_STATE_DIR");
        if (!env || !*env)
            return usage_error("--breaker needs a state directory: give --state-dir DIR or "
                               "set RESIL_STATE_DIR (a breaker kept in this one process "
                               "would forget every failure when it exits)");
        ov->state_dir = env;
    }
    if (!c->metrics_dir) {
        const char *env = getenv("RESIL_METRICS_DIR");
        if (env && *env)
            c->metrics_dir = env;
    }
    return -1;
}

/* Opens (or creates) the --breaker breaker in its state directory.
 * Returns -1 to go on, or an exit status after a message. */
static int open_breaker(run_ctx *c, const overrides *ov)
{
    if (!c->breaker_name)
        return -1;
    resil_breaker_opts opts = RESIL_BREAKER_OPTS_INIT;
    opts.state_dir = ov->state_dir;
    opts.state_trust = ov->state_trust;
    /* Two calls per attempt: a lock each is nothing, and a state file
     * truncated while CMD runs must not kill resil after CMD succeeded. */
    opts.guard_every_call = true;
    if (ov->has_threshold)
        opts.failure_threshold = ov->threshold;
    if (ov->has_recovery)
        opts.recovery_timeout_s = ov->recovery;
    /* A trial attempt keeps its half-open lease for as long as it may run
     * (the default lease is the recovery timeout). */
    if (c->attempt_timeout_s > 0)
        opts.half_open_lease_s = c->attempt_timeout_s + c->kill_after_s + 1;
    resil_error err;
    resil_error_clear(&err);
    int rc = resil_breaker_new(&c->breaker, c->breaker_name, &opts, &err);
    if (rc == 0)
        return -1;
    c->breaker = NULL;
    if (rc == RESIL_EINVAL) {
        static const struct {
            const char *field, *option;
        } map[] = {
            {"failure_threshold", "--failure-threshold"},
            {"recovery_timeout_s", "--recovery-timeout"},
            {"half_open_lease_s", "--attempt-timeout"},
            {"state_dir", "--state-dir"},
            {"RESIL_STATE_DIR_TRUST", "RESIL_STATE_DIR_TRUST"},
            {"name", "--breaker"},
        };
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
            if (strcmp(map[i].field, err.path) == 0)
                return usage_error("%s: %s", map[i].option, err.message);
        }
        return usage_error("--breaker: %s", err.message[0] ? err.message : resil_strerror(rc));
    }
    msg("resil run: breaker %s: %s", c->breaker_name,
        err.message[0] ? err.message : resil_strerror(rc));
    return RESIL_CLI_EXIT_FAILURE;
}

/* Builds the retry config: the preset, then the individual options. */
static int build_config(run_ctx *c, const overrides *ov)
{
    resil_error err;
    resil_error_clear(&err);
    if (resil_retry_preset(&c->config, ov->preset ? ov->preset : "transient", &err) != 0)
        return usage_error("--preset: %s", err.message);
    if (ov->has_retries)
        c->config.max_retries = ov->retries;
    if (ov->has_base)
        c->config.base_delay_s = ov->base;
    if (ov->has_max)
        c->config.max_delay_s = ov->max;
    if (ov->has_exp)
        c->config.exponential_base = ov->exp;
    if (ov->has_jitter) {
        c->config.jitter = ov->jitter;
        c->config.jitter_kind = ov->jitter_kind;
    }
    if (ov->has_deadline)
        c->config.max_elapsed_s = ov->deadline;
    if (resil_retry_config_validate(&c->config, &err) != 0) {
        const char *o = field_option(err.path);
        if (o)
            return usage_error("%s: %s", o, err.message);
        return usage_error("invalid retry configuration: %s", err.message);
    }
    return -1;
}

/* ---- small I/O helpers ------------------------------------------------------------ */

static int64_t now_ns(void)
{
    return resil_clock_monotonic_ns(NULL);
}

/* t + s seconds, saturating at NS_NEVER (s is finite and >= 0). */
static int64_t add_s(int64_t t, double s)
{
    double ns = s * 1e9;
    if (!(ns < (double)(NS_NEVER - t) - 1e9))
        return NS_NEVER;
    return t + (int64_t)ns;
}

/* Writes all of buf to fd.  Returns 0 or the errno that stopped it. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, 1000);
        } else {
            return n < 0 ? errno : EIO;
        }
    }
    return 0;
}

/* Copies the whole of `from` (rewound) to fd `to`.  Returns 0 or an errno. */
static int copy_file(int from, int to)
{
    char buf[PUMP_CHUNK];
    if (lseek(from, 0, SEEK_SET) < 0)
        return errno;
    for (;;) {
        ssize_t n = read(from, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            return 0;
        int e = write_all(to, buf, (size_t)n);
        if (e)
            return e;
    }
}

/* Classifies the last attempt. */
static resil_outcome classify(const run_ctx *c)
{
    int s = c->status;
    bool met = c->until_mode ? c->criteria.has[s] : !c->criteria.has[s];
    if (met)
        return RESIL_OUTCOME_SUCCESS;
    if (c->stop_on.given && c->stop_on.has[s])
        return RESIL_OUTCOME_PERMANENT;
    if (c->retry_on.given && !c->retry_on.has[s] && !c->timed_out)
        return RESIL_OUTCOME_PERMANENT;
    return RESIL_OUTCOME_TRANSIENT;
}

static resil_outcome fatal_msg(run_ctx *c, const char *text)
{
    msg("resil run: %s", text);
    c->fatal = true;
    c->status = RESIL_CLI_EXIT_FAILURE;
    return RESIL_OUTCOME_PERMANENT;
}

/* True when the file system of the capture file has no room left (for
 * root: not even the reserved blocks). */
static bool capture_full(int fd)
{
    struct statfs sf;
    if (fstatfs(fd, &sf) != 0 || sf.f_blocks == 0)
        return false;
    return (geteuid() == 0 ? sf.f_bfree : sf.f_bavail) == 0;
}

/* Runs the command once, through resil_proc_run (resil/proc.h). */
static resil_outcome run_command(resil_retry_call *call, run_ctx *c)
{
    /* What the last attempt left, restored if this one is skipped. */
    bool prev_exited = c->exited, prev_timed_out = c->timed_out;
    int prev_status = c->status, prev_code = c->exit_code, prev_sig = c->term_sig;
    double prev_duration = c->duration_s;
    c->exited = false;
    c->exit_code = 0;
    c->term_sig = 0;
    c->timed_out = false;
    c->exec_failed = false;
    c->spawned = false;
    c->status = 0;
    c->duration_s = 0;
    if (c->n_delays > 0) {
        size_t i = (size_t)(call->attempt - 1);
        call->retry_after_s = c->delays[i < c->n_delays ? i : c->n_delays - 1];
    }

    /* stdout goes to a file of ours (0600, O_EXCL, unlinked at once) in
     * $TMPDIR or /tmp: a directory that cannot take it is named. */
    resil_error e;
    resil_error_clear(&e);
    int out_fd = -1;
    char out_path[PATH_MAX];
    int trc = resil_proc_tmpfile(&out_fd, NULL, "resil-run-stdout", out_path, sizeof out_path,
                                 &e);
    if (trc != 0) {
        char text[700];
        snprintf(text, sizeof text, "cannot capture the command's stdout: %s", e.message);
        return fatal_msg(c, text);
    }

    resil_proc_opts po = RESIL_PROC_OPTS_INIT;
    po.stdout_fd = out_fd;
    po.stdin_spool = c->stdin_mode == STDIN_PIPE ? c->spool : NULL;
    po.timeout_s = c->attempt_timeout_s;
    po.kill_after_s = c->kill_after_s > 0 ? c->kill_after_s : -1;
    /* --deadline bounds the whole run: an attempt still running when it
     * comes is ended like a timed-out one (and the retry then stops with
     * reason "deadline"). */
    if (c->config.max_elapsed_s > 0)
        po.deadline_ns = add_s(c->run_start_ns, c->config.max_elapsed_s);
    po.own_pgroup = c->own_pgroup;
    po.cancel = g_cancel;
    po.cancel_wait = true; /* the handler forwarded the signal itself */
    po.sigmask = &c->orig_mask;
    po.sigdefault = &c->child_deflt;
    po.publish_target = &g_target;
    po.publish_mask = &c->handled;

    resil_proc_result pr;
    resil_error_clear(&e);
    int rc = resil_proc_run(&pr, c->cmd, &po, &e);
    if (rc == RESIL_ECANCELED) {
        /* A signal came after the library's last look at the token and
         * before the spawn (it could not be forwarded): start nothing. */
        close(out_fd);
        c->skipped = true;
        c->exited = prev_exited;
        c->timed_out = prev_timed_out;
        c->status = prev_status;
        c->exit_code = prev_code;
        c->term_sig = prev_sig;
        c->duration_s = prev_duration;
        return RESIL_OUTCOME_PERMANENT;
    }
    if (pr.state == RESIL_PROC_NOT_STARTED) {
        close(out_fd);
        int err = pr.error ? pr.error : (rc < 0 ? -rc : EINVAL);
        if (err == EAGAIN || err == ENOMEM) {
            /* The system could not start a process now: worth a retry. */
            msg("resil run: %s: cannot start: %s", c->cmd[0], strerror(err));
            c->status = RESIL_CLI_EXIT_FAILURE;
            call->error = -err;
            return RESIL_OUTCOME_TRANSIENT;
        }
        if (pr.error == 0) /* not the command's fault: resil's own */
            return fatal_msg(c, e.message[0] ? e.message : resil_strerror(rc));
        c->exec_failed = true;
        c->status = pr.status;
        if (err == ENOENT)
            msg("resil run: %s: command not found", c->cmd[0]);
        else
            msg("resil run: %s: cannot execute: %s", c->cmd[0], strerror(err));
        call->error = -err;
        return RESIL_OUTCOME_PERMANENT;
    }
    c->spawned = true;
    c->exited = pr.state == RESIL_PROC_EXITED;
    c->exit_code = pr.code;
    c->term_sig = pr.state == RESIL_PROC_SIGNALED ? pr.signal : 0;
    c->timed_out = pr.timed_out;
    c->status = pr.status;
    c->duration_s = pr.duration_s;
    if (rc != 0) {
        /* The spool failed: the command was killed before it could see end
         * of input on partial data.  Its output is not delivered. */
        close(out_fd);
        char text[700];
        snprintf(text, sizeof text, "%s; the command was stopped before it could run on "
                 "partial input", e.message[0] ? e.message : resil_strerror(rc));
        return fatal_msg(c, text);
    }

    if (capture_full(out_fd)) {
        /* The command's writes to its stdout failed (or will have been cut
         * short) for want of space: its output cannot be trusted. */
        close(out_fd);
        char *slash = strrchr(out_path, '/');
        if (slash)
            *slash = '\0';
        char text[PATH_MAX + 200];
        snprintf(text, sizeof text, "the capture file of the command's stdout cannot be "
                 "written: the file system of %s is full (%s)", out_path, strerror(ENOSPC));
        return fatal_msg(c, text);
    }
    resil_outcome outcome = classify(c);
    int werr = copy_file(out_fd, outcome == RESIL_OUTCOME_SUCCESS ? STDOUT_FILENO : STDERR_FILENO);
    if (werr && outcome == RESIL_OUTCOME_SUCCESS)
        c->output_errno = werr; /* the output is lost: never a silent success */
    close(out_fd);
    call->error = c->status;
    return outcome;
}

/* The op: runs the command once, guarded by the breaker when there is one.
 * The breaker judges by exit status alone (0 success, anything else, a
 * timeout included, failure).  An attempt that never started (command not
 * found, resil's own failure, a signal before the spawn) and one ended by a
 * signal sent to resil say nothing about the service: IGNORE. */
static resil_outcome run_attempt(resil_retry_call *call, void *arg)
{
    run_ctx *c = arg;
    if (!c->breaker)
        return run_command(call, c);
    resil_breaker_permit permit;
    double retry_in = 0;
    int rc = resil_breaker_acquire(c->breaker, &permit, &retry_in);
    if (rc == RESIL_ECIRCUIT_OPEN) {
        /* Not an attempt: the command is not run and we stop (exit 75). */
        c->circuit_open = true;
        c->circuit_retry_in_s = retry_in;
        call->error = RESIL_ECIRCUIT_OPEN;
        return RESIL_OUTCOME_PERMANENT;
    }
    if (rc != 0) {
        msg("resil run: breaker %s: %s", c->breaker_name, resil_strerror(rc));
        c->fatal = true;
        c->status = RESIL_CLI_EXIT_FAILURE;
        return RESIL_OUTCOME_PERMANENT;
    }
    resil_outcome outcome = run_command(call, c);
    resil_breaker_verdict v;
    if (!c->spawned || (c->status != 0 && resil_cancel_is_cancelled(g_cancel)))
        v = RESIL_BREAKER_IGNORE;
    else
        v = c->status == 0 ? RESIL_BREAKER_SUCCESS : RESIL_BREAKER_FAILURE;
    rc = resil_breaker_record(c->breaker, &permit, v, c->spawned ? c->duration_s : 0);
    if (rc != 0)
        msg("resil run: breaker %s: cannot record the attempt's outcome: %s", c->breaker_name,
            resil_strerror(rc));
    return outcome;
}

/* ---- messages and events ------------------------------------------------------------------ */

/* "exit 7", "killed by SIGKILL (exit 137)", "timed out (exit 124)". */
static void describe(const run_ctx *c, char *buf, size_t size)
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

/* A copy of s that is valid UTF-8 (JSON strings must be): each byte that
 * does not start a well-formed sequence becomes '?'.  Caller frees. */
static char *utf8_sanitized(const char *s)
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
        msg("resil run: cannot build the event for attempt %d", info->attempt);
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
        msg("resil run: writing events: %s", e.message[0] ? e.message : resil_strerror(rc));
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
static void flush_metrics(run_ctx *c)
{
    if (!c->metrics_dir || !resil_metrics_enabled())
        return;
    resil_error err;
    resil_error_clear(&err);
    int rc = resil_metrics_flush_dir(resil_metrics_default(), c->metrics_dir, &err);
    if (rc != 0 && rc != c->metrics_last_error)
        msg("resil run: warning: cannot write metrics to %s: %s", c->metrics_dir,
            err.message[0] ? err.message : resil_strerror(rc));
    c->metrics_last_error = rc;
}

static void after_attempt(const resil_attempt_info *info, void *arg)
{
    run_ctx *c = arg;
    if (c->fatal || c->skipped || c->circuit_open)
        return;
    if (c->events) {
        write_event(c, info);
        c->last_event_retry = info->reason == RESIL_STOP_NONE;
    }
    flush_metrics(c);
    if (c->quiet || c->exec_failed || info->reason != RESIL_STOP_NONE)
        return; /* the final line is printed by resil_cli_run */
    char counter[64], what[96], took[32], delay[32];
    attempt_counter(c, info->attempt, counter, sizeof counter);
    fmt_secs(c->duration_s, took, sizeof took);
    fmt_secs(info->delay_s, delay, sizeof delay);
    if (c->timed_out) {
        msg("resil run: '%s' %s timed out after %s (exit %d); retrying in %s", c->label, counter,
            took, c->status, delay);
    } else {
        describe(c, what, sizeof what);
        msg("resil run: '%s' %s failed (%s) after %s; retrying in %s", c->label, counter, what,
            took, delay);
    }
}

/* ---- set-up and the entry point ---------------------------------------------------------- */

/* True when we have a controlling terminal and are in its foreground
 * process group. */
static bool in_terminal_foreground(void)
{
    int fd = open("/dev/tty", O_RDONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool fg = tcgetpgrp(fd) == getpgrp();
    close(fd);
    return fg;
}

/* Makes sure fds 0-2 are open (on /dev/null) so that our own files never
 * land on them.  Returns true when stdin was closed. */
static bool ensure_std_fds(void)
{
    bool stdin_closed = false;
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        if (fd == 0)
            stdin_closed = true;
        int nfd = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (nfd >= 0 && nfd != fd) {
            dup2(nfd, fd);
            close(nfd);
        }
    }
    return stdin_closed;
}

/* Installs the handlers and prepares the child's signal state.  Signals that
 * were ignored when we started (nohup, background jobs) stay ignored, in us
 * and in the command. */
static int setup_signals(run_ctx *c)
{
    sigprocmask(SIG_SETMASK, NULL, &c->orig_mask);
    sigemptyset(&c->handled);
    sigemptyset(&c->child_deflt);
    sigaddset(&c->child_deflt, SIGPIPE);
    sigaddset(&c->child_deflt, SIGCHLD);

    /* SIGPIPE: a command that stops reading its stdin gives us EPIPE. */
    signal(SIGPIPE, SIG_IGN);
    /* An inherited SIG_IGN for SIGCHLD would reap the child behind our back. */
    signal(SIGCHLD, SIG_DFL);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_HANDLED; i++)
        sigaddset(&sa.sa_mask, handled_signals[i]);
    for (size_t i = 0; i < N_HANDLED; i++) {
        struct sigaction old;
        if (sigaction(handled_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue;
        if (sigaction(handled_signals[i], &sa, NULL) != 0) {
            msg("resil run: cannot install a signal handler: %s", strerror(errno));
            return RESIL_CLI_EXIT_FAILURE;
        }
        sigaddset(&c->handled, handled_signals[i]);
        sigaddset(&c->child_deflt, handled_signals[i]);
        /* A blocked handled signal would never cancel us: unblock it in us,
         * while the command gets our original mask. */
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, handled_signals[i]);
        sigprocmask(SIG_UNBLOCK, &one, NULL);
    }
    return -1;
}

static void cleanup(run_ctx *c)
{
    flush_metrics(c); /* what the last attempt and the breaker recorded */
    for (size_t i = 0; i < N_HANDLED; i++) {
        if (sigismember(&c->handled, handled_signals[i]))
            signal(handled_signals[i], SIG_DFL);
    }
    resil_cancel_free(g_cancel);
    g_cancel = NULL;
    resil_breaker_free(c->breaker);
    c->breaker = NULL;
    if (c->events) {
        int rc = resil_ndjson_writer_close(c->events);
        if (rc != 0 && rc != RESIL_EDURABILITY)
            msg("resil run: closing the events file: %s", resil_strerror(rc));
        c->events = NULL;
    }
    free(c->delays);
    resil_proc_spool_free(c->spool);
    free(c->json_name);
}

int resil_cli_run(int argc, char **argv)
{
    run_ctx c;
    memset(&c, 0, sizeof c);
    c.kill_after_s = 5;
    c.until_mode = true;
    overrides ov;
    memset(&ov, 0, sizeof ov);

    int rc = parse_args(&c, &ov, argc, argv);
    if (rc < 0)
        rc = build_config(&c, &ov);
    if (rc >= 0) {
        free(c.delays);
        return rc;
    }
    if (!c.criteria.given) { /* default: --until success */
        c.criteria.given = true;
        c.criteria.has[0] = true;
    }
    if (!c.name) {
        const char *slash = strrchr(c.cmd[0], '/');
        c.name = slash && slash[1] ? slash + 1 : c.cmd[0];
    }
    if (!c.label)
        c.label = c.name;
    c.json_name = utf8_sanitized(c.name);

    bool stdin_closed = ensure_std_fds();
    if (stdin_closed)
        c.stdin_mode = STDIN_INHERIT; /* now /dev/null */
    else if (isatty(STDIN_FILENO))
        c.stdin_mode = STDIN_TTY;
    else
        c.stdin_mode = STDIN_PIPE;
    if (c.stdin_mode == STDIN_PIPE) {
        /* Captured stdin is spooled to a file (0600, O_EXCL, unlinked at
         * once), so any size can be replayed to every attempt. */
        resil_error e;
        resil_error_clear(&e);
        int src = resil_proc_spool_new(&c.spool, STDIN_FILENO, NULL, &e);
        if (src != 0) {
            msg("resil run: cannot capture stdin: %s", e.message);
            cleanup(&c);
            return RESIL_CLI_EXIT_FAILURE;
        }
    }
    /* When resil runs in the foreground of a terminal, the command shares
     * our process group: it may read the terminal (a password prompt) even
     * when stdin is a pipe, which a background group cannot.  Otherwise it
     * gets a group of its own, so that a timeout reaches its children. */
    c.own_pgroup = !in_terminal_foreground();
    g_own_pgroup = c.own_pgroup;

    if (ov.events_path) {
        resil_file_opts fo = RESIL_FILE_OPTS_INIT;
        resil_error e;
        resil_error_clear(&e);
        int erc = resil_ndjson_writer_open(&c.events, ov.events_path, &fo, &e);
        if (erc != 0) {
            c.events = NULL;
            msg("resil run: --events: %s", e.message[0] ? e.message : resil_strerror(erc));
            cleanup(&c);
            return RESIL_CLI_EXIT_FAILURE;
        }
    }
    int err = resil_cancel_new(&g_cancel);
    if (err != 0) {
        msg("resil run: cannot create a cancel token: %s", resil_strerror(err));
        cleanup(&c);
        return RESIL_CLI_EXIT_FAILURE;
    }
    rc = open_breaker(&c, &ov);
    if (rc < 0)
        rc = setup_signals(&c);
    if (rc >= 0) {
        cleanup(&c);
        return rc;
    }

    resil_rng rng;
    resil_retry_opts opts = RESIL_RETRY_OPTS_INIT;
    if (ov.has_seed) {
        resil_rng_seed(&rng, ov.seed);
        opts.rng = &rng;
    }
    opts.cancel = g_cancel;
    opts.after_attempt = after_attempt;
    opts.hook_arg = &c;

    resil_retry_result res;
    c.run_start_ns = now_ns();
    int r = resil_retry(run_attempt, &c, c.name, &c.config, &opts, &res);

    int status;
    if (c.skipped) {
        /* The last "attempt" was a cancellation caught before the spawn. */
        res.attempts--;
        res.reason = RESIL_STOP_CANCELLED;
        r = RESIL_ECANCELED;
    }
    if (res.reason == RESIL_STOP_CANCELLED && c.last_event_retry) {
        /* Stopped during the sleep: the events file ends with how. */
        resil_attempt_info last = {.name = c.name, .attempt = res.attempts,
                                   .outcome = res.last_outcome, .error = res.last_error,
                                   .reason = RESIL_STOP_CANCELLED, .elapsed_s = -1};
        write_event(&c, &last);
    }
    if (c.circuit_open && !c.fatal) {
        res.attempts--; /* the refused "attempt" did not run */
        if (c.last_event_retry) {
            /* The events file ends with why no attempt followed. */
            resil_attempt_info last = {.name = c.name, .attempt = res.attempts,
                                       .outcome = RESIL_OUTCOME_PERMANENT,
                                       .error = RESIL_ECIRCUIT_OPEN,
                                       .reason = RESIL_STOP_PERMANENT, .elapsed_s = -1};
            c.event_outcome = "circuit_open";
            write_event(&c, &last);
        }
    }
    if (c.fatal) {
        status = RESIL_CLI_EXIT_FAILURE;
    } else if (c.circuit_open) {
        status = EXIT_TEMPFAIL;
        if (!c.quiet) {
            char why[400], after[256] = "";
            double in_s = ceil(c.circuit_retry_in_s * 100) / 100; /* never "0.00" while open */
            if (c.circuit_retry_in_s < 0)
                snprintf(why, sizeof why, "is forced open ('resil breaker reset %.200s' closes "
                         "it)", c.breaker_name);
            else if (c.circuit_retry_in_s == 0)
                snprintf(why, sizeof why, "is half-open and its trial attempts are taken");
            else
                snprintf(why, sizeof why, "is open, half-open in %.*f s", in_s < 100 ? 2 : 0,
                         in_s);
            if (res.attempts > 0) {
                char what[96];
                describe(&c, what, sizeof what);
                snprintf(after, sizeof after, "; '%s' stopped after %d attempt%s (%s)", c.label,
                         res.attempts, res.attempts == 1 ? "" : "s", what);
            }
            msg("resil run: circuit %s %s%s", c.breaker_name, why, after);
        }
    } else if (c.output_errno) {
        /* The command succeeded but its output could not be delivered. */
        if (c.output_errno == EPIPE) {
            status = 128 + SIGPIPE; /* as the shell reports a reader gone away */
        } else {
            msg("resil run: cannot write the command's output: %s", strerror(c.output_errno));
            status = RESIL_CLI_EXIT_FAILURE;
        }
    } else if (c.exec_failed) {
        status = c.status; /* the one message was printed by the op */
    } else if (r == RESIL_EINVAL) {
        msg("resil run: invalid retry configuration");
        status = RESIL_CLI_EXIT_USAGE;
    } else if (res.attempts == 0) {
        /* Cancelled before the first attempt. */
        int sig = g_signal;
        status = sig ? 128 + sig : RESIL_CLI_EXIT_FAILURE;
        if (!c.quiet)
            msg("resil run: '%s' cancelled by %s before the first attempt", c.label,
                sig && signal_name(sig) ? signal_name(sig) : "a signal");
    } else {
        status = c.status;
        if (r != 0 && !c.quiet) {
            char what[96];
            describe(&c, what, sizeof what);
            if (res.reason == RESIL_STOP_CANCELLED) {
                int sig = g_signal;
                const char *nm = sig ? signal_name(sig) : NULL;
                msg("resil run: '%s' cancelled by %s after %d attempt%s: %s", c.label,
                    nm ? nm : "a signal", res.attempts, res.attempts == 1 ? "" : "s", what);
            } else {
                msg("resil run: '%s' gave up after %d attempt%s (%s): %s", c.label, res.attempts,
                    res.attempts == 1 ? "" : "s", resil_stop_reason_name(res.reason), what);
            }
        }
    }
    cleanup(&c);
    return status;
}
