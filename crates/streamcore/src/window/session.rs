//! The operator of session windows: per key, a sorted list of open sessions; a record opens
//! `[t, t + gap)` and merges every session it touches. Timers (ordered by time, checked lazily)
//! fire sessions when the watermark passes their end and drop them after the allowed lateness.
//! In processing time a batch's records are at the clock's time when it arrives, and the
//! runtime's clock ticks fire the sessions (all of them at the end of the input).
//!
//! The sessions of each key are keyed state on the job's backend ([`KeyedMap`]): in memory, or
//! cached in front of the LSM tree; the timers stay in memory (rebuilt from the sessions on
//! restore). A checkpoint is the map's (per key group, `(key, sessions)` pairs, or a delta).

use super::{ProcessingClock, TimeDomain, Window, WindowFunction};
use crate::checkpoint::{StateRestore, StateSnapshot};
use crate::context::TaskContext;
use crate::data::{Data, StateKey};
use crate::error::Result;
use crate::event_time::EventTime;
use crate::operator::{Operator, Output, OutputTag};
use crate::state::{KeyedMap, TimerQueue};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Session<A> {
    start: i64,
    /// Exclusive: the last record's time plus the gap.
    end: i64,
    fired: bool,
    acc: A,
}

pub(crate) struct SessionWindowOperator<T, K, KF, F: WindowFunction<K, T>> {
    key_fn: KF,
    func: F,
    gap: i64,
    lateness: i64,
    late: Option<OutputTag<T>>,
    /// Each key's open sessions, ordered by start (set in `open`).
    sessions: Option<KeyedMap<K, Vec<Session<F::Acc>>>>,
    /// Times at which a key's sessions need a look (fire or expire). Stale entries are skipped.
    timers: TimerQueue<K>,
    /// The time sessions fired up to: the watermark, or the clock in processing time.
    watermark: i64,
    domain: TimeDomain,
    clock: ProcessingClock,
}

impl<T, K, KF: Clone, F: WindowFunction<K, T>> Clone for SessionWindowOperator<T, K, KF, F> {
    fn clone(&self) -> Self {
        let mut op = Self::new(
            self.key_fn.clone(),
            self.func.clone(),
            self.gap,
            self.lateness,
            self.late.clone(),
        );
        op.domain = self.domain;
        op.clock = self.clock.clone();
        op
    }
}

impl<T, K, KF, F: WindowFunction<K, T>> SessionWindowOperator<T, K, KF, F> {
    pub(crate) fn new(
        key_fn: KF,
        func: F,
        gap: i64,
        lateness: i64,
        late: Option<OutputTag<T>>,
    ) -> Self {
        SessionWindowOperator {
            key_fn,
            func,
            gap,
            lateness,
            late,
            sessions: None,
            timers: TimerQueue::default(),
            watermark: i64::MIN,
            domain: TimeDomain::EventTime,
            clock: ProcessingClock::default(),
        }
    }

    /// Cuts sessions of processing time read from `clock` instead of event time.
    pub(crate) fn processing_time(mut self, clock: ProcessingClock) -> Self {
        self.domain = TimeDomain::ProcessingTime;
        self.lateness = 0;
        self.clock = clock;
        self
    }
}

fn window(s: &Session<impl Sized>) -> Window {
    Window {
        start: Timestamp(s.start),
        end: Timestamp(s.end),
    }
}

