/* Token buckets per peer host (see peer_rate.h). Open addressing over a fixed table: a
 * host probes a few slots from its hash; when all are taken by other hosts, the one seen
 * longest ago is replaced (it starts again with a full bucket, which only ever favours
 * the evicted host, never a flooding one that keeps its slot warm). */
#include "rpc/peer_rate.h"

#include "core/hash.h"

#include <stdlib.h>
#include <string.h>

#define PROBES 8

typedef struct slot {
    char host[PEER_RATE_HOST_MAX];
    double tokens;
    int64_t last_ms;
    bool used;
} slot;

struct peer_rate {
    double per_sec, burst;
    slot slots[PEER_RATE_SLOTS];
};

peer_rate *peer_rate_create(double per_sec, double burst)
{
    peer_rate *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->per_sec = per_sec;
    r->burst = burst < 1 ? 1 : burst;
    return r;
}

void peer_rate_destroy(peer_rate *r)
{
    free(r);
}

void peer_rate_host(const char *peer, char *out, size_t out_len)
{
    const char *p = peer;
    const char *colon = strchr(p, ':');
    /* "ipv4:", "ipv6:", "unix:" prefixes */
    if (colon && colon - p <= 4 && strncmp(p, "ipv", 3) == 0)
        p = colon + 1;
    size_t n;
    if (*p == '[') {
        const char *end = strchr(p, ']');
        n = end ? (size_t)(end - p + 1) : strlen(p);
    } else {
        const char *last = strrchr(p, ':');
        n = last ? (size_t)(last - p) : strlen(p);
    }
    if (n >= out_len)
        n = out_len - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

bool peer_rate_take(peer_rate *r, const char *peer, int64_t now_ms)
{
    char host[PEER_RATE_HOST_MAX];
    peer_rate_host(peer, host, sizeof host);
    uint64_t h = hash_fnv1a_str(host);
    slot *found = NULL, *oldest = NULL;
    for (int i = 0; i < PROBES; i++) {
        slot *s = &r->slots[(h + (uint64_t)i) % PEER_RATE_SLOTS];
        if (s->used && strcmp(s->host, host) == 0) {
            found = s;
            break;
        }
        if (!oldest || !s->used || (oldest->used && s->last_ms < oldest->last_ms))
            oldest = s;
    }
    if (!found) {
        found = oldest;
        memcpy(found->host, host, sizeof host);
        found->used = true;
        found->tokens = r->burst;
        found->last_ms = now_ms;
    }
    if (now_ms > found->last_ms) {
        found->tokens += (double)(now_ms - found->last_ms) * r->per_sec / 1000.0;
        if (found->tokens > r->burst)
            found->tokens = r->burst;
    }
    found->last_ms = now_ms > found->last_ms ? now_ms : found->last_ms;
    if (found->tokens < 1.0)
        return false;
    found->tokens -= 1.0;
    return true;
}
