/* src/internal/metrics_impl.h - what the files of the metrics layer share
 * (src/metrics.c, metrics_cells.c, metrics_text.c, metrics_json.c,
 * metrics_collect.c, metrics_record.c): the layout of registries, families
 * and children, and the cell helpers.  Nothing outside the metrics layer
 * includes it: the modules record through src/internal/metrics.h.
 *
 * A child's cells are one block of `stride` bytes per slot (see "slots" in
 * src/metrics_cells.c), each block on its own cache lines: counters use [0]
 * integer increments and [1] the bits of a double holding fractional adds;
 * histograms [H_SUM] the sum's bits and [H_BUCKET..] one count per bucket
 * (+Inf last, not cumulative; cumulated on export; the count is their sum).
 * A thread writes the block of its slot only.  Gauges hold one atomic
 * double (a set has no per-thread meaning). */
#ifndef RESIL_INTERNAL_METRICS_IMPL_H
#define RESIL_INTERNAL_METRICS_IMPL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "resil/metrics.h"
#include "internal/metrics.h"
#include "internal/util.h"

#define DEFAULT_MAX_SERIES 10000
#define MAX_BUCKETS 64
#define OVERFLOW_VALUE "_overflow"
#define H_SUM 0    /* a histogram's cells: the sum's bits, */
#define H_BUCKET 1 /* then its buckets */

struct child {
    /* first, as struct resil__private_metric_cells (include/resil/metrics.h) */
    unsigned char *cells; /* nblocks * stride bytes, 64-aligned */
    unsigned stride;
    unsigned npad;        /* histograms: the family's bounds (padded), */
    const double *bounds; /* copied here so that an observe reads one object */
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

_Static_assert(offsetof(struct child, cells) == offsetof(struct resil__private_metric_cells, cells) &&
                   offsetof(struct child, stride) == offsetof(struct resil__private_metric_cells, stride) &&
                   offsetof(struct child, npad) == offsetof(struct resil__private_metric_cells, npad) &&
                   offsetof(struct child, bounds) == offsetof(struct resil__private_metric_cells, bounds),
               "a child starts as struct resil__private_metric_cells");

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
    struct collectors *coll;                 /* under coll_mu; NULL until one is added */
};

/* ---- shared between the files of the layer ---- */

/* Every registry (for fork), under resil__metrics_regs_mu. */
extern pthread_mutex_t resil__metrics_regs_mu;
extern resil_metrics_registry *resil__metrics_regs;

/* metrics_cells.c: how many blocks every child has (deals the numbers on
 * first use), and the sum of cell i over the blocks (n: as integers, d: as
 * doubles; either may be NULL). */
unsigned resil__metrics_block_count(void);
void resil__metrics_sum_cells(const struct child *c, size_t i, uint64_t *n, double *d);

/* metrics.c */
bool resil__metrics_utf8_valid(const char *s);
size_t resil__metrics_utf8_fix_into(char *dst, size_t size, const char *s);
char *resil__metrics_utf8_fixed_dup(const char *s);
bool resil__metrics_same_schema(const struct family *f, resil_metric_type type, const char *help,
                                const char *const *labels, size_t nlabels, const double *bounds,
                                size_t nb);
bool resil__metrics_names_collide(resil_metric_type ta, const char *a, resil_metric_type tb,
                                  const char *b);
int resil__metrics_child_get(struct child **out, resil_metric *m, resil_metric_type type,
                             const char *const *values);
/* The families, sorted by name (a malloc'd copy of the pointers), or NULL. */
struct family **resil__metrics_sorted_families(resil_metrics_registry *r, size_t *n);
/* 1/0, true/false, yes/no, on/off in any case: 0; -1 otherwise. */
int resil__metrics_parse_bool(const char *v, bool *out);
/* RESIL_METRICS_MAX_ENTRIES as read once (the ring's size). */
size_t resil__metrics_max_entries(void);

/* metrics_json.c */
const char *resil__metrics_type_name(resil_metric_type t);
json_t *resil__metrics_registry_json(resil_metrics_registry *r, bool delta);

/* metrics_collect.c: runs r's collectors (none when called from one). */
void resil__metrics_run_collectors(resil_metrics_registry *r);

/* ---- cells ---- */

static inline unsigned my_slot(void)
{
    unsigned s = resil__private_metrics_tls_slot;
    if (RESIL_UNLIKELY(s == 0))
        s = resil__private_metrics_thread_slot();
    return s;
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
    while (!atomic_compare_exchange_weak_explicit(a, &old, d2u(u2d(old) + v), memory_order_relaxed,
                                                  memory_order_relaxed))
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

#endif
