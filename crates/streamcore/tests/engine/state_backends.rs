//! The state backends end to end (docs/state.md): a keyed rolling aggregate, a keyed process
//! function and tumbling and sliding windows (with allowed lateness and a late output) give the
//! same output on the LSM backend with a budget so small that nearly every key is evicted as on
//! the memory backend (proptest over inputs); and jobs on the LSM backend, with full and with
//! incremental checkpoints, cancelled mid-run and restored (at another parallelism, past a torn
//! checkpoint, and from one backend into the other) commit exactly the output of an
//! uninterrupted run.

#![cfg(feature = "lsm")]

use crate::common;

use common::{cancel_after_checkpoints, Committed, TxSink};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use streamcore::cep::{AfterMatchSkip, Pattern};
use streamcore::checkpoint::{CheckpointConfig, RestoreFrom};
use streamcore::sink::{CollectSink, Sink};
use streamcore::source::Generator;
use streamcore::state::{KeyedContext, KeyedProcessFunction, StateConfig, TimeDomain};
use streamcore::window::aggregates::{Count as CountAll, Sum};
use streamcore::window::{WindowResult, Windows};
use streamcore::{Job, JobConfig, JobSummary, Output, OutputTag, Timestamp, WatermarkStrategy};

/// A key's running count and sum, emitted per record: `(key, count, sum)`.
type Row = (u32, u64, i64);

fn rolling(job: &mut Job, input: Vec<(u32, i64)>) -> streamcore::sink::Collected<Row> {
    let (sink, out) = CollectSink::new();
    job.from_vec("input", input)
        .key_by(|r: &(u32, i64)| r.0)
        .aggregate(
            |_: &u32| (0u64, 0i64),
            |acc: &mut (u64, i64), r: (u32, i64)| {
                acc.0 += 1;
                acc.1 += r.1;
            },
            |k: &u32, acc: &(u64, i64)| (*k, acc.0, acc.1),
        )
        .sink(sink);
    out
}

/// Counts a key's records and forgets the key at every fifth one (state cleared: a delete).
#[derive(Clone)]
struct CountToFive;

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Count {
    n: u64,
    sum: i64,
}

impl KeyedProcessFunction<u32, (u32, i64)> for CountToFive {
    type State = Count;
    type Out = Row;
    fn process(
        &mut self,
        r: (u32, i64),
        ctx: &mut KeyedContext<'_, u32, Count>,
        out: &mut Output<Row>,
    ) {
        let s = ctx.state();
        s.n += 1;
        s.sum += r.1;
        let row = (r.0, s.n, s.sum);
        out.emit(row);
        if row.1 == 5 {
            ctx.clear_state();
        }
    }
    fn on_timer(
        &mut self,
        _: Timestamp,
        _: TimeDomain,
        _: &mut KeyedContext<'_, u32, Count>,
        _: &mut Output<Row>,
    ) {
    }
}

/// One reader, batches of 16 records, state on `state`.
fn one_reader(state: StateConfig) -> JobConfig {
    JobConfig::default()
        .parallelism(1)
        .batch_size(16)
        .state(state)
}

fn run(input: &[(u32, i64)], state: StateConfig) -> (Vec<Row>, Vec<Row>, JobSummary) {
    let mut job = Job::new("backends");
    let aggregated = rolling(&mut job, input.to_vec());
    let (sink, processed) = CollectSink::new();
    job.from_vec("input2", input.to_vec())
        .key_by(|r: &(u32, i64)| r.0)
        .process(CountToFive)
        .sink(sink);
    let summary = job.run(one_reader(state)).unwrap();
    (aggregated.take(), processed.take(), summary)
}

fn metric(summary: &JobSummary, name: &str) -> u64 {
    summary
        .operators
        .iter()
        .filter_map(|o| o.metrics.get(name))
        .map(|v| *v as u64)
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn lsm_with_a_tiny_budget_equals_memory(
        input in proptest::collection::vec((0u32..3000, -1000i64..1000), 1..6000),
    ) {
        let (agg_mem, proc_mem, _) = run(&input, StateConfig::memory());
        let (agg_lsm, proc_lsm, summary) = run(&input, StateConfig::lsm(64 << 10));
        prop_assert_eq!(&agg_lsm, &agg_mem);
        prop_assert_eq!(&proc_lsm, &proc_mem);
        let distinct = input.iter().map(|r| r.0).collect::<std::collections::BTreeSet<_>>().len();
        if distinct > 1000 {
            // The budget holds a few hundred keys per operator: most were evicted and read back.
            prop_assert!(metric(&summary, "state_cache_evictions") > 0);
            prop_assert!(metric(&summary, "state_cache_misses") as usize >= distinct);
        }
    }
}

