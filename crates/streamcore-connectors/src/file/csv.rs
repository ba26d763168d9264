//! CSV files: [`CsvSource`] reads any flat `T: Deserialize` by header name; [`CsvSink`] writes
//! any flat `T: Serialize` with a header row.
//!
//! CSV fields may hold quoted newlines, so a CSV file cannot be cut at arbitrary line breaks:
//! each file is one split, and several files are read in parallel.

use super::{list_files, restored_plan, resume_queue, PartCommitter, PartFiles, SharedFile};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use streamcore::checkpoint::{decode, encode};
use streamcore::sink::Committer;
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
        let files = list_files(&self.pattern)?;
        let queue = files.iter().map(|f| (f.clone(), None)).collect();
        Ok(self.readers(parallelism, files, queue, Vec::new()))
    }

    fn supports_checkpoints(&self) -> bool {
        true
    }

    fn restore_readers(
        &mut self,
        parallelism: usize,
        positions: Vec<Vec<u8>>,
    ) -> Result<Vec<Self::Reader>> {
        let positions: Vec<CsvPosition> =
            positions.iter().map(|p| decode(p)).collect::<Result<_>>()?;
        let files = restored_plan(&positions, |p| &p.files)?;
        let finished: Vec<PathBuf> = positions.iter().flat_map(|p| p.finished.clone()).collect();
        let current: Vec<_> = positions.iter().filter_map(|p| p.current.clone()).collect();
        let queue = resume_queue(&files, PathBuf::clone, &finished, &current);
        Ok(self.readers(parallelism, files, queue, finished))
    }
}

impl<T> CsvSource<T> {
    fn readers(
        &self,
        parallelism: usize,
        files: Vec<PathBuf>,
        queue: VecDeque<PendingFile>,
        finished: Vec<PathBuf>,
    ) -> Vec<CsvReader<T>> {
        let queue = Arc::new(Mutex::new(queue));
        let files = Arc::new(files);
        (0..parallelism)
            .map(|_| CsvReader {
                queue: queue.clone(),
                files: files.clone(),
                finished: finished.clone(),
                current: None,
                delimiter: self.delimiter,
                record: csv::StringRecord::new(),
                _t: PhantomData,
            })
            .collect()
    }
}

/// A file to read, with the (byte, line, record) position to continue from, if it was started.
type PendingFile = (PathBuf, Option<(u64, u64, u64)>);

/// What a CSV reader records in a checkpoint: the source's files, those read to the end, and
/// the file being read with the position (byte, line, record) of its next row.
#[derive(Serialize, serde::Deserialize)]
struct CsvPosition {
    files: Vec<PathBuf>,
    finished: Vec<PathBuf>,
    current: Option<(PathBuf, (u64, u64, u64))>,
}

struct OpenCsv {
    path: PathBuf,
    reader: csv::Reader<std::fs::File>,
    headers: csv::StringRecord,
}

/// One parallel reader of a [`CsvSource`]: reads whole files taken from a shared queue.
pub struct CsvReader<T> {
    /// Files not yet taken, each with the position to continue from (after a restore).
    queue: Arc<Mutex<VecDeque<PendingFile>>>,
    files: Arc<Vec<PathBuf>>,
    finished: Vec<PathBuf>,
    current: Option<OpenCsv>,
    delimiter: u8,
    record: csv::StringRecord,
    _t: PhantomData<fn() -> T>,
}

impl<T: Data + DeserializeOwned> CsvReader<T> {
    fn open_next(&mut self) -> Result<bool> {
        let Some((path, resume)) = self
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
        if let Some((byte, line, record)) = resume {
            let mut at = csv::Position::new();
            at.set_byte(byte).set_line(line).set_record(record);
            reader.seek(at).map_err(|e| csv_error(&path, e))?;
        }
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
                if let Some(done) = self.current.take() {
                    self.finished.push(done.path);
                }
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

    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        encode(&CsvPosition {
            files: self.files.as_ref().clone(),
            finished: self.finished.clone(),
            current: self.current.as_ref().map(|f| {
                let p = f.reader.position();
                (f.path.clone(), (p.byte(), p.line(), p.record()))
            }),
        })
    }
}

/// Writes CSV with a header row: into one file shared by all parallel writers, or (with
/// [`CsvSink::dir`]) into a directory of part files, each with its header.
///
/// When the job checkpoints, a directory sink is exactly-once, like
/// [`crate::JsonLinesSink::dir`]: part files `part-CHECKPOINT-SUBTASK.csv` appear when their
/// checkpoint completes. A single-file sink refuses to run with checkpoints.
pub struct CsvSink<T> {
    path: PathBuf,
    dir: bool,
    shared: Option<(SharedFile, Arc<Mutex<bool>>)>,
    _t: PhantomData<fn(T)>,
}

