//! [`ConnectedStreams`]: two streams of different types joined per key.

use super::{KeyedStream, Stream};
use crate::data::{Data, Key};
use crate::event_time::EventTime;
use crate::join::{
    BroadcastOperator, BroadcastProcessFunction, Change, Either, IntervalJoinOperator,
    JoinIndexing, JoinType, LateFrom, LateOutput, RegularJoin, TemporalJoinOperator, UniqueSides,
};
use crate::operator::OutputTag;
use crate::window::Windows;

/// Two streams to be joined: `left.connect(right)`, then `key_by` each side.
pub struct ConnectedStreams<A, B> {
    left: Stream<A>,
    right: Stream<B>,
}

impl<A: Data> Stream<A> {
    /// Processes this stream with read access to state built from `broadcast`, which every
    /// parallel instance receives in full (rules, configuration). The main stream's batches
    /// are spread over the instances.
    ///
    /// ```
    /// use streamcore::{Job, JobConfig, Output};
    /// use streamcore::join::BroadcastProcessFunction;
    ///
    /// #[derive(Clone)]
    /// struct Blocklist;
    /// impl BroadcastProcessFunction<&'static str, &'static str> for Blocklist {
    ///     type State = Vec<String>;
    ///     type Out = &'static str;
    ///     fn process(&mut self, user: &'static str, blocked: &Vec<String>, out: &mut Output<&'static str>) {
    ///         if blocked.iter().any(|b| b == user) { out.emit(user) }
    ///     }
    ///     fn process_broadcast(&mut self, user: &'static str, blocked: &mut Vec<String>, _: &mut Output<&'static str>) {
    ///         blocked.push(user.to_string());
    ///     }
    /// }
    ///
    /// let mut job = Job::new("blocked-logins");
    /// let blocklist = job.from_vec("blocklist", vec!["mallory"]);
    /// let logins = job.from_vec("logins", vec!["alice", "mallory", "bob"]);
    /// let hits = logins.broadcast_process(blocklist, Blocklist).collect();
    /// let summary = job.run(JobConfig::default().parallelism(2)).unwrap();
    /// // Which logins see the blocklist depends on arrival order across the two inputs: at
    /// // most the one login of mallory is flagged.
    /// assert!(hits.len() <= 1);
    /// # let _ = summary;
    /// ```
    pub fn broadcast_process<R: Data, P: BroadcastProcessFunction<A, R>>(
        self,
        broadcast: Stream<R>,
        f: P,
    ) -> Stream<P::Out> {
        let broadcast = self.same_job(broadcast, "broadcast_process");
        let main = self.map(Either::<A, R>::Left).name("broadcast_main");
        let side = broadcast.map(Either::<A, R>::Right).name("broadcast_side");
        type NoKey<T> = fn(&T) -> ();
        let port = main
            .graph
            .borrow_mut()
            .add_exchange::<Either<A, R>, (), NoKey<Either<A, R>>>(
                &[main.port],
                &[side.port],
                "broadcast",
                None,
                None,
            );
        let op = BroadcastOperator {
            func: f,
            state: P::State::default(),
            _t: std::marker::PhantomData,
        };
        let port = main.graph.borrow_mut().add_operator(
            port,
            "broadcast_process",
            crate::metrics::NodeKind::Operator,
            op,
        );
        Stream::new(main.graph, port)
    }

    /// Pairs this stream with `other` for a join.
    ///
    /// A stream of another job makes both jobs' `run` refuse them.
    pub fn connect<B: Data>(self, other: Stream<B>) -> ConnectedStreams<A, B> {
        let other = self.same_job(other, "connect");
        ConnectedStreams {
            left: self,
            right: other,
        }
    }
}

impl<A: Data, B: Data> ConnectedStreams<A, B> {
    /// Keys each side; records of both sides with equal keys meet in one parallel instance.
    pub fn key_by<K, KA, KB>(
        self,
        left_key: KA,
        right_key: KB,
    ) -> KeyedConnectedStreams<A, B, K, impl Fn(&Either<A, B>) -> K + Clone + Send + 'static>
    where
        K: Key,
        KA: Fn(&A) -> K + Clone + Send + 'static,
        KB: Fn(&B) -> K + Clone + Send + 'static,
    {
        let key_fn = move |e: &Either<A, B>| match e {
            Either::Left(a) => left_key(a),
            Either::Right(b) => right_key(b),
        };
        let left = self.left.map(Either::<A, B>::Left).name("join_left");
        let right = self.right.map(Either::<A, B>::Right).name("join_right");
        KeyedConnectedStreams {
            keyed: KeyedStream::new(left, key_fn).with_input(right.port),
            late: None,
            unique: UniqueSides::default(),
        }
    }
}

