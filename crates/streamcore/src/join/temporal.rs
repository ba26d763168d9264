//! The event-time temporal join: probe records join the version of a changelog table (keyed by
//! primary key, versioned by event time) that was current at the probe's own timestamp.
//! Probes wait until the watermark passes them — only then are all versions up to their time
//! known — and table versions older than the one current at the watermark are dropped.
//!
//! Each key's versions and waiting probes are keyed state on the job's backend ([`KeyedMap`]:
//! in memory, or cached in front of the LSM tree); the probes' timers stay in memory (rebuilt
//! on restore). Old versions are dropped from a key's state whenever the key is touched, and
//! on a regular beat from every key held in memory (on the LSM backend, keys in the tree are
//! trimmed when next read).

use super::{Change, Either, LateFrom, LateOutput};
use crate::checkpoint::{StateRestore, StateSnapshot};
use crate::context::TaskContext;
use crate::data::{Data, StateData, StateKey};
use crate::error::Result;
use crate::event_time::EventTime;
use crate::metrics::Sampler;
use crate::operator::{Operator, Output};
use crate::state::{KeyedMap, TimerQueue};
use crate::time::Timestamp;
use std::collections::BTreeMap;

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyState<A, B> {
    /// Table versions by event time; `None` is a deletion.
    versions: BTreeMap<i64, Option<B>>,
    /// Probes waiting for the watermark, by event time.
    probes: BTreeMap<i64, Vec<A>>,
}

impl<A, B> KeyState<A, B> {
    /// Drops the versions older than the one current at `watermark` (no probe can see them any
    /// more: probes at or behind the watermark are late); whether any went.
    fn prune(&mut self, watermark: i64) -> bool {
        match self.versions.range(..=watermark).next_back() {
            Some((&current, _)) if self.versions.keys().next() != Some(&current) => {
                self.versions = self.versions.split_off(&current);
                true
            }
            _ => false,
        }
    }
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
    /// Each key's versions and waiting probes (set in `open`).
    state: Option<KeyedMap<K, KeyState<A, B>>>,
    /// Table versions held, as of the last pruning sweep (for the state metrics).
    versions: usize,
    /// Keys with probes due at a time.
    due: TimerQueue<K>,
    watermark: i64,
    sampler: Sampler,
    pruner: Sampler,
    /// Where late probes go (else they are dropped); counted either way.
    late: LateOutput<A, Change<B>>,
}

impl<A, B, K, KF: Clone, F: Clone> Clone for TemporalJoinOperator<A, B, K, KF, F> {
    fn clone(&self) -> Self {
        TemporalJoinOperator::new(self.key_fn.clone(), self.join.clone(), self.late.clone())
    }
}

impl<A, B, K, KF, F> TemporalJoinOperator<A, B, K, KF, F> {
    pub(crate) fn new(key_fn: KF, join: F, late: LateOutput<A, Change<B>>) -> Self {
        TemporalJoinOperator {
            late,
            key_fn,
            join,
            state: None,
            versions: 0,
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
        let (due, versions) = (&mut self.due, &mut self.versions);
        map.retain(|key, key_state| {
            for &ts in key_state.probes.keys() {
                due.add(ts, key.clone());
            }
            *versions += key_state.versions.len();
            true
        })?;
        self.publish(ctx, false);
        Ok(())
    }

    type In = Either<A, Change<B>>;
    type Out = O;

    fn process_batch(
        &mut self,
        batch: Vec<Self::In>,
        ctx: &mut TaskContext,
        out: &mut Output<O>,
    ) -> Result<()> {
        let map = self.state.as_mut().expect("opened");
        for record in batch {
            let key = (self.key_fn)(&record);
            match record {
                Either::Left(probe) => {
                    let ts = probe.event_time().millis();
                    if ts <= self.watermark {
                        // Versions as of that time may already be pruned: late — to the late
                        // output if there is one, else dropped.
                        let stats = ctx.stats();
                        stats.late_records += 1;
                        if let Some((tag, LateFrom::Both | LateFrom::Left)) = &self.late {
                            stats.late_redirected += 1;
                            out.side(tag, Either::Left(probe));
                        }
                        continue;
                    }
                    let state = map.entry_or_insert_with(key.clone(), |_| KeyState::default())?;
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
                    let state = map.entry_or_insert_with(key, |_| KeyState::default())?;
                    if state.versions.insert(ts, version).is_none() {
                        self.versions += 1;
                    }
                    state.prune(self.watermark);
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
        let map = self.state.as_mut().expect("opened");
        while let Some(keys) = self.due.pop_due(wm) {
            for key in keys {
                let Some(state) = map.get_mut(&key)? else {
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
                state.prune(wm);
            }
        }
        // Versions older than the one current at the watermark can no longer be seen. Pruning
        // walks every key, so it runs on the sampler's beat (every 50 ms), not per watermark.
        let end = watermark == Timestamp::MAX;
        if self.pruner.due(end) {
            let mut versions = 0;
            map.update_in_memory(|_, state| {
                let pruned = state.prune(wm);
                versions += state.versions.len();
                pruned
            });
            self.versions = versions;
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
        stats.state_keys = self.state.as_ref().map_or(0, |s| s.len()) as u64;
        stats.state_bytes = (self.versions * (std::mem::size_of::<B>() + 24)) as u64;
    }
}
