//! [`Stream`]: a typed stream under construction, and its operators.
//!
//! Every operator added here is fused into the chain of the stream it consumes: records move
//! from one to the next by a function call per batch. Only `key_by`, `rebalance` and `union`
//! start a new stage behind an exchange.

use super::{KeyedStream, WindowedStream};
use crate::data::{Data, Key};
use crate::event_time::{EventTime, WatermarkStrategy};
use crate::metrics::NodeKind;
use crate::operator::{
    Filter, FlatMap, Inspect, Map, Operator, Output, OutputTag, Process, TryFilter, TryMap,
};
use crate::runtime::graph::{Graph, Port};
use crate::sink::{CollectSink, Collected, ForEachSink, Sink};
use crate::window::Windows;
use serde::Serialize;
use std::cell::RefCell;
use std::fmt::Display;
use std::marker::PhantomData;
use std::rc::Rc;

/// A stream of `T` records in a job being built.
///
/// Methods take the stream by value; to feed several consumers from one stream, clone it.
pub struct Stream<T> {
    pub(crate) graph: Rc<RefCell<Graph>>,
    pub(crate) port: Port,
    _t: PhantomData<fn() -> T>,
}

/// A second handle on the same stream: every consumer of either handle receives every record
/// (batches are cloned for all but one consumer).
impl<T> Clone for Stream<T> {
    fn clone(&self) -> Self {
        Stream {
            graph: self.graph.clone(),
            port: self.port,
            _t: PhantomData,
        }
    }
}

/// The key function type of streams that are only redistributed, never keyed.
pub type NoKey<T> = fn(&T) -> ();

impl<T: Data> Stream<T> {
    pub(crate) fn new(graph: Rc<RefCell<Graph>>, port: Port) -> Self {
        Stream {
            graph,
            port,
            _t: PhantomData,
        }
    }

    fn then<Op: Operator<In = T> + Clone>(
        self,
        name: &str,
        kind: NodeKind,
        op: Op,
    ) -> Stream<Op::Out> {
        let port = self
            .graph
            .borrow_mut()
            .add_operator(self.port, name, kind, op);
        Stream::new(self.graph, port)
    }

    /// Names the operator that produces this stream (shown in metrics and errors).
    pub fn name(self, name: &str) -> Self {
        if self.port.side.is_none() {
            self.graph.borrow_mut().rename(self.port.node, name);
        }
        self
    }

    /// Sets the state identity of the operator that made this stream: what checkpoints key
    /// its state by, apart from its display name (Flink's `uid`).
    ///
    /// Without it an operator's id is its name ([`Stream::name`], or `kind#position` in the
    /// graph), so renaming it, or adding operators before an unnamed one, leaves its state
    /// behind on restore — which stops the restore with a message naming the state, unless
    /// `CheckpointConfig::allow_non_restored_state` drops it. Give every stateful operator of
    /// a long-lived job an id. Ids must be unique in the job: a duplicate stops `run` with an
    /// error naming both operators.
    ///
    /// ```
    /// use streamcore::{Job, JobConfig};
    /// let mut job = Job::new("totals");
    /// job.from_vec("numbers", vec![1u32, 2, 3])
    ///     .uid("numbers-source")
    ///     .key_by(|n| n % 2)
    ///     .reduce(|a, b| a + b)
    ///     .name("sum per parity")
    ///     .uid("sum-per-parity-v1")
    ///     .collect();
    /// job.run(JobConfig::default()).unwrap();
    /// ```
    pub fn uid(self, id: &str) -> Self {
        match self.port.side {
            None => self.graph.borrow_mut().set_uid(self.port.node, id),
            Some(_) => self.graph.borrow_mut().refuse(format!(
                "uid(\"{id}\") on a side output: set the id on the operator's main output"
            )),
        }
        self
    }

    /// Generates watermarks from the records' event times, per source split, with `strategy`.
    ///
    /// Call it on a source's stream or after filters of it (`filter`, `try_filter`): the
    /// watermarks are generated at the source, from every record it reads.
    ///
    /// After any other operator (a `map` changes the records; a `key_by` their partitioning)
    /// or on a side output, `run` refuses the job with a message saying to move it up to the
    /// source.
    pub fn with_watermarks(self, strategy: WatermarkStrategy) -> Self
    where
        T: EventTime,
    {
        if self.port.side.is_some() {
            self.graph
                .borrow_mut()
                .refuse("with_watermarks on a side output: call it on the source's stream".into());
            return self;
        }
        self.graph
            .borrow_mut()
            .set_watermarks::<T>(self.port.node, strategy);
        self
    }

