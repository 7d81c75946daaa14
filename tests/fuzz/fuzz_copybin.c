/* libFuzzer target for the binary COPY decoder and what the dumper builds from it: the
 * first byte picks a chunk size, the rest is a COPY stream. Decoded in one chunk and in
 * small chunks it must give the same tuples and the same outcome; each tuple becomes a
 * dump row Change (dumprow) in a batch (capbatch) that protobuf-c and the batch reader
 * must read back with the same values. Nothing may crash, leak or read out of bounds. */
#include "codec/capbatch.h"
#include "codec/copybin.h"
#include "codec/dumprow.h"
#include "pgcapture.pb-c.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct digest {
    uint64_t tuples, hash;
    int status;
} digest;

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* Checks one tuple through dumprow and capbatch. */
static void check_row(const copybin_tuple *t)
{
    enum { MAXC = 64 };
    if (t->nfields > MAXC)
        return;
    char names[MAXC][8];
    const char *np[MAXC];
    uint32_t oids[MAXC];
    for (int i = 0; i < t->nfields; i++) {
        snprintf(names[i], sizeof names[i], "c%d", i);
        np[i] = names[i];
        oids[i] = (uint32_t)i;
    }
    dumprow *r;
    if (dumprow_create("s", "t", t->nfields, np, oids, &r) != 0)
        return;
    capbatch b;
    capbatch_init(&b);
    size_t n = dumprow_size(r, t);
    uint8_t *at;
    if ((at = capbatch_add_item(&b, 0, 7, NULL, 0, n)) != NULL) {
        if (dumprow_write(r, t, at) != n || capbatch_finish(&b, 1) != 0)
            abort();
        Pgcapture__CaptureMessage *m = pgcapture__capture_message__unpack(NULL, b.len, b.buf);
        if (!m || m->n_items != 1 || !m->items[0]->change)
            abort();
        const Pgcapture__Change *c = m->items[0]->change;
        if (c->n_new_ != t->nfields)
            abort();
        for (int i = 0; i < t->nfields; i++) {
            const Pgcapture__Field *f = c->new_[i];
            bool null = t->fields[i].len < 0;
            if (null != (f->value_case == PGCAPTURE__FIELD__VALUE__NOT_SET))
                abort();
            if (!null &&
                (f->binary.len != (size_t)t->fields[i].len ||
                 (f->binary.len && memcmp(f->binary.data, t->fields[i].data, f->binary.len) != 0)))
                abort();
        }
        pgcapture__capture_message__free_unpacked(m, NULL);
        capbatch_reader rd;
        uint64_t batch;
        uint32_t items;
        capbatch_item it;
        if (capbatch_reader_init(&rd, b.buf, b.len, &batch, &items, NULL, 0) != 0 || batch != 1 ||
            items != 1 || capbatch_reader_next(&rd, &it, NULL, 0) != 1 || it.seq != 7 ||
            it.change_len != n)
            abort();
    }
    capbatch_free(&b);
    dumprow_destroy(r);
}

static digest decode(const uint8_t *data, size_t size, size_t step, bool rows)
{
    digest dg = {0, 14695981039346656037ULL, 0};
    copybin *d;
    if (copybin_create(1 << 16, &d) != 0) {
        dg.status = -100;
        return dg;
    }
    size_t off = 0;
    int rc = 0;
    while (off < size && rc >= 0) {
        size_t n = size - off < step ? size - off : step;
        /* An exact-size copy of each chunk so that any over-read is caught. */
        uint8_t *chunk = malloc(n);
        if (!chunk)
            break;
        memcpy(chunk, data + off, n);
        off += n;
        copybin_feed(d, chunk, n);
        copybin_tuple t;
        while ((rc = copybin_next(d, &t, NULL, 0)) == 1) {
            dg.tuples++;
            for (int i = 0; i < t.nfields; i++) {
                dg.hash = mix(dg.hash, &t.fields[i].len, sizeof t.fields[i].len);
                if (t.fields[i].len > 0)
                    dg.hash = mix(dg.hash, t.fields[i].data, (size_t)t.fields[i].len);
            }
            if (rows)
                check_row(&t);
        }
        free(chunk);
    }
    dg.status = rc < 0 ? rc : copybin_finish(d, NULL, 0);
    copybin_destroy(d);
    return dg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)(data[0] % 16) + 1;
    data++;
    size--;
    digest whole = decode(data, size, size ? size : 1, true);
    digest cut = decode(data, size, step, false);
    /* Errors may be found at different tuples, but only where both agree on what came
     * before: the tuples decoded and the outcome must match. */
    if (whole.status != cut.status || whole.tuples != cut.tuples || whole.hash != cut.hash)
        abort();
    return 0;
}
