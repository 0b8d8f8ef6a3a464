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

#include "internal/breaker_metrics.h"
#include "internal/store.h"
#include "internal/util.h"
#include "internal/fork.h"
#include "internal/log.h"
#include "internal/opts.h"

enum { K_CLOSED = 1, K_DISABLED, K_TRIAL, K_SPENT };

/* Out of line and cold, so the fast paths around them need no stack frame. */
#if defined(__GNUC__)
#define RESIL_COLD_FN __attribute__((noinline, cold))
#define RESIL_ALWAYS_INLINE __attribute__((always_inline))
#else
#define RESIL_COLD_FN
#define RESIL_ALWAYS_INLINE
#endif

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
    /* hot: first.  The store's fast-path record (NULL when the backend has
     * none, or the store is guarded: then everything goes through the
     * store's operations) */
    struct resil__cb_state *st;
    bool fast_call; /* st and simple: resil_breaker_call's closed fast path */
    bool fast_acq;  /* st and not timed: acquire's closed fast path */
    bool simple;    /* consecutive rule only: the fast path applies */
    bool timed;     /* a slow-call rule: acquire reads the clock */
    resil_breaker_classifier classify;
    void *classify_arg;
    const resil_clock *clock;
    resil__store *store;  /* reached only through its operations (and st) */
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
    if (resil__opts_version_check(err, "resil_breaker_opts", o->version,
                                  RESIL_BREAKER_OPTS_VERSION) != 0)
        return RESIL_EINVAL;
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
    resil__breaker_metrics_state(&b->metrics, (int)resil_breaker_get_state(b));
    pthread_mutex_unlock(&live_mu);
}

