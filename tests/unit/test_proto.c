/* The wire types (proto/pgcapture.proto through protobuf-c): every message kind encodes
 * and decodes to the same values, oneofs keep their case, Struct parameters keep nested
 * values, garbage is refused without crashing, and the method paths of rpc/methods.h are
 * the proto's. */
#include "harness/runner.h"
#include "rpc/methods.h"

#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "pgcapture.pb-c.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct packed {
    uint8_t *buf;
    size_t len;
} packed;

static void free_buf(void *p)
{
    free(p);
}

static packed pack(const ProtobufCMessage *m)
{
    packed p;
    p.len = protobuf_c_message_get_packed_size(m);
    p.buf = malloc(p.len ? p.len : 1);
    EXPECT_TRUE(p.buf != NULL);
    unit_defer(free_buf, p.buf);
    EXPECT_EQ_UINT(p.len, protobuf_c_message_pack(m, p.buf));
    return p;
}

static void free_msg(void *m)
{
    protobuf_c_message_free_unpacked(m, NULL);
}

static void *unpack(const ProtobufCMessageDescriptor *d, packed p)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, p.len, p.buf);
    EXPECT_TRUE(m != NULL);
    unit_defer(free_msg, m);
    return m;
}

static void test_change_message_round_trips_with_fields_null_and_binary(void)
{
    static const uint8_t bin[] = {0x00, 0x00, 0x00, 0x2a, 0x00, 0xff};
    Pgcapture__Field f1 = PGCAPTURE__FIELD__INIT, f2 = PGCAPTURE__FIELD__INIT,
                     f3 = PGCAPTURE__FIELD__INIT, o1 = PGCAPTURE__FIELD__INIT;
    f1.name = "id";
    f1.oid = 23;
    f1.value_case = PGCAPTURE__FIELD__VALUE_BINARY;
    f1.binary.data = (uint8_t *)bin;
    f1.binary.len = sizeof bin;
    f2.name = "note"; /* SQL NULL: neither binary nor text */
    f2.oid = 25;
    f3.name = "txt";
    f3.oid = 25;
    f3.value_case = PGCAPTURE__FIELD__VALUE_TEXT;
    f3.text = "héllo";
    o1.name = "id";
    o1.oid = 23;
    o1.value_case = PGCAPTURE__FIELD__VALUE_BINARY;
    o1.binary.data = (uint8_t *)bin;
    o1.binary.len = 4;
    Pgcapture__Field *news[] = {&f1, &f2, &f3}, *olds[] = {&o1};
    Pgcapture__Change ch = PGCAPTURE__CHANGE__INIT;
    ch.op = PGCAPTURE__CHANGE__OPERATION__UPDATE;
    ch.schema = "public";
    ch.table = "t1";
    ch.n_new_ = 3;
    ch.new_ = news;
    ch.n_old = 1;
    ch.old = olds;
    Pgcapture__Message msg = PGCAPTURE__MESSAGE__INIT;
    msg.type_case = PGCAPTURE__MESSAGE__TYPE_CHANGE;
    msg.change = &ch;

    Pgcapture__Message *got = unpack(&pgcapture__message__descriptor, pack(&msg.base));
    EXPECT_EQ_INT(PGCAPTURE__MESSAGE__TYPE_CHANGE, got->type_case);
    Pgcapture__Change *c = got->change;
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__UPDATE, c->op);
    EXPECT_EQ_STR("public", c->schema);
    EXPECT_EQ_STR("t1", c->table);
    EXPECT_EQ_UINT(3, c->n_new_);
    EXPECT_EQ_UINT(1, c->n_old);
    EXPECT_EQ_STR("id", c->new_[0]->name);
    EXPECT_EQ_UINT(23, c->new_[0]->oid);
    EXPECT_EQ_INT(PGCAPTURE__FIELD__VALUE_BINARY, c->new_[0]->value_case);
    EXPECT_EQ_MEM(bin, sizeof bin, c->new_[0]->binary.data, c->new_[0]->binary.len);
    EXPECT_EQ_INT(PGCAPTURE__FIELD__VALUE__NOT_SET, c->new_[1]->value_case);
    EXPECT_EQ_INT(PGCAPTURE__FIELD__VALUE_TEXT, c->new_[2]->value_case);
    EXPECT_EQ_STR("héllo", c->new_[2]->text);
    EXPECT_EQ_MEM(bin, 4, c->old[0]->binary.data, c->old[0]->binary.len);
}

