//! The HTTP side of the webhook sink: one [`Sender`] per parallel writer holds the HTTP agent
//! (connection reuse, TLS), the resolved headers, the retry policy with jittered exponential
//! backoff, the rate limiter, the de-duplication memory and the dead-letter output.

use super::WebhookConfig;
use crate::sink_metrics::SinkMetrics;
use hashbrown::HashMap;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use streamcore::context::TaskInfo;
use streamcore::{Result, StreamError};

/// An alert that could not be delivered: what the dead-letter output receives.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct WebhookDeadLetter {
    /// The request body (one payload, or a JSON array of a batch's payloads).
    pub body: String,
    /// The last error: the HTTP status and the start of the answer, or the transport error.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// The endpoint's origin (`https://host:port`).
    pub endpoint: String,
    /// When it was given up, milliseconds since the epoch.
    pub at_ms: i64,
}

/// A function receiving undeliverable alerts.
pub type DeadLetterFn = Arc<dyn Fn(&WebhookDeadLetter) + Send + Sync>;

/// Where undeliverable alerts go.
pub(crate) struct DeadLetterOut {
    file: Option<(String, Arc<Mutex<BufWriter<File>>>)>,
    f: Option<DeadLetterFn>,
}

impl DeadLetterOut {
    pub(crate) fn new(path: Option<&Path>, f: Option<DeadLetterFn>) -> Result<Self> {
        let file = match path {
            None => None,
            Some(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| StreamError::io(format!("creating {}", dir.display()), e))?;
                }
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| {
                        StreamError::io(
                            format!("opening the webhook dead-letter file {}", p.display()),
                            e,
                        )
                    })?;
                Some((
                    p.display().to_string(),
                    Arc::new(Mutex::new(BufWriter::new(file))),
                ))
            }
        };
        Ok(DeadLetterOut { file, f })
    }

    fn is_set(&self) -> bool {
        self.file.is_some() || self.f.is_some()
    }

    fn put(&self, letter: &WebhookDeadLetter) -> Result<()> {
        if let Some((path, file)) = &self.file {
            let mut line = serde_json::to_vec(letter)
                .map_err(|e| StreamError::Internal(format!("encoding a dead letter: {e}")))?;
            line.push(b'\n');
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            f.write_all(&line)
                .and_then(|()| f.flush())
                .map_err(|e| StreamError::io(format!("writing {path}"), e))?;
        }
        if let Some(f) = &self.f {
            f(letter);
        }
        Ok(())
    }
}

/// The origin of a URL (`scheme://host:port`), for messages: webhook paths and queries often
/// hold a token.
pub(crate) fn origin(url: &str) -> String {
    match url.parse::<ureq::http::Uri>() {
        Ok(u) => {
            let scheme = u.scheme_str().unwrap_or("http");
            let host = u.host().unwrap_or("");
            match u.port_u16() {
                Some(p) => format!("{scheme}://{host}:{p}"),
                None => format!("{scheme}://{host}"),
            }
        }
        Err(_) => "<an invalid URL>".to_string(),
    }
}

