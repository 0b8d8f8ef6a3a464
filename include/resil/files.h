/* resil/files.h - process-safe files: locks that never hang, atomic replace,
 * JSON and YAML state files, and a shared NDJSON event log.
 *
 * Guarantees, for any number of threads and processes on one machine using
 * these functions on the same paths:
 *   - a reader never sees a torn file: state files are replaced atomically
 *     (write a temp file, fsync, rename), so a reader sees the old or the new
 *     content, whole;
 *   - concurrent writers never lose an update: resil_update_*_safe holds the
 *     exclusive lock across read, modify and write;
 *   - a writer killed at any instant leaves the old or the new content, and
 *     at most a temp file that the next writer sweeps;
 *   - no lock wait is endless: every acquire has a timeout (and can be
 *     cancelled), waits are first come, first served, and a timeout names the
 *     lock file and the holder that blocks it.
 *
 * Locks live on a permanent sidecar file "<path>.lock" (created on first
 * use; never renamed or unlinked, so that every process locks the same
 * inode).  They are Linux open-file-description locks (F_OFD_SETLK): each
 * acquire opens its own description, so threads of one process exclude each
 * other too, an unrelated close() of the same file elsewhere in the process
 * does not drop the lock, and a child made by fork() does not hold it as its
 * own (release unlocks the description even if a child still has a copy).
 *
 * Thread safety: all functions are thread-safe; a resil_lock or a
 * resil_ndjson_writer belongs to one thread at a time.  Process safety: as
 * above, on local file systems (the locks are advisory: every writer must use
 * resil or flock-compatible OFD locks on the same sidecar).
 */
#ifndef RESIL_FILES_H
#define RESIL_FILES_H

#include <jansson.h>
#include <stdio.h>
#include <sys/types.h>

#include "resil/cancel.h"
#include "resil/clock.h"
#include "resil/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How hard a write insists that the data reached the disk. */
typedef enum resil_durability {
    RESIL_DURABLE_FULL = 0, /* fsync the file, rename, fsync the directory */
    RESIL_DURABLE_FILE,     /* fsync the file, rename (a crash of the machine may
                               lose the rename, never the content) */
    RESIL_DURABLE_NONE      /* no fsync: atomic against process crashes only */
} resil_durability;

/* Default limits. */
#define RESIL_FILE_DEFAULT_LOCK_TIMEOUT_S 10.0
#define RESIL_FILE_DEFAULT_MAX_SIZE ((size_t)64 << 20)

/* The newest resil_file_opts layout this header knows (see docs/abi.md). */
#define RESIL_FILE_OPTS_VERSION 1

/* Options shared by the file functions.  Start from RESIL_FILE_OPTS_INIT
 * (every function also takes NULL: all defaults) and set what you need;
 * other members keep their defaults, where zero means the default except
 * for lock_timeout_s.  Functions refuse a version newer than the library's
 * with RESIL_EINVAL ("resil_file_opts version 2 is newer than this library
 * knows (1)"); 0 is read as 1. */
typedef struct resil_file_opts {
    unsigned version;          /* RESIL_FILE_OPTS_VERSION (set by the _INIT) */
    double lock_timeout_s;     /* how long a lock waits; RESIL_FILE_OPTS_INIT
                                  and NULL opts: 10 s.  0 (or < 0): one try,
                                  no wait (RESIL_ETIMEDOUT at once when the
                                  lock is held), the same as `--timeout 0` on
                                  the command line */
    resil_durability durability;
    unsigned mode;             /* mode of a new file; 0: 0644 less the umask.
                                  An existing file keeps its own mode. */
    size_t max_size;           /* largest JSON / YAML document (and file that
                                  resil_read_file accepts), in bytes; 0: 64 MiB.
                                  Exact: max_size bytes are accepted, one more
                                  is -EFBIG, at read and at write (a write whose
                                  text would be larger is refused) */
    bool force;                /* atomic replace: replace a file the caller may
                                  not write (see resil_write_file_atomic);
                                  false (the default): refuse it */
    double stale_temp_s;       /* temp files of dead writers are swept; a temp
                                  whose writer cannot be checked is swept when
                                  older than this; 0: 3600 s */
    bool sync_each;            /* NDJSON: fdatasync after every append/batch */
    const resil_clock *clock;  /* lock polling; NULL: the system clock */
    resil_cancel *cancel;      /* wakes a lock wait at once (RESIL_ECANCELED) */
} resil_file_opts;

