/* src/cli/ndjson.c - `resil ndjson ...`: a shared NDJSON event log from the
 * shell.
 *
 *   append FILE [RECORD]   append RECORD, or one record per line of stdin
 *   cat FILE               print every record, one compact line each
 *   check FILE             count records, bad lines and torn bytes
 *   repair FILE            cut a torn tail
 *
 * A thin shell over the public API: resil_append_ndjson_safe, one
 * resil_ndjson_writer for stdin (one lock per record, so concurrent
 * appenders interleave whole records), resil_read_ndjson_safe and
 * resil_repair_ndjson.
 */
#define _GNU_SOURCE
#include "cli.h"

#include "resil/common.h"
#include "resil/files.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

typedef enum { NACT_NONE, NACT_APPEND, NACT_CAT, NACT_CHECK, NACT_REPAIR } nd_action;

typedef struct nd_cli {
    char prog[32]; /* "resil ndjson cat" */
    nd_action act;
    resil_file_opts fo;
    bool strict;
    const char *file;
    const char *record; /* append RECORD, or NULL for stdin */
    bool out_failed;    /* cat: writing stdout failed */
} nd_cli;

static void msg(const nd_cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg(const nd_cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    resil_cli_vmsg(c->prog, fmt, ap);
    va_end(ap);
}

static void nd_usage(FILE *out)
{
    fputs("usage: resil ndjson append [--sync] FILE [RECORD]\n"
          "       resil ndjson cat [--strict] FILE\n"
          "       resil ndjson check FILE\n"
          "       resil ndjson repair FILE\n"
          "\n"
          "A shared NDJSON log: one JSON record per line, appended whole under the lock\n"
          "(FILE.lock), so that many processes can write it at once.\n"
          "\n"
          "  append  append RECORD (JSON text), or, without RECORD, one record per line\n"
          "          of stdin (blank lines skipped).  A bad line stops the append with its\n"
          "          line number; the records before it were appended, each one whole\n"
          "  cat     print every record as one line of compact JSON; bad lines and a torn\n"
          "          tail (a last line without newline) are skipped and reported on stderr\n"
          "  check   print \"N records, B bad lines, T torn bytes\"; exit 0 only when B\n"
          "          and T are 0\n"
          "  repair  cut a torn tail off the log and say how many bytes were cut\n"
          "\n"
          "options:\n"
          "  --sync            append: fdatasync after every record\n"
          "  --strict          cat: a bad line or a torn tail is an error (exit 1)\n"
          "  --timeout S       wait at most S seconds for the lock (default 10; 0: one\n"
          "                    try); units ms, s, m, h, d\n"
          "  --durability D    full, file or none (accepted for symmetry with resil json;\n"
          "                    appends are synced with --sync)\n"
          "  -h, --help        show this help\n"
          "\n"
          "exit status: 0 success; 1 failure (the message names the file and line);\n"
          "2 usage error.  See resil(1).\n",
          out);
}

static int usage_error(const nd_cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const nd_cli *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", c->prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'resil ndjson --help'.\n", stderr);
    return RESIL_CLI_EXIT_USAGE;
}

static int fail(const nd_cli *c, int rc, const resil_error *e)
{
    if (e->message[0])
        msg(c, "%s", e->message);
    else
        msg(c, "%s: %s", c->file, resil_strerror(rc));
    return RESIL_CLI_EXIT_FAILURE;
}

/* ---- append ---------------------------------------------------------------------- */

