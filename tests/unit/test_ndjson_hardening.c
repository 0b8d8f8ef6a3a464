/* The NDJSON log against planted links, tails that resil did not write, torn
 * writes that it did, over-long lines, and readers who may not lock
 * (issue 10). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/sys.h"
#include "resil/files.h"

/* ---- a private directory per test --------------------------------------------- */

#define TEST_DIR_PREFIX "resil-ndh"
#include "tmpdir.h"

/* The whole file (NULs included) into a malloc()ed buffer; *len its size. */
static char *slurp_n(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    buf[got] = '\0';
    close(fd);
    *len = got;
    return buf;
}

static char *slurp(const char *path)
{
    size_t len;
    return slurp_n(path, &len);
}

static void put_n(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void put(const char *path, const char *text)
{
    put_n(path, text, strlen(text));
}

static int append_one(const char *path, const char *json, const resil_file_opts *o,
                      resil_error *e)
{
    json_error_t je;
    json_t *r = json_loads(json, JSON_DECODE_ANY, &je);
    assert_non_null(r);
    int rc = resil_append_ndjson_safe(path, r, o, e);
    json_decref(r);
    return rc;
}

/* ---- links ----------------------------------------------------------------------- */

/* Another user's link in a sticky world-writable directory is not followed:
 * the append, the writer and the repair refuse it, and the victim keeps
 * every byte (its last line, without newline, is not cut as a "torn
 * tail"). */
static void test_planted_link_refused(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("needs root (a link owned by uid 65534): skipped\n");
        skip();
    }
    const char *victim = in_dir("victim.conf");
    const char *victim_text = "key = value\nlast line without newline";
    put(victim, victim_text);
    const char *shared = in_dir("shared");
    assert_int_equal(mkdir(shared, 0777), 0);
    assert_int_equal(chmod(shared, 01777), 0);
    char link[1100];
    snprintf(link, sizeof link, "%s/events.ndjson", shared);
    assert_int_equal(symlink(victim, link), 0);
    assert_int_equal(lchown(link, 65534, 65534), 0);

    resil_error e;
    assert_int_equal(append_one(link, "{}", NULL, &e), -EACCES);
    assert_non_null(strstr(e.message, "symlink"));
    resil_ndjson_writer *w = NULL;
    assert_int_equal(resil_ndjson_writer_open(&w, link, NULL, &e), -EACCES);
    assert_null(w);
    size_t cut = 99;
    assert_int_equal(resil_repair_ndjson_force(link, &cut, NULL, &e), -EACCES);
    assert_int_equal(cut, 0);
    char *now = slurp(victim);
    assert_string_equal(now, victim_text);
    free(now);

    /* The caller's own link there is followed, as the kernel would. */
    assert_int_equal(lchown(link, 0, 0), 0);
    assert_int_equal(append_one(link, "{}", NULL, &e), 0);
}

/* A link swapped in between the resolution and the open is refused
 * (O_NOFOLLOW), never followed to its target. */
static const char *swap_path, *swap_to;
static int (*real_open)(const char *, int, mode_t);
static int open_swapping(const char *path, int flags, mode_t mode)
{
    if (swap_path && strcmp(path, swap_path) == 0) {
        unlink(swap_path);
        assert_int_equal(symlink(swap_to, swap_path), 0);
        swap_path = NULL;
    }
    return real_open(path, flags, mode);
}

static void test_link_swapped_in_refused(void **state)
{
    (void)state;
    const char *victim = in_dir("victim");
    put(victim, "precious\ntail");
    const char *log = in_dir("log.ndjson");
    put(log, "{\"a\":1}\n");
    real_open = resil__sys.open;
    resil__sys.open = open_swapping;
    swap_path = log;
    swap_to = victim;
    resil_error e;
    int rc = append_one(log, "{\"b\":2}", NULL, &e);
    resil__sys_reset();
    assert_int_equal(rc, -ELOOP);
    assert_non_null(strstr(e.message, "symlink"));
    char *now = slurp(victim);
    assert_string_equal(now, "precious\ntail");
    free(now);
}

/* ---- tails ----------------------------------------------------------------------- */

/* Someone's last line without a newline: an append keeps it (ended with a
 * newline, as a line of its own), and so does a repair unless forced. */
