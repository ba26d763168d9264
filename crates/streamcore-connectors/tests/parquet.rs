//! The Parquet sink: files read back by an independent reader (pyarrow, Apache Arrow's C++
//! Parquet implementation, installed by scripts/test-deps.d/30-pyarrow.sh) with every column
//! type, column and event-time partitions and each compression; nothing visible before its
//! checkpoint commits; rolling by size and time; a job writing Parquet killed with SIGKILL
//! again and again and restored until done, whose committed files hold exactly the rows of a
//! crash-free run; and bad configuration failing fast.
#![cfg(feature = "parquet")]

use arrow_array::{Array, Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use streamcore::checkpoint::{CheckpointConfig, RestoreFrom};
use streamcore::context::TaskInfo;
use streamcore::row::{ArrayType, DataType, Field, MapType, Row, Scalar, Schema};
use streamcore::{Job, JobConfig, Sink, SinkWriter};
use streamcore_connectors::parquet::{
    committed_files, ParquetCompression, ParquetSink, ParquetSinkConfig,
};
use streamcore_connectors::JsonLinesSource;

/// The venv's Python with pyarrow (scripts/test-deps.d/30-pyarrow.sh).
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("STREAMCORE_PYARROW_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    PathBuf::from(home).join(".cache/streamcore-tools/pyarrow-venv/bin/python")
}

/// Runs a Python script with pyarrow over `dir`; its stdout.
fn pyarrow(script: &str, dir: &Path) -> String {
    let py = python();
    let out = Command::new(&py)
        .arg("-c")
        .arg(script)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): run scripts/test-deps.d/30-pyarrow.sh (or scripts/install-test-deps.sh) first",
                py.display()
            )
        });
    assert!(
        out.status.success(),
        "pyarrow failed (is it installed? scripts/test-deps.d/30-pyarrow.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Reads the table under argv[1] with hive partitioning; prints one JSON object per row
/// (timestamps and dates as integers, decimals as text, bytes as hex), plus each file's codec.
const READ_TABLE: &str = r#"
import json, sys
import pyarrow as pa, pyarrow.dataset as ds, pyarrow.parquet as pq
d = ds.dataset(sys.argv[1], format="parquet", partitioning="hive")
t = d.to_table()
cols = {}
for name in t.column_names:
    c = t.column(name)
    if pa.types.is_timestamp(c.type): c = c.cast(pa.int64())
    elif pa.types.is_date32(c.type): c = c.cast(pa.int32())
    elif pa.types.is_decimal(c.type) or pa.types.is_dictionary(c.type): c = c.cast(pa.string())
    cols[name] = c.to_pylist()
rows = [{k: (v.hex() if isinstance(v, bytes) else v) for k, v in zip(cols, vals)} for vals in zip(*cols.values())]
codecs = sorted({pq.ParquetFile(f).metadata.row_group(0).column(0).compression for f in d.files})
print(json.dumps({"rows": rows, "codecs": codecs, "files": len(d.files), "schema": {f.name: str(f.type) for f in d.schema}}))
"#;

fn all_types_schema() -> Schema {
    Schema::new(vec![
        Field::new("country", DataType::Varchar),
        Field::new("id", DataType::BigInt).not_null(),
        Field::new("ok", DataType::Boolean),
        Field::new("amount", DataType::Double),
        Field::new(
            "price",
            DataType::Decimal {
                precision: 12,
                scale: 2,
            },
        ),
        Field::new("note", DataType::Varchar),
        Field::new("raw", DataType::Bytes),
        Field::new("ts", DataType::TimestampMillis),
        Field::new("ts_us", DataType::TimestampMicros),
        Field::new("day", DataType::Date),
        Field::new(
            "tags",
            DataType::Map(MapType::new(DataType::Varchar, DataType::BigInt).unwrap()),
        ),
        Field::new(
            "scores",
            DataType::Array(ArrayType::new(DataType::BigInt).unwrap()),
        ),
    ])
}

/// Row `i`'s `scores`: none every third row, else `i` and a NULL.
fn scores_of(i: i64) -> Scalar {
    if i % 3 == 0 {
        return Scalar::Null;
    }
    Scalar::Array(vec![Scalar::Int(i), Scalar::Null].into())
}

/// Row `i`'s `tags`: none every seventh row, else two entries.
fn tags_of(i: i64) -> Scalar {
    if i % 7 == 0 {
        return Scalar::Null;
    }
    Scalar::map(vec![
        (Scalar::str("sq"), Scalar::Int(i * i)),
        (Scalar::str("i"), Scalar::Int(i)),
    ])
}

const T0: i64 = 1_764_943_200_000; // 2025-12-05 14:00:00 UTC

fn all_types_rows(n: i64) -> Vec<Row> {
    (0..n)
        .map(|i| {
            let country = match i % 4 {
                0 => Scalar::str("NO"),
                1 => Scalar::str("SE"),
                2 => Scalar::str("a/b=c"), // escaped in the directory name
                _ => Scalar::Null,         // the default partition
            };
            Row::new(vec![
                country,
                Scalar::Int(i),
                if i % 5 == 0 {
                    Scalar::Null
                } else {
                    Scalar::Bool(i % 2 == 0)
                },
                Scalar::float(i as f64 * 0.25),
                Scalar::Decimal(rust_decimal_of(i)),
                Scalar::str(&format!("note \"{i}\"\n")),
                Scalar::Bytes(vec![i as u8, 0xff]),
                Scalar::TimestampMs(T0 + i * 60_000), // an hour every 60 rows
                Scalar::TimestampUs((T0 + i) * 1000 + 7),
                Scalar::Date(20_427 + (i % 3) as i32),
                tags_of(i),
                scores_of(i),
            ])
        })
        .collect()
}

fn rust_decimal_of(i: i64) -> rust_decimal::Decimal {
    format!("{}.{:02}", i, i % 100).parse().unwrap()
}

#[test]
fn files_read_back_by_pyarrow_with_partitions_types_and_each_compression() {
    for compression in [
        ParquetCompression::Snappy,
        ParquetCompression::Zstd(5),
        ParquetCompression::Gzip(6),
        ParquetCompression::Lz4,
        ParquetCompression::Uncompressed,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("lake");
        let n = 300;
        let sink = ParquetSink::new(&out, all_types_schema())
            .partition_by(&["country"])
            .partition_by_time("ts", "dt=%Y-%m-%d/hour=%H")
            .compression(compression);
        let metrics = sink.metrics();
        let mut job = Job::new("parquet");
        job.from_vec("rows", all_types_rows(n)).sink(sink);
        job.run(JobConfig::default().parallelism(2).batch_size(64))
            .unwrap();

        let v: serde_json::Value = serde_json::from_str(&pyarrow(READ_TABLE, &out)).unwrap();
        let codec = match compression {
            ParquetCompression::Snappy => "SNAPPY",
            ParquetCompression::Zstd(_) => "ZSTD",
            ParquetCompression::Gzip(_) => "GZIP",
            ParquetCompression::Lz4 => "LZ4", // pyarrow's name of LZ4_RAW
            ParquetCompression::Uncompressed => "UNCOMPRESSED",
        };
        assert_eq!(v["codecs"], serde_json::json!([codec]));
        let mut rows: Vec<&serde_json::Value> = v["rows"].as_array().unwrap().iter().collect();
        assert_eq!(rows.len(), n as usize, "{compression:?}");
        rows.sort_by_key(|r| r["id"].as_i64().unwrap());
        for (i, r) in rows.iter().enumerate() {
            let i = i as i64;
            let expected_country = match i % 4 {
                0 => serde_json::json!("NO"),
                1 => serde_json::json!("SE"),
                2 => serde_json::json!("a/b=c"),
                _ => serde_json::Value::Null,
            };
            assert_eq!(r["country"], expected_country, "row {i}");
            assert_eq!(
                r["ok"],
                if i % 5 == 0 {
                    serde_json::Value::Null
                } else {
                    (i % 2 == 0).into()
                }
            );
            assert_eq!(r["amount"], i as f64 * 0.25);
            assert_eq!(r["price"], rust_decimal_of(i).to_string());
            assert_eq!(r["note"], format!("note \"{i}\"\n"));
            assert_eq!(r["raw"], format!("{:02x}ff", i as u8));
            assert_eq!(r["ts"], T0 + i * 60_000);
            assert_eq!(r["ts_us"], (T0 + i) * 1000 + 7);
            assert_eq!(r["day"], 20_427 + i % 3);
            // pyarrow reads a map as its (key, value) pairs, in the order written.
            let tags = if i % 7 == 0 {
                serde_json::Value::Null
            } else {
                serde_json::json!([["i", i], ["sq", i * i]])
            };
            assert_eq!(r["tags"], tags, "row {i}");
            let scores = if i % 3 == 0 {
                serde_json::Value::Null
            } else {
                serde_json::json!([i, null])
            };
            assert_eq!(r["scores"], scores, "row {i}");
            // The event-time partition: 2025-12-05, hours 14 to 18.
            let hour = 14 + i / 60;
            assert_eq!(r["dt"], "2025-12-05");
            assert_eq!(r["hour"], hour);
        }
        let types = &v["schema"];
        assert_eq!(types["price"], "decimal128(12, 2)");
        assert_eq!(types["ts"], "timestamp[ms]");
        assert_eq!(types["ts_us"], "timestamp[us]");
        assert_eq!(types["day"], "date32[day]");
        assert_eq!(types["raw"], "binary");
        let map_type = types["tags"].as_str().unwrap();
        assert!(map_type.starts_with("map<string, int64"), "{map_type}");
        assert_eq!(types["scores"], "list<item: int64>");
        // The directory layout.
        assert!(out.join("country=a%2Fb%3Dc/dt=2025-12-05/hour=14").is_dir());
        assert!(out
            .join("country=__HIVE_DEFAULT_PARTITION__/dt=2025-12-05/hour=18")
            .is_dir());
        let m = metrics.snapshot();
        assert_eq!(m["records_out"], n);
        assert_eq!(
            m["files_committed"].as_u64().unwrap(),
            v["files"].as_u64().unwrap()
        );
        assert!(m["bytes_out"].as_u64().unwrap() > 1000);
    }
}

fn task(subtask: usize) -> TaskInfo {
    TaskInfo {
        job: "direct".into(),
        name: "parquet".into(),
        id: "parquet".into(),
        subtask,
        parallelism: 1,
        key_groups: 128,
        checkpointing: true,
    }
}

fn simple_schema() -> Schema {
    Schema::new(vec![
        Field::new("user", DataType::Varchar),
        Field::new("seq", DataType::BigInt),
        Field::new("amount", DataType::Double),
        Field::new("ts", DataType::TimestampMillis),
    ])
}

fn simple_row(i: i64) -> Row {
    Row::new(vec![
        Scalar::str(&format!("u{}", i % 13)),
        Scalar::Int(i),
        Scalar::float(i as f64 * 0.5),
        Scalar::TimestampMs(T0 + i * 1000),
    ])
}

/// Every (user, seq, amount, ts) in the committed files under `dir` (read with the parquet
/// crate), sorted; fails if an in-progress file is left when `finished`.
fn committed_rows(dir: &Path) -> Vec<(String, i64, i64, i64)> {
    let mut rows = Vec::new();
    for f in committed_files(dir).unwrap() {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let b = batch.unwrap();
            let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
            let user = col("user");
            let user = user.as_any().downcast_ref::<StringArray>().unwrap();
            let seq = col("seq");
            let seq = seq.as_any().downcast_ref::<Int64Array>().unwrap();
            let amount = col("amount");
            let amount = amount.as_any().downcast_ref::<Float64Array>().unwrap();
            let ts = col("ts");
            let ts = ts
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .unwrap();
            for i in 0..b.num_rows() {
                assert!(!user.is_null(i));
                rows.push((
                    user.value(i).to_string(),
                    seq.value(i),
                    (amount.value(i) * 2.0) as i64,
                    ts.value(i),
                ));
            }
        }
    }
    rows.sort();
    rows
}

