//! The feature-gated connectors as SQL tables, against the real servers the test set-up
//! starts (scripts/install-test-deps.sh): an updating query upserted into PostgreSQL (`jdbc`;
//! keyed as the query's groups, and by a column its updates move; two groups sharing a key
//! for a while, there and in Redis),
//! a changelog kept in Redis, and event-time partitioned Parquet files read back by pyarrow.
//! Each check reads the result with the server's own client (`psql`, `redis-cli`, pyarrow),
//! not through streamcore.

#![cfg(any(feature = "postgres", feature = "redis", feature = "parquet"))]

use std::process::Command;
use streamcore::{Job, JobConfig};
use streamcore_sql::Session;

const ORDERS: &str = "CREATE TABLE orders (user_id VARCHAR, amount BIGINT, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH ('connector' = 'values', 'data' = 'ann,10,2026-12-05 10:00:01
bo,5,2026-12-05 11:00:02
ann,7,2026-12-05 11:30:03
cy,1,2026-12-05 12:00:04
bo,20,2026-12-05 12:10:05')";

/// Orders in which two users' totals meet: ann's is 10, then bo's reaches 10 too, then ann's
/// moves to 17 (at parallelism 1, in this order).
#[cfg(any(feature = "postgres", feature = "redis"))]
const MEETING: &str = "CREATE TABLE o (user_id VARCHAR, amount BIGINT)
WITH ('connector' = 'values', 'data' = 'ann,10
bo,5
bo,5
ann,7')";

/// Runs the script's INSERTs as one job.
fn run(script: &str) {
    run_at(script, 2);
}

/// Runs the script's INSERTs as one job at `parallelism`.
fn run_at(script: &str, parallelism: usize) {
    let mut session = Session::new();
    session
        .execute_script(script)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut job = Job::new("sql-connectors");
    session.plan_inserts(&mut job).unwrap();
    job.run(JobConfig::default().parallelism(parallelism))
        .unwrap();
}

/// Runs `sql` with PostgreSQL's own client (`psql`), as the test user: its rows, `|`-separated.
#[cfg(feature = "postgres")]
fn psql(sql: &str) -> String {
    let url = "postgresql://streamcore:streamcore@127.0.0.1:54329/streamcore";
    output(Command::new("psql").args([url, "-At", "-c", sql]), "psql")
}

/// A `jdbc` table `name` (`columns`, with a primary key) over the server's table `pg_table`.
#[cfg(feature = "postgres")]
fn jdbc_table(name: &str, columns: &str, pg_table: &str) -> String {
    std::env::set_var("STREAMCORE_SQL_TEST_PG_PASSWORD", "streamcore");
    format!(
        "CREATE TABLE {name} ({columns})
         WITH ('connector' = 'jdbc', 'url' = 'postgresql://127.0.0.1:54329/streamcore',
               'table-name' = '{pg_table}', 'username' = 'streamcore',
               'password-env' = 'STREAMCORE_SQL_TEST_PG_PASSWORD')"
    )
}

/// Runs `redis-cli` with `args` against the test server: its output.
#[cfg(feature = "redis")]
fn redis_cli(args: &[&str]) -> String {
    output(
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", "63790"])
            .args(args),
        "redis-cli",
    )
}

fn output(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what} could not run ({e}): run scripts/install-test-deps.sh"));
    assert!(
        out.status.success(),
        "{what} failed (is its server running? scripts/install-test-deps.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[cfg(feature = "postgres")]
#[test]
fn an_updating_query_is_upserted_into_postgres() {
    psql("DROP TABLE IF EXISTS sql_totals; CREATE TABLE sql_totals (user_id text PRIMARY KEY, total bigint, orders bigint)");
    run(&format!(
        "{ORDERS};
         {};
         INSERT INTO totals SELECT user_id, SUM(amount), COUNT(*) FROM orders GROUP BY user_id;",
        jdbc_table(
            "totals",
            "user_id VARCHAR, total BIGINT, orders BIGINT, PRIMARY KEY (user_id) NOT ENFORCED",
            "sql_totals"
        )
    ));
    assert_eq!(
        psql("SELECT user_id, total, orders FROM sql_totals ORDER BY user_id"),
        "ann|17|2\nbo|25|2\ncy|1|1\n"
    );
    psql("DROP TABLE sql_totals");
}

/// A user's total keyed by the total.
#[cfg(feature = "postgres")]
const BY_TOTAL: &str = "user_id VARCHAR, total BIGINT, PRIMARY KEY (total) NOT ENFORCED";

/// The same sink keyed by a column the updates move: each user's total, keyed by the total.
/// Every second order of a user changes its total, so the row of the old total must go: the
/// planner keeps the `-U` for a key that is not the aggregate's and materializes the updates
/// by the table's key, which deletes the old total's row.
#[cfg(feature = "postgres")]
#[test]
fn an_update_moving_a_row_to_another_primary_key_deletes_the_old_row() {
    psql("DROP TABLE IF EXISTS sql_by_total; CREATE TABLE sql_by_total (user_id text, total bigint PRIMARY KEY)");
    run(&format!(
        "{ORDERS};
         {};
         INSERT INTO by_total SELECT user_id, SUM(amount) FROM orders GROUP BY user_id;",
        jdbc_table("by_total", BY_TOTAL, "sql_by_total")
    ));
    assert_eq!(
        psql("SELECT user_id, total FROM sql_by_total ORDER BY user_id"),
        "ann|17\nbo|25\ncy|1\n"
    );
    psql("DROP TABLE sql_by_total");
}

/// Two of the query's keys share one of the table's for a while: ann's total is 10, then bo's
/// reaches 10 too (his row takes key 10), then ann's moves to 17. Her `-U` of 10 must not
/// delete bo's row: the updates are materialized by the table's key before the sink (each key
/// keeps its rows; ann's withdrawal removes hers, bo's stays current).
#[cfg(feature = "postgres")]
#[test]
fn two_groups_sharing_a_primary_key_for_a_while_keep_the_later_row() {
    psql("DROP TABLE IF EXISTS sql_shared; CREATE TABLE sql_shared (user_id text, total bigint PRIMARY KEY)");
    run_at(
        &format!(
            "{MEETING};
             {};
             INSERT INTO shared SELECT user_id, SUM(amount) FROM o GROUP BY user_id;",
            jdbc_table("shared", BY_TOTAL, "sql_shared")
        ),
        1,
    );
    assert_eq!(
        psql("SELECT user_id, total FROM sql_shared ORDER BY user_id"),
        "ann|17\nbo|10\n"
    );
    psql("DROP TABLE sql_shared");
}

#[cfg(feature = "postgres")]
#[test]
fn a_jdbc_table_without_a_primary_key_refuses_an_updating_query() {
    let mut session = Session::new();
    let err = session
        .execute_script(&format!(
            "{ORDERS};
             CREATE TABLE totals (user_id VARCHAR, total BIGINT)
             WITH ('connector' = 'jdbc', 'url' = 'postgresql://127.0.0.1:54329/streamcore',
                   'table-name' = 't');
             INSERT INTO totals SELECT user_id, SUM(amount) FROM orders GROUP BY user_id;"
        ))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("takes append-only rows, but the query is updating"),
        "{err}"
    );
}

#[cfg(feature = "redis")]
#[test]
fn a_changelog_is_kept_in_redis() {
    redis_cli(&["DEL", "sqltest:ann", "sqltest:bo", "sqltest:cy"]);
    run(&format!(
        "{ORDERS};
         CREATE TABLE cache (user_id VARCHAR, total BIGINT)
         WITH ('connector' = 'redis', 'url' = 'redis://127.0.0.1:63790',
               'key' = 'sqltest:{{user_id}}', 'value.column' = 'total');
         INSERT INTO cache SELECT user_id, SUM(amount) FROM orders WHERE amount > 1 GROUP BY user_id;"
    ));
    assert_eq!(redis_cli(&["GET", "sqltest:ann"]).trim(), "17");
    assert_eq!(redis_cli(&["GET", "sqltest:bo"]).trim(), "25");
    // cy's only order is filtered out: no key.
    assert_eq!(redis_cli(&["EXISTS", "sqltest:cy"]).trim(), "0");
}

/// A Redis key rendered from another column than the query's groups (each user's total as
/// the key, the user as the value): two users share a total for a while, as in the PostgreSQL
/// test above — materialized by the key's columns first, the later user keeps it.
#[cfg(feature = "redis")]
#[test]
fn two_groups_sharing_a_redis_key_for_a_while_keep_the_later_row() {
    redis_cli(&["DEL", "sqltotal:5", "sqltotal:10", "sqltotal:17"]);
    run_at(
        &format!(
            "{MEETING};
             CREATE TABLE by_total (user_id VARCHAR, total BIGINT)
             WITH ('connector' = 'redis', 'url' = 'redis://127.0.0.1:63790',
                   'key' = 'sqltotal:{{total}}', 'value.column' = 'user_id');
             INSERT INTO by_total SELECT user_id, SUM(amount) FROM o GROUP BY user_id;"
        ),
        1,
    );
    assert_eq!(redis_cli(&["GET", "sqltotal:10"]).trim(), "bo");
    assert_eq!(redis_cli(&["GET", "sqltotal:17"]).trim(), "ann");
    assert_eq!(redis_cli(&["EXISTS", "sqltotal:5"]).trim(), "0");
}

/// A Redis key rendered from two of the query's group columns (`{a}{b}`): groups `1`,`23` and
/// `12`,`3` both write `sqlab:123`. The first group's row is then withdrawn (its sum leaves
/// the `HAVING`): the key must keep the second group's row. Materialized by the rendered key,
/// not by the columns (which would see two keys, and let the withdrawal delete the shared one).
#[cfg(feature = "redis")]
#[test]
fn two_groups_rendering_one_redis_key_keep_the_live_row() {
    redis_cli(&["DEL", "sqlab:123"]);
    run_at(
        "CREATE TABLE t (a VARCHAR, b VARCHAR, x BIGINT)
         WITH ('connector' = 'values', 'data' = '1,23,5
12,3,7
1,23,6');
         CREATE TABLE by_ab (a VARCHAR, b VARCHAR, total BIGINT)
         WITH ('connector' = 'redis', 'url' = 'redis://127.0.0.1:63790',
               'key' = 'sqlab:{a}{b}', 'value.column' = 'total');
         INSERT INTO by_ab SELECT a, b, SUM(x) FROM t GROUP BY a, b HAVING SUM(x) < 10;",
        1,
    );
    assert_eq!(redis_cli(&["GET", "sqlab:123"]).trim(), "7");
}

#[cfg(feature = "parquet")]
#[test]
fn rows_go_to_event_time_partitioned_parquet_files() {
    let dir = tempfile::tempdir().unwrap();
    run(&format!(
        "{ORDERS};
         CREATE TABLE lake (user_id VARCHAR, amount BIGINT, ts TIMESTAMP(3))
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet',
               'sink.partition.time-column' = 'ts', 'sink.partition.time-pattern' = 'dt=%Y-%m-%d/hour=%H');
         INSERT INTO lake SELECT user_id, amount, ts FROM orders;",
        dir.path().display()
    ));
    let home = std::env::var("HOME").unwrap();
    let python = format!("{home}/.cache/streamcore-tools/pyarrow-venv/bin/python");
    let script = "import sys, pyarrow.dataset as ds
t = ds.dataset(sys.argv[1], format='parquet', partitioning='hive').to_table()
for r in sorted(zip(t['hour'].to_pylist(), t['user_id'].to_pylist(), t['amount'].to_pylist())):
    print(*r)";
    let got = output(
        Command::new(python).args(["-c", script]).arg(dir.path()),
        "pyarrow (scripts/test-deps.d/30-pyarrow.sh)",
    );
    assert_eq!(got, "10 ann 10\n11 ann 7\n11 bo 5\n12 bo 20\n12 cy 1\n");
}
