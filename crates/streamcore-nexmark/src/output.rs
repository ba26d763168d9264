//! Sinks for query results: [`ChangelogCsvSink`] writes a changelog as CSV with an `op`
//! column, [`TableSink`] applies a changelog as it arrives and yields the final table.
//!
//! ```
//! use streamcore::changelog::Change;
//! use streamcore::source::Generator;
//! use streamcore::{Job, JobConfig};
//! use streamcore_nexmark::output::{ChangelogCsvSink, TableSink};
//! use streamcore_nexmark::queries::Q4Row;
//!
//! let dir = std::env::temp_dir().join(format!("changelog-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("q4.changelog.csv");
//! let mut job = Job::new("changes");
//! let changes = job
//!     .source("g", Generator::new(|i| Change::Insert(Q4Row { id: 10, final_: i as i64 })).bounded(3))
//!     .flat_map(|c| match c {
//!         // Every row but the last is replaced by the next one.
//!         Change::Insert(r) if r.final_ < 2 => vec![
//!             Change::Insert(r.clone()),
//!             Change::Delete(r),
//!         ],
//!         other => vec![other],
//!     });
//! let (sink, table) = TableSink::new();
//! changes.clone().sink(sink);
//! changes.sink(ChangelogCsvSink::new(&path));
//! job.run(JobConfig::default().parallelism(1)).unwrap();
//! assert_eq!(table.rows().unwrap(), vec![Q4Row { id: 10, final_: 2 }]);
//! let text = std::fs::read_to_string(&path).unwrap();
//! assert_eq!(text.lines().next(), Some("op,id,final"));
//! assert_eq!(text.lines().count(), 6);
//! # std::fs::remove_dir_all(&dir).ok();
//! ```

