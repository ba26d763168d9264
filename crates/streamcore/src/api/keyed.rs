//! [`KeyedStream`]: a stream partitioned by key, and its rolling keyed operators.

use super::Stream;
use crate::data::{Data, Key};
use crate::metrics::NodeKind;
use crate::operator::{KeyedAggregate, KeyedReduce};
use std::marker::PhantomData;

/// A stream partitioned by a key function. Records with equal keys meet in the same parallel
/// instance; keyed state lives per key (and per key group, for checkpoints and rescaling).
pub struct KeyedStream<T, K, KF> {
    stream: Stream<T>,
    key_fn: KF,
    _k: PhantomData<fn() -> K>,
}

impl<T: Data, K: Key, KF: Fn(&T) -> K + Clone + Send + 'static> KeyedStream<T, K, KF> {
    pub(crate) fn new(stream: Stream<T>, key_fn: KF) -> Self {
        KeyedStream {
            stream,
            key_fn,
            _k: PhantomData,
        }
    }

    /// The hash exchange to the owners of each key's group.
    fn exchange(&self) -> Stream<T> {
        let port = self.stream.graph.borrow_mut().add_exchange::<T, K, KF>(
            &[self.stream.port],
            "key_by",
            Some(self.key_fn.clone()),
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
    ///     .from_vec("readings", vec![("a", 3), ("b", 1), ("a", 7), ("a", 5)])
    ///     .key_by(|r| r.0)
    ///     .reduce(|acc, r| if r.1 > acc.1 { r } else { acc })
    ///     .collect();
    /// job.run(JobConfig::default().parallelism(1)).unwrap();
    /// assert_eq!(out.take(), vec![("a", 3), ("b", 1), ("a", 7), ("a", 7)]);
    /// ```
    pub fn reduce<R>(self, reduce: R) -> Stream<T>
    where
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
    ///     .from_vec("tx", vec![("u1", 10), ("u2", 5), ("u1", 20)])
    ///     .key_by(|t| t.0)
    ///     .aggregate(|_| (0u32, 0i64), |acc, t| { acc.0 += 1; acc.1 += t.1 }, |k, acc| (*k, acc.0, acc.1))
    ///     .collect();
    /// job.run(JobConfig::default().parallelism(1)).unwrap();
    /// assert_eq!(out.take(), vec![("u1", 1, 10), ("u2", 1, 5), ("u1", 2, 30)]);
    /// ```
    pub fn aggregate<A, O, I, F, E>(self, init: I, fold: F, result: E) -> Stream<O>
    where
        A: Send + 'static,
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
