//! Built-in window aggregates: [`Count`], [`Sum`], [`Min`], [`Max`], [`Avg`], exact
//! [`CountDistinct`], approximate [`ApproxCountDistinct`] (HyperLogLog++), approximate
//! [`Percentiles`] (DDSketch, relative error 1 %), and [`TopN`].
//!
//! Each takes a closure that picks the value out of a record, and is an incremental
//! [`AggregateFunction`]: the state per key and window is an accumulator, not the records.
//!
//! ```
//! use std::time::Duration;
//! use streamcore::{Job, JobConfig, Timestamp};
//! use streamcore::window::{aggregates::Sum, Windows};
//!
//! let mut job = Job::new("sums");
//! let readings = vec![(Timestamp(1), 'a', 2.0), (Timestamp(5), 'a', 3.0), (Timestamp(12), 'a', 4.0)];
//! let sums = job
//!     .from_vec("r", readings)
//!     .key_by(|r| r.1)
//!     .window(Windows::tumbling(Duration::from_millis(10)))
//!     .aggregate(Sum::new(|r: &(Timestamp, char, f64)| r.2))
//!     .collect();
//! job.run(JobConfig::default().parallelism(1)).unwrap();
//! let mut v: Vec<f64> = sums.take().into_iter().map(|r| r.value).collect();
//! v.sort_by(f64::total_cmp);
//! assert_eq!(v, vec![4.0, 5.0]);
//! ```

use super::AggregateFunction;
use crate::data::{Data, StateData};
use hyperloglogplus::{HyperLogLog, HyperLogLogPlus};
use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};
use std::cell::RefCell;
use std::hash::Hash;
use std::marker::PhantomData;
use std::ops::Add;

/// Counts records.
#[derive(Clone, Copy, Debug, Default)]
pub struct Count;

impl<T> AggregateFunction<T> for Count {
    type Acc = u64;
    type Out = u64;
    fn create(&self) -> u64 {
        0
    }
    #[inline]
    fn add(&self, acc: &mut u64, _: &T) {
        *acc += 1;
    }
    fn merge(&self, acc: &mut u64, other: u64) {
        *acc += other;
    }
    fn result(&self, acc: &u64) -> u64 {
        *acc
    }
}

/// Sums a numeric field (any `Copy + Default + Add` type: `i64`, `u64`, `f64`, …), in that
/// type: integers stay integers.
///
/// `Sum::new(|e| …)` alone cannot know the record type, so its closure needs it spelled out
/// (`|e: &Event| …`); [`crate::WindowedStream::sum`] takes the closure with the type known.
#[derive(Clone, Copy)]
pub struct Sum<F>(pub F);

impl<F> Sum<F> {
    /// Sums `field(record)`.
    pub fn new(field: F) -> Self {
        Sum(field)
    }
}

impl<T, N, F> AggregateFunction<T> for Sum<F>
where
    N: Data + StateData + Copy + Default + Add<Output = N>,
    F: Fn(&T) -> N + Clone + Send + 'static,
{
    type Acc = N;
    type Out = N;
    fn create(&self) -> N {
        N::default()
    }
    #[inline]
    fn add(&self, acc: &mut N, r: &T) {
        *acc = *acc + (self.0)(r);
    }
    fn merge(&self, acc: &mut N, other: N) {
        *acc = *acc + other;
    }
    fn result(&self, acc: &N) -> N {
        *acc
    }
}

