/* bench/bench_locks.h - counts mutex locks and gives a benchmark clock
 * reads of its own that nothing counts.
 *
 * The executable's pthread_mutex_lock and pthread_mutex_trylock (which take
 * precedence over glibc's, so the statically linked library's calls are
 * seen too) add one to this thread's t_mutex and forward to glibc.
 * now_ns() and cpu_ns() read CLOCK_MONOTONIC and the thread's CPU time
 * through glibc's clock_gettime itself, so a benchmark that also counts
 * clock_gettime calls never counts its own timing.  Call
 * bench_locks_resolve() first thing in main, before any thread exists.
 * Include it in exactly one file of a benchmark (after <dlfcn.h>, with
 * _GNU_SOURCE defined). */
#ifndef RESIL_BENCH_LOCKS_H
#define RESIL_BENCH_LOCKS_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

static _Thread_local unsigned long long t_mutex;

typedef int (*mutex_fn)(pthread_mutex_t *m);
typedef int (*clock_gettime_fn)(clockid_t id, struct timespec *ts);
static mutex_fn real_mutex_lock, real_mutex_trylock;
static clock_gettime_fn real_clock_gettime;

/* Returns 0, or -1 when one of glibc's functions was not found. */
static int bench_locks_resolve(void)
{
    real_mutex_lock = (mutex_fn)dlsym(RTLD_NEXT, "pthread_mutex_lock");
    real_mutex_trylock = (mutex_fn)dlsym(RTLD_NEXT, "pthread_mutex_trylock");
    real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    return real_mutex_lock && real_mutex_trylock && real_clock_gettime ? 0 : -1;
}

int pthread_mutex_lock(pthread_mutex_t *m)
{
    t_mutex++;
    return real_mutex_lock(m);
}

int pthread_mutex_trylock(pthread_mutex_t *m)
{
    t_mutex++;
    return real_mutex_trylock(m);
}

static int64_t bench_clock_ns(clockid_t id)
{
    struct timespec ts;
    real_clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t now_ns(void)
{
    return bench_clock_ns(CLOCK_MONOTONIC);
}

/* CPU time of the calling thread: unlike the wall clock, it does not run
 * while the thread is descheduled (another process on a busy machine). */
static int64_t cpu_ns(void)
{
    return bench_clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

#endif
