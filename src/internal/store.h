/* src/internal/store.h - where shared state lives: the store interface.
 *
 * A store holds the state of one named object (a breaker today; the retry
 * budget next) and is reached only through the operations of its backend
 * (struct resil__store_ops): open by name, read, compare-and-apply a
 * transition, add a batch of counter deltas, take and return a lease (the
 * half-open trial permits), list, close.  Callers (src/breaker.c) never ask
 * which backend they run on; docs/store.md says what a backend must
 * guarantee.  Backends:
 *   - local (src/store_local.c): malloc'd memory and a mutex, one process;
 *   - mmap (src/store_mmap.c, src/internal/store_mmap.h): a MAP_SHARED
 *     mapping of <dir>/<name>.cb, locked by a mutex (threads) plus an OFD
 *     write lock on the file (processes; the kernel drops it when a holder
 *     dies), shared by the processes of one machine;
 *   - a network backend (Redis, later) plugs in beside them.
 *
 * The state is one fixed-layout record (struct resil__cb_state) made only of
 * fixed-size integers and C11 lock-free atomics, so that it means the same in
 * every process that maps it.  A backend that keeps such a record in this
 * process's memory says so (RESIL__STORE_CAP_RECORD) and gives it in
 * resil__store.st: the closed-state fast path then reads its atomics and bumps
 * this thread's counter stripe directly, with no call, no lock and no clock
 * read.  A backend that cannot (Redis) leaves st NULL, and its callers use the
 * operations for everything (a slower path, but the same behaviour).
 *
 * Lock-free readers and the fast path rely on a mapped state file keeping
 * its size, that is on nobody but its owner (and root) being able to
 * truncate it.  That is why the directory and the file must be private
 * (0700 / 0600, owned by the caller or root) unless the caller opts in to
 * trust others; an opted-in (guarded) store gives no record (st NULL), and
 * each of its operations takes the lock, and so checks the file's size,
 * before touching the mapping.  Under the lock the size is always checked
 * (fstat) before the mapping is used.  Resil itself never shrinks a state
 * file.  Everything that changes more than one field does so under the lock,
 * with `dirty` set for the duration, so the next holder can repair what a
 * killed holder left half done.  Whatever a file holds, indexes into the
 * ring and the lease slots are bounded before use, so a scribbled file
 * cannot make a process write outside the record.
 */
#ifndef RESIL_INTERNAL_STORE_H
#define RESIL_INTERNAL_STORE_H

#include <pthread.h>
#include <sys/types.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "resil/common.h"

/* ---- the record ------------------------------------------------------------ */

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

/* Processes share these atomics through a file: they must be lock-free (and
 * so address-free) on this platform. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2,
               "resil's shared breaker state needs lock-free 32- and 64-bit atomics");

/* The state word: state in the low 8 bits, the epoch above. */
#define RESIL__CB_STATE(w) ((int)((w)&0xffu))
#define RESIL__CB_EPOCH(w) ((w) >> 8)
/* The state values are resil_breaker_state's; the record knows only CLOSED. */
#define RESIL__CB_CLOSED 0

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

/* ---- the interface ---------------------------------------------------------- */

typedef struct resil__store resil__store;
typedef struct resil__store_ops resil__store_ops;

/* What a backend can do (resil__store.caps). */
enum {
    /* st points at the record in this process's memory: lock-free readers
     * and the closed-state fast path may use its atomics directly */
    RESIL__STORE_CAP_RECORD = 1u,
    /* other processes see the same state (mmap, Redis) */
    RESIL__STORE_CAP_SHARED = 2u,
    /* the state outlives the processes that use it */
    RESIL__STORE_CAP_PERSISTENT = 4u
};

/* Positive results of the operations (errors are negative). */
#define RESIL__STORE_CONFLICT 1 /* compare failed: the state word moved */
#define RESIL__STORE_BUSY 2     /* lease_take: every slot is held */
/* apply's `expect` when any state word will do. */
#define RESIL__STORE_ANY UINT64_MAX

/* What read fills, beyond the scalars it always reads. */
enum { RESIL__VIEW_COUNTS = 1u, RESIL__VIEW_LEASES = 2u };

/* A copy of the state, as read gives it (field by field: lock-free readers
 * may see the fields of two moments).  The arrays are filled only when asked
 * for (their contents are unspecified otherwise). */
