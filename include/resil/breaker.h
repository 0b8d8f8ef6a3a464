/* resil/breaker.h - circuit breakers: CLOSED -> OPEN -> HALF_OPEN -> CLOSED,
 * shared by name across threads and, with a state directory, across the
 * processes of one machine.
 *
 * A breaker watches the outcomes of calls to one service.  While CLOSED every
 * call is allowed.  When failures reach a trip rule it goes OPEN and refuses
 * calls (RESIL_ECIRCUIT_OPEN, with the time until half-open: see
 * resil_breaker_acquire's retry_in_s and resil_breaker_call_ex) for the open
 * duration.  Then it is HALF_OPEN: at most half_open_max_calls trial calls at
 * once are let through; success_threshold successes in a row close it, any
 * failure opens it again (for a longer time when open_multiplier > 1).
 * Manual overrides: FORCED_OPEN (refuse everything until reset) and DISABLED
 * (allow everything, still count); resil_breaker_reset closes it.
 *
 * Trip rules (any one trips):
 *   - consecutive failures >= failure_threshold;
 *   - with a count-based sliding window of window_size calls, once it holds at
 *     least window_min_calls: failure rate >= failure_rate_threshold, or
 *     slow-call rate >= slow_call_rate_threshold where a call slower than
 *     slow_call_duration_s is slow (slow calls that succeed are still
 *     successes for the consecutive rule).
 *
 * Two-step use (event loops):
 *     resil_breaker_permit p;
 *     double wait_s;
 *     if (resil_breaker_acquire(b, &p, &wait_s) == 0) {
 *         int rc = do_the_call();
 *         resil_breaker_report(b, &p, rc, -1);
 *     } else { ... come back in wait_s seconds ... }
 * Every permit acquired must be reported exactly once (report or record).
 * A HALF_OPEN trial permit is a lease: if its holder hangs or dies, it
 * expires after half_open_lease_s and another trial may start; a report on an
 * expired permit does not move the state.
 *
 * Hot path: in the CLOSED state, with only the consecutive-failure rule (no
 * window, no slow-call rule), acquire + report of a success read two shared
 * words (the state word and the consecutive-failure count, which only
 * failures write), write only this thread's counter stripe, read no clock,
 * take no lock and allocate nothing.
 *
 * Metrics (default registry, unless RESIL_METRICS_ENABLED=false; see
 * docs/metrics.md): calls by kind, call durations when the breaker has one,
 * transitions this process makes, and resil_circuitbreaker_state{name,state},
 * which a collector of the default registry sets again before every export
 * from the current state of every live breaker of this process (as
 * resil_breaker_get_state reads it, without the state file's lock), so it
 * follows transitions made by other processes and OPEN turning HALF_OPEN
 * with time.  That collector reads each breaker's clock (opts.clock) on the
 * thread that exports, so a custom clock must be thread-safe.
 *
 * Thread safety: a resil_breaker may be used by any number of threads at
 * once; permits belong to the thread (or event-loop task) that acquired them
 * but may be reported from another thread.  Transitions take a lock (a
 * mutex, plus an OFD lock on the state file for a shared breaker); listeners
 * run after it is released, on the thread that caused the transition.
 *
 * Process safety: with a state directory (opts.state_dir, else the
 * RESIL_STATE_DIR environment variable) a breaker's state lives in the
 * memory-mapped file <dir>/<name>.cb (bytes other than [A-Za-z0-9._-] in the
 * name are written %XX; long names are cut and hashed) and every process
 * that opens the same name shares it:
 * one trips it, all see it open at once.  A process killed at any point
 * leaves it usable: locks are released by the kernel, a half-done update is
 * repaired by the next process that takes the lock, a trial permit it held
 * expires.  The state survives restarts (and reboots: times are re-based from
 * the wall clock when the boot id changed).  A handle may be used in a child
 * after fork() (it opens the file again for a lock of its own), provided no
 * other thread of the parent was inside the breaker during the fork.  Do
 * not truncate a state file that is mapped: its processes would get SIGBUS
 * on their lock-free paths (resil_breaker_reset_file rewrites it in place).
 * That is why the directory and the file must be private to their owner
 * (see resil_breaker_trust); under the lock, the file's size is always
 * checked first, and a file that shrank is sized back and reset.  Configuration is per process;
 * what is shared is the state: state, epoch, consecutive failures, the
 * window, half-open leases, the open streak and the counters.
 */