/// Rows in the committed files under `dir` (from the files' footers).
fn row_count(dir: &Path) -> i64 {
    committed_files(dir)
        .unwrap()
        .iter()
        .map(|f| {
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).unwrap())
                .unwrap()
                .metadata()
                .file_metadata()
                .num_rows()
        })
        .sum()
}

fn in_progress(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    fn walk(d: &Path, v: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, v);
            } else if p.to_string_lossy().ends_with(".inprogress") {
                v.push(p.display().to_string());
            }
        }
    }
    if dir.exists() {
        walk(dir, &mut v);
    }
    v
}

#[test]
fn nothing_is_visible_until_committed_and_an_abort_leaves_no_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t");
    let mut sink = ParquetSink::new(&out, simple_schema()).partition_by(&["user"]);
    let committer = sink.committer().unwrap().unwrap();
    let mut w = sink.create_writer(&task(0)).unwrap();
    w.write_batch((0..100).map(simple_row).collect()).unwrap();
    assert!(committed_files(&out).unwrap().is_empty());
    assert_eq!(in_progress(&out).len(), 13, "one open file per partition");
    let first = w.pre_commit(1).unwrap();
    assert_eq!(first.len(), 13);
    assert!(
        committed_files(&out).unwrap().is_empty(),
        "pre-committed is not committed"
    );
    for c in &first {
        committer.commit(c).unwrap();
        committer.commit(c).unwrap(); // a restore commits its checkpoint's files again
    }
    assert_eq!(committed_files(&out).unwrap().len(), 13);
    assert_eq!(row_count(&out), 100);
    for f in committed_files(&out).unwrap() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("part-000001-000-"), "{name}");
    }

    // Written and pre-committed for checkpoint 2, which never completes: the crash.
    w.write_batch((100..150).map(simple_row).collect()).unwrap();
    let second = w.pre_commit(2).unwrap();
    w.write_batch((150..160).map(simple_row).collect()).unwrap();
    drop(w);
    assert!(!in_progress(&out).is_empty());
    committer.abort_uncommitted().unwrap();
    assert!(
        in_progress(&out).is_empty(),
        "no orphans: {:?}",
        in_progress(&out)
    );
    assert_eq!(row_count(&out), 100);
    let e = committer.commit(&second[0]).unwrap_err().to_string();
    assert!(e.contains("missing"), "{e}");
}

