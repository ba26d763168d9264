//! Backpressure: a sink slower than its source keeps the records in flight bounded by the
//! exchange queues, the exchange reports full queues and blocked senders, and `stop` drains.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use streamcore::source::Generator;
use streamcore::{Job, JobConfig};

const PARALLELISM: usize = 2;
const QUEUE_CAPACITY: usize = 2;
const BATCH_SIZE: usize = 64;

/// The most records that can be between "read by a source" and "seen by the sink":
/// - each source task holds at most the one batch it read (it is split into per-destination
///   buffers whose sizes add up to that batch, and the task blocks sending them);
/// - each sink task's queue holds `QUEUE_CAPACITY` batches, and the task works on one more;
/// - no batch crossing the key_by exchange is larger than `BATCH_SIZE`.
const IN_FLIGHT_BOUND: u64 =
    ((PARALLELISM + PARALLELISM * (QUEUE_CAPACITY + 1)) * BATCH_SIZE) as u64;

#[test]
fn slow_sink_keeps_records_in_flight_bounded_and_stop_drains() {
    let seen = Arc::new(AtomicU64::new(0));
    let mut job = Job::new("backpressure");
    job.source("gen", Generator::new(|i| i))
        .key_by(|x| x % 16)
        .partitioned()
        .for_each({
            let seen = seen.clone();
            move |_x: u64| {
                // Count before the pause: a record the sink holds counts as seen.
                if seen.fetch_add(1, Ordering::Relaxed) % 32 == 0 {
                    thread::sleep(Duration::from_millis(1));
                }
            }
        });
    let handle = job
        .start(
            JobConfig::default()
                .parallelism(PARALLELISM)
                .queue_capacity(QUEUE_CAPACITY)
                .batch_size(BATCH_SIZE),
        )
        .unwrap();

    let started = Instant::now();
    let mut max_in_flight = 0;
    let mut samples = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        // Sink count first, then the sources' count: the difference can only overestimate
        // what is in flight at the second read.
        let consumed = seen.load(Ordering::Relaxed);
        let ingested = handle.metrics().events_ingested;
        let in_flight = ingested.saturating_sub(consumed);
        max_in_flight = max_in_flight.max(in_flight);
        samples += 1;
        assert!(
            in_flight <= IN_FLIGHT_BOUND,
            "{in_flight} records in flight (ingested {ingested}, consumed {consumed}) \
             exceeds the bound of {IN_FLIGHT_BOUND}"
        );
        thread::sleep(Duration::from_millis(2));
    }
    let live = handle.metrics();
    handle.stop();
    let summary = handle.join().unwrap();

    // The sink is much slower than the generator: the source must have been held back, and
    // the test must have seen the pipeline loaded, or it proved nothing.
    assert!(samples > 100, "{samples} samples");
    assert!(
        max_in_flight >= (BATCH_SIZE * QUEUE_CAPACITY) as u64,
        "the queues never filled: at most {max_in_flight} records in flight"
    );
    assert!(live.events_ingested > 0);

    let exchange = summary
        .exchanges
        .iter()
        .find(|e| e.name == "key_by")
        .expect("key_by exchange in summary");
    assert_eq!(exchange.queues, PARALLELISM);
    assert_eq!(exchange.capacity_batches, QUEUE_CAPACITY);
    assert_eq!(
        exchange.max_fill, 1.0,
        "queues were full at some send: {exchange:?}"
    );
    assert!(exchange.blocked_ms > 0.0, "{exchange:?}");
    assert!(exchange.mean_fill > 0.0 && exchange.mean_fill <= 1.0);

    // stop() drains: every record read reached the sink, and nothing more.
    let consumed = seen.load(Ordering::Relaxed);
    assert_eq!(summary.events_emitted, consumed);
    assert_eq!(summary.events_ingested, consumed);
    assert_eq!(exchange.events_sent, consumed);
    assert!(summary.events_ingested >= live.events_ingested);
}
