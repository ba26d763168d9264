//! [`NexmarkGenerator`]: event number → event, a pure function (reference/generator-spec.md §2–§7).
//!
//! For event number `n` (0, 1, 2, … over the whole stream):
//! 1. `na = (n / G)·G + (n·953) mod G` — the out-of-order permutation (§4);
//! 2. event id `e = first_event_id + na`; its type is `e mod T` against the proportions (§2);
//! 3. timestamp `base_time + floor(na · 1000 / rate)` ms (§4);
//! 4. every id derives from `e` arithmetically (§3): the person/auction an event creates, and
//!    the range of existing people/auctions a random pick draws from;
//! 5. the remaining values (picks, prices, strings, lengths) come from an [`EventRng`] seeded
//!    from `(seed, e)` (§8, option (b): distributions as SPEC, values not Java's).
//!
//! So a worker can make any subset of event numbers in any order without coordination, and
//! the stream is the same at every parallelism. It is Beam's stream with one generator at the
//! overall rate (ids in one space); nexmark/nexmark instead gives each of its splits its own id
//! range and timeline (reference/generator-spec.md §4 "Parallel generators").
//!
//! Choices where implementations differ (reference/generator-spec.md §9):
//! - bidder ids are `person id + 1000` (Beam, Feldera, nexmark-rs), **not** nexmark/nexmark's
//!   doubled `+ 2000` (nexmark/nexmark#30), so bids join with persons; the hot bidder is the
//!   second person of the current block of 100 (Beam), not the hot seller (Arroyo);
//! - bids carry nexmark/nexmark's `channel` and `url` (for q16/q21/q22), with Flink's
//!   distribution (hot channel with probability 1/2, `channel_id` on 9/10 of cached URLs);
//! - the event-time base is fixed (Beam's 2015-07-15) unless configured.

use crate::config::{ConfigError, GeneratorConfig};
use crate::model::{Auction, Bid, EventKind, NexmarkEvent, Person};
use crate::rng::EventRng;
use crate::strings::{
    static_str, tables, Tables, CHANNELS_NUMBER, POW2_BITS, POW2_STEPS, TABLE_LEN,
};
use compact_str::CompactString;
use std::fmt;
use streamcore::Timestamp;

/// `FIRST_PERSON_ID`: base-0 person ids are offset by this.
pub const FIRST_PERSON_ID: i64 = 1000;
/// `FIRST_AUCTION_ID`: base-0 auction ids are offset by this.
pub const FIRST_AUCTION_ID: i64 = 1000;
/// `FIRST_CATEGORY_ID`: categories are `10 ..= 14`.
pub const FIRST_CATEGORY_ID: i64 = 10;
/// `NUM_CATEGORIES`.
pub const NUM_CATEGORIES: u64 = 5;
/// `PERSON_ID_LEAD`: random people may be up to this many not yet created.
pub const PERSON_ID_LEAD: u64 = 10;
/// `AUCTION_ID_LEAD`: random auctions may be up to this many not yet created.
pub const AUCTION_ID_LEAD: u64 = 10;
/// Hot sellers, auctions and bidders are the first (bidders: second) of a block of this many.
pub const HOT_BLOCK: i64 = 100;

/// Where event number `n` sits: everything its values derive from.
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Adjusted event number (after the out-of-order permutation).
    na: u64,
    /// Event id.
    id: u64,
    /// `id / T`.
    epoch: u64,
    /// `id mod T`.
    rem: u64,
}

/// Makes Nexmark events from their event numbers.
///
/// ```
/// use streamcore_nexmark::{GeneratorConfig, NexmarkEvent, NexmarkGenerator};
/// let g = NexmarkGenerator::new(GeneratorConfig::default()).unwrap();
/// let NexmarkEvent::Person(p) = g.event(0) else { panic!() };
/// assert_eq!(p.id, 1000);
/// let NexmarkEvent::Auction(a) = g.event(3) else { panic!() };
/// assert_eq!(a.id, 1002);
/// let NexmarkEvent::Bid(b) = g.event(4) else { panic!() };
/// assert_eq!(b.date_time.millis(), 1_436_918_400_000); // 4 events at 10,000/s: +0.4 ms
/// assert_eq!(g.event(4), g.event(4));
/// ```
#[derive(Clone)]
pub struct NexmarkGenerator {
    config: GeneratorConfig,
    seed_key: u64,
    /// `T`.
    total: u64,
    /// `P`.
    persons: u64,
    /// `A`.
    auctions: u64,
    rate: u64,
    group: u64,
    /// `numEventsForAuctions = numInFlightAuctions · T / A` (§6).
    events_for_auctions: u64,
    tables: &'static Tables,
    /// How much of each bid is made.
    bid_fields: BidFields,
    /// How much of each auction is made.
    auction_fields: AuctionFields,
}

