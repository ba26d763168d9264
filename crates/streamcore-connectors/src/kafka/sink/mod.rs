//! [`KafkaSink`]: writes records to a topic, at-least-once or exactly-once.
//!
//! - **At-least-once** (the default): an idempotent producer (`acks=all`); every checkpoint
//!   barrier flushes it and fails the job if a delivery failed, so everything before a
//!   completed checkpoint is in Kafka. A restore writes what came after it again.
//! - **Exactly-once** ([`KafkaSink::exactly_once`], needs checkpoints): a Kafka transaction per
//!   checkpoint and writer, pre-committed (flushed) at the barrier and committed by the
//!   checkpoint coordinator once the checkpoint is complete. Transactional ids are
//!   `PREFIX-SUBTASK-SLOT` (two slots per writer, reused), so a restarted job fences the
//!   crashed run's producers and aborts their open transactions. librdkafka cannot resume
//!   another process's transaction, so a committable also carries the transaction's records:
//!   if a job crashed after its checkpoint completed but before the commit, the restore writes
//!   them again in a new transaction — unless a commit marker (an offset of the consumer group
//!   `PREFIX-SUBTASK`, written inside each transaction with `send_offsets_to_transaction`) shows
//!   that the transaction did commit. docs/kafka.md says which broker verified which part.
//!
//! Here: the sink, its writer and the at-least-once path; `transactions`: the exactly-once
//! machinery (transactional ids, the committable, the commit marker, the committer).

mod transactions;

use transactions::{
    marker_client, transactional_id, write_marker, RecordLog, Transactions, TxnCommit, TxnCommitter,
};

use super::config::{log_line, KafkaConfig};
use super::format::{
    FieldKey, JsonEncoder, KafkaEncoder, KeyFn, NoKey, PartitionKeyOf, RecordHeader,
};
use super::kafka_error;
use super::metrics::KafkaSinkMetrics;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use streamcore::checkpoint::{decode, encode};
use streamcore::message::CheckpointId;
use streamcore::sink::{Committer, Sink, SinkWriter};
use streamcore::{Data, Event, Result, StreamError, TaskInfo};

/// How long a flush, a transaction call or a commit may take.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Transactional producers per writer: one open, one waiting for its commit.
const SLOTS: usize = 2;

/// The delivery guarantee of a [`KafkaSink`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Flushed at every checkpoint; records after the last completed checkpoint are written
    /// again on restore.
    AtLeastOnce,
    /// One Kafka transaction per checkpoint, committed when the checkpoint completes;
    /// consumers with `isolation.level=read_committed` see every record exactly once.
    ExactlyOnce {
        /// Prefix of the transactional ids; `None`: `streamcore-JOB-SINK`.
        transactional_id_prefix: Option<String>,
    },
}

/// Writes records as JSON to a Kafka topic; see the [module docs](self).
pub struct KafkaSink<T, E> {
    config: KafkaConfig,
    topic: String,
    encoder: E,
    delivery: Delivery,
    metrics: Arc<KafkaSinkMetrics>,
    /// Transactions pre-committed by this process's writers, by transactional id, until the
    /// committer commits them.
    awaiting: Awaiting,
    by_key_group: bool,
    _t: PhantomData<fn(T)>,
}

/// Partitioning by key group: the partition of a keyed record is
/// [`super::handover::partition_for_key`] of its key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct KeyGroupPartitioning {
    key_groups: u32,
    partitions: i32,
}

impl KeyGroupPartitioning {
    /// The partition of a record with `key`.
    fn partition(&self, key: &[u8]) -> i32 {
        let key = String::from_utf8_lossy(key);
        super::handover::partition_for_key(&key, self.key_groups, self.partitions)
    }
}

type Awaiting = Arc<Mutex<HashMap<String, Arc<BaseProducer<SinkContext>>>>>;

impl KafkaSink<Event, JsonEncoder<NoKey>> {
    /// Writes [`Event`]s as JSON to `topic`, without keys (choose one with
    /// [`KafkaSink::key_field`] or [`KafkaSink::key_partition_key`]).
    pub fn events(config: KafkaConfig, topic: &str) -> Self {
        Self::json(config, topic)
    }

    /// Keys records by the text of data field `name`.
    pub fn key_field(self, name: &str) -> KafkaSink<Event, JsonEncoder<FieldKey>> {
        self.with_encoder(JsonEncoder {
            key: FieldKey(name.into()),
        })
    }

