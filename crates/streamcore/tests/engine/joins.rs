//! Joins against a nested-loop reference: interval and window joins, with random disorder
//! within the watermark bound, at parallelism 1 to 4, in every buffer layout; bounded state on
//! long inputs; and records behind the watermark, which go to the join's late output — every
//! record either joined or there.

use proptest::prelude::*;
use std::collections::HashSet;
use std::time::Duration;
use streamcore::join::{Change, Either, JoinIndexing, LateFrom};
use streamcore::window::Windows;
use streamcore::OutputTag;
use streamcore::{Job, JobConfig, Stream, Timestamp, WatermarkStrategy};

type Rec = (Timestamp, u8, u32);

/// Random records: times advance by 0..40 ms and each record may lag up to `delay` behind the
/// largest time before it (so bounded out-of-orderness with `delay` holds for any subsequence).
fn records(max_len: usize, delay: i64) -> impl Strategy<Value = Vec<Rec>> {
    prop::collection::vec((0i64..40, 0..=delay, 0u8..4), 0..max_len).prop_map(move |steps| {
        let mut base = 0;
        steps
            .into_iter()
            .enumerate()
            .map(|(i, (step, lag, key))| {
                base += step;
                (Timestamp((base - lag).max(0)), key, i as u32)
            })
            .collect()
    })
}

fn run_interval(
    left: &[Rec],
    right: &[Rec],
    (lower, upper): (i64, i64),
    p: usize,
    batch: usize,
    delay: i64,
    indexing: JoinIndexing,
) -> Vec<(u32, u32)> {
    let mut job = Job::new("interval");
    let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(delay as u64));
    let l = job
        .from_vec("left", left.to_vec())
        .with_watermarks(strategy);
    let r = job
        .from_vec("right", right.to_vec())
        .with_watermarks(strategy);
    let out = l
        .connect(r)
        .key_by(|a| a.1, |b| b.1)
        .interval_join_with(lower, upper, indexing, |a, b| (a.2, b.2))
        .collect();
    let summary = job
        .run(JobConfig::default().parallelism(p).batch_size(batch))
        .unwrap();
    assert_eq!(
        summary.events_late, 0,
        "disorder within the bound: nothing is late"
    );
    let mut v = out.take();
    v.sort();
    v
}

fn reference_interval(left: &[Rec], right: &[Rec], lower: i64, upper: i64) -> Vec<(u32, u32)> {
    let mut v = Vec::new();
    for a in left {
        for b in right {
            let d = a.0.millis() - b.0.millis();
            if a.1 == b.1 && lower <= d && d <= upper {
                v.push((a.2, b.2));
            }
        }
    }
    v.sort();
    v
}

fn run_window(
    left: &[Rec],
    right: &[Rec],
    windows: Windows,
    p: usize,
    batch: usize,
    delay: i64,
) -> Vec<(u32, u32)> {
    let mut job = Job::new("window-join");
    let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(delay as u64));
    let l = job
        .from_vec("left", left.to_vec())
        .with_watermarks(strategy);
    let r = job
        .from_vec("right", right.to_vec())
        .with_watermarks(strategy);
    let out = l
        .connect(r)
        .key_by(|a| a.1, |b| b.1)
        .window_join(windows, |a, b| (a.2, b.2))
        .collect();
    job.run(JobConfig::default().parallelism(p).batch_size(batch))
        .unwrap();
    let mut v = out.take();
    v.sort();
    v
}

fn reference_tumbling(left: &[Rec], right: &[Rec], size: i64) -> Vec<(u32, u32)> {
    let mut v = Vec::new();
    for a in left {
        for b in right {
            if a.1 == b.1 && a.0.millis().div_euclid(size) == b.0.millis().div_euclid(size) {
                v.push((a.2, b.2));
            }
        }
    }
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn interval_join_equals_nested_loop(
        left in records(60, 50),
        right in records(60, 50),
        lower in -100i64..50,
        width in 0i64..150,
        p in 1usize..=4,
        batch in prop::sample::select(vec![1usize, 5, 1024]),
        indexing in prop::sample::select(vec![JoinIndexing::Adaptive, JoinIndexing::Keyed, JoinIndexing::Scanned]),
    ) {
        let upper = lower + width;
        // Right-side ids are offset so pairs are unambiguous.
        let right: Vec<Rec> = right.into_iter().map(|r| (r.0, r.1, r.2 + 1000)).collect();
        prop_assert_eq!(
            run_interval(&left, &right, (lower, upper), p, batch, 50, indexing),
            reference_interval(&left, &right, lower, upper)
        );
    }

    #[test]
    fn tumbling_window_join_equals_nested_loop(
        left in records(50, 30),
        right in records(50, 30),
        size in 20i64..200,
        p in 1usize..=4,
        batch in prop::sample::select(vec![1usize, 7, 1024]),
    ) {
        let right: Vec<Rec> = right.into_iter().map(|r| (r.0, r.1, r.2 + 1000)).collect();
        prop_assert_eq!(
            run_window(&left, &right, Windows::tumbling(Duration::from_millis(size as u64)), p, batch, 30),
            reference_tumbling(&left, &right, size)
        );
    }
}

