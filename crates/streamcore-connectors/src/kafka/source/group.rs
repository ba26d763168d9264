//! The consumer-group side of [`super::KafkaReader`]: the consumer's callbacks (logs, lag
//! statistics, rebalances, which the reader applies between polls) and the committer that
//! commits a completed checkpoint's offsets to the group.

use super::*;

/// Assignments and revocations the rebalance callback saw, for the reader to apply.
#[derive(Default)]
pub(super) struct Changes {
    pub(super) assigned: Vec<(Partition, i64)>,
    /// An assignment came (possibly of no partition).
    pub(super) assignment_seen: bool,
    pub(super) revoked: Vec<Partition>,
    /// Revoked, to be released after a checkpoint.
    pub(super) revoking: Vec<Partition>,
}

/// The consumer's callbacks: logs, statistics (lag), rebalances (group mode).
pub(super) struct ReaderContext {
    pub(super) metrics: Arc<KafkaSourceMetrics>,
    pub(super) changes: Arc<Mutex<Changes>>,
    /// Positions from the restored checkpoint (group mode): a partition assigned to this
    /// process starts at the later of its group offset and this.
    pub(super) hints: Arc<HashMap<Partition, i64>>,
    /// With checkpoints: revoked partitions are paused, and released only once a checkpoint
    /// covering everything read from them is complete and committed (see `KafkaReader`).
    pub(super) defer_revoke: Arc<AtomicBool>,
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

pub(super) fn offsets_list(positions: &[PartitionOffset]) -> Result<TopicPartitionList> {
    let mut list = TopicPartitionList::new();
    for p in positions {
        list.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next))
            .map_err(|e| kafka_error("building a partition list", e))?;
    }
    Ok(list)
}

/// Commits the offsets of a completed checkpoint to the consumer group, through the member
/// that owns the partitions (only partitions it still owns: a partition that moved to another
/// member meanwhile has a newer owner whose commits must not be overwritten).
pub(super) struct OffsetCommitter {
    pub(super) members: Members,
    pub(super) metrics: Arc<KafkaSourceMetrics>,
    pub(super) committed: CommittedOffsets,
}

/// A committable of the source: which reader, and its positions.
#[derive(Serialize, Deserialize)]
pub(super) struct OffsetCommit {
    pub(super) subtask: usize,
    pub(super) positions: Vec<PartitionOffset>,
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
