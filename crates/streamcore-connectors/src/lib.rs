//! Sources and sinks for streamcore.
//!
//! - [`mod@file`]: JSON-lines and CSV files — a path, a directory or a glob; large JSON-lines files
//!   are cut into byte-range splits at line boundaries and read in parallel.
//! - [`stdio`]: JSON lines from stdin, to stdout.
//! - [`generator`]: the seeded, deterministic generator of transaction events.
//!
//! Every source decodes records with errors that name the file, the line or byte offset, the
//! field and the reason, and hands them to the job's error policy (fail, or dead-letter).

pub mod file;
pub mod format;
pub mod generator;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(any(feature = "redis", feature = "webhook", feature = "parquet"))]
pub mod options;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod partition;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "redis", feature = "webhook", feature = "parquet"))]
pub mod sink_metrics;
pub mod stdio;
#[cfg(any(
    feature = "redis",
    feature = "webhook",
    feature = "parquet",
    feature = "postgres"
))]
pub mod template;
#[cfg(feature = "webhook")]
pub mod webhook;

pub use file::csv::{CsvSink, CsvSource};
pub use file::jsonl::{utf8_line, JsonLinesSink, JsonLinesSource, LineDecoder, SerdeJson};
pub use generator::{TransactionGenerator, TransactionGeneratorConfig};
pub use stdio::{StdinSource, StdoutSink};

/// The README's code, compiled and run as a doctest so it cannot rot.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
