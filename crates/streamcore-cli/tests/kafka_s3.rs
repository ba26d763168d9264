//! The Kafka state hand-over with its root on S3: two `streamcore kafka --count-per-key`
//! processes in one consumer group (a real Kafka-protocol broker, tansu, on 127.0.0.1), the
//! hand-over root `s3://BUCKET/root` and each process's checkpoints under it, on the S3 test
//! server (moto on 127.0.0.1:9090, started by scripts/test-deps.d/50-s3.sh). When the second
//! process joins, the partitions that move take their keys' counts along through the bucket:
//! every key is counted 1, 2, 3, … exactly once across both outputs.
//!
//! Needs the `kafka` and `object-store` features (CI builds with `--all-features`); fails, not
//! skips, when the S3 server is not there.
#![cfg(all(feature = "kafka", feature = "object-store"))]

use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use streamcore::source::Generator;
use streamcore::{Event, Fields, Job, JobConfig, Timestamp};
use streamcore_connectors::kafka::test_broker::TestBroker;
use streamcore_connectors::kafka::{KafkaConfig, KafkaSink};

const BIN: &str = env!("CARGO_BIN_EXE_streamcore");
const ENDPOINT: &str = "127.0.0.1:9090";

/// A plain HTTP/1.1 request to the S3 test server (moto does not check signatures): status
/// and body.
fn http(method: &str, path: &str) -> (u16, String) {
    let mut conn = std::net::TcpStream::connect(ENDPOINT).unwrap_or_else(|e| {
        panic!(
            "no S3 server on {ENDPOINT} ({e}): run scripts/test-deps.d/50-s3.sh (or scripts/install-test-deps.sh) first"
        )
    });
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {ENDPOINT}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn transaction(i: u64) -> Event {
    let mut data = Fields::new();
    data.push_unchecked("user_id", format!("user_{}", i % 50));
    data.push_unchecked("amount", 50.0 + 25.0 * (i % 20) as f64);
    Event::new(
        format!("txn_{i:06}"),
        Timestamp(1_700_000_000_000 + i as i64),
        "transaction",
        data,
    )
    .with_partition_key(format!("user_{}", i % 50))
}

/// Produces transactions `from..from + n`, keyed by their user, partitioned by key group.
fn produce(config: &KafkaConfig, topic: &str, from: u64, n: u64) {
    let mut job = Job::new("produce");
    let sink = KafkaSink::events(config.clone(), topic)
        .key_partition_key()
        .partition_by_key_group();
    job.source(
        "gen",
        Generator::new(move |i| transaction(from + i)).bounded(n),
    )
    .sink_named("out", sink);
    job.run(JobConfig::default().parallelism(1)).unwrap();
}

fn expected_ids(n: u64) -> BTreeMap<String, usize> {
    (0..n)
        .filter(|i| 50.0 + 25.0 * (i % 20) as f64 > 100.0)
        .map(|i| (format!("enriched_txn_{i:06}"), 1))
        .collect()
}

fn committed_events(dirs: &[&Path]) -> Vec<Value> {
    let mut events = Vec::new();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.file_name().unwrap().to_string_lossy().starts_with('.') {
                continue;
            }
            for line in fs::read_to_string(&p).unwrap().lines() {
                events.push(serde_json::from_str(line).unwrap());
            }
        }
    }
    events
}

