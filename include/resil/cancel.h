/* resil/cancel.h - cancellation tokens.
 *
 * A token that, once cancelled, wakes every wait that watches it at once:
 * resil's own sleeps (retry back-off, lock polling) and any event loop that
 * polls resil_cancel_fd().  Cancellation is one-way until resil_cancel_reset.
 *
 * Thread and signal safety: resil_cancel_cancel() and
 * resil_cancel_is_cancelled() may be called from any thread and from a signal
 * handler (they are lock-free and async-signal-safe).  resil_cancel_wait()
 * may be called by many threads at once.  resil_cancel_new/free/reset must not
 * race with other calls on the same token.
 */
#ifndef RESIL_CANCEL_H
#define RESIL_CANCEL_H

#include "resil/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct resil_cancel resil_cancel;

/* Creates a token, not cancelled.  *out receives a new token that the caller
 * owns and releases with resil_cancel_free.  Returns 0, -ENOMEM, or -errno
 * when the kernel refuses an eventfd (-EMFILE ...). */
RESIL_EXPORT int resil_cancel_new(resil_cancel **out);

/* Releases a token.  NULL is ignored.  No other thread may still use it. */
RESIL_EXPORT void resil_cancel_free(resil_cancel *c);

/* Cancels: sets the flag and wakes all waiters.  Idempotent.
 * Async-signal-safe; NULL is ignored. */
RESIL_EXPORT void resil_cancel_cancel(resil_cancel *c);

/* True once resil_cancel_cancel() was called (and not reset).  NULL: false.
 * Async-signal-safe. */
RESIL_EXPORT bool resil_cancel_is_cancelled(const resil_cancel *c);

/* Back to "not cancelled".  Must not race with waiters or cancellers. */
RESIL_EXPORT void resil_cancel_reset(resil_cancel *c);

/* A file descriptor that polls readable (POLLIN) once the token is cancelled,
 * for event loops.  Owned by the token: do not read from it or close it. */
RESIL_EXPORT int resil_cancel_fd(const resil_cancel *c);

/* Sleeps for timeout_ns nanoseconds of the monotonic clock, or until the token
 * is cancelled, whichever comes first.  c may be NULL (a plain sleep that
 * restarts after signals).  timeout_ns <= 0 only checks the token.
 * Returns 0 when the time elapsed, RESIL_ECANCELED when cancelled (also when
 * it already was on entry). */
RESIL_EXPORT int resil_cancel_wait(resil_cancel *c, int64_t timeout_ns);

#ifdef __cplusplus
}
#endif
#endif /* RESIL_CANCEL_H */
