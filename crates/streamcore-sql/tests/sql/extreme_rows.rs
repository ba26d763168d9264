//! The rewrite of a join of a windowed stream with its own per-window extreme
//! (`streamcore_sql::extreme`: Nexmark q5's and q7's form) against the join it replaces: on
//! random bids — few distinct prices (ties), times often on a window's end, NULL prices and
//! keys — each form of the query gives the same rows rewritten (`WindowExtremeRows` in its
//! plan) as written so that the rule does not apply (`= extreme + 0`: the join). Twice: in
//! batches at parallelism 2 (no row late), and a row at a time with a watermark after each at
//! parallelism 1, the rows out of time order (late rows, windows firing while rows come) —
//! with a window over the result, which sees a row only if it comes out in time as the
//! join's.

use proptest::prelude::*;
use std::time::Duration;
use streamcore::JobConfig;
use streamcore_sql::session::Outcome;
use streamcore_sql::Session;

/// A bid: its price (`None`: NULL) and its second after 10:00:00; `id % 5 = 4` has a NULL
/// key `k`.
type Bid = (Option<i64>, i64);

/// A session with the table `b` of `bids` (a CSV file in the returned directory: both sides
/// of a join read it through one reader, so at parallelism 1 they see one order of rows and
/// watermarks) and the view `counts` over it.
fn session_over(bids: &[Bid]) -> (Session, tempfile::TempDir) {
    let data: Vec<String> = bids
        .iter()
        .enumerate()
        .map(|(id, (price, second))| {
            let price = price.map(|p| p.to_string()).unwrap_or_default();
            let k = if id % 5 == 4 {
                String::new()
            } else {
                (id % 2).to_string()
            };
            format!("{id},{k},{price},2026-12-05 10:00:{second:02}\n")
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.csv");
    std::fs::write(&path, data.concat()).unwrap();
    let mut session = Session::new();
    session
        .execute_script(&format!(
            "CREATE TABLE b (id BIGINT, k BIGINT, price BIGINT, ts TIMESTAMP(3),
               WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
             CREATE VIEW counts AS SELECT id % 3 AS k, COUNT(price) AS num,
               window_start AS s, window_end AS e
             FROM TABLE(HOP(TABLE b, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '10' SECOND))
             GROUP BY id % 3, window_start, window_end;",
            path.display()
        ))
        .unwrap();
    (session, dir)
}

/// The two ways each query runs: batches at parallelism 2; a row at a time, a watermark after
/// each, at parallelism 1 (both sides of the join fed by one reader on one thread: the same
/// rows and watermarks in the same order).
fn configs() -> [JobConfig; 2] {
    [
        JobConfig::default().parallelism(2),
        JobConfig::default()
            .parallelism(1)
            .batch_size(1)
            .watermark_interval(Duration::ZERO),
    ]
}

/// The plan and the sorted rows of `query`.
fn run(session: &mut Session, query: &str, config: &JobConfig) -> (String, Vec<String>) {
    let outcomes = session.execute_script(query).unwrap();
    let Some(Outcome::Query(plan)) = outcomes
        .into_iter()
        .find(|o| matches!(o, Outcome::Query(_)))
    else {
        panic!("{query}: no query");
    };
    let changes = session.collect(&plan, config.clone()).unwrap();
    let mut rows: Vec<String> = changes
        .iter()
        .map(|c| {
            assert!(
                matches!(c, streamcore::changelog::Change::Insert(_)),
                "{query}: an update in an append-only result"
            );
            format!("{:?}", c.row().values)
        })
        .collect();
    rows.sort();
    (plan.explain(), rows)
}

/// Runs `query` with `{cmp}` as `op` and the bare extreme, and as `= extreme + 0` (the join:
/// `>=` the maximum is `=` it, and a join needs an equality); asserts the first is rewritten,
/// the second not, and both give the same rows.
fn assert_rewrite_exact(bids: &[Bid], op: &str, query: &str) {
    let (mut session, _dir) = session_over(bids);
    for config in configs() {
        let rewritten = query.replace("{cmp}", &format!("{op} M.m"));
        let (plan, rows) = run(&mut session, &rewritten, &config);
        let (join_plan, join_rows) = run(
            &mut session,
            &query.replace("{cmp}", "= (M.m + 0)"),
            &config,
        );
        assert!(plan.contains("WindowExtremeRows"), "not rewritten:\n{plan}");
        assert!(!join_plan.contains("WindowExtremeRows"), "{join_plan}");
        assert_eq!(rows, join_rows, "bids {bids:?}\n{query}\n{config:?}");
    }
}

fn bids() -> impl Strategy<Value = Vec<Bid>> {
    let price = prop_oneof![1 => Just(None), 6 => (0i64..4).prop_map(Some)];
    let second = prop_oneof![1 => (0i64..4).prop_map(|w| w * 10), 1 => (1i64..5).prop_map(|w| w * 10 - 1), 3 => 0i64..40];
    prop::collection::vec((price, second), 1..30)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// q7's form: a tumbling window of the stream itself, each row matched against the
    /// windows its time lies in (`BETWEEN end - size AND end`: both ends, or `< end`; the
    /// lower bound from `window_end` or `window_start`, operands either way round), grouped
    /// by nothing or by a key; the window's bounds and time read from the right side.
    #[test]
    fn rows_matched_by_time_are_the_joins(bids in bids(), pick in 0usize..16) {
        let (agg, op) = [("MAX", "="), ("MAX", ">="), ("MIN", "="), ("MIN", "<=")][pick % 4];
        let upper = if pick % 8 < 4 { "B.ts <= M.t" } else { "M.t > B.ts" };
        let (lower, key, on_key) = if pick < 8 {
            ("B.ts >= M.t - INTERVAL '10' SECOND", "", "")
        } else {
            ("M.s <= B.ts", "k, ", "B.k = M.k AND ")
        };
        assert_rewrite_exact(&bids, op, &format!(
            "SELECT B.id, B.price, B.ts, M.m, M.s, M.t, M.wt FROM b B JOIN (
               SELECT {key}{agg}(price) AS m, window_start AS s, window_end AS t,
                 window_time AS wt
               FROM TABLE(TUMBLE(TABLE b, DESCRIPTOR(ts), INTERVAL '10' SECOND))
               GROUP BY {key}window_start, window_end, window_time) M
             ON {on_key}B.price {{cmp}} AND {lower} AND {upper}"
        ));
    }

    /// The rows of q7's form come out in time: a window over them counts each, as over the
    /// join's.
    #[test]
    fn a_window_over_the_rows_sees_them_all(bids in bids(), pick in 0usize..2) {
        let upper = ["<=", "<"][pick];
        assert_rewrite_exact(&bids, "=", &format!(
            "DROP VIEW IF EXISTS top;
             CREATE VIEW top AS SELECT B.id, B.ts FROM b B JOIN (
                 SELECT MAX(price) AS m, window_end AS t
                 FROM TABLE(TUMBLE(TABLE b, DESCRIPTOR(ts), INTERVAL '10' SECOND))
                 GROUP BY window_start, window_end) M
               ON B.price {{cmp}} AND B.ts >= M.t - INTERVAL '10' SECOND AND B.ts {upper} M.t;
             SELECT COUNT(*), window_start FROM TABLE(TUMBLE(TABLE top,
               DESCRIPTOR(ts), INTERVAL '5' SECOND))
             GROUP BY window_start, window_end"
        ));
    }

    /// q5's form: a window aggregate's results grouped by their window columns.
    #[test]
    fn rows_of_an_upstream_window_are_the_joins(bids in bids(), pick in 0usize..4) {
        let (agg, op) = [("MAX", "="), ("MAX", ">="), ("MIN", "="), ("MIN", "<=")][pick];
        assert_rewrite_exact(&bids, op, &format!(
            "SELECT a.k, a.num, a.s, M.m, M.e FROM counts a JOIN (
               SELECT {agg}(num) AS m, s, e FROM counts GROUP BY s, e) M
             ON a.s = M.s AND a.e = M.e AND a.num {{cmp}}"
        ));
    }
}
