/* tests/crash/enospc.c - a real full disk: a 256 KiB tmpfs.
 *
 * Needs root (mount(2) without a user namespace); otherwise prints
 * "SKIP: ..." and exits 77 (CTest's SKIP_RETURN_CODE).  The tmpfs is
 * detached (umount2 MNT_DETACH) at exit, on failure too.
 *
 * In it:
 *  1. a small JSON state file is written;
 *  2. a state larger than the space left fails with -ENOSPC, with a message
 *     naming the file; the old content is intact and parses; no temp file
 *     remains and the space is given back;
 *  3. NDJSON appends of records whose lines are 256 bytes (so that a record
 *     never straddles a page) until the disk is full: the append that does
 *     not fit returns -ENOSPC and leaves the size unchanged, the log reads
 *     strictly (no partial record); the writer API fails the same way; a
 *     state write on the full disk fails with -ENOSPC and leaves the old
 *     content;
 *  4. after 8 KiB are freed, appends of 1000-3000 byte records until the disk
 *     is full again: here the last write() is short (the kernel writes what
 *     fits in the last page); the append must fail, leave the size unchanged
 *     and no partial record.
 */
#include "resil/files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static char dir[512];
static bool mounted;

#define CHECK(cond, ...)                                                             \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fprintf(stderr, "\n");                                                   \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

static void cleanup(void)
{
    if (mounted && umount2(dir, MNT_DETACH) != 0)
        fprintf(stderr, "umount2 %s: %s\n", dir, strerror(errno));
    mounted = false;
    if (dir[0] && rmdir(dir) != 0)
        fprintf(stderr, "rmdir %s: %s\n", dir, strerror(errno));
}

