//! The interval join operator: the records of each side buffered by event time; a new record
//! is paired with the other side's buffered records of its key in its interval, then buffered
//! itself until the watermark guarantees no future record of the other side can pair with it.
//!
//! A side's buffer takes one of two layouts ([`JoinIndexing`]):
//! - **scanned**: one deque of `(time, key, record)` in event-time order for the whole
//!   instance. An insert is a push at the back, expiry pops from the front as the watermark
//!   passes (no timers), and a probe visits the records of the partner interval comparing keys.
//!   Cheap when the side is probed rarely (Nexmark q7: every bid is buffered, one window
//!   maximum per 10 s probes them).
//! - **indexed**: per key, keyed state on the job's backend ([`KeyedMap`]: in memory, or cached
//!   in front of the LSM tree), with one cleanup timer per key kept in memory (rebuilt from the
//!   buffers on restore). A probe visits only its key's records; an insert and an expiry cost
//!   a hash lookup each, and a key's first record an allocation.
//!
//! By default ([`JoinIndexing::Adaptive`]) both sides start scanned, and a side is indexed —
//! once, for good — when its probes have visited more than [`SCAN_PER_INSERT`] records per
//! record inserted into it (after a slack of [`SCAN_SLACK`] visits; the records that arrive out
//! of order in a batch are merged into the log at the batch's end, and the log's records that
//! merge moves count as visits, so a long log with much disorder is indexed too, where its
//! inserts are per key and short): as in the ski-rental
//! problem, scanning costs at most a constant factor of what indexing from the start would
//! have. On a backend that spills (LSM) both sides are indexed from the start, so the buffers
//! stay within the state budget.
//!
//! Checkpoints keep keyed state per key group, so that a restore at another parallelism, or a
//! key group handed to another process of a running job, takes it along: a scanned side's
//! records are lent to the keyed buffers for the snapshot and taken back after it, and the
//! operator state says which sides were scanned, so that a restore moves them back into the log.

use super::{Either, LateOutput};
use crate::checkpoint::{StateRestore, StateSnapshot};
use crate::context::TaskContext;
use crate::data::{Data, StateData, StateKey};
use crate::error::Result;
use crate::event_time::EventTime;
use crate::operator::{Operator, Output};
use crate::state::{KeyedMap, TimerQueue};
use crate::time::Timestamp;
use std::collections::VecDeque;

/// How an interval join finds a record's partners among the other side's buffered records
/// (see the module documentation of `join::interval` for the two layouts).
///
/// ```
/// use streamcore::join::JoinIndexing;
/// assert_eq!(JoinIndexing::default(), JoinIndexing::Adaptive);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JoinIndexing {
    /// Both sides start as one time-ordered buffer scanned by probes; a side is indexed by key
    /// once its probes have visited more than [`SCAN_PER_INSERT`] records per record inserted
    /// (after [`SCAN_SLACK`] visits). Indexed from the start on a backend that spills.
    #[default]
    Adaptive,
    /// Per-key buffers from the start (Flink's interval join).
    Keyed,
    /// Never indexed — except on a backend that spills, or for a side restored from a
    /// checkpoint in which it was indexed: for a join whose probes are known to be rare.
    Scanned,
}

/// [`JoinIndexing::Adaptive`] indexes a side once its probes visited more than this many
/// records per record inserted into it: about what an insert, its expiry and its share of a
/// key's allocation cost in the indexed layout, counted in visits of a scan.
pub const SCAN_PER_INSERT: u64 = 32;

/// Visits [`JoinIndexing::Adaptive`] allows before comparing with the inserts (the first probes
/// of a run decide nothing).
pub const SCAN_SLACK: u64 = 1 << 16;

/// Buffered records of one key, each side in event-time order (records mostly arrive in
/// order, so an insert is a push at the back and a prune pops from the front).
#[derive(serde::Serialize, serde::Deserialize)]
struct Buffers<A, B> {
    left: VecDeque<(i64, A)>,
    right: VecDeque<(i64, B)>,
    /// When this key's pending cleanup timer fires (`i64::MAX`: none pending). Every record
    /// expires at or after it, so one timer per key suffices, whatever its record count.
    wake: i64,
}

impl<A, B> Default for Buffers<A, B> {
    fn default() -> Self {
        Buffers {
            left: VecDeque::new(),
            right: VecDeque::new(),
            wake: i64::MAX,
        }
    }
}

impl<A, B> Buffers<A, B> {
    /// The earliest time one of the records can be pruned (`i64::MAX` when none is buffered).
    fn next_expiry(&self, lower: i64, upper: i64) -> i64 {
        let left = self
            .left
            .front()
            .map_or(i64::MAX, |(ts, _)| ts.saturating_sub(lower));
        let right = self
            .right
            .front()
            .map_or(i64::MAX, |(ts, _)| ts.saturating_add(upper));
        left.min(right)
    }
}

/// Inserts `(ts, record)` keeping `buffer` in time order (after records of the same time).
fn insert_in_order<T>(buffer: &mut VecDeque<(i64, T)>, ts: i64, record: T) {
    if buffer.back().is_none_or(|(last, _)| *last <= ts) {
        buffer.push_back((ts, record));
    } else {
        let at = buffer.partition_point(|(t, _)| *t <= ts);
        buffer.insert(at, (ts, record));
    }
}

/// The records of `buffer` with a time in `[from, to]`.
fn in_range<T>(buffer: &VecDeque<(i64, T)>, from: i64, to: i64) -> impl Iterator<Item = &T> {
    let start = buffer.partition_point(|(t, _)| *t < from);
    buffer
        .range(start..)
        .take_while(move |(t, _)| *t <= to)
        .map(|(_, record)| record)
}

/// Drops the records of `buffer` with a time at or before `bound`; returns how many.
fn prune_through<T>(buffer: &mut VecDeque<(i64, T)>, bound: i64) -> usize {
    let n = buffer.partition_point(|(t, _)| *t <= bound);
    buffer.drain(..n);
    n
}

