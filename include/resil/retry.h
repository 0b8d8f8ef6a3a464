/* resil/retry.h - retry with exponential backoff, jitter, deadlines and a
 * retry budget.
 *
 * Three layers, one code path:
 *   resil_backoff_delay()   a pure function: the delay before retry k;
 *   resil_retry_state       a non-blocking state machine for event loops: fed
 *                           each attempt's outcome, it answers "retry after D
 *                           seconds" or "give up because R";
 *   resil_retry()           the blocking loop built on the state machine.
 *
 * Thread safety: a resil_retry_config is an immutable value, safe to share.
 * A resil_retry_state belongs to one caller at a time.  resil_retry() is
 * reentrant: any number of threads may run it at once, sharing a config, a
 * budget and a cancel token (but not a resil_rng: give each its own, or NULL).
 * A resil_retry_budget is lock-free and may be shared by any number of threads.
 * Nothing here is shared across processes.
 */
#ifndef RESIL_RETRY_H
#define RESIL_RETRY_H

#include "resil/cancel.h"
#include "resil/clock.h"
#include "resil/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- configuration ------------------------------------------------------ */

typedef enum resil_jitter_kind {
    RESIL_JITTER_DEFAULT = 0, /* FULL when jitter is on */
    RESIL_JITTER_FULL,        /* uniform in [0, d] */
    RESIL_JITTER_EQUAL,       /* d/2 + uniform in [0, d/2] */
    RESIL_JITTER_DECORRELATED /* uniform in [base, min(max, 3*prev, base*b^k)] */
} resil_jitter_kind;

/* An immutable retry configuration (the original's RetryConfig).
 * `jitter` switches jitter on or off, as in the original; `jitter_kind` picks
 * the kind when it is on.  max_elapsed_s is an overall deadline measured from
 * the start of resil_retry (0 = none). */
typedef struct resil_retry_config {
    int max_retries;             /* retries after the first attempt; >= 0 */
    double base_delay_s;         /* delay before the first retry; >= 0 */
    double max_delay_s;          /* no delay ever exceeds this; >= base */
    double exponential_base;     /* growth factor; >= 1 */
    bool jitter;                 /* randomise delays */
    resil_jitter_kind jitter_kind;
    double max_elapsed_s;        /* overall deadline in seconds; 0 = none */
} resil_retry_config;

#define RESIL__RETRY_PRESET(n, base, max) \
    ((resil_retry_config){(n), (base), (max), 2.0, true, RESIL_JITTER_DEFAULT, 0.0})

/* The presets of the original module, exactly. */
#define RESIL_RETRY_TRANSIENT RESIL__RETRY_PRESET(3, 1.0, 30.0)
#define RESIL_RETRY_EXTERNAL RESIL__RETRY_PRESET(5, 2.0, 60.0)
#define RESIL_RETRY_CRITICAL RESIL__RETRY_PRESET(10, 0.5, 120.0)
#define RESIL_RETRY_AGGRESSIVE RESIL__RETRY_PRESET(7, 0.1, 10.0)
#define RESIL_RETRY_NONE RESIL__RETRY_PRESET(0, 1.0, 30.0)

/* Looks a preset up by name, case-insensitively: "transient", "external",
 * "critical", "aggressive", "none".  Returns 0 and fills *out, or RESIL_EINVAL
 * (and a message in err listing the valid names) when unknown. */
RESIL_EXPORT int resil_retry_preset(resil_retry_config *out, const char *name, resil_error *err);

/* Checks a configuration: rejects NaN or infinite values, negative delays or
 * retries, base_delay_s > max_delay_s, exponential_base < 1, negative
 * max_elapsed_s and unknown jitter kinds.  Returns 0 or RESIL_EINVAL with
 * err->path naming the field and err->message saying what is wrong. */
RESIL_EXPORT int resil_retry_config_validate(const resil_retry_config *config, resil_error *err);

/* The effective jitter of a config: RESIL_JITTER_DEFAULT when jitter is off
 * (no jitter), otherwise the kind, FULL when none was given. */
RESIL_EXPORT resil_jitter_kind resil_retry_config_jitter(const resil_retry_config *config);

