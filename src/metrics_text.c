/* src/metrics_text.c - the Prometheus text format 0.0.4 and OpenMetrics 1.0
 * exports (resil_metrics_export; its JSON format comes from
 * metrics_json.c). */
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

/* ---- export --------------------------------------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* The shortest text that reads back as v; +Inf, -Inf, NaN. */
static void put_number(struct buf *b, double v)
{
    if (isnan(v)) {
        puts_(b, "NaN");
        return;
    }
    if (isinf(v)) {
        puts_(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char tmp[40];
    if (fabs(v) < 9007199254740992.0 && v == (double)(int64_t)v) {
        /* whole numbers (every counter and bucket count): no float formatting */
        int64_t x = (int64_t)v;
        char *e = tmp + sizeof tmp, *p = e;
        uint64_t u = x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (x < 0)
            *--p = '-';
        put(b, p, (size_t)(e - p));
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    puts_(b, tmp);
}

/* OpenMetrics' canonical numbers (for le): Go's shortest %g, exponent form
 * when the exponent is < -4 or >= 6, with ".0" added to integers: 0.0, 1.0,
 * 100000.0, 1e+06, 0.005. */
static void put_number_canonical(struct buf *b, double v)
{
    if (!isfinite(v)) {
        put_number(b, v);
        return;
    }
    char tmp[48];
    int digits = 1;
    for (; digits <= 17; digits++) {
        snprintf(tmp, sizeof tmp, "%.*e", digits - 1, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    int exp = v == 0 ? 0 : atoi(strchr(tmp, 'e') + 1);
    if (exp < -4 || exp >= 6) {
        snprintf(tmp, sizeof tmp, "%.*e", digits - 1, v);
    } else {
        int frac = digits - 1 - exp;
        snprintf(tmp, sizeof tmp, "%.*f", frac > 0 ? frac : 0, v);
    }
    puts_(b, tmp);
    if (!strpbrk(tmp, ".e"))
        puts_(b, ".0");
}

/* Label values: \\, \" and \n escaped (both formats). */
static void put_label_value(struct buf *b, const char *s)
{
    while (*s) {
        size_t run = strcspn(s, "\\\"\n");
        put(b, s, run);
        s += run;
        if (!*s)
            break;
        puts_(b, *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : "\\n");
        s++;
    }
}

/* Help: \\ and \n; OpenMetrics also \". */
static void put_help(struct buf *b, const char *s, bool om)
{
    for (; *s; s++) {
        if (*s == '\\')
            puts_(b, "\\\\");
        else if (*s == '\n')
            puts_(b, "\\n");
        else if (om && *s == '"')
            puts_(b, "\\\"");
        else
            put(b, s, 1);
    }
}

static void put_labels(struct buf *b, const struct child *c, const char *le)
{
    const struct family *f = c->fam;
    if (f->nlabels == 0 && !le)
        return;
    puts_(b, "{");
    for (size_t i = 0; i < f->nlabels; i++) {
        if (i)
            puts_(b, ",");
        puts_(b, f->labels[i]);
        puts_(b, "=\"");
        put_label_value(b, c->values[i]);
        puts_(b, "\"");
    }
    if (le) {
        if (f->nlabels)
            puts_(b, ",");
        puts_(b, "le=\"");
        puts_(b, le);
        puts_(b, "\"");
    }
    puts_(b, "}");
}

static void put_sample(struct buf *b, const struct child *c, const char *suffix, const char *le,
                       double v)
{
    puts_(b, c->fam->name);
    puts_(b, suffix);
    put_labels(b, c, le);
    puts_(b, " ");
    put_number(b, v);
    puts_(b, "\n");
}

static void export_family(struct buf *b, struct family *f, bool om)
{
    static const char *const tname[] = {"", "counter", "gauge", "histogram"};
    bool counter = f->type == RESIL_METRIC_COUNTER;
    const char *famsuffix = counter && !om ? "_total" : "";
    /* 0.0.4: HELP then TYPE, as Prometheus' clients write it; OpenMetrics:
     * TYPE then HELP, the order its specification asks for */
    for (int k = 0; k < 2; k++) {
        bool help = (k == 0) != om;
        puts_(b, help ? "# HELP " : "# TYPE ");
        puts_(b, f->name);
        puts_(b, famsuffix);
        puts_(b, " ");
        if (help)
            put_help(b, f->help, om);
        else
            puts_(b, tname[f->type]);
        puts_(b, "\n");
    }
    pthread_mutex_lock(&f->mu);
    struct child *first = f->first, *last = f->last;
    pthread_mutex_unlock(&f->mu);
    /* the le values, formatted once per family */
    char(*les)[40] = NULL;
    if (f->type == RESIL_METRIC_HISTOGRAM && (les = malloc((f->nb + 1) * sizeof *les))) {
        for (size_t i = 0; i < f->nb; i++) {
            struct buf t = {0};
            if (om)
                put_number_canonical(&t, f->bounds[i]);
            else
                put_number(&t, f->bounds[i]);
            snprintf(les[i], sizeof les[i], "%s", t.p ? t.p : "0");
            free(t.p);
        }
        strcpy(les[f->nb], "+Inf");
    } else if (f->type == RESIL_METRIC_HISTOGRAM) {
        b->oom = true;
        return;
    }
    /* children are only ever appended: walking the list without the lock is
     * safe up to the last one seen under it */
    for (struct child *c = first; c; c = c->next) {
        if (f->type == RESIL_METRIC_COUNTER) {
            put_sample(b, c, "_total", NULL, resil_counter_value((resil_counter *)c));
        } else if (f->type == RESIL_METRIC_GAUGE) {
            put_sample(b, c, "", NULL, resil_gauge_value((resil_gauge *)c));
        } else {
            uint64_t cum = 0;
            for (size_t i = 0; i <= f->nb; i++) {
                uint64_t n = 0;
                resil__metrics_sum_cells(c, H_BUCKET + i, &n, NULL);
                cum += n;
                put_sample(b, c, "_bucket", les[i], (double)cum);
            }
            /* count = the +Inf bucket, read once, so they always agree */
            put_sample(b, c, "_count", NULL, (double)cum);
            put_sample(b, c, "_sum", NULL, resil_histogram_sum((resil_histogram *)c));
        }
        if (c == last)
            break;
    }
    free(les);
}

const char *resil_metrics_content_type(resil_metrics_format format)
{
    switch (format) {
    case RESIL_METRICS_OPENMETRICS:
        return "application/openmetrics-text; version=1.0.0; charset=utf-8";
    case RESIL_METRICS_JSON:
        return "application/json";
    default:
        return "text/plain; version=0.0.4; charset=utf-8";
    }
}

int resil_metrics_format_parse(resil_metrics_format *out, const char *name)
{
    if (!name)
        return RESIL_EINVAL;
    if (strcasecmp(name, "prometheus") == 0 || strcasecmp(name, "text") == 0)
        *out = RESIL_METRICS_PROMETHEUS;
    else if (strcasecmp(name, "openmetrics") == 0)
        *out = RESIL_METRICS_OPENMETRICS;
    else if (strcasecmp(name, "json") == 0)
        *out = RESIL_METRICS_JSON;
    else
        return RESIL_EINVAL;
    return 0;
}

int resil_metrics_export(char **out, size_t *len, resil_metrics_registry *r,
                         resil_metrics_format format)
{
    if (!out || !r)
        return RESIL_EINVAL;
    resil__metrics_run_collectors(r);
    if (format == RESIL_METRICS_JSON) {
        json_t *doc = resil__metrics_registry_json(r, false);
        char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
        if (!s)
            return -ENOMEM;
        size_t n = strlen(s);
        char *p = malloc(n + 2);
        if (!p) {
            free(s);
            return -ENOMEM;
        }
        memcpy(p, s, n);
        p[n] = '\n';
        p[n + 1] = 0;
        free(s);
        *out = p;
        if (len)
            *len = n + 1;
        return 0;
    }
    bool om = format == RESIL_METRICS_OPENMETRICS;
    size_t n = 0;
    struct family **fams = resil__metrics_sorted_families(r, &n);
    if (!fams)
        return -ENOMEM;
    struct buf b = {0};
    for (size_t i = 0; i < n; i++)
        export_family(&b, fams[i], om);
    if (om)
        puts_(&b, "# EOF\n");
    free(fams);
    if (!b.p && !b.oom)
        put(&b, "", 0);
    if (b.oom) {
        free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    if (len)
        *len = b.len;
    return 0;
}
