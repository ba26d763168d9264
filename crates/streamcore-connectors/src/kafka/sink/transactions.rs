//! The exactly-once side of [`super::KafkaSink`]: transactional ids, the writer's open
//! transaction, the committable that carries a transaction's records, the commit marker, and
//! the committer that commits (or, after a crash, re-writes) a completed checkpoint's
//! transactions.

use super::*;

/// The transactional id of `slot` of writer `subtask`.
pub(super) fn transactional_id(prefix: &str, subtask: usize, slot: usize) -> String {
    format!("{prefix}-{subtask}-{slot}")
}

/// The consumer group whose offset marks the transactions of writer `subtask` that committed.
pub(super) fn marker_group(prefix: &str, subtask: usize) -> String {
    format!("{prefix}-{subtask}")
}

/// A client of writer `subtask`'s marker group (it reads the marker, and gives the group
/// metadata that writes it).
pub(super) fn marker_client(
    config: &KafkaConfig,
    prefix: &str,
    subtask: usize,
) -> Result<BaseConsumer> {
    config
        .client_config(&[("group.id", marker_group(prefix, subtask))])
        .create()
        .map_err(|e| kafka_error("creating the commit-marker client", e))
}

/// Adds the commit marker of `checkpoint` to `producer`'s open transaction: offset
/// `checkpoint` of `topic/0` in the marker group, committed atomically with the records.
pub(super) fn write_marker(
    producer: &BaseProducer<SinkContext>,
    marker: &BaseConsumer,
    topic: &str,
    checkpoint: CheckpointId,
) -> Result<()> {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Offset(marker_offset(checkpoint)))
        .map_err(|e| kafka_error("building the commit marker", e))?;
    let group = marker
        .group_metadata()
        .ok_or_else(|| kafka_error("building the commit marker", "no group metadata"))?;
    producer
        .send_offsets_to_transaction(&list, &group, TIMEOUT)
        .map_err(|e| kafka_error("writing the commit marker", e))
}

/// The checkpoint id as a marker offset (the final checkpoint's `MAX` included).
pub(super) fn marker_offset(checkpoint: CheckpointId) -> i64 {
    checkpoint.min(i64::MAX as u64 - 1) as i64
}

/// A pre-committed transaction: enough to commit it, or to write it again.
#[derive(Serialize, Deserialize)]
pub(super) struct TxnCommit {
    pub(super) transactional_id: String,
    pub(super) prefix: String,
    pub(super) subtask: usize,
    pub(super) checkpoint: CheckpointId,
    pub(super) topic: String,
    /// Key and value of every record of the transaction, in order.
    pub(super) records: RecordLog,
    /// How the records were partitioned (re-written the same way).
    #[serde(default)]
    pub(super) partitioning: Option<KeyGroupPartitioning>,
}

/// The keys, values and timestamps of a transaction's records, in order, in one buffer (no
/// allocation per record on the write path).
#[derive(Default, Serialize, Deserialize)]
pub(super) struct RecordLog {
    pub(super) bytes: Vec<u8>,
    /// Per record: key length (`None`: no key), value length ([`TOMBSTONE`]: a null value).
    pub(super) lengths: Vec<(Option<u32>, u32)>,
    /// Per record, its Kafka timestamp (`None`: the producer's clock) — empty while no record
    /// of the log has one (and in logs written before timestamps were kept).
    #[serde(default)]
    pub(super) timestamps: Vec<Option<i64>>,
}

/// The value length of a tombstone (a null value) in a [`RecordLog`].
const TOMBSTONE: u32 = u32::MAX;

impl RecordLog {
    pub(super) fn push(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: Option<i64>,
    ) {
        if timestamp.is_some() && self.timestamps.is_empty() {
            self.timestamps.resize(self.lengths.len(), None);
        }
        if !self.timestamps.is_empty() {
            self.timestamps.push(timestamp);
        }
        if let Some(k) = key {
            self.bytes.extend_from_slice(k);
        }
        if let Some(v) = value {
            self.bytes.extend_from_slice(v);
        }
        self.lengths.push((
            key.map(|k| k.len() as u32),
            value.map_or(TOMBSTONE, |v| v.len() as u32),
        ));
    }

