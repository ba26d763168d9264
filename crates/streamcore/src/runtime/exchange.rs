//! Exchanges: how records cross from the tasks of one stage to the tasks of the next.
//!
//! Each downstream task owns one bounded channel of [`Envelope`]s that every upstream task
//! sends into. Senders route records (by key group, or round-robin by batch) into one buffer
//! per destination and send each buffer as a batch; watermarks and `End` go to every
//! destination. A full channel blocks the sender: that is the backpressure. The receiving
//! task tracks the watermark of each sender and forwards their minimum ([`Merge`]).
//!
//! An exchange whose senders and receiver are all one task has no channel: its receiving
//! chain runs in that task, each sender handing it batches by a call ([`FusedSender`]).

use super::control::{JobControl, CANCEL_CHECK};
use super::nodes::TICK_INTERVAL;
use super::push::Push;
use super::TaskRunner;
use crate::checkpoint::coordinator::CheckpointHub;
use crate::data::{Data, Key};
use crate::error::{Result, StreamError};
use crate::message::{CheckpointId, Control, Envelope, Message};
use crate::metrics::{ChannelEvent, ExchangeMetrics};
use crate::state::{key_group, owner_of};
use crate::time::Timestamp;
use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// The sending half shared by all routing strategies.
pub(crate) struct Outbox<T> {
    pub(crate) from: usize,
    pub(crate) queues: Vec<Sender<Envelope<T>>>,
    pub(crate) metrics: Arc<ExchangeMetrics>,
    pub(crate) control: Arc<JobControl>,
}

impl<T: Data> Outbox<T> {
    fn send(&self, dest: usize, message: Message<T>) -> Result<()> {
        let queue = &self.queues[dest];
        if let Message::Data(batch) = &message {
            let fill = queue.len() as u64;
            self.metrics.sent(batch.len());
            self.metrics.fill_sum.fetch_add(fill, Relaxed);
            self.metrics.fill_max.fetch_max(fill, Relaxed);
        }
        let mut envelope = Envelope {
            from: self.from,
            message,
        };
        match queue.try_send(envelope) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Disconnected(_)) => return Err(StreamError::Cancelled),
            Err(TrySendError::Full(e)) => envelope = e,
        }
        // Backpressure: wait for room, but notice a cancelled job within CANCEL_CHECK.
        let blocked = Instant::now();
        let result = loop {
            match queue.send_timeout(envelope, CANCEL_CHECK) {
                Ok(()) => break Ok(()),
                Err(SendTimeoutError::Disconnected(_)) => break Err(StreamError::Cancelled),
                Err(SendTimeoutError::Timeout(e)) if !self.control.is_cancelled() => envelope = e,
                Err(SendTimeoutError::Timeout(_)) => break Err(StreamError::Cancelled),
            }
        };
        self.metrics
            .blocked_ns
            .fetch_add(blocked.elapsed().as_nanos() as u64, Relaxed);
        result
    }

    fn broadcast(&self, message: Message<T>) -> Result<()> {
        for dest in 0..self.queues.len() {
            self.send(dest, message.clone())?;
        }
        Ok(())
    }

    /// Sends a control message to every destination (ticks stay in their task).
    fn control(&self, message: &Control) -> Result<()> {
        match message {
            Control::Tick(_) => Ok(()),
            other => self.broadcast(Message::Control(other.clone())),
        }
    }
}

/// Routes each record to the task owning its key's key group.
pub(crate) struct KeySender<T, K, KF> {
    pub(crate) outbox: Outbox<T>,
    pub(crate) key_fn: KF,
    pub(crate) key_groups: u32,
    pub(crate) buffers: Vec<Vec<T>>,
    pub(crate) _k: std::marker::PhantomData<fn() -> K>,
}

impl<T: Data, K: Key, KF: Fn(&T) -> K + Send + 'static> Push<T> for KeySender<T, K, KF> {
    fn push(&mut self, batch: Vec<T>) -> Result<()> {
        let n = self.buffers.len();
        if n == 1 {
            return self.outbox.send(0, Message::Data(batch));
        }
        let per_dest = batch.len() / n + 16;
        for record in batch {
            let group = key_group(&(self.key_fn)(&record), self.key_groups);
            let buf = &mut self.buffers[owner_of(group, self.key_groups, n)];
            if buf.capacity() == 0 {
                buf.reserve(per_dest);
            }
            buf.push(record);
        }
        for dest in 0..n {
            if !self.buffers[dest].is_empty() {
                let batch = std::mem::take(&mut self.buffers[dest]);
                self.outbox.send(dest, Message::Data(batch))?;
            }
        }
        Ok(())
    }
    fn control(&mut self, message: &Control) -> Result<()> {
        self.outbox.control(message)
    }
}

