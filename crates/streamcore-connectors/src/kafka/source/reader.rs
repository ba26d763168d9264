//! [`KafkaReader`]: one parallel reader of a [`super::KafkaSource`] — polling, per-partition
//! positions, bounded reading, and the exactly-once release of revoked partitions.

use super::*;

/// What the reader owns in one partition.
pub(super) struct PartitionState {
    pub(super) topic: String,
    pub(super) partition: i32,
    /// Offset of the next record to hand out.
    pub(super) next: i64,
    /// Bounded: read up to here (exclusive).
    pub(super) stop: Option<i64>,
    pub(super) done: bool,
    /// Revoked: nothing more is read from it; released after the next checkpoint.
    pub(super) revoking: bool,
}

/// One parallel instance of a [`KafkaSource`].
pub struct KafkaReader<D: KafkaDecoder> {
    pub(super) consumer: Arc<BaseConsumer<ReaderContext>>,
    pub(super) subtask: usize,
    /// A group member (partitions from the group protocol).
    pub(super) grouped: bool,
    /// Has a group id: offsets are committed to it at completed checkpoints.
    pub(super) has_group: bool,
    pub(super) partitions: HashMap<u64, PartitionState>,
    pub(super) stops: Option<Arc<HashMap<Partition, i64>>>,
    pub(super) changes: Arc<Mutex<Changes>>,
    pub(super) decoder: D,
    pub(super) metrics: Arc<KafkaSourceMetrics>,
    /// A record of another partition than the batch's, decoded, held for the next poll
    /// (with its split and offset: its position advances only when it is handed out).
    pub(super) pending: Option<(u64, i64, D::Out)>,
    pub(super) split: u64,
    pub(super) last_group_check: Option<Instant>,
    pub(super) last_plain_commit: Instant,
    pub(super) group_done: bool,
    pub(super) defer_revoke: Arc<AtomicBool>,
    /// Revoked partitions are released once this checkpoint is complete.
    pub(super) release_after: Option<CheckpointId>,
    pub(super) committed: CommittedOffsets,
    pub(super) handover: Option<ReaderHandover>,
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
