//! What a running task knows about itself ([`TaskInfo`]), the error policy, and the
//! dead-letter output where rejected records go ([`DeadLetter`]).

use crate::error::{Result, StreamError};
use crate::event::Event;
use crate::sink::SinkWriter;
use crate::time::Timestamp;
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How error messages and dead letters name a record: an [`Event`] by its id and, when a
/// connector read it, where ("event `e7` from events.jsonl line 7 (byte offset 412)"); a
/// [`Row`](crate::row::Row) (or a change of one) by its values as SQL prints them, strings
/// quoted as SQL literals (`row [2, 'x', NULL]`, `row -U[2, 'it''s', NULL]`); any other
/// record by its JSON form.
/// Cut after 200 characters.
///
/// Only called on the error path: nothing is rendered for records that succeed.
///
/// ```
/// use streamcore::context::describe_record;
/// use streamcore::row::{Row, Scalar};
/// assert_eq!(describe_record(&(1, "a")), "record [1,\"a\"]");
/// let row = Row::new(vec![Scalar::Int(2), Scalar::str("x"), Scalar::Null]);
/// assert_eq!(describe_record(&row), "row [2, 'x', NULL]");
/// ```
pub fn describe_record<T: Serialize + 'static>(record: &T) -> String {
    const MAX_CHARS: usize = 200;
    let cut = |text: String| match text.char_indices().nth(MAX_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    };
    let any = record as &dyn Any;
    if let Some(row) = any.downcast_ref::<crate::row::Row>() {
        return cut(format!("row {}", row_text(&row.values)));
    }
    if let Some(change) = any.downcast_ref::<crate::changelog::Change<crate::row::Row>>() {
        let (kind, row) = (change.kind().short(), change.row());
        return cut(format!("row {kind}{}", row_text(&row.values)));
    }
    if let Some(event) = (record as &dyn Any).downcast_ref::<Event>() {
        let kafka = |name: &str| {
            event.metadata.get(name).map(|v| match v {
                Value::Str(s) => s.to_string(),
                other => serde_json::to_string(other).unwrap_or_default(),
            })
        };
        return match (&event.origin, kafka("kafka_topic")) {
            (Some(origin), _) => format!("event `{}` from {origin}", event.event_id),
            // The Kafka source writes the record's position into the metadata.
            (None, Some(topic)) => format!(
                "event `{}` from kafka {}/{}@{}",
                event.event_id,
                topic,
                kafka("kafka_partition").unwrap_or_default(),
                kafka("kafka_offset").unwrap_or_default()
            ),
            (None, None) => format!("event `{}`", event.event_id),
        };
    }
    match serde_json::to_string(record) {
        Ok(json) => cut(format!("record {json}")),
        Err(_) => format!("a record of type {}", std::any::type_name::<T>()),
    }
}

/// A row's values as SQL literals: `[2, 'x', NULL]`.
fn row_text(values: &[crate::row::Scalar]) -> String {
    let values: Vec<String> = values.iter().map(crate::row::Scalar::to_literal).collect();
    format!("[{}]", values.join(", "))
}

/// Identifies one parallel instance of an operator, source or sink.
#[derive(Clone, Debug)]
pub struct TaskInfo {
    /// The job's name.
    pub job: Arc<str>,
    /// The operator's, source's or sink's name (for metrics, logs and errors).
    pub name: Arc<str>,
    /// Its state identity: what checkpoints and key-group changes name its state by (the id
    /// set with `Stream::uid`, else the name; see docs/checkpoints.md).
    pub id: Arc<str>,
    /// This instance's index, `0..parallelism`.
    pub subtask: usize,
    /// How many parallel instances there are.
    pub parallelism: usize,
    /// The job's number of key groups (see [`crate::state`]).
    pub key_groups: u32,
    /// Whether the job runs with checkpoints (exactly-once sinks then write transactionally).
    pub checkpointing: bool,
}

/// What happens to a record that cannot be decoded or makes a user function fail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorPolicy {
    /// Stop the job with an error naming the record's origin and the reason (the default).
    #[default]
    Fail,
    /// Send the raw record and the reason to the job's dead-letter sink, count it, go on.
    DeadLetter,
}

impl fmt::Display for ErrorPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorPolicy::Fail => "fail",
            ErrorPolicy::DeadLetter => "dead-letter",
        })
    }
}

