//! Keyed state that follows input partitions from process to process (scale-out through a
//! consumer group with [`super::KafkaSource::state_handover`]; docs/kafka.md).
//!
//! A topic written with [`partition_for_key`] (what [`super::KafkaSink::partition_by_key_group`]
//! does) holds in partition `p` of `P` exactly the keys of key groups
//! [`key_groups_of_partition`]`(p)`: a contiguous range, the same rule that deals key groups to
//! parallel instances. So the process that owns a partition owns its key groups, and moving a
//! partition moves those key groups:
//!
//! - the process that loses partition `p` releases it after a checkpoint `c` covering it
//!   completed; before that it copies the state of `p`'s key groups out of `c` into
//!   `ROOT/handover/TOPIC/P@NEXT.state` ([`HandoverStore::write`]), `NEXT` being its position in
//!   `p`, and then drops those key groups from its running operators;
//! - the process that gains `p` reads the group's committed offset `O` of `p`, takes the state
//!   file with `NEXT ≥ O` (the newest), or — when the old owner died without handing over —
//!   the newest checkpoint of any process under `ROOT` whose position in `p` is `O`
//!   ([`HandoverStore::find`]); it adopts that state into its running operators before it
//!   reads a record of `p`, and starts reading at `NEXT`.
//!
//! The root is a directory every process shares ([`HandoverStore::new`]) or a prefix in an
//! object store ([`HandoverStore::on`], e.g. `s3://bucket/job`, the processes checkpointing to
//! `s3://bucket/job/NAME`): the same files, as objects. A state file is written whole (an
//! object put, or a temporary file renamed), so a reader never sees half of one.

use super::source::PartitionOffset;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use streamcore::checkpoint::{
    decode, BlobCheckpointStorage, BlobStore, CheckpointStorage, LoadedCheckpoint,
    LocalCheckpointStorage,
};
use streamcore::state::{key_group, key_groups_of, owner_of, KeyGroupState};
use streamcore::{Result, StreamError};

/// The partition of a topic with `partitions` partitions that holds `key` when the topic is
/// partitioned by key group (`key_groups` of the job that reads it).
///
/// ```
/// use streamcore_connectors::kafka::handover::{key_groups_of_partition, partition_for_key};
/// use streamcore::state::key_group;
/// let p = partition_for_key("user_7", 128, 4);
/// assert!(key_groups_of_partition(p, 128, 4).contains(&key_group("user_7", 128)));
/// ```
pub fn partition_for_key(key: &str, key_groups: u32, partitions: i32) -> i32 {
    owner_of(
        key_group(key, key_groups),
        key_groups,
        partitions.max(1) as usize,
    ) as i32
}

/// The key groups whose keys partition `partition` of `partitions` holds (see
/// [`partition_for_key`]).
pub fn key_groups_of_partition(partition: i32, key_groups: u32, partitions: i32) -> Range<u32> {
    key_groups_of(partition as usize, key_groups, partitions.max(1) as usize)
}

/// Where processes leave state for each other: `ROOT/handover/TOPIC/P@NEXT.state`, and the
/// processes' checkpoint directories under `ROOT` (searched when a process died). `ROOT` is a
/// directory or an object-store prefix.
#[derive(Clone)]
pub struct HandoverStore {
    root: Root,
}

#[derive(Clone)]
enum Root {
    Dir(PathBuf),
    Blobs(Arc<dyn BlobStore>),
}

impl std::fmt::Debug for HandoverStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.root {
            Root::Dir(d) => f.debug_tuple("HandoverStore").field(d).finish(),
            Root::Blobs(b) => f.debug_tuple("HandoverStore").field(&b.url("")).finish(),
        }
    }
}

/// The checkpoints under the root, loaded at most once for all the partitions of one
/// assignment (only when a partition has no state file: its old owner died).
#[derive(Default)]
pub struct CheckpointCache {
    loaded: Option<Vec<LoadedCheckpoint>>,
}

/// State found for a partition: where to start reading it, and its key groups' state.
#[derive(Debug)]
pub struct Found {
    /// The offset of the first record not reflected in the state.
    pub next: i64,
    /// The state of the partition's key groups.
    pub state: KeyGroupState,
    /// Where it came from (a state file or a checkpoint: a path or a URL), for the log.
    pub from: String,
}

