//! Shared by the checkpoint tests (checkpoints.rs, state_backends.rs): the exactly-once
//! in-memory sink they commit their output to (records stay pending until their checkpoint
//! commits), and cancelling a job after some checkpoints (the in-process stand-in for a crash).

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use streamcore::checkpoint::{decode, encode};
use streamcore::sink::{Committer, Sink, SinkWriter};
use streamcore::{Data, JobHandle, JobSummary, Result, StreamError, TaskInfo};

/// Committed output: per (subtask, checkpoint) the records that transaction made visible.
/// Re-committing a transaction overwrites it: commits are idempotent.
pub type Committed<T> = Arc<Mutex<BTreeMap<(usize, u64), Vec<T>>>>;

/// An exactly-once in-memory sink: records stay pending until their checkpoint commits.
pub struct TxSink<T> {
    pub committed: Committed<T>,
}

pub struct TxWriter<T> {
    subtask: usize,
    pending: Vec<T>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Transaction<T> {
    subtask: usize,
    checkpoint: u64,
    records: Vec<T>,
}

impl<T: Data + Serialize + DeserializeOwned> Sink<T> for TxSink<T> {
    type Writer = TxWriter<T>;
    fn create_writer(&mut self, task: &TaskInfo) -> Result<TxWriter<T>> {
        assert!(task.checkpointing, "the test runs with checkpoints");
        Ok(TxWriter {
            subtask: task.subtask,
            pending: Vec::new(),
        })
    }
    fn committer(&mut self) -> Result<Option<Box<dyn Committer>>> {
        Ok(Some(Box::new(TxCommitter {
            committed: self.committed.clone(),
        })))
    }
}

impl<T: Data + Serialize> SinkWriter<T> for TxWriter<T> {
    fn write_batch(&mut self, batch: Vec<T>) -> Result<()> {
        self.pending.extend(batch);
        Ok(())
    }
    fn pre_commit(&mut self, checkpoint: u64) -> Result<Vec<Vec<u8>>> {
        let tx = Transaction {
            subtask: self.subtask,
            checkpoint,
            records: std::mem::take(&mut self.pending),
        };
        Ok(vec![encode(&tx)?])
    }
}

pub struct TxCommitter<T> {
    committed: Committed<T>,
}

impl<T: Data + DeserializeOwned> Committer for TxCommitter<T> {
    fn commit(&self, committable: &[u8]) -> Result<()> {
        let tx: Transaction<T> = decode(committable)?;
        self.committed
            .lock()
            .unwrap()
            .insert((tx.subtask, tx.checkpoint), tx.records);
        Ok(())
    }
}

/// Cancels `handle` once it completed at least `n` checkpoints; returns its metrics then.
pub fn cancel_after_checkpoints(handle: JobHandle, n: u64) -> JobSummary {
    let started = Instant::now();
    loop {
        let done = handle.metrics().checkpoints.map_or(0, |c| c.completed);
        if done >= n {
            break;
        }
        // A loaded machine may take fewer checkpoints than asked before the input ends.
        assert!(
            !handle.is_finished(),
            "the job finished after {done} of {n} checkpoints: slow the source down"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoints"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let summary = handle.metrics();
    handle.cancel();
    assert!(matches!(handle.join(), Err(StreamError::Cancelled)));
    summary
}
