//! Where checkpoints live: the [`CheckpointStorage`] trait and [`LocalCheckpointStorage`], a
//! directory on the local file system.
//!
//! Layout (format version 1, documented in docs/checkpoints.md):
//!
//! ```text
//! DIR/chk-000007/                 one checkpoint (savepoints: sp-000007/)
//!     n0003-s000.state            state of node 3, subtask 0: the blobs, concatenated
//!     _manifest.json              written last: the checkpoint exists only once it does
//! ```
//!
//! The manifest indexes every blob (key group, offset, length) and holds each file's length and
//! CRC-32, so a torn or corrupted checkpoint is detected when loaded and skipped in favour of
//! the previous complete one.
//!
//! A checkpoint is named by a [`CheckpointLocation`]: a directory for local storage, an
//! object-store URL (`s3://bucket/job/chk-000007`) for [`super::blob::BlobCheckpointStorage`].

use super::state::StateSnapshot;
use crate::error::{Result, StreamError};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Version of the on-disk format written by this build.
pub const FORMAT_VERSION: u32 = 1;

/// The manifest's file name inside a checkpoint directory.
pub const MANIFEST: &str = "_manifest.json";

/// Why a checkpoint was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckpointKind {
    /// Periodic, for recovery; old ones are deleted (retention).
    Checkpoint,
    /// Taken on demand, kept until the user deletes it.
    Savepoint,
    /// Taken when the job finished: restoring it only re-commits the sinks' last output.
    Final,
}

/// The state of one parallel instance of one node, as written into a checkpoint.
#[derive(Debug, Default)]
pub struct InstanceState {
    /// The instance's index in the run that wrote it.
    pub subtask: usize,
    /// Keyed and operator state.
    pub snapshot: StateSnapshot,
    /// A sink's pre-committed transactions, committed once the checkpoint is complete.
    pub committables: Vec<Vec<u8>>,
}

/// A complete checkpoint in memory: what [`CheckpointStorage::write`] persists.
#[derive(Debug)]
pub struct CheckpointData {
    /// The job's name.
    pub job: String,
    /// Checkpoint id, increasing.
    pub id: u64,
    /// Why it was taken.
    pub kind: CheckpointKind,
    /// The job's number of key groups.
    pub key_groups: u32,
    /// Per node (by its stable name), every instance's state.
    pub nodes: Vec<(String, Vec<InstanceState>)>,
}

/// The manifest of a checkpoint: an index of its files, written last.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// On-disk format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// The job's name.
    pub job: String,
    /// Checkpoint id.
    pub checkpoint_id: u64,
    /// Why it was taken.
    pub kind: CheckpointKind,
    /// Wall-clock time it completed, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// Number of key groups of the job that wrote it (restoring needs the same number).
    pub key_groups: u32,
    /// Per node.
    pub nodes: Vec<NodeManifest>,
}

/// One node's entry in a [`Manifest`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeManifest {
    /// The node's stable name.
    pub node: String,
    /// One entry per parallel instance of the run that wrote it.
    pub instances: Vec<InstanceManifest>,
}

/// One instance's state file and the blobs inside it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstanceManifest {
    /// The instance's index.
    pub subtask: usize,
    /// File name inside the checkpoint directory (absent when the instance had no state).
    pub file: Option<String>,
    /// The file's length in bytes.
    pub bytes: u64,
    /// CRC-32 of the whole file.
    pub crc32: u32,
    /// Keyed state: `(key group, offset, length)`.
    pub groups: Vec<(u32, u64, u64)>,
    /// Operator state: `(offset, length)`.
    pub operator: Option<(u64, u64)>,
    /// Sink committables: `(offset, length)` each.
    pub committables: Vec<(u64, u64)>,
    /// Incremental checkpoints: the earlier checkpoints of the same instance this one builds
    /// on (names, oldest first: a full one, then incremental ones); its delta blobs apply on
    /// top of theirs. Retention keeps them while this checkpoint is kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
}

impl Manifest {
    /// The checkpoints this one builds on (incremental checkpoints), by name.
    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.nodes
            .iter()
            .flat_map(|n| &n.instances)
            .flat_map(|i| &i.chain)
            .map(String::as_str)
    }
}

