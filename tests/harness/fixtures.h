/* Integration-test helpers: a fresh database on the throwaway PostgreSQL servers and a
 * fresh JetStream stream name on the throwaway NATS server that tests/run started
 * (PGHOST/PGPORT/PGUSER and NATS_URL), both removed when the test case ends; and child
 * processes of the pgcapture binary (PGC_TEST_BIN) that are killed if a case fails.
 * Source databases live on PGHOST/PGPORT, replica databases on PGC_TEST_REPLICA_HOST/
 * PGC_TEST_REPLICA_PORT (the same server when unset), so that the version matrix
 * (tests/matrix/run) can run a source and a replica of different majors. pgcapture's
 * schema comes from the extension, or from the SQL install (sql/pgcapture-setup.sql)
 * when PGC_TEST_INSTALL (source) or PGC_TEST_REPLICA_INSTALL (replicas) is "sql". */
#ifndef PGC_TEST_FIXTURES_H
#define PGC_TEST_FIXTURES_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Creates a source database (with pgcapture's schema when asked) and writes its libpq
 * conninfo into `conninfo`. Dropped, with its replication slots, at the end of the case. */
void harness_db_create(bool with_extension, char *conninfo, size_t len);
/* The same on the replicas' server. */
void harness_replica_db_create(bool with_extension, char *conninfo, size_t len);
/* Installs pgcapture's schema into a database of the source's (replica false) or the
 * replicas' server, the way that server's install mode says. */
void harness_install_pgcapture(const char *conninfo, bool replica);
/* "ext" or "sql": how pgcapture's schema is installed on that server. */
const char *harness_install_mode(bool replica);
/* The major version of the server behind conninfo (15, 16, ...). */
int harness_server_major(const char *conninfo);
/* Skips the case when the local pg_dump is older than the server behind conninfo (it
 * refuses to dump a newer server): `replica init` from such a source needs a newer one. */
void harness_require_pg_dump_for(const char *conninfo);
/* Whether the local pg_dump can dump the server behind conninfo. */
bool harness_pg_dump_can_dump(const char *conninfo);
/* A new unique name ("t<pid>_<n>") usable as a source, stream or consumer name; the
 * stream PGCAPTURE_<name> (if created) is deleted at the end of the case. */
void harness_unique_name(char *name, size_t len);
const char *harness_nats_url(void);

/* Connects (fails the case on error); the connection is closed at the end of the case. */
PGconn *harness_connect(const char *conninfo);
/* Runs SQL that returns no rows; fails the case with the server's message on error. */
void harness_exec(PGconn *conn, const char *sql);
/* Runs a query and returns the first column of the first row as a malloc'ed string
 * (NULL for SQL NULL); freed at the end of the case. */
char *harness_query_value(PGconn *conn, const char *sql);
long long harness_query_int(PGconn *conn, const char *sql);

/* Starts `pgcapture ARGS...` (NULL-terminated) with stderr/stdout appended to a log file
 * kept for failure reports; the process is killed at the end of the case. */
pid_t harness_spawn(const char *log_path, const char *const *args);
/* Prints the last lines of a log file (used when an assertion fails). */
void harness_print_log_tail(const char *log_path, int lines);
/* Waits up to timeout_ms for the process to exit; returns its exit status, or -1. */
int harness_wait_exit(pid_t pid, int timeout_ms);
void harness_sleep_ms(int ms);

/* Stops and starts the throwaway servers of this run (the same ports and data), for
 * tests of what survives a server restart. */
void harness_nats_stop(void);
void harness_nats_start(void);
/* pg_ctl restart with the given mode ("fast" or "immediate"). */
void harness_pg_restart(const char *mode);

/* Starts `pgcapture agent` for source `conninfo` under source name `name` with the
 * test settings (no confirm delay, debug log) plus `extra` (NULL-terminated, may be
 * NULL); its log goes to $PGC_TEST_LOGDIR/agent-<name>.log. */
pid_t harness_agent_start(const char *conninfo, const char *name, const char *const *extra,
                          char *log_path, size_t log_path_len);
/* Waits until the agent of source `name` streams from its slot (pgcapture_<name> active):
 * only changes committed after that reach the stream. Fails the case after timeout_ms. */
void harness_agent_wait_streaming(const char *conninfo, const char *name, const char *log_path,
                                  int timeout_ms);
long long harness_now_ms(void);

#endif