macro_rules! extremum {
    ($name:ident, $doc:literal, $keep_new:expr) => {
        #[doc = $doc]
        #[derive(Clone, Copy)]
        pub struct $name<F>(pub F);

        impl<F> $name<F> {
            /// Over `field(record)`.
            pub fn new(field: F) -> Self {
                $name(field)
            }
        }

        impl<T, N, F> AggregateFunction<T> for $name<F>
        where
            N: Data + StateData + PartialOrd,
            F: Fn(&T) -> N + Clone + Send + 'static,
        {
            type Acc = Option<N>;
            type Out = Option<N>;
            fn create(&self) -> Option<N> {
                None
            }
            #[inline]
            fn add(&self, acc: &mut Option<N>, r: &T) {
                let v = (self.0)(r);
                self.merge(acc, Some(v));
            }
            fn merge(&self, acc: &mut Option<N>, other: Option<N>) {
                let keep_new: fn(&N, &N) -> bool = $keep_new;
                if let Some(v) = other {
                    match acc {
                        Some(cur) if !keep_new(&v, cur) => {}
                        _ => *acc = Some(v),
                    }
                }
            }
            fn result(&self, acc: &Option<N>) -> Option<N> {
                acc.clone()
            }
        }
    };
}

extremum!(
    Min,
    "The smallest value of a field (`None` for an empty window).",
    |new, cur| new < cur
);
extremum!(
    Max,
    "The largest value of a field (`None` for an empty window).",
    |new, cur| new > cur
);

/// The mean of a numeric field.
#[derive(Clone, Copy)]
pub struct Avg<F>(pub F);

impl<F> Avg<F> {
    /// The mean of `field(record)`.
    pub fn new(field: F) -> Self {
        Avg(field)
    }
}

impl<T, F: Fn(&T) -> f64 + Clone + Send + 'static> AggregateFunction<T> for Avg<F> {
    type Acc = (u64, f64);
    type Out = f64;
    fn create(&self) -> (u64, f64) {
        (0, 0.0)
    }
    #[inline]
    fn add(&self, acc: &mut (u64, f64), r: &T) {
        acc.0 += 1;
        acc.1 += (self.0)(r);
    }
    fn merge(&self, acc: &mut (u64, f64), other: (u64, f64)) {
        acc.0 += other.0;
        acc.1 += other.1;
    }
    fn result(&self, acc: &(u64, f64)) -> f64 {
        if acc.0 == 0 {
            f64::NAN
        } else {
            acc.1 / acc.0 as f64
        }
    }
}

/// The exact number of distinct values of a field (the state holds every distinct value).
#[derive(Clone, Copy)]
pub struct CountDistinct<F>(pub F);

impl<F> CountDistinct<F> {
    /// Distinct values of `field(record)`.
    pub fn new(field: F) -> Self {
        CountDistinct(field)
    }
}

impl<T, V, F> AggregateFunction<T> for CountDistinct<F>
where
    V: Hash + Eq + StateData + Clone,
    F: Fn(&T) -> V + Clone + Send + 'static,
{
    type Acc = hashbrown::HashSet<V, foldhash::fast::RandomState>;
    type Out = u64;
    fn create(&self) -> Self::Acc {
        Default::default()
    }
    fn add(&self, acc: &mut Self::Acc, r: &T) {
        acc.insert((self.0)(r));
    }
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
        acc.extend(other);
    }
    fn result(&self, acc: &Self::Acc) -> u64 {
        acc.len() as u64
    }
}

/// Hash function shared by all HyperLogLog sketches, so that they can be merged: SipHash with
/// fixed keys. HyperLogLog needs well-mixed high and low bits, which hash-table hashers such as
/// foldhash do not promise (with foldhash, 60,000 distinct integers counted as 37,636).
/// Serializable, so that sketches go into checkpoints.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct SketchHasher;

impl std::hash::BuildHasher for SketchHasher {
    type Hasher = std::collections::hash_map::DefaultHasher;
    fn build_hasher(&self) -> Self::Hasher {
        // Fixed keys (0, 0): the same hash in every sketch, run and restore.
        std::collections::hash_map::DefaultHasher::new()
    }
}

/// The approximate number of distinct values of a field: HyperLogLog++ (the
/// `hyperloglogplus` crate) with precision 14 — about 0.8 % standard error in at most 16 KiB,
/// and exact-ish sparse counting for small sets.
pub struct ApproxCountDistinct<F, V> {
    field: F,
    _v: PhantomData<fn() -> V>,
}

