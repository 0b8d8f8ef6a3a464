/* tests/unit/counting_clock.h - a fake clock (resil_fake_clock) that counts
 * how often it is read, monotonic and wall (sleeps are not reads), for the
 * tests that check a hot path reads no clock.  Thread-safe count. */
#ifndef TESTS_COUNTING_CLOCK_H
#define TESTS_COUNTING_CLOCK_H

#include <stdatomic.h>

#include "resil/clock.h"

struct counting_clock {
    resil_fake_clock fake;
    resil_clock clock;
    atomic_int reads;
};

static inline int64_t counting_clock_mono(void *ctx)
{
    struct counting_clock *cc = ctx;
    atomic_fetch_add(&cc->reads, 1);
    return resil_fake_clock_now(&cc->fake);
}

static inline int64_t counting_clock_wall(void *ctx)
{
    struct counting_clock *cc = ctx;
    atomic_fetch_add(&cc->reads, 1);
    return resil_clock_wall_ns(&cc->fake.clock);
}

static inline int counting_clock_sleep(void *ctx, int64_t ns, resil_cancel *cancel)
{
    struct counting_clock *cc = ctx;
    return resil_clock_sleep_ns(&cc->fake.clock, ns, cancel);
}

/* Starts the fake time at 1000 s, with no reads counted; returns the clock. */
static inline const resil_clock *counting_clock_init(struct counting_clock *cc)
{
    resil_fake_clock_init(&cc->fake, 1000 * 1000000000LL, 0);
    cc->clock = (resil_clock){counting_clock_mono, counting_clock_wall, counting_clock_sleep, cc};
    atomic_init(&cc->reads, 0);
    return &cc->clock;
}

#endif
