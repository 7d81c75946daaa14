/* The chaos checker's consumer check (see consumercheck.h). */
#include "consumercheck.h"

#include "chaosconsumer.h"
#include "harness/fixtures.h"
#include "harness/runner.h"

#include "pgcapture.pb-c.h"

#include <libpq-fe.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHOW 5

typedef struct mark {
    size_t lines;
    char cause[32];
} mark;

typedef struct expect {
    bool *wanted;       /* per log change: this consumer should get it */
    size_t *first_line; /* per log change: line of its first copy (0: none yet) */
    uint32_t *copies;   /* per log change */
    size_t n_wanted, n_got;
} expect;

static bool wanted(const chaos_change *c, const consumer_spec *spec, const regex_t *re)
{
    if (c->op == PGCAPTURE__CHANGE__OPERATION__TRUNCATE && !spec->truncate)
        return false;
    return !re || regexec(re, chaos_table_name(c->table), 0, NULL, 0) == 0;
}

static mark *read_marks(const char *path, size_t *n)
{
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL; /* no kill that concerns this consumer */
    mark *m = NULL;
    size_t cap = 0;
    char line[128];
    while (fgets(line, sizeof line, f)) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            m = realloc(m, cap * sizeof *m);
            if (!m)
                abort();
        }
        if (sscanf(line, "%zu %31s", &m[*n].lines, m[*n].cause) == 2)
            (*n)++;
    }
    fclose(f);
    return m;
}

/* A duplicate is explained when a kill lies between its first copy and this one. */
static bool explained(const mark *m, size_t n, size_t first, size_t again)
{
    for (size_t i = 0; i < n; i++)
        if (first <= m[i].lines && m[i].lines < again)
            return true;
    return false;
}

static bool same_content(const chaos_change *l, const recv_change *r)
{
    if (l->table != r->table || l->op != r->op)
        return false;
    if (l->table == CT_TXNS)
        return l->row.w == r->row.w && l->row.txn == r->row.txn;
    if (l->table != CT_ITEMS)
        return true;
    const chaos_row *a = &l->row, *b = &r->row;
    if (a->id != b->id)
        return false;
    if (l->op == PGCAPTURE__CHANGE__OPERATION__DELETE)
        return true;
    return a->ver == b->ver && a->w == b->w && a->txn == b->txn && b->payload_ok &&
           a->big == b->big &&
           (a->big != BIG_VALUE || (a->big_len == b->big_len && a->big_token == b->big_token));
}

typedef struct row_state {
    log_pos last_first; /* position of the latest first-copy change received */
    int64_t max_ver;
    bool deleted;
} row_state;

typedef struct tally {
    size_t unparsed, unknown, mismatched, unexpected, dups, dups_explained, order, stale,
        stale_explained, time_travel, dump_rows, dump_bad;
} tally;

static void report(size_t *count, size_t line, const char *fmt, const char *what)
{
    if ((*count)++ < SHOW)
        printf("    line %zu: %s: %s\n", line, fmt, what);
}

/* Order per row over the items changes and dump rows, in arrival order. A change's first
 * copy must not come after a later change of its row: nothing excuses that (the gateway
 * gives back what a dead stream held, and asks back what a crashed gateway held, in log
 * order). A later copy of an old change after a newer one is a duplicate explained when a
 * kill lies between its copies (`dup_explained`: an ack lost with the consumer, the gateway
 * or a NATS node). */
static void check_row(row_state *rs, const recv_change *r, bool first_copy, bool dup_explained,
                      tally *t)
{
    char what[160];
    snprintf(what, sizeof what, "id %lld ver %lld %s", (long long)r->row.id, (long long)r->row.ver,
             r->dump ? "dump row" : chaos_op_name(r->op));
    bool del = r->op == PGCAPTURE__CHANGE__OPERATION__DELETE;
    bool older = (rs->deleted && (first_copy || !del)) || (!del && r->row.ver < rs->max_ver);
    if (r->dump) {
        if (older)
            report(&t->time_travel, r->line, "dump row older than what the row already had", what);
    } else if (first_copy) {
        if (logpos_cmp(r->pos, rs->last_first) >= 0)
            rs->last_first = r->pos;
        else
            report(&t->order, r->line, "arrived after a later change of its row", what);
    } else if (older) {
        if (dup_explained)
            t->stale_explained++;
        else
            report(&t->stale, r->line, "old change delivered again after a newer one", what);
    }
    if (del)
        rs->deleted = true;
    else if (r->row.ver > rs->max_ver)
        rs->max_ver = r->row.ver;
}

static int64_t max_id(const chaos_log *log)
{
    int64_t m = 0;
    for (size_t i = 0; i < log->n_changes; i++)
        if (log->changes[i].table == CT_ITEMS && log->changes[i].row.id > m)
            m = log->changes[i].row.id;
    return m;
}

