/* src/metrics.c - the metrics registry: registries, families, children
 * (handles), the UTF-8 repair of what they hold, the environment
 * (RESIL_METRICS_ENABLED...) and the enabled check of src/internal/metrics.h.
 * See include/resil/metrics.h.  The layer's other files: metrics_cells.c
 * (slots and updates), metrics_text.c (Prometheus text, OpenMetrics),
 * metrics_json.c (JSON and merge), metrics_collect.c (collectors),
 * metrics_record.c (the original module's record_* interface); the layout
 * they share is src/internal/metrics_impl.h.  This layer depends on core
 * only: files are metrics_dir.c's (an exporter, one layer up). */
#define _GNU_SOURCE
#include "resil/metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "internal/metrics_impl.h"
#include "internal/fork.h"
#include "internal/log.h"
#include "internal/opts.h"

static const double default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

pthread_mutex_t resil__metrics_regs_mu = PTHREAD_MUTEX_INITIALIZER;
resil_metrics_registry *resil__metrics_regs;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void registries_atfork_child(void);

static void fork_register(void)
{
    resil__fork_hook(RESIL__FORK_METRICS, NULL, NULL, registries_atfork_child);
}

/* ---- names --------------------------------------------------------------------- */

static bool valid_metric_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (p != s && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static bool valid_label_name(const char *s)
{
    if (!s || !*s || (s[0] == '_' && s[1] == '_'))
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (p != s && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

/* ---- UTF-8: every exported text must be valid (JSON strings, the text formats) ---- */

/* The length (1..4) of the valid UTF-8 sequence at s, or 0 when s[0] does
 * not start one (a stray continuation byte, an overlong form, a surrogate,
 * beyond U+10FFFF, or cut short: the NUL ends the checks). */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))
            return 0; /* overlong, surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))
            return 0; /* overlong, beyond U+10FFFF */
        return 4;
    }
    return 0;
}

bool resil__metrics_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_seq(p);
        if (n == 0)
            return false;
        p += n;
    }
    return true;
}

/* Copies s into dst (size > 0 bytes, NUL-terminated), each byte that is
 * not part of a valid UTF-8 sequence replaced by U+FFFD, cut at a character
 * boundary when dst is too small.  Returns the length written. */
size_t resil__metrics_utf8_fix_into(char *dst, size_t size, const char *s)
{
    static const char repl[] = "\xEF\xBF\xBD";
    const unsigned char *p = (const unsigned char *)s;
    size_t k = 0;
    while (*p) {
        size_t n = utf8_seq(p);
        const char *from = n ? (const char *)p : repl;
        size_t len = n ? n : 3;
        if (k + len + 1 > size)
            break;
        memcpy(dst + k, from, len);
        k += len;
        p += n ? n : 1;
    }
    dst[k] = '\0';
    return k;
}

/* A malloc'd copy of s made valid UTF-8 (see resil__metrics_utf8_fix_into), or NULL. */
char *resil__metrics_utf8_fixed_dup(const char *s)
{
    size_t size = strlen(s) * 3 + 1; /* each byte becomes at most 3 */
    char *d = malloc(size);
    if (d)
        resil__metrics_utf8_fix_into(d, size, s);
    return d;
}

/* ---- registries --------------------------------------------------------------------- */

int resil_metrics_registry_new(resil_metrics_registry **out, const resil_metrics_opts *opts,
                               resil_error *err)
{
    if (opts && resil__opts_version_check(err, "resil_metrics_opts", opts->version,
                                          RESIL_METRICS_OPTS_VERSION) != 0)
        return RESIL_EINVAL;
    resil_metrics_registry *r = calloc(1, sizeof *r);
    if (!r)
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->flush_mu, NULL);
    r->max_series = opts && opts->max_series ? opts->max_series : DEFAULT_MAX_SERIES;
    pthread_once(&fork_once, fork_register);
    pthread_mutex_lock(&resil__metrics_regs_mu);
    r->next_reg = resil__metrics_regs;
    resil__metrics_regs = r;
    pthread_mutex_unlock(&resil__metrics_regs_mu);
    *out = r;
    return 0;
}

