/* resil/escalation.h - escalation to the Run Master: retry, escalate, wait
 * (bounded), continue.
 *
 * When an operation keeps failing, resil does not block and does not fail
 * silently: it escalates to the Run Master, the supervisor of the pipeline
 * run (a program, an agent or a person), which decides what happens next:
 *   RETRY  grant more attempts (optionally with another retry config);
 *   SKIP   continue without the result, with a default value (degraded);
 *   ABORT  stop this step with an error the caller sees;
 *   WAIT   ask again after a delay;
 *   HUMAN  a person must look; meanwhile continue with the default or abort,
 *          as the caller's human policy says.  Only an operation marked
 *          safety-critical waits for the person, without a timeout (and
 *          visibly: pending in the channel, the resil_escalations_pending
 *          gauge, a log line at the start and every minute).
 *
 * The pieces, from the bottom up:
 *   resil_escalation        what is escalated (the request);
 *   resil_decision          what was decided, by whom, why, when, for which
 *                           request;
 *   resil_escalation_handler one way to get a decision: a callback, the rule
 *                           handler (a policy file), the channel handler (a
 *                           Run Master in another process), the logging
 *                           handler (an NDJSON log; never decides);
 *   resil_escalation_ladder handlers chosen by cause, each with its time;
 *                           the next one is asked when one gives no answer
 *                           in its time;
 *   resil_escalation_channel the cross-process Run Master channel:
 *                           requests appended to <dir>/escalations.ndjson,
 *                           decisions to <dir>/decisions.ndjson (by another
 *                           process, `resil escalation decide`, or `resil
 *                           escalation master`), behind a small backend
 *                           interface (a Redis backend plugs in later);
 *   resil_retry_with_run_master / resil_retry_and_continue  the loop.
 *
 * Every escalation and decision is counted in the default metrics registry
 * (resil_escalations_total{name,cause,intervention},
 * resil_escalation_wait_seconds{name}, resil_escalations_pending{name}) and
 * logged through the library's log callback (resil_set_log).
 *
 * Thread safety: a resil_escalation_ladder and a resil_escalation_policy are
 * immutable once built and may be used by any number of threads at once.  A
 * resil_escalation_channel may be used by any number of threads at once.
 * resil_decision and resil_run_master_result values belong to their caller.
 * Process safety: the channel's files are shared by any number of processes
 * on one machine (appends under the files module's locks; exactly one of
 * several racing deciders wins).
 */
#ifndef RESIL_ESCALATION_H
#define RESIL_ESCALATION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "resil/cancel.h"
#include "resil/clock.h"
#include "resil/common.h"
#include "resil/files.h"
#include "resil/retry.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- names ---------------------------------------------------------------- */

/* What the Run Master decided.  NONE is "no answer" (a handler that passes);
 * it is never the outcome of a ladder. */
typedef enum resil_intervention_type {
    RESIL_INTERVENTION_NONE = 0,
    RESIL_INTERVENTION_RETRY,
    RESIL_INTERVENTION_SKIP,
    RESIL_INTERVENTION_ABORT,
    RESIL_INTERVENTION_WAIT,
    RESIL_INTERVENTION_HUMAN
} resil_intervention_type;

/* "none", "retry", "skip", "abort", "wait", "human" (static strings;
 * "unknown" for other values). */
RESIL_EXPORT const char *resil_intervention_name(resil_intervention_type type);

/* The intervention named `name` (case-insensitive, as above).  Returns 0, or
 * RESIL_EINVAL with err listing the valid names. */
RESIL_EXPORT int resil_intervention_parse(resil_intervention_type *out, const char *name,
                                          resil_error *err);

/* Why an operation was escalated. */
typedef enum resil_escalation_cause {
    RESIL_CAUSE_NONE = 0,
    RESIL_CAUSE_EXHAUSTED,    /* every attempt failed */
    RESIL_CAUSE_DEADLINE,     /* the retry's deadline was reached */
    RESIL_CAUSE_PERMANENT,    /* the op said its failure is permanent */
    RESIL_CAUSE_BUDGET,       /* the retry budget refused a retry */
    RESIL_CAUSE_CIRCUIT_OPEN, /* a circuit breaker refused the attempts */
    RESIL_CAUSE_OSCILLATION,  /* a rework loop (resil/oscillation.h) */
    RESIL_CAUSE__COUNT
} resil_escalation_cause;

