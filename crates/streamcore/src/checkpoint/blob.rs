//! Checkpoints on object stores: [`BlobStore`], the few operations the engine needs from an
//! object store (S3, GCS, Azure Blob Storage, or anything with whole-object puts, gets,
//! listings and a conditional create), and [`BlobCheckpointStorage`], the
//! [`CheckpointStorage`] over any of them.
//!
//! The engine does not depend on a cloud SDK: the `streamcore-object-store` crate implements
//! [`BlobStore`] with the `object_store` crate; [`MemoryBlobStore`] is an in-process one for
//! tests.
//!
//! Layout under the storage's prefix (the same format as local storage, docs/checkpoints.md):
//!
//! ```text
//! PREFIX/chk-000007/n0003-s000.state   state files, uploaded first (concurrently)
//! PREFIX/chk-000007/_manifest.json     created last, with a conditional put (create only if
//!                                      absent): the checkpoint exists from that moment
//! ```
//!
//! There is no rename on object stores, and none is needed: a reader never sees a checkpoint
//! without its manifest as complete, an object is either entirely there or not at all, and the
//! manifest's lengths and CRC-32s catch a state file that does not belong to it. A run killed
//! mid-upload leaves state files without a manifest: restore skips them with a message, and
//! retention deletes them once a newer checkpoint is complete. Deleting a checkpoint removes
//! its manifest first, so a deletion cut short leaves an incomplete checkpoint, never one that
//! looks complete and is not.
//!
//! Shared files (incremental checkpoints, later) fit this layout: a manifest may name files
//! outside its own prefix (`PREFIX/shared/…`), and retention then deletes a shared file only
//! when no kept manifest names it. Nothing writes them yet.

use super::storage::{
    checkpoint_name, corrupt, decode_files, encode_files, incomplete, manifest_json,
    parse_dir_name, parse_manifest, pick_latest, CheckpointData, CheckpointLocation,
    CheckpointStorage, LoadedCheckpoint, WrittenCheckpoint, MANIFEST,
};
use crate::error::{Result, StreamError};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The operations of an object store the checkpoint storage uses. Keys are `/`-separated and
/// relative to the store's root; every put is atomic (an object is read whole or not at all).
/// Implementations retry transient failures themselves and return an error only once they
/// gave up.
pub trait BlobStore: Send + Sync + 'static {
    /// The URL of `key`, for messages and checkpoint locations (without credentials).
    fn url(&self, key: &str) -> String;
    /// Writes `bytes` to `key`, replacing what was there.
    fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()>;
    /// Writes several objects; implementations upload them concurrently.
    fn put_all(&self, objects: Vec<(String, Vec<u8>)>) -> Result<()> {
        for (key, bytes) in objects {
            self.put(&key, bytes)?;
        }
        Ok(())
    }
    /// Creates `key` only if no object is there: `Ok(true)` when created, `Ok(false)` when
    /// one already was (nothing is written). Atomic: of two concurrent callers, one wins.
    fn put_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<bool>;
    /// The object at `key`, `None` if there is none.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Several objects; implementations download them concurrently.
    fn get_all(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.get(k)).collect()
    }
    /// Every key under `prefix/` (recursively), relative to the root, in any order.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// The names of the "directories" directly under `prefix/` (`""`: the root): the next
    /// segment of every key below it, once each.
    fn list_dirs(&self, prefix: &str) -> Result<Vec<String>>;
    /// Deletes the objects (missing ones are not an error).
    fn delete_all(&self, keys: Vec<String>) -> Result<()>;
}

/// `prefix/name`, or `name` when the prefix is empty.
pub fn join_key(prefix: &str, name: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// Uploads are batched up to this many bytes, so that a checkpoint's files go up concurrently
/// without holding a second copy of all the state in memory.
const UPLOAD_BATCH_BYTES: usize = 64 << 20;

/// Checkpoints in a [`BlobStore`], under a key prefix (see the module documentation).
///
/// ```
/// use std::sync::Arc;
/// use streamcore::checkpoint::{BlobCheckpointStorage, CheckpointStorage, MemoryBlobStore};
/// let storage = BlobCheckpointStorage::new(Arc::new(MemoryBlobStore::default()), "jobs/demo");
/// assert_eq!(storage.next_id().unwrap(), 1);
/// assert_eq!(storage.describe(), "memory:///jobs/demo");
/// ```
#[derive(Clone)]
pub struct BlobCheckpointStorage {
    store: Arc<dyn BlobStore>,
    prefix: String,
}

impl std::fmt::Debug for BlobCheckpointStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobCheckpointStorage")
            .field("at", &self.store.url(&self.prefix))
            .finish()
    }
}