#[test]
fn session_window_join_pairs_across_a_shared_session() {
    // Key 1: left at 0, right at 25 and 60 (gap 40): one session [0, 100) with all three.
    // Key 2: left at 0, right at 100: two sessions, no pair.
    let left = vec![(Timestamp(0), 1u8, 1u32), (Timestamp(0), 2, 2)];
    let right = vec![
        (Timestamp(25), 1u8, 11u32),
        (Timestamp(60), 1, 12),
        (Timestamp(100), 2, 13),
    ];
    for p in [1, 2] {
        let got = run_window(
            &left,
            &right,
            Windows::session(Duration::from_millis(40)),
            p,
            1,
            0,
        );
        assert_eq!(got, vec![(1, 11), (1, 12)]);
    }
}

#[test]
fn interval_join_state_stays_bounded_as_the_watermark_advances() {
    // 400k records over an ever-advancing event time, both sides from one reader (so neither
    // side runs ahead of the other): the join keeps only what is still within the interval.
    let n = 400_000u32;
    let records: Vec<(Timestamp, u8, u32, bool)> = (0..n)
        .map(|i| (Timestamp((i / 2) as i64), (i % 7) as u8, i, i % 2 == 0))
        .collect();
    let mut job = Job::new("bounded");
    let both = job
        .from_vec("both", records)
        .with_watermarks(WatermarkStrategy::monotonous());
    let left = both.clone().filter(|r| r.3);
    let right = both.filter(|r| !r.3);
    let out = left
        .connect(right)
        .key_by(|a| a.1, |b| b.1)
        .interval_join(-10, 10, |_, _| ())
        .collect();
    let handle = job
        .start(JobConfig::default().parallelism(1).batch_size(256))
        .unwrap();
    let mut peak_bytes = 0;
    while !handle.is_finished() {
        let m = handle.metrics();
        if let Some(op) = m
            .operators
            .iter()
            .find(|o| o.name.starts_with("interval_join"))
        {
            peak_bytes = peak_bytes.max(op.state_bytes);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let summary = handle.join().unwrap();
    assert!(out.len() > 500_000, "{}", out.len());
    let op = summary
        .operators
        .iter()
        .find(|o| o.name.starts_with("interval_join"))
        .unwrap();
    assert_eq!(op.state_keys, 0, "all state dropped at the end");
    // What the interval (21 ms at 2 records per ms) plus the records queued between source and
    // join (16 batches of 256) can hold — far below the 400k records that went through.
    let record_bytes = (std::mem::size_of::<(Timestamp, u8, u32, bool)>() + 16) as u64;
    assert!(
        peak_bytes < 6_000 * record_bytes,
        "peak state {peak_bytes} bytes"
    );
}

/// A bounded source that starts emitting `records` only after `delay`.
#[derive(Clone)]
struct Delayed<T> {
    records: Vec<T>,
    delay: Duration,
}

struct DelayedReader<T> {
    records: std::vec::IntoIter<T>,
    start: Option<std::time::Instant>,
    delay: Duration,
}

impl<T: streamcore::Data> streamcore::Source<T> for Delayed<T> {
    type Reader = DelayedReader<T>;
    fn create_readers(&mut self, p: usize) -> streamcore::Result<Vec<DelayedReader<T>>> {
        let mut parts: Vec<Vec<T>> = (0..p).map(|_| Vec::new()).collect();
        for (i, r) in self.records.iter().enumerate() {
            parts[i % p].push(r.clone());
        }
        Ok(parts
            .into_iter()
            .map(|v| DelayedReader {
                records: v.into_iter(),
                start: None,
                delay: self.delay,
            })
            .collect())
    }
}

impl<T: streamcore::Data> streamcore::SourceReader<T> for DelayedReader<T> {
    fn poll_batch(
        &mut self,
        out: &mut Vec<T>,
        max: usize,
        _: &mut streamcore::TaskContext,
    ) -> streamcore::Result<streamcore::SourcePoll> {
        if self
            .start
            .get_or_insert_with(std::time::Instant::now)
            .elapsed()
            < self.delay
        {
            return Ok(streamcore::SourcePoll::Idle);
        }
        out.extend(self.records.by_ref().take(max));
        Ok(if self.records.len() == 0 {
            streamcore::SourcePoll::Finished
        } else {
            streamcore::SourcePoll::Ready
        })
    }
}

#[derive(Clone)]
struct Limits;

impl streamcore::join::BroadcastProcessFunction<(u32, i64), (u32, i64)> for Limits {
    type State = std::collections::HashMap<u32, i64>;
    type Out = (u32, i64);
    fn process(
        &mut self,
        tx: (u32, i64),
        limits: &Self::State,
        out: &mut streamcore::Output<(u32, i64)>,
    ) {
        if limits.get(&tx.0).is_some_and(|&l| tx.1 > l) {
            out.emit(tx);
        }
    }
    fn process_broadcast(
        &mut self,
        rule: (u32, i64),
        limits: &mut Self::State,
        _: &mut streamcore::Output<(u32, i64)>,
    ) {
        limits.insert(rule.0, rule.1);
    }
}

#[test]
fn broadcast_rules_reach_every_instance() {
    for p in [1, 2, 4] {
        let mut job = Job::new("limits");
        let rules = job.from_vec("rules", vec![(1u32, 100i64), (2, 10)]);
        let txs: Vec<(u32, i64)> = (0..1000)
            .map(|i| ((i % 3) as u32, (i % 200) as i64))
            .collect();
        let expected = txs
            .iter()
            .filter(|t| (t.0 == 1 && t.1 > 100) || (t.0 == 2 && t.1 > 10))
            .count();
        // The transactions start after the rules have surely been broadcast.
        let main = job.source(
            "txs",
            Delayed {
                records: txs,
                delay: Duration::from_millis(200),
            },
        );
        let flagged = main.broadcast_process(rules, Limits).collect();
        job.run(JobConfig::default().parallelism(p).batch_size(16))
            .unwrap();
        assert_eq!(flagged.len(), expected, "parallelism {p}");
    }
}

type Row = (Option<u32>, Option<u32>);

fn reference_regular(
    left: &[(u8, u32)],
    right: &[(u8, u32)],
    kind: streamcore::join::JoinType,
) -> Vec<Row> {
    use streamcore::join::JoinType::*;
    let mut rows = Vec::new();
    for a in left {
        let partners: Vec<_> = right.iter().filter(|b| b.0 == a.0).collect();
        for b in &partners {
            rows.push((Some(a.1), Some(b.1)));
        }
        if partners.is_empty() && matches!(kind, Left | Full) {
            rows.push((Some(a.1), None));
        }
    }
    for b in right {
        if !left.iter().any(|a| a.0 == b.0) && matches!(kind, Right | Full) {
            rows.push((None, Some(b.1)));
        }
    }
    rows.sort();
    rows
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn regular_join_changelog_applies_to_the_nested_loop_result(
        left in prop::collection::vec((0u8..5, 0u32..1000), 0..40),
        right in prop::collection::vec((0u8..5, 1000u32..2000), 0..40),
        kind in prop::sample::select(vec![
            streamcore::join::JoinType::Inner,
            streamcore::join::JoinType::Left,
            streamcore::join::JoinType::Right,
            streamcore::join::JoinType::Full,
        ]),
        p in 1usize..=4,
        batch in prop::sample::select(vec![1usize, 3, 1024]),
    ) {
        let mut job = Job::new("regular");
        let changes = job
            .from_vec("left", left.clone())
            .connect(job.from_vec("right", right.clone()))
            .key_by(|a| a.0, |b| b.0)
            .join(kind, |a, b| (a.map(|a| a.1), b.map(|b| b.1)))
            .collect();
        job.run(JobConfig::default().parallelism(p).batch_size(batch)).unwrap();
        // Apply the changelog in order per key (a key's changes come from one instance, in order).
        let mut table: Vec<Row> = Vec::new();
        for change in changes.take() {
            let add = change.is_addition();
            let r = change.into_row();
            if add {
                table.push(r);
            } else {
                let at = table.iter().position(|x| *x == r);
                prop_assert!(at.is_some(), "deleted a row never inserted: {:?}", r);
                table.swap_remove(at.unwrap());
            }
        }
        table.sort();
        prop_assert_eq!(table, reference_regular(&left, &right, kind));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn temporal_join_sees_the_version_current_at_each_probe(
        changes in records(40, 30),
        probes in records(40, 30),
        deletes in prop::collection::vec(any::<bool>(), 40),
        p in 1usize..=4,
        batch in prop::sample::select(vec![1usize, 4, 1024]),
    ) {
        use streamcore::join::Change;
        // Version times unique per key (a tie would make "the current version" ambiguous).
        let mut seen = std::collections::HashSet::new();
        let table: Vec<Change<Rec>> = changes
            .into_iter()
            .zip(deletes)
            .filter(|(c, _)| seen.insert((c.0, c.1)))
            .map(|(c, del)| if del { Change::Delete(c) } else { Change::Insert(c) })
            .collect();
        let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(30));
        let mut job = Job::new("temporal");
        let out = job
            .from_vec("probes", probes.clone())
            .with_watermarks(strategy)
            .connect(job.from_vec("table", table.clone()).with_watermarks(strategy))
            .key_by(|p| p.1, |c| c.row().1)
            .temporal_join(|p, v| (p.2, v.map(|v| v.2)))
            .collect();
        let summary = job.run(JobConfig::default().parallelism(p).batch_size(batch)).unwrap();
        prop_assert_eq!(summary.events_late, 0);
        let mut got = out.take();
        got.sort();
        let mut expected: Vec<(u32, Option<u32>)> = probes
            .iter()
            .map(|pr| {
                let current = table
                    .iter()
                    .filter(|c| c.row().1 == pr.1 && c.row().0 <= pr.0)
                    .max_by_key(|c| c.row().0);
                let version = match current {
                    Some(Change::Insert(r)) => Some(r.2),
                    _ => None,
                };
                (pr.2, version)
            })
            .collect();
        expected.sort();
        prop_assert_eq!(got, expected);
    }
}

/// (time, key, id, left side?)
type Tagged = (Timestamp, u8, u32, bool);

/// Records for both sides of a join (left: even ids), times 10 ms apart, every seventh record
/// 500 ms behind the others — late at the join behind a watermark that allows 50 ms (which
/// exactly depends on how the join's two inputs interleave).
fn with_late_records(n: u32) -> Vec<Tagged> {
    (0..n)
        .map(|i| {
            let ts = i as i64 * 10 - if i % 7 == 6 { 500 } else { 0 };
            (Timestamp(ts.max(0)), (i % 5) as u8, i, i % 2 == 0)
        })
        .collect()
}

/// The left and right sides of `records`, read by one reader (so neither runs ahead).
fn sides(job: &mut Job, records: &[Tagged]) -> (Stream<Tagged>, Stream<Tagged>) {
    let both = job.from_vec("both", records.to_vec()).with_watermarks(
        WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(50)),
    );
    (both.clone().filter(|r| r.3), both.filter(|r| !r.3))
}

/// The ids of late records.
fn late_ids(rows: Vec<Either<Tagged, Tagged>>) -> HashSet<u32> {
    rows.into_iter()
        .map(|r| match r {
            Either::Left(a) => a.2,
            Either::Right(b) => b.2,
        })
        .collect()
}

/// Runs `job` (parallelism 1, batches of 16): the pairs of `pairs`, sorted, and the ids of the
/// records sent to `late` — some, and as many as the job counted late.
fn run_with_late(
    job: Job,
    pairs: Stream<(u32, u32)>,
    late: &OutputTag<Either<Tagged, Tagged>>,
) -> (Vec<(u32, u32)>, HashSet<u32>) {
    let late_rows = pairs.side_output(late).collect();
    let pairs = pairs.collect();
    let summary = job
        .run(JobConfig::default().parallelism(1).batch_size(16))
        .unwrap();
    let late = late_ids(late_rows.take());
    assert!(!late.is_empty(), "records 500 ms behind are late");
    assert_eq!(summary.events_late as usize, late.len());
    let mut got = pairs.take();
    got.sort();
    (got, late)
}

/// One side's records that were not late.
fn on_time(records: &[Tagged], late: &HashSet<u32>, left: bool) -> Vec<Rec> {
    records
        .iter()
        .filter(|r| r.3 == left && !late.contains(&r.2))
        .map(|r| (r.0, r.1, r.2))
        .collect()
}

#[test]
fn late_records_of_an_interval_join_go_to_the_late_output() {
    // Whatever the interleaving, each record is either joined or in the late output, and the
    // pairs are the nested loop's over the records that were not late.
    let records = with_late_records(3_000);
    for indexing in [JoinIndexing::Adaptive, JoinIndexing::Keyed] {
        let mut job = Job::new("late-interval");
        let (left, right) = sides(&mut job, &records);
        let late = OutputTag::new("late");
        let pairs = left
            .connect(right)
            .key_by(|a| a.1, |b| b.1)
            .late_output(&late)
            .interval_join_with(-20, 20, indexing, |a, b| (a.2, b.2));
        let (got, late) = run_with_late(job, pairs, &late);
        let (l, r) = (
            on_time(&records, &late, true),
            on_time(&records, &late, false),
        );
        assert_eq!(got, reference_interval(&l, &r, -20, 20), "{indexing:?}");
    }
}

#[test]
fn late_records_of_one_input_only_go_to_the_late_output_with_late_from() {
    let records = with_late_records(3_000);
    let mut job = Job::new("late-left");
    let (left, right) = sides(&mut job, &records);
    let late = OutputTag::new("late");
    let pairs = left
        .connect(right)
        .key_by(|a| a.1, |b| b.1)
        .late_output_of(&late, LateFrom::Left)
        .interval_join(-20, 20, |a, b| (a.2, b.2));
    let late_rows = pairs.side_output(&late).collect();
    let _pairs = pairs.collect();
    let summary = job
        .run(JobConfig::default().parallelism(1).batch_size(16))
        .unwrap();
    let late_rows = late_rows.take();
    assert!(late_rows.iter().all(|r| matches!(r, Either::Left(_))));
    let join = summary
        .operators
        .iter()
        .find(|o| o.name.starts_with("interval_join"))
        .expect("the join's metrics");
    // Late records of both inputs counted; the left ones sent on, the right ones dropped.
    assert_eq!(join.late_redirected as usize, late_rows.len());
    assert!(join.late_records > join.late_redirected, "{join:?}");
}

#[test]
fn late_records_of_a_window_join_go_to_the_late_output() {
    // As for the interval join: each record is joined in its window or is in the late output.
    let records = with_late_records(2_000);
    let mut job = Job::new("late-window-join");
    let (left, right) = sides(&mut job, &records);
    let late = OutputTag::new("late");
    let pairs = left
        .connect(right)
        .key_by(|a| a.1, |b| b.1)
        .late_output(&late)
        .window_join(Windows::tumbling(Duration::from_millis(100)), |a, b| {
            (a.2, b.2)
        });
    let (got, late) = run_with_late(job, pairs, &late);
    let (l, r) = (
        on_time(&records, &late, true),
        on_time(&records, &late, false),
    );
    assert_eq!(got, reference_tumbling(&l, &r, 100));
}

#[test]
fn late_probes_of_a_temporal_join_go_to_the_late_output() {
    use streamcore::join::Change;
    // Every seventh probe 500 ms behind the others, the watermark allowing 50 ms; the table's
    // versions all at time 0. Each probe is joined with its version or is in the late output
    // (which ones are late depends on when the table's end reaches the join), none lost.
    let probes: Vec<Rec> = (0..1_000u32)
        .map(|i| {
            let ts = i as i64 * 10 - if i % 7 == 6 { 500 } else { 0 };
            (Timestamp(ts.max(0)), (i % 3) as u8, i)
        })
        .collect();
    let table: Vec<Change<Rec>> = (0..3u8)
        .map(|k| Change::Insert((Timestamp(0), k, 100 + k as u32)))
        .collect();
    let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(50));
    let mut job = Job::new("late-temporal");
    let late = OutputTag::<Either<Rec, Change<Rec>>>::new("late");
    let joined = job
        .from_vec("probes", probes.clone())
        .with_watermarks(strategy)
        .connect(job.from_vec("table", table).with_watermarks(strategy))
        .key_by(|p| p.1, |c| c.row().1)
        .late_output(&late)
        .temporal_join(|p, v| (p.2, v.map(|v| v.2)));
    let late_rows = joined.side_output(&late).collect();
    let joined = joined.collect();
    let summary = job
        .run(JobConfig::default().parallelism(1).batch_size(16))
        .unwrap();
    let mut ids: Vec<u32> = Vec::new();
    for (id, version) in joined.take() {
        assert_eq!(version, Some(100 + id % 3), "probe {id}");
        ids.push(id);
    }
    let late: Vec<u32> = late_rows
        .take()
        .into_iter()
        .map(|r| match r {
            Either::Left(p) => p.2,
            Either::Right(c) => panic!("a table change is never late: {c:?}"),
        })
        .collect();
    assert_eq!(summary.events_late as usize, late.len());
    ids.extend(late);
    ids.sort();
    assert_eq!(ids, (0..1_000).collect::<Vec<u32>>());
}