static void test_foreign_tail_kept(void **state)
{
    (void)state;
    const char *p = in_dir("f.ndjson");
    put(p, "{\"a\":1}\nsomeone's note");
    resil_error e;
    size_t cut = 99;
    assert_int_equal(resil_repair_ndjson(p, &cut, NULL, &e), RESIL_EPARSE);
    assert_int_equal(cut, 0);
    assert_non_null(strstr(e.message, "--force"));
    char *s = slurp(p);
    assert_string_equal(s, "{\"a\":1}\nsomeone's note");
    free(s);
    /* Readers count it as torn meanwhile. */
    resil_ndjson_stats st;
    assert_int_equal(resil_read_ndjson_safe(p, NULL, NULL, NULL, false, &st, NULL, &e), 0);
    assert_int_equal(st.torn_bytes, strlen("someone's note"));

    assert_int_equal(append_one(p, "{\"b\":2}", NULL, &e), 0);
    s = slurp(p);
    assert_string_equal(s, "{\"a\":1}\nsomeone's note\n{\"b\":2}\n");
    free(s);

    /* The writer (opened once, as `resil run --events` uses it), with
     * pre-encoded text, behind whose back the tail appears. */
    resil_ndjson_writer *w;
    assert_int_equal(resil_ndjson_writer_open(&w, p, NULL, &e), 0);
    assert_int_equal(resil_ndjson_writer_append_text(w, "{\"c\":3}\n", 8, &e), 0);
    FILE *f = fopen(p, "a");
    fputs("{\"half\":", f);
    fclose(f);
    assert_int_equal(resil_ndjson_writer_append_text(w, "{\"d\":4}", 7, &e), 0);
    assert_int_equal(resil_ndjson_writer_close(w), 0);
    s = slurp(p);
    assert_string_equal(s, "{\"a\":1}\nsomeone's note\n{\"b\":2}\n{\"c\":3}\n{\"half\":\n{\"d\":4}\n");
    free(s);
}

/* Writes, by hand, the mark a writer of resil leaves in the sidecar while a
 * page-crossing append of len bytes at start is in progress (as if that
 * writer had been killed before clearing it). */
static void plant_mark(const char *p, off_t start, size_t len)
{
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    char m[256];
    int n = snprintf(m, sizeof m, "resil-ndjson append dev %ju ino %ju start %jd len %zu pid %ld\n",
                     (uintmax_t)st.st_dev, (uintmax_t)st.st_ino, (intmax_t)start, len, 99999L);
    assert_true(n > 0 && n < (int)sizeof m);
    memset(m + n, ' ', sizeof m - (size_t)n - 1);
    m[sizeof m - 1] = '\n';
    char lp[1100];
    snprintf(lp, sizeof lp, "%s.lock", p);
    int fd = open(lp, O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, m, sizeof m, 256), (ssize_t)sizeof m);
    close(fd);
}

/* A mark that no cut consumed (its writer was killed before writing, or
 * after a whole write) is stale once the log is seen whole: it must not
 * later make someone else's tail in the same byte range look like resil's.
 * (Found by crash_ndjson: a hand-made tail was cut by an unforced repair.) */
static void test_stale_mark_never_covers_a_foreign_tail(void **state)
{
    (void)state;
    const char *p = in_dir("stale.ndjson");
    resil_error e;
    size_t cut = 99;
    /* 1. Killed before writing: the log ends whole; the next append (a
     *    short record, which sets no mark of its own) drops the mark. */
    assert_int_equal(append_one(p, "{\"a\":1}", NULL, &e), 0);
    plant_mark(p, 8, 6000);
    assert_int_equal(append_one(p, "{\"b\":2}", NULL, &e), 0);
    FILE *f = fopen(p, "a");
    fputs("someone's half line", f);
    fclose(f);
    assert_int_equal(resil_repair_ndjson(p, &cut, NULL, &e), RESIL_EPARSE);
    assert_int_equal(cut, 0);
    char *s = slurp(p);
    assert_string_equal(s, "{\"a\":1}\n{\"b\":2}\nsomeone's half line");
    free(s);

    /* 2. The same through repair: a repair that finds the log whole drops
     *    the mark, so a tail written afterwards is kept. */
    const char *q = in_dir("stale2.ndjson");
    assert_int_equal(append_one(q, "{\"a\":1}", NULL, &e), 0);
    plant_mark(q, 8, 6000);
    assert_int_equal(resil_repair_ndjson(q, &cut, NULL, &e), 0);
    assert_int_equal(cut, 0);
    f = fopen(q, "a");
    fputs("{\"w\":0,\"pad\":\"ABC", f);
    fclose(f);
    assert_int_equal(resil_repair_ndjson(q, &cut, NULL, &e), RESIL_EPARSE);
    assert_int_equal(cut, 0);

    /* 3. A real tear is still cut: the mark covers the tail it left. */
    const char *r = in_dir("torn.ndjson");
    assert_int_equal(append_one(r, "{\"a\":1}", NULL, &e), 0);
    f = fopen(r, "a");
    fputs("{\"torn\":", f);
    fclose(f);
    plant_mark(r, 8, 6000);
    assert_int_equal(resil_repair_ndjson(r, &cut, NULL, &e), 0);
    assert_int_equal(cut, strlen("{\"torn\":"));
}