static void test_begin_commit_and_keepalive_keep_their_oneof_case(void)
{
    Pgcapture__Begin b = PGCAPTURE__BEGIN__INIT;
    b.final_lsn = 0x16B3748ULL;
    b.commit_time = 784111777123456ULL;
    b.remote_xid = 4000000000U;
    Pgcapture__Message m1 = PGCAPTURE__MESSAGE__INIT;
    m1.type_case = PGCAPTURE__MESSAGE__TYPE_BEGIN;
    m1.begin = &b;
    Pgcapture__Message *g1 = unpack(&pgcapture__message__descriptor, pack(&m1.base));
    EXPECT_EQ_INT(PGCAPTURE__MESSAGE__TYPE_BEGIN, g1->type_case);
    EXPECT_EQ_UINT(0x16B3748ULL, g1->begin->final_lsn);
    EXPECT_EQ_UINT(784111777123456ULL, g1->begin->commit_time);
    EXPECT_EQ_UINT(4000000000U, g1->begin->remote_xid);

    Pgcapture__Commit c = PGCAPTURE__COMMIT__INIT;
    c.commit_lsn = UINT64_MAX;
    c.end_lsn = 1;
    c.commit_time = 2;
    Pgcapture__Message m2 = PGCAPTURE__MESSAGE__INIT;
    m2.type_case = PGCAPTURE__MESSAGE__TYPE_COMMIT;
    m2.commit = &c;
    Pgcapture__Message *g2 = unpack(&pgcapture__message__descriptor, pack(&m2.base));
    EXPECT_EQ_INT(PGCAPTURE__MESSAGE__TYPE_COMMIT, g2->type_case);
    EXPECT_EQ_UINT(UINT64_MAX, g2->commit->commit_lsn);
    EXPECT_EQ_UINT(1, g2->commit->end_lsn);
    EXPECT_EQ_UINT(2, g2->commit->commit_time);

    Pgcapture__KeepAlive k = PGCAPTURE__KEEP_ALIVE__INIT;
    Pgcapture__Message m3 = PGCAPTURE__MESSAGE__INIT;
    m3.type_case = PGCAPTURE__MESSAGE__TYPE_KEEP_ALIVE;
    m3.keep_alive = &k;
    packed p3 = pack(&m3.base);
    EXPECT_EQ_UINT(2, p3.len); /* field 4, length 0 */
    Pgcapture__Message *g3 = unpack(&pgcapture__message__descriptor, p3);
    EXPECT_EQ_INT(PGCAPTURE__MESSAGE__TYPE_KEEP_ALIVE, g3->type_case);
}

static void test_field_numbers_match_the_protocol_table(void)
{
    /* Checkpoint{lsn=1, seq=2, data=3}: hand-encoded bytes must decode (wire contract). */
    static const uint8_t ck[] = {0x08, 0x96, 0x01, 0x10, 0x07, 0x1a, 0x02, 0xab, 0xcd};
    packed p = {(uint8_t *)ck, sizeof ck};
    Pgcapture__Checkpoint *c = unpack(&pgcapture__checkpoint__descriptor, p);
    EXPECT_EQ_UINT(150, c->lsn);
    EXPECT_EQ_UINT(7, c->seq);
    EXPECT_EQ_UINT(2, c->data.len);
    EXPECT_EQ_UINT(0xcd, c->data.data[1]);
    /* CaptureAck{checkpoint=1, requeue_reason=2} inside CaptureRequest{ack=2}. */
    static const uint8_t req[] = {0x12, 0x07, 0x0a, 0x02, 0x08, 0x05, 0x12, 0x01, 'x'};
    packed q = {(uint8_t *)req, sizeof req};
    Pgcapture__CaptureRequest *r = unpack(&pgcapture__capture_request__descriptor, q);
    EXPECT_EQ_INT(PGCAPTURE__CAPTURE_REQUEST__TYPE_ACK, r->type_case);
    EXPECT_EQ_UINT(5, r->ack->checkpoint->lsn);
    EXPECT_EQ_STR("x", r->ack->requeue_reason);
    /* DumpInfoResponse{schema=1, table=2, page_begin=3, page_end=4}. */
    static const uint8_t di[] = {0x0a, 0x01, 's', 0x12, 0x01, 't', 0x18, 0x03, 0x20, 0x09};
    packed d = {(uint8_t *)di, sizeof di};
    Pgcapture__DumpInfoResponse *i = unpack(&pgcapture__dump_info_response__descriptor, d);
    EXPECT_EQ_STR("s", i->schema);
    EXPECT_EQ_STR("t", i->table);
    EXPECT_EQ_UINT(3, i->page_begin);
    EXPECT_EQ_UINT(9, i->page_end);
}

