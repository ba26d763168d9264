//! The winning bid of each auction, as a changelog: the join `auction ⋈ bid ON A.id =
//! B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires` followed by a top-1 per auction
//! by `price DESC, dateTime ASC` (q9's `ROW_NUMBER`, and q4's `MAX(price)`; q6's top-1).
//!
//! ```text
//! events (Either<auction, bid>)
//!     .key_by(auction id).process(AuctionBidJoin)     // append-only (auction, bid) pairs
//!     .key_by(auction id)
//!     .top_n(1, |(a, b)| (Reverse(b.price), b.dateTime))
//! ```
//!
//! The join ([`AuctionBidJoin`]) is append-only: every pair is final once emitted. It keeps
//! its state bounded by the watermark (an auction until its `expires`, a bid that came before
//! its auction until the watermark passes the bid), which Flink's regular join cannot (it
//! keeps both sides forever); neither can change the result then. The top-1 is the library's
//! [`top_n`](streamcore::KeyedStream::top_n): a pair that takes first place is `+I`, the one it
//! pushes out `-D`. Ties on both price and `dateTime` keep the first-arrived pair (rows with
//! equal sort keys rank in arrival order), as `WinningBids` did before; `ROW_NUMBER` picks an
//! arbitrary one (reference/pitfalls.md #29). The top-1 keeps each auction's winning pair for the rest of
//! the job (Flink's Rank keeps it too, without a state TTL).

use std::cmp::Reverse;
use streamcore::changelog::Change;
use streamcore::join::Either;
use streamcore::state::{KeyedContext, KeyedProcessFunction, TimeDomain};
use streamcore::{Data, Output, StateData, Stream, Timestamp};

/// What the join needs of an auction.
pub trait AuctionLike: Data {
    /// Auction id.
    fn id(&self) -> i64;
    /// Creation time.
    fn date_time(&self) -> Timestamp;
    /// Closing time.
    fn expires(&self) -> Timestamp;
}

/// What the join needs of a bid.
pub trait BidLike: Data {
    /// Auction id.
    fn auction(&self) -> i64;
    /// Price.
    fn price(&self) -> i64;
    /// Bid time.
    fn date_time(&self) -> Timestamp;
}

impl AuctionLike for crate::Auction {
    fn id(&self) -> i64 {
        self.id
    }
    fn date_time(&self) -> Timestamp {
        self.date_time
    }
    fn expires(&self) -> Timestamp {
        self.expires
    }
}

/// A shared auction: joined to each of its bids without copying it.
impl<A: AuctionLike + Sync> AuctionLike for std::sync::Arc<A> {
    fn id(&self) -> i64 {
        (**self).id()
    }
    fn date_time(&self) -> Timestamp {
        (**self).date_time()
    }
    fn expires(&self) -> Timestamp {
        (**self).expires()
    }
}

impl BidLike for crate::Bid {
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

/// Per auction id: the auction once seen, and the bids that came before it.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct JoinState<A, B> {
    auction: Option<A>,
    pending: Vec<B>,
}

impl<A, B> Default for JoinState<A, B> {
    fn default() -> Self {
        JoinState {
            auction: None,
            pending: Vec::new(),
        }
    }
}

/// The join of auctions and bids on the auction id with the bid's time in `[dateTime,
/// expires]` (closed, no reserve check — reference/pitfalls.md #22), as a keyed process function (key:
/// auction id, input: auctions and bids as [`Either`]); emits each matching `(auction, bid)`
/// once, append-only.
///
/// State stays bounded by the watermark: a bid that arrives before its auction waits until
/// the watermark passes its time (an auction created at or before the bid would have arrived
/// by then; a later one cannot match), and an auction's state is dropped once the watermark
/// passes `expires` (no bid that can still arrive is in range).
#[derive(Clone)]
pub struct AuctionBidJoin<A, B>(std::marker::PhantomData<fn() -> (A, B)>);

impl<A, B> Default for AuctionBidJoin<A, B> {
    fn default() -> Self {
        AuctionBidJoin(std::marker::PhantomData)
    }
}

