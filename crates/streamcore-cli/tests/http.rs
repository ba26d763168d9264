//! The HTTP endpoint of a running job (`--http`): `/metrics` checked by `promtool` and against
//! a job whose counts are known, the security rules (404s, the bearer token off loopback, no
//! secret in any answer), a savepoint and a stop over HTTP resumed with identical output, the
//! watermark debugger naming an idle split, and the alert rules in docs/alerts/.

mod common;
mod http_support;

use common::{committed_lines, demo_args};

use http_support::{get, get_json, request, serve, tool, wait_for};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Samples of a Prometheus text exposition: `name{labels}` -> value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// The sum of `name`'s samples whose labels contain every one of `labels`.
fn sum(samples: &BTreeMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| {
            k.starts_with(&format!("{name}{{")) && labels.iter().all(|l| k.contains(l))
        })
        .map(|(_, v)| v)
        .sum()
}

fn promtool_check(args: &[&str], input: Option<&str>) -> (bool, String) {
    let promtool = tool("promtool");
    let mut child = Command::new(promtool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = input {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn metrics_pass_promtool_and_match_a_job_with_known_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.jsonl");
    let job = serve(
        &[
            "demo",
            "--events",
            "1000",
            "-p",
            "2",
            "--output",
            out.to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
            "--http-linger",
            "60s",
        ],
        &[],
    );
    let addr = job.addr.clone();
    wait_for(Duration::from_secs(30), "the job to finish", || {
        let jobs = get_json(&addr, "/api/v1/jobs");
        (jobs["jobs"][0]["state"] == "finished").then_some(())
    });
    let text = get(&addr, "/metrics");
    let (ok, lint) = promtool_check(&["check", "metrics"], Some(&text));
    assert!(ok, "promtool check metrics: {lint}\n{text}");
    assert!(lint.trim().is_empty(), "promtool lints: {lint}");

    // amount = 50 + 25·(i mod 20) > 100 for 17 of every 20 events.
    let s = samples(&text);
    let job_label = "job=\"demo\"";
    assert_eq!(
        sum(&s, "streamcore_job_records_ingested_total", &[job_label]),
        1000.0
    );
    assert_eq!(
        sum(&s, "streamcore_job_records_emitted_total", &[job_label]),
        850.0
    );
    let filter = "operator_name=\"high_value_filter\"";
    assert_eq!(
        sum(&s, "streamcore_operator_records_in_total", &[filter]),
        1000.0
    );
    assert_eq!(
        sum(&s, "streamcore_operator_records_out_total", &[filter]),
        850.0
    );
    // One series per subtask of the parallel filter.
    for subtask in ["subtask=\"0\"", "subtask=\"1\""] {
        assert!(
            s.keys()
                .any(|k| k.starts_with("streamcore_operator_records_in_total")
                    && k.contains(filter)
                    && k.contains(subtask)),
            "{text}"
        );
    }
    assert_eq!(sum(&s, "streamcore_job_running", &[job_label]), 0.0);
    assert_eq!(
        sum(
            &s,
            "streamcore_job_records_dead_lettered_total",
            &[job_label]
        ),
        0.0
    );
    // The file really has the rows the metrics count.
    assert_eq!(fs::read_to_string(&out).unwrap().lines().count(), 850);

    // The API agrees with the metrics.
    let detail = get_json(&addr, "/api/v1/jobs/demo/subtasks");
    let filter_op = detail["operators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "high_value_filter")
        .unwrap();
    let outs: u64 = filter_op["subtasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["records_out"].as_u64().unwrap())
        .sum();
    assert_eq!(outs, 850);
    let graph = get_json(&addr, "/api/v1/jobs/demo/graph");
    let names: Vec<&str> = graph["graph"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"high_value_filter"), "{names:?}");
    // Rates sampled by the server once a second: 1000 records read in the first seconds.
    let rates = get_json(&addr, "/api/v1/jobs/demo/rates");
    assert_eq!(rates["interval_ms"], 1000);
    assert!(rates["points"].is_array(), "{rates}");
    assert!(
        graph["graph"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["exchange"].is_string() && e["changelog"] == "append"),
        "{graph}"
    );
    drop(job);
}

const TOKEN: &str = "s3cr3t-t0ken-for-the-test-5b9c";

#[test]
fn unknown_routes_404_mutations_need_the_token_off_loopback_and_no_secret_is_served() {
    // Off loopback without a token: refused before the job starts.
    let bin = env!("CARGO_BIN_EXE_streamcore");
    let refused = Command::new(bin)
        .args(["demo", "--events", "10", "--http", "0.0.0.0:0"])
        .env_remove("STREAMCORE_HTTP_TOKEN")
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("not a loopback address"), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    let out = tmp.path().join("out");
    let mut job = serve(
        &[
            "demo",
            "--events",
            "0",
            "--rate",
            "2000",
            "--output",
            out.to_str().unwrap(),
            "--checkpoint-dir",
            ckpt.to_str().unwrap(),
            "--checkpoint-interval",
            "300ms",
            "--http",
            "0.0.0.0:0",
        ],
        &[("STREAMCORE_HTTP_TOKEN", TOKEN)],
    );
    let addr = job.addr.clone();
    for path in [
        "/nope",
        "/api/v1/jobs/other",
        "/api/v1/jobs/other/metrics",
        "/api/v2/jobs",
        "/metrics/x",
        "/../etc/passwd",
    ] {
        let (status, body) = request(&addr, "GET", path, &[]);
        assert_eq!(status, 404, "GET {path}: {body}");
    }
    let (status, _) = request(&addr, "GET", "/api/v1/jobs/demo/savepoint", &[]);
    assert_eq!(status, 405, "GET on an action");
    for (path, auth) in [
        ("/api/v1/jobs/demo/savepoint", None),
        ("/api/v1/jobs/demo/stop", None),
        ("/api/v1/jobs/demo/cancel", None),
        ("/api/v1/jobs/demo/cancel", Some("Bearer wrong")),
        ("/api/v1/jobs/demo/cancel", Some(TOKEN)),
        ("/api/v1/jobs/demo/cancel", Some("Bearer ")),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let (status, body) = request(&addr, "POST", path, &headers);
        assert_eq!(status, 401, "POST {path} with {auth:?}: {body}");
        assert!(!body.contains(TOKEN));
    }
    // Checkpoints go on: the job was not touched.
    wait_for(Duration::from_secs(20), "a checkpoint", || {
        let c = get_json(&addr, "/api/v1/jobs/demo/checkpoints");
        (c["summary"]["completed"].as_u64().unwrap_or(0) >= 1).then_some(())
    });
    // The server samples rates once a second: the generator's 2000 records/s.
    let rate = wait_for(Duration::from_secs(20), "a sampled rate", || {
        let r = get_json(&addr, "/api/v1/jobs/demo/rates");
        r["points"].as_array()?.last()?["read_per_second"].as_f64()
    });
    assert!((1_000.0..3_000.0).contains(&rate), "{rate} records/s");
    // No answer carries the token or the environment.
    for path in [
        "/",
        "/dashboard",
        "/metrics",
        "/api/v1/jobs",
        "/api/v1/jobs/demo",
        "/api/v1/jobs/demo/graph",
        "/api/v1/jobs/demo/metrics",
        "/api/v1/jobs/demo/subtasks",
        "/api/v1/jobs/demo/checkpoints",
        "/api/v1/jobs/demo/rates",
        "/api/v1/jobs/demo/watermarks",
        "/api/v1/jobs/demo/watermarks?format=text",
    ] {
        let body = get(&addr, path);
        assert!(!body.contains(TOKEN), "{path} serves the token");
        assert!(!body.contains("STREAMCORE_HTTP_TOKEN"), "{path}");
    }
    assert!(!job.stderr().contains(TOKEN), "the token was logged");
    // With the token, the call goes through.
    let bearer = format!("Bearer {TOKEN}");
    let (status, body) = request(
        &addr,
        "POST",
        "/api/v1/jobs/demo/savepoint",
        &[("Authorization", &bearer)],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("sp-"), "{body}");
    let (status, body) = request(
        &addr,
        "POST",
        "/api/v1/jobs/demo/cancel",
        &[("Authorization", &bearer)],
    );
    assert_eq!(status, 200, "{body}");
    assert!(!job.wait(Duration::from_secs(20)), "a cancelled job fails");
    assert!(job.stderr().contains("cancelled"), "{}", job.stderr());
}

#[test]
fn savepoint_and_stop_with_savepoint_over_http_then_resume_with_identical_output() {
    let bin = env!("CARGO_BIN_EXE_streamcore");
    let tmp = tempfile::tempdir().unwrap();
    let (ref_out, ref_win) = (
        tmp.path().join("ref.jsonl"),
        tmp.path().join("ref-win.jsonl"),
    );
    let status = Command::new(bin)
        .args(demo_args(&ref_out, &ref_win, 20_000))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let (out, win, ckpt) = (
        tmp.path().join("out"),
        tmp.path().join("win"),
        tmp.path().join("checkpoints"),
    );
    let mut args = demo_args(&out, &win, 20_000);
    args.extend(
        [
            "--rate",
            "5000",
            "--checkpoint-dir",
            ckpt.to_str().unwrap(),
            "--checkpoint-interval",
            "10s",
            "--restore",
            "latest",
            "--http",
            "127.0.0.1:0",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut job = serve(&arg_refs, &[]);
    let addr = job.addr.clone();
    std::thread::sleep(Duration::from_millis(700));
    let (status, body) = request(&addr, "POST", "/api/v1/jobs/demo/savepoint", &[]);
    assert_eq!(status, 200, "{body}");
    let first: Value = serde_json::from_str(&body).unwrap();
    let first = first["savepoint"].as_str().unwrap().to_string();
    assert!(Path::new(&first).join("_manifest.json").exists() || Path::new(&first).is_dir());
    let history = get_json(&addr, "/api/v1/jobs/demo/checkpoints");
    assert_eq!(history["history"][0]["kind"], "savepoint", "{history}");
    std::thread::sleep(Duration::from_millis(700));
    let (status, body) = request(&addr, "POST", "/api/v1/jobs/demo/stop?savepoint=true", &[]);
    assert_eq!(status, 200, "{body}");
    let stopped: Value = serde_json::from_str(&body).unwrap();
    let second = stopped["savepoint"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert!(job.wait(Duration::from_secs(30)), "{}", job.stderr());
    assert!(committed_lines(&win).len() < committed_lines(&ref_win).len());

    // Resume from the stop's savepoint and run to the end.
    let mut resume = demo_args(&out, &win, 20_000);
    resume.extend(
        [
            "--checkpoint-dir",
            ckpt.to_str().unwrap(),
            "--restore",
            &second,
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let status = Command::new(bin)
        .args(&resume)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        committed_lines(&win) == committed_lines(&ref_win),
        "window results differ"
    );
    assert!(
        committed_lines(&out) == committed_lines(&ref_out),
        "events differ"
    );
}

fn explain(addr: &str) -> (String, Value) {
    let bin = env!("CARGO_BIN_EXE_streamcore");
    let run = |extra: &[&str]| {
        let out = Command::new(bin)
            .args(["explain-watermarks", "--http", &format!("http://{addr}")])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run(&[]);
    let json = serde_json::from_str(&run(&["--json"])).unwrap();
    (text, json)
}

#[test]
fn the_debugger_names_the_idle_split_holding_a_window_and_nothing_once_idle_timeout_is_set() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, win) = (tmp.path().join("out"), tmp.path().join("win"));
    let base = [
        "demo",
        "--events",
        "0",
        "--rate",
        "2000",
        "-p",
        "2",
        "--windows",
        "--output",
        out.to_str().unwrap(),
        "--windows-output",
        win.to_str().unwrap(),
        "--idle-splits",
        "1",
        "--http",
        "127.0.0.1:0",
    ];
    // No idle timeout: the silent split holds every window back.
    let job = serve(&base, &[]);
    let held_window = |json: &Value| {
        json["operators"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| {
                o["pending_window"].is_object()
                    && o["operator"].as_str().unwrap().starts_with("window")
                    && o["held_by"].is_object()
            })
            .cloned()
    };
    let (text, window) = wait_for(Duration::from_secs(20), "a held window", || {
        // Text and JSON are two calls: both must show the hold (the first may come earlier).
        let (text, json) = explain(&job.addr);
        held_window(&json)
            .filter(|_| text.contains("no idle timeout is set"))
            .map(|w| (text, w))
    });
    let json = explain(&job.addr).1;
    let holder = &window["held_by"];
    assert_eq!(holder["split"], 0, "{window}");
    assert!(
        holder["operator"]
            .as_str()
            .unwrap()
            .starts_with("silent-partitions"),
        "{window}"
    );
    assert!(holder["idle_timeout_ms"].is_null(), "{window}");
    assert!(holder["stalled_ms"].as_i64().unwrap() >= 1000, "{window}");
    assert!(holder["via_exchange"].is_string(), "{window}");
    assert!(text.contains("waits for watermark ≥"), "{text}");
    assert!(text.contains("split `0` of `silent-partitions"), "{text}");
    assert!(text.contains("no idle timeout is set"), "{text}");
    assert!(json["held"].as_u64().unwrap() > 0);
    drop(job);

    // With an idle timeout the split stops holding: nothing is held, windows fire.
    let mut args = base.to_vec();
    args.extend(["--idle-timeout", "500ms"]);
    let job = serve(&args, &[]);
    let (text, json) = wait_for(Duration::from_secs(20), "nothing held", || {
        let (text, json) = explain(&job.addr);
        let fired = get_json(&job.addr, "/api/v1/jobs/demo/metrics")["operators"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["windows_fired"].as_u64().unwrap_or(0) > 0);
        (json["held"] == 0 && fired).then_some((text, json))
    });
    assert!(text.contains("nothing holds a watermark back"), "{text}");
    assert!(
        json["operators"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["held_by"].is_null()),
        "{json}"
    );
}

#[test]
fn the_alert_rules_pass_promtool() {
    let rules =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/alerts/streamcore-rules.yml");
    let (ok, out) = promtool_check(&["check", "rules", rules.to_str().unwrap()], None);
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    let tests =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/alerts/streamcore-rules.test.yml");
    let (ok, out) = promtool_check(&["test", "rules", tests.to_str().unwrap()], None);
    assert!(ok, "{out}");
    // The Grafana dashboard is valid JSON with panels.
    let dash: Value = serde_json::from_str(
        &fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/alerts/grafana-dashboard.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(dash["panels"].as_array().unwrap().len() >= 6);
}
