//! Sliding windows of event time on the memory backend, cut into slices (as Flink's window
//! aggregation slices them): a record is folded into the one slice of width
//! `gcd(size, slide)` that holds it — not into each of the `size / slide` windows that contain
//! it — and a window, when it fires, merges the accumulators of its `size / width` slices key by
//! key ([`WindowFunction::merge_ref`]). A record then costs one accumulator update instead of
//! `size / slide`, and the state holds each key once per slice instead of once per window.
//!
//! The operator's `panes` are the slices (ordered by end). Windows restored whole — from a
//! checkpoint written on the LSM backend, or by a build that did not slice — are kept in
//! `whole` and merged into their window's result as one more slice until they expire.
//!
//! A window has fired once the watermark reached its last millisecond; a record of a slice
//! some of whose windows fired (late, within the allowed lateness) re-emits the updated result
//! of each of those windows for its key; a record none of whose windows is within the allowed
//! lateness goes to the late output.
//!
//! Checkpoint (memory backend): the operator state `(watermark, slice width)`, and per key
//! group `(slices, whole windows)`, each `(end, [(key, accumulator)])`.

use super::{index_of_pane, AlignedWindowOperator, KeyMap, Pane};
use crate::checkpoint::{StateRestore, StateSnapshot};
use crate::context::TaskContext;
use crate::data::{Data, StateKey};
use crate::error::{Result, StreamError};
use crate::event_time::EventTime;
use crate::operator::Output;
use crate::state::key_group;
use crate::time::Timestamp;
use crate::window::{Window, WindowFunction, Windows};
use std::collections::{BTreeMap, VecDeque};

/// How sliding windows are cut: slices of `width = gcd(size, slide)`, aligned as the windows
/// are (window starts are `offset` plus multiples of `slide`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slicing {
    pub(crate) size: i64,
    pub(crate) slide: i64,
    pub(crate) offset: i64,
    pub(crate) width: i64,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Slicing {
    /// The slicing of sliding windows; `None` for other windows.
    pub(crate) fn of(windows: Windows) -> Option<Slicing> {
        match windows {
            Windows::Sliding {
                size,
                slide,
                offset,
            } if size > 0 && slide > 0 => Some(Slicing {
                size,
                slide,
                offset,
                width: gcd(size, slide),
            }),
            _ => None,
        }
    }

    /// The end of the slice that holds `ts`.
    #[inline]
    pub(crate) fn slice_end(&self, ts: i64) -> i64 {
        ts - (ts - self.offset).rem_euclid(self.width) + self.width
    }

    /// The first window end at or after `t`.
    #[inline]
    pub(crate) fn window_end_from(&self, t: i64) -> i64 {
        t + (self.offset + self.size - t).rem_euclid(self.slide)
    }

    /// The end of the first window that contains the slice ending at `slice_end`.
    #[inline]
    pub(crate) fn first_window(&self, slice_end: i64) -> i64 {
        self.window_end_from(slice_end)
    }

    /// The end of the last window that contains the slice ending at `slice_end`.
    #[inline]
    pub(crate) fn last_window(&self, slice_end: i64) -> i64 {
        let x = slice_end + self.size - self.width;
        x - (x - self.offset - self.size).rem_euclid(self.slide)
    }

    /// The ends of the windows that contain the slice ending at `slice_end`, in order.
    pub(crate) fn windows_of(&self, slice_end: i64) -> impl Iterator<Item = i64> {
        let (last, slide) = (self.last_window(slice_end), self.slide);
        std::iter::successors(Some(self.first_window(slice_end)), move |e| Some(e + slide))
            .take_while(move |&e| e <= last)
    }
}

/// The operator state of a sliced checkpoint: the watermark and the slice width.
pub(crate) type SlicedOperatorState = (i64, i64);
/// A key group of a sliced checkpoint: its slices and its whole windows, each
/// `(end, entries)`.
type SlicedGroup<K, A> = (Vec<(i64, Vec<(K, A)>)>, Vec<(i64, Vec<(K, A)>)>);

