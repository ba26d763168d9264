//! [`Job`] (the graph being built) and [`JobConfig`] (how to run it).

use super::Stream;
use crate::context::{DeadLetter, ErrorPolicy};
use crate::data::Data;
use crate::error::Result;
use crate::metrics::JobSummary;
use crate::runtime::executor::{launch, JobHandle};
use crate::runtime::graph::Graph;
use crate::sink::{Sink, SinkWriter};
use crate::source::{Source, VecSource};
use crate::state::DEFAULT_KEY_GROUPS;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::rc::Rc;

/// How to run a job.
///
/// ```
/// use streamcore::{ErrorPolicy, JobConfig};
/// let config = JobConfig::default().parallelism(2).batch_size(512).error_policy(ErrorPolicy::DeadLetter);
/// assert_eq!(config.parallelism, 2);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobConfig {
    /// Parallel instances of every stage (sources that cannot split run fewer). Default: the
    /// number of cores.
    pub parallelism: usize,
    /// Most records per batch between operators. Default 1024.
    pub batch_size: usize,
    /// Capacity of each exchange queue, in batches: the bound on memory between stages and
    /// the point where backpressure starts. Default 16.
    pub queue_capacity: usize,
    /// Number of key groups, the most parallelism keyed state can be split into. Default 128.
    pub key_groups: u32,
    /// What happens to bad input and failing user functions. Default `fail`.
    pub error_policy: ErrorPolicy,
    /// Least time between two watermarks a source sends. Zero (the default) sends one after
    /// every batch that advanced it: the most precise, and deterministic for a given input and
    /// batch size, at the cost of a control message per batch and exchange queue. A few
    /// milliseconds cut that cost for high-rate keyed jobs (see docs/benchmarks.md).
    #[serde(with = "millis")]
    pub watermark_interval: std::time::Duration,
    /// Checkpoints (and restore); `None` (the default) runs without.
    pub checkpoints: Option<crate::checkpoint::CheckpointConfig>,
    /// Where keyed state lives (`state.backend = memory | lsm`, `state.memory-budget`, …;
    /// docs/state.md). Default: in memory.
    #[serde(default)]
    pub state: crate::state::StateConfig,
    /// Runs an exchange that has one sending task and one receiving task (a `key_by`,
    /// `rebalance` or global window at parallelism 1) as a plain call on the sender's thread
    /// instead of a queue to a thread of its own, as timely dataflow's workers exchange with
    /// themselves: records are not handed between cores (nor freed on another core than the
    /// one that made them), which cuts CPU per record, at the cost of the pipelining a second
    /// thread gives. Processing-time ticks (processing-time windows and timers, state TTL)
    /// then come from the senders' task's loop: while it blocks (a full queue of another
    /// exchange, a source's read), the fused stage's timers wait too. Default `true`; `false`
    /// keeps one thread per stage.
    pub fuse_single_exchanges: bool,
}

/// `Duration` as integer milliseconds in configuration files.
pub(crate) mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
            batch_size: 1024,
            queue_capacity: 16,
            key_groups: DEFAULT_KEY_GROUPS,
            error_policy: ErrorPolicy::Fail,
            watermark_interval: std::time::Duration::ZERO,
            checkpoints: None,
            state: crate::state::StateConfig::default(),
            fuse_single_exchanges: true,
        }
    }
}

impl JobConfig {
    /// Sets where keyed state lives (see [`crate::state::StateConfig`]).
    pub fn state(mut self, state: crate::state::StateConfig) -> Self {
        self.state = state;
        self
    }
    /// Sets the parallelism.
    pub fn parallelism(mut self, p: usize) -> Self {
        self.parallelism = p;
        self
    }
    /// Sets the batch size.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }
    /// Sets the exchange queue capacity, in batches.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n;
        self
    }
    /// Sets the number of key groups.
    pub fn key_groups(mut self, k: u32) -> Self {
        self.key_groups = k;
        self
    }
    /// Sets the least time between two watermarks of a source.
    pub fn watermark_interval(mut self, d: std::time::Duration) -> Self {
        self.watermark_interval = d;
        self
    }
    /// Runs the job with checkpoints (see [`crate::checkpoint`]).
    pub fn checkpoints(mut self, c: crate::checkpoint::CheckpointConfig) -> Self {
        self.checkpoints = Some(c);
        self
    }
    /// Sets the error policy.
    pub fn error_policy(mut self, p: ErrorPolicy) -> Self {
        self.error_policy = p;
        self
    }
    /// Sets whether an exchange with one sending and one receiving task runs on the sender's
    /// thread (see [`JobConfig::fuse_single_exchanges`]).
    pub fn fuse_single_exchanges(mut self, yes: bool) -> Self {
        self.fuse_single_exchanges = yes;
        self
    }
}

/// A dataflow job being defined: add sources, chain operators, add sinks, then run.
///
/// ```
/// use streamcore::{Job, JobConfig};
///
/// let mut job = Job::new("word-lengths");
/// let lengths = job
///     .from_vec("words", vec!["stream", "of", "words"])
///     .filter(|w| w.len() > 2)
///     .map(|w| w.len())
///     .collect();
/// let summary = job.run(JobConfig::default().parallelism(2)).unwrap();
/// let mut v = lengths.take();
/// v.sort();
/// assert_eq!(v, vec![5, 6]);
/// assert_eq!(summary.events_filtered, 1);
/// ```
pub struct Job {
    name: String,
    graph: Rc<RefCell<Graph>>,
}

impl Job {
    /// A new, empty job.
    pub fn new(name: &str) -> Self {
        Job {
            name: name.to_string(),
            graph: Rc::new(RefCell::new(Graph::default())),
        }
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds a source; its records form a new stream.
    pub fn source<T: Data, S: Source<T>>(&mut self, name: &str, source: S) -> Stream<T> {
        let port = self.graph.borrow_mut().add_source(name, source);
        Stream::new(self.graph.clone(), port)
    }

    /// Adds a bounded source over `records` (spread over the parallel readers).
    pub fn from_vec<T: Data>(&mut self, name: &str, records: Vec<T>) -> Stream<T> {
        self.source(name, VecSource(records))
    }

    /// Sets the sink of rejected records, used under [`ErrorPolicy::DeadLetter`].
    pub fn dead_letters<S: Sink<DeadLetter>>(&mut self, mut sink: S) {
        self.graph.borrow_mut().dead_letters = Some(Box::new(move |info| {
            let writer = sink.create_writer(info)?;
            Ok(Box::new(writer) as Box<dyn SinkWriter<DeadLetter>>)
        }));
    }

    /// Starts the job on its worker threads and returns at once.
    pub fn start(self, config: JobConfig) -> Result<JobHandle> {
        let graph = std::mem::take(&mut *self.graph.borrow_mut());
        launch(graph, &self.name, &config)
    }

    /// Runs the job to its end: every source exhausted and every sink flushed. Returns the
    /// metrics summary, or the first error of any task (the other tasks are stopped).
    pub fn run(self, config: JobConfig) -> Result<JobSummary> {
        self.start(config)?.join()
    }
}
