//! Key groups moving into and out of a running job (`TaskContext::change_key_groups`): the
//! mechanism behind the state hand-over between processes of one consumer group. A first run
//! counts keys and checkpoints; a second run adopts some keys' groups from that checkpoint
//! while it runs — their counts go on — and later releases one — its count starts over.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use streamcore::checkpoint::{encode, CheckpointConfig, CheckpointStorage, LocalCheckpointStorage};
use streamcore::join::JoinIndexing;
use streamcore::state::{key_group, KeyGroupChange, KeyGroupState, DEFAULT_KEY_GROUPS};
use streamcore::window::{aggregates::Sum, Windows};
use streamcore::{
    Job, JobConfig, Result, Source, SourcePoll, SourceReader, TaskContext, Timestamp,
    WatermarkStrategy,
};

type Record = (String, u64);

/// What the scripted source does next.
enum Step<T = Record> {
    /// Emits these records.
    Records(Vec<T>),
    /// Hands this change to the runtime (built when its turn comes).
    Change(Box<dyn FnOnce() -> KeyGroupChange + Send>),
    /// Asks for a checkpoint, waits for it, and reports where it was written.
    Checkpoint(Arc<Mutex<Option<PathBuf>>>),
}

struct Script<T> {
    steps: VecDeque<Step<T>>,
    waiting_for: Option<(u64, Arc<Mutex<Option<PathBuf>>>)>,
    started: Instant,
}

impl<T: streamcore::Data> SourceReader<T> for Script<T> {
    fn poll_batch(
        &mut self,
        out: &mut Vec<T>,
        _: usize,
        ctx: &mut TaskContext,
    ) -> Result<SourcePoll> {
        if let Some((id, slot)) = &self.waiting_for {
            if ctx.completed_checkpoint() < *id {
                assert!(self.started.elapsed() < Duration::from_secs(30));
                return Ok(SourcePoll::Idle);
            }
            *slot.lock().unwrap() = ctx
                .completed_checkpoint_location()
                .map(|l| l.as_path().to_path_buf());
            self.waiting_for = None;
        }
        match self.steps.pop_front() {
            None => Ok(SourcePoll::Finished),
            Some(Step::Records(r)) => {
                out.extend(r);
                Ok(SourcePoll::Ready)
            }
            Some(Step::Change(make)) => {
                ctx.change_key_groups(make());
                Ok(SourcePoll::Ready)
            }
            Some(Step::Checkpoint(slot)) => {
                let id = ctx.request_checkpoint().expect("the job checkpoints");
                self.waiting_for = Some((id, slot));
                Ok(SourcePoll::Idle)
            }
        }
    }
    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        encode(&self.steps.len())
    }
}

struct ScriptSource<T>(Option<Vec<Step<T>>>);

impl<T: streamcore::Data> Source<T> for ScriptSource<T> {
    type Reader = Script<T>;
    fn parallelism(&self, _: usize) -> usize {
        1
    }
    fn create_readers(&mut self, _: usize) -> Result<Vec<Script<T>>> {
        Ok(vec![Script {
            steps: self.0.take().expect("one run").into(),
            waiting_for: None,
            started: Instant::now(),
        }])
    }
    fn supports_checkpoints(&self) -> bool {
        true
    }
}

fn keys(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("user_{i}")).collect()
}

fn once_each(keys: &[String]) -> Vec<Record> {
    keys.iter().map(|k| (k.clone(), 1)).collect()
}

/// The key groups of `keys`, one range per key.
fn groups_of(keys: &[String]) -> Vec<std::ops::Range<u32>> {
    keys.iter()
        .map(|k| {
            let g = key_group(k, DEFAULT_KEY_GROUPS);
            g..g + 1
        })
        .collect()
}

