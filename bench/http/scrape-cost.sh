#!/usr/bin/env bash
# The cost of serving a job's metrics (docs/benchmarks.md, "Serving metrics"): the demo job
# with --http, not scraped, vs scraped once a second (/metrics, as Prometheus would), vs
# polled like the dashboard (three API calls a second), interleaved A B C A B C … so that the
# machine's drift hits every mode alike. Prints one line per run and the medians.
#
#   bench/http/scrape-cost.sh [BINARY] [RUNS] [EVENTS]
set -euo pipefail
bin="${1:-target/release/streamcore}"
runs="${2:-7}"
events="${3:-40000000}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

run() { # mode -> events/s
  local mode="$1" port=$((20000 + RANDOM % 20000))
  "$bin" demo --events "$events" -p 2 --output /dev/null --metrics-json \
    --http "127.0.0.1:$port" 2>"$tmp/err" &
  local pid=$!
  if [ "$mode" != none ]; then
    # Poll until the job is gone.
    while kill -0 "$pid" 2>/dev/null; do
      sleep 1
      if [ "$mode" = scrape ]; then
        curl -s -o /dev/null "http://127.0.0.1:$port/metrics" || true
      else
        for p in /api/v1/jobs/demo /api/v1/jobs/demo/subtasks /api/v1/jobs/demo/watermarks; do
          curl -s -o /dev/null "http://127.0.0.1:$port$p" || true
        done
      fi
    done
  fi
  wait "$pid"
  python3 - "$tmp/err" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
start = text.index("{")
print(round(json.loads(text[start:])["events_per_second"]))
PY
}

declare -A all
for i in $(seq 1 "$runs"); do
  for mode in none scrape dashboard; do
    r="$(run "$mode")"
    all[$mode]+="$r "
    echo "run $i $mode $r events/s"
  done
done
for mode in none scrape dashboard; do
  median="$(printf '%s\n' ${all[$mode]} | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
  echo "median $mode $median events/s (runs: ${all[$mode]})"
done
