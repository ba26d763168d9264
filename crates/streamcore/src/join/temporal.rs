//! The event-time temporal join: probe records join the version of a changelog table (keyed by
//! primary key, versioned by event time) that was current at the probe's own timestamp.
//! Probes wait until the watermark passes them — only then are all versions up to their time
//! known — and table versions older than the one current at the watermark are dropped.

use super::{Change, Either};
use crate::checkpoint::{StateRestore, StateSnapshot};
use crate::context::TaskContext;
use crate::data::{Data, StateData, StateKey};
use crate::error::Result;
use crate::event_time::EventTime;
use crate::metrics::Sampler;
use crate::operator::{Operator, Output};
use crate::state::snapshot_by_key_group;
use crate::state::TimerQueue;
use crate::time::Timestamp;
use std::collections::BTreeMap;

type KeyMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyState<A, B> {
    /// Table versions by event time; `None` is a deletion.
    versions: BTreeMap<i64, Option<B>>,
    /// Probes waiting for the watermark, by event time.
    probes: BTreeMap<i64, Vec<A>>,
}

impl<A, B> Default for KeyState<A, B> {
    fn default() -> Self {
        KeyState {
            versions: BTreeMap::new(),
            probes: BTreeMap::new(),
        }
    }
}

pub(crate) struct TemporalJoinOperator<A, B, K, KF, F> {
    key_fn: KF,
    join: F,
    state: KeyMap<K, KeyState<A, B>>,
    /// Keys with probes due at a time.
    due: TimerQueue<K>,
    watermark: i64,
    sampler: Sampler,
    pruner: Sampler,
}

impl<A, B, K, KF: Clone, F: Clone> Clone for TemporalJoinOperator<A, B, K, KF, F> {
    fn clone(&self) -> Self {
        TemporalJoinOperator::new(self.key_fn.clone(), self.join.clone())
    }
}

impl<A, B, K, KF, F> TemporalJoinOperator<A, B, K, KF, F> {
    pub(crate) fn new(key_fn: KF, join: F) -> Self {
        TemporalJoinOperator {
            key_fn,
            join,
            state: KeyMap::default(),
            due: TimerQueue::default(),
            watermark: i64::MIN,
            sampler: Sampler::default(),
            pruner: Sampler::default(),
        }
    }
}

impl<A, B, K, O, KF, F> Operator for TemporalJoinOperator<A, B, K, KF, F>
where
    A: Data + EventTime + StateData,
    B: Data + EventTime + StateData,
    K: StateKey,
    O: Data,
    KF: Fn(&Either<A, Change<B>>) -> K + Clone + Send + 'static,
    F: FnMut(&A, Option<&B>) -> O + Clone + Send + 'static,
{
    fn snapshot_state(&mut self, ctx: &mut TaskContext, state: &mut StateSnapshot) -> Result<()> {
        snapshot_by_key_group(self.state.iter(), ctx.info().key_groups, state)?;
        state.put_operator(&self.watermark)
    }

    fn restore_state(&mut self, ctx: &mut TaskContext, state: &StateRestore) -> Result<()> {
        if let Some(wm) = state.operator_states::<i64>()?.into_iter().min() {
            self.watermark = wm;
        }
        for group in state.groups::<Vec<(K, KeyState<A, B>)>>() {
            for (key, key_state) in group?.1 {
                for &ts in key_state.probes.keys() {
                    self.due.add(ts, key.clone());
                }
                self.state.insert(key, key_state);
            }
        }
        self.publish(ctx, false);
        Ok(())
    }

    type In = Either<A, Change<B>>;
    type Out = O;

    fn process_batch(
        &mut self,
        batch: Vec<Self::In>,
        ctx: &mut TaskContext,
        _out: &mut Output<O>,
    ) -> Result<()> {
        for record in batch {
            let key = (self.key_fn)(&record);
            match record {
                Either::Left(probe) => {
                    let ts = probe.event_time().millis();
                    if ts <= self.watermark {
                        // Versions as of that time may already be pruned: late, dropped.
                        ctx.stats().late_records += 1;
                        continue;
                    }
                    let state = self.state.entry(key.clone()).or_default();
                    state.probes.entry(ts).or_default().push(probe);
                    self.due.add(ts, key);
                }
                Either::Right(change) => {
                    let (ts, version) = match change {
                        Change::Insert(b) | Change::UpdateAfter(b) => {
                            (b.event_time().millis(), Some(b))
                        }
                        Change::Delete(b) => (b.event_time().millis(), None),
                        // The update-after that follows carries the new version.
                        Change::UpdateBefore(_) => continue,
                    };
                    self.state
                        .entry(key)
                        .or_default()
                        .versions
                        .insert(ts, version);
                }
            }
        }
        self.publish(ctx, false);
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: Timestamp,
        ctx: &mut TaskContext,
        out: &mut Output<O>,
    ) -> Result<Option<Timestamp>> {
        // Never backwards: after a restore the inputs start again from the beginning of time.
        let wm = watermark.millis().max(self.watermark);
        self.watermark = wm;
        while let Some(keys) = self.due.pop_due(wm) {
            for key in keys {
                let Some(state) = self.state.get_mut(&key) else {
                    continue;
                };
                let later = state.probes.split_off(&wm.saturating_add(1));
                for (ts, probes) in std::mem::replace(&mut state.probes, later) {
                    let version = state
                        .versions
                        .range(..=ts)
                        .next_back()
                        .and_then(|(_, v)| v.as_ref());
                    for probe in &probes {
                        out.emit((self.join)(probe, version));
                    }
                }
            }
        }
        // Versions older than the one current at the watermark can no longer be seen. Pruning
        // walks every key, so it runs on the sampler's beat (every 50 ms), not per watermark.
        let end = watermark == Timestamp::MAX;
        if self.pruner.due(end) {
            for state in self.state.values_mut() {
                if let Some((&current, _)) = state.versions.range(..=wm).next_back() {
                    state.versions = state.versions.split_off(&current);
                }
            }
        }
        self.publish(ctx, end);
        Ok(Some(watermark))
    }
}

impl<A, B, K, KF, F> TemporalJoinOperator<A, B, K, KF, F> {
    fn publish(&mut self, ctx: &mut TaskContext, force: bool) {
        if !self.sampler.due(force) {
            return;
        }
        let stats = ctx.stats();
        stats.state_keys = self.state.len() as u64;
        let versions: usize = self.state.values().map(|s| s.versions.len()).sum();
        stats.state_bytes = (versions * (std::mem::size_of::<B>() + 24)) as u64;
    }
}
