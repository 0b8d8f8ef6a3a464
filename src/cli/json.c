/* src/cli/json.c - `resil json ...` and `resil yaml ...`: read, check and
 * change JSON and YAML state files safely from the shell.
 *
 *   get FILE [POINTER]             print the document or the value at an
 *                                  RFC 6901 JSON Pointer
 *   set FILE POINTER VALUE         set a value (VALUE is JSON text)
 *   del FILE POINTER               remove a value
 *   update FILE [--] CMD [ARGS...] replace the document by CMD's output, CMD
 *                                  reading the current document on stdin
 *   check FILE                     parse only
 *
 * A thin shell over the public API: reads are resil_read_{json,yaml}_safe,
 * every change is one resil_update_{json,yaml}_safe (locked and atomic), and
 * YAML text comes from resil_yaml_parse / resil_yaml_dump.  What lives here is
 * what a command line needs: argument parsing, JSON Pointer navigation inside
 * the in-memory document, running CMD, and messages.
 */
#define _GNU_SOURCE
#include "cli.h"

#include "resil/json.h"
#include "internal/json_text.h"

#include "resil/common.h"
#include "resil/files.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define JSON_IN_FLAGS (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES)

typedef enum { ACT_NONE, ACT_GET, ACT_SET, ACT_DEL, ACT_UPDATE, ACT_CHECK } doc_action;

typedef struct doc_cli {
    bool yaml;         /* `resil yaml` */
    const char *name;  /* "json" / "yaml" */
    char prog[32];     /* "resil json set" (for messages) */
    doc_action act;
    resil_file_opts fo;
    bool raw;          /* get --raw */
    bool as_json;      /* yaml get/update --json */
    const char *file;
    const char *pointer;
    const char *value_text;
    char **cmd; /* update */
    resil_cli_cmd_opts cmdo; /* update: --cmd-timeout, --kill-after */
} doc_cli;

static void msg(const doc_cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg(const doc_cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    resil_cli_vmsg(c->prog, fmt, ap);
    va_end(ap);
}

static void doc_usage(const doc_cli *c, FILE *out)
{
    if (!c->yaml) {
        fputs("usage: resil json get [--raw] FILE [POINTER]\n"
              "       resil json set FILE POINTER VALUE\n"
              "       resil json del FILE POINTER\n"
              "       resil json update FILE [--] CMD [ARGS...]\n"
              "       resil json check FILE\n"
              "\n"
              "Reads and changes a JSON state file safely: every change takes the file's\n"
              "lock (FILE.lock) and replaces the file atomically, so concurrent writers lose\n"
              "no update and readers never see a torn file.\n"
              "\n"
              "  get     print the document, or the value at POINTER (RFC 6901, e.g. /a/b/0;\n"
              "          \"\" is the whole document), as JSON with a 2-space indent\n"
              "  set     set the value at POINTER to VALUE (JSON text; strings need quotes:\n"
              "          '\"text\"'); the parent must exist; /list/- appends; POINTER \"\"\n"
              "          replaces the whole document and creates a missing FILE\n"
              "  del     remove the value at POINTER\n"
              "  update  run CMD with the document (JSON; null when FILE does not exist) on\n"
              "          its stdin; if it exits 0, its stdout (JSON) becomes the document,\n"
              "          e.g. resil json update state.json -- jq '.count += 1'\n"
              "  check   parse FILE; print nothing if it is valid, FILE:LINE:COLUMN: error\n"
              "          otherwise\n",
              out);
    } else {
        fputs("usage: resil yaml get [--json] [--raw] FILE [POINTER]\n"
              "       resil yaml set FILE POINTER VALUE\n"
              "       resil yaml del FILE POINTER\n"
              "       resil yaml update [--json] FILE [--] CMD [ARGS...]\n"
              "       resil yaml check FILE\n"
              "\n"
              "The same as 'resil json' for YAML files (a safe core schema: no anchors,\n"
              "aliases or custom tags).  POINTER and VALUE are as for 'resil json': VALUE\n"
              "is JSON text.  get prints YAML (--json: JSON).  update gives CMD the document\n"
              "as YAML and parses its output as YAML (--json: JSON both ways).\n",
              out);
    }
    fputs("\n"
          "options:\n"
          "  --raw             get: print a string value bare, without quotes\n",
          out);
    if (c->yaml)
        fputs("  --json            get, update: JSON instead of YAML\n", out);
    fputs("  --timeout S       wait at most S seconds for the lock (default 10; 0: one\n"
          "                    try); units ms, s, m, h, d\n"
          "  --cmd-timeout S   update: SIGTERM CMD (its process group) after S seconds,\n"
          "                    SIGKILL after --kill-after S (default 5); the file is\n"
          "                    unchanged, the lock released at once, exit 124\n"
          "  --durability D    full (fsync file and directory; default), file (fsync the\n"
          "                    file) or none (atomic against process crashes only)\n"
          "  --force           set, del, update: replace FILE even if it is read-only\n"
          "                    (no write permission, or no write bit at all for root)\n"
          "  -h, --help        show this help\n"
          "\n"
          "exit status: 0 success; 1 failure (message names the file, and line:column for\n"
          "a parse error; also a POINTER with no value); 2 usage error; update: CMD's\n"
          "status when it fails (the file is then unchanged).  See resil(1).\n",
          out);
}

static int usage_error(const doc_cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const doc_cli *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", c->prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'resil %s --help'.\n", c->name);
    return RESIL_CLI_EXIT_USAGE;
}

