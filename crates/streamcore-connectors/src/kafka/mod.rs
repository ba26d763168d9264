//! Kafka: a source ([`KafkaSource`]) and a sink ([`KafkaSink`]) over librdkafka (the `rdkafka`
//! crate), behind the `kafka` cargo feature.
//!
//! - [`admin`]: creating topics.
//! - [`config`]: brokers, TLS and SASL options and raw client properties ([`KafkaConfig`]);
//!   secrets are never printed.
//! - [`handover`]: keyed state that follows partitions between the processes of a group.
//! - [`mod@format`]: how records are decoded from and encoded to Kafka records (JSON of a serde
//!   type, the dynamic [`streamcore::Event`] with Kafka metadata, raw bytes).
//! - [`source`]: one split per partition, offsets in checkpoints, start from earliest / latest /
//!   group offsets / a timestamp, bounded reading, consumer groups for scale-out.
//! - [`sink`]: at-least-once (flushed at every checkpoint) or exactly-once (a Kafka transaction
//!   per checkpoint, committed when the checkpoint completes).
//! - [`test_broker`]: a real broker (tansu) on 127.0.0.1 for integration tests.
//! - [`metrics`]: records and bytes in and out, consumer lag per partition, transactions.
//!
//! The guarantees, the scale-out model and which broker verified what are in docs/kafka.md.

pub mod admin;
pub mod config;
pub mod format;
pub mod handover;
pub mod metrics;
pub mod sink;
pub mod source;
pub mod test_broker;

pub use admin::create_topic;
pub use config::{KafkaConfig, SaslMechanism};
pub use format::{
    EventJson, FieldKey, Json, JsonEncoder, KafkaDecoder, KafkaEncoder, KafkaMessage, KafkaRecord,
    KeyFn, NoKey, PartitionKeyOf, Raw, RecordHeader, RecordKey,
};
pub use metrics::{KafkaSinkMetrics, KafkaSourceMetrics};
pub use sink::{Delivery, KafkaSink};
pub use source::{KafkaSource, StartOffsets};

use streamcore::StreamError;

/// A Kafka client error as a stream error, with what was being done; the client's error stays
/// the source (`rdkafka::error::KafkaError` for the client's own).
pub(crate) fn kafka_error(
    doing: &str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> StreamError {
    StreamError::external("kafka", doing, e)
}
