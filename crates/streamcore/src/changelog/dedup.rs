//! [`Deduplicate`]: the first or the last row per key.

use super::Change;
use crate::data::{Data, Key, StateData};
use crate::operator::Output;
use crate::state::{KeyedContext, KeyedProcessFunction, TimeDomain};
use crate::time::Timestamp;
use std::marker::PhantomData;

/// Which row of a key a [`Deduplicate`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The first row (by arrival, or the earliest event time): the output only inserts.
    First,
    /// The last row (by arrival, or the latest event time): each new one replaces it (`-U`/`+U`).
    Last,
}

/// A row's event time.
type TimeOf<T> = fn(&T) -> Timestamp;

/// Keeps one row per key — SQL's `ROW_NUMBER() OVER (PARTITION BY key ORDER BY time) = 1`.
///
/// In arrival order ([`crate::KeyedStream::deduplicate`]) or in event-time order
/// ([`crate::KeyedStream::deduplicate_by_time`]: a later-arriving row with an earlier time
/// does not replace the last one; with equal times the later arrival wins for `Last`, the
/// earlier for `First`). Keeping the first row emits an append-only stream of inserts
/// (arrival order) — or, in event-time order, replaces a first row by an earlier one.
pub struct Deduplicate<T> {
    keep: Keep,
    /// The event time of a row, when rows are ordered by it (else by arrival).
    time: Option<fn(&T) -> Timestamp>,
    /// A key is forgotten once the watermark passes the event time of its first row plus
    /// this many ms (its rows can no longer come), with the row's event time.
    expire: Option<(TimeOf<T>, i64)>,
    /// A replaced row is withdrawn (`-U`) before its successor's `+U`.
    update_before: bool,
    _t: PhantomData<fn(T)>,
}

impl<T> Clone for Deduplicate<T> {
    fn clone(&self) -> Self {
        Deduplicate {
            keep: self.keep,
            time: self.time,
            expire: self.expire,
            update_before: self.update_before,
            _t: PhantomData,
        }
    }
}

impl<T> Deduplicate<T> {
    pub(crate) fn new(keep: Keep, time: Option<fn(&T) -> Timestamp>) -> Self {
        Deduplicate {
            keep,
            time,
            expire: None,
            update_before: true,
            _t: PhantomData,
        }
    }

    /// Whether a replaced row is withdrawn (`-U`) before its successor's `+U`.
    pub(crate) fn with_update_before(mut self, on: bool) -> Self {
        self.update_before = on;
        self
    }

    /// Forgets a key once the watermark passes `time(first row) + after_ms`.
    pub(crate) fn expiring(mut self, time: TimeOf<T>, after_ms: i64) -> Self {
        self.expire = Some((time, after_ms));
        self
    }

    /// Whether this keeper's output can update rows it emitted.
    pub(crate) fn updates(&self) -> bool {
        self.keep == Keep::Last || self.time.is_some()
    }
}

impl<K: Key + StateData, T: Data + StateData + PartialEq> KeyedProcessFunction<K, T>
    for Deduplicate<T>
{
    /// The row kept.
    type State = Option<T>;
    type Out = Change<T>;
    fn process(
        &mut self,
        row: T,
        ctx: &mut KeyedContext<'_, K, Option<T>>,
        out: &mut Output<Change<T>>,
    ) {
        let kept = ctx.state();
        let replace = match (&*kept, self.keep, self.time) {
            (None, _, _) => true,
            (Some(_), Keep::First, None) => false,
            (Some(k), Keep::First, Some(time)) => time(&row) < time(k),
            (Some(_), Keep::Last, None) => true,
            (Some(k), Keep::Last, Some(time)) => time(&row) >= time(k),
        };
        if !replace {
            return;
        }
        match kept.take() {
            None => {
                if let Some((time, after)) = self.expire {
                    let at = time(&row).0.saturating_add(after).saturating_add(1);
                    ctx.register_event_time_timer(Timestamp(at));
                }
                out.emit(Change::Insert(row.clone()));
            }
            Some(old) if old == row => {}
            Some(old) => {
                if self.update_before {
                    out.emit(Change::UpdateBefore(old));
                }
                out.emit(Change::UpdateAfter(row.clone()));
            }
        }
        *ctx.state() = Some(row);
    }

    fn on_timer(
        &mut self,
        _time: Timestamp,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_, K, Option<T>>,
        _out: &mut Output<Change<T>>,
    ) {
        // Only an expiring deduplication registers timers.
        ctx.clear_state();
    }
}
