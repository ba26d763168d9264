//! Exactly-once part files: the two-phase commit of the file sinks when a job checkpoints.
//!
//! A writer appends to a hidden in-progress file (`.part-…-SUBTASK-RUN-SEQ.inprogress`). At a
//! checkpoint barrier it flushes and syncs the file and hands over a [`PartCommit`]: rename it
//! to `part-CHECKPOINT-SUBTASK.EXT`. The committer renames it once the checkpoint is complete —
//! only then do readers see it. Renames are idempotent (an in-progress file that is gone while
//! its final name exists was committed before), so re-committing a restored checkpoint is
//! harmless; on restore every in-progress file left behind is deleted (aborted).

use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use streamcore::checkpoint::{decode, encode};
use streamcore::sink::Committer;
use streamcore::{Result, StreamError};

/// What committing one part file does: rename `from` to `to` (file names in the sink's
/// directory).
#[derive(Debug, Serialize, Deserialize)]
pub struct PartCommit {
    from: String,
    to: String,
}

/// The suffix of in-progress files.
const IN_PROGRESS: &str = ".inprogress";

/// A sink instance's in-progress part file.
pub(crate) struct PartFiles {
    dir: PathBuf,
    subtask: usize,
    extension: &'static str,
    /// Distinguishes the in-progress files of this run from those of any other.
    run: String,
    seq: u64,
    current: Option<(String, BufWriter<File>)>,
    /// The last checkpoint this run pre-committed (with the parts committed before it, names
    /// the part written at the end of the input).
    last_checkpoint: u64,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> StreamError {
    move |e| StreamError::io(context, e)
}

impl PartFiles {
    pub(crate) fn new(dir: &Path, subtask: usize, extension: &'static str) -> Result<Self> {
        fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Ok(PartFiles {
            dir: dir.to_path_buf(),
            subtask,
            extension,
            run: format!("{:x}-{}", run, std::process::id()),
            seq: 0,
            current: None,
            last_checkpoint: 0,
        })
    }

    /// Appends `bytes` (whole records) to the in-progress file, opening one if needed.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.current.is_none() {
            self.seq += 1;
            let name = format!(
                ".part-{:03}-{}-{}{IN_PROGRESS}",
                self.subtask, self.run, self.seq
            );
            let path = self.dir.join(&name);
            let file = File::create(&path).map_err(io(format!("creating {}", path.display())))?;
            self.current = Some((name, BufWriter::with_capacity(1 << 20, file)));
        }
        let (name, file) = self.current.as_mut().expect("opened above");
        file.write_all(bytes).map_err(io(format!(
            "writing {}",
            self.dir.join(name.as_str()).display()
        )))
    }

    /// Closes the in-progress file (durably) and returns how to commit it: at checkpoint
    /// `checkpoint`, or at the end of the input (`u64::MAX`).
    pub(crate) fn pre_commit(&mut self, checkpoint: u64) -> Result<Vec<Vec<u8>>> {
        let Some((name, file)) = self.current.take() else {
            if checkpoint != u64::MAX {
                self.last_checkpoint = checkpoint;
            }
            return Ok(Vec::new());
        };
        let path = self.dir.join(&name);
        let file = file
            .into_inner()
            .map_err(|e| StreamError::io(format!("writing {}", path.display()), e.into_error()))?;
        file.sync_all()
            .map_err(io(format!("syncing {}", path.display())))?;
        let to = if checkpoint == u64::MAX {
            // After every part committed before: a restored run's own checkpoints may not
            // have begun yet, and its parts must not sort before the crashed runs' output.
            let last = self
                .last_checkpoint
                .max(last_committed_checkpoint(&self.dir)?);
            format!(
                "part-{:06}-{:03}-end.{}",
                last + 1,
                self.subtask,
                self.extension
            )
        } else {
            self.last_checkpoint = checkpoint;
            format!(
                "part-{checkpoint:06}-{:03}.{}",
                self.subtask, self.extension
            )
        };
        Ok(vec![encode(&PartCommit { from: name, to })?])
    }
}

/// The highest checkpoint id among the committed part files (`part-CHECKPOINT-…`) in `dir`;
/// 0 when there are none.
fn last_committed_checkpoint(dir: &Path) -> Result<u64> {
    let entries = fs::read_dir(dir).map_err(io(format!("listing {}", dir.display())))?;
    let mut last = 0;
    for entry in entries {
        let entry = entry.map_err(io(format!("listing {}", dir.display())))?;
        let name = entry.file_name();
        last = last.max(name.to_str().and_then(part_checkpoint).unwrap_or(0));
    }
    Ok(last)
}