/// Auctions `(t, key, id, expires)` join bids `(t, key, id)` with `a.t <= b.t <= a.expires`:
/// the regular join that drops each side's rows as the watermark passes their bound.
#[derive(Clone)]
struct AuctionLifetime;

impl streamcore::join::JoinExpiry<(Timestamp, u8, u32, i64), Rec> for AuctionLifetime {
    fn left(&self, a: &(Timestamp, u8, u32, i64)) -> Option<Timestamp> {
        // A bid matches only until the auction expires.
        Some(Timestamp(a.3))
    }
    fn right(&self, b: &Rec) -> Option<Timestamp> {
        // An auction matches a bid only if it started by the bid's time.
        Some(b.0)
    }
    fn left_late(&self, a: &(Timestamp, u8, u32, i64), watermark: Timestamp) -> bool {
        a.0 < watermark
    }
    fn right_late(&self, b: &Rec, watermark: Timestamp) -> bool {
        b.0 < watermark
    }
}

/// The expiring join of `left` (auctions; one per key when `unique_left`, and the join told
/// so) and `right` (bids): its passing pairs, sorted, and the late rows counted.
fn run_expiring(
    left: &[(Timestamp, u8, u32, i64)],
    right: &[Rec],
    p: usize,
    batch: usize,
    delay: i64,
    unique_left: bool,
) -> (Vec<(u32, u32)>, u64) {
    let mut job = Job::new("expiring");
    let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(delay as u64));
    let l = job
        .from_vec("auctions", left.to_vec())
        .with_watermarks(strategy);
    let r = job
        .from_vec("bids", right.to_vec())
        .with_watermarks(strategy);
    let out = l
        .connect(r)
        .key_by(|a| a.1, |b| b.1)
        .unique_keys(unique_left, false)
        .inner_join_expiring(AuctionLifetime, |a, b| {
            (a.0 <= b.0 && b.0 .0 <= a.3, (a.2, b.2))
        })
        .collect();
    let summary = job
        .run(JobConfig::default().parallelism(p).batch_size(batch))
        .unwrap();
    let mut v: Vec<(u32, u32)> = streamcore::changelog::apply_to(out.take())
        .into_iter()
        .filter(|(pass, _)| *pass)
        .map(|(_, pair)| pair)
        .collect();
    v.sort();
    (v, summary.events_late)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// With disorder within the watermark's bound nothing is late, and dropping rows by their
    /// bounds loses no pair: the result is the nested loop's — also with one auction per key
    /// and the join told so (bids that met their auction not kept, those that came before it
    /// cleared when it comes), the rows still expiring by their bounds.
    #[test]
    fn expiring_regular_join_equals_nested_loop(
        left in records(60, 50),
        right in records(60, 50),
        lifetimes in prop::collection::vec(0i64..300, 60),
        p in 1usize..=4,
        batch in prop::sample::select(vec![1usize, 5, 1024]),
        unique_left in any::<bool>(),
    ) {
        let mut left: Vec<(Timestamp, u8, u32, i64)> = left
            .into_iter()
            .zip(lifetimes)
            .map(|(a, life)| (a.0, a.1, a.2, a.0.0 + life))
            .collect();
        if unique_left {
            let mut seen = HashSet::new();
            left.retain(|a| seen.insert(a.1));
        }
        let right: Vec<Rec> = right.into_iter().map(|r| (r.0, r.1, r.2 + 1000)).collect();
        let mut expected: Vec<(u32, u32)> = left
            .iter()
            .flat_map(|a| right.iter().map(move |b| (a, b)))
            .filter(|(a, b)| a.1 == b.1 && a.0 <= b.0 && b.0.0 <= a.3)
            .map(|(a, b)| (a.2, b.2))
            .collect();
        expected.sort();
        let (got, late) = run_expiring(&left, &right, p, batch, 50, unique_left);
        prop_assert_eq!(late, 0);
        prop_assert_eq!(got, expected);
    }
}

