//! The webhook sink against an HTTP endpoint run inside the test (plain HTTP/1.1 on 127.0.0.1,
//! and HTTPS with a certificate made at run time): an endpoint that fails and then recovers
//! gets every alert (retries) and each de-duplicated alert once; alerts that exhaust their
//! retries go to the dead-letter output; batches, payload templates, headers from the
//! environment, the rate limit, TLS, and bad configuration failing fast.
#![cfg(feature = "webhook")]

use serde::Serialize;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use streamcore::row::{DataType, Field, Row, Scalar, Schema};
use streamcore::{Job, JobConfig};
use streamcore_connectors::webhook::{WebhookConfig, WebhookDeadLetter, WebhookSink};

/// One request the endpoint received, and the status it answered.
#[derive(Clone, Debug)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
    status: u16,
}

/// A test endpoint: answers the statuses of its script in order (then 200), records every
/// request. `Some(0)` in the script closes the connection without an answer.
#[derive(Clone)]
struct Endpoint {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    always: Arc<Mutex<Option<u16>>>,
}

impl Endpoint {
    fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ep = Endpoint {
            port: listener.local_addr().unwrap().port(),
            received: Arc::default(),
            script: Arc::default(),
            always: Arc::default(),
        };
        let e = ep.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let e = e.clone();
                let tls = tls.clone();
                std::thread::spawn(move || match tls {
                    None => e.serve(stream),
                    Some(cfg) => {
                        let conn = rustls::ServerConnection::new(cfg).unwrap();
                        e.serve(rustls::StreamOwned::new(conn, stream))
                    }
                });
            }
        });
        ep
    }

    fn url(&self, scheme: &str, host: &str) -> String {
        format!("{scheme}://{host}:{}/hooks/secret-token-in-path", self.port)
    }

    fn fail_next(&self, statuses: &[u16]) {
        self.script.lock().unwrap().extend(statuses);
    }

    fn answer_always(&self, status: u16) {
        *self.always.lock().unwrap() = Some(status);
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The bodies answered with 2xx.
    fn delivered(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .map(|r| r.body)
            .collect()
    }

    fn serve<S: Read + Write>(&self, stream: S) {
        let mut r = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                return;
            }
            let scripted = self.script.lock().unwrap().pop_front();
            let status = scripted.or(*self.always.lock().unwrap()).unwrap_or(200);
            self.received.lock().unwrap().push(Received {
                headers,
                body: String::from_utf8(body).unwrap(),
                status,
            });
            if status == 0 {
                return; // drop the connection without an answer
            }
            let answer = if status < 300 {
                "ok"
            } else {
                "unavailable, try later"
            };
            let s = r.get_mut();
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{answer}",
                answer.len()
            );
            let _ = s.flush();
        }
    }
}

#[derive(Clone, Debug, Serialize)]
struct Alert {
    user: String,
    rule: &'static str,
    amount: i64,
}

fn alerts() -> Vec<Alert> {
    // A flapping condition: user u1's alert fires again and again; the others once each.
    let mut v = Vec::new();
    for i in 0..12 {
        v.push(Alert {
            user: if i % 3 == 0 {
                "u1".into()
            } else {
                format!("u{}", 100 + i)
            },
            rule: "big-spender",
            amount: 1000 + i,
        });
    }
    v
}

fn run<T: streamcore::Data>(
    records: Vec<T>,
    sink: WebhookSink<T>,
) -> streamcore::Result<streamcore::metrics::JobSummary>
where
    WebhookSink<T>: streamcore::Sink<T>,
{
    let mut job = Job::new("alerts");
    job.from_vec("alerts", records).sink(sink);
    job.run(JobConfig::default().parallelism(1).batch_size(4))
}

fn fast(sink: WebhookSink<Alert>) -> WebhookSink<Alert> {
    sink.backoff(Duration::from_millis(5), Duration::from_millis(40))
}

#[test]
fn an_endpoint_that_fails_then_recovers_gets_every_alert_and_each_duplicate_once() {
    let ep = Endpoint::start(None);
    // Five failures in a row (503, a dropped connection, 429, 502, 500), then it recovers.
    ep.fail_next(&[503, 0, 429, 502, 500]);
    let sink = fast(WebhookSink::new(ep.url("http", "127.0.0.1")))
        .dedup_key(
            |a: &Alert| format!("{}:{}", a.user, a.rule),
            Duration::from_secs(60),
        )
        .max_retries(6);
    let metrics = sink.metrics();
    run(alerts(), sink).unwrap();

    let delivered: Vec<serde_json::Value> = ep
        .delivered()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let mut users: Vec<&str> = delivered
        .iter()
        .map(|v| v["user"].as_str().unwrap())
        .collect();
    users.sort();
    let mut expected: Vec<String> = alerts().iter().map(|a| a.user.clone()).collect();
    expected.sort();
    expected.dedup();
    assert_eq!(
        users, expected,
        "every alert once, u1's flapping alert once"
    );
    // u1 alerted once: its first alert, with its amount.
    assert!(delivered
        .iter()
        .any(|v| v["user"] == "u1" && v["amount"] == 1000));
    let m = metrics.snapshot();
    assert_eq!(m["records_out"], 9);
    assert_eq!(m["deduplicated"], 3);
    assert_eq!(m["retries"], 5);
    assert_eq!(m["requests"], 14, "9 delivered + 5 failed attempts");
    assert_eq!(m["dead_lettered"], 0);
    assert_eq!(ep.received().len(), 14);
}

