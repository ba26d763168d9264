//! Keyed process functions: user code with per-key state, event-time and processing-time
//! timers, and optional state TTL — the general-purpose stateful operator.

use super::key_group;
use super::KeyedMap;
use crate::checkpoint::{StateRestore, StateSnapshot};
use crate::context::TaskContext;
use crate::data::{Data, Key};
use crate::error::Result;
use crate::operator::{Operator, Output};
use crate::time::Timestamp;
use std::collections::BTreeMap;
use std::marker::PhantomData;

/// Which clock a timer follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeDomain {
    /// Fires when the watermark reaches the timer's time (all pending ones at the end of a
    /// bounded input).
    EventTime,
    /// Fires when the wall clock reaches the timer's time (checked every ~10 ms).
    ProcessingTime,
}

/// A user function with state per key and timers.
///
/// ```
/// use streamcore::{Job, JobConfig, Output, Timestamp};
/// use streamcore::state::{KeyedContext, KeyedProcessFunction, TimeDomain, ValueState};
///
/// /// Emits each user's total once no record came for 1 s of event time.
/// #[derive(Clone)]
/// struct TotalAfterQuiet;
///
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct Total { sum: ValueState<i64>, timer: ValueState<Timestamp> }
///
/// impl KeyedProcessFunction<char, (Timestamp, char, i64)> for TotalAfterQuiet {
///     type State = Total;
///     type Out = (char, i64);
///     fn process(&mut self, r: (Timestamp, char, i64), ctx: &mut KeyedContext<'_, char, Total>, _out: &mut Output<Self::Out>) {
///         *ctx.state().sum.get_or_insert_with(|| 0) += r.2;
///         if let Some(old) = ctx.state().timer.clear() {
///             ctx.delete_event_time_timer(old);
///         }
///         let at = Timestamp(r.0.millis() + 1000);
///         ctx.state().timer.set(at);
///         ctx.register_event_time_timer(at);
///     }
///     fn on_timer(&mut self, _t: Timestamp, _d: TimeDomain, ctx: &mut KeyedContext<'_, char, Total>, out: &mut Output<Self::Out>) {
///         let key = *ctx.key();
///         out.emit((key, ctx.state().sum.get().copied().unwrap_or(0)));
///         ctx.clear_state();
///     }
/// }
///
/// let mut job = Job::new("quiet");
/// let out = job
///     .from_vec("tx", vec![(Timestamp(0), 'a', 5), (Timestamp(500), 'a', 7), (Timestamp(5000), 'a', 1)])
///     .key_by(|r| r.1)
///     .process(TotalAfterQuiet)
///     .collect();
/// job.run(JobConfig::default().parallelism(1)).unwrap();
/// // No watermarks: every timer fires at the end of the input, so one total.
/// assert_eq!(out.take(), vec![('a', 13)]);
/// ```
pub trait KeyedProcessFunction<K, T>: Clone + Send + 'static {
    /// The state kept per key, created with `Default` on a key's first record.
    /// Serializable (derive `Serialize` and `Deserialize`): it goes into checkpoints.
    type State: Default + crate::data::StateData;
    /// The output record type.
    type Out: Data;

    /// Called for each record.
    fn process(
        &mut self,
        record: T,
        ctx: &mut KeyedContext<'_, K, Self::State>,
        out: &mut Output<Self::Out>,
    );

    /// Called when a timer of this key is due.
    fn on_timer(
        &mut self,
        _time: Timestamp,
        _domain: TimeDomain,
        _ctx: &mut KeyedContext<'_, K, Self::State>,
        _out: &mut Output<Self::Out>,
    ) {
    }

    /// The keys whose output this function held back while processing the batch just
    /// processed (a function that folds a batch before emitting, as the SQL group aggregate
    /// does); after each batch the operator calls [`KeyedProcessFunction::finish_key`] for
    /// each. Default: none.
    fn take_held_keys(&mut self) -> Vec<K> {
        Vec::new()
    }

    /// Emits what was held back for the current key (see
    /// [`KeyedProcessFunction::take_held_keys`]).
    fn finish_key(
        &mut self,
        _ctx: &mut KeyedContext<'_, K, Self::State>,
        _out: &mut Output<Self::Out>,
    ) {
    }
}

type KeySet<K> = hashbrown::HashSet<K, foldhash::fast::RandomState>;

