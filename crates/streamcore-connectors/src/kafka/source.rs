//! [`KafkaSource`]: reads topics (a list or a pattern) partition by partition.
//!
//! Each partition is a split: its offsets are the reader's position in checkpoints (not only
//! in the consumer group), and its records are a watermark split of their own. Two ways to
//! share partitions among readers:
//! - **assigned** (no group id, or [`KafkaSource::assign`]): the job deals the partitions to
//!   its readers; a restore deals the checkpointed offsets again, at any parallelism;
//! - **group** ([`KafkaSource::group`]): every reader is a member of the consumer group, the
//!   group protocol (cooperative-sticky) shares the partitions among all readers of all
//!   processes running the job, and offsets are committed to the group when a checkpoint
//!   completes (see docs/kafka.md, "Scale-out").
//!
//! Undecodable records go to the job's error policy (fail, or the dead-letter output, which
//! can be a Kafka topic: a [`super::KafkaSink`] of [`streamcore::DeadLetter`]).

use super::config::{log_line, KafkaConfig, LogContext};
use super::format::{EventJson, KafkaDecoder, KafkaRecord};
use super::handover::{key_groups_of_partition, partition_for_key, CheckpointCache, HandoverStore};
use super::kafka_error;
use super::metrics::KafkaSourceMetrics;
use hashbrown::HashMap;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use streamcore::checkpoint::{decode, encode};
use streamcore::message::CheckpointId;
use streamcore::sink::Committer;
use streamcore::state::{KeyGroupChange, KeyGroupState};
use streamcore::{Result, Source, SourcePoll, SourceReader, StreamError, TaskContext};

/// How long metadata, offset and commit requests may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the first poll of a batch waits for a record.
const POLL_WAIT: Duration = Duration::from_millis(20);
/// How often a bounded group member checks whether the whole group is done.
const GROUP_DONE_CHECK: Duration = Duration::from_millis(300);
/// How often a group member commits its offsets when the job runs without checkpoints.
const PLAIN_COMMIT_INTERVAL: Duration = Duration::from_secs(2);

/// Where reading starts in a partition that has no position yet (no checkpoint, and for
/// groups no committed offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartOffsets {
    /// The oldest record still in the partition.
    Earliest,
    /// The end of the partition when the job starts: only records produced after.
    Latest,
    /// The group's committed offsets (earliest where there are none). Needs a group id.
    Group,
    /// The first record whose Kafka timestamp is at or after this many Unix milliseconds.
    Timestamp(i64),
}

impl std::str::FromStr for StartOffsets {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "earliest" => Ok(StartOffsets::Earliest),
            "latest" => Ok(StartOffsets::Latest),
            "group" => Ok(StartOffsets::Group),
            other => match other.strip_prefix("timestamp:").map(str::parse) {
                Some(Ok(ms)) => Ok(StartOffsets::Timestamp(ms)),
                _ => Err(format!(
                    "unknown start `{other}` (expected earliest, latest, group or timestamp:MILLIS)"
                )),
            },
        }
    }
}

#[derive(Clone, Debug)]
enum Topics {
    List(Vec<String>),
    Pattern(String),
}

/// A topic partition and the offset of the next record to read there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartitionOffset {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) next: i64,
}

type Partition = (String, i32);

/// Reads Kafka topics; see the [module docs](self).
///
/// ```no_run
/// use streamcore::{Job, JobConfig};
/// use streamcore_connectors::kafka::{KafkaConfig, KafkaSink, KafkaSource, StartOffsets};
/// let kafka = KafkaConfig::new("127.0.0.1:9092");
/// let mut job = Job::new("big-spenders");
/// job.source(
///     "payments",
///     KafkaSource::new(kafka.clone(), &["payments"]).start(StartOffsets::Earliest),
/// )
/// .filter(|e: &streamcore::Event| e.get_f64("amount").unwrap_or(0.0) > 500.0)
/// .name("big")
/// .sink_named("alerts", KafkaSink::events(kafka, "alerts").key_partition_key());
/// job.run(JobConfig::default()).unwrap();
/// ```
pub struct KafkaSource<D = EventJson> {
    config: KafkaConfig,
    topics: Topics,
    group: Option<String>,
    use_group: bool,
    start: StartOffsets,
    bounded: bool,
    decoder: D,
    metrics: Arc<KafkaSourceMetrics>,
    members: Members,
    committed: CommittedOffsets,
    handover: Option<HandoverStore>,
}

/// The group members of this process, by subtask: the committer commits through them.
type Members = Arc<Mutex<Vec<Option<Arc<BaseConsumer<ReaderContext>>>>>>;

/// The offsets this process committed to the group successfully, per partition: a revoked
/// partition is released only once its position is in here.
type CommittedOffsets = Arc<Mutex<HashMap<Partition, i64>>>;

impl KafkaSource<EventJson> {
    /// Reads `topics` as JSON [`streamcore::Event`]s (change the format with
    /// [`KafkaSource::format`]), from the earliest offsets.
    pub fn new(config: KafkaConfig, topics: &[&str]) -> Self {
        KafkaSource {
            config,
            topics: Topics::List(topics.iter().map(|t| t.to_string()).collect()),
            group: None,
            use_group: false,
            start: StartOffsets::Earliest,
            bounded: false,
            decoder: EventJson,
            metrics: Arc::default(),
            members: Arc::default(),
            committed: Arc::default(),
            handover: None,
        }
    }

    /// Reads every topic whose whole name matches the regular expression `pattern` (topics
    /// created later are picked up by group members; assigned readers see those present at
    /// start).
    pub fn pattern(config: KafkaConfig, pattern: &str) -> Self {
        let mut s = Self::new(config, &[]);
        s.topics = Topics::Pattern(pattern.to_string());
        s
    }
}

