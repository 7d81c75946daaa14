/* libFuzzer target for libpgcapture's reading of what a gateway sends on a Capture stream:
 * a CaptureMessage unpacked into the consumer's arena (pbarena, as pgc_consumer_run does),
 * each change of it (the message's own, or every batch item's) checked by change_view and
 * rendered as JSON, as a handler would; and the same bytes walked by capbatch's reader.
 * Invariants: where protobuf-c and capbatch both accept the bytes they agree on the batch
 * number and the number of items, and on each item's checkpoint when the bytes are
 * canonical (they pack again to themselves); an arena reset frees everything. (capbatch is
 * the stricter: protobuf-c 1.4 takes a field number past 2^29 - 1 by dropping its high
 * bits.) */
#include "client/change.h"
#include "client/pbarena.h"
#include "codec/capbatch.h"
#include "core/status.h"
#include "pgcapture.h"
#include "pgcapture.pb-c.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pbarena *arena;

static void handle(const Pgcapture__Checkpoint *cp, const Pgcapture__Change *ch)
{
    char err[256];
    pgc_change c;
    if (change_view(&c, cp, ch, err, sizeof err) != PGC_OK)
        return;
    char *json = NULL;
    size_t len;
    if (pgc_change_render_json(&c, &json, &len, err, sizeof err) == PGC_OK &&
        (!json || strlen(json) != len))
        abort();
    free(json);
    if (pgc_change_get_lsn(&c) != (cp ? cp->lsn : 0))
        abort();
}

static bool canonical(const Pgcapture__CaptureMessage *m, const uint8_t *p, size_t n)
{
    if (pgcapture__capture_message__get_packed_size(m) != n)
        return false;
    uint8_t *again = malloc(n ? n : 1);
    if (!again)
        abort();
    pgcapture__capture_message__pack(m, again);
    bool same = n == 0 || memcmp(again, p, n) == 0;
    free(again);
    return same;
}

/* capbatch's reading of the bytes agrees with protobuf-c's. */
static void compare(const Pgcapture__CaptureMessage *m, const uint8_t *p, size_t n)
{
    char err[256];
    capbatch_reader r;
    uint64_t batch;
    uint32_t items;
    if (capbatch_reader_init(&r, p, n, &batch, &items, err, sizeof err) != PGC_OK)
        return;
    if (batch != m->batch || items != m->n_items)
        abort();
    bool exact = canonical(m, p, n);
    for (size_t i = 0; i < m->n_items; i++) {
        capbatch_item it;
        int rc = capbatch_reader_next(&r, &it, err, sizeof err);
        if (rc < 0)
            return;
        if (rc != 1)
            abort();
        const Pgcapture__Checkpoint *cp = m->items[i]->checkpoint;
        if (exact &&
            (it.has_checkpoint != (cp != NULL) ||
             (cp && (it.lsn != cp->lsn || it.seq != cp->seq || it.data_len != cp->data.len ||
                     (it.data_len && memcmp(it.data, cp->data.data, it.data_len))))))
            abort();
    }
    capbatch_item it;
    if (capbatch_reader_next(&r, &it, err, sizeof err) == 1)
        abort();
    if (m->n_items == 0 && exact && capbatch_read_item(p, n, &it, err, sizeof err) == PGC_OK) {
        if (it.has_checkpoint != (m->checkpoint != NULL) ||
            (m->checkpoint && (it.lsn != m->checkpoint->lsn || it.seq != m->checkpoint->seq)) ||
            it.has_change != (m->change != NULL))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!arena && !(arena = pbarena_create()))
        abort();
    /* An exact-size copy so that any over-read is caught. */
    uint8_t *in = malloc(size ? size : 1);
    if (!in)
        abort();
    if (size)
        memcpy(in, data, size);
    pbarena_reset(arena);
    Pgcapture__CaptureMessage *m =
        pgcapture__capture_message__unpack(pbarena_allocator(arena), size, in);
    if (m) {
        if (m->n_items || m->batch) {
            for (size_t i = 0; i < m->n_items; i++)
                if (m->items[i])
                    handle(m->items[i]->checkpoint, m->items[i]->change);
        } else {
            handle(m->checkpoint, m->change);
        }
        compare(m, in, size);
    }
    pbarena_reset(arena);
    if (pbarena_used(arena) != 0)
        abort();
    free(in);
    return 0;
}