/* The delay in seconds before retry `retry` (1 for the first retry), a pure
 * function of its arguments and the rng's state.  The undithered delay is
 * d = min(max_delay, base * exponential_base^(retry-1)); then
 *   no jitter:    d
 *   FULL:         uniform in [0, d]
 *   EQUAL:        d/2 + uniform in [0, d/2]
 *   DECORRELATED: uniform in [base, hi] with hi = min(max_delay, 3 * max(prev,
 *                 base), base * exponential_base^retry): a decorrelated walk
 *                 (each delay depends on the previous one) that never spikes
 *                 above the exponential schedule and never piles up at the cap
 *                 because the range shrinks instead of being clamped.
 * prev_delay_s is the previous delay returned (0 before the first retry).
 * The rng is used only when jitter is on (it may be NULL otherwise).
 * The result is always within [0, max_delay_s].  The config is assumed valid. */
RESIL_EXPORT double resil_backoff_delay(const resil_retry_config *config, int retry,
                                        double prev_delay_s, resil_rng *rng);

/* ---- retry budget ------------------------------------------------------- */

/* A token bucket shared by many callers (gRPC retry throttling): each failed
 * attempt costs one token, each success gives back token_ratio, and retries
 * are allowed only while tokens > max_tokens / 2.  Starts full.  Lock-free. */
typedef struct resil_retry_budget resil_retry_budget;

/* Creates a budget.  max_tokens in (0, 1000], token_ratio in (0, 1]; tokens are
 * kept in thousandths, as in gRPC.  Returns 0, RESIL_EINVAL (err names the
 * field) or -ENOMEM.  The caller owns *out. */
RESIL_EXPORT int resil_retry_budget_new(resil_retry_budget **out, double max_tokens,
                                        double token_ratio, resil_error *err);

/* Releases a budget (NULL is ignored).  No retry may still use it. */
RESIL_EXPORT void resil_retry_budget_free(resil_retry_budget *b);

/* Records a successful attempt: tokens += token_ratio, up to max_tokens. */
RESIL_EXPORT void resil_retry_budget_on_success(resil_retry_budget *b);

/* Records a failed attempt: tokens -= 1, down to 0. */
RESIL_EXPORT void resil_retry_budget_on_failure(resil_retry_budget *b);

/* True when a retry may be made now (tokens > max_tokens / 2). */
RESIL_EXPORT bool resil_retry_budget_allows(const resil_retry_budget *b);

/* The current number of tokens. */
RESIL_EXPORT double resil_retry_budget_tokens(const resil_retry_budget *b);

/* ---- outcomes, reasons, hooks ------------------------------------------- */

/* What one attempt says about itself. */
typedef enum resil_outcome {
    RESIL_OUTCOME_SUCCESS = 0,
    RESIL_OUTCOME_TRANSIENT, /* failed; may succeed if retried */
    RESIL_OUTCOME_PERMANENT  /* failed; retrying is pointless: stop now */
} resil_outcome;

/* The outcome an error code suggests, so that an op returning -errno (or
 * errno) meets resil_retry_op and the breaker's classifier without
 * boilerplate.  e and -e mean the same; 0 is SUCCESS.
 *   TRANSIENT: EAGAIN/EWOULDBLOCK, EINTR, EBUSY, ETIMEDOUT, ECONNREFUSED,
 *              ECONNRESET, ECONNABORTED, EHOSTUNREACH, EHOSTDOWN, ENETUNREACH,
 *              ENETDOWN, ENETRESET, EPIPE, ENOBUFS, ENOMEM, EMFILE, ENFILE,
 *              EINPROGRESS, EALREADY, ETXTBSY, EDEADLK, ENOLCK, ESTALE,
 *              EPROTO, and resil's RESIL_ETIMEDOUT, RESIL_ECIRCUIT_OPEN,
 *              RESIL_EBUDGET, RESIL_EDURABILITY;
 *   PERMANENT: everything else (EINVAL, EPERM, EACCES, ENOENT, EEXIST,
 *              ENOTDIR, EISDIR, EROFS, ENOSPC, EBADF, ENOSYS, ENOTSUP, ...
 *              and resil's other codes).
 * A pure function: thread- and async-signal-safe. */
RESIL_EXPORT resil_outcome resil_outcome_from_errno(int e);