static const char *in_dir(const char *name)
{
    static char buf[4][700];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

static int count_files(const char *needle)
{
    DIR *d = opendir(dir);
    CHECK(d != NULL, "opendir: %s", strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, needle) != NULL;
    closedir(d);
    return n;
}

static long long free_bytes(void)
{
    struct statvfs sv;
    CHECK(statvfs(dir, &sv) == 0, "statvfs: %s", strerror(errno));
    return (long long)sv.f_bavail * (long long)sv.f_frsize;
}

/* The size of p; 0 for a file that does not exist yet. */
static off_t size_of(const char *p)
{
    struct stat st;
    if (stat(p, &st) != 0 && errno == ENOENT)
        return 0;
    CHECK(stat(p, &st) == 0, "stat %s: %s", p, strerror(errno));
    return st.st_size;
}

/* The state file holds exactly `want` and parses as {"name": "small", ...}. */
static void check_state(const char *p, const char *want, size_t want_len)
{
    char *buf;
    size_t len;
    resil_error e;
    CHECK(resil_read_file(&buf, &len, p, NULL, &e) == 0, "read: %s", e.message);
    CHECK(len == want_len && memcmp(buf, want, len) == 0, "the state changed (%zu bytes)", len);
    free(buf);
    json_t *v;
    CHECK(resil_read_json_safe(&v, p, NULL, &e) == 0, "parse: %s", e.message);
    CHECK(strcmp(json_string_value(json_object_get(v, "name")), "small") == 0, "wrong state");
    json_decref(v);
    CHECK(count_files(".resil-tmp.") == 0, "a temp file remains");
}

/* A record whose line (newline included) is exactly `len` bytes. */
static json_t *record_of_line_len(long i, size_t len)
{
    char head[64];
    int hl = snprintf(head, sizeof head, "{\"i\":%ld,\"pad\":\"\"}\n", i);
    CHECK(hl > 0 && (size_t)hl <= len, "line length %zu too short", len);
    size_t padlen = len - (size_t)hl;
    char *pad = malloc(padlen + 1);
    CHECK(pad != NULL, "out of memory");
    for (size_t j = 0; j < padlen; j++)
        pad[j] = (char)('a' + (int)((j + (size_t)i) % 26));
    pad[padlen] = '\0';
    json_t *r = json_pack("{s:I, s:s}", "i", (json_int_t)i, "pad", pad);
    free(pad);
    char *s = json_dumps(r, JSON_COMPACT);
    CHECK(s && strlen(s) + 1 == len, "record encodes to %zu bytes, expected %zu",
          s ? strlen(s) + 1 : 0, len);
    free(s);
    return r;
}

/* Appends records of the given line lengths until one fails; checks each
 * success grew the log by exactly its line and the failure left it as it
 * was.  Returns the failure's code; *ok counts the successes. */
static int append_until_full(const char *log, long *next_i, size_t min_len, size_t max_len,
                             long *ok, resil_error *e)
{
    for (int tries = 0; tries < 100000; tries++) {
        size_t len = min_len + (max_len > min_len ? (size_t)(*next_i * 7919) % (max_len - min_len + 1)
                                                  : 0);
        json_t *r = record_of_line_len(*next_i, len);
        off_t before = size_of(log);
        int rc = resil_append_ndjson_safe(log, r, NULL, e);
        json_decref(r);
        off_t after = size_of(log);
        if (rc != 0) {
            CHECK(after == before, "a failed append (%s) changed the size: %lld -> %lld",
                  resil_err_name(rc), (long long)before, (long long)after);
            return rc;
        }
        CHECK(after == before + (off_t)len, "an append of %zu bytes grew the log by %lld", len,
              (long long)(after - before));
        (*next_i)++;
        (*ok)++;
    }
    CHECK(0, "the disk never filled");
    return 0;
}

static void check_log_strict(const char *log, long records)
{
    resil_ndjson_stats st;
    resil_error e;
    CHECK(resil_read_ndjson_safe(log, NULL, NULL, NULL, true, &st, NULL, &e) == 0,
          "strict read of the log: %s", e.message);
    CHECK((long)st.records == records && st.bad_lines == 0 && st.torn_bytes == 0,
          "the log holds %zu records (expected %ld), %zu bad lines, %zu torn bytes", st.records,
          records, st.bad_lines, st.torn_bytes);
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s/resil-enospc-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    atexit(cleanup);
    if (mount("tmpfs", dir, "tmpfs", 0, "size=256k") != 0) {
        printf("SKIP: cannot mount a tmpfs (%s)\n", strerror(errno));
        return 77;
    }
    mounted = true;

    /* 1. A small state. */
    const char *state = in_dir("state.json");
    json_t *small = json_pack("{s:s, s:i}", "name", "small", "n", 1);
    resil_error e;
    CHECK(resil_write_json_safe(state, small, NULL, &e) == 0, "small write: %s", e.message);
    json_decref(small);
    char *orig;
    size_t orig_len;
    CHECK(resil_read_file(&orig, &orig_len, state, NULL, &e) == 0, "read: %s", e.message);

    /* 2. A state larger than the space left. */
    long long before = free_bytes();
    size_t big_len = (size_t)before + 16384;
    char *big_text = malloc(big_len + 1);
    CHECK(big_text != NULL, "out of memory");
    memset(big_text, 'x', big_len);
    big_text[big_len] = '\0';
    json_t *big = json_pack("{s:s, s:s}", "name", "big", "blob", big_text);
    free(big_text);
    int rc = resil_write_json_safe(state, big, NULL, &e);
    CHECK(rc == -ENOSPC, "an oversized write returned %d (%s), expected -ENOSPC", rc,
          resil_err_name(rc));
    CHECK(e.code == -ENOSPC, "err.code is %d", e.code);
    CHECK(strstr(e.message, state) != NULL, "the message does not name %s: %s", state,
          e.message);
    printf("oversized state write: %s\n", e.message);
    check_state(state, orig, orig_len);
    CHECK(free_bytes() == before, "the space was not given back: %lld free, %lld before",
          free_bytes(), before);

    /* 3. Appends of whole pages' worth of 256-byte lines until full: the
     * failing write() writes nothing. */
    const char *log = in_dir("events.ndjson");
    const char *filler = in_dir("filler");
    int ffd = open(filler, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    CHECK(ffd >= 0, "open filler: %s", strerror(errno));
    static char page[8192];
    memset(page, 'f', sizeof page);
    CHECK(write(ffd, page, sizeof page) == (ssize_t)sizeof page, "filler: %s", strerror(errno));
    close(ffd);
    long next_i = 0, ok = 0;
    rc = append_until_full(log, &next_i, 256, 256, &ok, &e);
    CHECK(rc == -ENOSPC, "the append that did not fit returned %d (%s: %s), expected -ENOSPC",
          rc, resil_err_name(rc), e.message);
    CHECK(strstr(e.message, log) != NULL, "the message does not name the log: %s", e.message);
    printf("append on a full disk after %ld records: %s\n", ok, e.message);
    check_log_strict(log, ok);

    /* The writer API fails the same way. */
    off_t sz = size_of(log);
    resil_ndjson_writer *w;
    CHECK(resil_ndjson_writer_open(&w, log, NULL, &e) == 0, "writer open: %s", e.message);
    json_t *r = record_of_line_len(next_i, 256);
    rc = resil_ndjson_writer_append(w, r, &e);
    json_decref(r);
    CHECK(rc == -ENOSPC, "writer append on a full disk returned %d (%s)", rc, resil_err_name(rc));
    CHECK(size_of(log) == sz, "the failed writer append changed the size");
    resil_ndjson_writer_close(w);
    check_log_strict(log, ok);

    /* A state write on the full disk. */
    small = json_pack("{s:s, s:i}", "name", "small", "n", 2);
    rc = resil_write_json_safe(state, small, NULL, &e);
    json_decref(small);
    CHECK(rc == -ENOSPC, "a state write on a full disk returned %d (%s)", rc, resil_err_name(rc));
    check_state(state, orig, orig_len);

    /* 4. 8 KiB freed; records of 1000-3000 bytes until full again: the last
     * write() is short. */
    CHECK(unlink(filler) == 0, "unlink: %s", strerror(errno));
    long ok2 = 0;
    rc = append_until_full(log, &next_i, 1000, 3000, &ok2, &e);
    printf("append that did not fit after %ld more records: %s (%s)\n", ok2, resil_err_name(rc),
           e.message);
    CHECK(rc < 0, "append returned %d", rc);
    check_log_strict(log, ok + ok2);
    CHECK(count_files(".resil-tmp.") == 0, "a temp file remains");
    /* Last, as the one check that fails today: -errno, so -ENOSPC survives. */
    CHECK(rc == -ENOSPC, "a short write for lack of space returned %d (%s), expected -ENOSPC",
          rc, resil_err_name(rc));

    json_decref(big);
    free(orig);
    printf("ENOSPC: state writes fail cleanly (old content kept, no temp), %ld appends before "
           "the disk filled, failed appends leave no partial record\n",
           ok + ok2);
    return 0;
}
