/* The gateway's metric series of one consumer URI (core/metrics_table.h), looked up once
 * per Capture stream so the stream's hot paths only touch atomics. */
#ifndef PGC_ROLES_GATEWAY_URI_METRICS_H
#define PGC_ROLES_GATEWAY_URI_METRICS_H

#include "core/metrics.h"

typedef struct uri_metrics {
    metric *streams, *sent, *acked, *requeued, *dead_lettered, *ack_latency, *pending, *lag,
        *dump_rows, *hold, *data_loss;
} uri_metrics;

void uri_metrics_init(uri_metrics *m, const char *uri);

#endif
