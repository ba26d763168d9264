//! [`Materialize`]: the current row per key of a changelog (upsert by key).

use super::{Change, RowKind};
use crate::data::{Data, Key, StateData};
use crate::operator::Output;
use crate::state::{KeyedContext, KeyedProcessFunction};
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;

/// Keeps, per key, the rows a changelog added and did not withdraw, and emits the key's
/// *current* row — the last one added — as a normalized changelog: `+I` when the key gets a
/// row, `-U`/`+U` when its current row changes, `-D` when its last row is withdrawn.
///
/// An update that arrives as `-U old` then `+U new` stays an update (`-U old`, `+U new`), not a
/// delete and an insert: the withdrawal of a key's last row by an update-before waits for the
/// update-after that follows it. Withdrawals may arrive out of order (a row withdrawn after a
/// newer one was added, as when two parallel paths deliver a changelog): the newer row stays
/// current and nothing is emitted. Changes that leave the current row as it was emit nothing.
/// This is what an upsert sink (a database table by primary key, a cache) needs: one row per
/// key, and a delete only when no row is left. Built by [`crate::KeyedStream::materialize`].
///
/// Keyed otherwise than the changelog's own updates ([`crate::KeyedStream::materialize_rekeyed`]),
/// an update may move a row to another key, its update-after never coming to this one: an
/// update-before that withdraws a key's last row then deletes it at once (`-D`; an update
/// within the key becomes `-D` then `+I`) — as Flink's `SinkUpsertMaterializer`. A withdrawal
/// removes the kept row it is `same` as: the equal row, or
/// ([`crate::KeyedStream::materialize_rekeyed_by`]) the row with the same values in the
/// changelog's own key, whose other columns may have been computed anew for the withdrawal
/// (a `NOW()` in a projection).
pub struct Materialize<T, S = fn(&T, &T) -> bool> {
    /// An update-before withdrawing a key's last row deletes it at once.
    rekeyed: bool,
    /// Whether a withdrawal (first) withdraws a kept row (second).
    same: S,
    _t: PhantomData<fn(T)>,
}

impl<T, S: Clone> Clone for Materialize<T, S> {
    fn clone(&self) -> Self {
        Materialize::new(self.rekeyed, self.same.clone())
    }
}

impl<T, S> Materialize<T, S> {
    pub(crate) fn new(rekeyed: bool, same: S) -> Self {
        Materialize {
            rekeyed,
            same,
            _t: PhantomData,
        }
    }
}

/// Rows withdraw the rows equal to them ([`Materialize`]'s default).
pub(crate) fn equal_rows<T: PartialEq>(withdrawn: &T, kept: &T) -> bool {
    withdrawn == kept
}

/// One key's rows: those added and not withdrawn, oldest first (the last is current), and the
/// row an update-before withdrew last, while its update-after is on its way.
#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub struct MaterializeState<T> {
    rows: Vec<T>,
    before: Option<T>,
}

impl<T> Default for MaterializeState<T> {
    fn default() -> Self {
        MaterializeState {
            rows: Vec::new(),
            before: None,
        }
    }
}

impl<K, T, S> KeyedProcessFunction<K, Change<T>> for Materialize<T, S>
where
    K: Key + StateData,
    T: Data + StateData + PartialEq,
    S: Fn(&T, &T) -> bool + Clone + Send + 'static,
{
    type State = MaterializeState<T>;
    type Out = Change<T>;
    fn process(
        &mut self,
        change: Change<T>,
        ctx: &mut KeyedContext<'_, K, MaterializeState<T>>,
        out: &mut Output<Change<T>>,
    ) {
        let state = ctx.state();
        if change.is_addition() {
            let row = change.into_row();
            match (state.before.take(), state.rows.last()) {
                (Some(before), _) if before == row => {}
                (Some(before), _) => {
                    out.emit(Change::UpdateBefore(before));
                    out.emit(Change::UpdateAfter(row.clone()));
                }
                (None, Some(current)) if *current == row => {}
                (None, Some(current)) => {
                    out.emit(Change::UpdateBefore(current.clone()));
                    out.emit(Change::UpdateAfter(row.clone()));
                }
                (None, None) => out.emit(Change::Insert(row.clone())),
            }
            state.rows.push(row);
            return;
        }
        let by_update = change.kind() == RowKind::UpdateBefore;
        let row = change.row();
        let Some(at) = state.rows.iter().rposition(|r| (self.same)(row, r)) else {
            // Never added (or expired): nothing to withdraw.
            if state.rows.is_empty() && state.before.is_none() {
                ctx.clear_state();
            }
            return;
        };
        let removed = state.rows.remove(at);
        if at < state.rows.len() {
            return; // an older row: the current one stays
        }
        match state.rows.last() {
            Some(current) if *current == removed => {}
            Some(current) => {
                out.emit(Change::UpdateBefore(removed));
                out.emit(Change::UpdateAfter(current.clone()));
            }
            // The update-after that follows says what replaces it (unless it may go to
            // another key).
            None if by_update && !self.rekeyed => state.before = Some(removed),
            None => {
                out.emit(Change::Delete(removed));
                ctx.clear_state();
            }
        }
    }
}
