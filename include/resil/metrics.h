/* resil/metrics.h - counters, gauges and histograms, exported in the
 * Prometheus text format 0.0.4, OpenMetrics 1.0 and JSON, written as
 * node_exporter textfiles, served over HTTP, and summed across short-lived
 * processes through a metrics directory.
 *
 * Model (as Prometheus clients): a registry holds metric families; a family
 * has a name, a help text, a type and a label schema fixed at registration;
 * a child is one combination of label values, resolved once into a handle
 * (resil_counter, resil_gauge, resil_histogram).  Updating a handle is
 * lock-free and allocation-free: each child keeps one block of cells per
 * slot (blocks are cache-line apart; each thread is dealt a slot, most own
 * theirs alone), so threads do not write one cache line.  Locks are taken
 * only to register and to export.
 * Each family keeps at most max_series children; further label combinations
 * all land in one overflow child whose label values are "_overflow", and
 * resil_metrics_cardinality_overflow_total{metric=...} counts them.
 *
 * Names follow Prometheus: a metric name matches [a-zA-Z_:][a-zA-Z0-9_:]*, a
 * label name [a-zA-Z_][a-zA-Z0-9_]* and does not start with "__"; "le" is
 * reserved for histograms.  A counter's name may end in "_total"; it is
 * exported with "_total" either way (OpenMetrics family name without it).
 * Two families that would export a name in common (a counter x and a gauge
 * x_total, a histogram h and a counter h_count ...) are refused.
 *
 * Thread safety: everything here is thread-safe.  Handles live as long as
 * their registry.  Process safety: a registry is per process; see
 * resil/metrics_dir.h (resil_metrics_flush_dir) for metrics that outlive a
 * process.
 *
 * This module depends only on core: the other modules call it.  What reads
 * or writes files for metrics (textfiles, metrics directories) is
 * resil/metrics_dir.h, an exporter one layer up.
 */
#ifndef RESIL_METRICS_H
#define RESIL_METRICS_H

#include <jansson.h>

#include "resil/clock.h"
#include "resil/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct resil_metrics_registry resil_metrics_registry;
typedef struct resil_metric resil_metric; /* a family */
typedef struct resil_counter resil_counter;
typedef struct resil_gauge resil_gauge;
typedef struct resil_histogram resil_histogram;

typedef enum resil_metric_type {
    RESIL_METRIC_COUNTER = 1,
    RESIL_METRIC_GAUGE,
    RESIL_METRIC_HISTOGRAM
} resil_metric_type;

/* ---- registries ----------------------------------------------------------- */

/* The newest resil_metrics_opts layout this header knows (docs/abi.md). */
#define RESIL_METRICS_OPTS_VERSION 1

typedef struct resil_metrics_opts {
    unsigned version;  /* RESIL_METRICS_OPTS_VERSION (0 means 1; newer: RESIL_EINVAL) */
    size_t max_series; /* children per family; 0: 10000 */
} resil_metrics_opts;

/* Every member listed: a constant expression, and no warning in C++. */
#define RESIL_METRICS_OPTS_INIT {RESIL_METRICS_OPTS_VERSION, 0}

/* Creates an empty registry.  opts may be NULL.  Returns 0 (the caller owns
 * *out), -ENOMEM. */
RESIL_EXPORT int resil_metrics_registry_new(resil_metrics_registry **out,
                                            const resil_metrics_opts *opts, resil_error *err);

/* Frees a registry and every handle of it (NULL is ignored), and drops its
 * collectors (without calling them).  No thread may still use them. */
RESIL_EXPORT void resil_metrics_registry_free(resil_metrics_registry *r);

/* The process-wide registry into which resil's own modules and the
 * resil_record_* functions record.  Created on first use; never freed. */
RESIL_EXPORT resil_metrics_registry *resil_metrics_default(void);

/* ---- families --------------------------------------------------------------- */

/* Registers a counter family (or returns the one registered with the same
 * name, type, help and labels: registration is idempotent).  labels: nlabels
 * label names (may be NULL when nlabels is 0); copied.  Returns 0 and a
 * borrowed *out; RESIL_EINVAL with err naming the bad name or the conflict
 * (same name, other type or labels). */
RESIL_EXPORT int resil_metrics_counter_new(resil_metric **out, resil_metrics_registry *r,
                                           const char *name, const char *help,
                                           const char *const *labels, size_t nlabels,
                                           resil_error *err);

/* A gauge family; as resil_metrics_counter_new. */
RESIL_EXPORT int resil_metrics_gauge_new(resil_metric **out, resil_metrics_registry *r,
                                         const char *name, const char *help,
                                         const char *const *labels, size_t nlabels,
                                         resil_error *err);

/* A histogram family with upper bounds `buckets` (nbuckets strictly
 * increasing finite values; +Inf is implicit; at most 64).  buckets NULL: the
 * default seconds buckets 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
 * 5, 10.  As resil_metrics_counter_new otherwise. */
