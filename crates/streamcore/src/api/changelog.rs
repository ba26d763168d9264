//! The changelog operators of a [`KeyedStream`]: retracting group aggregates, materialize,
//! top-n and deduplication (see [`crate::changelog`]).

use super::{KeyedStream, Stream};
use crate::changelog::materialize::equal_rows;
use crate::changelog::{
    Change, Changes, Deduplicate, GroupAggregate, GroupAggregateChanges, Keep, Materialize,
    RankedChanges, RankedRows, RetractAggregate, Rows, TopN, TopNFunction,
};
use crate::data::{Data, StateData, StateKey};
use crate::event_time::EventTime;

impl<T, K, KF> KeyedStream<T, K, KF>
where
    T: Data,
    K: StateKey,
    KF: Fn(&T) -> K + Clone + Send + 'static,
{
    /// SQL's `GROUP BY key` over an append-only stream: runs `agg` per key and emits each
    /// group's `(key, result)` as it changes — an updating stream (`+I` for a new group,
    /// `-U`/`+U` for a changed result; see [`GroupAggregate`]), after every row, or once per
    /// input batch after [`KeyedStream::mini_batch`].
    ///
    /// ```
    /// use streamcore::{Job, JobConfig};
    /// use streamcore::changelog::{apply_to, CountRows, MaxOf, RetractAggregate, SumOf};
    /// let mut job = Job::new("per-user");
    /// let table = job
    ///     .from_vec("tx", vec![('a', 10i64), ('b', 5), ('a', 7), ('a', 30)])
    ///     .key_by(|t| t.0)
    ///     // count(*), sum(amount), max(amount) FILTER (WHERE amount < 20)
    ///     .group_aggregate((
    ///         CountRows,
    ///         SumOf::new(|t: &(char, i64)| t.1),
    ///         MaxOf::new(|t: &(char, i64)| t.1).filter(|t| t.1 < 20),
    ///     ))
    ///     .collect();
    /// job.run(JobConfig::default().parallelism(2)).unwrap();
    /// assert_eq!(
    ///     apply_to(table.take()),
    ///     vec![('a', (3, Some(47), Some(10))), ('b', (1, Some(5), Some(5)))]
    /// );
    /// ```
    pub fn group_aggregate<A: RetractAggregate<T>>(self, agg: A) -> Stream<Change<(K, A::Out)>> {
        self.group_aggregate_with(agg, |k: &K, v| (k.clone(), v))
    }

    /// [`group_aggregate`](Self::group_aggregate) whose changes carry `finish(key, result)`:
    /// the record the consumer wants, made where the change is (no `(key, result)` pair
    /// cloned and mapped after it). SQL makes its rows so.
    ///
    /// ```
    /// use streamcore::{Job, JobConfig};
    /// use streamcore::changelog::{apply_to, CountRows};
    /// let mut job = Job::new("counts");
    /// let counts = job
    ///     .from_vec("clicks", vec!['a', 'b', 'a'])
    ///     .key_by(|c| *c)
    ///     .group_aggregate_with(CountRows, |k: &char, n| format!("{k}={n}"))
    ///     .collect();
    /// job.run(JobConfig::default().parallelism(1)).unwrap();
    /// assert_eq!(apply_to(counts.take()), vec!["a=2".to_string(), "b=1".to_string()]);
    /// ```
    pub fn group_aggregate_with<A, F, O>(self, agg: A, finish: F) -> Stream<Change<O>>
    where
        A: RetractAggregate<T>,
        F: Fn(&K, A::Out) -> O + Clone + Send + 'static,
        O: Data,
    {
        self.refuse_if_updating("group_aggregate", "group_aggregate_changes");
        let f = GroupAggregate::new(agg, finish, self.mini_batch, self.update_before);
        self.process_named("group_aggregate", f).updating()
    }

    /// The first `n` rows per key in the order of `order(row)` (rows with equal sort keys in
    /// arrival order; [`std::cmp::Reverse`] for descending), as the changes of that set: a row
    /// entering is `+I`, one pushed out `-D`. Only the first `n` rows per key are kept (the
    /// input is append-only: the others can never come back). See [`TopN`].
    pub fn top_n<S, F>(self, n: usize, order: F) -> Stream<Change<T>>
    where
        T: StateData + PartialEq,
        S: Ord + StateData,
        F: Fn(&T) -> S + Clone + Send + 'static,
    {
        self.refuse_if_updating("top_n", "top_n_changes");
        let top = TopNFunction::<_, _, _, Rows>::new(TopN::new(n, order, false));
        self.process_named("top_n", top).updating()
    }

    /// The first `n` rows per key with their rank (from 1): each rank whose row changes is
    /// updated (`-U`/`+U`), as SQL's `ROW_NUMBER()` when the row number is selected.
    pub fn top_n_ranked<S, F>(self, n: usize, order: F) -> Stream<Change<(u64, T)>>
    where
        T: StateData + PartialEq,
        S: Ord + StateData,
        F: Fn(&T) -> S + Clone + Send + 'static,
    {
        self.refuse_if_updating("top_n_ranked", "top_n_ranked_changes");
        let top = TopN::new(n, order, true).with_update_before(self.update_before);
        let top = TopNFunction::<_, _, _, RankedRows>::new(top);
        self.process_named("top_n", top).updating()
    }

    /// One row per key, in arrival order: the first ([`Keep::First`]: an append-only stream
    /// of inserts) or the last ([`Keep::Last`]: each new row replaces the key's, `-U`/`+U`).
    pub fn deduplicate(self, keep: Keep) -> Stream<Change<T>>
    where
        T: StateData + PartialEq,
    {
        self.refuse_if_updating("deduplicate", "materialize");
        let dedup = Deduplicate::new(keep, None).with_update_before(self.update_before);
        let updates = dedup.updates();
        let out = self.process_named("deduplicate", dedup);
        if updates {
            out.updating()
        } else {
            out
        }
    }

    /// The last row per key in arrival order, as [`deduplicate`](Self::deduplicate) with
    /// [`Keep::Last`], each key forgotten once the watermark passes the event time of its first
    /// row plus `after` (no row of it can come then): the results of windows that take late
    /// rows (allowed lateness), keyed by key and window, as a changelog whose state ends with
    /// the lateness. An updating stream.
    pub fn deduplicate_last_until(self, after: std::time::Duration) -> Stream<Change<T>>
    where
        T: StateData + PartialEq + EventTime,
    {
        self.refuse_if_updating("deduplicate_last_until", "materialize");
        let time: fn(&T) -> crate::Timestamp = |t| t.event_time();
        let after_ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
        let dedup = Deduplicate::new(Keep::Last, None).expiring(time, after_ms);
        self.process_named("deduplicate", dedup).updating()
    }

    /// One row per key in event-time order: the earliest ([`Keep::First`]) or the latest
    /// ([`Keep::Last`]; equal times: the later arrival) — SQL's `ROW_NUMBER() OVER (PARTITION
    /// BY key ORDER BY rowtime [DESC]) = 1`. An updating stream.
    pub fn deduplicate_by_time(self, keep: Keep) -> Stream<Change<T>>
    where
        T: StateData + PartialEq + EventTime,
    {
        self.refuse_if_updating("deduplicate_by_time", "materialize");
        let time: fn(&T) -> crate::Timestamp = |t| t.event_time();
        let dedup = Deduplicate::new(keep, Some(time)).with_update_before(self.update_before);
        self.process_named("deduplicate", dedup).updating()
    }
}

