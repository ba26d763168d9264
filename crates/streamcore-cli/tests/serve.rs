//! `streamcore serve` and `streamcore submit`: several SQL jobs in one process. Two jobs are
//! submitted (one with `streamcore submit`, one with `POST /api/v1/jobs`), listed, scraped
//! together on `/metrics`; one is stopped with a savepoint over HTTP and resubmitted with
//! `restore` set to it, and the committed output of both must equal runs of the same SQL with
//! `streamcore sql` that were never interrupted. A bad script is refused with the planner's
//! line and column; an unknown job id is a 404.

mod http_support;

use http_support::{get, get_json, read_response, request, serve, tool, wait_for, Served};
use serde_json::{json, Value};
use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A rate-limited Nexmark bid stream (about six seconds) into a JSON part-file sink in `out`.
fn script(out: &Path, rate_limited: bool, filter: &str) -> String {
    format!(
        "SET 'pipeline.name' = 'bids';
         CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
           WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND)
         WITH ('connector' = 'nexmark', 'kind' = 'bid', 'events.num' = '60000',
               'first-event.rate' = '10000', 'rate-limited' = '{rate_limited}');
         CREATE TABLE per_window (auction BIGINT, bids BIGINT, top_price BIGINT, window_end TIMESTAMP(3))
         WITH ('connector' = 'filesystem', 'path' = '{out}/windows', 'format' = 'json');
         CREATE TABLE picked (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3))
         WITH ('connector' = 'filesystem', 'path' = '{out}/picked', 'format' = 'json');
         INSERT INTO per_window
         SELECT auction, COUNT(*), MAX(price), window_end
         FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '1' SECOND))
         GROUP BY auction, window_start, window_end;
         INSERT INTO picked SELECT auction, bidder, price, `dateTime` FROM bid WHERE {filter};",
        out = out.display()
    )
}

/// Every line of the committed part files under `dir` (hidden in-progress files excluded),
/// sorted.
fn committed(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for sub in ["windows", "picked"] {
        let Ok(entries) = fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.file_name().unwrap().to_string_lossy().starts_with('.') {
                continue;
            }
            lines.extend(
                fs::read_to_string(&p)
                    .unwrap()
                    .lines()
                    .map(|l| format!("{sub}: {l}")),
            );
        }
    }
    lines.sort();
    lines
}

/// Fails naming what `got` misses and has in excess of `expected`.
fn assert_same(got: &[String], expected: &[String], what: &str) {
    if got != expected {
        let missing: Vec<_> = expected.iter().filter(|l| !got.contains(l)).collect();
        let extra: Vec<_> = got.iter().filter(|l| !expected.contains(l)).collect();
        panic!(
            "{what}: {} rows, expected {}; {} missing (first: {:?}), {} in excess (first: {:?})",
            got.len(),
            expected.len(),
            missing.len(),
            missing.first(),
            extra.len(),
            extra.first()
        );
    }
}

