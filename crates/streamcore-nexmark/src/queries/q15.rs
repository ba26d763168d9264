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
//! A rolling keyed aggregate per day over `NexmarkSource<Bid>`, with exact distinct counts
//! (hash sets of bidders and auctions, overall and per price range). Each bid emits
//! `Delete(old row)` (unless it is the day's first) then `Insert(new row)`, Flink's
//! `-U`/`+U` without mini-batch. No deviation; Flink's split-distinct optimisation changes the
//! plan and the number of updates, not the final table. There is one group per day, so the
//! keyed stage runs on one instance whatever the parallelism (as in Flink without
//! split-distinct).

use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use compact_str::CompactString;
use serde::Serialize;
use streamcore::join::Change;
use streamcore::{Job, Stream};

pub(crate) const MS_PER_DAY: i64 = 86_400_000;

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

/// Distinct values seen, each with a bit set per column it counts in (bit 0: all bids, bits
/// 1–3: the price ranks).
type Seen = std::collections::HashMap<i64, u8, foldhash::fast::RandomState>;

/// Exact counts with the distinct sets behind them: index 0 is all bids, 1–3 the ranks.
///
/// One map per column kind (bidders, auctions) with a bit mask per value rather than a set
/// per column: one hash lookup per bid and kind instead of two, each value stored once, and
/// the distinct counts kept as the bits are first set.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct DistinctStats {
    bids: [i64; 4],
    bidders: Seen,
    auctions: Seen,
    distinct_bidders: [i64; 4],
    distinct_auctions: [i64; 4],
}

/// Marks `value` seen in the columns of `mask`; counts the columns where it is new.
#[inline]
fn mark(seen: &mut Seen, distinct: &mut [i64; 4], value: i64, mask: u8) {
    let bits = seen.entry(value).or_insert(0);
    let new = mask & !*bits;
    if new != 0 {
        *bits |= mask;
        for (i, d) in distinct.iter_mut().enumerate() {
            *d += i64::from(new >> i & 1);
        }
    }
}

impl DistinctStats {
    pub(crate) fn add(&mut self, bidder: i64, auction: i64, price: i64) {
        let rank = match price {
            p if p < 10_000 => 1,
            p if p < 1_000_000 => 2,
            _ => 3,
        };
        self.bids[0] += 1;
        self.bids[rank] += 1;
        let mask = 1u8 | 1 << rank;
        mark(&mut self.bidders, &mut self.distinct_bidders, bidder, mask);
        mark(
            &mut self.auctions,
            &mut self.distinct_auctions,
            auction,
            mask,
        );
    }

    pub(crate) fn counts(&self) -> Counts {
        let [b0, b1, b2, b3] = self.distinct_bidders;
        let [a0, a1, a2, a3] = self.distinct_auctions;
        Counts {
            total_bids: self.bids[0],
            rank1_bids: self.bids[1],
            rank2_bids: self.bids[2],
            rank3_bids: self.bids[3],
            total_bidders: b0,
            rank1_bidders: b1,
            rank2_bidders: b2,
            rank3_bidders: b3,
            total_auctions: a0,
            rank1_auctions: a1,
            rank2_auctions: a2,
            rank3_auctions: a3,
        }
    }
}

/// Per day: its text, the counts before the last bid, the distinct sets.
#[derive(serde::Serialize, serde::Deserialize)]
struct Acc {
    day: CompactString,
    before: Option<Counts>,
    stats: DistinctStats,
}

/// Builds q15 into `job`.
pub fn q15(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Change<Q15Row>>, ConfigError> {
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
        .aggregate(
            |day: &i64| Acc {
                day: super::q17::day_string(*day),
                before: None,
                stats: DistinctStats::default(),
            },
            |acc: &mut Acc, b: (i64, i64, i64, i64)| {
                acc.before = (acc.stats.bids[0] > 0).then(|| acc.stats.counts());
                acc.stats.add(b.1, b.2, b.3);
            },
            |_: &i64, acc: &Acc| {
                let row = |c| Q15Row::of(acc.day.clone(), c);
                let mut changes = Vec::new();
                changes.extend(acc.before.map(|c| Change::Delete(row(c))));
                changes.push(Change::Insert(row(acc.stats.counts())));
                changes
            },
        )
        .flat_map(|changes| changes))
}