/// How much of an auction the generator makes, as [`BidFields`] for bids: an auction's fields
/// are drawn in this order — seller, category, initialBid, expires, then itemName,
/// description, reserve and extra — so an auction made up to one of them equals the whole
/// auction up to there, the fields after it empty. `id` and `dateTime` are always made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuctionFields {
    /// `id` and `dateTime` alone.
    IdAndDateTime,
    /// Up to `seller`.
    Seller,
    /// Up to `category`.
    Category,
    /// Up to `initialBid`.
    InitialBid,
    /// Up to `expires`.
    Expires,
    /// Every field.
    #[default]
    All,
}

/// How much of a bid the generator makes. A bid's fields are drawn from its event's random
/// stream in this order — auction, bidder, price, channel and url, extra — so a bid made up to
/// one of them equals the whole bid up to there; the fields after it are left empty (0, "").
/// `dateTime` is always made (it does not come from the stream). A reader that needs only
/// some fields (a SQL scan of `bid.auction` and `bid.dateTime`) stops early
/// ([`NexmarkGenerator::making_bids_up_to`], read by [`NexmarkGenerator::part_of_bid`] and the
/// source's record type [`crate::source::PartOfBid`]; the whole bids of
/// [`NexmarkGenerator::bid`] are unaffected).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BidFields {
    /// `dateTime` alone.
    DateTime,
    /// Up to `auction`.
    Auction,
    /// Up to `bidder`.
    Bidder,
    /// Up to `price`.
    Price,
    /// Up to `channel` and `url`.
    ChannelAndUrl,
    /// Every field.
    #[default]
    All,
}

impl fmt::Debug for NexmarkGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NexmarkGenerator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl NexmarkGenerator {
    /// A generator for a valid `config`.
    pub fn new(config: GeneratorConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(NexmarkGenerator {
            seed_key: EventRng::seed_key(config.seed),
            total: config.total_proportion(),
            persons: config.person_proportion,
            auctions: config.auction_proportion,
            rate: config.first_event_rate,
            group: config.out_of_order_group_size,
            events_for_auctions: config.num_in_flight_auctions * config.total_proportion()
                / config.auction_proportion,
            tables: tables(),
            config,
            bid_fields: BidFields::All,
            auction_fields: AuctionFields::All,
        })
    }

    /// This generator making auctions only up to `fields` ([`AuctionFields`]), read by
    /// [`NexmarkGenerator::part_of_auction`].
    pub fn making_auctions_up_to(mut self, fields: AuctionFields) -> Self {
        self.auction_fields = fields;
        self
    }

