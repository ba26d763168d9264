//! The HTTP endpoint of running jobs (`--http ADDR` on every job command, and
//! `streamcore serve`): Prometheus metrics (`/metrics`, every job, told apart by the `job`
//! label), a JSON REST API (`/api/v1/jobs` lists the jobs, and under `/api/v1/jobs/{id}` the
//! graph, metrics per operator and subtask, checkpoint history, the watermark debugger, and
//! the actions savepoint, stop with a savepoint, stop, cancel) and the dashboard page (`/`),
//! shipped in the binary. A [`Registry`] holds the jobs: one for a job command, any number for
//! `streamcore serve`, where `POST /api/v1/jobs` submits a SQL job ([`crate::serve`]).
//!
//! The server runs on its own thread with a single-threaded tokio runtime: the engine stays
//! thread-based, and a scrape only reads relaxed atomics ([`streamcore::metrics::MetricsReader`]).
//! Actions go to the thread that owns the job ([`crate::checkpointing::run_job`], or a job
//! thread of `serve`) over a channel ([`JobSlot`]), and their answer comes back the same way.
//!
//! Security: the endpoint binds to loopback unless told otherwise. Bound to any other address
//! it needs a bearer token (`STREAMCORE_HTTP_TOKEN` or `--http-token-file`), which every
//! mutating call (POST: submit, savepoint, stop, cancel) must present; read-only calls stay
//! open (for scrapers). The token is never logged or sent back, and responses carry nothing
//! but the jobs' own figures.

pub mod client;
mod prom;
pub mod watermarks;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Args;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use streamcore::checkpoint::parse_duration;
use streamcore::metrics::MetricsReader;

/// The dashboard page: plain HTML, CSS and JavaScript, no framework, no network access.
const DASHBOARD: &str = include_str!("../../assets/dashboard.html");

/// The environment variable holding the bearer token (alternative to `--http-token-file`).
pub const TOKEN_ENV: &str = "STREAMCORE_HTTP_TOKEN";

/// The `--http` options every job command shares.
#[derive(Args, Debug, Clone, Default)]
pub struct HttpArgs {
    /// Serve the job's metrics (`/metrics`, Prometheus), its REST API (`/api/v1`) and the
    /// dashboard (`/`) on this address, e.g. `127.0.0.1:8081`. An address other than loopback
    /// needs a bearer token (STREAMCORE_HTTP_TOKEN or --http-token-file) that submit,
    /// savepoint, stop and cancel calls must present. See docs/operations.md.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// A file holding the bearer token for mutating HTTP calls (instead of the
    /// STREAMCORE_HTTP_TOKEN environment variable).
    #[arg(long, value_name = "FILE", requires = "http")]
    pub http_token_file: Option<PathBuf>,
    /// Keep serving the final metrics this long after the job ended (a last scrape, a look
    /// at the dashboard), e.g. `30s`.
    #[arg(long, default_value = "0s", value_parser = parse_duration, requires = "http")]
    pub http_linger: Duration,
}

/// What an HTTP client asked the job to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Take a savepoint; the job goes on.
    Savepoint,
    /// Take a savepoint and stop there.
    StopWithSavepoint,
    /// Stop the sources and drain.
    Stop,
    /// Abort the job.
    Cancel,
}

/// An action with the way back for its answer (JSON for the client, or an error message).
pub struct ActionRequest {
    /// What to do.
    pub action: Action,
    /// Where the answer goes.
    pub reply: tokio::sync::oneshot::Sender<Result<serde_json::Value, String>>,
}

/// How the job is doing, as the API reports it.
#[derive(Clone, Debug)]
pub enum JobState {
    /// Running.
    Running,
    /// Ended normally (input exhausted, or stopped).
    Finished,
    /// Stopped after a savepoint.
    Stopped,
    /// Cancelled.
    Cancelled,
    /// Failed with this error.
    Failed(String),
}

impl JobState {
    fn name(&self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Finished => "finished",
            JobState::Stopped => "stopped",
            JobState::Cancelled => "cancelled",
            JobState::Failed(_) => "failed",
        }
    }
}

/// One job the endpoint serves: its figures, how it is doing, and the way to its owner.
pub struct JobEntry {
    id: String,
    name: String,
    started_ms: i64,
    reader: MetricsReader,
    actions: Mutex<mpsc::Sender<ActionRequest>>,
    state: Mutex<JobState>,
    /// Totals sampled once a second for the last [`RATE_HISTORY`] seconds: rates over time
    /// for the dashboard's charts, from before the page was opened.
    samples: Mutex<std::collections::VecDeque<Sample>>,
}

