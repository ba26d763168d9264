//! The exactly-once in-memory sink the checkpoint tests (checkpoints.rs, state_backends.rs)
//! commit their output to: records stay pending until their checkpoint commits.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use streamcore::checkpoint::{decode, encode};
use streamcore::sink::{Committer, Sink, SinkWriter};
use streamcore::{Data, Result, TaskInfo};

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