/// A sliced checkpoint's operator states (one per instance that wrote it), or `None` when the
/// checkpoint is in another format.
pub(crate) fn sliced_operator_states(state: &StateRestore) -> Option<Vec<SlicedOperatorState>> {
    state
        .operator_states::<SlicedOperatorState>()
        .ok()
        .filter(|s| !s.is_empty())
}

/// The slices and whole windows of a sliced checkpoint, merged over its key groups.
pub(crate) fn read_sliced_groups<K: StateKey, A: crate::data::StateData>(
    state: &StateRestore,
) -> Result<SlicedGroup<K, A>> {
    let (mut slices, mut whole) = (Vec::new(), Vec::new());
    for group in state.groups::<SlicedGroup<K, A>>() {
        let (s, w) = group?.1;
        slices.extend(s);
        whole.extend(w);
    }
    Ok((slices, whole))
}

/// Folds `acc` into `key`'s entry of `merged` (created empty first).
#[inline]
fn merge_into<K: StateKey, T, F: WindowFunction<K, T>>(
    func: &mut F,
    merged: &mut KeyMap<K, F::Acc>,
    key: &K,
    acc: &F::Acc,
) {
    match merged.get_mut(key) {
        Some(m) => func.merge_ref(m, acc),
        None => {
            let mut m = func.create();
            func.merge_ref(&mut m, acc);
            merged.insert(key.clone(), m);
        }
    }
}

impl<T, K, KF, F> AlignedWindowOperator<T, K, KF, F>
where
    T: Data + EventTime,
    K: StateKey,
    KF: Fn(&T) -> K,
    F: WindowFunction<K, T>,
{
    /// `process_batch` for sliced windows: each record into its slice; runs of records of
    /// one slice (in-order input) find the slice once.
    pub(super) fn process_sliced(
        &mut self,
        s: Slicing,
        batch: Vec<T>,
        ctx: &mut TaskContext,
        out: &mut Output<F::Out>,
    ) {
        let (wm, lateness) = (self.watermark, self.lateness);
        let mut records = batch.into_iter().peekable();
        while let Some(first) = records.next() {
            let end = s.slice_end(first.event_time().millis());
            if (s.last_window(end) - 1).saturating_add(lateness) <= wm {
                self.late(first, ctx, out);
                continue;
            }
            let at = self.slice_index(end);
            if s.first_window(end) - 1 > wm {
                // No window of this slice fired yet: fold the run in.
                let pane = &mut self.panes[at];
                let (func, key_fn) = (&mut self.func, &self.key_fn);
                let mut fold = |record: T| {
                    let accs = &mut pane.accs;
                    let acc = accs.entry(key_fn(&record)).or_insert_with(|| func.create());
                    func.add(acc, record);
                };
                fold(first);
                while let Some(next) =
                    records.next_if(|r| s.slice_end(r.event_time().millis()) == end)
                {
                    fold(next);
                }
            } else {
                // Some of its windows fired (a late record within the allowed lateness):
                // fold it in, then re-emit the fired windows' results for its key.
                let key = (self.key_fn)(&first);
                let func = &mut self.func;
                let acc = self.panes[at]
                    .accs
                    .entry(key.clone())
                    .or_insert_with(|| func.create());
                func.add(acc, first);
                for e in s.windows_of(end) {
                    if e - 1 <= wm && (e - 1).saturating_add(lateness) > wm {
                        let acc = self.window_acc_of(s, e, &key);
                        self.func.emit(&key, window(s, e), &acc, out);
                        ctx.stats().windows_fired += 1;
                    }
                }
            }
        }
    }
}

impl<T: Data, K: StateKey, KF, F: WindowFunction<K, T>> AlignedWindowOperator<T, K, KF, F> {
    /// The index of the slice ending at `end`, created if needed (a slice never fires: its
    /// windows do).
    #[inline]
    fn slice_index(&mut self, end: i64) -> usize {
        self.pane_at(end, false)
    }

    /// `key`'s accumulator of window `end`: its slices' (and whole window's) merged.
    fn window_acc_of(&mut self, s: Slicing, end: i64, key: &K) -> F::Acc {
        let mut acc = self.func.create();
        let (from, to) = slice_range(&self.panes, s, end);
        for pane in self.panes.range(from..to) {
            if let Some(a) = pane.accs.get(key) {
                self.func.merge_ref(&mut acc, a);
            }
        }
        if let Ok(i) = self.whole.binary_search_by_key(&end, |p| p.end) {
            if let Some(a) = self.whole[i].accs.get(key) {
                self.func.merge_ref(&mut acc, a);
            }
        }
        acc
    }

