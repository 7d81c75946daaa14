/* The metrics registry and its Prometheus text exposition (see metrics.h). Values are
 * atomics: counters a uint64, gauges and histogram sums the bits of a double (updated by
 * compare-and-swap), histogram buckets one non-cumulative uint64 each, summed when
 * rendered. Series are only ever added, under the registry lock, to the head of their
 * family's list, and freed with the registry. */
#include "core/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double seconds_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5,     10};
static const double bytes_bounds[] = {256, 1024, 4096, 16384, 65536, 262144, 1048576};

struct metric {
    metric *next;
    const metric_def *def;
    const double *bounds;
    size_t n_bounds;
    char *values[METRICS_MAX_LABELS];
    _Atomic uint64_t value;    /* counter count, or the bits of a gauge's double */
    _Atomic uint64_t sum;      /* histogram: bits of the sum of observations */
    _Atomic uint64_t *buckets; /* histogram: n_bounds + 1 (the last is +Inf) */
};

typedef struct family {
    const metric_def *def;
    char *label_names[METRICS_MAX_LABELS];
    size_t n_labels;
    metric *series;
} family;

struct metrics_registry {
    pthread_mutex_t mu;
    family *families;
    size_t n_families;
};

static uint64_t dbits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

static double bitsd(uint64_t u)
{
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static void bucket_set(metric_buckets b, const double **bounds, size_t *n)
{
    switch (b) {
    case METRIC_BUCKETS_SECONDS:
        *bounds = seconds_bounds;
        *n = sizeof seconds_bounds / sizeof seconds_bounds[0];
        return;
    case METRIC_BUCKETS_BYTES:
        *bounds = bytes_bounds;
        *n = sizeof bytes_bounds / sizeof bytes_bounds[0];
        return;
    case METRIC_BUCKETS_NONE:
        break;
    }
    *bounds = NULL;
    *n = 0;
}

static void series_free(metric *m)
{
    for (size_t i = 0; i < METRICS_MAX_LABELS; i++)
        free(m->values[i]);
    free(m->buckets);
    free(m);
}

static metric *series_create(const family *f, const char *const *values)
{
    metric *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->def = f->def;
    for (size_t i = 0; i < f->n_labels; i++)
        if (!(m->values[i] = strdup(values[i]))) {
            series_free(m);
            return NULL;
        }
    atomic_init(&m->value, m->def->type == METRIC_COUNTER ? 0 : dbits(0.0));
    atomic_init(&m->sum, dbits(0.0));
    if (m->def->type == METRIC_HISTOGRAM) {
        bucket_set(m->def->buckets, &m->bounds, &m->n_bounds);
        m->buckets = calloc(m->n_bounds + 1, sizeof *m->buckets);
        if (!m->buckets) {
            series_free(m);
            return NULL;
        }
        for (size_t i = 0; i <= m->n_bounds; i++)
            atomic_init(&m->buckets[i], 0);
    }
    return m;
}

static int family_init(family *f, const metric_def *def)
{
    f->def = def;
    const char *p = def->labels ? def->labels : "";
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (f->n_labels == METRICS_MAX_LABELS || len == 0)
            return -1;
        if (!(f->label_names[f->n_labels] = strndup(p, len)))
            return -1;
        f->n_labels++;
        p += len + (comma ? 1 : 0);
    }
    /* A series without labels exists from the start, so it is exported as 0. */
    if (f->n_labels == 0 && !(f->series = series_create(f, NULL)))
        return -1;
    return 0;
}

metrics_registry *metrics_registry_create(const metric_def *defs, size_t n_defs)
{
    metrics_registry *r = calloc(1, sizeof *r);
    if (!r || !(r->families = calloc(n_defs ? n_defs : 1, sizeof *r->families))) {
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    r->n_families = n_defs;
    for (size_t i = 0; i < n_defs; i++)
        if (family_init(&r->families[i], &defs[i]) != 0) {
            metrics_registry_destroy(r);
            return NULL;
        }
    return r;
}

void metrics_registry_destroy(metrics_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_families; i++) {
        family *f = &r->families[i];
        for (size_t j = 0; j < f->n_labels; j++)
            free(f->label_names[j]);
        for (metric *m = f->series, *next; m; m = next) {
            next = m->next;
            series_free(m);
        }
    }
    pthread_mutex_destroy(&r->mu);
    free(r->families);
    free(r);
}

