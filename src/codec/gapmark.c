/* The gap marker's Messages (see gapmark.h). */
#include "codec/gapmark.h"

#include "core/clock.h"
#include "core/status.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define OID_TEXT 25
#define OID_PG_LSN 3220
#define OID_TIMESTAMPTZ 1184

static void text_field(gapmark *g, int i, const char *name, uint32_t oid, const char *value)
{
    Pgcapture__Field *f = &g->fields[i];
    pgcapture__field__init(f);
    f->name = (char *)name;
    f->oid = oid;
    f->value_case = PGCAPTURE__FIELD__VALUE_TEXT;
    f->text = (char *)value;
    g->ptrs[i] = f;
}

/* timestamptz in PostgreSQL's ISO output with UTC: "2026-11-28 00:13:20.123456+00". */
static void format_time(int64_t unix_us, char out[40])
{
    time_t t = (time_t)(unix_us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%06d+00", (int)(unix_us % 1000000));
}

int gapmark_build(gapmark *g, log_pos log_last, uint64_t resume_lsn, bool invalidated,
                  int64_t unix_us, char *err, size_t err_len)
{
    memset(g, 0, sizeof *g);
    uint64_t lsn = resume_lsn ? resume_lsn - 1 : 0;
    for (uint32_t i = 0; i < 3; i++)
        g->pos[i] = (log_pos){lsn, i};
    char last[LOGPOS_TEXT_LEN], wal[LOGPOS_LSN_LEN];
    logpos_format(log_last, last);
    logpos_format_lsn(resume_lsn, wal);
    if (logpos_cmp(g->pos[0], log_last) <= 0)
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "gap marker: the log's last position %s is not before the source's "
                          "WAL position %s",
                          last, wal);
    int64_t pg_us = unix_us - CLOCK_PG_EPOCH_UNIX_S * 1000000;
    logpos_format(log_last, g->after);
    logpos_format_lsn(resume_lsn, g->resume);
    format_time(unix_us, g->at);

    pgcapture__begin__init(&g->begin);
    g->begin.final_lsn = lsn;
    g->begin.commit_time = (uint64_t)pg_us;
    pgcapture__change__init(&g->change);
    g->change.op = PGCAPTURE__CHANGE__OPERATION__INSERT;
    g->change.schema = GAPMARK_SCHEMA;
    g->change.table = GAPMARK_TABLE;
    text_field(g, 0, "after", OID_TEXT, g->after);
    text_field(g, 1, "resume_lsn", OID_PG_LSN, g->resume);
    text_field(g, 2, "reason", OID_TEXT,
               invalidated ? GAPMARK_REASON_INVALIDATED : GAPMARK_REASON_LOST);
    text_field(g, 3, "detected_at", OID_TIMESTAMPTZ, g->at);
    g->change.new_ = g->ptrs;
    g->change.n_new_ = 4;
    pgcapture__commit__init(&g->commit);
    g->commit.commit_lsn = lsn;
    g->commit.end_lsn = resume_lsn;
    g->commit.commit_time = (uint64_t)pg_us;

    for (int i = 0; i < 3; i++)
        pgcapture__message__init(&g->msg[i]);
    g->msg[0].type_case = PGCAPTURE__MESSAGE__TYPE_BEGIN;
    g->msg[0].begin = &g->begin;
    g->msg[1].type_case = PGCAPTURE__MESSAGE__TYPE_CHANGE;
    g->msg[1].change = &g->change;
    g->msg[2].type_case = PGCAPTURE__MESSAGE__TYPE_COMMIT;
    g->msg[2].commit = &g->commit;
    return PGC_OK;
}

bool gapmark_is_marker(const char *schema, size_t schema_len, const char *table, size_t table_len)
{
    return schema_len == strlen(GAPMARK_SCHEMA) && table_len == strlen(GAPMARK_TABLE) &&
           memcmp(schema, GAPMARK_SCHEMA, schema_len) == 0 &&
           memcmp(table, GAPMARK_TABLE, table_len) == 0;
}
