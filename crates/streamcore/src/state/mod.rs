//! Keys and key groups, and [`KeyedMap`], per-key state split by key group.
//!
//! A key hashes to one of `K` key groups (default 128, fixed per job); key groups map to
//! parallel instances in contiguous ranges. State is stored per key group so that a checkpoint
//! can write it per key group and a restore can read back just the groups an instance owns.

mod handover;
mod primitives;
mod process;
mod timers;

pub use handover::{KeyGroupChange, KeyGroupState};
pub use primitives::{AggregatingState, ListState, MapState, ValueState};
pub(crate) use process::KeyedProcessOperator;
pub use process::{KeyedContext, KeyedProcessFunction, TimeDomain};
pub(crate) use timers::TimerQueue;

use crate::checkpoint::StateSnapshot;
use crate::data::Key;
use crate::error::Result;
use std::hash::{BuildHasher, Hash};

/// The default number of key groups: the most parallelism a keyed operator can ever have.
pub const DEFAULT_KEY_GROUPS: u32 = 128;

/// Seed of the key-group hash: fixed, so a key lands in the same group in every run.
const KEY_GROUP_SEED: u64 = 0x5eed_5eed_0000_0001;

/// The key group of `key` among `key_groups`.
#[inline]
pub fn key_group<K: Hash + ?Sized>(key: &K, key_groups: u32) -> u32 {
    let h = foldhash::fast::FixedState::with_seed(KEY_GROUP_SEED).hash_one(key);
    // Multiply-shift range reduction: uniform and cheaper than a modulo.
    (((h >> 32) * key_groups as u64) >> 32) as u32
}

/// The parallel instance that owns `key_group` when `key_groups` are split over `parallelism`
/// instances in contiguous ranges (the same rule as Flink's).
#[inline]
pub fn owner_of(key_group: u32, key_groups: u32, parallelism: usize) -> usize {
    (key_group as usize * parallelism) / key_groups as usize
}

/// The key groups owned by instance `subtask`: the inverse of [`owner_of`].
pub fn key_groups_of(subtask: usize, key_groups: u32, parallelism: usize) -> std::ops::Range<u32> {
    let k = key_groups as usize;
    let start = (subtask * k).div_ceil(parallelism);
    let end = ((subtask + 1) * k).div_ceil(parallelism);
    start as u32..end as u32
}

/// Writes `entries` into `state`, one `Vec<(K, V)>` per key group (read them back with
/// `StateRestore::groups::<Vec<(K, V)>>()`).
pub(crate) fn snapshot_by_key_group<'a, K, V>(
    entries: impl Iterator<Item = (&'a K, &'a V)>,
    key_groups: u32,
    state: &mut StateSnapshot,
) -> Result<()>
where
    K: Hash + serde::Serialize + 'a,
    V: serde::Serialize + 'a,
{
    let mut groups: std::collections::BTreeMap<u32, Vec<(&K, &V)>> = Default::default();
    for (k, v) in entries {
        groups
            .entry(key_group(k, key_groups))
            .or_default()
            .push((k, v));
    }
    for (group, entries) in &groups {
        state.put_group(*group, entries)?;
    }
    Ok(())
}

/// Per-key state of one operator instance, split by key group.
pub struct KeyedMap<K, V> {
    key_groups: u32,
    first: u32,
    groups: Vec<hashbrown::HashMap<K, V, foldhash::fast::RandomState>>,
}

impl<K: Key, V> KeyedMap<K, V> {
    /// State for instance `subtask` of `parallelism`.
    pub fn new(subtask: usize, key_groups: u32, parallelism: usize) -> Self {
        let owned = key_groups_of(subtask, key_groups, parallelism);
        KeyedMap {
            key_groups,
            first: owned.start,
            groups: owned.map(|_| Default::default()).collect(),
        }
    }

