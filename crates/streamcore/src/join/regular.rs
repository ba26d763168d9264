//! Regular (unbounded) joins: inner, left, right and full outer joins per key, on append-only
//! inputs, emitting a changelog: an outer-join row padded with `None` is retracted when its
//! first partner arrives, so a downstream aggregate over the changelog stays correct.
//! State lives until the key is untouched for the state TTL (`state_ttl`), if one is set.
//! An inner join told that a side has one row per key ([`UniqueSides`]) keeps no row of the
//! other side once it met that row.
//!
//! An inner join whose condition bounds one side's event time by the other side's row
//! (`bid.t <= auction.expires`) can also drop rows by the watermark ([`JoinExpiry`]): a row
//! that no row of the other side at or after the watermark can match goes as the watermark
//! passes its bound, and a row behind the watermark is late — it could have matched a row
//! already dropped — and is dropped and counted (`late_records`), or sent to the join's late
//! output (`KeyedConnectedStreams::late_output`, counted in `late_redirected` too), as an
//! interval join's.

use super::{Either, LateOutput};
use crate::data::{Data, Key};
use crate::operator::Output;
use crate::state::{KeyedContext, KeyedProcessFunction, TimeDomain};
use crate::time::Timestamp;
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

/// When the stored rows of an inner join can match no later row: the bounds a join
/// condition puts on each side's event time by the other side's row.
///
/// `left(a)` is the latest event time of a right row `a` can still match (`None`: any — `a`
/// is kept); a right row at or after the watermark matches `a` only if the watermark has not
/// passed that time, so `a` is dropped once it has (within
/// [`EXPIRY_TIMER_GRANULARITY_MS`]: the join function must still test the condition the
/// bounds come from). `right(b)` likewise. A row behind the
/// watermark could have matched a row already dropped: with bounds on the other side, it is
/// late (`left_late`, `right_late`).
///
/// ```
/// use streamcore::join::JoinExpiry;
/// use streamcore::Timestamp;
/// // Bids (`(auction, t)`, right) join an auction (`(id, expires)`, left) until it expires.
/// #[derive(Clone)]
/// struct UntilExpiry;
/// impl JoinExpiry<(u32, i64), (u32, i64)> for UntilExpiry {
///     fn left(&self, auction: &(u32, i64)) -> Option<Timestamp> {
///         Some(Timestamp(auction.1))
///     }
///     fn right(&self, _bid: &(u32, i64)) -> Option<Timestamp> {
///         None
///     }
///     fn right_late(&self, bid: &(u32, i64), watermark: Timestamp) -> bool {
///         bid.1 < watermark.0
///     }
/// }
/// assert_eq!(UntilExpiry.left(&(1, 500)), Some(Timestamp(500)));
/// ```
pub trait JoinExpiry<A, B>: Clone + Send + 'static {
    /// The latest event time of a right row that left row `a` can match, if bounded.
    fn left(&self, a: &A) -> Option<Timestamp>;
    /// The latest event time of a left row that right row `b` can match, if bounded.
    fn right(&self, b: &B) -> Option<Timestamp>;
    /// Whether left row `a`, arriving at `watermark`, is late (right rows it could match may
    /// be gone). Default: never.
    fn left_late(&self, _a: &A, _watermark: Timestamp) -> bool {
        false
    }
    /// Whether right row `b`, arriving at `watermark`, is late. Default: never.
    fn right_late(&self, _b: &B, _watermark: Timestamp) -> bool {
        false
    }
}

/// No bounds: every row is kept (a regular join's default).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoExpiry;

impl<A, B> JoinExpiry<A, B> for NoExpiry {
    fn left(&self, _a: &A) -> Option<Timestamp> {
        None
    }
    fn right(&self, _b: &B) -> Option<Timestamp> {
        None
    }
}

/// Which inputs of a join have at most one row per key
/// ([`crate::api::KeyedConnectedStreams::unique_keys`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UniqueSides {
    /// No two left rows share a key.
    pub left: bool,
    /// No two right rows share a key.
    pub right: bool,
}

/// The regular join as a keyed process function over `Either<A, B>`.
pub(crate) struct RegularJoin<A, B, O, F, X = NoExpiry> {
    pub(crate) kind: JoinType,
    pub(crate) join: F,
    /// Bounds dropping rows by the watermark (inner joins only).
    pub(crate) expiry: X,
    /// Where late rows go (else they are dropped); counted either way.
    pub(crate) late: LateOutput<A, B>,
    /// The sides with one row per key (inner joins only): a row of the other side that met
    /// it is not kept.
    pub(crate) unique: UniqueSides,
    pub(crate) _t: PhantomData<fn(A, B) -> O>,
}

impl<A, B, O, F: Clone, X: Clone> Clone for RegularJoin<A, B, O, F, X> {
    fn clone(&self) -> Self {
        RegularJoin {
            kind: self.kind,
            join: self.join.clone(),
            expiry: self.expiry.clone(),
            late: self.late.clone(),
            unique: self.unique,
            _t: PhantomData,
        }
    }
}

/// Expiry timers of a key are rounded up to a multiple of this (ms): one timer per key and
/// second drops every row of the key whose bound has passed, instead of one timer per row.
/// A row may so stay up to this long after its bound; it matches nothing more meanwhile —
/// the join's condition, which the bounds come from, rejects every pair it could make.
pub const EXPIRY_TIMER_GRANULARITY_MS: i64 = 1000;

