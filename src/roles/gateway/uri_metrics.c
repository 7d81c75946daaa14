/* Series lookup for uri_metrics (see uri_metrics.h). */
#include "roles/gateway/uri_metrics.h"

void uri_metrics_init(uri_metrics *m, const char *uri)
{
    m->streams = metrics_get(METRIC_GATEWAY_STREAMS, uri);
    m->sent = metrics_get(METRIC_GATEWAY_CHANGES_SENT, uri);
    m->acked = metrics_get(METRIC_GATEWAY_CHANGES_ACKED, uri);
    m->requeued = metrics_get(METRIC_GATEWAY_CHANGES_REQUEUED, uri);
    m->dead_lettered = metrics_get(METRIC_GATEWAY_DEAD_LETTERED, uri);
    m->ack_latency = metrics_get(METRIC_GATEWAY_ACK_LATENCY, uri);
    m->pending = metrics_get(METRIC_GATEWAY_PENDING, uri);
    m->lag = metrics_get(METRIC_GATEWAY_LAG, uri);
    m->dump_rows = metrics_get(METRIC_GATEWAY_DUMP_ROWS, uri);
    m->hold = metrics_get(METRIC_GATEWAY_HOLD, uri);
    m->data_loss = metrics_get(METRIC_GATEWAY_DATA_LOSS, uri);
    /* Exported at 0 for the URI: the gateway has no dead-letter policy (yet). */
    metrics_get(METRIC_GATEWAY_DEAD_LETTERED, uri);
}
