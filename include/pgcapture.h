/* libpgcapture: the C consumer API of pgcapture-c. Everything declared here is exported
 * by libpgcapture.so (pkg-config pgcapture); the gateway embedding API has its own header,
 * <pgcapture/gateway.h>, and library, libpgcapture-gateway.
 *
 * Order of this header: 1 version, 2 status codes and the error record, 3 types (opaque
 * handles, enums, value records, constants), 4 options with their _init, 5 functions
 * grouped by object, 6 callbacks. Compiles alone as C99 and as C++.
 *
 * Names: every function is pgc_<noun>_<verb> (an accessor is pgc_<noun>_get_<what>); every
 * enum value is PGC_<TYPE>_<NAME> for its type pgc_<type>, except the status codes,
 * PGC_OK and PGC_ERR_<NAME>. Every function's comment says whether it is thread-safe. */
#ifndef PGCAPTURE_H
#define PGCAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the library's API: the libraries are built with -fvisibility=hidden and export
 * only what carries this. */
#if defined(__GNUC__) || defined(__clang__)
#define PGC_EXPORT __attribute__((visibility("default")))
#else
#define PGC_EXPORT
#endif

/* ==== 1. Version ======================================================================== */

#define PGC_VERSION_MAJOR 0
#define PGC_VERSION_MINOR 1
#define PGC_VERSION_PATCH 0
#define PGC_VERSION_STRING "0.1.0"

/* ==== 2. Status codes and the error record ============================================== */

/* Status codes, one table for the whole project (the daemons use the same values): 0 is
 * success, every error is negative. X(name, value, transient, description); transient
 * ones are worth a retry with back-off (pgc_status_is_transient), the others are not:
 * retrying cannot fix them. */
#define PGC_STATUS_TABLE(X)                                                                        \
    X(OK, 0, false, "ok")                                                                          \
    X(ERR_NOMEM, -1, false, "out of memory")                                                       \
    X(ERR_INVALID, -2, false, "invalid argument")                                                  \
    X(ERR_MALFORMED, -3, false, "malformed input")                                                 \
    X(ERR_TRUNCATED, -4, false, "truncated input")                                                 \
    X(ERR_TOO_LARGE, -5, false, "input too large")                                                 \
    X(ERR_UNSUPPORTED, -6, false, "unsupported")                                                   \
    X(ERR_NOT_FOUND, -7, false, "not found")                                                       \
    X(ERR_IO, -8, true, "i/o error")                                                               \
    X(ERR_CONN, -9, true, "connection lost")                                                       \
    X(ERR_TIMEOUT, -10, true, "timed out")                                                         \
    X(ERR_CONFIG, -11, false, "bad configuration")                                                 \
    X(ERR_PERMISSION, -12, false, "permission denied")                                             \
    X(ERR_BUSY, -13, false, "in use by another process")                                           \
    X(ERR_STATE, -14, false, "invalid state")                                                      \
    X(ERR_DATA_LOSS, -15, false, "data may be lost")                                               \
    X(ERR_UNAUTHENTICATED, -16, false, "not authenticated")                                        \
    X(ERR_UNIMPLEMENTED, -17, false, "not served at this address")

typedef enum pgc_status {
#define PGC_STATUS_ENUM(name, value, transient, desc) PGC_##name = value,
    PGC_STATUS_TABLE(PGC_STATUS_ENUM)
#undef PGC_STATUS_ENUM
} pgc_status;

/* The error record: every function that can fail returns a pgc_status and, when the
 * caller passes a buffer (err, err_len; NULL/0 is fine), writes a NUL-terminated message
 * with context into it ("int4: 3 bytes, expected 4"), truncated to fit. The library never
 * prints, never exits and never aborts on out-of-memory. */

/* ==== 3. Types ========================================================================== */

/* A change as a consumer receives it (docs/protocol.md, CaptureMessage): operation, table,
 * checkpoint, and the fields of the new and old rows. Fields hold the PostgreSQL binary
 * send format of their type (tagged by type OID), or text when the source had no binary
 * form, or nothing for SQL NULL. An unchanged TOAST column (an UPDATE that did not touch a
 * large value) is absent from the new row, except on a REPLICA IDENTITY FULL table, where
 * it carries the old row's value: pgc_change_find_field returns NULL for an absent column,
 * which is not the same as a field that is present and NULL. A gateway sends the old row
 * without NULL fields: a NULL column is absent from it (docs/protocol.md, "Rows and
 * values"). */
