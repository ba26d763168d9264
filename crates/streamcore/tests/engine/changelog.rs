//! Changelog operators against a reference model: random changelogs (rows added and withdrawn,
//! older rows withdrawn after newer ones) through retracting aggregates, materialize, top-n
//! and deduplication at parallelism 1 to 4; the table the output changelog leaves must equal
//! the model's, and the output must never withdraw a row it did not add. Also: the refusal of
//! an updating stream by an append-only sink, and changelog state through a savepoint. The
//! same operators without `-U` ([`streamcore::KeyedStream::without_update_before`]) as upsert
//! streams, folded by key; a changelog materialized by a key other than its own.

use proptest::prelude::*;
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::time::Duration;
use streamcore::changelog::{
    apply_to, AvgOf, Change, CountDistinctOf, CountRows, Keep, MaxOf, MinOf, RetractAggregate,
    SumOf, DISTINCT_SLOTS,
};
use streamcore::checkpoint::{CheckpointConfig, RestoreFrom};
use streamcore::sink::{CollectSink, Sink, SinkWriter};
use streamcore::source::Generator;
use streamcore::{Data, Job, JobConfig, Result, Stream, StreamError, TaskInfo};

/// `(key, value)`.
type Row = (u8, i64);

/// A valid changelog: each withdrawal withdraws a row added before and not yet withdrawn
/// (not always the newest of its key: that is the disorder an upsert sink meets).
fn changelog() -> impl Strategy<Value = Vec<Change<Row>>> {
    prop::collection::vec(
        (
            0u8..4,
            -20i64..20,
            any::<bool>(),
            any::<prop::sample::Index>(),
        ),
        0..120,
    )
    .prop_map(|ops| {
        let mut live: Vec<Row> = Vec::new();
        let mut out = Vec::new();
        for (k, v, withdraw, pick) in ops {
            let of_key: Vec<usize> = (0..live.len()).filter(|&i| live[i].0 == k).collect();
            if withdraw && !of_key.is_empty() {
                let row = live.remove(of_key[pick.index(of_key.len())]);
                out.push(Change::Delete(row));
            } else {
                live.push((k, v));
                out.push(Change::Insert((k, v)));
            }
        }
        out
    })
}

/// A valid changelog with updates too: a row added (`+I`), withdrawn (`-D`), or replaced by
/// a row of the same key with another value (`-U` then `+U`).
fn changelog_with_updates() -> impl Strategy<Value = Vec<Change<Row>>> {
    prop::collection::vec(
        (0u8..4, -6i64..6, 0u8..3, any::<prop::sample::Index>()),
        0..120,
    )
    .prop_map(|ops| {
        let mut live: Vec<Row> = Vec::new();
        let mut out = Vec::new();
        for (k, v, op, pick) in ops {
            let of_key: Vec<usize> = (0..live.len()).filter(|&i| live[i].0 == k).collect();
            match op {
                1 if !of_key.is_empty() => {
                    let row = live.remove(of_key[pick.index(of_key.len())]);
                    out.push(Change::Delete(row));
                }
                2 if !of_key.is_empty() => {
                    let at = of_key[pick.index(of_key.len())];
                    out.push(Change::UpdateBefore(live[at]));
                    live[at] = (k, v);
                    out.push(Change::UpdateAfter((k, v)));
                }
                _ => {
                    live.push((k, v));
                    out.push(Change::Insert((k, v)));
                }
            }
        }
        out
    })
}

/// A source of `records` whose reader `key % p` reads every record of that key, in order:
/// each key's changes stay in order, keys interleave freely across the `p` readers.
fn keyed_source<T: Data>(job: &mut Job, records: Vec<T>, key: fn(&T) -> u8, p: usize) -> Stream<T> {
    let mut lanes: Vec<Vec<T>> = vec![Vec::new(); p];
    for r in records {
        lanes[key(&r) as usize % p].push(r);
    }
    let longest = lanes.iter().map(Vec::len).max().unwrap_or(0);
    let mut slots: Vec<Option<T>> = Vec::with_capacity(longest * p);
    for i in 0..longest {
        for lane in &lanes {
            slots.push(lane.get(i).cloned());
        }
    }
    job.from_vec("changes", slots).flat_map(|slot| slot)
}

