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
//! A rolling keyed aggregate on `auction` over `NexmarkSource<Bid>` keeping the top 10 by
//! price (Flink's append-only Top-N). A bid enters at the position after every kept bid with
//! a price `>=` its own (ties keep arrival order; ROW_NUMBER ties are arbitrary in Flink,
//! PITFALLS #29) and is dropped if that position is past 10. Every row whose rank changed is
//! updated: `Delete(row at old rank)` then `Insert(row at new rank)` for each rank from the
//! new bid's down, as Flink's `ROW_NUMBER` output with rank number does (the bid pushed out
//! of the top 10 is only deleted). No deviation; which of several bids of one auction with
//! equal prices gets which rank depends on arrival order, in Flink as here.

use super::{nexmark_source, Q18Row, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use compact_str::CompactString;
use serde::Serialize;
use streamcore::join::Change;
use streamcore::{Job, Stream, Timestamp};

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

fn ranked(b: &Q18Row, rank: usize) -> Q19Row {
    Q19Row {
        auction: b.auction,
        bidder: b.bidder,
        price: b.price,
        channel: b.channel.clone(),
        url: b.url.clone(),
        date_time: b.date_time,
        extra: b.extra.clone(),
        rank_number: rank as i64,
    }
}

/// The top bids, and what the last bid changed: from which position, the old rows there.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct TopN {
    top: Vec<Q18Row>,
    from: usize,
    old_tail: Vec<Q18Row>,
}

/// Builds q19 into `job`.
pub fn q19(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Change<Q19Row>>, ConfigError> {
    Ok(nexmark_source::<Bid>(job, "bids", config)?
        .map(Q18Row::from)
        .key_by(|b| b.auction)
        .aggregate(
            |_: &i64| TopN::default(),
            |acc: &mut TopN, b: Q18Row| {
                let at = acc.top.partition_point(|t| t.price >= b.price);
                acc.old_tail.clear();
                if at >= TOP {
                    acc.from = TOP;
                    return;
                }
                acc.from = at;
                acc.old_tail.extend_from_slice(&acc.top[at..]);
                acc.top.insert(at, b);
                acc.top.truncate(TOP);
            },
            |_: &i64, acc: &TopN| {
                let mut changes = Vec::new();
                for (i, old) in acc.old_tail.iter().enumerate() {
                    changes.push(Change::Delete(ranked(old, acc.from + i + 1)));
                }
                for (i, new) in acc.top.iter().enumerate().skip(acc.from) {
                    changes.push(Change::Insert(ranked(new, i + 1)));
                }
                changes
            },
        )
        .flat_map(|changes| changes))
}
