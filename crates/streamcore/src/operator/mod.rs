//! The operator contract: [`Operator`], and [`Output`], the collector it emits into.
//!
//! An operator gets whole batches. The runtime calls its hooks in this order:
//! `open` once; then `process_batch` for each batch and `on_watermark` whenever the input
//! watermark advances, in the order they arrived; `close` at the end of the input.
//! Everything an operator emits is handed downstream when the hook returns, as one batch.

mod basic;
mod keyed;

pub(crate) use basic::{Filter, FlatMap, Inspect, Map, Process, TryFilter, TryMap};
pub(crate) use keyed::{KeyedAggregate, KeyedReduce};

use crate::checkpoint::{StateRestore, StateSnapshot};
use crate::context::TaskContext;
use crate::data::Data;
use crate::error::Result;
use crate::message::Control;
use crate::runtime::push::Push;
use crate::time::Timestamp;
use serde::Serialize;
use std::any::Any;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A stream operator: turns batches of `In` into records of `Out`.
///
/// One required method; every other hook has a default that suits stateless operators.
/// Operators are cloned once per parallel instance before the job starts.
///
/// ```
/// use streamcore::{Operator, Output, TaskContext, Result};
///
/// /// Emits the running count of records seen by this instance.
/// #[derive(Clone, Default)]
/// struct RunningCount(u64);
///
/// impl Operator for RunningCount {
///     type In = String;
///     type Out = u64;
///     fn process_batch(&mut self, batch: Vec<String>, _ctx: &mut TaskContext, out: &mut Output<u64>) -> Result<()> {
///         for _ in batch {
///             self.0 += 1;
///             out.emit(self.0);
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Operator: Send + 'static {
    /// The input record type.
    type In: Data;
    /// The output record type.
    type Out: Data;

    /// Called once per instance before any data.
    fn open(&mut self, _ctx: &mut TaskContext) -> Result<()> {
        Ok(())
    }

    /// Called for every batch of input, in arrival order.
    fn process_batch(
        &mut self,
        batch: Vec<Self::In>,
        ctx: &mut TaskContext,
        out: &mut Output<Self::Out>,
    ) -> Result<()>;

    /// Called when the input watermark advances. Returns the watermark to forward downstream
    /// (`None` holds it back). The default forwards it unchanged.
    fn on_watermark(
        &mut self,
        watermark: Timestamp,
        _ctx: &mut TaskContext,
        _out: &mut Output<Self::Out>,
    ) -> Result<Option<Timestamp>> {
        Ok(Some(watermark))
    }

    /// Called every few milliseconds with the wall-clock time: fire processing-time timers,
    /// expire state. The default does nothing.
    fn on_processing_time(
        &mut self,
        _now: Timestamp,
        _ctx: &mut TaskContext,
        _out: &mut Output<Self::Out>,
    ) -> Result<()> {
        Ok(())
    }

    /// Called once at the end of the input, after the final watermark: emit what is pending.
    fn close(&mut self, _ctx: &mut TaskContext, _out: &mut Output<Self::Out>) -> Result<()> {
        Ok(())
    }

    /// Whether this operator can take part in checkpoints. A job with checkpoints refuses to
    /// start if one of its operators cannot. The default (`true`) suits stateless operators
    /// and those that implement [`Operator::snapshot_state`] and [`Operator::restore_state`].
    fn supports_checkpoints(&self) -> bool {
        true
    }

    /// Called when a checkpoint barrier reaches the operator: write everything it keeps
    /// across batches — keyed state per key group, other state as operator state — so that
    /// [`Operator::restore_state`] can rebuild it. Called between hooks, never during one.
    /// The default writes nothing: right for stateless operators only.
    fn snapshot_state(&mut self, _ctx: &mut TaskContext, _state: &mut StateSnapshot) -> Result<()> {
        Ok(())
    }

    /// Called after [`Operator::open`] when the job restores from a checkpoint, with the key
    /// groups this instance owns now and every old instance's operator state.
    fn restore_state(&mut self, _ctx: &mut TaskContext, _state: &StateRestore) -> Result<()> {
        Ok(())
    }
}

static NEXT_TAG_ID: AtomicU64 = AtomicU64::new(1);