/// The time of the timer that drops a row bounded by `until`: just past it, rounded up to
/// [`EXPIRY_TIMER_GRANULARITY_MS`].
fn expiry_timer(until: Timestamp) -> i64 {
    let g = EXPIRY_TIMER_GRANULARITY_MS;
    // Past `until` even at the end of time (the last watermark is `i64::MAX`).
    until
        .0
        .checked_add(g)
        .map_or(i64::MAX, |t| t.div_euclid(g) * g)
}

/// Stores `row`, bounded by `until`, among `rows` — kept in the order of their bounds, so the
/// rows the watermark passed are a prefix — unless no row at or after the watermark can match
/// it; registers the timer that drops it, unless the last row's timer is the same one.
fn store<T>(
    rows: &mut Vec<T>,
    row: T,
    until: Option<Timestamp>,
    until_of: impl Fn(&T) -> Option<Timestamp>,
    watermark: Timestamp,
) -> Option<i64> {
    let Some(until) = until else {
        rows.push(row);
        return None;
    };
    if until < watermark {
        return None;
    }
    let timer = expiry_timer(until);
    match rows.last().and_then(&until_of) {
        // In order (the common case: rows bounded by their own time): appended, and the
        // last row's timer, if the same, is still pending (it drops that row too).
        Some(last) if last <= until => {
            rows.push(row);
            (expiry_timer(last) != timer).then_some(timer)
        }
        Some(_) => {
            let at = rows.partition_point(|r| until_of(r).is_some_and(|t| t <= until));
            rows.insert(at, row);
            Some(timer)
        }
        None => {
            rows.push(row);
            Some(timer)
        }
    }
}

/// After `row` met the `others` of its key: with its side unique (`sides.0`), the others met
/// their one partner and go; with the others' side unique (`sides.1`) and one of them here,
/// `row` met its one partner and is not kept. Else `keep` stores it among `mine` (returning
/// the timer to set, as [`store`]).
fn keep_after_meeting<T, U>(
    mine: &mut Vec<T>,
    others: &mut Vec<U>,
    row: T,
    (mine_unique, others_unique): (bool, bool),
    keep: impl FnOnce(&mut Vec<T>, T) -> Option<i64>,
) -> Option<i64> {
    let met = !others.is_empty();
    if mine_unique {
        others.clear();
    }
    if others_unique && met {
        None
    } else {
        keep(mine, row)
    }
}

/// Drops the prefix of `rows` (ordered by their bounds) that the watermark has passed.
fn drop_passed<T>(
    rows: &mut Vec<T>,
    until_of: impl Fn(&T) -> Option<Timestamp>,
    watermark: Timestamp,
) {
    let passed = rows
        .iter()
        .take_while(|r| until_of(r).is_some_and(|t| t < watermark))
        .count();
    rows.drain(..passed);
}

impl<A, B, O, K, F, X> KeyedProcessFunction<K, Either<A, B>> for RegularJoin<A, B, O, F, X>
where
    A: Data + crate::data::StateData,
    B: Data + crate::data::StateData,
    O: Data,
    K: Key,
    F: FnMut(Option<&A>, Option<&B>) -> O + Clone + Send + 'static,
    X: JoinExpiry<A, B>,
{
    type State = JoinState<A, B>;
    type Out = Change<O>;

    fn process(
        &mut self,
        record: Either<A, B>,
        ctx: &mut KeyedContext<'_, K, JoinState<A, B>>,
        out: &mut Output<Change<O>>,
    ) {
        let (kind, join, expiry) = (self.kind, &mut self.join, &self.expiry);
        // A side with one row per key: once that row is here, no later row of the other side
        // needs keeping, nor any that waited for it (an inner join's rows are final).
        let inner = kind == JoinType::Inner;
        let (left_unique, right_unique) = (inner && self.unique.left, inner && self.unique.right);
        // Bounded rows (inner joins only): a late row is dropped, a row no later row can
        // match joins what is stored but is not stored itself.
        let watermark = ctx.watermark();
        let late = match &record {
            Either::Left(a) => expiry.left_late(a, watermark),
            Either::Right(b) => expiry.right_late(b, watermark),
        };
        if late {
            match &self.late {
                Some((tag, from)) if from.takes(&record) => {
                    ctx.count_late_redirected();
                    out.side(tag, record);
                }
                _ => ctx.count_late(),
            }
            // A key first met by a late row keeps no empty state behind.
            let state = ctx.state();
            if state.left.is_empty() && state.right.is_empty() {
                ctx.clear_state();
            }
            return;
        }
        let state = ctx.state();
        let timer = match record {
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
                let until = expiry.left(&a);
                let sides = (left_unique, right_unique);
                keep_after_meeting(&mut state.left, &mut state.right, a, sides, |rows, a| {
                    store(rows, a, until, |r| expiry.left(r), watermark)
                })
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
                let until = expiry.right(&b);
                let sides = (right_unique, left_unique);
                keep_after_meeting(&mut state.right, &mut state.left, b, sides, |rows, b| {
                    store(rows, b, until, |r| expiry.right(r), watermark)
                })
            }
        };
        if state.left.is_empty() && state.right.is_empty() {
            ctx.clear_state();
        }
        if let Some(t) = timer {
            ctx.register_event_time_timer(Timestamp(t));
        }
    }

    /// Drops the rows the watermark has passed the bounds of.
    fn on_timer(
        &mut self,
        _time: Timestamp,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_, K, JoinState<A, B>>,
        _out: &mut Output<Change<O>>,
    ) {
        let watermark = ctx.watermark();
        let expiry = &self.expiry;
        let state = ctx.state();
        drop_passed(&mut state.left, |a| expiry.left(a), watermark);
        drop_passed(&mut state.right, |b| expiry.right(b), watermark);
        if state.left.is_empty() && state.right.is_empty() {
            ctx.clear_state();
        }
    }
}
