/* src/breaker.c - circuit breakers.  See include/resil/breaker.h for the
 * behaviour and src/internal/store.h for where the state lives.
 *
 * The closed-state fast path (consecutive-failure rule only): acquire loads
 * the state word; a success whose consecutive-failure count is already 0
 * adds one to this thread's counter stripe and returns.  Everything that can
 * change the state (a failure, a success after failures, a window, a trial
 * call, OPEN whose time is over) takes the store's lock, re-checks the state
 * word's epoch, and changes it; listeners run after the lock is released. */
#define _GNU_SOURCE
#include "resil/breaker.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal/fork.h"
#include "internal/log.h"
#include "internal/metrics.h"
#include "internal/store.h"
#include "internal/sys.h"
#include "internal/util.h"

enum { K_CLOSED = 1, K_DISABLED, K_TRIAL, K_SPENT };

#define MAX_LISTENERS 8
#define DEFAULT_THRESHOLD 5
#define DEFAULT_TIMEOUT_S 60.0
#define MAX_OPEN_DEFAULT_S 86400.0

struct listener {
    resil_breaker_listener fn;
    void *arg;
    bool used;
    int calls; /* calls running now (under lmu) */
};

/* The listener this thread is running, so that a listener may remove itself
 * without waiting for its own call to end. */
static _Thread_local const struct listener *running_listener;

struct resil_breaker {
    struct resil__cb_state *st; /* hot: first */
    bool simple;                /* consecutive rule only: the fast path applies */
    bool timed;                 /* a slow-call rule: acquire reads the clock */
    bool guarded;               /* the store's: every call locks (and checks size) first */
    resil_breaker_classifier classify;
    void *classify_arg;
    const resil_clock *clock;
    resil__store *store;
    resil_breaker_opts o; /* resolved */
    int64_t recovery_ns, lease_ns, slow_ns, max_open_ns;
    resil_rng rng; /* under the store's lock */
    pthread_mutex_t lmu;
    pthread_cond_t lcv; /* a listener call ended */
    struct listener listeners[MAX_LISTENERS];
    char *name;
    struct resil__cb_metrics metrics; /* all NULL when metrics are off */
    resil_breaker *live_prev, *live_next; /* the live list (with metrics), under live_mu */
};

/* ---- names, env, options ---------------------------------------------------- */

const char *resil_breaker_state_name(resil_breaker_state state)
{
    switch (state) {
    case RESIL_BREAKER_CLOSED: return "closed";
    case RESIL_BREAKER_OPEN: return "open";
    case RESIL_BREAKER_HALF_OPEN: return "half_open";
    case RESIL_BREAKER_FORCED_OPEN: return "forced_open";
    case RESIL_BREAKER_DISABLED: return "disabled";
    }
    return "unknown";
}

static int parse_env_int(const char *var, const char *v, int *out, resil_error *err)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    while (*end == ' ' || *end == '\t')
        end++;
    if (end == v || *end || errno || x < 1 || x > 1000000)
        return resil_error_set(err, RESIL_EINVAL, var,
                               "%s='%s' is not an integer in 1..1000000; using the default %d",
                               var, v, DEFAULT_THRESHOLD);
    *out = (int)x;
    return 0;
}

static int parse_env_double(const char *var, const char *v, double *out, resil_error *err)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    while (*end == ' ' || *end == '\t')
        end++;
    if (end == v || *end || errno || !isfinite(x) || !(x > 0) || x > 1e9)
        return resil_error_set(err, RESIL_EINVAL, var,
                               "%s='%s' is not a number of seconds > 0; using the default %g",
                               var, v, DEFAULT_TIMEOUT_S);
    *out = x;
    return 0;
}

int resil_breaker_env_defaults(int *threshold, double *timeout_s, resil_error *err)
{
    int t = DEFAULT_THRESHOLD, rc = 0;
    double to = DEFAULT_TIMEOUT_S;
    const char *v = getenv("CIRCUIT_BREAKER_DEFAULT_THRESHOLD");
    if (v && parse_env_int("CIRCUIT_BREAKER_DEFAULT_THRESHOLD", v, &t, err) != 0) {
        t = DEFAULT_THRESHOLD;
        rc = RESIL_EINVAL;
    }
    v = getenv("CIRCUIT_BREAKER_DEFAULT_TIMEOUT");
    resil_error e2;
    if (v && parse_env_double("CIRCUIT_BREAKER_DEFAULT_TIMEOUT", v, &to,
                              rc ? &e2 : err) != 0) {
        to = DEFAULT_TIMEOUT_S;
        rc = RESIL_EINVAL;
    }
    if (threshold)
        *threshold = t;
    if (timeout_s)
        *timeout_s = to;
    return rc;
}

/* The env defaults, with a bad value reported once per process (resil__log). */
static void env_defaults_warn(int *threshold, double *timeout_s)
{
    static atomic_bool warned;
    resil_error e;
    resil_error_clear(&e);
    if (resil_breaker_env_defaults(threshold, timeout_s, &e) != 0 &&
        !atomic_exchange(&warned, true))
        resil__log(RESIL_LOG_WARN, "%s", e.message);
}

#define BAD(field, ...) resil_error_set(err, RESIL_EINVAL, field, __VA_ARGS__)

static bool finite_pos(double x)
{
    return isfinite(x) && x > 0;
}

