//! A filter and a projection right above a scan of a file (or of the generator) are pushed
//! into the scan's reader: one row built per kept line, none for a filtered one. What must
//! not change: the results, the metrics (filtered lines are counted as read and filtered, by
//! the source) and the watermark (covered in the core's `windows_edge_cases`). A table read
//! twice in a job keeps one shared reader and its filters as operators when both reads would
//! build the same rows, and so does a file read with other columns (its reader builds the
//! columns both read); reads of the generator that would not (other columns, another event
//! kind) each take their own.

use streamcore::{Job, JobConfig, JobSummary};
use streamcore_sql::Session;

/// A JSON file of six rows `k` 1..=6, `v` = "v{k}", one second apart.
fn input(dir: &std::path::Path) -> String {
    let path = dir.join("in.jsonl");
    let lines: String = (1..=6)
        .map(|k| format!("{{\"k\": {k}, \"v\": \"v{k}\", \"ts\": \"2026-12-06 10:00:0{k}\"}}\n"))
        .collect();
    std::fs::write(&path, lines).unwrap();
    format!(
        "CREATE TABLE t (k BIGINT, v VARCHAR, ts TIMESTAMP(3), w AS UPPER(v),
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');",
        path.display()
    )
}

fn sink(dir: &std::path::Path, name: &str) -> String {
    format!(
        "CREATE TABLE {name} (a VARCHAR, b BIGINT)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');",
        dir.join(name).display()
    )
}

/// Runs the script's `INSERT`s as one job at parallelism 1.
fn run(script: &str) -> JobSummary {
    let mut session = Session::new();
    session.execute_script(script).unwrap();
    let mut job = Job::new("pushdown");
    session.plan_inserts(&mut job).unwrap();
    job.run(JobConfig::default().parallelism(1)).unwrap()
}

/// The rows of a CSV sink's part files, sorted.
fn rows(dir: &std::path::Path) -> Vec<String> {
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("part-")
        {
            rows.extend(
                std::fs::read_to_string(path)
                    .unwrap()
                    .lines()
                    .map(String::from),
            );
        }
    }
    rows.sort();
    rows
}

/// The rows the sink `counts` took.
fn sunk(summary: &JobSummary) -> u64 {
    summary
        .operators
        .iter()
        .filter(|o| o.name.starts_with("sink:counts"))
        .map(|o| o.events_processed)
        .sum()
}

fn operator_names(summary: &JobSummary) -> Vec<&str> {
    summary.operators.iter().map(|o| o.name.as_str()).collect()
}

#[test]
fn a_where_and_a_projection_over_a_file_run_in_its_reader() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "{}{}INSERT INTO out SELECT w, k * 10 FROM t WHERE k > 2 AND v <> 'v5';",
        input(dir.path()),
        sink(dir.path(), "out")
    );
    let summary = run(&script);
    assert_eq!(rows(&dir.path().join("out")), ["V3,30", "V4,40", "V6,60"]);
    assert_eq!(summary.events_ingested, 6);
    assert_eq!(summary.events_filtered, 3);
    assert_eq!(summary.events_emitted, 3);
    let names = operator_names(&summary);
    assert!(
        !names.iter().any(|n| n.starts_with("Calc")),
        "the filter and projection run in the reader: {names:?}"
    );
}

#[test]
fn a_table_read_twice_keeps_one_reader_that_filters_for_both() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "{}{}{}INSERT INTO low SELECT v, k FROM t WHERE k <= 2;
         INSERT INTO high SELECT v, k FROM t WHERE k >= 5;",
        input(dir.path()),
        sink(dir.path(), "low"),
        sink(dir.path(), "high")
    );
    let summary = run(&script);
    assert_eq!(rows(&dir.path().join("low")), ["v1,1", "v2,2"]);
    assert_eq!(rows(&dir.path().join("high")), ["v5,5", "v6,6"]);
    // One reader (the file read once) that runs both filters and hands each scan its rows:
    // no filter operator; the lines no scan keeps (k = 3, 4) are filtered at the source.
    assert_eq!(summary.events_ingested, 6);
    let names = operator_names(&summary);
    assert!(!names.iter().any(|n| n.starts_with("Calc")), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| **n == "FanOut").count(),
        1,
        "{names:?}"
    );
    assert_eq!(summary.events_filtered, 2);
}