/// One side of an interval join: its layout and what probing it cost so far.
#[derive(Clone, Copy, Debug, Default)]
struct Side {
    /// Buffered per key in the keyed map (else in the instance's time-ordered log).
    indexed: bool,
    /// Records inserted into this side.
    inserted: u64,
    /// Records of this side visited by probes while it was scanned, plus those the merges of
    /// out-of-order records moved.
    visited: u64,
}

impl Side {
    /// Whether `policy` wants this scanned side indexed now.
    fn should_index(&self, policy: ScanBudget) -> bool {
        !self.indexed
            && self.visited
                > self
                    .inserted
                    .saturating_mul(policy.per_insert)
                    .saturating_add(policy.slack)
    }
}

/// When [`JoinIndexing::Adaptive`] indexes a side (constants but for unit tests).
#[derive(Clone, Copy, Debug)]
struct ScanBudget {
    per_insert: u64,
    slack: u64,
}

/// A scanned side's buffer: `(time, key, record)` in time order.
type Log<K, T> = VecDeque<(i64, K, T)>;

/// Buffers `(ts, key, record)` in a scanned side: at the back of `log` if it is not behind the
/// log's last record, else in `unsorted` — records of the current batch that arrived out of
/// order (from several senders: at parallelism 2 the generator's two readers interleave),
/// merged into the log once at the end of the batch ([`settle`]). One record put in place at
/// a time moved the log's tail for every record.
fn log_in_order<K, T>(
    log: &mut Log<K, T>,
    unsorted: &mut Vec<(i64, K, T)>,
    ts: i64,
    key: K,
    record: T,
) {
    if log.back().is_none_or(|(last, _, _)| *last <= ts) {
        log.push_back((ts, key, record));
    } else {
        unsorted.push((ts, key, record));
    }
}

/// Merges `unsorted` into `log`, keeping it in time order (each record after the log's
/// records of the same time, and after the earlier arrivals of its time); returns how many
/// records of the log moved: those after the earliest unsorted record, or — when fewer, for a
/// straggler near the front — those up to the latest one.
fn settle<K, T>(log: &mut Log<K, T>, unsorted: &mut Vec<(i64, K, T)>) -> u64 {
    if unsorted.is_empty() {
        return 0;
    }
    unsorted.sort_by_key(|(t, _, _)| *t);
    let (first, last) = (unsorted[0].0, unsorted[unsorted.len() - 1].0);
    let from = log.partition_point(|(t, _, _)| *t <= first);
    let through = log.partition_point(|(t, _, _)| *t <= last);
    let merged = |part: Vec<(i64, K, T)>, unsorted: &mut Vec<(i64, K, T)>| {
        let mut part = part.into_iter().peekable();
        let mut out = Vec::with_capacity(part.len() + unsorted.len());
        for record in unsorted.drain(..) {
            while let Some(earlier) = part.next_if(|(t, _, _)| *t <= record.0) {
                out.push(earlier);
            }
            out.push(record);
        }
        out.extend(part);
        out
    };
    if log.len() - from <= through {
        let moved = log.len() - from;
        let tail: Vec<_> = log.drain(from..).collect();
        log.extend(merged(tail, unsorted));
        moved as u64
    } else {
        let head: Vec<_> = log.drain(..through).collect();
        for record in merged(head, unsorted).into_iter().rev() {
            log.push_front(record);
        }
        through as u64
    }
}

/// Calls `partner` on each record of `log` and of `unsorted` (see [`log_in_order`]) with key
/// `key` and a time in `[from, to]`; returns how many records were visited.
fn scan_partners<K: Eq, T>(
    log: &Log<K, T>,
    unsorted: &[(i64, K, T)],
    key: &K,
    from: i64,
    to: i64,
    mut partner: impl FnMut(&T),
) -> u64 {
    let start = log.partition_point(|(t, _, _)| *t < from);
    let mut visited = unsorted.len() as u64;
    for (t, k, record) in log.range(start..) {
        if *t > to {
            break;
        }
        visited += 1;
        if k == key {
            partner(record);
        }
    }
    for (t, k, record) in unsorted {
        if (from..=to).contains(t) && k == key {
            partner(record);
        }
    }
    visited
}

/// Drops the records of `log` with a time at or before `bound`; returns how many.
fn pop_through<K, T>(log: &mut Log<K, T>, bound: i64) -> usize {
    let n = log.partition_point(|(t, _, _)| *t <= bound);
    log.drain(..n);
    n
}

pub(crate) struct IntervalJoinOperator<A, B, K, KF, F> {
    key_fn: KF,
    join: F,
    /// `a.ts - b.ts` must lie in `[lower, upper]`.
    lower: i64,
    upper: i64,
    indexing: JoinIndexing,
    budget: ScanBudget,
    /// Each key's buffers of the indexed sides (set in `open`).
    state: Option<KeyedMap<K, Buffers<A, B>>>,
    /// When a key's buffers can be pruned: time → keys.
    cleanup: TimerQueue<K>,
    /// The buffers of the scanned sides.
    left_log: Log<K, A>,
    right_log: Log<K, B>,
    /// The records of the current batch behind their scanned side's log ([`log_in_order`]);
    /// empty between batches.
    left_unsorted: Vec<(i64, K, A)>,
    right_unsorted: Vec<(i64, K, B)>,
    left: Side,
    right: Side,
    watermark: i64,
    buffered: u64,
    /// Where late records go (else they are dropped); counted either way.
    late: LateOutput<A, B>,
}

impl<A, B, K, KF: Clone, F: Clone> Clone for IntervalJoinOperator<A, B, K, KF, F> {
    fn clone(&self) -> Self {
        IntervalJoinOperator::new(
            self.key_fn.clone(),
            self.join.clone(),
            self.lower,
            self.upper,
            self.indexing,
        )
        .late_to(self.late.clone())
    }
}

