//! Keys and key groups, and [`KeyedMap`], per-key state split by key group.
//!
//! A key hashes to one of `K` key groups (default 128, fixed per job); key groups map to
//! parallel instances in contiguous ranges. State is stored per key group so that a checkpoint
//! can write it per key group and a restore can read back just the groups an instance owns.

mod backend;
mod handover;
mod keyed_map;
#[cfg(feature = "lsm")]
mod lsm;
mod plain;
mod primitives;
mod process;
mod timers;

pub use backend::{parse_bytes, StateBackend, StateBackendKind, StateConfig};
pub use handover::{KeyGroupChange, KeyGroupState};
pub use keyed_map::KeyedMap;
pub(crate) use keyed_map::{encode_into, write_array_len, DELTA_TAG};
pub use primitives::{AggregatingState, ListState, MapState, ValueState};
pub(crate) use process::KeyedProcessOperator;
pub use process::{KeyedContext, KeyedProcessFunction, TimeDomain};
pub(crate) use timers::TimerQueue;

use std::cell::Cell;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by [`free_state_with_the_process`].
static STATE_DIES_WITH_THE_PROCESS: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set on a task's thread when its task has run to the end of its input.
    static TASK_FINISHED: Cell<bool> = const { Cell::new(false) };
}

/// For a process that exits as soon as its job has run to the end (the `streamcore` binary
/// running a script or a benchmark): the keyed state of a task that ran to the end of its
/// input is not freed entry by entry — millions of rows and accumulators, each an allocation
/// to release — but left for the process's exit to return at once (what `clang` does with
/// `-disable-free`). Only plain data is left: sinks are flushed and closed as ever, and a
/// task that fails or is cancelled frees its state (a task that had finished when another
/// failed keeps it until the exit). Off by default; a long-lived process (a server, a shell,
/// tests) must leave it off.
///
/// ```
/// // In a binary's `main`, before the one job it runs:
/// streamcore::state::free_state_with_the_process(true);
/// # streamcore::state::free_state_with_the_process(false);
/// ```
pub fn free_state_with_the_process(yes: bool) {
    STATE_DIES_WITH_THE_PROCESS.store(yes, Ordering::Relaxed);
}

/// Marks the current thread's task as run to the end of its input.
pub(crate) fn task_finished() {
    TASK_FINISHED.set(true);
}

/// Whether state dropped now on this thread is left for the process's exit to free.
pub(crate) fn state_dies_with_the_process() -> bool {
    STATE_DIES_WITH_THE_PROCESS.load(Ordering::Relaxed) && TASK_FINISHED.get()
}

/// The default number of key groups: the most parallelism a keyed operator can ever have.
pub const DEFAULT_KEY_GROUPS: u32 = 128;

/// Seed of the key-group hash: fixed, so a key lands in the same group in every run.
const KEY_GROUP_SEED: u64 = 0x5eed_5eed_0000_0001;

/// The key group of `key` among `key_groups`.
#[inline]
pub fn key_group<K: Hash + ?Sized>(key: &K, key_groups: u32) -> u32 {
    plain::group_of(plain::key_hash(key), key_groups)
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
