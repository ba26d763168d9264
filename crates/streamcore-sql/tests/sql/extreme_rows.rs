//! The rewrite of a join of a windowed stream with its own per-window extreme
//! (`streamcore_sql::extreme`: Nexmark q5's and q7's form) against the join it replaces: on
//! random bids — few distinct prices (ties), times often on a window's end, NULL prices, any
//! arrival order — each form of the query gives the same rows rewritten (`WindowExtremeRows`
//! in its plan) as written so that the rule does not apply (`= extreme + 0`: the join).

use proptest::prelude::*;
use streamcore::JobConfig;
use streamcore_sql::session::Outcome;
use streamcore_sql::Session;

/// A bid: its price (`None`: NULL) and its second after 10:00:00.
type Bid = (Option<i64>, i64);

fn session_over(bids: &[Bid]) -> Session {
    let data: Vec<String> = bids
        .iter()
        .enumerate()
        .map(|(id, (price, second))| {
            let price = price.map(|p| p.to_string()).unwrap_or_default();
            format!("{id},{price},2026-12-05 10:00:{second:02}")
        })
        .collect();
    let mut session = Session::new();
    session
        .execute_script(&format!(
            "CREATE TABLE b (id BIGINT, price BIGINT, ts TIMESTAMP(3),
               WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
             WITH ('connector' = 'values', 'data' = '{}');
             CREATE VIEW counts AS SELECT id % 3 AS k, COUNT(price) AS num,
               window_start AS s, window_end AS e
             FROM TABLE(HOP(TABLE b, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '10' SECOND))
             GROUP BY id % 3, window_start, window_end;",
            data.join("\n")
        ))
        .unwrap();
    session
}

/// The plan and the sorted rows of `query`.
fn run(session: &mut Session, query: &str) -> (String, Vec<String>) {
    let outcomes = session.execute_script(query).unwrap();
    let Some(Outcome::Query(plan)) = outcomes.into_iter().next() else {
        panic!("{query}: not a query");
    };
    let changes = session
        .collect(&plan, JobConfig::default().parallelism(2))
        .unwrap();
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
    let mut session = session_over(bids);
    let (plan, rows) = run(&mut session, &query.replace("{cmp}", &format!("{op} M.m")));
    let (join_plan, join_rows) = run(&mut session, &query.replace("{cmp}", "= (M.m + 0)"));
    assert!(plan.contains("WindowExtremeRows"), "not rewritten:\n{plan}");
    assert!(!join_plan.contains("WindowExtremeRows"), "{join_plan}");
    assert_eq!(rows, join_rows, "bids {bids:?}\n{query}");
}

fn bids() -> impl Strategy<Value = Vec<Bid>> {
    let price = prop_oneof![1 => Just(None), 6 => (0i64..4).prop_map(Some)];
    let second = prop_oneof![1 => (0i64..4).prop_map(|w| w * 10), 3 => 0i64..40];
    prop::collection::vec((price, second), 1..30)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// q7's form: a tumbling window of the stream itself, each row matched against the
    /// windows its time lies in (`BETWEEN end - size AND end`: both ends, or `< end`).
    #[test]
    fn rows_matched_by_time_are_the_joins(bids in bids(), pick in 0usize..8) {
        let (agg, op) = [("MAX", "="), ("MAX", ">="), ("MIN", "="), ("MIN", "<=")][pick % 4];
        let upper = if pick < 4 { "<=" } else { "<" };
        assert_rewrite_exact(&bids, op, &format!(
            "SELECT B.id, B.price, B.ts, M.m, M.t FROM b B JOIN (
               SELECT {agg}(price) AS m, window_end AS t
               FROM TABLE(TUMBLE(TABLE b, DESCRIPTOR(ts), INTERVAL '10' SECOND))
               GROUP BY window_start, window_end) M
             ON B.price {{cmp}} AND B.ts >= M.t - INTERVAL '10' SECOND
               AND B.ts {upper} M.t"
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