#ifndef RESIL_BREAKER_H
#define RESIL_BREAKER_H

#include "resil/clock.h"
#include "resil/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- states, verdicts, options ------------------------------------------ */

typedef enum resil_breaker_state {
    RESIL_BREAKER_CLOSED = 0,
    RESIL_BREAKER_OPEN,
    RESIL_BREAKER_HALF_OPEN,
    RESIL_BREAKER_FORCED_OPEN, /* manual: refuse everything until reset */
    RESIL_BREAKER_DISABLED     /* manual: allow everything, still count */
} resil_breaker_state;

/* "closed", "open", "half_open", "forced_open", "disabled" ("unknown" for
 * other values).  Static strings. */
RESIL_EXPORT const char *resil_breaker_state_name(resil_breaker_state state);

/* How one call's outcome counts. */
typedef enum resil_breaker_verdict {
    RESIL_BREAKER_SUCCESS = 0,
    RESIL_BREAKER_FAILURE,
    RESIL_BREAKER_IGNORE /* counts for neither side (e.g. a caller's own error) */
} resil_breaker_verdict;

/* Decides how a call's result code counts.  The default: 0 is SUCCESS,
 * anything else FAILURE.  Must be thread-safe when the breaker is shared. */
typedef resil_breaker_verdict (*resil_breaker_classifier)(int result, void *arg);

/* A state change, as listeners see it. */
typedef struct resil_breaker_transition {
    const char *name;          /* the breaker's name */
    resil_breaker_state from;
    resil_breaker_state to;
    double open_for_s;         /* when `to` is OPEN: how long it stays open */
    const char *reason;        /* "consecutive_failures", "failure_rate",
                                  "slow_call_rate", "recovery_timeout",
                                  "half_open_failure", "half_open_success",
                                  "trip", "disable", "reset" */
} resil_breaker_transition;

/* Called after a transition made by this process, on the thread that made it,
 * with no lock held.  It may call into the breaker (acquire, snapshot...). */
typedef void (*resil_breaker_listener)(const resil_breaker_transition *t, void *arg);

/* Options.  Start from RESIL_BREAKER_OPTS_INIT (all zero); zero means the
 * default given. */
/* The newest resil_breaker_opts layout this header knows (docs/abi.md): new
 * members are only ever added at the end, under a new version. */
#define RESIL_BREAKER_OPTS_VERSION 1

