/* src/internal/files.h - what lock.c, files.c and ndjson.c share. */
#ifndef RESIL_INTERNAL_FILES_H
#define RESIL_INTERNAL_FILES_H

#include "resil/files.h"

#include <sys/stat.h>

struct resil_lock {
    int fd;             /* the sidecar, one open file description */
    resil_lock_mode mode;
    char *path;         /* "<target>.lock" */
    bool holder_died;   /* exclusive: the last holder recorded in the sidecar
                           is a dead process of this host: its temp files may
                           be lying around */
};

/* opts or the defaults (never NULL). */
const resil_file_opts *resil__file_opts(const resil_file_opts *opts);

/* Waits for an OFD lock of `type` (F_RDLCK / F_WRLCK) on the open sidecar fd
 * as resil_lock_acquire does (timeout, backoff, cancel).  lock_path is for
 * messages.  Returns 0 or an error (err filled). */
int resil__lock_wait(int fd, const char *lock_path, int type, const resil_file_opts *opts,
                     resil_error *err);

/* Unlocks the description (F_UNLCK). */
int resil__lock_unlock(int fd);

/* For a new exclusive holder: records "pid N on host H" in the sidecar (for
 * diagnostics) unless it is already there, and tells whether the previous
 * holder recorded there died (same host, pid gone): then its temp files may
 * be lying around. */
bool resil__lock_take_note(int fd);

/* This machine's host name (cached; '/' and blanks replaced by '_'). */
const char *resil__host_name(void);

/* The path a write to `path` must replace: `path` itself, or the final
 * target of a chain of symlinks (relative links resolved against the link's
 * directory).  *out is malloc()ed. */
int resil__resolve_target(char **out, const char *path, resil_error *err);

/* Resolves path (resil__resolve_target) and takes the exclusive lock of the
 * result.  On success the caller releases *lk and frees *target. */
int resil__lock_target(char **target, resil_lock **lk, const char *path,
                       const resil_file_opts *o, resil_error *err);

/* Splits a path into a malloc()ed directory ("." for none) and its last
 * component (pointing into path). */
int resil__split_path(char **dir, const char **base, const char *path);

/* Opens path (flags | O_CLOEXEC | O_NOCTTY) and checks that it is a regular
 * file; fills *st.  Returns the descriptor, or an error (err filled). */
int resil__open_regular(const char *path, int flags, struct stat *st, resil_error *err);

/* "<path>.lock", malloc()ed, or NULL. */
char *resil__lock_path_of(const char *path);

#endif
