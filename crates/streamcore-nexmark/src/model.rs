//! The Nexmark records: [`Person`], [`Auction`], [`Bid`], and [`NexmarkEvent`], one of them.
//!
//! Field names and order follow the Flink benchmark's DDL (reference/queries.md §0); with serde they are
//! camelCase (`emailAddress`, `dateTime`, …) and `dateTime`/`expires` are the SQL text form
//! `YYYY-MM-DD HH:MM:SS.fff` (UTC), so `serde_json` and [`crate::json`] write the same objects.
//! A [`NexmarkEvent`] serializes to the nested layout
//! `{"event_type":2,"person":null,"auction":null,"bid":{…}}`.
//!
//! Strings are [`CompactString`]: up to 24 bytes inline (names, e-mails, cards, cities,
//! states, item names, channels), and the generator's longer strings (descriptions, URLs,
//! `extra`) point into process-wide static tables. So generating or cloning an event never
//! allocates, and one string is 24 bytes — the size of a `String`, smaller than nothing else
//! that can also own arbitrary parsed text. (`Arc<str>` would allocate per event.)

use compact_str::CompactString;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use streamcore::{EventTime, Timestamp};

/// A new person (event_type 0).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    /// Person id (≥ 1000).
    pub id: i64,
    /// First and last name.
    pub name: CompactString,
    /// E-mail address.
    pub email_address: CompactString,
    /// Credit card number, four space-separated groups of 4 digits.
    pub credit_card: CompactString,
    /// City.
    pub city: CompactString,
    /// US state code (upper case).
    pub state: CompactString,
    /// Event time.
    #[serde(with = "crate::json::serde_date_time")]
    pub date_time: Timestamp,
    /// Padding up to the average person size.
    pub extra: CompactString,
}

/// A new auction (event_type 1).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Auction {
    /// Auction id (≥ 1000).
    pub id: i64,
    /// Item name.
    pub item_name: CompactString,
    /// Item description.
    pub description: CompactString,
    /// Initial bid, cents.
    pub initial_bid: i64,
    /// Reserve price, cents (≥ initial bid).
    pub reserve: i64,
    /// Event time.
    #[serde(with = "crate::json::serde_date_time")]
    pub date_time: Timestamp,
    /// When the auction closes (after `date_time`).
    #[serde(with = "crate::json::serde_date_time")]
    pub expires: Timestamp,
    /// Person id of the seller.
    pub seller: i64,
    /// Category id, 10..=14.
    pub category: i64,
    /// Padding up to the average auction size.
    pub extra: CompactString,
}

/// A bid on an auction (event_type 2).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bid {
    /// Auction id.
    pub auction: i64,
    /// Person id of the bidder.
    pub bidder: i64,
    /// Price, cents.
    pub price: i64,
    /// Channel the bid came from (nexmark/nexmark; empty when read from Beam-style input).
    #[serde(default)]
    pub channel: CompactString,
    /// URL of the bid page (nexmark/nexmark; empty when read from Beam-style input).
    #[serde(default)]
    pub url: CompactString,
    /// Event time.
    #[serde(with = "crate::json::serde_date_time")]
    pub date_time: Timestamp,
    /// Padding up to the average bid size.
    pub extra: CompactString,
}

/// Which of the three records an event is; the value is the wire `event_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A [`Person`] (`event_type` 0).
    Person = 0,
    /// An [`Auction`] (`event_type` 1).
    Auction = 1,
    /// A [`Bid`] (`event_type` 2).
    Bid = 2,
}

impl EventKind {
    /// The wire `event_type`.
    pub fn event_type(self) -> u8 {
        self as u8
    }

    /// The kind with wire `event_type` `t`.
    pub fn from_event_type(t: i64) -> Option<Self> {
        match t {
            0 => Some(EventKind::Person),
            1 => Some(EventKind::Auction),
            2 => Some(EventKind::Bid),
            _ => None,
        }
    }
}

/// One Nexmark event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "WireEvent")]
pub enum NexmarkEvent {
    /// A new person.
    Person(Person),
    /// A new auction.
    Auction(Auction),
    /// A bid.
    Bid(Bid),
}

impl NexmarkEvent {
    /// Which record this is.
    pub fn kind(&self) -> EventKind {
        match self {
            NexmarkEvent::Person(_) => EventKind::Person,
            NexmarkEvent::Auction(_) => EventKind::Auction,
            NexmarkEvent::Bid(_) => EventKind::Bid,
        }
    }