static void analyse(const consumer_spec *spec, const chaos_log *log, const consumer_file *f,
                    const expect *e, tally *t)
{
    size_t n_marks;
    mark *marks = read_marks(spec->marks, &n_marks);
    int64_t ids = max_id(log) + 1;
    row_state *rows = calloc((size_t)ids, sizeof *rows);
    size_t *seen_first = calloc(log->n_changes ? log->n_changes : 1, sizeof *seen_first);
    if (!rows || !seen_first)
        abort();
    for (size_t i = 0; i < f->n; i++) {
        const recv_change *r = &f->recv[i];
        if (!r->parsed) {
            report(&t->unparsed, r->line, "not a change", spec->file);
            continue;
        }
        bool first_copy = true, dup_explained = false;
        if (r->dump) {
            t->dump_rows++;
            if (r->table == CT_ITEMS && !r->row.payload_ok)
                report(&t->dump_bad, r->line, "dump row with a bad payload", "items");
        } else {
            const chaos_change *l = chaos_log_find(log, r->pos);
            if (!l) {
                report(&t->unknown, r->line, "position not in the log", chaos_table_name(r->table));
                continue;
            }
            size_t k = (size_t)(l - log->changes);
            if (!same_content(l, r))
                report(&t->mismatched, r->line, "content differs from the log",
                       chaos_table_name(r->table));
            if (!e->wanted[k]) {
                char what[64];
                snprintf(what, sizeof what, "%s %s", chaos_table_name(r->table),
                         chaos_op_name(r->op));
                report(&t->unexpected, r->line, "not for this consumer (table or TRUNCATE)", what);
            }
            if (seen_first[k]) {
                first_copy = false;
                dup_explained = explained(marks, n_marks, seen_first[k], r->line);
                t->dups++;
                t->dups_explained += dup_explained;
            } else {
                seen_first[k] = r->line;
            }
        }
        if (r->table == CT_ITEMS && r->row.id > 0 && r->row.id < ids)
            check_row(&rows[r->row.id], r, first_copy, dup_explained, t);
    }
    free(rows);
    free(seen_first);
    free(marks);
}

/* The consumer's view of items replayed as a consumer that applies changes as upserts
 * does: a change when it is newer than the row's last applied checkpoint (so a copy that
 * comes again after newer ones changes nothing), a dump row as it comes. Then compared
 * with the source's rows: how many differ. */
typedef struct view_row {
    bool present, touched;
    int64_t ver;
    log_pos pos;
} view_row;

static size_t state_diff_rows(const consumer_file *f, const char *source)
{
    PGconn *c = harness_connect(source);
    int64_t n_ids = harness_query_int(c, "SELECT last_value + 1 FROM ids");
    view_row *v = calloc((size_t)(n_ids > 0 ? n_ids : 1), sizeof *v);
    if (!v)
        abort();
    for (size_t i = 0; i < f->n; i++) {
        const recv_change *r = &f->recv[i];
        if (!r->parsed || r->table != CT_ITEMS || r->row.id <= 0 || r->row.id >= n_ids)
            continue;
        view_row *w = &v[r->row.id];
        if (r->dump) {
            w->present = true;
            w->ver = r->row.ver;
            continue;
        }
        if (w->touched && logpos_cmp(r->pos, w->pos) <= 0)
            continue;
        w->touched = true;
        w->pos = r->pos;
        w->present = r->op != PGCAPTURE__CHANGE__OPERATION__DELETE;
        if (w->present)
            w->ver = r->row.ver;
    }
    PGresult *res = PQexec(c, "SELECT id, ver FROM items ORDER BY id");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        unit_fail(__FILE__, __LINE__, "reading items: %s", PQresultErrorMessage(res));
    bool *in_source = calloc((size_t)(n_ids > 0 ? n_ids : 1), sizeof *in_source);
    if (!in_source)
        abort();
    size_t differ = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        int64_t id = atoll(PQgetvalue(res, i, 0)), ver = atoll(PQgetvalue(res, i, 1));
        bool same = id > 0 && id < n_ids && v[id].present && v[id].ver == ver;
        if (id > 0 && id < n_ids)
            in_source[id] = true;
        if (!same && differ++ < SHOW)
            printf("    items id %lld: source ver %lld, the consumer's view %s\n", (long long)id,
                   (long long)ver, id > 0 && id < n_ids && v[id].present ? "another" : "no row");
    }
    for (int64_t id = 1; id < n_ids; id++)
        if (v[id].present && !in_source[id] && differ++ < SHOW)
            printf("    items id %lld: deleted on the source, present in the consumer's view\n",
                   (long long)id);
    PQclear(res);
    free(in_source);
    free(v);
    return differ;
}

