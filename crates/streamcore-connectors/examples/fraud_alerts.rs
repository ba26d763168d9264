//! Complex event processing on the transaction generator: users with three transactions over
//! 900 within one minute of event time, as JSON-lines alerts on stdout.
//!
//! Run with `cargo run --release -p streamcore-connectors --example fraud_alerts`.

use serde::Serialize;
use std::time::Duration;
use streamcore::cep::{AfterMatchSkip, Pattern};
use streamcore::{Event, Job, JobConfig, Timestamp, WatermarkStrategy};
use streamcore_connectors::{StdoutSink, TransactionGenerator, TransactionGeneratorConfig};

#[derive(Clone, Debug, Serialize)]
struct Alert {
    user_id: String,
    first: Timestamp,
    amounts: Vec<f64>,
}

fn main() -> Result<(), streamcore::StreamError> {
    let generator = TransactionGenerator::new(TransactionGeneratorConfig {
        events: Some(200_000),
        seed: Some(42),
        users: 500,
        interval_ms: 10,
        disorder_ms: 200,
        ..Default::default()
    });
    let big = |e: &Event| e.get_f64("amount").is_some_and(|a| a > 900.0);
    let mut job = Job::new("fraud-alerts");
    job.source("transactions", generator.source())
        .with_watermarks(WatermarkStrategy::bounded_out_of_orderness(
            Duration::from_millis(200),
        ))
        .key_by(|e| e.partition_key.clone())
        .pattern(
            Pattern::begin("big", big)
                .times(3)
                .within(Duration::from_secs(60))
                .skip(AfterMatchSkip::SkipPastLastEvent),
        )
        .map(|m| {
            let big = m.get("big");
            Alert {
                user_id: big[0].partition_key_str().to_string(),
                first: big[0].timestamp,
                amounts: big.iter().filter_map(|e| e.get_f64("amount")).collect(),
            }
        })
        .sink(StdoutSink::new());
    let summary = job.run(JobConfig::default())?;
    eprint!("{summary}");
    Ok(())
}
