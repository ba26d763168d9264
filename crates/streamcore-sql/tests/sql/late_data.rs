//! Late-data tables: a table with `'late-data.table' = 't'` sends its rows that reach an
//! event-time window aggregate after all their windows closed to the table `t` (instead of
//! dropping them), counted in the job's `late_records` / `late_redirected` metrics; `t` is an
//! ordinary table, read back here with a query.
//!
//! The source emits one row per batch with a watermark after each, so the order of the rows
//! decides which are late (deterministic at parallelism 1).

use crate::texts;
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
    let mut rows = texts(apply_to(session.collect(plan, config()).unwrap()));
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

/// Runs the SELECT `sql` over `script`'s tables: its rows in order and the job's summary.
fn select_in_order(
    session: &mut Session,
    sql: &str,
) -> (Vec<String>, streamcore::metrics::JobSummary) {
    let out = session.execute_script(sql).unwrap();
    let Outcome::Query(plan) = &out[0] else {
        panic!("a query")
    };
    let mut job = Job::new("select");
    let mut rows = None;
    session
        .plan_select(&mut job, plan, |s| rows = Some(s.collect()))
        .unwrap();
    let summary = job.run(config()).unwrap();
    (texts(apply_to(rows.unwrap().take())), summary)
}

/// The OVER aggregation and the temporal sort the two tests below run, with their rows.
fn over_and_sort(sort: &str, sorted: &[&str]) -> [(String, Vec<String>); 2] {
    [
        (
            "SELECT auction, price, SUM(price) OVER (PARTITION BY auction ORDER BY ts
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) FROM bids"
                .to_string(),
            ["1 10 10", "1 20 30", "2 40 40", "2 60 100"]
                .map(String::from)
                .to_vec(),
        ),
        (
            sort.to_string(),
            sorted.iter().map(|s| s.to_string()).collect(),
        ),
    ]
}

/// Runs `sql` over the tables of `text`: the session, its rows (sorted unless the query
/// sorts them itself), and its late rows counted and redirected.
fn run_with_late_rows(text: &str, sql: &str) -> (Session, Vec<String>, u64, u64) {
    let mut session = Session::new();
    session.execute_script(text).unwrap();
    session.pending.clear();
    let (mut got, summary) = select_in_order(&mut session, sql);
    if !sql.contains("ORDER BY ts") {
        got.sort();
    }
    let redirected = summary.operators.iter().map(|o| o.late_redirected).sum();
    (session, got, summary.events_late, redirected)
}

/// OVER aggregations and temporal sorts send their late rows (behind the watermark when they
/// arrive) to the table's late-data table, counted in `late_records` and `late_redirected`.
#[test]
fn over_aggregations_and_temporal_sorts_send_late_rows_to_the_late_data_table() {
    // In event-time order (10:00:01, :12, :15, :19).
    let cases = over_and_sort(
        "SELECT * FROM bids ORDER BY ts",
        &[
            "1 10 2026-12-05 10:00:01.000",
            "1 20 2026-12-05 10:00:12.000",
            "2 40 2026-12-05 10:00:15.000",
            "2 60 2026-12-05 10:00:19.000",
        ],
    );
    for (sql, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (mut session, got, late, redirected) = run_with_late_rows(&script(dir.path()), &sql);
        assert_eq!(got, expected, "{sql}");
        assert_eq!(late, 2, "the two late rows are counted: {sql}");
        assert_eq!(redirected, 2, "and sent to the late-data table: {sql}");
        assert_eq!(
            query(&mut session, "SELECT * FROM late_bids"),
            vec![
                "1 30 2026-12-05 10:00:03.000",
                "1 50 2026-12-05 10:00:05.000"
            ],
            "{sql}"
        );
    }
}

/// Without a late-data table, OVER aggregations and temporal sorts drop late rows, as Flink
/// does, and count them in `late_records`.
#[test]
fn without_a_late_data_table_late_rows_are_dropped_and_counted() {
    let cases = over_and_sort(
        "SELECT price FROM bids ORDER BY ts",
        &["10", "20", "40", "60"],
    );
    for (sql, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let text = script(dir.path()).replace("'late-data.table' = 'late_bids', ", "");
        let (_, got, late, redirected) = run_with_late_rows(&text, &sql);
        assert_eq!(got, expected, "{sql}");
        assert_eq!(late, 2, "the two late rows are counted: {sql}");
        assert_eq!(redirected, 0, "{sql}");
    }
}

/// A late-data table must take the late rows of a temporal sort: the sorted result's.
#[test]
fn a_temporal_sort_s_late_rows_must_fit_the_late_data_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = Session::new();
    session.execute_script(&script(dir.path())).unwrap();
    session.pending.clear();
    let err = session
        .execute_script("SELECT price FROM bids ORDER BY ts")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("late-data table `late_bids` of `bids` has columns (auction BIGINT, price BIGINT, ts TIMESTAMP(3)), the late rows have (price BIGINT)"),
        "{err}"
    );
}

