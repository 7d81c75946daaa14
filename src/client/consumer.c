/* The consumer: one DBLogGateway.Capture stream (protocol.md "The Capture stream"): init
 * with the URI and parameters, then for each CaptureMessage call the handler and send an
 * ack echoing the checkpoint (a requeue when the handler says so).
 *
 * Threading: pgc_consumer_run does everything on the caller's thread; the only state
 * another thread (or a signal handler) touches is the atomic stop flag, which the run
 * loop polls between short receive waits. */
#include "client/change.h"
#include "core/status.h"
#include "google/protobuf/struct.pb-c.h"
#include "pgcapture.h"
#include "pgcapture.pb-c.h"
#include "rpc/client.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define CAPTURE_METHOD "/pgcapture.DBLogGateway/Capture"
#define POLL_MS 100

/* gRPC status codes the gateway uses to refuse a stream (grpc/status.h numbering). */
#define GRPC_INVALID_ARGUMENT 3
#define GRPC_NOT_FOUND 5
#define GRPC_CANCELLED 1

struct pgc_consumer {
    char *gateway;
    char *uri;
    char **names; /* parameters, TableRegex first when given */
    char **values;
    size_t n_params;
    size_t n_alloc; /* slots of names/values (zeroed when allocated) */
    rpc_channel *channel;
    atomic_int stop;
};

void pgc_consumer_options_init(pgc_consumer_options *o)
{
    memset(o, 0, sizeof *o);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

int pgc_consumer_create(const pgc_consumer_options *o, pgc_consumer **out, char *err,
                        size_t err_len)
{
    if (!o || !out)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "consumer: NULL argument");
    if (!o->gateway || !*o->gateway || !o->uri || !*o->uri)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "consumer: gateway and uri are required");
    if (o->n_params && (!o->param_names || !o->param_values))
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "consumer: %zu parameters without names "
                          "or values", o->n_params);
    for (size_t i = 0; i < o->n_params; i++)
        if (!o->param_names[i] || !o->param_values[i])
            return errbuf_set(err, err_len, PGC_ERR_INVALID, "consumer: parameter %zu is NULL", i);
    pgc_consumer *c = calloc(1, sizeof *c);
    size_t n = o->n_params + (o->table_regex ? 1 : 0);
    if (!c)
        goto nomem;
    atomic_init(&c->stop, 0);
    c->gateway = dup_str(o->gateway);
    c->uri = dup_str(o->uri);
    c->names = calloc(n ? n : 1, sizeof *c->names);
    c->values = calloc(n ? n : 1, sizeof *c->values);
    if (!c->gateway || !c->uri || !c->names || !c->values)
        goto nomem;
    c->n_alloc = n;
    if (o->table_regex) {
        if (!(c->names[0] = dup_str("TableRegex")) || !(c->values[0] = dup_str(o->table_regex)))
            goto nomem;
        c->n_params = 1;
    }
    for (size_t i = 0; i < o->n_params; i++, c->n_params++) {
        if (!(c->names[c->n_params] = dup_str(o->param_names[i])) ||
            !(c->values[c->n_params] = dup_str(o->param_values[i])))
            goto nomem;
    }
    *out = c;
    return PGC_OK;
nomem:
    pgc_consumer_destroy(c);
    return errbuf_set(err, err_len, PGC_ERR_NOMEM, "consumer: out of memory");
}

void pgc_consumer_destroy(pgc_consumer *c)
{
    if (!c)
        return;
    rpc_channel_destroy(c->channel);
    for (size_t i = 0; i < c->n_alloc; i++) {
        free(c->names[i]);
        free(c->values[i]);
    }
    free(c->names);
    free(c->values);
    free(c->gateway);
    free(c->uri);
    free(c);
}

void pgc_consumer_stop(pgc_consumer *c)
{
    if (c)
        atomic_store(&c->stop, 1);
}

/* Init parameters go as a google.protobuf.Struct: "true"/"false" as booleans, numbers as
 * numbers, anything else as a string (pgcapture's TableRegex is a string). */
