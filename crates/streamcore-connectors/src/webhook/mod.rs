//! The webhook (alert) sink: records POSTed as JSON to an HTTP(S) endpoint — one request per
//! record or a JSON array per batch — with a payload template, retries with exponential
//! backoff and jitter, a dead-letter output after the retries, a rate limit, and
//! de-duplication by a key within a time window, so that a flapping condition alerts once.
//!
//! - **Records.** Any `T: Serialize` ([`WebhookSink::new`]: its JSON is the payload), or rows
//!   with a schema ([`WebhookSink::rows`]: the row as a JSON object, or a payload template such
//!   as `{"text": "fraud on {user_id}: {amount}"}` — values are escaped for JSON strings).
//! - **Delivery.** A request that fails to connect, times out, or gets a 5xx, 408 or 429
//!   answer is retried after `min(max, initial · 2^attempt)`, half of it random (jitter); a
//!   `Retry-After` in seconds is honoured (capped at the maximum). Other 4xx answers are not
//!   retried. After the retries the alert goes to the dead-letter output
//!   ([`WebhookSink::dead_letter_file`], [`WebhookSink::dead_letter_fn`]) with the error and the
//!   number of attempts; without one, the job fails naming the endpoint and the answer.
//!   Requests are sequential per parallel instance (slow endpoints apply backpressure).
//! - **De-duplication** ([`WebhookSink::dedup_key`], [`WebhookSink::dedup_key_template`]): a
//!   record whose key was alerted less than the window ago (processing time, from that first
//!   alert) is dropped and counted. The memory is per parallel instance — key the stream by the
//!   de-duplication key for one memory per key — and is not checkpointed: after a restore a key
//!   may alert once more.
//! - **Rate limit** ([`WebhookSink::rate_limit`]): at most that many requests per second per
//!   parallel instance (a token bucket with a burst of one second's worth).
//! - **Secrets.** Header values may name environment variables (`Bearer ${env:ALERT_TOKEN}`),
//!   read when the job starts; header values are never logged, and the endpoint appears in
//!   messages as its origin only (`https://hooks.example.com/…`: paths of webhook URLs often
//!   hold a token).
//! - **TLS** through rustls with Mozilla's root certificates, or — for a private endpoint —
//!   exactly the CA certificates of a PEM file ([`WebhookSink::ca_file`]).
//!
//! Delivery is at-least-once: after a restore, alerts sent since the last checkpoint are sent
//! again (receivers de-duplicate on a key in the payload if they must).

mod sender;

use crate::options::Options;
use crate::sink_metrics::{SinkKind, SinkMetrics};
use crate::template::{write_json_row, Escape, Template};
pub use sender::{DeadLetterFn, WebhookDeadLetter};
use sender::{DeadLetterOut, Sender};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use streamcore::context::TaskInfo;
use streamcore::row::{Row, Schema};
use streamcore::{Data, Result, Sink, SinkWriter, StreamError};

/// How records become payloads and de-duplication keys. One call per record through a pointer:
/// next to an HTTP request per record (or batch), it does not show.
type EncodeFn<T> = Arc<dyn Fn(&T, &mut String) -> std::result::Result<(), String> + Send + Sync>;
type KeyFn<T> = Arc<dyn Fn(&T, &mut String) + Send + Sync>;

/// The webhook sink's settings (the encoding of records aside): built by the
/// [`WebhookSink`] builders or read from a Flink-style option map
/// ([`WebhookConfig::from_options`]).
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// The endpoint, `http://` or `https://`.
    pub url: String,
    /// Extra headers; values may hold `${env:VAR}`, replaced when the job starts.
    pub headers: Vec<(String, String)>,
    /// Records per request: 1 posts each record's payload; more post a JSON array.
    pub batch_size: usize,
    /// Attempts after the first, before an alert is dead-lettered (or the job fails).
    pub max_retries: u32,
    /// The first retry's backoff (doubling from there).
    pub backoff_initial: Duration,
    /// The largest backoff.
    pub backoff_max: Duration,
    /// Timeout of one request (connect, send, answer).
    pub timeout: Duration,
    /// Most requests per second (per parallel instance).
    pub rate_limit: Option<f64>,
    /// De-duplication window (with a de-duplication key).
    pub dedup_window: Duration,
    /// A PEM file of the CA certificates to trust instead of the public roots.
    pub ca_file: Option<PathBuf>,
    /// A JSON-lines file of the alerts that exhausted their retries.
    pub dead_letter_file: Option<PathBuf>,
    /// Whether to check at start that the endpoint accepts connections (default true).
    pub check_on_start: bool,
}