/* A tail of NUL bytes (what a machine crash leaves when the size reached the
 * disk before the data) is resil's to cut. */
static void test_nul_tail_cut(void **state)
{
    (void)state;
    const char *p = in_dir("n.ndjson");
    put_n(p, "{\"a\":1}\n\0\0\0\0\0\0", 14);
    resil_error e;
    assert_int_equal(append_one(p, "{\"b\":2}", NULL, &e), 0);
    char *s = slurp(p);
    assert_string_equal(s, "{\"a\":1}\n{\"b\":2}\n");
    free(s);
    put_n(p, "{\"a\":1}\n\0\0\0", 11);
    size_t cut = 0;
    assert_int_equal(resil_repair_ndjson(p, &cut, NULL, &e), 0);
    assert_int_equal(cut, 3);
    /* Text and NULs is not a crash's tail: kept. */
    put_n(p, "{\"a\":1}\nab\0", 11);
    assert_int_equal(resil_repair_ndjson(p, &cut, NULL, &e), RESIL_EPARSE);
    size_t len;
    free(slurp_n(p, &len));
    assert_int_equal(len, 11);
}

/* A writer "killed" in the middle of a large write: its write() copies part
 * of the record and the process dies.  The next append cuts exactly that
 * tail (the mark in the sidecar says it is resil's), and so does repair. */
static size_t die_after;
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t write_and_die(int fd, const void *buf, size_t len)
{
    if (len > die_after) {
        (void)!real_write(fd, buf, die_after);
        _exit(0);
    }
    return real_write(fd, buf, len);
}

static void torn_by_child(const char *p, size_t rec_len, size_t cut_at)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *big = malloc(rec_len + 1);
        if (!big)
            _exit(2);
        memset(big, 'x', rec_len);
        big[0] = '"';
        big[rec_len - 1] = '"';
        big[rec_len] = '\0';
        resil_ndjson_writer *w;
        if (resil_ndjson_writer_open(&w, p, NULL, NULL) != 0)
            _exit(3);
        real_write = resil__sys.write;
        die_after = cut_at;
        resil__sys.write = write_and_die;
        resil_ndjson_writer_append_text(w, big, rec_len, NULL);
        _exit(4); /* not reached: the write "dies" */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_real_torn_tail_cut(void **state)
{
    (void)state;
    const char *p = in_dir("t.ndjson");
    put(p, "{\"a\":1}\n");
    torn_by_child(p, 300000, 200000);
    size_t len;
    free(slurp_n(p, &len));
    assert_int_equal(len, 8 + 200000);
    resil_error e;
    assert_int_equal(append_one(p, "{\"b\":2}", NULL, &e), 0);
    char *s = slurp(p);
    assert_string_equal(s, "{\"a\":1}\n{\"b\":2}\n");
    free(s);

    /* A small record that crosses a page boundary is marked too. */
    put(p, "{\"a\":1}\n");
    /* a file of 4090 bytes: the next record crosses offset 4096 */
    char head[4090];
    memset(head, ' ', sizeof head);
    head[0] = '1';
    head[sizeof head - 1] = '\n';
    put_n(p, head, sizeof head);
    torn_by_child(p, 100, 50);
    size_t cut = 0;
    assert_int_equal(resil_repair_ndjson(p, &cut, NULL, &e), 0);
    assert_int_equal(cut, 50);
    free(slurp_n(p, &len));
    assert_int_equal(len, sizeof head);

    /* The mark names its file: the same tail in another file is kept. */
    const char *q = in_dir("other.ndjson");
    torn_by_child(p, 300000, 1000);
    char *copy = slurp_n(p, &len);
    assert_int_equal(rename(p, q), 0);
    put_n(p, copy, len); /* a new inode, the sidecar's mark unchanged */
    free(copy);
    assert_int_equal(resil_repair_ndjson(p, &cut, NULL, &e), RESIL_EPARSE);
    assert_int_equal(resil_repair_ndjson(q, &cut, NULL, &e), RESIL_EPARSE); /* own sidecar */
}

/* A sidecar that cannot be read or written: appends go on unmarked, and a
 * tail is then kept, not cut. */
