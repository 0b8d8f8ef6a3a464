/* bench/bench_retry.c - what a retry costs.
 *
 * The headline figure is retry_success_first: resil_retry() around an op that
 * succeeds at once, against a direct call of the same op through a function
 * pointer the compiler cannot see through.  The design target is an overhead
 * of at most 5 ns, no allocation, no random number and no clock read unless a
 * deadline or timing was asked for.  The last three are checked, not assumed:
 * this file interposes malloc & co., clock_gettime and getrandom (the
 * executable's definitions win over libc's for the whole process, including
 * the statically linked libresil) and counts the calls, and it passes a
 * counting resil_clock and a seeded resil_rng whose state is compared.
 *
 * Also measured, for context: one failed attempt then a success (with a fake
 * clock, so nothing sleeps), resil_backoff_delay per jitter kind, and the
 * retry budget's success path on one and two threads.
 *
 * Output: one line per figure, "bench <name> key=value ...", plus
 * "check ..." lines for the counts, "compare ..." lines that bench/run.sh
 * puts beside the peers, and a "verdict ..." line against the 5 ns target.
 *
 * Usage: bench_retry [--runs R] [--scale F]
 *   R runs per figure (default 7; the median and the minimum are reported);
 *   F multiplies every iteration count (default 1; 0.1 for a quick look).
 * This is a benchmark, not a test: it exits 0 even when the target is missed,
 * but exits 1 when a count check fails (those are facts, not timings). */
#define _GNU_SOURCE
#include "resil/retry.h"

#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <time.h>

#include "bench_util.h"

/* ---- interposed allocator, clock and entropy -------------------------------- */

/* glibc's own entry points, so the wrappers below never recurse. */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

static atomic_ullong n_alloc;        /* malloc, calloc, realloc, *memalign, aligned_alloc */
static atomic_ullong n_clock_gettime;
static atomic_ullong n_getrandom;

#define COUNT(c) atomic_fetch_add_explicit(&(c), 1, memory_order_relaxed)
#define READ(c) atomic_load_explicit(&(c), memory_order_relaxed)

