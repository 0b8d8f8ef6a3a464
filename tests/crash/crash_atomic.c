/* tests/crash/crash_atomic.c - kill -9 loop over atomic replace.
 *
 * A writer child loops resil_write_json_safe(path, {"version": n, "writer":
 * w, "pad": <3000 bytes that depend on n>}) for n = first, first + stride,
 * ... and after each successful write reports n to the parent with one
 * write(2) of an int on a pipe.  The parent SIGKILLs it after a random delay
 * of 0-3 ms (seeded resil_rng), reads every reported n, then checks:
 *   - the file parses (resil_read_json_safe);
 *   - its version v is the last reported one or the one in flight (which
 *     may or may not have landed): nothing older, nothing invented;
 *   - its pad is the one of version v, intact.
 * The next round continues after v (and after anything that may have landed).
 * In about a third of the rounds two writers run at once on the same file
 * (versions interleaved: writer 0 the even offsets, writer 1 the odd ones);
 * v must then be the last version some writer completed or the one it had in
 * flight.  Most rounds use RESIL_DURABLE_NONE, every 8th RESIL_DURABLE_FULL
 * (durability does not change atomicity against a process crash).
 * At the end one more write sweeps the temp files of the dead writers, and no
 * ".resil-tmp." file may remain.
 *
 * Usage: crash_atomic [KILLS]   (default 2000; the environment variable
 * RESIL_CRASH_SCALE=N divides the default, for sanitizer builds;
 * RESIL_CRASH_MAX_DELAY_US=D stretches the 0-3 ms delays to 0-D us, for
 * sanitizer builds where writers start late; RESIL_CRASH_SEED=S picks the
 * seed, default 1). */
#include "resil/clock.h"
#include "resil/files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAD_LEN 3000
#define MAX_WRITERS 2

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

/* The pad of version n: PAD_LEN letters that depend on n. */
static void make_pad(char *buf, long n)
{
    for (int i = 0; i < PAD_LEN; i++)
        buf[i] = (char)('a' + (int)(((unsigned long)n * 7u + (unsigned)i) % 26u));
    buf[PAD_LEN] = '\0';
}

/* Files in dir whose name contains needle. */
static int count_files(const char *needle)
{
    DIR *d = opendir(dir);
    CHECK(d != NULL, "opendir %s: %s", dir, strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, needle) != NULL;
    closedir(d);
    return n;
}

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

/* The writer child: never returns. */
static void writer_main(int report_fd, long first, long stride, int writer,
                        resil_durability durability)
{
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.durability = durability;
    o.lock_timeout_s = 30;
    static char pad[PAD_LEN + 1];
    for (long n = first;; n += stride) {
        make_pad(pad, n);
        json_t *doc = json_pack("{s:I, s:i, s:s}", "version", (json_int_t)n, "writer", writer,
                                "pad", pad);
        if (!doc)
            _exit(4);
        resil_error e;
        int rc = resil_write_json_safe(path, doc, &o, &e);
        json_decref(doc);
        if (rc != 0) {
            fprintf(stderr, "writer %d: write of version %ld failed: %s\n", writer, n, e.message);
            _exit(3);
        }
        int v = (int)n;
        if (write(report_fd, &v, sizeof v) != (ssize_t)sizeof v)
            _exit(5);
    }
}

/* Reads every int the child reported; checks they are first, first + stride,
 * ...  Returns how many; *last receives the last one. */
static long drain(int fd, long first, long stride, long *last)
{
    long count = 0, expect = first;
    char buf[4096];
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - have);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n >= 0, "read from the pipe: %s", strerror(errno));
        if (n == 0)
            break;
        have += (size_t)n;
        size_t off = 0;
        for (; have - off >= sizeof(int); off += sizeof(int)) {
            int v;
            memcpy(&v, buf + off, sizeof v);
            CHECK(v == expect, "writer reported version %d, expected %ld", v, expect);
            *last = v;
            expect += stride;
            count++;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
    }
    CHECK(have == 0, "%zu stray bytes on the pipe", have);
    return count;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Reads the file; checks it parses and its pad matches; returns version and
 * writer. */
static long check_file(int *writer)
{
    json_t *doc;
    resil_error e;
    int rc = resil_read_json_safe(&doc, path, NULL, &e);
    CHECK(rc == 0, "the file does not read back: %s", e.message);
    json_t *jv = json_object_get(doc, "version"), *jw = json_object_get(doc, "writer"),
           *jp = json_object_get(doc, "pad");
    CHECK(json_is_integer(jv) && json_is_integer(jw) && json_is_string(jp),
          "the file lacks version, writer or pad");
    long v = (long)json_integer_value(jv);
    *writer = (int)json_integer_value(jw);
    static char want[PAD_LEN + 1];
    make_pad(want, v);
    CHECK(json_string_length(jp) == PAD_LEN && memcmp(json_string_value(jp), want, PAD_LEN) == 0,
          "the pad of version %ld is damaged (length %zu)", v, json_string_length(jp));
    json_decref(doc);
    return v;
}

