//! q15 — Bidding statistics report: per day, bid counts and distinct bidders and auctions,
//! in total and by price range. An updating query.
//!
//! ```sql
//! SELECT DATE_FORMAT(`dateTime`, 'yyyy-MM-dd') as `day`,
//!      count(*) AS total_bids,
//!      count(*) filter (where price < 10000) AS rank1_bids,
//!      count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
//!      count(*) filter (where price >= 1000000) AS rank3_bids,
//!      count(distinct bidder) AS total_bidders,
//!      count(distinct bidder) filter (where price < 10000) AS rank1_bidders,
//!      ... (rank2_bidders, rank3_bidders, total_auctions, rank1..3_auctions likewise)
//! FROM bid GROUP BY DATE_FORMAT(`dateTime`, 'yyyy-MM-dd');
//! ```
//!
//! A composition of the library's changelog operators over `NexmarkSource<Bid>`:
//!
//! ```text
//! bids.map(|b| (day, bidder, auction, price))
//!     .key_by(day)
//!     .group_aggregate(bid_counts())   // COUNT(*) and COUNT(DISTINCT ..), each with FILTERs
//!     .map(|c| c.map(Q15Row::of))
//! ```
//!
//! `bid_counts` (shared with q16) is a tuple of the library's retracting aggregates:
//! `CountRows` once over all bids and once per price range with `.filter(..)` (SQL's `FILTER
//! (WHERE ..)`), and `CountDistinctOf(bidder)`/`CountDistinctOf(auction)` over all bids and
//! per price range at once, one map per column (`.in_slots(..)`: a bit per filter, as Flink
//! shares a distinct column's state between its filters); the distinct counts are exact. `group_aggregate` emits the day's row as it
//! changes: `+I` for the day's first bid, then `-U`/`+U`. No deviation; Flink's split-distinct
//! optimisation changes the plan and the number of updates, not the final table. There is one
//! group per day, so the keyed stage runs on one instance whatever the parallelism (as in
//! Flink without split-distinct).

use super::q17::{price_rank, DayText, MS_PER_DAY};
use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use compact_str::CompactString;
use serde::Serialize;
use streamcore::changelog::{Change, CountDistinctOf, CountRows, RetractAggregate, DISTINCT_SLOTS};
use streamcore::{Job, Stream};

/// A row of `nexmark_q15`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Q15Row {
    /// `yyyy-MM-dd`.
    pub day: CompactString,
    /// Bids.
    pub total_bids: i64,
    /// Bids with price < 10,000.
    pub rank1_bids: i64,
    /// Bids with 10,000 <= price < 1,000,000.
    pub rank2_bids: i64,
    /// Bids with price >= 1,000,000.
    pub rank3_bids: i64,
    /// Distinct bidders.
    pub total_bidders: i64,
    /// Distinct bidders of rank-1 bids.
    pub rank1_bidders: i64,
    /// Distinct bidders of rank-2 bids.
    pub rank2_bidders: i64,
    /// Distinct bidders of rank-3 bids.
    pub rank3_bidders: i64,
    /// Distinct auctions.
    pub total_auctions: i64,
    /// Distinct auctions of rank-1 bids.
    pub rank1_auctions: i64,
    /// Distinct auctions of rank-2 bids.
    pub rank2_auctions: i64,
    /// Distinct auctions of rank-3 bids.
    pub rank3_auctions: i64,
}

impl Q15Row {
    /// The row of a day's counts.
    pub fn of(day: CompactString, c: Counts) -> Self {
        Q15Row {
            day,
            total_bids: c.total_bids,
            rank1_bids: c.rank1_bids,
            rank2_bids: c.rank2_bids,
            rank3_bids: c.rank3_bids,
            total_bidders: c.total_bidders,
            rank1_bidders: c.rank1_bidders,
            rank2_bidders: c.rank2_bidders,
            rank3_bidders: c.rank3_bidders,
            total_auctions: c.total_auctions,
            rank1_auctions: c.rank1_auctions,
            rank2_auctions: c.rank2_auctions,
            rank3_auctions: c.rank3_auctions,
        }
    }
}

