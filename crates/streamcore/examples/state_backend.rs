//! Keyed rolling aggregation over many distinct keys on the memory or the LSM state backend:
//! the throughput benchmark of docs/benchmarks.md ("State backends"). Run it under
//! `/usr/bin/time -v` for the peak RSS; `bench/state_backend.sh` does both backends.
//!
//! ```text
//! cargo run --release -p streamcore --features lsm --example state_backend -- \
//!     --backend lsm --keys 100000000 --events 200000000 --budget 1gb --dir /var/tmp
//! ```
//!
//! Event `i` has key `(i % keys) × C` (C odd: every key distinct, in scattered order) and
//! value `i`; the aggregate is a count and a sum per key. With `events = 2 × keys` every key is
//! created once and updated once: with a budget smaller than the state, the second pass reads
//! every key back from the LSM tree.

use std::time::Instant;
use streamcore::sink::CountingSink;
use streamcore::source::Generator;
use streamcore::state::{parse_bytes, StateBackendKind, StateConfig};
use streamcore::{Job, JobConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let backend: StateBackendKind = arg(&args, "--backend")
        .unwrap_or_else(|| "memory".into())
        .parse()
        .expect("--backend memory|lsm");
    let keys: u64 = arg(&args, "--keys").map_or(1_000_000, |v| v.parse().expect("--keys N"));
    let events: u64 = arg(&args, "--events").map_or(2 * keys, |v| v.parse().expect("--events N"));
    let budget = arg(&args, "--budget").map_or(1 << 30, |v| parse_bytes(&v).expect("--budget"));
    let parallelism: usize = arg(&args, "--parallelism").map_or(1, |v| v.parse().expect("-p"));
    let mut state = match backend {
        StateBackendKind::Memory => StateConfig::memory(),
        StateBackendKind::Lsm => StateConfig::lsm(budget),
    };
    if let Some(dir) = arg(&args, "--dir") {
        state = state.dir(dir);
    }

    let mut job = Job::new("state-backend-bench");
    let sink = CountingSink::new();
    job.source(
        "events",
        Generator::new(move |i| ((i % keys).wrapping_mul(0x9e37_79b9_7f4a_7c15), i))
            .bounded(events),
    )
    .key_by(|e: &(u64, u64)| e.0)
    .aggregate(
        |_: &u64| (0u64, 0u64),
        |acc: &mut (u64, u64), e: (u64, u64)| {
            acc.0 += 1;
            acc.1 = acc.1.wrapping_add(e.1);
        },
        |_: &u64, acc: &(u64, u64)| acc.0,
    )
    .sink(sink.clone());
    let started = Instant::now();
    let summary = job
        .run(JobConfig::default().parallelism(parallelism).state(state))
        .expect("the job runs");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(sink.count(), events);
    let metric = |name: &str| -> i64 {
        summary
            .operators
            .iter()
            .filter_map(|o| o.metrics.get(name))
            .sum()
    };
    let (hits, misses) = (metric("state_cache_hits"), metric("state_cache_misses"));
    println!(
        "backend={backend} keys={keys} events={events} budget={budget} p={parallelism} \
         seconds={secs:.1} events_per_s={:.0} cache_hit_rate={:.3} evictions={} disk_bytes={}",
        events as f64 / secs,
        if hits + misses > 0 {
            hits as f64 / (hits + misses) as f64
        } else {
            1.0
        },
        metric("state_cache_evictions"),
        // A job-wide gauge every instance reports: the largest is the tree's size.
        summary
            .operators
            .iter()
            .filter_map(|o| o.metrics.get("state_disk_bytes"))
            .max()
            .copied()
            .unwrap_or(0),
    );
}