#[test]
fn alerts_that_exhaust_their_retries_go_to_the_dead_letter_output() {
    let ep = Endpoint::start(None);
    ep.answer_always(503);
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let seen: Arc<Mutex<Vec<WebhookDeadLetter>>> = Arc::default();
    let s2 = seen.clone();
    let sink = fast(WebhookSink::new(ep.url("http", "127.0.0.1")))
        .max_retries(2)
        .dead_letter_file(&dead)
        .dead_letter_fn(move |d| s2.lock().unwrap().push(d.clone()));
    let metrics = sink.metrics();
    let input: Vec<Alert> = alerts().into_iter().take(4).collect();
    run(input, sink).unwrap();

    assert_eq!(ep.received().len(), 12, "4 alerts × 3 attempts");
    let letters: Vec<WebhookDeadLetter> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 4);
    assert_eq!(*seen.lock().unwrap(), letters);
    for l in &letters {
        assert_eq!(l.attempts, 3);
        assert!(
            l.error.contains("HTTP 503: unavailable, try later"),
            "{}",
            l.error
        );
        assert_eq!(l.endpoint, format!("http://127.0.0.1:{}", ep.port));
        assert!(!l.endpoint.contains("secret-token"));
    }
    let m = metrics.snapshot();
    assert_eq!(
        (m["dead_lettered"].as_u64(), m["errors"].as_u64()),
        (Some(4), Some(4))
    );

    // A 4xx other than 408/429 is not retried.
    let ep = Endpoint::start(None);
    ep.answer_always(400);
    let dead = dir.path().join("dead-400.jsonl");
    run(
        alerts().into_iter().take(2).collect(),
        fast(WebhookSink::new(ep.url("http", "127.0.0.1"))).dead_letter_file(&dead),
    )
    .unwrap();
    assert_eq!(ep.received().len(), 2);
    assert_eq!(std::fs::read_to_string(&dead).unwrap().lines().count(), 2);

    // Without a dead-letter output, the job fails naming the endpoint and the answer — and
    // never the URL's secret path.
    let ep = Endpoint::start(None);
    ep.answer_always(500);
    let e = run(
        alerts(),
        fast(WebhookSink::new(ep.url("http", "127.0.0.1"))).max_retries(1),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(&format!("http://127.0.0.1:{}", ep.port))
            && e.contains("after 2 attempts")
            && e.contains("HTTP 500"),
        "{e}"
    );
    assert!(!e.contains("secret-token"), "{e}");
}

fn alert_schema() -> Schema {
    Schema::new(vec![
        Field::new("user_id", DataType::Varchar),
        Field::new("amount", DataType::Double),
        Field::new("note", DataType::Varchar),
    ])
}

fn alert_rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| {
            Row::new(vec![
                Scalar::str(&format!("user-{i}")),
                Scalar::float(100.5 + i as f64),
                Scalar::str("said \"hi\"\n"),
            ])
        })
        .collect()
}