impl std::str::FromStr for ErrorPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fail" => Ok(ErrorPolicy::Fail),
            "dead-letter" => Ok(ErrorPolicy::DeadLetter),
            other => Err(format!(
                "unknown error policy `{other}` (expected `fail` or `dead-letter`)"
            )),
        }
    }
}

/// A rejected record, as written to the dead-letter sink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Where it came from: source and position, or the operator that rejected it.
    pub origin: String,
    /// The record as it was: the input line, or the record's JSON form.
    pub raw: String,
    /// Why it was rejected.
    pub reason: String,
    /// Wall-clock time of the rejection.
    pub rejected_at: Timestamp,
}

/// The job's dead-letter output: one writer shared by all tasks (rejections are rare, so a
/// lock per rejected record is off the hot path).
pub(crate) struct DeadLetterQueue {
    writer: Mutex<Box<dyn SinkWriter<DeadLetter>>>,
    count: Arc<AtomicU64>,
}

impl DeadLetterQueue {
    pub(crate) fn new(writer: Box<dyn SinkWriter<DeadLetter>>, count: Arc<AtomicU64>) -> Self {
        DeadLetterQueue {
            writer: Mutex::new(writer),
            count,
        }
    }

    fn send(&self, letter: DeadLetter) -> Result<()> {
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| StreamError::Internal("dead-letter writer poisoned".into()))?;
        writer.write_batch(vec![letter])?;
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn close(&self) -> Result<()> {
        match self.writer.lock() {
            Ok(mut w) => w.close(),
            Err(_) => Err(StreamError::Internal("dead-letter writer poisoned".into())),
        }
    }
}

/// Handed to operators, source readers and sinks: who they are, and how to reject a record.
pub struct TaskContext {
    pub(crate) info: TaskInfo,
    pub(crate) policy: ErrorPolicy,
    pub(crate) dead_letters: Option<Arc<DeadLetterQueue>>,
    pub(crate) rejected: u64,
    pub(crate) finished_splits: Vec<u64>,
    pub(crate) stats: OperatorStats,
    pub(crate) hub: Option<Arc<crate::checkpoint::coordinator::CheckpointHub>>,
    /// Key-group changes a source asked for, sent down its chain after its poll.
    pub(crate) key_group_changes: Vec<Arc<crate::state::KeyGroupChange>>,
    /// This instance's metrics, where operators register their own counters and gauges.
    pub(crate) metrics: Arc<crate::metrics::OperatorMetrics>,
    /// The job's state backend (`None` in unit tests: in memory).
    pub(crate) state_backend: Option<Arc<crate::state::StateBackend>>,
    /// Set while the operator snapshots for a checkpoint (not for a key-group change).
    pub(crate) snapshot_target: Option<SnapshotTarget>,
    /// Records a source reader dropped by a filter pushed into it, since its last poll: how
    /// many, and the highest event time among them (see [`TaskContext::filtered_at_source`]).
    pub(crate) source_filtered: (u64, Timestamp),
}

/// The checkpoint an operator is snapshotting for: what incremental checkpoints chain on.
#[derive(Clone, Debug)]
pub(crate) struct SnapshotTarget {
    /// Its id.
    pub(crate) id: u64,
    /// Its name in the storage (`chk-000007`).
    pub(crate) name: String,
    /// The newest checkpoint complete so far: only those may be chained on.
    pub(crate) completed: u64,
}

/// What stateful operators report about themselves, published to the metrics per batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OperatorStats {
    /// Window results emitted so far.
    pub windows_fired: u64,
    /// Late records (past allowed lateness) so far.
    pub late_records: u64,
    /// Of those, sent to a late side output.
    pub late_redirected: u64,
    /// Keys (or key-window pairs) held in state now.
    pub state_keys: u64,
    /// Estimated bytes of state now.
    pub state_bytes: u64,
    /// The earliest window `[start, end)` held that has not fired yet (what the operator waits
    /// for the watermark to reach), for the watermark debugger.
    pub pending_window: Option<(crate::Timestamp, crate::Timestamp)>,
}

