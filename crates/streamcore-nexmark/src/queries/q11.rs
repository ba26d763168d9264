//! q11 — User sessions: the number of bids of each bidder per session, sessions closing
//! after 10 s without a bid of that bidder.
//!
//! ```sql
//! SELECT B.bidder, count(*) as bid_count,
//!     SESSION_START(B.`dateTime`, INTERVAL '10' SECOND) as starttime,
//!     SESSION_END(B.`dateTime`, INTERVAL '10' SECOND) as endtime
//! FROM bid B GROUP BY B.bidder, SESSION(B.`dateTime`, INTERVAL '10' SECOND);
//! ```
//!
//! `key_by(bidder).window(Windows::session(10 s)).aggregate(Count)` over `NexmarkSource<Bid>`,
//! on `(dateTime, bidder)` pairs (only they cross the exchange, not whole bids).
//! As in Flink, a bid at `t` opens the window `[t, t + 10 s)` and windows that overlap or
//! touch merge, so bids at most 10 s apart share a session; `starttime` is the first bid's time
//! and `endtime` the last bid's time + 10 s. No deviation.

use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use serde::Serialize;
use std::time::Duration;
use streamcore::window::{aggregates::Count, Windows};
use streamcore::{Job, Stream, Timestamp};

/// A row of `nexmark_q11`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Q11Row {
    /// Bidder id.
    pub bidder: i64,
    /// Bids in the session.
    pub bid_count: i64,
    /// Session start: the first bid's time.
    #[serde(with = "crate::json::serde_date_time")]
    pub starttime: Timestamp,
    /// Session end: the last bid's time + 10 s.
    #[serde(with = "crate::json::serde_date_time")]
    pub endtime: Timestamp,
}

impl QueryRow for Q11Row {
    const COLUMNS: &'static [&'static str] = &["bidder", "bid_count", "starttime", "endtime"];
}

/// The session gap, 10 s.
pub const GAP_MS: i64 = 10_000;

/// Builds q11 into `job`.
pub fn q11(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Q11Row>, ConfigError> {
    Ok(nexmark_source::<Bid>(job, "bids", config)?
        // Only the time and the key cross the exchange, not the whole bid.
        .map(|b| (b.date_time, b.bidder))
        .key_by(|b| b.1)
        .window(Windows::session(Duration::from_millis(GAP_MS as u64)))
        .aggregate(Count)
        .map(|r| Q11Row {
            bidder: r.key,
            bid_count: r.value as i64,
            starttime: r.window.start,
            endtime: r.window.end,
        }))
}
