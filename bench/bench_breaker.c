/* bench/bench_breaker.c - what a circuit breaker costs.
 *
 * The headline figure is cb_closed_noop: resil_breaker_call(b, noop, NULL) on
 * a process-local breaker in the CLOSED state with the default rule
 * (consecutive failures only), against a direct call of the same no-op
 * through a function pointer the compiler cannot see through.  The targets
 * (issue: benchmarks) are an overhead of at most 8 ns with one thread, and
 * with two threads calling the same breaker at once at most 1.3x the
 * one-thread time per call and thread; no allocation, no clock read and no
 * shared cache line written per call.  The two-step form (acquire, call,
 * report) is measured the same way.
 *
 * Every closed-path loop is timed with the wall clock and with the thread's
 * CPU time (which leaves out time descheduled on a busy machine).  The
 * two-thread scaling verdict uses the paired ratio: the median over runs of
 * (two-thread / one-thread) within each run; the ratios of the medians and of
 * the minimums are printed too.  Controls beside it: the same calls with each
 * thread on a breaker of its own (nothing shared), and the fast path written
 * by hand without resil (a read of a shared word, the op, a per-thread counter
 * bumped atomically or by load + store): what the machine itself does when
 * two threads run.
 *
 * Also measured: the process-shared breaker (opts.state_dir = a temp dir)
 * closed, with one and two threads and with two processes (each with its own
 * handle on the same state file); the failure path (a failing op on a breaker
 * whose threshold is never reached) of the local and the shared breaker; and
 * cb_open_reject, an acquire refused by an OPEN breaker (plus
 * resil_breaker_call on it, a shared one, and a FORCED_OPEN one).
 *
 * Counted, not assumed: this file interposes malloc & co., clock_gettime,
 * gettimeofday, time, pthread_mutex_lock/trylock, fcntl/fcntl64 (lock
 * commands only) and flock (the executable's definitions win over libc's for
 * the whole process, including the statically linked libresil) and counts
 * the calls per thread; and the breakers it checks get a counting resil_clock
 * (opts.clock).  Over 1,000,000 closed calls of every closed variant (local
 * and shared, one and two threads) there must be no allocation, no clock read
 * (direct or through the injected clock), no lock, no failed call, and the
 * breaker's own success count must have grown by exactly the number of calls.
 * If any of that fails, the bench exits 1.
 *
 * Output: one line per figure, "bench <name> key=value ...", "check ..."
 * lines for the counts, "compare-breaker ..." / "compare-reject ..." lines
 * that bench/run.sh puts beside the peers (cockatiel, opossum), and
 * "verdict ..." lines against the targets.
 *
 * Usage: bench_breaker [--runs R] [--scale F] [--dir D]
 *   R runs per figure (default 7; the median and the minimum are reported);
 *   F multiplies every iteration count (default 1; 0.1 for a quick look);
 *   D where the shared breakers' temp state directory is made (default
 *     $TMPDIR or /tmp; it is removed at the end).
 * This is a benchmark, not a test: it exits 0 when a timing target is missed,
 * but 1 when a count check fails (those are facts, not timings), 2 on setup
 * errors. */
#define _GNU_SOURCE
#include "resil/breaker.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

/* ---- interposed allocator, clocks and locks ---------------------------------------- */

#include "bench_alloc.h"
#include "bench_locks.h"

static _Thread_local unsigned long long t_clock, t_filelock;

typedef int (*gettimeofday_fn)(struct timeval *tv, void *tz);
typedef time_t (*time_fn)(time_t *t);
typedef int (*fcntl_fn)(int fd, int cmd, ...);
typedef int (*flock_fn)(int fd, int op);
static gettimeofday_fn real_gettimeofday;
static time_fn real_time;
static fcntl_fn real_fcntl, real_fcntl64;
static flock_fn real_flock;

/* Called first thing in main, before any thread exists. */
static int resolve_real(void)
{
    real_gettimeofday = (gettimeofday_fn)dlsym(RTLD_NEXT, "gettimeofday");
    real_time = (time_fn)dlsym(RTLD_NEXT, "time");
    real_fcntl = (fcntl_fn)dlsym(RTLD_NEXT, "fcntl");
    real_fcntl64 = (fcntl_fn)dlsym(RTLD_NEXT, "fcntl64");
    real_flock = (flock_fn)dlsym(RTLD_NEXT, "flock");
    if (!real_fcntl64)
        real_fcntl64 = real_fcntl;
    return bench_locks_resolve() == 0 && real_gettimeofday && real_time && real_fcntl &&
                   real_flock
               ? 0
               : -1;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    t_clock++;
    return real_clock_gettime(id, ts);
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    t_clock++;
    return real_gettimeofday(tv, tz);
}

time_t time(time_t *t)
{
    t_clock++;
    return real_time(t);
}

static int is_lock_cmd(int cmd)
{
    return cmd == F_SETLK || cmd == F_SETLKW
#ifdef F_OFD_SETLK
           || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW
#endif
        ;
}

/* Every fcntl command resil could use takes an int or a pointer; both are
 * passed in one register on the ABIs we run on. */
static int fcntl_common(fcntl_fn real, int fd, int cmd, va_list ap)
{
    void *arg = va_arg(ap, void *);
    if (is_lock_cmd(cmd)) {
        const struct flock *fl = arg;
        if (fl && fl->l_type != F_UNLCK)
            t_filelock++;
    }
    return real(fd, cmd, arg);
}

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    int rc = fcntl_common(real_fcntl, fd, cmd, ap);
    va_end(ap);
    return rc;
}

int fcntl64(int fd, int cmd, ...);
int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    int rc = fcntl_common(real_fcntl64, fd, cmd, ap);
    va_end(ap);
    return rc;
}