/* A set of causes for the ladder and the rules: RESIL_CAUSE_BIT(c) for each;
 * 0 means every cause. */
#define RESIL_CAUSE_BIT(c) (1u << (unsigned)(c))
#define RESIL_CAUSES_ANY 0u

/* "none", "exhausted", "deadline", "permanent", "budget", "circuit_open",
 * "oscillation" (static; "unknown" otherwise). */
RESIL_EXPORT const char *resil_escalation_cause_name(resil_escalation_cause cause);

/* The cause named `name` (case-insensitive; "circuit-open" is accepted for
 * "circuit_open").  Returns 0, or RESIL_EINVAL with err listing the names. */
RESIL_EXPORT int resil_escalation_cause_parse(resil_escalation_cause *out, const char *name,
                                              resil_error *err);

/* The cause of a retry that stopped without success: CIRCUIT_OPEN when the
 * last error is RESIL_ECIRCUIT_OPEN (a gate refused), otherwise from the
 * stop reason (EXHAUSTED, DEADLINE, PERMANENT, BUDGET); NONE for a success,
 * a cancellation or a retry that has not stopped. */
RESIL_EXPORT resil_escalation_cause resil_escalation_cause_of(const resil_retry_result *result);

/* What HUMAN means for the step while the person has not answered. */
typedef enum resil_human_policy {
    RESIL_HUMAN_ABORT = 0,   /* the default: stop the step (RESIL_EABORTED) */
    RESIL_HUMAN_CONTINUE     /* continue with the default value (degraded) */
} resil_human_policy;

/* ---- the request and the decision ----------------------------------------- */

/* The longest id, with its NUL: ids are "esc-" and 16 hex digits, or
 * given by the caller (at most 63 bytes of [A-Za-z0-9._:-]). */
#define RESIL_ESCALATION_ID_MAX 64

/* One escalation: what a handler sees.  Every pointer is borrowed and valid
 * during the call that receives it. */
typedef struct resil_escalation {
    char id[RESIL_ESCALATION_ID_MAX]; /* unique; set by the loop (or by the
                                         channel's post when empty) */
    const char *name;         /* the operation's name (never NULL in what
                                 the loop passes; "" when it had none) */
    resil_escalation_cause cause;
    resil_stop_reason reason; /* why the last retry stopped */
    int attempts;             /* attempts made so far, every round included */
    int escalation;           /* 1 for the first escalation of this call */
    double elapsed_s;         /* since the call started */
    int last_error;           /* the last attempt's error code (0 if none) */
    const char *last_message; /* what it said, or NULL */
    const json_t *context;    /* the caller's context (an object), or NULL */
    bool safety_critical;
    int64_t created_ns;       /* wall clock (ns since the epoch) */
    double timeout_s;         /* how long the asker waits for an answer;
                                 < 0: without limit (safety-critical) */
    const char *key;          /* the step's idempotency key (a restarted
                                 step finds its earlier request), or NULL */
} resil_escalation;

/* A decision.  Owns its strings and its default value: release with
 * resil_decision_clear.  Start from RESIL_DECISION_INIT (all zero). */
typedef struct resil_decision {
    resil_intervention_type type;
    int attempts;             /* RETRY: attempts granted (0: the config's own
                                 1 + max_retries) */
    bool has_config;          /* RETRY: use `config` instead of the call's */
    resil_retry_config config;
    double delay_s;           /* WAIT: ask again after this; RETRY: wait
                                 this long before the first granted attempt */
    json_t *default_value;    /* SKIP / HUMAN (continue): the value to go on
                                 with (a reference the decision owns), or
                                 NULL: the caller's default */
    bool has_human_policy;    /* HUMAN: `human` overrides the caller's policy */
    resil_human_policy human;
    char *decided_by;         /* who: "rules:FILE:LINE", "callback", "timeout",
                                 "user@host" ... (malloc'ed, may be NULL) */
    char *reason;             /* why (malloc'ed, may be NULL) */
    int64_t time_ns;          /* when (wall clock) */
    char request_id[RESIL_ESCALATION_ID_MAX]; /* the request it answers */
} resil_decision;

