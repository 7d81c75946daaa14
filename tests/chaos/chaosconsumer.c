/* Reading a chaos consumer's JSON lines (see chaosconsumer.h). The lines come from
 * `pgcapture consume` (src/client/json.c): keys in a fixed order, values of the chaos
 * tables are numbers, nulls and strings without escapes, so a key is found by searching
 * for `"name":` (a string value cannot contain an unescaped quote). */
#include "chaosconsumer.h"

#include "pgcapture.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void consumer_file_init(consumer_file *f, const char *path)
{
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
}

void consumer_file_free(consumer_file *f)
{
    free(f->recv);
    f->recv = NULL;
    f->n = f->cap = 0;
}

/* The value after `"key":` within [from, to), or NULL. */
static const char *find_key(const char *from, const char *to, const char *key)
{
    char pat[64];
    int n = snprintf(pat, sizeof pat, "\"%s\":", key);
    if (!from || n <= 0 || (size_t)n >= sizeof pat)
        return NULL;
    for (const char *p = from; p && p + n <= to; p++) {
        p = memchr(p, '"', (size_t)(to - p));
        if (!p || p + n > to)
            return NULL;
        if (memcmp(p, pat, (size_t)n) == 0)
            return p + n;
    }
    return NULL;
}

static bool key_int(const char *from, const char *to, const char *key, int64_t *out)
{
    const char *v = find_key(from, to, key);
    if (!v || v >= to || (*v != '-' && (*v < '0' || *v > '9')))
        return false;
    *out = strtoll(v, NULL, 10);
    return true;
}

/* A string value: its bytes and length (no escapes expected); false when not a string. */
static bool key_str(const char *from, const char *to, const char *key, const char **s, size_t *len)
{
    const char *v = find_key(from, to, key);
    if (!v || v >= to || *v != '"')
        return false;
    const char *end = memchr(v + 1, '"', (size_t)(to - v - 1));
    if (!end)
        return false;
    *s = v + 1;
    *len = (size_t)(end - v - 1);
    return true;
}

static bool key_is(const char *from, const char *to, const char *key, const char *want)
{
    const char *s;
    size_t len;
    return key_str(from, to, key, &s, &len) && len == strlen(want) && memcmp(s, want, len) == 0;
}

static int parse_op(const char *line, const char *end)
{
    static const char *ops[] = {"INSERT", "UPDATE", "DELETE", "TRUNCATE"};
    for (int i = 0; i < 4; i++)
        if (key_is(line, end, "op", ops[i]))
            return i;
    return -1;
}

static void parse_items(const char *nw, const char *old, const char *end, recv_change *r)
{
    chaos_row *row = &r->row;
    if (r->op == PGCAPTURE__CHANGE__OPERATION__DELETE) {
        key_int(old, end, "id", &row->id);
        return;
    }
    const char *to = old ? old : end;
    int64_t w = -1;
    key_int(nw, to, "id", &row->id);
    key_int(nw, to, "ver", &row->ver);
    key_int(nw, to, "txn", &row->txn);
    key_int(nw, to, "w", &w);
    row->w = (int32_t)w;
    const char *s;
    size_t len;
    row->payload_ok = key_str(nw, to, "payload", &s, &len) && chaos_payload_matches(s, len, row);
    const char *big = find_key(nw, to, "big");
    if (!big)
        row->big = BIG_ABSENT;
    else if (strncmp(big, "null", 4) == 0)
        row->big = BIG_NULL;
    else if (key_str(nw, to, "big", &s, &len))
        chaos_big_parse(s, len, row);
    else
        row->big = BIG_MALFORMED;
}

static void parse_line(const char *line, size_t len, recv_change *r)
{
    const char *end = line + len;
    const char *schema, *table, *lsn_s;
    size_t schema_len, table_len, lsn_len;
    int64_t seq;
    r->op = parse_op(line, end);
    if (r->op < 0 || !key_str(line, end, "schema", &schema, &schema_len) ||
        !key_str(line, end, "table", &table, &table_len) ||
        !key_str(line, end, "lsn", &lsn_s, &lsn_len) || !key_int(line, end, "seq", &seq) ||
        lsn_len >= 32 || schema_len >= 64 || table_len >= 64)
        return;
    char buf[64], sch[64], tab[64];
    memcpy(buf, lsn_s, lsn_len);
    buf[lsn_len] = '\0';
    memcpy(sch, schema, schema_len);
    sch[schema_len] = '\0';
    memcpy(tab, table, table_len);
    tab[table_len] = '\0';
    uint64_t lsn;
    if (!logpos_parse_lsn(buf, &lsn))
        return;
    r->pos = (log_pos){lsn, (uint32_t)seq};
    r->dump = lsn == 0;
    r->table = CT_OTHER;
    if (strcmp(sch, "public") == 0 && strcmp(tab, "items") == 0)
        r->table = CT_ITEMS;
    else if (strcmp(sch, "public") == 0 && strcmp(tab, "txns") == 0)
        r->table = CT_TXNS;
    else if (strcmp(sch, "public") == 0 && strcmp(tab, "scratch") == 0)
        r->table = CT_SCRATCH;
    else if (strcmp(sch, "public") == 0 && strcmp(tab, "keyless") == 0)
        r->table = CT_KEYLESS;
    else if (strcmp(sch, "pgcapture") == 0 && strcmp(tab, "ddl_logs") == 0)
        r->table = CT_DDL;
    const char *nw = find_key(line, end, "new");
    const char *old = find_key(nw ? nw : line, end, "old");
    if (r->table == CT_ITEMS)
        parse_items(nw, old, end, r);
    else if (r->table == CT_TXNS && nw) {
        int64_t w = -1;
        const char *to = old ? old : end;
        key_int(nw, to, "w", &w);
        r->row.w = (int32_t)w;
        key_int(nw, to, "k", &r->row.txn);
    }
    r->parsed = true;
}

long consumer_file_read_more(consumer_file *f)
{
    FILE *in = fopen(f->path, "r");
    if (!in)
        return -1;
    if (fseek(in, f->offset, SEEK_SET) != 0) {
        fclose(in);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long added = 0;
    while ((len = getline(&line, &cap, in)) > 0) {
        if (line[len - 1] != '\n')
            break; /* being written: read it next time */
        f->offset += len;
        if (f->n == f->cap) {
            f->cap = f->cap ? f->cap * 2 : 4096;
            f->recv = realloc(f->recv, f->cap * sizeof *f->recv);
            if (!f->recv)
                abort();
        }
        recv_change *r = &f->recv[f->n];
        memset(r, 0, sizeof *r);
        r->line = f->n + 1;
        parse_line(line, (size_t)len - 1, r);
        f->n++;
        added++;
    }
    free(line);
    fclose(in);
    return added;
}