#[test]
fn files_roll_by_size_and_by_time() {
    let dir = tempfile::tempdir().unwrap();
    // By size: 4 KiB files of small row groups.
    let out = dir.path().join("size");
    let sink = ParquetSink::new(&out, simple_schema())
        .rolling_file_size(4096)
        .row_group_rows(100)
        .compression(ParquetCompression::Uncompressed);
    let mut job = Job::new("roll");
    job.from_vec("rows", (0..5000).map(simple_row).collect())
        .sink(sink);
    job.run(JobConfig::default().parallelism(1).batch_size(100))
        .unwrap();
    let files = committed_files(&out).unwrap();
    assert!(files.len() >= 10, "{} files", files.len());
    for f in &files {
        // A file closes at the first batch past the size: at most a batch (~100 rows) over.
        assert!(
            std::fs::metadata(f).unwrap().len() < 3 * 4096,
            "{}",
            f.display()
        );
    }
    assert_eq!(committed_rows(&out), {
        let mut v: Vec<_> = (0..5000)
            .map(|i| (format!("u{}", i % 13), i, i, T0 + i * 1000))
            .collect();
        v.sort();
        v
    });

    // By time: a file open for 50 ms is closed at the next batch.
    let out = dir.path().join("time");
    let mut sink = ParquetSink::new(&out, simple_schema())
        .rollover_interval(Duration::from_millis(50), Duration::from_millis(10));
    let mut task = task(0);
    task.checkpointing = false;
    let mut w = sink.create_writer(&task).unwrap();
    for k in 0..4 {
        w.write_batch((k * 10..k * 10 + 10).map(simple_row).collect())
            .unwrap();
        std::thread::sleep(Duration::from_millis(70));
    }
    // Without checkpoints a rolled file is visible at once.
    assert_eq!(committed_files(&out).unwrap().len(), 3);
    w.close().unwrap();
    assert_eq!(committed_files(&out).unwrap().len(), 4);
    assert_eq!(committed_rows(&out).len(), 40);
}

