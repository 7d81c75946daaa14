/* The binary decoders and renderers against the real server: each value is asked of
 * PostgreSQL in binary (resultFormat 1) and its rendering compared with the server's own
 * text output and to_json output of the same value, edge cases included (NaN, the
 * infinities, large numeric scales, empty bytea, NULL array elements, BC dates, IPv6). */
#include "harness/runner.h"
#include "harness/fixtures.h"

#include "client/change.h"
#include "pgcapture.h"
#include "pgcapture.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct value_case {
    const char *type;
    const char *expr;
} value_case;

static PGconn *connect_utc(void)
{
    PGconn *c = harness_connect("");
    harness_exec(c, "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; "
                    "SET IntervalStyle = 'postgres'; SET extra_float_digits = 1");
    return c;
}

static void clear_result(void *r)
{
    PQclear(r);
}

static PGresult *query(PGconn *c, const char *sql, int binary)
{
    PGresult *r = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, binary);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        PQclear(r);
        unit_fail(__FILE__, __LINE__, "query failed: %s: %s", sql, msg);
    }
    unit_defer(clear_result, r);
    return r;
}

/* Compares text and JSON renderings of every case with the server's (the text result
 * format is the type's output function; a ::text cast is not: bool::text is "true",
 * inet::text always shows the netmask); reports every
 * mismatch before failing, so one run shows them all. */
static void check_cases(const value_case *cases, size_t n)
{
    PGconn *c = connect_utc();
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        char sql[1024];
        snprintf(sql, sizeof sql, "SELECT (%s)::%s", cases[i].expr, cases[i].type);
        PGresult *bin = query(c, sql, 1);
        snprintf(sql, sizeof sql, "SELECT (%s)::%s, to_json((%s)::%s)::text", cases[i].expr,
                 cases[i].type, cases[i].expr, cases[i].type);
        PGresult *txt = query(c, sql, 0);
        uint32_t oid = PQftype(bin, 0);
        const uint8_t *data = (const uint8_t *)PQgetvalue(bin, 0, 0);
        size_t len = (size_t)PQgetlength(bin, 0, 0);
        char err[256] = "";
        char *text = NULL, *json = NULL;
        int rc1 = pgc_value_render_text(oid, data, len, &text, NULL, err, sizeof err);
        int rc2 = rc1 == PGC_OK
                      ? pgc_value_render_json(oid, data, len, &json, NULL, err, sizeof err)
                      : rc1;
        if (rc1 != PGC_OK || rc2 != PGC_OK) {
            fprintf(stderr, "  %s::%s (oid %u): status %d: %s\n", cases[i].expr, cases[i].type, oid,
                    rc1 != PGC_OK ? rc1 : rc2, err);
            bad++;
        } else {
            if (strcmp(text, PQgetvalue(txt, 0, 0)) != 0) {
                fprintf(stderr, "  %s::%s text: expected \"%s\", got \"%s\"\n", cases[i].expr,
                        cases[i].type, PQgetvalue(txt, 0, 0), text);
                bad++;
            }
            if (strcmp(json, PQgetvalue(txt, 0, 1)) != 0) {
                fprintf(stderr, "  %s::%s json: expected %s, got %s\n", cases[i].expr,
                        cases[i].type, PQgetvalue(txt, 0, 1), json);
                bad++;
            }
        }
        pgc_memory_free(text);
        pgc_memory_free(json);
    }
    if (bad)
        unit_fail(__FILE__, __LINE__,
                  "%d of %zu values rendered differently from the server "
                  "(listed above)",
                  bad, n);
}

#define CHECK(cases) check_cases(cases, sizeof cases / sizeof cases[0])

