#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, once (later runs find it):
# - cmake and the C headers librdkafka is built with (the `kafka` feature builds it from
#   source: Debian's librdkafka is too old for the brokers we test against);
# - tansu, a Kafka-protocol broker in Rust, built from its crates.io source into
#   ~/.cache/streamcore-tools/tansu/bin/tansu (about 10 minutes on 2 cores the first time, then
#   cached; docs/testing.md has the numbers). The Kafka tests start it themselves on 127.0.0.1
#   (a free port, SQLite storage in a temp dir) and find it there: nothing to add to PATH.
#
# The broker build is pinned: the crate's checksum, our own lock file scripts/tansu/Cargo.lock
# (tansu's published lock with its yanked packages moved to non-yanked semver-compatible
# versions; see docs/testing.md), `--locked`, only the `libsql` storage feature (SQLite: all
# the tests use), and a light release profile. The cache is keyed by that recipe: changing any
# of it (or build_tansu below) rebuilds the broker.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

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
# sha256 of tansu-0.6.0.crate (the `cksum` of its crates.io index entry).
TANSU_SHA256=4fdd85473ec265140488cf8d55e82b844f5c051c8916fabdd4a71156ac053f6d
TANSU_FEATURES=libsql
TANSU_LOCK="$here/tansu/Cargo.lock"
# A test broker needs no full optimisation: opt-level 1 without LTO or debug info builds in a
# fraction of the time. Lints are capped as for any crates.io build (the crate is built as a
# local package here), whatever RUSTFLAGS says.
TANSU_BUILD_ENV=(
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1
  CARGO_PROFILE_RELEASE_LTO=off
  CARGO_PROFILE_RELEASE_DEBUG=0
  CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
  "RUSTFLAGS=--cap-lints allow"
)
root="${HOME}/.cache/streamcore-tools/tansu"
work="${TMPDIR:-/tmp}/streamcore-tansu-build"

# Fetches the tansu crate (cargo's download cache, else crates.io), checks its checksum,
# unpacks it with our lock file and builds the binary into $root/bin.
build_tansu() {
  local crate="$work/tansu-$TANSU_VERSION.crate" src="$work/tansu-$TANSU_VERSION" cached=""
  mkdir -p "$work" "$root/bin"
  for f in "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"tansu-$TANSU_VERSION.crate"; do
    [ -f "$f" ] && cached="$f"
  done
  if [ -n "$cached" ]; then
    cp "$cached" "$crate"
  else
    curl -fsSL --retry 3 -o "$crate" "https://static.crates.io/crates/tansu/tansu-$TANSU_VERSION.crate"
  fi
  if ! echo "$TANSU_SHA256  $crate" | sha256sum --check --quiet - >/dev/null 2>&1; then
    echo "error: $crate does not have the sha256 of tansu $TANSU_VERSION ($TANSU_SHA256)" >&2
    return 1
  fi
  rm -rf "$src"
  tar -xzf "$crate" -C "$work"
  cp "$TANSU_LOCK" "$src/Cargo.lock"
  (cd "$src" && env "${TANSU_BUILD_ENV[@]}" CARGO_TARGET_DIR="$work/target" \
    cargo build --release --locked --bin tansu --features "$TANSU_FEATURES")
  install -m 755 "$work/target/release/tansu" "$root/bin/tansu.new"
  mv -f "$root/bin/tansu.new" "$root/bin/tansu"
}

# The cache key: everything the binary is built from.
recipe=$({
  printf '%s\n' "$TANSU_VERSION" "$TANSU_SHA256" "$TANSU_FEATURES" "${TANSU_BUILD_ENV[@]}"
  declare -f build_tansu
  cat "$TANSU_LOCK"
} | sha256sum | cut -d' ' -f1)

if [ -x "$root/bin/tansu" ] && [ "$(cat "$root/recipe" 2>/dev/null)" = "$recipe" ] &&
  "$root/bin/tansu" --version 2>/dev/null | grep -qF "$TANSU_VERSION"; then
  :
else
  echo "building tansu $TANSU_VERSION (features: $TANSU_FEATURES) into $root/bin (once; about 10 minutes on 2 cores)" >&2
  rm -f "$root/recipe"
  build_tansu
  if ! "$root/bin/tansu" --version 2>/dev/null | grep -qF "$TANSU_VERSION"; then
    echo "error: $root/bin/tansu was built but \`tansu --version\` does not report $TANSU_VERSION" >&2
    exit 1
  fi
  echo "$recipe" >"$root/recipe"
  echo "tansu $TANSU_VERSION built: $root/bin/tansu (the Kafka tests find it there)" >&2
fi

# The other services the tests use (PostgreSQL, Redis, an S3-compatible server, a browser):
# each has its own script in scripts/test-deps.d/, run in name order. Each installs its
# Debian or Python packages once and starts its server on 127.0.0.1 if it is not running.
for step in "$here"/test-deps.d/*.sh; do
  [ -e "$step" ] || continue
  bash "$step"
done
