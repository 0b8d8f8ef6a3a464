/* Issue 10, files part: links planted in a shared directory, checks before a
 * lock sidecar is made, read-only files, parser messages, the shortest text
 * of reals, and one exact size limit at read and write. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/json_text.h"
#include "internal/sys.h"
#include "resil/files.h"

#define TEST_DIR_PREFIX "resil-hard"
#include "tmpdir.h"

static void put_bytes(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    fclose(f);
}

static void put(const char *path, const char *text)
{
    put_bytes(path, text, strlen(text));
}

static char *slurp(const char *path)
{
    char *buf;
    size_t len;
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    return resil_read_file(&buf, &len, path, &o, NULL) == 0 ? buf : NULL;
}

static void assert_file_is(const char *path, const char *want)
{
    char *got = slurp(path);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int set_a_fn(json_t **doc, void *arg)
{
    (void)arg;
    if (!*doc)
        *doc = json_object();
    json_object_set_new(*doc, "a", json_integer(1));
    return 0;
}

/* ---- 1. links planted in a sticky world-writable directory -------------------- */

static void test_foreign_symlink_in_sticky_dir(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip(); /* needs another user's link (lchown) */
    const char *victim = in_dir("victim.json");
    const char *vtext = "{\"secret\": true}\n";
    put(victim, vtext);
    const char *shared = in_dir("shared");
    assert_int_equal(mkdir(shared, 0777), 0);
    assert_int_equal(chmod(shared, 01777), 0);
    const char *link = in_dir("shared/state.json");
    assert_int_equal(symlink(victim, link), 0);
    assert_int_equal(lchown(link, 65534, 65534), 0);

    json_t *doc = json_pack("{s:i}", "a", 1);
    resil_error e;
    resil_error_clear(&e);
    assert_int_equal(resil_write_json_safe(link, doc, NULL, &e), -EACCES);
    assert_non_null(strstr(e.message, "refusing to follow the symlink"));
    assert_non_null(strstr(e.message, link));
    assert_non_null(strstr(e.message, "uid 65534"));
    assert_int_equal(resil_update_json_safe(link, set_a_fn, NULL, NULL, &e), -EACCES);
    assert_int_equal(resil_write_yaml_safe(link, doc, NULL, &e), -EACCES);
    assert_int_equal(resil_write_file_atomic(link, "x", 1, NULL, &e), -EACCES);
    /* NDJSON resolves targets the same way. */
    assert_int_equal(resil_append_ndjson_safe(link, doc, NULL, &e), -EACCES);
    assert_file_is(victim, vtext);
    assert_false(exists(in_dir("victim.json.lock")));
    struct stat lst;
    assert_int_equal(lstat(link, &lst), 0);
    assert_true(S_ISLNK(lst.st_mode));

    /* A link of the caller is followed (its target is replaced, the link
     * stays)... */
    assert_int_equal(lchown(link, 0, 0), 0);
    assert_int_equal(resil_write_json_safe(link, doc, NULL, &e), 0);
    assert_file_is(victim, "{\n  \"a\": 1\n}\n");
    assert_int_equal(lstat(link, &lst), 0);
    assert_true(S_ISLNK(lst.st_mode));

    /* ...and so is one of the directory's owner. */
    put(victim, vtext);
    assert_int_equal(chown(shared, 65534, 65534), 0);
    assert_int_equal(lchown(link, 65534, 65534), 0);
    assert_int_equal(resil_update_json_safe(link, set_a_fn, NULL, NULL, &e), 0);
    assert_file_is(victim, "{\n  \"secret\": true,\n  \"a\": 1\n}\n");

    /* A chain: the second link is the planted one. */
    assert_int_equal(chown(shared, 0, 0), 0);
    put(victim, vtext);
    const char *mine = in_dir("mine.json");
    assert_int_equal(symlink(link, mine), 0);
    assert_int_equal(resil_write_json_safe(mine, doc, NULL, &e), -EACCES);
    assert_file_is(victim, vtext);
    json_decref(doc);
}

