/* tests/crash/crash_ndjson.c - kill -9 loop over NDJSON appends.
 *
 * Four writer children append records {"w": k, "i": i, "pad": <text that
 * depends on k and i, 100-800 bytes, every 16th 6000>} to one log, and after each successful
 * append report i to the parent with one write(2) of an int on a pipe.  Odd
 * incarnations of a writer use the resil_ndjson_writer API, even ones
 * resil_append_ndjson_safe; some use sync_each.  The parent SIGKILLs a random
 * writer every 0-3 ms (seeded resil_rng) and starts a new one in its place,
 * which continues after the record that was in flight (so every i is written
 * by at most one attempt).  At the end, a non-strict read must find:
 *   - no bad line, and no torn tail once the log is repaired as the next
 *     writer would (a SIGKILL can cut a page-crossing write() short: the
 *     kernel checks for a fatal signal between pages; such a write is marked
 *     in the sidecar, and the next append, or resil_repair_ndjson without
 *     force, cuts exactly it; after the last kills nobody appends, so the
 *     check repairs);
 *   - every acknowledged record exactly once, intact;
 *   - every record that was in flight at a kill at most once;
 *   - nothing else, and each writer's records in the order it wrote them.
 * Then a torn tail is made by hand: the reader skips and counts it, strict
 * mode rejects it, resil_repair_ndjson keeps it (resil did not write it),
 * resil_repair_ndjson_force cuts exactly it, and the log reads clean again.
 *
 * Usage: crash_ndjson [KILLS]   (default 400; RESIL_CRASH_SCALE=N divides the
 * default, for sanitizer builds; RESIL_CRASH_MAX_DELAY_US=D stretches the
 * 0-3 ms delays to 0-D us, for slow sanitizer builds; RESIL_CRASH_SEED=S
 * picks the seed). */
#include "resil/clock.h"
#include "resil/files.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WRITERS 4
#define PAD_MAX 6000

static char dir[512];
static char path[600];

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                             \
            fprintf(stderr, "\n(test directory kept: %s)\n", dir);                    \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static long env_long(const char *name, long dflt)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return dflt;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v <= 0) {
        fprintf(stderr, "%s=%s: not a positive integer, using %ld\n", name, s, dflt);
        return dflt;
    }
    return v;
}

/* The pad of record (k, i): 100-800 bytes, so that some records take the
 * writer's small-buffer path and some do not, and every 16th 6000 bytes, so
 * that its write() spans pages.  Returns its length. */
static size_t make_pad(char *buf, int k, long i)
{
    size_t len = i % 16 == 15 ? PAD_MAX
                              : 100 + (size_t)(((unsigned long)i * 13u + (unsigned)k * 101u) % 700u);
    for (size_t j = 0; j < len; j++)
        buf[j] = (char)('A' + (int)(((unsigned long)i + (unsigned)k * 3u + j) % 26u));
    buf[len] = '\0';
    return len;
}

/* ---- the writer child ---------------------------------------------------------- */

static void writer_main(int report_fd, int k, long first, long incarnation)
{
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.lock_timeout_s = 30;
    o.sync_each = incarnation % 8 == 5;
    bool use_writer = incarnation % 2 == 1;
    resil_ndjson_writer *w = NULL;
    resil_error e;
    if (use_writer && resil_ndjson_writer_open(&w, path, &o, &e) != 0) {
        fprintf(stderr, "writer %d: open failed: %s\n", k, e.message);
        _exit(3);
    }
    static char pad[PAD_MAX + 1];
    for (long i = first;; i++) {
        make_pad(pad, k, i);
        json_t *rec = json_pack("{s:i, s:I, s:s}", "w", k, "i", (json_int_t)i, "pad", pad);
        if (!rec)
            _exit(4);
        int rc = use_writer ? resil_ndjson_writer_append(w, rec, &e)
                            : resil_append_ndjson_safe(path, rec, &o, &e);
        json_decref(rec);
        if (rc != 0) {
            fprintf(stderr, "writer %d: append of %ld failed: %s\n", k, i, e.message);
            _exit(3);
        }
        int v = (int)i;
        if (write(report_fd, &v, sizeof v) != (ssize_t)sizeof v)
            _exit(5);
    }
}

/* ---- the parent's book-keeping --------------------------------------------------- */

enum { NEVER = 0, ACKED = 1, IN_FLIGHT = 2 };

struct slot {
    pid_t pid;
    int fd;            /* read end of the report pipe, non-blocking */
    long first;        /* first i of this incarnation */
    long expect;       /* next i it should report */
    long incarnations;
    unsigned char *status; /* per i: NEVER / ACKED / IN_FLIGHT */
    size_t cap;
    char partial[sizeof(int)];
    size_t npartial;
};

