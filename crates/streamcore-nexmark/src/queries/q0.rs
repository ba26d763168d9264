//! q0 — Pass through: every bid, projected to `(auction, bidder, price, dateTime, extra)`.
//!
//! ```sql
//! INSERT INTO nexmark_q0 SELECT auction, bidder, price, `dateTime`, extra FROM bid;
//! ```
//!
//! A `map` over `NexmarkSource<Bid>`. No deviation.

use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use compact_str::CompactString;
use serde::Serialize;
use streamcore::{Job, Stream, Timestamp};

/// A row of `nexmark_q0`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Q0Row {
    /// Auction id.
    pub auction: i64,
    /// Bidder id.
    pub bidder: i64,
    /// Price, cents.
    pub price: i64,
    /// Bid time.
    #[serde(with = "crate::json::serde_date_time")]
    pub date_time: Timestamp,
    /// Padding.
    pub extra: CompactString,
}

impl QueryRow for Q0Row {
    const COLUMNS: &'static [&'static str] = &["auction", "bidder", "price", "dateTime", "extra"];
}

impl Q0Row {
    /// The row of one bid.
    pub fn of(b: Bid) -> Self {
        Q0Row {
            auction: b.auction,
            bidder: b.bidder,
            price: b.price,
            date_time: b.date_time,
            extra: b.extra,
        }
    }
}

/// Builds q0 into `job`.
pub fn q0(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Q0Row>, ConfigError> {
    Ok(nexmark_source::<Bid>(job, "bids", config)?.map(Q0Row::of))
}