/// (event time, key, value).
type Ev = (Timestamp, u32, i64);
/// (key, window start, window end, value).
type WinRow = (u32, i64, i64, i64);

fn win_rows<V>(results: Vec<WindowResult<u32, V>>, value: impl Fn(V) -> i64) -> Vec<WinRow> {
    let mut rows: Vec<WinRow> = results
        .into_iter()
        .map(|r| {
            (
                r.key,
                r.window.start.millis(),
                r.window.end.millis(),
                value(r.value),
            )
        })
        .collect();
    rows.sort_unstable();
    rows
}

/// What [`run_windows`] gives: tumbling counts, sliding sums, late records, the summary,
/// session sums, interval-join pairs, temporal-join results, CEP matches, count-window sums.
type WindowOutputs = (
    Vec<WinRow>,
    Vec<WinRow>,
    Vec<Ev>,
    JobSummary,
    Vec<WinRow>,
    Vec<WinRow>,
    Vec<(i64, i64, Option<i64>)>,
    Vec<Vec<Ev>>,
    Vec<WinRow>,
);

/// Tumbling counts with allowed lateness and a late output, sliding sums, session sums (with
/// allowed lateness), count windows, an interval join, an event-time temporal join and a CEP
/// pattern over `input` (out of order by up to 300 ms behind a watermark that allows
/// 100 ms): the results (sorted), the late records, the job's summary.
fn run_windows(input: &[Ev], state: StateConfig) -> WindowOutputs {
    let mut job = Job::new("windows");
    let late = OutputTag::new("late");
    let events = job.from_vec("input", input.to_vec()).with_watermarks(
        WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(100)),
    );
    let counts = events
        .clone()
        .key_by(|e: &Ev| e.1)
        .window(Windows::tumbling(Duration::from_millis(200)))
        .allowed_lateness(Duration::from_millis(100))
        .late_output(&late)
        .aggregate(CountAll);
    let late_records = counts.side_output(&late).collect();
    let counts = counts.collect();
    // Each record against the others of its key 0..=200 ms earlier (the input joined with
    // itself, shifted in value so the sides differ).
    let pairs = events
        .clone()
        .connect(events.clone().map(|e: Ev| (e.0, e.1, e.2 + 1_000)))
        .key_by(|a: &Ev| a.1 % 700, |b: &Ev| b.1 % 700)
        .interval_join(0, 200, |a: &Ev, b: &Ev| {
            (a.1, a.0.millis(), b.0.millis(), a.2 * 10_000 + b.2)
        })
        .collect();
    // Every third record is a version of its key's row in a table; every record probes it.
    let table = events
        .clone()
        .filter(|e: &Ev| e.2 % 3 == 0)
        .map(|e: Ev| streamcore::join::Change::Insert(e));
    let temporal = events
        .clone()
        .connect(table)
        .key_by(|p: &Ev| p.1 % 300, |c| c.row().1 % 300)
        .temporal_join(|p: &Ev, v: Option<&Ev>| (p.0.millis(), p.2, v.map(|v| v.2)))
        .collect();
    // A high value followed by a low one of the same key within 400 ms, matches skipping past
    // their last event (held back while an earlier partial match lives).
    let matches = events
        .clone()
        .key_by(|e: &Ev| e.1 % 400)
        .pattern(
            Pattern::begin("high", |e: &Ev| e.2 > 50)
                .followed_by("low", |e: &Ev| e.2 < -50)
                .within(Duration::from_millis(400))
                .skip(AfterMatchSkip::SkipPastLastEvent),
        )
        .map(|m| {
            let mut events = m.get("high").to_vec();
            events.extend_from_slice(m.get("low"));
            events
        })
        .collect();
    // Sums of every 3 records of a key (and what is left at the end of the input).
    let counted = events
        .clone()
        .key_by(|e: &Ev| e.1 % 600)
        .count_window(3)
        .aggregate(Sum::new(|e: &Ev| e.2))
        .collect();
    let sessions = events
        .clone()
        .key_by(|e: &Ev| e.1 % 500)
        .window(Windows::session(Duration::from_millis(150)))
        .allowed_lateness(Duration::from_millis(50))
        .aggregate(Sum::new(|e: &Ev| e.2))
        .collect();
    let sums = events
        .key_by(|e: &Ev| e.1)
        .window(Windows::sliding(
            Duration::from_millis(600),
            Duration::from_millis(200),
        ))
        .aggregate(Sum::new(|e: &Ev| e.2))
        .collect();
    let summary = job.run(one_reader(state)).unwrap();
    let mut late_records = late_records.take();
    late_records.sort_unstable();
    (
        win_rows(counts.take(), |c| c as i64),
        win_rows(sums.take(), |s| s),
        late_records,
        summary,
        win_rows(sessions.take(), |s| s),
        {
            let mut pairs = pairs.take();
            pairs.sort_unstable();
            pairs
        },
        {
            let mut rows = temporal.take();
            rows.sort_unstable();
            rows
        },
        {
            let mut matches = matches.take();
            matches.sort_unstable();
            matches
        },
        win_rows(counted.take(), |s| s),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    #[test]
    fn windows_on_lsm_with_a_tiny_budget_equal_memory(
        input in proptest::collection::vec((0i64..6_000, 0u32..2_000, -100i64..100), 1..5_000),
    ) {
        // Event time mostly rising with the record's position, up to 300 ms back: some records
        // are within the allowed lateness, some past it.
        let n = input.len() as i64;
        let events: Vec<Ev> = input
            .iter()
            .enumerate()
            .map(|(i, &(jitter, key, v))| {
                (Timestamp(i as i64 * 6_000 / n + jitter % 300), key, v)
            })
            .collect();
        let memory = run_windows(&events, StateConfig::memory());
        let lsm = run_windows(&events, StateConfig::lsm(32 << 10));
        prop_assert_eq!(&lsm.0, &memory.0, "tumbling counts");
        prop_assert_eq!(&lsm.1, &memory.1, "sliding sums");
        prop_assert_eq!(&lsm.2, &memory.2, "late records");
        prop_assert_eq!(&lsm.4, &memory.4, "session sums");
        prop_assert_eq!(&lsm.5, &memory.5, "interval join pairs");
        prop_assert_eq!(&lsm.6, &memory.6, "temporal join results");
        prop_assert_eq!(&lsm.7, &memory.7, "CEP matches");
        prop_assert_eq!(&lsm.8, &memory.8, "count-window sums");
        if input.len() > 2_000 {
            prop_assert!(!memory.5.is_empty(), "no pairs: the join is not exercised");
            prop_assert!(memory.6.iter().any(|r| r.2.is_some()), "no probe saw a version");
            prop_assert!(!memory.7.is_empty(), "no CEP match");
        }
        let distinct = input.iter().map(|r| r.1).collect::<std::collections::BTreeSet<_>>().len();
        if distinct > 1_000 {
            // The windows' state went through the backend: evicted and read back.
            prop_assert!(metric(&lsm.3, "state_cache_evictions") > 0);
        }
    }
}

