//! Operators shared by the windowed queries.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use streamcore::{Data, Operator, Output, Result, TaskContext, Timestamp};

/// Buffers records in groups by `due(record)` and hands each group to `f(due, records, out)`
/// once the input watermark reaches `due` (so every record of the group has arrived, if the
/// records of a group are emitted upstream before the watermark passes `due`), and the rest
/// at the end of the input. Groups are handed over in order of `due`.
///
/// Used after a hash exchange on `due` (`key_by(..).partitioned()`), it is the second phase
/// of a two-phase window computation: the first phase emits one partial result per window
/// and parallel instance when its own watermark passes the window; this one merges them.
#[derive(Clone)]
pub struct GroupOnWatermark<T, O, D, F> {
    due: D,
    f: F,
    pending: BTreeMap<i64, Vec<T>>,
    _o: PhantomData<fn() -> O>,
}

impl<T, O, D, F> GroupOnWatermark<T, O, D, F> {
    /// Groups by `due`, hands groups to `f`.
    pub fn new(due: D, f: F) -> Self {
        GroupOnWatermark {
            due,
            f,
            pending: BTreeMap::new(),
            _o: PhantomData,
        }
    }
}

impl<T, O, D, F> Operator for GroupOnWatermark<T, O, D, F>
where
    T: Data,
    O: Data,
    D: Fn(&T) -> i64 + Clone + Send + 'static,
    F: FnMut(i64, Vec<T>, &mut Output<O>) + Clone + Send + 'static,
{
    type In = T;
    type Out = O;

    fn process_batch(
        &mut self,
        batch: Vec<T>,
        _ctx: &mut TaskContext,
        _out: &mut Output<O>,
    ) -> Result<()> {
        for r in batch {
            self.pending.entry((self.due)(&r)).or_default().push(r);
        }
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: Timestamp,
        _ctx: &mut TaskContext,
        out: &mut Output<O>,
    ) -> Result<Option<Timestamp>> {
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > watermark.0 {
                break;
            }
            let (due, group) = entry.remove_entry();
            (self.f)(due, group, out);
        }
        Ok(Some(watermark))
    }

    fn close(&mut self, _ctx: &mut TaskContext, out: &mut Output<O>) -> Result<()> {
        for (due, group) in std::mem::take(&mut self.pending) {
            (self.f)(due, group, out);
        }
        Ok(())
    }
}
