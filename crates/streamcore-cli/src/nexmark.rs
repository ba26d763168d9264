//! `streamcore nexmark`: runs one Nexmark query (`streamcore_nexmark::queries`) on the built-in
//! generator and prints events/s, elapsed time and the number of result rows on stderr;
//! `--output FILE` also writes the rows as CSV with a header in the sink table's column order.

use anyhow::Context;
use clap::Args;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use streamcore::join::Change;
use streamcore::sink::CountingSink;
use streamcore::{Job, JobConfig, Stream};
use streamcore_connectors::CsvSink;
use streamcore_nexmark::json::write_json_lines;
use streamcore_nexmark::queries::{
    apply_changelog, build_query, write_csv, QueryRow, RowSink, QUERY_NAMES,
};
use streamcore_nexmark::{GeneratorConfig, NexmarkGenerator};

#[derive(Args, Debug)]
pub struct NexmarkArgs {
    /// The query, q0 to q22. Updating queries (q4, q6, q9, q15–q19) count changelog records
    /// as output rows and write their final table.
    #[arg(long, required_unless_present = "generate")]
    query: Option<String>,
    /// Number of generated events (persons, auctions and bids together).
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Parallel instances of every stage (sources included).
    #[arg(long, default_value_t = 2)]
    parallelism: usize,
    /// Event-time rate of the generator, events per second of event time.
    #[arg(long, default_value_t = GeneratorConfig::default().first_event_rate)]
    rate: u64,
    /// Seed of the generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the result rows to this CSV file.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Read the events from this JSON-lines file (the Flink benchmark's nested layout, as
    /// `--generate` writes it; any field order, nulls for absent objects) instead of the
    /// generator. Its watermark is Flink's: `dateTime - 4 s`.
    #[arg(long, conflicts_with = "generate")]
    input: Option<PathBuf>,
    /// Write `--events` generated events to this JSON-lines file (the nested layout) and exit.
    #[arg(long)]
    generate: Option<PathBuf>,
}

/// What one run of a query did.
#[derive(Debug)]
pub struct QueryRun {
    /// Generated events.
    pub events: u64,
    /// Result rows (changes, for an updating query).
    pub rows: u64,
    /// Rows of the final table, for an updating query written to a file.
    pub table_rows: Option<u64>,
    /// Wall-clock time of the job.
    pub elapsed: Duration,
}

/// Counts the rows and, with an output path, writes them as CSV.
struct CliSink {
    output: Option<PathBuf>,
    count: CountingSink,
    columns: &'static [&'static str],
    /// For updating queries with an output: writes the final table, returns its row count.
    finish: Option<Finish>,
}

type Finish = Box<dyn FnOnce() -> anyhow::Result<u64>>;

impl RowSink for CliSink {
    fn attach<R: QueryRow>(&mut self, rows: Stream<R>) {
        self.columns = R::COLUMNS;
        if let Some(path) = &self.output {
            rows.clone().sink_named("csv", CsvSink::new(path.clone()));
        }
        rows.sink_named("count", self.count.clone());
    }

    fn attach_changelog<R: QueryRow + Hash + Eq>(&mut self, changes: Stream<Change<R>>) {
        self.columns = R::COLUMNS;
        if let Some(path) = &self.output {
            // The CSV holds the final table: the changelog applied at the end of the job.
            let collected = changes.clone().collect();
            let path = path.clone();
            self.finish = Some(Box::new(move || {
                let rows = apply_changelog(collected.take());
                write_csv(&path, &rows).with_context(|| format!("writing {}", path.display()))?;
                Ok(rows.len() as u64)
            }));
        }
        changes.sink_named("count", self.count.clone());
    }
}

/// Runs query `name` on `config`'s generator at `parallelism`, writing CSV to `output`.
pub fn run_query(
    name: &str,
    config: &GeneratorConfig,
    parallelism: usize,
    output: Option<&Path>,
) -> anyhow::Result<QueryRun> {
    let mut job = Job::new(&format!("nexmark-{name}"));
    let mut sink = CliSink {
        output: output.map(Path::to_path_buf),
        count: CountingSink::new(),
        columns: &[],
        finish: None,
    };
    build_query(name, &mut job, config, &mut sink)?;
    let started = Instant::now();
    job.run(JobConfig::default().parallelism(parallelism))
        .with_context(|| format!("running {name}"))?;
    let elapsed = started.elapsed();
    let mut table_rows = None;
    if let Some(finish) = sink.finish.take() {
        table_rows = Some(finish()?);
    } else if let Some(path) = output {
        // The CSV sink writes the header with the first row: add it to an empty result.
        let empty = std::fs::metadata(path)
            .map(|m| m.len() == 0)
            .unwrap_or(true);
        if empty {
            std::fs::write(path, format!("{}\n", sink.columns.join(",")))
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(QueryRun {
        events: config.events.unwrap_or(0),
        rows: sink.count.count(),
        table_rows,
        elapsed,
    })
}

/// `streamcore nexmark`.
pub fn run(args: NexmarkArgs) -> anyhow::Result<()> {
    let mut config = GeneratorConfig {
        events: Some(args.events),
        first_event_rate: args.rate,
        seed: args.seed,
        ..Default::default()
    };
    if let Some(path) = &args.generate {
        let generator = NexmarkGenerator::new(config.clone())?;
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let started = Instant::now();
        write_json_lines(
            &generator,
            0..args.events,
            std::io::BufWriter::with_capacity(1 << 20, file),
        )
        .with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "wrote {} events to {} in {:.2} s",
            args.events,
            path.display(),
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let query = args.query.clone().unwrap_or_default();
    if !QUERY_NAMES.contains(&query.as_str()) {
        anyhow::bail!(
            "unknown query `{query}` (known: {})",
            QUERY_NAMES.join(", ")
        );
    }
    if let Some(path) = &args.input {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        config.events = Some(bytes.iter().filter(|&&b| b == b'\n').count() as u64);
        config.input = Some(path.to_string_lossy().into_owned());
    }
    let args = NexmarkArgs {
        query: Some(query),
        ..args
    };
    let name = args.query.as_deref().unwrap_or_default();
    let run = run_query(name, &config, args.parallelism, args.output.as_deref())?;
    let secs = run.elapsed.as_secs_f64();
    eprintln!(
        "{}: {} events in {:.3} s ({:.0} events/s), {} output rows (parallelism {})",
        name,
        run.events,
        secs,
        run.events as f64 / secs.max(1e-9),
        run.rows,
        args.parallelism
    );
    if let Some(n) = run.table_rows {
        eprintln!("{name}: {n} rows in the final table");
    }
    Ok(())
}
