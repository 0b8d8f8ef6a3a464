/* resil/clock.h - injectable clocks and a seedable random number generator.
 *
 * resil never calls clock_gettime or sleeps directly: it asks a resil_clock.
 * Production code passes NULL (meaning resil_clock_system()); tests pass a
 * fake clock whose time only moves when the test says so, and whose sleeps
 * return at once after advancing time, so tests never sleep for real.
 *
 * Randomness (jitter) comes from a resil_rng, a small xoshiro256** generator
 * that the caller may seed for reproducible runs.
 *
 * Thread safety: the system clock is thread-safe.  A fake clock may be read
 * and advanced from many threads (its time is atomic).  A resil_rng is a plain
 * value: one per thread, or guarded by the caller.
 */
#ifndef RESIL_CLOCK_H
#define RESIL_CLOCK_H

#include "resil/cancel.h"
#include "resil/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A clock: three callbacks and their context.  All times are nanoseconds. */
typedef struct resil_clock {
    /* Monotonic time (never goes back); for durations and deadlines. */
    int64_t (*monotonic_ns)(void *ctx);
    /* Wall-clock time since the Unix epoch; for timestamps only. */
    int64_t (*wall_ns)(void *ctx);
    /* Sleeps ns nanoseconds of this clock's monotonic time, waking at once if
     * `cancel` (may be NULL) is cancelled.  Returns 0 or RESIL_ECANCELED. */
    int (*sleep_ns)(void *ctx, int64_t ns, resil_cancel *cancel);
    void *ctx;
} resil_clock;

/* The real clock: CLOCK_MONOTONIC, CLOCK_REALTIME, and a sleep that is
 * resil_cancel_wait.  Returns a static object; never NULL. */
RESIL_EXPORT const resil_clock *resil_clock_system(void);

/* Convenience readers; clk NULL means the system clock. */
RESIL_EXPORT int64_t resil_clock_monotonic_ns(const resil_clock *clk);
RESIL_EXPORT int64_t resil_clock_wall_ns(const resil_clock *clk);
RESIL_EXPORT int resil_clock_sleep_ns(const resil_clock *clk, int64_t ns, resil_cancel *cancel);

/* ---- fake clock for tests ----------------------------------------------- */

/* A clock whose time moves only by resil_fake_clock_advance and by sleeps
 * (a sleep of n ns returns at once, n ns later).  Transparent so it can live
 * on the stack; use the functions, not the fields. */
typedef struct resil_fake_clock {
    resil_clock clock;      /* what to pass where a resil_clock is wanted */
    int64_t mono_ns;        /* atomic; use the functions below */
    int64_t wall_offset_ns; /* wall = mono + offset */
    int64_t slept_ns;       /* atomic; total of all sleeps */
    int64_t sleeps;         /* atomic; number of sleeps */
} resil_fake_clock;

/* Initialises a fake clock at monotonic time start_mono_ns and wall time
 * start_wall_ns.  Returns &fc->clock for convenience. */
RESIL_EXPORT const resil_clock *resil_fake_clock_init(resil_fake_clock *fc, int64_t start_mono_ns,
                                                      int64_t start_wall_ns);

/* Moves both times forward by ns (ns < 0 is ignored: time never goes back). */
RESIL_EXPORT void resil_fake_clock_advance(resil_fake_clock *fc, int64_t ns);

/* The current fake monotonic time. */
RESIL_EXPORT int64_t resil_fake_clock_now(const resil_fake_clock *fc);

/* Total nanoseconds slept and number of sleeps so far. */
RESIL_EXPORT int64_t resil_fake_clock_slept_ns(const resil_fake_clock *fc);
RESIL_EXPORT int64_t resil_fake_clock_sleeps(const resil_fake_clock *fc);

/* ---- random numbers ----------------------------------------------------- */

/* xoshiro256** state.  A plain value; copy it to fork a stream. */
typedef struct resil_rng {
    uint64_t s[4];
} resil_rng;

/* Seeds deterministically: the same seed gives the same sequence on every
 * platform. */
RESIL_EXPORT void resil_rng_seed(resil_rng *rng, uint64_t seed);

/* Seeds from the kernel's entropy (getrandom), falling back to the clock and a
 * process-wide counter; two calls never give the same stream. */
RESIL_EXPORT void resil_rng_seed_random(resil_rng *rng);

/* The next 64 random bits. */
RESIL_EXPORT uint64_t resil_rng_next(resil_rng *rng);

/* A uniform double in [0, 1). */
RESIL_EXPORT double resil_rng_uniform(resil_rng *rng);

/* A uniform double in [lo, hi]; returns lo when hi <= lo. */
RESIL_EXPORT double resil_rng_range(resil_rng *rng, double lo, double hi);

#ifdef __cplusplus
}
#endif
#endif /* RESIL_CLOCK_H */