/// Completes an incremental checkpoint just loaded: each instance whose state builds on an
/// earlier checkpoint gets that checkpoint's blobs (loaded with `load`, itself completed the
/// same way) before its own, so a key group's blobs read base, then deltas, in order.
pub(crate) fn resolve_chains(
    cp: &mut LoadedCheckpoint,
    load: impl Fn(&CheckpointLocation) -> Result<LoadedCheckpoint>,
) -> Result<()> {
    let previous: std::collections::BTreeSet<String> = cp
        .nodes
        .iter()
        .flat_map(|(_, is)| is.iter().filter_map(|i| i.snapshot.chain.last().cloned()))
        .collect();
    if previous.is_empty() {
        return Ok(());
    }
    let parent = cp.location.parent();
    let mut loaded = std::collections::BTreeMap::new();
    for name in previous {
        let at = CheckpointLocation::new(format!("{}/{name}", parent.as_str()));
        let prev = load(&at).map_err(|e| {
            corrupt(
                cp.location.as_path(),
                format!("incremental on {name}, which cannot be used ({e}); skipped"),
            )
        })?;
        loaded.insert(name, prev);
    }
    for (node, instances) in &mut cp.nodes {
        for inst in instances.iter_mut() {
            let Some(last) = inst.snapshot.chain.last() else {
                continue;
            };
            let base = loaded[last]
                .node(node)
                .and_then(|is| is.iter().find(|i| i.subtask == inst.subtask))
                .ok_or_else(|| {
                    corrupt(
                        cp.location.as_path(),
                        format!(
                            "{node} subtask {} builds on {last}, which lacks it",
                            inst.subtask
                        ),
                    )
                })?;
            let mut groups = base.snapshot.groups.clone();
            groups.append(&mut inst.snapshot.groups);
            inst.snapshot.groups = groups;
        }
    }
    Ok(())
}

/// Where a checkpoint lives: a directory of the local file system, or the URL of a checkpoint's
/// prefix in an object store (`s3://bucket/job/chk-000007`). Printed as is in messages: it
/// never holds credentials.
///
/// ```
/// use streamcore::checkpoint::CheckpointLocation;
/// let l = CheckpointLocation::new("s3://bucket/job/chk-000007");
/// assert_eq!(l.name(), "chk-000007");
/// assert_eq!(l.parent().as_str(), "s3://bucket/job");
/// let local = CheckpointLocation::from(std::path::Path::new("/tmp/ckpt/sp-000002"));
/// assert_eq!(local.as_path(), std::path::Path::new("/tmp/ckpt/sp-000002"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CheckpointLocation(String);

impl CheckpointLocation {
    /// A location from its text (a path or a URL).
    pub fn new(location: impl Into<String>) -> Self {
        CheckpointLocation(location.into().trim_end_matches('/').to_string())
    }

    /// The location's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The location's text, for messages (as `Path::display`, which callers used before
    /// locations could be URLs).
    pub fn display(&self) -> &str {
        &self.0
    }

    /// The location as a local path (meaningful for local storage only).
    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }

    /// The last segment: the checkpoint's name (`chk-000007`, `sp-000002`).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The location of the checkpoints' root: everything before the last segment.
    pub fn parent(&self) -> CheckpointLocation {
        match self.0.rfind('/') {
            Some(at) => CheckpointLocation(self.0[..at].to_string()),
            None => CheckpointLocation(String::new()),
        }
    }
}

impl std::fmt::Display for CheckpointLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&Path> for CheckpointLocation {
    fn from(path: &Path) -> Self {
        CheckpointLocation::new(path.to_string_lossy().into_owned())
    }
}

impl From<PathBuf> for CheckpointLocation {
    fn from(path: PathBuf) -> Self {
        CheckpointLocation::from(path.as_path())
    }
}

impl From<&PathBuf> for CheckpointLocation {
    fn from(path: &PathBuf) -> Self {
        CheckpointLocation::from(path.as_path())
    }
}

impl From<&str> for CheckpointLocation {
    fn from(text: &str) -> Self {
        CheckpointLocation::new(text)
    }
}

impl From<String> for CheckpointLocation {
    fn from(text: String) -> Self {
        CheckpointLocation::new(text)
    }
}

/// A checkpoint read back from storage, verified.
#[derive(Debug)]
pub struct LoadedCheckpoint {
    /// Where it was read from.
    pub location: CheckpointLocation,
    /// Its manifest.
    pub manifest: Manifest,
    /// Per node name, every instance's state.
    pub nodes: Vec<(String, Vec<InstanceState>)>,
    /// Newer checkpoints that were skipped, with the reason (incomplete or corrupted).
    pub skipped: Vec<String>,
}