/// Names a side output of type `U`: late events, rejected records, alerts.
///
/// ```
/// use streamcore::OutputTag;
/// let small = OutputTag::<i64>::new("small");
/// assert_eq!(small.name(), "small");
/// ```
pub struct OutputTag<U> {
    pub(crate) id: u64,
    name: Arc<str>,
    _type: PhantomData<fn() -> U>,
}

impl<U> OutputTag<U> {
    /// A new tag; each call makes a distinct tag.
    pub fn new(name: &str) -> Self {
        OutputTag {
            id: NEXT_TAG_ID.fetch_add(1, Ordering::Relaxed),
            name: Arc::from(name),
            _type: PhantomData,
        }
    }

    /// The tag's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<U> Clone for OutputTag<U> {
    fn clone(&self) -> Self {
        OutputTag {
            id: self.id,
            name: self.name.clone(),
            _type: PhantomData,
        }
    }
}

/// A side output port, type-erased so one operator can have several of different types.
pub(crate) trait SidePort: Send {
    fn as_any(&mut self) -> &mut dyn Any;
    fn open(&mut self) -> Result<()>;
    fn flush(&mut self) -> Result<()>;
    /// Flushes, then passes the control message on.
    fn control(&mut self, message: &Control) -> Result<()>;
}

pub(crate) struct TypedSide<U> {
    pub(crate) buf: Vec<U>,
    pub(crate) batch_size: usize,
    pub(crate) down: Box<dyn Push<U>>,
}

/// Hands `records` downstream in batches of at most `batch_size`.
fn push_in_batches<T>(down: &mut dyn Push<T>, records: Vec<T>, batch_size: usize) -> Result<()> {
    if records.len() <= batch_size {
        return down.push(records);
    }
    let mut records = records.into_iter();
    loop {
        let chunk: Vec<T> = records.by_ref().take(batch_size).collect();
        if chunk.is_empty() {
            return Ok(());
        }
        down.push(chunk)?;
    }
}

impl<U: Data> SidePort for TypedSide<U> {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
    fn open(&mut self) -> Result<()> {
        self.down.open()
    }
    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        push_in_batches(
            self.down.as_mut(),
            std::mem::take(&mut self.buf),
            self.batch_size,
        )
    }
    fn control(&mut self, message: &Control) -> Result<()> {
        self.flush()?;
        self.down.control(message)
    }
}

/// Where an operator emits: the main output and any side outputs.
///
/// Emitting is a push into a buffer; the runtime hands the buffer downstream as one batch
/// (cut to the job's batch size) after each hook returns.
pub struct Output<O> {
    buf: Vec<O>,
    batch_size: usize,
    down: Box<dyn Push<O>>,
    sides: Vec<(u64, Box<dyn SidePort>)>,
    side_discarded: u64,
    /// Records the user function rejected in this hook ([`Output::reject`]).
    rejections: Vec<Rejection>,
}

/// A record a user function rejected, rendered for the error or the dead letter.
pub(crate) struct Rejection {
    /// How errors name it ([`crate::context::describe_record`]).
    pub(crate) record: String,
    /// Its JSON form, for the dead letter.
    pub(crate) raw: String,
    /// Why.
    pub(crate) reason: String,
}

impl Rejection {
    pub(crate) fn of<R: Serialize + 'static>(record: &R, reason: String) -> Self {
        Rejection {
            record: crate::context::describe_record(record),
            raw: serde_json::to_string(record).unwrap_or_else(|e| format!("<unserializable: {e}>")),
            reason,
        }
    }
}

impl<O: Data> Output<O> {
    pub(crate) fn new(
        batch_size: usize,
        down: Box<dyn Push<O>>,
        sides: Vec<(u64, Box<dyn SidePort>)>,
    ) -> Self {
        Output {
            buf: Vec::new(),
            batch_size,
            down,
            sides,
            side_discarded: 0,
            rejections: Vec::new(),
        }
    }

