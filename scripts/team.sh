#!/usr/bin/env bash
# Start or stop a whole team stack on this machine, on 127.0.0.1 only, to try team mode before asking for real
# servers (the team tests in tests/team/ use it too):
#   - a private PostgreSQL cluster (Debian's `postgresql` binaries) with two databases: `mlflow` (runs, registry)
#     and `trials` (Optuna studies), owned by the role `regression_lab`, whose password lives in a .pgpass file;
#   - an `mlflow server` on the `mlflow` database, artifacts served from an artifact root;
#   - a `dask scheduler` and TEAM_WORKERS (2) `dask worker` processes of this project's virtualenv.
#
#   scripts/team.sh start          # prints `export NAME=value` lines: eval "$(scripts/team.sh start)"
#   scripts/team.sh stop [--purge] # stops everything; --purge also deletes the databases, artifacts and logs
#   scripts/team.sh status
#   scripts/team.sh stop-mlflow    # stops only the tracking server (try a server restart: `start` brings it back)
#
# Settings (environment): TEAM_DIR (default ./.team), TEAM_PG_PORT (54329), TEAM_MLFLOW_PORT (5050),
# TEAM_DASK_PORT (8786), TEAM_WORKERS (2), TEAM_PG_PASSWORD (default: a random one, kept in TEAM_DIR/pgpass).
# No password ever appears in a URI: clients find it through PGPASSFILE (or PGPASSWORD).
# Exit codes: 0 done, 1 a process did not start (its log is printed), 3 PostgreSQL's server binaries are missing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TEAM_DIR="$(mkdir -p "${TEAM_DIR:-$ROOT/.team}" && cd "${TEAM_DIR:-$ROOT/.team}" && pwd)"
PG_PORT="${TEAM_PG_PORT:-54329}"; MLFLOW_PORT="${TEAM_MLFLOW_PORT:-5050}"; DASK_PORT="${TEAM_DASK_PORT:-8786}"
WORKERS="${TEAM_WORKERS:-2}"; ROLE=regression_lab
VENV_BIN="${TEAM_VENV_BIN:-$ROOT/.venv/bin}"
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true PGPASSFILE="$TEAM_DIR/pgpass"
LOGS="$TEAM_DIR/logs"; mkdir -p "$LOGS"
say() { echo "team: $*" >&2; }

# PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user, in a folder it can reach.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_bin() {
  local dir
  dir="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)}"
  [ -n "$dir" ] || dir="$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"
  [ -x "$dir/initdb" ] || return 1
  echo "$dir"
}
pg_data() {
  if [ -f "$TEAM_DIR/pgdata.path" ]; then cat "$TEAM_DIR/pgdata.path"; return; fi
  local data="$TEAM_DIR/pg"
  if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$TEAM_DIR"; then
    data="$(mktemp -d "${TMPDIR:-/tmp}/regression-lab-pg.XXXXXX")"
  fi
  echo "$data" > "$TEAM_DIR/pgdata.path"; echo "$data"
}
alive() { [ -f "$TEAM_DIR/$1.pid" ] && kill -0 "$(cat "$TEAM_DIR/$1.pid")" 2>/dev/null; }
spawn() {  # spawn NAME COMMAND...: a process in its own session, its output in logs/NAME.log, its pid in NAME.pid
  local name="$1"; shift
  alive "$name" && return 0
  setsid "$@" >"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$TEAM_DIR/$name.pid"
}
wait_for() {  # wait_for NAME SECONDS CHECK...
  local name="$1" seconds="$2"; shift 2
  for _ in $(seq $((seconds * 4))); do
    "$@" >/dev/null 2>&1 && return 0
    alive "$name" || break
    sleep 0.25
  done
  say "$name did not start; the end of $LOGS/$name.log:"; tail -n 30 "$LOGS/$name.log" >&2 || true
  return 1
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
mlflow_up() { "$VENV_BIN/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
  "http://127.0.0.1:$MLFLOW_PORT/health"; }

start_postgres() {
  local bin data psql
  bin="$(pg_bin)" || { say "PostgreSQL's server binaries not found (Debian: apt-get install postgresql)"; exit 3; }
  data="$(pg_data)"
  if [ ! -s "$data/PG_VERSION" ]; then
    [ -f "$PGPASSFILE" ] || {
      local password="${TEAM_PG_PASSWORD:-$("$VENV_BIN/python" -c 'import secrets; print(secrets.token_urlsafe(18))')}"
      (umask 077; echo "127.0.0.1:$PG_PORT:*:$ROLE:$password" > "$PGPASSFILE")
    }
    mkdir -p "$data"; [ "$(id -u)" = 0 ] && chown postgres: "$data"
    as_pg "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 --no-sync \
      -E UTF8 --locale=C.UTF-8 > "$LOGS/initdb.log" 2>&1 || { tail -n 20 "$LOGS/initdb.log" >&2; exit 1; }
  fi
  if ! as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$data" -w -t 60 -l "$data/server.log" start \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $data -c fsync=off -c max_connections=200" >/dev/null \
      || { say "PostgreSQL did not start:"; tail -n 20 "$data/server.log" >&2; exit 1; }
  fi
  psql=(as_pg "$bin/psql" -X -q -h "$data" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -d postgres)
  if [ -z "$("${psql[@]}" -tAc "select 1 from pg_roles where rolname='$ROLE'")" ]; then
    local password; password="$(cut -d: -f5- "$PGPASSFILE")"
    "${psql[@]}" -c "create role $ROLE login password '${password//\'/\'\'}'" >/dev/null
  fi
  for db in mlflow trials; do
    [ -n "$("${psql[@]}" -tAc "select 1 from pg_database where datname='$db'")" ] \
      || "${psql[@]}" -c "create database $db owner $ROLE" >/dev/null
  done
}

start() {
  start_postgres
  local pg="postgresql://$ROLE@127.0.0.1:$PG_PORT"
  mkdir -p "$TEAM_DIR/artifacts" "$TEAM_DIR/dask"
  spawn mlflow "$VENV_BIN/mlflow" server --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 \
    --backend-store-uri "$pg/mlflow" --artifacts-destination "$TEAM_DIR/artifacts"
  spawn scheduler "$VENV_BIN/dask" scheduler --host 127.0.0.1 --port "$DASK_PORT" --no-dashboard
  wait_for scheduler 60 port_open "$DASK_PORT"
  for i in $(seq "$WORKERS"); do
    spawn "worker$i" "$VENV_BIN/dask" worker "tcp://127.0.0.1:$DASK_PORT" --name "worker$i" --nworkers 1 \
      --nthreads 1 --no-dashboard --host 127.0.0.1 --local-directory "$TEAM_DIR/dask"
  done
  wait_for mlflow 120 mlflow_up
  "$VENV_BIN/python" - "tcp://127.0.0.1:$DASK_PORT" "$WORKERS" <<'EOF' || { say "dask workers did not join"; exit 1; }
import sys
from distributed import Client
with Client(sys.argv[1], timeout=30) as client:
    client.wait_for_workers(int(sys.argv[2]), timeout=60)
EOF
  cat > "$TEAM_DIR/team.env" <<EOF
export TRACKING_URI=http://127.0.0.1:$MLFLOW_PORT
export TRIALS_STORAGE=$pg/trials
export DASK_SCHEDULER=tcp://127.0.0.1:$DASK_PORT
export PGPASSFILE=$PGPASSFILE
EOF
  cat "$TEAM_DIR/team.env"
  say "up; use: regression-lab train --tracking-uri \$TRACKING_URI; regression-lab tune --tracking-uri" \
      "\$TRACKING_URI --storage \$TRIALS_STORAGE --scheduler \$DASK_SCHEDULER (source $TEAM_DIR/team.env)"
}

stop() {
  local name pids=()
  for name in worker{1..16} scheduler mlflow; do  # all at once: each takes seconds to shut down
    alive "$name" || { rm -f "$TEAM_DIR/$name.pid"; continue; }
    pids+=("$(cat "$TEAM_DIR/$name.pid")")
    kill -TERM -- "-${pids[-1]}" 2>/dev/null || kill -TERM "${pids[-1]}" 2>/dev/null || true
  done
  local grace=60; [ "${1:-}" = --purge ] && grace=8  # quarter seconds; purging keeps nothing worth waiting for
  for _ in $(seq "$grace"); do
    local left=0 pid
    for pid in "${pids[@]}"; do if kill -0 "$pid" 2>/dev/null; then left=1; fi; done
    [ "$left" = 0 ] && break; sleep 0.25
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  rm -f "$TEAM_DIR"/*.pid
  local bin data
  if bin="$(pg_bin)" && [ -f "$TEAM_DIR/pgdata.path" ]; then
    data="$(cat "$TEAM_DIR/pgdata.path")"
    as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1 && as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    if [ "${1:-}" = --purge ]; then rm -rf "$data"; fi
  fi
  if [ "${1:-}" = --purge ]; then rm -rf "$TEAM_DIR"; fi
  say "stopped"
}

stop_mlflow() {  # only the tracking server, as a restart or a crash would (`start` brings it back)
  alive mlflow || { rm -f "$TEAM_DIR/mlflow.pid"; return 0; }
  local pid; pid="$(cat "$TEAM_DIR/mlflow.pid")"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$TEAM_DIR/mlflow.pid"
  say "mlflow server stopped; scripts/team.sh start brings it back"
}

status() {
  local name
  for name in mlflow scheduler worker{1..16}; do
    [ -f "$TEAM_DIR/$name.pid" ] || continue
    if alive "$name"; then echo "$name running (pid $(cat "$TEAM_DIR/$name.pid"))"; else echo "$name stopped"; fi
  done
  [ -f "$TEAM_DIR/team.env" ] && cat "$TEAM_DIR/team.env"
  return 0
}

case "${1:-start}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  stop-mlflow) stop_mlflow ;;
  status) status ;;
  *) echo "usage: scripts/team.sh [start|stop [--purge]|stop-mlflow|status]" >&2; exit 2 ;;
esac