typedef struct resil_breaker_opts {
    /* RESIL_BREAKER_OPTS_VERSION, set by RESIL_BREAKER_OPTS_INIT (0 means
     * 1); a newer one than the library knows is refused with RESIL_EINVAL. */
    unsigned version;
    /* Consecutive failures that trip.  0: CIRCUIT_BREAKER_DEFAULT_THRESHOLD
     * from the environment, else 5.  -1: no consecutive rule (only the
     * window's; needs window_size > 0).  Otherwise 1..1000000. */
    int failure_threshold;
    /* Seconds OPEN before the first trial.  0: CIRCUIT_BREAKER_DEFAULT_TIMEOUT
     * from the environment, else 60.  Otherwise > 0 and finite. */
    double recovery_timeout_s;
    /* Successes in a row in HALF_OPEN that close it.  0: 1.  1..1000000. */
    int success_threshold;
    /* Trial calls allowed at once in HALF_OPEN.  0: 1.  1..64. */
    int half_open_max_calls;
    /* How long a trial permit lasts before it expires.  0: recovery_timeout_s. */
    double half_open_lease_s;

    /* Count-based sliding window: the last window_size calls (SUCCESS or
     * FAILURE; IGNORE is not counted).  0: no window.  1..10000. */
    int window_size;
    /* Calls the window must hold before its rates are judged.  0:
     * window_size.  1..window_size. */
    int window_min_calls;
    /* Failure rate in (0, 1] that trips.  0: 0.5. */
    double failure_rate_threshold;
    /* A call that takes longer than this is slow.  0: no slow-call rule.
     * Needs a window (slow calls are judged over it). */
    double slow_call_duration_s;
    /* Slow-call rate in (0, 1] that trips.  0: 1.0. */
    double slow_call_rate_threshold;

    /* Growth of the open duration on repeated trips (an open streak that
     * ends when the breaker closes): open = recovery_timeout_s *
     * open_multiplier^(trips-1), at most max_open_s, then jittered.
     * open_multiplier 0: 1 (no growth), else >= 1.  max_open_s 0: no cap
     * other than one day; otherwise >= recovery_timeout_s. */
    double open_multiplier;
    double max_open_s;
    /* Jitter fraction in [0, 1): the open duration is multiplied by a uniform
     * factor in [1 - open_jitter, 1 + open_jitter] (capped by max_open_s),
     * so a fleet does not probe a recovering service in lockstep. */
    double open_jitter;

    resil_breaker_classifier classify; /* NULL: 0 = SUCCESS, else FAILURE */
    void *classify_arg;

    const resil_clock *clock; /* NULL: the system clock */
    uint64_t seed;            /* jitter seed; 0: from the kernel */

    /* Where shared state lives.  NULL: the RESIL_STATE_DIR environment
     * variable, and process-local when it is unset or empty.  "": always
     * process-local.  The directory is created (mode state_dir_mode, 0700 by
     * default, whatever the umask) when missing, and state files in it
     * (mode state_file_mode, 0600 by default). */
    const char *state_dir;
    /* With a state directory: attach to an existing state file only (fails
     * with -ENOENT when there is none; RESIL_EINVAL without a state
     * directory).  For tools that inspect breakers.  A state file the
     * caller may read but not write is then read into a private copy: the
     * handle gives snapshots (of that moment), and trip, disable, reset,
     * acquire beyond the closed state and the reports that take the lock
     * fail with -EACCES. */
    bool attach_only;
    /* Whom the state directory and files may belong to (see
     * resil_breaker_trust).  0: RESIL_STATE_DIR_TRUST from the environment,
     * else RESIL_BREAKER_TRUST_PRIVATE. */
    int state_trust;
    /* Modes of a directory and of a state file that resil creates (0: 0700
     * and 0600); the owner's rwx (directory) and rw (file) bits are
     * required.  A mode that lets the group or others write needs
     * state_trust RESIL_BREAKER_TRUST_SHARED. */
    unsigned state_dir_mode;
    unsigned state_file_mode;
    /* With a state directory: take the state file's lock, and so check its
     * size, before every call, also those that are otherwise lock-free (the
     * closed state's acquire and report, snapshots, get_state): a state
     * file truncated between two calls (by its owner, by root, or by anyone
     * when trust is shared) is then sized back and reset instead of killing
     * the process with SIGBUS.  Costs a lock per call (microseconds); for
     * tools that make few calls (`resil run --breaker` sets it).  Implied by
     * state_trust SHARED on a directory or file that is not private. */
    bool guard_every_call;
} resil_breaker_opts;

/* Trust in a state directory (opts.state_trust, RESIL_STATE_DIR_TRUST).
 * A shared breaker's processes map its state file and read it without a
 * lock: whoever may write the file (or replace it in the directory) can
 * steer the breaker and, by truncating the file, kill them with SIGBUS.
 *   PRIVATE ("private", the default): the directory must be owned by the
 *     caller or root and writable by no one else, the state file owned by
 *     the caller (or, for a caller other than root, root) and writable by
 *     no one else; anything else is refused with -EPERM, err naming the
 *     directory or file, its owner or mode, and how to opt in.
 *   SHARED ("shared"): the caller trusts the users who may write there
 *     (a group's shared directory, say).  Such a breaker is "guarded":
 *     every call takes the state file's lock and checks its size first, so
 *     a file that shrank between two calls is sized back and reset instead
 *     of raising SIGBUS (a truncation racing with a call in progress still
 *     can; hence "trusts").  Guarded calls cost a lock (microseconds). */
typedef enum resil_breaker_trust {
    RESIL_BREAKER_TRUST_DEFAULT = 0,
    RESIL_BREAKER_TRUST_PRIVATE = 1,
    RESIL_BREAKER_TRUST_SHARED = 2
} resil_breaker_trust;

/* Every member zero (its default) but the version; a constant expression in
 * C, and an inline function in C++ (where g++ -Wextra warns about
 * initializers that leave members out). */
#ifdef __cplusplus
static inline resil_breaker_opts resil__breaker_opts_init(void)
{
    resil_breaker_opts o = {};
    o.version = RESIL_BREAKER_OPTS_VERSION;
    return o;
}
#define RESIL_BREAKER_OPTS_INIT resil__breaker_opts_init()
#else
#define RESIL_BREAKER_OPTS_INIT {.version = RESIL_BREAKER_OPTS_VERSION}
#endif

