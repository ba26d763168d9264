//! The state backend contract: where keyed state lives ([`StateConfig`], chosen per job with
//! `JobConfig::state`), and the per-job handle the runtime opens once and hands to every
//! operator instance ([`StateBackend`]).
//!
//! * `memory` (the default): every key's state in hash maps on the heap, as fast as it gets;
//!   the job needs memory for all of its keys.
//! * `lsm` (cargo feature `lsm`): an embedded LSM tree (fjall) under [`StateConfig::dir`] holds
//!   the state, and a bounded write-back cache of hot keys (deserialized values, a dirty flag)
//!   sits in front of it, sized from [`StateConfig::memory_budget`]. Values are serialized only
//!   when evicted from the cache or at a checkpoint. docs/state.md has the whole story.
//!
//! Incremental checkpoints ([`StateConfig::incremental`]) work with either backend: a
//! checkpoint writes only the keys changed (and deleted) since the previous one.

use crate::error::{Result, StreamError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;

/// Which store holds keyed state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateBackendKind {
    /// Hash maps on the heap (the default).
    #[default]
    Memory,
    /// An embedded LSM tree on local disk with a bounded cache of hot keys in front
    /// (cargo feature `lsm`).
    Lsm,
}

impl std::str::FromStr for StateBackendKind {
    type Err = String;
    /// `memory` or `lsm` — or Flink's names for them: `hashmap` (and Flink 1's `filesystem`,
    /// `jobmanager`) keep state on the heap, `rocksdb` in an embedded LSM tree.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "memory" | "heap" | "hashmap" | "filesystem" | "jobmanager" => {
                Ok(StateBackendKind::Memory)
            }
            "lsm" | "fjall" | "rocksdb" | "embedded-rocksdb" => Ok(StateBackendKind::Lsm),
            other => Err(format!("unknown state backend `{other}` (memory, lsm)")),
        }
    }
}

impl std::fmt::Display for StateBackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StateBackendKind::Memory => "memory",
            StateBackendKind::Lsm => "lsm",
        })
    }
}

/// How a job keeps its keyed state (`state.backend`, `state.memory-budget`, `state.dir`,
/// `state.incremental`, `state.full-every`).
///
/// ```
/// use streamcore::state::{StateConfig, StateBackendKind, parse_bytes};
/// let c = StateConfig::lsm(parse_bytes("1gb").unwrap()).incremental(true);
/// assert_eq!(c.backend, StateBackendKind::Lsm);
/// assert_eq!(c.memory_budget, 1 << 30);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct StateConfig {
    /// Which store holds keyed state. Default `memory`.
    pub backend: StateBackendKind,
    /// Memory for keyed state of the whole job (every keyed operator instance together), in
    /// bytes: with `lsm`, the hot-key caches plus the LSM tree's block cache and write buffers.
    /// Ignored by `memory`. Default 1 GiB.
    pub memory_budget: u64,
    /// Where the LSM tree lives (a directory per run is made inside, and deleted when the job
    /// ends). Default: the system's temporary directory.
    pub dir: Option<PathBuf>,
    /// Checkpoints write only what changed since the previous checkpoint (keyed rolling
    /// aggregates and reduces). Default `false`.
    pub incremental: bool,
    /// With `incremental`: at most this many incremental checkpoints follow a full one (a
    /// full one is also written when the changes since the last full one reach its size), so
    /// a restore reads a bounded chain. Default 10.
    pub full_every: u32,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: StateBackendKind::Memory,
            memory_budget: 1 << 30,
            dir: None,
            incremental: false,
            full_every: 10,
        }
    }
}

impl StateConfig {
    /// The memory backend (the default).
    pub fn memory() -> Self {
        StateConfig::default()
    }

    /// The LSM backend with `memory_budget` bytes for the whole job.
    pub fn lsm(memory_budget: u64) -> Self {
        StateConfig {
            backend: StateBackendKind::Lsm,
            memory_budget,
            ..StateConfig::default()
        }
    }

    /// Sets the directory the LSM tree is made in.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Turns incremental checkpoints on or off.
    pub fn incremental(mut self, on: bool) -> Self {
        self.incremental = on;
        self
    }

