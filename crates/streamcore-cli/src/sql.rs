//! `streamcore sql`: runs a Flink SQL script (a file, `-e "…"`, or standard input) on the
//! streamcore runtime. Statements run in order: DDL and `SET` change the session, `SHOW`,
//! `DESCRIBE` and `EXPLAIN` print their answer, a `SELECT` runs at once and prints its rows as
//! Flink's print connector does (`+I[…]`, `-U[…]`, `+U[…]`, `-D[…]`), and every `INSERT INTO`
//! of the script runs together as one job (a statement set) after the last statement — with
//! the checkpoint, restore, signal and `--http` options of every job command. With no script
//! on a terminal it opens the interactive shell ([`crate::sql_shell`]).

use crate::checkpointing::{print_summary, run_job, CheckpointArgs};
use crate::http::HttpArgs;
use crate::parallelism::ParallelismArg;
use anyhow::{bail, Context};
use clap::Args;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use streamcore::{Job, JobConfig};
use streamcore_sql::connectors::PrintSink;
use streamcore_sql::parser::parse_script;
use streamcore_sql::{Outcome, PlanError, Session};

/// The options of `streamcore sql`.
#[derive(Args, Debug)]
pub struct SqlArgs {
    /// The SQL script to run (`-`: standard input; nothing: standard input, or the
    /// interactive shell on a terminal).
    #[arg(value_name = "FILE.sql")]
    file: Option<PathBuf>,
    /// Run these statements instead of a file.
    #[arg(
        short = 'e',
        long = "execute",
        value_name = "SQL",
        conflicts_with = "file"
    )]
    execute: Option<String>,
    /// A session option, as `SET 'key' = 'value'` would set it (repeatable), e.g.
    /// `--set table.exec.state.ttl='1 h'`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    #[command(flatten)]
    parallelism: ParallelismArg,
    #[command(flatten)]
    checkpoints: CheckpointArgs,
    #[command(flatten)]
    http: HttpArgs,
    /// Print the job's metrics summary as JSON on stderr.
    #[arg(long)]
    metrics_json: bool,
}

/// Runs `streamcore sql`.
pub fn run(args: SqlArgs) -> anyhow::Result<()> {
    let (script, origin) = match (&args.execute, &args.file) {
        (Some(sql), _) => (sql.clone(), "-e".to_string()),
        (None, Some(path)) if path.as_os_str() != "-" => (
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            path.display().to_string(),
        ),
        _ => {
            if std::io::stdin().is_terminal() {
                // No script: the interactive shell.
                let mut session = Session::new();
                apply_sets(&mut session, &args.set)?;
                let base = JobConfig::default().parallelism(args.parallelism.get());
                return crate::sql_shell::run(session, base);
            }
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading standard input")?;
            (s, "stdin".to_string())
        }
    };
    let mut session = Session::new();
    apply_sets(&mut session, &args.set)?;
    let base = JobConfig::default().parallelism(args.parallelism.get());
    let statements = parse_script(&script).map_err(|e| report(&origin, &script, &e.into()))?;
    for statement in statements {
        let outcome = session
            .execute(statement)
            .map_err(|e| report(&origin, &script, &e))?;
        match outcome {
            Outcome::Done(what) => tracing::info!("{what}"),
            Outcome::Queued(what) => tracing::info!("{what}: runs with the script's other INSERTs"),
            Outcome::Table { header, rows } => print_table(&header, &rows),
            Outcome::Explain(plan) => print!("{plan}"),
            // Every INSERT of a script runs as one job at its end, in a statement set or not.
            Outcome::RunStatementSet => {}
            Outcome::Query(plan) => {
                let mut job = Job::new(&session.job_name("select"));
                session
                    .plan_select(&mut job, &plan, |s| {
                        s.sink_named("print", PrintSink::new(None))
                    })
                    .map_err(|e| report(&origin, &script, &e))?;
                let config = session
                    .select_config(base.clone())
                    .map_err(|e| report(&origin, &script, &e))?;
                let summary = run_job(job, config, &args.http)?;
                print_summary(&summary, args.metrics_json)?;
            }
        }
    }
    if session.pending.is_empty() {
        return Ok(());
    }
    let mut job = Job::new(&session.job_name("sql"));
    let inserts = session
        .plan_inserts(&mut job)
        .map_err(|e| report(&origin, &script, &e))?;
    tracing::info!("running {inserts} INSERT statement(s) as one job");
    // The flags first (so that a SET interval finds their --checkpoint-dir), the script's SET
    // over them, then the flags given win again.
    let config = session
        .job_config(args.checkpoints.apply(base))
        .map_err(|e| report(&origin, &script, &e))?;
    let config = args.checkpoints.apply(config);
    // The process's last job: its finished tasks' state goes with the process.
    streamcore::state::free_state_with_the_process(true);
    let summary = run_job(job, config, &args.http)?;
    print_summary(&summary, args.metrics_json)
}

/// `--set key=value` options, as `SET` statements.
fn apply_sets(session: &mut Session, sets: &[String]) -> anyhow::Result<()> {
    for kv in sets {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--set {kv}: expected KEY=VALUE");
        };
        let v = v.trim().trim_matches('\'');
        session
            .execute_script(&format!("SET '{}' = '{}'", k.trim(), v.replace('\'', "''")))
            .map_err(|e| anyhow::anyhow!("--set {kv}: {}", e.message()))?;
    }
    Ok(())
}

/// An error with the script's line under it and a caret at the column.
fn report(origin: &str, script: &str, e: &PlanError) -> anyhow::Error {
    let (line, column) = match e {
        PlanError::Invalid { location, .. } | PlanError::Unsupported { location, .. } => {
            (location.line as usize, location.column as usize)
        }
        PlanError::Parse(p) => (p.line as usize, p.column as usize),
        PlanError::Run(_) => (0, 0),
    };
    if line == 0 {
        return anyhow::anyhow!("{origin}: {e}");
    }
    let text = script.lines().nth(line - 1).unwrap_or("");
    let gutter = format!("{line}");
    anyhow::anyhow!(
        "{origin}:{line}:{column}: {}\n{} |\n{gutter} | {text}\n{} | {}^",
        e.message(),
        " ".repeat(gutter.len()),
        " ".repeat(gutter.len()),
        " ".repeat(column.saturating_sub(1))
    )
}

/// Prints a text table with a header, as `SHOW TABLES` and the shell's table mode show them.
pub(crate) fn print_table(header: &[String], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, v) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(v.chars().count());
            }
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, w) in widths.iter().enumerate() {
            let v = cells.get(i).map(String::as_str).unwrap_or("");
            s.push_str(&format!("| {v:<w$} "));
        }
        s.push('|');
        s
    };
    let rule: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+";
    println!("{rule}");
    println!("{}", line(header));
    println!("{rule}");
    for r in rows {
        println!("{}", line(r));
    }
    println!("{rule}");
    println!("{} row(s)", rows.len());
}
