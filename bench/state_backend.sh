#!/usr/bin/env bash
# The state backend benchmarks of docs/benchmarks.md ("State backends"):
#  1. keyed rolling aggregation over many distinct keys: events/s and peak RSS, memory backend
#     (state that fits memory) vs LSM backend (a 1 GB budget);
#  2. checkpoints of 10 M keys with 1 % changing between them: full vs incremental bytes and
#     time, and the restore time.
# Usage: bench/state_backend.sh [DATA_DIR]  (LSM trees and checkpoints go to DATA_DIR, default
# /var/tmp; they are deleted afterwards). Sizes: MEM_KEYS, LSM_KEYS, CKPT_KEYS, BUDGET.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-/var/tmp}
MEM_KEYS=${MEM_KEYS:-10000000}
LSM_KEYS=${LSM_KEYS:-100000000}
CKPT_KEYS=${CKPT_KEYS:-10000000}
BUDGET=${BUDGET:-1gb}
mkdir -p "$DATA"
cargo build --release -p streamcore --features lsm --example state_backend
BIN=${CARGO_TARGET_DIR:-target}/release/examples/state_backend
rss() { grep "Maximum resident" "$1" | awk '{printf "peak RSS %.0f MB\n", $6/1024}'; }
for run in "memory $MEM_KEYS" "lsm $MEM_KEYS" "lsm $LSM_KEYS"; do
  set -- $run
  /usr/bin/time -v "$BIN" --backend "$1" --keys "$2" --budget "$BUDGET" --dir "$DATA" 2> /tmp/state_backend.time
  rss /tmp/state_backend.time
done
for backend in memory lsm; do
  STREAMCORE_BENCH_BACKEND=$backend STREAMCORE_BENCH_KEYS=$CKPT_KEYS STREAMCORE_BENCH_DIR=$DATA \
    cargo test --release -p streamcore --features lsm --lib -- --ignored --nocapture checkpoint_benchmark 2>&1 \
    | grep -E "backend=|checkpoint [0-9]|restore of"
done
