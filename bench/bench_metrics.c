/* bench/bench_metrics.c - what recording and exporting metrics costs.
 *
 * The headline figures are the update paths on a handle resolved once,
 * outside the loop (that is the API's design: resolve the child, keep the
 * handle, update it):
 *   metrics_counter_inc      resil_counter_inc(c) on a child of a labelled
 *                            counter family; targets (issue: metrics) at most
 *                            3 ns with one thread and 4 ns per call and thread
 *                            with two threads incrementing the same handle;
 *   metrics_histogram_observe resil_histogram_observe(h, v) on a child of a
 *                            histogram with the default buckets, v taken in
 *                            a pseudo-random order from 12 values, one per
 *                            bucket (+Inf included), so the bucket search
 *                            cannot be learnt by the branch predictor;
 *                            targets at most 12 ns with one thread and 15 ns
 *                            per call and thread with two on the same handle.
 * Beside them, for reference: counter_add, gauge_set/gauge_add, observe of one
 * value (a predictable bucket), the same two-thread loops with each thread on
 * a child of its own (nothing shared: the control), hand-written floors (calls
 * of noinline functions, no resil: one that does nothing; a relaxed load and
 * store of a per-thread cell, which is enough when a cell has one writer; one
 * atomic add on a per-thread cache line; for observe a branch-free count of
 * the bounds below v (bounds known only at run time, as a library's are)
 * then either three loads and stores or a bucket add, a CAS on the double
 * sum and a count add; and the latter with the default bounds as compile-time
 * constants, which the compiler unrolls into a chain of compares), and
 * resil_counter_get, the label lookup a
 * handle saves (on a family of one child and on a family of 10,000 children,
 * cycling through all of them).
 *
 * Export: resil_metrics_export of 10,000 series in the Prometheus text format
 * and in OpenMetrics (JSON too, for reference), for two registries:
 *   counter_10k  one counter family with two labels, 10,000 label
 *                combinations (2,000 paths x 5 codes);
 *   mix_10k      a counter family of 4,000 children, a gauge family of 1,800
 *                and a histogram family (default buckets) of 300 children,
 *                which is 300 x 14 = 4,200 sample lines (11 buckets, +Inf,
 *                _sum, _count): 10,000 sample lines in all.
 * A "series" is one sample line of the Prometheus text export; the bench
 * counts them in the output (a check: exactly 10,000 per registry).
 *
 * Every update loop is timed with the wall clock and with the thread's CPU
 * time.  Each figure is run `runs` times (default 7), interleaved (each run
 * measures every figure in turn); the median and the minimum are reported,
 * in ns per call (per call and thread for two threads).  Two-thread figures
 * also get a paired ratio (the median over runs of two-thread / one-thread
 * time within the run).
 *
 * Counted, not assumed: this file interposes malloc & co.,
 * pthread_mutex_lock/trylock and pthread_rwlock_rdlock/wrlock (and their
 * try forms); the executable's definitions win over libc's for the whole
 * process, including the statically linked libresil, and count per thread.
 * Over 1,000,000 calls per thread (after a warm-up) of counter_inc,
 * counter_add, gauge_add and histogram_observe, with one and two threads,
 * there must be no allocation and no lock taken (the header promises
 * "lock-free and allocation-free"), and the values read back must be exact
 * (counter value, histogram count and sum, and the cumulative bucket counts
 * parsed from the export).  The bench first checks that the counters see the
 * library at all (creating a registry must count allocations).  If any check
 * fails, the bench exits 1.
 *
 * Output: "bench ..." lines per figure, "check ..." lines, "info ..." lines,
 * "compare-metrics ..." and "compare-export ..." lines that bench/run.sh puts
 * beside the peers (python3-prometheus-client, prom-client), and "verdict
 * ..." lines against the targets.
 *
 * Usage: bench_metrics [--runs R] [--scale F]
 *   R runs per figure (default 7; the median and the minimum are reported);
 *   F multiplies every iteration count (default 1; 0.1 for a quick look).
 * This is a benchmark, not a test: it exits 0 when a timing target is missed,
 * but 1 when a check fails (those are facts, not timings), 2 on setup
 * errors. */
#define _GNU_SOURCE
#include "resil/metrics.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

/* ---- interposed allocator and locks -------------------------------------------------- */

#include "bench_alloc.h"
#include "bench_locks.h"

static _Thread_local unsigned long long t_rwlock;

typedef int (*rwlock_fn)(pthread_rwlock_t *l);
static rwlock_fn real_rdlock, real_wrlock, real_tryrdlock, real_trywrlock;

/* Called first thing in main, before any thread exists. */
static int resolve_real(void)
{
    real_rdlock = (rwlock_fn)dlsym(RTLD_NEXT, "pthread_rwlock_rdlock");
    real_wrlock = (rwlock_fn)dlsym(RTLD_NEXT, "pthread_rwlock_wrlock");
    real_tryrdlock = (rwlock_fn)dlsym(RTLD_NEXT, "pthread_rwlock_tryrdlock");
    real_trywrlock = (rwlock_fn)dlsym(RTLD_NEXT, "pthread_rwlock_trywrlock");
    return bench_locks_resolve() == 0 && real_rdlock && real_wrlock && real_tryrdlock &&
                   real_trywrlock
               ? 0
               : -1;
}

int pthread_rwlock_rdlock(pthread_rwlock_t *l)
{
    t_rwlock++;
    return real_rdlock(l);
}

int pthread_rwlock_wrlock(pthread_rwlock_t *l)
{
    t_rwlock++;
    return real_wrlock(l);
}

int pthread_rwlock_tryrdlock(pthread_rwlock_t *l)
{
    t_rwlock++;
    return real_tryrdlock(l);
}

int pthread_rwlock_trywrlock(pthread_rwlock_t *l)
{
    t_rwlock++;
    return real_trywrlock(l);
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
    fprintf(stderr, "bench_metrics: %s failed: %d (%s)\n", what, rc, resil_strerror(rc));
    exit(2);
}

static void die_err(const char *what, int rc, const resil_error *err)
{
    fprintf(stderr, "bench_metrics: %s failed: %d (%s) %s\n", what, rc, resil_strerror(rc),
            err ? err->message : "");
    exit(2);
}

typedef struct counts {
    unsigned long long alloc, mutex, rwlock;
} counts;

static counts thread_counts(void)
{
    counts c = {t_alloc, t_mutex, t_rwlock};
    return c;
}

static counts counts_sub(counts b, counts a)
{
    counts d = {b.alloc - a.alloc, b.mutex - a.mutex, b.rwlock - a.rwlock};
    return d;
}