impl<D: KafkaDecoder> KafkaSource<D> {
    /// Decodes records with `decoder`: [`super::Json`] for a serde type, [`super::Raw`] for
    /// bytes with metadata, or your own.
    pub fn format<D2: KafkaDecoder>(self, decoder: D2) -> KafkaSource<D2> {
        KafkaSource {
            config: self.config,
            topics: self.topics,
            group: self.group,
            use_group: self.use_group,
            start: self.start,
            bounded: self.bounded,
            decoder,
            metrics: self.metrics,
            members: self.members,
            committed: self.committed,
            handover: self.handover,
        }
    }

    /// Joins consumer group `group_id`: partitions are shared by the group protocol among all
    /// readers of all processes with this id, and offsets are committed to the group when a
    /// checkpoint completes.
    pub fn group(mut self, group_id: impl Into<String>) -> Self {
        self.group = Some(group_id.into());
        self.use_group = true;
        self
    }

    /// Uses `group_id` only to read its committed offsets ([`StartOffsets::Group`]) and to
    /// commit offsets at checkpoints, while the job itself deals the partitions to its readers.
    pub fn assign(mut self, group_id: impl Into<String>) -> Self {
        self.group = Some(group_id.into());
        self.use_group = false;
        self
    }

    /// Moves keyed state with the partitions (needs [`KafkaSource::group`], checkpoints, one
    /// topic partitioned by key group — see [`super::handover`] — and `root` shared by every
    /// process, each checkpointing into its own directory under it). The process then runs
    /// one group member (one reader); the operators after it can run in parallel.
    pub fn state_handover(mut self, root: impl Into<std::path::PathBuf>) -> Self {
        self.handover = Some(HandoverStore::new(root));
        self
    }

    /// Where to start in partitions without a position.
    pub fn start(mut self, start: StartOffsets) -> Self {
        self.start = start;
        self
    }

    /// Stops at the end offsets of the partitions as they are when the job starts (a bounded
    /// job over what is in the topics now). In a group, the job ends once the group committed
    /// those offsets on every partition, so a member that finished its own partitions waits
    /// to take over those of a member that fails.
    pub fn bounded(mut self) -> Self {
        self.bounded = true;
        self
    }

    /// The source's live counters (records, bytes, lag per partition, rebalances, commits).
    pub fn metrics(&self) -> Arc<KafkaSourceMetrics> {
        self.metrics.clone()
    }

    fn metadata_client(&self) -> Result<BaseConsumer<LogContext>> {
        let mut own = vec![("enable.auto.commit", "false".to_string())];
        if let Some(g) = &self.group {
            own.push(("group.id", g.clone()));
        }
        self.config
            .client_config(&own)
            .create_with_context(LogContext)
            .map_err(|e| kafka_error("creating a client", e))
    }

