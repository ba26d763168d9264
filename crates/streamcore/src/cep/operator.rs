//! The CEP operator: per key, events buffered by event time until the watermark passes them,
//! then fed to the key's matcher in order. Each key's pending events and partial matches are
//! keyed state on the job's backend ([`KeyedMap`]: in memory, or cached in front of the LSM
//! tree); the timers stay in memory (rebuilt on restore).

use super::nfa::{KeyMatcher, Outcome};
use super::{Match, Pattern};
use crate::checkpoint::{StateRestore, StateSnapshot};
use crate::context::TaskContext;
use crate::data::{Data, StateData, StateKey};
use crate::error::Result;
use crate::event_time::EventTime;
use crate::metrics::Sampler;
use crate::operator::{Operator, Output, OutputTag};
use crate::state::{KeyedMap, TimerQueue};
use crate::time::Timestamp;

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyState<T> {
    /// Events not yet passed by the watermark, in arrival order: (time, arrival, event).
    pending: Vec<(i64, u64, T)>,
    /// Whether `pending` is in (time, arrival) order — true for in-order input, so the sort
    /// before feeding is skipped.
    sorted: bool,
    /// The time of the timer this key has registered, if any (one at a time).
    timer: Option<i64>,
    matcher: KeyMatcher<T>,
}

impl<T> Default for KeyState<T> {
    fn default() -> Self {
        KeyState {
            pending: Vec::new(),
            sorted: true,
            timer: None,
            matcher: KeyMatcher::default(),
        }
    }
}

pub(crate) struct CepOperator<T, K, KF> {
    key_fn: KF,
    pattern: Pattern<T>,
    timeouts: Option<OutputTag<Match<T>>>,
    /// Each key's pending events and matcher (set in `open`).
    state: Option<KeyedMap<K, KeyState<T>>>,
    /// Keys with something to do at a time: pending events to feed, or a deadline.
    timers: TimerQueue<K>,
    watermark: i64,
    sampler: Sampler,
    arrivals: u64,
    /// Keys holding back complete matches (see `KeyMatcher::release`): the watermark
    /// forwarded stays behind their last events, so the matches are not late downstream.
    holding: hashbrown::HashSet<K, foldhash::fast::RandomState>,
    /// The watermark forwarded last.
    forwarded: i64,
}

impl<T: Clone, K, KF: Clone> Clone for CepOperator<T, K, KF> {
    fn clone(&self) -> Self {
        CepOperator::new(
            self.key_fn.clone(),
            self.pattern.clone(),
            self.timeouts.clone(),
        )
    }
}

impl<T, K, KF> CepOperator<T, K, KF> {
    pub(crate) fn new(
        key_fn: KF,
        pattern: Pattern<T>,
        timeouts: Option<OutputTag<Match<T>>>,
    ) -> Self {
        CepOperator {
            key_fn,
            pattern,
            timeouts,
            state: None,
            timers: TimerQueue::default(),
            watermark: i64::MIN,
            sampler: Sampler::default(),
            arrivals: 0,
            holding: Default::default(),
            forwarded: i64::MIN,
        }
    }
}