typedef struct pgc_change pgc_change;
typedef struct pgc_field pgc_field;
/* A consumer holds one DBLogGateway.Capture stream to a gateway for one URI and hands
 * each change to a handler, which decides ack or requeue. */
typedef struct pgc_consumer pgc_consumer;
/* The consumer's callback and its argument (section 6). */
typedef struct pgc_change_handler pgc_change_handler;

/* Operations of a change, numbered as on the wire (docs/protocol.md, Change.op). */
typedef enum pgc_op {
    PGC_OP_INSERT = 0,
    PGC_OP_UPDATE = 1,
    PGC_OP_DELETE = 2,
    PGC_OP_TRUNCATE = 3 /* only sent to consumers that ask for it */
} pgc_op;

typedef enum pgc_row {
    PGC_ROW_NEW = 0, /* the row after the change (INSERT, UPDATE; dump rows) */
    PGC_ROW_OLD = 1  /* the row before it: key or full old row (DELETE, some UPDATEs) */
} pgc_row;

typedef enum pgc_value_kind {
    PGC_VALUE_KIND_NULL = 0,   /* SQL NULL */
    PGC_VALUE_KIND_BINARY = 1, /* the type's binary send format (pgc_value_decode_*) */
    PGC_VALUE_KIND_TEXT = 2    /* the type's text output format */
} pgc_value_kind;

/* The status a gRPC call ended with, numbered as gRPC numbers them (grpc/status.h), for
 * pgc_consumer_get_grpc_status; PGC_GRPC_CODE_NONE when the run did not end on one. */
typedef enum pgc_grpc_code {
    PGC_GRPC_CODE_NONE = -1,
    PGC_GRPC_CODE_OK = 0,
    PGC_GRPC_CODE_CANCELLED = 1,
    PGC_GRPC_CODE_UNKNOWN = 2,
    PGC_GRPC_CODE_INVALID_ARGUMENT = 3,
    PGC_GRPC_CODE_DEADLINE_EXCEEDED = 4,
    PGC_GRPC_CODE_NOT_FOUND = 5,
    PGC_GRPC_CODE_ALREADY_EXISTS = 6,
    PGC_GRPC_CODE_PERMISSION_DENIED = 7,
    PGC_GRPC_CODE_RESOURCE_EXHAUSTED = 8,
    PGC_GRPC_CODE_FAILED_PRECONDITION = 9,
    PGC_GRPC_CODE_ABORTED = 10,
    PGC_GRPC_CODE_OUT_OF_RANGE = 11,
    PGC_GRPC_CODE_UNIMPLEMENTED = 12,
    PGC_GRPC_CODE_INTERNAL = 13,
    PGC_GRPC_CODE_UNAVAILABLE = 14,
    PGC_GRPC_CODE_DATA_LOSS = 15,
    PGC_GRPC_CODE_UNAUTHENTICATED = 16
} pgc_grpc_code;

/* What a handler returns for a change. */
typedef enum pgc_verdict {
    PGC_VERDICT_ACK = 0,    /* done with it: the gateway acks it in the log */
    PGC_VERDICT_REQUEUE = 1 /* give it back: redelivered later (to this or another consumer) */
} pgc_verdict;

/* The C type of a struct member that pgc_change_bind fills (the counterpart of pgcapture's
 * Go struct tags), and the column types each accepts. */