impl<A, B, K, KF, F> IntervalJoinOperator<A, B, K, KF, F> {
    pub(crate) fn new(key_fn: KF, join: F, lower: i64, upper: i64, indexing: JoinIndexing) -> Self {
        IntervalJoinOperator {
            key_fn,
            join,
            lower,
            upper,
            indexing,
            budget: ScanBudget {
                per_insert: SCAN_PER_INSERT,
                slack: SCAN_SLACK,
            },
            state: None,
            cleanup: TimerQueue::default(),
            left_log: VecDeque::new(),
            right_log: VecDeque::new(),
            left_unsorted: Vec::new(),
            right_unsorted: Vec::new(),
            left: Side::default(),
            right: Side::default(),
            watermark: i64::MIN,
            buffered: 0,
            late: None,
        }
    }

    /// Late records go to `late` (if `Some`, those of the inputs it names) instead of being
    /// dropped.
    pub(crate) fn late_to(mut self, late: LateOutput<A, B>) -> Self {
        self.late = late;
        self
    }
}

/// The operator state of a checkpoint: the watermark, and whether each side was scanned (its
/// records are in the key groups' blobs like the indexed ones', lent for the snapshot).
type Checkpoint = (i64, bool, bool);

impl<A, B, K, O, KF, F> Operator for IntervalJoinOperator<A, B, K, KF, F>
where
    A: Data + EventTime + StateData,
    B: Data + EventTime + StateData,
    K: StateKey,
    O: Data,
    KF: Fn(&Either<A, B>) -> K + Clone + Send + 'static,
    F: FnMut(&A, &B) -> O + Clone + Send + 'static,
{
    fn open(&mut self, ctx: &mut TaskContext) -> Result<()> {
        let state = KeyedMap::open_incremental(ctx)?;
        let indexed = self.indexing == JoinIndexing::Keyed || state.spills();
        self.left.indexed = indexed;
        self.right.indexed = indexed;
        self.state = Some(state);
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut TaskContext, state: &mut StateSnapshot) -> Result<()> {
        // Keyed state goes per key group, so that a restore at another parallelism, or a key
        // group handed to another process of a running job, takes it along: the scanned
        // sides' records are lent to the keyed buffers for the snapshot and taken back.
        let lent = !self.left_log.is_empty() || !self.right_log.is_empty();
        let written = match lent {
            true => self
                .lend_logs()
                .and_then(|()| self.state.as_mut().expect("opened").snapshot(ctx, state)),
            false => self.state.as_mut().expect("opened").snapshot(ctx, state),
        };
        // Taken back whatever happened (a lending that failed half-way too).
        if lent {
            self.take_logs_back()?;
        }
        written?;
        let checkpoint: Checkpoint = (self.watermark, !self.left.indexed, !self.right.indexed);
        state.put_operator(&checkpoint)
    }

    fn restore_state(&mut self, ctx: &mut TaskContext, state: &StateRestore) -> Result<()> {
        // Checkpoints written before sides could be scanned hold the watermark alone.
        let restored: Vec<Checkpoint> = match state.operator_states() {
            Ok(all) => all,
            Err(error) => match state.operator_states::<i64>() {
                Ok(old) => old.into_iter().map(|wm| (wm, false, false)).collect(),
                Err(_) => return Err(error),
            },
        };
        if let Some(wm) = restored.iter().map(|(wm, _, _)| *wm).min() {
            self.watermark = wm;
        }
        // A side every old instance scanned is scanned again: its records go back from the
        // key groups into the log. A side some instance had indexed stays indexed.
        let scanned =
            |pick: fn(&Checkpoint) -> bool| !restored.is_empty() && restored.iter().all(pick);
        let take_left = !self.left.indexed && scanned(|c| c.1);
        let take_right = !self.right.indexed && scanned(|c| c.2);
        let (lower, upper) = (self.lower, self.upper);
        let map = self.state.as_mut().expect("opened");
        map.restore(state)?;
        if !map.spills() {
            // Every key is in memory: wakes are recomputed (lent records lowered them).
            let (left_log, right_log) = (&mut self.left_log, &mut self.right_log);
            map.update_in_memory(|key, buffers| {
                if take_left {
                    left_log.extend(buffers.left.drain(..).map(|(ts, a)| (ts, key.clone(), a)));
                }
                if take_right {
                    right_log.extend(buffers.right.drain(..).map(|(ts, b)| (ts, key.clone(), b)));
                }
                buffers.wake = buffers.next_expiry(lower, upper);
                // Not a change: the checkpoint after a restore is a full one.
                false
            });
            if take_left || take_right {
                map.retain(|_, buffers| !buffers.left.is_empty() || !buffers.right.is_empty())?;
            }
            // Several keys' records, each key in time order: merged by time (a stable sort).
            self.left_log
                .make_contiguous()
                .sort_by_key(|(ts, _, _)| *ts);
            self.right_log
                .make_contiguous()
                .sort_by_key(|(ts, _, _)| *ts);
        }
        // The timers are not part of the checkpoint: each key's pending one (`wake`, at or
        // before its records' expiries) is registered again.
        let (cleanup, buffered) = (&mut self.cleanup, &mut self.buffered);
        let (mut left_keyed, mut right_keyed) = (false, false);
        map.retain(|key, buffers| {
            *buffered += (buffers.left.len() + buffers.right.len()) as u64;
            left_keyed |= !buffers.left.is_empty();
            right_keyed |= !buffers.right.is_empty();
            if buffers.wake != i64::MAX {
                cleanup.add(buffers.wake, key.clone());
            }
            true
        })?;
        self.left.indexed |= left_keyed;
        self.right.indexed |= right_keyed;
        self.buffered += (self.left_log.len() + self.right_log.len()) as u64;
        self.publish(ctx);
        Ok(())
    }

    type In = Either<A, B>;
    type Out = O;

    fn process_batch(
        &mut self,
        batch: Vec<Either<A, B>>,
        ctx: &mut TaskContext,
        out: &mut Output<O>,
    ) -> Result<()> {
        let wm = self.watermark;
        let (lower, upper) = (self.lower, self.upper);
        let adaptive = self.indexing == JoinIndexing::Adaptive;
        let budget = self.budget;
        let state = self.state.as_mut().expect("opened");
        let join = &mut self.join;
        let (left, right) = (&mut self.left, &mut self.right);
        let mut added = 0;
        for record in batch {
            let ts = record.event_time().millis();
            if ts <= wm {
                // As in Flink: a record behind the watermark may already have lost partners
                // to cleanup, so it is not joined partially: it goes to the late output if
                // there is one, else it is dropped — counted either way.
                let stats = ctx.stats();
                stats.late_records += 1;
                match &self.late {
                    Some((tag, from)) if from.takes(&record) => {
                        stats.late_redirected += 1;
                        out.side(tag, record);
                    }
                    _ => {}
                }
                continue;
            }
            added += 1;
            let key = (self.key_fn)(&record);
            match record {
                Either::Left(a) => {
                    // Partners: b.ts ∈ [a.ts - upper, a.ts - lower].
                    let (from, to) = (ts.saturating_sub(upper), ts.saturating_sub(lower));
                    left.inserted += 1;
                    if !right.indexed {
                        right.visited += scan_partners(
                            &self.right_log,
                            &self.right_unsorted,
                            &key,
                            from,
                            to,
                            |b| out.emit(join(&a, b)),
                        );
                    }
                    if !left.indexed {
                        if right.indexed {
                            // A look only: nothing of the key's state changes.
                            if let Some(buffers) = state.peek(&key) {
                                for b in in_range(&buffers.right, from, to) {
                                    out.emit(join(&a, b));
                                }
                            }
                        }
                        log_in_order(&mut self.left_log, &mut self.left_unsorted, ts, key, a);
                    } else {
                        let buffers =
                            state.entry_or_insert_with(key.clone(), |_| Buffers::default())?;
                        if right.indexed {
                            for b in in_range(&buffers.right, from, to) {
                                out.emit(join(&a, b));
                            }
                        }
                        insert_in_order(&mut buffers.left, ts, a);
                        // No future b (b.ts > wm) pairs with a once a.ts - lower <= wm.
                        let expires = ts.saturating_sub(lower);
                        if expires < buffers.wake {
                            buffers.wake = expires;
                            self.cleanup.add(expires, key);
                        }
                    }
                }
                Either::Right(b) => {
                    // Partners: a.ts ∈ [b.ts + lower, b.ts + upper].
                    let (from, to) = (ts.saturating_add(lower), ts.saturating_add(upper));
                    right.inserted += 1;
                    if !left.indexed {
                        left.visited += scan_partners(
                            &self.left_log,
                            &self.left_unsorted,
                            &key,
                            from,
                            to,
                            |a| out.emit(join(a, &b)),
                        );
                    }
                    if !right.indexed {
                        if left.indexed {
                            if let Some(buffers) = state.peek(&key) {
                                for a in in_range(&buffers.left, from, to) {
                                    out.emit(join(a, &b));
                                }
                            }
                        }
                        log_in_order(&mut self.right_log, &mut self.right_unsorted, ts, key, b);
                    } else {
                        let buffers =
                            state.entry_or_insert_with(key.clone(), |_| Buffers::default())?;
                        if left.indexed {
                            for a in in_range(&buffers.left, from, to) {
                                out.emit(join(a, &b));
                            }
                        }
                        insert_in_order(&mut buffers.right, ts, b);
                        let expires = ts.saturating_add(upper);
                        if expires < buffers.wake {
                            buffers.wake = expires;
                            self.cleanup.add(expires, key);
                        }
                    }
                }
            }
            // Decided after every record, so a batch of probes cannot overrun the budget.
            if adaptive && left.should_index(budget) {
                settle(&mut self.left_log, &mut self.left_unsorted);
                index_log(
                    &mut self.left_log,
                    state,
                    &mut self.cleanup,
                    |b| &mut b.left,
                    |ts| ts.saturating_sub(lower),
                )?;
                left.indexed = true;
            }
            if adaptive && right.should_index(budget) {
                settle(&mut self.right_log, &mut self.right_unsorted);
                index_log(
                    &mut self.right_log,
                    state,
                    &mut self.cleanup,
                    |b| &mut b.right,
                    |ts| ts.saturating_add(upper),
                )?;
                right.indexed = true;
            }
        }
        // A record put in place counts the records it moved as visits: a long log with much
        // disorder is indexed too, where its inserts are per key and short.
        left.visited += settle(&mut self.left_log, &mut self.left_unsorted);
        right.visited += settle(&mut self.right_log, &mut self.right_unsorted);
        self.buffered += added;
        self.publish(ctx);
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: Timestamp,
        ctx: &mut TaskContext,
        _out: &mut Output<O>,
    ) -> Result<Option<Timestamp>> {
        // Never backwards: after a restore the inputs start again from the beginning of time.
        let wm = watermark.millis().max(self.watermark);
        self.watermark = wm;
        let (lower, upper) = (self.lower, self.upper);
        // Left records with a.ts - lower <= wm, right ones with b.ts + upper <= wm.
        let (left_bound, right_bound) = (wm.saturating_add(lower), wm.saturating_sub(upper));
        let mut dropped = pop_through(&mut self.left_log, left_bound)
            + pop_through(&mut self.right_log, right_bound);
        let state = self.state.as_mut().expect("opened");
        while let Some(keys) = self.cleanup.pop_due(wm) {
            for key in keys {
                let Some(buffers) = state.get_mut(&key)? else {
                    continue;
                };
                if buffers.wake > wm {
                    // A stale entry: this key's pending timer is a later one.
                    continue;
                }
                dropped += prune_through(&mut buffers.left, left_bound)
                    + prune_through(&mut buffers.right, right_bound);
                buffers.wake = buffers.next_expiry(lower, upper);
                if buffers.wake == i64::MAX {
                    state.remove(&key)?;
                } else {
                    self.cleanup.add(buffers.wake, key);
                }
            }
        }
        self.buffered -= dropped as u64;
        self.publish(ctx);
        Ok(Some(watermark))
    }
}

