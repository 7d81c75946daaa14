/* Acked changes of batches handed back whole (see acked_memo.h): a ring of entries in
 * insertion order, looked up by a linear scan (a hand-back is rare and holds a few
 * batches; the scan runs only for redelivered log messages). */
#include "roles/gateway/acked_memo.h"

#include "core/status.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct memo_entry {
    char key[ACKED_MEMO_KEY_LEN];
    uint64_t stream_seq;
    uint32_t n;
    uint8_t *bits; /* NULL: a free slot */
} memo_entry;

struct acked_memo {
    pthread_mutex_t mu;
    memo_entry ring[ACKED_MEMO_MAX];
    uint32_t next, count;
};

acked_memo *acked_memo_create(void)
{
    acked_memo *m = calloc(1, sizeof *m);
    if (m)
        pthread_mutex_init(&m->mu, NULL);
    return m;
}

void acked_memo_destroy(acked_memo *m)
{
    if (!m)
        return;
    for (uint32_t i = 0; i < ACKED_MEMO_MAX; i++)
        free(m->ring[i].bits);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static memo_entry *find_locked(acked_memo *m, const char *key, uint64_t stream_seq)
{
    for (uint32_t i = 0; i < ACKED_MEMO_MAX && m->count; i++) {
        memo_entry *e = &m->ring[i];
        if (e->bits && e->stream_seq == stream_seq && strcmp(e->key, key) == 0)
            return e;
    }
    return NULL;
}

static void clear(acked_memo *m, memo_entry *e)
{
    free(e->bits);
    e->bits = NULL;
    m->count--;
}

int acked_memo_put(acked_memo *m, const char *key, uint64_t stream_seq, uint32_t n,
                   const bool *done)
{
    if (strlen(key) >= ACKED_MEMO_KEY_LEN)
        return PGC_ERR_INVALID;
    uint8_t *bits = calloc((size_t)n / 8 + 1, 1);
    if (!bits)
        return PGC_ERR_NOMEM;
    for (uint32_t i = 0; i < n; i++)
        if (done[i])
            bits[i / 8] |= (uint8_t)(1u << (i % 8));
    pthread_mutex_lock(&m->mu);
    memo_entry *e = find_locked(m, key, stream_seq);
    if (!e) {
        e = &m->ring[m->next];
        m->next = (m->next + 1) % ACKED_MEMO_MAX;
        if (e->bits)
            clear(m, e); /* the oldest, forgotten */
        m->count++;
    } else {
        free(e->bits);
    }
    strcpy(e->key, key);
    e->stream_seq = stream_seq;
    e->n = n;
    e->bits = bits;
    pthread_mutex_unlock(&m->mu);
    return PGC_OK;
}

bool acked_memo_take(acked_memo *m, const char *key, uint64_t stream_seq, uint32_t n, bool *done)
{
    pthread_mutex_lock(&m->mu);
    memo_entry *e = find_locked(m, key, stream_seq);
    bool found = e && e->n == n;
    if (found)
        for (uint32_t i = 0; i < n; i++)
            done[i] = (e->bits[i / 8] >> (i % 8)) & 1u;
    if (e)
        clear(m, e);
    pthread_mutex_unlock(&m->mu);
    return found;
}

uint32_t acked_memo_count(acked_memo *m)
{
    pthread_mutex_lock(&m->mu);
    uint32_t c = m->count;
    pthread_mutex_unlock(&m->mu);
    return c;
}
