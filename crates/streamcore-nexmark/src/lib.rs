//! # streamcore-nexmark
//!
//! The Nexmark benchmark for streamcore: the queries and the event generator, following
//! `reference/generator-spec.md` (Beam's design, with nexmark/nexmark's `channel`/`url` bid fields).
//!
//! - [`model`]: the typed records [`Person`], [`Auction`], [`Bid`] and [`NexmarkEvent`].
//! - [`config`]: [`GeneratorConfig`], every knob, with Beam's defaults.
//! - [`rng`]: the per-event random stream (SplitMix64 seeded from the seed and event id).
//! - [`generator`]: [`NexmarkGenerator`], a pure function from event number to event.
//! - [`source`]: [`NexmarkSource`], the generator as a parallel streamcore source.
//! - [`json`]: the Flink benchmark's nested JSON-lines layout, written and parsed by hand.
//! - [`queries`]: the Nexmark queries q0–q22 (Flink SQL semantics) on the typed API.
//! - [`output`]: sinks for query results: a changelog as CSV with an `op` column, the final
//!   table of a changelog.
//!
//! ```
//! use streamcore::{Job, JobConfig};
//! use streamcore_nexmark::{GeneratorConfig, NexmarkEvent, NexmarkSource};
//!
//! let config = GeneratorConfig { events: Some(5_000), seed: 42, ..Default::default() };
//! let source = NexmarkSource::<NexmarkEvent>::new(config).unwrap();
//! let mut job = Job::new("nexmark");
//! let bids = job
//!     .source("nexmark", source)
//!     .filter(|e| matches!(e, NexmarkEvent::Bid(_)))
//!     .collect();
//! job.run(JobConfig::default().parallelism(2)).unwrap();
//! assert_eq!(bids.len(), 4_600);
//! ```

pub mod config;
pub mod generator;
pub mod json;
pub mod model;
pub mod output;
pub mod queries;
pub mod rng;
pub mod source;
mod strings;

pub use config::{ConfigError, GeneratorConfig};
pub use generator::{AuctionFields, BidFields, NexmarkGenerator};
pub use model::{Auction, Bid, EventKind, NexmarkEvent, Person};
pub use source::{NexmarkReader, NexmarkRecord, NexmarkSource, PartOfAuction, PartOfBid};
pub use strings::{HOT_CHANNELS, US_CITIES, US_STATES};
