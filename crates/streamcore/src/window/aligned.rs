//! The operator of aligned time windows (tumbling and sliding): state is organised by window
//! end, then by key, so firing a window is one ordered-map step and a scan of its keys (sliding
//! windows of event time by slice instead, merged when a window fires: `aligned/slices.rs`). The
//! same operator cuts windows of event time (fired by the watermark) or of processing time
//! (fired by the runtime's clock ticks, every open window at the end of the input). On the LSM
//! state backend the keys' accumulators live in the backend instead ([`BackendPanes`]).

mod slices;

use super::backend_panes::{read_backend_checkpoint, BackendPanes};
use super::{ProcessingClock, TimeDomain, Window, WindowFunction, Windows};
use crate::checkpoint::{StateRestore, StateSnapshot};
use crate::context::TaskContext;
use crate::data::{Data, Key, StateKey};
use crate::error::Result;
use crate::event_time::EventTime;
use crate::operator::{Operator, Output, OutputTag};
use crate::state::key_group;
use crate::time::Timestamp;
use hashbrown::hash_map::Entry;
pub(crate) use slices::{read_sliced_groups, sliced_operator_states, Slicing};
use std::collections::BTreeMap;
use std::collections::VecDeque;

type KeyMap<K, A> = hashbrown::HashMap<K, A, foldhash::fast::RandomState>;

/// The keys' accumulators of one window.
struct Pane<K, A> {
    end: i64,
    fired: bool,
    accs: KeyMap<K, A>,
}

impl<K: Key, A> Pane<K, A> {
    /// Folds `record` into `key`'s accumulator; a window that already fired (a late record
    /// within the allowed lateness) emits its updated result at once.
    #[inline]
    fn accumulate<T, F: WindowFunction<K, T, Acc = A>>(
        &mut self,
        func: &mut F,
        key: K,
        record: T,
        window: Window,
        ctx: &mut TaskContext,
        out: &mut Output<F::Out>,
    ) {
        let mut entry = match self.accs.entry(key) {
            Entry::Occupied(o) => o,
            Entry::Vacant(v) => v.insert_entry(func.create()),
        };
        func.add(entry.get_mut(), record);
        if self.fired {
            func.emit(entry.key(), window, entry.get(), out);
            ctx.stats().windows_fired += 1;
        }
    }
}

pub(crate) struct AlignedWindowOperator<T, K, KF, F: WindowFunction<K, T>> {
    pub(crate) key_fn: KF,
    pub(crate) func: F,
    pub(crate) windows: Windows,
    pub(crate) lateness: i64,
    pub(crate) late: Option<OutputTag<T>>,
    /// Open windows, ordered by end. Few at a time (one or two for tumbling windows), so a
    /// sorted deque beats a tree. For sliding windows of event time on the memory backend,
    /// the open slices instead ([`Slicing`]; about size / slide of them).
    panes: VecDeque<Pane<K, F::Acc>>,
    /// Sliced windows: windows restored whole (from a checkpoint that did not slice them),
    /// merged into their results as one more slice until they expire.
    whole: VecDeque<Pane<K, F::Acc>>,
    /// Sliced windows: the scratch map a window's slices are merged into when it fires.
    merged: KeyMap<K, F::Acc>,
    /// Emptied maps of dropped panes, kept with their capacity for the next windows: a new
    /// window then starts with room for as many keys as the last one had.
    spare: Vec<KeyMap<K, F::Acc>>,
    /// The time windows fired up to: the watermark, or the clock in processing time.
    watermark: i64,
    domain: TimeDomain,
    clock: ProcessingClock,
    /// On the LSM backend (set in `open`): the accumulators, instead of `panes`.
    backend: Option<BackendPanes<K, F::Acc>>,
}

impl<T, K, KF: Clone, F: WindowFunction<K, T>> Clone for AlignedWindowOperator<T, K, KF, F> {
    fn clone(&self) -> Self {
        let mut op = Self::new(
            self.key_fn.clone(),
            self.func.clone(),
            self.windows,
            self.lateness,
            self.late.clone(),
        );
        op.domain = self.domain;
        op.clock = self.clock.clone();
        op
    }
}

