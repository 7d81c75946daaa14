/* A metrics registry with Prometheus text exposition. Metrics are defined by a table
 * (metric_def; the process-wide registry uses PGC_METRICS_TABLE of metrics_table.h); each
 * labelled series is a `metric` found once by its label values and then updated with
 * atomics: no lock per increment.
 *
 * Threading: every function is thread-safe. metrics_series takes the registry's lock (do
 * it once, keep the pointer); the update functions are lock-free. A series lives as long
 * as its registry. Every update function accepts NULL (a series that could not be
 * allocated) and does nothing. */
#ifndef PGC_CORE_METRICS_H
#define PGC_CORE_METRICS_H

#include "core/metrics_table.h"

#include <stddef.h>
#include <stdint.h>

typedef enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type;

/* Histogram bucket sets (upper bounds; +Inf is implicit). */
typedef enum metric_buckets {
    METRIC_BUCKETS_NONE,
    METRIC_BUCKETS_SECONDS, /* 0.5 ms .. 10 s */
    METRIC_BUCKETS_BYTES,   /* 256 B .. 1 MB */
} metric_buckets;

#define METRICS_MAX_LABELS 4

typedef struct metric_def {
    const char *name;
    metric_type type;
    const char *labels; /* comma-separated label names, "" for none */
    metric_buckets buckets;
    const char *help;
} metric_def;

typedef enum metric_id {
#define PGC_METRIC_ENUM(id, type, name, labels, buckets, help) METRIC_##id,
    PGC_METRICS_TABLE(PGC_METRIC_ENUM)
#undef PGC_METRIC_ENUM
        METRIC_COUNT
} metric_id;

typedef struct metrics_registry metrics_registry;
typedef struct metric metric;

/* Copies nothing: `defs` must outlive the registry. NULL when out of memory or when a
 * definition has more than METRICS_MAX_LABELS labels. */
metrics_registry *metrics_registry_create(const metric_def *defs, size_t n_defs);
void metrics_registry_destroy(metrics_registry *r);

/* The process-wide registry of PGC_METRICS_TABLE (created on first use, never freed). */
metrics_registry *metrics_default(void);

/* The series of definition `def_index` with these label values (as many as the
 * definition has labels; each copied), created at 0 on first use. NULL when out of
 * memory, on a bad index or a NULL value. */
metric *metrics_series(metrics_registry *r, size_t def_index, const char *const *label_values);
/* The same in the default registry with the values as arguments:
 * metrics_get(METRIC_AGENT_RECONNECTS, "app"). */
metric *metrics_get(metric_id id, ...);

void metric_inc(metric *m);                 /* counter += 1 */
void metric_add(metric *m, uint64_t n);     /* counter += n */
void metric_set(metric *m, double v);       /* gauge = v */
void metric_gauge_add(metric *m, double d); /* gauge += d (d may be negative) */
void metric_observe(metric *m, double v);   /* histogram */
/* n observations of the same value (histogram), e.g. the changes one batch ack answers. */
void metric_observe_n(metric *m, double v, uint64_t n);

/* Current value of a counter or gauge, the observation count of a histogram. */
double metric_value(const metric *m);

/* Renders every family in Prometheus text format 0.0.4 into a malloc'd string (caller
 * frees); *len gets its length. NULL when out of memory. */
char *metrics_render(metrics_registry *r, size_t *len);

#endif