/// Counts each key's additions minus withdrawals; emits the row that many times when the
/// input ends ([`KeyedStream::final_rows`]).
struct FinalRows<T>(std::marker::PhantomData<fn() -> T>);

impl<T> Clone for FinalRows<T> {
    fn clone(&self) -> Self {
        FinalRows(std::marker::PhantomData)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(bound(
    serialize = "T: serde::Serialize",
    deserialize = "T: serde::de::DeserializeOwned"
))]
struct FinalCount<T> {
    row: Option<T>,
    count: i64,
}

impl<T> Default for FinalCount<T> {
    fn default() -> Self {
        FinalCount {
            row: None,
            count: 0,
        }
    }
}

impl<K: StateKey, T: Data + StateData> crate::state::KeyedProcessFunction<K, Change<T>>
    for FinalRows<T>
{
    type State = FinalCount<T>;
    type Out = T;

    fn process(
        &mut self,
        change: Change<T>,
        ctx: &mut crate::state::KeyedContext<'_, K, Self::State>,
        _out: &mut crate::Output<T>,
    ) {
        let d = if change.is_addition() { 1 } else { -1 };
        let state = ctx.state();
        state.count += d;
        if state.row.is_none() {
            state.row = Some(change.into_row());
        }
        ctx.register_event_time_timer(crate::Timestamp::MAX);
    }

    fn on_timer(
        &mut self,
        _time: crate::Timestamp,
        _domain: crate::state::TimeDomain,
        ctx: &mut crate::state::KeyedContext<'_, K, Self::State>,
        out: &mut crate::Output<T>,
    ) {
        let state = ctx.state();
        if let Some(row) = state.row.take() {
            for _ in 0..state.count.max(0) {
                out.emit(row.clone());
            }
        }
        ctx.clear_state();
    }
}

impl<T, K, KF> KeyedStream<Change<T>, K, KF>
where
    T: Data,
    K: StateKey,
    KF: Fn(&Change<T>) -> K + Clone + Send + 'static,
{
    /// SQL's `GROUP BY key` over a changelog: additions add to the group, withdrawals retract
    /// from it (min and max keep their values to fall back on); emits each group's `(key,
    /// result)` as it changes, and `-D` when a group's last row is withdrawn. The input must
    /// be a valid changelog — each withdrawal of a row added before, as Flink requires: the
    /// group keeps its aggregates, not its rows, so it cannot tell a stray withdrawal.
    pub fn group_aggregate_changes<A: RetractAggregate<T>>(
        self,
        agg: A,
    ) -> Stream<Change<(K, A::Out)>> {
        self.group_aggregate_changes_with(agg, |k: &K, v| (k.clone(), v))
    }

    /// [`group_aggregate_changes`](Self::group_aggregate_changes) whose changes carry
    /// `finish(key, result)` (see [`KeyedStream::group_aggregate_with`]).
    pub fn group_aggregate_changes_with<A, F, O>(self, agg: A, finish: F) -> Stream<Change<O>>
    where
        A: RetractAggregate<T>,
        F: Fn(&K, A::Out) -> O + Clone + Send + 'static,
        O: Data,
    {
        let f = GroupAggregate::new(agg, finish, self.mini_batch, self.update_before);
        let f = GroupAggregateChanges(f);
        self.process_named("group_aggregate", f).updating()
    }

    /// The current row per key of this changelog, as a normalized changelog: what an upsert
    /// sink needs (see [`Materialize`]).
    ///
    /// ```
    /// use streamcore::{Job, JobConfig};
    /// use streamcore::changelog::{apply_to, Change};
    /// let mut job = Job::new("upsert");
    /// let changes = vec![
    ///     Change::Insert(('k', 1)),
    ///     Change::Insert(('k', 2)), // an upsert: replaces 1
    ///     Change::Delete(('k', 1)), // withdraws the older row: nothing visible changes
    /// ];
    /// let current = job.from_vec("changes", changes).key_by(|c| c.row().0).materialize().collect();
    /// job.run(JobConfig::default().parallelism(1)).unwrap();
    /// let current = current.take();
    /// assert_eq!(
    ///     current,
    ///     vec![Change::Insert(('k', 1)), Change::UpdateBefore(('k', 1)), Change::UpdateAfter(('k', 2))]
    /// );
    /// assert_eq!(apply_to(current), vec![('k', 2)]);
    /// ```
    pub fn materialize(self) -> Stream<Change<T>>
    where
        T: StateData + PartialEq,
    {
        let f = Materialize::new(false, equal_rows as fn(&T, &T) -> bool);
        self.process_named("materialize", f).updating()
    }

    /// [`materialize`](Self::materialize) keyed otherwise than the changelog's own updates —
    /// by an upsert sink's primary key, say, when the changelog is keyed by a query's groups:
    /// an update may move a row from one key to another, and two of the changelog's keys may
    /// share one of this stream's for a while. Each key keeps the rows added to it and not
    /// withdrawn, its current row the last of them; a withdrawal removes its own row (a row
    /// another of the changelog's keys wrote since stays); an update-before that leaves a key
    /// empty deletes its row at once (`-D`), since its update-after may go to another key. As
    /// Flink's `SinkUpsertMaterializer`. The input must be a retract stream (with `-U`: not
    /// made with [`KeyedStream::without_update_before`]).
    ///
    /// ```
    /// use streamcore::{Job, JobConfig};
    /// use streamcore::changelog::{apply_to, Change};
    /// let mut job = Job::new("by-total");
    /// // (user, total), updated per user; the sink is keyed by the total.
    /// let changes = vec![
    ///     Change::Insert(('b', 5)),
    ///     Change::Insert(('a', 10)),
    ///     Change::UpdateBefore(('b', 5)),
    ///     Change::UpdateAfter(('b', 10)), // b's total meets a's
    ///     Change::UpdateBefore(('a', 10)),
    ///     Change::UpdateAfter(('a', 17)), // a moves on: b keeps key 10
    /// ];
    /// let by_total = job
    ///     .from_vec("totals", changes)
    ///     .key_by(|c| c.row().1)
    ///     .materialize_rekeyed()
    ///     .collect();
    /// job.run(JobConfig::default().parallelism(1)).unwrap();
    /// let mut table = apply_to(by_total.take());
    /// table.sort();
    /// assert_eq!(table, vec![('a', 17), ('b', 10)]);
    /// ```
    pub fn materialize_rekeyed(self) -> Stream<Change<T>>
    where
        T: StateData + PartialEq,
    {
        self.materialize_rekeyed_by(equal_rows::<T>)
    }

    /// [`materialize_rekeyed`](Self::materialize_rekeyed) whose withdrawals remove the kept
    /// row they are the `same` as — of the same identity, the changelog's own key by which its
    /// updates replace rows (compared in place: nothing made per row) — not only an equal
    /// row: a withdrawal whose other columns were computed anew (a `NOW()` or `RAND()` in a
    /// projection after the updating operator) still removes the row written before. The
    /// input must be a retract stream (with `-U`: not made with
    /// [`KeyedStream::without_update_before`]).
    pub fn materialize_rekeyed_by<S>(self, same: S) -> Stream<Change<T>>
    where
        T: StateData + PartialEq,
        S: Fn(&T, &T) -> bool + Clone + Send + 'static,
    {
        self.process_named("materialize", Materialize::new(true, same))
            .updating()
    }

    /// The final rows of this changelog over a bounded input, emitted once the input ends (its
    /// watermark reaches the end): each row as often as it was added minus withdrawn. An
    /// append-only stream, for a sink that cannot take updates — SQL's batch mode. Keyed by
    /// the whole row (`key_by(|c| c.row().clone())`); on an unbounded input nothing is emitted.
    ///
    /// ```
    /// use streamcore::{Job, JobConfig};
    /// use streamcore::changelog::Change;
    /// let mut job = Job::new("final");
    /// let changes = vec![Change::Insert(1), Change::Insert(2), Change::Delete(1), Change::Insert(3)];
    /// let rows = job.from_vec("changes", changes).key_by(|c| *c.row()).final_rows().collect();
    /// job.run(JobConfig::default().parallelism(1)).unwrap();
    /// let mut rows = rows.take();
    /// rows.sort();
    /// assert_eq!(rows, vec![2, 3]);
    /// ```
    pub fn final_rows(self) -> Stream<T>
    where
        T: StateData,
    {
        self.process_named("final_rows", FinalRows(std::marker::PhantomData))
            .append_only()
    }

    /// [`KeyedStream::top_n`] over a changelog: every row is kept, so that a withdrawn row in
    /// the first `n` makes room for the next.
    pub fn top_n_changes<S, F>(self, n: usize, order: F) -> Stream<Change<T>>
    where
        T: StateData + PartialEq,
        S: Ord + StateData,
        F: Fn(&T) -> S + Clone + Send + 'static,
    {
        let top = TopNFunction::<_, _, _, Changes>::new(TopN::new(n, order, false));
        self.process_named("top_n", top).updating()
    }

    /// [`KeyedStream::top_n_ranked`] over a changelog.
    pub fn top_n_ranked_changes<S, F>(self, n: usize, order: F) -> Stream<Change<(u64, T)>>
    where
        T: StateData + PartialEq,
        S: Ord + StateData,
        F: Fn(&T) -> S + Clone + Send + 'static,
    {
        let top = TopN::new(n, order, true).with_update_before(self.update_before);
        let top = TopNFunction::<_, _, _, RankedChanges>::new(top);
        self.process_named("top_n", top).updating()
    }
}
