/* src/metrics_json.c - registries as JSON documents (resil_metrics_to_json,
 * the deltas of a flush) and the merge of such documents back into a
 * registry (resil_metrics_merge_json, and whole-or-nothing merges of one
 * record for metrics_dir.c). */
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

/* ---- JSON ------------------------------------------------------------------------------------ */

static json_t *json_number(double v)
{
    if (isfinite(v))
        return json_real(v);
    return json_string(isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
}

const char *resil__metrics_type_name(resil_metric_type t)
{
    return t == RESIL_METRIC_COUNTER ? "counter" : t == RESIL_METRIC_GAUGE ? "gauge" : "histogram";
}

/* One family as JSON; with `delta`, what its children gained since the last
 * flush (and the flush marks are moved on); children with nothing new are
 * left out then. */
static json_t *family_json(struct family *f, bool delta)
{
    json_t *fj = json_object();
    json_t *labels = json_array();
    json_t *series = json_array();
    for (size_t i = 0; i < f->nlabels; i++)
        json_array_append_new(labels, json_string(f->labels[i]));
    json_object_set_new(fj, "name", json_string(f->name));
    json_object_set_new(fj, "type", json_string(resil__metrics_type_name(f->type)));
    json_object_set_new(fj, "help", json_string(f->help));
    json_object_set_new(fj, "labels", labels);
    if (f->type == RESIL_METRIC_HISTOGRAM) {
        json_t *bj = json_array();
        for (size_t i = 0; i < f->nb; i++)
            json_array_append_new(bj, json_real(f->bounds[i]));
        json_object_set_new(fj, "buckets", bj);
    }
    pthread_mutex_lock(&f->mu);
    struct child *first = f->first, *last = f->last;
    pthread_mutex_unlock(&f->mu);
    for (struct child *c = first; c; c = c->next) {
        json_t *sj = json_object();
        json_t *lv = json_object();
        for (size_t i = 0; i < f->nlabels; i++)
            json_object_set_new(lv, f->labels[i], json_string(c->values[i]));
        json_object_set_new(sj, "labels", lv);
        bool keep = true;
        if (f->type == RESIL_METRIC_COUNTER) {
            double v = resil_counter_value((resil_counter *)c);
            double out = v;
            if (delta) {
                out = v - c->flushed_value;
                c->flushed_value = v;
                keep = out > 0;
            }
            json_object_set_new(sj, "value", json_number(out));
        } else if (f->type == RESIL_METRIC_GAUGE) {
            double v = resil_gauge_value((resil_gauge *)c);
            if (delta) { /* a gauge is written when it changed */
                keep = d2u(v) != d2u(c->flushed_value) || !c->flushed_sum;
                c->flushed_value = v;
                c->flushed_sum = 1; /* "written once" */
            }
            json_object_set_new(sj, "value", json_number(v));
        } else {
            json_t *counts = json_array();
            uint64_t total = 0;
            for (size_t i = 0; i <= f->nb; i++) {
                uint64_t n = 0;
                resil__metrics_sum_cells(c, H_BUCKET + i, &n, NULL);
                uint64_t out = n;
                if (delta) {
                    out = n - c->flushed_buckets[i];
                    c->flushed_buckets[i] = n;
                }
                total += out;
                json_array_append_new(counts, json_integer((json_int_t)out));
            }
            double sum = resil_histogram_sum((resil_histogram *)c), outsum = sum;
            if (delta) {
                outsum = sum - c->flushed_sum;
                c->flushed_sum = sum;
                keep = total > 0;
            }
            /* per-bucket counts (not cumulative), +Inf last */
            json_object_set_new(sj, "counts", counts);
            json_object_set_new(sj, "count", json_integer((json_int_t)total));
            json_object_set_new(sj, "sum", json_number(outsum));
        }
        if (keep)
            json_array_append_new(series, sj);
        else
            json_decref(sj);
        if (c == last)
            break;
    }
    json_object_set_new(fj, "series", series);
    return fj;
}

json_t *resil__metrics_registry_json(resil_metrics_registry *r, bool delta)
{
    size_t n = 0;
    struct family **fams = resil__metrics_sorted_families(r, &n);
    if (!fams)
        return NULL;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *fj = family_json(fams[i], delta);
        if (delta && json_array_size(json_object_get(fj, "series")) == 0)
            json_decref(fj);
        else
            json_array_append_new(arr, fj);
    }
    free(fams);
    json_t *doc = json_object();
    json_object_set_new(doc, "metrics", arr);
    return doc;
}