    /// Keys records by their partition key.
    pub fn key_partition_key(self) -> KafkaSink<Event, JsonEncoder<PartitionKeyOf>> {
        self.with_encoder(JsonEncoder {
            key: PartitionKeyOf,
        })
    }
}

impl<T: Data + Serialize> KafkaSink<T, JsonEncoder<NoKey>> {
    /// Writes records of any serde type as JSON to `topic`, without keys.
    pub fn json(config: KafkaConfig, topic: &str) -> Self {
        KafkaSink {
            config,
            topic: topic.to_string(),
            encoder: JsonEncoder { key: NoKey },
            delivery: Delivery::AtLeastOnce,
            metrics: Arc::default(),
            awaiting: Arc::default(),
            by_key_group: false,
            _t: PhantomData,
        }
    }

    /// Keys records by `key(record)` (`None`: no key).
    pub fn key_by<F>(self, key: F) -> KafkaSink<T, JsonEncoder<KeyFn<F>>>
    where
        F: Fn(&T) -> Option<String> + Clone + Send + 'static,
    {
        self.with_encoder(JsonEncoder { key: KeyFn(key) })
    }
}

impl<T, E> KafkaSink<T, E> {
    /// Encodes records with `encoder` instead.
    pub fn with_encoder<E2>(self, encoder: E2) -> KafkaSink<T, E2> {
        KafkaSink {
            config: self.config,
            topic: self.topic,
            encoder,
            delivery: self.delivery,
            metrics: self.metrics,
            awaiting: self.awaiting,
            by_key_group: self.by_key_group,
            _t: PhantomData,
        }
    }

    /// Writes exactly once with Kafka transactions (the job needs checkpoints; consumers
    /// must read with `isolation.level=read_committed`). Transactional ids start with
    /// `streamcore-JOB-SINK`; two jobs writing at once need different job or sink names.
    pub fn exactly_once(self) -> Self {
        self.delivery(Delivery::ExactlyOnce {
            transactional_id_prefix: None,
        })
    }

    /// Partitions keyed records by key group (the job's key groups): partition `p` of `P` then
    /// holds exactly the keys of key groups `key_groups_of(p, K, P)`, what a job reading the
    /// topic with [`super::KafkaSource::state_handover`] needs (see [`super::handover`]).
    /// Write repartition topics this way.
    pub fn partition_by_key_group(mut self) -> Self {
        self.by_key_group = true;
        self
    }

    /// Sets the delivery guarantee.
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// Exactly once, with transactional ids starting with `prefix`.
    pub fn transactional_id_prefix(self, prefix: &str) -> Self {
        self.delivery(Delivery::ExactlyOnce {
            transactional_id_prefix: Some(prefix.to_string()),
        })
    }

    /// The sink's live counters (records, bytes, delivery errors, transactions).
    pub fn metrics(&self) -> Arc<KafkaSinkMetrics> {
        self.metrics.clone()
    }

    fn prefix_for(&self, task: &TaskInfo) -> String {
        match &self.delivery {
            Delivery::ExactlyOnce {
                transactional_id_prefix: Some(p),
            } => p.clone(),
            _ => format!("streamcore-{}-{}", task.job, task.name),
        }
    }
}

/// Delivery reports: errors are counted and the first one kept for the job's error.
#[derive(Default)]
struct SinkContext {
    metrics: Arc<KafkaSinkMetrics>,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_line(level, fac, log_message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", "{error}: {reason}");
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.metrics.delivery_errors.fetch_add(1, Relaxed);
            let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
            if first.is_none() {
                *first = Some(e.to_string());
            }
        }
    }
}

impl SinkContext {
    fn check(&self, topic: &str) -> Result<()> {
        match self
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            None => Ok(()),
            Some(e) => Err(kafka_error(&format!("delivering to topic `{topic}`"), e)),
        }
    }
}

fn producer(
    config: &KafkaConfig,
    metrics: &Arc<KafkaSinkMetrics>,
    transactional_id: Option<&str>,
) -> Result<BaseProducer<SinkContext>> {
    let mut own = vec![
        ("enable.idempotence", "true".to_string()),
        ("acks", "all".to_string()),
    ];
    if let Some(id) = transactional_id {
        own.push(("transactional.id", id.to_string()));
    }
    config
        .client_config(&own)
        .create_with_context(SinkContext {
            metrics: metrics.clone(),
            first_error: Mutex::new(None),
        })
        .map_err(|e| kafka_error("creating a producer", e))
}

impl<T: Data, E: KafkaEncoder<T>> Sink<T> for KafkaSink<T, E> {
    type Writer = KafkaWriter<T, E>;