/// The same SQL run by `streamcore sql`, without interruption.
fn reference(out: &Path, filter: &str) -> Vec<String> {
    let status = Command::new(env!("CARGO_BIN_EXE_streamcore"))
        .args(["sql", "-p", "2", "-e", &script(out, false, filter)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let rows = committed(out);
    assert!(
        rows.len() > 1000,
        "the reference run wrote {} rows",
        rows.len()
    );
    rows
}

/// A POST with a body; the status and the answer.
fn post(addr: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    read_response(&mut s)
}

fn job_state(addr: &str, id: &str) -> String {
    get_json(addr, &format!("/api/v1/jobs/{id}"))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

fn wait_ended(served: &Served, id: &str) -> String {
    wait_for(
        Duration::from_secs(120),
        &format!("job {id} to end"),
        || {
            let state = job_state(&served.addr, id);
            (state != "running").then_some(state)
        },
    )
}

#[test]
fn jobs_are_submitted_listed_scraped_stopped_and_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let (out_a, out_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (filter_a, filter_b) = ("price < 1000", "bidder % 3 = 0");
    let expected_a = reference(&tmp.path().join("ref-a"), filter_a);
    let expected_b = reference(&tmp.path().join("ref-b"), filter_b);

    let checkpoints = tmp.path().join("checkpoints");
    let served = serve(
        &[
            "serve",
            "--http",
            "127.0.0.1:0",
            "-p",
            "2",
            "--checkpoint-dir",
            checkpoints.to_str().unwrap(),
            "--checkpoint-interval",
            "200ms",
        ],
        &[],
    );
    let addr = served.addr.clone();
    assert_eq!(get_json(&addr, "/api/v1/jobs"), json!({ "jobs": [] }));

    // Job A with `streamcore submit`.
    let file_a = tmp.path().join("a.sql");
    fs::write(&file_a, script(&out_a, true, filter_a)).unwrap();
    let submitted = Command::new(env!("CARGO_BIN_EXE_streamcore"))
        .args(["submit", file_a.to_str().unwrap(), "--http-url"])
        .arg(format!("http://{addr}"))
        .output()
        .unwrap();
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let id_a = String::from_utf8(submitted.stdout)
        .unwrap()
        .trim()
        .to_string();
    assert!(id_a.starts_with("bids-"), "{id_a}");

    // Job B with the SQL script as the body.
    let (status, body) = post(
        &addr,
        "/api/v1/jobs",
        "text/plain",
        &script(&out_b, true, filter_b),
    );
    assert_eq!(status, 201, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let id_b = answer["id"].as_str().unwrap().to_string();
    assert_ne!(id_a, id_b);
    assert_eq!(
        answer["checkpoint_dir"].as_str().unwrap(),
        checkpoints.join(&id_b).display().to_string()
    );

    // Both listed, running, with their routes.
    let jobs = get_json(&addr, "/api/v1/jobs");
    let listed: Vec<_> = jobs["jobs"].as_array().unwrap().iter().collect();
    assert_eq!(listed.len(), 2, "{jobs}");
    for (job, id) in listed.iter().zip([&id_a, &id_b]) {
        assert_eq!(job["id"], json!(id));
        assert_eq!(job["name"], json!("bids"));
        assert!(job["started"].as_i64().unwrap() > 0);
        assert_eq!(job["error"], Value::Null);
    }
    for id in [&id_a, &id_b] {
        for route in [
            "graph",
            "metrics",
            "subtasks",
            "checkpoints",
            "watermarks",
            "rates",
        ] {
            get(&addr, &format!("/api/v1/jobs/{id}/{route}"));
        }
        assert!(
            get_json(&addr, &format!("/api/v1/jobs/{id}/graph"))["graph"]["nodes"]
                .as_array()
                .is_some_and(|n| !n.is_empty())
        );
    }

    // One exposition with both jobs, each family described once.
    let metrics = wait_for(Duration::from_secs(30), "both jobs reading", || {
        let m = get(&addr, "/metrics");
        [&id_a, &id_b]
            .iter()
            .all(|id| {
                m.lines().any(|l| {
                    l.starts_with(&format!(
                        "streamcore_job_records_ingested_total{{job=\"{id}\"}}"
                    )) && !l.ends_with(" 0")
                })
            })
            .then_some(m)
    });
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.starts_with("# TYPE streamcore_job_running "))
            .count(),
        1,
        "{metrics}"
    );
    assert!(metrics.contains(&format!("streamcore_job_running{{job=\"{id_b}\"}} 1")));
    // A valid exposition, as Prometheus reads it.
    let mut promtool = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    let complaints = String::from_utf8_lossy(&checked.stderr).to_string()
        + &String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success() && complaints.trim().is_empty(),
        "promtool check metrics: {complaints}"
    );

    // Stop A with a savepoint, once it has checkpointed.
    wait_for(Duration::from_secs(30), "a checkpoint of A", || {
        let c = get_json(&addr, &format!("/api/v1/jobs/{id_a}/checkpoints"));
        (c["summary"]["completed"].as_u64().unwrap_or(0) > 0).then_some(())
    });
    let (status, body) = request(
        &addr,
        "POST",
        &format!("/api/v1/jobs/{id_a}/stop?savepoint=true"),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let stopped: Value = serde_json::from_str(&body).unwrap();
    let savepoint = stopped["savepoint"].as_str().unwrap().to_string();
    assert!(Path::new(&savepoint).starts_with(checkpoints.join(&id_a)));
    assert_eq!(wait_ended(&served, &id_a), "stopped");
    assert!(
        committed(&out_a).len() < expected_a.len(),
        "A ended before it was stopped: the test proves nothing"
    );
    // An action on an ended job is refused.
    let (status, _) = request(&addr, "POST", &format!("/api/v1/jobs/{id_a}/cancel"), &[]);
    assert_eq!(status, 409);

    // Resubmit A, restoring from its savepoint (JSON submission).
    let (status, body) = post(
        &addr,
        "/api/v1/jobs",
        "application/json",
        &json!({ "sql": script(&out_a, true, filter_a), "parallelism": 2, "restore": savepoint })
            .to_string(),
    );
    assert_eq!(status, 201, "{body}");
    let id_a2 = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(wait_ended(&served, &id_a2), "finished");
    assert_eq!(wait_ended(&served, &id_b), "finished");
    let restored = get_json(&addr, &format!("/api/v1/jobs/{id_a2}/checkpoints"));
    assert_eq!(
        restored["summary"]["restored_from"].as_str(),
        Some(savepoint.as_str()),
        "{restored}"
    );
    assert_eq!(
        get_json(&addr, "/api/v1/jobs")["jobs"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    assert_same(
        &committed(&out_a),
        &expected_a,
        "job A (stopped and restored)",
    );
    assert_same(&committed(&out_b), &expected_b, "job B");
}

#[test]
fn bad_submissions_and_unknown_jobs_are_refused() {
    let served = serve(&["serve", "--http", "127.0.0.1:0", "-p", "1"], &[]);
    let addr = served.addr.clone();
    // A planner error: its line and column.
    let (status, body) = post(
        &addr,
        "/api/v1/jobs",
        "text/plain",
        "CREATE TABLE t (a BIGINT) WITH ('connector' = 'blackhole');\nINSERT INTO t SELECT nope FROM t2;",
    );
    assert_eq!(status, 400, "{body}");
    let message = serde_json::from_str::<Value>(&body).unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with("script:2:32: unknown table `t2`"),
        "{message}"
    );
    assert!(
        message.contains("2 | INSERT INTO t SELECT nope FROM t2;"),
        "{message}"
    );
    assert!(message.contains("t2"), "{message}");
    // A SELECT has no terminal to print to.
    let (status, body) = post(&addr, "/api/v1/jobs", "text/plain", "SELECT 1;");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("INSERT INTO"), "{body}");
    // Restore on a server that does not checkpoint.
    let (status, body) = post(
        &addr,
        "/api/v1/jobs",
        "application/json",
        r#"{"sql": "SELECT 1;", "restore": "/nowhere"}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("--checkpoint-dir"), "{body}");
    // `streamcore submit` reports the refusal and fails.
    let out = Command::new(env!("CARGO_BIN_EXE_streamcore"))
        .args(["submit", "-", "--http-url"])
        .arg(format!("http://{addr}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"SELEC 1;")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HTTP 400"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Unknown job ids.
    for (method, path) in [
        ("GET", "/api/v1/jobs/nope"),
        ("GET", "/api/v1/jobs/nope/graph"),
        ("GET", "/api/v1/jobs/nope/metrics"),
        ("POST", "/api/v1/jobs/nope/savepoint"),
        ("POST", "/api/v1/jobs/nope/stop?savepoint=true"),
    ] {
        let (status, body) = request(&addr, method, path, &[]);
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    assert_eq!(get_json(&addr, "/api/v1/jobs"), json!({ "jobs": [] }));
    // A script's checkpoint directory on a server without a checkpoint root: the job runs
    // without checkpoints (the server decides where jobs checkpoint), nothing is written there.
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("ck");
    let (status, body) = post(
        &addr,
        "/api/v1/jobs",
        "text/plain",
        &format!(
            "SET 'execution.checkpointing.dir' = '{}';
             SET 'execution.checkpointing.interval' = '10 ms';
             CREATE TABLE g (auction BIGINT) WITH ('connector' = 'nexmark', 'kind' = 'bid',
               'events.num' = '3000', 'first-event.rate' = '10000', 'rate-limited' = 'true');
             CREATE TABLE o (auction BIGINT) WITH ('connector' = 'blackhole');
             INSERT INTO o SELECT auction FROM g;",
            ck.display()
        ),
    );
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(wait_ended(&served, &id), "finished");
    assert!(
        !ck.exists(),
        "the job checkpointed into the script's directory"
    );
}

#[test]
fn off_loopback_submissions_need_the_token() {
    let served = serve(
        &["serve", "--http", "0.0.0.0:0", "-p", "1"],
        &[("STREAMCORE_HTTP_TOKEN", "s3cret")],
    );
    let sql = "CREATE TABLE t (a BIGINT) WITH ('connector' = 'blackhole');";
    let (status, _) = post(&served.addr, "/api/v1/jobs", "text/plain", sql);
    assert_eq!(status, 401);
    // With the token, the script is looked at (and has no INSERT).
    let out = Command::new(env!("CARGO_BIN_EXE_streamcore"))
        .args(["submit", "-", "--http-url"])
        .arg(format!("http://{}", served.addr))
        .env("STREAMCORE_HTTP_TOKEN", "s3cret")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(sql.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HTTP 400") && stderr.contains("no INSERT"),
        "{stderr}"
    );
}

#[test]
fn sigterm_stops_the_running_jobs_with_a_savepoint() {
    let tmp = tempfile::tempdir().unwrap();
    let checkpoints = tmp.path().join("checkpoints");
    let mut served = serve(
        &[
            "serve",
            "--http",
            "127.0.0.1:0",
            "-p",
            "1",
            "--checkpoint-dir",
            checkpoints.to_str().unwrap(),
            "--checkpoint-interval",
            "100ms",
        ],
        &[],
    );
    let addr = served.addr.clone();
    // An unbounded job: it ends only when stopped.
    let sql = format!(
        "CREATE TABLE bid (auction BIGINT, price BIGINT)
         WITH ('connector' = 'nexmark', 'kind' = 'bid', 'events.num' = '0',
               'first-event.rate' = '1000', 'rate-limited' = 'true');
         CREATE TABLE out (auction BIGINT, price BIGINT)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
         INSERT INTO out SELECT auction, price FROM bid;",
        tmp.path().join("out").display()
    );
    let (status, body) = post(&addr, "/api/v1/jobs", "text/plain", &sql);
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(id, "sql-1");
    wait_for(Duration::from_secs(30), "a checkpoint", || {
        let c = get_json(&addr, &format!("/api/v1/jobs/{id}/checkpoints"));
        (c["summary"]["completed"].as_u64().unwrap_or(0) > 0).then_some(())
    });
    let pid = served.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(served.wait(Duration::from_secs(60)), "{}", served.stderr());
    let stderr = served.stderr();
    assert!(
        stderr.contains(&format!("job {id} stopped with a savepoint in")),
        "{stderr}"
    );
    let savepoints = fs::read_dir(checkpoints.join(&id))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("sp-")
        })
        .count();
    assert_eq!(savepoints, 1, "{stderr}");
}

/// A chromedriver process, killed when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One WebDriver call; returns the `value` of the answer.
fn wd(addr: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let (_, body) = read_response(&mut s);
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(
        !v["value"]["error"].is_string(),
        "WebDriver {method} {path}: {}",
        v["value"]
    );
    v["value"].clone()
}

#[test]
fn the_dashboard_lists_the_jobs_and_shows_the_one_picked() {
    let (chromedriver, chromium) = (tool("chromedriver"), tool("chromium"));
    let served = serve(&["serve", "--http", "127.0.0.1:0", "-p", "1"], &[]);
    let addr = served.addr.clone();
    let mut ids = Vec::new();
    for name in ["first", "second"] {
        let sql = format!(
            "SET 'pipeline.name' = '{name}';
             CREATE TABLE bid (auction BIGINT, price BIGINT)
             WITH ('connector' = 'nexmark', 'kind' = 'bid', 'events.num' = '0',
                   'first-event.rate' = '1000', 'rate-limited' = 'true');
             CREATE TABLE sink (auction BIGINT) WITH ('connector' = 'blackhole');
             INSERT INTO sink SELECT auction FROM bid;"
        );
        let (status, body) = post(&addr, "/api/v1/jobs", "text/plain", &sql);
        assert_eq!(status, 201, "{body}");
        ids.push(
            serde_json::from_str::<Value>(&body).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _driver = Driver(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let driver = format!("127.0.0.1:{port}");
    wait_for(Duration::from_secs(20), "chromedriver", || {
        TcpStream::connect(&driver)
            .ok()
            .map(|_| request(&driver, "GET", "/status", &[]))
            .filter(|(s, _)| *s == 200)
    });
    let session = wd(
        &driver,
        "POST",
        "/session",
        Some(json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
            }
        }}})),
    );
    let path = |p: &str| format!("/session/{}{p}", session["sessionId"].as_str().unwrap());
    let eval = |script: &str| {
        wd(
            &driver,
            "POST",
            &path("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
    };
    // Opened on the first job (named in the URL), the selector lists both.
    wd(
        &driver,
        "POST",
        &path("/url"),
        Some(json!({"url": format!("http://{addr}/#job={}", ids[0])})),
    );
    let shown = |id: &str| {
        let id = id.to_string();
        wait_for(
            Duration::from_secs(20),
            &format!("the dashboard of {id}"),
            || {
                let v = eval(
                    "return [document.getElementById('job-name').textContent, \
                 document.getElementById('job-state').textContent, \
                 document.getElementById('records-in').textContent];",
                );
                let [name, state, records] =
                    [0, 1, 2].map(|i| v[i].as_str().unwrap_or("").to_string());
                (name == id && state == "running" && records != "–").then_some(())
            },
        )
    };
    shown(&ids[0]);
    let options = eval(
        "const s = document.getElementById('job-select'); \
         return {hidden: s.hidden, ids: [...s.options].map(o => o.value)};",
    );
    assert_eq!(options, json!({"hidden": false, "ids": ids}));
    // Picking the second shows it.
    eval(&format!(
        "const s = document.getElementById('job-select'); s.value = '{}'; \
         s.dispatchEvent(new Event('change'));",
        ids[1]
    ));
    shown(&ids[1]);
    assert!(eval("return location.hash;")
        .as_str()
        .unwrap()
        .ends_with(&ids[1]));
}