static void test_numbers_render_as_the_server_renders_them(void)
{
    static const value_case cases[] = {
        {"bool", "true"},
        {"bool", "false"},
        {"int2", "-32768"},
        {"int2", "32767"},
        {"int4", "-2147483648"},
        {"int4", "0"},
        {"int8", "-9223372036854775808"},
        {"int8", "9223372036854775807"},
        {"float4", "1.5"},
        {"float4", "'-0'"},
        {"float4", "'NaN'"},
        {"float4", "'Infinity'"},
        {"float4", "'-Infinity'"},
        {"float4", "3.4028235e38"},
        {"float4", "1e-45"},
        {"float4", "123456"},
        {"float4", "1234567"},
        {"float4", "0.0001"},
        {"float4", "0.00001"},
        {"float4", "1.1"},
        {"float4", "100000"},
        {"float4", "-7.25e-10"},
        {"float8", "0.1"},
        {"float8", "1e15"},
        {"float8", "123456789012345"},
        {"float8", "1e-5"},
        {"float8", "0.0001"},
        {"float8", "'NaN'"},
        {"float8", "'-Infinity'"},
        {"float8", "'Infinity'"},
        {"float8", "2.2250738585072014e-308"},
        {"float8", "5e-324"},
        {"float8", "1.7976931348623157e308"},
        {"float8", "'-0'"},
        {"float8", "-1.0/3"},
        {"float8", "1e22"},
        {"float8", "100"},
        {"numeric", "0"},
        {"numeric", "-12.3400"},
        {"numeric", "'NaN'"},
        {"numeric", "'Infinity'"},
        {"numeric", "'-Infinity'"},
        {"numeric", "123456789012345678901234567890.123456789"},
        {"numeric", "-0.000000000000000000000000001234567890123456789012345678901234567890"},
        {"numeric", "10000"},
        {"numeric", "0.0001"},
        {"numeric", "1e100"},
        {"numeric", "99999999.99999999"},
        {"numeric", "-1.5e-20"},
        {"numeric", "0.000"},
        {"numeric", "12345678"},
        {"numeric", "round(1::numeric / 3, 1000)"},
    };
    CHECK(cases);
}

static void test_strings_and_bytes_render_as_the_server_renders_them(void)
{
    static const value_case cases[] = {
        {"text", "''"},
        {"text", "'héllo \"quoted\" \\ back'"},
        {"text", "E'tab\\there\\nnl\\r'"},
        {"text", "E'ctl\\x01\\x1f\\b\\f'"},
        {"text", "'NULL'"},
        {"text", "'a,b {c}'"},
        {"varchar(10)", "'abc'"},
        {"bpchar(5)", "'ab'"},
        {"name", "'pg_class'"},
        {"bytea", "'\\x'"},
        {"bytea", "'\\x00ff10'"},
        {"bytea", "convert_to('hi', 'UTF8')"},
        {"uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"},
        {"uuid", "'00000000-0000-0000-0000-000000000000'"},
        {"json", "'{\"a\": [1, 2, {\"b\": null}]}'"},
        {"json", "'\"str\"'"},
        {"json", "'  [1,2]  '"},
        {"jsonb", "'{\"b\": 1, \"a\": [true, null, 1.50]}'"},
        {"jsonb", "'\"x\\\\ny\"'"},
        {"jsonb", "'null'"},
        {"inet", "'192.168.1.5'"},
        {"inet", "'192.168.1.5/24'"},
        {"inet", "'::1'"},
        {"inet", "'2001:db8::ff00:42:8329/64'"},
        {"inet", "'::ffff:1.2.3.4'"},
        {"inet", "'fe80::1:0:0:1'"},
        {"inet", "'2001:db8:0:1:1:1:1:1'"},
        {"inet", "'0.0.0.0/0'"},
        {"cidr", "'10.0.0.0/8'"},
        {"cidr", "'2001:db8::/32'"},
        {"cidr", "'::/0'"},
        {"cidr", "'192.168.1.0/24'"},
        {"cidr", "'192.168.1.7/32'"},
    };
    CHECK(cases);
}

