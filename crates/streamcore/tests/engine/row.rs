//! `Row` through every operator family: keyed state, windows, interval joins, CEP, changelog
//! aggregates, checkpoints with a restore at another parallelism, schemas on the graph.

use std::collections::BTreeMap;
use std::time::Duration;
use streamcore::cep::Pattern;
use streamcore::changelog::{apply_to, CountRows, SumOf};
use streamcore::checkpoint::{CheckpointConfig, RestoreFrom};
use streamcore::row::{DataType, Field, Row, Scalar, Schema};
use streamcore::sink::CollectSink;
use streamcore::source::Generator;
use streamcore::window::Windows;
use streamcore::{Job, JobConfig, WatermarkStrategy};

/// Bid `i`: (auction = i % 7, price = i, bidder = "b{i % 3}", dateTime = i * 100 ms).
fn bid(i: u64) -> Row {
    Row::new(vec![
        Scalar::Int((i % 7) as i64),
        Scalar::Int(i as i64),
        Scalar::str(&format!("b{}", i % 3)),
        Scalar::TimestampMs(i as i64 * 100),
    ])
    .with_time_column(3)
}

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("auction", DataType::BigInt).not_null(),
        Field::new("price", DataType::BigInt),
        Field::new("bidder", DataType::Varchar),
        Field::new("dateTime", DataType::TimestampMillis),
    ])
}

const N: u64 = 2_000;

#[test]
fn rows_window_by_key_column() {
    for p in [1, 3] {
        let mut job = Job::new("row-windows");
        let (sink, out) = CollectSink::new();
        job.source("bids", Generator::new(bid).bounded(N))
            .with_schema(schema())
            .filter(|r| !r.get(1).is_null())
            .with_watermarks(WatermarkStrategy::monotonous())
            .key_by(|r| r.key(&[0]))
            .window(Windows::tumbling(Duration::from_secs(10)))
            .sum(|r| r.get(1).as_i64().unwrap_or(0))
            .sink(sink);
        job.run(JobConfig::default().parallelism(p)).unwrap();
        let mut got: Vec<(i64, i64, i64)> = out
            .take()
            .into_iter()
            .map(|w| {
                (
                    w.key.get(0).as_i64().unwrap(),
                    w.window.start.millis(),
                    w.value,
                )
            })
            .collect();
        got.sort();
        let mut want: BTreeMap<(i64, i64), i64> = BTreeMap::new();
        for i in 0..N {
            *want
                .entry(((i % 7) as i64, (i as i64 * 100) / 10_000 * 10_000))
                .or_default() += i as i64;
        }
        let want: Vec<(i64, i64, i64)> = want.into_iter().map(|((a, s), v)| (a, s, v)).collect();
        assert_eq!(got, want, "parallelism {p}");
    }
}

#[test]
fn rows_join_on_a_column_within_an_interval() {
    let mut job = Job::new("row-join");
    let (sink, out) = CollectSink::new();
    let bids = job
        .source("bids", Generator::new(bid).bounded(200))
        .with_watermarks(WatermarkStrategy::monotonous());
    // One auction row per auction id, at time 0.
    let auctions = job
        .from_vec(
            "auctions",
            (0..7)
                .map(|a| {
                    Row::new(vec![
                        Scalar::Int(a),
                        Scalar::str(&format!("item {a}")),
                        Scalar::TimestampMs(0),
                    ])
                    .with_time_column(2)
                })
                .collect(),
        )
        .with_watermarks(WatermarkStrategy::monotonous());
    auctions
        .connect(bids)
        .key_by(|a| a.key(&[0]), |b| b.key(&[0]))
        // Bids within the auction's first 5 seconds.
        .interval_join(-5_000, 0, |a: &Row, b: &Row| {
            Row::new(vec![a.get(1).clone(), b.get(1).clone()])
        })
        .sink(sink);
    job.run(JobConfig::default().parallelism(2)).unwrap();
    let got = out.take();
    // Bids 0..=50 are at 0..=5000 ms.
    assert_eq!(got.len(), 51);
    assert!(got.iter().all(
        |r| r.get(1).as_i64().unwrap() <= 50 && r.get(0).as_str().unwrap().starts_with("item ")
    ));
}

