//! q17 — Auction statistics report: per auction and day, bid counts (all and by price
//! range), minimum, maximum, average and sum of the prices. An updating query.
//!
//! ```sql
//! SELECT auction, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd') as `day`,
//!      count(*) AS total_bids,
//!      count(*) filter (where price < 10000) AS rank1_bids,
//!      count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
//!      count(*) filter (where price >= 1000000) AS rank3_bids,
//!      min(price) AS min_price, max(price) AS max_price,
//!      avg(price) AS avg_price, sum(price) AS sum_price
//! FROM bid GROUP BY auction, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd');
//! ```
//!
//! A composition of the library's changelog operators over `NexmarkSource<Bid>`:
//!
//! ```text
//! bids.map(|b| (auction, day, price))
//!     .key_by((auction, day))
//!     .group_aggregate((CountRows, CountRows.filter(rank 1), .. (rank 2), .. (rank 3),
//!                       MinOf(price), MaxOf(price), AvgOf(price), SumOf(price)))
//!     .map(|c| c.map(Q17Row::of))
//! ```
//!
//! `group_aggregate` keeps each group's accumulators and emits its row as it changes: `+I` for
//! a group's first bid, then `-U`/`+U` for each bid after (unbounded groups, no windows, as in
//! Flink). `AvgOf` of an `i64` truncates, as Flink's `AVG` of a `BIGINT`. `day` is the UTC date
//! of the bid, keyed as a day number and printed in the output map. No deviation (as in Flink,
//! without a state TTL the state grows with the number of (auction, day) groups; `MinOf` and
//! `MaxOf` keep each group's prices, as retracting min/max must, although this input only
//! adds; Flink's mini-batch/local-global optimisations, which change how many updates are
//! emitted but not the final table, are not applied).

use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::json::format_date_time;
use crate::model::Bid;
use compact_str::CompactString;
use serde::Serialize;
use streamcore::changelog::{AvgOf, Change, CountRows, MaxOf, MinOf, RetractAggregate, SumOf};
use streamcore::{Job, Stream};

/// Milliseconds in a day: `dateTime.div_euclid(MS_PER_DAY)` is the UTC day number.
pub(crate) const MS_PER_DAY: i64 = 86_400_000;

/// A row of `nexmark_q17`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Q17Row {
    /// Auction id.
    pub auction: i64,
    /// `yyyy-MM-dd` (UTC).
    pub day: CompactString,
    /// Bids.
    pub total_bids: i64,
    /// Bids with price < 10,000.
    pub rank1_bids: i64,
    /// Bids with 10,000 <= price < 1,000,000.
    pub rank2_bids: i64,
    /// Bids with price >= 1,000,000.
    pub rank3_bids: i64,
    /// Lowest price.
    pub min_price: i64,
    /// Highest price.
    pub max_price: i64,
    /// Average price, truncated.
    pub avg_price: i64,
    /// Sum of prices.
    pub sum_price: i64,
}

impl QueryRow for Q17Row {
    const COLUMNS: &'static [&'static str] = &[
        "auction",
        "day",
        "total_bids",
        "rank1_bids",
        "rank2_bids",
        "rank3_bids",
        "min_price",
        "max_price",
        "avg_price",
        "sum_price",
    ];
}

/// The `yyyy-MM-dd` of day number `day` since the epoch.
pub fn day_string(day: i64) -> CompactString {
    CompactString::from(&format_date_time(day * MS_PER_DAY)[..10])
}

/// The text of the last day asked for: [`day_string`] once per day rather than per row (the
/// rows of q15–q17 come day after day).
#[derive(Clone, Default)]
pub(crate) struct DayText {
    last: Option<(i64, CompactString)>,
}

impl DayText {
    /// `day_string(day)`.
    #[inline]
    pub(crate) fn of(&mut self, day: i64) -> CompactString {
        match &self.last {
            Some((d, text)) if *d == day => text.clone(),
            _ => self.last.insert((day, day_string(day))).1.clone(),
        }
    }
}

/// The price range of Q15–Q17's `FILTER`s: 1 below 10,000, 2 below 1,000,000, else 3.
#[inline]
pub(crate) fn price_rank(price: i64) -> u8 {
    match price {
        p if p < 10_000 => 1,
        p if p < 1_000_000 => 2,
        _ => 3,
    }
}

/// The aggregates of a group, in the sink's column order: `(total, rank1, rank2, rank3, min,
/// max, avg, sum)`.
type Stats = (
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

impl Q17Row {
    /// The row of a group `(auction, day number)` and its aggregates.
    fn of(((auction, day), s): ((i64, i64), Stats), days: &mut DayText) -> Self {
        // A group has at least one bid whenever it has a row: no aggregate is NULL.
        Q17Row {
            auction,
            day: days.of(day),
            total_bids: s.0,
            rank1_bids: s.1,
            rank2_bids: s.2,
            rank3_bids: s.3,
            min_price: s.4.unwrap_or_default(),
            max_price: s.5.unwrap_or_default(),
            avg_price: s.6.unwrap_or_default(),
            sum_price: s.7.unwrap_or_default(),
        }
    }
}

/// A bid as q17 aggregates it: `(auction, day number, price)`.
type DayBid = (i64, i64, i64);

/// Builds q17 into `job`.
pub fn q17(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Change<Q17Row>>, ConfigError> {
    let price = |b: &DayBid| b.2;
    let mut days = DayText::default();
    Ok(nexmark_source::<Bid>(job, "bids", config)?
        .map(|b| (b.auction, b.date_time.0.div_euclid(MS_PER_DAY), b.price))
        .key_by(|b| (b.0, b.1))
        .group_aggregate((
            CountRows,
            CountRows.filter(move |b: &DayBid| price_rank(price(b)) == 1),
            CountRows.filter(move |b: &DayBid| price_rank(price(b)) == 2),
            CountRows.filter(move |b: &DayBid| price_rank(price(b)) == 3),
            MinOf::new(price),
            MaxOf::new(price),
            AvgOf::new(price),
            SumOf::new(price),
        ))
        .map(move |c| c.map(|g| Q17Row::of(g, &mut days))))
}
