//! q19 — Auction top-10 price: per auction, the 10 highest bids with their rank. An updating
//! query.
//!
//! ```sql
//! SELECT * FROM
//! (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number
//!  FROM bid)
//! WHERE rank_number <= 10;
//! ```
//!
//! The library's ranked top-n over `NexmarkSource<Bid>` (Flink's append-only Top-N):
//!
//! ```text
//! bids.key_by(auction)
//!     .top_n_ranked(10, |b| Reverse(b.price))
//!     .map(|c| c.map(|(rank, bid)| Q19Row::of(rank, bid)))
//! ```
//!
//! `top_n_ranked` keeps each auction's 10 highest bids (over an append-only input the others
//! can never come back, so only 10 are kept). A bid enters after every kept bid with a price
//! `>=` its own (ties keep arrival order; ROW_NUMBER ties are arbitrary in Flink, PITFALLS
//! #29) and is dropped if that is past rank 10. Each rank whose bid changes is updated,
//! `-U`/`+U` (`+I` for a rank filled for the first time), as Flink's `ROW_NUMBER` output with
//! the rank number does; the bid pushed out of the top 10 leaves with its rank's update. No
//! deviation; which of several bids of one auction with equal prices gets which rank depends
//! on arrival order, in Flink as here.

use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use compact_str::CompactString;
use serde::Serialize;
use std::cmp::Reverse;
use streamcore::changelog::Change;
use streamcore::{Job, Stream, Timestamp};

/// Ranks kept per auction.
pub const TOP: usize = 10;

/// A row of `nexmark_q19`: a bid and its rank.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Q19Row {
    /// Auction id.
    pub auction: i64,
    /// Bidder id.
    pub bidder: i64,
    /// Price, cents.
    pub price: i64,
    /// Channel.
    pub channel: CompactString,
    /// URL.
    pub url: CompactString,
    /// Bid time.
    #[serde(with = "crate::json::serde_date_time")]
    pub date_time: Timestamp,
    /// Padding.
    pub extra: CompactString,
    /// 1 for the highest price.
    #[serde(rename = "rank_number")]
    pub rank_number: i64,
}

impl QueryRow for Q19Row {
    const COLUMNS: &'static [&'static str] = &[
        "auction",
        "bidder",
        "price",
        "channel",
        "url",
        "dateTime",
        "extra",
        "rank_number",
    ];
}

impl Q19Row {
    /// The row of a bid at `rank` (from 1).
    pub fn of(rank: u64, b: Bid) -> Self {
        Q19Row {
            auction: b.auction,
            bidder: b.bidder,
            price: b.price,
            channel: b.channel,
            url: b.url,
            date_time: b.date_time,
            extra: b.extra,
            rank_number: rank as i64,
        }
    }
}

/// Builds q19 into `job`.
pub fn q19(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Change<Q19Row>>, ConfigError> {
    Ok(nexmark_source::<Bid>(job, "bids", config)?
        .key_by(|b| b.auction)
        .top_n_ranked(TOP, |b: &Bid| Reverse(b.price))
        .map(|c| c.map(|(rank, b)| Q19Row::of(rank, b))))
}
