/* src/internal/sys.h - the syscall table.
 *
 * Every file-system and process call resil makes goes through resil__sys, so
 * that tests can replace an entry to inject EIO, ENOSPC, EINTR, short writes
 * or a crash at any call site, and put the original back afterwards.
 * The table is process-global and not synchronised: tests swap entries while
 * no other thread is inside resil.  Not exported from the shared library.
 *
 * Descriptors 0-2 (SQLite's robust_open rule): every real entry that creates
 * a descriptor (open, openat, mkostemp, pipe2, eventfd, fcntl_int with
 * F_DUPFD / F_DUPFD_CLOEXEC) never returns 0, 1 or 2.  When the kernel hands
 * out one of them (the process runs with stdin, stdout or stderr closed), the
 * descriptor is moved to the lowest free one >= 3 (keeping its close-on-exec
 * flag) and /dev/null is put on the low slot, so that a later write to
 * "stderr" by the program, or a child that inherits it, cannot land in a
 * state file, and the next open does not pay again.  Without /dev/null (a
 * bare chroot) the low slot is left closed.
 */
#ifndef RESIL_INTERNAL_SYS_H
#define RESIL_INTERNAL_SYS_H

#include <dirent.h>
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
    /* fcntl with an int argument: F_GETFL, F_SETFL, F_GETFD, F_SETFD,
       F_DUPFD_CLOEXEC (the duplicate is >= max(arg, 3)). */
    int (*fcntl_int)(int fd, int cmd, int arg);
    int (*mkdir)(const char *path, mode_t mode);
    void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd, off_t off);
    int (*munmap)(void *addr, size_t len);
    DIR *(*opendir)(const char *path);
    DIR *(*fdopendir)(int fd);
    struct dirent *(*readdir)(DIR *d); /* NULL + errno set: a failure */
    int (*closedir)(DIR *d);
    int (*fchown)(int fd, uid_t uid, gid_t gid);
    int (*faccessat)(int dirfd, const char *path, int mode, int flags);
    int (*mkostemp)(char *tmpl, int flags);
    int (*pipe2)(int fds[2], int flags);
    int (*eventfd)(unsigned int initval, int flags);
};

/* The live table.  Starts as the real calls; see resil__sys_reset. */
extern struct resil__sys_table resil__sys;

/* Puts every entry back to the real call. */
void resil__sys_reset(void);

/* The 0-2 rule above, for a descriptor that came from elsewhere (a socket):
 * returns fd itself when >= 3 or < 0, else the moved descriptor (or -1 with
 * errno set, fd closed, when it cannot be moved). */
int resil__sys_fd_high(int fd);

#endif
