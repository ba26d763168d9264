//! Throughput of the Redis and Parquet sinks (docs/benchmarks.md): rows per second into Redis
//! through the sink next to a plain `redis` client pipeline loop doing the same writes, and
//! Parquet MB/s per compression. Needs the Redis server of scripts/test-deps.d/20-redis.sh.
//!
//! `cargo bench -p streamcore-connectors --features redis,parquet --bench sinks`
//! (`STREAMCORE_BENCH_ROWS=N` changes the row count; default 200,000 for Redis, 2,000,000
//! for Parquet).

use std::time::{Duration, Instant};
use streamcore::context::TaskInfo;
use streamcore::row::{DataType, Field, Row, Scalar, Schema};
use streamcore::{Job, JobConfig, Sink, SinkWriter};
use streamcore_connectors::parquet::{committed_files, ParquetCompression, ParquetSink};
use streamcore_connectors::redis::RedisSink;

const URL: &str = "redis://127.0.0.1:63790/";

fn task() -> TaskInfo {
    TaskInfo {
        job: "bench".into(),
        name: "sink".into(),
        id: "sink".into(),
        subtask: 0,
        parallelism: 1,
        key_groups: 128,
        checkpointing: false,
    }
}

fn rows_env(default: usize) -> usize {
    std::env::var("STREAMCORE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn user_schema() -> Schema {
    Schema::new(vec![
        Field::new("user_id", DataType::BigInt),
        Field::new("total", DataType::BigInt),
        Field::new("name", DataType::Varchar),
    ])
}

fn user_rows(n: usize) -> Vec<Row> {
    (0..n as i64)
        .map(|i| {
            Row::new(vec![
                Scalar::Int(i % 100_000),
                Scalar::Int(i),
                Scalar::str("some user name"),
            ])
        })
        .collect()
}

fn best_of<F: FnMut() -> Duration>(runs: usize, mut f: F) -> Duration {
    (0..runs).map(|_| f()).min().unwrap()
}

fn flush_db(c: &mut redis::Connection) {
    redis::cmd("FLUSHDB").exec(c).unwrap();
}

fn redis_bench() {
    let n = rows_env(200_000);
    let rows = user_rows(n);
    let client = redis::Client::open(URL).unwrap();
    let mut c = client
        .get_connection()
        .expect("Redis on 127.0.0.1:63790: run scripts/test-deps.d/20-redis.sh");
    let batch = 1024;
    let rate = |d: Duration| n as f64 / d.as_secs_f64();

    // The plain client: the same SET commands, pipelines of `batch`, values rendered as the
    // sink renders them (the column's text).
    let plain = best_of(3, || {
        flush_db(&mut c);
        let started = Instant::now();
        for chunk in rows.chunks(batch) {
            let mut p = redis::pipe();
            for r in chunk {
                p.cmd("SET")
                    .arg(format!("user:{}", r.values[0].as_i64().unwrap()))
                    .arg(r.values[1].as_i64().unwrap())
                    .ignore();
            }
            p.exec(&mut c).unwrap();
        }
        started.elapsed()
    });
    let sink_direct = best_of(3, || {
        flush_db(&mut c);
        let mut sink = RedisSink::set(URL)
            .schema(user_schema())
            .key_template("user:{user_id}")
            .value_column("total");
        let mut w = Sink::<Row>::create_writer(&mut sink, &task()).unwrap();
        let w: &mut dyn SinkWriter<Row> = &mut w;
        let chunks: Vec<Vec<Row>> = rows.chunks(batch).map(|c| c.to_vec()).collect();
        let started = Instant::now();
        for chunk in chunks {
            w.write_batch(chunk).unwrap();
        }
        w.close().unwrap();
        started.elapsed()
    });
    let sink_job = best_of(3, || {
        flush_db(&mut c);
        let mut job = Job::new("redis-bench");
        job.from_vec("rows", rows.clone()).sink(
            RedisSink::set(URL)
                .schema(user_schema())
                .key_template("user:{user_id}")
                .value_column("total"),
        );
        let started = Instant::now();
        job.run(JobConfig::default().parallelism(1).batch_size(batch))
            .unwrap();
        started.elapsed()
    });
    let hset = best_of(3, || {
        flush_db(&mut c);
        let mut sink = RedisSink::hset(URL)
            .schema(user_schema())
            .key_template("user:{user_id}");
        let mut w = Sink::<Row>::create_writer(&mut sink, &task()).unwrap();
        let w: &mut dyn SinkWriter<Row> = &mut w;
        let chunks: Vec<Vec<Row>> = rows.chunks(batch).map(|c| c.to_vec()).collect();
        let started = Instant::now();
        for chunk in chunks {
            w.write_batch(chunk).unwrap();
        }
        w.close().unwrap();
        started.elapsed()
    });
    let plain_hset = best_of(3, || {
        flush_db(&mut c);
        let started = Instant::now();
        for chunk in rows.chunks(batch) {
            let mut p = redis::pipe();
            for r in chunk {
                p.cmd("HSET")
                    .arg(format!("user:{}", r.values[0].as_i64().unwrap()))
                    .arg("user_id")
                    .arg(r.values[0].as_i64().unwrap())
                    .arg("total")
                    .arg(r.values[1].as_i64().unwrap())
                    .arg("name")
                    .arg(r.values[2].as_str().unwrap())
                    .ignore();
            }
            p.exec(&mut c).unwrap();
        }
        started.elapsed()
    });
    flush_db(&mut c);
    println!("redis, {n} rows, pipelines of {batch} (best of 3):");
    println!(
        "  SET  plain client pipeline loop   {:>10.0} rows/s",
        rate(plain)
    );
    println!(
        "  SET  RedisSink writer             {:>10.0} rows/s  ({:.2}x the loop)",
        rate(sink_direct),
        plain.as_secs_f64() / sink_direct.as_secs_f64()
    );
    println!(
        "  SET  RedisSink in a job (P=1)     {:>10.0} rows/s  ({:.2}x the loop)",
        rate(sink_job),
        plain.as_secs_f64() / sink_job.as_secs_f64()
    );
    println!(
        "  HSET plain client pipeline loop   {:>10.0} rows/s",
        rate(plain_hset)
    );
    println!(
        "  HSET RedisSink writer (3 fields)  {:>10.0} rows/s  ({:.2}x the loop)",
        rate(hset),
        plain_hset.as_secs_f64() / hset.as_secs_f64()
    );
}

fn parquet_schema() -> Schema {
    Schema::new(vec![
        Field::new("user", DataType::Varchar),
        Field::new("seq", DataType::BigInt),
        Field::new("amount", DataType::Double),
        Field::new("ts", DataType::TimestampMillis),
        Field::new("country", DataType::Varchar),
    ])
}

fn parquet_rows(n: usize) -> Vec<Row> {
    const COUNTRIES: [&str; 5] = ["NO", "SE", "DK", "FI", "IS"];
    (0..n as i64)
        .map(|i| {
            Row::new(vec![
                Scalar::str(&format!("user-{}", (i * 7919) % 50_000)),
                Scalar::Int(i),
                Scalar::float(((i * 37) % 100_000) as f64 / 100.0),
                Scalar::TimestampMs(1_764_943_200_000 + i * 10),
                Scalar::str(COUNTRIES[(i % 5) as usize]),
            ])
        })
        .collect()
}

fn parquet_bench() {
    let n = rows_env(2_000_000);
    let rows = parquet_rows(n);
    let batch = 1024;
    // The rows' in-memory payload (strings' bytes plus 8 bytes per fixed-size value).
    let raw: usize = rows
        .iter()
        .map(|r| {
            r.values
                .iter()
                .map(|v| v.as_str().map_or(8, str::len))
                .sum::<usize>()
        })
        .sum();
    println!(
        "parquet, {n} rows ({:.0} MB of values), batches of {batch}, one writer (best of 3):",
        raw as f64 / 1e6
    );
    for compression in [
        ParquetCompression::Uncompressed,
        ParquetCompression::Snappy,
        ParquetCompression::Zstd(3),
        ParquetCompression::Lz4,
        ParquetCompression::Gzip(6),
    ] {
        let mut size = 0u64;
        let took = best_of(3, || {
            let dir = tempfile::tempdir().unwrap();
            let mut sink = ParquetSink::new(dir.path(), parquet_schema()).compression(compression);
            let mut w = sink.create_writer(&task()).unwrap();
            let chunks: Vec<Vec<Row>> = rows.chunks(batch).map(|c| c.to_vec()).collect();
            let started = Instant::now();
            for chunk in chunks {
                w.write_batch(chunk).unwrap();
            }
            w.close().unwrap();
            let took = started.elapsed();
            size = committed_files(dir.path())
                .unwrap()
                .iter()
                .map(|f| std::fs::metadata(f).unwrap().len())
                .sum();
            took
        });
        let s = took.as_secs_f64();
        println!(
            "  {:<14} {:>10.0} rows/s  {:>7.1} MB/s of values  {:>7.1} MB/s written  ({:.1} MB file)",
            format!("{compression:?}"),
            n as f64 / s,
            raw as f64 / 1e6 / s,
            size as f64 / 1e6 / s,
            size as f64 / 1e6
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks one part.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    if wants("redis") {
        redis_bench();
    }
    if wants("parquet") {
        parquet_bench();
    }
}
