//! Broadcast state: a low-volume stream (rules, configuration) delivered to every parallel
//! instance of an operator, which keeps it as state readable while processing the main stream.

use super::Either;
use crate::context::TaskContext;
use crate::data::Data;
use crate::error::Result;
use crate::operator::{Operator, Output};
use std::marker::PhantomData;

/// User logic over a main stream of `T` and a broadcast stream of `R`.
///
/// ```
/// use streamcore::{Job, JobConfig, Output};
/// use streamcore::join::BroadcastProcessFunction;
///
/// /// Flags amounts above the latest threshold rule.
/// #[derive(Clone)]
/// struct Threshold;
/// impl BroadcastProcessFunction<i64, i64> for Threshold {
///     type State = Option<i64>;
///     type Out = i64;
///     fn process(&mut self, amount: i64, limit: &Option<i64>, out: &mut Output<i64>) {
///         if limit.is_some_and(|l| amount > l) { out.emit(amount) }
///     }
///     fn process_broadcast(&mut self, limit: i64, state: &mut Option<i64>, _out: &mut Output<i64>) {
///         *state = Some(limit);
///     }
/// }
/// # let _ = Threshold;
/// ```
pub trait BroadcastProcessFunction<T, R>: Clone + Send + 'static {
    /// The broadcast state: the same in every parallel instance (each sees every `R`);
    /// serializable, as it goes into checkpoints.
    type State: Default + crate::data::StateData;
    /// The output record type.
    type Out: Data;
    /// Called for each record of the main stream, with read access to the broadcast state.
    fn process(&mut self, record: T, state: &Self::State, out: &mut Output<Self::Out>);
    /// Called for each broadcast record: update the state.
    fn process_broadcast(
        &mut self,
        record: R,
        state: &mut Self::State,
        out: &mut Output<Self::Out>,
    );
}

pub(crate) struct BroadcastOperator<T, R, P: BroadcastProcessFunction<T, R>> {
    pub(crate) func: P,
    pub(crate) state: P::State,
    pub(crate) _t: PhantomData<fn(T, R)>,
}

impl<T, R, P: BroadcastProcessFunction<T, R>> Clone for BroadcastOperator<T, R, P> {
    fn clone(&self) -> Self {
        BroadcastOperator {
            func: self.func.clone(),
            state: P::State::default(),
            _t: PhantomData,
        }
    }
}

impl<T: Data, R: Data, P: BroadcastProcessFunction<T, R>> Operator for BroadcastOperator<T, R, P> {
    fn snapshot_state(
        &mut self,
        _: &mut TaskContext,
        state: &mut crate::checkpoint::StateSnapshot,
    ) -> Result<()> {
        state.put_operator(&self.state)
    }

    fn restore_state(
        &mut self,
        ctx: &mut TaskContext,
        state: &crate::checkpoint::StateRestore,
    ) -> Result<()> {
        // Every old instance held the same state: any copy will do (as in Flink, instance i
        // takes old instance i's, wrapping around when the parallelism grew).
        let mut copies = state.operator_states::<P::State>()?;
        if !copies.is_empty() {
            let i = ctx.info().subtask % copies.len();
            self.state = copies.swap_remove(i);
        }
        Ok(())
    }

    type In = Either<T, R>;
    type Out = P::Out;
    fn process_batch(
        &mut self,
        batch: Vec<Either<T, R>>,
        _: &mut TaskContext,
        out: &mut Output<P::Out>,
    ) -> Result<()> {
        for record in batch {
            match record {
                Either::Left(t) => self.func.process(t, &self.state, out),
                Either::Right(r) => self.func.process_broadcast(r, &mut self.state, out),
            }
        }
        Ok(())
    }
}
