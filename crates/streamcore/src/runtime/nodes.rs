//! The runtime wrappers that turn user-facing pieces into chain links: [`OperatorNode`] runs an
//! [`Operator`] and measures it, [`SinkNode`] drives a [`SinkWriter`], and [`SourceRunner`]
//! drives a [`SourceReader`] at the head of a stage.

use super::control::JobControl;
use super::push::Push;
use super::TaskRunner;
use crate::checkpoint::coordinator::{CheckpointHub, TaskSnapshot};
use crate::checkpoint::{StateRestore, StateSnapshot};
use crate::context::TaskContext;
use crate::data::Data;
use crate::error::{Result, StreamError};
use crate::event_time::{WatermarkGenerator, WatermarkStatus};
use crate::message::{CheckpointId, Control};
use crate::metrics::OperatorMetrics;
use crate::operator::{Operator, Output};
use crate::sink::SinkWriter;
use crate::source::{SourcePoll, SourceReader};
use crate::state::{key_groups_of, KeyGroupChange};
use crate::time::Timestamp;
use std::marker::PhantomData;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often stage heads tell their chain the processing time (for processing-time timers).
pub(crate) const TICK_INTERVAL: Duration = Duration::from_millis(10);

/// How long a source that reported `Idle` waits before it is polled again.
const IDLE_WAIT: Duration = Duration::from_millis(1);

/// How often a source publishes its split watermarks to the metrics.
const SPLIT_REPORT_INTERVAL: Duration = Duration::from_millis(200);

/// Publishes the rejections a task made since the last call into its `failed` counter.
fn publish_rejections(ctx: &TaskContext, seen: &mut u64, metrics: &OperatorMetrics) {
    if ctx.rejected != *seen {
        metrics.failed.fetch_add(ctx.rejected - *seen, Relaxed);
        *seen = ctx.rejected;
    }
}

pub(crate) struct OperatorNode<Op: Operator> {
    pub(crate) op: Op,
    /// A copy of the operator as built, never opened: what a key-group change rebuilds the
    /// instance from (jobs with checkpoints only: changes move state through them).
    pub(crate) prototype: Option<Op>,
    pub(crate) ctx: TaskContext,
    pub(crate) out: Output<Op::Out>,
    pub(crate) metrics: Arc<OperatorMetrics>,
    pub(crate) rejected_seen: u64,
    pub(crate) published_stats: crate::context::OperatorStats,
    pub(crate) checkpoint: Option<NodeCheckpoint>,
}

impl NodeCheckpoint {
    /// This instance took its part of checkpoint `id`.
    fn ack(&self, id: CheckpointId, snapshot: TaskSnapshot) {
        self.hub.ack(id, self.node, self.subtask, snapshot);
    }

    /// This instance ended; `snapshot` stands for it from now on.
    fn finished(&self, snapshot: TaskSnapshot) {
        self.hub.finished(self.node, self.subtask, snapshot);
    }
}

/// A node's link to the checkpoint coordinator.
pub(crate) struct NodeCheckpoint {
    pub(crate) hub: Arc<CheckpointHub>,
    /// The node's id in the graph and this instance's index.
    pub(crate) node: usize,
    pub(crate) subtask: usize,
    /// State to restore when the task opens (taken then).
    pub(crate) restore: Option<StateRestore>,
}

impl<Op: Operator> OperatorNode<Op> {
    fn after_hook(&mut self) -> Result<()> {
        // What the user function rejected follows the error policy (the first error stops).
        let rejections = self.out.take_rejections();
        let mut outcome = Ok(());
        for rejection in rejections {
            outcome = self.ctx.reject_rendered(rejection);
            if outcome.is_err() {
                break;
            }
        }
        publish_rejections(&self.ctx, &mut self.rejected_seen, &self.metrics);
        outcome?;
        if self.ctx.stats != self.published_stats {
            self.metrics.publish_stats(&self.ctx.stats);
            self.published_stats = self.ctx.stats;
        }
        let discarded = self.out.take_side_discarded();
        if discarded > 0 {
            self.metrics.side_discarded.fetch_add(discarded, Relaxed);
        }
        self.out.flush()
    }
}

