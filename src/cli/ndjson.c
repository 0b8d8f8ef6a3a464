/* src/cli/ndjson.c - `resil ndjson ...`: a shared NDJSON event log from the
 * shell.
 *
 *   append FILE [RECORD]   append RECORD, or one record per line of stdin
 *   cat FILE               print every record, one compact line each
 *   check FILE             count records, bad lines and torn bytes
 *   repair FILE            cut a torn tail that resil left (--force: any)
 *
 * A thin shell over the public API: resil_append_ndjson_safe, one
 * resil_ndjson_writer for stdin (one lock per record, so concurrent
 * appenders interleave whole records), resil_read_ndjson_safe and
 * resil_repair_ndjson(_force).  Lines of stdin are read with a reader of its
 * own (not getline, whose out-of-memory end looks like the end of the
 * input), bounded by the line limit: any read error stops the append with
 * the line's number, and nothing of that line is appended.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "internal/json_text.h"

#include "resil/common.h"
#include "resil/files.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

typedef enum { NACT_NONE, NACT_APPEND, NACT_CAT, NACT_CHECK, NACT_REPAIR } nd_action;

typedef struct nd_cli {
    char prog[32]; /* "resil ndjson cat" */
    nd_action act;
    resil_file_opts fo;
    bool strict;
    bool force;         /* repair --force */
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
    fputs("usage: resil ndjson append [--sync] [--max-line SIZE] FILE [RECORD]\n"
          "       resil ndjson cat [--strict] [--max-line SIZE] FILE\n"
          "       resil ndjson check [--max-line SIZE] FILE\n"
          "       resil ndjson repair [--force] FILE\n"
          "\n"
          "A shared NDJSON log: one JSON record per line, appended whole under the lock\n"
          "(FILE.lock), so that many processes can write it at once.\n"
          "\n"
          "  append  append RECORD (JSON text), or, without RECORD, one record per line\n"
          "          of stdin (blank lines skipped).  A bad line, a line longer than the\n"
          "          limit or a read error stops the append with its line number; the\n"
          "          records before it were appended, each one whole.  A last line\n"
          "          without newline that resil did not write is kept (a newline is\n"
          "          added before the record); a torn record of resil is cut\n"
          "  cat     print every record as one line of compact JSON; bad lines, lines\n"
          "          longer than the limit and a torn tail (a last line without newline)\n"
          "          are skipped and reported on stderr\n"
          "  check   print \"N records, B bad lines, T torn bytes\"; exit 0 only when B\n"
          "          and T are 0\n"
          "  repair  cut a torn tail that resil left (a record cut short, NUL bytes) and\n"
          "          say how many bytes were cut; a tail resil did not write is kept\n"
          "          (exit 1) unless --force\n"
          "\n"
          "options:\n"
          "  --sync            append: fdatasync after every record\n"
          "  --strict          cat: a bad line or a torn tail is an error (exit 1)\n"
          "  --max-line SIZE   the longest record line, in bytes (suffix K, M or G for\n"
          "                    KiB, MiB, GiB; default 64M): append refuses a longer\n"
          "                    record, cat and check skip and count a longer line\n"
          "  --force           repair: cut the tail whoever wrote it\n"
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

/* Reads one line of `in` (its newline dropped) into *buf (grown as needed,
 * NUL-terminated), at most max bytes.  Returns 1 and *len for a line, 0 at
 * the end of the input, -EFBIG for a line longer than max (the rest of it is
 * left unread), -ENOMEM, or -errno for a read error; *len then says how much
 * of the line had been read. */
static int read_line(FILE *in, char **buf, size_t *cap, size_t *len, size_t max)
{
    size_t n = 0;
    int ch;
    errno = 0;
    while ((ch = getc_unlocked(in)) != EOF) {
        if (ch == '\n')
            break;
        if (n == max) {
            *len = n;
            return -EFBIG;
        }
        if (n + 1 >= *cap) { /* room for ch and the NUL */
            size_t ncap = *cap ? *cap * 2 : 4096;
            if (ncap < *cap || ncap - 1 > max)
                ncap = max < SIZE_MAX - 1 ? max + 2 : SIZE_MAX;
            char *nb = realloc(*buf, ncap);
            if (!nb) {
                *len = n;
                return -ENOMEM;
            }
            *buf = nb;
            *cap = ncap;
        }
        (*buf)[n++] = (char)ch;
    }
    *len = n;
    if (ch == EOF && ferror(in))
        return errno ? -errno : -EIO;
    if (ch == EOF && n == 0)
        return 0;
    (*buf)[n] = '\0';
    return 1;
}

static int append_stdin(nd_cli *c)
{
    resil_ndjson_writer *w = NULL;
    resil_error e;
    resil_error_clear(&e);
    int rc = resil_ndjson_writer_open(&w, c->file, &c->fo, &e);
    if (rc != 0)
        return fail(c, rc, &e);
    char *line = NULL;
    size_t cap = 0, line_no = 0, appended = 0, len = 0;
    size_t max = c->fo.max_size ? c->fo.max_size : RESIL_NDJSON_DEFAULT_MAX_LINE;
    int status = RESIL_CLI_EXIT_OK, r;
    while ((r = read_line(stdin, &line, &cap, &len, max)) != 0) {
        line_no++;
        if (r < 0) {
            const char *what = r == -EFBIG    ? "the line is longer than the limit"
                               : r == -ENOMEM ? "out of memory reading the line"
                                              : "cannot read standard input";
            char detail[128];
            if (r == -EFBIG)
                snprintf(detail, sizeof detail, "more than %zu bytes; see --max-line", max);
            else
                snprintf(detail, sizeof detail, "%s, after %zu bytes of it", strerror(-r), len);
            msg(c, "stdin:%zu: %s (%s): line %zu and the rest of stdin were not appended to "
                   "%s; the %zu record%s before it %s",
                line_no, what, detail, line_no, c->file, appended, appended == 1 ? "" : "s",
                appended == 1 ? "was" : "were");
            status = RESIL_CLI_EXIT_FAILURE;
            break;
        }
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
    size_t len;
    char *text = resil__json_dumps(record, JSON_COMPACT, &len); /* shortest reals */
    bool ok = text && fwrite(text, 1, len, stdout) == len && putchar('\n') != EOF &&
              !ferror(stdout);
    free(text);
    if (!ok) {
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
    char longs[64] = "";
    if (st.long_lines)
        snprintf(longs, sizeof longs, " (%zu longer than the limit)", st.long_lines);
    printf("%zu record%s, %zu bad line%s%s, %zu torn byte%s\n", st.records,
           st.records == 1 ? "" : "s", st.bad_lines, st.bad_lines == 1 ? "" : "s", longs,
           st.torn_bytes, st.torn_bytes == 1 ? "" : "s");
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
    int rc = c->force ? resil_repair_ndjson_force(c->file, &cut, &c->fo, &e)
                      : resil_repair_ndjson(c->file, &cut, &c->fo, &e);
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

/* A size in bytes, > 0, with an optional suffix K, M or G (binary). */
static bool parse_size(const char *s, size_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return false;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (*end != '\0' || v == 0 || v > (SIZE_MAX >> shift))
        return false;
    *out = (size_t)v << shift;
    return true;
}

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
    bool sync = false, only_operands = false, max_line_set = false;
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
            if (strcmp(a, "--force") == 0) {
                c.force = true;
                continue;
            }
            const char *val = NULL;
            int mr = resil_cli_opt_value(argc, argv, &i, "--max-line", &val);
            if (mr < 0)
                return usage_error(&c, "option '--max-line' requires an argument");
            if (mr > 0) {
                if (!parse_size(val, &c.fo.max_size))
                    return usage_error(&c, "--max-line: '%s' is not a size (bytes > 0, "
                                           "optionally with a suffix K, M or G)",
                                       val);
                max_line_set = true;
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
    if (c.force && c.act != NACT_REPAIR)
        return usage_error(&c, "--force is an option of repair only");
    if (max_line_set && c.act == NACT_REPAIR)
        return usage_error(&c, "--max-line is an option of append, cat and check");
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
