/* resil/metrics_dir.h - metrics that outlive a process: node_exporter
 * textfiles and metrics directories (a flush appends what a registry
 * gained to <dir>/metrics.ndjson; a load sums every record into a new
 * registry).
 *
 * This is an exporter over the metrics registry (resil/metrics.h) and the
 * files module (resil/files.h): the registry itself never touches files.
 * resil/resil.h includes this header.
 *
 * Thread safety: every function here is thread-safe.  Process safety: any
 * number of processes may flush into one directory at once (each record is
 * one whole NDJSON append under the files module's lock) and load it while
 * they do.
 */
#ifndef RESIL_METRICS_DIR_H
#define RESIL_METRICS_DIR_H

#include <stdbool.h>
#include <stddef.h>

#include "resil/common.h"
#include "resil/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- textfiles ------------------------------------------------------------------------ */

/* Writes the Prometheus text of r (resil_metrics_export, so after running
 * its collectors) atomically to <dir>/<name>.prom for
 * node_exporter's textfile collector (through resil_write_file_atomic, so a
 * scrape never sees a torn file).  Returns 0 or an error of the files module
 * (err names the file). */
RESIL_EXPORT int resil_metrics_write_textfile(resil_metrics_registry *r, const char *dir,
                                              const char *name, resil_error *err);

/* ---- metrics directories --------------------------------------------------------------- */

/* How resil_metrics_flush_dir_opts treats its directory.  Start from
 * RESIL_METRICS_DIR_OPTS_INIT; zero means default. */
typedef struct resil_metrics_dir_opts {
    bool allow_shared;  /* trust a directory that another user (not root) owns
                           or that its group or others may write, and files in
                           it that another user owns; default false (such a
                           directory is refused: another user could plant
                           links or records in it) */
    unsigned dir_mode;  /* mode of a directory the flush creates; 0: 0700 */
    unsigned file_mode; /* mode of metrics.ndjson when created; 0: 0600 (its
                           lock sidecar gets rw for the same classes) */
} resil_metrics_dir_opts;

#define RESIL_METRICS_DIR_OPTS_INIT {false, 0, 0}

/* Runs r's collectors, then appends to <dir>/metrics.ndjson one record
 * holding what r's counters and histograms gained since the last flush of
 * r to a directory, and the current value of its gauges: a whole record or
 * nothing (the files module's NDJSON appends), so a process killed at any
 * point loses only what it recorded after its last flush.  Short-lived
 * processes flush when they have something to say and before they exit.
 * A flush whose append fails drops what it held from the directory (it is
 * never written twice).  After fork(), a child's flushes carry only what the
 * child records (what it inherited is its parent's to flush).
 *
 * The directory is created (opts->dir_mode, 0700) when missing.  Unless
 * opts->allow_shared it must be owned by the caller or root and writable by
 * nobody else (-EPERM otherwise, err says why and how to opt in); a
 * directory given as a symlink is followed only under the kernel's
 * protected_symlinks rule (-EACCES).  metrics.ndjson and its lock sidecar
 * are created with O_NOFOLLOW (opts->file_mode, 0600) and must be regular
 * files of the caller's: a symlink there is refused (-ELOOP), never
 * followed.  opts NULL: the defaults, with allow_shared taken from the
 * environment variable RESIL_METRICS_DIR_SHARED (1/true/yes/on; a bad value
 * is RESIL_EINVAL naming it).
 * Returns 0 or an error of the files module.  Thread-safe. */
RESIL_EXPORT int resil_metrics_flush_dir_opts(resil_metrics_registry *r, const char *dir,
                                              const resil_metrics_dir_opts *opts,
                                              resil_error *err);

/* resil_metrics_flush_dir_opts with opts NULL. */
RESIL_EXPORT int resil_metrics_flush_dir(resil_metrics_registry *r, const char *dir,
                                         resil_error *err);

/* What resil_metrics_load_dir_stats read. */
typedef struct resil_metrics_dir_stats {
    size_t records;        /* records summed */
    size_t bad_records;    /* records skipped: not JSON, not a metrics record, or
                              in conflict with the records before them */
    size_t first_bad_line; /* the line of the first skipped one, 0 if none */
    char first_bad[640];   /* "PATH:LINE: what is wrong" of the first, "" if none */
} resil_metrics_dir_stats;

/* Reads <dir>/metrics.ndjson and sums every record into a new registry *out
 * (the caller frees it): counters and histograms summed, gauges the last
 * value.  A torn last record (a writer killed mid-append) is skipped.  A bad
 * record is skipped whole (nothing of it is summed), counted in
 * stats->bad_records and named in stats->first_bad (file and line), and the
 * registry then also holds the counter resil_metrics_dir_bad_records_total
 * (absent when every record was read): one bad record never hides the
 * others.  stats may be NULL.  Returns 0, -ENOENT (no metrics in dir),
 * -errno (the file cannot be read; err names it), -ENOMEM. */
RESIL_EXPORT int resil_metrics_load_dir_stats(resil_metrics_registry **out, const char *dir,
                                              resil_metrics_dir_stats *stats, resil_error *err);

/* resil_metrics_load_dir_stats with stats NULL. */
RESIL_EXPORT int resil_metrics_load_dir(resil_metrics_registry **out, const char *dir,
                                        resil_error *err);

#ifdef __cplusplus
}
#endif
#endif /* RESIL_METRICS_DIR_H */
