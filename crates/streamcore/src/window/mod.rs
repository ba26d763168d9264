//! Windows: cut a keyed stream into finite groups by event time (tumbling, sliding, session),
//! by processing time (the same shapes on the wall clock, [`TimeDomain::ProcessingTime`]) or by
//! count (count windows, global windows with a trigger), and compute a result per key and
//! window.
//!
//! Semantics follow Flink's. A time window `[start, end)` fires once the watermark reaches
//! `end - 1`. With allowed lateness `L`, its state is kept until the watermark reaches
//! `end - 1 + L`: a late record in that time updates the window and re-emits its result. A
//! record whose windows have all expired is *late*: it goes to the late side output if one is
//! set (`WindowedStream::late_output`), and is counted in the operator's `late_records` metric
//! either way. The final watermark at the end of a bounded input fires every pending window,
//! including partial count windows.
//!
//! Processing-time windows assign each batch of records the wall-clock time at which it reaches
//! the operator (one clock reading per batch, never going backwards), and fire when the clock
//! passes a window's end: the runtime calls [`crate::Operator::on_processing_time`] every few
//! milliseconds. Watermarks pass through untouched, no record is ever late, and at the end of a
//! bounded input every open window fires (the input is over: nothing more can fall into them).

pub mod aggregates;
mod aligned;
mod backend_panes;
mod function;
mod global;
mod session;

pub(crate) use aligned::AlignedWindowOperator;
pub use function::AggregateFunction;
pub(crate) use function::{AggregatedWith, ProcessWindow, Reduced, WindowFunction};
pub(crate) use global::GlobalWindowOperator;
pub use global::{CountTrigger, Trigger, TriggerAction};
pub(crate) use session::SessionWindowOperator;

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Which clock cuts time windows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TimeDomain {
    /// The records' event time; windows fire as the watermark passes (the default).
    #[default]
    EventTime,
    /// The wall clock when records reach the window operator; windows fire as the clock passes.
    ProcessingTime,
}

/// The processing-time clock of a window operator: the wall clock, or a manual one that tests
/// set. Readings never go backwards (a clock stepped back holds at the last reading).
#[derive(Clone, Debug, Default)]
pub(crate) struct ProcessingClock {
    manual: Option<Arc<AtomicI64>>,
    last: i64,
}

impl ProcessingClock {
    /// A clock that reads `time` (milliseconds) instead of the wall clock: for tests.
    #[cfg(test)]
    pub(crate) fn manual(time: Arc<AtomicI64>) -> Self {
        ProcessingClock {
            manual: Some(time),
            last: i64::MIN,
        }
    }

    /// The current time in milliseconds.
    pub(crate) fn now(&mut self) -> i64 {
        let t = match &self.manual {
            Some(t) => t.load(Ordering::Relaxed),
            None => Timestamp::now().0,
        };
        self.last = self.last.max(t);
        self.last
    }

    /// Notes a reading made elsewhere (a runtime tick); returns the clock's time.
    pub(crate) fn observe(&mut self, t: i64) -> i64 {
        self.last = self.last.max(t);
        self.last
    }
}

/// A window of event time, `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    /// First timestamp in the window.
    pub start: Timestamp,
    /// First timestamp after the window.
    pub end: Timestamp,
}

impl Window {
    /// The largest timestamp in the window: it fires when the watermark reaches this.
    pub fn max_timestamp(&self) -> Timestamp {
        Timestamp(self.end.0 - 1)
    }
}

/// The result of one window for one key.
///
/// Serialized flat, so that it goes straight to a CSV or JSON sink:
/// `key, window_start, window_end, value` (timestamps as float seconds).
///
/// ```
/// use streamcore::Timestamp;
/// use streamcore::window::{Window, WindowResult};
/// let r = WindowResult { key: "u1", window: Window { start: Timestamp(0), end: Timestamp(60_000) }, value: 3u64 };
/// assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"key":"u1","window_start":0.0,"window_end":60.0,"value":3}"#);
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "FlatWindowResult<K, V>")]
pub struct WindowResult<K, V> {
    /// The key.
    pub key: K,
    /// The window.
    pub window: Window,
    /// What the window function computed.
    pub value: V,
}

