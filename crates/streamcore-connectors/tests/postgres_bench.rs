//! Throughput of the PostgreSQL connectors on loopback, next to plain client loops doing the
//! same work (docs/benchmarks.md has the numbers). Not part of the suite's pass/fail: run
//!
//! ```text
//! cargo test --release -p streamcore-connectors --features postgres --test postgres_bench -- --ignored --nocapture
//! ```
//!
//! (`STREAMCORE_PG_BENCH_ROWS` sets the row count, default 200,000.)

#![cfg(feature = "postgres")]

mod postgres_common;

use postgres::types::Type;
use postgres_common::{client, connection, exec};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use streamcore::changelog::Change;
use streamcore::checkpoint::CheckpointConfig;
use streamcore::row::{DataType, Field, Row, Scalar, Schema};
use streamcore::source::Generator;
use streamcore::{Job, JobConfig};
use streamcore_connectors::postgres::{
    PostgresCdcConfig, PostgresCdcSource, PostgresSink, PostgresSinkConfig,
};

fn n() -> u64 {
    std::env::var("STREAMCORE_PG_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

const KEYS: u64 = 10_000;

fn row(i: u64) -> Row {
    Row::new(vec![
        Scalar::Int(i as i64),
        Scalar::Int((i % KEYS) as i64),
        Scalar::Int((i * 7 % 1000) as i64),
        Scalar::str("a short note"),
    ])
}

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("id", DataType::BigInt),
        Field::new("user_id", DataType::BigInt),
        Field::new("amount", DataType::BigInt),
        Field::new("note", DataType::Varchar),
    ])
}

fn table(name: &str, key: &str) {
    exec(&format!(
        "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id bigint, user_id bigint, amount bigint, note text{key})"
    ));
}

fn report(what: &str, rows: u64, t: Duration) {
    eprintln!(
        "{what:<58} {rows:>8} rows {:>7.2} s {:>9.0} rows/s",
        t.as_secs_f64(),
        rows as f64 / t.as_secs_f64()
    );
}