impl LoadedCheckpoint {
    /// The instances of node `name`, if the checkpoint has it.
    pub fn node(&self, name: &str) -> Option<&[InstanceState]> {
        self.nodes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// Where a checkpoint was written and how big it is.
#[derive(Clone, Debug)]
pub struct WrittenCheckpoint {
    /// Its location (a directory, for local storage).
    pub location: CheckpointLocation,
    /// Total bytes of state written.
    pub bytes: u64,
}

/// A place to keep checkpoints. Writing must be atomic: a checkpoint is visible to
/// [`CheckpointStorage::load_latest`] only once completely written.
pub trait CheckpointStorage: Send + Sync + 'static {
    /// An id larger than any checkpoint present, complete or not.
    fn next_id(&self) -> Result<u64>;
    /// Persists a complete checkpoint.
    fn write(&self, checkpoint: &CheckpointData) -> Result<WrittenCheckpoint>;
    /// The newest complete and intact checkpoint or savepoint, skipping (and reporting) newer
    /// ones that are incomplete or corrupted.
    fn load_latest(&self) -> Result<Option<LoadedCheckpoint>>;
    /// The checkpoint at `location` (as [`LoadedCheckpoint::location`] and
    /// [`WrittenCheckpoint::location`] name it), verified.
    fn load(&self, location: &CheckpointLocation) -> Result<LoadedCheckpoint>;
    /// Where this storage keeps its checkpoints (a directory or a URL), for messages.
    fn describe(&self) -> String {
        String::from("checkpoint storage")
    }
    /// Deletes periodic checkpoints beyond the newest `keep` complete ones, and incomplete ones
    /// older than the newest complete one. Savepoints are never deleted.
    fn retain(&self, keep: usize) -> Result<()>;
}

/// Checkpoints in a local directory.
#[derive(Clone, Debug)]
pub struct LocalCheckpointStorage {
    dir: PathBuf,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> StreamError {
    move |e| StreamError::io(context, e)
}

/// A checkpoint at `path` that cannot be used, and why.
pub(crate) fn corrupt(path: &Path, what: String) -> StreamError {
    StreamError::Checkpoint(format!("{}: {what}", path.display()))
}

/// Why a checkpoint without a manifest cannot be used.
const INCOMPLETE: &str = "incomplete (no manifest: the run stopped while writing it)";

/// The error for a checkpoint at `path` that has no manifest.
pub(crate) fn incomplete(path: &Path) -> StreamError {
    corrupt(path, INCOMPLETE.into())
}

/// The newest of `candidates` (newest first) that `load` reads and verifies, skipping the
/// others with a warning (reported in [`LoadedCheckpoint::skipped`]). When none can be used:
/// a fresh start (`None`) if every one is incomplete — a checkpoint without a manifest never
/// committed anything, so nothing is repeated by starting over — and an error if one had a
/// manifest (it may have committed output that a fresh start would produce again).
pub(crate) fn pick_latest(
    candidates: Vec<CheckpointLocation>,
    load: impl Fn(&CheckpointLocation) -> Result<LoadedCheckpoint>,
    place: &str,
) -> Result<Option<LoadedCheckpoint>> {
    let mut skipped = Vec::new();
    let mut only_incomplete = true;
    for location in candidates {
        match load(&location) {
            Ok(mut cp) => {
                cp.skipped = skipped;
                return Ok(Some(cp));
            }
            Err(e) => {
                tracing::warn!(error = %e, "skipping checkpoint");
                let e = e.to_string();
                only_incomplete &= e.ends_with(INCOMPLETE);
                skipped.push(e);
            }
        }
    }
    if !only_incomplete {
        return Err(StreamError::Checkpoint(format!(
            "no complete checkpoint in {place}; skipped: {}",
            skipped.join("; ")
        )));
    }
    if !skipped.is_empty() {
        tracing::warn!(
            place,
            "no complete checkpoint, only incomplete ones (nothing was committed): starting fresh"
        );
    }
    Ok(None)
}

/// `chk-000007` → 7, `sp-000007` → 7.
pub fn parse_dir_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix("chk-")
        .or_else(|| name.strip_prefix("sp-"))?;
    digits.parse().ok()
}

/// The directory (or prefix) name of checkpoint `id` of kind `kind`: `chk-000007`,
/// `sp-000007`.
pub fn checkpoint_name(id: u64, kind: CheckpointKind) -> String {
    match kind {
        CheckpointKind::Savepoint => format!("sp-{id:06}"),
        _ => format!("chk-{id:06}"),
    }
}

/// Lays out `cp` as state files: hands each non-empty file (its name inside the checkpoint and
/// its bytes) to `put`, one at a time, and returns the manifest indexing them and the total
/// bytes. Shared by every storage, so they all write the same format.
pub fn encode_files(
    cp: &CheckpointData,
    mut put: impl FnMut(&str, Vec<u8>) -> Result<()>,
) -> Result<(Manifest, u64)> {
    let mut nodes = Vec::with_capacity(cp.nodes.len());
    let mut total = 0u64;
    for (node_index, (node, instances)) in cp.nodes.iter().enumerate() {
        let mut entries = Vec::with_capacity(instances.len());
        for inst in instances {
            let mut bytes = Vec::with_capacity(inst.snapshot.size());
            let mut place = |blob: &[u8]| {
                let at = (bytes.len() as u64, blob.len() as u64);
                bytes.extend_from_slice(blob);
                at
            };
            let groups = inst
                .snapshot
                .groups
                .iter()
                .map(|(g, b)| {
                    let (off, len) = place(b);
                    (*g, off, len)
                })
                .collect();
            let operator = inst.snapshot.operator.as_deref().map(&mut place);
            let committables = inst.committables.iter().map(|c| place(c)).collect();
            let len = bytes.len() as u64;
            let crc32 = crc32fast::hash(&bytes);
            let file = if bytes.is_empty() {
                None
            } else {
                let file = format!("n{node_index:04}-s{:03}.state", inst.subtask);
                put(&file, bytes)?;
                Some(file)
            };
            total += len;
            entries.push(InstanceManifest {
                subtask: inst.subtask,
                file,
                bytes: len,
                crc32,
                groups,
                operator,
                committables,
                chain: inst.snapshot.chain.clone(),
            });
        }
        nodes.push(NodeManifest {
            node: node.clone(),
            instances: entries,
        });
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        job: cp.job.clone(),
        checkpoint_id: cp.id,
        kind: cp.kind,
        created_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        key_groups: cp.key_groups,
        nodes,
    };
    Ok((manifest, total))
}

/// The manifest as written (pretty JSON).
pub fn manifest_json(manifest: &Manifest) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(manifest)
        .map_err(|e| StreamError::Checkpoint(format!("encoding the manifest: {e}")))
}