static void test_capture_init_struct_keeps_string_number_bool_and_nested_values(void)
{
    Google__Protobuf__Value vs = GOOGLE__PROTOBUF__VALUE__INIT, vn = GOOGLE__PROTOBUF__VALUE__INIT,
                            vb = GOOGLE__PROTOBUF__VALUE__INIT,
                            vinner = GOOGLE__PROTOBUF__VALUE__INIT,
                            vnested = GOOGLE__PROTOBUF__VALUE__INIT;
    vs.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    vs.string_value = "^orders$";
    vn.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
    vn.number_value = 1.5;
    vb.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
    vb.bool_value = 1;
    vinner.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
    vinner.number_value = -42;
    Google__Protobuf__Struct__FieldsEntry ie = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    ie.key = "depth";
    ie.value = &vinner;
    Google__Protobuf__Struct__FieldsEntry *ies[] = {&ie};
    Google__Protobuf__Struct inner = GOOGLE__PROTOBUF__STRUCT__INIT;
    inner.n_fields = 1;
    inner.fields = ies;
    vnested.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
    vnested.struct_value = &inner;
    Google__Protobuf__Struct__FieldsEntry e1 = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT,
                                          e2 = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT,
                                          e3 = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT,
                                          e4 = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    e1.key = "TableRegex";
    e1.value = &vs;
    e2.key = "Ratio";
    e2.value = &vn;
    e3.key = "Truncate";
    e3.value = &vb;
    e4.key = "Nested";
    e4.value = &vnested;
    Google__Protobuf__Struct__FieldsEntry *es[] = {&e1, &e2, &e3, &e4};
    Google__Protobuf__Struct params = GOOGLE__PROTOBUF__STRUCT__INIT;
    params.n_fields = 4;
    params.fields = es;
    Pgcapture__CaptureInit init = PGCAPTURE__CAPTURE_INIT__INIT;
    init.uri = "orders-service";
    init.parameters = &params;
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_INIT;
    req.init = &init;

    Pgcapture__CaptureRequest *g = unpack(&pgcapture__capture_request__descriptor, pack(&req.base));
    EXPECT_EQ_INT(PGCAPTURE__CAPTURE_REQUEST__TYPE_INIT, g->type_case);
    EXPECT_EQ_STR("orders-service", g->init->uri);
    Google__Protobuf__Struct *s = g->init->parameters;
    EXPECT_EQ_UINT(4, s->n_fields);
    EXPECT_EQ_STR("TableRegex", s->fields[0]->key);
    EXPECT_EQ_STR("^orders$", s->fields[0]->value->string_value);
    EXPECT_TRUE(s->fields[1]->value->number_value == 1.5);
    EXPECT_EQ_INT(GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE, s->fields[2]->value->kind_case);
    EXPECT_TRUE(s->fields[2]->value->bool_value);
    Google__Protobuf__Struct *n = s->fields[3]->value->struct_value;
    EXPECT_TRUE(n != NULL);
    EXPECT_EQ_STR("depth", n->fields[0]->key);
    EXPECT_TRUE(n->fields[0]->value->number_value == -42);
}

