/* src/internal/log.h - the library's only way to say something by itself.
 *
 * resil__log formats a message (printf-style, no trailing newline) and hands
 * it to the callback set by resil_set_log (default: resil_log_stderr).  Use
 * it only for what cannot be returned to a caller (a bad environment value
 * replaced by its default); everything else is returned.  Never
 * write to stderr directly.  Thread-safe, not async-signal-safe.  Messages
 * longer than 1023 bytes are truncated.  A message logged from inside the
 * callback (the callback called back into resil) goes to the default.
 * Not exported from the shared library. */
#ifndef RESIL_INTERNAL_LOG_H
#define RESIL_INTERNAL_LOG_H

#include "resil/common.h"

void resil__log(int level, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
