/* Reads a whole JetStream stream back for assertions: every NATS message by sequence,
 * parts joined, batches decoded into protocol Messages in log order. Independent of the
 * gateway and replica readers on purpose, so a test can check what the agent wrote. */
#ifndef PGC_TEST_STREAMREAD_H
#define PGC_TEST_STREAMREAD_H

#include "codec/logpos.h"
#include "pgcapture.pb-c.h"

#include <stddef.h>
#include <stdint.h>

typedef struct stream_entry {
    log_pos pos; /* from the batch headers: first + index, checked against the content */
    Pgcapture__Message *msg;
} stream_entry;

typedef struct stream_log {
    stream_entry *entries;
    size_t n;
    uint64_t nats_messages;
} stream_log;

/* Reads PGCAPTURE_<name>; fails the case on malformed content (bad headers, a batch whose
 * Pgc-Count or positions do not match its Messages). Freed at the end of the case. */
stream_log *stream_read_all(const char *name);
/* Re-reads the stream until `done` says it holds what the case waits for; returns that
 * log (freed at the end of the case) or fails the case after timeout_ms. */
stream_log *stream_wait_for(const char *name, int timeout_ms,
                            int (*done)(const stream_log *log, void *arg), void *arg);
/* Calls `fn` for every Message of the stream in log order without keeping them (for
 * streams too large to hold decoded); the Message is freed after the call. Fails the case
 * on malformed content. Returns the number of Messages. */
size_t stream_scan(const char *name,
                   void (*fn)(log_pos pos, const Pgcapture__Message *m, void *arg), void *arg);
/* The value of field `name` in a change's new row (NULL when absent). */
const Pgcapture__Field *stream_field(const Pgcapture__Change *c, const char *name, int old);

#endif
