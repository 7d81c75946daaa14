/* The chaos checker's view of the log (see chaoslog.h). */
#include "chaoslog.h"

#include "harness/runner.h"
#include "harness/streamread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct build {
    chaos_log *log;
    size_t cap_changes, cap_txns;
    bool in_txn, any;
    chaos_txn cur;
    uint32_t expect_seq;
    log_pos prev;
} build;

static void shape_error(chaos_log *log, log_pos pos, const char *what)
{
    if (log->shape_errors++ == 0) {
        char p[LOGPOS_TEXT_LEN];
        logpos_format(pos, p);
        snprintf(log->shape_error, sizeof log->shape_error, "at %s: %s", p, what);
    }
}

static void *grow(void *items, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return items;
    *cap = *cap ? *cap * 2 : 4096;
    void *p = realloc(items, *cap * size);
    if (!p)
        abort();
    return p;
}

/* An integer column in binary (2, 4 or 8 bytes, big-endian) or text form. */
static bool field_int(const Pgcapture__Field *f, int64_t *out)
{
    if (!f)
        return false;
    if (f->value_case == PGCAPTURE__FIELD__VALUE_TEXT) {
        *out = atoll(f->text);
        return true;
    }
    if (f->value_case != PGCAPTURE__FIELD__VALUE_BINARY)
        return false;
    size_t n = f->binary.len;
    if (n != 2 && n != 4 && n != 8)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | f->binary.data[i];
    if (n < 8 && (v >> (n * 8 - 1)) & 1)
        v |= ~(uint64_t)0 << (n * 8); /* sign-extend */
    *out = (int64_t)v;
    return true;
}

static bool field_text(const Pgcapture__Field *f, const char **s, size_t *len)
{
    if (f && f->value_case == PGCAPTURE__FIELD__VALUE_TEXT) {
        *s = f->text;
        *len = strlen(f->text);
        return true;
    }
    if (f && f->value_case == PGCAPTURE__FIELD__VALUE_BINARY) {
        *s = (const char *)f->binary.data; /* text's binary form is its bytes */
        *len = f->binary.len;
        return true;
    }
    return false;
}

void chaos_big_parse(const char *s, size_t len, chaos_row *row)
{
    row->big = BIG_MALFORMED;
    row->big_len = (uint32_t)len;
    const char *dot = memchr(s, '.', len < 24 ? len : 24);
    if (!dot || dot == s)
        return;
    size_t unit = (size_t)(dot - s) + 1;
    if (len % unit != 0)
        return;
    for (size_t i = unit; i < len; i += unit)
        if (memcmp(s + i, s, unit) != 0)
            return;
    char tok[32];
    memcpy(tok, s, unit - 1);
    tok[unit - 1] = '\0';
    row->big_token = atoll(tok);
    row->big = BIG_VALUE;
}

bool chaos_payload_matches(const char *s, size_t len, const chaos_row *row)
{
    char want[96];
    int n = snprintf(want, sizeof want, "v%lld-%d-%lld", (long long)row->ver, (int)row->w,
                     (long long)row->txn);
    return n > 0 && (size_t)n == len && memcmp(want, s, len) == 0;
}

static void read_items_row(const Pgcapture__Change *c, chaos_row *r)
{
    bool old = c->op == PGCAPTURE__CHANGE__OPERATION__DELETE;
    field_int(stream_field(c, "id", old), &r->id);
    if (old)
        return;
    int64_t w = 0;
    field_int(stream_field(c, "ver", 0), &r->ver);
    field_int(stream_field(c, "txn", 0), &r->txn);
    field_int(stream_field(c, "w", 0), &w);
    r->w = (int32_t)w;
    const char *s;
    size_t len;
    r->payload_ok =
        field_text(stream_field(c, "payload", 0), &s, &len) && chaos_payload_matches(s, len, r);
    const Pgcapture__Field *big = stream_field(c, "big", 0);
    if (!big)
        r->big = BIG_ABSENT;
    else if (big->value_case == PGCAPTURE__FIELD__VALUE__NOT_SET)
        r->big = BIG_NULL;
    else if (field_text(big, &s, &len))
        chaos_big_parse(s, len, r);
    else
        r->big = BIG_MALFORMED;
}

static void read_txns_row(const Pgcapture__Change *c, chaos_row *r)
{
    int64_t w = -1;
    field_int(stream_field(c, "w", 0), &w);
    r->w = (int32_t)w;
    field_int(stream_field(c, "k", 0), &r->txn);
    field_int(stream_field(c, "items", 0), &r->n_items);
    field_int(stream_field(c, "scratch", 0), &r->n_scratch);
    field_int(stream_field(c, "truncs", 0), &r->n_truncs);
    field_int(stream_field(c, "ddl", 0), &r->n_ddl);
    field_int(stream_field(c, "keyless", 0), &r->n_keyless);
}

