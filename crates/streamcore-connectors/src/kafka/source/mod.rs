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
//!
//! Here: the source (configuration, start and stop offsets, creating and restoring readers).
//! `reader`: [`KafkaReader`] (polling, positions, releasing revoked partitions); `group`: the
//! consumer's rebalance callbacks and the offset committer; `handover`: the reader's side of
//! moving keyed state with partitions ([`super::handover`]).

mod group;
mod handover;
mod reader;

pub use reader::KafkaReader;

use group::{offsets_list, Changes, OffsetCommit, OffsetCommitter, ReaderContext};
use handover::ReaderHandover;
use reader::PartitionState;

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartOffsets {
    /// The oldest record still in the partition.
    Earliest,
    /// The end of the partition when the job starts: only records produced after.
    Latest,
    /// The group's committed offsets (earliest where there are none). Needs a group id.
    Group,
    /// The first record whose Kafka timestamp is at or after this many Unix milliseconds.
    Timestamp(i64),
    /// Given offsets by partition number (in every topic read); a partition not listed starts
    /// at its earliest record. An offset outside what the partition holds is clamped to it.
    Specific(Arc<std::collections::BTreeMap<i32, i64>>),
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
    /// process, each checkpointing into its own directory directly under it). The process then runs
    /// one group member (one reader); the operators after it can run in parallel.
    pub fn state_handover(mut self, root: impl Into<std::path::PathBuf>) -> Self {
        self.handover = Some(HandoverStore::new(root));
        self
    }

    /// As [`KafkaSource::state_handover`], with the root in an object store: `store` at the
    /// shared prefix (e.g. `s3://bucket/job`), each process checkpointing to a prefix directly
    /// under it (`s3://bucket/job/NAME`). The crate `streamcore-object-store` opens one.
    pub fn state_handover_store(
        mut self,
        store: std::sync::Arc<dyn streamcore::checkpoint::BlobStore>,
    ) -> Self {
        self.handover = Some(HandoverStore::on(store));
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
        let resolved = match &self.start {
            StartOffsets::Earliest => return partitions.iter().map(|p| marks.low(p)).collect(),
            StartOffsets::Specific(offsets) => {
                return partitions
                    .iter()
                    .map(|p| match offsets.get(&p.1) {
                        Some(&o) => Ok(o.clamp(marks.low(p)?, marks.high(p)?)),
                        None => marks.low(p),
                    })
                    .collect()
            }
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
            &StartOffsets::Timestamp(ms) => client
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
