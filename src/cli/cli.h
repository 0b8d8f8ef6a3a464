/* src/cli/cli.h - what the sub-commands of the resil command share.
 *
 * Each sub-command lives in its own src/cli/<name>.c and exports one entry
 * point `int resil_cli_<name>(int argc, char **argv)`: argv[0] is the
 * sub-command's name, the return value is the process's exit status.
 * main.c lists the entry points in its table of sub-commands.
 *
 * The small parsers below are header-only (static inline) so that a new
 * sub-command needs no new shared source file.
 */
#ifndef RESIL_CLI_CLI_H
#define RESIL_CLI_CLI_H

#include "resil/files.h"
#include "resil/proc.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

/* Exit statuses shared by every sub-command. */
enum {
    RESIL_CLI_EXIT_OK = 0,
    RESIL_CLI_EXIT_FAILURE = 1, /* resil's own runtime failure */
    RESIL_CLI_EXIT_USAGE = 2    /* bad command line */
};

/* A sub-command: its name, its entry point and one line of help. */
typedef int (*resil_cli_fn)(int argc, char **argv);

typedef struct resil_cli_command {
    const char *name;
    resil_cli_fn fn;
    const char *help;
} resil_cli_command;

/* ---- entry points (one per src/cli/<name>.c) ---------------------------- */

int resil_cli_run(int argc, char **argv);
int resil_cli_json(int argc, char **argv);   /* json.c: `resil json ...` */
int resil_cli_yaml(int argc, char **argv);   /* json.c: `resil yaml ...` */
int resil_cli_ndjson(int argc, char **argv); /* ndjson.c */
int resil_cli_lock(int argc, char **argv);   /* lock.c */
int resil_cli_breaker(int argc, char **argv); /* breaker.c */
int resil_cli_metrics(int argc, char **argv); /* metrics.c */

/* ---- text printed for people (text.c) ------------------------------------ *
 * Every name, path or message text that comes from outside (a breaker's or
 * a file's name, a header read from a file) goes through these before it
 * reaches a terminal.  Valid UTF-8 is kept; control bytes (C0, DEL), C1
 * controls, bidirectional overrides and isolates (U+202A..U+202E,
 * U+2066..U+2069, U+200E, U+200F, U+061C) and bytes that are not valid UTF-8
 * (overlong forms, surrogates, truncated sequences) are written as \e, \n,
 * \t, \r or \xNN, one escape per byte.  Backslashes are kept as they are.
 * No locale is consulted. */

/* Writes the safe form of s[0..n) (may hold NULs) into out (size bytes,
 * always NUL-terminated when size > 0, cut only between whole characters
 * or escapes).  Returns the length of the whole safe form, as snprintf does
 * (out may be NULL with size 0 to measure). */
size_t resil_cli_text_escape(char *out, size_t size, const char *s, size_t n);

/* The safe form of the string s (NULL: "") in a new malloc'd string (the
 * caller frees it), or NULL when out of memory. */
char *resil_cli_text_safe(const char *s);

/* The safe form of s in buf (size bytes; cut as resil_cli_text_escape
 * does).  Returns buf. */
const char *resil_cli_text_safe_buf(const char *s, char *buf, size_t size);

/* The number of terminal columns the safe form of s takes: East Asian wide
 * and fullwidth characters count 2, combining marks and other zero-width
 * characters 0, every escape its length.  So
 * resil_cli_text_width(s) == resil_cli_text_width(resil_cli_text_safe(s)). */
int resil_cli_text_width(const char *s);

/* The columns of one code point: 0, 1 or 2, or -1 for a control. */
int resil_cli_cp_width(uint32_t cp);

/* Prints the safe form of s on out, then spaces up to `width` columns (none
 * when it is wider).  Returns 0, or -1 on a write error or out of memory. */
int resil_cli_text_pad(FILE *out, const char *s, int width);

/* ---- running a command (lock.c; shared with json.c) ---------------------- */

/* Makes sure fds 0-2 are open (on /dev/null when they were closed), so that
 * files opened later never land on them. */
void resil_cli_ensure_std_fds(void);

/* --cmd-timeout S and --kill-after S of lock and json|yaml update. */
typedef struct resil_cli_cmd_opts {
    double timeout_s;      /* 0: none */
    double kill_after_s;   /* with kill_after_given; else the default (5 s) */
    bool kill_after_given;
    bool given;            /* either option was on the command line */
} resil_cli_cmd_opts;

/* Matches argv[*i] against --cmd-timeout / --kill-after.  Returns 1 (stored
 * in *co), 0 when it is neither, -1 after a message prefixed with prog. */
int resil_cli_cmd_option(int argc, char **argv, int *i, const char *prog, resil_cli_cmd_opts *co);

/* Runs cmd (cmd[0] looked up in PATH) with resil_proc_run and waits for it.
 * in_fd and out_fd, when > 0, become its stdin and stdout; otherwise it
 * inherits ours.  co (may be NULL) gives the timeout.  While it runs,
 * SIGINT, SIGTERM and SIGHUP sent to resil are forwarded to it (signals
 * resil ignored stay ignored, in it too).  *res (may be NULL) gets how it
 * ended.  Returns its status: the exit code, 128+N if killed by signal N,
 * 124 when the timeout ended it, 127 when cmd[0] is not found, 126 when it
 * cannot be executed (a message naming it is then printed, prefixed with
 * `who`). */
int resil_cli_exec(char *const *cmd, int in_fd, int out_fd, const resil_cli_cmd_opts *co,
                   const char *who, resil_proc_result *res);

/* Prints "WHO: 'WHAT' timed out after ... / killed by signal 9 (SIGKILL) /
 * exited with status 137" when the end is worth a line: a timeout, a signal
 * other than SIGPIPE, an exit code above 128 (which a shell would take for
 * a signal). */
