//! Operator state identity: checkpoints key state by operator id (`Stream::uid`, else the
//! name), so a job whose graph changed — an operator added upstream, an operator renamed —
//! restores by id; state that no operator claims stops the restore with a message naming it,
//! unless the user allows dropping it; duplicate ids are refused before the job runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use streamcore::checkpoint::{CheckpointConfig, RestoreFrom};
use streamcore::sink::{CollectSink, Collected};
use streamcore::source::Generator;
use streamcore::{Job, JobConfig, StreamError};

const N: u64 = 100_000;
const KEYS: u64 = 7;

/// How the second run's graph differs from the first's.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// source → key_by → reduce
    Original,
    /// source → filter (new) → key_by → reduce (renamed)
    Changed,
}

/// Running sums per key of the numbers `0..N`; the reducer has the id `uid` if given.
fn job(shape: Shape, uid: Option<&str>, rate: Option<f64>) -> (Job, Collected<(u64, u64)>) {
    let mut job = Job::new("sums");
    let mut source = Generator::new(|i| (i % KEYS, i)).bounded(N);
    if let Some(r) = rate {
        source = source.rate(r);
    }
    let mut numbers = job.source("numbers", source);
    if shape == Shape::Changed {
        numbers = numbers.filter(|_| true).name("keep all");
    }
    let mut sums = numbers
        .key_by(|r| r.0)
        .reduce(|a, b| (a.0, a.1 + b.1))
        .name(match shape {
            Shape::Original => "sum",
            Shape::Changed => "sum (renamed)",
        });
    if let Some(uid) = uid {
        sums = sums.uid(uid);
    }
    let (sink, out) = CollectSink::new();
    sums.sink(sink);
    (job, out)
}

fn config(dir: &Path, restore: Option<PathBuf>, allow_drop: bool) -> JobConfig {
    let mut c = CheckpointConfig::new(dir)
        .interval(Duration::from_millis(20))
        .allow_non_restored_state(allow_drop);
    if let Some(p) = restore {
        c = c.restore(RestoreFrom::Path(p));
    }
    JobConfig::default().parallelism(2).checkpoints(c)
}

/// Runs the original job until it is part-way through, then stops it with a savepoint.
fn savepoint_of_original(dir: &Path, uid: Option<&str>) -> PathBuf {
    let (job, out) = job(Shape::Original, uid, Some(200_000.0));
    let handle = job.start(config(dir, None, false)).unwrap();
    while out.len() < 1_000 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let savepoint = handle.stop_with_savepoint().unwrap();
    handle.join().unwrap();
    assert!((out.len() as u64) < N, "the first run read everything");
    savepoint
}

/// The last running sum of each key.
fn final_sums(out: &Collected<(u64, u64)>) -> BTreeMap<u64, u64> {
    // Sums only grow: the largest per key is the last.
    let mut sums = BTreeMap::new();
    for (k, s) in out.take() {
        let e = sums.entry(k).or_insert(0);
        *e = (*e).max(s);
    }
    sums
}

fn expected_sums() -> BTreeMap<u64, u64> {
    let mut sums = BTreeMap::new();
    for i in 0..N {
        *sums.entry(i % KEYS).or_insert(0) += i;
    }
    sums
}

#[test]
fn a_changed_graph_restores_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let savepoint = savepoint_of_original(dir.path(), Some("sums-v1"));
    // A filter added upstream shifts every position; the reducer is renamed too.
    let (job, out) = job(Shape::Changed, Some("sums-v1"), None);
    let summary = job.run(config(dir.path(), Some(savepoint), false)).unwrap();
    assert_eq!(summary.checkpoints.unwrap().dropped_state, 0);
    // The sums continue from the savepoint's: they count every number once.
    assert_eq!(final_sums(&out), expected_sums());
}

