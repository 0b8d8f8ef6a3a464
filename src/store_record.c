/* src/store_record.c - the fixed-layout record of a store's state (init,
 * check, repair) and the store operations over it, shared by the backends
 * that keep one (local, mmap): each takes the backend's lock (ops->lock).
 * See src/internal/store.h and docs/store.md. */
#define _GNU_SOURCE
#include "internal/store.h"
#include "internal/fork.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the record ------------------------------------------------------------ */

void resil__store_boot_id(char *out, size_t n)
{
    static char cached[48];
    static _Atomic int state; /* 0 unread, 1 reading, 2 read */
    int expect = 0;
    if (atomic_compare_exchange_strong(&state, &expect, 1)) {
        int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t r = read(fd, cached, sizeof cached - 1);
            if (r > 0) {
                cached[r] = 0;
                cached[strcspn(cached, "\n")] = 0;
            }
            close(fd);
        }
        atomic_store(&state, 2);
    }
    while (atomic_load(&state) != 2)
        ;
    snprintf(out, n, "%s", cached);
}

void resil__cb_state_init(struct resil__cb_state *st, const char *name)
{
    /* In place and field by field, so processes that have the record mapped
     * never see a torn atomic; the magic goes last. */
    /* A reset keeps the window's size (processes that run with a window
     * rely on it) and moves lease generations on, so that no permit of
     * before the reset matches a lease granted after it. */
    bool had = st->magic == RESIL__CB_MAGIC;
    int32_t ws = had ? atomic_load(&st->window_size) : 0;
    if (ws < 0 || ws > RESIL__CB_WINDOW_MAX)
        ws = 0;
    st->magic = 0;
    atomic_store(&st->word, (uint64_t)0 | ((RESIL__CB_EPOCH(atomic_load(&st->word)) + 1) << 8));
    atomic_store(&st->consecutive_failures, 0);
    atomic_store(&st->open_until_ns, 0);
    atomic_store(&st->open_until_wall_ns, 0);
    atomic_store(&st->open_duration_ns, 0);
    atomic_store(&st->open_streak, 0);
    atomic_store(&st->half_open_successes, 0);
    atomic_store(&st->window_size, ws);
    atomic_store(&st->window_head, 0);
    atomic_store(&st->window_count, 0);
    atomic_store(&st->window_failures, 0);
    atomic_store(&st->window_slow, 0);
    atomic_store(&st->cfg_failure_threshold, 0);
    atomic_store(&st->cfg_recovery_ns, 0);
    atomic_store(&st->last_change_wall_ns, 0);
    for (int i = 0; i < RESIL__CB_SLOTS; i++) {
        atomic_store(&st->slots[i].gen, atomic_load(&st->slots[i].gen) + 1);
        st->slots[i].pad = 0;
        atomic_store(&st->slots[i].expires_ns, 0);
    }
    for (int i = 0; i < RESIL__CB_STRIPES; i++) {
        atomic_store(&st->stripes[i].successful, 0);
        atomic_store(&st->stripes[i].failed, 0);
        atomic_store(&st->stripes[i].ignored, 0);
        atomic_store(&st->stripes[i].not_permitted, 0);
    }
    memset(st->ring, 0, sizeof st->ring);
    char copy[sizeof st->name]; /* name may point into st->name */
    snprintf(copy, sizeof copy, "%s", name);
    memset(st->name, 0, sizeof st->name);
    memcpy(st->name, copy, sizeof copy);
    resil__store_boot_id(st->boot_id, sizeof st->boot_id);
    st->version = RESIL__CB_VERSION;
    st->size = (uint32_t)sizeof *st;
    atomic_store(&st->dirty, 0);
    atomic_thread_fence(memory_order_seq_cst);
    st->magic = RESIL__CB_MAGIC;
}

