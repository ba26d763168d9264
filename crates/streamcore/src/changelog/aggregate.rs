//! Retracting aggregates per key: [`RetractAggregate`] (what to keep and how to take a row
//! back out), the built-in ones, and [`GroupAggregate`], the keyed process function that runs
//! one over a stream and emits each group's row as it changes.

use super::Change;
use crate::data::{Data, Key, StateData};
use crate::operator::Output;
use crate::state::{KeyedContext, KeyedProcessFunction};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::ops::{Add, Sub};

/// An aggregate that can take rows back out: SQL's aggregates over an updating input.
///
/// `add` and `retract` must be inverse: after adding and retracting the same rows, `result`
/// is what it was. Min and max keep the multiset of values for it; sums and counts a number.
/// Combine several with a tuple (`(CountRows, SumOf::new(..))` is itself an aggregate) and
/// restrict one to some rows with [`RetractAggregate::filter`] (SQL's `FILTER (WHERE …)`).
pub trait RetractAggregate<T>: Clone + Send + 'static {
    /// What is kept per group; a new group starts from `Default`.
    type Acc: Default + StateData;
    /// The result.
    type Out: Data + PartialEq + StateData;
    /// Adds a row.
    fn add(&self, acc: &mut Self::Acc, row: &T);
    /// Takes a row added earlier back out.
    fn retract(&self, acc: &mut Self::Acc, row: &T);
    /// Adds a row to a group that will never see a withdrawal (an append-only input): an
    /// aggregate may keep less then (min and max keep only the extreme, not every value).
    /// The default is [`RetractAggregate::add`].
    #[inline]
    fn add_final(&self, acc: &mut Self::Acc, row: &T) {
        self.add(acc, row)
    }
    /// [`RetractAggregate::add_final`], telling whether the result may have changed: `false`
    /// only when it certainly did not (a row below a group's maximum), so that the group's
    /// result is not made and compared with the last one for nothing. The default: `true`.
    #[inline]
    fn add_final_changed(&self, acc: &mut Self::Acc, row: &T) -> bool {
        self.add_final(acc, row);
        true
    }
    /// The result now.
    fn result(&self, acc: &Self::Acc) -> Self::Out;

    /// Only the rows `keep` accepts count (SQL's `agg(…) FILTER (WHERE …)`).
    fn filter<P>(self, keep: P) -> Filtered<Self, P>
    where
        Self: Sized,
        P: Fn(&T) -> bool + Clone + Send + 'static,
    {
        Filtered { agg: self, keep }
    }
}

/// An aggregate over only the rows a predicate accepts ([`RetractAggregate::filter`]).
#[derive(Clone, Copy)]
pub struct Filtered<A, P> {
    agg: A,
    keep: P,
}

impl<T, A: RetractAggregate<T>, P: Fn(&T) -> bool + Clone + Send + 'static> RetractAggregate<T>
    for Filtered<A, P>
{
    type Acc = A::Acc;
    type Out = A::Out;
    #[inline]
    fn add(&self, acc: &mut A::Acc, row: &T) {
        if (self.keep)(row) {
            self.agg.add(acc, row)
        }
    }
    #[inline]
    fn retract(&self, acc: &mut A::Acc, row: &T) {
        if (self.keep)(row) {
            self.agg.retract(acc, row)
        }
    }
    #[inline]
    fn add_final(&self, acc: &mut A::Acc, row: &T) {
        if (self.keep)(row) {
            self.agg.add_final(acc, row)
        }
    }
    #[inline]
    fn add_final_changed(&self, acc: &mut A::Acc, row: &T) -> bool {
        (self.keep)(row) && self.agg.add_final_changed(acc, row)
    }
    fn result(&self, acc: &A::Acc) -> A::Out {
        self.agg.result(acc)
    }
}

/// `COUNT(*)`: the number of rows.
#[derive(Clone, Copy, Debug, Default)]
pub struct CountRows;

