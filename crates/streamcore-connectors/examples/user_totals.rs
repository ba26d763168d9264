//! Per-user running totals of high-value transactions, from the built-in generator to JSON
//! lines on stdout, with the metrics summary on stderr.
//!
//! Run with `cargo run --release -p streamcore-connectors --example user_totals`.

use serde::Serialize;
use streamcore::{Job, JobConfig};
use streamcore_connectors::{StdoutSink, TransactionGenerator, TransactionGeneratorConfig};

/// What the job emits after each transaction: the user's running count and total.
#[derive(Clone, Debug, Serialize)]
struct UserTotal {
    user_id: String,
    transactions: u64,
    total: f64,
}

fn main() -> Result<(), streamcore::StreamError> {
    let generator = TransactionGenerator::new(TransactionGeneratorConfig {
        events: Some(1_000),
        seed: Some(7),
        users: 10,
        ..Default::default()
    });
    let mut job = Job::new("user-totals");
    job.source("transactions", generator.source())
        .filter(|e| e.get_f64("amount").is_some_and(|a| a > 500.0))
        .key_by(|e| e.partition_key.clone())
        .aggregate(
            |_| (0u64, 0.0f64),
            |acc, e| {
                acc.0 += 1;
                acc.1 += e.get_f64("amount").unwrap_or(0.0);
            },
            |user, acc| UserTotal {
                user_id: user.as_deref().unwrap_or("").to_string(),
                transactions: acc.0,
                total: acc.1,
            },
        )
        .sink(StdoutSink::new());
    let summary = job.run(JobConfig::default())?;
    eprint!("{summary}");
    Ok(())
}
