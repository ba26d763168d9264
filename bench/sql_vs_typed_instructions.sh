#!/usr/bin/env bash
# Nexmark SQL ÷ typed in instructions executed (valgrind's cachegrind, `I refs`, every thread):
# each query as written in the benchmark's Flink SQL (crates/streamcore-sql/tests/nexmark/,
# `streamcore sql` into a blackhole sink) next to the hand-written typed query (`streamcore
# nexmark`), on the same generator, at parallelism 1. Instruction counts do not drift with the
# machine's load as CPU times do (runs of one binary on one input agree to within about 1 %:
# the threads' waits differ), so small changes can be measured on a busy machine; they do
# not see memory stalls, so a change that moves data between threads or caches (q20's join)
# is measured in CPU time as well (bench/sql_vs_typed.sh). Valgrind runs the program about
# 50× slower: use a small EVENTS (default 200000).
#
# usage: bench/sql_vs_typed_instructions.sh [EVENTS] [QUERY...]
#        (build first: cargo build --release -p streamcore-cli; needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-200000}
shift || true
queries=${*:-q0 q1 q2 q3 q4 q5 q7 q8 q9 q11 q14 q15 q16 q17 q18 q19 q20 q21 q22}
bin=${STREAMCORE_BIN:-target/release/streamcore}
corpus=crates/streamcore-sql/tests/nexmark
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

instructions() { # command... → instructions executed
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$@" \
    2>"$tmp/err" >/dev/null || { cat "$tmp/err" >&2; return 1; }
  awk '/I *refs:/ { gsub(",", "", $4); print $4 }' "$tmp/err"
}

printf "%-5s %14s %14s %8s\n" query typed_instr sql_instr sql/typed
for q in $queries; do
  sed -e "s/\${TPS}/10000/" -e "s/\${EVENTS_NUM}/$events/" -e "s/\${PERSON_PROPORTION}/1/" \
      -e "s/\${AUCTION_PROPORTION}/3/" -e "s/\${BID_PROPORTION}/46/" "$corpus/ddl_gen.sql" >"$tmp/$q.sql"
  cat "$corpus/ddl_views.sql" "$corpus/$q.sql" >>"$tmp/$q.sql"
  t=$(instructions "$bin" nexmark --query "$q" --events "$events" -p 1)
  s=$(instructions "$bin" sql -p 1 "$tmp/$q.sql")
  printf "%-5s %14s %14s %8.2f\n" "$q" "$t" "$s" "$(awk -v s="$s" -v t="$t" 'BEGIN { print s / t }')"
done
