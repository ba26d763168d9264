//! Updates without `-U` for a sink that needs none. The `blackhole` (as Flink's) needs no
//! `-U`: a group aggregate, a deduplication or a ranked Top-N feeding it through projections
//! emits each update as `+U` alone, and `EXPLAIN` shows `changelogMode=[I,UA,D]` on that path.
//! So does an upsert sink (`jdbc`, `upsert-kafka`) keyed as the updates. A filter in between,
//! a sink that needs `-U` (`print`, an upsert sink keyed otherwise), or the same sub-plan
//! feeding another sink keeps the `-U`. Counted at the sink's input.

use streamcore::{Job, JobConfig};
use streamcore_sql::session::Outcome;
use streamcore_sql::Session;

const TABLE: &str = "
CREATE TABLE t (k BIGINT, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)
WITH ('connector' = 'values', 'data' = '1,10,2026-12-07 10:00:01
1,20,2026-12-07 10:00:02
2,5,2026-12-07 10:00:03
1,30,2026-12-07 10:00:04');
";

/// Per key the running sum: `+I`, then an update per later row of the key (2 of them).
const SUMS: &str = "SELECT k, SUM(v) AS s FROM t GROUP BY k";
/// The latest row per key: `+I`, then an update per later row (2).
const LATEST: &str = "SELECT k, v FROM (
    SELECT k, v, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts DESC) AS rn FROM t
) WHERE rn = 1";
/// The two largest per key with their rank: key 1 gets `+I` (10); then 20 updates rank 1 and
/// inserts rank 2; then 30 updates ranks 1 and 2 (4 updates in all).
const TOP_TWO: &str = "SELECT k, v, rn FROM (
    SELECT k, v, ROW_NUMBER() OVER (PARTITION BY k ORDER BY v DESC) AS rn FROM t
) WHERE rn <= 2";

/// Runs `inserts` (after the table and the sinks `sinks`: name, connector, columns) at
/// parallelism 1: the rows each sink received, in the order of `sinks`.
fn received(sinks: &[(&str, &str, &str)], inserts: &str) -> Vec<u64> {
    let mut script = String::from(TABLE);
    for (name, connector, columns) in sinks {
        script += &format!("CREATE TABLE {name} ({columns}) WITH ('connector' = '{connector}');");
    }
    script += inserts;
    let mut session = Session::new();
    session.execute_script(&script).unwrap();
    let mut job = Job::new("update-before");
    session.plan_inserts(&mut job).unwrap();
    let summary = job.run(JobConfig::default().parallelism(1)).unwrap();
    sinks
        .iter()
        .map(|(name, _, _)| {
            let sink = summary
                .operators
                .iter()
                .find(|o| o.name.split('#').next() == Some(&format!("sink:{name}")))
                .unwrap_or_else(|| panic!("no sink:{name} in {:?}", summary.operators));
            sink.events_processed
        })
        .collect()
}

/// `EXPLAIN` of `insert` into a sink of `connector` with `columns`.
fn explain(connector: &str, columns: &str, insert: &str) -> String {
    let mut session = Session::new();
    let script = format!(
        "{TABLE} CREATE TABLE out ({columns}) WITH ('connector' = '{connector}'); EXPLAIN {insert}"
    );
    match session.execute_script(&script).unwrap().pop() {
        Some(Outcome::Explain(text)) => text,
        other => panic!("not a plan: {other:?}"),
    }
}

const SUM_COLUMNS: &str = "k BIGINT, s BIGINT";
const ROW_COLUMNS: &str = "k BIGINT, v BIGINT";
const RANK_COLUMNS: &str = "k BIGINT, v BIGINT, rn BIGINT";

#[test]
fn a_blackhole_gets_updates_without_update_before() {
    let cases = [
        (SUMS, SUM_COLUMNS, 6, 4),
        (LATEST, ROW_COLUMNS, 6, 4),
        (TOP_TWO, RANK_COLUMNS, 9, 6),
    ];
    for (query, columns, with_before, without) in cases {
        let insert = |sink: &str| format!("INSERT INTO {sink} {query};");
        let to_print = received(&[("needs", "print", columns)], &insert("needs"));
        assert_eq!(to_print, [with_before], "{query}");
        let to_blackhole = received(&[("hole", "blackhole", columns)], &insert("hole"));
        assert_eq!(to_blackhole, [without], "{query}");
    }
}

#[test]
fn a_filter_between_or_a_shared_sub_plan_keeps_update_before() {
    let having = format!("INSERT INTO hole {SUMS} HAVING SUM(v) > 0;");
    assert_eq!(
        received(&[("hole", "blackhole", SUM_COLUMNS)], &having),
        [6]
    );
    let twice = format!("INSERT INTO a {SUMS}; INSERT INTO b {SUMS};");
    let sinks = [
        ("a", "blackhole", SUM_COLUMNS),
        ("b", "blackhole", SUM_COLUMNS),
    ];
    assert_eq!(received(&sinks, &twice), [6, 6]);
}