    /// Every partition of the topics, sorted.
    fn partitions(&self, client: &BaseConsumer<LogContext>) -> Result<Vec<Partition>> {
        let metadata = client
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(|e| kafka_error("reading topic metadata", e))?;
        let matches: Box<dyn Fn(&str) -> bool> = match &self.topics {
            Topics::List(list) => {
                for t in list {
                    if !metadata.topics().iter().any(|m| m.name() == t) {
                        return Err(kafka_error(
                            "reading topic metadata",
                            format!("topic `{t}` does not exist"),
                        ));
                    }
                }
                let list = list.clone();
                Box::new(move |t| list.iter().any(|l| l == t))
            }
            Topics::Pattern(p) => {
                let re = regex_lite::Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                    StreamError::Config(format!("bad Kafka topic pattern `{p}`: {e}"))
                })?;
                Box::new(move |t| re.is_match(t))
            }
        };
        let mut out: Vec<Partition> = metadata
            .topics()
            .iter()
            .filter(|t| matches(t.name()) && !t.name().starts_with("__"))
            .flat_map(|t| {
                t.partitions()
                    .iter()
                    .map(move |p| (t.name().to_string(), p.id()))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// The offset to start from in each partition, as a number (so that a checkpoint taken
    /// before the first record still pins the start).
    fn start_offsets(
        &self,
        marks: &mut Watermarks<'_>,
        partitions: &[Partition],
    ) -> Result<Vec<i64>> {
        let client = marks.client;
        let resolved = match self.start {
            StartOffsets::Earliest => return partitions.iter().map(|p| marks.low(p)).collect(),
            StartOffsets::Latest => return partitions.iter().map(|p| marks.high(p)).collect(),
            StartOffsets::Group => {
                if self.group.is_none() {
                    return Err(StreamError::Config(
                        "Kafka start `group` needs a group id".into(),
                    ));
                }
                client
                    .committed_offsets(tpl(partitions, |_| Offset::Invalid)?, REQUEST_TIMEOUT)
                    .map_err(|e| kafka_error("reading the group's offsets", e))?
            }
            StartOffsets::Timestamp(ms) => client
                .offsets_for_times(tpl(partitions, |_| Offset::Offset(ms))?, REQUEST_TIMEOUT)
                .map_err(|e| kafka_error("looking up offsets by timestamp", e))?,
        };
        partitions
            .iter()
            .map(|p| {
                let found = resolved
                    .find_partition(&p.0, p.1)
                    .map(|e| e.offset())
                    .unwrap_or(Offset::Invalid);
                match found {
                    Offset::Offset(o) => Ok(o.max(marks.low(p)?)),
                    // No committed offset: earliest. No record at or after the timestamp: end.
                    Offset::End => marks.high(p),
                    _ if matches!(self.start, StartOffsets::Timestamp(_)) => marks.high(p),
                    _ => marks.low(p),
                }
            })
            .collect()
    }

    fn stop_offsets(
        &self,
        marks: &mut Watermarks<'_>,
        partitions: &[Partition],
    ) -> Result<Option<Arc<HashMap<Partition, i64>>>> {
        if !self.bounded {
            return Ok(None);
        }
        let mut stops = HashMap::new();
        for p in partitions {
            stops.insert(p.clone(), marks.high(p)?);
        }
        Ok(Some(Arc::new(stops)))
    }

    fn readers_with(
        &mut self,
        parallelism: usize,
        positions: Option<Vec<PartitionOffset>>,
    ) -> Result<Vec<KafkaReader<D>>> {
        let client = self.metadata_client()?;
        let partitions = self.partitions(&client)?;
        let mut marks = Watermarks {
            client: &client,
            known: HashMap::new(),
        };
        let stops = self.stop_offsets(&mut marks, &partitions)?;
        *self.members.lock().unwrap_or_else(|p| p.into_inner()) = vec![None; parallelism];
        let handover = match (&self.handover, &self.topics) {
            (None, _) => None,
            (Some(store), Topics::List(topics)) if self.use_group && topics.len() == 1 => {
                let topic = topics[0].clone();
                let count = partitions.iter().filter(|(t, _)| *t == topic).count() as i32;
                Some(ReaderHandover {
                    store: store.clone(),
                    partitions: count,
                    assigned_once: false,
                    restored: positions
                        .iter()
                        .flatten()
                        .filter(|p| p.topic == topic && p.next >= 0)
                        .map(|p| (p.partition, p.next))
                        .collect(),
                })
            }
            (Some(_), _) => {
                return Err(StreamError::Config(
                    "Kafka state hand-over needs a consumer group and exactly one topic".into(),
                ))
            }
        };
        if self.use_group {
            let hints: HashMap<Partition, i64> = positions
                .unwrap_or_default()
                .into_iter()
                .map(|p| ((p.topic, p.partition), p.next))
                .collect();
            let hints = Arc::new(hints);
            let topics: Vec<String> = match &self.topics {
                Topics::List(l) => l.clone(),
                Topics::Pattern(p) => vec![format!("^(?:{p})$")],
            };
            return (0..parallelism)
                .map(|subtask| {
                    let mut reader =
                        self.reader(subtask, Vec::new(), stops.clone(), hints.clone())?;
                    reader.handover = handover.clone();
                    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                    reader
                        .consumer
                        .subscribe(&names)
                        .map_err(|e| kafka_error("subscribing", e))?;
                    self.register(&reader);
                    Ok(reader)
                })
                .collect();
        }
        // Assigned: every partition gets its checkpointed offset, or its start offset.
        let mut known: HashMap<Partition, i64> = positions
            .unwrap_or_default()
            .into_iter()
            .map(|p| ((p.topic, p.partition), p.next))
            .collect();
        let new: Vec<Partition> = partitions
            .iter()
            .filter(|p| !known.contains_key(*p))
            .cloned()
            .collect();
        // Partitions that appeared since the checkpoint start from their earliest offset.
        let start = if known.is_empty() {
            self.start_offsets(&mut marks, &new)?
        } else {
            new.iter().map(|p| marks.low(p)).collect::<Result<_>>()?
        };
        known.extend(new.into_iter().zip(start));
        let mut all: Vec<(Partition, i64)> = known.into_iter().collect();
        all.sort();
        let mut dealt: Vec<Vec<(Partition, i64)>> = vec![Vec::new(); parallelism];
        for (i, p) in all.into_iter().enumerate() {
            dealt[i % parallelism].push(p);
        }
        dealt
            .into_iter()
            .enumerate()
            .map(|(subtask, owned)| {
                let reader = self.reader(subtask, owned.clone(), stops.clone(), Arc::default())?;
                let list = tpl(
                    &owned.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
                    |i| Offset::Offset(owned[i].1),
                )?;
                reader
                    .consumer
                    .assign(&list)
                    .map_err(|e| kafka_error("assigning partitions", e))?;
                self.register(&reader);
                Ok(reader)
            })
            .collect()
    }

    /// Lets the committer reach this reader's consumer.
    fn register(&self, reader: &KafkaReader<D>) {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        if members.len() <= reader.subtask {
            members.resize(reader.subtask + 1, None);
        }
        members[reader.subtask] = Some(reader.consumer.clone());
    }

    fn reader(
        &self,
        subtask: usize,
        owned: Vec<(Partition, i64)>,
        stops: Option<Arc<HashMap<Partition, i64>>>,
        hints: Arc<HashMap<Partition, i64>>,
    ) -> Result<KafkaReader<D>> {
        let mut own = vec![
            ("enable.auto.commit", "false".to_string()),
            ("enable.partition.eof", "false".to_string()),
            (
                "auto.offset.reset",
                match self.start {
                    StartOffsets::Latest => "latest",
                    _ => "earliest",
                }
                .to_string(),
            ),
            ("statistics.interval.ms", "1000".to_string()),
            (
                "partition.assignment.strategy",
                "cooperative-sticky".to_string(),
            ),
        ];
        // librdkafka wants a group id even to assign partitions; without one of the user's,
        // nothing is ever committed under it.
        let group = self
            .group
            .clone()
            .unwrap_or_else(|| "streamcore-unused".into());
        own.push(("group.id", group));
        let changes = Arc::new(Mutex::new(Changes::default()));
        let defer_revoke = Arc::new(AtomicBool::new(false));
        let context = ReaderContext {
            defer_revoke: defer_revoke.clone(),
            metrics: self.metrics.clone(),
            changes: changes.clone(),
            hints,
        };
        let consumer: BaseConsumer<ReaderContext> = self
            .config
            .client_config(&own)
            .create_with_context(context)
            .map_err(|e| kafka_error("creating a consumer", e))?;
        let partitions = owned
            .into_iter()
            .map(|((topic, partition), next)| {
                let stop = stops
                    .as_ref()
                    .and_then(|s| s.get(&(topic.clone(), partition)).copied());
                (
                    split_of(&topic, partition),
                    PartitionState {
                        topic,
                        partition,
                        next,
                        stop,
                        done: false,
                        revoking: false,
                    },
                )
            })
            .collect();
        Ok(KafkaReader {
            consumer: Arc::new(consumer),
            subtask,
            grouped: self.use_group,
            has_group: self.group.is_some(),
            partitions,
            stops,
            changes,
            decoder: self.decoder.clone(),
            metrics: self.metrics.clone(),
            pending: None,
            split: 0,
            last_group_check: None,
            last_plain_commit: Instant::now(),
            group_done: false,
            defer_revoke,
            release_after: None,
            committed: self.committed.clone(),
            handover: None,
        })
    }
}

/// The low and high watermarks of partitions, each asked of the brokers at most once.
struct Watermarks<'a> {
    client: &'a BaseConsumer<LogContext>,
    known: HashMap<Partition, (i64, i64)>,
}