/// Picks one side's deque of a key's buffers.
type SidePick<A, B, T> = fn(&mut Buffers<A, B>) -> &mut VecDeque<(i64, T)>;

/// Moves a scanned side's log into the keyed buffers (`side` picks that side's deque in a key's
/// buffers; `expiry` is when a record of time `ts` can be pruned). The log is in time order, so
/// each key's records arrive in order and its first one has its earliest expiry.
fn index_log<A, B, K: StateKey, T>(
    log: &mut Log<K, T>,
    state: &mut KeyedMap<K, Buffers<A, B>>,
    cleanup: &mut TimerQueue<K>,
    side: SidePick<A, B, T>,
    expiry: impl Fn(i64) -> i64,
) -> Result<()>
where
    A: StateData,
    B: StateData,
{
    for (ts, key, record) in std::mem::take(log) {
        let buffers = state.entry_or_insert_with(key.clone(), |_| Buffers::default())?;
        insert_in_order(side(buffers), ts, record);
        let expires = expiry(ts);
        if expires < buffers.wake {
            buffers.wake = expires;
            cleanup.add(expires, key);
        }
    }
    Ok(())
}

/// Copies a scanned side's log into the keyed buffers (`side` and `expiry` as for
/// [`index_log`]), lowering each key's wake to the records' expiry without a timer (see
/// `IntervalJoinOperator::lend_logs`).
fn lend_log<A, B, K: StateKey, T: Clone>(
    log: &Log<K, T>,
    state: &mut KeyedMap<K, Buffers<A, B>>,
    side: SidePick<A, B, T>,
    expiry: impl Fn(i64) -> i64,
) -> Result<()>
where
    A: StateData,
    B: StateData,
{
    for (ts, key, record) in log {
        let buffers = state.entry_or_insert_with(key.clone(), |_| Buffers::default())?;
        side(buffers).push_back((*ts, record.clone()));
        buffers.wake = buffers.wake.min(expiry(*ts));
    }
    Ok(())
}

