//! The dashboard in a real browser: headless Chromium, driven over WebDriver (chromedriver,
//! a small JSON client below), loads the page of a running job and checks what a person sees
//! — the graph's operators, a throughput figure that grows, a watermark, the checkpoint count,
//! the watermark debugger — then saves a screenshot to docs/dashboard.png.

mod http_support;

use http_support::{request, serve, tool, wait_for};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A chromedriver process, killed when dropped.
struct Driver {
    child: Child,
    addr: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One WebDriver call with a JSON body; returns the `value` of the answer.
fn wd(addr: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let (_, body) = http_support::read_response(&mut s);
    let body = body.as_str();
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    if v["value"]["error"].is_string() {
        panic!("WebDriver {method} {path}: {}", v["value"]);
    }
    v["value"].clone()
}

struct Session<'a> {
    driver: &'a str,
    id: String,
}

impl Session<'_> {
    fn path(&self, p: &str) -> String {
        format!("/session/{}{p}", self.id)
    }
    /// Runs `script` in the page; returns its value.
    fn eval(&self, script: &str) -> Value {
        wd(
            self.driver,
            "POST",
            &self.path("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
    }
    fn text(&self, id: &str) -> String {
        self.eval(&format!(
            "const e = document.getElementById('{id}'); return e ? e.textContent : null;"
        ))
        .as_str()
        .unwrap_or("")
        .to_string()
    }
}

fn number(s: &str) -> f64 {
    s.replace(',', "").trim().parse().unwrap_or(-1.0)
}

/// Decodes standard base64 (the screenshot).
fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    } as u32;
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[test]
fn the_dashboard_shows_a_running_job_in_headless_chromium() {
    let chromedriver = tool("chromedriver");
    let chromium = tool("chromium");
    let tmp = tempfile::tempdir().unwrap();
    let (out, win, ckpt) = (
        tmp.path().join("out"),
        tmp.path().join("win"),
        tmp.path().join("ckpt"),
    );
    let job = serve(
        &[
            "demo",
            "--events",
            "0",
            "--rate",
            "3000",
            "-p",
            "2",
            "--windows",
            "--output",
            out.to_str().unwrap(),
            "--windows-output",
            win.to_str().unwrap(),
            "--idle-splits",
            "1",
            "--checkpoint-dir",
            ckpt.to_str().unwrap(),
            "--checkpoint-interval",
            "500ms",
            "--http",
            "127.0.0.1:0",
        ],
        &[],
    );
    let port = free_port();
    let driver = Driver {
        child: Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        addr: format!("127.0.0.1:{port}"),
    };
    wait_for(Duration::from_secs(20), "chromedriver", || {
        std::net::TcpStream::connect(&driver.addr)
            .ok()
            .map(|_| request(&driver.addr, "GET", "/status", &[]))
            .filter(|(s, _)| *s == 200)
    });
    let session = wd(
        &driver.addr,
        "POST",
        "/session",
        Some(json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1250"]
            }
        }}})),
    );
    let s = Session {
        driver: &driver.addr,
        id: session["sessionId"].as_str().unwrap().to_string(),
    };
    wd(
        s.driver,
        "POST",
        &s.path("/url"),
        Some(json!({"url": format!("http://{}/", job.addr)})),
    );
    // Live data arrives.
    wait_for(Duration::from_secs(20), "the job's state", || {
        (s.text("job-state") == "running").then_some(())
    });
    assert_eq!(s.text("job-name"), "demo");
    // The graph shows the job's operators.
    let names = wait_for(Duration::from_secs(20), "the graph", || {
        let v = s.eval(
            "return [...document.querySelectorAll('#graph g.node')].map(g => g.dataset.name);",
        );
        let names: Vec<String> = v
            .as_array()?
            .iter()
            .filter_map(|n| n.as_str().map(String::from))
            .collect();
        (!names.is_empty()).then_some(names)
    });
    for expected in ["transactions#0", "high_value_filter", "silent-partitions#1"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
    assert!(
        names.iter().any(|n| n.starts_with("window_aggregate")),
        "{names:?}"
    );
    // Edges are drawn, with their exchange.
    let edges = s.eval("return document.querySelectorAll('#graph path').length;");
    assert!(edges.as_u64().unwrap() >= names.len() as u64 - 2, "{edges}");
    // Throughput grows.
    let first = wait_for(Duration::from_secs(10), "a throughput figure", || {
        let n = number(&s.text("records-in"));
        (n > 0.0).then_some(n)
    });
    let later = wait_for(Duration::from_secs(10), "the figure to grow", || {
        let n = number(&s.text("records-in"));
        (n > first).then_some(n)
    });
    assert!(later > first);
    let rate = wait_for(Duration::from_secs(10), "a rate", || {
        let r = s.text("rate-in");
        (r != "–" && !r.is_empty()).then_some(r)
    });
    assert!(rate.contains('k') || number(&rate) > 0.0, "{rate}");
    // A watermark of the generator, as a UTC time (event time starts at 2023-11-14).
    let wm = wait_for(Duration::from_secs(10), "a watermark", || {
        let v = s.eval(
            "const r = document.querySelector('#watermarks tr[data-op=\"transactions#0\"] td.wm'); return r ? r.textContent : null;",
        );
        v.as_str()
            .filter(|t| t.starts_with("2023-"))
            .map(String::from)
    });
    assert!(wm.starts_with("2023-11-1"), "{wm}");
    // Checkpoints complete and are counted.
    wait_for(Duration::from_secs(20), "checkpoints", || {
        (number(&s.text("checkpoints-completed")) >= 2.0).then_some(())
    });
    // The debugger names the silent split.
    let explain = wait_for(Duration::from_secs(20), "the debugger", || {
        let t = s.text("explain");
        t.contains("silent-partitions").then_some(t)
    });
    assert!(explain.contains("no idle timeout is set"), "{explain}");
    // Let the rate chart fill a little, then keep a screenshot for the README.
    std::thread::sleep(Duration::from_secs(12));
    let shot = wd(s.driver, "GET", &s.path("/screenshot"), None);
    let png = base64(shot.as_str().unwrap());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dashboard.png");
    std::fs::write(docs, png).unwrap();
    wd(s.driver, "DELETE", &s.path(""), None);
}
