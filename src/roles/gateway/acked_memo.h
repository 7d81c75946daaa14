/* Which changes of a log batch consumers acked, kept while the batch goes back to its
 * durable whole (a nak) when a stream ends: the gateway's next stream that gets the batch
 * again sends only the rest, so acked changes never come back and the rest comes back in
 * log order. One memo per gateway, shared by its streams; thread-safe. Bounded: past
 * ACKED_MEMO_MAX batches the oldest is forgotten (its acked changes would then be sent
 * again: at least once), and a batch redelivered to another gateway is forgotten there. */
#ifndef PGC_ROLES_GATEWAY_ACKED_MEMO_H
#define PGC_ROLES_GATEWAY_ACKED_MEMO_H

#include <stdbool.h>
#include <stdint.h>

#define ACKED_MEMO_MAX 4096
#define ACKED_MEMO_KEY_LEN 256

typedef struct acked_memo acked_memo;

acked_memo *acked_memo_create(void);    /* NULL when out of memory */
void acked_memo_destroy(acked_memo *m); /* NULL is a no-op */

/* Remembers that, of the batch at stream_seq in durable `key` (n Messages), those with
 * done[i] set were acked. PGC_OK, PGC_ERR_NOMEM, PGC_ERR_INVALID for a key too long. */
int acked_memo_put(acked_memo *m, const char *key, uint64_t stream_seq, uint32_t n,
                   const bool *done);
/* Takes what was remembered of that batch: sets done[i] for its acked Messages and forgets
 * it. False when nothing was (or n differs: not the same batch). */
bool acked_memo_take(acked_memo *m, const char *key, uint64_t stream_seq, uint32_t n, bool *done);
/* Batches remembered. */
uint32_t acked_memo_count(acked_memo *m);

#endif