static const metric_def default_defs[] = {
#define PGC_METRIC_DEF(id, type, name, labels, buckets, help)                                      \
    {name, METRIC_##type, labels, METRIC_BUCKETS_##buckets, help},
    PGC_METRICS_TABLE(PGC_METRIC_DEF)
#undef PGC_METRIC_DEF
};

static metrics_registry *default_registry;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_create(void)
{
    default_registry = metrics_registry_create(default_defs, METRIC_COUNT);
}

metrics_registry *metrics_default(void)
{
    pthread_once(&default_once, default_create);
    return default_registry;
}

metric *metrics_series(metrics_registry *r, size_t def_index, const char *const *label_values)
{
    if (!r || def_index >= r->n_families)
        return NULL;
    family *f = &r->families[def_index];
    for (size_t i = 0; i < f->n_labels; i++)
        if (!label_values || !label_values[i])
            return NULL;
    pthread_mutex_lock(&r->mu);
    metric *m = f->series;
    for (; m; m = m->next) {
        size_t i = 0;
        while (i < f->n_labels && strcmp(m->values[i], label_values[i]) == 0)
            i++;
        if (i == f->n_labels)
            break;
    }
    if (!m && (m = series_create(f, label_values))) {
        m->next = f->series;
        f->series = m;
    }
    pthread_mutex_unlock(&r->mu);
    return m;
}

metric *metrics_get(metric_id id, ...)
{
    metrics_registry *r = metrics_default();
    if (!r || (size_t)id >= r->n_families)
        return NULL;
    const char *values[METRICS_MAX_LABELS] = {0};
    va_list ap;
    va_start(ap, id);
    for (size_t i = 0; i < r->families[id].n_labels; i++)
        values[i] = va_arg(ap, const char *);
    va_end(ap);
    return metrics_series(r, id, values);
}

void metric_inc(metric *m)
{
    if (m)
        atomic_fetch_add_explicit(&m->value, 1, memory_order_relaxed);
}

void metric_add(metric *m, uint64_t n)
{
    if (m)
        atomic_fetch_add_explicit(&m->value, n, memory_order_relaxed);
}

void metric_set(metric *m, double v)
{
    if (m)
        atomic_store_explicit(&m->value, dbits(v), memory_order_relaxed);
}

static void add_double(_Atomic uint64_t *a, double d)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, dbits(bitsd(old) + d),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void metric_gauge_add(metric *m, double d)
{
    if (m)
        add_double(&m->value, d);
}

void metric_observe_n(metric *m, double v, uint64_t n)
{
    if (!m || !m->buckets || !n)
        return;
    size_t i = 0;
    while (i < m->n_bounds && v > m->bounds[i])
        i++;
    atomic_fetch_add_explicit(&m->buckets[i], n, memory_order_relaxed);
    add_double(&m->sum, v * (double)n);
}

void metric_observe(metric *m, double v)
{
    metric_observe_n(m, v, 1);
}

static uint64_t histogram_count(const metric *m)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= m->n_bounds; i++)
        n += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
    return n;
}

double metric_value(const metric *m)
{
    if (!m)
        return 0;
    switch (m->def->type) {
    case METRIC_COUNTER:
        return (double)atomic_load_explicit(&m->value, memory_order_relaxed);
    case METRIC_GAUGE:
        return bitsd(atomic_load_explicit(&m->value, memory_order_relaxed));
    case METRIC_HISTOGRAM:
        return (double)histogram_count(m);
    }
    return 0;
}

/* ---- exposition ---- */

static void put_escaped(FILE *out, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", out);
        else if (*s == '\n')
            fputs("\\n", out);
        else if (quote && *s == '"')
            fputs("\\\"", out);
        else
            fputc(*s, out);
    }
}

/* The shortest of %.15g and %.17g that reads back as the same double. */
static void format_double(char *buf, size_t len, double v)
{
    if (isnan(v))
        snprintf(buf, len, "NaN");
    else if (isinf(v))
        snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
    else if (snprintf(buf, len, "%.15g", v) > 0 && strtod(buf, NULL) != v)
        snprintf(buf, len, "%.17g", v);
}

static void put_double(FILE *out, double v)
{
    char buf[40];
    format_double(buf, sizeof buf, v);
    fputs(buf, out);
}

/* name{a="x",b="y",le="0.5"}: `le` is the extra label of a bucket, NULL otherwise. */
static void put_series_name(FILE *out, const family *f, const metric *m, const char *suffix,
                            const char *le)
{
    fputs(f->def->name, out);
    fputs(suffix, out);
    if (f->n_labels == 0 && !le)
        return;
    fputc('{', out);
    for (size_t i = 0; i < f->n_labels; i++) {
        fprintf(out, "%s%s=\"", i ? "," : "", f->label_names[i]);
        put_escaped(out, m->values[i], true);
        fputc('"', out);
    }
    if (le)
        fprintf(out, "%sle=\"%s\"", f->n_labels ? "," : "", le);
    fputc('}', out);
}

static void render_histogram(FILE *out, const family *f, const metric *m)
{
    uint64_t cumulative = 0;
    char le[40];
    for (size_t i = 0; i <= m->n_bounds; i++) {
        cumulative += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
        format_double(le, sizeof le, i < m->n_bounds ? m->bounds[i] : INFINITY);
        put_series_name(out, f, m, "_bucket", le);
        fprintf(out, " %llu\n", (unsigned long long)cumulative);
    }
    put_series_name(out, f, m, "_sum", NULL);
    fputc(' ', out);
    put_double(out, bitsd(atomic_load_explicit(&m->sum, memory_order_relaxed)));
    fputc('\n', out);
    put_series_name(out, f, m, "_count", NULL);
    fprintf(out, " %llu\n", (unsigned long long)cumulative);
}

static void render_family(FILE *out, const family *f)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    fprintf(out, "# HELP %s ", f->def->name);
    put_escaped(out, f->def->help, false);
    fprintf(out, "\n# TYPE %s %s\n", f->def->name, type_names[f->def->type]);
    for (const metric *m = f->series; m; m = m->next) {
        if (f->def->type == METRIC_HISTOGRAM) {
            render_histogram(out, f, m);
            continue;
        }
        put_series_name(out, f, m, "", NULL);
        fputc(' ', out);
        if (f->def->type == METRIC_COUNTER)
            fprintf(out, "%llu",
                    (unsigned long long)atomic_load_explicit(&m->value, memory_order_relaxed));
        else
            put_double(out, metric_value(m));
        fputc('\n', out);
    }
}

char *metrics_render(metrics_registry *r, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *out = open_memstream(&buf, &n);
    if (!out)
        return NULL;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n_families; i++)
        render_family(out, &r->families[i]);
    pthread_mutex_unlock(&r->mu);
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    if (len)
        *len = n;
    return buf;
}