/* Why a retry stopped (RESIL_STOP_NONE: it has not). */
typedef enum resil_stop_reason {
    RESIL_STOP_NONE = 0,
    RESIL_STOP_SUCCESS,
    RESIL_STOP_EXHAUSTED, /* 1 + max_retries attempts failed */
    RESIL_STOP_DEADLINE,  /* the next sleep would cross max_elapsed_s */
    RESIL_STOP_PERMANENT, /* the op said its failure was permanent */
    RESIL_STOP_CANCELLED, /* the cancel token fired */
    RESIL_STOP_BUDGET     /* the retry budget refused the retry */
} resil_stop_reason;

/* "none", "success", "exhausted", "deadline", "permanent", "cancelled",
 * "budget" (static strings; "unknown" for other values). */
RESIL_EXPORT const char *resil_stop_reason_name(resil_stop_reason reason);

/* The error code resil_retry returns for a reason: 0 for SUCCESS,
 * RESIL_EEXHAUSTED, RESIL_EDEADLINE, RESIL_EPERMANENT, RESIL_ECANCELED,
 * RESIL_EBUDGET. */
RESIL_EXPORT int resil_stop_reason_error(resil_stop_reason reason);

/* What hooks see after an attempt and before a sleep. */
typedef struct resil_attempt_info {
    const char *name;         /* the retry's name (may be NULL) */
    int attempt;              /* 1-based number of the attempt just made */
    resil_outcome outcome;    /* its outcome */
    int error;                /* the error the op reported (0 if none) */
    double delay_s;           /* the sleep before the next attempt; 0 if none */
    resil_stop_reason reason; /* NONE if another attempt follows */
    double elapsed_s;         /* since the start; -1 when time is not measured */
    /* Added with RESIL_RETRY_OPTS_VERSION 1 (the library fills them, so a
     * caller built against an older header simply does not see them): */
    int refused;              /* attempts the gate refused so far (they did
                                 not run and are not counted in `attempt`) */
    bool refusal;             /* before_sleep only: this sleep follows a
                                 refusal by the gate, not a failed attempt */
} resil_attempt_info;

/* A hook.  Runs on the retrying thread; must not call back into the same
 * retry state. */
typedef void (*resil_retry_hook)(const resil_attempt_info *info, void *arg);

/* ---- the gate: a guard around every attempt ------------------------------- */

/* A gate is asked before every attempt of a retry and told how each attempt
 * it let run went.  retry.c knows nothing else of it: a circuit breaker
 * (resil/guard.h fills a gate from a resil_breaker), a rate limiter or a
 * bulkhead may stand behind it.  An attempt the gate refuses never ran: it is
 * not an attempt (not in result->attempts, call->attempt, info.attempt nor
 * in resil_retry_attempts_total{result="success"|"failure"}; it is counted in
 * resil_retry_attempts_total{result="not_permitted"} and info.refused), but
 * it uses up one of the 1 + max_retries turns, so a retry whose gate never
 * lets anything through still ends. */

/* How an attempt counts for the gate (a breaker: for its trip rules). */
typedef enum resil_gate_verdict {
    RESIL_GATE_AUTO = 0, /* the default: from the outcome and call->error (a
                            breaker: SUCCESS counts as success, a failure as
                            its classifier says of call->error, as failure
                            when that is 0) */
    RESIL_GATE_SUCCESS,
    RESIL_GATE_FAILURE,
    RESIL_GATE_IGNORE    /* counts for neither side (e.g. the caller's own
                            error, or a cancellation) */
} resil_gate_verdict;

/* Room for what a gate keeps between acquire and report for one attempt
 * (a breaker's permit).  Owned by the retry loop, one per attempt in
 * flight, so one gate may serve any number of retries at once. */
typedef union resil_gate_ticket {
    uint64_t u64[8];
    void *ptr[8];
    double dbl[8];
} resil_gate_ticket;

/* What acquire fills when it refuses an attempt (preset to PERMANENT, -1). */
typedef struct resil_gate_refusal {
    resil_outcome outcome; /* TRANSIENT: ask again later (the retry goes on
                              as after a transient failure); PERMANENT (or
                              anything else): the retry stops now with
                              RESIL_STOP_PERMANENT */
    double retry_after_s;  /* with TRANSIENT: ask again after this many
                              seconds (a hint, bounded by the deadline like
                              the op's); < 0: after the backoff's delay */
} resil_gate_refusal;

