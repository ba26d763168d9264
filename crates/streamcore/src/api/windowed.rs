//! [`WindowedStream`]: a keyed stream cut into windows, waiting for its window function.

use super::{KeyedStream, Stream};
use crate::data::{Data, StateData, StateKey};
use crate::event_time::EventTime;
use crate::operator::{Output, OutputTag};
use crate::window::aggregates::{Avg, Count, Max, Min, Sum};
use crate::window::{
    AggregateFunction, AggregatedWith, AlignedWindowOperator, CountTrigger, GlobalWindowOperator,
    ProcessWindow, ProcessingClock, Reduced, SessionWindowOperator, TimeDomain, Trigger, Window,
    WindowFunction, WindowResult, Windows,
};
use std::marker::PhantomData;
use std::time::Duration;

/// How a windowed stream is cut.
pub(crate) enum WindowKind<Tr> {
    Time(Windows),
    Global(Tr),
}

/// A keyed stream cut into windows. Finish it with [`aggregate`](Self::aggregate),
/// [`reduce`](Self::reduce) or [`process`](Self::process).
///
/// ```
/// use std::time::Duration;
/// use streamcore::{Job, JobConfig, OutputTag, Timestamp, WatermarkStrategy};
/// use streamcore::window::{aggregates::Count, Windows};
///
/// let mut job = Job::new("clicks-per-10s");
/// let clicks = vec![(Timestamp(1_000), 'a'), (Timestamp(4_000), 'a'), (Timestamp(12_000), 'b'), (Timestamp(2_000), 'a')];
/// let late = OutputTag::new("late");
/// let counts = job
///     .from_vec("clicks", clicks)
///     .with_watermarks(WatermarkStrategy::monotonous())
///     .key_by(|c| c.1)
///     .window(Windows::tumbling(Duration::from_secs(10)))
///     .late_output(&late)
///     .aggregate(Count);
/// let late_clicks = counts.side_output(&late).collect();
/// let counts = counts.collect();
/// // One record per batch, so the watermark moves between records.
/// job.run(JobConfig::default().parallelism(1).batch_size(1)).unwrap();
/// let mut got: Vec<(char, i64, u64)> = counts.take().into_iter().map(|r| (r.key, r.window.start.millis(), r.value)).collect();
/// got.sort();
/// // The click at 2s arrived after the watermark passed it: it is late, not counted.
/// assert_eq!(got, vec![('a', 0, 2), ('b', 10_000, 1)]);
/// assert_eq!(late_clicks.take(), vec![(Timestamp(2_000), 'a')]);
/// ```
pub struct WindowedStream<T, K, KF, Tr = CountTrigger> {
    keyed: KeyedStream<T, K, KF>,
    kind: WindowKind<Tr>,
    lateness: i64,
    late: Option<OutputTag<T>>,
    domain: TimeDomain,
}

