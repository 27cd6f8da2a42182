#!/usr/bin/env bash
# Starts the same local PostgreSQL servers as LocalPgCluster (RwSplit.PgCluster), outside the tests: a primary, two
# streaming replicas and an independent second primary on 127.0.0.1, trust authentication, database "rwsplit".
# LocalPgCluster.StartAsync reuses servers started by this script (and then leaves them running).
#
#   pg-cluster.sh start    create and start them (reuses them when already running)
#   pg-cluster.sh stop     stop them and delete their directory
#   pg-cluster.sh status   show each server's state and connection string
#
# Environment: RWSPLIT_PG_BASE_PORT (default 25430: primary, +1 and +2 replicas, +3 second primary),
# RWSPLIT_PG_BIN (PostgreSQL bin directory; default the highest /usr/lib/postgresql/*/bin), TMPDIR.
set -euo pipefail

base=${RWSPLIT_PG_BASE_PORT:-25430}
tmp=${TMPDIR:-/tmp}
root="${tmp%/}/rwsplit-pg-$base"
bin=${RWSPLIT_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$bin/pg_ctl" ] || { echo "pg_ctl not found: install the PostgreSQL server or set RWSPLIT_PG_BIN" >&2; exit 1; }
names=(primary replica1 replica2 second-primary)
declare -A port=([primary]=$base [replica1]=$((base + 1)) [replica2]=$((base + 2)) [second-primary]=$((base + 3)))

# PostgreSQL refuses to run as root: then run its tools as the postgres OS user.
pg() { local tool=$1; shift; if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$bin/$tool" "$@"); else "$bin/$tool" "$@"; fi; }
sql() { pg psql -h 127.0.0.1 -p "${port[$1]}" -U postgres -d postgres -XAtqc "$2"; }
conn() { echo "Host=127.0.0.1;Port=${port[$1]};Username=postgres;Database=rwsplit;Pooling=true;Timeout=5;Command Timeout=30"; }
running() { [ -d "$root/$1" ] && pg pg_ctl status -D "$root/$1" >/dev/null 2>&1; }

settings() {
  cat <<EOF

# ---- Added by RwSplit.PgCluster ----
listen_addresses = '127.0.0.1'
unix_socket_directories = '$root'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
hot_standby_feedback = on
max_prepared_transactions = 64
max_connections = 200
fsync = off
full_page_writes = off
shared_buffers = 32MB
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 500ms
track_commit_timestamp = on
logging_collector = off
log_min_messages = warning
EOF
}
per_server() { printf "port = %s\ncluster_name = '%s'\n" "${port[$1]}" "$1"; }
start_server() { pg pg_ctl start -D "$root/$1" -l "$root/$1/postgresql.log" -w -t 60 -s; }

stop_all() {
  local mode=$1 n
  for n in "${names[@]}"; do running "$n" && pg pg_ctl stop -D "$root/$n" -m "$mode" -w -t 60 -s || true; done
  rm -rf "$root"
}

status() {
  local n state all=0
  for n in "${names[@]}"; do
    if running "$n"; then state="running, in recovery: $(sql "$n" 'SELECT pg_is_in_recovery()' 2>/dev/null || echo '?')"; else state="stopped"; all=1; fi
    printf '%-15s %s\n  %s\n' "$n" "$state" "$(conn "$n")"
  done
  return $all
}

start() {
  if status >/dev/null; then echo "Already running from $root:"; status; return; fi
  stop_all immediate
  mkdir -p "$root"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$root"
  local n
  for n in primary second-primary; do
    pg initdb -D "$root/$n" -A trust -U postgres -E UTF8 --locale=C --no-sync --no-instructions --wal-segsize=1 >/dev/null
    { settings; per_server "$n"; } >>"$root/$n/postgresql.conf"
    start_server "$n"
    sql "$n" 'CREATE DATABASE rwsplit STRATEGY = FILE_COPY'
  done
  for n in replica1 replica2; do sql primary "SELECT pg_create_physical_replication_slot('$n', true)" >/dev/null; done
  for n in replica1 replica2; do
    pg pg_basebackup -h 127.0.0.1 -p "$base" -U postgres -D "$root/$n" -R -X stream -S "$n" -c fast --no-sync --no-manifest
    rm -f "$root/$n/postgresql.log"
    per_server "$n" >>"$root/$n/postgresql.conf"
    start_server "$n"
  done
  for _ in $(seq 600); do
    [ "$(sql primary "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 2 ] && { echo "Started in $root:"; status; return; }
    sleep 0.05
  done
  echo "The replicas did not start streaming; see $root/replica*/postgresql.log" >&2
  exit 1
}

case ${1:-} in
  start) start ;;
  stop) stop_all fast; echo "Stopped; removed $root" ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
