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

/// The keys, values, timestamps and headers of a transaction's records, in order, in one
/// buffer (no allocation per record on the write path, unless records have headers).
#[derive(Default, Serialize, Deserialize)]
pub(super) struct RecordLog {
    pub(super) bytes: Vec<u8>,
    /// Per record: key length (`None`: no key), value length ([`TOMBSTONE`]: a null value).
    pub(super) lengths: Vec<(Option<u32>, u32)>,
    /// Per record, its Kafka timestamp (`None`: the producer's clock) — empty while no record
    /// of the log has one (and in logs written before timestamps were kept).
    #[serde(default)]
    pub(super) timestamps: Vec<Option<i64>>,
    /// Per record, its headers — empty while no record of the log has any (and in logs
    /// written before headers were kept).
    #[serde(default)]
    pub(super) headers: Vec<Vec<(String, Option<Vec<u8>>)>>,
}

/// A record's headers as a [`RecordLog`] keeps them: name and value (`None`: a null value).
pub(super) type KeptHeaders = [(String, Option<Vec<u8>>)];

/// A record of a [`RecordLog`]: key, value (`None`: a tombstone), timestamp, headers.
pub(super) type LoggedRecord<'l> = (
    Option<&'l [u8]>,
    Option<&'l [u8]>,
    Option<i64>,
    &'l KeptHeaders,
);

/// The value length of a tombstone (a null value) in a [`RecordLog`].
const TOMBSTONE: u32 = u32::MAX;

impl RecordLog {
    pub(super) fn push(&mut self, record: &Outgoing<'_>) {
        if record.timestamp.is_some() && self.timestamps.is_empty() {
            self.timestamps.resize(self.lengths.len(), None);
        }
        if !self.timestamps.is_empty() {
            self.timestamps.push(record.timestamp);
        }
        if !record.headers.is_empty() && self.headers.is_empty() {
            self.headers.resize(self.lengths.len(), Vec::new());
        }
        if !self.headers.is_empty() {
            self.headers.push(
                record
                    .headers
                    .iter()
                    .map(|&(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                    .collect(),
            );
        }
        if let Some(k) = record.key {
            self.bytes.extend_from_slice(k);
        }
        if let Some(v) = record.value {
            self.bytes.extend_from_slice(v);
        }
        self.lengths.push((
            record.key.map(|k| k.len() as u32),
            record.value.map_or(TOMBSTONE, |v| v.len() as u32),
        ));
    }

    pub(super) fn len(&self) -> usize {
        self.lengths.len()
    }

    /// Each record as it is written again: its key, value (`None`: a tombstone), timestamp,
    /// and its headers (owned by the log; [`borrowed`] lends them to an [`Outgoing`]).
    pub(super) fn iter(&self) -> impl Iterator<Item = LoggedRecord<'_>> {
        let mut at = 0;
        let timestamps = self
            .timestamps
            .iter()
            .copied()
            .chain(std::iter::repeat(None));
        let headers = self
            .headers
            .iter()
            .map(Vec::as_slice)
            .chain(std::iter::repeat(&[][..]));
        self.lengths.iter().zip(timestamps).zip(headers).map(
            move |((&(key, value), timestamp), headers)| {
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
                (key, v, timestamp, headers)
            },
        )
    }
}

/// Headers kept by a [`RecordLog`], as [`send`] takes them.
pub(super) fn borrowed(headers: &KeptHeaders) -> Vec<RecordHeader<'_>> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect()
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
        for (key, value, timestamp, headers) in c.records.iter() {
            let record = Outgoing {
                key,
                value,
                timestamp,
                headers: &borrowed(headers),
            };
            send(&p, &c.topic, record, c.partitioning)?;
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

    /// A record of `key`, `value`, `timestamp` and `headers`.
    fn record<'r>(
        key: Option<&'r [u8]>,
        value: Option<&'r [u8]>,
        timestamp: Option<i64>,
        headers: &'r [RecordHeader<'r>],
    ) -> Outgoing<'r> {
        Outgoing {
            key,
            value,
            timestamp,
            headers,
        }
    }

    /// What `log` gives back: key, value, timestamp and headers (borrowed) of each record.
    type Read<'l> = (
        Option<&'l [u8]>,
        Option<&'l [u8]>,
        Option<i64>,
        Vec<RecordHeader<'l>>,
    );

    fn read(log: &RecordLog) -> Vec<Read<'_>> {
        log.iter()
            .map(|(k, v, t, h)| (k, v, t, borrowed(h)))
            .collect()
    }

    /// A transaction's records as a checkpoint written before timestamps and headers were
    /// kept holds them: they decode, without either.
    #[test]
    fn record_logs_of_older_checkpoints_decode_without_timestamps_or_headers() {
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
        assert_eq!(
            read(&log),
            [(Some(&b"k"[..]), Some(&b"v"[..]), None, vec![])]
        );
        let mut log = log;
        log.push(&record(None, Some(b"w"), Some(5), &[("h", Some(b"x"))]));
        let again: RecordLog =
            streamcore::checkpoint::decode(&streamcore::checkpoint::encode(&log).unwrap()).unwrap();
        assert_eq!(
            read(&again),
            [
                (Some(&b"k"[..]), Some(&b"v"[..]), None, vec![]),
                (None, Some(&b"w"[..]), Some(5), vec![("h", Some(&b"x"[..]))])
            ]
        );
    }

    #[test]
    fn record_log_gives_back_keys_values_timestamps_and_headers_in_order() {
        let mut log = RecordLog::default();
        log.push(&record(Some(b"k1"), Some(b"v1"), None, &[]));
        log.push(&record(None, Some(b""), None, &[]));
        assert!(
            log.timestamps.is_empty() && log.headers.is_empty(),
            "no timestamp or header kept while none is set"
        );
        log.push(&record(Some(b"k2"), None, Some(7), &[]));
        let headers: [RecordHeader<'_>; 3] = [("a", Some(b"1")), ("n", None), ("a", Some(b""))];
        log.push(&record(Some(b""), Some(b"value3"), None, &headers));
        log.push(&record(None, Some(b"v4"), Some(9), &[]));
        assert_eq!(
            read(&log),
            [
                (Some(&b"k1"[..]), Some(&b"v1"[..]), None, vec![]),
                (None, Some(&b""[..]), None, vec![]),
                (Some(&b"k2"[..]), None, Some(7), vec![]),
                (Some(&b""[..]), Some(&b"value3"[..]), None, headers.to_vec()),
                (None, Some(&b"v4"[..]), Some(9), vec![]),
            ]
        );
        assert_eq!(log.len(), 5);
    }
}
