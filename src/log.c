/* src/log.c - the log callback (see resil/common.h and internal/log.h).
 *
 * The callback and its arg change together under a rwlock: resil__log holds
 * it shared while it calls the callback, resil_set_log exclusively while it
 * swaps them, so that when resil_set_log returns the old callback is neither
 * running nor about to run.  Until a callback is first set, resil__log goes
 * straight to the default without the lock.  The lock is taken around
 * fork() (the fork hook, lowest order) so a child never inherits it held. */
#define _GNU_SOURCE
#include "internal/log.h"

#include "internal/fork.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static resil_log_fn log_fn; /* NULL: the default; guarded by lock */
static void *log_arg;
static atomic_bool custom;  /* a callback was set at least once */
static _Thread_local bool in_callback;

static void fork_prepare(void)
{
    pthread_rwlock_wrlock(&lock);
}

static void fork_release(void)
{
    pthread_rwlock_unlock(&lock);
}

void resil_log_stderr(int level, const char *message, void *arg)
{
    (void)arg;
    if (level > RESIL_LOG_WARN || !message)
        return;
    char line[1100];
    int n = snprintf(line, sizeof line, "resil: %s\n", message);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (len > 0 && line[len - 1] != '\n')
        line[len - 1] = '\n';
    /* One write, so that lines of several threads do not interleave.  Not
       through resil__sys: a fault injected into file writes is not meant for
       the log, and a failure here has nowhere to go. */
    int saved = errno;
    while (write(STDERR_FILENO, line, len) < 0 && errno == EINTR) {
    }
    errno = saved;
}

void resil_set_log(resil_log_fn fn, void *arg)
{
    resil__fork_hook(RESIL__FORK_LOG, fork_prepare, fork_release, fork_release);
    pthread_rwlock_wrlock(&lock);
    log_fn = fn;
    log_arg = fn ? arg : NULL;
    atomic_store(&custom, true);
    pthread_rwlock_unlock(&lock);
}

void resil__log(int level, const char *fmt, ...)
{
    char msg[1024];
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        snprintf(msg, sizeof msg, "(unformattable message: %s)", fmt);
    if (!atomic_load(&custom) || in_callback) {
        resil_log_stderr(level, msg, NULL);
    } else {
        pthread_rwlock_rdlock(&lock);
        if (log_fn) {
            in_callback = true;
            log_fn(level, msg, log_arg);
            in_callback = false;
        } else {
            resil_log_stderr(level, msg, NULL);
        }
        pthread_rwlock_unlock(&lock);
    }
    errno = saved;
}
