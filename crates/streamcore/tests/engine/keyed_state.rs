//! Keyed process functions: per-key state, event-time and processing-time timers, state TTL.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use streamcore::state::{
    KeyedContext, KeyedProcessFunction, ListState, MapState, TimeDomain, ValueState,
};
use streamcore::{
    Job, JobConfig, Output, Result, Source, SourcePoll, SourceReader, TaskContext, Timestamp,
    WatermarkStrategy,
};

type Rec = (Timestamp, u32, i64);

/// Sums per key; emits (key, sum, timer time, watermark at firing) from an event-time timer
/// set 100 ms after each key's first record.
#[derive(Clone)]
struct SumThenReport;

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct SumState {
    sum: ValueState<i64>,
    seen: ListState<i64>,
    per_sign: MapState<bool, u32>,
}

impl KeyedProcessFunction<u32, Rec> for SumThenReport {
    type State = SumState;
    type Out = (u32, i64, i64, i64, usize, usize);
    fn process(
        &mut self,
        r: Rec,
        ctx: &mut KeyedContext<'_, u32, SumState>,
        _out: &mut Output<Self::Out>,
    ) {
        let first = ctx.state().sum.get().is_none();
        *ctx.state().sum.get_or_insert_with(|| 0) += r.2;
        ctx.state().seen.add(r.2);
        *ctx.state().per_sign.entry(r.2 >= 0).or_default() += 1;
        if first {
            ctx.register_event_time_timer(Timestamp(r.0.millis() + 100));
        }
    }
    fn on_timer(
        &mut self,
        t: Timestamp,
        d: TimeDomain,
        ctx: &mut KeyedContext<'_, u32, SumState>,
        out: &mut Output<Self::Out>,
    ) {
        assert_eq!(d, TimeDomain::EventTime);
        let key = *ctx.key();
        let wm = ctx.watermark().millis();
        let s = ctx.state();
        let (sum, n, signs) = (*s.sum.get().unwrap(), s.seen.len(), s.per_sign.len());
        out.emit((key, sum, t.millis(), wm, n, signs));
        ctx.clear_state();
    }
}

#[test]
fn event_time_timers_fire_when_the_watermark_passes_and_state_is_per_key() {
    let records: Vec<Rec> = vec![
        (Timestamp(0), 1, 5),
        (Timestamp(10), 2, -3),
        (Timestamp(50), 1, 7),
        (Timestamp(99), 2, 4),
        (Timestamp(150), 1, 1), // its watermark (149) fires key 1's timer at 100
        (Timestamp(400), 3, 9),
    ];
    for p in [1, 2] {
        let mut job = Job::new("timers");
        let out = job
            .from_vec("r", records.clone())
            .with_watermarks(WatermarkStrategy::monotonous())
            .key_by(|r| r.1)
            .process(SumThenReport)
            .collect();
        let summary = job
            .run(JobConfig::default().parallelism(p).batch_size(1))
            .unwrap();
        let mut got = out.take();
        got.sort();
        if p == 1 {
            // One reader, one record per batch: the watermark follows each record, so key 1's
            // timer (100) fires on watermark 149 — after the record at 150 was processed, as in
            // Flink: a timer sees everything that arrived before the watermark that fired it.
            assert_eq!(
                got,
                vec![
                    (1, 13, 100, 149, 3, 1),
                    (2, 1, 110, 149, 2, 2),
                    (3, 9, 500, i64::MAX, 1, 1),
                ]
            );
        } else {
            let sums: Vec<(u32, i64)> = got.iter().map(|g| (g.0, g.1)).collect();
            assert!(sums.contains(&(2, 1)) && sums.contains(&(3, 9)), "{got:?}");
            assert!(
                got.iter().all(|g| g.3 >= g.2),
                "a timer never fires before its time: {got:?}"
            );
        }
        let op = summary
            .operators
            .iter()
            .find(|o| o.name.starts_with("keyed_process"))
            .unwrap();
        assert_eq!(op.state_keys, 0, "every key cleared its state");
    }
}

/// A source that emits `records` one per poll, each after its delay since the start, then
/// stays idle (unbounded) or finishes.
#[derive(Clone)]
struct Timed {
    records: Vec<(Duration, Rec)>,
    unbounded: bool,
}

struct TimedReader {
    records: Vec<(Duration, Rec)>,
    started: Option<Instant>,
    unbounded: bool,
}

impl Source<Rec> for Timed {
    type Reader = TimedReader;
    fn parallelism(&self, _: usize) -> usize {
        1
    }
    fn create_readers(&mut self, _: usize) -> Result<Vec<TimedReader>> {
        Ok(vec![TimedReader {
            records: self.records.clone(),
            started: None,
            unbounded: self.unbounded,
        }])
    }
}

impl SourceReader<Rec> for TimedReader {
    fn poll_batch(
        &mut self,
        out: &mut Vec<Rec>,
        _max: usize,
        _: &mut TaskContext,
    ) -> Result<SourcePoll> {
        let started = *self.started.get_or_insert_with(Instant::now);
        match self.records.first() {
            Some((at, _)) if started.elapsed() >= *at => {
                out.push(self.records.remove(0).1);
                Ok(SourcePoll::Ready)
            }
            Some(_) => Ok(SourcePoll::Idle),
            None if self.unbounded => Ok(SourcePoll::Idle),
            None => Ok(SourcePoll::Finished),
        }
    }
}

#[derive(Clone)]
struct Alarm;

