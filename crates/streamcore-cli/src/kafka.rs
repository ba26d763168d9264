//! `streamcore kafka`: the demo pipeline (amount > 100, enriched) from Kafka topics to a Kafka
//! topic or JSON-lines output, with checkpoints, consumer groups and a dead-letter topic; and
//! `streamcore kafka-bench`: Kafka → filter/map → Kafka throughput and end-to-end latency.

use crate::checkpointing::{print_summary, run_job, CheckpointArgs};
use crate::demo::{enrich, is_high_value, json_sink, now_secs, pipeline};
use crate::parallelism::ParallelismArg;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use streamcore::sink::ForEachSink;
use streamcore::source::Generator;
use streamcore::{
    DeadLetter, ErrorPolicy, Event, Fields, Job, JobConfig, Stream, Timestamp, Value,
};
use streamcore_connectors::kafka::{
    create_topic, Delivery, KafkaConfig, KafkaSink, KafkaSource, SaslMechanism, StartOffsets,
};
use streamcore_connectors::JsonLinesSink;

/// How to reach the brokers: shared by `kafka` and `kafka-bench`.
#[derive(Args, Debug, Clone)]
pub struct ConnectionArgs {
    /// Bootstrap brokers, `host:port[,…]`.
    #[arg(long, env = "STREAMCORE_KAFKA_BROKERS")]
    brokers: String,
    /// Connect over TLS.
    #[arg(long)]
    tls: bool,
    /// CA certificate file for TLS (default: the system's trust store).
    #[arg(long)]
    tls_ca: Option<String>,
    /// SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long, requires = "sasl_user")]
    sasl_mechanism: Option<SaslMechanism>,
    /// SASL user name.
    #[arg(long, requires = "sasl_mechanism")]
    sasl_user: Option<String>,
    /// SASL password (better from the environment than the command line; never logged).
    #[arg(long, env = "STREAMCORE_KAFKA_PASSWORD", hide_env_values = true)]
    sasl_password: Option<String>,
    /// Any librdkafka property, `key=value` (repeatable).
    #[arg(long = "kafka-property", value_parser = key_value)]
    properties: Vec<(String, String)>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected key=value, got `{s}`"))
}

impl ConnectionArgs {
    fn config(&self) -> anyhow::Result<KafkaConfig> {
        let mut c = KafkaConfig::new(&self.brokers);
        if self.tls || self.tls_ca.is_some() {
            c = c.tls(self.tls_ca.as_deref());
        }
        if let (Some(m), Some(user)) = (self.sasl_mechanism, &self.sasl_user) {
            let password = self
                .sasl_password
                .as_deref()
                .context("SASL needs a password (--sasl-password or STREAMCORE_KAFKA_PASSWORD)")?;
            c = c.sasl(m, user, password);
        }
        for (k, v) in &self.properties {
            c = c.set(k, v);
        }
        Ok(c)
    }
}

