#!/usr/bin/env bash
# Side-by-side Nexmark run: streamcore and Flink (PyFlink, which bundles Flink 1.20; Java 17)
# over the same generated JSON-lines file.
#
# 1. Results: both engines write each query's result as CSV — for an updating query the final
#    table (streamcore: its changelog applied as it arrives; Flink: its changelog written as
#    debezium-json and applied to a multiset by flink_query.py) — compared row by row as
#    multisets by compare.py.
# 2. With PERF=1, per-core figures: each engine runs the query again without writing results
#    (streamcore counts the rows; Flink writes to its blackhole sink, as the Nexmark benchmark
#    does), and reports the CPU seconds of the job (user + system, all threads; Flink's JVM
#    from planning to the end of the job) and the peak resident memory of the process; events
#    per CPU-second = events / CPU seconds. streamcore also runs on its built-in generator
#    (same number of events, no file). Same parallelism for both.
#
# Usage: [PARALLELISM=2] [PERF=1] [WORK=dir] [FLINK_PYTHON=python] [SKIP_BUILD=1]
#        bench/flink/run.sh [EVENTS] [QUERIES...]
#   e.g. bench/flink/run.sh 2000000              (every compared query, results only)
#        PERF=1 bench/flink/run.sh 5000000 q4 q5 (results and per-core figures)
# Needs: python3 with venv, java 17, network access to PyPI on the first run (installs
# apache-flink into bench/flink/.venv unless FLINK_PYTHON names a python that has it).
# Writes a tab-separated summary to $WORK/summary-EVENTS.tsv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
events="${1:-1000000}"
shift || true
queries=("$@")
# Every query with a deterministic result that Flink 1.20 can run: not q6 (an OVER window
# over a retracting input, FLINK-19059) nor q12 (processing-time windows).
[ ${#queries[@]} -gt 0 ] || queries=(q0 q1 q2 q3 q4 q5 q7 q8 q9 q10 q11 q13 q14 q15 q16 q17 q18 q19 q20 q21 q22)
work="${WORK:-$here/work}"
parallelism="${PARALLELISM:-2}"
perf="${PERF:-0}"
mkdir -p "$work"

py="${FLINK_PYTHON:-$here/.venv/bin/python}"
if [ ! -x "$py" ]; then
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install -q "apache-flink==1.20.3"
  py="$here/.venv/bin/python"
fi

[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -q -p streamcore-cli --manifest-path "$root/Cargo.toml"
sc="${CARGO_TARGET_DIR:-$root/target}/release/streamcore"
input="$work/nexmark-$events.jsonl"
[ -s "$input" ] || "$sc" nexmark --generate "$input" --events "$events"

# `field NAME TEXT`: the number after `NAME=` in TEXT.
field() { echo "$2" | sed -n "s/.*$1=\([0-9.]*\).*/\1/p" | head -1; }
# streamcore's report: job seconds, CPU seconds, peak MB.
sc_secs() { echo "$1" | sed -n 's/.* events in \([0-9.]*\) s.*/\1/p' | head -1; }
sc_cpu() { echo "$1" | sed -n 's/.*cpu time \([0-9.]*\) s.*/\1/p' | head -1; }
sc_peak() { echo "$1" | sed -n 's/.*peak memory: \([0-9]*\) MB.*/\1/p' | head -1; }
per_cpu() { echo "$events $1" | awk '{ printf "%.0f", ($2 > 0) ? $1 / $2 : 0 }'; }

summary="$work/summary-$events.tsv"
printf 'query\tresult\trows\tsc_file_s\tflink_s' > "$summary"
[ "$perf" = 1 ] && printf '\tsc_gen_ev_per_cpu_s\tsc_file_ev_per_cpu_s\tflink_ev_per_cpu_s\tratio_file\tsc_gen_peak_mb\tsc_file_peak_mb\tflink_peak_mb' >> "$summary"
printf '\n' >> "$summary"

status=0
for q in "${queries[@]}"; do
  # 1. Results.
  sc_out=$("$sc" nexmark --query "$q" --parallelism "$parallelism" --input "$input" --output "$work/streamcore_$q.csv" 2>&1 >/dev/null)
  flink_out=$("$py" "$here/flink_query.py" --query "$q" --parallelism "$parallelism" --input "$input" --output "$work/flink_$q.csv") || true
  rows=$(field rows "$flink_out")
  if "$py" "$here/compare.py" "$work/streamcore_$q.csv" "$work/flink_$q.csv" > "$work/compare_$q.txt"; then
    result=same
  else
    result="DIFFERENT(see $work/compare_$q.txt)"
    status=1
  fi
  line="$q\t$result\t$rows\t$(sc_secs "$sc_out")\t$(field elapsed_s "$flink_out")"
  # 2. Per-core figures, without writing results.
  if [ "$perf" = 1 ]; then
    gen=$("$sc" nexmark --query "$q" --parallelism "$parallelism" --events "$events" 2>&1 >/dev/null)
    file=$("$sc" nexmark --query "$q" --parallelism "$parallelism" --input "$input" 2>&1 >/dev/null)
    flink=$("$py" "$here/flink_query.py" --query "$q" --parallelism "$parallelism" --input "$input" --blackhole) || true
    gen_rate=$(per_cpu "$(sc_cpu "$gen")")
    file_rate=$(per_cpu "$(sc_cpu "$file")")
    flink_rate=$(per_cpu "$(field cpu_s "$flink")")
    ratio=$(echo "$file_rate $flink_rate" | awk '{ printf "%.1f", ($2 > 0) ? $1 / $2 : 0 }')
    line="$line\t$gen_rate\t$file_rate\t$flink_rate\t$ratio\t$(sc_peak "$gen")\t$(sc_peak "$file")\t$(field peak_mb "$flink")"
  fi
  printf "$line\n" >> "$summary"
  printf "$line\n"
done
echo "summary: $summary"
column -t -s "$(printf '\t')" "$summary"
exit $status