/* What report is told about an attempt the gate let run. */
typedef struct resil_gate_report {
    resil_outcome outcome;      /* what the op returned */
    resil_gate_verdict verdict; /* call->verdict as the op left it */
    int error;                  /* call->error */
    double duration_s;          /* call->duration_s when the op set it
                                   (>= 0), else the retry's own measure
                                   when it timed the attempt (measure_time),
                                   else -1: the gate measures it if it wants */
} resil_gate_report;

typedef struct resil_retry_gate {
    /* Before every attempt.  Returns 0: the attempt runs, and report will be
     * called once with the same ticket.  Anything else refuses it: the op
     * is not called, the return value becomes the retry's last error (e.g.
     * RESIL_ECIRCUIT_OPEN) and *refusal says what the retry does next. */
    int (*acquire)(void *arg, resil_gate_ticket *ticket, resil_gate_refusal *refusal);
    /* After every attempt acquire let run, before the retry's hooks. */
    void (*report)(void *arg, resil_gate_ticket *ticket, const resil_gate_report *report);
    void *arg;
} resil_retry_gate;

/* ---- options ------------------------------------------------------------ */

/* Option structs that may grow (this one, resil_guard_opts) follow one
 * pattern, libgit2's:
 *   - the first field is `unsigned version`, and the *_INIT macro sets it to
 *     the header's *_OPTS_VERSION; new fields are only ever added at the
 *     end, and the version is then incremented;
 *   - the library reads only the fields that the caller's version has (a
 *     program built against an older header keeps working with a newer
 *     library), and refuses a version newer than its own with RESIL_EINVAL
 *     (err->path "version"): a newer header over an older library;
 *   - version 0 (a struct zeroed by memset or `= {0}`) means version 1, so
 *     that code written before the field existed keeps working;
 *   - *_INIT works in a static initializer and in an automatic one, in C
 *     (a designated initializer: no -Wmissing-field-initializers) and in
 *     C++ (an inline function returning the initialized value, since g++
 *     warns about designated and positional initializers that leave fields
 *     out).
 * Structs the library fills (resil_attempt_info, resil_retry_call, the gate's
 * report) grow at the end without a version: callers only read them. */
#define RESIL_RETRY_OPTS_VERSION 1

/* Options for resil_retry and resil_retry_state_init.  Zero means default:
 * start from RESIL_RETRY_OPTS_INIT. */
typedef struct resil_retry_opts {
    unsigned version;             /* RESIL_RETRY_OPTS_VERSION (0 means 1) */
    const resil_clock *clock;     /* NULL: the system clock */
    resil_rng *rng;               /* NULL: a per-thread generator, seeded from the
                                     kernel the first time a thread needs a
                                     jittered delay */
    resil_cancel *cancel;         /* NULL: not cancellable */
    resil_retry_budget *budget;   /* NULL: no budget */
    resil_retry_hook after_attempt; /* after every attempt (info.delay_s set) */
    resil_retry_hook before_sleep;  /* before every sleep */
    void *hook_arg;
    /* Fill elapsed times even without a deadline, and time each attempt
     * (the op's call, sleeps excluded) into the default metrics registry's
     * resil_retry_attempt_duration_seconds{name} (a NULL name is recorded as
     * ""; nothing when RESIL_METRICS_ENABLED=false).  Without it no attempt
     * is timed (a deadline alone reads the clock at the start and before
     * each sleep only). */
    bool measure_time;
    /* Asked before every attempt and told after it (see above); borrowed,
     * must outlive the retry.  NULL: none.  The non-blocking state refuses
     * a gate (it does not make the attempts: call the gate yourself and feed
     * a refusal with resil_retry_state_refused). */
    const resil_retry_gate *gate;
    /* When resil_retry refuses its arguments (RESIL_EINVAL: a bad config, a
     * NULL op, a bad opts version), the details: err->path names the field,
     * err->message says what is wrong.  NULL: none.  Borrowed; written only
     * on that failure, by the retrying thread. */
    resil_error *err;
} resil_retry_opts;

#ifdef __cplusplus
static inline resil_retry_opts resil__retry_opts_init(void)
{
    resil_retry_opts o = {};
    o.version = RESIL_RETRY_OPTS_VERSION;
    return o;
}
#define RESIL_RETRY_OPTS_INIT resil__retry_opts_init()
#else
#define RESIL_RETRY_OPTS_INIT {.version = RESIL_RETRY_OPTS_VERSION}
#endif