typedef struct resil__store_view {
    uint64_t word; /* state (low 8 bits) and epoch */
    int64_t consecutive_failures;
    int64_t open_until_ns;    /* monotonic */
    int64_t open_duration_ns;
    int64_t cfg_recovery_ns;
    int32_t open_streak;
    int32_t cfg_failure_threshold;
    int32_t window_size, window_count, window_failures, window_slow;
    /* RESIL__VIEW_COUNTS: successful, failed, ignored, not_permitted (sums,
     * clamped to INT64_MAX) */
    int64_t counts[4];
    /* RESIL__VIEW_LEASES: every slot's expiry (0: free; monotonic) */
    int64_t lease_expires[RESIL__CB_SLOTS];
} resil__store_view;

/* A batch of counter deltas (each >= 0), added to this thread's share. */
typedef struct resil__store_delta {
    int64_t successful, failed, ignored, not_permitted;
} resil__store_delta;

/* A half-open trial lease. */
typedef struct resil__store_lease {
    uint32_t slot; /* 0-based */
    uint32_t gen;  /* the slot's generation when taken */
    uint64_t word; /* the state word it was taken under */
} resil__store_lease;

/* A transition: runs on the record while the backend holds it atomically
 * (under its lock; a backend without a record on a private copy that it
 * commits all or nothing, retrying on a conflict).  It may therefore run
 * more than once for one apply: it must set, not accumulate, what it
 * reports through arg, and have no other effects.  Returns 0 to commit, or a
 * negative code (nothing it wrote is then promised to be kept or undone:
 * return errors before writing). */
typedef int (*resil__store_apply_fn)(struct resil__cb_state *rec, void *arg);

struct resil__store_ops {
    const char *kind; /* "local", "mmap", ... */
    /* Fills *out (the scalars, plus what `what` asks for).  Lock-free where
     * the backend has a record, except a guarded store, which takes its
     * lock first.  Returns 0 or -errno / RESIL_ETIMEDOUT (*out zeroed). */
    int (*read)(resil__store *s, unsigned what, resil__store_view *out);
    /* Compare-and-apply: atomically, when the state word is `expect` (or
     * expect is RESIL__STORE_ANY), runs fn(record, arg).  Returns fn's
     * result, RESIL__STORE_CONFLICT without running fn when the word
     * differs, or an error of the lock (-EACCES for a read-only store). */
    int (*apply)(resil__store *s, uint64_t expect, resil__store_apply_fn fn, void *arg);
    /* Adds a batch of deltas to the counters, atomically for each counter
     * (the batch as a whole need not be).  Returns 0 or an error. */
    int (*add)(resil__store *s, const resil__store_delta *d);
    /* Takes a lease: atomically, when the state word is `expect`, the first
     * of slots 0..max-1 that is free or expired (expiry <= now_ns) gets a new
     * generation and the expiry now_ns + lease_ns.  Returns 0 (*out filled),
     * RESIL__STORE_CONFLICT, RESIL__STORE_BUSY, or an error. */
    int (*lease_take)(resil__store *s, uint64_t expect, int max, int64_t now_ns,
                      int64_t lease_ns, resil__store_lease *out);
    /* Returns a lease: atomically, when it is still live (same generation,
     * expiry > now_ns) it is freed, then, when fn is not NULL and the state
     * word is still the lease's, fn(record, arg) runs (the outcome of the
     * trial, in the same atomic step), and 1 is returned (or fn's negative
     * result).  An expired or replaced lease gives 0 and changes nothing.
     * Or an error of the lock. */
    int (*lease_return)(resil__store *s, const resil__store_lease *l, int64_t now_ns,
                        resil__store_apply_fn fn, void *arg);
    /* Unmaps or frees the state and closes the store (the state itself stays
     * where it lives). */
    void (*close)(resil__store *s);

    /* For backends with a record only (NULL otherwise): the exclusive lock
     * the shared record operations (src/store_record.c) take.  lock returns
     * 0, -EACCES for a read-only store, or -errno / RESIL_ETIMEDOUT. */
    int (*lock)(resil__store *s);
    void (*unlock)(resil__store *s);
};

/* The part every backend's store starts with (backends embed it first). */
struct resil__store {
    const resil__store_ops *ops;
    /* the record, for the fast path: set only with RESIL__STORE_CAP_RECORD
     * and when not guarded (the record may still be reached through the
     * operations otherwise) */
    struct resil__cb_state *st;
    struct resil__cb_state *rec; /* the backend's own record (NULL: none) */
    unsigned caps;
    /* every access goes through the operations, which lock first */
    bool guarded;
    /* a copy of state the caller may read but not change: apply, add and
     * the leases fail with -EACCES */
    bool readonly;
    char *path; /* where the state lives, for messages (NULL: in memory) */
    char name[RESIL__CB_NAME_MAX + 1];
};