/* A link in a directory that is not sticky and world-writable is followed
 * whoever owns it (the kernel's rule is only about such directories). */
static void test_symlink_in_private_dir_followed(void **state)
{
    (void)state;
    const char *victim = in_dir("t.json");
    put(victim, "{}\n");
    const char *link = in_dir("l.json");
    assert_int_equal(symlink("t.json", link), 0);
    if (geteuid() == 0)
        assert_int_equal(lchown(link, 65534, 65534), 0);
    assert_int_equal(resil_update_json_safe(link, set_a_fn, NULL, NULL, NULL), 0);
    assert_file_is(victim, "{\n  \"a\": 1\n}\n");
}

/* ---- 2. nothing created by a failed operation; read-only files ---------------- */

static void test_no_sidecar_when_target_is_bad(void **state)
{
    (void)state;
    json_t *doc = json_pack("{s:i}", "a", 1);
    resil_error e;

    /* a missing directory is named as such */
    resil_error_clear(&e);
    assert_int_equal(resil_write_json_safe(in_dir("nodir/x.json"), doc, NULL, &e), -ENOENT);
    assert_non_null(strstr(e.message, "does not exist"));
    assert_non_null(strstr(e.message, "nodir"));

    /* a directory */
    assert_int_equal(mkdir(in_dir("d"), 0755), 0);
    resil_error_clear(&e);
    assert_int_equal(resil_write_json_safe(in_dir("d"), doc, NULL, &e), RESIL_EINVAL);
    assert_non_null(strstr(e.message, "not a regular file"));
    assert_non_null(strstr(e.message, "a directory"));
    assert_int_equal(resil_update_json_safe(in_dir("d"), set_a_fn, NULL, NULL, &e), RESIL_EINVAL);
    assert_false(exists(in_dir("d.lock")));

    /* a FIFO (and nothing waits for a writer) */
    assert_int_equal(mkfifo(in_dir("f"), 0644), 0);
    resil_error_clear(&e);
    assert_int_equal(resil_update_yaml_safe(in_dir("f"), set_a_fn, NULL, NULL, &e), RESIL_EINVAL);
    assert_non_null(strstr(e.message, "a FIFO"));
    assert_int_equal(resil_write_file_atomic(in_dir("f"), "x", 1, NULL, &e), RESIL_EINVAL);
    assert_false(exists(in_dir("f.lock")));

    /* /dev/null, as root (who could otherwise create /dev/null.lock) */
    if (geteuid() == 0 && !exists("/dev/null.lock")) {
        resil_error_clear(&e);
        assert_int_equal(resil_write_json_safe("/dev/null", doc, NULL, &e), RESIL_EINVAL);
        assert_non_null(strstr(e.message, "a character device"));
        assert_false(exists("/dev/null.lock"));
    }
    json_decref(doc);
}

static ssize_t enospc_write(int fd, const void *buf, size_t len)
{
    (void)fd, (void)buf, (void)len;
    errno = ENOSPC;
    return -1;
}

/* A failed write of a file that did not exist does not say it is
 * "unchanged". */
static void test_failure_message_of_a_new_file(void **state)
{
    (void)state;
    json_t *doc = json_pack("{s:i}", "a", 1);
    resil_error e;
    resil__sys.write = enospc_write;
    resil_error_clear(&e);
    assert_int_equal(resil_write_json_safe(in_dir("new.json"), doc, NULL, &e), -ENOSPC);
    assert_null(strstr(e.message, "unchanged"));
    assert_non_null(strstr(e.message, "was not created"));
    resil__sys_reset();
    assert_false(exists(in_dir("new.json")));

    put(in_dir("old.json"), "{}\n");
    resil__sys.write = enospc_write;
    assert_int_equal(resil_write_json_safe(in_dir("old.json"), doc, NULL, &e), -ENOSPC);
    assert_non_null(strstr(e.message, "(the file is unchanged)"));
    resil__sys_reset();
    json_decref(doc);
}

