/* src/fork.c - the library's one pthread_atfork (see internal/fork.h). */
#define _GNU_SOURCE
#include "internal/fork.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

/* More than the library registers (six today); a hook beyond this falls back
 * to a pthread_atfork of its own (still called, but outside the order). */
#define MAX_HOOKS 32

struct hook {
    int order;
    void (*prepare)(void);
    void (*parent)(void);
    void (*child)(void);
};

/* In registration order, append-only: a hook is written whole before the
 * count that publishes it (release), so a fork reads a consistent prefix
 * without a lock.  Registrations are serialized by `mu`, which no fork
 * handler takes: registering while holding a lock that a prepare hook takes
 * cannot deadlock with a fork in another thread. */
static struct hook hooks[MAX_HOOKS];
static _Atomic int n_hooks;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* The forking thread's view, sorted by order (ties in registration order),
 * taken in prepare and used again by parent and child (the child inherits
 * the forking thread's copy).  Per thread: two threads may fork at once. */
static _Thread_local struct hook snap[MAX_HOOKS];
static _Thread_local int n_snap;

static void run_prepare(void)
{
    int n = atomic_load_explicit(&n_hooks, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        struct hook h = hooks[i];
        int at = i;
        while (at > 0 && snap[at - 1].order > h.order) {
            snap[at] = snap[at - 1];
            at--;
        }
        snap[at] = h;
    }
    n_snap = n;
    for (int i = n - 1; i >= 0; i--)
        if (snap[i].prepare)
            snap[i].prepare();
}

static void run_parent(void)
{
    for (int i = 0; i < n_snap; i++)
        if (snap[i].parent)
            snap[i].parent();
}

static void run_child(void)
{
    for (int i = 0; i < n_snap; i++)
        if (snap[i].child)
            snap[i].child();
    /* A registration in another thread of the parent may have held mu at
     * the fork: the child's only thread starts with it free. */
    pthread_mutex_init(&mu, NULL);
}

static void install(void)
{
    pthread_atfork(run_prepare, run_parent, run_child);
}

void resil__fork_hook(int order, void (*prepare)(void), void (*parent)(void),
                      void (*child)(void))
{
    pthread_once(&once, install);
    pthread_mutex_lock(&mu);
    int n = atomic_load_explicit(&n_hooks, memory_order_relaxed);
    for (int i = 0; i < n; i++)
        if (hooks[i].order == order && hooks[i].prepare == prepare &&
            hooks[i].parent == parent && hooks[i].child == child) {
            pthread_mutex_unlock(&mu);
            return;
        }
    bool full = n == MAX_HOOKS;
    if (!full) {
        hooks[n] = (struct hook){order, prepare, parent, child};
        atomic_store_explicit(&n_hooks, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&mu);
    if (full)
        pthread_atfork(prepare, parent, child);
}
