//! Helpers shared by the process-level tests (crash.rs, crash_s3.rs, http.rs, kafka.rs,
//! sql_crash.rs, sql_kafka_crash.rs): kill delays, signals, the demo's arguments and its
//! committed output, and the kill-and-restore loop of a SQL job.

#![allow(dead_code, reason = "each test file uses a part of the shared helpers")]

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A small deterministic generator of kill delays (xorshift), seeded per run.
pub struct Delays(pub u64);

impl Delays {
    /// The next delay in `low..high` milliseconds.
    pub fn next_ms(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

/// Sends `signal` (e.g. `TERM`) to `pid` with the system's `kill` command.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// The arguments of the demo job the crash and HTTP tests run.
pub fn demo_args(out: &Path, win: &Path, events: u64) -> Vec<String> {
    [
        "demo",
        "--events",
        &events.to_string(),
        "--windows",
        "-p",
        "2",
        "--users",
        "7",
        "--disorder-ms",
        "200",
        "--output",
        out.to_str().unwrap(),
        "--windows-output",
        win.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// All lines of a file or of every committed part file of a directory, sorted; the
/// wall-clock `processed_at` removed (it differs between any two runs).
pub fn committed_lines(path: &Path) -> Vec<String> {
    let files: Vec<PathBuf> = if path.is_dir() {
        fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    let mut lines = Vec::new();
    for f in files {
        for line in fs::read_to_string(&f).unwrap().lines() {
            let mut v: Value = serde_json::from_str(line).unwrap();
            if let Some(data) = v.get_mut("data").and_then(Value::as_object_mut) {
                data.remove("processed_at");
            }
            lines.push(v.to_string());
        }
    }
    lines.sort();
    lines
}

/// The seed of a crash test's kill times: `STREAMCORE_CRASH_SEED` (to replay a failure), else
/// the clock.
pub fn crash_seed() -> u64 {
    std::env::var("STREAMCORE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

/// Every line of the committed files in `dir` (names starting with `.` are in progress),
/// sorted.
pub fn committed_sorted(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with('.') {
            continue;
        }
        lines.extend(fs::read_to_string(&p).unwrap().lines().map(str::to_string));
    }
    lines.sort();
    lines
}

/// Runs `streamcore sql -p 2 -e SQL`, checkpointing into `ckpt` every 100 ms, and SIGKILLs it
/// after a delay drawn from `kill_ms` up to `kills` times, each time restarting it with
/// `--restore latest`, until a run ends by itself — which must succeed. The runs' stderr go
/// to files in `logs`. Returns the kills done, the runs and the time taken.
pub fn run_sql_with_kills(
    bin: &str,
    sql: &str,
    ckpt: &Path,
    logs: &Path,
    kills: usize,
    delays: &mut Delays,
    kill_ms: (u64, u64),
) -> (usize, usize, Duration) {
    let (mut killed, mut runs) = (0, 0);
    let started = Instant::now();
    loop {
        runs += 1;
        let stderr_path = logs.join(format!("stderr-{runs}.txt"));
        let mut child = Command::new(bin)
            .args(["sql", "-p", "2", "-e", sql, "--checkpoint-dir"])
            .arg(ckpt)
            .args(["--checkpoint-interval", "100ms", "--restore", "latest"])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let kill_at = Duration::from_millis(delays.next_ms(kill_ms.0, kill_ms.1));
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
                let stderr = fs::read_to_string(&stderr_path).unwrap();
                assert!(status.success(), "run {runs} failed: {stderr}");
                return (killed, runs, started.elapsed());
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                killed += 1;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no end after {killed} kills"
        );
    }
}