/// Parses and checks the manifest of the checkpoint at `location`.
pub fn parse_manifest(location: &CheckpointLocation, text: &[u8]) -> Result<Manifest> {
    let location = location.as_path();
    let manifest: Manifest = serde_json::from_slice(text)
        .map_err(|e| corrupt(location, format!("unreadable manifest: {e}")))?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(corrupt(
            location,
            format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                manifest.format_version
            ),
        ));
    }
    Ok(manifest)
}

/// Reads every state file the manifest names (with `read`, given the file's name), checks its
/// length and CRC-32, and cuts it into the instances' state.
pub fn decode_files(
    at: &CheckpointLocation,
    manifest: &Manifest,
    mut read: impl FnMut(&str) -> Result<Vec<u8>>,
) -> Result<Vec<(String, Vec<InstanceState>)>> {
    let location = at.as_path();
    let mut nodes = Vec::with_capacity(manifest.nodes.len());
    for node in &manifest.nodes {
        let mut instances = Vec::with_capacity(node.instances.len());
        for inst in &node.instances {
            let bytes = match &inst.file {
                None => Vec::new(),
                Some(file) => read(file)?,
            };
            if bytes.len() as u64 != inst.bytes || crc32fast::hash(&bytes) != inst.crc32 {
                return Err(corrupt(
                    location,
                    format!(
                        "state of {} subtask {} is corrupted ({} bytes, expected {}; checksum mismatch)",
                        node.node,
                        inst.subtask,
                        bytes.len(),
                        inst.bytes
                    ),
                ));
            }
            let slice = |(off, len): (u64, u64)| -> Result<Vec<u8>> {
                bytes
                    .get(off as usize..(off + len) as usize)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| corrupt(location, format!("blob out of range in {}", node.node)))
            };
            let mut snapshot = StateSnapshot::default();
            for &(g, off, len) in &inst.groups {
                snapshot.groups.push((g, slice((off, len))?));
            }
            snapshot.operator = inst.operator.map(slice).transpose()?;
            snapshot.chain = inst.chain.clone();
            let committables = inst
                .committables
                .iter()
                .map(|&c| slice(c))
                .collect::<Result<_>>()?;
            instances.push(InstanceState {
                subtask: inst.subtask,
                snapshot,
                committables,
            });
        }
        nodes.push((node.node.clone(), instances));
    }
    Ok(nodes)
}

