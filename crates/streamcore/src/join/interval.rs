//! The interval join operator: per key, the records of each side buffered by event time; a new
//! record is paired with the other side's buffered records in its interval, then buffered
//! itself until the watermark guarantees no future record of the other side can pair with it.
//! The buffers are keyed state on the job's backend ([`KeyedMap`]: in memory, or cached in
//! front of the LSM tree); the cleanup timers stay in memory (rebuilt from the buffers on
//! restore).

use super::Either;
use crate::checkpoint::{StateRestore, StateSnapshot};
use crate::context::TaskContext;
use crate::data::{Data, StateData, StateKey};
use crate::error::Result;
use crate::event_time::EventTime;
use crate::operator::{Operator, Output};
use crate::state::{KeyedMap, TimerQueue};
use crate::time::Timestamp;
use std::collections::VecDeque;

/// Buffered records of one key, each side in event-time order (records mostly arrive in
/// order, so an insert is a push at the back and a prune pops from the front).
#[derive(serde::Serialize, serde::Deserialize)]
struct Buffers<A, B> {
    left: VecDeque<(i64, A)>,
    right: VecDeque<(i64, B)>,
    /// When this key's pending cleanup timer fires (`i64::MAX`: none pending). Every record
    /// expires at or after it, so one timer per key suffices, whatever its record count.
    wake: i64,
}

impl<A, B> Default for Buffers<A, B> {
    fn default() -> Self {
        Buffers {
            left: VecDeque::new(),
            right: VecDeque::new(),
            wake: i64::MAX,
        }
    }
}

impl<A, B> Buffers<A, B> {
    /// The earliest time one of the records can be pruned (`i64::MAX` when none is buffered).
    fn next_expiry(&self, lower: i64, upper: i64) -> i64 {
        let left = self
            .left
            .front()
            .map_or(i64::MAX, |(ts, _)| ts.saturating_sub(lower));
        let right = self
            .right
            .front()
            .map_or(i64::MAX, |(ts, _)| ts.saturating_add(upper));
        left.min(right)
    }
}

/// Inserts `(ts, record)` keeping `buffer` in time order (after records of the same time).
fn insert_in_order<T>(buffer: &mut VecDeque<(i64, T)>, ts: i64, record: T) {
    if buffer.back().is_none_or(|(last, _)| *last <= ts) {
        buffer.push_back((ts, record));
    } else {
        let at = buffer.partition_point(|(t, _)| *t <= ts);
        buffer.insert(at, (ts, record));
    }
}

/// The records of `buffer` with a time in `[from, to]`.
fn in_range<T>(buffer: &VecDeque<(i64, T)>, from: i64, to: i64) -> impl Iterator<Item = &T> {
    let start = buffer.partition_point(|(t, _)| *t < from);
    buffer
        .range(start..)
        .take_while(move |(t, _)| *t <= to)
        .map(|(_, record)| record)
}

/// Drops the records of `buffer` with a time at or before `bound`; returns how many.
fn prune_through<T>(buffer: &mut VecDeque<(i64, T)>, bound: i64) -> usize {
    let n = buffer.partition_point(|(t, _)| *t <= bound);
    buffer.drain(..n);
    n
}

pub(crate) struct IntervalJoinOperator<A, B, K, KF, F> {
    key_fn: KF,
    join: F,
    /// `a.ts - b.ts` must lie in `[lower, upper]`.
    lower: i64,
    upper: i64,
    /// Each key's buffers (set in `open`).
    state: Option<KeyedMap<K, Buffers<A, B>>>,
    /// When a key's buffers can be pruned: time → keys.
    cleanup: TimerQueue<K>,
    watermark: i64,
    buffered: u64,
}

impl<A, B, K, KF: Clone, F: Clone> Clone for IntervalJoinOperator<A, B, K, KF, F> {
    fn clone(&self) -> Self {
        IntervalJoinOperator::new(
            self.key_fn.clone(),
            self.join.clone(),
            self.lower,
            self.upper,
        )
    }
}

impl<A, B, K, KF, F> IntervalJoinOperator<A, B, K, KF, F> {
    pub(crate) fn new(key_fn: KF, join: F, lower: i64, upper: i64) -> Self {
        IntervalJoinOperator {
            key_fn,
            join,
            lower,
            upper,
            state: None,
            cleanup: TimerQueue::default(),
            watermark: i64::MIN,
            buffered: 0,
        }
    }
}