use crate::queries::QueryRow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs::File;
use std::hash::Hash;
use std::io::{BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use streamcore::changelog::Change;
use streamcore::sink::{Sink, SinkWriter};
use streamcore::{Result, StreamError, TaskInfo};

/// The `op` of a change: `+` for an addition (insert, update-after), `-` for a retraction
/// (delete, update-before).
pub fn op<R>(change: &Change<R>) -> &'static str {
    if change.is_addition() {
        "+"
    } else {
        "-"
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes a changelog to one CSV file shared by every parallel writer: a header `op` followed
/// by `R::COLUMNS`, then one line per change, `+` (insert) or `-` (delete) and the row.
///
/// Changes of one key come in order (from the one instance that owns the key), so replaying
/// the file top to bottom gives the final table; changes of different keys interleave in no
/// particular order. An append-only query is written as inserts only
/// (`rows.map(Change::Insert)`).
pub struct ChangelogCsvSink<R> {
    path: PathBuf,
    file: Option<Arc<Mutex<BufWriter<File>>>>,
    _r: PhantomData<fn(R)>,
}

impl<R> ChangelogCsvSink<R> {
    /// Writes to `path` (created or truncated when the job starts).
    pub fn new(path: impl AsRef<Path>) -> Self {
        ChangelogCsvSink {
            path: path.as_ref().to_path_buf(),
            file: None,
            _r: PhantomData,
        }
    }
}

impl<R: QueryRow> Sink<Change<R>> for ChangelogCsvSink<R> {
    type Writer = ChangelogCsvWriter<R>;

    fn create_writer(&mut self, _task: &TaskInfo) -> Result<Self::Writer> {
        let file = match &self.file {
            Some(f) => f.clone(),
            None => {
                let context = || format!("creating {}", self.path.display());
                let mut w = BufWriter::with_capacity(
                    1 << 20,
                    File::create(&self.path).map_err(|e| StreamError::io(context(), e))?,
                );
                let mut header = csv::WriterBuilder::new().from_writer(Vec::new());
                header
                    .write_field("op")
                    .and_then(|()| header.write_record(R::COLUMNS))
                    .map_err(|e| csv_error(&self.path, e))?;
                let header = header
                    .into_inner()
                    .map_err(|e| StreamError::Internal(e.to_string()))?;
                w.write_all(&header)
                    .map_err(|e| StreamError::io(context(), e))?;
                self.file.insert(Arc::new(Mutex::new(w))).clone()
            }
        };
        Ok(ChangelogCsvWriter {
            file,
            path: self.path.clone(),
            _r: PhantomData,
        })
    }

    /// Takes changelogs: every change is a record here.
    fn accepts_updates(&self) -> bool {
        true
    }
}

fn csv_error(path: &Path, e: csv::Error) -> StreamError {
    StreamError::external(
        "csv",
        format_args!("cannot write a change to {}", path.display()),
        e,
    )
}

/// One parallel writer of a [`ChangelogCsvSink`]: encodes each batch, then appends it to the
/// shared file under its lock.
pub struct ChangelogCsvWriter<R> {
    file: Arc<Mutex<BufWriter<File>>>,
    path: PathBuf,
    _r: PhantomData<fn(R)>,
}

impl<R: QueryRow> SinkWriter<Change<R>> for ChangelogCsvWriter<R> {
    fn write_batch(&mut self, batch: Vec<Change<R>>) -> Result<()> {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::with_capacity(batch.len() * 64));
        for change in &batch {
            let row = change.row();
            // `write_field` starts the record, `serialize` adds the row's fields and ends it.
            w.write_field(op(change))
                .and_then(|()| w.serialize(row))
                .map_err(|e| csv_error(&self.path, e))?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| StreamError::Internal(e.to_string()))?;
        lock(&self.file)
            .write_all(&bytes)
            .map_err(|e| StreamError::io(format!("writing {}", self.path.display()), e))
    }

    fn close(&mut self) -> Result<()> {
        lock(&self.file)
            .flush()
            .map_err(|e| StreamError::io(format!("writing {}", self.path.display()), e))
    }
}

/// Why a changelog has no final table.
#[derive(Debug, thiserror::Error)]
pub enum ChangelogError {
    /// More deletes than inserts of one row.
    #[error("a row was deleted {deleted} more time(s) than inserted: {row}")]
    DeletedMoreThanInserted {
        /// The row, `Debug`-formatted.
        row: String,
        /// By how many.
        deleted: i64,
    },
}

/// Applies a changelog as it arrives: each parallel writer keeps a multiset of rows (a
/// `Delete` removes one equal row), merged into one when it closes; [`FinalTable::rows`]
/// reads the result after the job. Memory is the size of the table, not of the changelog.
pub struct TableSink<R> {
    table: FinalTable<R>,
}

/// The final table of a [`TableSink`].
pub struct FinalTable<R>(Arc<Mutex<HashMap<R, i64>>>);

impl<R> Clone for FinalTable<R> {
    fn clone(&self) -> Self {
        FinalTable(self.0.clone())
    }
}

impl<R> TableSink<R> {
    /// A sink and the handle to read its table with after the job.
    pub fn new() -> (Self, FinalTable<R>) {
        let table = FinalTable(Arc::new(Mutex::new(HashMap::new())));
        (
            TableSink {
                table: table.clone(),
            },
            table,
        )
    }
}

impl<R: Hash + Eq + Clone + std::fmt::Debug> FinalTable<R> {
    /// The rows of the table (each as often as its multiplicity), in no particular order.
    pub fn rows(&self) -> std::result::Result<Vec<R>, ChangelogError> {
        let table = std::mem::take(&mut *lock(&self.0));
        let mut rows = Vec::with_capacity(table.len());
        for (row, n) in table {
            if n < 0 {
                return Err(ChangelogError::DeletedMoreThanInserted {
                    row: format!("{row:?}"),
                    deleted: -n,
                });
            }
            rows.extend(std::iter::repeat_n(row, n as usize));
        }
        Ok(rows)
    }
}

impl<R: streamcore::Data + Hash + Eq> Sink<Change<R>> for TableSink<R> {
    type Writer = TableWriter<R>;

    fn create_writer(&mut self, _task: &TaskInfo) -> Result<Self::Writer> {
        Ok(TableWriter {
            rows: HashMap::new(),
            table: self.table.clone(),
        })
    }

    /// Takes changelogs: every change is a record here.
    fn accepts_updates(&self) -> bool {
        true
    }
}

/// One parallel writer of a [`TableSink`].
pub struct TableWriter<R> {
    rows: HashMap<R, i64>,
    table: FinalTable<R>,
}

impl<R: streamcore::Data + Hash + Eq> SinkWriter<Change<R>> for TableWriter<R> {
    fn write_batch(&mut self, batch: Vec<Change<R>>) -> Result<()> {
        for change in batch {
            // A delete may reach this writer before the insert reaches another one: counts go
            // negative here and are summed over the writers at the end.
            let d = if change.is_addition() { 1 } else { -1 };
            let row = change.into_row();
            // Rows whose count drops to zero are removed: the map stays the current result.
            match self.rows.entry(row) {
                Entry::Occupied(mut e) => {
                    *e.get_mut() += d;
                    if *e.get() == 0 {
                        e.remove();
                    }
                }
                Entry::Vacant(e) => {
                    e.insert(d);
                }
            }
        }
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        let mut table = lock(&self.table.0);
        for (row, n) in self.rows.drain() {
            let total = table.entry(row).or_default();
            *total += n;
        }
        table.retain(|_, n| *n != 0);
        Ok(())
    }
}