/// The state of `groups` in the checkpoint a [`Step::Checkpoint`] reported into `location`.
fn checkpointed_state(
    dir: &std::path::Path,
    location: &Mutex<Option<PathBuf>>,
    groups: &[std::ops::Range<u32>],
) -> KeyGroupState {
    let location = location
        .lock()
        .unwrap()
        .clone()
        .expect("checkpoint written");
    let cp = LocalCheckpointStorage::new(dir)
        .unwrap()
        .load(&location.into())
        .unwrap();
    KeyGroupState::from_checkpoint(&cp, groups)
}

/// Runs `steps` through `key_by(key).reduce(sum)` at parallelism 2 (an exchange between the
/// source and the counts), checkpointing into `dir`; returns every count emitted, per key.
fn run_counts(steps: Vec<Step>, dir: &std::path::Path) -> BTreeMap<String, Vec<u64>> {
    run_counts_with_changes(steps, dir).0
}

/// As [`run_counts`], with the key-group changes the job's operator instances applied.
fn run_counts_with_changes(
    steps: Vec<Step>,
    dir: &std::path::Path,
) -> (BTreeMap<String, Vec<u64>>, u64) {
    let mut job = Job::new("counts");
    let out = job
        .source("script", ScriptSource(Some(steps)))
        .key_by(|r: &Record| r.0.clone())
        .reduce(|a, b| (a.0, a.1 + b.1))
        .collect();
    let summary = job
        .run(
            JobConfig::default()
                .parallelism(2)
                .checkpoints(CheckpointConfig::new(dir).interval(Duration::from_secs(3600))),
        )
        .unwrap();
    let mut counts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (k, n) in out.take() {
        counts.entry(k).or_default().push(n);
    }
    let changes = summary.operators.iter().map(|o| o.key_group_changes).sum();
    (counts, changes)
}

#[test]
fn a_running_job_adopts_key_groups_from_a_checkpoint_and_releases_them() {
    let all = keys(0..10);
    let (moved, stayed) = all.split_at(5);
    // Keys that share a key group with a moved key would move too: keep the test exact.
    let moved_groups = groups_of(moved);
    assert!(stayed.iter().all(|k| !moved_groups
        .iter()
        .any(|r| r.contains(&key_group(k, DEFAULT_KEY_GROUPS)))));

    // Run 1: every key three times, then a checkpoint that holds the counts.
    let first_dir = tempfile::tempdir().unwrap();
    let location = Arc::new(Mutex::new(None));
    let mut steps = Vec::new();
    for _ in 0..3 {
        steps.push(Step::Records(once_each(&all)));
    }
    steps.push(Step::Checkpoint(location.clone()));
    run_counts(steps, first_dir.path());

    // Run 2: adopts the moved keys' groups from run 1's checkpoint, then counts every key
    // once; then releases the first moved key's group and counts it again.
    let adopted = checkpointed_state(first_dir.path(), &location, &moved_groups);
    assert!(!adopted.is_empty());
    let second_dir = tempfile::tempdir().unwrap();
    let first_moved = moved[..1].to_vec();
    let steps = vec![
        Step::Change(Box::new({
            let groups = moved_groups.clone();
            move || KeyGroupChange::adopt(groups, adopted)
        })),
        Step::Records(once_each(&all)),
        Step::Change(Box::new({
            let groups = groups_of(&first_moved);
            move || KeyGroupChange::release(groups)
        })),
        Step::Records(once_each(&first_moved)),
    ];
    let (counts, changes) = run_counts_with_changes(steps, second_dir.path());
    // Both changes reached the counting instances (the adopt one or both, the release one).
    assert!(changes >= 2, "{changes} key-group changes applied");
    for k in moved {
        let expected: &[u64] = if *k == first_moved[0] { &[4, 1] } else { &[4] };
        assert_eq!(counts[k], expected, "{k}: adopted with its count of 3");
    }
    for k in stayed {
        assert_eq!(counts[k], [1], "{k}: not adopted, starts at 0");
    }
}