static void test_dates_and_times_render_as_the_server_renders_them(void)
{
    static const value_case cases[] = {
        {"date", "'2024-02-29'"},
        {"date", "'infinity'"},
        {"date", "'-infinity'"},
        {"date", "'0044-03-15 BC'"},
        {"date", "'4713-01-01 BC'"},
        {"date", "'5874897-12-31'"},
        {"date", "'1999-12-31'"},
        {"date", "'2000-01-01'"},
        {"date", "'0001-01-01'"},
        {"date", "'1900-03-01'"},
        {"date", "'2100-02-28'"},
        {"time", "'00:00:00'"},
        {"time", "'23:59:59.999999'"},
        {"time", "'24:00:00'"},
        {"time", "'12:34:56.5'"},
        {"timestamp", "'2024-01-02 03:04:05.123456'"},
        {"timestamp", "'infinity'"},
        {"timestamp", "'-infinity'"},
        {"timestamp", "'0044-03-15 12:00:00 BC'"},
        {"timestamp", "'294276-12-31 23:59:59.999999'"},
        {"timestamp", "'1970-01-01'"},
        {"timestamp", "'1999-12-31 23:59:59.5'"},
        {"timestamp", "'4713-01-01 00:00:00 BC'"},
        {"timestamptz", "'2024-01-02 03:04:05+02'"},
        {"timestamptz", "'infinity'"},
        {"timestamptz", "'-infinity'"},
        {"timestamptz", "'1900-01-01 00:00:00.25+00'"},
        {"timestamptz", "'0100-06-01 00:00:00+00 BC'"},
        {"interval", "'1 year 2 mons 3 days 04:05:06.789'"},
        {"interval", "'-1 days +02:00:00'"},
        {"interval", "'0'"},
        {"interval", "'-00:00:01'"},
        {"interval", "'1 day -01:00:00'"},
        {"interval", "'-1 year -2 mons'"},
        {"interval", "'178956970 years 7 mons'"},
        {"interval", "'-2 hours'"},
        {"interval", "'100000 hours'"},
        {"interval", "'1 mon -1 days'"},
        {"interval", "'-1 year +3 days -00:00:00.5'"},
        {"interval", "'1 day'"},
        {"interval", "'0.000001 seconds'"},
    };
    CHECK(cases);
}

static void test_arrays_render_as_the_server_renders_them(void)
{
    static const value_case cases[] = {
        {"int4[]", "ARRAY[1,NULL,3]"},
        {"int4[]", "'{}'"},
        {"int4[]", "'[0:1]={1,2}'"},
        {"int2[]", "'{1,-2}'"},
        {"int8[]", "'{1,2}'"},
        {"bool[]", "'{t,f,NULL}'"},
        {"text[]", "ARRAY['a b', NULL, '', 'NULL', 'x\"y\\z', 'comma,here', 'plain']"},
        {"varchar[]", "'{a,b}'"},
        {"bpchar(2)[]", "'{a,bb}'"},
        {"name[]", "'{x,y}'"},
        {"numeric[]", "ARRAY[1.5, 'NaN', NULL, -0.001]"},
        {"float4[]", "'{1.5,NaN,-Infinity}'"},
        {"float8[]", "'{0.1,Infinity,NULL}'"},
        {"bytea[]", "ARRAY['\\x00'::bytea, NULL, '\\x']"},
        {"uuid[]", "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'"},
        {"date[]", "'{2024-01-01,infinity,NULL}'"},
        {"time[]", "'{12:00:00.5}'"},
        {"timestamp[]", "ARRAY['2024-01-01 00:00:01'::timestamp, 'infinity']"},
        {"timestamptz[]", "ARRAY['2024-01-01 00:00:01+00'::timestamptz]"},
        {"interval[]", "ARRAY['1 day'::interval, '-01:00:00']"},
        {"json[]", "ARRAY['{\"a\":1}'::json, NULL]"},
        {"jsonb[]", "ARRAY['{\"a\": 1}'::jsonb]"},
        {"inet[]", "'{192.168.0.1/24,::1}'"},
        {"cidr[]", "'{10.0.0.0/8}'"},
    };
    CHECK(cases);
}

