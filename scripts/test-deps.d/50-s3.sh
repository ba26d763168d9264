#!/usr/bin/env bash
# An S3-compatible server for the object-store checkpoint tests (crates/streamcore-object-store,
# the CLI's crash and Kafka hand-over tests on s3://): moto's server with only its S3 backend
# (`moto[s3]` plus the Flask it serves with, pinned below; the `server` extra would add every
# AWS service's dependencies), installed from PyPI into a venv under
# ~/.cache/streamcore-tools/s3-venv, and run as
#
#   address      127.0.0.1:9090          (STREAMCORE_S3_PORT overrides the port)
#   credentials  any (moto does not check signatures; the tests use test/test)
#   region       us-east-1
#   buckets      created by each test (an unsigned `PUT /BUCKET`), in memory: a restarted
#                server starts empty
#   log          /var/tmp/streamcore-s3/server.log
#
# moto answers a conditional create (`PUT` with `If-None-Match: *`) on an existing key with 412
# Precondition Failed, as S3 does: what the checkpoint manifest's atomic commit relies on
# (docs/decisions.md says why moto). Idempotent: a second run finds the pinned version
# installed and the server answering, and returns in well under a second.
set -euo pipefail

PORT="${STREAMCORE_S3_PORT:-9090}"
MOTO_VERSION=5.2.6
PACKAGES=("moto[s3]==$MOTO_VERSION" "flask==3.1.3" "flask-cors==6.0.5")
VENV="${HOME}/.cache/streamcore-tools/s3-venv"
BASE=/var/tmp/streamcore-s3
LOG="$BASE/server.log"

answering() {
  # Any HTTP answer on the port (the bucket list) means the server is up.
  curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/"
}

if [ ! -x "$VENV/bin/moto_server" ] || [ "$(cat "$VENV/.streamcore-moto" 2>/dev/null)" != "${PACKAGES[*]}" ]; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
    echo "installing python3-venv and curl (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq python3 python3-venv curl >/dev/null
  fi
  echo "installing ${PACKAGES[*]} into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PACKAGES[@]}"
  echo "${PACKAGES[*]}" >"$VENV/.streamcore-moto"
fi

if ! answering; then
  mkdir -p "$BASE"
  # Detached from this shell (setsid): the server outlives the install script.
  setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 </dev/null &
  for _ in $(seq 1 100); do
    answering && break
    sleep 0.2
  done
  if ! answering; then
    echo "error: the S3 server (moto) did not start on 127.0.0.1:$PORT; see $LOG" >&2
    exit 1
  fi
fi
echo "s3 (moto $MOTO_VERSION): http://127.0.0.1:$PORT (any credentials, region us-east-1; log $LOG)" >&2
