//! Partitioned part files: rows written as part files under Hive-style partition directories
//! of the sink's directory (`dt=2015-07-15/hm=12%3A05/part-…`, see [`crate::partition`]), in
//! any line format a [`RowEncoder`] writes — SQL's `PARTITIONED BY` on a JSON or CSV
//! `filesystem` table.
//!
//! With checkpoints the output is exactly-once as the unpartitioned directory sinks' is
//! ([`super::transactional`]): each partition a writer touched since the last checkpoint has
//! its in-progress file, closed and pre-committed at the barrier, renamed to
//! `part-CHECKPOINT-SUBTASK.EXT` in its partition directory when the checkpoint completes;
//! a restore deletes the in-progress files of every partition. Without checkpoints each writer
//! appends to `part-SUBTASK.EXT` in each partition directory.
//!
//! Rows are grouped into runs of one partition per batch, so the partition lookup is per run,
//! not per row.

use super::transactional::{PartCommitter, PartFiles};
use crate::partition::PartitionSpec;
use hashbrown::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use streamcore::checkpoint::{decode, encode};
use streamcore::row::Row;
use streamcore::sink::{Committer, Sink, SinkWriter};
use streamcore::{Result, StreamError, TaskInfo};

/// Encodes rows as the records of a line format.
pub trait RowEncoder: Clone + Send + 'static {
    /// The part files' extension (`csv`, `json`).
    fn extension(&self) -> &'static str;

    /// Appends the record of `row`'s `columns` (in that order), with its line end, to `out`.
    fn encode(&mut self, row: &Row, columns: &[usize], out: &mut Vec<u8>) -> Result<()>;
}

/// A sink of rows into partition directories of part files (see the module).
pub struct PartitionedFileSink<E> {
    base: PathBuf,
    spec: PartitionSpec,
    encoder: E,
}

impl<E: RowEncoder> PartitionedFileSink<E> {
    /// Writes under the directory `base`, partitioned by `spec`, each record by `encoder`.
    pub fn new(base: impl Into<PathBuf>, spec: PartitionSpec, encoder: E) -> Self {
        PartitionedFileSink {
            base: base.into(),
            spec,
            encoder,
        }
    }
}

/// At most this many plain (not checkpointed) part files stay open per writer; beyond it they
/// are closed and re-opened for appending when written again.
const MAX_OPEN_PLAIN: usize = 128;

impl<E: RowEncoder> Sink<Row> for PartitionedFileSink<E> {
    type Writer = PartitionedWriter<E>;

    fn create_writer(&mut self, task: &TaskInfo) -> Result<Self::Writer> {
        fs::create_dir_all(&self.base)
            .map_err(|e| StreamError::io(format!("creating {}", self.base.display()), e))?;
        Ok(PartitionedWriter {
            base: self.base.clone(),
            spec: self.spec.clone(),
            encoder: self.encoder.clone(),
            subtask: task.subtask,
            checkpointing: task.checkpointing,
            parts: HashMap::new(),
            plain: HashMap::new(),
            created: hashbrown::HashSet::new(),
            scratch: String::new(),
            run: String::new(),
            buf: Vec::new(),
        })
    }

    fn committer(&mut self) -> Result<Option<Box<dyn Committer>>> {
        Ok(Some(Box::new(PartitionedCommitter {
            base: self.base.clone(),
        })))
    }
}

/// One parallel writer of a [`PartitionedFileSink`].
pub struct PartitionedWriter<E> {
    base: PathBuf,
    spec: PartitionSpec,
    encoder: E,
    subtask: usize,
    checkpointing: bool,
    /// With checkpoints: the in-progress files of the partitions written since the last
    /// checkpoint (and of those written in the one before, until a checkpoint finds them
    /// idle).
    parts: HashMap<String, PartFiles>,
    /// Without checkpoints: open part files by partition.
    plain: HashMap<String, BufWriter<File>>,
    /// Without checkpoints: the partitions whose part file this run created (appended to
    /// after being closed, not truncated again).
    created: hashbrown::HashSet<String>,
    scratch: String,
    /// The partition of the rows in `buf`.
    run: String,
    buf: Vec<u8>,
}