// ---- checkpoints and restore ----

const EVENTS: u64 = 40_000;
const KEYS: u64 = 5_000;

/// Event `i`: key `i % KEYS`, value `i`; a rolling count and sum per key.
fn build(committed: &Committed<Row>, rate: f64) -> Job {
    let mut job = Job::new("rolling");
    job.source(
        "events",
        Generator::new(|i| ((i % KEYS) as u32, i as i64))
            .bounded(EVENTS)
            .rate(rate),
    )
    .key_by(|e: &(u32, i64)| e.0)
    .aggregate(
        |_: &u32| (0u64, 0i64),
        |acc: &mut (u64, i64), r: (u32, i64)| {
            acc.0 += 1;
            acc.1 += r.1;
        },
        |k: &u32, acc: &(u64, i64)| (*k, acc.0, acc.1),
    )
    .uid("rolling")
    .sink(TxSink {
        committed: committed.clone(),
    });
    job
}

/// The committed output must be that of a run without interruption: for each key, counts
/// 1..=n exactly once each (records are neither lost nor counted twice, whatever order the
/// readers delivered them in), and the row with count n carries the key's whole sum.
fn check(committed: &Committed<Row>, context: &str) {
    let mut per_key: BTreeMap<u32, Vec<(u64, i64)>> = BTreeMap::new();
    for rows in committed.lock().unwrap().values() {
        for &(k, n, sum) in rows {
            per_key.entry(k).or_default().push((n, sum));
        }
    }
    assert_eq!(per_key.len() as u64, KEYS, "{context}: keys");
    for (k, mut rows) in per_key {
        rows.sort();
        let n = EVENTS / KEYS;
        let counts: Vec<u64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(
            counts,
            (1..=n).collect::<Vec<_>>(),
            "{context}: counts of key {k}"
        );
        let total: i64 = (0..n).map(|j| (k as u64 + j * KEYS) as i64).sum();
        assert_eq!(rows.last().unwrap().1, total, "{context}: sum of key {k}");
    }
}