    fn create_writer(&mut self, task: &TaskInfo) -> Result<Self::Writer> {
        let exactly_once = matches!(self.delivery, Delivery::ExactlyOnce { .. });
        if exactly_once && !task.checkpointing {
            return Err(StreamError::Config(format!(
                "Kafka sink `{}` is exactly-once: run the job with checkpoints (or make the sink at-least-once)",
                task.name
            )));
        }
        let txn = if exactly_once {
            let prefix = self.prefix_for(task);
            let mut producers = Vec::with_capacity(SLOTS);
            for slot in 0..SLOTS {
                let id = transactional_id(&prefix, task.subtask, slot);
                let p = producer(&self.config, &self.metrics, Some(&id))?;
                // Fences the producers of a crashed run with this id and aborts their open
                // transaction.
                p.init_transactions(TIMEOUT)
                    .map_err(|e| kafka_error(&format!("initialising transactions of `{id}`"), e))?;
                producers.push(Arc::new(p));
            }
            producers[0]
                .begin_transaction()
                .map_err(|e| kafka_error("beginning a transaction", e))?;
            let marker = marker_client(&self.config, &prefix, task.subtask)?;
            Some(Transactions {
                prefix,
                producers,
                slot: 0,
                records: RecordLog::default(),
                marker,
            })
        } else {
            None
        };
        let producer = match &txn {
            Some(t) => t.producers[0].clone(),
            None => Arc::new(producer(&self.config, &self.metrics, None)?),
        };
        let partitioning = if self.by_key_group {
            let metadata = producer
                .client()
                .fetch_metadata(Some(&self.topic), TIMEOUT)
                .map_err(|e| {
                    kafka_error(&format!("reading the metadata of `{}`", self.topic), e)
                })?;
            let partitions = metadata
                .topics()
                .iter()
                .find(|t| t.name() == self.topic)
                .map_or(0, |t| t.partitions().len()) as i32;
            if partitions == 0 {
                return Err(kafka_error(
                    "partitioning by key group",
                    format!("topic `{}` has no partitions (does it exist?)", self.topic),
                ));
            }
            Some(KeyGroupPartitioning {
                key_groups: task.key_groups,
                partitions,
            })
        } else {
            None
        };
        Ok(KafkaWriter {
            producer,
            partitioning,
            topic: self.topic.clone(),
            encoder: self.encoder.clone(),
            subtask: task.subtask,
            key: Vec::new(),
            value: Vec::new(),
            metrics: self.metrics.clone(),
            awaiting: self.awaiting.clone(),
            txn,
            _t: PhantomData,
        })
    }

    fn connector_metrics(&self) -> Option<Arc<dyn streamcore::metrics::ConnectorMetrics>> {
        Some(self.metrics.clone())
    }

    fn accepts_updates(&self) -> bool {
        self.encoder.accepts_updates()
    }

    fn committer(&mut self) -> Result<Option<Box<dyn Committer>>> {
        if !matches!(self.delivery, Delivery::ExactlyOnce { .. }) {
            return Ok(None);
        }
        Ok(Some(Box::new(TxnCommitter {
            config: self.config.clone(),
            awaiting: self.awaiting.clone(),
            metrics: self.metrics.clone(),
            restored_writers: Mutex::default(),
            done: Mutex::default(),
        })))
    }
}

/// One parallel instance of a [`KafkaSink`].
pub struct KafkaWriter<T, E> {
    producer: Arc<BaseProducer<SinkContext>>,
    partitioning: Option<KeyGroupPartitioning>,
    topic: String,
    encoder: E,
    subtask: usize,
    key: Vec<u8>,
    value: Vec<u8>,
    metrics: Arc<KafkaSinkMetrics>,
    awaiting: Awaiting,
    txn: Option<Transactions>,
    _t: PhantomData<fn(T)>,
}

/// Enqueues one record, waiting for room in the producer's queue.
fn send(
    producer: &BaseProducer<SinkContext>,
    topic: &str,
    record: Outgoing<'_>,
    partitioning: Option<KeyGroupPartitioning>,
) -> Result<()> {
    let Outgoing {
        key,
        value,
        timestamp,
        headers,
    } = record;
    let mut record = BaseRecord::<[u8], [u8]>::to(topic);
    if let Some(v) = value {
        record = record.payload(v);
    }
    if let Some(k) = key {
        record = record.key(k);
    }
    // Keyless records, or no key-group partitioning: the producer's partitioner decides.
    if let Some(p) = partitioning.zip(key).map(|(p, key)| p.partition(key)) {
        record = record.partition(p);
    }
    if let Some(t) = timestamp {
        record = record.timestamp(t);
    }
    if !headers.is_empty() {
        record = record.headers(headers.iter().fold(
            OwnedHeaders::new_with_capacity(headers.len()),
            |all, &(key, value)| all.insert(Header { key, value }),
        ));
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), again)) => {
                record = again;
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(kafka_error(&format!("producing to topic `{topic}`"), e)),
        }
    }
}

