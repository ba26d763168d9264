//! Rolling keyed operators: `reduce` and `aggregate` on a keyed stream. Each input record
//! updates its key's state and emits the updated result (Flink's rolling aggregations).

use super::{Operator, Output};
use crate::checkpoint::{StateRestore, StateSnapshot};
use crate::context::TaskContext;
use crate::data::{Data, StateData, StateKey};
use crate::error::Result;
use crate::state::KeyedMap;
use std::marker::PhantomData;

/// Rolling reduce: the state per key is the reduction of all its records so far.
pub(crate) struct KeyedReduce<T, K, KF, R> {
    pub(crate) key_fn: KF,
    pub(crate) reduce: R,
    pub(crate) state: Option<KeyedMap<K, Option<T>>>,
}

impl<T, K, KF, R> Operator for KeyedReduce<T, K, KF, R>
where
    T: Data + StateData,
    K: StateKey,
    KF: Fn(&T) -> K + Send + 'static,
    R: FnMut(T, T) -> T + Send + 'static,
{
    type In = T;
    type Out = T;

    fn open(&mut self, ctx: &mut TaskContext) -> Result<()> {
        self.state = Some(KeyedMap::open_incremental(ctx)?);
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: Vec<T>,
        _: &mut TaskContext,
        out: &mut Output<T>,
    ) -> Result<()> {
        let state = self.state.as_mut().expect("opened");
        for record in batch {
            let slot = state.entry_or_insert_with((self.key_fn)(&record), |_| None)?;
            let reduced = match slot.take() {
                Some(acc) => (self.reduce)(acc, record),
                None => record,
            };
            out.emit(reduced.clone());
            *slot = Some(reduced);
        }
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut TaskContext, state: &mut StateSnapshot) -> Result<()> {
        self.state.as_mut().expect("opened").snapshot(ctx, state)
    }

    fn restore_state(&mut self, _: &mut TaskContext, state: &StateRestore) -> Result<()> {
        self.state.as_mut().expect("opened").restore(state)
    }
}

impl<T, K, KF: Clone, R: Clone> Clone for KeyedReduce<T, K, KF, R> {
    fn clone(&self) -> Self {
        KeyedReduce {
            key_fn: self.key_fn.clone(),
            reduce: self.reduce.clone(),
            state: None,
        }
    }
}

/// Rolling aggregate: an accumulator per key, folded record by record; emits `result(key, acc)`.
pub(crate) struct KeyedAggregate<T, K, A, O, KF, I, F, E> {
    pub(crate) key_fn: KF,
    pub(crate) init: I,
    pub(crate) fold: F,
    pub(crate) result: E,
    pub(crate) state: Option<KeyedMap<K, A>>,
    pub(crate) _t: PhantomData<fn(T) -> O>,
}

impl<T, K, A, O, KF, I, F, E> Operator for KeyedAggregate<T, K, A, O, KF, I, F, E>
where
    T: Data,
    K: StateKey,
    A: StateData,
    O: Data,
    KF: Fn(&T) -> K + Send + 'static,
    I: Fn(&K) -> A + Send + 'static,
    F: FnMut(&mut A, T) + Send + 'static,
    E: FnMut(&K, &A) -> O + Send + 'static,
{
    type In = T;
    type Out = O;

    fn open(&mut self, ctx: &mut TaskContext) -> Result<()> {
        self.state = Some(KeyedMap::open_incremental(ctx)?);
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: Vec<T>,
        _: &mut TaskContext,
        out: &mut Output<O>,
    ) -> Result<()> {
        let state = self.state.as_mut().expect("opened");
        for record in batch {
            let key = (self.key_fn)(&record);
            let result = {
                let acc = state.entry_or_insert_with(key.clone(), &self.init)?;
                (self.fold)(acc, record);
                (self.result)(&key, acc)
            };
            out.emit(result);
        }
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut TaskContext, state: &mut StateSnapshot) -> Result<()> {
        self.state.as_mut().expect("opened").snapshot(ctx, state)
    }

    fn restore_state(&mut self, _: &mut TaskContext, state: &StateRestore) -> Result<()> {
        self.state.as_mut().expect("opened").restore(state)
    }
}

impl<T, K, A, O, KF: Clone, I: Clone, F: Clone, E: Clone> Clone
    for KeyedAggregate<T, K, A, O, KF, I, F, E>
{
    fn clone(&self) -> Self {
        KeyedAggregate {
            key_fn: self.key_fn.clone(),
            init: self.init.clone(),
            fold: self.fold.clone(),
            result: self.result.clone(),
            state: None,
            _t: PhantomData,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::test_support::run_operator;

    #[test]
    fn rolling_reduce_emits_running_totals_per_key() {
        let op = KeyedReduce {
            key_fn: |r: &(char, i32)| r.0,
            reduce: |a: (char, i32), b: (char, i32)| (a.0, a.1 + b.1),
            state: None,
        };
        let out = run_operator(
            op,
            vec![vec![('a', 1), ('b', 10), ('a', 2)], vec![('a', 3)]],
        )
        .unwrap();
        assert_eq!(out, vec![('a', 1), ('b', 10), ('a', 3), ('a', 6)]);
    }

    #[test]
    fn rolling_aggregate_counts_and_sums() {
        let op = KeyedAggregate {
            key_fn: |r: &(u8, i64)| r.0,
            init: |_: &u8| (0u64, 0i64),
            fold: |acc: &mut (u64, i64), r: (u8, i64)| {
                acc.0 += 1;
                acc.1 += r.1;
            },
            result: |k: &u8, acc: &(u64, i64)| (*k, acc.0, acc.1),
            state: None,
            _t: PhantomData,
        };
        let out = run_operator(op, vec![vec![(1, 5), (2, 7), (1, -1)]]).unwrap();
        assert_eq!(out, vec![(1, 1, 5), (2, 1, 7), (1, 2, 4)]);
    }
}
