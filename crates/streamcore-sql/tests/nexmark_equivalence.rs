//! The oracle: each Nexmark query the SQL planner supports, run as written in the Nexmark
//! benchmark's Flink SQL (`tests/nexmark/`: the `datagen` DDL, the views, the query; only the
//! generator's placeholders filled in), gives the same final table as the hand-written typed
//! query of `streamcore_nexmark::queries` on the same generator configuration — whose results
//! were checked against Flink's.
//!
//! Both sides are compared as CSV lines (the typed rows through serde, the SQL rows through
//! the filesystem sink's CSV encoding), sorted.

use std::hash::Hash;
use std::path::Path;
use streamcore::changelog::Change;
use streamcore::sink::Collected;
use streamcore::{Job, JobConfig, Stream};
use streamcore_nexmark::queries::{apply_changelog, build_query, QueryRow, RowSink};
use streamcore_sql::connectors::nexmark_config;
use streamcore_sql::format::CsvRow;
use streamcore_sql::Session;

fn csv_line<T: serde::Serialize>(row: &T) -> String {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.serialize(row).unwrap();
    String::from_utf8(w.into_inner().unwrap())
        .unwrap()
        .trim_end()
        .to_string()
}

#[derive(Default)]
struct Collect {
    append: Option<Collected<String>>,
    changes: Option<Collected<Change<String>>>,
}

impl RowSink for Collect {
    fn attach<R: QueryRow>(&mut self, rows: Stream<R>) {
        self.append = Some(rows.map(|r| csv_line(&r)).collect());
    }

    fn attach_changelog<R: QueryRow + Hash + Eq>(&mut self, changes: Stream<Change<R>>) {
        self.changes = Some(changes.map(|c| c.map(|r| csv_line(&r))).collect());
    }
}

fn corpus(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/nexmark")
            .join(name),
    )
    .unwrap()
}

const EVENTS: u64 = 60_000;

/// Runs query `q` as SQL and as the typed query; asserts equal final tables.
fn check(q: &str) {
    let mut session = Session::new();
    let ddl = corpus("ddl_gen.sql")
        .replace("${TPS}", "10000")
        .replace("${EVENTS_NUM}", &EVENTS.to_string())
        .replace("${PERSON_PROPORTION}", "1")
        .replace("${AUCTION_PROPORTION}", "3")
        .replace("${BID_PROPORTION}", "46");
    session.execute_script(&ddl).unwrap();
    session.execute_script(&corpus("ddl_views.sql")).unwrap();
    // q13's side table: nexmark's side input file, rows `i,i` for i in 0..10000.
    let side = tempfile::tempdir().unwrap();
    let side_file = side.path().join("data/side_input.txt");
    std::fs::create_dir_all(side_file.parent().unwrap()).unwrap();
    std::fs::write(
        &side_file,
        (0..10_000)
            .map(|i| format!("{i},{i}\n"))
            .collect::<String>(),
    )
    .unwrap();
    session
        .execute_script(
            &corpus(&format!("{q}.sql"))
                .replace("${FLINK_HOME}", &side.path().display().to_string()),
        )
        .unwrap_or_else(|e| panic!("{q}: {e}"));
    let insert = session.pending.pop().expect("the query file has an INSERT");
    // q18 keeps, of a key's bids in one millisecond, the last to arrive, and q9 and q19 rank bids of
    // equal price in arrival order (as Flink does): at parallelism 1 both plans see the same
    // arrival order.
    let p = if matches!(q, "q9" | "q18" | "q19") {
        1
    } else {
        2
    };
    let config = JobConfig::default().parallelism(p);
    let sql: Vec<String> = {
        let changes = session.collect(&insert.plan, config.clone()).unwrap();
        let mut rows: Vec<String> =
            apply_changelog(changes.into_iter().map(|c| c.map(|r| csv_line(&CsvRow(r)))));
        rows.sort();
        rows
    };

    let generator =
        match streamcore_sql::catalog::Relation::Table(session.catalog.table("datagen").unwrap()) {
            streamcore_sql::catalog::Relation::Table(t) => nexmark_config(&t).unwrap(),
            _ => unreachable!(),
        };
    let mut job = Job::new(q);
    let mut sink = Collect::default();
    build_query(q, &mut job, &generator, &mut sink).unwrap();
    job.run(config).unwrap();
    let mut typed: Vec<String> = match (sink.append, sink.changes) {
        (Some(rows), _) => rows.take(),
        (_, Some(changes)) => apply_changelog(changes.take()),
        _ => unreachable!(),
    };
    if q == "q7" {
        // The typed q7 fixes the benchmark's column mix-up (its SELECT gives price, bidder
        // into a sink declared bidder, price; Flink writes by position): swap back.
        typed = typed
            .into_iter()
            .map(|line| {
                let mut f: Vec<&str> = line.splitn(4, ',').collect();
                f.swap(1, 2);
                f.join(",")
            })
            .collect();
    }
    typed.sort();
    assert!(!typed.is_empty(), "{q}: the typed query gave no rows");
    if sql != typed {
        let first = sql
            .iter()
            .zip(&typed)
            .position(|(a, b)| a != b)
            .unwrap_or(sql.len().min(typed.len()));
        panic!(
            "{q}: SQL gave {} rows, the typed query {}; first difference at sorted row {first}:\n  sql:   {:?}\n  typed: {:?}",
            sql.len(),
            typed.len(),
            sql.get(first),
            typed.get(first)
        );
    }
}

macro_rules! queries {
    ($($q:ident),*) => {
        $(
            #[test]
            fn $q() {
                check(stringify!($q));
            }
        )*
    };
}

queries!(q0, q1, q2, q3, q4, q5, q7, q8, q9, q11, q13, q14, q15, q16, q17, q18, q19, q20, q21, q22);

/// The queries not planned yet fail at planning, naming what is missing (never a wrong
/// answer): q6 (as written, its WHERE reads the `rownum` alias of its own SELECT, which SQL
/// does not allow; Flink cannot run q6 either), q10 (a partitioned filesystem sink) and q12 (a
/// processing-time window).
#[test]
fn unsupported_queries_say_why() {
    for (q, want) in [
        ("q6", "unknown column `rownum`"),
        ("q10", "PARTITIONED BY"),
        ("q12", "`p_time` is not a time attribute"),
    ] {
        let mut session = Session::new();
        let ddl = corpus("ddl_gen.sql")
            .replace("${TPS}", "10000")
            .replace("${EVENTS_NUM}", "1000")
            .replace("${PERSON_PROPORTION}", "1")
            .replace("${AUCTION_PROPORTION}", "3")
            .replace("${BID_PROPORTION}", "46");
        session.execute_script(&ddl).unwrap();
        session.execute_script(&corpus("ddl_views.sql")).unwrap();
        let result = session
            .execute_script(
                &corpus(&format!("{q}.sql"))
                    .replace("${NEXMARK_DIR}", "/tmp")
                    .replace("${SUBMIT_TIME}", "0"),
            )
            .and_then(|_| {
                let insert = session.pending.pop().expect("an INSERT");
                session.collect(&insert.plan, JobConfig::default().parallelism(1))
            });
        let Err(err) = result.map(|rows| rows.len()) else {
            panic!("{q} ran");
        };
        let err = err.to_string();
        assert!(err.contains(want), "{q}: {err}");
    }
}