#[derive(Args, Debug)]
pub struct KafkaArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Input topic (repeatable).
    #[arg(long = "topic", required_unless_present = "topic_pattern")]
    topics: Vec<String>,
    /// Read every topic whose name matches this regular expression instead.
    #[arg(long)]
    topic_pattern: Option<String>,
    /// Join this consumer group: processes with the same group share the partitions, and
    /// offsets are committed to the group at completed checkpoints.
    #[arg(long)]
    group: Option<String>,
    /// Where to start without a checkpoint: earliest, latest, group, timestamp:MILLIS.
    #[arg(long, default_value = "earliest")]
    start: StartOffsets,
    /// Stop at the end of the topics as they are at start (in a group: once the group
    /// committed those offsets on every partition).
    #[arg(long)]
    bounded: bool,
    /// Add a running count per partition key to every output event (`key_count`): keyed
    /// state, which a group moves with the partitions under --state-handover.
    #[arg(long)]
    count_per_key: bool,
    /// Move keyed state with the partitions between the processes of the group through this
    /// directory, shared by all of them (each with its --checkpoint-dir directly under it).
    /// The input topic must be partitioned by key group (docs/kafka.md).
    #[arg(long, requires_all = ["group", "checkpoint_dir"])]
    state_handover: Option<PathBuf>,
    /// Write the enriched events to this topic.
    #[arg(long, conflicts_with = "output")]
    output_topic: Option<String>,
    /// Key output records by this data field (default: the partition key).
    #[arg(long)]
    key_field: Option<String>,
    /// Partition the output topic by key group (what a job reading it with --state-handover
    /// needs: a repartition topic).
    #[arg(long, requires = "output_topic")]
    partition_by_key_group: bool,
    /// Write the output topic with Kafka transactions, one per checkpoint (needs
    /// --checkpoint-dir; read it with isolation.level=read_committed).
    #[arg(long, requires = "output_topic")]
    exactly_once: bool,
    /// Write the enriched events to JSON lines instead: a file, or with --checkpoint-dir a
    /// directory of exactly-once part files.
    #[arg(long)]
    output: Option<String>,
    /// `fail` or `dead-letter` (with --dead-letter-topic or --dead-letter).
    #[arg(long, default_value_t = ErrorPolicy::Fail)]
    error_policy: ErrorPolicy,
    /// Topic for rejected records (JSON: origin, raw, reason, rejected_at).
    #[arg(long)]
    dead_letter_topic: Option<String>,
    /// JSON-lines file for rejected records.
    #[arg(long, conflicts_with = "dead_letter_topic")]
    dead_letter: Option<String>,
    #[command(flatten)]
    parallelism: ParallelismArg,
    /// Print the metrics (job and Kafka) as JSON on stderr.
    #[arg(long)]
    metrics_json: bool,
    #[command(flatten)]
    checkpoints: CheckpointArgs,
    #[command(flatten)]
    http: crate::http::HttpArgs,
}

pub fn run(args: KafkaArgs) -> anyhow::Result<()> {
    let kafka = args.connection.config()?;
    let config = JobConfig::default()
        .parallelism(args.parallelism.get())
        .error_policy(args.error_policy);
    let config = args.checkpoints.apply(config);
    let checkpoints = args.checkpoints.enabled();
    let mut job = Job::new("kafka");
    let topics: Vec<&str> = args.topics.iter().map(String::as_str).collect();
    let mut source = match &args.topic_pattern {
        Some(p) => KafkaSource::pattern(kafka.clone(), p),
        None => KafkaSource::new(kafka.clone(), &topics),
    }
    .start(args.start);
    if let Some(g) = &args.group {
        source = source.group(g);
    }
    if args.bounded {
        source = source.bounded();
    }
    let handover_url = args
        .state_handover
        .as_ref()
        .and_then(|r| r.to_str())
        .filter(|r| crate::checkpointing::is_object_store_url(r));
    if let Some(root) = handover_url {
        source = crate::checkpointing::state_handover_on(
            source,
            root,
            args.checkpoints.checkpoint_dir.as_deref(),
        )?;
    } else if let Some(root) = &args.state_handover {
        // A process that dies leaves its partitions' state in its checkpoints: the others
        // look for them under the root.
        let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or(p.to_path_buf());
        if let Some(dir) = args.checkpoints.checkpoint_dir.as_deref() {
            anyhow::ensure!(
                absolute(dir).parent() == Some(absolute(root).as_path()),
                "--checkpoint-dir {} must be a directory directly under --state-handover {} (where the group finds a dead process's checkpoints)",
                dir.display(),
                root.display()
            );
        }
        source = source.state_handover(root);
    }
    let mut out = pipeline(job.source("kafka", source));
    if args.count_per_key {
        out = count_per_key(out);
    }
    match (&args.output_topic, &args.output) {
        (Some(topic), _) => {
            let delivery = if args.exactly_once {
                Delivery::ExactlyOnce {
                    transactional_id_prefix: None,
                }
            } else {
                Delivery::AtLeastOnce
            };
            let mut sink = KafkaSink::events(kafka.clone(), topic).delivery(delivery);
            if args.partition_by_key_group {
                sink = sink.partition_by_key_group();
            }
            match &args.key_field {
                Some(f) => out.sink_named("kafka-out", sink.key_field(f)),
                None => out.sink_named("kafka-out", sink.key_partition_key()),
            }
        }
        (None, Some(path)) => out.sink_named("output", json_sink(path, checkpoints)),
        (None, None) => anyhow::bail!("give --output-topic or --output"),
    }
    match (
        &args.dead_letter_topic,
        &args.dead_letter,
        args.error_policy,
    ) {
        (Some(topic), _, _) => {
            job.dead_letters(KafkaSink::<DeadLetter, _>::json(kafka.clone(), topic))
        }
        (None, Some(path), _) => job.dead_letters(JsonLinesSink::file(path)),
        (None, None, ErrorPolicy::DeadLetter) => {
            anyhow::bail!("--error-policy dead-letter needs --dead-letter-topic or --dead-letter")
        }
        (None, None, ErrorPolicy::Fail) => {}
    }
    // The summary holds the Kafka source's and sink's own metrics (lag per partition,
    // offset commits, transactions) under `connectors`.
    let summary = run_job(job, config, &args.http)?;
    print_summary(&summary, args.metrics_json)
}

