//! Global windows with a trigger, and count windows (a global window that fires and purges
//! every `n` records). The window reported for a result spans the event times of its records.
//! Each key's window is keyed state on the job's backend ([`KeyedMap`]).

use super::{Window, WindowFunction};
use crate::checkpoint::{StateRestore, StateSnapshot};
use crate::context::TaskContext;
use crate::data::{Data, StateKey};
use crate::error::Result;
use crate::event_time::EventTime;
use crate::operator::{Operator, Output};
use crate::state::KeyedMap;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// What a trigger decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerAction {
    /// Keep accumulating.
    Continue,
    /// Emit the current result and keep the state.
    Fire,
    /// Emit the current result and start over.
    FireAndPurge,
}

/// Decides when a key's global window emits.
///
/// ```
/// use streamcore::window::{Trigger, TriggerAction};
/// use streamcore::Timestamp;
///
/// /// Fires whenever an amount above 1000 arrives.
/// #[derive(Clone)]
/// struct BigAmount;
/// impl Trigger<(Timestamp, i64)> for BigAmount {
///     fn on_record(&mut self, r: &(Timestamp, i64), _count: u64) -> TriggerAction {
///         if r.1 > 1000 { TriggerAction::FireAndPurge } else { TriggerAction::Continue }
///     }
/// }
/// ```
pub trait Trigger<T>: Clone + Send + 'static {
    /// Called for each record after it was added; `count` records are in the window now.
    fn on_record(&mut self, record: &T, count: u64) -> TriggerAction;
}

/// Fires and purges every `n` records: count windows.
#[derive(Clone, Copy, Debug)]
pub struct CountTrigger(pub u64);

impl<T> Trigger<T> for CountTrigger {
    fn on_record(&mut self, _record: &T, count: u64) -> TriggerAction {
        if count >= self.0 {
            TriggerAction::FireAndPurge
        } else {
            TriggerAction::Continue
        }
    }
}

#[derive(Serialize, Deserialize)]
struct GlobalState<A> {
    acc: A,
    count: u64,
    first: i64,
    last: i64,
}

pub(crate) struct GlobalWindowOperator<T, K, KF, F: WindowFunction<K, T>, Tr> {
    key_fn: KF,
    func: F,
    trigger: Tr,
    /// Each key's window (set in `open`).
    state: Option<KeyedMap<K, GlobalState<F::Acc>>>,
}

impl<T, K, KF: Clone, F: WindowFunction<K, T>, Tr: Clone> Clone
    for GlobalWindowOperator<T, K, KF, F, Tr>
{
    fn clone(&self) -> Self {
        Self::new(self.key_fn.clone(), self.func.clone(), self.trigger.clone())
    }
}

impl<T, K, KF, F: WindowFunction<K, T>, Tr> GlobalWindowOperator<T, K, KF, F, Tr> {
    pub(crate) fn new(key_fn: KF, func: F, trigger: Tr) -> Self {
        GlobalWindowOperator {
            key_fn,
            func,
            trigger,
            state: None,
        }
    }
}

fn span<A>(s: &GlobalState<A>) -> Window {
    Window {
        start: Timestamp(s.first),
        end: Timestamp(s.last.saturating_add(1)),
    }
}

impl<T, K, KF, F, Tr> Operator for GlobalWindowOperator<T, K, KF, F, Tr>
where
    T: Data + EventTime,
    K: StateKey,
    KF: Fn(&T) -> K + Clone + Send + 'static,
    F: WindowFunction<K, T>,
    Tr: Trigger<T>,
{
    type In = T;
    type Out = F::Out;

    fn open(&mut self, ctx: &mut TaskContext) -> Result<()> {
        self.state = Some(KeyedMap::open_incremental(ctx)?);
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: Vec<T>,
        ctx: &mut TaskContext,
        out: &mut Output<F::Out>,
    ) -> Result<()> {
        let map = self.state.as_mut().expect("opened");
        for record in batch {
            let ts = record.event_time().millis();
            let key = (self.key_fn)(&record);
            let func = &mut self.func;
            let state = map.entry_or_insert_with(key.clone(), |_| GlobalState {
                acc: func.create(),
                count: 0,
                first: ts,
                last: ts,
            })?;
            state.count += 1;
            state.first = state.first.min(ts);
            state.last = state.last.max(ts);
            let action = self.trigger.on_record(&record, state.count);
            func.add(&mut state.acc, record);
            match action {
                TriggerAction::Continue => {}
                TriggerAction::Fire => {
                    func.emit(&key, span(state), &state.acc, out);
                    ctx.stats().windows_fired += 1;
                }
                TriggerAction::FireAndPurge => {
                    func.emit(&key, span(state), &state.acc, out);
                    ctx.stats().windows_fired += 1;
                    map.remove(&key)?;
                }
            }
        }
        let stats = ctx.stats();
        stats.state_keys = map.len() as u64;
        stats.state_bytes = (map.len()
            * (std::mem::size_of::<K>() + std::mem::size_of::<GlobalState<F::Acc>>()))
            as u64;
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: Timestamp,
        ctx: &mut TaskContext,
        out: &mut Output<F::Out>,
    ) -> Result<Option<Timestamp>> {
        if watermark == Timestamp::MAX {
            // The end of the input: what is pending fires, so nothing is silently lost.
            let (func, mut fired) = (&mut self.func, 0);
            self.state.as_mut().expect("opened").retain(|key, state| {
                func.emit(key, span(state), &state.acc, out);
                fired += 1;
                false
            })?;
            ctx.stats().windows_fired += fired;
            ctx.stats().state_keys = 0;
            ctx.stats().state_bytes = 0;
        }
        Ok(Some(watermark))
    }

    fn snapshot_state(&mut self, ctx: &mut TaskContext, state: &mut StateSnapshot) -> Result<()> {
        self.state.as_mut().expect("opened").snapshot(ctx, state)
    }

    fn restore_state(&mut self, ctx: &mut TaskContext, state: &StateRestore) -> Result<()> {
        let map = self.state.as_mut().expect("opened");
        map.restore(state)?;
        ctx.stats().state_keys = map.len() as u64;
        Ok(())
    }
}