/// What [`send`] writes: a record's key (`None`: none), value (`None`: a tombstone), Kafka
/// timestamp (`None`: the producer's clock) and headers.
pub(super) struct Outgoing<'r> {
    pub(super) key: Option<&'r [u8]>,
    pub(super) value: Option<&'r [u8]>,
    pub(super) timestamp: Option<i64>,
    pub(super) headers: &'r [RecordHeader<'r>],
}

impl<T: Data, E: KafkaEncoder<T>> SinkWriter<T> for KafkaWriter<T, E> {
    fn write_batch(&mut self, batch: Vec<T>) -> Result<()> {
        let mut bytes = 0;
        for record in &batch {
            self.key.clear();
            self.value.clear();
            let has_key = self.encoder.key(record, &mut self.key);
            let tombstone = self.encoder.tombstone(record);
            if !tombstone {
                self.encoder.value(record, &mut self.value).map_err(|e| {
                    kafka_error(&format!("encoding a record for topic `{}`", self.topic), e)
                })?;
            }
            let key = has_key.then_some(self.key.as_slice());
            let value = (!tombstone).then_some(self.value.as_slice());
            let outgoing = Outgoing {
                key,
                value,
                timestamp: self.encoder.timestamp(record),
                headers: &self.encoder.headers(record),
            };
            if let Some(t) = &mut self.txn {
                t.records.push(&outgoing);
            }
            send(&self.producer, &self.topic, outgoing, self.partitioning)?;
            bytes += self.key.len() + self.value.len();
        }
        self.producer.poll(Duration::ZERO);
        self.metrics
            .records_out
            .fetch_add(batch.len() as u64, Relaxed);
        self.metrics.bytes_out.fetch_add(bytes as u64, Relaxed);
        self.producer.context().check(&self.topic)
    }

    fn pre_commit(&mut self, checkpoint: CheckpointId) -> Result<Vec<Vec<u8>>> {
        self.producer
            .flush(TIMEOUT)
            .map_err(|e| kafka_error(&format!("flushing to topic `{}`", self.topic), e))?;
        self.producer.context().check(&self.topic)?;
        let Some(t) = &mut self.txn else {
            return Ok(Vec::new());
        };
        // The marker: this transaction also commits offset `checkpoint` of the writer's
        // marker group, so a restore can tell whether it committed.
        write_marker(&self.producer, &t.marker, &self.topic, checkpoint)?;
        let id = transactional_id(&t.prefix, self.subtask, t.slot);
        let committable = encode(&TxnCommit {
            transactional_id: id.clone(),
            prefix: t.prefix.clone(),
            subtask: self.subtask,
            checkpoint,
            topic: self.topic.clone(),
            records: std::mem::take(&mut t.records),
            partitioning: self.partitioning,
        })?;
        self.awaiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, self.producer.clone());
        if checkpoint == CheckpointId::MAX {
            return Ok(vec![committable]); // the end of input: no next transaction
        }
        // The next transaction goes to the other slot, once its last transaction committed
        // (checkpoints complete one at a time, so it normally has).
        t.slot = (t.slot + 1) % SLOTS;
        let next = transactional_id(&t.prefix, self.subtask, t.slot);
        let started = Instant::now();
        while self
            .awaiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&next)
        {
            if started.elapsed() > TIMEOUT {
                return Err(kafka_error(
                    "starting a transaction",
                    format!("`{next}` still waits for its commit after {TIMEOUT:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.producer = t.producers[t.slot].clone();
        self.producer
            .begin_transaction()
            .map_err(|e| kafka_error(&format!("beginning a transaction of `{next}`"), e))?;
        Ok(vec![committable])
    }

    fn close(&mut self) -> Result<()> {
        if self.txn.is_none() {
            self.producer
                .flush(TIMEOUT)
                .map_err(|e| kafka_error(&format!("flushing to topic `{}`", self.topic), e))?;
            self.producer.context().check(&self.topic)?;
        }
        // Exactly-once: the end-of-input pre-commit handed the last transaction to the
        // committer, which commits it with the final checkpoint.
        Ok(())
    }
}