impl WebhookConfig {
    /// Defaults for `url`: one request per record, 5 retries from 100 ms up to 10 s, 10 s
    /// timeout, no rate limit, no de-duplication.
    pub fn new(url: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            headers: Vec::new(),
            batch_size: 1,
            max_retries: 5,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            rate_limit: None,
            dedup_window: Duration::from_secs(300),
            ca_file: None,
            dead_letter_file: None,
            check_on_start: true,
        }
    }

    /// Reads a `WITH ('connector' = 'webhook', …)` option map; returns the settings and the
    /// row-encoding options (`format.template`, `dedup.key`), which need the schema:
    ///
    /// | option | meaning |
    /// |---|---|
    /// | `url` (required) | the endpoint |
    /// | `headers.NAME` | a header; `${env:VAR}` in the value reads the environment |
    /// | `format.template` | payload template over the row's columns (default: the row as JSON) |
    /// | `sink.batch.size` | records per request (default 1; more post a JSON array) |
    /// | `sink.max-retries` | retries before dead-lettering (default 5) |
    /// | `sink.retry.initial-backoff`, `sink.retry.max-backoff` | default `100 ms`, `10 s` |
    /// | `sink.timeout` | per request (default `10 s`) |
    /// | `sink.rate-limit` | requests per second |
    /// | `dedup.key`, `dedup.window` | de-duplication key template and window (default `5 min`) |
    /// | `tls.ca-file` | extra CA certificates (PEM) |
    /// | `sink.dead-letter.path` | JSON-lines file of undeliverable alerts |
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<(Self, RowEncoding)> {
        let mut o = Options::new("webhook", options);
        let mut c = WebhookConfig::new(o.required("url")?);
        for (name, value) in o.with_prefix("headers.") {
            c.headers.push((name.to_string(), value.to_string()));
        }
        if let Some(n) = o.integer::<usize>("sink.batch.size")? {
            c.batch_size = n.max(1);
        }
        if let Some(n) = o.integer("sink.max-retries")? {
            c.max_retries = n;
        }
        if let Some(d) = o.duration("sink.retry.initial-backoff")? {
            c.backoff_initial = d;
        }
        if let Some(d) = o.duration("sink.retry.max-backoff")? {
            c.backoff_max = d;
        }
        if let Some(d) = o.duration("sink.timeout")? {
            c.timeout = d;
        }
        c.rate_limit = o.parsed("sink.rate-limit", |v| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|r| *r > 0.0)
                .ok_or_else(|| format!("`{v}` is not a positive number of requests per second"))
        })?;
        if let Some(d) = o.duration("dedup.window")? {
            c.dedup_window = d;
        }
        c.ca_file = o.get("tls.ca-file").map(PathBuf::from);
        c.dead_letter_file = o.get("sink.dead-letter.path").map(PathBuf::from);
        let encoding = RowEncoding {
            template: o.get("format.template").map(str::to_string),
            dedup_key: o.get("dedup.key").map(str::to_string),
        };
        o.finish()?;
        Ok((c, encoding))
    }
}

/// How rows are encoded: a payload template and a de-duplication key template, both over the
/// row's columns (see [`WebhookSink::rows`]).
#[derive(Clone, Debug, Default)]
pub struct RowEncoding {
    /// The payload template (`None`: the row as a JSON object).
    pub template: Option<String>,
    /// The de-duplication key template.
    pub dedup_key: Option<String>,
}

/// Posts records to an HTTP endpoint. See the [module docs](self).
///
/// ```no_run
/// use serde::Serialize;
/// use std::time::Duration;
/// use streamcore_connectors::webhook::WebhookSink;
/// #[derive(Clone, Serialize)]
/// struct FraudAlert { user: String, amount: f64 }
/// let sink = WebhookSink::<FraudAlert>::new("https://alerts.example.com/hook")
///     .header("Authorization", "Bearer ${env:ALERT_TOKEN}")
///     .dedup_key(|a: &FraudAlert| a.user.clone(), Duration::from_secs(600))
///     .max_retries(8)
///     .rate_limit(20.0)
///     .dead_letter_file("undelivered-alerts.jsonl");
/// ```
pub struct WebhookSink<T> {
    config: WebhookConfig,
    encode: EncodeFn<T>,
    dedup: Option<KeyFn<T>>,
    dead_letter_fn: Option<sender::DeadLetterFn>,
    /// A configuration mistake found by a builder, reported when the job starts.
    error: Option<String>,
    metrics: Arc<SinkMetrics>,
    schema: Option<Schema>,
}