static void test_controller_messages_round_trip_with_duration(void)
{
    Pgcapture__DumpInfoResponse d1 = PGCAPTURE__DUMP_INFO_RESPONSE__INIT,
                                d2 = PGCAPTURE__DUMP_INFO_RESPONSE__INIT;
    d1.schema = "public";
    d1.table = "orders";
    d1.page_begin = 0;
    d1.page_end = 99;
    d2.schema = "public";
    d2.table = "orders";
    d2.page_begin = 100;
    d2.page_end = UINT32_MAX;
    Pgcapture__DumpInfoResponse *ds[] = {&d1, &d2};
    Pgcapture__ScheduleRequest sr = PGCAPTURE__SCHEDULE_REQUEST__INIT;
    sr.uri = "u";
    sr.n_dumps = 2;
    sr.dumps = ds;
    Pgcapture__ScheduleRequest *g =
        unpack(&pgcapture__schedule_request__descriptor, pack(&sr.base));
    EXPECT_EQ_UINT(2, g->n_dumps);
    EXPECT_EQ_UINT(99, g->dumps[0]->page_end);
    EXPECT_EQ_UINT(UINT32_MAX, g->dumps[1]->page_end);

    Google__Protobuf__Duration dur = GOOGLE__PROTOBUF__DURATION__INIT;
    dur.seconds = 90;
    dur.nanos = 500000000;
    Pgcapture__SetScheduleCoolDownRequest cd = PGCAPTURE__SET_SCHEDULE_COOL_DOWN_REQUEST__INIT;
    cd.uri = "u";
    cd.duration = &dur;
    Pgcapture__SetScheduleCoolDownRequest *gc =
        unpack(&pgcapture__set_schedule_cool_down_request__descriptor, pack(&cd.base));
    EXPECT_EQ_INT(90, gc->duration->seconds);
    EXPECT_EQ_INT(500000000, gc->duration->nanos);

    Pgcapture__DumpInfoRequest dr = PGCAPTURE__DUMP_INFO_REQUEST__INIT;
    dr.uri = "u";
    dr.requeue_reason = "replica lags";
    Pgcapture__DumpInfoRequest *gd =
        unpack(&pgcapture__dump_info_request__descriptor, pack(&dr.base));
    EXPECT_EQ_STR("replica lags", gd->requeue_reason);

    Pgcapture__AgentDumpRequest ad = PGCAPTURE__AGENT_DUMP_REQUEST__INIT;
    ad.min_lsn = 12345;
    ad.info = &d1;
    Pgcapture__AgentDumpRequest *ga =
        unpack(&pgcapture__agent_dump_request__descriptor, pack(&ad.base));
    EXPECT_EQ_UINT(12345, ga->min_lsn);
    EXPECT_EQ_STR("orders", ga->info->table);
}

static void test_capture_message_carries_checkpoint_and_change(void)
{
    static const uint8_t handle[] = {0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 3};
    Pgcapture__Checkpoint ck = PGCAPTURE__CHECKPOINT__INIT;
    ck.lsn = 0x1D7BB50;
    ck.seq = 3;
    ck.data.data = (uint8_t *)handle;
    ck.data.len = sizeof handle;
    Pgcapture__Change ch = PGCAPTURE__CHANGE__INIT;
    ch.op = PGCAPTURE__CHANGE__OPERATION__DELETE;
    ch.schema = "s";
    ch.table = "t";
    Pgcapture__CaptureMessage cm = PGCAPTURE__CAPTURE_MESSAGE__INIT;
    cm.checkpoint = &ck;
    cm.change = &ch;
    Pgcapture__CaptureMessage *g = unpack(&pgcapture__capture_message__descriptor, pack(&cm.base));
    EXPECT_EQ_UINT(0x1D7BB50, g->checkpoint->lsn);
    EXPECT_EQ_UINT(3, g->checkpoint->seq);
    EXPECT_EQ_MEM(handle, sizeof handle, g->checkpoint->data.data, g->checkpoint->data.len);
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__DELETE, g->change->op);
}

