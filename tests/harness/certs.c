/* Test certificates (see certs.h). */
#include "harness/certs.h"

#include "harness/runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[256];

static void remove_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

const char *harness_certs_dir(void)
{
    if (dir[0])
        return dir;
    char tmpl[] = "/tmp/pgc-certs.XXXXXX";
    if (!mkdtemp(tmpl))
        unit_fail(__FILE__, __LINE__, "mkdtemp failed");
    char cmd[400];
    snprintf(cmd, sizeof cmd, "tests/harness/make-certs '%s' >'%s/make-certs.log' 2>&1", tmpl,
             tmpl);
    if (system(cmd) != 0) {
        snprintf(cmd, sizeof cmd, "cat '%s/make-certs.log'; rm -rf '%s'", tmpl, tmpl);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot clean up %s\n", tmpl);
        unit_fail(__FILE__, __LINE__, "tests/harness/make-certs failed (is openssl installed?)");
    }
    snprintf(dir, sizeof dir, "%s", tmpl);
    atexit(remove_dir);
    return dir;
}

const char *harness_cert(const char *file)
{
    static char ring[32][320];
    static unsigned next;
    char *out = ring[next++ % 32];
    snprintf(out, sizeof ring[0], "%s/%s", harness_certs_dir(), file);
    return out;
}
