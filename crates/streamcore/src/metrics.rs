//! Metrics: per operator instance counters ([`OperatorMetrics`]), per exchange queue fill
//! ([`ExchangeMetrics`]), and the job's [`JobSummary`].
//!
//! Counters are atomics updated once per batch by the task that owns them (relaxed adds on a
//! cache line no other task writes), so reading them live costs the hot path nothing.
//!
//! For operating a running job ([`MetricsReader::detail`]): the job graph ([`JobGraph`]),
//! per-subtask figures, the watermark of every exchange channel and source split with idle
//! flags, the earliest window each operator instance waits for, and the checkpoint history.
//! These are written on control messages (watermarks, idleness) and sampled state figures,
//! never per record.

use crate::time::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counters of one parallel instance of an operator, source or sink. Aligned to its own
/// cache lines so that instances on different threads never write to a shared line.
#[derive(Debug)]
#[repr(align(128))]
pub struct OperatorMetrics {
    pub(crate) records_in: AtomicU64,
    pub(crate) records_out: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) side_discarded: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) processing_ns: AtomicU64,
    pub(crate) watermark: AtomicI64,
    pub(crate) windows_fired: AtomicU64,
    pub(crate) late_records: AtomicU64,
    pub(crate) late_redirected: AtomicU64,
    pub(crate) state_keys: AtomicU64,
    pub(crate) state_bytes: AtomicU64,
    /// Key-group changes this instance applied (state hand-over), and the time they took.
    pub(crate) key_group_changes: AtomicU64,
    pub(crate) key_group_change_ns: AtomicU64,
    /// Counters and gauges the operator registered itself ([`crate::TaskContext::counter`],
    /// [`crate::TaskContext::gauge`]); registered at `open`, read by the summary.
    pub(crate) custom: Mutex<Vec<(String, Arc<AtomicI64>)>>,
    /// Wall-clock milliseconds when the watermark last changed (`i64::MIN`: never).
    pub(crate) watermark_since: AtomicI64,
    /// The instance's input is idle (a source whose splits are all idle, or an operator all
    /// of whose inputs are).
    pub(crate) idle: AtomicBool,
    /// The earliest window (start, end) this instance holds that has not fired: what it waits
    /// for the watermark to reach (`i64::MIN`: none).
    pub(crate) pending_window_start: AtomicI64,
    pub(crate) pending_window_end: AtomicI64,
    /// Sources: the watermark of each split the reader reads, and the idle timeout in force.
    /// Published by the reader's task a few times a second (never per record).
    pub(crate) splits: Mutex<SplitsReport>,
}

/// What a source reader last published about its splits.
#[derive(Clone, Debug, Default)]
pub(crate) struct SplitsReport {
    pub(crate) idle_timeout_ms: Option<u64>,
    pub(crate) splits: Vec<SplitStatus>,
    /// The reader generates watermarks at all.
    pub(crate) generates_watermarks: bool,
}

/// The watermark of one source split, as its reader's watermark generator sees it.
#[derive(Clone, Debug, Serialize)]
pub struct SplitStatus {
    /// The split's id (a partition, a file part, a generator progression).
    pub split: u64,
    /// What the split alone allows the watermark to be (`None` before its first record).
    pub watermark: Option<Timestamp>,
    /// Past the idle timeout: the split no longer holds the watermark back.
    pub idle: bool,
    /// Milliseconds since the split's last record (or since it was announced).
    pub last_record_ago_ms: u64,
}

/// A shared read of a job's metrics ([`crate::JobHandle::metrics_reader`]): cloneable, sent
/// to any thread, valid after the job ended. Reading takes a snapshot of relaxed atomics; the
/// only locks it takes are the registries of operators' own counters (which tasks touch only
/// when they register one, at `open`) and the checkpoint summary's texts — never a lock on the
/// path of records.
#[derive(Clone)]
pub struct MetricsReader(pub(crate) Arc<MetricsRegistry>);

impl MetricsReader {
    /// The job's metrics now (final once the job ended).
    pub fn summary(&self) -> JobSummary {
        self.0.summary()
    }
}

impl fmt::Debug for MetricsReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MetricsReader").field(&self.0.job).finish()
    }
}

/// A counter an operator registered ([`crate::TaskContext::counter`]): a relaxed atomic add,
/// read live by the job's metrics.
#[derive(Clone, Debug)]
pub struct Counter(Arc<AtomicI64>);

impl Counter {
    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n as i64, Relaxed);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1)
    }

    /// The value now.
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed) as u64
    }
}

/// A gauge an operator registered ([`crate::TaskContext::gauge`]): a value set now and then
/// (a queue length, a cache size), read live by the job's metrics. The job's summary sums an
/// operator's instances.
#[derive(Clone, Debug)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Relaxed);
    }

    /// The value now.
    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

