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
use std::collections::BTreeMap;

/// Buffered records of one key: by event time, each side.
#[derive(serde::Serialize, serde::Deserialize)]
struct Buffers<A, B> {
    left: BTreeMap<i64, Vec<A>>,
    right: BTreeMap<i64, Vec<B>>,
}

impl<A, B> Default for Buffers<A, B> {
    fn default() -> Self {
        Buffers {
            left: BTreeMap::new(),
            right: BTreeMap::new(),
        }
    }
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
        // The cleanup times the records registered when they arrived.
        let (cleanup, buffered) = (&mut self.cleanup, &mut self.buffered);
        let (lower, upper) = (self.lower, self.upper);
        map.retain(|key, buffers| {
            for (&ts, records) in &buffers.left {
                *buffered += records.len() as u64;
                cleanup.add(ts.saturating_sub(lower), key.clone());
            }
            for (&ts, records) in &buffers.right {
                *buffered += records.len() as u64;
                cleanup.add(ts.saturating_add(upper), key.clone());
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
                    for (_, bs) in buffers
                        .right
                        .range(ts.saturating_sub(self.upper)..=ts.saturating_sub(self.lower))
                    {
                        for b in bs {
                            out.emit((self.join)(&a, b));
                        }
                    }
                    buffers.left.entry(ts).or_default().push(a);
                    // No future b (b.ts > wm) pairs with a once a.ts - lower <= wm.
                    ts.saturating_sub(self.lower)
                }
                Either::Right(b) => {
                    // Partners: a.ts ∈ [b.ts + lower, b.ts + upper].
                    for (_, as_) in buffers
                        .left
                        .range(ts.saturating_add(self.lower)..=ts.saturating_add(self.upper))
                    {
                        for a in as_ {
                            out.emit((self.join)(a, &b));
                        }
                    }
                    buffers.right.entry(ts).or_default().push(b);
                    ts.saturating_add(self.upper)
                }
            };
            self.buffered += 1;
            self.cleanup.add(expires, key);
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
                // Left records with a.ts - lower <= wm, right ones with b.ts + upper <= wm.
                let keep_left = buffers
                    .left
                    .split_off(&(wm.saturating_add(lower).saturating_add(1)));
                let dropped: usize = buffers.left.values().map(Vec::len).sum();
                buffers.left = keep_left;
                let keep_right = buffers
                    .right
                    .split_off(&(wm.saturating_sub(upper).saturating_add(1)));
                let dropped = dropped + buffers.right.values().map(Vec::len).sum::<usize>();
                buffers.right = keep_right;
                self.buffered -= dropped as u64;
                if buffers.left.is_empty() && buffers.right.is_empty() {
                    state.remove(&key)?;
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
