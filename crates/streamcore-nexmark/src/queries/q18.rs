//! q18 — Find last bid: per (bidder, auction), the bid with the latest `dateTime`. An
//! updating query.
//!
//! ```sql
//! SELECT auction, bidder, price, channel, url, `dateTime`, extra
//!  FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY `dateTime` DESC)
//!        AS rank_number FROM bid)
//!  WHERE rank_number <= 1;
//! ```
//!
//! A keyed process function on `(bidder, auction)` over `NexmarkSource<Bid>` keeping the
//! current last bid, without the key's columns (Flink plans this as a row-time deduplication,
//! keep last row). A bid
//! replaces the current one when its `dateTime` is `>=` the current one's (Flink's
//! `RowTimeDeduplicateFunction` rule: of bids with equal `dateTime`, the later arrival wins,
//! PITFALLS #29), emitting `Delete(old)` then `Insert(new)`; an older bid changes nothing. No
//! deviation; which of several bids of one key in the same millisecond wins depends on the
//! arrival order, in Flink as here.

use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use compact_str::CompactString;
use serde::Serialize;
use streamcore::join::Change;
use streamcore::state::{KeyedContext, KeyedProcessFunction};
use streamcore::{Job, Output, Stream, Timestamp};

/// A row of `nexmark_q18`: a bid.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Q18Row {
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
}

impl QueryRow for Q18Row {
    const COLUMNS: &'static [&'static str] = &[
        "auction", "bidder", "price", "channel", "url", "dateTime", "extra",
    ];
}

impl From<Bid> for Q18Row {
    fn from(b: Bid) -> Self {
        Q18Row {
            auction: b.auction,
            bidder: b.bidder,
            price: b.price,
            channel: b.channel,
            url: b.url,
            date_time: b.date_time,
            extra: b.extra,
        }
    }
}

/// What a key keeps of its last bid: the bid without the key's columns (`bidder`,
/// `auction`), so that the state per key is 88 bytes plus the strings (which point into the
/// generator's static text, or are inline when short).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct KeptBid {
    pub(crate) price: i64,
    pub(crate) date_time: Timestamp,
    pub(crate) channel: CompactString,
    pub(crate) url: CompactString,
    pub(crate) extra: CompactString,
}

impl KeptBid {
    pub(crate) fn of(b: Bid) -> Self {
        KeptBid {
            price: b.price,
            date_time: b.date_time,
            channel: b.channel,
            url: b.url,
            extra: b.extra,
        }
    }

    /// The full row, given the columns the key holds.
    pub(crate) fn row(&self, auction: i64, bidder: i64) -> Q18Row {
        Q18Row {
            auction,
            bidder,
            price: self.price,
            channel: self.channel.clone(),
            url: self.url.clone(),
            date_time: self.date_time,
            extra: self.extra.clone(),
        }
    }
}

/// Keep-last per `(bidder, auction)`: the state is the current last bid only (the row it
/// replaces is emitted as the `Delete` right away, not kept).
#[derive(Clone)]
struct KeepLast;

impl KeyedProcessFunction<(i64, i64), Bid> for KeepLast {
    type State = Option<KeptBid>;
    type Out = Change<Q18Row>;

    fn process(
        &mut self,
        b: Bid,
        ctx: &mut KeyedContext<'_, (i64, i64), Self::State>,
        out: &mut Output<Self::Out>,
    ) {
        let (bidder, auction) = *ctx.key();
        let last = ctx.state();
        if last.as_ref().is_some_and(|l| b.date_time < l.date_time) {
            return;
        }
        let new = KeptBid::of(b);
        if let Some(old) = last.replace(new.clone()) {
            out.emit(Change::Delete(old.row(auction, bidder)));
        }
        out.emit(Change::Insert(new.row(auction, bidder)));
    }
}

/// Builds q18 into `job`.
pub fn q18(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Change<Q18Row>>, ConfigError> {
    Ok(nexmark_source::<Bid>(job, "bids", config)?
        .key_by(|b| (b.bidder, b.auction))
        .process(KeepLast))
}