/* ---- output ------------------------------------------------------------------------ */

static int finish_stdout(const doc_cli *c)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        msg(c, "cannot write to standard output: %s", strerror(errno));
        return RESIL_CLI_EXIT_FAILURE;
    }
    return RESIL_CLI_EXIT_OK;
}

static int print_value(const doc_cli *c, const json_t *v)
{
    if (c->raw && json_is_string(v)) {
        fwrite(json_string_value(v), 1, json_string_length(v), stdout);
        putchar('\n');
    } else if (c->yaml && !c->as_json) {
        char *text = NULL;
        resil_error e;
        resil_error_clear(&e);
        int rc = resil_yaml_dump(&text, v, &e);
        if (rc != 0) {
            msg(c, "cannot print the value of %s as YAML: %s", c->file,
                e.message[0] ? e.message : resil_strerror(rc));
            return RESIL_CLI_EXIT_FAILURE;
        }
        size_t n = strlen(text);
        fwrite(text, 1, n, stdout);
        if (n == 0 || text[n - 1] != '\n')
            putchar('\n');
        free(text);
    } else {
        /* resil's encoder: reals in their shortest text, as in the file */
        char *text = resil__json_dumps(v, JSON_INDENT(2), NULL);
        if (!text) {
            msg(c, "cannot print the value of %s as JSON", c->file);
            return RESIL_CLI_EXIT_FAILURE;
        }
        fputs(text, stdout);
        putchar('\n');
        free(text);
    }
    return finish_stdout(c);
}

/* Prints a library failure; parse errors as FILE:LINE:COLUMN: message
 * (without our prefix when `bare`). */
static int report(const doc_cli *c, int rc, const resil_error *e, bool bare)
{
    if (rc == RESIL_EPARSE && e->line > 0) {
        char pre[600];
        snprintf(pre, sizeof pre, "%s:%d:%d: ", e->path[0] ? e->path : c->file, e->line,
                 e->column);
        bool has_pre = strncmp(e->message, pre, strlen(pre)) == 0;
        if (bare)
            fprintf(stderr, "%s%s\n", has_pre ? "" : pre, e->message);
        else
            msg(c, "%s%s", has_pre ? "" : pre, e->message);
    } else if (e->message[0]) {
        msg(c, "%s", e->message);
    } else {
        msg(c, "%s: %s", c->file, resil_strerror(rc));
    }
    return RESIL_CLI_EXIT_FAILURE;
}

/* ---- the changes (update callbacks) ---------------------------------------------- */

