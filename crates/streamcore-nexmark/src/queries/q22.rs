//! q22 — Get URL directories: each bid with the 3rd, 4th and 5th `/`-separated parts of its
//! URL.
//!
//! ```sql
//! SELECT auction, bidder, price, channel,
//!     SPLIT_INDEX(url, '/', 3) as dir1, SPLIT_INDEX(url, '/', 4) as dir2,
//!     SPLIT_INDEX(url, '/', 5) as dir3 FROM bid;
//! ```
//!
//! A `map` over `NexmarkSource<Bid>`. [`split_index`] follows Flink's `SPLIT_INDEX`
//! (`splitByWholeSeparatorPreserveAllTokens`: empty parts count, index 0 is the first part,
//! `NULL` past the last part and for an empty string); `NULL` is `None` (an empty CSV field).
//! No deviation.

use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use compact_str::CompactString;
use serde::Serialize;
use streamcore::{Job, Stream};

/// A row of `nexmark_q22`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Q22Row {
    /// Auction id.
    pub auction: i64,
    /// Bidder id.
    pub bidder: i64,
    /// Price, cents.
    pub price: i64,
    /// Channel.
    pub channel: CompactString,
    /// `SPLIT_INDEX(url, '/', 3)`.
    pub dir1: Option<CompactString>,
    /// `SPLIT_INDEX(url, '/', 4)`.
    pub dir2: Option<CompactString>,
    /// `SPLIT_INDEX(url, '/', 5)`.
    pub dir3: Option<CompactString>,
}

impl QueryRow for Q22Row {
    const COLUMNS: &'static [&'static str] = &[
        "auction", "bidder", "price", "channel", "dir1", "dir2", "dir3",
    ];
}

/// Flink's `SPLIT_INDEX(s, sep, index)` for a one-character separator.
pub fn split_index(s: &str, sep: char, index: usize) -> Option<&str> {
    if s.is_empty() {
        return None;
    }
    s.split(sep).nth(index)
}

/// The row of one bid.
pub fn q22_row(b: Bid) -> Q22Row {
    let mut parts = if b.url.is_empty() {
        None
    } else {
        Some(b.url.split('/').skip(3))
    };
    let mut next = || {
        parts
            .as_mut()
            .and_then(|p| p.next())
            .map(CompactString::from)
    };
    let (dir1, dir2, dir3) = (next(), next(), next());
    Q22Row {
        auction: b.auction,
        bidder: b.bidder,
        price: b.price,
        channel: b.channel,
        dir1,
        dir2,
        dir3,
    }
}

/// Builds q22 into `job`.
pub fn q22(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Q22Row>, ConfigError> {
    Ok(nexmark_source::<Bid>(job, "bids", config)?.map(q22_row))
}