impl<T, K, KF> Operator for CepOperator<T, K, KF>
where
    T: Data + EventTime + StateData,
    K: StateKey,
    KF: Fn(&T) -> K + Clone + Send + 'static,
{
    fn open(&mut self, ctx: &mut TaskContext) -> Result<()> {
        self.state = Some(KeyedMap::open_incremental(ctx)?);
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut TaskContext, state: &mut StateSnapshot) -> Result<()> {
        self.state.as_mut().expect("opened").snapshot(ctx, state)?;
        state.put_operator(&(self.watermark, self.arrivals))
    }

    fn restore_state(&mut self, _: &mut TaskContext, state: &StateRestore) -> Result<()> {
        let old = state.operator_states::<(i64, u64)>()?;
        if let Some(wm) = old.iter().map(|o| o.0).min() {
            self.watermark = wm;
        }
        // Arrival numbers order events of one time; keep them increasing past every old one.
        self.arrivals = old.iter().map(|o| o.1).max().unwrap_or(0);
        let map = self.state.as_mut().expect("opened");
        map.restore(state)?;
        let (timers, holding) = (&mut self.timers, &mut self.holding);
        map.retain(|key, key_state| {
            if let Some(t) = key_state.timer {
                timers.add(t, key.clone());
            }
            if key_state.matcher.is_holding() {
                holding.insert(key.clone());
            }
            true
        })?;
        Ok(())
    }

    type In = T;
    type Out = Match<T>;

    fn process_batch(
        &mut self,
        batch: Vec<T>,
        ctx: &mut TaskContext,
        _out: &mut Output<Match<T>>,
    ) -> Result<()> {
        let map = self.state.as_mut().expect("opened");
        for event in batch {
            let ts = event.event_time().millis();
            if ts <= self.watermark {
                // Its place in the order has passed: matching it now would break the promise
                // that out-of-order input matches like sorted input.
                ctx.stats().late_records += 1;
                continue;
            }
            let key = (self.key_fn)(&event);
            self.arrivals += 1;
            let state = map.entry_or_insert_with(key.clone(), |_| KeyState::default())?;
            if state.pending.last().is_some_and(|last| last.0 > ts) {
                state.sorted = false;
            }
            state.pending.push((ts, self.arrivals, event));
            if state.timer.is_none_or(|t| t > ts) {
                state.timer = Some(ts);
                self.timers.add(ts, key);
            }
        }
        self.publish(ctx, false);
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: Timestamp,
        ctx: &mut TaskContext,
        out: &mut Output<Match<T>>,
    ) -> Result<Option<Timestamp>> {
        // Never backwards: after a restore the inputs start again from the beginning of time.
        let wm = watermark.millis().max(self.watermark);
        self.watermark = wm;
        let want_timeouts = self.timeouts.is_some();
        let map = self.state.as_mut().expect("opened");
        while let Some(keys) = self.timers.pop_due(wm) {
            for key in keys {
                let Some(state) = map.get_mut(&key)? else {
                    continue;
                };
                if state.timer.is_some_and(|t| t > wm) {
                    continue; // a stale entry: the key's timer moved
                }
                state.timer = None;
                let mut outcome = Outcome::default();
                if !state.sorted {
                    state.pending.sort_by_key(|p| (p.0, p.1));
                    state.sorted = true;
                }
                let due = state.pending.partition_point(|p| p.0 <= wm);
                for (ts, _, event) in state.pending.drain(..due) {
                    state
                        .matcher
                        .feed(event, ts, &self.pattern, &mut outcome, want_timeouts);
                }
                // Nothing at or before the watermark will come: runs past their deadline end.
                state
                    .matcher
                    .expire(wm, &self.pattern, &mut outcome, want_timeouts);
                let next_pending = state.pending.first().map(|p| p.0);
                let deadline = state
                    .matcher
                    .next_deadline(self.pattern.within)
                    .map(|d| d.saturating_add(1));
                if let Some(t) = [next_pending, deadline].into_iter().flatten().min() {
                    state.timer = Some(t);
                    self.timers.add(t, key.clone());
                }
                for m in outcome.matches {
                    out.emit(m);
                }
                if let Some(tag) = &self.timeouts {
                    for t in outcome.timeouts {
                        out.side(tag, t);
                    }
                }
                if state.matcher.is_holding() {
                    self.holding.insert(key.clone());
                } else {
                    self.holding.remove(&key);
                }
                if state.matcher.is_empty() && state.pending.is_empty() {
                    map.remove(&key)?;
                }
            }
        }
        if watermark == Timestamp::MAX {
            // The end of the input: matches held back for partial matches that can no longer
            // complete are final (only keys holding some back have any).
            let holding: Vec<K> = self.holding.drain().collect();
            for key in holding {
                let Some(state) = map.get_mut(&key)? else {
                    continue;
                };
                let mut outcome = Outcome::default();
                state.matcher.finish(&self.pattern, &mut outcome);
                for m in outcome.matches {
                    out.emit(m);
                }
                if state.matcher.is_empty() && state.pending.is_empty() {
                    map.remove(&key)?;
                }
            }
        }
        // Held-back matches will come out with the time of their last event: keep the
        // watermark below it.
        let mut held: Option<i64> = None;
        for key in &self.holding {
            if let Some(t) = map.get_mut(key)?.and_then(|s| s.matcher.held_since()) {
                held = Some(held.map_or(t, |h| h.min(t)));
            }
        }
        self.publish(ctx, watermark == Timestamp::MAX);
        let forward = match held {
            Some(t) => wm.min(t.saturating_sub(1)),
            None => wm,
        };
        if forward <= self.forwarded {
            return Ok(None);
        }
        self.forwarded = forward;
        Ok(Some(if forward == wm {
            watermark
        } else {
            Timestamp(forward)
        }))
    }
}

impl<T, K, KF> CepOperator<T, K, KF>
where
    T: Data,
{
    fn publish(&mut self, ctx: &mut TaskContext, force: bool)
    where
        K: StateKey,
        T: StateData,
    {
        if !self.sampler.due(force) {
            return;
        }
        let Some(map) = self.state.as_mut() else {
            return;
        };
        // Events held by the keys in memory (on the LSM backend, the cached keys').
        let mut events = 0;
        map.update_in_memory(|_, s| {
            events += s.pending.len() + s.matcher.buffered();
            false
        });
        let stats = ctx.stats();
        stats.state_keys = map.len() as u64;
        stats.state_bytes = (events * (std::mem::size_of::<T>() + 16)) as u64;
    }
}