    /// Writes every non-empty key group into `state` as a sequence of `(key, value)`.
    pub(crate) fn snapshot(&self, state: &mut StateSnapshot) -> Result<()>
    where
        K: serde::Serialize,
        V: serde::Serialize,
    {
        for (i, map) in self.groups.iter().enumerate() {
            if !map.is_empty() {
                state.put_group(
                    self.first + i as u32,
                    &crate::checkpoint::SeqOf::new(map.iter()),
                )?;
            }
        }
        Ok(())
    }

    /// Adds the restored key groups (each one this instance owns).
    pub(crate) fn restore(&mut self, state: &crate::checkpoint::StateRestore) -> Result<()>
    where
        K: serde::de::DeserializeOwned,
        V: serde::de::DeserializeOwned,
    {
        for group in state.groups::<Vec<(K, V)>>() {
            let (group, entries) = group?;
            let map = group
                .checked_sub(self.first)
                .and_then(|g| self.groups.get_mut(g as usize))
                .ok_or_else(|| {
                    crate::error::StreamError::Internal(format!(
                        "restored key group {group} is not owned by this instance"
                    ))
                })?;
            map.extend(entries);
        }
        Ok(())
    }

    /// Each owned key group with its map: `(key group, map)`.
    pub(crate) fn groups(
        &self,
    ) -> impl Iterator<Item = (u32, &hashbrown::HashMap<K, V, foldhash::fast::RandomState>)> {
        let first = self.first;
        self.groups
            .iter()
            .enumerate()
            .map(move |(i, m)| (first + i as u32, m))
    }

    /// The state of `key`, created with `init` if absent.
    #[inline]
    pub fn entry_or_insert_with(&mut self, key: K, init: impl FnOnce(&K) -> V) -> &mut V {
        let group = key_group(&key, self.key_groups);
        let local = group.checked_sub(self.first).map(|g| g as usize);
        let map = match local.and_then(|g| self.groups.get_mut(g)) {
            Some(m) => m,
            None => panic!("key group {group} is not owned by this instance (a routing bug)"),
        };
        map.entry(key).or_insert_with_key(init)
    }

    /// The stored key and its state, if present.
    #[inline]
    pub fn get_key_value_mut(&mut self, key: &K) -> Option<(&K, &mut V)> {
        let group = key_group(key, self.key_groups);
        let local = group.checked_sub(self.first)? as usize;
        self.groups.get_mut(local)?.get_key_value_mut(key)
    }

    /// Removes the state of `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let group = key_group(key, self.key_groups);
        let local = group.checked_sub(self.first)? as usize;
        self.groups.get_mut(local)?.remove(key)
    }

    /// Keeps only the entries for which `keep` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        for g in &mut self.groups {
            g.retain(|k, v| keep(k, v));
        }
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.len()).sum()
    }

    /// True when no key has state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key groups held, each with its keys and values: what a checkpoint writes.
    pub fn iter_groups(&self) -> impl Iterator<Item = (u32, impl Iterator<Item = (&K, &V)>)> {
        self.groups
            .iter()
            .enumerate()
            .map(|(i, m)| (self.first + i as u32, m.iter()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn ranges_partition_key_groups_and_match_owner_of(k in 1u32..300, p in 1usize..64) {
            prop_assume!(p <= k as usize);
            let mut next = 0;
            for s in 0..p {
                let r = key_groups_of(s, k, p);
                prop_assert_eq!(r.start, next);
                prop_assert!(!r.is_empty());
                for g in r.clone() {
                    prop_assert_eq!(owner_of(g, k, p), s);
                }
                next = r.end;
            }
            prop_assert_eq!(next, k);
        }

        #[test]
        fn key_group_in_range(key in any::<u64>(), k in 1u32..1000) {
            prop_assert!(key_group(&key, k) < k);
        }
    }

    #[test]
    fn keys_spread_over_groups() {
        let mut counts = [0u32; 128];
        for i in 0..128_000u64 {
            counts[key_group(&format!("user_{i}"), 128) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (700..1300).contains(&c)),
            "{counts:?}"
        );
    }
}
