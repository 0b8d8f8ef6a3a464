/* src/sys.c - the real entries of the syscall table (see internal/sys.h). */
#define _GNU_SOURCE
#include "internal/sys.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static int sys_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags, mode);
}

static int sys_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    return openat(dirfd, path, flags, mode);
}

static int sys_fcntl_lock(int fd, int cmd, struct flock *fl)
{
    return fcntl(fd, cmd, fl);
}

#define REAL_TABLE \
    {                                                                           \
    .open = sys_open,                                                           \
    .openat = sys_openat,                                                       \
    .close = close,                                                             \
    .read = read,                                                               \
    .write = write,                                                             \
    .pwrite = pwrite,                                                           \
    .pread = pread,                                                             \
    .lseek = lseek,                                                             \
    .fsync = fsync,                                                             \
    .fdatasync = fdatasync,                                                     \
    .ftruncate = ftruncate,                                                     \
    .fstat = fstat,                                                             \
    .lstat = lstat,                                                             \
    .fstatat = fstatat,                                                         \
    .fchmod = fchmod,                                                           \
    .readlink = readlink,                                                       \
    .rename = rename,                                                           \
    .renameat = renameat,                                                       \
    .unlinkat = unlinkat,                                                       \
    .unlink = unlink,                                                           \
    .fcntl_lock = sys_fcntl_lock,                                               \
    .ppoll = ppoll,                                                             \
    }

static const struct resil__sys_table real_table = REAL_TABLE;

struct resil__sys_table resil__sys = REAL_TABLE;

void resil__sys_reset(void)
{
    resil__sys = real_table;
}
