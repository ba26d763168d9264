//! # streamcore
//!
//! A stream processing engine: sources feed typed streams through fused chains of operators,
//! across bounded exchanges between parallel workers, into sinks.
//!
//! ## How the pieces fit
//!
//! From the bottom up, each layer only uses the ones before it:
//!
//! - [`time`], [`value`], [`event`], [`data`]: the record types. Any `T: Clone + Send` is a
//!   record ([`Data`]); [`Event`] is the dynamic record of the JSON connectors and the CLI;
//!   [`row::Row`] the relational record (values by position, a [`row::Schema`]).
//! - [`message`]: the one type that crosses exchanges — `Data(batch) | Watermark | Barrier | End`.
//! - [`operator`]: the operator contract ([`Operator`], one required method `process_batch`)
//!   and the collector it emits into ([`Output`], with side outputs).
//! - [`state`]: key groups and keyed state.
//! - [`changelog`]: updating streams ([`changelog::Change`]) and the operators over them:
//!   retracting aggregates, materialize, top-n, deduplication.
//! - [`source`], [`sink`]: the connector contracts, with in-memory sources and sinks.
//! - [`context`], [`metrics`], [`error`]: what a task knows, what it counts, how it fails.
//! - `runtime` (internal): stages, tasks (one OS thread each), exchanges, the executor.
//! - [`api`]: [`Job`], [`Stream`], [`KeyedStream`] — what programs use.
//!
//! ## Example
//!
//! ```
//! use streamcore::{Job, JobConfig, source::Generator};
//!
//! // Records kept in state (here by `reduce`) go into checkpoints: serde makes them serializable.
//! #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
//! struct Tx { user: u32, amount: i64 }
//!
//! let mut job = Job::new("totals");
//! let totals = job
//!     .source("tx", Generator::new(|i| Tx { user: (i % 3) as u32, amount: 50 + 25 * (i % 20) as i64 }).bounded(1000))
//!     .filter(|t| t.amount > 100)
//!     .key_by(|t| t.user)
//!     .reduce(|a, b| Tx { user: a.user, amount: a.amount + b.amount })
//!     .collect();
//! let summary = job.run(JobConfig::default().parallelism(2)).unwrap();
//! assert_eq!(summary.events_ingested, 1000);
//! assert_eq!(summary.events_filtered, 150);
//! assert_eq!(totals.len(), 850);
//! ```

pub mod api;
pub mod cep;
pub mod changelog;
pub mod checkpoint;
pub mod context;
pub mod data;
pub mod decode;
pub mod error;
pub mod event;
pub mod event_time;
pub mod join;
pub mod message;
pub mod metrics;
pub mod operator;
pub mod row;
mod runtime;
pub mod sink;
pub mod source;
pub mod state;
pub mod time;
pub mod value;
pub mod window;

pub use api::{
    ConnectedStreams, Job, JobConfig, KeyedConnectedStreams, KeyedStream, Stream, WindowedStream,
};
pub use context::{DeadLetter, ErrorPolicy, OperatorStats, TaskContext, TaskInfo};
pub use data::{Data, Key, StateData, StateKey};
pub use error::{Result, StreamError};
pub use event::Event;
pub use event_time::{EventTime, WatermarkStrategy};
pub use message::Message;
pub use metrics::JobSummary;
pub use operator::{Operator, Output, OutputTag};
pub use runtime::executor::JobHandle;
pub use sink::{Sink, SinkWriter};
pub use source::{Source, SourcePoll, SourceReader};
pub use time::Timestamp;
pub use value::{Fields, Value};