impl<T, K, KF, F> Operator for SessionWindowOperator<T, K, KF, F>
where
    T: Data + EventTime,
    K: StateKey,
    KF: Fn(&T) -> K + Clone + Send + 'static,
    F: WindowFunction<K, T>,
{
    type In = T;
    type Out = F::Out;

    fn open(&mut self, ctx: &mut TaskContext) -> Result<()> {
        self.sessions = Some(KeyedMap::open_incremental(ctx)?);
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: Vec<T>,
        ctx: &mut TaskContext,
        out: &mut Output<F::Out>,
    ) -> Result<()> {
        let wm = self.watermark;
        let now = match self.domain {
            TimeDomain::ProcessingTime => Some(self.clock.now()),
            TimeDomain::EventTime => None,
        };
        let sessions = self.sessions.as_mut().expect("opened");
        for record in batch {
            let ts = now.unwrap_or_else(|| record.event_time().millis());
            let (start, end) = (ts, ts.saturating_add(self.gap));
            let key = (self.key_fn)(&record);
            let list = sessions.entry_or_insert_with(key.clone(), |_| Vec::new())?;
            // Sessions touching [start, end] (inclusive, as Flink's `intersects`).
            let touching: Vec<usize> = (0..list.len())
                .filter(|&i| list[i].start <= end && start <= list[i].end)
                .collect();
            if touching.is_empty() && (end - 1).saturating_add(self.lateness) <= wm {
                // A session of its own, already expired: late.
                if list.is_empty() {
                    sessions.remove(&key)?;
                }
                let stats = ctx.stats();
                stats.late_records += 1;
                if let Some(tag) = &self.late {
                    stats.late_redirected += 1;
                    out.side(tag, record);
                }
                continue;
            }
            let mut merged = Session {
                start,
                end,
                fired: false,
                acc: self.func.create(),
            };
            // Merged in time order (an order-sensitive aggregate, SQL's LISTAGG, lists the
            // earlier session's rows first); the common case touches one session.
            let mut joined: smallvec::SmallVec<[Session<F::Acc>; 2]> =
                touching.iter().rev().map(|&i| list.remove(i)).collect();
            if joined.len() > 1 {
                joined.sort_by_key(|s| s.start);
            }
            for s in joined {
                merged.start = merged.start.min(s.start);
                merged.end = merged.end.max(s.end);
                self.func.merge(&mut merged.acc, s.acc);
            }
            self.func.add(&mut merged.acc, record);
            let max_ts = merged.end - 1;
            if max_ts <= wm {
                // Within the allowed lateness but past its end: the session fires again now.
                self.func.emit(&key, window(&merged), &merged.acc, out);
                ctx.stats().windows_fired += 1;
                merged.fired = true;
                self.timers
                    .add(max_ts.saturating_add(self.lateness), key.clone());
            } else {
                self.timers.add(max_ts, key.clone());
            }
            let at = list.partition_point(|s| s.start < merged.start);
            list.insert(at, merged);
        }
        self.update_state_stats(ctx);
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: Timestamp,
        ctx: &mut TaskContext,
        out: &mut Output<F::Out>,
    ) -> Result<Option<Timestamp>> {
        if self.domain == TimeDomain::EventTime {
            self.fire_until(watermark.millis(), ctx, out)?;
        }
        Ok(Some(watermark))
    }

    fn on_processing_time(
        &mut self,
        now: Timestamp,
        ctx: &mut TaskContext,
        out: &mut Output<F::Out>,
    ) -> Result<()> {
        if self.domain == TimeDomain::ProcessingTime {
            // A session [start, end) fires once the clock reaches its end.
            let now = self.clock.observe(now.millis());
            self.fire_until(now - 1, ctx, out)?;
        }
        Ok(())
    }

    fn close(&mut self, ctx: &mut TaskContext, out: &mut Output<F::Out>) -> Result<()> {
        if self.domain == TimeDomain::ProcessingTime {
            // The input is over: every open session is complete.
            self.fire_until(i64::MAX, ctx, out)?;
        }
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut TaskContext, state: &mut StateSnapshot) -> Result<()> {
        self.sessions
            .as_mut()
            .expect("opened")
            .snapshot(ctx, state)?;
        state.put_operator(&self.watermark)
    }

    fn restore_state(&mut self, ctx: &mut TaskContext, state: &StateRestore) -> Result<()> {
        if let Some(wm) = state.operator_states::<i64>()?.into_iter().min() {
            self.watermark = wm;
        }
        let sessions = self.sessions.as_mut().expect("opened");
        sessions.restore(state)?;
        // The timers, from the sessions: one look per session (fire, or expire once fired).
        let (timers, lateness) = (&mut self.timers, self.lateness);
        sessions.retain(|key, list| {
            for s in list {
                let due = if s.fired {
                    (s.end - 1).saturating_add(lateness)
                } else {
                    s.end - 1
                };
                timers.add(due, key.clone());
            }
            true
        })?;
        self.update_state_stats(ctx);
        Ok(())
    }
}

impl<T, K: StateKey, KF, F: WindowFunction<K, T>> SessionWindowOperator<T, K, KF, F> {
    /// Fires every session whose last timestamp `time` (the watermark, or the clock minus one)
    /// reached, and drops sessions past their allowed lateness.
    fn fire_until(
        &mut self,
        time: i64,
        ctx: &mut TaskContext,
        out: &mut Output<F::Out>,
    ) -> Result<()> {
        // Never backwards: after a restore the inputs start again from the beginning of time.
        let wm = time.max(self.watermark);
        self.watermark = wm;
        let sessions = self.sessions.as_mut().expect("opened");
        while let Some(keys) = self.timers.pop_due(wm) {
            for key in keys {
                let Some(list) = sessions.get_mut(&key)? else {
                    continue;
                };
                for s in list.iter_mut() {
                    if !s.fired && s.end - 1 <= wm {
                        self.func.emit(&key, window(s), &s.acc, out);
                        ctx.stats().windows_fired += 1;
                        s.fired = true;
                        if self.lateness > 0 {
                            self.timers
                                .add((s.end - 1).saturating_add(self.lateness), key.clone());
                        }
                    }
                }
                let lateness = self.lateness;
                list.retain(|s| (s.end - 1).saturating_add(lateness) > wm);
                if list.is_empty() {
                    sessions.remove(&key)?;
                }
            }
        }
        self.update_state_stats(ctx);
        Ok(())
    }

    fn update_state_stats(&self, ctx: &mut TaskContext) {
        let Some(sessions) = &self.sessions else {
            return;
        };
        // Inline sizes only: a cheap estimate.
        let entry = std::mem::size_of::<K>() + std::mem::size_of::<Session<F::Acc>>();
        // The earliest session not fired yet: the first timer whose key still has one ending
        // there (a few entries at most are looked at; stale ones are skipped; on the LSM
        // backend only cached keys are looked at).
        let pending = self.timers.iter().take(16).find_map(|(t, key)| {
            sessions
                .peek(key)?
                .iter()
                .find(|s| !s.fired && s.end - 1 == t)
                .map(|s| (Timestamp(s.start), Timestamp(s.end)))
        });
        let stats = ctx.stats();
        stats.state_keys = sessions.len() as u64;
        stats.state_bytes = (sessions.len() * entry) as u64;
        stats.pending_window = pending;
    }
}
