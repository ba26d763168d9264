//! The crash test with checkpoints on S3: `streamcore demo --windows` checkpointing every
//! 100 ms to `s3://BUCKET/job` on the test server (moto on 127.0.0.1:9090, started by
//! scripts/test-deps.d/50-s3.sh), killed with SIGKILL at random moments and restarted with
//! `--restore latest` until it finishes. Its committed output must equal that of a run that
//! never crashed. Midway, a torn upload (state files of a newer checkpoint, no manifest) is
//! planted in the bucket: the next run must skip it with a message, and retention must delete
//! it once newer checkpoints are complete. The credentials given to the runs never appear in
//! their output.
//!
//! Needs the `object-store` feature (CI builds with `--all-features`); fails, not skips, when
//! the server is not there. `STREAMCORE_CRASH_KILLS` and `STREAMCORE_CRASH_SEED` as in
//! tests/crash.rs.
#![cfg(feature = "object-store")]

mod common;

use common::{committed_lines, demo_args};
use std::fs;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ENDPOINT: &str = "127.0.0.1:9090";
const SECRET: &str = "crash-test-secret-never-printed";
const RATE: u64 = 6_000;

/// Kill delays from a seeded xorshift (as tests/common's, which this test does not need more
/// of).
struct Delays(u64);

impl Delays {
    fn next_ms(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

/// A plain HTTP/1.1 request to the test server (moto does not check signatures): status and
/// body.
fn http(method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut conn = std::net::TcpStream::connect(ENDPOINT).unwrap_or_else(|e| {
        panic!(
            "no S3 server on {ENDPOINT} ({e}): run scripts/test-deps.d/50-s3.sh (or scripts/install-test-deps.sh) first"
        )
    });
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {ENDPOINT}\r\n{}Content-Length: {}\r\nConnection: close\r\n\r\n",
        // Reading an object takes credentials (any: the server checks no signature).
        if method == "GET" {
            "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\r\n"
        } else {
            ""
        },
        body.len()
    )
    .unwrap();
    conn.write_all(body).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// Every key in the bucket under `prefix` (one page of up to 1,000 keys is plenty here).
fn keys(bucket: &str, prefix: &str) -> Vec<String> {
    let (status, body) = http(
        "GET",
        &format!("/{bucket}?list-type=2&prefix={prefix}"),
        b"",
    );
    assert_eq!(status, 200, "{body}");
    body.split("<Key>")
        .skip(1)
        .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_string()))
        .collect()
}

/// Whether a checkpoint manifest in the bucket names earlier checkpoints it builds on.
fn any_chained(bucket: &str) -> bool {
    keys(bucket, "job/")
        .iter()
        .filter(|k| k.ends_with("/_manifest.json"))
        .any(|k| {
            let (status, body) = http("GET", &format!("/{bucket}/{k}"), b"");
            // Retention may have deleted it since the listing.
            status == 200 && body.contains("\"chain\"")
        })
}

#[test]
fn sigkill_and_restore_from_s3_until_done_gives_the_crash_free_output() {
    crash_loop(&[], &[]);
}

/// The same on the LSM state backend with a budget far below the state (the demo's 10 s
/// tumbling windows over 3,000 users, an event per millisecond; its sessions stay in memory,
/// docs/state.md) and
/// incremental checkpoints: some checkpoint in the bucket builds on earlier ones.
#[test]
fn sigkill_and_restore_from_s3_with_the_lsm_backend_and_incremental_checkpoints() {
    let chained = crash_loop(
        &[
            "--users",
            "3000",
            "--interval-ms",
            "1",
            "--state-backend",
            "lsm",
            "--state-memory-budget",
            "64kb",
        ],
        &["--incremental-checkpoints"],
    );
    assert!(chained, "no checkpoint in the bucket was incremental");
}

