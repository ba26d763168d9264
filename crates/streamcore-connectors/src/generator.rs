//! The transaction generator of the design note: seeded, deterministic events
//! `{user_id, amount, transaction_id}`, bounded or unbounded, as fast as possible or at a rate.
//!
//! Event `i` depends only on the configuration and `i`, never on timing or parallelism: the
//! same configuration gives the same events at any parallelism.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use streamcore::source::Generator;
use streamcore::{Event, Fields, Timestamp, Value};

/// How the generator makes events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransactionGeneratorConfig {
    /// Total events; `None` for an unbounded stream.
    pub events: Option<u64>,
    /// Total events per second; `None` for as fast as possible.
    pub rate: Option<f64>,
    /// `None`: the design note's demo — `user_id = user_{i mod users}`,
    /// `amount = 50 + 25·(i mod 20)`. `Some(seed)`: users and amounts (1..=1000) drawn from a
    /// hash of `(seed, i)`.
    pub seed: Option<u64>,
    /// Number of distinct users.
    pub users: u64,
    /// Event time of event 0, in milliseconds since the epoch.
    pub start_ms: i64,
    /// Event time between consecutive events, in milliseconds.
    pub interval_ms: i64,
    /// Disorder: each event's time is moved back by a pseudo-random 0..=`disorder_ms`
    /// milliseconds, so events arrive up to that much out of order.
    pub disorder_ms: i64,
}

impl Default for TransactionGeneratorConfig {
    fn default() -> Self {
        TransactionGeneratorConfig {
            events: Some(20),
            rate: None,
            seed: None,
            users: 5,
            start_ms: 1_700_000_000_000,
            interval_ms: 50,
            disorder_ms: 0,
        }
    }
}

/// SplitMix64: a fast, well-mixed hash of a 64-bit counter.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `prefix` followed by the decimal `n`, without the formatting machinery (and, up to 24
/// bytes, without allocating).
fn numbered(prefix: &'static str, n: u64) -> CompactString {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n);
    let mut s = CompactString::with_capacity(prefix.len() + digits.len());
    s.push_str(prefix);
    s.push_str(digits);
    s
}

/// Makes transaction events from their index.
#[derive(Clone, Debug)]
pub struct TransactionGenerator {
    config: TransactionGeneratorConfig,
}

impl TransactionGenerator {
    /// A generator with `config`.
    pub fn new(config: TransactionGeneratorConfig) -> Self {
        TransactionGenerator { config }
    }

    /// Event number `i`.
    ///
    /// ```
    /// use streamcore_connectors::{TransactionGenerator, TransactionGeneratorConfig};
    /// let g = TransactionGenerator::new(TransactionGeneratorConfig::default());
    /// let e = g.event(3);
    /// assert_eq!(e.event_id, "event_3");
    /// assert_eq!(e.get_f64("amount"), Some(125.0));
    /// assert_eq!(e.get_str("user_id"), Some("user_3"));
    /// ```
    pub fn event(&self, i: u64) -> Event {
        let c = &self.config;
        let users = c.users.max(1);
        let (user, amount) = match c.seed {
            None => (i % users, 50 + 25 * (i % 20) as i64),
            Some(seed) => {
                let h = splitmix64(seed ^ splitmix64(i));
                ((h >> 32) % users, 1 + (h & 0xffff_ffff) as i64 % 1000)
            }
        };
        let user_id = numbered("user_", user);
        // Room for two more fields, so enrichment does not reallocate.
        let mut data = Fields::with_capacity(5);
        data.push_unchecked(
            CompactString::const_new("user_id"),
            Value::Str(user_id.clone()),
        );
        data.push_unchecked(CompactString::const_new("amount"), Value::Int(amount));
        data.push_unchecked(
            CompactString::const_new("transaction_id"),
            Value::Str(numbered("txn_", i)),
        );
        Event {
            event_id: numbered("event_", i),
            timestamp: Timestamp(c.start_ms + c.interval_ms * i as i64 - self.jitter(i)),
            event_type: CompactString::const_new("transaction"),
            data,
            partition_key: Some(user_id),
            metadata: Fields::new(),
            origin: None,
        }
    }

    /// How far event `i` is moved back in time (`0..=disorder_ms`).
    fn jitter(&self, i: u64) -> i64 {
        match self.config.disorder_ms {
            d if d > 0 => {
                (splitmix64(i ^ 0xd150_4de4 ^ self.config.seed.unwrap_or(0)) % (d as u64 + 1))
                    as i64
            }
            _ => 0,
        }
    }

    /// The streamcore source that emits these events.
    pub fn source(self) -> Generator<impl Fn(u64) -> Event + Clone + Send + 'static> {
        let events = self.config.events;
        let rate = self.config.rate;
        let mut source = Generator::new(move |i| self.event(i));
        if let Some(n) = events {
            source = source.bounded(n);
        }
        if let Some(r) = rate {
            source = source.rate(r);
        }
        source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_amounts_follow_the_design_note() {
        let g = TransactionGenerator::new(TransactionGeneratorConfig::default());
        let amounts: Vec<f64> = (0..20)
            .map(|i| g.event(i).get_f64("amount").unwrap())
            .collect();
        assert_eq!(amounts[0], 50.0);
        assert_eq!(amounts[19], 525.0);
        assert_eq!(amounts.iter().filter(|&&a| a > 100.0).count(), 17);
    }

    #[test]
    fn seeded_events_are_deterministic_and_seed_dependent() {
        let cfg = |seed| TransactionGeneratorConfig {
            seed: Some(seed),
            users: 100,
            ..Default::default()
        };
        let a = TransactionGenerator::new(cfg(7));
        let b = TransactionGenerator::new(cfg(7));
        let c = TransactionGenerator::new(cfg(8));
        let ev = |g: &TransactionGenerator| (0..100).map(|i| g.event(i)).collect::<Vec<_>>();
        assert_eq!(ev(&a), ev(&b));
        assert_ne!(ev(&a), ev(&c));
        assert!(ev(&a)
            .iter()
            .all(|e| (1.0..=1000.0).contains(&e.get_f64("amount").unwrap())));
    }

    #[test]
    fn disorder_stays_within_its_bound() {
        let g = TransactionGenerator::new(TransactionGeneratorConfig {
            disorder_ms: 200,
            ..Default::default()
        });
        let mut max_seen = i64::MIN;
        let mut behind = 0;
        for i in 0..10_000 {
            let t = g.event(i).timestamp.millis();
            assert!(
                t >= max_seen.saturating_sub(200),
                "event {i} is {} ms behind",
                max_seen - t
            );
            behind += (t < max_seen) as u32;
            max_seen = max_seen.max(t);
        }
        assert!(behind > 1000, "events do arrive out of order ({behind})");
    }

    #[test]
    fn json_form_is_the_documented_one() {
        let e = TransactionGenerator::new(TransactionGeneratorConfig::default()).event(1);
        assert_eq!(
            e.to_json(),
            r#"{"event_id":"event_1","timestamp":1700000000.05,"event_type":"transaction","data":{"user_id":"user_1","amount":75,"transaction_id":"txn_1"},"partition_key":"user_1","metadata":{}}"#
        );
    }
}
