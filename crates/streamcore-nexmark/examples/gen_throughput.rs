//! Single-threaded generator throughput: typed events, bids only, and JSON lines.
//!
//! `cargo run --release -p streamcore-nexmark --example gen_throughput [events] [what]`
//! (default 10M events per measurement; `what` is `typed`, `batches`, `source`, `bids`,
//! `json` or `all`, the default).

use std::hint::black_box;
use std::time::Instant;
use streamcore::{Source, SourcePoll, SourceReader, TaskContext};
use streamcore_nexmark::json::JsonWriter;
use streamcore_nexmark::{Bid, GeneratorConfig, NexmarkEvent, NexmarkGenerator, NexmarkSource};

fn report(what: &str, events: u64, started: Instant, extra: &str) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{what:<28} {events:>11} events in {secs:>6.3} s = {:>6.2} M events/s{extra}",
        events as f64 / secs / 1e6
    );
}

fn main() {
    let events: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("events: an integer"))
        .unwrap_or(10_000_000);
    let what = std::env::args().nth(2).unwrap_or_else(|| "all".into());
    let run = |name: &str| what == "all" || what == name;
    let g = NexmarkGenerator::new(GeneratorConfig {
        events: None,
        first_event_rate: 10_000_000,
        ..Default::default()
    })
    .expect("valid config");
    // Build the string tables outside the measurement.
    black_box(g.event(0));
    println!(
        "record sizes: NexmarkEvent {} B, Person {} B, Auction {} B, Bid {} B",
        std::mem::size_of::<NexmarkEvent>(),
        std::mem::size_of::<streamcore_nexmark::Person>(),
        std::mem::size_of::<streamcore_nexmark::Auction>(),
        std::mem::size_of::<Bid>()
    );

    if run("typed") {
        let started = Instant::now();
        for n in 0..events {
            black_box(g.event(n));
        }
        report("typed events (all kinds)", events, started, "");
    }

    if run("batches") {
        let started = Instant::now();
        let mut batch = Vec::with_capacity(1024);
        for chunk in (0..events).step_by(1024) {
            batch.clear();
            batch.extend((chunk..(chunk + 1024).min(events)).map(|n| g.event(n)));
            black_box(&batch);
        }
        report("typed events into batches", events, started, "");
    }

    if run("source") {
        let mut source = NexmarkSource::<NexmarkEvent>::from_generator(g.clone());
        let mut reader = source.create_readers(1).expect("one reader").remove(0);
        let mut ctx = TaskContext::for_test("gen_throughput");
        let mut batch = Vec::with_capacity(1024);
        let started = Instant::now();
        let mut made = 0u64;
        while made < events {
            batch.clear();
            let max = 1024.min(events - made) as usize;
            let poll = reader.poll_batch(&mut batch, max, &mut ctx).expect("poll");
            assert_eq!(poll, SourcePoll::Ready);
            made += batch.len() as u64;
            black_box(&batch);
        }
        report("NexmarkSource reader", events, started, "");

        let mut source = NexmarkSource::<Bid>::from_generator(g.clone());
        let mut reader = source.create_readers(1).expect("one reader").remove(0);
        let mut batch = Vec::with_capacity(1024);
        let started = Instant::now();
        let mut made = 0u64;
        while made < events {
            batch.clear();
            let max = 1024.min(events - made) as usize;
            reader.poll_batch(&mut batch, max, &mut ctx).expect("poll");
            made += batch.len() as u64;
            black_box(&batch);
        }
        report("NexmarkSource<Bid> reader", events, started, " (bids)");
    }

    if run("bids") {
        let started = Instant::now();
        let mut bids = 0u64;
        for n in 0..events {
            if let Some(b) = g.bid(n) {
                black_box(b);
                bids += 1;
            }
        }
        report(
            "bids only (skip others)",
            events,
            started,
            &format!(" ({bids} bids)"),
        );
    }

    if !run("json") {
        return;
    }
    let started = Instant::now();
    let mut writer = JsonWriter::new();
    let mut buf = Vec::with_capacity(1 << 17);
    let mut bytes = 0u64;
    for n in 0..events {
        writer.write_line(&g.event(n), &mut buf);
        if buf.len() >= 1 << 16 {
            bytes += buf.len() as u64;
            black_box(&buf);
            buf.clear();
        }
    }
    bytes += buf.len() as u64;
    let mb = bytes as f64 / 1e6 / started.elapsed().as_secs_f64();
    report("JSON lines", events, started, &format!(" ({mb:.0} MB/s)"));
}
