//! Moving key groups into and out of a **running** job: what a job run by several processes
//! (one Kafka consumer group, docs/kafka.md) does when the group moves input partitions, and
//! with them the keys they carry, from one process to another.
//!
//! A source (the only part that learns of a rebalance) builds a [`KeyGroupChange`] and hands
//! it to [`crate::TaskContext::change_key_groups`]. The runtime sends it down the source's
//! chain ahead of the records that follow, across exchanges (to every downstream instance), and
//! each stateful operator instance applies it between two batches: it snapshots its state,
//! drops the released key groups, replaces the adopted ones with the given state, and
//! rebuilds itself from that (a fresh copy of the operator, restored as after a checkpoint).
//! Every operator that supports checkpoints supports this without code of its own; the cost
//! is one snapshot and one restore of the instance's state per change (rebalances are rare).
//!
//! The state of adopted key groups comes from a checkpoint ([`KeyGroupState::from_checkpoint`]),
//! usually another process's, or from a file one process wrote for the next owner
//! ([`KeyGroupState::write`], [`KeyGroupState::read`]).

use crate::checkpoint::{LoadedCheckpoint, StateRestore, StateSnapshot};
use crate::error::{Result, StreamError};
use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The keyed state of some key groups, per node (by the node's stable name), as a checkpoint
/// stores it: `(key group, encoded state)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyGroupState {
    nodes: BTreeMap<String, Vec<(u32, Vec<u8>)>>,
}

/// The magic first bytes of a key-group state file, with the format version.
const FILE_MAGIC: &[u8; 8] = b"SCKGS\x00\x00\x01";

impl KeyGroupState {
    /// The state of the key groups in `groups` from every node of `checkpoint`.
    pub fn from_checkpoint(checkpoint: &LoadedCheckpoint, groups: &[Range<u32>]) -> Self {
        let mut nodes = BTreeMap::new();
        for (name, instances) in &checkpoint.nodes {
            let picked: Vec<(u32, Vec<u8>)> = instances
                .iter()
                .flat_map(|i| &i.snapshot.groups)
                .filter(|(g, _)| groups.iter().any(|r| r.contains(g)))
                .cloned()
                .collect();
            if !picked.is_empty() {
                nodes.insert(name.clone(), picked);
            }
        }
        KeyGroupState { nodes }
    }

    /// The state of node `name`: `(key group, encoded state)`.
    pub fn node(&self, name: &str) -> &[(u32, Vec<u8>)] {
        self.nodes.get(name).map_or(&[], Vec::as_slice)
    }

    /// Number of `(node, key group)` entries.
    pub fn len(&self) -> usize {
        self.nodes.values().map(Vec::len).sum()
    }

    /// True when no node has state for these key groups.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Bytes of encoded state.
    pub fn bytes(&self) -> usize {
        self.nodes.values().flatten().map(|(_, b)| b.len()).sum()
    }

    /// The state as bytes (the key-group state file format: a magic and version, then per
    /// node its name and `(key group, state)` entries, lengths little-endian).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.bytes() + 16 * self.len());
        out.extend_from_slice(FILE_MAGIC);
        out.extend_from_slice(&(self.nodes.len() as u32).to_le_bytes());
        for (name, groups) in &self.nodes {
            write_bytes(&mut out, name.as_bytes());
            out.extend_from_slice(&(groups.len() as u32).to_le_bytes());
            for (g, bytes) in groups {
                out.extend_from_slice(&g.to_le_bytes());
                write_bytes(&mut out, bytes);
            }
        }
        out
    }

    /// Reads what [`KeyGroupState::to_bytes`] wrote; `what` names the source in errors.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self> {
        let bad =
            |why: &str| StreamError::Checkpoint(format!("reading key-group state {what}: {why}"));
        let mut input = bytes;
        let magic = take(&mut input, FILE_MAGIC.len()).map_err(bad)?;
        if magic != FILE_MAGIC {
            return Err(bad("not a key-group state file (or another version)"));
        }
        let mut nodes = BTreeMap::new();
        let n = read_u32(&mut input).map_err(bad)?;
        for _ in 0..n {
            let name = String::from_utf8(read_bytes(&mut input).map_err(bad)?.to_vec())
                .map_err(|_| bad("a node name is not UTF-8"))?;
            let count = read_u32(&mut input).map_err(bad)?;
            let mut groups = Vec::with_capacity(count.min(1 << 16) as usize);
            for _ in 0..count {
                let g = read_u32(&mut input).map_err(bad)?;
                groups.push((g, read_bytes(&mut input).map_err(bad)?.to_vec()));
            }
            nodes.insert(name, groups);
        }
        if !input.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(KeyGroupState { nodes })
    }

    /// Writes the state to `path` atomically (a temporary file renamed into place).
    pub fn write(&self, path: &Path) -> Result<()> {
        let io = |e: std::io::Error| {
            StreamError::Checkpoint(format!("writing key-group state {}: {e}", path.display()))
        };
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&self.to_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads a state written by [`KeyGroupState::write`].
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| {
            StreamError::Checkpoint(format!("reading key-group state {}: {e}", path.display()))
        })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// The next `n` bytes of `input`.
