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

/* Waits (until deadline_ms, CLOCK_MONOTONIC) for the consumer to have received every change
 * of `log` it should get, then checks completeness, content, filtering, duplicates, order
 * per row and dump rows; fails the running case with what is wrong. */
void consumer_check(const consumer_spec *spec, const chaos_log *log, long long deadline_ms);

#endif