#[test]
fn an_adopted_group_without_state_starts_empty_and_replaces_what_was_there() {
    let key = keys(0..1);
    let dir = tempfile::tempdir().unwrap();
    let steps = vec![
        Step::Records(once_each(&key)),
        Step::Records(once_each(&key)),
        // Adopting the group with no state (the previous owner had none) replaces the count.
        Step::Change(Box::new({
            let groups = groups_of(&key);
            move || KeyGroupChange::adopt(groups, KeyGroupState::default())
        })),
        Step::Records(once_each(&key)),
    ];
    let counts = run_counts(steps, dir.path());
    assert_eq!(counts[&key[0]], [1, 2, 1]);
}

type Timed = (Timestamp, String, u64);

/// Runs `steps` through one-second tumbling windows summing per key (parallelism 2); returns
/// the sums per key.
fn run_windows(steps: Vec<Step<Timed>>, dir: &std::path::Path) -> BTreeMap<String, Vec<u64>> {
    let mut job = Job::new("windows");
    let out = job
        .source("script", ScriptSource(Some(steps)))
        .with_watermarks(WatermarkStrategy::monotonous())
        .key_by(|r: &Timed| r.1.clone())
        .window(Windows::tumbling(Duration::from_secs(1)))
        .aggregate(Sum::new(|r: &Timed| r.2))
        .collect();
    job.run(
        JobConfig::default()
            .parallelism(2)
            .checkpoints(CheckpointConfig::new(dir).interval(Duration::from_secs(3600))),
    )
    .unwrap();
    let mut sums: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in out.take() {
        sums.entry(r.key).or_default().push(r.value);
    }
    sums
}

/// Open windows move too: their contents and their timers (the adopted windows fire).
#[test]
fn open_windows_move_with_their_key_groups() {
    let all = keys(0..10);
    let (moved, stayed) = all.split_at(5);
    let moved_groups = groups_of(moved);
    let at = |ms: i64, keys: &[String]| -> Vec<Timed> {
        keys.iter().map(|k| (Timestamp(ms), k.clone(), 1)).collect()
    };
    let first_dir = tempfile::tempdir().unwrap();
    let location = Arc::new(Mutex::new(None));
    run_windows(
        vec![
            Step::Records(at(100, &all)),
            Step::Records(at(200, &all)),
            Step::Checkpoint(location.clone()),
        ],
        first_dir.path(),
    );
    let adopted = checkpointed_state(first_dir.path(), &location, &moved_groups);
    let second_dir = tempfile::tempdir().unwrap();
    let sums = run_windows(
        vec![
            Step::Change(Box::new(move || {
                KeyGroupChange::adopt(moved_groups, adopted)
            })),
            Step::Records(at(300, &all)),
        ],
        second_dir.path(),
    );
    for k in moved {
        assert_eq!(sums[k], [3], "{k}: the window held 2 when it moved");
    }
    for k in stayed {
        assert_eq!(sums[k], [1], "{k}");
    }
}

/// A change that adopts key groups of one parallel instance leaves the other instances'
/// state alone (a review found them rebuilt from nothing: their counts restarted).
#[test]
fn instances_a_change_does_not_touch_keep_their_state() {
    // One key in each half of the key groups: instance 0 and instance 1 at parallelism 2.
    let all = keys(0..200);
    let first_half = |k: &String| key_group(k, DEFAULT_KEY_GROUPS) < DEFAULT_KEY_GROUPS / 2;
    let stays = all.iter().find(|k| first_half(k)).unwrap().clone();
    let moves = all.iter().find(|k| !first_half(k)).unwrap().clone();
    // The moving key's state: counted three times by another run.
    let first_dir = tempfile::tempdir().unwrap();
    let location = Arc::new(Mutex::new(None));
    let once = once_each(std::slice::from_ref(&moves));
    run_counts(
        vec![
            Step::Records(once.clone()),
            Step::Records(once.clone()),
            Step::Records(once),
            Step::Checkpoint(location.clone()),
        ],
        first_dir.path(),
    );
    let groups = groups_of(std::slice::from_ref(&moves));
    let adopted = checkpointed_state(first_dir.path(), &location, &groups);
    assert!(!adopted.is_empty());
    let both = vec![stays.clone(), moves.clone()];
    let second_dir = tempfile::tempdir().unwrap();
    let counts = run_counts(
        vec![
            Step::Records(once_each(&both)),
            Step::Records(once_each(&both)),
            Step::Change(Box::new(move || KeyGroupChange::adopt(groups, adopted))),
            Step::Records(once_each(&both)),
        ],
        second_dir.path(),
    );
    assert_eq!(
        counts[&stays],
        [1, 2, 3],
        "the untouched instance kept its count"
    );
    assert_eq!(
        counts[&moves],
        [1, 2, 4],
        "the adopted count replaced the local one"
    );
}

