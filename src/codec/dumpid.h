/* The dump id a Capture stream carries in Checkpoint.seq of dump rows: CRC-32 (IEEE) of
 * the schema and table names followed by page_begin and page_end as big-endian uint32,
 * the bytes pgcapture's gateway hashes, so ids agree with pgcapture's for the same item. */
#ifndef PGC_CODEC_DUMPID_H
#define PGC_CODEC_DUMPID_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) continued from `crc` (0 to
 * start). */
uint32_t dumpid_crc32(uint32_t crc, const void *data, size_t len);

uint32_t dumpid_compute(const char *schema, size_t schema_len, const char *table, size_t table_len,
                        uint32_t page_begin, uint32_t page_end);

#endif
