//! Rows built once where a projection would copy them again: a Top-N or deduplication that
//! does not select its row number builds its rows without the number's empty slot when only
//! projections read it (Nexmark q18 then has no projection operator left); an inner join
//! read by one projection of its columns emits the projected rows itself (q20). A consumer
//! that reads the whole row still gets it. A join condition that cannot fail keeps the
//! projection fused into the join; one that can fail does not (it is tested again on the
//! joined row, to name it in an error).

use streamcore::{Job, JobConfig, JobSummary};
use streamcore_sql::Session;

const SCRIPT: &str = "
SET 'execution.runtime-mode' = 'batch';
CREATE TABLE t (k BIGINT, v VARCHAR, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)
WITH ('connector' = 'values', 'data' = '1,a,2026-12-06 10:00:01
2,b,2026-12-06 10:00:02
1,c,2026-12-06 10:00:03
2,d,2026-12-06 10:00:04
3,e,2026-12-06 10:00:05
1,f,2026-12-06 10:00:06');
";

/// Runs `script` (after the table) into the CSV sinks it names; their sorted rows, and the job.
fn run(sinks: &[&str], inserts: &str) -> (Vec<Vec<String>>, JobSummary) {
    let dir = tempfile::tempdir().unwrap();
    let mut script = String::from(SCRIPT);
    for name in sinks {
        script += &format!(
            "CREATE TABLE {name} (k BIGINT, v VARCHAR, ts TIMESTAMP(3))
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');",
            dir.path().join(name).display()
        );
    }
    script += inserts;
    let mut session = Session::new();
    session.execute_script(&script).unwrap();
    let mut job = Job::new("rank-rows");
    session.plan_inserts(&mut job).unwrap();
    let summary = job.run(JobConfig::default().parallelism(1)).unwrap();
    let rows = sinks
        .iter()
        .map(|name| {
            let mut rows = Vec::new();
            for entry in std::fs::read_dir(dir.path().join(name)).unwrap() {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                rows.extend(text.lines().map(String::from));
            }
            rows.sort();
            rows
        })
        .collect();
    (rows, summary)
}

const LATEST: &str = "SELECT k, v, ts FROM (
    SELECT k, v, ts, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts DESC) AS rn FROM t
) WHERE rn = 1";

const WANT: [&str; 3] = [
    "1,f,2026-12-06 10:00:06.000",
    "2,d,2026-12-06 10:00:04.000",
    "3,e,2026-12-06 10:00:05.000",
];

#[test]
fn a_deduplication_read_by_a_projection_builds_rows_without_the_number_slot() {
    let (rows, summary) = run(&["latest"], &format!("INSERT INTO latest {LATEST};"));
    assert_eq!(rows, [WANT.to_vec()]);
    let names: Vec<&str> = summary.operators.iter().map(|o| o.name.as_str()).collect();
    assert!(
        !names.iter().any(|n| n.starts_with("Calc")),
        "the projection of the deduplicated rows is the identity: {names:?}"
    );
}

#[test]
fn the_same_deduplication_read_twice_gives_both_consumers_its_rows() {
    // One deduplication (a reused sub-plan) read by two INSERTs, one through a projection
    // that reorders nothing and one that keeps only two columns.
    let (rows, _) = run(
        &["latest", "pairs"],
        &format!(
            "INSERT INTO latest {LATEST};
             INSERT INTO pairs SELECT k, v, CAST(NULL AS TIMESTAMP(3)) FROM ({LATEST});"
        ),
    );
    assert_eq!(rows[0], WANT.to_vec());
    assert_eq!(rows[1], ["1,f,", "2,d,", "3,e,"]);
}

/// Joins `t` with two names on `k` (and `condition`) into a CSV file through a projection:
/// the rows written, sorted, and the names of the job's operators.
fn join_projected(condition: &str) -> (Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "{SCRIPT}
         CREATE TABLE names (k BIGINT, name VARCHAR)
           WITH ('connector' = 'values', 'data' = '1,one
         2,two');
         CREATE TABLE out (name VARCHAR, v VARCHAR, k BIGINT)
           WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         INSERT INTO out SELECT n.name, t.v, t.k FROM t JOIN names n ON t.k = n.k {condition};",
        dir.path().join("out").display()
    );
    let mut session = Session::new();
    session.execute_script(&script).unwrap();
    let mut job = Job::new("join-rows");
    session.plan_inserts(&mut job).unwrap();
    let summary = job.run(JobConfig::default().parallelism(1)).unwrap();
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("out")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        rows.extend(text.lines().map(String::from));
    }
    rows.sort();
    let names = summary.operators.iter().map(|o| o.name.clone()).collect();
    (rows, names)
}

#[test]
fn an_inner_join_read_by_a_projection_of_its_columns_emits_the_projected_rows() {
    let (rows, names) = join_projected("");
    assert_eq!(
        rows,
        ["one,a,1", "one,c,1", "one,f,1", "two,b,2", "two,d,2"]
    );
    assert!(
        !names.iter().any(|n| n.starts_with("Calc")),
        "the join emits the projected rows: {names:?}"
    );
    // A condition beyond the keys that cannot fail, over both sides, is tested in the join:
    // the projection still fuses into it.
    let (rows, names) = join_projected("AND (t.v < 'c' OR n.name = 'two')");
    assert_eq!(rows, ["one,a,1", "two,b,2", "two,d,2"]);
    assert!(
        !names.iter().any(|n| n.starts_with("Calc")),
        "the join tests its condition and emits the projected rows: {names:?}"
    );
    // One that can fail (a division) is tested again on the joined row, where its error
    // names that row: the projection is an operator of its own.
    let (rows, names) = join_projected("AND 10 / t.k > 3");
    assert_eq!(
        rows,
        ["one,a,1", "one,c,1", "one,f,1", "two,b,2", "two,d,2"]
    );
    assert!(
        names.iter().any(|n| n.starts_with("Calc")),
        "a condition that can fail is tested after the join: {names:?}"
    );
}