static int send_init(pgc_consumer *c, rpc_stream *st, char *err, size_t err_len)
{
    size_t n = c->n_params;
    Google__Protobuf__Struct__FieldsEntry *entries = calloc(n ? n : 1, sizeof *entries);
    Google__Protobuf__Struct__FieldsEntry **entry_ptrs = calloc(n ? n : 1, sizeof *entry_ptrs);
    Google__Protobuf__Value *values = calloc(n ? n : 1, sizeof *values);
    uint8_t *buf = NULL;
    int rc = PGC_ERR_NOMEM;
    if (!entries || !entry_ptrs || !values)
        goto out;
    for (size_t i = 0; i < n; i++) {
        google__protobuf__struct__fields_entry__init(&entries[i]);
        google__protobuf__value__init(&values[i]);
        entries[i].key = c->names[i];
        entries[i].value = &values[i];
        entry_ptrs[i] = &entries[i];
        const char *v = c->values[i];
        char *end = NULL;
        double d = *v ? strtod(v, &end) : 0;
        if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
            values[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
            values[i].bool_value = v[0] == 't';
        } else if (end && *end == '\0' && strcmp(c->names[i], "TableRegex") != 0) {
            values[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
            values[i].number_value = d;
        } else {
            values[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
            values[i].string_value = c->values[i];
        }
    }
    Google__Protobuf__Struct params = GOOGLE__PROTOBUF__STRUCT__INIT;
    params.n_fields = n;
    params.fields = entry_ptrs;
    Pgcapture__CaptureInit init = PGCAPTURE__CAPTURE_INIT__INIT;
    init.uri = c->uri;
    init.parameters = &params;
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_INIT;
    req.init = &init;
    size_t len = pgcapture__capture_request__get_packed_size(&req);
    if (!(buf = malloc(len ? len : 1)))
        goto out;
    pgcapture__capture_request__pack(&req, buf);
    rc = rpc_stream_send(st, buf, len, err, err_len);
out:
    if (rc == PGC_ERR_NOMEM)
        errbuf_set(err, err_len, rc, "consumer: out of memory for the init request");
    free(buf);
    free(values);
    free(entry_ptrs);
    free(entries);
    return rc;
}

static int send_ack(rpc_stream *st, const Pgcapture__CaptureMessage *m, const char *reason,
                    char *err, size_t err_len)
{
    Pgcapture__Checkpoint empty = PGCAPTURE__CHECKPOINT__INIT;
    Pgcapture__CaptureAck ack = PGCAPTURE__CAPTURE_ACK__INIT;
    ack.checkpoint = m->checkpoint ? m->checkpoint : &empty;
    ack.requeue_reason = (char *)(reason ? reason : "");
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_ACK;
    req.ack = &ack;
    uint8_t small[256];
    size_t len = pgcapture__capture_request__get_packed_size(&req);
    uint8_t *buf = len <= sizeof small ? small : malloc(len);
    if (!buf)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "consumer: out of memory for an ack");
    pgcapture__capture_request__pack(&req, buf);
    int rc = rpc_stream_send(st, buf, len, err, err_len);
    if (buf != small)
        free(buf);
    return rc;
}

/* The stream ended: turn the gRPC status into ours. */
static int stream_ended(pgc_consumer *c, rpc_stream *st, char *err, size_t err_len)
{
    const char *msg = NULL;
    int code = rpc_stream_status(st, &msg);
    if (atomic_load(&c->stop))
        return PGC_OK;
    int rc = code == GRPC_NOT_FOUND          ? PGC_ERR_NOT_FOUND
             : code == GRPC_INVALID_ARGUMENT ? PGC_ERR_INVALID
                                             : PGC_ERR_CONN;
    return errbuf_set(err, err_len, rc, "gateway %s ended the Capture stream of %s: gRPC status %d%s%s",
                      c->gateway, c->uri, code, msg && *msg ? ": " : "", msg ? msg : "");
}

int pgc_consumer_run(pgc_consumer *c, pgc_change_handler handler, void *arg, char *err,
                     size_t err_len)
{
    if (!c || !handler)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "consumer: NULL argument");
    if (atomic_exchange(&c->stop, 0))
        return PGC_OK;
    int rc;
    if (!c->channel && (rc = rpc_channel_create(c->gateway, &c->channel, err, err_len)) != PGC_OK)
        return rc;
    rpc_stream *st = NULL;
    if ((rc = rpc_stream_open(c->channel, CAPTURE_METHOD, &st, err, err_len)) != PGC_OK)
        return rc;
    if ((rc = send_init(c, st, err, err_len)) != PGC_OK) {
        if (rc == PGC_ERR_CONN)
            rc = stream_ended(c, st, err, err_len);
        rpc_stream_destroy(st);
        return rc;
    }
    for (;;) {
        if (atomic_load(&c->stop)) {
            rc = PGC_OK;
            break;
        }
        uint8_t *data = NULL;
        size_t len = 0;
        int got = rpc_stream_recv(st, POLL_MS, &data, &len, err, err_len);
        if (got == PGC_ERR_TIMEOUT)
            continue;
        if (got == 0) {
            rc = stream_ended(c, st, err, err_len);
            break;
        }
        if (got < 0) {
            rc = got;
            break;
        }
        Pgcapture__CaptureMessage *m = pgcapture__capture_message__unpack(NULL, len, data);
        free(data);
        if (!m) {
            rc = errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                            "gateway %s sent %zu bytes that are not a CaptureMessage", c->gateway,
                            len);
            break;
        }
        pgc_change change;
        rc = change_view(&change, m, err, err_len);
        if (rc != PGC_OK) {
            protobuf_c_message_free_unpacked(&m->base, NULL);
            break;
        }
        const char *reason = NULL;
        pgc_verdict v = handler(arg, &change, &reason);
        if (v == PGC_REQUEUE && (!reason || !*reason))
            reason = "requeued by consumer";
        rc = send_ack(st, m, v == PGC_REQUEUE ? reason : "", err, err_len);
        protobuf_c_message_free_unpacked(&m->base, NULL);
        if (rc == PGC_ERR_CONN) {
            rc = stream_ended(c, st, err, err_len);
            break;
        }
        if (rc != PGC_OK)
            break;
    }
    rpc_stream_destroy(st);
    if (rc == PGC_OK && err && err_len)
        err[0] = '\0'; /* not the last receive's time-out */
    /* A stop ends this run only: the consumer may be run again. */
    atomic_store(&c->stop, 0);
    return rc;
}