/* Every member, in order: usable in static initializers, and warning-free
 * in C and C++. */
#define RESIL_FILE_OPTS_INIT                                                              \
    {RESIL_FILE_OPTS_VERSION, RESIL_FILE_DEFAULT_LOCK_TIMEOUT_S, RESIL_DURABLE_FULL, 0, 0, \
     false, 0, false, NULL, NULL}

/* ---- locks ------------------------------------------------------------- */

typedef enum resil_lock_mode {
    RESIL_LOCK_SHARED = 1,   /* many holders, no exclusive one */
    RESIL_LOCK_EXCLUSIVE = 2 /* one holder */
} resil_lock_mode;

typedef struct resil_lock resil_lock;

/* Acquires the lock of `path` (the sidecar "<path>.lock", created if
 * missing with the data file's write permissions, exactly: read-write for
 * each class that may write `path`, 0600 at least, 0600 when `path` does not
 * exist; as root, owned by the data file's owner and group; `path` itself need
 * not exist).  The sidecar is always opened read-write, so a user who may only
 * read the data cannot hold a lock that blocks its writers.
 * Waits are fair: waiters queue in the sidecar first come, first served (a
 * wait shorter than 300 us is retried without queueing), with writer
 * preference (a shared request waits for exclusive ones queued before it); a
 * waiter that died is ignored and one that is stopped is passed after about
 * 20 ms.  Polls against opts->clock until opts->lock_timeout_s has passed:
 * no signals, no alarm().  An exclusive holder writes its pid and host name
 * into the sidecar, a shared holder a record, for diagnostics.
 * On success *out receives a new lock that the caller releases with
 * resil_lock_release.  Errors: RESIL_ETIMEDOUT (err->message names the lock
 * file and what blocks it: "held shared by pid 4242 on host build-7 and 2
 * more", "held exclusively by pid 17 on host h", or "holder unknown"),
 * RESIL_ECANCELED, RESIL_EINVAL (bad arguments, a sidecar that is not a
 * regular file), -errno from open (-EACCES: the directory or the sidecar may
 * not be written, even for a shared lock; -ENOENT: "the directory D does not
 * exist"; -ELOOP: the sidecar is a symlink).
 * Thread and process safe. */
RESIL_EXPORT int resil_lock_acquire(resil_lock **out, const char *path, resil_lock_mode mode,
                                    const resil_file_opts *opts, resil_error *err);

/* Releases and frees a lock (NULL is ignored).  Returns 0 or -errno from the
 * unlock (the lock is gone either way once the descriptor is closed). */
RESIL_EXPORT int resil_lock_release(resil_lock *lock);

/* The sidecar's path (owned by the lock). */
RESIL_EXPORT const char *resil_lock_path(const resil_lock *lock);

/* ---- atomic replace ----------------------------------------------------- */

/* Replaces the content of `path` with len bytes of data, atomically: under
 * the exclusive lock, writes a temp file in the same directory (O_CREAT |
 * O_EXCL | O_NOFOLLOW | O_CLOEXEC), with the existing file's mode (setuid
 * and setgid bits included) and, when the caller may set it, its owner, fsyncs it
 * (unless RESIL_DURABLE_NONE), renames it over the target and fsyncs the
 * directory (RESIL_DURABLE_FULL).  A symlink is followed: its target is
 * replaced and the link stays; but a link in a sticky world-writable
 * directory (such as /tmp) is followed only when it is owned by the caller
 * or by the directory's owner (the kernel's fs.protected_symlinks rule,
 * which resil applies itself to every link of the chain), and the end of the
 * chain is never followed again (a link swapped in later is refused).
 * Before anything is created (the lock sidecar included) the target is
 * checked: a regular file, or a missing one in an existing directory; and
 * one the caller may write as a shell redirect could (access(W_OK) for the
 * effective ids; for root, a file with at least one write bit), unless
 * opts->force.  Temp files left by crashed writers are swept under the lock.
 * Errors (the target is then untouched and no temp file is left):
 * -errno (-ENOSPC, -EIO ...), -EACCES (a refused link, or a read-only file:
 * the message names it, its mode and owner), -ENOENT (a missing directory,
 * named), RESIL_EINVAL (not a regular file: the message says what it is),
 * RESIL_ETIMEDOUT, RESIL_ECANCELED.
 * RESIL_EDURABILITY: the content WAS replaced, but the directory could not be
 * synced, so the rename may not survive a machine crash.  An fsync error is
 * never retried. */