impl OperatorMetrics {
    /// The metric `name` of this instance, registered on first use.
    fn custom_cell(&self, name: &str) -> Arc<AtomicI64> {
        let mut custom = self.custom.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, cell)) = custom.iter().find(|(n, _)| n == name) {
            return cell.clone();
        }
        let cell = Arc::new(AtomicI64::new(0));
        custom.push((name.to_string(), cell.clone()));
        cell
    }

    pub(crate) fn counter(&self, name: &str) -> Counter {
        Counter(self.custom_cell(name))
    }

    pub(crate) fn gauge(&self, name: &str) -> Gauge {
        Gauge(self.custom_cell(name))
    }
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        OperatorMetrics {
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            side_discarded: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            processing_ns: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
            windows_fired: AtomicU64::new(0),
            late_records: AtomicU64::new(0),
            late_redirected: AtomicU64::new(0),
            state_keys: AtomicU64::new(0),
            state_bytes: AtomicU64::new(0),
            key_group_changes: AtomicU64::new(0),
            key_group_change_ns: AtomicU64::new(0),
            custom: Mutex::new(Vec::new()),
            watermark_since: AtomicI64::new(i64::MIN),
            idle: AtomicBool::new(false),
            pending_window_start: AtomicI64::new(i64::MIN),
            pending_window_end: AtomicI64::new(i64::MIN),
            splits: Mutex::new(SplitsReport::default()),
        }
    }
}

impl OperatorMetrics {
    /// Publishes an operator's own statistics (all monotone counters or current gauges).
    pub(crate) fn publish_stats(&self, s: &crate::context::OperatorStats) {
        self.windows_fired.store(s.windows_fired, Relaxed);
        self.late_records.store(s.late_records, Relaxed);
        self.late_redirected.store(s.late_redirected, Relaxed);
        self.state_keys.store(s.state_keys, Relaxed);
        self.state_bytes.store(s.state_bytes, Relaxed);
        let (start, end) = s
            .pending_window
            .map_or((i64::MIN, i64::MIN), |(a, b)| (a.millis(), b.millis()));
        self.pending_window_start.store(start, Relaxed);
        self.pending_window_end.store(end, Relaxed);
    }

    /// Records a new watermark of this instance (on control messages, not per record).
    pub(crate) fn set_watermark(&self, wm: Timestamp) {
        let before = self.watermark.swap(wm.millis(), Relaxed);
        if before != wm.millis() {
            self.watermark_since
                .store(Timestamp::now().millis(), Relaxed);
        }
        self.idle.store(false, Relaxed);
    }

    /// Publishes a source reader's split watermarks.
    pub(crate) fn publish_splits(&self, report: SplitsReport) {
        *self.splits.lock().unwrap_or_else(|p| p.into_inner()) = report;
    }

    /// Adds one batch's figures.
    #[inline]
    pub(crate) fn record_batch(&self, records_in: usize, records_out: usize, elapsed: Duration) {
        self.records_in.fetch_add(records_in as u64, Relaxed);
        self.records_out.fetch_add(records_out as u64, Relaxed);
        self.batches.fetch_add(1, Relaxed);
        self.processing_ns
            .fetch_add(elapsed.as_nanos() as u64, Relaxed);
    }
}

/// Queue fill of one exchange (all its channels together), sampled at every batch sent; and
/// the watermark of each channel (sender, receiver), written by the receiver on watermark,
/// idle and end messages.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct ExchangeMetrics {
    pub(crate) batches_sent: AtomicU64,
    pub(crate) records_sent: AtomicU64,
    pub(crate) fill_sum: AtomicU64,
    pub(crate) fill_max: AtomicU64,
    pub(crate) blocked_ns: AtomicU64,
    /// `receiver * senders + sender`.
    pub(crate) channels: Vec<ChannelCell>,
    pub(crate) senders: usize,
}

impl ExchangeMetrics {
    /// Counts a batch of `records` sent.
    #[inline]
    pub(crate) fn sent(&self, records: usize) {
        self.batches_sent.fetch_add(1, Relaxed);
        self.records_sent.fetch_add(records as u64, Relaxed);
    }
}

/// The watermark one receiving task last got from one sender.
#[derive(Debug)]
pub(crate) struct ChannelCell {
    watermark: AtomicI64,
    since: AtomicI64,
    idle: AtomicBool,
    ended: AtomicBool,
}

impl Default for ChannelCell {
    fn default() -> Self {
        ChannelCell {
            watermark: AtomicI64::new(i64::MIN),
            since: AtomicI64::new(i64::MIN),
            idle: AtomicBool::new(false),
            ended: AtomicBool::new(false),
        }
    }
}

/// What a control message said about one exchange channel.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ChannelEvent {
    Watermark(Timestamp),
    Idle,
    End,
}

impl ExchangeMetrics {
    /// Records what sender `from` told receiver `to`.
    pub(crate) fn channel(&self, to: usize, from: usize, event: ChannelEvent) {
        let Some(cell) = self.channels.get(to * self.senders + from) else {
            return;
        };
        let now = Timestamp::now().millis();
        match event {
            ChannelEvent::Watermark(wm) => {
                let before = cell.watermark.fetch_max(wm.millis(), Relaxed);
                if before < wm.millis() || cell.idle.load(Relaxed) {
                    cell.since.store(now, Relaxed);
                }
                cell.idle.store(false, Relaxed);
            }
            ChannelEvent::Idle => {
                if !cell.idle.swap(true, Relaxed) {
                    cell.since.store(now, Relaxed);
                }
            }
            ChannelEvent::End => {
                cell.ended.store(true, Relaxed);
                cell.since.store(now, Relaxed);
            }
        }
    }
}

/// Limits how often an operator recomputes a costly (O(keys)) state-size figure: at most every
/// 50 ms, and whenever forced (at the end of the input, so final figures are exact).
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    last: Option<Instant>,
}

impl Sampler {
    pub(crate) fn due(&mut self, force: bool) -> bool {
        let now = Instant::now();
        if force
            || self
                .last
                .is_none_or(|l| now.duration_since(l) >= Duration::from_millis(50))
        {
            self.last = Some(now);
            true
        } else {
            false
        }
    }
}