int resil_breaker_opts_resolve(resil_breaker_opts *o, resil_error *err)
{
    if (!o)
        return BAD("opts", "opts is NULL");
    if (o->failure_threshold == 0 || o->recovery_timeout_s == 0) {
        int t;
        double to;
        env_defaults_warn(&t, &to);
        if (o->failure_threshold == 0)
            o->failure_threshold = t;
        if (o->recovery_timeout_s == 0)
            o->recovery_timeout_s = to;
    }
    if (o->failure_threshold < -1 || o->failure_threshold > 1000000)
        return BAD("failure_threshold",
                   "failure_threshold must be 1..1000000, or -1 for no consecutive rule "
                   "(got %d)", o->failure_threshold);
    if (!finite_pos(o->recovery_timeout_s) || o->recovery_timeout_s > 1e9)
        return BAD("recovery_timeout_s",
                   "recovery_timeout_s must be a number of seconds in (0, 1e9] (got %g)",
                   o->recovery_timeout_s);
    if (o->state_trust < RESIL_BREAKER_TRUST_DEFAULT || o->state_trust > RESIL_BREAKER_TRUST_SHARED)
        return BAD("state_trust", "state_trust must be RESIL_BREAKER_TRUST_DEFAULT, _PRIVATE or "
                                  "_SHARED (got %d)", o->state_trust);
    if (o->state_dir_mode && (o->state_dir_mode > 0777 || (o->state_dir_mode & 0700) != 0700))
        return BAD("state_dir_mode", "state_dir_mode must be a mode of 0700..0777 with the "
                                     "owner's rwx bits (got %04o)", o->state_dir_mode);
    if (o->state_file_mode && (o->state_file_mode > 0666 || (o->state_file_mode & 0600) != 0600))
        return BAD("state_file_mode", "state_file_mode must be a mode of 0600..0666 with the "
                                      "owner's rw bits (got %04o)", o->state_file_mode);
    if (o->success_threshold == 0)
        o->success_threshold = 1;
    if (o->success_threshold < 1 || o->success_threshold > 1000000)
        return BAD("success_threshold", "success_threshold must be 1..1000000 (got %d)",
                   o->success_threshold);
    if (o->half_open_max_calls == 0)
        o->half_open_max_calls = 1;
    if (o->half_open_max_calls < 1 || o->half_open_max_calls > RESIL__CB_SLOTS)
        return BAD("half_open_max_calls", "half_open_max_calls must be 1..%d (got %d)",
                   RESIL__CB_SLOTS, o->half_open_max_calls);
    if (o->half_open_lease_s == 0)
        o->half_open_lease_s = o->recovery_timeout_s;
    if (!finite_pos(o->half_open_lease_s) || o->half_open_lease_s > 1e9)
        return BAD("half_open_lease_s", "half_open_lease_s must be a number of seconds in (0, 1e9] (got %g)",
                   o->half_open_lease_s);
    if (o->window_size < 0 || o->window_size > RESIL__CB_WINDOW_MAX)
        return BAD("window_size", "window_size must be 0 (none) or 1..%d (got %d)",
                   RESIL__CB_WINDOW_MAX, o->window_size);
    if (o->window_size == 0) {
        if (o->window_min_calls != 0)
            return BAD("window_min_calls", "window_min_calls needs a window_size");
        if (o->slow_call_duration_s != 0)
            return BAD("slow_call_duration_s",
                       "the slow-call rule needs a window (window_size > 0)");
        if (o->failure_threshold == -1)
            return BAD("failure_threshold",
                       "failure_threshold -1 (no consecutive rule) needs a window");
    }
    if (o->window_size > 0 && o->window_min_calls == 0)
        o->window_min_calls = o->window_size;
    if (o->window_min_calls < 0 || o->window_min_calls > o->window_size)
        return BAD("window_min_calls", "window_min_calls must be 1..window_size (%d) (got %d)",
                   o->window_size, o->window_min_calls);
    if (o->failure_rate_threshold == 0)
        o->failure_rate_threshold = 0.5;
    if (!(o->failure_rate_threshold > 0 && o->failure_rate_threshold <= 1))
        return BAD("failure_rate_threshold", "failure_rate_threshold must be in (0, 1] (got %g)",
                   o->failure_rate_threshold);
    if (o->slow_call_duration_s != 0 &&
        (!finite_pos(o->slow_call_duration_s) || o->slow_call_duration_s > 1e9))
        return BAD("slow_call_duration_s",
                   "slow_call_duration_s must be 0 (no rule) or in (0, 1e9] seconds (got %g)",
                   o->slow_call_duration_s);
    if (o->slow_call_rate_threshold == 0)
        o->slow_call_rate_threshold = 1.0;
    if (!(o->slow_call_rate_threshold > 0 && o->slow_call_rate_threshold <= 1))
        return BAD("slow_call_rate_threshold",
                   "slow_call_rate_threshold must be in (0, 1] (got %g)",
                   o->slow_call_rate_threshold);
    if (o->open_multiplier == 0)
        o->open_multiplier = 1;
    if (!(isfinite(o->open_multiplier) && o->open_multiplier >= 1 && o->open_multiplier <= 1000))
        return BAD("open_multiplier", "open_multiplier must be in [1, 1000] (got %g)",
                   o->open_multiplier);
    if (o->max_open_s == 0)
        o->max_open_s = o->recovery_timeout_s > MAX_OPEN_DEFAULT_S ? o->recovery_timeout_s
                                                                   : MAX_OPEN_DEFAULT_S;
    if (!(isfinite(o->max_open_s) && o->max_open_s >= o->recovery_timeout_s))
        return BAD("max_open_s", "max_open_s must be >= recovery_timeout_s (%g) (got %g)",
                   o->recovery_timeout_s, o->max_open_s);
    if (!(o->open_jitter >= 0 && o->open_jitter < 1))
        return BAD("open_jitter", "open_jitter must be in [0, 1) (got %g)", o->open_jitter);
    return 0;
}

/* ---- the live list: the state gauges of every breaker, at every export ------------
 *
 * A shared breaker's state changes in other processes too, and an OPEN
 * breaker reads HALF_OPEN once its time is over without any transition made
 * here: resil_circuitbreaker_state is set again, just before every export of
 * the default registry, by a collector that reads the effective state of
 * every live breaker of this process that has metrics (lock-free, as
 * resil_breaker_get_state does: no lock of the state file is taken).  The
 * breakers of resil_breaker_get's registry are only some of them, hence a
 * list of its own.  live_mu is held while the collector reads a breaker, so
 * resil_breaker_free waits for it. */

static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static resil_breaker *live_head;
static bool live_collector_added; /* under live_mu */
static pthread_once_t live_fork_once = PTHREAD_ONCE_INIT;

static void live_lock(void)
{
    pthread_mutex_lock(&live_mu);
}

static void live_unlock(void)
{
    pthread_mutex_unlock(&live_mu);
}

static void live_fork_register(void)
{
    /* a fork while the collector runs on another thread leaves the child
     * (which may use the breakers) a usable live_mu */
    resil__fork_hook(RESIL__FORK_BREAKER, live_lock, live_unlock, live_unlock);
}

/* Sets b's state gauges from its current state: under live_mu, so that
 * a transition's update and a collector's do not interleave (each reads
 * the state under the lock: the last one writes what is current). */
static void live_refresh(resil_breaker *b)
{
    if (!b->metrics.state[0])
        return;
    pthread_mutex_lock(&live_mu);
    resil__metrics_breaker_state(&b->metrics, (int)resil_breaker_get_state(b));
    pthread_mutex_unlock(&live_mu);
}

static void live_collect(resil_metrics_registry *r, void *arg)
{
    (void)r;
    (void)arg;
    pthread_mutex_lock(&live_mu);
    for (resil_breaker *b = live_head; b; b = b->live_next)
        resil__metrics_breaker_state(&b->metrics, (int)resil_breaker_get_state(b));
    pthread_mutex_unlock(&live_mu);
}

static void live_add(resil_breaker *b)
{
    if (!b->metrics.state[0])
        return; /* metrics are off */
    pthread_once(&live_fork_once, live_fork_register);
    pthread_mutex_lock(&live_mu);
    b->live_prev = NULL;
    b->live_next = live_head;
    if (live_head)
        live_head->live_prev = b;
    live_head = b;
    if (!live_collector_added) {
        resil_metrics_registry *r = resil_metrics_default();
        int rc = r ? resil_metrics_add_collector(r, live_collect, NULL) : -ENOMEM;
        live_collector_added = rc == 0 || rc == -EEXIST; /* else: again next time */
    }
    pthread_mutex_unlock(&live_mu);
}