RESIL_EXPORT int resil_write_file_atomic(const char *path, const void *data, size_t len,
                                         const resil_file_opts *opts, resil_error *err);

/* Reads a whole regular file (no lock is needed: files written by resil are
 * replaced atomically).  *out receives a new NUL-terminated buffer (free()
 * it) and *out_len its length without the NUL.  Errors: -ENOENT, -EACCES
 * ..., RESIL_EINVAL for a file that is not a regular file, -EFBIG for one
 * larger than opts->max_size (exactly: max_size bytes are read, one more is
 * refused, also when the file grows while it is read). */
RESIL_EXPORT int resil_read_file(char **out, size_t *out_len, const char *path,
                                 const resil_file_opts *opts, resil_error *err);

/* ---- JSON and YAML state files ------------------------------------------ */

/* Writes `value` (borrowed) as JSON (2-space indent, keys in insertion
 * order, a final newline) with resil_write_file_atomic.  The text is
 * jansson's except for reals, written in the shortest text that reads back
 * as the same double (0.1, not 0.10000000000000001).  Errors as there, plus
 * RESIL_EINVAL for a value that cannot be encoded (invalid UTF-8, NaN) and
 * -EFBIG when the text would be larger than opts->max_size (nothing is
 * written: resil never writes a document its readers refuse). */
RESIL_EXPORT int resil_write_json_safe(const char *path, const json_t *value,
                                       const resil_file_opts *opts, resil_error *err);

/* Reads a JSON document.  *out receives a new reference.  Parse errors:
 * RESIL_EPARSE with err->path, err->line, err->column and the parser's
 * message; an empty file (0 bytes or only whitespace: "the file is empty",
 * line 0), a UTF-8 byte order mark and NUL bytes after the document are
 * named as such.  Other errors as resil_read_file. */
RESIL_EXPORT int resil_read_json_safe(json_t **out, const char *path,
                                      const resil_file_opts *opts, resil_error *err);

/* The callback of an update: *doc is the current document (a reference the
 * callback owns; NULL when the file does not exist yet).  It may modify it
 * in place or replace it (decref the old one, store a new reference).
 * Returns 0 to write *doc back, 1 to leave the file as it is, or a negative
 * code to abort the update (returned by the update function). */
typedef int (*resil_update_fn)(json_t **doc, void *arg);

/* A locked read-modify-write: takes the exclusive lock, reads the current
 * document (a missing file, or an empty one (0 bytes or only whitespace,
 * which resil never writes): NULL), calls fn, writes the result atomically,
 * releases the lock.  N processes updating one file lose no update.
 * Errors: those of the read (a file that does not parse is NOT overwritten:
 * RESIL_EPARSE), fn's own negative code, those of the write. */
RESIL_EXPORT int resil_update_json_safe(const char *path, resil_update_fn fn, void *arg,
                                        const resil_file_opts *opts, resil_error *err);

/* The same for YAML.  YAML is read with a safe core schema (null, booleans
 * true/false, integers, floats, strings; no aliases or anchors, no custom
 * tags; a duplicate key is an error) into the same json_t values; on write,
 * strings that a YAML reader would take for something else are quoted, so
 * JSON -> YAML -> JSON gives back the same value; reals get the digits
 * JSON's writer gives them, with a signed exponent (1e+300).  A byte order
 * mark is allowed (YAML allows one); an empty file is refused by the
 * reader and taken as missing by the update, as for JSON (although a YAML
 * parser reads an empty stream as null).  Errors as for JSON. */
RESIL_EXPORT int resil_write_yaml_safe(const char *path, const json_t *value,
                                       const resil_file_opts *opts, resil_error *err);
RESIL_EXPORT int resil_read_yaml_safe(json_t **out, const char *path,
                                      const resil_file_opts *opts, resil_error *err);