impl<T> CsvSink<T> {
    /// Writes to the one file `path` (created or truncated when the job starts), as
    /// [`crate::JsonLinesSink::file`] does.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        CsvSink {
            path: path.into(),
            dir: false,
            shared: None,
            _t: PhantomData,
        }
    }

    /// The same as [`CsvSink::file`] (the name the other sinks use is `file`).
    #[deprecated(since = "0.1.0", note = "use CsvSink::file, as JsonLinesSink::file")]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::file(path)
    }

    /// Writes part files into the directory `path`: `part-N.csv` per parallel writer, or
    /// exactly-once `part-CHECKPOINT-SUBTASK.csv` files when the job checkpoints.
    pub fn dir(path: impl Into<PathBuf>) -> Self {
        CsvSink {
            dir: true,
            ..Self::file(path)
        }
    }
}

impl<T: Data + Serialize> Sink<T> for CsvSink<T> {
    type Writer = CsvWriter<T>;

    fn create_writer(&mut self, task: &TaskInfo) -> Result<Self::Writer> {
        let out = match (self.dir, task.checkpointing) {
            (false, true) => {
                return Err(StreamError::Config(format!(
                    "the CSV sink to the single file {} cannot commit per checkpoint: write to a directory (CsvSink::dir) for exactly-once output",
                    self.path.display()
                )))
            }
            (true, true) => CsvOut::Parts(PartFiles::new(&self.path, task.subtask, "csv")?),
            (true, false) => CsvOut::Shared(
                SharedFile::create(&self.path.join(format!("part-{}.csv", task.subtask)))?,
                Arc::new(Mutex::new(false)),
            ),
            (false, false) => {
                let (file, header) = match &self.shared {
                    Some(s) => s.clone(),
                    None => self
                        .shared
                        .insert((SharedFile::create(&self.path)?, Arc::new(Mutex::new(false))))
                        .clone(),
                };
                CsvOut::Shared(file, header)
            }
        };
        Ok(CsvWriter {
            out,
            part_has_header: false,
            path: self.path.clone(),
            _t: PhantomData,
        })
    }

    fn committer(&mut self) -> Result<Option<Box<dyn Committer>>> {
        Ok(self.dir.then(|| {
            Box::new(PartCommitter {
                dir: self.path.clone(),
            }) as Box<dyn Committer>
        }))
    }
}

enum CsvOut {
    /// A file shared by the writers, and whether its header was written.
    Shared(SharedFile, Arc<Mutex<bool>>),
    Parts(PartFiles),
}

/// One parallel writer of a [`CsvSink`].
pub struct CsvWriter<T> {
    out: CsvOut,
    /// Whether the current part file (exactly-once mode) has its header.
    part_has_header: bool,
    path: PathBuf,
    _t: PhantomData<fn(T)>,
}

impl<T: Data + Serialize> CsvWriter<T> {
    fn encode(path: &std::path::Path, batch: &[T], header: bool) -> Result<Vec<u8>> {
        let mut w = csv::WriterBuilder::new()
            .has_headers(header)
            .from_writer(Vec::new());
        for r in batch {
            w.serialize(r).map_err(|e| {
                let message = e.to_string();
                // The csv crate writes flat records only: say what to do about it.
                let hint = if message.contains("container inside") {
                    format!(
                        " — CSV needs flat records (every field a number, string, bool or \
                         option of one), and `{}` has a struct, tuple or list inside: map the \
                         records to a flat struct first, or write JSON lines",
                        std::any::type_name::<T>()
                    )
                } else {
                    String::new()
                };
                StreamError::External {
                    system: "csv".into(),
                    message: format!(
                        "cannot write a record to {}: {message}{hint}",
                        path.display()
                    ),
                    source: Some(Box::new(e)),
                }
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
        match &mut self.out {
            CsvOut::Shared(file, header_written) => {
                // The header goes out exactly once, ahead of the first batch any writer writes.
                let mut header_written = header_written.lock().unwrap_or_else(|p| p.into_inner());
                let bytes = Self::encode(&self.path, &batch, !*header_written)?;
                file.write(&bytes)?;
                *header_written = true;
            }
            CsvOut::Parts(parts) => {
                let bytes = Self::encode(&self.path, &batch, !self.part_has_header)?;
                parts.write(&bytes)?;
                self.part_has_header = true;
            }
        }
        Ok(())
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<Vec<Vec<u8>>> {
        match &mut self.out {
            CsvOut::Shared(file, _) => file.flush().map(|()| Vec::new()),
            CsvOut::Parts(parts) => {
                // Each part file starts with its own header.
                self.part_has_header = false;
                parts.pre_commit(checkpoint)
            }
        }
    }

    fn close(&mut self) -> Result<()> {
        match &mut self.out {
            CsvOut::Shared(file, _) => file.flush(),
            CsvOut::Parts(_) => Ok(()),
        }
    }
}
