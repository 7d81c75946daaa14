/* Batch writer and reader (see batch.h). */
#include "codec/batch.h"

#include "core/status.h"

#include <stdlib.h>
#include <string.h>

struct batch_writer {
    uint8_t *buf;
    size_t len, cap, max;
    uint32_t count;
    log_pos first, last;
};

static size_t varint_len(size_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t varint_put(uint8_t *p, size_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

int batch_writer_create(size_t max_bytes, batch_writer **out)
{
    if (max_bytes < 64)
        return PGC_ERR_INVALID;
    batch_writer *w = calloc(1, sizeof *w);
    if (!w)
        return PGC_ERR_NOMEM;
    w->max = max_bytes;
    w->cap = max_bytes;
    w->buf = malloc(w->cap);
    if (!w->buf) {
        free(w);
        return PGC_ERR_NOMEM;
    }
    *out = w;
    return PGC_OK;
}

void batch_writer_destroy(batch_writer *w)
{
    if (!w)
        return;
    free(w->buf);
    free(w);
}

void batch_writer_clear(batch_writer *w)
{
    w->len = 0;
    w->count = 0;
    /* An oversized message grew the buffer: give the memory back. */
    if (w->cap > w->max) {
        uint8_t *b = realloc(w->buf, w->max);
        if (b) {
            w->buf = b;
            w->cap = w->max;
        }
    }
}

static void note_pos(batch_writer *w, log_pos pos)
{
    if (w->count == 0)
        w->first = pos;
    w->last = pos;
    w->count++;
}

int batch_writer_add(batch_writer *w, const ProtobufCMessage *msg, log_pos pos)
{
    size_t size = protobuf_c_message_get_packed_size(msg);
    size_t need = varint_len(size) + size;
    /* After an oversized message len is past max: nothing more fits (and max - len would
     * wrap). */
    if (w->len > w->max || need > w->max - w->len)
        return PGC_ERR_TOO_LARGE;
    w->len += varint_put(w->buf + w->len, size);
    w->len += protobuf_c_message_pack(msg, w->buf + w->len);
    note_pos(w, pos);
    return PGC_OK;
}

int batch_writer_add_oversized(batch_writer *w, const ProtobufCMessage *msg, log_pos pos)
{
    size_t size = protobuf_c_message_get_packed_size(msg);
    size_t need = varint_len(size) + size;
    if (w->count != 0)
        return PGC_ERR_STATE;
    if (need > w->cap) {
        uint8_t *b = realloc(w->buf, need);
        if (!b)
            return PGC_ERR_NOMEM;
        w->buf = b;
        w->cap = need;
    }
    w->len = varint_put(w->buf, size);
    w->len += protobuf_c_message_pack(msg, w->buf + w->len);
    note_pos(w, pos);
    return PGC_OK;
}

const uint8_t *batch_writer_data(const batch_writer *w)
{
    return w->buf;
}

size_t batch_writer_len(const batch_writer *w)
{
    return w->len;
}

size_t batch_writer_max(const batch_writer *w)
{
    return w->max;
}

uint32_t batch_writer_count(const batch_writer *w)
{
    return w->count;
}

log_pos batch_writer_first(const batch_writer *w)
{
    return w->first;
}

log_pos batch_writer_last(const batch_writer *w)
{
    return w->last;
}

void batch_reader_init(batch_reader *r, const uint8_t *data, size_t len)
{
    r->p = data;
    r->end = data + len;
    r->offset = 0;
}

int batch_reader_next(batch_reader *r, const uint8_t **msg, size_t *len, char *err, size_t err_len)
{
    if (r->p == r->end)
        return 0;
    uint64_t v = 0;
    int shift = 0;
    const uint8_t *p = r->p;
    for (;;) {
        if (p == r->end)
            return errbuf_set(err, err_len, PGC_ERR_TRUNCATED,
                              "batch: truncated length prefix at offset %zu", r->offset);
        if (shift > 56)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "batch: length prefix too long at offset %zu", r->offset);
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80))
            break;
    }
    if (v > (uint64_t)(r->end - p))
        return errbuf_set(err, err_len, PGC_ERR_TRUNCATED,
                          "batch: message at offset %zu claims %llu bytes, %zu left", r->offset,
                          (unsigned long long)v, (size_t)(r->end - p));
    *msg = p;
    *len = (size_t)v;
    r->offset += (size_t)(p - r->p) + (size_t)v;
    r->p = p + v;
    return 1;
}
