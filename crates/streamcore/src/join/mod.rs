//! Joins of two keyed streams: window joins (pairs of records with equal keys in the same
//! tumbling, sliding or session window) and interval joins (`a.ts ∈ [b.ts + lower,
//! b.ts + upper]`, with state dropped as the watermark passes).
//!
//! Two inputs reach one operator as one stream of [`Either`]: each side is wrapped, both are
//! hash-partitioned by their key into the same stage, and the exchange's watermark is the
//! minimum over both inputs — so a join is an ordinary keyed operator, and a window join *is* a
//! window (with a function that pairs up the window's two sides). Broadcast state works the
//! same way, with the broadcast side sent to every instance.

mod broadcast;
mod interval;
mod regular;
mod temporal;

pub(crate) use broadcast::BroadcastOperator;
pub use broadcast::BroadcastProcessFunction;
pub(crate) use interval::IntervalJoinOperator;
pub use interval::{JoinIndexing, SCAN_PER_INSERT, SCAN_SLACK};
pub(crate) use regular::RegularJoin;
pub use regular::{
    Change, JoinExpiry, JoinState, JoinType, NoExpiry, UniqueSides, EXPIRY_TIMER_GRANULARITY_MS,
};

pub(crate) use temporal::TemporalJoinOperator;

impl<T: EventTime> EventTime for Change<T> {
    #[inline]
    fn event_time(&self) -> Timestamp {
        self.row().event_time()
    }
}

use crate::event_time::EventTime;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// A record of the left (`A`) or the right (`B`) input of a join.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Either<A, B> {
    /// From the first input.
    Left(A),
    /// From the second input.
    Right(B),
}

/// Which inputs of a join send their late records to its late output
/// (`KeyedConnectedStreams::late_output_of`); the others' are dropped, counted as late.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LateFrom {
    /// Both inputs.
    #[default]
    Both,
    /// The left (first) input only.
    Left,
    /// The right (second) input only.
    Right,
}

impl LateFrom {
    /// Whether a late record of the left input (`true`) or the right one goes to the output.
    #[inline]
    pub fn takes<A, B>(self, record: &Either<A, B>) -> bool {
        matches!(
            (self, record),
            (LateFrom::Both, _)
                | (LateFrom::Left, Either::Left(_))
                | (LateFrom::Right, Either::Right(_))
        )
    }
}

/// A join's late output: its tag and the inputs whose late records go there.
pub(crate) type LateOutput<A, B> = Option<(crate::operator::OutputTag<Either<A, B>>, LateFrom)>;

impl<A: EventTime, B: EventTime> EventTime for Either<A, B> {
    #[inline]
    fn event_time(&self) -> Timestamp {
        match self {
            Either::Left(a) => a.event_time(),
            Either::Right(b) => b.event_time(),
        }
    }
}
