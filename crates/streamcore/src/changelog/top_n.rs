//! [`TopN`]: the first `n` rows per key in an order, kept under insertions and retractions.

use super::Change;
use crate::data::{Data, Key, StateData};
use crate::operator::Output;
use crate::state::{KeyedContext, KeyedProcessFunction};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::marker::PhantomData;

/// One key's rows by their sort key; rows with equal sort keys in arrival order.
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "S: Serialize + Ord, T: Serialize",
    deserialize = "S: Deserialize<'de> + Ord, T: Deserialize<'de>"
))]
pub struct TopNState<S, T> {
    rows: BTreeMap<S, Vec<T>>,
}

impl<S, T> Default for TopNState<S, T> {
    fn default() -> Self {
        TopNState {
            rows: BTreeMap::new(),
        }
    }
}

impl<S: Ord, T: Clone> TopNState<S, T> {
    fn first(&self, n: usize) -> Vec<T> {
        self.rows.values().flatten().take(n).cloned().collect()
    }

    fn len(&self) -> usize {
        self.rows.values().map(Vec::len).sum()
    }

    /// Drops every row after the first `n` (append-only input: they can never come back).
    fn truncate(&mut self, n: usize) {
        while self.len() > n {
            let Some(mut last) = self.rows.last_entry() else {
                return;
            };
            last.get_mut().pop();
            if last.get().is_empty() {
                last.remove();
            }
        }
    }
}

/// The first `n` rows per key in the order of `order(row)` (ascending: wrap a key in
/// [`std::cmp::Reverse`] for descending) — SQL's `ROW_NUMBER() OVER (PARTITION BY key ORDER BY
/// …) <= n`. Rows with equal sort keys rank in arrival order.
///
/// Emits the changes of the top-`n` set: without ranks ([`crate::KeyedStream::top_n`]) a row
/// entering is `+I` and a row leaving `-D`; with ranks
/// ([`crate::KeyedStream::top_n_ranked`], rows `(rank, row)` with rank from 1) each rank whose
/// row changed is updated (`-U`/`+U`), as Flink does when the rank is selected. Over an
/// append-only input only the first `n` rows are kept; over a changelog every row is (a
/// retracted row makes room for the next).
pub struct TopN<T, S, F> {
    n: usize,
    order: F,
    ranked: bool,
    _t: PhantomData<fn(T) -> S>,
}

impl<T, S, F: Clone> Clone for TopN<T, S, F> {
    fn clone(&self) -> Self {
        TopN {
            n: self.n,
            order: self.order.clone(),
            ranked: self.ranked,
            _t: PhantomData,
        }
    }
}

impl<T, S, F> TopN<T, S, F>
where
    T: Data + PartialEq,
    S: Ord,
    F: Fn(&T) -> S,
{
    pub(crate) fn new(n: usize, order: F, ranked: bool) -> Self {
        TopN {
            n,
            order,
            ranked,
            _t: PhantomData,
        }
    }

    /// Applies one row and emits how the first `n` changed (as `Change<(rank, row)>` through
    /// `emit`).
    fn apply(
        &self,
        add: bool,
        row: T,
        append_only: bool,
        state: &mut TopNState<S, T>,
        mut emit: impl FnMut(Change<(u64, T)>),
    ) {
        let before = state.first(self.n);
        let sort = (self.order)(&row);
        if add {
            state.rows.entry(sort).or_default().push(row);
            if append_only {
                state.truncate(self.n);
            }
        } else {
            let Some(rows) = state.rows.get_mut(&sort) else {
                return;
            };
            let Some(at) = rows.iter().position(|r| *r == row) else {
                return;
            };
            rows.remove(at);
            if rows.is_empty() {
                state.rows.remove(&sort);
            }
        }
        let after = state.first(self.n);
        if self.ranked {
            for rank in 0..before.len().max(after.len()) {
                let r = rank as u64 + 1;
                match (before.get(rank), after.get(rank)) {
                    (Some(b), Some(a)) if b != a => {
                        emit(Change::UpdateBefore((r, b.clone())));
                        emit(Change::UpdateAfter((r, a.clone())));
                    }
                    (Some(b), None) => emit(Change::Delete((r, b.clone()))),
                    (None, Some(a)) => emit(Change::Insert((r, a.clone()))),
                    _ => {}
                }
            }
        } else {
            // The multiset difference: rows that left, then rows that entered.
            let mut entered = after;
            for b in before {
                match entered.iter().position(|a| *a == b) {
                    Some(i) => {
                        entered.swap_remove(i);
                    }
                    None => emit(Change::Delete((0, b))),
                }
            }
            for a in entered {
                emit(Change::Insert((0, a)));
            }
        }
    }
}

