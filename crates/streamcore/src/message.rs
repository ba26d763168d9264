//! [`Message`]: the one type that flows over exchanges — data batches and control messages,
//! in order.

use crate::time::Timestamp;

/// Identifies a checkpoint; increases by one per checkpoint.
pub type CheckpointId = u64;

/// A control message: what travels with the data, in order, without being data. Every link
/// of the runtime forwards it through one method (`Push::control`); only the nodes that act on
/// a kind of message — operators, sinks, exchange receivers — look inside. A new kind of
/// message is a new variant here plus the handling in those nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// No record with an event time at or before `t` will follow from this sender.
    Watermark(Timestamp),
    /// The sender's sources are all idle: leave it out of the watermark minimum until it
    /// sends a `Watermark` again.
    Idle,
    /// Processing time passed: the wall clock is at `t` (fires processing-time timers). Each
    /// task makes its own; it never crosses an exchange.
    Tick(Timestamp),
    /// Checkpoint barrier: everything before belongs to the checkpoint, everything after not.
    Barrier(CheckpointId),
    /// Key groups move in or out of this job (scale-out: see [`crate::state::KeyGroupChange`]).
    KeyGroups(std::sync::Arc<crate::state::KeyGroupChange>),
    /// This sender will send nothing more.
    End,
}

/// What an upstream task sends to a downstream task: data and control messages, in order —
/// everything sent before a `Watermark(t)` was sent before it arrives.
#[derive(Debug, Clone, PartialEq)]
pub enum Message<T> {
    /// A batch of records.
    Data(Vec<T>),
    /// A control message.
    Control(Control),
}

/// A message tagged with the index of the upstream subtask that sent it.
#[derive(Debug)]
pub(crate) struct Envelope<T> {
    pub(crate) from: usize,
    pub(crate) message: Message<T>,
}