static void live_remove(resil_breaker *b)
{
    if (!b->metrics.state[0])
        return;
    pthread_mutex_lock(&live_mu);
    if (b->live_prev)
        b->live_prev->live_next = b->live_next;
    else if (live_head == b)
        live_head = b->live_next;
    if (b->live_next)
        b->live_next->live_prev = b->live_prev;
    b->live_prev = b->live_next = NULL;
    pthread_mutex_unlock(&live_mu);
}

/* ---- lifetime --------------------------------------------------------------- */

static const char *state_dir_of(const resil_breaker_opts *o)
{
    if (o->state_dir)
        return o->state_dir[0] ? o->state_dir : NULL;
    const char *e = getenv("RESIL_STATE_DIR");
    return e && *e ? e : NULL;
}

int resil_breaker_new(resil_breaker **out, const char *name, const resil_breaker_opts *opts,
                      resil_error *err)
{
    if (!out)
        return BAD("out", "out is NULL");
    if (!name || !*name || strlen(name) > RESIL__CB_NAME_MAX)
        return BAD("name", "a breaker's name must be 1..%d bytes", RESIL__CB_NAME_MAX);
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    if (opts)
        o = *opts;
    int rc = resil_breaker_opts_resolve(&o, err);
    if (rc)
        return rc;
    resil_breaker *b = aligned_alloc(64, (sizeof *b + 63) / 64 * 64);
    if (!b)
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    memset(b, 0, sizeof *b);
    b->o = o;
    b->clock = o.clock ? o.clock : resil_clock_system();
    b->classify = o.classify;
    b->classify_arg = o.classify_arg;
    b->recovery_ns = resil__s_to_ns(o.recovery_timeout_s);
    b->lease_ns = resil__s_to_ns(o.half_open_lease_s);
    b->slow_ns = resil__s_to_ns(o.slow_call_duration_s);
    b->max_open_ns = resil__s_to_ns(o.max_open_s);
    b->timed = o.slow_call_duration_s > 0;
    b->simple = o.window_size == 0 && !b->timed;
    if (o.seed)
        resil_rng_seed(&b->rng, o.seed);
    else
        resil_rng_seed_random(&b->rng);
    pthread_mutex_init(&b->lmu, NULL);
    pthread_cond_init(&b->lcv, NULL);
    b->name = strdup(name);
    b->o.state_dir = NULL;
    if (!b->name) {
        rc = resil_error_set(err, -ENOMEM, NULL, "out of memory");
        goto fail;
    }
    const char *dir = state_dir_of(&o);
    if (!dir && o.attach_only) {
        rc = BAD("attach_only", "attach_only needs a state directory (state_dir or "
                                "RESIL_STATE_DIR)");
        goto fail;
    }
    resil__store_cfg cfg = {.trust_shared = o.state_trust == RESIL_BREAKER_TRUST_SHARED,
                            .dir_mode = (mode_t)o.state_dir_mode,
                            .file_mode = (mode_t)o.state_file_mode};
    if (dir && o.state_trust == RESIL_BREAKER_TRUST_DEFAULT &&
        (rc = resil__cb_trust_from_env(&cfg.trust_shared, err)) != 0)
        goto fail;
    if (dir && !cfg.trust_shared && ((o.state_dir_mode & 022) || (o.state_file_mode & 022))) {
        rc = BAD((o.state_dir_mode & 022) ? "state_dir_mode" : "state_file_mode",
                 "a state directory or file mode that lets the group or others write needs "
                 "state_trust RESIL_BREAKER_TRUST_SHARED");
        goto fail;
    }
    if (dir)
        rc = resil__store_open_file_cfg(&b->store, dir, name, o.attach_only, &cfg,
                                        resil_clock_monotonic_ns(b->clock),
                                        resil_clock_wall_ns(b->clock), err);
    else
        rc = resil__store_open_local(&b->store, name);
    if (rc) {
        if (rc == -ENOMEM && !dir)
            resil_error_set(err, rc, NULL, "out of memory");
        goto fail;
    }
    b->st = b->store->st;
    if (o.guard_every_call && b->store->shared)
        b->store->guarded = true;
    b->guarded = b->store->guarded;
    /* Record this handle's configuration and window size in the state. */
    if (!o.attach_only) {
        rc = resil__store_lock(b->store);
        if (rc) {
            resil_error_set(err, rc, b->store->path, "cannot lock the breaker state: %s",
                            resil_strerror(rc));
            goto fail;
        }
        struct resil__cb_state *st = b->st;
        atomic_store_explicit(&st->cfg_failure_threshold, o.failure_threshold,
                              memory_order_relaxed);
        atomic_store_explicit(&st->cfg_recovery_ns, b->recovery_ns, memory_order_relaxed);
        if (o.window_size > 0 && atomic_load(&st->window_size) != o.window_size) {
            atomic_store(&st->window_size, o.window_size);
            atomic_store(&st->window_head, 0);
            atomic_store(&st->window_count, 0);
            atomic_store(&st->window_failures, 0);
            atomic_store(&st->window_slow, 0);
        }
        resil__store_unlock(b->store);
    } else {
        b->o.failure_threshold = atomic_load(&b->st->cfg_failure_threshold);
        if (b->o.failure_threshold == 0)
            b->o.failure_threshold = o.failure_threshold;
        int64_t r = atomic_load(&b->st->cfg_recovery_ns);
        if (r > 0) {
            b->recovery_ns = r;
            b->o.recovery_timeout_s = resil__ns_to_s(r);
        }
    }
    resil__metrics_breaker_init(&b->metrics, name,
                                RESIL__CB_STATE(atomic_load(&b->st->word)));
    live_add(b);
    *out = b;
    return 0;
fail:
    resil__store_close(b->store);
    pthread_mutex_destroy(&b->lmu);
    pthread_cond_destroy(&b->lcv);
    free(b->name);
    free(b);
    return rc;
}

void resil_breaker_free(resil_breaker *b)
{
    if (!b)
        return;
    live_remove(b);
    resil__store_close(b->store);
    pthread_mutex_destroy(&b->lmu);
    pthread_cond_destroy(&b->lcv);
    free(b->name);
    free(b);
}

const char *resil_breaker_name(const resil_breaker *b)
{
    return b->name;
}

bool resil_breaker_is_shared(const resil_breaker *b)
{
    return b->store->shared || b->store->readonly;
}

/* ---- counters ----------------------------------------------------------------- */

static _Atomic unsigned stripe_next;
static _Thread_local unsigned stripe_of_thread
#if defined(__GNUC__)
    __attribute__((tls_model("initial-exec")))
#endif
    ;

/* A thread's stripe: threads of one process are dealt stripes in turn,
 * starting from a place drawn from the process id, so that the first threads
 * of different processes sharing a breaker do not all write stripe 0. */
static unsigned first_stripe(void)
{
    unsigned k = atomic_fetch_add_explicit(&stripe_next, 1, memory_order_relaxed);
    unsigned base = (unsigned)getpid() * 2654435761u >> 26; /* 0..63 */
    return (base + k) % RESIL__CB_STRIPES + 1;
}

/* A forked child draws its own stripe (it would share its parent's). */
static void stripe_atfork_child(void)
{
    stripe_of_thread = 0;
}

