/* libFuzzer target for what the gateway and the replica applier do with a NATS message of
 * the log: its Pgc-First, Pgc-Last and Pgc-Part headers, the part joiner, the batch reader,
 * the gateway's raw scan of each Message (kind, Begin LSN, Change table and operation) and
 * the applier's protobuf-c unpack. The input is a sequence of messages, each
 *     u8 n, Pgc-First (n bytes); u8 n, Pgc-Last; u8 n, Pgc-Part (n = 0: no header);
 *     u16 big-endian length, the message's data
 * after a first byte that picks the joiner's limit. Invariants: where both the scan and the
 * unpack accept a Message whose bytes are canonical (they pack again to themselves), they
 * agree on its kind, LSN, table and operation; a Change written into a CaptureMessage
 * (per-change and batch) reads back as the same checkpoint and bytes; every Message that
 * decodes goes into a batch_writer, whose batch reads back as the same number of Messages. */
#include "codec/batch.h"
#include "codec/capbatch.h"
#include "codec/capmsg.h"
#include "codec/logpos.h"
#include "codec/part.h"
#include "core/status.h"
#include "pgcapture.pb-c.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct cursor {
    const uint8_t *p;
    size_t left;
} cursor;

/* A header as natsMsgHeader_Get gives it: an exact-size NUL-terminated copy. NULL when the
 * input has none (n = 0) or is used up (*ok false). */
static char *take_header(cursor *c, bool *ok)
{
    if (c->left < 1) {
        *ok = false;
        return NULL;
    }
    size_t n = c->p[0];
    c->p++, c->left--;
    if (n > c->left)
        n = c->left;
    if (n == 0)
        return NULL;
    char *s = malloc(n + 1);
    if (!s)
        abort();
    memcpy(s, c->p, n);
    s[n] = '\0';
    c->p += n, c->left -= n;
    return s;
}

static uint8_t *take_data(cursor *c, size_t *len)
{
    size_t n = 0;
    if (c->left >= 2) {
        n = (size_t)c->p[0] << 8 | c->p[1];
        c->p += 2, c->left -= 2;
    } else {
        c->left = 0;
    }
    if (n > c->left)
        n = c->left;
    uint8_t *d = malloc(n ? n : 1);
    if (!d)
        abort();
    memcpy(d, c->p, n);
    c->p += n, c->left -= n;
    *len = n;
    return d;
}

