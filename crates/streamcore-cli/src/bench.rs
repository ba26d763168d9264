//! `streamcore bench`: measures, in one run and interleaved (A B C … A B C …), the engine
//! against hand-written loops doing the same work, and prints events/s and ratios.
//!
//! Scenarios:
//! - `typed`: generator → filter → map → counting sink on plain structs, P = 1 and P = 2;
//! - `typed-loop`: the same work as one plain Rust loop (the practical limit);
//! - `event`: the demo pipeline (filter amount > 100, enrich) on `Event` values, P = 1 and 2;
//! - `event-loop`: the demo work on `Event` values as a plain loop.

use crate::demo::{enrich, is_high_value, now_secs, pipeline};
use clap::Args;
use serde::Serialize;
use std::hint::black_box;
use std::time::Instant;
use streamcore::sink::CountingSink;
use streamcore::source::Generator;
use streamcore::{Job, JobConfig};
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

#[derive(Serialize)]
struct Scenario {
    name: &'static str,
    events_per_second: Vec<f64>,
    median: f64,
}

type Runner = fn(u64) -> u64;

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let n = args.events;
    let all: [(&'static str, Runner); 6] = [
        ("typed P=1", |n| typed_job(n, 1)),
        ("typed P=2", |n| typed_job(n, 2)),
        ("typed-loop", typed_loop),
        ("event P=1", |n| event_job(n, 1)),
        ("event P=2", |n| event_job(n, 2)),
        ("event-loop", event_loop),
    ];
    let scenarios: Vec<_> = all
        .into_iter()
        .filter(|(name, _)| args.only.as_deref().is_none_or(|o| name.contains(o)))
        .collect();
    anyhow::ensure!(!scenarios.is_empty(), "no scenario matches --only");
    let events_for = |name: &str| if name.starts_with("typed") { n * 10 } else { n };
    // Amounts cycle through 50 + 25·(i mod 20): 17 of every 20 pass the filter.
    let expected =
        |n: u64| (n / 20) * 17 + (0..n % 20).filter(|i| 50 + 25 * i > 100).count() as u64;
    let mut results: Vec<Scenario> = scenarios
        .iter()
        .map(|(name, _)| Scenario {
            name,
            events_per_second: Vec::new(),
            median: 0.0,
        })
        .collect();
    for round in 0..args.runs {
        for (i, (name, f)) in scenarios.iter().enumerate() {
            let n = events_for(name);
            let started = Instant::now();
            let out = f(n);
            let secs = started.elapsed().as_secs_f64();
            let want = expected(n);
            anyhow::ensure!(out == want, "{name}: {out} outputs, expected {want}");
            results[i].events_per_second.push(n as f64 / secs);
            tracing::info!(round, name, eps = n as f64 / secs, "measured");
        }
    }
    for r in &mut results {
        let mut v = r.events_per_second.clone();
        v.sort_by(f64::total_cmp);
        r.median = v[v.len() / 2];
    }
    let m = |name: &str| {
        results
            .iter()
            .find(|r| r.name == name)
            .map_or(f64::NAN, |r| r.median)
    };
    let ratios = [
        ("typed P=1 / typed-loop", m("typed P=1") / m("typed-loop")),
        ("typed P=2 / typed P=1", m("typed P=2") / m("typed P=1")),
        ("event P=1 / event-loop", m("event P=1") / m("event-loop")),
        ("event P=2 / event P=1", m("event P=2") / m("event P=1")),
        (
            "event P=1 / Python seed (47,000 ev/s)",
            m("event P=1") / 47_000.0,
        ),
    ];
    if args.json {
        let ratios: Vec<_> = ratios
            .iter()
            .map(|(k, v)| serde_json::json!({"ratio": k, "value": v}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"events": n, "typed_events": n * 10, "runs": args.runs, "scenarios": results, "ratios": ratios})
            )?
        );
        return Ok(());
    }
    println!(
        "{n} events per measurement ({} for the typed scenarios), median of {} interleaved runs",
        n * 10,
        args.runs
    );
    println!("{:<14} {:>16}", "scenario", "events/s");
    for r in &results {
        println!("{:<14} {:>16.0}", r.name, r.median);
    }
    for (k, v) in ratios.iter().filter(|(_, v)| v.is_finite()) {
        println!("{k:<40} {v:>8.2}");
    }
    Ok(())
}
