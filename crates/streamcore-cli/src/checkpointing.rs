//! The checkpoint options every job command shares (`--checkpoint-dir`,
//! `--checkpoint-interval`, `--restore`, `--retain-checkpoints`,
//! `--allow-non-restored-state`), and [`run_job`]: runs a job
//! to its end while answering signals — SIGUSR1 takes a savepoint, SIGINT/SIGTERM stop the
//! job (with a savepoint when it checkpoints, so that `--restore latest` resumes it) — and
//! [`print_summary`], how every job command reports its metrics.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use streamcore::checkpoint::{parse_duration, CheckpointConfig, RestoreFrom};
use streamcore::{Job, JobConfig, JobSummary};

#[derive(Args, Debug, Clone)]
pub struct CheckpointArgs {
    /// Take checkpoints into this directory (exactly-once output to directories; see
    /// docs/checkpoints.md).
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Time between checkpoints, e.g. `100ms`, `1s`.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub checkpoint_interval: Duration,
    /// Restore from `latest` (the newest complete checkpoint in --checkpoint-dir; a fresh
    /// start if there is none) or from a checkpoint or savepoint directory.
    #[arg(long, requires = "checkpoint_dir")]
    pub restore: Option<RestoreFrom>,
    /// Periodic checkpoints kept (savepoints are always kept).
    #[arg(long, default_value_t = 3)]
    pub retain_checkpoints: usize,
    /// With --restore: drop the state of operators this job no longer has (by operator id)
    /// instead of refusing to start — Flink's --allowNonRestoredState. Each dropped operator
    /// is logged and counted.
    #[arg(long, requires = "restore")]
    pub allow_non_restored_state: bool,
}

impl CheckpointArgs {
    /// Whether the job checkpoints.
    pub fn enabled(&self) -> bool {
        self.checkpoint_dir.is_some()
    }

    /// Adds the checkpoint configuration to `config`.
    pub fn apply(&self, config: JobConfig) -> JobConfig {
        match &self.checkpoint_dir {
            Some(dir) => {
                let mut c = CheckpointConfig::new(dir)
                    .interval(self.checkpoint_interval)
                    .retain(self.retain_checkpoints)
                    .allow_non_restored_state(self.allow_non_restored_state);
                c.restore = self.restore.clone();
                config.checkpoints(c)
            }
            None => config,
        }
    }
}

/// Runs `job` to its end, answering SIGUSR1 (savepoint) and SIGINT/SIGTERM (stop; with a
/// savepoint when the job checkpoints) meanwhile.
pub fn run_job(job: Job, config: JobConfig) -> anyhow::Result<JobSummary> {
    let checkpoints = config.checkpoints.is_some();
    let savepoint = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, savepoint.clone())
        .context("installing the SIGUSR1 handler")?;
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing a signal handler")?;
    }
    let name = job.name().to_string();
    let handle = job
        .start(config)
        .with_context(|| format!("starting the {name} job"))?;
    while !handle.is_finished() {
        if savepoint.swap(false, Ordering::Relaxed) {
            match handle.savepoint() {
                Ok(path) => eprintln!("savepoint written to {}", path.display()),
                Err(e) => eprintln!("savepoint failed: {e}"),
            }
        }
        if stop.swap(false, Ordering::Relaxed) {
            if checkpoints {
                match handle.stop_with_savepoint() {
                    Ok(path) => eprintln!(
                        "stopped with a savepoint in {} (resume with --restore latest)",
                        path.display()
                    ),
                    Err(e) => {
                        eprintln!("savepoint failed ({e}); stopping without one");
                        handle.stop();
                    }
                }
            } else {
                handle.stop();
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let summary = handle
        .join()
        .with_context(|| format!("the {name} job failed"))?;
    if let Some(c) = &summary.checkpoints {
        if c.already_finished {
            eprintln!(
                "the job had already finished (its final checkpoint is {}); its output was committed",
                c.restored_from.as_deref().unwrap_or("?")
            );
        }
    }
    Ok(summary)
}

/// Prints the job's metrics on stderr: as pretty JSON (`--metrics-json`) or as the table.
pub fn print_summary(summary: &JobSummary, json: bool) -> anyhow::Result<()> {
    if json {
        eprintln!("{}", serde_json::to_string_pretty(summary)?);
    } else {
        eprint!("{summary}");
    }
    Ok(())
}
