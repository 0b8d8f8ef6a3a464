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

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
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
