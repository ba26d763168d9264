//! [`KeyedStream`]: a stream partitioned by key, and its rolling keyed operators.

use super::windowed::WindowKind;
use super::{Stream, WindowedStream};
use crate::cep::{CepOperator, Match, Pattern};
use crate::data::{Data, Key};
use crate::event_time::EventTime;
use crate::metrics::NodeKind;
use crate::operator::Operator;
use crate::operator::OutputTag;
use crate::operator::{KeyedAggregate, KeyedReduce};
use crate::state::{KeyedProcessFunction, KeyedProcessOperator};
use crate::window::{CountTrigger, Trigger, Windows};
use std::marker::PhantomData;
use std::time::Duration;

/// A stream partitioned by a key function. Records with equal keys meet in the same parallel
/// instance; keyed state lives per key (and per key group, for checkpoints and rescaling).
pub struct KeyedStream<T, K, KF> {
    stream: Stream<T>,
    key_fn: KF,
    /// Fixed parallelism of the keyed stage (1 for all-windows), else the job's.
    parallelism: Option<usize>,
    state_ttl: Option<i64>,
    /// Group aggregates fold a group's changes within a batch ([`KeyedStream::mini_batch`]).
    pub(crate) mini_batch: bool,
    /// Updating operators emit `-U` before each `+U` ([`KeyedStream::without_update_before`]).
    pub(crate) update_before: bool,
    /// More streams feeding the same exchange (the other side of a join).
    extra_inputs: Vec<crate::runtime::graph::Port>,
    _k: PhantomData<fn() -> K>,
}

