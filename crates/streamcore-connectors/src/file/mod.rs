//! File connectors: listing the files a path names, and cutting them into splits.

pub mod csv;
pub mod jsonl;
mod lines;
pub mod partitioned;
pub(crate) mod transactional;
mod writer;

pub use transactional::PartCommit;
pub(crate) use transactional::{PartCommitter, PartFiles};

use std::path::{Path, PathBuf};

use streamcore::{Result, StreamError};

pub(crate) use lines::LineSplitReader;
pub(crate) use writer::SharedFile;

/// The work plan a restore continues, from the readers' decoded positions (each holds the
/// whole plan: the first one's is taken).
pub(crate) fn restored_plan<P, W: Clone>(
    positions: &[P],
    plan: impl Fn(&P) -> &[W],
) -> Result<Vec<W>> {
    positions
        .first()
        .map(|p| plan(p).to_vec())
        .ok_or_else(|| StreamError::Checkpoint("no reader position to restore".into()))
}

/// The work a restore leaves to do: every item of `plan` (identified by `key`) that no reader
/// finished, in plan order, each with the position to continue from if a reader was in the
/// middle of it.
pub(crate) fn resume_queue<W: Clone, K: PartialEq, P: Clone>(
    plan: &[W],
    key: impl Fn(&W) -> K,
    finished: &[K],
    current: &[(K, P)],
) -> std::collections::VecDeque<(W, Option<P>)> {
    plan.iter()
        .filter(|w| !finished.contains(&key(w)))
        .map(|w| {
            let k = key(w);
            let at = current
                .iter()
                .find(|(c, _)| *c == k)
                .map(|(_, p)| p.clone());
            (w.clone(), at)
        })
        .collect()
}

/// Lists the files `pattern` names: a file, every file in a directory (sorted), or the
/// files matching a glob (sorted). No match is an error: an empty input is most likely a typo.
pub fn list_files(pattern: &str) -> Result<Vec<PathBuf>> {
    let path = Path::new(pattern);
    let mut files = if pattern.contains(['*', '?', '[']) {
        let paths = glob::glob(pattern)
            .map_err(|e| StreamError::Config(format!("bad glob `{pattern}`: {e}")))?;
        let mut files = Vec::new();
        for p in paths {
            let p = p.map_err(|e| StreamError::io(format!("listing `{pattern}`"), e.into()))?;
            if p.is_file() {
                files.push(p);
            }
        }
        files
    } else if path.is_dir() {
        let entries = std::fs::read_dir(path)
            .map_err(|e| StreamError::io(format!("listing {pattern}"), e))?;
        let mut files = Vec::new();
        for entry in entries {
            let p = entry
                .map_err(|e| StreamError::io(format!("listing {pattern}"), e))?
                .path();
            if p.is_file() {
                files.push(p);
            }
        }
        files
    } else if path.is_file() {
        vec![path.to_path_buf()]
    } else {
        return Err(StreamError::Config(format!(
            "input `{pattern}` does not exist"
        )));
    };
    if files.is_empty() {
        return Err(StreamError::Config(format!("no files match `{pattern}`")));
    }
    files.sort();
    Ok(files)
}

/// A byte range of one file; lines that *start* inside `[start, end)` belong to it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileSplit {
    /// Index of the split among all splits of the source: watermarks are tracked per split.
    pub id: u64,
    /// The file.
    pub path: PathBuf,
    /// First byte (inclusive).
    pub start: u64,
    /// Last byte (exclusive).
    pub end: u64,
}

/// Smallest split worth a reader of its own.
const MIN_SPLIT: u64 = 1 << 20;
/// Largest split: bounds how unevenly readers can finish.
const MAX_SPLIT: u64 = 64 << 20;

/// Cuts `files` into splits: about four per reader over the total size, between 1 and 64 MiB.
pub fn plan_splits(
    files: &[PathBuf],
    parallelism: usize,
    min_split: Option<u64>,
) -> Result<Vec<FileSplit>> {
    let mut sizes = Vec::with_capacity(files.len());
    for f in files {
        let len = std::fs::metadata(f)
            .map_err(|e| StreamError::io(format!("reading {}", f.display()), e))?
            .len();
        sizes.push(len);
    }
    let total: u64 = sizes.iter().sum();
    let min = min_split.unwrap_or(MIN_SPLIT).max(1);
    let target = (total / (parallelism as u64 * 4).max(1)).clamp(min, MAX_SPLIT.max(min));
    let mut splits = Vec::new();
    for (f, &len) in files.iter().zip(&sizes) {
        let mut start = 0;
        while start < len {
            let end = (start + target).min(len);
            splits.push(FileSplit {
                id: splits.len() as u64,
                path: f.clone(),
                start,
                end,
            });
            start = end;
        }
    }
    Ok(splits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cover_each_file_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jsonl");
        std::fs::write(&a, vec![b'x'; 10_000]).unwrap();
        let splits = plan_splits(std::slice::from_ref(&a), 2, Some(1000)).unwrap();
        // About four splits per reader: 10_000 bytes / (2 readers × 4) = 1250 bytes each.
        assert_eq!(splits.len(), 8);
        assert_eq!(splits[0].start, 0);
        assert!(splits.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!(splits.last().unwrap().end, 10_000);
    }

    #[test]
    fn missing_input_is_a_clear_error() {
        let err = list_files("/nonexistent/streamcore/input.jsonl").unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = list_files(&format!("{}/*.jsonl", dir.path().display())).unwrap_err();
        assert!(err.to_string().contains("no files match"), "{err}");
    }
}