/// Emits `(a, b)` if `b` was made while `a` was open.
#[inline]
fn join<A: AuctionLike, B: BidLike>(a: &A, b: B, out: &mut Output<(A, B)>) {
    let t = b.date_time();
    if a.date_time() <= t && t <= a.expires() {
        out.emit((a.clone(), b));
    }
}

impl<A, B> KeyedProcessFunction<i64, Either<A, B>> for AuctionBidJoin<A, B>
where
    A: AuctionLike + StateData,
    B: BidLike + StateData,
{
    type State = JoinState<A, B>;
    type Out = (A, B);

    fn process(
        &mut self,
        record: Either<A, B>,
        ctx: &mut KeyedContext<'_, i64, Self::State>,
        out: &mut Output<Self::Out>,
    ) {
        match record {
            Either::Left(a) => {
                ctx.register_event_time_timer(a.expires());
                let state = ctx.state();
                for b in std::mem::take(&mut state.pending) {
                    join(&a, b, out);
                }
                state.auction = Some(a);
            }
            Either::Right(b) => {
                if let Some(a) = &ctx.state().auction {
                    join(a, b, out);
                } else {
                    // One pending timer per key at a time: at the earliest pending bid's time.
                    let earliest = ctx.state().pending.iter().map(|p| p.date_time()).min();
                    if earliest.is_none_or(|e| b.date_time() < e) {
                        ctx.register_event_time_timer(b.date_time());
                    }
                    ctx.state().pending.push(b);
                }
            }
        }
    }

    fn on_timer(
        &mut self,
        time: Timestamp,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_, i64, Self::State>,
        _out: &mut Output<Self::Out>,
    ) {
        let state = ctx.state();
        let expired = state.auction.as_ref().is_some_and(|a| a.expires() <= time);
        state.pending.retain(|b| b.date_time() > time);
        if expired || (state.auction.is_none() && state.pending.is_empty()) {
            ctx.clear_state();
        } else if state.auction.is_none() {
            let earliest = state.pending.iter().map(|p| p.date_time()).min();
            if let Some(t) = earliest {
                ctx.register_event_time_timer(t);
            }
        }
    }
}

/// The `(auction, bid)` pairs of the join, append-only, from a stream of auctions and bids
/// (with watermarks).
pub fn auction_bids<A, B>(events: Stream<Either<A, B>>) -> Stream<(A, B)>
where
    A: AuctionLike + StateData,
    B: BidLike + StateData,
{
    events
        .key_by(|e: &Either<A, B>| match e {
            Either::Left(a) => a.id(),
            Either::Right(b) => b.auction(),
        })
        .process(AuctionBidJoin::default())
}

/// The winning-bid changelog of a stream of auctions and bids (with watermarks): the join's
/// pairs, top-1 per auction by `price DESC, dateTime ASC`.
pub fn winning_bids<A, B>(events: Stream<Either<A, B>>) -> Stream<Change<(A, B)>>
where
    A: AuctionLike + StateData + PartialEq,
    B: BidLike + StateData + PartialEq,
{
    auction_bids(events)
        .key_by(|(a, _): &(A, B)| a.id())
        .top_n(1, |(_, b): &(A, B)| (Reverse(b.price()), b.date_time()))
}

/// The fields of an auction the winning-bid queries need: `(id, group, dateTime, expires)`,
/// where `group` is what the query groups by (q4: the category, q6: the seller).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SlimAuction(pub i64, pub i64, pub Timestamp, pub Timestamp);

impl AuctionLike for SlimAuction {
    fn id(&self) -> i64 {
        self.0
    }
    fn date_time(&self) -> Timestamp {
        self.2
    }
    fn expires(&self) -> Timestamp {
        self.3
    }
}

/// The fields of a bid the winning-bid queries need: `(auction, price, dateTime)`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SlimBid(pub i64, pub i64, pub Timestamp);

impl BidLike for SlimBid {
    fn auction(&self) -> i64 {
        self.0
    }
    fn price(&self) -> i64 {
        self.1
    }
    fn date_time(&self) -> Timestamp {
        self.2
    }
}
