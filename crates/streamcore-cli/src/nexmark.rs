//! `streamcore nexmark`: runs one Nexmark query (`streamcore_nexmark::queries`) on the built-in
//! generator (or a JSON-lines file) and prints on stderr the events/s, elapsed time and number
//! of result rows, then the CPU time (user + system), events per CPU-second and peak memory
//! (resident set high-water mark) of the process; `--output FILE` also writes the rows as CSV
//! with a header in the sink table's column order (the final table, for an updating query),
//! `--changelog FILE` the raw insert/delete stream with an `op` column.
//!
//! CPU time and peak memory come from `/proc/self/stat` and `/proc/self/status` (Linux; shown
//! as `n/a` elsewhere).

use crate::checkpointing::{run_job, CheckpointArgs};
use crate::parallelism::ParallelismArg;
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
use streamcore_nexmark::output::{ChangelogCsvSink, TableSink};
use streamcore_nexmark::queries::{build_query, write_csv, QueryRow, RowSink, QUERY_NAMES};
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
    #[command(flatten)]
    parallelism: ParallelismArg,
    /// Event-time rate of the generator, events per second of event time.
    #[arg(long, default_value_t = GeneratorConfig::default().first_event_rate)]
    rate: u64,
    /// Seed of the generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the result rows to this CSV file (for an updating query: its final table, the
    /// changelog applied as it arrives).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Write the raw changelog to this CSV file: a first column `op` — `+` for an insert, `-`
    /// for a delete (a retraction; an update is `-` old row then `+` new row) — then the
    /// row's columns. An append-only query writes every row with `+`. Replaying the file
    /// gives the `--output` table.
    #[arg(long)]
    changelog: Option<PathBuf>,
    /// Read the events from this JSON-lines file (the Flink benchmark's nested layout, as
    /// `--generate` writes it; any field order, nulls for absent objects) instead of the
    /// generator. Its watermark is Flink's: `dateTime - 4 s`.
    #[arg(long, conflicts_with = "generate")]
    input: Option<PathBuf>,
    /// Write `--events` generated events to this JSON-lines file (the nested layout) and exit.
    #[arg(long)]
    generate: Option<PathBuf>,
    /// With --checkpoint-dir, `--output` is a directory of exactly-once CSV part files
    /// (append-only queries; an updating query's final table lives in the sink and is not
    /// checkpointed, so it refuses `--output` with checkpoints; `--changelog` is refused).
    #[command(flatten)]
    checkpoints: CheckpointArgs,
    #[command(flatten)]
    http: crate::http::HttpArgs,
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
    /// CPU time of the process during the job (user + system, every thread), if known.
    pub cpu: Option<CpuTime>,
}

/// CPU time of this process: user and system, summed over all its threads (finished ones
/// included), from `/proc/self/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuTime {
    /// User-mode seconds.
    pub user: f64,
    /// Kernel-mode seconds.
    pub system: f64,
}

impl CpuTime {
    /// The process's CPU time so far; `None` without `/proc` (not Linux).
    pub fn now() -> Option<CpuTime> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        parse_stat(&stat)
    }

    /// User + system seconds.
    pub fn total(&self) -> f64 {
        self.user + self.system
    }

    fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user: self.user - earlier.user,
            system: self.system - earlier.system,
        }
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, `sysconf(_SC_CLK_TCK)`): 100 on
/// every mainstream Linux architecture, and part of the kernel's user-space ABI.
const USER_HZ: f64 = 100.0;

/// User and system time from the text of `/proc/<pid>/stat`: after the command name (in
/// parentheses, which may itself contain spaces and parentheses), fields 14 and 15 in ticks.
fn parse_stat(stat: &str) -> Option<CpuTime> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(CpuTime {
        user: user as f64 / USER_HZ,
        system: system as f64 / USER_HZ,
    })
}

/// Peak resident set size of this process so far (`VmHWM` of `/proc/self/status`), in bytes;
/// `None` without `/proc`.
pub fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line["VmHWM:".len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Where the results of a run go.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    /// The result rows as CSV (the final table of an updating query).
    pub table: Option<PathBuf>,
    /// The changelog as CSV with an `op` column.
    pub changelog: Option<PathBuf>,
    /// The job checkpoints: `table` is then a directory of exactly-once part files.
    pub checkpoints: bool,
}

/// Counts the rows and writes them where [`Outputs`] says.
struct CliSink {
    outputs: Outputs,
    count: CountingSink,
    columns: &'static [&'static str],
    /// For updating queries with an output: writes the final table, returns its row count.
    finish: Option<Finish>,
    /// Why this run cannot go ahead as asked.
    refused: Option<String>,
}

type Finish = Box<dyn FnOnce() -> anyhow::Result<u64>>;

impl RowSink for CliSink {
    fn attach<R: QueryRow>(&mut self, rows: Stream<R>) {
        self.columns = R::COLUMNS;
        if let Some(path) = &self.outputs.table {
            let sink = if self.outputs.checkpoints {
                CsvSink::dir(path.clone())
            } else {
                CsvSink::file(path.clone())
            };
            rows.clone().sink_named("csv", sink);
        }
        if let Some(path) = &self.outputs.changelog {
            rows.clone()
                .map(Change::Insert)
                .sink_named("changelog", ChangelogCsvSink::new(path));
        }
        rows.sink_named("count", self.count.clone());
    }

