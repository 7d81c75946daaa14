/* What the end of a consumer's Capture stream means: the gRPC status it ended with, mapped
 * to a pgc_status (whose transient flag says whether to retry) and explained in words that
 * say what to check. The mapping is documented with pgc_consumer_run in pgcapture.h. */
#ifndef PGC_CLIENT_STREAM_END_H
#define PGC_CLIENT_STREAM_END_H

#include "pgcapture.h"

#include <stddef.h>

/* The pgc_status a stream that ended with gRPC status `code` gives (never PGC_OK). */
pgc_status stream_end_status(pgc_grpc_code code);

/* Writes into err what the end means for uri at gateway, with the code's name and the
 * server's message `msg` (may be empty), and returns stream_end_status(code). */
pgc_status stream_end_explain(pgc_grpc_code code, const char *msg, const char *gateway,
                              const char *uri, char *err, size_t err_len);

#endif