static void stripe_atfork_register(void)
{
    resil__fork_hook(RESIL__FORK_BREAKER, NULL, NULL, stripe_atfork_child);
}

static pthread_once_t stripe_once = PTHREAD_ONCE_INIT;

static inline struct resil__cb_stripe *stripe(struct resil__cb_state *st)
{
    unsigned i = stripe_of_thread;
    if (RESIL_UNLIKELY(i == 0)) {
        pthread_once(&stripe_once, stripe_atfork_register);
        stripe_of_thread = i = first_stripe();
    }
    return &st->stripes[i - 1];
}

static inline void count(resil_breaker *b, resil_breaker_verdict v)
{
    struct resil__cb_stripe *s = stripe(b->st);
    _Atomic int64_t *c = v == RESIL_BREAKER_SUCCESS   ? &s->successful
                         : v == RESIL_BREAKER_FAILURE ? &s->failed
                                                      : &s->ignored;
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
    resil_counter *m = v == RESIL_BREAKER_SUCCESS   ? b->metrics.successful
                       : v == RESIL_BREAKER_FAILURE ? b->metrics.failed
                                                    : b->metrics.ignored;
    if (m)
        resil_counter_inc(m);
}

/* A call's duration, when the breaker has one (given, or measured for the
 * slow-call rule or a trial lease). */
static inline void observe_duration(const resil_breaker *b, resil_breaker_verdict v, double s)
{
    resil_histogram *h = b->metrics.duration[v];
    if (h)
        resil_histogram_observe(h, s);
}

static void count_refused(resil_breaker *b)
{
    atomic_fetch_add_explicit(&stripe(b->st)->not_permitted, 1, memory_order_relaxed);
    if (b->metrics.not_permitted)
        resil_counter_inc(b->metrics.not_permitted);
}

/* ---- transitions (under the lock) ----------------------------------------------- */

struct event {
    bool fired;
    resil_breaker_transition t;
};

static void set_state(resil_breaker *b, resil_breaker_state to, const char *reason,
                      struct event *ev, double open_for_s)
{
    struct resil__cb_state *st = b->st;
    uint64_t w = atomic_load_explicit(&st->word, memory_order_relaxed);
    resil_breaker_state from = (resil_breaker_state)RESIL__CB_STATE(w);
    atomic_store_explicit(&st->word, (uint64_t)to | ((RESIL__CB_EPOCH(w) + 1) << 8),
                          memory_order_release);
    atomic_store_explicit(&st->last_change_wall_ns, resil_clock_wall_ns(b->clock),
                          memory_order_relaxed);
    if (ev) {
        ev->fired = true;
        ev->t.name = b->name;
        ev->t.from = from;
        ev->t.to = to;
        ev->t.open_for_s = open_for_s;
        ev->t.reason = reason;
    }
}

static void clear_window(struct resil__cb_state *st)
{
    atomic_store_explicit(&st->window_head, 0, memory_order_relaxed);
    atomic_store_explicit(&st->window_count, 0, memory_order_relaxed);
    atomic_store_explicit(&st->window_failures, 0, memory_order_relaxed);
    atomic_store_explicit(&st->window_slow, 0, memory_order_relaxed);
}

static void clear_leases(struct resil__cb_state *st)
{
    for (int i = 0; i < RESIL__CB_SLOTS; i++)
        if (atomic_load_explicit(&st->slots[i].expires_ns, memory_order_relaxed)) {
            atomic_fetch_add_explicit(&st->slots[i].gen, 1, memory_order_relaxed);
            atomic_store_explicit(&st->slots[i].expires_ns, 0, memory_order_relaxed);
        }
    atomic_store_explicit(&st->half_open_successes, 0, memory_order_relaxed);
}

static void go_open(resil_breaker *b, int64_t now, const char *reason, struct event *ev)
{
    struct resil__cb_state *st = b->st;
    int32_t streak = atomic_load_explicit(&st->open_streak, memory_order_relaxed) + 1;
    if (streak > 1000000)
        streak = 1000000;
    double d = b->o.recovery_timeout_s;
    if (b->o.open_multiplier > 1)
        d *= pow(b->o.open_multiplier, (double)(streak - 1));
    if (!(d <= b->o.max_open_s))
        d = b->o.max_open_s;
    if (b->o.open_jitter > 0) {
        d *= resil_rng_range(&b->rng, 1 - b->o.open_jitter, 1 + b->o.open_jitter);
        if (d > b->o.max_open_s)
            d = b->o.max_open_s;
    }
    int64_t dn = resil__s_to_ns(d);
    atomic_store_explicit(&st->open_duration_ns, dn, memory_order_relaxed);
    atomic_store_explicit(&st->open_until_wall_ns,
                          resil__add_sat(resil_clock_wall_ns(b->clock), dn),
                          memory_order_relaxed);
    atomic_store_explicit(&st->open_until_ns, resil__add_sat(now, dn), memory_order_relaxed);
    clear_leases(st);
    clear_window(st);
    set_state(b, RESIL_BREAKER_OPEN, reason, ev, d);
    /* After the state word: a holder killed before this line leaves the old
     * streak (a shorter next open), never one of a trip that did not happen. */
    atomic_store_explicit(&st->open_streak, streak, memory_order_relaxed);
}

static void go_closed(resil_breaker *b, const char *reason, struct event *ev)
{
    struct resil__cb_state *st = b->st;
    atomic_store_explicit(&st->consecutive_failures, 0, memory_order_relaxed);
    atomic_store_explicit(&st->open_streak, 0, memory_order_relaxed);
    atomic_store_explicit(&st->open_until_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&st->open_until_wall_ns, 0, memory_order_relaxed);
    clear_window(st);
    clear_leases(st);
    set_state(b, RESIL_BREAKER_CLOSED, reason, ev, 0);
}

/* Calls the listeners, each only if it is still registered when its turn
 * comes; remove_listener waits for calls running on other threads. */
static void fire(resil_breaker *b, const struct event *ev)
{
    if (!ev->fired)
        return;
    resil__metrics_breaker_transition(&b->metrics, b->name, (int)ev->t.from, (int)ev->t.to);
    live_refresh(b);
    for (int i = 0; i < MAX_LISTENERS; i++) {
        struct listener *l = &b->listeners[i];
        pthread_mutex_lock(&b->lmu);
        if (!l->used) {
            pthread_mutex_unlock(&b->lmu);
            continue;
        }
        resil_breaker_listener fn = l->fn;
        void *arg = l->arg;
        l->calls++;
        pthread_mutex_unlock(&b->lmu);
        const struct listener *outer = running_listener;
        running_listener = l;
        fn(&ev->t, arg);
        running_listener = outer;
        pthread_mutex_lock(&b->lmu);
        if (--l->calls == 0)
            pthread_cond_broadcast(&b->lcv);
        pthread_mutex_unlock(&b->lmu);
    }
}