/// Spreads whole batches over the downstream tasks in turn (`rebalance`, `union`).
pub(crate) struct RoundRobinSender<T> {
    pub(crate) outbox: Outbox<T>,
    pub(crate) next: usize,
}

impl<T: Data> Push<T> for RoundRobinSender<T> {
    fn push(&mut self, batch: Vec<T>) -> Result<()> {
        let dest = self.next;
        self.next = (self.next + 1) % self.outbox.queues.len();
        self.outbox.send(dest, Message::Data(batch))
    }
    fn control(&mut self, message: &Control) -> Result<()> {
        self.outbox.control(message)
    }
}

/// Sends every batch to every downstream task (broadcast state: rules, configuration).
pub(crate) struct BroadcastSender<T> {
    pub(crate) outbox: Outbox<T>,
}

impl<T: Data> Push<T> for BroadcastSender<T> {
    fn push(&mut self, batch: Vec<T>) -> Result<()> {
        self.outbox.broadcast(Message::Data(batch))
    }
    fn control(&mut self, message: &Control) -> Result<()> {
        self.outbox.control(message)
    }
}

/// What the receiving end of an exchange does with what its senders send, wherever it runs:
/// merges their watermarks, aligns checkpoint barriers, applies each key-group change once,
/// and ends once every sender ended. The head of a stage of its own ([`ExchangeReceiver`])
/// feeds it from its queue; a receiving chain fused into its senders' task
/// ([`FusedSender`]) is fed by direct calls.
pub(crate) struct Merge<T> {
    pub(crate) senders: usize,
    pub(crate) down: Box<dyn Push<T>>,
    pub(crate) hub: Option<Arc<CheckpointHub>>,
    /// Key-group changes applied lately: each comes once from every sender, and is applied
    /// when the first copy arrives (the one that precedes the moved keys' records).
    pub(crate) applied_changes: std::collections::VecDeque<u64>,
    /// Where the watermark of each channel is published (for the watermark debugger).
    pub(crate) metrics: Arc<ExchangeMetrics>,
    /// This receiver's index (its subtask).
    pub(crate) subtask: usize,
    inputs: InputWatermarks,
    align: Alignment<T>,
}

/// How many key-group change ids a receiver remembers.
const REMEMBERED_CHANGES: usize = 64;

/// Barrier alignment: once a sender's barrier `n` arrived, what it sends next belongs after
/// the checkpoint and waits here until every other sender's barrier `n` arrived (or that
/// sender ended). Then the barrier goes down the chain and the held messages follow.
struct Alignment<T> {
    checkpoint: Option<(CheckpointId, Instant)>,
    arrived: Vec<bool>,
    held: std::collections::VecDeque<Envelope<T>>,
}

impl<T: Data> Merge<T> {
    pub(crate) fn new(
        senders: usize,
        down: Box<dyn Push<T>>,
        hub: Option<Arc<CheckpointHub>>,
        metrics: Arc<ExchangeMetrics>,
        subtask: usize,
    ) -> Self {
        Merge {
            senders,
            down,
            hub,
            applied_changes: Default::default(),
            metrics,
            subtask,
            inputs: InputWatermarks::new(senders),
            align: Alignment {
                checkpoint: None,
                arrived: vec![false; senders],
                held: Default::default(),
            },
        }
    }

    /// A message held back during an alignment that is now over, if any.
    fn next_held(&mut self) -> Option<Envelope<T>> {
        if self.align.checkpoint.is_some() {
            return None;
        }
        self.align.held.pop_front()
    }

