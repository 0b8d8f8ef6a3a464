/* src/cli/breaker.c - `resil breaker ...`: inspect and steer the circuit
 * breakers whose state lives in a state directory.
 *
 *   list                 every breaker in the directory: name, state, failures
 *   status NAME          one breaker's snapshot
 *   trip NAME            force it open (refuse every call) until reset
 *   reset NAME           close it; also the repair path of a corrupt state file
 *   disable NAME         let every call through (still counted) until reset
 *
 * A thin shell over the public API: resil_breaker_new with attach_only (a
 * tool that inspects breakers never creates one), resil_breaker_snapshot_get,
 * resil_breaker_trip / _disable / _reset, resil_breaker_list_dir and
 * resil_breaker_reset_file.  The state directory is --state-dir, else
 * RESIL_STATE_DIR; there is no default (a breaker kept in this process's
 * memory would mean nothing).
 */
#define _GNU_SOURCE
#include "cli.h"

#include "resil/breaker.h"
#include "resil/common.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#define NAME_MAX_BYTES 200 /* resil_breaker_new's limit */

typedef enum { BACT_NONE, BACT_LIST, BACT_STATUS, BACT_TRIP, BACT_RESET, BACT_DISABLE } cb_action;

typedef struct cb_cli {
    char prog[32]; /* "resil breaker status" */
    cb_action act;
    const char *action; /* as written */
    const char *name;
    const char *dir;
    bool dir_given; /* --state-dir (repeated in hints) */
    bool json;
    int trust; /* --state-dir-trust: a resil_breaker_trust, 0 = environment */
} cb_cli;

