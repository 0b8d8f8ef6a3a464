/* src/metrics.c - the metrics registry, its exports, metrics directories and
 * the original module's record_* interface.  See include/resil/metrics.h.
 *
 * A child's cells are one block of `stride` bytes per slot (see "slots"
 * below), each block on its own cache lines: counters use [0] integer
 * increments and [1] the bits of a double holding fractional adds;
 * histograms [H_SUM] the sum's bits and [H_BUCKET..] one count per bucket
 * (+Inf last, not cumulative; cumulated on export; the count is their sum).
 * A thread writes the block of its slot only.  Gauges hold one atomic
 * double (a set has no per-thread meaning). */
#define _GNU_SOURCE
#include "resil/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "resil/files.h"
#include "resil/retry.h"
#include "internal/fork.h"
#include "internal/log.h"
#include "internal/metrics.h"
#include "internal/sys.h"
#include "internal/trust.h"
#include "internal/util.h"

#define DEFAULT_MAX_SERIES 10000
#define MAX_BUCKETS 64
#define OVERFLOW_VALUE "_overflow"
#define H_SUM 0    /* a histogram's cells: the sum's bits, */
#define H_BUCKET 1 /* then its buckets */

static const char *type_name(resil_metric_type t);
struct child;
static void sum_cells(const struct child *c, size_t i, uint64_t *n, double *d);

static const double default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5,   1,    2.5,   5,    10};

struct child {
    /* first, as struct resil__metric_cells (include/resil/metrics.h) */
    unsigned char *cells; /* nblocks * stride bytes, 64-aligned */
    unsigned stride;
    unsigned npad;         /* histograms: the family's bounds (padded), */
    const double *bounds;  /* copied here so that an observe reads one object */
    struct family *fam;
    /* a derived counter: its value is the sum of these two (internal) */
    const struct child *sum_of[2];
    char **values;
    _Atomic uint64_t gauge;
    /* what the last flush to a directory saw (under the registry's flush lock) */
    double flushed_value;
    double flushed_sum;
    uint64_t *flushed_buckets; /* histograms: nb + 1 */
    struct child *next;        /* creation order */
    struct child *hnext;       /* hash chain */
    uint64_t hash;
};

_Static_assert(offsetof(struct child, cells) == offsetof(struct resil__metric_cells, cells) &&
                   offsetof(struct child, stride) ==
                       offsetof(struct resil__metric_cells, stride) &&
                   offsetof(struct child, npad) == offsetof(struct resil__metric_cells, npad) &&
                   offsetof(struct child, bounds) ==
                       offsetof(struct resil__metric_cells, bounds),
               "a child starts as struct resil__metric_cells");

struct family {
    struct resil_metrics_registry *reg;
    char *name; /* counters: without "_total" */
    char *help;
    resil_metric_type type;
    size_t nlabels;
    char **labels;
    double *bounds; /* nb bounds, then +Inf up to an even count (16-aligned) */
    size_t nb;
    size_t stride;
    pthread_mutex_t mu;
    struct child **table;
    size_t slots, n;
    struct child *first, *last;
    struct child *overflow;
};

struct resil_metrics_registry {
    pthread_mutex_t mu;
    pthread_mutex_t flush_mu;
    struct family **fams;
    size_t n, cap;
    size_t max_series;
    struct family *overflow_fam;
    struct resil_metrics_registry *next_reg; /* every registry, for fork */
    struct collectors *coll; /* under coll_mu; NULL until one is added */
};

static pthread_mutex_t regs_mu = PTHREAD_MUTEX_INITIALIZER;
static resil_metrics_registry *regs;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void registries_atfork_child(void);

static void fork_register(void)
{
    resil__fork_hook(RESIL__FORK_METRICS, NULL, NULL, registries_atfork_child);
}

/* ---- slots ---------------------------------------------------------------------
 *
 * Every child has nblocks blocks: the first nowned are each owned by one
 * thread at a time (its updates are plain loads and stores: no other thread
 * writes the block), the others are shared by the threads dealt no owned
 * block (atomic adds).  A thread is dealt its slot on its first update
 * (resil_metrics_tls_slot: (block + 1) * 2, + 1 when owned) and gives an
 * owned block back when it exits (a key destructor), after which it updates
 * through a shared block.  Giving back is a release and taking an acquire,
 * so the next owner's first load sees the last store of the one before.
 * The numbers are fixed for the process: nowned = clamp(CPUs, 4, 16)
 * rounded up to a power of two, nshared = nowned / 4. */

static unsigned nowned, nshared, nblocks;
static _Atomic uint32_t owned_map; /* bit b: block b is owned */
static _Atomic unsigned shared_next;
static pthread_key_t slot_key;
static pthread_once_t slots_once = PTHREAD_ONCE_INIT;
_Thread_local unsigned resil_metrics_tls_slot RESIL__TLS_IE;

static void slot_release(void *arg)
{
    (void)arg;
    unsigned s = resil_metrics_tls_slot;
    if (s & 1) {
        resil_retry_tls_seen.name = NULL; /* its cell is in the block given back */
        resil_metrics_tls_slot =
            (nowned + 1 + atomic_fetch_add_explicit(&shared_next, 1, memory_order_relaxed) %
                              nshared) *
            2;
        atomic_fetch_and_explicit(&owned_map, ~(UINT32_C(1) << ((s >> 1) - 1)),
                                  memory_order_release);
    }
}

/* A forked child has one thread: only its block stays owned. */
static void slots_atfork_child(void)
{
    unsigned s = resil_metrics_tls_slot;
    atomic_store_explicit(&owned_map, s & 1 ? UINT32_C(1) << ((s >> 1) - 1) : 0,
                          memory_order_relaxed);
}

static void slots_init(void)
{
    long n = sysconf(_SC_NPROCESSORS_CONF);
    unsigned o = 4;
    while ((long)o < n && o < 16)
        o <<= 1;
    nowned = o;
    nshared = o / 4;
    nblocks = nowned + nshared;
    if (pthread_key_create(&slot_key, slot_release) != 0)
        nowned = 0; /* no way to give blocks back: share them all */
    resil__fork_hook(RESIL__FORK_METRICS, NULL, NULL, slots_atfork_child);
}

unsigned resil_metrics_thread_slot(void)
{
    pthread_once(&slots_once, slots_init);
    unsigned s = resil_metrics_tls_slot;
    if (s)
        return s;
    uint32_t map = atomic_load_explicit(&owned_map, memory_order_relaxed);
    uint32_t all = nowned ? (uint32_t)((UINT64_C(1) << nowned) - 1) : 0;
    while ((map & all) != all) {
        unsigned b = (unsigned)__builtin_ctz(~map & all);
        if (atomic_compare_exchange_weak_explicit(&owned_map, &map, map | (UINT32_C(1) << b),
                                                  memory_order_acquire, memory_order_relaxed)) {
            if (pthread_setspecific(slot_key, &owned_map) == 0)
                return resil_metrics_tls_slot = (b + 1) * 2 + 1;
            atomic_fetch_and_explicit(&owned_map, ~(UINT32_C(1) << b), memory_order_release);
            break;
        }
    }
    return resil_metrics_tls_slot =
               (nowned + 1 +
                atomic_fetch_add_explicit(&shared_next, 1, memory_order_relaxed) % nshared) *
               2;
}

static inline unsigned my_slot(void)
{
    unsigned s = resil_metrics_tls_slot;
    if (RESIL_UNLIKELY(s == 0))
        s = resil_metrics_thread_slot();
    return s;
}

static unsigned block_count(void)
{
    pthread_once(&slots_once, slots_init);
    return nblocks;
}

/* Cell i of block b. */
static inline _Atomic uint64_t *cell(const struct child *c, unsigned b, size_t i)
{
    return (_Atomic uint64_t *)(c->cells + (size_t)b * c->stride) + i;
}

/* Cell i of this thread's block, and whether the thread owns the block. */
static inline _Atomic uint64_t *my_cell(const struct child *c, size_t i, bool *owned)
{
    unsigned s = my_slot();
    *owned = s & 1;
    return cell(c, (s >> 1) - 1, i);
}

static inline uint64_t d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static inline double u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static inline void add_double(_Atomic uint64_t *a, double v)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, d2u(u2d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* Adds to a cell of this thread's block: a plain load and store when the
 * thread owns it. */
static inline void cell_add(_Atomic uint64_t *a, uint64_t n, bool owned)
{
    if (owned)
        atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + n,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(a, n, memory_order_relaxed);
}

static inline void cell_add_double(_Atomic uint64_t *a, double v, bool owned)
{
    if (owned)
        atomic_store_explicit(a, d2u(u2d(atomic_load_explicit(a, memory_order_relaxed)) + v),
                              memory_order_relaxed);
    else
        add_double(a, v);
}

/* ---- names --------------------------------------------------------------------- */

static bool valid_metric_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (p != s && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static bool valid_label_name(const char *s)
{
    if (!s || !*s || (s[0] == '_' && s[1] == '_'))
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (p != s && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

/* ---- UTF-8: every exported text must be valid (JSON strings, the text formats) ---- */

/* The length (1..4) of the valid UTF-8 sequence at s, or 0 when s[0] does
 * not start one (a stray continuation byte, an overlong form, a surrogate,
 * beyond U+10FFFF, or cut short: the NUL ends the checks). */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))
            return 0; /* overlong, surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))
            return 0; /* overlong, beyond U+10FFFF */
        return 4;
    }
    return 0;
}

static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_seq(p);
        if (n == 0)
            return false;
        p += n;
    }
    return true;
}

/* Copies s into dst (size > 0 bytes, NUL-terminated), each byte that is
 * not part of a valid UTF-8 sequence replaced by U+FFFD, cut at a character
 * boundary when dst is too small.  Returns the length written. */
static size_t utf8_fix_into(char *dst, size_t size, const char *s)
{
    static const char repl[] = "\xEF\xBF\xBD";
    const unsigned char *p = (const unsigned char *)s;
    size_t k = 0;
    while (*p) {
        size_t n = utf8_seq(p);
        const char *from = n ? (const char *)p : repl;
        size_t len = n ? n : 3;
        if (k + len + 1 > size)
            break;
        memcpy(dst + k, from, len);
        k += len;
        p += n ? n : 1;
    }
    dst[k] = '\0';
    return k;
}

/* A malloc'd copy of s made valid UTF-8 (see utf8_fix_into), or NULL. */
static char *utf8_fixed_dup(const char *s)
{
    size_t size = strlen(s) * 3 + 1; /* each byte becomes at most 3 */
    char *d = malloc(size);
    if (d)
        utf8_fix_into(d, size, s);
    return d;
}

/* ---- registries --------------------------------------------------------------------- */