typedef enum pgc_ctype {
    PGC_CTYPE_BOOL,       /* bool */
    PGC_CTYPE_INT16,      /* int16_t: int2 */
    PGC_CTYPE_INT32,      /* int32_t: int2, int4 */
    PGC_CTYPE_INT64,      /* int64_t: int2, int4, int8 */
    PGC_CTYPE_FLOAT,      /* float: float4 */
    PGC_CTYPE_DOUBLE,     /* double: float4, float8, int2/4/8 */
    PGC_CTYPE_STRING,     /* char[size] (size includes the NUL): text types, json(b), numeric,
                             and the text form of any other supported type; too long -> error */
    PGC_CTYPE_STRING_DUP, /* char * malloc'ed (free with pgc_memory_free; a previous value is
                             freed first, so zero the struct before the first bind): as
                             PGC_CTYPE_STRING */
    PGC_CTYPE_BYTES,      /* pgc_bytes (data malloc'ed, free with pgc_memory_free, previous
                             freed) */
    PGC_CTYPE_TIMESTAMP,  /* int64_t microseconds since 2000-01-01: timestamp, timestamptz */
    PGC_CTYPE_DATE,       /* int32_t days since 2000-01-01 */
    PGC_CTYPE_UUID,       /* uint8_t[16] */
    PGC_CTYPE_INTERVAL,   /* pgc_interval */
    PGC_CTYPE_INET        /* pgc_inet */
} pgc_ctype;

/* Decoded interval: months, days and microseconds, as PostgreSQL keeps them apart. */
typedef struct pgc_interval {
    int64_t usecs;
    int32_t days;
    int32_t months;
} pgc_interval;

/* Decoded inet or cidr. */
typedef struct pgc_inet {
    uint8_t family;   /* 4 or 6 */
    uint8_t bits;     /* netmask length */
    bool is_cidr;     /* the value's type is cidr */
    uint8_t addr[16]; /* 4 or 16 bytes used, network order */
} pgc_inet;

/* An iterator over a one-dimensional array value (pgc_array_open). It borrows the value's
 * bytes; its fields are read-only for the caller. */
typedef struct pgc_array {
    uint32_t elem_oid; /* element type from the value itself */
    size_t count;      /* number of elements */
    int32_t lower_bound;
    const uint8_t *next_; /* private */
    const uint8_t *end_;  /* private */
} pgc_array;

/* Bytes that pgc_change_bind allocated (PGC_CTYPE_BYTES). */
typedef struct pgc_bytes {
    uint8_t *data;
    size_t len;
} pgc_bytes;

/* Where pgc_change_bind puts one column: an array of these describes a C struct. */
typedef struct pgc_bind_column {
    const char *column; /* column name */
    pgc_ctype ctype;
    size_t offset;      /* offsetof(struct, member) */
    size_t size;        /* PGC_CTYPE_STRING: the buffer size; otherwise ignored */
    size_t null_offset; /* offset of a bool set true for SQL NULL, or PGC_BIND_NO_NULL (a
                           NULL then leaves the member zeroed) */
} pgc_bind_column;
#define PGC_BIND_NO_NULL ((size_t)-1)

/* Type OIDs of PostgreSQL's built-in types that the decoders know. */
#define PGC_OID_BOOL 16
#define PGC_OID_BYTEA 17
#define PGC_OID_NAME 19
#define PGC_OID_INT8 20
#define PGC_OID_INT2 21
#define PGC_OID_INT4 23
#define PGC_OID_TEXT 25
#define PGC_OID_JSON 114
#define PGC_OID_CIDR 650
#define PGC_OID_FLOAT4 700
#define PGC_OID_FLOAT8 701
#define PGC_OID_INET 869
#define PGC_OID_BPCHAR 1042
#define PGC_OID_VARCHAR 1043
#define PGC_OID_DATE 1082
#define PGC_OID_TIME 1083
#define PGC_OID_TIMESTAMP 1114
#define PGC_OID_TIMESTAMPTZ 1184
#define PGC_OID_INTERVAL 1186
#define PGC_OID_NUMERIC 1700
#define PGC_OID_UUID 2950
#define PGC_OID_JSONB 3802

/* date: days since 2000-01-01; timestamps: microseconds since 2000-01-01 00:00 (UTC for
 * timestamptz); time: microseconds since midnight. The infinities are these values: */
#define PGC_DATE_NEG_INFINITY INT32_MIN
#define PGC_DATE_POS_INFINITY INT32_MAX
#define PGC_TIMESTAMP_NEG_INFINITY INT64_MIN
#define PGC_TIMESTAMP_POS_INFINITY INT64_MAX
/* Seconds between 1970-01-01 and 2000-01-01, to turn a timestamp into Unix time. */
#define PGC_EPOCH_2000_UNIX 946684800

