/* Slot gauges from pg_replication_slots (see slot_monitor.h). A failed query drops the
 * connection and tries again at the next interval; the gauges keep their last values. */
#include "roles/agent/slot_monitor.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"

#include <libpq-fe.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const char *const wal_statuses[] = {"reserved", "extended", "unreserved", "lost"};
#define N_STATUSES (sizeof wal_statuses / sizeof wal_statuses[0])

struct slot_monitor {
    char *conninfo, *slot;
    int64_t interval_ms;
    pthread_t thread;
    atomic_bool stopping;
    PGconn *conn;
    metric *behind, *safe, *status[N_STATUSES];
};

static void poll_once(slot_monitor *m)
{
    if (!m->conn || PQstatus(m->conn) != CONNECTION_OK) {
        PQfinish(m->conn);
        m->conn = PQconnectdb(m->conninfo);
        if (PQstatus(m->conn) != CONNECTION_OK)
            return;
    }
    const char *params[] = {m->slot};
    PGresult *r = PQexecParams(m->conn,
                               "SELECT pg_current_wal_lsn() - confirmed_flush_lsn, wal_status, "
                               "safe_wal_size FROM pg_replication_slots WHERE slot_name = $1",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        log_debug("slot metrics query failed", "error=\"%s\"", PQerrorMessage(m->conn));
        PQclear(r);
        PQfinish(m->conn);
        m->conn = NULL;
        return;
    }
    if (PQntuples(r) == 1) {
        if (!PQgetisnull(r, 0, 0))
            metric_set(m->behind, strtod(PQgetvalue(r, 0, 0), NULL));
        const char *st = PQgetisnull(r, 0, 1) ? "" : PQgetvalue(r, 0, 1);
        for (size_t i = 0; i < N_STATUSES; i++)
            metric_set(m->status[i], strcmp(st, wal_statuses[i]) == 0 ? 1 : 0);
        metric_set(m->safe, PQgetisnull(r, 0, 2) ? NAN : strtod(PQgetvalue(r, 0, 2), NULL));
    }
    PQclear(r);
}

static void *monitor_thread(void *arg)
{
    pthread_setname_np(pthread_self(), "pgc-slot-mon");
    slot_monitor *m = arg;
    while (!atomic_load(&m->stopping)) {
        poll_once(m);
        for (int64_t t = 0; t < m->interval_ms && !atomic_load(&m->stopping); t += 50)
            clock_sleep_ms(50);
    }
    PQfinish(m->conn);
    return NULL;
}

slot_monitor *slot_monitor_start(const char *conninfo, const char *slot, const char *source,
                                 int64_t interval_ms)
{
    slot_monitor *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->conninfo = strdup(conninfo);
    m->slot = strdup(slot);
    m->interval_ms = interval_ms;
    atomic_init(&m->stopping, false);
    m->behind = metrics_get(METRIC_AGENT_WAL_BEHIND, source);
    m->safe = metrics_get(METRIC_AGENT_SAFE_WAL_SIZE, source);
    for (size_t i = 0; i < N_STATUSES; i++)
        m->status[i] = metrics_get(METRIC_AGENT_WAL_STATUS, source, wal_statuses[i]);
    if (!m->conninfo || !m->slot || pthread_create(&m->thread, NULL, monitor_thread, m) != 0) {
        free(m->conninfo);
        free(m->slot);
        free(m);
        return NULL;
    }
    return m;
}

void slot_monitor_stop(slot_monitor *m)
{
    if (!m)
        return;
    atomic_store(&m->stopping, true);
    pthread_join(m->thread, NULL);
    free(m->conninfo);
    free(m->slot);
    free(m);
}