#ifdef __cplusplus
static inline resil_decision resil__decision_init(void)
{
    resil_decision d = {};
    return d;
}
#define RESIL_DECISION_INIT resil__decision_init()
#else
#define RESIL_DECISION_INIT {.type = RESIL_INTERVENTION_NONE}
#endif

/* Frees what *d owns and resets it to RESIL_DECISION_INIT (NULL ignored). */
RESIL_EXPORT void resil_decision_clear(resil_decision *d);

/* Copies src into *dst (which must hold nothing: cleared or INIT): strings
 * are duplicated, the default value's reference count is incremented.
 * Returns 0 or -ENOMEM (dst then INIT). */
RESIL_EXPORT int resil_decision_copy(resil_decision *dst, const resil_decision *src);

/* Sets who decided and why (copies both; either may be NULL).  Returns 0 or
 * -ENOMEM. */
RESIL_EXPORT int resil_decision_set_text(resil_decision *d, const char *decided_by,
                                         const char *reason);

/* ---- JSON: the channel's wire format -------------------------------------- */

/* The request as a channel record (a new reference, NULL on -ENOMEM):
 * {"type":"request","id","key","name","cause","reason","attempts",
 *  "escalation","elapsed_s","error","message","context","safety_critical",
 *  "created","timeout_s","deadline","pid","host","uid"}; created and
 * deadline (created + timeout_s; absent without a limit) are RFC 3339 UTC
 * with milliseconds; absent members are omitted. */
RESIL_EXPORT json_t *resil_escalation_to_json(const resil_escalation *esc);

/* The decision as a channel record (a new reference, NULL on -ENOMEM):
 * {"type":"decision","id","intervention","attempts","config","delay_s",
 *  "default","human","decided_by","reason","time"}. */
RESIL_EXPORT json_t *resil_decision_to_json(const resil_decision *d);

/* Reads a decision from a record (as above; "type" and "id" optional, so a
 * rule's decision part reads the same way; "intervention" may also be given
 * as "decide").  "config" is a preset name ("external") or an object of
 * resil_retry_config's members (max_retries, base_delay_s, max_delay_s,
 * exponential_base, jitter, jitter_kind "full"|"equal"|"decorrelated",
 * max_elapsed_s), optionally with "preset" as its base; it is validated.
 * Unknown members are refused.  *out must hold nothing; on error it holds
 * nothing and err->path names the member ("attempts", "config.base_delay_s")
 * and err->message says what is wrong.  Returns 0, RESIL_EINVAL or -ENOMEM. */
RESIL_EXPORT int resil_decision_from_json(resil_decision *out, const json_t *record,
                                          resil_error *err);

/* ---- handlers ------------------------------------------------------------- */

/* What a handler is given besides the escalation. */
typedef struct resil_handler_ctx {
    double timeout_s;         /* its time to answer (< 0: without limit) */
    int64_t deadline_ns;      /* the same as a monotonic instant of `clock`
                                 (INT64_MAX: none) */
    const resil_clock *clock; /* never NULL */
    resil_cancel *cancel;     /* may be NULL */
} resil_handler_ctx;

/* One way to get a decision.  decide fills *out (which holds nothing) and
 * returns:
 *   0 with out->type != NONE   an answer;
 *   0 with out->type == NONE   no answer: the ladder asks the next handler;
 *   RESIL_ETIMEDOUT            no answer in its time: the next handler;
 *   RESIL_ECANCELED            cancelled: the ladder stops;
 *   another negative code      it failed: logged, the next handler.
 * A handler should answer within ctx->timeout_s; an answer given after it
 * is discarded (and counted as a timeout).
 * on_decision (may be NULL) is told the ladder's final decision, whichever
 * handler gave it (the logging handler writes it down).
 * free (may be NULL) releases arg when the ladder (or whoever owns the
 * handler) is freed. */
