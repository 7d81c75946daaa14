/* A gateway with a resolver of its own: instead of a config file, a consumer URI of the
 * form "SOURCE/CONSUMER" (e.g. "main/billing") reads the log of source SOURCE through
 * the durable consumer CONSUMER. Any other URI is refused with NOT_FOUND. A client that
 * presents a certificate the gateway verified (mutual TLS, set up through the options'
 * tls_* files) may only use the CONSUMER named by its certificate's CN or a SAN:
 * PERMISSION_DENIED otherwise.
 *
 *   custom_resolver [LISTEN_ADDR [NATS_URL]]    (defaults 127.0.0.1:10000, nats://127.0.0.1:4222)
 *
 * Prints "listening on PORT" once ready; stops gracefully on SIGINT or SIGTERM.
 * Build: cc -o custom_resolver custom_resolver.c $(pkg-config --cflags --libs pgcapture-gateway) */
#define _POSIX_C_SOURCE 200809L /* sigaction */

#include <pgcapture/gateway.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* SOURCE and CONSUMER must be NATS tokens: letters, digits, '_' and '-'. */
static bool is_name(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", s[i]))
            return false;
    return true;
}

/* True when the peer presented no verified certificate, or one naming `consumer`. */
static bool peer_may_be(const pgc_peer *peer, const char *consumer)
{
    size_t n = pgc_peer_get_identity_count(peer);
    for (size_t i = 0; i < n; i++)
        if (strcmp(pgc_peer_get_identity(peer, i), consumer) == 0)
            return true;
    return n == 0;
}

/* Thread-safe: it only reads its arguments (and writes the target it was given). */
static pgc_status resolve(void *arg, const char *uri, const pgc_peer *peer, pgc_uri_target *out,
                          char *err, size_t err_len)
{
    (void)arg;
    const char *slash = strchr(uri, '/');
    char source[PGC_GATEWAY_NAME_MAX];
    if (!slash || (size_t)(slash - uri) >= sizeof source || !is_name(uri, (size_t)(slash - uri)) ||
        !is_name(slash + 1, strlen(slash + 1))) {
        snprintf(err, err_len, "expected SOURCE/CONSUMER, got \"%s\"", uri);
        return PGC_ERR_NOT_FOUND;
    }
    if (!peer_may_be(peer, slash + 1)) {
        snprintf(err, err_len, "this certificate may not use \"%s\"", uri);
        return PGC_ERR_PERMISSION;
    }
    memcpy(source, uri, (size_t)(slash - uri));
    source[slash - uri] = '\0';
    /* The NATS URL is left unset: the gateway's default. */
    pgc_status rc = pgc_uri_target_set_source(out, source, err, err_len);
    return rc == PGC_OK ? pgc_uri_target_set_durable(out, slash + 1, err, err_len) : rc;
}

int main(int argc, char **argv)
{
    const char *listen = argc > 1 ? argv[1] : "127.0.0.1:10000";
    pgc_gateway_options opts;
    pgc_gateway_options_init(&opts);
    if (argc > 2)
        opts.nats_url = argv[2];
    pgc_resolver resolver = {NULL, resolve};
    pgc_gateway *gw = NULL;
    char err[512];
    int port = 0;
    if (pgc_gateway_create(&opts, &resolver, &gw, err, sizeof err) != PGC_OK ||
        pgc_gateway_serve(gw, listen, &port, err, sizeof err) != PGC_OK) {
        fprintf(stderr, "custom_resolver: %s\n", err);
        pgc_gateway_destroy(gw);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    printf("listening on %d\n", port);
    fflush(stdout);
    while (!stop_requested)
        sleep(1); /* a signal cuts it short */
    pgc_gateway_stop(gw, 2000);
    pgc_gateway_destroy(gw);
    return 0;
}