fn take<'a>(input: &mut &'a [u8], n: usize) -> std::result::Result<&'a [u8], &'static str> {
    if input.len() < n {
        return Err("cut short");
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn read_u32(input: &mut &[u8]) -> std::result::Result<u32, &'static str> {
    let b = take(input, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_bytes<'a>(input: &mut &'a [u8]) -> std::result::Result<&'a [u8], &'static str> {
    let b = take(input, 8)?;
    let len = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    take(
        input,
        usize::try_from(len).map_err(|_| "length out of range")?,
    )
}

static NEXT_CHANGE: AtomicU64 = AtomicU64::new(1);

/// Key groups a running job gives up (their state is dropped) or takes over (their state is
/// replaced by the given one). See the module documentation.
///
/// ```
/// use streamcore::state::{KeyGroupChange, KeyGroupState};
/// // Give up key groups 0..32; take over 32..64 with no state (their keys start empty).
/// let change = KeyGroupChange::release([0..32, 100..101])
///     .and_adopt([32..64], KeyGroupState::default());
/// assert!(change.covers(10) && change.covers(40) && !change.covers(64));
/// ```
pub struct KeyGroupChange {
    pub(crate) id: u64,
    release: Vec<Range<u32>>,
    adopt: Vec<Range<u32>>,
    state: KeyGroupState,
}

impl KeyGroupChange {
    /// Drops the state of the key groups in `groups` (they moved to another process).
    pub fn release(groups: impl IntoIterator<Item = Range<u32>>) -> Self {
        KeyGroupChange {
            id: NEXT_CHANGE.fetch_add(1, Ordering::Relaxed),
            release: groups.into_iter().collect(),
            adopt: Vec::new(),
            state: KeyGroupState::default(),
        }
    }

    /// Replaces the state of the key groups in `groups` with `state` (groups it has nothing
    /// for start empty).
    pub fn adopt(groups: impl IntoIterator<Item = Range<u32>>, state: KeyGroupState) -> Self {
        KeyGroupChange::release([]).and_adopt(groups, state)
    }

    /// Also adopts `groups` with `state` (merged with what this change adopts already).
    pub fn and_adopt(
        mut self,
        groups: impl IntoIterator<Item = Range<u32>>,
        state: KeyGroupState,
    ) -> Self {
        self.adopt.extend(groups);
        for (node, groups) in state.nodes {
            self.state.nodes.entry(node).or_default().extend(groups);
        }
        self
    }

    /// True when the change releases and adopts nothing.
    pub fn is_empty(&self) -> bool {
        self.release.is_empty() && self.adopt.is_empty()
    }

    /// Whether the change releases or adopts any key group in `owned`.
    pub fn touches(&self, owned: &Range<u32>) -> bool {
        self.release
            .iter()
            .chain(&self.adopt)
            .any(|r| r.start.max(owned.start) < r.end.min(owned.end))
    }

    /// Whether key group `g` is released or adopted by this change.
    pub fn covers(&self, g: u32) -> bool {
        self.release
            .iter()
            .chain(&self.adopt)
            .any(|r| r.contains(&g))
    }

    /// The state of the adopted key groups.
    pub fn state(&self) -> &KeyGroupState {
        &self.state
    }

    /// What operator instance `node` (owning key groups `owned`) restores from after this
    /// change, given its `current` state: its key groups this change does not cover, the
    /// adopted state of the groups it owns, and its own operator state.
    pub(crate) fn restore_for(
        &self,
        node: &str,
        owned: &Range<u32>,
        current: StateSnapshot,
    ) -> StateRestore {
        let mut groups: Vec<(u32, Vec<u8>)> = current
            .groups
            .into_iter()
            .filter(|(g, _)| !self.covers(*g))
            .collect();
        groups.extend(
            self.state
                .node(node)
                .iter()
                .filter(|(g, _)| owned.contains(g) && self.adopt.iter().any(|r| r.contains(g)))
                .cloned(),
        );
        StateRestore {
            groups,
            operator: current.operator.into_iter().collect(),
        }
    }
}

impl std::fmt::Debug for KeyGroupChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyGroupChange")
            .field("id", &self.id)
            .field("release", &self.release)
            .field("adopt", &self.adopt)
            .field("state_entries", &self.state.len())
            .finish()
    }
}

