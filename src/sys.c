/* src/sys.c - the real entries of the syscall table (see internal/sys.h). */
#define _GNU_SOURCE
#include "internal/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

int resil__sys_fd_high(int fd)
{
    if (fd < 0 || fd > 2)
        return fd;
    int fdflags = fcntl(fd, F_GETFD);
    int cmd = fdflags >= 0 && !(fdflags & FD_CLOEXEC) ? F_DUPFD : F_DUPFD_CLOEXEC;
    int high = fcntl(fd, cmd, 3);
    int e = errno;
    /* Our file leaves the low slot; /dev/null takes it, atomically (dup2
       replaces our descriptor on the slot, which is ours until then, so
       another thread's open cannot slip in between). */
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd >= 0 && null_fd != fd) {
        dup2(null_fd, fd);
        close(null_fd);
    } else if (null_fd < 0) {
        close(fd);
    }
    if (high < 0)
        errno = e;
    return high;
}

static int sys_open(const char *path, int flags, mode_t mode)
{
    return resil__sys_fd_high(open(path, flags, mode));
}

static int sys_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    return resil__sys_fd_high(openat(dirfd, path, flags, mode));
}

static int sys_fcntl_lock(int fd, int cmd, struct flock *fl)
{
    return fcntl(fd, cmd, fl);
}

static int sys_fcntl_int(int fd, int cmd, int arg)
{
    if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && arg < 3)
        arg = 3;
    return fcntl(fd, cmd, arg);
}

static int sys_mkostemp(char *tmpl, int flags)
{
    int fd = mkostemp(tmpl, flags);
    if (fd >= 0 && fd <= 2) {
        int high = resil__sys_fd_high(fd);
        if (high < 0) {
            int e = errno;
            unlink(tmpl);
            errno = e;
        }
        return high;
    }
    return fd;
}

static int sys_pipe2(int fds[2], int flags)
{
    int p[2];
    if (pipe2(p, flags) != 0)
        return -1;
    int r = resil__sys_fd_high(p[0]), er = errno;
    int w = resil__sys_fd_high(p[1]), ew = errno;
    if (r < 0 || w < 0) {
        if (r >= 0)
            close(r);
        if (w >= 0)
            close(w);
        errno = r < 0 ? er : ew;
        return -1;
    }
    fds[0] = r;
    fds[1] = w;
    return 0;
}

/* opendir's own descriptor obeys the 0-2 rule too. */
static DIR *sys_opendir(const char *path)
{
    int fd = resil__sys_fd_high(open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd < 0)
        return NULL;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return d;
}

static int sys_eventfd(unsigned int initval, int flags)
{
    return resil__sys_fd_high(eventfd(initval, flags));
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
    .fcntl_int = sys_fcntl_int,                                                 \
    .mkdir = mkdir,                                                             \
    .mmap = mmap,                                                               \
    .munmap = munmap,                                                           \
    .opendir = sys_opendir,                                                     \
    .fdopendir = fdopendir,                                                     \
    .readdir = readdir,                                                         \
    .closedir = closedir,                                                       \
    .fchown = fchown,                                                           \
    .faccessat = faccessat,                                                     \
    .mkostemp = sys_mkostemp,                                                   \
    .pipe2 = sys_pipe2,                                                         \
    .eventfd = sys_eventfd,                                                     \
    }

static const struct resil__sys_table real_table = REAL_TABLE;

struct resil__sys_table resil__sys = REAL_TABLE;

void resil__sys_reset(void)
{
    resil__sys = real_table;
}