    /// Sets the most incremental checkpoints between two full ones.
    pub fn full_every(mut self, n: u32) -> Self {
        self.full_every = n.max(1);
        self
    }

    /// Sets one option by its configuration key (`state.backend`, `state.memory-budget`,
    /// `state.dir`, `state.incremental`, `state.full-every`; the `state.` prefix is optional):
    /// what a SQL `SET 'state.backend' = 'lsm'` calls. Flink's keys for the same are taken
    /// too: `state.backend.type` (and its values `hashmap`, `rocksdb`),
    /// `state.backend.incremental`.
    ///
    /// ```
    /// use streamcore::state::{StateBackendKind, StateConfig};
    /// let mut c = StateConfig::default();
    /// c.set("state.backend", "lsm").unwrap();
    /// c.set("state.memory-budget", "512mb").unwrap();
    /// assert_eq!(c.memory_budget, 512 << 20);
    /// assert!(c.set("state.colour", "blue").is_err());
    /// // A Flink script's settings.
    /// let mut flink = StateConfig::default();
    /// flink.set("state.backend.type", "rocksdb").unwrap();
    /// flink.set("state.backend.incremental", "true").unwrap();
    /// assert_eq!((flink.backend, flink.incremental), (StateBackendKind::Lsm, true));
    /// ```
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let bad = |e: String| StreamError::Config(format!("`{key}` = `{value}`: {e}"));
        match key.trim().trim_start_matches("state.") {
            "backend" | "backend.type" => self.backend = value.parse().map_err(bad)?,
            "memory-budget" => self.memory_budget = parse_bytes(value).map_err(bad)?,
            "dir" => self.dir = Some(PathBuf::from(value)),
            "incremental" | "incremental-checkpoints" | "backend.incremental" => {
                self.incremental = match value.trim().to_ascii_lowercase().as_str() {
                    "true" | "on" | "yes" | "1" => true,
                    "false" | "off" | "no" | "0" => false,
                    _ => return Err(bad("expected true or false".into())),
                }
            }
            "full-every" => {
                self.full_every = value
                    .trim()
                    .parse::<u32>()
                    .map_err(|e| bad(e.to_string()))?
                    .max(1)
            }
            _ => {
                return Err(StreamError::Config(format!(
                    "unknown state option `{key}` (state.backend, state.memory-budget, state.dir, state.incremental, state.full-every)"
                )))
            }
        }
        Ok(())
    }
}

/// Parses a size like `1gb`, `512mb`, `64k`, `1.5GiB` or a bare number of bytes (units are
/// binary: `1kb` = 1024 bytes).
///
/// ```
/// use streamcore::state::parse_bytes;
/// assert_eq!(parse_bytes("1gb").unwrap(), 1 << 30);
/// assert_eq!(parse_bytes("1.5k").unwrap(), 1536);
/// assert_eq!(parse_bytes("4096").unwrap(), 4096);
/// assert!(parse_bytes("lots").is_err());
/// ```
pub fn parse_bytes(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a size (like 512mb, 1gb)"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (b, kb, mb, gb, tb)"
            ))
        }
    };
    Ok((value * scale as f64) as u64)
}

/// The state backend of one run of a job, shared by its operator instances: the LSM tree
/// (when the backend is `lsm`) and the accounting of the memory budget.
#[cfg_attr(not(feature = "lsm"), allow(dead_code))]
pub struct StateBackend {
    config: StateConfig,
    /// Bytes the hot-key caches of all instances may hold together.
    cache_budget: u64,
    /// Keyed maps opened on this backend (they share the cache budget equally).
    maps: AtomicU32,
    /// Next namespace: each keyed map's prefix in the LSM tree.
    next_namespace: AtomicU32,
    /// Estimated bytes held by every cache together (published by the maps now and then).
    cached_bytes: AtomicI64,
    #[cfg(feature = "lsm")]
    pub(crate) lsm: Option<super::lsm::LsmStore>,
}

impl std::fmt::Debug for StateBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateBackend")
            .field("config", &self.config)
            .field("cache_budget", &self.cache_budget)
            .finish()
    }
}