impl JobEntry {
    fn state(&self) -> JobState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn running(&self) -> bool {
        matches!(self.state(), JobState::Running)
    }
}

/// The jobs an endpoint serves, in the order they started: one for a job command, any
/// number for `streamcore serve`.
#[derive(Default)]
pub struct Registry {
    jobs: Mutex<Vec<Arc<JobEntry>>>,
}

impl Registry {
    /// Adds a started job under `id` (unique in the registry); its owner answers the
    /// actions the returned slot receives.
    pub fn add(&self, id: &str, name: &str, reader: MetricsReader) -> JobSlot {
        let (tx, rx) = mpsc::channel();
        let entry = Arc::new(JobEntry {
            id: id.to_string(),
            name: name.to_string(),
            started_ms: watermarks::now_ms(),
            reader,
            actions: Mutex::new(tx),
            state: Mutex::new(JobState::Running),
            samples: Mutex::new(std::collections::VecDeque::new()),
        });
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(entry.clone());
        JobSlot {
            entry,
            actions: Mutex::new(rx),
        }
    }

    /// Whether a job has this id.
    pub fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    fn get(&self, id: &str) -> Option<Arc<JobEntry>> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|j| j.id == id)
            .cloned()
    }

    fn all(&self) -> Vec<Arc<JobEntry>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The owner's side of a job in the registry: the actions clients ask for, and where the
/// job's end is recorded.
pub struct JobSlot {
    entry: Arc<JobEntry>,
    /// In a mutex only so that the server's shutdown can answer what is left (the owner is
    /// the only other reader).
    actions: Mutex<mpsc::Receiver<ActionRequest>>,
}

impl JobSlot {
    /// The next action a client asked for, if any (never blocks).
    pub fn next_action(&self) -> Option<ActionRequest> {
        self.actions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_recv()
            .ok()
    }

    /// Records how the job ended; actions asked for meanwhile get "the job has ended" (and
    /// later ones are refused before they are sent: see [`act`]).
    pub fn finish(&self, state: JobState) {
        let mut s = self.entry.state.lock().unwrap_or_else(|p| p.into_inner());
        *s = state;
        drop(s);
        self.refuse_pending();
    }

    fn refuse_pending(&self) {
        while let Some(request) = self.next_action() {
            let _ = request.reply.send(Err("the job has ended".into()));
        }
    }
}

/// A job submitted over HTTP (`POST /api/v1/jobs`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SubmitRequest {
    /// The SQL script.
    pub sql: String,
    /// The job's parallelism (the server's default when absent).
    #[serde(default)]
    pub parallelism: Option<usize>,
    /// A checkpoint or savepoint directory to restore from, or `latest`.
    #[serde(default)]
    pub restore: Option<String>,
    /// With `restore`: drop the state of operators the job no longer has.
    #[serde(default)]
    pub allow_non_restored_state: bool,
}

/// A refused submission: the HTTP status and the message for the client.
#[derive(Debug)]
pub struct SubmitError {
    /// 400 for a bad script or request, 409 when the server is shutting down, 500 otherwise.
    pub status: StatusCode,
    /// What went wrong (for a script: with its line and column).
    pub message: String,
}

/// Starts a submitted job and registers it; the answer (JSON naming the job) goes back to
/// the client. Runs on a blocking thread.
pub type Submit =
    Arc<dyn Fn(SubmitRequest) -> Result<serde_json::Value, SubmitError> + Send + Sync>;

/// What the handlers share.
struct AppState {
    registry: Arc<Registry>,
    token: Option<String>,
    /// How jobs are submitted (`streamcore serve`); `None` for a one-job command.
    submit: Option<Submit>,
}

/// How many one-second samples of the totals are kept (five minutes).
const RATE_HISTORY: usize = 300;

/// The job's totals at one moment.
struct Sample {
    at_ms: i64,
    duration_ms: f64,
    ingested: u64,
    emitted: u64,
    /// Records in per operator, by name.
    operators: Vec<(String, u64)>,
}

impl Sample {
    fn of(summary: &streamcore::JobSummary) -> Sample {
        Sample {
            at_ms: watermarks::now_ms(),
            duration_ms: summary.duration_ms,
            ingested: summary.events_ingested,
            emitted: summary.events_emitted,
            operators: summary
                .operators
                .iter()
                .map(|o| (o.name.clone(), o.events_processed))
                .collect(),
        }
    }
}