/* ==== 4. Options ======================================================================== */

typedef struct pgc_consumer_options {
    const char *gateway;     /* "host:port" of the gateway; required */
    const char *uri;         /* the consumer's URI; required */
    const char *table_regex; /* parameter TableRegex, or NULL for every table */
    /* Further init parameters as name/value string pairs (e.g. "Truncate" = "true" is
     * sent as the boolean true; values "true"/"false" become booleans, numbers numbers,
     * anything else a string). */
    const char *const *param_names;
    const char *const *param_values;
    size_t n_params;
    /* 0 (the default): each ack is sent on the handler's thread as soon as the handler
     * returns; the send completes when gRPC's transport has taken it (no server round
     * trip), the fastest on a small machine. N > 0 (at most 1<<20): a sender thread of the
     * consumer sends the acks and up to N answered changes may wait for it, so a handler
     * never waits for the transport (HTTP/2 flow control); past N the handler's thread
     * waits. */
    int ack_window;
    /* TLS (all NULL: plaintext). The gateway's certificate is verified against the PEM
     * CAs of tls_ca_file, and must name tls_server_name (default: the host of `gateway`).
     * tls_cert_file and tls_key_file (both or neither) are a client certificate for mutual
     * TLS. The files are read when the consumer connects, so rotated ones apply on the
     * next connection. */
    const char *tls_ca_file;
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *tls_server_name;
    /* A bearer token sent with the stream ("authorization: Bearer <token>"); only over
     * TLS (pgc_consumer_create refuses it without tls_ca_file). Copied; wiped on destroy. */
    const char *token;
    /* 0 (the default): ask the gateway for batches of up to 1024 changes per message
     * (docs/protocol.md "Batch mode"); N (1 to 65536): at most N; -1: one change per
     * message, as pgcapture's own clients receive them. The handler gets one change at a
     * time either way; in batch mode the consumer answers a batch with one ack, plus one
     * requeue per change the handler requeues. A gateway without batch mode sends one
     * change per message, which works the same. */
    int batch_limit;
} pgc_consumer_options;

/* Sets every option to its default (zeroes). Thread-safe (writes only *o). */
PGC_EXPORT void pgc_consumer_options_init(pgc_consumer_options *o);

/* ==== 5. Functions, by object =========================================================== */

/* ---- the library: version, statuses, memory ---- */

/* PGC_VERSION_STRING of the library actually linked. Thread-safe. */
PGC_EXPORT const char *pgc_version_get(void);
/* Short description of a status ("truncated input"); never NULL (an unknown value has a
 * description too). Thread-safe; the string is static. */
PGC_EXPORT const char *pgc_status_describe(pgc_status status);
/* True when retrying (with back-off) may succeed: the status's transient column in
 * PGC_STATUS_TABLE (PGC_ERR_CONN, PGC_ERR_TIMEOUT, PGC_ERR_IO); false for PGC_OK, every
 * other status and unknown values. Thread-safe. */
PGC_EXPORT bool pgc_status_is_transient(pgc_status status);
/* The name of a gRPC status code as gRPC spells it ("UNAVAILABLE"), "NONE" for
 * PGC_GRPC_CODE_NONE, "UNKNOWN" for a value gRPC does not define. Never NULL; static.
 * Thread-safe. */
PGC_EXPORT const char *pgc_grpc_code_get_name(pgc_grpc_code code);
/* Frees what the library handed to the caller with "free with pgc_memory_free". NULL is a
 * no-op. Thread-safe. */
PGC_EXPORT void pgc_memory_free(void *p);

/* ---- pgc_change ----
 * A change is immutable: every function below that takes a const pgc_change is
 * thread-safe, also on one change from several threads. What it returns is borrowed from
 * the change: valid until the change is destroyed (for a change given to a handler: until
 * the handler returns). */

/* Parses a serialized CaptureMessage (as a gRPC client of DBLogGateway.Capture receives
 * it) into a change. PGC_ERR_MALFORMED for bytes that are not one, PGC_ERR_INVALID when
 * it has no change. On success the caller owns *out (free with pgc_change_destroy).
 * Thread-safe. */
