#!/usr/bin/env bash
# Side-by-side Nexmark run: streamcore's typed queries, streamcore's SQL (the benchmark's Flink
# SQL as written, crates/streamcore-sql/tests/nexmark/), and Flink (PyFlink, which bundles
# Flink 1.20; Java 17), all three over the same generated JSON-lines file.
#
# 1. Results: each writes each query's result as CSV — for an updating query the final table
#    (typed streamcore: its changelog applied as it arrives; streamcore SQL: batch runtime mode,
#    whose sinks receive only the final rows; Flink: its changelog written as debezium-json and
#    applied to a multiset by flink_query.py) — compared row by row as multisets by compare.py:
#    typed against Flink, SQL against typed.
# 2. With PERF=1, per-core figures: each engine runs the query again without writing results
#    (typed streamcore counts the rows; streamcore SQL and Flink write to the blackhole sink,
#    as the Nexmark benchmark does), and reports the CPU seconds of the job (user + system, all threads; Flink's JVM
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

# `sql_script QUERY OUT_DIR`: the query's SQL as written, reading the JSON-lines file instead of
# the generator (its DDL's WITH replaced), writing CSV part files into OUT_DIR instead of the
# blackhole, in batch runtime mode (an updating query's sink gets the final table).
corpus="$root/crates/streamcore-sql/tests/nexmark"
side_home="$work/side_home"
mkdir -p "$side_home/data"
# q13's side input, as flink_query.py and nexmark's SideInputGenerator write it: `i,i`.
[ -s "$side_home/data/side_input.txt" ] || seq 0 9999 | awk '{ print $1 "," $1 }' > "$side_home/data/side_input.txt"
# With OUT_DIR empty: the query as the benchmark runs it (streaming, into its blackhole sink).
sql_script() {
  local q=$1 out=$2
  [ -z "$out" ] || echo "SET 'execution.runtime-mode' = 'batch';"
  awk -v path="$input" '
    /^\) WITH \(/ { printf ") WITH (\n  '"'"'connector'"'"' = '"'"'filesystem'"'"', '"'"'path'"'"' = '"'"'%s'"'"', '"'"'format'"'"' = '"'"'json'"'"'\n);\n", path; skip = 1; next }
    skip && /^\);/ { skip = 0; next }
    !skip' "$corpus/ddl_gen.sql"
  cat "$corpus/ddl_views.sql"
  local sink="'connector' = 'filesystem', 'path' = '$out', 'format' = 'csv'"
  if [ -z "$out" ]; then
    out="$work/sql_perf_out"
    rm -rf "$out"
    sink="'connector' = 'blackhole'"
  fi
  sed -e "s|'connector' = 'blackhole'|$sink|" \
      -e "s|'path' = 'file://\${NEXMARK_DIR}[^']*'|'path' = '$out'|" \
      -e "s|\${FLINK_HOME}|$side_home|" "$corpus/$q.sql"
}
# `cpu_of COMMAND…`: the CPU seconds (user + system) of a command, from /usr/bin/time.
cpu_of() {
  /usr/bin/time -f "%U %S" -o "$work/time.txt" "$@" >/dev/null 2>&1 || { echo 0; return; }
  awk '{ printf "%.2f", $1 + $2 }' "$work/time.txt"
}
# `sql_csv OUT_DIR HEADER_FROM CSV`: the part files under OUT_DIR as one CSV, with the header of
# HEADER_FROM (streamcore's CSV sink, like Flink's, writes no header). The values of a
# PARTITIONED BY sink's partition columns live in the directory names (`dt=…/hm=…`, escaped
# as Hive does): they are put back as the last columns of each row (q10's are its last).
sql_csv() {
  python3 - "$1" "$2" "$3" <<'PY'
import csv, os, sys, urllib.parse
root, header_from, out = sys.argv[1:]
with open(header_from, newline="") as f, open(out, "w", newline="") as o:
    o.write(f.readline())
    w = csv.writer(o, lineterminator="\n")
    for d, _, files in sorted(os.walk(root)):
        parts = [urllib.parse.unquote(p.split("=", 1)[1])
                 for p in os.path.relpath(d, root).split(os.sep) if "=" in p]
        for name in sorted(files):
            if name.startswith("part-"):
                with open(os.path.join(d, name), newline="") as f:
                    for row in csv.reader(f):
                        w.writerow(row + parts)
PY
}