/// Pending timers of one domain: by time, each time with the keys due then (deduplicated).
struct Timers<K> {
    by_time: BTreeMap<i64, KeySet<K>>,
    /// Number of (time, key) timers, kept as they are added and removed (the state-size metric
    /// reads it after every batch; counting the map each time cost O(timers) per batch).
    count: usize,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            by_time: BTreeMap::new(),
            count: 0,
        }
    }
}

impl<K: Key> Timers<K> {
    fn add(&mut self, t: Timestamp, key: &K) {
        if self
            .by_time
            .entry(t.millis())
            .or_default()
            .insert(key.clone())
        {
            self.count += 1;
        }
    }
    fn delete(&mut self, t: Timestamp, key: &K) {
        if let Some(keys) = self.by_time.get_mut(&t.millis()) {
            if keys.remove(key) {
                self.count -= 1;
            }
            if keys.is_empty() {
                self.by_time.remove(&t.millis());
            }
        }
    }
    fn pop_due(&mut self, now: i64) -> Option<(i64, KeySet<K>)> {
        let entry = self.by_time.first_entry()?;
        let (t, keys) = (*entry.key() <= now).then(|| entry.remove_entry())?;
        self.count -= keys.len();
        Some((t, keys))
    }
    fn len(&self) -> usize {
        self.count
    }
}

/// What a keyed process function sees of its key: the key, its state, the timers, the clocks.
pub struct KeyedContext<'a, K, S> {
    key: &'a K,
    state: &'a mut S,
    event_timers: &'a mut Timers<K>,
    processing_timers: &'a mut Timers<K>,
    watermark: Timestamp,
    cleared: bool,
    late: &'a mut u64,
    redirected: &'a mut u64,
}

impl<K: Key, S: Default> KeyedContext<'_, K, S> {
    /// Counts a record the function dropped as late (behind the watermark): the operator's
    /// `late_records` metric.
    pub fn count_late(&mut self) {
        *self.late += 1;
    }
    /// Counts a late record the function sent to a side output instead of dropping it: the
    /// operator's `late_records` and `late_redirected` metrics.
    pub fn count_late_redirected(&mut self) {
        *self.late += 1;
        *self.redirected += 1;
    }
    /// The current key.
    pub fn key(&self) -> &K {
        self.key
    }
    /// The current key's state.
    pub fn state(&mut self) -> &mut S {
        self.state
    }
    /// Drops the current key's state once this call returns (its timers stay).
    pub fn clear_state(&mut self) {
        self.cleared = true;
        *self.state = S::default();
    }
    /// The operator's current watermark.
    pub fn watermark(&self) -> Timestamp {
        self.watermark
    }
    /// The wall-clock time.
    pub fn processing_time(&self) -> Timestamp {
        Timestamp::now()
    }
    /// Calls `on_timer` for this key once the watermark reaches `t` (at most once per time).
    pub fn register_event_time_timer(&mut self, t: Timestamp) {
        self.event_timers.add(t, self.key)
    }
    /// Cancels an event-time timer of this key.
    pub fn delete_event_time_timer(&mut self, t: Timestamp) {
        self.event_timers.delete(t, self.key)
    }
    /// Calls `on_timer` for this key once the wall clock reaches `t`.
    pub fn register_processing_time_timer(&mut self, t: Timestamp) {
        self.processing_timers.add(t, self.key)
    }
    /// Cancels a processing-time timer of this key.
    pub fn delete_processing_time_timer(&mut self, t: Timestamp) {
        self.processing_timers.delete(t, self.key)
    }
}

/// A key's state, with when it was last touched (for TTL).
#[derive(serde::Serialize, serde::Deserialize)]
struct Slot<S> {
    state: S,
    touched: i64,
}

pub(crate) struct KeyedProcessOperator<T, K, KF, P: KeyedProcessFunction<K, T>> {
    key_fn: KF,
    func: P,
    ttl_ms: Option<i64>,
    state: Option<KeyedMap<K, Slot<P::State>>>,
    event_timers: Timers<K>,
    processing_timers: Timers<K>,
    watermark: Timestamp,
    last_sweep: i64,
    /// Late records counted by the function since the metrics were last published.
    late: u64,
    /// Of those, the records sent to a side output.
    redirected: u64,
    _t: PhantomData<fn(T)>,
}

