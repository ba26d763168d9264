//! JSON-lines files: [`JsonLinesSource`] reads any `T: Deserialize` (such as
//! [`streamcore::Event`]) one record per line, in parallel byte-range splits;
//! [`JsonLinesSink`] writes any `T: Serialize`, one record per line.

use super::{list_files, next_split, plan_splits, LineSplitReader, SharedFile, SplitQueue};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use streamcore::{
    decode::from_json_str, Data, Result, Sink, SinkWriter, Source, SourcePoll, SourceReader,
    TaskContext, TaskInfo,
};

/// Reads JSON lines from a file, a directory or a glob. Each file is cut into byte ranges at
/// line boundaries, and the parallel readers take ranges from a shared queue, so one large
/// file is read by all of them. Blank lines are skipped.
///
/// A line that is not valid UTF-8 or does not decode as `T` is rejected with its file, line
/// (or byte offset) and the field at fault, under the job's error policy.
pub struct JsonLinesSource<T, D = SerdeJson<T>> {
    pattern: String,
    min_split: Option<u64>,
    decoder: D,
    _t: PhantomData<fn() -> T>,
}

/// Turns one line into a record: `Ok(None)` skips the line (a record of another kind),
/// `Err(reason)` rejects it under the job's error policy.
pub trait LineDecoder: Clone + Send + 'static {
    /// The record type.
    type Out: Data;
    /// Decodes one line (without its line ending).
    fn decode(&self, line: &str) -> Result<Option<Self::Out>, String>;
}

/// The default decoder: the line is the JSON form of `T` (serde).
pub struct SerdeJson<T>(PhantomData<fn() -> T>);

impl<T> Clone for SerdeJson<T> {
    fn clone(&self) -> Self {
        SerdeJson(PhantomData)
    }
}