const char *resil__cb_state_check(const struct resil__cb_state *st)
{
    if (st->magic != RESIL__CB_MAGIC)
        return "not a resil breaker state (bad magic number)";
    if (st->version != RESIL__CB_VERSION)
        return "written by another version of resil (unknown layout version)";
    if (st->size != sizeof *st)
        return "wrong record size in the header";
    if (memchr(st->name, 0, sizeof st->name) == NULL)
        return "the name in the header is not terminated";
    if (memchr(st->boot_id, 0, sizeof st->boot_id) == NULL)
        return "the boot id in the header is not terminated";
    uint64_t w = atomic_load(&st->word);
    if (RESIL__CB_STATE(w) > 4)
        return "impossible state";
    int64_t cf = atomic_load(&st->consecutive_failures);
    if (cf < 0 || cf > RESIL__CB_COUNT_MAX)
        return "consecutive failure count out of range";
    int32_t streak = atomic_load(&st->open_streak), hos = atomic_load(&st->half_open_successes);
    if (streak < 0 || streak > 1000000 || hos < 0 || hos > 1000000)
        return "open streak or half-open count out of range";
    if (atomic_load(&st->open_until_ns) < 0 || atomic_load(&st->open_duration_ns) < 0 ||
        atomic_load(&st->open_until_wall_ns) < 0 ||
        atomic_load(&st->open_until_ns) > RESIL__CB_TIME_MAX ||
        atomic_load(&st->open_duration_ns) > RESIL__CB_TIME_MAX ||
        atomic_load(&st->open_until_wall_ns) > RESIL__CB_TIME_MAX)
        return "open time out of range";
    int32_t ws = atomic_load(&st->window_size);
    if (ws < 0 || ws > RESIL__CB_WINDOW_MAX)
        return "window size out of range";
    int32_t head = atomic_load(&st->window_head), count = atomic_load(&st->window_count);
    if (head < 0 || (ws > 0 && head >= ws) || (ws == 0 && head != 0) || count < 0 || count > ws)
        return "window position out of range";
    int32_t f = atomic_load(&st->window_failures), s = atomic_load(&st->window_slow);
    if (f < 0 || f > count || s < 0 || s > count)
        return "window counts out of range";
    for (int i = 0; i < RESIL__CB_SLOTS; i++)
        if (atomic_load(&st->slots[i].expires_ns) < 0 ||
            atomic_load(&st->slots[i].expires_ns) > RESIL__CB_TIME_MAX)
            return "trial lease expiry out of range";
    for (int i = 0; i < RESIL__CB_STRIPES; i++) {
        const struct resil__cb_stripe *sp = &st->stripes[i];
        int64_t a = atomic_load(&sp->successful), b = atomic_load(&sp->failed),
                c = atomic_load(&sp->ignored), d = atomic_load(&sp->not_permitted);
        if (a < 0 || b < 0 || c < 0 || d < 0 || a > RESIL__CB_COUNT_MAX ||
            b > RESIL__CB_COUNT_MAX || c > RESIL__CB_COUNT_MAX || d > RESIL__CB_COUNT_MAX)
            return "call counter out of range";
    }
    return NULL;
}

void resil__cb_state_repair(struct resil__cb_state *st)
{
    uint64_t w = atomic_load(&st->word);
    if (RESIL__CB_STATE(w) > 4)
        atomic_store(&st->word, (RESIL__CB_EPOCH(w) + 1) << 8);
    /* header strings terminated */
    st->name[sizeof st->name - 1] = 0;
    st->boot_id[sizeof st->boot_id - 1] = 0;
    int64_t cf = atomic_load(&st->consecutive_failures);
    if (cf < 0 || cf > RESIL__CB_COUNT_MAX)
        atomic_store(&st->consecutive_failures, 0);
    /* Only go_open raises the streak and only go_closed (or init) makes the
     * state CLOSED, clearing it: a CLOSED record with a streak is a trip
     * that died before its state word was stored. */
    if (atomic_load(&st->open_streak) < 0 || atomic_load(&st->open_streak) > 1000000 ||
        RESIL__CB_STATE(atomic_load(&st->word)) == RESIL__CB_CLOSED)
        atomic_store(&st->open_streak, 0);
    if (atomic_load(&st->half_open_successes) < 0 ||
        atomic_load(&st->half_open_successes) > 1000000)
        atomic_store(&st->half_open_successes, 0);
    if (atomic_load(&st->open_until_ns) < 0 || atomic_load(&st->open_until_ns) > RESIL__CB_TIME_MAX)
        atomic_store(&st->open_until_ns, 0);
    if (atomic_load(&st->open_duration_ns) < 0 ||
        atomic_load(&st->open_duration_ns) > RESIL__CB_TIME_MAX)
        atomic_store(&st->open_duration_ns, 0);
    if (atomic_load(&st->open_until_wall_ns) < 0 ||
        atomic_load(&st->open_until_wall_ns) > RESIL__CB_TIME_MAX)
        atomic_store(&st->open_until_wall_ns, 0);
    int32_t ws = atomic_load(&st->window_size);
    int32_t head = atomic_load(&st->window_head), count = atomic_load(&st->window_count);
    if (ws < 0 || ws > RESIL__CB_WINDOW_MAX || head < 0 || (ws > 0 && head >= ws) ||
        (ws == 0 && head != 0) || count < 0 || count > ws) {
        atomic_store(&st->window_head, 0);
        atomic_store(&st->window_count, 0);
        if (ws < 0 || ws > RESIL__CB_WINDOW_MAX)
            atomic_store(&st->window_size, 0);
        count = 0;
        ws = atomic_load(&st->window_size);
        head = 0;
    }
    /* Recount the window from the ring: the last `count` entries before head. */
    int32_t f = 0, s = 0;
    for (int32_t i = 0; i < count; i++) {
        int32_t at = (head - 1 - i + ws) % ws;
        f += st->ring[at] & 1;
        s += (st->ring[at] >> 1) & 1;
    }
    atomic_store(&st->window_failures, f);
    atomic_store(&st->window_slow, s);
    for (int i = 0; i < RESIL__CB_SLOTS; i++)
        if (atomic_load(&st->slots[i].expires_ns) < 0 ||
            atomic_load(&st->slots[i].expires_ns) > RESIL__CB_TIME_MAX)
            atomic_store(&st->slots[i].expires_ns, 0);
    for (int i = 0; i < RESIL__CB_STRIPES; i++) {
        struct resil__cb_stripe *sp = &st->stripes[i];
        _Atomic int64_t *c[4] = {&sp->successful, &sp->failed, &sp->ignored, &sp->not_permitted};
        for (int k = 0; k < 4; k++) {
            int64_t v = atomic_load(c[k]);
            if (v < 0 || v > RESIL__CB_COUNT_MAX)
                atomic_store(c[k], 0);
        }
    }
    atomic_store(&st->dirty, 0);
}