impl<T: Serialize + 'static> WebhookSink<T> {
    /// Posts each record's JSON (serde) to `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_encoder(
            WebhookConfig::new(url),
            Arc::new(|record: &T, out: &mut String| {
                let json = serde_json::to_string(record).map_err(|e| e.to_string())?;
                out.push_str(&json);
                Ok(())
            }),
        )
    }

    /// De-duplicates by `key(record)` within `window`.
    pub fn dedup_key<K: std::fmt::Display>(
        mut self,
        key: impl Fn(&T) -> K + Send + Sync + 'static,
        window: Duration,
    ) -> Self {
        use std::fmt::Write as _;
        self.dedup = Some(Arc::new(move |r: &T, out: &mut String| {
            let _ = write!(out, "{}", key(r));
        }));
        self.config.dedup_window = window;
        self
    }
}

impl WebhookSink<Row> {
    /// Posts rows of `schema`: each row as a JSON object keyed by column name, unless a
    /// [`WebhookSink::payload_template`] is set.
    pub fn rows(url: impl Into<String>, schema: Schema) -> Self {
        let s = schema.clone();
        let mut sink = Self::with_encoder(
            WebhookConfig::new(url),
            Arc::new(move |row: &Row, out: &mut String| {
                write_json_row(row, &s, out);
                Ok(())
            }),
        );
        sink.schema = Some(schema);
        sink
    }

    /// A row sink from a configuration and row encoding
    /// ([`WebhookConfig::from_options`]); templates are checked now.
    pub fn from_config(
        config: WebhookConfig,
        encoding: RowEncoding,
        schema: Schema,
    ) -> Result<Self> {
        let url = config.url.clone();
        let mut sink = Self::rows(url, schema);
        let window = config.dedup_window;
        sink.config = config;
        if let Some(t) = &encoding.template {
            sink = sink.payload_template(t);
        }
        if let Some(k) = &encoding.dedup_key {
            sink = sink.dedup_key_template(k, window);
        }
        sink.validate()?;
        Ok(sink)
    }

    /// The payload template: JSON text with `{column}` placeholders, values escaped for JSON
    /// strings (`{"text": "user {user_id} spent {amount}", "amount": {amount}}`).
    pub fn payload_template(mut self, template: &str) -> Self {
        match Template::compile(
            template,
            self.schema_ref(),
            Escape::Json,
            "webhook payload template",
        ) {
            Ok(t) => {
                self.encode = Arc::new(move |row: &Row, out: &mut String| {
                    t.render_into(row, out);
                    Ok(())
                })
            }
            Err(e) => self.error = Some(e.to_string()),
        }
        self
    }

    /// De-duplicates by a key template over the row (`{user_id}:{rule}`) within `window`.
    pub fn dedup_key_template(mut self, template: &str, window: Duration) -> Self {
        match Template::compile(
            template,
            self.schema_ref(),
            Escape::Text,
            "webhook de-duplication key",
        ) {
            Ok(t) => {
                self.dedup = Some(Arc::new(move |row: &Row, out: &mut String| {
                    t.render_into(row, out)
                }));
                self.config.dedup_window = window;
            }
            Err(e) => self.error = Some(e.to_string()),
        }
        self
    }

    fn schema_ref(&self) -> &Schema {
        self.schema.as_ref().expect("row sinks have a schema")
    }
}

