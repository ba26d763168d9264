//! State primitives to compose a keyed process function's per-key state from: a value, a list,
//! a map, an aggregate. Each lives inside the key's state struct, which the runtime stores per
//! key group (so it can be enumerated, measured, expired and, later, snapshotted).
//!
//! ```
//! use streamcore::state::{ListState, MapState, ValueState};
//!
//! #[derive(Default, serde::Serialize, serde::Deserialize)]
//! struct PerUser {
//!     last_amount: ValueState<i64>,
//!     recent: ListState<i64>,
//!     per_merchant: MapState<String, u32>,
//! }
//! let mut s = PerUser::default();
//! s.last_amount.set(120);
//! s.recent.add(120);
//! *s.per_merchant.entry("shop".into()).or_default() += 1;
//! assert_eq!(s.last_amount.get(), Some(&120));
//! ```

use crate::window::AggregateFunction;
use serde::{Deserialize, Serialize};
use std::hash::Hash;

/// One value per key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValueState<V>(Option<V>);

impl<V> Default for ValueState<V> {
    fn default() -> Self {
        ValueState(None)
    }
}

impl<V> ValueState<V> {
    /// The value, if set.
    pub fn get(&self) -> Option<&V> {
        self.0.as_ref()
    }
    /// Sets the value, returning the previous one.
    pub fn set(&mut self, v: V) -> Option<V> {
        self.0.replace(v)
    }
    /// Removes the value.
    pub fn clear(&mut self) -> Option<V> {
        self.0.take()
    }
    /// The value, set to `init()` first if unset.
    pub fn get_or_insert_with(&mut self, init: impl FnOnce() -> V) -> &mut V {
        self.0.get_or_insert_with(init)
    }
}

/// A list of values per key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListState<V>(Vec<V>);

impl<V> Default for ListState<V> {
    fn default() -> Self {
        ListState(Vec::new())
    }
}

impl<V> ListState<V> {
    /// Appends a value.
    pub fn add(&mut self, v: V) {
        self.0.push(v)
    }
    /// The values, in insertion order.
    pub fn get(&self) -> &[V] {
        &self.0
    }
    /// Takes all values out, leaving the list empty.
    pub fn take(&mut self) -> Vec<V> {
        std::mem::take(&mut self.0)
    }
    /// Keeps the values for which `keep` holds.
    pub fn retain(&mut self, keep: impl FnMut(&V) -> bool) {
        self.0.retain(keep)
    }
    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A map per key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "MK: Eq + Hash + Serialize, MV: Serialize",
    deserialize = "MK: Eq + Hash + Deserialize<'de>, MV: Deserialize<'de>"
))]
pub struct MapState<MK, MV>(hashbrown::HashMap<MK, MV, foldhash::fast::RandomState>);

impl<MK, MV> Default for MapState<MK, MV> {
    fn default() -> Self {
        MapState(Default::default())
    }
}

impl<MK: Hash + Eq, MV> MapState<MK, MV> {
    /// The value of `k`.
    pub fn get(&self, k: &MK) -> Option<&MV> {
        self.0.get(k)
    }
    /// Sets `k`, returning the previous value.
    pub fn insert(&mut self, k: MK, v: MV) -> Option<MV> {
        self.0.insert(k, v)
    }
    /// Removes `k`.
    pub fn remove(&mut self, k: &MK) -> Option<MV> {
        self.0.remove(k)
    }
    /// The entry of `k`, for in-place updates.
    pub fn entry(
        &mut self,
        k: MK,
    ) -> hashbrown::hash_map::Entry<'_, MK, MV, foldhash::fast::RandomState> {
        self.0.entry(k)
    }
    /// All entries.
    pub fn iter(&self) -> impl Iterator<Item = (&MK, &MV)> {
        self.0.iter()
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The accumulator of an [`AggregateFunction`] per key: folds values in, reads the result.
///
/// ```
/// use streamcore::state::AggregatingState;
/// use streamcore::window::aggregates::Avg;
/// let mut s: AggregatingState<f64, Avg<fn(&f64) -> f64>> = AggregatingState::default();
/// let avg: Avg<fn(&f64) -> f64> = Avg::new(|x| *x);
/// s.add(&avg, &2.0);
/// s.add(&avg, &4.0);
/// assert_eq!(s.get(&avg), Some(3.0));
/// ```
#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "", deserialize = ""))]
pub struct AggregatingState<T, A: AggregateFunction<T>>(Option<A::Acc>);

impl<T, A: AggregateFunction<T>> Default for AggregatingState<T, A> {
    fn default() -> Self {
        AggregatingState(None)
    }
}

impl<T, A: AggregateFunction<T>> AggregatingState<T, A> {
    /// Folds `record` in with `f`.
    pub fn add(&mut self, f: &A, record: &T) {
        let acc = self.0.get_or_insert_with(|| f.create());
        f.add(acc, record);
    }
    /// The current result, if anything was added.
    pub fn get(&self, f: &A) -> Option<A::Out> {
        self.0.as_ref().map(|acc| f.result(acc))
    }
    /// Forgets everything added.
    pub fn clear(&mut self) {
        self.0 = None;
    }
}
