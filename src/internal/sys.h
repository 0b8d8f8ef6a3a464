/* src/internal/sys.h - the syscall table.
 *
 * Every file-system and process call resil makes goes through resil__sys, so
 * that tests can replace an entry to inject EIO, ENOSPC, EINTR, short writes
 * or a crash at any call site, and put the original back afterwards.
 * The table is process-global and not synchronised: tests swap entries while
 * no other thread is inside resil.  Not exported from the shared library.
 */
#ifndef RESIL_INTERNAL_SYS_H
#define RESIL_INTERNAL_SYS_H

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

struct resil__sys_table {
    int (*open)(const char *path, int flags, mode_t mode);
    int (*openat)(int dirfd, const char *path, int flags, mode_t mode);
    int (*close)(int fd);
    ssize_t (*read)(int fd, void *buf, size_t len);
    ssize_t (*write)(int fd, const void *buf, size_t len);
    ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
    ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
    off_t (*lseek)(int fd, off_t off, int whence);
    int (*fsync)(int fd);
    int (*fdatasync)(int fd);
    int (*ftruncate)(int fd, off_t len);
    int (*fstat)(int fd, struct stat *st);
    int (*lstat)(const char *path, struct stat *st);
    int (*fstatat)(int dirfd, const char *path, struct stat *st, int flags);
    int (*fchmod)(int fd, mode_t mode);
    ssize_t (*readlink)(const char *path, char *buf, size_t size);
    int (*rename)(const char *from, const char *to);
    int (*renameat)(int olddir, const char *from, int newdir, const char *to);
    int (*unlink)(const char *path);
    int (*unlinkat)(int dirfd, const char *path, int flags);
    int (*fcntl_lock)(int fd, int cmd, struct flock *fl);
    int (*ppoll)(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
                 const sigset_t *mask);
};

/* The live table.  Starts as the real calls; see resil__sys_reset. */
extern struct resil__sys_table resil__sys;

/* Puts every entry back to the real call. */
void resil__sys_reset(void);

#endif
