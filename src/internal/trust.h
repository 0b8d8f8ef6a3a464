/* src/internal/trust.h - what resil trusts in a directory that other users
 * may share (core layer: used by files, breaker stores and metrics
 * directories alike).
 *
 * resil resolves symlinks itself (readlink, then a reopen by path), so the
 * kernel's fs.protected_symlinks rule never applies to what it writes: these
 * checks apply that rule, and the ownership rules for state directories and
 * files, in one place. */
#ifndef RESIL_INTERNAL_TRUST_H
#define RESIL_INTERNAL_TRUST_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "resil/common.h"

/* The protected_symlinks rule: the symlink `link` (lst: its lstat) may be
 * followed unless its directory is sticky and world-writable and the link
 * is owned neither by the caller (euid) nor by the directory's owner.
 * Returns 0 when it may be followed, else -EACCES with err naming the link,
 * its owner and the directory (or -errno when the directory cannot be
 * stat()ed). */
int resil__symlink_check(const char *link, const struct stat *lst, resil_error *err);

/* A directory resil keeps private state in (breaker state, metrics
 * directories): it must be owned by the caller or by root and writable by
 * nobody else (no group or other write bit), unless allow_shared.  st: its
 * stat.  Returns 0, or -EPERM with err saying what is wrong and how to opt
 * in. */
int resil__dir_check_private(const char *dir, const struct stat *st, bool allow_shared,
                             resil_error *err);

/* A state file resil maps or trusts: it must be owned by the caller (or, for
 * a non-root caller, by root) unless allow_foreign.  Returns 0 or -EPERM with
 * err naming the file and its owner. */
int resil__file_check_owner(const char *path, const struct stat *st, bool allow_foreign,
                            resil_error *err);

/* The mode of a lock sidecar for a data file of mode data_mode: each class
 * (user, group, other) gets read and write on the sidecar only if it may
 * write the data file, so that nobody who may only read the data can hold a
 * lock that blocks its writers; the owner always gets 0600. */
static inline mode_t resil__lock_mode_for(mode_t data_mode)
{
    mode_t m = 0600;
    if (data_mode & S_IWGRP)
        m |= 0060;
    if (data_mode & S_IWOTH)
        m |= 0006;
    return m;
}

#endif