    /// Handles one message; returns true once every sender ended.
    fn handle(&mut self, envelope: Envelope<T>) -> Result<bool> {
        let from = envelope.from;
        let align = &mut self.align;
        if align.checkpoint.is_some() && align.arrived[from] {
            align.held.push_back(envelope);
            return Ok(false);
        }
        let control = match envelope.message {
            Message::Data(batch) => {
                self.down.push(batch)?;
                return Ok(false);
            }
            Message::Control(c) => c,
        };
        let inputs = &mut self.inputs;
        let change = match control {
            Control::Watermark(wm) => {
                self.metrics
                    .channel(self.subtask, from, ChannelEvent::Watermark(wm));
                inputs.watermark(from, wm)
            }
            Control::Idle => {
                self.metrics.channel(self.subtask, from, ChannelEvent::Idle);
                inputs.idle(from)
            }
            // Never sent across an exchange: each task ticks itself.
            Control::Tick(_) => InputChange::None,
            Control::Barrier(id) => {
                if align.checkpoint.is_none() {
                    align.checkpoint = Some((id, Instant::now()));
                    align.arrived.iter_mut().for_each(|a| *a = false);
                }
                align.arrived[from] = true;
                InputChange::None
            }
            Control::KeyGroups(c) => {
                if !self.applied_changes.contains(&c.id) {
                    if self.applied_changes.len() == REMEMBERED_CHANGES {
                        self.applied_changes.pop_front();
                    }
                    self.applied_changes.push_back(c.id);
                    self.down.control(&Control::KeyGroups(c))?;
                }
                InputChange::None
            }
            Control::End => {
                self.metrics.channel(self.subtask, from, ChannelEvent::End);
                inputs.end(from)
            }
        };
        match change {
            InputChange::None => {}
            InputChange::Advanced(wm) => self.down.control(&Control::Watermark(wm))?,
            InputChange::AllIdle => self.down.control(&Control::Idle)?,
        }
        if let Some((id, started)) = align.checkpoint {
            let aligned = (0..self.senders).all(|s| align.arrived[s] || inputs.has_ended(s));
            if aligned {
                align.checkpoint = None;
                if let Some(hub) = &self.hub {
                    hub.record_alignment(started.elapsed());
                }
                self.down.control(&Control::Barrier(id))?;
            }
        }
        Ok(inputs.all_ended())
    }
}

/// The head of a stage fed by an exchange: receives from all upstream tasks through its
/// queue, and hands what arrives to its [`Merge`].
pub(crate) struct ExchangeReceiver<T> {
    pub(crate) queue: Receiver<Envelope<T>>,
    pub(crate) merge: Merge<T>,
}

impl<T: Data> TaskRunner for ExchangeReceiver<T> {
    fn run(mut self: Box<Self>, control: &JobControl) -> Result<()> {
        let merge = &mut self.merge;
        merge.down.open()?;
        let mut last_tick = Instant::now();
        loop {
            if last_tick.elapsed() >= TICK_INTERVAL {
                last_tick = Instant::now();
                merge.down.control(&Control::Tick(Timestamp::now()))?;
            }
            // Messages held back during an alignment come first once it is over.
            let envelope = match merge.next_held() {
                Some(e) => e,
                None => match self.queue.recv_timeout(TICK_INTERVAL) {
                    Ok(e) => e,
                    Err(RecvTimeoutError::Timeout) if !control.is_cancelled() => continue,
                    // Every sender gone without `End`, or the job was cancelled.
                    Err(_) => return Err(StreamError::Cancelled),
                },
            };
            if merge.handle(envelope)? {
                merge.down.control(&Control::End)?;
                crate::state::task_finished();
                return Ok(());
            }
        }
    }
}

/// One sending end of an exchange whose receiving chain is fused into the task of all its
/// senders (every sender and the receiver a single task,
/// [`crate::JobConfig::fuse_single_exchanges`]): a chain link instead of a queue and a
/// thread. Each sender hands its batches and control messages to the shared [`Merge`] by a
/// call — one uncontended lock per batch — and only the first sender passes its task's
/// ticks on (no thread of the receiver's own ticks it).
pub(crate) struct FusedSender<T> {
    pub(crate) from: usize,
    pub(crate) merge: Arc<std::sync::Mutex<FusedMerge<T>>>,
}

/// The [`Merge`] of a fused exchange, whether its chain was opened (by the first of its
/// senders to open), and whether it was sent `End` (once every sender ended).
pub(crate) struct FusedMerge<T> {
    pub(crate) merge: Merge<T>,
    pub(crate) opened: bool,
    pub(crate) ended: bool,
}

impl<T: Data> FusedSender<T> {
    fn with<R>(&self, f: impl FnOnce(&mut FusedMerge<T>) -> Result<R>) -> Result<R> {
        // A poisoned lock means a panic on this very thread, which fails the task anyway.
        let mut fused = self.merge.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut fused)
    }

    fn handle(&mut self, message: Message<T>) -> Result<()> {
        let from = self.from;
        self.with(|fused| {
            debug_assert!(!fused.ended, "a fused exchange got a message after its end");
            let merge = &mut fused.merge;
            if let Message::Data(batch) = &message {
                merge.metrics.sent(batch.len());
            }
            let mut ended = merge.handle(Envelope { from, message })?;
            while let Some(held) = merge.next_held() {
                ended |= merge.handle(held)?;
            }
            if ended {
                fused.ended = true;
                merge.down.control(&Control::End)?;
            }
            Ok(())
        })
    }
}