int resil_metrics_registry_new(resil_metrics_registry **out, const resil_metrics_opts *opts,
                               resil_error *err)
{
    resil_metrics_registry *r = calloc(1, sizeof *r);
    if (!r)
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->flush_mu, NULL);
    r->max_series = opts && opts->max_series ? opts->max_series : DEFAULT_MAX_SERIES;
    pthread_once(&fork_once, fork_register);
    pthread_mutex_lock(&regs_mu);
    r->next_reg = regs;
    regs = r;
    pthread_mutex_unlock(&regs_mu);
    *out = r;
    return 0;
}

static void free_child(struct child *c)
{
    if (c->values)
        for (size_t i = 0; i < c->fam->nlabels; i++)
            free(c->values[i]);
    free(c->values);
    free(c->cells);
    free(c->flushed_buckets);
    free(c);
}

static void free_family(struct family *f)
{
    for (struct child *c = f->first, *n; c; c = n) {
        n = c->next;
        free_child(c);
    }
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->labels);
    free(f->bounds);
    free(f->table);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void resil_metrics_registry_free(resil_metrics_registry *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&regs_mu);
    for (resil_metrics_registry **p = &regs; *p; p = &(*p)->next_reg)
        if (*p == r) {
            *p = r->next_reg;
            break;
        }
    pthread_mutex_unlock(&regs_mu);
    for (size_t i = 0; i < r->n; i++)
        free_family(r->fams[i]);
    free(r->fams);
    free(r->coll);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->flush_mu);
    free(r);
}

static resil_metrics_registry *default_reg;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

/* In a forked child, every registry holds what the parent recorded:
 * the child's flushes must carry only its own, so the flush marks move to
 * the current values (the child has one thread: no lock is taken, as one
 * held by another thread of the parent would never be released). */
static void mark_flushed(resil_metrics_registry *r)
{
    for (size_t i = 0; i < r->n; i++) {
        struct family *f = r->fams[i];
        for (struct child *c = f->first; c; c = c->next) {
            if (f->type == RESIL_METRIC_COUNTER) {
                c->flushed_value = resil_counter_value((resil_counter *)c);
            } else if (f->type == RESIL_METRIC_GAUGE) {
                c->flushed_value = resil_gauge_value((resil_gauge *)c);
                c->flushed_sum = 1;
            } else {
                for (size_t k = 0; k <= f->nb; k++) {
                    uint64_t n = 0;
                    sum_cells(c, H_BUCKET + k, &n, NULL);
                    c->flushed_buckets[k] = n;
                }
                c->flushed_sum = resil_histogram_sum((resil_histogram *)c);
            }
        }
    }
}

static void registries_atfork_child(void)
{
    for (resil_metrics_registry *r = regs; r; r = r->next_reg)
        mark_flushed(r);
}

static void default_init(void)
{
    if (resil_metrics_registry_new(&default_reg, NULL, NULL) != 0)
        default_reg = NULL;
}

resil_metrics_registry *resil_metrics_default(void)
{
    pthread_once(&default_once, default_init);
    return default_reg;
}

/* ---- families ------------------------------------------------------------------------ */

static int child_new(struct child **out, struct family *f, const char *const *values);

static bool same_schema(const struct family *f, resil_metric_type type, const char *help,
                        const char *const *labels, size_t nlabels, const double *bounds,
                        size_t nb)
{
    if (f->type != type || f->nlabels != nlabels || strcmp(f->help, help ? help : "") != 0)
        return false;
    for (size_t i = 0; i < nlabels; i++)
        if (strcmp(f->labels[i], labels[i]) != 0)
            return false;
    if (type == RESIL_METRIC_HISTOGRAM) {
        if (f->nb != nb)
            return false;
        for (size_t i = 0; i < nb; i++)
            if (f->bounds[i] != bounds[i])
                return false;
    }
    return true;
}

/* The sample and family names a family exports (in either format). */
static size_t exported_names(char out[4][256], resil_metric_type type, const char *base)
{
    static const char *const hist[] = {"", "_bucket", "_count", "_sum"};
    static const char *const ctr[] = {"", "_total"};
    const char *const *suf = type == RESIL_METRIC_HISTOGRAM ? hist : ctr;
    size_t n = type == RESIL_METRIC_HISTOGRAM ? 4 : type == RESIL_METRIC_COUNTER ? 2 : 1;
    for (size_t i = 0; i < n; i++)
        snprintf(out[i], 256, "%s%s", base, suf[i]);
    return n;
}

/* Whether two families would export a name in common. */
static bool names_collide(resil_metric_type ta, const char *a, resil_metric_type tb,
                          const char *b)
{
    char na[4][256], nb[4][256];
    size_t ka = exported_names(na, ta, a), kb = exported_names(nb, tb, b);
    for (size_t i = 0; i < ka; i++)
        for (size_t j = 0; j < kb; j++)
            if (strcmp(na[i], nb[j]) == 0)
                return true;
    return false;
}

/* family_new with a help text that is valid UTF-8. */
static int family_new_valid(resil_metric **out, resil_metrics_registry *r,
                            resil_metric_type type, const char *name, const char *help,
                            const char *const *labels, size_t nlabels, const double *bounds,
                            size_t nb, resil_error *err)
{
    if (!out || !r)
        return resil_error_set(err, RESIL_EINVAL, "registry", "out and the registry are required");
    if (!valid_metric_name(name))
        return resil_error_set(err, RESIL_EINVAL, name ? name : "name",
                               "'%s' is not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
                               name ? name : "(null)");
    if (nlabels > 32 || (nlabels && !labels))
        return resil_error_set(err, RESIL_EINVAL, "labels", "at most 32 labels, given as names");
    for (size_t i = 0; i < nlabels; i++) {
        if (!valid_label_name(labels[i]))
            return resil_error_set(err, RESIL_EINVAL, labels[i] ? labels[i] : "labels",
                                   "'%s' is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, "
                                   "not starting with __)",
                                   labels[i] ? labels[i] : "(null)");
        if (type == RESIL_METRIC_HISTOGRAM && strcmp(labels[i], "le") == 0)
            return resil_error_set(err, RESIL_EINVAL, "le",
                                   "'le' is reserved for a histogram's buckets");
        for (size_t k = 0; k < i; k++)
            if (strcmp(labels[i], labels[k]) == 0)
                return resil_error_set(err, RESIL_EINVAL, labels[i],
                                       "label '%s' is given twice", labels[i]);
    }
    if (type == RESIL_METRIC_HISTOGRAM) {
        if (!bounds) {
            bounds = default_buckets;
            nb = sizeof default_buckets / sizeof default_buckets[0];
        }
        if (nb == 0 || nb > MAX_BUCKETS)
            return resil_error_set(err, RESIL_EINVAL, "buckets", "1..%d buckets are needed",
                                   MAX_BUCKETS);
        for (size_t i = 0; i < nb; i++)
            if (!isfinite(bounds[i]) || (i && !(bounds[i] > bounds[i - 1])))
                return resil_error_set(err, RESIL_EINVAL, "buckets",
                                       "bucket bounds must be finite and strictly increasing "
                                       "(bucket %zu is %g)",
                                       i, bounds[i]);
    }
    /* counters: the family is the name without "_total" */
    size_t nl = strlen(name);
    bool total = type == RESIL_METRIC_COUNTER && nl > 6 && strcmp(name + nl - 6, "_total") == 0;
    size_t bl = total ? nl - 6 : nl;
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++) {
        struct family *f = r->fams[i];
        if (strncmp(f->name, name, bl) == 0 && f->name[bl] == 0) {
            if (same_schema(f, type, help, labels, nlabels, bounds, nb))
                *out = (resil_metric *)f;
            else
                rc = resil_error_set(err, RESIL_EINVAL, name,
                                     "metric '%s' is already registered with another type, "
                                     "help, labels or buckets",
                                     name);
            pthread_mutex_unlock(&r->mu);
            return rc;
        }
    }
    char *base = strndup(name, bl);
    if (!base) {
        pthread_mutex_unlock(&r->mu);
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    }
    if (bl < 240)
        for (size_t i = 0; i < r->n; i++)
            if (names_collide(type, base, r->fams[i]->type, r->fams[i]->name)) {
                rc = resil_error_set(err, RESIL_EINVAL, name,
                                     "metric '%s' would export a name that %s '%s' exports",
                                     name, type_name(r->fams[i]->type), r->fams[i]->name);
                pthread_mutex_unlock(&r->mu);
                free(base);
                return rc;
            }
    struct family *f = calloc(1, sizeof *f);
    if (f && r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct family **v = realloc(r->fams, cap * sizeof *v);
        if (v) {
            r->fams = v;
            r->cap = cap;
        } else {
            free(f);
            f = NULL;
        }
    }
    if (!f) {
        free(f);
        free(base);
        pthread_mutex_unlock(&r->mu);
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    }
    f->reg = r;
    f->name = base;
    f->help = strdup(help ? help : "");
    f->type = type;
    f->nlabels = nlabels;
    f->labels = calloc(nlabels ? nlabels : 1, sizeof *f->labels);
    pthread_mutex_init(&f->mu, NULL);
    bool oom = !f->help || !f->labels;
    for (size_t i = 0; i < nlabels && !oom; i++)
        oom = !(f->labels[i] = strdup(labels[i]));
    if (type == RESIL_METRIC_HISTOGRAM && !oom) {
        f->nb = nb;
        size_t npad = (nb + 1) / 2 * 2;
        f->bounds = aligned_alloc(16, (npad ? npad : 2) * sizeof *f->bounds);
        oom = !f->bounds;
        if (!oom) {
            memcpy(f->bounds, bounds, nb * sizeof *bounds);
            for (size_t i = nb; i < npad; i++)
                f->bounds[i] = INFINITY; /* never below a value */
        }
    }
    size_t words = type == RESIL_METRIC_HISTOGRAM ? H_BUCKET + nb + 1 : 2;
    f->stride = (words * 8 + 63) / 64 * 64;
    struct child *only = NULL;
    if (!oom && nlabels == 0)
        oom = child_new(&only, f, NULL) != 0;
    if (oom) {
        free_family(f);
        pthread_mutex_unlock(&r->mu);
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    }
    r->fams[r->n++] = f;
    pthread_mutex_unlock(&r->mu);
    *out = (resil_metric *)f;
    return 0;
}

/* Registers (or finds) a family.  A help text that is not valid UTF-8 is
 * made valid (each bad byte becomes U+FFFD), as label values are: every
 * export format needs UTF-8. */
static int family_new(resil_metric **out, resil_metrics_registry *r, resil_metric_type type,
                      const char *name, const char *help, const char *const *labels,
                      size_t nlabels, const double *bounds, size_t nb, resil_error *err)
{
    if (!help || utf8_valid(help))
        return family_new_valid(out, r, type, name, help, labels, nlabels, bounds, nb, err);
    char *fixed = utf8_fixed_dup(help);
    if (!fixed)
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    int rc = family_new_valid(out, r, type, name, fixed, labels, nlabels, bounds, nb, err);
    free(fixed);
    return rc;
}