/* ---- the non-blocking state machine ------------------------------------- */

/* The state of one retry.  Transparent only so it can live on the stack:
 * treat the fields as private. */
typedef struct resil_retry_state {
    const resil_retry_config *config; /* borrowed */
    const resil_clock *clock;
    resil_rng *rng;
    resil_cancel *cancel;
    resil_retry_budget *budget;
    int64_t start_ns;      /* -1 when time is not measured */
    int64_t deadline_ns;   /* when has_deadline */
    bool has_deadline;
    int attempts;
    int last_error;
    double prev_delay_s;
    double total_delay_s;
    resil_stop_reason reason;
    int refused;                   /* refusals fed (resil_retry_state_refused) */
    resil_retry_hook after_attempt; /* opts' hooks, run by the public feed */
    resil_retry_hook before_sleep;
    void *hook_arg;
    void *reserved[4];             /* room to grow without a new layout */
} resil_retry_state;

/* The state machine's answer. */
typedef struct resil_retry_decision {
    bool retry;               /* true: wait delay_s, then make another attempt */
    double delay_s;           /* when retry */
    resil_stop_reason reason; /* when !retry */
} resil_retry_decision;

/* Starts a retry.  `config` is borrowed and must outlive the state; opts may be
 * NULL.  Reads the clock only if config has a deadline or opts->measure_time.
 * Of the options, the state honours clock, rng, cancel (checked after every
 * failure), budget, measure_time (elapsed times; the state does not time
 * attempts, which it does not make) and the hooks: resil_retry_state_feed
 * runs after_attempt, then before_sleep when it answers a retry, as
 * resil_retry does (with info.name NULL).  It refuses opts->gate.
 * Returns 0 or RESIL_EINVAL (bad config, a gate, or a version newer than
 * the library's; err says which field: "gate", "version", or the config's). */
RESIL_EXPORT int resil_retry_state_init(resil_retry_state *st, const resil_retry_config *config,
                                        const resil_retry_opts *opts, resil_error *err);

/* Feeds the outcome of the attempt just made.  `error` is the op's error code
 * (kept as the last error); retry_after_s >= 0 is a server's hint that
 * replaces the computed delay (any size, even above max_delay_s); < 0 or NaN
 * means no hint.  With a deadline, every delay, computed or hinted, is bounded
 * by it: a delay after which the next attempt would not start strictly before
 * the deadline stops the retry at once with RESIL_STOP_DEADLINE (no sleep
 * that would be followed by no attempt, no attempt that starts with no time
 * left).  Fills *out: retry with a delay, or stop with a reason.  Once a stop
 * was answered, further calls answer the same stop.  Any outcome other than
 * SUCCESS and TRANSIENT counts as PERMANENT.  Never blocks. */
RESIL_EXPORT void resil_retry_state_feed(resil_retry_decision *out, resil_retry_state *st,
                                         resil_outcome outcome, int error, double retry_after_s);

/* An attempt was refused by a gate the caller asks itself (a breaker): it
 * did not run, so it is not counted as an attempt, but it uses up one of the
 * 1 + max_retries turns.  outcome TRANSIENT: ask again after retry_after_s
 * (>= 0; < 0 or NaN: the backoff's delay), bounded by the deadline; anything
 * else stops with RESIL_STOP_PERMANENT.  `error` is kept as the last error.
 * The budget is not charged (nothing was called).  Runs before_sleep (with
 * info.refusal set) when it answers a retry; never after_attempt.  Never
 * blocks. */
RESIL_EXPORT void resil_retry_state_refused(resil_retry_decision *out, resil_retry_state *st,
                                            resil_outcome outcome, int error,
                                            double retry_after_s);

/* Marks the retry cancelled (for event loops that watch the token's fd
 * themselves): the next feed answers CANCELLED.  Prefer
 * resil_retry_state_cancel_now, which also gives the decision. */
RESIL_EXPORT void resil_retry_state_cancel(resil_retry_state *st);

