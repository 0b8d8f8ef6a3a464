/* src/internal/files.h - what lock.c, files.c and ndjson.c share. */
#ifndef RESIL_INTERNAL_FILES_H
#define RESIL_INTERNAL_FILES_H

#include "resil/files.h"

#include "internal/lockwait.h"

#include <stdint.h>

#include <sys/stat.h>

struct resil_lock {
    int fd;             /* the sidecar, one open file description */
    resil_lock_mode mode;
    char *path;         /* "<target>.lock" */
    bool holder_died;   /* exclusive: a previous writer died in the middle
                           of a temp-file write (resil__lock_take_note): its
                           temp files may be lying around */
};

/* opts or the defaults (never NULL). */
const resil_file_opts *resil__file_opts(const resil_file_opts *opts);

/* 0, or RESIL_EINVAL with err set when opts (NULL is fine) has a version
 * newer than this library's RESIL_FILE_OPTS_VERSION.  Every public function
 * that takes a resil_file_opts calls it first. */
int resil__file_opts_check(const resil_file_opts *opts, resil_error *err);

/* Opens the lock sidecar "<data_path>.lock" of a data file, creating it when
 * it is missing, and returns the descriptor (O_RDWR | O_CLOEXEC; the caller
 * closes it) or a negative code with err set.
 * Rules: O_NOFOLLOW (a symlinked sidecar is refused, -ELOOP); a new sidecar
 * gets exactly resil__lock_mode_for(the data file's mode), or of opts->mode
 * when the data file does not exist and opts->mode is set, else 0600; root
 * gives it the data file's owner and group, and the sidecar's owner (or
 * root) corrects the mode of an existing one.  No read-only fallback: a
 * user who may not write the sidecar cannot lock (-EACCES, the message
 * says whether the directory or the file refused); a missing parent
 * directory is -ENOENT with "the directory D does not exist"; a sidecar
 * that is not a regular file is RESIL_EINVAL.  opts may be NULL. */
int resil__lock_open(const char *data_path, const resil_file_opts *opts, resil_error *err);

/* Waits for the lock of `type` (F_RDLCK / F_WRLCK) on the open sidecar fd as
 * resil_lock_acquire does (fair queue, timeout, cancel; opts' timeout, clock
 * and cancel), and records the wait in the metrics.  lock_path is for
 * messages.  Returns 0 or an error (err filled).  The uncontended path is
 * one F_OFD_GETLK and one F_OFD_SETLK. */
int resil__lock_wait(int fd, const char *lock_path, int type, const resil_file_opts *opts,
                     resil_error *err);

/* Around a write that makes a temp file under the exclusive lock lk: begin
 * sets the "temp write in progress" marker before the temp file is created,
 * end clears it once the temp is renamed or unlinked.  A clean release
 * leaves it clear, so the next holder does not scan the directory; a writer
 * that dies in between leaves it set.  One small pwrite each; no-ops for a
 * shared lock. */
void resil__lock_temp_begin(const resil_lock *lk);
void resil__lock_temp_end(const resil_lock *lk);

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
