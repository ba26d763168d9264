//! q10 — Log to file system: every bid with its date and `HH:mm` as partition columns.
//!
//! ```sql
//! INSERT INTO nexmark_q10
//! SELECT auction, bidder, price, `dateTime`, extra,
//!     DATE_FORMAT(`dateTime`, 'yyyy-MM-dd'), DATE_FORMAT(`dateTime`, 'HH:mm')
//! FROM bid;
//! ```
//!
//! A `map` over `NexmarkSource<Bid>`; the dates are of the UTC timestamp.
//!
//! Deviation: Flink writes the rows into a filesystem sink partitioned by `(dt, hm)` with
//! partition-time commits (1 min) and rolling files; here the query is the projection only,
//! and the rows go wherever the caller sends them (`streamcore nexmark --output` writes one
//! CSV file, `dt` and `hm` as ordinary columns) — like RisingWave's "q10-blackhole".

use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::json::format_date_time;
use crate::model::Bid;
use compact_str::CompactString;
use serde::Serialize;
use streamcore::{Job, Stream, Timestamp};

/// A row of `nexmark_q10`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Q10Row {
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
    /// `yyyy-MM-dd`.
    pub dt: CompactString,
    /// `HH:mm`.
    pub hm: CompactString,
}

impl QueryRow for Q10Row {
    const COLUMNS: &'static [&'static str] = &[
        "auction", "bidder", "price", "dateTime", "extra", "dt", "hm",
    ];
}

/// The row of one bid.
pub fn q10_row(b: Bid) -> Q10Row {
    let text = format_date_time(b.date_time.0);
    let n = text.len();
    // `…YYYY-MM-DD HH:MM:SS.fff`: the date is everything before the last 13 characters.
    Q10Row {
        auction: b.auction,
        bidder: b.bidder,
        price: b.price,
        date_time: b.date_time,
        extra: b.extra,
        dt: text[..n - 13].into(),
        hm: text[n - 12..n - 7].into(),
    }
}

/// Builds q10 into `job`.
pub fn q10(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Q10Row>, ConfigError> {
    Ok(nexmark_source::<Bid>(job, "bids", config)?.map(q10_row))
}
