//! [`Push`]: how one node of a fused chain hands batches and control messages to the next,
//! as plain (per-batch) calls on the same thread.

use crate::data::Data;
use crate::error::Result;
use crate::message::Control;

/// The receiving end of a chain link. One virtual call per batch or control message, never
/// per record.
pub(crate) trait Push<T>: Send {
    /// Called once on the task's thread before any data; cascades downstream.
    fn open(&mut self) -> Result<()> {
        Ok(())
    }
    /// A batch of records.
    fn push(&mut self, batch: Vec<T>) -> Result<()>;
    /// A control message (watermark, idle, tick, barrier, key-group change, end). Links that
    /// do not act on it pass it on (an unconnected output drops it; exchange senders keep
    /// ticks in their task); stateful nodes snapshot on a barrier, apply a key-group
    /// change, fire timers on a watermark or tick, flush and close at the end.
    fn control(&mut self, message: &Control) -> Result<()>;
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
    fn control(&mut self, message: &Control) -> Result<()> {
        self.outs.iter_mut().try_for_each(|o| o.control(message))
    }
}

/// The consumer of a stream nobody reads (an unconnected output).
pub(crate) struct Discard;

impl<T: Data> Push<T> for Discard {
    fn push(&mut self, _batch: Vec<T>) -> Result<()> {
        Ok(())
    }
    fn control(&mut self, _message: &Control) -> Result<()> {
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
