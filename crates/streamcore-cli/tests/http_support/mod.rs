//! Helpers of the HTTP endpoint tests (http.rs, dashboard.rs): start a job with `--http` on a
//! free loopback port and learn its address, and a minimal HTTP/1.1 client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A job process serving `--http`, killed when dropped.
pub struct Served {
    pub child: Child,
    /// `127.0.0.1:port`.
    pub addr: String,
    /// Everything the job wrote on stderr so far.
    pub stderr: Arc<Mutex<String>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the process to end; its exit success.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "the job did not end: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts `streamcore <args>` (which must include `--http ADDR:0`) with `env`, and waits for
/// its endpoint's address on stderr.
pub fn serve(args: &[&str], env: &[(&str, &str)]) -> Served {
    let bin = env!("CARGO_BIN_EXE_streamcore");
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_remove("STREAMCORE_HTTP_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let pipe = child.stderr.take().unwrap();
    let log = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("dashboard, metrics and API on http://") {
                let _ = tx.send(rest.trim_end_matches('/').to_string());
            }
            let mut l = log.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(a) => a,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no HTTP endpoint came up: {}", stderr.lock().unwrap());
        }
    };
    // A wildcard bind is reached over loopback.
    let addr = addr.replace("0.0.0.0", "127.0.0.1");
    Served {
        child,
        addr,
        stderr,
    }
}

/// One request; returns the status and the body (of a `Content-Length` or chunked answer).
pub fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    read_response(&mut s)
}

/// Reads one HTTP/1.1 answer: by `Content-Length`, chunks, or to the end of the connection
/// (servers such as chromedriver keep it open after the body).
pub fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before the headers");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = raw[head_end + 4..].to_vec();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse::<usize>().unwrap());
    let chunked = head.contains("transfer-encoding: chunked");
    let done = |body: &[u8]| match length {
        Some(n) => body.len() >= n,
        None if chunked => body.ends_with(b"0\r\n\r\n"),
        None => false,
    };
    while !done(&body) {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&body).to_string();
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body.as_str();
        loop {
            let (size, tail) = rest.split_once("\r\n").unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            out.push_str(&tail[..size]);
            rest = &tail[size + 2..];
        }
        out
    } else {
        body
    };
    (status, body)
}

/// GET, expecting 200.
pub fn get(addr: &str, path: &str) -> String {
    let (status, body) = request(addr, "GET", path, &[]);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// GET a JSON document.
pub fn get_json(addr: &str, path: &str) -> serde_json::Value {
    serde_json::from_str(&get(addr, path)).unwrap()
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A tool the tests need, from `PATH`: fails (does not skip) naming the install script.
pub fn tool(name: &str) -> String {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => p.display().to_string(),
        None => panic!(
            "`{name}` is not installed: run scripts/install-test-deps.sh (it runs \
             scripts/test-deps.d/40-browser.sh, which installs chromium, chromium-driver and \
             prometheus for promtool)"
        ),
    }
}