impl<E: RowEncoder> PartitionedWriter<E> {
    /// Writes the encoded rows of the current run to its partition's file.
    fn flush_run(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let partition = self.run.as_str();
        if self.checkpointing {
            let part = match self.parts.get_mut(partition) {
                Some(p) => p,
                None => {
                    let dir = self.base.join(partition);
                    let files = PartFiles::new(&dir, self.subtask, self.encoder.extension())?;
                    self.parts.entry(partition.to_string()).or_insert(files)
                }
            };
            part.write(&self.buf)?;
        } else {
            if !self.plain.contains_key(partition) {
                if self.plain.len() >= MAX_OPEN_PLAIN {
                    for (_, mut f) in self.plain.drain() {
                        f.flush()
                            .map_err(|e| StreamError::io("flushing a part file", e))?;
                    }
                }
                let dir = self.base.join(partition);
                fs::create_dir_all(&dir)
                    .map_err(|e| StreamError::io(format!("creating {}", dir.display()), e))?;
                let path = dir.join(format!(
                    "part-{}.{}",
                    self.subtask,
                    self.encoder.extension()
                ));
                let first = self.created.insert(partition.to_string());
                let file = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(!first)
                    .truncate(first)
                    .open(&path)
                    .map_err(|e| StreamError::io(format!("opening {}", path.display()), e))?;
                self.plain.insert(
                    partition.to_string(),
                    BufWriter::with_capacity(1 << 16, file),
                );
            }
            let file = self.plain.get_mut(partition).expect("opened above");
            file.write_all(&self.buf).map_err(|e| {
                StreamError::io(
                    format!("writing {}", self.base.join(partition).display()),
                    e,
                )
            })?;
        }
        self.buf.clear();
        Ok(())
    }
}