typedef struct change_ctx {
    const doc_cli *c;
    json_t *value;   /* set */
    resil_error *err;
    int status;      /* update: the exit status to report, 0 if none */
} change_ctx;

/* The message of a failed pointer operation, with the file named. */
static int in_file(change_ctx *x, int rc)
{
    char why[sizeof x->err->message];
    snprintf(why, sizeof why, "%s", x->err->message);
    return resil_error_set(x->err, rc, x->c->file, "%s in %s", why, x->c->file);
}

static int set_fn(json_t **doc, void *arg)
{
    change_ctx *x = arg;
    if (!*doc && x->c->pointer[0] != '\0')
        return resil_error_set(x->err, RESIL_EINVAL, x->c->file,
                               "cannot set %s: %s is empty or does not exist (only the "
                               "pointer \"\" can create it)",
                               x->c->pointer, x->c->file);
    int rc = resil_json_pointer_set(doc, x->c->pointer, x->value, x->err);
    return rc ? in_file(x, rc) : 0;
}

static int del_fn(json_t **doc, void *arg)
{
    change_ctx *x = arg;
    if (!*doc)
        return resil_error_set(x->err, -ENOENT, x->c->file,
                               "no value at %s in %s (the file is empty or does not exist)",
                               x->c->pointer,
                               x->c->file);
    int rc = resil_json_pointer_del(*doc, x->c->pointer, x->err);
    return rc ? in_file(x, rc) : 0;
}

