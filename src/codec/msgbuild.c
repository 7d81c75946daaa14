/* Protocol Message builder (see msgbuild.h). */
#include "codec/msgbuild.h"

#include "core/status.h"

#include <stdlib.h>
#include <string.h>

struct msgbuild {
    Pgcapture__Message msg;
    Pgcapture__Begin begin;
    Pgcapture__Commit commit;
    Pgcapture__Change change;
    /* Fields of the new and old rows: grown geometrically, reused across calls. */
    Pgcapture__Field *fields;
    Pgcapture__Field **ptrs;
    size_t cap;
    /* Text-format values need a NUL for protobuf-c: copied here. */
    char *text;
    size_t text_len, text_cap;
};

int msgbuild_create(msgbuild **out)
{
    msgbuild *b = calloc(1, sizeof *b);
    if (!b)
        return PGC_ERR_NOMEM;
    *out = b;
    return PGC_OK;
}

void msgbuild_destroy(msgbuild *b)
{
    if (!b)
        return;
    free(b->fields);
    free(b->ptrs);
    free(b->text);
    free(b);
}

const Pgcapture__Message *msgbuild_begin(msgbuild *b, uint64_t final_lsn, int64_t commit_time,
                                         uint32_t xid)
{
    pgcapture__begin__init(&b->begin);
    b->begin.final_lsn = final_lsn;
    b->begin.commit_time = (uint64_t)commit_time;
    b->begin.remote_xid = xid;
    pgcapture__message__init(&b->msg);
    b->msg.type_case = PGCAPTURE__MESSAGE__TYPE_BEGIN;
    b->msg.begin = &b->begin;
    return &b->msg;
}

const Pgcapture__Message *msgbuild_commit(msgbuild *b, uint64_t commit_lsn, uint64_t end_lsn,
                                          int64_t commit_time)
{
    pgcapture__commit__init(&b->commit);
    b->commit.commit_lsn = commit_lsn;
    b->commit.end_lsn = end_lsn;
    b->commit.commit_time = (uint64_t)commit_time;
    pgcapture__message__init(&b->msg);
    b->msg.type_case = PGCAPTURE__MESSAGE__TYPE_COMMIT;
    b->msg.commit = &b->commit;
    return &b->msg;
}

static int reserve(msgbuild *b, size_t n_fields, size_t text_bytes)
{
    if (n_fields > b->cap) {
        size_t cap = b->cap ? b->cap : 32;
        while (cap < n_fields)
            cap *= 2;
        Pgcapture__Field *f = realloc(b->fields, cap * sizeof *f);
        if (!f)
            return PGC_ERR_NOMEM;
        b->fields = f;
        Pgcapture__Field **p = realloc(b->ptrs, cap * sizeof *p);
        if (!p)
            return PGC_ERR_NOMEM;
        b->ptrs = p;
        b->cap = cap;
    }
    if (text_bytes > b->text_cap) {
        size_t cap = b->text_cap ? b->text_cap : 4096;
        while (cap < text_bytes)
            cap *= 2;
        char *t = realloc(b->text, cap);
        if (!t)
            return PGC_ERR_NOMEM;
        b->text = t;
        b->text_cap = cap;
    }
    return PGC_OK;
}

/* Value i of `t`. An unchanged TOAST value ('u') of a REPLICA IDENTITY FULL table comes
 * from the old row (`fill`), which carries it: PostgreSQL writes that old row to the WAL
 * with its TOAST values inline. Elsewhere it stays 'u', and is left out. */
static const pgoutput_value *value_at(const pgoutput_tuple *t, const pgoutput_tuple *fill,
                                      uint16_t i)
{
    const pgoutput_value *v = &t->values[i];
    if (v->kind == 'u' && fill)
        return &fill->values[i];
    return v;
}

static size_t text_bytes_of(const pgoutput_tuple *t, const pgoutput_tuple *fill)
{
    size_t n = 0;
    for (uint16_t i = 0; i < t->ncols; i++) {
        const pgoutput_value *v = value_at(t, fill, i);
        if (v->kind == 't')
            n += v->len + 1;
    }
    return n;
}

/* Appends the fields of `t` (its 'u' values from `fill` when not NULL) at
 * b->fields[*used...]; returns how many. */