#[test]
fn rows_in_batches_with_a_payload_template_and_a_token_from_the_environment() {
    std::env::set_var("STREAMCORE_TEST_ALERT_TOKEN", "tok-123");
    let ep = Endpoint::start(None);
    let sink = WebhookSink::rows(ep.url("http", "127.0.0.1"), alert_schema())
        .payload_template(r#"{"text": "fraud on {user_id}: {note}", "amount": {amount}}"#)
        .header("Authorization", "Bearer ${env:STREAMCORE_TEST_ALERT_TOKEN}")
        .batch_size(3);
    let mut job = Job::new("rows");
    job.from_vec("alerts", alert_rows(8)).sink(sink);
    job.run(JobConfig::default().parallelism(1).batch_size(8))
        .unwrap();
    let got = ep.received();
    assert_eq!(got.len(), 3, "8 rows in requests of up to 3");
    let mut all = Vec::new();
    for r in &got {
        assert!(r
            .headers
            .contains(&("authorization".to_string(), "Bearer tok-123".to_string())));
        assert!(r
            .headers
            .contains(&("content-type".to_string(), "application/json".to_string())));
        let v: Vec<serde_json::Value> = serde_json::from_str(&r.body).unwrap();
        all.extend(v);
    }
    assert_eq!(all.len(), 8);
    assert_eq!(all[7]["text"], "fraud on user-7: said \"hi\"\n");
    assert_eq!(all[7]["amount"], 107.5);

    // The same sink from Flink-style options.
    let ep = Endpoint::start(None);
    let options = [
        ("connector", "webhook".to_string()),
        ("url", ep.url("http", "127.0.0.1")),
        (
            "headers.X-Api-Key",
            "${env:STREAMCORE_TEST_ALERT_TOKEN}".to_string(),
        ),
        ("dedup.key", "{note}".to_string()),
        ("dedup.window", "1 min".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let (config, encoding) = WebhookConfig::from_options(&options).unwrap();
    let sink = WebhookSink::from_config(config, encoding, alert_schema()).unwrap();
    let mut job = Job::new("rows");
    job.from_vec("alerts", alert_rows(5)).sink(sink);
    job.run(JobConfig::default().parallelism(1)).unwrap();
    let got = ep.received();
    assert_eq!(got.len(), 1, "one note: de-duplicated to one alert");
    assert!(got[0]
        .headers
        .contains(&("x-api-key".to_string(), "tok-123".to_string())));
    let v: serde_json::Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(v["user_id"], "user-0");
}

#[test]
fn the_rate_limit_spaces_requests() {
    let ep = Endpoint::start(None);
    let sink = WebhookSink::new(ep.url("http", "127.0.0.1")).rate_limit(10.0);
    let metrics = sink.metrics();
    let input: Vec<Alert> = (0..20)
        .map(|i| Alert {
            user: format!("u{i}"),
            rule: "r",
            amount: i,
        })
        .collect();
    let started = Instant::now();
    run(input, sink).unwrap();
    let took = started.elapsed();
    // A burst of 10, then 10 more at 10 per second: about a second.
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert_eq!(ep.received().len(), 20);
    assert!(metrics.snapshot()["rate_limited_ms"].as_u64().unwrap() >= 800);
}

/// A self-signed certificate for `localhost`, its PEM, and a server configuration using it.
#[allow(deprecated)] // ring's provider: the one the `ring` feature (ureq's) has
fn tls_server() -> (String, Arc<rustls::ServerConfig>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = cert.cert.pem();
    let der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der], key)
    .unwrap();
    (pem, Arc::new(config))
}

#[test]
fn alerts_go_over_tls_to_an_endpoint_with_its_own_ca() {
    let (pem, config) = tls_server();
    let ep = Endpoint::start(Some(config));
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    run(
        alerts().into_iter().take(3).collect(),
        WebhookSink::new(ep.url("https", "localhost")).ca_file(&ca),
    )
    .unwrap();
    assert_eq!(ep.delivered().len(), 3);

    // Without trusting its CA, the certificate is refused: nothing is delivered.
    let dead = dir.path().join("dead.jsonl");
    run(
        alerts().into_iter().take(1).collect(),
        fast(WebhookSink::new(ep.url("https", "localhost")))
            .max_retries(0)
            .dead_letter_file(&dead),
    )
    .unwrap();
    let letter: WebhookDeadLetter =
        serde_json::from_str(std::fs::read_to_string(&dead).unwrap().trim()).unwrap();
    assert!(
        letter.error.to_lowercase().contains("certificate"),
        "{}",
        letter.error
    );
    assert_eq!(ep.delivered().len(), 3);
}

#[test]
fn bad_configuration_fails_fast_naming_it() {
    // Nothing listens on this port (bound, then closed).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let e = run(
        alerts(),
        WebhookSink::new(format!("http://127.0.0.1:{port}/hook/s3cret")),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(&format!("connecting to http://127.0.0.1:{port}"))
            && e.contains("is the endpoint up"),
        "{e}"
    );
    assert!(!e.contains("s3cret"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let ep = Endpoint::start(None);
    let sink = WebhookSink::rows(ep.url("http", "127.0.0.1"), alert_schema())
        .payload_template(r#"{"user": "{userid}"}"#);
    let mut job = Job::new("bad");
    job.from_vec("alerts", alert_rows(1)).sink(sink);
    let e = job.run(JobConfig::default()).unwrap_err().to_string();
    assert!(
        e.contains("webhook payload template") && e.contains("no column `userid`"),
        "{e}"
    );
    let e = run(
        alerts(),
        WebhookSink::new(ep.url("http", "127.0.0.1"))
            .header("Authorization", "Bearer ${env:STREAMCORE_TEST_UNSET_TOKEN}"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`STREAMCORE_TEST_UNSET_TOKEN` is not set"),
        "{e}"
    );
    let e = run(alerts(), WebhookSink::new("ftp://127.0.0.1/x"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("http:// or https://"), "{e}");
    assert!(ep.received().is_empty());
}