/// Samples the running jobs' totals once a second while the server runs.
async fn sample_rates(app: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        for job in app.registry.all() {
            let fresh = {
                let samples = job.samples.lock().unwrap_or_else(|p| p.into_inner());
                samples.is_empty()
            };
            // An ended job keeps its history (and gets one last point).
            if !job.running() && !fresh {
                let samples = job.samples.lock().unwrap_or_else(|p| p.into_inner());
                let last = samples.back().map(|s| s.duration_ms);
                drop(samples);
                if last == Some(job.reader.summary().duration_ms) {
                    continue;
                }
            }
            let sample = Sample::of(&job.reader.summary());
            let mut samples = job.samples.lock().unwrap_or_else(|p| p.into_inner());
            if samples.len() > RATE_HISTORY {
                samples.pop_front();
            }
            samples.push_back(sample);
        }
    }
}

/// A listening socket, bound before the job starts (so a bad address fails fast).
pub struct Bound {
    listener: std::net::TcpListener,
    token: Option<String>,
    linger: Duration,
}

/// Binds the endpoint if `--http` was given. Refuses a non-loopback address without a token.
pub fn bind(args: &HttpArgs) -> anyhow::Result<Option<Bound>> {
    let Some(addr) = args.http else {
        return Ok(None);
    };
    let token = match &args.http_token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the HTTP token file {}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => std::env::var(TOKEN_ENV).ok().map(|t| t.trim().to_string()),
    }
    .filter(|t| !t.is_empty());
    if !addr.ip().is_loopback() && token.is_none() {
        anyhow::bail!(
            "--http {addr} is not a loopback address: set a bearer token for savepoint, stop and \
             cancel calls ({TOKEN_ENV} or --http-token-file), or bind to 127.0.0.1"
        );
    }
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("binding the HTTP endpoint to {addr}"))?;
    listener.set_nonblocking(true)?;
    Ok(Some(Bound {
        listener,
        token,
        linger: args.http_linger,
    }))
}

/// The server thread of an endpoint, stopped when dropped.
pub struct Endpoint {
    app: Arc<AppState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The owner's sides of the jobs of a one-job command (their actions are refused once
    /// the server stops).
    slots: Vec<Arc<JobSlot>>,
}

/// The running endpoint of one job (a job command's `--http`).
pub struct HttpServer {
    slot: Arc<JobSlot>,
    endpoint: Endpoint,
    linger: Duration,
}

impl Bound {
    /// Starts serving `reader`'s job under the id `job_id`.
    pub fn serve(self, job_id: &str, reader: MetricsReader) -> anyhow::Result<HttpServer> {
        let registry = Arc::new(Registry::default());
        let slot = Arc::new(registry.add(job_id, job_id, reader));
        let linger = self.linger;
        let mut endpoint = self.start(registry, None)?;
        endpoint.slots.push(slot.clone());
        Ok(HttpServer {
            slot,
            endpoint,
            linger,
        })
    }

    /// Starts serving the jobs of `registry`, with `POST /api/v1/jobs` submitting new ones
    /// through `submit` (`streamcore serve`).
    pub fn serve_jobs(self, registry: Arc<Registry>, submit: Submit) -> anyhow::Result<Endpoint> {
        self.start(registry, Some(submit))
    }

    fn start(self, registry: Arc<Registry>, submit: Option<Submit>) -> anyhow::Result<Endpoint> {
        let addr = self.listener.local_addr()?;
        let app = Arc::new(AppState {
            registry,
            token: self.token,
            submit,
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .context("starting the HTTP runtime")?;
        let router = router(app.clone());
        let sampled = app.clone();
        let listener = self.listener;
        let thread = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::spawn(sample_rates(sampled));
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "the HTTP endpoint cannot listen");
                            return;
                        }
                    };
                    let served = axum::serve(listener, router)
                        .with_graceful_shutdown(async {
                            let _ = stop_rx.await;
                        })
                        .await;
                    if let Err(e) = served {
                        tracing::error!(error = %e, "the HTTP endpoint failed");
                    }
                })
            })
            .context("starting the HTTP thread")?;
        tracing::info!(%addr, "serving metrics, API and dashboard");
        eprintln!("dashboard, metrics and API on http://{addr}/");
        Ok(Endpoint {
            app,
            shutdown: Some(stop_tx),
            thread: Some(thread),
            slots: Vec::new(),
        })
    }
}

impl HttpServer {
    /// The next action a client asked for, if any (never blocks).
    pub fn next_action(&self) -> Option<ActionRequest> {
        self.slot.next_action()
    }

