/* Internals shared by the controller's files:
 *   controller.c           the inbox and the controller thread that owns everything
 *   controller_requests.c  the gRPC requests: Schedule, StopSchedule, SetScheduleCoolDown,
 *                          Status and the PullDumpInfo streams
 *   controller_store.c     the key-value bucket: items and counters written, deleted,
 *                          purged, and restored at start-up
 * Every function here runs on the controller thread. Not a public header. */
#ifndef PGC_ROLES_CONTROLLER_PRIVATE_H
#define PGC_ROLES_CONTROLLER_PRIVATE_H

#include "roles/controller/controller.h"

#include "jetstream/jskv.h"
#include "jetstream/natsprobe.h"
#include "roles/controller/controller_acl.h"
#include "roles/controller/dump_queue.h"
#include "rpc/health.h"
#include "rpc/server.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONTROLLER_ERR_LEN 512

typedef enum controller_method {
    CONTROLLER_PULL = 0,
    CONTROLLER_SCHEDULE,
    CONTROLLER_STOP,
    CONTROLLER_COOLDOWN,
    CONTROLLER_STATUS,
} controller_method;

typedef enum controller_event_kind {
    CONTROLLER_EV_MESSAGE,    /* a request message of any method */
    CONTROLLER_EV_HALF_CLOSE, /* a pull stream's client stopped sending */
    CONTROLLER_EV_DONE,       /* a pull stream is over */
} controller_event_kind;

typedef struct controller_event {
    struct controller_event *next;
    controller_event_kind kind;
    controller_method method;
    rpc_call *call; /* referenced; the controller thread unrefs */
    uint8_t *data;
    size_t len;
} controller_event;

/* One PullDumpInfo stream, owned by the controller thread once its first event is
 * handled (created on the completion-queue thread in on_start). */
typedef struct pull_stream {
    uint64_t id;
    rpc_call *call; /* referenced until CONTROLLER_EV_DONE is handled */
    /* The stream's last event, allocated with it: its end is queued even when memory
     * runs out, so its item is requeued. */
    controller_event *done_event;
    char *uri;   /* NULL until the first request */
    bool closed; /* its queue stream is closed (item requeued) */
} pull_stream;

typedef struct controller {
    const controller_config *cfg;
    dump_queue *q;
    jskv *kv;
    rpc_server *srv;
    rpc_health *health; /* grpc.health.v1: NOT_SERVING while NATS is unreachable */
    natsprobe *nats_probe;

    controller_acl *acl; /* NULL: everyone may do everything */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    controller_event *head, *tail;
    size_t queued; /* events in the inbox, under mu */

    uint64_t next_stream_id; /* under mu */
    pull_stream **streams;   /* controller thread only */
    size_t n_streams, cap_streams;
} controller;

/* controller_requests.c: each answers (or ends) its call. */
void controller_requests_schedule(controller *c, rpc_call *call, const uint8_t *data, size_t len);
void controller_requests_stop(controller *c, rpc_call *call, const uint8_t *data, size_t len);
void controller_requests_cooldown(controller *c, rpc_call *call, const uint8_t *data, size_t len);
void controller_requests_status(controller *c, rpc_call *call, const uint8_t *data, size_t len);
/* An event of a PullDumpInfo stream; frees the stream on CONTROLLER_EV_DONE. */
void controller_requests_pull(controller *c, const controller_event *e);
/* dump_queue_dispatch's callback: hands an item to its pull stream. */
void controller_requests_dispatch(void *arg, const char *uri, uint64_t stream_id,
                                  const dump_queue_item *item);

/* controller_store.c */
/* Loads the items and counters the bucket holds into the queue. 0, or -1 (logged). */
int controller_store_restore(controller *c);
int controller_store_meta(controller *c, const char *uri, char *err, size_t err_len);
int controller_store_item(controller *c, const char *uri, const dump_queue_item *it, char *err,
                          size_t err_len);
/* Deletes a finished item's key; a failure is logged (the item comes back after a
 * restart). */
void controller_store_forget(controller *c, const char *uri, uint64_t id);
/* Once a URI has nothing pending or outstanding, drops the markers of its finished items. */
void controller_store_purge_if_drained(controller *c, const char *uri);

#endif
