//! [`Push`]: how one node of a fused chain hands batches and control messages to the next,
//! as plain (per-batch) calls on the same thread.

use crate::data::Data;
use crate::error::Result;
use crate::message::CheckpointId;
use crate::state::KeyGroupChange;
use crate::time::Timestamp;
use std::sync::Arc;

/// The receiving end of a chain link. One virtual call per batch, never per record.
pub(crate) trait Push<T>: Send {
    /// Called once on the task's thread before any data; cascades downstream.
    fn open(&mut self) -> Result<()> {
        Ok(())
    }
    /// A batch of records.
    fn push(&mut self, batch: Vec<T>) -> Result<()>;
    /// The input watermark advanced to `wm`.
    fn watermark(&mut self, wm: Timestamp) -> Result<()>;
    /// Processing time passed: `now` is the wall clock. Heads call it every few milliseconds
    /// so that processing-time timers fire even without input.
    fn tick(&mut self, _now: Timestamp) -> Result<()> {
        Ok(())
    }
    /// Every input of this chain is idle (see [`crate::event_time`]).
    fn idle(&mut self) -> Result<()> {
        Ok(())
    }
    /// Checkpoint barrier `id`: everything before it belongs to the checkpoint. Stateful
    /// nodes snapshot, sinks pre-commit; every node passes it on.
    fn barrier(&mut self, id: CheckpointId) -> Result<()>;
    /// Key groups move in or out of the job: stateful nodes apply the change, every node
    /// passes it on (see [`crate::state::KeyGroupChange`]).
    fn key_groups(&mut self, change: &Arc<KeyGroupChange>) -> Result<()>;
    /// End of input: flush and close.
    fn end(&mut self) -> Result<()>;
}

/// Fans one stream out to several consumers; clones every batch but the last.
pub(crate) struct Tee<T> {
    pub(crate) outs: Vec<Box<dyn Push<T>>>,
}

impl<T: Data> Push<T> for Tee<T> {
    fn open(&mut self) -> Result<()> {
        self.outs.iter_mut().try_for_each(|o| o.open())
    }
    fn push(&mut self, batch: Vec<T>) -> Result<()> {
        let (last, rest) = self.outs.split_last_mut().expect("a tee has consumers");
        for out in rest {
            out.push(batch.clone())?;
        }
        last.push(batch)
    }
    fn watermark(&mut self, wm: Timestamp) -> Result<()> {
        self.outs.iter_mut().try_for_each(|o| o.watermark(wm))
    }
    fn idle(&mut self) -> Result<()> {
        self.outs.iter_mut().try_for_each(|o| o.idle())
    }
    fn tick(&mut self, now: Timestamp) -> Result<()> {
        self.outs.iter_mut().try_for_each(|o| o.tick(now))
    }
    fn barrier(&mut self, id: CheckpointId) -> Result<()> {
        self.outs.iter_mut().try_for_each(|o| o.barrier(id))
    }
    fn key_groups(&mut self, change: &Arc<KeyGroupChange>) -> Result<()> {
        self.outs.iter_mut().try_for_each(|o| o.key_groups(change))
    }
    fn end(&mut self) -> Result<()> {
        self.outs.iter_mut().try_for_each(|o| o.end())
    }
}

/// The consumer of a stream nobody reads (an unconnected output).
pub(crate) struct Discard;

impl<T: Data> Push<T> for Discard {
    fn push(&mut self, _batch: Vec<T>) -> Result<()> {
        Ok(())
    }
    fn watermark(&mut self, _wm: Timestamp) -> Result<()> {
        Ok(())
    }
    fn barrier(&mut self, _id: CheckpointId) -> Result<()> {
        Ok(())
    }
    fn key_groups(&mut self, _change: &Arc<KeyGroupChange>) -> Result<()> {
        Ok(())
    }
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

/// One type-erased, already-built consumer: a `Box<dyn Push<T>>` inside an `Any`.
pub(crate) type ErasedPush = Box<dyn std::any::Any + Send>;

/// Joins the built consumers of one output into a single `Push<T>`.
pub(crate) fn join_consumers<T: Data>(consumers: Vec<ErasedPush>) -> Box<dyn Push<T>> {
    let mut outs: Vec<Box<dyn Push<T>>> = consumers
        .into_iter()
        .map(|c| {
            *c.downcast::<Box<dyn Push<T>>>()
                .expect("consumer's input type matches the producer's output type")
        })
        .collect();
    match outs.len() {
        0 => Box::new(Discard),
        1 => outs.pop().expect("one consumer"),
        _ => Box::new(Tee { outs }),
    }
}

/// Erases a built consumer so the graph can pass it to its producer's builder.
pub(crate) fn erase<T: Data>(push: Box<dyn Push<T>>) -> ErasedPush {
    Box::new(push)
}