/// Adds `key_count`, the running count of events per partition key, to every event.
fn count_per_key(events: Stream<Event>) -> Stream<Event> {
    events
        .map(|e| (e, 1u64))
        .name("count-input")
        .key_by(|(e, _): &(Event, u64)| e.partition_key.clone().unwrap_or_default())
        .reduce(|(_, n), (e, one)| (e, n + one))
        .name("count-per-key")
        .map(|(mut e, n)| {
            e.data.insert("key_count", Value::Int(n as i64));
            e
        })
        .name("with-count")
}

#[derive(Args, Debug)]
pub struct KafkaBenchArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Events preloaded for the throughput run.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Input rate of the latency run, events per second.
    #[arg(long, default_value_t = 50_000.0)]
    rate: f64,
    /// Length of the latency run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Partitions of the input and output topics.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    // `-p`: the parallelism of the pipeline job under test (the producer and the measuring
    // consumers are fixed).
    #[command(flatten)]
    parallelism: ParallelismArg,
}

/// A generated transaction stamped with its wall-clock creation time (`sent_ms`).
fn stamped(i: u64) -> Event {
    let mut data = Fields::new();
    data.push_unchecked("user_id", Value::Str(format!("user_{}", i % 1000).into()));
    data.push_unchecked("amount", Value::Float(50.0 + 25.0 * (i % 20) as f64));
    data.push_unchecked("sent_ms", Value::Int(Timestamp::now().millis()));
    Event::new(format!("txn_{i}"), Timestamp::now(), "transaction", data)
        .with_partition_key(format!("user_{}", i % 1000))
}

/// The pipeline under test: Kafka → amount > 100 → enrich → Kafka.
fn pipeline_job(kafka: &KafkaConfig, input: &str, output: &str, bounded: bool) -> Job {
    let mut job = Job::new("kafka-bench");
    let mut source = KafkaSource::new(kafka.clone(), &[input]);
    if bounded {
        source = source.bounded();
    }
    job.source("in", source)
        .filter(|e: &Event| is_high_value(e).unwrap_or(false))
        .map(|e| enrich(e, now_secs()))
        .sink_named(
            "out",
            KafkaSink::events(kafka.clone(), output).key_partition_key(),
        );
    job
}

