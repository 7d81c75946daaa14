/* Builds protocol Messages (docs/protocol.md) from decoded pgoutput messages. Binary values
 * are borrowed from the pgoutput buffer, not copied; everything built lives in the
 * builder's scratch space and is valid until the next build call, which is what lets the
 * agent pack straight into a batch without allocating per row. */
#ifndef PGC_CODEC_MSGBUILD_H
#define PGC_CODEC_MSGBUILD_H

#include <stddef.h>
#include <stdint.h>

#include "codec/pgoutput.h"
#include "codec/relcache.h"
#include "pgcapture.pb-c.h"

typedef struct msgbuild msgbuild;

int msgbuild_create(msgbuild **out);
void msgbuild_destroy(msgbuild *b); /* NULL is a no-op */

/* Begin and Commit of a transaction. */
const Pgcapture__Message *msgbuild_begin(msgbuild *b, uint64_t final_lsn, int64_t commit_time,
                                         uint32_t xid);
const Pgcapture__Message *msgbuild_commit(msgbuild *b, uint64_t commit_lsn, uint64_t end_lsn,
                                          int64_t commit_time);

/* A Change for an Insert, Update or Delete of relation `rel` (docs/protocol.md, "Rows and
 * values"). An unchanged TOAST value of the new row is taken from the old row when the
 * relation is REPLICA IDENTITY FULL and the old row has it, else left out of the row; NULLs
 * are fields without a value, in both rows; an old key tuple ('K') keeps only the key
 * columns. PGC_ERR_MALFORMED when the tuple does not match the relation. */
int msgbuild_change(msgbuild *b, const relcache_entry *rel, const pgoutput_msg *m,
                    const Pgcapture__Message **out, char *err, size_t err_len);

/* A TRUNCATE Change (protocol extension) of one relation. */
const Pgcapture__Message *msgbuild_truncate(msgbuild *b, const relcache_entry *rel);

#endif
