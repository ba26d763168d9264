#!/usr/bin/env bash
# Side-by-side Nexmark run: streamcore and Flink (PyFlink, which bundles Flink; Java 17) over
# the same generated JSON-lines file, results compared row by row, throughputs printed.
#
# Usage: [PARALLELISM=2] bench/flink/run.sh [EVENTS] [QUERIES...]   e.g. bench/flink/run.sh 1000000 q0 q1 q2
# Needs: python3 with venv, java 17, network access to PyPI on the first run (installs
# apache-flink into bench/flink/.venv).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
events="${1:-1000000}"
shift || true
queries=("$@")
[ ${#queries[@]} -gt 0 ] || queries=(q0 q1 q2 q3 q7 q8 q11 q14 q22)
work="${WORK:-$here/work}"
parallelism="${PARALLELISM:-2}"
mkdir -p "$work"

if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install -q "apache-flink==1.20.3"
fi
py="$here/.venv/bin/python"

cargo build --release -q -p streamcore-cli --manifest-path "$root/Cargo.toml"
sc="$root/target/release/streamcore"
input="$work/nexmark-$events.jsonl"
[ -s "$input" ] || "$sc" nexmark --generate "$input" --events "$events"

status=0
printf '%-5s %12s %12s %12s %8s  %s\n' query streamcore_s flink_s rows ratio result
for q in "${queries[@]}"; do
  # Both times are of the job alone: streamcore's from its own report, Flink's measured in the
  # Python driver around the query's execution (JVM start-up excluded, job submission included).
  sc_out=$("$sc" nexmark --query "$q" --parallelism "$parallelism" --input "$input" --output "$work/streamcore_$q.csv" 2>&1 >/dev/null)
  sc_s=$(echo "$sc_out" | sed -n 's/.* events in \([0-9.]*\) s.*/\1/p' | head -1)
  flink_out=$("$py" "$here/flink_query.py" --query "$q" --parallelism "$parallelism" --input "$input" --output "$work/flink_$q.csv")
  flink_s=$(echo "$flink_out" | sed -n 's/.*elapsed_s=\([0-9.]*\).*/\1/p')
  rows=$(echo "$flink_out" | sed -n 's/.*rows=\([0-9]*\).*/\1/p')
  if "$py" "$here/compare.py" "$work/streamcore_$q.csv" "$work/flink_$q.csv" > "$work/compare_$q.txt"; then
    result=same
  else
    result="DIFFERENT (see $work/compare_$q.txt)"
    status=1
  fi
  ratio=$(echo "scale=1; $flink_s / $sc_s" | bc)
  printf '%-5s %12.2f %12.2f %12s %7sx  %s\n' "$q" "$sc_s" "$flink_s" "$rows" "$ratio" "$result"
done
exit $status