/// Applies `changes` in order, failing on a withdrawal of a row not in the table.
fn apply_strictly<T: Ord + Clone + std::fmt::Debug>(
    changes: &[Change<T>],
) -> std::result::Result<Vec<T>, String> {
    let mut table: BTreeMap<T, u64> = BTreeMap::new();
    for c in changes {
        if c.is_addition() {
            *table.entry(c.row().clone()).or_insert(0) += 1;
        } else {
            match table.get_mut(c.row()) {
                Some(n) => {
                    *n -= 1;
                    if *n == 0 {
                        table.remove(c.row());
                    }
                }
                None => return Err(format!("withdrew {:?}, which is not in the table", c.row())),
            }
        }
    }
    Ok(table
        .into_iter()
        .flat_map(|(r, n)| std::iter::repeat_n(r, n as usize))
        .collect())
}

/// The rows left per key, in the order they were added.
fn live_rows(changes: &[Change<Row>]) -> BTreeMap<u8, Vec<i64>> {
    let mut live: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
    for c in changes {
        let (k, v) = *c.row();
        let rows = live.entry(k).or_default();
        if c.is_addition() {
            rows.push(v);
        } else if let Some(at) = rows.iter().rposition(|x| *x == v) {
            rows.remove(at);
        }
    }
    live.retain(|_, rows| !rows.is_empty());
    live
}

type Stats = (
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
    [i64; DISTINCT_SLOTS],
);

fn stats() -> impl RetractAggregate<Row, Out = Stats> {
    (
        CountRows,
        SumOf::new(|r: &Row| r.1),
        MinOf::new(|r: &Row| r.1),
        MaxOf::new(|r: &Row| r.1),
        AvgOf::new(|r: &Row| r.1),
        CountDistinctOf::new(|r: &Row| r.1),
        CountRows.filter(|r: &Row| r.1 % 2 == 0),
        // distinct values overall (slot 0) and among even ones (slot 1), in one map
        CountDistinctOf::new(|r: &Row| r.1).in_slots(|r: &Row| 1 | (u8::from(r.1 % 2 == 0) << 1)),
    )
}

fn model_stats(values: &[i64]) -> Stats {
    let n = values.len() as i64;
    let sum: i64 = values.iter().sum();
    let mut distinct = values.to_vec();
    distinct.sort();
    distinct.dedup();
    let mut slots = [0; DISTINCT_SLOTS];
    slots[0] = distinct.len() as i64;
    slots[1] = distinct.iter().filter(|v| *v % 2 == 0).count() as i64;
    (
        n,
        Some(sum),
        values.iter().min().copied(),
        values.iter().max().copied(),
        Some(sum / n),
        distinct.len() as i64,
        values.iter().filter(|v| *v % 2 == 0).count() as i64,
        slots,
    )
}