impl PartialEq for KeyGroupChange {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(entries: &[(&str, u32, &[u8])]) -> KeyGroupState {
        let mut s = KeyGroupState::default();
        for (node, g, b) in entries {
            s.nodes
                .entry(node.to_string())
                .or_default()
                .push((*g, b.to_vec()));
        }
        s
    }

    #[test]
    fn state_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p3.state");
        let s = state(&[
            ("count", 3, b"abc"),
            ("count", 9, b""),
            ("window", 3, &[0, 255]),
        ]);
        s.write(&path).unwrap();
        assert_eq!(KeyGroupState::read(&path).unwrap(), s);
        assert_eq!(s.len(), 3);
        assert_eq!(s.bytes(), 5);
    }

    #[test]
    fn state_bytes_round_trip_and_damage_is_an_error() {
        let s = state(&[("count", 3, b"abc"), ("window", 7, &[0, 255])]);
        let bytes = s.to_bytes();
        assert_eq!(KeyGroupState::from_bytes(&bytes, "x").unwrap(), s);
        for cut in [0, 5, bytes.len() - 1] {
            let err = KeyGroupState::from_bytes(&bytes[..cut], "s3://b/h/p.state")
                .unwrap_err()
                .to_string();
            assert!(err.contains("s3://b/h/p.state"), "{err}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(KeyGroupState::from_bytes(&longer, "x").is_err());
    }

    #[test]
    fn a_truncated_state_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.state");
        state(&[("count", 3, b"abcdef")]).write(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        let err = KeyGroupState::read(&path).unwrap_err().to_string();
        assert!(err.contains("p.state"), "{err}");
    }

    #[test]
    fn restore_keeps_uncovered_groups_and_takes_adopted_ones() {
        let current = StateSnapshot {
            groups: vec![
                (1, b"one".to_vec()),
                (2, b"two".to_vec()),
                (5, b"five".to_vec()),
            ],
            operator: Some(b"op".to_vec()),
            chain: Vec::new(),
        };
        // Release 1, adopt 5..7 (5 replaced, 6 new, 7 owned by another instance).
        let change = KeyGroupChange::release(std::iter::once(1..2)).and_adopt(
            std::iter::once(5..8),
            state(&[
                ("n", 5, b"new5"),
                ("n", 6, b"new6"),
                ("n", 7, b"x"),
                ("m", 6, b"m"),
            ]),
        );
        let r = change.restore_for("n", &(0..7), current);
        assert_eq!(
            r.groups,
            vec![
                (2, b"two".to_vec()),
                (5, b"new5".to_vec()),
                (6, b"new6".to_vec())
            ]
        );
        assert_eq!(r.operator, vec![b"op".to_vec()]);
    }

    use proptest::prelude::*;

    fn range() -> impl Strategy<Value = Range<u32>> {
        (0u32..32, 0u32..8).prop_map(|(start, len)| start..start + len)
    }

    proptest! {
        /// Against a model: after a change, an instance owning `owned` holds exactly
        /// (its groups the change does not cover) + (adopted groups it owns, with their new
        /// state); `touches` says whether anything it owns changes.
        #[test]
        fn restore_for_matches_a_model(
            held in proptest::collection::btree_set(0u32..32, 0..16),
            release in proptest::collection::vec(range(), 0..3),
            adopt in proptest::collection::vec(range(), 0..3),
            adopted_state in proptest::collection::btree_set(0u32..32, 0..16),
            owned in range(),
        ) {
            let held: Vec<u32> = held.into_iter().filter(|g| owned.contains(g)).collect();
            let current = StateSnapshot {
                groups: held.iter().map(|g| (*g, vec![1, *g as u8])).collect(),
                operator: None,
                chain: Vec::new(),
            };
            let mut state = KeyGroupState::default();
            state.nodes.insert(
                "n".into(),
                adopted_state.iter().map(|g| (*g, vec![2, *g as u8])).collect(),
            );
            let change =
                KeyGroupChange::release(release.clone()).and_adopt(adopt.clone(), state);
            let covered = |g: u32| release.iter().chain(&adopt).any(|r| r.contains(&g));
            let adopted = |g: u32| adopt.iter().any(|r| r.contains(&g));
            let mut want: Vec<(u32, Vec<u8>)> = held
                .iter()
                .filter(|g| !covered(**g))
                .map(|g| (*g, vec![1, *g as u8]))
                .chain(
                    adopted_state
                        .iter()
                        .filter(|g| owned.contains(g) && adopted(**g))
                        .map(|g| (*g, vec![2, *g as u8])),
                )
                .collect();
            want.sort();
            let mut got = change.restore_for("n", &owned, current).groups;
            got.sort();
            prop_assert_eq!(got, want);
            prop_assert_eq!(change.touches(&owned), owned.clone().any(covered));
        }
    }
}