int flock(int fd, int op)
{
    if (!(op & LOCK_UN))
        t_filelock++;
    return real_flock(fd, op);
}

/* ---- helpers --------------------------------------------------------------------- */

static double scale = 1.0;
static int runs = 7;
static int check_failures;


static long iters(double n)
{
    return scaled_iters(n, scale);
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_breaker: %s failed: %d (%s)\n", what, rc, resil_strerror(rc));
    exit(2);
}

/* ---- the ops ------------------------------------------------------------------------ */

/* A no-op that succeeds.  noinline plus an empty asm: it is a real call that
 * does nothing, and the compiler cannot drop it. */
__attribute__((noinline)) static int noop(void *arg)
{
    (void)arg;
    __asm__ volatile("" ::: "memory");
    return 0;
}

/* The same, failing. */
__attribute__((noinline)) static int fail_op(void *arg)
{
    (void)arg;
    __asm__ volatile("" ::: "memory");
    return -1;
}

/* Read through a volatile: the compiler cannot inline or devirtualise it. */
static int (*volatile direct_op)(void *arg) = noop;

/* ---- a clock that counts its reads --------------------------------------------------- */

typedef struct counting_clock {
    resil_clock clock;
    atomic_ullong mono, wall, sleeps;
} counting_clock;

static int64_t cc_mono(void *ctx)
{
    atomic_fetch_add_explicit(&((counting_clock *)ctx)->mono, 1, memory_order_relaxed);
    return now_ns();
}

static int64_t cc_wall(void *ctx)
{
    atomic_fetch_add_explicit(&((counting_clock *)ctx)->wall, 1, memory_order_relaxed);
    return bench_clock_ns(CLOCK_REALTIME);
}

static int cc_sleep(void *ctx, int64_t ns, resil_cancel *cancel)
{
    (void)ns;
    (void)cancel;
    /* never sleeps: a bug must not hang the bench */
    atomic_fetch_add_explicit(&((counting_clock *)ctx)->sleeps, 1, memory_order_relaxed);
    return 0;
}

static counting_clock cclock;

static void counting_clock_init(counting_clock *cc)
{
    memset(cc, 0, sizeof *cc);
    cc->clock.monotonic_ns = cc_mono;
    cc->clock.wall_ns = cc_wall;
    cc->clock.sleep_ns = cc_sleep;
    cc->clock.ctx = cc;
}

/* ---- breakers ------------------------------------------------------------------------ */

static char state_dir[4096];

/* A breaker with the default rule (consecutive failures, threshold 5).
 * shared: state in state_dir; counting: the counting clock; else the
 * system clock.  threshold/recovery 0: defaults. */
static resil_breaker *make_breaker(const char *name, bool shared, bool counting, int threshold,
                                   double recovery_s)
{
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    o.state_dir = shared ? state_dir : "";
    o.clock = counting ? &cclock.clock : NULL;
    o.failure_threshold = threshold;
    o.recovery_timeout_s = recovery_s;
    o.seed = 1;
    resil_breaker *b = NULL;
    resil_error err;
    memset(&err, 0, sizeof err);
    int rc = resil_breaker_new(&b, name, &o, &err);
    if (rc != 0) {
        fprintf(stderr, "bench_breaker: resil_breaker_new(%s) failed: %d (%s) %s\n", name, rc,
                resil_strerror(rc), err.message);
        exit(2);
    }
    if (resil_breaker_is_shared(b) != shared) {
        fprintf(stderr, "bench_breaker: breaker %s: is_shared=%d, wanted %d\n", name,
                (int)resil_breaker_is_shared(b), (int)shared);
        exit(2);
    }
    return b;
}

static void remove_state_dir(void)
{
    if (!state_dir[0])
        return;
    DIR *d = opendir(state_dir);
    if (d) {
        struct dirent *e;
        char path[4096 + 256];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", state_dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(state_dir);
}

/* ---- closed-state loops ------------------------------------------------------------------ */

enum { K_DIRECT, K_CALL, K_TWOSTEP, K_FAIL_CALL, K_FLOOR_ATOMIC, K_FLOOR_PLAIN };

static const char *const kind_names[] = {"direct", "call", "twostep", "fail_call",
                                         "floor_atomic", "floor_plain"};

/* The floor: what the closed fast path must do at least, written by hand
 * with no resil.  Load a shared read-only state word (acquire), call the op,
 * add one to this thread's own counter, 128 bytes away from every other
 * thread's: with an atomic read-modify-write (floor_atomic), or with a
 * relaxed load and store, which is enough when a counter has one writer
 * (floor_plain).  With two threads it shows what the machine itself does
 * to the per-thread cost, so a breaker's scaling can be judged against it. */
static _Atomic uint64_t floor_word;
static struct {
    _Alignas(128) _Atomic int64_t n;
} floor_stripes[8];
static _Thread_local int floor_slot; /* 0: the main thread; jobs take 1.. */

/* n calls of kind k on b; returns how many did not return what they should
 * (0 for closed successes, -1 for the failing op). */
static long run_kind(resil_breaker *b, int k, long n)
{
    long bad = 0;
    switch (k) {
    case K_DIRECT:
        for (long i = 0; i < n; i++)
            bad += direct_op(NULL) != 0;
        break;
    case K_CALL:
        for (long i = 0; i < n; i++)
            bad += resil_breaker_call(b, noop, NULL) != 0;
        break;
    case K_TWOSTEP:
        for (long i = 0; i < n; i++) {
            resil_breaker_permit p;
            if (resil_breaker_acquire(b, &p, NULL) != 0) {
                bad++;
                continue;
            }
            int rc = direct_op(NULL);
            bad += resil_breaker_report(b, &p, rc, -1) != 0;
        }
        break;
    case K_FAIL_CALL:
        for (long i = 0; i < n; i++)
            bad += resil_breaker_call(b, fail_op, NULL) != -1;
        break;
    case K_FLOOR_ATOMIC:
    case K_FLOOR_PLAIN: {
        _Atomic int64_t *c = &floor_stripes[floor_slot].n;
        bool plain = k == K_FLOOR_PLAIN;
        for (long i = 0; i < n; i++) {
            uint64_t w = atomic_load_explicit(&floor_word, memory_order_acquire);
            if (w & 0xff) {
                bad++;
                continue;
            }
            int rc = direct_op(NULL);
            if (plain)
                atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                                      memory_order_relaxed);
            else
                atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
            bad += rc != 0;
        }
        break;
    }
    }
    return bad;
}