impl<F: Clone, V> Clone for ApproxCountDistinct<F, V> {
    fn clone(&self) -> Self {
        ApproxCountDistinct {
            field: self.field.clone(),
            _v: PhantomData,
        }
    }
}

impl<F, V> ApproxCountDistinct<F, V> {
    /// Distinct values of `field(record)`.
    pub fn new(field: F) -> Self {
        ApproxCountDistinct {
            field,
            _v: PhantomData,
        }
    }
}

/// A HyperLogLog++ sketch. `count` needs `&mut` (it folds a buffer in), hence the cell.
#[derive(Clone, Serialize, Deserialize)]
#[serde(bound(serialize = "", deserialize = ""))]
pub struct Hll<V: Hash + Clone>(RefCell<HyperLogLogPlus<V, SketchHasher>>);

impl<T, V, F> AggregateFunction<T> for ApproxCountDistinct<F, V>
where
    V: Hash + Clone + Send + 'static,
    F: Fn(&T) -> V + Clone + Send + 'static,
{
    type Acc = Hll<V>;
    type Out = u64;
    fn create(&self) -> Hll<V> {
        let sketch = HyperLogLogPlus::new(14, SketchHasher).expect("precision 14 is valid");
        Hll(RefCell::new(sketch))
    }
    fn add(&self, acc: &mut Hll<V>, r: &T) {
        acc.0.get_mut().insert(&(self.field)(r));
    }
    fn merge(&self, acc: &mut Hll<V>, other: Hll<V>) {
        acc.0
            .get_mut()
            .merge(&other.0.into_inner())
            .expect("sketches of one aggregate share their precision");
    }
    fn result(&self, acc: &Hll<V>) -> u64 {
        acc.0.borrow_mut().count().round() as u64
    }
}

/// Approximate quantiles of a numeric field: DDSketch (the `sketches-ddsketch` crate) with
/// 1 % relative accuracy; mergeable. The result lists `(quantile, value)` for each requested
/// quantile (`None` values for an empty window).
#[derive(Clone)]
pub struct Percentiles<F> {
    field: F,
    quantiles: Vec<f64>,
}

impl<F> Percentiles<F> {
    /// The `quantiles` (each in `0.0..=1.0`) of `field(record)`.
    pub fn new(field: F, quantiles: &[f64]) -> Self {
        Percentiles {
            field,
            quantiles: quantiles.to_vec(),
        }
    }
}

impl<T, F: Fn(&T) -> f64 + Clone + Send + 'static> AggregateFunction<T> for Percentiles<F> {
    type Acc = DDSketch;
    type Out = Vec<(f64, Option<f64>)>;
    fn create(&self) -> DDSketch {
        DDSketch::new(Config::defaults())
    }
    fn add(&self, acc: &mut DDSketch, r: &T) {
        acc.add((self.field)(r));
    }
    fn merge(&self, acc: &mut DDSketch, other: DDSketch) {
        acc.merge(&other)
            .expect("sketches of one aggregate share their configuration");
    }
    fn result(&self, acc: &DDSketch) -> Self::Out {
        self.quantiles
            .iter()
            .map(|&q| (q, acc.quantile(q).ok().flatten()))
            .collect()
    }
}

/// The `n` records with the largest score, best first (ties: earlier first).
#[derive(Clone)]
pub struct TopN<F> {
    n: usize,
    score: F,
}

impl<F> TopN<F> {
    /// The `n` records with the largest `score(record)`.
    pub fn new(n: usize, score: F) -> Self {
        TopN { n, score }
    }
}

