//! Unique keys: the columns of an append-only plan whose non-NULL values no two of its rows
//! share, as Flink's planner derives them (its `FlinkRelMdUniqueKeys`), and whether a join
//! key contains one — then the join keeps no row of the other side once it met that row
//! ([`streamcore::join::UniqueSides`]).
//!
//! Sources of uniqueness are only those the engine guarantees itself: the ids of the people
//! and auctions the `nexmark` generator makes (each made once; NULL in the rows of the other
//! kinds, and a NULL key joins nothing). A table's declared `PRIMARY KEY … NOT ENFORCED` is
//! not trusted here: on rows that broke it, the join would lose pairs silently. Filters keep
//! the keys of their input, projections the keys whose columns they pass on.
//!
//! Also here, the one rewrite uniqueness pays for ([`filter_into_unique_joins`]): a filter on
//! the unique input of a join that keeps the other input's rows forever moves into the join's
//! condition, so that the other side's rows whose one partner failed it are dropped instead
//! of waiting for a partner that will never come (q20's bids of auctions of other categories).

use crate::catalog::{ColumnSource, TableDef};
use crate::connectors::{nexmark_fields, NexmarkField};
use crate::expr::{CmpOp, Expr};
use crate::join::{expiry_bounds, split};
use crate::plan::{JoinKind, JoinStrategy, Node, Plan};
use streamcore::row::Scalar;

