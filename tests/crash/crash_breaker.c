/* tests/crash/crash_breaker.c - kill -9 loop over a circuit breaker shared
 * through its state file.
 *
 * KIDS children hammer one shared breaker (system clock; failure_threshold 3,
 * recovery 1 ms, a window of 20 calls, 2 trial calls at once with 10 ms
 * leases) with random calls: acquire + report (trial calls slow: up to 3 ms,
 * some 12 ms, past their lease) and resil_breaker_call with success, failure and
 * ignored outcomes, plus manual trips, disables and
 * resets, snapshots, and re-opens (also attach_only).  The parent SIGKILLs a
 * random child after a random delay of 0-3 ms, reaps it (with a deadline),
 * checks the breaker and starts a new child in its place.  After every kill:
 *   - resil_breaker_new succeeds (never RESIL_EPARSE);
 *   - with the record's lock held (so the children are held off), the record
 *     passes resil__cb_state_check, the window's counts are the ring's, no
 *     trial lease is held beyond the first 2 slots, and the snapshot is sane:
 *     a state of the five, window calls <= 20, failure rate in [-1, 1], at
 *     most 2 trials in flight, at most 1 ms until half-open (-1 when forced
 *     open);
 *   - every total is >= its value at the previous check (nothing lost).
 * Every QUIESCE kills, all children are killed and then:
 *   - every child had made progress just before (none is wedged on the lock);
 *   - the raw record (before anyone repairs it) is consistent unless marked
 *     dirty, and one lock/unlock makes a dirty one consistent;
 *   - the totals add up to at least the calls the children completed and at
 *     most the calls they started;
 *   - the breaker admits a call within lease + recovery time (plus slack for
 *     scheduling), after a reset when a child left it forced open, and its
 *     refusals' retry hints stay within that bound.
 *
 * Usage: crash_breaker [KILLS]   (default 400; RESIL_CRASH_SCALE=N divides
 * the default, RESIL_CRASH_MAX_DELAY_US=D stretches the delays to 0-D us,
 * RESIL_CRASH_SEED=S picks the seed, default 1). */
#include "internal/store.h"
#include "internal/store_mmap.h"
#include "resil/breaker.h"
#include "resil/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KIDS 3
#define QUIESCE 10
#define NAME "hammered/svc"
#define WINDOW 20
#define TRIALS 2
#define RECOVERY_S 0.001
#define LEASE_S 0.01
/* How long past lease + recovery a quiet breaker may take to admit a call
 * (scheduling, sanitizers). */
#define SLACK_S 2.0

static char dir[512];

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                             \
            fprintf(stderr, "\n(test directory kept: %s)\n", dir);                    \
            kill_all();                                                               \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

/* Shared with the children: progress counters. */
struct shared {
    _Atomic int64_t started;   /* calls begun (before acquire) */
    _Atomic int64_t completed; /* calls whose outcome was counted */
    _Atomic int64_t beat[KIDS];
};

static struct shared *sh;
static pid_t kids[KIDS];