#[test]
fn rows_match_patterns() {
    let mut job = Job::new("row-cep");
    let (sink, out) = CollectSink::new();
    job.source("bids", Generator::new(bid).bounded(100))
        .with_watermarks(WatermarkStrategy::monotonous())
        .key_by(|r| r.key(&[2]))
        .pattern(
            Pattern::begin("low", |r: &Row| r.get(1).as_i64().unwrap() < 10)
                .next("high", |r: &Row| r.get(1).as_i64().unwrap() >= 10),
        )
        .map(|m| m.get("high")[0].get(1).as_i64().unwrap())
        .sink(sink);
    job.run(JobConfig::default().parallelism(2)).unwrap();
    let mut got = out.take();
    got.sort();
    // Each bidder's last bid under 10 is followed by its first at 10 or more.
    assert_eq!(got, vec![10, 11, 12]);
}

#[test]
fn rows_aggregate_as_a_changelog_and_restore_at_another_parallelism() {
    let dir = tempfile::tempdir().unwrap();
    let build = |rate: Option<f64>| {
        let mut job = Job::new("row-agg");
        let mut source = Generator::new(bid).bounded(N * 10);
        if let Some(r) = rate {
            source = source.rate(r);
        }
        let (sink, out) = CollectSink::new();
        job.source("bids", source)
            .with_schema(schema())
            .key_by(|r| r.key(&[2]))
            .group_aggregate((CountRows, SumOf::new(|r: &Row| r.get(1).as_i64().unwrap())))
            .uid("per-bidder")
            .sink(sink);
        (job, out)
    };
    let config = |p: usize, restore: Option<RestoreFrom>| {
        let mut c = CheckpointConfig::new(dir.path()).interval(Duration::from_millis(20));
        c.restore = restore;
        JobConfig::default().parallelism(p).checkpoints(c)
    };
    let (job, first) = build(Some(100_000.0));
    let handle = job.start(config(2, None)).unwrap();
    while first.len() < 200 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let savepoint = handle.stop_with_savepoint().unwrap();
    handle.join().unwrap();
    let (job, second) = build(None);
    job.run(config(3, Some(RestoreFrom::Path(savepoint))))
        .unwrap();
    let mut all = first.take();
    all.extend(second.take());
    let table = apply_to(all);
    let want: Vec<(Row, (i64, Option<i64>))> = (0..3u64)
        .map(|b| {
            let prices: Vec<i64> = (0..N * 10)
                .filter(|i| i % 3 == b)
                .map(|i| i as i64)
                .collect();
            (
                Row::new(vec![Scalar::str(&format!("b{b}"))]),
                (prices.len() as i64, Some(prices.iter().sum())),
            )
        })
        .collect();
    assert_eq!(table, want);
}

#[test]
fn schemas_stay_with_filters_and_exchanges() {
    let mut job = Job::new("schemas");
    let bids = job
        .source("bids", Generator::new(bid).bounded(10))
        .with_schema(schema());
    let kept = bids.filter(|r| r.get(0).as_i64() == Some(1));
    assert_eq!(kept.schema(), Some(schema()));
    let shuffled = kept.rebalance();
    assert_eq!(shuffled.schema(), Some(schema()));
    let mapped = shuffled.map(|r| r.project(&[1]));
    assert_eq!(mapped.schema(), None);
    assert_eq!(
        schema().to_string(),
        "(auction BIGINT NOT NULL, price BIGINT, bidder VARCHAR, dateTime TIMESTAMP(3))"
    );
    mapped.collect();
    job.run(JobConfig::default()).unwrap();
}
