//! `streamcore nexmark --changelog`: the raw insert/delete stream of a query, replayed, gives
//! the same table as `--output` (updating and append-only queries, from the generator and from
//! a file), and the run reports CPU time and peak memory.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

fn streamcore(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_streamcore"))
        .arg("nexmark")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The `--output` table: header and rows (each line after the header; the same CSV writer
/// settings write both files, so rows compare as text).
fn table(path: &Path) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().to_string();
    let mut rows: Vec<String> = lines.map(str::to_string).collect();
    rows.sort();
    (header, rows)
}

/// Replays a changelog file: header without `op`, the rows left (a multiset), and how many
/// changes of each kind it held.
fn replay(path: &Path) -> (String, Vec<String>, usize, usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let header = header
        .strip_prefix("op,")
        .unwrap_or_else(|| panic!("header without op: {header}"));
    let mut rows: HashMap<&str, i64> = HashMap::new();
    let (mut inserts, mut deletes) = (0, 0);
    for line in lines {
        let (op, row) = line.split_once(',').unwrap();
        let n = rows.entry(row).or_default();
        match op {
            "+" => {
                inserts += 1;
                *n += 1;
            }
            "-" => {
                deletes += 1;
                *n -= 1;
            }
            other => panic!("unknown op {other:?} in {line}"),
        }
    }
    let mut table = Vec::new();
    for (row, n) in rows {
        assert!(n >= 0, "{row} deleted more often than inserted");
        table.extend(std::iter::repeat_n(row.to_string(), n as usize));
    }
    table.sort();
    (header.to_string(), table, inserts, deletes)
}

fn check(query: &str, source: &[&str], dir: &Path, tag: &str) -> (usize, usize, String) {
    let output = dir.join(format!("{query}-{tag}.csv"));
    let changelog = dir.join(format!("{query}-{tag}.changelog.csv"));
    let mut args = vec!["--query", query];
    args.extend_from_slice(source);
    args.extend([
        "--output",
        output.to_str().unwrap(),
        "--changelog",
        changelog.to_str().unwrap(),
    ]);
    let out = streamcore(&args);
    let (header, rows) = table(&output);
    let (cl_header, replayed, inserts, deletes) = replay(&changelog);
    assert_eq!(cl_header, header, "{query} {tag}");
    assert_eq!(
        replayed, rows,
        "{query} {tag}: replayed changelog vs --output"
    );
    assert!(!rows.is_empty(), "{query} {tag}");
    (
        inserts,
        deletes,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn replaying_the_changelog_gives_the_output_table() {
    let dir = tempfile::tempdir().unwrap();
    let generator = ["--events", "20000", "--rate", "1000"];
    // Updating queries: a join with top-1, a rolling aggregate, keep-last, top-10 with ranks.
    for q in ["q4", "q9", "q17", "q18", "q19"] {
        let (inserts, deletes, _) = check(q, &generator, dir.path(), "gen");
        assert!(deletes > 0, "{q}: an updating query retracts rows");
        assert!(inserts > deletes, "{q}");
    }
    // Append-only: every row is an insert.
    for q in ["q1", "q5"] {
        let (_, deletes, _) = check(q, &generator, dir.path(), "gen");
        assert_eq!(deletes, 0, "{q}");
    }
    // From a file, read in parallel splits.
    let events = dir.path().join("events.jsonl");
    streamcore(&[
        "--generate",
        events.to_str().unwrap(),
        "--events",
        "20000",
        "--rate",
        "1000",
    ]);
    let file = ["--input", events.to_str().unwrap(), "--parallelism", "2"];
    for q in ["q4", "q18"] {
        check(q, &file, dir.path(), "file");
    }
}

#[test]
fn the_run_reports_cpu_time_and_peak_memory() {
    let out = streamcore(&["--query", "q2", "--events", "20000"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("events/s"), "{stderr}");
    if Path::new("/proc/self/status").exists() {
        let line = stderr
            .lines()
            .find(|l| l.contains("peak memory: "))
            .unwrap_or_else(|| panic!("no peak memory in {stderr}"));
        assert!(line.contains("events per CPU-second"), "{line}");
        let mb: u64 = line
            .rsplit("peak memory: ")
            .next()
            .and_then(|m| m.strip_suffix(" MB"))
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(mb > 0, "{line}");
        assert!(line.contains("cpu time "), "{line}");
    }
}
