/* A Capture client for integration tests (per-change and batch mode, every ack under the
 * test's control) and the environment it talks to: a source database with table
 * t (id int primary key, v text, n int8), its agent streaming, and a `pgcapture gateway`
 * (with a metrics endpoint) whose config knows URI "<name>-uri" and "<name>-other" (same
 * source, another durable).
 * Everything is stopped and removed at the end of the case; a failing call fails it. */
#ifndef PGC_TEST_CAPCLIENT_H
#define PGC_TEST_CAPCLIENT_H

#include "pgcapture.pb-c.h"
#include "rpc/client.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct cap_env {
    char db[512];
    char name[64];
    char uri[80];
    char agent_log[512], gw_log[512], conf[512];
    pid_t gw_pid;
    pid_t agent_pid;
    char addr[64];
    int metrics_port; /* the gateway's metrics endpoint */
    PGconn *conn;
} cap_env;

/* The environment, with `extra_sql` run on the source first (may be NULL). */
void cap_setup(cap_env *e, const char *extra_sql);
/* The same with extra agent flags (NULL-terminated, may be NULL). */
void cap_setup_with(cap_env *e, const char *extra_sql, const char *const *agent_extra);
/* Starts (again) the gateway with extra flags (NULL-terminated, may be NULL). */
void cap_start_gateway(cap_env *e, const char *const *extra);
/* Prints the tail of the current gateway's log (when a case is about to fail). */
void cap_show_gateway_log(void);

typedef struct cap_client {
    rpc_channel *ch;
    rpc_stream *st;
} cap_client;

/* A Capture stream, without init; with init (TableRegex when regex is not NULL); with init
 * asking for batches of at most batch_limit changes (0: per-change mode). */
cap_client *cap_open_raw(const char *addr);
cap_client *cap_open(const char *addr, const char *uri, const char *regex);
void cap_send_init(cap_client *c, const char *uri, const char *regex);
void cap_send_init_batch(cap_client *c, const char *uri, const char *regex, int batch_limit);
/* Init with every parameter the tests use: TableRegex (regex not NULL), BatchLimit
 * (batch_limit not 0) and Truncate: true (when `truncate`). */
void cap_send_init_with(cap_client *c, const char *uri, const char *regex, int batch_limit,
                        bool truncate);
void cap_send_request(cap_client *c, const Pgcapture__CaptureRequest *req);

/* The next per-change message (checkpoint and change), or the next batch (batch number and
 * items), or NULL after timeout_ms; freed at the end of the case. */
Pgcapture__CaptureMessage *cap_recv(cap_client *c, int timeout_ms);
Pgcapture__CaptureMessage *cap_recv_batch(cap_client *c, int timeout_ms);
/* Exactly n per-change messages. */
void cap_recv_n(cap_client *c, Pgcapture__CaptureMessage **out, int n, int timeout_ms);
/* No per-change message arrives within ms. */
void cap_expect_quiet(cap_client *c, int ms);
/* Waits for the stream's end; returns its gRPC status code. */
int cap_wait_end(cap_client *c, int timeout_ms);

/* Acks (requeue NULL) or requeues one change; acks or requeues a whole batch. */
void cap_ack(cap_client *c, const Pgcapture__Checkpoint *cp, const char *requeue);
void cap_ack_batch(cap_client *c, uint64_t batch, const char *requeue);

/* Waits until the gateway has taken `n` acks of `uri` in all (its metrics say so): acks
 * are fire-and-forget on the wire, and a consumer that leaves right after acking must not
 * leave before they land. */
void cap_wait_acked(const cap_env *e, const char *uri, int n);

/* A field of a change's new row (NULL when absent); its id (a binary int4). */
const Pgcapture__Field *cap_field(const Pgcapture__Change *c, const char *name);
int32_t cap_id_of(const Pgcapture__Change *c);
/* Inserts rows from..to into t (v 'row <i>'), in one transaction when asked. */
void cap_insert_rows(cap_env *e, int from, int to, bool one_txn);

#endif