void resil_cli_report_end(const char *who, const char *what, const resil_proc_result *r);

/* ---- options shared by the file sub-commands ---------------------------------- */

/* Matches argv[*i] against the long option `name` taking a value, given as
 * "NAME VALUE" or "NAME=VALUE".  Returns 1 (with *val set and *i on the last
 * argument used), 0 when argv[*i] is not that option, -1 when the value is
 * missing. */
static inline int resil_cli_opt_value(int argc, char **argv, int *i, const char *name,
                                      const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *i += 1;
    *val = argv[*i];
    return 1;
}

/* True when `a` looks like an option ("-x", "--xyz"), not like an operand:
 * "-" alone and negative numbers ("-1", "-0.5") are operands. */
static inline bool resil_cli_is_option(const char *a)
{
    return a[0] == '-' && a[1] != '\0' && !(a[1] >= '0' && a[1] <= '9') && a[1] != '.';
}

static inline bool resil_cli_parse_seconds(const char *s, double *out);

/* The options shared by json, yaml and ndjson: "--timeout S" (the lock
 * timeout; 0 means one try) and "--durability full|file|none".  Returns 1
 * when argv[*i] was one of them (stored in *fo), 0 when it was not, -1 after
 * printing a usage message prefixed with `prog`. */
static inline int resil_cli_file_option(int argc, char **argv, int *i, const char *prog,
                                        resil_file_opts *fo)
{
    const char *val = NULL;
    int r = resil_cli_opt_value(argc, argv, i, "--timeout", &val);
    if (r == 0) {
        r = resil_cli_opt_value(argc, argv, i, "--durability", &val);
        if (r == 0)
            return 0;
        if (r > 0) {
            if (strcmp(val, "full") == 0)
                fo->durability = RESIL_DURABLE_FULL;
            else if (strcmp(val, "file") == 0)
                fo->durability = RESIL_DURABLE_FILE;
            else if (strcmp(val, "none") == 0)
                fo->durability = RESIL_DURABLE_NONE;
            else {
                fprintf(stderr, "%s: --durability: unknown value '%s' (expected full, file or "
                                "none)\n", prog, val);
                return -1;
            }
            return 1;
        }
        fprintf(stderr, "%s: option '--durability' requires an argument\n", prog);
        return -1;
    }
    if (r < 0) {
        fprintf(stderr, "%s: option '--timeout' requires an argument\n", prog);
        return -1;
    }
    double s;
    if (!resil_cli_parse_seconds(val, &s)) {
        fprintf(stderr, "%s: --timeout: '%s' is not a valid duration (expected seconds >= 0, "
                        "optionally with a unit ms, s, m, h or d)\n", prog, val);
        return -1;
    }
    fo->lock_timeout_s = s > 0 ? s : -1; /* the library reads < 0 as one try */
    return 1;
}

/* ---- messages -------------------------------------------------------------- */

/* Prints "PROG: message\n" on stderr with one write(), so that the lines of
 * concurrent processes never interleave. */
static inline void resil_cli_vmsg(const char *prog, const char *fmt, va_list ap)
#ifdef __GNUC__
    __attribute__((format(printf, 2, 0)))
#endif
    ;
static inline void resil_cli_vmsg(const char *prog, const char *fmt, va_list ap)
{
    char line[2048];
    int k = snprintf(line, sizeof line, "%s: ", prog);
    if (k < 0 || (size_t)k >= sizeof line)
        k = 0;
    int n = vsnprintf(line + k, sizeof line - (size_t)k - 1, fmt, ap);
    if (n < 0)
        return;
    size_t len = (size_t)k + (size_t)n;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

static inline void resil_cli_msg(const char *prog, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static inline void resil_cli_msg(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    resil_cli_vmsg(prog, fmt, ap);
    va_end(ap);
}

/* ---- parsers -------------------------------------------------------------- */

/* Parses a whole string as a decimal integer in [lo, hi].  Returns true and
 * sets *out, or false (nothing set) for empty strings, trailing garbage and
 * values out of range. */
static inline bool resil_cli_parse_long(const char *s, long lo, long hi, long *out)
{
    /* strtol would skip leading blanks: " 1" is not a number here */
    if (!s || !*s || *s == ' ' || (*s >= '\t' && *s <= '\r'))
        return false;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Parses an unsigned 64-bit decimal integer (no sign allowed). */
static inline bool resil_cli_parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0')
        return false;
    *out = (uint64_t)v;
    return true;
}

/* Parses a finite decimal number (no suffix). */
static inline bool resil_cli_parse_double(const char *s, double *out)
{
    if (!s || !*s || *s == ' ' || (*s >= '\t' && *s <= '\r'))
        return false;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* Parses a duration: a finite number >= 0 of seconds, optionally followed by
 * a unit "ms", "s", "m", "h" or "d" (as sleep(1) and timeout(1) accept).
 * It must start with a digit or '.': no sign, no blanks, no "inf"/"nan";
 * hexadecimal is refused; exponents ("1e-3") are fine. */
static inline bool resil_cli_parse_seconds(const char *s, double *out)
{
    if (!s || !((*s >= '0' && *s <= '9') || *s == '.') || strpbrk(s, "xXpP"))
        return false;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0)
        return false;
    double mult;
    if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
        mult = 1;
    else if (strcmp(end, "ms") == 0)
        mult = 1e-3;
    else if (strcmp(end, "m") == 0)
        mult = 60;
    else if (strcmp(end, "h") == 0)
        mult = 3600;
    else if (strcmp(end, "d") == 0)
        mult = 86400;
    else
        return false;
    v *= mult;
    if (!isfinite(v))
        return false;
    *out = v;
    return true;
}

#endif /* RESIL_CLI_CLI_H */