/// (time, key, id, left side?)
type Side = (Timestamp, String, u64, bool);

/// Runs an interval join (±100 ms) of the script's left and right records; its pairs of ids.
fn run_interval_join(
    steps: Vec<Step<Side>>,
    dir: &std::path::Path,
    indexing: JoinIndexing,
) -> Vec<(u64, u64)> {
    let mut job = Job::new("interval-handover");
    let both = job
        .source("script", ScriptSource(Some(steps)))
        .with_watermarks(WatermarkStrategy::monotonous());
    let left = both.clone().filter(|r: &Side| r.3);
    let right = both.filter(|r: &Side| !r.3);
    let out = left
        .connect(right)
        .key_by(|a: &Side| a.1.clone(), |b: &Side| b.1.clone())
        .interval_join_with(-100, 100, indexing, |a: &Side, b: &Side| (a.2, b.2))
        .collect();
    job.run(
        JobConfig::default()
            .parallelism(2)
            .checkpoints(CheckpointConfig::new(dir).interval(Duration::from_secs(3600))),
    )
    .unwrap();
    let mut v = out.take();
    v.sort();
    v
}

#[test]
fn an_interval_joins_buffered_records_move_with_their_key_groups() {
    // Whatever the buffers' layout (per key, or one time-ordered log per instance), a buffered
    // record travels with its key group: adopted from a checkpoint it pairs with a later
    // record of the other side; released, it is gone.
    for indexing in [
        JoinIndexing::Keyed,
        JoinIndexing::Adaptive,
        JoinIndexing::Scanned,
    ] {
        let key = keys(0..1);
        let groups = groups_of(&key);
        let first = tempfile::tempdir().unwrap();
        let location = Arc::new(Mutex::new(None));
        run_interval_join(
            vec![
                Step::Records(vec![(Timestamp(100), key[0].clone(), 1, true)]),
                Step::Checkpoint(location.clone()),
            ],
            first.path(),
            indexing,
        );
        let adopted = checkpointed_state(first.path(), &location, &groups);
        let second = tempfile::tempdir().unwrap();
        let (k, g) = (key.clone(), groups.clone());
        assert_eq!(
            run_interval_join(
                vec![
                    Step::Change(Box::new(move || KeyGroupChange::adopt(g, adopted))),
                    Step::Records(vec![(Timestamp(150), k[0].clone(), 2, false)]),
                ],
                second.path(),
                indexing,
            ),
            vec![(1, 2)],
            "{indexing:?}: adopted"
        );
        let third = tempfile::tempdir().unwrap();
        assert_eq!(
            run_interval_join(
                vec![
                    Step::Records(vec![(Timestamp(100), key[0].clone(), 1, true)]),
                    Step::Change(Box::new(move || KeyGroupChange::release(groups))),
                    Step::Records(vec![(Timestamp(150), key[0].clone(), 2, false)]),
                ],
                third.path(),
                indexing,
            ),
            vec![],
            "{indexing:?}: released"
        );
    }
}
