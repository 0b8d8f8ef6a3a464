/* src/metrics_cells.c - slots (each thread's block of a child's cells) and
 * the updates and reads of counters, gauges and histograms.  See
 * src/internal/metrics_impl.h for the cells' layout. */
#define _GNU_SOURCE
#include "resil/metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "internal/metrics_impl.h"
#include "internal/fork.h"

/* ---- slots ---------------------------------------------------------------------
 *
 * Every child has nblocks blocks: the first nowned are each owned by one
 * thread at a time (its updates are plain loads and stores: no other thread
 * writes the block), the others are shared by the threads dealt no owned
 * block (atomic adds).  A thread is dealt its slot on its first update
 * (resil__private_metrics_tls_slot: (block + 1) * 2, + 1 when owned) and gives an
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
_Thread_local unsigned resil__private_metrics_tls_slot RESIL__TLS_IE;

/* Hooks run when a thread gives its owned block back
 * (resil__metrics_on_block_release). */
#define MAX_RELEASE_HOOKS 4
static void (*_Atomic release_hooks[MAX_RELEASE_HOOKS])(void);

static void run_release_hooks(void)
{
    for (int i = 0; i < MAX_RELEASE_HOOKS; i++) {
        void (*fn)(void) = atomic_load_explicit(&release_hooks[i], memory_order_acquire);
        if (fn)
            fn();
    }
}

int resil__metrics_on_block_release(void (*fn)(void))
{
    for (int i = 0; i < MAX_RELEASE_HOOKS; i++) {
        void (*cur)(void) = NULL;
        if (atomic_compare_exchange_strong_explicit(&release_hooks[i], &cur, fn,
                                                    memory_order_acq_rel, memory_order_acquire) ||
            cur == fn)
            return 0;
    }
    return -ENOSPC;
}

uint64_t *resil__metrics_my_counter_cell(const resil_counter *c, bool *owned)
{
    return (uint64_t *)my_cell((const struct child *)c, 0, owned);
}

static void slot_release(void *arg)
{
    (void)arg;
    unsigned s = resil__private_metrics_tls_slot;
    if (s & 1) {
        run_release_hooks(); /* pointers to cells of the block given back */
        resil__private_metrics_tls_slot =
            (nowned + 1 +
             atomic_fetch_add_explicit(&shared_next, 1, memory_order_relaxed) % nshared) *
            2;
        atomic_fetch_and_explicit(&owned_map, ~(UINT32_C(1) << ((s >> 1) - 1)),
                                  memory_order_release);
    }
}

/* A forked child has one thread: only its block stays owned. */
static void slots_atfork_child(void)
{
    unsigned s = resil__private_metrics_tls_slot;
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

unsigned resil__private_metrics_thread_slot(void)
{
    pthread_once(&slots_once, slots_init);
    unsigned s = resil__private_metrics_tls_slot;
    if (s)
        return s;
    uint32_t map = atomic_load_explicit(&owned_map, memory_order_relaxed);
    uint32_t all = nowned ? (uint32_t)((UINT64_C(1) << nowned) - 1) : 0;
    while ((map & all) != all) {
        unsigned b = (unsigned)__builtin_ctz(~map & all);
        if (atomic_compare_exchange_weak_explicit(&owned_map, &map, map | (UINT32_C(1) << b),
                                                  memory_order_acquire, memory_order_relaxed)) {
            if (pthread_setspecific(slot_key, &owned_map) == 0)
                return resil__private_metrics_tls_slot = (b + 1) * 2 + 1;
            atomic_fetch_and_explicit(&owned_map, ~(UINT32_C(1) << b), memory_order_release);
            break;
        }
    }
    return resil__private_metrics_tls_slot =
               (nowned + 1 +
                atomic_fetch_add_explicit(&shared_next, 1, memory_order_relaxed) % nshared) *
               2;
}

unsigned resil__metrics_block_count(void)
{
    pthread_once(&slots_once, slots_init);
    return nblocks;
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

void resil__metrics_sum_cells(const struct child *c, size_t i, uint64_t *n, double *d)
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
    resil__metrics_sum_cells(k, 0, &n, NULL);
    resil__metrics_sum_cells(k, 1, NULL, &d);
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
        resil__metrics_sum_cells(c, H_BUCKET + i, &n, NULL);
    return n;
}

double resil_histogram_sum(const resil_histogram *h)
{
    double d = 0;
    resil__metrics_sum_cells((const struct child *)h, H_SUM, NULL, &d);
    return d;
}
