/* src/internal/store.h - where a breaker's state lives.
 *
 * A breaker's state is one fixed-layout record (struct resil__cb_state) made
 * only of fixed-size integers and C11 lock-free atomics, so that it means the
 * same in every process that maps it.  A store hands out that record and an
 * exclusive lock over it; the breaker does not know which store it runs on:
 *   - the local store: malloc'd memory and a mutex (one process);
 *   - the file store: a MAP_SHARED mapping of <dir>/<name>.cb, locked by a
 *     mutex (threads) plus an OFD write lock on the file (processes; the
 *     kernel drops it when a holder dies).
 * Lock-free readers and the closed-state fast path touch the atomics directly:
 * they rely on the state file keeping its size, that is on nobody but its
 * owner (and root) being able to truncate it.  That is why the directory and
 * the file must be private (0700 / 0600, owned by the caller or root) unless
 * the caller opts in to trust others; an opted-in (guarded) store takes the
 * lock, and so checks the file's size, before every access instead.  Under
 * the lock the size is always checked (fstat) before the mapping is used.
 * Resil itself never shrinks a state file.
 * everything that changes more than one field does so under the lock, with
 * `dirty` set for the duration, so the next holder can repair what a killed
 * holder left half done.  Whatever a file holds, indexes into the ring and
 * the lease slots are bounded before use, so a scribbled file cannot make a
 * process write outside the record.
 */
#ifndef RESIL_INTERNAL_STORE_H
#define RESIL_INTERNAL_STORE_H

#include <pthread.h>
#include <sys/types.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "resil/common.h"

#define RESIL__CB_MAGIC 0x3174734263734c52ULL /* "RLscBst1" little-endian */
#define RESIL__CB_VERSION 1u
#define RESIL__CB_WINDOW_MAX 10000
#define RESIL__CB_SLOTS 64
#define RESIL__CB_STRIPES 64
#define RESIL__CB_NAME_MAX 200
/* Bounds the state check enforces, so that arithmetic on values read from a
 * file stays defined: counts below 2^56 (64 stripes of them sum below 2^62),
 * times below 2^62 ns. */
#define RESIL__CB_COUNT_MAX (INT64_C(1) << 56)
#define RESIL__CB_TIME_MAX (INT64_C(1) << 62)
/* The longest wait for a state file's lock (see ofd_lock): 5 s; tests may
 * shorten it (set it while no other thread is inside resil). */
extern int64_t resil__cb_lock_wait_ns;

/* Processes share these atomics through a file: they must be lock-free (and
 * so address-free) on this platform. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2,
               "resil's shared breaker state needs lock-free 32- and 64-bit atomics");

/* The state word: state in the low 8 bits, the epoch above. */
#define RESIL__CB_STATE(w) ((int)((w)&0xffu))
#define RESIL__CB_EPOCH(w) ((w) >> 8)

/* One stripe per thread (threads are dealt stripes in turn), 128 bytes
 * apart so that neither a cache line nor an adjacent-line prefetch pair is
 * written by two threads. */
struct resil__cb_stripe {
    _Alignas(128) _Atomic int64_t successful;
    _Atomic int64_t failed;
    _Atomic int64_t ignored;
    _Atomic int64_t not_permitted;
};

struct resil__cb_slot {
    _Atomic uint32_t gen;
    uint32_t pad;
    _Atomic int64_t expires_ns; /* monotonic; 0: free */
};

struct resil__cb_state {
    /* header: written once when the record is created */
    uint64_t magic;
    uint32_t version;
    uint32_t size;
    char name[RESIL__CB_NAME_MAX + 8];
    char boot_id[48];

    /* the hot word, alone on its line: read by every call, written only by
     * transitions */
    _Alignas(64) _Atomic uint64_t word;
    /* read by every closed-state success, written by failures */
    _Alignas(64) _Atomic int64_t consecutive_failures;

    /* written under the lock only; atomics so lock-free readers are exact */
    _Alignas(64) _Atomic int64_t open_until_ns;   /* monotonic */
    _Atomic int64_t open_until_wall_ns;          /* to re-base after a reboot */
    _Atomic int64_t open_duration_ns;
    _Atomic int32_t open_streak;
    _Atomic int32_t half_open_successes;
    _Atomic int32_t dirty;          /* a holder is (or died) mid-update */
    _Atomic int32_t window_size;    /* the ring's size (0: no window) */
    _Atomic int32_t window_head;
    _Atomic int32_t window_count;
    _Atomic int32_t window_failures;
    _Atomic int32_t window_slow;
    _Atomic int32_t cfg_failure_threshold; /* the last opener's, for display */
    _Atomic int64_t cfg_recovery_ns;
    _Atomic int64_t last_change_wall_ns;