fn committed_ids(dirs: &[&Path]) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for v in committed_events(dirs) {
        *ids.entry(v["event_id"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    ids
}

/// `key_count` of every committed output event, per partition key, sorted.
fn committed_counts(dirs: &[&Path]) -> BTreeMap<String, Vec<i64>> {
    let mut counts: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for v in committed_events(dirs) {
        counts
            .entry(v["partition_key"].as_str().unwrap().to_string())
            .or_default()
            .push(v["data"]["key_count"].as_i64().unwrap());
    }
    counts.values_mut().for_each(|c| c.sort_unstable());
    counts
}

/// Every user's events counted 1, 2, … once each, for input `0..n`.
fn expected_counts(n: u64) -> BTreeMap<String, Vec<i64>> {
    let mut per_user: BTreeMap<String, i64> = BTreeMap::new();
    for i in (0..n).filter(|i| 50.0 + 25.0 * (i % 20) as f64 > 100.0) {
        *per_user.entry(format!("user_{}", i % 50)).or_default() += 1;
    }
    per_user
        .into_iter()
        .map(|(user, n)| (user, (1..=n).collect()))
        .collect()
}

/// Sends `signal` (e.g. `TERM`) to `pid` with the system's `kill` command.
fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// A child process killed when dropped (so that a failing test leaves no job running).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn log(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.contains("checkpoint complete"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn keyed_state_moves_through_s3_to_a_process_that_joins() {
    const FIRST: u64 = 4_000;
    const N: u64 = 40_000;
    let bucket = format!(
        "sc-handover-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let (status, body) = http("PUT", &format!("/{bucket}"));
    assert_eq!(status, 200, "creating bucket {bucket}: {body}");
    let root = format!("s3://{bucket}/root");

    let broker = TestBroker::start();
    broker.create_topic("in", 4);
    let config = broker.config();
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = ["a", "b"].iter().map(|n| tmp.path().join(n)).collect();
    let dir_refs: Vec<&Path> = dirs.iter().map(|d| d.as_path()).collect();
    let spawn = |name: &str| {
        let args: Vec<String> = [
            "kafka",
            "--brokers",
            &broker.brokers(),
            "--topic",
            "in",
            "--group",
            "counts",
            "--kafka-property",
            "heartbeat.interval.ms=300",
            "--checkpoint-dir",
            &format!("{root}/ckpt-{name}"),
            "--checkpoint-interval",
            "200ms",
            "--output",
            tmp.path().join(name).to_str().unwrap(),
            "-p",
            "2",
            "--count-per-key",
            "--state-handover",
            &root,
            "--log",
            "info",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Proc(
            Command::new(BIN)
                .args(&args)
                .env("AWS_ENDPOINT", format!("http://{ENDPOINT}"))
                .env("AWS_ALLOW_HTTP", "true")
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("AWS_REGION", "us-east-1")
                .stdout(Stdio::null())
                .stderr(fs::File::create(tmp.path().join(format!("{name}.err"))).unwrap())
                .spawn()
                .unwrap(),
        )
    };
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let waiting = Instant::now();
        while !done() {
            assert!(
                waiting.elapsed() < Duration::from_secs(180),
                "{what}: {}\n{}",
                log(&tmp.path().join("a.err")),
                log(&tmp.path().join("b.err"))
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let logged = |file: &str, line: &str| {
        fs::read_to_string(tmp.path().join(file))
            .unwrap_or_default()
            .contains(line)
    };
    produce(&config, "in", 0, FIRST);
    let mut a = spawn("a");
    wait_for("the first part counted", &|| {
        committed_ids(&[&dirs[0]]).len() == expected_ids(FIRST).len()
    });
    let mut b = spawn("b");
    wait_for("state handed over", &|| {
        logged("a.err", "left for its next owner") && logged("b.err", "keyed state adopted")
    });
    // The state went through the bucket.
    assert!(
        logged("b.err", &format!("{root}/handover/in/")),
        "{}",
        log(&tmp.path().join("b.err"))
    );
    produce(&config, "in", FIRST, N - FIRST);
    wait_for("everything counted", &|| {
        committed_ids(&dir_refs).len() >= expected_ids(N).len()
    });
    for p in [&mut a, &mut b] {
        send_signal(p.0.id(), "TERM");
    }
    assert!(a.0.wait().unwrap().success() && b.0.wait().unwrap().success());
    let got = committed_ids(&dir_refs);
    assert_eq!(got, expected_ids(N));
    let counts = committed_counts(&dir_refs);
    let expected = expected_counts(N);
    let wrong: Vec<&String> = expected
        .keys()
        .filter(|k| counts.get(*k) != expected.get(*k))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} keys counted wrong, e.g. {}: {:?}…",
        wrong.len(),
        wrong[0],
        &counts[wrong[0]][..counts[wrong[0]].len().min(10)]
    );
    // Both processes' checkpoints are under the root in the bucket.
    let (_, listing) = http("GET", &format!("/{bucket}?list-type=2&prefix=root/"));
    for name in ["ckpt-a", "ckpt-b"] {
        assert!(
            listing.contains(&format!("root/{name}/chk-")),
            "no checkpoints of {name}: {listing}"
        );
    }
}

#[test]
fn a_checkpoint_dir_outside_an_object_store_root_is_refused() {
    let output = Command::new(BIN)
        .args([
            "kafka",
            "--brokers",
            "127.0.0.1:1",
            "--topic",
            "in",
            "--group",
            "g",
            "--checkpoint-dir",
            "s3://bucket/elsewhere/p1",
            "--state-handover",
            "s3://bucket/root",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("must be directly under --state-handover s3://bucket/root"),
        "{stderr}"
    );
}