/* How a store treats its place (the mmap backend's directory and file). */
typedef struct resil__store_cfg {
    /* opted in (state_trust SHARED): a directory that others may write or
     * that another user owns, and a state file of another user or that
     * others may write, are used (and the store is guarded); otherwise they
     * are refused with -EPERM */
    bool trust_shared;
    mode_t dir_mode;  /* a created directory's mode (0: 0700), umask ignored */
    mode_t file_mode; /* a created state file's mode (0: 0600), umask ignored */
} resil__store_cfg;

/* Where to open a store: the backend follows from it (a directory: mmap;
 * none: local). */
typedef struct resil__store_spec {
    const char *name;
    const char *dir;  /* NULL: process-local */
    bool attach_only; /* an existing state only (-ENOENT otherwise) */
    bool guard_every_call; /* lock (and check) before every access */
    resil__store_cfg cfg;
    int64_t now_ns, wall_ns; /* the caller's clock, to re-base times */
} resil__store_spec;

/* Opens (or creates) the state named spec->name.  Returns 0 and *out, or
 * -ENOMEM, -ENOENT (attach_only), -EPERM (trust), RESIL_EPARSE (a corrupt
 * state), -errno; err describes it. */
int resil__store_open(resil__store **out, const resil__store_spec *spec, resil_error *err);

/* Calls fn with every state's name in dir (sorted) until fn returns non-zero,
 * which is returned.  0, or -errno (err names dir). */
int resil__store_list(const char *dir, int (*fn)(const char *name, void *arg), void *arg,
                      resil_error *err);

/* Rewrites the state of name in dir as fresh, whatever it held. */
int resil__store_reset(const char *dir, const char *name, const resil__store_cfg *cfg,
                       resil_error *err);

/* Reads RESIL_STATE_DIR_TRUST: unset or empty or "private": *shared false;
 * "shared": true.  Another value: RESIL_EINVAL, err naming the variable and
 * its value (and *shared false). */
int resil__cb_trust_from_env(bool *shared, resil_error *err);

static inline void resil__store_close(resil__store *s)
{
    if (s)
        s->ops->close(s);
}

/* ---- backends with a record (src/store_record.c) ------------------------------- */

/* Fills a fresh CLOSED record for `name` (header included). */
void resil__cb_state_init(struct resil__cb_state *st, const char *name);

/* Checks a record's header and values.  Returns NULL when sane, else a
 * static description of the first defect. */
const char *resil__cb_state_check(const struct resil__cb_state *st);

/* Makes a record consistent after a holder died mid-update: impossible values
 * are reset, the window's counts recomputed from the ring. */
void resil__cb_state_repair(struct resil__cb_state *st);

/* This machine's boot id (cached), or "" when unknown. */
void resil__store_boot_id(char *out, size_t n);

/* The operations over a record, for backends that have one (they take
 * s->ops->lock / unlock). */
int resil__rec_read(resil__store *s, unsigned what, resil__store_view *out);
int resil__rec_apply(resil__store *s, uint64_t expect, resil__store_apply_fn fn, void *arg);
int resil__rec_add(resil__store *s, const resil__store_delta *d);
int resil__rec_lease_take(resil__store *s, uint64_t expect, int max, int64_t now_ns,
                          int64_t lease_ns, resil__store_lease *out);
int resil__rec_lease_return(resil__store *s, const resil__store_lease *l, int64_t now_ns,
                            resil__store_apply_fn fn, void *arg);

/* This thread's counter stripe, 1-based (0: not dealt yet). */
extern _Thread_local unsigned resil__store_stripe_tls
#if defined(__GNUC__)
    __attribute__((tls_model("initial-exec")))
#endif
    ;
unsigned resil__store_stripe_first(void);

/* This thread's stripe of a record (threads are dealt stripes in turn). */
static inline struct resil__cb_stripe *resil__rec_stripe(struct resil__cb_state *st)
{
    unsigned i = resil__store_stripe_tls;
    if (__builtin_expect(i == 0, 0))
        i = resil__store_stripe_first();
    return &st->stripes[i - 1];
}

/* The local backend (src/store_local.c): a fresh record for `name`.
 * Returns 0 or -ENOMEM. */
int resil__store_open_local(resil__store **out, const char *name);

#endif