impl<Op: Operator + Clone> OperatorNode<Op> {
    /// Rebuilds this instance with `change` applied: from a pristine copy of the operator,
    /// restored from its own snapshot minus the released key groups plus the adopted ones.
    /// An instance none of whose key groups the change touches keeps its state as it is, and
    /// one without keyed state there has nothing to move.
    fn apply_key_group_change(&mut self, change: &KeyGroupChange) -> Result<()> {
        let info = &self.ctx.info;
        let owned = key_groups_of(info.subtask, info.key_groups, info.parallelism);
        if !change.touches(&owned) {
            return Ok(());
        }
        let started = Instant::now();
        let mut current = StateSnapshot::default();
        self.op.snapshot_state(&mut self.ctx, &mut current)?;
        let (name, id) = (self.ctx.info.name.clone(), self.ctx.info.id.clone());
        let adopts_here = change
            .state()
            .node(&id)
            .iter()
            .any(|(g, _)| owned.contains(g));
        if current.groups.is_empty() && !adopts_here {
            return Ok(());
        }
        let Some(prototype) = &self.prototype else {
            return Err(StreamError::Config(format!(
                "operator `{name}`: key groups can move only in a job with checkpoints"
            )));
        };
        let restore = change.restore_for(&id, &owned, current);
        let mut op = prototype.clone();
        op.open(&mut self.ctx)?;
        op.restore_state(&mut self.ctx, &restore)?;
        self.op = op;
        let took = started.elapsed();
        self.metrics.key_group_changes.fetch_add(1, Relaxed);
        self.metrics
            .key_group_change_ns
            .fetch_add(took.as_nanos() as u64, Relaxed);
        tracing::debug!(
            node = %name,
            subtask = self.ctx.info.subtask,
            change = ?change,
            ms = took.as_millis() as u64,
            "key groups moved"
        );
        Ok(())
    }
}

impl<Op: Operator + Clone> Push<Op::In> for OperatorNode<Op> {
    fn open(&mut self) -> Result<()> {
        self.open_node()
    }

    #[inline]
    fn push(&mut self, batch: Vec<Op::In>) -> Result<()> {
        self.push_batch(batch)
    }

    /// The one dispatch of control messages for operators.
    fn control(&mut self, message: &Control) -> Result<()> {
        match message {
            Control::Watermark(wm) => self.watermark(*wm),
            Control::Idle => {
                self.metrics.idle.store(true, Relaxed);
                self.out.control(message)
            }
            Control::Tick(now) => self.tick(*now),
            Control::Barrier(id) => self.barrier(*id),
            Control::KeyGroups(change) => self.key_groups(change),
            Control::End => self.end(),
        }
    }
}

impl<Op: Operator + Clone> OperatorNode<Op> {
    fn open_node(&mut self) -> Result<()> {
        self.op.open(&mut self.ctx)?;
        if let Some(c) = self.checkpoint.as_mut() {
            let Some(state) = c.restore.take() else {
                return self.out.open();
            };
            let started = Instant::now();
            self.op.restore_state(&mut self.ctx, &state)?;
            c.hub.record_state_restore(started.elapsed());
            if self.ctx.stats != self.published_stats {
                self.metrics.publish_stats(&self.ctx.stats);
                self.published_stats = self.ctx.stats;
            }
        }
        self.out.open()
    }

    fn barrier(&mut self, id: CheckpointId) -> Result<()> {
        if let Some(c) = &self.checkpoint {
            let mut state = StateSnapshot::default();
            self.ctx.snapshot_target = Some(c.hub.snapshot_target(id));
            let snapped = self.op.snapshot_state(&mut self.ctx, &mut state);
            self.ctx.snapshot_target = None;
            snapped?;
            c.ack(id, TaskSnapshot::of_state(state));
        }
        self.after_hook()?;
        self.out.control(&Control::Barrier(id))
    }

    #[inline]
    fn push_batch(&mut self, batch: Vec<Op::In>) -> Result<()> {
        let n = batch.len();
        let started = Instant::now();
        self.op.process_batch(batch, &mut self.ctx, &mut self.out)?;
        self.metrics
            .record_batch(n, self.out.pending(), started.elapsed());
        self.after_hook()
    }

    fn watermark(&mut self, wm: Timestamp) -> Result<()> {
        self.metrics.set_watermark(wm);
        let before = self.out.pending();
        let forward = self.op.on_watermark(wm, &mut self.ctx, &mut self.out)?;
        self.metrics
            .records_out
            .fetch_add((self.out.pending() - before) as u64, Relaxed);
        self.after_hook()?;
        match forward {
            Some(w) => self.out.control(&Control::Watermark(w)),
            None => Ok(()),
        }
    }

    fn key_groups(&mut self, change: &Arc<KeyGroupChange>) -> Result<()> {
        // Emitted output goes first: it belongs before the change.
        self.out.flush()?;
        self.apply_key_group_change(change)?;
        self.after_hook()?;
        self.out.control(&Control::KeyGroups(change.clone()))
    }

