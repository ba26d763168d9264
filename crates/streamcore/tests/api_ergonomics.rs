//! What the API accepts and how it refuses: watermarks after filters, a clear message where
//! they cannot go, the summary's JSON form.

use std::time::Duration;
use streamcore::window::Windows;
use streamcore::{Job, JobConfig, Timestamp, WatermarkStrategy};

fn readings() -> Vec<(Timestamp, u32)> {
    (0..1_000)
        .map(|i| (Timestamp(i * 100), (i % 7) as u32))
        .collect()
}

/// Per-key counts of 10-second windows, watermarks set on the source or after a filter.
fn window_counts(after_filter: bool) -> Vec<(u32, i64, u64)> {
    let mut job = Job::new("counts");
    let source = job.from_vec("readings", readings());
    let kept = if after_filter {
        source
            .filter(|r| r.1 != 3)
            .with_watermarks(WatermarkStrategy::monotonous())
    } else {
        source
            .with_watermarks(WatermarkStrategy::monotonous())
            .filter(|r| r.1 != 3)
    };
    let counts = kept
        .key_by(|r| r.1)
        .window(Windows::tumbling(Duration::from_secs(10)))
        .count()
        .collect();
    let summary = job
        .run(JobConfig::default().parallelism(2).batch_size(16))
        .unwrap();
    assert_eq!(summary.events_late, 0);
    let mut got: Vec<(u32, i64, u64)> = counts
        .take()
        .into_iter()
        .map(|r| (r.key, r.window.start.millis(), r.value))
        .collect();
    got.sort();
    got
}

#[test]
fn watermarks_after_a_filter_are_the_sources() {
    let at_source = window_counts(false);
    assert_eq!(at_source.len(), 6 * 10);
    assert_eq!(window_counts(true), at_source);
}

#[test]
#[should_panic(
    expected = "watermarks are generated per source split, so call it on a source's \
                           stream or after filters of it — not after `to_pair"
)]
fn watermarks_after_a_map_are_refused_saying_where_they_go() {
    let mut job = Job::new("refused");
    job.from_vec("readings", readings())
        .map(|r| (r.0, r.1 + 1))
        .name("to_pair")
        .with_watermarks(WatermarkStrategy::monotonous());
}

#[test]
fn the_json_summary_names_the_final_watermark_end() {
    let mut job = Job::new("ended");
    job.from_vec("readings", readings())
        .with_watermarks(WatermarkStrategy::monotonous())
        .collect();
    let summary = job.run(JobConfig::default()).unwrap();
    let json = serde_json::to_value(&summary).unwrap();
    let watermarks: Vec<&serde_json::Value> = json["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| &op["watermark"])
        .collect();
    assert!(watermarks.iter().all(|w| *w == "end"), "{watermarks:?}");
}
