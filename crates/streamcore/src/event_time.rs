//! Event time: the [`EventTime`] of a record, and [`WatermarkStrategy`] — how sources derive
//! watermarks from the timestamps they read, per split, with idleness.
//!
//! A watermark `w` says: no record with an event time `<= w` is expected any more. Under
//! bounded out-of-orderness with delay `d`, a split that has seen a largest timestamp `m`
//! emits `m - d - 1` (Flink's rule), so records up to `d` behind the largest are on time. A
//! reader's watermark is the minimum over its active splits; a split that produced nothing for
//! the idle timeout stops holding it back, and a reader whose splits are all idle says so
//! downstream, where the exchange leaves it out of the minimum until it produces again.

use crate::time::Timestamp;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A record that carries its event time.
///
/// ```
/// use streamcore::{EventTime, Timestamp};
/// #[derive(Clone)]
/// struct Click { at: Timestamp, user: u32 }
/// impl EventTime for Click {
///     fn event_time(&self) -> Timestamp { self.at }
/// }
/// ```
pub trait EventTime {
    /// The record's event time.
    fn event_time(&self) -> Timestamp;
}

impl EventTime for crate::Event {
    #[inline]
    fn event_time(&self) -> Timestamp {
        self.timestamp
    }
}

impl<A> EventTime for (Timestamp, A) {
    #[inline]
    fn event_time(&self) -> Timestamp {
        self.0
    }
}

impl<A, B> EventTime for (Timestamp, A, B) {
    #[inline]
    fn event_time(&self) -> Timestamp {
        self.0
    }
}

impl<A, B, C> EventTime for (Timestamp, A, B, C) {
    #[inline]
    fn event_time(&self) -> Timestamp {
        self.0
    }
}

/// How a source turns the event times it reads into watermarks.
///
/// ```
/// use std::time::Duration;
/// use streamcore::WatermarkStrategy;
/// let s = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
///     .with_idle_timeout(Duration::from_secs(30));
/// assert_eq!(s.max_delay(), Duration::from_secs(5));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatermarkStrategy {
    max_delay: Duration,
    idle_timeout: Option<Duration>,
}

impl WatermarkStrategy {
    /// Records may arrive up to `max_delay` behind the largest event time seen in their split.
    pub fn bounded_out_of_orderness(max_delay: Duration) -> Self {
        WatermarkStrategy {
            max_delay,
            idle_timeout: None,
        }
    }

    /// Event times never decrease within a split.
    pub fn monotonous() -> Self {
        Self::bounded_out_of_orderness(Duration::ZERO)
    }

    /// A split that produced no record for `timeout` (wall-clock) stops holding the watermark
    /// back until it produces again.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// The allowed disorder.
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The idle timeout, if any.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }
}

/// Where a source's watermark stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WatermarkStatus {
    /// Active, with this watermark (`Timestamp::MIN` until a record was seen).
    Active(Timestamp),
    /// Every split is idle: leave this source out of the minimum downstream.
    Idle,
}

/// Generates the watermark of one source reader from the batches it reads.
pub(crate) trait WatermarkGenerator<T>: Send {
    /// Sees a batch read from `split`.
    fn observe(&mut self, split: u64, batch: &[T], now: Instant);
    /// Sees records read from `split` whose highest event time is `max` but that the reader
    /// dropped (a filter pushed into it): they advance the watermark all the same.
    fn observe_time(&mut self, split: u64, max: Timestamp, now: Instant);
    /// `split` has no more records.
    fn finish_split(&mut self, split: u64);
    /// `split` will be read: it holds the watermark back until its first records.
    fn announce_split(&mut self, split: u64, now: Instant);
    /// The reader's watermark status now.
    fn status(&mut self, now: Instant) -> WatermarkStatus;
    /// The watermark of each split now, for the metrics (a few times a second).
    fn report(&self, now: Instant) -> crate::metrics::SplitsReport;
}

struct SplitState {
    max_seen: Timestamp,
    last_record: Instant,
}

/// Bounded out-of-orderness per split, minimum over active splits.
pub(crate) struct SplitWatermarks {
    delay_ms: i64,
    idle_timeout: Option<Duration>,
    splits: HashMap<u64, SplitState>,
    /// Highest watermark reported: what finished splits no longer hold back.
    floor: Timestamp,
    /// When the generator was first asked: a reader that never produced anything is idle
    /// once the timeout has passed since then (as in Flink, idleness counts from the start).
    started: Option<Instant>,
}

impl SplitWatermarks {
    pub(crate) fn new(strategy: WatermarkStrategy) -> Self {
        SplitWatermarks {
            delay_ms: strategy.max_delay.as_millis().min(i64::MAX as u128) as i64,
            idle_timeout: strategy.idle_timeout,
            splits: HashMap::new(),
            floor: Timestamp::MIN,
            started: None,
        }
    }
}

impl<T: EventTime + Send> WatermarkGenerator<T> for SplitWatermarks {
    fn observe(&mut self, split: u64, batch: &[T], now: Instant) {
        if let Some(max) = batch.iter().map(EventTime::event_time).max() {
            <Self as WatermarkGenerator<T>>::observe_time(self, split, max, now);
        }
    }

