/* pgcapture's own Python client (the `python/` directory of github.com/replicase/pgcapture,
 * unchanged) against our gateway in per-change mode: it must read, decode and ack our
 * changes as it does the Go gateway's. The client cannot be vendored into this repository
 * nor downloaded by the test, so the case runs when PGC_UPSTREAM_PYTHON names that
 * directory and says why it is skipped otherwise. tests/integration/compat_upstream.py
 * drives it and checks the decoded values. */
#include "harness/capclient.h"
#include "harness/fixtures.h"
#include "harness/runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void test_pgcaptures_python_client_reads_and_acks_our_stream(void)
{
    const char *dir = getenv("PGC_UPSTREAM_PYTHON");
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/pgcapture/client.py", dir ? dir : "");
    if (!dir || !*dir || access(probe, R_OK) != 0)
        unit_skip("set PGC_UPSTREAM_PYTHON to the python/ directory of a pgcapture checkout "
                  "(github.com/replicase/pgcapture) to run pgcapture's own client");
    cap_env e;
    cap_setup(&e, NULL);
    cap_insert_rows(&e, 1, 3, true);
    harness_exec(e.conn, "UPDATE t SET v = 'py' WHERE id = 2");
    char cmd[2048];
    snprintf(
        cmd, sizeof cmd,
        "PYTHONPATH='%s' /usr/bin/python3 tests/integration/compat_upstream.py %s %s >>%s 2>&1",
        dir, e.addr, e.uri, e.gw_log);
    if (system(cmd) != 0) {
        cap_show_gateway_log();
        unit_fail(__FILE__, __LINE__, "pgcapture's Python client failed");
    }
    /* It acked all four: nothing comes back. */
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    cap_expect_quiet(c, 1500);
}

UNIT_MAIN(UNIT_CASE(test_pgcaptures_python_client_reads_and_acks_our_stream))
