//! [`KeyedMap`]: the per-key state of one operator instance, split by key group, on the
//! job's state backend (docs/state.md).
//!
//! * Memory backend: one hash map per owned key group holds every key.
//! * LSM backend (feature `lsm`): the same maps are a bounded write-back cache of hot keys in
//!   front of the job's LSM tree (deserialized values with a dirty and a recently-used bit,
//!   CLOCK eviction in batches); a miss reads the tree, an evicted dirty value is written to it.
//!   Values are serialized only on eviction and at checkpoints.
//!
//! Checkpoints write each key group as a MessagePack sequence of `(key, value)` — the same
//! bytes from either backend, so a checkpoint taken with one restores into the other. With
//! incremental checkpoints, a checkpoint may instead write per key group a *delta* (the tag
//! byte [`DELTA_TAG`], then `(deleted keys, changed (key, value)s)`) and name the earlier
//! checkpoints it builds on (`StateSnapshot::chain`); restore applies base and deltas in order.

#[cfg(feature = "lsm")]
use super::backend::StateBackend;
use super::backend::StateBackendKind;
use super::key_groups_of;
use super::plain::{group_of, key_hash, PlainTable};
use crate::checkpoint::{StateRestore, StateSnapshot};
use crate::context::TaskContext;
use crate::data::{Key, StateData};
use crate::error::{Result, StreamError};
use crate::metrics::Counter;
#[cfg(feature = "lsm")]
use std::sync::Arc;

/// The first byte of a delta blob (MessagePack never uses 0xc1, so a full blob — a sequence —
/// never starts with it).
pub(crate) const DELTA_TAG: u8 = 0xc1;

/// Written or read since the last checkpoint (or flush to the LSM tree).
const DIRTY: u8 = 1;
/// Used since the eviction sweep last passed (CLOCK's reference bit).
const HOT: u8 = 2;
/// The LSM tree holds a value for this key (it was loaded from there or written there).
const STORED: u8 = 4;

/// A value with its flags.
pub(crate) struct Cell<V> {
    pub(crate) value: V,
    flags: u8,
}

type Map<K, V> = hashbrown::HashMap<K, Cell<V>, foldhash::fast::RandomState>;