/// Two keyed streams, ready to be joined.
pub struct KeyedConnectedStreams<A, B, K, KF> {
    keyed: KeyedStream<Either<A, B>, K, KF>,
    /// Where the time-bound joins send late records ([`KeyedConnectedStreams::late_output`]).
    late: LateOutput<A, B>,
    /// The sides with at most one row per key ([`KeyedConnectedStreams::unique_keys`]).
    unique: UniqueSides,
}

impl<A, B, K, KF> KeyedConnectedStreams<A, B, K, KF>
where
    A: Data,
    B: Data,
    K: Key,
    KF: Fn(&Either<A, B>) -> K + Clone + Send + 'static,
{
    /// Drops a key's regular-join state once the key was untouched for `ttl` (wall clock).
    pub fn state_ttl(self, ttl: std::time::Duration) -> Self {
        KeyedConnectedStreams {
            keyed: self.keyed.state_ttl(ttl),
            late: self.late,
            unique: self.unique,
        }
    }

    /// Declares that no two rows of the left input (`left`) — or of the right input
    /// (`right`) — have the same key: a primary key the join key contains, as the ids of
    /// generated auctions. An inner join then keeps no row of the other side once it has met
    /// that side's one row of its key (no second can come to match it): a bid arriving after
    /// its auction is joined and not stored, and the bids that waited for the auction go
    /// when it arrives. The pairs are the same; the state holds far fewer rows. Only the inner
    /// regular joins (`join(JoinType::Inner, …)`, `inner_join_expiring`) use it: outer joins
    /// ignore it (their unmatched rows are still withdrawn as rows arrive), and so do the
    /// interval, window and temporal joins (their state is bounded by time already).
    ///
    /// The caller vouches for it: a second row of a key on a unique side would miss the rows
    /// of the other side that came before it.
    ///
    /// ```
    /// use streamcore::{Job, JobConfig};
    /// let mut job = Job::new("auction-bids");
    /// // (id, category) auctions, (auction, price) bids
    /// let auctions = job.from_vec("auctions", vec![(1u32, 10i64), (2, 20)]);
    /// let bids = job.from_vec("bids", vec![(1u32, 10i64), (1, 12), (2, 7), (3, 9)]);
    /// let pairs = auctions
    ///     .connect(bids)
    ///     .key_by(|a| a.0, |b| b.0)
    ///     .unique_keys(true, false)
    ///     .inner_join_expiring(streamcore::join::NoExpiry, |a, b| (a.1, b.1))
    ///     .collect();
    /// job.run(JobConfig::default().parallelism(1)).unwrap();
    /// let mut rows = streamcore::changelog::apply_to(pairs.take());
    /// rows.sort();
    /// assert_eq!(rows, vec![(10, 10), (10, 12), (20, 7)]);
    /// ```
    pub fn unique_keys(mut self, left: bool, right: bool) -> Self {
        self.unique = UniqueSides { left, right };
        self
    }

    /// Sends the records the join cannot take because they are behind the watermark to the
    /// side output `tag` (read it with `side_output(&tag)` on the join's result), each as the
    /// side it came from: an interval join's records of either side, a window join's records
    /// whose windows all fired, a temporal join's probes, an expiring inner join's rows
    /// ([`KeyedConnectedStreams::inner_join_expiring`]). Without it they are dropped (as Flink
    /// drops them) — counted in `late_records` either way, and in `late_redirected` when sent.
    /// A regular join that keeps every row has no late records.
    ///
    /// ```
    /// use streamcore::join::Either;
    /// use streamcore::{Job, JobConfig, OutputTag, Timestamp, WatermarkStrategy};
    /// type Click = (Timestamp, u32); // (time, ad id)
    /// type View = (Timestamp, u32);
    /// let mut job = Job::new("late-clicks");
    /// let views = job
    ///     .from_vec("views", vec![(Timestamp(0), 1u32)])
    ///     .with_watermarks(WatermarkStrategy::monotonous());
    /// let clicks = job
    ///     .from_vec("clicks", vec![(Timestamp(500), 1u32)])
    ///     .with_watermarks(WatermarkStrategy::monotonous());
    /// let late = OutputTag::<Either<Click, View>>::new("late");
    /// let pairs = clicks
    ///     .connect(views)
    ///     .key_by(|c| c.1, |v| v.1)
    ///     .late_output(&late)
    ///     .interval_join(0, 1_000, |c, v| (c.0, v.0));
    /// // Clicks and views that arrived behind the watermark, as they came (none here).
    /// let late_rows = pairs.side_output(&late).collect();
    /// let pairs = pairs.collect();
    /// job.run(JobConfig::default()).unwrap();
    /// assert_eq!(pairs.take(), vec![(Timestamp(500), Timestamp(0))]);
    /// assert!(late_rows.take().is_empty());
    /// ```
    pub fn late_output(self, tag: &OutputTag<Either<A, B>>) -> Self {
        self.late_output_of(tag, LateFrom::Both)
    }

    /// [`KeyedConnectedStreams::late_output`] for the late records of the inputs `from` names
    /// only; the others' are dropped (counted as late). A window join takes both inputs' (with
    /// one named here, `run` refuses the job).
    pub fn late_output_of(mut self, tag: &OutputTag<Either<A, B>>, from: LateFrom) -> Self {
        self.late = Some((tag.clone(), from));
        self
    }

    /// Regular join over the whole (unbounded) inputs: every pair of rows with equal keys,
    /// plus — for outer joins — unmatched rows padded with `None`. The result is a changelog:
    /// a padded row is withdrawn (`Change::Delete`) when its first partner arrives. State grows
    /// with the number of rows per key unless `state_ttl` bounds it (or, for an inner join, a
    /// side declared unique: [`KeyedConnectedStreams::unique_keys`]).
    ///
    /// ```
    /// use streamcore::{Job, JobConfig};
    /// use streamcore::join::{Change, JoinType};
    /// let mut job = Job::new("orders-payments");
    /// let orders = job.from_vec("orders", vec![(1u32, "book".to_string())]);
    /// let payments = job.from_vec("payments", vec![(1u32, 12i64)]);
    /// let rows = orders
    ///     .connect(payments)
    ///     .key_by(|o| o.0, |p| p.0)
    ///     .join(JoinType::Left, |o, p| (o.map(|o| o.1.clone()), p.map(|p| p.1)))
    ///     .collect();
    /// job.run(JobConfig::default().parallelism(1)).unwrap();
    /// // Whichever side came first, the final table is the one matched row.
    /// let table = streamcore::changelog::apply_to(rows.take());
    /// assert_eq!(table, vec![(Some("book".to_string()), Some(12))]);
    /// ```
    pub fn join<O, F>(self, kind: JoinType, join: F) -> Stream<Change<O>>
    where
        A: crate::data::StateData,
        B: crate::data::StateData,
        K: crate::data::StateKey,
        O: Data,
        F: FnMut(Option<&A>, Option<&B>) -> O + Clone + Send + 'static,
    {
        let joined = self.keyed.process_named(
            "join",
            RegularJoin {
                kind,
                join,
                expiry: crate::join::NoExpiry,
                late: None,
                unique: self.unique,
                _t: std::marker::PhantomData,
            },
        );
        // An inner join of append-only inputs only inserts; outer joins withdraw padded rows.
        if kind == JoinType::Inner {
            joined
        } else {
            joined.updating()
        }
    }

    /// An inner regular join whose rows go as the watermark passes their bounds (`expiry`,
    /// from a condition such as `bid.t <= auction.expires`): its state holds the rows that a
    /// row at or after the watermark can still match, not every row. A row behind the
    /// watermark that `expiry` calls late is dropped and counted in `late_records`, or sent to
    /// the late output if one is set ([`KeyedConnectedStreams::late_output`]). Only
    /// insertions are emitted.
    ///
    /// ```
    /// use streamcore::join::{Change, JoinExpiry};
    /// use streamcore::{Job, JobConfig, Timestamp};
    /// #[derive(Clone)]
    /// struct UntilExpiry; // (id, expires) auctions, (auction, t) bids
    /// impl JoinExpiry<(u32, i64), (u32, i64)> for UntilExpiry {
    ///     fn left(&self, a: &(u32, i64)) -> Option<Timestamp> { Some(Timestamp(a.1)) }
    ///     fn right(&self, _: &(u32, i64)) -> Option<Timestamp> { None }
    /// }
    /// let mut job = Job::new("auction-bids");
    /// let auctions = job.from_vec("auctions", vec![(1u32, 100i64)]);
    /// let bids = job.from_vec("bids", vec![(1u32, 50i64), (1, 80)]);
    /// let pairs = auctions
    ///     .connect(bids)
    ///     .key_by(|a| a.0, |b| b.0)
    ///     .inner_join_expiring(UntilExpiry, |a, b| (a.0, b.1))
    ///     .collect();
    /// job.run(JobConfig::default().parallelism(1)).unwrap();
    /// let mut rows = streamcore::changelog::apply_to(pairs.take());
    /// rows.sort();
    /// assert_eq!(rows, vec![(1, 50), (1, 80)]);
    /// ```
    pub fn inner_join_expiring<O, F, X>(self, expiry: X, join: F) -> Stream<Change<O>>
    where
        A: crate::data::StateData,
        B: crate::data::StateData,
        K: crate::data::StateKey,
        O: Data,
        X: crate::join::JoinExpiry<A, B>,
        F: FnMut(&A, &B) -> O + Clone + Send + 'static,
    {
        let mut join = join;
        self.keyed.process_named(
            "join",
            RegularJoin {
                kind: JoinType::Inner,
                join: move |a: Option<&A>, b: Option<&B>| match (a, b) {
                    (Some(a), Some(b)) => join(a, b),
                    _ => unreachable!("an inner join emits matched pairs only"),
                },
                expiry,
                late: self.late,
                unique: self.unique,
                _t: std::marker::PhantomData,
            },
        )
    }
}