typedef struct resil_escalation_handler {
    const char *name; /* for logs and decided_by (borrowed, static or owned by arg) */
    int (*decide)(void *arg, const resil_escalation *esc, const resil_handler_ctx *ctx,
                  resil_decision *out);
    void (*on_decision)(void *arg, const resil_escalation *esc, const resil_decision *d);
    void (*free)(void *arg);
    void *arg;
} resil_escalation_handler;

/* A callback that decides (the callback handler's function): fill *out and
 * return 0 (type NONE: no answer), or a negative code. */
typedef int (*resil_escalation_fn)(const resil_escalation *esc, resil_decision *out, void *arg);

/* The callback handler: decide calls fn(esc, out, arg) on the escalating
 * thread; decided_by defaults to "callback".  Fills *out. */
RESIL_EXPORT void resil_handler_callback(resil_escalation_handler *out, resil_escalation_fn fn,
                                         void *arg);

/* The logging handler: appends every escalation ({"type":"escalation",...}
 * as resil_escalation_to_json, with "type" "escalation") and the final
 * decision ({"type":"decision",...}) to the NDJSON log at `path` (through
 * resil_append_ndjson_safe with fopts, which may be NULL; created 0600 unless
 * fopts->mode says otherwise); never decides.  A failed append is logged
 * (resil_set_log), never fatal.  *out owns a copy of path (its free releases
 * it).  Returns 0, RESIL_EINVAL (NULL path) or -ENOMEM. */
RESIL_EXPORT int resil_handler_log(resil_escalation_handler *out, const char *path,
                                   const resil_file_opts *fopts, resil_error *err);

/* Releases what a handler owns (calls its free; NULL and a handler without
 * free are ignored).  Only for handlers not given to a ladder. */
RESIL_EXPORT void resil_escalation_handler_free(resil_escalation_handler *h);

/* ---- the ladder ------------------------------------------------------------ */

typedef struct resil_escalation_ladder resil_escalation_ladder;

/* A new, empty ladder (no handler: every escalation gets the caller's
 * default decision).  Returns 0 or -ENOMEM. */
RESIL_EXPORT int resil_escalation_ladder_new(resil_escalation_ladder **out);

/* Frees the ladder and every handler it owns (NULL ignored). */
RESIL_EXPORT void resil_escalation_ladder_free(resil_escalation_ladder *l);

/* Adds handler h at the end of the ladder, for the causes in `causes`
 * (RESIL_CAUSE_BIT(c) | ...; RESIL_CAUSES_ANY: all), with `timeout_s` to
 * answer (0: 30 s; < 0: without limit, only honoured for safety-critical
 * escalations, otherwise 30 s).  The ladder takes ownership of h (also on
 * failure: h is freed then).  Not to be called while the ladder is in use.
 * Returns 0, RESIL_EINVAL (no decide function, NaN timeout) or -ENOMEM. */
RESIL_EXPORT int resil_escalation_ladder_add(resil_escalation_ladder *l, unsigned causes,
                                             double timeout_s, resil_escalation_handler h);

/* Asks the handlers for esc->cause in order until one answers; each gets its
 * own time (bounded by `budget_s` in total, < 0: none).  Every handler's
 * on_decision is then told the decision.  Returns 0 with *out filled (the
 * answer; out->decided_by names the handler when the handler did not),
 * 1 when no handler answered (*out holds nothing: apply your default), or
 * RESIL_ECANCELED.  clock NULL: the system clock. */
RESIL_EXPORT int resil_escalation_ladder_decide(const resil_escalation_ladder *l,
                                                const resil_escalation *esc, double budget_s,
                                                const resil_clock *clock, resil_cancel *cancel,
                                                resil_decision *out);

/* Tells every handler's on_decision about d (the ladder_decide above does it
 * itself; for a default decision that no handler gave). */
RESIL_EXPORT void resil_escalation_ladder_notify(const resil_escalation_ladder *l,
                                                 const resil_escalation *esc,
                                                 const resil_decision *d);

/* ---- the rule handler -------------------------------------------------------- */