    /// Keeps the records for which `predicate` holds. Dropped records count as
    /// `events_filtered`, never as failures.
    pub fn filter<F>(self, predicate: F) -> Stream<T>
    where
        F: FnMut(&T) -> bool + Clone + Send + 'static,
    {
        self.then(
            "filter",
            NodeKind::Filter,
            Filter {
                f: predicate,
                _t: PhantomData,
            },
        )
    }

    /// Keeps the records for which `predicate` returns `Ok(true)`. An `Err` follows the job's
    /// [`crate::ErrorPolicy`], like [`Stream::try_map`]'s.
    pub fn try_filter<E, F>(self, predicate: F) -> Stream<T>
    where
        T: Serialize,
        E: Display + 'static,
        F: FnMut(&T) -> Result<bool, E> + Clone + Send + 'static,
    {
        self.then(
            "try_filter",
            NodeKind::Filter,
            TryFilter {
                f: predicate,
                _t: PhantomData,
            },
        )
    }

    /// Transforms each record into one new record.
    pub fn map<U: Data, F>(self, f: F) -> Stream<U>
    where
        F: FnMut(T) -> U + Clone + Send + 'static,
    {
        self.then("map", NodeKind::Operator, Map { f, _t: PhantomData })
    }

    /// Transforms each record into zero or more records.
    pub fn flat_map<U: Data, I, F>(self, f: F) -> Stream<U>
    where
        I: IntoIterator<Item = U> + 'static,
        F: FnMut(T) -> I + Clone + Send + 'static,
    {
        self.then(
            "flat_map",
            NodeKind::Operator,
            FlatMap { f, _t: PhantomData },
        )
    }

    /// Calls `f` on each record and passes it on unchanged.
    pub fn inspect<F>(self, f: F) -> Stream<T>
    where
        F: FnMut(&T) + Clone + Send + 'static,
    {
        self.then(
            "inspect",
            NodeKind::Operator,
            Inspect { f, _t: PhantomData },
        )
    }

    /// Transforms each record with a function that may fail. A failure follows the job's
    /// [`crate::ErrorPolicy`]: stop the job naming this operator and the error, or send the
    /// record (as JSON) and the error to the dead-letter sink.
    pub fn try_map<U: Data, E, F>(self, f: F) -> Stream<U>
    where
        T: Serialize,
        E: Display + 'static,
        F: FnMut(&T) -> Result<U, E> + Clone + Send + 'static,
    {
        self.then("try_map", NodeKind::Operator, TryMap { f, _t: PhantomData })
    }

    /// Runs `f` on each record with the output at hand: emit any number of records, or send
    /// records to side outputs ([`Stream::side_output`]).
    ///
    /// ```
    /// use streamcore::{Job, JobConfig, OutputTag};
    /// let mut job = Job::new("split");
    /// let odd = OutputTag::<i32>::new("odd");
    /// let evens = job.from_vec("n", (0..10).collect()).process({
    ///     let odd = odd.clone();
    ///     move |n, out| if n % 2 == 0 { out.emit(n) } else { out.side(&odd, n) }
    /// });
    /// let odds = evens.side_output(&odd).collect();
    /// let evens = evens.collect();
    /// job.run(JobConfig::default()).unwrap();
    /// assert_eq!(evens.len(), 5);
    /// assert_eq!(odds.len(), 5);
    /// ```
    pub fn process<U: Data, F>(self, f: F) -> Stream<U>
    where
        F: FnMut(T, &mut Output<U>) + Clone + Send + 'static,
    {
        self.then(
            "process",
            NodeKind::Operator,
            Process { f, _t: PhantomData },
        )
    }

    /// Applies a custom [`Operator`].
    pub fn apply<Op: Operator<In = T> + Clone>(self, name: &str, op: Op) -> Stream<Op::Out> {
        self.then(name, NodeKind::Operator, op)
    }

    /// The side output `tag` of the operator that produces this stream.
    pub fn side_output<U: Data>(&self, tag: &OutputTag<U>) -> Stream<U> {
        let port = self
            .graph
            .borrow_mut()
            .side_port::<U>(self.port.node, tag.id);
        Stream::new(self.graph.clone(), port)
    }

