//! q5 — Hot items: per 10-second window sliding by 2 s, the auctions with the most bids (all
//! of them on a tie) and their bid count.
//!
//! ```sql
//! SELECT AuctionBids.auction, AuctionBids.num
//!  FROM (SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime
//!        FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
//!        GROUP BY auction, window_start, window_end) AS AuctionBids
//!  JOIN (SELECT max(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime
//!        FROM (<the same count per auction and window>) AS CountBids
//!        GROUP BY CountBids.starttime, CountBids.endtime) AS MaxBids
//!  ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.endtime = MaxBids.endtime
//!     AND AuctionBids.num >= MaxBids.maxn;
//! ```
//!
//! Phase 1: `key_by(auction).window(Windows::sliding(10 s, 2 s)).aggregate(Count)` on
//! `(dateTime, auction)` pairs (only they cross the exchange, not whole bids), the
//! `AuctionBids` table (each bid is in 5 windows `[start, start + 10 s)`, starts multiples of
//! 2 s). Phase 2: the counts are hash-partitioned by window and each window's counts are
//! gathered by [`GroupOnWatermark`] once the watermark reaches the window's last millisecond
//! (when phase 1 emitted them); every auction with `num >= max` is emitted, so ties are kept
//! (reference/pitfalls.md #27), and the self-join is on window start and end (reference/pitfalls.md #3). No deviation.

use super::{nexmark_source, GroupOnWatermark, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use serde::Serialize;
use std::time::Duration;
use streamcore::window::{aggregates::Count, Windows};
use streamcore::{Job, Output, Stream};

/// Window size, 10 s.
pub const SIZE_MS: i64 = 10_000;
/// Window slide, 2 s.
pub const SLIDE_MS: i64 = 2_000;

/// A row of `nexmark_q5`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Q5Row {
    /// Auction id.
    pub auction: i64,
    /// Its bids in the window: the window's maximum.
    pub num: i64,
}

impl QueryRow for Q5Row {
    const COLUMNS: &'static [&'static str] = &["auction", "num"];
}

type Counted = streamcore::window::WindowResult<i64, u64>;

fn hottest(_due: i64, counts: Vec<Counted>, out: &mut Output<Q5Row>) {
    let Some(max) = counts.iter().map(|c| c.value).max() else {
        return;
    };
    for c in counts {
        if c.value >= max {
            out.emit(Q5Row {
                auction: c.key,
                num: c.value as i64,
            });
        }
    }
}

/// Builds q5 into `job`.
pub fn q5(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Q5Row>, ConfigError> {
    Ok(nexmark_source::<Bid>(job, "bids", config)?
        // Only the time and the key cross the exchange, not the whole bid.
        .map(|b| (b.date_time, b.auction))
        .key_by(|b| b.1)
        .window(Windows::sliding(
            Duration::from_millis(SIZE_MS as u64),
            Duration::from_millis(SLIDE_MS as u64),
        ))
        .aggregate(Count)
        .key_by(|c: &Counted| c.window.end.0)
        .partitioned()
        .apply(
            "q5_hottest",
            GroupOnWatermark::new(|c: &Counted| c.window.end.0 - 1, hottest),
        ))
}