static ssize_t fail_pread(int fd, void *buf, size_t len, off_t off)
{
    (void)fd, (void)buf, (void)len, (void)off;
    errno = EBADF;
    return -1;
}
static ssize_t (*real_pread)(int, void *, size_t, off_t);
static ssize_t pread_no_sidecar(int fd, void *buf, size_t len, off_t off)
{
    return off == 256 ? fail_pread(fd, buf, len, off) : real_pread(fd, buf, len, off);
}
static ssize_t pwrite_no_sidecar(int fd, const void *buf, size_t len, off_t off)
{
    (void)fd, (void)buf, (void)len, (void)off;
    errno = EBADF;
    return -1;
}

static void test_unreadable_sidecar_tolerated(void **state)
{
    (void)state;
    const char *p = in_dir("u.ndjson");
    put(p, "{\"a\":1}\n{\"torn\":");
    real_pread = resil__sys.pread;
    resil__sys.pread = pread_no_sidecar;
    resil__sys.pwrite = pwrite_no_sidecar;
    resil_error e;
    char big[6000];
    memset(big, 'z', sizeof big);
    big[0] = '"';
    big[sizeof big - 1] = '"';
    resil_ndjson_writer *w;
    assert_int_equal(resil_ndjson_writer_open(&w, p, NULL, &e), 0);
    assert_int_equal(resil_ndjson_writer_append_text(w, big, sizeof big, &e), 0);
    assert_int_equal(resil_ndjson_writer_append_text(w, "{\"b\":2}", 7, &e), 0);
    assert_int_equal(resil_ndjson_writer_close(w), 0);
    resil__sys_reset();
    resil_ndjson_stats st;
    assert_int_equal(resil_read_ndjson_safe(p, NULL, NULL, NULL, false, &st, NULL, &e), 0);
    assert_int_equal(st.records, 3);
    assert_int_equal(st.bad_lines, 1); /* {"torn": kept as a line */
    assert_int_equal(st.torn_bytes, 0);
}

/* ---- the line limit ---------------------------------------------------------------- */

struct seen {
    int n;
    size_t lines[8];
    size_t bad[8];
    int nbad;
    char msg[200];
};

static int on_rec(json_t *r, size_t line, void *arg)
{
    (void)r;
    struct seen *s = arg;
    if (s->n < 8)
        s->lines[s->n] = line;
    s->n++;
    return 0;
}

static void on_bad(size_t line, const char *m, void *arg)
{
    struct seen *s = arg;
    if (s->nbad < 8)
        s->bad[s->nbad] = line;
    s->nbad++;
    snprintf(s->msg, sizeof s->msg, "%s", m);
}

/* A JSON string line of exactly len bytes. */
static char *string_line(size_t len)
{
    char *s = malloc(len + 1);
    assert_non_null(s);
    memset(s, 'a', len);
    s[0] = '"';
    s[len - 1] = '"';
    s[len] = '\0';
    return s;
}

static void test_line_limit_at_append(void **state)
{
    (void)state;
    const char *p = in_dir("l.ndjson");
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.max_size = 100;
    resil_error e;
    char *at = string_line(100), *over = string_line(101);
    assert_int_equal(append_one(p, at, &o, &e), 0);
    assert_int_equal(append_one(p, over, &o, &e), -EFBIG);
    assert_non_null(strstr(e.message, "101 bytes"));
    assert_non_null(strstr(e.message, "nothing was appended"));
    resil_ndjson_writer *w;
    assert_int_equal(resil_ndjson_writer_open(&w, p, &o, &e), 0);
    assert_int_equal(resil_ndjson_writer_append_text(w, over, 101, &e), -EFBIG);
    assert_int_equal(resil_ndjson_writer_append_text(w, at, 100, &e), 0);
    json_t *big = json_stringn(over + 1, 99); /* 101 bytes with its quotes */
    assert_int_equal(resil_ndjson_writer_append(w, big, &e), -EFBIG);
    assert_int_equal(resil_ndjson_writer_close(w), 0);
    json_t *batch[2] = {json_integer(1), big};
    assert_int_equal(resil_append_ndjson_batch(p, (const json_t *const *)batch, 2, &o, &e),
                     -EFBIG);
    assert_non_null(strstr(e.message, "record 1"));
    json_decref(batch[0]);
    json_decref(big);
    size_t len;
    free(slurp_n(p, &len));
    assert_int_equal(len, 2 * 101); /* the two records at the limit, nothing else */
    free(at);
    free(over);
}

/* Readers skip an over-long line, count and name it, and deliver every
 * record after it. */