impl Watermarks<'_> {
    fn get(&mut self, p: &Partition) -> Result<(i64, i64)> {
        if let Some(&w) = self.known.get(p) {
            return Ok(w);
        }
        let w = self
            .client
            .fetch_watermarks(&p.0, p.1, REQUEST_TIMEOUT)
            .map_err(|e| kafka_error(&format!("reading the offsets of {}/{}", p.0, p.1), e))?;
        self.known.insert(p.clone(), w);
        Ok(w)
    }

    /// The oldest offset still in the partition.
    fn low(&mut self, p: &Partition) -> Result<i64> {
        self.get(p).map(|w| w.0)
    }

    /// The end of the partition (the offset the next record will get).
    fn high(&mut self, p: &Partition) -> Result<i64> {
        self.get(p).map(|w| w.1)
    }
}

fn tpl(partitions: &[Partition], offset: impl Fn(usize) -> Offset) -> Result<TopicPartitionList> {
    let mut list = TopicPartitionList::new();
    for (i, (t, p)) in partitions.iter().enumerate() {
        list.add_partition_offset(t, *p, offset(i))
            .map_err(|e| kafka_error("building a partition list", e))?;
    }
    Ok(list)
}

/// A stable split id for a topic partition (FNV-1a of the topic, then the partition).
fn split_of(topic: &str, partition: i32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    (h << 16) ^ (partition as u32 as u64)
}

impl<D: KafkaDecoder> Source<D::Out> for KafkaSource<D> {
    type Reader = KafkaReader<D>;

    fn parallelism(&self, job_parallelism: usize) -> usize {
        // State follows partitions per process: one group member each.
        if self.handover.is_some() {
            1
        } else {
            job_parallelism
        }
    }

    fn create_readers(&mut self, parallelism: usize) -> Result<Vec<Self::Reader>> {
        self.readers_with(parallelism, None)
    }

    fn supports_checkpoints(&self) -> bool {
        true
    }

    fn restore_readers(
        &mut self,
        parallelism: usize,
        positions: Vec<Vec<u8>>,
    ) -> Result<Vec<Self::Reader>> {
        let mut all = Vec::new();
        for p in positions {
            all.extend(decode::<Vec<PartitionOffset>>(&p)?);
        }
        self.readers_with(parallelism, Some(all))
    }

    fn connector_metrics(&self) -> Option<Arc<dyn streamcore::metrics::ConnectorMetrics>> {
        Some(self.metrics.clone())
    }

    fn committer(&mut self) -> Result<Option<Box<dyn Committer>>> {
        Ok(self.group.as_ref().map(|_| {
            Box::new(OffsetCommitter {
                members: self.members.clone(),
                metrics: self.metrics.clone(),
                committed: self.committed.clone(),
            }) as Box<dyn Committer>
        }))
    }
}

/// What the reader owns in one partition.
struct PartitionState {
    topic: String,
    partition: i32,
    /// Offset of the next record to hand out.
    next: i64,
    /// Bounded: read up to here (exclusive).
    stop: Option<i64>,
    done: bool,
    /// Revoked: nothing more is read from it; released after the next checkpoint.
    revoking: bool,
}

/// Assignments and revocations the rebalance callback saw, for the reader to apply.
#[derive(Default)]
struct Changes {
    assigned: Vec<(Partition, i64)>,
    /// An assignment came (possibly of no partition).
    assignment_seen: bool,
    revoked: Vec<Partition>,
    /// Revoked, to be released after a checkpoint.
    revoking: Vec<Partition>,
}

/// The consumer's callbacks: logs, statistics (lag), rebalances (group mode).
struct ReaderContext {
    metrics: Arc<KafkaSourceMetrics>,
    changes: Arc<Mutex<Changes>>,
    /// Positions from the restored checkpoint (group mode): a partition assigned to this
    /// process starts at the later of its group offset and this.
    hints: Arc<HashMap<Partition, i64>>,
    /// With checkpoints: revoked partitions are paused, and released only once a checkpoint
    /// covering everything read from them is complete and committed (see `KafkaReader`).
    defer_revoke: Arc<AtomicBool>,
}