impl HandoverStore {
    /// A store under the directory `root` (shared by every process of the job).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HandoverStore {
            root: Root::Dir(root.into()),
        }
    }

    /// A store at the root of `store` (an object-store prefix every process of the job
    /// shares; each process checkpoints to a prefix directly under it).
    pub fn on(store: Arc<dyn BlobStore>) -> Self {
        HandoverStore {
            root: Root::Blobs(store),
        }
    }

    fn dir(&self, topic: &str) -> PathBuf {
        match &self.root {
            Root::Dir(root) => root.join("handover").join(topic),
            Root::Blobs(_) => PathBuf::new(),
        }
    }

    fn key(topic: &str, name: &str) -> String {
        format!("handover/{topic}/{name}")
    }

    /// Where state file `name` of `topic` is, for messages.
    fn describe(&self, topic: &str, name: &str) -> String {
        match &self.root {
            Root::Dir(_) => self.dir(topic).join(name).display().to_string(),
            Root::Blobs(b) => b.url(&Self::key(topic, name)),
        }
    }

    /// Leaves the state of `topic`/`partition` (position `next`) for its next owner; removes
    /// older state files of the partition. Returns where it went.
    pub fn write(
        &self,
        topic: &str,
        partition: i32,
        next: i64,
        state: &KeyGroupState,
    ) -> Result<String> {
        let name = format!("{partition}@{next}.state");
        match &self.root {
            Root::Dir(_) => {
                let dir = self.dir(topic);
                std::fs::create_dir_all(&dir).map_err(|e| {
                    StreamError::Checkpoint(format!("creating {}: {e}", dir.display()))
                })?;
                state.write(&dir.join(&name))?;
            }
            Root::Blobs(b) => b.put(&Self::key(topic, &name), state.to_bytes())?,
        }
        let older: Vec<String> = self
            .state_files(topic, partition)
            .into_iter()
            .filter(|(n, _)| *n < next)
            .map(|(_, file)| file)
            .collect();
        match &self.root {
            Root::Dir(_) => {
                for file in older {
                    let _ = std::fs::remove_file(self.dir(topic).join(file));
                }
            }
            Root::Blobs(b) => {
                let keys = older.iter().map(|f| Self::key(topic, f)).collect();
                if let Err(e) = b.delete_all(keys) {
                    tracing::warn!(error = %e, "could not delete older hand-over state");
                }
            }
        }
        Ok(self.describe(topic, &name))
    }

    /// The state files of a partition: `(next, file name)`.
    fn state_files(&self, topic: &str, partition: i32) -> Vec<(i64, String)> {
        let prefix = format!("{partition}@");
        let names: Vec<String> = match &self.root {
            Root::Dir(_) => match std::fs::read_dir(self.dir(topic)) {
                Ok(entries) => entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect(),
                Err(_) => Vec::new(),
            },
            Root::Blobs(b) => match b.list(&format!("handover/{topic}")) {
                Ok(keys) => keys
                    .into_iter()
                    .filter_map(|k| k.rsplit('/').next().map(str::to_string))
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "could not list hand-over state");
                    Vec::new()
                }
            },
        };
        names
            .into_iter()
            .filter_map(|name| {
                let next = name
                    .strip_prefix(&prefix)?
                    .strip_suffix(".state")?
                    .parse::<i64>()
                    .ok()?;
                Some((next, name))
            })
            .collect()
    }

    fn read_state(&self, topic: &str, name: &str) -> Result<KeyGroupState> {
        match &self.root {
            Root::Dir(_) => KeyGroupState::read(&self.dir(topic).join(name)),
            Root::Blobs(b) => {
                let key = Self::key(topic, name);
                let bytes = b.get(&key)?.ok_or_else(|| {
                    StreamError::Checkpoint(format!("{} disappeared", b.url(&key)))
                })?;
                KeyGroupState::from_bytes(&bytes, &b.url(&key))
            }
        }
    }

    /// The state of `topic`/`partition` for a process that takes it over at the group's
    /// committed offset `committed` (`None`: the group has none): the newest state file at or
    /// past it, else a checkpoint of a process under the root whose source `source` was at
    /// exactly `committed` there. `None` when there is none (the partition's keys start
    /// empty).
    pub fn find(
        &self,
        topic: &str,
        partition: i32,
        committed: Option<i64>,
        groups: &Range<u32>,
        source: &str,
        cache: &mut CheckpointCache,
    ) -> Result<Option<Found>> {
        let floor = committed.unwrap_or(i64::MIN);
        if let Some((next, name)) = self
            .state_files(topic, partition)
            .into_iter()
            .filter(|(next, _)| *next >= floor)
            .max_by_key(|(next, _)| *next)
        {
            let state = self.read_state(topic, &name)?;
            return Ok(Some(Found {
                next,
                state,
                from: self.describe(topic, &name),
            }));
        }
        let Some(committed) = committed else {
            return Ok(None);
        };
        // The old owner died: the checkpoint whose offsets it committed last holds the state
        // (usually its newest; an older one when it died between a checkpoint and its commit).
        let checkpoints = cache.loaded.get_or_insert_with(|| self.load_checkpoints());
        for cp in checkpoints.iter() {
            let Some(instances) = cp.node(source) else {
                continue;
            };
            let at = instances
                .iter()
                .filter_map(|i| i.snapshot.operator_state())
                .filter_map(|b| decode::<Vec<PartitionOffset>>(b).ok())
                .flatten()
                .find(|p| p.topic == topic && p.partition == partition)
                .map(|p| p.next);
            if at == Some(committed) {
                return Ok(Some(Found {
                    next: committed,
                    state: KeyGroupState::from_checkpoint(cp, std::slice::from_ref(groups)),
                    from: cp.location.to_string(),
                }));
            }
        }
        Ok(None)
    }

    /// Every intact checkpoint of every process under the root, newest first per process.
    fn load_checkpoints(&self) -> Vec<LoadedCheckpoint> {
        match &self.root {
            Root::Dir(root) => {
                let Ok(entries) = std::fs::read_dir(root) else {
                    return Vec::new();
                };
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_name() != "handover" && e.path().is_dir())
                    .filter_map(|e| LocalCheckpointStorage::new(e.path()).ok())
                    .flat_map(|storage| {
                        let locations = storage.locations().unwrap_or_default();
                        locations
                            .into_iter()
                            // Incomplete, or deleted meanwhile: skipped.
                            .filter_map(move |l| storage.load(&l.into()).ok())
                    })
                    .collect()
            }
            Root::Blobs(b) => b
                .list_dirs("")
                .unwrap_or_default()
                .into_iter()
                .filter(|d| d != "handover")
                .map(|d| BlobCheckpointStorage::new(b.clone(), d))
                .flat_map(|storage| {
                    let locations = storage.locations().unwrap_or_default();
                    locations
                        .into_iter()
                        .filter_map(move |l| storage.load(&l).ok())
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_hold_contiguous_key_group_ranges() {
        for partitions in [1, 3, 4, 7, 128] {
            for i in 0..2_000 {
                let key = format!("k{i}");
                let p = partition_for_key(&key, 128, partitions);
                assert!((0..partitions).contains(&p));
                assert!(key_groups_of_partition(p, 128, partitions)
                    .contains(&key_group(key.as_str(), 128)));
            }
        }
    }

    #[test]
    fn the_newest_state_file_at_or_past_the_committed_offset_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = HandoverStore::new(dir.path());
        let state = KeyGroupState::default();
        store.write("t", 2, 10, &state).unwrap();
        store.write("t", 2, 20, &state).unwrap();
        store.write("t", 3, 5, &state).unwrap();
        // The older file of partition 2 is gone.
        assert_eq!(store.state_files("t", 2).len(), 1);
        let mut cache = CheckpointCache::default();
        let mut find = |p, at| store.find("t", p, at, &(0..1), "src", &mut cache).unwrap();
        assert_eq!(find(2, Some(15)).unwrap().next, 20);
        assert!(find(2, Some(21)).is_none());
        assert!(find(1, None).is_none());
    }

    #[test]
    fn state_files_on_an_object_store() {
        let blobs = Arc::new(streamcore::checkpoint::MemoryBlobStore::default());
        let store = HandoverStore::on(blobs.clone());
        let state = KeyGroupState::default();
        let at = store.write("t", 2, 10, &state).unwrap();
        assert_eq!(at, "memory:///handover/t/2@10.state");
        store.write("t", 2, 20, &state).unwrap();
        assert_eq!(blobs.keys(), ["handover/t/2@20.state"]);
        let mut cache = CheckpointCache::default();
        let found = store
            .find("t", 2, Some(15), &(0..1), "src", &mut cache)
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.next, found.from.as_str()),
            (20, "memory:///handover/t/2@20.state")
        );
        assert!(store
            .find("t", 2, Some(21), &(0..1), "src", &mut cache)
            .unwrap()
            .is_none());
    }
}