static void test_long_line_skipped(void **state)
{
    (void)state;
    const char *p = in_dir("r.ndjson");
    char *over = string_line(250), *at = string_line(100);
    size_t total = 8 + 251 + 8 + 101 + 8 + 300;
    char *text = malloc(total + 1);
    snprintf(text, total + 1, "{\"a\":1}\n%s\n{\"b\":2}\n%s\n{\"c\":3}\n", over, at);
    size_t len = strlen(text);
    memset(text + len, 'q', 300); /* an over-long torn tail */
    put_n(p, text, len + 300);
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.max_size = 100;
    struct seen s;
    memset(&s, 0, sizeof s);
    resil_ndjson_stats st;
    resil_error e;
    assert_int_equal(resil_read_ndjson_safe(p, on_rec, on_bad, &s, false, &st, &o, &e), 0);
    assert_int_equal(st.records, 4);
    assert_int_equal(s.lines[3], 5);
    assert_int_equal(st.long_lines, 1);
    assert_int_equal(st.bad_lines, 1);
    assert_int_equal(st.first_bad_line, 2);
    assert_int_equal(s.nbad, 1);
    assert_int_equal(s.bad[0], 2);
    assert_non_null(strstr(s.msg, "250 bytes"));
    assert_int_equal(st.torn_bytes, 300);
    assert_int_equal(resil_read_ndjson_safe(p, NULL, NULL, NULL, true, &st, &o, &e), -EFBIG);
    assert_int_equal(e.line, 2);

    /* The default limit is exact: 64 MiB is read, one byte more skipped
     * (the reader used to accept lines up to 128 MiB). */
    size_t big = RESIL_NDJSON_DEFAULT_MAX_LINE;
    char *line = string_line(big + 1);
    line[big - 1] = '"';
    line[big] = '\n';
    int fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, line, big + 1), (ssize_t)(big + 1)); /* big bytes + \n: fits */
    line[big - 1] = 'a';
    line[big] = '"';
    assert_int_equal(write(fd, line, big + 1), (ssize_t)(big + 1)); /* big + 1: too long */
    assert_int_equal(write(fd, "\n{\"z\":26}\n", 10), 10);
    close(fd);
    memset(&s, 0, sizeof s);
    assert_int_equal(resil_read_ndjson_safe(p, on_rec, on_bad, &s, false, &st, NULL, &e), 0);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.long_lines, 1);
    assert_int_equal(s.bad[0], 2);
    assert_int_equal(s.lines[1], 3);
    free(line);
    free(text);
    free(over);
    free(at);
}

/* ---- a reader who may not lock ----------------------------------------------------- */

/* The log ends without a newline, so the reader wants the shared lock; as
 * uid 65534 in a read-only directory (no sidecar can be created, and an
 * existing one is 0600 root's) it reads on without it and reports the tail
 * as torn. */
static void test_reader_without_lock(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("needs root (a reader as uid 65534): skipped\n");
        skip();
    }
    assert_int_equal(chmod(dir, 0755), 0);
    const char *ro = in_dir("ro");
    assert_int_equal(mkdir(ro, 0755), 0);
    char p[1100], lock[1200], q[1100];
    snprintf(p, sizeof p, "%s/a.ndjson", ro);
    snprintf(q, sizeof q, "%s/b.ndjson", ro);
    snprintf(lock, sizeof lock, "%s.lock", q);
    put(p, "{\"a\":1}\n{\"b\":2}\n{\"c\":");
    put(q, "{\"a\":1}\n{\"c\":");
    put(lock, "");
    assert_int_equal(chmod(lock, 0600), 0);
    assert_int_equal(chmod(p, 0644), 0);
    assert_int_equal(chmod(q, 0644), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(10);
        resil_ndjson_stats st;
        resil_error e;
        resil_file_opts o = RESIL_FILE_OPTS_INIT;
        o.lock_timeout_s = -1;
        if (resil_read_ndjson_safe(p, NULL, NULL, NULL, false, &st, &o, &e) != 0)
            _exit(11);
        if (st.records != 2 || st.torn_bytes != 5)
            _exit(12);
        if (resil_read_ndjson_safe(q, NULL, NULL, NULL, false, &st, &o, &e) != 0)
            _exit(13);
        if (st.records != 1 || st.torn_bytes != 5)
            _exit(14);
        if (access(in_dir("ro/a.ndjson.lock"), F_OK) == 0)
            _exit(15);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_planted_link_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_swapped_in_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_tail_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul_tail_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_mark_never_covers_a_foreign_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_real_torn_tail_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_sidecar_tolerated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_limit_at_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_without_lock, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
