//! `streamcore kafka` as a process against a real Kafka-protocol broker (tansu on 127.0.0.1):
//! SIGKILL and restore from checkpoints (offsets in the checkpoint), into the exactly-once
//! file sink (identical to a crash-free run) and into a Kafka topic (at-least-once: nothing
//! lost, duplicates counted); two processes in one consumer group, one of them killed.
#![cfg(feature = "kafka")]

mod common;

use common::{send_signal, Delays};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use streamcore::source::Generator;
use streamcore::{Event, Fields, Job, JobConfig, Timestamp};
use streamcore_connectors::kafka::test_broker::TestBroker;
use streamcore_connectors::kafka::{KafkaConfig, KafkaSink, KafkaSource};

const BIN: &str = env!("CARGO_BIN_EXE_streamcore");

/// Transaction `i`: amount `50 + 25·(i mod 20)` (so 15 of every 20 pass the filter).
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

fn produce(config: &KafkaConfig, topic: &str, from: u64, n: u64) {
    produce_with(config, topic, from, n, false)
}

/// Produces transactions `from..from + n`, keyed by their user; with `by_key_group`,
/// partitioned by key group (what state hand-over needs).
fn produce_with(config: &KafkaConfig, topic: &str, from: u64, n: u64, by_key_group: bool) {
    let mut job = Job::new("produce");
    let sink = KafkaSink::events(config.clone(), topic).key_partition_key();
    let sink = if by_key_group {
        sink.partition_by_key_group()
    } else {
        sink
    };
    job.source(
        "gen",
        Generator::new(move |i| transaction(from + i)).bounded(n),
    )
    .sink_named("out", sink);
    job.run(JobConfig::default().parallelism(1)).unwrap();
}

/// The ids the pipeline must output for input `0..n`.
fn expected_ids(n: u64) -> BTreeMap<String, usize> {
    (0..n)
        .filter(|i| 50.0 + 25.0 * (i % 20) as f64 > 100.0)
        .map(|i| (format!("enriched_txn_{i:06}"), 1))
        .collect()
}

/// A scratch directory for a test's members; `STREAMCORE_KEEP_TEST_LOGS` keeps it (and
/// prints where) so the members' logs and outputs can be looked at after a failure.
fn scratch_dir() -> tempfile::TempDir {
    let keep = std::env::var_os("STREAMCORE_KEEP_TEST_LOGS").is_some();
    let dir = tempfile::Builder::new()
        .prefix("streamcore-kafka-test")
        .disable_cleanup(keep)
        .tempdir()
        .unwrap();
    if keep {
        eprintln!("logs in {}", dir.path().display());
    }
    dir
}