/* Pushes one outcome into the window and says whether a rate now trips. */
static const char *window_push(resil_breaker *b, bool failed, bool slow)
{
    struct resil__cb_state *st = b->st;
    int32_t ws = atomic_load_explicit(&st->window_size, memory_order_relaxed);
    if (ws == 0) { /* a fresh record (reset_file of an old one): use ours */
        ws = b->o.window_size;
        atomic_store_explicit(&st->window_size, ws, memory_order_relaxed);
        clear_window(st);
    }
    if (ws <= 0)
        return NULL;
    int32_t head = atomic_load_explicit(&st->window_head, memory_order_relaxed);
    int32_t count = atomic_load_explicit(&st->window_count, memory_order_relaxed);
    int32_t f = atomic_load_explicit(&st->window_failures, memory_order_relaxed);
    int32_t s = atomic_load_explicit(&st->window_slow, memory_order_relaxed);
    if (ws > RESIL__CB_WINDOW_MAX || head < 0 || head >= ws || count < 0 || count > ws || f < 0 ||
        f > count || s < 0 || s > count) {
        /* Not what any resil process writes: start the window afresh. */
        if (ws > RESIL__CB_WINDOW_MAX) {
            atomic_store_explicit(&st->window_size, 0, memory_order_relaxed);
            return NULL;
        }
        head = count = f = s = 0;
    }
    if (count == ws) {
        uint8_t old = st->ring[head];
        f -= old & 1;
        s -= (old >> 1) & 1;
    } else {
        count++;
    }
    st->ring[head] = (uint8_t)((failed ? 1 : 0) | (slow ? 2 : 0));
    f += failed;
    s += slow;
    atomic_store_explicit(&st->window_head, (head + 1) % ws, memory_order_relaxed);
    atomic_store_explicit(&st->window_count, count, memory_order_relaxed);
    atomic_store_explicit(&st->window_failures, f, memory_order_relaxed);
    atomic_store_explicit(&st->window_slow, s, memory_order_relaxed);
    int32_t min = b->o.window_min_calls < ws ? b->o.window_min_calls : ws;
    if (b->o.window_size == 0 || count < min)
        return NULL;
    if ((double)f >= b->o.failure_rate_threshold * count)
        return "failure_rate";
    if (b->timed && (double)s >= b->o.slow_call_rate_threshold * count)
        return "slow_call_rate";
    return NULL;
}

/* ---- calls ------------------------------------------------------------------------- */

static inline resil_breaker_verdict classify(const resil_breaker *b, int result)
{
    if (b->classify) {
        resil_breaker_verdict v = b->classify(result, b->classify_arg);
        return v == RESIL_BREAKER_SUCCESS || v == RESIL_BREAKER_IGNORE ? v
                                                                       : RESIL_BREAKER_FAILURE;
    }
    return result == 0 ? RESIL_BREAKER_SUCCESS : RESIL_BREAKER_FAILURE;
}

static double secs_until(int64_t until, int64_t now)
{
    return until > now ? resil__ns_to_s(until - now) : 0.0;
}

/* Out of line and cold, so the fast paths around them need no stack frame. */
#if defined(__GNUC__)
#define RESIL_COLD __attribute__((noinline, cold))
#else
#define RESIL_COLD
#endif

RESIL_COLD static int acquire_slow(resil_breaker *b, resil_breaker_permit *p, double *retry_in_s)
{
    struct resil__cb_state *st = b->st;
    p->start_ns = 0;
    p->slot = 0;
    p->gen = 0;
    for (int round = 0;; round++) {
        uint64_t w = atomic_load_explicit(&st->word, memory_order_acquire);
        int s = RESIL__CB_STATE(w);
        p->word = w;
        if (s == RESIL_BREAKER_CLOSED || s == RESIL_BREAKER_DISABLED) {
            p->kind = s == RESIL_BREAKER_CLOSED ? K_CLOSED : K_DISABLED;
            if (b->timed)
                p->start_ns = resil_clock_monotonic_ns(b->clock);
            return 0;
        }
        if (s == RESIL_BREAKER_FORCED_OPEN) {
            count_refused(b);
            if (retry_in_s)
                *retry_in_s = -1;
            p->kind = K_SPENT;
            return RESIL_ECIRCUIT_OPEN;
        }
        int64_t now = resil_clock_monotonic_ns(b->clock);
        if (s == RESIL_BREAKER_OPEN) {
            int64_t until = atomic_load_explicit(&st->open_until_ns, memory_order_relaxed);
            if (now < until || round > 3) {
                count_refused(b);
                if (retry_in_s)
                    *retry_in_s = secs_until(until, now);
                p->kind = K_SPENT;
                return RESIL_ECIRCUIT_OPEN;
            }
        }
        /* OPEN whose time is over, or HALF_OPEN: under the lock. */
        /* HALF_OPEN with every trial slot leased: refuse without the lock. */
        if (s == RESIL_BREAKER_HALF_OPEN) {
            bool busy = true;
            for (int i = 0; i < b->o.half_open_max_calls && busy; i++) {
                int64_t e = atomic_load_explicit(&st->slots[i].expires_ns, memory_order_relaxed);
                busy = e != 0 && e > now;
            }
            if (busy && atomic_load_explicit(&st->word, memory_order_acquire) == w) {
                count_refused(b);
                if (retry_in_s)
                    *retry_in_s = 0;
                p->kind = K_SPENT;
                return RESIL_ECIRCUIT_OPEN;
            }
        }
        int rc = resil__store_lock(b->store);
        if (rc) {
            p->kind = K_SPENT;
            return rc;
        }
        struct event ev = {0};
        uint64_t w2 = atomic_load_explicit(&st->word, memory_order_relaxed);
        int s2 = RESIL__CB_STATE(w2);
        if (s2 == RESIL_BREAKER_OPEN &&
            now >= atomic_load_explicit(&st->open_until_ns, memory_order_relaxed)) {
            clear_leases(st);
            set_state(b, RESIL_BREAKER_HALF_OPEN, "recovery_timeout", &ev, 0);
            w2 = atomic_load_explicit(&st->word, memory_order_relaxed);
            s2 = RESIL_BREAKER_HALF_OPEN;
        }
        if (s2 != RESIL_BREAKER_HALF_OPEN) {
            resil__store_unlock(b->store);
            fire(b, &ev);
            if (round < 8)
                continue; /* someone else moved it: look again */
            count_refused(b); /* a state that keeps changing under us: refuse */
            if (retry_in_s)
                *retry_in_s = 0;
            p->kind = K_SPENT;
            return RESIL_ECIRCUIT_OPEN;
        }
        int got = -1;
        for (int i = 0; i < b->o.half_open_max_calls; i++) {
            int64_t e = atomic_load_explicit(&st->slots[i].expires_ns, memory_order_relaxed);
            if (e == 0 || e <= now) {
                got = i;
                break;
            }
        }
        if (got >= 0) {
            struct resil__cb_slot *sl = &st->slots[got];
            uint32_t gen = atomic_load_explicit(&sl->gen, memory_order_relaxed) + 1;
            atomic_store_explicit(&sl->gen, gen, memory_order_relaxed);
            atomic_store_explicit(&sl->expires_ns, resil__add_sat(now, b->lease_ns) | 1,
                                  memory_order_relaxed);
            p->word = w2;
            p->kind = K_TRIAL;
            p->slot = (uint32_t)got + 1;
            p->gen = gen;
            p->start_ns = now;
        }
        resil__store_unlock(b->store);
        fire(b, &ev);
        if (got >= 0)
            return 0;
        count_refused(b);
        if (retry_in_s)
            *retry_in_s = 0;
        p->kind = K_SPENT;
        return RESIL_ECIRCUIT_OPEN;
    }
}

