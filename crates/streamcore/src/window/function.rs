//! Window functions: the public [`AggregateFunction`] (incremental: the state is an
//! accumulator, not the records), and the internal [`WindowFunction`] that window operators
//! run, with adapters for `aggregate`, `reduce` and `process`.

use super::{Window, WindowResult};
use crate::data::{Data, Key, StateData};
use crate::operator::Output;
use std::marker::PhantomData;

/// An incremental aggregation: records are folded into an accumulator as they arrive, and
/// accumulators of merging windows (sessions) are merged.
///
/// ```
/// use streamcore::window::AggregateFunction;
///
/// /// Average of the second field.
/// #[derive(Clone)]
/// struct Mean;
/// impl AggregateFunction<(u32, f64)> for Mean {
///     type Acc = (u64, f64);
///     type Out = f64;
///     fn create(&self) -> (u64, f64) { (0, 0.0) }
///     fn add(&self, acc: &mut (u64, f64), r: &(u32, f64)) { acc.0 += 1; acc.1 += r.1; }
///     fn merge(&self, acc: &mut (u64, f64), other: (u64, f64)) { acc.0 += other.0; acc.1 += other.1; }
///     fn result(&self, acc: &(u64, f64)) -> f64 { acc.1 / acc.0 as f64 }
/// }
/// ```
pub trait AggregateFunction<T>: Clone + Send + 'static {
    /// The accumulator kept per key and window (per key and slice of sliding windows);
    /// serializable, as it goes into checkpoints (derive `Clone`, `Serialize` and
    /// `Deserialize`).
    type Acc: StateData + Clone;
    /// The result.
    type Out: Data;
    /// A new, empty accumulator.
    fn create(&self) -> Self::Acc;
    /// Folds one record in.
    fn add(&self, acc: &mut Self::Acc, record: &T);
    /// Merges `other` into `acc` (for merging windows).
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);
    /// Merges `other` into `acc`, leaving `other` as it is: sliding windows keep one
    /// accumulator per slice of `gcd(size, slide)` and merge the slices of a window when it
    /// fires. By default a copy of `other` is merged; override it when that copy costs more
    /// than reading `other` in place.
    fn merge_from(&self, acc: &mut Self::Acc, other: &Self::Acc) {
        self.merge(acc, other.clone())
    }
    /// The result of an accumulator.
    fn result(&self, acc: &Self::Acc) -> Self::Out;
}

/// What a window operator runs per key and window.
pub(crate) trait WindowFunction<K, T>: Clone + Send + 'static {
    type Acc: StateData;
    type Out: Data;
    fn create(&mut self) -> Self::Acc;
    fn add(&mut self, acc: &mut Self::Acc, record: T);
    fn merge(&mut self, acc: &mut Self::Acc, other: Self::Acc);
    /// Merges `other` into `acc`, leaving `other` as it is (a slice into a window).
    fn merge_ref(&mut self, acc: &mut Self::Acc, other: &Self::Acc);
    fn emit(&mut self, key: &K, window: Window, acc: &Self::Acc, out: &mut Output<Self::Out>);
}

/// `aggregate_with(f, finish)`: emits `finish(key, window, f, acc)`, made from the accumulator
/// in place (no key cloned, no `f.result` built first); `aggregate(f)` is the `finish` that
/// makes `WindowResult { key, window, value: f.result(acc) }`.
#[derive(Clone)]
pub(crate) struct AggregatedWith<A, E, K> {
    pub(crate) f: A,
    pub(crate) finish: E,
    pub(crate) _k: PhantomData<fn() -> K>,
}

impl<K, T, A, O, E> WindowFunction<K, T> for AggregatedWith<A, E, K>
where
    K: Key,
    A: AggregateFunction<T>,
    O: Data,
    E: FnMut(&K, Window, &A, &A::Acc) -> O + Clone + Send + 'static,
{
    type Acc = A::Acc;
    type Out = O;
    fn create(&mut self) -> A::Acc {
        self.f.create()
    }
    #[inline]
    fn add(&mut self, acc: &mut A::Acc, record: T) {
        self.f.add(acc, &record)
    }
    fn merge(&mut self, acc: &mut A::Acc, other: A::Acc) {
        self.f.merge(acc, other)
    }
    fn merge_ref(&mut self, acc: &mut A::Acc, other: &A::Acc) {
        self.f.merge_from(acc, other)
    }
    #[inline]
    fn emit(&mut self, key: &K, window: Window, acc: &A::Acc, out: &mut Output<O>) {
        out.emit((self.finish)(key, window, &self.f, acc))
    }
}

/// `reduce(f)`: the state is the reduction of the window's records.
#[derive(Clone)]
pub(crate) struct Reduced<R, K> {
    pub(crate) f: R,
    pub(crate) _k: PhantomData<fn() -> K>,
}

impl<K: Key, T: Data + StateData, R: FnMut(T, T) -> T + Clone + Send + 'static> WindowFunction<K, T>
    for Reduced<R, K>
{
    type Acc = Option<T>;
    type Out = WindowResult<K, T>;
    fn create(&mut self) -> Option<T> {
        None
    }
    #[inline]
    fn add(&mut self, acc: &mut Option<T>, record: T) {
        *acc = Some(match acc.take() {
            Some(a) => (self.f)(a, record),
            None => record,
        });
    }
    fn merge(&mut self, acc: &mut Option<T>, other: Option<T>) {
        if let Some(o) = other {
            self.add(acc, o);
        }
    }
    fn merge_ref(&mut self, acc: &mut Option<T>, other: &Option<T>) {
        if let Some(o) = other {
            self.add(acc, o.clone());
        }
    }
    fn emit(&mut self, key: &K, window: Window, acc: &Option<T>, out: &mut Output<Self::Out>) {
        if let Some(value) = acc {
            out.emit(WindowResult {
                key: key.clone(),
                window,
                value: value.clone(),
            })
        }
    }
}

/// `process(f)`: keeps the window's records and hands them all to `f` when it fires.
#[derive(Clone)]
pub(crate) struct ProcessWindow<F, T, O> {
    pub(crate) f: F,
    pub(crate) _t: PhantomData<fn(T) -> O>,
}

impl<K, T, O, F> WindowFunction<K, T> for ProcessWindow<F, T, O>
where
    K: Key,
    T: Data + StateData,
    O: Data,
    F: FnMut(&K, Window, &[T], &mut Output<O>) + Clone + Send + 'static,
{
    type Acc = Vec<T>;
    type Out = O;
    fn create(&mut self) -> Vec<T> {
        Vec::new()
    }
    #[inline]
    fn add(&mut self, acc: &mut Vec<T>, record: T) {
        acc.push(record)
    }
    fn merge(&mut self, acc: &mut Vec<T>, mut other: Vec<T>) {
        acc.append(&mut other)
    }
    fn merge_ref(&mut self, acc: &mut Vec<T>, other: &Vec<T>) {
        acc.extend_from_slice(other)
    }
    fn emit(&mut self, key: &K, window: Window, acc: &Vec<T>, out: &mut Output<O>) {
        (self.f)(key, window, acc, out)
    }
}