static void vmsg_args(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vmsg_args(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    resil_cli_vmsg(prog, fmt, ap);
    va_end(ap);
}

/* Every message goes out in its safe form: names, directories and the
 * library's messages may hold any bytes (see resil_cli_text_escape). */
static void msg(const cb_cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg(const cb_cli *c, const char *fmt, ...)
{
    char raw[1800], safe[1800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    vmsg_args(c->prog, "%s", resil_cli_text_safe_buf(raw, safe, sizeof safe));
}

static void cb_usage(FILE *out)
{
    fputs("usage: resil breaker list [--json] [--state-dir DIR]\n"
          "       resil breaker status NAME [--json] [--state-dir DIR]\n"
          "       resil breaker trip|reset|disable NAME [--json] [--state-dir DIR]\n"
          "\n"
          "Circuit breakers shared by the processes of this machine through their state\n"
          "files DIR/NAME.cb (as `resil run --breaker NAME` and the library use them).\n"
          "\n"
          "  list     every breaker in DIR: name, state, consecutive failures and the\n"
          "           time until half-open\n"
          "  status   one breaker's state and counters\n"
          "  trip     force it open: every call is refused until reset\n"
          "  reset    close it (failures, window and open streak cleared, totals kept);\n"
          "           a corrupt or truncated state file is rewritten as a fresh one\n"
          "  disable  let every call through (still counted) until reset\n"
          "\n"
          "options:\n"
          "  --state-dir DIR   the state directory (default: $RESIL_STATE_DIR; one of\n"
          "                    them is required)\n"
          "  --state-dir-trust private|shared\n"
          "                    private (default, or $RESIL_STATE_DIR_TRUST): refuse a\n"
          "                    state directory that others may write or another user\n"
          "                    owns, and state files of other users; shared: use them\n"
          "  --json            print JSON (status: one object; list: an array; trip,\n"
          "                    reset, disable: the new status)\n"
          "  -h, --help        show this help\n"
          "\n"
          "states: closed, open, half_open, forced_open, disabled.\n"
          "exit status: 0 success; 1 failure (no such breaker, a corrupt state file, an\n"
          "I/O error: the message says which); 2 usage error.  See resil(1).\n",
          out);
}

static int usage_error(const cb_cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const cb_cli *c, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    msg(c, "%s", text);
    msg(c, "Try 'resil breaker --help' for more information.");
    return RESIL_CLI_EXIT_USAGE;
}

/* ---- formatting ------------------------------------------------------------- */

/* s rounded up to the millisecond (a time left never reads 0 while left). */
static double ceil_ms(double s)
{
    return s > 0 ? ceil(s * 1000.0) / 1000.0 : 0;
}

static double round_ms(double s)
{
    return round(s * 1000.0) / 1000.0;
}

/* "0.20 s", "12.35 s", "3600 s". */
static const char *fmt_secs(double s, char *buf, size_t size)
{
    snprintf(buf, size, s < 100 ? "%.2f s" : "%.0f s", s);
    return buf;
}

/* `name` as one shell word, for the hints we print: as it is when plain,
 * in '...' when it holds only printable text, else in bash's $'...' with
 * the bytes a terminal must not see escaped (\e, \n, \xNN: the escapes of
 * resil_cli_text_escape are $'...' escapes). */
static const char *shell_word(const char *s, char *buf, size_t size)
{
    bool plain = *s != '\0';
    for (const char *p = s; *p && plain; p++)
        plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/:@%+=,",
                       *p) != NULL;
    if (plain) {
        snprintf(buf, size, "%s", s);
        return buf;
    }
    if (size < 8)
        return "''";
    size_t n = strlen(s);
    bool printable = resil_cli_text_escape(NULL, 0, s, n) == n;
    size_t o = 0;
    if (printable) {
        buf[o++] = '\'';
        for (const char *p = s; *p && o + 6 < size; p++) {
            if (*p == '\'') {
                memcpy(buf + o, "'\\''", 4);
                o += 4;
            } else {
                buf[o++] = *p;
            }
        }
        buf[o++] = '\'';
        buf[o] = '\0';
        return buf;
    }
    buf[o++] = '$';
    buf[o++] = '\'';
    for (size_t i = 0; i < n && o + 8 < size;) {
        if (s[i] == '\\' || s[i] == '\'') {
            buf[o++] = '\\';
            buf[o++] = s[i++];
            continue;
        }
        size_t j = i;
        while (j < n && s[j] != '\\' && s[j] != '\'')
            j++;
        size_t room = size - o - 3;
        resil_cli_text_escape(buf + o, room, s + i, j - i);
        o += strlen(buf + o);
        i = j;
        if (o + 8 >= size)
            break;
    }
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
}

/* The library's message (file and defect); the CLI adds its own hint, which
 * names the state directory when it came from --state-dir. */
static void defect_text(const char *message, char *buf, size_t size)
{
    snprintf(buf, size, "%s", message);
}

static void reset_hint(const cb_cli *c, const char *name, char *buf, size_t size)
{
    char wn[700], wd[1600];
    shell_word(name, wn, sizeof wn);
    if (c->dir_given)
        snprintf(buf, size, "resil breaker reset %s --state-dir %s", wn,
                 shell_word(c->dir, wd, sizeof wd));
    else
        snprintf(buf, size, "resil breaker reset %s", wn);
}

/* A JSON string of s; bytes that are not valid UTF-8 become '?'. */
static json_t *json_text(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t n = strlen(s);
    char *copy = malloc(n + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        copy[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
    j = json_string(copy);
    free(copy);
    return j;
}

static json_t *rate_json(double r)
{
    return r < 0 ? json_null() : json_real(r);
}

/* The status object of --json.  time_until_half_open_s: seconds left while
 * open, null when forced open (it never half-opens by itself), else 0. */
static json_t *snapshot_json(const char *name, const resil_breaker_snapshot *s)
{
    json_t *until;
    if (s->state == RESIL_BREAKER_FORCED_OPEN)
        until = json_null();
    else if (s->state == RESIL_BREAKER_OPEN)
        until = json_real(ceil_ms(s->time_until_half_open_s));
    else
        until = json_real(0);
    return json_pack("{s:o, s:s, s:I, s:o, s:I, s:I, s:I, s:I, s:o, s:o, s:i, s:f, s:i, s:i, "
                     "s:I}",
                     "name", json_text(name), "state", resil_breaker_state_name(s->state),
                     "consecutive_failures", (json_int_t)s->consecutive_failures,
                     "time_until_half_open_s", until, "successful", (json_int_t)s->successful,
                     "failed", (json_int_t)s->failed, "ignored", (json_int_t)s->ignored,
                     "not_permitted", (json_int_t)s->not_permitted, "failure_rate",
                     rate_json(s->failure_rate), "slow_call_rate", rate_json(s->slow_call_rate),
                     "window_calls", s->window_calls, "open_duration_s",
                     round_ms(s->open_duration_s), "open_streak", s->open_streak,
                     "half_open_in_flight", s->half_open_in_flight, "epoch",
                     (json_int_t)s->epoch);
}

/* Prints j as one line on stdout and releases it. */
static int print_json(const cb_cli *c, json_t *j)
{
    if (!j) {
        msg(c, "cannot build the JSON output (out of memory)");
        return RESIL_CLI_EXIT_FAILURE;
    }
    int rc = json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(j);
    if (rc != 0 || putchar('\n') == EOF)
        return RESIL_CLI_EXIT_FAILURE;
    return RESIL_CLI_EXIT_OK;
}

/* The state with what it means right now: "open (half-open in 12.35 s)". */
static const char *state_text(const resil_breaker_snapshot *s, char *buf, size_t size)
{
    char t[48];
    const char *nm = resil_breaker_state_name(s->state);
    switch (s->state) {
    case RESIL_BREAKER_OPEN:
        snprintf(buf, size, "%s (half-open in %s)", nm,
                 fmt_secs(ceil_ms(s->time_until_half_open_s), t, sizeof t));
        break;
    case RESIL_BREAKER_FORCED_OPEN:
        snprintf(buf, size, "%s (every call refused until reset)", nm);
        break;
    case RESIL_BREAKER_DISABLED:
        snprintf(buf, size, "%s (every call allowed until reset)", nm);
        break;
    default:
        snprintf(buf, size, "%s", nm);
        break;
    }
    return buf;
}

static void print_status(const char *name, const resil_breaker_snapshot *s)
{
    char st[128], t[48], safe[4 * NAME_MAX_BYTES + 1];
    printf("name:                 %s\n", resil_cli_text_safe_buf(name, safe, sizeof safe));
    printf("state:                %s\n", state_text(s, st, sizeof st));
    printf("consecutive failures: %lld\n", (long long)s->consecutive_failures);
    printf("calls:                %lld successful, %lld failed, %lld ignored, %lld not "
           "permitted\n",
           (long long)s->successful, (long long)s->failed, (long long)s->ignored,
           (long long)s->not_permitted);
    if (s->failure_rate < 0)
        printf("failure rate:         - (no calls)\n");
    else
        printf("failure rate:         %.1f%%\n", s->failure_rate * 100);
    if (s->window_calls > 0) {
        printf("window:               %d calls", s->window_calls);
        if (s->slow_call_rate >= 0)
            printf(", %.1f%% slow", s->slow_call_rate * 100);
        putchar('\n');
    }
    printf("open streak:          %d", s->open_streak);
    if (s->open_duration_s > 0)
        printf(" (%s open for %s)", s->state == RESIL_BREAKER_OPEN ? "now" : "last",
               fmt_secs(s->open_duration_s, t, sizeof t));
    putchar('\n');
    printf("half-open trials:     %d in flight\n", s->half_open_in_flight);
    printf("epoch:                %llu\n", (unsigned long long)s->epoch);
}

/* ---- opening a breaker ----------------------------------------------------------- */

/* Opens the existing breaker `name` (attach only).  On failure prints why
 * (naming the file and the defect of a corrupt one, with the reset hint
 * unless `quiet_parse`) and returns the library's code. */
static int open_breaker(const cb_cli *c, const char *name, resil_breaker **out, resil_error *e,
                        bool quiet_parse)
{
    resil_breaker_opts opts = RESIL_BREAKER_OPTS_INIT;
    opts.state_dir = c->dir;
    opts.attach_only = true;
    opts.state_trust = c->trust;
    resil_error_clear(e);
    int rc = resil_breaker_new(out, name, &opts, e);
    if (rc == 0)
        return 0;
    if (rc == RESIL_EPARSE) {
        if (!quiet_parse) {
            char what[600], hint[2600];
            defect_text(e->message[0] ? e->message : resil_strerror(rc), what, sizeof what);
            reset_hint(c, name, hint, sizeof hint);
            msg(c, "%s", what);
            msg(c, "'%s' starts it afresh (its counts are lost)", hint);
        }
    } else if (rc == -ENOENT) {
        msg(c, "no breaker %s in %s", name, c->dir);
    } else if (e->message[0]) {
        msg(c, "%s", e->message);
    } else {
        msg(c, "breaker %s in %s: %s", name, c->dir, resil_strerror(rc));
    }
    return rc;
}

static int finish_output(const cb_cli *c)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        msg(c, "cannot write to standard output: %s", strerror(errno));
        return RESIL_CLI_EXIT_FAILURE;
    }
    return RESIL_CLI_EXIT_OK;
}

/* ---- the actions ---------------------------------------------------------------- */

static int do_status(const cb_cli *c)
{
    resil_breaker *b = NULL;
    resil_error e;
    if (open_breaker(c, c->name, &b, &e, false) != 0)
        return RESIL_CLI_EXIT_FAILURE;
    resil_breaker_snapshot s;
    resil_breaker_snapshot_get(b, &s);
    int rc = RESIL_CLI_EXIT_OK;
    if (c->json)
        rc = print_json(c, snapshot_json(c->name, &s));
    else
        print_status(c->name, &s);
    resil_breaker_free(b);
    int out = finish_output(c);
    return rc != RESIL_CLI_EXIT_OK ? rc : out;
}

/* trip, disable, reset: "NAME: open -> forced_open", or with --json the new
 * status. */
static int do_change(const cb_cli *c)
{
    resil_breaker *b = NULL;
    resil_error e;
    const char *from = NULL;
    char defect[600] = "";
    int rc = open_breaker(c, c->name, &b, &e, c->act == BACT_RESET);
    if (rc == RESIL_EPARSE && c->act == BACT_RESET) {
        /* The repair path: whatever the file holds, write a fresh state. */
        defect_text(e.message[0] ? e.message : resil_strerror(rc), defect, sizeof defect);
        resil_error e2;
        resil_error_clear(&e2);
        rc = resil_breaker_reset_file(c->dir, c->name, &e2);
        if (rc != 0) {
            msg(c, "%s", defect);
            msg(c, "cannot rewrite it: %s", e2.message[0] ? e2.message : resil_strerror(rc));
            return RESIL_CLI_EXIT_FAILURE;
        }
        msg(c, "%s; wrote a fresh closed state", defect);
        from = "corrupt";
        rc = open_breaker(c, c->name, &b, &e, false);
    }
    if (rc != 0)
        return RESIL_CLI_EXIT_FAILURE;
    resil_breaker_snapshot s;
    if (!from) {
        resil_breaker_snapshot_get(b, &s);
        from = resil_breaker_state_name(s.state);
        if (c->act == BACT_TRIP)
            rc = resil_breaker_trip(b);
        else if (c->act == BACT_DISABLE)
            rc = resil_breaker_disable(b);
        else
            rc = resil_breaker_reset(b);
        if (rc != 0) {
            msg(c, "cannot %s breaker %s in %s: %s", c->action, c->name, c->dir,
                resil_strerror(rc));
            resil_breaker_free(b);
            return RESIL_CLI_EXIT_FAILURE;
        }
    }
    resil_breaker_snapshot_get(b, &s);
    int status = RESIL_CLI_EXIT_OK;
    if (c->json)
        status = print_json(c, snapshot_json(c->name, &s));
    else {
        char safe[4 * NAME_MAX_BYTES + 1];
        printf("%s: %s -> %s\n", resil_cli_text_safe_buf(c->name, safe, sizeof safe), from,
               resil_breaker_state_name(s.state));
    }
    resil_breaker_free(b);
    int out = finish_output(c);
    return status != RESIL_CLI_EXIT_OK ? status : out;
}

typedef struct name_list {
    char **names;
    size_t n, cap;
    bool oom;
} name_list;

static int collect_name(const char *name, void *arg)
{
    name_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **p = realloc(l->names, cap * sizeof *p);
        if (!p) {
            l->oom = true;
            return 1;
        }
        l->names = p;
        l->cap = cap;
    }
    l->names[l->n] = strdup(name);
    if (!l->names[l->n]) {
        l->oom = true;
        return 1;
    }
    l->n++;
    return 0;
}

static int do_list(const cb_cli *c)
{
    name_list l = {0};
    resil_error e;
    resil_error_clear(&e);
    int rc = resil_breaker_list_dir(c->dir, collect_name, &l, &e);
    if (l.oom) {
        msg(c, "out of memory");
        rc = -ENOMEM;
    } else if (rc != 0) {
        if (e.message[0])
            msg(c, "%s", e.message);
        else
            msg(c, "cannot read the state directory %s: %s", c->dir, resil_strerror(rc));
    }
    int status = rc == 0 ? RESIL_CLI_EXIT_OK : RESIL_CLI_EXIT_FAILURE;

    /* Widths of the table, in terminal columns of the names' safe forms
     * (names wider than 40 columns push their row). */
    int w = 4;
    for (size_t i = 0; i < l.n; i++) {
        int len = resil_cli_text_width(l.names[i]);
        if (len > w)
            w = len > 40 ? 40 : len;
    }
    json_t *arr = c->json && rc == 0 ? json_array() : NULL;
    bool header = false;
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        resil_breaker *b = NULL;
        resil_breaker_snapshot s;
        int orc = open_breaker(c, l.names[i], &b, &e, false);
        if (orc == -ENOENT)
            continue; /* removed since the directory was read */
        if (orc == -EPERM && strcmp(e.path, c->dir) == 0) {
            status = RESIL_CLI_EXIT_FAILURE; /* the directory is refused: said once */
            break;
        }
        if (orc == 0) {
            resil_breaker_snapshot_get(b, &s);
            resil_breaker_free(b);
        } else {
            status = RESIL_CLI_EXIT_FAILURE; /* the message was printed */
        }
        if (arr) {
            json_t *j;
            if (orc == 0) {
                j = snapshot_json(l.names[i], &s);
            } else {
                char what[600];
                defect_text(e.message[0] ? e.message : resil_strerror(orc), what, sizeof what);
                j = json_pack("{s:o, s:n, s:s}", "name", json_text(l.names[i]), "state",
                              "error", what);
            }
            if (!j || json_array_append_new(arr, j) != 0) {
                msg(c, "cannot build the JSON output (out of memory)");
                status = RESIL_CLI_EXIT_FAILURE;
            }
            continue;
        }
        if (!header) {
            printf("%-*s  %-11s  %8s  %s\n", w, "NAME", "STATE", "FAILURES", "HALF-OPEN IN");
            header = true;
        }
        if (resil_cli_text_pad(stdout, l.names[i], w) != 0) {
            status = RESIL_CLI_EXIT_FAILURE;
            break;
        }
        if (orc != 0) {
            printf("  %-11s  %8s  %s\n", orc == RESIL_EPARSE ? "corrupt" : "error", "-", "-");
            continue;
        }
        char t[48] = "-";
        if (s.state == RESIL_BREAKER_OPEN)
            fmt_secs(ceil_ms(s.time_until_half_open_s), t, sizeof t);
        else if (s.state == RESIL_BREAKER_FORCED_OPEN)
            snprintf(t, sizeof t, "never (reset)");
        printf("  %-11s  %8lld  %s\n", resil_breaker_state_name(s.state),
               (long long)s.consecutive_failures, t);
    }
    if (arr) {
        int prc = print_json(c, arr);
        if (prc != RESIL_CLI_EXIT_OK)
            status = prc;
    }
    for (size_t i = 0; i < l.n; i++)
        free(l.names[i]);
    free(l.names);
    int out = finish_output(c);
    return status != RESIL_CLI_EXIT_OK ? status : out;
}