impl BlobCheckpointStorage {
    /// Checkpoints under `prefix` (`""`: the store's root) of `store`.
    pub fn new(store: Arc<dyn BlobStore>, prefix: impl Into<String>) -> Self {
        BlobCheckpointStorage {
            store,
            prefix: prefix.into().trim_matches('/').to_string(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    /// The key prefix of the checkpoints.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The checkpoints and savepoints present, newest first (complete or not:
    /// [`CheckpointStorage::load`] verifies).
    pub fn locations(&self) -> Result<Vec<CheckpointLocation>> {
        Ok(self
            .list()?
            .into_iter()
            .map(|(_, name, _)| self.location(&name))
            .collect())
    }

    fn location(&self, name: &str) -> CheckpointLocation {
        CheckpointLocation::new(self.store.url(&join_key(&self.prefix, name)))
    }

    /// `(id, name, is_savepoint)`, newest first.
    fn list(&self) -> Result<Vec<(u64, String, bool)>> {
        let mut found: Vec<(u64, String, bool)> = self
            .store
            .list_dirs(&self.prefix)?
            .into_iter()
            .filter_map(|name| {
                let id = parse_dir_name(&name)?;
                let savepoint = name.starts_with("sp-");
                Some((id, name, savepoint))
            })
            .collect();
        found.sort_by(|a, b| b.0.cmp(&a.0).then(a.2.cmp(&b.2)));
        Ok(found)
    }

    /// The checkpoint's name (`chk-000007`) if `location` is one of this storage's.
    fn name_of(&self, location: &CheckpointLocation) -> Result<String> {
        let name = location.name();
        let parent = location.parent();
        let ours = self.store.url(&self.prefix);
        if parse_dir_name(name).is_none()
            || !(parent.as_str().is_empty() || parent.as_str() == ours.trim_end_matches('/'))
        {
            return Err(StreamError::Checkpoint(format!(
                "{location} is not a checkpoint of {ours} (expected {ours}/chk-NNNNNN or sp-NNNNNN)"
            )));
        }
        Ok(name.to_string())
    }

    /// The manifest of checkpoint `name`, if it has one that parses (it is complete).
    fn manifest(&self, name: &str) -> Option<super::storage::Manifest> {
        let key = join_key(&join_key(&self.prefix, name), MANIFEST);
        match self.store.get(&key) {
            Ok(Some(m)) => serde_json::from_slice::<super::storage::Manifest>(&m).ok(),
            _ => None,
        }
    }

    /// Deletes a checkpoint: its manifest first (so a deletion cut short leaves an incomplete
    /// checkpoint), then everything else under its prefix.
    fn delete(&self, name: &str) -> Result<()> {
        let dir = join_key(&self.prefix, name);
        let manifest = join_key(&dir, MANIFEST);
        self.store.delete_all(vec![manifest.clone()])?;
        let rest: Vec<String> = self
            .store
            .list(&dir)?
            .into_iter()
            .filter(|k| *k != manifest)
            .collect();
        if !rest.is_empty() {
            self.store.delete_all(rest)?;
        }
        Ok(())
    }
}

impl CheckpointStorage for BlobCheckpointStorage {
    fn next_id(&self) -> Result<u64> {
        Ok(self.list()?.first().map_or(1, |(id, _, _)| id + 1))
    }

    fn write(&self, cp: &CheckpointData) -> Result<WrittenCheckpoint> {
        let name = checkpoint_name(cp.id, cp.kind);
        let dir = join_key(&self.prefix, &name);
        let mut batch: Vec<(String, Vec<u8>)> = Vec::new();
        let mut batch_bytes = 0usize;
        let (manifest, total) = encode_files(cp, |file, bytes| {
            batch_bytes += bytes.len();
            batch.push((join_key(&dir, file), bytes));
            if batch_bytes >= UPLOAD_BATCH_BYTES {
                batch_bytes = 0;
                self.store.put_all(std::mem::take(&mut batch))?;
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            self.store.put_all(batch)?;
        }
        // Last, and only if absent: a second writer of the same id (two runs of one job
        // pointed at the same place) fails instead of replacing a complete checkpoint.
        let manifest_key = join_key(&dir, MANIFEST);
        if !self
            .store
            .put_if_absent(&manifest_key, manifest_json(&manifest)?)?
        {
            return Err(StreamError::Checkpoint(format!(
                "{} exists already: is another run of this job writing checkpoints to {}?",
                self.store.url(&manifest_key),
                self.store.url(&self.prefix)
            )));
        }
        Ok(WrittenCheckpoint {
            location: self.location(&name),
            bytes: total,
        })
    }

    fn load_latest(&self) -> Result<Option<LoadedCheckpoint>> {
        let candidates = self
            .list()?
            .into_iter()
            .map(|(_, name, _)| self.location(&name))
            .collect();
        pick_latest(candidates, |l| self.load(l), &self.store.url(&self.prefix))
    }

    fn load(&self, location: &CheckpointLocation) -> Result<LoadedCheckpoint> {
        let name = self.name_of(location)?;
        let at = self.location(&name);
        let dir = join_key(&self.prefix, &name);
        let Some(text) = self.store.get(&join_key(&dir, MANIFEST))? else {
            return Err(incomplete(at.as_path()));
        };
        let manifest = parse_manifest(&at, &text)?;
        let files: Vec<String> = manifest
            .nodes
            .iter()
            .flat_map(|n| &n.instances)
            .filter_map(|i| i.file.clone())
            .collect();
        let keys: Vec<String> = files.iter().map(|f| join_key(&dir, f)).collect();
        let mut fetched: BTreeMap<String, Option<Vec<u8>>> =
            files.into_iter().zip(self.store.get_all(&keys)?).collect();
        let nodes = decode_files(&at, &manifest, |file| {
            fetched.remove(file).flatten().ok_or_else(|| {
                corrupt(
                    at.as_path(),
                    format!("state file {file} unreadable: it is missing"),
                )
            })
        })?;
        let mut cp = LoadedCheckpoint {
            location: at,
            manifest,
            nodes,
            skipped: Vec::new(),
        };
        super::storage::resolve_chains(&mut cp, |l| self.load(l))?;
        Ok(cp)
    }

    fn retain(&self, keep: usize) -> Result<()> {
        let mut complete = 0;
        // Checkpoints that kept incremental ones build on.
        let mut referenced = std::collections::BTreeSet::new();
        for (_, name, savepoint) in self.list()? {
            if savepoint {
                continue;
            }
            let manifest = self.manifest(&name);
            let is_complete = manifest.is_some();
            if let Some(m) =
                manifest.filter(|_| complete < keep.max(1) || referenced.contains(&name))
            {
                complete += 1;
                referenced.extend(m.references().map(str::to_string));
                continue;
            }
            // Incomplete ones newer than every complete one may still be being written.
            if !is_complete && complete == 0 {
                continue;
            }
            self.delete(&name)?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        self.store.url(&self.prefix)
    }
}

/// A [`BlobStore`] in memory (for tests): objects in a map, URLs `memory:///KEY`.
#[derive(Debug, Default)]
pub struct MemoryBlobStore {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemoryBlobStore {
    fn objects(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.objects().keys().cloned().collect()
    }
}

impl BlobStore for MemoryBlobStore {
    fn url(&self, key: &str) -> String {
        format!("memory:///{key}")
    }

    fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.objects().insert(key.to_string(), bytes);
        Ok(())
    }

    fn put_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<bool> {
        let mut objects = self.objects();
        if objects.contains_key(key) {
            return Ok(false);
        }
        objects.insert(key.to_string(), bytes);
        Ok(true)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.objects().get(key).cloned())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let below = join_key(prefix, "");
        Ok(self
            .objects()
            .keys()
            .filter(|k| below.is_empty() || k.starts_with(&below))
            .cloned()
            .collect())
    }

    fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let below = join_key(prefix, "");
        let mut dirs: Vec<String> = self
            .objects()
            .keys()
            .filter_map(|k| k.strip_prefix(below.as_str()))
            .filter_map(|rest| rest.split_once('/').map(|(dir, _)| dir.to_string()))
            .collect();
        dirs.dedup();
        Ok(dirs)
    }

    fn delete_all(&self, keys: Vec<String>) -> Result<()> {
        let mut objects = self.objects();
        for k in keys {
            objects.remove(&k);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::storage::{CheckpointKind, InstanceState};
    use super::super::StateSnapshot;
    use super::*;

    fn sample(id: u64, kind: CheckpointKind) -> CheckpointData {
        let mut snapshot = StateSnapshot::default();
        snapshot.put_group(3, &vec![1u64, 2, 3]).unwrap();
        snapshot.put_operator(&"pos").unwrap();
        CheckpointData {
            job: "j".into(),
            id,
            kind,
            key_groups: 8,
            nodes: vec![(
                "window#2".into(),
                vec![
                    InstanceState {
                        subtask: 0,
                        snapshot,
                        committables: vec![b"c1".to_vec()],
                    },
                    InstanceState::default(),
                ],
            )],
        }
    }

    fn storage() -> (Arc<MemoryBlobStore>, BlobCheckpointStorage) {
        let store = Arc::new(MemoryBlobStore::default());
        (store.clone(), BlobCheckpointStorage::new(store, "a/job"))
    }

    #[test]
    fn write_then_load_round_trips() {
        let (store, s) = storage();
        assert_eq!(s.next_id().unwrap(), 1);
        let w = s.write(&sample(1, CheckpointKind::Checkpoint)).unwrap();
        assert_eq!(w.location.as_str(), "memory:///a/job/chk-000001");
        assert_eq!(
            store.keys(),
            [
                "a/job/chk-000001/_manifest.json",
                "a/job/chk-000001/n0000-s000.state"
            ]
        );
        assert_eq!(s.next_id().unwrap(), 2);
        let cp = s.load_latest().unwrap().unwrap();
        assert_eq!(cp.location, w.location);
        let inst = &cp.node("window#2").unwrap()[0];
        assert_eq!(inst.committables, vec![b"c1".to_vec()]);
        let restored: Vec<u64> = super::super::decode(&inst.snapshot.groups[0].1).unwrap();
        assert_eq!(restored, vec![1, 2, 3]);
        // By location, and by bare name.
        assert_eq!(s.load(&w.location).unwrap().manifest.checkpoint_id, 1);
        assert_eq!(
            s.load(&CheckpointLocation::new("chk-000001"))
                .unwrap()
                .manifest
                .checkpoint_id,
            1
        );
        let err = s
            .load(&CheckpointLocation::new("memory:///other/chk-000001"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a checkpoint of"), "{err}");
    }

    #[test]
    fn torn_and_corrupted_checkpoints_are_skipped() {
        let (store, s) = storage();
        for id in 1..=3 {
            s.write(&sample(id, CheckpointKind::Checkpoint)).unwrap();
        }
        // 4: state uploaded, killed before the manifest.
        store
            .put("a/job/chk-000004/n0000-s000.state", b"partial".to_vec())
            .unwrap();
        // 3: a state file replaced; 2: a state file missing.
        store
            .put("a/job/chk-000003/n0000-s000.state", b"other".to_vec())
            .unwrap();
        store
            .delete_all(vec!["a/job/chk-000002/n0000-s000.state".into()])
            .unwrap();
        let cp = s.load_latest().unwrap().unwrap();
        assert_eq!(cp.manifest.checkpoint_id, 1);
        assert_eq!(cp.skipped.len(), 3, "{:?}", cp.skipped);
        assert!(cp.skipped[0].contains("chk-000004"), "{:?}", cp.skipped);
        assert!(cp.skipped[0].contains("incomplete"), "{:?}", cp.skipped);
        assert!(cp.skipped[1].contains("corrupted"), "{:?}", cp.skipped);
        assert!(cp.skipped[2].contains("missing"), "{:?}", cp.skipped);
        // Only incomplete ones (killed during the first checkpoint): a fresh start, nothing
        // having been committed.
        store.delete_all(store.keys()).unwrap();
        store
            .put("a/job/chk-000009/n0000-s000.state", b"x".to_vec())
            .unwrap();
        assert!(s.load_latest().unwrap().is_none());
        // A damaged complete one among them: an error naming what was skipped (it may have
        // committed output a fresh start would repeat).
        store
            .put("a/job/chk-000008/_manifest.json", b"{".to_vec())
            .unwrap();
        let err = s.load_latest().unwrap_err().to_string();
        assert!(
            err.contains("no complete checkpoint in memory:///a/job"),
            "{err}"
        );
        assert!(err.contains("unreadable manifest"), "{err}");
    }

    #[test]
    fn a_second_writer_of_the_same_id_fails() {
        let (_, s) = storage();
        s.write(&sample(1, CheckpointKind::Checkpoint)).unwrap();
        let err = s
            .write(&sample(1, CheckpointKind::Checkpoint))
            .unwrap_err()
            .to_string();
        assert!(err.contains("exists already"), "{err}");
    }

    #[test]
    fn retention_keeps_the_newest_complete_ones_and_savepoints() {
        let (store, s) = storage();
        for id in 1..=5 {
            let kind = if id == 2 {
                CheckpointKind::Savepoint
            } else {
                CheckpointKind::Checkpoint
            };
            s.write(&sample(id, kind)).unwrap();
        }
        // A torn one older than the newest complete (deleted) and one newer (kept: it may
        // be being written).
        store.put("a/job/chk-000000/x.state", vec![1]).unwrap();
        store.put("a/job/chk-000006/x.state", vec![1]).unwrap();
        s.retain(2).unwrap();
        let left = store.list_dirs("a/job").unwrap();
        assert_eq!(
            left,
            ["chk-000004", "chk-000005", "chk-000006", "sp-000002"]
        );
        assert_eq!(s.next_id().unwrap(), 7);
    }
}
