//! A join's condition beyond its keys against a nested loop with SQL's three-valued logic, on
//! random rows with NULLs: the condition's parts over one side, comparisons of a column of
//! each side, and parts reading both sides through arithmetic are tested apart on each pair
//! (`PairTest`), with and without a projection fused into the join, in a regular join and an
//! interval join.

use proptest::prelude::*;
use streamcore::changelog::apply_to;
use streamcore::JobConfig;
use streamcore_sql::{Outcome, Session};

/// A row `(k, x, y)`; `None` is NULL.
type Rec = (i64, Option<i64>, Option<i64>);

fn recs() -> impl Strategy<Value = Vec<Rec>> {
    prop::collection::vec(
        (
            0i64..3,
            prop::option::weighted(0.8, 0i64..6),
            prop::option::weighted(0.8, 0i64..6),
        ),
        0..14,
    )
}

/// A `values` table `name` of `rows`, its time `t` the row's position in seconds.
fn table(name: &str, rows: &[Rec]) -> String {
    let cell = |v: Option<i64>| v.map_or(String::new(), |v| v.to_string());
    let data: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, (k, x, y))| format!("{k},{},{},2026-12-05 10:00:{:02}", cell(*x), cell(*y), i))
        .collect();
    format!(
        "CREATE TABLE {name} (k BIGINT, x BIGINT, y BIGINT, t TIMESTAMP(3),
           WATERMARK FOR t AS t - INTERVAL '1' MINUTE)
         WITH ('connector' = 'values', 'data' = '{}');",
        data.join("\n")
    )
}

fn query(sql: &str, l: &[Rec], r: &[Rec]) -> Vec<String> {
    query_result(sql, l, r).unwrap()
}

/// The rows of `sql`, or the job's error.
fn query_result(sql: &str, l: &[Rec], r: &[Rec]) -> Result<Vec<String>, String> {
    let mut session = Session::new();
    session
        .execute_script(&format!("{}{}", table("l", l), table("r", r)))
        .unwrap();
    let out = session.execute_script(sql).unwrap();
    let Outcome::Query(plan) = &out[0] else {
        panic!("a query")
    };
    let config = JobConfig::default().parallelism(2).batch_size(3);
    let changes = session.collect(plan, config).map_err(|e| e.to_string())?;
    let mut rows = crate::texts(apply_to(changes));
    rows.sort();
    Ok(rows)
}

/// `a op b` in SQL: unknown (`None`) with a NULL operand.
fn cmp(a: Option<i64>, b: Option<i64>, f: fn(i64, i64) -> bool) -> Option<bool> {
    Some(f(a?, b?))
}

/// `l.x < r.y AND l.y IS NOT NULL AND r.x <> 2 AND (l.y > r.x OR l.k = 0)` in SQL's logic:
/// a pair passes when every part is true (each part reads a column the part before does not,
/// so a part that lets an unknown through is seen). The parts cannot fail: tested on the pair
/// alone, no filter after the join.
fn passes(a: &Rec, b: &Rec) -> bool {
    parts(a, b).iter().all(|p| *p == Some(true))
}

/// The truth of each part of [`CONDITION`] for the pair.
fn parts(a: &Rec, b: &Rec) -> [Option<bool>; 4] {
    let or = |p: Option<bool>, q: Option<bool>| match (p, q) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    };
    [
        cmp(a.1, b.2, |p, q| p < q),
        Some(a.2.is_some()),
        cmp(b.1, Some(2), |p, q| p != q),
        or(cmp(a.2, b.1, |p, q| p > q), Some(a.0 == 0)),
    ]
}

const CONDITION: &str = "l.x < r.y AND l.y IS NOT NULL AND r.x <> 2 AND (l.y > r.x OR l.k = 0)";

/// Whether `l.y / r.x > 0 AND ` [`CONDITION`] fails on the pair: `AND` tests its parts in
/// the order written when one can fail (here the division by a zero `r.x`), so the division
/// runs first, whatever the later parts are.
fn divides_by_zero(a: &Rec, b: &Rec) -> bool {
    a.2.is_some() && b.1 == Some(0)
}

/// [`passes`] and `l.y / r.x > 0`.
fn passes_with_quotient(a: &Rec, b: &Rec) -> bool {
    passes(a, b) && cmp(a.2.zip(b.1).map(|(p, q)| p / q), Some(0), |p, q| p > q) == Some(true)
}

fn show(v: Option<i64>) -> String {
    v.map_or("NULL".to_string(), |v| v.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn a_joins_condition_tested_in_parts_is_the_nested_loops(l in recs(), r in recs()) {
        let pairs: Vec<(&Rec, &Rec)> = l
            .iter()
            .flat_map(|a| r.iter().map(move |b| (a, b)))
            .filter(|(a, b)| a.0 == b.0 && passes(a, b))
            .collect();
        // A projection of columns only: fused into the join.
        let mut expected: Vec<String> = pairs
            .iter()
            .map(|(a, b)| format!("{} {} {}", show(a.1), show(b.2), show(b.1)))
            .collect();
        expected.sort();
        let sql = format!("SELECT l.x, r.y, r.x FROM l JOIN r ON l.k = r.k AND {CONDITION}");
        prop_assert_eq!(query(&sql, &l, &r), expected);
        // A computed column: the joined row, then the projection.
        let mut expected: Vec<String> = pairs
            .iter()
            .map(|(a, b)| format!("{} {}", show(a.1), show(a.2.zip(b.2).map(|(p, q)| p * q))))
            .collect();
        expected.sort();
        let sql = format!("SELECT l.x, l.y * r.y FROM l JOIN r ON l.k = r.k AND {CONDITION}");
        prop_assert_eq!(query(&sql, &l, &r), expected);
        // An interval join (the rows' times within a minute of each other: all of them).
        let sql = format!(
            "SELECT l.x, r.y, r.x FROM l JOIN r ON l.k = r.k AND {CONDITION}
             AND l.t BETWEEN r.t - INTERVAL '1' MINUTE AND r.t + INTERVAL '1' MINUTE"
        );
        let mut expected: Vec<String> = pairs
            .iter()
            .map(|(a, b)| format!("{} {} {}", show(a.1), show(b.2), show(b.1)))
            .collect();
        expected.sort();
        prop_assert_eq!(query(&sql, &l, &r), expected);
        // A part that may fail, written first: the whole condition tested in the order
        // written, on the pair and again on the joined row, where a division by zero is
        // reported (the job fails) — not hidden by a later part that is false.
        let pairs = || {
            l.iter()
                .flat_map(|a| r.iter().map(move |b| (a, b)))
                .filter(|(a, b)| a.0 == b.0)
        };
        let sql = format!(
            "SELECT l.x, r.x FROM l JOIN r ON l.k = r.k AND l.y / r.x > 0 AND {CONDITION}"
        );
        let got = query_result(&sql, &l, &r);
        if pairs().any(|(a, b)| divides_by_zero(a, b)) {
            prop_assert!(
                got.as_ref().is_err_and(|e| e.contains("division by zero")),
                "{:?}",
                got
            );
        } else {
            let mut expected: Vec<String> = pairs()
                .filter(|(a, b)| passes_with_quotient(a, b))
                .map(|(a, b)| format!("{} {}", show(a.1), show(b.1)))
                .collect();
            expected.sort();
            prop_assert_eq!(got, Ok(expected));
        }
    }
}
