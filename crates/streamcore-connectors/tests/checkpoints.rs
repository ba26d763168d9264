//! Checkpoints through files: a JSON-lines input cut into many splits, a keyed rolling sum, and
//! the exactly-once directory sink. The job is cancelled mid-run and restored — also with
//! another parallelism — and the committed part files must hold every result exactly once.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use streamcore::checkpoint::{CheckpointConfig, RestoreFrom};
use streamcore::{Job, JobConfig, StreamError};
use streamcore_connectors::{JsonLinesSink, JsonLinesSource};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    value: i64,
}

const N: i64 = 20_000;

fn job(input: &Path, out: &Path) -> Job {
    job_into(input, |s| s.sink(JsonLinesSink::dir(out)))
}

/// The job with the sink `sink` attaches.
fn job_into(input: &Path, sink: impl FnOnce(streamcore::Stream<(String, u64, i64)>)) -> Job {
    let mut job = Job::new("running-sums");
    let readings = job.source(
        "in",
        JsonLinesSource::<Reading>::typed(input.to_str().unwrap()).min_split_bytes(8192),
    );
    sums(readings, sink);
    job
}

/// Rolling count and sum per sensor, handed to `sink`.
fn sums(
    readings: streamcore::Stream<Reading>,
    sink: impl FnOnce(streamcore::Stream<(String, u64, i64)>),
) {
    let results = readings
        // Slow enough that checkpoints happen while the input is read.
        .inspect(|_| std::thread::sleep(Duration::from_micros(20)))
        .key_by(|r: &Reading| r.sensor.clone())
        .aggregate(
            |_| (0u64, 0i64),
            |acc, r: Reading| {
                acc.0 += 1;
                acc.1 += r.value;
            },
            |sensor, acc| (sensor.clone(), acc.0, acc.1),
        );
    sink(results);
}

fn config(ckpt: &Path, p: usize, restore: Option<RestoreFrom>) -> JobConfig {
    let mut c = CheckpointConfig::new(ckpt).interval(Duration::from_millis(10));
    c.restore = restore;
    JobConfig::default()
        .parallelism(p)
        .batch_size(50)
        .checkpoints(c)
}

/// Every committed `(sensor, count, sum)`, sorted. With `finished`, also checks that no
/// uncommitted (in-progress) file is left.
fn committed(out: &Path, finished: bool) -> Vec<(String, u64, i64)> {
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(out).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".inprogress") {
            assert!(!finished, "left behind: {name}");
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            rows.push(serde_json::from_str(line).unwrap());
        }
    }
    rows.sort();
    rows
}

/// What the rolling sums must show whatever order parallel readers delivered the readings
/// in: per sensor, the counts 1..=n each exactly once (a lost or replayed reading breaks the
/// sequence), and the total sum on the last.
fn check(rows: &[(String, u64, i64)], context: &str) {
    let mut totals: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    for i in 0..N {
        let e = totals.entry(format!("s{}", i % 13)).or_default();
        e.0 += 1;
        e.1 += i;
    }
    let mut by_sensor: BTreeMap<&str, Vec<(u64, i64)>> = BTreeMap::new();
    for (sensor, count, sum) in rows {
        by_sensor.entry(sensor).or_default().push((*count, *sum));
    }
    assert_eq!(by_sensor.len(), totals.len(), "{context}: sensors");
    for (sensor, (n, total)) in &totals {
        let mut seen = by_sensor[sensor.as_str()].clone();
        seen.sort();
        let counts: Vec<u64> = seen.iter().map(|r| r.0).collect();
        assert!(
            counts == (1..=*n).collect::<Vec<_>>(),
            "{context}: {sensor} has {} results for {n} readings",
            counts.len()
        );
        assert_eq!(seen.last().unwrap().1, *total, "{context}: {sensor} total");
    }
}