    /// This generator making bids only up to `fields` ([`BidFields`]): the fields after it
    /// are left empty, and their random draws and copies not made.
    pub fn making_bids_up_to(mut self, fields: BidFields) -> Self {
        self.bid_fields = fields;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    // ---- event numbers, ids, types, timestamps (§2, §4) ----

    /// The adjusted event number: `(n / G)·G + (n·953) mod G` (§4).
    #[inline]
    pub fn adjusted_event_number(&self, n: u64) -> u64 {
        if self.group == 1 {
            n
        } else {
            let g = self.group;
            n - n % g + (n % g) * 953 % g
        }
    }

    /// The event id of event number `n`: `first_event_id + adjusted(n)`.
    #[inline]
    pub fn event_id(&self, n: u64) -> u64 {
        self.config
            .first_event_id
            .wrapping_add(self.adjusted_event_number(n))
    }

    /// The type of the event with id `event_id` (§2).
    #[inline]
    pub fn kind_of_event_id(&self, event_id: u64) -> EventKind {
        self.kind_of_rem(event_id % self.total)
    }

    /// The type of event number `n`.
    #[inline]
    pub fn kind(&self, n: u64) -> EventKind {
        self.kind_of_event_id(self.event_id(n))
    }

    #[inline]
    fn kind_of_rem(&self, rem: u64) -> EventKind {
        if rem < self.persons {
            EventKind::Person
        } else if rem < self.persons + self.auctions {
            EventKind::Auction
        } else {
            EventKind::Bid
        }
    }

    /// `timestamp(na)` of §4 for an *adjusted* event number: `base + floor(na·1000 / rate)`.
    #[inline]
    pub fn timestamp_of_adjusted(&self, na: u64) -> Timestamp {
        let offset = match na.checked_mul(1000) {
            Some(x) => x / self.rate,
            None => (na as u128 * 1000 / self.rate as u128).min(u64::MAX as u128) as u64,
        };
        Timestamp(
            self.config
                .base_time_ms
                .saturating_add(offset.min(i64::MAX as u64) as i64),
        )
    }

    /// The event time of event number `n`.
    #[inline]
    pub fn timestamp(&self, n: u64) -> Timestamp {
        self.timestamp_of_adjusted(self.adjusted_event_number(n))
    }

    /// SPEC's watermark hint after event number `n`: the earliest timestamp of its
    /// out-of-order group, `timestamp((n / G)·G)`. No later event number has an earlier
    /// event time.
    pub fn watermark_hint(&self, n: u64) -> Timestamp {
        self.timestamp_of_adjusted(n - n % self.group)
    }

    // ---- ids (§3) ----

    /// `lastBase0PersonId(e)`: the person event `e` creates, or the last one created before.
    pub fn last_base0_person_id(&self, event_id: u64) -> i64 {
        self.last_person(event_id / self.total, event_id % self.total)
    }

    /// `lastBase0AuctionId(e)`: the auction event `e` creates, or the last one created before
    /// (−1 before the first auction).
    pub fn last_base0_auction_id(&self, event_id: u64) -> i64 {
        self.last_auction(event_id / self.total, event_id % self.total)
    }

    /// `nextBase0PersonId(e)`: a random active person — uniform over the last
    /// `num_active_people` people and the next [`PERSON_ID_LEAD`] not yet created.
    pub fn next_base0_person_id(&self, event_id: u64, rng: &mut EventRng) -> i64 {
        self.random_person(self.last_base0_person_id(event_id), rng)
    }

    /// `nextBase0AuctionId(e)`: a random in-flight auction — uniform over the last
    /// `num_in_flight_auctions + 1` auctions and the next [`AUCTION_ID_LEAD`] not yet created.
    pub fn next_base0_auction_id(&self, event_id: u64, rng: &mut EventRng) -> i64 {
        self.random_auction(self.last_base0_auction_id(event_id), rng)
    }

    #[inline]
    fn last_person(&self, epoch: u64, rem: u64) -> i64 {
        (epoch * self.persons + rem.min(self.persons - 1)) as i64
    }

    #[inline]
    fn last_auction(&self, epoch: u64, rem: u64) -> i64 {
        let a = self.auctions;
        if rem < self.persons {
            // The last auction of the previous epoch: (epoch - 1)·A + A - 1.
            (epoch * a) as i64 - 1
        } else if rem >= self.persons + a {
            (epoch * a + a - 1) as i64
        } else {
            (epoch * a + rem - self.persons) as i64
        }
    }

    #[inline]
    fn random_person(&self, last_person: i64, rng: &mut EventRng) -> i64 {
        let num_people = last_person as u64 + 1;
        let active = num_people.min(self.config.num_active_people);
        (num_people - active + rng.below(active + PERSON_ID_LEAD)) as i64
    }

    #[inline]
    fn random_auction(&self, last_auction: i64, rng: &mut EventRng) -> i64 {
        let max = last_auction;
        let min = (max - self.config.num_in_flight_auctions as i64).max(0);
        min + rng.below((max - min + 1) as u64 + AUCTION_ID_LEAD) as i64
    }

    // ---- events ----

    #[inline]
    fn slot(&self, n: u64) -> Slot {
        let na = self.adjusted_event_number(n);
        let id = self.config.first_event_id.wrapping_add(na);
        Slot {
            na,
            id,
            epoch: id / self.total,
            rem: id % self.total,
        }
    }

    #[inline]
    fn rng(&self, slot: &Slot) -> EventRng {
        EventRng::for_event(self.seed_key, slot.id)
    }

    /// Event number `n`.
    #[inline]
    pub fn event(&self, n: u64) -> NexmarkEvent {
        let s = self.slot(n);
        match self.kind_of_rem(s.rem) {
            EventKind::Person => NexmarkEvent::Person(self.make_person(&s)),
            EventKind::Auction => NexmarkEvent::Auction(self.make_auction(&s)),
            EventKind::Bid => NexmarkEvent::Bid(self.make_bid(&s)),
        }
    }

    /// Event number `n` if it is a person; nothing is generated otherwise.
    #[inline]
    pub fn person(&self, n: u64) -> Option<Person> {
        let s = self.slot(n);
        (self.kind_of_rem(s.rem) == EventKind::Person).then(|| self.make_person(&s))
    }

    /// Event number `n` if it is an auction; nothing is generated otherwise.
    #[inline]
    pub fn auction(&self, n: u64) -> Option<Auction> {
        let s = self.slot(n);
        (self.kind_of_rem(s.rem) == EventKind::Auction).then(|| self.make_auction(&s))
    }

    /// Event number `n` if it is an auction, made up to the fields set by
    /// [`NexmarkGenerator::making_auctions_up_to`]; nothing is generated otherwise.
    #[inline]
    pub fn part_of_auction(&self, n: u64) -> Option<Auction> {
        let s = self.slot(n);
        (self.kind_of_rem(s.rem) == EventKind::Auction).then(|| match self.auction_fields {
            AuctionFields::All => self.make_auction(&s),
            _ => self.make_part_of_auction(&s),
        })
    }

    /// Event number `n` if it is a bid, made up to the fields set by
    /// [`NexmarkGenerator::making_bids_up_to`]; nothing is generated otherwise.
    #[inline]
    pub fn part_of_bid(&self, n: u64) -> Option<Bid> {
        let s = self.slot(n);
        (self.kind_of_rem(s.rem) == EventKind::Bid).then(|| match self.bid_fields {
            BidFields::All => self.make_bid(&s),
            _ => self.make_part_of_bid(&s),
        })
    }

    /// Event number `n` if it is a bid; nothing is generated otherwise.
    #[inline]
    pub fn bid(&self, n: u64) -> Option<Bid> {
        let s = self.slot(n);
        (self.kind_of_rem(s.rem) == EventKind::Bid).then(|| self.make_bid(&s))
    }

    fn make_person(&self, s: &Slot) -> Person {
        let t = self.tables;
        let mut rng = self.rng(s);
        // FIRST_NAMES[int(11)] + " " + LAST_NAMES[int(9)] as one uniform pick of the 99 pairs.
        let name = t.names[rng.below(t.names.len() as u64) as usize].clone();
        let mut email = CompactString::default();
        email.push_str(self.rand_string(&mut rng, 7));
        email.push('@');
        email.push_str(self.rand_string(&mut rng, 5));
        email.push_str(".com");
        // Four independent int(10000) groups = one uniform 16-digit number.
        let credit_card = credit_card(rng.below(10_000_000_000_000_000));
        let city = t.cities[rng.below(t.cities.len() as u64) as usize].clone();
        let state = t.states[rng.below(t.states.len() as u64) as usize].clone();
        let size = 8 + name.len() + email.len() + credit_card.len() + city.len() + state.len();
        let extra = self.next_extra(&mut rng, size as u64, self.config.avg_person_byte_size);
        Person {
            id: self.last_person(s.epoch, s.rem) + FIRST_PERSON_ID,
            name,
            email_address: email,
            credit_card,
            city,
            state,
            date_time: self.timestamp_of_adjusted(s.na),
            extra,
        }
    }

    fn make_auction(&self, s: &Slot) -> Auction {
        let c = &self.config;
        let mut rng = self.rng(s);
        let seller = self.draw_seller(s, &mut rng);
        let category = FIRST_CATEGORY_ID + rng.below(NUM_CATEGORIES) as i64;
        let initial_bid = next_price(self.tables, &mut rng);
        let date_time = self.timestamp_of_adjusted(s.na);
        let expires = self.draw_expires(s, date_time, &mut rng);
        let item_name = self.rand_string(&mut rng, 20);
        let description = self.rand_string(&mut rng, 100);
        let reserve = initial_bid + next_price(self.tables, &mut rng);
        let size = 8 + item_name.len() + description.len() + 40;
        let extra = self.next_extra(&mut rng, size as u64, c.avg_auction_byte_size);
        Auction {
            id: self.last_auction(s.epoch, s.rem) + FIRST_AUCTION_ID,
            item_name: static_str(item_name),
            description: static_str(description),
            initial_bid,
            reserve,
            date_time,
            expires,
            seller,
            category,
            extra,
        }
    }

    /// An auction made up to `self.auction_fields` ([`AuctionFields`]):
    /// [`NexmarkGenerator::make_auction`]'s draws in its order, stopped after the last field
    /// made (apart from it, as [`NexmarkGenerator::make_part_of_bid`]).
    fn make_part_of_auction(&self, s: &Slot) -> Auction {
        let upto = self.auction_fields;
        let date_time = self.timestamp_of_adjusted(s.na);
        let mut auction = Auction {
            id: self.last_auction(s.epoch, s.rem) + FIRST_AUCTION_ID,
            item_name: CompactString::default(),
            description: CompactString::default(),
            initial_bid: 0,
            reserve: 0,
            date_time,
            expires: Timestamp(0),
            seller: 0,
            category: 0,
            extra: CompactString::default(),
        };
        if upto == AuctionFields::IdAndDateTime {
            return auction;
        }
        let mut rng = self.rng(s);
        auction.seller = self.draw_seller(s, &mut rng);
        if upto == AuctionFields::Seller {
            return auction;
        }
        auction.category = FIRST_CATEGORY_ID + rng.below(NUM_CATEGORIES) as i64;
        if upto == AuctionFields::Category {
            return auction;
        }
        auction.initial_bid = next_price(self.tables, &mut rng);
        if upto == AuctionFields::InitialBid {
            return auction;
        }
        auction.expires = self.draw_expires(s, date_time, &mut rng);
        auction
    }

    /// An auction's seller: a hot person, or one of the recent ones.
    #[inline(always)]
    fn draw_seller(&self, s: &Slot, rng: &mut EventRng) -> i64 {
        let last_person = self.last_person(s.epoch, s.rem);
        let seller = if rng.hot(self.config.hot_sellers_ratio) {
            last_person / HOT_BLOCK * HOT_BLOCK
        } else {
            self.random_person(last_person, rng)
        };
        seller + FIRST_PERSON_ID
    }

    /// When an auction made at `date_time` expires.
    #[inline(always)]
    fn draw_expires(&self, s: &Slot, date_time: Timestamp, rng: &mut EventRng) -> Timestamp {
        let length = self.auction_length_ms(s.na, date_time, rng);
        Timestamp(date_time.0.saturating_add(length))
    }

    #[inline]
    fn make_bid(&self, s: &Slot) -> Bid {
        let mut rng = self.rng(s);
        let auction = self.draw_auction(s, &mut rng);
        let bidder = self.draw_bidder(s, &mut rng);
        let price = next_price(self.tables, &mut rng);
        let (channel, url) = self.draw_channel_and_url(&mut rng);
        let extra = self.next_extra(&mut rng, 32, self.config.avg_bid_byte_size);
        Bid {
            auction,
            bidder,
            price,
            channel,
            url,
            date_time: self.timestamp_of_adjusted(s.na),
            extra,
        }
    }

    /// A bid made up to `self.bid_fields` ([`BidFields`]): [`NexmarkGenerator::make_bid`]'s
    /// draws in its order, stopped after the last field made. (Apart from `make_bid`: a
    /// branch on the fields in it cost the whole bids 4 %, typed q0 and q5.)
    fn make_part_of_bid(&self, s: &Slot) -> Bid {
        let upto = self.bid_fields;
        let mut bid = Bid {
            auction: 0,
            bidder: 0,
            price: 0,
            channel: CompactString::default(),
            url: CompactString::default(),
            date_time: self.timestamp_of_adjusted(s.na),
            extra: CompactString::default(),
        };
        let mut rng = self.rng(s);
        if upto >= BidFields::Auction {
            bid.auction = self.draw_auction(s, &mut rng);
        }
        if upto >= BidFields::Bidder {
            bid.bidder = self.draw_bidder(s, &mut rng);
        }
        if upto >= BidFields::Price {
            bid.price = next_price(self.tables, &mut rng);
        }
        if upto >= BidFields::ChannelAndUrl {
            (bid.channel, bid.url) = self.draw_channel_and_url(&mut rng);
        }
        bid
    }

    /// A bid's auction: a hot one, or one of the recent ones.
    #[inline(always)]
    fn draw_auction(&self, s: &Slot, rng: &mut EventRng) -> i64 {
        let last_auction = self.last_auction(s.epoch, s.rem);
        let auction = if rng.hot(self.config.hot_auction_ratio) {
            last_auction / HOT_BLOCK * HOT_BLOCK
        } else {
            self.random_auction(last_auction, rng)
        };
        auction + FIRST_AUCTION_ID
    }

    /// A bid's bidder: a hot person, or one of the recent ones.
    #[inline(always)]
    fn draw_bidder(&self, s: &Slot, rng: &mut EventRng) -> i64 {
        let last_person = self.last_person(s.epoch, s.rem);
        let bidder = if rng.hot(self.config.hot_bidders_ratio) {
            last_person / HOT_BLOCK * HOT_BLOCK + 1
        } else {
            self.random_person(last_person, rng)
        };
        // One offset, not nexmark/nexmark's two (nexmark/nexmark#30).
        bidder + FIRST_PERSON_ID
    }

    /// A bid's channel and its url: a hot one, or one of the table's.
    #[inline(always)]
    fn draw_channel_and_url(&self, rng: &mut EventRng) -> (CompactString, CompactString) {
        let t = self.tables;
        if rng.hot(self.config.hot_channels_ratio) {
            let i = rng.below(t.hot_channels.len() as u64) as usize;
            (t.hot_channels[i].clone(), t.hot_urls[i].clone())
        } else {
            let (channel, url) = &t.channels[rng.below(CHANNELS_NUMBER as u64) as usize];
            (channel.clone(), url.clone())
        }
    }

    /// `nextAuctionLengthMs` (§6): uniform on `[1, 2·horizon]`, where the horizon is the
    /// event time until ~`num_in_flight_auctions` more auctions have been created.
    #[inline]
    fn auction_length_ms(&self, na: u64, date_time: Timestamp, rng: &mut EventRng) -> i64 {
        let future = self.timestamp_of_adjusted(na.saturating_add(self.events_for_auctions));
        let horizon = (future.0 - date_time.0).max(0) as u64;
        1 + rng.below(horizon.saturating_mul(2).max(1)) as i64
    }

    /// `randString(max)` (§5): length `3 + int(max - 3)` of characters that are `' '` with
    /// probability 1/13, else `a..=z`, then trimmed — as a slice of the random table.
    #[inline]
    fn rand_string(&self, rng: &mut EventRng, max: u64) -> &'static str {
        let len = 3 + rng.below(max - 3) as usize;
        let at = rng.below((TABLE_LEN - len + 1) as u64) as usize;
        self.tables.rand_chars[at..at + len].trim_matches(' ')
    }