/* A guarded store (trust opted in on a directory or file others may write)
 * takes the lock, which checks the file's size, before any access. */
#define GUARD(b, on_error)                                                                   \
    do {                                                                                     \
        if (RESIL_UNLIKELY((b)->guarded)) {                                                  \
            int guard_rc_ = resil__store_guard((b)->store);                                  \
            if (guard_rc_) {                                                                 \
                on_error;                                                                    \
            }                                                                                \
        }                                                                                    \
    } while (0)

int resil_breaker_acquire(resil_breaker *b, resil_breaker_permit *p, double *retry_in_s)
{
    GUARD(b, p->kind = K_SPENT; return guard_rc_);
    uint64_t w = atomic_load_explicit(&b->st->word, memory_order_acquire);
    if (RESIL_LIKELY(RESIL__CB_STATE(w) == RESIL_BREAKER_CLOSED && !b->timed)) {
        p->word = w;
        p->start_ns = 0;
        p->slot = 0;
        p->gen = 0;
        p->kind = K_CLOSED;
        return 0;
    }
    return acquire_slow(b, p, retry_in_s);
}

RESIL_COLD static int record_slow(resil_breaker *b, resil_breaker_permit *p,
                                  resil_breaker_verdict v, double duration_s)
{
    struct resil__cb_state *st = b->st;
    int kind = p->kind;
    p->kind = K_SPENT;
    if (kind == K_SPENT || kind == 0)
        return 0;
    bool slow = false;
    int64_t now = 0;
    if (b->timed || kind == K_TRIAL) {
        now = resil_clock_monotonic_ns(b->clock);
        /* acquire read the clock into start_ns for these kinds of permit */
        int64_t d = duration_s >= 0 ? resil__s_to_ns(duration_s) : now - p->start_ns;
        if (!(duration_s >= 0)) /* a given one was observed by record */
            observe_duration(b, v, resil__ns_to_s(d > 0 ? d : 0));
        slow = b->timed && d > b->slow_ns;
    }
    if (kind == K_DISABLED || (kind == K_CLOSED && v == RESIL_BREAKER_IGNORE))
        return 0;
    int rc = resil__store_lock(b->store);
    if (rc)
        return rc;
    struct event ev = {0};
    uint64_t w = atomic_load_explicit(&st->word, memory_order_relaxed);
    if (kind == K_CLOSED) {
        if (w == p->word) { /* same CLOSED epoch */
            const char *why = NULL;
            int64_t cf;
            if (v == RESIL_BREAKER_SUCCESS) {
                cf = 0;
                atomic_store_explicit(&st->consecutive_failures, 0, memory_order_relaxed);
            } else {
                cf = atomic_load_explicit(&st->consecutive_failures, memory_order_relaxed) + 1;
                atomic_store_explicit(&st->consecutive_failures, cf, memory_order_relaxed);
            }
            if (b->o.failure_threshold > 0 && cf >= b->o.failure_threshold)
                why = "consecutive_failures";
            /* Only handles with a window feed it: the others do not see their
             * lock-free successes here, and would skew its rates. */
            const char *wwhy =
                b->o.window_size > 0 ? window_push(b, v == RESIL_BREAKER_FAILURE, slow) : NULL;
            if (!why)
                why = wwhy;
            if (why) {
                if (!now)
                    now = resil_clock_monotonic_ns(b->clock);
                go_open(b, now, why, &ev);
            }
        }
    } else { /* K_TRIAL */
        struct resil__cb_slot *sl = &st->slots[(p->slot - 1) % RESIL__CB_SLOTS];
        bool live = atomic_load_explicit(&sl->gen, memory_order_relaxed) == p->gen &&
                    atomic_load_explicit(&sl->expires_ns, memory_order_relaxed) > now;
        if (live) {
            atomic_store_explicit(&sl->expires_ns, 0, memory_order_relaxed);
            if (w == p->word && v != RESIL_BREAKER_IGNORE) {
                if (v == RESIL_BREAKER_FAILURE) {
                    atomic_store_explicit(
                        &st->consecutive_failures,
                        atomic_load_explicit(&st->consecutive_failures, memory_order_relaxed) + 1,
                        memory_order_relaxed);
                    go_open(b, now, "half_open_failure", &ev);
                } else {
                    int32_t n =
                        atomic_load_explicit(&st->half_open_successes, memory_order_relaxed) + 1;
                    atomic_store_explicit(&st->half_open_successes, n, memory_order_relaxed);
                    if (n >= b->o.success_threshold)
                        go_closed(b, "half_open_success", &ev);
                }
            }
        }
    }
    resil__store_unlock(b->store);
    fire(b, &ev);
    return 0;
}

int resil_breaker_record(resil_breaker *b, resil_breaker_permit *p, resil_breaker_verdict v,
                         double duration_s)
{
    if (v != RESIL_BREAKER_SUCCESS && v != RESIL_BREAKER_IGNORE)
        v = RESIL_BREAKER_FAILURE;
    GUARD(b, p->kind = K_SPENT; return guard_rc_);
    if (p->kind != K_SPENT && p->kind != 0) {
        count(b, v);
        if (duration_s >= 0) /* false for NaN */
            observe_duration(b, v, duration_s);
    }
    if (RESIL_LIKELY(p->kind == K_CLOSED && b->simple && v == RESIL_BREAKER_SUCCESS &&
                     atomic_load_explicit(&b->st->consecutive_failures, memory_order_relaxed) ==
                         0)) {
        p->kind = K_SPENT;
        return 0;
    }
    return record_slow(b, p, v, duration_s);
}

int resil_breaker_report(resil_breaker *b, resil_breaker_permit *p, int result, double duration_s)
{
    return resil_breaker_record(b, p, classify(b, result), duration_s);
}

int resil_breaker_call(resil_breaker *b, int (*op)(void *arg), void *arg)
{
    struct resil__cb_state *st = b->st;
    if (RESIL_LIKELY(b->simple && !b->guarded)) {
        uint64_t w = atomic_load_explicit(&st->word, memory_order_acquire);
        if (RESIL_LIKELY(RESIL__CB_STATE(w) == RESIL_BREAKER_CLOSED)) {
            int r = op(arg);
            resil_breaker_verdict v = classify(b, r);
            count(b, v);
            if (RESIL_LIKELY(v == RESIL_BREAKER_SUCCESS &&
                             atomic_load_explicit(&st->consecutive_failures,
                                                  memory_order_relaxed) == 0))
                return r;
            resil_breaker_permit p = {w, 0, 0, 0, K_CLOSED};
            (void)record_slow(b, &p, v, -1); /* op ran: its result is what counts */
            return r;
        }
    }
    resil_breaker_permit p;
    int rc = resil_breaker_acquire(b, &p, NULL);
    if (rc)
        return rc;
    int r = op(arg);
    (void)resil_breaker_report(b, &p, r, -1); /* op ran: its result is what counts */
    return r;
}