    /// Records how the job ended, then keeps serving for the linger time and stops.
    pub fn finish(self, state: JobState) {
        self.slot.finish(state);
        let deadline = std::time::Instant::now() + self.linger;
        // Actions asked for while lingering get an answer: the job is over.
        while std::time::Instant::now() < deadline {
            self.slot.refuse_pending();
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(self.endpoint);
    }
}

impl Endpoint {
    /// Whether every job of the registry has ended.
    pub fn all_ended(&self) -> bool {
        self.app.registry.all().iter().all(|j| !j.running())
    }

    fn stop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            // The graceful shutdown waits for requests in flight: an action still waiting for
            // its answer gets one, so that none waits forever.
            while !t.is_finished() {
                for slot in &self.slots {
                    slot.refuse_pending();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = t.join();
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop();
    }
}

fn router(app: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/dashboard", get(dashboard))
        .route("/metrics", get(metrics))
        .route("/api/v1/jobs", get(jobs).post(submit))
        .route("/api/v1/jobs/{id}", get(job))
        .route("/api/v1/jobs/{id}/graph", get(graph))
        .route("/api/v1/jobs/{id}/metrics", get(job_metrics))
        .route("/api/v1/jobs/{id}/subtasks", get(subtasks))
        .route("/api/v1/jobs/{id}/checkpoints", get(checkpoints))
        .route("/api/v1/jobs/{id}/rates", get(rates))
        .route("/api/v1/jobs/{id}/watermarks", get(explain_watermarks))
        .route("/api/v1/jobs/{id}/savepoint", post(savepoint))
        .route("/api/v1/jobs/{id}/stop", post(stop))
        .route("/api/v1/jobs/{id}/cancel", post(cancel))
        .fallback(not_found)
        .layer(axum::middleware::map_response(common_headers))
        .with_state(app)
}

async fn common_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such route (see /api/v1/jobs)")
}

/// A refused request: its status and message.
struct Refused(StatusCode, &'static str);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut r = error(self.0, self.1);
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// The job named by the route, or a 404.
fn job_of(app: &AppState, id: &str) -> Result<Arc<JobEntry>, Refused> {
    app.registry
        .get(id)
        .ok_or(Refused(StatusCode::NOT_FOUND, "no such job"))
}

async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:",
            ),
        ],
        DASHBOARD,
    )
        .into_response()
}

async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    let jobs = app.registry.all();
    let readers: Vec<(&MetricsReader, bool)> =
        jobs.iter().map(|j| (&j.reader, j.running())).collect();
    match prom::render_all(&readers) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn state_json(job: &JobEntry) -> serde_json::Value {
    let state = job.state();
    let error = match &state {
        JobState::Failed(e) => json!(e),
        _ => serde_json::Value::Null,
    };
    json!({
        "id": job.id,
        "name": job.name,
        "state": state.name(),
        "started": job.started_ms,
        "error": error,
    })
}

async fn jobs(State(app): State<Arc<AppState>>) -> Response {
    let jobs: Vec<_> = app.registry.all().iter().map(|j| state_json(j)).collect();
    Json(json!({ "jobs": jobs })).into_response()
}