impl<T, K, KF, F: WindowFunction<K, T>> AlignedWindowOperator<T, K, KF, F> {
    pub(crate) fn new(
        key_fn: KF,
        func: F,
        windows: Windows,
        lateness: i64,
        late: Option<OutputTag<T>>,
    ) -> Self {
        AlignedWindowOperator {
            key_fn,
            func,
            windows,
            lateness,
            late,
            panes: VecDeque::new(),
            whole: VecDeque::new(),
            merged: KeyMap::default(),
            spare: Vec::new(),
            watermark: i64::MIN,
            domain: TimeDomain::EventTime,
            clock: ProcessingClock::default(),
            backend: None,
        }
    }

    /// Cuts windows of processing time read from `clock` instead of event time.
    pub(crate) fn processing_time(mut self, clock: ProcessingClock) -> Self {
        self.domain = TimeDomain::ProcessingTime;
        self.lateness = 0;
        self.clock = clock;
        self
    }

    /// How the windows are sliced: sliding windows of event time on the memory backend.
    #[inline]
    fn slicing(&self) -> Option<Slicing> {
        if self.domain == TimeDomain::EventTime && self.backend.is_none() {
            Slicing::of(self.windows)
        } else {
            None
        }
    }

    fn window_of(&self, end: i64) -> Window {
        Window {
            start: Timestamp(end - window_size(self.windows)),
            end: Timestamp(end),
        }
    }

    fn update_state_stats(&self, ctx: &mut TaskContext) {
        // Inline sizes only: a cheap estimate (O(windows), not O(keys)).
        let entry = std::mem::size_of::<K>() + std::mem::size_of::<F::Acc>() + 8;
        if let Some(backend) = &self.backend {
            let size = window_size(self.windows);
            let stats = ctx.stats();
            stats.state_keys = backend.len() as u64;
            stats.state_bytes = (backend.len() * entry) as u64;
            stats.pending_window = backend
                .next_to_fire()
                .map(|end| (Timestamp(end - size), Timestamp(end)));
            return;
        }
        let keys: usize = self
            .panes
            .iter()
            .chain(&self.whole)
            .map(|p| p.accs.len())
            .sum();
        let stats = ctx.stats();
        stats.state_keys = keys as u64;
        stats.state_bytes = (keys * entry) as u64;
        if let Some(s) = self.slicing() {
            let size = window_size(self.windows);
            stats.pending_window = self
                .next_sliced_window(s)
                .map(|end| (Timestamp(end - size), Timestamp(end)));
            return;
        }
        // Panes are ordered by end: the first one not fired is the next to fire.
        stats.pending_window = self
            .panes
            .iter()
            .find(|p| !p.fired && !p.accs.is_empty())
            .map(|p| {
                (
                    Timestamp(p.end - window_size(self.windows)),
                    Timestamp(p.end),
                )
            });
    }
}

