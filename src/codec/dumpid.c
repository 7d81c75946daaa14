/* Dump ids (see dumpid.h). */
#include "codec/dumpid.h"

#include "codec/bigendian.h"

uint32_t dumpid_crc32(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

uint32_t dumpid_compute(const char *schema, size_t schema_len, const char *table, size_t table_len,
                        uint32_t page_begin, uint32_t page_end)
{
    uint8_t pages[8];
    bigendian_put32(pages, page_begin);
    bigendian_put32(pages + 4, page_end);
    uint32_t crc = dumpid_crc32(0, schema, schema_len);
    crc = dumpid_crc32(crc, table, table_len);
    return dumpid_crc32(crc, pages, sizeof pages);
}
