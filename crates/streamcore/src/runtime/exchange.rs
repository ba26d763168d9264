//! Exchanges: how records cross from the tasks of one stage to the tasks of the next.
//!
//! Each downstream task owns one bounded channel of [`Envelope`]s that every upstream task
//! sends into. Senders route records (by key group, or round-robin by batch) into one buffer
//! per destination and send each buffer as a batch; watermarks and `End` go to every
//! destination. A full channel blocks the sender: that is the backpressure. The receiving
//! task tracks the watermark of each sender and forwards their minimum.

use super::control::{JobControl, CANCEL_CHECK};
use super::push::Push;
use super::TaskRunner;
use crate::data::{Data, Key};
use crate::error::{Result, StreamError};
use crate::message::{Envelope, Message};
use crate::metrics::ExchangeMetrics;
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
            self.metrics.batches_sent.fetch_add(1, Relaxed);
            self.metrics
                .records_sent
                .fetch_add(batch.len() as u64, Relaxed);
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
    fn watermark(&mut self, wm: Timestamp) -> Result<()> {
        self.outbox.broadcast(Message::Watermark(wm))
    }
    fn end(&mut self) -> Result<()> {
        self.outbox.broadcast(Message::End)
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
    fn watermark(&mut self, wm: Timestamp) -> Result<()> {
        self.outbox.broadcast(Message::Watermark(wm))
    }
    fn end(&mut self) -> Result<()> {
        self.outbox.broadcast(Message::End)
    }
}

/// The head of a stage fed by an exchange: receives from all upstream tasks, merges their
/// watermarks, and ends once every sender ended.
pub(crate) struct ExchangeReceiver<T> {
    pub(crate) queue: Receiver<Envelope<T>>,
    pub(crate) senders: usize,
    pub(crate) down: Box<dyn Push<T>>,
}

impl<T: Data> TaskRunner for ExchangeReceiver<T> {
    fn run(mut self: Box<Self>, control: &JobControl) -> Result<()> {
        self.down.open()?;
        let mut watermarks = vec![Timestamp::MIN; self.senders];
        let mut ended = 0;
        let mut current = Timestamp::MIN;
        loop {
            let envelope = match self.queue.recv_timeout(CANCEL_CHECK) {
                Ok(e) => e,
                Err(RecvTimeoutError::Timeout) if !control.is_cancelled() => continue,
                // Every sender gone without `End`, or the job was cancelled.
                Err(_) => return Err(StreamError::Cancelled),
            };
            let from = envelope.from;
            match envelope.message {
                Message::Data(batch) => self.down.push(batch)?,
                Message::Watermark(wm) => watermarks[from] = watermarks[from].max(wm),
                Message::Barrier(_) => {}
                Message::End => {
                    watermarks[from] = Timestamp::MAX;
                    ended += 1;
                }
            }
            let min = watermarks.iter().copied().min().unwrap_or(Timestamp::MAX);
            if min > current {
                current = min;
                self.down.watermark(current)?;
            }
            if ended == self.senders {
                return self.down.end();
            }
        }
    }
}
