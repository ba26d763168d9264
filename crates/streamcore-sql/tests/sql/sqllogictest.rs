//! Runs the SQL test files in `tests/slt/` (the sqllogictest format DataFusion and RisingWave
//! keep their SQL tests in):
//!
//! ```text
//! statement ok                  -- the statement must succeed (DDL, SET, an INSERT: it runs)
//! CREATE TABLE …
//!
//! statement error unknown column `pricee`   -- must fail with a message containing this
//! SELECT pricee FROM bid
//!
//! query rowsort                 -- rows of the final table (changes applied), sorted
//! SELECT …
//! ----
//! 1 abc 2026-12-05 14:00:00.000
//! ```
//!
//! `query changelog` expects the changes themselves (`+I 1 abc`, `-U …`, `+U …`, `-D …`) in
//! order, at parallelism 1; `query rowsort` runs at parallelism 2 (exchanges included) and
//! compares sorted rows; `query` runs at parallelism 1 and compares rows in order. `${TMP}`
//! in a statement is a temporary directory of the file. Values print as SQL text, `NULL`
//! for null, `(empty)` for an empty string.

use std::path::{Path, PathBuf};
use streamcore::changelog::{apply_to, Change};
use streamcore::row::{Row, Scalar};
use streamcore::{Job, JobConfig};
use streamcore_sql::{Outcome, Session};

#[derive(Debug)]
enum Record {
    Statement {
        line: usize,
        sql: String,
        error: Option<String>,
    },
    Query {
        line: usize,
        sql: String,
        mode: Mode,
        expected: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Ordered,
    RowSort,
    Changelog,
}

fn parse(text: &str) -> Vec<Record> {
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        if line.is_empty() || line.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i + 1;
        let header = line;
        i += 1;
        let mut sql = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() && lines[i].trim() != "----" {
            sql.push(lines[i]);
            i += 1;
        }
        let sql = sql.join("\n");
        if let Some(rest) = header.strip_prefix("statement") {
            let rest = rest.trim();
            let error = if rest == "ok" {
                None
            } else if let Some(msg) = rest.strip_prefix("error") {
                Some(msg.trim().to_string())
            } else {
                panic!("line {start}: `statement ok` or `statement error <message>`");
            };
            records.push(Record::Statement {
                line: start,
                sql,
                error,
            });
        } else if let Some(rest) = header.strip_prefix("query") {
            let mode = if rest.contains("changelog") {
                Mode::Changelog
            } else if rest.contains("rowsort") {
                Mode::RowSort
            } else {
                Mode::Ordered
            };
            let mut expected = Vec::new();
            if i < lines.len() && lines[i].trim() == "----" {
                i += 1;
                while i < lines.len() && !lines[i].trim().is_empty() {
                    expected.push(lines[i].trim_end().to_string());
                    i += 1;
                }
            }
            records.push(Record::Query {
                line: start,
                sql,
                mode,
                expected,
            });
        } else {
            panic!("line {start}: unknown record `{header}`");
        }
    }
    records
}