impl TaskContext {
    pub(crate) fn new(
        info: TaskInfo,
        policy: ErrorPolicy,
        dead_letters: Option<Arc<DeadLetterQueue>>,
    ) -> Self {
        TaskContext {
            info,
            policy,
            dead_letters,
            rejected: 0,
            finished_splits: Vec::new(),
            stats: OperatorStats::default(),
            hub: None,
            key_group_changes: Vec::new(),
            metrics: Arc::default(),
            state_backend: None,
            snapshot_target: None,
            source_filtered: (0, Timestamp::MIN),
        }
    }

    /// A source reader read a record and dropped it by a filter pushed into the reader (the
    /// SQL planner's scan of a `WHERE`): the record counts as ingested and filtered in the
    /// metrics, as if the filter ran after the source, and its event time `time` still
    /// advances the source's watermark (`Timestamp::MIN` for a record without one).
    #[inline]
    pub fn filtered_at_source(&mut self, time: Timestamp) {
        self.source_filtered.0 += 1;
        self.source_filtered.1 = self.source_filtered.1.max(time);
    }

    /// A context for unit tests of operators and readers: policy `fail`, subtask 0 of 1.
    pub fn for_test(name: &str) -> Self {
        let info = TaskInfo {
            job: Arc::from("test"),
            name: Arc::from(name),
            id: Arc::from(name),
            subtask: 0,
            parallelism: 1,
            key_groups: crate::state::DEFAULT_KEY_GROUPS,
            checkpointing: false,
        };
        TaskContext::new(info, ErrorPolicy::Fail, None)
    }

    /// Who this task is.
    pub fn info(&self) -> &TaskInfo {
        &self.info
    }

    /// The error policy in force.
    pub fn policy(&self) -> ErrorPolicy {
        self.policy
    }

    /// Records rejected by this task so far.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// The operator's statistics, for stateful operators to update (windows fired, late
    /// records, state size); the runtime publishes them as metrics after every hook.
    pub fn stats(&mut self) -> &mut OperatorStats {
        &mut self.stats
    }

    /// A counter of this operator instance named `name`, in the job's metrics (summed over the
    /// instances in [`crate::metrics::OperatorSummary::metrics`], live through
    /// [`crate::JobHandle::metrics`]). Register it in `open` and keep the handle: adding is a
    /// relaxed atomic add. Asking again for the same name gives the same counter.
    ///
    /// ```
    /// use streamcore::{Operator, Output, Result, TaskContext};
    /// use streamcore::metrics::Counter;
    ///
    /// /// Passes numbers on, counting the negative ones.
    /// #[derive(Clone, Default)]
    /// struct CountNegatives(Option<Counter>);
    ///
    /// impl Operator for CountNegatives {
    ///     type In = i64;
    ///     type Out = i64;
    ///     fn open(&mut self, ctx: &mut TaskContext) -> Result<()> {
    ///         self.0 = Some(ctx.counter("negatives"));
    ///         Ok(())
    ///     }
    ///     fn process_batch(&mut self, batch: Vec<i64>, _: &mut TaskContext, out: &mut Output<i64>) -> Result<()> {
    ///         let negatives = batch.iter().filter(|n| **n < 0).count();
    ///         if let Some(c) = &self.0 { c.add(negatives as u64) }
    ///         out.emit_batch(batch);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let mut job = streamcore::Job::new("negatives");
    /// job.from_vec("n", vec![-1i64, 2, -3])
    ///     .apply("count_negatives", CountNegatives::default())
    ///     .name("count_negatives")
    ///     .collect();
    /// let summary = job.run(streamcore::JobConfig::default().parallelism(1)).unwrap();
    /// let op = summary.operators.iter().find(|o| o.name == "count_negatives").unwrap();
    /// assert_eq!(op.metrics["negatives"], 2);
    /// ```
    pub fn counter(&self, name: &str) -> crate::metrics::Counter {
        self.metrics.counter(name)
    }

    /// A gauge of this operator instance named `name` (a value set now and then: a buffer's
    /// length, a cache's size), in the job's metrics like [`TaskContext::counter`].
    pub fn gauge(&self, name: &str) -> crate::metrics::Gauge {
        self.metrics.gauge(name)
    }

    /// Asks the job for a checkpoint now instead of at its next interval (a source that must
    /// hand its input over, say, on a Kafka rebalance). Returns the id of the first checkpoint
    /// that covers everything this task emitted before asking — wait for
    /// [`TaskContext::completed_checkpoint`] to reach it — or `None` without checkpoints.
    pub fn request_checkpoint(&self) -> Option<crate::message::CheckpointId> {
        self.hub.as_ref().map(|h| h.request())
    }