static int append_stdin(nd_cli *c)
{
    resil_ndjson_writer *w = NULL;
    resil_error e;
    resil_error_clear(&e);
    int rc = resil_ndjson_writer_open(&w, c->file, &c->fo, &e);
    if (rc != 0)
        return fail(c, rc, &e);
    char *line = NULL;
    size_t cap = 0, line_no = 0, appended = 0;
    ssize_t n;
    int status = RESIL_CLI_EXIT_OK;
    errno = 0;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        line_no++;
        size_t len = (size_t)n;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        bool blank = true;
        for (size_t i = 0; i < len && blank; i++)
            blank = line[i] == ' ' || line[i] == '\t';
        if (blank)
            continue;
        json_error_t je;
        json_t *rec = json_loadb(line, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
        if (!rec) {
            msg(c, "stdin:%zu:%d: %s (line %zu and the rest of stdin were not appended to %s; "
                   "the %zu record%s before it %s)",
                line_no, je.column, je.text, line_no, c->file, appended,
                appended == 1 ? "" : "s", appended == 1 ? "was" : "were");
            status = RESIL_CLI_EXIT_FAILURE;
            break;
        }
        resil_error_clear(&e);
        rc = resil_ndjson_writer_append(w, rec, &e);
        json_decref(rec);
        if (rc != 0) {
            msg(c, "stdin line %zu: %s", line_no,
                e.message[0] ? e.message : resil_strerror(rc));
            status = RESIL_CLI_EXIT_FAILURE;
            break;
        }
        appended++;
        errno = 0;
    }
    if (status == RESIL_CLI_EXIT_OK && ferror(stdin)) {
        msg(c, "cannot read standard input: %s (%zu record%s appended to %s)", strerror(errno),
            appended, appended == 1 ? "" : "s", c->file);
        status = RESIL_CLI_EXIT_FAILURE;
    }
    free(line);
    rc = resil_ndjson_writer_close(w);
    if (rc != 0 && status == RESIL_CLI_EXIT_OK) {
        msg(c, "cannot flush %s to disk: %s", c->file, resil_strerror(rc));
        status = RESIL_CLI_EXIT_FAILURE;
    }
    return status;
}

static int do_append(nd_cli *c)
{
    if (!c->record)
        return append_stdin(c);
    json_error_t je;
    json_t *rec = json_loads(c->record, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!rec)
        return usage_error(c, "RECORD '%.80s%s' is not valid JSON (column %d: %s)", c->record,
                           strlen(c->record) > 80 ? "..." : "", je.column, je.text);
    resil_error e;
    resil_error_clear(&e);
    int rc = resil_append_ndjson_safe(c->file, rec, &c->fo, &e);
    json_decref(rec);
    return rc == 0 ? RESIL_CLI_EXIT_OK : fail(c, rc, &e);
}

/* ---- cat, check ------------------------------------------------------------------ */

static int print_record(json_t *record, size_t line, void *arg)
{
    (void)line;
    nd_cli *c = arg;
    if (json_dumpf(record, stdout, JSON_COMPACT | JSON_ENCODE_ANY) != 0 || putchar('\n') == EOF ||
        ferror(stdout)) {
        c->out_failed = true;
        return 1; /* stop the read */
    }
    return 0;
}

static void report_bad(size_t line, const char *message, void *arg)
{
    nd_cli *c = arg;
    if (c->strict) /* the read's own error says it */
        return;
    msg(c, "%s:%zu: bad line%s: %s", c->file, line, c->act == NACT_CAT ? " skipped" : "",
        message);
}

static void report_torn(const nd_cli *c, const resil_ndjson_stats *st)
{
    msg(c, "%s: torn tail%s (%zu byte%s after the last newline; 'resil ndjson repair' cuts it)",
        c->file, c->act == NACT_CAT ? " skipped" : "", st->torn_bytes,
        st->torn_bytes == 1 ? "" : "s");
}

static int do_cat(nd_cli *c)
{
    resil_ndjson_stats st;
    resil_error e;
    resil_error_clear(&e);
    int rc = resil_read_ndjson_safe(c->file, print_record, report_bad, c, c->strict, &st,
                                    &c->fo, &e);
    if (c->out_failed || fflush(stdout) != 0 || ferror(stdout)) {
        msg(c, "cannot write to standard output: %s", strerror(errno));
        return RESIL_CLI_EXIT_FAILURE;
    }
    if (rc != 0)
        return fail(c, rc, &e);
    if (st.torn_bytes)
        report_torn(c, &st);
    return RESIL_CLI_EXIT_OK;
}

static int do_check(nd_cli *c)
{
    resil_ndjson_stats st;
    resil_error e;
    resil_error_clear(&e);
    c->strict = false;
    int rc = resil_read_ndjson_safe(c->file, NULL, report_bad, c, false, &st, &c->fo, &e);
    if (rc != 0)
        return fail(c, rc, &e);
    if (st.torn_bytes)
        report_torn(c, &st);
    printf("%zu record%s, %zu bad line%s, %zu torn byte%s\n", st.records,
           st.records == 1 ? "" : "s", st.bad_lines, st.bad_lines == 1 ? "" : "s", st.torn_bytes,
           st.torn_bytes == 1 ? "" : "s");
    if (fflush(stdout) != 0 || ferror(stdout)) {
        msg(c, "cannot write to standard output: %s", strerror(errno));
        return RESIL_CLI_EXIT_FAILURE;
    }
    return st.bad_lines == 0 && st.torn_bytes == 0 ? RESIL_CLI_EXIT_OK : RESIL_CLI_EXIT_FAILURE;
}

