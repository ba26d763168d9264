//! `streamcore demo`: the design note's pipeline — generator (or a JSON-lines input) →
//! keep amount > 100 → enrich → JSON lines out, metrics summary on stderr.

use crate::checkpointing::{print_summary, run_job, CheckpointArgs};
use crate::parallelism::ParallelismArg;
use clap::Args;
use compact_str::CompactString;
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};
use streamcore::window::{AggregateFunction, WindowResult, Windows};
use streamcore::{
    ErrorPolicy, Event, Job, JobConfig, Operator, Output, Source, SourcePoll, SourceReader, Stream,
    TaskContext, Timestamp, Value, WatermarkStrategy,
};
use streamcore_connectors::{
    JsonLinesSink, JsonLinesSource, StdinSource, StdoutSink, TransactionGenerator,
    TransactionGeneratorConfig,
};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Number of generated transactions; 0 for an unbounded stream (stop with Ctrl-C).
    #[arg(long, default_value_t = 20)]
    events: u64,
    #[command(flatten)]
    parallelism: ParallelismArg,
    /// Seed of the generator: random users and amounts instead of the design note's
    /// `amount = 50 + 25·(i mod 20)`.
    #[arg(long)]
    seed: Option<u64>,
    /// Generated events per second in total [default: as fast as possible].
    #[arg(long)]
    rate: Option<f64>,
    /// Distinct users in generated events.
    #[arg(long, default_value_t = 5)]
    users: u64,
    /// Read events from JSON lines instead of the generator: a file, a directory, a glob,
    /// or `-` for stdin.
    #[arg(long)]
    input: Option<String>,
    /// Write the enriched events to this JSON-lines file instead of stdout. With
    /// --checkpoint-dir it is a directory of part files, committed exactly once per checkpoint.
    #[arg(long)]
    output: Option<String>,
    /// What to do with bad input or records the job cannot process: `fail` stops the job
    /// naming the record and the reason; `dead-letter` writes them to --dead-letter and goes on.
    #[arg(long, default_value_t = ErrorPolicy::Fail)]
    error_policy: ErrorPolicy,
    /// JSON-lines file for rejected records (with --error-policy dead-letter).
    #[arg(long)]
    dead_letter: Option<String>,
    /// Print the metrics summary on stderr as JSON instead of a table.
    #[arg(long)]
    metrics_json: bool,
    /// Records per batch between operators.
    #[arg(long, default_value_t = 1024)]
    batch_size: usize,
    /// Also compute, per user, a 10-second tumbling count/sum and 30-second sessions of the
    /// transactions, in event time; printed as JSON lines with a `window` field.
    #[arg(long)]
    windows: bool,
    /// Event time between generated transactions, in milliseconds.
    #[arg(long, default_value_t = 50)]
    interval_ms: i64,
    /// Generated events arrive up to this many milliseconds out of event-time order; the
    /// watermarks allow for it (bounded out-of-orderness).
    #[arg(long, default_value_t = 0)]
    disorder_ms: i64,
    /// Write the window results to this JSON-lines file instead of stdout (a directory with
    /// --checkpoint-dir, as --output).
    #[arg(long)]
    windows_output: Option<String>,
    /// Splits that get no events (like Kafka partitions without traffic) in a second source
    /// merged with the generator: without --idle-timeout they hold the event-time watermark,
    /// and so the windows, back (`streamcore explain-watermarks` names them).
    #[arg(long, default_value_t = 0)]
    idle_splits: u64,
    /// A source split without records for this long stops holding the watermark back, e.g.
    /// `5s` [default: never].
    #[arg(long, value_parser = streamcore::checkpoint::parse_duration)]
    idle_timeout: Option<Duration>,
    #[command(flatten)]
    checkpoints: CheckpointArgs,
    #[command(flatten)]
    http: crate::http::HttpArgs,
}

