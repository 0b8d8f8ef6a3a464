/* src/cancel.c - cancellation tokens on an eventfd.
 *
 * The flag is an atomic int; the eventfd is what makes waits wake at once:
 * cancelling writes to it (async-signal-safe) and it then stays readable until
 * reset, so every present and future poll on it returns immediately. */
#define _GNU_SOURCE
#include "resil/cancel.h"

#include "internal/sys.h"
#include "internal/util.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* resil_cancel_cancel runs in signal handlers: the flag must be lock-free. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "atomic int must be lock-free");

struct resil_cancel {
    atomic_int cancelled;
    int efd;
};

int resil_cancel_new(resil_cancel **out)
{
    resil_cancel *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    c->efd = resil__sys.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->efd < 0) {
        int e = errno;
        free(c);
        return -e;
    }
    atomic_init(&c->cancelled, 0);
    *out = c;
    return 0;
}

void resil_cancel_free(resil_cancel *c)
{
    if (!c)
        return;
    close(c->efd);
    free(c);
}

void resil_cancel_cancel(resil_cancel *c)
{
    if (!c)
        return;
    int saved = errno; /* signal handlers must not change errno */
    if (atomic_exchange_explicit(&c->cancelled, 1, memory_order_acq_rel) == 0) {
        uint64_t one = 1;
        ssize_t n = write(c->efd, &one, sizeof one);
        (void)n; /* cannot fail but with EAGAIN at 2^64-2, which still wakes */
    }
    errno = saved;
}

bool resil_cancel_is_cancelled(const resil_cancel *c)
{
    return c && atomic_load_explicit(&((resil_cancel *)c)->cancelled, memory_order_acquire);
}

void resil_cancel_reset(resil_cancel *c)
{
    if (!c)
        return;
    /* Flag first, then drain; a cancel that slipped in between (a race the
     * header forbids, but a signal handler cannot always be held off) is
     * made visible again on the fd. */
    atomic_store_explicit(&c->cancelled, 0, memory_order_release);
    uint64_t v;
    while (read(c->efd, &v, sizeof v) > 0) {
    }
    if (atomic_load_explicit(&c->cancelled, memory_order_acquire)) {
        uint64_t one = 1;
        ssize_t n = write(c->efd, &one, sizeof one);
        (void)n;
    }
}

int resil_cancel_fd(const resil_cancel *c)
{
    return c ? c->efd : -1;
}

static int64_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * RESIL_NS_PER_S + ts.tv_nsec;
}

int resil_cancel_wait(resil_cancel *c, int64_t timeout_ns)
{
    if (resil_cancel_is_cancelled(c))
        return RESIL_ECANCELED;
    if (timeout_ns <= 0)
        return 0;
    int64_t now0 = mono_now();
    int64_t deadline = timeout_ns > INT64_MAX - now0 ? INT64_MAX : now0 + timeout_ns;
    for (;;) {
        int64_t left = deadline - mono_now();
        if (left <= 0)
            return resil_cancel_is_cancelled(c) ? RESIL_ECANCELED : 0;
        struct timespec ts = {.tv_sec = left / RESIL_NS_PER_S, .tv_nsec = left % RESIL_NS_PER_S};
        if (!c) {
            /* Plain sleep; restarted after signals against the deadline. */
            nanosleep(&ts, NULL);
            continue;
        }
        struct pollfd pfd = {.fd = c->efd, .events = POLLIN};
        int r = resil__sys.ppoll(&pfd, 1, &ts, NULL);
        if (resil_cancel_is_cancelled(c))
            return RESIL_ECANCELED;
        if ((r < 0 && errno != EINTR) || (r > 0 && (pfd.revents & (POLLNVAL | POLLERR)))) {
            /* ppoll cannot wait (ENOMEM ...): sleep in short slices that
             * still notice the flag, rather than spin or give up. */
            struct timespec slice = {0, 1000000};
            if (left < 1000000)
                slice.tv_nsec = (long)left;
            nanosleep(&slice, NULL);
        }
        /* r == 0: timeout (loop re-checks the clock); EINTR: loop. */
    }
}
