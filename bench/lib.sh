# Shared helpers for the benchmark scripts: throwaway servers and timing.
# shellcheck shell=bash
BIN=${BIN:-$PWD/build/release/pgcapture}
PGBIN=/usr/lib/postgresql/15/bin

bench_start_servers() {
  eval "$(scripts/pg-tmp start -c "max_wal_size = 8GB" -c "checkpoint_timeout = 30min")"
  eval "$(scripts/nats-tmp start)"
  export PGHOST PGPORT PGUSER PGDATABASE NATS_URL
  trap bench_stop_servers EXIT
}

bench_stop_servers() {
  local pids
  pids=$(jobs -p)
  [ -n "$pids" ] && kill $pids 2>/dev/null
  wait 2>/dev/null
  [ -n "${PGTMP_DIR:-}" ] && scripts/pg-tmp stop "$PGTMP_DIR"
  [ -n "${NATSTMP_DIR:-}" ] && scripts/nats-tmp stop "$NATSTMP_DIR"
}

now_s() { date +%s.%N; }
# CPU seconds (user + system) a process has used, from /proc.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
