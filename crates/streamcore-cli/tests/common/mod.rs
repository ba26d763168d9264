//! Helpers shared by the process-level tests (crash.rs, kafka.rs): kill delays and signals.

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
