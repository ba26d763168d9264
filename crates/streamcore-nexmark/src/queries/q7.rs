//! q7 — Highest bid: per 10-second tumbling window, the bids whose price is the window's
//! highest, matched on the closed interval `[window_end - 10 s, window_end]`.
//!
//! ```sql
//! SELECT B.auction, B.price, B.bidder, B.`dateTime`, B.extra
//! from bid B
//! JOIN (
//!   SELECT MAX(price) AS maxprice, window_end as `dateTime`
//!   FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
//!   GROUP BY window_start, window_end
//! ) B1
//! ON B.price = B1.maxprice
//! WHERE B.`dateTime` BETWEEN B1.`dateTime` - INTERVAL '10' SECOND AND B1.`dateTime`;
//! ```
//!
//! Semantics kept: the maximum is over the bids of `[start, end)`; the join then takes every
//! bid with `start <= dateTime <= end` (closed at both ends, reference/pitfalls.md #28) and `price = max`.
//! So all ties are emitted (reference/pitfalls.md #27), and a bid exactly at `end` (which belongs to the
//! next window) is also emitted for the previous window when its price equals that window's
//! maximum — once per matching window, as Flink's join does. Windows without bids have no
//! maximum and match nothing.
//!
//! Plan (two phases, no bid is shuffled): each parallel instance of the bid source keeps, per
//! window, its local maximum, the bids at that maximum, and the bids exactly at the window's
//! end whose price is at least that maximum (only those can still equal the global maximum);
//! when its watermark reaches the window end (all bids `<= end` seen) it emits one
//! [`Q7Partial`]. The partials are hash-partitioned by window and merged by
//! [`GroupOnWatermark`] once the merged watermark reaches the window end. State is a few bids
//! per open window and instance, instead of Flink's unbounded regular-join state.
//!
//! Deviation: **column order.** The Flink SQL selects `(auction, price, bidder, …)` into a
//! sink declared `(auction, bidder, price, …)`, so Flink writes the price into the `bidder`
//! column and the bidder into `price` (reference/pitfalls.md #2, nexmark/nexmark#61). [`Q7Row`] has the
//! sink's columns with the values their names say (`bidder` is the bidder).

use super::{nexmark_source, GroupOnWatermark, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use compact_str::CompactString;
use serde::Serialize;
use std::collections::BTreeMap;
use streamcore::{Job, Operator, Output, Result, Stream, TaskContext, Timestamp};

/// Window size, 10 s.
pub const WINDOW_MS: i64 = 10_000;

/// A row of `nexmark_q7`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Q7Row {
    /// Auction id.
    pub auction: i64,
    /// Bidder id.
    pub bidder: i64,
    /// Price, cents: the maximum of the window.
    pub price: i64,
    /// Bid time.
    #[serde(with = "crate::json::serde_date_time")]
    pub date_time: Timestamp,
    /// Padding.
    pub extra: CompactString,
}

impl QueryRow for Q7Row {
    const COLUMNS: &'static [&'static str] = &["auction", "bidder", "price", "dateTime", "extra"];
}

impl Q7Row {
    fn of(b: Bid) -> Self {
        Q7Row {
            auction: b.auction,
            bidder: b.bidder,
            price: b.price,
            date_time: b.date_time,
            extra: b.extra,
        }
    }
}

/// One parallel instance's part of one window.
#[derive(Clone, Debug, Default)]
pub struct Q7Partial {
    /// Window end (exclusive for the maximum, inclusive for the join).
    pub end: i64,
    /// The highest price of this instance's bids in `[end - 10 s, end)`.
    pub max: Option<i64>,
    /// This instance's bids in the window at `max`.
    pub top: Vec<Q7Row>,
    /// This instance's bids at exactly `end` with a price `>= max`.
    pub boundary: Vec<Q7Row>,
}

/// The first phase: per-instance partials, emitted as the watermark passes each window end.
#[derive(Clone, Default)]
struct LocalMax {
    windows: BTreeMap<i64, Q7Partial>,
}

impl LocalMax {
    fn add(&mut self, b: Bid) {
        let t = b.date_time.0;
        let offset = t.rem_euclid(WINDOW_MS);
        let end = t - offset + WINDOW_MS;
        let price = b.price;
        let row = Q7Row::of(b);
        if offset == 0 {
            let prev = self.windows.entry(t).or_insert_with(|| Q7Partial {
                end: t,
                ..Default::default()
            });
            if prev.max.is_none_or(|m| price >= m) {
                prev.boundary.push(row.clone());
            }
        }
        let w = self.windows.entry(end).or_insert_with(|| Q7Partial {
            end,
            ..Default::default()
        });
        match w.max {
            Some(m) if price < m => {}
            Some(m) if price == m => w.top.push(row),
            _ => {
                w.max = Some(price);
                w.top.clear();
                w.top.push(row);
                w.boundary.retain(|r| r.price >= price);
            }
        }
    }
}

impl Operator for LocalMax {
    type In = Bid;
    type Out = Q7Partial;

    fn process_batch(
        &mut self,
        batch: Vec<Bid>,
        _ctx: &mut TaskContext,
        _out: &mut Output<Q7Partial>,
    ) -> Result<()> {
        for b in batch {
            self.add(b);
        }
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: Timestamp,
        _ctx: &mut TaskContext,
        out: &mut Output<Q7Partial>,
    ) -> Result<Option<Timestamp>> {
        while let Some(entry) = self.windows.first_entry() {
            if *entry.key() > watermark.0 {
                break;
            }
            out.emit(entry.remove());
        }
        Ok(Some(watermark))
    }

    fn close(&mut self, _ctx: &mut TaskContext, out: &mut Output<Q7Partial>) -> Result<()> {
        for (_, p) in std::mem::take(&mut self.windows) {
            out.emit(p);
        }
        Ok(())
    }
}

/// The second phase: the rows of one window from all instances' partials.
fn merge(_end: i64, partials: Vec<Q7Partial>, out: &mut Output<Q7Row>) {
    let Some(max) = partials.iter().filter_map(|p| p.max).max() else {
        return;
    };
    for p in partials {
        if p.max == Some(max) {
            out.emit_batch(p.top);
        }
        for r in p.boundary {
            if r.price == max {
                out.emit(r);
            }
        }
    }
}

/// Builds q7 into `job`.
pub fn q7(
    job: &mut Job,
    config: &GeneratorConfig,
) -> std::result::Result<Stream<Q7Row>, ConfigError> {
    Ok(q7_of(nexmark_source::<Bid>(job, "bids", config)?))
}

/// q7 on any stream of bids with watermarks.
pub fn q7_of(bids: Stream<Bid>) -> Stream<Q7Row> {
    bids.apply("q7_local_max", LocalMax::default())
        .key_by(|p: &Q7Partial| p.end)
        .partitioned()
        .apply(
            "q7_merge",
            GroupOnWatermark::new(|p: &Q7Partial| p.end, merge),
        )
}
