//! Changelogs: streams whose records are changes of a result table ([`Change`]: insert,
//! update-before, update-after, delete — Flink's `RowKind`), and the operators that consume and
//! produce them.
//!
//! An *append-only* stream only adds rows; an *updating* stream (a changelog) also withdraws
//! rows it emitted earlier. Applying a changelog in order to an empty table gives the result
//! table ([`apply_to`] does it for tests and final outputs). The operators here are keyed and
//! keep their state per key group, so they checkpoint, restore at another parallelism and
//! follow key-group changes like every keyed operator:
//!
//! - [`crate::KeyedStream::group_aggregate`] / [`crate::KeyedStream::group_aggregate_changes`]:
//!   a retracting aggregate per key ([`RetractAggregate`]: count, sum, min, max, avg, count
//!   distinct, each with a `FILTER`), emitting the group's row as it changes;
//! - [`crate::KeyedStream::materialize`]: the current row per key of a changelog (upsert by
//!   key), withdrawals out of order included;
//! - [`crate::KeyedStream::top_n`] / [`crate::KeyedStream::top_n_ranked`]: the first `n` rows
//!   per key in an order, under insertions and retractions;
//! - [`crate::KeyedStream::deduplicate`]: the first or last row per key.
//!
//! Each stream knows whether it is updating: these operators (and regular joins) mark their
//! output, stateless operators and exchanges keep the mark, and a sink that cannot take updates
//! ([`crate::Sink::accepts_updates`]) refuses such a stream when the job is built.

mod aggregate;
mod dedup;
pub(crate) mod materialize;
mod top_n;

pub(crate) use aggregate::GroupAggregateChanges;
pub use aggregate::{
    AvgOf, CountDistinctOf, CountRows, DistinctSlots, DistinctSlotsAcc, Filtered, GroupAggregate,
    GroupState, MaxOf, MinOf, RetractAggregate, SumOf, DISTINCT_SLOTS,
};
pub use dedup::{Deduplicate, Keep};
pub use materialize::{Materialize, MaterializeState};
pub(crate) use top_n::{Changes, RankedChanges, RankedRows, Rows, TopNFunction};
pub use top_n::{TopN, TopNState};

use serde::{Deserialize, Serialize};

/// The kind of a change (Flink's `RowKind`), in its short form `+I`, `-U`, `+U`, `-D`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RowKind {
    /// `+I`: a row was added.
    Insert,
    /// `-U`: a row is about to be replaced (its update-after follows).
    UpdateBefore,
    /// `+U`: the row that replaces the update-before.
    UpdateAfter,
    /// `-D`: a row emitted earlier was withdrawn.
    Delete,
}

impl RowKind {
    /// `+I`, `-U`, `+U` or `-D`.
    pub fn short(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    /// True for `+I` and `+U`: the row is added to the table.
    pub fn is_addition(self) -> bool {
        matches!(self, RowKind::Insert | RowKind::UpdateAfter)
    }
}

/// One change of a result table.
///
/// ```
/// use streamcore::changelog::{apply_to, Change};
/// let changes = vec![
///     Change::Insert(("a", 1)),
///     Change::UpdateBefore(("a", 1)),
///     Change::UpdateAfter(("a", 2)),
///     Change::Insert(("b", 7)),
///     Change::Delete(("b", 7)),
/// ];
/// assert_eq!(apply_to(changes), vec![("a", 2)]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Change<T> {
    /// A row was added (`+I`).
    Insert(T),
    /// A row is about to be replaced by the update-after that follows (`-U`).
    UpdateBefore(T),
    /// The row replacing the update-before just before (`+U`).
    UpdateAfter(T),
    /// A row emitted earlier was withdrawn (`-D`).
    Delete(T),
}

impl<T> Change<T> {
    /// A change of `kind` to `row`.
    pub fn new(kind: RowKind, row: T) -> Self {
        match kind {
            RowKind::Insert => Change::Insert(row),
            RowKind::UpdateBefore => Change::UpdateBefore(row),
            RowKind::UpdateAfter => Change::UpdateAfter(row),
            RowKind::Delete => Change::Delete(row),
        }
    }

    /// The kind of change.
    pub fn kind(&self) -> RowKind {
        match self {
            Change::Insert(_) => RowKind::Insert,
            Change::UpdateBefore(_) => RowKind::UpdateBefore,
            Change::UpdateAfter(_) => RowKind::UpdateAfter,
            Change::Delete(_) => RowKind::Delete,
        }
    }

    /// The row.
    pub fn row(&self) -> &T {
        match self {
            Change::Insert(r)
            | Change::UpdateBefore(r)
            | Change::UpdateAfter(r)
            | Change::Delete(r) => r,
        }
    }

    /// The row, by value.
    pub fn into_row(self) -> T {
        match self {
            Change::Insert(r)
            | Change::UpdateBefore(r)
            | Change::UpdateAfter(r)
            | Change::Delete(r) => r,
        }
    }

    /// True for inserts and update-afters: the row is added to the table.
    pub fn is_addition(&self) -> bool {
        self.kind().is_addition()
    }

    /// The same change of `f(row)`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Change<U> {
        let kind = self.kind();
        Change::new(kind, f(self.into_row()))
    }
}

/// The table a changelog leaves: each addition adds its row, each withdrawal removes one equal
/// row (a withdrawal of a row not in the table is ignored). The rows come out sorted.
pub fn apply_to<T: Ord + Clone>(changes: impl IntoIterator<Item = Change<T>>) -> Vec<T> {
    let mut table: std::collections::BTreeMap<T, u64> = std::collections::BTreeMap::new();
    for change in changes {
        let add = change.is_addition();
        let row = change.into_row();
        if add {
            *table.entry(row).or_insert(0) += 1;
        } else if let Some(n) = table.get_mut(&row) {
            *n -= 1;
            if *n == 0 {
                table.remove(&row);
            }
        }
    }
    table
        .into_iter()
        .flat_map(|(row, n)| std::iter::repeat_n(row, n as usize))
        .collect()
}
