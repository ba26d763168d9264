//! [`GeneratorConfig`]: every knob of the Nexmark generator, with reference/generator-spec.md's defaults.
//!
//! Defaults are Beam's (reference/generator-spec.md §4 "Defaults that matter"): 1/3/46 proportions, 10,000 events
//! per second of event time, 1,000 active people, 100 in-flight auctions, hot ratios 2/4/4,
//! average sizes 200/500/100 bytes, no reordering, and a **fixed** event-time base
//! (2015-07-15T00:00:00Z) so that runs are reproducible (reference/pitfalls.md #30).

use serde::{Deserialize, Serialize};
use std::time::Duration;
use thiserror::Error;

/// Beam's `BASE_TIME`: 2015-07-15T00:00:00.000Z, in milliseconds since the epoch.
pub const BEAM_BASE_TIME_MS: i64 = 1_436_918_400_000;

/// Largest average size accepted: `extra` strings are cut from a 64 KiB table, and the
/// longest is 1.2 × the average.
pub const MAX_AVG_BYTE_SIZE: u64 = 50_000;

/// An invalid [`GeneratorConfig`]: which setting, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("nexmark generator: `{field}` {reason}")]
pub struct ConfigError {
    /// The offending setting.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// How the Nexmark generator makes events (reference/generator-spec.md §2–§7).
///
/// The stream is one logical generator (Beam's with `numEventGenerators = 1`): event number
/// `n` always becomes the same event, whichever parallel reader makes it. Rates are therefore
/// the overall rate of the whole stream.
///
/// ```
/// use streamcore_nexmark::GeneratorConfig;
/// let c: GeneratorConfig = serde_json::from_str(r#"{"events": 1000, "seed": 7}"#).unwrap();
/// assert_eq!(c.first_event_rate, 10_000);
/// c.validate().unwrap();
/// assert!(serde_json::from_str::<GeneratorConfig>(r#"{"evnts": 1}"#).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneratorConfig {
    /// Read the events from this JSON-lines file (the nested layout of [`crate::json`], as
    /// written by `streamcore nexmark --generate`) instead of generating them. Its watermark is
    /// Flink's: the largest `dateTime` seen minus 4 s.
    #[serde(skip)]
    pub input: Option<String>,
    /// Total number of events; `None` for an unbounded stream.
    pub events: Option<u64>,
    /// Event-time rate: events per second of event time, over the whole stream. Event number
    /// `n` gets the timestamp `base_time_ms + floor(n · 1000 / first_event_rate)` (reference/generator-spec.md §4;
    /// the inter-event delay is `1e6 / first_event_rate` µs, exact, without Beam's rounding to
    /// whole microseconds). Only a constant rate is supported (as in nexmark/nexmark).
    pub first_event_rate: u64,
    /// Emit events in wall-clock time at the event-time rate (Beam's `isRateLimited`, Flink's
    /// `max-emit-speed = false`); otherwise as fast as possible.
    pub rate_limited: bool,
    /// Out-of-order group size `G` (reference/generator-spec.md §4): events are permuted within blocks of `G`
    /// event numbers by `(n / G)·G + (n·953) mod G`. 1 = in order. Must not be a multiple
    /// of 953 (the permutation would not be one). As in Beam, when a bounded stream ends
    /// inside a group, that last partial group's event ids are taken from the whole group.
    pub out_of_order_group_size: u64,
    /// Seed of every event's randomness (combined with the event id).
    pub seed: u64,
    /// Event id of event number 0 (Beam: 0, so event 0 is person 1000; nexmark/nexmark
    /// starts at 2).
    pub first_event_id: u64,
    /// Event time of event number 0, ms since the epoch. Fixed by default for reproducible
    /// runs; set it to the wall clock for Flink-like behaviour.
    pub base_time_ms: i64,
    /// Persons per `person + auction + bid` events.
    pub person_proportion: u64,
    /// Auctions per `person + auction + bid` events.
    pub auction_proportion: u64,
    /// Bids per `person + auction + bid` events.
    pub bid_proportion: u64,
    /// Random sellers and bidders are drawn from the last this-many people (plus 10 not yet
    /// created).
    pub num_active_people: u64,
    /// Random bids go to the last this-many auctions (plus 10 not yet created); also sets the
    /// auction lengths (reference/generator-spec.md §6).
    pub num_in_flight_auctions: u64,
    /// A bid goes to the hot auction with probability `1 - 1/hot_auction_ratio`.
    pub hot_auction_ratio: u64,
    /// An auction's seller is the hot seller with probability `1 - 1/hot_sellers_ratio`.
    pub hot_sellers_ratio: u64,
    /// A bid's bidder is the hot bidder with probability `1 - 1/hot_bidders_ratio`.
    pub hot_bidders_ratio: u64,
    /// A bid uses one of the 4 hot channels with probability `1 - 1/hot_channels_ratio`
    /// (nexmark/nexmark's `HOT_CHANNELS_RATIO`).
    pub hot_channels_ratio: u64,
    /// Average size of a person, bytes (pads `extra`).
    pub avg_person_byte_size: u64,
    /// Average size of an auction, bytes (pads `extra`).
    pub avg_auction_byte_size: u64,
    /// Average size of a bid, bytes (pads `extra`).
    pub avg_bid_byte_size: u64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            input: None,
            events: Some(100_000),
            first_event_rate: 10_000,
            rate_limited: false,
            out_of_order_group_size: 1,
            seed: 0,
            first_event_id: 0,
            base_time_ms: BEAM_BASE_TIME_MS,
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
            num_active_people: 1000,
            num_in_flight_auctions: 100,
            hot_auction_ratio: 2,
            hot_sellers_ratio: 4,
            hot_bidders_ratio: 4,
            hot_channels_ratio: 2,
            avg_person_byte_size: 200,
            avg_auction_byte_size: 500,
            avg_bid_byte_size: 100,
        }
    }
}

