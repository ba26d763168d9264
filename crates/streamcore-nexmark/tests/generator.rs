//! The Nexmark generator against reference/generator-spec.md: event pattern, ids, determinism across parallelism,
//! distributions, timestamps, and the JSON-lines layout.

use proptest::prelude::*;
use std::collections::HashSet;
use streamcore::{EventTime, Job, JobConfig, Timestamp};
use streamcore_nexmark::json::{format_date_time, parse_date_time, parse_event, to_json};
use streamcore_nexmark::{
    Auction, Bid, EventKind, GeneratorConfig, NexmarkEvent, NexmarkGenerator, NexmarkSource,
    Person, HOT_CHANNELS,
};

fn generator(f: impl FnOnce(&mut GeneratorConfig)) -> NexmarkGenerator {
    let mut c = GeneratorConfig::default();
    f(&mut c);
    NexmarkGenerator::new(c).unwrap()
}

#[test]
fn every_50_events_are_1_person_3_auctions_46_bids() {
    let g = generator(|_| {});
    for n in 0..1000u64 {
        let want = match n % 50 {
            0 => EventKind::Person,
            1..=3 => EventKind::Auction,
            _ => EventKind::Bid,
        };
        assert_eq!(g.event(n).kind(), want, "event {n}");
        assert_eq!(g.kind(n), want);
    }
}

#[test]
fn ids_follow_spec_examples() {
    // Beam's start: event 0 is person 1000, events 1-3 auctions 1000-1002, event 50 person 1001.
    let g = generator(|_| {});
    assert_eq!(g.event(0).as_person().unwrap().id, 1000);
    for (n, id) in [(1, 1000), (2, 1001), (3, 1002), (51, 1003), (53, 1005)] {
        assert_eq!(g.event(n).as_auction().unwrap().id, id, "event {n}");
    }
    assert_eq!(g.event(50).as_person().unwrap().id, 1001);
    assert_eq!(g.event(5_000).as_person().unwrap().id, 1100);
    // nexmark/nexmark's start: first event id 2 is auction 1001; person 1001 at event id 50.
    let flink = generator(|c| c.first_event_id = 1);
    assert_eq!(flink.event(1).as_auction().unwrap().id, 1001);
    assert_eq!(flink.event(49).as_person().unwrap().id, 1001);
    // Hot entities: the seller of a hot auction is the first person of the block of 100,
    // the hot bidder the second, and the hot auction the first auction of its block.
    let at = 12_345 * 50 + 10; // a bid slot: last person 12_345, last auction 37_037
    assert_eq!(g.last_base0_person_id(at), 12_345);
    assert_eq!(g.last_base0_auction_id(at), 37_037);
    // The same bid slot of the next 20 epochs: last person 12_345..12_364 (block 12_300),
    // last auction 37_037..37_094 (block 37_000).
    let bids: Vec<Bid> = (0..20).filter_map(|k| g.bid(at + k * 50)).collect();
    assert_eq!(bids.len(), 20);
    assert!(bids.iter().any(|b| b.auction == 37_000 + 1000));
    assert!(bids.iter().any(|b| b.bidder == 12_301 + 1000));
}

#[test]
fn same_config_same_events_other_seed_other_values() {
    let a = generator(|c| c.seed = 7);
    let b = generator(|c| c.seed = 7);
    let c = generator(|c| c.seed = 8);
    let events = |g: &NexmarkGenerator| (0..5000).map(|n| g.event(n)).collect::<Vec<_>>();
    assert_eq!(events(&a), events(&b));
    let (ea, ec) = (events(&a), events(&c));
    assert_ne!(ea, ec);
    // The seed changes values, never types, ids or timestamps.
    for (x, y) in ea.iter().zip(&ec) {
        assert_eq!(x.kind(), y.kind());
        assert_eq!(x.event_time(), y.event_time());
        match (x, y) {
            (NexmarkEvent::Person(p), NexmarkEvent::Person(q)) => assert_eq!(p.id, q.id),
            (NexmarkEvent::Auction(p), NexmarkEvent::Auction(q)) => assert_eq!(p.id, q.id),
            _ => {}
        }
    }
}