impl<K: Serialize, V: Serialize> Serialize for WindowResult<K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut r = s.serialize_struct("WindowResult", 4)?;
        r.serialize_field("key", &self.key)?;
        r.serialize_field("window_start", &self.window.start)?;
        r.serialize_field("window_end", &self.window.end)?;
        r.serialize_field("value", &self.value)?;
        r.end()
    }
}

/// The serialized layout of a [`WindowResult`].
#[derive(Deserialize)]
struct FlatWindowResult<K, V> {
    key: K,
    window_start: Timestamp,
    window_end: Timestamp,
    value: V,
}

impl<K, V> From<FlatWindowResult<K, V>> for WindowResult<K, V> {
    fn from(f: FlatWindowResult<K, V>) -> Self {
        WindowResult {
            key: f.key,
            window: Window {
                start: f.window_start,
                end: f.window_end,
            },
            value: f.value,
        }
    }
}

/// Which event-time windows a keyed stream is cut into.
///
/// ```
/// use std::time::Duration;
/// use streamcore::window::Windows;
/// // Days aligned to UTC+2: windows start at 22:00 UTC.
/// let days = Windows::tumbling(Duration::from_secs(86_400)).with_offset(Duration::from_secs(22 * 3600));
/// let hopping = Windows::sliding(Duration::from_secs(60), Duration::from_secs(10));
/// let sessions = Windows::session(Duration::from_secs(30));
/// # let _ = (days, hopping, sessions);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Windows {
    /// Fixed-size, non-overlapping windows.
    Tumbling {
        /// Window length in milliseconds.
        size: i64,
        /// Shift of window starts from the epoch, in milliseconds.
        offset: i64,
    },
    /// Fixed-size windows starting every `slide`: a record belongs to `size / slide` windows.
    Sliding {
        /// Window length in milliseconds.
        size: i64,
        /// Distance between window starts, in milliseconds.
        slide: i64,
        /// Shift of window starts from the epoch, in milliseconds.
        offset: i64,
    },
    /// Per-key activity sessions: a window closes after `gap` without records. Records at most
    /// `gap` apart are in the same session (as in Flink), and a record that bridges two
    /// sessions merges them.
    Session {
        /// Inactivity gap in milliseconds.
        gap: i64,
    },
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl Windows {
    /// Tumbling windows of `size`.
    pub fn tumbling(size: Duration) -> Self {
        Windows::Tumbling {
            size: millis(size),
            offset: 0,
        }
    }

    /// Sliding windows of `size`, one starting every `slide`.
    pub fn sliding(size: Duration, slide: Duration) -> Self {
        Windows::Sliding {
            size: millis(size),
            slide: millis(slide),
            offset: 0,
        }
    }

    /// Session windows closing after `gap` of inactivity.
    pub fn session(gap: Duration) -> Self {
        Windows::Session { gap: millis(gap) }
    }

    /// Shifts window starts by `offset` (time-zone aligned days, say). No effect on sessions.
    pub fn with_offset(self, offset: Duration) -> Self {
        match self {
            Windows::Tumbling { size, .. } => Windows::Tumbling {
                size,
                offset: millis(offset),
            },
            Windows::Sliding { size, slide, .. } => Windows::Sliding {
                size,
                slide,
                offset: millis(offset),
            },
            s => s,
        }
    }

    /// Checks sizes: positive, and a slide no larger than the size.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Windows::Tumbling { size, .. } if size <= 0 => {
                Err("tumbling window size must be positive".into())
            }
            Windows::Sliding { size, slide, .. } if size <= 0 || slide <= 0 || slide > size => {
                Err(format!(
                    "sliding windows need 0 < slide <= size (size {size} ms, slide {slide} ms)"
                ))
            }
            Windows::Session { gap } if gap <= 0 => Err("session gap must be positive".into()),
            _ => Ok(()),
        }
    }

    /// The aligned windows (tumbling or sliding) that contain `ts`, latest first.
    pub(crate) fn assign(&self, ts: i64, mut each: impl FnMut(Window)) {
        let (size, slide, offset) = match *self {
            Windows::Tumbling { size, offset } => (size, size, offset),
            Windows::Sliding {
                size,
                slide,
                offset,
            } => (size, slide, offset),
            Windows::Session { gap } => {
                each(Window {
                    start: Timestamp(ts),
                    end: Timestamp(ts.saturating_add(gap)),
                });
                return;
            }
        };
        let last_start = ts - (ts - offset).rem_euclid(slide);
        let mut start = last_start;
        while start > ts - size {
            each(Window {
                start: Timestamp(start),
                end: Timestamp(start + size),
            });
            start -= slide;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows_of(w: Windows, ts: i64) -> Vec<(i64, i64)> {
        let mut v = Vec::new();
        w.assign(ts, |w| v.push((w.start.0, w.end.0)));
        v
    }

    #[test]
    fn tumbling_boundaries_belong_to_the_next_window() {
        let w = Windows::tumbling(Duration::from_millis(10));
        assert_eq!(windows_of(w, 0), vec![(0, 10)]);
        assert_eq!(windows_of(w, 9), vec![(0, 10)]);
        assert_eq!(windows_of(w, 10), vec![(10, 20)]);
        assert_eq!(windows_of(w, -1), vec![(-10, 0)]);
    }

    #[test]
    fn offsets_shift_window_starts() {
        let w = Windows::tumbling(Duration::from_millis(10)).with_offset(Duration::from_millis(3));
        assert_eq!(windows_of(w, 2), vec![(-7, 3)]);
        assert_eq!(windows_of(w, 3), vec![(3, 13)]);
    }

    #[test]
    fn sliding_assigns_size_over_slide_windows() {
        let w = Windows::sliding(Duration::from_millis(10), Duration::from_millis(5));
        assert_eq!(windows_of(w, 7), vec![(5, 15), (0, 10)]);
        assert_eq!(windows_of(w, 5), vec![(5, 15), (0, 10)]);
        assert_eq!(windows_of(w, 4), vec![(0, 10), (-5, 5)]);
        let w = Windows::sliding(Duration::from_millis(10), Duration::from_millis(3));
        assert_eq!(windows_of(w, 10), vec![(9, 19), (6, 16), (3, 13)]);
    }

    /// Drives a processing-time window operator by hand: batches at chosen clock readings,
    /// ticks, the end of the input; returns `(key, start, end, count)` emitted after each step.
    mod processing_time {
        use super::super::*;
        use crate::context::TaskContext;
        use crate::operator::test_support::Collect;
        use crate::operator::{Operator, Output};
        use crate::window::aggregates::Count;
        use std::marker::PhantomData;
        use std::sync::Mutex;

        type Rec = (Timestamp, char);
        type Res = WindowResult<char, u64>;

        enum Step {
            /// The clock reads `t` when `records` arrive (their event times are all 0).
            Batch(i64, &'static str),
            /// A runtime tick at `t`.
            Tick(i64),
            /// An event-time watermark (ignored in processing time).
            Watermark(i64),
            /// The end of the input.
            Close,
        }

        fn drive<Op: Operator<In = Rec, Out = Res>>(
            mut op: Op,
            clock: &AtomicI64,
            steps: Vec<Step>,
        ) -> Vec<Vec<(char, i64, i64, u64)>> {
            let sink = Arc::new(Mutex::new(Vec::new()));
            let mut out: Output<Res> = Output::new(64, Box::new(Collect(sink.clone())), vec![]);
            let mut ctx = TaskContext::for_test("w");
            op.open(&mut ctx).unwrap();
            let mut emitted = Vec::new();
            for step in steps {
                match step {
                    Step::Batch(t, keys) => {
                        clock.store(t, Ordering::Relaxed);
                        let batch = keys.chars().map(|c| (Timestamp(0), c)).collect();
                        op.process_batch(batch, &mut ctx, &mut out).unwrap();
                    }
                    Step::Tick(t) => op
                        .on_processing_time(Timestamp(t), &mut ctx, &mut out)
                        .unwrap(),
                    Step::Watermark(t) => {
                        let fwd = op.on_watermark(Timestamp(t), &mut ctx, &mut out).unwrap();
                        assert_eq!(fwd, Some(Timestamp(t)), "watermarks pass through");
                    }
                    Step::Close => op.close(&mut ctx, &mut out).unwrap(),
                }
                out.flush().unwrap();
                let mut got: Vec<_> = std::mem::take(&mut *sink.lock().unwrap())
                    .into_iter()
                    .map(|r: Res| (r.key, r.window.start.0, r.window.end.0, r.value))
                    .collect();
                got.sort();
                emitted.push(got);
            }
            emitted
        }

        fn count() -> AggregatedWith<
            Count,
            impl FnMut(&char, Window, &Count, &u64) -> Res + Clone + Send + 'static,
            char,
        > {
            AggregatedWith {
                f: Count,
                finish: |key: &char, window, _: &Count, n: &u64| WindowResult {
                    key: *key,
                    window,
                    value: *n,
                },
                _k: PhantomData,
            }
        }

        #[test]
        fn tumbling_windows_fire_on_ticks_and_at_the_end() {
            let time = Arc::new(AtomicI64::new(0));
            let op = AlignedWindowOperator::new(
                |r: &Rec| r.1,
                count(),
                Windows::tumbling(Duration::from_millis(100)),
                0,
                None,
            )
            .processing_time(ProcessingClock::manual(time.clone()));
            use Step::*;
            let got = drive(
                op,
                &time,
                vec![
                    Batch(10, "aab"),
                    // Event time is not looked at: a watermark far ahead fires nothing.
                    Watermark(1_000_000),
                    Tick(99),
                    Batch(99, "a"),
                    // The clock reaches the window's end: it fires.
                    Tick(100),
                    Batch(150, "b"),
                    // A clock stepped back holds: the record is in [100, 200), not [0, 100).
                    Batch(40, "b"),
                    Tick(205),
                    Batch(250, "c"),
                    Close,
                ],
            );
            assert!(
                got[0].is_empty() && got[1].is_empty() && got[2].is_empty() && got[3].is_empty()
            );
            assert_eq!(got[4], vec![('a', 0, 100, 3), ('b', 0, 100, 1)]);
            assert!(got[5].is_empty() && got[6].is_empty());
            assert_eq!(got[7], vec![('b', 100, 200, 2)]);
            assert!(got[8].is_empty());
            // The open window fires at the end of the input.
            assert_eq!(got[9], vec![('c', 200, 300, 1)]);
        }

        #[test]
        fn sliding_windows_count_a_batch_in_each_of_its_windows() {
            let time = Arc::new(AtomicI64::new(0));
            let op = AlignedWindowOperator::new(
                |r: &Rec| r.1,
                count(),
                Windows::sliding(Duration::from_millis(100), Duration::from_millis(50)),
                0,
                None,
            )
            .processing_time(ProcessingClock::manual(time.clone()));
            use Step::*;
            let got = drive(
                op,
                &time,
                vec![Batch(60, "aa"), Tick(100), Tick(150), Close],
            );
            assert_eq!(got[1], vec![('a', 0, 100, 2)]);
            assert_eq!(got[2], vec![('a', 50, 150, 2)]);
            assert!(got[3].is_empty());
        }

        #[test]
        fn sessions_close_after_the_gap_of_the_clock() {
            let time = Arc::new(AtomicI64::new(0));
            let op = SessionWindowOperator::new(|r: &Rec| r.1, count(), 30, 0, None)
                .processing_time(ProcessingClock::manual(time.clone()));
            use Step::*;
            let got = drive(
                op,
                &time,
                vec![
                    Batch(0, "a"),
                    Batch(20, "ab"),
                    // a: [0, 50), b: [20, 50); nothing ends before 50.
                    Tick(49),
                    Tick(50),
                    Batch(100, "a"),
                    Close,
                ],
            );
            assert!(got[2].is_empty());
            assert_eq!(got[3], vec![('a', 0, 50, 2), ('b', 20, 50, 1)]);
            assert_eq!(got[5], vec![('a', 100, 130, 1)]);
        }
    }

    #[test]
    fn validation() {
        assert!(
            Windows::sliding(Duration::from_millis(5), Duration::from_millis(10))
                .validate()
                .is_err()
        );
        assert!(Windows::tumbling(Duration::ZERO).validate().is_err());
        assert!(Windows::session(Duration::from_millis(1))
            .validate()
            .is_ok());
    }
}