/* A policy: rules read from a YAML or JSON file:
 *   rules:
 *     - match: "fetch_*"          # glob (fnmatch) on the operation name;
 *                                 # a list of globs; omitted: every name
 *       cause: deadline           # a cause or a list; omitted: every cause
 *       decide: retry             # the intervention
 *       attempts: 2               # and the rest of a decision (see
 *       config: external          # resil_decision_from_json)
 *       reason: "slow upstream"
 *     - match: "*"
 *       decide: skip
 *       default: {"items": []}
 * The first rule that matches gives the decision (decided_by
 * "rules:FILE:LINE" of the rule).  Unknown members, bad values and a rule
 * without "decide" are refused on load with FILE:LINE:COLUMN of the value
 * (err->path the file, err->line/column). */
typedef struct resil_escalation_policy resil_escalation_policy;

/* Loads a policy file (".json": JSON; otherwise YAML, a superset).  Returns
 * 0 and a new policy in *out, RESIL_EPARSE / RESIL_EINVAL with FILE:LINE in
 * err, or the errors of resil_read_file. */
RESIL_EXPORT int resil_escalation_policy_load(resil_escalation_policy **out, const char *path,
                                              resil_error *err);

/* The same from text in memory; name (may be NULL) stands for the file in
 * messages; json true: parse as JSON. */
RESIL_EXPORT int resil_escalation_policy_parse(resil_escalation_policy **out, const char *text,
                                               size_t len, const char *name, bool json,
                                               resil_error *err);

RESIL_EXPORT void resil_escalation_policy_free(resil_escalation_policy *p);

/* The number of rules. */
RESIL_EXPORT size_t resil_escalation_policy_rules(const resil_escalation_policy *p);

/* The first rule matching esc: returns 1 and fills *out (which holds
 * nothing), 0 when none matches, -ENOMEM. */
RESIL_EXPORT int resil_escalation_policy_match(const resil_escalation_policy *p,
                                               const resil_escalation *esc, resil_decision *out);

/* The rule handler over p (borrowed unless `own`: then the handler frees
 * it).  Answers at once, or passes when no rule matches. */
RESIL_EXPORT void resil_handler_rules(resil_escalation_handler *out, resil_escalation_policy *p,
                                      bool own);

/* ---- the Run Master channel ---------------------------------------------------- */

typedef struct resil_escalation_channel resil_escalation_channel;

#define RESIL_CHANNEL_OPTS_VERSION 1

/* How the channel wakes a waiter when a decision arrives. */
typedef enum resil_channel_wake {
    RESIL_CHANNEL_WAKE_AUTO = 0, /* inotify, polling where it is not available */
    RESIL_CHANNEL_WAKE_INOTIFY,  /* inotify only (open fails without it) */
    RESIL_CHANNEL_WAKE_POLL      /* polling only */
} resil_channel_wake;

typedef struct resil_channel_opts {
    unsigned version;          /* RESIL_CHANNEL_OPTS_VERSION (0 means 1) */
    resil_channel_wake wake;
    double poll_interval_s;    /* polling: between looks at the files; 0: 0.05 */
    bool shared;               /* a directory shared by a group: accept a
                                  group-writable directory (and create files
                                  0660, the directory 0770); otherwise it must
                                  be owned by the caller (or root) and
                                  writable by nobody else, and files are 0600 */
    double lock_timeout_s;     /* the files' locks; 0: 10 s */
    const resil_clock *clock;  /* timestamps and polling; NULL: system */
} resil_channel_opts;

#ifdef __cplusplus
static inline resil_channel_opts resil__channel_opts_init(void)
{
    resil_channel_opts o = {};
    o.version = RESIL_CHANNEL_OPTS_VERSION;
    return o;
}
#define RESIL_CHANNEL_OPTS_INIT resil__channel_opts_init()
#else
#define RESIL_CHANNEL_OPTS_INIT {.version = RESIL_CHANNEL_OPTS_VERSION}
#endif