/* ---- manual control ------------------------------------------------------------------ */

static int manual(resil_breaker *b, resil_breaker_state to, const char *reason)
{
    int rc = resil__store_lock(b->store);
    if (rc)
        return rc;
    struct event ev = {0};
    if (to == RESIL_BREAKER_CLOSED) {
        go_closed(b, reason, &ev);
        atomic_store_explicit(&b->st->open_duration_ns, 0, memory_order_relaxed);
    } else {
        clear_leases(b->st);
        set_state(b, to, reason, &ev, 0);
    }
    resil__store_unlock(b->store);
    if (ev.t.from == ev.t.to)
        ev.fired = false;
    fire(b, &ev);
    return 0;
}

int resil_breaker_trip(resil_breaker *b)
{
    return manual(b, RESIL_BREAKER_FORCED_OPEN, "trip");
}

int resil_breaker_disable(resil_breaker *b)
{
    return manual(b, RESIL_BREAKER_DISABLED, "disable");
}

int resil_breaker_reset(resil_breaker *b)
{
    return manual(b, RESIL_BREAKER_CLOSED, "reset");
}

/* ---- observation ----------------------------------------------------------------------- */

int resil_breaker_snapshot_get(resil_breaker *b, resil_breaker_snapshot *out)
{
    struct resil__cb_state *st = b->st;
    memset(out, 0, sizeof *out);
    GUARD(b, return guard_rc_);
    uint64_t w = atomic_load_explicit(&st->word, memory_order_acquire);
    int s = RESIL__CB_STATE(w);
    int64_t now = 0;
    if (s == RESIL_BREAKER_OPEN || s == RESIL_BREAKER_HALF_OPEN)
        now = resil_clock_monotonic_ns(b->clock);
    if (s == RESIL_BREAKER_OPEN) {
        int64_t until = atomic_load_explicit(&st->open_until_ns, memory_order_relaxed);
        if (now >= until)
            s = RESIL_BREAKER_HALF_OPEN;
        else
            out->time_until_half_open_s = secs_until(until, now);
    }
    if (s == RESIL_BREAKER_FORCED_OPEN)
        out->time_until_half_open_s = -1;
    out->state = (resil_breaker_state)s;
    out->epoch = RESIL__CB_EPOCH(w);
    out->consecutive_failures =
        atomic_load_explicit(&st->consecutive_failures, memory_order_relaxed);
    /* Summed unsigned (a scribbled file cannot make this overflow a signed
     * integer), then clamped. */
    uint64_t sum[4] = {0, 0, 0, 0};
    for (int i = 0; i < RESIL__CB_STRIPES; i++) {
        const struct resil__cb_stripe *sp = &st->stripes[i];
        sum[0] += (uint64_t)atomic_load_explicit(&sp->successful, memory_order_relaxed);
        sum[1] += (uint64_t)atomic_load_explicit(&sp->failed, memory_order_relaxed);
        sum[2] += (uint64_t)atomic_load_explicit(&sp->ignored, memory_order_relaxed);
        sum[3] += (uint64_t)atomic_load_explicit(&sp->not_permitted, memory_order_relaxed);
    }
    int64_t *dst[4] = {&out->successful, &out->failed, &out->ignored, &out->not_permitted};
    for (int k = 0; k < 4; k++)
        *dst[k] = sum[k] > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)sum[k];
    int32_t wc = atomic_load_explicit(&st->window_count, memory_order_relaxed);
    out->window_calls = wc;
    if (atomic_load_explicit(&st->window_size, memory_order_relaxed) > 0 && b->o.window_size > 0) {
        /* the counts are read one by one: a rate is clamped to [0, 1] */
        out->failure_rate =
            wc ? fmin(1.0, (double)atomic_load_explicit(&st->window_failures,
                                                        memory_order_relaxed) / wc)
               : -1;
        out->slow_call_rate =
            wc && b->timed
                ? fmin(1.0, (double)atomic_load_explicit(&st->window_slow,
                                                         memory_order_relaxed) / wc)
                : -1;
    } else {
        int64_t n = out->successful + out->failed;
        out->failure_rate = n ? (double)out->failed / (double)n : -1;
        out->slow_call_rate = -1;
    }
    out->open_duration_s =
        resil__ns_to_s(atomic_load_explicit(&st->open_duration_ns, memory_order_relaxed));
    out->open_streak = atomic_load_explicit(&st->open_streak, memory_order_relaxed);
    if (RESIL__CB_STATE(w) == RESIL_BREAKER_HALF_OPEN)
        for (int i = 0; i < RESIL__CB_SLOTS; i++) {
            int64_t e = atomic_load_explicit(&st->slots[i].expires_ns, memory_order_relaxed);
            out->half_open_in_flight += e != 0 && e > now;
        }
    out->failure_threshold = b->o.failure_threshold;
    out->recovery_timeout_s = b->o.recovery_timeout_s;
    out->shared = resil_breaker_is_shared(b);
    return 0;
}

resil_breaker_state resil_breaker_get_state(resil_breaker *b)
{
    GUARD(b, return RESIL_BREAKER_OPEN); /* cannot read it: as if open */
    uint64_t w = atomic_load_explicit(&b->st->word, memory_order_acquire);
    int s = RESIL__CB_STATE(w);
    if (s == RESIL_BREAKER_OPEN &&
        resil_clock_monotonic_ns(b->clock) >=
            atomic_load_explicit(&b->st->open_until_ns, memory_order_relaxed))
        s = RESIL_BREAKER_HALF_OPEN;
    return (resil_breaker_state)s;
}

double resil_breaker_time_until_half_open(resil_breaker *b)
{
    GUARD(b, return 0);
    uint64_t w = atomic_load_explicit(&b->st->word, memory_order_acquire);
    int s = RESIL__CB_STATE(w);
    if (s == RESIL_BREAKER_FORCED_OPEN)
        return -1;
    if (s != RESIL_BREAKER_OPEN)
        return 0;
    return secs_until(atomic_load_explicit(&b->st->open_until_ns, memory_order_relaxed),
                      resil_clock_monotonic_ns(b->clock));
}

int resil_breaker_add_listener(resil_breaker *b, resil_breaker_listener fn, void *arg)
{
    if (!fn)
        return RESIL_EINVAL;
    int rc = -ENOSPC;
    pthread_mutex_lock(&b->lmu);
    for (int i = 0; i < MAX_LISTENERS; i++)
        if (!b->listeners[i].used) {
            b->listeners[i].fn = fn;
            b->listeners[i].arg = arg;
            b->listeners[i].used = true;
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&b->lmu);
    return rc;
}

