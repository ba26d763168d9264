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

/// Sorted CSV rows, without the header.
fn rows(path: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn a_generated_file_gives_the_same_results_as_the_generator() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_streamcore"))
            .arg("nexmark")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["--generate", events.to_str().unwrap(), "--events", "30000"]);
    assert_eq!(
        std::fs::read_to_string(&events).unwrap().lines().count(),
        30_000
    );
    // A stateless query, a regular join and a window: same rows from the file as from the
    // generator (nothing in the file is late for the 4 s watermark).
    for q in ["q2", "q3", "q11"] {
        let from_file = dir.path().join(format!("{q}-file.csv"));
        let generated = dir.path().join(format!("{q}-gen.csv"));
        run(&[
            "--query",
            q,
            "--input",
            events.to_str().unwrap(),
            "--output",
            from_file.to_str().unwrap(),
        ]);
        run(&[
            "--query",
            q,
            "--events",
            "30000",
            "--output",
            generated.to_str().unwrap(),
        ]);
        assert_eq!(rows(&from_file), rows(&generated), "{q}");
        assert!(!rows(&generated).is_empty(), "{q}");
    }
}