RESIL_EXPORT int resil_update_yaml_safe(const char *path, resil_update_fn fn, void *arg,
                                        const resil_file_opts *opts, resil_error *err);

/* In-memory conversions used by the above (and by `resil yaml`).
 * resil_yaml_parse: *out receives a new reference; errors RESIL_EPARSE with
 * line and column (err->path is set to `name`, which may be NULL).
 * resil_yaml_dump: *out receives a new malloc()ed NUL-terminated string. */
RESIL_EXPORT int resil_yaml_parse(json_t **out, const char *text, size_t len, const char *name,
                                  resil_error *err);
RESIL_EXPORT int resil_yaml_dump(char **out, const json_t *value, resil_error *err);

/* ---- NDJSON event log ----------------------------------------------------- */

/* The longest record line (its bytes without the newline) that an append
 * accepts and a read delivers, unless opts->max_size sets another: for
 * NDJSON, max_size is this one per-line limit (the file itself may be any
 * size).  Writers and readers of one log should use the same limit. */
#define RESIL_NDJSON_DEFAULT_MAX_LINE RESIL_FILE_DEFAULT_MAX_SIZE

/* Appends `record` (borrowed; encoded compactly, one line) to the log at
 * path: under the exclusive lock, with one write() on an O_APPEND descriptor
 * (continued if the kernel writes less); after an error the file is cut back
 * to its previous size, so an acknowledged record is in the log whole, once.
 * The log is opened with O_NOFOLLOW after resolving symlinks; a link that
 * the kernel's fs.protected_symlinks rule would not follow (another user's
 * link in a sticky world-writable directory) is refused with -EACCES, and a
 * link swapped in after the resolution with -ELOOP.
 * Torn tails (bytes after the last newline):
 *   - a writer killed in the middle of a write leaves part of its
 *     (unacknowledged) record.  Only a write that crosses a 4 KiB page
 *     boundary of the file can be torn that way; such a write is announced
 *     first in bytes [256, 512) of the lock sidecar (file, offset, length,
 *     pid), so the next append (or resil_repair_ndjson) knows the tail is
 *     resil's and cuts it before anything is added;
 *   - a tail of NUL bytes only (a crash of the machine) is cut too;
 *   - any other tail (text someone wrote without a final newline) is never
 *     cut: the append writes a newline before its record, so that text is
 *     kept as a line of its own (readers report it as a bad line if it is
 *     not JSON).  Until then readers count it as torn.
 * A sidecar the writer cannot read or write leaves its writes unmarked (a
 * tear is then kept, as foreign text is).
 * fdatasync after the write when opts->sync_each; if only that fails the
 * result is RESIL_EDURABILITY: the record IS in the log (do not append it
 * again), its durability is unknown.  Errors: -errno, RESIL_ETIMEDOUT,
 * RESIL_ECANCELED, RESIL_EINVAL (a record that cannot be encoded), -EFBIG (a
 * record longer than the line limit, opts->max_size or
 * RESIL_NDJSON_DEFAULT_MAX_LINE: nothing is written). */
RESIL_EXPORT int resil_append_ndjson_safe(const char *path, const json_t *record,
                                          const resil_file_opts *opts, resil_error *err);

/* Appends n records in one write() under one lock (all or none; one record
 * over the line limit refuses the batch, naming its index). */
RESIL_EXPORT int resil_append_ndjson_batch(const char *path, const json_t *const *records,
                                           size_t n, const resil_file_opts *opts,
                                           resil_error *err);

/* A writer that keeps the log open, for many appends: the lock is taken per
 * append (so other processes interleave whole records), the descriptors are
 * not reopened; each append handles a torn tail and the line limit as
 * resil_append_ndjson_safe does.  One thread at a time.  It keeps appending
 * to the file it opened: after a log rotation (rename or unlink of the
 * path), close and reopen it.  open: *out receives a new writer (close it
 * with resil_ndjson_writer_close); errors as for resil_append_ndjson_safe. */
typedef struct resil_ndjson_writer resil_ndjson_writer;

RESIL_EXPORT int resil_ndjson_writer_open(resil_ndjson_writer **out, const char *path,
                                          const resil_file_opts *opts, resil_error *err);
