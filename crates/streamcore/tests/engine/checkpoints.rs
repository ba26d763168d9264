//! Checkpoints end to end, in process: a windowed keyed job is cancelled mid-run (the
//! in-process stand-in for a crash; the CLI's crash test kills real processes) and restored
//! from its latest checkpoint, also with another parallelism; its committed output must equal
//! a run that never stopped — nothing lost, nothing twice. Also: savepoints, stop with
//! savepoint, a finished job's final checkpoint, and the refusal of operators and sources
//! that cannot checkpoint.

use crate::common;

use common::{cancel_after_checkpoints, Committed, TxSink};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use streamcore::checkpoint::{encode, CheckpointConfig, RestoreFrom};
use streamcore::source::Generator;
use streamcore::state::{KeyedContext, KeyedProcessFunction, MapState, TimeDomain};
use streamcore::window::{aggregates::Sum, Windows};
use streamcore::{Data, Job, JobConfig, Output, Result, Timestamp, WatermarkStrategy};

/// (window end, key, sum) — sorted, the comparable form of the output.
type Row = (i64, u32, u64);

const EVENTS: u64 = 30_000;

/// Event `i`: time `i` ms, key `i % 13`, value `i`. Rate-limited so that checkpoints happen
/// along the way.
fn build(committed: &Committed<Row>, rate: Option<f64>) -> Job {
    let mut job = Job::new("windowed-sums");
    let mut source = Generator::new(|i| (Timestamp(i as i64), (i % 13) as u32, i)).bounded(EVENTS);
    if let Some(r) = rate {
        source = source.rate(r);
    }
    job.source("events", source)
        .with_watermarks(WatermarkStrategy::monotonous())
        .key_by(|e: &(Timestamp, u32, u64)| e.1)
        .window(Windows::tumbling(Duration::from_millis(100)))
        .aggregate(Sum::new(|e: &(Timestamp, u32, u64)| e.2))
        .map(|r| (r.window.end.millis(), r.key, r.value))
        .sink(TxSink {
            committed: committed.clone(),
        });
    job
}

fn rows(committed: &Committed<Row>) -> Vec<Row> {
    let mut v: Vec<Row> = committed
        .lock()
        .unwrap()
        .values()
        .flatten()
        .copied()
        .collect();
    v.sort();
    v
}

/// What the job computes, by a plain loop.
fn expected() -> Vec<Row> {
    let mut sums: BTreeMap<(i64, u32), u64> = BTreeMap::new();
    for i in 0..EVENTS {
        let end = (i as i64 / 100 + 1) * 100;
        *sums.entry((end, (i % 13) as u32)).or_default() += i;
    }
    sums.into_iter().map(|((e, k), s)| (e, k, s)).collect()
}

/// Compares the committed output with [`expected`], reporting the first difference only.
fn check(committed: &Committed<Row>, context: &str) {
    let got = rows(committed);
    let want = expected();
    if got != want {
        let at = got.iter().zip(&want).position(|(g, w)| g != w);
        panic!(
            "{context}: {} rows committed, {} expected; first difference at {at:?}: {:?} vs {:?}",
            got.len(),
            want.len(),
            at.map(|i| got[i]),
            at.map(|i| want[i])
        );
    }
}

fn config(dir: &Path, parallelism: usize, restore: Option<RestoreFrom>) -> JobConfig {
    let mut c = CheckpointConfig::new(dir).interval(Duration::from_millis(10));
    c.restore = restore;
    JobConfig::default()
        .parallelism(parallelism)
        .batch_size(64)
        .checkpoints(c)
}

#[test]
fn a_run_without_interruption_commits_everything_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let committed = Committed::default();
    let summary = build(&committed, Some(200_000.0))
        .run(config(dir.path(), 2, None))
        .unwrap();
    check(&committed, "uninterrupted");
    let c = summary.checkpoints.expect("checkpoint metrics");
    assert!(c.completed >= 2, "{c:?}");
    assert_eq!(c.failed, 0);
}

#[test]
fn cancelled_runs_restored_from_the_latest_checkpoint_give_the_uninterrupted_output() {
    for (p1, p2) in [(1, 1), (2, 2), (2, 1), (1, 3)] {
        let dir = tempfile::tempdir().unwrap();
        let committed = Committed::default();
        let handle = build(&committed, Some(50_000.0))
            .start(config(dir.path(), p1, None))
            .unwrap();
        cancel_after_checkpoints(handle, 3);
        let partial = rows(&committed);
        assert!(
            partial.len() < expected().len(),
            "the first run was cut short"
        );
        let summary = build(&committed, None)
            .run(config(dir.path(), p2, Some(RestoreFrom::Latest)))
            .unwrap();
        assert!(summary.checkpoints.unwrap().restored_from.is_some());
        check(&committed, &format!("parallelism {p1} then {p2}"));
    }
}