impl StateBackend {
    /// Opens the backend `config` describes for a run of job `job` (for `lsm`: makes the LSM
    /// tree's directory, deleted again when the backend is dropped).
    pub fn open(config: &StateConfig, job: &str) -> Result<Arc<Self>> {
        let _ = job;
        #[cfg(feature = "lsm")]
        let lsm = match config.backend {
            StateBackendKind::Memory => None,
            StateBackendKind::Lsm => Some(super::lsm::LsmStore::open(config, job)?),
        };
        #[cfg(not(feature = "lsm"))]
        if config.backend == StateBackendKind::Lsm {
            return Err(StreamError::Config(
                "state backend `lsm` needs streamcore built with the `lsm` feature".into(),
            ));
        }
        // The LSM tree's own block cache and write buffers take a quarter of the budget
        // (see LsmStore::open); the hot-key caches the rest.
        let cache_budget = match config.backend {
            StateBackendKind::Memory => u64::MAX,
            StateBackendKind::Lsm => config.memory_budget - config.memory_budget / 4,
        };
        Ok(Arc::new(StateBackend {
            config: config.clone(),
            cache_budget,
            maps: AtomicU32::new(0),
            next_namespace: AtomicU32::new(1),
            cached_bytes: AtomicI64::new(0),
            #[cfg(feature = "lsm")]
            lsm,
        }))
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &StateConfig {
        &self.config
    }

    /// Which store holds keyed state.
    pub fn kind(&self) -> StateBackendKind {
        self.config.backend
    }

    /// A new keyed map's namespace (its prefix in the LSM tree), and registers it for a share
    /// of the cache budget.
    #[cfg_attr(not(feature = "lsm"), allow(dead_code))]
    pub(crate) fn register_map(&self) -> u32 {
        self.maps.fetch_add(1, Ordering::Relaxed);
        self.next_namespace.fetch_add(1, Ordering::Relaxed)
    }

    /// A keyed map closed: its share goes back to the others.
    #[cfg_attr(not(feature = "lsm"), allow(dead_code))]
    pub(crate) fn unregister_map(&self, cached_bytes: i64) {
        self.maps.fetch_sub(1, Ordering::Relaxed);
        self.cached_bytes.fetch_sub(cached_bytes, Ordering::Relaxed);
    }

    /// The bytes one keyed map's cache may hold now: an equal share of the cache budget.
    #[cfg_attr(not(feature = "lsm"), allow(dead_code))]
    pub(crate) fn cache_share(&self) -> u64 {
        self.cache_budget / u64::from(self.maps.load(Ordering::Relaxed).max(1))
    }

    /// Adds `delta` bytes to the estimate of all caches together.
    #[cfg_attr(not(feature = "lsm"), allow(dead_code))]
    pub(crate) fn add_cached_bytes(&self, delta: i64) {
        self.cached_bytes.fetch_add(delta, Ordering::Relaxed);
    }

    /// Estimated bytes held by every cache together.
    pub fn cached_bytes(&self) -> u64 {
        self.cached_bytes.load(Ordering::Relaxed).max(0) as u64
    }

    /// Bytes the LSM tree takes on disk (0 for the memory backend).
    pub fn disk_bytes(&self) -> u64 {
        #[cfg(feature = "lsm")]
        if let Some(lsm) = &self.lsm {
            return lsm.disk_bytes();
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_reject() {
        let mut c = StateConfig::default();
        c.set("incremental", "on").unwrap();
        c.set("state.full-every", "0").unwrap();
        assert!(c.incremental);
        assert_eq!(c.full_every, 1);
        let e = c.set("state.backend", "rocks").unwrap_err().to_string();
        assert!(e.contains("unknown state backend"), "{e}");
        assert_eq!(parse_bytes("2 MB").unwrap(), 2 << 20);
    }

    #[cfg(not(feature = "lsm"))]
    #[test]
    fn lsm_without_the_feature_is_refused() {
        let e = StateBackend::open(&StateConfig::lsm(1 << 20), "j").unwrap_err();
        assert!(e.to_string().contains("`lsm` feature"), "{e}");
    }
}