    /// Rejects a record this user function cannot process; it follows the job's
    /// [`crate::ErrorPolicy`] once the function returns: under `fail` the job stops with an
    /// error naming the operator, the record (an `Event` by id and where it was read) and
    /// `reason`; under `dead-letter` the record goes to the dead-letter output with them, is
    /// counted, and the job goes on. For functions that cannot return an error — `process`,
    /// keyed and broadcast process functions, window `process`.
    ///
    /// ```
    /// use streamcore::{ErrorPolicy, Job, JobConfig};
    /// use streamcore::sink::CollectSink;
    /// let mut job = Job::new("parse");
    /// let (letters, rejected) = CollectSink::new();
    /// job.dead_letters(letters);
    /// let parsed = job
    ///     .from_vec("lines", vec!["1".to_string(), "two".to_string(), "3".to_string()])
    ///     .process(|line: String, out| match line.parse::<u32>() {
    ///         Ok(n) => out.emit(n),
    ///         Err(e) => out.reject(&line, e),
    ///     })
    ///     .collect();
    /// job.run(JobConfig::default().error_policy(ErrorPolicy::DeadLetter)).unwrap();
    /// assert_eq!(parsed.take(), vec![1, 3]);
    /// assert_eq!(rejected.take()[0].reason, "invalid digit found in string");
    /// ```
    pub fn reject<R: Serialize + 'static>(&mut self, record: &R, reason: impl std::fmt::Display) {
        self.rejections
            .push(Rejection::of(record, reason.to_string()));
    }

    pub(crate) fn take_rejections(&mut self) -> Vec<Rejection> {
        std::mem::take(&mut self.rejections)
    }

    /// Emits one record to the main output.
    #[inline]
    pub fn emit(&mut self, record: O) {
        if self.buf.capacity() == 0 {
            self.buf.reserve(self.batch_size);
        }
        self.buf.push(record);
    }

    /// Emits a whole batch to the main output; free when nothing else was emitted first.
    pub fn emit_batch(&mut self, mut batch: Vec<O>) {
        if self.buf.is_empty() {
            std::mem::swap(&mut self.buf, &mut batch);
        } else {
            self.buf.append(&mut batch);
        }
    }

    /// Emits one record to the side output `tag`. If nobody consumes that side output the
    /// record is discarded and counted in the operator's `side_output_discarded` metric.
    pub fn side<U: Data>(&mut self, tag: &OutputTag<U>, record: U) {
        match self.sides.iter_mut().find(|(id, _)| *id == tag.id) {
            Some((_, port)) => port
                .as_any()
                .downcast_mut::<TypedSide<U>>()
                .expect("side output type matches its tag")
                .buf
                .push(record),
            None => self.side_discarded += 1,
        }
    }

    /// Records waiting in the main output buffer.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn take_side_discarded(&mut self) -> u64 {
        std::mem::take(&mut self.side_discarded)
    }

    /// Hands everything emitted so far downstream, in batches of at most `batch_size`.
    pub(crate) fn flush(&mut self) -> Result<()> {
        for (_, side) in &mut self.sides {
            side.flush()?;
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        push_in_batches(
            self.down.as_mut(),
            std::mem::take(&mut self.buf),
            self.batch_size,
        )
    }

    pub(crate) fn open(&mut self) -> Result<()> {
        for (_, side) in &mut self.sides {
            side.open()?;
        }
        self.down.open()
    }

    /// Hands everything emitted so far downstream, then the control message, to the main
    /// output and every side output.
    pub(crate) fn control(&mut self, message: &Control) -> Result<()> {
        self.flush()?;
        for (_, side) in &mut self.sides {
            side.control(message)?;
        }
        self.down.control(message)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! An `Output` that collects into a shared vector, for operator unit tests.
    use super::*;
    use std::sync::Mutex;

    pub(crate) struct Collect<T>(pub(crate) Arc<Mutex<Vec<T>>>);
    impl<T: Data> Push<T> for Collect<T> {
        fn push(&mut self, batch: Vec<T>) -> Result<()> {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
        fn control(&mut self, _message: &Control) -> Result<()> {
            Ok(())
        }
    }

    /// Runs `op` over `batches` and returns everything it emitted, closing at the end.
    pub(crate) fn run_operator<Op: Operator>(
        mut op: Op,
        batches: Vec<Vec<Op::In>>,
    ) -> Result<Vec<Op::Out>> {
        let sink = Arc::new(Mutex::new(Vec::new()));
        let mut out = Output::new(4, Box::new(Collect(sink.clone())), Vec::new());
        let mut ctx = TaskContext::for_test("op");
        op.open(&mut ctx)?;
        for b in batches {
            op.process_batch(b, &mut ctx, &mut out)?;
            out.flush()?;
        }
        op.close(&mut ctx, &mut out)?;
        out.control(&Control::End)?;
        let v = std::mem::take(&mut *sink.lock().unwrap());
        Ok(v)
    }
}