impl<A, B, K, KF> KeyedConnectedStreams<A, B, K, KF>
where
    A: Data + EventTime,
    B: Data + EventTime,
    K: Key,
    KF: Fn(&Either<A, B>) -> K + Clone + Send + 'static,
{
    /// Interval join: pairs every `a` and `b` of one key with
    /// `a.ts ∈ [b.ts + lower_ms, b.ts + upper_ms]`, emitting `join(a, b)` as soon as the second
    /// of the two arrives. Each side's records are kept only until the watermark shows that no
    /// partner can still arrive, so state stays bounded on unbounded input. Records behind the
    /// watermark are dropped and counted in `late_records` (as Flink does).
    ///
    /// ```
    /// use streamcore::{Job, JobConfig, Timestamp, WatermarkStrategy};
    /// let mut job = Job::new("clicks-after-views");
    /// // (time, ad id)
    /// let views = job.from_vec("views", vec![(Timestamp(100), 1u32), (Timestamp(900), 2)]);
    /// let clicks = job.from_vec("clicks", vec![(Timestamp(150), 1u32), (Timestamp(5_000), 2)]);
    /// // A click counts if it came within 0..=1000 ms after the view.
    /// let pairs = clicks
    ///     .connect(views)
    ///     .key_by(|c| c.1, |v| v.1)
    ///     .interval_join(0, 1_000, |c, v| (c.1, c.0.millis() - v.0.millis()))
    ///     .collect();
    /// job.run(JobConfig::default().parallelism(2)).unwrap();
    /// assert_eq!(pairs.take(), vec![(1, 50)]);
    /// ```
    ///
    /// `lower_ms > upper_ms` makes `run` refuse the job. How each side's buffer is laid out
    /// adapts to how often it is probed ([`JoinIndexing::Adaptive`]); choose it with
    /// [`KeyedConnectedStreams::interval_join_with`].
    ///
    /// [`JoinIndexing::Adaptive`]: crate::join::JoinIndexing::Adaptive
    pub fn interval_join<O, F>(self, lower_ms: i64, upper_ms: i64, join: F) -> Stream<O>
    where
        A: crate::data::StateData,
        B: crate::data::StateData,
        K: crate::data::StateKey,
        O: Data,
        F: FnMut(&A, &B) -> O + Clone + Send + 'static,
    {
        self.interval_join_with(lower_ms, upper_ms, JoinIndexing::default(), join)
    }

    /// [`KeyedConnectedStreams::interval_join`] with the buffers' layout chosen: per key from
    /// the start ([`JoinIndexing::Keyed`], Flink's), scanned by time only
    /// ([`JoinIndexing::Scanned`]), or adapting to the probes (the default).
    ///
    /// ```
    /// use streamcore::join::JoinIndexing;
    /// use streamcore::{Job, JobConfig, Timestamp, WatermarkStrategy};
    /// let mut job = Job::new("keyed");
    /// let views = job.from_vec("views", vec![(Timestamp(100), 1u32)]);
    /// let clicks = job.from_vec("clicks", vec![(Timestamp(150), 1u32)]);
    /// let pairs = clicks
    ///     .connect(views)
    ///     .key_by(|c| c.1, |v| v.1)
    ///     .interval_join_with(0, 1_000, JoinIndexing::Keyed, |c, v| (c.1, c.0.millis() - v.0.millis()))
    ///     .collect();
    /// job.run(JobConfig::default()).unwrap();
    /// assert_eq!(pairs.take(), vec![(1, 50)]);
    /// ```
    pub fn interval_join_with<O, F>(
        self,
        lower_ms: i64,
        upper_ms: i64,
        indexing: JoinIndexing,
        join: F,
    ) -> Stream<O>
    where
        A: crate::data::StateData,
        B: crate::data::StateData,
        K: crate::data::StateKey,
        O: Data,
        F: FnMut(&A, &B) -> O + Clone + Send + 'static,
    {
        let upper_ms = if lower_ms > upper_ms {
            self.keyed.refuse(format!(
                "interval join needs lower <= upper ({lower_ms} > {upper_ms})"
            ));
            lower_ms
        } else {
            upper_ms
        };
        let late = self.late;
        self.keyed.keyed_operator("interval_join", |key_fn| {
            IntervalJoinOperator::new(key_fn, join, lower_ms, upper_ms, indexing).late_to(late)
        })
    }

    /// Window join: pairs every `a` and `b` of one key that fall in the same window (tumbling,
    /// sliding or session — sessions are formed over both sides together), emitting
    /// `join(a, b)` for each pair when the window fires.
    pub fn window_join<O, F>(self, windows: Windows, join: F) -> Stream<O>
    where
        O: Data,
        A: crate::data::StateData,
        B: crate::data::StateData,
        K: crate::data::StateKey,
        F: FnMut(&A, &B) -> O + Clone + Send + 'static,
    {
        let mut join = join;
        if let Some((_, from)) = &self.late {
            if *from != LateFrom::Both {
                self.keyed.refuse(format!(
                    "a window join sends the late records of both inputs to its late output (late_output_of {from:?})"
                ));
            }
        }
        let mut windowed = self.keyed.window(windows);
        if let Some((tag, _)) = &self.late {
            windowed = windowed.late_output(tag);
        }
        windowed.process(move |_key, _window, records: &[Either<A, B>], out| {
            for r in records {
                if let Either::Left(a) = r {
                    for s in records {
                        if let Either::Right(b) = s {
                            out.emit(join(a, b));
                        }
                    }
                }
            }
        })
    }
}

