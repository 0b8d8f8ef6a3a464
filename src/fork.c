/* src/fork.c - the library's one pthread_atfork (see internal/fork.h). */
#define _GNU_SOURCE
#include "internal/fork.h"

#include <pthread.h>
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

/* Sorted by order, ties in registration order.  Guarded by `mu`, which the
 * prepare handler holds across the fork so that a registration cannot run
 * half-way through it. */
static struct hook hooks[MAX_HOOKS];
static int n_hooks;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void run_prepare(void)
{
    pthread_mutex_lock(&mu);
    for (int i = n_hooks - 1; i >= 0; i--)
        if (hooks[i].prepare)
            hooks[i].prepare();
}

static void run_parent(void)
{
    for (int i = 0; i < n_hooks; i++)
        if (hooks[i].parent)
            hooks[i].parent();
    pthread_mutex_unlock(&mu);
}

static void run_child(void)
{
    for (int i = 0; i < n_hooks; i++)
        if (hooks[i].child)
            hooks[i].child();
    /* The forking thread is the child's only thread and holds mu. */
    pthread_mutex_unlock(&mu);
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
    for (int i = 0; i < n_hooks; i++)
        if (hooks[i].order == order && hooks[i].prepare == prepare &&
            hooks[i].parent == parent && hooks[i].child == child) {
            pthread_mutex_unlock(&mu);
            return;
        }
    bool full = n_hooks == MAX_HOOKS;
    if (!full) {
        int at = n_hooks;
        while (at > 0 && hooks[at - 1].order > order) {
            hooks[at] = hooks[at - 1];
            at--;
        }
        hooks[at] = (struct hook){order, prepare, parent, child};
        n_hooks++;
    }
    pthread_mutex_unlock(&mu);
    if (full)
        pthread_atfork(prepare, parent, child);
}
