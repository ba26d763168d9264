//! q9 — Winning bids: each auction with its highest bid made while it was open. An updating
//! query.
//!
//! ```sql
//! SELECT id, itemName, description, initialBid, reserve, `dateTime`, expires, seller,
//!     category, extra, auction, bidder, price, bid_dateTime, bid_extra
//! FROM (
//!    SELECT A.*, B.auction, B.bidder, B.price, B.`dateTime` AS bid_dateTime,
//!      B.extra AS bid_extra,
//!      ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.`dateTime` ASC) AS rownum
//!    FROM auction A, bid B
//!    WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires
//! )
//! WHERE rownum <= 1;
//! ```
//!
//! Auctions and bids of one combined `NexmarkSource<NexmarkEvent>` (so that both advance
//! together in event time; two typed sources run at different speeds, and the state of the
//! faster one piles up until the slower one's watermark catches up) are keyed by auction id, and a keyed process function (`WinningBids`) joins them with the closed
//! `BETWEEN` (no reserve check, unlike Beam; PITFALLS #22) and keeps the top-1 by
//! `price DESC, dateTime ASC`. Each new winner emits `Delete(old row)` then `Insert(new
//! row)`. Auctions without a bid in range have no row (inner join).
//!
//! Deviations: ties on both price and `dateTime` keep the first-arrived bid (ROW_NUMBER picks
//! an arbitrary one; PITFALLS #29). State: Flink's regular join keeps every auction and bid
//! forever; here a bid that arrives before its auction is dropped once the watermark passes
//! its time, and an auction's state once the watermark passes `expires` — neither can still
//! change the result, so the final table is the same.

use super::winning::winning_bids;
use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::{Auction, Bid, NexmarkEvent};
use compact_str::CompactString;
use serde::Serialize;
use streamcore::join::{Change, Either};
use streamcore::{Job, Stream, Timestamp};

/// A row of `nexmark_q9`: an auction and its winning bid.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Q9Row {
    /// Auction id.
    pub id: i64,
    /// Item name.
    pub item_name: CompactString,
    /// Description.
    pub description: CompactString,
    /// Initial bid.
    pub initial_bid: i64,
    /// Reserve price.
    pub reserve: i64,
    /// Auction creation time.
    #[serde(with = "crate::json::serde_date_time")]
    pub date_time: Timestamp,
    /// Auction close time.
    #[serde(with = "crate::json::serde_date_time")]
    pub expires: Timestamp,
    /// Seller id.
    pub seller: i64,
    /// Category.
    pub category: i64,
    /// Auction padding.
    pub extra: CompactString,
    /// Auction id of the bid.
    pub auction: i64,
    /// Bidder id.
    pub bidder: i64,
    /// Winning price.
    pub price: i64,
    /// Bid time.
    #[serde(rename = "bid_dateTime", with = "crate::json::serde_date_time")]
    pub bid_date_time: Timestamp,
    /// Bid padding.
    #[serde(rename = "bid_extra")]
    pub bid_extra: CompactString,
}

impl QueryRow for Q9Row {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "itemName",
        "description",
        "initialBid",
        "reserve",
        "dateTime",
        "expires",
        "seller",
        "category",
        "extra",
        "auction",
        "bidder",
        "price",
        "bid_dateTime",
        "bid_extra",
    ];
}

impl Q9Row {
    /// The row of an auction and a bid.
    pub fn of(a: Auction, b: Bid) -> Self {
        Q9Row {
            id: a.id,
            item_name: a.item_name,
            description: a.description,
            initial_bid: a.initial_bid,
            reserve: a.reserve,
            date_time: a.date_time,
            expires: a.expires,
            seller: a.seller,
            category: a.category,
            extra: a.extra,
            auction: b.auction,
            bidder: b.bidder,
            price: b.price,
            bid_date_time: b.date_time,
            bid_extra: b.extra,
        }
    }
}

/// Builds q9 into `job`.
pub fn q9(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Change<Q9Row>>, ConfigError> {
    let events = nexmark_source::<NexmarkEvent>(job, "events", config)?.flat_map(|e| match e {
        NexmarkEvent::Auction(a) => Some(Either::Left(a)),
        NexmarkEvent::Bid(b) => Some(Either::Right(b)),
        NexmarkEvent::Person(_) => None,
    });
    Ok(winning_bids(events).map(|c| c.map(|(a, b)| Q9Row::of(a, b))))
}
