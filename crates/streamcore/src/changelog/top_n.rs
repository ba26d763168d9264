//! [`TopN`]: the first `n` rows per key in an order, kept under insertions and retractions.

use super::Change;
use crate::data::{Data, Key, StateData};
use crate::operator::Output;
use crate::state::{KeyedContext, KeyedProcessFunction};
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;

/// One key's rows sorted by their sort key; rows with equal sort keys in arrival order. A
/// flat vector: positions are ranks, and a top-n over an append-only input holds `n` rows.
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "S: Serialize, T: Serialize",
    deserialize = "S: Deserialize<'de>, T: Deserialize<'de>"
))]
pub struct TopNState<S, T> {
    rows: Vec<(S, T)>,
}

impl<S, T> Default for TopNState<S, T> {
    fn default() -> Self {
        TopNState { rows: Vec::new() }
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
    /// Ranked: a rank's old row is withdrawn (`-U`) before its new row's `+U`.
    update_before: bool,
    _t: PhantomData<fn(T) -> S>,
}

impl<T, S, F: Clone> Clone for TopN<T, S, F> {
    fn clone(&self) -> Self {
        TopN {
            n: self.n,
            order: self.order.clone(),
            ranked: self.ranked,
            update_before: self.update_before,
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
            update_before: true,
            _t: PhantomData,
        }
    }

    /// Ranked: whether a rank's old row is withdrawn (`-U`) before its new row's `+U`.
    pub(crate) fn with_update_before(mut self, on: bool) -> Self {
        self.update_before = on;
        self
    }

    /// Applies one row and emits how the first `n` changed (as `Change<(rank, row)>`, ranks
    /// from 1, through `emit`). Only rows whose rank changes are touched: a row that does not
    /// reach the first `n` costs a binary search.
    fn apply(
        &self,
        add: bool,
        row: T,
        append_only: bool,
        state: &mut TopNState<S, T>,
        mut emit: impl FnMut(Change<(u64, T)>),
    ) {
        let n = self.n;
        let sort = (self.order)(&row);
        let rows = &mut state.rows;
        let len = rows.len();
        if add {
            // After every row with an equal sort key: arrival order.
            let at = rows.partition_point(|(s, _)| *s <= sort);
            if at >= n {
                if !append_only {
                    rows.insert(at, (sort, row));
                }
                return;
            }
            if self.ranked {
                // Ranks at..min(len, n) move down by one; the new row takes rank `at`.
                for r in at..len.min(n) {
                    let now = if r == at {
                        row.clone()
                    } else {
                        rows[r - 1].1.clone()
                    };
                    if self.update_before {
                        emit(Change::UpdateBefore((r as u64 + 1, rows[r].1.clone())));
                    }
                    emit(Change::UpdateAfter((r as u64 + 1, now)));
                }
                if len < n {
                    let last = if len == at {
                        row.clone()
                    } else {
                        rows[len - 1].1.clone()
                    };
                    emit(Change::Insert((len as u64 + 1, last)));
                }
            } else {
                if len >= n {
                    emit(Change::Delete((0, rows[n - 1].1.clone())));
                }
                emit(Change::Insert((0, row.clone())));
            }
            rows.insert(at, (sort, row));
            if append_only {
                rows.truncate(n);
            }
            return;
        }
        let first = rows.partition_point(|(s, _)| *s < sort);
        let Some(at) = rows[first..]
            .iter()
            .take_while(|(s, _)| *s == sort)
            .position(|(_, r)| *r == row)
            .map(|i| first + i)
        else {
            return; // never added (or expired): nothing to withdraw
        };
        if at < n {
            if self.ranked {
                // Ranks at..min(len, n) move up by one; the last of them may empty.
                for r in at..len.min(n) {
                    match rows.get(r + 1) {
                        Some((_, next)) => {
                            if self.update_before {
                                emit(Change::UpdateBefore((r as u64 + 1, rows[r].1.clone())));
                            }
                            emit(Change::UpdateAfter((r as u64 + 1, next.clone())));
                        }
                        None => emit(Change::Delete((r as u64 + 1, rows[r].1.clone()))),
                    }
                }
            } else {
                emit(Change::Delete((0, rows[at].1.clone())));
                if let Some((_, next)) = rows.get(n) {
                    emit(Change::Insert((0, next.clone())));
                }
            }
        }
        rows.remove(at);
    }
}

/// What a top-n function reads and emits: rows or changes in, rows or ranked rows out.
pub(crate) trait TopNMode<T>: Send + 'static {
    /// The input record.
    type In: Data;
    /// The output record.
    type Out: Data;
    /// Whether the input only adds rows (then only the first `n` are kept).
    const APPEND_ONLY: bool;
    /// Whether an input record adds its row, and the row.
    fn split(record: Self::In) -> (bool, T);
    /// The output of one change of rank.
    fn out(change: Change<(u64, T)>) -> Self::Out;
}

