//! End-to-end tests of `streamcore demo`: the design note's output, parallelism, files in and
//! out, and both error policies.

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn streamcore(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streamcore"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// The output events without the wall-clock field, sorted by id.
fn normalized(mut events: Vec<Value>) -> Vec<Value> {
    for e in &mut events {
        let data = e["data"].as_object_mut().expect("data is an object");
        assert!(data
            .remove("processed_at")
            .and_then(|v| v.as_f64())
            .is_some());
    }
    events.sort_by_key(|e| e["event_id"].as_str().unwrap().to_string());
    events
}

#[test]
fn default_demo_prints_exactly_the_17_high_value_events() {
    let out = streamcore(&["demo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = lines(&out.stdout);
    assert_eq!(events.len(), 17);
    let mut ids: Vec<u64> = events
        .iter()
        .map(|e| {
            let amount = e["data"]["amount"].as_i64().unwrap();
            assert!(amount > 100, "{e}");
            assert_eq!(e["data"]["is_high_value"], Value::Bool(true));
            assert_eq!(e["event_type"], "transaction");
            let id = e["event_id"].as_str().unwrap();
            let i: u64 = id.strip_prefix("enriched_event_").unwrap().parse().unwrap();
            assert_eq!(amount, 50 + 25 * (i as i64 % 20));
            i
        })
        .collect();
    ids.sort();
    assert_eq!(ids, (3..20).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("events_ingested=20 events_emitted=17 events_filtered=3 events_failed=0"),
        "{stderr}"
    );
}

#[test]
fn output_is_the_same_at_every_parallelism() {
    let run = |p: &str| {
        let out = streamcore(&["demo", "--events", "5000", "--seed", "42", "-p", p]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        normalized(lines(&out.stdout))
    };
    let one = run("1");
    assert!(one.len() > 4000, "{}", one.len());
    assert_eq!(one, run("2"));
    assert_eq!(one, run("4"));
}

#[test]
fn metrics_json_has_the_design_note_names() {
    let out = streamcore(&["demo", "--metrics-json", "-p", "2"]);
    assert!(out.status.success());
    let m: Value = serde_json::from_slice(&out.stderr).expect("metrics are JSON");
    assert_eq!(m["events_ingested"], 20);
    assert_eq!(m["events_emitted"], 17);
    assert_eq!(m["events_filtered"], 3);
    assert_eq!(m["events_failed"], 0);
    let filter = m["operators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "high_value_filter")
        .expect("the filter reports metrics");
    assert_eq!(filter["events_processed"], 20);
    assert_eq!(filter["parallelism"], 2);
    assert!(filter["processing_time_ms"].as_f64().unwrap() >= 0.0);
}

fn write_input(dir: &std::path::Path, n: u64, bad: &[(u64, &str)]) -> std::path::PathBuf {
    let path = dir.join("in.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..n {
        match bad.iter().find(|(at, _)| *at == i) {
            Some((_, line)) => writeln!(f, "{line}").unwrap(),
            None => writeln!(
                f,
                r#"{{"event_id":"e{i}","timestamp":1700000000.{:03},"event_type":"transaction","data":{{"user_id":"user_{}","amount":{}}}}}"#,
                i % 1000,
                i % 7,
                50 + 25 * (i % 20)
            )
            .unwrap(),
        }
    }
    f.flush().unwrap();
    path
}

#[test]
fn file_in_file_out_reads_splits_in_parallel() {
    let dir = tempfile::tempdir().unwrap();
    // ~2.4 MB: more than one split, so both readers work on the one file.
    let input = write_input(dir.path(), 20_000, &[]);
    let output = dir.path().join("out.jsonl");
    let out = streamcore(&[
        "demo",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "-p",
        "2",
        "--metrics-json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(m["events_ingested"], 20_000);
    let events = lines(&std::fs::read(&output).unwrap());
    assert_eq!(events.len(), 17_000);
    let mut ids: Vec<String> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 17_000, "every event exactly once");
}

#[test]
fn bad_line_fails_the_job_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(
        dir.path(),
        10,
        &[(
            2,
            r#"{"event_id":"x","timestamp":"yesterday","event_type":"t","data":{}}"#,
        )],
    );
    let out = streamcore(&["demo", "--input", input.to_str().unwrap(), "-p", "1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in.jsonl line 3"), "{stderr}");
    assert!(stderr.contains("field `timestamp`"), "{stderr}");
}

#[test]
fn a_field_of_the_wrong_type_fails_naming_the_event_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(
        dir.path(),
        10,
        &[(
            6,
            r#"{"event_id":"e6","timestamp":6,"event_type":"transaction","data":{"amount":"120"}}"#,
        )],
    );
    let out = streamcore(&["demo", "--input", input.to_str().unwrap(), "-p", "1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "operator `high_value_filter` failed on event `e6` from {} line 7 (byte offset ",
            input.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("field `data.amount`: expected a number, got string"),
        "{stderr}"
    );
}

#[test]
fn iso_8601_timestamps_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(
        dir.path(),
        3,
        &[(
            1,
            r#"{"event_id":"iso","timestamp":"2026-12-05T10:00:00.250Z","event_type":"transaction","data":{"amount":500}}"#,
        )],
    );
    let out = streamcore(&["demo", "--input", input.to_str().unwrap(), "-p", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(r#""event_id":"enriched_iso","timestamp":1796464800.25"#),
        "{stdout}"
    );
}

#[test]
fn dead_letter_policy_keeps_going_and_records_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(
        dir.path(),
        40,
        &[
            (5, "{not json"),
            (
                9,
                r#"{"event_id":"s","timestamp":1,"event_type":"t","data":{"amount":"a lot"}}"#,
            ),
        ],
    );
    let output = dir.path().join("out.jsonl");
    let dead = dir.path().join("dead.jsonl");
    let out = streamcore(&[
        "demo",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--error-policy",
        "dead-letter",
        "--dead-letter",
        dead.to_str().unwrap(),
        "--metrics-json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(m["events_failed"], 2);
    assert_eq!(m["events_dead_lettered"], 2);
    assert_eq!(
        m["events_ingested"], 39,
        "the unparsable line is not an event"
    );
    let letters = lines(&std::fs::read(&dead).unwrap());
    assert_eq!(letters.len(), 2);
    let parse = letters
        .iter()
        .find(|l| l["raw"] == "{not json")
        .expect("raw line kept");
    assert!(
        parse["origin"].as_str().unwrap().contains("line 6"),
        "{parse}"
    );
    let amount = letters
        .iter()
        .find(|l| l["origin"].as_str().unwrap().contains("high_value_filter"))
        .expect("the filter's rejection");
    assert!(
        amount["reason"].as_str().unwrap().contains("data.amount"),
        "{amount}"
    );
    assert!(amount["raw"].as_str().unwrap().contains("a lot"));
}

#[test]
fn stdin_input_works() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamcore"))
        .args(["demo", "--input", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for (i, amount) in [(1, 99), (2, 101), (3, 500)] {
        writeln!(
            stdin,
            r#"{{"event_id":"e{i}","timestamp":{i},"event_type":"t","data":{{"amount":{amount}}}}}"#
        )
        .unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<String> = lines(&out.stdout)
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["enriched_e2", "enriched_e3"]);
}

#[test]
fn help_documents_every_flag() {
    let out = streamcore(&["demo", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--events",
        "--parallelism",
        "--seed",
        "--rate",
        "--users",
        "--input",
        "--output",
        "--error-policy",
        "--dead-letter",
        "--metrics-json",
        "--batch-size",
        "--windows",
        "--interval-ms",
        "--disorder-ms",
        "--windows-output",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    let out = streamcore(&["patterns", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["fraud", "login", "enrichment", "--events", "--parallelism"] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
    let out = streamcore(&["bench", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--events", "--runs", "--only", "--json"] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn bench_runs_and_checks_its_outputs() {
    let out = streamcore(&[
        "bench",
        "--events",
        "20000",
        "--runs",
        "1",
        "--json",
        "--state-keys",
        "5000",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["scenarios"].as_array().unwrap().len(), 13);
    let state = &r["checkpoint_state"];
    assert_eq!(state["keys"], 5000);
    assert!(state["snapshot_bytes"].as_u64().unwrap() > 5000, "{state}");
}

/// The window results of a `--windows` run, without the enriched events, sorted.
fn window_results(p: &str) -> Vec<Value> {
    let out = streamcore(&[
        "demo",
        "--windows",
        "--events",
        "20000",
        "--seed",
        "9",
        "--users",
        "300",
        "--disorder-ms",
        "400",
        "-p",
        p,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut windows: Vec<Value> = lines(&out.stdout)
        .into_iter()
        .filter(|v| v.get("window").is_some())
        .collect();
    windows.sort_by_key(|w| w.to_string());
    windows
}

#[test]
fn windows_demo_counts_every_event_once_per_window_kind_at_any_parallelism() {
    let one = window_results("1");
    for kind in ["tumbling_10s", "session_30s"] {
        let counted: u64 = one
            .iter()
            .filter(|w| w["window"] == kind)
            .map(|w| w["count"].as_u64().unwrap())
            .sum();
        assert_eq!(
            counted, 20_000,
            "{kind}: no event lost or late with disorder within the bound"
        );
    }
    // Sessions of one user never overlap and are at least 30 s apart.
    let mut sessions: Vec<(String, f64, f64)> = one
        .iter()
        .filter(|w| w["window"] == "session_30s")
        .map(|w| {
            (
                w["user_id"].as_str().unwrap().to_string(),
                w["start"].as_f64().unwrap(),
                w["end"].as_f64().unwrap(),
            )
        })
        .collect();
    sessions.sort_by(|a, b| a.partial_cmp(b).unwrap());
    for pair in sessions.windows(2) {
        if pair[0].0 == pair[1].0 {
            assert!(pair[1].1 > pair[0].2, "{pair:?}");
        }
    }
    assert_eq!(one, window_results("2"));
}

#[test]
fn patterns_fraud_prints_alerts() {
    let out = streamcore(&["patterns", "fraud", "--events", "200000", "-p", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts = lines(&out.stdout);
    assert_eq!(alerts.len(), 50);
    assert!(alerts
        .iter()
        .all(|a| a["amounts"].as_array().unwrap().len() == 3));
}
