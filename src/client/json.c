/* A change as one line of JSON: table, operation, checkpoint and the new/old rows, each
 * value as PostgreSQL's to_json renders it; unchanged TOAST columns are simply absent. */
#include "client/change.h"
#include "client/render.h"
#include "codec/logpos.h"
#include "core/status.h"

#include <inttypes.h>
#include <string.h>

static const char *op_name(pgc_op op)
{
    switch (op) {
    case PGC_OP_INSERT:
        return "INSERT";
    case PGC_OP_UPDATE:
        return "UPDATE";
    case PGC_OP_DELETE:
        return "DELETE";
    case PGC_OP_TRUNCATE:
        return "TRUNCATE";
    }
    return "UNKNOWN";
}

static void put_base64(strbuf *sb, const uint8_t *p, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    strbuf_putc(sb, '"');
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        char q[4] = {b64[v >> 18 & 63], b64[v >> 12 & 63], i + 1 < n ? b64[v >> 6 & 63] : '=',
                     i + 2 < n ? b64[v & 63] : '='};
        strbuf_append(sb, q, 4);
    }
    strbuf_putc(sb, '"');
}

static int put_row(strbuf *sb, const pgc_change *c, pgc_row row, char *err, size_t err_len)
{
    size_t n = pgc_change_get_field_count(c, row);
    strbuf_puts(sb, row == PGC_ROW_NEW ? ",\"new\":{" : ",\"old\":{");
    for (size_t i = 0; i < n; i++) {
        const pgc_field *f = pgc_change_get_field_at(c, row, i);
        const char *name = pgc_field_get_name(f);
        if (i > 0)
            strbuf_putc(sb, ',');
        strbuf_json_string(sb, name, strlen(name));
        strbuf_putc(sb, ':');
        size_t len;
        const uint8_t *data = pgc_field_get_data(f, &len);
        switch (pgc_field_get_kind(f)) {
        case PGC_VALUE_KIND_NULL:
            strbuf_puts(sb, "null");
            break;
        case PGC_VALUE_KIND_TEXT:
            strbuf_json_string(sb, (const char *)data, len);
            break;
        case PGC_VALUE_KIND_BINARY: {
            char why[256];
            int rc =
                render_value(sb, pgc_field_get_oid(f), data, len, RENDER_JSON, why, sizeof why);
            if (rc != PGC_OK)
                return errbuf_set(err, err_len, rc, "%s.%s column %s (type %u): %s",
                                  pgc_change_get_schema(c), pgc_change_get_table(c), name,
                                  pgc_field_get_oid(f),
                                  rc == PGC_ERR_NOMEM ? "out of memory" : why);
            break;
        }
        }
    }
    strbuf_putc(sb, '}');
    return PGC_OK;
}

pgc_status pgc_change_render_json(const pgc_change *c, char **out, size_t *out_len, char *err,
                                  size_t err_len)
{
    if (!c || !out)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "pgc_change_render_json: NULL argument");
    strbuf sb;
    strbuf_init(&sb);
    strbuf_puts(&sb, "{\"schema\":");
    strbuf_json_string(&sb, pgc_change_get_schema(c), strlen(pgc_change_get_schema(c)));
    strbuf_puts(&sb, ",\"table\":");
    strbuf_json_string(&sb, pgc_change_get_table(c), strlen(pgc_change_get_table(c)));
    strbuf_printf(&sb, ",\"op\":\"%s\"", op_name(pgc_change_get_op(c)));
    char lsn[LOGPOS_LSN_LEN];
    logpos_format_lsn(pgc_change_get_lsn(c), lsn);
    strbuf_printf(&sb, ",\"checkpoint\":{\"lsn\":\"%s\",\"seq\":%" PRIu32 ",\"data\":", lsn,
                  pgc_change_get_seq(c));
    size_t dlen;
    const uint8_t *d = pgc_change_get_checkpoint_data(c, &dlen);
    put_base64(&sb, d, dlen);
    strbuf_putc(&sb, '}');
    int rc = PGC_OK;
    if (pgc_change_get_field_count(c, PGC_ROW_NEW) > 0)
        rc = put_row(&sb, c, PGC_ROW_NEW, err, err_len);
    if (rc == PGC_OK && pgc_change_get_field_count(c, PGC_ROW_OLD) > 0)
        rc = put_row(&sb, c, PGC_ROW_OLD, err, err_len);
    strbuf_putc(&sb, '}');
    if (rc == PGC_OK && (rc = strbuf_status(&sb)) == PGC_OK && !(*out = strbuf_take(&sb, out_len)))
        rc = PGC_ERR_NOMEM;
    if (rc == PGC_ERR_NOMEM)
        errbuf_set(err, err_len, rc, "change JSON: out of memory");
    strbuf_free(&sb);
    return rc;
}
