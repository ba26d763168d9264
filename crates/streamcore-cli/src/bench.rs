//! `streamcore bench`: measures, in one run and interleaved (A B C … A B C …), the engine
//! against hand-written loops doing the same work, and prints events/s and ratios.
//!
//! Scenarios:
//! - `typed`: generator → filter → map → counting sink on plain structs, P = 1 and P = `-p`
//!   (every scenario named `P=2` below runs at `-p`, by default the number of cores);
//! - `typed-loop`: the same work as one plain Rust loop (the practical limit);
//! - `event`: the demo pipeline (filter amount > 100, enrich) on `Event` values, P = 1 and 2;
//! - `event-loop`: the demo work on `Event` values as a plain loop;
//! - `window`: keyed 10-second tumbling windows, count and sum per key, 10,000 keys, P = 1, 2;
//! - `window-loop`: the same aggregation with one hash map in a plain loop;
//! - `interval-join`: a ±5 ms interval join of two sides of one generated stream, 1,000 keys;
//! - `cep`: the fraud pattern (`streamcore patterns fraud`) over card events;
//! - `ckpt-none P=2` / `ckpt-1s P=2`: the `window` job on 20 times as many events (a few
//!   seconds), without checkpoints and with one every second (the cost of checkpointing);
//! - `checkpoint-state` (after the others): snapshot and restore of 1,000,000 keys of window
//!   state — a savepoint of a running job, then a restore from it.

use crate::demo::{enrich, is_high_value, now_secs, pipeline};
use crate::parallelism::ParallelismArg;
use clap::Args;
use serde::Serialize;
use std::hint::black_box;
use std::time::Duration;
use std::time::Instant;
use streamcore::checkpoint::{CheckpointConfig, RestoreFrom};
use streamcore::sink::CountingSink;
use streamcore::source::Generator;
use streamcore::window::{AggregateFunction, Windows};
use streamcore::{EventTime, Job, JobConfig, Timestamp, WatermarkStrategy};
use streamcore_connectors::{TransactionGenerator, TransactionGeneratorConfig};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Events per measurement of the `event` scenarios; the `typed` scenarios, about 50 times
    /// faster per event, use ten times as many so that each measurement lasts long enough.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Measurements per scenario (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Only run the scenarios whose name contains this text (e.g. `event`).
    #[arg(long)]
    only: Option<String>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Keys of window state in the `checkpoint-state` measurement.
    #[arg(long, default_value_t = 1_000_000)]
    state_keys: u64,
    // The parallelism of the parallel scenarios (`typed P=2` etc. are named after it) and of
    // `checkpoint-state`; the `P=1` scenarios stay at 1.
    #[command(flatten)]
    parallelism: ParallelismArg,
}

/// The typed record of the `typed` scenarios.
#[derive(Clone, Debug)]
#[allow(dead_code)] // the payload a real pipeline would carry on
struct Tx {
    user_id: u64,
    amount: i64,
    transaction_id: u64,
    timestamp: i64,
}

/// What the `typed` map makes of a `Tx`.
#[derive(Clone, Debug)]
#[allow(dead_code)] // the payload a real pipeline would carry on
struct Enriched {
    tx: Tx,
    fee: i64,
    is_high_value: bool,
}

#[inline]
fn make_tx(i: u64) -> Tx {
    Tx {
        user_id: i % 1000,
        amount: 50 + 25 * (i % 20) as i64,
        transaction_id: i,
        timestamp: 1_700_000_000_000 + i as i64,
    }
}

#[inline]
fn enrich_tx(tx: Tx) -> Enriched {
    Enriched {
        fee: tx.amount * 3 / 100,
        is_high_value: true,
        tx,
    }
}

fn typed_job(n: u64, p: usize) -> u64 {
    let sink = CountingSink::new();
    let mut job = Job::new("bench-typed");
    job.source("gen", Generator::new(make_tx).bounded(n))
        .filter(|t| t.amount > 100)
        .map(enrich_tx)
        .sink(sink.clone());
    job.run(JobConfig::default().parallelism(p))
        .expect("bench job runs");
    sink.count()
}

