/* src/clock.c - the system clock, the fake clock and the RNG. */
#define _GNU_SOURCE
#include "resil/clock.h"

#include "internal/util.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- system clock --------------------------------------------------------- */

static int64_t sys_mono(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * RESIL_NS_PER_S + ts.tv_nsec;
}

static int64_t sys_wall(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * RESIL_NS_PER_S + ts.tv_nsec;
}

static int sys_sleep(void *ctx, int64_t ns, resil_cancel *cancel)
{
    (void)ctx;
    return resil_cancel_wait(cancel, ns);
}

static const resil_clock system_clock = {sys_mono, sys_wall, sys_sleep, NULL};

const resil_clock *resil_clock_system(void)
{
    return &system_clock;
}

int64_t resil_clock_monotonic_ns(const resil_clock *clk)
{
    if (!clk)
        clk = &system_clock;
    return clk->monotonic_ns(clk->ctx);
}

int64_t resil_clock_wall_ns(const resil_clock *clk)
{
    if (!clk)
        clk = &system_clock;
    return clk->wall_ns(clk->ctx);
}

int resil_clock_sleep_ns(const resil_clock *clk, int64_t ns, resil_cancel *cancel)
{
    if (!clk)
        clk = &system_clock;
    return clk->sleep_ns(clk->ctx, ns, cancel);
}

/* ---- fake clock ----------------------------------------------------------- */

/* The int64_t fields are accessed through atomic builtins so that a fake clock
 * can be shared by threads (and the struct stays plain C for the header). */
#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)

static int64_t fake_mono(void *ctx)
{
    resil_fake_clock *fc = ctx;
    return LOAD(&fc->mono_ns);
}

static int64_t fake_wall(void *ctx)
{
    resil_fake_clock *fc = ctx;
    return LOAD(&fc->mono_ns) + fc->wall_offset_ns;
}

static int fake_sleep(void *ctx, int64_t ns, resil_cancel *cancel)
{
    resil_fake_clock *fc = ctx;
    if (resil_cancel_is_cancelled(cancel))
        return RESIL_ECANCELED;
    if (ns > 0) {
        ADD(&fc->mono_ns, ns);
        ADD(&fc->slept_ns, ns);
    }
    ADD(&fc->sleeps, 1);
    return 0;
}

const resil_clock *resil_fake_clock_init(resil_fake_clock *fc, int64_t start_mono_ns,
                                         int64_t start_wall_ns)
{
    memset(fc, 0, sizeof *fc);
    fc->clock.monotonic_ns = fake_mono;
    fc->clock.wall_ns = fake_wall;
    fc->clock.sleep_ns = fake_sleep;
    fc->clock.ctx = fc;
    fc->mono_ns = start_mono_ns;
    fc->wall_offset_ns = start_wall_ns - start_mono_ns;
    return &fc->clock;
}

void resil_fake_clock_advance(resil_fake_clock *fc, int64_t ns)
{
    if (ns > 0)
        ADD(&fc->mono_ns, ns);
}

int64_t resil_fake_clock_now(const resil_fake_clock *fc)
{
    return LOAD(&fc->mono_ns);
}

int64_t resil_fake_clock_slept_ns(const resil_fake_clock *fc)
{
    return LOAD(&fc->slept_ns);
}

int64_t resil_fake_clock_sleeps(const resil_fake_clock *fc)
{
    return LOAD(&fc->sleeps);
}

/* ---- RNG: xoshiro256** seeded through splitmix64 ---------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void resil_rng_seed(resil_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

void resil_rng_seed_random(resil_rng *rng)
{
    static atomic_uint_fast64_t counter;
    uint64_t seed = 0;
    ssize_t n = getrandom(&seed, sizeof seed, GRND_NONBLOCK);
    uint64_t c = atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
    if (n != (ssize_t)sizeof seed)
        seed = (uint64_t)sys_mono(NULL) ^ ((uint64_t)getpid() << 32);
    seed ^= c * 0xd1b54a32d192ed03ULL;
    resil_rng_seed(rng, seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t resil_rng_next(resil_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double resil_rng_uniform(resil_rng *rng)
{
    /* 53 random bits -> [0, 1) */
    return (double)(resil_rng_next(rng) >> 11) * 0x1.0p-53;
}

double resil_rng_range(resil_rng *rng, double lo, double hi)
{
    if (!(hi > lo))
        return lo;
    double v = lo + resil_rng_uniform(rng) * (hi - lo);
    return v > hi ? hi : v;
}
