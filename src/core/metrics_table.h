/* Every metric pgcapture exports, in one table: the registry, the exposition, the
 * alerts (deploy/prometheus/alerts.yml) and docs/operations.md follow it.
 * X(ID, type, name, labels, buckets, help): type COUNTER, GAUGE or HISTOGRAM; labels a
 * comma-separated list of label names ("" for none); buckets a bucket set of metrics.h
 * (NONE unless a histogram). Names follow Prometheus conventions: pgcapture_ prefix, base
 * units (seconds, bytes), _total on counters. LSNs are exported as their 64-bit value. */
#ifndef PGC_CORE_METRICS_TABLE_H
#define PGC_CORE_METRICS_TABLE_H

#define PGC_METRICS_TABLE(X)                                                                       \
    X(BUILD_INFO, GAUGE, "pgcapture_build_info", "version,role", NONE,                             \
      "Always 1: the version and the role this process runs")                                      \
    /* agent */                                                                                    \
    X(AGENT_CONFIRMED_LSN, GAUGE, "pgcapture_agent_slot_confirmed_lsn", "source", NONE,            \
      "Last LSN the agent confirmed to PostgreSQL (held durably in JetStream)")                    \
    X(AGENT_WAL_BEHIND, GAUGE, "pgcapture_agent_slot_wal_behind_bytes", "source", NONE,            \
      "WAL the slot holds on the source: pg_current_wal_lsn() minus the slot's "                   \
      "confirmed_flush_lsn")                                                                       \
    X(AGENT_WAL_STATUS, GAUGE, "pgcapture_agent_slot_wal_status", "source,status", NONE,           \
      "1 for the slot's current wal_status (reserved, extended, unreserved, lost), 0 for the "     \
      "others")                                                                                    \
    X(AGENT_SAFE_WAL_SIZE, GAUGE, "pgcapture_agent_slot_safe_wal_size_bytes", "source", NONE,      \
      "WAL that can still be written before the slot is lost (NaN when "                           \
      "max_slot_wal_keep_size is unlimited)")                                                      \
    X(AGENT_CHANGES_READ, COUNTER, "pgcapture_agent_changes_read_total", "source", NONE,           \
      "Row changes (insert, update, delete, truncate) read from the slot")                         \
    X(AGENT_TXNS_READ, COUNTER, "pgcapture_agent_transactions_read_total", "source", NONE,         \
      "Transactions read from the slot")                                                           \
    X(AGENT_CHANGES_PUBLISHED, COUNTER, "pgcapture_agent_changes_published_total", "source", NONE, \
      "Row changes acknowledged by JetStream")                                                     \
    X(AGENT_TXNS_PUBLISHED, COUNTER, "pgcapture_agent_transactions_published_total", "source",     \
      NONE, "Transactions whose commit JetStream acknowledged")                                    \
    X(AGENT_PUBLISH_LATENCY, HISTOGRAM, "pgcapture_agent_publish_latency_seconds", "source",       \
      SECONDS, "Time from sending a batch to JetStream to its acknowledgement")                    \
    X(AGENT_BATCH_BYTES, HISTOGRAM, "pgcapture_agent_batch_size_bytes", "source", BYTES,           \
      "Size of each batch published to JetStream")                                                 \
    X(AGENT_IN_FLIGHT_BYTES, GAUGE, "pgcapture_agent_in_flight_bytes", "source", NONE,             \
      "Bytes published and not yet acknowledged by JetStream")                                     \
    X(AGENT_RECONNECTS, COUNTER, "pgcapture_agent_reconnects_total", "source", NONE,               \
      "Sessions restarted after a PostgreSQL or NATS failure")                                     \
    X(AGENT_LAST_COMMIT_TIME, GAUGE, "pgcapture_agent_last_commit_timestamp_seconds", "source",    \
      NONE, "Source commit time of the last transaction read (Unix time)")                         \
    /* gateway */                                                                                  \
    X(GATEWAY_STREAMS, GAUGE, "pgcapture_gateway_streams", "uri", NONE,                            \
      "Capture streams open on the URI")                                                           \
    X(GATEWAY_CHANGES_SENT, COUNTER, "pgcapture_gateway_changes_sent_total", "uri", NONE,          \
      "Live changes sent to consumers (redeliveries included)")                                    \
    X(GATEWAY_CHANGES_ACKED, COUNTER, "pgcapture_gateway_changes_acked_total", "uri", NONE,        \
      "Changes consumers acknowledged")                                                            \
    X(GATEWAY_CHANGES_REQUEUED, COUNTER, "pgcapture_gateway_changes_requeued_total", "uri", NONE,  \
      "Changes consumers requeued (to the retry stream)")                                          \
    X(GATEWAY_ACK_LATENCY, HISTOGRAM, "pgcapture_gateway_ack_latency_seconds", "uri", SECONDS,     \
      "Time from sending a change to its ack or requeue")                                          \
    X(GATEWAY_PENDING, GAUGE, "pgcapture_gateway_pending_messages", "uri", NONE,                   \
      "Consumer lag: JetStream messages of the URI's durable not yet delivered or acked")          \
    X(GATEWAY_LAG, GAUGE, "pgcapture_gateway_lag_seconds", "uri", NONE,                            \
      "Consumer lag in commit time: age of the oldest unacked change sent, 0 when none")           \
    X(GATEWAY_DUMP_ROWS, COUNTER, "pgcapture_gateway_dump_rows_sent_total", "uri", NONE,           \
      "Dump rows sent to consumers")                                                               \
    X(GATEWAY_HOLD, HISTOGRAM, "pgcapture_gateway_hold_duration_seconds", "uri", SECONDS,          \
      "How long each dump held live changes back (its _sum is the total hold time)")               \
    X(GATEWAY_DEAD_LETTERED, COUNTER, "pgcapture_gateway_dead_lettered_total", "uri", NONE,        \
      "Changes requeued --max-requeues times, moved to the URI's dead-letter subject")             \
    X(GATEWAY_DATA_LOSS, COUNTER, "pgcapture_gateway_data_loss_total", "uri", NONE,                \
      "Capture streams ended with DATA_LOSS: changes of the URI gone before they were delivered")  \
    /* controller */                                                                               \
    X(CONTROLLER_PENDING, GAUGE, "pgcapture_controller_items_pending", "uri", NONE,                \
      "Dump items scheduled and not yet handed to a gateway")                                      \
    X(CONTROLLER_OUTSTANDING, GAUGE, "pgcapture_controller_items_outstanding", "uri", NONE,        \
      "Dump items handed to a gateway and not yet finished")                                       \
    X(CONTROLLER_DONE, COUNTER, "pgcapture_controller_items_done_total", "uri", NONE,              \
      "Dump items finished")                                                                       \
    X(CONTROLLER_REQUEUES, COUNTER, "pgcapture_controller_requeues_total", "uri", NONE,            \
      "Dump items put back in the queue (a gateway or consumer went away or failed)")              \
    X(CONTROLLER_COOLDOWNS, COUNTER, "pgcapture_controller_cooldown_waits_total", "uri", NONE,     \
      "Dump items held back by a cool-down")                                                       \
    /* replica applier */                                                                          \
    X(REPLICA_APPLIED_LSN, GAUGE, "pgcapture_replica_applied_lsn", "source", NONE,                 \
      "Commit LSN of the last source transaction applied on the replica")                          \
    X(REPLICA_LAG_BYTES, GAUGE, "pgcapture_replica_lag_bytes", "source", NONE,                     \
      "WAL between the applied LSN and the newest LSN in the log, 0 when caught up")               \
    X(REPLICA_LAG_SECONDS, GAUGE, "pgcapture_replica_lag_seconds", "source", NONE,                 \
      "Age of the last applied source commit while the log holds more, 0 when caught up")          \
    X(REPLICA_TXNS_APPLIED, COUNTER, "pgcapture_replica_transactions_applied_total", "source",     \
      NONE, "Source transactions applied on the replica")                                          \
    X(REPLICA_ROWS_APPLIED, COUNTER, "pgcapture_replica_rows_applied_total", "source", NONE,       \
      "Row changes applied on the replica")                                                        \
    X(REPLICA_CONFLICTS, COUNTER, "pgcapture_replica_conflicts_total", "source", NONE,             \
      "Changes the replica refused (a row missing or conflicting): each stops the applier")

#endif
