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

use super::source::PartitionOffset;
use std::ops::Range;
use std::path::PathBuf;
use streamcore::checkpoint::{decode, CheckpointStorage, LoadedCheckpoint, LocalCheckpointStorage};
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
/// processes' checkpoint directories under `ROOT` (searched when a process died).
#[derive(Clone, Debug)]
pub struct HandoverStore {
    root: PathBuf,
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
    /// Where it came from (a state file or a checkpoint), for the log.
    pub from: PathBuf,
}

impl HandoverStore {
    /// A store under `root` (shared by every process of the job).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HandoverStore { root: root.into() }
    }

    fn dir(&self, topic: &str) -> PathBuf {
        self.root.join("handover").join(topic)
    }

    /// Leaves the state of `topic`/`partition` (position `next`) for its next owner; removes
    /// older state files of the partition.
    pub fn write(
        &self,
        topic: &str,
        partition: i32,
        next: i64,
        state: &KeyGroupState,
    ) -> Result<PathBuf> {
        let dir = self.dir(topic);
        std::fs::create_dir_all(&dir)
            .map_err(|e| StreamError::Checkpoint(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join(format!("{partition}@{next}.state"));
        state.write(&path)?;
        for (older, file) in self.state_files(topic, partition) {
            if older < next {
                let _ = std::fs::remove_file(file);
            }
        }
        Ok(path)
    }

    /// The state files of a partition: `(next, path)`.
    fn state_files(&self, topic: &str, partition: i32) -> Vec<(i64, PathBuf)> {
        let prefix = format!("{partition}@");
        let Ok(entries) = std::fs::read_dir(self.dir(topic)) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let next = name
                    .strip_prefix(&prefix)?
                    .strip_suffix(".state")?
                    .parse::<i64>()
                    .ok()?;
                Some((next, e.path()))
            })
            .collect()
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
        if let Some((next, path)) = self
            .state_files(topic, partition)
            .into_iter()
            .filter(|(next, _)| *next >= floor)
            .max_by_key(|(next, _)| *next)
        {
            let state = KeyGroupState::read(&path)?;
            return Ok(Some(Found {
                next,
                state,
                from: path,
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
                    from: cp.location.clone(),
                }));
            }
        }
        Ok(None)
    }

    /// Every intact checkpoint of every process under the root, newest first per process.
    fn load_checkpoints(&self) -> Vec<LoadedCheckpoint> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
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
                    .filter_map(move |l| storage.load(&l).ok())
            })
            .collect()
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
}
