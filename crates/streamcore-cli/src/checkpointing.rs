//! The checkpoint options every job command shares (`--checkpoint-dir`,
//! `--checkpoint-interval`, `--restore`, `--retain-checkpoints`,
//! `--allow-non-restored-state`), and [`run_job`]: runs a job
//! to its end while answering signals — SIGUSR1 takes a savepoint, SIGINT/SIGTERM stop the
//! job (with a savepoint when it checkpoints, so that `--restore latest` resumes it), and
//! serves the job's HTTP endpoint with `--http` (see [`crate::http`]) — and
//! [`print_summary`], how every job command reports its metrics.
//!
//! `--checkpoint-dir` takes a local directory or, in a build with the `object-store` feature,
//! an object-store URL (`s3://bucket/job`, `gs://…`, `az://…`, `file:///…`): see
//! [`checkpoint_storage`].

use crate::http::{Action, HttpArgs, JobState};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use streamcore::checkpoint::{parse_duration, CheckpointConfig, CheckpointStorage, RestoreFrom};
use streamcore::{Job, JobConfig, JobSummary};

#[derive(Args, Debug, Clone)]
pub struct CheckpointArgs {
    /// Take checkpoints into this directory, or into an object store: `s3://BUCKET/PREFIX`,
    /// `gs://BUCKET/PREFIX`, `az://CONTAINER/PREFIX`, `file:///DIR` (builds with the
    /// `object-store` feature; credentials and endpoint from the environment, e.g.
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT). Outputs become
    /// exactly-once directories; see docs/checkpoints.md.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Time between checkpoints, e.g. `100ms`, `1s` (default 1s; a SQL script's
    /// `SET 'execution.checkpointing.interval'` when not given).
    #[arg(long, value_parser = parse_duration)]
    pub checkpoint_interval: Option<Duration>,
    /// Restore from `latest` (the newest complete checkpoint in --checkpoint-dir; a fresh
    /// start if there is none) or from a checkpoint or savepoint directory (or its URL in the
    /// object store of --checkpoint-dir).
    #[arg(long, requires = "checkpoint_dir")]
    pub restore: Option<RestoreFrom>,
    /// Periodic checkpoints kept (savepoints are always kept; default 3).
    #[arg(long)]
    pub retain_checkpoints: Option<usize>,
    /// With --restore: drop the state of operators this job no longer has (by operator id)
    /// instead of refusing to start — Flink's --allowNonRestoredState. Each dropped operator
    /// is logged and counted.
    #[arg(long, requires = "restore")]
    pub allow_non_restored_state: bool,
    /// Where keyed state lives: `memory` (the default) or `lsm` (an embedded LSM tree on local
    /// disk with a cache of hot keys in front, for more state than memory; docs/state.md).
    #[arg(long)]
    pub state_backend: Option<streamcore::state::StateBackendKind>,
    /// With `--state-backend lsm`: memory for keyed state, all operators together (`512mb`,
    /// `1gb`; default 1gb).
    #[arg(long, value_parser = streamcore::state::parse_bytes)]
    pub state_memory_budget: Option<u64>,
    /// With `--state-backend lsm`: the directory the LSM tree is made in (default: the
    /// temporary directory); it is deleted when the job ends.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Checkpoints write only the keyed state changed since the previous one (rolling
    /// aggregates, session/count windows, joins, CEP, and tumbling/sliding windows on the LSM
    /// backend; process functions and the SQL changelog operators write theirs in full), with a
    /// full one at least every 10 (docs/state.md).
    #[arg(long, requires = "checkpoint_dir")]
    pub incremental_checkpoints: bool,
}

impl CheckpointArgs {
    /// Whether the job checkpoints.
    pub fn enabled(&self) -> bool {
        self.checkpoint_dir.is_some()
    }

    /// Adds the checkpoint and state backend configuration to `config`: the flags given
    /// override what `config` holds (a SQL script's `SET`, say), the rest of it stays —
    /// `--checkpoint-dir` sets the directory (and `--restore`) of its checkpoints, keeping their
    /// interval and retention unless those flags are given too. A checkpoint directory that
    /// is an object-store URL gets its storage here (also one that came from `config`).
    pub fn apply(&self, config: JobConfig) -> JobConfig {
        // Flags given override the job's own state configuration (a SQL `SET`, say).
        let mut config = config;
        if let Some(backend) = self.state_backend {
            config.state.backend = backend;
        }
        if let Some(budget) = self.state_memory_budget {
            config.state.memory_budget = budget;
        }
        if let Some(dir) = &self.state_dir {
            config.state.dir = Some(dir.clone());
        }
        config.state.incremental |= self.incremental_checkpoints;
        if let Some(dir) = &self.checkpoint_dir {
            let mut c = config
                .checkpoints
                .take()
                .unwrap_or_else(|| CheckpointConfig::new(dir));
            c.dir = dir.clone();
            c.storage = None;
            c.restore = self.restore.clone();
            c.allow_non_restored_state = self.allow_non_restored_state;
            config = config.checkpoints(c);
        }
        if let Some(mut c) = config.checkpoints.take() {
            if let Some(interval) = self.checkpoint_interval {
                c.interval = interval;
            }
            if let Some(n) = self.retain_checkpoints {
                c = c.retain(n);
            }
            config = config.checkpoints(c);
        }
        with_object_store(config)
    }
}