#[test]
fn state_no_operator_claims_stops_the_restore_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // Without ids the reducer's state is keyed by its name, which the new version changed.
    let savepoint = savepoint_of_original(dir.path(), None);
    let (job, _) = job(Shape::Changed, None, None);
    let err = job
        .run(config(dir.path(), Some(savepoint.clone()), false))
        .unwrap_err();
    assert!(matches!(err, StreamError::Checkpoint(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "{} holds state of operator `sum`, which this job does not have",
            savepoint.display()
        )),
        "{message}"
    );
    assert!(message.contains("`sum (renamed)`"), "{message}");
    assert!(
        message.contains("give the operator that should take it over the id `sum` (Stream::uid)"),
        "{message}"
    );
    assert!(message.contains("allow_non_restored_state"), "{message}");
}

#[test]
fn dropping_unclaimed_state_when_allowed_starts_those_operators_empty() {
    let dir = tempfile::tempdir().unwrap();
    let savepoint = savepoint_of_original(dir.path(), None);
    let (job, out) = job(Shape::Changed, None, None);
    let summary = job.run(config(dir.path(), Some(savepoint), true)).unwrap();
    assert_eq!(summary.checkpoints.unwrap().dropped_state, 1);
    // The source resumed from the savepoint and the sums started over: they miss what the
    // first run had summed.
    let sums = final_sums(&out);
    let expected = expected_sums();
    assert_eq!(sums.len(), KEYS as usize);
    assert!(sums.iter().all(|(k, s)| *s < expected[k]), "{sums:?}");
}

#[test]
fn the_same_id_twice_is_refused_naming_both_operators() {
    let mut job = Job::new("dup");
    let numbers = job.from_vec("numbers", vec![1u64, 2, 3]);
    numbers
        .clone()
        .key_by(|n| n % 2)
        .reduce(|a, b| a + b)
        .name("odd and even")
        .uid("totals")
        .collect();
    numbers
        .key_by(|n| n % 3)
        .reduce(|a, b| a + b)
        .name("by three")
        .uid("totals")
        .collect();
    let err = job.run(JobConfig::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid job: operators `odd and even` and `by three` both have the id `totals`: ids name operator state in checkpoints and must be unique (Stream::uid)"
    );
}

#[test]
fn operators_named_alike_keep_apart_state() {
    // Two reducers with one name: each gets its own id (the name and its position), so a
    // restore gives each its own sums back.
    let build = |rate: Option<f64>| {
        let mut job = Job::new("twins");
        let mut source = Generator::new(|i| i).bounded(N);
        if let Some(r) = rate {
            source = source.rate(r);
        }
        let numbers = job.source("numbers", source);
        let (a_sink, a) = CollectSink::new();
        let (b_sink, b) = CollectSink::new();
        numbers
            .clone()
            .key_by(|_| 0u8)
            .reduce(|x, y| x + y)
            .name("total")
            .sink(a_sink);
        numbers
            .key_by(|_| 0u8)
            .reduce(|x, y| x.max(y))
            .name("total")
            .sink(b_sink);
        (job, a, b)
    };
    let dir = tempfile::tempdir().unwrap();
    let (job, a, _) = build(Some(200_000.0));
    let handle = job.start(config(dir.path(), None, false)).unwrap();
    while a.len() < 1_000 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let savepoint = handle.stop_with_savepoint().unwrap();
    handle.join().unwrap();
    let (job, a, b) = build(None);
    job.run(config(dir.path(), Some(savepoint), false)).unwrap();
    assert_eq!(a.take().into_iter().max(), Some(N * (N - 1) / 2));
    assert_eq!(b.take().into_iter().max(), Some(N - 1));
}

#[test]
fn a_generated_id_that_meets_a_chosen_one_is_refused() {
    // Two reducers named `total` get `total#<position>` (the first is node 3); a third
    // operator chose that id.
    let mut job = Job::new("collide");
    let numbers = job.from_vec("numbers", vec![1u64, 2, 3]);
    numbers
        .clone()
        .key_by(|n| n % 2)
        .reduce(|a, b| a + b)
        .name("total")
        .collect();
    numbers
        .clone()
        .key_by(|n| n % 3)
        .reduce(|a, b| a + b)
        .name("total")
        .collect();
    numbers
        .key_by(|n| n % 5)
        .reduce(|a, b| a + b)
        .name("other")
        .uid("total#3")
        .collect();
    let err = job.run(JobConfig::default()).unwrap_err().to_string();
    assert!(
        err.contains("would both keep their state under the id `total#3`"),
        "{err}"
    );
}