/// Top-n over an append-only input, without ranks.
impl<K, T, S, F> KeyedProcessFunction<K, T> for TopN<T, S, F>
where
    K: Key + StateData,
    T: Data + StateData + PartialEq,
    S: Ord + StateData,
    F: Fn(&T) -> S + Clone + Send + 'static,
{
    type State = TopNState<S, T>;
    type Out = Change<T>;
    fn process(
        &mut self,
        row: T,
        ctx: &mut KeyedContext<'_, K, Self::State>,
        out: &mut Output<Change<T>>,
    ) {
        self.apply(true, row, true, ctx.state(), |c| {
            out.emit(c.map(|(_, r)| r))
        });
    }
}

/// Top-n over a changelog, without ranks.
pub(crate) struct TopNChanges<T, S, F>(pub(crate) TopN<T, S, F>);

impl<T, S, F: Clone> Clone for TopNChanges<T, S, F> {
    fn clone(&self) -> Self {
        TopNChanges(self.0.clone())
    }
}

impl<K, T, S, F> KeyedProcessFunction<K, Change<T>> for TopNChanges<T, S, F>
where
    K: Key + StateData,
    T: Data + StateData + PartialEq,
    S: Ord + StateData,
    F: Fn(&T) -> S + Clone + Send + 'static,
{
    type State = TopNState<S, T>;
    type Out = Change<T>;
    fn process(
        &mut self,
        change: Change<T>,
        ctx: &mut KeyedContext<'_, K, Self::State>,
        out: &mut Output<Change<T>>,
    ) {
        let add = change.is_addition();
        self.0
            .apply(add, change.into_row(), false, ctx.state(), |c| {
                out.emit(c.map(|(_, r)| r))
            });
        if ctx.state().rows.is_empty() {
            ctx.clear_state();
        }
    }
}

/// Top-n with ranks, over an append-only input or (`changes`) a changelog.
pub(crate) struct RankedTopN<T, S, F> {
    pub(crate) top: TopN<T, S, F>,
}

impl<T, S, F: Clone> Clone for RankedTopN<T, S, F> {
    fn clone(&self) -> Self {
        RankedTopN {
            top: self.top.clone(),
        }
    }
}

impl<K, T, S, F> KeyedProcessFunction<K, T> for RankedTopN<T, S, F>
where
    K: Key + StateData,
    T: Data + StateData + PartialEq,
    S: Ord + StateData,
    F: Fn(&T) -> S + Clone + Send + 'static,
{
    type State = TopNState<S, T>;
    type Out = Change<(u64, T)>;
    fn process(
        &mut self,
        row: T,
        ctx: &mut KeyedContext<'_, K, Self::State>,
        out: &mut Output<Change<(u64, T)>>,
    ) {
        self.top
            .apply(true, row, true, ctx.state(), |c| out.emit(c));
    }
}

/// Top-n with ranks over a changelog.
pub(crate) struct RankedTopNChanges<T, S, F>(pub(crate) TopN<T, S, F>);

impl<T, S, F: Clone> Clone for RankedTopNChanges<T, S, F> {
    fn clone(&self) -> Self {
        RankedTopNChanges(self.0.clone())
    }
}

impl<K, T, S, F> KeyedProcessFunction<K, Change<T>> for RankedTopNChanges<T, S, F>
where
    K: Key + StateData,
    T: Data + StateData + PartialEq,
    S: Ord + StateData,
    F: Fn(&T) -> S + Clone + Send + 'static,
{
    type State = TopNState<S, T>;
    type Out = Change<(u64, T)>;
    fn process(
        &mut self,
        change: Change<T>,
        ctx: &mut KeyedContext<'_, K, Self::State>,
        out: &mut Output<Change<(u64, T)>>,
    ) {
        let add = change.is_addition();
        self.0
            .apply(add, change.into_row(), false, ctx.state(), |c| out.emit(c));
        if ctx.state().rows.is_empty() {
            ctx.clear_state();
        }
    }
}