#[test]
fn bad_configuration_fails_fast_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = |sink: ParquetSink, rows: Vec<Row>| {
        let mut job = Job::new("bad");
        job.from_vec("rows", rows).sink(sink);
        job.run(JobConfig::default()).unwrap_err().to_string()
    };
    let e = run(
        ParquetSink::new(dir.path(), simple_schema()).partition_by(&["usr"]),
        vec![simple_row(1)],
    );
    assert!(e.contains("partition column `usr` is not a column"), "{e}");
    let e = run(
        ParquetSink::new(dir.path(), simple_schema()).partition_by_time("amount", "%Y"),
        vec![simple_row(1)],
    );
    assert!(e.contains("`amount` is DOUBLE, not a timestamp"), "{e}");
    let e = run(
        ParquetSink::new(dir.path(), simple_schema()).partition_by_time("ts", "dt=%Q"),
        vec![simple_row(1)],
    );
    assert!(e.contains("not a strftime pattern"), "{e}");
    // A row that does not fit the schema stops the job naming the column.
    let e = run(
        ParquetSink::new(dir.path(), simple_schema()),
        vec![Row::new(vec![
            Scalar::str("u"),
            Scalar::str("seven"),
            Scalar::Null,
            Scalar::Null,
        ])],
    );
    assert!(
        e.contains("column `seq` is BIGINT but a row has VARCHAR `seven`"),
        "{e}"
    );
    let options: BTreeMap<String, String> = [
        ("connector", "filesystem"),
        ("path", dir.path().to_str().unwrap()),
        ("format", "parquet"),
        ("parquet.compression", "lzo"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let e = ParquetSinkConfig::from_options(&options)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("filesystem option `parquet.compression`: `lzo`"),
        "{e}"
    );
}