RESIL_EXPORT int resil_ndjson_writer_append(resil_ndjson_writer *w, const json_t *record,
                                            resil_error *err);
/* Appends one record given as JSON text that the caller already encoded
 * (with its own serializer, or a template), without encoding or parsing it:
 * the cheapest append (the text is borrowed).  It must be one non-empty line
 * (a final newline is optional, any other newline is RESIL_EINVAL) no longer
 * than the line limit (-EFBIG); the caller vouches that it is JSON (readers
 * skip and report lines that are not). */
RESIL_EXPORT int resil_ndjson_writer_append_text(resil_ndjson_writer *w, const char *text,
                                                 size_t len, resil_error *err);

/* Flushes to disk (fdatasync) and closes; NULL is ignored. */
RESIL_EXPORT int resil_ndjson_writer_close(resil_ndjson_writer *w);

/* What a read found. */
typedef struct resil_ndjson_stats {
    size_t records;    /* records delivered */
    size_t bad_lines;  /* lines skipped: lines that did not parse, and lines
                          longer than the limit */
    size_t first_bad_line; /* line number of the first, 0 if none */
    size_t torn_bytes; /* bytes after the last newline (a torn tail) */
    size_t long_lines; /* of bad_lines, those longer than the line limit */
} resil_ndjson_stats;

/* Called for each record, in order; line is 1-based.  The record is borrowed
 * (json_incref it to keep it).  Return 0 to go on, non-zero to stop the read
 * (that value is returned). */
typedef int (*resil_ndjson_record_fn)(json_t *record, size_t line, void *arg);
/* Called for each bad line (may be NULL): its number and the parser's
 * message (for an over-long line: "line of N bytes, longer than the limit
 * of M bytes (skipped)"). */
typedef void (*resil_ndjson_bad_fn)(size_t line, const char *message, void *arg);

/* Streams the records of an NDJSON log.  Bytes after the last newline are a
 * torn tail (a writer died mid-append, or someone wrote a line without its
 * newline): never parsed, counted in stats->torn_bytes.  Bad lines are
 * skipped and reported to on_bad; a line longer than the line limit
 * (opts->max_size, or RESIL_NDJSON_DEFAULT_MAX_LINE) is skipped without
 * being held in memory, counted in bad_lines and long_lines and reported to
 * on_bad, and the read goes on after it.  With `strict`, the first bad line
 * is an error, RESIL_EPARSE (-EFBIG for an over-long one) with its line
 * number in err->line, and so is a torn tail (RESIL_EPARSE).  Empty lines
 * are ignored.  stats may be NULL.
 * No lock is taken, except when the file ends without a newline: then the
 * reader tries the shared lock (appenders hold the exclusive one while they
 * write) and reads on, so an append in flight is not mistaken for a torn
 * tail.  A reader that cannot take that lock (a sidecar it may not open or
 * create, e.g. in a read-only directory) reads on without it. */
RESIL_EXPORT int resil_read_ndjson_safe(const char *path, resil_ndjson_record_fn on_record,
                                        resil_ndjson_bad_fn on_bad, void *arg, bool strict,
                                        resil_ndjson_stats *stats, const resil_file_opts *opts,
                                        resil_error *err);

/* Cuts a torn tail that resil left (see resil_append_ndjson_safe: a marked
 * write cut short, or NUL bytes) off the log, under the exclusive lock, and
 * fsyncs.  *cut (may be NULL) receives the number of bytes removed (0: the
 * log ends with a newline).  A tail that resil did not write is kept and
 * the result is RESIL_EPARSE, with a message saying what was found and how
 * to repair it (resil_repair_ndjson_force).  Other errors: -errno,
 * RESIL_ETIMEDOUT, RESIL_ECANCELED. */
RESIL_EXPORT int resil_repair_ndjson(const char *path, size_t *cut, const resil_file_opts *opts,
                                     resil_error *err);

/* The same, but cuts whatever follows the last newline, whoever wrote it. */
RESIL_EXPORT int resil_repair_ndjson_force(const char *path, size_t *cut,
                                           const resil_file_opts *opts, resil_error *err);

#ifdef __cplusplus
}
#endif
#endif /* RESIL_FILES_H */