impl ClientContext for ReaderContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_line(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", "{error}: {reason}");
    }

    fn stats(&self, statistics: Statistics) {
        for (name, topic) in &statistics.topics {
            for (id, p) in &topic.partitions {
                if *id >= 0 && p.consumer_lag >= 0 {
                    self.metrics.set_lag(format!("{name}/{id}"), p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for ReaderContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        self.metrics.rebalances.fetch_add(1, Relaxed);
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let mut changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        if consumer.assignment_lost() {
            tracing::warn!(
                ?err,
                "kafka group membership lost (the group moved on without this member)"
            );
        }
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // Each partition starts at the group's committed offset (librdkafka fetches
                // it; `auto.offset.reset` where there is none). After a restore, records
                // before this process's checkpointed offset are skipped by the reader (the
                // group's offset may be older when the crash came before its commit).
                let mut assign = TopicPartitionList::new();
                for e in partitions.elements() {
                    let key = (e.topic().to_string(), e.partition());
                    let floor = self.hints.get(&key).copied().unwrap_or(-1);
                    let _ = assign.add_partition_offset(e.topic(), e.partition(), Offset::Invalid);
                    changes.assigned.push((key, floor));
                }
                changes.assignment_seen = true;
                let result = if cooperative {
                    consumer.incremental_assign(&assign)
                } else {
                    consumer.assign(&assign)
                };
                if let Err(e) = result {
                    tracing::error!("assigning partitions: {e}");
                }
                // A partition paused here before (revoked, or read to its end) stays paused
                // in librdkafka when it comes back: resume it.
                if let Err(e) = consumer.resume(&assign) {
                    tracing::warn!("resuming assigned partitions: {e}");
                }
                tracing::info!(partitions = ?changes.assigned, "kafka partitions assigned");
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS
                if cooperative && self.defer_revoke.load(Relaxed) =>
            {
                // Exactly-once hand-over: stop reading them now; the reader releases them
                // (incremental_unassign) once the next checkpoint committed their offsets.
                if let Err(e) = consumer.pause(partitions) {
                    tracing::warn!("pausing revoked partitions: {e}");
                }
                for e in partitions.elements() {
                    changes
                        .revoking
                        .push((e.topic().to_string(), e.partition()));
                }
                tracing::info!(
                    partitions = ?changes.revoking,
                    "kafka partitions revoked; released after the next checkpoint"
                );
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                for e in partitions.elements() {
                    changes.revoked.push((e.topic().to_string(), e.partition()));
                }
                let result = if cooperative {
                    consumer.incremental_unassign(partitions)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = result {
                    tracing::error!("revoking partitions: {e}");
                }
                tracing::info!(partitions = ?changes.revoked, "kafka partitions revoked");
            }
            other => {
                tracing::error!("kafka rebalance failed: {other:?}");
                if !cooperative {
                    let _ = consumer.unassign();
                }
            }
        }
    }
}

/// One parallel instance of a [`KafkaSource`].
pub struct KafkaReader<D: KafkaDecoder> {
    consumer: Arc<BaseConsumer<ReaderContext>>,
    subtask: usize,
    /// A group member (partitions from the group protocol).
    grouped: bool,
    /// Has a group id: offsets are committed to it at completed checkpoints.
    has_group: bool,
    partitions: HashMap<u64, PartitionState>,
    stops: Option<Arc<HashMap<Partition, i64>>>,
    changes: Arc<Mutex<Changes>>,
    decoder: D,
    metrics: Arc<KafkaSourceMetrics>,
    /// A record of another partition than the batch's, decoded, held for the next poll
    /// (with its split and offset: its position advances only when it is handed out).
    pending: Option<(u64, i64, D::Out)>,
    split: u64,
    last_group_check: Option<Instant>,
    last_plain_commit: Instant,
    group_done: bool,
    defer_revoke: Arc<AtomicBool>,
    /// Revoked partitions are released once this checkpoint is complete.
    release_after: Option<CheckpointId>,
    committed: CommittedOffsets,
    handover: Option<ReaderHandover>,
}

/// A reader's side of the state hand-over (see [`super::handover`]).
#[derive(Clone)]
struct ReaderHandover {
    store: HandoverStore,
    /// The topic's partition count.
    partitions: i32,
    /// The first assignment drops the key groups of every partition not assigned (what a
    /// restored checkpoint brought along).
    assigned_once: bool,
    /// Partitions whose state the operators hold from the restored checkpoint, with the
    /// position it is at (until the partition is released).
    restored: HashMap<i32, i64>,
}

impl<D: KafkaDecoder> KafkaReader<D> {
    /// Applies what the rebalance callback saw.
    fn apply_changes(&mut self, ctx: &mut TaskContext) -> Result<()> {
        let shared = self.changes.clone();
        let mut changes = shared.lock().unwrap_or_else(|p| p.into_inner());
        let mut assigned: Vec<(Partition, i64)> = changes.assigned.drain(..).collect();
        let seen = std::mem::take(&mut changes.assignment_seen);
        let first = self.handover.as_ref().is_some_and(|h| !h.assigned_once);
        if self.handover.is_some() && (!assigned.is_empty() || (seen && first)) {
            self.adopt_state(&mut assigned, ctx)?;
        }
        for (p, next) in assigned {
            let stop = self.stops.as_ref().and_then(|s| s.get(&p).copied());
            let split = split_of(&p.0, p.1);
            self.partitions.insert(
                split,
                PartitionState {
                    topic: p.0,
                    partition: p.1,
                    next,
                    stop,
                    done: false,
                    revoking: false,
                },
            );
        }
        for p in changes.revoking.drain(..) {
            let split = split_of(&p.0, p.1);
            if let Some(state) = self.partitions.get_mut(&split) {
                state.revoking = true;
            }
            if matches!(self.pending, Some((s, _, _)) if s == split) {
                self.pending = None;
            }
            // Every checkpoint triggered from now on covers all that was read from them.
            let after = ctx.request_checkpoint().unwrap_or(0);
            self.release_after = Some(self.release_after.map_or(after, |a| a.max(after)));
        }
        for p in changes.revoked.drain(..) {
            let split = split_of(&p.0, p.1);
            if self.partitions.remove(&split).is_some() {
                ctx.split_finished(split);
            }
            if matches!(self.pending, Some((s, _, _)) if s == split) {
                self.pending = None;
            }
        }
        Ok(())
    }

    /// State hand-over: before any record of the `assigned` partitions is read, their key
    /// groups take the state their last owner left (see [`super::handover`]), and reading
    /// starts where that state ends. The first assignment also drops every other partition's
    /// key groups (a restored checkpoint brings the state of all partitions the process had).
    fn adopt_state(
        &mut self,
        assigned: &mut [(Partition, i64)],
        ctx: &mut TaskContext,
    ) -> Result<()> {
        let Some(h) = self.handover.as_mut() else {
            return Ok(());
        };
        let key_groups = ctx.info().key_groups;
        if !ctx.info().checkpointing {
            return Err(StreamError::Config(
                "Kafka state hand-over needs checkpoints (state moves through them)".into(),
            ));
        }
        if h.partitions > key_groups as i32 {
            return Err(StreamError::Config(format!(
                "Kafka state hand-over: the topic has {} partitions, more than the job's {key_groups} key groups",
                h.partitions
            )));
        }
        let source = ctx.info().name.to_string();
        let committed = if assigned.is_empty() {
            TopicPartitionList::new()
        } else {
            let list = tpl(
                &assigned.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
                |_| Offset::Invalid,
            )?;
            self.consumer
                .committed_offsets(list, REQUEST_TIMEOUT)
                .map_err(|e| kafka_error("reading the group's offsets", e))?
        };
        let mut change = if h.assigned_once {
            KeyGroupChange::release([])
        } else {
            // What a restored checkpoint brought of partitions now owned elsewhere goes.
            let ours: Vec<i32> = assigned.iter().map(|(p, _)| p.1).collect();
            h.restored.retain(|p, _| ours.contains(p));
            KeyGroupChange::release(
                (0..h.partitions)
                    .filter(|q| !ours.contains(q))
                    .map(|q| key_groups_of_partition(q, key_groups, h.partitions)),
            )
        };
        h.assigned_once = true;
        let mut cache = CheckpointCache::default();
        for ((topic, partition), floor) in assigned.iter_mut() {
            let groups = key_groups_of_partition(*partition, key_groups, h.partitions);
            let at = match committed
                .find_partition(topic, *partition)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            };
            // The operators may hold this partition's state already (restored from this
            // process's checkpoint, at position `held`): that stays unless a newer one exists.
            let held = h.restored.remove(partition);
            let found = h
                .store
                .find(topic, *partition, at, &groups, &source, &mut cache)?;
            match (found, held) {
                (Some(found), held) if held.is_none_or(|h| found.next > h) => {
                    tracing::info!(
                        topic = %topic,
                        partition = *partition,
                        next = found.next,
                        entries = found.state.len(),
                        bytes = found.state.bytes(),
                        from = %found.from.display(),
                        "kafka partition's keyed state adopted"
                    );
                    self.metrics.states_adopted.fetch_add(1, Relaxed);
                    // State and position from the same snapshot.
                    *floor = found.next;
                    change = change.and_adopt([groups], found.state);
                }
                (_, Some(held)) => {
                    tracing::info!(
                        topic = %topic,
                        partition = *partition,
                        next = held,
                        "kafka partition's keyed state kept from the restored checkpoint"
                    );
                    *floor = held;
                }
                _ => {
                    // Nothing found, nothing held.
                    if at.is_some() {
                        tracing::warn!(
                            topic = %topic,
                            partition = *partition,
                            committed = ?at,
                            "no keyed state found for a partition taken over: its keys start empty"
                        );
                        self.metrics.states_missing.fetch_add(1, Relaxed);
                    }
                    change = change.and_adopt([groups], KeyGroupState::default());
                }
            }
        }
        if !change.is_empty() {
            ctx.change_key_groups(change);
        }
        Ok(())
    }

    /// State hand-over: leaves the state of the partitions about to be released (from the
    /// completed checkpoint that covers them) for their next owner.
    fn leave_state(&self, released: &[(String, i32, i64)], ctx: &TaskContext) -> Result<()> {
        let Some(h) = &self.handover else {
            return Ok(());
        };
        let Some(location) = ctx.completed_checkpoint_location() else {
            return Ok(());
        };
        let key_groups = ctx.info().key_groups;
        let dir = location.parent().unwrap_or(&location).to_path_buf();
        let checkpoint = streamcore::checkpoint::LocalCheckpointStorage::new(dir)?;
        let checkpoint = streamcore::checkpoint::CheckpointStorage::load(&checkpoint, &location)?;
        for (topic, partition, next) in released {
            let groups = key_groups_of_partition(*partition, key_groups, h.partitions);
            let state = KeyGroupState::from_checkpoint(&checkpoint, &[groups]);
            let path = h.store.write(topic, *partition, *next, &state)?;
            tracing::info!(
                topic = %topic,
                partition = *partition,
                next = *next,
                entries = state.len(),
                path = %path.display(),
                "kafka partition's keyed state left for its next owner"
            );
            self.metrics.states_handed_over.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    /// Releases revoked partitions once a checkpoint covering them is committed: the group
    /// then has their offsets, and the next owner starts exactly where this reader stopped.
    fn release_revoked(&mut self, ctx: &mut TaskContext) -> Result<()> {
        let Some(after) = self.release_after else {
            return Ok(());
        };
        // A member the group already dropped (session timeout) cannot commit any more: its
        // partitions are gone, and the next owner starts at the last committed offsets.
        let lost = self.consumer.assignment_lost();
        if ctx.completed_checkpoint() < after && !lost {
            return Ok(());
        }
        let committed = self.committed.lock().unwrap_or_else(|p| p.into_inner());
        let mut release = TopicPartitionList::new();
        let mut released = Vec::new();
        let mut waiting = false;
        for (&split, s) in self.partitions.iter().filter(|(_, s)| s.revoking) {
            // Released once the group has its position (or it gave no record at all).
            let in_group = s.next < 0
                || committed
                    .get(&(s.topic.clone(), s.partition))
                    .is_some_and(|&c| c >= s.next);
            if in_group || lost {
                let _ = release.add_partition(&s.topic, s.partition);
                released.push(split);
            } else {
                waiting = true;
            }
        }
        drop(committed);
        if lost && waiting {
            tracing::warn!(
                "kafka group membership lost: partitions handed over without their last offsets (records since the last commit will be read again)"
            );
        }
        if !lost {
            let leaving: Vec<(String, i32, i64)> = released
                .iter()
                .filter_map(|split| self.partitions.get(split))
                .filter(|s| s.next >= 0)
                .map(|s| (s.topic.clone(), s.partition, s.next))
                .collect();
            self.leave_state(&leaving, ctx)?;
        }
        let mut dropped = Vec::new();
        for split in &released {
            if let Some(s) = self.partitions.remove(split) {
                dropped.push(s.partition);
            }
            ctx.split_finished(*split);
        }
        if let Some(h) = self.handover.as_mut().filter(|_| !dropped.is_empty()) {
            let key_groups = ctx.info().key_groups;
            for p in &dropped {
                h.restored.remove(p);
            }
            ctx.change_key_groups(KeyGroupChange::release(
                dropped
                    .iter()
                    .map(|&p| key_groups_of_partition(p, key_groups, h.partitions)),
            ));
        }
        if !released.is_empty() {
            if let Err(e) = self.consumer.incremental_unassign(&release) {
                tracing::error!("releasing revoked partitions: {e}");
            }
            tracing::info!(
                checkpoint = after,
                "kafka partitions released after checkpoint"
            );
        }
        self.release_after = if waiting && !lost {
            // The offset commit did not go through (a rebalance in progress, say): again.
            ctx.request_checkpoint()
        } else {
            None
        };
        Ok(())
    }

    /// Marks `split` as read to its stop offset; pauses it so nothing past the stop comes.
    fn finish_partition(&mut self, split: u64, ctx: &mut TaskContext) {
        if let Some(state) = self.partitions.get_mut(&split) {
            if !state.done {
                state.done = true;
                ctx.split_finished(split);
                if let Ok(list) = tpl(&[(state.topic.clone(), state.partition)], |_| {
                    Offset::Invalid
                }) {
                    let _ = self.consumer.pause(&list);
                }
            }
        }
    }

    /// Bounded: whether this reader is done with everything it must read.
    fn all_done(&mut self, ctx: &mut TaskContext) -> Result<bool> {
        let Some(stops) = self.stops.clone() else {
            return Ok(false);
        };
        let finished: Vec<u64> = self
            .partitions
            .iter()
            .filter(|(_, s)| !s.done && s.stop.is_some_and(|stop| s.next >= stop))
            .map(|(&k, _)| k)
            .collect();
        for split in finished {
            self.finish_partition(split, ctx);
        }
        if !self.grouped {
            return Ok(self.partitions.values().all(|s| s.done));
        }
        // A group member is done when the group committed the stop offset everywhere (its own
        // partitions included: their offsets are committed once their output is): until then
        // it stays, to take over partitions of members that fail. A partition that gives no
        // record (its committed offset is already the end) is done by this rule too.
        if self.group_done {
            return Ok(true);
        }
        if self
            .last_group_check
            .is_some_and(|t| t.elapsed() < GROUP_DONE_CHECK)
        {
            return Ok(false);
        }
        self.last_group_check = Some(Instant::now());
        if !ctx.info().checkpointing {
            self.commit_positions(CommitMode::Sync);
        }
        let all: Vec<Partition> = stops.keys().cloned().collect();
        let committed = self
            .consumer
            .committed_offsets(tpl(&all, |_| Offset::Invalid)?, REQUEST_TIMEOUT)
            .map_err(|e| kafka_error("reading the group's offsets", e))?;
        self.group_done = all.iter().all(|(t, p)| {
            let stop = stops[&(t.clone(), *p)];
            stop == 0
                || committed
                    .find_partition(t, *p)
                    .is_some_and(|e| matches!(e.offset(), Offset::Offset(o) if o >= stop))
        });
        Ok(self.group_done)
    }

    fn positions(&self) -> Vec<PartitionOffset> {
        let mut v: Vec<PartitionOffset> = self
            .partitions
            .values()
            .filter(|s| s.next >= 0)
            .map(|s| PartitionOffset {
                topic: s.topic.clone(),
                partition: s.partition,
                next: s.next,
            })
            .collect();
        v.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        v
    }

    /// Commits the positions to the group (jobs without checkpoints: at-most-once for
    /// records in flight at a crash).
    fn commit_positions(&self, mode: CommitMode) {
        let positions = self.positions();
        if positions.is_empty() {
            return;
        }
        if let Ok(list) = offsets_list(&positions) {
            match self.consumer.commit(&list, mode) {
                Ok(()) => {
                    self.metrics.offset_commits.fetch_add(1, Relaxed);
                }
                Err(e) => tracing::warn!("committing offsets: {e}"),
            }
        }
    }
}

impl<D: KafkaDecoder> Drop for KafkaReader<D> {
    fn drop(&mut self) {
        // Closing the consumer revokes its partitions from within the close: they must be
        // released at once, or the group waits for this member until its session times out.
        self.defer_revoke.store(false, Relaxed);
    }
}

fn offsets_list(positions: &[PartitionOffset]) -> Result<TopicPartitionList> {
    let mut list = TopicPartitionList::new();
    for p in positions {
        list.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next))
            .map_err(|e| kafka_error("building a partition list", e))?;
    }
    Ok(list)
}

impl<D: KafkaDecoder> SourceReader<D::Out> for KafkaReader<D> {
    fn poll_batch(
        &mut self,
        out: &mut Vec<D::Out>,
        max: usize,
        ctx: &mut TaskContext,
    ) -> Result<SourcePoll> {
        if self.grouped && ctx.info().checkpointing {
            self.defer_revoke.store(true, Relaxed);
        }
        self.apply_changes(ctx)?;
        self.release_revoked(ctx)?;
        if let Some((split, offset, record)) = self.pending.take() {
            out.push(record);
            self.split = split;
            if let Some(s) = self.partitions.get_mut(&split) {
                s.next = offset + 1;
            }
        }
        if self.grouped
            && !ctx.info().checkpointing
            && self.last_plain_commit.elapsed() >= PLAIN_COMMIT_INTERVAL
        {
            self.last_plain_commit = Instant::now();
            self.commit_positions(CommitMode::Async);
        }
        let (mut records, mut bytes, mut rejected) = (0u64, 0u64, 0u64);
        let mut wait = if out.is_empty() {
            POLL_WAIT
        } else {
            Duration::ZERO
        };
        let consumer = self.consumer.clone();
        while out.len() < max {
            let message = match consumer.poll(wait) {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!("kafka consumer: {e}");
                    break;
                }
                Some(Ok(m)) => m,
            };
            wait = Duration::ZERO;
            let split = split_of(message.topic(), message.partition());
            if !self.partitions.contains_key(&split) {
                self.apply_changes(ctx)?;
            }
            let Some(state) = self.partitions.get_mut(&split) else {
                continue; // revoked meanwhile
            };
            let offset = message.offset();
            if state.done
                || state.revoking
                || offset < state.next
                || state.stop.is_some_and(|stop| offset >= stop)
            {
                continue; // finished, handed over, or before the restored checkpoint's offset
            }
            if let (Some(h), Some(key)) = (&self.handover, message.key()) {
                let key = String::from_utf8_lossy(key);
                let home = partition_for_key(&key, ctx.info().key_groups, h.partitions);
                if home != message.partition() {
                    // Its key's state lives with another partition: counting it here would
                    // split the key's state over two processes.
                    rejected += 1;
                    let raw = String::from_utf8_lossy(message.payload().unwrap_or_default());
                    let origin =
                        format!("kafka {}/{}@{offset}", message.topic(), message.partition());
                    ctx.reject_input(
                        origin,
                        &raw,
                        format!(
                            "key `{key}` belongs in partition {home} (the topic is not partitioned by key group, which state hand-over needs: write it with KafkaSink::partition_by_key_group)"
                        ),
                    )?;
                    state.next = offset + 1;
                    continue;
                }
            }
            let record = KafkaRecord {
                topic: message.topic(),
                partition: message.partition(),
                offset,
                timestamp: message.timestamp().to_millis(),
                key: message.key(),
                payload: message.payload(),
                headers: message.headers(),
            };
            records += 1;
            bytes +=
                (record.key.map_or(0, <[u8]>::len) + record.payload.map_or(0, <[u8]>::len)) as u64;
            match self.decoder.decode(&record) {
                Ok(Some(decoded)) => {
                    if !out.is_empty() && split != self.split {
                        self.pending = Some((split, offset, decoded));
                        break;
                    }
                    self.split = split;
                    out.push(decoded);
                }
                Ok(None) => {}
                Err(reason) => {
                    rejected += 1;
                    let raw = String::from_utf8_lossy(record.payload.unwrap_or_default());
                    let origin = record.origin();
                    ctx.reject_input(origin, &raw, reason)?;
                }
            }
            state.next = offset + 1;
        }
        self.metrics.records_in.fetch_add(records, Relaxed);
        self.metrics.bytes_in.fetch_add(bytes, Relaxed);
        self.metrics.rejected.fetch_add(rejected, Relaxed);
        if out.is_empty() && self.pending.is_none() {
            if self.all_done(ctx)? {
                // Leaving the group hands everything over at once (the final checkpoint
                // covers it): no revocation may wait for a checkpoint any more.
                self.defer_revoke.store(false, Relaxed);
                return Ok(SourcePoll::Finished);
            }
            return Ok(SourcePoll::Idle);
        }
        Ok(SourcePoll::Ready)
    }

    fn split_id(&self) -> u64 {
        self.split
    }

    fn initial_splits(&self) -> Vec<u64> {
        self.partitions.keys().copied().collect()
    }

    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        encode(&self.positions())
    }

    fn pre_commit(&mut self) -> Result<Vec<Vec<u8>>> {
        if !self.has_group {
            return Ok(Vec::new());
        }
        Ok(vec![encode(&OffsetCommit {
            subtask: self.subtask,
            positions: self.positions(),
        })?])
    }
}