impl<E: RowEncoder> SinkWriter<Row> for PartitionedWriter<E> {
    fn write_batch(&mut self, batch: Vec<Row>) -> Result<()> {
        for row in &batch {
            self.scratch.clear();
            self.spec
                .path_of(row, &mut self.scratch)
                .map_err(|message| StreamError::External {
                    system: "filesystem".into(),
                    message: format!("sink {}: {message}", self.base.display()),
                    source: None,
                })?;
            if self.scratch != self.run {
                self.flush_run()?;
                std::mem::swap(&mut self.run, &mut self.scratch);
            }
            self.encoder
                .encode(row, self.spec.data_columns(), &mut self.buf)?;
        }
        self.flush_run()
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<Vec<Vec<u8>>> {
        self.flush_run()?;
        if !self.checkpointing {
            for f in self.plain.values_mut() {
                f.flush()
                    .map_err(|e| StreamError::io("flushing a part file", e))?;
            }
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut idle = Vec::new();
        for (partition, part) in &mut self.parts {
            let commits = part.pre_commit(checkpoint)?;
            if commits.is_empty() {
                idle.push(partition.clone());
            }
            for inner in commits {
                out.push(encode(&(partition.as_str(), inner))?);
            }
        }
        // Partitions not written for a whole checkpoint: forget them (time partitions
        // move on; a partition written again gets a new writer).
        for p in idle {
            self.parts.remove(&p);
        }
        Ok(out)
    }

    fn close(&mut self) -> Result<()> {
        self.flush_run()?;
        for (_, mut f) in self.plain.drain() {
            f.flush()
                .map_err(|e| StreamError::io("flushing a part file", e))?;
        }
        Ok(())
    }
}

/// Commits the part files of a partitioned sink: each in its partition directory.
struct PartitionedCommitter {
    base: PathBuf,
}

impl Committer for PartitionedCommitter {
    fn commit(&self, committable: &[u8]) -> Result<()> {
        let (partition, inner): (String, Vec<u8>) = decode(committable)?;
        PartCommitter {
            dir: self.base.join(partition),
        }
        .commit(&inner)
    }

    fn abort_uncommitted(&self) -> Result<()> {
        abort_under(&self.base)
    }
}

/// Deletes the in-progress files of `dir` and every directory below it.
fn abort_under(dir: &Path) -> Result<()> {
    PartCommitter {
        dir: dir.to_path_buf(),
    }
    .abort_uncommitted()?;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StreamError::io(format!("listing {}", dir.display()), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StreamError::io(format!("listing {}", dir.display()), e))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            abort_under(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::DEFAULT_PARTITION_NAME;
    use std::sync::Arc;
    use streamcore::row::{DataType, Field, Scalar, Schema};

    /// `id,dt` as `id` lines.
    #[derive(Clone)]
    struct Ids;
    impl RowEncoder for Ids {
        fn extension(&self) -> &'static str {
            "txt"
        }
        fn encode(&mut self, row: &Row, columns: &[usize], out: &mut Vec<u8>) -> Result<()> {
            assert_eq!(columns, &[0], "the partition column is not written");
            out.extend_from_slice(format!("{}\n", row.values[0]).as_bytes());
            Ok(())
        }
    }

    fn sink(dir: &Path) -> PartitionedFileSink<Ids> {
        let schema = Schema::new(vec![
            Field::new("id", DataType::BigInt),
            Field::new("dt", DataType::Varchar),
        ]);
        let spec =
            PartitionSpec::resolve(&schema, &["dt".into()], None, DEFAULT_PARTITION_NAME).unwrap();
        PartitionedFileSink::new(dir, spec, Ids)
    }

    fn task(checkpointing: bool) -> TaskInfo {
        TaskInfo {
            job: Arc::from("t"),
            name: Arc::from("sink"),
            id: Arc::from("sink"),
            subtask: 3,
            parallelism: 4,
            key_groups: 128,
            checkpointing,
        }
    }

    fn rows(v: &[(i64, Option<&str>)]) -> Vec<Row> {
        v.iter()
            .map(|(id, dt)| {
                Row::new(vec![
                    Scalar::Int(*id),
                    dt.map_or(Scalar::Null, |d| Scalar::Str(d.into())),
                ])
            })
            .collect()
    }

    /// Committed files under `dir`: relative path → content.
    fn files(dir: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
            for e in fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else {
                    let rel = p.strip_prefix(base).unwrap().display().to_string();
                    out.push((rel, fs::read_to_string(&p).unwrap()));
                }
            }
        }
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    #[test]
    fn parts_become_visible_per_partition_when_their_checkpoint_commits() {
        let tmp = tempfile::tempdir().unwrap();
        let mut sink = sink(tmp.path());
        let committer = sink.committer().unwrap().unwrap();
        let mut w = sink.create_writer(&task(true)).unwrap();
        w.write_batch(rows(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b/c")),
            (4, None),
        ]))
        .unwrap();
        let first = w.pre_commit(1).unwrap();
        assert_eq!(first.len(), 3, "one part per partition");
        // Not committed yet: only in-progress files, hidden.
        assert!(files(tmp.path()).iter().all(|(p, _)| p.contains("/.part-")));
        w.write_batch(rows(&[(5, Some("a"))])).unwrap();
        let second = w.pre_commit(2).unwrap();
        assert_eq!(second.len(), 1);
        for c in &first {
            committer.commit(c).unwrap();
            committer.commit(c).unwrap(); // idempotent
        }
        // A crash now: checkpoint 2 never completes; the restore aborts its part.
        committer.abort_uncommitted().unwrap();
        assert_eq!(
            files(tmp.path()),
            vec![
                (
                    "dt=__HIVE_DEFAULT_PARTITION__/part-000001-003.txt".into(),
                    "4\n".into()
                ),
                ("dt=a/part-000001-003.txt".into(), "1\n2\n".into()),
                ("dt=b%2Fc/part-000001-003.txt".into(), "3\n".into()),
            ]
        );
        // Checkpoint 2's part was deleted with its in-progress file: committing it fails loudly.
        assert!(committer.commit(&second[0]).is_err());
    }

    #[test]
    fn without_checkpoints_each_writer_appends_to_one_file_per_partition() {
        let tmp = tempfile::tempdir().unwrap();
        let mut sink = sink(tmp.path());
        let mut w = sink.create_writer(&task(false)).unwrap();
        w.write_batch(rows(&[(1, Some("a")), (2, Some("b"))]))
            .unwrap();
        w.write_batch(rows(&[(3, Some("a"))])).unwrap();
        w.close().unwrap();
        assert_eq!(
            files(tmp.path()),
            vec![
                ("dt=a/part-3.txt".into(), "1\n3\n".into()),
                ("dt=b/part-3.txt".into(), "2\n".into()),
            ]
        );
    }
}