impl<A, B, K: StateKey, KF, F> IntervalJoinOperator<A, B, K, KF, F>
where
    A: StateData + Clone,
    B: StateData + Clone,
{
    /// Copies the scanned sides' records into the keyed buffers, for a snapshot: no timer is
    /// registered (they go back to the logs right after), but each key's wake is lowered to
    /// their expiry, so that a restore on the LSM backend (which registers timers from the
    /// wakes it finds) prunes them in time. A key that keeps indexed records keeps the lowered
    /// wake, which is at or before its pending timer: that timer still fires and prunes.
    fn lend_logs(&mut self) -> Result<()> {
        let state = self.state.as_mut().expect("opened");
        let (lower, upper) = (self.lower, self.upper);
        lend_log(
            &self.left_log,
            state,
            |b| &mut b.left,
            |ts| ts.saturating_sub(lower),
        )?;
        lend_log(
            &self.right_log,
            state,
            |b| &mut b.right,
            |ts| ts.saturating_add(upper),
        )
    }

    /// Undoes [`Self::lend_logs`]: a scanned side's records in the keyed buffers are all lent
    /// ones; a key left with none is removed.
    fn take_logs_back(&mut self) -> Result<()> {
        let state = self.state.as_mut().expect("opened");
        let (left_scanned, right_scanned) = (!self.left.indexed, !self.right.indexed);
        let keys = self.left_log.iter().map(|(_, k, _)| k);
        for key in keys.chain(self.right_log.iter().map(|(_, k, _)| k)) {
            let Some(buffers) = state.get_mut(key)? else {
                continue;
            };
            if left_scanned {
                buffers.left.clear();
            }
            if right_scanned {
                buffers.right.clear();
            }
            if buffers.left.is_empty() && buffers.right.is_empty() {
                state.remove(key)?;
            }
        }
        Ok(())
    }
}

