//! What the API accepts and how it refuses: watermarks after filters, a clear message where
//! they cannot go, the summary's JSON form.

use std::time::Duration;
use streamcore::cep::Pattern;
use streamcore::window::Windows;
use streamcore::{Job, JobConfig, StreamError, Timestamp, WatermarkStrategy};

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
fn watermarks_after_a_map_are_refused_saying_where_they_go() {
    let mut job = Job::new("refused");
    job.from_vec("readings", readings())
        .map(|r| (r.0, r.1 + 1))
        .name("to_pair")
        .with_watermarks(WatermarkStrategy::monotonous())
        .collect();
    let err = job.run(JobConfig::default()).unwrap_err();
    assert!(matches!(err, StreamError::Config(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "invalid job: with_watermarks on `to_pair`: watermarks are generated per source split, \
         so call it on a source's stream or after filters of it — not after `to_pair`, which \
         changes the records or their partitioning (move with_watermarks up to the source)"
    );
}

/// Builder mistakes never panic: `run` refuses the job with the first, naming where it is.
#[test]
fn mistakes_in_the_job_are_refused_by_run_with_a_message() {
    let refused = |build: &dyn Fn(&mut Job)| {
        let mut job = Job::new("mistaken");
        build(&mut job);
        match job.run(JobConfig::default()) {
            Err(StreamError::Config(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    };
    assert_eq!(
        refused(&|job| {
            job.from_vec("r", readings())
                .key_by(|r| r.1)
                .window(Windows::sliding(Duration::from_secs(1), Duration::from_secs(5)))
                .count()
                .collect();
        }),
        "invalid windows after `r#0`: sliding windows need 0 < slide <= size (size 1000 ms, slide 5000 ms)"
    );
    assert_eq!(
        refused(&|job| {
            job.from_vec("r", readings())
                .filter(|_| true)
                .name("all")
                .key_by(|r| r.1)
                .count_window(0)
                .count()
                .collect();
        }),
        "count windows after `all` need n > 0"
    );
    assert_eq!(
        refused(&|job| {
            let a = job
                .from_vec("a", readings())
                .with_watermarks(WatermarkStrategy::monotonous());
            let b = job
                .from_vec("b", readings())
                .with_watermarks(WatermarkStrategy::monotonous());
            a.connect(b)
                .key_by(|x| x.1, |y| y.1)
                .interval_join(10, -10, |x, _| x.1)
                .collect();
        }),
        "interval join needs lower <= upper (10 > -10)"
    );
    assert_eq!(
        refused(&|job| {
            job.from_vec("r", readings())
                .with_watermarks(WatermarkStrategy::monotonous())
                .key_by(|r| r.1)
                .pattern(Pattern::begin("first", |_: &(Timestamp, u32)| true).optional())
                .collect();
        }),
        "invalid pattern after `r#0`: a pattern must begin with a step that matches at least one event"
    );
    let mut other = Job::new("other");
    let foreign = other.from_vec("foreign", readings());
    let message = refused(&|job| {
        job.from_vec("r", readings())
            .union(foreign.clone())
            .collect();
    });
    assert_eq!(message, "union of streams from different jobs");
    match other.run(JobConfig::default()) {
        Err(StreamError::Config(m)) => assert_eq!(m, "union of streams from different jobs"),
        o => panic!("the other job must be refused too, got {o:?}"),
    }
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
