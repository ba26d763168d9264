//! The bounds every record and key type meets.

use std::hash::Hash;

/// A record that can flow through a stream: cloneable (for fan-out), sendable between worker
/// threads, and owning its data. Implemented for every such type.
pub trait Data: Clone + Send + 'static {}
impl<T: Clone + Send + 'static> Data for T {}

/// A key of a keyed stream: a [`Data`] that can be hashed (to pick a key group) and compared.
pub trait Key: Data + Hash + Eq {}
impl<K: Data + Hash + Eq> Key for K {}

/// State that goes into checkpoints: serializable (with serde) and owning its data.
/// Implemented for every such type; derive `Serialize` and `Deserialize` for your own.
pub trait StateData: serde::Serialize + serde::de::DeserializeOwned + Send + 'static {}
impl<T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static> StateData for T {}

/// The key of keyed state: a [`Key`] that is also [`StateData`], so that state can be
/// checkpointed per key group.
pub trait StateKey: Key + StateData {}
impl<K: Key + StateData> StateKey for K {}