/// What kind of node an operator entry is; decides which job totals it feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A source: what it read counts as `events_ingested`; what a filter pushed into it
    /// dropped (read but not output) as `events_filtered`.
    Source,
    /// A filter: records in minus out count as `events_filtered`.
    Filter,
    /// Any other operator.
    Operator,
    /// A sink: its input counts as `events_emitted`.
    Sink,
    /// The sending side of an exchange.
    Exchange,
}

pub(crate) struct OperatorEntry {
    pub(crate) name: String,
    /// The stable operator id (what checkpoints key its state by).
    pub(crate) id: String,
    /// The node's index in the job graph.
    pub(crate) node: usize,
    pub(crate) kind: NodeKind,
    pub(crate) instances: Vec<Arc<OperatorMetrics>>,
}

pub(crate) struct ExchangeEntry {
    pub(crate) name: String,
    pub(crate) capacity: usize,
    pub(crate) queues: usize,
    pub(crate) metrics: Arc<ExchangeMetrics>,
    /// Who sends on each channel: (upstream node index, subtask, stage), by sender index.
    pub(crate) senders: Vec<(usize, usize, usize)>,
    /// The stage the exchange feeds.
    pub(crate) downstream_stage: usize,
    /// Run in its senders' task, without queues ([`crate::JobConfig::fuse_single_exchanges`]).
    pub(crate) fused: bool,
}

/// A connector's own live metrics (a Kafka source's lag per partition, a sink's transactions),
/// reported by the source or sink through [`crate::Source::connector_metrics`] /
/// [`crate::Sink::connector_metrics`] and shown in the job's [`JobSummary::connectors`].
pub trait ConnectorMetrics: Send + Sync + 'static {
    /// A snapshot, as JSON: read whenever the job's summary is.
    fn report(&self) -> serde_json::Value;
}

/// All live metrics of a running job; [`MetricsRegistry::summary`] reads them at any time.
pub struct MetricsRegistry {
    pub(crate) job: String,
    pub(crate) started: Instant,
    pub(crate) operators: Mutex<Vec<OperatorEntry>>,
    pub(crate) exchanges: Mutex<Vec<ExchangeEntry>>,
    pub(crate) dead_letters: Arc<AtomicU64>,
    pub(crate) finished: Mutex<Option<Duration>>,
    pub(crate) checkpoints: Mutex<Option<Arc<CheckpointMetrics>>>,
    pub(crate) connectors: Mutex<Vec<(String, Arc<dyn ConnectorMetrics>)>>,
    /// The job graph, set when the job starts.
    pub(crate) graph: Mutex<Option<Arc<JobGraph>>>,
}

/// Checkpoint counters of a running job, written by its coordinator.
#[derive(Debug, Default)]
pub(crate) struct CheckpointMetrics {
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) last_id: AtomicU64,
    pub(crate) last_duration_us: AtomicU64,
    pub(crate) max_duration_us: AtomicU64,
    pub(crate) last_alignment_us: AtomicU64,
    pub(crate) last_bytes: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) last_upload_us: AtomicU64,
    pub(crate) max_upload_us: AtomicU64,
    pub(crate) last_location: Mutex<Option<String>>,
    pub(crate) restored_from: Mutex<Option<String>>,
    pub(crate) restore_ms: Mutex<Option<f64>>,
    pub(crate) state_restore_us: AtomicU64,
    pub(crate) dropped_state: AtomicU64,
    pub(crate) already_finished: std::sync::atomic::AtomicBool,
    pub(crate) stopped_with_savepoint: std::sync::atomic::AtomicBool,
    /// The last [`CHECKPOINT_HISTORY`] completed checkpoints and savepoints, oldest first.
    pub(crate) history: Mutex<std::collections::VecDeque<CheckpointRecord>>,
}

/// How many completed checkpoints the history keeps.
pub const CHECKPOINT_HISTORY: usize = 64;

/// One completed checkpoint or savepoint, in the job's checkpoint history.
#[derive(Clone, Debug, Serialize)]
pub struct CheckpointRecord {
    /// Its id.
    pub id: u64,
    /// `checkpoint` or `savepoint`.
    pub kind: &'static str,
    /// When it completed: wall-clock milliseconds since the Unix epoch.
    pub completed_at_ms: i64,
    /// Trigger-to-complete time.
    pub duration_ms: f64,
    /// The longest barrier alignment of a task.
    pub alignment_ms: f64,
    /// Bytes of state written.
    pub size_bytes: u64,
    /// Where it was written.
    pub location: String,
}