static struct slot slots[WRITERS];
static long total_acked, total_in_flight;

static void mark(struct slot *s, long i, unsigned char what)
{
    if ((size_t)i >= s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap <= (size_t)i)
            cap *= 2;
        unsigned char *n = realloc(s->status, cap);
        CHECK(n != NULL, "out of memory");
        memset(n + s->cap, NEVER, cap - s->cap);
        s->status = n;
        s->cap = cap;
    }
    s->status[i] = what;
}

static unsigned char status_of(const struct slot *s, long i)
{
    return i >= 0 && (size_t)i < s->cap ? s->status[i] : NEVER;
}

/* Reads what is on the pipe; returns false at EOF. */
static bool drain(struct slot *s)
{
    for (;;) {
        char buf[4096];
        memcpy(buf, s->partial, s->npartial);
        ssize_t n = read(s->fd, buf + s->npartial, sizeof buf - s->npartial);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return true;
        CHECK(n >= 0, "read from the pipe: %s", strerror(errno));
        if (n == 0) {
            CHECK(s->npartial == 0, "stray bytes on the pipe");
            return false;
        }
        size_t have = s->npartial + (size_t)n, off = 0;
        for (; have - off >= sizeof(int); off += sizeof(int)) {
            int v;
            memcpy(&v, buf + off, sizeof v);
            CHECK(v == s->expect, "writer %d reported %d, expected %ld", (int)(s - slots), v,
                  s->expect);
            mark(s, v, ACKED);
            s->expect++;
            total_acked++;
        }
        s->npartial = have - off;
        memcpy(s->partial, buf + off, s->npartial);
    }
}

static void start(int k)
{
    struct slot *s = &slots[k];
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        for (int j = 0; j < WRITERS; j++) {
            if (j != k && slots[j].pid > 0)
                close(slots[j].fd);
        }
        writer_main(fds[1], k, s->expect, s->incarnations);
    }
    close(fds[1]);
    CHECK(fcntl(fds[0], F_SETFL, O_NONBLOCK) == 0, "fcntl: %s", strerror(errno));
    s->pid = pid;
    s->fd = fds[0];
    s->first = s->expect;
    s->npartial = 0;
    s->incarnations++;
}

/* SIGKILLs writer k, reaps it, collects its reports; the record after its
 * last report was in flight. */
static void stop(int k)
{
    struct slot *s = &slots[k];
    CHECK(kill(s->pid, SIGKILL) == 0, "kill: %s", strerror(errno));
    int st;
    CHECK(waitpid(s->pid, &st, 0) == s->pid, "waitpid: %s", strerror(errno));
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "writer %d ended by itself (status 0x%x)",
          k, (unsigned)st);
    while (drain(s)) {
    }
    close(s->fd);
    mark(s, s->expect, IN_FLIGHT);
    total_in_flight++;
    s->expect++; /* the next incarnation starts after it */
    s->pid = 0;
}

/* Polls the pipes until `us` microseconds have passed. */
static void wait_draining(long us)
{
    struct timespec end, now;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_nsec += (us % 1000000) * 1000;
    end.tv_sec += us / 1000000 + end.tv_nsec / 1000000000;
    end.tv_nsec %= 1000000000;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t left = (int64_t)(end.tv_sec - now.tv_sec) * 1000000000 + (end.tv_nsec - now.tv_nsec);
        if (left <= 0)
            return;
        struct pollfd p[WRITERS];
        for (int k = 0; k < WRITERS; k++)
            p[k] = (struct pollfd){.fd = slots[k].fd, .events = POLLIN};
        struct timespec ts = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
        int n = ppoll(p, WRITERS, &ts, NULL);
        CHECK(n >= 0 || errno == EINTR, "ppoll: %s", strerror(errno));
        for (int k = 0; k < WRITERS && n > 0; k++) {
            if (p[k].revents & POLLIN)
                drain(&slots[k]);
        }
    }
}

/* ---- the final check ------------------------------------------------------------- */

struct seen {
    unsigned char *count[WRITERS];
    long last[WRITERS];
    long records, in_flight_landed;
};