json_t *resil_metrics_to_json(resil_metrics_registry *r)
{
    if (!r)
        return NULL;
    resil__metrics_run_collectors(r);
    return resil__metrics_registry_json(r, false);
}

static bool json_to_double(const json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "NaN") == 0)
            *out = NAN;
        else if (strcmp(s, "+Inf") == 0)
            *out = INFINITY;
        else if (strcmp(s, "-Inf") == 0)
            *out = -INFINITY;
        else
            return false;
        return true;
    }
    return false;
}

#define PBAD(...) resil_error_set(err, RESIL_EPARSE, NULL, __VA_ARGS__)

static int merge_family(resil_metrics_registry *r, const json_t *fj, resil_error *err)
{
    const char *name = json_string_value(json_object_get(fj, "name"));
    const char *type = json_string_value(json_object_get(fj, "type"));
    const char *help = json_string_value(json_object_get(fj, "help"));
    const json_t *labels = json_object_get(fj, "labels");
    const json_t *series = json_object_get(fj, "series");
    if (!name || !type || !json_is_array(labels) || !json_is_array(series))
        return PBAD("a metric needs name, type, labels and series");
    size_t nl = json_array_size(labels);
    if (nl > 32)
        return PBAD("metric %s: too many labels", name);
    const char *lab[32];
    for (size_t i = 0; i < nl; i++)
        if (!(lab[i] = json_string_value(json_array_get(labels, i))))
            return PBAD("metric %s: label names must be strings", name);
    resil_metric *m;
    int rc;
    resil_metric_type t;
    double bounds[MAX_BUCKETS];
    size_t nb = 0;
    if (strcmp(type, "counter") == 0) {
        t = RESIL_METRIC_COUNTER;
        rc = resil_metrics_counter_new(&m, r, name, help, lab, nl, err);
    } else if (strcmp(type, "gauge") == 0) {
        t = RESIL_METRIC_GAUGE;
        rc = resil_metrics_gauge_new(&m, r, name, help, lab, nl, err);
    } else if (strcmp(type, "histogram") == 0) {
        t = RESIL_METRIC_HISTOGRAM;
        const json_t *bj = json_object_get(fj, "buckets");
        nb = json_array_size(bj);
        if (!json_is_array(bj) || nb == 0 || nb > MAX_BUCKETS)
            return PBAD("histogram %s: 1..%d buckets are needed", name, MAX_BUCKETS);
        for (size_t i = 0; i < nb; i++)
            if (!json_to_double(json_array_get(bj, i), &bounds[i]))
                return PBAD("histogram %s: bucket bounds must be numbers", name);
        rc = resil_metrics_histogram_new(&m, r, name, help, lab, nl, bounds, nb, err);
    } else {
        return PBAD("metric %s: unknown type '%s'", name, type);
    }
    if (rc)
        return rc;
    size_t i;
    const json_t *sj;
    json_array_foreach(series, i, sj)
    {
        const json_t *lv = json_object_get(sj, "labels");
        const char *vals[32];
        for (size_t k = 0; k < nl; k++)
            if (!(vals[k] = json_string_value(json_object_get(lv, lab[k]))))
                return PBAD("metric %s: a series lacks label '%s'", name, lab[k]);
        struct child *c;
        rc = resil__metrics_child_get(&c, m, t, vals);
        if (rc)
            return resil_error_set(err, rc, name, "metric %s: %s", name, resil_strerror(rc));
        if (t == RESIL_METRIC_HISTOGRAM) {
            const json_t *counts = json_object_get(sj, "counts");
            double sum;
            if (json_array_size(counts) != nb + 1 ||
                !json_to_double(json_object_get(sj, "sum"), &sum))
                return PBAD("histogram %s: a series needs %zu counts and a sum", name, nb + 1);
            for (size_t k = 0; k <= nb; k++)
                if (!json_is_integer(json_array_get(counts, k)) ||
                    json_integer_value(json_array_get(counts, k)) < 0)
                    return PBAD("histogram %s: counts must be integers >= 0", name);
            bool owned;
            _Atomic uint64_t *hc = my_cell(c, 0, &owned);
            for (size_t k = 0; k <= nb; k++)
                cell_add(hc + H_BUCKET + k, (uint64_t)json_integer_value(json_array_get(counts, k)),
                         owned);
            cell_add_double(hc + H_SUM, sum, owned);
        } else {
            double v;
            if (!json_to_double(json_object_get(sj, "value"), &v))
                return PBAD("metric %s: a series needs a value", name);
            if (t == RESIL_METRIC_COUNTER)
                resil_counter_add((resil_counter *)c, v);
            else
                resil_gauge_set((resil_gauge *)c, v);
        }
    }
    return 0;
}

