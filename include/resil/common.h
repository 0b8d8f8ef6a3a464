/* resil/common.h - export macro, version, error codes and error details.
 *
 * Every resil function that can fail returns an int: 0 on success, a negative
 * code on failure.  Failures of the operating system are returned as -errno
 * (so -ENOSPC survives unchanged); failures that are resil's own have codes
 * at or below -1000, generated from the single table RESIL_ERROR_TABLE below.
 *
 * Thread safety: everything in this header is thread-safe and
 * async-signal-safe except where noted (resil_error_set formats text and is
 * not async-signal-safe).
 */
#ifndef RESIL_COMMON_H
#define RESIL_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(RESIL_BUILDING) && defined(__GNUC__)
#define RESIL_EXPORT __attribute__((visibility("default")))
#else
#define RESIL_EXPORT
#endif

/* ---- version ------------------------------------------------------------ */

#define RESIL_VERSION_MAJOR 0
#define RESIL_VERSION_MINOR 1
#define RESIL_VERSION_PATCH 0
#define RESIL_VERSION_STRING "0.1.0"
/* One number that compares: 0xMMmmpp. */
#define RESIL_VERSION_NUMBER \
    ((RESIL_VERSION_MAJOR << 16) | (RESIL_VERSION_MINOR << 8) | RESIL_VERSION_PATCH)

/* The version of the library actually linked ("0.1.0"), which may differ
 * from RESIL_VERSION_STRING seen at compile time.  Returns a static string. */
RESIL_EXPORT const char *resil_version(void);

/* The linked library's RESIL_VERSION_NUMBER. */
RESIL_EXPORT int resil_version_number(void);

/* ---- error codes -------------------------------------------------------- */

/* X(NAME, value, message).  Values are stable ABI: never renumber, only add. */
#define RESIL_ERROR_TABLE(X)                                                        \
    X(RESIL_EINVAL, -1000, "invalid argument or configuration")                     \
    X(RESIL_ETIMEDOUT, -1001, "timed out")                                          \
    X(RESIL_ECANCELED, -1002, "cancelled")                                          \
    X(RESIL_EEXHAUSTED, -1003, "retries exhausted")                                 \
    X(RESIL_EDEADLINE, -1004, "deadline reached before the operation succeeded")    \
    X(RESIL_EPERMANENT, -1005, "permanent failure")                                 \
    X(RESIL_EBUDGET, -1006, "retry budget exhausted")                               \
    X(RESIL_ECIRCUIT_OPEN, -1007, "circuit breaker is open")                        \
    X(RESIL_EPARSE, -1008, "parse error")                                           \
    X(RESIL_EOPFAILED, -1009, "the operation failed")                               \
    X(RESIL_EDURABILITY, -1010, "replaced, but durability is unknown")             \
    X(RESIL_EABORTED, -1011, "aborted by the Run Master")                           \
    X(RESIL_EDECIDED, -1012, "already decided")                                     \
    X(RESIL_ENOTFOUND, -1013, "not found")

enum resil_error_code {
    RESIL_OK = 0,
#define RESIL__ERR_ENUM(name, value, msg) name = (value),
    RESIL_ERROR_TABLE(RESIL__ERR_ENUM)
#undef RESIL__ERR_ENUM
};

/* A human-readable description of `code`: "success" for 0, the table's
 * message for resil codes, the C library's description for -errno, and
 * "unknown error" otherwise.  Returns a static string (never NULL); thread-safe
 * (does not use strerror's shared buffer). */
RESIL_EXPORT const char *resil_strerror(int code);

/* The symbolic name of `code`: "RESIL_OK", "RESIL_ETIMEDOUT", "ENOSPC" for
 * -ENOSPC, "UNKNOWN" otherwise.  Returns a static string (never NULL). */
RESIL_EXPORT const char *resil_err_name(int code);

/* ---- error details ------------------------------------------------------ */

/* Optional, caller-owned details of a failure.  Functions that take a
 * trailing `resil_error *err` fill it on failure when err is non-NULL and
 * leave it untouched on success.  No allocation: the strings are inline and
 * truncated when too long. */
typedef struct resil_error {
    int code;          /* the code the function returned */
    int sys_errno;     /* the errno behind it, 0 if none */
    int line;          /* 1-based line in `path` (parse errors), 0 if none */
    int column;        /* 1-based column, 0 if none */
    char path[512];    /* the file or the field concerned, "" if none */
    char message[512]; /* a full sentence naming what was wrong */
} resil_error;

/* Resets *err to "no error" (all zero).  err may be NULL. */
RESIL_EXPORT void resil_error_clear(resil_error *err);

/* Fills *err (when non-NULL) with code, an optional path and a printf-style
 * message, and returns `code` so callers can write
 * `return resil_error_set(err, RESIL_EINVAL, "max_delay_s", "...")`.
 * sys_errno is set to -code when code is an -errno value.  Not
 * async-signal-safe. */
RESIL_EXPORT int resil_error_set(resil_error *err, int code, const char *path,
                                 const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* ---- log callback ------------------------------------------------------- */

/* The library never writes to stderr (or anywhere) by itself: what it has to
 * say without a caller to return it to (a bad CIRCUIT_BREAKER_DEFAULT_* or
 * RESIL_METRICS_* environment value, and the documented default used
 * instead) goes to one process-wide log callback. */
typedef enum resil_log_level {
    RESIL_LOG_ERROR = 0, /* something failed and could not be returned */
    RESIL_LOG_WARN = 1,  /* a bad setting was replaced by its default */
    RESIL_LOG_INFO = 2,
    RESIL_LOG_DEBUG = 3
} resil_log_level;

/* Receives one message: level (a resil_log_level), a full sentence without
 * a trailing newline (borrowed: valid during the call only), and the arg
 * given to resil_set_log.  May be called from any thread, also from several
 * at once; must not call resil_set_log. */
typedef void (*resil_log_fn)(int level, const char *message, void *arg);

/* Routes the library's messages to fn(level, message, arg).  fn NULL puts
 * the default back: resil_log_stderr, which writes "resil: <message>\n" to
 * stderr for RESIL_LOG_WARN and more severe, and drops INFO and DEBUG.  To
 * silence the library, pass a function that does nothing.
 * Thread-safe: may be called at any time from any thread; when it returns,
 * no call to the previous callback is running or will start, so its arg may
 * be freed.  Calling it from inside the callback is not allowed. */
RESIL_EXPORT void resil_set_log(resil_log_fn fn, void *arg);

/* The default callback (arg ignored): one write(2) of "resil: <message>\n"
 * to fd 2 for RESIL_LOG_ERROR and RESIL_LOG_WARN; INFO and DEBUG are
 * dropped.  Exported so that a callback can filter and then pass on. */
RESIL_EXPORT void resil_log_stderr(int level, const char *message, void *arg);

#ifdef __cplusplus
}
#endif
#endif /* RESIL_COMMON_H */