void *malloc(size_t n)
{
    COUNT(n_alloc);
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    COUNT(n_alloc);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    COUNT(n_alloc);
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

void *memalign(size_t align, size_t n)
{
    COUNT(n_alloc);
    return __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    COUNT(n_alloc);
    return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    COUNT(n_alloc);
    if (align < sizeof(void *) || (align & (align - 1)) != 0)
        return 22; /* EINVAL */
    void *p = __libc_memalign(align, n);
    if (!p && n)
        return 12; /* ENOMEM */
    *out = p;
    return 0;
}

typedef int (*clock_gettime_fn)(clockid_t id, struct timespec *ts);
typedef ssize_t (*getrandom_fn)(void *buf, size_t len, unsigned flags);
static clock_gettime_fn real_clock_gettime;
static getrandom_fn real_getrandom;

/* Called first thing in main, before any thread exists. */
static int resolve_real(void)
{
    real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    real_getrandom = (getrandom_fn)dlsym(RTLD_NEXT, "getrandom");
    return real_clock_gettime && real_getrandom ? 0 : -1;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    COUNT(n_clock_gettime);
    return real_clock_gettime(id, ts);
}

ssize_t getrandom(void *buf, size_t len, unsigned flags)
{
    COUNT(n_getrandom);
    return real_getrandom(buf, len, flags);
}

/* ---- helpers --------------------------------------------------------------------- */

static double scale = 1.0;
static int runs = 7;
static int check_failures;


static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long iters(double n)
{
    return scaled_iters(n, scale);
}

/* median and minimum of runs samples */
static void print_figure(const char *name, const char *variant, long n, stats st)
{
    printf("bench %s variant=%s iters=%ld runs=%d median_ns=%.2f min_ns=%.2f ops_per_s=%.0f\n",
           name, variant, n, runs, st.med, st.min, 1e9 / st.med);
}

/* Keeps results alive without the compiler seeing through them. */
static volatile uint64_t sink;

/* ---- the ops ----------------------------------------------------------------------- */

typedef struct op_state {
    uint64_t calls;
} op_state;

/* Succeeds at once. */
__attribute__((noinline)) static resil_outcome op_ok(resil_retry_call *call, void *arg)
{
    (void)call;
    ((op_state *)arg)->calls++;
    __asm__ volatile("" ::: "memory");
    return RESIL_OUTCOME_SUCCESS;
}

/* Fails its first attempt (transiently), then succeeds. */
__attribute__((noinline)) static resil_outcome op_fail_once(resil_retry_call *call, void *arg)
{
    ((op_state *)arg)->calls++;
    __asm__ volatile("" ::: "memory");
    if (call->attempt == 1) {
        call->error = -5;
        return RESIL_OUTCOME_TRANSIENT;
    }
    return RESIL_OUTCOME_SUCCESS;
}

/* Read through a volatile: the compiler cannot inline or devirtualise it. */
static resil_retry_op volatile direct_op = op_ok;

/* ---- a clock that counts its reads ---------------------------------------------------- */

typedef struct counting_clock {
    resil_clock clock;
    uint64_t mono, wall, sleeps; /* one thread only */
} counting_clock;

static int64_t cc_mono(void *ctx)
{
    ((counting_clock *)ctx)->mono++;
    return now_ns();
}

static int64_t cc_wall(void *ctx)
{
    ((counting_clock *)ctx)->wall++;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cc_sleep(void *ctx, int64_t ns, resil_cancel *cancel)
{
    (void)ns;
    (void)cancel;
    ((counting_clock *)ctx)->sleeps++; /* never sleeps: a bug must not hang the bench */
    return 0;
}

static void counting_clock_init(counting_clock *cc)
{
    memset(cc, 0, sizeof *cc);
    cc->clock.monotonic_ns = cc_mono;
    cc->clock.wall_ns = cc_wall;
    cc->clock.sleep_ns = cc_sleep;
    cc->clock.ctx = cc;
}

/* ---- retry_success_first ---------------------------------------------------------------- */

enum {
    V_DIRECT,       /* op through a volatile function pointer */
    V_RETRY,        /* resil_retry(op, arg, "bench", &cfg, NULL, NULL) */
    V_RETRY_RESULT, /* ... with a resil_retry_result */
    V_RETRY_OPTS,   /* ... with opts (clock, rng; no deadline) and a result */
    V_RETRY_BUDGET, /* ... opts with a (full) retry budget too */
    V_RETRY_DEADLINE, /* ... max_elapsed_s = 10, no result: one clock read per call */
    V_RETRY_DEADLINE_RESULT, /* ... and a result: a second read for elapsed_s */
    V_COUNT
};

static const char *const variant_names[V_COUNT] = {
    "direct", "retry_null_opts", "retry_result", "retry_opts", "retry_opts_budget",
    "retry_deadline", "retry_deadline_result",
};

typedef struct sf_ctx {
    resil_retry_config cfg, cfg_deadline;
    resil_retry_opts opts, opts_budget;
    counting_clock cc;
    resil_rng rng;
    resil_retry_budget *budget;
    op_state st;
} sf_ctx;

/* Runs n calls of variant v; returns the sum of the return codes (0 when all
 * succeeded) so callers can check them. */
static long run_variant(sf_ctx *c, int v, long n)
{
    long bad = 0;
    resil_retry_result res;
    switch (v) {
    case V_DIRECT:
        for (long i = 0; i < n; i++) {
            resil_retry_call call = {1, "bench", 0, -1.0};
            bad += direct_op(&call, &c->st) != RESIL_OUTCOME_SUCCESS;
        }
        break;
    case V_RETRY:
        for (long i = 0; i < n; i++)
            bad += resil_retry(op_ok, &c->st, "bench", &c->cfg, NULL, NULL) != 0;
        break;
    case V_RETRY_RESULT:
        for (long i = 0; i < n; i++)
            bad += resil_retry(op_ok, &c->st, "bench", &c->cfg, NULL, &res) != 0;
        break;
    case V_RETRY_OPTS:
        for (long i = 0; i < n; i++)
            bad += resil_retry(op_ok, &c->st, "bench", &c->cfg, &c->opts, &res) != 0;
        break;
    case V_RETRY_BUDGET:
        for (long i = 0; i < n; i++)
            bad += resil_retry(op_ok, &c->st, "bench", &c->cfg, &c->opts_budget, &res) != 0;
        break;
    case V_RETRY_DEADLINE:
        for (long i = 0; i < n; i++)
            bad += resil_retry(op_ok, &c->st, "bench", &c->cfg_deadline, &c->opts, NULL) != 0;
        break;
    case V_RETRY_DEADLINE_RESULT:
        for (long i = 0; i < n; i++)
            bad += resil_retry(op_ok, &c->st, "bench", &c->cfg_deadline, &c->opts, &res) != 0;
        break;
    }
    return bad;
}

typedef struct counts {
    unsigned long long alloc, clock_gettime, getrandom, cc_mono, cc_wall, cc_sleeps;
} counts;

static counts snapshot(const sf_ctx *c)
{
    counts k = {READ(n_alloc), READ(n_clock_gettime), READ(n_getrandom),
                c->cc.mono, c->cc.wall, c->cc.sleeps};
    return k;
}

/* Checks the counts of n calls of variant v: allocations, clock reads (both
 * through the injected clock and through clock_gettime itself) and random
 * numbers (getrandom, and the injected rng's state). */
static void check_variant(sf_ctx *c, int v, long n)
{
    /* One call first: the first call of a retry name registers its metrics
     * (a one-time allocation); what is checked is the steady state. */
    long bad = run_variant(c, v, 1);
    resil_rng before = c->rng;
    counts a = snapshot(c);
    bad += run_variant(c, v, n);
    counts b = snapshot(c);
    unsigned long long alloc = b.alloc - a.alloc, cg = b.clock_gettime - a.clock_gettime,
                       gr = b.getrandom - a.getrandom, mono = b.cc_mono - a.cc_mono,
                       wall = b.cc_wall - a.cc_wall, sl = b.cc_sleeps - a.cc_sleeps;
    int rng_changed = memcmp(&before, &c->rng, sizeof before) != 0;
    /* With a deadline the clock is read once per call (its start), and once
     * more when a result asks for elapsed_s; without a deadline, never. */
    unsigned long long want_reads = v == V_RETRY_DEADLINE          ? (unsigned long long)n
                                    : v == V_RETRY_DEADLINE_RESULT ? 2ULL * (unsigned long long)n
                                                                   : 0;
    int uses_cc = v >= V_RETRY_OPTS;
    int ok = bad == 0 && alloc == 0 && gr == 0 && !rng_changed && wall == 0 && sl == 0 &&
             (uses_cc ? mono == want_reads && cg == want_reads : cg == 0);
    if (!ok)
        check_failures++;
    printf("check retry_success_first variant=%s calls=%ld failed_calls=%ld allocs=%llu "
           "clock_gettime=%llu clock_cb_monotonic=%llu clock_cb_wall=%llu clock_cb_sleep=%llu "
           "getrandom=%llu rng_state_changed=%d expected_clock_reads=%llu ok=%d\n",
           variant_names[v], n, bad, alloc, cg, uses_cc ? mono : 0ULL, uses_cc ? wall : 0ULL,
           uses_cc ? sl : 0ULL, gr, rng_changed, want_reads, ok);
}

static stats sf_stats[V_COUNT];

static void bench_success_first(void)
{
    static sf_ctx c; /* static: zeroed, and not on the measured stack frame */
    c.cfg = RESIL_RETRY_TRANSIENT;
    c.cfg_deadline = RESIL_RETRY_TRANSIENT;
    c.cfg_deadline.max_elapsed_s = 10;
    counting_clock_init(&c.cc);
    resil_rng_seed(&c.rng, 42);
    if (resil_retry_budget_new(&c.budget, 10, 0.1, NULL) != 0) {
        fprintf(stderr, "bench_retry: resil_retry_budget_new failed\n");
        exit(2);
    }
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.clock = &c.cc.clock;
    o.rng = &c.rng;
    c.opts = o;
    o.budget = c.budget;
    c.opts_budget = o;

    /* Facts first: counts over a million calls of each variant. */
    for (int v = V_RETRY; v < V_COUNT; v++)
        check_variant(&c, v, iters(1e6) < 100000 ? 100000 : iters(1e6));

    long n[V_COUNT];
    for (int v = 0; v < V_COUNT; v++)
        n[v] = iters(v >= V_RETRY_DEADLINE ? 10e6 : 40e6);
    double samples[V_COUNT][MAX_RUNS];
    for (int v = 0; v < V_COUNT; v++) /* warm-up */
        run_variant(&c, v, n[v] / 20);
    /* Interleaved: each run measures every variant, so drift hits them all. */
    for (int r = 0; r < runs; r++) {
        for (int v = 0; v < V_COUNT; v++) {
            int64_t t0 = now_ns();
            long bad = run_variant(&c, v, n[v]);
            int64_t t1 = now_ns();
            if (bad) {
                fprintf(stderr, "bench_retry: %ld calls of %s failed\n", bad, variant_names[v]);
                exit(2);
            }
            samples[v][r] = (double)(t1 - t0) / (double)n[v];
        }
    }
    for (int v = 0; v < V_COUNT; v++) {
        sf_stats[v] = summarize(samples[v], runs);
        print_figure("retry_success_first", variant_names[v], n[v], sf_stats[v]);
    }
    /* Overheads: median minus median, and min minus min. */
    for (int v = V_RETRY; v < V_COUNT; v++)
        printf("bench retry_success_first_overhead variant=%s overhead_ns=%.2f "
               "overhead_min_ns=%.2f\n",
               variant_names[v], sf_stats[v].med - sf_stats[V_DIRECT].med,
               sf_stats[v].min - sf_stats[V_DIRECT].min);
    const stats *d = &sf_stats[V_DIRECT], *r = &sf_stats[V_RETRY];
    printf("bench retry_success_first direct_ns=%.2f retry_ns=%.2f overhead_ns=%.2f "
           "direct_min_ns=%.2f retry_min_ns=%.2f overhead_min_ns=%.2f "
           "retry_result_ns=%.2f retry_opts_ns=%.2f retry_deadline_ns=%.2f\n",
           d->med, r->med, r->med - d->med, d->min, r->min, r->min - d->min,
           sf_stats[V_RETRY_RESULT].med, sf_stats[V_RETRY_OPTS].med,
           sf_stats[V_RETRY_DEADLINE].med);
    printf("compare impl=resil lang=C variant=retry_null_opts direct_ns=%.2f wrapper_ns=%.2f "
           "overhead_ns=%.2f direct_min_ns=%.2f wrapper_min_ns=%.2f overhead_min_ns=%.2f\n",
           d->med, r->med, r->med - d->med, d->min, r->min, r->min - d->min);

    /* The target is judged on the wrapper itself: every no-deadline variant
     * without a budget (a budget adds one atomic update of a shared counter,
     * reported above on its own), by the median. */
    double worst = 0;
    for (int v = V_RETRY; v <= V_RETRY_OPTS; v++) {
        double ov = sf_stats[v].med - d->med;
        if (ov > worst)
            worst = ov;
    }
    double worst_min = 0;
    for (int v = V_RETRY; v <= V_RETRY_OPTS; v++) {
        double ov = sf_stats[v].min - d->min;
        if (ov > worst_min)
            worst_min = ov;
    }
    printf("verdict retry_success_first target_ns=5.00 overhead_ns=%.2f (worst no-deadline "
           "variant, median) overhead_min_ns=%.2f result=%s\n",
           worst, worst_min, worst <= 5.0 ? "MET" : "NOT_MET");
    resil_retry_budget_free(c.budget);
}

/* ---- retry_fail_then_succeed --------------------------------------------------------------- */

static void bench_fail_then_succeed(void)
{
    resil_fake_clock fc;
    resil_rng rng;
    resil_rng_seed(&rng, 7);
    resil_retry_config cfg = RESIL_RETRY_TRANSIENT;
    resil_retry_config cfg_deadline = cfg;
    cfg_deadline.max_elapsed_s = 3600;
    resil_retry_opts with_rng = RESIL_RETRY_OPTS_INIT, no_rng = RESIL_RETRY_OPTS_INIT;
    with_rng.clock = resil_fake_clock_init(&fc, 0, 0);
    with_rng.rng = &rng;
    no_rng.clock = with_rng.clock;
    op_state st = {0};
    resil_retry_result res;

    static const char *const names[3] = {"caller_rng", "caller_rng_deadline",
                                         "private_rng_getrandom"};
    const resil_retry_config *cfgs[3] = {&cfg, &cfg_deadline, &cfg};
    const resil_retry_opts *opts[3] = {&with_rng, &with_rng, &no_rng};
    long n[3] = {iters(4e6), iters(4e6), iters(1e6)};
    double samples[3][MAX_RUNS];

    for (int v = 0; v < 3; v++) { /* counts first */
        long m = 100000;
        unsigned long long a0 = READ(n_alloc), g0 = READ(n_getrandom);
        int64_t s0 = resil_fake_clock_sleeps(&fc);
        long bad = 0;
        for (long i = 0; i < m; i++)
            bad += resil_retry(op_fail_once, &st, "bench", cfgs[v], opts[v], &res) != 0 ||
                   res.attempts != 2;
        printf("check retry_fail_then_succeed variant=%s calls=%ld failed_calls=%ld allocs=%llu "
               "getrandom=%llu fake_sleeps=%lld\n",
               names[v], m, bad, READ(n_alloc) - a0, READ(n_getrandom) - g0,
               (long long)(resil_fake_clock_sleeps(&fc) - s0));
        if (bad)
            check_failures++;
    }
    for (int r = 0; r < runs; r++) {
        for (int v = 0; v < 3; v++) {
            int64_t t0 = now_ns();
            for (long i = 0; i < n[v]; i++)
                resil_retry(op_fail_once, &st, "bench", cfgs[v], opts[v], &res);
            int64_t t1 = now_ns();
            samples[v][r] = (double)(t1 - t0) / (double)n[v];
        }
    }
    for (int v = 0; v < 3; v++) {
        stats s = summarize(samples[v], runs);
        print_figure("retry_fail_then_succeed", names[v], n[v], s);
        /* What the failure adds over a first-attempt success with the same
         * kind of opts (one op call, one decision with backoff + jitter, one
         * fake sleep). */
        printf("bench retry_fail_then_succeed_extra variant=%s extra_ns=%.2f\n", names[v],
               s.med - sf_stats[V_RETRY_OPTS].med);
    }
}

/* ---- backoff_delay -------------------------------------------------------------------------- */

static void bench_backoff(void)
{
    static const struct {
        const char *name;
        bool jitter;
        resil_jitter_kind kind;
    } kinds[] = {
        {"none", false, RESIL_JITTER_DEFAULT},
        {"full", true, RESIL_JITTER_FULL},
        {"equal", true, RESIL_JITTER_EQUAL},
        {"decorrelated", true, RESIL_JITTER_DECORRELATED},
    };
    enum { K = sizeof kinds / sizeof kinds[0] };
    resil_rng rng;
    resil_rng_seed(&rng, 1);
    long n = iters(10e6);
    double samples[K][MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        for (int k = 0; k < K; k++) {
            resil_retry_config cfg = RESIL_RETRY_TRANSIENT;
            cfg.jitter = kinds[k].jitter;
            cfg.jitter_kind = kinds[k].kind;
            double prev = 0, acc = 0;
            int64_t t0 = now_ns();
            for (long i = 0; i < n; i++) {
                /* retries 1..4, as in one TRANSIENT run */
                prev = resil_backoff_delay(&cfg, (int)(i & 3) + 1, (i & 3) ? prev : 0, &rng);
                acc += prev;
            }
            int64_t t1 = now_ns();
            sink += (uint64_t)acc;
            samples[k][r] = (double)(t1 - t0) / (double)n;
        }
    }
    for (int k = 0; k < K; k++)
        print_figure("backoff_delay", kinds[k].name, n, summarize(samples[k], runs));
}

/* ---- budget_on_success ----------------------------------------------------------------------- */

typedef struct budget_job {
    resil_retry_budget *b;
    pthread_barrier_t *start;
    long n;
    bool pair; /* on_failure + on_success (both CAS) instead of on_success at full */
    double ns_per_op;
} budget_job;

static void budget_loop(resil_retry_budget *b, long n, bool pair)
{
    if (pair) {
        for (long i = 0; i < n; i++) {
            resil_retry_budget_on_failure(b);
            resil_retry_budget_on_success(b);
        }
    } else {
        for (long i = 0; i < n; i++)
            resil_retry_budget_on_success(b);
    }
}

static void *budget_thread(void *arg)
{
    budget_job *j = arg;
    pthread_barrier_wait(j->start);
    int64_t t0 = now_ns();
    budget_loop(j->b, j->n, j->pair);
    int64_t t1 = now_ns();
    j->ns_per_op = (double)(t1 - t0) / (double)j->n;
    return NULL;
}

/* ns per op seen by each thread (the mean over threads). */
static double budget_run(int threads, long n, bool pair)
{
    resil_retry_budget *b;
    if (resil_retry_budget_new(&b, 10, 0.1, NULL) != 0)
        exit(2);
    if (pair) /* start empty-ish so on_success writes */
        for (int i = 0; i < 20; i++)
            resil_retry_budget_on_failure(b);
    double ns = 0;
    if (threads == 1) {
        int64_t t0 = now_ns();
        budget_loop(b, n, pair);
        ns = (double)(now_ns() - t0) / (double)n;
    } else {
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, (unsigned)threads);
        pthread_t tid[8];
        budget_job jobs[8];
        for (int t = 0; t < threads; t++) {
            jobs[t] = (budget_job){b, &start, n, pair, 0};
            pthread_create(&tid[t], NULL, budget_thread, &jobs[t]);
        }
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            ns += jobs[t].ns_per_op / threads;
        }
        pthread_barrier_destroy(&start);
    }
    resil_retry_budget_free(b);
    return ns;
}

