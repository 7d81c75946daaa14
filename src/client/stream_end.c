/* The gRPC statuses a Capture stream ends with, as a consumer must take them (see
 * stream_end.h): which pgc_status each becomes, hence transient or not, and what to tell
 * the user. */
#include "client/stream_end.h"

#include "core/status.h"

/* Indexed by code. Permanent: a retry gets the same answer until someone fixes the cause
 * (an address, credentials, the resolver file, a hole in the log). Transient: what gRPC
 * and our gateway use for a connection that failed or dropped, a gateway stopping or
 * short of its log, NATS or memory, and limits that free up (too many streams). */
static const struct {
    const char *name;
    pgc_status status;
} codes[] = {
    [PGC_GRPC_CODE_OK] = {"OK", PGC_ERR_CONN}, /* the gateway ended the stream itself */
    [PGC_GRPC_CODE_CANCELLED] = {"CANCELLED", PGC_ERR_CONN},
    [PGC_GRPC_CODE_UNKNOWN] = {"UNKNOWN", PGC_ERR_CONN},
    [PGC_GRPC_CODE_INVALID_ARGUMENT] = {"INVALID_ARGUMENT", PGC_ERR_INVALID},
    [PGC_GRPC_CODE_DEADLINE_EXCEEDED] = {"DEADLINE_EXCEEDED", PGC_ERR_TIMEOUT},
    [PGC_GRPC_CODE_NOT_FOUND] = {"NOT_FOUND", PGC_ERR_NOT_FOUND},
    [PGC_GRPC_CODE_ALREADY_EXISTS] = {"ALREADY_EXISTS", PGC_ERR_STATE},
    [PGC_GRPC_CODE_PERMISSION_DENIED] = {"PERMISSION_DENIED", PGC_ERR_PERMISSION},
    [PGC_GRPC_CODE_RESOURCE_EXHAUSTED] = {"RESOURCE_EXHAUSTED", PGC_ERR_CONN},
    [PGC_GRPC_CODE_FAILED_PRECONDITION] = {"FAILED_PRECONDITION", PGC_ERR_CONFIG},
    [PGC_GRPC_CODE_ABORTED] = {"ABORTED", PGC_ERR_CONN},
    [PGC_GRPC_CODE_OUT_OF_RANGE] = {"OUT_OF_RANGE", PGC_ERR_INVALID},
    [PGC_GRPC_CODE_UNIMPLEMENTED] = {"UNIMPLEMENTED", PGC_ERR_UNIMPLEMENTED},
    /* gRPC's code for a stream reset in flight (RST_STREAM), e.g. by a proxy restarting */
    [PGC_GRPC_CODE_INTERNAL] = {"INTERNAL", PGC_ERR_CONN},
    [PGC_GRPC_CODE_UNAVAILABLE] = {"UNAVAILABLE", PGC_ERR_CONN},
    [PGC_GRPC_CODE_DATA_LOSS] = {"DATA_LOSS", PGC_ERR_DATA_LOSS},
    [PGC_GRPC_CODE_UNAUTHENTICATED] = {"UNAUTHENTICATED", PGC_ERR_UNAUTHENTICATED},
};
#define N_CODES (sizeof codes / sizeof codes[0])

static bool known(pgc_grpc_code code)
{
    return code >= 0 && (size_t)code < N_CODES;
}

const char *pgc_grpc_code_get_name(pgc_grpc_code code)
{
    if (code == PGC_GRPC_CODE_NONE)
        return "NONE";
    /* gRPC takes a code it does not know as UNKNOWN. */
    return known(code) ? codes[code].name : "UNKNOWN";
}

pgc_status stream_end_status(pgc_grpc_code code)
{
    return known(code) ? codes[code].status : PGC_ERR_CONN;
}

pgc_status stream_end_explain(pgc_grpc_code code, const char *msg, const char *gateway,
                              const char *uri, char *err, size_t err_len)
{
    pgc_status rc = stream_end_status(code);
    const char *name = pgc_grpc_code_get_name(code);
    if (!msg || !*msg)
        msg = "no message";
    switch (code) {
    case PGC_GRPC_CODE_UNIMPLEMENTED:
        return errbuf_set(
            err, err_len, rc,
            "the server at %s does not serve DBLogGateway.Capture (%s: %s): check that "
            "it is the gateway's address (the gateway's --listen); a controller's "
            "port answers this way",
            gateway, name, msg);
    case PGC_GRPC_CODE_UNAUTHENTICATED:
        return errbuf_set(err, err_len, rc,
                          "the gateway at %s does not know this client (%s: %s): check the "
                          "client certificate or token sent, and that the gateway's capture list "
                          "of uri \"%s\" names it",
                          gateway, name, msg, uri);
    case PGC_GRPC_CODE_PERMISSION_DENIED:
        return errbuf_set(err, err_len, rc,
                          "the gateway at %s does not let this client capture uri \"%s\" (%s: "
                          "%s): check the URI (one the gateway does not have is refused the same "
                          "way) and that its capture list names this client's certificate "
                          "identity or token",
                          gateway, uri, name, msg);
    case PGC_GRPC_CODE_NOT_FOUND:
        return errbuf_set(err, err_len, rc,
                          "the gateway at %s has no uri \"%s\" (%s: %s): check the URI against "
                          "the gateway's resolver file",
                          gateway, uri, name, msg);
    case PGC_GRPC_CODE_INVALID_ARGUMENT:
    case PGC_GRPC_CODE_OUT_OF_RANGE:
    case PGC_GRPC_CODE_ALREADY_EXISTS:
        return errbuf_set(err, err_len, rc,
                          "the gateway at %s refused the stream of uri \"%s\" (%s: %s): check "
                          "its parameters (TableRegex and the others); retrying cannot help",
                          gateway, uri, name, msg);
    case PGC_GRPC_CODE_FAILED_PRECONDITION:
        return errbuf_set(err, err_len, rc,
                          "the gateway at %s cannot serve uri \"%s\" as it is configured (%s: "
                          "%s): check the URI's entry in the gateway's resolver",
                          gateway, uri, name, msg);
    case PGC_GRPC_CODE_DATA_LOSS:
        return errbuf_set(err, err_len, rc,
                          "the gateway at %s ended the stream of uri \"%s\" (%s: %s); running "
                          "again would deliver around the hole",
                          gateway, uri, name, msg);
    case PGC_GRPC_CODE_UNAVAILABLE:
        return errbuf_set(err, err_len, rc, "the gateway at %s is unavailable (%s: %s)", gateway,
                          name, msg);
    default:
        return errbuf_set(err, err_len, rc,
                          "the gateway at %s ended the stream of uri \"%s\" (%s: %s)", gateway, uri,
                          name, msg);
    }
}
