/* Asynchronous publisher of the agent's batches to one JetStream stream. The stream is
 * created when missing (file storage, limits retention); publishes are asynchronous and
 * each carries an expected last stream sequence, so a failed publish makes every later
 * in-flight one fail too and the log never gets a gap. Acks and failures come back on
 * libnats threads and are queued here; the owner thread drains them with jspub_poll
 * (the wake-up fd lets it poll() them together with its other sockets). */
#ifndef PGC_JETSTREAM_JSPUB_H
#define PGC_JETSTREAM_JSPUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/logpos.h"

typedef struct jspub jspub;

typedef struct jspub_config {
    const char *nats_url; /* comma-separated server URLs */
    const char *stream;   /* e.g. PGCAPTURE_main */
    const char *subject;  /* e.g. pgcapture.main.log (the stream's only subject) */
    int64_t max_age_ms;   /* 0: unlimited */
    int64_t max_bytes;    /* 0 or negative: unlimited */
    int64_t duplicate_window_ms;
    int replicas;           /* 1 or 3 */
    int64_t max_pending;    /* async publishes in flight at most */
    int64_t ack_timeout_ms; /* a publish not acked within this fails (0: 10 s) */
} jspub_config;

/* Connects, creates the stream if missing (and says so in `created`), or updates its
 * limits when they differ from the config. PGC_ERR_CONN when NATS is unreachable
 * (transient), PGC_ERR_CONFIG when the stream exists with other subjects. */
int jspub_create(const jspub_config *cfg, jspub **out, bool *created, char *err, size_t err_len);
void jspub_destroy(jspub *p); /* NULL is a no-op; drops whatever is still in flight */

/* The last message on the subject: its stream sequence (0 when the stream is empty), its
 * Pgc-Last position, and its Pgc-Part i/n if it is a part. Also sets the sequence the
 * next publish expects to the stream's last sequence. */
typedef struct jspub_last {
    uint64_t stream_seq;
    bool empty;
    log_pos last;         /* Pgc-Last of the last message */
    uint32_t part, parts; /* 0, 0 unless the last message is a part */
} jspub_last;
int jspub_read_last(jspub *p, jspub_last *out, char *err, size_t err_len);

typedef struct jspub_headers {
    log_pos first, last;  /* Pgc-First, Pgc-Last; Nats-Msg-Id is derived from `last` */
    uint32_t count;       /* Pgc-Count: protocol Messages in this batch */
    uint32_t part, parts; /* Pgc-Part i/n when parts > 1 (then Nats-Msg-Id gets ".i") */
} jspub_headers;

/* Publishes `data` asynchronously with ExpectLastSeq set to the sequence the publisher
 * tracks (from jspub_read_last or jspub_reset, plus one per publish since; no
 * expectation while it is 0, i.e. for the first message of an empty stream). `token`
 * comes back in the ack event. Copies data. PGC_ERR_CONN when the connection is closed.
 * Never blocks longer than the stall wait when max_pending publishes are in flight
 * (then PGC_ERR_TIMEOUT: poll acks and try again). */
int jspub_publish(jspub *p, const uint8_t *data, size_t len, const jspub_headers *h, uint64_t token,
                  char *err, size_t err_len);

typedef struct jspub_ack {
    uint64_t token;
    bool ok;        /* false: this publish failed (see error) */
    bool duplicate; /* the server already had this Nats-Msg-Id */
    uint64_t stream_seq;
    char error[256];
} jspub_ack;

/* Moves up to `max` queued ack events into `out`, in publish order; returns how many. */
int jspub_poll(jspub *p, jspub_ack *out, int max);
/* An fd that is readable while ack events are queued (poll() it with POLLIN). */
int jspub_wakeup_fd(const jspub *p);
/* Publishes in flight (published, not yet acked or failed). */
int64_t jspub_in_flight(const jspub *p);
/* Forgets everything in flight (after a failure, before re-reading the last message):
 * acks that arrive later for them are dropped. */
void jspub_reset(jspub *p, uint64_t expect_last_seq);
/* The stream's replica count as its info said at create (one replica: an ack is durable
 * only after that server's next fsync). */
int jspub_replicas(const jspub *p);

#endif