impl<T, K, KF, F> Operator for AlignedWindowOperator<T, K, KF, F>
where
    T: Data + EventTime,
    K: StateKey,
    KF: Fn(&T) -> K + Clone + Send + 'static,
    F: WindowFunction<K, T>,
{
    type In = T;
    type Out = F::Out;

    fn open(&mut self, ctx: &mut TaskContext) -> Result<()> {
        self.backend = BackendPanes::open(ctx)?;
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: Vec<T>,
        ctx: &mut TaskContext,
        out: &mut Output<F::Out>,
    ) -> Result<()> {
        if self.backend.is_some() {
            return self.process_on_backend(batch, ctx, out);
        }
        if self.domain == TimeDomain::ProcessingTime {
            // One clock reading for the batch: every record falls in the windows open now.
            let now = self.clock.now();
            let mut ends = Vec::new();
            self.windows.assign(now, |w| ends.push(w.end.0));
            for record in batch {
                let key = (self.key_fn)(&record);
                for &end in &ends[1..] {
                    self.add_to(end, key.clone(), record.clone(), ctx, out);
                }
                self.add_to(ends[0], key, record, ctx, out);
            }
            self.update_state_stats(ctx);
            return Ok(());
        }
        if let Some(s) = self.slicing() {
            self.process_sliced(s, batch, ctx, out);
            self.update_state_stats(ctx);
            return Ok(());
        }
        let wm = self.watermark;
        let lateness = self.lateness;
        if let Windows::Tumbling { size, offset } = self.windows {
            // One window per record, and in-order input puts runs of records in the same
            // window: find the pane once per run, then update accumulators in a tight loop.
            let end_of = |ts: i64| ts - (ts - offset).rem_euclid(size) + size;
            let mut records = batch.into_iter().peekable();
            while let Some(first) = records.next() {
                let end = end_of(first.event_time().millis());
                if (end - 1).saturating_add(lateness) <= wm {
                    self.late(first, ctx, out);
                    continue;
                }
                let window = self.window_of(end);
                let at = self.pane_index(end);
                let pane = &mut self.panes[at];
                let func = &mut self.func;
                let mut add = |record: T| {
                    let key = (self.key_fn)(&record);
                    pane.accumulate(func, key, record, window, ctx, out);
                };
                add(first);
                while let Some(next) = records.next_if(|r| end_of(r.event_time().millis()) == end) {
                    add(next);
                }
            }
            self.update_state_stats(ctx);
            return Ok(());
        }
        for record in batch {
            let ts = record.event_time().millis();
            let key = (self.key_fn)(&record);
            // The live windows of this record, latest first (at most size / slide of them).
            let mut ends = [0i64; 16];
            let mut live = 0;
            let mut overflow = Vec::new();
            self.windows.assign(ts, |w| {
                if (w.end.0 - 1).saturating_add(lateness) > wm {
                    if live < ends.len() {
                        ends[live] = w.end.0;
                        live += 1;
                    } else {
                        overflow.push(w.end.0);
                    }
                }
            });
            let all: Vec<i64>;
            let targets: &[i64] = if overflow.is_empty() {
                &ends[..live]
            } else {
                all = ends.iter().copied().chain(overflow).collect();
                &all
            };
            let Some((&last, rest)) = targets.split_last() else {
                self.late(record, ctx, out);
                continue;
            };
            for &end in rest {
                self.add_to(end, key.clone(), record.clone(), ctx, out);
            }
            self.add_to(last, key, record, ctx, out);
        }
        self.update_state_stats(ctx);
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: Timestamp,
        ctx: &mut TaskContext,
        out: &mut Output<F::Out>,
    ) -> Result<Option<Timestamp>> {
        if self.domain == TimeDomain::EventTime {
            self.fire_until(watermark.millis(), ctx, out)?;
        }
        Ok(Some(watermark))
    }

    fn on_processing_time(
        &mut self,
        now: Timestamp,
        ctx: &mut TaskContext,
        out: &mut Output<F::Out>,
    ) -> Result<()> {
        if self.domain == TimeDomain::ProcessingTime {
            // A window [start, end) fires once the clock reaches its end.
            let now = self.clock.observe(now.millis());
            self.fire_until(now - 1, ctx, out)?;
        }
        Ok(())
    }

    fn close(&mut self, ctx: &mut TaskContext, out: &mut Output<F::Out>) -> Result<()> {
        if self.domain == TimeDomain::ProcessingTime {
            // The input is over: nothing more can fall into the open windows.
            self.fire_until(i64::MAX, ctx, out)?;
        }
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut TaskContext, state: &mut StateSnapshot) -> Result<()> {
        if let Some(backend) = &mut self.backend {
            return backend.snapshot(self.watermark, ctx, state);
        }
        if let Some(s) = self.slicing() {
            return self.snapshot_sliced(s, ctx, state);
        }
        // Per key group: its panes (end, fired, entries), in window order.
        type PaneRefs<'a, K, A> = Vec<(i64, bool, Vec<(&'a K, &'a A)>)>;
        let key_groups = ctx.info().key_groups;
        let mut groups: BTreeMap<u32, PaneRefs<'_, K, F::Acc>> = BTreeMap::new();
        for pane in &self.panes {
            for (key, acc) in &pane.accs {
                let panes = groups.entry(key_group(key, key_groups)).or_default();
                match panes.last_mut() {
                    Some(p) if p.0 == pane.end => p.2.push((key, acc)),
                    _ => panes.push((pane.end, pane.fired, vec![(key, acc)])),
                }
            }
        }
        for (group, panes) in &groups {
            state.put_group(*group, panes)?;
        }
        state.put_operator(&self.watermark)
    }

    fn restore_state(&mut self, ctx: &mut TaskContext, state: &StateRestore) -> Result<()> {
        // The lowest watermark of the old instances: nothing they fired fires again, and
        // nothing they still hold is taken for late.
        if let Some(backend) = &mut self.backend {
            if let Some(wm) = backend.restore(state, &mut self.func, self.windows)? {
                self.watermark = wm;
            }
            self.update_state_stats(ctx);
            return Ok(());
        }
        let sliced = self.slicing();
        if let Some(states) = sliced_operator_states(state) {
            // Written by sliced windows on the memory backend.
            let Some(s) = sliced else {
                return Err(crate::error::StreamError::Checkpoint(
                    "the checkpoint holds sliding windows of event time, which these windows \
                     are not (the job's windows changed)"
                        .into(),
                ));
            };
            self.restore_sliced(s, states, state)?;
            self.update_state_stats(ctx);
            return Ok(());
        }
        if let Some((wm, windows, changes)) = read_backend_checkpoint::<K, F::Acc>(state)? {
            // Written on the LSM backend: one accumulator per key and window.
            self.watermark = wm;
            for (pane_key, acc) in changes {
                let accs = if sliced.is_some() {
                    self.whole_window(pane_key.end)
                } else {
                    let at = self.pane_index(pane_key.end);
                    &mut self.panes[at].accs
                };
                match acc {
                    Some(acc) => accs.insert(pane_key.key, acc),
                    None => accs.remove(&pane_key.key),
                };
            }
            for (end, fired) in windows {
                if let Ok(at) = self.panes.binary_search_by_key(&end, |p| p.end) {
                    self.panes[at].fired |= fired;
                }
            }
            self.panes.retain(|p| !p.accs.is_empty());
            self.whole.retain(|p| !p.accs.is_empty());
            self.update_state_stats(ctx);
            return Ok(());
        }
        if let Some(wm) = state.operator_states::<i64>()?.into_iter().min() {
            self.watermark = wm;
        }
        // Written on the memory backend, one accumulator per key and window (sliced windows
        // keep them whole).
        for group in state.groups::<Vec<(i64, bool, Vec<(K, F::Acc)>)>>() {
            for (end, fired, entries) in group?.1 {
                if sliced.is_some() {
                    self.whole_window(end).extend(entries);
                    continue;
                }
                let at = self.pane_index(end);
                let pane = &mut self.panes[at];
                pane.fired |= fired;
                pane.accs.extend(entries);
            }
        }
        self.update_state_stats(ctx);
        Ok(())
    }
}

