//! CSV files: [`CsvSource`] reads any flat `T: Deserialize` by header name; [`CsvSink`] writes
//! any flat `T: Serialize` with a header row.
//!
//! CSV fields may hold quoted newlines, so a CSV file cannot be cut at arbitrary line breaks:
//! each file is one split, and several files are read in parallel.

use super::{list_files, SharedFile};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use streamcore::{
    Data, Result, Sink, SinkWriter, Source, SourcePoll, SourceReader, StreamError, TaskContext,
    TaskInfo,
};

/// Reads CSV files with a header row (a path, a directory or a glob).
pub struct CsvSource<T> {
    pattern: String,
    delimiter: u8,
    _t: PhantomData<fn() -> T>,
}

impl<T> CsvSource<T> {
    /// Reads the files `pattern` names, comma-separated.
    pub fn new(pattern: impl Into<String>) -> Self {
        CsvSource {
            pattern: pattern.into(),
            delimiter: b',',
            _t: PhantomData,
        }
    }

    /// Sets the field delimiter.
    pub fn delimiter(mut self, d: u8) -> Self {
        self.delimiter = d;
        self
    }
}

impl<T: Data + DeserializeOwned> Source<T> for CsvSource<T> {
    type Reader = CsvReader<T>;

    fn create_readers(&mut self, parallelism: usize) -> Result<Vec<Self::Reader>> {
        let files: VecDeque<PathBuf> = list_files(&self.pattern)?.into();
        let queue = Arc::new(Mutex::new(files));
        Ok((0..parallelism)
            .map(|_| CsvReader {
                queue: queue.clone(),
                current: None,
                delimiter: self.delimiter,
                record: csv::StringRecord::new(),
                _t: PhantomData,
            })
            .collect())
    }
}

struct OpenCsv {
    path: PathBuf,
    reader: csv::Reader<std::fs::File>,
    headers: csv::StringRecord,
}

/// One parallel reader of a [`CsvSource`]: reads whole files taken from a shared queue.
pub struct CsvReader<T> {
    queue: Arc<Mutex<VecDeque<PathBuf>>>,
    current: Option<OpenCsv>,
    delimiter: u8,
    record: csv::StringRecord,
    _t: PhantomData<fn() -> T>,
}

impl<T: Data + DeserializeOwned> CsvReader<T> {
    fn open_next(&mut self) -> Result<bool> {
        let Some(path) = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
        else {
            return Ok(false);
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .from_path(&path)
            .map_err(|e| csv_error(&path, e))?;
        let headers = reader.headers().map_err(|e| csv_error(&path, e))?.clone();
        self.current = Some(OpenCsv {
            path,
            reader,
            headers,
        });
        Ok(true)
    }
}

fn csv_error(path: &std::path::Path, e: csv::Error) -> StreamError {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => StreamError::io(format!("reading {}", path.display()), io),
        other => StreamError::BadInput {
            origin: path.display().to_string(),
            reason: format!("{other:?}"),
        },
    }
}

impl<T: Data + DeserializeOwned> SourceReader<T> for CsvReader<T> {
    fn poll_batch(
        &mut self,
        out: &mut Vec<T>,
        max: usize,
        ctx: &mut TaskContext,
    ) -> Result<SourcePoll> {
        while out.len() < max {
            if self.current.is_none() && !self.open_next()? {
                return Ok(SourcePoll::Finished);
            }
            let file = self.current.as_mut().expect("a file is open");
            let more = match file.reader.read_record(&mut self.record) {
                Ok(more) => more,
                Err(e) => {
                    // A malformed row (say, a wrong number of fields): reject it and go on.
                    let origin = match e.position() {
                        Some(p) => format!("{} line {}", file.path.display(), p.line()),
                        None => file.path.display().to_string(),
                    };
                    ctx.reject_input(origin, "", e.to_string())?;
                    continue;
                }
            };
            if !more {
                self.current = None;
                continue;
            }
            match self.record.deserialize::<T>(Some(&file.headers)) {
                Ok(r) => out.push(r),
                Err(e) => {
                    let line = self.record.position().map_or(0, |p| p.line());
                    let (field, reason) = match e.kind() {
                        csv::ErrorKind::Deserialize { err, .. } => (
                            err.field()
                                .and_then(|i| file.headers.get(i as usize))
                                .map(|h| format!("field `{h}`: "))
                                .unwrap_or_default(),
                            match err.kind() {
                                csv::DeserializeErrorKind::Message(m) => m.clone(),
                                kind => kind.to_string(),
                            },
                        ),
                        _ => (String::new(), e.to_string()),
                    };
                    let raw = self.record.iter().collect::<Vec<_>>().join(",");
                    ctx.reject_input(
                        format!("{} line {line}", file.path.display()),
                        &raw,
                        format!("{field}{reason}"),
                    )?;
                }
            }
        }
        Ok(SourcePoll::Ready)
    }
}

/// Writes CSV with a header row into one file shared by all parallel writers.
pub struct CsvSink<T> {
    path: PathBuf,
    shared: Option<(SharedFile, Arc<Mutex<bool>>)>,
    _t: PhantomData<fn(T)>,
}

impl<T> CsvSink<T> {
    /// Writes to `path` (created or truncated when the job starts).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CsvSink {
            path: path.into(),
            shared: None,
            _t: PhantomData,
        }
    }
}

impl<T: Data + Serialize> Sink<T> for CsvSink<T> {
    type Writer = CsvWriter<T>;

    fn create_writer(&mut self, _task: &TaskInfo) -> Result<Self::Writer> {
        let (file, header_written) = match &self.shared {
            Some(s) => s.clone(),
            None => self
                .shared
                .insert((SharedFile::create(&self.path)?, Arc::new(Mutex::new(false))))
                .clone(),
        };
        Ok(CsvWriter {
            file,
            header_written,
            path: self.path.clone(),
            _t: PhantomData,
        })
    }
}

/// One parallel writer of a [`CsvSink`].
pub struct CsvWriter<T> {
    file: SharedFile,
    header_written: Arc<Mutex<bool>>,
    path: PathBuf,
    _t: PhantomData<fn(T)>,
}

impl<T: Data + Serialize> CsvWriter<T> {
    fn encode(&self, batch: &[T], header: bool) -> Result<Vec<u8>> {
        let mut w = csv::WriterBuilder::new()
            .has_headers(header)
            .from_writer(Vec::new());
        for r in batch {
            w.serialize(r).map_err(|e| StreamError::External {
                system: "csv".into(),
                message: format!("cannot write a record to {}: {e}", self.path.display()),
            })?;
        }
        w.into_inner()
            .map_err(|e| StreamError::Internal(e.to_string()))
    }
}

impl<T: Data + Serialize> SinkWriter<T> for CsvWriter<T> {
    fn write_batch(&mut self, batch: Vec<T>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // The header goes out exactly once, ahead of the first batch any writer writes.
        let mut header_written = self
            .header_written
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let bytes = self.encode(&batch, !*header_written)?;
        self.file.write(&bytes)?;
        *header_written = true;
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        self.file.flush()
    }
}