fn run_collect<T: Data>(job: Job, p: usize, out: streamcore::sink::Collected<T>) -> Vec<T> {
    job.run(JobConfig::default().parallelism(p).batch_size(7))
        .unwrap();
    out.take()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn retracting_aggregates_equal_the_model(
        changes in changelog(),
        p in 1usize..=4,
        mini_batch in any::<bool>(),
    ) {
        let mut job = Job::new("agg");
        let (sink, out) = CollectSink::new();
        let mut keyed = keyed_source(&mut job, changes.clone(), |c| c.row().0, p)
            .key_by(|c| c.row().0);
        if mini_batch {
            keyed = keyed.mini_batch();
        }
        keyed
            .group_aggregate_changes(stats())
            .sink(sink);
        let output = run_collect(job, p, out);
        let table = apply_strictly(&output).map_err(TestCaseError::fail)?;
        let model: Vec<(u8, Stats)> =
            live_rows(&changes).into_iter().map(|(k, vs)| (k, model_stats(&vs))).collect();
        prop_assert_eq!(table, model);
    }

    #[test]
    fn materialize_keeps_the_newest_live_row_per_key(changes in changelog(), p in 1usize..=4) {
        let mut job = Job::new("materialize");
        let (sink, out) = CollectSink::new();
        keyed_source(&mut job, changes.clone(), |c| c.row().0, p)
            .key_by(|c| c.row().0)
            .materialize()
            .sink(sink);
        let output = run_collect(job, p, out);
        let table = apply_strictly(&output).map_err(TestCaseError::fail)?;
        let model: Vec<Row> = live_rows(&changes)
            .into_iter()
            .map(|(k, vs)| (k, *vs.last().unwrap()))
            .collect();
        prop_assert_eq!(table, model);
    }

    #[test]
    fn top_n_of_a_changelog_equals_the_model(changes in changelog(), p in 1usize..=4) {
        let mut job = Job::new("top3");
        let (sink, out) = CollectSink::new();
        keyed_source(&mut job, changes.clone(), |c| c.row().0, p)
            .key_by(|c| c.row().0)
            .top_n_changes(3, |r: &Row| Reverse(r.1))
            .sink(sink);
        let output = run_collect(job, p, out);
        let table = apply_strictly(&output).map_err(TestCaseError::fail)?;
        let mut model: Vec<Row> = Vec::new();
        for (k, mut vs) in live_rows(&changes) {
            vs.sort_by_key(|v| Reverse(*v));
            model.extend(vs.into_iter().take(3).map(|v| (k, v)));
        }
        model.sort();
        prop_assert_eq!(table, model);
    }

    #[test]
    fn ranked_top_n_of_a_changelog_equals_the_model(changes in changelog(), p in 1usize..=4) {
        let mut job = Job::new("ranked-changes");
        let (sink, out) = CollectSink::new();
        keyed_source(&mut job, changes.clone(), |c| c.row().0, p)
            .key_by(|c| c.row().0)
            .top_n_ranked_changes(3, |r: &Row| r.1)
            .sink(sink);
        let output = run_collect(job, p, out);
        let table = apply_strictly(&output).map_err(TestCaseError::fail)?;
        let mut model: Vec<(u64, Row)> = Vec::new();
        for (k, mut vs) in live_rows(&changes) {
            vs.sort();
            model.extend(vs.into_iter().take(3).enumerate().map(|(i, v)| (i as u64 + 1, (k, v))));
        }
        model.sort();
        prop_assert_eq!(table, model);
    }

    #[test]
    fn ranked_top_n_gives_each_rank_its_row(rows in prop::collection::vec((0u8..4, -20i64..20), 0..80), p in 1usize..=4) {
        let mut job = Job::new("ranked");
        let (sink, out) = CollectSink::new();
        keyed_source(&mut job, rows.clone(), |r| r.0, p)
            .key_by(|r| r.0)
            .top_n_ranked(2, |r: &Row| r.1)
            .sink(sink);
        let output = run_collect(job, p, out);
        let table = apply_strictly(&output).map_err(TestCaseError::fail)?;
        let mut per_key: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
        for (k, v) in &rows {
            per_key.entry(*k).or_default().push(*v);
        }
        let mut model: Vec<(u64, Row)> = Vec::new();
        for (k, mut vs) in per_key {
            vs.sort();
            model.extend(vs.into_iter().take(2).enumerate().map(|(i, v)| (i as u64 + 1, (k, v))));
        }
        model.sort();
        prop_assert_eq!(table, model);
    }

    #[test]
    fn aggregates_and_dedup_of_an_append_only_stream(rows in prop::collection::vec((0u8..4, -20i64..20), 0..80), p in 1usize..=4) {
        let mut job = Job::new("append");
        let (agg_sink, agg_out) = CollectSink::new();
        let (first_sink, first_out) = CollectSink::new();
        let (last_sink, last_out) = CollectSink::new();
        let rows_in = keyed_source(&mut job, rows.clone(), |r| r.0, p);
        rows_in.clone().key_by(|r| r.0).group_aggregate(stats()).sink(agg_sink);
        rows_in.clone().key_by(|r| r.0).deduplicate(Keep::First).sink(first_sink);
        rows_in.key_by(|r| r.0).deduplicate(Keep::Last).sink(last_sink);
        job.run(JobConfig::default().parallelism(p).batch_size(7)).unwrap();
        let mut per_key: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
        for (k, v) in &rows {
            per_key.entry(*k).or_default().push(*v);
        }
        let agg = apply_strictly(&agg_out.take()).map_err(TestCaseError::fail)?;
        let model: Vec<(u8, Stats)> = per_key.iter().map(|(k, vs)| (*k, model_stats(vs))).collect();
        prop_assert_eq!(agg, model);
        let first = first_out.take();
        prop_assert!(first.iter().all(|c| matches!(c, Change::Insert(_))), "first-row dedup only inserts");
        let first = apply_strictly(&first).map_err(TestCaseError::fail)?;
        let model: Vec<Row> = per_key.iter().map(|(k, vs)| (*k, vs[0])).collect();
        prop_assert_eq!(first, model);
        let last = apply_strictly(&last_out.take()).map_err(TestCaseError::fail)?;
        let model: Vec<Row> = per_key.iter().map(|(k, vs)| (*k, *vs.last().unwrap())).collect();
        prop_assert_eq!(last, model);
    }
}

