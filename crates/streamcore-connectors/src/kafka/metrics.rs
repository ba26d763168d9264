//! Live counters of a Kafka source ([`KafkaSourceMetrics`]) and sink ([`KafkaSinkMetrics`]):
//! shared by all parallel instances, updated once per batch (lag once per statistics
//! interval), readable at any time as a serializable summary.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Counters of one Kafka source (all its readers).
#[derive(Debug, Default)]
pub struct KafkaSourceMetrics {
    pub(crate) records_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) rebalances: AtomicU64,
    pub(crate) offset_commits: AtomicU64,
    pub(crate) states_adopted: AtomicU64,
    pub(crate) states_handed_over: AtomicU64,
    pub(crate) states_missing: AtomicU64,
    /// `topic/partition` → consumer lag (high watermark − position), from librdkafka's
    /// statistics (every second).
    pub(crate) lag: Mutex<BTreeMap<String, i64>>,
}

/// What a Kafka source reports.
#[derive(Clone, Debug, Serialize)]
pub struct KafkaSourceSummary {
    /// Records read.
    pub records_in: u64,
    /// Value and key bytes read.
    pub bytes_in: u64,
    /// Records rejected by the decoder (failed or dead-lettered by the job's policy).
    pub rejected: u64,
    /// Partition assignments and revocations seen (consumer groups).
    pub rebalances: u64,
    /// Offset commits to the consumer group (at completed checkpoints).
    pub offset_commits: u64,
    /// State hand-over: partitions taken over with the keyed state their last owner left.
    pub states_adopted: u64,
    /// State hand-over: partitions released with their keyed state left for the next owner.
    pub states_handed_over: u64,
    /// State hand-over: partitions taken over whose state was not found (keys start empty).
    pub states_missing: u64,
    /// Consumer lag per `topic/partition`, as of the last statistics.
    pub lag: BTreeMap<String, i64>,
    /// Sum of the lags.
    pub total_lag: i64,
}

impl KafkaSourceMetrics {
    /// A snapshot of the counters.
    pub fn summary(&self) -> KafkaSourceSummary {
        let lag = self.lag.lock().unwrap_or_else(|p| p.into_inner()).clone();
        KafkaSourceSummary {
            records_in: self.records_in.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            rebalances: self.rebalances.load(Relaxed),
            offset_commits: self.offset_commits.load(Relaxed),
            states_adopted: self.states_adopted.load(Relaxed),
            states_handed_over: self.states_handed_over.load(Relaxed),
            states_missing: self.states_missing.load(Relaxed),
            total_lag: lag.values().filter(|&&l| l > 0).sum(),
            lag,
        }
    }

    pub(crate) fn set_lag(&self, partition: String, lag: i64) {
        self.lag
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(partition, lag);
    }
}

/// Counters of one Kafka sink (all its writers).
#[derive(Debug, Default)]
pub struct KafkaSinkMetrics {
    pub(crate) records_out: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) delivery_errors: AtomicU64,
    pub(crate) transactions_committed: AtomicU64,
    pub(crate) transactions_aborted: AtomicU64,
    pub(crate) transactions_recovered: AtomicU64,
}

/// What a Kafka sink reports.
#[derive(Clone, Debug, Serialize)]
pub struct KafkaSinkSummary {
    /// Records handed to the producer.
    pub records_out: u64,
    /// Value and key bytes handed to the producer.
    pub bytes_out: u64,
    /// Deliveries that failed (each fails the job: at-least-once means retry from a checkpoint).
    pub delivery_errors: u64,
    /// Transactions committed (exactly-once).
    pub transactions_committed: u64,
    /// Transactions aborted (left open by a crashed run, or failed).
    pub transactions_aborted: u64,
    /// Transactions of a checkpoint that completed before a crash, written again from the
    /// checkpoint on restore.
    pub transactions_recovered: u64,
}

impl KafkaSinkMetrics {
    /// A snapshot of the counters.
    pub fn summary(&self) -> KafkaSinkSummary {
        KafkaSinkSummary {
            records_out: self.records_out.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            delivery_errors: self.delivery_errors.load(Relaxed),
            transactions_committed: self.transactions_committed.load(Relaxed),
            transactions_aborted: self.transactions_aborted.load(Relaxed),
            transactions_recovered: self.transactions_recovered.load(Relaxed),
        }
    }
}

impl streamcore::metrics::ConnectorMetrics for KafkaSourceMetrics {
    fn report(&self) -> serde_json::Value {
        serde_json::to_value(self.summary()).unwrap_or_default()
    }
}

impl streamcore::metrics::ConnectorMetrics for KafkaSinkMetrics {
    fn report(&self) -> serde_json::Value {
        serde_json::to_value(self.summary()).unwrap_or_default()
    }
}