    fn attach_changelog<R: QueryRow + Hash + Eq>(&mut self, changes: Stream<Change<R>>) {
        self.columns = R::COLUMNS;
        if self.outputs.checkpoints
            && (self.outputs.table.is_some() || self.outputs.changelog.is_some())
        {
            self.refused = Some(
                "an updating query's --output/--changelog cannot be written exactly once yet: run it with checkpoints but without them, or without checkpoints".into(),
            );
        }
        if let Some(path) = &self.outputs.table {
            // The CSV holds the final table: the changelog applied as it arrives, written at
            // the end of the job.
            let (sink, table) = TableSink::new();
            changes.clone().sink_named("table", sink);
            let path = path.clone();
            self.finish = Some(Box::new(move || {
                let rows = table.rows()?;
                write_csv(&path, &rows).with_context(|| format!("writing {}", path.display()))?;
                Ok(rows.len() as u64)
            }));
        }
        if let Some(path) = &self.outputs.changelog {
            changes
                .clone()
                .sink_named("changelog", ChangelogCsvSink::new(path));
        }
        changes.sink_named("count", self.count.clone());
    }
}

/// Runs query `name` on `config`'s generator at `parallelism`, writing CSV to `outputs`.
pub fn run_query(
    name: &str,
    config: &GeneratorConfig,
    job_config: JobConfig,
    outputs: &Outputs,
    http: &crate::http::HttpArgs,
) -> anyhow::Result<QueryRun> {
    let mut job = Job::new(&format!("nexmark-{name}"));
    let mut sink = CliSink {
        outputs: outputs.clone(),
        count: CountingSink::new(),
        columns: &[],
        finish: None,
        refused: None,
    };
    build_query(name, &mut job, config, &mut sink)?;
    if let Some(why) = sink.refused.take() {
        anyhow::bail!("{name}: {why}");
    }
    let cpu_before = CpuTime::now();
    let started = Instant::now();
    run_job(job, job_config, http).with_context(|| format!("running {name}"))?;
    let elapsed = started.elapsed();
    let cpu = CpuTime::now()
        .zip(cpu_before)
        .map(|(after, before)| after.since(&before));
    let output = outputs.table.as_deref();
    let mut table_rows = None;
    if let Some(finish) = sink.finish.take() {
        table_rows = Some(finish()?);
    } else if let Some(path) = output.filter(|_| !outputs.checkpoints) {
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
        cpu,
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
        config.events =
            Some(count_lines(path).with_context(|| format!("reading {}", path.display()))?);
        config.input = Some(path.to_string_lossy().into_owned());
    }
    let args = NexmarkArgs {
        query: Some(query),
        ..args
    };
    let name = args.query.as_deref().unwrap_or_default();
    let outputs = Outputs {
        table: args.output.clone(),
        changelog: args.changelog.clone(),
        checkpoints: args.checkpoints.enabled(),
    };
    if outputs.checkpoints && outputs.changelog.is_some() {
        anyhow::bail!(
            "--changelog writes one file and cannot commit per checkpoint: leave it out with --checkpoint-dir (--output is a directory of exactly-once part files)"
        );
    }
    // One job, and the process ends with it: its finished tasks' state goes with the process.
    streamcore::state::free_state_with_the_process(true);
    let parallelism = args.parallelism.get();
    let job_config = args
        .checkpoints
        .apply(JobConfig::default().parallelism(parallelism));
    let run = run_query(name, &config, job_config, &outputs, &args.http)?;
    let secs = run.elapsed.as_secs_f64();
    eprintln!(
        "{}: {} events in {:.3} s ({:.0} events/s), {} output rows (parallelism {})",
        name,
        run.events,
        secs,
        run.events as f64 / secs.max(1e-9),
        run.rows,
        parallelism
    );
    let cpu = match run.cpu {
        Some(cpu) => format!(
            "cpu time {:.2} s (user {:.2} s, sys {:.2} s), {:.0} events per CPU-second",
            cpu.total(),
            cpu.user,
            cpu.system,
            run.events as f64 / cpu.total().max(0.01)
        ),
        None => "cpu time n/a".to_string(),
    };
    let peak = match peak_memory() {
        Some(bytes) => format!("{} MB", bytes.div_ceil(1 << 20)),
        None => "n/a".to_string(),
    };
    eprintln!("{name}: {cpu}; peak memory: {peak}");
    if let Some(n) = run.table_rows {
        eprintln!("{name}: {n} rows in the final table");
    }
    Ok(())
}

/// Lines (events) of a JSON-lines file, counted in 1 MiB chunks (the file may be far larger
/// than memory should be for the run that follows).
fn count_lines(path: &Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    // A last line without a newline is an event too.
    Ok(lines + u64::from(last != b'\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        // A command name with spaces and a parenthesis; utime 250, stime 31 ticks.
        let stat =
            "4242 (stream core) x) R 1 4242 4242 0 -1 4194304 1 0 0 0 250 31 0 0 20 0 3 0 1 2 3";
        let cpu = parse_stat(stat).unwrap();
        assert_eq!(cpu.user, 2.5);
        assert_eq!(cpu.system, 0.31);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn parses_vm_hwm() {
        let status =
            "Name:\tstreamcore\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(2 << 20));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn measures_this_process() {
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(CpuTime::now().is_some());
            assert!(peak_memory().unwrap() > 0);
        }
    }

    #[test]
    fn counts_lines_with_and_without_a_final_newline() {
        let dir = std::env::temp_dir().join(format!("nexmark-lines-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a");
        std::fs::write(&a, "x\ny\n").unwrap();
        assert_eq!(count_lines(&a).unwrap(), 2);
        std::fs::write(&a, "x\ny").unwrap();
        assert_eq!(count_lines(&a).unwrap(), 2);
        std::fs::write(&a, "").unwrap();
        assert_eq!(count_lines(&a).unwrap(), 0);
        std::fs::remove_dir_all(&dir).ok();
    }
}