/// A member's log without the line per completed checkpoint (what matters in a failure
/// message: rebalances, assignments, warnings).
fn log_without_checkpoints(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.contains("checkpoint complete"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every event in the committed part files of `dirs` (in-progress files start with `.`).
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

/// Event ids of all committed part files in `dirs`, with how often each occurs.
fn committed_ids(dirs: &[&Path]) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for v in committed_events(dirs) {
        *ids.entry(v["event_id"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    ids
}

fn topic_ids(config: &KafkaConfig, topic: &str) -> BTreeMap<String, usize> {
    let mut job = Job::new("check");
    let out = job
        .source("out", KafkaSource::new(config.clone(), &[topic]).bounded())
        .collect();
    job.run(JobConfig::default()).unwrap();
    let mut ids = BTreeMap::new();
    for e in out.take() {
        *ids.entry(e.event_id.to_string()).or_insert(0) += 1;
    }
    ids
}

/// A child process killed when dropped (so that a failing test leaves no job running).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

fn spawn(args: &[String], stderr: &Path) -> Proc {
    Proc(
        Command::new(BIN)
            .args(args)
            .stdout(Stdio::null())
            .stderr(fs::File::create(stderr).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// Runs `args` (a bounded job restoring from `latest`), killing it `kills` times at random
/// moments, until it exits by itself; returns the number of runs.
fn run_with_kills(args: &[String], kills: usize, tmp: &Path, seed: u64) -> usize {
    let mut delays = Delays(seed);
    let (mut killed, mut runs) = (0, 0);
    let started = Instant::now();
    loop {
        runs += 1;
        let stderr = tmp.join(format!("stderr-{runs}.txt"));
        let mut child = spawn(args, &stderr);
        let kill_at = Duration::from_millis(delays.next_ms(300, 1200));
        let spawned = Instant::now();
        let exited = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if killed < kills && spawned.elapsed() >= kill_at {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        match exited {
            Some(status) => {
                assert!(
                    status.success(),
                    "run {runs} failed: {}",
                    fs::read_to_string(&stderr).unwrap()
                );
                return runs;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                killed += 1;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "no end after {runs} runs"
        );
    }
}

/// Arguments of member `name` of consumer group `group`: its checkpoints in `root/ckpt-NAME`,
/// its output in `root/NAME`, logs at info (the tests read the rebalance lines), members
/// heartbeating every 300 ms (tansu ends a rebalance without members that did not hear of it
/// in time: docs/kafka.md, "The test broker"), then `extra`.
fn member_args(
    broker: &TestBroker,
    root: &Path,
    group: &str,
    name: &str,
    extra: &[&str],
) -> Vec<String> {
    [
        "kafka",
        "--brokers",
        &broker.brokers(),
        "--topic",
        "in",
        "--group",
        group,
        "--kafka-property",
        "heartbeat.interval.ms=300",
        "--checkpoint-dir",
        root.join(format!("ckpt-{name}")).to_str().unwrap(),
        "--checkpoint-interval",
        "200ms",
        "--output",
        root.join(name).to_str().unwrap(),
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .chain(debug_args())
    .collect()
}

/// Log arguments for a member: `info`, or with `STREAMCORE_KAFKA_TEST_DEBUG=CONTEXTS` (say
/// `cgrp` for the group protocol) librdkafka's debug log of those contexts as well.
fn debug_args() -> Vec<String> {
    match std::env::var("STREAMCORE_KAFKA_TEST_DEBUG") {
        Ok(contexts) => vec![
            "--kafka-property".into(),
            format!("debug={contexts}"),
            "--log".into(),
            "info,librdkafka=debug".into(),
        ],
        Err(_) => vec!["--log".into(), "info".into()],
    }
}

fn job_args(broker: &TestBroker, ckpt: &Path, output: &[&str]) -> Vec<String> {
    [
        "kafka",
        "--brokers",
        &broker.brokers(),
        "--topic",
        "in",
        "--bounded",
        "-p",
        "2",
        "--checkpoint-dir",
        ckpt.to_str().unwrap(),
        "--checkpoint-interval",
        "100ms",
        "--restore",
        "latest",
    ]
    .iter()
    .chain(output)
    .map(|s| s.to_string())
    .collect()
}

/// SIGKILL at random moments, restart with `--restore latest`: the Kafka offsets come back
/// from the checkpoint, so the exactly-once file output equals the crash-free output (every
/// id once), and the at-least-once Kafka output lost nothing.
#[test]
fn sigkill_and_restore_from_kafka_offsets() {
    const N: u64 = 40_000;
    let broker = TestBroker::start();
    broker.create_topic("in", 4);
    broker.create_topic("out", 4);
    let config = broker.config();
    produce(&config, "in", 0, N);
    let tmp = tempfile::tempdir().unwrap();
    let seed = std::env::var("STREAMCORE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);

    // Into the exactly-once directory sink.
    let out = tmp.path().join("out");
    let args = job_args(
        &broker,
        &tmp.path().join("ckpt-files"),
        &["--output", out.to_str().unwrap()],
    );
    let runs = run_with_kills(&args, 4, tmp.path(), seed);
    assert!(runs >= 2, "the job finished before it could be killed");
    assert_eq!(
        committed_ids(&[&out]),
        expected_ids(N),
        "file output after {runs} runs"
    );

    // Into a Kafka topic, at-least-once: every id at least once.
    let args = job_args(
        &broker,
        &tmp.path().join("ckpt-topic"),
        &["--output-topic", "out"],
    );
    let runs = run_with_kills(&args, 3, tmp.path(), seed ^ 0xabcdef);
    let got = topic_ids(&config, "out");
    let expected = expected_ids(N);
    let missing: Vec<&String> = expected.keys().filter(|k| !got.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} ids lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(got.keys().all(|k| expected.contains_key(k)));
    let duplicates: usize = got.values().map(|c| c - 1).sum();
    eprintln!("at-least-once Kafka output after {runs} runs: {duplicates} duplicates");
}

/// Scale-up: a second process joins the group while the first is reading; partitions move
/// with records in flight, and the first releases them only after a checkpoint committed
/// their offsets, so the union of both outputs holds every record exactly once.
#[test]
fn a_process_joining_the_group_takes_partitions_over_exactly_once() {
    const N: u64 = 120_000;
    let broker = TestBroker::start();
    broker.create_topic("in", 4);
    let config = broker.config();
    produce(&config, "in", 0, N);
    let tmp_dir = scratch_dir();
    let root = tmp_dir.path().to_path_buf();
    let dirs: Vec<PathBuf> = ["a", "b"].iter().map(|n| root.as_path().join(n)).collect();
    // One member per process: every extra member is one more rebalance, and tansu's group
    // coordinator can hand a partition to a new member before its old owner rejoined.
    let args =
        |name: &str| member_args(&broker, &root, "scale-up", name, &["--bounded", "-p", "1"]);
    let mut a = spawn(&args("a"), &root.as_path().join("a.err"));
    let waiting = Instant::now();
    while committed_ids(&[&dirs[0]]).is_empty() {
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "no output from the first member"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut b = spawn(&args("b"), &root.as_path().join("b.err"));
    let status_a = a.wait().unwrap();
    let status_b = b.wait().unwrap();
    let log_a = fs::read_to_string(root.as_path().join("a.err")).unwrap();
    let log_b = fs::read_to_string(root.as_path().join("b.err")).unwrap();
    assert!(status_a.success() && status_b.success(), "{log_a}\n{log_b}");
    assert!(
        log_a.contains("released after checkpoint"),
        "the first member never handed partitions over (finished before the second joined?): {log_a}"
    );
    let dir_refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let got = committed_ids(&dir_refs);
    let duplicates = got.values().filter(|c| **c > 1).count();
    assert_eq!(duplicates, 0, "{duplicates} ids duplicated");
    assert_eq!(got, expected_ids(N));
}

/// Two processes in one consumer group split 4 partitions (two each); one is killed (the one
/// that is not the group's leader: see the note on tansu inside); the survivor takes its
/// partitions over (from the offsets the group committed at its last completed checkpoint)
/// and the committed output of both is complete and free of duplicates; every key's count
/// goes on from the killed member's last checkpoint.
#[test]
fn two_processes_in_a_group_and_one_is_killed() {
    const N: u64 = 30_000;
    let broker = TestBroker::start();
    broker.create_topic("in", 4);
    let config = broker.config();
    let tmp = scratch_dir();
    let dirs: Vec<PathBuf> = ["a", "b"].iter().map(|n| tmp.path().join(n)).collect();
    let handover = tmp.path().to_str().unwrap().to_string();
    let args = |name: &str| {
        member_args(
            &broker,
            tmp.path(),
            "pipeline",
            name,
            &[
                // A session long enough that a loaded machine does not evict the survivor
                // (tansu drops members silent for a session), short enough for a quick
                // takeover.
                "--kafka-property",
                "session.timeout.ms=15000",
                // One group member per process (hand-over runs one reader); the counts
                // run in two instances, so a takeover touches only some of them.
                "-p",
                "2",
                // Keyed state too: the survivor finds the killed member's counts in its
                // checkpoint at the offsets the group committed.
                "--count-per-key",
                "--state-handover",
                &handover,
            ],
        )
    };
    // Both members join before there is input (so that no partition moves with records in
    // flight: see docs/kafka.md on scale-up), one after the other: the first is the group's
    // leader, and the second is the one killed. tansu 0.6.0 cannot lose its leader: when the
    // leader's session expires and a heartbeat notices, it drops the member but keeps it as
    // leader, and the survivors wait for an assignment that never comes (docs/kafka.md).
    let joined = |p: &str| {
        fs::read_to_string(tmp.path().join(p))
            .unwrap_or_default()
            .contains("kafka partitions assigned")
    };
    let wait_for_join = |p: &str| {
        let waiting = Instant::now();
        while !joined(p) {
            assert!(
                waiting.elapsed() < Duration::from_secs(60),
                "{p}: the member did not join"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let mut a = spawn(&args("a"), &tmp.path().join("a.err"));
    wait_for_join("a.err");
    let mut b = spawn(&args("b"), &tmp.path().join("b.err"));
    wait_for_join("b.err");
    std::thread::sleep(Duration::from_secs(2));
    // A first part of the input, read by both; the rest after the kill: the survivor must
    // take the killed member's partitions over (with their keys' state) to finish.
    const FIRST: u64 = 4_000;
    produce_with(&config, "in", 0, FIRST, true);
    let dir_refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let committed = || committed_ids(&dir_refs).len();
    // Kill one member once output is committed on both sides.
    let waiting = Instant::now();
    while committed_ids(&[&dirs[0]]).is_empty() || committed_ids(&[&dirs[1]]).is_empty() {
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "no output from both members"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    b.kill().unwrap();
    b.wait().unwrap();
    produce_with(&config, "in", FIRST, N - FIRST, true);
    let expected = expected_ids(N);
    let waiting = Instant::now();
    while committed() < expected.len() {
        assert!(
            waiting.elapsed() < Duration::from_secs(180),
            "survivor did not finish: {} of {} committed; its log:\n{}",
            committed(),
            expected.len(),
            log_without_checkpoints(&tmp.path().join("a.err"))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Stop the survivor (with a final savepoint) and check exactly-once.
    send_signal(a.id(), "TERM");
    assert!(a.wait().unwrap().success());
    let got = committed_ids(&dir_refs);
    let duplicates: Vec<(&String, &usize)> = got.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        duplicates.is_empty(),
        "{} duplicated, e.g. {:?}",
        duplicates.len(),
        &duplicates[..duplicates.len().min(5)]
    );
    assert_eq!(got, expected);
    let log = log_without_checkpoints(&tmp.path().join("a.err"));
    assert!(log.contains("keyed state adopted"), "{log}");
    let counts = committed_counts(&dir_refs);
    let wrong: Vec<(String, Vec<i64>)> = expected_counts(N)
        .into_iter()
        .filter(|(k, c)| counts.get(k) != Some(c))
        .map(|(k, _)| {
            let got = counts.get(&k).cloned().unwrap_or_default();
            (k, got)
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} keys counted wrong, e.g. {:?}",
        wrong.len(),
        wrong.first()
    );
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

/// What `committed_counts` must be for input `0..n` through the pipeline with
/// `--count-per-key`: every user's events counted 1, 2, … once each.
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

/// Keyed state follows the partitions: a process joins the group while the first one counts
/// events per key; the partitions that move take their keys' counts along (the first process
/// leaves them at the revocation checkpoint, the second adopts them before reading), so
/// across both outputs every key is counted 1, 2, 3, … exactly once — a count that restarted
/// on the new owner would repeat small numbers.
#[test]
fn keyed_state_moves_with_the_partitions_to_a_process_that_joins() {
    const FIRST: u64 = 4_000;
    const N: u64 = 40_000;
    let broker = TestBroker::start();
    broker.create_topic("in", 4);
    let config = broker.config();
    let tmp = scratch_dir();
    let root = tmp.path().to_path_buf();
    let dirs: Vec<PathBuf> = ["a", "b"].iter().map(|n| root.join(n)).collect();
    let dir_refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let handover = root.to_str().unwrap().to_string();
    let args = |name: &str| {
        member_args(
            &broker,
            &root,
            "counts",
            name,
            &["-p", "2", "--count-per-key", "--state-handover", &handover],
        )
    };
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let waiting = Instant::now();
        while !done() {
            assert!(
                waiting.elapsed() < Duration::from_secs(180),
                "{what}: {}\n{}",
                log_without_checkpoints(&root.join("a.err")),
                log_without_checkpoints(&root.join("b.err"))
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let logged = |file: &str, line: &str| {
        fs::read_to_string(root.join(file))
            .unwrap_or_default()
            .contains(line)
    };
    // The first process counts a first part of the input: every partition, every key.
    produce_with(&config, "in", 0, FIRST, true);
    let mut a = spawn(&args("a"), &root.join("a.err"));
    wait_for("the first part counted", &|| {
        committed_ids(&[&dirs[0]]).len() == expected_ids(FIRST).len()
    });
    // The second joins: half the partitions move to it, with their keys' counts.
    let mut b = spawn(&args("b"), &root.join("b.err"));
    wait_for("state handed over", &|| {
        logged("a.err", "left for its next owner") && logged("b.err", "keyed state adopted")
    });
    // The rest of the input is counted by both.
    produce_with(&config, "in", FIRST, N - FIRST, true);
    wait_for("everything counted", &|| {
        committed_ids(&dir_refs).len() >= expected_ids(N).len()
    });
    for p in [&mut a, &mut b] {
        send_signal(p.id(), "TERM");
    }
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let got = committed_ids(&dir_refs);
    let duplicates = got.values().filter(|c| **c > 1).count();
    assert_eq!(duplicates, 0, "{duplicates} ids duplicated");
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
}

/// A member stopped with a savepoint and started again (`--restore latest`) in its group
/// continues every key's count: its first assignment keeps the state it restored for its
/// partitions (nothing newer was left for them).
#[test]
fn a_restarted_member_continues_its_keys_counts() {
    const FIRST: u64 = 4_000;
    const N: u64 = 12_000;
    let broker = TestBroker::start();
    broker.create_topic("in", 4);
    let config = broker.config();
    let tmp = scratch_dir();
    let root = tmp.path().to_path_buf();
    let handover = root.to_str().unwrap().to_string();
    let out = root.join("a");
    let args = |extra: &[&str]| {
        let mut args = member_args(
            &broker,
            &root,
            "restart",
            "a",
            &["-p", "1", "--count-per-key", "--state-handover", &handover],
        );
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let wait_for = |count: usize, log: &str| {
        let waiting = Instant::now();
        while committed_ids(&[&out]).len() < count {
            assert!(
                waiting.elapsed() < Duration::from_secs(120),
                "{} of {count} committed: {}",
                committed_ids(&[&out]).len(),
                log_without_checkpoints(&root.join(log))
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    produce_with(&config, "in", 0, FIRST, true);
    let mut first = spawn(&args(&[]), &root.join("first.err"));
    wait_for(expected_ids(FIRST).len(), "first.err");
    send_signal(first.id(), "TERM");
    assert!(first.wait().unwrap().success());

    produce_with(&config, "in", FIRST, N - FIRST, true);
    let mut second = spawn(&args(&["--restore", "latest"]), &root.join("second.err"));
    wait_for(expected_ids(N).len(), "second.err");
    send_signal(second.id(), "TERM");
    assert!(second.wait().unwrap().success());
    let log = log_without_checkpoints(&root.join("second.err"));
    assert!(
        log.contains("keyed state kept from the restored checkpoint"),
        "{log}"
    );
    let got = committed_ids(&[&out]);
    assert_eq!(got, expected_ids(N));
    assert_eq!(committed_counts(&[&out]), expected_counts(N));
}

/// State hand-over needs every process's checkpoints under the shared root: the binary says
/// so before it connects anywhere.
#[test]
fn state_handover_refuses_a_checkpoint_dir_outside_its_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("shared");
    let outside = tmp.path().join("elsewhere").join("a");
    let out = Command::new(BIN)
        .args([
            "kafka",
            "--brokers",
            "127.0.0.1:1",
            "--topic",
            "in",
            "--group",
            "g",
        ])
        .arg("--state-handover")
        .arg(&root)
        .arg("--checkpoint-dir")
        .arg(&outside)
        .arg("--output")
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("must be a directory directly under --state-handover"),
        "{err}"
    );
}

/// `--partition-by-key-group` writes a repartition topic: every output record sits in the
/// partition that holds its key's key group (what a job reading it with `--state-handover`
/// checks), whatever partition its input record came from.
#[test]
fn the_output_topic_can_be_partitioned_by_key_group() {
    use streamcore_connectors::kafka::handover::partition_for_key;
    const N: u64 = 2_000;
    let broker = TestBroker::start();
    broker.create_topic("in", 4);
    broker.create_topic("keyed", 3);
    let config = broker.config();
    produce(&config, "in", 0, N);
    let args: Vec<String> = [
        "kafka",
        "--brokers",
        &broker.brokers(),
        "--topic",
        "in",
        "--bounded",
        "-p",
        "1",
        "--output-topic",
        "keyed",
        "--partition-by-key-group",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let tmp = tempfile::tempdir().unwrap();
    let mut job = spawn(&args, &tmp.path().join("err"));
    assert!(
        job.wait().unwrap().success(),
        "{}",
        fs::read_to_string(tmp.path().join("err")).unwrap_or_default()
    );
    let mut read = Job::new("check");
    let out = read
        .source(
            "keyed",
            KafkaSource::new(config.clone(), &["keyed"]).bounded(),
        )
        .collect();
    read.run(JobConfig::default()).unwrap();
    let events = out.take();
    assert_eq!(events.len(), expected_ids(N).len());
    let mut partitions = std::collections::BTreeSet::new();
    for e in &events {
        let key = e.partition_key.as_deref().unwrap();
        let partition = e.metadata.get("kafka_partition").unwrap().as_i64().unwrap();
        assert_eq!(partition, partition_for_key(key, 128, 3) as i64, "{key}");
        partitions.insert(partition);
    }
    assert_eq!(partitions.len(), 3, "the keys spread over every partition");
}

/// With state hand-over, a keyed record in a partition that does not hold its key's key
/// group (the topic was not written by key group) is bad input: the job fails naming it.
#[test]
fn state_handover_rejects_a_record_in_the_wrong_partition() {
    let broker = TestBroker::start();
    broker.create_topic("in", 4);
    // librdkafka's own partitioner: most keys land elsewhere than key-group partitioning says.
    produce(&broker.config(), "in", 0, 200);
    let tmp = scratch_dir();
    let root = tmp.path().to_path_buf();
    let handover = root.to_str().unwrap().to_string();
    let args = member_args(
        &broker,
        &root,
        "wrong",
        "a",
        &["-p", "1", "--bounded", "--state-handover", &handover],
    );
    let mut job = spawn(&args, &root.join("a.err"));
    let status = job.wait().unwrap();
    let log = fs::read_to_string(root.join("a.err")).unwrap_or_default();
    assert!(!status.success(), "{log}");
    assert!(log.contains("belongs in partition"), "{log}");
    assert!(
        log.contains("kafka in/"),
        "the record's origin is named: {log}"
    );
}