PGC_EXPORT pgc_status pgc_change_parse(const uint8_t *data, size_t len, pgc_change **out, char *err,
                                       size_t err_len);
/* Frees a change from pgc_change_parse; NULL is a no-op. Not concurrently with any other
 * use of the same change. */
PGC_EXPORT void pgc_change_destroy(pgc_change *c);

PGC_EXPORT pgc_op pgc_change_get_op(const pgc_change *c);
PGC_EXPORT const char *pgc_change_get_schema(const pgc_change *c);
PGC_EXPORT const char *pgc_change_get_table(const pgc_change *c);
/* The checkpoint to echo in the ack (the consumer does that itself). For a change from the
 * log: lsn = commit LSN of its transaction, seq = its place in it; for a dump row lsn is
 * 0. The data is the gateway's opaque handle (may be empty, never NULL). */
PGC_EXPORT uint64_t pgc_change_get_lsn(const pgc_change *c);
PGC_EXPORT uint32_t pgc_change_get_seq(const pgc_change *c);
PGC_EXPORT const uint8_t *pgc_change_get_checkpoint_data(const pgc_change *c, size_t *len);
/* Number of fields present in a row, and the i-th (0-based; NULL when out of range). */
PGC_EXPORT size_t pgc_change_get_field_count(const pgc_change *c, pgc_row row);
PGC_EXPORT const pgc_field *pgc_change_get_field_at(const pgc_change *c, pgc_row row, size_t i);
/* The field named `name`, or NULL when the row does not hold it (unchanged TOAST, or no
 * such column, or no such row). */
PGC_EXPORT const pgc_field *pgc_change_find_field(const pgc_change *c, pgc_row row,
                                                  const char *name);

/* The change as one JSON object on one line:
 * {"schema":..,"table":..,"op":"INSERT","checkpoint":{"lsn":"0/16B3748","seq":1,
 *  "data":"<base64>"},"new":{..},"old":{..}}: "new"/"old" only when the row has fields,
 * each value as pgc_value_render_json renders it (text-format fields as JSON strings, NULL
 * as null); unchanged TOAST columns are left out. A field of an unsupported type makes the
 * whole call fail with PGC_ERR_UNSUPPORTED (the message names the column and OID);
 * PGC_ERR_NOMEM. *out: NUL-terminated, no newline, the caller frees it with
 * pgc_memory_free; *out_len (may be NULL) its length. Thread-safe. */
PGC_EXPORT pgc_status pgc_change_render_json(const pgc_change *c, char **out, size_t *out_len,
                                             char *err, size_t err_len);

/* Fills the C struct `dst` from row `row` of `c`, one member per descriptor of `cols`.
 * For each descriptor it sets `present[i]` (when `present` is not NULL): true when the
 * column was in the row (and was written, NULL or not), false when it was absent, e.g. an
 * unchanged TOAST column, whose member is then left untouched. A NULL value zeroes the
 * member (and sets its null flag). PGC_ERR_INVALID when a column's type cannot go into its
 * C type (the message names both), PGC_ERR_TOO_LARGE when a string does not fit, any
 * decoder's status for a bad value, PGC_ERR_NOMEM; on error some members may already be
 * written. Thread-safe for distinct `dst` and `present`. */
PGC_EXPORT pgc_status pgc_change_bind(const pgc_change *c, pgc_row row, const pgc_bind_column *cols,
                                      size_t n_cols, void *dst, bool *present, char *err,
                                      size_t err_len);

/* ---- pgc_field (borrowed from its change; thread-safe like the change) ---- */

PGC_EXPORT const char *pgc_field_get_name(const pgc_field *f);
PGC_EXPORT uint32_t pgc_field_get_oid(const pgc_field *f); /* type OID on the source */
PGC_EXPORT pgc_value_kind pgc_field_get_kind(const pgc_field *f);
/* The value's bytes (binary or text; NULL with *len 0 for SQL NULL). Text values are also
 * NUL-terminated. Borrowed like the field. */
PGC_EXPORT const uint8_t *pgc_field_get_data(const pgc_field *f, size_t *len);