    pub(super) fn len(&self) -> usize {
        self.lengths.len()
    }

    /// Key, value (`None`: a tombstone) and timestamp of each record.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Option<&[u8]>, Option<&[u8]>, Option<i64>)> {
        let mut at = 0;
        let timestamps = self
            .timestamps
            .iter()
            .copied()
            .chain(std::iter::repeat(None));
        self.lengths
            .iter()
            .zip(timestamps)
            .map(move |(&(key, value), timestamp)| {
                let key = key.map(|k| {
                    let k = &self.bytes[at..at + k as usize];
                    at += k.len();
                    k
                });
                let v = (value != TOMBSTONE).then(|| {
                    let v = &self.bytes[at..at + value as usize];
                    at += v.len();
                    v
                });
                (key, v, timestamp)
            })
    }
}

/// The transactional state of an exactly-once writer.
pub(super) struct Transactions {
    pub(super) prefix: String,
    pub(super) producers: Vec<Arc<BaseProducer<SinkContext>>>,
    pub(super) slot: usize,
    /// The open transaction's records (the committable carries them).
    pub(super) records: RecordLog,
    /// Gives the group metadata of the commit marker.
    pub(super) marker: BaseConsumer,
}

/// Commits the transactions of completed checkpoints.
pub(super) struct TxnCommitter {
    pub(super) config: KafkaConfig,
    pub(super) awaiting: Awaiting,
    pub(super) metrics: Arc<KafkaSinkMetrics>,
    /// Writers of the restored run (prefix, subtask): their transactional ids are fenced on
    /// restore, also those of subtasks that no longer exist at a lower parallelism.
    pub(super) restored_writers: Mutex<std::collections::BTreeSet<(String, usize)>>,
    /// Transactions committed by this run (a finished writer's last committable stands in
    /// every later checkpoint, so it is committed more than once).
    pub(super) done: Mutex<std::collections::HashSet<(String, CheckpointId)>>,
}

impl TxnCommitter {
    /// Whether the transaction of `c` committed: its marker offset is in the group.
    fn committed(&self, c: &TxnCommit) -> Result<bool> {
        let client = marker_client(&self.config, &c.prefix, c.subtask)?;
        let mut list = TopicPartitionList::new();
        list.add_partition(&c.topic, 0);
        let committed = client
            .committed_offsets(list, TIMEOUT)
            .map_err(|e| kafka_error("reading the commit marker", e))?;
        Ok(committed.find_partition(&c.topic, 0).is_some_and(
            |e| matches!(e.offset(), Offset::Offset(o) if o >= marker_offset(c.checkpoint)),
        ))
    }

    /// Writes the records of a transaction that a crashed run pre-committed but did not
    /// commit, in a new transaction (with its marker).
    fn recover(&self, c: &TxnCommit) -> Result<()> {
        let id = format!("{}-{}-recover", c.prefix, c.subtask);
        let p = producer(&self.config, &self.metrics, Some(&id))?;
        p.init_transactions(TIMEOUT)
            .map_err(|e| kafka_error(&format!("initialising transactions of `{id}`"), e))?;
        p.begin_transaction()
            .map_err(|e| kafka_error("beginning a recovery transaction", e))?;
        for (key, value, timestamp) in c.records.iter() {
            send(&p, &c.topic, key, value, timestamp, c.partitioning)?;
        }
        p.flush(TIMEOUT)
            .map_err(|e| kafka_error("flushing a recovery transaction", e))?;
        p.context().check(&c.topic)?;
        let marker = marker_client(&self.config, &c.prefix, c.subtask)?;
        write_marker(&p, &marker, &c.topic, c.checkpoint)?;
        p.commit_transaction(TIMEOUT)
            .map_err(|e| kafka_error(&format!("committing recovery transaction `{id}`"), e))?;
        self.metrics.transactions_recovered.fetch_add(1, Relaxed);
        tracing::info!(
            transactional_id = %c.transactional_id,
            checkpoint = c.checkpoint,
            records = c.records.len(),
            "kafka transaction of a completed checkpoint written again after a crash"
        );
        Ok(())
    }
}

