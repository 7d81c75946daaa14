/* What a `pgcapture consume` process of the chaos run wrote: its JSON lines (one change
 * each, in arrival order, appended across restarts) reduced to what the checks compare. The
 * file is read incrementally: only complete lines, from where the last read stopped. */
#ifndef PGC_CHAOS_CONSUMER_H
#define PGC_CHAOS_CONSUMER_H

#include "chaoslog.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct recv_change {
    size_t line; /* 1-based line of the file */
    bool dump;   /* a dump row: checkpoint lsn 0/0, seq the dump id */
    bool parsed; /* false: the line is not a change as `consume` writes it */
    log_pos pos;
    chaos_table table;
    int op;
    chaos_row row;
} recv_change;

typedef struct consumer_file {
    char path[512];
    recv_change *recv;
    size_t n, cap;
    long offset; /* bytes of complete lines read so far */
} consumer_file;

void consumer_file_init(consumer_file *f, const char *path);
void consumer_file_free(consumer_file *f);
/* Reads the lines appended since the last call. Returns the number of new lines, or -1 when
 * the file cannot be read. */
long consumer_file_read_more(consumer_file *f);

#endif