static void kill_all(void)
{
    for (int k = 0; k < KIDS; k++)
        if (kids[k] > 0) {
            kill(kids[k], SIGKILL);
            waitpid(kids[k], NULL, 0);
            kids[k] = 0;
        }
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

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* 0 success, 1 failure, 2 ignored. */
static resil_breaker_verdict classify3(int result, void *arg)
{
    (void)arg;
    return result == 0 ? RESIL_BREAKER_SUCCESS
                       : result == 2 ? RESIL_BREAKER_IGNORE : RESIL_BREAKER_FAILURE;
}

static resil_breaker_opts opts(uint64_t seed)
{
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    o.state_dir = dir;
    o.failure_threshold = 3;
    o.recovery_timeout_s = RECOVERY_S;
    o.window_size = WINDOW;
    o.half_open_max_calls = TRIALS;
    o.half_open_lease_s = LEASE_S;
    o.classify = classify3;
    o.seed = seed;
    return o;
}

/* ---- the children ------------------------------------------------------------- */

static int op_result;
static resil_rng op_rng;

/* Trial calls (made while half-open) take a while, some longer than their
 * lease, so that kills land while leases are held.  Asked once the permit
 * is in hand: the state then says whether it is a trial. */
static void maybe_slow(resil_breaker *b, resil_rng *rng)
{
    if (resil_breaker_get_state(b) != RESIL_BREAKER_HALF_OPEN)
        return;
    unsigned slow = (unsigned)(resil_rng_next(rng) % 100);
    if (slow < 60)
        sleep_us(slow < 6 ? 12000 : (long)(resil_rng_next(rng) % 3000));
}

static int op(void *arg)
{
    maybe_slow(arg, &op_rng);
    return op_result;
}

static resil_breaker *child_open(const resil_breaker_opts *o)
{
    resil_breaker *b;
    resil_error e;
    int rc = resil_breaker_new(&b, NAME, o, &e);
    if (rc != 0) {
        fprintf(stderr, "child %d: resil_breaker_new: %s: %s\n", (int)getpid(),
                resil_err_name(rc), e.message);
        _exit(rc == RESIL_EPARSE ? 4 : 3);
    }
    return b;
}

static void child_main(int slot, uint64_t seed)
{
    resil_rng rng;
    resil_rng_seed(&rng, seed);
    resil_rng_seed(&op_rng, seed + 1);
    resil_breaker_opts o = opts(seed);
    resil_breaker *b = child_open(&o);
    for (;;) {
        /* Per 100000 calls: manual control is rare, as refused calls are
         * fast (a reset every few ms would never let the breaker go
         * half-open by itself). */
        unsigned r = (unsigned)(resil_rng_next(&rng) % 100000);
        int outcome = (int)(resil_rng_next(&rng) % 100);
        outcome = outcome < 45 ? 0 : outcome < 90 ? 1 : 2;
        if (r < 20) { /* re-open */
            resil_breaker_free(b);
            b = child_open(&o);
        } else if (r < 30) { /* a tool's look */
            resil_breaker_opts a = o;
            a.attach_only = true;
            resil_breaker *t = child_open(&a);
            resil_breaker_snapshot s;
            resil_breaker_snapshot_get(t, &s);
            if ((unsigned)s.state > RESIL_BREAKER_DISABLED)
                _exit(7);
            resil_breaker_free(t);
        } else if (r < 34) {
            if (resil_breaker_trip(b) != 0)
                _exit(8);
        } else if (r < 35) {
            if (resil_breaker_disable(b) != 0)
                _exit(8);
        } else if (r < 50) {
            if (resil_breaker_reset(b) != 0)
                _exit(8);
        } else if (r < 1050) {
            resil_breaker_snapshot s;
            resil_breaker_snapshot_get(b, &s);
            if ((unsigned)s.state > RESIL_BREAKER_DISABLED || s.window_calls > WINDOW)
                _exit(7);
        } else {
            atomic_fetch_add(&sh->started, 1);
            if (r % 2) {
                resil_breaker_permit p;
                double wait_s;
                int rc = resil_breaker_acquire(b, &p, &wait_s);
                if (rc == 0) {
                    maybe_slow(b, &rng);
                    if (resil_breaker_report(b, &p, outcome, -1) != 0)
                        _exit(6);
                } else if (rc != RESIL_ECIRCUIT_OPEN) {
                    _exit(5);
                }
            } else {
                op_result = outcome;
                int rc = resil_breaker_call(b, op, b);
                if (rc != outcome && rc != RESIL_ECIRCUIT_OPEN)
                    _exit(5);
            }
            atomic_fetch_add(&sh->completed, 1);
        }
        atomic_fetch_add(&sh->beat[slot], 1);
    }
}

static void spawn(int slot, resil_rng *rng)
{
    uint64_t seed = resil_rng_next(rng) | 1;
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        child_main(slot, seed);
        _exit(9);
    }
    kids[slot] = pid;
}

/* Reaps a child that was sent SIGKILL; a child that ended by itself failed
 * a check (its exit code says which). */