impl Committer for TxnCommitter {
    fn commit(&self, committable: &[u8]) -> Result<()> {
        let c: TxnCommit = decode(committable)?;
        let key = (c.transactional_id.clone(), c.checkpoint);
        if self
            .done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
        {
            return Ok(());
        }
        self.commit_once(c)?;
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key);
        Ok(())
    }

    fn abort_uncommitted(&self) -> Result<()> {
        self.fence_restored_writers()
    }
}

impl TxnCommitter {
    fn commit_once(&self, c: TxnCommit) -> Result<()> {
        let live = self
            .awaiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&c.transactional_id)
            .cloned();
        match live {
            Some(p) => {
                p.commit_transaction(TIMEOUT).map_err(|e| {
                    kafka_error(
                        &format!("committing transaction `{}`", c.transactional_id),
                        e,
                    )
                })?;
                self.awaiting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&c.transactional_id);
                self.metrics.transactions_committed.fetch_add(1, Relaxed);
                Ok(())
            }
            // Not this run's: a restore re-committing the checkpoint it starts from.
            None => {
                self.restored_writers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((c.prefix.clone(), c.subtask));
                if self.committed(&c)? {
                    Ok(())
                } else {
                    self.recover(&c)
                }
            }
        }
    }

    fn fence_restored_writers(&self) -> Result<()> {
        let writers = std::mem::take(
            &mut *self
                .restored_writers
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for (prefix, subtask) in writers {
            for slot in 0..SLOTS {
                let id = transactional_id(&prefix, subtask, slot);
                // Initialising a transactional id fences its old producer and aborts its
                // open transaction.
                let p = producer(&self.config, &self.metrics, Some(&id))?;
                p.init_transactions(TIMEOUT)
                    .map_err(|e| kafka_error(&format!("fencing `{id}`"), e))?;
                self.metrics.transactions_aborted.fetch_add(1, Relaxed);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_markers() {
        assert_eq!(transactional_id("p", 3, 1), "p-3-1");
        assert_eq!(marker_group("p", 3), "p-3");
        assert_eq!(marker_offset(CheckpointId::MAX), i64::MAX - 1);
        assert_eq!(marker_offset(7), 7);
    }

    /// A transaction's records as a checkpoint written before timestamps were kept holds
    /// them: they decode, without timestamps.
    #[test]
    fn record_logs_of_older_checkpoints_decode_without_timestamps() {
        #[derive(Serialize)]
        struct RecordLogBeforeTimestamps {
            bytes: Vec<u8>,
            lengths: Vec<(Option<u32>, u32)>,
        }
        let old = streamcore::checkpoint::encode(&RecordLogBeforeTimestamps {
            bytes: b"kv".to_vec(),
            lengths: vec![(Some(1), 1)],
        })
        .unwrap();
        let log: RecordLog = streamcore::checkpoint::decode(&old).unwrap();
        let got: Vec<_> = log.iter().collect();
        assert_eq!(got, [(Some(&b"k"[..]), Some(&b"v"[..]), None)]);
        let mut log = log;
        log.push(None, Some(b"w"), Some(5));
        let again: RecordLog =
            streamcore::checkpoint::decode(&streamcore::checkpoint::encode(&log).unwrap()).unwrap();
        let got: Vec<_> = again.iter().map(|(_, _, t)| t).collect();
        assert_eq!(got, [None, Some(5)]);
    }

    #[test]
    fn record_log_gives_back_keys_and_values_in_order() {
        let mut log = RecordLog::default();
        log.push(Some(b"k1"), Some(b"v1"), None);
        log.push(None, Some(b""), None);
        assert!(
            log.timestamps.is_empty(),
            "no timestamp kept while none is set"
        );
        log.push(Some(b"k2"), None, Some(7));
        log.push(Some(b""), Some(b"value3"), None);
        let got: Vec<_> = log.iter().collect();
        assert_eq!(
            got,
            [
                (Some(&b"k1"[..]), Some(&b"v1"[..]), None),
                (None, Some(&b""[..]), None),
                (Some(&b"k2"[..]), None, Some(7)),
                (Some(&b""[..]), Some(&b"value3"[..]), None)
            ]
        );
        assert_eq!(log.len(), 4);
    }
}
