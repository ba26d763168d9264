//! Standard streams: [`StdinSource`] reads JSON lines from stdin, [`StdoutSink`] writes JSON
//! lines to stdout.

use crate::file::jsonl::encode_json_lines;
use line_queue::{bounded_lines, LineReceiver};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::Write;
use std::marker::PhantomData;
use std::sync::Arc;
use streamcore::event::{set_origin, Position, RecordOrigin};
use streamcore::{
    decode::from_json_str, Data, Event, Result, Sink, SinkWriter, Source, SourcePoll, SourceReader,
    StreamError, TaskContext, TaskInfo,
};

/// Reads JSON lines from standard input (one reader: stdin cannot be split). Lines are read
/// by a helper thread into a small bounded queue, so a cancelled job never waits on stdin.
pub struct StdinSource<T>(PhantomData<fn() -> T>);

impl<T> Default for StdinSource<T> {
    fn default() -> Self {
        StdinSource(PhantomData)
    }
}

impl StdinSource<Event> {
    /// [`Event`]s from this process's stdin, one JSON object per line; each knows its line
    /// ([`Event::origin`]). For records of your own type use [`StdinSource::typed`].
    pub fn new() -> Self {
        Self::default()
    }
}

impl<T> StdinSource<T> {
    /// Records of type `T` (any `serde::Deserialize`) from this process's stdin.
    pub fn typed() -> Self {
        Self::default()
    }
}

impl<T: Data + DeserializeOwned> Source<T> for StdinSource<T> {
    type Reader = StdinReader<T>;

    fn parallelism(&self, _job_parallelism: usize) -> usize {
        1
    }

    fn create_readers(&mut self, _parallelism: usize) -> Result<Vec<Self::Reader>> {
        let lines = bounded_lines(Box::new(std::io::BufReader::new(std::io::stdin())))?;
        Ok(vec![StdinReader {
            lines,
            line: 0,
            input: Arc::from("stdin"),
            _t: PhantomData,
        }])
    }
}

/// The reader of a [`StdinSource`].
pub struct StdinReader<T> {
    lines: LineReceiver,
    line: u64,
    /// `stdin`, as records name their origin.
    input: Arc<str>,
    _t: PhantomData<fn() -> T>,
}

impl<T: Data + DeserializeOwned> SourceReader<T> for StdinReader<T> {
    fn poll_batch(
        &mut self,
        out: &mut Vec<T>,
        max: usize,
        ctx: &mut TaskContext,
    ) -> Result<SourcePoll> {
        while out.len() < max {
            let text = match self.lines.try_next() {
                Some(Ok(text)) => text,
                Some(Err(e)) => return Err(StreamError::io("reading stdin", e)),
                None if self.lines.is_finished() => return Ok(SourcePoll::Finished),
                None => {
                    return Ok(if out.is_empty() {
                        SourcePoll::Idle
                    } else {
                        SourcePoll::Ready
                    })
                }
            };
            self.line += 1;
            if text.trim().is_empty() {
                continue;
            }
            match from_json_str::<T>(&text) {
                Ok(mut r) => {
                    set_origin(&mut r, || {
                        let position = Position::Line {
                            line: self.line,
                            byte_offset: None,
                        };
                        RecordOrigin::new(self.input.clone(), position)
                    });
                    out.push(r)
                }
                Err(e) => {
                    ctx.reject_input(format!("stdin line {}", self.line), &text, e.to_string())?
                }
            }
        }
        Ok(SourcePoll::Ready)
    }
}

/// A bounded queue of lines filled by a reader thread.
mod line_queue {
    use std::io::BufRead;
    use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};

    pub(super) struct LineReceiver {
        rx: Receiver<std::io::Result<String>>,
        finished: bool,
    }

    impl LineReceiver {
        pub(super) fn try_next(&mut self) -> Option<std::io::Result<String>> {
            match self.rx.try_recv() {
                Ok(line) => Some(line),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => {
                    self.finished = true;
                    None
                }
            }
        }
        pub(super) fn is_finished(&self) -> bool {
            self.finished
        }
    }

    pub(super) fn bounded_lines(
        mut input: Box<dyn BufRead + Send>,
    ) -> streamcore::Result<LineReceiver> {
        let (tx, rx) = sync_channel(4096);
        std::thread::Builder::new()
            .name("stdin-reader".into())
            .spawn(move || loop {
                let mut line = String::new();
                match input.read_line(&mut line) {
                    Ok(0) => return,
                    Ok(_) => {
                        while line.ends_with(['\n', '\r']) {
                            line.pop();
                        }
                        if tx.send(Ok(line)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            })
            .map_err(|e| streamcore::StreamError::io("starting the stdin reader", e))?;
        Ok(LineReceiver {
            rx,
            finished: false,
        })
    }
}

/// Writes JSON lines to standard output, a whole batch per lock of stdout.
#[derive(Clone, Default)]
pub struct StdoutSink<T>(PhantomData<fn(T)>);

impl<T> StdoutSink<T> {
    /// A sink to this process's stdout.
    pub fn new() -> Self {
        StdoutSink(PhantomData)
    }
}

impl<T: Data + Serialize> Sink<T> for StdoutSink<T> {
    type Writer = StdoutWriter<T>;
    fn create_writer(&mut self, _task: &TaskInfo) -> Result<Self::Writer> {
        Ok(StdoutWriter {
            buf: Vec::with_capacity(64 << 10),
            _t: PhantomData,
        })
    }

    /// Takes changelogs: every change is a record here.
    fn accepts_updates(&self) -> bool {
        true
    }
}

/// One parallel writer of a [`StdoutSink`].
pub struct StdoutWriter<T> {
    buf: Vec<u8>,
    _t: PhantomData<fn(T)>,
}

impl<T: Data + Serialize> SinkWriter<T> for StdoutWriter<T> {
    fn write_batch(&mut self, batch: Vec<T>) -> Result<()> {
        self.buf.clear();
        encode_json_lines(&batch, &mut self.buf)?;
        std::io::stdout()
            .lock()
            .write_all(&self.buf)
            .map_err(|e| StreamError::io("writing stdout", e))
    }

    fn close(&mut self) -> Result<()> {
        std::io::stdout()
            .flush()
            .map_err(|e| StreamError::io("writing stdout", e))
    }
}