static int on_record(json_t *rec, size_t line, void *arg)
{
    struct seen *sn = arg;
    json_t *jw = json_object_get(rec, "w"), *ji = json_object_get(rec, "i"),
           *jp = json_object_get(rec, "pad");
    CHECK(json_is_integer(jw) && json_is_integer(ji) && json_is_string(jp),
          "line %zu: not a record of this test", line);
    long k = (long)json_integer_value(jw), i = (long)json_integer_value(ji);
    CHECK(k >= 0 && k < WRITERS, "line %zu: writer %ld", line, k);
    struct slot *s = &slots[k];
    unsigned char st = status_of(s, i);
    CHECK(st != NEVER, "line %zu: record (%ld, %ld) was never written", line, k, i);
    CHECK(i > sn->last[k], "line %zu: record (%ld, %ld) after (%ld, %ld)", line, k, i, k,
          sn->last[k]);
    sn->last[k] = i;
    CHECK(sn->count[k][i] == 0, "line %zu: record (%ld, %ld) appears twice", line, k, i);
    sn->count[k][i] = 1;
    static char want[PAD_MAX + 1];
    size_t len = make_pad(want, (int)k, i);
    CHECK(json_string_length(jp) == len && memcmp(json_string_value(jp), want, len) == 0,
          "line %zu: the pad of (%ld, %ld) is damaged", line, k, i);
    sn->records++;
    sn->in_flight_landed += st == IN_FLIGHT;
    return 0;
}

static void on_bad(size_t line, const char *message, void *arg)
{
    (void)arg;
    fprintf(stderr, "bad line %zu: %s\n", line, message);
}

/* Prints the writers and numbers of the records that start in a bad line:
 * a torn record followed by a whole one means that a SIGKILL cut a write()
 * short and the next append was glued to the torn tail. */
static void show_line(size_t want)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t line = 1;
    int c, prev = 0;
    char key[32];
    size_t kl = 0;
    fprintf(stderr, "line %zu holds the records:", want);
    while ((c = fgetc(f)) != EOF && line <= want) {
        if (line == want) {
            /* Print every "{"w":K,"i":I" that starts in the line. */
            if (c == '{' && prev != '\\')
                kl = 0;
            if (kl < sizeof key - 1)
                key[kl++] = (char)c;
            key[kl] = '\0';
            long k, i;
            if (c == ',' && sscanf(key, "{\"w\":%ld,\"i\":%ld,", &k, &i) == 2)
                fprintf(stderr, " (%ld, %ld)", k, i);
        }
        if (c == '\n')
            line++;
        prev = c;
    }
    fprintf(stderr, "\n");
    fclose(f);
}

/* Reads the log, checks everything; returns the number of records. */
static long check_log(long *landed)
{
    struct seen sn;
    memset(&sn, 0, sizeof sn);
    for (int k = 0; k < WRITERS; k++) {
        sn.count[k] = calloc(slots[k].cap ? slots[k].cap : 1, 1);
        CHECK(sn.count[k] != NULL, "out of memory");
        sn.last[k] = -1;
    }
    resil_ndjson_stats st;
    resil_error e;
    int rc = resil_read_ndjson_safe(path, on_record, on_bad, &sn, false, &st, NULL, &e);
    CHECK(rc == 0, "non-strict read: %s", e.message);
    CHECK((long)st.records == sn.records, "stats say %zu records, %ld delivered", st.records,
          sn.records);
    /* Everything that is wrong, then fail. */
    long missing = 0;
    for (int k = 0; k < WRITERS; k++) {
        for (size_t i = 0; i < slots[k].cap; i++) {
            if (slots[k].status[i] == ACKED && sn.count[k][i] != 1) {
                if (missing++ < 10)
                    fprintf(stderr, "acknowledged record (%d, %zu) is missing\n", k, i);
            }
        }
        free(sn.count[k]);
    }
    if (st.bad_lines)
        show_line(st.first_bad_line);
    CHECK(st.bad_lines == 0 && st.torn_bytes == 0 && missing == 0,
          "%zu bad lines (the first at line %zu), a torn tail of %zu bytes, %ld acknowledged "
          "records missing, out of %ld records read",
          st.bad_lines, st.first_bad_line, st.torn_bytes, missing, sn.records);
    *landed = sn.in_flight_landed;
    return sn.records;
}

static off_t size_of(const char *p)
{
    struct stat st;
    CHECK(stat(p, &st) == 0, "stat %s: %s", p, strerror(errno));
    return st.st_size;
}

/* A torn tail made by hand: skipped and counted, rejected in strict mode,
 * kept by repair, cut by a forced repair. */
