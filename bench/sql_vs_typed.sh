#!/usr/bin/env bash
# Nexmark per CPU-second: each query as written in the benchmark's Flink SQL
# (crates/streamcore-sql/tests/nexmark/, run by `streamcore sql` into a blackhole sink) next to
# the hand-written typed query (`streamcore nexmark`), on the same generator, at parallelism 1.
# Runs interleaved (typed, SQL, typed, SQL, … RUNS times each, default 3) and reports the CPU
# seconds (user + sys, from /usr/bin/time, in 10 ms steps) of the fastest run of each, and
# their ratio: on a shared machine absolute times drift, the ratio measured in one run is the
# figure (a query of 0.05 s moves by 0.1–0.2 from one run to the next: use more EVENTS).
#
# MEASURE=instructions counts instructions executed instead (valgrind's cachegrind, `I refs`,
# every thread; one run each, default EVENTS 200000). They do not drift with the machine's
# load as CPU times do (runs of one binary on one input agree to about 1 %: the threads' waits
# differ; run it alone, as two valgrinds sharing the cores fill batches differently), so small
# changes can be measured on a busy machine. They do not see memory stalls: a change that
# moves data between threads or caches (q20's join) is measured in CPU time as well. Valgrind
# runs the program about 50× slower.
#
# usage: [RUNS=n] [MEASURE=cpu|instructions] bench/sql_vs_typed.sh [EVENTS] [QUERY...]
#        (build first: cargo build --release -p streamcore-cli; instructions need valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
measure=${MEASURE:-cpu}
case $measure in
  cpu) events=${1:-2000000}; runs=${RUNS:-3}; unit=cpu_s ;;
  instructions) events=${1:-200000}; runs=1; unit=instr ;;
  *) echo "MEASURE is cpu or instructions, not '$measure'" >&2; exit 2 ;;
esac
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
instructions() { # command... → instructions executed
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$@" \
    2>"$tmp/err" >/dev/null || { cat "$tmp/err" >&2; return 1; }
  awk '/I *refs:/ { gsub(",", "", $4); print $4 }' "$tmp/err"
}
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b) ? a : b }'; }

printf "%-5s %14s %14s %8s\n" query "typed_$unit" "sql_$unit" sql/typed
for q in $queries; do
  sed -e "s/\${TPS}/10000/" -e "s/\${EVENTS_NUM}/$events/" -e "s/\${PERSON_PROPORTION}/1/" \
      -e "s/\${AUCTION_PROPORTION}/3/" -e "s/\${BID_PROPORTION}/46/" "$corpus/ddl_gen.sql" >"$tmp/$q.sql"
  cat "$corpus/ddl_views.sql" "$corpus/$q.sql" >>"$tmp/$q.sql"
  t=1e300
  s=1e300
  for _ in $(seq "$runs"); do
    t=$(min "$t" "$($measure "$bin" nexmark --query "$q" --events "$events" -p 1)")
    s=$(min "$s" "$($measure "$bin" sql -p 1 "$tmp/$q.sql")")
  done
  printf "%-5s %14s %14s %8.2f\n" "$q" "$t" "$s" "$(awk -v s="$s" -v t="$t" 'BEGIN { print s / t }')"
done