// --- The SIGKILL crash loop ------------------------------------------------------------------

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Reading {
    user: String,
    seq: i64,
    amount: f64,
    ts: i64,
}

/// Input rows for `kills` kills: enough that the job outlives them all. Each row takes at
/// least 60 µs on one of two instances, so 20,000 rows a kill are 0.6 s of work a kill, more
/// than a run makes before its kill (150 to 500 ms after its start, less its start-up and what
/// it redoes since the last checkpoint). 5,000 a kill (0.15 s) let a fast machine finish
/// after 7 of 8 kills.
fn crash_rows(kills: usize) -> i64 {
    (kills as i64 * 20_000).max(40_000)
}
const CHILD_ENV: &str = "STREAMCORE_PARQUET_CRASH_CHILD";

/// The job the crash test kills: JSON lines → rows → Parquet partitioned by event-time hour,
/// checkpointing every 100 ms (with `ckpt`), parallelism 2.
fn crash_job(input: &Path, out: &Path, ckpt: Option<&Path>, slow: bool) {
    let mut job = Job::new("parquet-crash");
    let readings = job.source(
        "readings",
        JsonLinesSource::<Reading>::typed(input.to_str().unwrap()).min_split_bytes(16 << 10),
    );
    readings
        .inspect(move |_| {
            if slow {
                std::thread::sleep(Duration::from_micros(60))
            }
        })
        .map(|r: Reading| {
            Row::new(vec![
                Scalar::str(&r.user),
                Scalar::Int(r.seq),
                Scalar::float(r.amount),
                Scalar::TimestampMs(r.ts),
            ])
            .with_time_column(3)
        })
        .sink(
            ParquetSink::new(out, simple_schema())
                .partition_by_time("ts", "hour=%H")
                .compression(ParquetCompression::Zstd(1)),
        );
    let mut config = JobConfig::default().parallelism(2).batch_size(100);
    if let Some(ckpt) = ckpt {
        config = config.checkpoints(
            CheckpointConfig::new(ckpt)
                .interval(Duration::from_millis(100))
                .restore(RestoreFrom::Latest),
        );
    }
    job.run(config).unwrap();
}