fn typed_loop(n: u64) -> u64 {
    let mut count = 0;
    for i in 0..n {
        let tx = make_tx(i);
        if tx.amount > 100 {
            black_box(enrich_tx(tx));
            count += 1;
        }
    }
    count
}

fn generator() -> TransactionGenerator {
    TransactionGenerator::new(TransactionGeneratorConfig {
        users: 1000,
        ..Default::default()
    })
}

fn event_job(n: u64, p: usize) -> u64 {
    let sink = CountingSink::new();
    let mut job = Job::new("bench-event");
    let g = TransactionGenerator::new(TransactionGeneratorConfig {
        events: Some(n),
        users: 1000,
        ..Default::default()
    });
    pipeline(job.source("gen", g.source())).sink(sink.clone());
    job.run(JobConfig::default().parallelism(p))
        .expect("bench job runs");
    sink.count()
}

fn event_loop(n: u64) -> u64 {
    let g = generator();
    let mut count = 0;
    let mut now = now_secs();
    for i in 0..n {
        // The engine reads the clock once per batch of 1024; so does the loop.
        if i % 1024 == 0 {
            now = now_secs();
        }
        let e = g.event(i);
        if is_high_value(&e).expect("generated amounts are numbers") {
            black_box(enrich(e, now));
            count += 1;
        }
    }
    count
}

/// The record of the `window` scenarios: 10,000 keys, 100 events per millisecond of event time.
#[derive(Clone, Debug)]
struct Tick {
    key: u64,
    amount: i64,
    ts: Timestamp,
}

impl EventTime for Tick {
    fn event_time(&self) -> Timestamp {
        self.ts
    }
}

const WINDOW_KEYS: u64 = 10_000;
const WINDOW_MS: i64 = 10_000;

#[inline]
fn make_tick(i: u64) -> Tick {
    Tick {
        key: i.wrapping_mul(7919) % WINDOW_KEYS,
        amount: (i % 100) as i64,
        ts: Timestamp((i / 100) as i64),
    }
}

/// Count and sum per key and window.
#[derive(Clone, Copy)]
struct CountSum;

impl AggregateFunction<Tick> for CountSum {
    type Acc = (u64, i64);
    type Out = (u64, i64);
    fn create(&self) -> (u64, i64) {
        (0, 0)
    }
    #[inline]
    fn add(&self, acc: &mut (u64, i64), t: &Tick) {
        acc.0 += 1;
        acc.1 += t.amount;
    }
    fn merge(&self, acc: &mut (u64, i64), o: (u64, i64)) {
        acc.0 += o.0;
        acc.1 += o.1;
    }
    fn result(&self, acc: &(u64, i64)) -> (u64, i64) {
        *acc
    }
}

fn window_job(n: u64, p: usize) -> u64 {
    window_job_checkpointed(n, p, None)
}

/// A fresh directory for one benchmark run's checkpoints (removed by the caller).
fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!(
        "streamcore-bench-{tag}-{}-{nanos}",
        std::process::id()
    ))
}