fn run_job(parallelism: usize, config: GeneratorConfig) -> Vec<NexmarkEvent> {
    let source = NexmarkSource::<NexmarkEvent>::new(config).unwrap();
    let strategy = source.watermark_strategy();
    let mut job = Job::new("nexmark");
    let out = job
        .source("nexmark", source)
        .with_watermarks(strategy)
        .collect();
    job.run(JobConfig::default().parallelism(parallelism))
        .unwrap();
    let mut events = out.take();
    events.sort();
    events
}

#[test]
fn output_is_independent_of_parallelism() {
    let config = GeneratorConfig {
        events: Some(20_000),
        seed: 3,
        out_of_order_group_size: 7,
        ..Default::default()
    };
    let p1 = run_job(1, config.clone());
    let p3 = run_job(3, config.clone());
    assert_eq!(p1.len(), 20_000);
    assert_eq!(p1, p3);
    let g = NexmarkGenerator::new(config).unwrap();
    let mut direct: Vec<NexmarkEvent> = (0..20_000).map(|n| g.event(n)).collect();
    direct.sort();
    assert_eq!(p1, direct);
}

#[test]
fn proportions_and_hot_fractions() {
    let g = generator(|c| c.seed = 11);
    let n_events = 100_000u64;
    let (mut people, mut auctions, mut bids) = (0u64, 0u64, 0u64);
    let (mut hot_sellers, mut hot_auctions, mut hot_bidders) = (0u64, 0u64, 0u64);
    let mut hot_channels = [0u64; 4];
    let mut categories = [0u64; 5];
    for n in 0..n_events {
        let e = g.event_id(n);
        let last_person = g.last_base0_person_id(e) + 1000;
        let last_auction = g.last_base0_auction_id(e) + 1000;
        match g.event(n) {
            NexmarkEvent::Person(_) => people += 1,
            NexmarkEvent::Auction(a) => {
                auctions += 1;
                hot_sellers += (a.seller == (last_person - 1000) / 100 * 100 + 1000) as u64;
                categories[(a.category - 10) as usize] += 1;
            }
            NexmarkEvent::Bid(b) => {
                bids += 1;
                hot_auctions += (b.auction == (last_auction - 1000) / 100 * 100 + 1000) as u64;
                hot_bidders += (b.bidder == (last_person - 1000) / 100 * 100 + 1001) as u64;
                if let Some(i) = HOT_CHANNELS.iter().position(|c| *c == b.channel) {
                    hot_channels[i] += 1;
                }
            }
        }
    }
    assert_eq!((people, auctions, bids), (2_000, 6_000, 92_000));
    let frac = |x: u64, of: u64| x as f64 / of as f64;
    // P(hot) = 1 - 1/ratio, plus the random picks that land on the hot id (1 in 111 for
    // auctions, ~1 in 1010 for people).
    let f = frac(hot_auctions, bids);
    assert!((f - (0.5 + 0.5 / 111.0)).abs() < 0.01, "hot auctions {f}");
    let f = frac(hot_bidders, bids);
    assert!((f - 0.75).abs() < 0.01, "hot bidders {f}");
    let f = frac(hot_sellers, auctions);
    assert!((f - 0.75).abs() < 0.02, "hot sellers {f}");
    for c in hot_channels {
        let f = frac(c, bids);
        assert!((f - 0.125).abs() < 0.01, "hot channel {f}");
    }
    for c in categories {
        let f = frac(c, auctions);
        assert!((f - 0.2).abs() < 0.02, "category {f}");
    }
}

