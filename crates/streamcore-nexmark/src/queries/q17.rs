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
//! A rolling keyed aggregate (`key_by((auction, day)).aggregate(..)`, no windows: the group
//! is unbounded, as in Flink) over `NexmarkSource<Bid>`. Each bid updates its group and emits
//! the group's changes: `Delete(old row)` (unless it is the group's first bid) then
//! `Insert(new row)` — Flink's `-U`/`+U`. `avg(price)` on `BIGINT` is a `BIGINT` in Flink:
//! `sum / count` truncated. `day` is the UTC date of the bid. No deviation (as in Flink,
//! without a state TTL the state grows with the number of (auction, day) groups; Flink's
//! mini-batch/local-global optimisations, which change how many updates are emitted but not
//! the final table, are not applied).

use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::json::format_date_time;
use crate::model::Bid;
use compact_str::CompactString;
use serde::Serialize;
use streamcore::join::Change;
use streamcore::{Job, Stream};

const MS_PER_DAY: i64 = 86_400_000;

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

#[derive(Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
struct Stats {
    total: i64,
    rank1: i64,
    rank2: i64,
    rank3: i64,
    min: i64,
    max: i64,
    sum: i64,
}

impl Stats {
    fn add(&mut self, price: i64) {
        if self.total == 0 {
            (self.min, self.max) = (price, price);
        } else {
            self.min = self.min.min(price);
            self.max = self.max.max(price);
        }
        self.total += 1;
        self.sum += price;
        match price {
            p if p < 10_000 => self.rank1 += 1,
            p if p < 1_000_000 => self.rank2 += 1,
            _ => self.rank3 += 1,
        }
    }

    fn row(&self, auction: i64, day: &CompactString) -> Q17Row {
        Q17Row {
            auction,
            day: day.clone(),
            total_bids: self.total,
            rank1_bids: self.rank1,
            rank2_bids: self.rank2,
            rank3_bids: self.rank3,
            min_price: self.min,
            max_price: self.max,
            avg_price: self.sum / self.total,
            sum_price: self.sum,
        }
    }
}

/// Per group: the day's text, the statistics before the last bid, and now.
#[derive(serde::Serialize, serde::Deserialize)]
struct Acc {
    day: CompactString,
    before: Stats,
    now: Stats,
}

/// Builds q17 into `job`.
pub fn q17(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Change<Q17Row>>, ConfigError> {
    Ok(nexmark_source::<Bid>(job, "bids", config)?
        .map(|b| (b.auction, b.date_time.0.div_euclid(MS_PER_DAY), b.price))
        .key_by(|b| (b.0, b.1))
        .aggregate(
            |k: &(i64, i64)| Acc {
                day: day_string(k.1),
                before: Stats::default(),
                now: Stats::default(),
            },
            |acc: &mut Acc, b: (i64, i64, i64)| {
                acc.before = acc.now;
                acc.now.add(b.2);
            },
            |k: &(i64, i64), acc: &Acc| {
                let new = Change::Insert(acc.now.row(k.0, &acc.day));
                if acc.before.total == 0 {
                    vec![new]
                } else {
                    vec![Change::Delete(acc.before.row(k.0, &acc.day)), new]
                }
            },
        )
        .flat_map(|changes| changes))
}
