/* HTTP endpoint for metrics and health probes (see metrics_http.h). */
#include "core/metrics_http.h"

#include "core/health.h"
#include "core/status.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct metrics_http {
    struct MHD_Daemon *daemon;
    metrics_registry *registry;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int code, const char *type,
                             char *body, size_t len, bool owned)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (!resp) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result rc = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **req_ctx)
{
    (void)version;
    (void)upload;
    (void)req_ctx;
    metrics_http *h = cls;
    static const char text[] = "text/plain; charset=utf-8";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        char msg[] = "only GET\n";
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, msg, strlen(msg), false);
    }
    if (*upload_len)
        return MHD_NO;
    if (strcmp(url, "/metrics") == 0) {
        size_t len = 0;
        char *body = metrics_render(h->registry, &len);
        if (!body) {
            char msg[] = "out of memory\n";
            return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, text, msg, strlen(msg), false);
        }
        return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len,
                     true);
    }
    if (strcmp(url, "/healthz") == 0) {
        char msg[] = "ok\n";
        return reply(conn, MHD_HTTP_OK, text, msg, strlen(msg), false);
    }
    if (strcmp(url, "/readyz") == 0) {
        char why[256], msg[300];
        bool ready = health_ready(why, sizeof why);
        int n = snprintf(msg, sizeof msg, "%s\n", ready ? "ready" : why);
        return reply(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, text, msg,
                     (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1, false);
    }
    char msg[] = "not found: try /metrics, /healthz or /readyz\n";
    return reply(conn, MHD_HTTP_NOT_FOUND, text, msg, strlen(msg), false);
}

/* "host:port", "[v6]:port" or ":port" into a numeric socket address. */
static int resolve(const char *addr, struct addrinfo **out, char *err, size_t err_len)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || !colon[1] || *end || port < 0 || port > 65535 ||
        (size_t)(colon - addr) >= sizeof host)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG,
                          "metrics listen address \"%s\": expected host:port", addr);
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | (hl ? AI_NUMERICHOST : 0);
    int rc = getaddrinfo(hl ? host : "0.0.0.0", colon + 1, &hints, out);
    if (rc != 0)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "metrics listen address \"%s\": %s", addr,
                          gai_strerror(rc));
    return PGC_OK;
}

int metrics_http_start(const char *addr, metrics_registry *r, metrics_http **out, int *bound_port,
                       char *err, size_t err_len)
{
    struct addrinfo *ai = NULL;
    int rc = resolve(addr, &ai, err, err_len);
    if (rc != PGC_OK)
        return rc;
    metrics_http *h = calloc(1, sizeof *h);
    if (!h) {
        freeaddrinfo(ai);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "metrics: out of memory");
    }
    h->registry = r;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* Scrapes are small and rare: a few connections, short timeouts. */
    h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
                                 ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)32,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->daemon) {
        free(h);
        return errbuf_set(err, err_len, PGC_ERR_IO,
                          "metrics: cannot listen on %s (address in use or not local?)", addr);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (bound_port)
        *bound_port = info ? info->port : 0;
    *out = h;
    return PGC_OK;
}

void metrics_http_stop(metrics_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