static void test_garbage_and_truncated_bytes_are_refused(void)
{
    /* A length-delimited field claiming more bytes than present. */
    static const uint8_t trunc[] = {0x1a, 0x10, 0x0a};
    EXPECT_TRUE(protobuf_c_message_unpack(&pgcapture__message__descriptor, NULL, sizeof trunc,
                                          trunc) == NULL);
    /* An unterminated varint. */
    static const uint8_t varint[] = {0x08, 0xff, 0xff, 0xff};
    EXPECT_TRUE(protobuf_c_message_unpack(&pgcapture__checkpoint__descriptor, NULL, sizeof varint,
                                          varint) == NULL);
    /* Wire type 7 does not exist. */
    static const uint8_t wt[] = {0x0f, 0x00};
    EXPECT_TRUE(protobuf_c_message_unpack(&pgcapture__capture_request__descriptor, NULL, sizeof wt,
                                          wt) == NULL);
    /* Every prefix of a valid message either fails or decodes; none crashes (ASan run). */
    Pgcapture__Field f = PGCAPTURE__FIELD__INIT;
    f.name = "payload";
    f.oid = 17;
    f.value_case = PGCAPTURE__FIELD__VALUE_TEXT;
    f.text = "abcdefghijklmnopqrstuvwxyz";
    Pgcapture__Field *fs[] = {&f};
    Pgcapture__Change ch = PGCAPTURE__CHANGE__INIT;
    ch.schema = "public";
    ch.table = "t";
    ch.n_new_ = 1;
    ch.new_ = fs;
    Pgcapture__Message m = PGCAPTURE__MESSAGE__INIT;
    m.type_case = PGCAPTURE__MESSAGE__TYPE_CHANGE;
    m.change = &ch;
    packed p = pack(&m.base);
    int refused = 0;
    for (size_t n = 1; n < p.len; n++) {
        uint8_t *copy = malloc(n); /* exact size, so ASan sees any over-read */
        memcpy(copy, p.buf, n);
        ProtobufCMessage *g =
            protobuf_c_message_unpack(&pgcapture__message__descriptor, NULL, n, copy);
        if (!g)
            refused++;
        protobuf_c_message_free_unpacked(g, NULL);
        free(copy);
    }
    EXPECT_EQ_INT((int)p.len - 1, refused);
    /* Pseudo-random garbage: must not crash. */
    uint32_t x = 2463534242u;
    for (int round = 0; round < 2000; round++) {
        uint8_t junk[64];
        size_t n = (size_t)(round % 64) + 1;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            junk[i] = (uint8_t)x;
        }
        ProtobufCMessage *g =
            protobuf_c_message_unpack(&pgcapture__capture_request__descriptor, NULL, n, junk);
        protobuf_c_message_free_unpacked(g, NULL);
    }
}

/* "/<service>/<method>" names a method of the service the proto declares. */
static bool proto_has_method(const ProtobufCServiceDescriptor *s, const char *path)
{
    size_t n = strlen(s->name);
    if (path[0] != '/' || strncmp(path + 1, s->name, n) != 0 || path[n + 1] != '/')
        return false;
    for (unsigned i = 0; i < s->n_methods; i++)
        if (strcmp(path + n + 2, s->methods[i].name) == 0)
            return true;
    return false;
}

static void test_method_paths_are_the_protos(void)
{
    EXPECT_TRUE(proto_has_method(&pgcapture__dblog_gateway__descriptor, RPC_METHOD_CAPTURE));
    const ProtobufCServiceDescriptor *ctl = &pgcapture__dblog_controller__descriptor;
    EXPECT_TRUE(proto_has_method(ctl, RPC_METHOD_PULL_DUMP_INFO));
    EXPECT_TRUE(proto_has_method(ctl, RPC_METHOD_SCHEDULE));
    EXPECT_TRUE(proto_has_method(ctl, RPC_METHOD_STOP_SCHEDULE));
    EXPECT_TRUE(proto_has_method(ctl, RPC_METHOD_SET_SCHEDULE_COOL_DOWN));
    EXPECT_TRUE(
        proto_has_method(&pgcapture__dblog_controller_admin__descriptor, RPC_METHOD_ADMIN_STATUS));
    EXPECT_TRUE(!proto_has_method(ctl, "/pgcapture.DBLogController/Nope"));
    EXPECT_TRUE(!proto_has_method(ctl, RPC_METHOD_CAPTURE));
}

UNIT_MAIN(UNIT_CASE(test_change_message_round_trips_with_fields_null_and_binary),
          UNIT_CASE(test_begin_commit_and_keepalive_keep_their_oneof_case),
          UNIT_CASE(test_field_numbers_match_the_protocol_table),
          UNIT_CASE(test_capture_init_struct_keeps_string_number_bool_and_nested_values),
          UNIT_CASE(test_controller_messages_round_trip_with_duration),
          UNIT_CASE(test_capture_message_carries_checkpoint_and_change),
          UNIT_CASE(test_garbage_and_truncated_bytes_are_refused),
          UNIT_CASE(test_method_paths_are_the_protos))