    fn tick(&mut self, now: Timestamp) -> Result<()> {
        let before = self.out.pending();
        self.op
            .on_processing_time(now, &mut self.ctx, &mut self.out)?;
        let emitted = self.out.pending() - before;
        if emitted > 0 {
            self.metrics.records_out.fetch_add(emitted as u64, Relaxed);
        }
        self.after_hook()?;
        self.out.control(&Control::Tick(now))
    }

    fn end(&mut self) -> Result<()> {
        self.op.close(&mut self.ctx, &mut self.out)?;
        self.metrics
            .records_out
            .fetch_add(self.out.pending() as u64, Relaxed);
        self.after_hook()?;
        // What a closed operator still holds was emitted by `close`: it stands in later
        // checkpoints with empty state.
        if let Some(c) = &self.checkpoint {
            c.finished(TaskSnapshot::default());
        }
        self.out.control(&Control::End)
    }
}

pub(crate) struct SinkNode<T, W> {
    pub(crate) writer: W,
    pub(crate) metrics: Arc<OperatorMetrics>,
    pub(crate) checkpoint: Option<NodeCheckpoint>,
    pub(crate) _t: PhantomData<fn(T)>,
}

impl<T: Data, W: SinkWriter<T>> Push<T> for SinkNode<T, W> {
    fn push(&mut self, batch: Vec<T>) -> Result<()> {
        let n = batch.len();
        let started = Instant::now();
        self.writer.write_batch(batch)?;
        self.metrics.record_batch(n, 0, started.elapsed());
        Ok(())
    }
    /// The one dispatch of control messages for sinks.
    fn control(&mut self, message: &Control) -> Result<()> {
        match message {
            Control::Watermark(wm) => {
                self.metrics.set_watermark(*wm);
                self.writer.on_watermark(*wm)
            }
            // A sink holds no keyed state and no timers.
            Control::Idle | Control::Tick(_) | Control::KeyGroups(_) => Ok(()),
            Control::Barrier(id) => self.barrier(*id),
            Control::End => self.end(),
        }
    }
}

impl<T: Data, W: SinkWriter<T>> SinkNode<T, W> {
    fn barrier(&mut self, id: CheckpointId) -> Result<()> {
        let committables = self.writer.pre_commit(id)?;
        if let Some(c) = &self.checkpoint {
            c.ack(id, TaskSnapshot::of_committables(committables));
        }
        Ok(())
    }
    fn end(&mut self) -> Result<()> {
        match &self.checkpoint {
            Some(c) => {
                // The last output is committed by the final checkpoint, once every task ended.
                let committables = self.writer.pre_commit(CheckpointId::MAX)?;
                self.writer.close()?;
                c.finished(TaskSnapshot::of_committables(committables));
                Ok(())
            }
            None => self.writer.close(),
        }
    }
}

pub(crate) struct SourceRunner<T, R> {
    pub(crate) reader: R,
    pub(crate) watermarks: Option<Box<dyn WatermarkGenerator<T>>>,
    /// Least time between two watermarks sent (zero: after every batch that advanced it).
    pub(crate) watermark_interval: Duration,
    pub(crate) ctx: TaskContext,
    pub(crate) down: Box<dyn Push<T>>,
    pub(crate) metrics: Arc<OperatorMetrics>,
    pub(crate) batch_size: usize,
    pub(crate) checkpoint: Option<NodeCheckpoint>,
}

impl<T: Data, R: SourceReader<T>> SourceRunner<T, R> {
    /// The reader's position, as its node's state in a checkpoint.
    fn position(&mut self) -> Result<TaskSnapshot> {
        let mut snapshot = TaskSnapshot::of_state(StateSnapshot {
            operator: Some(self.reader.snapshot_position()?),
            ..Default::default()
        });
        snapshot.committables = self.reader.pre_commit()?;
        Ok(snapshot)
    }

    /// Records the reader's position for `id` and sends the barrier down the chain.
    fn inject_barrier(&mut self, id: CheckpointId) -> Result<()> {
        if self.checkpoint.is_some() {
            let position = self.position()?;
            if let Some(c) = &self.checkpoint {
                c.ack(id, position);
            }
        }
        self.down.control(&Control::Barrier(id))
    }
}

