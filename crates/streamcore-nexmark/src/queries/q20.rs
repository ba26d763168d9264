//! q20 — Expand bid with auction: every bid on an auction of category 10, with the auction's
//! columns.
//!
//! ```sql
//! SELECT auction, bidder, price, channel, url, B.`dateTime`, B.extra,
//!     itemName, description, initialBid, reserve, A.`dateTime`, expires, seller, category,
//!     A.extra
//! FROM bid AS B INNER JOIN auction AS A on B.auction = A.id
//! WHERE A.category = 10;
//! ```
//!
//! Auctions and bids of one combined `NexmarkSource<NexmarkEvent>` are keyed by auction id
//! into a keyed process function: an inner equi-join without a time bound, insert-only like
//! Flink's. The category filter is pushed to the auction side.
//!
//! Deviation (state only, same rows): auction ids are unique in the generator, so a bid is
//! joined with its auction as soon as both are there and is kept only while its auction has
//! not arrived yet; once an auction arrived, its key remembers only the auction (or that it
//! was not in category 10). Flink's regular join keeps every bid and auction forever.

use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::{Auction, Bid, NexmarkEvent};
use compact_str::CompactString;
use serde::Serialize;
use streamcore::join::Either;
use streamcore::state::{KeyedContext, KeyedProcessFunction};
use streamcore::{Job, Output, Stream, Timestamp};

/// A row of `nexmark_q20`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Q20Row {
    /// Auction id.
    pub auction: i64,
    /// Bidder id.
    pub bidder: i64,
    /// Price.
    pub price: i64,
    /// Channel.
    pub channel: CompactString,
    /// URL.
    pub url: CompactString,
    /// Bid time.
    #[serde(rename = "bid_dateTime", with = "crate::json::serde_date_time")]
    pub bid_date_time: Timestamp,
    /// Bid padding.
    #[serde(rename = "bid_extra")]
    pub bid_extra: CompactString,
    /// Item name.
    pub item_name: CompactString,
    /// Description.
    pub description: CompactString,
    /// Initial bid.
    pub initial_bid: i64,
    /// Reserve.
    pub reserve: i64,
    /// Auction creation time.
    #[serde(rename = "auction_dateTime", with = "crate::json::serde_date_time")]
    pub auction_date_time: Timestamp,
    /// Auction close time.
    #[serde(with = "crate::json::serde_date_time")]
    pub expires: Timestamp,
    /// Seller.
    pub seller: i64,
    /// Category (10).
    pub category: i64,
    /// Auction padding.
    #[serde(rename = "auction_extra")]
    pub auction_extra: CompactString,
}

impl QueryRow for Q20Row {
    const COLUMNS: &'static [&'static str] = &[
        "auction",
        "bidder",
        "price",
        "channel",
        "url",
        "bid_dateTime",
        "bid_extra",
        "itemName",
        "description",
        "initialBid",
        "reserve",
        "auction_dateTime",
        "expires",
        "seller",
        "category",
        "auction_extra",
    ];
}

impl Q20Row {
    /// The row of a bid and its auction.
    pub fn of(b: Bid, a: &Auction) -> Self {
        Q20Row {
            auction: b.auction,
            bidder: b.bidder,
            price: b.price,
            channel: b.channel,
            url: b.url,
            bid_date_time: b.date_time,
            bid_extra: b.extra,
            item_name: a.item_name.clone(),
            description: a.description.clone(),
            initial_bid: a.initial_bid,
            reserve: a.reserve,
            auction_date_time: a.date_time,
            expires: a.expires,
            seller: a.seller,
            category: a.category,
            auction_extra: a.extra.clone(),
        }
    }
}

/// Per auction id: `Some(Some(a))` once a category-10 auction arrived, `Some(None)` once
/// another auction did; bids waiting for their auction.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct JoinState {
    auction: Option<Option<Auction>>,
    pending: Vec<Bid>,
}

#[derive(Clone)]
struct Expand;

impl KeyedProcessFunction<i64, Either<Auction, Bid>> for Expand {
    type State = JoinState;
    type Out = Q20Row;

    fn process(
        &mut self,
        record: Either<Auction, Bid>,
        ctx: &mut KeyedContext<'_, i64, JoinState>,
        out: &mut Output<Q20Row>,
    ) {
        let state = ctx.state();
        match record {
            Either::Left(a) => {
                let pending = std::mem::take(&mut state.pending);
                if a.category == 10 {
                    for b in pending {
                        out.emit(Q20Row::of(b, &a));
                    }
                    state.auction = Some(Some(a));
                } else {
                    state.auction = Some(None);
                }
            }
            Either::Right(b) => match &state.auction {
                Some(Some(a)) => out.emit(Q20Row::of(b, a)),
                Some(None) => {}
                None => state.pending.push(b),
            },
        }
    }
}

/// Builds q20 into `job`.
pub fn q20(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Q20Row>, ConfigError> {
    Ok(nexmark_source::<NexmarkEvent>(job, "events", config)?
        .flat_map(|e| match e {
            NexmarkEvent::Auction(a) => Some(Either::Left(a)),
            NexmarkEvent::Bid(b) => Some(Either::Right(b)),
            NexmarkEvent::Person(_) => None,
        })
        .key_by(|e: &Either<Auction, Bid>| match e {
            Either::Left(a) => a.id,
            Either::Right(b) => b.auction,
        })
        .process(Expand))
}