impl CheckpointMetrics {
    pub(crate) fn completed(
        &self,
        id: u64,
        duration: Duration,
        alignment: Duration,
        bytes: u64,
        location: &std::path::Path,
    ) {
        let us = duration.as_micros() as u64;
        self.completed.fetch_add(1, Relaxed);
        self.last_id.store(id, Relaxed);
        self.last_duration_us.store(us, Relaxed);
        self.max_duration_us.fetch_max(us, Relaxed);
        self.last_alignment_us
            .store(alignment.as_micros() as u64, Relaxed);
        self.last_bytes.store(bytes, Relaxed);
        *self.last_location.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(location.display().to_string());
        let savepoint = location
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("sp-"));
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if history.len() == CHECKPOINT_HISTORY {
            history.pop_front();
        }
        history.push_back(CheckpointRecord {
            id,
            kind: if savepoint { "savepoint" } else { "checkpoint" },
            completed_at_ms: Timestamp::now().millis(),
            duration_ms: us as f64 / 1e3,
            alignment_ms: alignment.as_secs_f64() * 1e3,
            size_bytes: bytes,
            location: location.display().to_string(),
        });
    }

    /// A checkpoint's files were written: `bytes` in `upload` (state files and manifest).
    pub(crate) fn written(&self, bytes: u64, upload: Duration) {
        let us = upload.as_micros() as u64;
        self.bytes_written.fetch_add(bytes, Relaxed);
        self.last_upload_us.store(us, Relaxed);
        self.max_upload_us.fetch_max(us, Relaxed);
    }

    pub(crate) fn summary(&self) -> CheckpointSummary {
        let lock = |m: &Mutex<Option<String>>| m.lock().unwrap_or_else(|p| p.into_inner()).clone();
        CheckpointSummary {
            completed: self.completed.load(Relaxed),
            failed: self.failed.load(Relaxed),
            last_id: Some(self.last_id.load(Relaxed)).filter(|&id| id > 0),
            last_duration_ms: self.last_duration_us.load(Relaxed) as f64 / 1e3,
            max_duration_ms: self.max_duration_us.load(Relaxed) as f64 / 1e3,
            last_alignment_ms: self.last_alignment_us.load(Relaxed) as f64 / 1e3,
            last_size_bytes: self.last_bytes.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            last_upload_ms: self.last_upload_us.load(Relaxed) as f64 / 1e3,
            max_upload_ms: self.max_upload_us.load(Relaxed) as f64 / 1e3,
            last_location: lock(&self.last_location),
            restored_from: lock(&self.restored_from),
            restore_ms: *self.restore_ms.lock().unwrap_or_else(|p| p.into_inner()),
            state_restore_ms: self.state_restore_us.load(Relaxed) as f64 / 1e3,
            dropped_state: self.dropped_state.load(Relaxed),
            already_finished: self.already_finished.load(Relaxed),
            stopped_with_savepoint: self.stopped_with_savepoint.load(Relaxed),
        }
    }
}

/// Checkpoint metrics of a job.
#[derive(Clone, Debug, Serialize)]
pub struct CheckpointSummary {
    /// Checkpoints (and savepoints) completed.
    pub completed: u64,
    /// Checkpoints that failed.
    pub failed: u64,
    /// Id of the last completed one.
    pub last_id: Option<u64>,
    /// Trigger-to-complete time of the last one.
    pub last_duration_ms: f64,
    /// The longest trigger-to-complete time.
    pub max_duration_ms: f64,
    /// The longest time a task spent aligning barriers in the last one.
    pub last_alignment_ms: f64,
    /// Bytes of state written by the last one.
    pub last_size_bytes: u64,
    /// Bytes of state written by all checkpoints of this run.
    pub bytes_written: u64,
    /// Time the last one took to write its files and manifest (to a directory or an object
    /// store), part of its trigger-to-complete time.
    pub last_upload_ms: f64,
    /// The longest such write.
    pub max_upload_ms: f64,
    /// Where the last one was written.
    pub last_location: Option<String>,
    /// The checkpoint this run restored from.
    pub restored_from: Option<String>,
    /// Time to load and verify the restored checkpoint.
    pub restore_ms: Option<f64>,
    /// The longest time an operator instance took to rebuild its state from it.
    pub state_restore_ms: f64,
    /// Operators of the restored checkpoint whose state was dropped because the job no longer
    /// has them (only with `allow_non_restored_state`).
    pub dropped_state: u64,
    /// The restored checkpoint was the final one of a finished job: nothing was run.
    pub already_finished: bool,
    /// The job stopped after a savepoint (`last_location`), without draining.
    pub stopped_with_savepoint: bool,
}

impl MetricsRegistry {
    pub(crate) fn new(job: &str) -> Self {
        MetricsRegistry {
            job: job.to_string(),
            started: Instant::now(),
            operators: Mutex::new(Vec::new()),
            exchanges: Mutex::new(Vec::new()),
            dead_letters: Arc::new(AtomicU64::new(0)),
            finished: Mutex::new(None),
            checkpoints: Mutex::new(None),
            connectors: Mutex::new(Vec::new()),
            graph: Mutex::new(None),
        }
    }

    pub(crate) fn register_operator(
        &self,
        name: &str,
        id: &str,
        node: usize,
        kind: NodeKind,
        parallelism: usize,
    ) -> Vec<Arc<OperatorMetrics>> {
        let instances: Vec<_> = (0..parallelism)
            .map(|_| Arc::new(OperatorMetrics::default()))
            .collect();
        self.operators
            .lock()
            .expect("metrics lock")
            .push(OperatorEntry {
                name: name.to_string(),
                id: id.to_string(),
                node,
                kind,
                instances: instances.clone(),
            });
        instances
    }

    pub(crate) fn register_exchange(
        &self,
        name: &str,
        capacity: usize,
        queues: usize,
        senders: Vec<(usize, usize, usize)>,
        downstream_stage: usize,
        fused: bool,
    ) -> Arc<ExchangeMetrics> {
        let metrics = Arc::new(ExchangeMetrics {
            channels: (0..queues * senders.len())
                .map(|_| ChannelCell::default())
                .collect(),
            senders: senders.len(),
            ..Default::default()
        });
        self.exchanges
            .lock()
            .expect("metrics lock")
            .push(ExchangeEntry {
                name: name.to_string(),
                capacity,
                queues,
                metrics: metrics.clone(),
                senders,
                downstream_stage,
                fused,
            });
        metrics
    }