static void free_child(struct child *c)
{
    if (c->values)
        for (size_t i = 0; i < c->fam->nlabels; i++)
            free(c->values[i]);
    free(c->values);
    free(c->cells);
    free(c->flushed_buckets);
    free(c);
}

static void free_family(struct family *f)
{
    for (struct child *c = f->first, *n; c; c = n) {
        n = c->next;
        free_child(c);
    }
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->labels);
    free(f->bounds);
    free(f->table);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void resil_metrics_registry_free(resil_metrics_registry *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&resil__metrics_regs_mu);
    for (resil_metrics_registry **p = &resil__metrics_regs; *p; p = &(*p)->next_reg)
        if (*p == r) {
            *p = r->next_reg;
            break;
        }
    pthread_mutex_unlock(&resil__metrics_regs_mu);
    for (size_t i = 0; i < r->n; i++)
        free_family(r->fams[i]);
    free(r->fams);
    free(r->coll);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->flush_mu);
    free(r);
}

static resil_metrics_registry *default_reg;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

/* In a forked child, every registry holds what the parent recorded:
 * the child's flushes must carry only its own, so the flush marks move to
 * the current values (the child has one thread: no lock is taken, as one
 * held by another thread of the parent would never be released). */
static void mark_flushed(resil_metrics_registry *r)
{
    for (size_t i = 0; i < r->n; i++) {
        struct family *f = r->fams[i];
        for (struct child *c = f->first; c; c = c->next) {
            if (f->type == RESIL_METRIC_COUNTER) {
                c->flushed_value = resil_counter_value((resil_counter *)c);
            } else if (f->type == RESIL_METRIC_GAUGE) {
                c->flushed_value = resil_gauge_value((resil_gauge *)c);
                c->flushed_sum = 1;
            } else {
                for (size_t k = 0; k <= f->nb; k++) {
                    uint64_t n = 0;
                    resil__metrics_sum_cells(c, H_BUCKET + k, &n, NULL);
                    c->flushed_buckets[k] = n;
                }
                c->flushed_sum = resil_histogram_sum((resil_histogram *)c);
            }
        }
    }
}

static void registries_atfork_child(void)
{
    for (resil_metrics_registry *r = resil__metrics_regs; r; r = r->next_reg)
        mark_flushed(r);
}

static void default_init(void)
{
    if (resil_metrics_registry_new(&default_reg, NULL, NULL) != 0)
        default_reg = NULL;
}

resil_metrics_registry *resil_metrics_default(void)
{
    pthread_once(&default_once, default_init);
    return default_reg;
}

static int child_new(struct child **out, struct family *f, const char *const *values);
static void count_overflow(struct family *f);

/* ---- families ------------------------------------------------------------------------ */

bool resil__metrics_same_schema(const struct family *f, resil_metric_type type, const char *help,
                                const char *const *labels, size_t nlabels, const double *bounds,
                                size_t nb)
{
    if (f->type != type || f->nlabels != nlabels || strcmp(f->help, help ? help : "") != 0)
        return false;
    for (size_t i = 0; i < nlabels; i++)
        if (strcmp(f->labels[i], labels[i]) != 0)
            return false;
    if (type == RESIL_METRIC_HISTOGRAM) {
        if (f->nb != nb)
            return false;
        for (size_t i = 0; i < nb; i++)
            if (f->bounds[i] != bounds[i])
                return false;
    }
    return true;
}

/* The sample and family names a family exports (in either format). */
static size_t exported_names(char out[4][256], resil_metric_type type, const char *base)
{
    static const char *const hist[] = {"", "_bucket", "_count", "_sum"};
    static const char *const ctr[] = {"", "_total"};
    const char *const *suf = type == RESIL_METRIC_HISTOGRAM ? hist : ctr;
    size_t n = type == RESIL_METRIC_HISTOGRAM ? 4 : type == RESIL_METRIC_COUNTER ? 2 : 1;
    for (size_t i = 0; i < n; i++)
        snprintf(out[i], 256, "%s%s", base, suf[i]);
    return n;
}

