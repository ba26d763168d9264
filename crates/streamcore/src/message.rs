//! [`Message`]: the one type that flows over exchanges — data batches and control messages,
//! in order.

use crate::time::Timestamp;

/// Identifies a checkpoint; increases by one per checkpoint.
pub type CheckpointId = u64;

/// What an upstream task sends to a downstream task. Control messages travel in order with
/// the data: everything sent before a `Watermark(t)` was sent before it arrives.
#[derive(Debug, Clone, PartialEq)]
pub enum Message<T> {
    /// A batch of records.
    Data(Vec<T>),
    /// No record with an event time at or before `t` will follow from this sender.
    Watermark(Timestamp),
    /// The sender's sources are all idle: leave it out of the watermark minimum until it
    /// sends a `Watermark` again.
    Idle,
    /// Checkpoint barrier: everything before belongs to the checkpoint, everything after not.
    Barrier(CheckpointId),
    /// Key groups move in or out of this job (scale-out: see [`crate::state::KeyGroupChange`]).
    KeyGroups(std::sync::Arc<crate::state::KeyGroupChange>),
    /// This sender will send nothing more.
    End,
}

/// A message tagged with the index of the upstream subtask that sent it.
#[derive(Debug)]
pub(crate) struct Envelope<T> {
    pub(crate) from: usize,
    pub(crate) message: Message<T>,
}
