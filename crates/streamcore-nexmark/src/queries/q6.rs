//! q6 — Average selling price by seller: for each winning bid, the average price of it and
//! the seller's 10 previous winning bids (by bid time). An updating query.
//!
//! ```sql
//! SELECT Q.seller, AVG(Q.price) OVER
//!     (PARTITION BY Q.seller ORDER BY Q.`dateTime` ROWS BETWEEN 10 PRECEDING AND CURRENT ROW)
//! FROM (
//!     SELECT *, ROW_NUMBER() OVER (PARTITION BY A.id, A.seller ORDER BY B.price DESC) AS rownum
//!     FROM (SELECT A.id, A.seller, B.price, B.`dateTime`
//!         FROM auction AS A, bid AS B
//!         WHERE A.id = B.auction and B.`dateTime` between A.`dateTime` and A.expires)
//!     WHERE rownum <= 1
//! ) AS Q;
//! ```
//!
//! The stored Flink version cannot run this (an OVER window on a retracting input,
//! FLINK-19059), so there is no Flink result to match; the semantics implemented is the
//! relational one: the result table has one row per current winning bid `r` of a seller,
//! `(seller, AVG(price))` over `r` and the (up to) 10 winning bids of the same seller before
//! it in `dateTime` order — an 11-row frame (reference/pitfalls.md #23), `AVG` of `BIGINT` truncated.
//!
//! A composition of the library's changelog operators around one keyed function for the
//! window, which the library has no operator for:
//!
//! ```text
//! winning_bids(events)                                 // +I new winner, -D the one replaced
//!     .map(|c| c.map(|(a, b)| (seller, (b.dateTime, a.id), price)))
//!     .key_by(seller)
//!     .process(FrameMembers)                           // which frames each winner is in
//!     .key_by(frame)
//!     .group_aggregate_changes(AvgOf(price))           // the average of each frame
//!     .map(|c| c.map(|(frame, avg)| Q6Row { seller, avg }))
//! ```
//!
//! An OVER window with a `ROWS` frame is a join of each row with the rows before it, then a
//! group aggregate per row: the frame of a winner `r` (a *frame end*) holds `r` and the 10
//! winners of the same seller before it by `(dateTime, auction id)`. `FrameMembers` keeps
//! each seller's winners and emits the changes of that membership relation, rows `(frame end,
//! member's price)`: a winner that arrives joins its own new frame with the 10 before it, and
//! joins the frames of the (up to) 10 winners after it, each of which drops its oldest member;
//! a winner withdrawn does the reverse. `group_aggregate_changes(AvgOf)` keyed by frame end
//! turns that into each frame's row, `-U`/`+U` as its average changes and `-D` when its end is
//! withdrawn (its last member leaves); `AvgOf` of an `i64` truncates.
//!
//! What is left by hand is the window's membership (the frame each winner belongs to), not the
//! rows' updates: the group aggregate pairs the updates. The price: a new frame's 11 members
//! arrive one by one, so the aggregate emits an update per member rather than one row.
//!
//! Deviations: the top-1's tie on price (arbitrary in Flink) keeps the earliest bid, then the
//! first-arrived; `ORDER BY dateTime` ties are broken by auction id. The seller column is a
//! `BIGINT` (the sink declares `VARCHAR`; the text is the same). The seller's winners are kept
//! forever (as an OVER window over an updating input must), and so is the sum and count of
//! each current winner's frame.

use super::winning::{winning_bids, SlimAuction, SlimBid};
use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::NexmarkEvent;
use serde::Serialize;
use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Unbounded};
use streamcore::changelog::{AvgOf, Change};
use streamcore::join::Either;
use streamcore::state::{KeyedContext, KeyedProcessFunction};
use streamcore::{Job, Output, Stream};

/// Rows in the OVER frame: the current one and 10 preceding.
pub const FRAME: usize = 11;

/// A row of `nexmark_q6`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
pub struct Q6Row {
    /// Seller id.
    pub seller: i64,
    /// Average of the frame's winning prices, truncated.
    pub avg_price: i64,
}