/* An anonymous file: in memory, else in $TMPDIR or /tmp. */
static int anon_file(const char *name)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd >= 0)
        return fd;
    const char *dir = getenv("TMPDIR");
    fd = open(dir && *dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    return fd;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Reads all of fd from its start (at most `max` bytes) into a new buffer. */
static int read_whole(int fd, size_t max, char **out, size_t *out_len)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if ((uintmax_t)st.st_size > max)
        return -EFBIG;
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf)
        return -ENOMEM;
    size_t got = 0;
    while (got < size) {
        ssize_t n = pread(fd, buf + got, size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            free(buf);
            return -e;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *out = buf;
    *out_len = got;
    return 0;
}

static int update_fail(change_ctx *x, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int update_fail(change_ctx *x, int status, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    x->status = status;
    return resil_error_set(x->err, RESIL_EOPFAILED, x->c->file, "%s; %s is unchanged", text,
                           x->c->file);
}

static int update_fn(json_t **doc, void *arg)
{
    change_ctx *x = arg;
    const doc_cli *c = x->c;
    bool use_yaml = c->yaml && !c->as_json;
    const char *fmt_name = use_yaml ? "YAML" : "JSON";
    json_t *cur = *doc ? *doc : json_null();

    /* The document, as the file holds it. */
    char *text = NULL;
    if (use_yaml) {
        resil_error e;
        resil_error_clear(&e);
        int rc = resil_yaml_dump(&text, cur, &e);
        if (rc != 0)
            return update_fail(x, 1, "cannot encode the document as YAML: %s",
                               e.message[0] ? e.message : resil_strerror(rc));
    } else {
        char *s = resil__json_dumps(cur, JSON_INDENT(2), NULL);
        if (!s)
            return update_fail(x, 1, "cannot encode the document as JSON");
        size_t n = strlen(s);
        text = malloc(n + 2);
        if (text) {
            memcpy(text, s, n);
            text[n] = '\n';
            text[n + 1] = '\0';
        }
        free(s);
        if (!text)
            return update_fail(x, 1, "out of memory");
    }

    /* stdin and stdout are anonymous files: nothing can deadlock, whatever
     * the sizes, and a command's background children cannot hold us. */
    int in_fd = anon_file("resil-update-in");
    int out_fd = in_fd >= 0 ? anon_file("resil-update-out") : -1;
    if (in_fd < 0 || out_fd < 0) {
        int e = errno;
        free(text);
        if (in_fd >= 0)
            close(in_fd);
        return update_fail(x, 1, "cannot create a temporary file: %s", strerror(e));
    }
    int rc = write_all(in_fd, text, strlen(text));
    free(text);
    if (rc == 0 && lseek(in_fd, 0, SEEK_SET) != 0)
        rc = -errno;
    if (rc != 0) {
        close(in_fd);
        close(out_fd);
        return update_fail(x, 1, "cannot write a temporary file: %s", strerror(-rc));
    }

    /* With --cmd-timeout a hung command is killed (status 124) and the
     * update fails, so the lock is released as soon as it is gone. */
    resil_proc_result pr;
    int st = resil_cli_exec(c->cmd, in_fd, out_fd, &c->cmdo, c->prog, &pr);
    close(in_fd);
    if (pr.state == RESIL_PROC_NOT_STARTED) {
        close(out_fd);
        return update_fail(x, st, "'%s' could not be run", c->cmd[0]);
    }
    if (st != 0) {
        char how[160];
        close(out_fd);
        return update_fail(x, st, "'%s' failed (%s)", c->cmd[0],
                           resil_proc_describe(&pr, how, sizeof how));
    }
    size_t max = c->fo.max_size ? c->fo.max_size : RESIL_FILE_DEFAULT_MAX_SIZE;
    char *out = NULL;
    size_t len = 0;
    rc = read_whole(out_fd, max, &out, &len);
    close(out_fd);
    if (rc != 0)
        return update_fail(x, 1, "cannot read the output of '%s': %s", c->cmd[0],
                           rc == -EFBIG ? "larger than the size limit" : strerror(-rc));
    bool blank = true;
    for (size_t i = 0; i < len && blank; i++)
        blank = out[i] == ' ' || out[i] == '\t' || out[i] == '\n' || out[i] == '\r';
    if (blank) {
        free(out);
        return update_fail(x, 1, "'%s' printed no document", c->cmd[0]);
    }

    json_t *v = NULL;
    if (use_yaml) {
        resil_error e;
        resil_error_clear(&e);
        rc = resil_yaml_parse(&v, out, len, "output", &e);
        if (rc != 0) {
            free(out);
            return update_fail(x, 1, "the output of '%s' is not valid YAML (line %d, column %d: %s)",
                               c->cmd[0], e.line, e.column,
                               e.message[0] ? e.message : resil_strerror(rc));
        }
    } else {
        json_error_t je;
        v = json_loadb(out, len, JSON_IN_FLAGS | JSON_ALLOW_NUL, &je);
        if (!v) {
            free(out);
            return update_fail(x, 1, "the output of '%s' is not valid %s (line %d, column %d: %s)",
                               c->cmd[0], fmt_name, je.line, je.column, je.text);
        }
    }
    free(out);
    json_decref(*doc);
    *doc = v;
    return 0;
}

/* ---- the actions ------------------------------------------------------------------- */

static int do_read(const doc_cli *c, json_t **out, resil_error *e)
{
    return c->yaml ? resil_read_yaml_safe(out, c->file, &c->fo, e)
                   : resil_read_json_safe(out, c->file, &c->fo, e);
}

static int do_get(doc_cli *c)
{
    json_t *doc = NULL;
    resil_error e;
    resil_error_clear(&e);
    int rc = do_read(c, &doc, &e);
    if (rc != 0)
        return report(c, rc, &e, false);
    json_t *v = NULL;
    int status;
    if (resil_json_pointer_get(&v, doc, c->pointer ? c->pointer : "", &e) != 0) {
        msg(c, "no value at %s in %s", c->pointer, c->file);
        status = RESIL_CLI_EXIT_FAILURE;
    } else {
        status = print_value(c, v);
    }
    json_decref(doc);
    return status;
}

static int do_check(doc_cli *c)
{
    json_t *doc = NULL;
    resil_error e;
    resil_error_clear(&e);
    int rc = do_read(c, &doc, &e);
    if (rc != 0)
        return report(c, rc, &e, true);
    json_decref(doc);
    return RESIL_CLI_EXIT_OK;
}

static int do_change(doc_cli *c, change_ctx *x, resil_update_fn fn)
{
    resil_error e;
    resil_error_clear(&e);
    x->err = &e;
    /* set (except of the whole document) and del need the file: a missing
     * one is reported before anything (its lock sidecar) is created. */
    struct stat st;
    if ((c->act == ACT_DEL || (c->act == ACT_SET && c->pointer[0] != '\0')) &&
        stat(c->file, &st) != 0 && errno == ENOENT) {
        if (c->act == ACT_SET)
            msg(c, "cannot set %s: %s does not exist (only the pointer \"\" can create it)",
                c->pointer, c->file);
        else
            msg(c, "no value at %s in %s (the file does not exist)", c->pointer, c->file);
        return RESIL_CLI_EXIT_FAILURE;
    }
    int rc = c->yaml ? resil_update_yaml_safe(c->file, fn, x, &c->fo, &e)
                     : resil_update_json_safe(c->file, fn, x, &c->fo, &e);
    if (rc == 0)
        return RESIL_CLI_EXIT_OK;
    report(c, rc, &e, false);
    return x->status > 0 ? x->status : RESIL_CLI_EXIT_FAILURE;
}

/* ---- argument parsing and the entry points ------------------------------------- */

static doc_action action_of(const char *s)
{
    static const struct {
        const char *name;
        doc_action act;
    } acts[] = {{"get", ACT_GET},
                {"set", ACT_SET},
                {"del", ACT_DEL},
                {"update", ACT_UPDATE},
                {"check", ACT_CHECK}};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        if (strcmp(s, acts[i].name) == 0)
            return acts[i].act;
    }
    return ACT_NONE;
}

/* Returns -1 to go on, or an exit status. */
static int parse_args(doc_cli *c, int argc, char **argv)
{
    const char *pos[4];
    int npos = 0;
    bool only_operands = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_operands && strcmp(a, "--") == 0) {
            if (c->act == ACT_UPDATE && npos >= 1) {
                c->cmd = argv + i + 1;
                break;
            }
            only_operands = true;
            continue;
        }
        if (!only_operands && resil_cli_is_option(a)) {
            if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
                doc_usage(c, stdout);
                return finish_stdout(c);
            }
            if (strcmp(a, "--raw") == 0) {
                c->raw = true;
                continue;
            }
            if (c->yaml && strcmp(a, "--json") == 0) {
                c->as_json = true;
                continue;
            }
            if (strcmp(a, "--force") == 0) {
                c->fo.force = true;
                continue;
            }
            int r = resil_cli_file_option(argc, argv, &i, c->prog, &c->fo);
            if (r == 0) /* update: --cmd-timeout S, --kill-after S */
                r = resil_cli_cmd_option(argc, argv, &i, c->prog, &c->cmdo);
            if (r < 0)
                return RESIL_CLI_EXIT_USAGE;
            if (r > 0)
                continue;
            return usage_error(c, "unknown option '%s'", a);
        }
        if (c->act == ACT_NONE) {
            c->act = action_of(a);
            if (c->act == ACT_NONE)
                return usage_error(c, "unknown action '%s' (expected get, set, del, update or "
                                      "check)",
                                   a);
            snprintf(c->prog, sizeof c->prog, "resil %s %s", c->name, a);
            continue;
        }
        if (c->act == ACT_UPDATE && npos == 1) { /* CMD without "--" */
            c->cmd = argv + i;
            break;
        }
        if (npos == 3)
            return usage_error(c, "unexpected argument '%s'", a);
        pos[npos++] = a;
    }
    switch (c->act) {
    case ACT_NONE:
        return usage_error(c, "missing action (get, set, del, update or check)");
    case ACT_GET:
        if (npos < 1 || npos > 2)
            return usage_error(c, "%s (usage: resil %s get [--raw] FILE [POINTER])",
                               npos < 1 ? "missing FILE" : "too many arguments", c->name);
        c->pointer = npos == 2 ? pos[1] : "";
        break;
    case ACT_SET:
        if (npos != 3)
            return usage_error(c, "%s (usage: resil %s set FILE POINTER VALUE)",
                               npos < 1   ? "missing FILE"
                               : npos < 2 ? "missing POINTER"
                                          : "missing VALUE",
                               c->name);
        c->pointer = pos[1];
        c->value_text = pos[2];
        break;
    case ACT_DEL:
        if (npos != 2)
            return usage_error(c, "%s (usage: resil %s del FILE POINTER)",
                               npos < 1   ? "missing FILE"
                               : npos < 2 ? "missing POINTER"
                                          : "too many arguments",
                               c->name);
        c->pointer = pos[1];
        break;
    case ACT_UPDATE:
        if (npos < 1)
            return usage_error(c, "missing FILE (usage: resil %s update FILE [--] CMD [ARGS...])",
                               c->name);
        if (!c->cmd || !c->cmd[0])
            return usage_error(c, "missing command (usage: resil %s update FILE [--] CMD "
                                  "[ARGS...])",
                               c->name);
        if (c->cmd[0][0] == '\0')
            return usage_error(c, "the command is an empty string");
        break;
    case ACT_CHECK:
        if (npos != 1)
            return usage_error(c, "%s (usage: resil %s check FILE)",
                               npos < 1 ? "missing FILE" : "too many arguments", c->name);
        break;
    }
    c->file = pos[0];
    if (c->file[0] == '\0')
        return usage_error(c, "FILE is an empty string");
    if (c->raw && c->act != ACT_GET)
        return usage_error(c, "--raw is an option of get only");
    if (c->cmdo.given && c->act != ACT_UPDATE)
        return usage_error(c, "--cmd-timeout and --kill-after are options of update only");
    if (c->as_json && c->act != ACT_GET && c->act != ACT_UPDATE)
        return usage_error(c, "--json is an option of get and update only");
    if (c->fo.force && c->act != ACT_SET && c->act != ACT_DEL && c->act != ACT_UPDATE)
        return usage_error(c, "--force is an option of set, del and update only");
    return -1;
}