static void test_read_only_file_refused_unless_forced(void **state)
{
    (void)state;
    const char *p = in_dir("ro.json");
    put(p, "{\"v\": 0}\n");
    assert_int_equal(chmod(p, 0444), 0);
    json_t *doc = json_pack("{s:i}", "v", 1);
    resil_error e;
    resil_error_clear(&e);
    /* as a shell redirect: refused (root too: no write bit at all) */
    assert_int_equal(resil_write_json_safe(p, doc, NULL, &e), -EACCES);
    assert_non_null(strstr(e.message, p));
    assert_non_null(strstr(e.message, "0444"));
    assert_non_null(strstr(e.message, "force"));
    assert_int_equal(resil_update_json_safe(p, set_a_fn, NULL, NULL, &e), -EACCES);
    assert_int_equal(resil_write_file_atomic(p, "x", 1, NULL, &e), -EACCES);
    assert_file_is(p, "{\"v\": 0}\n");
    assert_false(exists(in_dir("ro.json.lock")));

    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.force = true;
    assert_int_equal(resil_write_json_safe(p, doc, &o, &e), 0);
    assert_file_is(p, "{\n  \"v\": 1\n}\n");
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0444); /* it keeps its mode */

    /* a file with a write bit for someone is root's to write */
    if (geteuid() == 0) {
        assert_int_equal(chmod(p, 0400 | 0020), 0);
        assert_int_equal(resil_write_json_safe(p, doc, NULL, &e), 0);
    }
    json_decref(doc);
}

/* ---- 3. parser messages --------------------------------------------------------- */

static void expect_read_error(bool yaml, const char *name, const char *text, size_t n,
                              const char *want, int line, int col)
{
    const char *p = in_dir(name);
    put_bytes(p, text, n);
    json_t *v = NULL;
    resil_error e;
    resil_error_clear(&e);
    int rc = yaml ? resil_read_yaml_safe(&v, p, NULL, &e) : resil_read_json_safe(&v, p, NULL, &e);
    if (rc != RESIL_EPARSE || !strstr(e.message, want) || !strstr(e.message, p))
        fail_msg("%s: rc %d, message '%s', want '%s'", name, rc, e.message, want);
    assert_int_equal(e.line, line);
    assert_int_equal(e.column, col);
}

static void test_parser_messages(void **state)
{
    (void)state;
    for (int y = 0; y <= 1; y++) {
        const char *ext = y ? "yaml" : "json";
        char name[32];
        snprintf(name, sizeof name, "empty.%s", ext);
        expect_read_error(y, name, "", 0, "the file is empty", 0, 0);
        snprintf(name, sizeof name, "blank.%s", ext);
        expect_read_error(y, name, " \n\n", 3, "the file is empty", 0, 0);
        snprintf(name, sizeof name, "nul.%s", ext);
        const char *t = y ? "a: 1\nb: 2\n\0\0\n" : "{\"a\": 1,\n \"b\": 2}\n\0\0\n";
        size_t tn = y ? 13 : 21;
        expect_read_error(y, name, t, tn, "a NUL byte at line 3 column 1 after the document", 3, 1);
    }
    expect_read_error(false, "bom.json", "\xEF\xBB\xBF{\"a\": 1}\n", 12, "byte order mark", 1, 1);

    /* YAML allows a byte order mark (and libyaml reads it) */
    put(in_dir("bom.yaml"), "\xEF\xBB\xBF" "a: 1\n");
    json_t *v = NULL;
    assert_int_equal(resil_read_yaml_safe(&v, in_dir("bom.yaml"), NULL, NULL), 0);
    assert_int_equal(json_integer_value(json_object_get(v, "a")), 1);
    json_decref(v);
}

static int saw_null_fn(json_t **doc, void *arg)
{
    *(bool *)arg = *doc == NULL;
    json_decref(*doc);
    *doc = json_pack("{s:i}", "k", 1);
    return 0;
}