/* Fills in the defaults of *opts in place (env variables included) and checks
 * it.  Returns 0 or RESIL_EINVAL with err->path naming the field and
 * err->message what is wrong.  Bad environment values are not errors here:
 * see resil_breaker_env_defaults. */
RESIL_EXPORT int resil_breaker_opts_resolve(resil_breaker_opts *opts, resil_error *err);

/* The defaults from CIRCUIT_BREAKER_DEFAULT_THRESHOLD (an integer 1..1000000)
 * and CIRCUIT_BREAKER_DEFAULT_TIMEOUT (seconds, > 0, finite): fills
 * *threshold and *timeout_s (either may be NULL) with the variables' values,
 * or 5 and 60 when unset.  A bad value gives the documented default and
 * returns RESIL_EINVAL with err naming the variable and its value; the
 * library also prints that message once per process on stderr the first
 * time it uses the defaults.  Thread-safe. */
RESIL_EXPORT int resil_breaker_env_defaults(int *threshold, double *timeout_s, resil_error *err);

/* ---- lifetime ----------------------------------------------------------- */

typedef struct resil_breaker resil_breaker;

/* Creates a breaker named `name` (1..200 bytes, no NUL; in a state
 * directory, a name whose encoded file name would pass 200 bytes is cut and
 * given a hash suffix).  opts may be NULL
 * (all defaults).  With a state directory, opens or creates its state file
 * there; a file that is not a resil breaker state, of another version,
 * truncated or with impossible values gives RESIL_EPARSE with err naming the
 * file and the defect (use resil_breaker_reset_file to start it afresh).
 * Returns 0 and the caller owns *out; or RESIL_EINVAL (err names the
 * field), -ENOMEM, -errno from the file system, -ENOENT for attach_only
 * without a file, RESIL_EPARSE. */
RESIL_EXPORT int resil_breaker_new(resil_breaker **out, const char *name,
                                   const resil_breaker_opts *opts, resil_error *err);

/* Releases a breaker (NULL is ignored).  No call may still be using it;
 * outstanding permits are dropped (a shared trial lease simply expires).
 * Shared state stays in its file. */
RESIL_EXPORT void resil_breaker_free(resil_breaker *b);

/* The breaker's name (borrowed; lives as long as the breaker). */
RESIL_EXPORT const char *resil_breaker_name(const resil_breaker *b);

/* True when the breaker's state is shared through a file. */
RESIL_EXPORT bool resil_breaker_is_shared(const resil_breaker *b);

/* ---- calls ---------------------------------------------------------------- */

/* A permit to make one call.  Transparent so it can live on the stack: treat
 * the fields as private. */
typedef struct resil_breaker_permit {
    uint64_t word;    /* the state word seen at acquire (state and epoch) */
    int64_t start_ns; /* when a duration must be measured, else 0 */
    uint32_t slot;    /* trial lease slot + 1, 0 for none */
    uint32_t gen;     /* the lease's generation */
    int kind;         /* private */
} resil_breaker_permit;

/* Asks to make a call.  Returns 0 and fills *permit when the call may go
 * ahead; RESIL_ECIRCUIT_OPEN when refused, with *retry_in_s (may be NULL)
 * set to the seconds until the breaker is half-open (0 when it is half-open
 * already and all trial permits are taken, or forced open: -1); or, for a
 * shared breaker, RESIL_ETIMEDOUT when its lock could not be had within 5 s
 * (a holder stopped by SIGSTOP or a debugger) or -errno when locking failed.
 * Moves OPEN to HALF_OPEN when the open duration is over.  The closed state
 * takes no lock; the others hold one for microseconds. */
RESIL_EXPORT int resil_breaker_acquire(resil_breaker *b, resil_breaker_permit *permit,
                                       double *retry_in_s);

/* Reports the outcome of a permitted call: the classifier turns `result`
 * into a verdict, then as resil_breaker_record.  Returns what record returns. */
RESIL_EXPORT int resil_breaker_report(resil_breaker *b, resil_breaker_permit *permit,
                                      int result, double duration_s);