#[test]
fn stop_with_savepoint_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let committed = Committed::default();
    let handle = build(&committed, Some(100_000.0))
        .start(config(dir.path(), 2, None))
        .unwrap();
    std::thread::sleep(Duration::from_millis(60));
    let savepoint = handle.stop_with_savepoint().unwrap();
    assert!(savepoint
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("sp-"));
    let summary = handle.join().unwrap();
    assert!(summary.checkpoints.unwrap().stopped_with_savepoint);
    build(&committed, None)
        .run(config(dir.path(), 2, Some(RestoreFrom::Path(savepoint))))
        .unwrap();
    check(&committed, "resumed from the savepoint");
}

#[test]
fn restoring_a_finished_job_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let committed = Committed::default();
    build(&committed, None)
        .run(config(dir.path(), 2, None))
        .unwrap();
    let summary = build(&committed, None)
        .run(config(dir.path(), 2, Some(RestoreFrom::Latest)))
        .unwrap();
    assert!(summary.checkpoints.unwrap().already_finished);
    assert_eq!(summary.events_ingested, 0);
    // The restore re-commits the final checkpoint's transactions: idempotent, no duplicate.
    check(&committed, "after restoring the final checkpoint");
}

#[test]
fn operators_and_sources_that_cannot_checkpoint_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::new("positionless");
    job.source("v", Positionless).collect();
    let err = job
        .run(config(dir.path(), 1, None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("source `v` cannot record its position"),
        "{err}"
    );

    let mut job = Job::new("opaque");
    job.source("g", Generator::new(|i| i).bounded(10))
        .apply("opaque", Opaque)
        .collect();
    let err = job
        .run(config(dir.path(), 1, None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not support checkpoints"), "{err}");
}

/// Tumbling sums by hand: per key, a sum per window end in `MapState`, emitted by an
/// event-time timer at the window's last millisecond — state and timers both checkpointed.
#[derive(Clone)]
struct TimerSums;

impl KeyedProcessFunction<u32, (Timestamp, u32, u64)> for TimerSums {
    type State = MapState<i64, u64>;
    type Out = Row;
    fn process(
        &mut self,
        (t, _, v): (Timestamp, u32, u64),
        ctx: &mut KeyedContext<'_, u32, MapState<i64, u64>>,
        _out: &mut Output<Row>,
    ) {
        let end = (t.millis() / 100 + 1) * 100;
        *ctx.state().entry(end).or_default() += v;
        ctx.register_event_time_timer(Timestamp(end - 1));
    }
    fn on_timer(
        &mut self,
        time: Timestamp,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_, u32, MapState<i64, u64>>,
        out: &mut Output<Row>,
    ) {
        let end = time.millis() + 1;
        let key = *ctx.key();
        if let Some(sum) = ctx.state().remove(&end) {
            out.emit((end, key, sum));
        }
    }
}

#[test]
fn keyed_process_state_and_timers_survive_a_restore() {
    let build = |committed: &Committed<Row>, rate: Option<f64>| {
        let mut job = Job::new("timer-sums");
        let mut source =
            Generator::new(|i| (Timestamp(i as i64), (i % 13) as u32, i)).bounded(EVENTS);
        if let Some(r) = rate {
            source = source.rate(r);
        }
        job.source("events", source)
            .with_watermarks(WatermarkStrategy::monotonous())
            .key_by(|e: &(Timestamp, u32, u64)| e.1)
            .process(TimerSums)
            .sink(TxSink {
                committed: committed.clone(),
            });
        job
    };
    for (p1, p2) in [(2, 2), (2, 3)] {
        let dir = tempfile::tempdir().unwrap();
        let committed = Committed::default();
        let handle = build(&committed, Some(50_000.0))
            .start(config(dir.path(), p1, None))
            .unwrap();
        cancel_after_checkpoints(handle, 3);
        build(&committed, None)
            .run(config(dir.path(), p2, Some(RestoreFrom::Latest)))
            .unwrap();
        check(
            &committed,
            &format!("process function, parallelism {p1} then {p2}"),
        );
    }
}

/// A user operator that keeps state it cannot save, and says so.
#[derive(Clone)]
struct Opaque;

impl streamcore::Operator for Opaque {
    type In = u64;
    type Out = u64;
    fn process_batch(
        &mut self,
        batch: Vec<u64>,
        _: &mut streamcore::TaskContext,
        out: &mut Output<u64>,
    ) -> Result<()> {
        out.emit_batch(batch);
        Ok(())
    }
    fn supports_checkpoints(&self) -> bool {
        false
    }
}

/// Runs the job `build` makes once without interruption, and once cancelled after three
/// checkpoints and restored (parallelism `p1`, then `p2`); returns both committed outputs,
/// sorted.
fn uninterrupted_and_restored<T>(
    build: impl Fn(&Committed<T>, Option<f64>) -> Job,
    p1: usize,
    p2: usize,
) -> (Vec<T>, Vec<T>)
where
    T: Data + Serialize + DeserializeOwned + Ord,
{
    let sorted = |c: &Committed<T>| {
        let mut v: Vec<T> = c.lock().unwrap().values().flatten().cloned().collect();
        v.sort();
        v
    };
    let dir = tempfile::tempdir().unwrap();
    let reference = Committed::default();
    build(&reference, None)
        .run(config(&dir.path().join("reference"), p2, None))
        .unwrap();
    let committed = Committed::default();
    let ckpt = dir.path().join("restored");
    let handle = build(&committed, Some(50_000.0))
        .start(config(&ckpt, p1, None))
        .unwrap();
    cancel_after_checkpoints(handle, 3);
    build(&committed, None)
        .run(config(&ckpt, p2, Some(RestoreFrom::Latest)))
        .unwrap();
    (sorted(&reference), sorted(&committed))
}

/// (time, key, value) on two sides with different keys per time.
type Side = (Timestamp, u32, u64);

#[test]
fn interval_join_buffers_survive_a_restore() {
    use streamcore::join::JoinIndexing::{self, Adaptive, Keyed, Scanned};
    // The interrupted run lays its buffers out as `first`, the restored one as `then`: the
    // scanned sides' records (operator state) and the keyed ones (key groups) move between
    // layouts and instances.
    let job = |first: JoinIndexing, then: JoinIndexing| {
        move |committed: &Committed<(u64, u64)>, rate: Option<f64>| {
            let mut job = Job::new("interval");
            let side = |salt: u64| {
                let g = Generator::new(move |i| (Timestamp(i as i64), ((i * salt) % 11) as u32, i))
                    .bounded(EVENTS);
                match rate {
                    Some(r) => g.rate(r),
                    None => g,
                }
            };
            let left = job
                .source("left", side(3))
                .with_watermarks(WatermarkStrategy::monotonous());
            let right = job
                .source("right", side(7))
                .with_watermarks(WatermarkStrategy::monotonous());
            let indexing = if rate.is_some() { first } else { then };
            left.connect(right)
                .key_by(|a: &Side| a.1, |b: &Side| b.1)
                .interval_join_with(-20, 20, indexing, |a: &Side, b: &Side| (a.2, b.2))
                .sink(TxSink {
                    committed: committed.clone(),
                });
            job
        }
    };
    for (p1, p2, first, then) in [
        (2, 2, Adaptive, Adaptive),
        (1, 2, Adaptive, Adaptive),
        (2, 1, Scanned, Keyed),
        (1, 2, Keyed, Scanned),
    ] {
        let (want, got) = uninterrupted_and_restored(job(first, then), p1, p2);
        assert!(!want.is_empty());
        assert_eq!(
            got.len(),
            want.len(),
            "interval join, parallelism {p1} then {p2}, {first:?} then {then:?}"
        );
        assert!(
            got == want,
            "interval join, parallelism {p1} then {p2}, {first:?} then {then:?}"
        );
    }
}

#[test]
fn a_join_of_one_source_with_itself_survives_a_restore_fused_into_the_sources_task() {
    // At parallelism 1 both sides of the join come from one task, so the join's exchange runs
    // on that task's thread (two senders, one merge): barriers from both sides align there.
    let job = |committed: &Committed<(u64, u64)>, rate: Option<f64>| {
        let mut job = Job::new("self-join");
        let g = Generator::new(|i| (Timestamp(i as i64), (i % 11) as u32, i)).bounded(EVENTS);
        let g = match rate {
            Some(r) => g.rate(r),
            None => g,
        };
        let events = job
            .source("events", g)
            .with_watermarks(WatermarkStrategy::monotonous());
        let even = events.clone().filter(|e: &Side| e.2 % 2 == 0);
        let odd = events.filter(|e: &Side| e.2 % 2 == 1);
        even.connect(odd)
            .key_by(|a: &Side| a.1, |b: &Side| b.1)
            .interval_join(-30, 30, |a: &Side, b: &Side| (a.2, b.2))
            .sink(TxSink {
                committed: committed.clone(),
            });
        job
    };
    for (p1, p2) in [(1, 1), (1, 2), (2, 1)] {
        let (want, got) = uninterrupted_and_restored(job, p1, p2);
        assert!(!want.is_empty());
        assert!(got == want, "self-join, parallelism {p1} then {p2}");
    }
}

#[test]
fn cep_partial_matches_survive_a_restore() {
    use streamcore::cep::Pattern;
    let build = |committed: &Committed<(u32, u64, u64)>, rate: Option<f64>| {
        let mut job = Job::new("cep");
        let mut source =
            Generator::new(|i| (Timestamp(i as i64), (i % 17) as u32, i)).bounded(EVENTS);
        if let Some(r) = rate {
            source = source.rate(r);
        }
        // Per key: a value divisible by 5, later one divisible by 7, within 400 ms.
        let pattern = Pattern::begin("five", |e: &Side| e.2 % 5 == 0)
            .followed_by("seven", |e: &Side| e.2 % 7 == 0)
            .within(Duration::from_millis(400));
        job.source("events", source)
            .with_watermarks(WatermarkStrategy::monotonous())
            .key_by(|e: &Side| e.1)
            .pattern(pattern)
            .map(|m| (m.get("five")[0].1, m.get("five")[0].2, m.get("seven")[0].2))
            .sink(TxSink {
                committed: committed.clone(),
            });
        job
    };
    for (p1, p2) in [(2, 2), (2, 1)] {
        let (want, got) = uninterrupted_and_restored(build, p1, p2);
        assert!(!want.is_empty());
        assert_eq!(got.len(), want.len(), "cep, parallelism {p1} then {p2}");
        assert!(got == want, "cep, parallelism {p1} then {p2}");
    }
}

/// A source that cannot say where it is (the default of `Source::supports_checkpoints`).
struct Positionless;

impl streamcore::Source<u64> for Positionless {
    type Reader = std::vec::IntoIter<u64>;
    fn create_readers(&mut self, parallelism: usize) -> Result<Vec<Self::Reader>> {
        Ok((0..parallelism)
            .map(|_| vec![1, 2, 3].into_iter())
            .collect())
    }
}

#[test]
fn vector_sources_restore_like_generators() {
    let build = |committed: &Committed<u64>, rate: Option<f64>| {
        let mut job = Job::new("vec");
        let values: Vec<u64> = (0..EVENTS).collect();
        // The vector source has no rate: a slow map spreads the first run over checkpoints.
        let slow = rate.is_some();
        job.from_vec("v", values)
            .map(move |v| {
                if slow {
                    std::thread::sleep(Duration::from_micros(10));
                }
                v
            })
            .sink(TxSink {
                committed: committed.clone(),
            });
        job
    };
    let (want, got) = uninterrupted_and_restored(build, 2, 3);
    assert_eq!(want, (0..EVENTS).collect::<Vec<_>>());
    assert!(got == want, "{} values committed", got.len());
}

/// A source that asks for a checkpoint and waits until it is complete (what the Kafka source
/// does on a rebalance): with an interval of an hour, only the request can trigger it.
#[test]
fn a_source_can_request_a_checkpoint_and_wait_for_it() {
    use streamcore::{Source, SourcePoll, SourceReader, TaskContext};

    struct Asking {
        sent: u64,
        waiting_for: Option<u64>,
        started: Instant,
    }
    impl SourceReader<u64> for Asking {
        fn poll_batch(
            &mut self,
            out: &mut Vec<u64>,
            _: usize,
            ctx: &mut TaskContext,
        ) -> Result<SourcePoll> {
            if let Some(id) = self.waiting_for {
                if ctx.completed_checkpoint() < id {
                    assert!(
                        self.started.elapsed() < Duration::from_secs(20),
                        "checkpoint {id} never completed"
                    );
                    return Ok(SourcePoll::Idle);
                }
                self.waiting_for = None;
            }
            if self.sent == 10 {
                return Ok(SourcePoll::Finished);
            }
            out.push(self.sent);
            self.sent += 1;
            if self.sent == 5 {
                self.waiting_for = Some(ctx.request_checkpoint().expect("the job checkpoints"));
            }
            Ok(SourcePoll::Ready)
        }
        fn snapshot_position(&mut self) -> Result<Vec<u8>> {
            encode(&self.sent)
        }
    }
    struct AskingSource;
    impl Source<u64> for AskingSource {
        type Reader = Asking;
        fn parallelism(&self, _: usize) -> usize {
            1
        }
        fn create_readers(&mut self, _: usize) -> Result<Vec<Asking>> {
            Ok(vec![Asking {
                sent: 0,
                waiting_for: None,
                started: Instant::now(),
            }])
        }
        fn supports_checkpoints(&self) -> bool {
            true
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::new("asking");
    let out = job.source("asking", AskingSource).collect();
    let summary = job
        .run(
            JobConfig::default()
                .checkpoints(CheckpointConfig::new(dir.path()).interval(Duration::from_secs(3600))),
        )
        .unwrap();
    assert_eq!(out.take().len(), 10);
    // The requested checkpoint and the final one.
    assert_eq!(summary.checkpoints.unwrap().completed, 2);
}

/// Stop with a savepoint: the sources emit nothing after its barrier, so even an
/// at-least-once sink got exactly what the savepoint covers, and a job restored from it
/// continues without repeating a record.
#[test]
fn stop_with_savepoint_emits_nothing_after_the_savepoint() {
    const N: u64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        JobConfig::default()
            .parallelism(2)
            .checkpoints(CheckpointConfig::new(dir.path()).interval(Duration::from_millis(20)))
    };
    let build = || {
        let mut job = Job::new("stop");
        let out = job
            .source("gen", Generator::new(|i| i).bounded(N).rate(50_000.0))
            .map(|x| x * 2)
            .collect();
        (job, out)
    };
    let (job, first) = build();
    let handle = job.start(config()).unwrap();
    let waiting = Instant::now();
    while first.len() < 5_000 {
        assert!(waiting.elapsed() < Duration::from_secs(30), "no output");
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.stop_with_savepoint().unwrap();
    let first = first.take();
    assert!((first.len() as u64) < N, "the first run read everything");
    let (job, second) = build();
    job.run(
        config().checkpoints(
            CheckpointConfig::new(dir.path())
                .interval(Duration::from_millis(20))
                .restore(RestoreFrom::Latest),
        ),
    )
    .unwrap();
    let mut all = first;
    all.extend(second.take());
    all.sort_unstable();
    let repeated = all.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(repeated, 0, "{repeated} records repeated after the restore");
    assert_eq!(all, (0..N).map(|x| x * 2).collect::<Vec<_>>());
}

/// A storage that counts what goes through it, in front of a local directory elsewhere.
struct CountingStorage {
    inner: streamcore::checkpoint::LocalCheckpointStorage,
    writes: std::sync::atomic::AtomicU64,
    loads: std::sync::atomic::AtomicU64,
}

impl streamcore::checkpoint::CheckpointStorage for CountingStorage {
    fn next_id(&self) -> Result<u64> {
        self.inner.next_id()
    }
    fn write(
        &self,
        cp: &streamcore::checkpoint::storage::CheckpointData,
    ) -> Result<streamcore::checkpoint::storage::WrittenCheckpoint> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.write(cp)
    }
    fn load_latest(&self) -> Result<Option<streamcore::checkpoint::LoadedCheckpoint>> {
        self.loads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.load_latest()
    }
    fn load(
        &self,
        location: &streamcore::checkpoint::CheckpointLocation,
    ) -> Result<streamcore::checkpoint::LoadedCheckpoint> {
        self.loads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.load(location)
    }
    fn retain(&self, keep: usize) -> Result<()> {
        self.inner.retain(keep)
    }
}

#[test]
fn the_checkpoint_storage_comes_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(CountingStorage {
        inner: streamcore::checkpoint::LocalCheckpointStorage::new(dir.path().join("store"))
            .unwrap(),
        writes: Default::default(),
        loads: Default::default(),
    });
    let config = |restore: Option<RestoreFrom>| {
        let mut c = CheckpointConfig::new(dir.path().join("unused"))
            .interval(Duration::from_millis(10))
            .storage(storage.clone());
        c.restore = restore;
        JobConfig::default()
            .parallelism(2)
            .batch_size(64)
            .checkpoints(c)
    };
    let committed = Committed::default();
    let handle = build(&committed, Some(50_000.0))
        .start(config(None))
        .unwrap();
    cancel_after_checkpoints(handle, 3);
    let written = storage.writes.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        written >= 3,
        "{written} checkpoints went through the storage"
    );
    build(&committed, None)
        .run(config(Some(RestoreFrom::Latest)))
        .unwrap();
    assert_eq!(storage.loads.load(std::sync::atomic::Ordering::Relaxed), 1);
    check(&committed, "restored through the configured storage");
    assert!(
        !dir.path().join("unused").exists(),
        "nothing was written to the local directory"
    );
}