impl QueryRow for Q6Row {
    const COLUMNS: &'static [&'static str] = &["seller", "avg_price"];
}

/// A winner's place in its seller's order: `(bid dateTime, auction id)`.
type Place = (i64, i64);

/// A frame, by its seller and the place of its end.
type Frame = (i64, Place);

/// A winning bid as the window sees it: `(seller, place, price)`.
type Winner = (i64, Place, i64);

/// The OVER window's membership, per seller (the key): keeps the seller's current winners by
/// place and emits, for each winner added or withdrawn, the changes of the relation `(frame,
/// member's price)` — which frames gain or lose which member.
#[derive(Clone)]
struct FrameMembers;

impl FrameMembers {
    /// The prices of the frame ending at `end`, newest first.
    fn frame(winners: &BTreeMap<Place, i64>, end: Place) -> impl Iterator<Item = i64> + '_ {
        winners.range(..=end).rev().take(FRAME).map(|(_, p)| *p)
    }

    /// The price of the winner one place before the frame ending at `end`.
    fn before_frame(winners: &BTreeMap<Place, i64>, end: Place) -> Option<i64> {
        winners.range(..=end).rev().nth(FRAME).map(|(_, p)| *p)
    }

    /// The ends of the frames after `at` that contain `at`.
    fn later_ends(winners: &BTreeMap<Place, i64>, at: Place) -> Vec<Place> {
        winners
            .range((Excluded(at), Unbounded))
            .take(FRAME - 1)
            .map(|(k, _)| *k)
            .collect()
    }
}

impl KeyedProcessFunction<i64, Change<Winner>> for FrameMembers {
    /// The seller's current winners: place → price.
    type State = BTreeMap<Place, i64>;
    type Out = Change<(Frame, i64)>;

    fn process(
        &mut self,
        change: Change<Winner>,
        ctx: &mut KeyedContext<'_, i64, Self::State>,
        out: &mut Output<Self::Out>,
    ) {
        let add = change.is_addition();
        let (seller, at, price) = change.into_row();
        let winners = ctx.state();
        if add {
            winners.insert(at, price);
            for member in Self::frame(winners, at) {
                out.emit(Change::Insert(((seller, at), member)));
            }
            for end in Self::later_ends(winners, at) {
                out.emit(Change::Insert(((seller, end), price)));
                if let Some(oldest) = Self::before_frame(winners, end) {
                    out.emit(Change::Delete(((seller, end), oldest)));
                }
            }
        } else if winners.contains_key(&at) {
            for end in Self::later_ends(winners, at) {
                if let Some(oldest) = Self::before_frame(winners, end) {
                    out.emit(Change::Insert(((seller, end), oldest)));
                }
                out.emit(Change::Delete(((seller, end), price)));
            }
            for member in Self::frame(winners, at) {
                out.emit(Change::Delete(((seller, at), member)));
            }
            winners.remove(&at);
            if winners.is_empty() {
                ctx.clear_state();
            }
        }
    }
}

/// Builds q6 into `job`.
pub fn q6(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Change<Q6Row>>, ConfigError> {
    let events = nexmark_source::<NexmarkEvent>(job, "events", config)?.flat_map(|e| match e {
        NexmarkEvent::Auction(a) => Some(Either::Left(SlimAuction(
            a.id,
            a.seller,
            a.date_time,
            a.expires,
        ))),
        NexmarkEvent::Bid(b) => Some(Either::Right(SlimBid(b.auction, b.price, b.date_time))),
        NexmarkEvent::Person(_) => None,
    });
    Ok(winning_bids(events)
        .map(|c| c.map(|(a, b)| (a.1, (b.2 .0, a.0), b.1)))
        .key_by(|c: &Change<Winner>| c.row().0)
        .process(FrameMembers)
        .key_by(|c: &Change<(Frame, i64)>| c.row().0)
        .group_aggregate_changes(AvgOf::new(|m: &(Frame, i64)| m.1))
        .map(|c| {
            c.map(|((seller, _), avg)| Q6Row {
                seller,
                // A frame with a row has its end as a member: the average is never NULL.
                avg_price: avg.unwrap_or_default(),
            })
        }))
}
