//! The `streamcore` binary: runs the design note's demo job and benchmarks the engine.

mod bench;
mod checkpointing;
mod demo;
mod http;
#[cfg(feature = "kafka")]
mod kafka;
mod nexmark;
mod parallelism;
mod patterns;
mod serve;
mod sql;
mod sql_shell;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;

/// mimalloc: batches are allocated on one worker thread and freed on another; glibc's
/// allocator pays for that in page faults and lock traffic (see docs/decisions.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

/// streamcore: a stream processing engine.
#[derive(Parser, Debug)]
#[command(name = "streamcore", version, about, long_about = None)]
struct Cli {
    /// Log level filter for diagnostics on stderr (e.g. `info`, `streamcore=debug`).
    #[arg(long, global = true, default_value = "warn", env = "STREAMCORE_LOG")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the design note's demo: keep transactions with amount > 100, enrich them with
    /// `processed_at` and `is_high_value`, print them as JSON lines on stdout and the metrics
    /// summary on stderr.
    Demo(demo::DemoArgs),
    /// Measure the engine against a hand-written loop (see docs/benchmarks.md); the `P=1`
    /// scenarios run at parallelism 1, the others at `-p`.
    Bench(bench::BenchArgs),
    /// Run a join or pattern-detection example (fraud, login, enrichment) on generated events.
    Patterns(patterns::PatternArgs),
    /// Run a Nexmark query on the built-in generator (events/s, elapsed time, row count).
    Nexmark(nexmark::NexmarkArgs),
    /// Run a Flink SQL script: `streamcore sql FILE.sql`, `streamcore sql -e "…"`, or a script
    /// on standard input (statements in order; every INSERT of the script runs as one job;
    /// see docs/sql.md). With no script on a terminal: the interactive SQL shell.
    Sql(sql::SqlArgs),
    /// Run the HTTP endpoint alone, as a session cluster: jobs are submitted to it
    /// (`streamcore submit`, `POST /api/v1/jobs`) and run side by side until SIGINT/SIGTERM
    /// (see docs/operations.md).
    Serve(serve::ServeArgs),
    /// Submit a SQL script's INSERT statements as one job to `streamcore serve`; prints the
    /// job id.
    Submit(serve::SubmitArgs),
    /// Explain what holds each operator's watermark back in a job running with `--http`:
    /// the input channel and source split, by how much, since when, and the window waiting.
    ExplainWatermarks(http::watermarks::ExplainArgs),
    /// Run the demo pipeline from Kafka topics to a Kafka topic or JSON lines (checkpoints,
    /// consumer groups, exactly-once; see docs/kafka.md).
    #[cfg(feature = "kafka")]
    Kafka(kafka::KafkaArgs),
    /// Measure Kafka → filter/map → Kafka: throughput, and end-to-end latency at a fixed rate
    /// (the pipeline runs at `-p`).
    #[cfg(feature = "kafka")]
    KafkaBench(kafka::KafkaBenchArgs),
    /// Run the demo pipeline from Kafka topics (not in this build: needs the `kafka` cargo
    /// feature).
    #[cfg(not(feature = "kafka"))]
    #[command(disable_help_flag = true)]
    Kafka(NotBuilt),
    /// Measure Kafka → filter/map → Kafka (not in this build: needs the `kafka` cargo feature).
    #[cfg(not(feature = "kafka"))]
    #[command(disable_help_flag = true)]
    KafkaBench(NotBuilt),
}

/// The arguments of a subcommand this build leaves out: taken as they come, only to say how
/// to get a build that has it.
#[cfg(not(feature = "kafka"))]
#[derive(clap::Args, Debug)]
struct NotBuilt {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _args: Vec<std::ffi::OsString>,
}

/// The error for `streamcore <command>` in a build without the `kafka` feature.
#[cfg(not(feature = "kafka"))]
fn needs_kafka_feature(command: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "`streamcore {command}` is not in this build: Kafka support is behind the `kafka` cargo \
         feature (it builds librdkafka, which needs cmake). Run it with \
         `cargo run --release -p streamcore-cli --features kafka -- {command} …`, or install a \
         binary that has it with `cargo install --path crates/streamcore-cli --features kafka`"
    )
}

/// Whether log lines on stderr get ANSI colours: only on a terminal, and not when `NO_COLOR`
/// is set to a non-empty value (<https://no-color.org>).
fn log_colours() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .with_ansi(log_colours())
        .init();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Patterns(args) => patterns::run(args),
        Command::Nexmark(args) => nexmark::run(args),
        Command::Sql(args) => sql::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Submit(args) => serve::submit(args),
        Command::ExplainWatermarks(args) => http::watermarks::run(args),
        #[cfg(feature = "kafka")]
        Command::Kafka(args) => kafka::run(args),
        #[cfg(feature = "kafka")]
        Command::KafkaBench(args) => kafka::bench(args),
        #[cfg(not(feature = "kafka"))]
        Command::Kafka(_) => Err(needs_kafka_feature("kafka")),
        #[cfg(not(feature = "kafka"))]
        Command::KafkaBench(_) => Err(needs_kafka_feature("kafka-bench")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
