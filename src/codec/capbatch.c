/* Batch-mode CaptureMessages as bytes (see capbatch.h). */
#include "codec/capbatch.h"

#include "codec/capmsg.h"
#include "codec/pbwire.h"
#include "core/status.h"

#include <stdlib.h>
#include <string.h>

#define TAG_BATCH 0x18 /* CaptureMessage.batch: field 3, varint */
#define TAG_ITEM 0x22  /* CaptureMessage.items: field 4, length-delimited */

void capbatch_init(capbatch *b)
{
    memset(b, 0, sizeof *b);
}

void capbatch_free(capbatch *b)
{
    free(b->buf);
    capbatch_init(b);
}

static int reserve(capbatch *b, size_t more)
{
    if (b->len + more <= b->cap)
        return PGC_OK;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *nb = realloc(b->buf, cap);
    if (!nb)
        return PGC_ERR_NOMEM;
    b->buf = nb;
    b->cap = cap;
    return PGC_OK;
}

void capbatch_reset(capbatch *b)
{
    b->count = 0;
    b->len = 0;
}

int capbatch_finish(capbatch *b, uint64_t number)
{
    if (reserve(b, 1 + PBWIRE_VARINT_MAX) != PGC_OK)
        return PGC_ERR_NOMEM;
    b->buf[b->len++] = TAG_BATCH;
    b->len = (size_t)(pbwire_put_varint(b->buf + b->len, number) - b->buf);
    return PGC_OK;
}

size_t capbatch_item_size(uint64_t lsn, uint32_t seq, size_t data_len, size_t change_len)
{
    size_t n = capmsg_build_len(lsn, seq, data_len, change_len);
    return 1 + pbwire_varint_size(n) + n;
}

uint8_t *capbatch_add_item(capbatch *b, uint64_t lsn, uint32_t seq, const uint8_t *data,
                           size_t data_len, size_t change_len)
{
    size_t n = capmsg_build_len(lsn, seq, data_len, change_len);
    if (reserve(b, 1 + PBWIRE_VARINT_MAX + n) != PGC_OK)
        return NULL;
    uint8_t *p = b->buf + b->len;
    *p++ = TAG_ITEM;
    p = pbwire_put_varint(p, n);
    p = capmsg_build_head(p, lsn, seq, data, data_len, change_len);
    b->len = (size_t)(p - b->buf) + change_len;
    b->count++;
    return p;
}

int capbatch_add(capbatch *b, uint64_t lsn, uint32_t seq, const uint8_t *data, size_t data_len,
                 const uint8_t *change, size_t change_len)
{
    uint8_t *p = capbatch_add_item(b, lsn, seq, data, data_len, change_len);
    if (!p)
        return PGC_ERR_NOMEM;
    if (change_len)
        memcpy(p, change, change_len);
    return PGC_OK;
}

static int malformed(char *err, size_t err_len, const char *what, size_t at)
{
    return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "capture message: %s at byte %zu", what, at);
}

static int read_checkpoint(const uint8_t *p, size_t len, capbatch_item *out)
{
    const uint8_t *end = p + len;
    while (p < end) {
        pbwire_field f;
        if (pbwire_next_field(&p, end, &f) != 0)
            return -1;
        if (f.number == 1 && f.wire == 0)
            out->lsn = f.varint;
        else if (f.number == 2 && f.wire == 0)
            out->seq = (uint32_t)f.varint;
        else if (f.number == 3 && f.wire == 2)
            out->data = f.bytes, out->data_len = f.len;
        else if (f.number <= 3)
            return -1;
    }
    return 0;
}

int capbatch_read_item(const uint8_t *msg, size_t len, capbatch_item *out, char *err,
                       size_t err_len)
{
    memset(out, 0, sizeof *out);
    const uint8_t *p = msg, *end = msg + len;
    while (p < end) {
        pbwire_field f;
        if (pbwire_next_field(&p, end, &f) != 0)
            return malformed(err, err_len, "bad protobuf", (size_t)(p - msg));
        if ((f.number == 1 || f.number == 2) && f.wire != 2)
            return malformed(err, err_len, "checkpoint or change of the wrong wire type",
                             (size_t)(p - msg));
        if (f.number == 1) {
            /* A repeated message field merges; the gateway never repeats it. */
            out->has_checkpoint = true;
            if (read_checkpoint(f.bytes, f.len, out) != 0)
                return malformed(err, err_len, "bad checkpoint", (size_t)(f.bytes - msg));
        } else if (f.number == 2) {
            out->has_change = true;
            out->change = f.bytes;
            out->change_len = f.len;
        }
    }
    return PGC_OK;
}

int capbatch_reader_init(capbatch_reader *r, const uint8_t *msg, size_t len, uint64_t *batch,
                         uint32_t *items, char *err, size_t err_len)
{
    r->msg = r->p = msg;
    r->end = msg + len;
    *batch = 0;
    *items = 0;
    const uint8_t *p = msg;
    while (p < r->end) {
        pbwire_field f;
        if (pbwire_next_field(&p, r->end, &f) != 0)
            return malformed(err, err_len, "bad protobuf", (size_t)(p - msg));
        if ((f.number == 3 && f.wire != 0) || (f.number == 4 && f.wire != 2))
            return malformed(err, err_len, "batch or item of the wrong wire type",
                             (size_t)(p - msg));
        if (f.number == 3)
            *batch = f.varint;
        else if (f.number == 4)
            (*items)++;
    }
    return PGC_OK;
}

int capbatch_reader_next(capbatch_reader *r, capbatch_item *out, char *err, size_t err_len)
{
    while (r->p < r->end) {
        pbwire_field f;
        if (pbwire_next_field(&r->p, r->end, &f) != 0)
            return malformed(err, err_len, "bad protobuf", (size_t)(r->p - r->msg));
        if (f.number != 4)
            continue;
        int rc = capbatch_read_item(f.bytes, f.len, out, err, err_len);
        return rc == PGC_OK ? 1 : rc;
    }
    return 0;
}