/* Whether two families would export a name in common. */
bool resil__metrics_names_collide(resil_metric_type ta, const char *a, resil_metric_type tb,
                                  const char *b)
{
    char na[4][256], nb[4][256];
    size_t ka = exported_names(na, ta, a), kb = exported_names(nb, tb, b);
    for (size_t i = 0; i < ka; i++)
        for (size_t j = 0; j < kb; j++)
            if (strcmp(na[i], nb[j]) == 0)
                return true;
    return false;
}

/* family_new with a help text that is valid UTF-8. */
/* Checks a family's name, labels and (histograms) buckets; *bounds and *nb
 * become the default buckets when bounds is NULL. */
static int check_schema(resil_metric_type type, const char *name, const char *const *labels,
                        size_t nlabels, const double **bounds_io, size_t *nb_io, resil_error *err)
{
    const double *bounds = *bounds_io;
    size_t nb = *nb_io;
    if (!valid_metric_name(name))
        return resil_error_set(err, RESIL_EINVAL, name ? name : "name",
                               "'%s' is not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
                               name ? name : "(null)");
    if (nlabels > 32 || (nlabels && !labels))
        return resil_error_set(err, RESIL_EINVAL, "labels", "at most 32 labels, given as names");
    for (size_t i = 0; i < nlabels; i++) {
        if (!valid_label_name(labels[i]))
            return resil_error_set(err, RESIL_EINVAL, labels[i] ? labels[i] : "labels",
                                   "'%s' is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, "
                                   "not starting with __)",
                                   labels[i] ? labels[i] : "(null)");
        if (type == RESIL_METRIC_HISTOGRAM && strcmp(labels[i], "le") == 0)
            return resil_error_set(err, RESIL_EINVAL, "le",
                                   "'le' is reserved for a histogram's buckets");
        for (size_t k = 0; k < i; k++)
            if (strcmp(labels[i], labels[k]) == 0)
                return resil_error_set(err, RESIL_EINVAL, labels[i], "label '%s' is given twice",
                                       labels[i]);
    }
    if (type == RESIL_METRIC_HISTOGRAM) {
        if (!bounds) {
            bounds = default_buckets;
            nb = sizeof default_buckets / sizeof default_buckets[0];
        }
        if (nb == 0 || nb > MAX_BUCKETS)
            return resil_error_set(err, RESIL_EINVAL, "buckets", "1..%d buckets are needed",
                                   MAX_BUCKETS);
        for (size_t i = 0; i < nb; i++)
            if (!isfinite(bounds[i]) || (i && !(bounds[i] > bounds[i - 1])))
                return resil_error_set(err, RESIL_EINVAL, "buckets",
                                       "bucket bounds must be finite and strictly increasing "
                                       "(bucket %zu is %g)",
                                       i, bounds[i]);
    }
    *bounds_io = bounds;
    *nb_io = nb;
    return 0;
}

/* Fills a new family f of r (r->mu held) named base (which it takes);
 * returns 0 or -ENOMEM (f is then freed). */
