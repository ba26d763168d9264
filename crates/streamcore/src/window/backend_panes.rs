//! Aligned windows' state on the LSM state backend (docs/state.md): every key's accumulator of
//! every open window in one [`KeyedMap`] keyed by `(key, window end)`, so it is cached, evicted
//! to the tree under the job's memory budget and checkpointed (incrementally too) like any
//! keyed state. The window operator keeps only the list of open windows in memory.
//!
//! Firing a window is one pass over the operator's state ([`KeyedMap::retain`]): emit the
//! entries of the windows that fire, drop those past their allowed lateness. The in-memory
//! layout (one hash map per window) stays the operator's own for the memory backend, where it
//! is the fastest; the two checkpoint formats restore into either backend.

use super::aligned::{read_sliced_groups, sliced_operator_states, Slicing};
use super::{Window, WindowFunction, Windows};
use crate::checkpoint::{decode, StateRestore, StateSnapshot};
use crate::context::TaskContext;
use crate::data::{Key, StateData};
use crate::error::{Result, StreamError};
use crate::operator::Output;
use crate::state::{KeyedMap, StateBackendKind, DELTA_TAG};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};

/// A key's accumulator of the window ending at `end`. Hashed by the key alone: it falls in the
/// key's key group, so a window's entries move with their key when key groups are dealt anew.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PaneKey<K> {
    pub(super) key: K,
    pub(super) end: i64,
}

impl<K: Hash> Hash for PaneKey<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

/// The operator state of an aligned window operator on the backend: the watermark and the
/// open windows `(end, fired)`. (On the memory backend it is the watermark alone, and the key
/// groups hold the windows; the type tells the two formats apart on restore.)
type BackendOperatorState = (i64, Vec<(i64, bool)>);

/// The open windows' state on the backend.
pub(super) struct BackendPanes<K, A> {
    map: KeyedMap<PaneKey<K>, A>,
    /// Open windows `(end, fired)`, ordered by end: few at a time.
    windows: Vec<(i64, bool)>,
}

impl<K, A> BackendPanes<K, A> {
    /// Keys held, summed over the open windows.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// The end of the first window that has not fired yet.
    pub(super) fn next_to_fire(&self) -> Option<i64> {
        self.windows.iter().find(|w| !w.1).map(|w| w.0)
    }
}

impl<K: Key + StateData, A: StateData> BackendPanes<K, A> {
    /// The state of the operator instance of `ctx` on the job's backend, when that is the LSM
    /// backend; `None` on the memory backend (the operator's own maps are faster there).
    pub(super) fn open(ctx: &TaskContext) -> Result<Option<Self>> {
        match &ctx.state_backend {
            Some(b) if b.kind() == StateBackendKind::Lsm => Ok(Some(BackendPanes {
                map: KeyedMap::open_incremental(ctx)?,
                windows: Vec::new(),
            })),
            _ => Ok(None),
        }
    }

    /// Whether window `end` fired; opened if new (fired already when the watermark passed
    /// its end: a late record within the allowed lateness opened it).
    fn window_fired(&mut self, end: i64, watermark: i64) -> bool {
        match self.windows.binary_search_by_key(&end, |w| w.0) {
            Ok(i) => self.windows[i].1,
            Err(i) => {
                let fired = end - 1 <= watermark;
                self.windows.insert(i, (end, fired));
                fired
            }
        }
    }

