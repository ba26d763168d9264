//! Checkpoints: asynchronous barrier snapshots, their storage, restore, and the two-phase
//! commit of exactly-once sinks.
//!
//! How a checkpoint happens (docs/checkpoints.md has the whole story):
//!
//! 1. The coordinator (one thread per job, `coordinator`) triggers checkpoint `n` every
//!    [`CheckpointConfig::interval`]: it publishes `n`, and each source task, between two
//!    batches, records its reader's position and sends `Barrier(n)` down its chain.
//! 2. Each operator snapshots its state when the barrier reaches it ([`StateSnapshot`]: keyed
//!    state per key group) and forwards the barrier; a task fed by an exchange forwards it once
//!    every sender's barrier arrived, buffering what senders that are already past it send
//!    (alignment). Sinks pre-commit ([`crate::sink::SinkWriter::pre_commit`]).
//! 3. Every node instance acknowledges with its state; serialized state is handed to the
//!    coordinator, which writes the files and then the manifest ([`storage`]): only then does
//!    the checkpoint exist. Then it commits the sinks' transactions.
//! 4. A task that finished hands over its final state once; it stands in for its
//!    acknowledgement from then on. When every task finished, a final checkpoint commits the
//!    sinks' last output.
//!
//! Restore ([`CheckpointConfig::restore`]) loads the newest intact checkpoint (or a given one),
//! re-commits its sinks' transactions (commits are idempotent), aborts what the crashed run
//! left uncommitted, seeks the sources and hands each operator instance the key groups it owns
//! now — the parallelism may differ from the run that wrote it.

pub mod blob;
pub(crate) mod coordinator;
mod state;
pub mod storage;

pub use blob::{BlobCheckpointStorage, BlobStore, MemoryBlobStore};
pub use state::{decode, encode, SeqOf, StateRestore, StateSnapshot};
pub use storage::{
    CheckpointKind, CheckpointLocation, CheckpointStorage, LoadedCheckpoint, LocalCheckpointStorage,
};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Which checkpoint to restore a job from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreFrom {
    /// The newest complete, intact checkpoint or savepoint in the checkpoint directory; a fresh
    /// start if there is none.
    Latest,
    /// A given checkpoint or savepoint: its directory, or its URL in an object store
    /// (`s3://bucket/job/chk-000007`; the storage is the configuration's).
    Path(PathBuf),
}

impl std::str::FromStr for RestoreFrom {
    type Err = std::convert::Infallible;
    /// `latest` or a path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if s == "latest" {
            RestoreFrom::Latest
        } else {
            RestoreFrom::Path(PathBuf::from(s))
        })
    }
}

/// How a job checkpoints.
///
/// ```
/// use streamcore::checkpoint::{CheckpointConfig, RestoreFrom};
/// use std::time::Duration;
/// let c = CheckpointConfig::new("/tmp/ckpts")
///     .interval(Duration::from_millis(500))
///     .restore(RestoreFrom::Latest);
/// assert_eq!(c.retain, 3);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointConfig {
    /// Directory of the checkpoints (local storage).
    pub dir: PathBuf,
    /// Time between the end of one checkpoint and the trigger of the next. Default 1 s.
    #[serde(with = "crate::api::millis")]
    pub interval: Duration,
    /// Periodic checkpoints kept (savepoints are always kept). Default 3.
    pub retain: usize,
    /// Restore from a checkpoint before starting.
    pub restore: Option<RestoreFrom>,
    /// On restore, drop the state of operators the job no longer has (by id) instead of
    /// refusing to start — Flink's `--allowNonRestoredState`. Default `false`: state is never
    /// dropped silently; when it is, each dropped operator is logged and counted
    /// (`CheckpointSummary::dropped_state`).
    #[serde(default)]
    pub allow_non_restored_state: bool,
    /// Where checkpoints go, when not the local directory [`CheckpointConfig::dir`]: any
    /// [`CheckpointStorage`] (an object store, say). Set with [`CheckpointConfig::storage`].
    #[serde(skip)]
    pub storage: Option<SharedStorage>,
}

/// A [`CheckpointStorage`] shared by the runs of a job (configurations compare it by identity).
#[derive(Clone)]
pub struct SharedStorage(pub std::sync::Arc<dyn CheckpointStorage>);

impl std::fmt::Debug for SharedStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedStorage(..)")
    }
}

impl PartialEq for SharedStorage {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl CheckpointConfig {
    /// Checkpoints in `dir`, every second, keeping 3, no restore.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CheckpointConfig {
            dir: dir.into(),
            interval: Duration::from_secs(1),
            retain: 3,
            restore: None,
            allow_non_restored_state: false,
            storage: None,
        }
    }

    /// Writes and reads checkpoints through `storage` instead of the local directory `dir`
    /// (which then only names the job's checkpoints in messages). The executor uses whatever
    /// storage the configuration holds: nothing in the runtime is tied to local files.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use streamcore::checkpoint::{CheckpointConfig, LocalCheckpointStorage};
    /// let dir = tempfile::tempdir().unwrap();
    /// let storage = LocalCheckpointStorage::new(dir.path().join("elsewhere")).unwrap();
    /// let c = CheckpointConfig::new(dir.path()).storage(Arc::new(storage));
    /// assert!(c.storage.is_some());
    /// ```
    pub fn storage(mut self, storage: std::sync::Arc<dyn CheckpointStorage>) -> Self {
        self.storage = Some(SharedStorage(storage));
        self
    }

    /// The storage this configuration writes to: the one set with
    /// [`CheckpointConfig::storage`], or the local directory `dir`.
    pub fn open_storage(&self) -> crate::Result<std::sync::Arc<dyn CheckpointStorage>> {
        Ok(match &self.storage {
            Some(s) => s.0.clone(),
            None => std::sync::Arc::new(LocalCheckpointStorage::new(&self.dir)?),
        })
    }

    /// Drops, on restore, the state of operators this job no longer has (see
    /// [`CheckpointConfig::allow_non_restored_state`]).
    pub fn allow_non_restored_state(mut self, allow: bool) -> Self {
        self.allow_non_restored_state = allow;
        self
    }

    /// Sets the interval.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets how many periodic checkpoints are kept.
    pub fn retain(mut self, n: usize) -> Self {
        self.retain = n.max(1);
        self
    }

    /// Restores from `from` before starting.
    pub fn restore(mut self, from: RestoreFrom) -> Self {
        self.restore = Some(from);
        self
    }
}

/// Parses a duration like `100ms`, `1s`, `2.5s`, `1m` (a bare number is milliseconds).
///
/// ```
/// use streamcore::checkpoint::parse_duration;
/// assert_eq!(parse_duration("100ms").unwrap().as_millis(), 100);
/// assert_eq!(parse_duration("1.5s").unwrap().as_millis(), 1500);
/// assert!(parse_duration("fast").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (like 100ms, 1s, 1m)"))?;
    let scale = match unit.trim() {
        "" | "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown unit `{other}` in `{text}` (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(value * scale))
}