static int family_fill(struct family *f, resil_metrics_registry *r, char *base,
                       resil_metric_type type, const char *help, const char *const *labels,
                       size_t nlabels, const double *bounds, size_t nb)
{
    f->reg = r;
    f->name = base;
    f->help = strdup(help ? help : "");
    f->type = type;
    f->nlabels = nlabels;
    f->labels = calloc(nlabels ? nlabels : 1, sizeof *f->labels);
    pthread_mutex_init(&f->mu, NULL);
    bool oom = !f->help || !f->labels;
    for (size_t i = 0; i < nlabels && !oom; i++)
        oom = !(f->labels[i] = strdup(labels[i]));
    if (type == RESIL_METRIC_HISTOGRAM && !oom) {
        f->nb = nb;
        size_t npad = (nb + 1) / 2 * 2;
        f->bounds = aligned_alloc(16, (npad ? npad : 2) * sizeof *f->bounds);
        oom = !f->bounds;
        if (!oom) {
            memcpy(f->bounds, bounds, nb * sizeof *bounds);
            for (size_t i = nb; i < npad; i++)
                f->bounds[i] = INFINITY; /* never below a value */
        }
    }
    size_t words = type == RESIL_METRIC_HISTOGRAM ? H_BUCKET + nb + 1 : 2;
    f->stride = (words * 8 + 63) / 64 * 64;
    struct child *only = NULL;
    if (!oom && nlabels == 0)
        oom = child_new(&only, f, NULL) != 0;
    if (oom) {
        free_family(f);
        return -ENOMEM;
    }
    return 0;
}

static int family_new_valid(resil_metric **out, resil_metrics_registry *r, resil_metric_type type,
                            const char *name, const char *help, const char *const *labels,
                            size_t nlabels, const double *bounds, size_t nb, resil_error *err)
{
    if (!out || !r)
        return resil_error_set(err, RESIL_EINVAL, "registry", "out and the registry are required");
    int rc = check_schema(type, name, labels, nlabels, &bounds, &nb, err);
    if (rc)
        return rc;
    /* counters: the family is the name without "_total" */
    size_t nl = strlen(name);
    bool total = type == RESIL_METRIC_COUNTER && nl > 6 && strcmp(name + nl - 6, "_total") == 0;
    size_t bl = total ? nl - 6 : nl;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++) {
        struct family *f = r->fams[i];
        if (strncmp(f->name, name, bl) == 0 && f->name[bl] == 0) {
            if (resil__metrics_same_schema(f, type, help, labels, nlabels, bounds, nb))
                *out = (resil_metric *)f;
            else
                rc = resil_error_set(err, RESIL_EINVAL, name,
                                     "metric '%s' is already registered with another type, "
                                     "help, labels or buckets",
                                     name);
            pthread_mutex_unlock(&r->mu);
            return rc;
        }
    }
    char *base = strndup(name, bl);
    if (!base) {
        pthread_mutex_unlock(&r->mu);
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    }
    if (bl < 240)
        for (size_t i = 0; i < r->n; i++)
            if (resil__metrics_names_collide(type, base, r->fams[i]->type, r->fams[i]->name)) {
                rc = resil_error_set(err, RESIL_EINVAL, name,
                                     "metric '%s' would export a name that %s '%s' exports", name,
                                     resil__metrics_type_name(r->fams[i]->type), r->fams[i]->name);
                pthread_mutex_unlock(&r->mu);
                free(base);
                return rc;
            }
    struct family *f = calloc(1, sizeof *f);
    if (f && r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct family **v = realloc(r->fams, cap * sizeof *v);
        if (v) {
            r->fams = v;
            r->cap = cap;
        } else {
            free(f);
            f = NULL;
        }
    }
    if (!f) {
        free(f);
        free(base);
        pthread_mutex_unlock(&r->mu);
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    }
    if (family_fill(f, r, base, type, help, labels, nlabels, bounds, nb) != 0) {
        pthread_mutex_unlock(&r->mu);
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    }
    r->fams[r->n++] = f;
    pthread_mutex_unlock(&r->mu);
    *out = (resil_metric *)f;
    return 0;
}

/* Registers (or finds) a family.  A help text that is not valid UTF-8 is
 * made valid (each bad byte becomes U+FFFD), as label values are: every
 * export format needs UTF-8. */
static int family_new(resil_metric **out, resil_metrics_registry *r, resil_metric_type type,
                      const char *name, const char *help, const char *const *labels, size_t nlabels,
                      const double *bounds, size_t nb, resil_error *err)
{
    if (!help || resil__metrics_utf8_valid(help))
        return family_new_valid(out, r, type, name, help, labels, nlabels, bounds, nb, err);
    char *fixed = resil__metrics_utf8_fixed_dup(help);
    if (!fixed)
        return resil_error_set(err, -ENOMEM, NULL, "out of memory");
    int rc = family_new_valid(out, r, type, name, fixed, labels, nlabels, bounds, nb, err);
    free(fixed);
    return rc;
}

