/* tests/fuzz/fuzz_ndjson.c - property fuzzing of the NDJSON reader and of
 * resil_repair_ndjson.
 *
 * The input bytes are written to a file (one per process, created once and
 * rewritten in place for each input: /tmp/resil-fuzz-ndjson.<pid>), which is
 * then read.  Properties checked:
 *  1. A non-strict read returns 0; the records it delivers are those it
 *     counts; every complete line with a byte other than space, tab and CR is
 *     a record or a bad line, and nothing else is (records + bad lines never
 *     exceed the lines that are not blank); first_bad_line is 0 exactly when
 *     there is no bad line, otherwise a line that exists; torn_bytes is the
 *     number of bytes after the last '\n'.
 *  2. A strict read returns 0 exactly when the non-strict read found no bad
 *     line and no torn tail, and RESIL_EPARSE naming the first bad line (or
 *     the torn line) otherwise; when it succeeds it delivers the same records.
 *  3. resil_repair_ndjson keeps a tail that is not NUL bytes only (nothing
 *     of resil's marks it), changing nothing; resil_repair_ndjson_force (run
 *     on the file after the reads; the input bytes are the copy it is
 *     compared with) cuts exactly the torn tail: what
 *     remains is empty or ends with '\n', and is the input up to its last
 *     '\n'; the repaired file reads with no torn tail and the same records;
 *     a second repair cuts nothing (checked on every 8th input).
 *
 * Repair fsyncs what it cut; here fsync is a no-op (through the internal
 * syscall table, resil__sys): the properties are about content, and /tmp may
 * be a disk where a sync costs milliseconds per input.  The test's own reads
 * and writes go through one descriptor kept open.
 * Every input still costs a few file operations, so with the standalone
 * driver (gcc builds, where CTest runs `-n 1000000`) only the first 20000
 * inputs are checked and the rest return at once; RESIL_FUZZ_MAX=N changes
 * the cap.  Under libFuzzer (which calls LLVMFuzzerInitialize) there is no
 * cap.
 * Built as a libFuzzer target with clang (RESIL_FUZZ=ON), and otherwise with
 * tests/fuzz/standalone.c, which feeds it seeded pseudo-random inputs. */
#include "resil/files.h"

/* The internal syscall table (the target links the static library). */
#include "../../src/internal/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Reported by the standalone driver: inputs checked, and those with at
 * least one record. */
long fuzz_inputs_valid, fuzz_inputs_deadline;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                    \
        }                                                                               \
    } while (0)

static long max_inputs = 20000; /* the standalone driver's cap; < 0: none */
static long inputs;
static char path[64];
static int fd = -1; /* the file, kept open */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    max_inputs = -1; /* libFuzzer decides how long to run */
    return 0;
}

static int no_sync(int sfd)
{
    (void)sfd;
    return 0;
}

static void remove_files(void)
{
    char lock[80];
    if (fd >= 0)
        close(fd);
    unlink(path);
    snprintf(lock, sizeof lock, "%s.lock", path);
    unlink(lock);
}

/* The file's content becomes data (in place: no truncation to zero, which
 * some file systems answer with a flush at close). */
static void put(const uint8_t *data, size_t size)
{
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        CHECK(n > 0);
        done += (size_t)n;
    }
    CHECK(ftruncate(fd, (off_t)size) == 0);
}

/* The file's content, NUL-terminated, in a buffer reused across calls. */
static const char *get(size_t *len)
{
    static char *buf;
    static size_t cap;
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    size_t n = (size_t)st.st_size;
    if (n + 1 > cap) {
        free(buf);
        cap = n + 1;
        buf = malloc(cap);
        CHECK(buf != NULL);
    }
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, buf + done, n - done, (off_t)done);
        CHECK(r > 0);
        done += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

struct tally {
    size_t records;
    size_t last_line;
    size_t bad;
    size_t last_bad_line;
    unsigned long hash; /* over the encoded records and their line numbers */
};