#[test]
fn a_file_job_cancelled_and_restored_commits_each_result_once() {
    for (p1, p2) in [(2, 2), (3, 1), (1, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        for i in 0..N {
            writeln!(f, r#"{{"sensor":"s{}","value":{i}}}"#, i % 13).unwrap();
        }
        drop(f);
        let (out, ckpt) = (dir.path().join("out"), dir.path().join("ckpt"));
        let handle = job(&input, &out).start(config(&ckpt, p1, None)).unwrap();
        let started = Instant::now();
        while handle.metrics().checkpoints.map_or(0, |c| c.completed) < 3 {
            assert!(started.elapsed() < Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(2));
        }
        handle.cancel();
        assert!(matches!(handle.join(), Err(StreamError::Cancelled)));
        let partial = committed(&out, false).len();
        assert!(
            partial < N as usize,
            "the first run was cut short ({partial})"
        );
        job(&input, &out)
            .run(config(&ckpt, p2, Some(RestoreFrom::Latest)))
            .unwrap();
        let got = committed(&out, true);
        assert_eq!(got.len(), N as usize, "parallelism {p1} then {p2}");
        check(&got, &format!("parallelism {p1} then {p2}"));
    }
}

#[test]
fn a_single_file_sink_refuses_to_run_with_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::new("one-file");
    job.source("g", streamcore::source::Generator::new(|i| i).bounded(10))
        .sink(JsonLinesSink::file(dir.path().join("out.jsonl")));
    let err = job
        .run(config(&dir.path().join("ckpt"), 1, None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("write to a directory"), "{err}");
}

#[test]
fn the_csv_directory_sink_is_exactly_once_too() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    for i in 0..N {
        writeln!(f, r#"{{"sensor":"s{}","value":{i}}}"#, i % 13).unwrap();
    }
    drop(f);
    let (out, ckpt) = (dir.path().join("out"), dir.path().join("ckpt"));
    // A struct, so that the CSV files have a header row (tuples have no field names).
    #[derive(Clone, Serialize, Deserialize)]
    struct Row {
        sensor: String,
        count: u64,
        sum: i64,
    }
    let csv_job = || {
        job_into(&input, |s| {
            s.map(|(sensor, count, sum)| Row { sensor, count, sum })
                .sink(streamcore_connectors::CsvSink::dir(&out))
        })
    };
    let handle = csv_job().start(config(&ckpt, 2, None)).unwrap();
    let started = Instant::now();
    while handle.metrics().checkpoints.map_or(0, |c| c.completed) < 3 {
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(2));
    }
    handle.cancel();
    assert!(handle.join().is_err());
    csv_job()
        .run(config(&ckpt, 2, Some(RestoreFrom::Latest)))
        .unwrap();
    let mut rows: Vec<(String, u64, i64)> = Vec::new();
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        assert!(!path.to_string_lossy().ends_with(".inprogress"));
        // Every part file has its own header.
        let mut reader = csv::Reader::from_path(&path).unwrap();
        assert_eq!(reader.headers().unwrap(), vec!["sensor", "count", "sum"]);
        for row in reader.deserialize::<Row>() {
            let row = row.unwrap();
            rows.push((row.sensor, row.count, row.sum));
        }
    }
    rows.sort();
    assert_eq!(rows.len(), N as usize);
    check(&rows, "csv");
}

#[test]
fn a_csv_source_restores_from_its_file_positions() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let mut files: Vec<_> = (0..4)
        .map(|f| {
            let mut w = std::io::BufWriter::new(
                std::fs::File::create(input.join(format!("part-{f}.csv"))).unwrap(),
            );
            writeln!(w, "sensor,value").unwrap();
            w
        })
        .collect();
    for i in 0..N {
        writeln!(files[(i % 4) as usize], "s{},{i}", i % 13).unwrap();
    }
    drop(files);
    let (out, ckpt) = (dir.path().join("out"), dir.path().join("ckpt"));
    let csv_job = || {
        let mut job = Job::new("csv-sums");
        let readings = job.source(
            "in",
            streamcore_connectors::CsvSource::<Reading>::new(input.to_str().unwrap()),
        );
        sums(readings, |s| s.sink(JsonLinesSink::dir(&out)));
        job
    };
    let handle = csv_job().start(config(&ckpt, 2, None)).unwrap();
    let started = Instant::now();
    while handle.metrics().checkpoints.map_or(0, |c| c.completed) < 3 {
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(2));
    }
    handle.cancel();
    assert!(handle.join().is_err());
    assert!(committed(&out, false).len() < N as usize);
    csv_job()
        .run(config(&ckpt, 3, Some(RestoreFrom::Latest)))
        .unwrap();
    let got = committed(&out, true);
    assert_eq!(got.len(), N as usize);
    check(&got, "csv source, parallelism 2 then 3");
}