RESIL_EXPORT int resil_metrics_histogram_new(resil_metric **out, resil_metrics_registry *r,
                                             const char *name, const char *help,
                                             const char *const *labels, size_t nlabels,
                                             const double *buckets, size_t nbuckets,
                                             resil_error *err);

/* ---- children (handles) ------------------------------------------------------- */

/* Resolves the child with these label values (as many as the family has
 * labels; any bytes) into a handle, creating it on first use.  Values that
 * are not valid UTF-8 are made valid when the child is created: each byte
 * that is not part of a valid sequence becomes U+FFFD (the same values give
 * the same child, never an error), so every export and metrics directory
 * stays readable.  Help texts are made valid the same way.  Returns 0 and
 * a borrowed handle (the same for the same values), RESIL_EINVAL when the
 * family is of another type or values is NULL while labels exist, -ENOMEM.
 * Past max_series, the overflow child is returned (and counted). */
RESIL_EXPORT int resil_counter_get(resil_counter **out, resil_metric *m,
                                   const char *const *values);
RESIL_EXPORT int resil_gauge_get(resil_gauge **out, resil_metric *m, const char *const *values);
RESIL_EXPORT int resil_histogram_get(resil_histogram **out, resil_metric *m,
                                     const char *const *values);

/* Counter updates: lock-free, allocation-free.  add ignores v < 0 and NaN
 * (counters only go up).  inc is inline (see "Hot path" below). */
RESIL_EXPORT void resil_counter_add(resil_counter *c, double v);

/* Gauge updates. */
RESIL_EXPORT void resil_gauge_set(resil_gauge *g, double v);
RESIL_EXPORT void resil_gauge_add(resil_gauge *g, double v);

/* Hot path: resil_counter_inc and resil_histogram_observe (one observation;
 * NaN is ignored) are C11 inline functions: no call, no lock, no
 * allocation.  Each thread is dealt a slot on its first update: one of a
 * few blocks that it owns alone (it updates its cells with a plain load and
 * store, no atomic read-modify-write) while there is one free, and released
 * when the thread exits; threads beyond those share the remaining blocks
 * and update them with atomic adds.  Readers sum the blocks.  A signal
 * handler must not update a handle that the thread it interrupted may be
 * updating (one of the two updates could be lost), nor make a thread's
 * first update (dealing a slot is not async-signal-safe).  libresil also exports
 * both as ordinary functions (for function pointers and other languages);
 * the inline definitions need GCC or Clang in C11 or later; define
 * RESIL_NO_INLINE_FAST_PATH before including to always call the library.
 * The inline bodies, and the private layout they read, are in
 * resil/metrics_inline.h (see docs/abi.md). */
#include "resil/metrics_inline.h"

/* Current values (sums over the blocks; exact once writers are quiet). */
RESIL_EXPORT double resil_counter_value(const resil_counter *c);
RESIL_EXPORT double resil_gauge_value(const resil_gauge *g);
RESIL_EXPORT uint64_t resil_histogram_count(const resil_histogram *h);
RESIL_EXPORT double resil_histogram_sum(const resil_histogram *h);

/* ---- export ---------------------------------------------------------------------- */

typedef enum resil_metrics_format {
    RESIL_METRICS_PROMETHEUS = 0, /* text format 0.0.4 */
    RESIL_METRICS_OPENMETRICS,    /* OpenMetrics 1.0 text, ending "# EOF" */
    RESIL_METRICS_JSON            /* {"metrics":[{name,type,help,labels,series}]} */
} resil_metrics_format;

/* "text/plain; version=0.0.4; charset=utf-8",
 * "application/openmetrics-text; version=1.0.0; charset=utf-8",
 * "application/json". */
RESIL_EXPORT const char *resil_metrics_content_type(resil_metrics_format format);

/* Parses "prometheus", "openmetrics" or "json".  Returns 0 or RESIL_EINVAL. */
RESIL_EXPORT int resil_metrics_format_parse(resil_metrics_format *out, const char *name);

/* Runs r's collectors (see below), then renders every family of r (sorted
 * by name; children in creation order) in `format` into a new
 * NUL-terminated buffer *out (the caller frees it) of *len bytes (len may be
 * NULL).  Label values and help texts are escaped as each format requires;
 * histograms are cumulative with +Inf equal to _count.  Returns 0,
 * RESIL_EINVAL (out or r NULL) or -ENOMEM. */
RESIL_EXPORT int resil_metrics_export(char **out, size_t *len, resil_metrics_registry *r,
                                      resil_metrics_format format);

/* ---- collectors: values computed when they are exported --------------------------- */

/* A collector brings some of r's metrics up to date just before they are
 * read, for values that are cheaper or only possible to compute then (a
 * state shared with other processes, a queue's length...).  It typically
 * sets gauges of r (or adds to counters); it must not register or remove
 * collectors of r other than itself.  An export it makes (of r or of any
 * other registry) runs no collectors. */
typedef void (*resil_metrics_collector_fn)(resil_metrics_registry *r, void *arg);

/* How many collectors a registry holds at most. */
#define RESIL_METRICS_MAX_COLLECTORS 16

