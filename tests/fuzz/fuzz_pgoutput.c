/* libFuzzer target for the pgoutput decoder and the relation cache: arbitrary bytes, cut
 * into messages by a length prefix, must never crash, leak or read out of bounds. */
#include "codec/pgoutput.h"
#include "codec/relcache.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pgoutput_decoder *d = NULL;
    relcache *rels = NULL;
    char err[256];
    if (size < 1 || pgoutput_decoder_create(data[0] & 1 ? 2 : 1, &d) != 0 ||
        relcache_create(&rels) != 0)
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
        if (pgoutput_decode(d, msg, n, &m, err, sizeof err) == 0 && m.kind == 'R') {
            const relcache_entry *e;
            if (relcache_put(rels, &m, &e, err, sizeof err) == 0 &&
                relcache_lookup(rels, m.u.relation.oid) != e)
                abort();
        }
        free(msg);
        data += n;
        size -= n;
    }
out:
    relcache_destroy(rels);
    pgoutput_decoder_destroy(d);
    return 0;
}