/// A JSON-lines sink at `path`: one file, or with checkpoints a directory of exactly-once
/// part files.
pub(crate) fn json_sink<T>(path: &str, checkpoints: bool) -> JsonLinesSink<T> {
    if checkpoints {
        JsonLinesSink::dir(path)
    } else {
        JsonLinesSink::file(path)
    }
}

/// One window result of the `--windows` demo.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WindowSummary {
    /// `tumbling_10s` or `session_30s`.
    pub window: &'static str,
    /// The user.
    pub user_id: Option<CompactString>,
    /// Window start (event time).
    pub start: Timestamp,
    /// Window end (event time, exclusive).
    pub end: Timestamp,
    /// Transactions in the window.
    pub count: u64,
    /// Their total amount.
    pub sum: f64,
}

/// Count and total amount of transactions.
#[derive(Clone, Copy)]
pub struct CountAndSum;

impl AggregateFunction<Event> for CountAndSum {
    type Acc = (u64, f64);
    type Out = (u64, f64);
    fn create(&self) -> (u64, f64) {
        (0, 0.0)
    }
    fn add(&self, acc: &mut (u64, f64), e: &Event) {
        acc.0 += 1;
        acc.1 += e.get_f64("amount").unwrap_or(0.0);
    }
    fn merge(&self, acc: &mut (u64, f64), other: (u64, f64)) {
        acc.0 += other.0;
        acc.1 += other.1;
    }
    fn result(&self, acc: &(u64, f64)) -> (u64, f64) {
        *acc
    }
}

/// Per-user windows over the events: 10 s tumbling and 30 s sessions, as summaries.
pub fn user_windows(events: Stream<Event>) -> Stream<WindowSummary> {
    let summarize = |name: &'static str| {
        move |r: WindowResult<Option<CompactString>, (u64, f64)>| WindowSummary {
            window: name,
            user_id: r.key,
            start: r.window.start,
            end: r.window.end,
            count: r.value.0,
            sum: r.value.1,
        }
    };
    let tumbling = events
        .clone()
        .key_by(|e| e.partition_key.clone())
        .window(Windows::tumbling(Duration::from_secs(10)))
        .aggregate(CountAndSum)
        .map(summarize("tumbling_10s"));
    let sessions = events
        .key_by(|e| e.partition_key.clone())
        .window(Windows::session(Duration::from_secs(30)))
        .aggregate(CountAndSum)
        .map(summarize("session_30s"));
    tumbling.union(sessions)
}

/// The design note's filter: amount > 100. A missing amount counts as 0 (as in the note); an
/// amount that is not a number is an error for the error policy.
pub fn is_high_value(e: &Event) -> Result<bool, String> {
    match e.get("amount") {
        None | Some(Value::Null) => Ok(false),
        Some(v) => v.as_f64().map(|a| a > 100.0).ok_or_else(|| {
            format!(
                "field `data.amount`: expected a number, got {}",
                v.type_name()
            )
        }),
    }
}

/// Wall-clock time in float seconds.
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The design note's enrichment: a new id, `processed_at` (wall-clock seconds) and
/// `is_high_value = true`.
pub fn enrich(mut e: Event, processed_at: f64) -> Event {
    let mut id = CompactString::with_capacity(9 + e.event_id.len());
    id.push_str("enriched_");
    id.push_str(&e.event_id);
    e.event_id = id;
    e.data
        .insert(CompactString::const_new("processed_at"), processed_at);
    e.data
        .insert(CompactString::const_new("is_high_value"), true);
    e
}

/// The enrichment as a batch operator: it reads the clock once per batch, so every event of
/// a batch carries the same `processed_at` (they are processed within microseconds).
#[derive(Clone)]
pub struct Enrichment;

impl Operator for Enrichment {
    type In = Event;
    type Out = Event;
    fn process_batch(
        &mut self,
        batch: Vec<Event>,
        _: &mut TaskContext,
        out: &mut Output<Event>,
    ) -> streamcore::Result<()> {
        let now = now_secs();
        out.emit_batch(batch.into_iter().map(|e| enrich(e, now)).collect());
        Ok(())
    }
}

