/* libFuzzer target for libpgcapture's value decoders and renderers: the first byte picks a
 * type (every supported scalar and array OID), the rest is the value, rendered as text and
 * as JSON; the same bytes are also parsed as a CaptureMessage and rendered as change
 * JSON. Nothing may crash, leak or read out of bounds. */
#include "pgcapture.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint32_t oids[] = {
    16,   17,   19,   20,   21,   23,   25,   114,  650,  700,  701,  869,  1042, 1043, 1082,
    1083, 1114, 1184, 1186, 1700, 2950, 3802, 1000, 1001, 1003, 1016, 1005, 1007, 1009, 199,
    651,  1021, 1022, 1041, 1014, 1015, 1182, 1183, 1115, 1185, 1187, 1231, 2951, 3807, 790,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t oid = oids[data[0] % (sizeof oids / sizeof oids[0])];
    size_t n = size - 1;
    /* An exact-size copy so that any over-read is caught. */
    uint8_t *v = malloc(n ? n : 1);
    if (!v)
        return 0;
    memcpy(v, data + 1, n);
    char err[256], *out = NULL;
    if (pgc_value_render_text(oid, v, n, &out, NULL, err, sizeof err) == PGC_OK && !out)
        abort();
    pgc_memory_free(out);
    out = NULL;
    if (pgc_value_render_json(oid, v, n, &out, NULL, err, sizeof err) == PGC_OK && !out)
        abort();
    pgc_memory_free(out);
    char buf[64];
    pgc_value_decode_numeric(v, n, buf, sizeof buf, NULL, err, sizeof err);
    pgc_change *c = NULL;
    if (pgc_change_parse(v, n, &c, err, sizeof err) == PGC_OK) {
        out = NULL;
        pgc_change_render_json(c, &out, NULL, err, sizeof err);
        pgc_memory_free(out);
        pgc_change_destroy(c);
    }
    free(v);
    return 0;
}
