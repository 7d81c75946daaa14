/* libFuzzer target for the type OID rewriting of binary values: the first byte picks the
 * value's type from a small replica catalog (arrays, records, a record of unknown
 * attributes whose nested OIDs come from the input, a record that contains itself), the
 * rest is the value. Nothing may crash or touch a byte outside the value; an error names
 * itself; a value rewritten once comes out of a second rewrite unchanged. */
#include "codec/oidrewrite.h"
#include "core/status.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint32_t PT_ATTS[] = {23, 6000, 101};
static const uint32_t SELF_ATTS[] = {200, 25};
static const oidrewrite_type TYPES[] = {
    {100, 'c', 0, 3, (uint32_t *)PT_ATTS},   /* (int4, enum, array of itself) */
    {101, 'a', 100, 0, NULL},                /* array of 100 */
    {102, 'a', 23, 0, NULL},                 /* int4[] */
    {103, 'c', 0, 0, NULL},                  /* a record whose field types the value gives */
    {104, 'a', 103, 0, NULL},                /* array of such records */
    {200, 'c', 0, 2, (uint32_t *)SELF_ATTS}, /* a record that contains itself */
    {23, 'b', 0, 0, NULL},
    {25, 'b', 0, 0, NULL},
    {6000, 'b', 0, 0, NULL},
};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])

static const oidrewrite_type *lookup(void *ctx, uint32_t oid)
{
    (void)ctx;
    for (size_t i = 0; i < NTYPES; i++)
        if (TYPES[i].oid == oid)
            return &TYPES[i];
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t oid = TYPES[data[0] % NTYPES].oid;
    size_t n = size - 1;
    /* An exact-size copy so that any access past the value is caught. */
    uint8_t *v = malloc(n ? n : 1);
    if (!v)
        return 0;
    memcpy(v, data + 1, n);
    char err[256];
    err[0] = '\0';
    int rc = oidrewrite_value(v, n, oid, lookup, NULL, err, sizeof err);
    if (rc != PGC_OK && strncmp(err, "oidrewrite: ", 12) != 0)
        abort();
    if (rc == PGC_OK) {
        uint8_t *again = malloc(n ? n : 1);
        if (!again) {
            free(v);
            return 0;
        }
        memcpy(again, v, n);
        if (oidrewrite_value(again, n, oid, lookup, NULL, err, sizeof err) != PGC_OK ||
            memcmp(again, v, n) != 0)
            abort();
        free(again);
    }
    free(v);
    return 0;
}