/// The index of the pane ending at `end` in `panes` (ordered by end; the last one is checked
/// first, as in-order input lands there), inserted from `new` if there is none.
#[inline]
fn index_of_pane<K, A>(
    panes: &mut VecDeque<Pane<K, A>>,
    end: i64,
    new: impl FnOnce() -> Pane<K, A>,
) -> usize {
    match panes.back() {
        Some(p) if p.end == end => panes.len() - 1,
        _ => match panes.binary_search_by_key(&end, |p| p.end) {
            Ok(i) => i,
            Err(i) => {
                panes.insert(i, new());
                i
            }
        },
    }
}

fn window_size(w: Windows) -> i64 {
    match w {
        Windows::Tumbling { size, .. } | Windows::Sliding { size, .. } => size,
        Windows::Session { gap } => gap,
    }
}

impl<T: Data, K: StateKey, KF, F: WindowFunction<K, T>> AlignedWindowOperator<T, K, KF, F> {
    /// Fires every window whose last timestamp `time` (the watermark, or the clock minus one)
    /// reached, and drops the state of windows past their allowed lateness.
    fn fire_until(
        &mut self,
        time: i64,
        ctx: &mut TaskContext,
        out: &mut Output<F::Out>,
    ) -> Result<()> {
        // Never backwards: after a restore the inputs start again from the beginning of time.
        let wm = time.max(self.watermark);
        if let (Some(s), None) = (self.slicing(), &self.backend) {
            let fired = self.fire_sliced(s, self.watermark, wm, out);
            self.watermark = wm;
            ctx.stats().windows_fired += fired;
            self.update_state_stats(ctx);
            return Ok(());
        }
        self.watermark = wm;
        if let Some(backend) = &mut self.backend {
            let size = window_size(self.windows);
            let fired = backend.fire(&mut self.func, wm, self.lateness, size, out)?;
            ctx.stats().windows_fired += fired;
            self.update_state_stats(ctx);
            return Ok(());
        }
        let mut fired = 0;
        // Fire every window whose last timestamp the watermark reached.
        for pane in self.panes.iter_mut() {
            let end = pane.end;
            if end - 1 > wm {
                break;
            }
            if pane.fired {
                continue;
            }
            let window = Window {
                start: Timestamp(end - window_size(self.windows)),
                end: Timestamp(end),
            };
            for (key, acc) in &pane.accs {
                self.func.emit(key, window, acc, out);
            }
            fired += pane.accs.len() as u64;
            pane.fired = true;
        }
        // Drop the state of windows past their allowed lateness.
        while let Some(pane) = self.panes.front() {
            if (pane.end - 1).saturating_add(self.lateness) > wm {
                break;
            }
            if let Some(mut pane) = self.panes.pop_front() {
                if self.spare.len() < 2 {
                    pane.accs.clear();
                    self.spare.push(pane.accs);
                }
            }
        }
        ctx.stats().windows_fired += fired;
        self.update_state_stats(ctx);
        Ok(())
    }