    /// A consistent-enough snapshot of every counter (each counter is read once).
    pub fn summary(&self) -> JobSummary {
        let duration = self
            .finished
            .lock()
            .ok()
            .and_then(|f| *f)
            .unwrap_or_else(|| self.started.elapsed());
        let mut s = JobSummary {
            job: self.job.clone(),
            duration_ms: duration.as_secs_f64() * 1e3,
            events_ingested: 0,
            events_emitted: 0,
            events_filtered: 0,
            events_late: 0,
            events_failed: 0,
            events_dead_lettered: self.dead_letters.load(Relaxed),
            events_per_second: 0.0,
            operators: Vec::new(),
            exchanges: Vec::new(),
            checkpoints: self
                .checkpoints
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|c| c.summary()),
            connectors: self
                .connectors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(name, m)| ConnectorSummary {
                    name: name.clone(),
                    metrics: m.report(),
                })
                .collect(),
        };
        // Operators are registered upstream first; reading them downstream first keeps a live
        // snapshot consistent (a downstream count never exceeds the upstream one it came from).
        for e in self
            .operators
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
        {
            let sum =
                |f: fn(&OperatorMetrics) -> u64| e.instances.iter().map(|m| f(m)).sum::<u64>();
            // Read what went out before what came in: counters only grow and a batch's input
            // is counted before its output, so `out <= processed` holds for a filter even while
            // the job runs.
            let events_out = sum(|m| m.records_out.load(Relaxed));
            let events_processed = sum(|m| m.records_in.load(Relaxed));
            let op = OperatorSummary {
                name: e.name.clone(),
                kind: e.kind,
                parallelism: e.instances.len(),
                events_processed,
                events_out,
                events_failed: sum(|m| m.failed.load(Relaxed)),
                side_output_discarded: sum(|m| m.side_discarded.load(Relaxed)),
                processing_time_ms: sum(|m| m.processing_ns.load(Relaxed)) as f64 / 1e6,
                windows_fired: sum(|m| m.windows_fired.load(Relaxed)),
                late_records: sum(|m| m.late_records.load(Relaxed)),
                late_redirected: sum(|m| m.late_redirected.load(Relaxed)),
                state_keys: sum(|m| m.state_keys.load(Relaxed)),
                state_bytes: sum(|m| m.state_bytes.load(Relaxed)),
                key_group_changes: sum(|m| m.key_group_changes.load(Relaxed)),
                key_group_change_ms: sum(|m| m.key_group_change_ns.load(Relaxed)) as f64 / 1e6,
                watermark: e
                    .instances
                    .iter()
                    .map(|m| m.watermark.load(Relaxed))
                    .min()
                    .filter(|&w| w != i64::MIN)
                    .map(Timestamp),
                metrics: custom_metrics(&e.instances),
            };
            match e.kind {
                NodeKind::Source => {
                    // A source's input is what it read; a filter pushed into it drops some.
                    s.events_ingested += op.events_processed;
                    s.events_filtered += op.events_processed.saturating_sub(op.events_out);
                }
                NodeKind::Sink => s.events_emitted += op.events_processed,
                NodeKind::Filter => {
                    s.events_filtered += op.events_processed.saturating_sub(op.events_out)
                }
                _ => {}
            }
            s.events_failed += op.events_failed;
            s.events_late += op.late_records;
            s.operators.push(op);
        }
        s.operators.reverse();
        for e in self
            .exchanges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let m = &e.metrics;
            let batches = m.batches_sent.load(Relaxed);
            s.exchanges.push(ExchangeSummary {
                name: e.name.clone(),
                queues: e.queues,
                capacity_batches: e.capacity,
                batches_sent: batches,
                events_sent: m.records_sent.load(Relaxed),
                mean_fill: if batches == 0 {
                    0.0
                } else {
                    m.fill_sum.load(Relaxed) as f64 / batches as f64 / e.capacity as f64
                },
                max_fill: m.fill_max.load(Relaxed) as f64 / e.capacity as f64,
                blocked_ms: m.blocked_ns.load(Relaxed) as f64 / 1e6,
                fused: e.fused,
            });
        }
        s.events_per_second = if duration.is_zero() {
            0.0
        } else {
            s.events_ingested as f64 / duration.as_secs_f64()
        };
        s
    }
}

/// The metrics of a job: totals, then per operator and per exchange.
#[derive(Clone, Debug, Serialize)]
pub struct JobSummary {
    /// The job's name.
    pub job: String,
    /// Wall time from start to end (or to now, while running).
    pub duration_ms: f64,
    /// Records read by all sources.
    pub events_ingested: u64,
    /// Records written by all sinks.
    pub events_emitted: u64,
    /// Records dropped by filters (kept apart from failures).
    pub events_filtered: u64,
    /// Records that arrived too late for their windows (dropped or sent to a late output).
    pub events_late: u64,
    /// Records rejected (bad input or failing user function), whatever the policy.
    pub events_failed: u64,
    /// Records written to the dead-letter sink.
    pub events_dead_lettered: u64,
    /// `events_ingested` per second of wall time.
    pub events_per_second: f64,
    /// Per operator (sources and sinks included), summed over parallel instances.
    pub operators: Vec<OperatorSummary>,
    /// Per exchange.
    pub exchanges: Vec<ExchangeSummary>,
    /// Checkpoints, when the job runs with them.
    pub checkpoints: Option<CheckpointSummary>,
    /// Sources' and sinks' own metrics (Kafka lag, transactions, …).
    pub connectors: Vec<ConnectorSummary>,
}

