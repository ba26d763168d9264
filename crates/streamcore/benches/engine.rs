//! Criterion benchmarks of the engine: whole jobs on the built-in generator, one per
//! iteration, run as the binary runs them (a thread per stage instance, batches between
//! them), at parallelism 1 so that the numbers compare across machines as ratios.
//!
//! - `pipeline/*`: a stateless chain, a keyed rolling aggregate (through a key-by exchange),
//!   event-time tumbling windows.
//! - `rows/*`: the relational record [`Row`] against the typed equivalent, same generator
//!   content: filter → project → keyed rolling sum, and a keyed tumbling-window count.
//! - `handover/*`: what a key-group change costs (docs/kafka.md, state hand-over): a job that
//!   adopts the state of 100,000 keys mid-run against the same job without the change.
//!
//! `cargo bench -p streamcore --bench engine`; this machine is shared and noisy, so compare
//! benchmarks of one run with each other (docs/benchmarks.md), not absolute times across runs.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use streamcore::checkpoint::{encode, CheckpointConfig, CheckpointStorage, LocalCheckpointStorage};
use streamcore::row::{Row, Scalar};
use streamcore::sink::CountingSink;
use streamcore::source::Generator;
use streamcore::state::{KeyGroupChange, KeyGroupState, DEFAULT_KEY_GROUPS};
use streamcore::window::{aggregates::Sum, Windows};
use streamcore::{
    Job, JobConfig, Result, Source, SourcePoll, SourceReader, TaskContext, Timestamp,
    WatermarkStrategy,
};

/// The allocator the `streamcore` binary runs with: records are allocated on one worker
/// thread and freed on another, which glibc's allocator handles badly (rows, strings).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: u64 = 200_000;

fn run(job: Job) {
    job.run(JobConfig::default().parallelism(1)).unwrap();
}

fn filter_map(sink: CountingSink) -> Job {
    let mut job = Job::new("bench");
    job.source("gen", Generator::new(|i| i).bounded(EVENTS))
        .filter(|x: &u64| x % 3 != 0)
        .map(|x| x.wrapping_mul(31))
        .sink(sink);
    job
}

fn keyed_reduce(sink: CountingSink) -> Job {
    let mut job = Job::new("bench");
    job.source("gen", Generator::new(|i| (i % 10_000, i)).bounded(EVENTS))
        .key_by(|r: &(u64, u64)| r.0)
        .reduce(|a, b| (a.0, a.1 + b.1))
        .sink(sink);
    job
}

fn tumbling_windows(sink: CountingSink) -> Job {
    let mut job = Job::new("bench");
    job.source(
        "gen",
        Generator::new(|i| (Timestamp(i as i64), i % 1_000, i)).bounded(EVENTS),
    )
    .with_watermarks(WatermarkStrategy::monotonous())
    .key_by(|r: &(Timestamp, u64, u64)| r.1)
    .window(Windows::tumbling(Duration::from_millis(1_000)))
    .aggregate(Sum::new(|r: &(Timestamp, u64, u64)| r.2))
    .sink(sink);
    job
}

fn pipeline(c: &mut Criterion) {
    type Build = fn(CountingSink) -> Job;
    let cases: [(&str, Build, u64); 3] = [
        ("filter_map", filter_map, EVENTS - EVENTS.div_ceil(3)),
        ("keyed_reduce_10k_keys", keyed_reduce, EVENTS),
        // 200 one-second windows × 1,000 keys.
        ("tumbling_window_sum_1k_keys", tumbling_windows, EVENTS),
    ];
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(EVENTS));
    g.sample_size(20);
    for (name, build, outputs) in cases {
        // Each job does all its work: checked once, outside the measurement.
        let sink = CountingSink::new();
        run(build(sink.clone()));
        assert_eq!(sink.count(), outputs, "{name}");
        g.bench_function(name, |b| b.iter(|| run(build(CountingSink::new()))));
    }
    g.finish();
}