int resil_metrics_counter_new(resil_metric **out, resil_metrics_registry *r, const char *name,
                              const char *help, const char *const *labels, size_t nlabels,
                              resil_error *err)
{
    return family_new(out, r, RESIL_METRIC_COUNTER, name, help, labels, nlabels, NULL, 0, err);
}

int resil_metrics_gauge_new(resil_metric **out, resil_metrics_registry *r, const char *name,
                            const char *help, const char *const *labels, size_t nlabels,
                            resil_error *err)
{
    return family_new(out, r, RESIL_METRIC_GAUGE, name, help, labels, nlabels, NULL, 0, err);
}

int resil_metrics_histogram_new(resil_metric **out, resil_metrics_registry *r, const char *name,
                                const char *help, const char *const *labels, size_t nlabels,
                                const double *buckets, size_t nbuckets, resil_error *err)
{
    return family_new(out, r, RESIL_METRIC_HISTOGRAM, name, help, labels, nlabels, buckets,
                      nbuckets, err);
}

/* ---- children ------------------------------------------------------------------------- */

static uint64_t hash_values(const struct family *f, const char *const *values)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < f->nlabels; i++) {
        for (const char *p = values[i]; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return h;
}

/* Creates a child (f->mu held, or f not yet shared) and links it. */
static int child_new(struct child **out, struct family *f, const char *const *values)
{
    struct child *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->fam = f;
    size_t bytes = (size_t)resil__metrics_block_count() * f->stride;
    c->cells = aligned_alloc(64, bytes);
    c->values = calloc(f->nlabels ? f->nlabels : 1, sizeof *c->values);
    if (f->type == RESIL_METRIC_HISTOGRAM)
        c->flushed_buckets = calloc(f->nb + 1, sizeof *c->flushed_buckets);
    bool oom =
        !c->cells || !c->values || (f->type == RESIL_METRIC_HISTOGRAM && !c->flushed_buckets);
    for (size_t i = 0; i < f->nlabels && !oom; i++)
        oom = !(c->values[i] = strdup(values[i]));
    if (oom) {
        free_child(c);
        return -ENOMEM;
    }
    memset(c->cells, 0, bytes);
    c->stride = (unsigned)f->stride;
    c->npad = (unsigned)(f->nb + 1) / 2 * 2;
    c->bounds = f->bounds;
    c->hash = f->nlabels ? hash_values(f, values) : 0;
    if (f->nlabels) {
        if ((f->n + 1) * 2 > f->slots) {
            size_t slots = f->slots ? f->slots * 2 : 16;
            struct child **t = calloc(slots, sizeof *t);
            if (!t) {
                free_child(c);
                return -ENOMEM;
            }
            for (struct child *k = f->first; k; k = k->next)
                if (k != f->overflow) {
                    k->hnext = t[k->hash & (slots - 1)];
                    t[k->hash & (slots - 1)] = k;
                }
            free(f->table);
            f->table = t;
            f->slots = slots;
        }
        c->hnext = f->table[c->hash & (f->slots - 1)];
        f->table[c->hash & (f->slots - 1)] = c;
    }
    if (f->last)
        f->last->next = c;
    else
        f->first = c;
    f->last = c;
    f->n++;
    *out = c;
    return 0;
}

int resil__metrics_child_get(struct child **out, resil_metric *m, resil_metric_type type,
                             const char *const *values)
{
    struct family *f = (struct family *)m;
    if (!out || !f || f->type != type || (f->nlabels && !values))
        return RESIL_EINVAL;
    for (size_t i = 0; i < f->nlabels; i++)
        if (!values[i])
            return RESIL_EINVAL;
    if (f->nlabels == 0) {
        *out = f->first;
        return 0;
    }
    uint64_t h = hash_values(f, values);
    int rc = 0;
    bool overflowed = false;
    pthread_mutex_lock(&f->mu);
    struct child *c = NULL;
    for (struct child *k = f->slots ? f->table[h & (f->slots - 1)] : NULL; k; k = k->hnext) {
        if (k->hash != h)
            continue;
        size_t i = 0;
        while (i < f->nlabels && strcmp(k->values[i], values[i]) == 0)
            i++;
        if (i == f->nlabels) {
            c = k;
            break;
        }
    }
    if (!c) {
        /* A new child: its label values must be valid UTF-8 (the JSON of a
         * metrics directory and every text format need it).  Values that
         * are not are made valid, each bad byte replaced by U+FFFD, and
         * resolved again: the same bad values always give the same child,
         * and nothing that records a user's name can fail because of it. */
        bool valid = true;
        for (size_t i = 0; i < f->nlabels && valid; i++)
            valid = resil__metrics_utf8_valid(values[i]);
        if (!valid) {
            pthread_mutex_unlock(&f->mu);
            char *fixed[32] = {0};
            rc = 0;
            for (size_t i = 0; i < f->nlabels && rc == 0; i++)
                if (!(fixed[i] = resil__metrics_utf8_fixed_dup(values[i])))
                    rc = -ENOMEM;
            if (rc == 0)
                rc = resil__metrics_child_get(out, m, type, (const char *const *)fixed);
            for (size_t i = 0; i < f->nlabels; i++)
                free(fixed[i]);
            return rc;
        }
        if (f->n - (f->overflow ? 1 : 0) >= f->reg->max_series && f != f->reg->overflow_fam) {
            if (!f->overflow) {
                const char *ov[32];
                for (size_t i = 0; i < f->nlabels; i++)
                    ov[i] = OVERFLOW_VALUE;
                struct child *o;
                rc = child_new(&o, f, ov);
                if (rc == 0)
                    f->overflow = o;
            }
            c = f->overflow;
            overflowed = true;
        } else {
            rc = child_new(&c, f, values);
        }
    }
    pthread_mutex_unlock(&f->mu);
    if (rc)
        return rc;
    if (overflowed)
        count_overflow(f);
    *out = c;
    return 0;
}

int resil_counter_get(resil_counter **out, resil_metric *m, const char *const *values)
{
    return resil__metrics_child_get((struct child **)out, m, RESIL_METRIC_COUNTER, values);
}

int resil_gauge_get(resil_gauge **out, resil_metric *m, const char *const *values)
{
    return resil__metrics_child_get((struct child **)out, m, RESIL_METRIC_GAUGE, values);
}

int resil_histogram_get(resil_histogram **out, resil_metric *m, const char *const *values)
{
    return resil__metrics_child_get((struct child **)out, m, RESIL_METRIC_HISTOGRAM, values);
}

static void count_overflow(struct family *f)
{
    resil_metrics_registry *r = f->reg;
    if (f == r->overflow_fam)
        return;
    resil_metric *m;
    static const char *const lab[] = {"metric"};
    if (family_new(&m, r, RESIL_METRIC_COUNTER, "resil_metrics_cardinality_overflow_total",
                   "Label combinations refused by a metric family's series cap (recorded in "
                   "its overflow series instead).",
                   lab, 1, NULL, 0, NULL) != 0)
        return;
    r->overflow_fam = (struct family *)m;
    const char *v[] = {f->name};
    resil_counter *c;
    if (resil_counter_get(&c, m, v) == 0)
        resil_counter_inc(c);
}

static int cmp_fam(const void *a, const void *b)
{
    return strcmp((*(struct family *const *)a)->name, (*(struct family *const *)b)->name);
}

/* The families, sorted by name (a copy of the pointers). */
struct family **resil__metrics_sorted_families(resil_metrics_registry *r, size_t *n)
{
    pthread_mutex_lock(&r->mu);
    struct family **v = malloc((r->n ? r->n : 1) * sizeof *v);
    if (v) {
        if (r->n)
            memcpy(v, r->fams, r->n * sizeof *v);
        *n = r->n;
    }
    pthread_mutex_unlock(&r->mu);
    if (v && *n > 1)
        qsort(v, *n, sizeof *v, cmp_fam);
    return v;
}

/* ---- environment ----------------------------------------------------------------------------- */

int resil__metrics_parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

int resil_metrics_env(bool *enabled, size_t *max_entries, resil_error *err)
{
    bool en = true;
    size_t max = 10000;
    int rc = 0;
    const char *v = getenv("RESIL_METRICS_ENABLED");
    if (v && resil__metrics_parse_bool(v, &en) != 0) {
        en = true;
        rc = resil_error_set(err, RESIL_EINVAL, "RESIL_METRICS_ENABLED",
                             "RESIL_METRICS_ENABLED='%s' is not true or false (1/0, yes/no, "
                             "on/off); using the default true",
                             v);
    }
    v = getenv("RESIL_METRICS_MAX_ENTRIES");
    if (v) {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (end == v || *end || errno || x < 1 || x > 10000000) {
            if (rc == 0)
                rc = resil_error_set(err, RESIL_EINVAL, "RESIL_METRICS_MAX_ENTRIES",
                                     "RESIL_METRICS_MAX_ENTRIES='%s' is not an integer in "
                                     "1..10000000; using the default 10000",
                                     v);
            rc = RESIL_EINVAL;
        } else {
            max = (size_t)x;
        }
    }
    if (enabled)
        *enabled = en;
    if (max_entries)
        *max_entries = max;
    return rc;
}

static bool env_enabled = true;
static size_t env_max_entries = 10000;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void env_init(void)
{
    resil_error e;
    resil_error_clear(&e);
    if (resil_metrics_env(&env_enabled, &env_max_entries, &e) != 0)
        resil__log(RESIL_LOG_WARN, "%s", e.message);
}

bool resil_metrics_enabled(void)
{
    pthread_once(&env_once, env_init);
    return env_enabled;
}

/* ---- resil's own metrics (src/internal/metrics.h) ------------------------------------------- */

_Atomic int resil__metrics_on = -1;

bool resil__metrics_on_slow(void)
{
    bool on = resil_metrics_enabled() && resil_metrics_default() != NULL;
    atomic_store_explicit(&resil__metrics_on, on ? 1 : 0, memory_order_relaxed);
    return on;
}

resil_counter *resil__metrics_counter_of(const char *name, const char *help,
                                         const char *const *labels, size_t n,
                                         const char *const *values)
{
    resil_metric *m;
    resil_counter *c;
    resil_metrics_registry *r = resil__metrics_enabled() ? resil_metrics_default() : NULL;
    if (!r || resil_metrics_counter_new(&m, r, name, help, labels, n, NULL) ||
        resil_counter_get(&c, m, values))
        return NULL;
    return c;
}

resil_histogram *resil__metrics_histogram_of(const char *name, const char *help,
                                             const char *const *labels, size_t n,
                                             const char *const *values)
{
    resil_metric *m;
    resil_histogram *h;
    resil_metrics_registry *r = resil__metrics_enabled() ? resil_metrics_default() : NULL;
    if (!r || resil_metrics_histogram_new(&m, r, name, help, labels, n, NULL, 0, NULL) ||
        resil_histogram_get(&h, m, values))
        return NULL;
    return h;
}

void resil__metrics_counter_derive(resil_counter *c, const resil_counter *a, const resil_counter *b)
{
    struct child *k = (struct child *)c;
    pthread_mutex_lock(&k->fam->mu);
    k->sum_of[0] = (const struct child *)a;
    k->sum_of[1] = (const struct child *)b;
    pthread_mutex_unlock(&k->fam->mu);
}

size_t resil__metrics_max_entries(void)
{
    pthread_once(&env_once, env_init);
    return env_max_entries;
}
