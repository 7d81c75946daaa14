/* libFuzzer target for the pgoutput decoder, the relation cache and the protocol Message
 * builder (with the gateway's dropping of NULL old fields on what it builds): arbitrary
 * bytes, cut into messages by a length prefix, must never crash, leak or read out of
 * bounds. */
#include "codec/capmsg.h"
#include "codec/msgbuild.h"
#include "codec/pgoutput.h"
#include "codec/relcache.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A change of a known relation built, packed, and shaped for the Capture stream: what is
 * left must still be a Change protobuf-c reads, with no NULL in old. */
static void build_change(msgbuild *b, const relcache *rels, const pgoutput_msg *m)
{
    uint32_t relid = m->kind == 'I'   ? m->u.insert.relid
                     : m->kind == 'U' ? m->u.update.relid
                                      : m->u.del.relid;
    const relcache_entry *rel = relcache_lookup(rels, relid);
    const Pgcapture__Message *out;
    char err[256];
    if (!rel || msgbuild_change(b, rel, m, &out, err, sizeof err) != 0)
        return;
    size_t n = pgcapture__change__get_packed_size(out->change);
    uint8_t *packed = malloc(n ? n : 1), *shaped = malloc(n ? n : 1);
    bool has;
    if (packed && shaped && pgcapture__change__pack(out->change, packed) == n &&
        capmsg_change_old_has_null(packed, n, &has, err, sizeof err) == 0) {
        size_t k = has ? capmsg_change_drop_old_nulls(packed, n, shaped) : n;
        Pgcapture__Change *c = pgcapture__change__unpack(NULL, k, has ? shaped : packed);
        if (!c)
            abort();
        for (size_t i = 0; i < c->n_old; i++)
            if (has && c->old[i]->value_case == PGCAPTURE__FIELD__VALUE__NOT_SET)
                abort();
        pgcapture__change__free_unpacked(c, NULL);
    }
    free(packed);
    free(shaped);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pgoutput_decoder *d = NULL;
    relcache *rels = NULL;
    msgbuild *b = NULL;
    char err[256];
    if (size < 1 || pgoutput_decoder_create(data[0] & 1 ? 2 : 1, &d) != 0 ||
        relcache_create(&rels) != 0 || msgbuild_create(&b) != 0)
        goto out;
    data++;
    size--;
    /* Each message: one length byte, then that many bytes, copied to an exact-size
     * allocation so any over-read is caught. */
    while (size > 0) {
        size_t n = data[0];
        data++;
        size--;
        if (n > size)
            n = size;
        uint8_t *msg = malloc(n ? n : 1);
        if (!msg)
            break;
        memcpy(msg, data, n);
        pgoutput_msg m;
        bool ok = pgoutput_decode(d, msg, n, &m, err, sizeof err) == 0;
        if (ok && m.kind == 'R') {
            const relcache_entry *e;
            if (relcache_put(rels, &m, &e, err, sizeof err) == 0 &&
                relcache_lookup(rels, m.u.relation.oid) != e)
                abort();
        } else if (ok && (m.kind == 'I' || m.kind == 'U' || m.kind == 'D')) {
            build_change(b, rels, &m);
        }
        free(msg);
        data += n;
        size -= n;
    }
out:
    msgbuild_destroy(b);
    relcache_destroy(rels);
    pgoutput_decoder_destroy(d);
    return 0;
}
