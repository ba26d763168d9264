//! [`SharedFile`]: one output file written by all parallel instances of a sink, a whole
//! batch per lock.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use streamcore::{Result, StreamError};

/// A buffered file shared by the writers of one sink.
#[derive(Clone)]
pub(crate) struct SharedFile {
    path: Arc<PathBuf>,
    file: Arc<Mutex<BufWriter<File>>>,
}

impl SharedFile {
    /// Creates (truncates) the file, and its parent directory if needed.
    pub(crate) fn create(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StreamError::io(format!("creating {}", parent.display()), e))?;
        }
        let file = File::create(path)
            .map_err(|e| StreamError::io(format!("creating {}", path.display()), e))?;
        Ok(SharedFile {
            path: Arc::new(path.to_path_buf()),
            file: Arc::new(Mutex::new(BufWriter::with_capacity(1 << 20, file))),
        })
    }

    /// Appends `bytes` (whole records) under one lock.
    pub(crate) fn write(&self, bytes: &[u8]) -> Result<()> {
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(bytes)
            .map_err(|e| StreamError::io(format!("writing {}", self.path.display()), e))
    }

    /// Flushes to the operating system.
    pub(crate) fn flush(&self) -> Result<()> {
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.flush()
            .map_err(|e| StreamError::io(format!("writing {}", self.path.display()), e))
    }
}