/// Asserts that `EXPLAIN` of `insert` into a sink of `connector` and `columns` shows the
/// updates reaching it without `-U` (`[I,UA,D]`) or with (`[I,UB,UA,D]` only).
fn assert_update_before(connector: &str, columns: &str, insert: &str, with_before: bool) {
    let plan = explain(connector, columns, insert);
    let without = plan.contains("changelogMode=[I,UA,D]");
    let with = plan.contains("changelogMode=[I,UB,UA,D]");
    match with_before {
        true => assert!(with && !without, "-U expected: {plan}"),
        false => assert!(without, "no -U expected: {plan}"),
    }
}

#[test]
fn explain_shows_the_path_without_update_before() {
    let plan = explain("blackhole", SUM_COLUMNS, &format!("INSERT INTO out {SUMS}"));
    assert!(
        plan.contains("GroupAggregate(groupBy=[k], select=[SUM($1)]), changelogMode=[I,UA,D]"),
        "{plan}"
    );
    let sums = format!("INSERT INTO out {SUMS}");
    assert_update_before("print", SUM_COLUMNS, &sums, true);
    let plan = explain(
        "blackhole",
        RANK_COLUMNS,
        &format!("INSERT INTO out {TOP_TWO}"),
    );
    assert!(
        plan.contains("rowNumber=selected), changelogMode=[I,UA,D]"),
        "{plan}"
    );
    let having = format!("INSERT INTO out {SUMS} HAVING SUM(v) > 0");
    assert_update_before("blackhole", SUM_COLUMNS, &having, true);
    // A projection that can fail (a division) keeps the `-U`: a new row that fails goes to
    // the dead letters, and the old one must still be withdrawn. One that passes columns on
    // does not.
    let divided = format!("INSERT INTO out SELECT k, 100 / s FROM ({SUMS})");
    assert_update_before("blackhole", SUM_COLUMNS, &divided, true);
    let reordered = format!("INSERT INTO out SELECT s, k FROM ({SUMS})");
    assert_update_before("blackhole", SUM_COLUMNS, &reordered, false);
}

/// An upsert sink keyed as the updates needs no `-U`; keyed otherwise, it does, and the
/// updates are materialized by its key.
#[cfg(feature = "postgres")]
#[test]
fn an_upsert_sink_keyed_as_the_updates_needs_no_update_before() {
    let jdbc = "jdbc', 'url' = 'postgresql://127.0.0.1:1/x', 'table-name' = 'out";
    for (key, needs) in [("k", false), ("s", true), ("k, s", true)] {
        let columns = format!("{SUM_COLUMNS}, PRIMARY KEY ({key}) NOT ENFORCED");
        let sums = format!("INSERT INTO out {SUMS}");
        assert_update_before(jdbc, &columns, &sums, needs);
        // Keyed otherwise, the updates are materialized by the sink's key first.
        let plan = explain(jdbc, &columns, &sums);
        assert_eq!(
            plan.contains("upsertMaterialize=[true]"),
            needs,
            "key ({key}): {plan}"
        );
    }
    // A ranked Top-N's updates are keyed by its partition and row number, a deduplication's
    // by its partition; the columns reordered by the sink's column list.
    let columns = format!("{RANK_COLUMNS}, PRIMARY KEY (rn, k) NOT ENFORCED");
    let reordered = format!("INSERT INTO out (rn, v, k) SELECT rn, v, k FROM ({TOP_TWO})");
    assert_update_before(jdbc, &columns, &reordered, false);
    let latest = format!("INSERT INTO out {LATEST}");
    let columns = format!("{ROW_COLUMNS}, PRIMARY KEY (k) NOT ENFORCED");
    assert_update_before(jdbc, &columns, &latest, false);
    let columns = format!("{ROW_COLUMNS}, PRIMARY KEY (v) NOT ENFORCED");
    assert_update_before(jdbc, &columns, &latest, true);
}

/// A `redis` sink is keyed by what its templates render: one column per template keys it by
/// those columns (keyed as the updates: no `-U`, no materializer); a template reading two
/// columns may render two keys of the query alike (`{k}{v}`: `1`,`23` and `12`,`3`), so the
/// updates keep their `-U` and are materialized by the rendered text.
#[cfg(feature = "redis")]
#[test]
fn a_redis_sink_rendering_two_columns_in_one_template_is_materialized_by_its_text() {
    let counts = "INSERT INTO out SELECT k, v, COUNT(*) FROM t GROUP BY k, v";
    let columns = "k BIGINT, v BIGINT, c BIGINT";
    let redis = |templates: &str| {
        format!("redis', 'url' = 'redis://127.0.0.1:1', {templates}, 'value.column' = 'c")
    };
    let cases = [
        (
            "'key' = 'x:{k}', 'command' = 'hset', 'field' = '{v}'",
            false,
        ),
        (
            "'key' = 'x:{k}:{k}', 'command' = 'hset', 'field' = '{v}'",
            false,
        ),
        ("'key' = 'x:{k}{v}'", true),
        ("'key' = 'x', 'command' = 'hset', 'field' = '{k}-{v}'", true),
    ];
    for (templates, rendered) in cases {
        let connector = redis(templates);
        assert_update_before(&connector, columns, counts, rendered);
        let plan = explain(&connector, columns, counts);
        assert_eq!(
            plan.contains("upsertMaterialize=[true]"),
            rendered,
            "{templates}: {plan}"
        );
    }
}