/* Reports a permitted call's verdict.  duration_s >= 0 is the call's
 * duration (for the slow-call rule); < 0 means "measure it": the breaker
 * then uses the time since acquire (it read the clock at acquire only when a
 * slow-call rule is set, or for a half-open trial call).  With metrics on,
 * the duration, given or measured, is observed into
 * resil_circuitbreaker_call_duration_seconds{name,kind} (kind: successful,
 * failed, ignored); a call with neither is not (the closed-state hot path
 * reads no clock for it).  A report on a permit acquired before a transition
 * (another epoch), or on a trial lease that expired, counts in the totals but
 * does not move the state.  The permit is spent afterwards.  Returns 0, or
 * an error of the shared lock as for resil_breaker_acquire (the outcome is
 * then not recorded). */
RESIL_EXPORT int resil_breaker_record(resil_breaker *b, resil_breaker_permit *permit,
                                      resil_breaker_verdict verdict, double duration_s);

/* One guarded call: acquire, op(arg), report op's result.  Returns op's
 * result whenever op ran (a failure to record it is not reported: use the
 * two-step form to see it), or RESIL_ECIRCUIT_OPEN without calling op (the
 * time until half-open is resil_breaker_time_until_half_open's), or an
 * error of resil_breaker_acquire without calling op. */
RESIL_EXPORT int resil_breaker_call(resil_breaker *b, int (*op)(void *arg), void *arg);

/* resil_breaker_call that says why a call was refused (the original's
 * CircuitBreakerOpen.time_until_half_open).  When it returns
 * RESIL_ECIRCUIT_OPEN, *retry_in_s (may be NULL) is the time until
 * half-open, as resil_breaker_acquire gives it: seconds (> 0) while OPEN, 0
 * when half-open with every trial permit taken, -1 when forced open; and
 * err (may be NULL; caller-owned) has code RESIL_ECIRCUIT_OPEN, path the
 * breaker's name and a message that names the breaker and the wait ("...
 * is open: half-open in 12.500 s").  On another error of acquire (a shared
 * breaker's lock), err describes it and *retry_in_s is 0.  Whenever op ran,
 * op's result is returned, *retry_in_s is 0 and err is untouched.  Costs
 * what resil_breaker_call costs (the closed fast path is the same). */
RESIL_EXPORT int resil_breaker_call_ex(resil_breaker *b, int (*op)(void *arg), void *arg,
                                       double *retry_in_s, resil_error *err);

/* ---- manual control ------------------------------------------------------- */

/* FORCED_OPEN: every call is refused until resil_breaker_reset. */
RESIL_EXPORT int resil_breaker_trip(resil_breaker *b);

/* DISABLED: every call is allowed (and counted) until resil_breaker_reset. */
RESIL_EXPORT int resil_breaker_disable(resil_breaker *b);

/* CLOSED, with the consecutive failures, the window, the open streak and the
 * trial leases cleared (totals are kept).  Works from any state. */
RESIL_EXPORT int resil_breaker_reset(resil_breaker *b);

/* ---- observation ---------------------------------------------------------- */

typedef struct resil_breaker_snapshot {
    resil_breaker_state state; /* OPEN whose time is over reads HALF_OPEN */
    int64_t consecutive_failures;
    int64_t successful;    /* totals since the state was created */
    int64_t failed;
    int64_t ignored;
    int64_t not_permitted; /* refused calls */
    double failure_rate;   /* over the window when there is one, else over
                              the totals; -1 with no calls */
    double slow_call_rate; /* over the window; -1 without a window, without a
                              slow-call rule, or with no calls */
    int window_calls;      /* calls in the window */
    double time_until_half_open_s; /* OPEN: seconds left; FORCED_OPEN: -1;
                                      otherwise 0 */
    double open_duration_s;        /* the current (or last) open duration */
    int open_streak;               /* trips since the breaker last closed */
    int half_open_in_flight;       /* live trial leases */
    uint64_t epoch;                /* incremented on every transition */
    int failure_threshold;         /* this handle's configuration */
    double recovery_timeout_s;
    bool shared;
} resil_breaker_snapshot;

/* Fills *out.  Lock-free (may be slightly inconsistent while other threads
 * make calls), except for a guarded breaker (see resil_breaker_trust and
 * guard_every_call), which takes the lock first.  Returns 0, or for a
 * guarded breaker an error of its lock (as resil_breaker_acquire; *out is
 * then all zero). */
RESIL_EXPORT int resil_breaker_snapshot_get(resil_breaker *b, resil_breaker_snapshot *out);

/* The state now (OPEN whose time is over reads HALF_OPEN).  A guarded
 * breaker whose lock cannot be had reads OPEN. */
