//! Whole jobs through files: JSON lines split and read in parallel, CSV round trips, globs,
//! and errors that name the file and position.

use serde::{Deserialize, Serialize};
use std::io::Write;
use streamcore::sink::CollectSink;
use streamcore::{ErrorPolicy, Job, JobConfig, StreamError};
use streamcore_connectors::{CsvSink, CsvSource, JsonLinesSink, JsonLinesSource};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    value: i64,
}

fn write_readings(path: &std::path::Path, range: std::ops::Range<i64>) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in range {
        writeln!(f, r#"{{"sensor":"s{}","value":{i}}}"#, i % 13).unwrap();
    }
}

#[test]
fn one_large_file_is_read_by_all_readers_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.jsonl");
    write_readings(&path, 0..50_000);
    for p in [1, 3, 4] {
        let mut job = Job::new("split-read");
        let out = job
            .source(
                "in",
                JsonLinesSource::<Reading>::typed(path.to_str().unwrap()).min_split_bytes(4096),
            )
            .collect();
        let summary = job.run(JobConfig::default().parallelism(p)).unwrap();
        let mut values: Vec<i64> = out.take().into_iter().map(|r| r.value).collect();
        values.sort();
        assert_eq!(values, (0..50_000).collect::<Vec<_>>(), "parallelism {p}");
        let source = &summary.operators[0];
        assert_eq!(source.parallelism, p);
        assert_eq!(source.events_out, 50_000);
    }
}

#[test]
fn glob_reads_every_matching_file_and_writes_part_files() {
    let dir = tempfile::tempdir().unwrap();
    write_readings(&dir.path().join("a.jsonl"), 0..100);
    write_readings(&dir.path().join("b.jsonl"), 100..250);
    std::fs::write(dir.path().join("ignored.txt"), "not json").unwrap();
    let out_dir = dir.path().join("out");
    let mut job = Job::new("glob");
    job.source(
        "in",
        JsonLinesSource::<Reading>::typed(format!("{}/*.jsonl", dir.path().display())),
    )
    .filter(|r| r.value % 2 == 0)
    .sink(JsonLinesSink::dir(&out_dir));
    job.run(JobConfig::default().parallelism(2)).unwrap();

    let mut back = Job::new("read-back");
    let out = back
        .source(
            "parts",
            JsonLinesSource::<Reading>::typed(out_dir.to_str().unwrap()),
        )
        .collect();
    back.run(JobConfig::default().parallelism(2)).unwrap();
    let mut values: Vec<i64> = out.take().into_iter().map(|r| r.value).collect();
    values.sort();
    assert_eq!(values, (0..250).filter(|v| v % 2 == 0).collect::<Vec<_>>());
    assert!(out_dir.join("part-0.jsonl").exists() && out_dir.join("part-1.jsonl").exists());
}

#[test]
fn bad_line_in_a_later_split_is_named_by_byte_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    write_readings(&path, 0..5000);
    let mut text = std::fs::read_to_string(&path).unwrap();
    let offset = text.len();
    text.push_str("{\"sensor\":\"s1\",\"value\":\"high\"}\n");
    std::fs::write(&path, text).unwrap();

    let mut job = Job::new("bad");
    job.source(
        "in",
        JsonLinesSource::<Reading>::typed(path.to_str().unwrap()).min_split_bytes(1024),
    )
    .collect();
    let err = job.run(JobConfig::default().parallelism(2)).unwrap_err();
    let StreamError::BadInput { origin, reason } = &err else {
        panic!("expected bad input, got {err}")
    };
    assert!(
        origin.ends_with(&format!("in.jsonl byte offset {offset}")),
        "{origin}"
    );
    assert!(reason.contains("field `value`"), "{reason}");
}

#[test]
fn dead_letters_keep_the_raw_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    std::fs::write(
        &path,
        b"{\"sensor\":\"a\",\"value\":1}\n\xff\xfe\n{\"sensor\":\"b\"}\n{\"sensor\":\"c\",\"value\":3}\n",
    )
    .unwrap();
    let mut job = Job::new("dlq");
    let out = job
        .source(
            "in",
            JsonLinesSource::<Reading>::typed(path.to_str().unwrap()),
        )
        .collect();
    let (dlq, letters) = CollectSink::new();
    job.dead_letters(dlq);
    let summary = job
        .run(
            JobConfig::default()
                .parallelism(1)
                .error_policy(ErrorPolicy::DeadLetter),
        )
        .unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(summary.events_failed, 2);
    assert_eq!(summary.events_dead_lettered, 2);
    let letters = letters.take();
    assert!(
        letters[0]
            .origin
            .ends_with("in.jsonl line 2 (byte offset 25)"),
        "{:?}",
        letters[0]
    );
    assert!(letters[0].reason.contains("UTF-8"), "{:?}", letters[0]);
    assert_eq!(letters[1].raw, r#"{"sensor":"b"}"#);
    assert!(
        letters[1].reason.contains("missing field `value`"),
        "{:?}",
        letters[1]
    );
}

#[test]
fn csv_round_trip_with_a_header_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("out.csv");
    let mut job = Job::new("to-csv");
    job.from_vec(
        "readings",
        (0..1000)
            .map(|i| Reading {
                sensor: format!("s,{}", i % 3), // a comma, to be quoted
                value: i,
            })
            .collect(),
    )
    .sink(CsvSink::file(&csv_path));
    job.run(JobConfig::default().parallelism(3).batch_size(64))
        .unwrap();
    let text = std::fs::read_to_string(&csv_path).unwrap();
    assert_eq!(text.matches("sensor,value").count(), 1, "one header");
    assert!(text.starts_with("sensor,value\n"));

    let mut back = Job::new("from-csv");
    let out = back
        .source("csv", CsvSource::<Reading>::new(csv_path.to_str().unwrap()))
        .collect();
    back.run(JobConfig::default().parallelism(2)).unwrap();
    let mut got = out.take();
    got.sort_by_key(|r| r.value);
    assert_eq!(got.len(), 1000);
    assert_eq!(
        got[7],
        Reading {
            sensor: "s,1".into(),
            value: 7
        }
    );
}

#[test]
fn csv_bad_field_names_the_column_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.csv");
    std::fs::write(&path, "sensor,value\na,1\nb,two\n").unwrap();
    let mut job = Job::new("bad-csv");
    job.source("csv", CsvSource::<Reading>::new(path.to_str().unwrap()))
        .collect();
    let err = job.run(JobConfig::default().parallelism(1)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("in.csv line 3"), "{msg}");
    assert!(msg.contains("field `value`"), "{msg}");
}