/* ---- pgc_type: what the decoders know (thread-safe) ---- */

/* The element type OID of a supported one-dimensional array type (e.g. 1007 int4[] ->
 * 23), or 0 when `oid` is not one. Thread-safe. */
PGC_EXPORT uint32_t pgc_type_get_array_elem(uint32_t oid);
/* True when the decoders and renderers know `oid` (a scalar above or an array of one).
 * Thread-safe. */
PGC_EXPORT bool pgc_type_is_supported(uint32_t oid);

/* ---- pgc_value: one value in its type's binary send format ----
 * Decoders: `data`/`len` is one value. Each checks the length and content and returns
 * PGC_OK, PGC_ERR_TRUNCATED / PGC_ERR_MALFORMED with a message, and writes *out only on
 * success. All are thread-safe and allocate nothing. */

PGC_EXPORT pgc_status pgc_value_decode_bool(const uint8_t *data, size_t len, bool *out, char *err,
                                            size_t err_len);
PGC_EXPORT pgc_status pgc_value_decode_int2(const uint8_t *data, size_t len, int16_t *out,
                                            char *err, size_t err_len);
PGC_EXPORT pgc_status pgc_value_decode_int4(const uint8_t *data, size_t len, int32_t *out,
                                            char *err, size_t err_len);
PGC_EXPORT pgc_status pgc_value_decode_int8(const uint8_t *data, size_t len, int64_t *out,
                                            char *err, size_t err_len);
PGC_EXPORT pgc_status pgc_value_decode_float4(const uint8_t *data, size_t len, float *out,
                                              char *err, size_t err_len);
PGC_EXPORT pgc_status pgc_value_decode_float8(const uint8_t *data, size_t len, double *out,
                                              char *err, size_t err_len);
/* numeric as an exact decimal string in PostgreSQL's text form ("-12.3400", "NaN",
 * "Infinity", "-Infinity"), NUL-terminated in buf. *out_len (may be NULL) receives the
 * string length; when buf_len is too small, PGC_ERR_TOO_LARGE with *out_len set to the
 * length needed (buf_len must then be at least *out_len + 1). */
PGC_EXPORT pgc_status pgc_value_decode_numeric(const uint8_t *data, size_t len, char *buf,
                                               size_t buf_len, size_t *out_len, char *err,
                                               size_t err_len);
/* text, varchar, bpchar, name and json: the characters, borrowed from `data` (not
 * NUL-terminated). PGC_ERR_MALFORMED when they hold a NUL byte. */
PGC_EXPORT pgc_status pgc_value_decode_text(const uint8_t *data, size_t len, const char **out,
                                            size_t *out_len, char *err, size_t err_len);
/* jsonb: version byte 1, then the JSON text (borrowed as for text). */
PGC_EXPORT pgc_status pgc_value_decode_jsonb(const uint8_t *data, size_t len, const char **out,
                                             size_t *out_len, char *err, size_t err_len);
/* bytea's send format is the bytes themselves: nothing to decode, use data/len. */
PGC_EXPORT pgc_status pgc_value_decode_uuid(const uint8_t *data, size_t len, uint8_t out[16],
                                            char *err, size_t err_len);
/* date, time and timestamps in the units and with the infinities of section 3. */
PGC_EXPORT pgc_status pgc_value_decode_date(const uint8_t *data, size_t len, int32_t *out,
                                            char *err, size_t err_len);
PGC_EXPORT pgc_status pgc_value_decode_time(const uint8_t *data, size_t len, int64_t *out,
                                            char *err, size_t err_len);
PGC_EXPORT pgc_status pgc_value_decode_timestamp(const uint8_t *data, size_t len, int64_t *out,
                                                 char *err,
                                                 size_t err_len); /* timestamp, timestamptz */
PGC_EXPORT pgc_status pgc_value_decode_interval(const uint8_t *data, size_t len, pgc_interval *out,
                                                char *err, size_t err_len);
PGC_EXPORT pgc_status pgc_value_decode_inet(const uint8_t *data, size_t len, pgc_inet *out,
                                            char *err, size_t err_len); /* inet and cidr */