/* Counts the wanted changes received so far from f's recv[from..]. */
static void absorb(const chaos_log *log, const consumer_file *f, size_t from, expect *e)
{
    for (size_t i = from; i < f->n; i++) {
        const recv_change *r = &f->recv[i];
        if (!r->parsed || r->dump)
            continue;
        const chaos_change *l = chaos_log_find(log, r->pos);
        if (!l)
            continue;
        size_t k = (size_t)(l - log->changes);
        if (e->copies[k]++ == 0) {
            e->first_line[k] = r->line;
            e->n_got += e->wanted[k];
        }
    }
}

static void free_expect(void *arg)
{
    expect *e = arg;
    free(e->wanted);
    free(e->first_line);
    free(e->copies);
    free(e);
}

static void free_file(void *arg)
{
    consumer_file_free(arg);
    free(arg);
}

static void free_regex(void *arg)
{
    regfree(arg);
    free(arg);
}

void consumer_check(const consumer_spec *spec, const chaos_log *log, const char *source,
                    long long deadline_ms, consumer_result *res)
{
    regex_t *re = NULL;
    if (spec->regex[0]) {
        re = calloc(1, sizeof *re);
        if (!re || regcomp(re, spec->regex, REG_EXTENDED | REG_NOSUB) != 0)
            unit_fail(__FILE__, __LINE__, "bad regex %s", spec->regex);
        unit_defer(free_regex, re);
    }
    expect *e = calloc(1, sizeof *e);
    size_t n = log->n_changes ? log->n_changes : 1;
    if (!e || !(e->wanted = calloc(n, 1)) || !(e->first_line = calloc(n, sizeof(size_t))) ||
        !(e->copies = calloc(n, sizeof(uint32_t))))
        abort();
    unit_defer(free_expect, e);
    /* Changes of committed transactions only: an open one at the end is not complete. */
    for (size_t t = 0; t < log->n_txns; t++)
        for (size_t i = log->txns[t].first; i < log->txns[t].first + log->txns[t].n; i++)
            if (wanted(&log->changes[i], spec, re)) {
                e->wanted[i] = true;
                e->n_wanted++;
            }
    consumer_file *f = calloc(1, sizeof *f);
    if (!f)
        abort();
    consumer_file_init(f, spec->file);
    unit_defer(free_file, f);
    for (;;) {
        size_t before = f->n;
        consumer_file_read_more(f);
        absorb(log, f, before, e);
        if (e->n_got >= e->n_wanted || harness_now_ms() > deadline_ms)
            break;
        harness_sleep_ms(500);
    }
    tally t;
    memset(&t, 0, sizeof t);
    analyse(spec, log, f, e, &t);
    size_t missing = e->n_wanted - e->n_got;
    printf("  %s: %zu lines, %zu of %zu changes for it received, %zu duplicates (%zu after a "
           "kill), %zu dump rows\n",
           spec->name, f->n, e->n_got, e->n_wanted, t.dups, t.dups_explained, t.dump_rows);
    size_t state_diff = state_diff_rows(f, source);
    res->lost = missing;
    res->went_back = t.order + t.stale + t.time_travel;
    res->dups_after_kill = t.dups_explained;
    res->state_diff_rows = state_diff;
    if (t.stale_explained)
        printf("  %s: after a kill, %zu old changes came again after newer ones (at least "
               "once: an ack lost with a consumer, a gateway or a NATS node)\n",
               spec->name, t.stale_explained);
    printf("  %s: its view of items replayed by checkpoint: %zu rows differ from the source\n",
           spec->name, state_diff);
    if (missing) {
        size_t shown = 0;
        for (size_t i = 0; i < log->n_changes && shown < SHOW; i++)
            if (e->wanted[i] && !e->copies[i]) {
                char p[LOGPOS_TEXT_LEN];
                logpos_format(log->changes[i].pos, p);
                printf("    missing: %s %s at %s\n", chaos_table_name(log->changes[i].table),
                       chaos_op_name(log->changes[i].op), p);
                shown++;
            }
    }
    EXPECT_EQ_UINT(0, missing);
    EXPECT_EQ_UINT(0, t.unparsed);
    EXPECT_EQ_UINT(0, t.unknown);
    EXPECT_EQ_UINT(0, t.mismatched);
    EXPECT_EQ_UINT(0, t.unexpected);
    EXPECT_EQ_UINT(t.dups, t.dups_explained);
    EXPECT_EQ_UINT(0, t.order);
    EXPECT_EQ_UINT(0, t.stale);
    EXPECT_EQ_UINT(0, t.time_travel);
    EXPECT_EQ_UINT(0, t.dump_bad);
    EXPECT_EQ_UINT(0, state_diff);
}
