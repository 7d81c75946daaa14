/* pgc_change and pgc_field: accessors over a CaptureMessage (see change.h). A pgc_field
 * is the message's Pgcapture__Field itself, behind an opaque type. */
#include "client/change.h"

#include "core/status.h"

#include <stdlib.h>
#include <string.h>

static const Pgcapture__Field *field_of(const pgc_field *f)
{
    return (const Pgcapture__Field *)(const void *)f;
}

int change_view(pgc_change *c, const Pgcapture__Checkpoint *checkpoint,
                const Pgcapture__Change *change, char *err, size_t err_len)
{
    if (!change)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "capture message without a change");
    const Pgcapture__Change *ch = change;
    if ((unsigned)ch->op > PGC_OP_TRUNCATE)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "change of %s.%s: unknown operation %d",
                          ch->schema, ch->table, (int)ch->op);
    for (int r = 0; r < 2; r++) {
        size_t n = r ? ch->n_old : ch->n_new_;
        Pgcapture__Field *const *fs = r ? ch->old : ch->new_;
        for (size_t i = 0; i < n; i++)
            if (!fs[i])
                return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "change: empty field");
    }
    c->checkpoint = checkpoint;
    c->change = change;
    c->owned = NULL;
    return PGC_OK;
}

int change_wrap(Pgcapture__CaptureMessage *msg, pgc_change **out, char *err, size_t err_len)
{
    pgc_change *c = malloc(sizeof *c);
    if (!c) {
        protobuf_c_message_free_unpacked(&msg->base, NULL);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "change: out of memory");
    }
    int rc = change_view(c, msg->checkpoint, msg->change, err, err_len);
    if (rc != PGC_OK) {
        protobuf_c_message_free_unpacked(&msg->base, NULL);
        free(c);
        return rc;
    }
    c->owned = msg;
    *out = c;
    return PGC_OK;
}

pgc_status pgc_change_parse(const uint8_t *data, size_t len, pgc_change **out, char *err,
                            size_t err_len)
{
    if (!out || (!data && len))
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "pgc_change_parse: NULL argument");
    Pgcapture__CaptureMessage *m = pgcapture__capture_message__unpack(NULL, len, data);
    if (!m)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "%zu bytes are not a CaptureMessage (or out of memory)", len);
    return change_wrap(m, out, err, err_len);
}

void pgc_change_destroy(pgc_change *c)
{
    if (!c)
        return;
    if (c->owned)
        protobuf_c_message_free_unpacked(&c->owned->base, NULL);
    free(c);
}

pgc_op pgc_change_get_op(const pgc_change *c)
{
    return (pgc_op)c->change->op;
}

const char *pgc_change_get_schema(const pgc_change *c)
{
    return c->change->schema;
}

const char *pgc_change_get_table(const pgc_change *c)
{
    return c->change->table;
}

uint64_t pgc_change_get_lsn(const pgc_change *c)
{
    return c->checkpoint ? c->checkpoint->lsn : 0;
}

uint32_t pgc_change_get_seq(const pgc_change *c)
{
    return c->checkpoint ? c->checkpoint->seq : 0;
}

const uint8_t *pgc_change_get_checkpoint_data(const pgc_change *c, size_t *len)
{
    if (!c->checkpoint || !c->checkpoint->data.len) {
        *len = 0;
        return (const uint8_t *)"";
    }
    *len = c->checkpoint->data.len;
    return c->checkpoint->data.data;
}

size_t pgc_change_get_field_count(const pgc_change *c, pgc_row row)
{
    return row == PGC_ROW_OLD ? c->change->n_old : c->change->n_new_;
}

const pgc_field *pgc_change_get_field_at(const pgc_change *c, pgc_row row, size_t i)
{
    const Pgcapture__Change *ch = c->change;
    size_t n = row == PGC_ROW_OLD ? ch->n_old : ch->n_new_;
    if (i >= n)
        return NULL;
    return (const pgc_field *)(const void *)(row == PGC_ROW_OLD ? ch->old[i] : ch->new_[i]);
}

const pgc_field *pgc_change_find_field(const pgc_change *c, pgc_row row, const char *name)
{
    size_t n = pgc_change_get_field_count(c, row);
    for (size_t i = 0; i < n; i++) {
        const pgc_field *f = pgc_change_get_field_at(c, row, i);
        if (strcmp(field_of(f)->name, name) == 0)
            return f;
    }
    return NULL;
}

const char *pgc_field_get_name(const pgc_field *f)
{
    return field_of(f)->name;
}

uint32_t pgc_field_get_oid(const pgc_field *f)
{
    return field_of(f)->oid;
}

pgc_value_kind pgc_field_get_kind(const pgc_field *f)
{
    switch (field_of(f)->value_case) {
    case PGCAPTURE__FIELD__VALUE_BINARY:
        return PGC_VALUE_KIND_BINARY;
    case PGCAPTURE__FIELD__VALUE_TEXT:
        return PGC_VALUE_KIND_TEXT;
    default:
        return PGC_VALUE_KIND_NULL;
    }
}

const uint8_t *pgc_field_get_data(const pgc_field *f, size_t *len)
{
    const Pgcapture__Field *pf = field_of(f);
    switch (pf->value_case) {
    case PGCAPTURE__FIELD__VALUE_BINARY:
        *len = pf->binary.len;
        return pf->binary.len ? pf->binary.data : (const uint8_t *)"";
    case PGCAPTURE__FIELD__VALUE_TEXT:
        *len = strlen(pf->text);
        return (const uint8_t *)pf->text;
    default:
        *len = 0;
        return NULL;
    }
}
