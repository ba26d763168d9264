//! Sinks: the [`Sink`] contract (with its two-phase commit for exactly-once output: a
//! [`SinkWriter::pre_commit`] at each checkpoint barrier, a [`Committer`] that makes the output
//! visible once the checkpoint is complete), plus the in-memory sinks for tests and
//! benchmarks — [`CollectSink`] (gather into a vector), [`CountingSink`] and [`ForEachSink`].

use crate::context::TaskInfo;
use crate::data::Data;
use crate::error::Result;
use crate::message::CheckpointId;
use crate::time::Timestamp;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A sink of `T` records: creates one writer per parallel instance when the job starts.
pub trait Sink<T: Data>: 'static {
    /// The writer type, one per parallel instance.
    type Writer: SinkWriter<T>;

    /// Creates the writer of parallel instance `task.subtask`. Called before any data flows.
    /// `task.checkpointing` says whether the job runs with checkpoints: an exactly-once sink
    /// then keeps what it writes invisible until its [`Committer`] commits it.
    fn create_writer(&mut self, task: &TaskInfo) -> Result<Self::Writer>;

    /// The committer of an exactly-once sink, called once when a job with checkpoints starts.
    /// `None` (the default): the sink is at-least-once — output written before a crash is
    /// written again after the restore.
    fn committer(&mut self) -> Result<Option<Box<dyn Committer>>> {
        Ok(None)
    }

    /// The sink's own live metrics, shown in the job summary under its name. Default: none.
    fn connector_metrics(&self) -> Option<std::sync::Arc<dyn crate::metrics::ConnectorMetrics>> {
        None
    }

    /// Whether the sink takes an updating stream (a changelog: rows withdrawn and replaced —
    /// see [`crate::changelog`]). An append-only sink (a file of rows, a topic of events)
    /// would write withdrawn rows as if they were rows: the job refuses to feed it an
    /// updating stream when it is built. Default: `false`.
    fn accepts_updates(&self) -> bool {
        false
    }
}

/// Makes a sink's pre-committed output visible: the second phase of its two-phase commit.
///
/// The checkpoint coordinator calls [`Committer::commit`] for every committable of a
/// checkpoint once that checkpoint is complete, and again for the committables of the
/// checkpoint a job restores from (the first run may have crashed between completing the
/// checkpoint and committing): **commit must be idempotent**.
pub trait Committer: Send + 'static {
    /// Makes one pre-committed transaction visible.
    fn commit(&self, committable: &[u8]) -> Result<()>;

    /// On restore, after the restored checkpoint's committables were committed: discards every
    /// transaction the crashed run started but never committed.
    fn abort_uncommitted(&self) -> Result<()> {
        Ok(())
    }
}

/// One parallel instance of a sink.
pub trait SinkWriter<T>: Send + 'static {
    /// Writes a batch.
    fn write_batch(&mut self, batch: Vec<T>) -> Result<()>;

    /// The input watermark advanced.
    fn on_watermark(&mut self, _watermark: Timestamp) -> Result<()> {
        Ok(())
    }

    /// A checkpoint barrier passed (and, with checkpoints, the end of input before
    /// [`SinkWriter::close`]): make everything written so far durable, and return the
    /// transactions to commit once the checkpoint is complete. Only sinks with a
    /// [`Committer`] return any; the default has nothing to flush and nothing to commit.
    fn pre_commit(&mut self, _checkpoint: CheckpointId) -> Result<Vec<Vec<u8>>> {
        Ok(Vec::new())
    }

    /// End of input: flush everything. The job succeeds only once every writer closed.
    fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Gathers every record into a shared vector; read it with [`Collected::take`] after the job.
pub struct CollectSink<T>(Collected<T>);

/// The records gathered by a [`CollectSink`].
pub struct Collected<T>(Arc<Mutex<Vec<T>>>);

impl<T> Clone for Collected<T> {
    fn clone(&self) -> Self {
        Collected(self.0.clone())
    }
}

impl<T> Collected<T> {
    /// Takes the records gathered so far (in arrival order per writer).
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Number of records gathered so far.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when nothing was gathered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> CollectSink<T> {
    /// A new sink and the handle to read what it gathered.
    pub fn new() -> (Self, Collected<T>) {
        let c = Collected(Arc::new(Mutex::new(Vec::new())));
        (CollectSink(c.clone()), c)
    }
}

impl<T: Data> Sink<T> for CollectSink<T> {
    type Writer = Collected<T>;
    fn create_writer(&mut self, _: &TaskInfo) -> Result<Self::Writer> {
        Ok(self.0.clone())
    }

    /// Takes changelogs: every change is a record here.
    fn accepts_updates(&self) -> bool {
        true
    }
}

impl<T: Data> SinkWriter<T> for Collected<T> {
    fn write_batch(&mut self, batch: Vec<T>) -> Result<()> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(batch);
        Ok(())
    }
}

/// Counts records and drops them: the sink of throughput benchmarks.
#[derive(Clone, Default)]
pub struct CountingSink(Arc<AtomicU64>);

impl CountingSink {
    /// A new counting sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records counted so far (updated once per batch).
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl<T: Data> Sink<T> for CountingSink {
    type Writer = CountingSink;
    fn create_writer(&mut self, _: &TaskInfo) -> Result<Self::Writer> {
        Ok(self.clone())
    }

    /// Takes changelogs: every change is a record here.
    fn accepts_updates(&self) -> bool {
        true
    }
}

impl<T: Data> SinkWriter<T> for CountingSink {
    fn write_batch(&mut self, batch: Vec<T>) -> Result<()> {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Calls a closure for every record; each parallel instance gets its own clone of it.
#[derive(Clone)]
pub struct ForEachSink<F>(pub F);

impl<T: Data, F: FnMut(T) + Clone + Send + 'static> Sink<T> for ForEachSink<F> {
    type Writer = ForEachSink<F>;
    fn create_writer(&mut self, _: &TaskInfo) -> Result<Self::Writer> {
        Ok(self.clone())
    }

    /// Takes changelogs: every change is a record here.
    fn accepts_updates(&self) -> bool {
        true
    }
}

impl<T: Data, F: FnMut(T) + Clone + Send + 'static> SinkWriter<T> for ForEachSink<F> {
    fn write_batch(&mut self, batch: Vec<T>) -> Result<()> {
        batch.into_iter().for_each(&mut self.0);
        Ok(())
    }
}