/// An auction `(time, key, id, expires)`.
type Auction = (Timestamp, u8, u32, i64);

/// The auctions `(t, key, id, expires)` and the bids `(t, key, id)` of `records` (a bid where
/// `expires` is -1), read by one reader in their order (so neither side runs ahead of the
/// other), with the watermarks of `strategy`.
fn auctions_and_bids(
    job: &mut Job,
    records: Vec<Auction>,
    strategy: WatermarkStrategy,
) -> (Stream<Auction>, Stream<Rec>) {
    let both = job.from_vec("both", records).with_watermarks(strategy);
    let auctions = both.clone().filter(|r| r.3 >= 0);
    (auctions, both.filter(|r| r.3 < 0).map(|r| (r.0, r.1, r.2)))
}

#[test]
fn expiring_regular_join_keeps_only_open_rows_and_counts_late_ones() {
    // 100k auctions living 10 ms and a bid each, in time order from one reader (so neither
    // side runs ahead of the other), then one bid 1 s behind: the join's state stays small,
    // and the straggler is late (rows it could match may be gone), not joined.
    let n = 100_000u32;
    // (time, key, id, expires): an auction, or a bid when `expires` is -1
    let mut records: Vec<(Timestamp, u8, u32, i64)> = (0..n)
        .flat_map(|i| {
            let t = i as i64 * 2;
            [
                (Timestamp(t), (i % 5) as u8, i, t + 10),
                (Timestamp(t + 1), (i % 5) as u8, i, -1),
            ]
        })
        .collect();
    records.push((Timestamp(2 * n as i64 - 1000), 0, n, -1));
    let mut job = Job::new("expiring-bounded");
    let (auctions, bids) = auctions_and_bids(&mut job, records, WatermarkStrategy::monotonous());
    let out = auctions
        .connect(bids)
        .key_by(|a| a.2, |b| b.2)
        .inner_join_expiring(AuctionLifetime, |a, b| {
            (a.0 <= b.0 && b.0 .0 <= a.3, (a.2, b.2))
        })
        .collect();
    let handle = job
        .start(JobConfig::default().parallelism(1).batch_size(256))
        .unwrap();
    let mut peak_keys = 0;
    while !handle.is_finished() {
        let m = handle.metrics();
        if let Some(op) = m.operators.iter().find(|o| o.name.starts_with("join#")) {
            peak_keys = peak_keys.max(op.state_keys);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let summary = handle.join().unwrap();
    assert_eq!(summary.events_late, 1, "the straggler is late");
    let pairs: Vec<(u32, u32)> = streamcore::changelog::apply_to(out.take())
        .into_iter()
        .filter(|(pass, _)| *pass)
        .map(|(_, pair)| pair)
        .collect();
    assert!(
        !pairs.iter().any(|p| p.1 == n),
        "the late bid joined nothing"
    );
    // Keyed by id: bid i (at 2i + 1) meets auction i (alive from 2i to 2i + 10).
    assert_eq!(pairs.len() as u32, n);
    // A key whose rows are all gone is gone: without the bounds, all 100k would stay.
    assert!(peak_keys > 0, "the join's state was seen");
    let join = summary
        .operators
        .iter()
        .find(|o| o.name.starts_with("join#"))
        .unwrap();
    // At the end every row's bound has passed; the straggler's key kept no empty entry.
    assert_eq!(join.state_keys, 0, "nothing left at the end");
    assert!(peak_keys < 5_000, "state stayed bounded: {peak_keys} keys");
}

#[test]
fn expiring_regular_join_sends_late_rows_to_its_late_output() {
    // One reader, in time order, then a straggler of each side 1 s behind: both are late.
    // The bids' late output takes the bid; the auction, its side not taken, is dropped.
    // (time, key, id, expires): an auction, or a bid when `expires` is -1
    let mut records: Vec<(Timestamp, u8, u32, i64)> = (0..1_000u32)
        .flat_map(|i| {
            let t = i as i64 * 2;
            [(Timestamp(t), 0, i, t + 10), (Timestamp(t + 1), 0, i, -1)]
        })
        .collect();
    records.push((Timestamp(900), 0, 7_000, -1));
    records.push((Timestamp(901), 0, 8_000, 2_000));
    let late_from = |from: LateFrom| {
        let mut job = Job::new("expiring-late");
        let strategy = WatermarkStrategy::monotonous();
        let (auctions, bids) = auctions_and_bids(&mut job, records.clone(), strategy);
        let tag = OutputTag::<Either<(Timestamp, u8, u32, i64), Rec>>::new("late");
        let joined = auctions
            .connect(bids)
            .key_by(|a| a.1, |b| b.1)
            .late_output_of(&tag, from)
            .inner_join_expiring(AuctionLifetime, |a, b| {
                (a.0 <= b.0 && b.0 .0 <= a.3, (a.2, b.2))
            });
        let late = joined.side_output(&tag).collect();
        let out = joined.collect();
        let summary = job.run(JobConfig::default().parallelism(1)).unwrap();
        let pairs = streamcore::changelog::apply_to(out.take())
            .into_iter()
            .filter(|(pass, _)| *pass)
            .count();
        let join = summary
            .operators
            .iter()
            .find(|o| o.name.starts_with("join#"))
            .unwrap()
            .clone();
        (pairs, late.take(), join.late_records, join.late_redirected)
    };
    let (pairs, late, counted, redirected) = late_from(LateFrom::Right);
    // Bid i at 2i + 1 meets auctions i - 4 ..= i alive until 2j + 10; the stragglers none.
    assert!(pairs >= 1_000);
    assert_eq!(late, vec![Either::Right((Timestamp(900), 0, 7_000))]);
    assert_eq!((counted, redirected), (2, 1));
    let (_, late, counted, redirected) = late_from(LateFrom::Both);
    assert_eq!(late.len(), 2, "both stragglers: {late:?}");
    assert_eq!((counted, redirected), (2, 2));
}

/// Rows `(key, id)` with distinct keys out of `0..32`, in random order, ids from `base`.
fn unique_rows(base: u32) -> impl Strategy<Value = Vec<(u8, u32)>> {
    prop::sample::subsequence((0u8..32).collect::<Vec<_>>(), 0..32)
        .prop_shuffle()
        .prop_map(move |keys| {
            keys.into_iter()
                .enumerate()
                .map(|(i, k)| (k, base + i as u32))
                .collect()
        })
}

/// Rows `(key, id)` with keys out of `0..32`, repeated at will, ids from `base`.
fn any_rows(base: u32) -> impl Strategy<Value = Vec<(u8, u32)>> {
    prop::collection::vec(0u8..32, 0..60).prop_map(move |keys| {
        keys.into_iter()
            .enumerate()
            .map(|(i, k)| (k, base + i as u32))
            .collect()
    })
}

/// The inner join of `left` and `right` declared unique on the sides named, with a condition
/// beyond the key that some pairs fail (`.0` of each result).
fn unique_join(
    left: Stream<(u8, u32)>,
    right: Stream<(u8, u32)>,
    unique: (bool, bool),
) -> Stream<Change<(bool, (u32, u32))>> {
    left.connect(right)
        .key_by(|a| a.0, |b| b.0)
        .unique_keys(unique.0, unique.1)
        .inner_join_expiring(streamcore::join::NoExpiry, |a, b| {
            ((a.1 + b.1) % 3 != 0, (a.1, b.1))
        })
}

/// The pairs of [`unique_join`]'s changes that passed its condition, sorted.
fn passing(changes: Vec<Change<(bool, (u32, u32))>>) -> Vec<(u32, u32)> {
    let mut pairs: Vec<(u32, u32)> = streamcore::changelog::apply_to(changes)
        .into_iter()
        .filter(|(pass, _)| *pass)
        .map(|(_, pair)| pair)
        .collect();
    pairs.sort();
    pairs
}

/// [`unique_join`] of `left` and `right` from two readers; its pairs and the keys it keeps at
/// the end.
fn run_unique(
    left: &[(u8, u32)],
    right: &[(u8, u32)],
    unique: (bool, bool),
    p: usize,
    batch: usize,
) -> (Vec<(u32, u32)>, u64) {
    let mut job = Job::new("unique");
    let (l, r) = (
        job.from_vec("left", left.to_vec()),
        job.from_vec("right", right.to_vec()),
    );
    let out = unique_join(l, r, unique).collect();
    let summary = job
        .run(JobConfig::default().parallelism(p).batch_size(batch))
        .unwrap();
    let kept = summary
        .operators
        .iter()
        .filter(|o| o.name.starts_with("join#"))
        .map(|o| o.state_keys)
        .sum();
    (passing(out.take()), kept)
}

fn nested_loop(left: &[(u8, u32)], right: &[(u8, u32)]) -> Vec<(u32, u32)> {
    let mut pairs: Vec<(u32, u32)> = left
        .iter()
        .flat_map(|a| right.iter().map(move |b| (a, b)))
        .filter(|(a, b)| a.0 == b.0 && (a.1 + b.1) % 3 != 0)
        .map(|(a, b)| (a.1, b.1))
        .collect();
    pairs.sort();
    pairs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A side declared unique lets the join drop the other side's rows that met its row:
    /// the pairs are still the nested loop's, whichever side is unique and however the two
    /// inputs interleave.
    #[test]
    fn a_join_with_a_unique_side_equals_the_nested_loop(
        unique_left in unique_rows(0),
        unique_right in unique_rows(1000),
        many in any_rows(2000),
        sides in prop::sample::select(vec![(true, false), (false, true), (true, true)]),
        p in 1usize..=3,
        batch in prop::sample::select(vec![1usize, 4, 1024]),
    ) {
        let (left, right) = match sides {
            (true, false) => (unique_left, many),
            (false, true) => (many, unique_right),
            _ => (unique_left, unique_right),
        };
        let (got, _) = run_unique(&left, &right, sides, p, batch);
        prop_assert_eq!(got, nested_loop(&left, &right));
    }
}

/// [`unique_join`] of two inputs read from one reader in the order of `records` (`true`: a
/// left row), a record at a time at parallelism 1: the join meets them in that order.
fn run_unique_in_order(records: &[(bool, u8, u32)], unique: (bool, bool)) -> Vec<(u32, u32)> {
    let mut job = Job::new("unique-in-order");
    let both = job.from_vec("both", records.to_vec());
    let left = both.clone().filter(|r| r.0).map(|r| (r.1, r.2));
    let right = both.filter(|r| !r.0).map(|r| (r.1, r.2));
    let out = unique_join(left, right, unique).collect();
    job.run(JobConfig::default().parallelism(1).batch_size(1))
        .unwrap();
    passing(out.take())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The same in an order the test chooses: a unique side's row before, between and after
    /// the other side's rows of its key.
    #[test]
    fn a_join_with_a_unique_side_equals_the_nested_loop_in_any_order(
        (unique, many, order) in (unique_rows(0), any_rows(2000)).prop_flat_map(|(u, m)| {
            let n = u.len() + m.len();
            (Just(u), Just(m), Just((0..n).collect::<Vec<usize>>()).prop_shuffle())
        }),
        sides in prop::sample::select(vec![(true, false), (false, true), (true, true)]),
    ) {
        // With both declared unique, the other rows are made unique too (first of each key).
        let many: Vec<(u8, u32)> = if sides == (true, true) {
            let mut seen = HashSet::new();
            many.into_iter().filter(|r| seen.insert(r.0)).collect()
        } else {
            many
        };
        let (left, right) = match sides {
            (false, true) => (many, unique),
            _ => (unique, many),
        };
        let tagged: Vec<(bool, u8, u32)> = left
            .iter()
            .map(|&(k, id)| (true, k, id))
            .chain(right.iter().map(|&(k, id)| (false, k, id)))
            .collect();
        let records: Vec<(bool, u8, u32)> =
            order.iter().filter_map(|&i| tagged.get(i).copied()).collect();
        prop_assert_eq!(run_unique_in_order(&records, sides), nested_loop(&left, &right));
    }
}

#[test]
fn a_one_to_one_join_keeps_no_key_whose_two_rows_met() {
    // Every key has one row on each side: once both came, nothing of the key is kept.
    let left: Vec<(u8, u32)> = (0..32).map(|k| (k, k as u32)).collect();
    let right: Vec<(u8, u32)> = (0..32).rev().map(|k| (k, 1000 + k as u32)).collect();
    let (pairs, kept) = run_unique(&left, &right, (true, true), 2, 4);
    assert_eq!(pairs, nested_loop(&left, &right));
    assert_eq!(kept, 0, "no key kept");
    // Undeclared, every row stays.
    let (same, kept) = run_unique(&left, &right, (false, false), 2, 4);
    assert_eq!(same, pairs);
    assert_eq!(kept, 32);
}

/// Auctions `(t, key, id, expires)` — one per key — and bids `(t, key, id)` from one reader,
/// lagging up to 200 ms behind the time before them while the watermark allows 50 ms: the
/// expiring join told the auctions are unique, with both sides' late rows sent to its late
/// output. Its passing pairs, sorted, the ids of the late rows, and the late rows counted.
fn run_expiring_unique_with_late(
    records: &[(Timestamp, u8, u32, i64)],
    p: usize,
    batch: usize,
) -> (Vec<(u32, u32)>, HashSet<u32>, u64) {
    let mut job = Job::new("expiring-unique-late");
    let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(50));
    let (auctions, bids) = auctions_and_bids(&mut job, records.to_vec(), strategy);
    let tag = OutputTag::<Either<(Timestamp, u8, u32, i64), Rec>>::new("late");
    let joined = auctions
        .connect(bids)
        .key_by(|a| a.1, |b| b.1)
        .unique_keys(true, false)
        .late_output_of(&tag, LateFrom::Both)
        .inner_join_expiring(AuctionLifetime, |a, b| {
            (a.0 <= b.0 && b.0 .0 <= a.3, (a.2, b.2))
        });
    let late = joined.side_output(&tag).collect();
    let out = joined.collect();
    let summary = job
        .run(JobConfig::default().parallelism(p).batch_size(batch))
        .unwrap();
    let late: HashSet<u32> = late
        .take()
        .into_iter()
        .map(|r| match r {
            Either::Left(a) => a.2,
            Either::Right(b) => b.2,
        })
        .collect();
    (passing(out.take()), late, summary.events_late)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Late rows and a unique side together: a late auction is not taken as its key's row (its
    /// bids neither join it nor are dropped for it), a late bid joins nothing, and every other
    /// pair is the nested loop's over the rows that were on time — each row either in a pair's
    /// reach or in the late output, counted.
    #[test]
    fn expiring_join_with_a_unique_side_and_late_rows_equals_the_nested_loop_of_on_time_rows(
        steps in prop::collection::vec(
            (0i64..40, prop_oneof![2 => Just(0i64), 1 => 0i64..200], 0u8..12, any::<bool>(), 0i64..300),
            0..120,
        ),
        p in 1usize..=3,
        batch in prop::sample::select(vec![1usize, 7, 1024]),
    ) {
        let mut base = 0;
        let mut keys_with_an_auction = HashSet::new();
        // (time, key, id, expires): an auction, or a bid when `expires` is -1.
        let records: Vec<(Timestamp, u8, u32, i64)> = steps
            .into_iter()
            .enumerate()
            .filter_map(|(i, (step, lag, key, auction, life))| {
                base += step;
                let t = (base - lag).max(0);
                match auction && keys_with_an_auction.insert(key) {
                    true => Some((Timestamp(t), key, i as u32, t + life)),
                    false if auction => None,
                    false => Some((Timestamp(t), key, i as u32, -1)),
                }
            })
            .collect();
        let (got, late, counted) = run_expiring_unique_with_late(&records, p, batch);
        prop_assert_eq!(counted as usize, late.len());
        if p == 1 {
            // One reader in the records' order: a row within 50 ms of every row before it is
            // never behind the watermark (so the late set is not simply "too many").
            let mut latest = i64::MIN;
            for r in &records {
                if r.0 .0 >= latest.saturating_sub(50) {
                    prop_assert!(!late.contains(&r.2), "row {:?} is on time", r);
                }
                latest = latest.max(r.0 .0);
            }
        }
        let on_time = |r: &&(Timestamp, u8, u32, i64)| !late.contains(&r.2);
        let auctions: Vec<_> = records.iter().filter(on_time).filter(|r| r.3 >= 0).collect();
        let bids: Vec<_> = records.iter().filter(on_time).filter(|r| r.3 < 0).collect();
        let mut expected: Vec<(u32, u32)> = auctions
            .iter()
            .flat_map(|a| bids.iter().map(move |b| (a, b)))
            .filter(|(a, b)| a.1 == b.1 && a.0 <= b.0 && b.0 .0 <= a.3)
            .map(|(a, b)| (a.2, b.2))
            .collect();
        expected.sort();
        prop_assert_eq!(got, expected);
    }
}
