/* src/trust.c - the rules for links, directories and files that another user
 * may have planted (see internal/trust.h). */
#define _GNU_SOURCE
#include "internal/trust.h"
#include "internal/sys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int resil__symlink_check(const char *link, const struct stat *lst, resil_error *err)
{
    const char *slash = strrchr(link, '/');
    char *dir = !slash ? strdup(".") : slash == link ? strdup("/")
                                                     : strndup(link, (size_t)(slash - link));
    if (!dir)
        return resil_error_set(err, -ENOMEM, link, "out of memory");
    struct stat dst;
    int rc = 0;
    if (resil__sys.fstatat(AT_FDCWD, dir, &dst, 0) != 0) {
        rc = resil_error_set(err, -errno, link, "cannot stat the directory %s of the symlink %s: %s",
                             dir, link, strerror(errno));
    } else if ((dst.st_mode & S_ISVTX) && (dst.st_mode & S_IWOTH) && lst->st_uid != geteuid() &&
               lst->st_uid != dst.st_uid) {
        rc = resil_error_set(err, -EACCES, link,
                             "refusing to follow the symlink %s: it is owned by uid %ld in the "
                             "sticky world-writable directory %s (owned by uid %ld), and only "
                             "links of the caller or of the directory's owner are followed there",
                             link, (long)lst->st_uid, dir, (long)dst.st_uid);
    }
    free(dir);
    return rc;
}

int resil__dir_check_private(const char *dir, const struct stat *st, bool allow_shared,
                             resil_error *err)
{
    if (allow_shared)
        return 0;
    uid_t me = geteuid();
    if (st->st_uid != me && st->st_uid != 0)
        return resil_error_set(err, -EPERM, dir,
                               "refusing the directory %s: it is owned by uid %ld, not by the "
                               "caller (uid %ld) or root; opt in to trust it",
                               dir, (long)st->st_uid, (long)me);
    if (st->st_mode & (S_IWGRP | S_IWOTH))
        return resil_error_set(err, -EPERM, dir,
                               "refusing the directory %s: its mode %04o lets %s write to it; "
                               "make it 0700 (chmod go-w) or opt in to trust it",
                               dir, (unsigned)(st->st_mode & 07777),
                               (st->st_mode & S_IWOTH) ? "every user" : "its group");
    return 0;
}

int resil__file_check_owner(const char *path, const struct stat *st, bool allow_foreign,
                            resil_error *err)
{
    if (allow_foreign)
        return 0;
    uid_t me = geteuid();
    if (st->st_uid == me || (me != 0 && st->st_uid == 0))
        return 0;
    return resil_error_set(err, -EPERM, path,
                           "refusing %s: it is owned by uid %ld, not by the caller (uid %ld); "
                           "opt in to trust it",
                           path, (long)st->st_uid, (long)me);
}