impl<T> RetractAggregate<T> for CountRows {
    type Acc = i64;
    type Out = i64;
    #[inline]
    fn add(&self, acc: &mut i64, _: &T) {
        *acc += 1;
    }
    #[inline]
    fn retract(&self, acc: &mut i64, _: &T) {
        *acc -= 1;
    }
    fn result(&self, acc: &i64) -> i64 {
        *acc
    }
}

/// Adds `v` to a sum that counts its rows (the accumulator of [`SumOf`] and [`AvgOf`]).
#[inline]
fn add_counted<N: Add<Output = N> + Copy>(acc: &mut (N, i64), v: N) {
    acc.0 = acc.0 + v;
    acc.1 += 1;
}

/// Takes `v` back out of a sum that counts its rows.
#[inline]
fn retract_counted<N: Sub<Output = N> + Copy>(acc: &mut (N, i64), v: N) {
    acc.0 = acc.0 - v;
    acc.1 -= 1;
}

/// `SUM(field)`: `None` while no row counts (SQL's `NULL`), in the field's own type.
#[derive(Clone, Copy)]
pub struct SumOf<F>(pub F);

impl<F> SumOf<F> {
    /// The sum of `field(row)`.
    pub fn new(field: F) -> Self {
        SumOf(field)
    }
}

impl<T, N, F> RetractAggregate<T> for SumOf<F>
where
    N: Data + StateData + Copy + Default + PartialEq + Add<Output = N> + Sub<Output = N>,
    F: Fn(&T) -> N + Clone + Send + 'static,
{
    /// The sum and the number of rows in it.
    type Acc = (N, i64);
    type Out = Option<N>;
    #[inline]
    fn add(&self, acc: &mut (N, i64), row: &T) {
        add_counted(acc, (self.0)(row));
    }
    #[inline]
    fn retract(&self, acc: &mut (N, i64), row: &T) {
        retract_counted(acc, (self.0)(row));
    }
    fn result(&self, acc: &(N, i64)) -> Option<N> {
        (acc.1 > 0).then_some(acc.0)
    }
}

/// A number SQL's `AVG` is defined on: integers average with truncation (as Flink's `AVG` of
/// a `BIGINT` is a `BIGINT`), floats exactly.
pub trait Average:
    Data + StateData + Copy + Default + PartialEq + Add<Output = Self> + Sub<Output = Self>
{
    /// `sum / count`, `count > 0`.
    fn average(sum: Self, count: i64) -> Self;
}

impl Average for i64 {
    fn average(sum: i64, count: i64) -> i64 {
        sum / count
    }
}

impl Average for i32 {
    fn average(sum: i32, count: i64) -> i32 {
        (sum as i64 / count) as i32
    }
}

impl Average for f64 {
    fn average(sum: f64, count: i64) -> f64 {
        sum / count as f64
    }
}

/// `AVG(field)`: `None` while no row counts.
#[derive(Clone, Copy)]
pub struct AvgOf<F>(pub F);

impl<F> AvgOf<F> {
    /// The mean of `field(row)`.
    pub fn new(field: F) -> Self {
        AvgOf(field)
    }
}

impl<T, N: Average, F: Fn(&T) -> N + Clone + Send + 'static> RetractAggregate<T> for AvgOf<F> {
    type Acc = (N, i64);
    type Out = Option<N>;
    #[inline]
    fn add(&self, acc: &mut (N, i64), row: &T) {
        add_counted(acc, (self.0)(row));
    }
    #[inline]
    fn retract(&self, acc: &mut (N, i64), row: &T) {
        retract_counted(acc, (self.0)(row));
    }
    fn result(&self, acc: &(N, i64)) -> Option<N> {
        (acc.1 > 0).then(|| N::average(acc.0, acc.1))
    }
}

/// The multiset of values a min or max keeps: under retraction the next one must be known.
type Multiset<V> = BTreeMap<V, u64>;

fn multiset_add<V: Ord>(set: &mut Multiset<V>, v: V) {
    *set.entry(v).or_insert(0) += 1;
}

