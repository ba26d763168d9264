//! Helpers shared by the process-level tests (crash.rs, crash_s3.rs, http.rs, kafka.rs,
//! sql_crash.rs): kill delays, signals, the demo's arguments and its committed output.

#![allow(dead_code, reason = "each test file uses a part of the shared helpers")]

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

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
