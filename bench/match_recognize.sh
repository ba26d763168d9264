#!/usr/bin/env bash
# MATCH_RECOGNIZE per CPU-second: the datagen 'transactions' table (5 users, amounts cycling
# 50, 175, 300, 425 per user) into a blackhole sink, at parallelism 1, three ways:
#   scan    — the same rows through a filter (the cost of reading and sinking them)
#   simple  — PATTERN (A B C) whose DEFINEs read only the current row (plain conditions)
#   iter    — PATTERN (S UP+ D) with PREV(…) (iterative conditions on the partial match)
# Reports the CPU seconds (user + sys, best of two runs) and rows per CPU-second.
#
# usage: bench/match_recognize.sh [ROWS]     (build first: cargo build --release -p streamcore-cli)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-2000000}
bin=${STREAMCORE_BIN:-target/release/streamcore}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ddl="CREATE TABLE tx (user_id STRING, amount BIGINT, event_time TIMESTAMP(3),
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND)
WITH ('connector' = 'datagen', 'kind' = 'transactions', 'number-of-rows' = '$rows', 'rows-per-second' = '0');
CREATE TABLE sink (user_id STRING, a BIGINT, b BIGINT) WITH ('connector' = 'blackhole');"

cat >"$tmp/scan.sql" <<SQL
$ddl
INSERT INTO sink SELECT user_id, amount, amount FROM tx WHERE amount > 1000;
SQL
cat >"$tmp/simple.sql" <<SQL
$ddl
INSERT INTO sink SELECT * FROM tx MATCH_RECOGNIZE (
  PARTITION BY user_id ORDER BY event_time
  MEASURES A.amount AS a, C.amount AS b
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (A B C)
  DEFINE A AS amount < 100, B AS amount > 100, C AS amount > 200);
SQL
cat >"$tmp/iter.sql" <<SQL
$ddl
INSERT INTO sink SELECT * FROM tx MATCH_RECOGNIZE (
  PARTITION BY user_id ORDER BY event_time
  MEASURES S.amount AS a, LAST(UP.amount) AS b
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (S UP+ D)
  DEFINE UP AS UP.amount > PREV(UP.amount), D AS D.amount < PREV(D.amount));
SQL

cpu() { # command... → CPU seconds
  /usr/bin/time -f "%U %S" -o "$tmp/time" "$@" >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; return 1; }
  awk '{ printf "%.2f", $1 + $2 }' "$tmp/time"
}
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b) ? a : b }'; }

printf "%-7s %10s %14s\n" query cpu_s rows_per_cpu_s
for q in scan simple iter; do
  a=$(cpu "$bin" sql -p 1 "$tmp/$q.sql")
  b=$(cpu "$bin" sql -p 1 "$tmp/$q.sql")
  s=$(min "$a" "$b")
  printf "%-7s %10s %14.0f\n" "$q" "$s" "$(awk -v r="$rows" -v s="$s" 'BEGIN { print r / s }')"
done