/* ---- the entry point -------------------------------------------------------------- */

static cb_action action_of(const char *s)
{
    static const struct {
        const char *name;
        cb_action act;
    } actions[] = {
        {"list", BACT_LIST},   {"status", BACT_STATUS},   {"trip", BACT_TRIP},
        {"reset", BACT_RESET}, {"disable", BACT_DISABLE},
    };
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) {
        if (strcmp(actions[i].name, s) == 0)
            return actions[i].act;
    }
    return BACT_NONE;
}

int resil_cli_breaker(int argc, char **argv)
{
    cb_cli c;
    memset(&c, 0, sizeof c);
    snprintf(c.prog, sizeof c.prog, "resil breaker");
    bool only_operands = false;
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_operands && strcmp(a, "--") == 0) {
            only_operands = true;
            continue;
        }
        if (!only_operands && resil_cli_is_option(a)) {
            if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
                cb_usage(stdout);
                return fflush(stdout) == 0 ? RESIL_CLI_EXIT_OK : RESIL_CLI_EXIT_FAILURE;
            }
            if (strcmp(a, "--json") == 0) {
                c.json = true;
                continue;
            }
            const char *val = NULL;
            int r = resil_cli_opt_value(argc, argv, &i, "--state-dir-trust", &val);
            if (r < 0)
                return usage_error(&c, "option '--state-dir-trust' requires an argument");
            if (r > 0) {
                if (strcmp(val, "private") == 0)
                    c.trust = RESIL_BREAKER_TRUST_PRIVATE;
                else if (strcmp(val, "shared") == 0)
                    c.trust = RESIL_BREAKER_TRUST_SHARED;
                else
                    return usage_error(&c, "--state-dir-trust: '%s' is not a trust mode "
                                           "(expected private or shared)",
                                       val);
                continue;
            }
            r = resil_cli_opt_value(argc, argv, &i, "--state-dir", &val);
            if (r < 0)
                return usage_error(&c, "option '--state-dir' requires an argument");
            if (r > 0) {
                if (val[0] == '\0')
                    return usage_error(&c, "--state-dir: the directory is an empty string");
                c.dir = val;
                c.dir_given = true;
                continue;
            }
            return usage_error(&c, "unknown option '%s'", a);
        }
        if (c.act == BACT_NONE) {
            c.act = action_of(a);
            if (c.act == BACT_NONE)
                return usage_error(&c, "unknown action '%s' (expected list, status, trip, "
                                       "reset or disable)",
                                   a);
            c.action = a;
            snprintf(c.prog, sizeof c.prog, "resil breaker %s", a);
            continue;
        }
        if (npos == 1 || c.act == BACT_LIST)
            return usage_error(&c, "unexpected argument '%s'", a);
        pos[npos++] = a;
    }
    if (c.act == BACT_NONE)
        return usage_error(&c, "missing action (list, status, trip, reset or disable)");
    if (c.act != BACT_LIST) {
        if (npos < 1)
            return usage_error(&c, "missing NAME (the breaker's name)");
        c.name = pos[0];
        if (c.name[0] == '\0')
            return usage_error(&c, "NAME is an empty string");
        if (strlen(c.name) > NAME_MAX_BYTES)
            return usage_error(&c, "NAME is longer than %d bytes", NAME_MAX_BYTES);
    }
    if (!c.dir) {
        const char *env = getenv("RESIL_STATE_DIR");
        if (!env || !*env)
            return usage_error(&c, "a state directory is needed: give --state-dir DIR or "
                                   "set RESIL_STATE_DIR");
        c.dir = env;
    }
    if (c.trust == 0) {
        /* A bad RESIL_STATE_DIR_TRUST is a usage error, said once. */
        const char *env = getenv("RESIL_STATE_DIR_TRUST");
        if (env && *env && strcmp(env, "private") != 0 && strcmp(env, "shared") != 0)
            return usage_error(&c, "RESIL_STATE_DIR_TRUST=%s is not a trust mode (expected "
                                   "private or shared)",
                               env);
    } else {
        /* the library's reset of a corrupt file reads the environment */
        setenv("RESIL_STATE_DIR_TRUST",
               c.trust == RESIL_BREAKER_TRUST_SHARED ? "shared" : "private", 1);
    }
    resil_cli_ensure_std_fds();

    switch (c.act) {
    case BACT_LIST:
        return do_list(&c);
    case BACT_STATUS:
        return do_status(&c);
    default:
        return do_change(&c);
    }
}