impl<T: Data, K: Key, KF: Fn(&T) -> K + Clone + Send + 'static> KeyedStream<T, K, KF> {
    pub(crate) fn new(stream: Stream<T>, key_fn: KF) -> Self {
        Self::with_parallelism(stream, key_fn, None)
    }

    pub(crate) fn with_parallelism(
        stream: Stream<T>,
        key_fn: KF,
        parallelism: Option<usize>,
    ) -> Self {
        KeyedStream {
            stream,
            key_fn,
            parallelism,
            state_ttl: None,
            mini_batch: false,
            update_before: true,
            extra_inputs: Vec::new(),
            _k: PhantomData,
        }
    }

    /// Adds `other` as a further input of the exchange (joins).
    pub(crate) fn with_input(mut self, other: crate::runtime::graph::Port) -> Self {
        self.extra_inputs.push(other);
        self
    }

    /// Cuts each key's records into event-time windows: tumbling, sliding or session.
    ///
    /// Invalid windows (a zero size, a slide larger than the size) make `run` refuse the job
    /// with the reason.
    pub fn window(self, windows: Windows) -> WindowedStream<T, K, KF>
    where
        T: EventTime,
        K: crate::data::StateKey,
    {
        let windows = match windows.validate() {
            Ok(()) => windows,
            Err(e) => {
                let mut graph = self.stream.graph.borrow_mut();
                let after = graph.nodes[self.stream.port.node].name.clone();
                graph.refuse(format!("invalid windows after `{after}`: {e}"));
                // Stands in until `run` refuses the job.
                Windows::tumbling(std::time::Duration::from_millis(1))
            }
        };
        WindowedStream::new(self, WindowKind::Time(windows))
    }

    /// Count windows: each key's records in groups of `n`, fired when the `n`-th arrives (and,
    /// at the end of a bounded input, whatever is left).
    pub fn count_window(self, n: u64) -> WindowedStream<T, K, KF>
    where
        T: EventTime,
        K: crate::data::StateKey,
    {
        if n == 0 {
            let mut graph = self.stream.graph.borrow_mut();
            let after = graph.nodes[self.stream.port.node].name.clone();
            graph.refuse(format!("count windows after `{after}` need n > 0"));
        }
        WindowedStream::new(self, WindowKind::Global(CountTrigger(n.max(1))))
    }

    /// One window per key for all time, emitted whenever `trigger` says (and at the end of a
    /// bounded input).
    pub fn global_window<Tr: Trigger<T>>(self, trigger: Tr) -> WindowedStream<T, K, KF, Tr>
    where
        T: EventTime,
        K: crate::data::StateKey,
    {
        WindowedStream::new(self, WindowKind::Global(trigger))
    }

    /// Runs a [`KeyedProcessFunction`]: user code with state per key and timers.
    pub fn process<P: KeyedProcessFunction<K, T>>(self, f: P) -> Stream<P::Out>
    where
        K: crate::data::StateKey,
    {
        self.process_named("keyed_process", f)
    }

    /// [`KeyedStream::process`] under another operator name.
    pub(crate) fn process_named<P: KeyedProcessFunction<K, T>>(
        self,
        name: &str,
        f: P,
    ) -> Stream<P::Out>
    where
        K: crate::data::StateKey,
    {
        let ttl = self.state_ttl;
        self.keyed_operator(name, |key_fn| KeyedProcessOperator::new(key_fn, f, ttl))
    }

    /// Drops a key's process-function state when the key was not touched (by a record or a
    /// timer) for `ttl` of wall-clock time. Default: state lives forever.
    pub fn state_ttl(mut self, ttl: Duration) -> Self {
        self.state_ttl = Some(ttl.as_millis().min(i64::MAX as u128) as i64);
        self
    }

    /// Makes a group aggregate on this stream ([`KeyedStream::group_aggregate`],
    /// [`KeyedStream::group_aggregate_changes`]) fold the changes of a group within one input
    /// batch into one, as Flink's mini-batch (`table.exec.mini-batch.enabled`) does: a group
    /// that several rows of a batch change emits one `-U`/`+U` pair (or one `+I`, or
    /// nothing when it ends where it started), so fewer updates flow on, with the same final
    /// table. Default: a change per input row, as Flink without mini-batch.
    pub fn mini_batch(mut self) -> Self {
        self.mini_batch = true;
        self
    }

    /// Makes an updating operator on this stream emit a changed row as `+U` alone, without
    /// the `-U` of the row it replaces: a group aggregate ([`KeyedStream::group_aggregate`],
    /// [`KeyedStream::group_aggregate_changes`]; the row replaced is the group's), a
    /// deduplication keeping the last row ([`KeyedStream::deduplicate`],
    /// [`KeyedStream::deduplicate_by_time`]; the key's), a ranked top-n
    /// ([`KeyedStream::top_n_ranked`], [`KeyedStream::top_n_ranked_changes`]; the key's row
    /// of that rank). Flink plans so for a sink that does not need `-U` (its `blackhole`, an
    /// upsert sink keyed as the operator): half the updates are not made.
    ///
    /// The output is then an upsert stream — each `+U` replaces the last row of its key — not
    /// a retract stream: a consumer that keeps rows as a multiset (such as
    /// [`crate::changelog::apply_to`], or another group aggregate) would keep the replaced
    /// rows. `+I` and `-D` are unchanged. Default: `-U` and `+U`.
    ///
    /// ```
    /// use streamcore::{Job, JobConfig};
    /// use streamcore::changelog::{Change, CountRows};
    /// let mut job = Job::new("upserts");
    /// let counts = job
    ///     .from_vec("clicks", vec!['a', 'a', 'b'])
    ///     .key_by(|c| *c)
    ///     .without_update_before()
    ///     .group_aggregate(CountRows)
    ///     .collect();
    /// job.run(JobConfig::default().parallelism(1)).unwrap();
    /// assert_eq!(
    ///     counts.take(),
    ///     vec![
    ///         Change::Insert(('a', 1)),
    ///         Change::UpdateAfter(('a', 2)),
    ///         Change::Insert(('b', 1)),
    ///     ]
    /// );
    /// ```
    pub fn without_update_before(mut self) -> Self {
        self.update_before = false;
        self
    }

    /// Finds `pattern` in each key's events, in event-time order.
    ///
    /// An invalid pattern (see [`Pattern::validate`]) makes `run` refuse the job.
    pub fn pattern(self, pattern: Pattern<T>) -> Stream<Match<T>>
    where
        T: EventTime + crate::data::StateData,
        K: crate::data::StateKey,
    {
        self.pattern_with_timeouts(pattern, None)
    }

    /// Like [`KeyedStream::pattern`], sending partial matches that time out (see
    /// [`Pattern::within`]) to the side output `timeouts`.
    pub fn pattern_with_timeouts(
        self,
        pattern: Pattern<T>,
        timeouts: Option<&OutputTag<Match<T>>>,
    ) -> Stream<Match<T>>
    where
        T: EventTime + crate::data::StateData,
        K: crate::data::StateKey,
    {
        let pattern = match pattern.validate() {
            Ok(()) => pattern,
            Err(e) => {
                let mut graph = self.stream.graph.borrow_mut();
                let after = graph.nodes[self.stream.port.node].name.clone();
                graph.refuse(format!("invalid pattern after `{after}`: {e}"));
                // Stands in until `run` refuses the job.
                Pattern::begin("invalid", |_: &T| false)
            }
        };
        let tag = timeouts.cloned();
        let stream = self.keyed_operator("cep", |key_fn| {
            CepOperator::new(key_fn, pattern, tag.clone())
        });
        if let Some(tag) = &tag {
            let _ = stream.side_output(tag);
        }
        stream
    }

    /// Adds a keyed operator (behind the hash exchange) built with this stream's key function.
    /// Refuses the job when this stream is updating: `operator` takes append-only input;
    /// `instead` says what takes a changelog.
    pub(crate) fn refuse_if_updating(&self, operator: &str, instead: &str) {
        let mut graph = self.stream.graph.borrow_mut();
        if let Some(origin) = graph.updating_origin(self.stream.port) {
            let from = graph.nodes[origin].name.clone();
            graph.refuse(format!(
                "`{operator}` takes an append-only stream, but its input is updating (`{from}` emits changes): use `{instead}`"
            ));
        }
    }

    /// Records a mistake in the job's definition (see `Graph::refuse`).
    pub(crate) fn refuse(&self, message: String) {
        self.stream.graph.borrow_mut().refuse(message);
    }

    pub(crate) fn keyed_operator<Op: Operator<In = T> + Clone>(
        self,
        name: &str,
        make: impl FnOnce(KF) -> Op,
    ) -> Stream<Op::Out> {
        let input = self.exchange();
        let op = make(self.key_fn);
        let port = input
            .graph
            .borrow_mut()
            .add_operator(input.port, name, NodeKind::Operator, op);
        Stream::new(input.graph, port)
    }

    /// The hash exchange to the owners of each key's group.
    fn exchange(&self) -> Stream<T> {
        let mut inputs = vec![self.stream.port];
        inputs.extend(&self.extra_inputs);
        let port = self.stream.graph.borrow_mut().add_exchange::<T, K, KF>(
            &inputs,
            &[],
            "key_by",
            Some(self.key_fn.clone()),
            self.parallelism,
        );
        Stream::new(self.stream.graph.clone(), port)
    }

    /// The records, partitioned by key (without a keyed operator yet).
    pub fn partitioned(self) -> Stream<T> {
        self.exchange()
    }

    /// Rolling reduce: for each record, emits the reduction of all records of its key so far.
    ///
    /// ```
    /// use streamcore::{Job, JobConfig};
    /// let mut job = Job::new("running-max");
    /// let out = job
    ///     .from_vec("readings", vec![('a', 3), ('b', 1), ('a', 7), ('a', 5)])
    ///     .key_by(|r| r.0)
    ///     .reduce(|acc, r| if r.1 > acc.1 { r } else { acc })
    ///     .collect();
    /// job.run(JobConfig::default().parallelism(1)).unwrap();
    /// assert_eq!(out.take(), vec![('a', 3), ('b', 1), ('a', 7), ('a', 7)]);
    /// ```
    pub fn reduce<R>(self, reduce: R) -> Stream<T>
    where
        T: crate::data::StateData,
        K: crate::data::StateKey,
        R: FnMut(T, T) -> T + Clone + Send + 'static,
    {
        let op = KeyedReduce {
            key_fn: self.key_fn.clone(),
            reduce,
            state: None,
        };
        let input = self.exchange();
        let port =
            input
                .graph
                .borrow_mut()
                .add_operator(input.port, "reduce", NodeKind::Operator, op);
        Stream::new(input.graph, port)
    }

    /// Rolling aggregate: keeps an accumulator per key, made by `init` and updated by `fold`
    /// for each record, and emits `result(key, accumulator)` after each update.
    ///
    /// ```
    /// use streamcore::{Job, JobConfig};
    /// let mut job = Job::new("spend");
    /// let out = job
    ///     .from_vec("tx", vec![(1u32, 10), (2, 5), (1, 20)])
    ///     .key_by(|t| t.0)
    ///     .aggregate(|_| (0u32, 0i64), |acc, t| { acc.0 += 1; acc.1 += t.1 }, |k, acc| (*k, acc.0, acc.1))
    ///     .collect();
    /// job.run(JobConfig::default().parallelism(1)).unwrap();
    /// assert_eq!(out.take(), vec![(1, 1, 10), (2, 1, 5), (1, 2, 30)]);
    /// ```
    pub fn aggregate<A, O, I, F, E>(self, init: I, fold: F, result: E) -> Stream<O>
    where
        K: crate::data::StateKey,
        A: crate::data::StateData,
        O: Data,
        I: Fn(&K) -> A + Clone + Send + 'static,
        F: FnMut(&mut A, T) + Clone + Send + 'static,
        E: FnMut(&K, &A) -> O + Clone + Send + 'static,
    {
        let op = KeyedAggregate {
            key_fn: self.key_fn.clone(),
            init,
            fold,
            result,
            state: None,
            _t: PhantomData,
        };
        let input = self.exchange();
        let port =
            input
                .graph
                .borrow_mut()
                .add_operator(input.port, "aggregate", NodeKind::Operator, op);
        Stream::new(input.graph, port)
    }
}