/// Bid `i` as a tuple: (dateTime, auction, price, bidder) — tuples keep their event time
/// first.
fn typed_bid(i: u64) -> TypedBid {
    (
        Timestamp(i as i64),
        (i % 1_000) as i64,
        i as i64,
        (i % 3) as u8,
    )
}

/// Bid `i` as a row, the same values.
fn row_bid(i: u64) -> Row {
    Row::of([
        Scalar::Int((i % 1_000) as i64),
        Scalar::Int(i as i64),
        Scalar::Int((i % 3) as i64),
        Scalar::TimestampMs(i as i64),
    ])
    .with_time_column(3)
}

type TypedBid = (Timestamp, i64, i64, u8);

fn typed_filter_project_sum(sink: CountingSink) -> Job {
    let mut job = Job::new("bench");
    job.source("gen", Generator::new(typed_bid).bounded(EVENTS))
        .filter(|b: &TypedBid| b.2 % 3 != 0)
        .map(|b| (b.1, b.2))
        .key_by(|r: &(i64, i64)| r.0)
        .reduce(|a, b| (a.0, a.1 + b.1))
        .sink(sink);
    job
}

fn row_filter_project_sum(sink: CountingSink) -> Job {
    let mut job = Job::new("bench");
    job.source("gen", Generator::new(row_bid).bounded(EVENTS))
        .filter(|r: &Row| r.get(1).as_i64().is_some_and(|p| p % 3 != 0))
        .map(|r| r.project(&[0, 1]))
        .key_by(|r: &Row| r.get(0).clone())
        .reduce(|a, b| {
            let sum = a.get(1).as_i64().unwrap_or(0) + b.get(1).as_i64().unwrap_or(0);
            Row::of([a.values[0].clone(), Scalar::Int(sum)])
        })
        .sink(sink);
    job
}

fn typed_window_count(sink: CountingSink) -> Job {
    let mut job = Job::new("bench");
    job.source("gen", Generator::new(typed_bid).bounded(EVENTS))
        .with_watermarks(WatermarkStrategy::monotonous())
        .key_by(|b: &TypedBid| b.1)
        .window(Windows::tumbling(Duration::from_millis(1_000)))
        .count()
        .sink(sink);
    job
}

fn row_window_count(sink: CountingSink) -> Job {
    let mut job = Job::new("bench");
    job.source("gen", Generator::new(row_bid).bounded(EVENTS))
        .with_watermarks(WatermarkStrategy::monotonous())
        .key_by(|r: &Row| r.get(0).clone())
        .window(Windows::tumbling(Duration::from_millis(1_000)))
        .count()
        .sink(sink);
    job
}

/// Typed and row versions of one job, side by side in one group (compare them as a ratio).
fn rows(c: &mut Criterion) {
    type Build = fn(CountingSink) -> Job;
    let kept = EVENTS - EVENTS.div_ceil(3);
    let cases: [(&str, Build, u64); 4] = [
        ("typed_filter_project_sum", typed_filter_project_sum, kept),
        ("row_filter_project_sum", row_filter_project_sum, kept),
        // 200 one-second windows × 1,000 keys.
        ("typed_window_count_1k_keys", typed_window_count, EVENTS),
        ("row_window_count_1k_keys", row_window_count, EVENTS),
    ];
    let mut g = c.benchmark_group("rows");
    g.throughput(Throughput::Elements(EVENTS));
    g.sample_size(20);
    for (name, build, outputs) in cases {
        let sink = CountingSink::new();
        run(build(sink.clone()));
        assert_eq!(sink.count(), outputs, "{name}");
        g.bench_function(name, |b| b.iter(|| run(build(CountingSink::new()))));
    }
    g.finish();
}

/// Emits `records`; before them, hands `change` to the runtime; after them, asks for a
/// checkpoint and reports where it was written (when `report` is set).
struct Scripted {
    change: Option<KeyGroupChange>,
    records: Option<Vec<(u64, u64)>>,
    report: Option<Arc<Mutex<Option<PathBuf>>>>,
    waiting_for: Option<u64>,
}

