//! q12 — Processing-time windows: bids per bidder in 10-second tumbling windows of
//! processing time (the wall clock).
//!
//! ```sql
//! CREATE VIEW B AS SELECT *, PROCTIME() as p_time FROM bid;
//! SELECT bidder, count(*) as bid_count, window_start AS starttime, window_end AS endtime
//! FROM TABLE(TUMBLE(TABLE B, DESCRIPTOR(p_time), INTERVAL '10' SECOND))
//! GROUP BY bidder, window_start, window_end;
//! ```
//!
//! Bids are hash-partitioned by bidder into [`ProcTimeCount`], which counts per bidder in the
//! current 10-second window of the wall clock (aligned to the epoch, `[start, start + 10 s)`,
//! UTC) and emits the counts when the clock passes the window end (checked by the runtime
//! every few milliseconds), and the open window's counts at the end of the input. The result
//! depends on the speed of the run, as in Flink.
//!
//! Deviations: a batch of bids is stamped with one clock reading when it reaches the operator
//! (not one `PROCTIME()` per row), and the open window is emitted at the end of a bounded
//! input (Flink drops or fires it depending on the version and the end-of-input handling).

use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use serde::Serialize;
use std::collections::HashMap;
use streamcore::{Job, Operator, Output, Stream, TaskContext, Timestamp};

/// Window size, 10 s.
pub const WINDOW_MS: i64 = 10_000;

/// A row of `nexmark_q12`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Q12Row {
    /// Bidder id.
    pub bidder: i64,
    /// Bids in the window.
    pub bid_count: i64,
    /// Window start (wall clock).
    #[serde(with = "crate::json::serde_date_time")]
    pub starttime: Timestamp,
    /// Window end (wall clock).
    #[serde(with = "crate::json::serde_date_time")]
    pub endtime: Timestamp,
}

impl QueryRow for Q12Row {
    const COLUMNS: &'static [&'static str] = &["bidder", "bid_count", "starttime", "endtime"];
}

/// Counts bids per bidder in processing-time tumbling windows.
#[derive(Clone, Default)]
pub struct ProcTimeCount {
    start: i64,
    counts: HashMap<i64, i64>,
}

impl ProcTimeCount {
    fn flush(&mut self, out: &mut Output<Q12Row>) {
        let (start, end) = (Timestamp(self.start), Timestamp(self.start + WINDOW_MS));
        for (bidder, bid_count) in self.counts.drain() {
            out.emit(Q12Row {
                bidder,
                bid_count,
                starttime: start,
                endtime: end,
            });
        }
    }

    fn advance(&mut self, now: i64, out: &mut Output<Q12Row>) {
        let start = now - now.rem_euclid(WINDOW_MS);
        if start != self.start {
            self.flush(out);
            self.start = start;
        }
    }
}

impl Operator for ProcTimeCount {
    type In = Bid;
    type Out = Q12Row;

    fn process_batch(
        &mut self,
        batch: Vec<Bid>,
        _ctx: &mut TaskContext,
        out: &mut Output<Q12Row>,
    ) -> streamcore::Result<()> {
        self.advance(Timestamp::now().0, out);
        for b in batch {
            *self.counts.entry(b.bidder).or_default() += 1;
        }
        Ok(())
    }

    fn on_processing_time(
        &mut self,
        now: Timestamp,
        _ctx: &mut TaskContext,
        out: &mut Output<Q12Row>,
    ) -> streamcore::Result<()> {
        self.advance(now.0, out);
        Ok(())
    }

    fn close(
        &mut self,
        _ctx: &mut TaskContext,
        out: &mut Output<Q12Row>,
    ) -> streamcore::Result<()> {
        self.flush(out);
        Ok(())
    }
}

/// Builds q12 into `job`.
pub fn q12(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Q12Row>, ConfigError> {
    Ok(nexmark_source::<Bid>(job, "bids", config)?
        .key_by(|b| b.bidder)
        .partitioned()
        .apply("q12_proctime_count", ProcTimeCount::default()))
}
