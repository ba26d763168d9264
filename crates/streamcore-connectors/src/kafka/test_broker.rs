//! [`TestBroker`]: a real Kafka-protocol broker (tansu) on 127.0.0.1 for integration tests,
//! one per test, on a free port, with its own SQLite storage, stopped when dropped.
//!
//! The binary is found at `$STREAMCORE_TANSU`, then `~/.cache/streamcore-tools/tansu/bin/tansu`
//! (where `scripts/install-test-deps.sh` puts it), then on `PATH`. Tests that need it fail with a
//! message naming the script when it is missing: they are never skipped.

use super::config::KafkaConfig;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running tansu broker.
pub struct TestBroker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs tansu on `port` with its SQLite storage in `dir`, and waits until it listens.
fn spawn_broker(dir: &std::path::Path, port: u16, authentication: bool) -> Child {
    let binary = binary();
    let url = format!("tcp://127.0.0.1:{port}");
    let mut command = Command::new(&binary);
    command
        .arg("broker")
        .args(["--listener-url", &url, "--advertised-listener-url", &url])
        // tansu resolves a SQLite path against its working directory.
        .args(["--storage-engine", "sqlite://tansu.db"]);
    if authentication {
        command.arg("--authentication");
    }
    let mut child = command
        .current_dir(dir)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let started = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("tansu did not listen on {addr} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// The tansu binary; panics with instructions when it is not installed.
fn binary() -> PathBuf {
    tansu_binary().unwrap_or_else(|| {
        panic!(
            "the Kafka tests need the tansu broker: run scripts/install-test-deps.sh \
             (or set STREAMCORE_TANSU to its binary)"
        )
    })
}

/// Where the tansu binary is, if anywhere.
pub fn tansu_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STREAMCORE_TANSU") {
        return Some(PathBuf::from(p));
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = PathBuf::from(home).join(".cache/streamcore-tools/tansu/bin/tansu");
        if p.exists() {
            return Some(p);
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tansu"))
            .find(|p| p.exists())
    })
}

impl TestBroker {
    /// Starts a broker; panics with instructions when tansu is not installed.
    pub fn start() -> TestBroker {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let child = spawn_broker(dir.path(), port, false);
        TestBroker {
            child,
            port,
            _dir: dir,
        }
    }

    /// Starts a broker that requires SASL authentication, with one SCRAM user (`mechanism`:
    /// `scram256` or `scram512`). tansu checks SCRAM credentials; it accepts any PLAIN
    /// password.
    pub fn start_with_scram_user(mechanism: &str, user: &str, password: &str) -> TestBroker {
        // The user is created through an open broker, then the broker restarts on the same
        // storage with authentication required.
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut open = spawn_broker(dir.path(), port, false);
        let status = Command::new(binary())
            .args(["user", "create", "--broker"])
            .arg(format!("tcp://127.0.0.1:{port}"))
            .args(["--mechanism", mechanism, user, password])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = open.kill();
        let _ = open.wait();
        let status = status.expect("running tansu user create");
        assert!(status.success(), "tansu user create failed: {status}");
        let child = spawn_broker(dir.path(), port, true);
        TestBroker {
            child,
            port,
            _dir: dir,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A client configuration for this broker.
    pub fn config(&self) -> KafkaConfig {
        KafkaConfig::new(self.brokers())
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        super::create_topic(&self.config(), topic, partitions)
            .unwrap_or_else(|e| panic!("creating topic {topic}: {e}"));
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