    /// The person, if this is one.
    pub fn as_person(&self) -> Option<&Person> {
        match self {
            NexmarkEvent::Person(p) => Some(p),
            _ => None,
        }
    }

    /// The auction, if this is one.
    pub fn as_auction(&self) -> Option<&Auction> {
        match self {
            NexmarkEvent::Auction(a) => Some(a),
            _ => None,
        }
    }

    /// The bid, if this is one.
    pub fn as_bid(&self) -> Option<&Bid> {
        match self {
            NexmarkEvent::Bid(b) => Some(b),
            _ => None,
        }
    }
}

impl EventTime for Person {
    #[inline]
    fn event_time(&self) -> Timestamp {
        self.date_time
    }
}

impl EventTime for Auction {
    #[inline]
    fn event_time(&self) -> Timestamp {
        self.date_time
    }
}

impl EventTime for Bid {
    #[inline]
    fn event_time(&self) -> Timestamp {
        self.date_time
    }
}

/// The computed `dateTime` column of the Flink source table: the present record's time.
impl EventTime for NexmarkEvent {
    #[inline]
    fn event_time(&self) -> Timestamp {
        match self {
            NexmarkEvent::Person(p) => p.date_time,
            NexmarkEvent::Auction(a) => a.date_time,
            NexmarkEvent::Bid(b) => b.date_time,
        }
    }
}

/// The nested layout: `event_type` plus the three objects, two of them `null`.
impl Serialize for NexmarkEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("NexmarkEvent", 4)?;
        st.serialize_field("event_type", &self.kind().event_type())?;
        st.serialize_field("person", &self.as_person())?;
        st.serialize_field("auction", &self.as_auction())?;
        st.serialize_field("bid", &self.as_bid())?;
        st.end()
    }
}

/// The nested layout as read by serde; checked into a [`NexmarkEvent`].
#[derive(Deserialize)]
struct WireEvent {
    event_type: i64,
    person: Option<Person>,
    auction: Option<Auction>,
    bid: Option<Bid>,
}

impl TryFrom<WireEvent> for NexmarkEvent {
    type Error = String;

    fn try_from(w: WireEvent) -> Result<Self, String> {
        let kind = EventKind::from_event_type(w.event_type)
            .ok_or_else(|| format!("event_type {} is not 0, 1 or 2", w.event_type))?;
        let present = w.person.is_some() as u8 + w.auction.is_some() as u8 + w.bid.is_some() as u8;
        if present != 1 {
            return Err(format!(
                "exactly one of person/auction/bid must be non-null, found {present}"
            ));
        }
        match (kind, w.person, w.auction, w.bid) {
            (EventKind::Person, Some(p), _, _) => Ok(NexmarkEvent::Person(p)),
            (EventKind::Auction, _, Some(a), _) => Ok(NexmarkEvent::Auction(a)),
            (EventKind::Bid, _, _, Some(b)) => Ok(NexmarkEvent::Bid(b)),
            (kind, ..) => Err(format!(
                "event_type {} but its object is null",
                kind.event_type()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bid() -> Bid {
        Bid {
            auction: 1000,
            bidder: 1001,
            price: 12345,
            channel: "Google".into(),
            url: "https://www.nexmark.com/a/b/c/item.htm?query=1".into(),
            date_time: Timestamp(1_700_000_000_123),
            extra: "xyz".into(),
        }
    }

    #[test]
    fn serde_writes_the_nested_layout() {
        let e = NexmarkEvent::Bid(bid());
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(
            text,
            r#"{"event_type":2,"person":null,"auction":null,"bid":{"auction":1000,"bidder":1001,"price":12345,"channel":"Google","url":"https://www.nexmark.com/a/b/c/item.htm?query=1","dateTime":"2023-11-14 22:13:20.123","extra":"xyz"}}"#
        );
        assert_eq!(serde_json::from_str::<NexmarkEvent>(&text).unwrap(), e);
        assert_eq!(e.event_time(), Timestamp(1_700_000_000_123));
    }

    #[test]
    fn serde_rejects_inconsistent_events() {
        let no_object = r#"{"event_type":2,"person":null,"auction":null,"bid":null}"#;
        assert!(serde_json::from_str::<NexmarkEvent>(no_object).is_err());
        let text = serde_json::to_string(&NexmarkEvent::Bid(bid())).unwrap();
        let wrong_type = text.replace("\"event_type\":2", "\"event_type\":0");
        assert!(serde_json::from_str::<NexmarkEvent>(&wrong_type).is_err());
    }
}
