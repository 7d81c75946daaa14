/* Implementation of the gRPC-role test helpers (see services.h). */
#include "services.h"

#include "runner.h"
#include "core/status.h"
#include "fixtures.h"
#include "jetstream/jskv.h"
#include "rpc/client.h"

#include "pgcapture.pb-c.h"
#include "rpc/methods.h"

#include <arpa/inet.h>
#include <grpc/status.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int harness_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        if (fd >= 0)
            close(fd);
        unit_fail(__FILE__, __LINE__, "cannot find a free port");
    }
    close(fd);
    return ntohs(sa.sin_port);
}

static void drop_bucket(void *arg)
{
    char err[256];
    jskv_delete_bucket(harness_nats_url(), arg, err, sizeof err);
    free(arg);
}

/* A Schedule call with the given request; returns the gRPC code. */
static int schedule_call(const char *addr, const Pgcapture__ScheduleRequest *req, char *err,
                         size_t err_len)
{
    rpc_channel *ch;
    if (rpc_channel_create(addr, &ch, err, err_len) != PGC_OK)
        return -1;
    size_t len = pgcapture__schedule_request__get_packed_size(req);
    uint8_t *buf = malloc(len ? len : 1);
    pgcapture__schedule_request__pack(req, buf);
    uint8_t *resp = NULL;
    size_t resp_len = 0;
    int code = -1;
    rpc_unary(ch, RPC_METHOD_SCHEDULE, buf, len, 5000, &resp, &resp_len, &code, err, err_len);
    free(buf);
    free(resp);
    rpc_channel_destroy(ch);
    return code;
}

void harness_controller_start(harness_controller *c, const char *const *extra)
{
    char name[48];
    harness_unique_name(name, sizeof name);
    snprintf(c->bucket, sizeof c->bucket, "CTL_%s", name);
    snprintf(c->addr, sizeof c->addr, "127.0.0.1:%d", harness_free_port());
    /* An address given in `extra` wins (the command line takes the last --listen). */
    for (int i = 0; extra && extra[i] && extra[i + 1]; i++)
        if (strcmp(extra[i], "--listen") == 0)
            snprintf(c->addr, sizeof c->addr, "%s", extra[i + 1]);
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(c->log, sizeof c->log, "%s/controller-%s.log", dir ? dir : "/tmp", name);
    unit_defer(drop_bucket, strdup(c->bucket));
    const char *args[32] = {"controller", "--nats-url", harness_nats_url(), "--listen", c->addr,
                            "--bucket",   c->bucket,    "--log-level",      "debug"};
    int n = 9;
    for (int i = 0; extra && extra[i] && n < 31; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    c->pid = harness_spawn(c->log, args);
    /* Ready once it answers: an empty URI is refused with INVALID_ARGUMENT. */
    Pgcapture__ScheduleRequest probe = PGCAPTURE__SCHEDULE_REQUEST__INIT;
    long long deadline = harness_now_ms() + 15000;
    char err[256];
    while (schedule_call(c->addr, &probe, err, sizeof err) != GRPC_STATUS_INVALID_ARGUMENT) {
        if (harness_now_ms() > deadline) {
            harness_print_log_tail(c->log, 30);
            unit_fail(__FILE__, __LINE__, "controller not ready at %s: %s", c->addr, err);
        }
        harness_sleep_ms(50);
    }
}

void harness_controller_schedule(const harness_controller *c, const char *uri, const char *schema,
                                 const char *table, unsigned page_begin, unsigned page_end)
{
    Pgcapture__DumpInfoResponse item = PGCAPTURE__DUMP_INFO_RESPONSE__INIT;
    item.schema = (char *)schema;
    item.table = (char *)table;
    item.page_begin = page_begin;
    item.page_end = page_end;
    Pgcapture__DumpInfoResponse *items[1] = {&item};
    Pgcapture__ScheduleRequest req = PGCAPTURE__SCHEDULE_REQUEST__INIT;
    req.uri = (char *)uri;
    req.n_dumps = 1;
    req.dumps = items;
    char err[256];
    int code = schedule_call(c->addr, &req, err, sizeof err);
    if (code != GRPC_STATUS_OK)
        unit_fail(__FILE__, __LINE__, "Schedule(%s, %s.%s %u-%u): code %d: %s", uri, schema, table,
                  page_begin, page_end, code, err);
}