static void check_torn_tail(long records)
{
    static const char torn[] = "{\"w\":0,\"i\":99999999,\"pad\":\"ABC";
    size_t tlen = sizeof torn - 1;
    off_t before = size_of(path);
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    CHECK(fd >= 0, "open: %s", strerror(errno));
    CHECK(write(fd, torn, tlen) == (ssize_t)tlen, "write: %s", strerror(errno));
    close(fd);

    resil_ndjson_stats st;
    resil_error e;
    CHECK(resil_read_ndjson_safe(path, NULL, NULL, NULL, false, &st, NULL, &e) == 0,
          "non-strict read with a torn tail: %s", e.message);
    CHECK((long)st.records == records && st.bad_lines == 0 && st.torn_bytes == tlen,
          "with a torn tail: %zu records, %zu bad, %zu torn bytes", st.records, st.bad_lines,
          st.torn_bytes);
    int rc = resil_read_ndjson_safe(path, NULL, NULL, NULL, true, &st, NULL, &e);
    CHECK(rc == RESIL_EPARSE, "strict read of a torn tail returned %d", rc);
    CHECK(e.line == (int)(records + 1), "strict read names line %d, expected %ld", e.line,
          records + 1);

    /* Written by hand, not by resil: repair keeps it unless forced. */
    size_t cut = 0;
    rc = resil_repair_ndjson(path, &cut, NULL, &e);
    CHECK(rc == RESIL_EPARSE && cut == 0 && size_of(path) == before + (off_t)tlen,
          "unforced repair of a tail resil did not write returned %d, cut %zu", rc, cut);
    CHECK(resil_repair_ndjson_force(path, &cut, NULL, &e) == 0, "repair: %s", e.message);
    CHECK(cut == tlen, "repair cut %zu bytes, expected %zu", cut, tlen);
    CHECK(size_of(path) == before, "repair left %lld bytes, expected %lld",
          (long long)size_of(path), (long long)before);
    CHECK(resil_repair_ndjson(path, &cut, NULL, &e) == 0 && cut == 0, "second repair cut %zu",
          cut);
    CHECK(resil_read_ndjson_safe(path, NULL, NULL, NULL, true, &st, NULL, &e) == 0,
          "strict read after repair: %s", e.message);
    CHECK((long)st.records == records && st.torn_bytes == 0, "after repair: %zu records",
          st.records);
}

int main(int argc, char **argv)
{
    long scale = env_long("RESIL_CRASH_SCALE", 1);
    long kills_wanted = argc > 1 ? strtol(argv[1], NULL, 10) : 400 / scale;
    if (kills_wanted < WRITERS)
        kills_wanted = WRITERS;
    uint64_t seed = (uint64_t)env_long("RESIL_CRASH_SEED", 1);
    long max_delay_us = env_long("RESIL_CRASH_MAX_DELAY_US", 3000);
    resil_rng rng;
    resil_rng_seed(&rng, seed);

    snprintf(dir, sizeof dir, "%s/resil-crash-ndjson-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(path, sizeof path, "%s/events.ndjson", dir);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int k = 0; k < WRITERS; k++)
        start(k);
    long kills = 0;
    /* The last WRITERS kills are those of the end. */
    while (kills < kills_wanted - WRITERS) {
        wait_draining((long)(resil_rng_next(&rng) % (unsigned long)(max_delay_us + 1)));
        int k = (int)(resil_rng_next(&rng) % WRITERS);
        stop(k);
        kills++;
        start(k);
    }
    wait_draining((long)(resil_rng_next(&rng) % (unsigned long)(max_delay_us + 1)));
    for (int k = 0; k < WRITERS; k++) {
        stop(k);
        kills++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);

    /* What the next writer would do first: cut a tail that a killed writer
     * of resil left torn (marked), and nothing else. */
    size_t final_cut = 0;
    resil_error re;
    CHECK(resil_repair_ndjson(path, &final_cut, NULL, &re) == 0, "repair after the last kills: %s",
          re.message);
    if (final_cut)
        printf("the last kills left a marked torn tail of %zu bytes: cut\n", final_cut);

    long landed;
    long records = check_log(&landed);
    check_torn_tail(records);

    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    long incarnations = 0;
    for (int k = 0; k < WRITERS; k++)
        incarnations += slots[k].incarnations;
    printf("%ld kills, %ld records checked (seed %llu; %ld writer processes; %ld acknowledged, "
           "all present once; %ld in flight at a kill, %ld of them landed; %lld bytes; "
           "torn tail by hand: skipped, counted, repaired; %.2f s)\n",
           kills, records, (unsigned long long)seed, incarnations, total_acked, total_in_flight,
           landed, (long long)size_of(path), secs);

    for (int k = 0; k < WRITERS; k++)
        free(slots[k].status);
    char lock[700];
    snprintf(lock, sizeof lock, "%s.lock", path);
    unlink(path);
    unlink(lock);
    CHECK(rmdir(dir) == 0, "rmdir %s: %s (unexpected files left)", dir, strerror(errno));
    return 0;
}
