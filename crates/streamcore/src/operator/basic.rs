//! The stateless operators behind `filter`, `map`, `flat_map`, `inspect`, `try_map` and
//! `process`: each a thin [`Operator`] around a user closure, called in a tight loop per batch.

use super::{Operator, Output};
use crate::context::TaskContext;
use crate::data::Data;
use crate::error::Result;
use serde::Serialize;
use std::fmt::Display;
use std::marker::PhantomData;

/// Every operator here is a closure `f` plus a marker; cloning clones the closure only.
macro_rules! clone_closure_operator {
    ($($name:ident<$($param:ident),*>),*) => {$(
        impl<$($param,)* F: Clone> Clone for $name<$($param,)* F> {
            fn clone(&self) -> Self {
                $name { f: self.f.clone(), _t: PhantomData }
            }
        }
    )*};
}

clone_closure_operator!(Filter<T>, TryFilter<T, E>, Map<T, U>, FlatMap<T, U, I>, Inspect<T>, TryMap<T, U, E>, Process<T, U>);

/// Keeps the records for which the predicate holds; filters in place, no copy.
pub(crate) struct Filter<T, F> {
    pub(crate) f: F,
    pub(crate) _t: PhantomData<fn(T)>,
}

impl<T: Data, F: FnMut(&T) -> bool + Send + 'static> Operator for Filter<T, F> {
    type In = T;
    type Out = T;
    #[inline]
    fn process_batch(
        &mut self,
        mut batch: Vec<T>,
        _: &mut TaskContext,
        out: &mut Output<T>,
    ) -> Result<()> {
        batch.retain(|r| (self.f)(r));
        out.emit_batch(batch);
        Ok(())
    }
}

/// A filter whose predicate may fail; failures follow the job's error policy.
pub(crate) struct TryFilter<T, E, F> {
    pub(crate) f: F,
    pub(crate) _t: PhantomData<fn(T) -> E>,
}

impl<T, E, F> Operator for TryFilter<T, E, F>
where
    T: Data + Serialize,
    E: Display + 'static,
    F: FnMut(&T) -> std::result::Result<bool, E> + Send + 'static,
{
    type In = T;
    type Out = T;
    fn process_batch(
        &mut self,
        batch: Vec<T>,
        ctx: &mut TaskContext,
        out: &mut Output<T>,
    ) -> Result<()> {
        let mut failure = Ok(());
        let mut batch = batch;
        batch.retain(|record| match (self.f)(record) {
            Ok(keep) => keep,
            Err(e) => {
                if failure.is_ok() {
                    failure = ctx.reject_record(record, e.to_string());
                }
                false
            }
        });
        failure?;
        out.emit_batch(batch);
        Ok(())
    }
}

/// One record out per record in.
pub(crate) struct Map<T, U, F> {
    pub(crate) f: F,
    pub(crate) _t: PhantomData<fn(T) -> U>,
}

impl<T: Data, U: Data, F: FnMut(T) -> U + Send + 'static> Operator for Map<T, U, F> {
    type In = T;
    type Out = U;
    #[inline]
    fn process_batch(
        &mut self,
        batch: Vec<T>,
        _: &mut TaskContext,
        out: &mut Output<U>,
    ) -> Result<()> {
        out.emit_batch(batch.into_iter().map(&mut self.f).collect());
        Ok(())
    }
}

/// Zero or more records out per record in.
pub(crate) struct FlatMap<T, U, I, F> {
    pub(crate) f: F,
    pub(crate) _t: PhantomData<fn(T) -> (U, I)>,
}

impl<T, U, I, F> Operator for FlatMap<T, U, I, F>
where
    T: Data,
    U: Data,
    I: IntoIterator<Item = U> + 'static,
    F: FnMut(T) -> I + Send + 'static,
{
    type In = T;
    type Out = U;
    fn process_batch(
        &mut self,
        batch: Vec<T>,
        _: &mut TaskContext,
        out: &mut Output<U>,
    ) -> Result<()> {
        for record in batch {
            for item in (self.f)(record) {
                out.emit(item);
            }
        }
        Ok(())
    }
}

/// Looks at every record, passes it on unchanged.
pub(crate) struct Inspect<T, F> {
    pub(crate) f: F,
    pub(crate) _t: PhantomData<fn(T)>,
}

impl<T: Data, F: FnMut(&T) + Send + 'static> Operator for Inspect<T, F> {
    type In = T;
    type Out = T;
    fn process_batch(
        &mut self,
        batch: Vec<T>,
        _: &mut TaskContext,
        out: &mut Output<T>,
    ) -> Result<()> {
        batch.iter().for_each(&mut self.f);
        out.emit_batch(batch);
        Ok(())
    }
}

/// A map that may fail per record; failures follow the job's error policy.
pub(crate) struct TryMap<T, U, E, F> {
    pub(crate) f: F,
    pub(crate) _t: PhantomData<fn(T) -> (U, E)>,
}

impl<T, U, E, F> Operator for TryMap<T, U, E, F>
where
    T: Data + Serialize,
    U: Data,
    E: Display + 'static,
    F: FnMut(&T) -> std::result::Result<U, E> + Send + 'static,
{
    type In = T;
    type Out = U;
    fn process_batch(
        &mut self,
        batch: Vec<T>,
        ctx: &mut TaskContext,
        out: &mut Output<U>,
    ) -> Result<()> {
        for record in batch {
            match (self.f)(&record) {
                Ok(v) => out.emit(v),
                Err(e) => ctx.reject_record(&record, e.to_string())?,
            }
        }
        Ok(())
    }
}

/// A per-record function with full access to the output, side outputs included.
pub(crate) struct Process<T, U, F> {
    pub(crate) f: F,
    pub(crate) _t: PhantomData<fn(T) -> U>,
}

impl<T: Data, U: Data, F: FnMut(T, &mut Output<U>) + Send + 'static> Operator for Process<T, U, F> {
    type In = T;
    type Out = U;
    fn process_batch(
        &mut self,
        batch: Vec<T>,
        _: &mut TaskContext,
        out: &mut Output<U>,
    ) -> Result<()> {
        for record in batch {
            (self.f)(record, out);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::test_support::run_operator;

    fn p<T>() -> PhantomData<T> {
        PhantomData
    }

    #[test]
    fn filter_keeps_matching_in_order() {
        let op = Filter {
            f: |x: &i32| x % 2 == 0,
            _t: p(),
        };
        assert_eq!(
            run_operator(op, vec![vec![1, 2, 3, 4], vec![6, 7]]).unwrap(),
            vec![2, 4, 6]
        );
    }

    #[test]
    fn map_and_flat_map() {
        let op = Map {
            f: |x: i32| x * 10,
            _t: p(),
        };
        assert_eq!(run_operator(op, vec![vec![1, 2]]).unwrap(), vec![10, 20]);
        let op = FlatMap {
            f: |x: u32| 0..x,
            _t: p(),
        };
        // 9 records out of one batch: cut into batches of 4 by the output, none lost.
        assert_eq!(
            run_operator(op, vec![vec![2, 3, 4]]).unwrap(),
            vec![0, 1, 0, 1, 2, 0, 1, 2, 3]
        );
    }

    #[test]
    fn try_map_fails_under_policy_fail_naming_the_operator() {
        let op = TryMap {
            f: |x: &i32| {
                if *x < 0 {
                    Err(format!("negative: {x}"))
                } else {
                    Ok(*x)
                }
            },
            _t: p(),
        };
        let err = run_operator(op, vec![vec![1, -5]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "operator `op` failed on record -5: negative: -5"
        );
    }
}