# `field NAME TEXT`: the number after `NAME=` in TEXT.
field() { echo "$2" | sed -n "s/.*$1=\([0-9.]*\).*/\1/p" | head -1; }
# streamcore's report: job seconds, CPU seconds, peak MB.
sc_secs() { echo "$1" | sed -n 's/.* events in \([0-9.]*\) s.*/\1/p' | head -1; }
sc_cpu() { echo "$1" | sed -n 's/.*cpu time \([0-9.]*\) s.*/\1/p' | head -1; }
sc_peak() { echo "$1" | sed -n 's/.*peak memory: \([0-9]*\) MB.*/\1/p' | head -1; }
per_cpu() { echo "$events $1" | awk '{ printf "%.0f", ($2 > 0) ? $1 / $2 : 0 }'; }

summary="$work/summary-$events.tsv"
printf 'query\tresult\tsql_result\trows\tsc_file_s\tflink_s' > "$summary"
[ "$perf" = 1 ] && printf '\tsc_gen_ev_per_cpu_s\tsc_file_ev_per_cpu_s\tsql_file_ev_per_cpu_s\tflink_ev_per_cpu_s\tratio_file\tratio_sql_file\tsc_gen_peak_mb\tsc_file_peak_mb\tflink_peak_mb' >> "$summary"
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
  # The SQL as written, against the typed query's result.
  rm -rf "$work/sql_$q"
  sql_script "$q" "$work/sql_$q" > "$work/sql_$q.sql"
  if "$sc" sql --parallelism "$parallelism" "$work/sql_$q.sql" > "$work/sql_$q.log" 2>&1; then
    sql_csv "$work/sql_$q" "$work/streamcore_$q.csv" "$work/sql_$q.csv"
    if [ "$q" = q7 ]; then
      # q7 as written selects (auction, price, bidder, …) into a sink declared (auction,
      # bidder, price, …): the SQL writes price under `bidder`, as Flink does; the typed q7
      # writes the columns where the sink's names say (reference/pitfalls.md #2). Swapped back.
      python3 -c 'import csv,sys; w=csv.writer(sys.stdout, lineterminator="\n"); [w.writerow(r if i == 0 else [r[0], r[2], r[1]] + r[3:]) for i, r in enumerate(csv.reader(open(sys.argv[1])))]' \
        "$work/sql_$q.csv" > "$work/sql_$q.swapped.csv" && mv "$work/sql_$q.swapped.csv" "$work/sql_$q.csv"
    fi
    if "$py" "$here/compare.py" "$work/sql_$q.csv" "$work/streamcore_$q.csv" > "$work/compare_sql_$q.txt"; then
      sql_result=same
    else
      sql_result="DIFFERENT(see $work/compare_sql_$q.txt)"
      status=1
    fi
  else
    sql_result="FAILED(see $work/sql_$q.log)"
    status=1
  fi
  line="$q\t$result\t$sql_result\t$rows\t$(sc_secs "$sc_out")\t$(field elapsed_s "$flink_out")"
  # 2. Per-core figures, without writing results.
  if [ "$perf" = 1 ]; then
    gen=$("$sc" nexmark --query "$q" --parallelism "$parallelism" --events "$events" 2>&1 >/dev/null)
    file=$("$sc" nexmark --query "$q" --parallelism "$parallelism" --input "$input" 2>&1 >/dev/null)
    flink=$("$py" "$here/flink_query.py" --query "$q" --parallelism "$parallelism" --input "$input" --blackhole) || true
    gen_rate=$(per_cpu "$(sc_cpu "$gen")")
    file_rate=$(per_cpu "$(sc_cpu "$file")")
    flink_rate=$(per_cpu "$(field cpu_s "$flink")")
    # The SQL as the benchmark runs it (streaming, blackhole sink), over the same file; CPU of
    # the whole process (start-up and planning included).
    sql_script "$q" "" > "$work/sql_perf_$q.sql"
    sql_rate=$(per_cpu "$(cpu_of "$sc" sql --parallelism "$parallelism" "$work/sql_perf_$q.sql")")
    ratio=$(echo "$file_rate $flink_rate" | awk '{ printf "%.1f", ($2 > 0) ? $1 / $2 : 0 }')
    sql_ratio=$(echo "$sql_rate $flink_rate" | awk '{ printf "%.1f", ($2 > 0) ? $1 / $2 : 0 }')
    line="$line\t$gen_rate\t$file_rate\t$sql_rate\t$flink_rate\t$ratio\t$sql_ratio\t$(sc_peak "$gen")\t$(sc_peak "$file")\t$(field peak_mb "$flink")"
  fi
  printf "$line\n" >> "$summary"
  printf "$line\n"
done
echo "summary: $summary"
column -t -s "$(printf '\t')" "$summary"
exit $status
