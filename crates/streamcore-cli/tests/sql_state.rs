//! Job options set by a SQL script take effect. `SET 'state.backend' = 'lsm'`: the same
//! script (a group aggregate, a HOP window aggregate and an interval join over the generator,
//! their final tables written as CSV in batch mode) gives the same files on the LSM backend
//! with a tiny budget as in memory, and its metrics show the state went through the tree
//! (evictions). `SET 'execution.checkpointing.dir'` (with an interval and a retention)
//! checkpoints the job there: its exactly-once file sink commits the rows of a run without
//! checkpoints, and only the retained checkpoints (and the final one) stay.

mod common;

use common::committed_sorted;
use serde_json::Value;
use std::process::Command;

/// Runs `streamcore sql -p 2 --metrics-json -e script`; its summary.
fn run_sql(script: &str) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_streamcore"))
        .args(["sql", "-p", "2", "--metrics-json", "-e", script])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // Nothing but the summary on stderr: no warnings either (fjall's tables once warned at
    // the end of every run that their files were gone).
    assert!(stderr.trim_start().starts_with('{'), "{stderr}");
    serde_json::from_str(stderr.trim()).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

/// Runs the script with `settings` first; returns the three tables' sorted lines and the
/// summed `state_cache_evictions` of the run.
fn run(settings: &str, dir: &std::path::Path) -> (Vec<Vec<String>>, u64) {
    let path = |name: &str| dir.join(name).display().to_string();
    let script = format!(
        "{settings}
         SET 'execution.runtime-mode' = 'batch';
         CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, dateTime TIMESTAMP(3),
           WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND)
         WITH ('connector' = 'nexmark', 'kind' = 'bid', 'events.num' = '40000');
         CREATE TABLE totals (bidder BIGINT, n BIGINT, total BIGINT)
         WITH ('connector' = 'filesystem', 'path' = '{totals}', 'format' = 'csv');
         CREATE TABLE hops (auction BIGINT, window_end TIMESTAMP(3), n BIGINT)
         WITH ('connector' = 'filesystem', 'path' = '{hops}', 'format' = 'csv');
         CREATE TABLE pairs (auction BIGINT, a BIGINT, b BIGINT)
         WITH ('connector' = 'filesystem', 'path' = '{pairs}', 'format' = 'csv');
         INSERT INTO totals SELECT bidder, COUNT(*), SUM(price) FROM bid GROUP BY bidder;
         INSERT INTO hops SELECT auction, window_end, COUNT(*)
           FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
           GROUP BY auction, window_start, window_end;
         INSERT INTO pairs SELECT x.auction, x.price, y.price FROM bid x JOIN bid y
           ON x.auction = y.auction AND x.bidder = y.bidder
           AND x.dateTime BETWEEN y.dateTime AND y.dateTime + INTERVAL '1' SECOND;",
        totals = path("totals"),
        hops = path("hops"),
        pairs = path("pairs"),
    );
    let summary = run_sql(&script);
    let evictions = summary["operators"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["metrics"]["state_cache_evictions"].as_f64())
        .sum::<f64>() as u64;
    let tables = ["totals", "hops", "pairs"]
        .iter()
        .map(|t| committed_sorted(&dir.join(t)))
        .collect();
    (tables, evictions)
}

#[test]
fn set_state_backend_lsm_runs_the_script_on_the_tree_with_the_same_results() {
    let (memory_dir, lsm_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (memory, memory_evictions) = run("", memory_dir.path());
    let (lsm, lsm_evictions) = run(
        "SET 'state.backend' = 'lsm'; SET 'state.memory-budget' = '64kb';",
        lsm_dir.path(),
    );
    for (name, rows) in ["totals", "hops", "pairs"].iter().zip(&memory) {
        assert!(rows.len() > 100, "{name}: {} rows", rows.len());
    }
    assert_eq!(memory_evictions, 0);
    assert!(lsm_evictions > 0, "nothing was evicted to the tree");
    for ((name, m), l) in ["totals", "hops", "pairs"].iter().zip(&memory).zip(&lsm) {
        assert!(
            m == l,
            "{name}: the LSM backend's table differs from memory's"
        );
    }
}

#[test]
fn set_checkpoint_options_checkpoint_the_job_into_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let run = |sets: &str, out: &str| -> Value {
        let script = format!(
            "{sets}
             CREATE TABLE bid (auction BIGINT, price BIGINT)
             WITH ('connector' = 'nexmark', 'kind' = 'bid', 'events.num' = '20000',
                   'first-event.rate' = '40000', 'rate-limited' = 'true');
             CREATE TABLE out (auction BIGINT, price BIGINT)
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
             INSERT INTO out SELECT auction, price FROM bid;",
            dir.path().join(out).display()
        );
        run_sql(&script)
    };
    let checkpoints = dir.path().join("checkpoints");
    let summary = run(
        &format!(
            "SET 'execution.checkpointing.dir' = '{}';
             SET 'execution.checkpointing.interval' = '20 ms';
             SET 'execution.checkpointing.num-retained' = '2';",
            checkpoints.display()
        ),
        "checkpointed",
    );
    let completed = summary["checkpoints"]["completed"].as_u64().unwrap_or(0);
    assert!(completed >= 3, "{completed} checkpoints: {summary}");
    let kept = std::fs::read_dir(&checkpoints)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("chk-")
        })
        .count();
    // The two retained periodic checkpoints, and the final one the finished job took.
    assert_eq!(kept, 3, "{kept} checkpoints kept of {completed}");
    let without = run("", "plain");
    assert!(without["checkpoints"].is_null(), "{without}");
    let rows = committed_sorted(&dir.path().join("checkpointed"));
    assert!(rows.len() > 10_000, "{} rows", rows.len());
    assert_eq!(rows, committed_sorted(&dir.path().join("plain")));
}