/* Adds a collector to r: fn(r, arg) then runs before every
 * resil_metrics_export, resil_metrics_to_json, resil_metrics_write_textfile
 * and resil_metrics_flush_dir of r (so also before every scrape of a
 * resil_metrics_server serving r, and resil_export_prometheus_metrics for
 * the default registry), on the thread that exports, with no lock of the
 * registry held, one after another (in no promised order: a removed
 * collector's place is reused).  Exports on two
 * threads at once may run one collector on both at once: it must be
 * thread-safe.  arg is borrowed: it must stay valid until the collector is
 * removed (or r freed).  resil's breakers add one to the default registry
 * (resil_circuitbreaker_state, see docs/metrics.md).  Returns 0, RESIL_EINVAL
 * (r or fn NULL), -EEXIST (fn with this arg already added), -ENOSPC
 * (RESIL_METRICS_MAX_COLLECTORS already), -ENOMEM.  Thread-safe. */
RESIL_EXPORT int resil_metrics_add_collector(resil_metrics_registry *r,
                                             resil_metrics_collector_fn fn, void *arg);

/* Removes the collector added with this fn and arg.  Waits for its runs on
 * other threads to end, so once it returns the collector is not running and
 * will not run again (arg may be freed); a collector may remove itself.
 * Returns 0, RESIL_EINVAL (r or fn NULL) or -ENOENT (no such collector).
 * Thread-safe. */
RESIL_EXPORT int resil_metrics_remove_collector(resil_metrics_registry *r,
                                                resil_metrics_collector_fn fn, void *arg);

/* ---- JSON snapshots, and metrics that outlive a process -------------------------- */

/* The registry as a JSON document (the RESIL_METRICS_JSON export; r's
 * collectors run first).  Returns a new reference, or NULL when out of
 * memory. */
RESIL_EXPORT json_t *resil_metrics_to_json(resil_metrics_registry *r);

/* Adds a JSON document of that shape (counters and histograms are added,
 * gauges take the document's value) into r, registering what is missing.
 * Returns 0, RESIL_EPARSE (err says where) or RESIL_EINVAL (a conflict). */
RESIL_EXPORT int resil_metrics_merge_json(resil_metrics_registry *r, const json_t *doc,
                                          resil_error *err);


/* ---- the original module's interface -------------------------------------------------- */

/* Whether recording is on: RESIL_METRICS_ENABLED ("true"/"false", "1"/"0",
 * "yes"/"no", "on"/"off", any case; default true).  Read once per process; a
 * bad value is reported once on stderr and the default used. */
RESIL_EXPORT bool resil_metrics_enabled(void);

/* The environment's settings and whether they were valid: *enabled (default
 * true) and *max_entries (RESIL_METRICS_MAX_ENTRIES, 1..10000000, default
 * 10000); either may be NULL.  Returns 0, or RESIL_EINVAL with err naming the
 * variable and the value (the defaults are then filled in).  Reads the
 * environment each call. */
RESIL_EXPORT int resil_metrics_env(bool *enabled, size_t *max_entries, resil_error *err);

/* Record into the default registry and into the ring of recent entries
 * (RESIL_METRICS_MAX_ENTRIES, oldest rotate out).  No-ops returning 0 when
 * recording is off.  Return 0, RESIL_EINVAL (NULL name), -ENOMEM. */
RESIL_EXPORT int resil_record_retry_attempt(const char *operation, int attempt, bool success,
                                            double duration_s);
/* state: "closed", "open", "half_open", "forced_open" or "disabled". */
RESIL_EXPORT int resil_record_circuit_breaker_state(const char *service, const char *state);
/* pattern: "ABAB", "CYCLE", "RUNAWAY" (any string is accepted); agent may be
 * NULL; cycles >= 0. */
RESIL_EXPORT int resil_record_oscillation_event(const char *pattern, const char *agent,
                                                int cycles);

/* A summary of the recent entries: {"total_entries": N, "max_entries": M,
 * "enabled": bool, "retry_attempts": {...}, "circuit_breakers": {...},
 * "oscillations": {...}, "oldest": ts, "newest": ts}.  Returns a new
 * reference (NULL when out of memory). */
RESIL_EXPORT json_t *resil_get_metrics_summary(void);

/* The default registry in the Prometheus text format.  Returns a malloc'd
 * string (the caller frees it), NULL when out of memory. */
RESIL_EXPORT char *resil_export_prometheus_metrics(void);

/* Drops every recent entry (tests). */
RESIL_EXPORT void resil_metrics_entries_clear(void);

/* The original's MetricsTimer: monotonic start / elapsed seconds. */
typedef struct resil_timer {
    int64_t start_ns;
    const resil_clock *clock; /* NULL: the system clock */
} resil_timer;

RESIL_EXPORT void resil_timer_start(resil_timer *t, const resil_clock *clock);
RESIL_EXPORT double resil_timer_elapsed(const resil_timer *t);

#ifdef __cplusplus
}
#endif
#endif /* RESIL_METRICS_H */