static void live_collect(resil_metrics_registry *r, void *arg)
{
    (void)r;
    (void)arg;
    pthread_mutex_lock(&live_mu);
    for (resil_breaker *b = live_head; b; b = b->live_next)
        resil__breaker_metrics_state(&b->metrics, (int)resil_breaker_get_state(b));
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

/* Records this handle's configuration and window size in the state. */
static int record_cfg(struct resil__cb_state *st, void *arg)
{
    const resil_breaker *b = arg;
    atomic_store_explicit(&st->cfg_failure_threshold, b->o.failure_threshold,
                          memory_order_relaxed);
    atomic_store_explicit(&st->cfg_recovery_ns, b->recovery_ns, memory_order_relaxed);
    if (b->o.window_size > 0 && atomic_load(&st->window_size) != b->o.window_size) {
        atomic_store(&st->window_size, b->o.window_size);
        atomic_store(&st->window_head, 0);
        atomic_store(&st->window_count, 0);
        atomic_store(&st->window_failures, 0);
        atomic_store(&st->window_slow, 0);
    }
    return 0;
}

/* After the store is open: the fast paths, and this handle's configuration
 * written into the state (or, attach_only, the configuration read from it). */
static int adopt_state(resil_breaker *b, uint64_t *word, resil_error *err)
{
    b->st = b->store->st;
    b->fast_call = b->st && b->simple;
    b->fast_acq = b->st && !b->timed;
    int rc = 0;
    if (!b->o.attach_only &&
        (rc = b->store->ops->apply(b->store, RESIL__STORE_ANY, record_cfg, b)) != 0)
        return resil_error_set(err, rc, b->store->path, "cannot lock the breaker state: %s",
                               resil_strerror(rc));
    resil__store_view v;
    if ((rc = b->store->ops->read(b->store, 0, &v)) != 0)
        return resil_error_set(err, rc, b->store->path, "cannot read the breaker state: %s",
                               resil_strerror(rc));
    *word = v.word;
    if (!b->o.attach_only)
        return 0;
    if (v.cfg_failure_threshold != 0)
        b->o.failure_threshold = v.cfg_failure_threshold;
    if (v.cfg_recovery_ns > 0) {
        b->recovery_ns = v.cfg_recovery_ns;
        b->o.recovery_timeout_s = resil__ns_to_s(v.cfg_recovery_ns);
    }
    return 0;
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
    resil__store_spec spec = {.name = name,
                              .dir = dir,
                              .attach_only = o.attach_only,
                              .guard_every_call = o.guard_every_call,
                              .cfg = cfg,
                              .now_ns = dir ? resil_clock_monotonic_ns(b->clock) : 0,
                              .wall_ns = dir ? resil_clock_wall_ns(b->clock) : 0};
    if ((rc = resil__store_open(&b->store, &spec, err)) != 0)
        goto fail;
    uint64_t first_word = 0;
    if ((rc = adopt_state(b, &first_word, err)) != 0)
        goto fail;
    resil__breaker_metrics_init(&b->metrics, name, RESIL__CB_STATE(first_word));
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
    return (b->store->caps & RESIL__STORE_CAP_SHARED) != 0;
}

/* ---- counters ----------------------------------------------------------------- */

static inline _Atomic int64_t *stripe_counter(struct resil__cb_stripe *s, resil_breaker_verdict v)
{
    return v == RESIL_BREAKER_SUCCESS ? &s->successful
           : v == RESIL_BREAKER_FAILURE ? &s->failed
                                        : &s->ignored;
}

/* A store without a fast-path record (or a guarded one) counts through its
 * operations. */
RESIL_COLD_FN static int count_op(resil_breaker *b, resil_breaker_verdict v, bool refused)
{
    resil__store_delta d = {0, 0, 0, 0};
    if (refused)
        d.not_permitted = 1;
    else if (v == RESIL_BREAKER_SUCCESS)
        d.successful = 1;
    else if (v == RESIL_BREAKER_FAILURE)
        d.failed = 1;
    else
        d.ignored = 1;
    return b->store->ops->add(b->store, &d);
}

static inline int count(resil_breaker *b, resil_breaker_verdict v)
{
    int rc = 0;
    if (RESIL_LIKELY(b->st != NULL))
        atomic_fetch_add_explicit(stripe_counter(resil__rec_stripe(b->st), v), 1,
                                  memory_order_relaxed);
    else if ((rc = count_op(b, v, false)) != 0)
        return rc;
    resil_counter *m = v == RESIL_BREAKER_SUCCESS   ? b->metrics.successful
                       : v == RESIL_BREAKER_FAILURE ? b->metrics.failed
                                                    : b->metrics.ignored;
    if (m)
        resil_counter_inc(m);
    return 0;
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
    if (b->st)
        atomic_fetch_add_explicit(&resil__rec_stripe(b->st)->not_permitted, 1,
                                  memory_order_relaxed);
    else
        (void)count_op(b, RESIL_BREAKER_IGNORE, true); /* refused all the same */
    if (b->metrics.not_permitted)
        resil_counter_inc(b->metrics.not_permitted);
}

/* ---- transitions (under the lock) ----------------------------------------------- */

struct event {
    bool fired;
    resil_breaker_transition t;
};

static void set_state(resil_breaker *b, struct resil__cb_state *st, resil_breaker_state to,
                      const char *reason, struct event *ev, double open_for_s)
{
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

static void go_open(resil_breaker *b, struct resil__cb_state *st, int64_t now, const char *reason,
                    struct event *ev)
{
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
    set_state(b, st, RESIL_BREAKER_OPEN, reason, ev, d);
    /* After the state word: a holder killed before this line leaves the old
     * streak (a shorter next open), never one of a trip that did not happen. */
    atomic_store_explicit(&st->open_streak, streak, memory_order_relaxed);
}

static void go_closed(resil_breaker *b, struct resil__cb_state *st, const char *reason,
                      struct event *ev)
{
    atomic_store_explicit(&st->consecutive_failures, 0, memory_order_relaxed);
    atomic_store_explicit(&st->open_streak, 0, memory_order_relaxed);
    atomic_store_explicit(&st->open_until_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&st->open_until_wall_ns, 0, memory_order_relaxed);
    clear_window(st);
    clear_leases(st);
    set_state(b, st, RESIL_BREAKER_CLOSED, reason, ev, 0);
}

/* Calls the listeners, each only if it is still registered when its turn
 * comes; remove_listener waits for calls running on other threads. */
static void fire(resil_breaker *b, const struct event *ev)
{
    if (!ev->fired)
        return;
    resil__breaker_metrics_transition(&b->metrics, b->name, (int)ev->t.from, (int)ev->t.to);
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
static const char *window_push(const resil_breaker *b, struct resil__cb_state *st, bool failed,
                               bool slow)
{
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

/* Refuses a call: counted, the wait until a trial may start in *retry_in_s. */
static int refuse(resil_breaker *b, resil_breaker_permit *p, double *retry_in_s, double wait_s)
{
    count_refused(b);
    if (retry_in_s)
        *retry_in_s = wait_s;
    p->kind = K_SPENT;
    return RESIL_ECIRCUIT_OPEN;
}

struct half_open_arg {
    resil_breaker *b;
    int64_t now;
    struct event ev;
};

/* OPEN whose time is over -> HALF_OPEN (under the store's atomicity). */
static int to_half_open(struct resil__cb_state *st, void *arg)
{
    struct half_open_arg *a = arg;
    a->ev.fired = false;
    if (RESIL__CB_STATE(atomic_load_explicit(&st->word, memory_order_relaxed)) ==
            RESIL_BREAKER_OPEN &&
        a->now >= atomic_load_explicit(&st->open_until_ns, memory_order_relaxed)) {
        clear_leases(st);
        set_state(a->b, st, RESIL_BREAKER_HALF_OPEN, "recovery_timeout", &a->ev, 0);
    }
    return 0;
}

/* HALF_OPEN with every trial slot of this handle leased (as read): refuse
 * without taking a lease. */
static bool trials_busy(const resil_breaker *b, const resil__store_view *v, int64_t now)
{
    for (int i = 0; i < b->o.half_open_max_calls; i++) {
        int64_t e = v->lease_expires[i];
        if (e == 0 || e <= now)
            return false;
    }
    return true;
}

/* HALF_OPEN: a trial lease, or a refusal.  Returns 0 (a trial permit),
 * RESIL_ECIRCUIT_OPEN, an error, or RESIL__STORE_CONFLICT (look again). */
static int take_trial(resil_breaker *b, resil_breaker_permit *p, double *retry_in_s,
                      uint64_t w, int64_t now)
{
    resil__store_view v;
    int rc = b->store->ops->read(b->store, RESIL__VIEW_LEASES, &v);
    if (rc) {
        p->kind = K_SPENT;
        return rc;
    }
    if (v.word != w)
        return RESIL__STORE_CONFLICT;
    if (trials_busy(b, &v, now))
        return refuse(b, p, retry_in_s, 0);
    resil__store_lease l;
    rc = b->store->ops->lease_take(b->store, w, b->o.half_open_max_calls, now, b->lease_ns, &l);
    if (rc == RESIL__STORE_BUSY)
        return refuse(b, p, retry_in_s, 0);
    if (rc) {
        if (rc < 0)
            p->kind = K_SPENT;
        return rc;
    }
    p->word = l.word;
    p->kind = K_TRIAL;
    p->slot = l.slot + 1;
    p->gen = l.gen;
    p->start_ns = now;
    return 0;
}

RESIL_COLD_FN static int acquire_slow(resil_breaker *b, resil_breaker_permit *p,
                                      double *retry_in_s)
{
    p->start_ns = 0;
    p->slot = 0;
    p->gen = 0;
    if (b->st) { /* a record: a refusal reads it directly (no call, no copy) */
        struct resil__cb_state *st = b->st;
        uint64_t w = atomic_load_explicit(&st->word, memory_order_acquire);
        p->word = w;
        if (RESIL__CB_STATE(w) == RESIL_BREAKER_FORCED_OPEN)
            return refuse(b, p, retry_in_s, -1);
        if (RESIL__CB_STATE(w) == RESIL_BREAKER_OPEN) {
            int64_t now = resil_clock_monotonic_ns(b->clock);
            int64_t until = atomic_load_explicit(&st->open_until_ns, memory_order_relaxed);
            if (now < until)
                return refuse(b, p, retry_in_s, secs_until(until, now));
        }
    }
    for (int round = 0;; round++) {
        resil__store_view v;
        int rc = b->store->ops->read(b->store, 0, &v);
        if (rc) {
            p->kind = K_SPENT;
            return rc;
        }
        uint64_t w = v.word;
        int s = RESIL__CB_STATE(w);
        p->word = w;
        if (s == RESIL_BREAKER_CLOSED || s == RESIL_BREAKER_DISABLED) {
            p->kind = s == RESIL_BREAKER_CLOSED ? K_CLOSED : K_DISABLED;
            if (b->timed)
                p->start_ns = resil_clock_monotonic_ns(b->clock);
            return 0;
        }
        if (s == RESIL_BREAKER_FORCED_OPEN)
            return refuse(b, p, retry_in_s, -1);
        int64_t now = resil_clock_monotonic_ns(b->clock);
        if (s == RESIL_BREAKER_OPEN) {
            if (now < v.open_until_ns || round > 3)
                return refuse(b, p, retry_in_s, secs_until(v.open_until_ns, now));
            /* its time is over: HALF_OPEN, then look again */
            struct half_open_arg a = {b, now, {0}};
            rc = b->store->ops->apply(b->store, w, to_half_open, &a);
            if (rc < 0) {
                p->kind = K_SPENT;
                return rc;
            }
            if (rc == 0)
                fire(b, &a.ev);
        } else {
            rc = take_trial(b, p, retry_in_s, w, now);
            if (rc != RESIL__STORE_CONFLICT)
                return rc;
        }
        if (round >= 8) /* a state that keeps changing under us: refuse */
            return refuse(b, p, retry_in_s, 0);
    }
}

int resil_breaker_acquire(resil_breaker *b, resil_breaker_permit *p, double *retry_in_s)
{
    if (RESIL_LIKELY(b->fast_acq)) {
        uint64_t w = atomic_load_explicit(&b->st->word, memory_order_acquire);
        if (RESIL_LIKELY(RESIL__CB_STATE(w) == RESIL_BREAKER_CLOSED)) {
            p->word = w;
            p->start_ns = 0;
            p->slot = 0;
            p->gen = 0;
            p->kind = K_CLOSED;
            return 0;
        }
    }
    return acquire_slow(b, p, retry_in_s);
}

struct outcome_arg {
    resil_breaker *b;
    resil_breaker_verdict v;
    bool slow;
    int64_t now;
    struct event ev;
};

/* A CLOSED-state outcome (the permit's epoch still current). */
static int closed_outcome(struct resil__cb_state *st, void *arg)
{
    struct outcome_arg *a = arg;
    resil_breaker *b = a->b;
    a->ev.fired = false;
    const char *why = NULL;
    int64_t cf = 0;
    if (a->v != RESIL_BREAKER_SUCCESS)
        cf = atomic_load_explicit(&st->consecutive_failures, memory_order_relaxed) + 1;
    atomic_store_explicit(&st->consecutive_failures, cf, memory_order_relaxed);
    if (b->o.failure_threshold > 0 && cf >= b->o.failure_threshold)
        why = "consecutive_failures";
    /* Only handles with a window feed it: the others do not see their
     * lock-free successes here, and would skew its rates. */
    const char *wwhy =
        b->o.window_size > 0 ? window_push(b, st, a->v == RESIL_BREAKER_FAILURE, a->slow) : NULL;
    if (!why)
        why = wwhy;
    if (why) {
        if (!a->now)
            a->now = resil_clock_monotonic_ns(b->clock);
        go_open(b, st, a->now, why, &a->ev);
    }
    return 0;
}

/* A trial's outcome, its lease still live and the epoch current. */
static int trial_outcome(struct resil__cb_state *st, void *arg)
{
    struct outcome_arg *a = arg;
    resil_breaker *b = a->b;
    a->ev.fired = false;
    if (a->v == RESIL_BREAKER_FAILURE) {
        atomic_store_explicit(
            &st->consecutive_failures,
            atomic_load_explicit(&st->consecutive_failures, memory_order_relaxed) + 1,
            memory_order_relaxed);
        go_open(b, st, a->now, "half_open_failure", &a->ev);
    } else {
        int32_t n = atomic_load_explicit(&st->half_open_successes, memory_order_relaxed) + 1;
        atomic_store_explicit(&st->half_open_successes, n, memory_order_relaxed);
        if (n >= b->o.success_threshold)
            go_closed(b, st, "half_open_success", &a->ev);
    }
    return 0;
}

RESIL_COLD_FN static int record_slow(resil_breaker *b, resil_breaker_permit *p,
                                     resil_breaker_verdict v, double duration_s)
{
    int kind = p->kind;
    p->kind = K_SPENT;
    if (kind == K_SPENT || kind == 0)
        return 0;
    struct outcome_arg a = {b, v, false, 0, {0}};
    if (b->timed || kind == K_TRIAL) {
        a.now = resil_clock_monotonic_ns(b->clock);
        /* acquire read the clock into start_ns for these kinds of permit */
        int64_t d = duration_s >= 0 ? resil__s_to_ns(duration_s) : a.now - p->start_ns;
        if (!(duration_s >= 0)) /* a given one was observed by record */
            observe_duration(b, v, resil__ns_to_s(d > 0 ? d : 0));
        a.slow = b->timed && d > b->slow_ns;
    }
    if (kind == K_DISABLED || (kind == K_CLOSED && v == RESIL_BREAKER_IGNORE))
        return 0;
    int rc;
    if (kind == K_CLOSED) {
        /* only in the same CLOSED epoch (a conflict: nothing to do) */
        rc = b->store->ops->apply(b->store, p->word, closed_outcome, &a);
    } else { /* K_TRIAL: the lease back, and the outcome when it was live */
        resil__store_lease l = {p->slot - 1, p->gen, p->word};
        rc = b->store->ops->lease_return(b->store, &l, a.now,
                                         v == RESIL_BREAKER_IGNORE ? NULL : trial_outcome, &a);
    }
    if (rc < 0)
        return rc;
    fire(b, &a.ev);
    return 0;
}

/* resil_breaker_record without a fast-path record: counts through the
 * store's operations. */
RESIL_COLD_FN static int record_ops(resil_breaker *b, resil_breaker_permit *p,
                                    resil_breaker_verdict v, double duration_s)
{
    if (p->kind != K_SPENT && p->kind != 0) {
        int rc = count(b, v);
        if (rc) {
            p->kind = K_SPENT;
            return rc;
        }
        if (duration_s >= 0) /* false for NaN */
            observe_duration(b, v, duration_s);
    }
    return record_slow(b, p, v, duration_s);
}

int resil_breaker_record(resil_breaker *b, resil_breaker_permit *p, resil_breaker_verdict v,
                         double duration_s)
{
    if (v != RESIL_BREAKER_SUCCESS && v != RESIL_BREAKER_IGNORE)
        v = RESIL_BREAKER_FAILURE;
    if (RESIL_UNLIKELY(!b->st))
        return record_ops(b, p, v, duration_s);
    if (p->kind != K_SPENT && p->kind != 0) {
        (void)count(b, v); /* with a record: cannot fail */
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

/* resil_breaker_report beyond its fast path. */
RESIL_COLD_FN static int report_slow(resil_breaker *b, resil_breaker_permit *p, int result,
                                     double duration_s)
{
    return resil_breaker_record(b, p, classify(b, result), duration_s);
}

int resil_breaker_report(resil_breaker *b, resil_breaker_permit *p, int result, double duration_s)
{
    /* The closed state's success with the default classifier and no
     * duration, on a record: written as a leaf (everything else is a tail
     * call), so it needs no stack frame: the two-step form's cost. */
    if (RESIL_LIKELY(result == 0 && p->kind == K_CLOSED && b->fast_call && !b->classify &&
                     !(duration_s >= 0) && resil__store_stripe_tls != 0)) {
        atomic_fetch_add_explicit(&b->st->stripes[resil__store_stripe_tls - 1].successful, 1,
                                  memory_order_relaxed);
        if (b->metrics.successful)
            resil_counter_inc(b->metrics.successful);
        if (RESIL_LIKELY(atomic_load_explicit(&b->st->consecutive_failures,
                                              memory_order_relaxed) == 0)) {
            p->kind = K_SPENT;
            return 0;
        }
        return record_slow(b, p, RESIL_BREAKER_SUCCESS, duration_s);
    }
    return report_slow(b, p, result, duration_s);
}

/* A refused or failed acquire of resil_breaker_call_ex, in err. */
static void open_error(const resil_breaker *b, int rc, double wait_s, resil_error *err)
{
    if (!err)
        return;
    if (rc != RESIL_ECIRCUIT_OPEN)
        resil_error_set(err, rc, b->name, "circuit breaker '%s': %s", b->name,
                        resil_strerror(rc));
    else if (wait_s < 0)
        resil_error_set(err, rc, b->name, "circuit breaker '%s' is forced open (until reset)",
                        b->name);
    else if (wait_s == 0)
        resil_error_set(err, rc, b->name,
                        "circuit breaker '%s' is half-open and all its trial calls are taken",
                        b->name);
    else
        resil_error_set(err, rc, b->name, "circuit breaker '%s' is open: half-open in %.3f s",
                        b->name, wait_s);
}

/* resil_breaker_call and resil_breaker_call_ex: retry_in_s and err may be
 * NULL. */
static inline RESIL_ALWAYS_INLINE int call(resil_breaker *b, int (*op)(void *arg),
                                                      void *arg, double *retry_in_s,
                                                      resil_error *err)
{
    struct resil__cb_state *st = b->st;
    if (RESIL_LIKELY(b->fast_call)) {
        uint64_t w = atomic_load_explicit(&st->word, memory_order_acquire);
        if (RESIL_LIKELY(RESIL__CB_STATE(w) == RESIL_BREAKER_CLOSED)) {
            int r = op(arg);
            resil_breaker_verdict v = classify(b, r);
            (void)count(b, v);
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
    double wait_s = 0;
    int rc = resil_breaker_acquire(b, &p, &wait_s);
    if (rc) {
        if (retry_in_s)
            *retry_in_s = rc == RESIL_ECIRCUIT_OPEN ? wait_s : 0;
        open_error(b, rc, wait_s, err);
        return rc;
    }
    int r = op(arg);
    (void)resil_breaker_report(b, &p, r, -1); /* op ran: its result is what counts */
    return r;
}

int resil_breaker_call(resil_breaker *b, int (*op)(void *arg), void *arg)
{
    return call(b, op, arg, NULL, NULL);
}

int resil_breaker_call_ex(resil_breaker *b, int (*op)(void *arg), void *arg, double *retry_in_s,
                          resil_error *err)
{
    if (retry_in_s)
        *retry_in_s = 0;
    return call(b, op, arg, retry_in_s, err);
}

/* ---- manual control ------------------------------------------------------------------ */

struct manual_arg {
    resil_breaker *b;
    resil_breaker_state to;
    const char *reason;
    struct event ev;
};

static int manual_apply(struct resil__cb_state *st, void *arg)
{
    struct manual_arg *a = arg;
    a->ev.fired = false;
    if (a->to == RESIL_BREAKER_CLOSED) {
        go_closed(a->b, st, a->reason, &a->ev);
        atomic_store_explicit(&st->open_duration_ns, 0, memory_order_relaxed);
    } else {
        clear_leases(st);
        set_state(a->b, st, a->to, a->reason, &a->ev, 0);
    }
    return 0;
}

static int manual(resil_breaker *b, resil_breaker_state to, const char *reason)
{
    struct manual_arg a = {b, to, reason, {0}};
    int rc = b->store->ops->apply(b->store, RESIL__STORE_ANY, manual_apply, &a);
    if (rc)
        return rc;
    if (a.ev.t.from == a.ev.t.to)
        a.ev.fired = false;
    fire(b, &a.ev);
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

/* The rates of a snapshot, from the window when this handle and the state
 * have one, else from the totals. */
static void snapshot_rates(const resil_breaker *b, const resil__store_view *v,
                           resil_breaker_snapshot *out)
{
    int32_t wc = v->window_count;
    out->window_calls = wc;
    if (v->window_size > 0 && b->o.window_size > 0) {
        /* the counts are read one by one: a rate is clamped to [0, 1] */
        out->failure_rate = wc ? fmin(1.0, (double)v->window_failures / wc) : -1;
        out->slow_call_rate = wc && b->timed ? fmin(1.0, (double)v->window_slow / wc) : -1;
    } else {
        int64_t n = out->successful + out->failed;
        out->failure_rate = n ? (double)out->failed / (double)n : -1;
        out->slow_call_rate = -1;
    }
}

int resil_breaker_snapshot_get(resil_breaker *b, resil_breaker_snapshot *out)
{
    memset(out, 0, sizeof *out);
    resil__store_view v;
    int rc = b->store->ops->read(b->store, RESIL__VIEW_COUNTS | RESIL__VIEW_LEASES, &v);
    if (rc)
        return rc;
    uint64_t w = v.word;
    int s = RESIL__CB_STATE(w);
    int64_t now = 0;
    if (s == RESIL_BREAKER_OPEN || s == RESIL_BREAKER_HALF_OPEN)
        now = resil_clock_monotonic_ns(b->clock);
    if (s == RESIL_BREAKER_OPEN) {
        if (now >= v.open_until_ns)
            s = RESIL_BREAKER_HALF_OPEN;
        else
            out->time_until_half_open_s = secs_until(v.open_until_ns, now);
    }
    if (s == RESIL_BREAKER_FORCED_OPEN)
        out->time_until_half_open_s = -1;
    out->state = (resil_breaker_state)s;
    out->epoch = RESIL__CB_EPOCH(w);
    out->consecutive_failures = v.consecutive_failures;
    out->successful = v.counts[0];
    out->failed = v.counts[1];
    out->ignored = v.counts[2];
    out->not_permitted = v.counts[3];
    snapshot_rates(b, &v, out);
    out->open_duration_s = resil__ns_to_s(v.open_duration_ns);
    out->open_streak = v.open_streak;
    if (RESIL__CB_STATE(w) == RESIL_BREAKER_HALF_OPEN)
        for (int i = 0; i < RESIL__CB_SLOTS; i++)
            out->half_open_in_flight += v.lease_expires[i] != 0 && v.lease_expires[i] > now;
    out->failure_threshold = b->o.failure_threshold;
    out->recovery_timeout_s = b->o.recovery_timeout_s;
    out->shared = resil_breaker_is_shared(b);
    return 0;
}

resil_breaker_state resil_breaker_get_state(resil_breaker *b)
{
    resil__store_view v;
    if (b->store->ops->read(b->store, 0, &v) != 0)
        return RESIL_BREAKER_OPEN; /* cannot read it: as if open */
    int s = RESIL__CB_STATE(v.word);
    if (s == RESIL_BREAKER_OPEN && resil_clock_monotonic_ns(b->clock) >= v.open_until_ns)
        s = RESIL_BREAKER_HALF_OPEN;
    return (resil_breaker_state)s;
}

double resil_breaker_time_until_half_open(resil_breaker *b)
{
    resil__store_view v;
    if (b->store->ops->read(b->store, 0, &v) != 0)
        return 0;
    int s = RESIL__CB_STATE(v.word);
    if (s == RESIL_BREAKER_FORCED_OPEN)
        return -1;
    if (s != RESIL_BREAKER_OPEN)
        return 0;
    return secs_until(v.open_until_ns, resil_clock_monotonic_ns(b->clock));
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
    return resil_with_circuit_breaker_ex(name, op, arg, failure_threshold, recovery_timeout_s,
                                         NULL, NULL);
}

int resil_with_circuit_breaker_ex(const char *name, int (*op)(void *arg), void *arg,
                                  int failure_threshold, double recovery_timeout_s,
                                  double *retry_in_s, resil_error *err)
{
    if (retry_in_s)
        *retry_in_s = 0;
    if (!op)
        return resil_error_set(err, RESIL_EINVAL, "op", "op is NULL");
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    o.failure_threshold = failure_threshold;
    o.recovery_timeout_s = recovery_timeout_s;
    resil_breaker *b;
    int rc = resil_breaker_get(&b, name, &o, err);
    if (rc)
        return rc;
    return resil_breaker_call_ex(b, op, arg, retry_in_s, err);
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

int resil_breaker_list_dir(const char *dir, int (*fn)(const char *name, void *arg), void *arg,
                           resil_error *err)
{
    return resil__store_list(dir, fn, arg, err);
}

int resil_breaker_reset_file(const char *dir, const char *name, resil_error *err)
{
    resil__store_cfg cfg = {0};
    int rc = resil__cb_trust_from_env(&cfg.trust_shared, err);
    if (rc)
        return rc;
    return resil__store_reset(dir, name, &cfg, err);
}
