/* src/internal/fork.h - one ordered fork hook for the whole library.
 *
 * Modules that hold locks or per-process state register their fork handlers
 * here instead of calling pthread_atfork themselves, so that the order in
 * which they run does not depend on which module was used first.  One
 * pthread_atfork is registered, once.  Around fork():
 *   prepare hooks run in DESCENDING order (the highest layer first: a module
 *     takes its own locks before the locks of the layers it calls into, the
 *     same order in which it takes them while running);
 *   parent and child hooks run in ASCENDING order (the lowest layer is usable
 *     again first).
 * Hooks of equal order run in registration order (prepare in reverse).
 * Registration is thread-safe, and may race with fork() in another thread:
 * a hook is either wholly in or wholly out of a given fork.  Registering the
 * same (order, prepare, parent, child) twice is a no-op.  Any of the three
 * functions may be NULL.  Hooks cannot be removed (like pthread_atfork).
 * A fork takes no lock of this module (it reads the published hooks), so a
 * module may register while holding a lock that its prepare hook takes.
 * Not exported from the shared library. */
#ifndef RESIL_INTERNAL_FORK_H
#define RESIL_INTERNAL_FORK_H

/* Order constants, lowest layer first (see DESIGN.md's layers). */
enum {
    RESIL__FORK_LOG = 0,      /* core: the log callback's lock */
    RESIL__FORK_METRICS = 10, /* metrics registries, slots, collectors */
    RESIL__FORK_STORE = 20,   /* breaker state stores (mapped files) */
    RESIL__FORK_BREAKER = 30  /* breaker tables */
};

void resil__fork_hook(int order, void (*prepare)(void), void (*parent)(void),
                      void (*child)(void));

#endif
