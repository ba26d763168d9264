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
//! faster one piles up until the slower one's watermark catches up), then the shared
//! [`winning_bids`] composition and a map to the rows:
//!
//! ```text
//! events.key_by(auction id).process(AuctionBidJoin)   // append-only (auction, bid) pairs
//!     .key_by(auction id)
//!     .top_n(1, |(a, b)| (Reverse(b.price), b.dateTime))
//!     .map(|c| c.map(Q9Row::of))
//! ```
//!
//! The join has the closed `BETWEEN` (no reserve check, unlike Beam; reference/pitfalls.md #22); the
//! library's `top_n` keeps the top-1 by `price DESC, dateTime ASC` and emits `+I` for a new
//! winner and `-D` for the one it replaces. Auctions without a bid in range have no row (inner
//! join).
//!
//! Deviations: ties on both price and `dateTime` keep the first-arrived bid (ROW_NUMBER picks
//! an arbitrary one; reference/pitfalls.md #29). State: Flink's regular join keeps every auction and bid
//! forever; here a bid that arrives before its auction is dropped once the watermark passes
//! its time, and an auction's join state once the watermark passes `expires` — neither can
//! still change the result, so the final table is the same.

use super::winning::{winning_bids, BidLike};
use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::{Auction, Bid, NexmarkEvent};
use compact_str::CompactString;
use serde::Serialize;
use std::sync::Arc;
use streamcore::changelog::Change;
use streamcore::join::Either;
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
        Self::of_winner(a, WinBid::from(b))
    }

    fn of_winner(a: Auction, b: WinBid) -> Self {
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

/// The columns of a bid that q9 selects (not `channel` and `url`): what the join and the top-1
/// keep of a bid.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct WinBid {
    auction: i64,
    bidder: i64,
    price: i64,
    date_time: Timestamp,
    extra: CompactString,
}

impl From<Bid> for WinBid {
    fn from(b: Bid) -> Self {
        WinBid {
            auction: b.auction,
            bidder: b.bidder,
            price: b.price,
            date_time: b.date_time,
            extra: b.extra,
        }
    }
}

impl BidLike for WinBid {
    fn auction(&self) -> i64 {
        self.auction
    }
    fn price(&self) -> i64 {
        self.price
    }
    fn date_time(&self) -> Timestamp {
        self.date_time
    }
}

/// Builds q9 into `job`.
pub fn q9(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Change<Q9Row>>, ConfigError> {
    let events = nexmark_source::<NexmarkEvent>(job, "events", config)?.flat_map(|e| match e {
        // Shared: the join pairs the auction with each of its bids in range, and the top-1
        // keeps a pair; an `Arc` makes those copies a reference count.
        NexmarkEvent::Auction(a) => Some(Either::Left(Arc::new(a))),
        NexmarkEvent::Bid(b) => Some(Either::Right(WinBid::from(b))),
        NexmarkEvent::Person(_) => None,
    });
    Ok(winning_bids(events).map(|c| c.map(|(a, b)| Q9Row::of_winner(Arc::unwrap_or_clone(a), b))))
}