RESIL_EXPORT resil_breaker_state resil_breaker_get_state(resil_breaker *b);

/* Seconds until an OPEN breaker goes half-open (0 otherwise, -1 when forced
 * open). */
RESIL_EXPORT double resil_breaker_time_until_half_open(resil_breaker *b);

/* Adds a listener (at most 8 per breaker; called in slot order).  Returns 0,
 * RESIL_EINVAL for a NULL fn, -ENOSPC when full.  Thread-safe. */
RESIL_EXPORT int resil_breaker_add_listener(resil_breaker *b, resil_breaker_listener fn,
                                            void *arg);

/* Removes the listener added with the same fn and arg.  Returns 0 or
 * -ENOENT.  Waits for calls of that listener running on other threads to
 * end, so once it returns the listener is not running and will not be called
 * again (its arg may be freed).  A listener may remove itself; two listeners
 * must not remove each other from their callbacks on two threads at once. */
RESIL_EXPORT int resil_breaker_remove_listener(resil_breaker *b, resil_breaker_listener fn,
                                               void *arg);

/* ---- the process-wide registry -------------------------------------------- */

/* Gets the registry's breaker called `name`, creating it with opts (may be
 * NULL) when there is none yet; opts are ignored for an existing one.
 * *out is borrowed: the registry owns it until resil_breaker_registry_clear.
 * Thread-safe: concurrent calls for one name get the same breaker.
 * Errors as resil_breaker_new. */
RESIL_EXPORT int resil_breaker_get(resil_breaker **out, const char *name,
                                   const resil_breaker_opts *opts, resil_error *err);

/* The original's with_circuit_breaker: gets or creates the registry breaker
 * `name` with failure_threshold (0: default) and recovery_timeout_s (0:
 * default), state directory from RESIL_STATE_DIR, and makes one guarded
 * call.  Returns op's result, RESIL_ECIRCUIT_OPEN (op not called; see
 * resil_breaker_time_until_half_open), or an error of resil_breaker_get. */
RESIL_EXPORT int resil_with_circuit_breaker(const char *name, int (*op)(void *arg), void *arg,
                                            int failure_threshold, double recovery_timeout_s);

/* resil_with_circuit_breaker with the refusal's details: *retry_in_s (may be
 * NULL) and err (may be NULL) as resil_breaker_call_ex fills them; an error
 * of resil_breaker_get (a bad option, the state file) is described in err
 * too. */
RESIL_EXPORT int resil_with_circuit_breaker_ex(const char *name, int (*op)(void *arg), void *arg,
                                               int failure_threshold, double recovery_timeout_s,
                                               double *retry_in_s, resil_error *err);

/* Calls fn for every breaker in the registry (in creation order) until fn
 * returns non-zero, which is then returned.  The registry's lock is held:
 * fn must not create breakers. */
RESIL_EXPORT int resil_breaker_registry_foreach(int (*fn)(resil_breaker *b, void *arg),
                                                void *arg);

/* Frees every registry breaker.  For tests and shutdown: no thread may use
 * any of them any more. */
RESIL_EXPORT void resil_breaker_registry_clear(void);

/* ---- state files ---------------------------------------------------------- */

/* Calls fn with the name of every breaker state file in dir (sorted by
 * name) until fn returns non-zero, which is then returned.  Returns 0, or
 * -errno (err names dir). */
RESIL_EXPORT int resil_breaker_list_dir(const char *dir, int (*fn)(const char *name, void *arg),
                                        void *arg, resil_error *err);

/* Writes a fresh CLOSED state into the state file of `name` in dir, whatever
 * it held (also a corrupt or truncated one), under the file's lock.
 * Processes that have it mapped see the new state at once.  The directory
 * and file are trusted as RESIL_STATE_DIR_TRUST says (default private:
 * -EPERM for one that others may write or another user owns), and created
 * 0700 / 0600 when missing.  Returns 0, RESIL_EINVAL for a bad
 * RESIL_STATE_DIR_TRUST, or -errno (err names the file). */
RESIL_EXPORT int resil_breaker_reset_file(const char *dir, const char *name, resil_error *err);

/* (A retry around a breaker, resil_retry_with_breaker, is the policy layer's:
 * resil/guard.h.) */

#ifdef __cplusplus
}
#endif
#endif /* RESIL_BREAKER_H */
