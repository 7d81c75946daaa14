/* `pgcapture demo`: runs scripts/demo of the source tree this binary was built in (the
 * demo starts throwaway servers with the scripts next to it), with this binary. */
#include "cli/commands.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cmd_demo(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: pgcapture demo\n\n"
               "Starts throwaway source and replica PostgreSQL and NATS, every role, writes sample "
               "data and\nshows the changes and a dump arriving at a consumer as JSON; then "
               "removes everything.\nRuns scripts/demo of the source tree (same as `make demo`); "
               "PGCAPTURE_DEMO_SCRIPT overrides it.\n");
        return 0;
    }
    char self[PATH_MAX], script[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "pgcapture demo: cannot find this binary's path\n");
        return 1;
    }
    self[n] = '\0';
    const char *env = getenv("PGCAPTURE_DEMO_SCRIPT");
    if (env && *env) {
        snprintf(script, sizeof script, "%s", env);
    } else {
        /* build/<variant>/pgcapture -> scripts/demo */
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", self);
        for (int up = 0; up < 3; up++) {
            char *slash = strrchr(dir, '/');
            if (slash)
                *slash = '\0';
        }
        snprintf(script, sizeof script, "%s/scripts/demo", dir);
    }
    if (access(script, R_OK) != 0) {
        fprintf(stderr,
                "pgcapture demo: %s not found: run it from a source tree (make demo) or set "
                "PGCAPTURE_DEMO_SCRIPT\n",
                script);
        return 2;
    }
    setenv("BIN", self, 1);
    execl("/bin/bash", "bash", script, (char *)NULL);
    perror("pgcapture demo: cannot run bash");
    return 1;
}