fn sink_run(name: &str, key: &[&str], p: usize, checkpoints: bool, max_rows: usize) -> Duration {
    let mut c = PostgresSinkConfig::new("", name).key(key).schema(schema());
    c.connection = connection();
    c.max_rows = max_rows;
    c.transaction_prefix = Some(format!("bench-{name}"));
    let mut job = Job::new("bench");
    let rows = job.source("rows", Generator::new(row).bounded(n()));
    if key.is_empty() {
        rows.sink(PostgresSink::new(c));
    } else {
        // Upserts by user: reader r of P makes the rows i = r mod P, and 10,000 keys is a
        // multiple of P (1, 2), so each key is written by one writer.
        rows.map(|r: Row| {
            Change::UpdateAfter(Row::new(vec![
                r.get(1).clone(),
                r.get(0).clone(),
                r.get(2).clone(),
                r.get(3).clone(),
            ]))
        })
        .sink(PostgresSink::new(c.schema(Schema::new(vec![
            Field::new("user_id", DataType::BigInt),
            Field::new("id", DataType::BigInt),
            Field::new("amount", DataType::BigInt),
            Field::new("note", DataType::Varchar),
        ]))));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = JobConfig::default().parallelism(p);
    if checkpoints {
        config =
            config.checkpoints(CheckpointConfig::new(dir.path()).interval(Duration::from_secs(1)));
    }
    let started = Instant::now();
    job.run(config).unwrap();
    started.elapsed()
}

/// The plain client loop: batches of `batch` rows as one `unnest` statement each, one
/// transaction per batch, on one connection.
fn client_loop(sql: &str, batch: u64) -> Duration {
    let mut c = client();
    let stmt = c
        .prepare_typed(
            sql,
            &[
                Type::INT8_ARRAY,
                Type::INT8_ARRAY,
                Type::INT8_ARRAY,
                Type::TEXT_ARRAY,
            ],
        )
        .unwrap();
    let started = Instant::now();
    let mut i = 0;
    while i < n() {
        let end = (i + batch).min(n());
        let ids: Vec<i64> = (i..end).map(|i| i as i64).collect();
        let users: Vec<i64> = (i..end).map(|i| (i % KEYS) as i64).collect();
        let amounts: Vec<i64> = (i..end).map(|i| (i * 7 % 1000) as i64).collect();
        let notes: Vec<&str> = (i..end).map(|_| "a short note").collect();
        let mut tx = c.transaction().unwrap();
        tx.execute(&stmt, &[&ids, &users, &amounts, &notes])
            .unwrap();
        tx.commit().unwrap();
        i = end;
    }
    started.elapsed()
}

/// Row by row: one prepared INSERT per row, a transaction per `batch` rows.
fn client_row_loop(batch: u64) -> Duration {
    let mut c = client();
    let stmt = c
        .prepare("INSERT INTO bench_loop_rows VALUES ($1, $2, $3, $4)")
        .unwrap();
    let started = Instant::now();
    let mut i = 0;
    while i < n() {
        let end = (i + batch).min(n());
        let mut tx = c.transaction().unwrap();
        for j in i..end {
            tx.execute(
                &stmt,
                &[
                    &(j as i64),
                    &((j % KEYS) as i64),
                    &((j * 7 % 1000) as i64),
                    &"a short note",
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        i = end;
    }
    started.elapsed()
}

#[test]
#[ignore = "a benchmark: run with --ignored --nocapture (release)"]
fn postgres_throughput() {
    let n = n();
    eprintln!("PostgreSQL connectors on 127.0.0.1, {n} rows of (bigint, bigint, bigint, text)");
    if std::env::var("STREAMCORE_PG_BENCH_ONLY_CDC").is_ok() {
        return cdc(n);
    }
    for (p, ckpt) in [(1, false), (2, false), (1, true), (2, true)] {
        table("bench_append", "");
        let t = sink_run("bench_append", &[], p, ckpt, 1000);
        report(
            &format!(
                "sink append, P={p}{}",
                if ckpt {
                    ", exactly-once (1 s checkpoints)"
                } else {
                    ""
                }
            ),
            n,
            t,
        );
    }
    table("bench_loop", "");
    report(
        "client loop: unnest INSERT, 1000 rows/statement+transaction",
        n,
        client_loop(
            "INSERT INTO bench_loop SELECT * FROM unnest($1, $2, $3, $4)",
            1000,
        ),
    );
    table("bench_loop_rows", "");
    report(
        "client loop: INSERT per row, 1000 rows/transaction",
        n,
        client_row_loop(1000),
    );
    for (p, ckpt) in [(1, false), (2, false), (2, true)] {
        exec("DROP TABLE IF EXISTS bench_upsert; CREATE TABLE bench_upsert (user_id bigint PRIMARY KEY, id bigint, amount bigint, note text)");
        let t = sink_run("bench_upsert", &["user_id"], p, ckpt, 1000);
        report(
            &format!(
                "sink upsert ({KEYS} keys), P={p}{}",
                if ckpt { ", exactly-once" } else { "" }
            ),
            n,
            t,
        );
    }
    exec("DROP TABLE IF EXISTS bench_loop_up; CREATE TABLE bench_loop_up (id bigint, user_id bigint PRIMARY KEY, amount bigint, note text)");
    report(
        "client loop: unnest INSERT ON CONFLICT, 1000 rows/statement",
        n,
        client_loop(
            "INSERT INTO bench_loop_up SELECT * FROM unnest($1, $2, $3, $4) \
             ON CONFLICT (user_id) DO UPDATE SET id = EXCLUDED.id, amount = EXCLUDED.amount, note = EXCLUDED.note",
            1000,
        ),
    );
    cdc(n);
}

fn cdc(n: u64) {
    let slot = "bench_cdc_slot";
    exec(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'bench_cdc%'",
    );
    exec(&format!(
        "DROP PUBLICATION IF EXISTS {slot}_pub; DROP PUBLICATION IF EXISTS bench_cdc_loop_pub;
         DROP TABLE IF EXISTS bench_cdc;
         CREATE TABLE bench_cdc (id bigint PRIMARY KEY, user_id bigint, amount bigint, note text);
         ALTER TABLE bench_cdc REPLICA IDENTITY FULL;
         CREATE PUBLICATION bench_cdc_loop_pub FOR TABLE bench_cdc;
         CREATE PUBLICATION {slot}_pub FOR TABLE bench_cdc;"
    ));
    // Their own statements: a slot cannot be created in a transaction that wrote.
    exec("SELECT pg_create_logical_replication_slot('bench_cdc_loop', 'pgoutput')");
    exec(&format!(
        "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
    ));
    // The changes: n inserts in transactions of 1000 rows, a backlog in both slots before
    // anything reads them.
    let mut cl = client();
    for start in (0..n).step_by(1000) {
        cl.execute(
            "INSERT INTO bench_cdc SELECT g, g % 10000, g % 1000, 'a short note' FROM generate_series($1::bigint, $2::bigint) g",
            &[&(start as i64), &((start + 999).min(n - 1) as i64)],
        )
        .unwrap();
    }
    let mut c = PostgresCdcConfig::new("", "bench_cdc", slot);
    c.connection = connection();
    c.poll_interval = Duration::from_millis(10);
    c.snapshot = false; // the backlog in the slot only
    let source = PostgresCdcSource::new(c).unwrap();
    let metrics = source.metrics();
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let mut job = Job::new("cdc-bench");
    job.source("cdc", source)
        .sink(streamcore::sink::ForEachSink(move |_c: Change<Row>| {
            counter.fetch_add(1, Ordering::Relaxed);
        }));
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let handle = job
        .start(
            JobConfig::default().parallelism(1).checkpoints(
                CheckpointConfig::new(dir.path()).interval(Duration::from_millis(500)),
            ),
        )
        .unwrap();
    while seen.load(Ordering::Relaxed) < n {
        if handle.is_finished() {
            handle.join().unwrap();
            panic!("the CDC job ended early");
        }
        assert!(started.elapsed() < Duration::from_secs(600));
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = started.elapsed();
    handle.stop();
    handle.join().unwrap();
    report(
        "CDC source: a backlog of inserts emitted as changes, P=1",
        n,
        t,
    );
    eprintln!("  ({:?})", metrics.summary());
    // The plain loop: consume the same changes from a second slot with the SQL interface,
    // bytes only (no decoding into rows), 10,000 changes per call.
    let started = Instant::now();
    let mut got = 0u64;
    while got < n + 2 * n / 1000 {
        let rows = cl
            .query(
                "SELECT data FROM pg_logical_slot_get_binary_changes('bench_cdc_loop', NULL, 10000, 'proto_version', '1', 'publication_names', 'bench_cdc_loop_pub')",
                &[],
            )
            .unwrap();
        if rows.is_empty() {
            break;
        }
        got += rows.len() as u64;
    }
    report(
        "client loop: pg_logical_slot_get_binary_changes (raw messages)",
        n,
        started.elapsed(),
    );
    exec("SELECT pg_drop_replication_slot('bench_cdc_loop')");
    exec(&format!("SELECT pg_drop_replication_slot('{slot}')"));
}