    /// Fires the windows whose last millisecond the watermark passed from `from` (exclusive)
    /// to `to`, and drops the slices and whole windows past their allowed lateness. Returns
    /// how many results it emitted.
    pub(super) fn fire_sliced(
        &mut self,
        s: Slicing,
        from: i64,
        to: i64,
        out: &mut Output<F::Out>,
    ) -> u64 {
        let mut fired = 0;
        let Some(mut end) = self.first_window_after(s, from) else {
            return 0;
        };
        while end - 1 <= to {
            let (first, last) = slice_range(&self.panes, s, end);
            let whole = self.whole.binary_search_by_key(&end, |p| p.end).ok();
            if first == last && whole.is_none() {
                // An empty window: go on with the first window of the next slice.
                let next_slice = self.panes.get(last).map(|p| p.end);
                let next_whole = self.whole.iter().map(|p| p.end).find(|&e| e > end);
                match next_slice.into_iter().chain(next_whole).min() {
                    Some(next) => end = s.window_end_from(next),
                    None => break,
                }
                continue;
            }
            fired += self.fire_window(s, end, first..last, whole, out);
            end += s.slide;
        }
        let lateness = self.lateness;
        while let Some(pane) = self.panes.front() {
            if (s.last_window(pane.end) - 1).saturating_add(lateness) > to {
                break;
            }
            if let Some(mut pane) = self.panes.pop_front() {
                if self.spare.len() < 2 {
                    pane.accs.clear();
                    self.spare.push(pane.accs);
                }
            }
        }
        while self
            .whole
            .front()
            .is_some_and(|p| (p.end - 1).saturating_add(lateness) <= to)
        {
            self.whole.pop_front();
        }
        fired
    }

    /// Emits every key's result of window `end` from its slices `slices` (and whole window).
    fn fire_window(
        &mut self,
        s: Slicing,
        end: i64,
        slices: std::ops::Range<usize>,
        whole: Option<usize>,
        out: &mut Output<F::Out>,
    ) -> u64 {
        let w = window(s, end);
        let mut holding = self
            .panes
            .range(slices.clone())
            .filter(|p| !p.accs.is_empty());
        if let (Some(only), None, None) = (holding.next(), holding.next(), whole) {
            // One slice holds the window: its accumulators are the window's.
            for (key, acc) in &only.accs {
                self.func.emit(key, w, acc, out);
            }
            return only.accs.len() as u64;
        }
        let mut merged = std::mem::take(&mut self.merged);
        let func = &mut self.func;
        let parts = self
            .panes
            .range(slices)
            .chain(whole.map(|i| &self.whole[i]));
        for pane in parts {
            for (key, acc) in &pane.accs {
                merge_into(func, &mut merged, key, acc);
            }
        }
        for (key, acc) in &merged {
            func.emit(key, w, acc, out);
        }
        let n = merged.len() as u64;
        merged.clear();
        self.merged = merged;
        n
    }

    /// Writes the slices and whole windows, per key group.
    pub(super) fn snapshot_sliced(
        &self,
        s: Slicing,
        ctx: &TaskContext,
        state: &mut StateSnapshot,
    ) -> Result<()> {
        type Entries<'a, K, A> = Vec<(i64, Vec<(&'a K, &'a A)>)>;
        type Group<'a, K, A> = (Entries<'a, K, A>, Entries<'a, K, A>);
        let key_groups = ctx.info().key_groups;
        let mut groups: BTreeMap<u32, Group<'_, K, F::Acc>> = BTreeMap::new();
        for (panes, whole) in [(&self.panes, false), (&self.whole, true)] {
            for pane in panes {
                for (key, acc) in &pane.accs {
                    let (slices, wholes) = groups.entry(key_group(key, key_groups)).or_default();
                    let list = if whole { wholes } else { slices };
                    match list.last_mut() {
                        Some(p) if p.0 == pane.end => p.1.push((key, acc)),
                        _ => list.push((pane.end, vec![(key, acc)])),
                    }
                }
            }
        }
        for (group, entries) in &groups {
            state.put_group(*group, entries)?;
        }
        state.put_operator(&(self.watermark, s.width))
    }