    /// `process_batch` on the LSM backend: each record into each of its live windows'
    /// accumulators in the backend.
    fn process_on_backend(
        &mut self,
        batch: Vec<T>,
        ctx: &mut TaskContext,
        out: &mut Output<F::Out>,
    ) -> Result<()>
    where
        T: EventTime,
        KF: Fn(&T) -> K,
    {
        // In processing time every record falls in the windows open now.
        let now = (self.domain == TimeDomain::ProcessingTime).then(|| self.clock.now());
        let (wm, lateness) = (self.watermark, self.lateness);
        let mut ends = Vec::with_capacity(4);
        for record in batch {
            ends.clear();
            let ts = now.unwrap_or_else(|| record.event_time().millis());
            self.windows.assign(ts, |w| {
                if now.is_some() || (w.end.0 - 1).saturating_add(lateness) > wm {
                    ends.push(w.end.0);
                }
            });
            let Some((&last, rest)) = ends.split_last() else {
                self.late(record, ctx, out);
                continue;
            };
            let key = (self.key_fn)(&record);
            let (size, backend) = (window_size(self.windows), self.backend.as_mut());
            let backend = backend.expect("on the backend");
            let window_of = |end: i64| Window {
                start: Timestamp(end - size),
                end: Timestamp(end),
            };
            for &end in rest {
                let window = window_of(end);
                backend.accumulate(
                    &mut self.func,
                    key.clone(),
                    record.clone(),
                    window,
                    wm,
                    ctx,
                    out,
                )?;
            }
            let window = window_of(last);
            backend.accumulate(&mut self.func, key, record, window, wm, ctx, out)?;
        }
        self.update_state_stats(ctx);
        Ok(())
    }

    /// A record all of whose windows expired: to the late output if set; counted either way.
    fn late(&self, record: T, ctx: &mut TaskContext, out: &mut Output<F::Out>) {
        let stats = ctx.stats();
        stats.late_records += 1;
        if let Some(tag) = &self.late {
            stats.late_redirected += 1;
            out.side(tag, record);
        }
    }

    /// The index of the pane of window `end`, created if needed.
    #[inline]
    fn pane_index(&mut self, end: i64) -> usize {
        // A window created behind the watermark (by a late record within the allowed
        // lateness) has already passed its firing time: its records are emitted as they come,
        // like those of a fired window.
        self.pane_at(end, end - 1 <= self.watermark)
    }

    /// The index of the pane ending at `end` (a window's, or a slice's), created with `fired`
    /// if new.
    #[inline]
    fn pane_at(&mut self, end: i64, fired: bool) -> usize {
        let spare = &mut self.spare;
        index_of_pane(&mut self.panes, end, || Pane {
            end,
            fired,
            accs: spare.pop().unwrap_or_default(),
        })
    }

    /// Adds `record` to window `end` of `key`; a window that already fired (a late record
    /// within the allowed lateness) emits its updated result at once.
    #[inline]
    fn add_to(
        &mut self,
        end: i64,
        key: K,
        record: T,
        ctx: &mut TaskContext,
        out: &mut Output<F::Out>,
    ) {
        let window = self.window_of(end);
        let at = self.pane_index(end);
        self.panes[at].accumulate(&mut self.func, key, record, window, ctx, out);
    }
}