impl<T: Data> Push<T> for FusedSender<T> {
    fn open(&mut self) -> Result<()> {
        self.with(|fused| {
            if fused.opened {
                return Ok(());
            }
            fused.opened = true;
            fused.merge.down.open()
        })
    }

    fn push(&mut self, batch: Vec<T>) -> Result<()> {
        self.handle(Message::Data(batch))
    }

    fn control(&mut self, message: &Control) -> Result<()> {
        match message {
            Control::Tick(_) if self.from == 0 => {
                self.with(|fused| fused.merge.down.control(message))
            }
            Control::Tick(_) => Ok(()),
            other => self.handle(Message::Control(other.clone())),
        }
    }
}

/// What a control message did to the merged watermark of a task's inputs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InputChange {
    None,
    Advanced(Timestamp),
    AllIdle,
}

/// The watermarks of a task's inputs: the merged watermark is the minimum over the inputs that
/// are neither idle nor ended, and never goes backwards.
pub(crate) struct InputWatermarks {
    watermarks: Vec<Timestamp>,
    idle: Vec<bool>,
    ended_flags: Vec<bool>,
    ended: usize,
    current: Timestamp,
    all_idle_reported: bool,
}

impl InputWatermarks {
    pub(crate) fn new(inputs: usize) -> Self {
        InputWatermarks {
            watermarks: vec![Timestamp::MIN; inputs],
            idle: vec![false; inputs],
            ended_flags: vec![false; inputs],
            ended: 0,
            current: Timestamp::MIN,
            all_idle_reported: false,
        }
    }

    pub(crate) fn watermark(&mut self, from: usize, wm: Timestamp) -> InputChange {
        self.idle[from] = false;
        self.all_idle_reported = false;
        self.watermarks[from] = self.watermarks[from].max(wm);
        self.recompute()
    }

    pub(crate) fn idle(&mut self, from: usize) -> InputChange {
        self.idle[from] = true;
        self.recompute()
    }

    pub(crate) fn end(&mut self, from: usize) -> InputChange {
        self.watermarks[from] = Timestamp::MAX;
        self.idle[from] = false;
        self.ended_flags[from] = true;
        self.ended += 1;
        self.recompute()
    }

    pub(crate) fn has_ended(&self, from: usize) -> bool {
        self.ended_flags[from]
    }

    pub(crate) fn all_ended(&self) -> bool {
        self.ended == self.watermarks.len()
    }

    fn recompute(&mut self) -> InputChange {
        let active = self
            .watermarks
            .iter()
            .zip(&self.idle)
            .filter(|(_, idle)| !**idle)
            .map(|(w, _)| *w)
            .min();
        match active {
            Some(min) if min > self.current => {
                self.current = min;
                InputChange::Advanced(min)
            }
            Some(_) => InputChange::None,
            None if !self.all_idle_reported => {
                self.all_idle_reported = true;
                InputChange::AllIdle
            }
            None => InputChange::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_over_active_inputs_never_backwards() {
        let mut w = InputWatermarks::new(3);
        assert_eq!(w.watermark(0, Timestamp(10)), InputChange::None);
        assert_eq!(w.watermark(1, Timestamp(20)), InputChange::None);
        assert_eq!(
            w.watermark(2, Timestamp(5)),
            InputChange::Advanced(Timestamp(5))
        );
        // An idle input stops holding the others back.
        assert_eq!(w.idle(2), InputChange::Advanced(Timestamp(10)));
        // It comes back behind the merged watermark: nothing goes backwards.
        assert_eq!(w.watermark(2, Timestamp(7)), InputChange::None);
        assert_eq!(w.end(2), InputChange::None);
        assert_eq!(
            w.watermark(0, Timestamp(30)),
            InputChange::Advanced(Timestamp(20))
        );
        assert!(!w.all_ended());
    }

    #[test]
    fn all_idle_is_reported_once() {
        let mut w = InputWatermarks::new(2);
        assert_eq!(w.idle(0), InputChange::None);
        assert_eq!(w.idle(1), InputChange::AllIdle);
        assert_eq!(w.idle(1), InputChange::None);
        assert_eq!(
            w.watermark(1, Timestamp(3)),
            InputChange::Advanced(Timestamp(3))
        );
    }

    #[test]
    fn ended_inputs_count_as_max() {
        let mut w = InputWatermarks::new(2);
        assert_eq!(w.watermark(0, Timestamp(3)), InputChange::None);
        assert_eq!(w.end(1), InputChange::Advanced(Timestamp(3)));
        assert_eq!(w.end(0), InputChange::Advanced(Timestamp::MAX));
        assert!(w.all_ended());
    }
}