/// The own metrics of one source or sink.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectorSummary {
    /// The source's or sink's name.
    pub name: String,
    /// What it reports.
    pub metrics: serde_json::Value,
}

/// Metrics of one operator, summed over its parallel instances.
#[derive(Clone, Debug, Serialize)]
pub struct OperatorSummary {
    /// The operator's name.
    pub name: String,
    /// What kind of node it is.
    pub kind: NodeKind,
    /// Parallel instances.
    pub parallelism: usize,
    /// Records in (for a source: records read).
    pub events_processed: u64,
    /// Records out on the main output.
    pub events_out: u64,
    /// Records rejected.
    pub events_failed: u64,
    /// Records emitted to a side output nobody consumes.
    pub side_output_discarded: u64,
    /// Time spent in this operator's own code, summed over instances.
    pub processing_time_ms: f64,
    /// Window results emitted (window operators).
    pub windows_fired: u64,
    /// Records that arrived after their windows expired (window operators).
    pub late_records: u64,
    /// Of the late records, those sent to a late side output (the rest were dropped).
    pub late_redirected: u64,
    /// Keys (or key-window pairs) in state now.
    pub state_keys: u64,
    /// Estimated bytes of state now.
    pub state_bytes: u64,
    /// The lowest current watermark over the instances, once one arrived. In JSON: float
    /// seconds, or `"end"` once the input ended (the final watermark).
    #[serde(serialize_with = "watermark_json")]
    pub watermark: Option<Timestamp>,
    /// Key-group changes applied, summed over instances (state moving in or out of the job:
    /// [`crate::state::KeyGroupChange`]).
    pub key_group_changes: u64,
    /// Time the instances spent applying them (snapshot, rebuild, restore).
    pub key_group_change_ms: f64,
    /// The operator's own counters and gauges ([`crate::TaskContext::counter`],
    /// [`crate::TaskContext::gauge`]) by name, summed over its instances.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, i64>,
}

/// Sums each registered metric over an operator's instances.
fn custom_metrics(instances: &[Arc<OperatorMetrics>]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for m in instances {
        for (name, cell) in m.custom.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            *out.entry(name.clone()).or_insert(0) += cell.load(Relaxed);
        }
    }
    out
}

/// A watermark in the JSON summary: float seconds, `"end"` for the final watermark (rather
/// than `9223372036854776.0`), `null` before the first.
fn watermark_json<S: serde::Serializer>(w: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match w {
        Some(Timestamp::MAX) => s.serialize_str("end"),
        Some(t) => s.serialize_some(t),
        None => s.serialize_none(),
    }
}

/// Backpressure of one exchange.
#[derive(Clone, Debug, Serialize)]
pub struct ExchangeSummary {
    /// `upstream -> downstream`.
    pub name: String,
    /// Number of receiving queues (the downstream parallelism).
    pub queues: usize,
    /// Capacity of each queue, in batches.
    pub capacity_batches: usize,
    /// Batches sent.
    pub batches_sent: u64,
    /// Events (records) sent. The summary counts records as `events_*` throughout.
    pub events_sent: u64,
    /// Mean fill of the target queue at each send, 0..1.
    pub mean_fill: f64,
    /// Highest fill seen, 0..1 (1 = the queue was full: backpressure).
    pub max_fill: f64,
    /// Time senders spent blocked on full queues.
    pub blocked_ms: f64,
    /// The exchange runs in its senders' task, called per batch: it has no queues (their fill
    /// and blocked time stay 0) — see [`crate::JobConfig::fuse_single_exchanges`].
    pub fused: bool,
}

impl fmt::Display for JobSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "job `{}` finished in {:.1} ms",
            self.job, self.duration_ms
        )?;
        writeln!(
            f,
            "  events_ingested={} events_emitted={} events_filtered={} events_failed={} events_dead_lettered={} events_late={} ({:.0} events/s)",
            self.events_ingested,
            self.events_emitted,
            self.events_filtered,
            self.events_failed,
            self.events_dead_lettered,
            self.events_late,
            self.events_per_second
        )?;
        writeln!(
            f,
            "  {:<24} {:>4} {:>11} {:>11} {:>7} {:>9} {:>7} {:>9} {:>10} {:>15}",
            "operator",
            "par",
            "processed",
            "out",
            "failed",
            "windows",
            "late",
            "keys",
            "time_ms",
            "watermark"
        )?;
        for op in &self.operators {
            let watermark = match op.watermark {
                Some(Timestamp::MAX) => "end".to_string(),
                Some(w) => w.to_string(),
                None => "-".to_string(),
            };
            writeln!(
                f,
                "  {:<24} {:>4} {:>11} {:>11} {:>7} {:>9} {:>7} {:>9} {:>10.2} {:>15}",
                op.name,
                op.parallelism,
                op.events_processed,
                op.events_out,
                op.events_failed,
                op.windows_fired,
                op.late_records,
                op.state_keys,
                op.processing_time_ms,
                watermark
            )?;
        }
        for ex in self.exchanges.iter().filter(|ex| ex.fused) {
            writeln!(
                f,
                "  exchange {}: fused into its senders' task (no queue), {} batches sent",
                ex.name, ex.batches_sent
            )?;
        }
        for ex in self.exchanges.iter().filter(|ex| !ex.fused) {
            writeln!(
                f,
                "  exchange {}: {} queues x {} batches, {} batches sent, fill mean {:.0}% max {:.0}%, blocked {:.1} ms",
                ex.name,
                ex.queues,
                ex.capacity_batches,
                ex.batches_sent,
                ex.mean_fill * 100.0,
                ex.max_fill * 100.0,
                ex.blocked_ms
            )?;
        }
        for c in &self.connectors {
            writeln!(f, "  {}: {}", c.name, c.metrics)?;
        }
        if let Some(c) = &self.checkpoints {
            if let Some(from) = &c.restored_from {
                writeln!(
                    f,
                    "  restored from {from} (loaded and verified in {:.1} ms)",
                    c.restore_ms.unwrap_or(0.0)
                )?;
            }
            writeln!(
                f,
                "  checkpoints: {} completed, {} failed, last id {} ({:.1} ms, alignment {:.1} ms, {} bytes written in {:.1} ms), longest {:.1} ms; {} bytes written in all",
                c.completed,
                c.failed,
                c.last_id.map_or("-".to_string(), |i| i.to_string()),
                c.last_duration_ms,
                c.last_alignment_ms,
                c.last_size_bytes,
                c.last_upload_ms,
                c.max_duration_ms,
                c.bytes_written
            )?;
        }
        Ok(())
    }
}