static void test_unknown_types_and_multidimensional_arrays_are_refused(void)
{
    PGconn *c = connect_utc();
    PGresult *r = query(c, "SELECT '1.5'::money, '(1,2)'::point, '{{1,2},{3,4}}'::int4[]", 1);
    char err[256] = "", *out = NULL;
    EXPECT_EQ_INT(PGC_ERR_UNSUPPORTED,
                  pgc_value_render_text(PQftype(r, 0), (const uint8_t *)PQgetvalue(r, 0, 0),
                                        (size_t)PQgetlength(r, 0, 0), &out, NULL, err, sizeof err));
    EXPECT_TRUE(strstr(err, "790") != NULL); /* money's OID named */
    EXPECT_EQ_INT(PGC_ERR_UNSUPPORTED,
                  pgc_value_render_json(PQftype(r, 1), (const uint8_t *)PQgetvalue(r, 0, 1),
                                        (size_t)PQgetlength(r, 0, 1), &out, NULL, err, sizeof err));
    EXPECT_EQ_INT(PGC_ERR_UNSUPPORTED,
                  pgc_value_render_json(PQftype(r, 2), (const uint8_t *)PQgetvalue(r, 0, 2),
                                        (size_t)PQgetlength(r, 0, 2), &out, NULL, err, sizeof err));
    EXPECT_TRUE(out == NULL);
}

/* The typed decoders give the server's own numbers. */
static void test_typed_decoders_match_the_server(void)
{
    PGconn *c = connect_utc();
    PGresult *b =
        query(c,
              "SELECT '2024-01-02 03:04:05.123456'::timestamptz, '2024-02-29'::date, "
              "'-9223372036854775808'::int8, '1 year 2 days 00:00:03'::interval, "
              "'2001:db8::1/64'::inet, 0.1::float8, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, "
              "'{\"k\": 1}'::jsonb, 1.25::float4, '13:00:00.000001'::time",
              1);
    PGresult *t =
        query(c,
              "SELECT (extract(epoch from '2024-01-02 03:04:05.123456'::timestamptz) "
              "* 1000000)::int8 - 946684800000000, '2024-02-29'::date - '2000-01-01'::date",
              0);
    char err[256];
#define V(i) (const uint8_t *)PQgetvalue(b, 0, i), (size_t)PQgetlength(b, 0, i)
    int64_t ts;
    EXPECT_EQ_INT(PGC_OK, pgc_value_decode_timestamp(V(0), &ts, err, sizeof err));
    EXPECT_EQ_INT(atoll(PQgetvalue(t, 0, 0)), ts);
    int32_t d;
    EXPECT_EQ_INT(PGC_OK, pgc_value_decode_date(V(1), &d, err, sizeof err));
    EXPECT_EQ_INT(atoll(PQgetvalue(t, 0, 1)), d);
    int64_t i8;
    EXPECT_EQ_INT(PGC_OK, pgc_value_decode_int8(V(2), &i8, err, sizeof err));
    EXPECT_TRUE(i8 == INT64_MIN);
    pgc_interval iv;
    EXPECT_EQ_INT(PGC_OK, pgc_value_decode_interval(V(3), &iv, err, sizeof err));
    EXPECT_EQ_INT(12, iv.months);
    EXPECT_EQ_INT(2, iv.days);
    EXPECT_EQ_INT(3000000, iv.usecs);
    pgc_inet in;
    EXPECT_EQ_INT(PGC_OK, pgc_value_decode_inet(V(4), &in, err, sizeof err));
    EXPECT_EQ_INT(6, in.family);
    EXPECT_EQ_INT(64, in.bits);
    EXPECT_TRUE(!in.is_cidr && in.addr[0] == 0x20 && in.addr[1] == 0x01 && in.addr[15] == 1);
    double f8;
    EXPECT_EQ_INT(PGC_OK, pgc_value_decode_float8(V(5), &f8, err, sizeof err));
    EXPECT_TRUE(f8 == 0.1);
    uint8_t u[16];
    EXPECT_EQ_INT(PGC_OK, pgc_value_decode_uuid(V(6), u, err, sizeof err));
    EXPECT_TRUE(u[0] == 0xa0 && u[15] == 0x11);
    const char *js;
    size_t jn;
    EXPECT_EQ_INT(PGC_OK, pgc_value_decode_jsonb(V(7), &js, &jn, err, sizeof err));
    EXPECT_EQ_MEM("{\"k\": 1}", 8, js, jn);
    float f4;
    EXPECT_EQ_INT(PGC_OK, pgc_value_decode_float4(V(8), &f4, err, sizeof err));
    EXPECT_TRUE(f4 == 1.25f);
    int64_t tm;
    EXPECT_EQ_INT(PGC_OK, pgc_value_decode_time(V(9), &tm, err, sizeof err));
    EXPECT_EQ_INT(INT64_C(46800000001), tm);
#undef V
}

