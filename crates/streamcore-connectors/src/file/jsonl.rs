//! JSON-lines files: [`JsonLinesSource`] reads any `T: Deserialize` (such as
//! [`streamcore::Event`]) one record per line, in parallel byte-range splits;
//! [`JsonLinesSink`] writes any `T: Serialize`, one record per line.

use super::{
    list_files, plan_splits, restored_plan, resume_queue, FileSplit, LineSplitReader,
    PartCommitter, PartFiles, SharedFile,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use streamcore::checkpoint::{decode, encode};
use streamcore::event::set_origin;
use streamcore::sink::Committer;
use streamcore::{
    decode::from_json_str, Data, Result, Sink, SinkWriter, Source, SourcePoll, SourceReader,
    TaskContext, TaskInfo,
};
use streamcore::{Event, StreamError};

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
    /// Decodes one line (without its line ending; not blank). The bytes are the file's: a
    /// decoder that reads text checks UTF-8 itself ([`utf8_line`]), one that reads bytes
    /// checks the parts it keeps.
    fn decode(&mut self, line: &[u8]) -> Result<Option<Self::Out>, String>;

    /// As [`LineDecoder::decode`], with the reading task's context: a decoder with a filter
    /// pushed into it reports each line it drops ([`TaskContext::filtered_at_source`], so
    /// the line is counted and its event time still moves the watermark). The reader calls
    /// this one; the default decodes.
    #[inline]
    fn decode_in(
        &mut self,
        line: &[u8],
        ctx: &mut TaskContext,
    ) -> Result<Option<Self::Out>, String> {
        let _ = ctx;
        self.decode(line)
    }
}