/* ---- counter stripes ---------------------------------------------------------- */

static _Atomic unsigned stripe_next;
_Thread_local unsigned resil__store_stripe_tls
#if defined(__GNUC__)
    __attribute__((tls_model("initial-exec")))
#endif
    ;

/* A forked child draws its own stripe (it would share its parent's). */
static void stripe_atfork_child(void)
{
    resil__store_stripe_tls = 0;
}

static void stripe_atfork_register(void)
{
    resil__fork_hook(RESIL__FORK_BREAKER, NULL, NULL, stripe_atfork_child);
}

static pthread_once_t stripe_once = PTHREAD_ONCE_INIT;

/* A thread's stripe: threads of one process are dealt stripes in turn,
 * starting from a place drawn from the process id, so that the first threads
 * of different processes sharing a record do not all write stripe 0. */
unsigned resil__store_stripe_first(void)
{
    pthread_once(&stripe_once, stripe_atfork_register);
    unsigned k = atomic_fetch_add_explicit(&stripe_next, 1, memory_order_relaxed);
    unsigned base = (unsigned)getpid() * 2654435761u >> 26; /* 0..63 */
    return resil__store_stripe_tls = (base + k) % RESIL__CB_STRIPES + 1;
}

/* ---- the operations over a record ----------------------------------------------- */

/* A guarded store checks (under its lock) before any lock-free access. */
static int guard(resil__store *s)
{
    if (!s->guarded)
        return 0;
    int rc = s->ops->lock(s);
    if (rc == 0)
        s->ops->unlock(s);
    return rc;
}

int resil__rec_read(resil__store *s, unsigned what, resil__store_view *out)
{
    /* the scalars only: the arrays are filled when asked for */
    memset(out, 0, offsetof(resil__store_view, counts));
    int rc = guard(s);
    if (rc)
        return rc;
    const struct resil__cb_state *st = s->rec;
    out->word = atomic_load_explicit(&st->word, memory_order_acquire);
    out->consecutive_failures =
        atomic_load_explicit(&st->consecutive_failures, memory_order_relaxed);
    out->open_until_ns = atomic_load_explicit(&st->open_until_ns, memory_order_relaxed);
    out->open_duration_ns = atomic_load_explicit(&st->open_duration_ns, memory_order_relaxed);
    out->cfg_recovery_ns = atomic_load_explicit(&st->cfg_recovery_ns, memory_order_relaxed);
    out->open_streak = atomic_load_explicit(&st->open_streak, memory_order_relaxed);
    out->cfg_failure_threshold =
        atomic_load_explicit(&st->cfg_failure_threshold, memory_order_relaxed);
    out->window_size = atomic_load_explicit(&st->window_size, memory_order_relaxed);
    out->window_count = atomic_load_explicit(&st->window_count, memory_order_relaxed);
    out->window_failures = atomic_load_explicit(&st->window_failures, memory_order_relaxed);
    out->window_slow = atomic_load_explicit(&st->window_slow, memory_order_relaxed);
    if (what & RESIL__VIEW_COUNTS) {
        /* Summed unsigned (a scribbled file cannot make this overflow a
         * signed integer), then clamped. */
        uint64_t sum[4] = {0, 0, 0, 0};
        for (int i = 0; i < RESIL__CB_STRIPES; i++) {
            const struct resil__cb_stripe *sp = &st->stripes[i];
            sum[0] += (uint64_t)atomic_load_explicit(&sp->successful, memory_order_relaxed);
            sum[1] += (uint64_t)atomic_load_explicit(&sp->failed, memory_order_relaxed);
            sum[2] += (uint64_t)atomic_load_explicit(&sp->ignored, memory_order_relaxed);
            sum[3] += (uint64_t)atomic_load_explicit(&sp->not_permitted, memory_order_relaxed);
        }
        for (int k = 0; k < 4; k++)
            out->counts[k] = sum[k] > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)sum[k];
    }
    if (what & RESIL__VIEW_LEASES)
        for (int i = 0; i < RESIL__CB_SLOTS; i++)
            out->lease_expires[i] =
                atomic_load_explicit(&st->slots[i].expires_ns, memory_order_relaxed);
    return 0;
}

