//! Metrics read while a job runs, from another thread, including counters and gauges that an
//! operator registered itself; the reader outlives the job.

use std::time::{Duration, Instant};
use streamcore::metrics::{Counter, Gauge};
use streamcore::source::Generator;
use streamcore::{Job, JobConfig, Operator, Output, Result, TaskContext};

/// Counts even numbers and keeps the last number seen as a gauge.
#[derive(Clone, Default)]
struct Evens {
    evens: Option<Counter>,
    last: Option<Gauge>,
}

impl Operator for Evens {
    type In = u64;
    type Out = u64;
    fn open(&mut self, ctx: &mut TaskContext) -> Result<()> {
        self.evens = Some(ctx.counter("evens"));
        self.last = Some(ctx.gauge("last_seen"));
        Ok(())
    }
    fn process_batch(
        &mut self,
        batch: Vec<u64>,
        _: &mut TaskContext,
        out: &mut Output<u64>,
    ) -> Result<()> {
        let evens = batch.iter().filter(|n| *n % 2 == 0).count() as u64;
        if let (Some(c), Some(g)) = (&self.evens, &self.last) {
            c.add(evens);
            g.set(batch.last().copied().unwrap_or(0) as i64);
        }
        out.emit_batch(batch);
        Ok(())
    }
}

#[test]
fn registered_counters_are_read_live_and_after_the_end() {
    let mut job = Job::new("live");
    job.source("numbers", Generator::new(|i| i).rate(100_000.0))
        .apply("evens", Evens::default())
        .name("evens")
        .collect();
    let handle = job.start(JobConfig::default().parallelism(1)).unwrap();
    let reader = handle.metrics_reader();
    let watcher = std::thread::spawn(move || {
        // The counter grows while the job runs: two reads, the second larger.
        let read = || {
            let s = reader.summary();
            let op = s.operators.iter().find(|o| o.name == "evens").cloned();
            op.and_then(|o| o.metrics.get("evens").copied())
                .unwrap_or(0)
        };
        let started = Instant::now();
        let first = loop {
            let v = read();
            if v > 0 {
                break v;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no counts");
            std::thread::sleep(Duration::from_millis(5));
        };
        loop {
            let v = read();
            if v > first {
                return (first, v);
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "counts stopped"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let (first, later) = watcher.join().unwrap();
    assert!(later > first);
    let reader = handle.metrics_reader();
    handle.stop();
    handle.join().unwrap();
    // After the end the reader gives the final figures: every even number counted.
    let summary = reader.summary();
    let op = summary
        .operators
        .iter()
        .find(|o| o.name == "evens")
        .unwrap();
    let processed = op.events_processed as i64;
    assert_eq!(op.metrics["evens"], (processed + 1) / 2);
    assert_eq!(op.metrics["last_seen"], processed - 1);
    // In the JSON summary, next to the built-in figures.
    let json = serde_json::to_value(&summary).unwrap();
    let evens = json["operators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "evens")
        .unwrap();
    assert_eq!(evens["metrics"]["evens"], (processed + 1) / 2);
}