int resil_breaker_remove_listener(resil_breaker *b, resil_breaker_listener fn, void *arg)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&b->lmu);
    for (int i = 0; i < MAX_LISTENERS; i++) {
        struct listener *l = &b->listeners[i];
        if (l->used && l->fn == fn && l->arg == arg) {
            l->used = false;
            /* Wait for its calls on other threads (not for our own, when a
             * listener removes itself). */
            int own = running_listener == l;
            while (l->calls > own)
                pthread_cond_wait(&b->lcv, &b->lmu);
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&b->lmu);
    return rc;
}

/* ---- registry ------------------------------------------------------------------------------ */

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static resil_breaker **reg_list; /* creation order */
static size_t reg_n, reg_cap;
static size_t *reg_index; /* open addressing: list index + 1, 0 empty */
static size_t reg_slots;  /* a power of two */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static resil_breaker *reg_find(const char *name)
{
    if (!reg_slots)
        return NULL;
    for (size_t i = hash_name(name) & (reg_slots - 1);; i = (i + 1) & (reg_slots - 1)) {
        size_t v = reg_index[i];
        if (!v)
            return NULL;
        if (strcmp(reg_list[v - 1]->name, name) == 0)
            return reg_list[v - 1];
    }
}

static int reg_add(resil_breaker *b)
{
    if (reg_n == reg_cap) {
        size_t cap = reg_cap ? reg_cap * 2 : 16;
        resil_breaker **l = realloc(reg_list, cap * sizeof *l);
        if (!l)
            return -ENOMEM;
        reg_list = l;
        reg_cap = cap;
    }
    if ((reg_n + 1) * 2 > reg_slots) {
        size_t slots = reg_slots ? reg_slots * 2 : 32;
        size_t *idx = calloc(slots, sizeof *idx);
        if (!idx)
            return -ENOMEM;
        for (size_t k = 0; k < reg_n; k++) {
            size_t i = hash_name(reg_list[k]->name) & (slots - 1);
            while (idx[i])
                i = (i + 1) & (slots - 1);
            idx[i] = k + 1;
        }
        free(reg_index);
        reg_index = idx;
        reg_slots = slots;
    }
    reg_list[reg_n] = b;
    size_t i = hash_name(b->name) & (reg_slots - 1);
    while (reg_index[i])
        i = (i + 1) & (reg_slots - 1);
    reg_index[i] = ++reg_n;
    return 0;
}

int resil_breaker_get(resil_breaker **out, const char *name, const resil_breaker_opts *opts,
                      resil_error *err)
{
    if (!out || !name)
        return BAD("name", "out and name are required");
    pthread_mutex_lock(&reg_mu);
    resil_breaker *b = reg_find(name);
    int rc = 0;
    if (!b) {
        rc = resil_breaker_new(&b, name, opts, err);
        if (rc == 0 && (rc = reg_add(b)) != 0) {
            resil_breaker_free(b);
            resil_error_set(err, rc, NULL, "out of memory");
        }
    }
    pthread_mutex_unlock(&reg_mu);
    if (rc == 0)
        *out = b;
    return rc;
}

int resil_with_circuit_breaker(const char *name, int (*op)(void *arg), void *arg,
                               int failure_threshold, double recovery_timeout_s)
{
    if (!op)
        return RESIL_EINVAL;
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    o.failure_threshold = failure_threshold;
    o.recovery_timeout_s = recovery_timeout_s;
    resil_breaker *b;
    int rc = resil_breaker_get(&b, name, &o, NULL);
    if (rc)
        return rc;
    return resil_breaker_call(b, op, arg);
}

int resil_breaker_registry_foreach(int (*fn)(resil_breaker *b, void *arg), void *arg)
{
    int rc = 0;
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < reg_n && rc == 0; i++)
        rc = fn(reg_list[i], arg);
    pthread_mutex_unlock(&reg_mu);
    return rc;
}

void resil_breaker_registry_clear(void)
{
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < reg_n; i++)
        resil_breaker_free(reg_list[i]);
    free(reg_list);
    free(reg_index);
    reg_list = NULL;
    reg_index = NULL;
    reg_n = reg_cap = reg_slots = 0;
    pthread_mutex_unlock(&reg_mu);
}

/* ---- state directory listing ------------------------------------------------------------------ */

#include <dirent.h>

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int resil_breaker_list_dir(const char *dir, int (*fn)(const char *name, void *arg), void *arg,
                           resil_error *err)
{
    DIR *d = resil__sys.opendir(dir);
    if (!d)
        return resil_error_set(err, -errno, dir, "cannot read the state directory %s: %s", dir,
                               strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    char name[RESIL__CB_NAME_MAX + 1];
    while ((errno = 0, e = resil__sys.readdir(d)) != NULL) {
        size_t bl = strlen(e->d_name);
        if (bl < 4 || strcmp(e->d_name + bl - 3, ".cb") != 0)
            continue;
        if (!resil__cb_read_name(name, dirfd(d), e->d_name) &&
            !resil__cb_decode_name(name, e->d_name))
            continue; /* neither a header nor a file name says whose it is */
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                rc = -ENOMEM;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(name))) {
            rc = -ENOMEM;
            break;
        }
        n++;
    }
    if (!e && errno && rc == 0) /* readdir failed: not the end of the list */
        rc = resil_error_set(err, -errno, dir, "cannot read the state directory %s: %s", dir,
                             strerror(errno));
    resil__sys.closedir(d);
    if (rc == 0) {
        if (n > 1)
            qsort(names, n, sizeof *names, cmp_str);
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = fn(names[i], arg);
    } else if (rc == -ENOMEM) {
        resil_error_set(err, rc, dir, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* ---- retry around a breaker ------------------------------------------------------------------- */

struct guarded {
    resil_breaker *b;
    resil_breaker_open_policy policy;
    resil_retry_op op;
    void *arg;
};

static resil_outcome guarded_attempt(resil_retry_call *call, void *arg)
{
    struct guarded *g = arg;
    resil_breaker_permit p;
    double wait_s = 0;
    int rc = resil_breaker_acquire(g->b, &p, &wait_s);
    if (rc) {
        call->error = rc;
        if (rc != RESIL_ECIRCUIT_OPEN || g->policy == RESIL_BREAKER_OPEN_STOP || wait_s < 0)
            return RESIL_OUTCOME_PERMANENT;
        if (wait_s > 0)
            call->retry_after_s = wait_s;
        return RESIL_OUTCOME_TRANSIENT;
    }
    resil_outcome out = g->op(call, g->arg);
    resil_breaker_verdict v = RESIL_BREAKER_SUCCESS;
    if (out != RESIL_OUTCOME_SUCCESS)
        v = call->error ? classify(g->b, call->error) : RESIL_BREAKER_FAILURE;
    resil_breaker_record(g->b, &p, v, -1);
    return out;
}

int resil_retry_with_breaker(resil_breaker *b, resil_breaker_open_policy policy, resil_retry_op op,
                             void *arg, const char *name, const resil_retry_config *config,
                             const resil_retry_opts *opts, resil_retry_result *result)
{
    if (!b || !op)
        return RESIL_EINVAL;
    struct guarded g = {b, policy, op, arg};
    return resil_retry_continue(guarded_attempt, &g, name, config, opts, result, -1, 0, -1.0);
}
