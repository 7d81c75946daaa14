/* The controller's dump queues, as a pure state machine with no I/O and no clock of its
 * own (callers pass now_ms): per URI, pending items in schedule order, requeued items
 * waiting out an exponential back-off, one outstanding item per pulling stream, a
 * cool-down between items handed out, and counts for `pgcapture status`.
 *
 * Items carry an id unique within their URI and increasing in schedule order; the
 * controller keys its persistent copy by it. Not thread-safe: one owner. */
#ifndef PGC_ROLES_CONTROLLER_QUEUE_H
#define PGC_ROLES_CONTROLLER_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CQ_MAX_URI_BYTES 1024
#define CQ_MAX_NAME_BYTES 255

typedef struct controller_queue controller_queue;

typedef struct cq_config {
    int64_t backoff_base_ms; /* back-off after the first requeue of an item; doubles after */
    int64_t backoff_max_ms;  /* cap of the back-off */
} cq_config;

/* An item as a client asks for it (borrowed strings). */
typedef struct cq_spec {
    const char *schema;
    const char *table;
    uint32_t page_begin, page_end;
} cq_spec;

typedef struct cq_item {
    uint64_t id;
    char *schema, *table;
    uint32_t page_begin, page_end;
    uint32_t attempts;     /* requeues so far */
    int64_t not_before_ms; /* back-off: not handed out before this */
    bool stopped;          /* outstanding when StopSchedule came: dropped when it completes */
} cq_item;

controller_queue *cq_create(const cq_config *cfg); /* NULL when out of memory */
void cq_destroy(controller_queue *q);              /* NULL is a no-op */

/* Checks one request item: PGC_ERR_INVALID with the reason in err. */
int cq_validate(const char *uri, const cq_spec *spec, char *err, size_t err_len);

/* Appends items to the URI's queue, all or nothing: PGC_ERR_INVALID (nothing appended)
 * if any item is invalid. Ids first_id, first_id + 1, ... go to the items in order. */
int cq_schedule(controller_queue *q, const char *uri, const cq_spec *specs, size_t n,
                uint64_t *first_id, char *err, size_t err_len);
/* The id the next scheduled item of the URI will get (to persist items before queueing
 * them). */
uint64_t cq_next_id(const controller_queue *q, const char *uri);
/* Puts back an item read from persistent state (any order; call cq_restore_finish after
 * the last one). */
int cq_restore_item(controller_queue *q, const char *uri, uint64_t id, const cq_spec *spec,
                    uint32_t attempts, char *err, size_t err_len);
int cq_restore_meta(controller_queue *q, const char *uri, int64_t cooldown_ms, uint64_t done,
                    uint64_t next_id, char *err, size_t err_len);
void cq_restore_finish(controller_queue *q);

/* Drops the URI's pending and backing-off items; items outstanding now are dropped when
 * they complete (never requeued). Returns how many items that is, outstanding ones
 * included, with their ids in *ids (malloc'ed, caller frees; NULL when none): none of
 * them is to be handed out again, even after a restart. Or a negative status. */
long cq_stop(controller_queue *q, const char *uri, uint64_t **ids);
int cq_set_cooldown(controller_queue *q, const char *uri, int64_t cooldown_ms);
int64_t cq_cooldown(controller_queue *q, const char *uri);

/* A pulling stream of a URI; stream ids are the caller's, unique per queue. */
int cq_stream_open(controller_queue *q, const char *uri, uint64_t stream_id);

typedef enum cq_outcome {
    CQ_NOTHING = 0, /* the stream had no outstanding item */
    CQ_ACKED,       /* done: forget it */
    CQ_REQUEUED,    /* back in the queue with its attempts and back-off updated */
    CQ_DROPPED,     /* stopped while outstanding: forget it */
} cq_outcome;

typedef struct cq_completion {
    cq_outcome outcome;
    uint64_t id;
    const cq_item *item; /* for CQ_REQUEUED: the queued item (valid until the next call) */
} cq_completion;

/* The stream's next request: acks its outstanding item (reason NULL or empty) or
 * requeues it. */
cq_completion cq_complete(controller_queue *q, uint64_t stream_id, const char *reason,
                          int64_t now_ms);
/* The stream ended: its outstanding item, if any, is requeued (reason "stream ended"). */
cq_completion cq_stream_close(controller_queue *q, uint64_t stream_id, int64_t now_ms);

/* Hands items to idle streams: for each stream with no outstanding item and an item it
 * may take now (back-off and cool-down allowing), calls fn with the item (borrowed, valid
 * until that stream's item completes). Returns the earliest time at which another call
 * could hand something out, or INT64_MAX when only a new event can. */
typedef void (*cq_dispatch_fn)(void *arg, const char *uri, uint64_t stream_id, const cq_item *item);
int64_t cq_dispatch(controller_queue *q, int64_t now_ms, cq_dispatch_fn fn, void *arg);

typedef struct cq_uri_stats {
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
} cq_uri_stats;

/* Adds the dump rows a gateway reports for the item of `stream_id` it answers. */
void cq_add_rows_sent(controller_queue *q, uint64_t stream_id, uint64_t rows);

size_t cq_uri_count(const controller_queue *q);
/* Stats of the i-th URI (0 <= i < cq_uri_count), in the order URIs were first seen. */
void cq_uri_stats_at(const controller_queue *q, size_t i, cq_uri_stats *out);
/* Items left divided by the done rate of this process; -1 when there is no rate yet. */
int64_t cq_eta_ms(const cq_uri_stats *s, int64_t now_ms);

#endif