/// Starts a job reading `topic` that records now − `sent_ms` of every event.
fn measure(
    kafka: &KafkaConfig,
    topic: &str,
) -> anyhow::Result<(Arc<Mutex<Vec<u64>>>, streamcore::JobHandle)> {
    let latencies: Arc<Mutex<Vec<u64>>> = Arc::default();
    let sink_latencies = latencies.clone();
    let mut job = Job::new("measure");
    job.source("measured", KafkaSource::new(kafka.clone(), &[topic]))
        .sink_named(
            "measure",
            ForEachSink(move |e: Event| {
                if let Some(sent) = e.get("sent_ms").and_then(Value::as_f64) {
                    let now = Timestamp::now().millis();
                    sink_latencies
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((now - sent as i64).max(0) as u64);
                }
            }),
        );
    Ok((latencies, job.start(JobConfig::default().parallelism(1))?))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn bench(args: KafkaBenchArgs) -> anyhow::Result<()> {
    let kafka = args.connection.config()?;
    let run_id = std::process::id();
    let topic = |name: &str| -> anyhow::Result<String> {
        let t = format!("bench-{run_id}-{name}");
        create_topic(&kafka, &t, args.partitions)?;
        Ok(t)
    };
    // 1. Throughput: preload, then run the pipeline over what is there.
    let (input, output) = (topic("in")?, topic("out")?);
    let mut load = Job::new("load");
    load.source("gen", Generator::new(stamped).bounded(args.events))
        .sink_named(
            "in",
            KafkaSink::events(kafka.clone(), &input).key_partition_key(),
        );
    let loaded = load.run(JobConfig::default().parallelism(2))?;
    let started = Instant::now();
    let summary = pipeline_job(&kafka, &input, &output, true)
        .run(JobConfig::default().parallelism(args.parallelism.get()))?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "throughput: {} events in {:.2} s = {:.0} events/s (produce {:.0} events/s); {} written",
        summary.events_ingested,
        secs,
        summary.events_ingested as f64 / secs,
        loaded.events_ingested as f64 / (loaded.duration_ms / 1e3),
        summary.events_emitted
    );
    // 2. Latency at a fixed rate: producer job, pipeline job, and two consumers measuring
    // now − sent_ms: of the output (end to end) and of the input (the broker's own produce →
    // fetch hop, the floor any pipeline pays twice).
    let (input, output) = (topic("lat-in")?, topic("lat-out")?);
    let (end_to_end, consumer) = measure(&kafka, &output)?;
    let (broker_hop, input_consumer) = measure(&kafka, &input)?;
    let pipeline = pipeline_job(&kafka, &input, &output, false)
        .start(JobConfig::default().parallelism(args.parallelism.get()))?;
    let count = (args.rate * args.seconds as f64) as u64;
    let mut producer = Job::new("produce");
    producer
        .source(
            "gen",
            Generator::new(stamped).bounded(count).rate(args.rate),
        )
        .sink_named(
            "in",
            KafkaSink::events(kafka.clone(), &input).key_partition_key(),
        );
    let produced = producer.run(JobConfig::default().parallelism(1))?;
    let expected = (0..count)
        .filter(|i| 50.0 + 25.0 * (i % 20) as f64 > 100.0)
        .count();
    let waiting = Instant::now();
    while end_to_end.lock().unwrap_or_else(|p| p.into_inner()).len() < expected
        && waiting.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    for job in [pipeline, consumer, input_consumer] {
        job.stop();
        job.join()?;
    }
    let sorted = |l: &Arc<Mutex<Vec<u64>>>| {
        let mut l = l.lock().unwrap_or_else(|p| p.into_inner()).clone();
        l.sort_unstable();
        l
    };
    let (e2e, hop) = (sorted(&end_to_end), sorted(&broker_hop));
    println!(
        "latency at {:.0} events/s for {} s ({} produced, {} of {} expected measured): end to end p50 {} ms, p99 {} ms, max {} ms; broker hop alone (produce → fetch of the input) p50 {} ms, p99 {} ms",
        args.rate,
        args.seconds,
        produced.events_ingested,
        e2e.len(),
        expected,
        percentile(&e2e, 0.5),
        percentile(&e2e, 0.99),
        e2e.last().copied().unwrap_or(0),
        percentile(&hop, 0.5),
        percentile(&hop, 0.99),
    );
    Ok(())
}
