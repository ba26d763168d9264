//! q21 — Add channel id: bids from a hot channel get its number, others the `channel_id`
//! parameter of their URL; bids with neither are dropped.
//!
//! ```sql
//! SELECT auction, bidder, price, channel,
//!     CASE WHEN lower(channel) = 'apple' THEN '0' WHEN lower(channel) = 'google' THEN '1'
//!          WHEN lower(channel) = 'facebook' THEN '2' WHEN lower(channel) = 'baidu' THEN '3'
//!          ELSE REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2) END AS channel_id
//! FROM bid
//! where REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2) is not null or
//!       lower(channel) in ('apple', 'google', 'facebook', 'baidu');
//! ```
//!
//! A `flat_map` over `NexmarkSource<Bid>`. [`channel_id`] is the regular expression written
//! out by hand (no regex engine): the first `channel_id=` at the start of the URL or right
//! after a `&`, and the run of non-`&` characters after it (possibly empty, which is not
//! `NULL`). `lower` is ASCII lower-casing (channel names are ASCII). No deviation.

use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use compact_str::CompactString;
use serde::Serialize;
use streamcore::{Job, Stream};

/// A row of `nexmark_q21`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Q21Row {
    /// Auction id.
    pub auction: i64,
    /// Bidder id.
    pub bidder: i64,
    /// Price, cents.
    pub price: i64,
    /// Channel.
    pub channel: CompactString,
    /// `0`–`3` for the hot channels, else the URL's `channel_id`.
    pub channel_id: CompactString,
}

impl QueryRow for Q21Row {
    const COLUMNS: &'static [&'static str] =
        &["auction", "bidder", "price", "channel", "channel_id"];
}

/// `REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2)`.
pub fn channel_id(url: &str) -> Option<&str> {
    const NEEDLE: &str = "channel_id=";
    let mut from = 0;
    while let Some(i) = url[from..].find(NEEDLE) {
        let at = from + i;
        if at == 0 || url.as_bytes()[at - 1] == b'&' {
            let rest = &url[at + NEEDLE.len()..];
            return Some(&rest[..rest.find('&').unwrap_or(rest.len())]);
        }
        from = at + 1;
    }
    None
}

/// The row of one bid, if it has a channel id.
pub fn q21_row(b: Bid) -> Option<Q21Row> {
    let hot = match b.channel.to_ascii_lowercase().as_str() {
        "apple" => Some("0"),
        "google" => Some("1"),
        "facebook" => Some("2"),
        "baidu" => Some("3"),
        _ => None,
    };
    let id = hot.or_else(|| channel_id(&b.url))?;
    Some(Q21Row {
        auction: b.auction,
        bidder: b.bidder,
        price: b.price,
        channel_id: id.into(),
        channel: b.channel,
    })
}

/// Builds q21 into `job`.
pub fn q21(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Q21Row>, ConfigError> {
    Ok(nexmark_source::<Bid>(job, "bids", config)?.flat_map(q21_row))
}

#[cfg(test)]
mod tests {
    use super::channel_id;

    #[test]
    fn channel_id_follows_the_regex() {
        assert_eq!(channel_id("channel_id=7&x=1"), Some("7"));
        assert_eq!(channel_id("https://a/b?query=1&channel_id=42"), Some("42"));
        assert_eq!(
            channel_id("https://a/b?xchannel_id=1&channel_id=2"),
            Some("2")
        );
        assert_eq!(channel_id("https://a/b?q=1&channel_id="), Some(""));
        assert_eq!(channel_id("https://a/b?xchannel_id=1"), None);
        assert_eq!(channel_id(""), None);
    }
}