/* Cancels the retry and fills *out with its final decision at once, so that
 * an event loop cancelling during a back-off needs no further feed: stop
 * with CANCELLED, or the stop already answered (a retry that ended keeps
 * its reason).  Later feeds answer the same stop.  No hook runs. */
RESIL_EXPORT void resil_retry_state_cancel_now(resil_retry_decision *out, resil_retry_state *st);

/* Refusals fed so far. */
RESIL_EXPORT int resil_retry_state_refusals(const resil_retry_state *st);

/* Attempts fed so far. */
RESIL_EXPORT int resil_retry_state_attempts(const resil_retry_state *st);

/* Seconds since init, or -1 when time is not measured. */
RESIL_EXPORT double resil_retry_state_elapsed(const resil_retry_state *st);

/* ---- the blocking loop --------------------------------------------------- */

/* What the op sees and reports for one attempt. */
typedef struct resil_retry_call {
    int attempt;          /* in: 1-based attempt number */
    const char *name;     /* in: the retry's name */
    int error;            /* out: the error of a failed attempt (optional) */
    double retry_after_s; /* out: a retry-after hint in seconds; preset to -1
                             (no hint) before each attempt */
    /* out, for the gate (opts->gate; ignored without one): */
    resil_gate_verdict verdict; /* how this attempt counts; preset to AUTO */
    double duration_s;    /* the attempt's own duration in seconds; preset to
                             -1 (the retry's measure, or the gate's) */
} resil_retry_call;

/* One attempt.  Returns its outcome and may set call->error and
 * call->retry_after_s. */
typedef resil_outcome (*resil_retry_op)(resil_retry_call *call, void *arg);

/* What a retry did. */
typedef struct resil_retry_result {
    int attempts;             /* attempts made */
    resil_stop_reason reason; /* why it stopped */
    resil_outcome last_outcome;
    int last_error;           /* the last attempt's call->error */
    double total_delay_s;     /* sum of the sleeps */
    double elapsed_s;         /* wall time spent; -1 when not measured (no
                                 deadline and no opts->measure_time) */
} resil_retry_result;

/* Counts a named retry whose first attempt succeeded through the inline fast
 * path of resil_retry into the default metrics registry
 * (resil_retry_calls_total{kind="successful_without_retry"} and
 * resil_retry_attempts_total{result="success"}); a no-op when metrics are off
 * (RESIL_METRICS_ENABLED=false) or name is NULL.  resil_retry calls it; other
 * callers need not. */
RESIL_EXPORT void resil_retry_note_success(const char *name);

/* Runs op up to 1 + config->max_retries times, sleeping the backoff delay
 * between attempts, until it succeeds, fails permanently, the deadline would
 * be crossed, the budget refuses, or `opts->cancel` fires (which wakes a
 * sleep at once; the token is also checked before every attempt).  The
 * deadline is checked again right before each sleep, after the hooks ran.  name (may be NULL) is passed to the op and the hooks.
 * config NULL means RESIL_RETRY_TRANSIENT; opts and result may be NULL.
 * Returns 0 on success; otherwise resil_stop_reason_error(reason)
 * (RESIL_EEXHAUSTED, RESIL_EDEADLINE, RESIL_EPERMANENT, RESIL_ECANCELED,
 * RESIL_EBUDGET) with the op's own error in result->last_error; RESIL_EINVAL
 * for a bad config, a NULL op or an opts version newer than the library's
 * (op not called; the details in opts->err when given).  With opts->gate,
 * every attempt asks the gate first (see "the gate" above): a refused
 * attempt is not an attempt, and the retry's last error is the gate's.
 *
 * Hot path: this is a C99/C11 inline function, so that a first attempt that
 * succeeds costs a few nanoseconds over calling op directly; it allocates
 * nothing, draws no random number and reads no clock unless a deadline or
 * measure_time asks for time; a named retry is counted in the metrics
 * (the name's cell in this thread's block is cached per thread: a pointer
 * and byte compare, then one add, with no call; pass a NULL name for none).
 * libresil also exports it as an ordinary function (for function pointers
 * and other languages); define
 * RESIL_NO_INLINE_FAST_PATH before including to always call that one.  The
 * inline body and the private layout it reads are in resil/retry_inline.h
 * (see docs/abi.md). */
#include "resil/retry_inline.h"

#ifdef __cplusplus
}
#endif
#endif /* RESIL_RETRY_H */