static int doc_main(bool yaml, int argc, char **argv)
{
    doc_cli c;
    memset(&c, 0, sizeof c);
    c.yaml = yaml;
    c.name = yaml ? "yaml" : "json";
    snprintf(c.prog, sizeof c.prog, "resil %s", c.name);
    resil_file_opts init = RESIL_FILE_OPTS_INIT;
    c.fo = init;
    int rc = parse_args(&c, argc, argv);
    if (rc >= 0)
        return rc;
    resil_cli_ensure_std_fds();

    change_ctx x;
    memset(&x, 0, sizeof x);
    x.c = &c;
    if (c.pointer) {
        json_t *unused;
        resil_error pe;
        if (resil_json_pointer_get(&unused, NULL, c.pointer, &pe) == RESIL_EINVAL)
            return usage_error(&c, "invalid JSON Pointer: %s", pe.message);
    }
    int status;
    switch (c.act) {
    case ACT_GET:
        status = do_get(&c);
        break;
    case ACT_CHECK:
        status = do_check(&c);
        break;
    case ACT_SET: {
        json_error_t je;
        x.value = json_loads(c.value_text, JSON_IN_FLAGS, &je);
        if (!x.value) {
            status = usage_error(&c, "VALUE '%.80s%s' is not valid JSON (column %d: %s); "
                                     "strings need quotes, e.g. '\"text\"'",
                                 c.value_text, strlen(c.value_text) > 80 ? "..." : "",
                                 je.column, je.text);
            break;
        }
        status = do_change(&c, &x, set_fn);
        json_decref(x.value);
        break;
    }
    case ACT_DEL:
        if (!c.pointer || c.pointer[0] == '\0') {
            status = usage_error(&c, "cannot delete the whole document (POINTER is \"\")");
            break;
        }
        status = do_change(&c, &x, del_fn);
        break;
    case ACT_UPDATE:
        status = do_change(&c, &x, update_fn);
        break;
    default:
        status = RESIL_CLI_EXIT_USAGE;
        break;
    }
    return status;
}

int resil_cli_json(int argc, char **argv)
{
    return doc_main(false, argc, argv);
}

int resil_cli_yaml(int argc, char **argv)
{
    return doc_main(true, argc, argv);
}