fn multiset_remove<V: Ord>(set: &mut Multiset<V>, v: &V) {
    if let Some(n) = set.get_mut(v) {
        *n -= 1;
        if *n == 0 {
            set.remove(v);
        }
    }
}

macro_rules! extremum {
    ($name:ident, $doc:literal, $pick:ident, $better:expr) => {
        #[doc = $doc]
        #[derive(Clone, Copy)]
        pub struct $name<F>(pub F);

        impl<F> $name<F> {
            /// Over `field(row)`.
            pub fn new(field: F) -> Self {
                $name(field)
            }
        }

        impl<T, V, F> RetractAggregate<T> for $name<F>
        where
            V: Data + StateData + Ord + PartialEq,
            F: Fn(&T) -> V + Clone + Send + 'static,
        {
            type Acc = Multiset<V>;
            type Out = Option<V>;
            #[inline]
            fn add(&self, acc: &mut Multiset<V>, row: &T) {
                multiset_add(acc, (self.0)(row));
            }
            #[inline]
            fn retract(&self, acc: &mut Multiset<V>, row: &T) {
                multiset_remove(acc, &(self.0)(row));
            }
            /// Without withdrawals only the extreme matters: the set holds one value.
            #[inline]
            fn add_final(&self, acc: &mut Multiset<V>, row: &T) {
                let v = (self.0)(row);
                let better: fn(&V, &V) -> bool = $better;
                match acc.keys().next() {
                    Some(cur) if !better(&v, cur) => {}
                    _ => {
                        acc.clear();
                        acc.insert(v, 1);
                    }
                }
            }
            fn result(&self, acc: &Multiset<V>) -> Option<V> {
                acc.keys().$pick().cloned()
            }
        }
    };
}

extremum!(
    MinOf,
    "`MIN(field)`: the smallest value (`None` while no row counts). Keeps every value with its count, so a retracted minimum gives way to the next (over an append-only input, only the minimum).",
    next,
    |v, cur| v < cur
);
extremum!(
    MaxOf,
    "`MAX(field)`: the largest value (`None` while no row counts). Keeps every value with its count, so a retracted maximum gives way to the next (over an append-only input, only the maximum).",
    next_back,
    |v, cur| v > cur
);

/// `COUNT(DISTINCT field)`: keeps each value with the number of rows that have it.
#[derive(Clone, Copy)]
pub struct CountDistinctOf<F>(pub F);

impl<F> CountDistinctOf<F> {
    /// The number of distinct `field(row)`.
    pub fn new(field: F) -> Self {
        CountDistinctOf(field)
    }
}

impl<T, V, F> RetractAggregate<T> for CountDistinctOf<F>
where
    V: Data + StateData + Hash + Eq,
    F: Fn(&T) -> V + Clone + Send + 'static,
{
    type Acc = hashbrown::HashMap<V, u64>;
    type Out = i64;
    #[inline]
    fn add(&self, acc: &mut Self::Acc, row: &T) {
        *acc.entry((self.0)(row)).or_insert(0) += 1;
    }
    #[inline]
    fn retract(&self, acc: &mut Self::Acc, row: &T) {
        let v = (self.0)(row);
        if let Some(n) = acc.get_mut(&v) {
            *n -= 1;
            if *n == 0 {
                acc.remove(&v);
            }
        }
    }
    fn result(&self, acc: &Self::Acc) -> i64 {
        acc.len() as i64
    }
}

