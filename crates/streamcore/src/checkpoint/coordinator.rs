//! The checkpoint coordinator: triggers checkpoints, collects every node instance's
//! acknowledgement, persists complete checkpoints, and commits the sinks' transactions.
//!
//! Tasks talk to it through the [`CheckpointHub`] (an atomic with the last triggered id, and a
//! channel of acknowledgements: once per checkpoint per node instance, never per record).

use super::state::StateSnapshot;
use super::storage::{CheckpointData, CheckpointKind, CheckpointStorage, InstanceState};
use super::CheckpointConfig;
use crate::error::{Result, StreamError};
use crate::message::CheckpointId;
use crate::metrics::CheckpointMetrics;
use crate::runtime::control::JobControl;
use crate::sink::Committer;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one node instance hands over: its state, and a sink's pre-committed transactions.
#[derive(Clone, Debug, Default)]
pub(crate) struct TaskSnapshot {
    pub(crate) state: StateSnapshot,
    pub(crate) committables: Vec<Vec<u8>>,
}

impl TaskSnapshot {
    pub(crate) fn of_state(state: StateSnapshot) -> Self {
        TaskSnapshot {
            state,
            committables: Vec::new(),
        }
    }

    pub(crate) fn of_committables(committables: Vec<Vec<u8>>) -> Self {
        TaskSnapshot {
            state: StateSnapshot::default(),
            committables,
        }
    }
}

pub(crate) enum HubMessage {
    Ack {
        checkpoint: CheckpointId,
        node: usize,
        subtask: usize,
        snapshot: TaskSnapshot,
    },
    Finished {
        node: usize,
        subtask: usize,
        snapshot: TaskSnapshot,
    },
    Savepoint(SavepointRequest),
}

/// A request for a savepoint; the reply carries its location.
pub(crate) struct SavepointRequest {
    pub(crate) stop: bool,
    pub(crate) reply: Sender<Result<PathBuf>>,
}

/// The tasks' side of the coordinator.
pub(crate) struct CheckpointHub {
    triggered: AtomicU64,
    /// The newest checkpoint complete and committed (0: none yet).
    completed: AtomicU64,
    /// Where the newest completed checkpoint was written, and the storage that holds it.
    completed_location:
        std::sync::Mutex<Option<(super::CheckpointLocation, Arc<dyn CheckpointStorage>)>>,
    /// The savepoint that ends the job (stop with savepoint), 0 if none: sources emit nothing
    /// after its barrier.
    stop_at: AtomicU64,
    /// The newest triggered savepoint (0: none): operators snapshot it in full.
    savepoint: AtomicU64,
    /// A task asked for a checkpoint as soon as possible.
    requested: std::sync::atomic::AtomicBool,
    alignment_ns: AtomicU64,
    tx: Sender<HubMessage>,
    metrics: Arc<CheckpointMetrics>,
}

impl CheckpointHub {
    /// The id of the newest triggered checkpoint (0: none yet).
    #[inline]
    pub(crate) fn triggered(&self) -> CheckpointId {
        self.triggered.load(Ordering::Acquire)
    }

    /// The id of the newest checkpoint that is complete and whose output is committed.
    pub(crate) fn completed(&self) -> CheckpointId {
        self.completed.load(Ordering::Acquire)
    }

    /// The id of the savepoint that will end the job (0: none): a source that injected its
    /// barrier emits nothing more.
    #[inline]
    pub(crate) fn stop_at(&self) -> CheckpointId {
        self.stop_at.load(Ordering::Acquire)
    }

    /// What an operator snapshotting for checkpoint `id` chains incremental state on: a
    /// savepoint names no completed checkpoint, so it is always written in full (savepoints
    /// stand alone; retention may delete any periodic checkpoint).
    pub(crate) fn snapshot_target(&self, id: CheckpointId) -> crate::context::SnapshotTarget {
        let savepoint = self.savepoint.load(Ordering::Acquire) == id;
        let kind = if savepoint {
            super::CheckpointKind::Savepoint
        } else {
            super::CheckpointKind::Checkpoint
        };
        crate::context::SnapshotTarget {
            id,
            name: super::storage::checkpoint_name(id, kind),
            completed: if savepoint { 0 } else { self.completed() },
        }
    }

