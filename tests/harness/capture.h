/* Integration-test helpers around the Capture stream: `pgcapture gateway` as a child
 * process, and a minimal Capture client on src/rpc (TLS and token through
 * rpc_channel_options) that reports the exact gRPC status a stream ends with. */
#ifndef PGC_TEST_CAPTURE_H
#define PGC_TEST_CAPTURE_H

#include "rpc/client.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct harness_gateway {
    char addr[64]; /* "127.0.0.1:<port>" once listening */
    char log[512];
    pid_t pid;
} harness_gateway;

/* Starts `pgcapture gateway --uri-config conf --listen 127.0.0.1:0` with the test NATS
 * server plus `extra` flags (NULL-terminated, may be NULL) and waits for its "gateway
 * listening" line. `tag` names its log file. Killed at the end of the case. */
void harness_gateway_start(harness_gateway *g, const char *tag, const char *conf,
                           const char *const *extra);

typedef struct capclient capclient;

/* Opens a Capture stream to addr with channel options `o` (NULL: plaintext) and sends
 * init(uri, TableRegex = regex when not NULL). Freed at the end of the case. */
capclient *capclient_open(const char *addr, const rpc_channel_options *o, const char *uri,
                          const char *regex);
/* Waits up to timeout_ms for the stream to end: its gRPC status code, or -1 when it is
 * still open (changes received meanwhile are dropped, unacked). */
int capclient_wait_end(capclient *c, int timeout_ms);
/* The message of the status the stream ended with ("" before). */
const char *capclient_status_message(capclient *c);
/* Receives changes of table t (column id int4), acking each when `ack`, until n arrived:
 * their ids into ids; a change of any other table fails the case. Returns how many arrived within
 * timeout_ms (fewer when the stream ended). */
int capclient_take(capclient *c, int32_t *ids, int n, int timeout_ms, bool ack);
/* Cancels the stream (as a consumer going away). */
void capclient_cancel(capclient *c);

/* Channel options for the test certificates (harness/certs.h): trusting ca.pem, with the
 * client certificate `cert` ("alice": alice.pem and alice.key) when not NULL, and a token
 * when not NULL. The strings stay valid for the case. */
rpc_channel_options harness_tls_client(const char *cert, const char *token);

#endif
