//! [`PlainTable`]: the hash table of one key group on the memory backend without change
//! tracking, addressed by the key's key-group hash so that a key is hashed once per access —
//! for its key group and for its slot.

use super::KEY_GROUP_SEED;
use std::hash::{BuildHasher, Hash};

/// The key-group hash of `key`: its key group is [`group_of`] it (and [`super::key_group`]).
#[inline]
pub(crate) fn key_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    foldhash::fast::FixedState::with_seed(KEY_GROUP_SEED).hash_one(key)
}

/// The key group of a key with key-group hash `hash`, among `key_groups`: multiply-shift range
/// reduction of the hash's high half (uniform and cheaper than a modulo).
#[inline]
pub(crate) fn group_of(hash: u64, key_groups: u32) -> u32 {
    (((hash >> 32) * key_groups as u64) >> 32) as u32
}

/// The slot hash of a key with key-group hash `hash`. The keys of one key group share the
/// high bits the group was cut from: rotated, those bits index no bucket and tag no slot.
#[inline]
fn slot_hash(hash: u64) -> u64 {
    hash.rotate_left(32)
}

/// Keys and values of one key group.
pub(crate) struct PlainTable<K, V> {
    table: hashbrown::HashTable<(K, V)>,
}

impl<K, V> Default for PlainTable<K, V> {
    fn default() -> Self {
        PlainTable {
            table: hashbrown::HashTable::new(),
        }
    }
}

impl<K: Hash + Eq, V> PlainTable<K, V> {
    /// The entry of `key` (key-group hash `hash`), made with `init` if absent; whether it was.
    #[inline]
    pub(crate) fn entry_or_insert_with(
        &mut self,
        hash: u64,
        key: K,
        init: impl FnOnce(&K) -> V,
    ) -> (&mut (K, V), bool) {
        match self.table.entry(
            slot_hash(hash),
            |(k, _)| *k == key,
            |(k, _)| slot_hash(key_hash(k)),
        ) {
            hashbrown::hash_table::Entry::Occupied(o) => (o.into_mut(), false),
            hashbrown::hash_table::Entry::Vacant(v) => {
                let value = init(&key);
                (v.insert((key, value)).into_mut(), true)
            }
        }
    }

    /// Sets `key` to `value`; whether the key was new.
    pub(crate) fn insert(&mut self, key: K, value: V) -> bool {
        let hash = key_hash(&key);
        let mut value = Some(value);
        let (entry, new) = self.entry_or_insert_with(hash, key, |_| value.take().expect("once"));
        if let Some(v) = value {
            entry.1 = v;
        }
        new
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, hash: u64, key: &K) -> Option<&mut V> {
        self.table
            .find_mut(slot_hash(hash), |(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub(crate) fn get(&self, hash: u64, key: &K) -> Option<&V> {
        self.table
            .find(slot_hash(hash), |(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub(crate) fn remove(&mut self, hash: u64, key: &K) -> Option<V> {
        let entry = self
            .table
            .find_entry(slot_hash(hash), |(k, _)| k == key)
            .ok()?;
        Some(entry.remove().0 .1)
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.table.retain(|(k, v)| keep(k, v));
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.table.iter().map(|(k, v)| (k, v))
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.table.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}