impl<F> CountDistinctOf<F> {
    /// Several `COUNT(DISTINCT field) FILTER (WHERE …)` over one field at once, sharing one
    /// map: `slots(row)` says which of up to [`DISTINCT_SLOTS`] counts the row belongs to (bit
    /// `i`: count `i`), and the result holds each count's distinct values. One hash lookup per
    /// row instead of one per filter, each value stored once.
    ///
    /// ```
    /// use streamcore::changelog::{CountDistinctOf, RetractAggregate};
    /// // distinct bidders overall (bit 0) and among bids under 100 (bit 1)
    /// let agg = CountDistinctOf::new(|b: &(u32, i64)| b.0)
    ///     .in_slots(|b: &(u32, i64)| 1 | (u8::from(b.1 < 100) << 1));
    /// let mut acc = Default::default();
    /// for bid in [(7, 50), (7, 500), (8, 500)] {
    ///     agg.add(&mut acc, &bid);
    /// }
    /// assert_eq!(agg.result(&acc)[..2], [2, 1]);
    /// agg.retract(&mut acc, &(7, 50));
    /// assert_eq!(agg.result(&acc)[..2], [2, 0]);
    /// ```
    pub fn in_slots<M>(self, slots: M) -> DistinctSlots<F, M> {
        DistinctSlots {
            field: self.0,
            slots,
        }
    }
}

/// How many filtered distinct counts one [`DistinctSlots`] keeps.
pub const DISTINCT_SLOTS: usize = 8;

/// Distinct counts of one field under several filters ([`CountDistinctOf::in_slots`]).
#[derive(Clone, Copy)]
pub struct DistinctSlots<F, M> {
    field: F,
    slots: M,
}

/// Per value, how many rows of each slot have it; and per slot, how many values have rows.
pub type DistinctSlotsAcc<V> = (
    hashbrown::HashMap<V, [u32; DISTINCT_SLOTS]>,
    [i64; DISTINCT_SLOTS],
);

impl<T, V, F, M> RetractAggregate<T> for DistinctSlots<F, M>
where
    V: Data + StateData + Hash + Eq,
    F: Fn(&T) -> V + Clone + Send + 'static,
    M: Fn(&T) -> u8 + Clone + Send + 'static,
{
    type Acc = DistinctSlotsAcc<V>;
    type Out = [i64; DISTINCT_SLOTS];
    #[inline]
    fn add(&self, (values, distinct): &mut Self::Acc, row: &T) {
        let mask = (self.slots)(row);
        if mask == 0 {
            return;
        }
        let counts = values
            .entry((self.field)(row))
            .or_insert([0; DISTINCT_SLOTS]);
        for (slot, count) in counts.iter_mut().enumerate() {
            if mask & (1 << slot) != 0 {
                *count += 1;
                if *count == 1 {
                    distinct[slot] += 1;
                }
            }
        }
    }
    #[inline]
    fn retract(&self, (values, distinct): &mut Self::Acc, row: &T) {
        let mask = (self.slots)(row);
        let v = (self.field)(row);
        let Some(counts) = values.get_mut(&v) else {
            return;
        };
        for (slot, count) in counts.iter_mut().enumerate() {
            if mask & (1 << slot) != 0 && *count > 0 {
                *count -= 1;
                if *count == 0 {
                    distinct[slot] -= 1;
                }
            }
        }
        if counts.iter().all(|c| *c == 0) {
            values.remove(&v);
        }
    }
    fn result(&self, (_, distinct): &Self::Acc) -> [i64; DISTINCT_SLOTS] {
        *distinct
    }
}

macro_rules! tuple_aggregate {
    ($($a:ident $i:tt),+) => {
        /// Several aggregates over the same rows: a tuple of their results.
        impl<T, $($a: RetractAggregate<T>),+> RetractAggregate<T> for ($($a,)+) {
            type Acc = ($($a::Acc,)+);
            type Out = ($($a::Out,)+);
            #[inline]
            fn add(&self, acc: &mut Self::Acc, row: &T) {
                $(self.$i.add(&mut acc.$i, row);)+
            }
            #[inline]
            fn retract(&self, acc: &mut Self::Acc, row: &T) {
                $(self.$i.retract(&mut acc.$i, row);)+
            }
            #[inline]
            fn add_final(&self, acc: &mut Self::Acc, row: &T) {
                $(self.$i.add_final(&mut acc.$i, row);)+
            }
            fn result(&self, acc: &Self::Acc) -> Self::Out {
                ($(self.$i.result(&acc.$i),)+)
            }
        }
    };
}