static void bench_budget(void)
{
    static const struct {
        const char *name;
        int threads;
        bool pair;
        double n;
    } cases[] = {
        {"on_success_full_1thread", 1, false, 40e6},
        {"on_success_full_2threads", 2, false, 40e6},
        {"failure_success_pair_1thread", 1, true, 10e6},
        {"failure_success_pair_2threads", 2, true, 5e6},
    };
    enum { C = sizeof cases / sizeof cases[0] };
    double samples[C][MAX_RUNS];
    for (int r = 0; r < runs; r++)
        for (int k = 0; k < C; k++)
            samples[k][r] = budget_run(cases[k].threads, iters(cases[k].n), cases[k].pair);
    for (int k = 0; k < C; k++) {
        stats s = summarize(samples[k], runs);
        print_figure("budget", cases[k].name, iters(cases[k].n), s);
        if (cases[k].threads > 1)
            printf("bench budget_aggregate variant=%s threads=%d aggregate_ops_per_s=%.0f\n",
                   cases[k].name, cases[k].threads, cases[k].threads * 1e9 / s.med);
    }
}

/* ---- main ------------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    if (resolve_real() != 0) {
        fprintf(stderr, "bench_retry: cannot find clock_gettime/getrandom in libc\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
            scale = atof(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--runs R] [--scale F]\n", argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > MAX_RUNS || !(scale > 0)) {
        fprintf(stderr, "bench_retry: --runs must be in 1..%d and --scale > 0\n", MAX_RUNS);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("bench_retry: resil %s, %d runs per figure, scale %g\n", resil_version(), runs, scale);

    bench_success_first();
    bench_fail_then_succeed();
    bench_backoff();
    bench_budget();

    if (check_failures) {
        printf("bench_retry: %d count check(s) FAILED\n", check_failures);
        return 1;
    }
    return 0;
}
