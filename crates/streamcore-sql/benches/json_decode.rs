//! Lines per second of the `filesystem` JSON format on Nexmark's nested events
//! (docs/benchmarks.md, "JSON decoding by the table's schema"), over lines in memory (no file
//! reading): the table's decoder reading a few columns or a query's columns, the whole scan
//! line → emitted row (the `dateTime` computed column included), and two yardsticks measured in
//! the same run — serde_json skipping the whole line (`IgnoredAny`) and the typed queries'
//! hand-written Nexmark parser.
//!
//! `cargo bench -p streamcore-sql --bench json_decode` (`STREAMCORE_BENCH_ROWS=N` changes the
//! line count; default 200,000).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use streamcore::row::Scalar;
use streamcore_connectors::LineDecoder;
use streamcore_nexmark::generator::NexmarkGenerator;
use streamcore_nexmark::GeneratorConfig;
use streamcore_sql::catalog::TableDef;
use streamcore_sql::connectors::{RowShaper, ShapedLines};
use streamcore_sql::format::{JsonRowDecoder, PhysicalDecoder};
use streamcore_sql::Session;

/// The Nexmark source table of the benchmark's DDL, reading JSON lines.
fn datagen_table() -> std::sync::Arc<TableDef> {
    let ddl = include_str!("../tests/nexmark/ddl_gen.sql");
    let head = &ddl[..ddl.find(") WITH (").expect("the DDL has a WITH")];
    let ddl = format!(
        "{head}) WITH ('connector' = 'filesystem', 'path' = '/dev/null', 'format' = 'json');"
    );
    let mut session = Session::new();
    session.execute_script(&ddl).expect("the Nexmark DDL plans");
    session.catalog.table("datagen").expect("the table exists")
}

fn lines(n: u64) -> Vec<Vec<u8>> {
    let generator = NexmarkGenerator::new(GeneratorConfig::default()).expect("default config");
    let mut out = Vec::new();
    streamcore_nexmark::json::write_json_lines(&generator, 0..n, &mut out).expect("in memory");
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// The physical columns named `names` as a `needed` mask.
fn mask(table: &TableDef, names: &[&str]) -> Vec<bool> {
    let schema = table.physical_schema();
    schema
        .fields
        .iter()
        .map(|f| names.contains(&f.name.as_str()))
        .collect()
}

fn json_decode(c: &mut Criterion) {
    let n = std::env::var("STREAMCORE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000u64);
    let lines = lines(n);
    let table = datagen_table();
    let schema = table.physical_schema();
    let mut group = c.benchmark_group("json_decode");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.sample_size(10);

    group.bench_function("serde_json_skip_all", |b| {
        b.iter(|| {
            for l in &lines {
                let v: serde::de::IgnoredAny = serde_json::from_slice(l).expect("valid JSON");
                black_box(v);
            }
        })
    });
    group.bench_function("typed_parse_event", |b| {
        b.iter(|| {
            for l in &lines {
                let text = std::str::from_utf8(l).expect("UTF-8");
                black_box(streamcore_nexmark::json::parse_event(text).expect("an event"));
            }
        })
    });
    let columns = [
        (
            "min",
            &[
                "event_type",
                "person.dateTime",
                "auction.dateTime",
                "bid.dateTime",
            ][..],
        ),
        (
            "q0",
            &[
                "event_type",
                "bid.auction",
                "bid.bidder",
                "bid.price",
                "bid.dateTime",
                "bid.extra",
            ][..],
        ),
    ];
    for (name, cols) in columns {
        let mut decoder = JsonRowDecoder::new(schema.clone(), false).only(&mask(&table, cols));
        let mut values = vec![Scalar::Null; schema.fields.len()];
        group.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| {
                for l in &lines {
                    decoder.decode_into(l, &mut values).expect("decodes");
                }
                black_box(&values);
            })
        });
    }
    // The scan as `SELECT dateTime, event_type FROM datagen` runs it: decode, compute the
    // rowtime, build the row.
    let columns: Vec<usize> = ["dateTime", "event_type"]
        .iter()
        .map(|c| {
            table
                .columns
                .iter()
                .position(|t| t.name == *c)
                .expect("a column")
        })
        .collect();
    let shaper = RowShaper::select(&table, &columns);
    let decoder = JsonRowDecoder::new(schema.clone(), false).only(shaper.needed());
    let mut shaped = ShapedLines::new(decoder, shaper);
    group.bench_function("scan_rows_min", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(shaped.decode(l).expect("decodes"));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, json_decode);
criterion_main!(benches);
