//! `streamcore nexmark`: runs q1 on 10,000 generated events and checks the CSV it writes.

use std::process::Command;

#[test]
fn nexmark_q1_writes_csv() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q1.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_streamcore"))
        .args(["nexmark", "--query", "q1", "--events", "10000", "--output"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    // 46 of every 50 events are bids.
    assert!(stderr.contains("9200 output rows"), "stderr: {stderr}");
    assert!(stderr.contains("events/s"), "stderr: {stderr}");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("auction,bidder,price,dateTime,extra"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 9200);
    // `price` is DECIMAL(23, 3), `dateTime` is `YYYY-MM-DD HH:MM:SS.fff`.
    let fields: Vec<&str> = rows[0].split(',').collect();
    assert!(fields[2].len() > 4 && fields[2].as_bytes()[fields[2].len() - 4] == b'.');
    assert_eq!(fields[3].len(), 23, "{}", rows[0]);
    assert!(fields[3].starts_with("2015-07-15 00:00:"), "{}", rows[0]);
}

#[test]
fn nexmark_rejects_unknown_queries() {
    let out = Command::new(env!("CARGO_BIN_EXE_streamcore"))
        .args(["nexmark", "--query", "q99", "--events", "10"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown query"));
}

#[test]
fn nexmark_updating_query_writes_its_final_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q4.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_streamcore"))
        .args(["nexmark", "--query", "q4", "--events", "20000", "--output"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("id,final"));
    // One row per category (10..=14) in the final table.
    let mut ids: Vec<i64> = lines
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, vec![10, 11, 12, 13, 14]);
    assert!(
        stderr.contains("5 rows in the final table"),
        "stderr: {stderr}"
    );
}