int resil_metrics_counter_new(resil_metric **out, resil_metrics_registry *r, const char *name,
                              const char *help, const char *const *labels, size_t nlabels,
                              resil_error *err)
{
    return family_new(out, r, RESIL_METRIC_COUNTER, name, help, labels, nlabels, NULL, 0, err);
}

int resil_metrics_gauge_new(resil_metric **out, resil_metrics_registry *r, const char *name,
                            const char *help, const char *const *labels, size_t nlabels,
                            resil_error *err)
{
    return family_new(out, r, RESIL_METRIC_GAUGE, name, help, labels, nlabels, NULL, 0, err);
}

int resil_metrics_histogram_new(resil_metric **out, resil_metrics_registry *r, const char *name,
                                const char *help, const char *const *labels, size_t nlabels,
                                const double *buckets, size_t nbuckets, resil_error *err)
{
    return family_new(out, r, RESIL_METRIC_HISTOGRAM, name, help, labels, nlabels, buckets,
                      nbuckets, err);
}

/* ---- children ------------------------------------------------------------------------- */

static uint64_t hash_values(const struct family *f, const char *const *values)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < f->nlabels; i++) {
        for (const char *p = values[i]; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return h;
}

/* Creates a child (f->mu held, or f not yet shared) and links it. */
static int child_new(struct child **out, struct family *f, const char *const *values)
{
    struct child *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->fam = f;
    size_t bytes = (size_t)block_count() * f->stride;
    c->cells = aligned_alloc(64, bytes);
    c->values = calloc(f->nlabels ? f->nlabels : 1, sizeof *c->values);
    if (f->type == RESIL_METRIC_HISTOGRAM)
        c->flushed_buckets = calloc(f->nb + 1, sizeof *c->flushed_buckets);
    bool oom = !c->cells || !c->values ||
               (f->type == RESIL_METRIC_HISTOGRAM && !c->flushed_buckets);
    for (size_t i = 0; i < f->nlabels && !oom; i++)
        oom = !(c->values[i] = strdup(values[i]));
    if (oom) {
        free_child(c);
        return -ENOMEM;
    }
    memset(c->cells, 0, bytes);
    c->stride = (unsigned)f->stride;
    c->npad = (unsigned)(f->nb + 1) / 2 * 2;
    c->bounds = f->bounds;
    c->hash = f->nlabels ? hash_values(f, values) : 0;
    if (f->nlabels) {
        if ((f->n + 1) * 2 > f->slots) {
            size_t slots = f->slots ? f->slots * 2 : 16;
            struct child **t = calloc(slots, sizeof *t);
            if (!t) {
                free_child(c);
                return -ENOMEM;
            }
            for (struct child *k = f->first; k; k = k->next)
                if (k != f->overflow) {
                    k->hnext = t[k->hash & (slots - 1)];
                    t[k->hash & (slots - 1)] = k;
                }
            free(f->table);
            f->table = t;
            f->slots = slots;
        }
        c->hnext = f->table[c->hash & (f->slots - 1)];
        f->table[c->hash & (f->slots - 1)] = c;
    }
    if (f->last)
        f->last->next = c;
    else
        f->first = c;
    f->last = c;
    f->n++;
    *out = c;
    return 0;
}

static void count_overflow(struct family *f);

static int child_get(struct child **out, resil_metric *m, resil_metric_type type,
                     const char *const *values)
{
    struct family *f = (struct family *)m;
    if (!out || !f || f->type != type || (f->nlabels && !values))
        return RESIL_EINVAL;
    for (size_t i = 0; i < f->nlabels; i++)
        if (!values[i])
            return RESIL_EINVAL;
    if (f->nlabels == 0) {
        *out = f->first;
        return 0;
    }
    uint64_t h = hash_values(f, values);
    int rc = 0;
    bool overflowed = false;
    pthread_mutex_lock(&f->mu);
    struct child *c = NULL;
    for (struct child *k = f->slots ? f->table[h & (f->slots - 1)] : NULL; k; k = k->hnext) {
        if (k->hash != h)
            continue;
        size_t i = 0;
        while (i < f->nlabels && strcmp(k->values[i], values[i]) == 0)
            i++;
        if (i == f->nlabels) {
            c = k;
            break;
        }
    }
    if (!c) {
        /* A new child: its label values must be valid UTF-8 (the JSON of a
         * metrics directory and every text format need it).  Values that
         * are not are made valid, each bad byte replaced by U+FFFD, and
         * resolved again: the same bad values always give the same child,
         * and nothing that records a user's name can fail because of it. */
        bool valid = true;
        for (size_t i = 0; i < f->nlabels && valid; i++)
            valid = utf8_valid(values[i]);
        if (!valid) {
            pthread_mutex_unlock(&f->mu);
            char *fixed[32] = {0};
            rc = 0;
            for (size_t i = 0; i < f->nlabels && rc == 0; i++)
                if (!(fixed[i] = utf8_fixed_dup(values[i])))
                    rc = -ENOMEM;
            if (rc == 0)
                rc = child_get(out, m, type, (const char *const *)fixed);
            for (size_t i = 0; i < f->nlabels; i++)
                free(fixed[i]);
            return rc;
        }
        if (f->n - (f->overflow ? 1 : 0) >= f->reg->max_series && f != f->reg->overflow_fam) {
            if (!f->overflow) {
                const char *ov[32];
                for (size_t i = 0; i < f->nlabels; i++)
                    ov[i] = OVERFLOW_VALUE;
                struct child *o;
                rc = child_new(&o, f, ov);
                if (rc == 0)
                    f->overflow = o;
            }
            c = f->overflow;
            overflowed = true;
        } else {
            rc = child_new(&c, f, values);
        }
    }
    pthread_mutex_unlock(&f->mu);
    if (rc)
        return rc;
    if (overflowed)
        count_overflow(f);
    *out = c;
    return 0;
}

int resil_counter_get(resil_counter **out, resil_metric *m, const char *const *values)
{
    return child_get((struct child **)out, m, RESIL_METRIC_COUNTER, values);
}

int resil_gauge_get(resil_gauge **out, resil_metric *m, const char *const *values)
{
    return child_get((struct child **)out, m, RESIL_METRIC_GAUGE, values);
}

int resil_histogram_get(resil_histogram **out, resil_metric *m, const char *const *values)
{
    return child_get((struct child **)out, m, RESIL_METRIC_HISTOGRAM, values);
}

static void count_overflow(struct family *f)
{
    resil_metrics_registry *r = f->reg;
    if (f == r->overflow_fam)
        return;
    resil_metric *m;
    static const char *const lab[] = {"metric"};
    if (family_new(&m, r, RESIL_METRIC_COUNTER, "resil_metrics_cardinality_overflow_total",
                   "Label combinations refused by a metric family's series cap (recorded in "
                   "its overflow series instead).",
                   lab, 1, NULL, 0, NULL) != 0)
        return;
    r->overflow_fam = (struct family *)m;
    const char *v[] = {f->name};
    resil_counter *c;
    if (resil_counter_get(&c, m, v) == 0)
        resil_counter_inc(c);
}

/* ---- updates ------------------------------------------------------------------------------ */

/* The external definitions of the inline functions (C11 6.7.4). */
extern inline void resil_counter_inc(resil_counter *c);
extern inline void resil_histogram_observe(resil_histogram *h, double v);

void resil_counter_add(resil_counter *c, double v)
{
    if (!(v > 0))
        return;
    const struct child *k = (const struct child *)c;
    bool owned;
    _Atomic uint64_t *n = my_cell(k, 0, &owned);
    if (v < 9007199254740992.0 && v == (double)(uint64_t)v)
        cell_add(n, (uint64_t)v, owned);
    else
        cell_add_double(n + 1, v, owned);
}

void resil_gauge_set(resil_gauge *g, double v)
{
    atomic_store_explicit(&((struct child *)g)->gauge, d2u(v), memory_order_relaxed);
}

void resil_gauge_add(resil_gauge *g, double v)
{
    add_double(&((struct child *)g)->gauge, v);
}


static void sum_cells(const struct child *c, size_t i, uint64_t *n, double *d)
{
    for (unsigned s = 0; s < nblocks; s++) {
        if (n)
            *n += atomic_load_explicit(cell(c, s, i), memory_order_relaxed);
        if (d)
            *d += u2d(atomic_load_explicit(cell(c, s, i), memory_order_relaxed));
    }
}

double resil_counter_value(const resil_counter *c)
{
    const struct child *k = (const struct child *)c;
    uint64_t n = 0;
    double d = 0;
    sum_cells(k, 0, &n, NULL);
    sum_cells(k, 1, NULL, &d);
    for (int i = 0; i < 2; i++)
        if (k->sum_of[i])
            d += resil_counter_value((const resil_counter *)k->sum_of[i]);
    return (double)n + d;
}

double resil_gauge_value(const resil_gauge *g)
{
    return u2d(atomic_load_explicit(&((const struct child *)g)->gauge, memory_order_relaxed));
}

uint64_t resil_histogram_count(const resil_histogram *h)
{
    const struct child *c = (const struct child *)h;
    uint64_t n = 0;
    for (size_t i = 0; i <= c->fam->nb; i++)
        sum_cells(c, H_BUCKET + i, &n, NULL);
    return n;
}

double resil_histogram_sum(const resil_histogram *h)
{
    double d = 0;
    sum_cells((const struct child *)h, H_SUM, NULL, &d);
    return d;
}

/* ---- export --------------------------------------------------------------------------------- */

static void run_collectors(resil_metrics_registry *r); /* see "collectors" below */
static json_t *registry_json(resil_metrics_registry *r, bool delta);

struct buf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* The shortest text that reads back as v; +Inf, -Inf, NaN. */
static void put_number(struct buf *b, double v)
{
    if (isnan(v)) {
        puts_(b, "NaN");
        return;
    }
    if (isinf(v)) {
        puts_(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char tmp[40];
    if (fabs(v) < 9007199254740992.0 && v == (double)(int64_t)v) {
        /* whole numbers (every counter and bucket count): no float formatting */
        int64_t x = (int64_t)v;
        char *e = tmp + sizeof tmp, *p = e;
        uint64_t u = x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (x < 0)
            *--p = '-';
        put(b, p, (size_t)(e - p));
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    puts_(b, tmp);
}

/* OpenMetrics' canonical numbers (for le): Go's shortest %g, exponent form
 * when the exponent is < -4 or >= 6, with ".0" added to integers: 0.0, 1.0,
 * 100000.0, 1e+06, 0.005. */
static void put_number_canonical(struct buf *b, double v)
{
    if (!isfinite(v)) {
        put_number(b, v);
        return;
    }
    char tmp[48];
    int digits = 1;
    for (; digits <= 17; digits++) {
        snprintf(tmp, sizeof tmp, "%.*e", digits - 1, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    int exp = v == 0 ? 0 : atoi(strchr(tmp, 'e') + 1);
    if (exp < -4 || exp >= 6) {
        snprintf(tmp, sizeof tmp, "%.*e", digits - 1, v);
    } else {
        int frac = digits - 1 - exp;
        snprintf(tmp, sizeof tmp, "%.*f", frac > 0 ? frac : 0, v);
    }
    puts_(b, tmp);
    if (!strpbrk(tmp, ".e"))
        puts_(b, ".0");
}

/* Label values: \\, \" and \n escaped (both formats). */
static void put_label_value(struct buf *b, const char *s)
{
    while (*s) {
        size_t run = strcspn(s, "\\\"\n");
        put(b, s, run);
        s += run;
        if (!*s)
            break;
        puts_(b, *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : "\\n");
        s++;
    }
}

/* Help: \\ and \n; OpenMetrics also \". */
static void put_help(struct buf *b, const char *s, bool om)
{
    for (; *s; s++) {
        if (*s == '\\')
            puts_(b, "\\\\");
        else if (*s == '\n')
            puts_(b, "\\n");
        else if (om && *s == '"')
            puts_(b, "\\\"");
        else
            put(b, s, 1);
    }
}

static void put_labels(struct buf *b, const struct child *c, const char *le)
{
    const struct family *f = c->fam;
    if (f->nlabels == 0 && !le)
        return;
    puts_(b, "{");
    for (size_t i = 0; i < f->nlabels; i++) {
        if (i)
            puts_(b, ",");
        puts_(b, f->labels[i]);
        puts_(b, "=\"");
        put_label_value(b, c->values[i]);
        puts_(b, "\"");
    }
    if (le) {
        if (f->nlabels)
            puts_(b, ",");
        puts_(b, "le=\"");
        puts_(b, le);
        puts_(b, "\"");
    }
    puts_(b, "}");
}

static void put_sample(struct buf *b, const struct child *c, const char *suffix, const char *le,
                       double v)
{
    puts_(b, c->fam->name);
    puts_(b, suffix);
    put_labels(b, c, le);
    puts_(b, " ");
    put_number(b, v);
    puts_(b, "\n");
}

static int cmp_fam(const void *a, const void *b)
{
    return strcmp((*(struct family *const *)a)->name, (*(struct family *const *)b)->name);
}

/* The families, sorted by name (a copy of the pointers). */
static struct family **sorted_families(resil_metrics_registry *r, size_t *n)
{
    pthread_mutex_lock(&r->mu);
    struct family **v = malloc((r->n ? r->n : 1) * sizeof *v);
    if (v) {
        if (r->n)
            memcpy(v, r->fams, r->n * sizeof *v);
        *n = r->n;
    }
    pthread_mutex_unlock(&r->mu);
    if (v && *n > 1)
        qsort(v, *n, sizeof *v, cmp_fam);
    return v;
}

static void export_family(struct buf *b, struct family *f, bool om)
{
    static const char *const tname[] = {"", "counter", "gauge", "histogram"};
    bool counter = f->type == RESIL_METRIC_COUNTER;
    const char *famsuffix = counter && !om ? "_total" : "";
    /* 0.0.4: HELP then TYPE, as Prometheus' clients write it; OpenMetrics:
     * TYPE then HELP, the order its specification asks for */
    for (int k = 0; k < 2; k++) {
        bool help = (k == 0) != om;
        puts_(b, help ? "# HELP " : "# TYPE ");
        puts_(b, f->name);
        puts_(b, famsuffix);
        puts_(b, " ");
        if (help)
            put_help(b, f->help, om);
        else
            puts_(b, tname[f->type]);
        puts_(b, "\n");
    }
    pthread_mutex_lock(&f->mu);
    struct child *first = f->first, *last = f->last;
    pthread_mutex_unlock(&f->mu);
    /* the le values, formatted once per family */
    char (*les)[40] = NULL;
    if (f->type == RESIL_METRIC_HISTOGRAM && (les = malloc((f->nb + 1) * sizeof *les))) {
        for (size_t i = 0; i < f->nb; i++) {
            struct buf t = {0};
            if (om)
                put_number_canonical(&t, f->bounds[i]);
            else
                put_number(&t, f->bounds[i]);
            snprintf(les[i], sizeof les[i], "%s", t.p ? t.p : "0");
            free(t.p);
        }
        strcpy(les[f->nb], "+Inf");
    } else if (f->type == RESIL_METRIC_HISTOGRAM) {
        b->oom = true;
        return;
    }
    /* children are only ever appended: walking the list without the lock is
     * safe up to the last one seen under it */
    for (struct child *c = first; c; c = c->next) {
        if (f->type == RESIL_METRIC_COUNTER) {
            put_sample(b, c, "_total", NULL, resil_counter_value((resil_counter *)c));
        } else if (f->type == RESIL_METRIC_GAUGE) {
            put_sample(b, c, "", NULL, resil_gauge_value((resil_gauge *)c));
        } else {
            uint64_t cum = 0;
            for (size_t i = 0; i <= f->nb; i++) {
                uint64_t n = 0;
                sum_cells(c, H_BUCKET + i, &n, NULL);
                cum += n;
                put_sample(b, c, "_bucket", les[i], (double)cum);
            }
            /* count = the +Inf bucket, read once, so they always agree */
            put_sample(b, c, "_count", NULL, (double)cum);
            put_sample(b, c, "_sum", NULL, resil_histogram_sum((resil_histogram *)c));
        }
        if (c == last)
            break;
    }
    free(les);
}

const char *resil_metrics_content_type(resil_metrics_format format)
{
    switch (format) {
    case RESIL_METRICS_OPENMETRICS:
        return "application/openmetrics-text; version=1.0.0; charset=utf-8";
    case RESIL_METRICS_JSON:
        return "application/json";
    default:
        return "text/plain; version=0.0.4; charset=utf-8";
    }
}

int resil_metrics_format_parse(resil_metrics_format *out, const char *name)
{
    if (!name)
        return RESIL_EINVAL;
    if (strcasecmp(name, "prometheus") == 0 || strcasecmp(name, "text") == 0)
        *out = RESIL_METRICS_PROMETHEUS;
    else if (strcasecmp(name, "openmetrics") == 0)
        *out = RESIL_METRICS_OPENMETRICS;
    else if (strcasecmp(name, "json") == 0)
        *out = RESIL_METRICS_JSON;
    else
        return RESIL_EINVAL;
    return 0;
}

int resil_metrics_export(char **out, size_t *len, resil_metrics_registry *r,
                         resil_metrics_format format)
{
    if (!out || !r)
        return RESIL_EINVAL;
    run_collectors(r);
    if (format == RESIL_METRICS_JSON) {
        json_t *doc = registry_json(r, false);
        char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
        if (!s)
            return -ENOMEM;
        size_t n = strlen(s);
        char *p = malloc(n + 2);
        if (!p) {
            free(s);
            return -ENOMEM;
        }
        memcpy(p, s, n);
        p[n] = '\n';
        p[n + 1] = 0;
        free(s);
        *out = p;
        if (len)
            *len = n + 1;
        return 0;
    }
    bool om = format == RESIL_METRICS_OPENMETRICS;
    size_t n = 0;
    struct family **fams = sorted_families(r, &n);
    if (!fams)
        return -ENOMEM;
    struct buf b = {0};
    for (size_t i = 0; i < n; i++)
        export_family(&b, fams[i], om);
    if (om)
        puts_(&b, "# EOF\n");
    free(fams);
    if (!b.p && !b.oom)
        put(&b, "", 0);
    if (b.oom) {
        free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    if (len)
        *len = b.len;
    return 0;
}

int resil_metrics_write_textfile(resil_metrics_registry *r, const char *dir, const char *name,
                                 resil_error *err)
{
    if (!r || !dir || !name || !*name || strchr(name, '/'))
        return resil_error_set(err, RESIL_EINVAL, "name",
                               "a registry, a directory and a file name without '/' are needed");
    char *text;
    size_t len;
    int rc = resil_metrics_export(&text, &len, r, RESIL_METRICS_PROMETHEUS);
    if (rc)
        return resil_error_set(err, rc, NULL, "out of memory");
    char *path;
    if (asprintf(&path, "%s/%s.prom", dir, name) < 0) {
        free(text);
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    }
    rc = resil_write_file_atomic(path, text, len, NULL, err);
    free(path);
    free(text);
    return rc;
}

/* ---- JSON ------------------------------------------------------------------------------------ */

static json_t *json_number(double v)
{
    if (isfinite(v))
        return json_real(v);
    return json_string(isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
}

static const char *type_name(resil_metric_type t)
{
    return t == RESIL_METRIC_COUNTER ? "counter" : t == RESIL_METRIC_GAUGE ? "gauge" : "histogram";
}

/* One family as JSON; with `delta`, what its children gained since the last
 * flush (and the flush marks are moved on); children with nothing new are
 * left out then. */
static json_t *family_json(struct family *f, bool delta)
{
    json_t *fj = json_object();
    json_t *labels = json_array();
    json_t *series = json_array();
    for (size_t i = 0; i < f->nlabels; i++)
        json_array_append_new(labels, json_string(f->labels[i]));
    json_object_set_new(fj, "name", json_string(f->name));
    json_object_set_new(fj, "type", json_string(type_name(f->type)));
    json_object_set_new(fj, "help", json_string(f->help));
    json_object_set_new(fj, "labels", labels);
    if (f->type == RESIL_METRIC_HISTOGRAM) {
        json_t *bj = json_array();
        for (size_t i = 0; i < f->nb; i++)
            json_array_append_new(bj, json_real(f->bounds[i]));
        json_object_set_new(fj, "buckets", bj);
    }
    pthread_mutex_lock(&f->mu);
    struct child *first = f->first, *last = f->last;
    pthread_mutex_unlock(&f->mu);
    for (struct child *c = first; c; c = c->next) {
        json_t *sj = json_object();
        json_t *lv = json_object();
        for (size_t i = 0; i < f->nlabels; i++)
            json_object_set_new(lv, f->labels[i], json_string(c->values[i]));
        json_object_set_new(sj, "labels", lv);
        bool keep = true;
        if (f->type == RESIL_METRIC_COUNTER) {
            double v = resil_counter_value((resil_counter *)c);
            double out = v;
            if (delta) {
                out = v - c->flushed_value;
                c->flushed_value = v;
                keep = out > 0;
            }
            json_object_set_new(sj, "value", json_number(out));
        } else if (f->type == RESIL_METRIC_GAUGE) {
            double v = resil_gauge_value((resil_gauge *)c);
            if (delta) { /* a gauge is written when it changed */
                keep = d2u(v) != d2u(c->flushed_value) || !c->flushed_sum;
                c->flushed_value = v;
                c->flushed_sum = 1; /* "written once" */
            }
            json_object_set_new(sj, "value", json_number(v));
        } else {
            json_t *counts = json_array();
            uint64_t total = 0;
            for (size_t i = 0; i <= f->nb; i++) {
                uint64_t n = 0;
                sum_cells(c, H_BUCKET + i, &n, NULL);
                uint64_t out = n;
                if (delta) {
                    out = n - c->flushed_buckets[i];
                    c->flushed_buckets[i] = n;
                }
                total += out;
                json_array_append_new(counts, json_integer((json_int_t)out));
            }
            double sum = resil_histogram_sum((resil_histogram *)c), outsum = sum;
            if (delta) {
                outsum = sum - c->flushed_sum;
                c->flushed_sum = sum;
                keep = total > 0;
            }
            /* per-bucket counts (not cumulative), +Inf last */
            json_object_set_new(sj, "counts", counts);
            json_object_set_new(sj, "count", json_integer((json_int_t)total));
            json_object_set_new(sj, "sum", json_number(outsum));
        }
        if (keep)
            json_array_append_new(series, sj);
        else
            json_decref(sj);
        if (c == last)
            break;
    }
    json_object_set_new(fj, "series", series);
    return fj;
}

static json_t *registry_json(resil_metrics_registry *r, bool delta)
{
    size_t n = 0;
    struct family **fams = sorted_families(r, &n);
    if (!fams)
        return NULL;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *fj = family_json(fams[i], delta);
        if (delta && json_array_size(json_object_get(fj, "series")) == 0)
            json_decref(fj);
        else
            json_array_append_new(arr, fj);
    }
    free(fams);
    json_t *doc = json_object();
    json_object_set_new(doc, "metrics", arr);
    return doc;
}

json_t *resil_metrics_to_json(resil_metrics_registry *r)
{
    if (!r)
        return NULL;
    run_collectors(r);
    return registry_json(r, false);
}

static bool json_to_double(const json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "NaN") == 0)
            *out = NAN;
        else if (strcmp(s, "+Inf") == 0)
            *out = INFINITY;
        else if (strcmp(s, "-Inf") == 0)
            *out = -INFINITY;
        else
            return false;
        return true;
    }
    return false;
}

#define PBAD(...) resil_error_set(err, RESIL_EPARSE, NULL, __VA_ARGS__)

static int merge_family(resil_metrics_registry *r, const json_t *fj, resil_error *err)
{
    const char *name = json_string_value(json_object_get(fj, "name"));
    const char *type = json_string_value(json_object_get(fj, "type"));
    const char *help = json_string_value(json_object_get(fj, "help"));
    const json_t *labels = json_object_get(fj, "labels");
    const json_t *series = json_object_get(fj, "series");
    if (!name || !type || !json_is_array(labels) || !json_is_array(series))
        return PBAD("a metric needs name, type, labels and series");
    size_t nl = json_array_size(labels);
    if (nl > 32)
        return PBAD("metric %s: too many labels", name);
    const char *lab[32];
    for (size_t i = 0; i < nl; i++)
        if (!(lab[i] = json_string_value(json_array_get(labels, i))))
            return PBAD("metric %s: label names must be strings", name);
    resil_metric *m;
    int rc;
    resil_metric_type t;
    double bounds[MAX_BUCKETS];
    size_t nb = 0;
    if (strcmp(type, "counter") == 0) {
        t = RESIL_METRIC_COUNTER;
        rc = resil_metrics_counter_new(&m, r, name, help, lab, nl, err);
    } else if (strcmp(type, "gauge") == 0) {
        t = RESIL_METRIC_GAUGE;
        rc = resil_metrics_gauge_new(&m, r, name, help, lab, nl, err);
    } else if (strcmp(type, "histogram") == 0) {
        t = RESIL_METRIC_HISTOGRAM;
        const json_t *bj = json_object_get(fj, "buckets");
        nb = json_array_size(bj);
        if (!json_is_array(bj) || nb == 0 || nb > MAX_BUCKETS)
            return PBAD("histogram %s: 1..%d buckets are needed", name, MAX_BUCKETS);
        for (size_t i = 0; i < nb; i++)
            if (!json_to_double(json_array_get(bj, i), &bounds[i]))
                return PBAD("histogram %s: bucket bounds must be numbers", name);
        rc = resil_metrics_histogram_new(&m, r, name, help, lab, nl, bounds, nb, err);
    } else {
        return PBAD("metric %s: unknown type '%s'", name, type);
    }
    if (rc)
        return rc;
    size_t i;
    const json_t *sj;
    json_array_foreach(series, i, sj)
    {
        const json_t *lv = json_object_get(sj, "labels");
        const char *vals[32];
        for (size_t k = 0; k < nl; k++)
            if (!(vals[k] = json_string_value(json_object_get(lv, lab[k]))))
                return PBAD("metric %s: a series lacks label '%s'", name, lab[k]);
        struct child *c;
        rc = child_get(&c, m, t, vals);
        if (rc)
            return resil_error_set(err, rc, name, "metric %s: %s", name, resil_strerror(rc));
        if (t == RESIL_METRIC_HISTOGRAM) {
            const json_t *counts = json_object_get(sj, "counts");
            double sum;
            if (json_array_size(counts) != nb + 1 || !json_to_double(json_object_get(sj, "sum"), &sum))
                return PBAD("histogram %s: a series needs %zu counts and a sum", name, nb + 1);
            for (size_t k = 0; k <= nb; k++)
                if (!json_is_integer(json_array_get(counts, k)) ||
                    json_integer_value(json_array_get(counts, k)) < 0)
                    return PBAD("histogram %s: counts must be integers >= 0", name);
            bool owned;
            _Atomic uint64_t *hc = my_cell(c, 0, &owned);
            for (size_t k = 0; k <= nb; k++)
                cell_add(hc + H_BUCKET + k,
                         (uint64_t)json_integer_value(json_array_get(counts, k)), owned);
            cell_add_double(hc + H_SUM, sum, owned);
        } else {
            double v;
            if (!json_to_double(json_object_get(sj, "value"), &v))
                return PBAD("metric %s: a series needs a value", name);
            if (t == RESIL_METRIC_COUNTER)
                resil_counter_add((resil_counter *)c, v);
            else
                resil_gauge_set((resil_gauge *)c, v);
        }
    }
    return 0;
}

int resil_metrics_merge_json(resil_metrics_registry *r, const json_t *doc, resil_error *err)
{
    const json_t *arr = json_object_get(doc, "metrics");
    if (!r || !json_is_array(arr))
        return PBAD("a metrics document is an object with a \"metrics\" array");
    size_t i;
    const json_t *fj;
    json_array_foreach(arr, i, fj)
    {
        int rc = merge_family(r, fj, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- metrics directories ------------------------------------------------------------------------ */

static int parse_bool(const char *v, bool *out); /* see "environment" below */

/* RESIL_METRICS_DIR_SHARED: the opt-in of resil_metrics_flush_dir (and so
 * of `resil run --metrics-dir`) to a shared directory.  Returns 0 or
 * RESIL_EINVAL naming the bad value. */
static int env_dir_shared(bool *out, resil_error *err)
{
    *out = false;
    const char *v = getenv("RESIL_METRICS_DIR_SHARED");
    if (!v || !*v)
        return 0;
    if (parse_bool(v, out) != 0)
        return resil_error_set(err, RESIL_EINVAL, "RESIL_METRICS_DIR_SHARED",
                               "RESIL_METRICS_DIR_SHARED='%.64s' is not a boolean (expected "
                               "1/0, true/false, yes/no or on/off)",
                               v);
    return 0;
}

/* Makes sure dir/name is a regular file (created with `mode` when missing),
 * never reached through a symlink, and, unless allow_shared, owned by the
 * caller. */
static int dir_file_check(int dfd, const char *dir, const char *name, mode_t mode,
                          bool allow_shared, resil_error *err)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = resil__sys.openat(dfd, name,
                               O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC |
                                   O_NOCTTY | O_NONBLOCK,
                               mode);
    if (fd < 0) {
        int e = errno;
        struct stat lst;
        /* (in a sticky directory the kernel may say EACCES for a link) */
        if (e == ELOOP || (e == EACCES && resil__sys.fstatat(dfd, name, &lst,
                                                            AT_SYMLINK_NOFOLLOW) == 0 &&
                           S_ISLNK(lst.st_mode)))
            return resil_error_set(err, -ELOOP, path,
                                   "refusing %s: it is a symbolic link (the files of a metrics "
                                   "directory are never reached through a link)",
                                   path);
        return resil_error_set(err, -e, path, "cannot open %s: %s", path, strerror(e));
    }
    struct stat st;
    int rc = 0;
    if (resil__sys.fstat(fd, &st) != 0)
        rc = resil_error_set(err, -errno, path, "cannot stat %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = resil_error_set(err, -EPERM, path, "refusing %s: it is not a regular file", path);
    else
        rc = resil__file_check_owner(path, &st, allow_shared, err);
    resil__sys.close(fd);
    return rc;
}

/* The directory of a flush: created (dir_mode) when missing, never a link
 * that another user planted, private unless allow_shared; its files
 * regular, the caller's and never links.  Returns 0 or an error. */
static int dir_prepare(const char *dir, const char *file, const resil_metrics_dir_opts *o,
                       resil_error *err)
{
    mode_t dmode = o->dir_mode ? (mode_t)o->dir_mode : 0700;
    mode_t fmode = o->file_mode ? (mode_t)o->file_mode : 0600;
    if (resil__sys.mkdir(dir, dmode) != 0 && errno != EEXIST)
        return resil_error_set(err, -errno, dir, "cannot create the metrics directory %s: %s",
                               dir, strerror(errno));
    struct stat lst, st;
    if (resil__sys.lstat(dir, &lst) != 0)
        return resil_error_set(err, -errno, dir, "cannot stat the metrics directory %s: %s",
                               dir, strerror(errno));
    if (S_ISLNK(lst.st_mode)) {
        int rc = resil__symlink_check(dir, &lst, err);
        if (rc)
            return rc;
    }
    int dfd = resil__sys.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (dfd < 0)
        return resil_error_set(err, -errno, dir, "cannot open the metrics directory %s: %s",
                               dir, strerror(errno));
    int rc = 0;
    if (resil__sys.fstat(dfd, &st) != 0)
        rc = resil_error_set(err, -errno, dir, "cannot stat the metrics directory %s: %s", dir,
                             strerror(errno));
    if (rc == 0) {
        rc = resil__dir_check_private(dir, &st, o->allow_shared, err);
        if (rc && err) { /* say how to opt in */
            char m[sizeof err->message];
            snprintf(m, sizeof m, "%s", err->message);
            resil_error_set(err, rc, dir,
                            "metrics directory: %s (RESIL_METRICS_DIR_SHARED=1, or "
                            "resil_metrics_dir_opts.allow_shared)",
                            m);
        }
    }
    char lock[300];
    snprintf(lock, sizeof lock, "%s.lock", file);
    if (rc == 0)
        rc = dir_file_check(dfd, dir, file, fmode, o->allow_shared, err);
    if (rc == 0)
        rc = dir_file_check(dfd, dir, lock, resil__lock_mode_for(fmode), o->allow_shared, err);
    resil__sys.close(dfd);
    return rc;
}

int resil_metrics_flush_dir_opts(resil_metrics_registry *r, const char *dir,
                                 const resil_metrics_dir_opts *opts, resil_error *err)
{
    if (!r || !dir || !*dir)
        return resil_error_set(err, RESIL_EINVAL, "dir", "a registry and a directory are needed");
    resil_metrics_dir_opts o = RESIL_METRICS_DIR_OPTS_INIT;
    int rc = 0;
    if (opts)
        o = *opts;
    else if ((rc = env_dir_shared(&o.allow_shared, err)) != 0)
        return rc;
    rc = dir_prepare(dir, "metrics.ndjson", &o, err);
    if (rc)
        return rc;
    char *path;
    if (asprintf(&path, "%s/metrics.ndjson", dir) < 0)
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    resil_file_opts fo = RESIL_FILE_OPTS_INIT;
    fo.mode = o.file_mode ? o.file_mode : 0600;
    run_collectors(r);
    pthread_mutex_lock(&r->flush_mu);
    json_t *doc = registry_json(r, true);
    if (!doc) {
        rc = resil_error_set(err, -ENOMEM, NULL, "out of memory");
    } else if (json_array_size(json_object_get(doc, "metrics")) > 0) {
        json_object_set_new(doc, "pid", json_integer(getpid()));
        json_object_set_new(doc, "ts", json_real((double)resil_clock_wall_ns(NULL) / 1e9));
        rc = resil_append_ndjson_safe(path, doc, &fo, err);
        /* A failed append leaves the marks moved on: those counts are lost
         * to the directory (the caller was told), never written twice. */
    }
    pthread_mutex_unlock(&r->flush_mu);
    json_decref(doc);
    free(path);
    return rc;
}

int resil_metrics_flush_dir(resil_metrics_registry *r, const char *dir, resil_error *err)
{
    return resil_metrics_flush_dir_opts(r, dir, NULL, err);
}

/* Whether the families of `rec` (a registry holding one record) can be
 * merged into r: none clashes with one of r (the same name with another
 * type, help, labels or buckets, or an exported name in common). */
static int families_fit(resil_metrics_registry *r, resil_metrics_registry *rec,
                        resil_error *err)
{
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < rec->n && rc == 0; i++) {
        struct family *g = rec->fams[i];
        for (size_t k = 0; k < r->n && rc == 0; k++) {
            struct family *f = r->fams[k];
            if (strcmp(f->name, g->name) == 0) {
                if (!same_schema(f, g->type, g->help, (const char *const *)g->labels,
                                 g->nlabels, g->bounds, g->nb))
                    rc = resil_error_set(err, RESIL_EPARSE, g->name,
                                         "metric '%s' was recorded earlier with another type, "
                                         "help, labels or buckets",
                                         g->name);
            } else if (names_collide(g->type, g->name, f->type, f->name)) {
                rc = resil_error_set(err, RESIL_EPARSE, g->name,
                                     "metric '%s' would export a name that %s '%s' exports",
                                     g->name, type_name(f->type), f->name);
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* Merges one record into r whole or not at all: it is first merged into a
 * registry of its own (which checks all of it), then checked against r. */
static int merge_record(resil_metrics_registry *r, const json_t *record, resil_error *err)
{
    resil_metrics_registry *one = NULL;
    int rc = resil_metrics_registry_new(&one, NULL, err);
    if (rc)
        return rc;
    rc = resil_metrics_merge_json(one, record, err);
    if (rc == 0)
        rc = families_fit(r, one, err);
    resil_metrics_registry_free(one);
    if (rc == 0)
        rc = resil_metrics_merge_json(r, record, err);
    return rc;
}

struct load_ctx {
    resil_metrics_registry *r;
    const char *path;
    resil_metrics_dir_stats *st;
    resil_error *err;
    int fatal;       /* out of memory: the read stops */
    size_t reported; /* bad lines the reader reported */
};

static void load_bad(struct load_ctx *x, size_t line, const char *what)
{
    if (x->st->bad_records++ == 0) {
        x->st->first_bad_line = line;
        snprintf(x->st->first_bad, sizeof x->st->first_bad, "%s:%zu: %s", x->path, line, what);
    }
}

static void load_bad_line(size_t line, const char *message, void *arg)
{
    char what[400];
    struct load_ctx *x = arg;
    snprintf(what, sizeof what, "not a JSON record (%.300s)", message ? message : "?");
    x->reported++;
    load_bad(x, line, what);
}

static int load_record(json_t *record, size_t line, void *arg)
{
    struct load_ctx *x = arg;
    resil_error e;
    resil_error_clear(&e);
    int rc = merge_record(x->r, record, &e);
    if (rc == -ENOMEM) {
        resil_error_set(x->err, rc, x->path, "%s:%zu: out of memory", x->path, line);
        if (x->err)
            x->err->line = (int)line;
        x->fatal = rc;
        return rc;
    }
    if (rc) {
        char what[560];
        snprintf(what, sizeof what, "not a metrics record (%.500s)",
                 e.message[0] ? e.message : resil_strerror(rc));
        load_bad(x, line, what);
        return 0;
    }
    x->st->records++;
    return 0;
}

int resil_metrics_load_dir_stats(resil_metrics_registry **out, const char *dir,
                                 resil_metrics_dir_stats *stats, resil_error *err)
{
    resil_metrics_dir_stats mine;
    resil_metrics_dir_stats *st = stats ? stats : &mine;
    memset(st, 0, sizeof *st);
    if (!out || !dir)
        return resil_error_set(err, RESIL_EINVAL, "dir", "a directory is needed");
    *out = NULL;
    char *path;
    if (asprintf(&path, "%s/metrics.ndjson", dir) < 0)
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    resil_metrics_registry *r = NULL;
    int rc = resil_metrics_registry_new(&r, NULL, err);
    if (rc) {
        free(path);
        return rc;
    }
    struct load_ctx x = {r, path, st, err, 0, 0};
    resil_ndjson_stats ns;
    memset(&ns, 0, sizeof ns);
    rc = resil_read_ndjson_safe(path, load_record, load_bad_line, &x, false, &ns, NULL, err);
    for (size_t k = x.reported; rc == 0 && k < ns.bad_lines; k++) /* not reported to us */
        load_bad(&x, ns.first_bad_line, "not a JSON record");
    if (rc == -ENOENT) {
        resil_error_set(err, rc, path, "no metrics in %s (%s is missing)", dir, path);
    } else if (rc && !x.fatal && err && !strstr(err->message, path)) {
        char m[sizeof err->message];
        snprintf(m, sizeof m, "%s", err->message);
        resil_error_set(err, rc, path, "%s: %s", path, m);
    }
    if (rc == 0 && st->bad_records > 0) {
        /* Said in the metrics too, where a scraper sees it. */
        resil_metric *m;
        resil_counter *c;
        if (resil_metrics_counter_new(&m, r, "resil_metrics_dir_bad_records_total",
                                      "Records of the metrics directory skipped: not JSON, not "
                                      "a metrics record, or in conflict with earlier records.",
                                      NULL, 0, NULL) == 0 &&
            resil_counter_get(&c, m, NULL) == 0)
            resil_counter_add(c, (double)st->bad_records);
    }
    free(path);
    if (rc) {
        resil_metrics_registry_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int resil_metrics_load_dir(resil_metrics_registry **out, const char *dir, resil_error *err)
{
    return resil_metrics_load_dir_stats(out, dir, NULL, err);
}

/* ---- environment ----------------------------------------------------------------------------- */

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

int resil_metrics_env(bool *enabled, size_t *max_entries, resil_error *err)
{
    bool en = true;
    size_t max = 10000;
    int rc = 0;
    const char *v = getenv("RESIL_METRICS_ENABLED");
    if (v && parse_bool(v, &en) != 0) {
        en = true;
        rc = resil_error_set(err, RESIL_EINVAL, "RESIL_METRICS_ENABLED",
                             "RESIL_METRICS_ENABLED='%s' is not true or false (1/0, yes/no, "
                             "on/off); using the default true",
                             v);
    }
    v = getenv("RESIL_METRICS_MAX_ENTRIES");
    if (v) {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (end == v || *end || errno || x < 1 || x > 10000000) {
            if (rc == 0)
                rc = resil_error_set(err, RESIL_EINVAL, "RESIL_METRICS_MAX_ENTRIES",
                                     "RESIL_METRICS_MAX_ENTRIES='%s' is not an integer in "
                                     "1..10000000; using the default 10000",
                                     v);
            rc = RESIL_EINVAL;
        } else {
            max = (size_t)x;
        }
    }
    if (enabled)
        *enabled = en;
    if (max_entries)
        *max_entries = max;
    return rc;
}

static bool env_enabled = true;
static size_t env_max_entries = 10000;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void env_init(void)
{
    resil_error e;
    resil_error_clear(&e);
    if (resil_metrics_env(&env_enabled, &env_max_entries, &e) != 0)
        resil__log(RESIL_LOG_WARN, "%s", e.message);
}

bool resil_metrics_enabled(void)
{
    pthread_once(&env_once, env_init);
    return env_enabled;
}

/* ---- the ring of recent entries and the original's record_* ----------------------------------- */

enum { E_RETRY = 1, E_BREAKER, E_OSC };

struct entry {
    int64_t wall_ns;
    int kind;
    char name[64];
    char what[24]; /* breaker state, oscillation pattern */
    int n;         /* attempt, cycles */
    bool ok;
    double duration_s;
};

static pthread_mutex_t ring_mu = PTHREAD_MUTEX_INITIALIZER;
static struct entry *ring;
static size_t ring_head, ring_count;

static int ring_add(const struct entry *e)
{
    pthread_mutex_lock(&ring_mu);
    if (!ring && !(ring = calloc(env_max_entries, sizeof *ring))) {
        pthread_mutex_unlock(&ring_mu);
        return -ENOMEM;
    }
    ring[ring_head] = *e;
    ring_head = (ring_head + 1) % env_max_entries;
    if (ring_count < env_max_entries)
        ring_count++;
    pthread_mutex_unlock(&ring_mu);
    return 0;
}

void resil_metrics_entries_clear(void)
{
    pthread_mutex_lock(&ring_mu);
    ring_head = ring_count = 0;
    pthread_mutex_unlock(&ring_mu);
}

static struct entry entry_of(int kind, const char *name)
{
    struct entry e;
    memset(&e, 0, sizeof e);
    e.wall_ns = resil_clock_wall_ns(NULL);
    e.kind = kind;
    utf8_fix_into(e.name, sizeof e.name, name); /* the summary is JSON: keys must be UTF-8 */
    return e;
}

int resil_record_retry_attempt(const char *operation, int attempt, bool success,
                               double duration_s)
{
    if (!resil_metrics_enabled())
        return 0;
    if (!operation)
        return RESIL_EINVAL;
    resil_metrics_registry *r = resil_metrics_default();
    if (!r)
        return -ENOMEM;
    static const char *const lab[] = {"name", "result"};
    static const char *const lab1[] = {"name"};
    resil_metric *m, *h;
    int rc = resil_metrics_counter_new(&m, r, "resil_retry_attempts_total",
                                       "Attempts made by retries, by result.", lab, 2, NULL);
    if (rc == 0)
        rc = resil_metrics_histogram_new(&h, r, "resil_retry_attempt_duration_seconds",
                                         "How long attempts took.", lab1, 1, NULL, 0, NULL);
    if (rc)
        return rc;
    const char *v[] = {operation, success ? "success" : "failure"};
    const char *vh[] = {operation};
    resil_counter *c;
    resil_histogram *hh;
    if ((rc = resil_counter_get(&c, m, v)) != 0 || (rc = resil_histogram_get(&hh, h, vh)) != 0)
        return rc;
    resil_counter_inc(c);
    if (duration_s >= 0)
        resil_histogram_observe(hh, duration_s);
    struct entry e = entry_of(E_RETRY, operation);
    e.n = attempt;
    e.ok = success;
    e.duration_s = duration_s;
    return ring_add(&e);
}

int resil_record_circuit_breaker_state(const char *service, const char *state)
{
    if (!resil_metrics_enabled())
        return 0;
    static const char *const states[] = {"closed", "open", "half_open", "forced_open",
                                         "disabled"};
    if (!service || !state)
        return RESIL_EINVAL;
    bool known = false;
    for (size_t i = 0; i < 5; i++)
        known |= strcmp(states[i], state) == 0;
    if (!known)
        return RESIL_EINVAL;
    resil_metrics_registry *r = resil_metrics_default();
    if (!r)
        return -ENOMEM;
    static const char *const lab[] = {"name", "state"};
    resil_metric *m;
    int rc = resil_metrics_gauge_new(&m, r, "resil_circuitbreaker_state",
                                     "1 for a circuit breaker's current state, 0 for the others.",
                                     lab, 2, NULL);
    if (rc)
        return rc;
    for (size_t i = 0; i < 5; i++) {
        const char *v[] = {service, states[i]};
        resil_gauge *g;
        if ((rc = resil_gauge_get(&g, m, v)) != 0)
            return rc;
        resil_gauge_set(g, strcmp(states[i], state) == 0 ? 1 : 0);
    }
    struct entry e = entry_of(E_BREAKER, service);
    utf8_fix_into(e.what, sizeof e.what, state);
    return ring_add(&e);
}

int resil_record_oscillation_event(const char *pattern, const char *agent, int cycles)
{
    if (!resil_metrics_enabled())
        return 0;
    if (!pattern || cycles < 0)
        return RESIL_EINVAL;
    resil_metrics_registry *r = resil_metrics_default();
    if (!r)
        return -ENOMEM;
    static const char *const lab[] = {"pattern"};
    resil_metric *m;
    int rc = resil_metrics_counter_new(&m, r, "resil_oscillation_events_total",
                                       "Rework loops detected, by pattern.", lab, 1, NULL);
    if (rc)
        return rc;
    const char *v[] = {pattern};
    resil_counter *c;
    if ((rc = resil_counter_get(&c, m, v)) != 0)
        return rc;
    resil_counter_inc(c);
    struct entry e = entry_of(E_OSC, agent ? agent : "");
    utf8_fix_into(e.what, sizeof e.what, pattern);
    e.n = cycles;
    return ring_add(&e);
}

json_t *resil_get_metrics_summary(void)
{
    bool en = resil_metrics_enabled();
    json_t *s = json_object();
    json_t *retry = json_object(), *cb = json_object(), *osc = json_object();
    int64_t oldest = 0, newest = 0;
    size_t retries = 0, ok = 0, cbn = 0, oscn = 0;
    double dur = 0;
    pthread_mutex_lock(&ring_mu);
    size_t count = ring_count;
    for (size_t k = 0; k < ring_count; k++) {
        const struct entry *e =
            &ring[(ring_head + env_max_entries - ring_count + k) % env_max_entries];
        if (k == 0)
            oldest = e->wall_ns;
        newest = e->wall_ns;
        if (e->kind == E_RETRY) {
            retries++;
            ok += e->ok;
            if (e->duration_s > 0)
                dur += e->duration_s;
        } else if (e->kind == E_BREAKER) {
            cbn++;
            json_object_set_new(cb, e->name, json_string(e->what));
        } else if (e->kind == E_OSC) {
            oscn++;
            json_t *n = json_object_get(osc, e->what);
            json_object_set_new(osc, e->what,
                                json_integer((n ? json_integer_value(n) : 0) + 1));
        }
    }
    pthread_mutex_unlock(&ring_mu);
    json_object_set_new(retry, "attempts", json_integer((json_int_t)retries));
    json_object_set_new(retry, "successes", json_integer((json_int_t)ok));
    json_object_set_new(retry, "failures", json_integer((json_int_t)(retries - ok)));
    json_object_set_new(retry, "total_duration_s", json_real(dur));
    json_object_set_new(s, "total_entries", json_integer((json_int_t)count));
    json_object_set_new(s, "max_entries", json_integer((json_int_t)env_max_entries));
    json_object_set_new(s, "enabled", json_boolean(en));
    json_object_set_new(s, "retry_attempts", retry);
    json_object_set_new(s, "circuit_breakers", cb);
    json_object_set_new(s, "circuit_breaker_changes", json_integer((json_int_t)cbn));
    json_object_set_new(s, "oscillations", osc);
    json_object_set_new(s, "oscillation_events", json_integer((json_int_t)oscn));
    json_object_set_new(s, "oldest", count ? json_real((double)oldest / 1e9) : json_null());
    json_object_set_new(s, "newest", count ? json_real((double)newest / 1e9) : json_null());
    return s;
}

char *resil_export_prometheus_metrics(void)
{
    resil_metrics_registry *r = resil_metrics_default();
    char *out = NULL;
    if (r && resil_metrics_export(&out, NULL, r, RESIL_METRICS_PROMETHEUS) != 0)
        return NULL;
    return out;
}

void resil_timer_start(resil_timer *t, const resil_clock *clock)
{
    t->clock = clock;
    t->start_ns = resil_clock_monotonic_ns(clock);
}

double resil_timer_elapsed(const resil_timer *t)
{
    return resil__ns_to_s(resil_clock_monotonic_ns(t->clock) - t->start_ns);
}

/* ---- collectors ------------------------------------------------------------------------------
 *
 * One mutex for the collectors of every registry (adding, removing and
 * running them is rare next to updates).  A collector runs with no lock
 * held; `calls` counts its runs in progress so that removing it can wait for
 * them (as the breaker's listeners do). */

struct collector {
    resil_metrics_collector_fn fn;
    void *arg;
    bool used;
    int calls; /* runs in progress (under coll_mu) */
};

struct collectors {
    struct collector c[RESIL_METRICS_MAX_COLLECTORS];
};

static pthread_mutex_t coll_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t coll_cv = PTHREAD_COND_INITIALIZER; /* a run ended */
static pthread_once_t coll_fork_once = PTHREAD_ONCE_INIT;
/* The registry whose collectors this thread is running (an export made
 * from a collector, of any registry, runs none: no loop through two
 * registries' collectors), and the collector it is in (so that a collector
 * may remove itself). */
static _Thread_local const resil_metrics_registry *collecting;
static _Thread_local const struct collector *running_collector;

/* The child of a fork has one thread: runs of the parent's other threads
 * will never end there, and coll_mu may have been held by one of them. */
static void coll_atfork_child(void)
{
    pthread_mutex_init(&coll_mu, NULL);
    pthread_cond_init(&coll_cv, NULL);
    for (resil_metrics_registry *r = regs; r; r = r->next_reg)
        if (r->coll)
            for (int i = 0; i < RESIL_METRICS_MAX_COLLECTORS; i++)
                r->coll->c[i].calls = running_collector == &r->coll->c[i];
}

static void coll_fork_register(void)
{
    resil__fork_hook(RESIL__FORK_METRICS, NULL, NULL, coll_atfork_child);
}

int resil_metrics_add_collector(resil_metrics_registry *r, resil_metrics_collector_fn fn,
                                void *arg)
{
    if (!r || !fn)
        return RESIL_EINVAL;
    pthread_once(&coll_fork_once, coll_fork_register);
    int rc = -ENOSPC;
    pthread_mutex_lock(&coll_mu);
    if (!r->coll && !(r->coll = calloc(1, sizeof *r->coll))) {
        pthread_mutex_unlock(&coll_mu);
        return -ENOMEM;
    }
    struct collector *free_slot = NULL;
    for (int i = 0; i < RESIL_METRICS_MAX_COLLECTORS; i++) {
        struct collector *c = &r->coll->c[i];
        if (c->used && c->fn == fn && c->arg == arg) {
            free_slot = NULL;
            rc = -EEXIST;
            break;
        }
        if (!c->used && !free_slot)
            free_slot = c;
    }
    if (free_slot) {
        free_slot->fn = fn;
        free_slot->arg = arg;
        free_slot->used = true;
        rc = 0;
    }
    pthread_mutex_unlock(&coll_mu);
    return rc;
}

int resil_metrics_remove_collector(resil_metrics_registry *r, resil_metrics_collector_fn fn,
                                   void *arg)
{
    if (!r || !fn)
        return RESIL_EINVAL;
    int rc = -ENOENT;
    pthread_mutex_lock(&coll_mu);
    for (int i = 0; r->coll && i < RESIL_METRICS_MAX_COLLECTORS; i++) {
        struct collector *c = &r->coll->c[i];
        if (c->used && c->fn == fn && c->arg == arg) {
            c->used = false;
            int own = running_collector == c;
            while (c->calls > own)
                pthread_cond_wait(&coll_cv, &coll_mu);
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&coll_mu);
    return rc;
}

/* Runs r's collectors in slot order, each only if it is still added when
 * its turn comes. */
static void run_collectors(resil_metrics_registry *r)
{
    if (collecting)
        return;
    pthread_mutex_lock(&coll_mu);
    if (!r->coll) {
        pthread_mutex_unlock(&coll_mu);
        return;
    }
    const resil_metrics_registry *outer = collecting;
    collecting = r;
    for (int i = 0; i < RESIL_METRICS_MAX_COLLECTORS; i++) {
        struct collector *c = &r->coll->c[i];
        if (!c->used)
            continue;
        resil_metrics_collector_fn fn = c->fn;
        void *arg = c->arg;
        c->calls++;
        pthread_mutex_unlock(&coll_mu);
        const struct collector *outer_c = running_collector;
        running_collector = c;
        fn(r, arg);
        running_collector = outer_c;
        pthread_mutex_lock(&coll_mu);
        if (--c->calls == 0)
            pthread_cond_broadcast(&coll_cv);
    }
    collecting = outer;
    pthread_mutex_unlock(&coll_mu);
}

/* ---- resil's own metrics (src/internal/metrics.h) ------------------------------------------- */


_Atomic int resil__metrics_on = -1;

bool resil__metrics_on_slow(void)
{
    bool on = resil_metrics_enabled() && resil_metrics_default() != NULL;
    atomic_store_explicit(&resil__metrics_on, on ? 1 : 0, memory_order_relaxed);
    return on;
}

static resil_counter *counter_of(const char *name, const char *help, const char *const *labels,
                                 size_t n, const char *const *values)
{
    resil_metric *m;
    resil_counter *c;
    if (resil_metrics_counter_new(&m, resil_metrics_default(), name, help, labels, n, NULL) ||
        resil_counter_get(&c, m, values))
        return NULL;
    return c;
}

/* A retry name's handles: calls by kind, failed attempts, and successful
 * attempts as a derived counter (the successful calls: each has exactly one
 * successful attempt), so the fast path adds to one cell only.  The attempt
 * duration histogram is resolved on the first timed attempt (a retry that is
 * never timed gets no empty series). */
struct retry_handles {
    resil_counter *calls[4]; /* without retry ok, with retry ok, without fail, with fail */
    resil_counter *failed_attempts;
    resil_histogram *attempt_duration; /* NULL until resolved */
};

static const char *const retry_kinds[] = {"successful_without_retry", "successful_with_retry",
                                          "failed_without_retry", "failed_with_retry"};

static int retry_handles_get(struct retry_handles *h, const char *name)
{
    static const char *const l2[] = {"name", "kind"};
    static const char *const la[] = {"name", "result"};
    resil_metrics_registry *r = resil_metrics_default();
    resil_metric *calls, *att;
    h->attempt_duration = NULL;
    if (!r ||
        resil_metrics_counter_new(&calls, r, "resil_retry_calls_total",
                                  "Retries by outcome (Resilience4j's kinds).", l2, 2, NULL) ||
        resil_metrics_counter_new(&att, r, "resil_retry_attempts_total",
                                  "Attempts made by retries, by result.", la, 2, NULL))
        return -1;
    for (int i = 0; i < 4; i++) {
        const char *v[] = {name, retry_kinds[i]};
        if (resil_counter_get(&h->calls[i], calls, v))
            return -1;
    }
    const char *vf[] = {name, "failure"}, *vs[] = {name, "success"};
    resil_counter *ok;
    if (resil_counter_get(&h->failed_attempts, att, vf) || resil_counter_get(&ok, att, vs))
        return -1;
    struct child *k = (struct child *)ok;
    pthread_mutex_lock(&k->fam->mu);
    k->sum_of[0] = (struct child *)h->calls[0];
    k->sum_of[1] = (struct child *)h->calls[1];
    pthread_mutex_unlock(&k->fam->mu);
    return 0;
}

/* This thread's last retry name and its handles. */
struct retry_cache {
    const char *ptr;
    char copy[64];
    struct retry_handles h;
};
static _Thread_local struct retry_cache retry_cache RESIL__TLS_IE;

static struct retry_cache *retry_cached(const char *name)
{
    struct retry_cache *rc = &retry_cache;
    if (rc->ptr == name && strcmp(rc->copy, name) == 0)
        return rc;
    if (strlen(name) >= sizeof rc->copy) {
        static _Thread_local struct retry_cache long_name RESIL__TLS_IE;
        if (retry_handles_get(&long_name.h, name))
            return NULL;
        return &long_name;
    }
    struct retry_handles h;
    if (retry_handles_get(&h, name))
        return NULL;
    rc->h = h;
    strcpy(rc->copy, name);
    rc->ptr = name;
    return rc;
}

/* Whether s equals the cached copy (short names: an inline loop beats a
 * call into the C library's strcmp). */
static inline bool same_name(const char *copy, const char *s)
{
    size_t i = 0;
    while (copy[i] == s[i]) {
        if (copy[i] == 0)
            return true;
        i++;
    }
    return false;
}

__thread struct resil__retry_seen resil_retry_tls_seen RESIL__TLS_IE;

void resil_retry_note_success(const char *name)
{
    if (!name)
        return;
    struct resil__retry_seen *seen = &resil_retry_tls_seen;
    if (!resil__metrics_enabled()) {
        seen->off = 1;
        return;
    }
    struct retry_cache *rc = &retry_cache;
    if (!(rc->ptr == name && same_name(rc->copy, name)) && !(rc = retry_cached(name)))
        return;
    resil_counter_inc(rc->h.calls[0]);
    /* What the inline resil_retry needs to count the next one itself. */
    size_t n = strlen(name);
    if (n >= sizeof seen->copy) {
        seen->name = NULL;
        return;
    }
    bool owned;
    seen->cell = (uint64_t *)my_cell((const struct child *)rc->h.calls[0], 0, &owned);
    seen->owned = owned;
    memcpy(seen->copy, name, n + 1);
    seen->name = name;
}

void resil__metrics_retry_done(const char *name, int attempts, bool success)
{
    if (!resil__metrics_enabled())
        return;
    struct retry_cache *rc = retry_cached(name ? name : "");
    if (!rc)
        return;
    resil_counter_inc(rc->h.calls[(success ? 0 : 2) + (attempts > 1 ? 1 : 0)]);
}

void resil__metrics_retry_failed_attempt(const char *name)
{
    if (!resil__metrics_enabled())
        return;
    struct retry_cache *rc = retry_cached(name ? name : "");
    if (rc)
        resil_counter_inc(rc->h.failed_attempts);
}

/* The family resil_record_retry_attempt records durations into, too (same
 * help, labels and buckets, or registering it would conflict). */
void resil__metrics_retry_attempt_duration(const char *name, double seconds)
{
    if (!resil__metrics_enabled())
        return;
    if (!name)
        name = "";
    struct retry_cache *rc = retry_cached(name);
    if (!rc)
        return;
    if (!rc->h.attempt_duration) {
        static const char *const l1[] = {"name"};
        const char *v[] = {name};
        resil_metric *m;
        if (resil_metrics_histogram_new(&m, resil_metrics_default(),
                                        "resil_retry_attempt_duration_seconds",
                                        "How long attempts took.", l1, 1, NULL, 0, NULL) != 0 ||
            resil_histogram_get(&rc->h.attempt_duration, m, v) != 0) {
            rc->h.attempt_duration = NULL;
            return;
        }
    }
    resil_histogram_observe(rc->h.attempt_duration, seconds);
}

static const char *const cb_states[] = {"closed", "open", "half_open", "forced_open", "disabled"};

void resil__metrics_breaker_init(struct resil__cb_metrics *m, const char *name, int state)
{
    memset(m, 0, sizeof *m);
    if (!resil__metrics_enabled())
        return;
    resil_metrics_registry *r = resil_metrics_default();
    static const char *const l2[] = {"name", "kind"};
    static const char *const ls[] = {"name", "state"};
    static const char *const lt[] = {"name", "from", "to"};
    static const char *const kinds[] = {"successful", "failed", "ignored", "not_permitted"};
    resil_counter **cs[] = {&m->successful, &m->failed, &m->ignored, &m->not_permitted};
    for (size_t i = 0; i < 4; i++) {
        const char *v[] = {name, kinds[i]};
        *cs[i] = counter_of("resil_circuitbreaker_calls_total",
                            "Calls through circuit breakers, by kind.", l2, 2, v);
    }
    resil_metric *d;
    if (resil_metrics_histogram_new(&d, r, "resil_circuitbreaker_call_duration_seconds",
                                    "How long calls through circuit breakers took, by kind.",
                                    l2, 2, NULL, 0, NULL) == 0)
        for (size_t i = 0; i < 3; i++) {
            const char *v[] = {name, kinds[i]};
            if (resil_histogram_get(&m->duration[i], d, v) != 0)
                m->duration[i] = NULL;
        }
    resil_metric *g;
    if (resil_metrics_gauge_new(&g, r, "resil_circuitbreaker_state",
                                "1 for a circuit breaker's current state, 0 for the others.", ls,
                                2, NULL) == 0)
        for (int i = 0; i < 5; i++) {
            const char *v[] = {name, cb_states[i]};
            if (resil_gauge_get(&m->state[i], g, v) == 0)
                resil_gauge_set(m->state[i], i == state);
        }
    if (resil_metrics_counter_new(&m->transitions, r, "resil_circuitbreaker_transitions_total",
                                  "Circuit breaker state transitions.", lt, 3, NULL) != 0)
        m->transitions = NULL;
}

void resil__metrics_breaker_transition(struct resil__cb_metrics *m, const char *name, int from,
                                       int to)
{
    if (!m->transitions || from < 0 || from > 4 || to < 0 || to > 4)
        return;
    const char *v[] = {name, cb_states[from], cb_states[to]};
    resil_counter *c;
    if (resil_counter_get(&c, m->transitions, v) == 0)
        resil_counter_inc(c);
}

void resil__metrics_breaker_state(const struct resil__cb_metrics *m, int state)
{
    for (int i = 0; i < 5; i++)
        if (m->state[i])
            resil_gauge_set(m->state[i], i == state);
}

void resil__metrics_file_op(const char *op, int rc, int64_t ns)
{
    if (!resil__metrics_enabled())
        return;
    static const char *const l2[] = {"op", "result"};
    static const char *const l1[] = {"op"};
    const char *v[] = {op, rc == 0 ? "ok" : "error"};
    resil_counter *c = counter_of("resil_file_operations_total",
                                  "Process-safe file operations, by result.", l2, 2, v);
    if (c)
        resil_counter_inc(c);
    if (ns >= 0) {
        resil_metric *m;
        resil_histogram *h;
        const char *vh[] = {op};
        if (resil_metrics_histogram_new(&m, resil_metrics_default(),
                                        "resil_file_operation_duration_seconds",
                                        "How long process-safe file operations took.", l1, 1,
                                        NULL, 0, NULL) == 0 &&
            resil_histogram_get(&h, m, vh) == 0)
            resil_histogram_observe(h, (double)ns / 1e9);
    }
}

void resil__metrics_lock_wait(bool exclusive, int64_t ns)
{
    if (!resil__metrics_enabled())
        return;
    static const char *const l1[] = {"mode"};
    const char *v[] = {exclusive ? "exclusive" : "shared"};
    resil_metric *m;
    resil_histogram *h;
    if (resil_metrics_histogram_new(&m, resil_metrics_default(), "resil_file_lock_wait_seconds",
                                    "How long file locks were waited for.", l1, 1, NULL, 0,
                                    NULL) == 0 &&
        resil_histogram_get(&h, m, v) == 0)
        resil_histogram_observe(h, (double)ns / 1e9);
}