/* ---- registries and families ----------------------------------------------------------- */

static resil_metrics_registry *new_registry(size_t max_series)
{
    resil_metrics_opts o = RESIL_METRICS_OPTS_INIT;
    o.max_series = max_series;
    resil_metrics_registry *r = NULL;
    resil_error err;
    memset(&err, 0, sizeof err);
    int rc = resil_metrics_registry_new(&r, &o, &err);
    if (rc != 0 || !r)
        die_err("resil_metrics_registry_new", rc, &err);
    return r;
}

static resil_metric *counter_family(resil_metrics_registry *r, const char *name,
                                    const char *const *labels, size_t nlabels)
{
    resil_metric *m = NULL;
    resil_error err;
    memset(&err, 0, sizeof err);
    int rc = resil_metrics_counter_new(&m, r, name, "A counter of bench_metrics.", labels, nlabels,
                                       &err);
    if (rc != 0 || !m)
        die_err("resil_metrics_counter_new", rc, &err);
    return m;
}

static resil_metric *gauge_family(resil_metrics_registry *r, const char *name,
                                  const char *const *labels, size_t nlabels)
{
    resil_metric *m = NULL;
    resil_error err;
    memset(&err, 0, sizeof err);
    int rc =
        resil_metrics_gauge_new(&m, r, name, "A gauge of bench_metrics.", labels, nlabels, &err);
    if (rc != 0 || !m)
        die_err("resil_metrics_gauge_new", rc, &err);
    return m;
}

static resil_metric *histogram_family(resil_metrics_registry *r, const char *name,
                                      const char *const *labels, size_t nlabels)
{
    resil_metric *m = NULL;
    resil_error err;
    memset(&err, 0, sizeof err);
    int rc = resil_metrics_histogram_new(&m, r, name, "A histogram of bench_metrics.", labels,
                                         nlabels, NULL, 0, &err);
    if (rc != 0 || !m)
        die_err("resil_metrics_histogram_new", rc, &err);
    return m;
}

static resil_counter *counter_child(resil_metric *m, const char *const *values)
{
    resil_counter *c = NULL;
    int rc = resil_counter_get(&c, m, values);
    if (rc != 0 || !c)
        die("resil_counter_get", rc);
    return c;
}

static resil_gauge *gauge_child(resil_metric *m, const char *const *values)
{
    resil_gauge *g = NULL;
    int rc = resil_gauge_get(&g, m, values);
    if (rc != 0 || !g)
        die("resil_gauge_get", rc);
    return g;
}

static resil_histogram *histogram_child(resil_metric *m, const char *const *values)
{
    resil_histogram *h = NULL;
    int rc = resil_histogram_get(&h, m, values);
    if (rc != 0 || !h)
        die("resil_histogram_get", rc);
    return h;
}

/* ---- observed values --------------------------------------------------------------------- */

/* The default buckets, and one value per bucket (+Inf included).  The values
 * are dyadic (k / 256), so any sum of up to 2^40 of them is exact in a
 * double whatever the order of the additions: the sum check can be exact. */
static const double default_bounds[11] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5,   1,    2.5,   5,    10};
static const double bucket_values[12] = {0.00390625, 0.0078125, 0.015625, 0.03125,
                                         0.0625,     0.125,     0.375,    0.75,
                                         2.0,        4.0,       8.0,      16.0};
#define SPREAD 4096 /* a power of two */
static double spread[SPREAD];
static int spread_bucket[SPREAD];

/* The same xorshift32 sequence as the peers (prometheus_client_bench.py and
 * prom_client_bench.mjs use it too), so every implementation observes the same values in the same order. */
static void make_spread(void)
{
    uint32_t x = 2463534242u;
    for (int i = 0; i < SPREAD; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        int b = (int)(x % 12u);
        spread[i] = bucket_values[b];
        spread_bucket[i] = b;
    }
}

/* ---- the loops ------------------------------------------------------------------------------ */

enum {
    K_FLOOR_CALL,    /* call of a noinline function that does nothing */
    K_FLOOR_PLAIN,   /* call: a relaxed load and store of a per-thread cell */
    K_FLOOR_INC,     /* call of a noinline function: one atomic add, per-thread line */
    K_INC,           /* resil_counter_inc */
    K_ADD,           /* resil_counter_add(c, 1.0) */
    K_GAUGE_SET,     /* resil_gauge_set(g, i) */
    K_GAUGE_ADD,     /* resil_gauge_add(g, 1.0) */
    K_FLOOR_OBS_PLAIN, /* call: branch-free bucket search, three loads and stores */
    K_FLOOR_OBSERVE, /* call: branch-free bucket search, bucket add, sum CAS, count add */
    K_FLOOR_OBS_CONST, /* the same with the bounds constant: an unrolled compare chain */
    K_OBSERVE,       /* resil_histogram_observe, values spread */
    K_OBSERVE_ONE,   /* resil_histogram_observe, always 0.075 (one bucket) */
    K_GET_ONE,       /* resil_counter_get, the same two values */
    K_GET_10K,       /* resil_counter_get, cycling through 10,000 children */
    K_COUNT
};

static const char *const kind_names[] = {
    "floor_call_empty", "floor_call_plain_add", "floor_call_atomic_add", "inc", "add",
    "gauge_set", "gauge_add", "floor_call_observe_plain", "floor_call_observe",
    "floor_call_observe_const_bounds", "observe_spread",
    "observe_one", "get_one_child", "get_10k_children"};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == K_COUNT, "a name for every kind");

/* Per-thread stripes of the floors, 128 bytes apart. */
typedef struct floor_stripe {
    _Alignas(128) _Atomic uint64_t n;
    _Atomic uint64_t count;
    _Atomic uint64_t buckets[12];
    _Atomic uint64_t sum_bits;
} floor_stripe;
static floor_stripe floor_stripes[4];
static _Thread_local int floor_slot; /* 0: the main thread; jobs take 1.. */

__attribute__((noinline)) static void floor_call(floor_stripe *s)
{
    (void)s;
    __asm__ volatile("" ::: "memory");
}

