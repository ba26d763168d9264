#!/usr/bin/env bash
# Nexmark per CPU-second: each query as written in the benchmark's Flink SQL
# (crates/streamcore-sql/tests/nexmark/, run by `streamcore sql` into a blackhole sink) next to
# the hand-written typed query (`streamcore nexmark`), on the same generator, at parallelism 1.
# Runs interleaved (typed, SQL, typed, SQL, … RUNS times each, default 3) and reports the CPU
# seconds (user + sys, from /usr/bin/time, in 10 ms steps) of the fastest run of each, and
# their ratio: on a shared machine absolute times drift, the ratio measured in one run is the
# figure (a query of 0.05 s moves by 0.1–0.2 from one run to the next: use more EVENTS).
#
# usage: [RUNS=n] bench/sql_vs_typed.sh [EVENTS] [QUERY...]
#        (build first: cargo build --release -p streamcore-cli)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-2000000}
shift || true
queries=${*:-q0 q1 q2 q3 q4 q5 q7 q8 q9 q11 q14 q15 q16 q17 q18 q19 q20 q21 q22}
bin=${STREAMCORE_BIN:-target/release/streamcore}
corpus=crates/streamcore-sql/tests/nexmark
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cpu() { # command... → CPU seconds
  /usr/bin/time -f "%U %S" -o "$tmp/time" "$@" >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; return 1; }
  awk '{ printf "%.2f", $1 + $2 }' "$tmp/time"
}
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b) ? a : b }'; }

printf "%-5s %10s %10s %8s\n" query typed_cpu_s sql_cpu_s sql/typed
for q in $queries; do
  sed -e "s/\${TPS}/10000/" -e "s/\${EVENTS_NUM}/$events/" -e "s/\${PERSON_PROPORTION}/1/" \
      -e "s/\${AUCTION_PROPORTION}/3/" -e "s/\${BID_PROPORTION}/46/" "$corpus/ddl_gen.sql" >"$tmp/$q.sql"
  cat "$corpus/ddl_views.sql" "$corpus/$q.sql" >>"$tmp/$q.sql"
  t=999999
  s=999999
  for _ in $(seq "${RUNS:-3}"); do
    t=$(min "$t" "$(cpu "$bin" nexmark --query "$q" --events "$events" -p 1)")
    s=$(min "$s" "$(cpu "$bin" sql -p 1 "$tmp/$q.sql")")
  done
  printf "%-5s %10s %10s %8.2f\n" "$q" "$t" "$s" "$(awk -v s="$s" -v t="$t" 'BEGIN { print s / t }')"
done
