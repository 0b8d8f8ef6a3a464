/* src/cli/run_args.c - `resil run`'s command line: the options, the retry
 * config they make, and the --breaker breaker with its guard. */
#define _GNU_SOURCE
#include "run.h"

#include <getopt.h>
#include <stdarg.h>

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
    run_msg("resil run: %s", text);
    run_msg("Try 'resil run --help' for more information.");
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

/* A policy option (the retry's config, delays, timeouts, exit codes,
 * criteria).  Returns -1 when handled, -2 when opt is not one of them, or an
 * exit status after a message. */
static int policy_option(run_ctx *c, overrides *ov, int opt)
{
    char bad[128], oname[64];
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
    default:
        return -2;
    }
    return -1;
}

/* The other options: naming, reporting, the breaker, help.  Returns -1 when
 * handled, or an exit status. */
static int other_option(run_ctx *c, overrides *ov, int opt, char **argv)
{
    char oname[64];
    double d;
    long l;
    switch (opt) {
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
    return -1;
}

/* After the options: the command, and what the options need together. */
static int check_args(run_ctx *c, overrides *ov, int argc, char **argv)
{
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

int run_parse_args(run_ctx *c, overrides *ov, int argc, char **argv)
{
    int opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "+:t:d:u:w:m:qhv", long_options, NULL)) != -1) {
        int rc = policy_option(c, ov, opt);
        if (rc == -2)
            rc = other_option(c, ov, opt, argv);
        if (rc >= 0)
            return rc;
    }
    return check_args(c, ov, argc, argv);
}

/* Creates the breaker (c->breaker).  Returns -1 to go on, or an exit
 * status after a message. */
static int breaker_new(run_ctx *c, const overrides *ov)
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
    run_msg("resil run: breaker %s: %s", c->breaker_name,
        err.message[0] ? err.message : resil_strerror(rc));
    return RESIL_CLI_EXIT_FAILURE;
}

int run_open_breaker(run_ctx *c, const overrides *ov)
{
    if (!c->breaker_name)
        return -1;
    int rc = breaker_new(c, ov);
    if (rc >= 0)
        return rc;
    /* The library's guard: a refused attempt does not run and is not an
     * attempt; we stop at once (exit 75) and its listener tells us why. */
    resil_guard_opts go = RESIL_GUARD_OPTS_INIT;
    go.open_policy = RESIL_BREAKER_OPEN_STOP;
    go.on_event = run_guard_event;
    go.event_arg = c;
    resil_error err;
    resil_error_clear(&err);
    int grc = resil_guard_new(&c->guard, c->breaker, &go, &err);
    if (grc == 0)
        return -1;
    c->guard = NULL;
    run_msg("resil run: breaker %s: %s", c->breaker_name,
            err.message[0] ? err.message : resil_strerror(grc));
    return RESIL_CLI_EXIT_FAILURE;
}

/* (run.h) */
int run_build_config(run_ctx *c, const overrides *ov)
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
