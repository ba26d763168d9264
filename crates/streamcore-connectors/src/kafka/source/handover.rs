//! The reader's side of the state hand-over ([`crate::kafka::handover`]): adopting the state of
//! assigned partitions before reading them, and leaving the state of released ones for their
//! next owner.

use super::*;

/// A reader's side of the state hand-over (see [`crate::kafka::handover`]).
#[derive(Clone)]
pub(super) struct ReaderHandover {
    pub(super) store: HandoverStore,
    /// The topic's partition count.
    pub(super) partitions: i32,
    /// The first assignment drops the key groups of every partition not assigned (what a
    /// restored checkpoint brought along).
    pub(super) assigned_once: bool,
    /// Partitions whose state the operators hold from the restored checkpoint, with the
    /// position it is at (until the partition is released).
    pub(super) restored: HashMap<i32, i64>,
}

impl<D: KafkaDecoder> KafkaReader<D> {
    /// State hand-over: before any record of the `assigned` partitions is read, their key
    /// groups take the state their last owner left (see [`crate::kafka::handover`]), and reading
    /// starts where that state ends. The first assignment also drops every other partition's
    /// key groups (a restored checkpoint brings the state of all partitions the process had).
    pub(super) fn adopt_state(
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
        let source = ctx.info().id.to_string();
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
                        from = %found.from,
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
    pub(super) fn leave_state(
        &self,
        released: &[(String, i32, i64)],
        ctx: &TaskContext,
    ) -> Result<()> {
        let Some(h) = &self.handover else {
            return Ok(());
        };
        // The completed checkpoint, from the job's own storage (a directory or an object store).
        let Some(checkpoint) = ctx.load_completed_checkpoint()? else {
            return Ok(());
        };
        let key_groups = ctx.info().key_groups;
        for (topic, partition, next) in released {
            let groups = key_groups_of_partition(*partition, key_groups, h.partitions);
            let state = KeyGroupState::from_checkpoint(&checkpoint, &[groups]);
            let path = h.store.write(topic, *partition, *next, &state)?;
            tracing::info!(
                topic = %topic,
                partition = *partition,
                next = *next,
                entries = state.len(),
                path = %path,
                "kafka partition's keyed state left for its next owner"
            );
            self.metrics.states_handed_over.fetch_add(1, Relaxed);
        }
        Ok(())
    }
}