impl SourceReader<(u64, u64)> for Scripted {
    fn poll_batch(
        &mut self,
        out: &mut Vec<(u64, u64)>,
        _: usize,
        ctx: &mut TaskContext,
    ) -> Result<SourcePoll> {
        if let Some(change) = self.change.take() {
            ctx.change_key_groups(change);
        }
        if let Some(records) = self.records.take() {
            out.extend(records);
            return Ok(SourcePoll::Ready);
        }
        let Some(report) = &self.report else {
            return Ok(SourcePoll::Finished);
        };
        match self.waiting_for {
            None => {
                self.waiting_for = ctx.request_checkpoint();
                Ok(SourcePoll::Idle)
            }
            Some(id) if ctx.completed_checkpoint() >= id => {
                *report.lock().unwrap() = ctx
                    .completed_checkpoint_location()
                    .map(|l| l.as_path().to_path_buf());
                Ok(SourcePoll::Finished)
            }
            Some(_) => Ok(SourcePoll::Idle),
        }
    }
    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        encode(&self.records.is_some())
    }
}

struct ScriptedSource(Option<Scripted>);

impl Source<(u64, u64)> for ScriptedSource {
    type Reader = Scripted;
    fn parallelism(&self, _: usize) -> usize {
        1
    }
    fn create_readers(&mut self, _: usize) -> Result<Vec<Scripted>> {
        Ok(vec![self.0.take().expect("one run")])
    }
    fn supports_checkpoints(&self) -> bool {
        true
    }
}

/// `records` through `key_by(key).reduce(sum)` with checkpoints in `dir`.
fn counts_job(reader: Scripted, dir: &std::path::Path) {
    let mut job = Job::new("counts");
    job.source("script", ScriptedSource(Some(reader)))
        .key_by(|r: &(u64, u64)| r.0)
        .reduce(|a, b| (a.0, a.1 + b.1))
        .sink(CountingSink::new());
    job.run(
        JobConfig::default()
            .parallelism(1)
            .checkpoints(CheckpointConfig::new(dir).interval(Duration::from_secs(3600))),
    )
    .unwrap();
}

fn handover(c: &mut Criterion) {
    const KEYS: u64 = 100_000;
    // The state to adopt: 100,000 keys' counts, out of a checkpoint.
    let setup = tempfile::tempdir().unwrap();
    let location = Arc::new(Mutex::new(None));
    counts_job(
        Scripted {
            change: None,
            records: Some((0..KEYS).map(|k| (k, 1)).collect()),
            report: Some(location.clone()),
            waiting_for: None,
        },
        setup.path(),
    );
    let location = location
        .lock()
        .unwrap()
        .clone()
        .expect("checkpoint written");
    let checkpoint = LocalCheckpointStorage::new(setup.path())
        .unwrap()
        .load(&location.into())
        .unwrap();
    let all = 0..DEFAULT_KEY_GROUPS;
    let state = KeyGroupState::from_checkpoint(&checkpoint, std::slice::from_ref(&all));
    let few: Vec<(u64, u64)> = (0..1_000).map(|k| (k, 1)).collect();

    let mut g = c.benchmark_group("handover");
    g.sample_size(20);
    g.bench_function("job_without_change", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |dir| {
                let reader = Scripted {
                    change: None,
                    records: Some(few.clone()),
                    report: None,
                    waiting_for: None,
                };
                counts_job(reader, dir.path())
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("job_adopting_100k_keys", |b| {
        b.iter_batched(
            || {
                let change = KeyGroupChange::adopt([all.clone()], state.clone());
                (tempfile::tempdir().unwrap(), change)
            },
            |(dir, change)| {
                let reader = Scripted {
                    change: Some(change),
                    records: Some(few.clone()),
                    report: None,
                    waiting_for: None,
                };
                counts_job(reader, dir.path())
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, pipeline, rows, handover);
criterion_main!(benches);