/// The twelve counts of q15 and q16, in the sinks' column order.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Counts {
    /// Bids.
    pub total_bids: i64,
    /// Bids with price < 10,000.
    pub rank1_bids: i64,
    /// Bids with 10,000 <= price < 1,000,000.
    pub rank2_bids: i64,
    /// Bids with price >= 1,000,000.
    pub rank3_bids: i64,
    /// Distinct bidders.
    pub total_bidders: i64,
    /// Distinct bidders of rank-1 bids.
    pub rank1_bidders: i64,
    /// Distinct bidders of rank-2 bids.
    pub rank2_bidders: i64,
    /// Distinct bidders of rank-3 bids.
    pub rank3_bidders: i64,
    /// Distinct auctions.
    pub total_auctions: i64,
    /// Distinct auctions of rank-1 bids.
    pub rank1_auctions: i64,
    /// Distinct auctions of rank-2 bids.
    pub rank2_auctions: i64,
    /// Distinct auctions of rank-3 bids.
    pub rank3_auctions: i64,
}

impl QueryRow for Q15Row {
    const COLUMNS: &'static [&'static str] = &[
        "day",
        "total_bids",
        "rank1_bids",
        "rank2_bids",
        "rank3_bids",
        "total_bidders",
        "rank1_bidders",
        "rank2_bidders",
        "rank3_bidders",
        "total_auctions",
        "rank1_auctions",
        "rank2_auctions",
        "rank3_auctions",
    ];
}

/// What [`bid_counts`] returns: the bid counts, the distinct bidders and the distinct
/// auctions, each `(all, rank 1, rank 2, rank 3)`.
pub(crate) type CountsOut = (
    (i64, i64, i64, i64),
    [i64; DISTINCT_SLOTS],
    [i64; DISTINCT_SLOTS],
);

impl From<CountsOut> for Counts {
    fn from(((b0, b1, b2, b3), d, a): CountsOut) -> Self {
        Counts {
            total_bids: b0,
            rank1_bids: b1,
            rank2_bids: b2,
            rank3_bids: b3,
            total_bidders: d[0],
            rank1_bidders: d[1],
            rank2_bidders: d[2],
            rank3_bidders: d[3],
            total_auctions: a[0],
            rank1_auctions: a[1],
            rank2_auctions: a[2],
            rank3_auctions: a[3],
        }
    }
}

/// The twelve aggregates of q15 and q16 over rows `T`, given how to read a row's bidder,
/// auction and price: `count(*)`, `count(distinct bidder)` and `count(distinct auction)`, each
/// over all rows and `FILTER (WHERE ..)` each price range. The distinct counts of one column
/// share one map (`CountDistinctOf::in_slots`: slot 0 all rows, slot `r` rank `r`).
pub(crate) fn bid_counts<T: 'static>(
    bidder: fn(&T) -> i64,
    auction: fn(&T) -> i64,
    price: fn(&T) -> i64,
) -> impl RetractAggregate<T, Out = CountsOut> {
    let in_rank = move |rank: u8| move |t: &T| price_rank(price(t)) == rank;
    let slots = move |t: &T| 1u8 | (1 << price_rank(price(t)));
    (
        (
            CountRows,
            CountRows.filter(in_rank(1)),
            CountRows.filter(in_rank(2)),
            CountRows.filter(in_rank(3)),
        ),
        CountDistinctOf::new(bidder).in_slots(slots),
        CountDistinctOf::new(auction).in_slots(slots),
    )
}

/// A bid as q15 counts it: `(day number, bidder, auction, price)`.
type DayBid = (i64, i64, i64, i64);

/// Builds q15 into `job`.
pub fn q15(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Change<Q15Row>>, ConfigError> {
    let mut days = DayText::default();
    Ok(nexmark_source::<Bid>(job, "bids", config)?
        .map(|b| {
            (
                b.date_time.0.div_euclid(MS_PER_DAY),
                b.bidder,
                b.auction,
                b.price,
            )
        })
        .key_by(|b| b.0)
        .group_aggregate(bid_counts(
            |b: &DayBid| b.1,
            |b: &DayBid| b.2,
            |b: &DayBid| b.3,
        ))
        .map(move |c| c.map(|(day, counts)| Q15Row::of(days.of(day), counts.into()))))
}