#[test]
fn bidders_and_sellers_are_people_single_offset() {
    // Bidder ids are person ids + 1000 (not nexmark/nexmark's + 2000, with which no bidder
    // would exist yet): almost every bid and auction references a person that exists by then.
    // The rest: random picks of the 10 "lead" ids (~0.25%) and the hot bidder in the epochs
    // where its block has only its first person so far (~0.75%).
    let g = generator(|_| {});
    let mut people = HashSet::new();
    let (mut known, mut total) = (0u64, 0u64);
    for n in 0..100_000 {
        match g.event(n) {
            NexmarkEvent::Person(p) => {
                people.insert(p.id);
            }
            NexmarkEvent::Auction(Auction { seller: id, .. })
            | NexmarkEvent::Bid(Bid { bidder: id, .. }) => {
                known += people.contains(&id) as u64;
                total += 1;
            }
        }
    }
    let f = known as f64 / total as f64;
    assert!(f > 0.98, "{f}");
}

#[test]
fn string_fields_follow_spec_shapes() {
    let g = generator(|_| {});
    let mut desc_lens = 0usize;
    let mut descs = 0usize;
    for n in 0..50_000 {
        match g.event(n) {
            NexmarkEvent::Person(Person {
                name,
                email_address,
                credit_card,
                city,
                state,
                extra,
                ..
            }) => {
                let (first, last) = name.split_once(' ').unwrap();
                assert!(!first.is_empty() && !last.is_empty());
                let (local, domain) = email_address.split_once('@').unwrap();
                assert!(local.len() <= 6 && domain.len() <= 8);
                assert!(domain.ends_with(".com"));
                assert!(credit_card
                    .split(' ')
                    .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_digit())));
                assert!(streamcore_nexmark::US_CITIES.contains(&city.as_str()));
                assert!(streamcore_nexmark::US_STATES.contains(&state.as_str()));
                assert!(extra.len() < 200);
            }
            NexmarkEvent::Auction(a) => {
                assert!(a.item_name.len() <= 19);
                assert_eq!(a.item_name.trim(), a.item_name);
                desc_lens += a.description.len();
                descs += 1;
                assert!(a.expires > a.date_time);
            }
            NexmarkEvent::Bid(b) => {
                assert!(b.url.starts_with("https://www.nexmark.com/"));
                if HOT_CHANNELS.contains(&b.channel.as_str()) {
                    assert!(!b.url.contains("channel_id"));
                } else {
                    assert!(b.channel.starts_with("channel-"));
                }
            }
        }
    }
    // Description length: uniform 3..=99 before trimming, mean ≈ 51.
    let mean = desc_lens as f64 / descs as f64;
    assert!((mean - 50.5).abs() < 2.0, "{mean}");
}

#[test]
fn timestamps_in_order_with_group_size_one() {
    let g = generator(|c| c.first_event_rate = 1_000_000);
    let mut last = Timestamp::MIN;
    for n in 0..100_000 {
        let t = g.event(n).event_time();
        assert!(t >= last);
        last = t;
    }
    // 100,000 events at 1M/s span 100 ms of event time.
    assert_eq!(last.0 - g.event(0).event_time().0, 99);
}

#[test]
fn out_of_order_stays_within_the_group_bound() {
    let g = generator(|c| {
        c.out_of_order_group_size = 50;
        c.first_event_rate = 1_000;
    });
    let bound = g.config().max_out_of_orderness().as_millis() as i64;
    assert_eq!(bound, 49);
    let mut max_seen = i64::MIN;
    let mut behind = 0;
    for n in 0..20_000 {
        let t = g.event(n).event_time().0;
        assert!(
            t >= max_seen.saturating_sub(bound),
            "event {n}: {} ms behind",
            max_seen - t
        );
        assert!(t >= g.watermark_hint(n).0);
        behind += (t < max_seen) as u32;
        max_seen = max_seen.max(t);
    }
    assert!(behind > 5_000, "events do arrive out of order ({behind})");
    // Each group of 50 event numbers covers the same 50 event ids.
    let mut ids: Vec<u64> = (100..150).map(|n| g.event_id(n)).collect();
    ids.sort();
    assert_eq!(ids, (100..150).collect::<Vec<_>>());
}