int resil_metrics_merge_json(resil_metrics_registry *r, const json_t *doc, resil_error *err)
{
    const json_t *arr = json_object_get(doc, "metrics");
    if (!r || !json_is_array(arr))
        return PBAD("a metrics document is an object with a \"metrics\" array");
    size_t i;
    const json_t *fj;
    json_array_foreach(arr, i, fj)
    {
        int rc = merge_family(r, fj, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* Whether the families of `rec` (a registry holding one record) can be
 * merged into r: none clashes with one of r (the same name with another
 * type, help, labels or buckets, or an exported name in common). */
static int families_fit(resil_metrics_registry *r, resil_metrics_registry *rec, resil_error *err)
{
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < rec->n && rc == 0; i++) {
        struct family *g = rec->fams[i];
        for (size_t k = 0; k < r->n && rc == 0; k++) {
            struct family *f = r->fams[k];
            if (strcmp(f->name, g->name) == 0) {
                if (!resil__metrics_same_schema(f, g->type, g->help, (const char *const *)g->labels,
                                                g->nlabels, g->bounds, g->nb))
                    rc = resil_error_set(err, RESIL_EPARSE, g->name,
                                         "metric '%s' was recorded earlier with another type, "
                                         "help, labels or buckets",
                                         g->name);
            } else if (resil__metrics_names_collide(g->type, g->name, f->type, f->name)) {
                rc = resil_error_set(err, RESIL_EPARSE, g->name,
                                     "metric '%s' would export a name that %s '%s' exports",
                                     g->name, resil__metrics_type_name(f->type), f->name);
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* Merges one record into r whole or not at all: it is first merged into a
 * registry of its own (which checks all of it), then checked against r. */
int resil__metrics_merge_whole(resil_metrics_registry *r, const json_t *record, resil_error *err)
{
    resil_metrics_registry *one = NULL;
    int rc = resil_metrics_registry_new(&one, NULL, err);
    if (rc)
        return rc;
    rc = resil_metrics_merge_json(one, record, err);
    if (rc == 0)
        rc = families_fit(r, one, err);
    resil_metrics_registry_free(one);
    if (rc == 0)
        rc = resil_metrics_merge_json(r, record, err);
    return rc;
}

int resil__metrics_flush_delta(resil_metrics_registry *r, int (*write)(json_t *doc, void *arg),
                               void *arg)
{
    resil__metrics_run_collectors(r);
    pthread_mutex_lock(&r->flush_mu);
    json_t *doc = resil__metrics_registry_json(r, true);
    int rc = 0;
    if (!doc)
        rc = -ENOMEM;
    else if (json_array_size(json_object_get(doc, "metrics")) > 0)
        rc = write(doc, arg);
    pthread_mutex_unlock(&r->flush_mu);
    json_decref(doc);
    return rc;
}