impl<A, B, K, KF, F> IntervalJoinOperator<A, B, K, KF, F> {
    /// Reports the state's size: keys (a scanned side's records count as one key each, an
    /// upper bound of its distinct keys) and bytes (the records' inline size, not what they
    /// point to).
    fn publish(&self, ctx: &mut TaskContext) {
        let stats = ctx.stats();
        stats.state_keys = self.state.as_ref().map_or(0, |s| s.len()) as u64
            + (self.left_log.len() + self.right_log.len()) as u64;
        // A keyed record is its time and itself; a logged one carries its key too.
        let record = std::mem::size_of::<A>().max(std::mem::size_of::<B>()) as u64 + 16;
        let logged = (self.left_log.len() + self.right_log.len()) as u64;
        stats.state_bytes = self.buffered * record + logged * std::mem::size_of::<K>() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(time, tag)` records of a log, tagged by where they came from.
    fn times(log: &Log<(), &'static str>) -> Vec<(i64, &'static str)> {
        log.iter().map(|(t, _, tag)| (*t, *tag)).collect()
    }

    #[test]
    fn settling_merges_late_arrivals_in_time_order_moving_the_shorter_side() {
        let log_of = |n: i64| -> Log<(), &'static str> { (0..n).map(|t| (t, (), "log")).collect() };
        // Stragglers near the end: the log's records after the earliest one's time move (8
        // and 9; 7 stays, a record arriving late goes after those of its time).
        let mut log = log_of(10);
        let mut unsorted = vec![(8, (), "late"), (7, (), "late")];
        assert_eq!(settle(&mut log, &mut unsorted), 2);
        assert!(unsorted.is_empty());
        let want: Vec<(i64, &str)> = (0..10)
            .flat_map(|t| {
                let late = (t == 7 || t == 8).then_some((t, "late"));
                std::iter::once((t, "log")).chain(late)
            })
            .collect();
        assert_eq!(times(&log), want);
        // A straggler near the front: the records up to it move (2 of 10), not the 8 after.
        let mut log = log_of(10);
        let mut unsorted = vec![(1, (), "late")];
        assert_eq!(settle(&mut log, &mut unsorted), 2);
        let mut want: Vec<(i64, &str)> = (0..10).map(|t| (t, "log")).collect();
        want.insert(2, (1, "late"));
        assert_eq!(times(&log), want);
        // Earlier than everything, and nothing to merge.
        let mut unsorted = vec![(-1, (), "first")];
        assert_eq!(settle(&mut log, &mut unsorted), 0);
        assert_eq!(times(&log)[0], (-1, "first"));
        assert_eq!(settle(&mut log, &mut Vec::new()), 0);
        assert_eq!(log.len(), 12);
    }
    use crate::operator::test_support::Collect;
    use proptest::prelude::*;
    use std::sync::{Arc, Mutex};

    /// (time, key, id)
    type Rec = (Timestamp, u8, u32);
    type Key = fn(&Either<Rec, Rec>) -> u8;
    type Join = fn(&Rec, &Rec) -> (u32, u32);
    type Op = IntervalJoinOperator<Rec, Rec, u8, Key, Join>;

    fn key(e: &Either<Rec, Rec>) -> u8 {
        match e {
            Either::Left(a) => a.1,
            Either::Right(b) => b.1,
        }
    }

    fn pair(a: &Rec, b: &Rec) -> (u32, u32) {
        (a.2, b.2)
    }

    /// One operator instance driven by hand, its output collected.
    struct Harness {
        op: Op,
        ctx: TaskContext,
        out: Output<(u32, u32)>,
        sink: Arc<Mutex<Vec<(u32, u32)>>>,
    }

    impl Harness {
        fn new(indexing: JoinIndexing, budget: ScanBudget, lower: i64, upper: i64) -> Self {
            let sink = Arc::new(Mutex::new(Vec::new()));
            let mut op: Op = IntervalJoinOperator::new(key, pair, lower, upper, indexing);
            op.budget = budget;
            let mut ctx = TaskContext::for_test("interval");
            op.open(&mut ctx).unwrap();
            Harness {
                op,
                ctx,
                out: Output::new(1024, Box::new(Collect(sink.clone())), Vec::new()),
                sink,
            }
        }

        fn batch(&mut self, batch: Vec<Either<Rec, Rec>>) {
            self.op
                .process_batch(batch, &mut self.ctx, &mut self.out)
                .unwrap();
        }

        fn watermark(&mut self, wm: i64) {
            self.op
                .on_watermark(Timestamp(wm), &mut self.ctx, &mut self.out)
                .unwrap();
        }

        /// Checkpoints this instance and restores the state into a new one laid out by
        /// `indexing` (what it emitted so far is kept).
        fn restored(mut self, indexing: JoinIndexing, budget: ScanBudget) -> Self {
            self.out.flush().unwrap();
            let mut snapshot = StateSnapshot::default();
            self.op
                .snapshot_state(&mut self.ctx, &mut snapshot)
                .unwrap();
            let (lower, upper) = (self.op.lower, self.op.upper);
            let mut next = Harness::new(indexing, budget, lower, upper);
            next.sink = self.sink.clone();
            next.out = Output::new(1024, Box::new(Collect(self.sink.clone())), Vec::new());
            let restore = StateRestore {
                groups: snapshot.groups,
                operator: snapshot.operator.into_iter().collect(),
            };
            next.op.restore_state(&mut next.ctx, &restore).unwrap();
            next
        }

        /// The layouts' invariants: a side's records are all in its log or all keyed, and
        /// `buffered` counts them all.
        fn check(&mut self) {
            let (mut left, mut right) = (0, 0);
            self.op.state.as_mut().unwrap().update_in_memory(|_, b| {
                left += b.left.len();
                right += b.right.len();
                false
            });
            assert!(
                self.op.left.indexed || left == 0,
                "left scanned, {left} keyed"
            );
            assert!(!self.op.left.indexed || self.op.left_log.is_empty());
            assert!(
                self.op.right.indexed || right == 0,
                "right scanned, {right} keyed"
            );
            assert!(!self.op.right.indexed || self.op.right_log.is_empty());
            let logs = self.op.left_log.len() + self.op.right_log.len();
            assert_eq!(self.op.buffered as usize, left + right + logs);
        }

        fn emitted(&mut self) -> Vec<(u32, u32)> {
            self.out.flush().unwrap();
            let mut v = self.sink.lock().unwrap().clone();
            v.sort();
            v
        }
    }

    fn reference(records: &[Either<Rec, Rec>], lower: i64, upper: i64) -> Vec<(u32, u32)> {
        let mut v = Vec::new();
        for l in records {
            for r in records {
                if let (Either::Left(a), Either::Right(b)) = (l, r) {
                    let d = a.0.millis() - b.0.millis();
                    if a.1 == b.1 && lower <= d && d <= upper {
                        v.push((a.2, b.2));
                    }
                }
            }
        }
        v.sort();
        v
    }

    /// Records of both sides, times advancing by 0..20 ms, each lagging at most `DELAY`
    /// behind the largest time before it.
    const DELAY: i64 = 40;

    fn records() -> impl Strategy<Value = Vec<Either<Rec, Rec>>> {
        // Lags of exactly `DELAY` put records right after the watermark: the boundary of
        // expiry.
        let lag = prop_oneof![0..=DELAY, Just(DELAY)];
        let step = prop_oneof![Just(0), 0i64..20];
        prop::collection::vec((step, lag, 0u8..3, any::<bool>()), 0..160).prop_map(|steps| {
            let mut base = 0;
            steps
                .into_iter()
                .enumerate()
                .map(|(i, (step, lag, k, left))| {
                    base += step;
                    let r = (Timestamp((base - lag).max(0)), k, i as u32);
                    if left {
                        Either::Left(r)
                    } else {
                        Either::Right(r)
                    }
                })
                .collect()
        })
    }

    fn mode() -> impl Strategy<Value = (JoinIndexing, ScanBudget)> {
        prop_oneof![
            Just((JoinIndexing::Keyed, BUDGET)),
            Just((JoinIndexing::Scanned, BUDGET)),
            Just((JoinIndexing::Adaptive, BUDGET)),
            // A budget small enough for sides to switch in the middle of a run.
            (0u64..3, 0u64..20).prop_map(|(per_insert, slack)| (
                JoinIndexing::Adaptive,
                ScanBudget { per_insert, slack }
            )),
        ]
    }

    /// The latest time among `records` and `max`.
    fn latest(records: &[Either<Rec, Rec>], max: i64) -> i64 {
        records
            .iter()
            .map(|r| match r {
                Either::Left(a) | Either::Right(a) => a.0.millis(),
            })
            .fold(max, i64::max)
    }

    const BUDGET: ScanBudget = ScanBudget {
        per_insert: SCAN_PER_INSERT,
        slack: SCAN_SLACK,
    };

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Every layout, switched mid-run and restored from a checkpoint into another layout,
        /// pairs exactly what a nested loop pairs.
        #[test]
        fn every_layout_pairs_what_a_nested_loop_pairs(
            records in records(),
            lower in -60i64..30,
            width in 0i64..80,
            batch in 1usize..12,
            first in mode(),
            then in mode(),
            checkpoint_at in 0usize..20,
        ) {
            let upper = lower + width;
            let mut h = Harness::new(first.0, first.1, lower, upper);
            let mut max = i64::MIN;
            for (i, chunk) in records.chunks(batch).enumerate() {
                max = latest(chunk, max);
                h.batch(chunk.to_vec());
                h.check();
                h.watermark(max - DELAY - 1);
                h.check();
                if i == checkpoint_at {
                    h = h.restored(then.0, then.1);
                    h.check();
                }
            }
            // Everything expires once the watermark passes every record.
            h.watermark(i64::MAX / 4);
            h.check();
            prop_assert_eq!(h.op.buffered, 0);
            prop_assert_eq!(h.ctx.stats().late_records, 0);
            prop_assert_eq!(h.emitted(), reference(&records, lower, upper));
        }
    }

    /// An operator whose context checkpoints, on `backend` (`None`: no backend, plain maps).
    fn checkpointing(
        (indexing, budget): (JoinIndexing, ScanBudget),
        lower: i64,
        upper: i64,
        backend: Option<crate::state::StateConfig>,
    ) -> (Op, TaskContext) {
        let mut op: Op = IntervalJoinOperator::new(key, pair, lower, upper, indexing);
        op.budget = budget;
        let mut ctx = TaskContext::for_test("interval");
        ctx.info.checkpointing = true;
        ctx.state_backend = backend.map(|c| crate::state::StateBackend::open(&c, "test").unwrap());
        op.open(&mut ctx).unwrap();
        (op, ctx)
    }

    /// The backends a checkpointing test runs on: plain memory, memory with incremental
    /// checkpoints, and (with the feature) the LSM tree with a tiny cache.
    fn backend(i: u8) -> Option<crate::state::StateConfig> {
        use crate::state::StateConfig;
        match i {
            0 => None,
            1 => Some(StateConfig::memory().incremental(true).full_every(100)),
            #[cfg(feature = "lsm")]
            2 => Some(StateConfig::lsm(1 << 12).incremental(true).full_every(100)),
            #[cfg(feature = "lsm")]
            _ => Some(StateConfig::lsm(1 << 12)),
            #[cfg(not(feature = "lsm"))]
            _ => Some(StateConfig::memory().incremental(true).full_every(2)),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Checkpoints every few batches of one continuing run (the scanned records lent and
        /// taken back each time; incremental deltas chained), then a crash: a new instance, in
        /// another layout and on another backend, restored from the last checkpoint's chain,
        /// takes the batches after it again. The pairs are the nested loop's, and once the
        /// watermark passes everything no record, log entry or key is left.
        #[test]
        fn checkpoints_of_a_running_join_restore_anywhere(
            records in records(),
            lower in -60i64..30,
            width in 0i64..80,
            batch in 1usize..8,
            first in mode(),
            then in mode(),
            b1 in 0u8..4,
            b2 in 0u8..4,
            every in 1usize..4,
            crash_at in 0usize..40,
        ) {
            use crate::context::SnapshotTarget;
            let upper = lower + width;
            let sink = Arc::new(Mutex::new(Vec::new()));
            let mut out: Output<(u32, u32)> =
                Output::new(1024, Box::new(Collect(sink.clone())), Vec::new());
            let (mut op, mut ctx) = checkpointing(first, lower, upper, backend(b1));
            let chunks: Vec<Vec<Either<Rec, Rec>>> =
                records.chunks(batch).map(|c| c.to_vec()).collect();
            let mut wms = Vec::new();
            let mut max = i64::MIN;
            for c in &chunks {
                max = latest(c, max);
                wms.push(max - DELAY - 1);
            }
            let mut blobs: Vec<(u32, Vec<u8>)> = Vec::new();
            let mut operator_state: Option<Vec<u8>> = None;
            // (next batch, pairs emitted) at the last checkpoint
            let mut at_checkpoint: Option<(usize, usize)> = None;
            let (mut id, mut i, mut crashed) = (0u64, 0, false);
            while i < chunks.len() {
                op.process_batch(chunks[i].clone(), &mut ctx, &mut out).unwrap();
                op.on_watermark(Timestamp(wms[i]), &mut ctx, &mut out).unwrap();
                i += 1;
                if i % every == 0 {
                    id += 1;
                    out.flush().unwrap();
                    let mut snapshot = StateSnapshot::default();
                    ctx.snapshot_target = Some(SnapshotTarget {
                        id,
                        name: format!("chk-{id}"),
                        completed: id - 1,
                    });
                    op.snapshot_state(&mut ctx, &mut snapshot).unwrap();
                    ctx.snapshot_target = None;
                    if snapshot.chain.is_empty() {
                        blobs.clear();
                    }
                    blobs.extend(snapshot.groups);
                    operator_state = snapshot.operator;
                    at_checkpoint = Some((i, sink.lock().unwrap().len()));
                }
                if !crashed && i == crash_at {
                    crashed = true;
                    if let Some((next, emitted)) = at_checkpoint.take() {
                        out.flush().unwrap();
                        sink.lock().unwrap().truncate(emitted);
                        let (mut again, mut again_ctx) =
                            checkpointing(then, lower, upper, backend(b2));
                        let restore = StateRestore {
                            groups: std::mem::take(&mut blobs),
                            operator: operator_state.take().into_iter().collect(),
                        };
                        again.restore_state(&mut again_ctx, &restore).unwrap();
                        (op, ctx) = (again, again_ctx);
                        id += 10;
                        i = next;
                    }
                }
            }
            op.on_watermark(Timestamp(i64::MAX / 4), &mut ctx, &mut out).unwrap();
            prop_assert_eq!(op.buffered, 0);
            prop_assert_eq!(op.left_log.len() + op.right_log.len(), 0);
            prop_assert_eq!(op.state.as_ref().unwrap().len(), 0, "keys left in the map");
            out.flush().unwrap();
            let mut got = sink.lock().unwrap().clone();
            got.sort();
            prop_assert_eq!(got, reference(&records, lower, upper));
        }
    }

    #[test]
    fn a_side_is_indexed_once_probes_scan_more_than_its_budget() {
        // `a.ts - b.ts ∈ [-50, 0]`: a right record probes the left records of the 50 ms before
        // it, a left record the right ones of the 50 ms after it.
        let budget = ScanBudget {
            per_insert: 2,
            slack: 100,
        };
        let mut h = Harness::new(JoinIndexing::Adaptive, budget, -50, 0);
        let mut all = Vec::new();
        let mut feed = |h: &mut Harness, batch: Vec<Either<Rec, Rec>>, wm: i64| {
            all.extend(batch.clone());
            h.batch(batch);
            h.watermark(wm);
        };
        // 1000 left records over 10 keys, one right record per 100 of them: 10 probes of
        // ~51 visits against 1000 inserts. Both sides stay scanned.
        for i in 0..1000u32 {
            let mut batch = vec![Either::Left((Timestamp(i as i64), (i % 10) as u8, i))];
            if i % 100 == 99 {
                batch.push(Either::Right((Timestamp(i as i64), 3, 10_000 + i)));
            }
            feed(&mut h, batch, i as i64 - 60);
        }
        assert!(!h.op.left.indexed && !h.op.right.indexed, "{:?}", h.op.left);
        // Expired records left the log: a left record waits for right ones up to 50 ms
        // later, behind a watermark 60 ms late.
        assert_eq!(h.op.left_log.len(), 110);
        // Five right records per left one: the left side is indexed, the right stays scanned.
        for i in 1000..1100u32 {
            let mut batch = vec![Either::Left((Timestamp(i as i64), (i % 10) as u8, i))];
            batch.extend(
                (0..5).map(|k| Either::Right((Timestamp(i as i64), k, 20_000 + i * 5 + k as u32))),
            );
            feed(&mut h, batch, i as i64 - 60);
        }
        assert!(h.op.left.indexed && h.op.left_log.is_empty());
        assert!(!h.op.right.indexed);
        // Right records ahead of the left ones: each left record probes ~30 of them.
        for i in 1100..1400u32 {
            let batch = vec![
                Either::Right((Timestamp(i as i64 + 20), (i % 10) as u8, 30_000 + i)),
                Either::Left((Timestamp(i as i64), (i % 10) as u8, i)),
            ];
            feed(&mut h, batch, i as i64 - 60);
        }
        assert!(h.op.right.indexed && h.op.right_log.is_empty());
        assert_eq!(h.emitted(), reference(&all, -50, 0));
        assert!(h.emitted().len() > 1000);
    }

    #[test]
    fn a_scanned_side_whose_late_records_move_many_others_is_indexed() {
        // Left records alternate between two time ranges far apart, so each record of the
        // earlier range is put in the middle of the log; no probe ever comes.
        let budget = ScanBudget {
            per_insert: 2,
            slack: 100,
        };
        let mut h = Harness::new(JoinIndexing::Adaptive, budget, -100_000, 100_000);
        let mut all = Vec::new();
        for i in 0..400u32 {
            let ts = if i % 2 == 0 {
                50_000 + i as i64
            } else {
                i as i64
            };
            let a = Either::Left((Timestamp(ts), (i % 4) as u8, i));
            all.push(a.clone());
            h.batch(vec![a]);
        }
        assert!(
            h.op.left.indexed && h.op.left_log.is_empty(),
            "{:?}",
            h.op.left
        );
        assert_eq!(h.op.right.visited, 0);
        let probe = Either::Right((Timestamp(1_000), 1, 9_999));
        all.push(probe.clone());
        h.batch(vec![probe]);
        assert_eq!(h.emitted(), reference(&all, -100_000, 100_000));
        assert_eq!(h.emitted().len(), 100);
    }

    #[test]
    fn a_checkpoint_of_the_watermark_alone_still_restores() {
        // Checkpoints written before scanned sides existed hold the watermark as operator state.
        let mut snapshot = StateSnapshot::default();
        snapshot.put_operator(&1234i64).unwrap();
        let mut h = Harness::new(JoinIndexing::Adaptive, BUDGET, 0, 10);
        let restore = StateRestore {
            groups: Vec::new(),
            operator: snapshot.operator.into_iter().collect(),
        };
        h.op.restore_state(&mut h.ctx, &restore).unwrap();
        assert_eq!(h.op.watermark, 1234);
    }
}
