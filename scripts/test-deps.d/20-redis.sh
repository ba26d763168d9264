#!/usr/bin/env bash
# Redis for the streamcore-connectors `redis` tests: installs Debian's `redis-server` package if
# missing and runs a server of its own, daemonized, with
#
#   address      127.0.0.1:63790        (STREAMCORE_REDIS_PORT overrides the port)
#   persistence  none (no RDB snapshots, no AOF): a cache for tests
#   files        /var/tmp/streamcore-redis/ (pid file, log)
#
# The tests use database 0 with keys under a per-test prefix, and fail (not skip) with a
# message naming this script when nothing answers on the port.
# Idempotent: a second run finds the server answering PING and returns at once.
set -euo pipefail

PORT="${STREAMCORE_REDIS_PORT:-63790}"
BASE=/var/tmp/streamcore-redis

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "installing redis-server (apt-get)" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq redis-server redis-tools >/dev/null
fi

if redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG; then
  exit 0
fi

mkdir -p "$BASE"
redis-server --bind 127.0.0.1 --port "$PORT" --daemonize yes \
  --save "" --appendonly no --protected-mode yes \
  --dir "$BASE" --pidfile "$BASE/redis.pid" --logfile "$BASE/redis.log"
for _ in $(seq 1 50); do
  if redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG; then
    echo "redis-server answering on 127.0.0.1:$PORT" >&2
    exit 0
  fi
  sleep 0.1
done
echo "error: redis-server did not answer on 127.0.0.1:$PORT (log: $BASE/redis.log)" >&2
exit 1