/* Opens the file channel in directory `dir` (created 0700, or 0770 when
 * shared, if missing; its parent must exist).  A directory (or file in it)
 * that another user owns or may write is refused (-EPERM, err says what and
 * how to opt in) unless opts->shared.  Returns 0 and a new channel, or
 * -errno / RESIL_EINVAL with err naming the path. */
RESIL_EXPORT int resil_escalation_channel_open_dir(resil_escalation_channel **out, const char *dir,
                                                   const resil_channel_opts *opts,
                                                   resil_error *err);

/* Closes a channel (NULL ignored).  No call may still use it. */
RESIL_EXPORT void resil_escalation_channel_close(resil_escalation_channel *ch);

/* A description of the channel for messages ("dir /path"; borrowed). */
RESIL_EXPORT const char *resil_escalation_channel_describe(const resil_escalation_channel *ch);

/* Files the request esc (its id: esc->id, or a new one when empty, written
 * to id_out, RESIL_ESCALATION_ID_MAX bytes, may be NULL).  With esc->key,
 * a request of the same key that is still open and whose asker died (or is
 * this process) is adopted instead: id_out gets its id and the result is 1
 * (already decided or not: wait for it).  Returns 0 (posted), 1 (adopted),
 * RESIL_EINVAL (a bad id or a duplicate), or the files' errors. */
RESIL_EXPORT int resil_escalation_post(resil_escalation_channel *ch, const resil_escalation *esc,
                                       char *id_out, resil_error *err);

/* A HUMAN decision does not close a request: it says a person must look,
 * and leaves the request open for one more, final decision (status "human"
 * in list); any other decision closes it. */

/* wait: return only a final decision (not HUMAN). */
#define RESIL_WAIT_FINAL 1u

/* Waits for the decision on request `id`: up to timeout_s (< 0: without
 * limit), waking as soon as a decision is written (inotify; polling as the
 * fallback), at once on cancel.  The answer is the request's latest
 * decision (with RESIL_WAIT_FINAL in flags: its final one; a HUMAN decision
 * is passed over).  Returns 0 with *out (which must hold nothing) filled,
 * RESIL_ETIMEDOUT, RESIL_ECANCELED, RESIL_ENOTFOUND (no such request), or
 * the files' errors.  A withdrawn request gives RESIL_EDECIDED. */
RESIL_EXPORT int resil_escalation_wait(resil_escalation_channel *ch, const char *id,
                                       unsigned flags, double timeout_s, resil_cancel *cancel,
                                       resil_decision *out, resil_error *err);

/* Writes decision d for request `id` (d->request_id is ignored), unless it
 * was already closed (decided other than HUMAN, or withdrawn; a second
 * HUMAN is refused too): of several deciders racing on one id exactly one
 * wins.  Returns 0, RESIL_ENOTFOUND (no such request), RESIL_EDECIDED
 * (already decided or withdrawn: err says by whom and when), RESIL_EINVAL
 * (type NONE), or the files' errors. */
RESIL_EXPORT int resil_escalation_decide(resil_escalation_channel *ch, const char *id,
                                         const resil_decision *d, resil_error *err);

/* Closes request `id` without a decision (its asker stopped waiting: a
 * timeout, a cancel, or a decision from another handler), unless a decision
 * won the race: then returns 1 and fills *won (may be NULL; must hold
 * nothing).  Returns 0 (withdrawn), 1, RESIL_ENOTFOUND, RESIL_EDECIDED
 * (withdrawn before), or the files' errors. */
RESIL_EXPORT int resil_escalation_withdraw(resil_escalation_channel *ch, const char *id,
                                           const char *reason, resil_decision *won,
                                           resil_error *err);

/* What the channel holds, as an array of request objects (a new reference):
 * each is the request record plus "status" ("pending", "human" (a HUMAN
 * decision, waiting for a person's final one), "decided" or "withdrawn"), "asker_alive" (false when its process is gone, on this
 * machine), and "decision" (the decision or withdrawal record) when not
 * pending (the latest).  pending_only: only "pending" and "human".  Malformed lines are
 * skipped; *bad (may be NULL) receives their number and each is reported
 * through on_bad (may be NULL) with its file and line. */
typedef void (*resil_channel_bad_fn)(const char *file, size_t line, const char *message,
                                     void *arg);