impl<T: Data, R: SourceReader<T>> TaskRunner for SourceRunner<T, R> {
    fn run(mut self: Box<Self>, control: &JobControl) -> Result<()> {
        self.down.open()?;
        let mut rejected_seen = 0;
        let mut last_status = WatermarkStatus::Active(Timestamp::MIN);
        let mut last_tick = Instant::now();
        let mut last_emit = Instant::now() - self.watermark_interval;
        // Each run has a fresh coordinator: its first checkpoint is 1 (or more), never seen here.
        let mut last_barrier = 0;
        if let Some(generator) = &mut self.watermarks {
            let now = Instant::now();
            for split in self.reader.initial_splits() {
                generator.announce_split(split, now);
            }
        }
        let mut last_split_report = Instant::now() - SPLIT_REPORT_INTERVAL;
        // After the barrier of a stop-with-savepoint the source emits nothing more: what an
        // at-least-once sink receives is exactly what the savepoint covers.
        let mut held = false;
        loop {
            let triggered = self.checkpoint.as_ref().map_or(0, |c| c.hub.triggered());
            if triggered > last_barrier {
                last_barrier = triggered;
                self.inject_barrier(triggered)?;
                held = self
                    .checkpoint
                    .as_ref()
                    .is_some_and(|c| c.hub.stop_at() == triggered);
            }
            // Held after a stop-with-savepoint barrier: no processing-time timer fires either.
            if !held && last_tick.elapsed() >= TICK_INTERVAL {
                last_tick = Instant::now();
                self.down.control(&Control::Tick(Timestamp::now()))?;
            }
            if control.is_cancelled() {
                return Err(StreamError::Cancelled);
            }
            if control.is_stopping() {
                break;
            }
            if held {
                std::thread::sleep(IDLE_WAIT);
                continue;
            }
            let mut batch = Vec::with_capacity(self.batch_size);
            let started = Instant::now();
            let poll = self
                .reader
                .poll_batch(&mut batch, self.batch_size, &mut self.ctx)?;
            // Records the reader dropped by a filter pushed into it were read all the same.
            let (filtered, filtered_time) =
                std::mem::replace(&mut self.ctx.source_filtered, (0, Timestamp::MIN));
            self.metrics.record_batch(
                batch.len() + filtered as usize,
                batch.len(),
                started.elapsed(),
            );
            publish_rejections(&self.ctx, &mut rejected_seen, &self.metrics);
            // Key-group changes go ahead of the batch: it may hold records of the keys moved.
            for change in std::mem::take(&mut self.ctx.key_group_changes) {
                self.down.control(&Control::KeyGroups(change))?;
            }
            if let Some(generator) = &mut self.watermarks {
                let now = Instant::now();
                generator.observe(self.reader.split_id(), &batch, now);
                if filtered > 0 {
                    generator.observe_time(self.reader.split_id(), filtered_time, now);
                }
                for split in self.ctx.finished_splits.drain(..) {
                    generator.finish_split(split);
                }
                let status = generator.status(now);
                if now.duration_since(last_split_report) >= SPLIT_REPORT_INTERVAL {
                    last_split_report = now;
                    self.metrics.publish_splits(generator.report(now));
                }
                if !batch.is_empty() {
                    self.down.push(batch)?;
                }
                if status != last_status && now.duration_since(last_emit) >= self.watermark_interval
                {
                    last_emit = now;
                    match status {
                        WatermarkStatus::Active(wm) => {
                            self.metrics.set_watermark(wm);
                            self.down.control(&Control::Watermark(wm))?;
                        }
                        WatermarkStatus::Idle => {
                            self.metrics.idle.store(true, Relaxed);
                            self.down.control(&Control::Idle)?
                        }
                    }
                    last_status = status;
                }
            } else if !batch.is_empty() {
                self.down.push(batch)?;
            }
            match poll {
                SourcePoll::Ready => {}
                SourcePoll::Idle => std::thread::sleep(IDLE_WAIT),
                SourcePoll::Finished => break,
            }
        }
        // The end of a bounded input: the final watermark fires everything pending.
        self.metrics.set_watermark(Timestamp::MAX);
        if let Some(generator) = &mut self.watermarks {
            let mut report = generator.report(Instant::now());
            report.splits.clear();
            self.metrics.publish_splits(report);
        }
        self.down.control(&Control::Watermark(Timestamp::MAX))?;
        if self.checkpoint.is_some() {
            // The final position (everything read) stands in every later checkpoint.
            let position = self.position()?;
            if let Some(c) = &self.checkpoint {
                c.finished(position);
            }
        }
        self.down.control(&Control::End)?;
        crate::state::task_finished();
        Ok(())
    }
}