static int on_record(json_t *rec, size_t line, void *arg)
{
    struct tally *t = arg;
    CHECK(rec != NULL);
    CHECK(line > t->last_line);
    t->last_line = line;
    t->records++;
    char *s = json_dumps(rec, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    if (s) {
        for (const char *p = s; *p; p++)
            t->hash = t->hash * 31 + (unsigned char)*p;
        free(s);
    }
    t->hash = t->hash * 31 + line;
    return 0;
}

static void on_bad(size_t line, const char *message, void *arg)
{
    struct tally *t = arg;
    CHECK(message != NULL);
    CHECK(line > t->last_bad_line);
    t->last_bad_line = line;
    t->bad++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (inputs == 0 && fd < 0) {
        const char *cap = getenv("RESIL_FUZZ_MAX");
        if (cap && *cap)
            max_inputs = strtol(cap, NULL, 10);
        snprintf(path, sizeof path, "/tmp/resil-fuzz-ndjson.%ld", (long)getpid());
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        atexit(remove_files);
        resil__sys.fsync = no_sync;
        resil__sys.fdatasync = no_sync;
    }
    if (max_inputs >= 0 && inputs >= max_inputs)
        return 0;
    inputs++;
    fuzz_inputs_valid++;

    /* What the reader should find, computed independently. */
    size_t complete = 0, upper = 0, lower = 0, last_nl = 0;
    bool any_nl = false;
    for (size_t start = 0; start < size;) {
        const uint8_t *nl = memchr(data + start, '\n', size - start);
        if (!nl)
            break;
        size_t end = (size_t)(nl - data);
        complete++;
        any_nl = true;
        last_nl = end;
        /* Blank for the upper bound: only spaces and tabs, before one
         * optional final CR.  Content for the lower bound: a byte other than
         * space, tab and CR. */
        size_t l = end - start;
        if (l > 0 && data[end - 1] == '\r')
            l--;
        bool blank = true, content = false;
        for (size_t i = start; i < start + l; i++)
            blank = blank && (data[i] == ' ' || data[i] == '\t');
        for (size_t i = start; i < end; i++)
            content = content || (data[i] != ' ' && data[i] != '\t' && data[i] != '\r');
        upper += !blank;
        lower += content;
        start = end + 1;
    }
    size_t torn = any_nl ? size - last_nl - 1 : size;

    put(data, size);

    /* 1. Non-strict. */
    struct tally t;
    memset(&t, 0, sizeof t);
    resil_ndjson_stats st;
    resil_error err;
    int rc = resil_read_ndjson_safe(path, on_record, on_bad, &t, false, &st, NULL, &err);
    CHECK(rc == 0);
    CHECK(st.records == t.records);
    CHECK(st.bad_lines == t.bad);
    CHECK(st.records + st.bad_lines <= upper);
    CHECK(st.records + st.bad_lines >= lower);
    CHECK(st.records + st.bad_lines <= complete);
    CHECK((st.first_bad_line == 0) == (st.bad_lines == 0));
    CHECK(st.first_bad_line <= complete);
    CHECK(t.last_line <= complete && t.last_bad_line <= complete);
    CHECK(st.torn_bytes == torn);
    if (st.records)
        fuzz_inputs_deadline++;

    /* 2. Strict. */
    struct tally ts;
    memset(&ts, 0, sizeof ts);
    resil_ndjson_stats sst;
    int src = resil_read_ndjson_safe(path, on_record, NULL, &ts, true, &sst, NULL, &err);
    bool clean = st.bad_lines == 0 && st.torn_bytes == 0;
    CHECK((src == 0) == clean);
    if (clean) {
        CHECK(sst.records == st.records && ts.hash == t.hash);
    } else {
        CHECK(src == RESIL_EPARSE);
        CHECK(err.code == RESIL_EPARSE);
        if (st.bad_lines)
            CHECK(err.line == (int)st.first_bad_line);
        else
            CHECK(err.line == (int)complete + 1);
    }

    /* 3. Repair.  Unforced, it cuts only a tail of NUL bytes (no append of
     * resil marked one here) and keeps any other, changing nothing. */
    size_t cut = (size_t)-1;
    bool nul_tail = true;
    for (size_t i = size - torn; i < size && nul_tail; i++)
        nul_tail = data[i] == 0;
    if (!nul_tail) {
        CHECK(resil_repair_ndjson(path, &cut, NULL, &err) == RESIL_EPARSE);
        CHECK(cut == 0);
        size_t kept;
        get(&kept);
        CHECK(kept == size);
        cut = (size_t)-1;
    }
    CHECK(resil_repair_ndjson_force(path, &cut, NULL, &err) == 0);
    CHECK(cut == torn);
    size_t len;
    const char *buf = get(&len);
    CHECK(len == size - torn);
    CHECK(len == 0 || buf[len - 1] == '\n');
    CHECK(memcmp(buf, data, len) == 0);
    struct tally tr;
    memset(&tr, 0, sizeof tr);
    CHECK(resil_read_ndjson_safe(path, on_record, NULL, &tr, false, &sst, NULL, &err) == 0);
    CHECK(sst.torn_bytes == 0 && sst.records == st.records && sst.bad_lines == st.bad_lines &&
          tr.hash == t.hash);
    if (inputs % 8 == 0) {
        CHECK(resil_repair_ndjson_force(path, &cut, NULL, &err) == 0);
        CHECK(cut == 0);
        get(&len);
        CHECK(len == size - torn);
    }
    return 0;
}
