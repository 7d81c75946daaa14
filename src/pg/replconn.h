/* A logical replication connection to the source (libpq, replication=database): slot
 * and publication set-up, START_REPLICATION with pgoutput, reading XLogData and
 * keepalives, and standby status updates. One thread owns a replconn; nothing here logs
 * or retries: errors are returned with context for the agent to decide. */
#ifndef PGC_PG_REPLCONN_H
#define PGC_PG_REPLCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct replconn replconn;

/* Opens both a regular SQL connection (for catalog queries and publication DDL) and a
 * replication connection (replication=database) from one libpq conninfo (URI or
 * key=value, passed to libpq unchanged). Statuses: PGC_ERR_CONN (server unreachable,
 * transient), PGC_ERR_PERMISSION (missing REPLICATION/LOGIN privilege or pg_hba),
 * PGC_ERR_CONFIG (wal_level is not logical, bad conninfo). The error text never contains
 * the password. */
int replconn_open(const char *conninfo, replconn **out, char *err, size_t err_len);
void replconn_destroy(replconn *conn); /* NULL is a no-op */

typedef struct replconn_slot_info {
    bool existed;           /* false: created by this call */
    uint64_t confirmed_lsn; /* confirmed_flush_lsn (or the consistent point if created) */
    bool active_elsewhere;  /* another process holds the slot (only when existed) */
    bool failover;          /* a failover slot: standbys with sync_replication_slots keep it */
} replconn_slot_info;

/* Creates the pgoutput slot if missing. An existing slot of another plugin or database
 * is PGC_ERR_CONFIG; an existing slot in use by another process is PGC_ERR_BUSY. On
 * PostgreSQL 17 and later the slot is a failover slot: created with FAILOVER, or altered to
 * it when it exists without (best effort: `failover` says what it is). */
int replconn_ensure_slot(replconn *conn, const char *slot, replconn_slot_info *info, char *err,
                         size_t err_len);

typedef struct replconn_slot_state {
    bool exists;
    bool lost;                /* invalidated (wal_status 'lost'): the WAL it needs is gone */
    uint64_t confirmed_lsn;   /* confirmed_flush_lsn, 0 when none */
    uint64_t current_wal_lsn; /* the server's WAL position now */
} replconn_slot_state;

/* What the source has of the slot now, without changing anything. */
int replconn_slot_lookup(replconn *conn, const char *slot, replconn_slot_state *st, char *err,
                         size_t err_len);
/* Drops an inactive slot (an invalidated one the operator accepted to replace). */
int replconn_drop_slot(replconn *conn, const char *slot, char *err, size_t err_len);

typedef struct replconn_pub_change {
    int created; /* 1 when the publication was created */
    int added;   /* tables added to an existing publication */
    int removed; /* tables removed from an existing publication */
} replconn_pub_change;

/* Makes the publication match: `tables` NULL (or n_tables 0) means FOR ALL TABLES;
 * otherwise exactly these tables ("schema.table" or "table", quoted as needed), adding
 * and dropping tables of an existing publication to match. A publication that is FOR
 * ALL TABLES while tables are asked (or the other way round) is altered only if possible,
 * else PGC_ERR_CONFIG saying what to do. */
int replconn_ensure_publication(replconn *conn, const char *publication, const char *const *tables,
                                int n_tables, replconn_pub_change *change, char *err,
                                size_t err_len);

/* START_REPLICATION SLOT slot LOGICAL start_lsn (proto_version, publication_names,
 * binary 'true', messages when asked). After this only the replication calls below are
 * valid. PGC_ERR_BUSY when the slot is active for another PID. */
int replconn_start(replconn *conn, const char *slot, const char *publication, uint64_t start_lsn,
                   int proto_version, bool messages, char *err, size_t err_len);

typedef enum replconn_event_kind {
    REPLCONN_NONE = 0, /* nothing arrived within the timeout */
    REPLCONN_XLOGDATA, /* a pgoutput message */
    REPLCONN_KEEPALIVE,
} replconn_event_kind;

typedef struct replconn_event {
    replconn_event_kind kind;
    uint64_t wal_start;   /* XLogData: start LSN of the record; keepalive: 0 */
    uint64_t wal_end;     /* server's current WAL end */
    int64_t server_time;  /* microseconds since 2000-01-01 */
    bool reply_requested; /* keepalive: the server asks for a status update now */
    const uint8_t *data;  /* XLogData: the pgoutput message (after the 'w' header) */
    size_t len;
} replconn_event;

/* Waits up to timeout_ms (0: do not wait) for the next message. The event's data stays
 * valid until the next call of replconn_read or replconn_destroy. PGC_ERR_CONN when the
 * connection is lost, PGC_ERR_MALFORMED for a CopyData message that is not 'w' or 'k' or
 * is shorter than its header, PGC_ERR_STATE when the server ended the stream. */
int replconn_read(replconn *conn, int timeout_ms, replconn_event *ev, char *err, size_t err_len);

/* Standby status update ('r'): write/flush/apply positions; the server treats `flush` as
 * confirmed_flush_lsn, so it must never exceed what is durable downstream. */
int replconn_send_status(replconn *conn, uint64_t write_lsn, uint64_t flush_lsn, uint64_t apply_lsn,
                         bool reply_requested, char *err, size_t err_len);

/* The socket of the replication connection, for poll(). */
int replconn_socket(const replconn *conn);

/* Current server time in microseconds since 2000-01-01 (PostgreSQL's epoch). */
int64_t replconn_now_pg_us(void);

#endif