static int do_repair(nd_cli *c)
{
    size_t cut = 0;
    resil_error e;
    resil_error_clear(&e);
    int rc = resil_repair_ndjson(c->file, &cut, &c->fo, &e);
    if (rc != 0)
        return fail(c, rc, &e);
    if (cut)
        printf("%s: cut %zu byte%s (a torn tail)\n", c->file, cut, cut == 1 ? "" : "s");
    else
        printf("%s: no torn tail, nothing cut\n", c->file);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        msg(c, "cannot write to standard output: %s", strerror(errno));
        return RESIL_CLI_EXIT_FAILURE;
    }
    return RESIL_CLI_EXIT_OK;
}

/* ---- the entry point -------------------------------------------------------------- */

static nd_action action_of(const char *s)
{
    if (strcmp(s, "append") == 0)
        return NACT_APPEND;
    if (strcmp(s, "cat") == 0)
        return NACT_CAT;
    if (strcmp(s, "check") == 0)
        return NACT_CHECK;
    if (strcmp(s, "repair") == 0)
        return NACT_REPAIR;
    return NACT_NONE;
}

int resil_cli_ndjson(int argc, char **argv)
{
    nd_cli c;
    memset(&c, 0, sizeof c);
    snprintf(c.prog, sizeof c.prog, "resil ndjson");
    resil_file_opts init = RESIL_FILE_OPTS_INIT;
    c.fo = init;
    bool sync = false, only_operands = false;
    const char *pos[3];
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_operands && strcmp(a, "--") == 0) {
            only_operands = true;
            continue;
        }
        if (!only_operands && resil_cli_is_option(a)) {
            if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
                nd_usage(stdout);
                return fflush(stdout) == 0 ? RESIL_CLI_EXIT_OK : RESIL_CLI_EXIT_FAILURE;
            }
            if (strcmp(a, "--sync") == 0) {
                sync = true;
                continue;
            }
            if (strcmp(a, "--strict") == 0) {
                c.strict = true;
                continue;
            }
            int r = resil_cli_file_option(argc, argv, &i, c.prog, &c.fo);
            if (r < 0)
                return RESIL_CLI_EXIT_USAGE;
            if (r > 0)
                continue;
            return usage_error(&c, "unknown option '%s'", a);
        }
        if (c.act == NACT_NONE) {
            c.act = action_of(a);
            if (c.act == NACT_NONE)
                return usage_error(&c, "unknown action '%s' (expected append, cat, check or "
                                       "repair)",
                                   a);
            snprintf(c.prog, sizeof c.prog, "resil ndjson %s", a);
            continue;
        }
        if (npos == 2)
            return usage_error(&c, "unexpected argument '%s'", a);
        pos[npos++] = a;
    }
    if (c.act == NACT_NONE)
        return usage_error(&c, "missing action (append, cat, check or repair)");
    if (npos < 1)
        return usage_error(&c, "missing FILE");
    if (npos > 1 && c.act != NACT_APPEND)
        return usage_error(&c, "unexpected argument '%s'", pos[1]);
    if (sync && c.act != NACT_APPEND)
        return usage_error(&c, "--sync is an option of append only");
    if (c.strict && c.act != NACT_CAT)
        return usage_error(&c, "--strict is an option of cat only");
    c.file = pos[0];
    if (c.file[0] == '\0')
        return usage_error(&c, "FILE is an empty string");
    c.record = npos > 1 ? pos[1] : NULL;
    c.fo.sync_each = sync;
    resil_cli_ensure_std_fds();

    switch (c.act) {
    case NACT_APPEND:
        return do_append(&c);
    case NACT_CAT:
        return do_cat(&c);
    case NACT_CHECK:
        return do_check(&c);
    case NACT_REPAIR:
        return do_repair(&c);
    default:
        return RESIL_CLI_EXIT_USAGE;
    }
}