/// `POST /api/v1/jobs`: a SQL script as the body, or JSON `{"sql": …, "parallelism": N,
/// "restore": …}`. Only `streamcore serve` takes submissions.
async fn submit(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authorized(&app, &headers) {
        return r.into_response();
    }
    let Some(submit) = app.submit.clone() else {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "this process runs one job; submit jobs to `streamcore serve`",
        );
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body is not UTF-8");
    };
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
        || text.trim_start().starts_with('{');
    let request = if json_body {
        match serde_json::from_str::<SubmitRequest>(text) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad submission: {e}")),
        }
    } else {
        SubmitRequest {
            sql: text.to_string(),
            parallelism: None,
            restore: None,
            allow_non_restored_state: false,
        }
    };
    match tokio::task::spawn_blocking(move || submit(request)).await {
        Ok(Ok(body)) => (StatusCode::CREATED, Json(body)).into_response(),
        Ok(Err(e)) => error(e.status, &e.message),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn job(State(app): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let job = match job_of(&app, &id) {
        Ok(j) => j,
        Err(r) => return r.into_response(),
    };
    let mut body = state_json(&job);
    body["summary"] = json!(job.reader.summary());
    Json(body).into_response()
}

async fn graph(State(app): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match job_of(&app, &id) {
        Ok(job) => Json(json!({ "graph": job.reader.graph() })).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn job_metrics(State(app): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match job_of(&app, &id) {
        Ok(job) => Json(job.reader.summary()).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn subtasks(State(app): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match job_of(&app, &id) {
        Ok(job) => Json(job.reader.detail()).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn checkpoints(State(app): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let job = match job_of(&app, &id) {
        Ok(j) => j,
        Err(r) => return r.into_response(),
    };
    let detail = job.reader.detail();
    Json(json!({
        "summary": job.reader.summary().checkpoints,
        "history": detail.checkpoint_history,
    }))
    .into_response()
}

/// Records per second over the last minutes, one point a second: read, written, and in per
/// operator.
async fn rates(State(app): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let job = match job_of(&app, &id) {
        Ok(j) => j,
        Err(r) => return r.into_response(),
    };
    let samples = job.samples.lock().unwrap_or_else(|p| p.into_inner());
    let points: Vec<_> = samples
        .iter()
        .zip(samples.iter().skip(1))
        .filter(|(a, b)| b.duration_ms > a.duration_ms)
        .map(|(a, b)| {
            let dt = (b.duration_ms - a.duration_ms) / 1e3;
            let per_s = |x: u64, y: u64| y.saturating_sub(x) as f64 / dt;
            let operators: serde_json::Map<String, serde_json::Value> = b
                .operators
                .iter()
                .filter_map(|(name, n)| {
                    let (_, before) = a.operators.iter().find(|(m, _)| m == name)?;
                    Some((name.clone(), json!(per_s(*before, *n))))
                })
                .collect();
            json!({
                "at_ms": b.at_ms,
                "read_per_second": per_s(a.ingested, b.ingested),
                "written_per_second": per_s(a.emitted, b.emitted),
                "operators_in_per_second": operators,
            })
        })
        .collect();
    Json(json!({ "interval_ms": 1000, "points": points })).into_response()
}

/// `?format=text` for the plain-text explanation.
#[derive(serde::Deserialize)]
struct ExplainQuery {
    format: Option<String>,
}

async fn explain_watermarks(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<ExplainQuery>,
) -> Response {
    let job = match job_of(&app, &id) {
        Ok(j) => j,
        Err(r) => return r.into_response(),
    };
    let report = watermarks::explain(&job.reader.detail(), watermarks::now_ms());
    match q.format.as_deref() {
        Some("text") => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            report.to_text(),
        )
            .into_response(),
        _ => Json(report).into_response(),
    }
}

/// Compares without an early exit (the time taken says nothing about the token).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= (*x ^ b.get(i).copied().unwrap_or(0)) as usize;
    }
    diff == 0
}

/// Mutating calls: the bearer token when one is set (always, off loopback).
fn authorized(app: &AppState, headers: &HeaderMap) -> Result<(), Refused> {
    let Some(token) = &app.token else {
        return Ok(());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if same_secret(presented.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(Refused(
            StatusCode::UNAUTHORIZED,
            "this call needs the endpoint's bearer token (Authorization: Bearer …)",
        ))
    }
}

async fn act(app: Arc<AppState>, id: String, headers: HeaderMap, action: Action) -> Response {
    let job = match job_of(&app, &id) {
        Ok(j) => j,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = authorized(&app, &headers) {
        return r.into_response();
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    {
        // Sent under the state's lock: the owner records the end under it too and then
        // answers what was sent, so no request waits for an owner that is gone.
        let state = job.state.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(*state, JobState::Running) {
            return error(StatusCode::CONFLICT, "the job has ended");
        }
        let sent = job
            .actions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(ActionRequest { action, reply: tx });
        if sent.is_err() {
            return error(StatusCode::CONFLICT, "the job has ended");
        }
    }
    match rx.await {
        Ok(Ok(body)) => Json(body).into_response(),
        Ok(Err(e)) => error(StatusCode::CONFLICT, &e),
        Err(_) => error(StatusCode::CONFLICT, "the job has ended"),
    }
}

async fn savepoint(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    act(app, id, headers, Action::Savepoint).await
}

/// `?savepoint=true` stops with a savepoint; otherwise the sources stop and the job drains.
#[derive(serde::Deserialize)]
struct StopQuery {
    savepoint: Option<bool>,
}

async fn stop(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
    headers: HeaderMap,
) -> Response {
    let action = if q.savepoint.unwrap_or(false) {
        Action::StopWithSavepoint
    } else {
        Action::Stop
    };
    act(app, id, headers, action).await
}

async fn cancel(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    act(app, id, headers, Action::Cancel).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
        assert!(same_secret(b"", b""));
    }
}