/// Appends a MessagePack array header for `n` items.
pub(crate) fn write_array_len(buf: &mut Vec<u8>, n: usize) {
    if n < 16 {
        buf.push(0x90 | n as u8);
    } else if n <= u16::MAX as usize {
        buf.push(0xdc);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        buf.push(0xdd);
        buf.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Appends `value` as MessagePack (the encoding of [`crate::checkpoint::encode`]).
#[inline]
pub(crate) fn encode_into<S: serde::Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    value: &S,
) -> Result<()> {
    rmp_serde::encode::write(buf, value)
        .map_err(|e| StreamError::Checkpoint(format!("encoding state: {e}")))
}

/// What incremental checkpoints need to remember between two checkpoints.
struct Tracking<K> {
    /// Keys removed since the last checkpoint, per local key group.
    removed: Vec<Vec<K>>,
    /// The checkpoints this instance wrote since its last full one (that one first): `(id,
    /// name)`. Empty: the next checkpoint is full.
    chain: Vec<(u64, String)>,
    /// Bytes of the last full checkpoint, and of the deltas written since.
    full_bytes: u64,
    delta_bytes: u64,
    full_every: u32,
}

/// Puts `prefix(namespace, group) ‖ key` into `buf`: the key's key in the LSM tree.
#[cfg(feature = "lsm")]
#[inline]
fn encode_key<K: serde::Serialize>(
    buf: &mut Vec<u8>,
    namespace: u32,
    group: u32,
    key: &K,
) -> Result<()> {
    buf.clear();
    buf.extend_from_slice(&super::lsm::prefix(namespace, group));
    encode_into(buf, key)
}

/// The cache's side of the LSM backend.
#[cfg(feature = "lsm")]
struct LsmTier {
    backend: Arc<StateBackend>,
    namespace: u32,
    /// Entries in the cache now, and the most it may hold.
    cached: usize,
    limit: usize,
    /// Bytes of one cached entry outside its heap data (table slot, padding, spare slots).
    inline_bytes: usize,
    /// Average serialized size of a key and value: the estimate of their heap data.
    avg_heap: f64,
    /// The key group the next eviction sweep starts in.
    cursor: usize,
    key_buf: Vec<u8>,
    val_buf: Vec<u8>,
    hits: u64,
    misses: u64,
    published: (u64, u64, i64),
    metrics: Option<LsmMetrics>,
}

#[cfg(feature = "lsm")]
struct LsmMetrics {
    hits: Counter,
    misses: Counter,
    evicted: Counter,
    memory_bytes: crate::metrics::Gauge,
    disk_bytes: crate::metrics::Gauge,
}

/// Checkpoint metrics of one keyed map.
struct SnapshotMetrics {
    full_bytes: Counter,
    incremental_bytes: Counter,
}

/// Per-key state of one operator instance, split by key group, on the job's state backend.
pub struct KeyedMap<K, V> {
    key_groups: u32,
    first: u32,
    /// Owned key groups.
    n: usize,
    /// The memory backend without change tracking: plain maps, as small and fast as can be
    /// (the flags of `groups` would add a word to every entry).
    plain: Vec<PlainTable<K, V>>,
    /// Otherwise (LSM cache, or tracking changes): values with their flags.
    groups: Vec<Map<K, V>>,
    /// Keys held (cache and LSM tree together).
    count: usize,
    track: Option<Box<Tracking<K>>>,
    metrics: Option<SnapshotMetrics>,
    #[cfg(feature = "lsm")]
    lsm: Option<Box<LsmTier>>,
}

impl<K, V> Drop for KeyedMap<K, V> {
    fn drop(&mut self) {
        if super::state_dies_with_the_process() {
            std::mem::forget(std::mem::take(&mut self.plain));
            std::mem::forget(std::mem::take(&mut self.groups));
        }
        #[cfg(feature = "lsm")]
        if let Some(t) = &mut self.lsm {
            t.publish();
            // Its keys stay in the tree (under a namespace nobody uses again) until the run
            // ends and the tree is deleted: deleting them one by one would cost a full scan.
            t.backend.unregister_map(t.published.2);
        }
    }
}

impl<K, V> KeyedMap<K, V> {
    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when no key has state.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl<K: Key + StateData, V: StateData> KeyedMap<K, V> {
    /// In-memory state for instance `subtask` of `parallelism`, without change tracking.
    pub fn new(subtask: usize, key_groups: u32, parallelism: usize) -> Self {
        let owned = key_groups_of(subtask, key_groups, parallelism);
        KeyedMap {
            key_groups,
            first: owned.start,
            n: owned.len(),
            plain: owned.map(|_| Default::default()).collect(),
            groups: Vec::new(),
            count: 0,
            track: None,
            metrics: None,
            #[cfg(feature = "lsm")]
            lsm: None,
        }
    }

    /// State for the operator instance of `ctx`, on the job's state backend. Call in
    /// `Operator::open`. Its checkpoints are full ones.
    pub fn open(ctx: &TaskContext) -> Result<Self> {
        Self::open_tracked(ctx, false)
    }

    /// As [`KeyedMap::open`], tracking changes for incremental checkpoints when the job takes
    /// them: for an operator whose checkpoint is [`KeyedMap::snapshot`] (deltas need it to be
    /// called at every checkpoint, or the changes pile up).
    pub(crate) fn open_incremental(ctx: &TaskContext) -> Result<Self> {
        Self::open_tracked(ctx, true)
    }

    fn open_tracked(ctx: &TaskContext, incremental: bool) -> Result<Self> {
        let info = ctx.info();
        let mut map = KeyedMap::new(info.subtask, info.key_groups, info.parallelism);
        let Some(backend) = ctx.state_backend.clone() else {
            return Ok(map);
        };
        if backend.kind() == StateBackendKind::Lsm
            || (incremental && backend.config().incremental && info.checkpointing)
        {
            map.plain = Vec::new();
            map.groups = (0..map.n).map(|_| Default::default()).collect();
        }
        if incremental && backend.config().incremental && info.checkpointing {
            map.track = Some(Box::new(Tracking {
                removed: (0..map.groups.len()).map(|_| Vec::new()).collect(),
                chain: Vec::new(),
                full_bytes: 0,
                delta_bytes: 0,
                full_every: backend.config().full_every.max(1),
            }));
        }
        if info.checkpointing {
            map.metrics = Some(SnapshotMetrics {
                full_bytes: ctx.counter("state_checkpoint_full_bytes"),
                incremental_bytes: ctx.counter("state_checkpoint_incremental_bytes"),
            });
        }
        if backend.kind() == StateBackendKind::Lsm {
            #[cfg(feature = "lsm")]
            {
                let namespace = backend.register_map();
                let inline_bytes = (std::mem::size_of::<(K, Cell<V>)>() + 1) * 2;
                let mut tier = LsmTier {
                    backend,
                    namespace,
                    cached: 0,
                    limit: 0,
                    inline_bytes,
                    avg_heap: 16.0,
                    cursor: 0,
                    key_buf: Vec::with_capacity(64),
                    val_buf: Vec::with_capacity(256),
                    hits: 0,
                    misses: 0,
                    published: (0, 0, 0),
                    metrics: Some(LsmMetrics {
                        hits: ctx.counter("state_cache_hits"),
                        misses: ctx.counter("state_cache_misses"),
                        evicted: ctx.counter("state_cache_evictions"),
                        memory_bytes: ctx.gauge("state_memory_bytes"),
                        disk_bytes: ctx.gauge("state_disk_bytes"),
                    }),
                };
                tier.refresh_limit();
                map.lsm = Some(Box::new(tier));
            }
            #[cfg(not(feature = "lsm"))]
            return Err(StreamError::Config(
                "state backend `lsm` needs streamcore built with the `lsm` feature".into(),
            ));
        }
        Ok(map)
    }

    /// The local index of `key`'s group (panics on a key this instance does not own: a
    /// routing bug).
    #[inline]
    fn local(&self, key: &K) -> usize {
        self.local_of_hash(key_hash(key))
    }

    /// The local index of the group of a key with key-group hash `hash`.
    #[inline]
    fn local_of_hash(&self, hash: u64) -> usize {
        let group = group_of(hash, self.key_groups);
        match group.checked_sub(self.first) {
            Some(g) if (g as usize) < self.n => g as usize,
            _ => panic!("key group {group} is not owned by this instance (a routing bug)"),
        }
    }

    /// The state of `key`, created with `init` if absent. Fails only on the LSM backend, when
    /// the tree cannot be read or written.
    #[inline]
    pub fn entry_or_insert_with(&mut self, key: K, init: impl FnOnce(&K) -> V) -> Result<&mut V> {
        let hash = key_hash(&key);
        let local = self.local_of_hash(hash);
        if !self.plain.is_empty() {
            let (entry, new) = self.plain[local].entry_or_insert_with(hash, key, init);
            self.count += usize::from(new);
            return Ok(&mut entry.1);
        }
        #[cfg(feature = "lsm")]
        if self.lsm.is_some() {
            return self.lsm_entry(local, key, init);
        }
        let count = &mut self.count;
        let cell = self.groups[local].entry(key).or_insert_with_key(|k| {
            *count += 1;
            Cell {
                value: init(k),
                flags: 0,
            }
        });
        cell.flags = DIRTY;
        Ok(&mut cell.value)
    }

    /// The stored key and its state, created with `init` if absent.
    pub fn entry_key_value(&mut self, key: K, init: impl FnOnce(&K) -> V) -> Result<(&K, &mut V)> {
        if !self.plain.is_empty() {
            let hash = key_hash(&key);
            let local = self.local_of_hash(hash);
            let (entry, new) = self.plain[local].entry_or_insert_with(hash, key, init);
            self.count += usize::from(new);
            return Ok((&entry.0, &mut entry.1));
        }
        let local = self.local(&key);
        let probe = key.clone();
        self.entry_or_insert_with(key, init)?;
        let (k, cell) = self.groups[local]
            .get_key_value_mut(&probe)
            .ok_or_else(|| StreamError::Internal("keyed state entry vanished".into()))?;
        cell.flags |= DIRTY;
        Ok((k, &mut cell.value))
    }

    /// The state of `key`, if present.
    pub fn get_mut(&mut self, key: &K) -> Result<Option<&mut V>> {
        let hash = key_hash(key);
        let local = self.local_of_hash(hash);
        if !self.plain.is_empty() {
            return Ok(self.plain[local].get_mut(hash, key));
        }
        #[cfg(feature = "lsm")]
        if self.lsm.is_some() && !self.groups[local].contains_key(key) && !self.load(local, key)? {
            return Ok(None);
        }
        Ok(self.groups[local].get_mut(key).map(|c| {
            c.flags |= DIRTY | HOT;
            &mut c.value
        }))
    }

    /// Calls `f` on every key's state held in memory — every key on the memory backend, the
    /// cached ones on the LSM backend (keys in the tree are not read) — to trim it in place;
    /// `f` returns whether it changed the state (a change for incremental checkpoints).
    pub fn update_in_memory(&mut self, mut f: impl FnMut(&K, &mut V) -> bool) {
        for table in &mut self.plain {
            for (k, v) in table.iter_mut() {
                f(k, v);
            }
        }
        for map in &mut self.groups {
            for (k, c) in map.iter_mut() {
                if f(k, &mut c.value) {
                    c.flags |= DIRTY;
                }
            }
        }
    }

    /// The state of `key` if it is in memory: on the LSM backend, `None` for a key evicted to
    /// the tree (nothing is read from it). For statistics and other best-effort looks.
    pub fn peek(&self, key: &K) -> Option<&V> {
        let hash = key_hash(key);
        let local = self.local_of_hash(hash);
        if !self.plain.is_empty() {
            return self.plain[local].get(hash, key);
        }
        self.groups[local].get(key).map(|c| &c.value)
    }

    /// Removes the state of `key`, returning it.
    pub fn remove(&mut self, key: &K) -> Result<Option<V>> {
        let hash = key_hash(key);
        let local = self.local_of_hash(hash);
        if !self.plain.is_empty() {
            let v = self.plain[local].remove(hash, key);
            self.count -= usize::from(v.is_some());
            return Ok(v);
        }
        let cell = self.groups[local].remove(key);
        #[cfg(feature = "lsm")]
        let cell = match &mut self.lsm {
            Some(tier) => {
                let store = tier.backend.lsm.as_ref().expect("lsm backend has a store");
                encode_key(
                    &mut tier.key_buf,
                    tier.namespace,
                    self.first + local as u32,
                    key,
                )?;
                match cell {
                    Some(c) => {
                        tier.cached -= 1;
                        if c.flags & STORED != 0 {
                            store.remove(&tier.key_buf)?;
                        }
                        Some(c)
                    }
                    None => match store.get(&tier.key_buf)? {
                        Some(bytes) => {
                            let value = crate::checkpoint::decode::<V>(&bytes)?;
                            store.remove(&tier.key_buf)?;
                            Some(Cell { value, flags: 0 })
                        }
                        None => None,
                    },
                }
            }
            None => cell,
        };
        let Some(cell) = cell else {
            return Ok(None);
        };
        self.count -= 1;
        if let Some(t) = &mut self.track {
            t.removed[local].push(key.clone());
        }
        Ok(Some(cell.value))
    }

    /// Keeps only the entries for which `keep` holds. On the LSM backend this reads every key
    /// of the tree that is not cached (a full scan).
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) -> Result<()> {
        if !self.plain.is_empty() {
            for table in &mut self.plain {
                table.retain(&mut keep);
            }
            self.count = self.plain.iter().map(|t| t.len()).sum();
            return Ok(());
        }
        let mut gone: Vec<(usize, K, bool)> = Vec::new();
        for (local, map) in self.groups.iter_mut().enumerate() {
            map.retain(|k, c| {
                let k_ok = keep(k, &c.value);
                if !k_ok {
                    gone.push((local, k.clone(), c.flags & STORED != 0));
                }
                k_ok
            });
        }
        #[cfg(feature = "lsm")]
        if let Some(tier) = &mut self.lsm {
            let store = tier.backend.lsm.as_ref().expect("lsm backend has a store");
            tier.cached -= gone.len();
            for (local, k, stored) in &gone {
                if *stored {
                    encode_key(
                        &mut tier.key_buf,
                        tier.namespace,
                        self.first + *local as u32,
                        k,
                    )?;
                    store.remove(&tier.key_buf)?;
                }
            }
            // Keys only in the tree.
            let mut batch = store.batch();
            for local in 0..self.groups.len() {
                let prefix = super::lsm::prefix(tier.namespace, self.first + local as u32);
                for kv in store.scan(&prefix) {
                    let (k_bytes, v_bytes) = kv?;
                    let k: K = crate::checkpoint::decode(&k_bytes[super::lsm::PREFIX_LEN..])?;
                    if self.groups[local].contains_key(&k) {
                        continue;
                    }
                    let v: V = crate::checkpoint::decode(&v_bytes)?;
                    if !keep(&k, &v) {
                        store.delete(&mut batch, &k_bytes);
                        gone.push((local, k, true));
                    }
                }
            }
            store.commit(batch)?;
        }
        self.count -= gone.len();
        if let Some(t) = &mut self.track {
            for (local, k, _) in gone {
                t.removed[local].push(k);
            }
        }
        Ok(())
    }

    /// Whether the map spills to disk (the LSM backend): state an operator keeps beside it
    /// in memory would escape the job's memory budget.
    pub(crate) fn spills(&self) -> bool {
        #[cfg(feature = "lsm")]
        return self.lsm.is_some();
        #[cfg(not(feature = "lsm"))]
        false
    }

    /// The owned key groups.
    pub(crate) fn owned_groups(&self) -> std::ops::Range<u32> {
        self.first..self.first + self.n as u32
    }

    /// Appends every `(key, value)` of key group `group` to `buf` as MessagePack pairs (no
    /// sequence header); returns how many. On the LSM backend dirty cached values are written
    /// to the tree first.
    pub(crate) fn write_group(&mut self, group: u32, buf: &mut Vec<u8>) -> Result<usize> {
        let local = (group - self.first) as usize;
        #[cfg(feature = "lsm")]
        if self.lsm.is_some() {
            // Not noted as changes: a full snapshot covers them (and one for a key-group change
            // is taken from an instance that is rebuilt right after).
            self.flush_group(local, false)?;
            let tier = self.lsm.as_ref().expect("checked");
            let store = tier.backend.lsm.as_ref().expect("lsm backend has a store");
            let mut n = 0;
            for kv in store.scan(&super::lsm::prefix(tier.namespace, group)) {
                let (k, v) = kv?;
                buf.push(0x92);
                buf.extend_from_slice(&k[super::lsm::PREFIX_LEN..]);
                buf.extend_from_slice(&v);
                n += 1;
            }
            return Ok(n);
        }
        if !self.plain.is_empty() {
            let table = &self.plain[local];
            for (k, v) in table.iter() {
                buf.push(0x92);
                encode_into(buf, k)?;
                encode_into(buf, v)?;
            }
            return Ok(table.len());
        }
        let map = &self.groups[local];
        for (k, c) in map {
            buf.push(0x92);
            encode_into(buf, k)?;
            encode_into(buf, &c.value)?;
        }
        Ok(map.len())
    }

    /// Writes the state into `out` for a checkpoint: every non-empty key group as a sequence
    /// of `(key, value)`, or — with incremental checkpoints, when the chain allows — only what
    /// changed since the previous checkpoint.
    pub(crate) fn snapshot(&mut self, ctx: &TaskContext, out: &mut StateSnapshot) -> Result<()> {
        let target = ctx.snapshot_target.as_ref();
        let delta = match (&self.track, target) {
            (Some(t), Some(target)) => {
                t.chain
                    .last()
                    .is_some_and(|(id, _)| *id <= target.completed && *id < target.id)
                    && (t.chain.len() as u32) <= t.full_every
                    && t.delta_bytes < t.full_bytes.max(1)
            }
            _ => false,
        };
        let mut written = 0u64;
        let mut buf = Vec::new();
        for local in 0..self.n {
            let group = self.first + local as u32;
            buf.clear();
            if delta {
                self.write_delta(local, &mut buf)?;
            } else {
                let mut body = Vec::new();
                let n = self.write_group(group, &mut body)?;
                if n > 0 {
                    write_array_len(&mut buf, n);
                    buf.extend_from_slice(&body);
                }
            }
            if !buf.is_empty() {
                written += buf.len() as u64;
                out.put_group_raw(group, std::mem::take(&mut buf));
            }
        }
        let Some(target) = target else {
            return Ok(());
        };
        if let Some(m) = &self.metrics {
            if delta {
                m.incremental_bytes.add(written);
            } else {
                m.full_bytes.add(written);
            }
        }
        let Some(t) = &mut self.track else {
            return Ok(());
        };
        if delta {
            out.chain = t.chain.iter().map(|(_, n)| n.clone()).collect();
            t.delta_bytes += written;
            t.chain.push((target.id, target.name.clone()));
        } else {
            // A full checkpoint: what changed before it is in it. Nothing chains on a
            // savepoint (the user may delete it): the checkpoint after one is full again.
            t.chain = if target.name.starts_with("sp-") {
                Vec::new()
            } else {
                vec![(target.id, target.name.clone())]
            };
            t.full_bytes = written;
            t.delta_bytes = 0;
            for removed in &mut t.removed {
                removed.clear();
            }
            for map in &mut self.groups {
                for c in map.values_mut() {
                    c.flags &= !DIRTY;
                }
            }
            #[cfg(feature = "lsm")]
            if let Some(tier) = &self.lsm {
                let store = tier.backend.lsm.as_ref().expect("lsm backend has a store");
                for local in 0..self.groups.len() {
                    let prefix = super::lsm::prefix(tier.namespace, self.first + local as u32);
                    let keys = store.changed_keys(&prefix).collect::<Result<Vec<_>>>()?;
                    store.clear_changed(&keys)?;
                }
            }
        }
        self.publish_metrics();
        Ok(())
    }

    /// Appends the delta blob of local key group `local` to `buf` (nothing if unchanged) and
    /// forgets its changes.
    fn write_delta(&mut self, local: usize, buf: &mut Vec<u8>) -> Result<()> {
        let t = self.track.as_mut().expect("delta needs tracking");
        let removed = std::mem::take(&mut t.removed[local]);
        let mut puts = Vec::new();
        let mut n_puts = 0usize;
        #[cfg(feature = "lsm")]
        if self.lsm.is_some() {
            // Dirty cached values go to the tree (and its change log) first.
            self.flush_group(local, true)?;
            let tier = self.lsm.as_ref().expect("checked");
            let store = tier.backend.lsm.as_ref().expect("lsm backend has a store");
            let prefix = super::lsm::prefix(tier.namespace, self.first + local as u32);
            let keys = store.changed_keys(&prefix).collect::<Result<Vec<_>>>()?;
            let mut dels = Vec::new();
            let mut n_dels = removed.len();
            for k in &removed {
                encode_into(&mut dels, k)?;
            }
            for k in &keys {
                match store.get(k)? {
                    Some(v) => {
                        puts.push(0x92);
                        puts.extend_from_slice(&k[super::lsm::PREFIX_LEN..]);
                        puts.extend_from_slice(&v);
                        n_puts += 1;
                    }
                    None => {
                        dels.extend_from_slice(&k[super::lsm::PREFIX_LEN..]);
                        n_dels += 1;
                    }
                }
            }
            store.clear_changed(&keys)?;
            if n_dels + n_puts > 0 {
                buf.push(DELTA_TAG);
                buf.push(0x92);
                write_array_len(buf, n_dels);
                buf.extend_from_slice(&dels);
                write_array_len(buf, n_puts);
                buf.extend_from_slice(&puts);
            }
            return Ok(());
        }
        for (k, c) in self.groups[local].iter_mut() {
            if c.flags & DIRTY != 0 {
                c.flags &= !DIRTY;
                puts.push(0x92);
                encode_into(&mut puts, k)?;
                encode_into(&mut puts, &c.value)?;
                n_puts += 1;
            }
        }
        if removed.is_empty() && n_puts == 0 {
            return Ok(());
        }
        buf.push(DELTA_TAG);
        buf.push(0x92);
        write_array_len(buf, removed.len());
        for k in &removed {
            encode_into(buf, k)?;
        }
        write_array_len(buf, n_puts);
        buf.extend_from_slice(&puts);
        Ok(())
    }

    /// Adds the restored key groups (each one this instance owns): for each group, its full
    /// state and then the deltas of the incremental checkpoints after it, in order.
    pub(crate) fn restore(&mut self, state: &StateRestore) -> Result<()> {
        // A key group that holds nothing yet takes its full blob without looking up whether
        // each key is already there (on the LSM backend a point read per key).
        let mut fresh = vec![self.count == 0; self.n];
        for (group, bytes) in &state.groups {
            let local = group
                .checked_sub(self.first)
                .filter(|g| (*g as usize) < self.n)
                .ok_or_else(|| {
                    StreamError::Internal(format!(
                        "restored key group {group} is not owned by this instance"
                    ))
                })? as usize;
            if bytes.first() == Some(&DELTA_TAG) {
                let (dels, puts): (Vec<K>, Vec<(K, V)>) = crate::checkpoint::decode(&bytes[1..])?;
                for k in &dels {
                    self.remove(k)?;
                }
                self.restore_entries(local, puts, false)?;
            } else {
                let entries: Vec<(K, V)> = crate::checkpoint::decode(bytes)?;
                self.restore_entries(local, entries, fresh[local])?;
            }
            fresh[local] = false;
        }
        // Nothing restored counts as a change: the next checkpoint is full anyway.
        if let Some(t) = &mut self.track {
            for r in &mut t.removed {
                r.clear();
            }
        }
        Ok(())
    }

    /// Writes restored `entries` into local key group `local`; `fresh`: the group holds no
    /// key yet (and the entries are distinct keys: a full blob).
    #[cfg_attr(not(feature = "lsm"), allow(unused_variables))]
    fn restore_entries(&mut self, local: usize, entries: Vec<(K, V)>, fresh: bool) -> Result<()> {
        if !self.plain.is_empty() {
            let table = &mut self.plain[local];
            for (k, v) in entries {
                if table.insert(k, v) {
                    self.count += 1;
                }
            }
            return Ok(());
        }
        #[cfg(feature = "lsm")]
        if let Some(tier) = &mut self.lsm {
            let store = tier.backend.lsm.as_ref().expect("lsm backend has a store");
            let group = self.first + local as u32;
            let mut batch = store.batch();
            for (k, v) in entries {
                if let Some(c) = self.groups[local].remove(&k) {
                    tier.cached -= 1;
                    if c.flags & STORED == 0 {
                        self.count -= 1;
                    }
                }
                encode_key(&mut tier.key_buf, tier.namespace, group, &k)?;
                if fresh || store.get(&tier.key_buf)?.is_none() {
                    self.count += 1;
                }
                tier.val_buf.clear();
                encode_into(&mut tier.val_buf, &v)?;
                store.put(&mut batch, &tier.key_buf, &tier.val_buf, false);
                if batch.len() >= 4096 {
                    store.commit(std::mem::replace(&mut batch, store.batch()))?;
                }
            }
            return store.commit(batch);
        }
        let map = &mut self.groups[local];
        for (k, v) in entries {
            if map.insert(k, Cell { value: v, flags: 0 }).is_none() {
                self.count += 1;
            }
        }
        Ok(())
    }

    /// Publishes the cache's metrics (hits, misses, bytes in memory and on disk).
    fn publish_metrics(&mut self) {
        #[cfg(feature = "lsm")]
        if let Some(tier) = &mut self.lsm {
            tier.publish();
        }
    }
}

#[cfg(feature = "lsm")]
impl LsmTier {
    /// Recomputes how many entries the cache may hold from its share of the budget.
    fn refresh_limit(&mut self) {
        let per_entry = self.inline_bytes as f64 + self.avg_heap;
        self.limit = ((self.backend.cache_share() as f64 / per_entry) as usize).max(64);
    }

    /// Puts `prefix(group) ‖ key` into `key_buf`.
    #[inline]
    fn encode_key<K: serde::Serialize>(&mut self, group: u32, key: &K) -> Result<()> {
        encode_key(&mut self.key_buf, self.namespace, group, key)
    }

    fn cached_bytes(&self) -> i64 {
        (self.cached as f64 * (self.inline_bytes as f64 + self.avg_heap)) as i64
    }

    fn publish(&mut self) {
        let bytes = self.cached_bytes();
        self.backend.add_cached_bytes(bytes - self.published.2);
        if let Some(m) = &self.metrics {
            m.hits.add(self.hits - self.published.0);
            m.misses.add(self.misses - self.published.1);
            m.memory_bytes.set(bytes);
            m.disk_bytes.set(self.backend.disk_bytes() as i64);
        }
        self.published = (self.hits, self.misses, bytes);
    }
}

#[cfg(feature = "lsm")]
impl<K: Key + StateData, V: StateData> KeyedMap<K, V> {
    /// The LSM backend's `entry_or_insert_with`: the cache, else the tree, else `init`.
    #[inline]
    fn lsm_entry(&mut self, local: usize, key: K, init: impl FnOnce(&K) -> V) -> Result<&mut V> {
        if self.lsm.as_ref().is_some_and(|t| t.cached >= t.limit) {
            self.evict()?;
        }
        let tier = self.lsm.as_mut().expect("lsm backend");
        let group = self.first + local as u32;
        match self.groups[local].entry(key) {
            hashbrown::hash_map::Entry::Occupied(o) => {
                tier.hits += 1;
                if tier.hits % 65_536 == 0 {
                    tier.publish();
                }
                let c = o.into_mut();
                c.flags |= DIRTY | HOT;
                Ok(&mut c.value)
            }
            hashbrown::hash_map::Entry::Vacant(v) => {
                tier.misses += 1;
                if tier.misses % 65_536 == 0 {
                    tier.publish();
                }
                tier.encode_key(group, v.key())?;
                let store = tier.backend.lsm.as_ref().expect("lsm backend has a store");
                let cell = match store.get(&tier.key_buf)? {
                    Some(bytes) => Cell {
                        value: crate::checkpoint::decode(&bytes)?,
                        flags: DIRTY | HOT | STORED,
                    },
                    None => {
                        self.count += 1;
                        Cell {
                            value: init(v.key()),
                            flags: DIRTY | HOT,
                        }
                    }
                };
                tier.cached += 1;
                Ok(&mut v.insert(cell).value)
            }
        }
    }

    /// Loads `key` from the tree into the cache; false if the tree does not have it.
    fn load(&mut self, local: usize, key: &K) -> Result<bool> {
        if self.lsm.as_ref().is_some_and(|t| t.cached >= t.limit) {
            self.evict()?;
        }
        let tier = self.lsm.as_mut().expect("lsm backend");
        tier.misses += 1;
        tier.encode_key(self.first + local as u32, key)?;
        let store = tier.backend.lsm.as_ref().expect("lsm backend has a store");
        let Some(bytes) = store.get(&tier.key_buf)? else {
            return Ok(false);
        };
        let value = crate::checkpoint::decode(&bytes)?;
        tier.cached += 1;
        self.groups[local].insert(
            key.clone(),
            Cell {
                value,
                flags: HOT | STORED,
            },
        );
        Ok(true)
    }

    /// Evicts a quarter of the cache (CLOCK: a recently used entry loses its bit and stays
    /// once), writing dirty values to the tree in one batch.
    fn evict(&mut self) -> Result<()> {
        let tier = self.lsm.as_mut().expect("lsm backend");
        tier.refresh_limit();
        let target = tier.limit - tier.limit / 4;
        if tier.cached < tier.limit {
            return Ok(());
        }
        let mut need = tier.cached.saturating_sub(target);
        let store = tier.backend.lsm.as_ref().expect("lsm backend has a store");
        let track = self.track.is_some();
        let mut batch = store.batch();
        let (mut evicted, mut heap_sum, mut written) = (0usize, 0usize, 0usize);
        let mut failed = None;
        let n = self.groups.len();
        let mut visited = 0;
        while need > 0 && visited < 3 * n {
            let local = tier.cursor % n;
            tier.cursor = tier.cursor.wrapping_add(1);
            visited += 1;
            let prefix = super::lsm::prefix(tier.namespace, self.first + local as u32);
            let (key_buf, val_buf) = (&mut tier.key_buf, &mut tier.val_buf);
            self.groups[local].retain(|k, c| {
                if need == 0 || failed.is_some() {
                    return true;
                }
                if c.flags & HOT != 0 {
                    c.flags &= !HOT;
                    return true;
                }
                if c.flags & DIRTY != 0 {
                    key_buf.clear();
                    key_buf.extend_from_slice(&prefix);
                    val_buf.clear();
                    if let Err(e) =
                        encode_into(key_buf, k).and_then(|()| encode_into(val_buf, &c.value))
                    {
                        failed = Some(e);
                        return true;
                    }
                    heap_sum += key_buf.len() - prefix.len() + val_buf.len();
                    written += 1;
                    store.put(&mut batch, key_buf, val_buf, track);
                }
                need -= 1;
                evicted += 1;
                false
            });
            // An eviction leaves tombstones in the group's table, and a table whose tombstones
            // use up its free slots doubles rather than reuse them: under continuous eviction
            // the tables settled at 7/32-7/16 full, 1.44x the cache's share of the budget
            // (heaptrack, 100 M keys, 1 GB). A table with room for twice the entries it
            // holds until the cache is full again is rebuilt to that size, without tombstones.
            let group = &mut self.groups[local];
            let room = group.len() + group.len() / 3;
            if group.capacity() >= 2 * room.max(16) {
                group.shrink_to(room);
            }
            // Written group by group, not in one batch of a quarter of the cache: a batch is
            // held whole in memory until it commits (hundreds of MB with a 1 GB budget).
            if failed.is_none() && batch.len() >= 4096 {
                store.commit(std::mem::replace(&mut batch, store.batch()))?;
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        store.commit(batch)?;
        tier.cached -= evicted;
        if written > 0 {
            let sample = heap_sum as f64 / written as f64;
            tier.avg_heap = 0.8 * tier.avg_heap + 0.2 * sample;
        }
        if let Some(m) = &tier.metrics {
            m.evicted.add(evicted as u64);
        }
        tier.publish();
        Ok(())
    }

    /// Writes the dirty cached values of local key group `local` to the tree (and, with
    /// `track` and incremental checkpoints, notes them as changed); they stay cached, clean.
    fn flush_group(&mut self, local: usize, track: bool) -> Result<()> {
        let tier = self.lsm.as_mut().expect("lsm backend");
        let store = tier.backend.lsm.as_ref().expect("lsm backend has a store");
        let track = track && self.track.is_some();
        let prefix = super::lsm::prefix(tier.namespace, self.first + local as u32);
        let mut batch = store.batch();
        for (k, c) in self.groups[local].iter_mut() {
            if c.flags & DIRTY == 0 {
                continue;
            }
            tier.key_buf.clear();
            tier.key_buf.extend_from_slice(&prefix);
            encode_into(&mut tier.key_buf, k)?;
            tier.val_buf.clear();
            encode_into(&mut tier.val_buf, &c.value)?;
            store.put(&mut batch, &tier.key_buf, &tier.val_buf, track);
            c.flags = (c.flags & !DIRTY) | STORED;
            if batch.len() >= 4096 {
                store.commit(std::mem::replace(&mut batch, store.batch()))?;
            }
        }
        store.commit(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::SnapshotTarget;
    use crate::state::StateConfig;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    type Model = BTreeMap<String, (i64, u32)>;

    fn context(config: Option<StateConfig>) -> TaskContext {
        let mut ctx = TaskContext::for_test("keyed");
        ctx.info.checkpointing = true;
        ctx.state_backend = config.map(|c| crate::state::StateBackend::open(&c, "test").unwrap());
        ctx
    }

    /// Every key and value held, read the way a full checkpoint reads them.
    fn contents(map: &mut KeyedMap<String, (i64, u32)>) -> Model {
        let mut all = Model::new();
        for group in map.owned_groups() {
            let mut body = Vec::new();
            let n = map.write_group(group, &mut body).unwrap();
            let mut blob = Vec::new();
            write_array_len(&mut blob, n);
            blob.extend_from_slice(&body);
            let entries: Vec<(String, (i64, u32))> = crate::checkpoint::decode(&blob).unwrap();
            assert_eq!(entries.len(), n);
            all.extend(entries);
        }
        all
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(u16, i64),
        Remove(u16),
        Retain(i64),
        Checkpoint,
        Restore,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            12 => (0u16..400, -50i64..50).prop_map(|(k, v)| Op::Add(k, v)),
            2 => (0u16..400).prop_map(Op::Remove),
            1 => (-100i64..0).prop_map(Op::Retain),
            2 => Just(Op::Checkpoint),
            1 => Just(Op::Restore),
        ]
    }

    /// Runs `ops` on a keyed map on `config` and on a plain map, checking that they agree
    /// after every step, and that restoring the checkpoints taken (full, or a full one and
    /// the incremental ones after it) gives back the state as of the last one.
    fn run_against_model(config: Option<StateConfig>, ops: &[Op]) {
        let ctx = context(config.clone());
        let mut map: KeyedMap<String, (i64, u32)> = KeyedMap::open_incremental(&ctx).unwrap();
        let mut model = Model::new();
        // The blobs a restore reads (the last full checkpoint's, then the deltas after it),
        // and the model as of the last checkpoint.
        let mut blobs: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut at_checkpoint = Model::new();
        let mut id = 0u64;
        for op in ops {
            match op {
                Op::Add(k, v) => {
                    let key = format!("key-{k}");
                    let slot = map.entry_or_insert_with(key.clone(), |_| (0, 0)).unwrap();
                    slot.0 += v;
                    slot.1 += 1;
                    let m = model.entry(key).or_insert((0, 0));
                    m.0 += v;
                    m.1 += 1;
                }
                Op::Remove(k) => {
                    let key = format!("key-{k}");
                    assert_eq!(map.remove(&key).unwrap(), model.remove(&key));
                }
                Op::Retain(min) => {
                    map.retain(|_, v| v.0 >= *min).unwrap();
                    model.retain(|_, v| v.0 >= *min);
                }
                Op::Checkpoint => {
                    id += 1;
                    let mut ctx = context(None);
                    ctx.snapshot_target = Some(SnapshotTarget {
                        id,
                        name: format!("chk-{id:06}"),
                        completed: id - 1,
                    });
                    let mut snap = StateSnapshot::default();
                    map.snapshot(&ctx, &mut snap).unwrap();
                    if snap.chain.is_empty() {
                        blobs.clear();
                        names.clear();
                        assert!(snap.groups.iter().all(|(_, b)| b[0] != DELTA_TAG));
                    } else {
                        assert_eq!(snap.chain, names, "a delta names the chain it builds on");
                        assert!(snap.groups.iter().all(|(_, b)| b[0] == DELTA_TAG));
                    }
                    names.push(format!("chk-{id:06}"));
                    blobs.extend(snap.groups);
                    at_checkpoint = model.clone();
                }
                Op::Restore => {
                    if names.is_empty() {
                        continue;
                    }
                    let ctx = context(config.clone());
                    let mut restored: KeyedMap<String, (i64, u32)> =
                        KeyedMap::open_incremental(&ctx).unwrap();
                    restored
                        .restore(&StateRestore {
                            groups: blobs.clone(),
                            operator: Vec::new(),
                        })
                        .unwrap();
                    map = restored;
                    model = at_checkpoint.clone();
                    // The chain starts again with a full checkpoint.
                    blobs.clear();
                    names.clear();
                }
            }
            assert_eq!(map.len(), model.len(), "after {op:?}");
        }
        assert_eq!(contents(&mut map), model);
        assert_eq!(map.len(), model.len());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn memory_backend_matches_the_model(ops in proptest::collection::vec(op(), 1..400)) {
            run_against_model(None, &ops);
        }

        #[test]
        fn memory_backend_with_incremental_checkpoints_matches_the_model(
            ops in proptest::collection::vec(op(), 1..400),
        ) {
            run_against_model(Some(StateConfig::memory().incremental(true).full_every(4)), &ops);
        }

        #[cfg(feature = "lsm")]
        #[test]
        fn lsm_backend_with_a_tiny_cache_matches_the_model(
            ops in proptest::collection::vec(op(), 1..400),
        ) {
            run_against_model(Some(StateConfig::lsm(16 << 10)), &ops);
        }

        #[cfg(feature = "lsm")]
        #[test]
        fn lsm_backend_with_incremental_checkpoints_matches_the_model(
            ops in proptest::collection::vec(op(), 1..400),
        ) {
            run_against_model(Some(StateConfig::lsm(16 << 10).incremental(true).full_every(3)), &ops);
        }
    }

    #[test]
    fn a_delta_holds_only_what_changed() {
        let config = StateConfig::memory().incremental(true);
        let ctx = context(Some(config));
        let mut map: KeyedMap<String, (i64, u32)> = KeyedMap::open_incremental(&ctx).unwrap();
        for k in 0..1000 {
            *map.entry_or_insert_with(format!("key-{k}"), |_| (0, 0))
                .unwrap() = (k, 1);
        }
        let mut sizes = Vec::new();
        for id in 1..=2 {
            let mut ctx = context(None);
            ctx.snapshot_target = Some(SnapshotTarget {
                id,
                name: format!("chk-{id:06}"),
                completed: id - 1,
            });
            let mut snap = StateSnapshot::default();
            map.snapshot(&ctx, &mut snap).unwrap();
            sizes.push(snap.size());
            // Ten keys change, one goes.
            for k in 0..10 {
                map.entry_or_insert_with(format!("key-{k}"), |_| (0, 0))
                    .unwrap()
                    .0 += 1;
            }
            map.remove(&"key-999".to_string()).unwrap();
        }
        assert!(
            sizes[1] * 50 < sizes[0],
            "delta {} vs full {}",
            sizes[1],
            sizes[0]
        );
    }

    #[cfg(feature = "lsm")]
    #[test]
    fn a_tiny_budget_evicts_to_the_tree_and_reads_back() {
        let ctx = context(Some(StateConfig::lsm(32 << 10)));
        let mut map: KeyedMap<String, (i64, u32)> = KeyedMap::open_incremental(&ctx).unwrap();
        for round in 0..3 {
            for k in 0..5000 {
                map.entry_or_insert_with(format!("key-{k}"), |_| (0, 0))
                    .unwrap()
                    .0 += k + round;
            }
        }
        let tier = map.lsm.as_ref().unwrap();
        assert!(
            tier.cached <= tier.limit,
            "{} > {}",
            tier.cached,
            tier.limit
        );
        assert!(tier.limit < 1000, "the cache holds {}", tier.limit);
        assert_eq!(map.len(), 5000);
        let all = contents(&mut map);
        assert_eq!(all.len(), 5000);
        assert!(all.iter().all(|(k, v)| {
            let n: i64 = k[4..].parse().unwrap();
            v.0 == 3 * n + 3
        }));
        map.publish_metrics();
        assert!(ctx.counter("state_cache_evictions").get() > 4000);
        assert!(ctx.counter("state_cache_misses").get() >= 5000);
        assert!(ctx.gauge("state_disk_bytes").get() > 0);
    }
}

/// The incremental-checkpoint benchmark of docs/benchmarks.md ("State backends"): a keyed map
/// of `STREAMCORE_BENCH_KEYS` keys (default 10 M) on `STREAMCORE_BENCH_BACKEND` (`memory` or
/// `lsm`), checkpointed into a local directory (`STREAMCORE_BENCH_DIR`, default a temporary
/// one) with 1 % of the keys changed between checkpoints, full and incremental; then restored
/// from the last one. Run with `bench/state_backend.sh` or
/// `cargo test --release -p streamcore --features lsm --lib -- --ignored --nocapture
/// checkpoint_benchmark`.
#[cfg(test)]
mod bench {
    use super::*;
    use crate::checkpoint::storage::{CheckpointData, InstanceState};
    use crate::checkpoint::{CheckpointKind, CheckpointStorage, LocalCheckpointStorage};
    use crate::context::SnapshotTarget;
    use crate::state::StateConfig;
    use std::time::Instant;

    fn env(name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    #[test]
    #[ignore = "a benchmark: bench/state_backend.sh runs it"]
    fn checkpoint_benchmark() {
        let keys: u64 = env("STREAMCORE_BENCH_KEYS").map_or(10_000_000, |v| v.parse().unwrap());
        let backend = env("STREAMCORE_BENCH_BACKEND").unwrap_or_else(|| "memory".into());
        let root = env("STREAMCORE_BENCH_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let changed = keys / 100;
        for incremental in [false, true] {
            let mut config = match backend.as_str() {
                "lsm" => StateConfig::lsm(1 << 30),
                _ => StateConfig::memory(),
            }
            .incremental(incremental)
            .dir(&root);
            config.full_every = 10;
            let mut ctx = TaskContext::for_test("rolling");
            ctx.info.checkpointing = true;
            ctx.state_backend = Some(crate::state::StateBackend::open(&config, "bench").unwrap());
            let mut map: KeyedMap<u64, (u64, u64)> = KeyedMap::open_incremental(&ctx).unwrap();
            let started = Instant::now();
            for k in 0..keys {
                *map.entry_or_insert_with(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), |_| (0, 0))
                    .unwrap() = (1, k);
            }
            let fill = started.elapsed();
            let dir = root.join(format!("streamcore-ckpt-bench-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let storage = LocalCheckpointStorage::new(&dir).unwrap();
            let mut last = None;
            let mut lines = Vec::new();
            for id in 1..=4u64 {
                if id > 1 {
                    // 1 % of the keys change (a different 1 % each time).
                    for j in 0..changed {
                        let k = (id * changed + j) % keys;
                        map.entry_or_insert_with(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), |_| {
                            (0, 0)
                        })
                        .unwrap()
                        .0 += 1;
                    }
                }
                ctx.snapshot_target = Some(SnapshotTarget {
                    id,
                    name: format!("chk-{id:06}"),
                    completed: id - 1,
                });
                let started = Instant::now();
                let mut snapshot = StateSnapshot::default();
                map.snapshot(&ctx, &mut snapshot).unwrap();
                let encoded = started.elapsed();
                let kind = if snapshot.chain.is_empty() {
                    "full"
                } else {
                    "incremental"
                };
                let written = storage
                    .write(&CheckpointData {
                        job: "bench".into(),
                        id,
                        kind: CheckpointKind::Checkpoint,
                        key_groups: crate::state::DEFAULT_KEY_GROUPS,
                        nodes: vec![(
                            "rolling".into(),
                            vec![InstanceState {
                                subtask: 0,
                                snapshot,
                                committables: Vec::new(),
                            }],
                        )],
                    })
                    .unwrap();
                lines.push(format!(
                    "  checkpoint {id} ({kind}): {} bytes, snapshot {:.2} s, total with write {:.2} s",
                    written.bytes,
                    encoded.as_secs_f64(),
                    started.elapsed().as_secs_f64()
                ));
                last = Some(written.location);
            }
            ctx.snapshot_target = None;
            drop(map);
            let started = Instant::now();
            let loaded = storage.load(&last.unwrap()).unwrap();
            let load = started.elapsed();
            let restore = StateRestore {
                groups: loaded
                    .node("rolling")
                    .unwrap()
                    .iter()
                    .flat_map(|i| i.snapshot.groups.clone())
                    .collect(),
                operator: Vec::new(),
            };
            let mut restored: KeyedMap<u64, (u64, u64)> = KeyedMap::open_incremental(&ctx).unwrap();
            restored.restore(&restore).unwrap();
            let total = started.elapsed();
            assert_eq!(restored.len() as u64, keys);
            println!(
                "backend={backend} keys={keys} changed_per_checkpoint={changed} incremental={incremental} fill={:.1} s\n{}\n  restore of the last: load {:.2} s, total {:.2} s",
                fill.as_secs_f64(),
                lines.join("\n"),
                load.as_secs_f64(),
                total.as_secs_f64()
            );
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