    /// `nextExtra(current, avg)` (§5): `""` when already over the average, else a string of
    /// `a..=z` of uniform length in `[0.8·d, 1.2·d)`, `d = avg - current`.
    #[inline]
    fn next_extra(&self, rng: &mut EventRng, current: u64, avg: u64) -> CompactString {
        if current > avg {
            return CompactString::default();
        }
        let d = avg - current;
        let delta = (2 * d + 5) / 10; // Java Math.round(0.2 * d)
        let len = (d - delta + if delta == 0 { 0 } else { rng.below(2 * delta) }) as usize;
        let at = rng.below((TABLE_LEN - len + 1) as u64) as usize;
        static_str(&self.tables.exact_chars[at..at + len])
    }
}

/// `nextPrice()` (§5): `round(10^(6·u) · 100)` cents, log-uniform on `[100, 10^8]`.
///
/// `10^(6u) = 2^x` with `x = 6u·log2(10)`, computed as `2^floor(x)` (exponent bits) ×
/// `2^(j/1024)` (table) × `e^r` (cubic, `r < ln2/1024`): relative error below 1e-13, so the
/// result differs from `exp`'s by at most a rounding tie, at a fraction of its cost.
#[inline]
fn next_price(t: &Tables, rng: &mut EventRng) -> i64 {
    const X_SCALE: f64 = 6.0 * std::f64::consts::LOG2_10 * POW2_STEPS as f64;
    let scaled = rng.next_f64() * X_SCALE; // [0, 20_409)
    let j = scaled as u64;
    let r = (scaled - j as f64) * (std::f64::consts::LN_2 / POW2_STEPS as f64);
    let whole = f64::from_bits((1023 + (j >> POW2_BITS)) << 52);
    let e_r = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0)));
    let pow10 = whole * t.pow2_frac[(j & (POW2_STEPS - 1)) as usize] * e_r;
    (pow10 * 100.0 + 0.5) as i64
}