/// Commits the offsets of a completed checkpoint to the consumer group, through the member
/// that owns the partitions (only partitions it still owns: a partition that moved to another
/// member meanwhile has a newer owner whose commits must not be overwritten).
struct OffsetCommitter {
    members: Members,
    metrics: Arc<KafkaSourceMetrics>,
    committed: CommittedOffsets,
}

/// A committable of the source: which reader, and its positions.
#[derive(Serialize, Deserialize)]
struct OffsetCommit {
    subtask: usize,
    positions: Vec<PartitionOffset>,
}

impl Committer for OffsetCommitter {
    fn commit(&self, committable: &[u8]) -> Result<()> {
        let c: OffsetCommit = decode(committable)?;
        let member = self
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(c.subtask)
            .cloned()
            .flatten();
        let Some(consumer) = member else {
            // Restoring: the readers did not join yet; they start from the later of the
            // group's offsets and the checkpoint's, so nothing is lost by skipping this.
            return Ok(());
        };
        let owned = consumer.assignment().unwrap_or_default();
        let positions: Vec<PartitionOffset> = c
            .positions
            .into_iter()
            .filter(|p| owned.find_partition(&p.topic, p.partition).is_some())
            .collect();
        if positions.is_empty() {
            return Ok(());
        }
        match consumer.commit(&offsets_list(&positions)?, CommitMode::Sync) {
            Ok(()) => {
                self.metrics.offset_commits.fetch_add(1, Relaxed);
                let mut committed = self.committed.lock().unwrap_or_else(|p| p.into_inner());
                for p in positions {
                    committed.insert((p.topic, p.partition), p.next);
                }
            }
            // The output is committed already; a failed offset commit only means a member
            // taking these partitions over after a crash starts earlier (duplicates, counted
            // by the sink), so it is reported, not fatal.
            Err(e) => tracing::warn!("committing offsets to the consumer group: {e}"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_offsets_parse() {
        assert_eq!("earliest".parse(), Ok(StartOffsets::Earliest));
        assert_eq!("timestamp:17".parse(), Ok(StartOffsets::Timestamp(17)));
        assert!("soon".parse::<StartOffsets>().is_err());
    }

    #[test]
    fn split_ids_differ_by_topic_and_partition() {
        assert_ne!(split_of("a", 0), split_of("a", 1));
        assert_ne!(split_of("a", 0), split_of("b", 0));
        assert_eq!(split_of("a", 3), split_of("a", 3));
    }
}
