/* The controller's dump queues, as a pure state machine with no I/O and no clock of its
 * own (callers pass now_ms): per URI, pending items in schedule order, requeued items
 * waiting out an exponential back-off, one outstanding item per pulling stream, a
 * cool-down between items handed out, and counts for `pgcapture status`.
 *
 * Items carry an id unique within their URI and increasing in schedule order; the
 * controller keys its persistent copy by it. Not thread-safe: one owner. */
#ifndef PGC_ROLES_CONTROLLER_DUMP_QUEUE_H
#define PGC_ROLES_CONTROLLER_DUMP_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DUMP_QUEUE_MAX_URI_BYTES 1024
#define DUMP_QUEUE_MAX_NAME_BYTES 255

typedef struct dump_queue dump_queue;

typedef struct dump_queue_config {
    int64_t backoff_base_ms; /* back-off after the first requeue of an item; doubles after */
    int64_t backoff_max_ms;  /* cap of the back-off */
} dump_queue_config;

/* An item as a client asks for it (borrowed strings). */
typedef struct dump_queue_spec {
    const char *schema;
    const char *table;
    uint32_t page_begin, page_end;
} dump_queue_spec;

typedef struct dump_queue_item {
    uint64_t id;
    char *schema, *table;
    uint32_t page_begin, page_end;
    uint32_t attempts;     /* requeues so far */
    int64_t not_before_ms; /* back-off: not handed out before this */
    bool stopped;          /* outstanding when StopSchedule came: dropped when it completes */
} dump_queue_item;

dump_queue *dump_queue_create(const dump_queue_config *cfg); /* NULL when out of memory */
void dump_queue_destroy(dump_queue *q);                      /* NULL is a no-op */

/* Checks one request item: PGC_ERR_INVALID with the reason in err. */
int dump_queue_validate(const char *uri, const dump_queue_spec *spec, char *err, size_t err_len);

/* Appends items to the URI's queue, all or nothing: PGC_ERR_INVALID (nothing appended)
 * if any item is invalid. Ids first_id, first_id + 1, ... go to the items in order. */
int dump_queue_schedule(dump_queue *q, const char *uri, const dump_queue_spec *specs, size_t n,
                        uint64_t *first_id, char *err, size_t err_len);
/* The id the next scheduled item of the URI will get (to persist items before queueing
 * them). */
uint64_t dump_queue_next_id(const dump_queue *q, const char *uri);
/* Puts back an item read from persistent state (any order; call dump_queue_restore_finish after
 * the last one). */
int dump_queue_restore_item(dump_queue *q, const char *uri, uint64_t id,
                            const dump_queue_spec *spec, uint32_t attempts, char *err,
                            size_t err_len);
int dump_queue_restore_meta(dump_queue *q, const char *uri, int64_t cooldown_ms, uint64_t done,
                            uint64_t next_id, char *err, size_t err_len);
void dump_queue_restore_finish(dump_queue *q);

/* Drops the URI's pending and backing-off items; items outstanding now are dropped when
 * they complete (never requeued). Returns how many items that is, outstanding ones
 * included, with their ids in *ids (malloc'ed, caller frees; NULL when none): none of
 * them is to be handed out again, even after a restart. Or a negative status. */
long dump_queue_stop(dump_queue *q, const char *uri, uint64_t **ids);
int dump_queue_set_cooldown(dump_queue *q, const char *uri, int64_t cooldown_ms);
int64_t dump_queue_cooldown(dump_queue *q, const char *uri);

/* A pulling stream of a URI; stream ids are the caller's, unique per queue. */
int dump_queue_stream_open(dump_queue *q, const char *uri, uint64_t stream_id);

typedef enum dump_queue_outcome {
    DUMP_QUEUE_NOTHING = 0, /* the stream had no outstanding item */
    DUMP_QUEUE_ACKED,       /* done: forget it */
    DUMP_QUEUE_REQUEUED,    /* back in the queue with its attempts and back-off updated */
    DUMP_QUEUE_DROPPED,     /* stopped while outstanding: forget it */
} dump_queue_outcome;

typedef struct dump_queue_completion {
    dump_queue_outcome outcome;
    uint64_t id;
    const dump_queue_item
        *item; /* for DUMP_QUEUE_REQUEUED: the queued item (valid until the next call) */
} dump_queue_completion;

/* The stream's next request: acks its outstanding item (reason NULL or empty) or
 * requeues it. */
dump_queue_completion dump_queue_complete(dump_queue *q, uint64_t stream_id, const char *reason,
                                          int64_t now_ms);
/* The stream ended: its outstanding item, if any, is requeued (reason "stream ended"). */
dump_queue_completion dump_queue_stream_close(dump_queue *q, uint64_t stream_id, int64_t now_ms);

/* Hands items to idle streams: for each stream with no outstanding item and an item it
 * may take now (back-off and cool-down allowing), calls fn with the item (borrowed, valid
 * until that stream's item completes). Returns the earliest time at which another call
 * could hand something out, or INT64_MAX when only a new event can. */
typedef void (*dump_queue_dispatch_fn)(void *arg, const char *uri, uint64_t stream_id,
                                       const dump_queue_item *item);
int64_t dump_queue_dispatch(dump_queue *q, int64_t now_ms, dump_queue_dispatch_fn fn, void *arg);

typedef struct dump_queue_uri_stats {
    const char *uri;      /* borrowed, valid until the next mutating call */
    uint64_t pending;     /* waiting to be handed out, backing-off ones included */
    uint64_t backing_off; /* of which requeued and waiting out their back-off */
    uint64_t outstanding;
    uint64_t done;      /* acked since the schedule began (persisted) */
    uint64_t done_here; /* acked since this process started */
    uint64_t requeued;  /* since this process started */
    uint64_t rows_sent; /* dump rows gateways reported, since this process started */
    uint64_t streams;
    int64_t cooldown_ms;
    int64_t first_done_ms, last_done_ms; /* of done_here; 0 when none */
} dump_queue_uri_stats;

/* Adds the dump rows a gateway reports for the item of `stream_id` it answers. */
void dump_queue_add_rows_sent(dump_queue *q, uint64_t stream_id, uint64_t rows);

size_t dump_queue_uri_count(const dump_queue *q);
/* Stats of the i-th URI (0 <= i < dump_queue_uri_count), in the order URIs were first seen. */
void dump_queue_uri_stats_at(const dump_queue *q, size_t i, dump_queue_uri_stats *out);
/* Items left divided by the done rate of this process; -1 when there is no rate yet. */
int64_t dump_queue_eta_ms(const dump_queue_uri_stats *s, int64_t now_ms);

#endif
