//! `streamcore serve` and `streamcore submit`: several jobs in one long-running process, as a
//! Flink session cluster runs them.
//!
//! `serve --http ADDR` runs the HTTP endpoint alone ([`crate::http`]) until SIGINT/SIGTERM;
//! `POST /api/v1/jobs` (what `submit FILE.sql` sends) plans a Flink SQL script's `INSERT`
//! statements as one job, starts it on a thread of its own and registers it, so that the
//! endpoint's per-job routes, `/metrics` and the dashboard serve it next to the others. With
//! `--checkpoint-dir DIR` each job checkpoints into `DIR/<job id>`, and a submission can
//! restore from a savepoint. On SIGINT/SIGTERM the running jobs stop (with a savepoint when
//! they checkpoint) and the process ends once they have.

use crate::checkpointing::{answer_action, final_state, CheckpointArgs};
use crate::http::client;
use crate::http::{HttpArgs, JobSlot, Registry, Submit, SubmitError, SubmitRequest};
use crate::parallelism::ParallelismArg;
use anyhow::{bail, Context};
use axum::http::StatusCode;
use clap::Args;
use serde_json::json;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use streamcore::checkpoint::{parse_duration, RestoreFrom};
use streamcore::{Job, JobConfig, JobHandle};
use streamcore_sql::parser::parse_script;
use streamcore_sql::{Outcome, PlanError, Session};

/// The options of `streamcore serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// The default parallelism of submitted jobs (a submission may set its own).
    #[command(flatten)]
    parallelism: ParallelismArg,
    /// The root of the jobs' checkpoints: each submitted job checkpoints into DIR/<job id>
    /// (exactly-once outputs; savepoints to restore from). Without it jobs do not checkpoint
    /// (a script's `SET 'execution.checkpointing.dir'` is ignored, with a warning).
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Time between checkpoints of every job, e.g. `100ms`, `1s` (default: a script's
    /// `SET 'execution.checkpointing.interval'`, else 1s).
    #[arg(long, value_parser = parse_duration)]
    checkpoint_interval: Option<Duration>,
    /// Periodic checkpoints kept per job (savepoints are always kept; default: a script's
    /// `SET 'execution.checkpointing.num-retained'`, else 3).
    #[arg(long)]
    retain_checkpoints: Option<usize>,
}

/// The options of `streamcore submit`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// The SQL script to submit (`-`: standard input). Its INSERT statements run as one job.
    #[arg(value_name = "FILE.sql")]
    file: PathBuf,
    /// The endpoint of `streamcore serve`.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8081")]
    http_url: String,
    /// The job's parallelism [default: the server's].
    #[arg(long = "parallelism", short = 'p', value_name = "P")]
    parallelism: Option<usize>,
    /// Restore the job from this savepoint or checkpoint directory (or `latest`: the newest
    /// in the job's own checkpoint directory, which a new job does not have yet).
    #[arg(long, value_name = "DIR")]
    restore: Option<String>,
    /// With --restore: drop the state of operators this job no longer has.
    #[arg(long, requires = "restore")]
    allow_non_restored_state: bool,
    /// A file holding the endpoint's bearer token (instead of STREAMCORE_HTTP_TOKEN).
    #[arg(long, value_name = "FILE")]
    http_token_file: Option<PathBuf>,
}

/// What the submissions of one `serve` process share.
struct Server {
    registry: Arc<Registry>,
    checkpoint_root: Option<PathBuf>,
    checkpoint_interval: Option<Duration>,
    retain_checkpoints: Option<usize>,
    parallelism: usize,
    /// Set on SIGINT/SIGTERM: running jobs stop, submissions are refused.
    shutting_down: AtomicBool,
    /// The threads that own the jobs.
    drivers: Mutex<Vec<JoinHandle<()>>>,
    /// The number in the next job id.
    next_id: AtomicU64,
    /// Submissions being started (their threads are not in `drivers` yet).
    starting: AtomicUsize,
}