int resil__rec_apply(resil__store *s, uint64_t expect, resil__store_apply_fn fn, void *arg)
{
    int rc = s->ops->lock(s);
    if (rc)
        return rc;
    if (expect != RESIL__STORE_ANY &&
        atomic_load_explicit(&s->rec->word, memory_order_relaxed) != expect)
        rc = RESIL__STORE_CONFLICT;
    else
        rc = fn(s->rec, arg);
    s->ops->unlock(s);
    return rc;
}

static void add_deltas(struct resil__cb_stripe *sp, const resil__store_delta *d)
{
    if (d->successful)
        atomic_fetch_add_explicit(&sp->successful, d->successful, memory_order_relaxed);
    if (d->failed)
        atomic_fetch_add_explicit(&sp->failed, d->failed, memory_order_relaxed);
    if (d->ignored)
        atomic_fetch_add_explicit(&sp->ignored, d->ignored, memory_order_relaxed);
    if (d->not_permitted)
        atomic_fetch_add_explicit(&sp->not_permitted, d->not_permitted, memory_order_relaxed);
}

int resil__rec_add(resil__store *s, const resil__store_delta *d)
{
    if (s->readonly)
        return -EACCES;
    if (!s->guarded) { /* each counter is an atomic of this thread's stripe */
        add_deltas(resil__rec_stripe(s->rec), d);
        return 0;
    }
    int rc = s->ops->lock(s);
    if (rc)
        return rc;
    add_deltas(resil__rec_stripe(s->rec), d);
    s->ops->unlock(s);
    return 0;
}

int resil__rec_lease_take(resil__store *s, uint64_t expect, int max, int64_t now_ns,
                          int64_t lease_ns, resil__store_lease *out)
{
    if (max < 1 || max > RESIL__CB_SLOTS)
        return RESIL_EINVAL;
    int rc = s->ops->lock(s);
    if (rc)
        return rc;
    struct resil__cb_state *st = s->rec;
    uint64_t w = atomic_load_explicit(&st->word, memory_order_relaxed);
    rc = RESIL__STORE_CONFLICT;
    if (w == expect) {
        rc = RESIL__STORE_BUSY;
        for (int i = 0; i < max; i++) {
            struct resil__cb_slot *sl = &st->slots[i];
            int64_t e = atomic_load_explicit(&sl->expires_ns, memory_order_relaxed);
            if (e != 0 && e > now_ns)
                continue;
            uint32_t gen = atomic_load_explicit(&sl->gen, memory_order_relaxed) + 1;
            atomic_store_explicit(&sl->gen, gen, memory_order_relaxed);
            /* | 1: never 0 (free), whatever the clock says */
            int64_t until = now_ns > INT64_MAX - lease_ns ? INT64_MAX : now_ns + lease_ns;
            atomic_store_explicit(&sl->expires_ns, until | 1, memory_order_relaxed);
            out->slot = (uint32_t)i;
            out->gen = gen;
            out->word = w;
            rc = 0;
            break;
        }
    }
    s->ops->unlock(s);
    return rc;
}

int resil__rec_lease_return(resil__store *s, const resil__store_lease *l, int64_t now_ns,
                            resil__store_apply_fn fn, void *arg)
{
    int rc = s->ops->lock(s);
    if (rc)
        return rc;
    struct resil__cb_state *st = s->rec;
    struct resil__cb_slot *sl = &st->slots[l->slot % RESIL__CB_SLOTS];
    bool live = atomic_load_explicit(&sl->gen, memory_order_relaxed) == l->gen &&
                atomic_load_explicit(&sl->expires_ns, memory_order_relaxed) > now_ns;
    rc = live;
    if (live) {
        atomic_store_explicit(&sl->expires_ns, 0, memory_order_relaxed);
        if (fn && atomic_load_explicit(&st->word, memory_order_relaxed) == l->word) {
            int f = fn(st, arg);
            if (f < 0)
                rc = f;
        }
    }
    s->ops->unlock(s);
    return rc;
}