impl<A, B, K, O, KF, F> Operator for IntervalJoinOperator<A, B, K, KF, F>
where
    A: Data + EventTime + StateData,
    B: Data + EventTime + StateData,
    K: StateKey,
    O: Data,
    KF: Fn(&Either<A, B>) -> K + Clone + Send + 'static,
    F: FnMut(&A, &B) -> O + Clone + Send + 'static,
{
    fn open(&mut self, ctx: &mut TaskContext) -> Result<()> {
        self.state = Some(KeyedMap::open_incremental(ctx)?);
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut TaskContext, state: &mut StateSnapshot) -> Result<()> {
        self.state.as_mut().expect("opened").snapshot(ctx, state)?;
        state.put_operator(&self.watermark)
    }

    fn restore_state(&mut self, ctx: &mut TaskContext, state: &StateRestore) -> Result<()> {
        if let Some(wm) = state.operator_states::<i64>()?.into_iter().min() {
            self.watermark = wm;
        }
        let map = self.state.as_mut().expect("opened");
        map.restore(state)?;
        // The timers are not part of the checkpoint: each key's pending one (`wake`, at or
        // before its records' expiries) is registered again.
        let (cleanup, buffered) = (&mut self.cleanup, &mut self.buffered);
        map.retain(|key, buffers| {
            *buffered += (buffers.left.len() + buffers.right.len()) as u64;
            if buffers.wake != i64::MAX {
                cleanup.add(buffers.wake, key.clone());
            }
            true
        })?;
        self.publish(ctx);
        Ok(())
    }

    type In = Either<A, B>;
    type Out = O;

    fn process_batch(
        &mut self,
        batch: Vec<Either<A, B>>,
        ctx: &mut TaskContext,
        out: &mut Output<O>,
    ) -> Result<()> {
        let wm = self.watermark;
        let state = self.state.as_mut().expect("opened");
        for record in batch {
            let ts = record.event_time().millis();
            if ts <= wm {
                // As in Flink: a record behind the watermark may already have lost partners
                // to cleanup, so it is dropped (and counted) rather than joined partially.
                ctx.stats().late_records += 1;
                continue;
            }
            let key = (self.key_fn)(&record);
            let buffers = state.entry_or_insert_with(key.clone(), |_| Buffers::default())?;
            let expires = match record {
                Either::Left(a) => {
                    // Partners: b.ts ∈ [a.ts - upper, a.ts - lower].
                    let (from, to) = (ts.saturating_sub(self.upper), ts.saturating_sub(self.lower));
                    for b in in_range(&buffers.right, from, to) {
                        out.emit((self.join)(&a, b));
                    }
                    insert_in_order(&mut buffers.left, ts, a);
                    // No future b (b.ts > wm) pairs with a once a.ts - lower <= wm.
                    ts.saturating_sub(self.lower)
                }
                Either::Right(b) => {
                    // Partners: a.ts ∈ [b.ts + lower, b.ts + upper].
                    let (from, to) = (ts.saturating_add(self.lower), ts.saturating_add(self.upper));
                    for a in in_range(&buffers.left, from, to) {
                        out.emit((self.join)(a, &b));
                    }
                    insert_in_order(&mut buffers.right, ts, b);
                    ts.saturating_add(self.upper)
                }
            };
            self.buffered += 1;
            if expires < buffers.wake {
                buffers.wake = expires;
                self.cleanup.add(expires, key);
            }
        }
        self.publish(ctx);
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: Timestamp,
        ctx: &mut TaskContext,
        _out: &mut Output<O>,
    ) -> Result<Option<Timestamp>> {
        // Never backwards: after a restore the inputs start again from the beginning of time.
        let wm = watermark.millis().max(self.watermark);
        self.watermark = wm;
        let (lower, upper) = (self.lower, self.upper);
        let state = self.state.as_mut().expect("opened");
        while let Some(keys) = self.cleanup.pop_due(wm) {
            for key in keys {
                let Some(buffers) = state.get_mut(&key)? else {
                    continue;
                };
                if buffers.wake > wm {
                    // A stale entry: this key's pending timer is a later one.
                    continue;
                }
                // Left records with a.ts - lower <= wm, right ones with b.ts + upper <= wm.
                let dropped = prune_through(&mut buffers.left, wm.saturating_add(lower))
                    + prune_through(&mut buffers.right, wm.saturating_sub(upper));
                self.buffered -= dropped as u64;
                buffers.wake = buffers.next_expiry(lower, upper);
                if buffers.wake == i64::MAX {
                    state.remove(&key)?;
                } else {
                    self.cleanup.add(buffers.wake, key);
                }
            }
        }
        self.publish(ctx);
        Ok(Some(watermark))
    }
}

impl<A, B, K, KF, F> IntervalJoinOperator<A, B, K, KF, F> {
    fn publish(&self, ctx: &mut TaskContext) {
        let stats = ctx.stats();
        stats.state_keys = self.state.as_ref().map_or(0, |s| s.len()) as u64;
        stats.state_bytes =
            self.buffered * (std::mem::size_of::<A>().max(std::mem::size_of::<B>()) as u64 + 16);
    }
}
