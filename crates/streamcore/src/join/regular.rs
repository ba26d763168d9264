//! Regular (unbounded) joins: inner, left, right and full outer joins per key, on append-only
//! inputs, emitting a changelog: an outer-join row padded with `None` is retracted when its
//! first partner arrives, so a downstream aggregate over the changelog stays correct.
//! State lives until the key is untouched for the state TTL (`state_ttl`), if one is set.

use super::Either;
use crate::data::{Data, Key};
use crate::operator::Output;
use crate::state::{KeyedContext, KeyedProcessFunction};
use std::marker::PhantomData;

pub use crate::changelog::Change;

/// Which unmatched rows a join keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinType {
    /// Only matched pairs.
    Inner,
    /// Also left rows without a match (padded with `None` until one arrives).
    Left,
    /// Also right rows without a match.
    Right,
    /// Both.
    Full,
}

impl JoinType {
    fn keeps_left(self) -> bool {
        matches!(self, JoinType::Left | JoinType::Full)
    }
    fn keeps_right(self) -> bool {
        matches!(self, JoinType::Right | JoinType::Full)
    }
}

/// Both sides' rows of one key.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct JoinState<A, B> {
    left: Vec<A>,
    right: Vec<B>,
}

impl<A, B> Default for JoinState<A, B> {
    fn default() -> Self {
        JoinState {
            left: Vec::new(),
            right: Vec::new(),
        }
    }
}

/// The regular join as a keyed process function over `Either<A, B>`.
pub(crate) struct RegularJoin<A, B, O, F> {
    pub(crate) kind: JoinType,
    pub(crate) join: F,
    pub(crate) _t: PhantomData<fn(A, B) -> O>,
}

impl<A, B, O, F: Clone> Clone for RegularJoin<A, B, O, F> {
    fn clone(&self) -> Self {
        RegularJoin {
            kind: self.kind,
            join: self.join.clone(),
            _t: PhantomData,
        }
    }
}

impl<A, B, O, K, F> KeyedProcessFunction<K, Either<A, B>> for RegularJoin<A, B, O, F>
where
    A: Data + crate::data::StateData,
    B: Data + crate::data::StateData,
    O: Data,
    K: Key,
    F: FnMut(Option<&A>, Option<&B>) -> O + Clone + Send + 'static,
{
    type State = JoinState<A, B>;
    type Out = Change<O>;

    fn process(
        &mut self,
        record: Either<A, B>,
        ctx: &mut KeyedContext<'_, K, JoinState<A, B>>,
        out: &mut Output<Change<O>>,
    ) {
        let (kind, join) = (self.kind, &mut self.join);
        let state = ctx.state();
        match record {
            Either::Left(a) => {
                if state.right.is_empty() {
                    if kind.keeps_left() {
                        out.emit(Change::Insert(join(Some(&a), None)));
                    }
                } else {
                    for b in &state.right {
                        out.emit(Change::Insert(join(Some(&a), Some(b))));
                    }
                }
                if state.left.is_empty() && kind.keeps_right() {
                    // The right rows were emitted unmatched: withdraw those rows.
                    for b in &state.right {
                        out.emit(Change::Delete(join(None, Some(b))));
                    }
                }
                state.left.push(a);
            }
            Either::Right(b) => {
                if state.left.is_empty() {
                    if kind.keeps_right() {
                        out.emit(Change::Insert(join(None, Some(&b))));
                    }
                } else {
                    for a in &state.left {
                        out.emit(Change::Insert(join(Some(a), Some(&b))));
                    }
                }
                if state.right.is_empty() && kind.keeps_left() {
                    for a in &state.left {
                        out.emit(Change::Delete(join(Some(a), None)));
                    }
                }
                state.right.push(b);
            }
        }
    }
}