/// `x` (< 10^16) as `dddd dddd dddd dddd`.
#[inline]
fn credit_card(mut x: u64) -> CompactString {
    let mut buf = *b"0000 0000 0000 0000";
    for group in (0..4).rev() {
        let mut g = x % 10_000;
        x /= 10_000;
        for i in (0..4).rev() {
            buf[group * 5 + i] = b'0' + (g % 10) as u8;
            g /= 10;
        }
    }
    CompactString::from_utf8(buf).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen(f: impl FnOnce(&mut GeneratorConfig)) -> NexmarkGenerator {
        let mut c = GeneratorConfig::default();
        f(&mut c);
        NexmarkGenerator::new(c).unwrap()
    }

    proptest::proptest! {
        /// A bid made up to a field is the whole bid up to it (the same draws in the same
        /// order), its later fields empty; the whole bids are unchanged by the setting.
        #[test]
        fn a_bid_made_up_to_a_field_is_the_whole_bid_up_to_it(n in 0u64..2_000_000, upto in 0usize..6) {
            let fields = [
                BidFields::DateTime,
                BidFields::Auction,
                BidFields::Bidder,
                BidFields::Price,
                BidFields::ChannelAndUrl,
                BidFields::All,
            ][upto];
            let whole = gen(|_| {});
            let part = gen(|_| {}).making_bids_up_to(fields);
            proptest::prop_assert_eq!(part.bid(n), whole.bid(n));
            proptest::prop_assert_eq!(part.part_of_bid(n).is_some(), whole.bid(n).is_some());
            let (Some(b), Some(p)) = (whole.bid(n), part.part_of_bid(n)) else {
                return Ok(());
            };
            let kept = |f: BidFields| fields >= f;
            proptest::prop_assert_eq!(p.date_time, b.date_time);
            proptest::prop_assert_eq!(p.auction, if kept(BidFields::Auction) { b.auction } else { 0 });
            proptest::prop_assert_eq!(p.bidder, if kept(BidFields::Bidder) { b.bidder } else { 0 });
            proptest::prop_assert_eq!(p.price, if kept(BidFields::Price) { b.price } else { 0 });
            let empty = CompactString::default();
            let channel = if kept(BidFields::ChannelAndUrl) { &b.channel } else { &empty };
            let url = if kept(BidFields::ChannelAndUrl) { &b.url } else { &empty };
            proptest::prop_assert_eq!(&p.channel, channel);
            proptest::prop_assert_eq!(&p.url, url);
            proptest::prop_assert_eq!(&p.extra, if kept(BidFields::All) { &b.extra } else { &empty });
        }
    }

    proptest::proptest! {
        /// An auction made up to a field is the whole auction up to it, its later fields
        /// empty; the whole auctions are unchanged by the setting.
        #[test]
        fn an_auction_made_up_to_a_field_is_the_whole_auction_up_to_it(n in 0u64..2_000_000, upto in 0usize..6) {
            let fields = [
                AuctionFields::IdAndDateTime,
                AuctionFields::Seller,
                AuctionFields::Category,
                AuctionFields::InitialBid,
                AuctionFields::Expires,
                AuctionFields::All,
            ][upto];
            let whole = gen(|_| {});
            let part = gen(|_| {}).making_auctions_up_to(fields);
            proptest::prop_assert_eq!(part.auction(n), whole.auction(n));
            proptest::prop_assert_eq!(part.part_of_auction(n).is_some(), whole.auction(n).is_some());
            let (Some(a), Some(p)) = (whole.auction(n), part.part_of_auction(n)) else {
                return Ok(());
            };
            let kept = |f: AuctionFields| fields >= f;
            proptest::prop_assert_eq!((p.id, p.date_time), (a.id, a.date_time));
            proptest::prop_assert_eq!(p.seller, if kept(AuctionFields::Seller) { a.seller } else { 0 });
            proptest::prop_assert_eq!(p.category, if kept(AuctionFields::Category) { a.category } else { 0 });
            proptest::prop_assert_eq!(p.initial_bid, if kept(AuctionFields::InitialBid) { a.initial_bid } else { 0 });
            proptest::prop_assert_eq!(p.expires, if kept(AuctionFields::Expires) { a.expires } else { Timestamp(0) });
            let all = kept(AuctionFields::All);
            proptest::prop_assert_eq!(p.reserve, if all { a.reserve } else { 0 });
            let empty = CompactString::default();
            proptest::prop_assert_eq!(&p.item_name, if all { &a.item_name } else { &empty });
            proptest::prop_assert_eq!(&p.description, if all { &a.description } else { &empty });
            proptest::prop_assert_eq!(&p.extra, if all { &a.extra } else { &empty });
        }
    }

    #[test]
    fn last_ids_match_spec_examples() {
        let g = gen(|_| {});
        // Defaults: lastBase0PersonId(e) = e / 50.
        for e in [0, 1, 49, 50, 99, 100, 12_345] {
            assert_eq!(g.last_base0_person_id(e), (e / 50) as i64);
        }
        // Auction slot r in 1..=3 gets 3·(e/50) + r - 1.
        assert_eq!(g.last_base0_auction_id(1), 0);
        assert_eq!(g.last_base0_auction_id(3), 2);
        assert_eq!(g.last_base0_auction_id(51), 3);
        assert_eq!(g.last_base0_auction_id(153), 3 * 3 + 2);
        // Bid slots: the last auction of this epoch; person slot: of the previous epoch.
        assert_eq!(g.last_base0_auction_id(4), 2);
        assert_eq!(g.last_base0_auction_id(49), 2);
        assert_eq!(g.last_base0_auction_id(50), 2);
        assert_eq!(g.last_base0_auction_id(100), 5);
        assert_eq!(g.last_base0_auction_id(0), -1);
    }

    #[test]
    fn last_ids_with_other_proportions() {
        // P = 2, A = 3, B = 5 (T = 10): e = 27 → epoch 2, off 7 (bid slot).
        let g = gen(|c| {
            c.person_proportion = 2;
            c.auction_proportion = 3;
            c.bid_proportion = 5;
        });
        assert_eq!(g.last_base0_person_id(27), 2 * 2 + 1);
        assert_eq!(g.last_base0_auction_id(27), 2 * 3 + 2);
        // e = 21 → off 1 (person slot): person 2·2 + 1, auction of the previous epoch 1·3 + 2.
        assert_eq!(g.last_base0_person_id(21), 5);
        assert_eq!(g.last_base0_auction_id(21), 5);
        // e = 23 → off 3 (second auction slot): auction 2·3 + 1.
        assert_eq!(g.last_base0_auction_id(23), 7);
        assert_eq!(g.kind_of_event_id(21), EventKind::Person);
        assert_eq!(g.kind_of_event_id(23), EventKind::Auction);
        assert_eq!(g.kind_of_event_id(27), EventKind::Bid);
    }

    #[test]
    fn random_picks_stay_in_their_windows() {
        let g = gen(|_| {});
        let mut rng = EventRng::from_state(9);
        // Event 500_004: last person 10_000, so 10_001 exist → [9_001, 10_011).
        for _ in 0..10_000 {
            let p = g.next_base0_person_id(500_004, &mut rng);
            assert!((9_001..10_011).contains(&p), "{p}");
            let a = g.next_base0_auction_id(500_004, &mut rng);
            // last auction 30_002: [29_902, 30_013).
            assert!((29_902..30_013).contains(&a), "{a}");
        }
        // Early on, everyone who exists (plus the lead) is active.
        for _ in 0..1000 {
            assert!((0..11).contains(&g.next_base0_person_id(10, &mut rng)));
            assert!((0..13).contains(&g.next_base0_auction_id(10, &mut rng)));
        }
    }

    #[test]
    fn out_of_order_permutes_within_groups() {
        let g = gen(|c| c.out_of_order_group_size = 50);
        for block in 0..5u64 {
            let mut adjusted: Vec<u64> = (block * 50..block * 50 + 50)
                .map(|n| g.adjusted_event_number(n))
                .collect();
            assert_ne!(adjusted, (block * 50..block * 50 + 50).collect::<Vec<_>>());
            adjusted.sort();
            assert_eq!(adjusted, (block * 50..block * 50 + 50).collect::<Vec<_>>());
        }
        // (n / G)·G + (n·953) mod G by hand: n = 51 → 50 + 48_603 mod 50 = 53.
        assert_eq!(g.adjusted_event_number(51), 53);
    }

    #[test]
    fn timestamps_follow_the_rate_exactly() {
        let g = gen(|c| c.first_event_rate = 3);
        let ms: Vec<i64> = (0..7).map(|n| g.timestamp(n).0 - BASE).collect();
        const BASE: i64 = crate::config::BEAM_BASE_TIME_MS;
        assert_eq!(ms, [0, 333, 666, 1000, 1333, 1666, 2000]);
        let g = gen(|c| c.first_event_rate = 10_000_000);
        assert_eq!(g.timestamp(99_999_999).0 - BASE, 9_999);
        // Huge event numbers do not overflow.
        assert!(g.timestamp(u64::MAX).0 > BASE);
    }

    #[test]
    fn auction_lengths_follow_the_horizon() {
        // 10,000 events/s: horizon = 1666 events = 166.6 ms → lengths in [1, ~334].
        let g = gen(|_| {});
        let mut max = 0;
        let mut sum = 0;
        let mut count = 0;
        for n in 0..200_000 {
            if let Some(a) = g.auction(n) {
                let len = a.expires.0 - a.date_time.0;
                assert!((1..=334).contains(&len), "{len}");
                max = max.max(len);
                sum += len;
                count += 1;
            }
        }
        assert!(max > 300);
        let mean = sum as f64 / count as f64;
        assert!((mean - 167.0).abs() < 5.0, "{mean}");
    }

    #[test]
    fn value_ranges() {
        let g = gen(|_| {});
        for n in 0..50_000 {
            match g.event(n) {
                NexmarkEvent::Person(p) => {
                    assert_eq!(p.credit_card.len(), 19);
                    assert!(p.email_address.ends_with(".com"));
                    assert!(p.extra.len() <= 200);
                }
                NexmarkEvent::Auction(a) => {
                    assert!((10..=14).contains(&a.category));
                    assert!(a.item_name.len() <= 19);
                    assert!(a.description.len() <= 99);
                    assert!(a.reserve >= a.initial_bid + 100);
                    assert!((100..=100_000_000).contains(&a.initial_bid));
                }
                NexmarkEvent::Bid(b) => {
                    assert!((54..=81).contains(&b.extra.len()), "{}", b.extra.len());
                    assert!(b.extra.bytes().all(|c| c.is_ascii_lowercase()));
                    assert!((100..=100_000_000).contains(&b.price));
                }
            }
        }
    }

    #[test]
    fn fast_price_matches_the_formula() {
        let t = tables();
        let mut a = EventRng::from_state(11);
        let mut b = a.clone();
        let mut differ = 0;
        for _ in 0..1_000_000 {
            let fast = next_price(t, &mut a);
            let u = b.next_f64();
            let exact = (10f64.powf(6.0 * u) * 100.0).round() as i64;
            assert!((fast - exact).abs() <= 1, "{fast} vs {exact}");
            differ += (fast != exact) as u32;
        }
        assert!(differ < 10, "{differ}");
        // The extremes.
        assert_eq!(next_price(t, &mut EventRng::from_state(0)), {
            let u = EventRng::from_state(0).next_f64();
            (10f64.powf(6.0 * u) * 100.0).round() as i64
        });
    }

    #[test]
    fn price_deciles() {
        let g = gen(|_| {});
        let prices: Vec<i64> = (0..100_000)
            .filter_map(|n| g.bid(n))
            .map(|b| b.price)
            .collect();
        let low = prices.iter().filter(|&&p| p < 10_000).count() as f64 / prices.len() as f64;
        let mid = prices
            .iter()
            .filter(|&&p| (10_000..1_000_000).contains(&p))
            .count() as f64
            / prices.len() as f64;
        assert!((low - 1.0 / 3.0).abs() < 0.01, "{low}");
        assert!((mid - 1.0 / 3.0).abs() < 0.01, "{mid}");
    }

    #[test]
    fn credit_card_format() {
        assert_eq!(credit_card(0), "0000 0000 0000 0000");
        assert_eq!(credit_card(1_234_000_056_789_999), "1234 0000 5678 9999");
        assert_eq!(credit_card(123_400_005_678), "0000 1234 0000 5678");
        assert_eq!(credit_card(9_999_999_999_999_999), "9999 9999 9999 9999");
    }

    #[test]
    fn typed_accessors_agree_with_event() {
        let g = gen(|c| c.out_of_order_group_size = 7);
        for n in 0..500 {
            match g.event(n) {
                NexmarkEvent::Person(p) => assert_eq!(g.person(n), Some(p)),
                NexmarkEvent::Auction(a) => assert_eq!(g.auction(n), Some(a)),
                NexmarkEvent::Bid(b) => {
                    assert_eq!(g.bid(n), Some(b));
                    assert_eq!(g.person(n), None);
                }
            }
        }
    }
}
