//! The LSM tree under the `lsm` state backend (cargo feature `lsm`): one fjall database per
//! run of a job, in a fresh directory under `state.dir` that is deleted when the run ends.
//!
//! Two keyspaces: `state` holds every key's value, and `changes` the keys written to `state`
//! since the last checkpoint (for incremental checkpoints). Keys of both are
//! `namespace (u32 BE) ‖ key group (u16 BE) ‖ MessagePack of the key`: the namespace is one
//! keyed map (one operator instance) of the run, so a prefix scan reads one key group of one
//! operator — what a checkpoint and a rescaling need. Values are MessagePack.
//!
//! The tree is not a recovery mechanism: checkpoints are (the engine writes its own, full or
//! incremental), so the journal is never synced and a restarted job starts from an empty tree
//! and the checkpoint's state.

use super::backend::StateConfig;
use crate::error::{Result, StreamError};
use std::path::PathBuf;

/// Length of the key prefix: namespace and key group.
pub(crate) const PREFIX_LEN: usize = 6;

/// The key prefix of key group `group` of namespace `ns`.
#[inline]
pub(crate) fn prefix(ns: u32, group: u32) -> [u8; PREFIX_LEN] {
    let n = ns.to_be_bytes();
    let g = (group as u16).to_be_bytes();
    [n[0], n[1], n[2], n[3], g[0], g[1]]
}

fn lsm_error(doing: impl std::fmt::Display, e: fjall::Error) -> StreamError {
    StreamError::external("state backend (lsm)", doing, e)
}

/// One run's LSM tree.
pub(crate) struct LsmStore {
    // Fields drop in order: the keyspaces before the database, which deletes the (temporary)
    // directory when it goes — the other way round, their tables warned that their files
    // were gone.
    state: fjall::Keyspace,
    changes: fjall::Keyspace,
    db: fjall::Database,
    dir: PathBuf,
}

impl LsmStore {
    /// Makes a fresh tree for a run of `job` under `config.dir` (or the temporary directory).
    pub(crate) fn open(config: &StateConfig, job: &str) -> Result<Self> {
        let root = config.dir.clone().unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&root)
            .map_err(|e| StreamError::io(format!("creating {}", root.display()), e))?;
        let safe: String = job
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(40)
            .collect();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // Unique in the process too: two jobs of one name opened in the same clock tick (tests
        // run in parallel; a VM's clock can be coarse) would otherwise share a directory, and
        // the second open fails on the first one's lock.
        static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = root.join(format!(
            "streamcore-state-{safe}-{}-{seq}-{nanos}",
            std::process::id()
        ));
        // A quarter of the budget for the tree itself: half of it block cache, the rest
        // memtables (one active and those being flushed); the other three quarters are the
        // hot-key caches' (StateBackend::open).
        let quarter = config.memory_budget / 4;
        let memtable = (quarter / 8).clamp(4 << 20, 64 << 20);
        let db = fjall::Database::builder(&dir)
            .temporary(true)
            .manual_journal_persist(true)
            .cache_size((quarter / 2).max(1 << 20))
            .max_journaling_size((4 * memtable).max(64 << 20));
        // Bounds all memtables together (writes wait for flushes beyond it): without it,
        // sealed memtables can pile up in memory when the flush threads get little CPU (the
        // suspect for 1.7 GB RSS under a 1 GB budget on a loaded machine). Deprecated in
        // fjall 3.1 without a replacement yet; still honoured.
        #[allow(deprecated)]
        let db = db
            .max_write_buffer_size(Some((quarter / 2).max(2 * memtable)))
            .open()
            .map_err(|e| lsm_error(format!("opening {}", dir.display()), e))?;
        // Filters and indexes partitioned at every level: a point read (most are for keys the
        // tree does not have yet) loads one small filter partition through the block cache,
        // never a whole table's filter — with fjall's defaults (whole filters below L3, not
        // pinned below L0) a budget smaller than the filters re-read megabytes per lookup.
        let state = db
            .keyspace("state", || {
                use fjall::config::{
                    BloomConstructionPolicy, FilterPolicy, FilterPolicyEntry, PartitioningPolicy,
                };
                fjall::KeyspaceCreateOptions::default()
                    .max_memtable_size(memtable)
                    .filter_block_partitioning_policy(PartitioningPolicy::all(true))
                    .index_block_partitioning_policy(PartitioningPolicy::all(true))
                    .filter_policy(FilterPolicy::all(FilterPolicyEntry::Bloom(
                        BloomConstructionPolicy::BitsPerKey(10.0),
                    )))
            })
            .map_err(|e| lsm_error("opening keyspace state", e))?;
        let changes = db
            .keyspace("changes", || {
                fjall::KeyspaceCreateOptions::default().max_memtable_size(4 << 20)
            })
            .map_err(|e| lsm_error("opening keyspace changes", e))?;
        tracing::info!(dir = %dir.display(), budget = config.memory_budget, "LSM state backend opened");
        Ok(LsmStore {
            db,
            state,
            changes,
            dir,
        })
    }

    /// The value stored under `key`.
    #[inline]
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<fjall::Slice>> {
        self.state
            .get(key)
            .map_err(|e| lsm_error("reading a key", e))
    }

    /// Deletes `key` now (a tombstone in the memtable).
    pub(crate) fn remove(&self, key: &[u8]) -> Result<()> {
        self.state
            .remove(key)
            .map_err(|e| lsm_error("deleting a key", e))
    }

    /// A batch of writes, applied atomically by [`LsmStore::commit`].
    pub(crate) fn batch(&self) -> fjall::OwnedWriteBatch {
        self.db.batch()
    }

    /// Puts `key` = `value` into `batch`; with `track`, also notes the key as changed since
    /// the last checkpoint.
    #[inline]
    pub(crate) fn put(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        key: &[u8],
        value: &[u8],
        track: bool,
    ) {
        batch.insert(&self.state, key, value);
        if track {
            batch.insert(&self.changes, key, []);
        }
    }

    /// Deletes `key` in `batch`.
    pub(crate) fn delete(&self, batch: &mut fjall::OwnedWriteBatch, key: &[u8]) {
        batch.remove(&self.state, key);
    }

    /// Applies `batch`.
    pub(crate) fn commit(&self, batch: fjall::OwnedWriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        batch.commit().map_err(|e| lsm_error("writing a batch", e))
    }

    /// Every `(key, value)` under `prefix`, in key order.
    pub(crate) fn scan(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(fjall::Slice, fjall::Slice)>> + '_ {
        self.state.prefix(prefix).map(|g| {
            g.into_inner()
                .map_err(|e| lsm_error("scanning a key group", e))
        })
    }

    /// Keys noted as changed under `prefix` (see [`LsmStore::put`]).
    pub(crate) fn changed_keys(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<fjall::Slice>> + '_ {
        self.changes
            .prefix(prefix)
            .map(|g| g.key().map_err(|e| lsm_error("scanning changed keys", e)))
    }

    /// Forgets the changed keys in `keys` (after a checkpoint wrote them).
    pub(crate) fn clear_changed(&self, keys: &[fjall::Slice]) -> Result<()> {
        let mut batch = self.db.batch();
        for k in keys {
            batch.remove(&self.changes, k.clone());
        }
        self.commit(batch)
    }

    /// Bytes on disk (tables and journal).
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.db.disk_space().unwrap_or(0)
    }
}

impl Drop for LsmStore {
    fn drop(&mut self) {
        tracing::debug!(dir = %self.dir.display(), "LSM state backend closed (directory deleted)");
    }
}