#[test]
fn the_scans_of_a_shared_reader_feed_any_sink() {
    // The scans after the first come out of the shared reader's side outputs: print sinks
    // (and every other sink) take them.
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "{}CREATE TABLE lo (v VARCHAR, k BIGINT) WITH ('connector' = 'print');
         CREATE TABLE hi (v VARCHAR, k BIGINT) WITH ('connector' = 'print');
         CREATE TABLE mid (v VARCHAR, k BIGINT) WITH ('connector' = 'blackhole');
         INSERT INTO lo SELECT v, k FROM t WHERE k <= 2;
         INSERT INTO hi SELECT v, k FROM t WHERE k > 4;
         INSERT INTO mid SELECT w, k FROM t WHERE k = 3;",
        input(dir.path())
    );
    let summary = run(&script);
    let sunk = |name: &str| {
        summary
            .operators
            .iter()
            .filter(|o| o.name.starts_with(&format!("sink:{name}#")))
            .map(|o| o.events_processed)
            .sum::<u64>()
    };
    let names: Vec<(&str, u64)> = summary
        .operators
        .iter()
        .map(|o| (o.name.as_str(), o.events_processed))
        .collect();
    assert_eq!(
        [sunk("lo"), sunk("hi"), sunk("mid")],
        [2, 2, 1],
        "{names:?}"
    );
    // Six lines read once; line 4 (k = 4) is the one no scan keeps.
    assert_eq!(summary.events_ingested, 6);
    assert_eq!(summary.events_filtered, 1);
}

#[test]
fn a_file_read_with_other_columns_shares_a_reader_and_generator_kinds_do_not() {
    // Two reads of a file with different columns share one reader (the lines decoded once,
    // with the columns either reads), which builds each scan's rows with its filter and
    // projection; auctions and bids of the generator are two readers (each makes events of
    // one kind), each taking the Calc above it.
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "{}{}{}{}
         CREATE TABLE ev (event_type INT, auction ROW<id BIGINT, seller BIGINT>,
           bid ROW<auction BIGINT, price BIGINT>)
         WITH ('connector' = 'nexmark', 'events.num' = '1000');
         CREATE TABLE counts (a VARCHAR, b BIGINT)
           WITH ('connector' = 'blackhole');
         INSERT INTO low SELECT v, k FROM t WHERE k <= 2;
         INSERT INTO high SELECT w, k FROM t WHERE k >= 5;
         INSERT INTO counts SELECT 'a', a.auction.id FROM ev a WHERE event_type = 1
           UNION ALL SELECT 'b', b.bid.price FROM ev b WHERE event_type = 2;",
        input(dir.path()),
        sink(dir.path(), "low"),
        sink(dir.path(), "high"),
        ""
    );
    let summary = run(&script);
    assert_eq!(rows(&dir.path().join("low")), ["v1,1", "v2,2"]);
    assert_eq!(rows(&dir.path().join("high")), ["V5,5", "V6,6"]);
    let names = operator_names(&summary);
    assert!(
        !names.iter().any(|n| n.starts_with("Calc")),
        "every filter runs in a reader: {names:?}"
    );
    // The file read once (6 lines, the 2 that neither scan keeps filtered); the generator
    // twice, each reader counting the events of its kind: 60 auctions and 920 bids of 1,000.
    assert_eq!(summary.events_ingested, 6 + 60 + 920);
    assert_eq!(summary.events_filtered, 2);
    assert_eq!(
        summary
            .operators
            .iter()
            .filter(|o| o.name.starts_with("sink:counts"))
            .map(|o| o.events_processed)
            .sum::<u64>(),
        60 + 920
    );
}