impl<T, K, KF: Clone, P: KeyedProcessFunction<K, T>> Clone for KeyedProcessOperator<T, K, KF, P> {
    fn clone(&self) -> Self {
        Self::new(self.key_fn.clone(), self.func.clone(), self.ttl_ms)
    }
}

impl<T, K, KF, P: KeyedProcessFunction<K, T>> KeyedProcessOperator<T, K, KF, P> {
    pub(crate) fn new(key_fn: KF, func: P, ttl_ms: Option<i64>) -> Self {
        KeyedProcessOperator {
            key_fn,
            func,
            ttl_ms,
            state: None,
            event_timers: Timers::default(),
            processing_timers: Timers::default(),
            watermark: Timestamp::MIN,
            last_sweep: 0,
            late: 0,
            redirected: 0,
            _t: PhantomData,
        }
    }
}

impl<T, K, KF, P> KeyedProcessOperator<T, K, KF, P>
where
    K: crate::data::StateKey,
    P: KeyedProcessFunction<K, T>,
{
    /// Runs `f` with the context of `key` (creating its state if needed).
    fn with_key(
        &mut self,
        key: K,
        now: i64,
        f: impl FnOnce(&mut P, &mut KeyedContext<'_, K, P::State>),
    ) -> Result<()> {
        let state = self.state.as_mut().expect("opened");
        let (k, slot) = state.entry_key_value(key.clone(), |_| Slot {
            state: P::State::default(),
            touched: now,
        })?;
        slot.touched = now;
        let mut ctx = KeyedContext {
            key: k,
            state: &mut slot.state,
            event_timers: &mut self.event_timers,
            processing_timers: &mut self.processing_timers,
            watermark: self.watermark,
            cleared: false,
            late: &mut self.late,
            redirected: &mut self.redirected,
        };
        f(&mut self.func, &mut ctx);
        if ctx.cleared {
            state.remove(&key)?;
        }
        Ok(())
    }

    fn publish(&mut self, ctx: &mut TaskContext) {
        let keys = self.state.as_ref().map_or(0, |s| s.len());
        let stats = ctx.stats();
        stats.late_records += std::mem::take(&mut self.late);
        stats.late_redirected += std::mem::take(&mut self.redirected);
        stats.state_keys = keys as u64;
        stats.state_bytes = (keys
            * (std::mem::size_of::<K>() + std::mem::size_of::<Slot<P::State>>())
            + (self.event_timers.len() + self.processing_timers.len())
                * (std::mem::size_of::<K>() + 8)) as u64;
    }
}

/// One key group of a keyed process operator in a checkpoint: each key's state and when it was
/// last touched, and its pending timers (event time, then processing time).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(bound(
    serialize = "K: serde::Serialize, S: serde::Serialize",
    deserialize = "K: serde::de::DeserializeOwned, S: serde::de::DeserializeOwned"
))]
struct GroupSnapshot<K, S> {
    keys: Vec<(K, Slot<S>)>,
    event_timers: Vec<(i64, K)>,
    processing_timers: Vec<(i64, K)>,
}

