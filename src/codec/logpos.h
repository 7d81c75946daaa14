/* Positions in the log: (commit LSN, seq) as docs/protocol.md "Checkpoints" defines them, and
 * their text forms in NATS headers (Nats-Msg-Id "<lsn 16 hex>-<seq 8 hex>", Pgc-First /
 * Pgc-Last "<lsn hex>/<seq>") and in logs (LSNs as PostgreSQL prints them, "%X/%X"). */
#ifndef PGC_CODEC_LOGPOS_H
#define PGC_CODEC_LOGPOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct log_pos {
    uint64_t lsn;
    uint32_t seq;
} log_pos;

#define LOGPOS_MSGID_LEN 26 /* 16 + 1 + 8 + NUL */
#define LOGPOS_TEXT_LEN 32  /* "FFFFFFFFFFFFFFFF/4294967295" + NUL, rounded up */
#define LOGPOS_LSN_LEN 20   /* "FFFFFFFF/FFFFFFFF" + NUL */

/* -1, 0 or 1 as a is before, equal to or after b. */
static inline int logpos_cmp(log_pos a, log_pos b)
{
    if (a.lsn != b.lsn)
        return a.lsn < b.lsn ? -1 : 1;
    if (a.seq != b.seq)
        return a.seq < b.seq ? -1 : 1;
    return 0;
}

void logpos_format_msgid(log_pos p, char out[LOGPOS_MSGID_LEN]);
void logpos_format(log_pos p, char out[LOGPOS_TEXT_LEN]);
/* Parses the Pgc-First/Pgc-Last form "<lsn hex>/<seq decimal>"; false when malformed. */
bool logpos_parse(const char *s, log_pos *out);
/* "%X/%X", as PostgreSQL prints an LSN. */
void logpos_format_lsn(uint64_t lsn, char out[LOGPOS_LSN_LEN]);
/* Parses "%X/%X"; false when malformed. */
bool logpos_parse_lsn(const char *s, uint64_t *out);

#endif