impl GeneratorConfig {
    /// The total proportion `T = P + A + B`: the length of one person/auction/bid epoch.
    pub fn total_proportion(&self) -> u64 {
        self.person_proportion + self.auction_proportion + self.bid_proportion
    }

    /// The inter-event delay of the whole stream, in microseconds (`1e6 / rate`).
    pub fn inter_event_delay_us(&self) -> f64 {
        1e6 / self.first_event_rate as f64
    }

    /// How far behind the largest timestamp seen so far an event can be, in any reader:
    /// the event-time span of one out-of-order group, `ceil((G - 1) · 1000 / rate)` ms.
    /// Zero when `G = 1`. Use it for `WatermarkStrategy::bounded_out_of_orderness`.
    pub fn max_out_of_orderness(&self) -> Duration {
        let g = self.out_of_order_group_size.max(1) as u128;
        let ms = ((g - 1) * 1000).div_ceil(self.first_event_rate.max(1) as u128);
        Duration::from_millis(ms.min(u64::MAX as u128) as u64)
    }

    /// Checks every setting; the generator refuses a configuration that fails.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn err(field: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError {
                field,
                reason: reason.into(),
            })
        }
        if self.first_event_rate == 0 {
            return err("first_event_rate", "must be at least 1 event per second");
        }
        let g = self.out_of_order_group_size;
        if g == 0 {
            return err("out_of_order_group_size", "must be at least 1");
        }
        if g % 953 == 0 {
            return err(
                "out_of_order_group_size",
                "must not be a multiple of 953 (events would repeat)",
            );
        }
        if g > 1 << 40 {
            return err("out_of_order_group_size", "must be at most 2^40");
        }
        for (field, v) in [
            ("person_proportion", self.person_proportion),
            ("auction_proportion", self.auction_proportion),
            ("bid_proportion", self.bid_proportion),
        ] {
            // Zero breaks SPEC's id arithmetic (ids of people/auctions that never exist,
            // division by the auction proportion).
            if v == 0 {
                return err(field, "must be at least 1");
            }
            if v > 1 << 20 {
                return err(field, "must be at most 2^20");
            }
        }
        for (field, v) in [
            ("hot_auction_ratio", self.hot_auction_ratio),
            ("hot_sellers_ratio", self.hot_sellers_ratio),
            ("hot_bidders_ratio", self.hot_bidders_ratio),
            ("hot_channels_ratio", self.hot_channels_ratio),
            ("num_active_people", self.num_active_people),
        ] {
            if v == 0 {
                return err(field, "must be at least 1");
            }
        }
        if self.num_active_people > 1 << 40 {
            return err("num_active_people", "must be at most 2^40");
        }
        if self.num_in_flight_auctions > 1 << 40 {
            return err("num_in_flight_auctions", "must be at most 2^40");
        }
        for (field, v) in [
            ("avg_person_byte_size", self.avg_person_byte_size),
            ("avg_auction_byte_size", self.avg_auction_byte_size),
            ("avg_bid_byte_size", self.avg_bid_byte_size),
        ] {
            if v > MAX_AVG_BYTE_SIZE {
                return err(field, format!("must be at most {MAX_AVG_BYTE_SIZE}"));
            }
        }
        if self.first_event_id > 1 << 62 {
            return err("first_event_id", "must be at most 2^62");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_beams() {
        let c = GeneratorConfig::default();
        c.validate().unwrap();
        assert_eq!(c.total_proportion(), 50);
        assert_eq!(c.inter_event_delay_us(), 100.0);
        assert_eq!(c.max_out_of_orderness(), Duration::ZERO);
    }

    #[test]
    fn invalid_settings_are_named() {
        let bad = |f: fn(&mut GeneratorConfig)| {
            let mut c = GeneratorConfig::default();
            f(&mut c);
            c.validate().unwrap_err().field
        };
        assert_eq!(bad(|c| c.first_event_rate = 0), "first_event_rate");
        assert_eq!(
            bad(|c| c.out_of_order_group_size = 0),
            "out_of_order_group_size"
        );
        assert_eq!(
            bad(|c| c.out_of_order_group_size = 1906),
            "out_of_order_group_size"
        );
        assert_eq!(bad(|c| c.auction_proportion = 0), "auction_proportion");
        assert_eq!(bad(|c| c.hot_bidders_ratio = 0), "hot_bidders_ratio");
        assert_eq!(bad(|c| c.avg_bid_byte_size = 1 << 30), "avg_bid_byte_size");
    }

    #[test]
    fn group_span_bounds_out_of_orderness() {
        let c = GeneratorConfig {
            out_of_order_group_size: 50,
            first_event_rate: 1000,
            ..Default::default()
        };
        assert_eq!(c.max_out_of_orderness(), Duration::from_millis(49));
        let c = GeneratorConfig {
            out_of_order_group_size: 50,
            first_event_rate: 3000,
            ..Default::default()
        };
        assert_eq!(c.max_out_of_orderness(), Duration::from_millis(17));
    }

    #[test]
    fn serde_round_trip_and_unknown_fields() {
        let c = GeneratorConfig {
            events: None,
            seed: 9,
            ..Default::default()
        };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<GeneratorConfig>(&text).unwrap(), c);
        let e = serde_json::from_str::<GeneratorConfig>(r#"{"rate": 5}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `rate`"), "{e}");
    }
}