    /// Where the newest completed checkpoint was written.
    pub(crate) fn completed_location(&self) -> Option<super::CheckpointLocation> {
        self.completed_location
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(l, _)| l.clone())
    }

    /// The newest completed checkpoint, read back from its storage.
    pub(crate) fn load_completed(&self) -> Result<Option<super::LoadedCheckpoint>> {
        let completed = self
            .completed_location
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        completed
            .map(|(location, storage)| storage.load(&location))
            .transpose()
    }

    /// Asks for a checkpoint now rather than at the next interval; returns the first id that
    /// will include everything the caller emitted before asking.
    pub(crate) fn request(&self) -> CheckpointId {
        let next = self.triggered() + 1;
        self.requested.store(true, Ordering::Release);
        next
    }

    /// Node instance `(node, subtask)` took its part of `checkpoint`.
    pub(crate) fn ack(
        &self,
        checkpoint: CheckpointId,
        node: usize,
        subtask: usize,
        snapshot: TaskSnapshot,
    ) {
        // The coordinator outlives the tasks; a send error means the job is being torn down.
        let _ = self.tx.send(HubMessage::Ack {
            checkpoint,
            node,
            subtask,
            snapshot,
        });
    }

    /// Node instance `(node, subtask)` ended; `snapshot` stands for it in every later
    /// checkpoint.
    pub(crate) fn finished(&self, node: usize, subtask: usize, snapshot: TaskSnapshot) {
        let _ = self.tx.send(HubMessage::Finished {
            node,
            subtask,
            snapshot,
        });
    }

    /// A task spent `d` aligning barriers for the current checkpoint.
    pub(crate) fn record_alignment(&self, d: Duration) {
        self.alignment_ns
            .fetch_max(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// An operator instance took `d` to rebuild its state from the restored checkpoint.
    pub(crate) fn record_state_restore(&self, d: Duration) {
        self.metrics
            .state_restore_us
            .fetch_max(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Asks for a savepoint (and, with `stop`, for the job to stop right after it).
    pub(crate) fn request_savepoint(&self, stop: bool) -> Receiver<Result<PathBuf>> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        let _ = self
            .tx
            .send(HubMessage::Savepoint(SavepointRequest { stop, reply }));
        rx
    }
}

/// A node whose instances take part in checkpoints.
pub(crate) struct Participant {
    pub(crate) node: usize,
    /// The node's state id: what the checkpoint keys its state by.
    pub(crate) id: String,
    pub(crate) parallelism: usize,
}

struct Pending {
    id: CheckpointId,
    kind: CheckpointKind,
    started: Instant,
    acks: HashMap<(usize, usize), TaskSnapshot>,
    requests: Vec<SavepointRequest>,
}

/// The coordinator thread's state.
pub(crate) struct Coordinator {
    pub(crate) rx: Receiver<HubMessage>,
    pub(crate) hub: Arc<CheckpointHub>,
    pub(crate) storage: Arc<dyn CheckpointStorage>,
    pub(crate) config: CheckpointConfig,
    pub(crate) job: String,
    pub(crate) key_groups: u32,
    pub(crate) participants: Vec<Participant>,
    pub(crate) committers: Vec<(usize, Box<dyn Committer>)>,
    pub(crate) control: Arc<JobControl>,
    pub(crate) metrics: Arc<CheckpointMetrics>,
    pub(crate) next_id: CheckpointId,
}

/// Makes a hub and the receiving end the coordinator reads.
pub(crate) fn channel(
    metrics: Arc<CheckpointMetrics>,
) -> (Arc<CheckpointHub>, Receiver<HubMessage>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let hub = Arc::new(CheckpointHub {
        triggered: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        completed_location: Default::default(),
        stop_at: AtomicU64::new(0),
        savepoint: AtomicU64::new(0),
        requested: std::sync::atomic::AtomicBool::new(false),
        alignment_ns: AtomicU64::new(0),
        tx,
        metrics,
    });
    (hub, rx)
}

/// How often the coordinator looks at the job while it waits.
const POLL: Duration = Duration::from_millis(5);

impl Coordinator {
    fn expected(&self) -> usize {
        self.participants.iter().map(|p| p.parallelism).sum()
    }

    /// Runs until every task finished (then writes the final checkpoint) or the job stopped.
    pub(crate) fn run(mut self) -> Result<()> {
        let mut pending: Option<Pending> = None;
        let mut finished: HashMap<(usize, usize), TaskSnapshot> = HashMap::new();
        let mut requests: Vec<SavepointRequest> = Vec::new();
        let mut next_trigger = Instant::now() + self.config.interval;
        let expected = self.expected();
        loop {
            if self.control.is_cancelled() {
                for r in requests
                    .drain(..)
                    .chain(pending.into_iter().flat_map(|p| p.requests))
                {
                    let _ = r.reply.send(Err(StreamError::Cancelled));
                }
                return Ok(());
            }
            let wait = match &pending {
                Some(_) => POLL,
                None => next_trigger
                    .saturating_duration_since(Instant::now())
                    .min(POLL),
            };
            let mut next = self.rx.recv_timeout(wait);
            loop {
                match next {
                    Ok(HubMessage::Ack {
                        checkpoint,
                        node,
                        subtask,
                        snapshot,
                    }) => {
                        if let Some(p) = pending.as_mut().filter(|p| p.id == checkpoint) {
                            p.acks.insert((node, subtask), snapshot);
                        }
                    }
                    Ok(HubMessage::Finished {
                        node,
                        subtask,
                        snapshot,
                    }) => {
                        finished.insert((node, subtask), snapshot);
                    }
                    Ok(HubMessage::Savepoint(r)) => requests.push(r),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                }
                next = self.rx.try_recv().map_err(|_| RecvTimeoutError::Timeout);
            }
            if let Some(p) = pending.take() {
                let done = self.participants.iter().all(|part| {
                    (0..part.parallelism).all(|s| {
                        p.acks.contains_key(&(part.node, s))
                            || finished.contains_key(&(part.node, s))
                    })
                });
                if done {
                    let stop = p.requests.iter().any(|r| r.stop);
                    let id = p.id;
                    self.complete(p, &finished)?;
                    self.hub.completed.store(id, Ordering::Release);
                    next_trigger = Instant::now() + self.config.interval;
                    if stop {
                        self.control.stop_with_savepoint();
                        return Ok(());
                    }
                } else {
                    pending = Some(p);
                }
            }
            if pending.is_none() && finished.len() == expected {
                let final_cp = Pending {
                    id: self.next_id,
                    kind: CheckpointKind::Final,
                    started: Instant::now(),
                    acks: HashMap::new(),
                    requests: std::mem::take(&mut requests),
                };
                self.next_id += 1;
                self.complete(final_cp, &finished)?;
                return Ok(());
            }
            let due = Instant::now() >= next_trigger
                || !requests.is_empty()
                || (pending.is_none() && self.hub.requested.swap(false, Ordering::AcqRel));
            if pending.is_none() && due {
                let id = self.next_id;
                self.next_id += 1;
                let kind = if requests.is_empty() {
                    CheckpointKind::Checkpoint
                } else {
                    CheckpointKind::Savepoint
                };
                self.hub.alignment_ns.store(0, Ordering::Relaxed);
                if kind == CheckpointKind::Savepoint {
                    self.hub.savepoint.store(id, Ordering::Release);
                }
                if requests.iter().any(|r| r.stop) {
                    self.hub.stop_at.store(id, Ordering::Release);
                }
                self.hub.triggered.store(id, Ordering::Release);
                tracing::debug!(id, ?kind, "checkpoint triggered");
                pending = Some(Pending {
                    id,
                    kind,
                    started: Instant::now(),
                    acks: HashMap::new(),
                    requests: std::mem::take(&mut requests),
                });
            }
        }
    }

    /// Persists a checkpoint whose every participant answered, then commits its sinks'
    /// transactions and applies retention.
    fn complete(
        &mut self,
        mut p: Pending,
        finished: &HashMap<(usize, usize), TaskSnapshot>,
    ) -> Result<()> {
        let mut nodes = Vec::with_capacity(self.participants.len());
        let mut commits: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
        for part in &self.participants {
            let mut instances = Vec::with_capacity(part.parallelism);
            for subtask in 0..part.parallelism {
                let snap = match p.acks.remove(&(part.node, subtask)) {
                    Some(s) => s,
                    None => finished
                        .get(&(part.node, subtask))
                        .cloned()
                        .unwrap_or_default(),
                };
                if !snap.committables.is_empty() {
                    commits.push((part.node, snap.committables.clone()));
                }
                instances.push(InstanceState {
                    subtask,
                    snapshot: snap.state,
                    committables: snap.committables,
                });
            }
            nodes.push((part.id.clone(), instances));
        }
        let data = CheckpointData {
            job: self.job.clone(),
            id: p.id,
            kind: p.kind,
            key_groups: self.key_groups,
            nodes,
        };
        let upload_started = Instant::now();
        let written = match self.storage.write(&data) {
            Ok(w) => w,
            Err(e) => {
                self.metrics.failed.fetch_add(1, Ordering::Relaxed);
                for r in p.requests {
                    let _ = r.reply.send(Err(StreamError::Checkpoint(e.to_string())));
                }
                return Err(StreamError::Checkpoint(format!(
                    "writing checkpoint {} failed: {e}",
                    p.id
                )));
            }
        };
        let upload = upload_started.elapsed();
        // Downstream (sinks) first, sources last: see `committers` in the executor.
        for (node, committables) in commits.into_iter().rev() {
            if let Some((_, committer)) = self.committers.iter().find(|(n, _)| *n == node) {
                for c in &committables {
                    committer.commit(c).map_err(|e| {
                        StreamError::Checkpoint(format!(
                            "committing the output of checkpoint {}: {e}",
                            p.id
                        ))
                    })?;
                }
            }
        }
        if p.kind == CheckpointKind::Checkpoint {
            self.storage.retain(self.config.retain)?;
        }
        let duration = p.started.elapsed();
        let alignment = Duration::from_nanos(self.hub.alignment_ns.load(Ordering::Relaxed));
        self.metrics.completed(
            p.id,
            duration,
            alignment,
            written.bytes,
            written.location.as_path(),
        );
        self.metrics.written(written.bytes, upload);
        tracing::info!(
            id = p.id,
            kind = ?p.kind,
            ms = duration.as_millis() as u64,
            bytes = written.bytes,
            upload_ms = upload.as_millis() as u64,
            "checkpoint complete"
        );
        *self
            .hub
            .completed_location
            .lock()
            .unwrap_or_else(|p| p.into_inner()) =
            Some((written.location.clone(), self.storage.clone()));
        for r in p.requests {
            let _ = r.reply.send(Ok(written.location.as_path().to_path_buf()));
        }
        Ok(())
    }
}
