/* A three-node NATS cluster of a case's own (see natscluster.h). */
#include "harness/natscluster.h"

#include "harness/fixtures.h"
#include "harness/runner.h"

#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char saved_url[512];

static void cluster_stop(void *arg)
{
    natscluster *c = arg;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "scripts/nats-tmp stop '%s'", c->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot stop the cluster in %s\n", c->dir);
    setenv("NATS_URL", saved_url, 1);
    free(c);
}

natscluster *natscluster_start(void)
{
    snprintf(saved_url, sizeof saved_url, "%s", harness_nats_url());
    FILE *p = popen("scripts/nats-tmp start --cluster", "r");
    if (!p)
        unit_fail(__FILE__, __LINE__, "cannot run scripts/nats-tmp");
    char line[1024] = "";
    if (!fgets(line, sizeof line, p))
        line[0] = '\0';
    int rc = pclose(p);
    natscluster *c = calloc(1, sizeof *c);
    const char *u = strstr(line, "NATS_URL="), *d = strstr(line, "NATSTMP_DIR=");
    if (rc != 0 || !u || !d || sscanf(u + 9, "%255s", c->url) != 1 ||
        sscanf(d + 12, "%255s", c->dir) != 1) {
        free(c);
        unit_fail(__FILE__, __LINE__, "the NATS cluster did not start: %s", line);
    }
    unit_defer(cluster_stop, c);
    setenv("NATS_URL", c->url, 1);
    return c;
}

static void run_script(const char *verb, const natscluster *c, const char *node)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "scripts/nats-tmp %s '%s' '%s'", verb, c->dir, node);
    if (system(cmd) != 0)
        unit_fail(__FILE__, __LINE__, "scripts/nats-tmp %s %s failed", verb, node);
}

void natscluster_kill(const natscluster *c, const char *node)
{
    run_script("kill", c, node);
}

void natscluster_restart(const natscluster *c, const char *node)
{
    run_script("restart", c, node);
}

/* Stream info, or NULL (the caller destroys it). */
static jsStreamInfo *stream_info(const natscluster *c, const char *stream)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    if (natsConnection_ConnectTo(&nc, c->url) == NATS_OK &&
        natsConnection_JetStream(&js, nc, NULL) == NATS_OK)
        js_GetStreamInfo(&si, js, stream, NULL, NULL);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return si;
}

bool natscluster_stream_leader(const natscluster *c, const char *stream, char *out, size_t len)
{
    jsStreamInfo *si = stream_info(c, stream);
    bool ok = si && si->Cluster && si->Cluster->Leader && *si->Cluster->Leader;
    if (ok)
        snprintf(out, len, "%s", si->Cluster->Leader);
    jsStreamInfo_Destroy(si);
    return ok;
}

int natscluster_stream_replicas(const natscluster *c, const char *stream)
{
    jsStreamInfo *si = stream_info(c, stream);
    int n = si ? (int)si->Config->Replicas : 0;
    jsStreamInfo_Destroy(si);
    return n;
}