/// The checkpoint a committed part file's name (`part-CHECKPOINT-…`) says it belongs to.
pub(crate) fn part_checkpoint(file_name: &str) -> Option<u64> {
    file_name
        .strip_prefix("part-")?
        .split(['-', '.'])
        .next()?
        .parse()
        .ok()
}

/// Commits the part files of one sink directory.
pub(crate) struct PartCommitter {
    pub(crate) dir: PathBuf,
}

impl Committer for PartCommitter {
    fn commit(&self, committable: &[u8]) -> Result<()> {
        let c: PartCommit = decode(committable)?;
        let (from, to) = (self.dir.join(&c.from), self.dir.join(&c.to));
        match fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && to.exists() => {
                // Committed before (a restore re-commits its checkpoint's transactions).
                return Ok(());
            }
            Err(e) => {
                return Err(StreamError::io(
                    format!(
                        "committing {} as {} (the pre-committed output is missing)",
                        from.display(),
                        to.display()
                    ),
                    e,
                ))
            }
        }
        if let Ok(d) = File::open(&self.dir) {
            d.sync_all()
                .map_err(io(format!("syncing {}", self.dir.display())))?;
        }
        Ok(())
    }

    fn abort_uncommitted(&self) -> Result<()> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(StreamError::io(
                    format!("listing {}", self.dir.display()),
                    e,
                ))
            }
        };
        for entry in entries {
            let entry = entry.map_err(io(format!("listing {}", self.dir.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".part-") && name.ends_with(IN_PROGRESS) {
                tracing::debug!(file = %name, "aborting uncommitted output");
                fs::remove_file(entry.path())
                    .map_err(io(format!("removing {}", entry.path().display())))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn output_is_visible_only_once_committed_and_commits_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut parts = PartFiles::new(dir.path(), 1, "jsonl").unwrap();
        let committer = PartCommitter {
            dir: dir.path().to_path_buf(),
        };
        parts.write(b"{\"a\":1}\n").unwrap();
        let c = parts.pre_commit(4).unwrap();
        assert_eq!(c.len(), 1);
        assert!(names(dir.path()).iter().all(|n| n.starts_with('.')));
        committer.commit(&c[0]).unwrap();
        committer.commit(&c[0]).unwrap();
        assert_eq!(names(dir.path()), ["part-000004-001.jsonl"]);
        // Nothing written: nothing to commit.
        assert!(parts.pre_commit(5).unwrap().is_empty());
        parts.write(b"{\"a\":2}\n").unwrap();
        let end = parts.pre_commit(u64::MAX).unwrap();
        committer.commit(&end[0]).unwrap();
        assert_eq!(
            names(dir.path()),
            ["part-000004-001.jsonl", "part-000006-001-end.jsonl"]
        );
    }

    #[test]
    fn a_restored_run_ends_after_the_output_committed_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let committer = PartCommitter {
            dir: dir.path().to_path_buf(),
        };
        let mut crashed = PartFiles::new(dir.path(), 0, "jsonl").unwrap();
        crashed.write(b"x\n").unwrap();
        committer
            .commit(&crashed.pre_commit(57).unwrap()[0])
            .unwrap();
        // The restored run's input ends before its first checkpoint.
        let mut restored = PartFiles::new(dir.path(), 0, "jsonl").unwrap();
        restored.write(b"y\n").unwrap();
        committer
            .commit(&restored.pre_commit(u64::MAX).unwrap()[0])
            .unwrap();
        assert_eq!(
            names(dir.path()),
            ["part-000057-000.jsonl", "part-000058-000-end.jsonl"]
        );
    }

    #[test]
    fn abort_deletes_only_in_progress_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut parts = PartFiles::new(dir.path(), 0, "jsonl").unwrap();
        parts.write(b"x\n").unwrap();
        let committer = PartCommitter {
            dir: dir.path().to_path_buf(),
        };
        committer.commit(&parts.pre_commit(1).unwrap()[0]).unwrap();
        parts.write(b"y\n").unwrap();
        let _pending = parts.pre_commit(2).unwrap();
        committer.abort_uncommitted().unwrap();
        assert_eq!(names(dir.path()), ["part-000001-000.jsonl"]);
        let missing = committer.commit(&_pending[0]).unwrap_err().to_string();
        assert!(missing.contains("missing"), "{missing}");
    }
}