/// `config` with the storage its checkpoint directory names when that is an object-store URL
/// (`s3://…`, from `--checkpoint-dir` or a SQL script's `SET 'execution.checkpointing.dir'`)
/// and it has none yet.
pub fn with_object_store(mut config: JobConfig) -> JobConfig {
    if let Some(c) = config.checkpoints.take() {
        let url = c
            .dir
            .to_str()
            .filter(|d| is_object_store_url(d))
            .map(str::to_owned);
        config = config.checkpoints(match url {
            Some(url) if c.storage.is_none() => c.storage(checkpoint_storage(&url)),
            _ => c,
        });
    }
    config
}

/// The URL schemes of object stores `--checkpoint-dir` takes.
const OBJECT_STORE_SCHEMES: [&str; 8] = ["s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "file"];

/// Whether `text` is an object-store URL (`s3://…`) rather than a local path.
pub fn is_object_store_url(text: &str) -> bool {
    text.split_once("://")
        .is_some_and(|(scheme, rest)| OBJECT_STORE_SCHEMES.contains(&scheme) && !rest.is_empty())
}

/// The checkpoint storage for an object-store URL. Opening it contacts nothing; a URL that
/// cannot be used (or a build without the `object-store` feature) gives a storage whose every
/// call fails with the reason, so the job refuses to start with it.
pub fn checkpoint_storage(url: &str) -> Arc<dyn CheckpointStorage> {
    #[cfg(feature = "object-store")]
    let opened = streamcore_object_store::checkpoint_storage(url)
        .map(|s| Arc::new(s) as Arc<dyn CheckpointStorage>)
        .map_err(|e| e.to_string());
    #[cfg(not(feature = "object-store"))]
    let opened: Result<Arc<dyn CheckpointStorage>, String> = Err(format!(
        "--checkpoint-dir {url}: this build has no object-store support; build the binary with \
         the `object-store` feature (`cargo run --release -p streamcore-cli --features \
         object-store -- …`, or `cargo install --path crates/streamcore-cli --features \
         object-store`)"
    ));
    match opened {
        Ok(storage) => storage,
        Err(reason) => Arc::new(Unavailable(reason)),
    }
}

/// The Kafka state hand-over with its root in an object store (`--state-handover s3://…`):
/// `checkpoint_dir` must be a prefix directly under it, where the group finds a dead
/// process's checkpoints.
#[cfg(feature = "kafka")]
pub fn state_handover_on<D: streamcore_connectors::kafka::KafkaDecoder>(
    source: streamcore_connectors::kafka::KafkaSource<D>,
    root: &str,
    checkpoint_dir: Option<&std::path::Path>,
) -> anyhow::Result<streamcore_connectors::kafka::KafkaSource<D>> {
    let root = root.trim_end_matches('/');
    if let Some(dir) = checkpoint_dir {
        let dir = dir.to_string_lossy();
        anyhow::ensure!(
            dir.trim_end_matches('/')
                .rsplit_once('/')
                .is_some_and(|(parent, name)| parent == root && !name.is_empty()),
            "--checkpoint-dir {dir} must be directly under --state-handover {root} (where the group finds a dead process's checkpoints)"
        );
    }
    #[cfg(feature = "object-store")]
    {
        let blobs = streamcore_object_store::ObjectStoreBlobs::open(root)?;
        Ok(source.state_handover_store(Arc::new(blobs)))
    }
    #[cfg(not(feature = "object-store"))]
    {
        let _ = source;
        anyhow::bail!(
            "--state-handover {root}: this build has no object-store support; build the binary with the `object-store` feature (and `kafka`)"
        )
    }
}

/// A checkpoint storage that cannot be used: every call fails with the reason.
struct Unavailable(String);

impl Unavailable {
    fn fail<T>(&self) -> streamcore::Result<T> {
        Err(streamcore::StreamError::Config(self.0.clone()))
    }
}

impl CheckpointStorage for Unavailable {
    fn next_id(&self) -> streamcore::Result<u64> {
        self.fail()
    }
    fn write(
        &self,
        _: &streamcore::checkpoint::storage::CheckpointData,
    ) -> streamcore::Result<streamcore::checkpoint::storage::WrittenCheckpoint> {
        self.fail()
    }
    fn load_latest(&self) -> streamcore::Result<Option<streamcore::checkpoint::LoadedCheckpoint>> {
        self.fail()
    }
    fn load(
        &self,
        _: &streamcore::checkpoint::CheckpointLocation,
    ) -> streamcore::Result<streamcore::checkpoint::LoadedCheckpoint> {
        self.fail()
    }
    fn retain(&self, _: usize) -> streamcore::Result<()> {
        self.fail()
    }
}

/// Runs `job` to its end, answering SIGUSR1 (savepoint) and SIGINT/SIGTERM (stop; with a
/// savepoint when the job checkpoints) meanwhile — and, with `--http`, serving its metrics,
/// API and dashboard and answering the API's actions (savepoint, stop, cancel).
pub fn run_job(job: Job, config: JobConfig, http: &HttpArgs) -> anyhow::Result<JobSummary> {
    let checkpoints = config.checkpoints.is_some();
    let savepoint = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, savepoint.clone())
        .context("installing the SIGUSR1 handler")?;
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing a signal handler")?;
    }
    let name = job.name().to_string();
    // Bound before the job starts: a bad address or a missing token fails fast.
    let bound = crate::http::bind(http)?;
    let handle = job
        .start(config)
        .with_context(|| format!("starting the {name} job"))?;
    let server = match bound {
        Some(b) => match b.serve(&name, handle.metrics_reader()) {
            Ok(s) => Some(s),
            Err(e) => {
                handle.cancel();
                let _ = handle.join();
                return Err(e);
            }
        },
        None => None,
    };
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
        if let Some(request) = server.as_ref().and_then(|s| s.next_action()) {
            let answer = answer_action(&handle, request.action);
            let _ = request.reply.send(answer);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let result = handle.join();
    if let Some(server) = server {
        server.finish(final_state(&result));
    }
    let summary = result.with_context(|| format!("the {name} job failed"))?;
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

/// How a job that ended is reported by the HTTP API.
pub(crate) fn final_state(result: &streamcore::Result<JobSummary>) -> JobState {
    match result {
        Ok(s)
            if s.checkpoints
                .as_ref()
                .is_some_and(|c| c.stopped_with_savepoint) =>
        {
            JobState::Stopped
        }
        Ok(_) => JobState::Finished,
        Err(streamcore::StreamError::Cancelled) => JobState::Cancelled,
        Err(e) => JobState::Failed(e.to_string()),
    }
}

/// Carries out an action asked for over HTTP; the answer goes back to the client as JSON.
pub(crate) fn answer_action(
    handle: &streamcore::JobHandle,
    action: Action,
) -> Result<serde_json::Value, String> {
    match action {
        Action::Savepoint => {
            let path = handle.savepoint().map_err(|e| e.to_string())?;
            eprintln!("savepoint written to {} (HTTP)", path.display());
            Ok(serde_json::json!({ "savepoint": path.display().to_string() }))
        }
        Action::StopWithSavepoint => {
            let path = handle.stop_with_savepoint().map_err(|e| e.to_string())?;
            eprintln!(
                "stopped with a savepoint in {} (HTTP; resume with --restore latest)",
                path.display()
            );
            Ok(serde_json::json!({ "stopped": true, "savepoint": path.display().to_string() }))
        }
        Action::Stop => {
            handle.stop();
            Ok(serde_json::json!({ "stopping": true }))
        }
        Action::Cancel => {
            handle.cancel();
            Ok(serde_json::json!({ "cancelling": true }))
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(dir: Option<&str>, interval: Option<u64>, retain: Option<usize>) -> CheckpointArgs {
        CheckpointArgs {
            checkpoint_dir: dir.map(PathBuf::from),
            checkpoint_interval: interval.map(Duration::from_millis),
            restore: None,
            retain_checkpoints: retain,
            allow_non_restored_state: false,
            state_backend: None,
            state_memory_budget: None,
            state_dir: None,
            incremental_checkpoints: false,
        }
    }

    fn summary(config: &JobConfig) -> Option<(String, u128, usize)> {
        let c = config.checkpoints.as_ref()?;
        Some((
            c.dir.display().to_string(),
            c.interval.as_millis(),
            c.retain,
        ))
    }

    /// The flags given win over a configuration's checkpoints (a SQL script's SET); those not
    /// given leave it as it is.
    #[test]
    fn flags_given_override_the_configurations_checkpoints_and_only_those() {
        let set = || {
            JobConfig::default().checkpoints(
                CheckpointConfig::new("/set")
                    .interval(Duration::from_millis(20))
                    .retain(5),
            )
        };
        assert_eq!(
            summary(&flags(None, None, None).apply(set())),
            Some(("/set".into(), 20, 5))
        );
        assert_eq!(
            summary(&flags(Some("/flag"), None, None).apply(set())),
            Some(("/flag".into(), 20, 5))
        );
        assert_eq!(
            summary(&flags(None, Some(300), Some(2)).apply(set())),
            Some(("/set".into(), 300, 2))
        );
        // Without a configuration's checkpoints: the flags alone, with their defaults.
        assert_eq!(
            summary(&flags(Some("/flag"), None, None).apply(JobConfig::default())),
            Some(("/flag".into(), 1000, 3))
        );
        assert_eq!(
            summary(&flags(None, Some(300), None).apply(JobConfig::default())),
            None
        );
    }
}