/// The `window` job, with a checkpoint every `interval` if given.
fn window_job_checkpointed(n: u64, p: usize, interval: Option<Duration>) -> u64 {
    let sink = CountingSink::new();
    let mut job = Job::new("bench-window");
    job.source("ticks", Generator::new(make_tick).bounded(n))
        .with_watermarks(WatermarkStrategy::monotonous())
        .key_by(|t| t.key)
        .window(Windows::tumbling(Duration::from_millis(WINDOW_MS as u64)))
        .aggregate(CountSum)
        .sink(sink.clone());
    let mut config = JobConfig::default()
        .parallelism(p)
        .watermark_interval(Duration::from_millis(10));
    let dir = interval.map(|i| {
        let dir = scratch_dir("window");
        config = config
            .clone()
            .checkpoints(CheckpointConfig::new(&dir).interval(i));
        dir
    });
    let summary = job.run(config).expect("bench job runs");
    tracing::debug!(%summary, "window job");
    if let Some(dir) = dir {
        let c = summary.checkpoints.expect("checkpoint metrics");
        tracing::info!(
            completed = c.completed,
            last_ms = c.last_duration_ms,
            "checkpoints"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
    sink.count()
}

/// Snapshot and restore of `keys` keys of window state: a job fills one long window with
/// `keys` keys, takes a savepoint and stops; a second job restores from it.
fn checkpoint_state(keys: u64, p: usize) -> anyhow::Result<serde_json::Value> {
    let dir = scratch_dir("state");
    let build = || {
        let mut job = Job::new("bench-state");
        // Event time stands still: the one-hour window never fires, the state only grows.
        job.source(
            "ticks",
            Generator::new(move |i| Tick {
                key: i % keys,
                amount: 1,
                ts: Timestamp(0),
            }),
        )
        .with_watermarks(WatermarkStrategy::monotonous())
        .key_by(|t| t.key)
        .window(Windows::tumbling(Duration::from_secs(3600)))
        .aggregate(CountSum)
        .sink(CountingSink::new());
        job
    };
    let config = |restore: Option<RestoreFrom>| {
        let mut c = CheckpointConfig::new(&dir).interval(Duration::from_secs(3600));
        c.restore = restore;
        JobConfig::default().parallelism(p).checkpoints(c)
    };
    let handle = build().start(config(None))?;
    while handle.metrics().events_ingested < keys {
        std::thread::sleep(Duration::from_millis(5));
    }
    let savepoint = handle.stop_with_savepoint()?;
    let first = handle.join()?;
    let snapshot = first.checkpoints.expect("checkpoint metrics");
    let handle = build().start(config(Some(RestoreFrom::Path(savepoint))))?;
    let second = handle.stop_with_savepoint()?;
    let restored = handle.join()?.checkpoints.expect("checkpoint metrics");
    let _ = std::fs::remove_dir_all(&dir);
    drop(second);
    Ok(serde_json::json!({
        "keys": keys,
        "snapshot_ms": snapshot.last_duration_ms,
        "snapshot_bytes": snapshot.last_size_bytes,
        "load_and_verify_ms": restored.restore_ms,
        "state_restore_ms": restored.state_restore_ms,
        "second_snapshot_ms": restored.last_duration_ms,
    }))
}

/// The same aggregation by hand: one hash map for the open window, emptied when the next
/// window starts (event time is in order here, so one window is open at a time).
fn window_loop(n: u64) -> u64 {
    let mut open: hashbrown::HashMap<u64, (u64, i64), foldhash::fast::RandomState> =
        Default::default();
    let mut window_start = i64::MIN;
    let mut results = 0;
    for i in 0..n {
        let t = make_tick(i);
        let start = t.ts.millis() - t.ts.millis().rem_euclid(WINDOW_MS);
        if start != window_start {
            for r in open.drain() {
                black_box(r);
                results += 1;
            }
            window_start = start;
        }
        let acc = open.entry(t.key).or_insert((0, 0));
        acc.0 += 1;
        acc.1 += t.amount;
    }
    for r in open.drain() {
        black_box(r);
        results += 1;
    }
    results
}

/// The `interval-join` scenario: one generated stream split into two sides (so neither side
/// runs ahead), 1,000 keys, each record joined with the other side's records of its key within
/// ±5 ms.
fn interval_join_job(n: u64, p: usize) -> u64 {
    let sink = CountingSink::new();
    let mut job = Job::new("bench-interval-join");
    let both = job
        .source(
            "ticks",
            Generator::new(|i| {
                (
                    Timestamp((i / 10) as i64),
                    (i.wrapping_mul(7919) % 1000) as u32,
                    i % 2 == 0,
                )
            })
            .bounded(n),
        )
        .with_watermarks(WatermarkStrategy::monotonous());
    let left = both.clone().filter(|r| r.2);
    let right = both.filter(|r| !r.2);
    left.connect(right)
        .key_by(|a| a.1, |b| b.1)
        .interval_join(-5, 5, |a, b| (a.1, a.0, b.0))
        .sink(sink.clone());
    let config = JobConfig::default()
        .parallelism(p)
        .watermark_interval(Duration::from_millis(10));
    job.run(config).expect("bench job runs");
    sink.count()
}

/// The `cep` scenario: the fraud pattern (3 big transactions within 10 minutes, not followed by
/// a verification) over card events.
fn cep_job(n: u64, p: usize) -> u64 {
    let sink = CountingSink::new();
    let mut job = Job::new("bench-cep");
    crate::patterns::fraud_job(&mut job, n).sink(sink.clone());
    job.run(JobConfig::default().parallelism(p))
        .expect("bench job runs");
    sink.count()
}

#[derive(Serialize)]
struct Scenario {
    name: String,
    events_per_second: Vec<f64>,
    median: f64,
    /// Events per second of CPU time used by the whole process (all threads): the per-core
    /// throughput, whatever the number of threads.
    events_per_cpu_second: Vec<f64>,
    median_per_cpu_second: f64,
}

/// CPU time (user + system, all threads) this process used so far, from `/proc/self/stat`
/// (10 ms resolution). `None` where that file does not exist.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// One scenario's measurement: runs it on `n` events and returns its output count.
type Runner = Box<dyn Fn(u64) -> u64>;

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let n = args.events;
    let p = args.parallelism.get();
    let parallel = |kind: &str| format!("{kind} P={p}");
    let all: Vec<(String, Runner)> = vec![
        ("typed P=1".into(), Box::new(|n| typed_job(n, 1))),
        (parallel("typed"), Box::new(move |n| typed_job(n, p))),
        ("typed-loop".into(), Box::new(typed_loop)),
        ("event P=1".into(), Box::new(|n| event_job(n, 1))),
        (parallel("event"), Box::new(move |n| event_job(n, p))),
        ("event-loop".into(), Box::new(event_loop)),
        ("window P=1".into(), Box::new(|n| window_job(n, 1))),
        (parallel("window"), Box::new(move |n| window_job(n, p))),
        ("window-loop".into(), Box::new(window_loop)),
        (
            "interval-join P=1".into(),
            Box::new(|n| interval_join_job(n, 1)),
        ),
        ("cep P=1".into(), Box::new(|n| cep_job(n, 1))),
        (
            parallel("ckpt-none"),
            Box::new(move |n| window_job_checkpointed(n, p, None)),
        ),
        (
            parallel("ckpt-1s"),
            Box::new(move |n| window_job_checkpointed(n, p, Some(Duration::from_secs(1)))),
        ),
    ];
    let mut scenarios: Vec<(String, Runner)> = Vec::new();
    for (name, runner) in all {
        // At -p 1 the parallel scenarios are the P=1 ones: measured once.
        let wanted = args.only.as_deref().is_none_or(|o| name.contains(o));
        if wanted && !scenarios.iter().any(|(seen, _)| *seen == name) {
            scenarios.push((name, runner));
        }
    }
    if args.only.as_deref() == Some("checkpoint-state") {
        println!(
            "checkpoint-state: {}",
            checkpoint_state(args.state_keys, p)?
        );
        return Ok(());
    }
    anyhow::ensure!(!scenarios.is_empty(), "no scenario matches --only");
    let events_for = |name: &str| match name {
        _ if name.starts_with("typed") => n * 10,
        _ if name.starts_with("ckpt") => n * 20,
        _ => n,
    };
    // Amounts cycle through 50 + 25·(i mod 20): 17 of every 20 pass the filter. Window
    // scenarios must produce as many results as the hand-written loop.
    let window_results = scenarios
        .iter()
        .any(|(name, _)| name.starts_with("window"))
        .then(|| window_loop(n));
    let checkpoint_results = scenarios
        .iter()
        .any(|(name, _)| name.starts_with("ckpt"))
        .then(|| window_loop(n * 20));
    let reference_outputs = |name: &str, n: u64| match name {
        // Computed once per size by a first, unmeasured run (the outputs are deterministic).
        "interval-join P=1" => interval_join_job(n, 1),
        "cep P=1" => cep_job(n, 1),
        _ => 0,
    };
    let joins: Vec<(&str, u64)> = scenarios
        .iter()
        .filter(|(name, _)| name.starts_with("interval") || name.starts_with("cep"))
        .map(|(name, _)| (name.as_str(), reference_outputs(name, n)))
        .collect();
    let expected = |name: &str, n: u64| match window_results {
        _ if joins.iter().any(|(j, _)| *j == name) => {
            joins.iter().find(|(j, _)| *j == name).map_or(0, |j| j.1)
        }
        Some(w) if name.starts_with("window") => w,
        _ if name.starts_with("ckpt") => checkpoint_results.unwrap_or(0),
        _ => (n / 20) * 17 + (0..n % 20).filter(|i| 50 + 25 * i > 100).count() as u64,
    };
    let mut results: Vec<Scenario> = scenarios
        .iter()
        .map(|(name, _)| Scenario {
            name: name.clone(),
            events_per_second: Vec::new(),
            median: 0.0,
            events_per_cpu_second: Vec::new(),
            median_per_cpu_second: 0.0,
        })
        .collect();
    for round in 0..args.runs {
        for (i, (name, f)) in scenarios.iter().enumerate() {
            let n = events_for(name);
            let cpu_before = process_cpu_seconds();
            let started = Instant::now();
            let out = f(n);
            let secs = started.elapsed().as_secs_f64();
            if let (Some(a), Some(b)) = (cpu_before, process_cpu_seconds()) {
                results[i]
                    .events_per_cpu_second
                    .push(n as f64 / (b - a).max(0.01));
            }
            let want = expected(name, n);
            anyhow::ensure!(out == want, "{name}: {out} outputs, expected {want}");
            results[i].events_per_second.push(n as f64 / secs);
            tracing::info!(round, name, eps = n as f64 / secs, "measured");
        }
    }
    for r in &mut results {
        let mut v = r.events_per_second.clone();
        v.sort_by(f64::total_cmp);
        r.median = v[v.len() / 2];
        let mut c = r.events_per_cpu_second.clone();
        c.sort_by(f64::total_cmp);
        r.median_per_cpu_second = c.get(c.len() / 2).copied().unwrap_or(f64::NAN);
    }
    let mc = |name: &str| {
        results
            .iter()
            .find(|r| r.name == name)
            .map_or(f64::NAN, |r| r.median_per_cpu_second)
    };
    let m = |name: &str| {
        results
            .iter()
            .find(|r| r.name == name)
            .map_or(f64::NAN, |r| r.median)
    };
    // A scenario against itself (at -p 1) is no ratio: NaN, left out of the report.
    let ratio = |a: &str, b: &str| {
        let value = if a == b { f64::NAN } else { m(a) / m(b) };
        (format!("{a} / {b}"), value)
    };
    let (typed, event, window) = (parallel("typed"), parallel("event"), parallel("window"));
    let ratios = [
        ratio("typed P=1", "typed-loop"),
        ratio(&typed, "typed P=1"),
        ratio("event P=1", "event-loop"),
        ratio(&event, "event P=1"),
        ratio("window P=1", "window-loop"),
        (
            "window P=1 / window-loop, per CPU-second".into(),
            mc("window P=1") / mc("window-loop"),
        ),
        (
            format!("{window} / window-loop, per CPU-second"),
            mc(&window) / mc("window-loop"),
        ),
        ratio(&window, "window P=1"),
        (
            format!("ckpt-1s P={p} / ckpt-none P={p} (aim >= 0.95)"),
            m(&parallel("ckpt-1s")) / m(&parallel("ckpt-none")),
        ),
        (
            "event P=1 / Python seed (47,000 ev/s)".into(),
            m("event P=1") / 47_000.0,
        ),
    ];
    let state = match args.only {
        None => Some(checkpoint_state(args.state_keys, p)?),
        Some(_) => None,
    };
    if args.json {
        let ratios: Vec<_> = ratios
            .iter()
            .map(|(k, v)| serde_json::json!({"ratio": k, "value": v}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"events": n, "typed_events": n * 10, "runs": args.runs, "scenarios": results, "ratios": ratios, "checkpoint_state": state})
            )?
        );
        return Ok(());
    }
    println!(
        "{n} events per measurement ({} for the typed scenarios), median of {} interleaved runs",
        n * 10,
        args.runs
    );
    println!(
        "{:<14} {:>16} {:>20}",
        "scenario", "events/s", "events/CPU-second"
    );
    for r in &results {
        println!(
            "{:<14} {:>16.0} {:>20.0}",
            r.name, r.median, r.median_per_cpu_second
        );
    }
    for (k, v) in ratios.iter().filter(|(_, v)| v.is_finite()) {
        println!("{k:<40} {v:>8.2}");
    }
    if let Some(state) = state {
        println!("checkpoint-state: {state}");
    }
    Ok(())
}
