/* The chaos checker's consumer check: what one `pgcapture consume` received against what the
 * log holds (chaoslog.h), after waiting for it to catch up. */
#ifndef PGC_CHAOS_CONSUMERCHECK_H
#define PGC_CHAOS_CONSUMERCHECK_H

#include "chaoslog.h"

#include <stdbool.h>

typedef struct consumer_spec {
    char name[32];
    char file[512];  /* its JSON lines */
    char marks[512]; /* "<lines> <cause>" per kill that may explain a duplicate */
    char regex[128]; /* its --table-regex ("" for every table) */
    bool truncate;   /* started with --truncate */
} consumer_spec;

/* What a consumer check found (the chaos run's summary lines). */
typedef struct consumer_result {
    size_t lost;            /* changes meant for it that never came */
    size_t went_back;       /* a row's version went back: a first copy after a later
                             * change, an old copy not explained by a kill, a dump row older
                             * than what the row had */
    size_t dups_after_kill; /* copies explained by a kill (at least once) */
    size_t state_diff_rows; /* items rows where its view, replayed, differs from the source */
} consumer_result;

/* Waits (until deadline_ms, CLOCK_MONOTONIC) for the consumer to have received every change
 * of `log` it should get, then checks completeness, content, filtering, duplicates, order
 * per row and dump rows, and that its view of items (changes applied when newer than the
 * row's last checkpoint, dump rows as they come) equals the source's (conninfo `source`);
 * fails the running case with what is wrong, and fills *res. */
void consumer_check(const consumer_spec *spec, const chaos_log *log, const char *source,
                    long long deadline_ms, consumer_result *res);

#endif