/* An update treats an empty file as a missing one (documented in
 * resil/files.h): the callback gets NULL. */
static void test_update_of_an_empty_file(void **state)
{
    (void)state;
    for (int y = 0; y <= 1; y++) {
        const char *p = in_dir(y ? "e.yaml" : "e.json");
        put(p, "\n");
        bool saw_null = false;
        int rc = y ? resil_update_yaml_safe(p, saw_null_fn, &saw_null, NULL, NULL)
                   : resil_update_json_safe(p, saw_null_fn, &saw_null, NULL, NULL);
        assert_int_equal(rc, 0);
        assert_true(saw_null);
        assert_file_is(p, y ? "k: 1\n" : "{\n  \"k\": 1\n}\n");
    }
}

/* ---- 4. the shortest text of reals -------------------------------------------- */

static void expect_real(double d, const char *want)
{
    json_t *v = json_real(d);
    char *got = resil__json_dumps(v, JSON_INDENT(2), NULL);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("%.17g: got '%s', want '%s'", d, got, want);
    /* it reads back as the same double, and as a real */
    json_t *back = json_loads(got, JSON_DECODE_ANY, NULL);
    assert_non_null(back);
    assert_true(json_is_real(back));
    double b = json_real_value(back);
    assert_memory_equal(&b, &d, sizeof d);
    json_decref(back);
    free(got);
    json_decref(v);
}

static void test_shortest_reals(void **state)
{
    (void)state;
    expect_real(0.1, "0.1");
    expect_real(1e300, "1e300");
    expect_real(5e-324, "5e-324");
    expect_real(1.0, "1.0");
    expect_real(-0.0, "-0.0");
    expect_real(123456789.123, "123456789.123");
    expect_real(0.30000000000000004, "0.30000000000000004");
    expect_real(1e21, "1e21");
    expect_real(1e-5, "1e-5");
    expect_real(100.0, "100.0");
    expect_real(1.7976931348623157e308, "1.7976931348623157e308");
    expect_real(2.5e-3, "0.0025");
    expect_real(-1.5, "-1.5");

    /* integers stay integers, beyond 2^53 too */
    json_t *ints = json_pack("[I,I,I,I]", (json_int_t)9007199254740993LL,
                             (json_int_t)INT64_MAX, (json_int_t)INT64_MIN, (json_int_t)0);
    char *s = resil__json_dumps(ints, JSON_COMPACT, NULL);
    assert_string_equal(s, "[9007199254740993,9223372036854775807,-9223372036854775808,0]");
    free(s);
    json_decref(ints);

    /* non-finite reals and invalid UTF-8 cannot be written */
    json_t *bad = json_stringn_nocheck("\xff", 1);
    assert_null(resil__json_dumps(bad, 0, NULL));
    assert_int_equal(resil__json_dumpb(bad, NULL, 0, 0), 0);
    json_decref(bad);
}

/* `set` on {"x": 0.1} rewrites 0.1 as 0.1. */
static void test_untouched_reals_keep_their_text(void **state)
{
    (void)state;
    const char *p = in_dir("r.json");
    put(p, "{\"x\": 0.1, \"y\": 1e300, \"z\": 123456789.123}\n");
    assert_int_equal(resil_update_json_safe(p, set_a_fn, NULL, NULL, NULL), 0);
    assert_file_is(p, "{\n  \"x\": 0.1,\n  \"y\": 1e300,\n  \"z\": 123456789.123,\n  \"a\": 1\n}\n");
}

