#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, once (later runs find it):
# - cmake and the C headers librdkafka is built with (the `kafka` feature builds it from
#   source: Debian's librdkafka is too old for the brokers we test against);
# - tansu, a Kafka-protocol broker in Rust, built from crates.io into
#   ~/.cache/streamcore-tools/tansu (12–45 minutes on 2 cores the first time, then cached).
#   The Kafka tests start it themselves on 127.0.0.1 (a free port, SQLite storage in a temp dir).
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
for pkg in libcurl4-openssl-dev libssl-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${need[*]}" >&2
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

TANSU_VERSION=0.6.0
root="${HOME}/.cache/streamcore-tools/tansu"
if ! [ -x "$root/bin/tansu" ] || ! "$root/bin/tansu" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  echo "building tansu $TANSU_VERSION into $root (once; this takes a while)" >&2
  CARGO_TARGET_DIR="${TMPDIR:-/tmp}/tansu-build" \
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql --root "$root"
fi