/* Renders one value of type `oid` (any supported type, arrays included) the way
 * PostgreSQL's output function does with DateStyle ISO, IntervalStyle postgres,
 * TimeZone UTC and extra_float_digits 1 ("t", "1.5", "2024-01-02 03:04:05+00", "{1,NULL}",
 * "\\x00ff"). PGC_ERR_UNSUPPORTED (naming the OID) for a type it does not know, a
 * decoder's status for a bad value, PGC_ERR_NOMEM. On success *out is a NUL-terminated
 * string the caller frees with pgc_memory_free, and *out_len (may be NULL) its length.
 * Thread-safe. */
PGC_EXPORT pgc_status pgc_value_render_text(uint32_t oid, const uint8_t *data, size_t len,
                                            char **out, size_t *out_len, char *err, size_t err_len);
/* The same value as PostgreSQL's to_json renders it (numbers as numbers, NaN and the
 * infinities as strings, timestamps in ISO 8601 with "T", json/jsonb embedded, arrays as
 * JSON arrays). Statuses and ownership as pgc_value_render_text. Thread-safe. */
PGC_EXPORT pgc_status pgc_value_render_json(uint32_t oid, const uint8_t *data, size_t len,
                                            char **out, size_t *out_len, char *err, size_t err_len);

/* ---- pgc_array: one-dimensional array values ---- */

/* Checks the whole value (header, element type, every element's length) so that
 * pgc_array_read cannot fail afterwards, and sets up *out to iterate it (borrowing
 * `data`). An empty array has count 0. Multi-dimensional arrays are PGC_ERR_UNSUPPORTED;
 * PGC_ERR_TRUNCATED / PGC_ERR_MALFORMED for a bad value. Thread-safe. */
PGC_EXPORT pgc_status pgc_array_open(const uint8_t *data, size_t len, pgc_array *out, char *err,
                                     size_t err_len);
/* true with the next element (*elem NULL and *elem_len 0 for a NULL element), false at the
 * end. Not thread-safe on one iterator; distinct iterators are independent. */
PGC_EXPORT bool pgc_array_read(pgc_array *a, const uint8_t **elem, size_t *elem_len);

/* ---- pgc_consumer ---- */

/* Copies the options (nothing borrowed after return); connects lazily, but reads and
 * checks the TLS files at once. PGC_ERR_INVALID for missing gateway or uri or an option
 * out of range, PGC_ERR_CONFIG for TLS files that do not check out (a key that is not the
 * certificate's) or a token without TLS, PGC_ERR_IO for an unreadable file, PGC_ERR_NOMEM.
 * The caller owns *out (pgc_consumer_destroy). Thread-safe. */
PGC_EXPORT pgc_status pgc_consumer_create(const pgc_consumer_options *o, pgc_consumer **out,
                                          char *err, size_t err_len);