    struct resil__cb_slot slots[RESIL__CB_SLOTS];
    struct resil__cb_stripe stripes[RESIL__CB_STRIPES];
    uint8_t ring[RESIL__CB_WINDOW_MAX]; /* bit 0 failure, bit 1 slow */
};

typedef struct resil__store resil__store;

struct resil__store {
    struct resil__cb_state *st; /* the record */
    bool shared;                /* a file store */
    pthread_mutex_t mu;
    int fd;                     /* file store: the state file */
    char *path;                 /* file store: its path */
    unsigned fork_gen;          /* file store: forks seen when fd was opened */
    dev_t dev;                  /* file store: the state file's identity */
    ino_t ino;
    char name[RESIL__CB_NAME_MAX + 1]; /* the breaker's, to rewrite a header */
    /* file store opened with trust opted in on a directory or file that is
     * not private: every call takes the lock (and so checks the file's size)
     * before touching the record, instead of the lock-free paths */
    bool guarded;
    /* a copy of the record read from a file the caller may read but not
     * write (attach_only): snapshots only, resil__store_lock gives -EACCES */
    bool readonly;
    /* times the state file was found shorter than the record under the lock
     * and was sized back and reinitialised (a reset) */
    _Atomic unsigned long shrink_resets;
    /* the epoch this store last saw under the lock (a reset after a shrink
     * goes on from it: the page that held it may be gone) */
    uint64_t epoch_seen;
};

/* How a file store treats its directory and state file. */
typedef struct resil__store_cfg {
    /* opted in (state_trust SHARED): a directory that others may write or
     * that another user owns, and a state file of another user or that
     * others may write, are used (and the store is guarded); otherwise they
     * are refused with -EPERM */
    bool trust_shared;
    mode_t dir_mode;  /* a created directory's mode (0: 0700), umask ignored */
    mode_t file_mode; /* a created state file's mode (0: 0600), umask ignored */
} resil__store_cfg;

/* Reads RESIL_STATE_DIR_TRUST: unset or empty or "private": *shared false;
 * "shared": true.  Another value: RESIL_EINVAL, err naming the variable and
 * its value (and *shared false). */
int resil__cb_trust_from_env(bool *shared, resil_error *err);

/* A local store holding a fresh record for `name`.  Returns 0 or -ENOMEM. */
int resil__store_open_local(resil__store **out, const char *name);

/* Opens (or, unless attach_only, creates) <dir>/<enc(name)>.cb, validating
 * an existing record (RESIL_EPARSE with err naming the file and the defect)
 * and re-basing its times when the machine rebooted since.  now_ns and
 * wall_ns are the breaker's clock.  The directory is opened once
 * (O_DIRECTORY, a symlink to it followed only under the protected-symlinks
 * rule), checked through that fd and the file opened relative to it
 * (O_NOFOLLOW; created O_EXCL with cfg's mode).  -EPERM for a directory or
 * file that is not private without cfg->trust_shared.  With attach_only, a
 * file the caller may read but not write is read into a private copy (a
 * readonly store). */
int resil__store_open_file_cfg(resil__store **out, const char *dir, const char *name,
                               bool attach_only, const resil__store_cfg *cfg, int64_t now_ns,
                               int64_t wall_ns, resil_error *err);

/* resil__store_open_file_cfg with the default cfg (private, 0700 / 0600). */
int resil__store_open_file(resil__store **out, const char *dir, const char *name,
                           bool attach_only, int64_t now_ns, int64_t wall_ns, resil_error *err);

/* Takes the store's exclusive lock (threads and processes), then checks the
 * state file's size (fstat): a file that shrank is sized back and its record
 * reinitialised (a reset, counted in shrink_resets) before anything touches
 * the mapping; then repairs the record when a previous holder died
 * mid-update.  Returns 0, -EACCES for a readonly store, or -errno. */
int resil__store_lock(resil__store *s);

/* For a guarded store: takes and releases the lock (so a file that shrank is
 * repaired before the caller touches the mapping).  0 for other stores. */
int resil__store_guard(resil__store *s);

/* Releases it. */
void resil__store_unlock(resil__store *s);

/* Unmaps or frees the record and closes the store. */
void resil__store_close(resil__store *s);

/* Fills a fresh CLOSED record for `name` (header included). */
void resil__cb_state_init(struct resil__cb_state *st, const char *name);

/* Checks a record's header and values.  Returns NULL when sane, else a
 * static description of the first defect. */
const char *resil__cb_state_check(const struct resil__cb_state *st);

/* Makes a record consistent after a holder died mid-update: impossible values
 * are reset, the window's counts recomputed from the ring. */
void resil__cb_state_repair(struct resil__cb_state *st);

/* The state file's path for name in dir (malloc'd), or NULL. */
char *resil__cb_path(const char *dir, const char *name);

/* Rewrites the state file of name in dir as a fresh record (see
 * resil_breaker_reset_file), with cfg's trust and modes. */
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