static void reap_killed(int slot)
{
    double t0 = now_s();
    int st;
    for (;;) {
        pid_t r = waitpid(kids[slot], &st, WNOHANG);
        if (r == kids[slot])
            break;
        CHECK(r == 0 || errno == EINTR, "waitpid: %s", strerror(errno));
        CHECK(now_s() - t0 < 10, "child %d not gone 10 s after SIGKILL", (int)kids[slot]);
        sleep_us(100);
    }
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
          "child %d ended by itself: status 0x%x (exit %d: 3 open failed, 4 EPARSE, 5 acquire or "
          "call, 6 report, 7 snapshot, 8 manual control)",
          (int)kids[slot], (unsigned)st, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    kids[slot] = 0;
}

/* ---- the parent's checks ------------------------------------------------------- */

struct totals {
    int64_t successful, failed, ignored, not_permitted;
};

static struct totals last;
static long dirty_found, repaired_checks, forced_resets, waited_admissions, dead_leases;
static double max_admit_s;
static int64_t parent_calls;

static resil_breaker *parent_open(void)
{
    resil_breaker_opts o = opts(7);
    resil_breaker *b = NULL;
    resil_error e;
    int rc = resil_breaker_new(&b, NAME, &o, &e);
    CHECK(rc == 0, "resil_breaker_new: %s: %s", resil_err_name(rc), e.message);
    return b;
}

/* The window's counts recomputed from its ring. */
static void recount(const struct resil__cb_state *st, int32_t *f, int32_t *s)
{
    int32_t ws = atomic_load(&st->window_size), head = atomic_load(&st->window_head),
            count = atomic_load(&st->window_count);
    *f = *s = 0;
    for (int32_t i = 0; i < count; i++) {
        int32_t at = (head - 1 - i + ws) % ws;
        *f += st->ring[at] & 1;
        *s += (st->ring[at] >> 1) & 1;
    }
}

static void check_record(const struct resil__cb_state *st, const char *when)
{
    const char *defect = resil__cb_state_check(st);
    CHECK(defect == NULL, "%s: the record is not sane: %s", when, defect);
    CHECK(strcmp(st->name, NAME) == 0, "%s: the record's name is '%s'", when, st->name);
    CHECK(atomic_load(&st->window_size) == WINDOW, "%s: window size %d", when,
          (int)atomic_load(&st->window_size));
    int32_t f, s;
    recount(st, &f, &s);
    CHECK(f == atomic_load(&st->window_failures) && s == atomic_load(&st->window_slow),
          "%s: window counts %d/%d, ring says %d/%d", when, (int)atomic_load(&st->window_failures),
          (int)atomic_load(&st->window_slow), (int)f, (int)s);
    for (int i = TRIALS; i < RESIL__CB_SLOTS; i++)
        CHECK(atomic_load(&st->slots[i].expires_ns) == 0, "%s: lease in slot %d", when, i);
}

static void check_snapshot(const resil_breaker_snapshot *s, const char *when)
{
    CHECK((unsigned)s->state <= RESIL_BREAKER_DISABLED, "%s: state %d", when, (int)s->state);
    CHECK(s->window_calls >= 0 && s->window_calls <= WINDOW, "%s: %d calls in the window", when,
          s->window_calls);
    CHECK(s->failure_rate == -1 || (s->failure_rate >= 0 && s->failure_rate <= 1),
          "%s: failure rate %g", when, s->failure_rate);
    CHECK(s->half_open_in_flight >= 0 && s->half_open_in_flight <= TRIALS,
          "%s: %d trials in flight", when, s->half_open_in_flight);
    if (s->state == RESIL_BREAKER_FORCED_OPEN)
        CHECK(s->time_until_half_open_s == -1, "%s: forced open, %g s until half-open", when,
              s->time_until_half_open_s);
    else
        CHECK(s->time_until_half_open_s >= 0 && s->time_until_half_open_s <= RECOVERY_S,
              "%s: %g s until half-open", when, s->time_until_half_open_s);
    CHECK(s->consecutive_failures >= 0 && s->open_streak >= 0, "%s: negative counts", when);
    struct totals t = {s->successful, s->failed, s->ignored, s->not_permitted};
    CHECK(t.successful >= last.successful && t.failed >= last.failed &&
              t.ignored >= last.ignored && t.not_permitted >= last.not_permitted,
          "%s: totals went back: %lld/%lld/%lld/%lld after %lld/%lld/%lld/%lld", when,
          (long long)t.successful, (long long)t.failed, (long long)t.ignored,
          (long long)t.not_permitted, (long long)last.successful, (long long)last.failed,
          (long long)last.ignored, (long long)last.not_permitted);
    last = t;
}