typedef struct counts {
    unsigned long long alloc, clock, mutex, filelock;
} counts;

static counts thread_counts(void)
{
    counts c = {t_alloc, t_clock, t_mutex, t_filelock};
    return c;
}

static counts counts_sub(counts b, counts a)
{
    counts d = {b.alloc - a.alloc, b.clock - a.clock, b.mutex - a.mutex, b.filelock - a.filelock};
    return d;
}

/* One thread's share of a two-thread run. */
typedef struct __attribute__((aligned(64))) job {
    resil_breaker *b;
    int kind;
    long n;
    pthread_barrier_t *start;
    double ns_per_op, cpu_ns_per_op;
    int slot;
    long bad;
    counts used; /* what the timed loop did */
} job;

static void *job_thread(void *arg)
{
    job *j = arg;
    floor_slot = j->slot;
    run_kind(j->b, j->kind, j->n / 20 + 1); /* warm-up (and any per-thread set-up) */
    pthread_barrier_wait(j->start);
    counts c0 = thread_counts();
    int64_t u0 = cpu_ns(), t0 = now_ns();
    j->bad = run_kind(j->b, j->kind, j->n);
    int64_t t1 = now_ns(), u1 = cpu_ns();
    j->used = counts_sub(thread_counts(), c0);
    j->ns_per_op = (double)(t1 - t0) / (double)j->n;
    j->cpu_ns_per_op = (double)(u1 - u0) / (double)j->n;
    return NULL;
}

/* Runs kind k on `threads` threads (1: on this thread, after a warm-up);
 * returns the mean over threads of wall-clock ns per call (and in *cpu, when
 * not NULL, of thread-CPU-time ns per call), and sums bad and counts.  With
 * two threads, the second uses b2 when it is not NULL. */
static double run_threads2(resil_breaker *b, resil_breaker *b2, int k, long n, int threads,
                           long *bad, counts *used, double *cpu)
{
    job jobs[2];
    memset(jobs, 0, sizeof jobs);
    if (threads == 1) {
        run_kind(b, k, n / 20 + 1);
        counts c0 = thread_counts();
        int64_t u0 = cpu_ns(), t0 = now_ns();
        *bad = run_kind(b, k, n);
        int64_t t1 = now_ns(), u1 = cpu_ns();
        *used = counts_sub(thread_counts(), c0);
        if (cpu)
            *cpu = (double)(u1 - u0) / (double)n;
        return (double)(t1 - t0) / (double)n;
    }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads);
    pthread_t tid[2];
    for (int t = 0; t < threads; t++) {
        jobs[t].b = t == 1 && b2 ? b2 : b;
        jobs[t].kind = k;
        jobs[t].n = n;
        jobs[t].start = &start;
        jobs[t].slot = t + 1;
        int rc = pthread_create(&tid[t], NULL, job_thread, &jobs[t]);
        if (rc != 0)
            die("pthread_create", -rc);
    }
    double ns = 0, cns = 0;
    *bad = 0;
    memset(used, 0, sizeof *used);
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        ns += jobs[t].ns_per_op / threads;
        cns += jobs[t].cpu_ns_per_op / threads;
        *bad += jobs[t].bad;
        used->alloc += jobs[t].used.alloc;
        used->clock += jobs[t].used.clock;
        used->mutex += jobs[t].used.mutex;
        used->filelock += jobs[t].used.filelock;
    }
    pthread_barrier_destroy(&start);
    if (cpu)
        *cpu = cns;
    return ns;
}

static double run_threads(resil_breaker *b, int k, long n, int threads, long *bad, counts *used,
                          double *cpu)
{
    return run_threads2(b, NULL, k, n, threads, bad, used, cpu);
}

/* Two processes, each with its own handle on the shared breaker `name` (the
 * same state file), run kind k n times at once; returns the mean over the
 * processes of wall-clock ns per call (thread CPU time in *cpu), or exits 2. */