    /// Restores a sliced checkpoint (`states`: its operator states); the slice width must be
    /// this operator's.
    pub(super) fn restore_sliced(
        &mut self,
        s: Slicing,
        states: Vec<SlicedOperatorState>,
        state: &StateRestore,
    ) -> Result<()> {
        if let Some((_, width)) = states.iter().find(|(_, w)| *w != s.width) {
            return Err(StreamError::Checkpoint(format!(
                "the checkpoint's sliding windows were cut into slices of {width} ms, these \
                 windows (size {} ms, slide {} ms) into slices of {} ms: the window changed",
                s.size, s.slide, s.width
            )));
        }
        if let Some(wm) = states.iter().map(|(wm, _)| *wm).min() {
            self.watermark = wm;
        }
        let (slices, whole) = read_sliced_groups::<K, F::Acc>(state)?;
        for (end, entries) in slices {
            let at = self.slice_index(end);
            self.panes[at].accs.extend(entries);
        }
        for (end, entries) in whole {
            self.whole_window(end).extend(entries);
        }
        Ok(())
    }

    /// The accumulators of window `end` restored whole, created if needed.
    pub(super) fn whole_window(&mut self, end: i64) -> &mut KeyMap<K, F::Acc> {
        let at = index_of_pane(&mut self.whole, end, || Pane {
            end,
            fired: false,
            accs: KeyMap::default(),
        });
        &mut self.whole[at].accs
    }
}

impl<T, K, KF, F: WindowFunction<K, T>> AlignedWindowOperator<T, K, KF, F> {
    /// The end of the next window to fire, if any state is held.
    pub(super) fn next_sliced_window(&self, s: Slicing) -> Option<i64> {
        self.first_window_after(s, self.watermark)
    }

    /// The end of the first window not fired at watermark `watermark` that can hold anything
    /// (it contains the first slice or whole window held, or comes after it); `None` when
    /// nothing is held.
    fn first_window_after(&self, s: Slicing, watermark: i64) -> Option<i64> {
        // Both deques are ordered by end: their fronts are the lowest.
        let lowest = self.panes.front().into_iter().chain(self.whole.front());
        let lowest = lowest.map(|p| p.end).min()?;
        Some(s.window_end_from(watermark.saturating_add(2).max(lowest)))
    }
}

/// The index range of the slices of window `end` in `panes` (ordered by end).
fn slice_range<K, A>(panes: &VecDeque<Pane<K, A>>, s: Slicing, end: i64) -> (usize, usize) {
    let lo = end - s.size;
    (
        panes.partition_point(|p| p.end <= lo),
        panes.partition_point(|p| p.end <= end),
    )
}

fn window(s: Slicing, end: i64) -> Window {
    Window {
        start: Timestamp(end - s.size),
        end: Timestamp(end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn slicing(size: u64, slide: u64) -> Slicing {
        Slicing::of(Windows::sliding(
            Duration::from_millis(size),
            Duration::from_millis(slide),
        ))
        .expect("sliding")
    }

    /// The windows of a slice are exactly the windows `Windows::assign` gives each of its
    /// timestamps.
    #[test]
    fn a_slice_lies_in_the_windows_of_each_of_its_timestamps() {
        for (size, slide) in [(10, 2), (10, 4), (10, 10), (9, 6), (5, 1), (7, 3)] {
            let s = slicing(size, slide);
            let w = Windows::sliding(Duration::from_millis(size), Duration::from_millis(slide));
            for ts in -40..40 {
                let end = s.slice_end(ts);
                assert!(end - s.width <= ts && ts < end, "slice of {ts}");
                let mut expected = Vec::new();
                w.assign(ts, |w| expected.push(w.end.0));
                expected.reverse();
                let got: Vec<i64> = s.windows_of(end).collect();
                assert_eq!(got, expected, "size {size} slide {slide} ts {ts}");
            }
        }
    }
}
