/* A server call's send queue (see server.h): messages queued from any thread, one send
 * batch in flight at a time, the status once the queue is empty, and writers waiting for
 * room. Everything here runs under the call's mutex. */
#include "rpc/server_private.h"

#include "core/clock.h"
#include "core/status.h"
#include "rpc/bytes.h"

#include <grpc/byte_buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Drops the queued messages, except the one gRPC is sending (it owns its buffer until the
 * batch completes). */
void rpc_call_drop_queue_locked(rpc_call *c)
{
    bool keep_head = c->send_in_flight && c->in_flight_is_msg && c->head;
    out_msg *m = keep_head ? c->head->next : c->head;
    while (m) {
        out_msg *next = m->next;
        c->queued--;
        c->queued_bytes -= m->len;
        grpc_byte_buffer_destroy(m->buf);
        free(m);
        m = next;
    }
    if (keep_head) {
        c->head->next = NULL;
        c->tail = c->head;
    } else {
        c->head = c->tail = NULL;
    }
}

/* Starts the next send batch if none is in flight: a queued message, or the status once
 * the queue is empty and the call is finishing. Caller holds c->mu. */
static void pump_sends_locked(rpc_call *c)
{
    if (c->send_in_flight || c->closed || c->status_started)
        return;
    grpc_op ops[3];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!c->initial_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        n++;
    }
    if (c->head) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->head->buf;
        /* More is queued behind it: let gRPC coalesce the writes. The last queued message
         * goes without the hint, which flushes what was buffered. */
        if (c->head->next)
            ops[n].flags = GRPC_WRITE_BUFFER_HINT;
        n++;
    } else if (c->finishing) {
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = c->code;
        c->status_details = grpc_slice_from_copied_string(c->message ? c->message : "");
        ops[n].data.send_status_from_server.status_details = &c->status_details;
        n++;
        c->status_started = true;
    } else {
        return;
    }
    if (grpc_call_start_batch(c->call, ops, n, &c->t_send, NULL) == GRPC_CALL_OK) {
        c->initial_sent = true;
        c->send_in_flight = true;
        c->in_flight_is_msg = !c->status_started;
        c->batches++;
        c->refs++;
    } else {
        /* The call is unusable: nothing more can be sent. */
        rpc_call_drop_queue_locked(c);
        c->finishing = true;
        c->status_started = true;
        pthread_cond_broadcast(&c->cv);
    }
}

int rpc_call_send(rpc_call *c, const uint8_t *data, size_t len)
{
    out_msg *m = malloc(sizeof *m);
    if (!m)
        return PGC_ERR_NOMEM;
    m->next = NULL;
    m->buf = rpc_bytes_to_buffer(data, len);
    m->len = len;
    pthread_mutex_lock(&c->mu);
    if (c->finishing || c->closed || c->over) {
        pthread_mutex_unlock(&c->mu);
        grpc_byte_buffer_destroy(m->buf);
        free(m);
        return PGC_ERR_STATE;
    }
    if (c->tail)
        c->tail->next = m;
    else
        c->head = m;
    c->tail = m;
    c->queued++;
    c->queued_bytes += len;
    pump_sends_locked(c);
    pthread_mutex_unlock(&c->mu);
    return PGC_OK;
}

size_t rpc_call_queued(rpc_call *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->queued;
    pthread_mutex_unlock(&c->mu);
    return n;
}

size_t rpc_call_queued_bytes(rpc_call *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->queued_bytes;
    pthread_mutex_unlock(&c->mu);
    return n;
}

int rpc_call_wait_writable(rpc_call *c, size_t max_queued, int timeout_ms)
{
    return rpc_call_wait_room(c, max_queued, SIZE_MAX, timeout_ms);
}

int rpc_call_wait_room(rpc_call *c, size_t max_queued, size_t max_bytes, int timeout_ms)
{
    struct timespec until;
    clock_deadline_ms(&until, timeout_ms);
    int rc = PGC_OK;
    pthread_mutex_lock(&c->mu);
    while (!(c->finishing || c->closed || c->over) &&
           (c->queued >= max_queued || c->queued_bytes >= max_bytes)) {
        /* Woken once the queue has drained to a quarter, not after every send: a writer
         * that refills one message at a time hands over to the cq thread once per message,
         * and that hand-over costs more than the message (measured in bench/dump). */
        c->wake_at = max_queued / 4;
        c->wake_at_bytes = max_bytes == SIZE_MAX ? SIZE_MAX : max_bytes / 4;
        if (pthread_cond_timedwait(&c->cv, &c->mu, &until) != 0) {
            rc = PGC_ERR_TIMEOUT;
            break;
        }
    }
    if (c->finishing || c->closed || c->over)
        rc = PGC_ERR_STATE;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void rpc_call_finish(rpc_call *c, grpc_status_code code, const char *message)
{
    pthread_mutex_lock(&c->mu);
    if (!c->finishing && !c->closed) {
        c->finishing = true;
        c->code = code;
        c->message = message ? strdup(message) : NULL;
        pump_sends_locked(c);
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
}

bool rpc_call_is_over(rpc_call *c)
{
    pthread_mutex_lock(&c->mu);
    bool over = c->finishing || c->closed || c->over;
    pthread_mutex_unlock(&c->mu);
    return over;
}

void rpc_call_on_send(rpc_call *c, bool success)
{
    pthread_mutex_lock(&c->mu);
    c->batches--;
    c->send_in_flight = false;
    if (c->in_flight_is_msg && c->head) {
        out_msg *m = c->head;
        c->head = m->next;
        if (!c->head)
            c->tail = NULL;
        c->queued--;
        c->queued_bytes -= m->len;
        grpc_byte_buffer_destroy(m->buf);
        free(m);
    }
    c->in_flight_is_msg = false;
    if (!success) {
        rpc_call_drop_queue_locked(c);
        c->finishing = true;
    } else {
        pump_sends_locked(c);
    }
    if (!success || c->finishing ||
        (c->queued <= c->wake_at && c->queued_bytes <= c->wake_at_bytes))
        pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    rpc_call_unref(c);
    rpc_call_maybe_done(c);
}