/// The shape of a running job: its operators and the edges between them, for an operator's
/// view (the HTTP API, the dashboard). Exchange ends are folded into the edges.
#[derive(Clone, Debug, Default, Serialize)]
pub struct JobGraph {
    /// Sources, operators and sinks, in the order they were added (upstream first).
    pub nodes: Vec<GraphNode>,
    /// Record flows between them.
    pub edges: Vec<GraphEdge>,
}

/// One source, operator or sink of a [`JobGraph`].
#[derive(Clone, Debug, Serialize)]
pub struct GraphNode {
    /// Index in the job's graph (edges refer to it).
    pub index: usize,
    /// Display name (as in the metrics).
    pub name: String,
    /// Stable operator id: what checkpoints key its state by (`Stream::uid` or generated).
    pub id: String,
    /// What kind of node it is.
    pub kind: NodeKind,
    /// Parallel instances.
    pub parallelism: usize,
    /// The stage it runs in: nodes of one stage are fused into one task per instance (a stage
    /// fused into its senders' task runs in theirs, [`crate::JobConfig::fuse_single_exchanges`]).
    pub stage: usize,
    /// `append` or `updating` (its main output is a changelog).
    pub changelog: &'static str,
    /// The schema of its output rows, when it has one (`Stream::with_schema`).
    pub schema: Option<String>,
}

/// A record flow of a [`JobGraph`].
#[derive(Clone, Debug, Serialize)]
pub struct GraphEdge {
    /// Upstream node index.
    pub from: usize,
    /// Downstream node index.
    pub to: usize,
    /// `forward` (same task, a function call), `hash` (by key group), `rebalance`
    /// (round-robin) or `broadcast`.
    pub exchange: &'static str,
    /// From a side output of `from` rather than its main output.
    pub side_output: bool,
    /// `append` or `updating`: what flows on it.
    pub changelog: &'static str,
}

/// Per-subtask figures of an operator, and what its watermark waits for.
#[derive(Clone, Debug, Serialize)]
pub struct SubtaskDetail {
    /// The parallel instance.
    pub subtask: usize,
    /// Records in (for a source: records read).
    pub records_in: u64,
    /// Records out on the main output.
    pub records_out: u64,
    /// Records rejected.
    pub failed: u64,
    /// Time in the operator's own code.
    pub processing_time_ms: f64,
    /// The instance's watermark (`None` before the first; `Timestamp::MAX` once ended).
    pub watermark: Option<Timestamp>,
    /// Wall-clock milliseconds when it last changed.
    pub watermark_since_ms: Option<i64>,
    /// The instance's input is idle.
    pub idle: bool,
    /// Late records.
    pub late_records: u64,
    /// Keys in state now.
    pub state_keys: u64,
    /// Estimated bytes of state now.
    pub state_bytes: u64,
    /// The earliest window not fired yet, `[start, end)`: it fires once the watermark
    /// reaches `end - 1`.
    pub pending_window: Option<(Timestamp, Timestamp)>,
    /// Sources: the watermark of each split.
    pub splits: Vec<SplitStatus>,
}

/// One operator with its subtasks.
#[derive(Clone, Debug, Serialize)]
pub struct OperatorDetail {
    /// Index in the job graph.
    pub node: usize,
    /// Display name.
    pub name: String,
    /// Stable operator id.
    pub id: String,
    /// What kind of node it is.
    pub kind: NodeKind,
    /// Sources: the idle timeout of their watermarks (`None`: splits never count as idle).
    pub idle_timeout_ms: Option<u64>,
    /// Sources: whether they generate watermarks at all (`Stream::with_watermarks`).
    pub generates_watermarks: bool,
    /// Per parallel instance.
    pub subtasks: Vec<SubtaskDetail>,
}