/// The demo with `extra` arguments (`--flag value` pairs; a flag given by default takes the
/// new value), and `checkpointed` ones in the runs that checkpoint, killed and restored from
/// S3 until it finishes: its committed output equals a crash-free run's. Returns whether some
/// checkpoint seen in the bucket builds on earlier ones (incremental).
fn crash_loop(extra: &[&str], checkpointed: &[&str]) -> bool {
    let demo_args = |out: &std::path::Path, win: &std::path::Path, events: u64| {
        let mut args = demo_args(out, win, events);
        for pair in extra.chunks(2) {
            match args.iter().position(|a| a == pair[0]) {
                Some(at) => args[at + 1] = pair[1].to_string(),
                None => args.extend(pair.iter().map(|s| s.to_string())),
            }
        }
        args
    };
    let mut chained = false;
    let kills_wanted: usize = std::env::var("STREAMCORE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("STREAMCORE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("S3 crash test: {kills_wanted} kills, STREAMCORE_CRASH_SEED={seed}");
    let events = (kills_wanted as u64 * 4_000).max(60_000);
    let bucket = format!("sc-crash-{}-{}", std::process::id(), seed % 1_000_000_007);
    let (status, body) = http("PUT", &format!("/{bucket}"), b"");
    assert_eq!(status, 200, "creating bucket {bucket}: {body}");
    let url = format!("s3://{bucket}/job");

    let bin = env!("CARGO_BIN_EXE_streamcore");
    let tmp = tempfile::tempdir().unwrap();
    let (ref_out, ref_win) = (
        tmp.path().join("ref.jsonl"),
        tmp.path().join("ref-win.jsonl"),
    );
    let status = Command::new(bin)
        .args(demo_args(&ref_out, &ref_win, events))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let (out, win) = (tmp.path().join("out"), tmp.path().join("win"));
    let mut delays = Delays(seed);
    let (mut kills, mut attempts) = (0, 0);
    let mut torn = false;
    let started = Instant::now();
    let mut all_stderr = String::new();
    loop {
        attempts += 1;
        let stderr_path = tmp.path().join(format!("stderr-{attempts}.txt"));
        let mut args = demo_args(&out, &win, events);
        args.extend(checkpointed.iter().map(|s| s.to_string()));
        args.extend(
            [
                "--rate",
                &RATE.to_string(),
                "--checkpoint-dir",
                &url,
                "--checkpoint-interval",
                "100ms",
                "--restore",
                "latest",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let mut child = Command::new(bin)
            .args(&args)
            .env("AWS_ENDPOINT", format!("http://{ENDPOINT}"))
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_REGION", "us-east-1")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let kill_at = Duration::from_millis(delays.next_ms(300, 800));
        let spawned = Instant::now();
        let mut polls = 0u32;
        let exited = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if kills < kills_wanted && spawned.elapsed() >= kill_at {
                break None;
            }
            // Incremental checkpoints come and go (a full one follows when the deltas add up
            // to the state's size, and retention deletes): look while the job runs.
            polls += 1;
            if !checkpointed.is_empty() && !chained && polls % 10 == 0 {
                chained = any_chained(&bucket);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let stderr = fs::read_to_string(&stderr_path).unwrap();
        if std::mem::take(&mut torn) {
            assert!(
                stderr.contains("skipping checkpoint")
                    && stderr.contains("chk-999999")
                    && stderr.contains("incomplete"),
                "run {attempts} did not report the torn upload: {stderr}"
            );
        }
        all_stderr.push_str(&stderr);
        match exited {
            Some(status) => {
                assert!(status.success(), "run {attempts} failed: {stderr}");
                // The summary: where it restored from and how long that took, what the
                // checkpoints wrote and how long the upload took.
                assert!(
                    stderr.contains(&format!("restored from {url}/chk-"))
                        && stderr.contains("loaded and verified in")
                        && stderr.contains("bytes written in"),
                    "{stderr}"
                );
                break;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                if kills == kills_wanted / 2 {
                    // A checkpoint newer than any other whose manifest never made it.
                    let (status, body) = http(
                        "PUT",
                        &format!("/{bucket}/job/chk-999999/n0000-s000.state"),
                        b"\x93\x01\x02",
                    );
                    assert_eq!(status, 200, "{body}");
                    torn = true;
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no end after {kills} kills"
        );
    }
    assert!(kills >= kills_wanted, "the job ended after {kills} kills");
    eprintln!("{kills} kills, {attempts} runs, {:?}", started.elapsed());

    let (want_win, got_win) = (committed_lines(&ref_win), committed_lines(&win));
    assert!(!want_win.is_empty());
    assert_eq!(got_win.len(), want_win.len(), "window results: count");
    assert!(
        got_win == want_win,
        "window results differ from the crash-free run"
    );
    let (want_out, got_out) = (committed_lines(&ref_out), committed_lines(&out));
    assert_eq!(got_out.len(), want_out.len(), "enriched events: count");
    assert!(
        got_out == want_out,
        "enriched events differ from the crash-free run"
    );

    // The checkpoints are in the bucket; the torn upload was deleted by retention.
    let keys = keys(&bucket, "job/");
    assert!(
        keys.iter().any(|k| k.ends_with("/_manifest.json")),
        "{keys:?}"
    );
    assert!(!keys.iter().any(|k| k.contains("chk-999999")), "{keys:?}");
    assert!(
        all_stderr.contains(&format!("s3://{bucket}/job/chk-")),
        "no run named its checkpoint URL"
    );
    assert!(!all_stderr.contains(SECRET), "a run printed the secret");

    // `--restore URL` of a given checkpoint: the newest, the job's final one, so the run
    // re-commits its output and runs nothing.
    let newest = keys
        .iter()
        .filter_map(|k| k.strip_prefix("job/")?.strip_suffix("/_manifest.json"))
        .max()
        .unwrap()
        .to_string();
    let mut args = demo_args(&out, &win, events);
    args.extend(checkpointed.iter().map(|s| s.to_string()));
    let given = format!("{url}/{newest}");
    args.extend(["--checkpoint-dir", &url, "--restore", &given].map(String::from));
    let output = Command::new(bin)
        .args(&args)
        .env("AWS_ENDPOINT", format!("http://{ENDPOINT}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("had already finished") && stderr.contains(&given),
        "{stderr}"
    );
    assert!(committed_lines(&win) == want_win && committed_lines(&out) == want_out);
    chained
}

#[test]
fn a_url_that_cannot_be_used_stops_the_job_with_the_reason() {
    let bin = env!("CARGO_BIN_EXE_streamcore");
    let tmp = tempfile::tempdir().unwrap();
    let output = Command::new(bin)
        .args(demo_args(
            &tmp.path().join("out"),
            &tmp.path().join("win"),
            100,
        ))
        .args(["--checkpoint-dir", "s3:///no-bucket"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no bucket"), "{stderr}");
}

/// SIGUSR1 takes a savepoint and SIGTERM stops the job with one, both into the bucket
/// (`s3://…/sp-NNNNNN`, printed); `--restore latest` resumes from the stop's savepoint and the
/// output is that of an uninterrupted run.
#[test]
fn savepoints_go_to_s3_and_the_job_resumes_from_them() {
    let bin = env!("CARGO_BIN_EXE_streamcore");
    let tmp = tempfile::tempdir().unwrap();
    let (ref_out, ref_win) = (
        tmp.path().join("ref.jsonl"),
        tmp.path().join("ref-win.jsonl"),
    );
    assert!(Command::new(bin)
        .args(demo_args(&ref_out, &ref_win, 20_000))
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success());
    let bucket = format!(
        "sc-savepoint-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let (status, body) = http("PUT", &format!("/{bucket}"), b"");
    assert_eq!(status, 200, "creating bucket {bucket}: {body}");
    let url = format!("s3://{bucket}/job");
    let (out, win) = (tmp.path().join("out"), tmp.path().join("win"));
    let mut args = demo_args(&out, &win, 20_000);
    args.extend(
        [
            "--rate",
            "5000",
            "--checkpoint-dir",
            &url,
            "--checkpoint-interval",
            "10s",
            "--restore",
            "latest",
        ]
        .map(String::from),
    );
    let run = || {
        let mut c = Command::new(bin);
        c.args(&args)
            .env("AWS_ENDPOINT", format!("http://{ENDPOINT}"))
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_REGION", "us-east-1");
        c
    };
    let stderr_path = tmp.path().join("stderr.txt");
    let child = run()
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let signal = |name: &str| {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    std::thread::sleep(Duration::from_millis(1000));
    signal("USR1");
    std::thread::sleep(Duration::from_millis(1000));
    signal("TERM");
    let status = child.wait_with_output().unwrap().status;
    let stderr = fs::read_to_string(&stderr_path).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("savepoint written to {url}/sp-")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("stopped with a savepoint in {url}/sp-")),
        "{stderr}"
    );
    let savepoints: std::collections::BTreeSet<String> = keys(&bucket, "job/sp-")
        .into_iter()
        .filter_map(|k| k.strip_suffix("/_manifest.json").map(str::to_string))
        .collect();
    assert_eq!(savepoints.len(), 2, "{savepoints:?}");
    assert!(committed_lines(&win).len() < committed_lines(&ref_win).len());

    let output = run().output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        committed_lines(&win) == committed_lines(&ref_win),
        "window results differ"
    );
    assert!(
        committed_lines(&out) == committed_lines(&ref_out),
        "events differ"
    );
}