/* Opens the stream, sends init, and calls handler->handle once per change, in order, on
 * the calling thread, until pgc_consumer_stop or an error. The handler struct is read at
 * the call; handler->arg is borrowed until the run returns. Each verdict becomes an ack (or
 * a requeue with its reason), sent in order and pipelined with the next changes (see
 * ack_window); in batch mode (batch_limit) a requeue goes out at once and one ack answers
 * the rest of the batch once the handler has seen all of it. After a stop the acks already
 * decided are sent and the stream is half-closed, so the gateway takes them all before the
 * stream ends (changes of a batch the handler had not seen yet come back on the next run).
 * Changes handled but whose ack did not reach the gateway come back on the next run.
 *
 * Returns PGC_OK after a stop. When the stream ends otherwise, err says what the gRPC
 * status was (its name and the server's message), what it means and what to check, and
 * pgc_consumer_get_grpc_status gives the code and message themselves. The status returned,
 * by gRPC status:
 *   permanent (pgc_status_is_transient false: running again gets the same answer until
 *   someone fixes the cause):
 *   - UNIMPLEMENTED: PGC_ERR_UNIMPLEMENTED. The server does not serve
 *     DBLogGateway.Capture: `gateway` is not a gateway's address (a controller's port
 *     answers this way).
 *   - UNAUTHENTICATED: PGC_ERR_UNAUTHENTICATED. The gateway wants credentials (a client
 *     certificate or a token) it did not get or does not know.
 *   - PERMISSION_DENIED: PGC_ERR_PERMISSION. They do not grant this URI (a gateway with
 *     capture lists answers so for a URI it does not have, too).
 *   - NOT_FOUND: PGC_ERR_NOT_FOUND. The gateway has no such URI.
 *   - INVALID_ARGUMENT: PGC_ERR_INVALID. A refused init (a bad TableRegex).
 *   - FAILED_PRECONDITION: PGC_ERR_CONFIG. The gateway cannot serve the URI as it is
 *     configured (its resolver entry names a bad source or durable).
 *   - DATA_LOSS: PGC_ERR_DATA_LOSS. Changes of the URI are gone from the log before they
 *     were delivered (the message names them); running again would deliver around the
 *     hole: schedule a dump first.
 *   - OUT_OF_RANGE: PGC_ERR_INVALID; ALREADY_EXISTS: PGC_ERR_STATE. Our gateway sends
 *     neither; gRPC defines both as errors a retry does not fix.
 *   transient (pgc_status_is_transient true: run again, with back-off, to reconnect):
 *   - UNAVAILABLE: PGC_ERR_CONN. Nothing listens at `gateway`, the connection was refused
 *     or dropped, the TLS handshake failed, or the gateway is stopping or cannot reach
 *     its log.
 *   - DEADLINE_EXCEEDED: PGC_ERR_TIMEOUT.
 *   - RESOURCE_EXHAUSTED (too many streams on the URI or from this client, the gateway
 *     out of memory), ABORTED, INTERNAL (gRPC's code for a stream reset in flight, e.g.
 *     by a proxy), UNKNOWN, CANCELLED, and OK when the gateway ended the stream on its
 *     own: PGC_ERR_CONN.
 * Other statuses, with no gRPC status (PGC_GRPC_CODE_NONE): PGC_ERR_MALFORMED for bytes
 * from the gateway that are not a CaptureMessage, PGC_ERR_NOMEM, and PGC_ERR_CONFIG /
 * PGC_ERR_IO for TLS files that no longer check out when the run reconnects.
 * Thread-safety: one run at a time per consumer, from any thread; a consumer may be run
 * again after it returned. Distinct consumers run independently. */
PGC_EXPORT pgc_status pgc_consumer_run(pgc_consumer *c, const pgc_change_handler *handler,
                                       char *err, size_t err_len);
/* How the last pgc_consumer_run's stream ended: the gRPC status code, and in *message
 * (when message is not NULL) the server's or gRPC's message for it, borrowed until the
 * consumer is run again or destroyed ("" when none). PGC_GRPC_CODE_NONE (message "")
 * before the first run, after a run that returned PGC_OK, and after one that ended on an
 * error of its own (PGC_ERR_MALFORMED, PGC_ERR_NOMEM, ...). Not concurrently with
 * pgc_consumer_run on the same consumer. */
PGC_EXPORT pgc_grpc_code pgc_consumer_get_grpc_status(const pgc_consumer *c, const char **message);
/* Asks a running pgc_consumer_run to return (promptly, without waiting for a change); a
 * stop before run makes the next run return at once. Thread-safe and async-signal-safe
 * (it only writes an atomic flag), until the consumer is destroyed. NULL is a no-op. */
PGC_EXPORT void pgc_consumer_stop(pgc_consumer *c);
/* Frees the consumer. NULL is a no-op. Not while pgc_consumer_run or pgc_consumer_stop
 * runs on it. */
PGC_EXPORT void pgc_consumer_destroy(pgc_consumer *c);

/* ==== 6. Callbacks ====================================================================== */

/* What pgc_consumer_run calls once per change, on the thread running pgc_consumer_run.
 * The change is valid until handle returns. For PGC_VERDICT_REQUEUE it may set *reason to
 * a non-empty string (borrowed, read before the next change; NULL or "" gives "requeued
 * by consumer"). It may call pgc_consumer_stop. */
struct pgc_change_handler {
    void *arg; /* passed to handle as is */
    pgc_verdict (*handle)(void *arg, const pgc_change *c, const char **reason);
};

#ifdef __cplusplus
}
#endif

#endif