/* A whole row as a change: its "new" object is exactly row_to_json of the same row, minus
 * the column left out as an unchanged TOAST value. */
static void test_change_json_new_row_equals_row_to_json(void)
{
    PGconn *c = connect_utc();
    harness_exec(c, "CREATE TEMP TABLE r (i int4, n numeric, t text, b bytea, ts timestamptz, "
                    "a text[], j jsonb, f float8, z int4, big text)");
    harness_exec(c, "INSERT INTO r VALUES (7, 'NaN', E'x\\ny', '\\x', '2024-05-06 07:08:09.5+00', "
                    "ARRAY['p', NULL], '{\"q\": [1, 2]}', 'Infinity', NULL, 'unchanged')");
    PGresult *b = query(c, "SELECT * FROM r", 1);
    PGresult *t = query(c,
                        "SELECT row_to_json(s)::text FROM (SELECT i, n, t, b, ts, a, j, f, z "
                        "FROM r) s",
                        0);
    int nf = PQnfields(b) - 1; /* "big" is left out, as pgoutput's unchanged TOAST */
    Pgcapture__Field fields[16], *fp[16];
    for (int i = 0; i < nf; i++) {
        pgcapture__field__init(&fields[i]);
        fields[i].name = PQfname(b, i);
        fields[i].oid = PQftype(b, i);
        if (!PQgetisnull(b, 0, i)) {
            fields[i].value_case = PGCAPTURE__FIELD__VALUE_BINARY;
            fields[i].binary.data = (uint8_t *)PQgetvalue(b, 0, i);
            fields[i].binary.len = (size_t)PQgetlength(b, 0, i);
        }
        fp[i] = &fields[i];
    }
    Pgcapture__Change ch = PGCAPTURE__CHANGE__INIT;
    ch.op = PGCAPTURE__CHANGE__OPERATION__UPDATE;
    ch.schema = "public";
    ch.table = "r";
    ch.n_new_ = (size_t)nf;
    ch.new_ = fp;
    Pgcapture__Checkpoint cp = PGCAPTURE__CHECKPOINT__INIT;
    cp.lsn = 0x16B3748;
    cp.seq = 3;
    uint8_t handle[3] = {0, 1, 2};
    cp.data.data = handle;
    cp.data.len = 3;
    Pgcapture__CaptureMessage m = PGCAPTURE__CAPTURE_MESSAGE__INIT;
    m.checkpoint = &cp;
    m.change = &ch;
    pgc_change view;
    char err[256];
    EXPECT_EQ_INT(PGC_OK, change_view(&view, m.checkpoint, m.change, err, sizeof err));
    EXPECT_TRUE(pgc_change_find_field(&view, PGC_ROW_NEW, "big") == NULL);
    EXPECT_TRUE(pgc_change_find_field(&view, PGC_ROW_NEW, "z") != NULL);
    char *json;
    EXPECT_EQ_INT(PGC_OK, pgc_change_render_json(&view, &json, NULL, err, sizeof err));
    char want[2048];
    snprintf(want, sizeof want,
             "{\"schema\":\"public\",\"table\":\"r\",\"op\":\"UPDATE\",\"checkpoint\":{\"lsn\":"
             "\"0/16B3748\",\"seq\":3,\"data\":\"AAEC\"},\"new\":%s}",
             PQgetvalue(t, 0, 0));
    int same = strcmp(want, json) == 0;
    if (!same)
        fprintf(stderr, "expected %s\ngot      %s\n", want, json);
    pgc_memory_free(json);
    EXPECT_TRUE(same);
}

UNIT_MAIN(UNIT_CASE(test_numbers_render_as_the_server_renders_them),
          UNIT_CASE(test_strings_and_bytes_render_as_the_server_renders_them),
          UNIT_CASE(test_dates_and_times_render_as_the_server_renders_them),
          UNIT_CASE(test_arrays_render_as_the_server_renders_them),
          UNIT_CASE(test_unknown_types_and_multidimensional_arrays_are_refused),
          UNIT_CASE(test_typed_decoders_match_the_server),
          UNIT_CASE(test_change_json_new_row_equals_row_to_json))