impl LocalCheckpointStorage {
    /// Storage in `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        Ok(LocalCheckpointStorage { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The checkpoint and savepoint directories present, newest first (complete or not:
    /// [`CheckpointStorage::load`] verifies).
    pub fn locations(&self) -> Result<Vec<PathBuf>> {
        Ok(self.list()?.into_iter().map(|(_, path, _)| path).collect())
    }

    /// Checkpoint directories present, newest first: `(id, path, is_savepoint)`.
    fn list(&self) -> Result<Vec<(u64, PathBuf, bool)>> {
        let mut found = Vec::new();
        let entries =
            fs::read_dir(&self.dir).map_err(io(format!("listing {}", self.dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(io(format!("listing {}", self.dir.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = parse_dir_name(&name) {
                found.push((id, entry.path(), name.starts_with("sp-")));
            }
        }
        found.sort_by(|a, b| b.0.cmp(&a.0).then(a.2.cmp(&b.2)));
        Ok(found)
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Makes the renames and new entries of `dir` durable (a no-op where directories cannot be
    // opened, which is not the case on Linux).
    if let Ok(d) = File::open(dir) {
        d.sync_all()
            .map_err(io(format!("syncing directory {}", dir.display())))?;
    }
    Ok(())
}

impl CheckpointStorage for LocalCheckpointStorage {
    fn next_id(&self) -> Result<u64> {
        Ok(self.list()?.first().map_or(1, |(id, _, _)| id + 1))
    }

    fn write(&self, cp: &CheckpointData) -> Result<WrittenCheckpoint> {
        let dir = self.dir.join(checkpoint_name(cp.id, cp.kind));
        if dir.exists() {
            // Left over by a run that crashed before finishing this id: never complete.
            fs::remove_dir_all(&dir).map_err(io(format!("removing {}", dir.display())))?;
        }
        fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let (manifest, total) = encode_files(cp, |file, bytes| {
            let path = dir.join(file);
            let mut f = File::create(&path).map_err(io(format!("creating {}", path.display())))?;
            f.write_all(&bytes)
                .and_then(|()| f.sync_all())
                .map_err(io(format!("writing {}", path.display())))
        })?;
        let json = manifest_json(&manifest)?;
        let tmp = dir.join("_manifest.json.tmp");
        let mut f = File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        f.write_all(&json)
            .and_then(|()| f.sync_all())
            .map_err(io(format!("writing {}", tmp.display())))?;
        sync_dir(&dir)?;
        fs::rename(&tmp, dir.join(MANIFEST))
            .map_err(io(format!("publishing {}", dir.display())))?;
        sync_dir(&dir)?;
        sync_dir(&self.dir)?;
        Ok(WrittenCheckpoint {
            location: CheckpointLocation::from(dir),
            bytes: total,
        })
    }

    fn load_latest(&self) -> Result<Option<LoadedCheckpoint>> {
        let candidates = self
            .list()?
            .into_iter()
            .map(|(_, path, _)| CheckpointLocation::from(path))
            .collect();
        pick_latest(
            candidates,
            |l| self.load(l),
            &self.dir.display().to_string(),
        )
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn load(&self, at: &CheckpointLocation) -> Result<LoadedCheckpoint> {
        let location = at.as_path();
        let manifest_path = location.join(MANIFEST);
        let text = match fs::read(&manifest_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(incomplete(location)),
            Err(e) => {
                return Err(StreamError::io(
                    format!("reading {}", manifest_path.display()),
                    e,
                ))
            }
        };
        let manifest = parse_manifest(at, &text)?;
        let nodes = decode_files(at, &manifest, |file| {
            fs::read(location.join(file))
                .map_err(|e| corrupt(location, format!("state file {file} unreadable: {e}")))
        })?;
        let mut cp = LoadedCheckpoint {
            location: at.clone(),
            manifest,
            nodes,
            skipped: Vec::new(),
        };
        resolve_chains(&mut cp, |l| self.load(l))?;
        Ok(cp)
    }

    fn retain(&self, keep: usize) -> Result<()> {
        let mut complete = 0;
        // Checkpoints that kept incremental ones build on.
        let mut referenced = std::collections::BTreeSet::new();
        for (_, path, savepoint) in self.list()? {
            if savepoint {
                continue;
            }
            // A manifest that does not parse marks a corrupted checkpoint: not one to keep.
            let manifest = fs::read(path.join(MANIFEST))
                .ok()
                .and_then(|m| serde_json::from_slice::<Manifest>(&m).ok());
            let is_complete = manifest.is_some();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if let Some(m) = manifest.filter(|_| {
                complete < keep.max(1) || name.as_ref().is_some_and(|n| referenced.contains(n))
            }) {
                complete += 1;
                referenced.extend(m.references().map(str::to_string));
                continue;
            }
            // Incomplete ones newer than every complete one may still be being written.
            if !is_complete && complete == 0 {
                continue;
            }
            fs::remove_dir_all(&path).map_err(io(format!("removing {}", path.display())))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: u64) -> CheckpointData {
        let mut snapshot = StateSnapshot::default();
        snapshot.put_group(3, &vec![1u64, 2, 3]).unwrap();
        snapshot.put_operator(&"pos").unwrap();
        CheckpointData {
            job: "j".into(),
            id,
            kind: CheckpointKind::Checkpoint,
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

    #[test]
    fn write_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalCheckpointStorage::new(dir.path()).unwrap();
        assert_eq!(s.next_id().unwrap(), 1);
        s.write(&sample(1)).unwrap();
        assert_eq!(s.next_id().unwrap(), 2);
        let cp = s.load_latest().unwrap().unwrap();
        assert_eq!(cp.manifest.checkpoint_id, 1);
        let inst = &cp.node("window#2").unwrap()[0];
        assert_eq!(inst.committables, vec![b"c1".to_vec()]);
        let restored: Vec<u64> = super::super::decode(&inst.snapshot.groups[0].1).unwrap();
        assert_eq!(restored, vec![1, 2, 3]);
    }

    #[test]
    fn incomplete_and_corrupted_checkpoints_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalCheckpointStorage::new(dir.path()).unwrap();
        s.write(&sample(1)).unwrap();
        s.write(&sample(2)).unwrap();
        s.write(&sample(3)).unwrap();
        // 3: torn manifest; 2: a flipped byte in a state file.
        fs::write(
            dir.path().join("chk-000003").join(MANIFEST),
            b"{\"format_ver",
        )
        .unwrap();
        let state = dir.path().join("chk-000002").join("n0000-s000.state");
        let mut bytes = fs::read(&state).unwrap();
        bytes[0] ^= 0xff;
        fs::write(&state, bytes).unwrap();
        // 4: never got its manifest.
        fs::create_dir(dir.path().join("chk-000004")).unwrap();
        let cp = s.load_latest().unwrap().unwrap();
        assert_eq!(cp.manifest.checkpoint_id, 1);
        assert_eq!(cp.skipped.len(), 3, "{:?}", cp.skipped);
        assert!(cp.skipped[0].contains("incomplete"), "{:?}", cp.skipped);
        assert!(
            cp.skipped[1].contains("unreadable manifest"),
            "{:?}",
            cp.skipped
        );
        assert!(cp.skipped[2].contains("corrupted"), "{:?}", cp.skipped);
    }

    #[test]
    fn only_incomplete_checkpoints_mean_a_fresh_start_and_a_damaged_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalCheckpointStorage::new(dir.path()).unwrap();
        // Killed while writing the first checkpoint: nothing was committed.
        fs::create_dir(dir.path().join("chk-000001")).unwrap();
        fs::write(dir.path().join("chk-000001").join("n0000-s000.state"), b"x").unwrap();
        assert!(s.load_latest().unwrap().is_none());
        assert_eq!(s.next_id().unwrap(), 2);
        // A manifest that does not parse may stand for committed output: refuse.
        s.write(&sample(2)).unwrap();
        fs::write(dir.path().join("chk-000002").join(MANIFEST), b"{").unwrap();
        let err = s.load_latest().unwrap_err().to_string();
        assert!(err.contains("no complete checkpoint in"), "{err}");
    }

    #[test]
    fn retention_keeps_the_newest_complete_ones_and_savepoints() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalCheckpointStorage::new(dir.path()).unwrap();
        for id in 1..=5 {
            let mut cp = sample(id);
            if id == 2 {
                cp.kind = CheckpointKind::Savepoint;
            }
            s.write(&cp).unwrap();
        }
        fs::create_dir(dir.path().join("chk-000006")).unwrap();
        s.retain(2).unwrap();
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["chk-000004", "chk-000005", "chk-000006", "sp-000002"]
        );
    }
}