fn show(row: &Row) -> String {
    row.values
        .iter()
        .map(|v| match v {
            Scalar::Null => "NULL".to_string(),
            Scalar::Str(s) if s.is_empty() => "(empty)".to_string(),
            v => v.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs one statement: DDL into the session; an INSERT (queued) runs right away.
fn run_statement(session: &mut Session, sql: &str) -> Result<(), String> {
    let outcomes = session.execute_script(sql).map_err(|e| e.to_string())?;
    for o in outcomes {
        if let Outcome::Query(plan) = o {
            session
                .collect(&plan, JobConfig::default().parallelism(1))
                .map_err(|e| e.to_string())?;
        }
    }
    if !session.pending.is_empty() {
        let mut job = Job::new("slt");
        session.plan_inserts(&mut job).map_err(|e| e.to_string())?;
        let config = session
            .job_config(JobConfig::default().parallelism(2))
            .map_err(|e| e.to_string())?;
        job.run(config).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn run_query(session: &mut Session, sql: &str, mode: Mode) -> Result<Vec<String>, String> {
    let outcomes = session.execute_script(sql).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for o in outcomes {
        match o {
            Outcome::Query(plan) => {
                let p = if mode == Mode::RowSort { 2 } else { 1 };
                let changes: Vec<Change<Row>> = session
                    .collect(&plan, JobConfig::default().parallelism(p))
                    .map_err(|e| e.to_string())?;
                if mode == Mode::Changelog {
                    out.extend(
                        changes
                            .iter()
                            .map(|c| format!("{} {}", c.kind().short(), show(c.row()))),
                    );
                } else if mode == Mode::Ordered
                    && changes.iter().all(|c| matches!(c, Change::Insert(_)))
                {
                    // Append-only: the rows in arrival order.
                    out.extend(changes.iter().map(|c| show(c.row())));
                } else {
                    let mut rows: Vec<String> = apply_to(changes).iter().map(show).collect();
                    if mode == Mode::RowSort {
                        rows.sort();
                    }
                    out.extend(rows);
                }
            }
            Outcome::Explain(text) => out.extend(text.lines().map(|l| l.trim_end().to_string())),
            Outcome::Table { rows, .. } => {
                out.extend(rows.iter().map(|r| r.join(" ").trim_end().to_string()))
            }
            _ => {}
        }
    }
    Ok(out)
}

fn run_file(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let text = text.replace("${TMP}", &tmp.path().display().to_string());
    let mut session = Session::new();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let mut failures = Vec::new();
    for record in parse(&text) {
        match record {
            Record::Statement { line, sql, error } => {
                match (run_statement(&mut session, &sql), error) {
                    (Ok(()), None) => {}
                    (Err(e), Some(want)) if e.contains(&want) => {}
                    (Err(e), Some(want)) => failures.push(format!(
                        "{name}:{line}: expected an error containing\n  {want}\ngot\n  {e}"
                    )),
                    (Ok(()), Some(want)) => failures.push(format!(
                    "{name}:{line}: expected an error containing `{want}`, the statement succeeded"
                )),
                    (Err(e), None) => {
                        failures.push(format!("{name}:{line}: statement failed: {e}"))
                    }
                }
            }
            Record::Query {
                line,
                sql,
                mode,
                expected,
            } => match run_query(&mut session, &sql, mode) {
                Ok(mut got) => {
                    let mut want = expected.clone();
                    if mode == Mode::RowSort {
                        want.sort();
                        got.sort();
                    }
                    if got != want {
                        failures.push(format!(
                            "{name}:{line}: query results differ\n--- expected\n{}\n--- got\n{}",
                            want.join("\n"),
                            got.join("\n")
                        ));
                    }
                }
                Err(e) => failures.push(format!("{name}:{line}: query failed: {e}")),
            },
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn slt(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/slt")
        .join(name)
}

macro_rules! slt_tests {
    ($($test:ident => $file:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                run_file(&slt($file));
            }
        )*

        /// Every file in tests/slt has a test.
        #[test]
        fn every_file_runs() {
            let listed = [$($file),*];
            for entry in std::fs::read_dir(slt("")).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().to_string();
                assert!(listed.contains(&name.as_str()), "tests/slt/{name} has no test in tests/sql/sqllogictest.rs");
            }
        }
    };
}

slt_tests! {
    ddl => "ddl.slt",
    scalar => "scalar.slt",
    aggregate => "aggregate.slt",
    window => "window.slt",
    sinks => "sinks.slt",
    errors => "errors.slt",
    joins => "joins.slt",
    topn => "topn.slt",
    over => "over.slt",
    datagen => "datagen.slt",
    proctime => "proctime.slt",
    over_updating => "over_updating.slt",
    temporal => "temporal.slt",
    late_data => "late_data.slt",
    cte => "cte.slt",
    named_windows => "named_windows.slt",
    match_recognize => "match_recognize.slt",
    sort => "sort.slt",
    map => "map.slt",
    functions => "functions.slt",
    array => "array.slt",
    extreme => "extreme.slt",
    intervals => "intervals.slt",
}