static size_t add_fields(msgbuild *b, const relcache_entry *rel, const pgoutput_tuple *t,
                         const pgoutput_tuple *fill, bool key_only, size_t *used)
{
    size_t start = *used;
    for (uint16_t i = 0; i < t->ncols; i++) {
        const pgoutput_value *v = value_at(t, fill, i);
        const pgoutput_column *col = &rel->cols[i];
        if (v->kind == 'u')
            continue; /* unchanged TOAST: absent, never NULL (docs/protocol.md) */
        if (key_only && !(col->flags & 1))
            continue;
        Pgcapture__Field *f = &b->fields[*used];
        pgcapture__field__init(f);
        f->name = (char *)col->name;
        f->oid = col->type_oid;
        if (v->kind == 'b') {
            f->value_case = PGCAPTURE__FIELD__VALUE_BINARY;
            f->binary.data = (uint8_t *)v->data;
            f->binary.len = v->len;
        } else if (v->kind == 't') {
            char *dst = b->text + b->text_len;
            memcpy(dst, v->data, v->len);
            dst[v->len] = '\0';
            b->text_len += v->len + 1;
            f->value_case = PGCAPTURE__FIELD__VALUE_TEXT;
            f->text = dst;
        }
        b->ptrs[*used] = f;
        (*used)++;
    }
    return *used - start;
}

static int check_tuple(const relcache_entry *rel, const pgoutput_tuple *t, const char *what,
                       char *err, size_t err_len)
{
    if (t->ncols != rel->ncols)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "pgoutput: %s tuple of %s.%s has %u columns, its Relation message "
                          "said %u",
                          what, rel->nspname, rel->relname, t->ncols, rel->ncols);
    return PGC_OK;
}

int msgbuild_change(msgbuild *b, const relcache_entry *rel, const pgoutput_msg *m,
                    const Pgcapture__Message **out, char *err, size_t err_len)
{
    const pgoutput_tuple *new_t = NULL, *old_t = NULL;
    char old_kind = 0;
    Pgcapture__Change__Operation op;
    int rc;

    switch (m->kind) {
    case 'I':
        op = PGCAPTURE__CHANGE__OPERATION__INSERT;
        new_t = &m->u.insert.new_tuple;
        break;
    case 'U':
        op = PGCAPTURE__CHANGE__OPERATION__UPDATE;
        new_t = &m->u.update.new_tuple;
        old_kind = m->u.update.old_kind;
        if (old_kind)
            old_t = &m->u.update.old_tuple;
        break;
    case 'D':
        op = PGCAPTURE__CHANGE__OPERATION__DELETE;
        old_kind = m->u.del.old_kind;
        old_t = &m->u.del.old_tuple;
        break;
    default:
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "msgbuild: kind '%c' is not a change",
                          m->kind);
    }
    if (new_t && (rc = check_tuple(rel, new_t, "new", err, err_len)) != PGC_OK)
        return rc;
    if (old_t && (rc = check_tuple(rel, old_t, "old", err, err_len)) != PGC_OK)
        return rc;

    /* pgcapture's rule: REPLICA IDENTITY FULL fills the new row's unchanged TOAST values
     * from the old row, so consumers and the applier get the whole new row. */
    const pgoutput_tuple *fill = rel->replident == 'f' && old_kind == 'O' ? old_t : NULL;
    size_t n = (new_t ? new_t->ncols : 0) + (old_t ? old_t->ncols : 0);
    size_t tb = (new_t ? text_bytes_of(new_t, fill) : 0) + (old_t ? text_bytes_of(old_t, NULL) : 0);
    if ((rc = reserve(b, n, tb)) != PGC_OK)
        return errbuf_set(err, err_len, rc, "msgbuild: out of memory for %zu fields", n);
    b->text_len = 0;

    pgcapture__change__init(&b->change);
    b->change.op = op;
    b->change.schema = rel->nspname;
    b->change.table = rel->relname;
    size_t used = 0;
    if (new_t) {
        b->change.new_ = b->ptrs;
        b->change.n_new_ = add_fields(b, rel, new_t, fill, false, &used);
    }
    if (old_t) {
        size_t start = used;
        b->change.n_old = add_fields(b, rel, old_t, NULL, old_kind == 'K', &used);
        b->change.old = b->ptrs + start;
    }
    pgcapture__message__init(&b->msg);
    b->msg.type_case = PGCAPTURE__MESSAGE__TYPE_CHANGE;
    b->msg.change = &b->change;
    *out = &b->msg;
    return PGC_OK;
}

const Pgcapture__Message *msgbuild_truncate(msgbuild *b, const relcache_entry *rel)
{
    pgcapture__change__init(&b->change);
    b->change.op = PGCAPTURE__CHANGE__OPERATION__TRUNCATE;
    b->change.schema = rel->nspname;
    b->change.table = rel->relname;
    pgcapture__message__init(&b->msg);
    b->msg.type_case = PGCAPTURE__MESSAGE__TYPE_CHANGE;
    b->msg.change = &b->change;
    return &b->msg;
}
