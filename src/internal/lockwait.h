/* src/internal/lockwait.h - the core's lock engine (src/lockwait.c): OFD
 * locks on an open descriptor, either the whole file with plain polling (the
 * store's state files) or a sidecar's lock byte with the fair queue (the
 * files module's locks, src/lock.c), every wait with a deadline and a
 * cancel.  The sidecar's layout (holder note, temp-write marker, the NDJSON
 * writer's reserved area, queue records and lock bytes) is described at
 * the top of src/lockwait.c.  Thread- and process-safe: the state is in the
 * file and in the kernel's locks. */
#ifndef RESIL_INTERNAL_LOCKWAIT_H
#define RESIL_INTERNAL_LOCKWAIT_H

#include <stdbool.h>
#include <stdint.h>

#include "resil/cancel.h"
#include "resil/clock.h"
#include "resil/common.h"

/* How resil__lock_wait_with waits. */
typedef struct resil__lock_wait_opts {
    int type;                 /* F_RDLCK / F_WRLCK */
    bool whole_file;          /* lock the whole file with plain polling and no
                                 queue (the breaker's state files, whose holders
                                 keep the lock for microseconds); otherwise the
                                 sidecar's lock byte with the fair queue */
    int64_t timeout_ns;       /* < 0: one try only */
    const resil_clock *clock; /* NULL: the system clock */
    resil_cancel *cancel;     /* NULL: none */
    const char *lock_path;    /* for messages; NULL: no message (err untouched) */
} resil__lock_wait_opts;

/* The one lock wait: returns 0 with the lock held, RESIL_ETIMEDOUT (the
 * message names what blocks: "held shared by pid N on host H and K more",
 * "held exclusively by pid N on host H", or "holder unknown"),
 * RESIL_ECANCELED, or -errno.  A shared holder of a sidecar keeps a record
 * (and a slot byte) until resil__lock_unlock or close. */
int resil__lock_wait_with(int fd, const resil__lock_wait_opts *w, resil_error *err);

/* Unlocks everything the description holds (one F_UNLCK on the whole file). */
int resil__lock_unlock(int fd);

/* For a new exclusive holder: records "pid N on host H" in the sidecar (for
 * diagnostics) unless it is already there, and tells whether the previous
 * writer died in the middle of a temp-file write (its marker, see
 * resil__lock_temp_begin, is still set; for a sidecar of an older resil
 * without that marker: the last holder of this host is gone): then its temp
 * files may be lying around. */
bool resil__lock_take_note(int fd);

/* Sets (begin true) or clears the sidecar's "temp write in progress" marker
 * (one small pwrite; see resil__lock_temp_begin in internal/files.h). */
void resil__lock_temp_mark(int fd, bool begin);

/* This machine's host name (cached; '/' and blanks replaced by '_'). */
const char *resil__host_name(void);

#endif
