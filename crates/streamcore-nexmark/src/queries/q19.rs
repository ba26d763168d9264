//! q19 — Auction top-10 price: per auction, the 10 highest bids with their rank. An updating
//! query.
//!
//! ```sql
//! SELECT * FROM
//! (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number
//!  FROM bid)
//! WHERE rank_number <= 10;
//! ```
//!
//! A keyed process function on `auction` over `NexmarkSource<Bid>` keeping the top 10 by
//! price (Flink's append-only Top-N), without the key column. A bid enters at the position after every kept bid with
//! a price `>=` its own (ties keep arrival order; ROW_NUMBER ties are arbitrary in Flink,
//! PITFALLS #29) and is dropped if that position is past 10. Every row whose rank changed is
//! updated: `Delete(row at old rank)` then `Insert(row at new rank)` for each rank from the
//! new bid's down, as Flink's `ROW_NUMBER` output with rank number does (the bid pushed out
//! of the top 10 is only deleted). No deviation; which of several bids of one auction with
//! equal prices gets which rank depends on arrival order, in Flink as here.

use super::q18::KeptBid;
use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use compact_str::CompactString;
use serde::Serialize;
use streamcore::join::Change;
use streamcore::state::{KeyedContext, KeyedProcessFunction};
use streamcore::{Job, Output, Stream, Timestamp};

/// Ranks kept per auction.
pub const TOP: usize = 10;

/// A row of `nexmark_q19`: a bid and its rank.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Q19Row {
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
    /// 1 for the highest price.
    #[serde(rename = "rank_number")]
    pub rank_number: i64,
}

impl QueryRow for Q19Row {
    const COLUMNS: &'static [&'static str] = &[
        "auction",
        "bidder",
        "price",
        "channel",
        "url",
        "dateTime",
        "extra",
        "rank_number",
    ];
}

fn ranked(auction: i64, b: &TopBid, rank: usize) -> Q19Row {
    Q19Row {
        auction,
        bidder: b.bidder,
        price: b.bid.price,
        channel: b.bid.channel.clone(),
        url: b.bid.url.clone(),
        date_time: b.bid.date_time,
        extra: b.bid.extra.clone(),
        rank_number: rank as i64,
    }
}

/// A kept bid of an auction: the bid without its `auction` column (the key).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct TopBid {
    bidder: i64,
    bid: KeptBid,
}

/// Top-10 per auction: the state is the kept bids in rank order (at most [`TOP`], the vector
/// grown exactly to at most that); the rows whose rank a bid changes are emitted right away.
#[derive(Clone)]
struct TopTen;

impl KeyedProcessFunction<i64, Bid> for TopTen {
    type State = Vec<TopBid>;
    type Out = Change<Q19Row>;

    fn process(
        &mut self,
        b: Bid,
        ctx: &mut KeyedContext<'_, i64, Self::State>,
        out: &mut Output<Self::Out>,
    ) {
        let auction = *ctx.key();
        let top = ctx.state();
        let at = top.partition_point(|t| t.bid.price >= b.price);
        if at >= TOP {
            return;
        }
        // Every row from the new bid's rank down moves one rank (the last one out of the top).
        for (i, old) in top.iter().enumerate().skip(at) {
            out.emit(Change::Delete(ranked(auction, old, i + 1)));
        }
        if top.len() == TOP {
            top.pop();
        }
        if top.len() == top.capacity() {
            let want = (2 * top.len()).clamp(1, TOP);
            top.reserve_exact(want - top.len());
        }
        top.insert(
            at,
            TopBid {
                bidder: b.bidder,
                bid: KeptBid::of(b),
            },
        );
        for (i, new) in top.iter().enumerate().skip(at) {
            out.emit(Change::Insert(ranked(auction, new, i + 1)));
        }
    }
}

/// Builds q19 into `job`.
pub fn q19(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Change<Q19Row>>, ConfigError> {
    Ok(nexmark_source::<Bid>(job, "bids", config)?
        .key_by(|b| b.auction)
        .process(TopTen))
}