impl<A, B, K, KF> KeyedConnectedStreams<A, Change<B>, K, KF>
where
    A: Data + EventTime,
    B: Data + EventTime,
    K: Key,
    KF: Fn(&Either<A, Change<B>>) -> K + Clone + Send + 'static,
{
    /// Event-time temporal join: each probe record (left) joins the version of the table
    /// (right: a changelog keyed by primary key, each change versioned by its event time; a
    /// `Delete` removes the row) that was current at the probe's timestamp — `None` if the key
    /// had no row then. Probes are emitted once the watermark passes them; older table versions
    /// are dropped as the watermark advances. Probes behind the watermark are late: dropped and
    /// counted.
    ///
    /// ```
    /// use streamcore::{Job, JobConfig, Timestamp, WatermarkStrategy};
    /// use streamcore::join::Change;
    /// let mut job = Job::new("rates");
    /// // (time, currency, rate in cents) versions, and (time, currency, amount) orders.
    /// let rates = job.from_vec("rates", vec![
    ///     Change::Insert((Timestamp(0), '€', 110)),
    ///     Change::Insert((Timestamp(100), '€', 120)),
    /// ]);
    /// let orders = job.from_vec("orders", vec![(Timestamp(50), '€', 2), (Timestamp(150), '€', 3)]);
    /// let priced = orders
    ///     .connect(rates)
    ///     .key_by(|o| o.1, |r| r.row().1)
    ///     .temporal_join(|o, r| (o.0.millis(), r.map(|r| r.2 * o.2)))
    ///     .collect();
    /// job.run(JobConfig::default().parallelism(1)).unwrap();
    /// let mut v = priced.take();
    /// v.sort();
    /// assert_eq!(v, vec![(50, Some(220)), (150, Some(360))]);
    /// ```
    pub fn temporal_join<O, F>(self, join: F) -> Stream<O>
    where
        A: crate::data::StateData,
        B: crate::data::StateData,
        K: crate::data::StateKey,
        O: Data,
        F: FnMut(&A, Option<&B>) -> O + Clone + Send + 'static,
    {
        let late = self.late;
        self.keyed.keyed_operator("temporal_join", |key_fn| {
            TemporalJoinOperator::new(key_fn, join, late)
        })
    }
}