/* With children running: open, then hold the record's lock (a store of our
 * own) while checking, so what is seen is a consistent record. */
static void check_live(void)
{
    resil_breaker *b = parent_open();
    resil__store *s;
    resil_error e;
    int rc = resil__store_open_file(&s, dir, NAME, true, 0, 0, &e);
    CHECK(rc == 0, "open the store: %s", e.message);
    CHECK(resil__store_lock(s) == 0, "lock the store");
    check_record(s->st, "after a kill");
    resil_breaker_snapshot snap;
    resil_breaker_snapshot_get(b, &snap);
    check_snapshot(&snap, "after a kill");
    resil__store_unlock(s);
    resil__store_close(s);
    resil_breaker_free(b);
}

/* Every child makes progress: none is stuck on the lock. */
static void check_progress(void)
{
    int64_t before[KIDS];
    for (int k = 0; k < KIDS; k++)
        before[k] = atomic_load(&sh->beat[k]);
    double t0 = now_s();
    for (int k = 0; k < KIDS; k++)
        while (atomic_load(&sh->beat[k]) == before[k]) {
            CHECK(now_s() - t0 < 10, "child %d (slot %d) made no progress in 10 s: wedged",
                  (int)kids[k], k);
            sleep_us(100);
        }
}

static void check_quiet(void)
{
    /* The raw record, before anyone takes the lock. */
    char *path = resil__cb_path(dir, NAME);
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    struct resil__cb_state *raw =
        mmap(NULL, sizeof *raw, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(raw != MAP_FAILED, "mmap: %s", strerror(errno));
    close(fd);
    free(path);
    if (atomic_load(&raw->dirty))
        dirty_found++;
    else
        check_record(raw, "quiet, not dirty");

    resil_breaker *b = parent_open(); /* repairs a dirty record */
    CHECK(atomic_load(&raw->dirty) == 0, "still dirty after an open");
    check_record(raw, "quiet, after an open");
    repaired_checks++;
    munmap(raw, sizeof *raw);

    resil_breaker_snapshot s;
    resil_breaker_snapshot_get(b, &s);
    check_snapshot(&s, "quiet");
    int64_t sum = s.successful + s.failed + s.ignored + s.not_permitted;
    int64_t lo = atomic_load(&sh->completed) + parent_calls,
            hi = atomic_load(&sh->started) + parent_calls;
    CHECK(sum >= lo && sum <= hi,
          "the totals add up to %lld; the children completed %lld calls and started %lld",
          (long long)sum, (long long)lo, (long long)hi);

    dead_leases += s.half_open_in_flight > 0;
    /* Not wedged: a call is admitted within lease + recovery time. */
    if (s.state == RESIL_BREAKER_FORCED_OPEN) {
        double w;
        resil_breaker_permit p;
        CHECK(resil_breaker_acquire(b, &p, &w) == RESIL_ECIRCUIT_OPEN && w == -1,
              "forced open admits a call");
        parent_calls++;
        CHECK(resil_breaker_reset(b) == 0, "reset");
        forced_resets++;
    }
    double t0 = now_s();
    bool waited = false;
    for (;;) {
        resil_breaker_permit p;
        double w = -5;
        int rc = resil_breaker_acquire(b, &p, &w);
        parent_calls++;
        if (rc == 0) {
            CHECK(resil_breaker_record(b, &p, RESIL_BREAKER_SUCCESS, -1) == 0, "record");
            break;
        }
        CHECK(rc == RESIL_ECIRCUIT_OPEN, "acquire: %s", resil_err_name(rc));
        CHECK(w >= 0 && w <= RECOVERY_S, "a retry hint of %g s", w);
        double el = now_s() - t0;
        CHECK(el <= LEASE_S + RECOVERY_S + SLACK_S,
              "no call admitted %.3f s after the last child died (state %s)", el,
              resil_breaker_state_name(resil_breaker_get_state(b)));
        waited = true;
        sleep_us(200);
    }
    double el = now_s() - t0;
    if (el > max_admit_s)
        max_admit_s = el;
    waited_admissions += waited;
    resil_breaker_snapshot_get(b, &s);
    check_snapshot(&s, "quiet, after a call");
    resil_breaker_free(b);
}

int main(int argc, char **argv)
{
    long scale = env_long("RESIL_CRASH_SCALE", 1);
    long kills_wanted = argc > 1 ? strtol(argv[1], NULL, 10) : 400 / scale;
    if (kills_wanted < 1)
        kills_wanted = 1;
    uint64_t seed = (uint64_t)env_long("RESIL_CRASH_SEED", 1);
    long max_delay_us = env_long("RESIL_CRASH_MAX_DELAY_US", 3000);
    resil_rng rng;
    resil_rng_seed(&rng, seed);

    snprintf(dir, sizeof dir, "%s/resil-crash-breaker-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(sh != MAP_FAILED, "mmap: %s", strerror(errno));

    resil_breaker_free(parent_open()); /* created before the children start */

    double t0 = now_s();
    for (int k = 0; k < KIDS; k++)
        spawn(k, &rng);
    long kills = 0, quiets = 0;
    while (kills < kills_wanted) {
        sleep_us((long)(resil_rng_next(&rng) % (unsigned long)(max_delay_us + 1)));
        int victim = (int)(resil_rng_next(&rng) % KIDS);
        CHECK(kill(kids[victim], SIGKILL) == 0, "kill: %s", strerror(errno));
        reap_killed(victim);
        kills++;
        check_live();
        if (kills % QUIESCE == 0) {
            spawn(victim, &rng);
            check_progress();
            sleep_us((long)(resil_rng_next(&rng) % (unsigned long)(max_delay_us + 1)));
            for (int k = 0; k < KIDS; k++)
                CHECK(kill(kids[k], SIGKILL) == 0, "kill: %s", strerror(errno));
            for (int k = 0; k < KIDS; k++) {
                reap_killed(k);
                kills++;
            }
            check_quiet();
            quiets++;
            for (int k = 0; k < KIDS; k++)
                spawn(k, &rng);
        } else {
            spawn(victim, &rng);
        }
    }
    kill_all();
    check_quiet();
    quiets++;
    double secs = now_s() - t0;

    resil_breaker *b = parent_open();
    resil_breaker_snapshot s;
    resil_breaker_snapshot_get(b, &s);
    resil_breaker_free(b);
    printf("%ld kills, %ld quiet checks (seed %llu; %lld calls completed; totals %lld ok, %lld "
           "failed, %lld ignored, %lld refused; epoch %llu; dirty record left by a kill %ld "
           "times; forced open %ld times; trial leases of dead children %ld times; a call had "
           "to wait in %ld quiet checks, at most %.4f s; %.2f s)\n",
           kills, quiets, (unsigned long long)seed, (long long)atomic_load(&sh->completed),
           (long long)s.successful, (long long)s.failed, (long long)s.ignored,
           (long long)s.not_permitted, (unsigned long long)s.epoch, dirty_found, forced_resets,
           dead_leases, waited_admissions, max_admit_s, secs);
    CHECK(s.successful > 0 && s.failed > 0 && s.ignored > 0 && s.not_permitted > 0,
          "some kind of outcome never happened");
    CHECK(s.epoch >= 50, "too few transitions (%llu) for the test to mean much",
          (unsigned long long)s.epoch);

    char *path = resil__cb_path(dir, NAME);
    unlink(path);
    free(path);
    CHECK(rmdir(dir) == 0, "rmdir %s: %s (unexpected files left)", dir, strerror(errno));
    return 0;
}
