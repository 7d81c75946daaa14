/* Writes the seed corpora of the fuzz targets added for the message path
 * (tests/fuzz/corpus/<target>/) with the project's own encoders, in each target's input
 * layout: `make fuzz-seeds` (the files are committed; run it again when a layout changes).
 * The values are those of the unit tests' fixtures. */
#include "codec/batch.h"
#include "codec/capbatch.h"
#include "codec/capmsg.h"
#include "codec/cphandle.h"
#include "codec/logpos.h"
#include "pgcapture.pb-c.h"
#include "roles/controller/queue_kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *dir;

static void put(const char *target, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        fprintf(stderr, "mkseeds: cannot write %s\n", path);
        exit(1);
    }
}

/* A growing byte string. */
typedef struct bytes {
    uint8_t b[65536];
    size_t n;
} bytes;

static void add(bytes *o, const void *p, size_t n)
{
    if (o->n + n > sizeof o->b)
        abort();
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void add_u8(bytes *o, unsigned v)
{
    uint8_t c = (uint8_t)v;
    add(o, &c, 1);
}

static void add_u16(bytes *o, size_t v)
{
    add_u8(o, (unsigned)(v >> 8));
    add_u8(o, (unsigned)(v & 0xff));
}

static void add_str8(bytes *o, const char *s)
{
    add_u8(o, (unsigned)strlen(s));
    add(o, s, strlen(s));
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *p = malloc(*len ? *len : 1);
    protobuf_c_message_pack(m, p);
    return p;
}

/* An insert into public.orders (id int4 = 42, note text) as the agent writes it. */
static void fixture_change(Pgcapture__Change *c, Pgcapture__Field *f, Pgcapture__Field **fs,
                           const char *note)
{
    static const uint8_t id[] = {0, 0, 0, 42};
    pgcapture__change__init(c);
    pgcapture__field__init(&f[0]);
    pgcapture__field__init(&f[1]);
    f[0].name = "id";
    f[0].oid = 23;
    f[0].value_case = PGCAPTURE__FIELD__VALUE_BINARY;
    f[0].binary.data = (uint8_t *)id;
    f[0].binary.len = sizeof id;
    f[1].name = "note";
    f[1].oid = 25;
    f[1].value_case = PGCAPTURE__FIELD__VALUE_BINARY;
    f[1].binary.data = (uint8_t *)note;
    f[1].binary.len = strlen(note);
    fs[0] = &f[0];
    fs[1] = &f[1];
    c->op = PGCAPTURE__CHANGE__OPERATION__INSERT;
    c->schema = "public";
    c->table = "orders";
    c->n_new_ = 2;
    c->new_ = fs;
}

static void logbatch(void)
{
    Pgcapture__Begin b = PGCAPTURE__BEGIN__INIT;
    b.final_lsn = 0x16B3D28;
    b.commit_time = 780000000000000ULL;
    b.remote_xid = 741;
    Pgcapture__Commit cm = PGCAPTURE__COMMIT__INIT;
    cm.commit_lsn = 0x16B3D28;
    cm.end_lsn = 0x16B3D58;
    Pgcapture__Change c;
    Pgcapture__Field f[2], *fs[2];
    fixture_change(&c, f, fs, "first order");
    Pgcapture__Message mb = PGCAPTURE__MESSAGE__INIT, mc = PGCAPTURE__MESSAGE__INIT,
                       mm = PGCAPTURE__MESSAGE__INIT;
    mb.type_case = PGCAPTURE__MESSAGE__TYPE_BEGIN;
    mb.begin = &b;
    mc.type_case = PGCAPTURE__MESSAGE__TYPE_CHANGE;
    mc.change = &c;
    mm.type_case = PGCAPTURE__MESSAGE__TYPE_COMMIT;
    mm.commit = &cm;

    /* One transaction in one log message. */
    batch_writer *w;
    batch_writer_create(65536, &w);
    batch_writer_add(w, &mb.base, (log_pos){0x16B3D28, 0});
    batch_writer_add(w, &mc.base, (log_pos){0x16B3D28, 1});
    batch_writer_add(w, &mm.base, (log_pos){0x16B3D28, 2});
    bytes o = {.n = 0};
    add_u8(&o, 2);
    add_str8(&o, "16B3D28/0");
    add_str8(&o, "16B3D28/2");
    add_u8(&o, 0);
    add_u16(&o, batch_writer_len(w));
    add(&o, batch_writer_data(w), batch_writer_len(w));
    put("logbatch", "transaction", o.b, o.n);

    /* A large change as three parts of at most 64 bytes, its begin and commit apart. */
    char note[150];
    memset(note, 'n', sizeof note - 1);
    note[sizeof note - 1] = '\0';
    fixture_change(&c, f, fs, note);
    batch_writer_clear(w);
    batch_writer_add_oversized(w, &mc.base, (log_pos){0x16B3D28, 1});
    size_t len = batch_writer_len(w), parts = (len + 63) / 64;
    o.n = 0;
    add_u8(&o, 2);
    for (size_t i = 1; i <= parts; i++) {
        char part[16];
        snprintf(part, sizeof part, "%zu/%zu", i, parts);
        add_str8(&o, "16B3D28/1");
        add_str8(&o, "16B3D28/1");
        add_str8(&o, part);
        size_t n = i < parts ? 64 : len - 64 * (parts - 1);
        add_u16(&o, n);
        add(&o, batch_writer_data(w) + 64 * (i - 1), n);
    }
    put("logbatch", "parts", o.b, o.n);
    batch_writer_destroy(w);
}

static void capture_request(void)
{
    Google__Protobuf__Value v[3];
    Google__Protobuf__Struct__FieldsEntry e[3], *ep[3];
    for (int i = 0; i < 3; i++) {
        google__protobuf__value__init(&v[i]);
        google__protobuf__struct__fields_entry__init(&e[i]);
        e[i].value = &v[i];
        ep[i] = &e[i];
    }
    e[0].key = "TableRegex";
    v[0].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    v[0].string_value = "^public\\.orders$";
    e[1].key = "Truncate";
    v[1].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    v[1].string_value = "true";
    e[2].key = "BatchLimit";
    v[2].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
    v[2].number_value = 100;
    Google__Protobuf__Struct params = GOOGLE__PROTOBUF__STRUCT__INIT;
    params.n_fields = 3;
    params.fields = ep;
    Pgcapture__CaptureInit init = PGCAPTURE__CAPTURE_INIT__INIT;
    init.uri = "orders-consumer";
    init.parameters = &params;
    Pgcapture__CaptureRequest r = PGCAPTURE__CAPTURE_REQUEST__INIT;
    r.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_INIT;
    r.init = &init;
    size_t len;
    uint8_t *p = pack(&r.base, &len);
    put("capture_request", "init", p, len);
    free(p);

    uint8_t handle[CPHANDLE_LEN];
    cphandle h = {1234, 1, CPHANDLE_LOG};
    cphandle_encode(&h, handle);
    Pgcapture__Checkpoint cp = PGCAPTURE__CHECKPOINT__INIT;
    cp.lsn = 0x16B3D28;
    cp.seq = 1;
    cp.data.data = handle;
    cp.data.len = sizeof handle;
    Pgcapture__CaptureAck ack = PGCAPTURE__CAPTURE_ACK__INIT;
    ack.checkpoint = &cp;
    ack.requeue_reason = "";
    r.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_ACK;
    r.ack = &ack;
    p = pack(&r.base, &len);
    put("capture_request", "ack", p, len);
    free(p);
    ack.requeue_reason = "handler failed";
    p = pack(&r.base, &len);
    put("capture_request", "requeue", p, len);
    free(p);
    ack.checkpoint = NULL;
    ack.requeue_reason = "";
    ack.batch = 3;
    p = pack(&r.base, &len);
    put("capture_request", "batch_ack", p, len);
    free(p);
}

static void capture_message(void)
{
    Pgcapture__Change c;
    Pgcapture__Field f[2], *fs[2];
    fixture_change(&c, f, fs, "first order");
    size_t clen;
    uint8_t *change = pack(&c.base, &clen);
    uint8_t handle[CPHANDLE_LEN];
    cphandle h = {1234, 1, CPHANDLE_LOG};
    cphandle_encode(&h, handle);
    uint8_t *one = malloc(capmsg_build_size(clen, sizeof handle));
    size_t n = capmsg_build(one, 0x16B3D28, 1, handle, sizeof handle, change, clen);
    put("capture_message", "change", one, n);
    free(one);
    capbatch b;
    capbatch_init(&b);
    capbatch_add(&b, 0x16B3D28, 1, handle, sizeof handle, change, clen);
    h.index = 2;
    cphandle_encode(&h, handle);
    capbatch_add(&b, 0x16B3D28, 2, handle, sizeof handle, change, clen);
    capbatch_finish(&b, 1);
    put("capture_message", "batch", b.buf, b.len);
    capbatch_free(&b);
    free(change);
}

static void add_request(bytes *o, unsigned what, const ProtobufCMessage *m)
{
    size_t len;
    uint8_t *p = pack(m, &len);
    add_u8(o, what);
    add_u16(o, len);
    add(o, p, len);
    free(p);
}

static void controller_request(void)
{
    bytes o = {.n = 0};
    Pgcapture__DumpInfoResponse d[2] = {PGCAPTURE__DUMP_INFO_RESPONSE__INIT,
                                        PGCAPTURE__DUMP_INFO_RESPONSE__INIT};
    Pgcapture__DumpInfoResponse *dp[2] = {&d[0], &d[1]};
    for (int i = 0; i < 2; i++) {
        d[i].schema = "public";
        d[i].table = "orders";
        d[i].page_begin = (uint32_t)(100 * i);
        d[i].page_end = (uint32_t)(100 * i + 99);
    }
    Pgcapture__ScheduleRequest s = PGCAPTURE__SCHEDULE_REQUEST__INIT;
    s.uri = "app/orders";
    s.n_dumps = 2;
    s.dumps = dp;
    add_request(&o, 0, &s.base);
    Google__Protobuf__Duration dur = GOOGLE__PROTOBUF__DURATION__INIT;
    dur.seconds = 1;
    dur.nanos = 500000000;
    Pgcapture__SetScheduleCoolDownRequest cd = PGCAPTURE__SET_SCHEDULE_COOL_DOWN_REQUEST__INIT;
    cd.uri = "app/orders";
    cd.duration = &dur;
    add_request(&o, 2, &cd.base);
    Pgcapture__DumpInfoRequest pull = PGCAPTURE__DUMP_INFO_REQUEST__INIT;
    pull.uri = "app/orders";
    add_request(&o, 4, &pull.base);
    pull.uri = "";
    pull.rows_sent = 1000;
    add_request(&o, 4, &pull.base);
    pull.requeue_reason = "replica unreachable";
    add_request(&o, 4, &pull.base);
    Pgcapture__ControllerStatusRequest st = PGCAPTURE__CONTROLLER_STATUS_REQUEST__INIT;
    add_request(&o, 3, &st.base);
    Pgcapture__StopScheduleRequest stop = PGCAPTURE__STOP_SCHEDULE_REQUEST__INIT;
    stop.uri = "app/orders";
    add_request(&o, 1, &stop.base);
    put("controller_request", "session", o.b, o.n);

    /* What the bucket holds for it. */
    uint8_t buf[QUEUE_KV_MAX_VALUE_BYTES];
    char key[QUEUE_KV_MAX_KEY_BYTES + 1];
    dump_queue_item it = {7, "public", "orders", 100, 199, 3, 0, false};
    size_t n = queue_kv_encode_item(&it, buf, sizeof buf);
    o.n = 0;
    add_u8(&o, 5);
    add_u16(&o, n);
    add(&o, buf, n);
    n = queue_kv_encode_meta(1500, 12, 14, buf, sizeof buf);
    add_u8(&o, 6);
    add_u16(&o, n);
    add(&o, buf, n);
    queue_kv_item_key("app/orders", 7, key, sizeof key);
    add_u8(&o, 7);
    add_u16(&o, strlen(key));
    add(&o, key, strlen(key));
    queue_kv_meta_key("app/orders", key, sizeof key);
    add_u8(&o, 7);
    add_u16(&o, strlen(key));
    add(&o, key, strlen(key));
    put("controller_request", "bucket", o.b, o.n);
}

static void text(const char *target, const char *name, unsigned first, const char *s)
{
    bytes o = {.n = 0};
    add_u8(&o, first);
    add(&o, s, strlen(s));
    put(target, name, o.b, o.n);
}

static void files(void)
{
    text("inifile", "ini", 0,
         "# a comment\n; another\n\n[orders-consumer]\n  source = main \r\n"
         "nats_url = nats://10.0.0.1:4222\ndurable = orders\n"
         "replica = host=r1 dbname=app password=x=y\n[billing]\nsource=s2\n");
    text("inifile", "config", 1,
         "# pgcapture gateway\nnats_url = 'nats://n1:4222, nats://n2:4222'\ncount = 8\n"
         "wait = 250ms\nlimit = 2kB\nflag = on\nname = fromfile\n");
    text("inifile", "urls", 2, "nats://n1:4222, nats://n2:4222,,tls://n3:4443");
    text("inifile", "duration", 2, "2min");
    text("resolver_acl", "resolver", 0,
         "# a comment\n[orders-consumer]\nsource = main\nnats_url = nats://10.0.0.1:4222\n"
         "durable = orders\nreplica = host=r1 dbname=app\ndump_schemas = public, sales\n"
         "capture = gw1, sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b\n"
         "[billing]\nsource=s2\n");
    text("resolver_acl", "acl", 1,
         "# controller ACL\n[*]\npull = gw1, gw2\nstatus = ops\n[app]\nschedule = ops\n"
         "schedule = sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b\n"
         "dump_schemas = public, pg_catalog\n");
}

int main(int argc, char **argv)
{
    dir = argc > 1 ? argv[1] : "tests/fuzz/corpus";
    logbatch();
    capture_request();
    capture_message();
    controller_request();
    files();
    return 0;
}
