//! Regular joins whose rows expire by their time bounds (`stateExpiry`), with a watermark after
//! every row (batches of one, no watermark interval), so rows are dropped while the input is
//! still being read: the result is the regular join's. Casts that change the instant (to a
//! `DATE`) bound nothing, and a `DATE` equality is no interval join.

use std::time::Duration;
use streamcore::changelog::apply_to;
use streamcore::JobConfig;
use streamcore_sql::{Outcome, Session};

/// Auctions and bids in one table (one reader: neither side runs ahead of the other), in time
/// order; auction 1 lives 10 s and auction 2 two seconds. `d` is the auction's day.
const TABLES: &str = "
CREATE TABLE events (kind VARCHAR, id BIGINT, price BIGINT, ts TIMESTAMP(3), expires TIMESTAMP(3), d DATE,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH ('connector' = 'values', 'data' = 'a,1,,2026-12-05 10:00:00,2026-12-05 10:00:10,2026-12-05
a,2,,2026-12-05 10:00:01,2026-12-05 10:00:03,2026-12-05
b,1,5,2026-12-05 10:00:02,,
b,2,6,2026-12-05 10:00:02,,
b,2,7,2026-12-05 10:00:04,,
b,1,8,2026-12-05 10:00:09,,
b,1,9,2026-12-05 10:00:11,,
b,1,10,2026-12-05 12:00:00,,
b,1,11,2026-12-05 23:00:00,,
b,1,12,2026-12-06 01:00:00,,');
CREATE VIEW auctions AS SELECT id, ts, expires, d FROM events WHERE kind = 'a';
CREATE VIEW bids AS SELECT id AS auction, price, ts FROM events WHERE kind = 'b';
";

fn rows(sql: &str) -> Vec<String> {
    let mut session = Session::new();
    session.execute_script(TABLES).unwrap();
    let out = session.execute_script(sql).unwrap();
    let Outcome::Query(plan) = &out[0] else {
        panic!("a query")
    };
    let config = JobConfig::default()
        .parallelism(1)
        .batch_size(1)
        .watermark_interval(Duration::ZERO);
    let mut rows = crate::texts(apply_to(session.collect(plan, config).unwrap()));
    rows.sort();
    rows
}

fn explain(sql: &str) -> String {
    let mut session = Session::new();
    session.execute_script(TABLES).unwrap();
    match &session.execute_script(&format!("EXPLAIN {sql}")).unwrap()[0] {
        Outcome::Explain(text) => text.clone(),
        _ => panic!("an explanation"),
    }
}

#[test]
fn bounded_rows_expire_while_the_input_is_read_and_lose_no_match() {
    let sql = "SELECT a.id, b.price FROM auctions a JOIN bids b
               ON a.id = b.auction AND b.ts BETWEEN a.ts AND a.expires";
    assert!(explain(sql).contains("stateExpiry="), "{}", explain(sql));
    assert_eq!(rows(sql), ["1 5", "1 8", "2 6"]);
    // An offset on the bound: an hour of grace after the auction's end.
    let sql = "SELECT a.id, b.price FROM auctions a JOIN bids b
               ON a.id = b.auction AND b.ts BETWEEN a.ts AND a.expires + INTERVAL '2' HOUR";
    assert!(explain(sql).contains("stateExpiry="), "{}", explain(sql));
    assert_eq!(rows(sql), ["1 10", "1 5", "1 8", "1 9", "2 6", "2 7"]);
}

#[test]
fn a_cast_that_changes_the_instant_bounds_nothing() {
    // Every bid of the auction's day: the bound is the end of the day, not its midnight.
    let sql = "SELECT a.id, b.price FROM auctions a JOIN bids b
               ON a.id = b.auction AND CAST(b.ts AS DATE) <= a.d";
    assert!(!explain(sql).contains("stateExpiry"), "{}", explain(sql));
    assert_eq!(
        rows(sql),
        ["1 10", "1 11", "1 5", "1 8", "1 9", "2 6", "2 7"]
    );
    // Equal days are no interval join of zero width.
    let sql = "SELECT a.id, b.price FROM auctions a JOIN bids b
               ON a.id = b.auction AND CAST(a.ts AS DATE) = CAST(b.ts AS DATE)";
    assert!(!explain(sql).contains("IntervalJoin"), "{}", explain(sql));
    assert_eq!(
        rows(sql),
        ["1 10", "1 11", "1 5", "1 8", "1 9", "2 6", "2 7"]
    );
}