tuple_aggregate!(A 0);
tuple_aggregate!(A 0, B 1);
tuple_aggregate!(A 0, B 1, C 2);
tuple_aggregate!(A 0, B 1, C 2, D 3);
tuple_aggregate!(A 0, B 1, C 2, D 3, E 4);
tuple_aggregate!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_aggregate!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_aggregate!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_aggregate!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_aggregate!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);

/// One group's state: the accumulator, how many rows it holds, the row last emitted, and
/// whether a change of this batch is still to be emitted.
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "Acc: Serialize, Out: Serialize",
    deserialize = "Acc: Deserialize<'de>, Out: Deserialize<'de>"
))]
pub struct GroupState<Acc, Out> {
    acc: Acc,
    rows: i64,
    emitted: Option<Out>,
    held: bool,
}

impl<Acc: Default, Out> Default for GroupState<Acc, Out> {
    fn default() -> Self {
        GroupState {
            acc: Acc::default(),
            rows: 0,
            emitted: None,
            held: false,
        }
    }
}

/// Runs a [`RetractAggregate`] per key over an append-only stream (every row an addition) or
/// a changelog, emitting each group's `(key, result)` as it changes: `+I` for a new group,
/// `-U`/`+U` when its result changed, `-D` when its last row was withdrawn (its state goes
/// then). A change that leaves the result as it was emits nothing. With mini-batch
/// ([`crate::KeyedStream::mini_batch`]) the changes of a group within one input batch are
/// folded into one: the group's result is computed and compared with the last one emitted
/// once per batch, not once per row. Each change's record is `finish(key, result)`. Built by
/// [`crate::KeyedStream::group_aggregate`] and [`crate::KeyedStream::group_aggregate_changes`]
/// (records `(key, result)`), and their `_with` forms.
pub struct GroupAggregate<A, T, K, F> {
    agg: A,
    /// Makes an output record of a key and a result.
    finish: F,
    /// Mini-batch: changes are emitted at the end of each batch, not after each row.
    fold: bool,
    /// A changed result is `-U` then `+U` (else `+U` alone: an upsert stream).
    update_before: bool,
    /// The groups changed in the current batch, emitted at its end.
    held: Vec<K>,
    _t: PhantomData<fn(T)>,
}

impl<A: Clone, T, K, F: Clone> Clone for GroupAggregate<A, T, K, F> {
    fn clone(&self) -> Self {
        GroupAggregate::new(
            self.agg.clone(),
            self.finish.clone(),
            self.fold,
            self.update_before,
        )
    }
}

impl<A, T, K, F> GroupAggregate<A, T, K, F> {
    pub(crate) fn new(agg: A, finish: F, fold: bool, update_before: bool) -> Self {
        GroupAggregate {
            agg,
            finish,
            fold,
            update_before,
            held: Vec::new(),
            _t: PhantomData,
        }
    }
}