#[test]
fn date_time_text() {
    assert_eq!(format_date_time(0), "1970-01-01 00:00:00.000");
    assert_eq!(
        format_date_time(1_700_000_000_123),
        "2023-11-14 22:13:20.123"
    );
    assert_eq!(
        format_date_time(1_436_918_400_000),
        "2015-07-15 00:00:00.000"
    );
    assert_eq!(
        format_date_time(1_709_251_199_999),
        "2024-02-29 23:59:59.999"
    );
    assert_eq!(
        parse_date_time("2023-11-14 22:13:20.123"),
        Some(1_700_000_000_123)
    );
}

#[test]
fn generated_events_round_trip_through_json() {
    let g = generator(|c| c.seed = 5);
    for n in 0..10_000 {
        let e = g.event(n);
        let text = to_json(&e);
        assert_eq!(parse_event(&text).unwrap(), e, "{text}");
    }
    let bid = to_json(&g.event(4));
    assert!(
        bid.starts_with(r#"{"event_type":2,"person":null,"auction":null,"bid":{"auction":"#),
        "{bid}"
    );
    assert!(bid.contains(r#","dateTime":"2015-07-15 00:00:00.000","extra":""#));
}

fn text() -> impl Strategy<Value = compact_str::CompactString> {
    prop_oneof![
        "[a-z ]{0,30}",
        any::<String>(),
        "[\"\\\\\u{0}-\u{1f}é😀]{0,10}",
    ]
    .prop_map(compact_str::CompactString::from)
}

fn ts() -> impl Strategy<Value = Timestamp> {
    prop_oneof![any::<i64>(), 0i64..4_102_444_800_000].prop_map(Timestamp)
}

fn event() -> impl Strategy<Value = NexmarkEvent> {
    let person = (
        any::<i64>(),
        text(),
        text(),
        text(),
        text(),
        text(),
        ts(),
        text(),
    )
        .prop_map(
            |(id, name, email_address, credit_card, city, state, date_time, extra)| {
                NexmarkEvent::Person(Person {
                    id,
                    name,
                    email_address,
                    credit_card,
                    city,
                    state,
                    date_time,
                    extra,
                })
            },
        );
    let auction = (
        any::<i64>(),
        text(),
        text(),
        any::<i64>(),
        any::<i64>(),
        ts(),
        ts(),
        any::<i64>(),
        any::<i64>(),
        text(),
    )
        .prop_map(
            |(
                id,
                item_name,
                description,
                initial_bid,
                reserve,
                date_time,
                expires,
                seller,
                category,
                extra,
            )| {
                NexmarkEvent::Auction(Auction {
                    id,
                    item_name,
                    description,
                    initial_bid,
                    reserve,
                    date_time,
                    expires,
                    seller,
                    category,
                    extra,
                })
            },
        );
    let bid = (
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
        text(),
        text(),
        ts(),
        text(),
    )
        .prop_map(|(auction, bidder, price, channel, url, date_time, extra)| {
            NexmarkEvent::Bid(Bid {
                auction,
                bidder,
                price,
                channel,
                url,
                date_time,
                extra,
            })
        });
    prop_oneof![person, auction, bid]
}

proptest! {
    #[test]
    fn parse_inverts_format(e in event()) {
        let text = to_json(&e);
        prop_assert_eq!(&parse_event(&text).unwrap(), &e);
        // serde_json reads the same text into the same event.
        prop_assert_eq!(&serde_json::from_str::<NexmarkEvent>(&text).unwrap(), &e);
    }

    #[test]
    fn date_time_round_trips(ms in any::<i64>()) {
        prop_assert_eq!(parse_date_time(&format_date_time(ms)), Some(ms));
    }
}