int main(int argc, char **argv)
{
    long scale = env_long("RESIL_CRASH_SCALE", 1);
    long kills_wanted = argc > 1 ? strtol(argv[1], NULL, 10) : 2000 / scale;
    if (kills_wanted < 1)
        kills_wanted = 1;
    uint64_t seed = (uint64_t)env_long("RESIL_CRASH_SEED", 1);
    long max_delay_us = env_long("RESIL_CRASH_MAX_DELAY_US", 3000);
    resil_rng rng;
    resil_rng_seed(&rng, seed);

    snprintf(dir, sizeof dir, "%s/resil-crash-atomic-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(path, sizeof path, "%s/state.json", dir);

    /* Version 0, written by the parent. */
    static char pad[PAD_LEN + 1];
    make_pad(pad, 0);
    json_t *doc = json_pack("{s:i, s:i, s:s}", "version", 0, "writer", 0, "pad", pad);
    resil_error e;
    CHECK(resil_write_json_safe(path, doc, NULL, &e) == 0, "first write: %s", e.message);
    json_decref(doc);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long kills = 0, rounds = 0, pair_rounds = 0, full_rounds = 0, acked = 0, landed = 0,
         idle = 0, checked = 0;
    int max_temps = 0;
    long prev = 0; /* the version in the file */
    long next = 1; /* the first version of the next round */
    while (kills < kills_wanted) {
        int nw = (resil_rng_next(&rng) % 3 == 0 && kills_wanted - kills >= 2) ? 2 : 1;
        resil_durability dur = rounds % 8 == 7 ? RESIL_DURABLE_FULL : RESIL_DURABLE_NONE;
        long stride = nw;
        int fds[MAX_WRITERS][2];
        pid_t kids[MAX_WRITERS];
        for (int w = 0; w < nw; w++)
            CHECK(pipe(fds[w]) == 0, "pipe: %s", strerror(errno));
        for (int w = 0; w < nw; w++) {
            kids[w] = fork();
            CHECK(kids[w] >= 0, "fork: %s", strerror(errno));
            if (kids[w] == 0) {
                for (int k = 0; k < nw; k++) {
                    close(fds[k][0]);
                    if (k != w)
                        close(fds[k][1]);
                }
                writer_main(fds[w][1], next + w, stride, w, dur);
            }
        }
        for (int w = 0; w < nw; w++)
            close(fds[w][1]);

        sleep_us((long)(resil_rng_next(&rng) % (unsigned long)(max_delay_us + 1)));

        for (int w = 0; w < nw; w++)
            CHECK(kill(kids[w], SIGKILL) == 0, "kill: %s", strerror(errno));
        long last[MAX_WRITERS], count[MAX_WRITERS], total = 0;
        for (int w = 0; w < nw; w++) {
            int st;
            CHECK(waitpid(kids[w], &st, 0) == kids[w], "waitpid: %s", strerror(errno));
            CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                  "writer %d ended by itself (status 0x%x)", w, (unsigned)st);
            kills++;
            last[w] = -1;
            count[w] = drain(fds[w][0], next + w, stride, &last[w]);
            close(fds[w][0]);
            total += count[w];
        }
        acked += total;

        int fw;
        long v = check_file(&fw);
        checked++;
        /* The candidates: per writer the last completed version and the one
         * in flight; the previous content only if nothing completed. */
        bool ok = total == 0 && v == prev;
        long top = prev;
        for (int w = 0; w < nw; w++) {
            long inflight = count[w] ? last[w] + stride : next + w;
            if (count[w] && v == last[w] && fw == w)
                ok = true;
            if (v == inflight && fw == w) {
                ok = true;
                landed++;
            }
            if (inflight > top)
                top = inflight;
        }
        if (nw == 2)
            CHECK(ok, "round %ld (2 writers, start %ld): the file holds version %ld of writer %d; "
                      "writer 0 completed %ld (last %ld), writer 1 completed %ld (last %ld); "
                      "before the round it held %ld",
                  rounds, next, v, fw, count[0], last[0], count[1], last[1], prev);
        else
            CHECK(ok, "round %ld (start %ld): the file holds version %ld; the writer completed "
                      "%ld (last %ld); before the round it held %ld",
                  rounds, next, v, count[0], last[0], prev);
        if (total == 0 && v == prev)
            idle++;
        prev = v;
        next = top + 1;
        rounds++;
        pair_rounds += nw == 2;
        full_rounds += dur == RESIL_DURABLE_FULL;
        int temps = count_files(".resil-tmp.");
        if (temps > max_temps)
            max_temps = temps;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);

    /* One more write sweeps what the dead writers left. */
    make_pad(pad, next);
    doc = json_pack("{s:I, s:i, s:s}", "version", (json_int_t)next, "writer", 0, "pad", pad);
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.durability = RESIL_DURABLE_NONE;
    CHECK(resil_write_json_safe(path, doc, &o, &e) == 0, "final write: %s", e.message);
    json_decref(doc);
    int fw;
    CHECK(check_file(&fw) == next, "the final write did not land");
    checked++;
    int temps = count_files(".resil-tmp.");
    CHECK(temps == 0, "%d temp files remain after the final write", temps);

    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%ld kills, %ld versions checked (seed %llu; %ld rounds, %ld with 2 writers, %ld with "
           "DURABLE_FULL; %ld acknowledged writes; the in-flight write had landed in %ld rounds; "
           "no write landed in %ld rounds; at most %d stale temps between rounds; %.2f s)\n",
           kills, checked, (unsigned long long)seed, rounds, pair_rounds, full_rounds, acked,
           landed, idle, max_temps, secs);

    char lock[700];
    snprintf(lock, sizeof lock, "%s.lock", path);
    unlink(path);
    unlink(lock);
    CHECK(rmdir(dir) == 0, "rmdir %s: %s (unexpected files left)", dir, strerror(errno));
    return 0;
}