#[test]
fn the_generator_read_twice_for_one_event_kind_shares_a_reader_that_shapes_each_scan() {
    // Two scans of the bids (as q7's) share one generator, which shapes each scan's rows with
    // its own filter (docs/benchmarks.md, fourteenth round); the rows are those of the scans
    // run alone, and the bids are made once.
    let ddl = "CREATE TABLE ev (event_type INT, bid ROW<auction BIGINT, price BIGINT>)
         WITH ('connector' = 'nexmark', 'events.num' = '1000');
         CREATE TABLE counts (a VARCHAR, b BIGINT) WITH ('connector' = 'blackhole');";
    let all = "SELECT 'a', b.bid.auction FROM ev b WHERE event_type = 2";
    let dear = "SELECT 'p', c.bid.price FROM ev c WHERE event_type = 2 AND c.bid.price > 100000";
    let both = run(&format!("{ddl} INSERT INTO counts {all} UNION ALL {dear};"));
    let alone = [all, dear].map(|q| sunk(&run(&format!("{ddl} INSERT INTO counts {q};"))));
    assert_eq!(alone[0], 920);
    assert!(alone[1] > 0 && alone[1] < 920, "{alone:?}");
    assert_eq!(sunk(&both), alone[0] + alone[1]);
    assert_eq!(both.events_ingested, 920, "one reader makes the bids");
    // A bid neither scan keeps (none: the first keeps all) is not counted as filtered.
    assert_eq!(both.events_filtered, 0);
    let names = operator_names(&both);
    assert!(!names.iter().any(|n| n.starts_with("Calc")), "{names:?}");
    assert!(names.contains(&"FanOut"), "{names:?}");
}

#[test]
fn the_generator_read_twice_for_every_event_kind_shapes_each_event_for_the_scans_of_its_kind() {
    // Neither filter picks one kind: one reader makes every event, and each event is shaped
    // for the scans with `event_type` folded to its kind (the computed `t` too).
    let ddl = "CREATE TABLE ev (event_type INT, person ROW<id BIGINT>, auction ROW<id BIGINT>,
           bid ROW<auction BIGINT, price BIGINT>,
           t AS CASE WHEN event_type = 2 THEN bid.price ELSE -1 END)
         WITH ('connector' = 'nexmark', 'events.num' = '1000');
         CREATE TABLE counts (a VARCHAR, b BIGINT) WITH ('connector' = 'blackhole');";
    let early = "SELECT 'e', COALESCE(e.person.id, e.auction.id) FROM ev e WHERE event_type < 2";
    let dear = "SELECT 'd', d.t FROM ev d WHERE d.t > 100000 OR d.event_type = 0";
    let both = run(&format!(
        "{ddl} INSERT INTO counts {early} UNION ALL {dear};"
    ));
    let alone = [early, dear].map(|q| sunk(&run(&format!("{ddl} INSERT INTO counts {q};"))));
    assert_eq!(alone[0], 20 + 60, "persons and auctions");
    assert!(alone[1] > 20 && alone[1] < 20 + 920, "{alone:?}");
    assert_eq!(sunk(&both), alone[0] + alone[1]);
    assert_eq!(both.events_ingested, 1000, "one reader makes every event");
    assert!(operator_names(&both).contains(&"FanOut"));
}

#[test]
fn a_file_that_skips_bad_lines_keeps_a_reader_per_scan() {
    // Line 3's `k` is no number: the scan of `v` alone keeps it, the scan of `k` skips it. A
    // reader shared by both would decode `k` for both and skip the line for both.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    let lines: String = (1..=6)
        .map(|k| {
            let key = if k == 3 {
                "\"abc\"".to_string()
            } else {
                k.to_string()
            };
            format!("{{\"k\": {key}, \"v\": \"v{k}\", \"ts\": \"2026-12-06 10:00:0{k}\"}}\n")
        })
        .collect();
    std::fs::write(&path, lines).unwrap();
    let script = format!(
        "CREATE TABLE t (k BIGINT, v VARCHAR, ts TIMESTAMP(3),
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json',
               'json.ignore-parse-errors' = 'true');
         {}{}
         INSERT INTO a SELECT v, 0 FROM t;
         INSERT INTO b SELECT 'k', k FROM t;",
        path.display(),
        sink(dir.path(), "a"),
        sink(dir.path(), "b")
    );
    run(&script);
    assert_eq!(
        rows(&dir.path().join("a")),
        ["v1,0", "v2,0", "v3,0", "v4,0", "v5,0", "v6,0"]
    );
    assert_eq!(rows(&dir.path().join("b")).len(), 5);
}
