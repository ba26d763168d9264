//! The winning bid of each auction, as a changelog: the join `auction ⋈ bid ON A.id =
//! B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires` followed by a top-1 per auction
//! by `price DESC, dateTime ASC` (q9's `ROW_NUMBER`, and q4's `MAX(price)`).

use streamcore::join::{Change, Either};
use streamcore::state::{KeyedContext, KeyedProcessFunction, TimeDomain};
use streamcore::{Data, Output, Timestamp};

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

/// Per auction id: the auction once seen, bids that came before it, the current winner.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct WinState<A, B> {
    auction: Option<A>,
    pending: Vec<B>,
    best: Option<B>,
}

impl<A, B> Default for WinState<A, B> {
    fn default() -> Self {
        WinState {
            auction: None,
            pending: Vec::new(),
            best: None,
        }
    }
}

/// The keyed process function (key: auction id, input: auctions and bids as [`Either`]).
///
/// State stays bounded by the watermark: a bid that arrives before its auction waits until
/// the watermark passes its time (an auction created at or before the bid would have arrived
/// by then; a later one cannot match), and an auction's state is dropped once the watermark
/// passes `expires` (no bid that can still arrive is in range).
#[derive(Clone)]
pub struct WinningBids<A, B>(std::marker::PhantomData<fn() -> (A, B)>);

impl<A, B> Default for WinningBids<A, B> {
    fn default() -> Self {
        WinningBids(std::marker::PhantomData)
    }
}

/// `b` beats `best`: higher price, or equal price and earlier.
fn beats<B: BidLike>(b: &B, best: Option<&B>) -> bool {
    best.is_none_or(|c| {
        b.price() > c.price() || (b.price() == c.price() && b.date_time() < c.date_time())
    })
}

fn consider<A: AuctionLike, B: BidLike>(
    state: &mut WinState<A, B>,
    b: B,
    out: &mut Output<Change<(A, B)>>,
) {
    let Some(a) = &state.auction else { return };
    let t = b.date_time();
    if t < a.date_time() || t > a.expires() || !beats(&b, state.best.as_ref()) {
        return;
    }
    if let Some(old) = state.best.take() {
        out.emit(Change::Delete((a.clone(), old)));
    }
    out.emit(Change::Insert((a.clone(), b.clone())));
    state.best = Some(b);
}

impl<A, B> KeyedProcessFunction<i64, Either<A, B>> for WinningBids<A, B>
where
    A: AuctionLike + streamcore::StateData,
    B: BidLike + streamcore::StateData,
{
    type State = WinState<A, B>;
    type Out = Change<(A, B)>;

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
                state.auction = Some(a);
                for b in std::mem::take(&mut state.pending) {
                    consider(state, b, out);
                }
            }
            Either::Right(b) => {
                if ctx.state().auction.is_some() {
                    consider(ctx.state(), b, out);
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

/// The winning-bid changelog of a stream of auctions and bids (with watermarks).
pub fn winning_bids<A: AuctionLike + streamcore::StateData, B: BidLike + streamcore::StateData>(
    events: streamcore::Stream<Either<A, B>>,
) -> streamcore::Stream<Change<(A, B)>> {
    events
        .key_by(|e: &Either<A, B>| match e {
            Either::Left(a) => a.id(),
            Either::Right(b) => b.auction(),
        })
        .process(WinningBids::default())
}

/// The fields of an auction the winning-bid queries need: `(id, group, dateTime, expires)`,
/// where `group` is what the query groups by (q4: the category, q6: the seller).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
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
