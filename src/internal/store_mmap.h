/* src/internal/store_mmap.h - the one-machine backend of the store interface
 * (src/store_mmap.c): the state of a name lives in the memory-mapped file
 * <dir>/<enc(name)>.cb, shared by every process of the machine that opens
 * it.  What only this backend has (its lock, its file names) is here, for
 * src/store.c and for the tests; everyone else uses src/internal/store.h. */
#ifndef RESIL_INTERNAL_STORE_MMAP_H
#define RESIL_INTERNAL_STORE_MMAP_H

#include "internal/store.h"

/* The longest wait for a state file's lock (see ofd_lock): 5 s; tests may
 * shorten it (set it while no other thread is inside resil). */
extern int64_t resil__cb_lock_wait_ns;

/* Opens (or, unless attach_only, creates) <dir>/<enc(name)>.cb, validating
 * an existing record (RESIL_EPARSE with err naming the file and the defect)
 * and re-basing its times when the machine rebooted since.  now_ns and
 * wall_ns are the caller's clock.  The directory is opened once
 * (O_DIRECTORY, a symlink to it followed only under the protected-symlinks
 * rule), checked through that fd and the file opened relative to it
 * (O_NOFOLLOW; created O_EXCL with cfg's mode).  -EPERM for a directory or
 * file that is not private without cfg->trust_shared (with it, the store is
 * guarded).  With attach_only, a file the caller may read but not write is
 * read into a private copy (a readonly store). */
int resil__store_open_file_cfg(resil__store **out, const char *dir, const char *name,
                               bool attach_only, const resil__store_cfg *cfg, int64_t now_ns,
                               int64_t wall_ns, resil_error *err);

/* resil__store_open_file_cfg with the default cfg (private, 0700 / 0600). */
int resil__store_open_file(resil__store **out, const char *dir, const char *name,
                           bool attach_only, int64_t now_ns, int64_t wall_ns, resil_error *err);

/* The backend's lock (ops->lock): takes the store's exclusive lock (threads
 * and processes, an OFD lock through resil__lock_wait_with in whole_file
 * mode), then checks the state file's size (fstat): a file that shrank is
 * sized back and its record reinitialised (a reset, counted in
 * resil__store_mmap_shrink_resets) before anything touches the mapping; then
 * repairs the record when a previous holder died mid-update.  Returns 0,
 * -EACCES for a readonly store, RESIL_ETIMEDOUT, or -errno. */
int resil__store_lock(resil__store *s);

/* Releases it. */
void resil__store_unlock(resil__store *s);

/* Times the state file was found shorter than the record under the lock and
 * was sized back and reinitialised. */
unsigned long resil__store_mmap_shrink_resets(const resil__store *s);

/* The state file's descriptor (for tests: the lock is on it). */
int resil__store_mmap_fd(const resil__store *s);

/* Lists the breaker state files of dir (see resil__store_list). */
int resil__store_mmap_list(const char *dir, int (*fn)(const char *name, void *arg), void *arg,
                           resil_error *err);

/* The state file's path for name in dir (malloc'd), or NULL. */
char *resil__cb_path(const char *dir, const char *name);

/* Rewrites the state file of name in dir as a fresh record, with cfg's
 * trust and modes. */
int resil__cb_reset_file(const char *dir, const char *name, const resil__store_cfg *cfg,
                         resil_error *err);

/* Reads the name of the breaker whose state file is `base` in directory
 * dirfd from the file's header, when the header is valid and that name's
 * file is `base`.  name: RESIL__CB_NAME_MAX + 1 bytes. */
bool resil__cb_read_name(char *name, int dirfd, const char *base);

/* Decodes a state file's base name ("x%2Fy.cb") into name (a buffer of
 * RESIL__CB_NAME_MAX + 1 bytes).  Returns false when it is not one. */
bool resil__cb_decode_name(char *name, const char *base);

#endif