fn config(dir: &Path, p: usize, state: StateConfig, restore: Option<RestoreFrom>) -> JobConfig {
    let mut c = CheckpointConfig::new(dir)
        .interval(Duration::from_millis(20))
        .retain(2);
    c.restore = restore;
    JobConfig::default()
        .parallelism(p)
        .batch_size(64)
        .checkpoints(c)
        .state(state)
}

/// Runs until `n` checkpoints completed, then cancels (the in-process stand-in for a crash).
fn run_then_cancel(job: Job, config: JobConfig, n: u64) -> JobSummary {
    cancel_after_checkpoints(job.start(config).unwrap(), n)
}

/// How many references to earlier checkpoints the manifests in `dir` hold, checking that
/// each one names a checkpoint still there (retention keeps what kept checkpoints build on).
fn chain_references(dir: &Path) -> usize {
    let mut chained = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let manifest = entry.unwrap().path().join("_manifest.json");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let m: serde_json::Value = serde_json::from_str(&text).unwrap();
        for node in m["nodes"].as_array().unwrap() {
            for inst in node["instances"].as_array().unwrap() {
                for name in inst["chain"].as_array().into_iter().flatten() {
                    chained += 1;
                    let base = dir.join(name.as_str().unwrap()).join("_manifest.json");
                    assert!(
                        base.exists(),
                        "{} builds on a deleted {name}",
                        manifest.display()
                    );
                }
            }
        }
    }
    chained
}

/// Cancels a run on `state` after some checkpoints, plants a torn checkpoint (state file, no
/// manifest) newer than every complete one, then restores at another parallelism and runs to
/// the end; the committed output must be the uninterrupted one. Returns both runs' summaries
/// and the references to earlier checkpoints found after the first run.
fn cancel_and_restore(state: StateConfig) -> (JobSummary, JobSummary, usize) {
    let dir = tempfile::tempdir().unwrap();
    let committed = Committed::default();
    let first = run_then_cancel(
        build(&committed, 8_000.0),
        config(dir.path(), 2, state.clone(), None),
        6,
    );
    let chained = chain_references(dir.path());
    let torn = dir.path().join("chk-999990");
    std::fs::create_dir_all(&torn).unwrap();
    std::fs::write(torn.join("n0001-s000.state"), b"half a file").unwrap();
    let second = build(&committed, 1e9)
        .run(config(dir.path(), 3, state, Some(RestoreFrom::Latest)))
        .unwrap();
    check(&committed, "restored");
    let c = second.checkpoints.clone().unwrap();
    let from = c.restored_from.expect("restored");
    assert!(
        !from.contains("999990"),
        "the torn checkpoint was skipped: {from}"
    );
    chain_references(dir.path());
    (first, second, chained)
}

#[test]
fn lsm_backend_restores_from_full_checkpoints_at_another_parallelism() {
    let (first, second, chained) = cancel_and_restore(StateConfig::lsm(128 << 10));
    // The restored run reads most of the input (the first is cancelled early): with ~1,700
    // keys per instance against a cache of a few hundred, it evicts.
    assert!(metric(&second, "state_cache_evictions") > 0);
    assert!(metric(&first, "state_checkpoint_full_bytes") > 0);
    assert_eq!(metric(&first, "state_checkpoint_incremental_bytes"), 0);
    assert_eq!(chained, 0);
}

#[test]
fn incremental_checkpoints_restore_on_lsm_and_in_memory() {
    for state in [
        StateConfig::lsm(128 << 10).incremental(true).full_every(5),
        StateConfig::memory().incremental(true).full_every(5),
    ] {
        let (first, _, chained) = cancel_and_restore(state.clone());
        assert!(
            metric(&first, "state_checkpoint_incremental_bytes") > 0,
            "{state:?}: no incremental checkpoint was written"
        );
        assert!(
            chained > 0,
            "{state:?}: no kept checkpoint builds on an earlier one"
        );
    }
}

// ---- windows: checkpoints and restore, across backends ----

const WINDOW_EVENTS: u64 = 30_000;

