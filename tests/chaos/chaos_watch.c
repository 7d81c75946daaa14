/* The chaos run's durability sampler: every 250 ms it reads the slot's confirmed_flush_lsn
 * on the source, THEN the position of the last message the log holds, and appends both as
 * one line "CONFIRMED LAST_LSN LAST_SEQ" (decimal). Reading in that order makes the check
 * sound: whatever PostgreSQL had been told was durable before the first read must already
 * be in the log read second. A sample that cannot be taken (server down) is skipped.
 *
 *   chaos_watch CONNINFO SLOT NATS_URLS STREAM SUBJECT OUT_FILE
 */
#include "codec/logpos.h"
#include "jetstream/jsurl.h"

#include <libpq-fe.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The slot's confirmed_flush_lsn; false when it cannot be read now. */
static bool read_confirmed(PGconn **conn, const char *conninfo, const char *slot, uint64_t *out)
{
    if (*conn && PQstatus(*conn) != CONNECTION_OK) {
        PQfinish(*conn);
        *conn = NULL;
    }
    if (!*conn) {
        *conn = PQconnectdb(conninfo);
        if (PQstatus(*conn) != CONNECTION_OK) {
            PQfinish(*conn);
            *conn = NULL;
            return false;
        }
    }
    const char *params[1] = {slot};
    PGresult *r = PQexecParams(*conn,
                               "SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                               "WHERE slot_name = $1 AND confirmed_flush_lsn IS NOT NULL",
                               1, NULL, params, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
              logpos_parse_lsn(PQgetvalue(r, 0, 0), out);
    PQclear(r);
    return ok;
}

/* The Pgc-Last position of the log's last message ({0,0} for an empty log); false when the
 * log cannot be read now. */
static bool read_last(jsCtx *js, const char *stream, const char *subject, log_pos *out)
{
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetLastMsg(&m, js, stream, subject, NULL, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) {
        *out = (log_pos){0, 0};
        return true;
    }
    if (s != NATS_OK)
        return false;
    const char *last = NULL;
    bool ok = natsMsgHeader_Get(m, "Pgc-Last", &last) == NATS_OK && last && logpos_parse(last, out);
    natsMsg_Destroy(m);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: chaos_watch CONNINFO SLOT NATS_URLS STREAM SUBJECT OUT_FILE\n");
        return 2;
    }
    const char *conninfo = argv[1], *slot = argv[2], *urls = argv[3], *stream = argv[4],
               *subject = argv[5];
    FILE *out = fopen(argv[6], "a");
    natsOptions *opts = NULL;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    if (!out || natsOptions_Create(&opts) != NATS_OK || jsurl_set_servers(opts, urls) != NATS_OK ||
        natsOptions_SetMaxReconnect(opts, -1) != NATS_OK ||
        natsOptions_SetReconnectWait(opts, 100) != NATS_OK ||
        natsOptions_SetRetryOnFailedConnect(opts, true, NULL, NULL) != NATS_OK ||
        natsOptions_SetTimeout(opts, 2000) != NATS_OK ||
        natsConnection_Connect(&nc, opts) != NATS_OK ||
        natsConnection_JetStream(&js, nc, NULL) != NATS_OK) {
        fprintf(stderr, "chaos_watch: cannot open %s or connect to NATS: %s\n", argv[6],
                nats_GetLastError(NULL));
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    PGconn *pg = NULL;
    unsigned long taken = 0, skipped = 0;
    while (!stopping) {
        uint64_t confirmed;
        log_pos last;
        if (read_confirmed(&pg, conninfo, slot, &confirmed) &&
            read_last(js, stream, subject, &last)) {
            fprintf(out, "%llu %llu %u\n", (unsigned long long)confirmed,
                    (unsigned long long)last.lsn, last.seq);
            fflush(out);
            taken++;
        } else {
            skipped++;
        }
        sleep_ms(250);
    }
    printf("chaos_watch: %lu samples taken, %lu skipped\n", taken, skipped);
    PQfinish(pg);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(opts);
    fclose(out);
    return 0;
}