/* A Change written as a CaptureMessage, per change and in a batch, reads back unchanged. */
static void check_capture_message(const uint8_t *change, size_t len, log_pos pos)
{
    static const uint8_t handle[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
    char err[256];
    size_t cap = capmsg_build_size(len, sizeof handle);
    uint8_t *out = malloc(cap);
    if (!out)
        abort();
    size_t n = capmsg_build(out, pos.lsn, pos.seq, handle, sizeof handle, change, len);
    capbatch_item it;
    if (n > cap || n != capmsg_build_len(pos.lsn, pos.seq, sizeof handle, len) ||
        capbatch_read_item(out, n, &it, err, sizeof err) != PGC_OK || !it.has_checkpoint ||
        !it.has_change || it.lsn != pos.lsn || it.seq != pos.seq || it.data_len != sizeof handle ||
        memcmp(it.data, handle, sizeof handle) != 0 || it.change_len != len ||
        (len && memcmp(it.change, change, len) != 0))
        abort();
    free(out);

    capbatch b;
    capbatch_init(&b);
    uint64_t number = pos.lsn | 1, got_number;
    uint32_t items;
    if (capbatch_add(&b, pos.lsn, pos.seq, handle, sizeof handle, change, len) != PGC_OK ||
        capbatch_add(&b, pos.lsn, pos.seq + 1, NULL, 0, change, len) != PGC_OK ||
        capbatch_finish(&b, number) != PGC_OK)
        abort();
    capbatch_reader r;
    if (capbatch_reader_init(&r, b.buf, b.len, &got_number, &items, err, sizeof err) != PGC_OK ||
        got_number != number || items != 2)
        abort();
    for (uint32_t i = 0; i < 2; i++)
        if (capbatch_reader_next(&r, &it, err, sizeof err) != 1 || it.lsn != pos.lsn ||
            it.seq != pos.seq + i || it.change_len != len ||
            (len && memcmp(it.change, change, len) != 0))
            abort();
    if (capbatch_reader_next(&r, &it, err, sizeof err) != 0)
        abort();
    capbatch_free(&b);
}

/* Bytes that protobuf-c packs again to themselves: no duplicate, unknown or non-minimal
 * fields, so the raw scan and the unpack have one meaning to agree on. */
static bool canonical(const Pgcapture__Message *m, const uint8_t *p, size_t n)
{
    if (pgcapture__message__get_packed_size(m) != n)
        return false;
    uint8_t *again = malloc(n ? n : 1);
    if (!again)
        abort();
    pgcapture__message__pack(m, again);
    bool same = n == 0 || memcmp(again, p, n) == 0;
    free(again);
    return same;
}

/* The scan (gateway) and the unpack (replica) of one Message agree. */
static void check_message(const uint8_t *p, size_t n, log_pos pos, batch_writer *w)
{
    char err[256];
    capmsg_kind kind;
    const uint8_t *sub;
    size_t sub_len;
    int peek = capmsg_peek(p, n, &kind, &sub, &sub_len, err, sizeof err);
    uint64_t lsn = 0, commit_us = 0;
    const uint8_t *table = NULL;
    size_t table_len = 0;
    int op = -1, begin_rc = -1, table_rc = -1, op_rc = -1;
    if (peek == PGC_OK && kind == CAPMSG_BEGIN)
        begin_rc = capmsg_begin_lsn(sub, sub_len, &lsn, &commit_us, err, sizeof err);
    if (peek == PGC_OK && kind == CAPMSG_CHANGE) {
        table_rc = capmsg_change_table(sub, sub_len, &table, &table_len, err, sizeof err);
        op_rc = capmsg_change_op(sub, sub_len, &op, err, sizeof err);
        check_capture_message(sub, sub_len, pos);
    }
    Pgcapture__Message *m = pgcapture__message__unpack(NULL, n, p);
    if (!m)
        return;
    bool exact = canonical(m, p, n);
    /* The agent writes what it built, never bytes protobuf-c could not read again. */
    if (exact && batch_writer_add(w, &m->base, pos) == PGC_ERR_TOO_LARGE) {
        batch_writer_clear(w);
        if (batch_writer_add(w, &m->base, pos) != PGC_OK &&
            batch_writer_add_oversized(w, &m->base, pos) != PGC_OK)
            abort();
    }
    if (peek == PGC_OK && exact) {
        int want = m->type_case == PGCAPTURE__MESSAGE__TYPE_BEGIN    ? CAPMSG_BEGIN
                   : m->type_case == PGCAPTURE__MESSAGE__TYPE_CHANGE ? CAPMSG_CHANGE
                                                                     : CAPMSG_OTHER;
        if ((int)kind != want)
            abort();
        /* Inside a Begin or Change the raw scan is the stricter reader (protobuf-c 1.4 takes a
         * field number past 2^29 - 1 by dropping its high bits): compare where both read. */
        if (kind == CAPMSG_BEGIN && begin_rc == PGC_OK &&
            (lsn != m->begin->final_lsn || commit_us != m->begin->commit_time))
            abort();
        if (kind == CAPMSG_CHANGE && op_rc == PGC_OK && op != (int)m->change->op)
            abort();
        if (kind == CAPMSG_CHANGE && table_rc == PGC_OK) {
            const char *t = m->change->table ? m->change->table : "";
            if (memchr(table, 0, table_len) == NULL &&
                (strlen(t) != table_len || memcmp(t, table, table_len) != 0))
                abort();
        }
    }
    pgcapture__message__free_unpacked(m, NULL);
}

/* One whole (or joined) log message, as both readers walk it. */
static void check_batch(const uint8_t *data, size_t len, log_pos first)
{
    char err[256];
    batch_writer *w;
    if (batch_writer_create(64, &w) != PGC_OK)
        abort();
    batch_reader r;
    batch_reader_init(&r, data, len);
    const uint8_t *p;
    size_t n;
    log_pos pos = first;
    int rc;
    while ((rc = batch_reader_next(&r, &p, &n, err, sizeof err)) == 1) {
        if (p < data || n > len || p + n > data + len)
            abort();
        check_message(p, n, pos, w);
        pos.seq++;
    }
    if (rc < 0 && strncmp(err, "batch: ", 7) != 0)
        abort();
    /* What the writer holds reads back as as many Messages as it counted. */
    batch_reader_init(&r, batch_writer_data(w), batch_writer_len(w));
    uint32_t count = 0;
    while (batch_reader_next(&r, &p, &n, err, sizeof err) == 1) {
        Pgcapture__Message *m = pgcapture__message__unpack(NULL, n, p);
        if (!m)
            abort();
        pgcapture__message__free_unpacked(m, NULL);
        count++;
    }
    if (count != batch_writer_count(w))
        abort();
    batch_writer_destroy(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const size_t limits[] = {64, 1024, 65536, 1u << 20};
    part_joiner *j;
    if (part_joiner_create(limits[data[0] & 3], &j) != PGC_OK)
        abort();
    cursor c = {data + 1, size - 1};
    char err[256];
    while (c.left > 0) {
        bool ok = true;
        char *first_s = take_header(&c, &ok);
        char *last_s = take_header(&c, &ok);
        char *part_s = take_header(&c, &ok);
        size_t len;
        uint8_t *msg = take_data(&c, &len);
        log_pos first = {0, 0}, last = {0, 0};
        uint32_t pi, pn;
        bool has_first = first_s && logpos_parse(first_s, &first);
        bool has_last = last_s && logpos_parse(last_s, &last);
        if (has_first) {
            /* The text form reads back as itself. */
            char t[LOGPOS_TEXT_LEN];
            log_pos again;
            logpos_format(first, t);
            if (!logpos_parse(t, &again) || logpos_cmp(again, first) != 0)
                abort();
        }
        if (!part_s) {
            check_batch(msg, len, has_first ? first : last);
        } else if (part_header_parse(part_s, &pi, &pn)) {
            if (pi == 0 || pn == 0 || pi > pn)
                abort();
            const uint8_t *joined;
            size_t joined_len;
            int rc = part_joiner_feed(j, has_last ? last : first, pi, pn, msg, len, &joined,
                                      &joined_len, err, sizeof err);
            if (rc == 1) {
                /* An exact-size copy: the joiner's buffer is larger than what it holds. */
                if (joined_len > limits[data[0] & 3])
                    abort();
                uint8_t *whole = malloc(joined_len ? joined_len : 1);
                if (!whole)
                    abort();
                if (joined_len)
                    memcpy(whole, joined, joined_len);
                check_batch(whole, joined_len, first);
                free(whole);
            } else if (rc < 0 && strncmp(err, "batch: ", 7) != 0)
                abort();
        }
        free(first_s);
        free(last_s);
        free(part_s);
        free(msg);
        if (!ok)
            break;
    }
    part_joiner_destroy(j);
    return 0;
}