/// Applies an upsert stream, in order: `+I` and `+U` set their key's row, `-D` removes it
/// (failing unless it is the key's row); a `-U` fails (there must be none).
fn apply_upserts<T, K>(
    changes: &[Change<T>],
    key: impl Fn(&T) -> K,
) -> std::result::Result<Vec<T>, String>
where
    T: Clone + PartialEq + std::fmt::Debug,
    K: Ord,
{
    let mut table: BTreeMap<K, T> = BTreeMap::new();
    for c in changes {
        match c {
            Change::Insert(r) | Change::UpdateAfter(r) => {
                table.insert(key(r), r.clone());
            }
            Change::Delete(r) => match table.remove(&key(r)) {
                Some(kept) if kept == *r => {}
                kept => return Err(format!("-D {r:?}, but its key's row is {kept:?}")),
            },
            Change::UpdateBefore(r) => return Err(format!("a -U ({r:?}) in an upsert stream")),
        }
    }
    Ok(table.into_values().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Without `-U`, each updating operator's output is an upsert stream by its key that
    /// leaves the model's table (and has no `-U`).
    #[test]
    fn updates_without_update_before_upsert_the_models_table(
        changes in changelog(),
        p in 1usize..=4,
        mini_batch in any::<bool>(),
    ) {
        let mut job = Job::new("upserts");
        let (agg_sink, agg_out) = CollectSink::new();
        let (ranked_sink, ranked_out) = CollectSink::new();
        let (append_sink, append_out) = CollectSink::new();
        let (last_sink, last_out) = CollectSink::new();
        let input = keyed_source(&mut job, changes.clone(), |c| c.row().0, p);
        let mut keyed = input.clone().key_by(|c| c.row().0).without_update_before();
        if mini_batch {
            keyed = keyed.mini_batch();
        }
        keyed.group_aggregate_changes(stats()).sink(agg_sink);
        input
            .clone()
            .key_by(|c| c.row().0)
            .without_update_before()
            .top_n_ranked_changes(3, |r: &Row| r.1)
            .sink(ranked_sink);
        // The rows added, as an append-only stream.
        let added = input.filter(|c| c.is_addition()).map(|c| *c.row());
        added
            .clone()
            .key_by(|r| r.0)
            .without_update_before()
            .group_aggregate(stats())
            .sink(append_sink);
        added.key_by(|r| r.0).without_update_before().deduplicate(Keep::Last).sink(last_sink);
        job.run(JobConfig::default().parallelism(p).batch_size(7)).unwrap();

        let agg = apply_upserts(&agg_out.take(), |r| r.0).map_err(TestCaseError::fail)?;
        let model: Vec<(u8, Stats)> =
            live_rows(&changes).into_iter().map(|(k, vs)| (k, model_stats(&vs))).collect();
        prop_assert_eq!(agg, model);

        let ranked = apply_upserts(&ranked_out.take(), |r| (r.1.0, r.0))
            .map_err(TestCaseError::fail)?;
        let mut model: Vec<(u64, Row)> = Vec::new();
        for (k, mut vs) in live_rows(&changes) {
            vs.sort();
            model.extend(vs.into_iter().take(3).enumerate().map(|(i, v)| (i as u64 + 1, (k, v))));
        }
        prop_assert_eq!(ranked, model);

        let mut per_key: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
        for c in changes.iter().filter(|c| c.is_addition()) {
            per_key.entry(c.row().0).or_default().push(c.row().1);
        }
        let agg = apply_upserts(&append_out.take(), |r| r.0).map_err(TestCaseError::fail)?;
        let model: Vec<(u8, Stats)> = per_key.iter().map(|(k, vs)| (*k, model_stats(vs))).collect();
        prop_assert_eq!(agg, model);
        let last = apply_upserts(&last_out.take(), |r| r.0).map_err(TestCaseError::fail)?;
        let model: Vec<Row> = per_key.iter().map(|(k, vs)| (*k, *vs.last().unwrap())).collect();
        prop_assert_eq!(last, model);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A changelog keyed by `k`, materialized by its value `v` (as an upsert sink keyed
    /// otherwise than the updates): the output never holds two rows of one value, and ends
    /// with one row per value still live — at parallelism 1 the last added of them.
    #[test]
    fn a_changelog_materialized_by_another_key_keeps_one_live_row_per_key(
        changes in changelog_with_updates(),
        p in 1usize..=4,
    ) {
        let mut job = Job::new("rekeyed");
        let (sink, out) = CollectSink::new();
        keyed_source(&mut job, changes.clone(), |c| c.row().0, p)
            .key_by(|c| c.row().1)
            .materialize_rekeyed()
            .sink(sink);
        let output = run_collect(job, p, out);
        // Folded in order, per value: never two rows.
        let mut rows_of: BTreeMap<i64, Vec<Row>> = BTreeMap::new();
        for c in &output {
            let rows = rows_of.entry(c.row().1).or_default();
            if c.is_addition() {
                rows.push(*c.row());
                prop_assert!(rows.len() <= 1, "two rows of {}: {:?}", c.row().1, output);
            } else {
                let at = rows.iter().position(|r| r == c.row());
                prop_assert!(at.is_some(), "withdrew {:?}, not in: {:?}", c.row(), output);
                rows.remove(at.unwrap());
            }
        }
        // The rows still live, per value, in the order they were added (one lane at p = 1).
        let mut live_of: BTreeMap<i64, Vec<Row>> = BTreeMap::new();
        for c in &changes {
            let rows = live_of.entry(c.row().1).or_default();
            if c.is_addition() {
                rows.push(*c.row());
            } else if let Some(at) = rows.iter().rposition(|r| r == c.row()) {
                rows.remove(at);
            }
        }
        live_of.retain(|_, rows| !rows.is_empty());
        rows_of.retain(|_, rows| !rows.is_empty());
        prop_assert_eq!(rows_of.keys().collect::<Vec<_>>(), live_of.keys().collect::<Vec<_>>());
        for (v, rows) in &rows_of {
            let live = &live_of[v];
            prop_assert!(live.contains(&rows[0]), "{:?} is not live: {:?}", rows[0], live);
            if p == 1 {
                prop_assert_eq!(&rows[0], live.last().unwrap());
            }
        }
    }
}

/// A sink that takes rows only (the default of [`Sink::accepts_updates`]).
struct RowsOnly;
struct NoWriter;
impl<T: Data> Sink<T> for RowsOnly {
    type Writer = NoWriter;
    fn create_writer(&mut self, _: &TaskInfo) -> Result<NoWriter> {
        Ok(NoWriter)
    }
}
impl<T: Data> SinkWriter<T> for NoWriter {
    fn write_batch(&mut self, _: Vec<T>) -> Result<()> {
        Ok(())
    }
}

#[test]
fn an_append_only_sink_refuses_an_updating_stream_naming_where_it_starts() {
    let mut job = Job::new("refused");
    job.from_vec("tx", vec![(1u8, 5i64)])
        .key_by(|r| r.0)
        .group_aggregate(CountRows)
        .name("count per user")
        .map(|c| c.into_row()) // a projection of a changelog is still a changelog
        .sink_named("rows", RowsOnly);
    match job.run(JobConfig::default()) {
        Err(StreamError::Config(m)) => assert_eq!(
            m,
            "sink `rows#5` takes append-only streams, but its input is updating: `count per user` \
             emits changes (inserts, updates, deletes) of a result table. Write it to a sink \
             that takes updates (a changelog or upsert sink), or keep only what cannot change"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Append-only operators feeding it are fine, side outputs of updating operators too.
    let mut job = Job::new("fine");
    job.from_vec("tx", vec![(1u8, 5i64)])
        .key_by(|r| r.0)
        .deduplicate(Keep::First)
        .sink(RowsOnly);
    job.run(JobConfig::default()).unwrap();
}

#[test]
fn group_state_survives_a_savepoint() {
    const N: u64 = 60_000;
    let dir = tempfile::tempdir().unwrap();
    let build = |rate: Option<f64>| {
        let mut job = Job::new("sums");
        let mut source = Generator::new(|i| ((i % 5) as u8, i as i64)).bounded(N);
        if let Some(r) = rate {
            source = source.rate(r);
        }
        let (sink, out) = CollectSink::new();
        job.source("numbers", source)
            .key_by(|r: &Row| r.0)
            .group_aggregate((CountRows, MaxOf::new(|r: &Row| r.1)))
            .uid("stats")
            .sink(sink);
        (job, out)
    };
    let config = |restore: Option<RestoreFrom>| {
        let mut c = CheckpointConfig::new(dir.path()).interval(Duration::from_millis(20));
        c.restore = restore;
        JobConfig::default().parallelism(2).checkpoints(c)
    };
    let (job, first) = build(Some(100_000.0));
    let handle = job.start(config(None)).unwrap();
    while first.len() < 500 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let savepoint = handle.stop_with_savepoint().unwrap();
    handle.join().unwrap();
    let (job, second) = build(None);
    job.run(config(Some(RestoreFrom::Path(savepoint)))).unwrap();
    // The changelog of both runs, applied in order, is the final table: the second run went
    // on from the first's groups (its first change per key is an update, not an insert).
    let mut all = first.take();
    let second = second.take();
    assert!(second.iter().all(|c| !matches!(c, Change::Insert(_))));
    all.extend(second);
    let table = apply_to(all);
    let want: Vec<(u8, (i64, Option<i64>))> = (0..5u8)
        .map(|k| {
            let count = (N / 5) as i64;
            (k, (count, Some((N - 5 + k as u64) as i64)))
        })
        .collect();
    assert_eq!(table, want);
}

#[test]
fn materialize_keeps_an_update_an_update() {
    let mut job = Job::new("upsert");
    let (sink, out) = CollectSink::new();
    let changes = vec![
        Change::Insert((1u8, 10i64)),
        Change::UpdateBefore((1, 10)),
        Change::UpdateAfter((1, 11)),
        Change::Insert((2, 5)),
        Change::Delete((2, 5)),
    ];
    job.from_vec("changes", changes)
        .key_by(|c| c.row().0)
        .materialize()
        .sink(sink);
    job.run(JobConfig::default().parallelism(1)).unwrap();
    assert_eq!(
        out.take(),
        vec![
            Change::Insert((1, 10)),
            Change::UpdateBefore((1, 10)),
            Change::UpdateAfter((1, 11)),
            Change::Insert((2, 5)),
            Change::Delete((2, 5)),
        ]
    );
}

/// Materialized by another key with an identity (the changelog's own key, column 0): a
/// withdrawal whose third column was computed anew (a time, say) still removes the row
/// written before; compared whole, it would not, and the old row would stay.
#[test]
fn a_withdrawal_removes_the_row_of_its_identity_computed_anew_or_not() {
    let changes = vec![
        Change::Insert(('a', 1i64, 100i64)),
        Change::UpdateBefore(('a', 1, 999)),
        Change::UpdateAfter(('a', 2, 999)),
    ];
    for (by_identity, want) in [
        (true, vec![('a', 2, 999)]),
        (false, vec![('a', 1, 100), ('a', 2, 999)]),
    ] {
        let mut job = Job::new("identity");
        let keyed = job
            .from_vec("changes", changes.clone())
            .key_by(|c| c.row().1);
        let out = match by_identity {
            true => keyed
                .materialize_rekeyed_by(|a: &(char, i64, i64), b: &(char, i64, i64)| a.0 == b.0),
            false => keyed.materialize_rekeyed(),
        }
        .collect();
        job.run(JobConfig::default().parallelism(1)).unwrap();
        let mut table = apply_strictly(&out.take()).unwrap();
        table.sort();
        assert_eq!(table, want, "by identity: {by_identity}");
    }
}

#[test]
fn top_n_ranks_ties_in_arrival_order() {
    // (key, sort value, arrival): equal sort values rank in the order they arrived.
    let rows = vec![(0u8, 5i64, 'a'), (0, 5, 'b'), (0, 3, 'c'), (0, 5, 'd')];
    let mut job = Job::new("ties");
    let (sink, out) = CollectSink::new();
    job.from_vec("rows", rows)
        .key_by(|r| r.0)
        .top_n_ranked(3, |r: &(u8, i64, char)| r.1)
        .sink(sink);
    job.run(JobConfig::default().parallelism(1)).unwrap();
    let table = apply_strictly(&out.take()).unwrap();
    assert_eq!(
        table,
        vec![(1, (0, 3, 'c')), (2, (0, 5, 'a')), (3, (0, 5, 'b'))]
    );
}

#[test]
fn append_only_operators_refuse_a_changelog() {
    let mut job = Job::new("refused");
    job.from_vec("tx", vec![(1u8, 5i64)])
        .key_by(|r| r.0)
        .group_aggregate(CountRows)
        .name("counts")
        .key_by(|c| c.row().0)
        .group_aggregate(CountRows)
        .collect();
    match job.run(JobConfig::default()) {
        Err(StreamError::Config(m)) => assert_eq!(
            m,
            "`group_aggregate` takes an append-only stream, but its input is updating (`counts` emits changes): use `group_aggregate_changes`"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// With mini-batch a group's changes within one input batch fold into one change: with
/// batches of one row (or without mini-batch) every row updates the group; with one batch,
/// each group emits only its final row — and a group added and withdrawn within the batch
/// emits nothing.
#[test]
fn changes_of_a_group_within_a_batch_fold_into_one() {
    let input = vec![
        Change::Insert((1u8, 10i64)),
        Change::Insert((1, 20)),
        Change::Insert((2, 5)),
        Change::Insert((1, 30)),
        Change::Delete((2, 5)),
    ];
    let run = |batch: usize, mini_batch: bool| {
        let mut job = Job::new("fold");
        let mut keyed = job
            .from_vec("changes", input.clone())
            .key_by(|c: &Change<Row>| c.row().0);
        if mini_batch {
            keyed = keyed.mini_batch();
        }
        let out = keyed
            .group_aggregate_changes(SumOf::new(|r: &Row| r.1))
            .collect();
        job.run(JobConfig::default().parallelism(1).batch_size(batch))
            .unwrap();
        out.take()
    };
    let per_row = vec![
        Change::Insert((1, Some(10))),
        Change::UpdateBefore((1, Some(10))),
        Change::UpdateAfter((1, Some(30))),
        Change::Insert((2, Some(5))),
        Change::UpdateBefore((1, Some(30))),
        Change::UpdateAfter((1, Some(60))),
        Change::Delete((2, Some(5))),
    ];
    assert_eq!(run(1, true), per_row);
    assert_eq!(run(1024, false), per_row);
    assert_eq!(run(1024, true), vec![Change::Insert((1, Some(60)))]);
}

/// A keyed reading with its event time.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Tick {
    key: char,
    value: i64,
    time: streamcore::Timestamp,
}

impl streamcore::EventTime for Tick {
    fn event_time(&self) -> streamcore::Timestamp {
        self.time
    }
}

/// `deduplicate_last_until`: the last row per key as `-U`/`+U`, and a key forgotten once the
/// watermark passes its first row's time plus the expiry — a row of it after that is a new
/// `+I`, not an update of the forgotten one.
#[test]
fn an_expiring_last_row_dedup_forgets_a_key_after_the_watermark_passes() {
    let tick = |key, value, ms| Tick {
        key,
        value,
        time: streamcore::Timestamp(ms),
    };
    let ticks = vec![
        tick('a', 1, 1_000),
        tick('a', 2, 1_000),
        tick('b', 3, 20_000), // the watermark passes 1,000 + 5,000: `a` is forgotten
        tick('a', 4, 21_000),
        tick('b', 5, 22_000), // `b` is not: an update
    ];
    let mut job = Job::new("expiring");
    let (sink, out) = CollectSink::new();
    job.from_vec("ticks", ticks)
        .with_watermarks(streamcore::WatermarkStrategy::monotonous())
        .key_by(|t: &Tick| t.key)
        .deduplicate_last_until(Duration::from_secs(5))
        .sink(sink);
    job.run(
        JobConfig::default()
            .parallelism(1)
            .batch_size(1)
            .watermark_interval(Duration::ZERO),
    )
    .unwrap();
    let got: Vec<String> = out
        .take()
        .iter()
        .map(|c| format!("{} {}{}", c.kind().short(), c.row().key, c.row().value))
        .collect();
    assert_eq!(
        got,
        ["+I a1", "-U a1", "+U a2", "+I b3", "+I a4", "-U b3", "+U b5"]
    );
}