static double run_procs(const char *name, int k, long n, double *cpu)
{
    enum { P = 2 };
    int ready[2], go[2], res[2];
    if (pipe(ready) || pipe(go) || pipe(res))
        die("pipe", -errno);
    pid_t pid[P];
    for (int i = 0; i < P; i++) {
        pid[i] = fork();
        if (pid[i] < 0)
            die("fork", -errno);
        if (pid[i] == 0) {
            resil_breaker *b = make_breaker(name, true, false, 0, 0);
            run_kind(b, k, n / 20 + 1);
            char c = 'r';
            if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
                _exit(2);
            int64_t u0 = cpu_ns(), t0 = now_ns();
            long bad = run_kind(b, k, n);
            int64_t t1 = now_ns(), u1 = cpu_ns();
            double out[3] = {(double)(t1 - t0) / (double)n, (double)(u1 - u0) / (double)n,
                             (double)bad};
            resil_breaker_free(b);
            _exit(write(res[1], out, sizeof out) == (ssize_t)sizeof out ? 0 : 2);
        }
    }
    char c;
    for (int i = 0; i < P; i++)
        if (read(ready[0], &c, 1) != 1)
            die("read (child ready)", -EIO);
    char gos[P];
    memset(gos, 'g', sizeof gos);
    if (write(go[1], gos, sizeof gos) != (ssize_t)sizeof gos)
        die("write (go)", -EIO);
    double ns = 0, cns = 0, bad = 0;
    for (int i = 0; i < P; i++) {
        double out[3];
        if (read(res[0], out, sizeof out) != (ssize_t)sizeof out)
            die("read (child result)", -EIO);
        ns += out[0] / P;
        cns += out[1] / P;
        bad += out[2];
    }
    for (int i = 0; i < P; i++) {
        int st;
        if (waitpid(pid[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            die("a child process", -ECHILD);
    }
    close(ready[0]), close(ready[1]), close(go[0]), close(go[1]), close(res[0]), close(res[1]);
    if (bad) {
        fprintf(stderr, "bench_breaker: %.0f calls failed in the child processes\n", bad);
        exit(2);
    }
    *cpu = cns;
    return ns;
}

/* ---- checks: the closed fast path, counted --------------------------------------------------- */

static int64_t snap_successful(resil_breaker *b)
{
    resil_breaker_snapshot s;
    resil_breaker_snapshot_get(b, &s);
    return s.successful;
}

static void check_closed(const char *breaker_kind, resil_breaker *b, bool counting, int k,
                         int threads, long n)
{
    /* Warm-up so one-time set-up (a thread's stripe, say) is not counted:
     * run_threads warms each thread before its timed loop. */
    unsigned long long m0 = atomic_load(&cclock.mono), w0 = atomic_load(&cclock.wall),
                       s0 = atomic_load(&cclock.sleeps);
    long bad = 0;
    counts used;
    int64_t succ0 = snap_successful(b);
    run_threads(b, k, n, threads, &bad, &used, NULL);
    int64_t succ1 = snap_successful(b);
    unsigned long long mono = atomic_load(&cclock.mono) - m0, wall = atomic_load(&cclock.wall) - w0,
                       sl = atomic_load(&cclock.sleeps) - s0;
    /* The warm-up calls count too, so successes grow by at least the
     * timed calls and by exactly timed + warm-up. */
    long warm = n / 20 + 1;
    int64_t want = (int64_t)threads * (n + warm);
    resil_breaker_state st = resil_breaker_get_state(b);
    int ok = bad == 0 && used.alloc == 0 && used.clock == 0 && used.mutex == 0 &&
             used.filelock == 0 && mono == 0 && wall == 0 && sl == 0 && succ1 - succ0 == want &&
             st == RESIL_BREAKER_CLOSED;
    if (!ok)
        check_failures++;
    printf("check cb_closed breaker=%s clock=%s variant=%s threads=%d calls=%ld failed_calls=%ld "
           "allocs=%llu clock_reads=%llu clock_cb_monotonic=%llu clock_cb_wall=%llu "
           "clock_cb_sleep=%llu mutex_locks=%llu file_locks=%llu successes_counted=%lld "
           "successes_expected=%lld state=%s ok=%d\n",
           breaker_kind, counting ? "counting" : "system", kind_names[k], threads,
           (long)threads * n, bad, used.alloc, used.clock, counting ? mono : 0ULL,
           counting ? wall : 0ULL, counting ? sl : 0ULL, used.mutex, used.filelock,
           (long long)(succ1 - succ0), (long long)want, resil_breaker_state_name(st), ok);
}

/* The zeros below mean something only if the counters see the library's
 * calls: make it allocate, read the system clock, take its mutex and a
 * shared breaker's file lock, and check that each was counted. */
static void check_interposition(void)
{
    counts c0 = thread_counts();
    resil_breaker *b = make_breaker("check-interpose", false, false, 0, 0);
    counts c1 = thread_counts();
    (void)resil_clock_monotonic_ns(NULL);
    counts c2 = thread_counts();
    int rc = resil_breaker_trip(b);
    counts c3 = thread_counts();
    resil_breaker *s = make_breaker("check-interpose-shared", true, false, 0, 0);
    counts c4 = thread_counts();
    int rc2 = resil_breaker_trip(s);
    counts c5 = thread_counts();
    unsigned long long allocs = counts_sub(c1, c0).alloc, clocks = counts_sub(c2, c1).clock,
                       mutexes = counts_sub(c3, c2).mutex, flocks = counts_sub(c5, c4).filelock;
    int ok = rc == 0 && rc2 == 0 && allocs > 0 && clocks > 0 && mutexes > 0 && flocks > 0;
    if (!ok)
        check_failures++;
    printf("check interposition allocs_in_breaker_new=%llu clock_reads_in_system_clock=%llu "
           "mutex_locks_in_trip=%llu file_locks_in_shared_trip=%llu ok=%d\n",
           allocs, clocks, mutexes, flocks, ok);
    resil_breaker_free(b);
    resil_breaker_free(s);
}

static void run_checks(void)
{
    long n = 1000000;
    check_interposition();
    resil_breaker *lc = make_breaker("check-local", false, true, 0, 0);
    resil_breaker *ls = make_breaker("check-local-sys", false, false, 0, 0);
    resil_breaker *sc = make_breaker("check-shared", true, true, 0, 0);
    resil_breaker *ss = make_breaker("check-shared-sys", true, false, 0, 0);
    check_closed("local", lc, true, K_CALL, 1, n);
    check_closed("local", lc, true, K_TWOSTEP, 1, n);
    check_closed("local", ls, false, K_CALL, 1, n);
    check_closed("local", lc, true, K_CALL, 2, n);
    check_closed("local", lc, true, K_TWOSTEP, 2, n);
    check_closed("shared", sc, true, K_CALL, 1, n);
    check_closed("shared", sc, true, K_TWOSTEP, 1, n);
    check_closed("shared", ss, false, K_CALL, 1, n);
    check_closed("shared", sc, true, K_CALL, 2, n);
    resil_breaker_free(lc);
    resil_breaker_free(ls);
    resil_breaker_free(sc);
    resil_breaker_free(ss);
}

/* ---- cb_closed_noop: local and shared, one and two threads ------------------------------------ */

typedef struct figure {
    const char *name;   /* bench line name */
    const char *breaker; /* local / shared / none */
    int kind;
    int threads;
    double n;
    stats st;  /* wall clock */
    stats cpu; /* thread CPU time */
    long iters;
} figure;

enum {
    F_DIRECT_1,
    F_CALL_1,
    F_TWOSTEP_1,
    F_FLOOR_ATOMIC_1,
    F_FLOOR_PLAIN_1,
    F_DIRECT_2,
    F_CALL_2,
    F_CALL_2_SEP,
    F_TWOSTEP_2,
    F_FLOOR_ATOMIC_2,
    F_FLOOR_PLAIN_2,
    F_SHARED_CALL_1,
    F_SHARED_TWOSTEP_1,
    F_SHARED_CALL_2,
    F_SHARED_CALL_2P,
    F_CLOSED_COUNT
};

static figure closed_figs[F_CLOSED_COUNT] = {
    {"cb_closed_noop", "none", K_DIRECT, 1, 20e6, {0, 0}, {0, 0}, 0},
    {"cb_closed_noop", "local", K_CALL, 1, 20e6, {0, 0}, {0, 0}, 0},
    {"cb_closed_noop", "local", K_TWOSTEP, 1, 20e6, {0, 0}, {0, 0}, 0},
    {"cb_closed_noop", "none", K_FLOOR_ATOMIC, 1, 20e6, {0, 0}, {0, 0}, 0},
    {"cb_closed_noop", "none", K_FLOOR_PLAIN, 1, 20e6, {0, 0}, {0, 0}, 0},
    {"cb_closed_noop", "none", K_DIRECT, 2, 20e6, {0, 0}, {0, 0}, 0},
    {"cb_closed_noop", "local", K_CALL, 2, 20e6, {0, 0}, {0, 0}, 0},
    /* the control: the same code, but each thread calls a breaker of its own */
    {"cb_closed_noop", "local_own_each", K_CALL, 2, 20e6, {0, 0}, {0, 0}, 0},
    {"cb_closed_noop", "local", K_TWOSTEP, 2, 20e6, {0, 0}, {0, 0}, 0},
    {"cb_closed_noop", "none", K_FLOOR_ATOMIC, 2, 20e6, {0, 0}, {0, 0}, 0},
    {"cb_closed_noop", "none", K_FLOOR_PLAIN, 2, 20e6, {0, 0}, {0, 0}, 0},
    {"cb_shared_closed_noop", "shared", K_CALL, 1, 10e6, {0, 0}, {0, 0}, 0},
    {"cb_shared_closed_noop", "shared", K_TWOSTEP, 1, 10e6, {0, 0}, {0, 0}, 0},
    {"cb_shared_closed_noop", "shared", K_CALL, 2, 10e6, {0, 0}, {0, 0}, 0},
    /* two processes, one thread each, one handle each on the same state file */
    {"cb_shared_closed_noop", "shared_2procs", K_CALL, 2, 10e6, {0, 0}, {0, 0}, 0},
};

static void print_figure(const figure *f)
{
    printf("bench %s variant=%s breaker=%s threads=%d iters=%ld runs=%d median_ns=%.2f "
           "min_ns=%.2f ops_per_s=%.0f cpu_median_ns=%.2f cpu_min_ns=%.2f%s\n",
           f->name, kind_names[f->kind], f->breaker, f->threads, f->iters, runs, f->st.med,
           f->st.min, f->threads * 1e9 / f->st.med, f->cpu.med, f->cpu.min,
           f->threads > 1 ? " (ns per call per thread; ops_per_s: all threads)" : "");
}

static void bench_closed(void)
{
    resil_breaker *local = make_breaker("bench-local", false, false, 0, 0);
    resil_breaker *local2 = make_breaker("bench-local-2", false, false, 0, 0);
    resil_breaker *shared = make_breaker("bench-shared", true, false, 0, 0);
    double samples[F_CLOSED_COUNT][MAX_RUNS], cpu_samples[F_CLOSED_COUNT][MAX_RUNS];
    for (int f = 0; f < F_CLOSED_COUNT; f++)
        closed_figs[f].iters = iters(closed_figs[f].n);
    /* Interleaved: each run measures every figure, so drift hits them all;
     * each two-thread figure right after its one-thread figure, so that the
     * ratio of the two within a run is taken over about a second. */
    static const int order[F_CLOSED_COUNT] = {
        F_DIRECT_1,       F_DIRECT_2,       F_CALL_1,        F_CALL_2,
        F_CALL_2_SEP,     F_TWOSTEP_1,      F_TWOSTEP_2,     F_FLOOR_ATOMIC_1,
        F_FLOOR_ATOMIC_2, F_FLOOR_PLAIN_1,  F_FLOOR_PLAIN_2, F_SHARED_CALL_1,
        F_SHARED_CALL_2,  F_SHARED_CALL_2P, F_SHARED_TWOSTEP_1};
    _Static_assert(sizeof order / sizeof order[0] == F_CLOSED_COUNT, "order lists every figure");
    for (int r = 0; r < runs; r++) {
        for (int oi = 0; oi < F_CLOSED_COUNT; oi++) {
            int f = order[oi];
            figure *fg = &closed_figs[f];
            resil_breaker *b = strcmp(fg->breaker, "shared") == 0 ? shared : local;
            long bad = 0;
            counts used;
            if (f == F_SHARED_CALL_2P)
                samples[f][r] = run_procs("bench-shared", fg->kind, fg->iters, &cpu_samples[f][r]);
            else
                samples[f][r] = run_threads2(b, f == F_CALL_2_SEP ? local2 : NULL, fg->kind,
                                             fg->iters, fg->threads, &bad, &used,
                                             &cpu_samples[f][r]);
            if (bad) {
                fprintf(stderr, "bench_breaker: %ld calls of %s/%s failed\n", bad, fg->name,
                        kind_names[fg->kind]);
                exit(2);
            }
        }
    }
    for (int f = 0; f < F_CLOSED_COUNT; f++) {
        closed_figs[f].st = summarize(samples[f], runs);
        closed_figs[f].cpu = summarize(cpu_samples[f], runs);
        print_figure(&closed_figs[f]);
    }
    const stats *d1 = &closed_figs[F_DIRECT_1].st, *d2 = &closed_figs[F_DIRECT_2].st;
    static const int ovh[] = {F_CALL_1,         F_TWOSTEP_1,      F_FLOOR_ATOMIC_1,
                              F_FLOOR_PLAIN_1,  F_CALL_2,         F_CALL_2_SEP,     F_TWOSTEP_2,
                              F_FLOOR_ATOMIC_2, F_FLOOR_PLAIN_2,
                              F_SHARED_CALL_1, F_SHARED_TWOSTEP_1, F_SHARED_CALL_2,
                              F_SHARED_CALL_2P};
    for (size_t i = 0; i < sizeof ovh / sizeof ovh[0]; i++) {
        const figure *f = &closed_figs[ovh[i]];
        const stats *d = f->threads > 1 ? d2 : d1;
        const stats *dc = &closed_figs[f->threads > 1 ? F_DIRECT_2 : F_DIRECT_1].cpu;
        printf("bench %s_overhead variant=%s breaker=%s threads=%d overhead_ns=%.2f "
               "overhead_min_ns=%.2f cpu_overhead_ns=%.2f cpu_overhead_min_ns=%.2f\n",
               f->name, kind_names[f->kind], f->breaker, f->threads, f->st.med - d->med,
               f->st.min - d->min, f->cpu.med - dc->med, f->cpu.min - dc->min);
    }
    /* Scaling: per-call time per thread with two threads over the one-thread
     * time, for the same variant (the direct call shows the machine's own). */
    static const int pairs[][2] = {
        {F_DIRECT_1, F_DIRECT_2}, {F_CALL_1, F_CALL_2}, {F_CALL_1, F_CALL_2_SEP},
        {F_TWOSTEP_1, F_TWOSTEP_2},
        {F_FLOOR_ATOMIC_1, F_FLOOR_ATOMIC_2}, {F_FLOOR_PLAIN_1, F_FLOOR_PLAIN_2},
        {F_SHARED_CALL_1, F_SHARED_CALL_2}, {F_SHARED_CALL_1, F_SHARED_CALL_2P}};
    double paired[sizeof pairs / sizeof pairs[0]];
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const figure *a = &closed_figs[pairs[i][0]], *b = &closed_figs[pairs[i][1]];
        /* The median over runs of (two-thread / one-thread) in the same run. */
        double q[MAX_RUNS];
        for (int r = 0; r < runs; r++)
            q[r] = samples[pairs[i][1]][r] / samples[pairs[i][0]][r];
        paired[i] = summarize(q, runs).med;
        printf("bench %s_scaling variant=%s breaker=%s paired_ratio_2t_1t=%.2f ratio_2t_1t=%.2f "
               "ratio_min_2t_1t=%.2f cpu_ratio_2t_1t=%.2f cpu_ratio_min_2t_1t=%.2f\n",
               a->name, kind_names[a->kind], b->breaker, paired[i], b->st.med / a->st.med,
               b->st.min / a->st.min, b->cpu.med / a->cpu.med, b->cpu.min / a->cpu.min);
    }
    const stats *c1 = &closed_figs[F_CALL_1].st, *t1 = &closed_figs[F_TWOSTEP_1].st;
    const stats *sc1 = &closed_figs[F_SHARED_CALL_1].st;
    printf("compare-breaker impl=resil lang=C variant=call_closed direct_ns=%.2f wrapper_ns=%.2f "
           "overhead_ns=%.2f direct_min_ns=%.2f wrapper_min_ns=%.2f overhead_min_ns=%.2f\n",
           d1->med, c1->med, c1->med - d1->med, d1->min, c1->min, c1->min - d1->min);
    printf("compare-breaker impl=resil lang=C variant=twostep_closed direct_ns=%.2f "
           "wrapper_ns=%.2f overhead_ns=%.2f direct_min_ns=%.2f wrapper_min_ns=%.2f "
           "overhead_min_ns=%.2f\n",
           d1->med, t1->med, t1->med - d1->med, d1->min, t1->min, t1->min - d1->min);
    printf("compare-breaker impl=resil lang=C variant=shared_call_closed direct_ns=%.2f "
           "wrapper_ns=%.2f overhead_ns=%.2f direct_min_ns=%.2f wrapper_min_ns=%.2f "
           "overhead_min_ns=%.2f\n",
           d1->med, sc1->med, sc1->med - d1->med, d1->min, sc1->min, sc1->min - d1->min);

    /* Verdicts, by the wall-clock median (the thread-CPU-time figure is
     * printed beside it: on a busy machine it leaves out the time the
     * thread spent descheduled). */
    double oc = c1->med - d1->med, ot = t1->med - d1->med;
    const stats *d1c = &closed_figs[F_DIRECT_1].cpu;
    printf("verdict cb_closed_noop target_ns=8.00 overhead_ns=%.2f overhead_min_ns=%.2f "
           "cpu_overhead_ns=%.2f result=%s\n",
           oc, c1->min - d1->min, closed_figs[F_CALL_1].cpu.med - d1c->med,
           oc <= 8.0 ? "MET" : "NOT_MET");
    printf("verdict cb_closed_noop_twostep target_ns=8.00 overhead_ns=%.2f overhead_min_ns=%.2f "
           "cpu_overhead_ns=%.2f result=%s\n",
           ot, t1->min - d1->min, closed_figs[F_TWOSTEP_1].cpu.med - d1c->med,
           ot <= 8.0 ? "MET" : "NOT_MET");
    const stats *c2 = &closed_figs[F_CALL_2].st, *t2 = &closed_figs[F_TWOSTEP_2].st;
    double rc = c2->med / c1->med, rt = t2->med / t1->med;
    /* The scaling verdict is on the paired ratio (pairs[1] and pairs[3]
     * above); the ratio of the medians and of the minimums are shown too, and
     * the same ratios for the direct call (what the machine itself does). */
    double pc = paired[1], pt = paired[3], pd = paired[0];
    printf("verdict cb_closed_noop_2threads target_ratio=1.30 paired_ratio=%.3f "
           "ratio_of_medians=%.2f ratio_of_mins=%.2f direct_paired_ratio=%.2f result=%s\n",
           pc, rc, c2->min / c1->min, pd, pc <= 1.3 ? "MET" : "NOT_MET");
    printf("verdict cb_closed_noop_twostep_2threads target_ratio=1.30 paired_ratio=%.3f "
           "ratio_of_medians=%.2f ratio_of_mins=%.2f direct_paired_ratio=%.2f result=%s\n",
           pt, rt, t2->min / t1->min, pd, pt <= 1.3 ? "MET" : "NOT_MET");
    resil_breaker_free(local);
    resil_breaker_free(local2);
    resil_breaker_free(shared);
}

/* ---- the failure path (local and shared) --------------------------------------------------------- */

static void bench_failure(void)
{
    /* The threshold is never reached, so every call is a counted failure in
     * the CLOSED state; reset (not timed) before each run. */
    const int threshold = 1000000;
    resil_breaker *local = make_breaker("bench-fail-local", false, false, threshold, 3600);
    resil_breaker *shared = make_breaker("bench-fail-shared", true, false, threshold, 3600);
    resil_breaker *bs[2] = {local, shared};
    const char *names[2] = {"local", "shared"};
    long n[2] = {iters(1e6), iters(2e5)};
    for (int i = 0; i < 2; i++)
        if (n[i] > threshold - 1000)
            n[i] = threshold - 1000;
    double samples[2][MAX_RUNS];
    counts per[2];
    memset(per, 0, sizeof per);
    int64_t consec[2] = {0, 0};
    resil_breaker_state st[2];
    for (int r = 0; r < runs; r++) {
        for (int i = 0; i < 2; i++) {
            int rc = resil_breaker_reset(bs[i]);
            if (rc != 0)
                die("resil_breaker_reset", rc);
            counts c0 = thread_counts();
            int64_t t0 = now_ns();
            long bad = run_kind(bs[i], K_FAIL_CALL, n[i]);
            int64_t t1 = now_ns();
            per[i] = counts_sub(thread_counts(), c0);
            if (bad) {
                fprintf(stderr, "bench_breaker: %ld failing calls on the %s breaker did not "
                                "return the op's -1\n", bad, names[i]);
                exit(2);
            }
            samples[i][r] = (double)(t1 - t0) / (double)n[i];
            resil_breaker_snapshot s;
            resil_breaker_snapshot_get(bs[i], &s);
            consec[i] = s.consecutive_failures;
            st[i] = s.state;
        }
    }
    for (int i = 0; i < 2; i++) {
        stats s = summarize(samples[i], runs);
        printf("bench cb_fail_path variant=fail_call breaker=%s threads=1 iters=%ld runs=%d "
               "median_ns=%.2f min_ns=%.2f ops_per_s=%.0f\n",
               names[i], n[i], runs, s.med, s.min, 1e9 / s.med);
        printf("info cb_fail_path breaker=%s calls=%ld allocs=%llu clock_reads=%llu "
               "mutex_locks=%llu file_locks=%llu consecutive_failures=%lld state=%s "
               "(last run)\n",
               names[i], n[i], per[i].alloc, per[i].clock, per[i].mutex, per[i].filelock,
               (long long)consec[i], resil_breaker_state_name(st[i]));
        if (consec[i] != n[i] || st[i] != RESIL_BREAKER_CLOSED)
            printf("note cb_fail_path breaker=%s: expected consecutive_failures=%ld and "
                   "state closed\n",
                   names[i], n[i]);
    }
    resil_breaker_free(local);
    resil_breaker_free(shared);
}

/* ---- cb_open_reject ------------------------------------------------------------------------------ */

enum { R_ACQUIRE, R_ACQUIRE_NULL, R_CALL, R_ACQUIRE_FORCED, R_ACQUIRE_SHARED, R_COUNT };
static const char *const reject_names[R_COUNT] = {
    "acquire_open", "acquire_open_null_wait", "call_open", "acquire_forced_open",
    "acquire_open_shared"};

static long run_reject(resil_breaker *b, int v, long n)
{
    long bad = 0;
    resil_breaker_permit p;
    double wait_s = 0;
    switch (v) {
    case R_ACQUIRE:
    case R_ACQUIRE_FORCED:
    case R_ACQUIRE_SHARED:
        for (long i = 0; i < n; i++)
            bad += resil_breaker_acquire(b, &p, &wait_s) != RESIL_ECIRCUIT_OPEN;
        break;
    case R_ACQUIRE_NULL:
        for (long i = 0; i < n; i++)
            bad += resil_breaker_acquire(b, &p, NULL) != RESIL_ECIRCUIT_OPEN;
        break;
    case R_CALL:
        for (long i = 0; i < n; i++)
            bad += resil_breaker_call(b, noop, NULL) != RESIL_ECIRCUIT_OPEN;
        break;
    }
    return bad;
}

/* Opens b by failing calls (default threshold 5). */
static void open_by_failures(resil_breaker *b, const char *name)
{
    for (int i = 0; i < 5; i++)
        resil_breaker_call(b, fail_op, NULL);
    if (resil_breaker_get_state(b) != RESIL_BREAKER_OPEN) {
        fprintf(stderr, "bench_breaker: breaker %s is %s after 5 failures, not open\n", name,
                resil_breaker_state_name(resil_breaker_get_state(b)));
        exit(2);
    }
}

static void bench_open_reject(void)
{
    resil_breaker *open_b = make_breaker("bench-open", false, false, 0, 3600);
    resil_breaker *forced = make_breaker("bench-forced", false, false, 0, 3600);
    resil_breaker *open_sh = make_breaker("bench-open-shared", true, false, 0, 3600);
    resil_breaker *open_cc = make_breaker("bench-open-counting", false, true, 0, 3600);
    open_by_failures(open_b, "bench-open");
    open_by_failures(open_sh, "bench-open-shared");
    open_by_failures(open_cc, "bench-open-counting");
    int rc = resil_breaker_trip(forced);
    if (rc != 0)
        die("resil_breaker_trip", rc);
    resil_breaker *bs[R_COUNT] = {open_b, open_b, open_b, forced, open_sh};

    /* What one refused acquire does (info: reading the clock is expected
     * here, the breaker must know whether the open time is over). */
    {
        long m = 100000;
        resil_breaker_snapshot s0, s1;
        resil_breaker_snapshot_get(open_cc, &s0);
        unsigned long long mono0 = atomic_load(&cclock.mono), wall0 = atomic_load(&cclock.wall);
        counts c0 = thread_counts();
        long bad = run_reject(open_cc, R_ACQUIRE, m);
        counts used = counts_sub(thread_counts(), c0);
        unsigned long long mono = atomic_load(&cclock.mono) - mono0,
                           wall = atomic_load(&cclock.wall) - wall0;
        resil_breaker_snapshot_get(open_cc, &s1);
        double wait_s = -2;
        resil_breaker_permit p;
        resil_breaker_acquire(open_cc, &p, &wait_s);
        printf("info cb_open_reject variant=acquire_open calls=%ld wrong_returns=%ld allocs=%llu "
               "clock_reads=%llu clock_cb_monotonic=%llu clock_cb_wall=%llu mutex_locks=%llu "
               "file_locks=%llu not_permitted_counted=%lld retry_in_s=%.1f\n",
               m, bad, used.alloc, used.clock, mono, wall, used.mutex, used.filelock,
               (long long)(s1.not_permitted - s0.not_permitted), wait_s);
    }

    long n = iters(5e6);
    double samples[R_COUNT][MAX_RUNS];
    for (int v = 0; v < R_COUNT; v++)
        run_reject(bs[v], v, n / 20);
    for (int r = 0; r < runs; r++) {
        for (int v = 0; v < R_COUNT; v++) {
            int64_t t0 = now_ns();
            long bad = run_reject(bs[v], v, n);
            int64_t t1 = now_ns();
            if (bad) {
                fprintf(stderr, "bench_breaker: %ld calls of %s were not refused\n", bad,
                        reject_names[v]);
                exit(2);
            }
            samples[v][r] = (double)(t1 - t0) / (double)n;
        }
    }
    for (int v = 0; v < R_COUNT; v++) {
        stats s = summarize(samples[v], runs);
        printf("bench cb_open_reject variant=%s breaker=%s threads=1 iters=%ld runs=%d "
               "median_ns=%.2f min_ns=%.2f ops_per_s=%.0f\n",
               reject_names[v], v == R_ACQUIRE_SHARED ? "shared" : "local", n, runs, s.med,
               s.min, 1e9 / s.med);
        printf("compare-reject impl=resil lang=C variant=%s ns=%.2f min_ns=%.2f\n",
               reject_names[v], s.med, s.min);
    }
    resil_breaker_free(open_b);
    resil_breaker_free(forced);
    resil_breaker_free(open_sh);
    resil_breaker_free(open_cc);
}

/* ---- main ------------------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    if (resolve_real() != 0) {
        fprintf(stderr, "bench_breaker: cannot find the libc functions it interposes\n");
        return 2;
    }
    const char *dir_parent = getenv("TMPDIR");
    if (!dir_parent || !*dir_parent)
        dir_parent = "/tmp";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
            scale = atof(argv[++i]);
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir_parent = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--runs R] [--scale F] [--dir D]\n", argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > MAX_RUNS || !(scale > 0)) {
        fprintf(stderr, "bench_breaker: --runs must be in 1..%d and --scale > 0\n", MAX_RUNS);
        return 2;
    }
    /* The default rule must be the documented default, whatever the
     * environment says. */
    unsetenv("CIRCUIT_BREAKER_DEFAULT_THRESHOLD");
    unsetenv("CIRCUIT_BREAKER_DEFAULT_TIMEOUT");
    unsetenv("RESIL_STATE_DIR");
    snprintf(state_dir, sizeof state_dir, "%s/bench_breaker.XXXXXX", dir_parent);
    if (!mkdtemp(state_dir)) {
        fprintf(stderr, "bench_breaker: mkdtemp(%s): %s\n", state_dir, strerror(errno));
        return 2;
    }
    atexit(remove_state_dir);
    counting_clock_init(&cclock);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("bench_breaker: resil %s, %d runs per figure, scale %g, shared state in %s\n",
           resil_version(), runs, scale, state_dir);

    print_load("start");
    run_checks();
    bench_closed();
    bench_failure();
    bench_open_reject();
    print_load("end");

    if (check_failures) {
        printf("bench_breaker: %d count check(s) FAILED\n", check_failures);
        return 1;
    }
    return 0;
}