/// `'allowed-lateness'` on the table: a fired window still takes late rows for that long, each
/// re-firing it as an update of its result (`-U`/`+U`); rows later than that go to the
/// late-data table. The same with `SET 'table.exec.emit.allow-lateness'` (Flink's key).
#[test]
fn allowed_lateness_updates_a_fired_window_and_sends_later_rows_to_the_late_table() {
    let sql = "SELECT auction, COUNT(*), window_start
               FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND))
               GROUP BY auction, window_start, window_end";
    for (table_option, set) in [
        ("'allowed-lateness' = '4 s', ", ""),
        ("", "SET 'table.exec.emit.allow-lateness' = '4 s';"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut session = Session::new();
        let text = format!(
            "{set}{}",
            script(dir.path()).replace(
                "'late-data.table' = 'late_bids', ",
                &format!("'late-data.table' = 'late_bids', {table_option}")
            )
        );
        // The tables only: the script's INSERT into CSV files takes no updates.
        let tables = &text[..text.find("INSERT INTO counts").unwrap()];
        session.execute_script(tables).unwrap();
        let out = session.execute_script(sql).unwrap();
        let Outcome::Query(plan) = &out[0] else {
            panic!("a query")
        };
        assert!(
            plan.updating,
            "a window taking late rows updates its results"
        );
        let mut job = Job::new("lateness");
        let mut rows = None;
        session
            .plan_select(&mut job, plan, |s| rows = Some(s.collect()))
            .unwrap();
        let summary = job.run(config()).unwrap();
        let changes: Vec<String> = rows
            .unwrap()
            .take()
            .iter()
            .map(|c| {
                format!(
                    "{} {} {} {}",
                    c.kind().short(),
                    c.row().values[0],
                    c.row().values[1],
                    c.row().values[2]
                )
            })
            .collect();
        // The windows left open fire at the end of the input, in no particular order.
        let mut changes = changes;
        changes[3..].sort();
        // 10:00:03 arrives after [10:00:00, 10:00:10) fired (the watermark at 10:00:12) but
        // within 4 s of its end: the window re-fires with 2. 10:00:05 arrives when the
        // watermark is at 10:00:15, past 10:00:14: too late, to the late-data table.
        assert_eq!(
            changes,
            vec![
                "+I 1 1 2026-12-05 10:00:00.000",
                "-U 1 1 2026-12-05 10:00:00.000",
                "+U 1 2 2026-12-05 10:00:00.000",
                "+I 1 1 2026-12-05 10:00:10.000",
                "+I 2 2 2026-12-05 10:00:10.000",
            ],
            "{table_option}{set}"
        );
        let redirected: u64 = summary.operators.iter().map(|o| o.late_redirected).sum();
        assert_eq!(redirected, 1, "one row too late");
        assert_eq!(
            query(&mut session, "SELECT * FROM late_bids"),
            vec!["1 50 2026-12-05 10:00:05.000"]
        );
    }
}

#[test]
fn allowed_lateness_must_be_a_duration() {
    let mut session = Session::new();
    let err = session
        .execute_script("SET 'table.exec.emit.allow-lateness' = 'soon'")
        .unwrap_err()
        .to_string();
    assert!(err.contains("soon"), "{err}");
}

/// Clicks in the order the `values` source emits them (one per batch, a watermark after
/// each): 10:00:03 and 10:00:05 come after the watermark passed 10:00:12.
const LATE_CLICKS: &str = "1,2026-12-05 10:00:01
1,2026-12-05 10:00:12
1,2026-12-05 10:00:03
1,2026-12-05 10:00:15
1,2026-12-05 10:00:05";

/// Runs `INSERT INTO joined SELECT a.ts, b.ts FROM clicks a JOIN clicks b ON a.ad = b.ad AND
/// {condition}` over [`LATE_CLICKS`] (one reader for both inputs, so the watermark reaches
/// them in step and the late rows are certain), late rows to `late_clicks`, both tables in
/// `dir`.
fn clicks_self_join(dir: &std::path::Path, condition: &str) -> (Session, streamcore::JobSummary) {
    let d = dir.display();
    let mut session = Session::new();
    session
        .execute_script(&format!(
            "CREATE TABLE clicks (ad BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)
             WITH ('connector' = 'values', 'late-data.table' = 'late_clicks', 'data' = '{LATE_CLICKS}');
             CREATE TABLE late_clicks (ad BIGINT, ts TIMESTAMP(3))
             WITH ('connector' = 'filesystem', 'path' = '{d}/late', 'format' = 'json');
             CREATE TABLE joined (a TIMESTAMP(3), b TIMESTAMP(3))
             WITH ('connector' = 'filesystem', 'path' = '{d}/joined', 'format' = 'csv');
             INSERT INTO joined
             SELECT a.ts, b.ts FROM clicks a JOIN clicks b ON a.ad = b.ad AND {condition};"
        ))
        .unwrap();
    let mut job = Job::new("late-join");
    session.plan_inserts(&mut job).unwrap();
    let summary = job.run(config()).unwrap();
    (session, summary)
}

