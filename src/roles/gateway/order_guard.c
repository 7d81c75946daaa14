/* The stream's order guard (see order_guard.h): the sequences away, sorted. */
#include "roles/gateway/order_guard.h"

#include <stdlib.h>
#include <string.h>

struct order_guard {
    int64_t patience_ms, deadline_ms;
    uint64_t through;               /* a take-back's last sequence, until one of it comes */
    uint64_t away[ORDER_GUARD_MAX]; /* given back, ascending */
    uint32_t n;
    uint64_t forgotten;
};

order_guard *order_guard_create(int64_t patience_ms)
{
    order_guard *g = calloc(1, sizeof *g);
    if (g)
        g->patience_ms = patience_ms;
    return g;
}

void order_guard_destroy(order_guard *g)
{
    free(g);
}

static void forget(order_guard *g)
{
    g->through = 0;
    g->n = 0;
    g->forgotten++;
}

static void progress(order_guard *g, int64_t now_ms)
{
    g->deadline_ms = now_ms + g->patience_ms;
}

bool order_guard_active(const order_guard *g)
{
    return g->through || g->n;
}

uint64_t order_guard_forgotten(const order_guard *g)
{
    return g->forgotten;
}

void order_guard_asked_back(order_guard *g, uint64_t through, int64_t now_ms)
{
    if (!through)
        return;
    if (through > g->through)
        g->through = through;
    progress(g, now_ms);
}

bool order_guard_given_back(order_guard *g, uint64_t seq, int64_t now_ms)
{
    uint32_t i = 0;
    while (i < g->n && g->away[i] < seq)
        i++;
    if (i < g->n && g->away[i] == seq)
        return true;
    if (g->n == ORDER_GUARD_MAX) {
        forget(g);
        return false;
    }
    if (!order_guard_active(g))
        progress(g, now_ms);
    memmove(g->away + i + 1, g->away + i, (g->n - i) * sizeof *g->away);
    g->away[i] = seq;
    g->n++;
    return true;
}

void order_guard_copy(order_guard *g, uint64_t seq, int64_t now_ms)
{
    if (g->through && seq <= g->through) {
        g->through = 0;
        progress(g, now_ms);
    }
}

order_guard_verdict order_guard_admit(order_guard *g, uint64_t seq, int64_t now_ms)
{
    if (order_guard_active(g) && now_ms >= g->deadline_ms)
        forget(g);
    if (g->through) {
        if (seq > g->through)
            return order_guard_given_back(g, seq, now_ms) ? ORDER_GUARD_GIVE_BACK
                                                          : ORDER_GUARD_PASS;
        /* The first of what was asked back: all of it is queued, sorted, ahead of the rest. */
        g->through = 0;
        progress(g, now_ms);
    }
    if (g->n && seq > g->away[0])
        return order_guard_given_back(g, seq, now_ms) ? ORDER_GUARD_GIVE_BACK : ORDER_GUARD_PASS;
    if (g->n && seq == g->away[0]) {
        memmove(g->away, g->away + 1, (g->n - 1) * sizeof *g->away);
        g->n--;
        progress(g, now_ms);
    }
    return ORDER_GUARD_PASS;
}
