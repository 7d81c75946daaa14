/* A nats-server of a case's own (see natsbox.h). */
#include "harness/natsbox.h"

#include "harness/certs.h"
#include "harness/fixtures.h"
#include "harness/runner.h"
#include "harness/services.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void box_stop(void *arg)
{
    natsbox *b = arg;
    if (b->pid > 0) {
        kill(b->pid, SIGTERM);
        waitpid(b->pid, NULL, 0);
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", b->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", b->dir);
    free(b);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        unit_fail(__FILE__, __LINE__, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

natsbox *natsbox_start(const char *auth)
{
    natsbox *b = calloc(1, sizeof *b);
    snprintf(b->dir, sizeof b->dir, "/tmp/pgc-natsauth.XXXXXX");
    if (!mkdtemp(b->dir))
        unit_fail(__FILE__, __LINE__, "mkdtemp failed");
    unit_defer(box_stop, b);
    int port = harness_free_port();
    char conf[16384], path[400];
    int len = snprintf(conf, sizeof conf,
                       "listen: 127.0.0.1:%d\n"
                       "jetstream { store_dir: \"%s/js\" }\n"
                       "tls {\n  cert_file: \"%s\"\n  key_file: \"%s\"\n  ca_file: \"%s\"\n"
                       "  verify: true\n  timeout: 5\n}\n%s\n",
                       port, b->dir, harness_cert("server.pem"), harness_cert("server.key"),
                       harness_cert("ca.pem"), auth);
    if (len < 0 || (size_t)len >= sizeof conf)
        unit_fail(__FILE__, __LINE__, "nats.conf over %zu bytes", sizeof conf);
    snprintf(path, sizeof path, "%s/nats.conf", b->dir);
    write_file(path, conf);
    snprintf(b->log, sizeof b->log, "%s/nats.log", b->dir);
    /* The dead first entry checks that every connection takes the whole list. */
    snprintf(b->url, sizeof b->url, "nats://127.0.0.1:%d,nats://127.0.0.1:%d", harness_free_port(),
             port);
    b->pid = fork();
    if (b->pid == 0) {
        execlp("nats-server", "nats-server", "-c", path, "-l", b->log, (char *)NULL);
        _exit(127);
    }
    long long until = harness_now_ms() + 20000;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "grep -q 'Server is ready' '%s' 2>/dev/null", b->log);
    while (system(cmd) != 0) {
        if (harness_now_ms() > until) {
            harness_print_log_tail(b->log, 20);
            unit_fail(__FILE__, __LINE__, "nats-server with TLS and accounts did not start");
        }
        harness_sleep_ms(20);
    }
    return b;
}

void natsbox_flags(const natsbox *b, const char *cert, const char *const *extra, const char **out,
                   int max)
{
    char pem[64], key[64];
    snprintf(pem, sizeof pem, "%s.pem", cert);
    snprintf(key, sizeof key, "%s.key", cert);
    const char *tls[] = {"--nats-url",      b->url,
                         "--nats-tls-ca",   harness_cert("ca.pem"),
                         "--nats-tls-cert", harness_cert(pem),
                         "--nats-tls-key",  harness_cert(key)};
    int n = 0;
    for (size_t i = 0; i < sizeof tls / sizeof tls[0] && n < max - 1; i++)
        out[n++] = strdup(tls[i]);
    for (int i = 0; extra && extra[i] && n < max - 1; i++)
        out[n++] = strdup(extra[i]);
    for (int i = 0; i < n; i++)
        unit_defer(free, (void *)out[i]);
    out[n] = NULL;
}
