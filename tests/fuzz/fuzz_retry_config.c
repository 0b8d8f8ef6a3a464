/* tests/fuzz/fuzz_retry_config.c - property fuzzing of retry configs.
 *
 * The input bytes become a resil_retry_config (raw IEEE doubles, so NaN,
 * infinities, negative zero and subnormals all occur, mixed with a table of
 * interesting values) plus a few knobs.  Properties checked:
 *  1. resil_retry's inline fast path and resil_retry_config_validate agree:
 *     a config the validator rejects is never run (RESIL_EINVAL, op not
 *     called); a valid one runs the op once and succeeds.
 *  2. For a valid config, every backoff delay is within [0, max_delay_s],
 *     EQUAL within [d/2, d], DECORRELATED at least base_delay_s.
 *  3. For a valid config with a deadline, a retry on the fake clock that
 *     always fails never starts an attempt after the deadline and always
 *     stops (DEADLINE or EXHAUSTED).
 * Built as a libFuzzer target with clang (RESIL_FUZZ=ON), and otherwise with
 * tests/fuzz/standalone.c, which feeds it seeded pseudo-random inputs. */
#include "resil/retry.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inputs that made a valid config, and those that also ran the deadline
 * check (reported by the standalone driver). */
long fuzz_inputs_valid, fuzz_inputs_deadline;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                             \
        }                                                                        \
    } while (0)

struct reader {
    const uint8_t *p;
    size_t left;
};

static uint8_t byte(struct reader *r)
{
    if (!r->left)
        return 0;
    r->left--;
    return *r->p++;
}

static double interesting(struct reader *r)
{
    static const double table[] = {0.0, -0.0, 0.001, 0.1, 0.5, 1.0, 1.5, 2.0, 3.0, 10.0,
                                   30.0, 60.0, 1e9, 1e300, 4.9e-324, -1.0, NAN, -NAN,
                                   INFINITY, -INFINITY, 1.7976931348623157e308, 0.9999999};
    uint8_t sel = byte(r);
    if (sel < 0xc0)
        return table[sel % (sizeof table / sizeof table[0])];
    double d;
    uint8_t raw[8];
    for (int i = 0; i < 8; i++)
        raw[i] = byte(r);
    memcpy(&d, raw, sizeof d);
    return d;
}

struct op_state {
    int calls;
    resil_fake_clock *fc;
    int64_t cost_ns;
    int64_t deadline_ns;
    bool fail;
};

static resil_outcome op(resil_retry_call *call, void *arg)
{
    (void)call;
    struct op_state *s = arg;
    s->calls++;
    if (s->fc) {
        if (s->deadline_ns)
            CHECK(resil_fake_clock_now(s->fc) <= s->deadline_ns);
        resil_fake_clock_advance(s->fc, s->cost_ns);
    }
    if (s->fail) {
        if (s->calls % 3 == 0)
            call->retry_after_s = (double)(s->calls % 7) * 0.37;
        return RESIL_OUTCOME_TRANSIENT;
    }
    return RESIL_OUTCOME_SUCCESS;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct reader r = {data, size};
    resil_retry_config c;
    memset(&c, 0, sizeof c);
    uint8_t mr = byte(&r);
    c.max_retries = mr < 0xf0 ? mr % 64 : (int)((uint32_t)byte(&r) << 24 | (uint32_t)mr);
    c.base_delay_s = interesting(&r);
    c.max_delay_s = interesting(&r);
    c.exponential_base = interesting(&r);
    c.max_elapsed_s = interesting(&r);
    uint8_t j = byte(&r);
    c.jitter = j & 1;
    c.jitter_kind = (resil_jitter_kind)((j >> 1) % 6); /* 4 and 5 are invalid */
    if (j & 0x80) {
        /* Nudge half of the inputs towards validity, keeping the raw values'
         * sizes, so that the properties of valid configs get exercised. */
        c.base_delay_s = fabs(c.base_delay_s);
        c.max_delay_s = fabs(c.max_delay_s);
        if (c.base_delay_s > c.max_delay_s) {
            double t = c.base_delay_s;
            c.base_delay_s = c.max_delay_s;
            c.max_delay_s = t;
        }
        if (c.exponential_base < 1)
            c.exponential_base = 1 + fabs(c.exponential_base);
        c.max_elapsed_s = fabs(c.max_elapsed_s);
        c.jitter_kind = (resil_jitter_kind)((j >> 1) % 4);
    }

    bool valid = resil_retry_config_validate(&c, NULL) == 0;

    /* 1. The inline fast path agrees with the validator. */
    struct op_state s = {0};
    resil_fake_clock fc;
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.clock = resil_fake_clock_init(&fc, 0, 0);
    int rc = resil_retry(op, &s, "fuzz", &c, &o, NULL);
    if (valid) {
        CHECK(rc == 0);
        CHECK(s.calls == 1);
    } else {
        CHECK(rc == RESIL_EINVAL);
        CHECK(s.calls == 0);
        return 0;
    }
    fuzz_inputs_valid++;

    /* 2. Backoff bounds. */
    resil_rng rng;
    resil_rng_seed(&rng, size);
    double prev = 0;
    for (int k = 1; k <= 70; k++) {
        double d = resil_backoff_delay(&c, k, prev, &rng);
        CHECK(d >= 0 && d <= c.max_delay_s);
        resil_jitter_kind kind = resil_retry_config_jitter(&c);
        if (kind == RESIL_JITTER_DECORRELATED)
            CHECK(d >= c.base_delay_s);
        prev = d;
    }

    /* 3. A failing retry with a deadline never starts an attempt past it. */
    if (c.max_elapsed_s > 0 && c.max_elapsed_s < 1e6 && c.max_retries <= 64) {
        resil_fake_clock_init(&fc, 1000, 0);
        struct op_state f = {.fc = &fc, .cost_ns = (int64_t)byte(&r) * 1000000,
                             .fail = true};
        f.deadline_ns = 1000 + (int64_t)(c.max_elapsed_s * 1e9);
        resil_retry_result res;
        fuzz_inputs_deadline++;
        o.rng = &rng;
        rc = resil_retry(op, &f, "fuzz", &c, &o, &res);
        CHECK(rc == RESIL_EDEADLINE || rc == RESIL_EEXHAUSTED);
        CHECK(res.attempts == f.calls);
        CHECK(res.attempts <= c.max_retries + 1);
        CHECK(res.total_delay_s <= c.max_elapsed_s + 1e-6);
    }
    return 0;
}