#[test]
fn late_rows_of_an_interval_join_go_to_their_inputs_late_tables() {
    // A self-join: both inputs come from one reader, so the watermark reaches the join's two
    // inputs in step and the late rows are certain — 10:00:03 and 10:00:05 from each input,
    // both bound for `late_clicks` (one sink, the two inputs' late rows as one stream).
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let (mut session, summary) = clicks_self_join(
            dir.path(),
            "a.ts BETWEEN b.ts AND b.ts + INTERVAL '100' SECOND",
        );
        let late = query(&mut session, "SELECT * FROM late_clicks");
        let at = |s: &str| format!("1 2026-12-05 10:00:{s}.000");
        assert_eq!(
            late,
            [at("03"), at("03"), at("05"), at("05")],
            "round {round}"
        );
        assert_eq!(summary.events_late, 4);
        let join = summary
            .operators
            .iter()
            .find(|o| o.name.starts_with("IntervalJoin"))
            .expect("the join's metrics");
        assert_eq!((join.late_records, join.late_redirected), (4, 4));
        // The on-time clicks (01, 12, 15) pair among themselves: a.ts within 100 s after b.ts.
        let t = |s: &str| format!("2026-12-05 10:00:{s}.000");
        let mut pairs = Vec::new();
        for a in ["01", "12", "15"] {
            for b in ["01", "12", "15"] {
                if b <= a {
                    pairs.push(format!("{} {}", t(a), t(b)));
                }
            }
        }
        pairs.sort();
        assert_eq!(query(&mut session, "SELECT * FROM joined"), pairs);
    }
}

#[test]
fn late_rows_of_an_expiring_regular_join_go_to_their_input_s_late_table() {
    // `a.ts <= b.ts + 100 s` bounds the right rows (a `b` row matches `a` rows until its time
    // plus 100 s), so a left row behind the watermark is late: it could have matched a right
    // row already gone. 10:00:03 and 10:00:05 of the left input go to `late_clicks`; the right
    // input's rows are never late (left rows are kept), so they all join.
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let (mut session, summary) =
            clicks_self_join(dir.path(), "a.ts <= b.ts + INTERVAL '100' SECOND");
        let at = |s: &str| format!("1 2026-12-05 10:00:{s}.000");
        assert_eq!(
            query(&mut session, "SELECT * FROM late_clicks"),
            [at("03"), at("05")],
            "round {round}"
        );
        assert_eq!(summary.events_late, 2);
        let join = summary
            .operators
            .iter()
            .find(|o| o.name == "Join")
            .expect("the join's metrics");
        assert_eq!((join.late_records, join.late_redirected), (2, 2));
        let t = |s: &str| format!("2026-12-05 10:00:{s}.000");
        let mut pairs = Vec::new();
        for a in ["01", "12", "15"] {
            for b in ["01", "03", "05", "12", "15"] {
                pairs.push(format!("{} {}", t(a), t(b)));
            }
        }
        pairs.sort();
        assert_eq!(query(&mut session, "SELECT * FROM joined"), pairs);
    }
}

#[test]
fn late_probes_of_a_temporal_join_go_to_the_late_data_table() {
    // A self-join of a versioned table (one reader, so the lateness is certain): payments 3
    // and 5 come after the watermark passed 10:00:12 and go to `late_payments`; the others
    // join the version current at their time — their own row.
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let mut session = Session::new();
        session
            .execute_script(&format!(
                "CREATE TABLE payments (id BIGINT, currency VARCHAR, ts TIMESTAMP(3),
                   PRIMARY KEY (currency) NOT ENFORCED, WATERMARK FOR ts AS ts)
                 WITH ('connector' = 'values', 'late-data.table' = 'late_payments', 'data' = '1,EUR,2026-12-05 10:00:01
2,EUR,2026-12-05 10:00:12
3,EUR,2026-12-05 10:00:03
4,EUR,2026-12-05 10:00:15
5,EUR,2026-12-05 10:00:05');
                 CREATE TABLE late_payments (id BIGINT, currency VARCHAR, ts TIMESTAMP(3))
                 WITH ('connector' = 'filesystem', 'path' = '{d}/late', 'format' = 'json');
                 CREATE TABLE charged (id BIGINT, version BIGINT)
                 WITH ('connector' = 'filesystem', 'path' = '{d}/charged', 'format' = 'csv');
                 INSERT INTO charged
                 SELECT p.id, r.id FROM payments AS p
                 JOIN payments FOR SYSTEM_TIME AS OF p.ts AS r ON p.currency = r.currency;"
            ))
            .unwrap();
        let mut job = Job::new("late-temporal");
        session.plan_inserts(&mut job).unwrap();
        let summary = job.run(config()).unwrap();
        assert_eq!(
            query(&mut session, "SELECT id FROM late_payments"),
            ["3", "5"],
            "round {round}"
        );
        assert_eq!(summary.events_late, 2);
        assert_eq!(
            query(&mut session, "SELECT * FROM charged"),
            ["1 1", "2 2", "4 4"]
        );
    }
}