impl<T: Data + DeserializeOwned> LineDecoder for SerdeJson<T> {
    type Out = T;
    #[inline]
    fn decode(&self, line: &str) -> Result<Option<T>, String> {
        from_json_str::<T>(line)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

impl<T> JsonLinesSource<T> {
    /// Reads the files `pattern` names (path, directory or glob).
    pub fn new(pattern: impl Into<String>) -> Self {
        JsonLinesSource {
            pattern: pattern.into(),
            min_split: None,
            decoder: SerdeJson(PhantomData),
            _t: PhantomData,
        }
    }
}

impl<T, D> JsonLinesSource<T, D> {
    /// Decodes lines with `decoder` instead of serde (a format of its own, records filtered
    /// by kind).
    pub fn with_decoder<D2: LineDecoder>(self, decoder: D2) -> JsonLinesSource<D2::Out, D2> {
        JsonLinesSource {
            pattern: self.pattern,
            min_split: self.min_split,
            decoder,
            _t: PhantomData,
        }
    }

    /// Sets the smallest split size in bytes (default 1 MiB); for tests of splitting.
    pub fn min_split_bytes(mut self, bytes: u64) -> Self {
        self.min_split = Some(bytes);
        self
    }
}

impl<T: Data, D: LineDecoder<Out = T>> Source<T> for JsonLinesSource<T, D> {
    type Reader = JsonLinesReader<T, D>;

    fn create_readers(&mut self, parallelism: usize) -> Result<Vec<Self::Reader>> {
        let files = list_files(&self.pattern)?;
        let splits = plan_splits(&files, parallelism, self.min_split)?;
        tracing::debug!(
            files = files.len(),
            splits = splits.len(),
            "planned JSON-lines splits"
        );
        let queue: SplitQueue = Arc::new(Mutex::new(splits.into()));
        Ok((0..parallelism)
            .map(|_| JsonLinesReader {
                queue: queue.clone(),
                current: None,
                split: 0,
                decoder: self.decoder.clone(),
                _t: PhantomData,
            })
            .collect())
    }
}

/// One parallel reader of a [`JsonLinesSource`].
pub struct JsonLinesReader<T, D> {
    queue: SplitQueue,
    current: Option<LineSplitReader>,
    /// The split the last poll read from.
    split: u64,
    decoder: D,
    _t: PhantomData<fn() -> T>,
}

impl<T: Data, D: LineDecoder<Out = T>> SourceReader<T> for JsonLinesReader<T, D> {
    fn poll_batch(
        &mut self,
        out: &mut Vec<T>,
        max: usize,
        ctx: &mut TaskContext,
    ) -> Result<SourcePoll> {
        while out.len() < max {
            let reader = match &mut self.current {
                Some(r) => r,
                None => match next_split(&self.queue) {
                    Some(split) => self.current.insert(LineSplitReader::open(split)?),
                    None => return Ok(SourcePoll::Finished),
                },
            };
            self.split = reader.split_id();
            let Some(origin) = reader.next_line()? else {
                // One split per poll, so the records of a poll share a split id.
                ctx.split_finished(self.split);
                self.current = None;
                return Ok(SourcePoll::Ready);
            };
            let decoded = match std::str::from_utf8(&reader.buf) {
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => self.decoder.decode(text),
                Err(e) => Err(format!("not valid UTF-8: {e}")),
            };
            match decoded {
                Ok(Some(record)) => out.push(record),
                Ok(None) => {}
                Err(reason) => {
                    let raw = String::from_utf8_lossy(&reader.buf).into_owned();
                    ctx.reject_input(reader.describe(&origin), &raw, reason)?;
                }
            }
        }
        Ok(SourcePoll::Ready)
    }

    fn split_id(&self) -> u64 {
        self.split
    }
}

/// Writes JSON lines: to one file shared by all parallel writers (a batch per lock), or to a
/// directory with one `part-N.jsonl` per parallel writer.
pub struct JsonLinesSink<T> {
    target: Target,
    shared: Option<SharedFile>,
    _t: PhantomData<fn(T)>,
}

enum Target {
    File(PathBuf),
    Dir(PathBuf),
}

impl<T> JsonLinesSink<T> {
    /// All records into one file (created or truncated when the job starts).
    pub fn file(path: impl Into<PathBuf>) -> Self {
        JsonLinesSink {
            target: Target::File(path.into()),
            shared: None,
            _t: PhantomData,
        }
    }

    /// One file per parallel writer: `dir/part-0.jsonl`, `dir/part-1.jsonl`, …
    pub fn dir(path: impl Into<PathBuf>) -> Self {
        JsonLinesSink {
            target: Target::Dir(path.into()),
            shared: None,
            _t: PhantomData,
        }
    }
}

impl<T: Data + Serialize> Sink<T> for JsonLinesSink<T> {
    type Writer = JsonLinesWriter<T>;

    fn create_writer(&mut self, task: &TaskInfo) -> Result<Self::Writer> {
        let file = match &self.target {
            Target::File(path) => match &self.shared {
                Some(f) => f.clone(),
                None => self.shared.insert(SharedFile::create(path)?).clone(),
            },
            Target::Dir(dir) => {
                SharedFile::create(&dir.join(format!("part-{}.jsonl", task.subtask)))?
            }
        };
        Ok(JsonLinesWriter {
            file,
            buf: Vec::with_capacity(64 << 10),
            _t: PhantomData,
        })
    }
}

/// Serializes a batch as JSON lines into `buf`.
pub(crate) fn encode_json_lines<T: Serialize>(batch: &[T], buf: &mut Vec<u8>) -> Result<()> {
    for record in batch {
        serde_json::to_writer(&mut *buf, record).map_err(|e| {
            streamcore::StreamError::External {
                system: "json".into(),
                message: format!("cannot serialize a record: {e}"),
            }
        })?;
        buf.push(b'\n');
    }
    Ok(())
}

/// One parallel writer of a [`JsonLinesSink`]: encodes a batch without a lock, then appends it
/// in one locked write.
pub struct JsonLinesWriter<T> {
    file: SharedFile,
    buf: Vec<u8>,
    _t: PhantomData<fn(T)>,
}

impl<T: Data + Serialize> SinkWriter<T> for JsonLinesWriter<T> {
    fn write_batch(&mut self, batch: Vec<T>) -> Result<()> {
        self.buf.clear();
        encode_json_lines(&batch, &mut self.buf)?;
        self.file.write(&self.buf)
    }

    fn close(&mut self) -> Result<()> {
        self.file.flush()
    }
}