/// Replaces `${env:VAR}` in a header value by the variable's value.
fn resolve_env(name: &str, value: &str) -> Result<String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${env:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 6..];
        let end = after.find('}').ok_or_else(|| {
            StreamError::Config(format!(
                "webhook header `{name}`: `${{env:` is not closed with `}}`"
            ))
        })?;
        let var = &after[..end];
        let v = std::env::var(var).map_err(|_| {
            StreamError::Config(format!(
                "webhook header `{name}`: environment variable `{var}` is not set"
            ))
        })?;
        out.push_str(&v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The HTTP side of one writer.
pub(crate) struct Sender {
    agent: ureq::Agent,
    url: String,
    endpoint: String,
    headers: Vec<(String, String)>,
    max_retries: u32,
    backoff_initial: Duration,
    backoff_max: Duration,
    /// Token bucket: tokens available, refilled at `rate` per second up to `rate` (one
    /// second's burst; at least one).
    rate: Option<f64>,
    tokens: f64,
    refilled: Instant,
    dedup_window: Duration,
    seen: HashMap<String, Instant>,
    seen_swept: Instant,
    dead: DeadLetterOut,
    metrics: Arc<SinkMetrics>,
    rng: u64,
    body: String,
    batched: bool,
}

/// The outcome of one attempt.
enum Attempt {
    Delivered,
    /// Worth another attempt, after at least this long (from `Retry-After`).
    Retry(String, Option<Duration>),
    /// Not worth another attempt (a 4xx other than 408/429).
    GiveUp(String),
}

impl Sender {
    pub(crate) fn new(
        config: &WebhookConfig,
        task: &TaskInfo,
        dead: DeadLetterOut,
        metrics: Arc<SinkMetrics>,
    ) -> Result<Self> {
        let endpoint = origin(&config.url);
        let uri: ureq::http::Uri = config.url.parse().map_err(|e| {
            StreamError::Config(format!("webhook sink: `{endpoint}` is not a URL: {e}"))
        })?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(StreamError::Config(format!(
                    "webhook sink: the URL must start with http:// or https:// (got {endpoint})"
                )))
            }
        };
        let host = uri.host().unwrap_or("").to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let mut headers = Vec::new();
        for (name, value) in &config.headers {
            headers.push((name.clone(), resolve_env(name, value)?));
        }
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                StreamError::io(format!("reading the webhook CA file {}", path.display()), e)
            })?;
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(&pem) {
                match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                    Ok(_) => {}
                    Err(e) => {
                        return Err(StreamError::Config(format!(
                            "webhook sink: the CA file {} is not PEM: {e}",
                            path.display()
                        )))
                    }
                }
            }
            if certs.is_empty() {
                return Err(StreamError::Config(format!(
                    "webhook sink: the CA file {} holds no certificate",
                    path.display()
                )));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(config.timeout))
            .user_agent(format!("streamcore/{}", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .build()
            .into();
        if config.check_on_start {
            // Fail fast: an endpoint that does not accept connections stops the job at start.
            use std::net::ToSocketAddrs;
            let addrs: Vec<_> = (host.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| StreamError::external("webhook", format!("resolving {endpoint}"), e))?
                .collect();
            let mut last = None;
            let ok = addrs.iter().any(|a| {
                match std::net::TcpStream::connect_timeout(
                    a,
                    config.timeout.min(Duration::from_secs(5)),
                ) {
                    Ok(_) => true,
                    Err(e) => {
                        last = Some(e);
                        false
                    }
                }
            });
            if !ok {
                let e = last.unwrap_or_else(|| std::io::Error::other("no address"));
                return Err(StreamError::external(
                    "webhook",
                    format!("connecting to {endpoint} (is the endpoint up? check_on_start(false) skips this check)"),
                    e,
                ));
            }
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ ((task.subtask as u64) << 48)
            ^ std::process::id() as u64;
        let now = Instant::now();
        Ok(Sender {
            agent,
            url: config.url.clone(),
            endpoint,
            headers,
            max_retries: config.max_retries,
            backoff_initial: config.backoff_initial,
            backoff_max: config.backoff_max.max(config.backoff_initial),
            rate: config.rate_limit,
            tokens: config.rate_limit.map_or(0.0, |r| r.max(1.0)),
            refilled: now,
            dedup_window: config.dedup_window,
            seen: HashMap::new(),
            seen_swept: now,
            dead,
            metrics,
            rng: seed | 1,
            body: String::new(),
            batched: config.batch_size > 1,
        })
    }

    /// True if `key` was not alerted within the window (and remembers it now).
    pub(crate) fn first_within_window(&mut self, key: &str) -> bool {
        let now = Instant::now();
        if now.duration_since(self.seen_swept) >= self.dedup_window {
            let window = self.dedup_window;
            self.seen.retain(|_, at| now.duration_since(*at) < window);
            self.seen_swept = now;
        }
        match self.seen.get_mut(key) {
            Some(at) if now.duration_since(*at) < self.dedup_window => {
                self.metrics.deduplicated.fetch_add(1, Relaxed);
                false
            }
            Some(at) => {
                *at = now;
                true
            }
            None => {
                self.seen.insert(key.to_string(), now);
                true
            }
        }
    }

    /// Sends the payloads (one request: the payload, or a JSON array of them) and empties the
    /// vector.
    pub(crate) fn send(&mut self, payloads: &mut Vec<String>) -> Result<()> {
        if payloads.is_empty() {
            return Ok(());
        }
        let n = payloads.len() as u64;
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        if payloads.len() == 1 && self.is_single() {
            body.push_str(&payloads[0]);
        } else {
            body.push('[');
            for (i, p) in payloads.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(p);
            }
            body.push(']');
        }
        payloads.clear();
        let result = self.deliver(&body, n);
        self.body = body;
        result
    }

    /// Batch size 1 posts each payload as it is; larger ones always post an array.
    fn is_single(&self) -> bool {
        !self.batched
    }

    fn deliver(&mut self, body: &str, records: u64) -> Result<()> {
        let mut attempts = 0u32;
        loop {
            self.wait_for_rate_limit();
            attempts += 1;
            let started = Instant::now();
            let outcome = self.attempt(body);
            self.metrics.commit_took(started.elapsed());
            self.metrics.batches.fetch_add(1, Relaxed);
            let (error, retry_after) = match outcome {
                Attempt::Delivered => {
                    self.metrics.records_out.fetch_add(records, Relaxed);
                    self.metrics.bytes_out.fetch_add(body.len() as u64, Relaxed);
                    return Ok(());
                }
                Attempt::Retry(e, after) if attempts <= self.max_retries => (e, after),
                Attempt::Retry(e, _) | Attempt::GiveUp(e) => {
                    return self.give_up(body, e, attempts);
                }
            };
            self.metrics.retries.fetch_add(1, Relaxed);
            let backoff = self.backoff(attempts, retry_after);
            tracing::warn!(endpoint = %self.endpoint, attempt = attempts, error = %error,
                "webhook request failed; retrying in {backoff:?}");
            std::thread::sleep(backoff);
        }
    }

    fn give_up(&mut self, body: &str, error: String, attempts: u32) -> Result<()> {
        self.metrics.errors.fetch_add(1, Relaxed);
        if !self.dead.is_set() {
            return Err(StreamError::External {
                system: "webhook".into(),
                message: format!(
                    "{} did not accept an alert after {attempts} attempts: {error} (set a dead-letter output to go on)",
                    self.endpoint
                ),
                source: None,
            });
        }
        tracing::warn!(endpoint = %self.endpoint, attempts, error = %error, "webhook alert dead-lettered");
        let letter = WebhookDeadLetter {
            body: body.to_string(),
            error,
            attempts,
            endpoint: self.endpoint.clone(),
            at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        };
        self.dead.put(&letter)?;
        self.metrics.dead_lettered.fetch_add(1, Relaxed);
        Ok(())
    }

    fn attempt(&mut self, body: &str) -> Attempt {
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        match req.send(body.as_bytes()) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                if (200..300).contains(&status) {
                    return Attempt::Delivered;
                }
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let mut text = resp
                    .body_mut()
                    .with_config()
                    .limit(2048)
                    .read_to_string()
                    .unwrap_or_default();
                text.truncate(text.trim_end().len().min(200));
                let e = if text.is_empty() {
                    format!("HTTP {status}")
                } else {
                    format!("HTTP {status}: {text}")
                };
                if status >= 500 || status == 408 || status == 429 {
                    Attempt::Retry(e, retry_after)
                } else {
                    Attempt::GiveUp(e)
                }
            }
            Err(e) => Attempt::Retry(e.to_string(), None),
        }
    }

    /// `min(max, initial · 2^(attempt-1))`, the upper half of it random (jitter); at least
    /// `Retry-After` (capped at the maximum).
    fn backoff(&mut self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .backoff_initial
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(self.backoff_max);
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        let frac = r as f64 / (1u64 << 53) as f64;
        let jittered = exp.mul_f64(0.5 + 0.5 * frac);
        match retry_after {
            Some(at_least) => jittered.max(at_least.min(self.backoff_max)),
            None => jittered,
        }
    }

    fn wait_for_rate_limit(&mut self) {
        let Some(rate) = self.rate else { return };
        let burst = rate.max(1.0);
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.refilled).as_secs_f64() * rate).min(burst);
        self.refilled = now;
        if self.tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / rate);
            std::thread::sleep(wait);
            self.metrics
                .rate_limited_ms
                .fetch_add(wait.as_millis() as u64, Relaxed);
            self.tokens = 1.0;
            self.refilled = Instant::now();
        }
        self.tokens -= 1.0;
    }

    pub(crate) fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_hide_paths_and_queries() {
        assert_eq!(
            origin("https://hooks.example.com/services/T0/B0/secret?x=1"),
            "https://hooks.example.com"
        );
        assert_eq!(origin("http://127.0.0.1:8080/a"), "http://127.0.0.1:8080");
    }

    #[test]
    fn header_values_read_the_environment() {
        std::env::set_var("STREAMCORE_WEBHOOK_TEST_TOKEN", "t0k");
        assert_eq!(
            resolve_env(
                "Authorization",
                "Bearer ${env:STREAMCORE_WEBHOOK_TEST_TOKEN}"
            )
            .unwrap(),
            "Bearer t0k"
        );
        let e = resolve_env("X", "${env:STREAMCORE_WEBHOOK_NOT_SET}").unwrap_err();
        assert!(
            e.to_string()
                .contains("`STREAMCORE_WEBHOOK_NOT_SET` is not set"),
            "{e}"
        );
    }
}