impl<T, K, KF, Tr> WindowedStream<T, K, KF, Tr>
where
    T: Data + EventTime,
    K: StateKey,
    KF: Fn(&T) -> K + Clone + Send + 'static,
    Tr: Trigger<T>,
{
    pub(crate) fn new(keyed: KeyedStream<T, K, KF>, kind: WindowKind<Tr>) -> Self {
        WindowedStream {
            keyed,
            kind,
            lateness: 0,
            late: None,
            domain: TimeDomain::EventTime,
        }
    }

    /// Cuts the time windows by processing time — the wall clock when a batch of records
    /// reaches the window operator — instead of event time: a window fires when the clock
    /// passes its end (checked on the runtime's clock ticks, every few milliseconds), and at
    /// the end of a bounded input every open window fires. Watermarks are not needed and pass
    /// through; no record is late, so allowed lateness and the late output do not apply. The
    /// result depends on the speed of the run, as processing time does in Flink. Count and
    /// global windows ignore it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamcore::{Job, JobConfig, Timestamp};
    /// use streamcore::window::Windows;
    /// let mut job = Job::new("clicks-per-second");
    /// // The event times are not looked at: the clock decides.
    /// let clicks = vec![(Timestamp(0), 'a'), (Timestamp(0), 'b'), (Timestamp(0), 'a')];
    /// let counts = job
    ///     .from_vec("clicks", clicks)
    ///     .key_by(|c| c.1)
    ///     .window(Windows::tumbling(Duration::from_secs(1)))
    ///     .processing_time()
    ///     .count()
    ///     .collect();
    /// job.run(JobConfig::default().parallelism(1)).unwrap();
    /// // Three clicks, counted in the windows of the second(s) in which they arrived.
    /// assert_eq!(counts.take().iter().map(|r| r.value).sum::<u64>(), 3);
    /// ```
    pub fn processing_time(mut self) -> Self {
        self.domain = TimeDomain::ProcessingTime;
        self
    }

    /// Keeps each window's state for `lateness` after it fired: records arriving in that time
    /// update the window and re-emit its result. Default: zero.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = lateness.as_millis().min(i64::MAX as u128) as i64;
        self
    }

    /// Sends records that arrive after their windows expired to the side output `tag` (read it
    /// with `side_output(&tag)` on the result). Without it they are dropped — and counted in
    /// the `late_records` metric either way.
    pub fn late_output(mut self, tag: &OutputTag<T>) -> Self {
        self.late = Some(tag.clone());
        self
    }

    fn finish<F: WindowFunction<K, T>>(self, name: &str, func: F) -> Stream<F::Out> {
        let (lateness, late) = (self.lateness, self.late);
        let clock = ProcessingClock::default();
        let proc_time = self.domain == TimeDomain::ProcessingTime;
        let late = if proc_time { None } else { late };
        let stream = match self.kind {
            WindowKind::Time(Windows::Session { gap }) => {
                self.keyed.keyed_operator(name, |key_fn| {
                    let op = SessionWindowOperator::new(key_fn, func, gap, lateness, late.clone());
                    if proc_time {
                        op.processing_time(clock)
                    } else {
                        op
                    }
                })
            }
            WindowKind::Time(windows) => self.keyed.keyed_operator(name, |key_fn| {
                let op = AlignedWindowOperator::new(key_fn, func, windows, lateness, late.clone());
                if proc_time {
                    op.processing_time(clock)
                } else {
                    op
                }
            }),
            WindowKind::Global(trigger) => self.keyed.keyed_operator(name, |key_fn| {
                GlobalWindowOperator::new(key_fn, func, trigger)
            }),
        };
        if let Some(tag) = &late {
            // Registers the port so that late records reach a consumer added later.
            let _ = stream.side_output(tag);
        }
        stream
    }

    /// Computes an [`AggregateFunction`] per key and window, incrementally.
    pub fn aggregate<A: AggregateFunction<T>>(self, f: A) -> Stream<WindowResult<K, A::Out>> {
        self.aggregate_with(f, |key: &K, window, f: &A, acc: &A::Acc| WindowResult {
            key: key.clone(),
            window,
            value: f.result(acc),
        })
    }

    /// Computes an [`AggregateFunction`] per key and window, as [`aggregate`](Self::aggregate)
    /// does, and makes each window's output with `finish(key, window, f, acc)` straight from
    /// the accumulator: no key is cloned into a [`WindowResult`] and no `f.result` is built
    /// first (the SQL layer writes a window's row, keys and aggregates and bounds, this way).
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamcore::{Event, Fields, Job, JobConfig, Timestamp, WatermarkStrategy};
    /// use streamcore::window::{aggregates::Count, AggregateFunction, Windows};
    /// let events: Vec<Event> = ["u1", "u1", "u2"]
    ///     .iter()
    ///     .enumerate()
    ///     .map(|(i, user)| {
    ///         Event::new(format!("e{i}"), Timestamp(i as i64 * 1_000), "click", Fields::new())
    ///             .with_partition_key(*user)
    ///     })
    ///     .collect();
    /// let mut job = Job::new("per-minute");
    /// let lines = job
    ///     .from_vec("clicks", events)
    ///     .with_watermarks(WatermarkStrategy::monotonous())
    ///     .key_by(|e| e.partition_key.clone())
    ///     .window(Windows::tumbling(Duration::from_secs(60)))
    ///     .aggregate_with(Count, |user, window, count, acc| {
    ///         let user = user.as_deref().unwrap_or("?");
    ///         let n: u64 = AggregateFunction::<Event>::result(count, acc);
    ///         format!("{user} {}..{}: {n}", window.start.0, window.end.0)
    ///     })
    ///     .collect();
    /// job.run(JobConfig::default()).unwrap();
    /// let mut lines = lines.take();
    /// lines.sort();
    /// assert_eq!(lines, ["u1 0..60000: 2", "u2 0..60000: 1"]);
    /// ```
    pub fn aggregate_with<A, O, E>(self, f: A, finish: E) -> Stream<O>
    where
        A: AggregateFunction<T>,
        O: Data,
        E: FnMut(&K, Window, &A, &A::Acc) -> O + Clone + Send + 'static,
    {
        self.finish(
            "window_aggregate",
            AggregatedWith {
                f,
                finish,
                _k: PhantomData,
            },
        )
    }

    /// Counts each key's records per window. Short for `aggregate(Count)`.
    pub fn count(self) -> Stream<WindowResult<K, u64>> {
        self.aggregate(Count)
    }

    /// Sums `field(record)` per key and window, in the field's own type: integers stay
    /// integers. Short for `aggregate(Sum::new(field))`, with the record type known, so the
    /// closure needs no type annotation.
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamcore::{Event, Fields, Job, JobConfig, Timestamp, WatermarkStrategy};
    /// use streamcore::window::Windows;
    /// let events: Vec<Event> = (0..4)
    ///     .map(|i| {
    ///         let mut data = Fields::new();
    ///         data.insert("amount", 100 + i);
    ///         Event::new(format!("e{i}"), Timestamp(i * 1_000), "tx", data).with_partition_key("u1")
    ///     })
    ///     .collect();
    /// let mut job = Job::new("spend");
    /// let sums = job
    ///     .from_vec("events", events)
    ///     .with_watermarks(WatermarkStrategy::monotonous())
    ///     .key_by(|e| e.partition_key.clone())
    ///     .window(Windows::tumbling(Duration::from_secs(60)))
    ///     .sum(|e| e.get_i64("amount").unwrap_or(0))
    ///     .collect();
    /// job.run(JobConfig::default()).unwrap();
    /// assert_eq!(sums.take()[0].value, 406i64);
    /// ```
    pub fn sum<N, F>(self, field: F) -> Stream<WindowResult<K, N>>
    where
        N: Data + StateData + Copy + Default + std::ops::Add<Output = N>,
        F: Fn(&T) -> N + Clone + Send + 'static,
    {
        self.aggregate(Sum::new(field))
    }

    /// The smallest `field(record)` per key and window. Short for `aggregate(Min::new(field))`.
    pub fn min<N, F>(self, field: F) -> Stream<WindowResult<K, Option<N>>>
    where
        N: Data + StateData + PartialOrd,
        F: Fn(&T) -> N + Clone + Send + 'static,
    {
        self.aggregate(Min::new(field))
    }

    /// The largest `field(record)` per key and window. Short for `aggregate(Max::new(field))`.
    pub fn max<N, F>(self, field: F) -> Stream<WindowResult<K, Option<N>>>
    where
        N: Data + StateData + PartialOrd,
        F: Fn(&T) -> N + Clone + Send + 'static,
    {
        self.aggregate(Max::new(field))
    }

    /// The mean of `field(record)` per key and window. Short for `aggregate(Avg::new(field))`.
    pub fn avg<F>(self, field: F) -> Stream<WindowResult<K, f64>>
    where
        F: Fn(&T) -> f64 + Clone + Send + 'static,
    {
        self.aggregate(Avg::new(field))
    }

    /// Reduces each key's records per window with `f`.
    pub fn reduce<R: FnMut(T, T) -> T + Clone + Send + 'static>(
        self,
        f: R,
    ) -> Stream<WindowResult<K, T>>
    where
        T: StateData,
    {
        self.finish("window_reduce", Reduced { f, _k: PhantomData })
    }

    /// Hands all the records of each key and window to `f` when the window fires. The state
    /// holds the records, so prefer `aggregate` when the result can be computed incrementally.
    pub fn process<O: Data, F>(self, f: F) -> Stream<O>
    where
        T: StateData,
        F: FnMut(&K, Window, &[T], &mut Output<O>) + Clone + Send + 'static,
    {
        self.finish("window_process", ProcessWindow { f, _t: PhantomData })
    }
}
