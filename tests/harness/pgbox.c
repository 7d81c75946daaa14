/* A PostgreSQL server of a case's own (see pgbox.h). */
#include "harness/pgbox.h"

#include "harness/certs.h"
#include "harness/runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void pgbox_stop(void *arg)
{
    pgbox *b = arg;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "%s%s%s; rm -rf '%s'", *b->dir ? "scripts/pg-tmp stop '" : "true",
             b->dir, *b->dir ? "'" : "", b->filedir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot stop %s\n", b->dir);
    free(b);
}

/* Replaces "%F" in s by dir. */
static void expand(const char *s, const char *dir, char *out, size_t len)
{
    size_t n = 0;
    for (; *s && n + 1 < len; s++) {
        if (s[0] == '%' && s[1] == 'F') {
            n += (size_t)snprintf(out + n, len - n, "%s", dir);
            s++;
        } else {
            out[n++] = *s;
        }
    }
    out[n < len ? n : len - 1] = '\0';
}

pgbox *pgbox_start(const char *hba, const char *const *settings, int tls)
{
    pgbox *b = calloc(1, sizeof *b);
    snprintf(b->filedir, sizeof b->filedir, "/tmp/pgc-pgbox.XXXXXX");
    if (!mkdtemp(b->filedir))
        unit_fail(__FILE__, __LINE__, "mkdtemp failed");
    unit_defer(pgbox_stop, b);
    char cmd[4096], path[400];
    const char *owner = getuid() == 0 ? "-o postgres" : "";
    snprintf(path, sizeof path, "%s/hba.conf", b->filedir);
    FILE *f = fopen(path, "w");
    if (!f)
        unit_fail(__FILE__, __LINE__, "cannot write %s", path);
    fputs(hba, f);
    fclose(f);
    int n = snprintf(cmd, sizeof cmd, "chmod 755 '%1$s' && chmod 644 '%1$s/hba.conf'", b->filedir);
    if (tls)
        snprintf(cmd + n, sizeof cmd - (size_t)n,
                 " && install %2$s -m 644 '%3$s' '%1$s/server.pem' && "
                 "install %2$s -m 600 '%4$s' '%1$s/server.key'",
                 b->filedir, owner, harness_cert("server.pem"), harness_cert("server.key"));
    if (system(cmd) != 0)
        unit_fail(__FILE__, __LINE__, "cannot prepare %s", b->filedir);
    n = snprintf(cmd, sizeof cmd, "scripts/pg-tmp start -c \"hba_file = '%s'\"", path);
    for (int i = 0; settings && settings[i]; i++) {
        char s[600];
        expand(settings[i], b->filedir, s, sizeof s);
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " -c \"%s\"", s);
    }
    FILE *p = popen(cmd, "r");
    char line[1024] = "";
    if (!p || !fgets(line, sizeof line, p)) {
        if (p)
            pclose(p);
        unit_fail(__FILE__, __LINE__, "scripts/pg-tmp start failed: %s", cmd);
    }
    pclose(p);
    const char *port = strstr(line, "PGPORT="), *dir = strstr(line, "PGTMP_DIR=");
    if (!port || !dir || sscanf(dir, "PGTMP_DIR=%255s", b->dir) != 1)
        unit_fail(__FILE__, __LINE__, "unexpected pg-tmp output: %s", line);
    b->port = atoi(port + 7);
    return b;
}
