//! q14 — Calculation: bids with a euro price in (1,000,000, 50,000,000), the part of the day
//! they were made in, and the number of `c`s in `extra`.
//!
//! ```sql
//! SELECT auction, bidder, 0.908 * price as price,
//!     CASE WHEN HOUR(`dateTime`) >= 8 AND HOUR(`dateTime`) <= 18 THEN 'dayTime'
//!          WHEN HOUR(`dateTime`) <= 6 OR HOUR(`dateTime`) >= 20 THEN 'nightTime'
//!          ELSE 'otherTime' END AS bidTimeType,
//!     `dateTime`, extra, count_char(extra, 'c') AS c_counts
//! FROM bid WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000;
//! ```
//!
//! A `filter_map`-style `flat_map` over `NexmarkSource<Bid>`. The price test is exact in
//! thousandths (`908 * price` against `10^9` and `5·10^10`). `HOUR` is the hour of the UTC
//! timestamp (Flink's `TIMESTAMP(3)` built from epoch milliseconds). `count_char` counts the
//! byte `c` (nexmark's `CountChar` UDF counts the `char`; `extra` is ASCII). No deviation; as
//! in Flink the day/night split depends on the generator's base time (fixed here).

use super::{nexmark_source, Decimal3, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use compact_str::CompactString;
use serde::Serialize;
use streamcore::{Job, Stream, Timestamp};

/// A row of `nexmark_q14`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Q14Row {
    /// Auction id.
    pub auction: i64,
    /// Bidder id.
    pub bidder: i64,
    /// Price in euros, `0.908 * price`.
    pub price: Decimal3,
    /// `dayTime`, `nightTime` or `otherTime`.
    #[serde(rename = "bidTimeType")]
    pub bid_time_type: &'static str,
    /// Bid time.
    #[serde(rename = "dateTime", with = "crate::json::serde_date_time")]
    pub date_time: Timestamp,
    /// Padding.
    pub extra: CompactString,
    /// Number of `c` in `extra`.
    pub c_counts: i64,
}

impl QueryRow for Q14Row {
    const COLUMNS: &'static [&'static str] = &[
        "auction",
        "bidder",
        "price",
        "bidTimeType",
        "dateTime",
        "extra",
        "c_counts",
    ];
}

/// The `CASE` on `HOUR(dateTime)`.
pub fn bid_time_type(t: Timestamp) -> &'static str {
    let hour = t.0.div_euclid(3_600_000).rem_euclid(24);
    if (8..=18).contains(&hour) {
        "dayTime"
    } else if hour <= 6 || hour >= 20 {
        "nightTime"
    } else {
        "otherTime"
    }
}

/// Nexmark's UDF `CountChar`: how often `c` occurs in `s` (the SQL `count_char` calls it too).
/// An ASCII character is counted as bytes (in UTF-8 no other character contains its byte),
/// 64 at a time into one-byte counters — a loop the compiler vectorizes well, where a byte
/// filter counted into a `usize` moved two bytes per step.
///
/// ```
/// use streamcore_nexmark::queries::q14::count_char;
/// assert_eq!(count_char("cacophony", 'c'), 2);
/// assert_eq!(count_char("ça, c'est ça", 'ç'), 2);
/// ```
pub fn count_char(s: &str, c: char) -> usize {
    if !c.is_ascii() {
        return s.chars().filter(|&x| x == c).count();
    }
    let b = c as u8;
    let mut chunks = s.as_bytes().chunks_exact(64);
    let mut n = 0;
    for chunk in &mut chunks {
        // At most 64 per chunk: a `u8` holds the count.
        n += chunk.iter().map(|&x| u8::from(x == b)).sum::<u8>() as usize;
    }
    n + chunks.remainder().iter().filter(|&&x| x == b).count()
}

/// The row of one bid, if it passes the filter.
pub fn q14_row(b: Bid) -> Option<Q14Row> {
    let euro = Decimal3::euro(b.price);
    if !(euro.0 > 1_000_000_000 && euro.0 < 50_000_000_000) {
        return None;
    }
    let c_counts = count_char(&b.extra, 'c') as i64;
    Some(Q14Row {
        auction: b.auction,
        bidder: b.bidder,
        price: euro,
        bid_time_type: bid_time_type(b.date_time),
        date_time: b.date_time,
        extra: b.extra,
        c_counts,
    })
}

/// Builds q14 into `job`.
pub fn q14(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Q14Row>, ConfigError> {
    Ok(nexmark_source::<Bid>(job, "bids", config)?.flat_map(q14_row))
}