static chaos_table classify(const char *schema, const char *table)
{
    if (strcmp(schema, "public") == 0) {
        if (strcmp(table, "items") == 0)
            return CT_ITEMS;
        if (strcmp(table, "txns") == 0)
            return CT_TXNS;
        if (strcmp(table, "scratch") == 0)
            return CT_SCRATCH;
        if (strcmp(table, "keyless") == 0)
            return CT_KEYLESS;
    }
    if (strcmp(schema, "pgcapture") == 0 && strcmp(table, "ddl_logs") == 0)
        return CT_DDL;
    return CT_OTHER;
}

static void add_change(build *b, log_pos pos, const Pgcapture__Change *c)
{
    chaos_log *log = b->log;
    log->changes = grow(log->changes, &b->cap_changes, log->n_changes, sizeof *log->changes);
    chaos_change *ch = &log->changes[log->n_changes++];
    memset(ch, 0, sizeof *ch);
    ch->pos = pos;
    ch->op = (int)c->op;
    ch->table = classify(c->schema, c->table);
    if (ch->table == CT_ITEMS)
        read_items_row(c, &ch->row);
    else if (ch->table == CT_TXNS)
        read_txns_row(c, &ch->row);
    else if (ch->table == CT_SCRATCH && c->op != PGCAPTURE__CHANGE__OPERATION__TRUNCATE)
        field_int(stream_field(c, "id", c->op == PGCAPTURE__CHANGE__OPERATION__DELETE),
                  &ch->row.id);
}

static void on_message(log_pos pos, const Pgcapture__Message *m, void *arg)
{
    build *b = arg;
    chaos_log *log = b->log;
    if (b->any && logpos_cmp(pos, b->prev) <= 0)
        shape_error(log, pos, "position does not increase");
    b->any = true;
    b->prev = pos;
    switch (m->type_case) {
    case PGCAPTURE__MESSAGE__TYPE_BEGIN:
        if (b->in_txn)
            shape_error(log, pos, "Begin inside a transaction");
        b->in_txn = true;
        b->cur = (chaos_txn){m->begin->final_lsn, {0, 0}, log->n_changes, 0};
        b->expect_seq = 1;
        if (pos.seq != 0)
            shape_error(log, pos, "Begin with seq other than 0");
        break;
    case PGCAPTURE__MESSAGE__TYPE_CHANGE:
        if (!b->in_txn || pos.lsn != b->cur.lsn || pos.seq != b->expect_seq)
            shape_error(log, pos, "Change out of its transaction's sequence");
        b->expect_seq++;
        add_change(b, pos, m->change);
        break;
    case PGCAPTURE__MESSAGE__TYPE_COMMIT:
        if (!b->in_txn || pos.seq != b->expect_seq || m->commit->commit_lsn != b->cur.lsn)
            shape_error(log, pos, "Commit out of its transaction's sequence");
        b->in_txn = false;
        b->cur.commit_pos = pos;
        b->cur.n = log->n_changes - b->cur.first;
        log->txns = grow(log->txns, &b->cap_txns, log->n_txns, sizeof *log->txns);
        log->txns[log->n_txns++] = b->cur;
        break;
    default:
        shape_error(log, pos, "unexpected message type");
    }
}

chaos_log *chaos_log_read(const char *name)
{
    chaos_log *log = calloc(1, sizeof *log);
    if (!log)
        abort();
    build b;
    memset(&b, 0, sizeof b);
    b.log = log;
    stream_scan(name, on_message, &b);
    /* A transaction still open at the end is the agent's work in progress, not a fault:
     * quiescence waits for it, and the checks compare committed transactions only. */
    return log;
}

void chaos_log_free(chaos_log *log)
{
    if (!log)
        return;
    free(log->changes);
    free(log->txns);
    free(log);
}

const chaos_change *chaos_log_find(const chaos_log *log, log_pos pos)
{
    size_t lo = 0, hi = log->n_changes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = logpos_cmp(log->changes[mid].pos, pos);
        if (c == 0)
            return &log->changes[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *chaos_table_name(chaos_table t)
{
    static const char *names[] = {"items", "txns", "scratch", "ddl_logs", "keyless", "other"};
    return names[t];
}

const char *chaos_op_name(int op)
{
    static const char *names[] = {"INSERT", "UPDATE", "DELETE", "TRUNCATE"};
    return op >= 0 && op <= 3 ? names[op] : "?";
}