impl<T: 'static> WebhookSink<T> {
    fn with_encoder(config: WebhookConfig, encode: EncodeFn<T>) -> Self {
        WebhookSink {
            config,
            encode,
            dedup: None,
            dead_letter_fn: None,
            error: None,
            metrics: Arc::new(SinkMetrics::new(SinkKind::Webhook)),
            schema: None,
        }
    }

    /// Adds a header; `${env:VAR}` in the value is replaced by the variable when the job
    /// starts (a missing variable stops it, naming the variable). Never logged.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.config
            .headers
            .push((name.to_string(), value.to_string()));
        self
    }

    /// Posts up to `n` records per request, as a JSON array (default 1: one record, as is).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.config.batch_size = n.max(1);
        self
    }

    /// Retries after the first attempt (default 5).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.config.max_retries = n;
        self
    }

    /// The first and the largest backoff between attempts (default 100 ms and 10 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.config.backoff_initial = initial;
        self.config.backoff_max = max.max(initial);
        self
    }

    /// Timeout of one request (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// At most `per_second` requests per second per parallel instance.
    pub fn rate_limit(mut self, per_second: f64) -> Self {
        if per_second > 0.0 && per_second.is_finite() {
            self.config.rate_limit = Some(per_second);
        } else {
            self.error = Some(format!(
                "webhook sink: a rate limit of {per_second} requests per second"
            ));
        }
        self
    }

    /// Trusts the CA certificates of this PEM file instead of the public roots (a private
    /// endpoint's own CA).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.ca_file = Some(path.into());
        self
    }

    /// Appends undeliverable alerts to this JSON-lines file (one [`WebhookDeadLetter`] each).
    pub fn dead_letter_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.dead_letter_file = Some(path.into());
        self
    }

    /// Hands undeliverable alerts to `f` (called from the sink's threads).
    pub fn dead_letter_fn(
        mut self,
        f: impl Fn(&WebhookDeadLetter) + Send + Sync + 'static,
    ) -> Self {
        self.dead_letter_fn = Some(Arc::new(f));
        self
    }

    /// Whether to check at start that the endpoint accepts connections (default true).
    pub fn check_on_start(mut self, check: bool) -> Self {
        self.config.check_on_start = check;
        self
    }

    /// The settings.
    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// The sink's live counters (also in the job summary).
    pub fn metrics(&self) -> Arc<SinkMetrics> {
        self.metrics.clone()
    }

    /// Reports a configuration mistake a builder found (a bad template, a bad rate limit).
    pub fn validate(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(StreamError::Config(e.clone())),
            None => Ok(()),
        }
    }
}

/// One parallel writer of a [`WebhookSink`].
pub struct WebhookWriter<T> {
    sender: Sender,
    encode: EncodeFn<T>,
    dedup: Option<KeyFn<T>>,
    batch_size: usize,
    /// Payloads of the request being assembled.
    pending: Vec<String>,
    key: String,
}

impl<T: Data> Sink<T> for WebhookSink<T> {
    type Writer = WebhookWriter<T>;

    fn create_writer(&mut self, task: &TaskInfo) -> Result<WebhookWriter<T>> {
        self.validate()?;
        let dead = DeadLetterOut::new(
            self.config.dead_letter_file.as_deref(),
            self.dead_letter_fn.clone(),
        )?;
        let sender = Sender::new(&self.config, task, dead, self.metrics.clone())?;
        Ok(WebhookWriter {
            sender,
            encode: self.encode.clone(),
            dedup: self.dedup.clone(),
            batch_size: self.config.batch_size,
            pending: Vec::new(),
            key: String::new(),
        })
    }

    fn connector_metrics(&self) -> Option<Arc<dyn streamcore::metrics::ConnectorMetrics>> {
        Some(self.metrics.clone())
    }
}

impl<T: Data> SinkWriter<T> for WebhookWriter<T> {
    fn write_batch(&mut self, batch: Vec<T>) -> Result<()> {
        for record in &batch {
            if let Some(key) = &self.dedup {
                self.key.clear();
                key(record, &mut self.key);
                if !self.sender.first_within_window(&self.key) {
                    continue;
                }
            }
            let mut body = String::new();
            (self.encode)(record, &mut body).map_err(|e| {
                StreamError::Internal(format!("webhook sink: encoding a record: {e}"))
            })?;
            self.pending.push(body);
            if self.pending.len() >= self.batch_size {
                self.sender.send(&mut self.pending)?;
            }
        }
        // Alerts do not wait for a batch to fill beyond the input batch.
        self.sender.send(&mut self.pending)
    }

    fn pre_commit(&mut self, _checkpoint: u64) -> Result<Vec<Vec<u8>>> {
        self.sender.send(&mut self.pending)?;
        Ok(Vec::new())
    }

    fn close(&mut self) -> Result<()> {
        self.sender.send(&mut self.pending)?;
        self.sender.close()
    }
}