    /// The newest checkpoint that is complete and whose output is committed (0: none yet).
    pub fn completed_checkpoint(&self) -> crate::message::CheckpointId {
        self.hub.as_ref().map_or(0, |h| h.completed())
    }

    /// Where [`TaskContext::completed_checkpoint`] was written (`None` before the first): a
    /// directory, or an object-store URL.
    pub fn completed_checkpoint_location(&self) -> Option<crate::checkpoint::CheckpointLocation> {
        self.hub.as_ref().and_then(|h| h.completed_location())
    }

    /// [`TaskContext::completed_checkpoint`] read back from the job's checkpoint storage
    /// (local or object store), verified; `None` before the first.
    pub fn load_completed_checkpoint(
        &self,
    ) -> crate::Result<Option<crate::checkpoint::LoadedCheckpoint>> {
        match &self.hub {
            Some(h) => h.load_completed(),
            None => Ok(None),
        }
    }

    /// A source moves key groups into or out of the running job (see
    /// [`crate::state::KeyGroupChange`]): the change goes down the source's chain, and across
    /// exchanges, ahead of the records the source emits after this call. Only sources can ask,
    /// in a job with checkpoints.
    ///
    /// Release key groups only once everything emitted for them is processed — after a
    /// completed checkpoint taken since the source stopped emitting their keys, as the Kafka
    /// source does: a receiver applies the first copy of a change it gets, and records of
    /// released keys still in flight on another path would otherwise recreate their state.
    pub fn change_key_groups(&mut self, change: crate::state::KeyGroupChange) {
        self.key_group_changes.push(Arc::new(change));
    }

    /// A source reader tells that it read the last record of `split`: the split no longer
    /// holds the watermark back.
    pub fn split_finished(&mut self, split: u64) {
        self.finished_splits.push(split);
    }

    /// Rejects an input record that could not be decoded. Under policy `fail` this returns
    /// [`StreamError::BadInput`] (return it to stop the job); under `dead-letter` the record goes
    /// to the dead-letter sink and this returns `Ok`.
    ///
    /// `origin` names the source and the position (file and line/offset); `raw` is the input.
    pub fn reject_input(&mut self, origin: String, raw: &str, reason: String) -> Result<()> {
        self.rejected += 1;
        match self.policy {
            ErrorPolicy::Fail => Err(StreamError::BadInput { origin, reason }),
            ErrorPolicy::DeadLetter => self.send_dead_letter(origin, raw.to_string(), reason),
        }
    }

    /// Rejects a record that made a user function fail. Under `fail` this returns
    /// [`StreamError::UserFunction`] naming the operator and the record (see
    /// [`describe_record`]); under `dead-letter` the record goes to the dead-letter sink, its
    /// origin naming the operator and where the record was read.
    pub fn reject_record<T: Serialize + 'static>(
        &mut self,
        record: &T,
        reason: String,
    ) -> Result<()> {
        self.reject_rendered(crate::operator::Rejection::of(record, reason))
    }

    /// Applies the error policy to a rejection already rendered (see
    /// [`crate::Output::reject`]).
    pub(crate) fn reject_rendered(&mut self, rejection: crate::operator::Rejection) -> Result<()> {
        self.rejected += 1;
        match self.policy {
            ErrorPolicy::Fail => Err(StreamError::UserFunction {
                operator: self.info.name.to_string(),
                record: rejection.record,
                reason: rejection.reason,
            }),
            ErrorPolicy::DeadLetter => {
                let origin = format!("operator `{}` on {}", self.info.name, rejection.record);
                self.send_dead_letter(origin, rejection.raw, rejection.reason)
            }
        }
    }

    fn send_dead_letter(&self, origin: String, raw: String, reason: String) -> Result<()> {
        let queue = self.dead_letters.as_ref().ok_or_else(|| {
            StreamError::Config(
                "policy dead-letter needs a dead-letter sink (Job::dead_letters)".into(),
            )
        })?;
        queue.send(DeadLetter {
            origin,
            raw,
            reason,
            rejected_at: Timestamp::now(),
        })
    }
}