/// A window result as a row: (key, start, end, value).
fn win_row(r: WindowResult<u32, i64>) -> WinRow {
    (
        r.key,
        r.window.start.millis(),
        r.window.end.millis(),
        r.value,
    )
}

/// Event `i` at `i` ms, key `i % KEYS`: tumbling sums of 500 ms per key, sliding sums (1,500 ms
/// every 600 ms: slices of 300 ms on the memory backend) per key `i % 700`, and session sums
/// per key `i % 3_000` of the events whose `i % 7 != 0`, committed as rows.
fn build_windows<S: Sink<WinRow>>(sink: S, rate: f64) -> Job {
    let mut job = Job::new("windows");
    let events = job
        .source(
            "events",
            Generator::new(|i| (Timestamp(i as i64), (i % KEYS) as u32, i as i64))
                .bounded(WINDOW_EVENTS)
                .rate(rate),
        )
        .with_watermarks(WatermarkStrategy::monotonous());
    let sessions = events
        .clone()
        .filter(|e: &Ev| e.2 % 7 != 0)
        .key_by(|e: &Ev| e.1 % 3_000)
        .window(Windows::session(Duration::from_millis(4_000)))
        .aggregate(Sum::new(|e: &Ev| e.2))
        .uid("sessions")
        .map(win_row);
    let sliding = events
        .clone()
        .key_by(|e: &Ev| e.1 % 700)
        .window(Windows::sliding(
            Duration::from_millis(1_500),
            Duration::from_millis(600),
        ))
        .aggregate(Sum::new(|e: &Ev| e.2))
        .uid("sliding")
        .map(win_row);
    events
        .key_by(|e: &Ev| e.1)
        .window(Windows::tumbling(Duration::from_millis(500)))
        .aggregate(Sum::new(|e: &Ev| e.2))
        .uid("window")
        .map(win_row)
        .union(sessions)
        .union(sliding)
        .sink(sink);
    job
}

fn tx_sink(committed: &Committed<WinRow>) -> TxSink<WinRow> {
    TxSink {
        committed: committed.clone(),
    }
}

fn committed_rows(committed: &Committed<WinRow>) -> Vec<WinRow> {
    let mut rows: Vec<WinRow> = committed
        .lock()
        .unwrap()
        .values()
        .flatten()
        .copied()
        .collect();
    rows.sort_unstable();
    rows
}

/// Cancels a windowed run on `before` after some checkpoints and restores it on `after` at
/// another parallelism: the committed windows must be those of an uninterrupted run.
fn windows_cancel_and_restore(before: StateConfig, after: StateConfig) -> (JobSummary, JobSummary) {
    let (sink, reference) = CollectSink::new();
    build_windows(sink, 1e9)
        .run(JobConfig::default().parallelism(2))
        .unwrap();
    let mut want = reference.take();
    want.sort_unstable();
    assert!(want.len() > 1_000, "{} windows", want.len());
    let dir = tempfile::tempdir().unwrap();
    let committed = Committed::default();
    let first = run_then_cancel(
        build_windows(tx_sink(&committed), 6_000.0),
        config(dir.path(), 2, before.clone(), None),
        6,
    );
    assert!(committed_rows(&committed).len() < want.len());
    let second = build_windows(tx_sink(&committed), 1e9)
        .run(config(
            dir.path(),
            3,
            after.clone(),
            Some(RestoreFrom::Latest),
        ))
        .unwrap();
    assert!(
        committed_rows(&committed) == want,
        "{before:?} then {after:?}: the committed windows differ from an uninterrupted run's"
    );
    (first, second)
}

#[test]
fn windows_on_lsm_restore_from_incremental_checkpoints() {
    let (first, second) = windows_cancel_and_restore(
        StateConfig::lsm(64 << 10).incremental(true).full_every(5),
        StateConfig::lsm(64 << 10).incremental(true).full_every(5),
    );
    // 5,000 keys per window against caches of a few hundred entries.
    assert!(
        metric(&second, "state_cache_evictions") > 0,
        "nothing evicted"
    );
    assert!(
        metric(&first, "state_checkpoint_incremental_bytes") > 0,
        "no incremental checkpoint was written"
    );
}

#[test]
fn window_checkpoints_restore_from_one_backend_into_the_other() {
    windows_cancel_and_restore(StateConfig::memory(), StateConfig::memory());
    windows_cancel_and_restore(StateConfig::memory(), StateConfig::lsm(64 << 10));
    windows_cancel_and_restore(
        StateConfig::lsm(64 << 10).incremental(true),
        StateConfig::memory(),
    );
}