/// Rows in, rows out (the membership of the first `n`).
pub(crate) struct Rows;
/// Rows in, ranked rows out.
pub(crate) struct RankedRows;
/// Changes in, rows out.
pub(crate) struct Changes;
/// Changes in, ranked rows out.
pub(crate) struct RankedChanges;

impl<T: Data> TopNMode<T> for Rows {
    type In = T;
    type Out = Change<T>;
    const APPEND_ONLY: bool = true;
    fn split(row: T) -> (bool, T) {
        (true, row)
    }
    fn out(change: Change<(u64, T)>) -> Change<T> {
        change.map(|(_, r)| r)
    }
}

impl<T: Data> TopNMode<T> for RankedRows {
    type In = T;
    type Out = Change<(u64, T)>;
    const APPEND_ONLY: bool = true;
    fn split(row: T) -> (bool, T) {
        (true, row)
    }
    fn out(change: Change<(u64, T)>) -> Change<(u64, T)> {
        change
    }
}

impl<T: Data> TopNMode<T> for Changes {
    type In = Change<T>;
    type Out = Change<T>;
    const APPEND_ONLY: bool = false;
    fn split(change: Change<T>) -> (bool, T) {
        (change.is_addition(), change.into_row())
    }
    fn out(change: Change<(u64, T)>) -> Change<T> {
        change.map(|(_, r)| r)
    }
}

impl<T: Data> TopNMode<T> for RankedChanges {
    type In = Change<T>;
    type Out = Change<(u64, T)>;
    const APPEND_ONLY: bool = false;
    fn split(change: Change<T>) -> (bool, T) {
        (change.is_addition(), change.into_row())
    }
    fn out(change: Change<(u64, T)>) -> Change<(u64, T)> {
        change
    }
}

/// A [`TopN`] as a keyed process function, in one of the four [`TopNMode`]s.
pub(crate) struct TopNFunction<T, S, F, M> {
    pub(crate) top: TopN<T, S, F>,
    pub(crate) _mode: PhantomData<fn() -> M>,
}

impl<T, S, F: Clone, M> Clone for TopNFunction<T, S, F, M> {
    fn clone(&self) -> Self {
        TopNFunction {
            top: self.top.clone(),
            _mode: PhantomData,
        }
    }
}

impl<T, S, F, M> TopNFunction<T, S, F, M> {
    pub(crate) fn new(top: TopN<T, S, F>) -> Self {
        TopNFunction {
            top,
            _mode: PhantomData,
        }
    }
}

impl<K, T, S, F, M> KeyedProcessFunction<K, M::In> for TopNFunction<T, S, F, M>
where
    K: Key + StateData,
    T: Data + StateData + PartialEq,
    S: Ord + StateData,
    F: Fn(&T) -> S + Clone + Send + 'static,
    M: TopNMode<T>,
{
    type State = TopNState<S, T>;
    type Out = M::Out;
    fn process(
        &mut self,
        record: M::In,
        ctx: &mut KeyedContext<'_, K, Self::State>,
        out: &mut Output<M::Out>,
    ) {
        let (add, row) = M::split(record);
        self.top.apply(add, row, M::APPEND_ONLY, ctx.state(), |c| {
            out.emit(M::out(c))
        });
        if ctx.state().rows.is_empty() {
            ctx.clear_state();
        }
    }
}
