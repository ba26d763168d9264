//! q1 — Currency conversion: every bid with its price in euros, `0.908 * price`.
//!
//! ```sql
//! INSERT INTO nexmark_q1
//! SELECT auction, bidder, 0.908 * price as price, `dateTime`, extra FROM bid;
//! ```
//!
//! A `map` over `NexmarkSource<Bid>`. `0.908 * price` is `DECIMAL(23, 3)` in Flink; here it is
//! the exact same value as a [`Decimal3`] (thousandths in an `i64`: `price * 908`, exact for
//! prices below 10^16 cents), printed with three decimals like Flink. No deviation.

use super::{nexmark_source, Decimal3, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use compact_str::CompactString;
use serde::Serialize;
use streamcore::{Job, Stream, Timestamp};

/// A row of `nexmark_q1`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Q1Row {
    /// Auction id.
    pub auction: i64,
    /// Bidder id.
    pub bidder: i64,
    /// Price in euros, `0.908 * price`.
    pub price: Decimal3,
    /// Bid time.
    #[serde(with = "crate::json::serde_date_time")]
    pub date_time: Timestamp,
    /// Padding.
    pub extra: CompactString,
}

impl QueryRow for Q1Row {
    const COLUMNS: &'static [&'static str] = &["auction", "bidder", "price", "dateTime", "extra"];
}

impl Q1Row {
    /// The row of one bid.
    pub fn of(b: Bid) -> Self {
        Q1Row {
            auction: b.auction,
            bidder: b.bidder,
            price: Decimal3::euro(b.price),
            date_time: b.date_time,
            extra: b.extra,
        }
    }
}

/// Builds q1 into `job`.
pub fn q1(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Q1Row>, ConfigError> {
    Ok(nexmark_source::<Bid>(job, "bids", config)?.map(Q1Row::of))
}