/* Enough when a cell has one writer (what resil does in a block a thread owns). */
__attribute__((noinline)) static void floor_plain(floor_stripe *s)
{
    atomic_store_explicit(&s->n, atomic_load_explicit(&s->n, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* The floors' bounds: known only at run time (read through a volatile
 * pointer), as a library's are, so the compiler cannot unroll the search
 * into a chain of compares against constants. */
typedef struct floor_bounds {
    const double *b;
    size_t n;
} floor_bounds;
static floor_bounds floor_default = {default_bounds, 11};
static floor_bounds *volatile floor_bounds_p = &floor_default;

/* The bucket of v: how many bounds are below it, counted without a branch
 * on the value (a loop of known trip count, which predicts perfectly). */
static inline size_t floor_bucket(const floor_bounds *fb, double v)
{
    size_t i = 0;
    for (size_t j = 0; j < fb->n; j++)
        i += v > fb->b[j];
    return i;
}

__attribute__((noinline)) static void floor_observe_plain(floor_stripe *s, const floor_bounds *fb,
                                                          double v)
{
    if (v != v)
        return;
    size_t b = floor_bucket(fb, v);
    atomic_store_explicit(&s->buckets[b],
                          atomic_load_explicit(&s->buckets[b], memory_order_relaxed) + 1,
                          memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&s->sum_bits, memory_order_relaxed), nw;
    double d;
    memcpy(&d, &old, sizeof d);
    d += v;
    memcpy(&nw, &d, sizeof nw);
    atomic_store_explicit(&s->sum_bits, nw, memory_order_relaxed);
    atomic_store_explicit(&s->count, atomic_load_explicit(&s->count, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* The same with the default bounds known at compile time: the compiler
 * unrolls the search into a chain of 11 compares against constants (one
 * branch each), which is what code specialised for the default buckets
 * could do. */
__attribute__((noinline)) static void floor_observe_const(floor_stripe *s, double v)
{
    if (v != v)
        return;
    int b = 0;
    while (b < 11 && !(v <= default_bounds[b]))
        b++;
    atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&s->sum_bits, memory_order_relaxed), nw;
    do {
        double d;
        memcpy(&d, &old, sizeof d);
        d += v;
        memcpy(&nw, &d, sizeof nw);
    } while (!atomic_compare_exchange_weak_explicit(&s->sum_bits, &old, nw, memory_order_relaxed,
                                                    memory_order_relaxed));
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

__attribute__((noinline)) static void floor_inc(floor_stripe *s)
{
    atomic_fetch_add_explicit(&s->n, 1, memory_order_relaxed);
}

__attribute__((noinline)) static void floor_observe(floor_stripe *s, const floor_bounds *fb,
                                                    double v)
{
    if (v != v)
        return;
    size_t b = floor_bucket(fb, v);
    atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&s->sum_bits, memory_order_relaxed), nw;
    do {
        double d;
        memcpy(&d, &old, sizeof d);
        d += v;
        memcpy(&nw, &d, sizeof nw);
    } while (!atomic_compare_exchange_weak_explicit(&s->sum_bits, &old, nw, memory_order_relaxed,
                                                    memory_order_relaxed));
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

/* What a loop works on. */
typedef struct target {
    resil_counter *c;
    resil_gauge *g;
    resil_histogram *h;
    resil_metric *fam_one; /* a counter family with one child (get_one_child) */
    resil_metric *fam_10k; /* a counter family with 10,000 children */
} target;

static const char *get_one_values[2] = {"GET", "200"};
#define GET_N 10000
static const char *get_values[GET_N][2];

/* n calls of kind k on t; returns how many went wrong (a get that failed). */
static long run_kind(const target *t, int k, long n)
{
    long bad = 0;
    switch (k) {
    case K_FLOOR_CALL: {
        floor_stripe *s = &floor_stripes[floor_slot];
        for (long i = 0; i < n; i++)
            floor_call(s);
        break;
    }
    case K_FLOOR_PLAIN: {
        floor_stripe *s = &floor_stripes[floor_slot];
        for (long i = 0; i < n; i++)
            floor_plain(s);
        break;
    }
    case K_FLOOR_OBS_PLAIN: {
        floor_stripe *s = &floor_stripes[floor_slot];
        const floor_bounds *fb = floor_bounds_p;
        for (long i = 0; i < n; i++)
            floor_observe_plain(s, fb, spread[i & (SPREAD - 1)]);
        break;
    }
    case K_FLOOR_OBS_CONST: {
        floor_stripe *s = &floor_stripes[floor_slot];
        for (long i = 0; i < n; i++)
            floor_observe_const(s, spread[i & (SPREAD - 1)]);
        break;
    }
    case K_FLOOR_INC: {
        floor_stripe *s = &floor_stripes[floor_slot];
        for (long i = 0; i < n; i++)
            floor_inc(s);
        break;
    }
    case K_INC: {
        resil_counter *c = t->c;
        for (long i = 0; i < n; i++)
            resil_counter_inc(c);
        break;
    }
    case K_ADD: {
        resil_counter *c = t->c;
        for (long i = 0; i < n; i++)
            resil_counter_add(c, 1.0);
        break;
    }
    case K_GAUGE_SET: {
        resil_gauge *g = t->g;
        for (long i = 0; i < n; i++)
            resil_gauge_set(g, (double)i);
        break;
    }
    case K_GAUGE_ADD: {
        resil_gauge *g = t->g;
        for (long i = 0; i < n; i++)
            resil_gauge_add(g, 1.0);
        break;
    }
    case K_FLOOR_OBSERVE: {
        floor_stripe *s = &floor_stripes[floor_slot];
        const floor_bounds *fb = floor_bounds_p;
        for (long i = 0; i < n; i++)
            floor_observe(s, fb, spread[i & (SPREAD - 1)]);
        break;
    }
    case K_OBSERVE: {
        resil_histogram *h = t->h;
        for (long i = 0; i < n; i++)
            resil_histogram_observe(h, spread[i & (SPREAD - 1)]);
        break;
    }
    case K_OBSERVE_ONE: {
        resil_histogram *h = t->h;
        for (long i = 0; i < n; i++)
            resil_histogram_observe(h, 0.0625);
        break;
    }
    case K_GET_ONE: {
        for (long i = 0; i < n; i++) {
            resil_counter *c = NULL;
            bad += resil_counter_get(&c, t->fam_one, get_one_values) != 0 || !c;
        }
        break;
    }
    case K_GET_10K: {
        long j = 0;
        for (long i = 0; i < n; i++) {
            resil_counter *c = NULL;
            bad += resil_counter_get(&c, t->fam_10k, get_values[j]) != 0 || !c;
            if (++j == GET_N)
                j = 0;
        }
        break;
    }
    }
    return bad;
}

/* One thread's share of a two-thread run. */
typedef struct __attribute__((aligned(64))) job {
    const target *t;
    int kind;
    long n;
    pthread_barrier_t *start;
    double ns_per_op, cpu_ns_per_op;
    int slot;
    long bad;
    counts warm; /* what the warm-up did (a thread's first calls) */
    counts used; /* what the timed loop did */
} job;

static long warm_n(long n)
{
    return n / 20 + 1;
}

static void *job_thread(void *arg)
{
    job *j = arg;
    floor_slot = j->slot;
    counts w0 = thread_counts();
    run_kind(j->t, j->kind, warm_n(j->n)); /* warm-up (and any per-thread set-up) */
    j->warm = counts_sub(thread_counts(), w0);
    pthread_barrier_wait(j->start);
    counts c0 = thread_counts();
    int64_t u0 = cpu_ns(), t0 = now_ns();
    j->bad = run_kind(j->t, j->kind, j->n);
    int64_t t1 = now_ns(), u1 = cpu_ns();
    j->used = counts_sub(thread_counts(), c0);
    j->ns_per_op = (double)(t1 - t0) / (double)j->n;
    j->cpu_ns_per_op = (double)(u1 - u0) / (double)j->n;
    return NULL;
}

/* Runs kind k on `threads` threads (1: on this thread, after a warm-up);
 * returns the mean over threads of wall-clock ns per call (and in *cpu of
 * thread-CPU-time ns per call), and sums bad and counts.  With two threads,
 * the second works on t2 when it is not NULL. */
static double run_threads2(const target *t, const target *t2, int k, long n, int threads,
                           long *bad, counts *used, counts *warm, double *cpu)
{
    if (threads == 1) {
        counts w0 = thread_counts();
        run_kind(t, k, warm_n(n));
        *warm = counts_sub(thread_counts(), w0);
        counts c0 = thread_counts();
        int64_t u0 = cpu_ns(), t0 = now_ns();
        *bad = run_kind(t, k, n);
        int64_t t1 = now_ns(), u1 = cpu_ns();
        *used = counts_sub(thread_counts(), c0);
        *cpu = (double)(u1 - u0) / (double)n;
        return (double)(t1 - t0) / (double)n;
    }
    job jobs[2];
    memset(jobs, 0, sizeof jobs);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    pthread_t tid[2];
    for (int i = 0; i < 2; i++) {
        jobs[i].t = i == 1 && t2 ? t2 : t;
        jobs[i].kind = k;
        jobs[i].n = n;
        jobs[i].start = &start;
        jobs[i].slot = i + 1;
        int rc = pthread_create(&tid[i], NULL, job_thread, &jobs[i]);
        if (rc != 0)
            die("pthread_create", -rc);
    }
    double ns = 0, cns = 0;
    *bad = 0;
    memset(used, 0, sizeof *used);
    memset(warm, 0, sizeof *warm);
    for (int i = 0; i < 2; i++) {
        pthread_join(tid[i], NULL);
        ns += jobs[i].ns_per_op / 2;
        cns += jobs[i].cpu_ns_per_op / 2;
        *bad += jobs[i].bad;
        used->alloc += jobs[i].used.alloc;
        used->mutex += jobs[i].used.mutex;
        used->rwlock += jobs[i].used.rwlock;
        warm->alloc += jobs[i].warm.alloc;
        warm->mutex += jobs[i].warm.mutex;
        warm->rwlock += jobs[i].warm.rwlock;
    }
    pthread_barrier_destroy(&start);
    *cpu = cns;
    return ns;
}

/* ---- checks ---------------------------------------------------------------------------------- */

/* The zeros below mean something only if the counters see the library's
 * calls: creating a registry, a family and a child must allocate. */
static void check_interposition(void)
{
    counts c0 = thread_counts();
    resil_metrics_registry *r = new_registry(0);
    static const char *const labels[1] = {"k"};
    resil_metric *m = counter_family(r, "bench_interpose_total", labels, 1);
    static const char *const v[1] = {"v"};
    resil_counter *c = counter_child(m, v);
    counts c1 = thread_counts();
    resil_counter_inc(c);
    char *out = NULL;
    size_t len = 0;
    counts c2 = thread_counts();
    int rc = resil_metrics_export(&out, &len, r, RESIL_METRICS_PROMETHEUS);
    counts c3 = thread_counts();
    unsigned long long allocs = counts_sub(c1, c0).alloc;
    counts ex = counts_sub(c3, c2);
    int ok = rc == 0 && out && allocs > 0;
    if (!ok)
        check_failures++;
    printf("check interposition allocs_in_registry_family_child=%llu allocs_in_export=%llu "
           "locks_in_export=%llu ok=%d\n",
           allocs, ex.alloc, ex.mutex + ex.rwlock, ok);
    free(out);
    resil_metrics_registry_free(r);
}

/* Parses the cumulative buckets of the unlabelled histogram `name` from a
 * Prometheus export: fills cum[0..11] (11 bounds, then +Inf) and returns how
 * many bucket lines it found, or -1 when a bound is not one of the defaults. */
static int parse_buckets(const char *text, const char *name, double cum[12], double *count_line)
{
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s_bucket{", name);
    char cprefix[128];
    snprintf(cprefix, sizeof cprefix, "%s_count", name);
    size_t pl = strlen(prefix), cl = strlen(cprefix);
    int found = 0;
    *count_line = -1;
    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        if (strncmp(p, prefix, pl) == 0) {
            const char *le = strstr(p, "le=\"");
            if (!le || (eol && le > eol))
                return -1;
            le += 4;
            double bound = strtod(le, NULL);
            const char *close = strchr(le, '}');
            if (!close)
                return -1;
            double v = strtod(close + 1, NULL);
            int b = -1;
            if (isinf(bound) && bound > 0)
                b = 11;
            else
                for (int i = 0; i < 11; i++)
                    if (fabs(bound - default_bounds[i]) <= 1e-12 * default_bounds[i])
                        b = i;
            if (b < 0)
                return -1;
            cum[b] = v;
            found++;
        } else if (strncmp(p, cprefix, cl) == 0 && (p[cl] == ' ' || p[cl] == '{')) {
            const char *sp = strchr(p, ' ');
            if (sp)
                *count_line = strtod(sp + 1, NULL);
        }
        p = eol ? eol + 1 : NULL;
    }
    return found;
}

/* Update paths: 1,000,000 calls per thread after a warm-up, counted. */
static void check_updates(void)
{
    long n = 1000000;
    resil_metrics_registry *r = new_registry(0);
    static const char *const labels[2] = {"method", "code"};
    resil_metric *cf = counter_family(r, "bench_check_requests_total", labels, 2);
    resil_metric *gf = gauge_family(r, "bench_check_inflight", labels, 2);
    resil_metric *hf = histogram_family(r, "bench_check_seconds", NULL, 0);
    target t;
    memset(&t, 0, sizeof t);
    t.c = counter_child(cf, get_one_values);
    t.g = gauge_child(gf, get_one_values);
    t.h = histogram_child(hf, NULL);
    static const struct {
        int kind, threads;
    } cases[] = {{K_INC, 1}, {K_INC, 2}, {K_ADD, 1}, {K_GAUGE_ADD, 1}, {K_OBSERVE, 1},
                 {K_OBSERVE, 2}};
    double exp_counter = 0, exp_gauge = 0, exp_hsum = 0;
    uint64_t exp_hcount = 0;
    uint64_t exp_bucket[12] = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int k = cases[i].kind, th = cases[i].threads;
        long bad = 0;
        counts used, warm;
        double cpu;
        double c0 = resil_counter_value(t.c), g0 = resil_gauge_value(t.g);
        uint64_t h0 = resil_histogram_count(t.h);
        double s0 = resil_histogram_sum(t.h);
        run_threads2(&t, NULL, k, n, th, &bad, &used, &warm, &cpu);
        /* Each thread ran warm_n(n) calls then n, each loop from index 0. */
        long per = warm_n(n) + n;
        double got = 0, want = 0;
        switch (k) {
        case K_INC:
        case K_ADD:
            want = (double)th * (double)per;
            got = resil_counter_value(t.c) - c0;
            exp_counter += want;
            break;
        case K_GAUGE_ADD:
            want = (double)th * (double)per;
            got = resil_gauge_value(t.g) - g0;
            exp_gauge += want;
            break;
        case K_OBSERVE: {
            double s = 0;
            for (int pass = 0; pass < 2; pass++) {
                long m = pass ? n : warm_n(n);
                for (long j = 0; j < m; j++) {
                    s += spread[j & (SPREAD - 1)];
                    exp_bucket[spread_bucket[j & (SPREAD - 1)]] += (uint64_t)th;
                }
            }
            want = (double)th * (double)per;
            got = (double)(resil_histogram_count(t.h) - h0);
            double sum_want = s * th, sum_got = resil_histogram_sum(t.h) - s0;
            exp_hcount += (uint64_t)want;
            exp_hsum += sum_want;
            if (sum_got != sum_want) {
                printf("note histogram sum grew by %.17g, expected %.17g\n", sum_got, sum_want);
                got = -1;
            }
            break;
        }
        }
        int ok = bad == 0 && used.alloc == 0 && used.mutex == 0 && used.rwlock == 0 && got == want;
        if (!ok)
            check_failures++;
        printf("check metrics_update variant=%s threads=%d calls=%ld allocs=%llu mutex_locks=%llu "
               "rwlocks=%llu warmup_allocs=%llu warmup_locks=%llu value_grew=%.0f "
               "value_expected=%.0f ok=%d\n",
               kind_names[k], th, (long)th * n, used.alloc, used.mutex, used.rwlock, warm.alloc,
               warm.mutex + warm.rwlock, got, want, ok);
    }
    /* The buckets, read back from the export. */
    char *out = NULL;
    size_t len = 0;
    int rc = resil_metrics_export(&out, &len, r, RESIL_METRICS_PROMETHEUS);
    double cum[12];
    for (int i = 0; i < 12; i++)
        cum[i] = -1;
    double count_line = -1;
    int found = rc == 0 && out ? parse_buckets(out, "bench_check_seconds", cum, &count_line) : -1;
    int ok = found == 12 && count_line == (double)exp_hcount &&
             resil_histogram_count(t.h) == exp_hcount && resil_histogram_sum(t.h) == exp_hsum;
    uint64_t acc = 0;
    for (int i = 0; i < 12 && ok; i++) {
        acc += exp_bucket[i];
        if (cum[i] != (double)acc) {
            printf("note bucket %d (le=%g): exported %.0f, expected %llu\n", i,
                   i < 11 ? default_bounds[i] : INFINITY, cum[i], (unsigned long long)acc);
            ok = 0;
        }
    }
    if (!ok)
        check_failures++;
    printf("check metrics_histogram_export bucket_lines=%d count_line=%.0f count=%llu "
           "count_expected=%llu sum=%.17g sum_expected=%.17g buckets_cumulative_exact=%d ok=%d\n",
           found, count_line, (unsigned long long)resil_histogram_count(t.h),
           (unsigned long long)exp_hcount, resil_histogram_sum(t.h), exp_hsum, ok, ok);
    if (!ok && out) {
        /* show what the export looked like, to help the reader */
        printf("note the export was (first 1500 bytes):\n%.1500s\n", out);
    }
    free(out);
    (void)exp_counter;
    (void)exp_gauge;
    resil_metrics_registry_free(r);
}

/* ---- update figures ------------------------------------------------------------------------ */

typedef struct figure {
    const char *name;    /* bench line name */
    const char *variant; /* how the threads share */
    int kind;
    int threads;
    int own_each; /* two threads, each on a child of its own */
    double n;
    stats st, cpu;
    long iters;
    counts used, warm;
} figure;

enum {
    F_FLOOR_CALL_1,
    F_FLOOR_PLAIN_1,
    F_FLOOR_INC_1,
    F_INC_1,
    F_FLOOR_INC_2,
    F_INC_2,
    F_INC_2_OWN,
    F_ADD_1,
    F_GAUGE_SET_1,
    F_GAUGE_ADD_1,
    F_FLOOR_OBS_PLAIN_1,
    F_FLOOR_OBS_1,
    F_FLOOR_OBS_CONST_1,
    F_OBS_1,
    F_FLOOR_OBS_2,
    F_OBS_2,
    F_OBS_2_OWN,
    F_OBS_ONE_1,
    F_GET_ONE_1,
    F_GET_10K_1,
    F_COUNT
};

static figure figs[] = {
    {"metrics_counter_inc", "floor", K_FLOOR_CALL, 1, 0, 40e6, {0, 0}, {0, 0}, 0, {0}, {0}},
    {"metrics_counter_inc", "floor", K_FLOOR_PLAIN, 1, 0, 40e6, {0, 0}, {0, 0}, 0, {0}, {0}},
    {"metrics_counter_inc", "floor", K_FLOOR_INC, 1, 0, 40e6, {0, 0}, {0, 0}, 0, {0}, {0}},
    {"metrics_counter_inc", "one_child", K_INC, 1, 0, 40e6, {0, 0}, {0, 0}, 0, {0}, {0}},
    {"metrics_counter_inc", "floor", K_FLOOR_INC, 2, 0, 40e6, {0, 0}, {0, 0}, 0, {0}, {0}},
    {"metrics_counter_inc", "same_child", K_INC, 2, 0, 40e6, {0, 0}, {0, 0}, 0, {0}, {0}},
    {"metrics_counter_inc", "own_child_each", K_INC, 2, 1, 40e6, {0, 0}, {0, 0}, 0, {0}, {0}},
    {"metrics_counter_add", "one_child", K_ADD, 1, 0, 20e6, {0, 0}, {0, 0}, 0, {0}, {0}},
    {"metrics_gauge_set", "one_child", K_GAUGE_SET, 1, 0, 20e6, {0, 0}, {0, 0}, 0, {0}, {0}},
    {"metrics_gauge_add", "one_child", K_GAUGE_ADD, 1, 0, 20e6, {0, 0}, {0, 0}, 0, {0}, {0}},
    {"metrics_histogram_observe", "floor", K_FLOOR_OBS_PLAIN, 1, 0, 20e6, {0, 0}, {0, 0}, 0, {0},
     {0}},
    {"metrics_histogram_observe", "floor", K_FLOOR_OBSERVE, 1, 0, 20e6, {0, 0}, {0, 0}, 0, {0},
     {0}},
    {"metrics_histogram_observe", "floor", K_FLOOR_OBS_CONST, 1, 0, 20e6, {0, 0}, {0, 0}, 0, {0},
     {0}},
    {"metrics_histogram_observe", "one_child", K_OBSERVE, 1, 0, 20e6, {0, 0}, {0, 0}, 0, {0}, {0}},
    {"metrics_histogram_observe", "floor", K_FLOOR_OBSERVE, 2, 0, 20e6, {0, 0}, {0, 0}, 0, {0},
     {0}},
    {"metrics_histogram_observe", "same_child", K_OBSERVE, 2, 0, 20e6, {0, 0}, {0, 0}, 0, {0},
     {0}},
    {"metrics_histogram_observe", "own_child_each", K_OBSERVE, 2, 1, 20e6, {0, 0}, {0, 0}, 0, {0},
     {0}},
    {"metrics_histogram_observe", "one_child", K_OBSERVE_ONE, 1, 0, 20e6, {0, 0}, {0, 0}, 0, {0},
     {0}},
    {"metrics_counter_get", "family_of_1", K_GET_ONE, 1, 0, 4e6, {0, 0}, {0, 0}, 0, {0}, {0}},
    {"metrics_counter_get", "family_of_10000", K_GET_10K, 1, 0, 2e6, {0, 0}, {0, 0}, 0, {0}, {0}},
};
_Static_assert(sizeof figs / sizeof figs[0] == F_COUNT, "an entry for every figure");

static char get_pool[GET_N][2][24];

static void bench_updates(void)
{
    resil_metrics_registry *r = new_registry(100000);
    static const char *const labels[2] = {"method", "code"};
    resil_metric *cf = counter_family(r, "bench_requests_total", labels, 2);
    resil_metric *gf = gauge_family(r, "bench_inflight", labels, 2);
    resil_metric *hf = histogram_family(r, "bench_request_seconds", labels, 2);
    resil_metric *one = counter_family(r, "bench_get_one_total", labels, 2);
    static const char *const l10k[2] = {"path", "code"};
    resil_metric *tenk = counter_family(r, "bench_get_10k_total", l10k, 2);
    static const char *const other[2] = {"POST", "201"};
    target t, t_own;
    memset(&t, 0, sizeof t);
    t.c = counter_child(cf, get_one_values);
    t.g = gauge_child(gf, get_one_values);
    t.h = histogram_child(hf, get_one_values);
    t.fam_one = one;
    t.fam_10k = tenk;
    (void)counter_child(one, get_one_values);
    static const char *const codes[5] = {"200", "201", "404", "500", "503"};
    for (int i = 0; i < GET_N; i++) {
        snprintf(get_pool[i][0], sizeof get_pool[i][0], "/api/item/%d", i / 5);
        snprintf(get_pool[i][1], sizeof get_pool[i][1], "%s", codes[i % 5]);
        get_values[i][0] = get_pool[i][0];
        get_values[i][1] = get_pool[i][1];
        (void)counter_child(tenk, get_values[i]);
    }
    t_own = t;
    t_own.c = counter_child(cf, other);
    t_own.g = gauge_child(gf, other);
    t_own.h = histogram_child(hf, other);
    resil_counter *again = NULL;
    if (resil_counter_get(&again, cf, get_one_values) != 0 || again != t.c) {
        printf("note resil_counter_get returned another handle for the same values\n");
        check_failures++;
    }

    double samples[F_COUNT][MAX_RUNS], cpu_samples[F_COUNT][MAX_RUNS];
    for (int f = 0; f < F_COUNT; f++)
        figs[f].iters = iters(figs[f].n);
    /* Interleaved: each run measures every figure; each two-thread figure
     * right after its one-thread figure (the paired ratio). */
    for (int run = 0; run < runs; run++) {
        for (int f = 0; f < F_COUNT; f++) {
            figure *fg = &figs[f];
            long bad = 0;
            counts used, warm;
            samples[f][run] = run_threads2(&t, fg->own_each ? &t_own : NULL, fg->kind, fg->iters,
                                           fg->threads, &bad, &used, &warm, &cpu_samples[f][run]);
            if (bad) {
                fprintf(stderr, "bench_metrics: %ld calls of %s failed\n", bad,
                        kind_names[fg->kind]);
                exit(2);
            }
            fg->used = used;
            fg->warm = warm;
        }
    }
    for (int f = 0; f < F_COUNT; f++) {
        figure *fg = &figs[f];
        fg->st = summarize(samples[f], runs);
        fg->cpu = summarize(cpu_samples[f], runs);
        printf("bench %s variant=%s op=%s threads=%d iters=%ld runs=%d median_ns=%.2f "
               "min_ns=%.2f ops_per_s=%.0f cpu_median_ns=%.2f cpu_min_ns=%.2f%s\n",
               fg->name, fg->variant, kind_names[fg->kind], fg->threads, fg->iters, runs,
               fg->st.med, fg->st.min, fg->threads * 1e9 / fg->st.med, fg->cpu.med, fg->cpu.min,
               fg->threads > 1 ? " (ns per call per thread; ops_per_s: all threads)" : "");
    }
    /* What the lookups did (the last run; the update paths are checked above). */
    for (int f = F_GET_ONE_1; f <= F_GET_10K_1; f++)
        printf("info %s variant=%s calls=%ld allocs=%llu mutex_locks=%llu rwlocks=%llu "
               "(last run)\n",
               figs[f].name, figs[f].variant, figs[f].iters, figs[f].used.alloc,
               figs[f].used.mutex, figs[f].used.rwlock);

    static const int pairs[][2] = {{F_FLOOR_INC_1, F_FLOOR_INC_2}, {F_INC_1, F_INC_2},
                                   {F_INC_1, F_INC_2_OWN},         {F_FLOOR_OBS_1, F_FLOOR_OBS_2},
                                   {F_OBS_1, F_OBS_2},             {F_OBS_1, F_OBS_2_OWN}};
    double paired[sizeof pairs / sizeof pairs[0]];
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const figure *a = &figs[pairs[i][0]], *b = &figs[pairs[i][1]];
        double q[MAX_RUNS];
        for (int k = 0; k < runs; k++)
            q[k] = samples[pairs[i][1]][k] / samples[pairs[i][0]][k];
        paired[i] = summarize(q, runs).med;
        printf("bench %s_scaling variant=%s paired_ratio_2t_1t=%.2f ratio_2t_1t=%.2f "
               "ratio_min_2t_1t=%.2f cpu_ratio_2t_1t=%.2f\n",
               a->name, b->variant, paired[i], b->st.med / a->st.med, b->st.min / a->st.min,
               b->cpu.med / a->cpu.med);
    }

    /* Paired differences: the median over runs of (a - b) within each run,
     * which cancels this VM's drift between runs (its speed is bimodal). */
    static const int diffs[][2] = {{F_INC_1, F_FLOOR_INC_1},     {F_INC_1, F_FLOOR_CALL_1},
                                   {F_OBS_1, F_FLOOR_OBS_1},     {F_OBS_1, F_FLOOR_OBS_PLAIN_1},
                                   {F_OBS_1, F_FLOOR_OBS_CONST_1},
                                   {F_OBS_1, F_OBS_ONE_1},       {F_FLOOR_INC_1, F_FLOOR_CALL_1},
                                   {F_FLOOR_PLAIN_1, F_FLOOR_CALL_1}};
    for (size_t i = 0; i < sizeof diffs / sizeof diffs[0]; i++) {
        const figure *a = &figs[diffs[i][0]], *b = &figs[diffs[i][1]];
        double q[MAX_RUNS], qc[MAX_RUNS];
        for (int k = 0; k < runs; k++) {
            q[k] = samples[diffs[i][0]][k] - samples[diffs[i][1]][k];
            qc[k] = cpu_samples[diffs[i][0]][k] - cpu_samples[diffs[i][1]][k];
        }
        printf("bench metrics_paired_diff a=%s b=%s threads=1 paired_diff_ns=%.2f "
               "cpu_paired_diff_ns=%.2f\n",
               kind_names[a->kind], kind_names[b->kind], summarize(q, runs).med,
               summarize(qc, runs).med);
    }

    static const struct {
        int f;
        const char *op, *variant;
    } cmp[] = {{F_INC_1, "counter_inc", "child_handle"},
               {F_OBS_1, "histogram_observe", "child_handle_spread"},
               {F_GET_ONE_1, "labels_lookup", "family_of_1"},
               {F_GET_10K_1, "labels_lookup", "family_of_10000"},
               {F_ADD_1, "counter_add", "child_handle"},
               {F_GAUGE_SET_1, "gauge_set", "child_handle"}};
    for (size_t i = 0; i < sizeof cmp / sizeof cmp[0]; i++)
        printf("compare-metrics impl=resil lang=C op=%s variant=%s ns=%.2f min_ns=%.2f\n",
               cmp[i].op, cmp[i].variant, figs[cmp[i].f].st.med, figs[cmp[i].f].st.min);

    /* Verdicts, by the wall-clock median (thread CPU time and the minimum
     * beside it). */
    static const struct {
        int f;
        const char *name;
        double target;
    } vs[] = {{F_INC_1, "metrics_counter_inc", 3.0},
              {F_INC_2, "metrics_counter_inc_2threads", 4.0},
              {F_OBS_1, "metrics_histogram_observe", 12.0},
              {F_OBS_2, "metrics_histogram_observe_2threads", 15.0}};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        const figure *fg = &figs[vs[i].f];
        printf("verdict %s target_ns=%.2f median_ns=%.2f min_ns=%.2f cpu_median_ns=%.2f%s "
               "result=%s\n",
               vs[i].name, vs[i].target, fg->st.med, fg->st.min, fg->cpu.med,
               fg->threads > 1 ? " (per call and thread, same child)" : "",
               fg->st.med <= vs[i].target ? "MET" : "NOT_MET");
    }
    resil_metrics_registry_free(r);
}

/* ---- export ------------------------------------------------------------------------------------ */

/* counter_10k: one counter family, labels path and code, 2,000 x 5 children. */
static resil_metrics_registry *build_counter_10k(void)
{
    resil_metrics_registry *r = new_registry(100000);
    static const char *const labels[2] = {"path", "code"};
    resil_metric *m = counter_family(r, "bench_http_requests_total", labels, 2);
    static const char *const codes[5] = {"200", "201", "404", "500", "503"};
    for (int i = 0; i < 10000; i++) {
        char path[32];
        snprintf(path, sizeof path, "/api/item/%d", i / 5);
        const char *v[2] = {path, codes[i % 5]};
        resil_counter *c = counter_child(m, v);
        resil_counter_add(c, (double)(i % 97 + 1));
    }
    return r;
}

/* mix_10k: a counter family of 4,000 children (labels method, path), a gauge
 * family of 1,800 (label queue) and a histogram family of 300 (label
 * handler, default buckets, 14 sample lines each): 10,000 sample lines. */
static resil_metrics_registry *build_mix_10k(void)
{
    resil_metrics_registry *r = new_registry(100000);
    static const char *const cl[2] = {"method", "path"};
    static const char *const gl[1] = {"queue"};
    static const char *const hl[1] = {"handler"};
    resil_metric *cm = counter_family(r, "bench_mix_requests_total", cl, 2);
    resil_metric *gm = gauge_family(r, "bench_mix_queue_depth", gl, 1);
    resil_metric *hm = histogram_family(r, "bench_mix_request_seconds", hl, 1);
    static const char *const methods[4] = {"GET", "POST", "PUT", "DELETE"};
    for (int i = 0; i < 4000; i++) {
        char path[32];
        snprintf(path, sizeof path, "/api/v1/resource/%d", i / 4);
        const char *v[2] = {methods[i % 4], path};
        resil_counter_add(counter_child(cm, v), (double)(i % 89 + 1));
    }
    for (int i = 0; i < 1800; i++) {
        char q[32];
        snprintf(q, sizeof q, "queue-%d", i);
        const char *v[1] = {q};
        resil_gauge_set(gauge_child(gm, v), (double)(i % 50) * 0.5);
    }
    for (int i = 0; i < 300; i++) {
        char h[32];
        snprintf(h, sizeof h, "handler_%d", i);
        const char *v[1] = {h};
        resil_histogram *hh = histogram_child(hm, v);
        for (int j = 0; j < 20; j++)
            resil_histogram_observe(hh, spread[(i * 20 + j) & (SPREAD - 1)]);
    }
    return r;
}

/* Sample lines whose metric name starts with "bench_" (not comments). */
static long count_samples(const char *text)
{
    long n = 0;
    for (const char *p = text; p && *p;) {
        if (strncmp(p, "bench_", 6) == 0)
            n++;
        const char *eol = strchr(p, '\n');
        p = eol ? eol + 1 : NULL;
    }
    return n;
}

static const char *const format_names[3] = {"prometheus", "openmetrics", "json"};

static void bench_export(void)
{
    counts c0 = thread_counts();
    int64_t b0 = now_ns();
    resil_metrics_registry *regs[2] = {build_counter_10k(), NULL};
    int64_t b1 = now_ns();
    counts c1 = thread_counts();
    regs[1] = build_mix_10k();
    int64_t b2 = now_ns();
    counts c2 = thread_counts();
    printf("info metrics_build scenario=counter_10k ms=%.2f allocs=%llu (10,000 children "
           "resolved and incremented once)\n",
           (b1 - b0) / 1e6, counts_sub(c1, c0).alloc);
    printf("info metrics_build scenario=mix_10k ms=%.2f allocs=%llu (6,100 children, 6,000 "
           "observations)\n",
           (b2 - b1) / 1e6, counts_sub(c2, c1).alloc);
    static const char *const scen[2] = {"counter_10k", "mix_10k"};
    enum { NF = 3 };
    /* One run = k exports of each registry in each format, interleaved. */
    int k = (int)(10 * scale);
    if (k < 2)
        k = 2;
    double samples[2][NF][MAX_RUNS];
    size_t bytes[2][NF] = {{0}};
    long lines[2][NF] = {{0}};
    counts per[2][NF];
    memset(per, 0, sizeof per);
    int eof_ok[2] = {1, 1};
    /* warm-up: one of each */
    for (int s = 0; s < 2; s++)
        for (int f = 0; f < NF; f++) {
            char *out = NULL;
            size_t len = 0;
            int rc = resil_metrics_export(&out, &len, regs[s], (resil_metrics_format)f);
            if (rc != 0 || !out)
                die("resil_metrics_export", rc);
            bytes[s][f] = len;
            if (strlen(out) != len) {
                printf("note export %s %s: *len=%zu but strlen=%zu\n", scen[s], format_names[f],
                       len, strlen(out));
                check_failures++;
            }
            lines[s][f] = f == RESIL_METRICS_JSON ? -1 : count_samples(out);
            if (f == RESIL_METRICS_OPENMETRICS)
                eof_ok[s] = len >= 6 && strcmp(out + len - 6, "# EOF\n") == 0;
            free(out);
        }
    for (int run = 0; run < runs; run++)
        for (int s = 0; s < 2; s++)
            for (int f = 0; f < NF; f++) {
                int64_t total = 0;
                counts u0 = thread_counts();
                for (int i = 0; i < k; i++) {
                    char *out = NULL;
                    size_t len = 0;
                    int64_t t0 = now_ns();
                    int rc = resil_metrics_export(&out, &len, regs[s], (resil_metrics_format)f);
                    int64_t t1 = now_ns();
                    if (rc != 0 || !out)
                        die("resil_metrics_export", rc);
                    total += t1 - t0;
                    free(out);
                }
                counts u = counts_sub(thread_counts(), u0);
                per[s][f].alloc = u.alloc / (unsigned long long)k;
                per[s][f].mutex = (u.mutex + u.rwlock) / (unsigned long long)k;
                samples[s][f][run] = (double)total / k;
            }
    for (int s = 0; s < 2; s++) {
        int ok = lines[s][RESIL_METRICS_PROMETHEUS] == 10000 && eof_ok[s];
        if (!ok)
            check_failures++;
        printf("check metrics_export scenario=%s prometheus_sample_lines=%ld "
               "openmetrics_sample_lines=%ld openmetrics_ends_with_eof=%d ok=%d\n",
               scen[s], lines[s][0], lines[s][1], eof_ok[s], ok);
        for (int f = 0; f < NF; f++) {
            stats st = summarize(samples[s][f], runs);
            printf("bench metrics_export scenario=%s format=%s series=10000 exports_per_run=%d "
                   "runs=%d median_ms=%.3f min_ms=%.3f ns_per_series=%.1f bytes=%zu "
                   "allocs_per_export=%llu locks_per_export=%llu\n",
                   scen[s], format_names[f], k, runs, st.med / 1e6, st.min / 1e6, st.med / 1e4,
                   bytes[s][f], per[s][f].alloc, per[s][f].mutex);
            if (f != RESIL_METRICS_JSON)
                printf("compare-export impl=resil lang=C scenario=%s format=%s ms=%.3f "
                       "min_ms=%.3f bytes=%zu series=%ld\n",
                       scen[s], format_names[f], st.med / 1e6, st.min / 1e6, bytes[s][f],
                       lines[s][f]);
        }
    }
    resil_metrics_registry_free(regs[0]);
    resil_metrics_registry_free(regs[1]);
}

/* ---- main ------------------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    if (resolve_real() != 0) {
        fprintf(stderr, "bench_metrics: cannot find the libc functions it interposes\n");
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
        fprintf(stderr, "bench_metrics: --runs must be in 1..%d and --scale > 0\n", MAX_RUNS);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    make_spread();
    printf("bench_metrics: resil %s, %d runs per figure, scale %g\n", resil_version(), runs,
           scale);

    print_load("start");
    check_interposition();
    check_updates();
    bench_updates();
    bench_export();
    print_load("end");

    if (check_failures) {
        printf("bench_metrics: %d check(s) FAILED\n", check_failures);
        return 1;
    }
    return 0;
}
