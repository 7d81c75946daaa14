/* A URI's dead letters (docs/protocol.md "In the log"): changes the gateway put on the
 * subject pgcapture.<source>.retry.<durable>.dead of the retry stream
 * PGCAPTURE_<source>_RETRY, each a one-Message batch (in parts, Pgc-Part "i/n", when larger
 * than the server's max_payload) with headers Pgc-First, Pgc-Requeues and Pgc-Reason. A
 * letter is named by its position: the stream sequence of its first NATS message. Reading
 * leaves them where they are (a consumer of its own, deleted after the scan); removing one
 * deletes its messages from the stream. One thread at a time. */
#ifndef PGC_JETSTREAM_DEADLETTERS_H
#define PGC_JETSTREAM_DEADLETTERS_H

#include "codec/logpos.h"

#include <stddef.h>
#include <stdint.h>

typedef struct deadletters deadletters;

typedef struct deadletter {
    uint64_t position;    /* stream sequence of its first NATS message */
    const uint64_t *seqs; /* the stream sequences of all its NATS messages */
    uint32_t n_seqs;
    const uint8_t *data; /* the one-Message batch, parts joined */
    size_t len;
    char first[LOGPOS_TEXT_LEN]; /* Pgc-First: its position in the log ("" when absent) */
    char requeues[16];           /* Pgc-Requeues as stored ("" when absent) */
    char reason[300];            /* Pgc-Reason ("" when absent) */
} deadletter;

/* Connects; PGC_ERR_NOT_FOUND when the source has no retry stream (no dead letter ever). */
int deadletters_open(const char *nats_url, const char *source, const char *durable,
                     deadletters **out, char *err, size_t err_len);
void deadletters_close(deadletters *d); /* NULL is a no-op */

/* Calls fn for each letter the subject holds now, oldest first (the letter and its bytes
 * are valid during the call). fn returns 0 to go on, 1 to stop, or a negative status that
 * ends the scan and is returned. Parts that do not make a whole letter (a gateway that died
 * while writing one) are reported through `skipped` (may be NULL) and left alone. */
int deadletters_scan(deadletters *d, int (*fn)(void *arg, const deadletter *l), void *arg,
                     void (*skipped)(void *arg, uint64_t seq, const char *why), char *err,
                     size_t err_len);
/* Removes a letter (every message of it). */
int deadletters_delete(deadletters *d, const deadletter *l, char *err, size_t err_len);
/* Publishes the letter's Message to the URI's retry subject with a requeue count of 0 (the
 * URI's consumers get it again after the gateway's retry delay), and removes the letter once
 * JetStream has acked the publish. A failure to remove it leaves it in both places
 * (at least once); the error says so. */
int deadletters_replay(deadletters *d, const deadletter *l, char *err, size_t err_len);

#endif
