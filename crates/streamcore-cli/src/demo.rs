//! `streamcore demo`: the design note's pipeline — generator (or a JSON-lines input) →
//! keep amount > 100 → enrich → JSON lines out, metrics summary on stderr.

use anyhow::Context;
use clap::Args;
use compact_str::CompactString;
use std::time::{SystemTime, UNIX_EPOCH};
use streamcore::{
    ErrorPolicy, Event, Job, JobConfig, Operator, Output, Stream, TaskContext, Value,
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
    /// Worker threads per stage [default: number of cores].
    #[arg(long, short = 'p')]
    parallelism: Option<usize>,
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
    /// Write the enriched events to this JSON-lines file instead of stdout.
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

/// The demo pipeline on any stream of events.
pub fn pipeline(events: Stream<Event>) -> Stream<Event> {
    events
        .try_filter(is_high_value)
        .name("high_value_filter")
        .apply("enrichment", Enrichment)
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let mut config = JobConfig::default()
        .error_policy(args.error_policy)
        .batch_size(args.batch_size);
    if let Some(p) = args.parallelism {
        config = config.parallelism(p);
    }
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
                ..Default::default()
            });
            job.source("transactions", generator.source())
        }
    };
    let out = pipeline(events);
    match &args.output {
        Some(path) => out.sink_named("output", JsonLinesSink::file(path)),
        None => out.sink_named("stdout", StdoutSink::new()),
    }
    match (&args.dead_letter, args.error_policy) {
        (Some(path), _) => job.dead_letters(JsonLinesSink::file(path)),
        (None, ErrorPolicy::DeadLetter) => {
            anyhow::bail!("--error-policy dead-letter needs --dead-letter PATH")
        }
        (None, ErrorPolicy::Fail) => {}
    }
    let handle = job.start(config).context("starting the demo job")?;
    let summary = handle.join().context("the demo job failed")?;
    if args.metrics_json {
        eprintln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        eprint!("{summary}");
    }
    Ok(())
}
