//! q18 — Find last bid: per (bidder, auction), the bid with the latest `dateTime`. An
//! updating query.
//!
//! ```sql
//! SELECT auction, bidder, price, channel, url, `dateTime`, extra
//!  FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY `dateTime` DESC)
//!        AS rank_number FROM bid)
//!  WHERE rank_number <= 1;
//! ```
//!
//! The library's event-time deduplication over `NexmarkSource<Bid>` (Flink plans this query
//! as a row-time deduplication, keep last row):
//!
//! ```text
//! bids.key_by((bidder, auction))
//!     .deduplicate_by_time(Keep::Last)
//!     .map(|c| c.map(Q18Row::from))
//! ```
//!
//! A bid replaces the key's current one when its `dateTime` is `>=` the current one's (Flink's
//! `RowTimeDeduplicateFunction` rule: of bids with equal `dateTime`, the later arrival wins,
//! reference/pitfalls.md #29): `+I` for the key's first bid, `-U`/`+U` for each replacement; an older bid
//! changes nothing. No deviation; which of several bids of one key in the same millisecond
//! wins depends on the arrival order, in Flink as here.

use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use compact_str::CompactString;
use serde::Serialize;
use streamcore::changelog::{Change, Keep};
use streamcore::{Job, Stream, Timestamp};

/// A row of `nexmark_q18`: a bid.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Q18Row {
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
}

impl QueryRow for Q18Row {
    const COLUMNS: &'static [&'static str] = &[
        "auction", "bidder", "price", "channel", "url", "dateTime", "extra",
    ];
}

impl From<Bid> for Q18Row {
    fn from(b: Bid) -> Self {
        Q18Row {
            auction: b.auction,
            bidder: b.bidder,
            price: b.price,
            channel: b.channel,
            url: b.url,
            date_time: b.date_time,
            extra: b.extra,
        }
    }
}

/// Builds q18 into `job`.
pub fn q18(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Change<Q18Row>>, ConfigError> {
    Ok(nexmark_source::<Bid>(job, "bids", config)?
        .key_by(|b| (b.bidder, b.auction))
        .deduplicate_by_time(Keep::Last)
        .map(|c| c.map(Q18Row::from)))
}