    /// Folds `record` into `key`'s accumulator of `window`; a window that already fired emits
    /// its updated result at once.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn accumulate<T, F: WindowFunction<K, T, Acc = A>>(
        &mut self,
        func: &mut F,
        key: K,
        record: T,
        window: Window,
        watermark: i64,
        ctx: &mut TaskContext,
        out: &mut Output<F::Out>,
    ) -> Result<()> {
        let end = window.end.0;
        let fired = self.window_fired(end, watermark);
        let (pane_key, acc) = self
            .map
            .entry_key_value(PaneKey { key, end }, |_| func.create())?;
        func.add(acc, record);
        if fired {
            func.emit(&pane_key.key, window, acc, out);
            ctx.stats().windows_fired += 1;
        }
        Ok(())
    }

    /// Fires every window whose last timestamp `watermark` reached and drops the windows past
    /// their allowed lateness: one pass over the state. Returns how many results it emitted.
    pub(super) fn fire<T, F: WindowFunction<K, T, Acc = A>>(
        &mut self,
        func: &mut F,
        watermark: i64,
        lateness: i64,
        size: i64,
        out: &mut Output<F::Out>,
    ) -> Result<u64> {
        let mut fire = Vec::new();
        for w in &mut self.windows {
            if w.0 - 1 > watermark {
                break;
            }
            if !w.1 {
                fire.push(w.0);
                w.1 = true;
            }
        }
        let expired = |end: i64| (end - 1).saturating_add(lateness) <= watermark;
        if fire.is_empty() && !self.windows.first().is_some_and(|w| expired(w.0)) {
            return Ok(0);
        }
        let mut fired = 0;
        self.map.retain(|pane, acc| {
            if fire.binary_search(&pane.end).is_ok() {
                let window = Window {
                    start: Timestamp(pane.end - size),
                    end: Timestamp(pane.end),
                };
                func.emit(&pane.key, window, acc, out);
                fired += 1;
            }
            !expired(pane.end)
        })?;
        self.windows.retain(|w| !expired(w.0));
        Ok(fired)
    }

    pub(super) fn snapshot(
        &mut self,
        watermark: i64,
        ctx: &TaskContext,
        state: &mut StateSnapshot,
    ) -> Result<()> {
        self.map.snapshot(ctx, state)?;
        state.put_operator(&(watermark, &self.windows))
    }

    /// Restores a checkpoint written on either backend; returns the lowest watermark of the
    /// instances that wrote it.
    pub(super) fn restore<T, F: WindowFunction<K, T, Acc = A>>(
        &mut self,
        state: &StateRestore,
        func: &mut F,
        windows: Windows,
    ) -> Result<Option<i64>> {
        if let Some(states) = sliced_operator_states(state) {
            // Written by sliced windows on the memory backend: each slice merged into the
            // windows that contain it.
            let s = Slicing::of(windows).filter(|s| states.iter().all(|(_, w)| *w == s.width));
            let Some(s) = s else {
                return Err(StreamError::Checkpoint(
                    "the checkpoint's sliding windows were sliced differently (the job's \
                     windows changed)"
                        .into(),
                ));
            };
            let watermark = states.iter().map(|(wm, _)| *wm).min();
            let (slices, whole) = read_sliced_groups::<K, A>(state)?;
            let parts = slices
                .iter()
                .flat_map(|(end, entries)| s.windows_of(*end).map(move |w| (w, entries)))
                .chain(whole.iter().map(|(end, entries)| (*end, entries)));
            for (end, entries) in parts {
                self.mark(end, watermark.is_some_and(|wm| end - 1 <= wm));
                for (key, acc) in entries {
                    let key = PaneKey {
                        key: key.clone(),
                        end,
                    };
                    let slot = self.map.entry_or_insert_with(key, |_| func.create())?;
                    func.merge_ref(slot, acc);
                }
            }
            return Ok(watermark);
        }
        if let Some((watermark, windows)) = backend_operator_state(state)? {
            for (end, fired) in windows {
                self.mark(end, fired);
            }
            self.map.restore(state)?;
            return Ok(Some(watermark));
        }
        // Written on the memory backend: per key group, windows with their keys.
        for group in state.groups::<Vec<(i64, bool, Vec<(K, A)>)>>() {
            for (end, fired, entries) in group?.1 {
                self.mark(end, fired);
                for (key, acc) in entries {
                    let mut acc = Some(acc);
                    let slot = self.map.entry_or_insert_with(PaneKey { key, end }, |_| {
                        acc.take().expect("taken once")
                    })?;
                    if let Some(acc) = acc {
                        *slot = acc;
                    }
                }
            }
        }
        Ok(state.operator_states::<i64>()?.into_iter().min())
    }

    fn mark(&mut self, end: i64, fired: bool) {
        match self.windows.binary_search_by_key(&end, |w| w.0) {
            Ok(i) => self.windows[i].1 |= fired,
            Err(i) => self.windows.insert(i, (end, fired)),
        }
    }
}

/// The watermark and open windows of a checkpoint written on the backend (the lowest
/// watermark and the union of the windows of all instances); `None` for one written on the
/// memory backend.
fn backend_operator_state(state: &StateRestore) -> Result<Option<BackendOperatorState>> {
    let Ok(states) = state.operator_states::<BackendOperatorState>() else {
        return Ok(None);
    };
    let Some(watermark) = states.iter().map(|s| s.0).min() else {
        return Ok(None);
    };
    let mut windows: Vec<(i64, bool)> = states.into_iter().flat_map(|s| s.1).collect();
    windows.sort_unstable();
    // Per end, fired if any instance fired it (sorted: `true` last).
    windows.reverse();
    windows.dedup_by_key(|w| w.0);
    windows.reverse();
    Ok(Some((watermark, windows)))
}

/// A checkpoint written on the backend, read for the memory backend's operator: the watermark,
/// the open windows `(end, fired)`, and the entries in the order to apply them (a `None` value
/// deletes the entry: an incremental checkpoint's deletion). `None` for a checkpoint written
/// on the memory backend.
#[allow(clippy::type_complexity)]
pub(super) fn read_backend_checkpoint<K: StateData, A: StateData>(
    state: &StateRestore,
) -> Result<Option<(i64, Vec<(i64, bool)>, Vec<(PaneKey<K>, Option<A>)>)>> {
    let Some((watermark, windows)) = backend_operator_state(state)? else {
        return Ok(None);
    };
    let mut changes = Vec::new();
    for (_, bytes) in &state.groups {
        if bytes.first() == Some(&DELTA_TAG) {
            let (dels, puts): (Vec<PaneKey<K>>, Vec<(PaneKey<K>, A)>) = decode(&bytes[1..])?;
            changes.extend(dels.into_iter().map(|k| (k, None)));
            changes.extend(puts.into_iter().map(|(k, a)| (k, Some(a))));
        } else {
            let entries: Vec<(PaneKey<K>, A)> = decode(bytes)?;
            changes.extend(entries.into_iter().map(|(k, a)| (k, Some(a))));
        }
    }
    Ok(Some((watermark, windows, changes)))
}
