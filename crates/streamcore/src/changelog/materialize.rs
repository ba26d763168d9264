//! [`Materialize`]: the current row per key of a changelog (upsert by key).

use super::Change;
use crate::data::{Data, Key, StateData};
use crate::operator::Output;
use crate::state::{KeyedContext, KeyedProcessFunction};
use std::marker::PhantomData;

/// Keeps, per key, the rows a changelog added and did not withdraw, and emits the key's
/// *current* row — the last one added — as a normalized changelog: `+I` when the key gets a
/// row, `-U`/`+U` when its current row changes, `-D` when its last row is withdrawn.
///
/// Withdrawals may arrive out of order (a row withdrawn after a newer one was added, as when
/// two parallel paths deliver a changelog): the newer row stays current and nothing is
/// emitted. Changes that leave the current row as it was emit nothing. This is what an upsert
/// sink (a database table by primary key, a cache) needs: one row per key, and a delete only
/// when no row is left. Built by [`crate::KeyedStream::materialize`].
pub struct Materialize<T>(PhantomData<fn(T)>);

impl<T> Clone for Materialize<T> {
    fn clone(&self) -> Self {
        Materialize(PhantomData)
    }
}

impl<T> Default for Materialize<T> {
    fn default() -> Self {
        Materialize(PhantomData)
    }
}

impl<K: Key + StateData, T: Data + StateData + PartialEq> KeyedProcessFunction<K, Change<T>>
    for Materialize<T>
{
    /// The rows added and not withdrawn, oldest first: the last is current.
    type State = Vec<T>;
    type Out = Change<T>;
    fn process(
        &mut self,
        change: Change<T>,
        ctx: &mut KeyedContext<'_, K, Vec<T>>,
        out: &mut Output<Change<T>>,
    ) {
        let rows = ctx.state();
        if change.is_addition() {
            let row = change.into_row();
            match rows.last() {
                Some(current) if *current == row => {}
                Some(current) => {
                    out.emit(Change::UpdateBefore(current.clone()));
                    out.emit(Change::UpdateAfter(row.clone()));
                }
                None => out.emit(Change::Insert(row.clone())),
            }
            rows.push(row);
            return;
        }
        let row = change.row();
        let Some(at) = rows.iter().rposition(|r| r == row) else {
            // Never added (or expired): nothing to withdraw.
            if rows.is_empty() {
                ctx.clear_state();
            }
            return;
        };
        let removed = rows.remove(at);
        if at < rows.len() {
            return; // an older row: the current one stays
        }
        match rows.last() {
            Some(current) if *current == removed => {}
            Some(current) => {
                out.emit(Change::UpdateBefore(removed));
                out.emit(Change::UpdateAfter(current.clone()));
            }
            None => {
                out.emit(Change::Delete(removed));
                ctx.clear_state();
            }
        }
    }
}