/* A small deterministic generator of documents without reals. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static json_t *rnd_string_value(void)
{
    static const char *pieces[] = {"a", "Z", "/", "\\", "\"", "\n", "\t", "\r", "\b", "\f",
                                   "\x01", "\x1f", "\x7f", " ", "\xc3\xa9", "\xe2\x82\xac",
                                   "\xf0\x9f\x98\x80", "</script>", "0", "key"};
    char buf[256];
    size_t n = 0;
    int k = (int)(rnd() % 12);
    bool nul = rnd() % 8 == 0;
    for (int i = 0; i < k; i++) {
        const char *p = pieces[rnd() % (sizeof pieces / sizeof pieces[0])];
        memcpy(buf + n, p, strlen(p));
        n += strlen(p);
    }
    if (nul)
        buf[n++] = '\0';
    return json_stringn(buf, n);
}

static json_t *rnd_doc(int depth)
{
    int kind = (int)(rnd() % (depth > 4 ? 6 : 8));
    switch (kind) {
    case 0: return json_null();
    case 1: return json_true();
    case 2: return json_false();
    case 3: return json_integer((json_int_t)((int64_t)((uint64_t)rnd() << 32 | rnd())));
    case 4: return json_integer((json_int_t)(rnd() % 1000) - 500);
    case 5: return rnd_string_value();
    case 6: {
        json_t *a = json_array();
        int n = (int)(rnd() % 6);
        for (int i = 0; i < n; i++)
            json_array_append_new(a, rnd_doc(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        int n = (int)(rnd() % 6);
        for (int i = 0; i < n; i++) {
            json_t *k = rnd_string_value();
            json_object_setn_new(o, json_string_value(k), json_string_length(k),
                                 rnd_doc(depth + 1));
            json_decref(k);
        }
        return o;
    }
    }
}

/* Without reals, the text is jansson's, byte for byte, in every layout. */
static void test_encoder_matches_jansson(void **state)
{
    (void)state;
    const size_t layouts[] = {JSON_INDENT(2), JSON_COMPACT, 0, JSON_INDENT(4),
                              JSON_INDENT(2) | JSON_COMPACT};
    for (int round = 0; round < 400; round++) {
        json_t *doc = rnd_doc(0);
        for (size_t l = 0; l < sizeof layouts / sizeof layouts[0]; l++) {
            char *want = json_dumps(doc, layouts[l] | JSON_ENCODE_ANY);
            size_t n = 0;
            char *got = resil__json_dumps(doc, layouts[l], &n);
            assert_non_null(want);
            assert_non_null(got);
            assert_string_equal(got, want);
            assert_int_equal(n, strlen(want));
            /* dumpb: measures, and writes only when it fits */
            assert_int_equal(resil__json_dumpb(doc, NULL, 0, layouts[l]), n);
            char *b = malloc(n + 1);
            assert_int_equal(resil__json_dumpb(doc, b, n, layouts[l]), n);
            assert_memory_equal(b, want, n);
            free(b);
            free(got);
            free(want);
        }
        json_decref(doc);
    }

    /* a big document (~1 MB) */
    json_t *big = json_array();
    for (int i = 0; i < 3000; i++)
        json_array_append_new(big, rnd_doc(1));
    char *want = json_dumps(big, JSON_INDENT(2) | JSON_ENCODE_ANY);
    char *got = resil__json_dumps(big, JSON_INDENT(2), NULL);
    assert_string_equal(got, want);
    free(got);
    free(want);
    json_decref(big);
}

/* JSON and YAML write the same digits for a real (YAML keeps its "e+"). */
static void test_json_and_yaml_reals_agree(void **state)
{
    (void)state;
    const double reals[] = {0.1, 1e300, 5e-324, 1.0, -0.0, 123456789.123, 1e21, 1e-5,
                            0.30000000000000004, 3.141592653589793, 2.2250738585072014e-308};
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        json_t *v = json_real(reals[i]);
        char *j = resil__json_dumps(v, 0, NULL);
        char *y = NULL;
        assert_int_equal(resil_yaml_dump(&y, v, NULL), 0);
        /* "1e+300\n" -> "1e300" */
        char norm[64];
        size_t k = 0;
        for (const char *q = y; *q && *q != '\n' && k + 1 < sizeof norm; q++) {
            if (*q == '+' && q > y && q[-1] == 'e')
                continue;
            norm[k++] = *q;
        }
        norm[k] = '\0';
        if (strcmp(j, norm) != 0)
            fail_msg("%.17g: JSON '%s', YAML '%s'", reals[i], j, y);
        free(j);
        free(y);
        json_decref(v);
    }
}