impl<T, K, KF, P> Operator for KeyedProcessOperator<T, K, KF, P>
where
    T: Data,
    K: crate::data::StateKey,
    KF: Fn(&T) -> K + Clone + Send + 'static,
    P: KeyedProcessFunction<K, T>,
{
    type In = T;
    type Out = P::Out;

    fn snapshot_state(&mut self, ctx: &mut TaskContext, out: &mut StateSnapshot) -> Result<()> {
        use std::collections::BTreeMap;
        type Timers<'a, K> = (Vec<(i64, &'a K)>, Vec<(i64, &'a K)>);
        let key_groups = ctx.info().key_groups;
        let mut timers: BTreeMap<u32, Timers<'_, K>> = BTreeMap::new();
        for (t, keys) in &self.event_timers.by_time {
            for k in keys {
                timers
                    .entry(key_group(k, key_groups))
                    .or_default()
                    .0
                    .push((*t, k));
            }
        }
        for (t, keys) in &self.processing_timers.by_time {
            for k in keys {
                timers
                    .entry(key_group(k, key_groups))
                    .or_default()
                    .1
                    .push((*t, k));
            }
        }
        // Each group as a `GroupSnapshot`: the keys' (key, slot) pairs come from the state
        // backend already encoded (from the LSM tree as stored), the timers are encoded here.
        let owned = self.state.as_ref().map_or(0..0, |s| s.owned_groups());
        let mut groups: std::collections::BTreeSet<u32> = owned.clone().collect();
        groups.extend(timers.keys().copied());
        let mut body = Vec::new();
        for group in groups {
            body.clear();
            let n = match &mut self.state {
                Some(state) if owned.contains(&group) => state.write_group(group, &mut body)?,
                _ => 0,
            };
            let (event, processing) = timers.remove(&group).unwrap_or_default();
            if n == 0 && event.is_empty() && processing.is_empty() {
                continue;
            }
            let mut blob = Vec::with_capacity(body.len() + 16);
            blob.push(0x93);
            super::write_array_len(&mut blob, n);
            blob.extend_from_slice(&body);
            super::encode_into(&mut blob, &event)?;
            super::encode_into(&mut blob, &processing)?;
            out.put_group_raw(group, blob);
        }
        out.put_operator(&self.watermark.millis())
    }

    fn restore_state(&mut self, ctx: &mut TaskContext, restore: &StateRestore) -> Result<()> {
        if let Some(wm) = restore.operator_states::<i64>()?.into_iter().min() {
            self.watermark = Timestamp(wm);
        }
        let now = Timestamp::now().millis();
        let state = self.state.as_mut().expect("opened");
        for group in restore.groups::<GroupSnapshot<K, P::State>>() {
            let (_, g) = group?;
            for (key, mut slot) in g.keys {
                // TTL counts from the restore: the wall clock of the old run means nothing here.
                slot.touched = now;
                *state.entry_or_insert_with(key, |_| Slot {
                    state: P::State::default(),
                    touched: now,
                })? = slot;
            }
            for (t, key) in g.event_timers {
                self.event_timers.add(Timestamp(t), &key);
            }
            for (t, key) in g.processing_timers {
                self.processing_timers.add(Timestamp(t), &key);
            }
        }
        self.publish(ctx);
        Ok(())
    }

    fn open(&mut self, ctx: &mut TaskContext) -> Result<()> {
        self.state = Some(KeyedMap::open(ctx)?);
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: Vec<T>,
        ctx: &mut TaskContext,
        out: &mut Output<P::Out>,
    ) -> Result<()> {
        let now = Timestamp::now().millis();
        for record in batch {
            let key = (self.key_fn)(&record);
            self.with_key(key, now, |f, kctx| f.process(record, kctx, out))?;
        }
        for key in self.func.take_held_keys() {
            self.with_key(key, now, |f, kctx| f.finish_key(kctx, out))?;
        }
        self.publish(ctx);
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: Timestamp,
        ctx: &mut TaskContext,
        out: &mut Output<P::Out>,
    ) -> Result<Option<Timestamp>> {
        // Never backwards: after a restore the inputs start again from the beginning of time.
        self.watermark = self.watermark.max(watermark);
        let watermark = self.watermark;
        let now = Timestamp::now().millis();
        while let Some((t, keys)) = self.event_timers.pop_due(watermark.millis()) {
            for key in keys {
                self.with_key(key, now, |f, kctx| {
                    f.on_timer(Timestamp(t), TimeDomain::EventTime, kctx, out)
                })?;
            }
        }
        self.publish(ctx);
        Ok(Some(watermark))
    }

    fn on_processing_time(
        &mut self,
        now: Timestamp,
        ctx: &mut TaskContext,
        out: &mut Output<P::Out>,
    ) -> Result<()> {
        let ms = now.millis();
        while let Some((t, keys)) = self.processing_timers.pop_due(ms) {
            for key in keys {
                self.with_key(key, ms, |f, kctx| {
                    f.on_timer(Timestamp(t), TimeDomain::ProcessingTime, kctx, out)
                })?;
            }
        }
        if let Some(ttl) = self.ttl_ms {
            // Sweep expired keys a few times per TTL period.
            if ms - self.last_sweep >= (ttl / 4).max(1) {
                self.last_sweep = ms;
                if let Some(state) = &mut self.state {
                    state.retain(|_, slot| ms - slot.touched < ttl)?;
                }
            }
        }
        self.publish(ctx);
        Ok(())
    }
}
