/* Batch writer, reader and part joiner (see batch.h). */
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
    if (need > w->max - w->len)
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

struct part_joiner {
    uint8_t *buf;
    size_t len, cap, max;
    uint32_t next, n; /* next part expected (0: none in progress) of n */
    log_pos pos;      /* of the message in progress */
};

int part_joiner_create(size_t max_total_bytes, part_joiner **out)
{
    part_joiner *j = calloc(1, sizeof *j);
    if (!j)
        return PGC_ERR_NOMEM;
    j->max = max_total_bytes;
    *out = j;
    return PGC_OK;
}

void part_joiner_destroy(part_joiner *j)
{
    if (!j)
        return;
    free(j->buf);
    free(j);
}

int part_joiner_feed(part_joiner *j, log_pos pos, uint32_t i, uint32_t n, const uint8_t *data,
                     size_t len, const uint8_t **out, size_t *out_len, char *err, size_t err_len)
{
    if (n == 0 || i == 0 || i > n)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "batch: invalid part %u/%u", i, n);
    if (i == 1) {
        j->len = 0;
        j->next = 1;
        j->n = n;
        j->pos = pos;
    } else if (j->next == i && j->n == n && logpos_cmp(j->pos, pos) != 0) {
        char want[LOGPOS_TEXT_LEN], got[LOGPOS_TEXT_LEN];
        logpos_format(j->pos, want);
        logpos_format(pos, got);
        j->next = 0;
        j->len = 0;
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "batch: part %u/%u of the message at %s follows parts of the one at %s",
                          i, n, got, want);
    } else if (j->next != i || j->n != n) {
        uint32_t want = j->next, of = j->n;
        j->next = 0;
        j->len = 0;
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "batch: part %u/%u out of order (expected %u/%u)", i, n, want, of);
    }
    if (len > j->max - j->len) {
        j->next = 0;
        j->len = 0;
        return errbuf_set(err, err_len, PGC_ERR_TOO_LARGE,
                          "batch: parts exceed the limit of %zu bytes", j->max);
    }
    if (j->len + len > j->cap) {
        size_t cap = j->cap ? j->cap : 65536;
        while (cap < j->len + len)
            cap *= 2;
        uint8_t *b = realloc(j->buf, cap);
        if (!b)
            return PGC_ERR_NOMEM;
        j->buf = b;
        j->cap = cap;
    }
    if (len)
        memcpy(j->buf + j->len, data, len);
    j->len += len;
    if (i < n) {
        j->next = i + 1;
        return 0;
    }
    j->next = 0;
    *out = j->buf;
    *out_len = j->len;
    return 1;
}

bool part_header_parse(const char *s, uint32_t *i, uint32_t *n)
{
    char *end;
    unsigned long a, b;
    if (*s < '0' || *s > '9')
        return false;
    a = strtoul(s, &end, 10);
    if (*end != '/' || end[1] < '0' || end[1] > '9')
        return false;
    b = strtoul(end + 1, &end, 10);
    if (*end || a == 0 || b == 0 || a > b || b > UINT32_MAX)
        return false;
    *i = (uint32_t)a;
    *n = (uint32_t)b;
    return true;
}