/// A line as text, or the reason it is not UTF-8.
#[inline]
pub fn utf8_line(line: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(line).map_err(|e| format!("not valid UTF-8: {e}"))
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
    fn decode(&mut self, line: &[u8]) -> Result<Option<T>, String> {
        from_json_str::<T>(utf8_line(line)?)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

impl JsonLinesSource<Event> {
    /// Reads [`Event`]s from the files `pattern` names (path, directory or glob). Each event
    /// knows its file and line ([`Event::origin`]), which error messages name.
    ///
    /// For records of your own type use [`JsonLinesSource::typed`].
    pub fn new(pattern: impl Into<String>) -> Self {
        Self::typed(pattern)
    }
}

impl<T> JsonLinesSource<T> {
    /// Reads records of type `T` (any `serde::Deserialize`) from the files `pattern` names
    /// (path, directory or glob): `JsonLinesSource::<Reading>::typed("readings/*.jsonl")`.
    pub fn typed(pattern: impl Into<String>) -> Self {
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

/// Splits not yet taken by a reader, each with the position to continue from (after a
/// restore): readers take the next one when they finish theirs, so a fast reader does more of
/// the work.
type ResumeQueue = Arc<Mutex<VecDeque<PendingSplit>>>;

/// A split to read, with the offset and line number to continue from, if it was started.
type PendingSplit = (FileSplit, Option<(u64, Option<u64>)>);

/// What a reader records in a checkpoint.
#[derive(Serialize, serde::Deserialize)]
struct FilePosition {
    /// The source's split plan (the same in every reader): a restore reads the same ranges.
    plan: Vec<FileSplit>,
    /// Splits read to their end, by this reader or (after a restore) by any earlier one.
    finished: Vec<u64>,
    /// The split being read: its id, and the offset and line number of its next line.
    current: Option<(u64, u64, Option<u64>)>,
}

impl<T: Data, D: LineDecoder<Out = T>> JsonLinesSource<T, D> {
    fn readers(
        &self,
        parallelism: usize,
        plan: Vec<FileSplit>,
        queue: VecDeque<PendingSplit>,
        finished: Vec<u64>,
    ) -> Vec<JsonLinesReader<T, D>> {
        let queue: ResumeQueue = Arc::new(Mutex::new(queue));
        let plan = Arc::new(plan);
        (0..parallelism)
            .map(|_| JsonLinesReader {
                queue: queue.clone(),
                plan: plan.clone(),
                finished: finished.clone(),
                current: None,
                split: 0,
                decoder: self.decoder.clone(),
                _t: PhantomData,
            })
            .collect()
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
        let queue = splits.iter().cloned().map(|s| (s, None)).collect();
        Ok(self.readers(parallelism, splits, queue, Vec::new()))
    }

    fn supports_checkpoints(&self) -> bool {
        true
    }

    fn restore_readers(
        &mut self,
        parallelism: usize,
        positions: Vec<Vec<u8>>,
    ) -> Result<Vec<Self::Reader>> {
        let positions: Vec<FilePosition> =
            positions.iter().map(|p| decode(p)).collect::<Result<_>>()?;
        let plan = restored_plan(&positions, |p| &p.plan)?;
        for split in &plan {
            let len = std::fs::metadata(&split.path)
                .map_err(|e| StreamError::io(format!("restoring {}", split.path.display()), e))?
                .len();
            if len < split.end {
                return Err(StreamError::Checkpoint(format!(
                    "{} is shorter ({len} bytes) than when the checkpoint was taken: the input changed",
                    split.path.display()
                )));
            }
        }
        let mut finished: Vec<u64> = positions.iter().flat_map(|p| p.finished.clone()).collect();
        finished.sort_unstable();
        finished.dedup();
        let current: Vec<_> = positions
            .iter()
            .filter_map(|p| p.current)
            .map(|(id, pos, line)| (id, (pos, line)))
            .collect();
        let queue = resume_queue(&plan, |s| s.id, &finished, &current);
        Ok(self.readers(parallelism, plan, queue, finished))
    }
}

/// One parallel reader of a [`JsonLinesSource`].
pub struct JsonLinesReader<T, D> {
    queue: ResumeQueue,
    plan: Arc<Vec<FileSplit>>,
    finished: Vec<u64>,
    current: Option<LineSplitReader>,
    /// The split the last poll read from.
    split: u64,
    decoder: D,
    _t: PhantomData<fn() -> T>,
}

impl<T, D> JsonLinesReader<T, D> {
    fn next_split(&mut self) -> Result<Option<&mut LineSplitReader>> {
        let next = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        Ok(match next {
            None => None,
            Some((split, None)) => Some(self.current.insert(LineSplitReader::open(split)?)),
            Some((split, Some((pos, line)))) => Some(
                self.current
                    .insert(LineSplitReader::open_at(split, pos, line)?),
            ),
        })
    }
}

impl<T: Data, D: LineDecoder<Out = T>> SourceReader<T> for JsonLinesReader<T, D> {
    fn poll_batch(
        &mut self,
        out: &mut Vec<T>,
        max: usize,
        ctx: &mut TaskContext,
    ) -> Result<SourcePoll> {
        while out.len() < max {
            if self.current.is_none() && self.next_split()?.is_none() {
                return Ok(SourcePoll::Finished);
            }
            let reader = self.current.as_mut().expect("a split is open");
            self.split = reader.split_id();
            let Some(origin) = reader.next_line()? else {
                // One split per poll, so the records of a poll share a split id.
                ctx.split_finished(self.split);
                self.finished.push(self.split);
                self.current = None;
                return Ok(SourcePoll::Ready);
            };
            let line = reader.line();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let decoded = self.decoder.decode_in(line, ctx);
            match decoded {
                Ok(Some(mut record)) => {
                    set_origin(&mut record, || reader.record_origin(&origin));
                    out.push(record)
                }
                Ok(None) => {}
                Err(reason) => {
                    let raw = String::from_utf8_lossy(reader.line()).into_owned();
                    ctx.reject_input(reader.describe(&origin), &raw, reason)?;
                }
            }
        }
        Ok(SourcePoll::Ready)
    }

    fn split_id(&self) -> u64 {
        self.split
    }

    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        encode(&FilePosition {
            plan: self.plan.as_ref().clone(),
            finished: self.finished.clone(),
            current: self.current.as_ref().map(|r| {
                let (pos, line) = r.position();
                (r.split_id(), pos, line)
            }),
        })
    }
}

/// Writes JSON lines: to one file shared by all parallel writers (a batch per lock), or to a
/// directory with one `part-N.jsonl` per parallel writer.
///
/// When the job checkpoints, a directory sink is **exactly-once**: each writer fills a hidden
/// in-progress file that becomes `part-CHECKPOINT-SUBTASK.jsonl` only once its checkpoint is
/// complete (see `file::transactional`); after a crash and restore, readers of the directory
/// see every record once. A single-file sink cannot commit per checkpoint and refuses to run
/// with checkpoints.
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
        let out = match &self.target {
            Target::File(path) if task.checkpointing => {
                return Err(StreamError::Config(format!(
                    "the JSON-lines sink to the single file {} cannot commit per checkpoint: write to a directory (JsonLinesSink::dir) for exactly-once output",
                    path.display()
                )))
            }
            Target::File(path) => Out::Shared(match &self.shared {
                Some(f) => f.clone(),
                None => self.shared.insert(SharedFile::create(path)?).clone(),
            }),
            Target::Dir(dir) if task.checkpointing => {
                Out::Parts(PartFiles::new(dir, task.subtask, "jsonl")?)
            }
            Target::Dir(dir) => Out::Shared(SharedFile::create(
                &dir.join(format!("part-{}.jsonl", task.subtask)),
            )?),
        };
        Ok(JsonLinesWriter {
            out,
            buf: Vec::with_capacity(64 << 10),
            _t: PhantomData,
        })
    }

    fn committer(&mut self) -> Result<Option<Box<dyn Committer>>> {
        Ok(match &self.target {
            Target::Dir(dir) => Some(Box::new(PartCommitter { dir: dir.clone() })),
            Target::File(_) => None,
        })
    }
}

enum Out {
    Shared(SharedFile),
    Parts(PartFiles),
}

/// Serializes a batch as JSON lines into `buf`.
pub(crate) fn encode_json_lines<T: Serialize>(batch: &[T], buf: &mut Vec<u8>) -> Result<()> {
    for record in batch {
        serde_json::to_writer(&mut *buf, record)
            .map_err(|e| StreamError::external("json", "cannot serialize a record", e))?;
        buf.push(b'\n');
    }
    Ok(())
}

/// One parallel writer of a [`JsonLinesSink`]: encodes a batch without a lock, then appends it
/// in one locked write.
pub struct JsonLinesWriter<T> {
    out: Out,
    buf: Vec<u8>,
    _t: PhantomData<fn(T)>,
}

impl<T: Data + Serialize> SinkWriter<T> for JsonLinesWriter<T> {
    fn write_batch(&mut self, batch: Vec<T>) -> Result<()> {
        self.buf.clear();
        encode_json_lines(&batch, &mut self.buf)?;
        match &mut self.out {
            Out::Shared(file) => file.write(&self.buf),
            Out::Parts(parts) => parts.write(&self.buf),
        }
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<Vec<Vec<u8>>> {
        match &mut self.out {
            // At least once: what was written before the barrier reaches the OS.
            Out::Shared(file) => file.flush().map(|()| Vec::new()),
            Out::Parts(parts) => parts.pre_commit(checkpoint),
        }
    }

    fn close(&mut self) -> Result<()> {
        match &mut self.out {
            Out::Shared(file) => file.flush(),
            Out::Parts(_) => Ok(()),
        }
    }
}