/// A source of `n` splits (one reader) that never produce a record and run until the job
/// stops: partitions without traffic, to show what idleness does to watermarks.
pub struct SilentSplits(pub u64);

/// The reader of [`SilentSplits`].
pub struct SilentReader(u64);

impl Source<Event> for SilentSplits {
    type Reader = SilentReader;
    fn parallelism(&self, _: usize) -> usize {
        1
    }
    fn create_readers(&mut self, _: usize) -> streamcore::Result<Vec<SilentReader>> {
        Ok(vec![SilentReader(self.0)])
    }
    fn supports_checkpoints(&self) -> bool {
        true
    }
    fn restore_readers(
        &mut self,
        p: usize,
        _: Vec<Vec<u8>>,
    ) -> streamcore::Result<Vec<SilentReader>> {
        self.create_readers(p)
    }
}

impl SourceReader<Event> for SilentReader {
    fn poll_batch(
        &mut self,
        _: &mut Vec<Event>,
        _: usize,
        _: &mut TaskContext,
    ) -> streamcore::Result<SourcePoll> {
        std::thread::sleep(Duration::from_millis(5));
        Ok(SourcePoll::Idle)
    }
    fn initial_splits(&self) -> Vec<u64> {
        (0..self.0).collect()
    }
    fn snapshot_position(&mut self) -> streamcore::Result<Vec<u8>> {
        Ok(Vec::new())
    }
}

/// The demo pipeline on any stream of events.
pub fn pipeline(events: Stream<Event>) -> Stream<Event> {
    events
        .try_filter(is_high_value)
        .name("high_value_filter")
        .apply("enrichment", Enrichment)
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let config = JobConfig::default()
        .parallelism(args.parallelism.get())
        .error_policy(args.error_policy)
        .batch_size(args.batch_size);
    let config = args.checkpoints.apply(config);
    let checkpoints = args.checkpoints.enabled();
    let mut job = Job::new("demo");
    let events = match args.input.as_deref() {
        Some("-") => job.source("stdin", StdinSource::<Event>::new()),
        Some(pattern) => job.source("input", JsonLinesSource::<Event>::new(pattern)),
        None => {
            let generator = TransactionGenerator::new(TransactionGeneratorConfig {
                events: (args.events > 0).then_some(args.events),
                rate: args.rate,
                seed: args.seed,
                users: args.users,
                interval_ms: args.interval_ms,
                disorder_ms: args.disorder_ms,
                ..Default::default()
            });
            job.source("transactions", generator.source())
        }
    };
    let mut strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(
        args.disorder_ms.max(0) as u64,
    ));
    if let Some(t) = args.idle_timeout {
        strategy = strategy.with_idle_timeout(t);
    }
    let mut events = events.with_watermarks(strategy);
    if args.idle_splits > 0 {
        let idle = job
            .source("silent-partitions", SilentSplits(args.idle_splits))
            .with_watermarks(strategy);
        events = events.union(idle);
    }
    if args.windows {
        let windows = user_windows(events.clone());
        match &args.windows_output {
            Some(path) => windows.sink_named("windows", json_sink(path, checkpoints)),
            None => windows.sink_named("windows", StdoutSink::new()),
        }
    }
    let out = pipeline(events);
    match &args.output {
        Some(path) => out.sink_named("output", json_sink(path, checkpoints)),
        None => out.sink_named("stdout", StdoutSink::new()),
    }
    match (&args.dead_letter, args.error_policy) {
        (Some(path), _) => job.dead_letters(JsonLinesSink::file(path)),
        (None, ErrorPolicy::DeadLetter) => {
            anyhow::bail!("--error-policy dead-letter needs --dead-letter PATH")
        }
        (None, ErrorPolicy::Fail) => {}
    }
    let summary = run_job(job, config, &args.http)?;
    print_summary(&summary, args.metrics_json)
}