impl<A, T, K, F, O> GroupAggregate<A, T, K, F>
where
    A: RetractAggregate<T>,
    K: Key,
    F: Fn(&K, A::Out) -> O,
    O: Data,
{
    /// Applies one row (added or withdrawn; `final_add`: over an append-only input) to the
    /// current key's group and emits its change — or, with mini-batch, holds the group to be
    /// emitted at the end of the batch ([`Self::emit`]).
    #[inline]
    fn apply(
        &mut self,
        add: bool,
        final_add: bool,
        row: &T,
        ctx: &mut KeyedContext<'_, K, GroupState<A::Acc, A::Out>>,
        out: &mut Output<Change<O>>,
    ) {
        let group = ctx.state();
        if add {
            let changed = if final_add {
                self.agg.add_final_changed(&mut group.acc, row)
            } else {
                self.agg.add(&mut group.acc, row);
                true
            };
            group.rows += 1;
            // A group neither held nor new has emitted its result as it is now: a row that
            // left the result as it was emits nothing, and its result is not made.
            if !changed && !group.held && group.emitted.is_some() {
                return;
            }
        } else if group.rows == 0 {
            // A withdrawal of a row this group never had (its state expired, say): nothing
            // to take back.
            if !group.held && group.emitted.is_none() {
                ctx.clear_state();
            }
            return;
        } else {
            self.agg.retract(&mut group.acc, row);
            group.rows -= 1;
            if group.rows == 0 {
                // Empty again: as a new group if rows come back in this batch.
                group.acc = A::Acc::default();
            }
        }
        if !self.fold {
            self.emit(ctx, out);
        } else if !group.held {
            group.held = true;
            self.held.push(ctx.key().clone());
        }
    }

    /// Emits the change of the current key's group over the batch: `+I`, `-U`/`+U`, `-D`, or
    /// nothing when its result is what was last emitted.
    fn emit(
        &mut self,
        ctx: &mut KeyedContext<'_, K, GroupState<A::Acc, A::Out>>,
        out: &mut Output<Change<O>>,
    ) {
        let finish = &self.finish;
        let group = ctx.state();
        group.held = false;
        let now = (group.rows > 0).then(|| self.agg.result(&group.acc));
        let before = group.emitted.take();
        let ended = now.is_none();
        match (before, now) {
            (None, Some(now)) => {
                out.emit(Change::Insert(finish(ctx.key(), now.clone())));
                ctx.state().emitted = Some(now);
            }
            (Some(before), Some(now)) => {
                if before != now {
                    if self.update_before {
                        out.emit(Change::UpdateBefore(finish(ctx.key(), before)));
                    }
                    out.emit(Change::UpdateAfter(finish(ctx.key(), now.clone())));
                }
                ctx.state().emitted = Some(now);
            }
            (Some(before), None) => out.emit(Change::Delete(finish(ctx.key(), before))),
            (None, None) => {}
        }
        if ended {
            ctx.clear_state();
        }
    }
}

impl<K, T, A, F, O> KeyedProcessFunction<K, T> for GroupAggregate<A, T, K, F>
where
    K: Key + StateData,
    T: Data,
    A: RetractAggregate<T>,
    F: Fn(&K, A::Out) -> O + Clone + Send + 'static,
    O: Data,
{
    type State = GroupState<A::Acc, A::Out>;
    type Out = Change<O>;
    #[inline]
    fn process(
        &mut self,
        row: T,
        ctx: &mut KeyedContext<'_, K, Self::State>,
        out: &mut Output<Self::Out>,
    ) {
        self.apply(true, true, &row, ctx, out);
    }

    fn take_held_keys(&mut self) -> Vec<K> {
        std::mem::take(&mut self.held)
    }

    fn finish_key(
        &mut self,
        ctx: &mut KeyedContext<'_, K, Self::State>,
        out: &mut Output<Self::Out>,
    ) {
        self.emit(ctx, out);
    }
}

/// The same aggregate over a changelog: additions add, withdrawals retract.
#[derive(Clone)]
pub(crate) struct GroupAggregateChanges<A, T, K, F>(pub(crate) GroupAggregate<A, T, K, F>);

impl<K, T, A, F, O> KeyedProcessFunction<K, Change<T>> for GroupAggregateChanges<A, T, K, F>
where
    K: Key + StateData,
    T: Data,
    A: RetractAggregate<T>,
    F: Fn(&K, A::Out) -> O + Clone + Send + 'static,
    O: Data,
{
    type State = GroupState<A::Acc, A::Out>;
    type Out = Change<O>;
    #[inline]
    fn process(
        &mut self,
        change: Change<T>,
        ctx: &mut KeyedContext<'_, K, Self::State>,
        out: &mut Output<Self::Out>,
    ) {
        self.0
            .apply(change.is_addition(), false, change.row(), ctx, out);
    }

    fn take_held_keys(&mut self) -> Vec<K> {
        self.0.take_held_keys()
    }

    fn finish_key(
        &mut self,
        ctx: &mut KeyedContext<'_, K, Self::State>,
        out: &mut Output<Self::Out>,
    ) {
        self.0.emit(ctx, out);
    }
}