RESIL_EXPORT int resil_escalation_list(resil_escalation_channel *ch, json_t **out,
                                       bool pending_only, size_t *bad,
                                       resil_channel_bad_fn on_bad, void *arg, resil_error *err);

/* One request as list gives it, or RESIL_ENOTFOUND. */
RESIL_EXPORT int resil_escalation_get(resil_escalation_channel *ch, const char *id, json_t **out,
                                      resil_error *err);

/* A position in the channel's files, for followers (watch, master).  Zero
 * (RESIL_CHANNEL_CURSOR_INIT) is the beginning. */
typedef struct resil_channel_cursor {
    uint64_t pos[4];
} resil_channel_cursor;
#define RESIL_CHANNEL_CURSOR_INIT {{0, 0, 0, 0}}

/* Called for each record after the cursor, in order: the record (borrowed),
 * its kind ("request", "decision" or "withdrawn").  Non-zero stops (and is
 * returned). */
typedef int (*resil_channel_record_fn)(const json_t *record, const char *kind, void *arg);

/* Delivers the records written after *cur (and moves it), waiting up to
 * timeout_s (< 0: without limit; 0: no wait) for at least one; wakes as
 * wait does.  Returns 0 (records delivered, or none in time: *delivered
 * (may be NULL) says how many), RESIL_ECANCELED, fn's non-zero value, or
 * the files' errors.  Malformed lines as in list. */
RESIL_EXPORT int resil_escalation_follow(resil_escalation_channel *ch, resil_channel_cursor *cur,
                                         double timeout_s, resil_cancel *cancel,
                                         resil_channel_record_fn fn, void *arg,
                                         size_t *delivered, resil_channel_bad_fn on_bad,
                                         void *bad_arg, resil_error *err);

/* The channel handler: posts the escalation to ch (borrowed: it must
 * outlive the handler) and waits for its decision within the handler's
 * time; on a timeout or a cancel it withdraws the request (unless a
 * decision won the race: that decision is the answer).  Fills *out. */
RESIL_EXPORT void resil_handler_channel(resil_escalation_handler *out,
                                        resil_escalation_channel *ch);

/* ---- the loop --------------------------------------------------------------- */

#define RESIL_RUN_MASTER_OPTS_VERSION 1

typedef struct resil_run_master_opts {
    unsigned version;               /* RESIL_RUN_MASTER_OPTS_VERSION (0 means 1) */
    const resil_retry_opts *retry;  /* each round's retry options (clock,
                                       cancel, budget, gate, hooks); NULL:
                                       defaults.  Its clock and cancel are the
                                       loop's too */
    const resil_escalation_ladder *ladder; /* NULL: no handler (every
                                       escalation gets on_no_answer) */
    int max_escalations;            /* escalations per call; 0: 5; after the
                                       last, on_no_answer... is not asked:
                                       the call ends ABORTED (LIMIT) */
    double deadline_s;              /* the whole call, every round and wait
                                       included; 0: none */
    resil_intervention_type on_no_answer; /* when no handler answers (a
                                       timeout): ABORT (default, 0 means it),
                                       SKIP or RETRY (grants `no_answer_attempts`) */
    int no_answer_attempts;         /* RETRY on no answer: attempts (0: the
                                       config's) */
    const json_t *default_value;    /* SKIP / HUMAN continue: the value when
                                       the decision gives none (borrowed) */
    resil_human_policy human;       /* HUMAN: ABORT (default) or CONTINUE */
    bool safety_critical;           /* HUMAN waits for the person (see top) */
    resil_escalation_channel *human_channel; /* safety-critical HUMAN: where
                                       the person answers (the request stays
                                       open there); NULL: none (the human
                                       policy applies, and an error is
                                       logged) */
    const json_t *context;          /* given to handlers (borrowed) */
    const char *key;                /* the step's idempotency key, or NULL */
    const char *message;            /* the last error's text for handlers,
                                       or NULL */
    resil_error *err;               /* RESIL_EINVAL details (borrowed) */
} resil_run_master_opts;