impl<T: Data + StateData, F: Fn(&T) -> f64 + Clone + Send + 'static> AggregateFunction<T>
    for TopN<F>
{
    /// Up to `n` (score, record) pairs, best first.
    type Acc = Vec<(f64, T)>;
    type Out = Vec<T>;
    fn create(&self) -> Self::Acc {
        Vec::with_capacity(self.n + 1)
    }
    fn add(&self, acc: &mut Self::Acc, r: &T) {
        let s = (self.score)(r);
        if acc.len() == self.n && acc.last().is_some_and(|(worst, _)| *worst >= s) {
            return;
        }
        let at = acc.partition_point(|(x, _)| *x >= s);
        acc.insert(at, (s, r.clone()));
        acc.truncate(self.n);
    }
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
        for (s, r) in other {
            let at = acc.partition_point(|(x, _)| *x >= s);
            acc.insert(at, (s, r));
        }
        acc.truncate(self.n);
    }
    fn result(&self, acc: &Self::Acc) -> Vec<T> {
        acc.iter().map(|(_, r)| r.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold<A: AggregateFunction<f64>>(a: &A, values: &[f64]) -> A::Acc {
        let mut acc = a.create();
        for v in values {
            a.add(&mut acc, v);
        }
        acc
    }

    #[test]
    fn exact_aggregates() {
        let v = [3.0, -1.0, 4.0, 1.0, 5.0];
        assert_eq!(
            AggregateFunction::<f64>::result(&Count, &fold(&Count, &v)),
            5
        );
        let sum = Sum::new(|x: &f64| *x);
        assert_eq!(sum.result(&fold(&sum, &v)), 12.0);
        let min = Min::new(|x: &f64| *x);
        assert_eq!(min.result(&fold(&min, &v)), Some(-1.0));
        let max = Max::new(|x: &f64| *x);
        assert_eq!(max.result(&fold(&max, &v)), Some(5.0));
        assert_eq!(max.result(&fold(&max, &[])), None);
        let avg = Avg::new(|x: &f64| *x);
        assert_eq!(avg.result(&fold(&avg, &v)), 2.4);
        let top = TopN::new(2, |x: &f64| *x);
        assert_eq!(top.result(&fold(&top, &v)), vec![5.0, 4.0]);
        let distinct = CountDistinct::new(|x: &f64| (*x as i64).rem_euclid(3));
        assert_eq!(distinct.result(&fold(&distinct, &v)), 3);
    }

    #[test]
    fn merging_equals_folding_everything() {
        let (a, b) = ([1.0, 9.0, 2.0], [7.0, 3.0]);
        let all = [1.0, 9.0, 2.0, 7.0, 3.0];
        let top = TopN::new(3, |x: &f64| *x);
        let mut acc = fold(&top, &a);
        top.merge(&mut acc, fold(&top, &b));
        assert_eq!(top.result(&acc), top.result(&fold(&top, &all)));
        let avg = Avg::new(|x: &f64| *x);
        let mut acc = fold(&avg, &a);
        avg.merge(&mut acc, fold(&avg, &b));
        assert_eq!(avg.result(&acc), avg.result(&fold(&avg, &all)));
    }

    #[test]
    fn hyperloglog_is_within_two_percent_and_merges() {
        let hll = ApproxCountDistinct::new(|x: &u64| *x);
        let mut a = hll.create();
        let mut b = hll.create();
        for i in 0..60_000u64 {
            hll.add(&mut a, &i);
            hll.add(&mut b, &(i + 40_000)); // overlaps a on 40_000..60_000
        }
        let count = hll.result(&a) as f64;
        assert!((count - 60_000.0).abs() < 1_200.0, "{count}");
        hll.merge(&mut a, b);
        let union = hll.result(&a) as f64;
        assert!((union - 100_000.0).abs() < 2_000.0, "{union}");
    }

    #[test]
    fn ddsketch_quantiles_within_relative_accuracy() {
        let p = Percentiles::new(|x: &f64| *x, &[0.5, 0.99]);
        let values: Vec<f64> = (1..=10_000).map(f64::from).collect();
        let (left, right) = values.split_at(3_000);
        let mut acc = fold(&p, left);
        p.merge(&mut acc, fold(&p, right));
        let r = p.result(&acc);
        let median = r[0].1.unwrap();
        let p99 = r[1].1.unwrap();
        assert!((median - 5_000.0).abs() / 5_000.0 < 0.02, "{median}");
        assert!((p99 - 9_900.0).abs() / 9_900.0 < 0.02, "{p99}");
    }
}