/// Runs `streamcore serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.http.http.is_none() {
        bail!("`streamcore serve` needs --http ADDR (e.g. --http 127.0.0.1:8081)");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing a signal handler")?;
    }
    let bound = crate::http::bind(&args.http)?.context("no --http address")?;
    let server = Arc::new(Server {
        registry: Arc::new(Registry::default()),
        checkpoint_root: args.checkpoint_dir,
        checkpoint_interval: args.checkpoint_interval,
        retain_checkpoints: args.retain_checkpoints,
        parallelism: args.parallelism.get(),
        shutting_down: AtomicBool::new(false),
        drivers: Mutex::new(Vec::new()),
        next_id: AtomicU64::new(1),
        starting: AtomicUsize::new(0),
    });
    let submit: Submit = {
        let server = server.clone();
        Arc::new(move |request| server.submit(request))
    };
    let endpoint = bound.serve_jobs(server.registry.clone(), submit)?;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("stopping the running jobs");
    server.shutting_down.store(true, Ordering::SeqCst);
    // Until every job has ended: a submission that was starting when the signal came adds
    // its thread after this began (and stops at once).
    loop {
        let drivers =
            std::mem::take(&mut *server.drivers.lock().unwrap_or_else(|p| p.into_inner()));
        if drivers.is_empty() && server.starting.load(Ordering::SeqCst) == 0 && endpoint.all_ended()
        {
            break;
        }
        for driver in drivers {
            let _ = driver.join();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // A last look at the final figures.
    let deadline = std::time::Instant::now() + args.http.http_linger;
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(endpoint);
    Ok(())
}

fn refused(status: StatusCode, message: impl Into<String>) -> SubmitError {
    SubmitError {
        status,
        message: message.into(),
    }
}

/// A started job, before its thread takes over.
struct Started {
    handle: JobHandle,
    slot: JobSlot,
    checkpoints: bool,
    answer: serde_json::Value,
}

impl Server {
    /// Plans and starts a submitted script on a thread of its own, which then runs it to its
    /// end; the answer names the job.
    fn submit(self: &Arc<Self>, request: SubmitRequest) -> Result<serde_json::Value, SubmitError> {
        self.starting.fetch_add(1, Ordering::SeqCst);
        let answer = self.start_on_thread(request);
        self.starting.fetch_sub(1, Ordering::SeqCst);
        answer
    }

    fn start_on_thread(
        self: &Arc<Self>,
        request: SubmitRequest,
    ) -> Result<serde_json::Value, SubmitError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down",
            ));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let server = self.clone();
        let thread = std::thread::Builder::new()
            .name("job".into())
            .spawn(move || match server.start(request) {
                Ok(started) => {
                    let _ = tx.send(Ok(started.answer.clone()));
                    server.drive(started);
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            })
            .map_err(|e| refused(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let answer = rx.recv().unwrap_or_else(|_| {
            Err(refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the job's thread ended before the job started",
            ))
        });
        let mut drivers = self.drivers.lock().unwrap_or_else(|p| p.into_inner());
        drivers.retain(|d| !d.is_finished());
        drivers.push(thread);
        answer
    }

    /// Plans the script's INSERT statements as one job and starts it.
    fn start(&self, request: SubmitRequest) -> Result<Started, SubmitError> {
        let script = &request.sql;
        let bad = |e: &PlanError| refused(StatusCode::BAD_REQUEST, report(script, e));
        let parallelism = request.parallelism.unwrap_or(self.parallelism);
        if parallelism == 0 {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                "the parallelism must be at least 1",
            ));
        }
        let restore = request
            .restore
            .as_deref()
            .map(str::parse::<RestoreFrom>)
            .transpose()
            .map_err(|e| refused(StatusCode::BAD_REQUEST, format!("restore: {e}")))?;
        if restore.is_some() && self.checkpoint_root.is_none() {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                "restore needs a server that checkpoints (`streamcore serve --checkpoint-dir DIR`)",
            ));
        }
        let statements = parse_script(script).map_err(|e| bad(&e.into()))?;
        let mut session = Session::new();
        for (n, statement) in statements.into_iter().enumerate() {
            match session.execute(statement).map_err(|e| bad(&e))? {
                Outcome::Query(_) => {
                    return Err(refused(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "statement {}: a SELECT in a submitted script has no terminal to print \
                             its rows to; write them to a table with INSERT INTO (or run the \
                             query with `streamcore sql`)",
                            n + 1
                        ),
                    ))
                }
                Outcome::Done(what) => tracing::info!("{what}"),
                _ => {}
            }
        }
        if session.pending.is_empty() {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                "the script has no INSERT INTO statement: there is no job to run",
            ));
        }
        let name = session.job_name("sql");
        let id = self.new_id(&name);
        // The job's name is its id: metrics label it `job` = id.
        let mut job = Job::new(&id);
        session.plan_inserts(&mut job).map_err(|e| bad(&e))?;
        let checkpoint_dir = self.checkpoint_root.as_ref().map(|root| root.join(&id));
        let checkpoints = CheckpointArgs {
            checkpoint_dir: checkpoint_dir.clone(),
            checkpoint_interval: self.checkpoint_interval,
            restore,
            retain_checkpoints: self.retain_checkpoints,
            allow_non_restored_state: request.allow_non_restored_state,
            state_backend: None,
            state_memory_budget: None,
            state_dir: None,
            incremental_checkpoints: false,
        };
        // The server decides whether and where jobs checkpoint: with a root, its options
        // first, the script's SET over them, then the server's flags given again (its
        // directory per job wins); without one, none (the script's are ignored).
        let base = JobConfig::default().parallelism(parallelism);
        let config = match &checkpoint_dir {
            Some(_) => checkpoints.apply(
                session
                    .job_config(checkpoints.apply(base))
                    .map_err(|e| bad(&e))?,
            ),
            None => {
                if session.sets_checkpoints() {
                    tracing::warn!(
                        "job {id}: the script's checkpoint options are ignored: this server runs jobs without checkpoints (start it with --checkpoint-dir)"
                    );
                }
                session.select_config(base).map_err(|e| bad(&e))?
            }
        };
        let checkpointing = config.checkpoints.is_some();
        let handle = job.start(config).map_err(|e| {
            refused(
                StatusCode::BAD_REQUEST,
                format!("starting the job {id}: {e}"),
            )
        })?;
        let slot = self.registry.add(&id, &name, handle.metrics_reader());
        tracing::info!(%id, %name, parallelism, "job submitted");
        eprintln!("job {id} ({name}) started");
        Ok(Started {
            handle,
            slot,
            checkpoints: checkpointing,
            answer: json!({
                "id": id,
                "name": name,
                "parallelism": parallelism,
                "checkpoint_dir": checkpoint_dir.map(|d| d.display().to_string()),
            }),
        })
    }

    /// Runs a started job to its end: answers its actions, stops it when the server shuts
    /// down, and records how it ended.
    fn drive(&self, started: Started) {
        let Started {
            handle,
            slot,
            checkpoints,
            answer,
        } = started;
        let id = answer["id"].as_str().unwrap_or("?").to_string();
        let mut stopping = false;
        while !handle.is_finished() {
            if !stopping && self.shutting_down.load(Ordering::SeqCst) {
                stopping = true;
                if checkpoints {
                    match handle.stop_with_savepoint() {
                        Ok(path) => eprintln!(
                            "job {id} stopped with a savepoint in {} (resubmit with restore set to it)",
                            path.display()
                        ),
                        Err(e) => {
                            eprintln!("job {id}: savepoint failed ({e}); stopping without one");
                            handle.stop();
                        }
                    }
                } else {
                    handle.stop();
                }
            }
            if let Some(request) = slot.next_action() {
                let reply = answer_action(&handle, request.action);
                let _ = request.reply.send(reply);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let result = handle.join();
        match &result {
            Ok(_) => eprintln!("job {id} ended"),
            Err(streamcore::StreamError::Cancelled) => eprintln!("job {id} cancelled"),
            Err(e) => eprintln!("job {id} failed: {e}"),
        }
        slot.finish(final_state(&result));
    }

    /// A new job id: the job's name (letters, digits, `-`, `_`), a dash and a number unique
    /// in this process, skipping ids whose checkpoint directory already exists (from an
    /// earlier process).
    fn new_id(&self, name: &str) -> String {
        let base: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        loop {
            let n = self.next_id.fetch_add(1, Ordering::Relaxed);
            let id = format!("{base}-{n}");
            let taken = self.registry.contains(&id)
                || self
                    .checkpoint_root
                    .as_ref()
                    .is_some_and(|root| root.join(&id).exists());
            if !taken {
                return id;
            }
        }
    }
}

/// A planner's error with the script's line under it and a caret at the column.
fn report(script: &str, e: &PlanError) -> String {
    let (line, column) = match e {
        PlanError::Invalid { location, .. } | PlanError::Unsupported { location, .. } => {
            (location.line as usize, location.column as usize)
        }
        PlanError::Parse(p) => (p.line as usize, p.column as usize),
        PlanError::Run(_) => (0, 0),
    };
    if line == 0 {
        return e.to_string();
    }
    let text = script.lines().nth(line - 1).unwrap_or("");
    let gutter = format!("{line}");
    format!(
        "script:{line}:{column}: {}\n{} |\n{gutter} | {text}\n{} | {}^",
        e.message(),
        " ".repeat(gutter.len()),
        " ".repeat(gutter.len()),
        " ".repeat(column.saturating_sub(1))
    )
}

/// Runs `streamcore submit`: sends the script to a `serve` process and prints the job id.
pub fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let sql = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        s
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?
    };
    let token = match &args.http_token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the HTTP token file {}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => std::env::var(crate::http::TOKEN_ENV)
            .ok()
            .map(|t| t.trim().to_string()),
    }
    .filter(|t| !t.is_empty());
    let body = json!({
        "sql": sql,
        "parallelism": args.parallelism,
        "restore": args.restore,
        "allow_non_restored_state": args.allow_non_restored_state,
    })
    .to_string();
    let (status, answer) = client::request(
        &args.http_url,
        "POST",
        "/api/v1/jobs",
        Some(("application/json", body.as_bytes())),
        token.as_deref(),
    )?;
    let answer: serde_json::Value =
        serde_json::from_str(&answer).unwrap_or_else(|_| json!({ "error": answer.trim() }));
    if !(200..300).contains(&status) {
        let message = answer["error"].as_str().unwrap_or("(no message)");
        bail!("{}: HTTP {status}: {message}", args.file.display());
    }
    let id = answer["id"].as_str().context("the answer names no job")?;
    eprintln!(
        "submitted job {id}: {}/api/v1/jobs/{id}",
        args.http_url.trim_end_matches('/')
    );
    println!("{id}");
    Ok(())
}