    /// Partitions the stream by key: records with equal keys go to the same parallel
    /// instance, where keyed operators keep state per key.
    pub fn key_by<K: Key, KF>(self, key_fn: KF) -> KeyedStream<T, K, KF>
    where
        KF: Fn(&T) -> K + Clone + Send + 'static,
    {
        KeyedStream::new(self, key_fn)
    }

    /// Windows over the whole stream, not per key: one instance (parallelism 1) sees every
    /// record. Prefer `key_by(..).window(..)` where a key exists.
    pub fn window_all(self, windows: Windows) -> WindowedStream<T, (), NoKey<T>>
    where
        T: EventTime,
    {
        let all: NoKey<T> = |_| ();
        KeyedStream::with_parallelism(self, all, Some(1)).window(windows)
    }

    /// Spreads batches evenly over the parallel instances of a new stage (after a source that
    /// cannot read in parallel, say).
    pub fn rebalance(self) -> Stream<T> {
        let port = self.graph.borrow_mut().add_exchange::<T, (), NoKey<T>>(
            &[self.port],
            &[],
            "rebalance",
            None,
            None,
        );
        Stream::new(self.graph, port)
    }

    /// Merges two streams of the same type into one.
    ///
    /// A stream of another job makes both jobs' `run` refuse them.
    pub fn union(self, other: Stream<T>) -> Stream<T> {
        let other = self.same_job(other, "union");
        let port = self.graph.borrow_mut().add_exchange::<T, (), NoKey<T>>(
            &[self.port, other.port],
            &[],
            "union",
            None,
            None,
        );
        Stream::new(self.graph, port)
    }

    /// Describes the rows of this stream (a stream of [`crate::row::Row`]s): the columns'
    /// names and types, shown with the job's graph. Filters and exchanges downstream keep it;
    /// operators that make new rows get their own.
    pub fn with_schema(self, schema: crate::row::Schema) -> Self {
        if self.port.side.is_none() {
            self.graph.borrow_mut().nodes[self.port.node].schema =
                Some(std::sync::Arc::new(schema));
        }
        self
    }

    /// The schema of this stream's rows, if one was given (see [`Stream::with_schema`]).
    pub fn schema(&self) -> Option<crate::row::Schema> {
        let graph = self.graph.borrow();
        match self.port.side {
            None => graph.nodes[self.port.node].schema.as_deref().cloned(),
            Some(_) => None,
        }
    }

    /// Marks this stream as updating (a changelog starts at the operator that made it).
    pub(crate) fn updating(self) -> Self {
        if self.port.side.is_none() {
            self.graph.borrow_mut().mark_updating(self.port.node);
        }
        self
    }

    /// Marks this (main output) stream append-only (see `Graph::mark_append_only`).
    pub(crate) fn append_only(self) -> Self {
        if self.port.side.is_none() {
            self.graph.borrow_mut().mark_append_only(self.port.node);
        }
        self
    }

    /// `other` if it belongs to this stream's job; else both jobs are refused (`what` says
    /// which call mixed them) and an empty stream of this job stands in for it.
    pub(crate) fn same_job<U: Data>(&self, other: Stream<U>, what: &str) -> Stream<U> {
        if Rc::ptr_eq(&self.graph, &other.graph) {
            return other;
        }
        let message = format!("{what} of streams from different jobs");
        other.graph.borrow_mut().refuse(message.clone());
        let mut graph = self.graph.borrow_mut();
        graph.refuse(message);
        let port = graph.add_source("stand-in", crate::source::VecSource(Vec::<U>::new()));
        drop(graph);
        Stream::new(self.graph.clone(), port)
    }

    /// Writes the stream to `sink`.
    pub fn sink<S: Sink<T>>(self, sink: S) {
        self.sink_named("sink", sink)
    }

    /// Writes the stream to `sink`, naming it in metrics.
    pub fn sink_named<S: Sink<T>>(self, name: &str, sink: S) {
        self.graph.borrow_mut().add_sink(self.port, name, sink);
    }

    /// Gathers the stream into memory; read it after the job ran.
    pub fn collect(self) -> Collected<T> {
        let (sink, collected) = CollectSink::new();
        self.sink_named("collect", sink);
        collected
    }

    /// Calls `f` for every record (each parallel instance calls its own clone of `f`).
    pub fn for_each<F: FnMut(T) + Clone + Send + 'static>(self, f: F) {
        self.sink_named("for_each", ForEachSink(f));
    }
}
