//! Late-data tables: a table with `'late-data.table' = 't'` sends its rows that reach an
//! event-time window aggregate after all their windows closed to the table `t` (instead of
//! dropping them), counted in the job's `late_records` / `late_redirected` metrics; `t` is an
//! ordinary table, read back here with a query.
//!
//! The source emits one row per batch with a watermark after each, so the order of the rows
//! decides which are late (deterministic at parallelism 1).

use std::time::Duration;
use streamcore::changelog::apply_to;
use streamcore::{Job, JobConfig};
use streamcore_sql::{Outcome, Session};

fn script(dir: &std::path::Path) -> String {
    let dir = dir.display();
    format!(
        "CREATE TABLE bids (auction BIGINT, price BIGINT, ts TIMESTAMP(3),
           WATERMARK FOR ts AS ts)
         WITH ('connector' = 'values', 'late-data.table' = 'late_bids', 'data' = '1,10,2026-12-05 10:00:01
1,20,2026-12-05 10:00:12
1,30,2026-12-05 10:00:03
2,40,2026-12-05 10:00:15
1,50,2026-12-05 10:00:05
2,60,2026-12-05 10:00:19');
         CREATE TABLE late_bids (auction BIGINT, price BIGINT, ts TIMESTAMP(3))
         WITH ('connector' = 'filesystem', 'path' = '{dir}/late', 'format' = 'json');
         CREATE TABLE counts (auction BIGINT, n BIGINT, window_start TIMESTAMP(3))
         WITH ('connector' = 'filesystem', 'path' = '{dir}/counts', 'format' = 'csv');
         INSERT INTO counts
         SELECT auction, COUNT(*), window_start
         FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND))
         GROUP BY auction, window_start, window_end;"
    )
}

fn config() -> JobConfig {
    JobConfig::default()
        .parallelism(1)
        .batch_size(1)
        .watermark_interval(Duration::ZERO)
}

fn query(session: &mut Session, sql: &str) -> Vec<String> {
    let out = session.execute_script(sql).unwrap();
    let Outcome::Query(plan) = &out[0] else {
        panic!("a query")
    };
    let mut rows: Vec<String> = apply_to(session.collect(plan, config()).unwrap())
        .iter()
        .map(|r| {
            r.values
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn rows_behind_the_watermark_go_to_the_late_data_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = Session::new();
    session.execute_script(&script(dir.path())).unwrap();
    let mut job = Job::new("late");
    session.plan_inserts(&mut job).unwrap();
    let summary = job.run(config()).unwrap();
    // 10:00:03 and 10:00:05 come after the watermark passed 10:00:12: their window
    // [10:00:00, 10:00:10) had fired.
    assert_eq!(summary.events_late, 2, "late rows counted");
    let window = summary
        .operators
        .iter()
        .find(|o| o.late_records > 0)
        .expect("the window operator counts late rows");
    assert_eq!(
        window.late_redirected, 2,
        "and sends them to the late output"
    );

    assert_eq!(
        query(&mut session, "SELECT * FROM late_bids"),
        vec![
            "1 30 2026-12-05 10:00:03.000",
            "1 50 2026-12-05 10:00:05.000"
        ]
    );
    assert_eq!(
        query(&mut session, "SELECT * FROM counts"),
        vec![
            "1 1 2026-12-05 10:00:00.000",
            "1 1 2026-12-05 10:00:10.000",
            "2 2 2026-12-05 10:00:10.000"
        ]
    );
}

#[test]
fn a_late_data_table_must_take_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = Session::new();
    let text = script(dir.path()).replace(
        "CREATE TABLE late_bids (auction BIGINT, price BIGINT, ts TIMESTAMP(3))",
        "CREATE TABLE late_bids (auction BIGINT, price VARCHAR, ts TIMESTAMP(3))",
    );
    let err = session.execute_script(&text).unwrap_err().to_string();
    assert!(
        err.contains("late-data table `late_bids` of `bids` has columns (auction BIGINT, price VARCHAR, ts TIMESTAMP(3)), the late rows have (auction BIGINT, price BIGINT, ts TIMESTAMP(3))"),
        "{err}"
    );
}

/// OVER aggregations drop late rows, as Flink does, and count them in `late_records`.
#[test]
fn over_aggregations_count_the_late_rows_they_drop() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = Session::new();
    session.execute_script(&script(dir.path())).unwrap();
    session.pending.clear();
    let out = session
        .execute_script(
            "SELECT auction, price, SUM(price) OVER (PARTITION BY auction ORDER BY ts
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) FROM bids",
        )
        .unwrap();
    let Outcome::Query(plan) = &out[0] else {
        panic!("a query")
    };
    let mut job = Job::new("over");
    let mut rows = None;
    session
        .plan_select(&mut job, plan, |s| rows = Some(s.collect()))
        .unwrap();
    let summary = job.run(config()).unwrap();
    let mut got: Vec<String> = apply_to(rows.unwrap().take())
        .iter()
        .map(|r| format!("{} {} {}", r.values[0], r.values[1], r.values[2]))
        .collect();
    got.sort();
    assert_eq!(got, vec!["1 10 10", "1 20 30", "2 40 40", "2 60 100"]);
    assert_eq!(summary.events_late, 2, "the two late rows are counted");
}

/// `ORDER BY rowtime` (a temporal sort) emits rows in event-time order and drops the late ones,
/// as Flink does, counting them in `late_records`.
#[test]
fn a_temporal_sort_orders_by_time_and_counts_the_late_rows_it_drops() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = Session::new();
    session.execute_script(&script(dir.path())).unwrap();
    session.pending.clear();
    let out = session
        .execute_script("SELECT price FROM bids ORDER BY ts")
        .unwrap();
    let Outcome::Query(plan) = &out[0] else {
        panic!("a query")
    };
    let mut job = Job::new("sort");
    let mut rows = None;
    session
        .plan_select(&mut job, plan, |s| rows = Some(s.collect()))
        .unwrap();
    let summary = job.run(config()).unwrap();
    // In order of time, not of arrival (10:00:01, :12, :15, :19); 30 and 50 came late.
    let got: Vec<String> = apply_to(rows.unwrap().take())
        .iter()
        .map(|r| r.values[0].to_string())
        .collect();
    assert_eq!(got, vec!["10", "20", "40", "60"]);
    assert_eq!(summary.events_late, 2, "the two late rows are counted");
}