impl KeyedProcessFunction<u32, Rec> for Alarm {
    type State = ValueState<i64>;
    type Out = (u32, i64, &'static str);
    fn process(
        &mut self,
        r: Rec,
        ctx: &mut KeyedContext<'_, u32, ValueState<i64>>,
        _out: &mut Output<Self::Out>,
    ) {
        ctx.state().set(r.2);
        let at = Timestamp(ctx.processing_time().millis() + 50);
        ctx.register_processing_time_timer(at);
    }
    fn on_timer(
        &mut self,
        _t: Timestamp,
        d: TimeDomain,
        ctx: &mut KeyedContext<'_, u32, ValueState<i64>>,
        out: &mut Output<Self::Out>,
    ) {
        assert_eq!(d, TimeDomain::ProcessingTime);
        let v = ctx.state().get().copied().unwrap_or(-1);
        out.emit((*ctx.key(), v, "alarm"));
    }
}

#[test]
fn processing_time_timers_fire_without_further_input() {
    let mut job = Job::new("alarm");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    job.source(
        "timed",
        Timed {
            records: vec![(Duration::ZERO, (Timestamp(0), 7, 42))],
            unbounded: true,
        },
    )
    .key_by(|r| r.1)
    .process(Alarm)
    .for_each(move |r| sink.lock().unwrap().push(r));
    let handle = job.start(JobConfig::default().parallelism(1)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    handle.stop();
    handle.join().unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![(7, 42, "alarm")]);
}

#[derive(Clone)]
struct CountPerKey;

impl KeyedProcessFunction<u32, Rec> for CountPerKey {
    type State = ValueState<u64>;
    type Out = (u32, u64);
    fn process(
        &mut self,
        r: Rec,
        ctx: &mut KeyedContext<'_, u32, ValueState<u64>>,
        out: &mut Output<Self::Out>,
    ) {
        let n = ctx.state().get_or_insert_with(|| 0);
        *n += 1;
        let n = *n;
        out.emit((r.1, n));
    }
}

#[test]
fn state_ttl_expires_untouched_keys() {
    let run = |ttl: Option<Duration>| {
        let records = vec![
            (Duration::ZERO, (Timestamp(0), 1, 0)),
            (Duration::ZERO, (Timestamp(1), 2, 0)),
            (Duration::from_millis(400), (Timestamp(2), 1, 0)),
        ];
        let mut job = Job::new("ttl");
        let keyed = job
            .source(
                "timed",
                Timed {
                    records,
                    unbounded: false,
                },
            )
            .key_by(|r: &Rec| r.1);
        let keyed = match ttl {
            Some(ttl) => keyed.state_ttl(ttl),
            None => keyed,
        };
        let out = keyed.process(CountPerKey).collect();
        let summary = job.run(JobConfig::default().parallelism(1)).unwrap();
        let op = summary
            .operators
            .iter()
            .find(|o| o.name.starts_with("keyed_process"))
            .unwrap();
        (out.take(), op.state_keys)
    };
    // Without TTL key 1 counts on; with a 100 ms TTL its state expired before the third record.
    let (without, keys) = run(None);
    assert_eq!(without, vec![(1, 1), (2, 1), (1, 2)]);
    assert_eq!(keys, 2);
    let (with, _) = run(Some(Duration::from_millis(100)));
    assert_eq!(with, vec![(1, 1), (2, 1), (1, 1)]);
}

#[test]
fn state_ttl_reaches_an_upsert_materializer() {
    // `(t, key, v)`: `-U (key, -v)` for v < 0, `+U (key, v)` at t = 3, else `+I (key, v)`.
    // Key 1's row is withdrawn and replaced 400 ms after it was written.
    use streamcore::changelog::Change;
    let run = |ttl: Option<Duration>| {
        let records = vec![
            (Duration::ZERO, (Timestamp(0), 1, 10)),
            (Duration::ZERO, (Timestamp(1), 2, 20)),
            (Duration::from_millis(400), (Timestamp(2), 1, -10)),
            (Duration::from_millis(400), (Timestamp(3), 1, 11)),
        ];
        let mut job = Job::new("ttl-materialize");
        let changes = job
            .source(
                "timed",
                Timed {
                    records,
                    unbounded: false,
                },
            )
            .map(|(t, key, v): Rec| match (v, t.0) {
                (v, 3) => Change::UpdateAfter((key, v)),
                (v, _) if v > 0 => Change::Insert((key, v)),
                (v, _) => Change::UpdateBefore((key, -v)),
            });
        let keyed = changes.key_by(|c: &Change<(u32, i64)>| c.row().0);
        let keyed = match ttl {
            Some(ttl) => keyed.state_ttl(ttl),
            None => keyed,
        };
        let out = keyed.materialize_rekeyed().collect();
        job.run(JobConfig::default().parallelism(1)).unwrap();
        out.take()
    };
    // Without TTL the update-before withdraws key 1's row (a delete at once: the materializer
    // is keyed otherwise than the changelog, so the update-after may go elsewhere).
    assert_eq!(
        run(None),
        vec![
            Change::Insert((1, 10)),
            Change::Insert((2, 20)),
            Change::Delete((1, 10)),
            Change::Insert((1, 11)),
        ]
    );
    // With a 100 ms TTL key 1's row was forgotten: its withdrawal finds nothing to withdraw
    // and is dropped, and the new row is an insert.
    assert_eq!(
        run(Some(Duration::from_millis(100))),
        vec![
            Change::Insert((1, 10)),
            Change::Insert((2, 20)),
            Change::Insert((1, 11)),
        ]
    );
}