/// Run as a child process by the crash test (ignored otherwise): the job, checkpointing and
/// restoring the latest checkpoint.
#[test]
#[ignore = "the crash test's child process"]
fn parquet_crash_child() {
    let Ok(args) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = args.split('\n').collect();
    crash_job(
        Path::new(parts[0]),
        Path::new(parts[1]),
        Some(Path::new(parts[2])),
        true,
    );
}

#[test]
fn sigkill_and_restore_until_done_commits_the_crash_free_files() {
    let kills_wanted: usize = std::env::var("STREAMCORE_PARQUET_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let mut seed: u64 = std::env::var("STREAMCORE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("parquet crash test: {kills_wanted} kills, STREAMCORE_CRASH_SEED={seed}");
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    let rows = crash_rows(kills_wanted);
    for i in 0..rows {
        let r = Reading {
            user: format!("u{}", i % 13),
            seq: i,
            amount: i as f64 * 0.5,
            ts: T0 + i * 1000,
        };
        writeln!(f, "{}", serde_json::to_string(&r).unwrap()).unwrap();
    }
    drop(f);

    // The reference: one run without checkpoints or crashes.
    let reference = tmp.path().join("ref");
    crash_job(&input, &reference, None, false);
    let expected = committed_rows(&reference);
    assert_eq!(expected.len(), rows as usize);

    let (out, ckpt) = (tmp.path().join("out"), tmp.path().join("ckpt"));
    let exe = std::env::current_exe().unwrap();
    let (mut kills, mut attempts) = (0, 0);
    let (mut committed_at_kills, mut orphans_at_kills) = (Vec::new(), 0);
    let started = Instant::now();
    loop {
        attempts += 1;
        let stderr = tmp.path().join(format!("stderr-{attempts}.txt"));
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "parquet_crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                CHILD_ENV,
                format!("{}\n{}\n{}", input.display(), out.display(), ckpt.display()),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        // xorshift: the kill time, 150 to 500 ms after the start.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_at = Duration::from_millis(150 + seed % 350);
        let spawned = Instant::now();
        let exited = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if kills < kills_wanted && spawned.elapsed() >= kill_at {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        match exited {
            Some(status) => {
                assert!(
                    status.success(),
                    "run {attempts} failed: {}",
                    std::fs::read_to_string(&stderr).unwrap()
                );
                break;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                committed_at_kills.push(committed_files(&out).unwrap().len());
                orphans_at_kills += in_progress(&out).len();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no end after {attempts} runs"
        );
    }
    eprintln!(
        "parquet crash test: {kills} kills, {attempts} runs, {:.1} s; committed files at each kill: {committed_at_kills:?}; {orphans_at_kills} in-progress files found after kills",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(kills, kills_wanted);
    // The kills hit a job that had committed output and open files: restores had both to
    // keep and to clean up.
    assert!(
        committed_at_kills.iter().any(|&n| n > 0),
        "{committed_at_kills:?}"
    );
    assert!(orphans_at_kills > 0);
    let got = committed_rows(&out);
    assert_eq!(got.len(), expected.len(), "rows lost or written twice");
    assert_eq!(got, expected);
    assert!(
        in_progress(&out).is_empty(),
        "orphans: {:?}",
        in_progress(&out)
    );
    // An independent reader sees the same table.
    let v: serde_json::Value = serde_json::from_str(&pyarrow(READ_TABLE, &out)).unwrap();
    assert_eq!(v["rows"].as_array().unwrap().len(), rows as usize);
}