/* ---- 5. one exact size limit ---------------------------------------------------- */

static void test_exact_size_limit(void **state)
{
    (void)state;
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.max_size = 64;
    /* {"s":"..."} compact in a 2-space layout: "{\n  \"s\": \"" + x*k + "\"\n}\n"
     * is 14 + k bytes */
    char s50[64], s51[64];
    memset(s50, 'x', 50);
    s50[50] = '\0';
    memset(s51, 'x', 51);
    s51[51] = '\0';
    const char *p = in_dir("lim.json");
    json_t *at = json_pack("{s:s}", "s", s50);
    json_t *over = json_pack("{s:s}", "s", s51);
    resil_error e;
    assert_int_equal(resil_write_json_safe(p, at, &o, &e), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, 64);
    json_t *back = NULL;
    assert_int_equal(resil_read_json_safe(&back, p, &o, &e), 0); /* exactly max: accepted */
    json_decref(back);

    char *before = slurp(p);
    resil_error_clear(&e);
    assert_int_equal(resil_write_json_safe(p, over, &o, &e), -EFBIG);
    assert_non_null(strstr(e.message, "65 bytes"));
    assert_non_null(strstr(e.message, "limit of 64 bytes"));
    assert_file_is(p, before);
    /* update: the same */
    assert_int_equal(resil_update_json_safe(p, set_a_fn, NULL, &o, &e), -EFBIG);
    assert_file_is(p, before);
    /* YAML too */
    const char *py = in_dir("lim.yaml");
    json_t *yo = json_pack("{s:s}", "s", s51 - 0);
    o.max_size = 20;
    assert_int_equal(resil_write_yaml_safe(py, yo, &o, &e), -EFBIG);
    assert_false(exists(py));
    json_decref(yo);
    o.max_size = 64;
    free(before);

    /* the reader: max accepted, max + 1 refused */
    char text[80];
    memset(text, ' ', sizeof text);
    text[0] = '1';
    put_bytes(in_dir("r64.json"), text, 64);
    put_bytes(in_dir("r65.json"), text, 65);
    assert_int_equal(resil_read_json_safe(&back, in_dir("r64.json"), &o, &e), 0);
    json_decref(back);
    assert_int_equal(resil_read_json_safe(&back, in_dir("r65.json"), &o, &e), -EFBIG);
    json_decref(at);
    json_decref(over);
}

/* A file that grows while it is read (its size as fstat saw it is smaller)
 * is refused past the limit, whatever the buffer's growth. */
static int small_fstat(int fd, struct stat *st)
{
    int rc = fstat(fd, st);
    if (rc == 0 && S_ISREG(st->st_mode))
        st->st_size = 10;
    return rc;
}

static void test_limit_of_a_growing_file(void **state)
{
    (void)state;
    char text[70];
    memset(text, 'a', sizeof text);
    put_bytes(in_dir("grow"), text, sizeof text);
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.max_size = 64;
    resil__sys.fstat = small_fstat;
    char *buf = NULL;
    size_t len = 0;
    int rc = resil_read_file(&buf, &len, in_dir("grow"), &o, NULL);
    resil__sys_reset();
    if (rc == 0)
        free(buf);
    assert_int_equal(rc, -EFBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_foreign_symlink_in_sticky_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_in_private_dir_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_sidecar_when_target_is_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_message_of_a_new_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_file_refused_unless_forced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_parser_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_of_an_empty_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shortest_reals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_untouched_reals_keep_their_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encoder_matches_jansson, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_and_yaml_reals_agree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exact_size_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_of_a_growing_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
