/* The parts of a Message larger than the batch limit (docs/protocol.md "In the log"): its
 * delimited bytes travel as NATS messages with a Pgc-Part header "i/n", and readers join
 * them again (part 1 always starts a new message: a restarted agent may resend parts). */
#ifndef PGC_CODEC_PART_H
#define PGC_CODEC_PART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/logpos.h"

/* The largest Message (with its batch framing) the agent can write, and so the most a
 * joiner ever needs: a Change borrows its values' bytes from one pgoutput message, which
 * PostgreSQL builds in one buffer of less than 1 GiB (MaxAllocSize), and adds per column at
 * most a name of 63 bytes, an oid and tags; 1,664 columns (MaxTupleAttributeNumber) in an
 * old and a new row add under 300 KiB. Readers hold a joined message in memory whole (one
 * Message decodes in one piece), so this is also what one costs them at most. */
#define PART_MAX_MESSAGE_BYTES ((size_t)1024 * 1024 * 1024 + (size_t)1024 * 1024)

/* Joins parts "i/n" back into one batch. */
typedef struct part_joiner part_joiner;
int part_joiner_create(size_t max_total_bytes, part_joiner **out);
void part_joiner_destroy(part_joiner *j);
/* Feeds part i of n of the message at `pos` (every part of one message carries its
 * position in Pgc-First and Pgc-Last). Returns 1 with the joined bytes (valid until the next
 * feed) when i == n, 0 while more parts are needed, PGC_ERR_MALFORMED when a part is out of
 * order or belongs to another message than the parts before it (the partial message is
 * dropped; a part 1 that follows starts afresh), PGC_ERR_TOO_LARGE past max_total_bytes.
 * Parts of two messages of the same size could otherwise join into one that decodes, with
 * the content of both and the position of one. */
int part_joiner_feed(part_joiner *j, log_pos pos, uint32_t i, uint32_t n, const uint8_t *data,
                     size_t len, const uint8_t **out, size_t *out_len, char *err, size_t err_len);
/* Parses a Pgc-Part header "i/n" (1 <= i <= n); false when malformed. */
bool part_header_parse(const char *s, uint32_t *i, uint32_t *n);

#endif