    fn observe_time(&mut self, split: u64, max: Timestamp, now: Instant) {
        let state = self.splits.entry(split).or_insert(SplitState {
            max_seen: Timestamp::MIN,
            last_record: now,
        });
        state.max_seen = state.max_seen.max(max);
        state.last_record = now;
    }

    fn finish_split(&mut self, split: u64) {
        self.splits.remove(&split);
    }

    fn announce_split(&mut self, split: u64, now: Instant) {
        self.splits.entry(split).or_insert(SplitState {
            max_seen: Timestamp::MIN,
            last_record: now,
        });
    }

    fn report(&self, now: Instant) -> crate::metrics::SplitsReport {
        let mut splits: Vec<_> = self
            .splits
            .iter()
            .map(|(&split, s)| crate::metrics::SplitStatus {
                split,
                watermark: (s.max_seen != Timestamp::MIN).then(|| {
                    Timestamp(s.max_seen.0.saturating_sub(self.delay_ms).saturating_sub(1))
                }),
                idle: self
                    .idle_timeout
                    .is_some_and(|t| now.duration_since(s.last_record) >= t),
                last_record_ago_ms: now.duration_since(s.last_record).as_millis() as u64,
            })
            .collect();
        splits.sort_by_key(|s| s.split);
        crate::metrics::SplitsReport {
            idle_timeout_ms: self.idle_timeout.map(|t| t.as_millis() as u64),
            splits,
            generates_watermarks: true,
        }
    }

    fn status(&mut self, now: Instant) -> WatermarkStatus {
        let started = *self.started.get_or_insert(now);
        if self.splits.is_empty() {
            let idle = self
                .idle_timeout
                .is_some_and(|t| now.duration_since(started) >= t);
            return if idle {
                WatermarkStatus::Idle
            } else {
                WatermarkStatus::Active(self.floor)
            };
        }
        let active = self.splits.values().filter(|s| {
            self.idle_timeout
                .is_none_or(|t| now.duration_since(s.last_record) < t)
        });
        match active
            .map(|s| Timestamp(s.max_seen.0.saturating_sub(self.delay_ms).saturating_sub(1)))
            .min()
        {
            Some(w) => {
                self.floor = self.floor.max(w);
                WatermarkStatus::Active(self.floor)
            }
            None => WatermarkStatus::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ts: &[i64]) -> Vec<(Timestamp, ())> {
        ts.iter().map(|&t| (Timestamp(t), ())).collect()
    }

    #[test]
    fn bounded_delay_per_split_minimum_over_splits() {
        let mut g = SplitWatermarks::new(WatermarkStrategy::bounded_out_of_orderness(
            Duration::from_millis(10),
        ));
        let now = Instant::now();
        WatermarkGenerator::<(Timestamp, ())>::observe(&mut g, 0, &batch(&[100, 150, 120]), now);
        assert_eq!(
            WatermarkGenerator::<(Timestamp, ())>::status(&mut g, now),
            WatermarkStatus::Active(Timestamp(139))
        );
        WatermarkGenerator::<(Timestamp, ())>::observe(&mut g, 1, &batch(&[50]), now);
        // The slower split holds the reader back, but the watermark never goes backwards.
        assert_eq!(
            WatermarkGenerator::<(Timestamp, ())>::status(&mut g, now),
            WatermarkStatus::Active(Timestamp(139))
        );
        WatermarkGenerator::<(Timestamp, ())>::observe(&mut g, 0, &batch(&[300]), now);
        assert_eq!(
            WatermarkGenerator::<(Timestamp, ())>::status(&mut g, now),
            WatermarkStatus::Active(Timestamp(139))
        );
        WatermarkGenerator::<(Timestamp, ())>::observe(&mut g, 1, &batch(&[200]), now);
        assert_eq!(
            WatermarkGenerator::<(Timestamp, ())>::status(&mut g, now),
            WatermarkStatus::Active(Timestamp(189))
        );
        WatermarkGenerator::<(Timestamp, ())>::finish_split(&mut g, 1);
        assert_eq!(
            WatermarkGenerator::<(Timestamp, ())>::status(&mut g, now),
            WatermarkStatus::Active(Timestamp(289))
        );
    }

    #[test]
    fn idle_split_stops_holding_back_and_all_idle_is_reported() {
        let mut g = SplitWatermarks::new(
            WatermarkStrategy::monotonous().with_idle_timeout(Duration::from_millis(50)),
        );
        let t0 = Instant::now();
        WatermarkGenerator::<(Timestamp, ())>::observe(&mut g, 0, &batch(&[1000]), t0);
        WatermarkGenerator::<(Timestamp, ())>::observe(&mut g, 1, &batch(&[10]), t0);
        assert_eq!(
            WatermarkGenerator::<(Timestamp, ())>::status(&mut g, t0),
            WatermarkStatus::Active(Timestamp(9))
        );
        let later = t0 + Duration::from_millis(60);
        WatermarkGenerator::<(Timestamp, ())>::observe(&mut g, 0, &batch(&[2000]), later);
        assert_eq!(
            WatermarkGenerator::<(Timestamp, ())>::status(&mut g, later),
            WatermarkStatus::Active(Timestamp(1999))
        );
        let much_later = later + Duration::from_millis(60);
        assert_eq!(
            WatermarkGenerator::<(Timestamp, ())>::status(&mut g, much_later),
            WatermarkStatus::Idle
        );
    }
}
