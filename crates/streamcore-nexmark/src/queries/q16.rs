//! q16 — Channel statistics report: q15's counts per channel and day, plus the latest
//! `HH:mm` of the group's bids. An updating query.
//!
//! ```sql
//! SELECT channel, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd') as `day`,
//!     max(DATE_FORMAT(`dateTime`, 'HH:mm')) as `minute`,
//!     count(*) AS total_bids, ... (the twelve counts of q15)
//! FROM bid GROUP BY channel, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd');
//! ```
//!
//! A composition of the library's changelog operators over `NexmarkSource<Bid>`:
//!
//! ```text
//! bids.map(|b| ((channel, day), minute of the day, bidder, auction, price))
//!     .key_by((channel, day))
//!     .group_aggregate((MaxOf(minute), bid_counts()))
//!     .map(|c| c.map(Q16Row::of))
//! ```
//!
//! `bid_counts` are the twelve counts of [`mod@super::q15`] (`CountRows` with `.filter(..)` and
//! `CountDistinctOf` with `.in_slots(..)` per price range); `minute` is `MaxOf` the minute of the day, printed as
//! `HH:mm` — the same as the string maximum of `HH:mm`, the strings being zero-padded.
//! `group_aggregate` emits each group's row as it changes: `+I` for its first bid, then
//! `-U`/`+U`. No deviation.

use super::q15::{bid_counts, Counts, CountsOut};
use super::q17::{DayText, MS_PER_DAY};
use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use compact_str::CompactString;
use serde::Serialize;
use streamcore::changelog::{Change, MaxOf};
use streamcore::{Job, Stream};

/// A row of `nexmark_q16`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Q16Row {
    /// Channel.
    pub channel: CompactString,
    /// `yyyy-MM-dd`.
    pub day: CompactString,
    /// The latest `HH:mm` of the group's bids.
    pub minute: CompactString,
    /// Bids.
    pub total_bids: i64,
    /// Bids with price < 10,000.
    pub rank1_bids: i64,
    /// Bids with 10,000 <= price < 1,000,000.
    pub rank2_bids: i64,
    /// Bids with price >= 1,000,000.
    pub rank3_bids: i64,
    /// Distinct bidders.
    pub total_bidders: i64,
    /// Distinct bidders of rank-1 bids.
    pub rank1_bidders: i64,
    /// Distinct bidders of rank-2 bids.
    pub rank2_bidders: i64,
    /// Distinct bidders of rank-3 bids.
    pub rank3_bidders: i64,
    /// Distinct auctions.
    pub total_auctions: i64,
    /// Distinct auctions of rank-1 bids.
    pub rank1_auctions: i64,
    /// Distinct auctions of rank-2 bids.
    pub rank2_auctions: i64,
    /// Distinct auctions of rank-3 bids.
    pub rank3_auctions: i64,
}

impl QueryRow for Q16Row {
    const COLUMNS: &'static [&'static str] = &[
        "channel",
        "day",
        "minute",
        "total_bids",
        "rank1_bids",
        "rank2_bids",
        "rank3_bids",
        "total_bidders",
        "rank1_bidders",
        "rank2_bidders",
        "rank3_bidders",
        "total_auctions",
        "rank1_auctions",
        "rank2_auctions",
        "rank3_auctions",
    ];
}

impl Q16Row {
    /// The row of a group.
    pub fn of(channel: CompactString, day: CompactString, minute: i64, c: Counts) -> Self {
        Q16Row {
            channel,
            day,
            minute: hh_mm(minute),
            total_bids: c.total_bids,
            rank1_bids: c.rank1_bids,
            rank2_bids: c.rank2_bids,
            rank3_bids: c.rank3_bids,
            total_bidders: c.total_bidders,
            rank1_bidders: c.rank1_bidders,
            rank2_bidders: c.rank2_bidders,
            rank3_bidders: c.rank3_bidders,
            total_auctions: c.total_auctions,
            rank1_auctions: c.rank1_auctions,
            rank2_auctions: c.rank2_auctions,
            rank3_auctions: c.rank3_auctions,
        }
    }
}

/// `HH:mm` of a minute of the day (`0..1440`), without the formatting machinery.
fn hh_mm(minute: i64) -> CompactString {
    let (h, m) = ((minute / 60) as u8, (minute % 60) as u8);
    let text = [
        b'0' + h / 10,
        b'0' + h % 10,
        b':',
        b'0' + m / 10,
        b'0' + m % 10,
    ];
    CompactString::from_utf8(text).expect("ASCII digits")
}

/// A group: channel and day number.
type Key = (CompactString, i64);

/// A bid as q16 aggregates it: `(group, minute of the day, bidder, auction, price)`.
type GroupBid = (Key, i64, i64, i64, i64);

/// Builds q16 into `job`.
pub fn q16(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Change<Q16Row>>, ConfigError> {
    let mut days = DayText::default();
    Ok(nexmark_source::<Bid>(job, "bids", config)?
        .map(|b| {
            let t = b.date_time.0;
            let minute = t.rem_euclid(MS_PER_DAY) / 60_000;
            let key: Key = (b.channel, t.div_euclid(MS_PER_DAY));
            (key, minute, b.bidder, b.auction, b.price)
        })
        .key_by(|b| b.0.clone())
        .group_aggregate((
            MaxOf::new(|b: &GroupBid| b.1),
            bid_counts(|b: &GroupBid| b.2, |b: &GroupBid| b.3, |b: &GroupBid| b.4),
        ))
        .map(move |c| {
            c.map(
                |((channel, day), (minute, counts)): (Key, (Option<i64>, CountsOut))| {
                    // A group with a row has a bid: its minute is never NULL.
                    Q16Row::of(
                        channel,
                        days.of(day),
                        minute.unwrap_or_default(),
                        counts.into(),
                    )
                },
            )
        }))
}

#[cfg(test)]
mod tests {
    use super::hh_mm;

    #[test]
    fn minutes_print_as_hh_mm() {
        assert_eq!(hh_mm(0), "00:00");
        assert_eq!(hh_mm(605), "10:05");
        assert_eq!(hh_mm(1439), "23:59");
    }
}