#ifdef __cplusplus
static inline resil_run_master_opts resil__run_master_opts_init(void)
{
    resil_run_master_opts o = {};
    o.version = RESIL_RUN_MASTER_OPTS_VERSION;
    return o;
}
#define RESIL_RUN_MASTER_OPTS_INIT resil__run_master_opts_init()
#else
#define RESIL_RUN_MASTER_OPTS_INIT {.version = RESIL_RUN_MASTER_OPTS_VERSION}
#endif

/* How a call ended. */
typedef enum resil_run_outcome {
    RESIL_RUN_SUCCEEDED = 0, /* an attempt succeeded */
    RESIL_RUN_SKIPPED,       /* continued with the default (degraded) */
    RESIL_RUN_ABORTED,       /* stopped: the Run Master said so, HUMAN with
                                the abort policy, a timeout with on_no_answer
                                ABORT, the escalation limit or the deadline */
    RESIL_RUN_CANCELLED      /* the cancel token fired */
} resil_run_outcome;

/* "succeeded", "skipped", "aborted", "cancelled". */
RESIL_EXPORT const char *resil_run_outcome_name(resil_run_outcome o);

/* One escalation of a call and what came of it. */
typedef struct resil_run_master_step {
    resil_escalation_cause cause;
    int attempts;              /* attempts made before it (all rounds) */
    char id[RESIL_ESCALATION_ID_MAX];
    resil_decision decision;   /* owned by the result */
    bool no_answer;            /* no handler answered: the default was used */
    double wait_s;             /* time spent waiting for the decision */
} resil_run_master_step;

typedef struct resil_run_master_result {
    resil_run_outcome outcome;
    bool degraded;             /* SKIPPED, or HUMAN continued with the default */
    bool needs_human;          /* a HUMAN decision is still unanswered */
    json_t *value;             /* degraded: the default value (a new
                                  reference, may be NULL) */
    resil_retry_result retry;  /* the last round's retry result */
    int attempts;              /* every round's attempts */
    int error;                 /* what the call returned */
    resil_run_master_step *steps; /* what was decided, in order (owned) */
    size_t n_steps;
} resil_run_master_result;

/* Releases what a result owns and zeroes it (NULL ignored). */
RESIL_EXPORT void resil_run_master_result_clear(resil_run_master_result *r);

/* Retries op (resil_retry with config, NULL: TRANSIENT, and opts->retry);
 * when the retry stops without success (not when cancelled) it escalates
 * through opts->ladder and carries out the decision: RETRY runs another
 * round (the decision's attempts and config), WAIT sleeps delay_s and
 * escalates again, SKIP ends degraded with the default, ABORT ends, HUMAN
 * ends by the human policy (safety-critical: waits for the person's
 * decision on the channel, without a timeout, and carries it out).  At most
 * max_escalations escalations and, with deadline_s, never past it: the call
 * always returns.  result (may be NULL) lists each step.
 * Returns 0 for SUCCEEDED and SKIPPED (check result->degraded),
 * RESIL_EABORTED (result->retry.last_error holds the op's last error),
 * RESIL_ECANCELED, RESIL_EINVAL (bad arguments; op not called).
 * Thread-safe (each call is independent). */
RESIL_EXPORT int resil_retry_with_run_master(resil_retry_op op, void *arg, const char *name,
                                             const resil_retry_config *config,
                                             const json_t *context,
                                             const resil_run_master_opts *opts,
                                             resil_run_master_result *result);

/* Graceful degradation: retries op with config (NULL: TRANSIENT); when the
 * retries run out it records the failure (a log line, the escalation
 * metrics with intervention "skip") and continues with default_value
 * (borrowed; result->value gets a new reference), marking the result
 * degraded.  Never silent.  Returns 0 (succeeded or degraded), RESIL_ECANCELED
 * or RESIL_EINVAL. */
RESIL_EXPORT int resil_retry_and_continue(resil_retry_op op, void *arg, const char *name,
                                          const resil_retry_config *config,
                                          const json_t *default_value,
                                          resil_run_master_result *result);

#ifdef __cplusplus
}
#endif
#endif /* RESIL_ESCALATION_H */
