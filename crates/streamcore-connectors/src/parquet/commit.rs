//! The Parquet sink's second phase: a [`ParquetCommit`] renames one closed in-progress file to
//! its final name once its checkpoint is complete (idempotently: a missing source with an
//! existing target was committed before), and on restore every in-progress file left under the
//! sink's directory — in any partition — is deleted.

use crate::sink_metrics::SinkMetrics;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;
use streamcore::checkpoint::decode;
use streamcore::sink::Committer;
use streamcore::{Result, StreamError};

/// The suffix of in-progress files.
pub(crate) const IN_PROGRESS: &str = ".inprogress";

/// Committing one file: rename `from` to `to` (paths relative to the sink's directory).
#[derive(Debug, Serialize, Deserialize)]
pub struct ParquetCommit {
    /// The in-progress file.
    pub from: String,
    /// Its final name.
    pub to: String,
}

/// Renames one file into place and syncs its directory.
pub(crate) fn commit(base: &Path, c: &ParquetCommit, metrics: &SinkMetrics) -> Result<()> {
    let started = Instant::now();
    let (from, to) = (base.join(&c.from), base.join(&c.to));
    match fs::rename(&from, &to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && to.exists() => return Ok(()),
        Err(e) => {
            return Err(StreamError::io(
                format!(
                    "committing {} as {} (the pre-committed file is missing)",
                    from.display(),
                    to.display()
                ),
                e,
            ))
        }
    }
    if let Some(dir) = to.parent() {
        if let Ok(d) = fs::File::open(dir) {
            d.sync_all()
                .map_err(|e| StreamError::io(format!("syncing {}", dir.display()), e))?;
        }
    }
    metrics.files_committed.fetch_add(1, Relaxed);
    metrics.commit_took(started.elapsed());
    Ok(())
}

/// Calls `f` for every file under `dir`, recursively (a missing `dir` has none).
pub(crate) fn walk(dir: &Path, f: &mut dyn FnMut(&Path) -> Result<()>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StreamError::io(format!("listing {}", dir.display()), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StreamError::io(format!("listing {}", dir.display()), e))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| StreamError::io(format!("listing {}", dir.display()), e))?;
        if kind.is_dir() {
            walk(&path, f)?;
        } else {
            f(&path)?;
        }
    }
    Ok(())
}

/// Commits the files of one Parquet sink.
pub(crate) struct ParquetCommitter {
    pub(crate) base: std::path::PathBuf,
    pub(crate) metrics: Arc<SinkMetrics>,
}

impl Committer for ParquetCommitter {
    fn commit(&self, committable: &[u8]) -> Result<()> {
        let c: ParquetCommit = decode(committable)?;
        commit(&self.base, &c, &self.metrics)
    }

    fn abort_uncommitted(&self) -> Result<()> {
        walk(&self.base, &mut |p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with(".part-") && name.ends_with(IN_PROGRESS) {
                tracing::debug!(file = %p.display(), "aborting uncommitted parquet file");
                fs::remove_file(p)
                    .map_err(|e| StreamError::io(format!("removing {}", p.display()), e))?;
            }
            Ok(())
        })
    }
}
