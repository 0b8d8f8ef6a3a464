/* src/metrics_collect.c - collectors: values computed when a registry is
 * exported (resil_metrics_add_collector). */
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
    for (resil_metrics_registry *r = resil__metrics_regs; r; r = r->next_reg)
        if (r->coll)
            for (int i = 0; i < RESIL_METRICS_MAX_COLLECTORS; i++)
                r->coll->c[i].calls = running_collector == &r->coll->c[i];
}

static void coll_fork_register(void)
{
    resil__fork_hook(RESIL__FORK_METRICS, NULL, NULL, coll_atfork_child);
}

int resil_metrics_add_collector(resil_metrics_registry *r, resil_metrics_collector_fn fn, void *arg)
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
void resil__metrics_run_collectors(resil_metrics_registry *r)
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