/// The watermark one receiving task last got from one sending task.
#[derive(Clone, Debug, Serialize)]
pub struct ChannelStatus {
    /// The receiving subtask (of the exchange's downstream stage).
    pub receiver: usize,
    /// The node upstream of the sending end (graph index; an exchange's receiving end when
    /// one exchange feeds another directly).
    pub sender_node: usize,
    /// The sending subtask.
    pub sender_subtask: usize,
    /// The sending stage.
    pub sender_stage: usize,
    /// The last watermark received (`None`: none yet).
    pub watermark: Option<Timestamp>,
    /// The sender said it is idle.
    pub idle: bool,
    /// The sender ended.
    pub ended: bool,
    /// Wall-clock milliseconds of the last change.
    pub since_ms: Option<i64>,
}

/// An exchange with the watermark of each channel.
#[derive(Clone, Debug, Serialize)]
pub struct ExchangeDetail {
    /// `upstream -> downstream`.
    pub name: String,
    /// The stage it feeds (see [`GraphNode::stage`]).
    pub downstream_stage: usize,
    /// Every (receiver, sender) channel.
    pub channels: Vec<ChannelStatus>,
}

/// Everything an operator of the job may want to look at, beyond the [`JobSummary`].
#[derive(Clone, Debug, Serialize)]
pub struct JobDetail {
    /// The job's name.
    pub job: String,
    /// The job has ended.
    pub finished: bool,
    /// Wall time since start (or of the whole run).
    pub duration_ms: f64,
    /// The job graph.
    pub graph: Option<Arc<JobGraph>>,
    /// Per operator (sources and sinks included), per subtask.
    pub operators: Vec<OperatorDetail>,
    /// Per exchange, per channel.
    pub exchanges: Vec<ExchangeDetail>,
    /// The last completed checkpoints and savepoints, oldest first.
    pub checkpoint_history: Vec<CheckpointRecord>,
}

fn watermark_of(ms: i64) -> Option<Timestamp> {
    (ms != i64::MIN).then_some(Timestamp(ms))
}

impl MetricsReader {
    /// Per-subtask figures, watermarks per channel and split, the job graph and the checkpoint
    /// history: what the HTTP API and the watermark debugger read.
    pub fn detail(&self) -> JobDetail {
        let r = &self.0;
        let finished = r.finished.lock().ok().and_then(|f| *f);
        let operators = r
            .operators
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|e| {
                let mut idle_timeout_ms = None;
                let mut generates_watermarks = false;
                let subtasks = e
                    .instances
                    .iter()
                    .enumerate()
                    .map(|(subtask, m)| {
                        let report = m.splits.lock().unwrap_or_else(|p| p.into_inner()).clone();
                        idle_timeout_ms = idle_timeout_ms.or(report.idle_timeout_ms);
                        generates_watermarks |= report.generates_watermarks;
                        let start = m.pending_window_start.load(Relaxed);
                        let end = m.pending_window_end.load(Relaxed);
                        SubtaskDetail {
                            subtask,
                            records_out: m.records_out.load(Relaxed),
                            records_in: m.records_in.load(Relaxed),
                            failed: m.failed.load(Relaxed),
                            processing_time_ms: m.processing_ns.load(Relaxed) as f64 / 1e6,
                            watermark: watermark_of(m.watermark.load(Relaxed)),
                            watermark_since_ms: Some(m.watermark_since.load(Relaxed))
                                .filter(|&t| t != i64::MIN),
                            idle: m.idle.load(Relaxed),
                            late_records: m.late_records.load(Relaxed),
                            state_keys: m.state_keys.load(Relaxed),
                            state_bytes: m.state_bytes.load(Relaxed),
                            pending_window: (end != i64::MIN)
                                .then_some((Timestamp(start), Timestamp(end))),
                            splits: report.splits,
                        }
                    })
                    .collect();
                OperatorDetail {
                    node: e.node,
                    name: e.name.clone(),
                    id: e.id.clone(),
                    kind: e.kind,
                    idle_timeout_ms,
                    generates_watermarks,
                    subtasks,
                }
            })
            .collect();
        let exchanges = r
            .exchanges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|e| {
                let m = &e.metrics;
                let channels = m
                    .channels
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let (receiver, sender) = (i / m.senders.max(1), i % m.senders.max(1));
                        let (sender_node, sender_subtask, sender_stage) = e
                            .senders
                            .get(sender)
                            .copied()
                            .unwrap_or((usize::MAX, 0, usize::MAX));
                        ChannelStatus {
                            receiver,
                            sender_node,
                            sender_subtask,
                            sender_stage,
                            watermark: watermark_of(c.watermark.load(Relaxed)),
                            idle: c.idle.load(Relaxed),
                            ended: c.ended.load(Relaxed),
                            since_ms: watermark_of(c.since.load(Relaxed)).map(|t| t.millis()),
                        }
                    })
                    .collect();
                ExchangeDetail {
                    name: e.name.clone(),
                    downstream_stage: e.downstream_stage,
                    channels,
                }
            })
            .collect();
        let checkpoint_history = r
            .checkpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| {
                c.history
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        JobDetail {
            job: r.job.clone(),
            finished: finished.is_some(),
            duration_ms: finished
                .unwrap_or_else(|| r.started.elapsed())
                .as_secs_f64()
                * 1e3,
            graph: r.graph.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            operators,
            exchanges,
            checkpoint_history,
        }
    }

    /// The job graph, once the job started.
    pub fn graph(&self) -> Option<Arc<JobGraph>> {
        self.0
            .graph
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The job has ended (the figures are final).
    pub fn is_finished(&self) -> bool {
        self.0.finished.lock().ok().and_then(|f| *f).is_some()
    }
}