/// The unique keys of `plan` — each a set of its output columns — if it is append-only.
///
/// ```
/// use streamcore_sql::unique::unique_keys;
/// use streamcore_sql::{Outcome, Session};
/// let mut session = Session::new();
/// let outcomes = session
///     .execute_script(
///         "CREATE TABLE auction (id BIGINT, category BIGINT)
///              WITH ('connector' = 'nexmark', 'kind' = 'auction');
///          SELECT category, id FROM auction WHERE category = 10;",
///     )
///     .unwrap();
/// let Outcome::Query(plan) = &outcomes[1] else { panic!() };
/// assert_eq!(unique_keys(plan), vec![vec![1]]);
/// ```
pub fn unique_keys(plan: &Plan) -> Vec<Vec<usize>> {
    if plan.updating {
        return Vec::new();
    }
    match &plan.node {
        Node::Scan { table, columns } => scan_keys(table, columns),
        Node::Filter { input, .. } => unique_keys(input),
        Node::Project { input, exprs } => unique_keys(input)
            .into_iter()
            .filter_map(|key| {
                key.iter()
                    .map(|c| {
                        exprs
                            .iter()
                            .position(|e| matches!(e, Expr::Column(i) if i == c))
                    })
                    .collect()
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether the join key `keys` (expressions over `plan`'s columns) contains a unique key of
/// `plan`: then no two rows of `plan` have one join key.
pub fn key_contains_unique(plan: &Plan, keys: &[Expr]) -> bool {
    unique_keys(plan).iter().any(|key| {
        key.iter()
            .all(|c| keys.iter().any(|e| matches!(e, Expr::Column(i) if i == c)))
    })
}

/// A scan's unique columns: a `nexmark` table's person and auction ids.
fn scan_keys(table: &TableDef, columns: &[usize]) -> Vec<Vec<usize>> {
    if table.options.get("connector").map(String::as_str) != Some("nexmark") {
        return Vec::new();
    }
    let Ok(fields) = nexmark_fields(table) else {
        return Vec::new();
    };
    columns
        .iter()
        .enumerate()
        .filter(|(_, &c)| match table.columns[c].kind {
            ColumnSource::Physical(p) => matches!(
                fields.get(p),
                Some(NexmarkField::Person(0) | NexmarkField::Auction(0))
            ),
            _ => false,
        })
        .map(|(i, _)| vec![i])
        .collect()
}

/// Moves filters on the unique input of inner regular joins into the joins' conditions
/// (bottom-up over `plan`), where:
///
/// - the input is unique on the join key without the filter ([`key_contains_unique`]), and
/// - the other input's rows are kept without bound (the condition puts no bound on their
///   event time, [`expiry_bounds`]), and
/// - the other input is a whole stream of events (`whole_event_stream`): no unique key, no
///   filter but a `nexmark` scan's kind — any number of rows per key (q20's bids), not
///   entities (q3's auctions, which have ids: a few per seller) nor a filtered few. Moving the
///   filter trades the other side's rows of each failing key for the key's one row, a gain
///   when they are many, a loss when they are fewer than one (measured on q3: +17 % CPU,
///   +27 % memory).
///
/// Then the unique input's row of a key arrives at the join even when it fails the filter;
/// the join ([`streamcore::join::UniqueSides`]) keeps it, as the key's one row, and drops
/// every row of the other side that meets it — the pairs fail the moved condition, so no
/// row is emitted that the filter would not have let through. Without the move those rows
/// were kept for the rest of the job (one stored row per key against all of the other
/// side's). Deterministic conditions move that read only columns the input passes on as they
/// are, and only if nothing the filter guarded can fail — the filter itself, the projection
/// above it, a scan's computed columns below it, and the join's own condition — so that no
/// row the filter removed is now reported as an error; the rest of the filter stays where it
/// was, a `nexmark` scan's `event_type = k` always (the scan makes only that kind).
pub fn filter_into_unique_joins(plan: Plan) -> Plan {
    let plan = crate::rules::map_inputs(plan, &mut filter_into_unique_joins);
    let Plan {
        node,
        fields,
        updating,
        rowtime,
    } = plan;
    let node = match node {
        Node::Join {
            left,
            right,
            kind: JoinKind::Inner,
            on,
            strategy: JoinStrategy::Regular,
            late,
        } if !left.updating && !right.updating => {
            let (left, right, on) = move_into_join(*left, *right, on);
            Node::Join {
                left: Box::new(left),
                right: Box::new(right),
                kind: JoinKind::Inner,
                on,
                strategy: JoinStrategy::Regular,
                late,
            }
        }
        node => node,
    };
    Plan {
        node,
        fields,
        updating,
        rowtime,
    }
}

/// The inputs and condition of the inner regular join of `left` and `right` on `on`, with
/// a unique input's movable filter in the condition (see [`filter_into_unique_joins`]).
fn move_into_join(left: Plan, right: Plan, on: Expr) -> (Plan, Plan, Expr) {
    let n = left.fields.len();
    let bounds = expiry_bounds(JoinKind::Inner, &JoinStrategy::Regular, &on, &left, &right);
    let cond = split(&on, &left, &right);
    // The join's own condition runs on the pairs of the rows the filter removed: it may not
    // fail either (the moved parts come after it).
    if !cond.residual.iter().all(Expr::cannot_fail) {
        return (left, right, on);
    }
    let (lk, rk): (Vec<Expr>, Vec<Expr>) = cond.keys.into_iter().unzip();
    // The right input, if the left rows are kept without bound and are a whole stream of
    // events, not entities.
    let (right, moved) = match bounds.left.is_empty() && whole_event_stream(&left) {
        true => without_movable_filter(right, &rk),
        false => (right, Vec::new()),
    };
    let moved_right: Vec<Expr> = moved
        .iter()
        .map(|c| crate::rules::map_columns(c, &|i| i + n))
        .collect();
    let (left, moved) =
        match bounds.right.is_empty() && whole_event_stream(&right) && moved_right.is_empty() {
            true => without_movable_filter(left, &lk),
            false => (left, Vec::new()),
        };
    let mut conjuncts = match on {
        Expr::And(v) => v,
        e => vec![e],
    };
    conjuncts.extend(moved_right);
    conjuncts.extend(moved);
    let on = match conjuncts.len() {
        1 => conjuncts.pop().expect("one"),
        _ => Expr::And(conjuncts),
    };
    (left, right, on)
}

/// Whether `plan` is a stream of events read whole: projections and filters over a scan, the
/// filters choosing no more than a `nexmark` scan's kind (`event_type = k`, an integer), and
/// not of entities — no unique key, no declared primary key, and not the generator's people
/// or auctions (`event_type` 0 or 1, or the table's `kind`), which have ids even where a
/// projection dropped them. Events may have any number of rows per key; entities or a
/// filtered stream may have few, and then a moved filter would keep more rows (one per
/// failing key of the unique side) than it spares.
fn whole_event_stream(plan: &Plan) -> bool {
    /// The scan under `plan` read whole, and the event kind its filter chooses, if any.
    fn read_whole(plan: &Plan) -> Option<(&TableDef, Option<i64>)> {
        match &plan.node {
            Node::Scan { table, .. } => Some((table, None)),
            Node::Project { input, .. } => read_whole(input),
            Node::Filter { input, predicate } => {
                let Node::Scan { table, columns } = &input.node else {
                    return None;
                };
                let event_type = columns
                    .iter()
                    .position(|&c| table.columns[c].name == "event_type")
                    .filter(|_| {
                        table.options.get("connector").map(String::as_str) == Some("nexmark")
                    })?;
                let conjuncts = match predicate {
                    Expr::And(v) => v.as_slice(),
                    p => std::slice::from_ref(p),
                };
                let mut kind = None;
                for c in conjuncts {
                    let Expr::Cmp(CmpOp::Eq, a, b) = c else {
                        return None;
                    };
                    match (a.as_ref(), b.as_ref()) {
                        (Expr::Column(i), Expr::Literal(Scalar::Int(k)))
                        | (Expr::Literal(Scalar::Int(k)), Expr::Column(i))
                            if *i == event_type =>
                        {
                            kind = Some(*k)
                        }
                        _ => return None,
                    }
                }
                Some((table, kind))
            }
            _ => None,
        }
    }
    let Some((table, kind)) = read_whole(plan) else {
        return false;
    };
    let entities = match table.options.get("kind").map(String::as_str) {
        Some("person" | "auction") => true,
        Some(_) => false,
        None => matches!(kind, Some(0 | 1)),
    };
    let nexmark = table.options.get("connector").map(String::as_str) == Some("nexmark");
    unique_keys(plan).is_empty() && table.primary_key.is_empty() && !(nexmark && entities)
}

/// `input` without the conditions of its top filter (under a projection, if any) that can
/// move into the join's condition, and those conditions over `input`'s output columns —
/// if `input` without them is still unique on the join key `keys`; else `input` as it is.
fn without_movable_filter(input: Plan, keys: &[Expr]) -> (Plan, Vec<Expr>) {
    // The filter, and where its input's columns are in `input`'s output.
    let (filter, outputs): (&Plan, Vec<Option<usize>>) = match &input.node {
        Node::Filter { .. } => (&input, (0..input.fields.len()).map(Some).collect()),
        Node::Project {
            input: inner,
            exprs,
        } if matches!(inner.node, Node::Filter { .. }) => (
            inner,
            (0..inner.fields.len())
                .map(|c| {
                    exprs
                        .iter()
                        .position(|e| matches!(e, Expr::Column(i) if *i == c))
                })
                .collect(),
        ),
        _ => return (input, Vec::new()),
    };
    let Node::Filter {
        input: unfiltered,
        predicate,
    } = &filter.node
    else {
        unreachable!("a filter")
    };
    // Rows the filter removed now reach what it guarded: the rest of its conditions (an
    // `AND` stops at the first false), the projection above, and the computed columns of a
    // scan below (made only for the rows its fused filter keeps). None of it may fail, or a
    // row the filter removed could now be reported as an error.
    let projected = match &input.node {
        Node::Project { exprs, .. } => exprs.as_slice(),
        _ => &[],
    };
    let computed_safe = match &unfiltered.node {
        Node::Scan { table, columns } => columns.iter().all(|&c| match &table.columns[c].kind {
            ColumnSource::Computed(e) => e.cannot_fail(),
            _ => true,
        }),
        _ => true,
    };
    if !predicate.cannot_fail() || !projected.iter().all(Expr::cannot_fail) || !computed_safe {
        return (input, Vec::new());
    }
    // A `nexmark` scan's `event_type`: the scan makes only the kind its filter keeps.
    let event_type = match &unfiltered.node {
        Node::Scan { table, columns }
            if table.options.get("connector").map(String::as_str) == Some("nexmark") =>
        {
            columns
                .iter()
                .position(|&c| table.columns[c].name == "event_type")
        }
        _ => None,
    };
    let conjuncts = match predicate {
        Expr::And(v) => v.clone(),
        e => vec![e.clone()],
    };
    let movable = |c: &Expr| {
        let mut cols = Vec::new();
        c.columns(&mut cols);
        !cols.is_empty()
            && cols
                .iter()
                .all(|&i| outputs[i].is_some() && Some(i) != event_type)
            && c.is_deterministic()
    };
    let (moved, kept): (Vec<Expr>, Vec<Expr>) = conjuncts.into_iter().partition(movable);
    if moved.is_empty() {
        return (input, Vec::new());
    }
    let rest = match kept.len() {
        0 => (**unfiltered).clone(),
        _ => Plan {
            node: Node::Filter {
                input: unfiltered.clone(),
                predicate: match kept.len() {
                    1 => kept[0].clone(),
                    _ => Expr::And(kept),
                },
            },
            ..filter.clone()
        },
    };
    let rebuilt = match &input.node {
        Node::Project { exprs, .. } => Plan {
            node: Node::Project {
                input: Box::new(rest),
                exprs: exprs.clone(),
            },
            ..input.clone()
        },
        _ => Plan {
            fields: input.fields.clone(),
            ..rest
        },
    };
    if !key_contains_unique(&rebuilt, keys) {
        return (input, Vec::new());
    }
    let moved = moved
        .iter()
        .map(|c| crate::rules::map_columns(c, &|i| outputs[i].expect("a passed column")))
        .collect();
    (rebuilt, moved)
}
