#!/usr/bin/env bash
# PostgreSQL for the streamcore-connectors `postgres` tests: installs Debian's `postgresql`
# package if missing and runs a cluster of its own, as the `postgres` user, with
#
#   data directory  /var/tmp/streamcore-pg/data   (log: /var/tmp/streamcore-pg/server.log)
#   address         127.0.0.1:54329               (STREAMCORE_PG_PORT overrides the port)
#   settings        wal_level=logical, max_prepared_transactions=64, max_replication_slots=16
#   role            streamcore, password `streamcore`, LOGIN REPLICATION, owner of the
#                   database `streamcore` (a test-only cluster on loopback; password auth: scram)
#
# Idempotent: a second run finds the cluster answering and only re-checks the role (under a
# second). Safe to run as root (it must be: it drops to `postgres` for the server itself).
set -euo pipefail

PORT="${STREAMCORE_PG_PORT:-54329}"
BASE=/var/tmp/streamcore-pg
DATA="$BASE/data"
RUN="$BASE/run"
LOG="$BASE/server.log"

as_postgres() { (cd / && runuser -u postgres -- "$@"); }

pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

if [ -z "$(pgbin)" ] || [ ! -x "$(pgbin)/initdb" ]; then
  echo "installing postgresql (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi
BIN="$(pgbin)"

if [ "$(id -u)" -ne 0 ] && [ "$(id -un)" != postgres ]; then
  echo "error: $0 must run as root (it runs the server as the postgres user)" >&2
  exit 1
fi

mkdir -p "$BASE"
chown postgres:postgres "$BASE"
if [ ! -s "$DATA/PG_VERSION" ]; then
  echo "creating the test cluster in $DATA" >&2
  as_postgres mkdir -p "$DATA" "$RUN"
  as_postgres "$BIN/initdb" -D "$DATA" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
fi
as_postgres mkdir -p "$RUN"
# Settings live in their own file, rewritten every run (so a changed port takes effect).
as_postgres tee "$DATA/streamcore.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$RUN'
wal_level = logical
max_prepared_transactions = 64
max_replication_slots = 16
max_wal_senders = 16
max_connections = 200
shared_buffers = 128MB
password_encryption = scram-sha-256
EOF
grep -q "^include_if_exists = 'streamcore.conf'" "$DATA/postgresql.conf" ||
  echo "include_if_exists = 'streamcore.conf'" | as_postgres tee -a "$DATA/postgresql.conf" >/dev/null

if ! "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  # A server of this cluster still running on another port (settings changed): restart it.
  if as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    as_postgres "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
  fi
  rm -f "$DATA/postmaster.pid" 2>/dev/null || true
  as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null
fi

as_postgres "$BIN/psql" -q -v ON_ERROR_STOP=1 -h "$RUN" -p "$PORT" -U postgres -d postgres <<'EOF'
SELECT 'CREATE ROLE streamcore LOGIN REPLICATION'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'streamcore') \gexec
ALTER ROLE streamcore WITH LOGIN REPLICATION PASSWORD 'streamcore';
SELECT 'CREATE DATABASE streamcore OWNER streamcore'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'streamcore') \gexec
EOF
echo "postgresql: 127.0.0.1:$PORT (role streamcore, database streamcore; log $LOG)" >&2
